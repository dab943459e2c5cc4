// C entry points for sessions: creation, destruction, the validated forward/step calls and
// the stream slots (header "Stream slots").
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "firewall.hpp"
#include "handles.hpp"
#include "versioned.hpp"

using slstm::fail;
using slstm::capi::guard;
using slstm::capi::require_non_null;

namespace {

std::string num(std::int64_t v) { return std::to_string(v); }

// A buffer the call reads or writes, for the count and overlap checks.
struct Span {
  const char* name;
  const void* ptr;
  std::size_t bytes;
  bool written;
};

bool overlap(const Span& a, const Span& b) {
  if (a.ptr == nullptr || b.ptr == nullptr || a.bytes == 0 || b.bytes == 0) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.ptr);
  const auto b0 = reinterpret_cast<std::uintptr_t>(b.ptr);
  return a0 < b0 + b.bytes && b0 < a0 + a.bytes;
}

// `count` must be `expected` when `ptr` is given, and 0 when it is not.  `formula()` says
// how `expected` was derived; it runs only on failure: a call that passes its checks builds
// no message and so allocates nothing (the header's promise).
template <typename Formula>
void check_count(const void* ptr, std::size_t count, std::size_t expected, const char* ptr_name,
                 const char* count_name, Formula&& formula) {
  if (ptr == nullptr) {
    if (count != 0) {
      fail(SLSTM_ERR_SHAPE_MISMATCH, std::string(count_name) + " is " + std::to_string(count) +
                                         " but " + ptr_name + " is NULL");
    }
    return;
  }
  if (count != expected) {
    fail(SLSTM_ERR_SHAPE_MISMATCH, std::string(count_name) + ": expected " +
                                       std::to_string(expected) + " (" + formula() + "), got " +
                                       std::to_string(count));
  }
}

// What the caller calls each buffer, so that messages name the argument it actually passed.
struct ArgNames {
  const char* input;
  const char* input_count;
  const char* initial_state;
  const char* initial_state_count;
  const char* output;
  const char* output_count;
  const char* final_state;
  const char* final_state_count;
};
constexpr ArgNames kForwardNames = {"input",  "input_count",  "initial_state", "initial_state_count",
                                    "output", "output_count", "final_state",   "final_state_count"};
constexpr ArgNames kStepNames = {"input",  "input_count",  "state",     "state_count",
                                 "output", "output_count", "new_state", "new_state_count"};

// Holds a session for one call: a second thread's call finds it busy and fails with
// SLSTM_ERR_BUSY before touching anything (a session serves one thread at a time; this turns
// a caller's race into a status instead of corrupted buffers or a crash).
class SessionCall {
 public:
  explicit SessionCall(const slstm_session* s) : s_(s) {
    if (s_->busy.exchange(true, std::memory_order_acquire)) {
      fail(SLSTM_ERR_BUSY, "session: another thread is running a call on it (a session serves "
                           "one thread at a time)");
    }
  }
  ~SessionCall() { s_->busy.store(false, std::memory_order_release); }
  SessionCall(const SessionCall&) = delete;
  SessionCall& operator=(const SessionCall&) = delete;

 private:
  const slstm_session* s_;
};

// A memory value the session can take.
void check_memory(const slstm_session& session, slstm_memory memory) {
  if (memory != SLSTM_MEMORY_HOST && memory != SLSTM_MEMORY_DEVICE) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "memory: unknown value " + num(memory));
  }
  if (memory == SLSTM_MEMORY_DEVICE && !session.backend->takes_device_memory()) {
    fail(SLSTM_ERR_UNSUPPORTED, "memory SLSTM_MEMORY_DEVICE needs a CUDA session");
  }
}

// slstm_forward_args.data_type: a known value, and 16-bit codes only in device memory of a
// session that takes them.
void check_data_type(const slstm_session& session, slstm_data_type type, slstm_memory memory) {
  if (type == SLSTM_DATA_F32) return;
  if (type != SLSTM_DATA_BF16 && type != SLSTM_DATA_F16) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "data_type: unknown value " + num(type));
  }
  const std::string name = type == SLSTM_DATA_BF16 ? "SLSTM_DATA_BF16" : "SLSTM_DATA_F16";
  if (!session.backend->takes_16bit_io()) {
    fail(SLSTM_ERR_UNSUPPORTED,
         "data_type " + name + ": 16-bit input and output run on the CUDA backend's generic "
                               "path only (keyed setting cuda.generic), in device memory");
  }
  if (memory != SLSTM_MEMORY_DEVICE) {
    fail(SLSTM_ERR_UNSUPPORTED, "data_type " + name + ": 16-bit input and output are device "
                                                      "buffers (memory SLSTM_MEMORY_DEVICE)");
  }
}

