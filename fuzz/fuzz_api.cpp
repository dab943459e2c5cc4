// libFuzzer target: the C API's argument checking.
//
// The input is decoded, front to back, into a sequence of up to kMaxOps API calls on a few
// model and session slots: model creation (random weights, or tensors in any format with
// honest or wrong shapes), destruction, queries, export, session creation with arbitrary
// options, forward and step with arbitrary sizes, counts, lengths, layouts, memory kinds,
// NULLs and overlapping buffers, ONNX node checks, model-file save/load, error-text calls.
// A byte that runs past the end of the input reads as 0, and 0 always decodes to the sane
// choice (correct struct_size, honest count, a small size), so short inputs make valid calls.
//
// The rules the decoder keeps, so that every report is the library's fault:
// * Pointers are honest: a buffer passed with a count has at least that many elements (all
//   float buffers are carved out of one heap arena, so ASan sees any read or write past the
//   count).  Weight tensors may claim any shape; the library must reject a shape that does
//   not match the architecture before it reads, and every architecture the decoder can
//   build that could match a shape larger than the arena is too large to allocate.
// * Memory cap: sizes are either small (<= 64) or "absurd" (>= 2^38).  Any workspace or
//   weight allocation that absurd sizes lead to is either a size overflow or more than
//   2^40 bytes, which ASan refuses (allocator_may_return_null=1) so the library must report
//   SLSTM_ERR_OUT_OF_MEMORY.  Nothing in between is ever requested, so the fuzzer's RSS
//   stays small.  num_threads is at most 3.
//
// Properties checked (a violation traps, which libFuzzer reports as a crash):
// * every status is one of the slstm_status values; slstm_last_error() is a NUL-terminated
//   text shorter than its 1024-byte buffer, and non-empty after a failure;
// * on failure nothing the caller passed for output was written: out handles keep their
//   sentinel, forward/step/export output buffers keep their bytes;
// * plus everything ASan/UBSan/LSan check (no crash, no UB, no leak).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "stacklstm/stacklstm.h"

