#include "support.hpp"

#if defined(__linux__)
#include <dirent.h>
#endif

#include <algorithm>
#include <chrono>
#include <thread>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace t {

// The fast path's kernel named by $SLSTM_TEST_CPU_PATH ("" when it names none).
std::string kernel_under_test() {
  const char* env = std::getenv("SLSTM_TEST_CPU_PATH");
  if (env == nullptr) return "";
  if (std::strcmp(env, "fast-portable") == 0) return "portable";
  if (std::strcmp(env, "fast-avx2") == 0) return "avx2";
  return "";
}

slstm_cpu_path cpu_path_under_test() {
  const char* env = std::getenv("SLSTM_TEST_CPU_PATH");
  if (env == nullptr || std::strcmp(env, "auto") == 0) return SLSTM_CPU_PATH_AUTO;
  if (std::strcmp(env, "reference") == 0) return SLSTM_CPU_PATH_REFERENCE;
  if (std::strcmp(env, "fast") == 0 || !kernel_under_test().empty()) return SLSTM_CPU_PATH_FAST;
  throw std::runtime_error(std::string("SLSTM_TEST_CPU_PATH: unknown value ") + env);
}

void use_cpu_kernel_under_test() {
  const std::string kernel = kernel_under_test();
  if (!kernel.empty()) setenv("SLSTM_CPU_KERNEL", kernel.c_str(), 1);
}

std::string describe_json(const slstm_session* session) {
  std::size_t n = 0;
  REQUIRE(slstm_session_describe(session, SLSTM_DESCRIBE_JSON, nullptr, 0, &n) == SLSTM_OK);
  std::string text(n + 1, '\0');
  REQUIRE(slstm_session_describe(session, SLSTM_DESCRIBE_JSON, &text[0], text.size(), nullptr) ==
          SLSTM_OK);
  text.resize(n);
  return text;
}

std::string json_value(const std::string& json, const std::string& key) {
  const std::vector<std::string> all = json_values(json, key);
  return all.empty() ? "" : all.front();
}

std::vector<std::string> json_values(const std::string& json, const std::string& key) {
  const std::string at = "\"" + key + "\": \"";
  std::vector<std::string> out;
  for (std::size_t i = json.find(at); i != std::string::npos; i = json.find(at, i + 1)) {
    const std::size_t from = i + at.size();
    out.push_back(json.substr(from, json.find('"', from) - from));
  }
  return out;
}

bool bitwise_equal(const float* a, const float* b, std::size_t n) {
  return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && bitwise_equal(a.data(), b.data(), a.size());
}

slstm_session_options options(std::int64_t max_batch, std::int64_t max_time) {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CPU;
  o.cpu_path = cpu_path_under_test();
  o.max_batch = max_batch;
  o.max_time = max_time;
  return o;
}

Model canonical_model(std::int64_t input, std::int64_t hidden, std::vector<float> w_x,
                      std::vector<float> w_h, std::vector<float> b) {
  const std::int64_t hidden_sizes[] = {hidden};
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = input;
  c.num_layers = 1;
  c.hidden_sizes = hidden_sizes;
  slstm_tensor ts[3] = {};
  ts[0] = {w_x.data(), 2, {4 * hidden, input}};
  ts[1] = {w_h.data(), 2, {4 * hidden, hidden}};
  ts[2] = {b.data(), 1, {4 * hidden}};
  slstm_model* m = nullptr;
  const slstm_status st = slstm_model_create(&c, SLSTM_FORMAT_CANONICAL, ts, 3, &m);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return Model(m);
}

Model random_model(std::int64_t input_size, const std::vector<std::int64_t>& hidden,
                   std::uint64_t seed, float forget_bias, float scale) {
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = input_size;
  cfg.num_layers = static_cast<std::int32_t>(hidden.size());
  cfg.hidden_sizes = hidden.data();
  cfg.forget_bias = forget_bias;
  slstm_model* m = nullptr;
  const slstm_status st = slstm_model_create_random(&cfg, seed, scale, &m);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return Model(m);
}

