// Layers beyond BasicLSTMCell through the C API (docs/cells.md): the layer description and its
// checks, the packed-state pieces, what each path runs, and the structural identities of
// directions and residual connections (reverse = forward on the reversed valid part,
// bidirectional = both halves side by side, residual = output + input).  The numbers of each
// cell against the real frameworks: tests/test_cells_golden.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

constexpr auto& lstm = t::lstm_layer;
constexpr auto& gru = t::gru_layer;
using t::with_direction;

slstm_model_config config_of(std::int64_t input, const std::vector<slstm_layer_config>& layers,
                             float forget_bias = 1.0f) {
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = input;
  c.num_layers = static_cast<std::int32_t>(layers.size());
  c.layers = layers.data();
  c.forget_bias = forget_bias;
  return c;
}

slstm_status try_random(std::int64_t input, const std::vector<slstm_layer_config>& layers,
                        t::Model* out, std::uint64_t seed = 1) {
  const slstm_model_config c = config_of(input, layers);
  slstm_model* m = nullptr;
  const slstm_status s = slstm_model_create_random(&c, seed, 0.0f, &m);
  out->reset(m);
  return s;
}

t::Model random_layers(std::int64_t input, const std::vector<slstm_layer_config>& layers,
                       std::uint64_t seed = 1) {
  return t::random_stack(input, layers, seed);
}

// A CPU session; with `status`, its creation's status is returned there (else required OK).
t::Session session_on(const slstm_model* m, slstm_cpu_path path, std::int64_t max_batch = 4,
                      std::int64_t max_time = 8, std::int32_t num_threads = 0,
                      const char* config = nullptr,
                      std::int32_t precision = SLSTM_PRECISION_DEFAULT,
                      slstm_status* status = nullptr) {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CPU;
  o.cpu_path = path;
  o.max_batch = max_batch;
  o.max_time = max_time;
  o.num_threads = num_threads;
  o.config = config;
  o.precision = precision;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(m, &o, &s);
  if (status != nullptr) {
    *status = st;
  } else {
    INFO(slstm_last_error());
    REQUIRE(st == SLSTM_OK);
  }
  return t::Session(s);
}

// The canonical tensors of a model, flattened in API order.
std::vector<std::vector<float>> canonical(const slstm_model* m, const slstm_model_config& c) {
  std::size_t n = 0;
  REQUIRE(slstm_format_tensors(&c, SLSTM_FORMAT_CANONICAL, nullptr, 0, &n) == SLSTM_OK);
  std::vector<slstm_tensor_info> info(n);
  for (auto& i : info) i.struct_size = sizeof i;
  REQUIRE(slstm_format_tensors(&c, SLSTM_FORMAT_CANONICAL, info.data(), n, &n) == SLSTM_OK);
  std::vector<std::vector<float>> data(n);
  std::vector<slstm_tensor_out> out(n);
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t e = 1;
    for (int d = 0; d < info[k].ndim; ++d) e *= static_cast<std::size_t>(info[k].shape[d]);
    data[k].resize(e);
    out[k].data = data[k].data();
    out[k].ndim = info[k].ndim;
    std::memcpy(out[k].shape, info[k].shape, sizeof out[k].shape);
  }
  REQUIRE(slstm_model_export(m, SLSTM_FORMAT_CANONICAL, out.data(), n) == SLSTM_OK);
  return data;
}

t::Model from_canonical(const slstm_model_config& c, const std::vector<std::vector<float>>& data) {
  std::size_t n = 0;
  REQUIRE(slstm_format_tensors(&c, SLSTM_FORMAT_CANONICAL, nullptr, 0, &n) == SLSTM_OK);
  REQUIRE(n == data.size());
  std::vector<slstm_tensor_info> info(n);
  for (auto& i : info) i.struct_size = sizeof i;
  REQUIRE(slstm_format_tensors(&c, SLSTM_FORMAT_CANONICAL, info.data(), n, &n) == SLSTM_OK);
  std::vector<slstm_tensor> in(n);
  for (std::size_t k = 0; k < n; ++k) {
    in[k].data = data[k].data();
    in[k].ndim = info[k].ndim;
    std::memcpy(in[k].shape, info[k].shape, sizeof in[k].shape);
  }
  slstm_model* m = nullptr;
  const slstm_status s = slstm_model_create(&c, SLSTM_FORMAT_CANONICAL, in.data(), n, &m);
  INFO(slstm_last_error());
  REQUIRE(s == SLSTM_OK);
  return t::Model(m);
}

std::string create_error(std::int64_t input, const std::vector<slstm_layer_config>& layers,
                         slstm_status want) {
  t::Model m;
  CHECK(try_random(input, layers, &m) == want);
  CHECK(m == nullptr);
  return slstm_last_error();
}

using Catch::Matchers::Contains;

}  // namespace

TEST_CASE("a model made from hidden_sizes reports forward LSTM layers without options",
          "[layers]") {
  t::Model m = t::random_model(3, {5, 4}, 1);
  slstm_layer_config l;
  slstm_layer_config_init(&l);
  REQUIRE(slstm_model_layer(m.get(), 1, &l) == SLSTM_OK);
  CHECK(l.cell == SLSTM_CELL_LSTM);
  CHECK(l.hidden_size == 4);
  CHECK(l.direction == SLSTM_DIRECTION_FORWARD);
  CHECK(l.residual == 0);
  CHECK(l.peepholes == 0);
  CHECK(l.proj_size == 0);
  CHECK(l.cell_clip == 0.0f);
  CHECK(slstm_model_layer(m.get(), 2, &l) == SLSTM_ERR_OUT_OF_RANGE);
}

TEST_CASE("slstm_model_layer returns each layer as it was described", "[layers]") {
  slstm_layer_config a = lstm(6);
  a.peepholes = 1;
  a.cell_clip = 3.0f;
  a.proj_size = 4;
  a.proj_clip = 2.5f;
  const slstm_layer_config b = with_direction(gru(3, true), SLSTM_DIRECTION_BIDIRECTIONAL);
  t::Model m = random_layers(5, {a, b});
  slstm_layer_config got;
  slstm_layer_config_init(&got);
  REQUIRE(slstm_model_layer(m.get(), 0, &got) == SLSTM_OK);
  CHECK(got.peepholes == 1);
  CHECK(got.cell_clip == 3.0f);
  CHECK(got.proj_size == 4);
  CHECK(got.proj_clip == 2.5f);
  REQUIRE(slstm_model_layer(m.get(), 1, &got) == SLSTM_OK);
  CHECK(got.cell == SLSTM_CELL_GRU);
  CHECK(got.gru_reset_after == 1);
  CHECK(got.direction == SLSTM_DIRECTION_BIDIRECTIONAL);
  std::int64_t out = 0;
  REQUIRE(slstm_model_output_size(m.get(), &out) == SLSTM_OK);
  CHECK(out == 6);  // 2 directions x 3
}

TEST_CASE("a layer's input width is the previous layer's output width", "[layers]") {
  slstm_layer_config a = lstm(8);
  a.proj_size = 3;
  const slstm_layer_config b = with_direction(lstm(5), SLSTM_DIRECTION_BIDIRECTIONAL);
  const slstm_layer_config c = gru(2, false);
  const std::vector<slstm_layer_config> layers = {a, b, c};
  const slstm_model_config cfg = config_of(7, layers);
  std::size_t n = 0;
  REQUIRE(slstm_format_tensors(&cfg, SLSTM_FORMAT_CANONICAL, nullptr, 0, &n) == SLSTM_OK);
  std::vector<slstm_tensor_info> info(n);
  for (auto& i : info) i.struct_size = sizeof i;
  REQUIRE(slstm_format_tensors(&cfg, SLSTM_FORMAT_CANONICAL, info.data(), n, &n) == SLSTM_OK);
  // Layer 0: W_x [32, 7], W_h [32, 3], b, W_proj [3, 8]; layer 1 (two directions): W_x
  // [20, 3] each; layer 2: W_x [6, 10].
  REQUIRE(n == 4 + 2 * 3 + 4);
  CHECK(std::string(info[0].name) == "W_x");
  CHECK((info[0].shape[0] == 32 && info[0].shape[1] == 7));
  CHECK((info[1].shape[0] == 32 && info[1].shape[1] == 3));
  CHECK(std::string(info[3].name) == "W_proj");
  CHECK((info[3].shape[0] == 3 && info[3].shape[1] == 8));
  CHECK((info[4].layer == 1 && info[4].direction == 0 && info[4].shape[1] == 3));
  CHECK((info[7].layer == 1 && info[7].direction == 1 && info[7].shape[1] == 3));
  CHECK((info[10].layer == 2 && info[10].shape[0] == 6 && info[10].shape[1] == 10));
  CHECK(std::string(info[12].name) == "b_x");
  CHECK(std::string(info[13].name) == "b_h");
}