namespace {

constexpr int kMaxOps = 48;
constexpr std::size_t kArena = 64 * 1024;  // floats
constexpr int kSlots = 3;

// Sequential reader; past the end it yields zeros.
struct Reader {
  const std::uint8_t* p;
  std::size_t n;
  bool empty() const { return n == 0; }
  std::uint8_t u8() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::uint32_t u32() { return u16() | (static_cast<std::uint32_t>(u16()) << 16); }
  std::uint64_t u64() { return u32() | (static_cast<std::uint64_t>(u32()) << 32); }
};

[[noreturn]] void violated(const char* what) {
  (void)what;  // visible in the debugger / crash stack
  __builtin_trap();
}

void check_status(slstm_status st) {
  const int v = static_cast<int>(st);
  if (v < SLSTM_OK || v > SLSTM_ERR_SLOTS_FULL) violated("status outside the enum");
  if (v == SLSTM_ERR_BUSY) violated("SLSTM_ERR_BUSY from a single-threaded caller");
  if (v == SLSTM_ERR_INTERNAL) violated("SLSTM_ERR_INTERNAL: a library bug");
  const char* msg = slstm_last_error();
  if (msg == nullptr) violated("last_error is NULL");
  const std::size_t len = strnlen(msg, 1024);
  if (len >= 1024) violated("last_error not terminated");
  if (st != SLSTM_OK && len == 0) violated("failure without a message");
  const char* s = slstm_status_string(st);
  if (s == nullptr || *s == '\0') violated("empty status string");
}

const std::int64_t kAbsurd[] = {0,
                                -1,
                                std::int64_t{1} << 38,
                                std::int64_t{1} << 40,
                                std::int64_t{1} << 62,
                                std::numeric_limits<std::int64_t>::max(),
                                std::numeric_limits<std::int64_t>::min(),
                                -(std::int64_t{1} << 40)};

// A size: 0 -> dflt; 1..219 -> 1..64 (small); 220..255 -> absurd or non-positive.
std::int64_t size(Reader& in, std::int64_t dflt, std::int64_t small_max = 64) {
  const std::uint8_t b = in.u8();
  if (b == 0) return dflt;
  if (b < 220) return 1 + (b - 1) % small_max;
  return kAbsurd[(b - 220) % (sizeof kAbsurd / sizeof kAbsurd[0])];
}

// An enum value: mostly a valid one, sometimes out of range.
int enum_value(Reader& in, int valid_count) {
  const std::uint8_t b = in.u8();
  if (b < 240) return b % valid_count;
  const int odd[] = {-1, valid_count, 99, std::numeric_limits<int>::min(),
                     std::numeric_limits<int>::max(), -7};
  return odd[b % 6];
}

// A layer index: -1..6 mostly, sometimes the int32 extremes.
std::int32_t layer_index(Reader& in) {
  const std::uint8_t b = in.u8();
  if (b == 254) return std::numeric_limits<std::int32_t>::max();
  if (b == 255) return std::numeric_limits<std::int32_t>::min();
  return static_cast<std::int32_t>(b % 8) - 1;
}

// A versioned struct with room after it, as a caller built against a newer header has: the
// library reads struct_size bytes, so a larger struct_size must be backed by memory.  The
// tail is zero (a newer caller leaving its new fields at their defaults) unless the input
// sets one of its bytes.
template <typename T>
struct WithTail {
  T s;
  unsigned char tail[16] = {};
};
template <typename T>
void maybe_set_tail(Reader& in, WithTail<T>& w) {
  const std::uint8_t b = in.u8();
  if (b >= 250) w.tail[b % 16] = 1;
}

std::uint32_t struct_size(Reader& in, std::size_t correct) {
  const std::uint8_t b = in.u8();
  if (b < 230) return static_cast<std::uint32_t>(correct);
  const std::uint32_t odd[] = {0, 4, static_cast<std::uint32_t>(correct - 1),
                               static_cast<std::uint32_t>(correct + 8), 0xffffffffu};
  return odd[b % 5];
}

float value(Reader& in) {
  const std::uint8_t b = in.u8();
  switch (b) {
    case 250: return std::numeric_limits<float>::quiet_NaN();
    case 251: return std::numeric_limits<float>::infinity();
    case 252: return -std::numeric_limits<float>::infinity();
    case 253: return 1e30f;
    case 254: return std::numeric_limits<float>::denorm_min();
    case 255: return -0.0f;
    default: return (static_cast<float>(b) - 125.0f) / 64.0f;
  }
}

// A count for a buffer of `capacity` elements that the call expects `expected` of: always
// <= capacity (honest), usually the expected one.
std::size_t count(Reader& in, std::size_t expected, std::size_t capacity) {
  const std::uint8_t b = in.u8() % 8;
  std::size_t c = expected;
  if (b == 5) c = 0;
  if (b == 6) c = expected + 1;
  if (b == 7) c = in.u16();
  if (expected == static_cast<std::size_t>(-1) && b < 5) c = capacity;  // unknown: all of it
  return c <= capacity ? c : capacity;
}

struct World {
  slstm_model* models[kSlots] = {};
  slstm_session* sessions[kSlots] = {};
  std::vector<float> arena;       // every float buffer of every call
  std::vector<std::int32_t> lens; // sequence lengths
  std::vector<float> snapshot;
  World() : arena(kArena), lens(64) {}
  ~World() {
    for (auto*& s : sessions) slstm_session_destroy(s);
    for (auto*& m : models) slstm_model_destroy(m);
  }
};

slstm_model* const kSentinelModel = reinterpret_cast<slstm_model*>(0x10);
slstm_session* const kSentinelSession = reinterpret_cast<slstm_session*>(0x20);

// A float buffer inside the arena for one role: offset from the role's default region.
struct Buf {
  float* p = nullptr;
  std::size_t cap = 0;
};
Buf buffer(Reader& in, World& w, int role) {
  const std::uint8_t b = in.u8();
  Buf r;
  if (b == 255) return r;  // NULL
  const std::size_t off = (static_cast<std::size_t>(role) * (kArena / 4) +
                           static_cast<std::size_t>(b) * 97) % kArena;
  r.p = w.arena.data() + off;
  r.cap = kArena - off;
  return r;
}

std::size_t product_or_max(std::initializer_list<std::int64_t> dims) {
  std::size_t n = 1;
  for (std::int64_t d : dims) {
    if (d < 0) return static_cast<std::size_t>(-1);
    const auto u = static_cast<std::size_t>(d);
    if (u != 0 && n > std::numeric_limits<std::size_t>::max() / u) return static_cast<std::size_t>(-1);
    n *= u;
  }
  return n;
}

// Expected tensor shapes of one layer in a format (the header's table), for honest calls.
// Sizes may be absurd: the arithmetic wraps (unsigned) instead of overflowing; a wrapped
// shape only makes the call wrong, and the library must reject it.
std::int64_t mul(std::int64_t a, std::int64_t b) {
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b));
}
std::int64_t add(std::int64_t a, std::int64_t b) {
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(b));
}

int expected_shapes(int format, std::int64_t in, std::int64_t h, std::int64_t shapes[4][4],
                    int ndims[4]) {
  const std::int64_t h4 = mul(4, h), h8 = mul(8, h);
  auto set = [&](int k, int nd, std::int64_t a, std::int64_t b = 0, std::int64_t c = 0) {
    ndims[k] = nd;
    shapes[k][0] = a;
    shapes[k][1] = b;
    shapes[k][2] = c;
    shapes[k][3] = 0;
  };
  switch (format) {
    case SLSTM_FORMAT_CANONICAL:
      set(0, 2, h4, in), set(1, 2, h4, h), set(2, 1, h4);
      return 3;
    case SLSTM_FORMAT_TF:
      set(0, 2, add(in, h), h4), set(1, 1, h4);
      return 2;
    case SLSTM_FORMAT_PYTORCH:
    case SLSTM_FORMAT_CUDNN:
      set(0, 2, h4, in), set(1, 2, h4, h), set(2, 1, h4), set(3, 1, h4);
      return 4;
    case SLSTM_FORMAT_KERAS:
      set(0, 2, in, h4), set(1, 2, h, h4), set(2, 1, h4);
      return 3;
    case SLSTM_FORMAT_KERAS_CUDNN:
      set(0, 2, in, h4), set(1, 2, h, h4), set(2, 1, h8);
      return 3;
    case SLSTM_FORMAT_ONNX:
      set(0, 3, 1, h4, in), set(1, 3, 1, h4, h), set(2, 2, 1, h8);
      return 3;
    default:
      return 0;
  }
}

