// A thread pool of the caller's (slstm_session_options.thread_pool, since 0.14): a CPU
// session's calls run on it, with the numbers of a session on one thread, bit for bit, however
// the pool schedules its tasks: all at once, fewer at once than it declares, one after
// another, or (a defective pool) not at all.  None of these may deadlock a call.
//
// Tagged [concurrency]: the ThreadSanitizer build runs them (.ci/reliability.sh).  The pools'
// threads touch only atomics and the library; Catch's assertions stay on the test's thread.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"


using Catch::Matchers::Contains;

namespace {

// Counts what the library asked of a pool.
struct Counts {
  std::atomic<int> calls{0};     // parallel_for calls
  std::atomic<int> most{0};      // the largest n handed over
  std::atomic<int> started{0};   // tasks run
  void note(std::int32_t n) {
    calls.fetch_add(1);
    int m = most.load();
    while (n > m && !most.compare_exchange_weak(m, n)) {
    }
  }
};

// A pool of `threads` threads with a queue; it declares `declared` threads (more than it has:
// a pool busy elsewhere).  parallel_for queues the n tasks and waits for them; with
// caller_runs the calling thread runs queued tasks meanwhile (as Eigen's and TBB's do).
class QueuePool {
 public:
  QueuePool(int threads, int declared, bool caller_runs)
      : declared_(declared), caller_runs_(caller_runs) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~QueuePool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  QueuePool(const QueuePool&) = delete;
  QueuePool& operator=(const QueuePool&) = delete;

  slstm_thread_pool lend() {
    slstm_thread_pool p{};
    p.struct_size = sizeof p;
    p.num_threads = declared_;
    p.parallel_for = &QueuePool::parallel_for;
    p.pool_arg = this;
    return p;
  }
  Counts counts;

 private:
  static void parallel_for(void* self, slstm_pool_task task, void* arg, std::int32_t n) {
    auto& pool = *static_cast<QueuePool*>(self);
    pool.counts.note(n);
    std::atomic<int> left{n};
    {
      std::lock_guard<std::mutex> lock(pool.mutex_);
      for (std::int32_t i = 0; i < n; ++i) {
        pool.queue_.push_back([&pool, &left, task, arg, i] {
          pool.counts.started.fetch_add(1);
          task(arg, i);
          if (left.fetch_sub(1) == 1) {
            std::lock_guard<std::mutex> done(pool.mutex_);
            pool.cv_.notify_all();
          }
        });
      }
    }
    pool.cv_.notify_all();
    std::unique_lock<std::mutex> lock(pool.mutex_);
    while (left.load() != 0) {
      if (pool.caller_runs_ && !pool.queue_.empty()) {
        std::function<void()> f = std::move(pool.queue_.front());
        pool.queue_.pop_front();
        lock.unlock();
        f();
        lock.lock();
      } else {
        pool.cv_.wait(lock);
      }
    }
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      std::function<void()> f = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      f();
      lock.lock();
    }
  }