TEST_CASE("an inconsistent layer is refused at model creation, naming the layer and field",
          "[layers][errors]") {
  slstm_layer_config big_proj = lstm(4);
  big_proj.proj_size = 5;
  CHECK_THAT(create_error(3, {lstm(2), big_proj}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[1].proj_size"));
  slstm_layer_config peep_gru = gru(4, false);
  peep_gru.peepholes = 1;
  CHECK_THAT(create_error(3, {peep_gru}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].peepholes"));
  slstm_layer_config residual = lstm(4);
  residual.residual = 1;
  CHECK_THAT(create_error(3, {residual}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].residual"));
  slstm_layer_config clip_no_proj = lstm(4);
  clip_no_proj.proj_clip = 1.0f;
  CHECK_THAT(create_error(3, {clip_no_proj}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].proj_clip"));
  slstm_layer_config nan_clip = lstm(4);
  nan_clip.cell_clip = std::nanf("");
  CHECK_THAT(create_error(3, {nan_clip}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].cell_clip"));
  slstm_layer_config reset_lstm = lstm(4);
  reset_lstm.gru_reset_after = 1;
  CHECK_THAT(create_error(3, {reset_lstm}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].gru_reset_after"));
  slstm_layer_config bad_cell = lstm(4);
  bad_cell.cell = static_cast<slstm_cell>(7);
  CHECK_THAT(create_error(3, {bad_cell}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].cell"));
  slstm_layer_config bad_dir = lstm(4);
  bad_dir.direction = static_cast<slstm_direction>(-1);
  CHECK_THAT(create_error(3, {bad_dir}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].direction"));
  slstm_layer_config flag = lstm(4);
  flag.peepholes = 2;
  CHECK_THAT(create_error(3, {flag}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].peepholes"));
  CHECK_THAT(create_error(3, {lstm(0)}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].hidden_size"));
  slstm_layer_config small = lstm(4);
  small.struct_size = 4;
  CHECK_THAT(create_error(3, {small}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0]->struct_size"));
}

TEST_CASE("a residual layer whose output width equals its input width is accepted",
          "[layers]") {
  slstm_layer_config r = with_direction(lstm(3), SLSTM_DIRECTION_BIDIRECTIONAL);
  r.residual = 1;
  t::Model m = random_layers(6, {r});  // 2 x 3 = 6
  CHECK(m != nullptr);
}

TEST_CASE("hidden_sizes and layers together are refused", "[layers][errors]") {
  const std::vector<slstm_layer_config> layers = {lstm(3)};
  slstm_model_config c = config_of(2, layers);
  const std::int64_t h[] = {3};
  c.hidden_sizes = h;
  slstm_model* m = nullptr;
  CHECK(slstm_model_create_random(&c, 1, 0.0f, &m) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(m == nullptr);
  CHECK_THAT(std::string(slstm_last_error()), Contains("config->hidden_sizes must be NULL"));
}

TEST_CASE("the packed state holds each direction's pieces in order, GRU with h only",
          "[layers][state]") {
  slstm_layer_config a = with_direction(lstm(4), SLSTM_DIRECTION_BIDIRECTIONAL);
  a.proj_size = 2;
  const slstm_layer_config b = gru(3, true);
  t::Model m = random_layers(5, {a, b});
  std::int64_t pieces = 0;
  REQUIRE(slstm_model_state_pieces(m.get(), &pieces) == SLSTM_OK);
  REQUIRE(pieces == 5);  // c, h forward; c, h reverse; GRU h
  const std::int64_t B = 3;
  struct Want {
    int layer, direction;
    slstm_state_part part;
    std::int64_t width;
  };
  const Want want[] = {{0, 0, SLSTM_STATE_C, 4}, {0, 0, SLSTM_STATE_H, 2},
                       {0, 1, SLSTM_STATE_C, 4}, {0, 1, SLSTM_STATE_H, 2},
                       {1, 0, SLSTM_STATE_H, 3}};
  std::size_t at = 0;
  for (std::int64_t k = 0; k < pieces; ++k) {
    slstm_state_piece p;
    p.struct_size = sizeof p;
    REQUIRE(slstm_model_state_piece(m.get(), B, k, &p) == SLSTM_OK);
    CHECK(p.layer == want[k].layer);
    CHECK(p.direction == want[k].direction);
    CHECK(p.part == want[k].part);
    CHECK(p.width == want[k].width);
    CHECK(p.offset == at);
    CHECK(p.count == static_cast<std::size_t>(B * want[k].width));
    at += p.count;
  }
  std::size_t n = 0;
  REQUIRE(slstm_model_state_count(m.get(), B, &n) == SLSTM_OK);
  CHECK(n == at);
  slstm_state_piece p;
  p.struct_size = sizeof p;
  CHECK(slstm_model_state_piece(m.get(), B, pieces, &p) == SLSTM_ERR_OUT_OF_RANGE);
  std::size_t off = 0;
  CHECK(slstm_model_state_offset(m.get(), B, 1, SLSTM_STATE_C, &off) == SLSTM_ERR_OUT_OF_RANGE);
  CHECK_THAT(std::string(slstm_last_error()), Contains("gru"));
  REQUIRE(slstm_model_state_offset(m.get(), B, 1, SLSTM_STATE_H, &off) == SLSTM_OK);
  CHECK(off == static_cast<std::size_t>(B * (4 + 2 + 4 + 2)));
}

TEST_CASE("cpu_path AUTO and FAST run a stack beyond BasicLSTMCell on the generic fast path",
          "[layers][plan][cpu-fast]") {
  t::Model m = random_layers(3, {lstm(4), gru(3, true)});
  for (slstm_cpu_path path : {SLSTM_CPU_PATH_AUTO, SLSTM_CPU_PATH_FAST}) {
    slstm_session_options o;
    slstm_session_options_init(&o);
    o.cpu_path = path;
    o.max_batch = 2;
    o.max_time = 2;
    slstm_session* raw = nullptr;
    const slstm_status st = slstm_session_create(m.get(), &o, &raw);
    if (st == SLSTM_ERR_BACKEND_UNAVAILABLE) return;  // a build without the fast path
    REQUIRE(st == SLSTM_OK);
    t::Session s(raw);
    const std::string plan = t::describe_json(s.get());
    CHECK(t::json_value(plan, "path") == "fast");
    CHECK_THAT(plan, Contains("\"generic\""));
  }
}

TEST_CASE("the CUDA backend refuses a stack beyond BasicLSTMCell, naming the layer",
          "[layers][errors]") {
  if (slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    WARN("SKIPPED: no CUDA device here; the refusal is checked where there is one");
    return;
  }
  slstm_layer_config p = lstm(4);
  p.peepholes = 1;
  t::Model m = random_layers(3, {lstm(2), p});
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = 2;
  o.max_time = 2;
  slstm_session* s = nullptr;
  CHECK(slstm_session_create(m.get(), &o, &s) == SLSTM_ERR_UNSUPPORTED);
  CHECK(s == nullptr);
  CHECK_THAT(std::string(slstm_last_error()), Contains("layer 1 (lstm, forward, peepholes)"));
}

TEST_CASE("a stack with a reverse layer refuses stepping and stream slots, naming the layer",
          "[layers][streaming][errors]") {
  t::Model m = random_layers(2, {lstm(3), with_direction(gru(2, true), SLSTM_DIRECTION_REVERSE)});
  t::Session s = session_on(m.get(), SLSTM_CPU_PATH_REFERENCE);
  const std::vector<float> x(2, 0.5f);
  std::vector<float> y = t::poisoned(2);
  CHECK(slstm_session_step(s.get(), 1, x.data(), 2, nullptr, 0, y.data(), 2, nullptr, 0) ==
        SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("layer 1 is reverse"));
  CHECK(t::count_poison(y) == 2);
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.max_batch = 2;
  o.max_time = 2;
  o.max_slots = 2;
  slstm_session* with_slots = nullptr;
  CHECK(slstm_session_create(m.get(), &o, &with_slots) == SLSTM_ERR_UNSUPPORTED);
  CHECK(with_slots == nullptr);
  CHECK_THAT(std::string(slstm_last_error()), Contains("options->max_slots"));
}

namespace {

// Runs `m` over a batch-major input with lengths on the reference path.
t::Run run_ref(const slstm_model* m, std::int64_t B, std::int64_t T, const std::vector<float>& x,
               const std::vector<std::int32_t>* lengths, const std::vector<float>* init = nullptr,
               slstm_layout layout = SLSTM_BATCH_MAJOR) {
  t::Session s = session_on(m, SLSTM_CPU_PATH_REFERENCE, B, T);
  t::Call c = t::call_of(B, T, x, layout);
  c.lengths = lengths;
  c.initial_state = init;
  return t::forward_ok(s.get(), m, c);
}

// Each row's first len_b steps reversed (rows are batch-major [B, T, W]); the rest kept.
std::vector<float> reverse_valid(const std::vector<float>& v, std::int64_t B, std::int64_t T,
                                 std::int64_t W, const std::vector<std::int32_t>& len) {
  std::vector<float> r = v;
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t t = 0; t < len[b]; ++t) {
      std::memcpy(&r[(b * T + t) * W], &v[(b * T + (len[b] - 1 - t)) * W],
                  static_cast<std::size_t>(W) * sizeof(float));
    }
  }
  return r;
}

}  // namespace

TEST_CASE("a reverse layer is the forward layer over each row's valid part reversed",
          "[layers][direction]") {
  const std::int64_t B = 4, T = 5, D = 3, H = 4;
  for (const slstm_layer_config& base : {lstm(H), gru(H, true), gru(H, false)}) {
    const std::vector<slstm_layer_config> fwd = {base};
    const std::vector<slstm_layer_config> rev = {with_direction(base, SLSTM_DIRECTION_REVERSE)};
    t::Model mf = random_layers(D, fwd, 11);
    t::Model mr = random_layers(D, rev, 11);  // the same draws: the same weights
    const std::vector<std::int32_t> len = {5, 0, 1, 4};
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 3);
    const auto init = t::random_vector(t::state_count(mf.get(), B), 4);
    const t::Run r = run_ref(mr.get(), B, T, x, &len, &init);
    const auto xr = reverse_valid(x, B, T, D, len);
    const t::Run f = run_ref(mf.get(), B, T, xr, &len, &init);
    CHECK(t::bitwise_equal(r.output, reverse_valid(f.output, B, T, H, len)));
    CHECK(t::bitwise_equal(r.final_state, f.final_state));
  }
}

TEST_CASE("a bidirectional layer is a forward and a reverse layer side by side",
          "[layers][direction]") {
  const std::int64_t B = 3, T = 4, D = 2, H = 3;
  slstm_layer_config base = lstm(H);
  base.peepholes = 1;
  const std::vector<slstm_layer_config> bi = {with_direction(base, SLSTM_DIRECTION_BIDIRECTIONAL)};
  t::Model mb = random_layers(D, bi, 5);
  const slstm_model_config cb = config_of(D, bi);
  const auto w = canonical(mb.get(), cb);  // forward's 4 tensors, then reverse's 4
  const std::vector<slstm_layer_config> fl = {base};
  const std::vector<slstm_layer_config> rl = {with_direction(base, SLSTM_DIRECTION_REVERSE)};
  t::Model mf = from_canonical(config_of(D, fl), {w[0], w[1], w[2], w[3]});
  t::Model mr = from_canonical(config_of(D, rl), {w[4], w[5], w[6], w[7]});
  const std::vector<std::int32_t> len = {4, 2, 0};
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 8);
  const t::Run b = run_ref(mb.get(), B, T, x, &len, nullptr, SLSTM_TIME_MAJOR);
  const t::Run f = run_ref(mf.get(), B, T, x, &len, nullptr, SLSTM_TIME_MAJOR);
  const t::Run r = run_ref(mr.get(), B, T, x, &len, nullptr, SLSTM_TIME_MAJOR);
  for (std::int64_t row = 0; row < B * T; ++row) {
    CHECK(t::bitwise_equal(&b.output[row * 2 * H], &f.output[row * H], H));
    CHECK(t::bitwise_equal(&b.output[row * 2 * H + H], &r.output[row * H], H));
  }
  std::vector<float> both = f.final_state;
  both.insert(both.end(), r.final_state.begin(), r.final_state.end());
  CHECK(t::bitwise_equal(b.final_state, both));
}

TEST_CASE("a residual layer's output is the cell's output plus the layer's input",
          "[layers][residual]") {
  const std::int64_t B = 2, T = 3, D = 4;
  for (const slstm_layer_config& base : {lstm(D), gru(D, true)}) {
    slstm_layer_config res = base;
    res.residual = 1;
    t::Model plain = random_layers(D, {base}, 9);
    t::Model wrapped = random_layers(D, {res}, 9);
    const std::vector<std::int32_t> len = {3, 1};
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 2);
    const t::Run p = run_ref(plain.get(), B, T, x, &len);
    const t::Run w = run_ref(wrapped.get(), B, T, x, &len);
    for (std::int64_t b = 0; b < B; ++b) {
      for (std::int64_t t = 0; t < T; ++t) {
        for (std::int64_t u = 0; u < D; ++u) {
          const std::size_t i = static_cast<std::size_t>((b * T + t) * D + u);
          CHECK(w.output[i] == (t < len[b] ? p.output[i] + x[i] : 0.0f));
        }
      }
    }
    CHECK(t::bitwise_equal(w.final_state, p.final_state));  // the state is the cell's own
  }
}

TEST_CASE("zero peepholes, an identity projection and no clip compute BasicLSTMCell",
          "[layers][lstm]") {
  const std::int64_t B = 2, T = 3, D = 3, H = 4;
  slstm_layer_config ext = lstm(H);
  ext.peepholes = 1;
  ext.proj_size = H;
  ext.cell_clip = 1e30f;
  const std::vector<slstm_layer_config> el = {ext};
  t::Model basic = t::random_model(D, {H}, 21);
  const auto wb = canonical(basic.get(), config_of(D, {lstm(H)}));
  std::vector<float> identity(static_cast<std::size_t>(H * H), 0.0f);
  for (std::int64_t u = 0; u < H; ++u) identity[static_cast<std::size_t>(u * H + u)] = 1.0f;
  t::Model m = from_canonical(config_of(D, el),
                              {wb[0], wb[1], wb[2], std::vector<float>(3 * H, 0.0f), identity});
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 6);
  const t::Run a = run_ref(basic.get(), B, T, x, nullptr);
  const t::Run b = run_ref(m.get(), B, T, x, nullptr);
  CHECK(t::bitwise_equal(a.output, b.output));
  CHECK(t::bitwise_equal(a.final_state, b.final_state));
}

TEST_CASE("cell_clip bounds c and proj_clip bounds the projected h", "[layers][lstm]") {
  const std::int64_t B = 2, T = 6, D = 3, H = 5, P = 2;
  slstm_layer_config l = lstm(H);
  l.cell_clip = 0.05f;
  l.proj_size = P;
  l.proj_clip = 0.01f;
  const std::vector<slstm_layer_config> layers = {l};
  slstm_model_config c = config_of(D, layers);
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create_random(&c, 3, 2.0f, &raw) == SLSTM_OK);  // large weights
  t::Model m(raw);
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 1, -3.0f, 3.0f);
  const t::Run r = run_ref(m.get(), B, T, x, nullptr);
  float max_c = 0.0f, max_h = 0.0f;
  for (std::int64_t k = 0; k < B * H; ++k) max_c = std::max(max_c, std::fabs(r.final_state[k]));
  for (std::int64_t k = 0; k < B * P; ++k) {
    max_h = std::max(max_h, std::fabs(r.final_state[B * H + k]));
  }
  for (float v : r.output) max_h = std::max(max_h, std::fabs(v));
  CHECK(max_c == 0.05f);  // reached (large weights saturate) and never exceeded
  CHECK(max_h == 0.01f);
}

TEST_CASE("a GRU step matches the equations written out in double", "[layers][gru]") {
  // One unit, one input, both variants: r, z, n by hand.
  for (int after = 0; after < 2; ++after) {
    const std::vector<slstm_layer_config> layers = {gru(1, after == 1)};
    const slstm_model_config c = config_of(1, layers);
    // W_x [3,1], W_h [3,1], b_x [3], b_h [3] (r, z, n)
    const std::vector<float> wx = {0.5f, -0.25f, 0.75f}, wh = {0.3f, 0.6f, -0.9f};
    const std::vector<float> bx = {0.1f, -0.2f, 0.05f}, bh = {-0.3f, 0.15f, 0.4f};
    t::Model m = from_canonical(c, {wx, wh, bx, bh});
    const double x = 0.8, h0 = -0.6;
    auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
    const double r = sig(wx[0] * x + bx[0] + wh[0] * h0 + bh[0]);
    const double z = sig(wx[1] * x + bx[1] + wh[1] * h0 + bh[1]);
    const double n = after ? std::tanh(wx[2] * x + bx[2] + r * (wh[2] * h0 + bh[2]))
                           : std::tanh(wx[2] * x + bx[2] + wh[2] * (r * h0) + bh[2]);
    const double h1 = (1 - z) * n + z * h0;
    const std::vector<float> in = {0.8f}, init = {-0.6f};
    const t::Run run = run_ref(m.get(), 1, 1, in, nullptr, &init);
    CHECK(std::fabs(run.output[0] - h1) < 1e-6);
    CHECK(run.final_state[0] == run.output[0]);
  }
}

TEST_CASE("a forward stack of new cells runs in chunks bitwise as in one call",
          "[layers][streaming]") {
  const std::int64_t B = 3, T = 6, D = 4;
  slstm_layer_config a = lstm(6);
  a.peepholes = 1;
  a.proj_size = 4;
  a.cell_clip = 0.5f;
  slstm_layer_config r = gru(4, false);
  r.residual = 1;
  t::Model m = random_layers(D, {a, r, gru(3, true)}, 17);
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 5);
  for (slstm_cpu_path path : {SLSTM_CPU_PATH_REFERENCE, SLSTM_CPU_PATH_AUTO}) {
    t::Session s = session_on(m.get(), path, B, T);
    t::Call whole = t::call_of(B, T, x, SLSTM_TIME_MAJOR);
    const t::Run w = t::forward_ok(s.get(), m.get(), whole);
    // Step by step, time-major: step t's input is rows [t*B, (t+1)*B).
    std::vector<float> state(t::state_count(m.get(), B), 0.0f);
    std::vector<float> out;
    for (std::int64_t t = 0; t < T; ++t) {
      std::vector<float> y = t::poisoned(static_cast<std::size_t>(B * 3));
      REQUIRE(slstm_session_step(s.get(), B, &x[static_cast<std::size_t>(t * B * D)],
                                 static_cast<std::size_t>(B * D), state.data(), state.size(),
                                 y.data(), y.size(), state.data(), state.size()) == SLSTM_OK);
      out.insert(out.end(), y.begin(), y.end());
    }
    CHECK(t::bitwise_equal(out, w.output));
    CHECK(t::bitwise_equal(state, w.final_state));
  }
}

TEST_CASE("a forward stack runs its layers window by window with the bits of one step at a "
          "time", "[layers][cpu-fast]") {
  // Peephole LSTM (projected, clipped), residual GRU, GRU: max H = 300, so a session for 5
  // rows takes 43 steps a window (1 MiB of pre-activations) and a call of 100 steps three
  // windows, every layer's input products for a window at once; lengths end inside, at and
  // past window ends.  Against the same sequence a step at a time (windows of one step,
  // the layers above projecting inside the step): bit for bit, FP32 on one and two threads
  // and on a team of two (cpu.team=always), BF16 on two.
  const std::int64_t B = 5, T = 100, D = 24;
  slstm_layer_config a = t::lstm_layer(200);
  a.peepholes = 1;
  a.proj_size = 64;
  a.cell_clip = 0.5f;
  slstm_layer_config r = t::lstm_layer(64);
  r.cell = SLSTM_CELL_GRU;
  r.residual = 1;
  slstm_layer_config g = t::lstm_layer(300);
  g.cell = SLSTM_CELL_GRU;
  g.gru_reset_after = 1;
  t::Model m = random_layers(D, {a, r, g}, 19);
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 20);
  const auto init = t::random_vector(t::state_count(m.get(), B), 21, -0.5f, 0.5f);
  const std::vector<std::int32_t> len = {100, 43, 44, 86, 7};
  const std::int64_t W = t::output_size(m.get());
  struct Case {
    std::int32_t precision;
    const char* config;
    std::int32_t threads;
  };
  for (const Case& c : {Case{SLSTM_PRECISION_DEFAULT, "", 1}, Case{SLSTM_PRECISION_DEFAULT, "", 2},
                        Case{SLSTM_PRECISION_DEFAULT, "cpu.team=always", 2},
                        Case{SLSTM_PRECISION_BF16, "", 2}}) {
    INFO("precision " << c.precision << ", config '" << c.config << "', threads " << c.threads);
    t::Session s = session_on(m.get(), SLSTM_CPU_PATH_FAST, B, T, c.threads, c.config,
                              c.precision);
    const std::string plan = t::describe_json(s.get());
    CHECK(t::json_value(plan, "order").find("windows of steps") == 0);
    t::Call whole = t::call_of(B, T, x, SLSTM_TIME_MAJOR);
    whole.lengths = &len;
    whole.initial_state = &init;
    const t::Run want = t::forward_ok(s.get(), m.get(), whole);
    std::vector<float> state = init;
    for (std::int64_t k = 0; k < T; ++k) {
      INFO("step " << k);
      const std::vector<float> xk(x.begin() + k * B * D, x.begin() + (k + 1) * B * D);
      std::vector<std::int32_t> lk(static_cast<std::size_t>(B));
      for (std::size_t b = 0; b < lk.size(); ++b) lk[b] = len[b] > k ? 1 : 0;
      t::Call one = t::call_of(B, 1, xk, SLSTM_TIME_MAJOR);
      one.lengths = &lk;
      one.initial_state = &state;
      const t::Run got = t::forward_ok(s.get(), m.get(), one);
      REQUIRE(t::bitwise_equal(got.output.data(), want.output.data() + k * B * W,
                               static_cast<std::size_t>(B * W)));
      state = got.final_state;
    }
    CHECK(t::bitwise_equal(state, want.final_state));
  }
}

namespace {

// Every kind of layer, in stacks that read forward and stacks that do not.
std::vector<std::vector<slstm_layer_config>> zoo() { return t::layer_zoo(); }

}  // namespace

TEST_CASE("the generic fast path agrees with the reference on every kind of layer",
          "[layers][cpu-fast]") {
  const std::int64_t B = 5, T = 7, D = 6;
  int stack = 0;
  for (const auto& layers : zoo()) {
    INFO("stack " << stack);
    t::Model m = random_layers(D, layers, 40 + static_cast<std::uint64_t>(stack++));
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 7);
    const auto init = t::random_vector(t::state_count(m.get(), B), 8, -0.5f, 0.5f);
    const std::vector<std::int32_t> len = {7, 0, 1, 6, 3};
    const std::int64_t W = t::output_size(m.get());
    for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
      t::Session ref = session_on(m.get(), SLSTM_CPU_PATH_REFERENCE, B, T);
      t::Session fast = session_on(m.get(), SLSTM_CPU_PATH_AUTO, B, T);
      t::Call c = t::call_of(B, T, x, layout);
      c.lengths = &len;
      c.initial_state = &init;
      const t::Run want = t::forward_ok(ref.get(), m.get(), c);
      const t::Run got = t::forward_ok(fast.get(), m.get(), c);
      CHECK(t::count_poison(got.output) == 0);
      // float32 sums of <= 30 terms of magnitude <= ~1 against double ones, through <= 3
      // layers and 7 steps: a few float32 ulps of the state's scale.
      CHECK(t::rel_err(got.output, want.output) < 2e-6);
      CHECK(t::rel_err(got.final_state, want.final_state) < 2e-6);
      // Rows past their length: exactly 0, and a row of length 0 keeps its initial state.
      for (std::int64_t b = 0; b < B; ++b) {
        for (std::int64_t t = len[b]; t < T; ++t) {
          const std::int64_t row = layout == SLSTM_TIME_MAJOR ? t * B + b : b * T + t;
          for (std::int64_t u = 0; u < W; ++u) CHECK(got.output[row * W + u] == 0.0f);
        }
      }
    }
  }
}

TEST_CASE("the generic fast path's results do not depend on the batch a row is in",
          "[layers][cpu-fast]") {
  const std::int64_t B = 4, T = 5, D = 3;
  for (const auto& layers : zoo()) {
    t::Model m = random_layers(D, layers, 3);
    t::Session s = session_on(m.get(), SLSTM_CPU_PATH_AUTO, B, T);
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 9);
    const std::vector<std::int32_t> len = {5, 2, 4, 1};
    t::Call all = t::call_of(B, T, x);
    all.lengths = &len;
    const t::Run whole = t::forward_ok(s.get(), m.get(), all);
    const std::int64_t W = t::output_size(m.get());
    for (std::int64_t b = 0; b < B; ++b) {
      const std::vector<float> xb(x.begin() + b * T * D, x.begin() + (b + 1) * T * D);
      const std::vector<std::int32_t> lb = {len[b]};
      t::Call one = t::call_of(1, T, xb);
      one.lengths = &lb;
      const t::Run r = t::forward_ok(s.get(), m.get(), one);
      CHECK(t::bitwise_equal(r.output.data(), &whole.output[b * T * W],
                             static_cast<std::size_t>(T * W)));
    }
  }
}