// ---- the operations --------------------------------------------------------------------------

struct Config {
  slstm_model_config cfg{};
  std::int64_t hidden[6] = {};
  slstm_layer_config layers[6] = {};
};

// A flag: mostly 0 or 1, sometimes a value the library must refuse.
std::int32_t flag(Reader& in) {
  const std::uint8_t b = in.u8();
  return b < 120 ? 0 : b < 250 ? 1 : static_cast<std::int32_t>(b) - 248;
}

// A layer description (docs/cells.md): every field fuzzed, mostly valid.
void read_layer(Reader& in, slstm_layer_config& l) {
  slstm_layer_config_init(&l);
  l.cell = static_cast<slstm_cell>(enum_value(in, 2));
  l.hidden_size = size(in, 5);
  l.direction = static_cast<slstm_direction>(enum_value(in, 3));
  l.residual = in.u8() < 230 ? 0 : flag(in);
  if (l.cell == SLSTM_CELL_LSTM || in.u8() >= 250) {
    l.peepholes = flag(in);
    l.cell_clip = in.u8() < 200 ? 0.0f : value(in);
    const std::uint8_t p = in.u8();
    l.proj_size = p < 160 ? 0 : p < 250 ? 1 + p % 8 : size(in, 5);
    l.proj_clip = l.proj_size != 0 && in.u8() >= 200 ? value(in) : 0.0f;
  }
  if (l.cell == SLSTM_CELL_GRU || in.u8() >= 250) l.gru_reset_after = flag(in);
}

// A config; `small_only` keeps every size small (for honest tensor calls).
void read_config(Reader& in, Config& c) {
  slstm_model_config_init(&c.cfg);
  c.cfg.struct_size = struct_size(in, sizeof(slstm_model_config));
  c.cfg.input_size = size(in, 3);
  const std::uint8_t lb = in.u8();
  const int layers = lb < 240 ? 1 + lb % 4 : (lb % 2 ? 0 : -1);
  for (int l = 0; l < 6; ++l) c.hidden[l] = size(in, 5);
  c.cfg.num_layers = layers;  // <= 4: hidden has 6 entries, so the pointer is honest
  const std::uint8_t kind = in.u8();
  c.cfg.hidden_sizes = kind == 255 ? nullptr : c.hidden;
  if (kind >= 160 && kind < 255) {  // a stack of any layers (hidden_sizes NULL, or both set)
    for (slstm_layer_config& l : c.layers) read_layer(in, l);
    c.cfg.layers = c.layers;
    if (kind < 250) c.cfg.hidden_sizes = nullptr;
  }
  c.cfg.forget_bias = in.u8() < 240 ? 1.0f : value(in);
}

void op_model_create_random(Reader& in, World& w) {
  Config c;
  read_config(in, c);
  const std::uint8_t sb = in.u8();
  const float scale = sb < 240 ? 0.0f : (sb < 250 ? 0.25f : value(in));
  const int slot = in.u8() % kSlots;
  const bool null_config = in.u8() == 255, null_out = in.u8() == 255;
  slstm_model* m = kSentinelModel;
  const slstm_status st = slstm_model_create_random(null_config ? nullptr : &c.cfg, in.u64(),
                                                    scale, null_out ? nullptr : &m);
  check_status(st);
  if (st != SLSTM_OK) {
    if (m != kSentinelModel) violated("out_model written on failure");
    return;
  }
  slstm_model_destroy(w.models[slot]);
  w.models[slot] = m;
}

