// How a call of the CPU fast path shares its work among the session's workers, and the
// machine parameters that decide it (issue 18: "the calibration is derived from measured
// machine parameters at session creation rather than constants tuned on one VM").
//
// Pure arithmetic, no state and no I/O (tests/cpu_host/split_test.cpp runs it on models of
// machines); the probes that measure a Machine live in calibration.{hpp,cpp}.
//
// The rules (a step's work is the recurrent GEMM of every layer for the call's batch):
// - the recurrence needs one barrier per step among its active workers, which pays only when
//   each worker's share of a step takes longer than `pay_s` (a multiple of the barrier's
//   measured cost): enough FLOPs at the kernel's rate on cached weights, or enough weight
//   bytes at its rate on weights streamed from beyond L2;
// - the input projections have no barrier inside: every worker takes a share as soon as there
//   is enough of them to pay for waking it;
// - with enough batch rows for every worker, a sequence long enough to amortise streaming
//   every weight once per worker, and each layer's W_h at most 1.5 MB, the workers split the
//   batch instead: no barrier at all.  That limit is measured, not derived from the machine:
//   chosen on the 2-vCPU AVX-512 Xeon (2 MiB L2), it held on the AVX2 Zen 3 EPYC (512 KiB
//   L2) too -- there the batch split was level with or ahead of the unit split at W_h =
//   1.44 MB and behind at 4 and 16 MB (bench/results/cpu-calibration.md) -- so it does not
//   follow L2, and neither 3/4 of L2 nor a limit from the kernel's cached and streamed rates
//   fitted those measurements;
// - in the unit split, a worker done with its own groups takes groups of another's share that
//   nobody has started, when a group is worth moving (taking one over costs its owner's cached
//   weights).
// Every element's arithmetic is the same whatever the split, so none of this changes a bit of
// a result: only how long it takes.
#pragma once

#include <cstdint>
#include <vector>

namespace slstm::cpu {

// What the rules need to know of the machine, for one session (its kernel and worker count).
struct Machine {
  double barrier_s = 0;    // one barrier among the session's workers, all of them spinning
  double flops_per_s = 0;  // one core running the session's step kernel on cached weights
  double bytes_per_s = 0;  // one core running it on weights streamed from beyond its L2
};

// The thresholds the rules apply.
struct Thresholds {
  double flops_per_worker = 0;       // least recurrent FLOPs per active worker and step
  double bytes_per_worker = 0;       // least recurrent weight bytes per active worker and step
  double proj_flops_per_worker = 0;  // least input-projection FLOPs per worker
  double steal_fma = 0;              // least FMAs per group and step to steal it
  double batch_split_bytes = 0;      // largest per-layer W_h for the batch split
  std::int64_t min_rows_per_worker = 5;  // batch rows per worker for the batch split
  std::int64_t min_split_time = 8;       // least time steps for the batch split
  double flops_per_s = 0;  // one core's step kernel on cached weights (alone_when_asleep)
  double bytes_per_s = 0;  // ... on weights streamed from beyond its L2
  // false: every worker always runs the recurrence (the built-in rule of the AVX2 and
  // portable kernels, which were never calibrated against the barrier).
  bool size_active = true;
};

// The constants measured on this project's 2-vCPU AVX-512 Xeon (fast_plan.cpp before issue
// 18's calibration; cpu.calibration=fixed): sized workers on the AVX-512 kernels only.
Thresholds fixed_thresholds(bool avx512);

// The thresholds derived from a machine's parameters (cpu.calibration=measured):
//   pay_s             = kBarrierMultiple x barrier_s (at least kMinPayS)
//   flops_per_worker  = pay_s x flops_per_s,  bytes_per_worker = pay_s x bytes_per_s
//   proj_flops_per_worker = kWakeS x flops_per_s  (waking a sleeping worker)
//   steal_fma         = kStealS x flops_per_s / 2 (what moving a group's weights costs)
//   batch_split_bytes = 1.5 MB (see above)
// Unknown or non-finite rates fall back to the fixed thresholds' values.
Thresholds derive_thresholds(const Machine& m);

constexpr double kBarrierMultiple = 1.0;  // a worker's share of a step >= 1 barrier
constexpr double kMinPayS = 0.05e-6;      // ... and >= 0.05 us whatever the barrier measured
constexpr double kWakeS = 20e-6;          // waking a sleeping worker (futex wake + reschedule)
constexpr double kStealS = 5e-6;          // refetching a group's weights into another core
// What a worker asleep (past its cpu.spin_us) costs the call that wakes it: more than the
// wake-up itself (the worker's cache and core come back cold).  On the 2-vCPU AVX-512 VM a
// T = 1 call of the seed stack took 0.36-0.60 ms with its worker woken from sleep, 0.12 ms
// with it spinning, 0.27-0.42 ms on the calling thread alone (bench/results/cpu-frames.md).
constexpr double kAsleepS = 250e-6;

// One layer as the split sees it.
struct LayerWork {
  std::int64_t I = 0, H = 0;
  double wh_bytes = 0;  // bytes of its W_h as the kernels read them
};

struct CallSplit {
  bool split_batch = false;  // workers split the batch rows (no barrier), else the units
  int workers = 1;           // workers taking part (the input projections)
  int active = 1;            // of which in the recurrence, <= workers
  bool steal = false;        // unit split: a worker may take groups of another's share
};

// The split of a call of `batch` rows and `time` steps over `layers`, for P workers.
CallSplit choose_split(std::int64_t batch, std::int64_t time, const std::vector<LayerWork>& layers,
                       int P, const Thresholds& t);

// One core's time for work of `flops` FLOPs that reads `bytes` of weights from beyond L2:
// the larger of the two at t's rates (infinite when t has no rates).
double one_core_seconds(double flops, double bytes, const Thresholds& t);

// One core's time for a call, from the rates in t: per layer the larger of its FLOPs at
// flops_per_s and the weight bytes it reads at bytes_per_s (W_x once, W_h every step);
// infinite when t has no rates.
double one_core_seconds(std::int64_t batch, std::int64_t time,
                        const std::vector<LayerWork>& layers, const Thresholds& t);

// Whether a call of one_core_s seconds on one core that finds the other P - 1 workers
// asleep runs on the calling thread alone (they stay asleep): when what they would take off
// its time, one_core_s x (1 - 1/P), is less than kAsleepS.  Same numbers either way
// (fast_backend.cpp "Determinism"; the generic path's rows and teams likewise).
bool alone_when_asleep(double one_core_s, int P);

// The same for a call of the fast path: one_core_seconds of it.
bool alone_when_asleep(std::int64_t batch, std::int64_t time,
                       const std::vector<LayerWork>& layers, int P, const Thresholds& t);

}  // namespace slstm::cpu
