// Hostile input (issue 8): size arithmetic that overflows, maxima too large to allocate, and
// NaN / Inf in inputs and weights.  The library must answer with a status (never crash, hang
// or leak) and compute non-finite values as IEEE 754 arithmetic on the documented formulas
// does.  The sanitizer build runs these too (ASan's leak check covers "leaks nothing").
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

constexpr std::int64_t kBig40 = std::int64_t{1} << 40;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

slstm_model* const kSentinelModel = reinterpret_cast<slstm_model*>(0x1);
slstm_session* const kSentinelSession = reinterpret_cast<slstm_session*>(0x1);

slstm_model_config config(const std::vector<std::int64_t>& hidden, std::int64_t D,
                          float forget_bias = 1.0f) {
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = D;
  cfg.num_layers = static_cast<std::int32_t>(hidden.size());
  cfg.hidden_sizes = hidden.data();
  cfg.forget_bias = forget_bias;
  return cfg;
}

void expect_status(slstm_status got, slstm_status want) {
  INFO("last error: " << slstm_last_error());
  CHECK(got == want);
}

// A canonical-format model from explicit weights, layer by layer (W_x, W_h, b).
struct CanonicalWeights {
  std::vector<std::vector<float>> w_x, w_h, b;
};

// The canonical tensors of weights `w` (borrowed: `w` must outlive them).
std::vector<slstm_tensor> canonical_tensors(std::int64_t D, const std::vector<std::int64_t>& hidden,
                                            const CanonicalWeights& w) {
  std::vector<slstm_tensor> ts;
  std::int64_t in = D;
  for (std::size_t l = 0; l < hidden.size(); ++l) {
    const std::int64_t h = hidden[l];
    ts.push_back({w.w_x[l].data(), 2, {4 * h, in, 0, 0}});
    ts.push_back({w.w_h[l].data(), 2, {4 * h, h, 0, 0}});
    ts.push_back({w.b[l].data(), 1, {4 * h, 0, 0, 0}});
    in = h;
  }
  return ts;
}

t::Model canonical_model(std::int64_t D, const std::vector<std::int64_t>& hidden,
                         const CanonicalWeights& w, float forget_bias) {
  const std::vector<slstm_tensor> ts = canonical_tensors(D, hidden, w);
  const slstm_model_config cfg = config(hidden, D, forget_bias);
  slstm_model* m = nullptr;
  const slstm_status st = slstm_model_create(&cfg, SLSTM_FORMAT_CANONICAL, ts.data(), ts.size(), &m);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return t::Model(m);
}

// Random canonical weights (deterministic), to be edited by a test.
CanonicalWeights random_weights(std::int64_t D, const std::vector<std::int64_t>& hidden,
                                std::uint64_t seed) {
  CanonicalWeights w;
  std::int64_t in = D;
  for (std::size_t l = 0; l < hidden.size(); ++l) {
    const auto h = static_cast<std::size_t>(hidden[l]);
    w.w_x.push_back(t::random_vector(4 * h * static_cast<std::size_t>(in), seed + 3 * l, -0.5f, 0.5f));
    w.w_h.push_back(t::random_vector(4 * h * h, seed + 3 * l + 1, -0.5f, 0.5f));
    w.b.push_back(t::random_vector(4 * h, seed + 3 * l + 2, -0.5f, 0.5f));
    in = hidden[l];
  }
  return w;
}

}  // namespace

// ---- size arithmetic ----------------------------------------------------------------------