  const int declared_;
  const bool caller_runs_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// A pool that declares `declared` threads and runs the tasks one after another on the
// calling thread (the worst a busy pool can do).
struct SerialPool {
  int declared = 4;
  Counts counts;
  slstm_thread_pool lend() {
    slstm_thread_pool p{};
    p.struct_size = sizeof p;
    p.num_threads = declared;
    p.parallel_for = [](void* self, slstm_pool_task task, void* arg, std::int32_t n) {
      auto& pool = *static_cast<SerialPool*>(self);
      pool.counts.note(n);
      for (std::int32_t i = 0; i < n; ++i) {
        pool.counts.started.fetch_add(1);
        task(arg, i);
      }
    };
    p.pool_arg = this;
    return p;
  }
};

// A defective pool: parallel_for returns without running anything.
struct IdlePool {
  Counts counts;
  slstm_thread_pool lend() {
    slstm_thread_pool p{};
    p.struct_size = sizeof p;
    p.num_threads = 4;
    p.parallel_for = [](void* self, slstm_pool_task, void*, std::int32_t n) {
      static_cast<IdlePool*>(self)->counts.note(n);
    };
    p.pool_arg = this;
    return p;
  }
};

t::Session session_on(const slstm_model* m, std::int64_t B, std::int64_t T,
                      const slstm_thread_pool* pool, slstm_cpu_path path = SLSTM_CPU_PATH_FAST,
                      std::int32_t num_threads = 0, const char* config = nullptr,
                      std::int32_t precision = SLSTM_PRECISION_DEFAULT) {
  slstm_session_options o = t::options(B, T);
  o.cpu_path = path;
  o.precision = precision;
  o.thread_pool = pool;
  o.num_threads = num_threads;
  o.config = config;
  slstm_session* raw = nullptr;
  REQUIRE(slstm_session_create(m, &o, &raw) == SLSTM_OK);
  return t::Session(raw);
}

// The numbers of a session on one thread of its own.
t::Run alone(const slstm_model* m, const t::Call& call, const char* config = nullptr,
            std::int32_t precision = SLSTM_PRECISION_DEFAULT) {
  t::Session one =
      session_on(m, call.batch, call.time, nullptr, SLSTM_CPU_PATH_FAST, 1, config, precision);
  return t::forward_ok(one.get(), m, call);
}

void check_same(const t::Run& got, const t::Run& want) {
  CHECK(t::count_poison(got.output) == 0);
  CHECK(t::bitwise_equal(got.output, want.output));
  CHECK(t::bitwise_equal(got.final_state, want.final_state));
}

// Shapes the fast path splits between workers: few rows of wide layers (the unit split, a
// barrier per step) and many rows (the batch split).
struct Shape {
  std::int64_t input, batch, time;
  std::vector<std::int64_t> hidden;
};
const std::vector<Shape> kFastShapes = {{32, 3, 12, {512, 256}}, {16, 40, 16, {64, 48}}};

// A random model of a shape and a call of it over random inputs.
struct Case {
  Case(const Shape& s, std::uint64_t seed)
      : model(t::random_model(s.input, s.hidden, seed)),
        x(t::random_vector(static_cast<std::size_t>(s.batch * s.time * s.input), seed + 1)),
        call(t::call_of(s.batch, s.time, x)) {}
  Case(const Case&) = delete;  // call points into x
  Case& operator=(const Case&) = delete;
  t::Model model;
  std::vector<float> x;
  t::Call call;
};

slstm_layer_config bidirectional(slstm_layer_config l) {
  return t::with_direction(l, SLSTM_DIRECTION_BIDIRECTIONAL);
}

}  // namespace

TEST_CASE("a session on the caller's thread pool gives one thread's numbers bitwise",
          "[caller-pool][cpu-fast][concurrency]") {
  // Three threads and the caller for up to four tasks: every task can start at once, and
  // with a join wait of a second every team forms whole (none short).
  QueuePool pool(3, 4, true);
  const slstm_thread_pool lent = pool.lend();
  for (const Shape& s : kFastShapes) {
    INFO("batch " << s.batch << " hidden " << s.hidden[0]);
    const Case c(s, 31);
    t::Session on_pool = session_on(c.model.get(), s.batch, s.time, &lent, SLSTM_CPU_PATH_FAST,
                                    0, "cpu.pool_join_us=1000000");
    const int before = pool.counts.calls.load();
    for (int k = 0; k < 3; ++k) {
      check_same(t::forward_ok(on_pool.get(), c.model.get(), c.call),
                 alone(c.model.get(), c.call));
    }
    CHECK(pool.counts.calls.load() == before + 3);
    CHECK(t::json_value(t::describe_json(on_pool.get()), "calls_short_team") == "0");
  }
  CHECK(pool.counts.most.load() <= 4);
}