// The enums, batch and time against the session's maxima.
void check_shape(const slstm_session& session, const slstm_forward_args& a) {
  if (a.layout != SLSTM_BATCH_MAJOR && a.layout != SLSTM_TIME_MAJOR) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "layout: unknown value " + num(a.layout));
  }
  check_memory(session, a.memory);
  check_data_type(session, a.data_type, a.memory);
  if (a.batch < 1) fail(SLSTM_ERR_INVALID_ARGUMENT, "batch must be >= 1, got " + num(a.batch));
  if (a.time < 0) fail(SLSTM_ERR_INVALID_ARGUMENT, "time must be >= 0, got " + num(a.time));
  if (a.batch > session.config.max_batch) {
    fail(SLSTM_ERR_OUT_OF_RANGE, "batch " + num(a.batch) + " exceeds the session's max_batch " +
                                     num(session.config.max_batch));
  }
  if (a.time > session.config.max_time) {
    fail(SLSTM_ERR_OUT_OF_RANGE, "time " + num(a.time) + " exceeds the session's max_time " +
                                     num(session.config.max_time));
  }
}

// Element counts the call's shape needs.
struct Counts {
  std::size_t input, output, state;
};

// Every buffer's count against the shape (a NULL buffer must come with count 0).
Counts check_counts(const slstm::Model& m, const slstm_forward_args& a, const ArgNames& n) {
  const std::int64_t B = a.batch, T = a.time, D = m.input_size(), H = m.output_size();
  const Counts c = {slstm::product({B, T, D}, "input_count"),
                    slstm::product({B, T, H}, "output_count"), m.state_count(B)};
  if (T > 0) require_non_null(a.input, n.input);
  const auto state_formula = [] { return std::string("slstm_model_state_count(model, batch)"); };
  check_count(a.input, a.input_count, c.input, n.input, n.input_count,
              [&] { return "batch " + num(B) + " x time " + num(T) + " x input_size " + num(D); });
  check_count(a.sequence_lengths, a.sequence_lengths_count, static_cast<std::size_t>(B),
              "sequence_lengths", "sequence_lengths_count", [] { return std::string("batch"); });
  check_count(a.initial_state, a.initial_state_count, c.state, n.initial_state,
              n.initial_state_count, state_formula);
  check_count(a.output, a.output_count, c.output, n.output, n.output_count, [&] {
    return "batch " + num(B) + " x time " + num(T) + " x output width " + num(H);
  });
  check_count(a.final_state, a.final_state_count, c.state, n.final_state, n.final_state_count,
              state_formula);
  return c;
}

void check_lengths(const slstm_forward_args& a) {
  if (a.sequence_lengths == nullptr) return;
  for (std::int64_t b = 0; b < a.batch; ++b) {
    const std::int32_t len = a.sequence_lengths[b];
    if (len < 0 || len > a.time) {
      fail(SLSTM_ERR_OUT_OF_RANGE, "sequence_lengths[" + num(b) + "] is " + num(len) +
                                       ", must be in [0, time = " + num(a.time) + "]");
    }
  }
}

