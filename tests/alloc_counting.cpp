// "A session allocates nothing per call" (header, OWNERSHIP), checked by counting: this
// executable interposes malloc, calloc, realloc and the aligned allocators (operator new and
// the C++ runtime's allocations go through them), counts every call made while a window is
// open (by any thread for the CPU backend, whose workers are the library's; by the calling
// thread for CUDA, where the driver's and cuBLAS's threads allocate on their own), and runs
// successful slstm_session_forward / slstm_session_step calls inside it.
//
// Its own executable because the interposition must not meet a sanitizer's or valgrind's
// allocator: CMake builds it only without SLSTM_SANITIZE, and tests/valgrind.sh does not run
// it.  ctest runs the [cpu] cases once per CPU path (as the main suite) and the [cuda] case
// once, which exits 77 (reported as skipped) where no GPU is usable.
//
// The same interposition fails the n-th allocation of a window on request (g_fail_at): the
// [oom] cases make each allocation of a call fail in turn and check the header's ERRORS
// promise (SLSTM_ERR_OUT_OF_MEMORY, a message, nothing written) at every one. It also
// interposes pthread_create (std::thread's), and fails the n-th thread creation on request
// (g_fail_thread_at, EAGAIN as at a process's thread limit): the [threads] cases.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

// ---- the counting allocator ----------------------------------------------------------------

extern "C" {
void __libc_free(void*);
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
std::atomic<bool> g_counting{false};
// Which threads count: every thread (the CPU backend's workers are the library's), or only
// the one that opened the window (CUDA: the library's host work runs on the calling thread,
// while the driver's and cuBLAS's own threads allocate as they please; counted apart).
std::atomic<bool> g_every_thread{true};
thread_local bool t_opened_window = false;
std::atomic<long> g_allocations{0};
std::atomic<long> g_other_threads{0};
// 0: every allocation succeeds; n > 0: the window's n-th counted allocation fails (malloc
// and its kin return NULL, so operator new throws std::bad_alloc).
std::atomic<long> g_fail_at{0};
// The call stack of the first counted allocation, printed when a check fails (backtrace()
// is warmed up before the first window, so recording allocates nothing).
void* g_first[16];
std::atomic<int> g_first_depth{0};
// Counts an allocation; true when it is the one to fail.
inline bool note() {
  if (!g_counting.load(std::memory_order_relaxed)) return false;
  if (!g_every_thread.load(std::memory_order_relaxed) && !t_opened_window) {
    g_other_threads.fetch_add(1);
    return false;
  }
  const long k = g_allocations.fetch_add(1) + 1;
  if (k == 1 && g_fail_at.load() == 0) g_first_depth.store(backtrace(g_first, 16));
  if (k != g_fail_at.load(std::memory_order_relaxed)) return false;
  errno = ENOMEM;  // as glibc's allocators fail
  return true;
}
void print_first_allocation() {
  std::fprintf(stderr, "first allocation inside the window:\n");
  std::fflush(stderr);
  backtrace_symbols_fd(g_first, g_first_depth.load(), STDERR_FILENO);
}
}  // namespace