TEST_CASE("the generic fast path gives the same bits on one thread, split by directions and by rows",
          "[layers][cpu-fast]") {
  // 2 threads: B = 2 and 7 split a bidirectional stack's directions (fewer than 24 rows),
  // B = 25 its batch rows; 3 threads: B = 7 splits the directions (fewer than 3 rows per
  // thread), B = 25 the rows.
  const std::int64_t T = 6, D = 5;
  const auto session_with = [](const slstm_model* m, std::int64_t B, int threads) {
    return session_on(m, SLSTM_CPU_PATH_AUTO, B, T, threads);
  };
  int stack = 0;
  for (const auto& layers : zoo()) {
    t::Model m = random_layers(D, layers, 60 + static_cast<std::uint64_t>(stack++));
    for (const std::int64_t B : {2, 7, 25}) {
      INFO("stack " << stack << ", B = " << B);
      const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 11);
      const auto init = t::random_vector(t::state_count(m.get(), B), 12, -0.5f, 0.5f);
      std::vector<std::int32_t> len;
      for (std::int64_t b = 0; b < B; ++b) {
        len.push_back(static_cast<std::int32_t>((b * 5) % (T + 1)));
      }
      for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
        t::Call c = t::call_of(B, T, x, layout);
        c.lengths = &len;
        c.initial_state = &init;
        t::Session one = session_with(m.get(), B, 1);
        const t::Run want = t::forward_ok(one.get(), m.get(), c);
        for (const int threads : {2, 3}) {
          t::Session more = session_with(m.get(), B, threads);
          const t::Run got = t::forward_ok(more.get(), m.get(), c);
          CHECK(t::bitwise_equal(got.output, want.output));
          CHECK(t::bitwise_equal(got.final_state, want.final_state));
        }
      }
    }
  }
}