// Outputs may not overlap inputs or each other; final_state may BE initial_state.  A slot
// call's slot_ids (batch values, read) are one more input.
void check_aliasing(const slstm_forward_args& a, const ArgNames& n, const Counts& c,
                    const std::int64_t* slot_ids = nullptr) {
  enum { kInput, kLengths, kInitial, kOutput, kFinal, kSlotIds, kSpans };
  const std::size_t io = a.data_type == SLSTM_DATA_F32 ? sizeof(float) : sizeof(std::uint16_t);
  const Span spans[kSpans] = {
      {n.input, a.input, c.input * io, false},
      {"sequence_lengths", a.sequence_lengths,
       a.sequence_lengths ? static_cast<std::size_t>(a.batch) * sizeof(std::int32_t) : 0, false},
      {n.initial_state, a.initial_state, c.state * sizeof(float), false},
      {n.output, a.output, c.output * io, true},
      {n.final_state, a.final_state, c.state * sizeof(float), true},
      {"slot_ids", slot_ids, static_cast<std::size_t>(a.batch) * sizeof(std::int64_t), false},
  };
  for (int w = 0; w < kSpans; ++w) {
    if (!spans[w].written) continue;
    for (int o = 0; o < kSpans; ++o) {
      const bool in_place = w == kFinal && o == kInitial && spans[w].ptr == spans[o].ptr;
      if (o == w || in_place || !overlap(spans[w], spans[o])) continue;
      fail(SLSTM_ERR_ALIASING,
           std::string(spans[w].name) + " overlaps " + spans[o].name +
               (o == kInitial ? " (only the exact same pointer is allowed)" : ""));
    }
  }
}

// Every argument of a forward call against the model and the session (a slot call's too:
// its slot_ids join the aliasing check).
void check_call(const slstm_session& session, const slstm_forward_args& a, const ArgNames& n,
                const std::int64_t* slot_ids = nullptr) {
  check_shape(session, a);
  const Counts counts = check_counts(*session.model, a, n);
  check_lengths(a);
  check_aliasing(a, n, counts, slot_ids);
}

// The backend's request for a checked call.
slstm::ForwardCall to_call(const slstm_forward_args& a) {
  slstm::ForwardCall call;
  call.layout = a.layout;
  call.batch = a.batch;
  call.time = a.time;
  call.input = a.input;
  call.lengths = a.sequence_lengths;
  call.initial_state = a.initial_state;
  call.output = a.time > 0 ? a.output : nullptr;
  call.final_state = a.final_state;
  call.memory = a.memory;
  call.data_type = a.data_type;
  return call;
}

// Checks every argument against the model and the session, then runs the backend.
void run_forward(slstm_session* session, const slstm_forward_args& a, const ArgNames& n) {
  const SessionCall hold(session);
  check_call(*session, a, n);
  session->backend->forward(to_call(a));
}

// ---- stream slots ----

// `slot` (named `name`) is a slot id of the session: SLSTM_ERR_OUT_OF_RANGE otherwise.
// `name` makes the argument's name, only for a message: a successful call allocates nothing.
template <typename Name>
void check_slot_id(const slstm_session& s, std::int64_t slot, const Name& name) {
  if (slot < 0 || slot >= s.slots.max_slots) {
    fail(SLSTM_ERR_OUT_OF_RANGE,
         name() + " is " + num(slot) + ", must be in [0, max_slots = " + num(s.slots.max_slots) +
             ")" + (s.slots.max_slots == 0 ? " (the session has no stream slots)" : ""));
  }
}

// `slot` is a slot id of the session and open: SLSTM_ERR_INVALID_ARGUMENT when it is closed.
template <typename Name>
void check_open_slot(const slstm_session& s, std::int64_t slot, const Name& name) {
  check_slot_id(s, slot, name);
  if (s.slots.open[static_cast<std::size_t>(slot)] == 0) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         name() + " is " + num(slot) + ": that slot is not open (open it with "
                                     "slstm_session_slot_open)");
  }
}

// A batch-1 packed state's count (when `state` is given; a NULL state must come with 0).
void check_slot_state(const slstm_session& s, const void* state, std::size_t count,
                      slstm_memory memory) {
  check_memory(s, memory);
  check_count(state, count, s.model->state_count(1), "state", "state_count",
              [] { return std::string("slstm_model_state_count(model, 1)"); });
}

