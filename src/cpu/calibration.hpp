// The fast path's machine parameters, measured (cpu.calibration=measured, the default): what
// split.hpp's rules derive their thresholds from.
//
// - L2: one core's level-2 cache, from sysconf (glibc reads CPUID) or else sysfs
//   (/sys/devices/system/cpu/cpu0/cache/index*/); 0 when neither says.
// - The step kernel's rate on one core: the session's own kernel (AVX-512, AVX2, portable) on
//   synthetic packed weights, once on 64 KiB of them (cached: FLOP/s) and once sweeping 4 MiB
//   (beyond any L2: bytes/s); the best of a few rounds, each well under a millisecond.
// - The barrier: N workers of a private pool passing the fast path's spinning barrier a few
//   hundred times; the best of a few rounds.
// Measured once per process (rates per kernel, the barrier per worker count) and cached, so a
// process pays ~1-3 ms once, not per session; a measurement that fails or is absurd (a
// preempted VM) is clamped into a plausible range, so the worst it can do is a slower split,
// never a different result.
#pragma once

#include <string>

#include "split.hpp"
#include "step_kernels.hpp"

namespace slstm::cpu {

struct MeasuredMachine {
  Machine machine;
  std::string l2_source;  // "sysconf", "sysfs" or "unknown"
};

// The parameters for a session running `kernel` with `workers` workers (cached per process).
MeasuredMachine measure_machine(Kernel kernel, int workers);

// For the plan: "L2 512 KiB (sysconf), barrier 0.12 us (2 workers), kernel 85.1 GFLOP/s on
// cached weights, 31.2 GB/s streamed (one core)".
std::string describe_machine(const MeasuredMachine& m, int workers);

}  // namespace slstm::cpu
