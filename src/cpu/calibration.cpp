#include "calibration.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#include <unistd.h>
#endif

#include "buffer.hpp"
#include "cgroup.hpp"
#include "../fork_safety.hpp"
#include "../number_text.hpp"
#include "thread_pool.hpp"

namespace slstm::cpu {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- the step kernel's rates ----------------------------------------------------------------

// Best-of-`rounds` seconds of `reps` sweeps of the step kernel over `groups` groups of a
// layer of hidden size H for nb batch rows, on synthetic weights.
double time_kernel(Kernel kernel, std::int64_t H, std::int64_t groups, int nb, int reps,
                   int rounds) {
  const std::size_t w_count = static_cast<std::size_t>(groups * H * kRow);
  const Buffer wh = allocate_streamed(w_count);
  const Buffer h = allocate(static_cast<std::size_t>(nb * H));
  const Buffer h_next = allocate(static_cast<std::size_t>(nb * H));
  const Buffer c = allocate(static_cast<std::size_t>(nb * H));
  const Buffer g = allocate(static_cast<std::size_t>(nb * kRow));
  const Buffer bias = allocate(kRow);
  // Values like a layer's (zeros would let the epilogue settle on an unrepresentative path).
  std::fill_n(wh.get(), w_count, 0.01f);
  std::fill_n(h.get(), nb * H, 0.1f);
  std::fill_n(g.get(), nb * kRow, 0.2f);
  StepArgs a;
  a.H = H;
  a.units = kGroup;
  a.bias = bias.get();
  a.h_prev = a.h_gemm = h.get();
  a.h_next = h_next.get();
  a.c = c.get();
  for (int b = 0; b < nb; ++b) {
    a.g_row[b] = g.get() + b * kRow;
    a.active[b] = true;
  }
  double best = 1e30;
  for (int r = 0; r <= rounds; ++r) {  // round 0 warms the caches and the code
    const Clock::time_point t0 = Clock::now();
    for (int i = 0; i < reps; ++i) {
      for (std::int64_t grp = 0; grp < groups; ++grp) {
        a.wh = wh.get() + grp * H * kRow;
        a.unit0 = grp * kGroup;
        step_block(a, nb, kernel);
      }
    }
    if (r > 0) best = std::min(best, seconds_since(t0));
  }
  return best;
}

struct Rates {
  double flops_per_s = 0, bytes_per_s = 0;
};

Rates measure_rates(Kernel kernel) {
  Rates r;
  {  // 64 KiB of weights (one group, K = 256), the largest row block: arithmetic-bound
    const std::int64_t H = 256;
    const int nb = kMaxNb, reps = 32;
    const double flops = 2.0 * nb * H * kRow * reps;
    r.flops_per_s = flops / time_kernel(kernel, H, 1, nb, reps, 3);
  }
  {  // 4 MiB of weights (32 groups, K = 512), one row: bound by streaming them past L2
    const std::int64_t H = 512, groups = 32;
    const double bytes = 4.0 * static_cast<double>(groups * H * kRow);
    r.bytes_per_s = bytes / time_kernel(kernel, H, groups, 1, 1, 3);
  }
  r.flops_per_s = std::clamp(r.flops_per_s, 1e8, 1e13);
  r.bytes_per_s = std::clamp(r.bytes_per_s, 1e8, 1e13);
  return r;
}

// ---- the barrier ----------------------------------------------------------------------------

// The CPUs this thread may run on (its affinity mask), in order; empty when unknown.
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
#endif
  return cpus;
}

// `workers` threads of their own (the caller's thread and affinity are left alone), each
// pinned to the next CPU of the caller's mask (round robin), pass the fast path's barrier:
// the best of up to 16 rounds of 50 passes (fewer when they are slow: ~2 ms at most).
// Pinned, because a thread just created shares its creator's CPU until the scheduler moves
// it (measured on a 2-vCPU VM: ~15 ms, each pass a yield of ~17 us), which says nothing of a
// session's long-lived workers; round robin, because more workers than CPUs do pay for
// yielding, and that is what the split must know.
double measure_barrier(int workers) {
  if (workers <= 1) return 0;
  constexpr int kRounds = 16, kPasses = 50;
  const std::vector<int> cpus = allowed_cpus();
  Barrier barrier;
  std::atomic<int> go{0};  // 1: every thread started, run; -1: one could not start, leave
  std::atomic<bool> stop{false};
  double best = 1e30;      // written by worker 0 only
  auto body = [&](int w) {
    for (unsigned spins = 0; go.load(std::memory_order_acquire) == 0; ++spins) relax(spins);
    if (go.load(std::memory_order_acquire) < 0) return;
#if defined(__linux__)
    if (!cpus.empty()) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[static_cast<std::size_t>(w) % cpus.size()], &one);
      (void)sched_setaffinity(0, sizeof(one), &one);  // this thread only; a hint
    }