slstm_layer_config lstm_layer(std::int64_t hidden) {
  slstm_layer_config l;
  slstm_layer_config_init(&l);
  l.hidden_size = hidden;
  return l;
}

slstm_layer_config gru_layer(std::int64_t hidden, bool reset_after) {
  slstm_layer_config l = lstm_layer(hidden);
  l.cell = SLSTM_CELL_GRU;
  l.gru_reset_after = reset_after ? 1 : 0;
  return l;
}

slstm_layer_config with_direction(slstm_layer_config l, slstm_direction d) {
  l.direction = d;
  return l;
}

Model random_stack(std::int64_t input_size, const std::vector<slstm_layer_config>& layers,
                   std::uint64_t seed) {
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = input_size;
  c.num_layers = static_cast<std::int32_t>(layers.size());
  c.layers = layers.data();
  c.forget_bias = 1.0f;
  slstm_model* m = nullptr;
  const slstm_status st = slstm_model_create_random(&c, seed, 0.0f, &m);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return Model(m);
}

std::vector<std::vector<slstm_layer_config>> layer_zoo() {
  slstm_layer_config lstmp = lstm_layer(7);
  lstmp.peepholes = 1;
  lstmp.cell_clip = 0.8f;
  lstmp.proj_size = 5;
  lstmp.proj_clip = 0.6f;
  slstm_layer_config res = gru_layer(5, false);
  res.residual = 1;
  slstm_layer_config bi = with_direction(lstm_layer(3), SLSTM_DIRECTION_BIDIRECTIONAL);
  bi.peepholes = 1;
  slstm_layer_config bires = with_direction(gru_layer(3, true), SLSTM_DIRECTION_BIDIRECTIONAL);
  bires.residual = 1;
  return {{lstmp, res, gru_layer(4, true)},
          {gru_layer(6, false)},
          {with_direction(lstm_layer(4), SLSTM_DIRECTION_REVERSE), gru_layer(3, true)},
          {bi, bires, lstmp},
          {lstm_layer(5), with_direction(gru_layer(4, false), SLSTM_DIRECTION_BIDIRECTIONAL)}};
}

Session cuda_session(const slstm_model* model, std::int64_t max_batch, std::int64_t max_time,
                     const char* config, int allow_tf32, std::int32_t precision) {
  if (slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    WARN("SKIPPED: no usable GPU: " << slstm_last_error());
    return Session();
  }
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CUDA;
  o.max_batch = max_batch;
  o.max_time = max_time;
  o.config = config;
  o.allow_tf32 = allow_tf32;
  o.precision = precision;
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(model, &o, &s);
  INFO("slstm_session_create (CUDA, config \"" << (config ? config : "") << "\"): "
                                                 << slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return Session(s);
}

Session session(const slstm_model* model, std::int64_t max_batch, std::int64_t max_time) {
  const slstm_session_options o = options(max_batch, max_time);
  slstm_session* s = nullptr;
  const slstm_status st = slstm_session_create(model, &o, &s);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return Session(s);
}

std::vector<float> random_vector(std::size_t n, std::uint64_t seed, float lo, float hi) {
  std::vector<float> v(n);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& e : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const double u = static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0);
    e = static_cast<float>(lo + (hi - lo) * u);
  }
  return v;
}

namespace {
constexpr std::uint32_t kPoisonBits = 0x7FA5A5A5u;  // a quiet NaN with a payload
}

std::vector<float> poisoned(std::size_t n) {
  float p;
  std::memcpy(&p, &kPoisonBits, sizeof p);
  return std::vector<float>(n, p);
}

bool is_poison(float v) {
  std::uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits == kPoisonBits;
}

std::size_t count_poison(const std::vector<float>& v) {
  std::size_t n = 0;
  for (float e : v) n += is_poison(e) ? 1 : 0;
  return n;
}

