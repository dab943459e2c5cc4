// Device code shared by the step kernels (kernels.cu) and the persistent recurrent kernel
// (persistent.cu): the cell epilogue and the warp reduction of the small-batch recurrent
// GEMV, so that both kernels add in the same order and give the same bits.
#pragma once

#include <cstdint>
#include <type_traits>

#include "gate_math.hpp"
#include "launch.cuh"  // SLSTM_LAUNCH, SLSTM_DYNAMIC_SMEM
#include "step_plan.hpp"

namespace slstm_cuda {
namespace step_math {

// The cell epilogues: what a step kernel does once a (row b, unit u)'s gate sums are in
// registers.  One struct per cell kind (LayerSpec::cell), each the device side of the cell
// math in src/gate_math.hpp that the CPU backends run; the kernels are templated on
// it and on the weights' type W (float today), so that a new cell kind or data type is one
// more instantiation, not another kernel.
//
// LSTM (CellKind::kLstm): the four pre-activations zq hold every bias (forget_bias included:
// the input projection's bias column, or the bias added by the caller); c[i] and h_out[i]
// take the new state; returns the new h.
struct LstmCell {
  static constexpr int kGates = 4;
  // The cell on one (row, unit): c in and out, returns the new h.
  static __device__ __forceinline__ float cell(const float (&zq)[kGates], float& c) {
    float c_new = 0.0f, h_new = 0.0f;
    slstm::lstm_cell(zq[slstm::kGateI], zq[slstm::kGateF], zq[slstm::kGateG], zq[slstm::kGateO],
                     0.0f, c, &c_new, &h_new);
    c = c_new;
    return h_new;
  }
  // The same on element i of a state in memory: c[i] and h_out[i] take the new state.
  static __device__ __forceinline__ float update(const float (&zq)[kGates],
                                                 float* __restrict__ c,
                                                 float* __restrict__ h_out, std::int64_t i) {
    float ci = c[i];
    const float h_new = cell(zq, ci);
    c[i] = ci;
    h_out[i] = h_new;
    return h_new;
  }
};

// A weight as float (the cell arithmetic is FP32 whatever the weights' storage).
__device__ __forceinline__ float weight(float w) { return w; }

// ---- The fused recurrent step (small batch): h . W_h^T, the gates and the state update in ONE
// kernel, instead of a cuBLAS GEMM (whose FP32 kernels for a few rows run one long K loop on a
// handful of SMs: ~40 us a step on an H100) and the step kernel.
//
// One warp per hidden unit u: its lanes split k, each lane accumulating the four gate rows
// q*H + u of W_h against every batch row of h_prev (staged in shared memory by the block,
// rows past `batch` zero, up to BMAX). The 4*BMAX partial sums are reduced across the warp
// by a transposing butterfly (each level halves the values a lane holds: N/2 + N/4 + ...
// shuffles instead of 5*N), parked in shared memory, and lane b then runs the cell for batch
// row b. h is double-buffered (h_prev -> h_next) because other blocks still read h_prev;
// c is updated in place (each element by its own lane). Deterministic: a fixed order of
// additions, whatever the schedule.
// (kRecThreads, kRecWarps and rec_bmax: step_plan.hpp.)

// The recurrent sums of one warp's unit over the staged rows: v[4b + q] = sum over
// k = lane, lane + 32, ... < K of w[q * gate_stride + k] * x[b * ldx + k], each sum one FMA
// chain in increasing k. Every small-batch kernel runs this order (then RecReduce and
// rec_park), which is why their numbers agree bit for bit. Load reads a weight: through the
// read-only cache from global memory (LoadLdg) or plainly (LoadPlain: shared memory).
// Unrolled so that each lane has several weight loads in flight (with one or two, a B = 1
// fused step was slower than cuBLAS's GEMV: ~7.7 against ~6 us at H = 512 on an H100).
struct LoadLdg {
  __device__ __forceinline__ float operator()(const float* p) const { return weight(__ldg(p)); }
};
struct LoadPlain {
  __device__ __forceinline__ float operator()(const float* p) const { return *p; }
};
// The sums over k in [k_begin, K) only, added to v: each lane's k keep their residue
// (k = lane mod 32) and increasing order, so rec_sums over [0, R) then rec_sums_from over
// [R, K) add exactly as rec_sums over [0, K) (the hybrid tier: w[q * gate_stride + k] for
// k >= R from global memory).
template <int BMAX, typename Load>
__device__ __forceinline__ void rec_sums_from(Load load, const float* __restrict__ w,
                                              std::int64_t gate_stride,
                                              const float* __restrict__ x, int ldx, int k_begin,
                                              int K, int lane, float (&v)[4 * BMAX]) {
#pragma unroll 4
  for (int k = k_begin + ((lane - k_begin) & 31); k < K; k += 32) {
    const float w0 = load(w + k);
    const float w1 = load(w + gate_stride + k);
    const float w2 = load(w + 2 * gate_stride + k);
    const float w3 = load(w + 3 * gate_stride + k);
#pragma unroll
    for (int b = 0; b < BMAX; ++b) {
      const float xv = x[b * ldx + k];
      v[4 * b + 0] = fmaf(w0, xv, v[4 * b + 0]);
      v[4 * b + 1] = fmaf(w1, xv, v[4 * b + 1]);
      v[4 * b + 2] = fmaf(w2, xv, v[4 * b + 2]);
      v[4 * b + 3] = fmaf(w3, xv, v[4 * b + 3]);
    }
  }
}

// The recurrent sums (above) over [0, K).
template <int BMAX, typename Load>
__device__ __forceinline__ void rec_sums(Load load, const float* __restrict__ w,
                                         std::int64_t gate_stride, const float* __restrict__ x,
                                         int ldx, int K, int lane, float (&v)[4 * BMAX]) {
#pragma unroll
  for (int i = 0; i < 4 * BMAX; ++i) v[i] = 0.0f;
  rec_sums_from<BMAX>(load, w, gate_stride, x, ldx, 0, K, lane, v);
}

// After RecReduce<N, 16>, lane L holds in v[0 .. max(N/32, 1)) the warp-wide sums of some of
// the N values (rec_park computes which); lanes that differ only in the bits of the plain
// butterfly levels (N < 32) hold the same sums.
template <int N, int S>
struct RecReduce {
  static __device__ __forceinline__ void run(float* v, int lane) {
    if constexpr (N > 1) {
      constexpr int kHalf = N / 2;
      const bool upper = (lane & S) != 0;
#pragma unroll
      for (int i = 0; i < kHalf; ++i) {
        const float send = upper ? v[i] : v[i + kHalf];
        const float keep = upper ? v[i + kHalf] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, S);
      }
      RecReduce<kHalf, S / 2>::run(v, lane);
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], S);
      RecReduce<1, S / 2>::run(v, lane);
    }
  }
};
template <int N>
struct RecReduce<N, 0> {
  static __device__ __forceinline__ void run(float*, int) {}
};