TEST_CASE("a BF16 session (AMX where the CPU has it) on the caller's pool gives one thread's bits",
          "[caller-pool][cpu-fast][concurrency][precision]") {
  QueuePool pool(3, 4, true);
  const slstm_thread_pool lent = pool.lend();
  for (const Shape& s : kFastShapes) {
    INFO("batch " << s.batch << " hidden " << s.hidden[0]);
    const Case c(s, 41);
    t::Session on_pool = session_on(c.model.get(), s.batch, s.time, &lent, SLSTM_CPU_PATH_FAST,
                                    0, "cpu.pool_join_us=1000000", SLSTM_PRECISION_BF16);
    for (int k = 0; k < 2; ++k) {
      check_same(t::forward_ok(on_pool.get(), c.model.get(), c.call),
                 alone(c.model.get(), c.call, nullptr, SLSTM_PRECISION_BF16));
    }
  }
}

TEST_CASE("stacks beyond BasicLSTMCell run on the caller's thread pool with one thread's numbers",
          "[caller-pool][cpu-fast][concurrency]") {
  QueuePool pool(3, 4, true);
  const slstm_thread_pool lent = pool.lend();
  const std::vector<slstm_layer_config> stack = {bidirectional(t::gru_layer(96, true)),
                                                 t::lstm_layer(64)};
  t::Model m = t::random_stack(24, stack, 33);
  // cpu.team=always: few rows run as teams (a barrier per GEMM), the directions split.  A
  // join wait of a second: every team forms whole.
  for (const char* config : {"cpu.team=always cpu.pool_join_us=1000000",
                             "cpu.team=off cpu.pool_join_us=1000000"}) {
    for (const std::int64_t B : {2, 9}) {
      INFO(config << ", batch " << B);
      const std::int64_t T = 7;
      const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * 24), 34);
      const t::Call call = t::call_of(B, T, x);
      t::Session on_pool = session_on(m.get(), B, T, &lent, SLSTM_CPU_PATH_FAST, 0, config);
      const int before = pool.counts.calls.load();
      check_same(t::forward_ok(on_pool.get(), m.get(), call), alone(m.get(), call, config));
      CHECK(pool.counts.calls.load() == before + 1);
      CHECK(t::json_value(t::describe_json(on_pool.get()), "calls_short_team") == "0");
    }
  }
}

TEST_CASE("a pool that runs its tasks one after another slows a call but never deadlocks it",
          "[caller-pool][cpu-fast][concurrency]") {
  SerialPool pool;
  const slstm_thread_pool lent = pool.lend();
  const Shape& s = kFastShapes[0];
  const Case c(s, 35);
  t::Session on_pool = session_on(c.model.get(), s.batch, s.time, &lent);
  check_same(t::forward_ok(on_pool.get(), c.model.get(), c.call), alone(c.model.get(), c.call));
  REQUIRE(pool.counts.calls.load() == 1);
  // The first task ran the call alone; the others found the team formed and returned.
  CHECK(pool.counts.started.load() == pool.counts.most.load());
  CHECK(t::json_value(t::describe_json(on_pool.get()), "calls_short_team") == "1");
}