namespace {
template <typename W>
double rel_err_impl(const std::vector<float>& got, const std::vector<W>& want) {
  REQUIRE(got.size() == want.size());
  double max_diff = 0.0, max_ref = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = static_cast<double>(want[i]);
    if (std::isnan(g) != std::isnan(w)) return INFINITY;
    if (std::isnan(g)) continue;
    max_diff = std::fmax(max_diff, std::fabs(g - w));
    max_ref = std::fmax(max_ref, std::fabs(w));
  }
  return max_diff / std::fmax(max_ref, 1e-30);
}
}  // namespace

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]));
  }
  return worst;
}

double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  return rel_err_impl(got, want);
}
double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  return rel_err_impl(got, want);
}

std::size_t state_count(const slstm_model* model, std::int64_t batch) {
  std::size_t n = 0;
  REQUIRE(slstm_model_state_count(model, batch, &n) == SLSTM_OK);
  return n;
}

std::int64_t output_size(const slstm_model* model) {
  std::int64_t w = 0;
  REQUIRE(slstm_model_output_size(model, &w) == SLSTM_OK);
  return w;
}

std::int64_t input_size(const slstm_model* model) {
  std::int64_t d = 0;
  REQUIRE(slstm_model_input_size(model, &d) == SLSTM_OK);
  return d;
}

Call call_of(std::int64_t batch, std::int64_t time, const std::vector<float>& input,
             slstm_layout layout) {
  Call c;
  c.batch = batch;
  c.time = time;
  c.layout = layout;
  c.input = &input;
  return c;
}

Run forward(slstm_session* session, const slstm_model* model, const Call& c) {
  Run r;
  const std::size_t n_out = static_cast<std::size_t>(c.batch * c.time * output_size(model));
  const std::size_t n_state = state_count(model, c.batch);
  r.output = poisoned(c.want_output ? n_out : 0);
  r.final_state = poisoned(c.want_final_state ? n_state : 0);
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.layout = c.layout;
  a.batch = c.batch;
  a.time = c.time;
  a.memory = c.memory;
  if (c.input) {
    a.input = c.input->data();
    a.input_count = c.input->size();
  }
  if (c.lengths) {
    a.sequence_lengths = c.lengths->data();
    a.sequence_lengths_count = c.lengths->size();
  }
  if (c.initial_state) {
    a.initial_state = c.initial_state->data();
    a.initial_state_count = c.initial_state->size();
  }
  if (c.want_output) {
    a.output = r.output.data();
    a.output_count = r.output.size();
  }
  if (c.want_final_state) {
    a.final_state = r.final_state.data();
    a.final_state_count = r.final_state.size();
  }
  r.status = slstm_session_forward(session, &a);
  return r;
}

Run forward_ok(slstm_session* session, const slstm_model* model, const Call& call) {
  Run r = forward(session, model, call);
  INFO(slstm_last_error());
  REQUIRE(r.status == SLSTM_OK);
  return r;
}

Run check_same_bits(slstm_session* a, slstm_session* b, const slstm_model* model,
                    const Call& call) {
  const Run first = forward_ok(a, model, call);
  const Run second = forward_ok(b, model, call);
  CHECK(count_poison(first.output) == 0);
  CHECK(bitwise_equal(first.output, second.output));
  CHECK(bitwise_equal(first.final_state, second.final_state));
  return first;
}