// The slot ids of a slot call: given, one per row, each an open slot, no slot twice.
void check_slot_ids(slstm_session& s, const slstm_slot_forward_args& a) {
  require_non_null(a.slot_ids, "slot_ids");
  check_count(a.slot_ids, a.slot_ids_count, static_cast<std::size_t>(a.batch), "slot_ids",
              "slot_ids_count", [] { return std::string("batch"); });
  SlotTable& t = s.slots;
  const std::uint64_t generation = ++t.generation;
  for (std::int64_t i = 0; i < a.batch; ++i) {
    const std::int64_t slot = a.slot_ids[i];
    check_open_slot(s, slot, [i] { return "slot_ids[" + num(i) + "]"; });
    const auto k = static_cast<std::size_t>(slot);
    if (t.mark[k] == generation) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           "slot_ids[" + num(t.mark_row[k]) + "] and slot_ids[" + num(i) + "] are both " +
               num(slot) + ": a slot may appear once per call");
    }
    t.mark[k] = generation;
    t.mark_row[k] = i;
  }
}

// A model whose every layer reads forward can be streamed (run step by step or chunk by
// chunk with the state carried); one with a reverse or bidirectional layer needs the whole
// sequence in one call.  `what` names the request refused.
void require_streamable(const slstm::Model& m, const char* what) {
  const std::int64_t l = m.first_non_forward();
  if (l < 0) return;
  fail(SLSTM_ERR_UNSUPPORTED,
       std::string(what) + ": layer " + num(l) + " is " +
           slstm::direction_name(m.spec(static_cast<std::size_t>(l)).direction) +
           ", which needs the whole sequence in one call (slstm_session_forward); stepping "
           "and stream slots run forward-only stacks");
}

// The slot table and the backend's slot states for options->max_slots, allocated once.
void create_slots(slstm_session& s, std::int64_t max_slots) {
  if (max_slots == 0) return;
  require_streamable(*s.model, "options->max_slots > 0");
  s.slot_states = s.backend->make_slot_states(max_slots, s.config.max_batch);
  const auto n = static_cast<std::size_t>(max_slots);
  try {
    s.slots.open.assign(n, 0);
    s.slots.mark.assign(n, 0);
    s.slots.mark_row.assign(n, 0);
  } catch (...) {
    slstm::rethrow_as_out_of_memory("cannot allocate the table of options->max_slots = " +
                                    num(max_slots) + " stream slots");
  }
  s.slots.max_slots = max_slots;
  s.backend->count_host_memory(slstm::held_bytes(s.slots.open) + slstm::held_bytes(s.slots.mark) +
                               slstm::held_bytes(s.slots.mark_row));
}

slstm_session_options options_defaults() {
  slstm_session_options o{};
  o.struct_size = sizeof o;
  o.backend = SLSTM_BACKEND_CPU;
  return o;
}
constexpr std::size_t kOptionsV1 = SLSTM_V1_SIZE(slstm_session_options, cuda_stream);

// *pool (options->thread_pool) checked and copied, or a struct with a null parallel_for for
// none.  Validated whichever backend the session uses, like the keyed settings.
slstm_thread_pool caller_pool(const slstm_thread_pool* pool, const slstm::Settings& settings) {
  slstm_thread_pool none{};
  if (pool == nullptr) return none;
  if (settings.cpu_pool == slstm::Settings::CpuPool::kShared) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         "options->thread_pool is set and options->config says cpu.pool=shared: a session "
         "runs on one pool, the caller's or the process-wide one");
  }
  none.struct_size = sizeof none;
  if (pool->struct_size < sizeof none) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "options->thread_pool->struct_size is " +
                                         num(pool->struct_size) + ", expected " +
                                         num(sizeof none) + " (sizeof(slstm_thread_pool))");
  }
  const slstm_thread_pool p = slstm::capi::read_versioned(pool, sizeof(slstm_thread_pool),
                                                          "options->thread_pool", none);
  if (p.parallel_for == nullptr) {
    fail(SLSTM_ERR_INVALID_ARGUMENT, "options->thread_pool->parallel_for is NULL");
  }
  if (p.num_threads < 1) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         "options->thread_pool->num_threads must be >= 1, got " + num(p.num_threads));
  }
  return p;
}