TEST_CASE("a pool that runs fewer tasks at once than it declares never deadlocks a team",
          "[caller-pool][cpu-fast][concurrency]") {
  // Two threads, eight declared, the calling thread idle: a call's later tasks wait in the
  // queue behind its first ones.
  QueuePool pool(2, 8, false);
  const slstm_thread_pool lent = pool.lend();
  // BasicLSTMCell layers (the fast path's unit split, a barrier per step) and a GRU stack
  // (the generic path: its teams pass a barrier per GEMM; the directions split).
  const std::vector<std::vector<slstm_layer_config>> stacks = {
      {t::lstm_layer(256), t::lstm_layer(128)},
      {bidirectional(t::gru_layer(128, false)), t::gru_layer(96, true)}};
  for (std::size_t k = 0; k < 2 * stacks.size(); ++k) {
    const char* config = k % 2 == 0 ? "cpu.team=always" : "cpu.team=auto";
    t::Model m = t::random_stack(16, stacks[k / 2], 37);
    INFO("stack " << k / 2 << ", " << config);
    const std::int64_t B = 3, T = 9;
    const std::vector<float> x = t::random_vector(static_cast<std::size_t>(B * T * 16), 38);
    const t::Call call = t::call_of(B, T, x);
    t::Session on_pool = session_on(m.get(), B, T, &lent, SLSTM_CPU_PATH_FAST, 0, config);
    const int before = pool.counts.calls.load();
    for (int c = 0; c < 3; ++c) {
      check_same(t::forward_ok(on_pool.get(), m.get(), call), alone(m.get(), call, config));
    }
    CHECK(pool.counts.calls.load() == before + 3);
  }
}

TEST_CASE("a pool that returns without running a task leaves the call to the calling thread",
          "[caller-pool][cpu-fast][concurrency]") {
  IdlePool pool;
  const slstm_thread_pool lent = pool.lend();
  const Shape& s = kFastShapes[0];
  const Case c(s, 39);
  t::Session on_pool = session_on(c.model.get(), s.batch, s.time, &lent);
  check_same(t::forward_ok(on_pool.get(), c.model.get(), c.call), alone(c.model.get(), c.call));
  CHECK(pool.counts.calls.load() == 1);
}

TEST_CASE("one pool lent to two sessions called at once gives each one thread's numbers",
          "[caller-pool][cpu-fast][concurrency]") {
  QueuePool pool(3, 3, true);
  const slstm_thread_pool lent = pool.lend();
  const Shape& s = kFastShapes[0];
  const Case c(s, 41);
  const t::Run want = alone(c.model.get(), c.call);
  t::Session a = session_on(c.model.get(), s.batch, s.time, &lent);
  t::Session b = session_on(c.model.get(), s.batch, s.time, &lent);
  constexpr int kCalls = 10;
  std::vector<std::vector<float>> out_a(kCalls, t::poisoned(want.output.size()));
  std::vector<std::vector<float>> out_b(kCalls, t::poisoned(want.output.size()));
  std::vector<slstm_status> status_a(kCalls, SLSTM_ERR_INTERNAL);
  std::vector<slstm_status> status_b(kCalls, SLSTM_ERR_INTERNAL);
  const auto run_all = [&](slstm_session* session, std::vector<std::vector<float>>& out,
                           std::vector<slstm_status>& status) {
    for (std::size_t k = 0; k < kCalls; ++k) {
      slstm_forward_args args;
      slstm_forward_args_init(&args);
      args.batch = s.batch;
      args.time = s.time;
      args.input = c.x.data();
      args.input_count = c.x.size();
      args.output = out[k].data();
      args.output_count = out[k].size();
      status[k] = slstm_session_forward(session, &args);
    }
  };
  std::thread other([&] { run_all(b.get(), out_b, status_b); });
  run_all(a.get(), out_a, status_a);
  other.join();
  for (std::size_t k = 0; k < kCalls; ++k) {
    REQUIRE(status_a[k] == SLSTM_OK);
    REQUIRE(status_b[k] == SLSTM_OK);
    CHECK(t::bitwise_equal(out_a[k], want.output));
    CHECK(t::bitwise_equal(out_b[k], want.output));
  }
}

