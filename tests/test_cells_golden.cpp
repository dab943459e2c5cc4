// Golden tests for every cell, direction and stack of docs/cells.md (issue #20): the
// version-2 fixtures tests/fixtures/cells_*.fix, written by `gen_fixtures.py --only cells`
// from real TensorFlow (tf.compat.v1 LSTMCell / GRUCell / ResidualWrapper / MultiRNNCell /
// (stack_)bidirectional_dynamic_rnn), PyTorch (nn.LSTM with proj_size, nn.GRU, bidirectional),
// tf_keras (GRU reset_after True/False, Bidirectional(LSTM)) and ONNX (LSTM/GRU nodes via
// onnx.reference, cross-checked with onnxruntime), all in float64, each also checked by the
// generator against its own float64 implementation of docs/cells.md.  Each fixture holds the
// weights twice: in the library's CANONICAL layout and in the framework's own layout.
//
//   [cells]         the model made from the canonical tensors reproduces the framework's
//                   numbers on the CPU reference path and on cpu_path AUTO
//   [cells-native]  the framework-layout tensors, imported in their format, make exactly the
//                   same model (export both as CANONICAL, compare bitwise)
// Every case but the AUTO one is also tagged [path-independent] (it picks its CPU path
// itself, so the suite's per-path runs would repeat it unchanged).
//
// The loader below is this file's own (tests/support.cpp reads version 1 only); the format is
// described at the top of tests/fixtures/gen_fixtures.py ("Version 2").
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

// ---- the version-2 fixture --------------------------------------------------------------

struct NamedTensor {
  std::int32_t layer = 0;
  std::int32_t direction = 0;  // slstm_tensor_info.direction: 0, 1, or -1 (ONNX, both)
  std::string name;            // the format's own name (slstm_tensor_info.name)
  std::vector<float> values;
};

struct CellsFixture {
  std::string name;
  std::string format;  // the native layout: tf | pytorch | keras | onnx
  std::int64_t batch = 0, time = 0, input_size = 0;
  bool time_major = false;
  float forget_bias = 0.0f;
  std::vector<slstm_layer_config> layers;
  std::vector<NamedTensor> canonical, native;
  std::vector<float> input, initial_state;  // initial_state empty: zeros
  std::vector<std::int32_t> lengths;        // empty: every row has `time` steps
  std::vector<double> output, final_state;  // float64 expectations
};

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

std::int64_t to_int(const std::string& path, const std::string& s) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0') bad(path, "not an integer: '" + s + "'");
  return static_cast<std::int64_t>(v);
}

double to_double(const std::string& path, const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0') bad(path, "not a number: '" + s + "'");
  return v;
}

// Weights, inputs and states are float32 values printed so that strtof reads them back
// exactly (the generator asserts it).
float to_float(const std::string& path, const std::string& s) {
  char* end = nullptr;
  const float v = std::strtof(s.c_str(), &end);
  if (s.empty() || *end != '\0') bad(path, "not a number: '" + s + "'");
  return v;
}