TEST_CASE("importing weights in any format whose 4*H*I overflows reports a size overflow",
          "[reliability][overflow]") {
  // Both extents within SLSTM_MAX_EXTENT: 4 * 2^30 * 2^40 floats overflow size_t.
  const std::vector<std::int64_t> hidden = {std::int64_t{1} << 30};
  const slstm_model_config cfg = config(hidden, SLSTM_MAX_EXTENT);
  std::vector<float> small(16, 0.0f);
  std::vector<slstm_tensor> dummies(4, slstm_tensor{small.data(), 1, {16, 0, 0, 0}});
  const slstm_weight_format formats[] = {SLSTM_FORMAT_CANONICAL, SLSTM_FORMAT_TF,
                                         SLSTM_FORMAT_PYTORCH,   SLSTM_FORMAT_KERAS,
                                         SLSTM_FORMAT_KERAS_CUDNN, SLSTM_FORMAT_ONNX,
                                         SLSTM_FORMAT_CUDNN};
  for (slstm_weight_format f : formats) {
    std::int32_t per_layer = 0;
    REQUIRE(slstm_format_tensors_per_layer(f, &per_layer) == SLSTM_OK);
    slstm_model* m = kSentinelModel;
    INFO("format " << f);
    expect_status(slstm_model_create(&cfg, f, dummies.data(), static_cast<size_t>(per_layer), &m),
                  SLSTM_ERR_SIZE_OVERFLOW);
    CHECK(m == kSentinelModel);
  }
}

TEST_CASE("weights that fit per layer but overflow summed over the layers report a size overflow",
          "[reliability][overflow]") {
  // Each layer: 4 * 2^29 * 2^29 = 2^60 floats of W_h (2^62 bytes, representable); the sum of
  // two such layers' bytes is not.
  const std::vector<std::int64_t> hidden = {std::int64_t{1} << 29, std::int64_t{1} << 29};
  const slstm_model_config cfg = config(hidden, std::int64_t{1} << 29);
  slstm_model* m = kSentinelModel;
  expect_status(slstm_model_create_random(&cfg, 1, 0.0f, &m), SLSTM_ERR_SIZE_OVERFLOW);
  CHECK(m == kSentinelModel);
}

TEST_CASE("a packed state whose size overflows only summed over the layers reports a size overflow",
          "[reliability][overflow]") {
  // 2 * 2^59 * 4 = 2^62 floats per layer fits; four layers' 2^64 does not.
  t::Model m = t::random_model(3, {4, 4, 4, 4}, 11);
  const std::int64_t batch = std::int64_t{1} << 59;
  std::size_t n = 77;
  expect_status(slstm_model_state_count(m.get(), batch, &n), SLSTM_ERR_SIZE_OVERFLOW);
  CHECK(n == 77);
  // The offset of the FIRST layer fits, but the state it indexes into does not.
  expect_status(slstm_model_state_offset(m.get(), batch, 0, SLSTM_STATE_H, &n),
                SLSTM_ERR_SIZE_OVERFLOW);
  CHECK(n == 77);
}

TEST_CASE("a packed state whose float count fits size_t but whose bytes do not is a size overflow",
          "[reliability][overflow]") {
  // Layers of H = 3 and 2: 10 floats per row. 2^60 rows: 10 * 2^60 floats fit in size_t, their
  // 40 * 2^60 bytes do not (a caller computing count * sizeof(float) would wrap).
  t::Model m = t::random_model(3, {3, 2}, 13);
  const std::int64_t batch = std::int64_t{1} << 60;
  std::size_t n = 77;
  expect_status(slstm_model_state_count(m.get(), batch, &n), SLSTM_ERR_SIZE_OVERFLOW);
  CHECK(n == 77);
  expect_status(slstm_model_state_offset(m.get(), batch, 1, SLSTM_STATE_H, &n),
                SLSTM_ERR_SIZE_OVERFLOW);
  CHECK(n == 77);
  // 2^58 rows: 10 * 2^58 floats, 40 * 2^58 < 2^64 bytes: a state that can be described.
  REQUIRE(slstm_model_state_count(m.get(), std::int64_t{1} << 58, &n) == SLSTM_OK);
  CHECK(n == std::size_t{10} << 58);
}

TEST_CASE("session maxima whose packed state overflows in bytes report a size overflow",
          "[reliability][overflow]") {
  // max_batch x max_time x widest x 4 fits in bytes (2^57 * 4 * 4 * 4 = 2^63) but the packed
  // state, 2 * 2^57 * (10 * 4) floats = 80 * 2^57, does not fit in bytes.
  t::Model m = t::random_model(4, std::vector<std::int64_t>(10, 4), 12);
  slstm_session_options o = t::options(std::int64_t{1} << 57, 1);
  slstm_session* s = kSentinelSession;
  expect_status(slstm_session_create(m.get(), &o, &s), SLSTM_ERR_SIZE_OVERFLOW);
  CHECK(s == kSentinelSession);
}