void op_model_create(Reader& in, World& w) {
  Config c;
  read_config(in, c);
  const int format = enum_value(in, 7);
  const int layers = c.cfg.num_layers > 0 ? c.cfg.num_layers : 1;
  std::vector<slstm_tensor> ts;
  if (c.cfg.layers != nullptr) {
    // The shapes the library lists for this stack (when it accepts it), sometimes a lie.
    slstm_tensor_info infos[64];
    for (slstm_tensor_info& i : infos) i.struct_size = sizeof i;
    std::size_t n = 0;
    const slstm_status st = slstm_format_tensors(&c.cfg, static_cast<slstm_weight_format>(format),
                                                 infos, 64, &n);
    check_status(st);
    for (std::size_t k = 0; st == SLSTM_OK && k < n && k < 64; ++k) {
      slstm_tensor t{};
      t.ndim = infos[k].ndim;
      std::memcpy(t.shape, infos[k].shape, sizeof t.shape);
      std::size_t count = 1;
      for (int d = 0; d < t.ndim; ++d) count *= static_cast<std::size_t>(t.shape[d]);
      const std::uint8_t lie = in.u8();
      if (lie >= 200) {
        t.ndim = static_cast<std::int32_t>(lie % 7) - 1;
        t.shape[lie % 4] = size(in, 2);
      }
      // Honest shapes larger than the arena are not passed (the library would read them).
      t.data = in.u8() == 255 || (lie < 200 && count > kArena) ? nullptr : w.arena.data();
      ts.push_back(t);
    }
    std::size_t count = ts.size();
    if (in.u8() >= 240 && count > 0) count -= 1;
    slstm_model* m = kSentinelModel;
    const slstm_status cs = slstm_model_create(&c.cfg, static_cast<slstm_weight_format>(format),
                                               ts.empty() ? nullptr : ts.data(), count, &m);
    check_status(cs);
    if (cs != SLSTM_OK) {
      if (m != kSentinelModel) violated("out_model written on failure");
      return;
    }
    const int slot = in.u8() % kSlots;
    slstm_model_destroy(w.models[slot]);
    w.models[slot] = m;
    return;
  }
  std::int64_t prev = c.cfg.input_size;
  for (int l = 0; l < layers; ++l) {
    std::int64_t shapes[4][4];
    int ndims[4];
    const int per = expected_shapes(format < 0 || format > 6 ? 0 : format, prev, c.hidden[l],
                                    shapes, ndims);
    for (int k = 0; k < per; ++k) {
      slstm_tensor t{};
      t.ndim = ndims[k];
      std::memcpy(t.shape, shapes[k], sizeof t.shape);
      const std::uint8_t lie = in.u8();
      if (lie >= 200) {  // a wrong shape or ndim
        t.ndim = static_cast<std::int32_t>(lie % 7) - 1;
        t.shape[lie % 4] = size(in, 2);
      }
      // Honest pointer: data only when the claimed count fits the arena (a wrong claim that
      // is larger points at the arena too: the library must reject it before reading).
      t.data = in.u8() == 255 ? nullptr : w.arena.data();
      ts.push_back(t);
    }
    prev = c.hidden[l];
  }
  // The count: usually honest, sometimes off by one.
  std::size_t n = ts.size();
  const std::uint8_t cb = in.u8();
  if (cb >= 240 && n > 0) n -= 1;
  if (cb == 239) {
    ts.push_back(ts.empty() ? slstm_tensor{} : ts.back());
    n += 1;
  }
  slstm_model* m = kSentinelModel;
  const bool null_tensors = in.u8() == 255;
  const slstm_status st =
      slstm_model_create(&c.cfg, static_cast<slstm_weight_format>(format),
                         null_tensors ? nullptr : ts.data(), n, &m);
  check_status(st);
  if (st != SLSTM_OK) {
    if (m != kSentinelModel) violated("out_model written on failure");
    return;
  }
  const int slot = in.u8() % kSlots;
  slstm_model_destroy(w.models[slot]);
  w.models[slot] = m;
}

void op_model_destroy(Reader& in, World& w) {
  const int slot = in.u8() % (kSlots + 1);
  if (slot == kSlots) {
    slstm_model_destroy(nullptr);
    return;
  }
  slstm_model_destroy(w.models[slot]);
  w.models[slot] = nullptr;
}

const slstm_model* model_arg(Reader& in, World& w) {
  const std::uint8_t b = in.u8();
  return b == 255 ? nullptr : w.models[b % kSlots];
}

void op_model_query(Reader& in, World& w) {
  const slstm_model* m = model_arg(in, w);
  if (m == nullptr && in.u8() < 128) return;  // NULL model: checked below sometimes
  const bool null_out = in.u8() == 255;
  std::int32_t i32 = -5;
  std::int64_t i64 = -5;
  float f = -5;
  std::size_t sz = 12345;
  switch (in.u8() % 6) {
    case 0: check_status(slstm_model_num_layers(m, null_out ? nullptr : &i32)); break;
    case 1: check_status(slstm_model_input_size(m, null_out ? nullptr : &i64)); break;
    case 2: {
      const std::int32_t layer = layer_index(in);
      check_status(slstm_model_hidden_size(m, layer, null_out ? nullptr : &i64));
      break;
    }
    case 3: check_status(slstm_model_forget_bias(m, null_out ? nullptr : &f)); break;
    case 4: {
      const slstm_status st = slstm_model_state_count(m, size(in, 2), null_out ? nullptr : &sz);
      check_status(st);
      if (st != SLSTM_OK && sz != 12345) violated("state_count written on failure");
      break;
    }
    default: {
      const std::int64_t batch = size(in, 2);
      const std::int32_t layer = layer_index(in);
      const int part = enum_value(in, 2);
      const slstm_status st = slstm_model_state_offset(
          m, batch, layer, static_cast<slstm_state_part>(part), null_out ? nullptr : &sz);
      check_status(st);
      if (st != SLSTM_OK && sz != 12345) violated("state_offset written on failure");
      break;
    }
  }
}

