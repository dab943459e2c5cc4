// The seed scenario through the C++ wrapper (stacklstm.hpp): TF's
// MultiRNNCell([BasicLSTMCell(n) for n in [100, 200, 300]]) over a batch of 10 sequences of
// 128-dimensional inputs, through dynamic_rnn and through one MultiRNNCell step.  Prints every
// shape and checks final_state[-1].h == outputs[:, -1, :].  Runs on the GPU when one is
// usable, else on the CPU.  Usage: cpp_demo [time (default 7)]
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "stacklstm/stacklstm.hpp"

namespace {

// The larger of m and d, NaN when either is NaN (std::fmax would drop a NaN difference).
double max_nan(double m, double d) { return d > m || std::isnan(d) ? d : m; }

// max |a - b| over two equally long float ranges (NaN when any difference is NaN).
double max_abs_diff(stacklstm::span<const float> a, stacklstm::span<const float> b) {
  double m = 0.0;
  for (std::size_t k = 0; k < a.size() && k < b.size(); ++k) {
    m = max_nan(m, std::fabs(static_cast<double>(a[k]) - static_cast<double>(b[k])));
  }
  return m;
}

std::string shape(std::initializer_list<std::int64_t> dims) {
  std::string s = "(";
  for (const std::int64_t d : dims) s += (s.size() > 1 ? ", " : "") + std::to_string(d);
  return s + ")";
}

}  // namespace

int main(int argc, char** argv) try {
  const std::vector<std::int64_t> hidden = {100, 200, 300};
  const std::int64_t B = 10, D = 128, T = argc > 1 ? std::atoll(argv[1]) : 7;
  const std::int64_t H = hidden.back();
  const std::int32_t last = static_cast<std::int32_t>(hidden.size()) - 1;
  if (T < 1 || T > 100000) {
    std::cerr << "time must be in [1, 100000]\n";
    return 2;
  }
  std::cout << "libstacklstm " << stacklstm::version_string() << " (C++ wrapper)\n";

  const stacklstm::Model model = stacklstm::Model::random(D, hidden, /*seed=*/42);

  stacklstm::SessionOptions options(B, T);
  if (const stacklstm::Availability cuda = stacklstm::backend_available(SLSTM_BACKEND_CUDA)) {
    options.backend(SLSTM_BACKEND_CUDA);
  } else {
    std::cout << "CUDA backend unavailable (" << cuda.reason << "); using the CPU\n";
  }
  stacklstm::Session session(model, options);
  std::cout << "backend: " << (session.backend() == SLSTM_BACKEND_CUDA ? "CUDA" : "CPU") << "\n";

  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(B * T * D));
  for (float& v : x) v = uniform(rng);
  std::vector<float> state0(model.state_count(B));
  for (float& v : state0) v = 0.5f * uniform(rng);

  // outputs, states = tf.nn.dynamic_rnn(mul_cells, X, time_major=False)
  const stacklstm::ForwardResult r = session.forward(B, T, x);

  std::cout << "inputs        shape " << shape({B, T, D}) << "\n";
  std::cout << "outputs       shape " << shape({B, T, H}) << " (" << r.output.size()
            << " floats)\n";
  for (std::int32_t l = 0; l <= last; ++l) {
    const auto c = model.state_part(r.final_state, B, l, SLSTM_STATE_C);
    const auto h = model.state_part(r.final_state, B, l, SLSTM_STATE_H);
    std::cout << "states[" << l << "].c   shape " << shape({B, model.hidden_size(l)}) << " ("
              << c.size() << " floats)\n";
    std::cout << "states[" << l << "].h   shape " << shape({B, model.hidden_size(l)}) << " ("
              << h.size() << " floats)\n";
  }

  // outputs[:, -1, :], row by row, against final_state[-1].h
  const auto h_last = model.state_part(r.final_state, B, last, SLSTM_STATE_H);
  double max_diff = 0.0;
  for (std::int64_t b = 0; b < B; ++b) {
    const std::size_t row = static_cast<std::size_t>(b * H);
    const std::size_t out_row = static_cast<std::size_t>((b * T + T - 1) * H);
    max_diff = max_nan(max_diff, max_abs_diff(h_last.subspan(row, static_cast<std::size_t>(H)),
                                              stacklstm::span<const float>(r.output).subspan(
                                                  out_row, static_cast<std::size_t>(H))));
  }
  std::cout << "final_state[-1].h == outputs[:, -1, :]: " << (max_diff == 0.0 ? "true" : "FALSE")
            << " (max |diff| = " << max_diff << ")\n";

  // outputs, states = mul_cells(inputs, (state0, state1, state2))
  const stacklstm::StepResult step = session.step(
      B, stacklstm::span<const float>(x.data(), static_cast<std::size_t>(B * D)), state0);
  std::cout << "step: outputs shape " << shape({B, H}) << "; states[0].h shape "
            << shape({B, hidden[0]}) << "; states[2].h shape " << shape({B, hidden[2]}) << "\n";
  const double step_diff =
      max_abs_diff(model.state_part(step.state, B, last, SLSTM_STATE_H), step.output);
  std::cout << "step: states[-1].h == outputs: " << (step_diff == 0.0 ? "true" : "FALSE") << "\n";

  // Errors are exceptions carrying the status and the library's message.
  try {
    (void)session.forward(B + 1, T, x);
  } catch (const stacklstm::Error& e) {
    std::cout << "expected error: " << e.status_string() << ": " << e.what() << "\n";
  }
  return (max_diff == 0.0 && step_diff == 0.0) ? 0 : 1;
} catch (const stacklstm::Error& e) {
  std::cerr << "stacklstm error (" << e.status_string() << "): " << e.what() << "\n";
  return 1;
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