TEST_CASE("session maxima whose batch x time x width overflows report a size overflow",
          "[reliability][overflow]") {
  t::Model m = t::random_model(4, {4}, 13);
  const std::int64_t combos[][2] = {{std::numeric_limits<std::int64_t>::max(), 1},
                                    {1, std::numeric_limits<std::int64_t>::max()},
                                    {std::int64_t{1} << 31, std::int64_t{1} << 31}};
  for (const auto& c : combos) {
    INFO("max_batch " << c[0] << " max_time " << c[1]);
    slstm_session_options o = t::options(c[0], c[1]);
    slstm_session* s = kSentinelSession;
    expect_status(slstm_session_create(m.get(), &o, &s), SLSTM_ERR_SIZE_OVERFLOW);
    CHECK(s == kSentinelSession);
  }
}

TEST_CASE("an ONNX peephole tensor whose element count overflows reports a size overflow",
          "[reliability][overflow]") {
  float zeros[4] = {0, 0, 0, 0};
  slstm_tensor p{zeros, 3, {kBig40, kBig40, kBig40, 0}};
  slstm_onnx_lstm_node node;
  slstm_onnx_lstm_node_init(&node);
  node.peepholes = &p;
  expect_status(slstm_onnx_check_node(&node), SLSTM_ERR_SIZE_OVERFLOW);
  p.shape[0] = -4;  // a negative extent is not a size at all
  expect_status(slstm_onnx_check_node(&node), SLSTM_ERR_INVALID_ARGUMENT);
}

TEST_CASE("a model file whose tensor byte size overflows is rejected before any allocation",
          "[reliability][overflow][model_file]") {
  // Architecture 2^40 x [2^40]: W_x is [2^42, 2^40] F64, 2^85 bytes.
  const std::string json =
      R"({"__metadata__":{"format":"stacklstm","format_version":"1","input_size":"1099511627776",)"
      R"("hidden_sizes":"1099511627776","forget_bias":"1"},)"
      R"("layers.0.W_x":{"dtype":"F64","shape":[4398046511104,1099511627776],"data_offsets":[0,8]},)"
      R"("layers.0.W_h":{"dtype":"F64","shape":[4398046511104,1099511627776],"data_offsets":[8,16]},)"
      R"("layers.0.b":{"dtype":"F64","shape":[4398046511104],"data_offsets":[16,24]}})";
  std::vector<unsigned char> image(8);
  const std::uint64_t n = json.size();
  for (int k = 0; k < 8; ++k) image[k] = static_cast<unsigned char>(n >> (8 * k));
  image.insert(image.end(), json.begin(), json.end());
  image.resize(image.size() + 24, 0);
  slstm_model* m = kSentinelModel;
  expect_status(slstm_model_load_memory(image.data(), image.size(), &m), SLSTM_ERR_SIZE_OVERFLOW);
  CHECK(m == kSentinelModel);
}

// ---- resource exhaustion ------------------------------------------------------------------

TEST_CASE("a session whose declared max_batch cannot be allocated reports out of memory and "
          "leaves existing sessions usable",
          "[reliability][memory]") {
  t::Model m = t::random_model(3, {5, 4}, 21);
  t::Session good = t::session(m.get(), 2, 3);
  const std::vector<float> x = t::random_vector(2 * 3 * 3, 22);
  t::Call call = t::call_of(2, 3, x);
  const t::Run before = t::forward_ok(good.get(), m.get(), call);

  // 2^50 rows of packed state: 2^50 * 2 * 9 floats (~2^56 bytes), representable but far
  // beyond any machine (and beyond ASan's 2^40-byte allocation limit).
  slstm_session_options o = t::options(std::int64_t{1} << 50, 1);
  const slstm_status want = SLSTM_ERR_OUT_OF_MEMORY;
  for (int attempt = 0; attempt < 3; ++attempt) {  // repeatable: nothing half-built remains
    slstm_session* s = kSentinelSession;
    expect_status(slstm_session_create(m.get(), &o, &s), want);
    CHECK(s == kSentinelSession);
  }
  const t::Run after = t::forward_ok(good.get(), m.get(), call);
  CHECK(t::bitwise_equal(after.output.data(), before.output.data(), before.output.size()));
  CHECK(t::bitwise_equal(after.final_state.data(), before.final_state.data(),
                      before.final_state.size()));
}