void op_model_export(Reader& in, World& w) {
  const slstm_model* m = model_arg(in, w);
  const int format = enum_value(in, 7);
  std::int32_t layers = 1;
  std::int64_t in_size = 1;
  if (m != nullptr) {
    slstm_model_num_layers(m, &layers);
    slstm_model_input_size(m, &in_size);
  }
  std::vector<slstm_tensor_out> ts;
  std::int64_t prev = in_size;
  for (std::int32_t l = 0; l < layers; ++l) {
    std::int64_t h = 1;
    if (m != nullptr) slstm_model_hidden_size(m, l, &h);
    std::int64_t shapes[4][4];
    int ndims[4];
    const int per = expected_shapes(format < 0 || format > 6 ? 0 : format, prev, h, shapes, ndims);
    for (int k = 0; k < per; ++k) {
      slstm_tensor_out t{};
      t.ndim = ndims[k];
      std::memcpy(t.shape, shapes[k], sizeof t.shape);
      const std::uint8_t lie = in.u8();
      if (lie >= 200) t.shape[lie % 4] = size(in, 2);
      // Shapes claiming more than the arena are never honest for an existing model: every
      // model the decoder can create has tensors that fit in the arena.
      t.data = in.u8() == 255 ? nullptr : w.arena.data();
      ts.push_back(t);
    }
    prev = h;
  }
  std::size_t n = ts.size();
  if (in.u8() >= 240 && n > 0) n -= 1;
  w.snapshot = w.arena;
  const slstm_status st = slstm_model_export(m, static_cast<slstm_weight_format>(format),
                                             ts.empty() ? nullptr : ts.data(), n);
  check_status(st);
  if (st != SLSTM_OK && std::memcmp(w.snapshot.data(), w.arena.data(), kArena * sizeof(float)) != 0) {
    violated("export wrote on failure");
  }
}

// A thread pool of the caller's that runs the tasks one after another on the calling thread.
void serial_parallel_for(void*, slstm_pool_task task, void* arg, std::int32_t n) {
  for (std::int32_t i = 0; i < n; ++i) task(arg, i);
}

// Sometimes a thread pool of the caller's for options->thread_pool: the serial one above,
// declaring 1-4 threads (or a bad count), sometimes without parallel_for, sometimes with an
// odd struct_size (backed by memory, as for a newer caller).  Null otherwise.
const slstm_thread_pool* pool_arg(Reader& in) {
  static WithTail<slstm_thread_pool> pool;
  if (in.u8() < 192) return nullptr;
  pool = WithTail<slstm_thread_pool>{};
  pool.s.struct_size = struct_size(in, sizeof pool.s);
  maybe_set_tail(in, pool);
  const int threads[] = {2, 1, 4, 3, 0, -1};
  pool.s.num_threads = threads[in.u8() % 6];
  pool.s.parallel_for = in.u8() == 255 ? nullptr : &serial_parallel_for;
  return &pool.s;
}

void op_session_create(Reader& in, World& w) {
  const slstm_model* m = model_arg(in, w);
  WithTail<slstm_session_options> ot;
  slstm_session_options& o = ot.s;
  slstm_session_options_init(&o);
  o.struct_size = struct_size(in, sizeof o);
  maybe_set_tail(in, ot);
  o.backend = static_cast<slstm_backend>(enum_value(in, 2));
  o.max_batch = size(in, 4, 16);
  o.max_time = size(in, 6, 16);
  o.cpu_path = static_cast<slstm_cpu_path>(enum_value(in, 3));
  const int threads[] = {0, 1, 2, 3, -1};  // 0 bytes decode to the defaults
  o.num_threads = threads[in.u8() % 5];
  const int devices[] = {0, 1, -1};
  o.device = devices[in.u8() % 3];
  const int tf32[] = {0, 1, 2, -1};
  o.allow_tf32 = tf32[in.u8() % 4];
  o.cuda_stream = in.u8() == 255 ? reinterpret_cast<void*>(0x1234) : nullptr;
  if (in.u8() >= 128) o.max_slots = size(in, 4, 8);  // stream slots (sometimes absurd)
  const bool null_options = in.u8() == 255, null_out = in.u8() == 255;
  const int precisions[] = {0, 1, 3, 4, 2, -1, 9};  // default first: 0 bytes decode to it
  o.precision = precisions[in.u8() % 7];
  o.thread_pool = pool_arg(in);
  slstm_session* s = kSentinelSession;
  const slstm_status st = slstm_session_create(m, null_options ? nullptr : &o, null_out ? nullptr : &s);
  check_status(st);
  if (st != SLSTM_OK) {
    if (s != kSentinelSession) violated("out_session written on failure");
    return;
  }
  slstm_backend kind = SLSTM_BACKEND_CUDA;
  check_status(slstm_session_backend(s, &kind));
  const int slot = in.u8() % kSlots;
  slstm_session_destroy(w.sessions[slot]);
  w.sessions[slot] = s;
}

void op_session_destroy(Reader& in, World& w) {
  const int slot = in.u8() % (kSlots + 1);
  if (slot == kSlots) {
    slstm_session_destroy(nullptr);
    return;
  }
  slstm_session_destroy(w.sessions[slot]);
  w.sessions[slot] = nullptr;
}