// options->precision with options->allow_tf32 (validated: 0 or 1) as one Precision.  What a
// backend does not run is its own refusal (make_backend).  allow_tf32 allows TF32 where the
// backend has it: the CPU backend ignores it under the default precision (as before 0.5).
slstm::Precision session_precision(const slstm_session_options& o) {
  switch (o.precision) {
    case SLSTM_PRECISION_DEFAULT:
      return o.allow_tf32 == 1 && o.backend == SLSTM_BACKEND_CUDA ? slstm::Precision::kTf32
                                                                  : slstm::Precision::kFp32;
    case SLSTM_PRECISION_TF32: return slstm::Precision::kTf32;
    case SLSTM_PRECISION_FP32:
    case SLSTM_PRECISION_BF16:
    case SLSTM_PRECISION_FP16:
      if (o.allow_tf32 == 1) {
        fail(SLSTM_ERR_INVALID_ARGUMENT,
             std::string("options->precision is ") +
                 (o.precision == SLSTM_PRECISION_FP32   ? "SLSTM_PRECISION_FP32"
                  : o.precision == SLSTM_PRECISION_BF16 ? "SLSTM_PRECISION_BF16"
                                                        : "SLSTM_PRECISION_FP16") +
                 " but options->allow_tf32 is 1 (TF32 is SLSTM_PRECISION_TF32)");
      }
      return o.precision == SLSTM_PRECISION_FP32   ? slstm::Precision::kFp32
             : o.precision == SLSTM_PRECISION_BF16 ? slstm::Precision::kBf16
                                                   : slstm::Precision::kFp16;
  }
  fail(SLSTM_ERR_INVALID_ARGUMENT, "options->precision: unknown value " + num(o.precision));
}

slstm_forward_args args_defaults() {
  slstm_forward_args a{};
  a.struct_size = sizeof a;
  a.layout = SLSTM_BATCH_MAJOR;
  a.memory = SLSTM_MEMORY_HOST;
  a.data_type = SLSTM_DATA_F32;
  return a;
}
constexpr std::size_t kArgsV1 = SLSTM_V1_SIZE(slstm_forward_args, memory);

slstm_slot_forward_args slot_args_defaults() {
  slstm_slot_forward_args a{};
  a.struct_size = sizeof a;
  a.layout = SLSTM_BATCH_MAJOR;
  a.memory = SLSTM_MEMORY_HOST;
  return a;
}
constexpr std::size_t kSlotArgsV1 = SLSTM_V1_SIZE(slstm_slot_forward_args, memory);

}  // namespace

extern "C" {

SLSTM_API void slstm_session_options_init_sized(slstm_session_options* options,
                                                size_t struct_size) {
  slstm::capi::init_sized(options, struct_size, options_defaults());
}

SLSTM_API void(slstm_session_options_init)(slstm_session_options* options) {
  slstm::capi::init_sized(options, kOptionsV1, options_defaults());
}

SLSTM_API slstm_status slstm_backend_available(slstm_backend backend) {
  return guard([&] { slstm::require_backend(backend); });
}

SLSTM_API slstm_status slstm_session_create(const slstm_model* model,
                                            const slstm_session_options* options,
                                            slstm_session** out_session) {
  return guard([&] {
    require_non_null(model, "model");
    require_non_null(options, "options");
    require_non_null(out_session, "out_session");
    const slstm_session_options options_copy =
        slstm::capi::read_versioned(options, kOptionsV1, "options", options_defaults());
    options = &options_copy;
    if (options->max_batch < 1) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           "options->max_batch must be >= 1, got " + num(options->max_batch));
    }
    if (options->max_time < 1) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           "options->max_time must be >= 1, got " + num(options->max_time));
    }
    slstm::require_backend(options->backend);
    if (options->cpu_path < SLSTM_CPU_PATH_AUTO || options->cpu_path > SLSTM_CPU_PATH_FAST) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           "options->cpu_path: unknown value " + num(options->cpu_path));
    }
    if (options->num_threads < 0) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           "options->num_threads must be >= 0, got " + num(options->num_threads));
    }
    if (options->device < 0) {
      fail(SLSTM_ERR_INVALID_ARGUMENT, "options->device must be >= 0, got " + num(options->device));
    }
    if (options->allow_tf32 != 0 && options->allow_tf32 != 1) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           "options->allow_tf32 must be 0 or 1, got " + num(options->allow_tf32));
    }
    if (options->max_slots < 0) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           "options->max_slots must be >= 0, got " + num(options->max_slots));
    }
    if (options->max_slots > SLSTM_MAX_SLOTS) {
      fail(SLSTM_ERR_OUT_OF_RANGE, "options->max_slots is " + num(options->max_slots) +
                                       ", above SLSTM_MAX_SLOTS = " + num(SLSTM_MAX_SLOTS));
    }
    const slstm::Settings settings = slstm::parse_settings(options->config);
    const slstm_thread_pool thread_pool = caller_pool(options->thread_pool, settings);
    const slstm::Precision precision = session_precision(*options);
    const slstm::Model& m = *model->model;
    // Every buffer size a call within the maxima can need must be representable in bytes.
    const std::int64_t widest = m.max_width();
    slstm::mul_size(slstm::product({options->max_batch, options->max_time, widest, 4},
                                   "options->max_batch x options->max_time"),
                    sizeof(float), "options->max_batch x options->max_time");
    slstm::mul_size(m.state_count(options->max_batch), sizeof(float), "options->max_batch");
    slstm::mul_size(slstm::product({options->max_slots, m.state_layout().row_floats()},
                                   "options->max_slots"),
                    sizeof(float), "options->max_slots");
    auto session = std::make_unique<slstm_session>();
    session->model = model->model;
    session->config.max_batch = options->max_batch;
    session->config.max_time = options->max_time;
    session->config.cpu_path = options->cpu_path;
    session->config.num_threads = options->num_threads;
    session->config.device = options->device;
    session->config.allow_tf32 = precision == slstm::Precision::kTf32;
    session->config.precision = precision;
    session->config.cuda_stream = options->cuda_stream;
    session->config.thread_pool = thread_pool;
    session->config.settings = settings;
    session->backend = slstm::make_backend(options->backend, model->model, session->config);
    create_slots(*session, options->max_slots);
    *out_session = session.release();
  });
}