TEST_CASE("the generic fast path's input projections in chunks of steps give the same bits",
          "[layers][cpu-fast]") {
  // H = 512 and 7 rows: the projections run ahead ~18 steps at a time (1 MiB of
  // pre-activations), so a call of 40 steps crosses chunk boundaries; a session for one row
  // cuts its chunks elsewhere (~128 steps), and lengths end on either side of a boundary.
  const std::int64_t B = 7, T = 40, D = 9, H = 512;
  slstm_layer_config bi_gru = t::lstm_layer(H);
  bi_gru.cell = SLSTM_CELL_GRU;
  bi_gru.gru_reset_after = 1;
  bi_gru.direction = SLSTM_DIRECTION_BIDIRECTIONAL;
  slstm_layer_config peep = t::lstm_layer(H);
  peep.peepholes = 1;  // a forward stack on the generic path: time-major order
  const std::vector<std::vector<slstm_layer_config>> stacks = {{bi_gru}, {peep, t::lstm_layer(16)}};
  const auto session_for = [](const slstm_model* m, std::int64_t max_batch) {
    return session_on(m, SLSTM_CPU_PATH_AUTO, max_batch, T, 1);
  };
  std::uint64_t seed = 70;
  for (const auto& layers : stacks) {
    t::Model m = random_layers(D, layers, ++seed);
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), ++seed);
    const std::vector<std::int32_t> len = {40, 17, 18, 19, 36, 0, 37};
    t::Call all = t::call_of(B, T, x);
    all.lengths = &len;
    t::Session batch = session_for(m.get(), B);
    const t::Run whole = t::forward_ok(batch.get(), m.get(), all);
    t::Session single = session_for(m.get(), 1);
    const std::int64_t W = t::output_size(m.get());
    for (std::int64_t b = 0; b < B; ++b) {
      INFO("row " << b);
      const std::vector<float> xb(x.begin() + b * T * D, x.begin() + (b + 1) * T * D);
      const std::vector<std::int32_t> lb = {len[static_cast<std::size_t>(b)]};
      t::Call one = t::call_of(1, T, xb);
      one.lengths = &lb;
      const t::Run r = t::forward_ok(single.get(), m.get(), one);
      CHECK(t::bitwise_equal(r.output.data(), &whole.output[static_cast<std::size_t>(b * T * W)],
                             static_cast<std::size_t>(T * W)));
    }
  }
}

TEST_CASE("the generic fast path projects up to 16 MiB of steps at a time where a W_x "
          "exceeds twice L2, within the accuracy rule",
          "[layers][cpu-fast]") {
  // A GRU over 2048 inputs with H = 768: W_x is 2304 x 2048 floats (18 MiB, over twice any
  // core's L2 up to 9 MiB), so each pass of the projection streams it from L3 and the
  // session takes 16 MiB of pre-activations a pass (24 steps of 2 rows: one pass, where
  // 1 MiB would take 14 steps).  A small stack keeps 1 MiB.
  t::use_cpu_kernel_under_test();
  const slstm_layer_config wide_gru = gru(768, false);
  const std::int64_t B = 2, T = 24, D = 2048;
  t::Model m = random_layers(D, {wide_gru}, 81);
  t::Session s = session_on(m.get(), SLSTM_CPU_PATH_FAST, B, T, 2);
  const std::string plan = t::describe_json(s.get());
  INFO(plan);
  CHECK_THAT(t::json_value(plan, "projection"),
             Contains("up to 16 MiB of pre-activations at a time (a layer's W_x over twice"));
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 82);
  const std::vector<std::int32_t> len = {24, 13};
  t::Call c = t::call_of(B, T, x);
  c.lengths = &len;
  t::Session ref = session_on(m.get(), SLSTM_CPU_PATH_REFERENCE, B, T);
  const t::Run want = t::forward_ok(ref.get(), m.get(), c);
  const t::Run got = t::forward_ok(s.get(), m.get(), c);
  CHECK(t::count_poison(got.output) == 0);
  // float32 sums of 2816 terms against the reference's double ones, through 24 steps.
  INFO("rel_err " << t::rel_err(got.output, want.output));
  CHECK(t::rel_err(got.output, want.output) < 1e-5);
  CHECK(t::rel_err(got.final_state, want.final_state) < 1e-5);

  const slstm_layer_config small = gru(64, false);
  t::Model little = random_layers(32, {small, t::lstm_layer(16)}, 83);
  t::Session ls = session_on(little.get(), SLSTM_CPU_PATH_FAST, B, T, 2);
  const std::string little_plan = t::describe_json(ls.get());
  INFO(little_plan);
  CHECK_THAT(t::json_value(little_plan, "projection"),
             Contains("up to 1 MiB of pre-activations at a time (every W_x within twice"));
}

TEST_CASE("the generic fast path's team (GEMMs cut by gate rows) gives one thread's bits",
          "[layers][cpu-fast]") {
  // Calls of fewer than 3 rows per thread as a team (every worker on every row; cpu.team=
  // always, whatever the weights' size).  Every kind of layer (time-major stacks, reverse
  // ones layer-major, bidirectional ones as a team per direction from 4 threads), odd
  // widths (parts that end inside an 8-unit vector and a 32-row block), lengths 0 and T - 1,
  // an initial state, FP32 and BF16 (the lead rounds the operands).
  const std::int64_t T = 9, D = 37;
  slstm_layer_config lstmp = t::lstm_layer(161);
  lstmp.peepholes = 1;
  lstmp.cell_clip = 0.9f;
  lstmp.proj_size = 61;
  lstmp.proj_clip = 0.5f;
  slstm_layer_config res = t::gru_layer(61, false);
  res.residual = 1;
  slstm_layer_config peep = t::lstm_layer(130);  // (a plain LSTM stack runs the fused path)
  peep.peepholes = 1;
  const std::vector<std::vector<slstm_layer_config>> stacks = {
      {t::gru_layer(203, true), t::lstm_layer(97)},
      {lstmp, res},
      {peep, t::lstm_layer(130)},
      {t::with_direction(t::gru_layer(150, true), SLSTM_DIRECTION_BIDIRECTIONAL),
       t::with_direction(t::lstm_layer(70), SLSTM_DIRECTION_REVERSE)},
      {t::with_direction(peep, SLSTM_DIRECTION_REVERSE), t::gru_layer(61, false)}};
  const auto session_with = [](const slstm_model* m, std::int64_t B, int threads,
                               std::int32_t precision) {
    return session_on(m, SLSTM_CPU_PATH_AUTO, B, T, threads, "cpu.team=always", precision);
  };
  std::uint64_t seed = 120;
  for (const auto& layers : stacks) {
    t::Model m = random_layers(D, layers, ++seed);
    for (const std::int64_t B : {1, 2, 5}) {
      const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), ++seed);
      const auto init = t::random_vector(t::state_count(m.get(), B), ++seed, -0.5f, 0.5f);
      std::vector<std::int32_t> len = {static_cast<std::int32_t>(T - 1), 0, 4, 9, 1};
      len.resize(static_cast<std::size_t>(B));
      for (const std::int32_t precision : {SLSTM_PRECISION_FP32, SLSTM_PRECISION_BF16}) {
        for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
          INFO("seed " << seed << ", B = " << B << ", precision " << precision);
          t::Call c = t::call_of(B, T, x, layout);
          c.lengths = &len;
          c.initial_state = &init;
          t::Session one = session_with(m.get(), B, 1, precision);
          const t::Run want = t::forward_ok(one.get(), m.get(), c);
          for (const int threads : {2, 3, 4}) {
            t::Session team = session_with(m.get(), B, threads, precision);
            const std::string json = t::describe_json(team.get());
            INFO(json);
            // (Directions split: each a team from 4 threads on.)
            const bool by_direction = json.find("the directions") != std::string::npos;
            CHECK((json.find("a team of") != std::string::npos) ==
                  (!by_direction || threads >= 4));
            const t::Run got = t::forward_ok(team.get(), m.get(), c);
            CHECK(t::count_poison(got.output) == 0);
            CHECK(t::bitwise_equal(got.output, want.output));
            CHECK(t::bitwise_equal(got.final_state, want.final_state));
          }
        }
      }
    }
  }
}

