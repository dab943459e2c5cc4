// The CPU paths' workers: a persistent pool whose calling thread is worker 0, a reusable
// spinning barrier, and the team a call forms on a thread pool of the caller's.  A call wakes
// the workers, never creates one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <sched.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "../fork_safety.hpp"
#include "stacklstm/stacklstm.h"

namespace slstm::cpu {

// One spin-wait hint: PAUSE on x86, YIELD on Arm, nothing elsewhere.
inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__("yield");
#endif
}

// Denormals flushed to zero (x86: MXCSR's FTZ and DAZ; Arm: FPCR.FZ) while it lives, and the
// thread's mode restored after. TensorFlow runs every CPU kernel so (its thread pools and
// executors set tensorflow/core/platform/denormal.h's ScopedFlushDenormal), and so does every
// thread that works on a fast-path call: the numbers are TensorFlow's where values fall below
// float32's normal range (1.2e-38), and such values (weights or inputs that small, states
// decaying into that range) no longer take the FMA units' slow path, 10-50 times slower
// (bench/results/cpu-denormals.md). The reference path keeps IEEE denormals.
class FlushDenormals {
 public:
#if defined(__x86_64__) || defined(__i386__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtz | kDaz); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFtz = 1u << 15, kDaz = 1u << 6;
  unsigned saved_;
#elif defined(__aarch64__)
  FlushDenormals() {
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(saved_));
    const std::uint64_t fz = saved_ | (std::uint64_t{1} << 24);
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fz));
  }
  ~FlushDenormals() { __asm__ __volatile__("msr fpcr, %0" : : "r"(saved_)); }

 private:
  std::uint64_t saved_;
#else
  FlushDenormals() = default;
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;
};

// Spin, then yield, so that oversubscription stays live.
inline void relax(unsigned spins) {
  if (spins < 500) {
    cpu_pause();
  } else {
    sched_yield();
  }
}

// A reusable barrier for the first n workers of a job (n may differ from one use to the next,
// never between the workers of one use).
class Barrier {
 public:
  void wait(int n) {
    if (n <= 1) return;
    const unsigned phase = phase_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      phase_.store(phase + 1, std::memory_order_release);
      return;
    }
    for (unsigned spins = 0; phase_.load(std::memory_order_acquire) == phase; ++spins) {
      relax(spins);
    }
  }

 private:
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<unsigned> phase_{0};
};

// A persistent pool: worker 0 is the calling thread, workers 1..n-1 are threads created
// once.  run() hands every worker the same job and returns when all have finished.
//
// After fork() (fork_safety.hpp) a pool made in the parent is orphaned() in the child: its
// workers are not there.  The backends then run calls on the calling thread alone (the same
// numbers: results do not depend on the number of workers), and the pool's destruction
// leaves its threads, mutex and condition variable as they are (leaked): joining or detaching
// the parent's threads would wait forever or hit the child's own (glibc reuses the
// descriptors), and destroying the condition variable would wait for the parent's sleeping
// workers, which it still counts.
class Pool {
 public:
  using Job = void (*)(void* ctx, int worker);
  using Clock = std::chrono::steady_clock;