#endif
    const Clock::time_point start = Clock::now();
    for (int r = 0; r < kRounds; ++r) {
      barrier.wait(workers);  // every worker here
      const Clock::time_point t0 = Clock::now();
      for (int i = 0; i < kPasses; ++i) barrier.wait(workers);
      if (w == 0) {
        best = std::min(best, seconds_since(t0) / kPasses);
        // Slow passes (more workers than CPUs) need fewer rounds to tell: ~2 ms at most.
        stop.store(r >= 1 && seconds_since(start) > 2e-3, std::memory_order_relaxed);
      }
      barrier.wait(workers);  // publishes stop
      if (stop.load(std::memory_order_relaxed)) break;
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(workers));
  try {
    for (int w = 0; w < workers; ++w) threads.emplace_back(body, w);
  } catch (...) {
    go.store(-1, std::memory_order_release);  // the started ones leave before the barrier
    for (std::thread& t : threads) t.join();
    throw;
  }
  go.store(1, std::memory_order_release);
  for (std::thread& t : threads) t.join();
  return std::clamp(best, 1e-8, 5e-5);
}

#if defined(__linux__) && defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
constexpr int kSysconfL1d = _SC_LEVEL1_DCACHE_SIZE;
constexpr int kSysconfL2 = _SC_LEVEL2_CACHE_SIZE;
#else
constexpr int kSysconfL1d = -1;  // (no such names: sysfs, else the fallback)
constexpr int kSysconfL2 = -1;
#endif

// CPU 0's level-`level` data cache in bytes: as the C library reports it (sysconf's `name`),
// else as sysfs does, else `fallback`.
std::int64_t cache_bytes(int name, int level, std::int64_t fallback) {
  long n = -1;
#if defined(__linux__)
  if (name >= 0) n = sysconf(name);
#endif
  if (n > 0) return static_cast<std::int64_t>(n);
  const std::int64_t sysfs = sysfs_cache_bytes(level);
  return sysfs > 0 ? sysfs : fallback;
}

}  // namespace

std::int64_t l2_cache_bytes() {
  static const std::int64_t bytes = cache_bytes(kSysconfL2, 2, std::int64_t{512} << 10);
  return bytes;
}

std::int64_t l1d_cache_bytes() {
  static const std::int64_t bytes = cache_bytes(kSysconfL1d, 1, std::int64_t{32} << 10);
  return bytes;
}

Machine measure_machine(Kernel kernel, int workers) {
  static std::map<Kernel, Rates> rates;
  static std::map<int, double> barriers;
  std::lock_guard<std::mutex> lock(calibration_lock());  // (fork_safety.hpp)
  auto r = rates.find(kernel);
  if (r == rates.end()) r = rates.emplace(kernel, measure_rates(kernel)).first;
  auto b = barriers.find(workers);
  if (b == barriers.end()) b = barriers.emplace(workers, measure_barrier(workers)).first;
  Machine m;
  m.flops_per_s = r->second.flops_per_s;
  m.bytes_per_s = r->second.bytes_per_s;
  m.barrier_s = b->second;
  return m;
}

std::string describe_machine(const Machine& m, int workers) {
  return "barrier " +
         (workers > 1 ? fixed_text(m.barrier_s * 1e6, 3) + " us (" + std::to_string(workers) +
                            " workers)"
                      : std::string("none (1 worker)")) +
         ", kernel " + fixed_text(m.flops_per_s / 1e9, 1) + " GFLOP/s on cached weights, " +
         fixed_text(m.bytes_per_s / 1e9, 1) + " GB/s streamed (one core)";
}

}  // namespace slstm::cpu
