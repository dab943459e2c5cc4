#include "fast_plan.hpp"

#include "cgroup.hpp"
#include "../number_text.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace slstm::cpu {

KernelChoice choose_kernel(const Settings& s) {
  const Kernel best = cpu_has_avx512() ? Kernel::kAvx512
                      : cpu_has_avx2() ? Kernel::kAvx2
                                       : Kernel::kPortable;
  KernelChoice choice{best, "the best this CPU runs"};
  const bool from_env = s.cpu_kernel_from == "SLSTM_CPU_KERNEL";
  switch (s.cpu_kernel) {
    case Settings::CpuKernel::kAuto: break;
    case Settings::CpuKernel::kAvx512:
      if (best != Kernel::kAvx512) {
        fail(SLSTM_ERR_UNSUPPORTED,
             "options->config: cpu.kernel=avx512, but this CPU has no AVX-512");
      }
      choice.why = "cpu.kernel=avx512";
      break;
    case Settings::CpuKernel::kAvx2:
      if (best == Kernel::kPortable && !from_env) {
        fail(SLSTM_ERR_UNSUPPORTED,
             "options->config: cpu.kernel=avx2, but this CPU has no AVX2+FMA");
      }
      choice.kernel = best == Kernel::kPortable ? Kernel::kPortable : Kernel::kAvx2;
      choice.why = from_env ? "SLSTM_CPU_KERNEL=avx2 (environment override)" : "cpu.kernel=avx2";
      break;
    case Settings::CpuKernel::kPortable:
      choice.kernel = Kernel::kPortable;
      choice.why = from_env ? "SLSTM_CPU_KERNEL=portable (environment override)"
                            : "cpu.kernel=portable";
      break;
  }
  return choice;
}

AmxChoice choose_amx(const Settings& s, Kernel kernel, Precision precision) {
  if (s.cpu_amx == Settings::Amx::kOff) return {false, "off (cpu.amx=off)"};
  std::string missing;
  if (precision != Precision::kBf16) {
    missing = std::string("a BF16 session (this one is ") + precision_name(precision) + ")";
  } else if (!s.cpu_wh16) {
    missing = "W_h in 16 bits (cpu.wh16=off keeps it float32)";
  } else if (kernel != Kernel::kAvx512) {
    missing = std::string("the AVX-512 kernels (this session runs ") + kernel_name(kernel) + ")";
  } else if (!cpu_has_amx_bf16()) {
    missing = std::string("AMX-BF16 (") + amx_bf16_refusal() + ")";
  }
  if (s.cpu_amx == Settings::Amx::kOn) {
    if (!missing.empty()) {
      fail(SLSTM_ERR_UNSUPPORTED, "options->config: cpu.amx=on needs " + missing);
    }
    return {true, "on (cpu.amx=on): the recurrent products on AMX's BF16 tiles"};
  }
  if (!missing.empty()) return {false, "off (cpu.amx=auto): it needs " + missing};
  return {true, "on (cpu.amx=auto): the recurrent products on AMX's BF16 tiles"};
}

UsableCpus usable_cpu_budget() {
  UsableCpus u;
  u.mask = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#if defined(__linux__)
  // The CPUs this thread may run on (taskset, cgroup cpusets, numactl): a process pinned to
  // 4 of 64 cores gets 4 workers, not 64 workers fighting over 4 cores.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    u.mask = CPU_COUNT(&set);
  }
  u.cgroup_limit = cgroup_cpu_limit();
#endif
  u.count = cpus_within_limit(u.mask, u.cgroup_limit);
  return u;
}

int usable_cpus() { return usable_cpu_budget().count; }

std::string usable_cpus_text() {
  const UsableCpus u = usable_cpu_budget();
  std::string s = std::to_string(u.count) + ", ";
  if (u.cgroup_limit > 0 && u.count < u.mask) {
    return s + "its cgroup's CPU limit " + general_text(u.cgroup_limit, 6) + ", rounded up; " +
           std::to_string(u.mask) +
           " in its affinity mask";
  }
  return s + "its affinity mask";
}

int choose_threads(const Model& m, std::int32_t num_threads) {
  std::int64_t max_groups = 0;
  for (const Layer& layer : m.layers()) {
    max_groups = std::max(max_groups, (layer.hidden_size + kGroup - 1) / kGroup);
  }
  std::int64_t threads = num_threads;
  if (threads == 0) threads = usable_cpus();
  return static_cast<int>(std::min<std::int64_t>({threads, max_groups, 256}));
}