// ---- the bytes a window leaves allocated ---------------------------------------------------
//
// While g_tracking, every allocation's address and size go into a table in static storage
// (recording allocates nothing) and freeing one takes it out: what is left when the window
// closes is what the window's allocations still hold (the plan's host_memory_bytes).
namespace {
constexpr std::size_t kTrackSlots = std::size_t{1} << 16;
struct Tracked {
  void* p;
  std::size_t n;
};
Tracked g_tracked[kTrackSlots];
std::atomic<bool> g_tracking{false};
std::atomic<bool> g_track_full{false};  // more live allocations than slots: not measured
std::atomic_flag g_track_lock = ATOMIC_FLAG_INIT;
void* const kGone = reinterpret_cast<void*>(std::uintptr_t{1});  // a freed entry

struct TrackLock {
  TrackLock() {
    while (g_track_lock.test_and_set(std::memory_order_acquire)) {
    }
  }
  ~TrackLock() { g_track_lock.clear(std::memory_order_release); }
};
std::size_t first_slot(const void* p) {  // 16 bits of a multiplicative hash
  return static_cast<std::size_t>(
      ((reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull) >> 48);
}
void track(void* p, std::size_t n) {
  if (p == nullptr || !g_tracking.load(std::memory_order_relaxed)) return;
  const TrackLock lock;
  for (std::size_t k = 0, i = first_slot(p); k < kTrackSlots; ++k, i = (i + 1) % kTrackSlots) {
    if (g_tracked[i].p == nullptr || g_tracked[i].p == kGone) {
      g_tracked[i] = {p, n};
      return;
    }
  }
  g_track_full.store(true);
}
void untrack(void* p) {
  if (p == nullptr || !g_tracking.load(std::memory_order_relaxed)) return;
  const TrackLock lock;
  for (std::size_t k = 0, i = first_slot(p); k < kTrackSlots; ++k, i = (i + 1) % kTrackSlots) {
    if (g_tracked[i].p == nullptr) return;  // not the window's
    if (g_tracked[i].p == p) {
      g_tracked[i] = {kGone, 0};
      return;
    }
  }
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  void* q = note() ? nullptr : __libc_malloc(n);
  track(q, n);
  return q;
}
void* calloc(std::size_t k, std::size_t n) {
  void* q = note() ? nullptr : __libc_calloc(k, n);
  track(q, k * n);
  return q;
}
void* realloc(void* p, std::size_t n) {
  if (note()) return nullptr;
  void* q = __libc_realloc(p, n);
  if (q != nullptr || n == 0) {
    untrack(p);
    track(q, n);
  }
  return q;
}
void free(void* p) {
  untrack(p);
  __libc_free(p);
}
void* memalign(std::size_t a, std::size_t n) {
  void* q = note() ? nullptr : __libc_memalign(a, n);
  track(q, n);
  return q;
}
void* aligned_alloc(std::size_t a, std::size_t n) {
  void* q = note() ? nullptr : __libc_memalign(a, n);
  track(q, n);
  return q;
}
int posix_memalign(void** p, std::size_t a, std::size_t n) {
  if (note()) return ENOMEM;
  void* q = __libc_memalign(a, n);
  if (q == nullptr) return ENOMEM;
  track(q, n);
  *p = q;
  return 0;
}
}

// ---- thread creation that fails on request -----------------------------------------------

namespace {
using CreateFn = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
CreateFn g_real_create = nullptr;  // resolved in main(), before any thread is made
std::atomic<long> g_thread_creations{0};
std::atomic<long> g_fail_thread_at{0};  // 0: none fails; n > 0: the n-th from now on fails
}  // namespace

extern "C" int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                              void* (*start)(void*), void* arg) {
  const long k = g_thread_creations.fetch_add(1) + 1;
  if (k == g_fail_thread_at.load()) return EAGAIN;
  return g_real_create(thread, attr, start, arg);
}