slstm_layer_config parse_layer(const std::string& path, const std::string& line, int index) {
  std::istringstream in(line);
  std::string word;
  in >> word;
  if (word != "layer") {
    bad(path, "expected 'layer " + std::to_string(index) + " ...', got: " + line);
  }
  in >> word;
  if (to_int(path, word) != index) bad(path, "layer lines out of order: " + line);
  slstm_layer_config c;
  slstm_layer_config_init(&c);
  const char* keys[] = {"cell",      "hidden", "direction", "residual",   "peepholes",
                        "cell_clip", "proj",   "proj_clip", "reset_after"};
  for (const char* key : keys) {
    if (!(in >> word)) bad(path, std::string("layer line lacks ") + key + ": " + line);
    const std::size_t eq = word.find('=');
    if (eq == std::string::npos || word.substr(0, eq) != key) {
      bad(path, std::string("expected ") + key + "=..., got '" + word + "'");
    }
    const std::string v = word.substr(eq + 1);
    const std::string k = key;
    if (k == "cell") {
      if (v != "lstm" && v != "gru") bad(path, "unknown cell '" + v + "'");
      c.cell = v == "lstm" ? SLSTM_CELL_LSTM : SLSTM_CELL_GRU;
    } else if (k == "hidden") {
      c.hidden_size = to_int(path, v);
    } else if (k == "direction") {
      if (v == "forward") {
        c.direction = SLSTM_DIRECTION_FORWARD;
      } else if (v == "reverse") {
        c.direction = SLSTM_DIRECTION_REVERSE;
      } else if (v == "bidirectional") {
        c.direction = SLSTM_DIRECTION_BIDIRECTIONAL;
      } else {
        bad(path, "unknown direction '" + v + "'");
      }
    } else if (k == "residual") {
      c.residual = static_cast<std::int32_t>(to_int(path, v));
    } else if (k == "peepholes") {
      c.peepholes = static_cast<std::int32_t>(to_int(path, v));
    } else if (k == "cell_clip") {
      c.cell_clip = to_float(path, v);
    } else if (k == "proj") {
      c.proj_size = to_int(path, v);
    } else if (k == "proj_clip") {
      c.proj_clip = to_float(path, v);
    } else {
      c.gru_reset_after = static_cast<std::int32_t>(to_int(path, v));
    }
  }
  if (in >> word) bad(path, "trailing text on a layer line: " + line);
  return c;
}

CellsFixture load_cells_fixture(const std::string& name) {
  const std::string path = t::fixture_dir() + "/" + name + ".fix";
  std::ifstream file(path);
  if (!file) bad(path, "cannot open");
  CellsFixture f;
  f.name = name;
  std::string line;
  while (std::getline(file, line) && !line.empty() && line[0] == '#') {
  }
  if (line != "slstm-fixture 2") bad(path, "bad magic '" + line + "'");
  auto header = [&](const char* key) {
    if (!std::getline(file, line)) bad(path, std::string("missing ") + key);
    std::istringstream in(line);
    std::string k, v, extra;
    in >> k >> v;
    if (k != key || v.empty() || (in >> extra)) {
      bad(path, std::string("expected '") + key + " <value>', got: " + line);
    }
    return v;
  };
  f.format = header("format");
  f.batch = to_int(path, header("batch"));
  f.time = to_int(path, header("time"));
  f.input_size = to_int(path, header("input_size"));
  const std::int64_t num_layers = to_int(path, header("num_layers"));
  f.time_major = to_int(path, header("time_major")) != 0;
  f.forget_bias = to_float(path, header("forget_bias"));
  for (int l = 0; l < num_layers; ++l) {
    if (!std::getline(file, line)) bad(path, "missing layer lines");
    f.layers.push_back(parse_layer(path, line, l));
  }
  // The rest: tensors, the `native <format>` line between the two weight sets, `end`.
  std::vector<std::string> tok;
  for (std::string w; file >> w;) tok.push_back(w);
  enum { kCanonical, kNative, kData } section = kCanonical;
  std::size_t p = 0;
  auto need = [&](std::size_t n) {
    if (p + n > tok.size()) bad(path, "truncated (no 'end')");
  };
  for (;;) {
    need(1);
    if (tok[p] == "end") break;
    if (tok[p] == "native") {
      need(2);
      if (section != kCanonical || tok[p + 1] != f.format) bad(path, "misplaced 'native' line");
      section = kNative;
      p += 2;
      continue;
    }
    need(3);
    if (tok[p] != "tensor") bad(path, "expected 'tensor', got '" + tok[p] + "'");
    const std::string tname = tok[p + 1];
    const std::int64_t count = to_int(path, tok[p + 2]);
    if (count < 0) bad(path, tname + ": negative count");
    p += 3;
    need(static_cast<std::size_t>(count));
    const std::vector<std::string> vals(tok.begin() + static_cast<std::ptrdiff_t>(p),
                                        tok.begin() + static_cast<std::ptrdiff_t>(p + count));
    p += static_cast<std::size_t>(count);
    if (tname[0] == 'L') {  // L<layer>.<direction>.<name>
      if (section == kData) bad(path, tname + " after the data tensors");
      const std::size_t d1 = tname.find('.'), d2 = tname.find('.', d1 + 1);
      if (d1 == std::string::npos || d2 == std::string::npos) bad(path, "bad name " + tname);
      NamedTensor t;
      t.layer = static_cast<std::int32_t>(to_int(path, tname.substr(1, d1 - 1)));
      t.direction = static_cast<std::int32_t>(to_int(path, tname.substr(d1 + 1, d2 - d1 - 1)));
      t.name = tname.substr(d2 + 1);
      for (const auto& v : vals) t.values.push_back(to_float(path, v));
      (section == kCanonical ? f.canonical : f.native).push_back(std::move(t));
      continue;
    }
    if (section != (tname == "input" ? kNative : kData)) bad(path, "misplaced tensor " + tname);
    section = kData;
    if (tname == "input") {
      for (const auto& v : vals) f.input.push_back(to_float(path, v));
    } else if (tname == "initial_state") {
      for (const auto& v : vals) f.initial_state.push_back(to_float(path, v));
    } else if (tname == "lengths") {
      for (const auto& v : vals) f.lengths.push_back(static_cast<std::int32_t>(to_int(path, v)));
    } else if (tname == "output") {
      for (const auto& v : vals) f.output.push_back(to_double(path, v));
    } else if (tname == "final_state") {
      for (const auto& v : vals) f.final_state.push_back(to_double(path, v));
    } else {
      bad(path, "unknown tensor " + tname);
    }
  }
  if (p + 1 != tok.size()) bad(path, "text after 'end'");
  if (f.layers.empty() || f.canonical.empty() || f.native.empty() || f.output.empty() ||
      f.final_state.empty() ||
      f.input.size() != static_cast<std::size_t>(f.batch * f.time * f.input_size)) {
    bad(path, "incomplete fixture");
  }
  return f;
}