TEST_CASE("calls made from the pool's own tasks, on the same pool, run to completion",
          "[caller-pool][cpu-fast][concurrency]") {
  // Each of two outer tasks calls a session lent the pool it runs on: the nested
  // parallel_for calls queue their tasks behind the outer ones, and the waiting threads run
  // whichever tasks they find, of either call.
  QueuePool pool(2, 4, true);
  const slstm_thread_pool lent = pool.lend();
  const Shape& s = kFastShapes[0];
  const Case c(s, 50);
  const t::Run want = alone(c.model.get(), c.call);
  t::Session sessions[2] = {session_on(c.model.get(), s.batch, s.time, &lent),
                            session_on(c.model.get(), s.batch, s.time, &lent)};
  struct Outer {
    slstm_session* session;
    const std::vector<float>* x;
    std::int64_t batch, time;
    std::vector<float> out;
    slstm_status status = SLSTM_ERR_INTERNAL;
  };
  std::vector<Outer> outer;
  for (t::Session& session : sessions) {
    outer.push_back({session.get(), &c.x, s.batch, s.time, t::poisoned(want.output.size())});
  }
  lent.parallel_for(
      lent.pool_arg,
      [](void* arg, std::int32_t i) {
        Outer& o = static_cast<Outer*>(arg)[i];
        slstm_forward_args args;
        slstm_forward_args_init(&args);
        args.batch = o.batch;
        args.time = o.time;
        args.input = o.x->data();
        args.input_count = o.x->size();
        args.output = o.out.data();
        args.output_count = o.out.size();
        o.status = slstm_session_forward(o.session, &args);
      },
      outer.data(), 2);
  for (const Outer& o : outer) {
    REQUIRE(o.status == SLSTM_OK);
    CHECK(t::bitwise_equal(o.out, want.output));
  }
}

TEST_CASE("a call with one thread's worth of work does not call the caller's pool",
          "[caller-pool][cpu-fast]") {
  QueuePool pool(1, 4, true);
  const slstm_thread_pool lent = pool.lend();
  t::Model m = t::random_model(4, {8}, 43);
  const std::vector<float> x = t::random_vector(4, 44);
  t::Session on_pool = session_on(m.get(), 1, 1, &lent);
  check_same(t::forward_ok(on_pool.get(), m.get(), t::call_of(1, 1, x)),
             alone(m.get(), t::call_of(1, 1, x)));
  CHECK(pool.counts.calls.load() == 0);
}

TEST_CASE("the reference path runs on the calling thread and never calls the caller's pool",
          "[caller-pool]") {
  QueuePool pool(1, 4, true);
  const slstm_thread_pool lent = pool.lend();
  const Shape& s = kFastShapes[1];
  const Case c(s, 45);
  t::Session ref = session_on(c.model.get(), s.batch, s.time, &lent, SLSTM_CPU_PATH_REFERENCE);
  t::forward_ok(ref.get(), c.model.get(), c.call);
  CHECK(pool.counts.calls.load() == 0);
}

TEST_CASE("the plan names the caller's pool, how many tasks a call hands it, and short teams",
          "[caller-pool][cpu-fast][plan]") {
  SerialPool pool;
  pool.declared = 6;
  const slstm_thread_pool lent = pool.lend();
  t::Model m = t::random_model(8, {256}, 47);
  t::Session on_pool = session_on(m.get(), 2, 3, &lent, SLSTM_CPU_PATH_FAST, 3);
  const std::string json = t::describe_json(on_pool.get());
  INFO(json);
  CHECK_THAT(t::json_value(json, "pool"), Contains("caller") && Contains("num_threads 6") &&
                                              Contains("up to 3 tasks") &&
                                              Contains("cpu.pool_join_us"));
  CHECK(t::json_value(json, "threads") == "3");
  CHECK(t::json_value(json, "calls_short_team") == "0");
  CHECK(t::json_value(json, "cpu.pool_join_us") == "50");
}

#if defined(__linux__)
TEST_CASE("a session on the caller's pool starts no thread of its own", "[caller-pool][cpu-fast]") {
  QueuePool pool(2, 4, true);
  const slstm_thread_pool lent = pool.lend();
  t::Model m = t::random_model(8, {256}, 48);
  std::vector<t::Session> sessions;
  sessions.push_back(session_on(m.get(), 2, 3, &lent));  // any once-per-process calibration
  const int before = t::process_threads();
  for (int i = 0; i < 3; ++i) sessions.push_back(session_on(m.get(), 2, 3, &lent));
  CHECK(t::process_threads() == before);
}
#endif

