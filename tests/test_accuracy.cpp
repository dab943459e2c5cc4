// The accuracy rule (issue 13, item 9; README "Accuracy"): every cell of every step of every
// CPU path is within a bound that follows the problem's conditioning (the magnitudes of the
// terms of each pre-activation, passed through the gates) of the exact cell on the same
// float32 inputs.  t::expected_step() computes both, t::check_within_accuracy() applies it to
// every step of a call; these cases check that the paths obey the rule where a flat
// tolerance does not hold, and that the rule is tight enough to catch errors.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "support.hpp"

namespace {

double max_of(const std::vector<double>& v) {
  double m = 0.0;
  for (double e : v) m = std::fmax(m, e);
  return m;
}

const std::vector<std::int64_t> kHidden = {40, 33, 20};
constexpr std::int64_t kD = 24, kB = 5, kT = 9;

// A three-layer model at PyTorch's default scale, inputs in [-1, 1], an initial state and
// lengths 0, 1, T and between: the everyday case.
struct Moderate {
  t::Model m = t::random_model(kD, kHidden, 901);
  std::vector<float> x = t::random_vector(kB * kT * kD, 902);
  std::vector<float> s0 = t::random_vector(t::state_count(m.get(), kB), 903, -0.5f, 0.5f);
  std::vector<std::int32_t> lengths = {9, 4, 0, 9, 1};
  t::Call call(slstm_layout layout = SLSTM_BATCH_MAJOR) const {
    t::Call c = t::call_of(kB, kT, x, layout);
    c.initial_state = &s0;
    c.lengths = &lengths;
    return c;
  }
};

// One step (time-major row 0 of `x`, all rows active) from `s0` on the path under test, and
// the rule's expectation for the state it produced.
struct OneStep {
  t::Run run;
  t::StepExpected want;
};
OneStep one_step(const slstm_model* m, std::int64_t B, const std::vector<float>& x,
                 const std::vector<float>& s0) {
  const std::vector<float> x0(x.begin(), x.begin() + B * t::input_size(m));
  t::Session s = t::session(m, B, 1);
  t::Call c = t::call_of(B, 1, x0);
  c.initial_state = &s0;
  OneStep o;
  o.run = t::forward_ok(s.get(), m, c);
  o.want = t::expected_step(m, B, x0.data(), s0, o.run.final_state,
                            std::vector<bool>(static_cast<std::size_t>(B), true));
  return o;
}

}  // namespace

TEST_CASE("every step of every CPU path is within the accuracy bound of the exact cell",
          "[accuracy]") {
  const Moderate mod;
  for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
    INFO((layout == SLSTM_TIME_MAJOR ? "time-major" : "batch-major"));
    t::Session s = t::session(mod.m.get(), kB, kT);
    t::check_within_accuracy(s.get(), mod.m.get(), mod.call(layout));
  }
}

TEST_CASE("pre-activations near 1000: errors far above 1e-5 that stay within the bound",
          "[accuracy]") {
  // Weights in [-8, 8] and inputs in [-50, 50]: layer 0's pre-activations are sums of 64
  // terms of magnitude ~100 (|z| ~ 1000, S(z) ~ 6000); where they cancel to a few units the
  // gates are steep, and float32 cannot do better than ~sqrt(n) * 2^-24 * S(z) there
  // (TensorFlow's float32 LSTM is 2e-4 from float64 on such models).  The old flat rule
  // (1e-5 against the reference path) failed here on the AVX2 and portable kernels.
  constexpr std::int64_t D = 64, B = 6, T = 12;
  t::Model m = t::random_model(D, {48, 32}, 911, 1.0f, 8.0f);
  const std::vector<float> x = t::random_vector(B * T * D, 912, -50.0f, 50.0f);
  const std::vector<float> s0(t::state_count(m.get(), B), 0.0f);
  // The problem allows no flat 1e-5: its bound is far above it already at the first step.
  CHECK(max_of(one_step(m.get(), B, x, s0).want.bound) > 1e-4);
  t::Session s = t::session(m.get(), B, T);
  t::check_within_accuracy(s.get(), m.get(), t::call_of(B, T, x, SLSTM_TIME_MAJOR));
}

TEST_CASE("the accuracy rule is not vacuous: a step's state off by half the bound passes, "
          "off by 100 times it fails",
          "[accuracy]") {
  const Moderate mod;
  const OneStep o = one_step(mod.m.get(), kB, mod.x, mod.s0);
  CHECK(t::accuracy_ratio(o.run.final_state, o.want.state, o.want.bound) <= 1.0);
  // At everyday scales the bound is small in absolute terms.
  CHECK(max_of(o.want.bound) < 1e-5);
  // The last layer's c and h blocks (nothing is computed from them within the step).
  const std::size_t last = t::state_count(mod.m.get(), kB) -
                           static_cast<std::size_t>(2 * kB * kHidden.back());
  std::vector<float> near = o.run.final_state, far = o.run.final_state;
  for (std::size_t i = last; i < near.size(); ++i) {
    const double sign = i % 2 ? 1.0 : -1.0;
    near[i] = static_cast<float>(o.want.state[i] + sign * 0.5 * o.want.bound[i]);
  }
  CHECK(t::accuracy_ratio(near, o.want.state, o.want.bound) <= 1.0);
  far[last + 3] = static_cast<float>(o.want.state[last + 3] + 100.0 * o.want.bound[last + 3]);
  CHECK(t::accuracy_ratio(far, o.want.state, o.want.bound) > 1.0);
}