// Every fixture whose name starts with `prefix` (REQUIREs at least one: a test over none
// would pass without checking anything).
std::vector<CellsFixture> load_all(const std::string& prefix) {
  std::vector<CellsFixture> out;
  for (const auto& n : t::fixture_names(prefix)) out.push_back(load_cells_fixture(n));
  REQUIRE(!out.empty());
  return out;
}

slstm_weight_format format_of(const std::string& name) {
  if (name == "tf") return SLSTM_FORMAT_TF;
  if (name == "pytorch") return SLSTM_FORMAT_PYTORCH;
  if (name == "keras") return SLSTM_FORMAT_KERAS;
  if (name == "onnx") return SLSTM_FORMAT_ONNX;
  throw std::runtime_error("unknown fixture format " + name);
}

slstm_model_config config_of(const CellsFixture& f) {
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = f.input_size;
  c.num_layers = static_cast<std::int32_t>(f.layers.size());
  c.layers = f.layers.data();
  c.forget_bias = f.forget_bias;
  return c;
}

// ---- the tensors' expected shapes, from docs/cells.md and the header's format notes -----

using Shape = std::vector<std::int64_t>;

bool is_lstm(const slstm_layer_config& c) { return c.cell == SLSTM_CELL_LSTM; }
std::int64_t cell_width(const slstm_layer_config& c) {
  return c.proj_size > 0 ? c.proj_size : c.hidden_size;
}
std::int64_t directions(const slstm_layer_config& c) {
  return c.direction == SLSTM_DIRECTION_BIDIRECTIONAL ? 2 : 1;
}
// Layer l's input width.
std::int64_t input_width(const CellsFixture& f, std::size_t l) {
  std::int64_t w = f.input_size;
  for (std::size_t k = 0; k < l; ++k) w = cell_width(f.layers[k]) * directions(f.layers[k]);
  return w;
}

Shape canonical_shape(const slstm_layer_config& c, std::int64_t in, const std::string& n) {
  const std::int64_t H = c.hidden_size, G = is_lstm(c) ? 4 : 3;
  if (n == "W_x") return {G * H, in};
  if (n == "W_h") return {G * H, cell_width(c)};
  if (n == "b" || n == "b_x" || n == "b_h") return {G * H};
  if (n == "w_peep") return {3, H};
  if (n == "W_proj") return {c.proj_size, H};
  return {};
}

// The framework's name without the direction decoration of slstm_format_tensors.
std::string base_name(const std::string& n) {
  for (const char* p : {"fw/", "bw/", "forward/", "backward/"}) {
    if (n.rfind(p, 0) == 0) return n.substr(std::strlen(p));
  }
  const std::string suffix = "_reverse";
  if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return n.substr(0, n.size() - suffix.size());
  }
  return n;
}