namespace {

enum class Threads { kEvery, kCalling };

// Counts the allocations made by `body`: by every thread of the process, or by the calling
// thread only (the others' are then printed as a count, not returned).
// Prints the first allocation's call stack when `expect_none` and there was one.
template <typename Body>
long allocations_during(Body&& body, bool expect_none = true, Threads threads = Threads::kEvery) {
  g_allocations.store(0);
  g_other_threads.store(0);
  g_first_depth.store(0);
  g_every_thread.store(threads == Threads::kEvery);
  t_opened_window = true;
  g_counting.store(true);
  body();
  g_counting.store(false);
  t_opened_window = false;
  const long n = g_allocations.load();
  if (n > 0 && expect_none) print_first_allocation();
  if (g_other_threads.load() > 0) {
    std::printf("(%ld allocations by other threads of the process: not the library's)\n",
                g_other_threads.load());
  }
  return n;
}

// The bytes that `body`'s allocations (by any thread) still hold when it returns; -1 when
// they were too many to track.
template <typename Body>
std::int64_t bytes_left_by(Body&& body) {
  std::fill(std::begin(g_tracked), std::end(g_tracked), Tracked{nullptr, 0});
  g_track_full.store(false);
  g_tracking.store(true);
  body();
  g_tracking.store(false);
  if (g_track_full.load()) return -1;
  std::int64_t n = 0;
  for (const Tracked& e : g_tracked) {
    if (e.p != nullptr && e.p != kGone) n += static_cast<std::int64_t>(e.n);
  }
  return n;
}

struct Shape {
  std::vector<std::int64_t> hidden;
  std::int64_t batch, time;
  slstm_layout layout;
  bool lengths, initial_state;
  std::int32_t threads;  // 0: the session's default (one per core)
};

// Repeated successful calls of `shape` on a session of `backend` allocate nothing once the
// shape has run once (the first call may: e.g. a CUDA graph is captured for a new shape).
void check_forward_allocates_nothing(slstm_backend backend, const Shape& sh,
                                     std::int32_t precision = SLSTM_PRECISION_DEFAULT,
                                     const char* config = nullptr) {
  constexpr std::int64_t D = 7;
  t::Model m = t::random_model(D, sh.hidden, 5);
  slstm_session_options o = t::options(sh.batch, sh.time);
  o.backend = backend;
  o.num_threads = sh.threads;
  o.precision = precision;
  o.config = config;
  INFO("config " << (config != nullptr ? config : "(none)"));
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  t::Session s(raw);
  const std::size_t n_state = t::state_count(m.get(), sh.batch);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(sh.batch * sh.time * D), 6);
  std::vector<std::int32_t> len(static_cast<std::size_t>(sh.batch));
  for (std::int64_t b = 0; b < sh.batch; ++b) len[b] = static_cast<std::int32_t>((b * 5) % (sh.time + 1));
  std::vector<float> init = t::random_vector(n_state, 7), fin(n_state);
  std::vector<float> out(static_cast<std::size_t>(sh.batch * sh.time * sh.hidden.back()));
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.layout = sh.layout;
  a.batch = sh.batch;
  a.time = sh.time;
  a.input = x.data();
  a.input_count = x.size();
  if (sh.lengths) {
    a.sequence_lengths = len.data();
    a.sequence_lengths_count = len.size();
  }
  if (sh.initial_state) {
    a.initial_state = init.data();
    a.initial_state_count = init.size();
  }
  a.output = out.data();
  a.output_count = out.size();
  a.final_state = fin.data();
  a.final_state_count = fin.size();
  std::vector<float> step_x = t::random_vector(static_cast<std::size_t>(sh.batch * D), 8);
  std::vector<float> step_out(static_cast<std::size_t>(sh.batch * sh.hidden.back()));
  std::vector<float> state = init;
  // The first call of each shape, outside the window.
  REQUIRE(slstm_session_forward(s.get(), &a) == SLSTM_OK);
  REQUIRE(slstm_session_step(s.get(), sh.batch, step_x.data(), step_x.size(), state.data(),
                             state.size(), step_out.data(), step_out.size(), state.data(),
                             state.size()) == SLSTM_OK);
  slstm_status st[6] = {};
  // (CUDA: the calling thread's allocations; the driver's own threads are not the library)
  const Threads threads = backend == SLSTM_BACKEND_CPU ? Threads::kEvery : Threads::kCalling;
  const long n = allocations_during(
      [&] {
        for (int k = 0; k < 3; ++k) st[k] = slstm_session_forward(s.get(), &a);
        for (int k = 3; k < 6; ++k) {
          st[k] = slstm_session_step(s.get(), sh.batch, step_x.data(), step_x.size(),
                                     state.data(), state.size(), step_out.data(),
                                     step_out.size(), state.data(), state.size());
        }
      },
      true, threads);
  for (slstm_status v : st) CHECK(v == SLSTM_OK);
  INFO("hidden " << sh.hidden.size() << " layers, batch " << sh.batch << ", time " << sh.time
                 << ", threads " << sh.threads);
  CHECK(n == 0);
}

const Shape kShapes[] = {
    // seed-like stack, both layouts, lengths and initial state
    {{100, 200, 300}, 10, 5, SLSTM_BATCH_MAJOR, true, true, 0},
    {{100, 200, 300}, 10, 5, SLSTM_TIME_MAJOR, false, false, 0},
    // a single row: the fast path's unit split (GEMV), two workers
    {{64, 33}, 1, 9, SLSTM_TIME_MAJOR, true, true, 2},
    // enough rows and steps for the fast path's batch split
    {{48}, 12, 10, SLSTM_BATCH_MAJOR, true, false, 2},
    // one worker
    {{17, 5}, 3, 4, SLSTM_BATCH_MAJOR, false, true, 1},
};

}  // namespace

TEST_CASE("successful CPU forward and step calls allocate nothing", "[cpu]") {
  for (const Shape& sh : kShapes) check_forward_allocates_nothing(SLSTM_BACKEND_CPU, sh);
}

TEST_CASE("successful BF16 and FP16 CPU forward and step calls allocate nothing",
          "[cpu][precision]") {
  for (const Shape& sh : kShapes) {
    check_forward_allocates_nothing(SLSTM_BACKEND_CPU, sh, SLSTM_PRECISION_BF16);
    check_forward_allocates_nothing(SLSTM_BACKEND_CPU, sh, SLSTM_PRECISION_FP16);
  }
}