SLSTM_API void slstm_session_destroy(slstm_session* session) { delete session; }

SLSTM_API slstm_status slstm_session_backend(const slstm_session* session, slstm_backend* out) {
  return guard([&] {
    require_non_null(session, "session");
    require_non_null(out, "out");
    *out = session->backend->kind();
  });
}

SLSTM_API slstm_status slstm_session_describe(const slstm_session* session,
                                              slstm_describe_format format, char* buf,
                                              size_t size, size_t* out_length) {
  return guard([&] {
    require_non_null(session, "session");
    if (format != SLSTM_DESCRIBE_TEXT && format != SLSTM_DESCRIBE_JSON) {
      fail(SLSTM_ERR_INVALID_ARGUMENT, "format: unknown value " + num(format));
    }
    if (size > 0) require_non_null(buf, "buf");
    const slstm::Plan plan = session->backend->plan();
    const std::string text = format == SLSTM_DESCRIBE_JSON ? plan.json() : plan.text();
    if (size > 0) {
      const std::size_t k = text.size() < size - 1 ? text.size() : size - 1;
      std::memcpy(buf, text.data(), k);
      buf[k] = '\0';
    }
    if (out_length != nullptr) *out_length = text.size();
  });
}

SLSTM_API void slstm_forward_args_init_sized(slstm_forward_args* args, size_t struct_size) {
  slstm::capi::init_sized(args, struct_size, args_defaults());
}

SLSTM_API void(slstm_forward_args_init)(slstm_forward_args* args) {
  slstm::capi::init_sized(args, kArgsV1, args_defaults());
}

SLSTM_API slstm_status slstm_session_forward(slstm_session* session,
                                             const slstm_forward_args* args) {
  return guard([&] {
    require_non_null(session, "session");
    require_non_null(args, "args");
    run_forward(session, slstm::capi::read_versioned(args, kArgsV1, "args", args_defaults()),
                kForwardNames);
  });
}

SLSTM_API slstm_status slstm_session_step(slstm_session* session, int64_t batch,
                                          const float* input, size_t input_count,
                                          const float* state, size_t state_count,
                                          float* output, size_t output_count, float* new_state,
                                          size_t new_state_count) {
  return guard([&] {
    require_non_null(session, "session");
    require_streamable(*session->model, "slstm_session_step");
    slstm_forward_args a = args_defaults();
    a.batch = batch;
    a.time = 1;
    a.input = input;
    a.input_count = input_count;
    a.initial_state = state;
    a.initial_state_count = state_count;
    a.output = output;
    a.output_count = output_count;
    a.final_state = new_state;
    a.final_state_count = new_state_count;
    run_forward(session, a, kStepNames);
  });
}

