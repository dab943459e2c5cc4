// The fast path's choices: the kernels and the threads of a session (at creation), how a
// call shares its work among the workers (per call, from the shape alone), and the plan
// that slstm_session_describe reports (src/plan.hpp).  Pure functions: no state, no I/O.
#pragma once

#include <cstdint>
#include <vector>

#include "../backend.hpp"
#include "packing.hpp"
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

// The CPUs the calling thread may run on (its affinity mask on Linux, else the online CPUs).
int usable_cpus();

// The session's workers: num_threads (0 = one per CPU of usable_cpus()), at most one per
// 16-unit group of the widest layer (more would only wait at barriers) and at most 256.
int choose_threads(const Model& m, std::int32_t num_threads);

// How one call shares its work.  Every element's arithmetic is the same whatever the split,
// so none of these choices changes a bit of the result.
struct CallSplit {
  bool split_batch = false;  // workers split the batch rows (no barrier), else the units
  int workers = 1;           // workers taking part (the input projections)
  int active = 1;            // of which in the recurrence, <= workers
  bool steal = false;        // unit split: a worker may take groups of another's share
};

// The split of a call of `batch` rows and `time` steps over `layers`, for P workers.
CallSplit choose_split(std::int64_t batch, std::int64_t time,
                       const std::vector<PackedLayer>& layers, int P, Kernel kernel);

// The plan: the kernel and why, the threads, the split rule, per layer its packing.
Plan describe_fast_plan(const SessionConfig& config, KernelChoice kernel, int threads,
                        const std::vector<PackedLayer>& layers);

}  // namespace slstm::cpu