TEST_CASE("successful CPU stream-slot calls allocate nothing", "[cpu][slot]") {
  constexpr std::int64_t D = 7, B = 6, T = 3, kSlots = 9;
  t::Model m = t::random_model(D, {40, 17}, 11);
  slstm_session_options o = t::options(B, T);
  o.max_slots = kSlots;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  t::Session s(raw);
  const std::size_t n1 = t::state_count(m.get(), 1);
  const std::vector<float> given = t::random_vector(n1, 12);
  std::vector<float> got(n1);
  const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * D), 13);
  std::vector<float> out(static_cast<std::size_t>(B * T * 17));
  const std::vector<std::int32_t> len = {3, 0, 1, 2, 3, 3};
  const std::int64_t ids[B] = {7, 2, 0, 5, 1, 8};
  slstm_slot_forward_args a;
  slstm_slot_forward_args_init(&a);
  a.batch = B;
  a.slot_ids = ids;
  a.slot_ids_count = B;
  a.time = T;
  a.input = x.data();
  a.input_count = x.size();
  a.sequence_lengths = len.data();
  a.sequence_lengths_count = len.size();
  a.output = out.data();
  a.output_count = out.size();
  std::int64_t slot = -1, open = -1;
  std::vector<slstm_status> st;
  st.reserve(64);
  const long n = allocations_during([&] {
    for (std::int64_t k = 0; k < kSlots; ++k) {
      st.push_back(k % 2 ? slstm_session_slot_open(s.get(), given.data(), n1, SLSTM_MEMORY_HOST,
                                                   &slot)
                         : slstm_session_slot_open(s.get(), nullptr, 0, SLSTM_MEMORY_HOST, &slot));
    }
    for (int k = 0; k < 3; ++k) st.push_back(slstm_session_slot_forward(s.get(), &a));
    st.push_back(slstm_session_slot_set_state(s.get(), 2, given.data(), n1, SLSTM_MEMORY_HOST));
    st.push_back(slstm_session_slot_set_state(s.get(), 3, nullptr, 0, SLSTM_MEMORY_HOST));
    st.push_back(slstm_session_slot_get_state(s.get(), 7, got.data(), n1, SLSTM_MEMORY_HOST));
    st.push_back(slstm_session_slot_info(s.get(), nullptr, &open));
    st.push_back(slstm_session_slot_close(s.get(), 4));
  });
  for (slstm_status v : st) CHECK(v == SLSTM_OK);
  CHECK(open == kSlots);
  CHECK(n == 0);
}

TEST_CASE("a successful stream-slot call of more than 100000 rows allocates nothing",
          "[cpu][slot]") {
  // Row indices of six digits and more: an argument name built per row ("slot_ids[100000]")
  // would not fit a short string's own buffer.
  constexpr std::int64_t B = 100'003;
  t::Model m = t::random_model(1, {1}, 14);
  slstm_session_options o = t::options(B, 1);
  o.max_slots = B;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m.get(), &o, &raw) == SLSTM_OK);
  t::Session s(raw);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(B));
  for (std::int64_t k = 0; k < B; ++k) {
    std::int64_t slot = -1;
    REQUIRE(slstm_session_slot_open(s.get(), nullptr, 0, SLSTM_MEMORY_HOST, &slot) == SLSTM_OK);
    ids[static_cast<std::size_t>(B - 1 - k)] = slot;
  }
  const std::vector<float> x(static_cast<std::size_t>(B), 0.5f);
  std::vector<float> out(static_cast<std::size_t>(B));
  slstm_slot_forward_args a;
  slstm_slot_forward_args_init(&a);
  a.batch = B;
  a.slot_ids = ids.data();
  a.slot_ids_count = ids.size();
  a.time = 1;
  a.input = x.data();
  a.input_count = x.size();
  a.output = out.data();
  a.output_count = out.size();
  REQUIRE(slstm_session_slot_forward(s.get(), &a) == SLSTM_OK);  // the first call, outside
  slstm_status st = SLSTM_ERR_INTERNAL;
  const long n = allocations_during([&] { st = slstm_session_slot_forward(s.get(), &a); });
  CHECK(st == SLSTM_OK);
  CHECK(n == 0);
}

TEST_CASE("a failing call still reports its message (the count covers successes only)", "[cpu]") {
  // The counter itself works: a rejected call builds its message, which allocates.
  t::Model m = t::random_model(3, {4}, 9);
  t::Session s = t::session(m.get(), 1, 1);
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = 2;  // above max_batch
  a.time = 1;
  slstm_status st = SLSTM_OK;
  const long n = allocations_during([&] { st = slstm_session_forward(s.get(), &a); }, false);
  CHECK(st == SLSTM_ERR_OUT_OF_RANGE);
  CHECK(n > 0);
}

// ---- whichever allocation fails ------------------------------------------------------------
// (header, ERRORS: SLSTM_ERR_OUT_OF_MEMORY, and nothing the caller passed for output written)

