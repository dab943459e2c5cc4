// Weight layouts: import/export round trips and the forget_bias bookkeeping.
#include <cmath>

#include "support.hpp"

namespace {

// Buffers and tensor descriptors for exporting `m` in `format`.
struct Exported {
  std::vector<std::vector<float>> data;
  std::vector<slstm_tensor_out> out;
  std::vector<slstm_tensor> in;
};

// Shapes of each layer's tensors in `format` (as the header documents them).
std::vector<std::vector<std::int64_t>> shapes(slstm_weight_format format, std::int64_t I,
                                              std::int64_t H) {
  switch (format) {
    case SLSTM_FORMAT_CANONICAL: return {{4 * H, I}, {4 * H, H}, {4 * H}};
    case SLSTM_FORMAT_TF: return {{I + H, 4 * H}, {4 * H}};
    case SLSTM_FORMAT_PYTORCH: return {{4 * H, I}, {4 * H, H}, {4 * H}, {4 * H}};
    default: FAIL("no shapes for format " << format);
  }
  return {};
}

Exported export_model(const slstm_model* m, slstm_weight_format format) {
  Exported e;
  std::int32_t L = 0;
  REQUIRE(slstm_model_num_layers(m, &L) == SLSTM_OK);
  std::int64_t I = t::input_size(m);
  for (std::int32_t l = 0; l < L; ++l) {
    std::int64_t H = 0;
    REQUIRE(slstm_model_hidden_size(m, l, &H) == SLSTM_OK);
    for (const auto& shape : shapes(format, I, H)) {
      std::size_t n = 1;
      slstm_tensor_out o{};
      o.ndim = static_cast<std::int32_t>(shape.size());
      for (std::size_t d = 0; d < shape.size(); ++d) {
        o.shape[d] = shape[d];
        n *= static_cast<std::size_t>(shape[d]);
      }
      e.data.push_back(t::poisoned(n));
      e.out.push_back(o);
    }
    I = H;
  }
  for (std::size_t k = 0; k < e.out.size(); ++k) {
    e.out[k].data = e.data[k].data();
    slstm_tensor in{};
    in.data = e.data[k].data();
    in.ndim = e.out[k].ndim;
    std::copy(e.out[k].shape, e.out[k].shape + SLSTM_MAX_DIMS, in.shape);
    e.in.push_back(in);
  }
  const slstm_status st = slstm_model_export(m, format, e.out.data(), e.out.size());
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  for (const auto& d : e.data) REQUIRE(t::count_poison(d) == 0);
  return e;
}

t::Model import_model(const std::vector<std::int64_t>& hidden, std::int64_t D, float fb,
                      slstm_weight_format format, const Exported& e) {
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = D;
  cfg.num_layers = static_cast<std::int32_t>(hidden.size());
  cfg.hidden_sizes = hidden.data();
  cfg.forget_bias = fb;
  slstm_model* m = nullptr;
  const slstm_status st = slstm_model_create(&cfg, format, e.in.data(), e.in.size(), &m);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return t::Model(m);
}

// Outputs and final state of `m` on a fixed input.
t::Run run(const slstm_model* m) {
  constexpr std::int64_t B = 3, T = 4;
  t::Session s = t::session(m, B, T);
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * t::input_size(m)), 99);
  const auto init = t::random_vector(t::state_count(m, B), 98);
  t::Call c = t::call_of(B, T, x);
  c.initial_state = &init;
  return t::forward_ok(s.get(), m, c);
}

const std::vector<std::int64_t> kHidden = {5, 3};
constexpr std::int64_t kD = 4;

}  // namespace

TEST_CASE("TF layout: export then import then export is the identity", "[formats][tf]") {
  t::Model m = t::random_model(kD, kHidden, 201, 0.75f);
  const Exported e = export_model(m.get(), SLSTM_FORMAT_TF);
  t::Model back = import_model(kHidden, kD, 0.75f, SLSTM_FORMAT_TF, e);
  const Exported e2 = export_model(back.get(), SLSTM_FORMAT_TF);
  CHECK(e.data == e2.data);
  const Exported c1 = export_model(m.get(), SLSTM_FORMAT_CANONICAL);
  const Exported c2 = export_model(back.get(), SLSTM_FORMAT_CANONICAL);
  CHECK(c1.data == c2.data);  // and the canonical weights are exactly the original ones
}

TEST_CASE("canonical layout: export then import is the identity", "[formats]") {
  t::Model m = t::random_model(kD, kHidden, 202, 1.5f);
  const Exported e = export_model(m.get(), SLSTM_FORMAT_CANONICAL);
  t::Model back = import_model(kHidden, kD, 1.5f, SLSTM_FORMAT_CANONICAL, e);
  CHECK(export_model(back.get(), SLSTM_FORMAT_CANONICAL).data == e.data);
  CHECK(run(back.get()).output == run(m.get()).output);
}

