// What lending a session the application's thread pool (slstm_session_options.thread_pool,
// since 0.14) costs and buys, through the public C API, on the fast path:
//
//   single  one session, one caller, calls back to back: the session's own spinning workers
//           (cpu.pool=session, the default) against the same number of threads of an
//           application pool of the usual kind (a queue, a mutex, a condition variable; its
//           threads sleep when idle, and the calling thread runs queued tasks while it
//           waits), so the team formation and the pool's wake-ups are what differs;
//   server  S sessions, each driven by a thread of its own making calls back to back, on an
//           S-CPU budget: every session with its own workers (S x S threads), cpu.pool=shared
//           (one process-wide pool, a call that finds it busy runs alone), one application
//           pool of S threads lent to every session, and one thread per session.
//
// Usage: slstm_bench_caller_pool [seconds per measurement=1] [threads=usable CPUs]
// Prints a Markdown table: ms per call (median of 5 rounds) or calls per second over all
// sessions, and the ratio to the session's own workers.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>

#include "stacklstm/stacklstm.h"

namespace {

using Clock = std::chrono::steady_clock;

void check(slstm_status s, const char* what) {
  if (s != SLSTM_OK) {
    std::fprintf(stderr, "%s: %s: %s\n", what, slstm_status_string(s), slstm_last_error());
    std::exit(1);
  }
}

// An application's pool: a queue of tasks, threads that sleep on a condition variable when it
// is empty; parallel_for queues n tasks and runs queued ones itself until its own are done.
// Several callers may use it at once.
// With spin_ns > 0 its threads (and a caller waiting for its tasks) first spin that long on
// the queue before they sleep, as the library's own workers do after a call (cpu.spin_us).
class AppPool {
 public:
  AppPool(int threads, std::int64_t spin_ns) : spin_ns_(spin_ns) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~AppPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    work_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  AppPool(const AppPool&) = delete;
  AppPool& operator=(const AppPool&) = delete;

  slstm_thread_pool lend(int num_threads) {
    slstm_thread_pool p{};
    p.struct_size = sizeof p;
    p.num_threads = num_threads;
    p.parallel_for = &AppPool::parallel_for;
    p.pool_arg = this;
    return p;
  }

 private:
  struct Batch {
    std::atomic<int> left{0};
  };
  struct Item {
    slstm_pool_task task;
    void* arg;
    std::int32_t index;
    Batch* batch;
  };

  static void parallel_for(void* self, slstm_pool_task task, void* arg, std::int32_t n) {
    auto& pool = *static_cast<AppPool*>(self);
    Batch batch;
    batch.left.store(n);
    {
      std::lock_guard<std::mutex> lock(pool.mutex_);
      for (std::int32_t i = 0; i < n; ++i) pool.queue_.push_back({task, arg, i, &batch});
      pool.queued_.store(static_cast<int>(pool.queue_.size()), std::memory_order_relaxed);
    }
    pool.work_.notify_all();
    // Run queued tasks while there are any; then wait for the batch (spinning first).
    for (;;) {
      std::unique_lock<std::mutex> lock(pool.mutex_);
      if (batch.left.load() == 0) return;
      if (!pool.queue_.empty()) {
        const Item item = pool.queue_.front();
        pool.queue_.pop_front();
        pool.queued_.store(static_cast<int>(pool.queue_.size()), std::memory_order_relaxed);
        lock.unlock();
        pool.run(item);
        continue;
      }
      lock.unlock();
      pool.spin([&] {
        return batch.left.load() == 0 || pool.queued_.load(std::memory_order_relaxed) > 0;
      });
      lock.lock();
      if (batch.left.load() != 0 && pool.queue_.empty()) pool.done_.wait(lock);
    }
  }

  void run(const Item& item) {
    item.task(item.arg, item.index);
    if (item.batch->left.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_all();
    }
  }