namespace {

// Runs `call` (which returns a status) with its n-th allocation failing, n = 1, 2, ..., until
// a run makes fewer than n allocations. Each run that ends in a failure must return
// SLSTM_ERR_OUT_OF_MEMORY with a message and leave the caller's outputs as they were
// (`untouched()`); a run may also absorb the failure and succeed (`succeeded()` then checks
// what it gave). `reset()` runs before each attempt, outside the window. Returns the number
// of allocation points tried; `messages`, where given, gets the failed runs' messages.
template <typename Reset, typename Call, typename Untouched, typename Succeeded>
long check_every_allocation_failure(Reset&& reset, Call&& call, Untouched&& untouched,
                                    Succeeded&& succeeded,
                                    std::vector<std::string>* messages = nullptr) {
  for (long n = 1;; ++n) {
    reset();
    slstm_status st = SLSTM_ERR_INTERNAL;
    g_fail_at.store(n);
    const long made = allocations_during([&] { st = call(); }, false);
    g_fail_at.store(0);
    INFO("allocation " << n << " of " << made << " failed");
    if (st == SLSTM_OK) {
      succeeded();
      if (made < n) return n - 1;
      continue;
    }
    REQUIRE(st == SLSTM_ERR_OUT_OF_MEMORY);
    CHECK(std::string(slstm_last_error()).size() > 0);
    if (messages != nullptr) messages->emplace_back(slstm_last_error());
    REQUIRE(untouched());
  }
}

// Whether one of `messages` contains `part`.
bool any_names(const std::vector<std::string>& messages, const std::string& part) {
  return std::any_of(messages.begin(), messages.end(),
                     [&](const std::string& m) { return m.find(part) != std::string::npos; });
}

// Output tensors for `format` of the stack `layers` over `input` inputs, poisoned.
struct Outputs {
  std::vector<std::vector<float>> data;
  std::vector<slstm_tensor_out> tensors;
  void poison() {  // in place: the tensors point into `data`
    for (auto& d : data) {
      const std::vector<float> p = t::poisoned(d.size());
      std::copy(p.begin(), p.end(), d.begin());
    }
  }
  bool all_poison() const {
    for (const auto& d : data) {
      if (t::count_poison(d) != d.size()) return false;
    }
    return true;
  }
};
Outputs outputs_for(std::int64_t input, const std::vector<slstm_layer_config>& layers,
                    slstm_weight_format format) {
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = input;
  c.num_layers = static_cast<std::int32_t>(layers.size());
  c.layers = layers.data();
  std::vector<slstm_tensor_info> infos(64);
  for (auto& i : infos) i.struct_size = sizeof i;
  std::size_t n = 0;
  REQUIRE(slstm_format_tensors(&c, format, infos.data(), infos.size(), &n) == SLSTM_OK);
  Outputs o;
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t count = 1;
    for (std::int32_t d = 0; d < infos[k].ndim; ++d) count *= infos[k].shape[d];
    o.data.emplace_back(count);
  }
  for (std::size_t k = 0; k < n; ++k) {
    slstm_tensor_out t{};
    t.data = o.data[k].data();
    t.ndim = infos[k].ndim;
    for (std::int32_t d = 0; d < infos[k].ndim; ++d) t.shape[d] = infos[k].shape[d];
    o.tensors.push_back(t);
  }
  return o;
}

std::vector<slstm_layer_config> mixed_stack() { return t::layer_zoo()[3]; }  // LSTMP, bi, res

}  // namespace

TEST_CASE("an export whose allocation fails, whichever, writes no tensor", "[oom]") {
  // (PyTorch's format has no peepholes or clips: a stack it can hold for it)
  const std::vector<slstm_layer_config> pytorch = {
      t::with_direction(t::lstm_layer(5), SLSTM_DIRECTION_BIDIRECTIONAL), t::gru_layer(4, true)};
  for (const slstm_weight_format format : {SLSTM_FORMAT_CANONICAL, SLSTM_FORMAT_PYTORCH}) {
    INFO("format " << format);
    const std::vector<slstm_layer_config> layers =
        format == SLSTM_FORMAT_CANONICAL ? mixed_stack() : pytorch;
    t::Model m = t::random_stack(6, layers, 41);
    Outputs want = outputs_for(6, layers, format);
    REQUIRE(slstm_model_export(m.get(), format, want.tensors.data(), want.tensors.size()) ==
            SLSTM_OK);
    Outputs o = outputs_for(6, layers, format);
    const long points = check_every_allocation_failure(
        [&] { o.poison(); },
        [&] { return slstm_model_export(m.get(), format, o.tensors.data(), o.tensors.size()); },
        [&] { return o.all_poison(); },
        [&] {
          for (std::size_t k = 0; k < o.data.size(); ++k) {
            CHECK(t::bitwise_equal(o.data[k], want.data[k]));
          }
        });
    CHECK(points > 0);
  }
}