namespace {

constexpr double kU = 1.0 / 16777216.0;  // 2^-24, float32's unit roundoff
constexpr double kGateFunctionError = 16 * kU;  // |computed - exact| of sigma or tanh

double sigmoid64(double x) { return 1.0 / (1.0 + std::exp(-x)); }
// The largest slope of sigma / tanh over [z - dz, z + dz] (both peak at 0).
double sigmoid_slope(double z, double dz) {
  const double s = sigmoid64(std::fmax(std::fabs(z) - dz, 0.0));
  return s * (1.0 - s);
}
double tanh_slope(double z, double dz) {
  const double t = std::tanh(std::fmax(std::fabs(z) - dz, 0.0));
  return 1.0 - t * t;
}

struct Layer64 {
  std::int64_t I = 0, H = 0;
  std::vector<float> wx, wh, b;  // canonical: [4H][I], [4H][H], [4H]
};

// The model's weights in the canonical layout, and its forget_bias.
std::vector<Layer64> canonical_layers(const slstm_model* model, float* forget_bias) {
  std::int32_t L = 0;
  REQUIRE(slstm_model_num_layers(model, &L) == SLSTM_OK);
  REQUIRE(slstm_model_forget_bias(model, forget_bias) == SLSTM_OK);
  std::vector<Layer64> layers(static_cast<std::size_t>(L));
  std::vector<slstm_tensor_out> ts;
  std::int64_t in = input_size(model);
  for (std::int32_t l = 0; l < L; ++l) {
    Layer64& ly = layers[static_cast<std::size_t>(l)];
    REQUIRE(slstm_model_hidden_size(model, l, &ly.H) == SLSTM_OK);
    ly.I = in;
    in = ly.H;
    ly.wx.resize(static_cast<std::size_t>(4 * ly.H * ly.I));
    ly.wh.resize(static_cast<std::size_t>(4 * ly.H * ly.H));
    ly.b.resize(static_cast<std::size_t>(4 * ly.H));
    ts.push_back({ly.wx.data(), 2, {4 * ly.H, ly.I}});
    ts.push_back({ly.wh.data(), 2, {4 * ly.H, ly.H}});
    ts.push_back({ly.b.data(), 1, {4 * ly.H}});
  }
  REQUIRE(slstm_model_export(model, SLSTM_FORMAT_CANONICAL, ts.data(), ts.size()) == SLSTM_OK);
  return layers;
}

}  // namespace