// The model a session was made from is not queryable through the API; the decoder uses the
// model slot with the same index when it wants "honest" counts (often the right one).
void sizes_for(World& w, int slot, std::int64_t batch, std::int64_t time, std::size_t* n_in,
               std::size_t* n_out, std::size_t* n_state) {
  const slstm_model* m = w.models[slot];
  std::int64_t d = 3, h_last = 5;
  std::int32_t layers = 1;
  *n_state = 0;
  if (m != nullptr) {
    slstm_model_input_size(m, &d);
    slstm_model_num_layers(m, &layers);
    slstm_model_hidden_size(m, layers - 1, &h_last);
    if (batch >= 1 && slstm_model_state_count(m, batch, n_state) != SLSTM_OK) *n_state = 0;
  }
  *n_in = product_or_max({batch, time, d});
  *n_out = product_or_max({batch, time, h_last});
}

void op_forward(Reader& in, World& w, bool step) {
  const std::uint8_t sb = in.u8();
  const int slot = sb % kSlots;
  slstm_session* s = sb == 255 ? nullptr : w.sessions[slot];
  WithTail<slstm_forward_args> at;
  slstm_forward_args& a = at.s;
  slstm_forward_args_init(&a);
  a.struct_size = struct_size(in, sizeof a);
  maybe_set_tail(in, at);
  a.layout = static_cast<slstm_layout>(enum_value(in, 2));
  a.memory = static_cast<slstm_memory>(in.u8() < 245 ? 0 : enum_value(in, 2));
  a.batch = size(in, 2, 8);
  a.time = step ? 1 : size(in, 3, 8);
  if (in.u8() == 7 && a.time >= 1 && a.time <= 8) a.time -= 3;  // sometimes 0 or < 0
  std::size_t n_in = 0, n_out = 0, n_state = 0;
  sizes_for(w, slot, a.batch, a.time, &n_in, &n_out, &n_state);
  const Buf x = buffer(in, w, 0), init = buffer(in, w, 1), out = buffer(in, w, 2),
            fin = buffer(in, w, 3);
  a.input = x.p;
  a.input_count = x.p ? count(in, n_in, x.cap) : 0;
  // Input values: a few positions from the input (NaN/Inf possible); the rest stay as the
  // arena holds them (whatever earlier calls wrote: finite or not).
  for (int k = in.u8() % 4; k > 0 && x.p && a.input_count > 0; --k) {
    x.p[in.u16() % a.input_count] = value(in);
  }
  if (in.u8() >= 128) {
    const std::size_t nl = a.batch >= 1 && a.batch <= 64 ? static_cast<std::size_t>(a.batch) : 64;
    for (std::size_t b = 0; b < nl; ++b) {
      const std::uint8_t lb = in.u8();
      const std::int64_t t = a.time > 0 ? (a.time < 64 ? a.time : 64) : 0;
      w.lens[b] = lb < 240 ? static_cast<std::int32_t>(lb % (t + 1)) : static_cast<std::int32_t>(t + 1 + lb % 3) * (lb % 2 ? 1 : -1);
    }
    a.sequence_lengths = w.lens.data();
    a.sequence_lengths_count = count(in, nl, w.lens.size());
  }
  a.initial_state = init.p;
  a.initial_state_count = init.p ? count(in, n_state, init.cap) : 0;
  a.output = out.p;
  a.output_count = out.p ? count(in, n_out, out.cap) : 0;
  const std::uint8_t alias = in.u8();
  if (alias == 250) {  // update the state in place (allowed)
    a.final_state = const_cast<float*>(a.initial_state);
    a.final_state_count = a.initial_state_count;
  } else if (alias == 251 && x.p) {  // output over the input (rejected)
    a.output = const_cast<float*>(a.input);
    a.output_count = count(in, n_out, x.cap);
  } else {
    a.final_state = fin.p;
    a.final_state_count = fin.p ? count(in, n_state, fin.cap) : 0;
  }
  const bool null_args = in.u8() == 255;
  w.snapshot = w.arena;
  slstm_status st;
  if (step) {
    st = slstm_session_step(s, a.batch, a.input, a.input_count, a.initial_state,
                            a.initial_state_count, a.output, a.output_count, a.final_state,
                            a.final_state_count);
  } else {
    st = slstm_session_forward(s, null_args ? nullptr : &a);
  }
  check_status(st);
  if (st != SLSTM_OK && std::memcmp(w.snapshot.data(), w.arena.data(), kArena * sizeof(float)) != 0) {
    violated("forward wrote output on failure");
  }
}

// A stream slot id: mostly 0..8 (open, closed or past max_slots), sometimes absurd.
std::int64_t stream_id(Reader& in) {
  const std::uint8_t b = in.u8();
  if (b < 240) return b % 9;
  return kAbsurd[b % (sizeof kAbsurd / sizeof kAbsurd[0])] - (b % 2);
}