TEST_CASE("a model creation whose allocation fails, whichever, returns no model",
          "[oom]") {
  const std::vector<slstm_layer_config> layers = mixed_stack();
  t::Model src = t::random_stack(6, layers, 42);
  Outputs w = outputs_for(6, layers, SLSTM_FORMAT_CANONICAL);
  REQUIRE(slstm_model_export(src.get(), SLSTM_FORMAT_CANONICAL, w.tensors.data(),
                             w.tensors.size()) == SLSTM_OK);
  std::vector<slstm_tensor> in;
  for (const slstm_tensor_out& t : w.tensors) {
    slstm_tensor c{};
    c.data = t.data;
    c.ndim = t.ndim;
    for (std::int32_t d = 0; d < t.ndim; ++d) c.shape[d] = t.shape[d];
    in.push_back(c);
  }
  slstm_model_config c;
  slstm_model_config_init(&c);
  c.input_size = 6;
  c.num_layers = static_cast<std::int32_t>(layers.size());
  c.layers = layers.data();
  slstm_model* const sentinel = reinterpret_cast<slstm_model*>(&c);
  slstm_model* out = sentinel;
  std::vector<std::string> messages;
  const long points = check_every_allocation_failure(
      [&] { out = sentinel; },
      [&] { return slstm_model_create(&c, SLSTM_FORMAT_CANONICAL, in.data(), in.size(), &out); },
      [&] { return out == sentinel; },
      [&] {
        REQUIRE(out != sentinel);
        slstm_model_destroy(out);
      },
      &messages);
  CHECK(points > 0);
  // The weights' own allocations say what could not be allocated.
  CHECK(any_names(messages, "cannot allocate the model's weights"));
}

TEST_CASE("a session creation whose allocation fails, whichever, returns no session",
          "[oom]") {
  t::Model m = t::random_model(7, {33, 17}, 43);
  t::Model mixed = t::random_stack(6, mixed_stack(), 45);
  struct Variant {
    const char* what;
    const slstm_model* model;
    std::int32_t precision;
    std::int64_t slots;
  };
  for (const Variant& v : {Variant{"LSTM, 2 threads", m.get(), SLSTM_PRECISION_DEFAULT, 0},
                           Variant{"LSTM, BF16, 3 slots", m.get(), SLSTM_PRECISION_BF16, 3},
                           Variant{"LSTMP, bidirectional, residual", mixed.get(),
                                   SLSTM_PRECISION_DEFAULT, 0}}) {
    INFO(v.what);
    slstm_session_options o = t::options(5, 4);
    o.num_threads = 2;
    o.precision = v.precision;
    o.max_slots = v.slots;
    slstm_session* const sentinel = reinterpret_cast<slstm_session*>(&o);
    slstm_session* out = sentinel;
    REQUIRE(slstm_session_create(v.model, &o, &out) == SLSTM_OK);  // without a failure
    slstm_session_destroy(out);
    std::vector<std::string> messages;
    const long points = check_every_allocation_failure(
        [&] { out = sentinel; }, [&] { return slstm_session_create(v.model, &o, &out); },
        [&] { return out == sentinel; },
        [&] {
          REQUIRE(out != sentinel);
          slstm_session_destroy(out);
        },
        &messages);
    CHECK(points > 0);
    // A workspace's and the slots' own allocations say what could not be allocated.
    CHECK(any_names(messages, "cannot allocate the CPU"));
    if (v.slots > 0) {
      CHECK(any_names(messages, "cannot allocate the states of options->max_slots = 3"));
      CHECK(any_names(messages, "cannot allocate the table of options->max_slots = 3"));
    }
  }
}

TEST_CASE("a model save or load whose allocation fails, whichever, writes nothing",
          "[oom]") {
  t::Model m = t::random_stack(6, mixed_stack(), 44);
  std::size_t size = 0;
  REQUIRE(slstm_model_file_size(m.get(), nullptr, &size) == SLSTM_OK);
  std::vector<unsigned char> want(size), buf(size);
  REQUIRE(slstm_model_save_memory(m.get(), nullptr, want.data(), want.size(), &size) == SLSTM_OK);
  std::size_t got = 7;
  const long saves = check_every_allocation_failure(
      [&] {
        std::fill(buf.begin(), buf.end(), 0xA5);
        got = 7;
      },
      [&] { return slstm_model_save_memory(m.get(), nullptr, buf.data(), buf.size(), &got); },
      [&] {
        return got == 7 && std::all_of(buf.begin(), buf.end(), [](unsigned char b) {
                 return b == 0xA5;
               });
      },
      [&] { CHECK(buf == want); });
  CHECK(saves > 0);
  slstm_model* const sentinel = reinterpret_cast<slstm_model*>(&got);
  slstm_model* out = sentinel;
  const long loads = check_every_allocation_failure(
      [&] { out = sentinel; },
      [&] { return slstm_model_load_memory(want.data(), want.size(), &out); },
      [&] { return out == sentinel; },
      [&] {
        REQUIRE(out != sentinel);
        slstm_model_destroy(out);
      });
  CHECK(loads > 0);
}