// --- Bad input ---------------------------------------------------------------------------

namespace {

// Creating a session with `pool` (and `config`) fails with `status`, naming `what`, and
// leaves *out_session alone.
void expect_refused(const slstm_thread_pool* pool, const char* config, slstm_status status,
                    const std::string& what) {
  t::Model m = t::random_model(4, {8}, 49);
  slstm_session_options o = t::options(2, 2);
  o.thread_pool = pool;
  o.config = config;
  slstm_session* sentinel = reinterpret_cast<slstm_session*>(&o);
  slstm_session* out = sentinel;
  CHECK(slstm_session_create(m.get(), &o, &out) == status);
  CHECK(out == sentinel);
  CHECK_THAT(std::string(slstm_last_error()), Contains(what));
}

slstm_thread_pool valid_pool() {
  slstm_thread_pool p{};
  p.struct_size = sizeof p;
  p.num_threads = 2;
  p.parallel_for = [](void*, slstm_pool_task, void*, std::int32_t) {};
  return p;
}

}  // namespace

TEST_CASE("a thread pool without parallel_for is refused naming it", "[caller-pool][errors]") {
  slstm_thread_pool p = valid_pool();
  p.parallel_for = nullptr;
  expect_refused(&p, nullptr, SLSTM_ERR_INVALID_ARGUMENT, "options->thread_pool->parallel_for");
}

TEST_CASE("a thread pool of fewer than one thread is refused naming num_threads",
          "[caller-pool][errors]") {
  slstm_thread_pool p = valid_pool();
  p.num_threads = 0;
  expect_refused(&p, nullptr, SLSTM_ERR_INVALID_ARGUMENT,
                 "options->thread_pool->num_threads must be >= 1, got 0");
}

TEST_CASE("a thread pool struct smaller than this header's is refused naming struct_size",
          "[caller-pool][errors]") {
  slstm_thread_pool p = valid_pool();
  p.struct_size = 8;
  expect_refused(&p, nullptr, SLSTM_ERR_INVALID_ARGUMENT,
                 "options->thread_pool->struct_size is 8");
}

TEST_CASE("a thread pool together with cpu.pool=shared is refused naming both",
          "[caller-pool][errors]") {
  const slstm_thread_pool p = valid_pool();
  expect_refused(&p, "cpu.pool=shared", SLSTM_ERR_INVALID_ARGUMENT, "options->thread_pool");
  expect_refused(&p, "cpu.pool=shared", SLSTM_ERR_INVALID_ARGUMENT, "cpu.pool=shared");
}

TEST_CASE("cpu.pool_join_us above one second is refused naming it and its range",
          "[caller-pool][errors]") {
  for (const char* v : {"cpu.pool_join_us=1000001", "cpu.pool_join_us=1000000000",
                        "cpu.pool_join_us=-1"}) {
    expect_refused(nullptr, v, SLSTM_ERR_INVALID_ARGUMENT,
                   "cpu.pool_join_us must be a whole number from 0 to 1000000,");
  }
}

TEST_CASE("the caller pool's plan gives the join time cpu.pool_join_us sets",
          "[caller-pool][cpu-fast][plan]") {
  SerialPool pool;
  pool.declared = 4;
  const slstm_thread_pool lent = pool.lend();
  t::Model m = t::random_model(8, {256}, 48);
  t::Session on_pool = session_on(m.get(), 2, 3, &lent, SLSTM_CPU_PATH_FAST, 0,
                                  "cpu.pool_join_us=700 cpu.spin_us=300");
  const std::string json = t::describe_json(on_pool.get());
  INFO(json);
  CHECK_THAT(t::json_value(json, "pool"),
             Contains("start within 700 us of the first (cpu.pool_join_us)"));
}
