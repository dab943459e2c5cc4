// The CPU fast path's workers: a persistent pool whose calling thread is worker 0, and a
// reusable spinning barrier.  A call wakes the workers, never creates one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <immintrin.h>
#include <sched.h>

namespace slstm::cpu {

// Spin, then yield, so that oversubscription stays live.
inline void relax(unsigned spins) {
  if (spins < 500) {
    _mm_pause();
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
class Pool {
 public:
  using Job = void (*)(void* ctx, int worker);

  explicit Pool(int n) : n_(n) {
    threads_.reserve(static_cast<std::size_t>(n - 1));
    try {
      for (int w = 1; w < n; ++w) threads_.emplace_back([this, w] { loop(w); });
    } catch (...) {
      stop();
      throw;
    }
  }
  ~Pool() { stop(); }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int size() const { return n_; }

  // Runs job(ctx, w) on workers w < active (1 <= active <= size()); the others stay idle.
  void run(Job job, void* ctx, int active) {
    active_ = active;
    if (active == 1) {
      job(ctx, 0);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = job;
      ctx_ = ctx;
      pending_.store(n_ - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    job(ctx, 0);
    for (unsigned spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) relax(spins);
  }

 private:
  void loop(int w) {
    std::uint64_t seen = 0;
    for (;;) {
      // Spin briefly for back-to-back calls, then sleep.
      for (unsigned spins = 0; spins < 4000; ++spins) {
        if (generation_.load(std::memory_order_acquire) != seen || stopping_.load()) break;
        _mm_pause();
      }
      Job job;
      void* ctx;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] {
          return stopping_.load() || generation_.load(std::memory_order_acquire) != seen;
        });
        if (stopping_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        job = job_;
        ctx = ctx_;
      }
      if (w < active_) job(ctx, w);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_.store(true);
    }
    wake_.notify_all();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

  const int n_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  Job job_ = nullptr;
  void* ctx_ = nullptr;
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
  static std::mutex registry;
  static std::weak_ptr<SharedPool> current;
  std::lock_guard<std::mutex> lock(registry);
  std::shared_ptr<SharedPool> p = current.lock();
  if (!p) {
    p = std::make_shared<SharedPool>(std::clamp(workers, 1, 256));
    current = p;
  }
  return p;
}

}  // namespace slstm::cpu