TEST_CASE("the accuracy rule catches a model whose one recurrent weight is off by 1e-4",
          "[accuracy]") {
  // A conversion bug of that size (a weight rounded to 4 decimals, say) must not pass.
  const Moderate mod;
  std::vector<std::vector<float>> w;
  std::vector<slstm_tensor_out> out;
  std::int64_t in = kD;
  for (std::int64_t h : kHidden) {
    w.emplace_back(static_cast<std::size_t>(4 * h * in));
    w.emplace_back(static_cast<std::size_t>(4 * h * h));
    w.emplace_back(static_cast<std::size_t>(4 * h));
    in = h;
  }
  in = kD;
  for (std::size_t l = 0; l < kHidden.size(); ++l) {
    const std::int64_t h = kHidden[l];
    out.push_back({w[3 * l].data(), 2, {4 * h, in}});
    out.push_back({w[3 * l + 1].data(), 2, {4 * h, h}});
    out.push_back({w[3 * l + 2].data(), 1, {4 * h}});
    in = h;
  }
  REQUIRE(slstm_model_export(mod.m.get(), SLSTM_FORMAT_CANONICAL, out.data(), out.size()) ==
          SLSTM_OK);
  w[4][(2 * 33 + 2) * 33 + 5] += 1e-4f;  // layer 1, W_h, gate g of unit 2, from unit 5
  std::vector<slstm_tensor> ts;
  for (const slstm_tensor_out& o : out) ts.push_back({o.data, o.ndim, {o.shape[0], o.shape[1]}});
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = kD;
  cfg.num_layers = static_cast<std::int32_t>(kHidden.size());
  cfg.hidden_sizes = kHidden.data();
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create(&cfg, SLSTM_FORMAT_CANONICAL, ts.data(), ts.size(), &raw) ==
          SLSTM_OK);
  const t::Model off(raw);
  // The wrong model's step, judged by the right model's rule.
  const OneStep wrong = one_step(off.get(), kB, mod.x, mod.s0);
  const std::vector<float> x0(mod.x.begin(), mod.x.begin() + kB * kD);
  const t::StepExpected want = t::expected_step(
      mod.m.get(), kB, x0.data(), mod.s0, wrong.run.final_state, std::vector<bool>(kB, true));
  CHECK(t::accuracy_ratio(wrong.run.final_state, want.state, want.bound) > 1.0);
}

// The bound assumes sums inside float32's range (README "Accuracy"): past it the float32
// paths' sums overflow as any float32 engine's do, while the reference adds in float64. Each
// gate's W_x row here is [3e38, -3e38] and x = [1.5, 1.5]: both products are beyond FLT_MAX,
// the exact pre-activation is 0 (forget_bias aside), so the exact c and h are 0.
TEST_CASE("products past float32's range: the reference path's float64 sums give the exact cell",
          "[accuracy]") {
  REQUIRE(std::isinf(1.5f * 3e38f));
  const std::vector<float> wx = {3e38f, -3e38f, 3e38f, -3e38f, 3e38f, -3e38f, 3e38f, -3e38f};
  t::Model m = t::canonical_model(2, 1, wx, std::vector<float>(4, 0.0f),
                                  std::vector<float>(4, 0.0f));
  slstm_session_options o = t::options(1, 1);
  o.cpu_path = SLSTM_CPU_PATH_REFERENCE;
  slstm_session* s = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &s) == SLSTM_OK);
  t::Session session(s);
  const std::vector<float> x = {1.5f, 1.5f};
  const t::Run r = t::forward_ok(session.get(), m.get(), t::call_of(1, 1, x));
  CHECK(r.output == std::vector<float>{0.0f});
  CHECK(r.final_state == std::vector<float>{0.0f, 0.0f});
}

namespace {

// Unit u's value of a sweep from 1e-6 to 1e-2 over H units, log-spaced, of alternating
// sign, as a float32.
float tiny_value(std::int64_t u, std::int64_t H) {
  const double e = -6.0 + 4.0 * static_cast<double>(u) / static_cast<double>(H - 1);
  return static_cast<float>((u % 2 ? -1.0 : 1.0) * std::pow(10.0, e));
}

}  // namespace