// A session's host_memory_bytes against what its creation left allocated: never more, and
// short of it by no more than what the plan leaves out (its own text, the session's handle,
// the pool's thread objects, the settings: a few KB each).
void check_host_memory(const slstm_model* model, slstm_session_options o, const char* what) {
  INFO(what);
  slstm_session* raw = nullptr;
  // (A first session outside the window: what a process measures once, e.g. cpu.calibration.)
  REQUIRE(slstm_session_create(model, &o, &raw) == SLSTM_OK);
  slstm_session_destroy(raw);
  raw = nullptr;
  slstm_status st = SLSTM_OK;
  const std::int64_t held = bytes_left_by([&] { st = slstm_session_create(model, &o, &raw); });
  REQUIRE(st == SLSTM_OK);
  t::Session s(raw);
  REQUIRE(held > 0);
  const std::string plan = t::describe_json(s.get());
  const std::string reported = t::json_value(plan, "host_memory_bytes");
  REQUIRE_FALSE(reported.empty());
  const std::int64_t n = std::stoll(reported);
  INFO("path " << t::json_value(plan, "path") << ": reported " << n << " bytes, creation left "
               << held);
  CHECK(n <= held);
  CHECK(held - n <= 64 * 1024);
}

TEST_CASE("a CPU session's plan says how much host memory it holds (host_memory_bytes)",
          "[cpu]") {
  // max_time x max_batch sizes most of a session's workspaces: long enough that a buffer the
  // count forgot would be far beyond the few KB it may leave out.
  t::Model seed = t::random_model(128, {100, 200, 300}, 3);
  slstm_session_options o = t::options(10, 200);
  check_host_memory(seed.get(), o, "the seed model, FP32");
  o.precision = SLSTM_PRECISION_BF16;
  check_host_memory(seed.get(), o, "the seed model, BF16");
  o.precision = SLSTM_PRECISION_DEFAULT;
  o.max_slots = 3000;
  check_host_memory(seed.get(), o, "the seed model with 3000 stream slots");
  o.max_slots = 0;
  o.num_threads = 1;
  check_host_memory(seed.get(), o, "the seed model, one thread");
  o.num_threads = 0;
  o.max_time = 1000;
  o.config = "cpu.workspace_mib=4";  // (the fast path: windows of steps, staging buffers)
  check_host_memory(seed.get(), o, "the seed model at max_time 1000 in 4 MiB of workspace");
  o.config = nullptr;
  t::Model mixed = t::random_stack(
      24, {t::gru_layer(96, true), t::lstm_layer(64), t::gru_layer(40, false)}, 4);
  slstm_session_options g = t::options(8, 300);
  check_host_memory(mixed.get(), g, "a GRU / LSTM stack (the generic path)");
  g.precision = SLSTM_PRECISION_FP16;
  check_host_memory(mixed.get(), g, "a GRU / LSTM stack, FP16");
  g.precision = SLSTM_PRECISION_DEFAULT;
  g.config = "cpu.pool=shared";  // (the process-wide workers are no session's)
  check_host_memory(mixed.get(), g, "a GRU / LSTM stack on the process-wide pool");
  t::Model bidir = t::random_stack(
      24,
      {t::with_direction(t::lstm_layer(64), SLSTM_DIRECTION_BIDIRECTIONAL), t::gru_layer(48, true)},
      5);
  check_host_memory(bidir.get(), t::options(8, 300), "a bidirectional stack");
}

TEST_CASE("counting the calling thread only leaves other threads' allocations out", "[cpu]") {
  // What the CUDA cases count: the calling thread's allocations, which this one makes, and
  // not another thread's (the driver's, in those cases).
  volatile void* kept = nullptr;
  std::thread([] {}).join();  // (the first thread's one-time allocations, outside the windows)
  const long mine = allocations_during(
      [&] {
        void* p = std::malloc(64);
        kept = p;
        std::free(p);
      },
      false, Threads::kCalling);
  CHECK(mine == 1);
  const auto malloc_on_another_thread = [&] {
    std::thread other([&] {
      void* p = std::malloc(64);
      kept = p;
      std::free(p);
    });
    other.join();
  };
  // (std::thread's own start-up allocates on the calling thread: the count is what this
  // thread did, never the other's malloc)
  const long theirs = allocations_during(malloc_on_another_thread, false, Threads::kCalling);
  const long every = allocations_during(malloc_on_another_thread, false, Threads::kEvery);
  CHECK(every > theirs);
  (void)kept;
}