TEST_CASE("a session with an absurd max_time is either created and usable or reports out of "
          "memory",
          "[reliability][memory]") {
  // The reference path allocates nothing per time step; the fast path sizes its input
  // projections for max_batch x max_time rows (2^45 x 64 floats here) and must fail cleanly.
  t::Model m = t::random_model(3, {5}, 23);
  slstm_session_options o = t::options(1, std::int64_t{1} << 45);
  slstm_session* s = kSentinelSession;
  const slstm_status st = slstm_session_create(m.get(), &o, &s);
  INFO(slstm_last_error());
  const slstm_status refusal = SLSTM_ERR_OUT_OF_MEMORY;
  REQUIRE((st == SLSTM_OK || st == refusal));
  if (st == refusal) {
    CHECK(s == kSentinelSession);
    return;
  }
  t::Session session(s);
  const std::vector<float> x = t::random_vector(4 * 3, 24);
  t::Call call;
  call.time = 4;
  call.input = &x;
  const t::Run r = t::forward_ok(session.get(), m.get(), call);
  CHECK(t::count_poison(r.output) == 0);
}

TEST_CASE("after an out-of-memory failure the next model and session creation succeed",
          "[reliability][memory]") {
  const std::vector<std::int64_t> h = {std::int64_t{1} << 16};
  const slstm_model_config huge = config(h, SLSTM_MAX_EXTENT);  // 2^60 bytes of W_x
  slstm_model* m = kSentinelModel;
  expect_status(slstm_model_create_random(&huge, 1, 0.0f, &m), SLSTM_ERR_OUT_OF_MEMORY);
  CHECK(m == kSentinelModel);
  t::Model ok = t::random_model(3, {4}, 25);
  t::Session s = t::session(ok.get(), 1, 1);
  CHECK(s);
}

// ---- NaN and Inf --------------------------------------------------------------------------

TEST_CASE("a NaN in one input element makes that row NaN from that step on and nothing else",
          "[reliability][nan]") {
  constexpr std::int64_t B = 3, T = 6, D = 3;
  t::Model m = t::random_model(D, {5, 4}, 31);
  t::Session s = t::session(m.get(), B, T);
  const std::vector<float> clean = t::random_vector(B * T * D, 32);
  std::vector<float> dirty = clean;
  constexpr std::int64_t nb = 1, nt = 2;
  dirty[(nb * T + nt) * D + 0] = kNaN;  // batch-major [B, T, D]
  t::Call call = t::call_of(B, T, clean);
  const t::Run a = t::forward_ok(s.get(), m.get(), call);
  call.input = &dirty;
  const t::Run b = t::forward_ok(s.get(), m.get(), call);
  constexpr std::int64_t H = 4;
  std::size_t nan_where_expected = 0, finite_elsewhere_equal = 0, expected_nan = 0, other = 0;
  for (std::int64_t bb = 0; bb < B; ++bb) {
    for (std::int64_t tt = 0; tt < T; ++tt) {
      for (std::int64_t u = 0; u < H; ++u) {
        const std::size_t k = static_cast<std::size_t>((bb * T + tt) * H + u);
        if (bb == nb && tt >= nt) {
          ++expected_nan;
          if (std::isnan(b.output[k])) ++nan_where_expected;
        } else {
          ++other;
          if (t::bitwise_equal(&a.output[k], &b.output[k], 1)) ++finite_elsewhere_equal;
        }
      }
    }
  }
  CHECK(nan_where_expected == expected_nan);
  CHECK(finite_elsewhere_equal == other);
  // Final state: row nb is NaN in every layer's c and h, the other rows are untouched.
  for (std::int32_t l = 0; l < 2; ++l) {
    std::int64_t hl = 0;
    REQUIRE(slstm_model_hidden_size(m.get(), l, &hl) == SLSTM_OK);
    for (slstm_state_part part : {SLSTM_STATE_C, SLSTM_STATE_H}) {
      std::size_t off = 0;
      REQUIRE(slstm_model_state_offset(m.get(), B, l, part, &off) == SLSTM_OK);
      for (std::int64_t bb = 0; bb < B; ++bb) {
        for (std::int64_t u = 0; u < hl; ++u) {
          const std::size_t k = off + static_cast<std::size_t>(bb * hl + u);
          INFO("layer " << l << " part " << part << " row " << bb << " unit " << u);
          if (bb == nb) {
            CHECK(std::isnan(b.final_state[k]));
          } else {
            CHECK(t::bitwise_equal(&a.final_state[k], &b.final_state[k], 1));
          }
        }
      }
    }
  }
}