  // Spins until ready() or spin_ns_ has passed.
  template <typename Ready>
  void spin(Ready ready) const {
    if (spin_ns_ == 0) return;
    const auto until = Clock::now() + std::chrono::nanoseconds(spin_ns_);
    for (unsigned k = 1; !ready(); ++k) {
      if (k % 64 == 0 && Clock::now() >= until) return;
    }
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (queue_.empty() && !stop_ && spin_ns_ > 0) {
        lock.unlock();
        spin([this] { return queued_.load(std::memory_order_relaxed) > 0; });
        lock.lock();
      }
      work_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      const Item item = queue_.front();
      queue_.pop_front();
      queued_.store(static_cast<int>(queue_.size()), std::memory_order_relaxed);
      lock.unlock();
      run(item);
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable work_, done_;
  std::deque<Item> queue_;
  std::atomic<int> queued_{0};  // queue_.size(), for the spinning threads
  const std::int64_t spin_ns_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

struct Shape {
  const char* name;
  std::int64_t input, batch, time;
  std::vector<std::int64_t> hidden;
};

struct Stack {
  slstm_model* model = nullptr;
  std::vector<float> x, out;
  const Shape* shape = nullptr;
  explicit Stack(const Shape& s) : shape(&s) {
    slstm_model_config cfg;
    slstm_model_config_init(&cfg);
    cfg.input_size = s.input;
    cfg.num_layers = static_cast<std::int32_t>(s.hidden.size());
    cfg.hidden_sizes = s.hidden.data();
    check(slstm_model_create_random(&cfg, 42, 0.0f, &model), "model");
    x.assign(static_cast<std::size_t>(s.batch * s.time * s.input), 0.25f);
    out.resize(static_cast<std::size_t>(s.batch * s.time * s.hidden.back()));
  }
  ~Stack() { slstm_model_destroy(model); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
};

slstm_session* session_for(const Stack& st, const char* config, const slstm_thread_pool* pool,
                           int threads) {
  slstm_session_options o;
  slstm_session_options_init(&o);
  o.cpu_path = SLSTM_CPU_PATH_FAST;
  o.max_batch = st.shape->batch;
  o.max_time = st.shape->time;
  o.num_threads = threads;
  o.config = config;
  o.thread_pool = pool;
  slstm_session* s = nullptr;
  check(slstm_session_create(st.model, &o, &s), "session");
  return s;
}

void call(slstm_session* s, const Stack& st, std::vector<float>& out) {
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = st.shape->batch;
  a.time = st.shape->time;
  a.input = st.x.data();
  a.input_count = st.x.size();
  a.output = out.data();
  a.output_count = out.size();
  check(slstm_session_forward(s, &a), "forward");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The plan's parameter `key` as a number (0 when absent).
double plan_number(const slstm_session* s, const char* key) {
  std::vector<char> text(1 << 16);
  check(slstm_session_describe(s, SLSTM_DESCRIBE_JSON, text.data(), text.size(), nullptr),
        "describe");
  const std::string json(text.data()), pattern = std::string("\"") + key + "\": \"";
  const std::size_t at = json.find(pattern);
  return at == std::string::npos ? 0 : std::atof(json.c_str() + at + pattern.size());
}

// ms per call, one caller, calls back to back for `seconds` per round, median of 5 rounds;
// *calls: how many calls it made.
double single_ms(slstm_session* s, Stack& st, double seconds, long* calls) {
  for (int k = 0; k < 3; ++k) call(s, st, st.out);
  *calls = 3;
  std::vector<double> rounds;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    int n = 0;
    double elapsed = 0;
    do {
      call(s, st, st.out);
      ++n;
      elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (elapsed < seconds / 5);
    rounds.push_back(1e3 * elapsed / n);
    *calls += n;
  }
  return median(rounds);
}

// Calls per second over S sessions, each driven by a thread of its own for `seconds`.
// *calls: how many calls they made.
double server_rate(const std::vector<slstm_session*>& sessions, Stack& st, double seconds,
                   long* calls) {
  std::vector<std::vector<float>> outs(sessions.size(), st.out);
  std::atomic<bool> go{false}, stop{false};
  std::vector<long> counts(sessions.size(), 0);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < sessions.size(); ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      while (!stop.load()) {
        call(sessions[i], st, outs[i]);
        ++counts[i];
      }
    });
  }
  go.store(true);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (std::thread& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  long total = 0;
  for (long c : counts) total += c;
  *calls = total;
  return static_cast<double>(total) / elapsed;
}

int usable_cpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  const int P = argc > 2 ? std::atoi(argv[2]) : usable_cpus();
  if (seconds <= 0 || P < 1 || P > 256) {
    std::fprintf(stderr, "usage: slstm_bench_caller_pool [seconds > 0] [threads 1..256]\n");
    return 2;
  }
  const std::vector<Shape> shapes = {
      {"seed [100,200,300] B=10 T=1", 128, 10, 1, {100, 200, 300}},
      {"seed [100,200,300] B=10 T=100", 128, 10, 100, {100, 200, 300}},
      {"H=512 B=2 T=50 (unit split)", 64, 2, 50, {512}},
      {"H=256 B=64 T=50 (batch split)", 64, 64, 50, {256}},
  };
  std::printf("libstacklstm %s, %d threads, fast path\n\n", slstm_version_string(), P);
  // Two application pools of P - 1 threads (with the calling thread: P tasks at once): one
  // whose threads sleep as soon as the queue is empty, one whose threads spin 20 ms first.
  AppPool sleeping(P > 1 ? P - 1 : 1, 0), spinning(P > 1 ? P - 1 : 1, 20'000'000);
  const slstm_thread_pool lent[2] = {sleeping.lend(P), spinning.lend(P)};

  std::printf("## One session, one caller (ms per call, median of 5 rounds; in brackets the "
              "calls whose team came out short)\n\n");
  std::printf("| shape | 1 thread | own workers | app pool, sleeping | app pool, spinning | "
              "sleeping / own | spinning / own |\n|---|---:|---:|---:|---:|---:|---:|\n");
  for (const Shape& sh : shapes) {
    Stack st(sh);
    slstm_session* sessions[4] = {session_for(st, nullptr, nullptr, 1),
                                  session_for(st, nullptr, nullptr, P),
                                  session_for(st, nullptr, &lent[0], P),
                                  session_for(st, nullptr, &lent[1], P)};
    double ms[4], short_teams[4];
    for (int v = 0; v < 4; ++v) {
      long calls = 0;
      ms[v] = single_ms(sessions[v], st, seconds, &calls);
      short_teams[v] = 100.0 * plan_number(sessions[v], "calls_short_team") /
                       static_cast<double>(calls);
    }
    std::printf("| %s | %.3f | %.3f | %.3f (%.0f %%) | %.3f (%.0f %%) | %.2f | %.2f |\n",
                sh.name, ms[0], ms[1], ms[2], short_teams[2], ms[3], short_teams[3],
                ms[2] / ms[1], ms[3] / ms[1]);
    std::fflush(stdout);
    for (slstm_session* s : sessions) slstm_session_destroy(s);
  }

  const int S = P;
  std::printf("\n## %d sessions, each called by a thread of its own (calls/s, all sessions; in "
              "brackets the calls whose team came out short)\n\n",
              S);
  std::printf("| shape | own workers each | cpu.pool=shared | one app pool, sleeping | "
              "one app pool, spinning | 1 thread each | best pool / own |\n"
              "|---|---:|---:|---:|---:|---:|---:|\n");
  for (const Shape& sh : shapes) {
    Stack st(sh);
    double rate[5], short_teams[5] = {};
    for (int v = 0; v < 5; ++v) {
      std::vector<slstm_session*> sessions;
      for (int i = 0; i < S; ++i) {
        sessions.push_back(v == 0   ? session_for(st, nullptr, nullptr, P)
                           : v == 1 ? session_for(st, "cpu.pool=shared", nullptr, P)
                           : v == 2 ? session_for(st, nullptr, &lent[0], P)
                           : v == 3 ? session_for(st, nullptr, &lent[1], P)
                                    : session_for(st, nullptr, nullptr, 1));
      }
      long calls = 0;
      rate[v] = server_rate(sessions, st, seconds, &calls);
      if (v == 2 || v == 3) {
        double short_calls = 0;
        for (slstm_session* s : sessions) short_calls += plan_number(s, "calls_short_team");
        short_teams[v] = 100.0 * short_calls / static_cast<double>(calls);
      }
      for (slstm_session* s : sessions) slstm_session_destroy(s);
    }
    std::printf("| %s | %.0f | %.0f | %.0f (%.0f %%) | %.0f (%.0f %%) | %.0f | %.2f |\n", sh.name,
                rate[0], rate[1], rate[2], short_teams[2], rate[3], short_teams[3], rate[4],
                std::max(rate[2], rate[3]) / rate[0]);
    std::fflush(stdout);
  }
  return 0;
}