StepExpected expected_step(const slstm_model* model, std::int64_t batch, const float* x,
                           const std::vector<float>& state_in,
                           const std::vector<float>& state_out, const std::vector<bool>& active) {
  float forget_bias = 0.0f;
  const std::vector<Layer64> layers = canonical_layers(model, &forget_bias);
  REQUIRE(state_in.size() == state_count(model, batch));
  REQUIRE(state_out.size() == state_in.size());
  StepExpected e;
  e.state.assign(state_in.size(), 0.0);
  e.bound.assign(state_in.size(), 0.0);
  const std::int64_t D = input_size(model);
  std::vector<double> z, dz;
  std::size_t off = 0;       // layer l's c block in the packed state
  std::size_t off_below = 0;  // layer l - 1's c block
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const Layer64& ly = layers[l];
    const std::int64_t I = ly.I, H = ly.H;
    const std::size_t c_off = off, h_off = off + static_cast<std::size_t>(batch * H);
    const double n = static_cast<double>(I + H + 2);
    const double gamma = n * kU / (1.0 - n * kU);
    z.assign(static_cast<std::size_t>(4 * H), 0.0);
    dz.assign(z.size(), 0.0);
    for (std::int64_t b = 0; b < batch; ++b) {
      if (!active[static_cast<std::size_t>(b)]) {  // frozen: exactly the state it had
        for (std::size_t at = static_cast<std::size_t>(b * H); at < static_cast<std::size_t>((b + 1) * H); ++at) {
          e.state[c_off + at] = state_in[c_off + at];
          e.state[h_off + at] = state_in[h_off + at];
        }
        continue;
      }
      // This cell's inputs, as the path fed them.
      const float* xb = l == 0 ? x + b * D
                               : state_out.data() + off_below +
                                     static_cast<std::size_t>((batch + b) * ly.I);
      const float* hb = state_in.data() + h_off + static_cast<std::size_t>(b * H);
      const float* cb = state_in.data() + c_off + static_cast<std::size_t>(b * H);
      for (std::int64_t r = 0; r < 4 * H; ++r) {
        const bool f_gate = r / H == 1;  // canonical gate order i, f, g, o
        double sum = static_cast<double>(ly.b[r]) + (f_gate ? forget_bias : 0.0f);
        double mag = std::fabs(ly.b[r]) + (f_gate ? std::fabs(forget_bias) : 0.0f);
        const float* wx = ly.wx.data() + r * I;
        for (std::int64_t k = 0; k < I; ++k) {
          sum += static_cast<double>(xb[k]) * wx[k];
          mag += std::fabs(static_cast<double>(xb[k]) * wx[k]);
        }
        const float* wh = ly.wh.data() + r * H;
        for (std::int64_t k = 0; k < H; ++k) {
          sum += static_cast<double>(hb[k]) * wh[k];
          mag += std::fabs(static_cast<double>(hb[k]) * wh[k]);
        }
        z[r] = sum;
        dz[r] = gamma * mag;
      }
      for (std::int64_t u = 0; u < H; ++u) {
        const double zi = z[u], zf = z[H + u], zg = z[2 * H + u], zo = z[3 * H + u];
        const double dzi = dz[u], dzf = dz[H + u], dzg = dz[2 * H + u], dzo = dz[3 * H + u];
        const double i = sigmoid64(zi), f = sigmoid64(zf), g = std::tanh(zg), o = sigmoid64(zo);
        const double di = sigmoid_slope(zi, dzi) * dzi + kGateFunctionError;
        const double df = sigmoid_slope(zf, dzf) * dzf + kGateFunctionError;
        const double dg = tanh_slope(zg, dzg) * dzg + kGateFunctionError;
        const double d_o = sigmoid_slope(zo, dzo) * dzo + kGateFunctionError;
        const double c_prev = cb[u];
        const double c = c_prev * f + i * g;
        // Products of two inexact factors: |a'b' - ab| <= |a| db + (|b| + db) da; the new c
        // and h are rounded (at most twice) on the way.
        const double dc = std::fabs(c_prev) * df + std::fabs(g) * di + (i + di) * dg +
                          3 * kU * (std::fabs(c_prev) + 1.0);
        const double tc = std::tanh(c);
        const double dtc = tanh_slope(c, dc) * dc + kGateFunctionError;
        const std::size_t at = static_cast<std::size_t>(b * H + u);
        e.state[c_off + at] = c;
        e.bound[c_off + at] = dc;
        e.state[h_off + at] = tc * o;
        e.bound[h_off + at] = (o + d_o) * dtc + std::fabs(tc) * d_o + kU;
      }
    }
    off_below = off;
    off += static_cast<std::size_t>(2 * batch * H);
  }
  return e;
}

double accuracy_ratio(const std::vector<float>& got, const std::vector<double>& want,
                      const std::vector<double>& bound) {
  REQUIRE(got.size() == want.size());
  REQUIRE(bound.size() == want.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], w = want[i];
    if (std::isnan(g) || std::isnan(w)) {
      if (std::isnan(g) != std::isnan(w)) return INFINITY;
      continue;
    }
    const double diff = std::fabs(g - w);
    if (diff == 0.0) continue;
    worst = std::fmax(worst, bound[i] > 0.0 ? diff / bound[i] : INFINITY);
  }
  return worst;
}

void check_zero_state_bits(slstm_session* session, const slstm_model* model, const Call& call) {
  REQUIRE(call.initial_state == nullptr);
  const std::vector<float> zeros(state_count(model, call.batch), 0.0f);
  Call given = call;
  given.initial_state = &zeros;
  const Run absent = forward_ok(session, model, call);
  const Run explicit_zeros = forward_ok(session, model, given);
  CHECK(count_poison(absent.output) == 0);
  CHECK(bitwise_equal(absent.output, explicit_zeros.output));
  CHECK(bitwise_equal(absent.final_state, explicit_zeros.final_state));
}