TEST_CASE("NaN and Inf in the padding past a row's sequence length are never read",
          "[reliability][nan][lengths]") {
  constexpr std::int64_t B = 2, T = 5, D = 3;
  t::Model m = t::random_model(D, {6, 4}, 33);
  t::Session s = t::session(m.get(), B, T);
  const std::vector<float> clean = t::random_vector(B * T * D, 34);
  std::vector<float> dirty = clean;
  const std::vector<std::int32_t> lengths = {2, 5};
  for (std::int64_t tt = 2; tt < T; ++tt) {  // row 0's padded steps: NaN, +Inf, -Inf
    for (std::int64_t d = 0; d < D; ++d) {
      dirty[static_cast<std::size_t>((0 * T + tt) * D + d)] = tt == 2 ? kNaN : (tt == 3 ? kInf : -kInf);
    }
  }
  t::Call call = t::call_of(B, T, clean);
  call.lengths = &lengths;
  const t::Run a = t::forward_ok(s.get(), m.get(), call);
  call.input = &dirty;
  const t::Run b = t::forward_ok(s.get(), m.get(), call);
  CHECK(t::bitwise_equal(a.output.data(), b.output.data(), a.output.size()));
  CHECK(t::bitwise_equal(a.final_state.data(), b.final_state.data(), a.final_state.size()));
}


namespace {
// slstm_model_create's status and message for canonical weights `w`.
slstm_status create_canonical(std::int64_t D, const std::vector<std::int64_t>& hidden,
                              const CanonicalWeights& w) {
  const std::vector<slstm_tensor> ts = canonical_tensors(D, hidden, w);
  const slstm_model_config cfg = config(hidden, D, 1.0f);
  slstm_model* m = kSentinelModel;
  const slstm_status st =
      slstm_model_create(&cfg, SLSTM_FORMAT_CANONICAL, ts.data(), ts.size(), &m);
  if (st == SLSTM_OK) slstm_model_destroy(m);
  if (st != SLSTM_OK) CHECK(m == kSentinelModel);
  return st;
}
}  // namespace

// Non-finite weights are refused where a model is made, so that every model that exists can
// be saved and loaded again (the model file admits finite values only).
TEST_CASE("a NaN weight is refused at model creation, naming the tensor and the element",
          "[reliability][nan]") {
  const std::vector<std::int64_t> hidden = {4, 3};
  CanonicalWeights w = random_weights(3, hidden, 35);
  w.w_h[1][7] = kNaN;  // layer 1's W_h, tensors[4]
  CHECK(create_canonical(3, hidden, w) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()),
             Catch::Contains("tensors[4] (layer 1 W_h): element 7 is NaN"));
}