// Writes the reduced sums of RecReduce<N, 16> to red[0 .. N): one owner lane per index.
template <int N>
__device__ __forceinline__ void rec_park(const float* v, int lane, float* red) {
  int offset = 0, n = N, s = 16;
  for (; s >= 1 && n > 1; s >>= 1) {
    if ((lane & s) != 0) offset += n / 2;
    n /= 2;
  }
  const int plain_bits = s >= 1 ? 2 * s - 1 : 0;  // levels that summed without splitting
  if ((lane & plain_bits) == 0) {
#pragma unroll
    for (int i = 0; i < (N >= 32 ? N / 32 : 1); ++i) red[offset + i] = v[i];
  }
}

// The instantiation of a small-batch kernel for a batch capacity (rec_bmax: 1, 2, 4, 8 or
// 16), as `of(std::integral_constant<int, BMAX>{})` gives it; null for any other capacity.
template <typename Of>
void* kernel_for_bmax(int bmax, Of of) {
  switch (bmax) {
    case 1: return of(std::integral_constant<int, 1>{});
    case 2: return of(std::integral_constant<int, 2>{});
    case 4: return of(std::integral_constant<int, 4>{});
    case 8: return of(std::integral_constant<int, 8>{});
    case 16: return of(std::integral_constant<int, 16>{});
    default: return nullptr;
  }
}

}  // namespace step_math
}  // namespace slstm_cuda