TEST_CASE("successful CUDA forward and step calls allocate nothing after a shape's first call",
          "[cuda]") {
  if (slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    std::printf("SKIPPED: no usable GPU: %s\n", slstm_last_error());
    std::fflush(stdout);
    std::_Exit(77);
  }
  // The default plan, and the persistent kernel (one launch per layer, the whole stack with
  // graphs off: enqueued afresh every call; its cluster tier) and the plan tuned on the
  // device (the first call of a shape tunes; the later ones must not allocate).
  for (const char* config : {static_cast<const char*>(nullptr), "cuda.persistent=layers",
                             "cuda.persistent=on;cuda.graphs=off", "cuda.tune=on;cuda.persistent=on",
                             "cuda.persistent=layers;cuda.cluster=on;cuda.graphs=off",
                             "cuda.generic=always"}) {
    for (const Shape& sh : kShapes) {
      check_forward_allocates_nothing(SLSTM_BACKEND_CUDA, sh, SLSTM_PRECISION_DEFAULT, config);
    }
  }
}

// The generic path's calls (cuda.generic): on the emulated module of tests/cuda_emu, which
// runs the path's engine in host memory (registered with SLSTM_CUDA_MODULE set to it), and
// on a GPU; skipped like [cuda] where neither is loaded.
TEST_CASE("successful calls on CUDA's generic path allocate nothing", "[cuda-generic]") {
  if (slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    std::printf("SKIPPED: no usable GPU: %s\n", slstm_last_error());
    std::fflush(stdout);
    std::_Exit(77);
  }
  for (const Shape& sh : kShapes) {
    check_forward_allocates_nothing(SLSTM_BACKEND_CUDA, sh, SLSTM_PRECISION_DEFAULT,
                                    "cuda.generic=always");
  }
}

// ---- thread creation that fails -------------------------------------------------------------

// The k-th thread creation of a session's creation made to fail, k = 1, 2, ... until the
// creation makes fewer threads: SLSTM_ERR_OUT_OF_MEMORY saying so, no session, and every
// thread it had started joined again (the process's thread count as before); the
// process-wide pool (cpu.pool=shared) too, made by the first session that asks for it and
// gone with the last (no other case here uses it).
TEST_CASE("a session creation whose worker thread cannot be created, whichever, returns no "
          "session and leaves no thread behind",
          "[threads]") {
  t::Model m = t::random_model(7, {40, 17}, 46);
  t::Model mixed = t::random_stack(6, mixed_stack(), 47);
  struct Variant {
    const char* what;
    const slstm_model* model;
    const char* config;
  };
  for (const Variant& v :
       {Variant{"LSTM (BasicLSTMCell path), 4 threads", m.get(), nullptr},
        Variant{"LSTMP, bidirectional, residual, 4 threads", mixed.get(), nullptr},
        Variant{"LSTM, the process-wide pool", m.get(), "cpu.pool=shared"},
        Variant{"LSTMP, bidirectional, residual, the process-wide pool", mixed.get(),
                "cpu.pool=shared"}}) {
    INFO(v.what);
    slstm_session_options o = t::options(5, 4);
    o.num_threads = 4;
    o.config = v.config;
    const int threads_before = t::process_threads();
    long k = 1;
    for (;; ++k) {
      INFO("thread creation " << k << " fails");
      slstm_session* const sentinel = reinterpret_cast<slstm_session*>(&o);
      slstm_session* out = sentinel;
      g_thread_creations.store(0);
      g_fail_thread_at.store(k);
      const slstm_status st = slstm_session_create(v.model, &o, &out);
      g_fail_thread_at.store(0);
      const long made = g_thread_creations.load();
      if (st == SLSTM_OK) {
        REQUIRE(made < k);  // the creation made fewer threads than k: every one was tried
        slstm_session_destroy(out);
        break;
      }
      CHECK(st == SLSTM_ERR_OUT_OF_MEMORY);
      CHECK(std::string(slstm_last_error()).find("thread") != std::string::npos);
      CHECK(out == sentinel);
      CHECK(t::process_threads() == threads_before);
    }
    CHECK(k > 1);  // (a session of 4 threads creates some)
    CHECK(t::process_threads() == threads_before);
  }
}

int main(int argc, char* argv[]) {
  // (Before anything makes a thread: pthread_create above forwards to this one.)
  g_real_create = reinterpret_cast<CreateFn>(dlsym(RTLD_NEXT, "pthread_create"));
  if (g_real_create == nullptr) {
    std::fprintf(stderr, "alloc_counting: dlsym(RTLD_NEXT, pthread_create) failed\n");
    return 2;
  }
  t::use_cpu_kernel_under_test();
  void* warm[4];
  backtrace(warm, 4);  // loads what backtrace() needs, before any counting window
  return Catch::Session().run(argc, argv);
}