TEST_CASE("generic-path calls that find the workers asleep give one thread's bits",
          "[layers][cpu-fast]") {
  // cpu.spin_us=0 and 20 ms between calls: every call finds its workers asleep and, being
  // small, runs on the calling thread alone (split.hpp alone_when_asleep), nudging them.
  // Rows split (B = 5, 2 threads), a team (cpu.team=always, B = 1) and directions split (a
  // bidirectional layer), the state carried from call to call, against one thread bitwise.
  const std::int64_t D = 11;
  slstm_layer_config lstmp = t::lstm_layer(48);
  lstmp.proj_size = 20;
  const std::vector<std::vector<slstm_layer_config>> stacks = {
      {t::gru_layer(64, true), lstmp},
      {t::with_direction(t::gru_layer(40, false), SLSTM_DIRECTION_BIDIRECTIONAL)}};
  std::uint64_t seed = 300;
  for (const auto& layers : stacks) {
    t::Model m = random_layers(D, layers, ++seed);
    for (const char* config : {"cpu.spin_us=0", "cpu.spin_us=0;cpu.team=always"}) {
      for (const std::int64_t B : {1, 5}) {
        t::Session one = session_on(m.get(), SLSTM_CPU_PATH_AUTO, B, 3, 1, config);
        t::Session two = session_on(m.get(), SLSTM_CPU_PATH_AUTO, B, 3, 2, config);
        std::vector<float> state = t::random_vector(t::state_count(m.get(), B), ++seed);
        for (int call = 0; call < 4; ++call) {
          INFO(config << ", B = " << B << ", call " << call);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          const std::int64_t T = 1 + call % 3;
          const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), ++seed);
          t::Call c = t::call_of(B, T, x);
          c.initial_state = &state;
          const t::Run want = t::forward_ok(one.get(), m.get(), c);
          const t::Run got = t::forward_ok(two.get(), m.get(), c);
          CHECK(t::bitwise_equal(got.output, want.output));
          REQUIRE(t::bitwise_equal(got.final_state, want.final_state));
          state = got.final_state;
        }
        // (B = 1 without a team runs on one worker anyway: nothing to decide.)
        if (B > 1 || std::string(config).find("team") != std::string::npos) {
          const std::string alone =
              t::json_value(t::describe_json(two.get()), "calls_alone_asleep");
          INFO(config << ", B = " << B << ": " << alone);
          CHECK(std::stoi(alone) >= 1);
        }
      }
    }
  }
}

TEST_CASE("cpu.team=always runs every stack of the zoo as a team, with one thread's bits",
          "[layers][cpu-fast]") {
  // Layers of 3-7 units: parts of one 8-unit piece and one 32-row block, so a worker may have
  // nothing to do in a phase; B = 1, 2, 5 with 2, 3 and 4 threads.  Forward stacks (time-
  // major) and stacks with reverse layers (layer-major) run as one team; a stack with a
  // bidirectional layer splits its directions, each a team from 4 threads on (2 x 2).
  const std::int64_t T = 6, D = 5;
  const auto session_with = [](const slstm_model* m, std::int64_t B, int threads,
                               const char* config) {
    return session_on(m, SLSTM_CPU_PATH_AUTO, B, T, threads, config);
  };
  int stack = 0, teams = 0, direction_teams = 0;
  for (const auto& layers : zoo()) {
    t::Model m = random_layers(D, layers, 80 + static_cast<std::uint64_t>(stack++));
    for (const std::int64_t B : {1, 2, 5}) {
      INFO("stack " << stack << ", B = " << B);
      const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 17);
      std::vector<std::int32_t> len;
      for (std::int64_t b = 0; b < B; ++b) len.push_back(static_cast<std::int32_t>((b * 4) % 7));
      t::Call c = t::call_of(B, T, x);
      c.lengths = &len;
      t::Session one = session_with(m.get(), B, 1, nullptr);
      const t::Run want = t::forward_ok(one.get(), m.get(), c);
      for (const int threads : {2, 3, 4}) {
        INFO(threads << " threads");
        t::Session s = session_with(m.get(), B, threads, "cpu.team=always");
        const std::string json = t::describe_json(s.get());
        INFO(json);
        CHECK(t::json_value(json, "cpu.team") == "always (config)");
        const bool by_direction = json.find("the directions") != std::string::npos;
        const bool team = json.find("a team of") != std::string::npos;
        CHECK(team == (!by_direction || threads >= 4));
        teams += team && !by_direction ? 1 : 0;
        direction_teams += team && by_direction ? 1 : 0;
        const t::Run got = t::forward_ok(s.get(), m.get(), c);
        CHECK(t::bitwise_equal(got.output, want.output));
        CHECK(t::bitwise_equal(got.final_state, want.final_state));
      }
    }
  }
  CHECK(teams > 0);
  CHECK(direction_teams > 0);
}

TEST_CASE("cpu.team: by default a call of fewer rows than threads of a stack of >= 768 KiB is "
          "a team, off splits the rows, with the same bits",
          "[layers][cpu-fast]") {
  // 3 x 203 x (37 + 203) + 4 x 97 x (203 + 97) floats: 1.05 MB a step.
  const slstm_layer_config big = t::gru_layer(203, true);
  t::Model m = random_layers(37, {big, t::lstm_layer(97)}, 5);
  const std::int64_t B = 1, T = 5;
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * 37), 3);
  t::Session team = session_on(m.get(), SLSTM_CPU_PATH_AUTO, B, T, 2);
  t::Session rows = session_on(m.get(), SLSTM_CPU_PATH_AUTO, B, T, 2, "cpu.team=off");
  CHECK(t::describe_json(team.get()).find("a team of 2") != std::string::npos);
  CHECK(t::describe_json(team.get()).find("with fewer rows than threads") != std::string::npos);
  slstm_layer_config small = t::gru_layer(100, true);  // 3 x 100 x (37 + 100) floats: 164 KB
  t::Model little = random_layers(37, {small}, 6);
  t::Session auto_small = session_on(little.get(), SLSTM_CPU_PATH_AUTO, B, T, 2);
  CHECK(t::describe_json(auto_small.get()).find("a team of") == std::string::npos);
  const std::string json = t::describe_json(rows.get());
  INFO(json);
  CHECK(json.find("a team of") == std::string::npos);
  CHECK(t::json_value(json, "split").find("batch rows") != std::string::npos);
  t::check_same_bits(team.get(), rows.get(), m.get(), t::call_of(B, T, x));
}

TEST_CASE("the generic fast path's AVX-512 GEMM gives the AVX2 GEMM's bits",
          "[layers][cpu-fast]") {
  // The same FMA chains in both kernels: equal bits on every kind of layer, for every row
  // count of a pass (1..6 and beyond), partial 32-row blocks (GRU H = 75: 225 and 75 rows) and
  // passes of 4, 2 and 1 blocks.  (Runs where SLSTM_CPU_KERNEL forces a kernel: that wins.)
  if (!t::kernel_under_test().empty()) return;
  const auto session_with = [](const slstm_model* m, std::int64_t B, const char* kernel,
                               slstm_status* st) {
    return session_on(m, SLSTM_CPU_PATH_FAST, B, 6, 1, kernel, SLSTM_PRECISION_DEFAULT, st);
  };
  slstm_layer_config lstmp = t::lstm_layer(50);
  lstmp.peepholes = 1;
  lstmp.proj_size = 20;
  std::vector<std::vector<slstm_layer_config>> stacks = zoo();
  stacks.push_back({t::gru_layer(75, true), lstmp, t::lstm_layer(40)});
  int stack = 0;
  for (const auto& layers : stacks) {
    t::Model m = random_layers(5, layers, 90 + static_cast<std::uint64_t>(stack++));
    for (const std::int64_t B : {1, 2, 3, 4, 5, 6, 7, 13}) {
      INFO("stack " << stack << ", B = " << B);
      slstm_status st = SLSTM_OK;
      t::Session wide = session_with(m.get(), B, "cpu.kernel=avx512", &st);
      if (st == SLSTM_ERR_UNSUPPORTED) {
        WARN("skipped: this CPU has no AVX-512 (" << slstm_last_error() << ")");
        return;
      }
      REQUIRE(st == SLSTM_OK);
      t::Session narrow = session_with(m.get(), B, "cpu.kernel=avx2", &st);
      REQUIRE(st == SLSTM_OK);
      CHECK(t::json_value(t::describe_json(wide.get()), "kernel") == "avx512");
      CHECK(t::json_value(t::describe_json(narrow.get()), "kernel") == "avx2");
      const auto x = t::random_vector(static_cast<std::size_t>(B * 6 * 5), 13);
      std::vector<std::int32_t> len;
      for (std::int64_t b = 0; b < B; ++b) len.push_back(static_cast<std::int32_t>((b * 5) % 7));
      t::Call c = t::call_of(B, 6, x);
      c.lengths = &len;
      t::check_same_bits(wide.get(), narrow.get(), m.get(), c);
    }
  }
}

TEST_CASE("the generic fast path's AVX-512 GEMM cut into L2 panels for many rows gives the "
          "AVX2 GEMM's bits",
          "[layers][cpu-fast]") {
  // Layer 0's W_x: 4 x 86 = 344 rows (10 whole 32-row blocks and one of 24) of 2048 inputs,
  // 256 KiB a block: a product of more than 6 rows runs in panels of blocks that fit a
  // quarter of the core's L2, so on any L2 up to 8 MiB in several panels, the last partial.
  if (!t::kernel_under_test().empty()) return;
  slstm_layer_config peep = t::lstm_layer(86);
  peep.peepholes = 1;  // (the generic path)
  t::Model m = random_layers(2048, {peep, t::gru_layer(75, true)}, 17);
  for (const std::int64_t B : {7, 13}) {
    INFO("B = " << B);
    const std::int64_t T = 6;
    slstm_status st = SLSTM_OK;
    t::Session wide = session_on(m.get(), SLSTM_CPU_PATH_FAST, B, T, 1, "cpu.kernel=avx512",
                                 SLSTM_PRECISION_DEFAULT, &st);
    if (st == SLSTM_ERR_UNSUPPORTED) {
      WARN("skipped: this CPU has no AVX-512 (" << slstm_last_error() << ")");
      return;
    }
    REQUIRE(st == SLSTM_OK);
    t::Session narrow = session_on(m.get(), SLSTM_CPU_PATH_FAST, B, T, 1, "cpu.kernel=avx2",
                                   SLSTM_PRECISION_DEFAULT, &st);
    REQUIRE(st == SLSTM_OK);
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * 2048), 29);
    t::check_same_bits(wide.get(), narrow.get(), m.get(), t::call_of(B, T, x));
  }
}