// The stream-slot calls: open/close/set/get/info and a batched slot_forward over ids that
// may repeat, be closed or out of range.  A failure must write nothing.
void op_streams(Reader& in, World& w) {
  const std::uint8_t sb = in.u8();
  const int slot = sb % kSlots;
  slstm_session* s = sb == 255 ? nullptr : w.sessions[slot];
  std::size_t n_in = 0, n_out = 0, n_state1 = 0;
  sizes_for(w, slot, 1, 1, &n_in, &n_out, &n_state1);
  const Buf st = buffer(in, w, 1);
  const slstm_memory mem = static_cast<slstm_memory>(in.u8() < 245 ? 0 : enum_value(in, 2));
  w.snapshot = w.arena;
  slstm_status status = SLSTM_OK;
  switch (in.u8() % 6) {
    case 0: {
      std::int64_t id = -7;
      const bool null_out = in.u8() == 255;
      status = slstm_session_slot_open(s, st.p, st.p ? count(in, n_state1, st.cap) : 0, mem,
                                       null_out ? nullptr : &id);
      if (status != SLSTM_OK && id != -7) violated("slot_open wrote out_slot on failure");
      break;
    }
    case 1: status = slstm_session_slot_close(s, stream_id(in)); break;
    case 2:
      status = slstm_session_slot_set_state(s, stream_id(in), st.p,
                                            st.p ? count(in, n_state1, st.cap) : 0, mem);
      break;
    case 3:
      status = slstm_session_slot_get_state(s, stream_id(in), st.p,
                                            st.p ? count(in, n_state1, st.cap) : 0, mem);
      break;
    case 4: {
      std::int64_t max_slots = 0, open = 0;
      status = slstm_session_slot_info(s, in.u8() == 255 ? nullptr : &max_slots,
                                       in.u8() == 255 ? nullptr : &open);
      break;
    }
    default: {
      WithTail<slstm_slot_forward_args> at;
      slstm_slot_forward_args& a = at.s;
      slstm_slot_forward_args_init(&a);
      a.struct_size = struct_size(in, sizeof a);
      maybe_set_tail(in, at);
      a.layout = static_cast<slstm_layout>(enum_value(in, 2));
      a.memory = mem;
      a.batch = size(in, 2, 8);
      a.time = size(in, 1, 4);
      std::int64_t ids[8];
      const std::size_t n_ids =
          a.batch >= 1 && a.batch <= 8 ? static_cast<std::size_t>(a.batch) : 8;
      for (std::size_t k = 0; k < n_ids; ++k) ids[k] = stream_id(in);
      if (in.u8() != 255) {
        a.slot_ids = ids;
        a.slot_ids_count = count(in, n_ids, n_ids);
      }
      std::size_t n_state = 0;
      sizes_for(w, slot, a.batch, a.time, &n_in, &n_out, &n_state);
      const Buf x = buffer(in, w, 0), out = buffer(in, w, 2);
      a.input = x.p;
      a.input_count = x.p ? count(in, n_in, x.cap) : 0;
      if (in.u8() >= 128) {
        for (std::size_t b = 0; b < n_ids; ++b) {
          w.lens[b] = static_cast<std::int32_t>(in.u8() % 6) - 1;
        }
        a.sequence_lengths = w.lens.data();
        a.sequence_lengths_count = count(in, n_ids, n_ids);
      }
      a.output = out.p;
      a.output_count = out.p ? count(in, n_out, out.cap) : 0;
      if (in.u8() == 251 && x.p) {  // output over the input (rejected)
        a.output = const_cast<float*>(a.input);
        a.output_count = count(in, n_out, x.cap);
      }
      status = slstm_session_slot_forward(s, in.u8() == 255 ? nullptr : &a);
      break;
    }
  }
  check_status(status);
  if (status != SLSTM_OK &&
      std::memcmp(w.snapshot.data(), w.arena.data(), kArena * sizeof(float)) != 0) {
    violated("a stream-slot call wrote output on failure");
  }
}

void op_onnx(Reader& in, World& w) {
  WithTail<slstm_onnx_lstm_node> nt;
  slstm_onnx_lstm_node& node = nt.s;
  slstm_onnx_lstm_node_init(&node);
  node.struct_size = struct_size(in, sizeof node);
  maybe_set_tail(in, nt);
  const char* directions[] = {nullptr, "forward", "FORWARD", "reverse", "bidirectional", ""};
  node.direction = directions[in.u8() % 6];
  node.has_clip = in.u8() >= 250 ? 1 : 0;
  node.clip = value(in);
  node.input_forget = in.u8() >= 250 ? 1 : 0;
  node.layout = in.u8() % 2;
  const char* acts[] = {"Sigmoid", "Tanh", "tanh", "Relu", nullptr, "SIGMOID"};
  const char* chosen[4];
  for (auto& c : chosen) c = acts[in.u8() % 6];
  node.num_activations = static_cast<std::int32_t>(in.u8() % 6) - 1;  // -1..4
  node.activations = in.u8() == 255 ? nullptr : chosen;
  if (node.num_activations > 4) node.num_activations = 4;  // honest: 4 entries
  slstm_tensor p{};
  if (in.u8() >= 200) {
    p.ndim = static_cast<std::int32_t>(in.u8() % 6) - 1;
    for (auto& d : p.shape) d = size(in, 1, 16);
    // Honest data: the arena when the claimed count fits it, else a count the library must
    // reject (overflow or negative) or a 0-extent tensor.
    const std::size_t claimed = (p.ndim >= 1 && p.ndim <= 4)
                                    ? product_or_max({p.ndim > 0 ? p.shape[0] : 1,
                                                      p.ndim > 1 ? p.shape[1] : 1,
                                                      p.ndim > 2 ? p.shape[2] : 1,
                                                      p.ndim > 3 ? p.shape[3] : 1})
                                    : 0;
    if (claimed > kArena && claimed != static_cast<std::size_t>(-1)) p.ndim = 1, p.shape[0] = 3;
    for (std::size_t k = 0; k < 16; ++k) w.arena[k] = in.u8() >= 250 ? value(in) : 0.0f;
    p.data = in.u8() == 255 ? nullptr : w.arena.data();
    node.peepholes = &p;
  }
  check_status(slstm_onnx_check_node(in.u8() == 255 ? nullptr : &node));
}