  explicit Pool(int n) : n_(n), made_under_(forks_seen()) {
    sync_->threads.reserve(static_cast<std::size_t>(n - 1));
    try {
      for (int w = 1; w < n; ++w) sync_->threads.emplace_back([this, w] { loop(w); });
    } catch (...) {
      stop();
      throw;
    }
  }
  ~Pool() {
    if (orphaned()) {
      (void)sync_.release();
      return;
    }
    stop();
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int size() const { return n_; }

  // Made in an ancestor of this process (before a fork): its workers are not here, and
  // run() and nudge() must not be called.
  bool orphaned() const { return made_under_ != forks_seen(); }

  // Wakes the workers without a job: they spin for spin_ns nanoseconds, ready for the next
  // run(), then sleep again.  (A call that ran alone rather than wait for sleeping workers
  // leaves them spinning for the next.)  Not while a run() is under way.
  void nudge(std::int64_t spin_ns) {
    if (n_ == 1) return;
    {
      std::lock_guard<std::mutex> lock(sync_->mutex);
      job_ = nullptr;
      spin_ns_ = spin_ns;
      generation_.fetch_add(1, std::memory_order_release);
    }
    sync_->wake.notify_all();
  }

  // How many workers are asleep (waiting to be woken) rather than spinning or working.
  int sleeping() const { return sleeping_.load(std::memory_order_relaxed); }

  // Runs job(ctx, w) on workers w < active (1 <= active <= size()); the others stay idle.
  // Afterwards the workers spin for spin_ns nanoseconds (the session's cpu.spin_us), ready
  // for the next call, before they go to sleep.
  void run(Job job, void* ctx, int active, std::int64_t spin_ns) {
    active_ = active;
    if (active == 1) {
      job(ctx, 0);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(sync_->mutex);
      job_ = job;
      ctx_ = ctx;
      spin_ns_ = spin_ns;
      pending_.store(n_ - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    sync_->wake.notify_all();
    job(ctx, 0);
    for (unsigned spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) relax(spins);
  }

 private:
  void loop(int w) {
    const FlushDenormals flush;  // for the thread's life: it runs the library's jobs only
    std::uint64_t seen = 0;
    std::int64_t spin_ns = 0;  // the last job's spin time (none before the first)
    for (;;) {
      // Spin for the next call (frames of a stream, back-to-back calls), then sleep: a worker
      // woken from sleep costs a call far more than the wake-up itself (measured on a 2-vCPU
      // VM: a T = 1 call of the seed stack 0.12 ms after 1 ms awake, 0.44 ms after 1 ms asleep;
      // bench/results/cpu-frames.md).  Every 64 pauses the clock; every 1024 a yield, so a
      // spinning worker gives way to other runnable threads on its CPU.
      const auto until = Clock::now() + std::chrono::nanoseconds(spin_ns);
      for (unsigned spins = 1; spin_ns > 0; ++spins) {
        if (generation_.load(std::memory_order_acquire) != seen || stopping_.load()) break;
        cpu_pause();
        if (spins % 64 == 0) {
          if (Clock::now() >= until) break;
          if (spins % 1024 == 0) sched_yield();
        }
      }
      Job job;
      void* ctx;
      {
        std::unique_lock<std::mutex> lock(sync_->mutex);
        if (generation_.load(std::memory_order_acquire) == seen && !stopping_.load()) {
          sleeping_.fetch_add(1, std::memory_order_relaxed);
          sync_->wake.wait(lock, [&] {
            return stopping_.load() || generation_.load(std::memory_order_acquire) != seen;
          });
          sleeping_.fetch_sub(1, std::memory_order_relaxed);
        }
        if (stopping_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        job = job_;
        ctx = ctx_;
        spin_ns = spin_ns_;
      }
      if (job == nullptr) continue;  // nudge(): no job, nobody waits for this worker
      if (w < active_) job(ctx, w);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(sync_->mutex);
      stopping_.store(true);
    }
    sync_->wake.notify_all();
    for (std::thread& t : sync_->threads) {
      if (t.joinable()) t.join();
    }
    sync_->threads.clear();
  }

  // What an orphaned pool leaks rather than destroys (above).
  struct Sync {
    std::vector<std::thread> threads;
    std::mutex mutex;
    std::condition_variable wake;
  };

  const int n_;
  const std::uint32_t made_under_;  // forks_seen() at construction
  std::unique_ptr<Sync> sync_ = std::make_unique<Sync>();
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> sleeping_{0};
  Job job_ = nullptr;
  void* ctx_ = nullptr;
  std::int64_t spin_ns_ = 0;  // the current job's spin time (under sync_->mutex)
  int active_ = 1;  // written before the release of generation_, read after its acquire
};

// The process-wide pool of the keyed setting cpu.pool=shared: one set of workers that the
// sessions asking for it share, so that N sessions on an N-CPU server do not start N pools
// (N x N threads).  One call at a time runs on it: a call that finds it taken runs on its
// own calling thread alone, never waits and never adds a thread (results do not depend on
// the number of workers: fast_backend.cpp "Determinism").  Created by the first session
// that asks, sized then (one worker per usable CPU, at most 256), destroyed with the last.
struct SharedPool {
  explicit SharedPool(int n) : pool(n) {}
  Pool pool;
  std::mutex taken;  // held by the call running on the pool
};

inline std::shared_ptr<SharedPool> acquire_shared_pool(int workers) {
  static std::weak_ptr<SharedPool> current;
  std::lock_guard<std::mutex> lock(shared_pool_lock());
  std::shared_ptr<SharedPool> p = current.lock();
  if (!p || p->pool.orphaned()) {  // (after a fork: the parent's, whose workers are not here)
    p = std::make_shared<SharedPool>(std::clamp(workers, 1, 256));
    current = p;
  }
  return p;
}

// A thread pool of the caller's (slstm_thread_pool, header).  The CPU paths' jobs pass
// barriers between their workers, so a job may only run on threads that are all running: a
// pool that has started some of a call's tasks and queued the rest behind them (or behind
// other work, or runs them one after another) must not find its running tasks waiting for the
// queued ones.  So a call forms a team.  It hands the pool `want` tasks; each task, when it
// starts, takes the next place in the team; the first waits until all `want` have started or
// join_ns has passed, then closes the team (tasks that start afterwards return at once),
// chooses with choose(ctx, k) how many of the k members work (the call's split for k
// workers), and lets them go: job(ctx, w) on member w < that.  Only members that have started
// ever wait for one another; results do not depend on the number of workers.
class CallerPool {
 public:
  using Job = Pool::Job;
  // How many of a team of k (>= 1) work: between 1 and k.  Runs on the first task, before any
  // job(); the place to choose the call's split.
  using Choose = int (*)(void* ctx, int k);
  using Clock = std::chrono::steady_clock;

  CallerPool(const slstm_thread_pool& pool, std::int64_t join_ns)
      : pool_(pool), join_ns_(join_ns) {}

  int size() const { return std::min(pool_.num_threads, 256); }

  // Runs a call on a team of at most `want` (>= 2) of the pool's tasks, as above.  Returns the
  // team's size.  A pool that returns without having run any task (a defect of the caller's)
  // leaves the call to this thread alone.
  int run(Job job, Choose choose, void* ctx, int want) const {
    Team team;
    team.job = job;
    team.choose = choose;
    team.ctx = ctx;
    team.want = want;
    team.join_ns = join_ns_;
    pool_.parallel_for(pool_.pool_arg, &CallerPool::task, &team, want);
    int none = 0;
    if (team.joined.compare_exchange_strong(none, kClosed, std::memory_order_acq_rel)) {
      choose(ctx, 1);
      job(ctx, 0);
      return 1;
    }
    // Every member has returned if parallel_for kept its promise; wait for those that have
    // not (members never wait for anything that has not started).
    for (unsigned spins = 0; team.active.load(std::memory_order_acquire) < 0; ++spins) {
      relax(spins);
    }
    for (unsigned spins = 0; team.finished.load(std::memory_order_acquire) != team.size; ++spins) {
      relax(spins);
    }
    return team.size;
  }

 private:
  static constexpr int kClosed = 1 << 30;  // added to the count of places: the team is formed

  struct Team {
    Job job = nullptr;
    Choose choose = nullptr;
    void* ctx = nullptr;
    int want = 0;
    std::int64_t join_ns = 0;
    int size = 0;                    // written by the first task before it publishes active
    alignas(64) std::atomic<int> joined{0};   // places taken (kClosed and up: formed)
    alignas(64) std::atomic<int> active{-1};  // members that work; -1 until chosen
    alignas(64) std::atomic<int> finished{0};
  };

  static void task(void* arg, std::int32_t /*index: places go by arrival*/) {
    const FlushDenormals flush;  // (the caller's thread: its mode comes back after)
    Team& t = *static_cast<Team*>(arg);
    const int place = t.joined.fetch_add(1, std::memory_order_acq_rel);
    if (place >= t.want) return;  // after the team was formed, or beyond `want`
    if (place == 0) {
      const auto until = Clock::now() + std::chrono::nanoseconds(t.join_ns);
      for (unsigned spins = 1; t.joined.load(std::memory_order_acquire) < t.want; ++spins) {
        cpu_pause();
        if (spins % 64 == 0 && Clock::now() >= until) break;
        if (spins % 1024 == 0) sched_yield();
      }
      t.size = std::min(t.joined.fetch_add(kClosed, std::memory_order_acq_rel), t.want);
      const int active = std::clamp(t.choose(t.ctx, t.size), 1, t.size);
      t.active.store(active, std::memory_order_release);
      t.job(t.ctx, 0);
    } else {
      int active;
      for (unsigned spins = 0; (active = t.active.load(std::memory_order_acquire)) < 0;
           ++spins) {
        relax(spins);
      }
      if (place < active) t.job(t.ctx, place);
    }
    t.finished.fetch_add(1, std::memory_order_acq_rel);
  }

  slstm_thread_pool pool_;
  std::int64_t join_ns_;
};

}  // namespace slstm::cpu
