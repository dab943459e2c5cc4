// Numbers: TF's own unit-test vector, and fixtures computed independently in float64 by
// NumPy, by real TensorFlow (dynamic_rnn) and by real PyTorch (nn.LSTM) — see
// tests/fixtures/gen_fixtures.py.
#include <cmath>

#include "support.hpp"

namespace {

// Runs a fixture through the library and compares with its float64 expectations.
void check_fixture(const std::string& name) {
  const t::Fixture f = t::load_fixture(name);
  INFO("fixture " << name);
  t::Model m = t::model_from_fixture(f);
  const t::Run r = t::run_fixture(f, m.get());
  CHECK(t::rel_err(r.output, f.at("output")) <= 1e-5);
  CHECK(t::rel_err(r.final_state, f.at("final_state")) <= 1e-5);
  // Rows past their length are exactly zero, not merely small.
  if (f.has("lengths")) {
    const std::int64_t H = f.hidden_sizes.back();
    for (std::int64_t b = 0; b < f.batch; ++b) {
      for (std::int64_t tt = static_cast<std::int64_t>(f.at("lengths")[b]); tt < f.time; ++tt) {
        const std::int64_t row = f.time_major ? tt * f.batch + b : b * f.time + tt;
        for (std::int64_t u = 0; u < H; ++u) REQUIRE(r.output[row * H + u] == 0.0f);
      }
    }
  }
}

void check_fixtures(const std::string& prefix) {
  const auto names = t::fixture_names(prefix);
  REQUIRE(!names.empty());
  for (const auto& n : names) {
    DYNAMIC_SECTION(n) { check_fixture(n); }
  }
}

}  // namespace

TEST_CASE("TF's published two-layer BasicLSTMCell vector is reproduced to 1e-6", "[golden]") {
  // tensorflow/python/kernel_tests/rnn_cell_test.py: 2 x BasicLSTMCell(2), every kernel entry
  // 0.5, bias 0, forget_bias 1, x = [[1, 1]], every c and h = [[0.1, 0.1]].
  const std::vector<std::int64_t> hidden = {2, 2};
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = 2;
  cfg.num_layers = 2;
  cfg.hidden_sizes = hidden.data();
  const std::vector<float> kernel(4 * 8, 0.5f), bias(8, 0.0f);
  slstm_tensor ts[4] = {};
  for (int l = 0; l < 2; ++l) {
    ts[2 * l] = slstm_tensor{kernel.data(), 2, {4, 8, 0, 0}};
    ts[2 * l + 1] = slstm_tensor{bias.data(), 1, {8, 0, 0, 0}};
  }
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create(&cfg, SLSTM_FORMAT_TF, ts, 4, &raw) == SLSTM_OK);
  t::Model m(raw);
  t::Session s = t::session(m.get(), 1, 1);
  const std::vector<float> x = {1.0f, 1.0f}, state(8, 0.1f);
  std::vector<float> out = t::poisoned(2), next = t::poisoned(8);
  REQUIRE(slstm_session_step(s.get(), 1, x.data(), 2, state.data(), 8, out.data(), 2,
                             next.data(), 8) == SLSTM_OK);
  // packed state: c0 h0 c1 h1, each [1, 2]
  const double want[4] = {0.68967271, 0.44848421, 0.39897051, 0.24024698};
  for (int part = 0; part < 4; ++part) {
    for (int u = 0; u < 2; ++u) CHECK(std::fabs(next[part * 2 + u] - want[part]) <= 1e-6);
  }
  for (int u = 0; u < 2; ++u) CHECK(out[u] == next[6 + u]);
}

TEST_CASE("sequences match the float64 NumPy reference (both majors, lengths, initial state)",
          "[golden]") {
  check_fixtures("ref_");
}

TEST_CASE("TF-layout weights reproduce real TensorFlow dynamic_rnn numbers", "[golden][tf]") {
  check_fixtures("tfreal_");
}

TEST_CASE("PyTorch-layout weights reproduce real torch.nn.LSTM numbers", "[golden][pytorch]") {
  check_fixtures("torch_");
}