TEST_CASE("a bidirectional stack's plan says when the directions are split", "[layers][cpu-fast]") {
  slstm_layer_config bi = t::lstm_layer(8);
  bi.direction = SLSTM_DIRECTION_BIDIRECTIONAL;
  t::Model m = random_layers(3, {bi, t::lstm_layer(4)}, 5);
  t::Session s = session_on(m.get(), SLSTM_CPU_PATH_AUTO, 1, 2, 2);
  const std::string json = t::describe_json(s.get());
  INFO(json);
  CHECK(t::json_value(json, "threads") == "2");  // one batch row, two directions
  CHECK(t::json_value(json, "split").find("the directions") != std::string::npos);
}

TEST_CASE("a bidirectional layer whose W_h outgrows L2 splits its directions up to 64 rows, "
          "with one thread's bits",
          "[layers][cpu-fast]") {
  // H = 768: a direction's W_h is 4 x 768 x 768 floats = 9 MiB, more than any core's L2, so
  // with 2 threads a call of up to 64 rows runs each direction on one worker (25 and 64
  // here), a call of more by batch rows (65).
  slstm_layer_config bi = t::lstm_layer(768);
  bi.direction = SLSTM_DIRECTION_BIDIRECTIONAL;
  t::Model m = random_layers(16, {bi}, 7);
  const std::int64_t T = 2;
  for (const std::int64_t B : {25, 64, 65}) {
    INFO("B = " << B);
    const auto x = t::random_vector(static_cast<std::size_t>(B * T * 16), 8);
    t::Call c = t::call_of(B, T, x);
    t::Session one = session_on(m.get(), SLSTM_CPU_PATH_FAST, B, T, 1);
    t::Session two = session_on(m.get(), SLSTM_CPU_PATH_FAST, B, T, 2);
    const std::string json = t::describe_json(two.get());
    INFO(json);
    CHECK(t::json_value(json, "split").find("fewer than 65 rows") != std::string::npos);
    const t::Run want = t::forward_ok(one.get(), m.get(), c);
    const t::Run got = t::forward_ok(two.get(), m.get(), c);
    CHECK(t::count_poison(got.output) == 0);
    CHECK(t::bitwise_equal(got.output, want.output));
    CHECK(t::bitwise_equal(got.final_state, want.final_state));
  }
}

TEST_CASE("an ONNX LSTM node's direction and peepholes become its layer description",
          "[layers][onnx]") {
  slstm_onnx_lstm_node node;
  slstm_onnx_lstm_node_init(&node);
  node.direction = "bidirectional";
  const std::vector<float> p(2 * 3 * 4, 0.5f);
  slstm_tensor pt{p.data(), 2, {2, 12, 0, 0}};
  node.peepholes = &pt;
  slstm_layer_config l;
  slstm_layer_config_init(&l);
  REQUIRE(slstm_onnx_lstm_node_layer(&node, 4, &l) == SLSTM_OK);
  CHECK(l.cell == SLSTM_CELL_LSTM);
  CHECK(l.hidden_size == 4);
  CHECK(l.direction == SLSTM_DIRECTION_BIDIRECTIONAL);
  CHECK(l.peepholes == 1);
  node.direction = "reverse";
  node.peepholes = nullptr;
  REQUIRE(slstm_onnx_lstm_node_layer(&node, 4, &l) == SLSTM_OK);
  CHECK(l.direction == SLSTM_DIRECTION_REVERSE);
  CHECK(l.peepholes == 0);
  // A hidden_sizes stack still refuses what it cannot hold.
  CHECK(slstm_onnx_check_node(&node) == SLSTM_ERR_UNSUPPORTED);
}

TEST_CASE("an ONNX LSTM node with clip or an unknown direction has no layer description",
          "[layers][onnx][errors]") {
  slstm_onnx_lstm_node node;
  slstm_onnx_lstm_node_init(&node);
  slstm_layer_config l;
  slstm_layer_config_init(&l);
  const slstm_layer_config before = l;
  node.has_clip = 1;
  node.clip = 3.0f;
  CHECK(slstm_onnx_lstm_node_layer(&node, 4, &l) == SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("node->clip"));
  node.has_clip = 0;
  node.direction = "sideways";
  CHECK(slstm_onnx_lstm_node_layer(&node, 4, &l) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("node->direction"));
  CHECK(std::memcmp(&l, &before, sizeof l) == 0);
}

TEST_CASE("an ONNX GRU node gives a GRU layer of its direction and linear_before_reset",
          "[layers][onnx][gru]") {
  slstm_onnx_gru_node node;
  slstm_onnx_gru_node_init(&node);
  slstm_layer_config l;
  slstm_layer_config_init(&l);
  REQUIRE(slstm_onnx_gru_node_layer(&node, 6, &l) == SLSTM_OK);
  CHECK(l.cell == SLSTM_CELL_GRU);
  CHECK(l.hidden_size == 6);
  CHECK(l.direction == SLSTM_DIRECTION_FORWARD);
  CHECK(l.gru_reset_after == 0);
  CHECK(l.peepholes == 0);
  const char* const acts[4] = {"sigmoid", "TANH", "Sigmoid", "Tanh"};
  node.direction = "bidirectional";
  node.linear_before_reset = 1;
  node.num_activations = 4;
  node.activations = acts;
  REQUIRE(slstm_onnx_gru_node_layer(&node, 3, &l) == SLSTM_OK);
  CHECK(l.direction == SLSTM_DIRECTION_BIDIRECTIONAL);
  CHECK(l.gru_reset_after == 1);
  CHECK(l.hidden_size == 3);
  node.direction = "REVERSE";
  node.num_activations = 2;
  REQUIRE(slstm_onnx_gru_node_layer(&node, 3, &l) == SLSTM_OK);
  CHECK(l.direction == SLSTM_DIRECTION_REVERSE);
  // The layer it gives makes a model.
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = 2;
  c.num_layers = 1;
  c.layers = &l;
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create_random(&c, 1, 0.0f, &raw) == SLSTM_OK);
  slstm_model_destroy(raw);
}

TEST_CASE("an ONNX GRU node the library cannot compute is refused naming the attribute",
          "[layers][onnx][gru][errors]") {
  slstm_layer_config l;
  slstm_layer_config_init(&l);
  l.hidden_size = 99;
  const slstm_layer_config before = l;
  const char* const other[2] = {"Sigmoid", "Relu"};
  const char* const four[4] = {"Sigmoid", "Tanh", "Sigmoid", "Tanh"};
  struct Case {
    const char* what;
    void (*edit)(slstm_onnx_gru_node&);
    slstm_status status;
    const char* fragment;
  };
  static const char* const* other_acts = other;
  static const char* const* four_acts = four;
  const Case cases[] = {
      {"clip", [](slstm_onnx_gru_node& n) { n.has_clip = 1; n.clip = 2.0f; },
       SLSTM_ERR_UNSUPPORTED, "node->clip"},
      {"linear_before_reset 2", [](slstm_onnx_gru_node& n) { n.linear_before_reset = 2; },
       SLSTM_ERR_INVALID_ARGUMENT, "node->linear_before_reset must be 0 or 1, got 2"},
      {"linear_before_reset -1", [](slstm_onnx_gru_node& n) { n.linear_before_reset = -1; },
       SLSTM_ERR_INVALID_ARGUMENT, "node->linear_before_reset must be 0 or 1, got -1"},
      {"unknown direction", [](slstm_onnx_gru_node& n) { n.direction = "sideways"; },
       SLSTM_ERR_INVALID_ARGUMENT, "node->direction is \"sideways\""},
      {"other activations",
       [](slstm_onnx_gru_node& n) { n.num_activations = 2; n.activations = other_acts; },
       SLSTM_ERR_UNSUPPORTED, "node->activations: only the default (sigmoid, tanh"},
      {"4 activations, forward",
       [](slstm_onnx_gru_node& n) { n.num_activations = 4; n.activations = four_acts; },
       SLSTM_ERR_INVALID_ARGUMENT, "4 entries, but the node is not bidirectional"},
      {"3 activations",
       [](slstm_onnx_gru_node& n) { n.num_activations = 3; n.activations = four_acts; },
       SLSTM_ERR_UNSUPPORTED, "node->activations"},
      {"NULL activations", [](slstm_onnx_gru_node& n) { n.num_activations = 2; },
       SLSTM_ERR_INVALID_ARGUMENT, "node->activations: NULL"},
      {"a negative activation count", [](slstm_onnx_gru_node& n) { n.num_activations = -2; },
       SLSTM_ERR_INVALID_ARGUMENT, "node->activations: NULL or a negative count (-2)"},
  };
  for (const Case& k : cases) {
    INFO(k.what);
    slstm_onnx_gru_node node;
    slstm_onnx_gru_node_init(&node);
    k.edit(node);
    CHECK(slstm_onnx_gru_node_layer(&node, 4, &l) == k.status);
    CHECK_THAT(std::string(slstm_last_error()), Contains(k.fragment));
    CHECK(std::memcmp(&l, &before, sizeof l) == 0);
  }
  slstm_onnx_gru_node node;
  slstm_onnx_gru_node_init(&node);
  CHECK(slstm_onnx_gru_node_layer(&node, 0, &l) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("hidden_size"));
  CHECK(slstm_onnx_gru_node_layer(nullptr, 4, &l) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("node"));
  CHECK(slstm_onnx_gru_node_layer(&node, 4, nullptr) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("out"));
  slstm_layer_config raw_out;
  std::memset(&raw_out, 0, sizeof raw_out);  // not initialised: struct_size 0
  CHECK(slstm_onnx_gru_node_layer(&node, 4, &raw_out) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("out->struct_size"));
  CHECK(std::memcmp(&l, &before, sizeof l) == 0);
}