TEST_CASE("TF kernel columns i|j|f|o map to canonical rows i|f|g|o", "[formats][tf]") {
  // One layer, H = 1, I = 1: kernel [2, 4] holds x-row then h-row, columns i, j, f, o.
  const std::vector<std::int64_t> hidden = {1};
  const std::vector<float> kernel = {1, 2, 3, 4,   // x row: i j f o
                                     5, 6, 7, 8};  // h row
  const std::vector<float> bias = {10, 20, 30, 40};
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = 1;
  cfg.num_layers = 1;
  cfg.hidden_sizes = hidden.data();
  const slstm_tensor ts[2] = {{kernel.data(), 2, {2, 4, 0, 0}}, {bias.data(), 1, {4, 0, 0, 0}}};
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create(&cfg, SLSTM_FORMAT_TF, ts, 2, &raw) == SLSTM_OK);
  t::Model m(raw);
  const Exported c = export_model(m.get(), SLSTM_FORMAT_CANONICAL);
  CHECK(c.data[0] == std::vector<float>{1, 3, 2, 4});      // W_x rows i f g o
  CHECK(c.data[1] == std::vector<float>{5, 7, 6, 8});      // W_h
  CHECK(c.data[2] == std::vector<float>{10, 30, 20, 40});  // b
}

TEST_CASE("PyTorch import sums the two biases and sets forget_bias to 0", "[formats][pytorch]") {
  t::Model src = t::random_model(kD, kHidden, 203, 0.0f);
  Exported e = export_model(src.get(), SLSTM_FORMAT_PYTORCH);
  // Split each bias into two non-trivial halves, as PyTorch stores them.
  for (std::size_t l = 0; l < kHidden.size(); ++l) {
    auto& b_ih = e.data[l * 4 + 2];
    auto& b_hh = e.data[l * 4 + 3];
    for (std::size_t r = 0; r < b_ih.size(); ++r) {
      b_hh[r] = 0.25f;
      b_ih[r] -= 0.25f;
    }
  }
  t::Model m = import_model(kHidden, kD, 1.0f /* ignored for PyTorch */, SLSTM_FORMAT_PYTORCH, e);
  float fb = -1.0f;
  REQUIRE(slstm_model_forget_bias(m.get(), &fb) == SLSTM_OK);
  CHECK(fb == 0.0f);
  CHECK(t::rel_err(run(m.get()).output, run(src.get()).output) <= 1e-6);
}

TEST_CASE("PyTorch export folds forget_bias into bias_ih's f block exactly once",
          "[formats][pytorch]") {
  t::Model m = t::random_model(kD, kHidden, 204, 1.0f);
  const Exported tf = export_model(m.get(), SLSTM_FORMAT_CANONICAL);
  const Exported pt = export_model(m.get(), SLSTM_FORMAT_PYTORCH);
  for (std::size_t l = 0; l < kHidden.size(); ++l) {
    const std::size_t H = static_cast<std::size_t>(kHidden[l]);
    const auto& b = tf.data[l * 3 + 2];
    const auto& b_ih = pt.data[l * 4 + 2];
    const auto& b_hh = pt.data[l * 4 + 3];
    for (std::size_t r = 0; r < 4 * H; ++r) {
      const bool f_block = r >= H && r < 2 * H;
      CHECK(b_ih[r] == b[r] + (f_block ? 1.0f : 0.0f));
      CHECK(b_hh[r] == 0.0f);
    }
  }
  // Loading the export into a PyTorch-layout model gives the original numbers.
  t::Model back = import_model(kHidden, kD, 1.0f, SLSTM_FORMAT_PYTORCH, pt);
  CHECK(t::rel_err(run(back.get()).output, run(m.get()).output) <= 1e-6);
  CHECK(t::rel_err(run(back.get()).final_state, run(m.get()).final_state) <= 1e-6);
}

TEST_CASE("the same seed gives the same random model, another seed another one",
          "[formats][random]") {
  t::Model a = t::random_model(kD, kHidden, 7), b = t::random_model(kD, kHidden, 7);
  t::Model c = t::random_model(kD, kHidden, 8);
  const auto ea = export_model(a.get(), SLSTM_FORMAT_CANONICAL);
  CHECK(ea.data == export_model(b.get(), SLSTM_FORMAT_CANONICAL).data);
  CHECK(ea.data != export_model(c.get(), SLSTM_FORMAT_CANONICAL).data);
  // scale 0 means uniform in +-1/sqrt(H) per layer.
  for (std::size_t l = 0; l < kHidden.size(); ++l) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(kHidden[l]));
    for (std::size_t k = 0; k < 3; ++k)
      for (float v : ea.data[l * 3 + k]) REQUIRE(std::fabs(v) <= bound);
  }
}

TEST_CASE("the model reports its architecture and forget_bias", "[formats]") {
  t::Model m = t::random_model(kD, kHidden, 9, 0.5f);
  std::int32_t L = 0;
  std::int64_t D = 0, H1 = 0;
  float fb = 0.0f;
  REQUIRE(slstm_model_num_layers(m.get(), &L) == SLSTM_OK);
  REQUIRE(slstm_model_input_size(m.get(), &D) == SLSTM_OK);
  REQUIRE(slstm_model_hidden_size(m.get(), 1, &H1) == SLSTM_OK);
  REQUIRE(slstm_model_forget_bias(m.get(), &fb) == SLSTM_OK);
  CHECK(L == 2);
  CHECK(D == kD);
  CHECK(H1 == 3);
  CHECK(fb == 0.5f);
  std::int32_t per_layer = 0;
  REQUIRE(slstm_format_tensors_per_layer(SLSTM_FORMAT_TF, &per_layer) == SLSTM_OK);
  CHECK(per_layer == 2);
  REQUIRE(slstm_format_tensors_per_layer(SLSTM_FORMAT_PYTORCH, &per_layer) == SLSTM_OK);
  CHECK(per_layer == 4);
  REQUIRE(slstm_format_tensors_per_layer(SLSTM_FORMAT_CANONICAL, &per_layer) == SLSTM_OK);
  CHECK(per_layer == 3);
}
