// The fast path's choices at session creation: the kernels and the threads, and the plan
// that slstm_session_describe reports (src/plan.hpp).  How a call shares its work: split.hpp.
// Pure functions: no state, no I/O.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "../backend.hpp"
#include "packing.hpp"
#include "split.hpp"
#include "step_kernels.hpp"

namespace slstm::cpu {

struct KernelChoice {
  Kernel kernel = Kernel::kPortable;
  const char* why = "";  // for the plan
};

// The best kernels this CPU runs (AVX-512, else AVX2+FMA, else portable) unless the setting
// cpu.kernel asks for another: one the CPU lacks is SLSTM_ERR_UNSUPPORTED.  The environment
// override SLSTM_CPU_KERNEL=avx2|portable only ever lowers the kernel.
KernelChoice choose_kernel(const Settings& settings);

// Whether a BasicLSTMCell session of `precision` on `kernel` runs its recurrent products on
// AMX's BF16 tiles (cpu.amx): auto where it can (a BF16 session, the AVX-512 kernels, W_h
// in 16 bits (cpu.wh16=on), a CPU and OS that allow AMX: cpu_has_amx_bf16), on = must
// (else SLSTM_ERR_UNSUPPORTED naming what is missing), off = never.  `why`: for the plan.
struct AmxChoice {
  bool use = false;
  std::string why;
};
AmxChoice choose_amx(const Settings& settings, Kernel kernel, Precision precision);

// The CPUs the calling thread may use: those of its affinity mask (Linux; elsewhere the
// online CPUs), and no more than its cgroup's CPU limit rounded up (cgroup.hpp).
struct UsableCpus {
  int count = 1;             // what the default thread count is
  int mask = 1;              // CPUs in the affinity mask
  double cgroup_limit = 0;   // the cgroup's CPU limit (quota / period), 0 = none
};
UsableCpus usable_cpu_budget();
int usable_cpus();  // usable_cpu_budget().count
// "N, its affinity mask", or "N, its cgroup's CPU limit 1.5, rounded up; 8 in its affinity
// mask" (the plan's threads_reason).
std::string usable_cpus_text();

// The session's workers: num_threads (0 = one per CPU of usable_cpus()), at most one per
// 16-unit group of the widest layer (more would only wait at barriers) and at most 256.
int choose_threads(const Model& m, std::int32_t num_threads);

// The plan: the kernel and why, the threads, the split rule, per layer its packing.
// `calibration`: how the thresholds came about (describe_machine, or the fixed constants).
Plan describe_fast_plan(const SessionConfig& config, KernelChoice kernel, int threads,
                        const std::vector<PackedLayer>& layers, const Thresholds& thresholds,
                        const std::string& calibration);

// With a thread pool of the caller's (config.thread_pool): the most tasks a call may hand it,
// num_threads capped at the pool's num_threads (0: the pool's).
std::int32_t caller_threads(const SessionConfig& config);

// The plan's "pool" for a thread pool of the caller's, a call handing it up to `threads` tasks.
std::string describe_caller_pool(const SessionConfig& config, int threads);

// The plan's "pool" for the process-wide pool of `workers` (cpu.pool=shared), and for
// `workers` of the session's own.
std::string describe_shared_pool(int workers);
std::string describe_session_pool(int workers);

// `plan` with the parameter calls_short_team: how many calls of the session so far ran on a
// smaller team of the caller's pool than they asked for (CallerPool, thread_pool.hpp).
Plan with_short_team_count(Plan plan, const std::atomic<std::uint64_t>& calls);

// `plan` with the parameter calls_alone_asleep: how many calls of the session so far ran on
// the calling thread alone because every worker was asleep (split.hpp alone_when_asleep).
Plan with_alone_count(Plan plan, const std::atomic<std::uint64_t>& calls);

}  // namespace slstm::cpu