TEST_CASE("an infinite weight or bias is refused at model creation", "[reliability][inf]") {
  const std::vector<std::int64_t> hidden = {3, 2};
  CanonicalWeights w = random_weights(2, hidden, 37);
  w.w_x[0][5] = -kInf;
  CHECK(create_canonical(2, hidden, w) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()),
             Catch::Contains("tensors[0] (layer 0 W_x): element 5 is infinite"));
  w = random_weights(2, hidden, 37);
  w.b[1][0] = kInf;
  CHECK(create_canonical(2, hidden, w) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Catch::Contains("tensors[5] (layer 1 b)"));
}

TEST_CASE("a format's two biases whose sum overflows float32 are refused at model creation",
          "[reliability][inf]") {
  // PyTorch: b = bias_ih + bias_hh, each finite, their sum not.
  const std::int64_t D = 2, H = 1;
  const std::vector<std::int64_t> hidden = {H};
  std::vector<float> wih(4 * H * D, 0.1f), whh(4 * H * H, 0.1f), bih(4 * H, 0.0f), bhh(4 * H, 0.0f);
  bih[2] = std::numeric_limits<float>::max();
  bhh[2] = std::numeric_limits<float>::max();
  const slstm_tensor ts[4] = {{wih.data(), 2, {4 * H, D, 0, 0}},
                              {whh.data(), 2, {4 * H, H, 0, 0}},
                              {bih.data(), 1, {4 * H, 0, 0, 0}},
                              {bhh.data(), 1, {4 * H, 0, 0, 0}}};
  const slstm_model_config cfg = config(hidden, D, 0.0f);
  slstm_model* m = kSentinelModel;
  CHECK(slstm_model_create(&cfg, SLSTM_FORMAT_PYTORCH, ts, 4, &m) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()),
             Catch::Contains("bias_ih and bias_hh, and bias_ih[2] + bias_hh[2] overflows"));
  CHECK(m == kSentinelModel);
  bhh[2] = -1.0f;  // the largest finite bias is fine
  REQUIRE(slstm_model_create(&cfg, SLSTM_FORMAT_PYTORCH, ts, 4, &m) == SLSTM_OK);
  slstm_model_destroy(m);
}

TEST_CASE("exporting a forget_bias that overflows the folded bias is refused and writes nothing",
          "[reliability][inf]") {
  const std::int64_t D = 2, H = 2;
  const std::vector<std::int64_t> hidden = {H};
  CanonicalWeights w = random_weights(D, hidden, 39);
  w.b[0][H + 1] = std::numeric_limits<float>::max();  // f block, unit 1
  std::vector<slstm_tensor> ts = {{w.w_x[0].data(), 2, {4 * H, D, 0, 0}},
                                  {w.w_h[0].data(), 2, {4 * H, H, 0, 0}},
                                  {w.b[0].data(), 1, {4 * H, 0, 0, 0}}};
  const slstm_model_config cfg = config(hidden, D, std::numeric_limits<float>::max());
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create(&cfg, SLSTM_FORMAT_CANONICAL, ts.data(), 3, &raw) == SLSTM_OK);
  t::Model m(raw);
  std::vector<float> wih = t::poisoned(4 * H * D), whh = t::poisoned(4 * H * H),
                     bih = t::poisoned(4 * H), bhh = t::poisoned(4 * H);
  const slstm_tensor_out out[4] = {{wih.data(), 2, {4 * H, D, 0, 0}},
                                   {whh.data(), 2, {4 * H, H, 0, 0}},
                                   {bih.data(), 1, {4 * H, 0, 0, 0}},
                                   {bhh.data(), 1, {4 * H, 0, 0, 0}}};
  CHECK(slstm_model_export(m.get(), SLSTM_FORMAT_PYTORCH, out, 4) == SLSTM_ERR_OUT_OF_RANGE);
  CHECK_THAT(std::string(slstm_last_error()), Catch::Contains("layer 0 unit 1"));
  CHECK(t::count_poison(wih) == wih.size());
  CHECK(t::count_poison(bih) == bih.size());
  // Formats with a forget_bias of their own keep it apart: nothing to overflow.
  std::vector<float> k(static_cast<std::size_t>((D + H) * 4 * H)), b(4 * H);
  const slstm_tensor_out tf[2] = {{k.data(), 2, {D + H, 4 * H, 0, 0}},
                                  {b.data(), 1, {4 * H, 0, 0, 0}}};
  CHECK(slstm_model_export(m.get(), SLSTM_FORMAT_TF, tf, 2) == SLSTM_OK);
}