SLSTM_API slstm_status slstm_session_slot_open(slstm_session* session, const float* state,
                                               size_t state_count, slstm_memory memory,
                                               int64_t* out_slot) {
  return guard([&] {
    require_non_null(session, "session");
    require_non_null(out_slot, "out_slot");
    const SessionCall hold(session);
    check_slot_state(*session, state, state_count, memory);
    SlotTable& t = session->slots;
    if (t.open_count == t.max_slots) {
      fail(SLSTM_ERR_SLOTS_FULL,
           t.max_slots == 0
               ? std::string("the session has no stream slots (it was created with "
                             "options->max_slots = 0)")
               : "all " + num(t.max_slots) + " stream slots are open (close one first)");
    }
    std::int64_t slot = t.first_free;
    while (t.open[static_cast<std::size_t>(slot)] != 0) ++slot;
    session->slot_states->write(slot, state, memory);
    t.open[static_cast<std::size_t>(slot)] = 1;
    ++t.open_count;
    t.first_free = slot + 1;
    *out_slot = slot;
  });
}

SLSTM_API slstm_status slstm_session_slot_close(slstm_session* session, int64_t slot) {
  return guard([&] {
    require_non_null(session, "session");
    const SessionCall hold(session);
    check_open_slot(*session, slot, [] { return std::string("slot"); });
    SlotTable& t = session->slots;
    t.open[static_cast<std::size_t>(slot)] = 0;
    --t.open_count;
    if (slot < t.first_free) t.first_free = slot;
  });
}

SLSTM_API slstm_status slstm_session_slot_set_state(slstm_session* session, int64_t slot,
                                                    const float* state, size_t state_count,
                                                    slstm_memory memory) {
  return guard([&] {
    require_non_null(session, "session");
    const SessionCall hold(session);
    check_open_slot(*session, slot, [] { return std::string("slot"); });
    check_slot_state(*session, state, state_count, memory);
    session->slot_states->write(slot, state, memory);
  });
}

SLSTM_API slstm_status slstm_session_slot_get_state(slstm_session* session, int64_t slot,
                                                    float* state, size_t state_count,
                                                    slstm_memory memory) {
  return guard([&] {
    require_non_null(session, "session");
    const SessionCall hold(session);
    check_open_slot(*session, slot, [] { return std::string("slot"); });
    require_non_null(state, "state");
    check_slot_state(*session, state, state_count, memory);
    session->slot_states->read(slot, state, memory);
  });
}

SLSTM_API slstm_status slstm_session_slot_info(const slstm_session* session,
                                               int64_t* max_slots, int64_t* open_slots) {
  return guard([&] {
    require_non_null(session, "session");
    const SessionCall hold(session);
    if (max_slots != nullptr) *max_slots = session->slots.max_slots;
    if (open_slots != nullptr) *open_slots = session->slots.open_count;
  });
}

SLSTM_API void slstm_slot_forward_args_init_sized(slstm_slot_forward_args* args,
                                                  size_t struct_size) {
  slstm::capi::init_sized(args, struct_size, slot_args_defaults());
}

SLSTM_API slstm_status slstm_session_slot_forward(slstm_session* session,
                                                  const slstm_slot_forward_args* args) {
  return guard([&] {
    require_non_null(session, "session");
    require_non_null(args, "args");
    const slstm_slot_forward_args a =
        slstm::capi::read_versioned(args, kSlotArgsV1, "args", slot_args_defaults());
    const SessionCall hold(session);
    slstm_forward_args f = args_defaults();
    f.layout = a.layout;
    f.batch = a.batch;
    f.time = a.time;
    f.input = a.input;
    f.input_count = a.input_count;
    f.sequence_lengths = a.sequence_lengths;
    f.sequence_lengths_count = a.sequence_lengths_count;
    f.output = a.output;
    f.output_count = a.output_count;
    f.memory = a.memory;
    check_call(*session, f, kForwardNames, a.slot_ids);
    check_slot_ids(*session, a);
    session->slot_states->forward(to_call(f), a.slot_ids);
  });
}

}  // extern "C"
