// The fast path's machine parameters, measured (cpu.calibration=measured, the default): what
// split.hpp's rules derive their thresholds from.
//
// - The step kernel's rate on one core: the session's own kernel (AVX-512, AVX2, portable) on
//   synthetic packed weights, once on 64 KiB of them (cached: FLOP/s) and once sweeping 4 MiB
//   (beyond any L2: bytes/s); the best of a few rounds, each well under a millisecond.
// - The barrier: N workers of a private pool passing the fast path's spinning barrier a few
//   hundred times; the best of a few rounds.
// (No cache size for the split: the one limit that could follow it, the batch split's W_h,
// does not: split.hpp.  The L2 size below only decides where the kernels prefetch.)
// Measured once per process (rates per kernel, the barrier per worker count) and cached, so a
// process pays ~1-3 ms once, not per session; a measurement that fails or is absurd (a
// preempted VM) is clamped into a plausible range, so the worst it can do is a slower split,
// never a different result.
#pragma once

#include <cstdint>
#include <string>

#include "split.hpp"
#include "step_kernels.hpp"

namespace slstm::cpu {

// The parameters for a session running `kernel` with `workers` workers (cached per process).
Machine measure_machine(Kernel kernel, int workers);

// One core's L2 in bytes, as the C library reports it (sysconf), else as sysfs does
// (sysfs_cache_bytes: glibc on aarch64 reports 0), else 512 KiB (the smallest L2 of the
// x86-64 server cores we tune for: Zen 2/3).  It decides whether a kernel fetches the next
// weight group into L2 while it works on this one (two groups must fit, see step_kernels.hpp
// Prefetch), whether the fast path's steps run in snake order, and the generic path's
// panel sizes.
std::int64_t l2_cache_bytes();

// One core's level-1 data cache in bytes, found the same way, else 32 KiB (the smallest L1D
// of those cores).  It decides whether the AVX kernels convert a group of 16-bit weights to
// float32 once for all blocks of rows (the fast path's keeps_wh / keeps_wx / widen_wx): only
// where a group's codes do not stay in L1 from one block to the next.
std::int64_t l1d_cache_bytes();

// For the plan: "barrier 0.12 us (2 workers), kernel 85.1 GFLOP/s on cached weights,
// 31.2 GB/s streamed (one core)".
std::string describe_machine(const Machine& m, int workers);

}  // namespace slstm::cpu