Shape native_shape(const std::string& format, const slstm_layer_config& c, std::int64_t in,
                   const std::string& name) {
  const std::int64_t H = c.hidden_size, R = cell_width(c), P = c.proj_size;
  const std::int64_t G = is_lstm(c) ? 4 : 3, nd = directions(c);
  const std::string n = base_name(name);
  if (format == "tf") {
    if (n == "kernel") return {in + R, 4 * H};
    if (n == "bias") return {4 * H};
    if (n == "w_i_diag" || n == "w_f_diag" || n == "w_o_diag") return {H};
    if (n == "projection/kernel") return {H, P};
    if (n == "gates/kernel") return {in + H, 2 * H};
    if (n == "gates/bias") return {2 * H};
    if (n == "candidate/kernel") return {in + H, H};
    if (n == "candidate/bias") return {H};
  } else if (format == "pytorch") {
    if (n == "weight_ih") return {G * H, in};
    if (n == "weight_hh") return {G * H, R};
    if (n == "bias_ih" || n == "bias_hh") return {G * H};
    if (n == "weight_hr") return {P, H};
  } else if (format == "keras") {
    if (n == "kernel") return {in, G * H};
    if (n == "recurrent_kernel") return {H, G * H};
    if (n == "bias") return (!is_lstm(c) && c.gru_reset_after) ? Shape{2, G * H} : Shape{G * H};
  } else if (format == "onnx") {
    if (n == "W") return {nd, G * H, in};
    if (n == "R") return {nd, G * H, H};
    if (n == "B") return {nd, 2 * G * H};
    if (n == "P") return {nd, 3 * H};
  }
  return {};
}

std::int64_t elements(const Shape& s) {
  std::int64_t n = 1;
  for (std::int64_t d : s) n *= d;
  return n;
}

std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (std::size_t k = 0; k < s.size(); ++k) out += (k ? "," : "") + std::to_string(s[k]);
  return out + "]";
}