void op_model_file(Reader& in, World& w) {
  const slstm_model* m = model_arg(in, w);
  const char* layouts[] = {nullptr, "pytorch", "", "bad\x01layout"};
  const char* layout = layouts[in.u8() % 4];
  std::size_t n = 0;
  slstm_status st = slstm_model_file_size(m, layout, in.u8() == 255 ? nullptr : &n);
  check_status(st);
  if (st != SLSTM_OK || n == 0 || n > (1u << 22)) return;
  std::vector<unsigned char> image(n);
  const std::uint8_t cb = in.u8();
  const std::size_t cap = cb < 240 ? n : n - 1 - cb % 4;  // sometimes too small
  std::size_t wrote = 0;
  st = slstm_model_save_memory(m, layout, image.data(), cap, &wrote);
  check_status(st);
  if (st != SLSTM_OK) return;
  if (wrote != n) violated("save_memory wrote a size other than file_size");
  // Damage a few bytes, maybe truncate, and load it back.
  for (int k = in.u8() % 4; k > 0; --k) image[in.u32() % n] ^= in.u8();
  const std::size_t len = in.u8() >= 240 ? in.u32() % (n + 1) : n;
  slstm_model* back = kSentinelModel;
  st = slstm_model_load_memory(image.data(), len, &back);
  check_status(st);
  if (st == SLSTM_OK) {
    slstm_model_destroy(back);
  } else if (back != kSentinelModel) {
    violated("load_memory wrote out_model on failure");
  }
}

void op_misc(Reader& in) {
  switch (in.u8() % 8) {
    case 0: {
      const char* s = slstm_status_string(static_cast<slstm_status>(enum_value(in, 11)));
      if (s == nullptr) violated("status_string NULL");
      break;
    }
    case 1: {
      char buf[64];
      const std::size_t sz = in.u8() % 65;
      const std::size_t full = slstm_last_error_copy(sz ? buf : nullptr, sz);
      if (full != std::strlen(slstm_last_error())) violated("last_error_copy length");
      if (sz > 0 && std::strlen(buf) != (full < sz ? full : sz - 1)) violated("copy truncation");
      break;
    }
    case 2: check_status(slstm_backend_available(static_cast<slstm_backend>(enum_value(in, 2)))); break;
    case 3: {
      std::int32_t n = -1;
      check_status(slstm_format_tensors_per_layer(static_cast<slstm_weight_format>(enum_value(in, 7)),
                                                  in.u8() == 255 ? nullptr : &n));
      break;
    }
    case 4:
      slstm_model_config_init(nullptr);
      slstm_session_options_init(nullptr);
      slstm_forward_args_init(nullptr);
      slstm_onnx_lstm_node_init(nullptr);
      break;
    case 5:
      if (slstm_version_number() != SLSTM_VERSION_NUMBER) violated("version");
      if (slstm_version_string() == nullptr) violated("version string");
      break;
    case 6: {
      slstm_model* m = kSentinelModel;
      const std::uint8_t b = in.u8();
      const unsigned char tiny[8] = {b, 0, 0, 0, 0, 0, 0, 0};
      const slstm_status st = slstm_model_load_memory(b == 255 ? nullptr : tiny, in.u8() % 9, &m);
      check_status(st);
      if (st == SLSTM_OK) violated("an 8-byte model file loaded");
      break;
    }
    default: check_status(slstm_session_backend(nullptr, nullptr)); break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Reader in{data, size};
  World w;
  for (std::size_t k = 0; k < kArena; ++k) w.arena[k] = static_cast<float>(k % 17) * 0.125f - 1.0f;
  for (int op = 0; op < kMaxOps && !in.empty(); ++op) {
    switch (in.u8() % 14) {
      case 0: op_model_create_random(in, w); break;
      case 1: op_model_create(in, w); break;
      case 2: op_model_destroy(in, w); break;
      case 3: op_model_query(in, w); break;
      case 4: op_model_export(in, w); break;
      case 5: op_session_create(in, w); break;
      case 6: op_session_destroy(in, w); break;
      case 7: op_forward(in, w, false); break;
      case 8: op_forward(in, w, true); break;
      case 9: op_onnx(in, w); break;
      case 10: op_model_file(in, w); break;
      case 11: op_misc(in); break;
      case 12: op_streams(in, w); break;
      default: op_forward(in, w, false); break;
    }
  }
  return 0;
}