TEST_CASE("an array of layer configs is read at its elements' struct_size stride",
          "[layers][abi]") {
  // A caller built against a newer header: each element 8 bytes larger, the tail zero.
  struct Newer {
    slstm_layer_config c;
    unsigned char tail[8];
  };
  Newer layers[2];
  std::memset(layers, 0, sizeof layers);
  for (Newer& n : layers) slstm_layer_config_init_sized(&n.c, sizeof(Newer));
  layers[0].c.hidden_size = 5;
  layers[1].c.hidden_size = 3;
  layers[1].c.cell = SLSTM_CELL_GRU;
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = 2;
  c.num_layers = 2;
  c.layers = &layers[0].c;
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create_random(&c, 1, 0.0f, &raw) == SLSTM_OK);
  t::Model m(raw);
  slstm_layer_config got;
  slstm_layer_config_init(&got);
  REQUIRE(slstm_model_layer(m.get(), 1, &got) == SLSTM_OK);
  CHECK(got.cell == SLSTM_CELL_GRU);
  CHECK(got.hidden_size == 3);
  // Elements of different sizes in one array are refused.
  layers[1].c.struct_size = sizeof(slstm_layer_config);
  slstm_model* none = nullptr;
  CHECK(slstm_model_create_random(&c, 1, 0.0f, &none) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK(none == nullptr);
  CHECK_THAT(std::string(slstm_last_error()), Contains("config->layers[1]->struct_size"));
}

TEST_CASE("an ONNX node's hidden_size above SLSTM_MAX_EXTENT has no layer description",
          "[layers][onnx][errors]") {
  slstm_onnx_lstm_node node;
  slstm_onnx_lstm_node_init(&node);
  slstm_onnx_gru_node gru_node;
  slstm_onnx_gru_node_init(&gru_node);
  slstm_layer_config l;
  slstm_layer_config_init(&l);
  const slstm_layer_config before = l;
  CHECK(slstm_onnx_lstm_node_layer(&node, SLSTM_MAX_EXTENT + 1, &l) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()),
             Contains("hidden_size must be in [1, SLSTM_MAX_EXTENT]"));
  CHECK(slstm_onnx_gru_node_layer(&gru_node, SLSTM_MAX_EXTENT + 1, &l) ==
        SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("hidden_size"));
  CHECK(std::memcmp(&l, &before, sizeof l) == 0);
}

TEST_CASE("an ONNX LSTM node with six activations that is not bidirectional has no layer "
          "description",
          "[layers][onnx][errors]") {
  slstm_onnx_lstm_node node;
  slstm_onnx_lstm_node_init(&node);
  const char* const six[6] = {"Sigmoid", "Tanh", "Tanh", "Sigmoid", "Tanh", "Tanh"};
  node.num_activations = 6;
  node.activations = six;
  slstm_layer_config l;
  slstm_layer_config_init(&l);
  const slstm_layer_config before = l;
  for (const char* direction : {static_cast<const char*>(nullptr), "forward", "reverse"}) {
    INFO("direction " << (direction ? direction : "NULL"));
    node.direction = direction;
    CHECK(slstm_onnx_lstm_node_layer(&node, 4, &l) == SLSTM_ERR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(slstm_last_error()),
               Contains("6 entries, but the node is not bidirectional"));
  }
  CHECK(std::memcmp(&l, &before, sizeof l) == 0);
  node.direction = "bidirectional";
  CHECK(slstm_onnx_lstm_node_layer(&node, 4, &l) == SLSTM_OK);
}

TEST_CASE("an ONNX node's layer description is refused into an out struct_size too large to be "
          "real",
          "[layers][onnx][errors][abi]") {
  slstm_onnx_lstm_node node;
  slstm_onnx_lstm_node_init(&node);
  // Room for every byte the struct_size claims, so a write past the struct stays in it.
  const std::uint32_t claimed = 1u << 20;
  std::vector<unsigned char> room(claimed, 0x5a);
  auto* out = reinterpret_cast<slstm_layer_config*>(room.data());
  out->struct_size = claimed;
  CHECK(slstm_onnx_lstm_node_layer(&node, 4, out) == SLSTM_ERR_INVALID_ARGUMENT);
  CHECK_THAT(std::string(slstm_last_error()), Contains("out->struct_size"));
  CHECK(std::count(room.begin() + sizeof(std::uint32_t), room.end(), 0x5a) ==
        static_cast<std::ptrdiff_t>(room.size() - sizeof(std::uint32_t)));
}

TEST_CASE("a negative layer flag is refused naming it", "[layers][errors]") {
  slstm_layer_config residual = lstm(4);
  residual.residual = -1;
  CHECK_THAT(create_error(4, {residual}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].residual must be 0 or 1, got -1"));
  slstm_layer_config peepholes = lstm(4);
  peepholes.peepholes = -1;
  CHECK_THAT(create_error(3, {peepholes}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].peepholes must be 0 or 1, got -1"));
}

TEST_CASE("a stack with a reverse layer writes zeros past each row's length on every call",
          "[layers][direction]") {
  // A first call of full rows leaves numbers in the session's workspaces; a second call of
  // shorter rows must still give zeros past each length, not the first call's numbers.
  const std::int64_t B = 3, T = 5, D = 3, H = 4;
  const std::vector<slstm_layer_config> layers = {
      with_direction(lstm(H), SLSTM_DIRECTION_REVERSE), lstm(H)};
  t::Model m = random_layers(D, layers, 17);
  t::Session s = t::session(m.get(), B, T);
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 18);
  t::forward_ok(s.get(), m.get(), t::call_of(B, T, x));
  const std::vector<std::int32_t> len = {2, 0, 4};
  t::Call c = t::call_of(B, T, x);
  c.lengths = &len;
  const t::Run r = t::forward_ok(s.get(), m.get(), c);
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t t = len[static_cast<std::size_t>(b)]; t < T; ++t) {
      for (std::int64_t u = 0; u < H; ++u) {
        INFO("row " << b << ", step " << t << ", unit " << u);
        CHECK(r.output[static_cast<std::size_t>((b * T + t) * H + u)] == 0.0f);
      }
    }
  }
}

namespace {

// One call of `m` on the generic fast path and on the reference path (same call, lengths and
// initial state); checks that the fast output has no poison left and agrees with the
// reference to a few float32 ulps (as "the generic fast path agrees with the reference on
// every kind of layer").  Returns the fast run.
t::Run fast_against_reference(const slstm_model* m, std::int64_t B, std::int64_t T,
                              const std::vector<float>& x, const std::vector<std::int32_t>* len,
                              slstm_layout layout = SLSTM_BATCH_MAJOR) {
  const auto init = t::random_vector(t::state_count(m, B), 31, -0.5f, 0.5f);
  t::Call c = t::call_of(B, T, x, layout);
  c.lengths = len;
  c.initial_state = &init;
  t::Session ref = session_on(m, SLSTM_CPU_PATH_REFERENCE, B, T);
  t::Session fast = session_on(m, SLSTM_CPU_PATH_AUTO, B, T);
  const t::Run want = t::forward_ok(ref.get(), m, c);
  const t::Run got = t::forward_ok(fast.get(), m, c);
  CHECK(t::count_poison(got.output) == 0);
  CHECK(t::rel_err(got.output, want.output) < 2e-6);
  CHECK(t::rel_err(got.final_state, want.final_state) < 2e-6);
  return got;
}

}  // namespace

TEST_CASE("a cell_clip without peepholes binds on the generic fast path as on the reference",
          "[layers][lstm][cpu-fast]") {
  const std::int64_t B = 2, T = 5, D = 3, H = 6;
  slstm_layer_config l = lstm(H);
  l.cell_clip = 0.05f;  // no peepholes, no projection: only the clip leaves BasicLSTMCell
  const std::vector<slstm_layer_config> layers = {l};
  const slstm_model_config c = config_of(D, layers);
  slstm_model* raw = nullptr;
  REQUIRE(slstm_model_create_random(&c, 3, 2.0f, &raw) == SLSTM_OK);  // large weights
  t::Model m(raw);
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 4, -3.0f, 3.0f);
  const t::Run got = fast_against_reference(m.get(), B, T, x, nullptr);
  float max_c = 0.0f;  // (the packed state: c [B, H] first)
  for (std::int64_t k = 0; k < B * H; ++k) max_c = std::max(max_c, std::fabs(got.final_state[k]));
  CHECK(max_c == 0.05f);
}

TEST_CASE("a residual first layer adds each row's own input on the generic fast path",
          "[layers][residual][cpu-fast]") {
  // Row 0 of length 0 ahead of the others (the active rows of a step are not the batch
  // rows), and a wider layer above (the workspace's row stride is not the input's): in a
  // stack that reads forward (time-major) and in one with a bidirectional layer.
  const std::int64_t B = 3, T = 4, D = 6;
  slstm_layer_config fwd = gru(D, false);
  fwd.residual = 1;
  slstm_layer_config bi = with_direction(lstm(D / 2), SLSTM_DIRECTION_BIDIRECTIONAL);
  bi.residual = 1;
  const std::vector<std::int32_t> len = {0, 4, 2};
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 25);
  std::uint64_t seed = 26;
  for (const slstm_layer_config& first : {fwd, bi}) {
    const t::Model m = random_layers(D, {first, lstm(10)}, ++seed);
    for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
      INFO("seed " << seed << ", layout " << layout);
      fast_against_reference(m.get(), B, T, x, &len, layout);
    }
  }
}

TEST_CASE("a stack whose first layer reads backwards refuses stepping, naming layer 0",
          "[layers][streaming][errors]") {
  t::Model m = random_layers(2, {with_direction(lstm(3), SLSTM_DIRECTION_BIDIRECTIONAL)});
  t::Session s = t::session(m.get(), 1, 1);
  const std::vector<float> x(2, 0.5f);
  std::vector<float> y = t::poisoned(6);
  CHECK(slstm_session_step(s.get(), 1, x.data(), 2, nullptr, 0, y.data(), 6, nullptr, 0) ==
        SLSTM_ERR_UNSUPPORTED);
  CHECK_THAT(std::string(slstm_last_error()), Contains("layer 0 is bidirectional"));
  CHECK(t::count_poison(y) == 6);
}