// Where the cell state is tiny, c and h are tiny too, and float32 gives them to a few ulp of
// their own size (TensorFlow's tanh does): the gate functions' error is relative there, not
// the bound's 16 * 2^-24 in absolute terms.  Until 0.19.1 the AVX kernels' tanh was
// 2 sigmoid(2x) - 1, ~6e-8 off in absolute terms: 10 % of h at |c| = 1e-6, 0.1 % at 1e-5.
// Zero weights and biases that saturate i and o (sigma(20) is 1 in float32): c = tanh(b_g),
// then sigma(forget_bias) c + tanh(b_g), with |b_g| from 1e-6 to 1e-2 across 37 units (the
// vector kernels' tails too).
TEST_CASE("a tiny cell state gives c and h to float32's relative accuracy on every CPU path",
          "[accuracy]") {
  constexpr std::int64_t H = 37, B = 3, T = 2;
  std::vector<float> b(4 * H, 0.0f);
  std::vector<double> bg(H);
  for (std::int64_t u = 0; u < H; ++u) {
    b[0 * H + u] = 20.0f;               // i
    b[2 * H + u] = tiny_value(u, H);    // g
    b[3 * H + u] = 20.0f;               // o
    bg[u] = static_cast<double>(b[2 * H + u]);
  }
  t::Model m = t::canonical_model(1, H, std::vector<float>(4 * H, 0.0f),
                                  std::vector<float>(4 * H * H, 0.0f), b);
  t::Session s = t::session(m.get(), B, T);
  const std::vector<float> x(B * T, 0.5f);
  const t::Run r = t::forward_ok(s.get(), m.get(), t::call_of(B, T, x));
  slstm_model_config defaults;
  slstm_model_config_init(&defaults);   // canonical_model's: forget_bias as initialised
  const double forget_bias = defaults.forget_bias;
  const auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  double worst = 0.0;
  for (std::int64_t row = 0; row < B; ++row) {
    for (std::int64_t u = 0; u < H; ++u) {
      double c = 0.0;
      for (std::int64_t step = 0; step < T; ++step) {
        c = sigmoid(forget_bias) * c + sigmoid(20.0) * std::tanh(bg[u]);
        const double h = std::tanh(c) * sigmoid(20.0);
        const float got = r.output[(row * T + step) * H + u];
        worst = std::fmax(worst, std::fabs(got - h) / std::fabs(h));
      }
      const float got_c = r.final_state[row * H + u];   // the state: c block, then h block
      worst = std::fmax(worst, std::fabs(got_c - c) / std::fabs(c));
      CHECK(r.final_state[B * H + row * H + u] == r.output[(row * T + T - 1) * H + u]);
    }
  }
  INFO("worst relative error " << worst);
  CHECK(worst <= 16.0 / 16777216.0);
}

// The same for a GRU layer's candidate n = tanh(...), of either reset: zero weights, z
// saturated shut (sigma(-20) ~ 2e-9), so h = (1 - z) n + z h_prev is tanh(b_n) to float32's
// precision at both steps, |b_n| from 1e-6 to 1e-2.
TEST_CASE("a tiny GRU candidate gives h to float32's relative accuracy on every CPU path",
          "[accuracy]") {
  constexpr std::int64_t H = 37, B = 3, T = 2;
  for (bool reset_after : {false, true}) {
    INFO("reset_after " << reset_after);
    std::vector<float> bx(3 * H, 0.0f), bh(3 * H, 0.0f), wx(3 * H, 0.0f), wh(3 * H * H, 0.0f);
    std::vector<double> bn(H);
    for (std::int64_t u = 0; u < H; ++u) {
      bx[1 * H + u] = -20.0f;   // z
      bx[2 * H + u] = tiny_value(u, H);   // n
      bn[u] = static_cast<double>(bx[2 * H + u]);
    }
    const slstm_layer_config layer = t::gru_layer(H, reset_after);
    slstm_model_config cfg;
    slstm_model_config_init(&cfg);
    cfg.input_size = 1;
    cfg.num_layers = 1;
    cfg.layers = &layer;
    const slstm_tensor ts[4] = {{wx.data(), 2, {3 * H, 1}}, {wh.data(), 2, {3 * H, H}},
                                {bx.data(), 1, {3 * H}}, {bh.data(), 1, {3 * H}}};
    slstm_model* raw = nullptr;
    INFO(slstm_last_error());
    REQUIRE(slstm_model_create(&cfg, SLSTM_FORMAT_CANONICAL, ts, 4, &raw) == SLSTM_OK);
    const t::Model m(raw);
    t::Session s = t::session(m.get(), B, T);
    const std::vector<float> x(B * T, 0.5f);
    const t::Run r = t::forward_ok(s.get(), m.get(), t::call_of(B, T, x));
    const double z = 1.0 / (1.0 + std::exp(20.0));
    double worst = 0.0;
    for (std::int64_t row = 0; row < B; ++row) {
      for (std::int64_t u = 0; u < H; ++u) {
        double h = 0.0;
        for (std::int64_t step = 0; step < T; ++step) {
          h = (1.0 - z) * std::tanh(bn[u]) + z * h;
          const float got = r.output[(row * T + step) * H + u];
          worst = std::fmax(worst, std::fabs(got - h) / std::fabs(h));
        }
      }
    }
    INFO("worst relative error " << worst);
    CHECK(worst <= 16.0 / 16777216.0);
  }
}
