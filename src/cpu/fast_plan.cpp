#include "fast_plan.hpp"

#include <algorithm>
#include <limits>
#include <string>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace slstm::cpu {
namespace {

constexpr double kFlopsPerWorker = 1.5e5;    // least recurrent FLOPs per worker and step
constexpr double kBytesPerWorker = 1.2e5;    // least recurrent weight bytes per worker and step
constexpr double kProjFlopsPerWorker = 2e6;  // least input-projection FLOPs per worker
constexpr double kStealFma = 262144;         // least FMAs per group and step to steal it
constexpr std::int64_t kMinRowsPerWorker = 5;  // batch rows per worker for the batch split
constexpr std::int64_t kMinSplitTime = 8;      // least time steps for the batch split
constexpr double kBatchSplitBytes = 1.5e6;     // largest per-layer Wh for the batch split

}  // namespace

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

int usable_cpus() {
#if defined(__linux__)
  // The CPUs this thread may run on (taskset, cgroup cpusets, numactl): a process pinned to
  // 4 of 64 cores gets 4 workers, not 64 workers fighting over 4 cores.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
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

// - the recurrence needs one barrier per step, which only pays when every worker gets enough
//   recurrent work between two barriers: FLOPs (kFlopsPerWorker) or weight bytes to stream
//   (kBytesPerWorker);
// - the input projections have no barrier inside: every worker takes a share as soon as
//   there is enough of them to pay for waking it (kProjFlopsPerWorker);
// - with enough batch rows for every worker, a sequence long enough to amortise streaming
//   every weight once per worker, and recurrent weights that one core keeps cached, the
//   workers split the batch instead: no barrier at all, and no imbalance from the 16-unit
//   groups;
// - in the unit split, a worker done with its own groups takes groups of another's share
//   that nobody has started, when a group is worth moving (kStealFma: taking one over costs
//   its owner's cached weights);
// - on the AVX2 and portable kernels, always every worker.
CallSplit choose_split(std::int64_t B, std::int64_t T, const std::vector<PackedLayer>& layers,
                       int P, Kernel kernel) {
  double step_flops = 0.0, weight_bytes = 0.0, proj_flops = 0.0, widest = 0.0;
  double smallest_group = std::numeric_limits<double>::max();
  for (const PackedLayer& p : layers) {
    smallest_group = std::min(smallest_group, static_cast<double>(B * p.H) * kRow);
    step_flops += 8.0 * static_cast<double>(B) * static_cast<double>(p.H * p.H);
    weight_bytes += p.wh_bytes();
    widest = std::max(widest, p.wh_bytes());
    proj_flops += 8.0 * static_cast<double>(B * T) * static_cast<double>(p.I * p.H);
  }
  CallSplit s;
  s.steal = smallest_group >= kStealFma;
  if (B >= kMinRowsPerWorker * P && T >= kMinSplitTime && widest <= kBatchSplitBytes) {
    s.split_batch = true;
    s.active = s.workers = P;
  } else if (kernel != Kernel::kAvx512) {
    s.active = s.workers = P;
  } else {
    s.active = static_cast<int>(std::clamp<double>(
        std::max(step_flops / kFlopsPerWorker, weight_bytes / kBytesPerWorker), 1.0, P));
    s.workers = std::max(
        s.active, static_cast<int>(std::clamp<double>(proj_flops / kProjFlopsPerWorker, 1.0, P)));
  }
  return s;
}

Plan describe_fast_plan(const SessionConfig& config, KernelChoice kernel, int threads,
                        const std::vector<PackedLayer>& layers) {
  Plan plan;
  plan.backend = "cpu";
  plan.path = "fast";
  plan.precision = "fp32";
  plan.params = {
      {"kernel", kernel_name(kernel.kernel)},
      {"kernel_reason", kernel.why},
      {"threads", std::to_string(threads)},
      {"threads_reason",
       config.num_threads > 0
           ? "num_threads=" + std::to_string(config.num_threads) + ", capped at one per " +
                 "16-unit group of the widest layer"
           : "one per CPU this process may run on (" + std::to_string(usable_cpus()) +
                 ", its affinity mask), capped at one per 16-unit group of the widest layer"},
      {"split",
       "per call: batch split (each worker its own rows through every layer, no barrier) "
       "when batch >= " + std::to_string(kMinRowsPerWorker) + " x threads, time >= " +
           std::to_string(kMinSplitTime) + " and every layer's W_h <= 1.5 MB; else unit "
           "split (16-unit groups per worker, one barrier per step) with " +
           (kernel.kernel == Kernel::kAvx512
                ? std::string("as many workers as the step's work pays for")
                : std::string("every thread"))}};
  plan.settings = config.settings.cpu_params();
  for (const PackedLayer& p : layers) {
    plan.layers.push_back(
        {kernel_name(kernel.kernel), "fused recurrent GEMM + gate kernel over packed weights",
         {{"hidden", std::to_string(p.H)},
          {"groups", std::to_string(p.groups)},
          {"batch_split", p.wh_bytes() <= kBatchSplitBytes ? "allowed" : "no (W_h > 1.5 MB)"}}});
  }
  return plan;
}

}  // namespace slstm::cpu