Run check_within_accuracy(slstm_session* session, const slstm_model* model, const Call& call) {
  const Run whole = forward_ok(session, model, call);
  const std::int64_t B = call.batch, T = call.time, D = input_size(model);
  const std::int64_t H_out = output_size(model);
  std::vector<float> state = call.initial_state
                                 ? *call.initial_state
                                 : std::vector<float>(state_count(model, B), 0.0f);
  std::vector<float> outputs(static_cast<std::size_t>(B * T * H_out), 0.0f);
  double worst = 0.0;
  for (std::int64_t t = 0; t < T; ++t) {
    std::vector<float> x(static_cast<std::size_t>(B * D));
    std::vector<std::int32_t> len(static_cast<std::size_t>(B));
    std::vector<bool> active(static_cast<std::size_t>(B));
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t row = call.layout == SLSTM_TIME_MAJOR ? t * B + b : b * T + t;
      std::copy_n(call.input->begin() + row * D, D, x.begin() + b * D);
      active[static_cast<std::size_t>(b)] =
          call.lengths == nullptr || t < (*call.lengths)[static_cast<std::size_t>(b)];
      len[static_cast<std::size_t>(b)] = active[static_cast<std::size_t>(b)] ? 1 : 0;
    }
    Call step = call_of(B, 1, x);
    step.initial_state = &state;
    step.lengths = &len;
    const Run r = forward_ok(session, model, step);
    const StepExpected e = expected_step(model, B, x.data(), state, r.final_state, active);
    worst = std::fmax(worst, accuracy_ratio(r.final_state, e.state, e.bound));
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t row = call.layout == SLSTM_TIME_MAJOR ? t * B + b : b * T + t;
      std::copy_n(r.output.begin() + b * H_out, H_out, outputs.begin() + row * H_out);
    }
    state = r.final_state;
  }
  INFO("worst error / bound over every step, row and layer: " << worst);
  CHECK(worst <= 1.0);
  if (call.want_output) CHECK(bitwise_equal(outputs, whole.output));
  if (call.want_final_state) CHECK(bitwise_equal(state, whole.final_state));
  return whole;
}

const std::vector<double>& Fixture::at(const std::string& k) const {
  auto it = tensors.find(k);
  if (it == tensors.end()) throw std::runtime_error(name + ": no tensor " + k);
  return it->second;
}

std::vector<float> Fixture::f32(const std::string& k) const {
  const auto& v = at(k);
  return std::vector<float>(v.begin(), v.end());
}

std::string fixture_dir() {
  const char* env = std::getenv("SLSTM_FIXTURE_DIR");
  return env != nullptr && env[0] != '\0' ? env : SLSTM_FIXTURE_DIR;
}

Fixture load_fixture(const std::string& name) {
  const std::string path = fixture_dir() + "/" + name + ".fix";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open fixture " + path);
  Fixture f;
  f.name = name;
  std::string line, word;
  // Comment lines, then the magic line.
  while (std::getline(in, line) && !line.empty() && line[0] == '#') {
  }
  if (line != "slstm-fixture 1") throw std::runtime_error(path + ": bad magic '" + line + "'");
  std::int64_t layers = 0;
  int tm = 0;
  auto key = [&](const char* expect) {
    if (!(in >> word) || word != expect) {
      throw std::runtime_error(path + ": expected key " + expect + ", got '" + word + "'");
    }
  };
  key("format");
  in >> f.format;
  key("batch");
  in >> f.batch;
  key("time");
  in >> f.time;
  key("input_size");
  in >> f.input_size;
  key("num_layers");
  in >> layers;
  key("hidden_sizes");
  f.hidden_sizes.resize(static_cast<std::size_t>(layers));
  for (auto& h : f.hidden_sizes) in >> h;
  key("time_major");
  in >> tm;
  f.time_major = tm != 0;
  key("forget_bias");
  in >> f.forget_bias;
  while (in >> word && word == "tensor") {
    std::string tname;
    std::size_t count = 0;
    in >> tname >> count;
    std::vector<double> v(count);
    for (double& e : v) {
      std::string tok;
      in >> tok;
      e = std::strtod(tok.c_str(), nullptr);
    }
    if (!in) throw std::runtime_error(path + ": truncated tensor " + tname);
    f.tensors[tname] = std::move(v);
  }
  if (word != "end") throw std::runtime_error(path + ": expected 'end', got '" + word + "'");
  return f;
}