TEST_CASE("a GRU layer given an LSTM-only clip or projection is refused naming the field",
          "[layers][errors]") {
  slstm_layer_config cell_clip = gru(4, true);
  cell_clip.cell_clip = 1.0f;
  CHECK_THAT(create_error(3, {cell_clip}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].cell_clip"));
  slstm_layer_config proj = gru(4, false);
  proj.proj_size = 2;
  CHECK_THAT(create_error(3, {proj}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[0].proj_size"));
  slstm_layer_config proj_clip = gru(4, false);
  proj_clip.proj_clip = 1.0f;
  CHECK_THAT(create_error(3, {lstm(2), proj_clip}, SLSTM_ERR_INVALID_ARGUMENT),
             Contains("config->layers[1].proj_clip"));
}

TEST_CASE("plain LSTM layers of 8 units and more in a stack beyond BasicLSTMCell give the "
          "reference's numbers on the generic fast path",
          "[layers][lstm][cpu-fast]") {
  // 13 units: one whole vector of the AVX2 cell math (8) and a padded tail (5), after a GRU
  // (a forward stack: time-major) and reading backwards (layer-major).
  const std::int64_t B = 3, T = 4, D = 5;
  const std::vector<std::int32_t> len = {4, 0, 3};
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 27);
  std::uint64_t seed = 28;
  for (const auto& layers : {std::vector<slstm_layer_config>{gru(6, true), lstm(13)},
                             std::vector<slstm_layer_config>{
                                 with_direction(lstm(13), SLSTM_DIRECTION_REVERSE)}}) {
    const t::Model m = random_layers(D, layers, ++seed);
    INFO("seed " << seed);
    fast_against_reference(m.get(), B, T, x, &len);
  }
}

TEST_CASE("a call from the zero state gives the bits of one from explicit zeros on the generic "
          "fast path, for every kind of layer",
          "[layers][cpu-fast]") {
  // Without initial_state each direction's first step skips its recurrent products (h = 0);
  // with explicit zeros they run.  Every stack of the zoo (a reverse layer's and the backward
  // half's first step is each row's last), rows of length 0 and T - 1, T = 1 and 4, both
  // layouts, one thread, rows split, directions split and teams, FP32 and BF16.
  constexpr std::int64_t D = 6;
  int stack = 0;
  for (const auto& layers : zoo()) {
    t::Model m = random_layers(D, layers, 90 + static_cast<std::uint64_t>(stack++));
    for (const std::int32_t precision : {SLSTM_PRECISION_FP32, SLSTM_PRECISION_BF16}) {
      for (const char* config : {"", "cpu.team=always"}) {
        for (const int threads : {1, 2, 3}) {
          t::Session s = session_on(m.get(), SLSTM_CPU_PATH_AUTO, 5, 4, threads, config,
                                    precision);
          for (const std::int64_t B : {1, 2, 5}) {
            for (const std::int64_t T : {1, 4}) {
              INFO("stack " << stack << ", precision " << precision << ", \"" << config
                            << "\", " << threads << " threads, B = " << B << ", T = " << T);
              const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 91);
              const auto T32 = static_cast<std::int32_t>(T);
              std::vector<std::int32_t> len = {T32, 0, T32 - 1, 1, T32};
              len.resize(static_cast<std::size_t>(B));
              for (slstm_layout layout : {SLSTM_BATCH_MAJOR, SLSTM_TIME_MAJOR}) {
                t::Call absent = t::call_of(B, T, x, layout);
                absent.lengths = &len;
                t::check_zero_state_bits(s.get(), m.get(), absent);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("a first step whose pre-activations flush to -0 gives the bits of one from explicit "
          "zeros on the generic fast path",
          "[layers][cpu-fast]") {
  // Input 1 times W_x = -(2^-126 + 2^-129) from the bias 2^-126 leaves -2^-129, flushed to -0
  // (the CPU paths flush denormals): from the zero state every pre-activation of a
  // direction's first step stays -0, where adding the skipped product (h = 0 times W_h of
  // both signs) would have made it +0.  The gates must not tell the two apart: sigmoid(-0) =
  // sigmoid(+0), and tanh(-0) = -0 reaches c and the GRU's h only as a term added to +0.
  constexpr std::int64_t D = 1, B = 3, T = 3;
  const float bias = std::ldexp(1.0f, -126);
  const float w_x = -(std::ldexp(1.0f, -126) + std::ldexp(1.0f, -129));
  slstm_layer_config peep = lstm(5);
  peep.peepholes = 1;
  slstm_layer_config clipped = lstm(9);
  clipped.cell_clip = 0.5f;
  clipped.proj_size = 4;
  const std::vector<slstm_layer_config> layers = {
      peep, clipped, gru(6, true), gru(6, false), lstm(9)};  // lstm(9): bidirectional below
  const std::vector<std::int32_t> len = {3, 1, 2};
  const std::vector<float> x(static_cast<std::size_t>(B * T * D), 1.0f);
  std::uint64_t seed = 95;
  for (const slstm_layer_config& layer : layers) {
    for (const slstm_direction dir : {SLSTM_DIRECTION_FORWARD, SLSTM_DIRECTION_BIDIRECTIONAL}) {
      if (layer.peepholes == 0 && layer.cell_clip == 0.0f && layer.cell == SLSTM_CELL_LSTM &&
          dir == SLSTM_DIRECTION_FORWARD) {
        continue;  // (a forward BasicLSTMCell runs the fused path: test_cpu_fast.cpp)
      }
      const std::vector<slstm_layer_config> stack = {with_direction(layer, dir)};
      const slstm_model_config c = config_of(D, stack, 0.0f);
      const t::Model random = t::random_stack(D, stack, ++seed);
      std::vector<std::vector<float>> data = canonical(random.get(), c);
      std::vector<slstm_tensor_info> info(data.size());
      for (auto& i : info) i.struct_size = sizeof i;
      std::size_t n = 0;
      REQUIRE(slstm_format_tensors(&c, SLSTM_FORMAT_CANONICAL, info.data(), info.size(), &n) ==
              SLSTM_OK);
      for (std::size_t k = 0; k < n; ++k) {
        const std::string name = info[k].name;  // (canonical: the same names per direction)
        if (name == "W_x") std::fill(data[k].begin(), data[k].end(), w_x);
        if (name == "b" || name == "b_x") std::fill(data[k].begin(), data[k].end(), bias);
        if (name == "b_h") std::fill(data[k].begin(), data[k].end(), 0.0f);
      }
      const t::Model m = from_canonical(c, data);
      for (const int threads : {1, 2}) {
        INFO("layer cell " << layer.cell << " peepholes " << layer.peepholes << ", direction "
                           << dir << ", " << threads << " threads");
        t::Session s = session_on(m.get(), SLSTM_CPU_PATH_AUTO, B, T, threads);
        t::Call absent = t::call_of(B, T, x);
        absent.lengths = &len;
        t::check_zero_state_bits(s.get(), m.get(), absent);
      }
    }
  }
}

TEST_CASE("peepholes and a cell clip on whole vectors and a padded tail give the reference's "
          "numbers on the generic fast path",
          "[layers][lstm][cpu-fast]") {
  // 13 and 21 units: one or two whole vectors of the AVX2 cell math (8) and a padded tail;
  // peepholes alone, a clip alone (large weights: it binds), both with a projection; a
  // forward stack (time-major) and a reverse one (layer-major); one thread and a team of 2
  // (cpu.team=always: each worker its units of a row, cut at a multiple of 8).
  const std::int64_t B = 3, T = 5, D = 4;
  const std::vector<std::int32_t> len = {5, 0, 3};
  const auto x = t::random_vector(static_cast<std::size_t>(B * T * D), 33, -3.0f, 3.0f);
  std::uint64_t seed = 34;
  for (const std::int64_t H : {13, 21}) {
    slstm_layer_config peep = lstm(H), clipped = lstm(H), both = lstm(H);
    peep.peepholes = 1;
    clipped.cell_clip = 0.3f;
    both.peepholes = 1;
    both.cell_clip = 0.3f;
    both.proj_size = 6;
    for (const slstm_layer_config& l : {peep, clipped, both}) {
      for (const slstm_direction dir : {SLSTM_DIRECTION_FORWARD, SLSTM_DIRECTION_REVERSE}) {
        const std::vector<slstm_layer_config> layers = {with_direction(l, dir)};
        const slstm_model_config c = config_of(D, layers);
        slstm_model* raw = nullptr;
        REQUIRE(slstm_model_create_random(&c, ++seed, 2.0f, &raw) == SLSTM_OK);
        t::Model m(raw);
        const auto init = t::random_vector(t::state_count(m.get(), B), ++seed, -0.5f, 0.5f);
        t::Call call = t::call_of(B, T, x);
        call.lengths = &len;
        call.initial_state = &init;
        t::Session ref = session_on(m.get(), SLSTM_CPU_PATH_REFERENCE, B, T);
        const t::Run want = t::forward_ok(ref.get(), m.get(), call);
        float max_c = 0.0f;  // (the packed state: c [B, H] first; row 1 keeps its state)
        for (const std::int64_t b : {0, 2}) {
          for (std::int64_t u = 0; u < H; ++u) {
            const float c_bu = want.final_state[static_cast<std::size_t>(b * H + u)];
            max_c = std::max(max_c, std::fabs(c_bu));
          }
        }
        if (l.cell_clip > 0.0f) CHECK(max_c == l.cell_clip);  // the clip binds
        for (const int threads : {1, 2}) {
          INFO("H = " << H << ", peepholes " << l.peepholes << ", cell_clip " << l.cell_clip
                      << ", direction " << dir << ", " << threads << " threads");
          t::Session fast =
              session_on(m.get(), SLSTM_CPU_PATH_AUTO, B, T, threads, "cpu.team=always");
          const t::Run got = t::forward_ok(fast.get(), m.get(), call);
          CHECK(t::count_poison(got.output) == 0);
          CHECK(t::rel_err(got.output, want.output) < 2e-6);
          CHECK(t::rel_err(got.final_state, want.final_state) < 2e-6);
        }
      }
    }
  }
}

TEST_CASE("a NaN input keeps its row NaN through a cell clip on the generic fast path",
          "[layers][lstm][nan][cpu-fast]") {
  // The clip must not turn a NaN c into a bound: the row's outputs from the NaN's step on
  // and its final c and h are NaN; the other rows are those of the clean input, bit for bit.
  const std::int64_t B = 3, T = 4, D = 2, H = 11;  // (a whole vector and a tail)
  slstm_layer_config l = lstm(H);
  l.cell_clip = 0.5f;
  for (const int peepholes : {0, 1}) {
    l.peepholes = peepholes;
    const t::Model m = random_layers(D, {l}, 36);
    t::Session s = session_on(m.get(), SLSTM_CPU_PATH_AUTO, B, T, 1);
    const auto clean = t::random_vector(static_cast<std::size_t>(B * T * D), 37);
    std::vector<float> dirty = clean;
    constexpr std::int64_t nb = 1, nt = 1;
    dirty[static_cast<std::size_t>((nb * T + nt) * D)] = std::numeric_limits<float>::quiet_NaN();
    t::Call call = t::call_of(B, T, clean);
    const t::Run a = t::forward_ok(s.get(), m.get(), call);
    call.input = &dirty;
    const t::Run b = t::forward_ok(s.get(), m.get(), call);
    INFO("peepholes " << peepholes);
    for (std::int64_t bb = 0; bb < B; ++bb) {
      for (std::int64_t tt = 0; tt < T; ++tt) {
        const std::size_t k = static_cast<std::size_t>((bb * T + tt) * H);
        if (bb == nb && tt >= nt) {
          for (std::int64_t u = 0; u < H; ++u) CHECK(std::isnan(b.output[k + u]));
        } else {
          CHECK(t::bitwise_equal(&a.output[k], &b.output[k], static_cast<std::size_t>(H)));
        }
      }
    }
    for (const std::int64_t part : {0, 1}) {  // c [B, H], then h [B, H]
      for (std::int64_t u = 0; u < H; ++u) {
        CHECK(std::isnan(b.final_state[static_cast<std::size_t>((part * B + nb) * H + u)]));
      }
    }
  }
}