// slstm_format_tensors for the fixture's architecture in `format` (REQUIREs success).
std::vector<slstm_tensor_info> format_infos(const CellsFixture& f, slstm_weight_format format) {
  const slstm_model_config cfg = config_of(f);
  std::size_t count = 0;
  const slstm_status st = slstm_format_tensors(&cfg, format, nullptr, 0, &count);
  INFO("slstm_format_tensors: " << slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  slstm_tensor_info proto;
  std::memset(&proto, 0, sizeof proto);
  proto.struct_size = sizeof(slstm_tensor_info);
  std::vector<slstm_tensor_info> infos(count, proto);
  std::size_t again = 0;
  REQUIRE(slstm_format_tensors(&cfg, format, infos.data(), infos.size(), &again) == SLSTM_OK);
  REQUIRE(again == count);
  return infos;
}

// The fixture's tensors (in file order) against slstm_format_tensors(format): the same count,
// and per tensor the same name, layer, direction, and the shape `expected_shape` gives
// (from docs/cells.md / the format notes, not from the library), holding `values.size()`.
template <typename ShapeFn>
void check_tensor_list(const CellsFixture& f, const std::vector<NamedTensor>& tensors,
                       slstm_weight_format format, ShapeFn expected_shape) {
  const auto infos = format_infos(f, format);
  REQUIRE(infos.size() == tensors.size());
  for (std::size_t k = 0; k < infos.size(); ++k) {
    const NamedTensor& t = tensors[k];
    INFO("tensor " << k << ": L" << t.layer << "." << t.direction << "." << t.name);
    CHECK(std::string(infos[k].name) == t.name);
    CHECK(infos[k].layer == t.layer);
    CHECK(infos[k].direction == t.direction);
    REQUIRE(t.layer >= 0);
    REQUIRE(static_cast<std::size_t>(t.layer) < f.layers.size());
    const Shape want = expected_shape(f.layers[static_cast<std::size_t>(t.layer)],
                                      input_width(f, static_cast<std::size_t>(t.layer)), t.name);
    REQUIRE(!want.empty());
    const Shape got(infos[k].shape, infos[k].shape + infos[k].ndim);
    INFO("library " << shape_text(got) << ", expected " << shape_text(want));
    CHECK(got == want);
    CHECK(elements(want) == static_cast<std::int64_t>(t.values.size()));
  }
}

// A model from `tensors` in `format`, shapes from slstm_format_tensors (check_tensor_list
// checks those against the fixture).  Returns the status; *out holds the model on success.
slstm_status create(const CellsFixture& f, slstm_weight_format format,
                    const std::vector<NamedTensor>& tensors, t::Model* out) {
  const auto infos = format_infos(f, format);
  REQUIRE(infos.size() == tensors.size());
  std::vector<slstm_tensor> ts(tensors.size());
  for (std::size_t k = 0; k < ts.size(); ++k) {
    ts[k].data = tensors[k].values.data();
    ts[k].ndim = infos[k].ndim;
    for (int d = 0; d < SLSTM_MAX_DIMS; ++d) ts[k].shape[d] = infos[k].shape[d];
  }
  const slstm_model_config cfg = config_of(f);
  slstm_model* m = nullptr;
  const slstm_status st = slstm_model_create(&cfg, format, ts.data(), ts.size(), &m);
  if (st == SLSTM_OK) out->reset(m);
  return st;
}

t::Model canonical_model(const CellsFixture& f) {
  t::Model m;
  const slstm_status st = create(f, SLSTM_FORMAT_CANONICAL, f.canonical, &m);
  INFO("slstm_model_create(CANONICAL): " << slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  return m;
}

// The model's weights exported as CANONICAL, concatenated.
std::vector<float> export_canonical(const CellsFixture& f, const slstm_model* m) {
  const auto infos = format_infos(f, SLSTM_FORMAT_CANONICAL);
  std::vector<std::vector<float>> bufs;
  std::vector<slstm_tensor_out> ts(infos.size());
  for (std::size_t k = 0; k < infos.size(); ++k) {
    const Shape s(infos[k].shape, infos[k].shape + infos[k].ndim);
    bufs.push_back(t::poisoned(static_cast<std::size_t>(elements(s))));
    ts[k].data = bufs.back().data();
    ts[k].ndim = infos[k].ndim;
    for (int d = 0; d < SLSTM_MAX_DIMS; ++d) ts[k].shape[d] = infos[k].shape[d];
  }
  INFO("slstm_model_export(CANONICAL): " << slstm_last_error());
  REQUIRE(slstm_model_export(m, SLSTM_FORMAT_CANONICAL, ts.data(), ts.size()) == SLSTM_OK);
  std::vector<float> all;
  for (const auto& b : bufs) all.insert(all.end(), b.begin(), b.end());
  return all;
}

// ---- running a fixture ------------------------------------------------------------------

// The fixture's call (its input, lengths and initial state) on session `s`.
t::Run call(const CellsFixture& f, slstm_session* s, const slstm_model* m) {
  t::Call c = t::call_of(f.batch, f.time, f.input,
                         f.time_major ? SLSTM_TIME_MAJOR : SLSTM_BATCH_MAJOR);
  if (!f.lengths.empty()) c.lengths = &f.lengths;
  if (!f.initial_state.empty()) c.initial_state = &f.initial_state;
  return t::forward_ok(s, m, c);  // output and final_state poisoned (NaN) before the call
}

// One forward call on a fresh session on `path`; *plan_path (when given) gets the path the
// session's plan says it runs ("reference", "fast").
t::Run run(const CellsFixture& f, const slstm_model* m, slstm_cpu_path path,
           std::string* plan_path = nullptr) {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.backend = SLSTM_BACKEND_CPU;
  o.cpu_path = path;
  o.max_batch = f.batch;
  o.max_time = f.time;
  slstm_session* raw = nullptr;
  const slstm_status st = slstm_session_create(m, &o, &raw);
  INFO("slstm_session_create: " << slstm_last_error());
  REQUIRE(st == SLSTM_OK);
  t::Session s(raw);
  if (plan_path != nullptr) *plan_path = t::json_value(t::describe_json(s.get()), "path");
  return call(f, s.get(), m);
}

// Normwise relative error of a float32 run against the float64 expectation.  Bound: 1e-5,
// the accuracy README "Accuracy" states for everyday scales (|x|, |h|, |c| <= ~1, weights
// <= 0.8, as in every fixture), per cell and step (errors there ~1e-7); these sequences
// have <= 6 steps and <= 3 layers, and a wrong gate order, a peephole or clip in the wrong
// place, a missing bias or a wrong direction is off by 1e-2 or more.  The same bound as the
// BasicLSTMCell golden tests (tests/test_golden.cpp).
constexpr double kTolerance = 1e-5;

void check_run(const CellsFixture& f, slstm_cpu_path path) {
  INFO("fixture " << f.name << " (" << f.format << "), cpu_path "
                  << (path == SLSTM_CPU_PATH_AUTO ? "AUTO" : "REFERENCE"));
  const t::Model m = canonical_model(f);
  std::string plan_path;
  const t::Run r = run(f, m.get(), path, &plan_path);
  INFO("the session's plan runs the " << plan_path << " path");
  if (path == SLSTM_CPU_PATH_REFERENCE) CHECK(plan_path == "reference");
  REQUIRE(r.output.size() == f.output.size());
  REQUIRE(r.final_state.size() == f.final_state.size());
  CHECK(t::count_poison(r.output) == 0);
  CHECK(t::count_poison(r.final_state) == 0);
  const double e_out = t::rel_err(r.output, f.output);
  const double e_state = t::rel_err(r.final_state, f.final_state);
  INFO("normwise error: output " << e_out << ", final state " << e_state);
  CHECK(e_out <= kTolerance);
  CHECK(e_state <= kTolerance);
}

std::int32_t row_length(const CellsFixture& f, std::int64_t b) {
  return f.lengths.empty() ? static_cast<std::int32_t>(f.time)
                           : f.lengths[static_cast<std::size_t>(b)];
}

void check_native(const std::string& format) {
  const auto all = load_all("cells_");
  int n = 0;
  for (const auto& f : all) {
    if (f.format != format) continue;
    ++n;
    DYNAMIC_SECTION(f.name) {
      const slstm_weight_format fmt = format_of(f.format);
      check_tensor_list(f, f.native, fmt, [&](const slstm_layer_config& c, std::int64_t in,
                                              const std::string& name) {
        return native_shape(f.format, c, in, name);
      });
      t::Model native;
      const slstm_status st = create(f, fmt, f.native, &native);
      INFO("slstm_model_create(" << f.format << "): " << slstm_last_error());
      REQUIRE(st == SLSTM_OK);
      const t::Model canon = canonical_model(f);
      CHECK(t::bitwise_equal(export_canonical(f, native.get()), export_canonical(f, canon.get())));
      float fb_native = -1.0f, fb_canon = -2.0f;
      REQUIRE(slstm_model_forget_bias(native.get(), &fb_native) == SLSTM_OK);
      REQUIRE(slstm_model_forget_bias(canon.get(), &fb_canon) == SLSTM_OK);
      CHECK(fb_native == fb_canon);
    }
  }
  REQUIRE(n > 0);
}

}  // namespace

TEST_CASE("every cells fixture loads: canonical and native weights, data, expectations",
          "[cells][path-independent]") {
  const auto all = load_all("cells_");
  // Each framework contributes fixtures (gen_fixtures.py's CELLS_CASES: 6 tf, 4 pytorch,
  // 3 keras, 5 onnx).
  std::map<std::string, int> per_format;
  for (const auto& f : all) {
    CHECK_NOTHROW(format_of(f.format));
    ++per_format[f.format];
  }
  CHECK(per_format["tf"] >= 6);
  CHECK(per_format["pytorch"] >= 4);
  CHECK(per_format["keras"] >= 3);
  CHECK(per_format["onnx"] >= 5);
}

TEST_CASE("slstm_format_tensors(CANONICAL) lists each cells fixture's canonical tensors",
          "[cells][path-independent]") {
  for (const auto& f : load_all("cells_")) {
    DYNAMIC_SECTION(f.name) {
      check_tensor_list(f, f.canonical, SLSTM_FORMAT_CANONICAL, canonical_shape);
    }
  }
}

TEST_CASE("the CPU reference path reproduces every framework's cells from canonical weights",
          "[cells][path-independent]") {
  for (const auto& f : load_all("cells_")) {
    DYNAMIC_SECTION(f.name) { check_run(f, SLSTM_CPU_PATH_REFERENCE); }
  }
}

TEST_CASE("cpu_path AUTO reproduces every framework's cells from canonical weights", "[cells]") {
  for (const auto& f : load_all("cells_")) {
    DYNAMIC_SECTION(f.name) { check_run(f, SLSTM_CPU_PATH_AUTO); }
  }
}

TEST_CASE("the CUDA backend's generic path reproduces every framework's cells from canonical "
          "weights",
          "[cells][cuda-generic]") {
  for (const auto& f : load_all("cells_")) {
    DYNAMIC_SECTION(f.name) {
      const t::Model m = canonical_model(f);
      t::Session s = t::cuda_session(m.get(), f.batch, f.time, "cuda.generic=on");
      if (!s) return;
      const t::Run r = call(f, s.get(), m.get());
      CHECK(t::count_poison(r.output) == 0);
      CHECK(t::count_poison(r.final_state) == 0);
      CHECK(t::rel_err(r.output, f.output) <= kTolerance);
      CHECK(t::rel_err(r.final_state, f.final_state) <= kTolerance);
    }
  }
}

TEST_CASE("cells fixtures: steps past a row's length are exactly 0, a row of length 0 keeps "
          "its initial state bitwise",
          "[cells][path-independent]") {
  const auto all = load_all("cells_");
  // The fixtures have rows of length 0 (TF and tf_keras cases); without them this test
  // would check nothing about them.
  int rows_of_length_0 = 0;
  for (const auto& f : all) {
    for (std::int64_t b = 0; b < f.batch; ++b) rows_of_length_0 += row_length(f, b) == 0;
  }
  CHECK(rows_of_length_0 >= 4);
  for (const auto& f : all) {
    DYNAMIC_SECTION(f.name) {
      const t::Model m = canonical_model(f);
      const t::Run r = run(f, m.get(), SLSTM_CPU_PATH_REFERENCE);
      const std::int64_t W = t::output_size(m.get());
      for (std::int64_t b = 0; b < f.batch; ++b) {
        for (std::int64_t tt = row_length(f, b); tt < f.time; ++tt) {
          const std::int64_t row = f.time_major ? tt * f.batch + b : b * f.time + tt;
          for (std::int64_t u = 0; u < W; ++u) {
            INFO("row " << b << " step " << tt << " unit " << u);
            REQUIRE(r.output[static_cast<std::size_t>(row * W + u)] == 0.0f);
          }
        }
        if (row_length(f, b) != 0) continue;
        std::int64_t pieces = 0;
        REQUIRE(slstm_model_state_pieces(m.get(), &pieces) == SLSTM_OK);
        for (std::int64_t k = 0; k < pieces; ++k) {
          slstm_state_piece p;
          std::memset(&p, 0, sizeof p);
          p.struct_size = sizeof p;
          REQUIRE(slstm_model_state_piece(m.get(), f.batch, k, &p) == SLSTM_OK);
          for (std::int64_t u = 0; u < p.width; ++u) {
            const std::size_t i = p.offset + static_cast<std::size_t>(b * p.width + u);
            const float init = f.initial_state.empty() ? 0.0f : f.initial_state[i];
            INFO("row " << b << " piece " << k << " unit " << u);
            REQUIRE(t::bitwise_equal(&r.final_state[i], &init, 1));
          }
        }
      }
    }
  }
}

TEST_CASE("TF-layout cells tensors import to exactly the canonical model",
          "[cells-native][path-independent]") {
  check_native("tf");
}

TEST_CASE("PyTorch-layout cells tensors import to exactly the canonical model",
          "[cells-native][path-independent]") {
  check_native("pytorch");
}

TEST_CASE("Keras-layout cells tensors import to exactly the canonical model",
          "[cells-native][path-independent]") {
  check_native("keras");
}

TEST_CASE("ONNX-layout cells tensors import to exactly the canonical model",
          "[cells-native][path-independent]") {
  check_native("onnx");
}