namespace {

std::string number(double v) { return fixed_text(v, 0); }

}  // namespace

Plan describe_fast_plan(const SessionConfig& config, KernelChoice kernel, int threads,
                        const std::vector<PackedLayer>& layers, const Thresholds& t,
                        const std::string& calibration) {
  Plan plan;
  plan.backend = "cpu";
  plan.path = "fast";
  plan.precision = "fp32";
  plan.params = {
      {"kernel", kernel_name(kernel.kernel)},
      {"kernel_reason", kernel.why},
      {"threads", std::to_string(threads)},
      {"threads_reason",
       config.thread_pool.parallel_for != nullptr
           ? (config.num_threads > 0 ? "num_threads=" + std::to_string(config.num_threads) +
                                           ", at most the caller's pool's num_threads"
                                     : std::string("the caller's pool's num_threads")) +
                 ", capped at one per 16-unit group of the widest layer"
       : config.num_threads > 0
           ? "num_threads=" + std::to_string(config.num_threads) + ", capped at one per " +
                 "16-unit group of the widest layer"
           : "one per CPU this process may run on (" + usable_cpus_text() +
                 "), capped at one per 16-unit group of the widest layer"},
      {"split",
       "per call: batch split (each worker its own rows through every layer, no barrier) "
       "when batch >= " + std::to_string(t.min_rows_per_worker) + " x threads, time >= " +
           std::to_string(t.min_split_time) + " and every layer's W_h <= " +
           number(t.batch_split_bytes) + " bytes; else unit split (16-unit groups per worker, "
           "or pairs of a group and a block of rows where the groups do not divide evenly, a "
           "group has several blocks and none is worth stealing; one barrier per step, one per "
           "layer for an FP32 call of one step whose workers all step) with " +
           (t.size_active
                ? "as many workers as the step's work pays for (>= " +
                      number(t.flops_per_worker) + " FLOPs or " + number(t.bytes_per_worker) +
                      " W_h bytes per worker and step; >= " + number(t.proj_flops_per_worker) +
                      " projection FLOPs per worker)"
                : std::string("every thread"))},
      {"calibration", calibration}};
  plan.settings = config.settings.cpu_params();
  for (const PackedLayer& p : layers) {
    plan.layers.push_back(
        {kernel_name(kernel.kernel), "fused recurrent GEMM + gate kernel over packed weights",
         {{"hidden", std::to_string(p.H)},
          {"groups", std::to_string(p.groups)},
          {"batch_split", p.wh_bytes() <= t.batch_split_bytes
                              ? "allowed"
                              : "no (W_h > " + number(t.batch_split_bytes) + " bytes)"}}});
  }
  return plan;
}

std::int32_t caller_threads(const SessionConfig& config) {
  const std::int32_t pool = config.thread_pool.num_threads;
  return config.num_threads > 0 ? std::min(config.num_threads, pool) : pool;
}

std::string describe_caller_pool(const SessionConfig& config, int threads) {
  return "caller: options->thread_pool (num_threads " +
         std::to_string(config.thread_pool.num_threads) + "); a call hands it up to " +
         std::to_string(threads) + " tasks and runs on those that start within " +
         std::to_string(config.settings.cpu_pool_join_us) +
         " us of the first (cpu.pool_join_us), the others returning at once";
}

std::string describe_shared_pool(int workers) {
  return "shared: the process-wide pool of " + std::to_string(workers) +
         " workers (cpu.pool=shared); a call that finds it running another session's call "
         "runs on its calling thread alone";
}

std::string describe_session_pool(int workers) {
  return "session: " + std::to_string(workers) + " workers of its own";
}

Plan with_short_team_count(Plan plan, const std::atomic<std::uint64_t>& calls) {
  plan.params.emplace_back("calls_short_team",
                           std::to_string(calls.load(std::memory_order_relaxed)));
  return plan;
}

Plan with_alone_count(Plan plan, const std::atomic<std::uint64_t>& calls) {
  plan.params.emplace_back("calls_alone_asleep",
                           std::to_string(calls.load(std::memory_order_relaxed)));
  return plan;
}

}  // namespace slstm::cpu