std::vector<std::string> fixture_names(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(fixture_dir())) {
    const std::string file = e.path().filename().string();
    if (e.path().extension() == ".fix" && file.rfind(prefix, 0) == 0) {
      out.push_back(e.path().stem().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Model model_from_fixture(const Fixture& f) {
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = f.input_size;
  cfg.num_layers = static_cast<std::int32_t>(f.hidden_sizes.size());
  cfg.hidden_sizes = f.hidden_sizes.data();
  cfg.forget_bias = f.forget_bias;
  std::vector<std::vector<float>> keep;
  std::vector<slstm_tensor> ts;
  slstm_weight_format fmt;
  std::vector<std::string> names;
  if (f.format == "tf") {
    fmt = SLSTM_FORMAT_TF;
    names = {"kernel", "bias"};
  } else if (f.format == "pytorch") {
    fmt = SLSTM_FORMAT_PYTORCH;
    names = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
  } else {
    throw std::runtime_error(f.name + ": unknown format " + f.format);
  }
  std::int64_t in = f.input_size;
  for (std::size_t l = 0; l < f.hidden_sizes.size(); ++l) {
    const std::int64_t h = f.hidden_sizes[l];
    for (const std::string& n : names) {
      keep.push_back(f.f32("L" + std::to_string(l) + "." + n));
      slstm_tensor tt{};
      tt.data = keep.back().data();
      if (n == "kernel") {
        tt.ndim = 2, tt.shape[0] = in + h, tt.shape[1] = 4 * h;
      } else if (n == "weight_ih") {
        tt.ndim = 2, tt.shape[0] = 4 * h, tt.shape[1] = in;
      } else if (n == "weight_hh") {
        tt.ndim = 2, tt.shape[0] = 4 * h, tt.shape[1] = h;
      } else {
        tt.ndim = 1, tt.shape[0] = 4 * h;
      }
      ts.push_back(tt);
    }
    in = h;
  }
  // keep's buffers must not move after their pointers were taken.
  for (std::size_t i = 0; i < ts.size(); ++i) ts[i].data = keep[i].data();
  slstm_model* m = nullptr;
  const slstm_status st = slstm_model_create(&cfg, fmt, ts.data(), ts.size(), &m);
  INFO(slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return Model(m);
}

Run run_fixture(const Fixture& f, const slstm_model* model) {
  Session s = session(model, f.batch, std::max<std::int64_t>(f.time, 1));
  const std::vector<float> x = f.f32("input");
  std::vector<std::int32_t> lengths;
  std::vector<float> init;
  Call c;
  c.batch = f.batch;
  c.time = f.time;
  c.layout = f.time_major ? SLSTM_TIME_MAJOR : SLSTM_BATCH_MAJOR;
  c.input = &x;
  if (f.has("lengths")) {
    for (double v : f.at("lengths")) lengths.push_back(static_cast<std::int32_t>(v));
    c.lengths = &lengths;
  }
  if (f.has("initial_state")) {
    init = f.f32("initial_state");
    c.initial_state = &init;
  }
  return forward_ok(s.get(), model, c);
}

namespace {
int count_threads() {
#if defined(__linux__)
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (const dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
    return n;
  }
#endif
  return -1;
}
}  // namespace

int process_threads() {
  int n = count_threads();
  for (int k = 0; k < 100 && n >= 0; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const int now = count_threads();
    if (now == n) return n;
    n = now;
  }
  return n;
}

}  // namespace t