TEST_CASE("infinite pre-activations saturate the gates as IEEE arithmetic says",
          "[reliability][inf]") {
  // One unit, every gate's input weight 1, no recurrence, no bias, forget_bias 0, c_0 = 0.5.
  //   x = +Inf: i = f = o = sigma(+Inf) = 1, g = tanh(+Inf) = 1: c = 0.5 + 1 = 1.5, h = tanh(1.5)
  //   x = -Inf: i = f = o = sigma(-Inf) = 0, g = -1:            c = 0,           h = 0
  const std::vector<std::int64_t> hidden = {1};
  CanonicalWeights w;
  w.w_x = {{1, 1, 1, 1}};
  w.w_h = {{0, 0, 0, 0}};
  w.b = {{0, 0, 0, 0}};
  t::Model m = canonical_model(1, hidden, w, 0.0f);
  t::Session s = t::session(m.get(), 1, 1);
  const std::vector<float> init = {0.5f, 0.0f};  // c, h
  struct Case {
    float x, c, h;
  };
  for (const Case& c : {Case{kInf, 1.5f, std::tanh(1.5f)}, Case{-kInf, 0.0f, 0.0f}}) {
    INFO("x = " << c.x);
    const std::vector<float> x = {c.x};
    t::Call call;
    call.input = &x;
    call.initial_state = &init;
    const t::Run r = t::forward_ok(s.get(), m.get(), call);
    CHECK(r.final_state[0] == Approx(c.c).margin(1e-6));
    CHECK(r.final_state[1] == Approx(c.h).margin(1e-6));
    CHECK(r.output[0] == Approx(c.h).margin(1e-6));
  }
}

TEST_CASE("huge finite inputs saturate the gates without producing NaN", "[reliability][inf]") {
  constexpr std::int64_t B = 3, T = 7, D = 4;
  t::Model m = t::random_model(D, {18, 5}, 39);
  t::Session s = t::session(m.get(), B, T);
  std::vector<float> x = t::random_vector(B * T * D, 40);
  for (float& v : x) v = v < 0 ? -1e30f : 1e30f;
  t::Call call = t::call_of(B, T, x);
  const t::Run r = t::forward_ok(s.get(), m.get(), call);
  std::size_t bounded = 0;
  for (float v : r.output) bounded += (v >= -1.0f && v <= 1.0f) ? 1 : 0;  // false for NaN
  CHECK(bounded == r.output.size());
}

TEST_CASE("a NaN initial state propagates to the final state of its row only", "[reliability][nan]") {
  constexpr std::int64_t B = 2, T = 3, D = 2;
  t::Model m = t::random_model(D, {17, 3}, 41);
  t::Session s = t::session(m.get(), B, T);
  const std::vector<float> x = t::random_vector(B * T * D, 42);
  const std::size_t n_state = t::state_count(m.get(), B);
  std::vector<float> init = t::random_vector(n_state, 43);
  std::size_t off = 0;
  REQUIRE(slstm_model_state_offset(m.get(), B, 0, SLSTM_STATE_C, &off) == SLSTM_OK);
  init[off + 17 + 4] = kNaN;  // layer 0 c, row 1, unit 4
  t::Call call = t::call_of(B, T, x);
  call.initial_state = &init;
  const t::Run r = t::forward_ok(s.get(), m.get(), call);
  constexpr std::int64_t H = 3;
  for (std::int64_t b = 0; b < B; ++b) {
    std::size_t nans = 0;
    for (std::int64_t k = 0; k < T * H; ++k) nans += std::isnan(r.output[b * T * H + k]) ? 1 : 0;
    INFO("row " << b);
    CHECK(nans == (b == 1 ? static_cast<std::size_t>(T * H) : 0));
  }
}
