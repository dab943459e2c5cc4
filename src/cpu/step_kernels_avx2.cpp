// The AVX2+FMA kernels (CPUs without AVX-512).  16 ymm registers do not hold a block of rows
// x 64 columns, so the recurrent sums of a block are computed in passes of 8*NV columns
// (NB x NV accumulators, NV weight vectors and one broadcast: 15 registers for 6 x 2, 13 for
// 2 x 4), parked in z, and the cell epilogue reads them back; a group of <= 8 units (a
// layer's tail) computes the first 8 columns of each gate only, in both GEMMs.  Each element
// is one FMA chain in increasing k, as on the AVX-512 path.  Compiled for the baseline: each
// function carries the target attribute (SLSTM_AVX2) and runs only when cpu_has_avx2().
#if defined(__GNUC__) && defined(__x86_64__)

#include <cstdint>
#include <cstring>
#include <type_traits>

#include <immintrin.h>

#include "../gate_math.hpp"
#include "simd_math.hpp"
#include "step_kernels.hpp"

namespace slstm::cpu {
namespace {

// ---- cell epilogues -----------------------------------------------------------------------

// A whole group of 16 units of R rows at once (the block's rows rows[0..R), all active):
// 2R independent chains of gate math in one block for the scheduler (one row's two halves
// alone left the divider and the exp polynomials waiting on each other: ~a fifth of a step
// at H = 256, B = 6), c and h read and written in place.  The same operations on the same
// values as the buffered loop of lstm_cell_avx2.
template <int R, int NB>
SLSTM_AVX2_INLINE void lstm_rows16_avx2(const StepArgs& a, const float (&z)[NB][kRow],
                                        const int* rows) {
  float* c[R];
  float* hn[R];
  float* out[R];
  __m256 zq[R][2][4];
  for (int r = 0; r < R; ++r) {
    const int b = rows[r];
    const std::int64_t at = (a.b0 + b) * a.H + a.unit0;
    c[r] = a.c + at;
    hn[r] = a.h_next + at;
    out[r] = a.out_row[b] != nullptr ? a.out_row[b] + a.unit0 : nullptr;
    for (int j = 0; j < 2; ++j) {
      for (int q = 0; q < 4; ++q) {
        const std::int64_t i = q * kGroup + 8 * j;
        zq[r][j][q] = _mm256_add_ps(
            _mm256_load_ps(z[b] + i),
            _mm256_add_ps(_mm256_load_ps(a.g_row[b] + i), _mm256_load_ps(a.bias + i)));
      }
    }
  }
  __m256 cn[R][2];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < 2; ++j) {
      cn[r][j] = _mm256_fmadd_ps(
          _mm256_loadu_ps(c[r] + 8 * j), sigmoid256(zq[r][j][kGateF]),
          _mm256_mul_ps(sigmoid256(zq[r][j][kGateI]), tanh256(zq[r][j][kGateG])));
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < 2; ++j) {
      const __m256 h = _mm256_mul_ps(tanh256(cn[r][j]), sigmoid256(zq[r][j][kGateO]));
      _mm256_storeu_ps(c[r] + 8 * j, cn[r][j]);
      _mm256_storeu_ps(hn[r] + 8 * j, h);
      if (out[r] != nullptr) _mm256_storeu_ps(out[r] + 8 * j, h);
    }
  }
}

// LSTM, the block's NB rows: z[b] holds row b's 64 recurrent sums [gate][16 units], bytes
// the group's valid units in bytes.  Adds G and the bias, applies the gate math, updates c,
// writes h and the output row; a row past its length keeps its h and outputs zeros.
template <int NB>
SLSTM_AVX2_INLINE void lstm_cell_avx2(const StepArgs& a, const float (&z)[NB][kRow],
                                      std::size_t bytes) {
  if (bytes == kGroup * sizeof(float)) {
    // Whole groups: the active rows two at a time (lstm_rows16_avx2).
    int active[NB];
    int n = 0;
    for (int b = 0; b < NB; ++b) {
      const std::int64_t row = a.b0 + b;
      if (a.active[b]) {
        active[n++] = b;
        continue;
      }
      std::memcpy(a.h_next + row * a.H + a.unit0, a.h_prev + row * a.H + a.unit0, bytes);
      if (a.out_row[b]) std::memset(a.out_row[b] + a.unit0, 0, bytes);
    }
    int i = 0;
    for (; i + 2 <= n; i += 2) lstm_rows16_avx2<2, NB>(a, z, active + i);
    if (i < n) lstm_rows16_avx2<1, NB>(a, z, active + i);
    return;
  }
  for (int b = 0; b < NB; ++b) {
    const std::int64_t row = a.b0 + b;
    float* c = a.c + row * a.H + a.unit0;
    float* hn = a.h_next + row * a.H + a.unit0;
    if (!a.active[b]) {
      std::memcpy(hn, a.h_prev + row * a.H + a.unit0, bytes);
      if (a.out_row[b]) std::memset(a.out_row[b] + a.unit0, 0, bytes);
      continue;
    }
    // The group's units go through 16-float buffers (a group may be narrower than 16).
    alignas(32) float c_io[kGroup] = {};
    alignas(32) float h_new[kGroup];
    std::memcpy(c_io, c, bytes);
    const float* g = a.g_row[b];
    // (Units past the group's last 8-unit half have no sums: step_rows_avx2.)
    for (int j = 0; j < a.units; j += 8) {
      __m256 zq[4];
      for (int q = 0; q < 4; ++q) {
        const std::int64_t r = q * kGroup + j;
        zq[q] = _mm256_add_ps(_mm256_load_ps(z[b] + r),
                              _mm256_add_ps(_mm256_load_ps(g + r), _mm256_load_ps(a.bias + r)));
      }
      const __m256 c_new =
          _mm256_fmadd_ps(_mm256_load_ps(c_io + j), sigmoid256(zq[kGateF]),
                          _mm256_mul_ps(sigmoid256(zq[kGateI]), tanh256(zq[kGateG])));
      _mm256_store_ps(c_io + j, c_new);
      _mm256_store_ps(h_new + j, _mm256_mul_ps(tanh256(c_new), sigmoid256(zq[kGateO])));
    }
    std::memcpy(c, c_io, bytes);
    std::memcpy(hn, h_new, bytes);
    if (a.out_row[b]) std::memcpy(a.out_row[b] + a.unit0, h_new, bytes);
  }
}

// The epilogue of cell kind kCell (a new kind: its epilogue above and a branch here).
template <CellKind kCell, int NB>
SLSTM_AVX2_INLINE void cell_avx2(const StepArgs& a, const float (&z)[NB][kRow],
                                 std::size_t bytes) {
  if constexpr (kCell == CellKind::kLstm) {
    lstm_cell_avx2<NB>(a, z, bytes);
  } else {
    static_assert(kCell == CellKind::kLstm, "no AVX2 epilogue for this cell kind");
  }
}

// ---- GEMM loops ---------------------------------------------------------------------------

// How far ahead (in k) a kernel of >= 3 rows fetches its weight stream: into L2 256 k ahead
// (16 KiB of one 16-column stream, ~1000-1500 cycles of FMAs at 3-6 rows: long enough for a
// line from L3 or DRAM), from there into L1 64 k ahead.  Measured on the AVX2 EPYC (family 25
// model 17), 2 threads, W_h beyond L2 (H = 1536-2048, B = 3-6): with one fetch 32 k ahead (2
// KiB, what an L2 hit needs) a step took about the sum of its FMAs and its loads instead of
// the larger; 128 k ahead into L1 took a third of that back, the two-level fetch most of
// the rest (H = 1536, B = 4, I = 16, T = 50: 41 -> 34 -> 27 ms; the larger alone ~16-22, an
// estimate: 50 steps of the FMAs at the peak, 0.42 ms, or of the B = 1 stream, 0.33-0.44 ms).
constexpr std::int64_t kPrefetchL1 = 64;
constexpr std::int64_t kPrefetchL2 = 256;

// Fetches ahead, at k, the 16-column weight stream `w` (kGroup values per k, as packed): the
// line kPrefetchL2 k ahead into L2, the one kPrefetchL1 k ahead into L1.
template <typename T>
SLSTM_AVX2_INLINE void fetch_stream_ahead(const T* w, std::int64_t k) {
  _mm_prefetch(reinterpret_cast<const char*>(w + (k + kPrefetchL1) * kGroup), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(w + (k + kPrefetchL2) * kGroup), _MM_HINT_T1);
}


// z[b][col0 + kStep*v .. + 8) = sum_k rows[b][k] * w[.][k][.] for NB rows and v < NV, w
// packed [gate][K][16]: with kStep 8 the NV column vectors of a pass lie in one or two gate
// blocks, each read as one contiguous stream (a pass never skips over the other gates'
// columns); with kStep 16, the first 8 columns of NV consecutive gates (a group of <= 8
// units).
template <int NB, int NV, typename W, int kStep = 8>
__attribute__((target("avx2,fma,f16c"))) inline void accumulate256(
    const typename W::T* w, const float* const* rows, std::int64_t K, int col0,
    float (*z)[kRow], Prefetch next) {
  __m256 acc[NB][NV];
  for (int b = 0; b < NB; ++b) {
    for (int v = 0; v < NV; ++v) acc[b][v] = _mm256_setzero_ps();
  }
  const typename W::T* wv0[NV];
  for (int v = 0; v < NV; ++v) {
    const int col = col0 + kStep * v;
    wv0[v] = w + (col / kGroup) * kGroup * K + col % kGroup;
  }
  PrefetchStream ahead_of_next(next, K);
#pragma GCC unroll 2
  for (std::int64_t k = 0; k < K; ++k) {
    ahead_of_next.tick();
    if constexpr (NB == 1 && !W::kPlainLoad) {
      // One row of 16-bit weights (NV = 8): each vector read, widened and used in turn, so
      // that the widening does not hold 8 more registers (that order spilled an accumulator).
      const __m256 x = _mm256_broadcast_ss(rows[0] + k);
      for (int v = 0; v < NV; ++v) {
        acc[0][v] = _mm256_fmadd_ps(W::load8(wv0[v] + k * kGroup), x, acc[0][v]);
      }
      continue;
    }
    if constexpr (NB >= 3 && NV == 2 && kStep == 8 && std::is_same_v<W, Bf16>) {
      // 3-6 rows of bfloat16 weights: the pass's 16 columns are one gate's 16 codes at k,
      // widened by one operation per 8 (bf16_widen: acc[b][0] sums the even columns,
      // acc[b][1] the odd ones, interleaved back below) where load8 takes two.  A/B on the
      // family 25 model 17 EPYC, 2 threads, I = H, T = 25: H = 1024 B = 4 / 8 / 12
      // 11.25 / 22.8 / 31.0 -> 11.0 / 22.4 / 30.4 ms, H = 256 level (the FMAs bound it).
      fetch_stream_ahead(wv0[0], k);
      __m256 we, wo;
      bf16_widen(wv0[0] + k * kGroup, we, wo);
      for (int b = 0; b < NB; ++b) {
        const __m256 x = _mm256_broadcast_ss(rows[b] + k);
        acc[b][0] = _mm256_fmadd_ps(we, x, acc[b][0]);
        acc[b][1] = _mm256_fmadd_ps(wo, x, acc[b][1]);
      }
      continue;
    }
    __m256 wv[NV];
    if constexpr (NB >= 3) {
      // 6-12 FMAs per 64-byte weight line: bound by the weight stream, so fetch it ahead
      // (NV = 2 for NB >= 3: one stream; a group of <= 8 units reads two gates' halves, of
      // which the first is fetched: a layer's tail only).  With 1-2 rows (two streams of 2-4
      // FMAs per line) fetching ahead was slower, on Zen 3 and again on family 25 model 17
      // (5-30 %, into L1 or L2 alone): that loop is bound by its loads, and a prefetch takes
      // a load's slot.
      fetch_stream_ahead(wv0[0], k);
    }
    for (int v = 0; v < NV; ++v) {
      wv[v] = W::load8(wv0[v] + k * kGroup);
      if constexpr (NB > 1 && W::kPlainLoad) in_register(wv[v]);
    }
    for (int b = 0; b < NB; ++b) {
      const __m256 x = _mm256_broadcast_ss(rows[b] + k);
      for (int v = 0; v < NV; ++v) acc[b][v] = _mm256_fmadd_ps(wv[v], x, acc[b][v]);
    }
  }
  if constexpr (NB >= 3 && NV == 2 && kStep == 8 && std::is_same_v<W, Bf16>) {
    for (int b = 0; b < NB; ++b) store_interleaved(z[b] + col0, acc[b][0], acc[b][1]);
    return;
  }
  for (int b = 0; b < NB; ++b) {
    for (int v = 0; v < NV; ++v) _mm256_store_ps(z[b] + col0 + kStep * v, acc[b][v]);
  }
}

// z[0][0 .. kRow) = sum_k row[k] * w[.][k][.] for one row of bfloat16 weights (packed
// [gate][K][16]): each k's 16 codes of a gate widened by one operation per 8 weights, even
// and odd columns summed apart (bf16_pair_fma, simd_math.hpp), where Bf16::load8 takes two
// operations per 8.  A/B on the AVX2 EPYC (family 25 model 17), 2 threads, B = 1, I = H,
// BF16 sessions, against load8 at 8 chains: H = 128 / 256 / 1024 0.49 / 1.64 / 3.92 -> 0.41 /
// 1.34 / 3.19 ms.
SLSTM_AVX2_INLINE void accumulate_bf16_row(const std::uint16_t* w, const float* row,
                                           std::int64_t K, float (*z)[kRow], Prefetch next) {
  // (Named sums: held in an array, GCC stored them to the stack at every k.)
  __m256 e0 = _mm256_setzero_ps(), e1 = e0, e2 = e0, e3 = e0;
  __m256 o0 = e0, o1 = e0, o2 = e0, o3 = e0;
  const std::uint16_t* w1 = w + K * kGroup;
  const std::uint16_t* w2 = w1 + K * kGroup;
  const std::uint16_t* w3 = w2 + K * kGroup;
  PrefetchStream ahead_of_next(next, K);
#pragma GCC unroll 2
  for (std::int64_t k = 0; k < K; ++k) {
    ahead_of_next.tick();
    const __m256 x = _mm256_broadcast_ss(row + k);
    bf16_pair_fma(w + k * kGroup, x, e0, o0);
    bf16_pair_fma(w1 + k * kGroup, x, e1, o1);
    bf16_pair_fma(w2 + k * kGroup, x, e2, o2);
    bf16_pair_fma(w3 + k * kGroup, x, e3, o3);
  }
  store_interleaved(z[0], e0, o0);
  store_interleaved(z[0] + 16, e1, o1);
  store_interleaved(z[0] + 32, e2, o2);
  store_interleaved(z[0] + 48, e3, o3);
}

// The same for two rows, gates gate0 and gate0 + 1 (8 sums), each widened vector serving
// both rows.  A/B as above, B = 2, against load8 (two passes of 4 vectors): H = 128 / 256 /
// 1024 0.78 / 2.61 / 6.23 -> 0.72 / 2.35 / 5.60 ms.
SLSTM_AVX2_INLINE void accumulate_bf16_two_rows(const std::uint16_t* w, const float* const* rows,
                                                std::int64_t K, int gate0, float (*z)[kRow],
                                                Prefetch next) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;  // row 0: even, odd, even, odd
  __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                   // row 1
  const std::uint16_t* wa = w + gate0 * K * kGroup;
  const std::uint16_t* wb = wa + K * kGroup;
  PrefetchStream ahead_of_next(next, K);
#pragma GCC unroll 2
  for (std::int64_t k = 0; k < K; ++k) {
    ahead_of_next.tick();
    const __m256 x0 = _mm256_broadcast_ss(rows[0] + k);
    const __m256 x1 = _mm256_broadcast_ss(rows[1] + k);
    __m256 we, wo;
    bf16_widen(wa + k * kGroup, we, wo);
    a0 = _mm256_fmadd_ps(we, x0, a0);
    a1 = _mm256_fmadd_ps(wo, x0, a1);
    b0 = _mm256_fmadd_ps(we, x1, b0);
    b1 = _mm256_fmadd_ps(wo, x1, b1);
    bf16_widen(wb + k * kGroup, we, wo);
    a2 = _mm256_fmadd_ps(we, x0, a2);
    a3 = _mm256_fmadd_ps(wo, x0, a3);
    b2 = _mm256_fmadd_ps(we, x1, b2);
    b3 = _mm256_fmadd_ps(wo, x1, b3);
  }
  store_interleaved(z[0] + 16 * gate0, a0, a1);
  store_interleaved(z[0] + 16 * gate0 + 16, a2, a3);
  store_interleaved(z[1] + 16 * gate0, b0, b1);
  store_interleaved(z[1] + 16 * gate0 + 16, b2, b3);
}

// z[b][0 .. kRow) = rows[b] . w for NB rows, w one group's packed weights ([gate][K][16]);
// a group of <= 8 units (`units`) writes the first 8 columns of each gate only.  The step's
// recurrent sums (h . W_h), and input projections (project_by_gate_sums_avx2).
template <int NB, typename W>
__attribute__((target("avx2,fma,f16c"))) inline void gate_sums_avx2(
    const typename W::T* w, const float* const* rows, std::int64_t K, std::int64_t units,
    float (*z)[kRow], Prefetch next) {
  // Column vectors a pass: 4 for 1-2 rows (two streams), 2 for 3-6 (one); 8 for one row of
  // 16-bit weights (four streams, 8 FMA chains).  A 16-bit stream halves the bytes per FMA, so
  // one row's loop waits on its 4 chains' FMA latency rather than on L2: A/B on the AVX2 EPYC
  // (family 25 model 17), 2 threads, B = 1, I = H: FP16 H = 128 / 256 / 1024 0.78 / ~2.1 /
  // 4.22 -> 0.70 / 1.83 / 3.40 ms (T = 150 / 150 / 25); BF16 level, until it widened 16
  // codes at a time (accumulate_bf16_row).  Float32 stays at 4: 8 measured -3..+2.5 % (H =
  // 128-512), level beyond.
  constexpr int NV = NB == 1 && !W::kPlainLoad ? 8 : NB <= 2 ? 4 : 2;
  constexpr int NVHalf = NV > 4 ? 4 : NV;  // (a half group's pass: one gate's 8 per vector)
  if (units <= 8) {
    // A group of <= 8 units (the last of a layer whose H is not a multiple of 16): the
    // first half of each gate's 16 columns only, in half the passes; each sum is the same
    // chain as in a whole pass.
    constexpr int kPasses = kRow / (16 * NVHalf);
    for (int pass = 0; pass < kPasses; ++pass) {
      accumulate256<NB, NVHalf, W, 16>(w, rows, K, pass * 16 * NVHalf, z,
                                       pass_share(next, pass, kPasses));
    }
  } else if constexpr (NB == 1 && std::is_same_v<W, Bf16>) {
    accumulate_bf16_row(w, rows[0], K, z, next);
  } else if constexpr (NB == 2 && std::is_same_v<W, Bf16>) {
    accumulate_bf16_two_rows(w, rows, K, 0, z, pass_share(next, 0, 2));
    accumulate_bf16_two_rows(w, rows, K, 2, z, pass_share(next, 1, 2));
  } else {
    constexpr int kPasses = kRow / (8 * NV);
    for (int pass = 0; pass < kPasses; ++pass) {
      accumulate256<NB, NV, W>(w, rows, K, pass * 8 * NV, z, pass_share(next, pass, kPasses));
    }
  }
}

// One step of one group for NB rows: the recurrent sums, then the cell's epilogue.
template <int NB, CellKind kCell, typename W>
__attribute__((target("avx2,fma,f16c"))) void step_rows_avx2(const StepArgs& a,
                                                             const typename W::T* wh) {
  const float* h[NB];
  for (int b = 0; b < NB; ++b) {
    h[b] = a.h_gemm + (a.b0 + b) * a.H;
    prefetch_epilogue_inputs(a, b);
  }
  alignas(32) float z[NB][kRow];
  gate_sums_avx2<NB, W>(wh, h, recurrent_k(a), a.units, z, a.next);
  const std::size_t bytes = static_cast<std::size_t>(a.units) * sizeof(float);
  cell_avx2<kCell, NB>(a, z, bytes);
}

// The input projection of NB rows for one group with the step's kernels (gate_sums_avx2),
// each row's sums then copied out (those a group of <= 8 units computes): over W_x's 16-bit
// codes (a BF16 / FP16 session: project_block16_avx2), and for one row of float32 weights
// (4 FMA chains where project_rows_avx2 has 2).  Each element one FMA chain in increasing k
// from zero, as in project_rows_avx2 over the same float32 values: the same bits.
template <int NB, typename W>
__attribute__((target("avx2,fma,f16c"))) void project_by_gate_sums_avx2(
    const typename W::T* w, const float* const* rows, std::int64_t K, float* const* out,
    Prefetch next, std::int64_t units) {
  alignas(32) float z[NB][kRow];
  gate_sums_avx2<NB, W>(w, rows, K, units, z, next);
  const int vectors = units <= 8 ? 1 : 2;  // per gate
  for (int b = 0; b < NB; ++b) {
    for (int q = 0; q < 4; ++q) {
      for (int v = 0; v < vectors; ++v) {
        _mm256_store_ps(out[b] + q * kGroup + 8 * v, _mm256_load_ps(z[b] + q * kGroup + 8 * v));
      }
    }
  }
}

// Input projection of NB rows for one group: out[b][0..63] = rows[b] . w (w packed
// [4][K][16], out[b] 32-byte aligned), in four passes of 16 columns (12 accumulators for 6
// rows), each element one FMA chain in increasing k.  kHalf (a group of <= 8 units): the
// first 8 columns of two gates a pass, in two passes (the other columns left unwritten).
template <int NB, bool kHalf = false>
SLSTM_AVX2 void project_rows_avx2(const float* w, const float* const* rows, std::int64_t K,
                                  float* const* out, Prefetch next) {
  const float* x[NB];
  for (int b = 0; b < NB; ++b) x[b] = rows[b];
  // Blocks of >= 3 rows fetch their own stream ahead, as the step's do (accumulate256), when
  // nothing fetched this group into L2 for them (no `next`: one block of rows for the group,
  // as in a one-step call's projection inside the step); with `next`, the blocks of a chunk
  // fetch the next group for each other and this group is in L2 already.
  const bool own = next.lines == 0;
  constexpr int kCols = kHalf ? 32 : 16;        // columns a pass covers
  constexpr std::int64_t kSecond = kHalf ? 16 : 8;  // the second vector's column
  for (int col0 = 0; col0 < kRow; col0 += kCols) {
    __m256 acc0[NB], acc1[NB];
    for (int b = 0; b < NB; ++b) acc0[b] = acc1[b] = _mm256_setzero_ps();
    const float* wk = w + col0 * K;
    const float* wk1 = w + (col0 + kSecond) / kGroup * kGroup * K + (col0 + kSecond) % kGroup;
    PrefetchStream ahead_of_next(pass_share(next, col0 / kCols, kRow / kCols), K);
    for (std::int64_t k = 0; k < K; ++k, wk += 16, wk1 += 16) {
      ahead_of_next.tick();
      if (NB >= 3 && own) {
        fetch_stream_ahead(wk, 0);  // (wk, wk1: this k's values)
        if constexpr (kHalf) fetch_stream_ahead(wk1, 0);  // (two gates a pass: a second stream)
      }
      __m256 w0 = _mm256_load_ps(wk);
      __m256 w1 = _mm256_load_ps(wk1);
      if (NB > 1) {
        in_register(w0);
        in_register(w1);
      }
      for (int b = 0; b < NB; ++b) {
        const __m256 xb = _mm256_broadcast_ss(x[b] + k);
        acc0[b] = _mm256_fmadd_ps(w0, xb, acc0[b]);
        acc1[b] = _mm256_fmadd_ps(w1, xb, acc1[b]);
      }
    }
    for (int b = 0; b < NB; ++b) {
      _mm256_store_ps(out[b] + col0, acc0[b]);
      _mm256_store_ps(out[b] + col0 + kSecond, acc1[b]);
    }
  }
}

template <CellKind kCell, typename W>
void step_rows_any_avx2(const StepArgs& a, int nb, const typename W::T* wh) {
  switch (nb) {
    case 1: step_rows_avx2<1, kCell, W>(a, wh); return;
    case 2: step_rows_avx2<2, kCell, W>(a, wh); return;
    case 3: step_rows_avx2<3, kCell, W>(a, wh); return;
    case 4: step_rows_avx2<4, kCell, W>(a, wh); return;
    case 5: step_rows_avx2<5, kCell, W>(a, wh); return;
    default: step_rows_avx2<6, kCell, W>(a, wh); return;
  }
}

template <CellKind kCell>
void step_cell_avx2(const StepArgs& a, int nb) {
  if (a.wh16 == nullptr) {
    step_rows_any_avx2<kCell, F32>(a, nb, a.wh);
  } else if (a.wh16_is_bf16) {
    step_rows_any_avx2<kCell, Bf16>(a, nb, a.wh16);
  } else {
    step_rows_any_avx2<kCell, Fp16>(a, nb, a.wh16);
  }
}

// nb in [2, 6]: project_block_avx2 runs a single row by gate sums.
template <bool kHalf>
void project_block_avx2_t(const float* w, const float* const* rows, std::int64_t K,
                          float* const* out, int nb, Prefetch next) {
  switch (nb) {
    case 2: project_rows_avx2<2, kHalf>(w, rows, K, out, next); return;
    case 3: project_rows_avx2<3, kHalf>(w, rows, K, out, next); return;
    case 4: project_rows_avx2<4, kHalf>(w, rows, K, out, next); return;
    case 5: project_rows_avx2<5, kHalf>(w, rows, K, out, next); return;
    default: project_rows_avx2<6, kHalf>(w, rows, K, out, next); return;
  }
}

template <typename W>
void project_block16_avx2_t(const std::uint16_t* w, const float* const* rows, std::int64_t K,
                            float* const* out, int nb, Prefetch next, std::int64_t units) {
  switch (nb) {
    case 1: project_by_gate_sums_avx2<1, W>(w, rows, K, out, next, units); return;
    case 2: project_by_gate_sums_avx2<2, W>(w, rows, K, out, next, units); return;
    case 3: project_by_gate_sums_avx2<3, W>(w, rows, K, out, next, units); return;
    case 4: project_by_gate_sums_avx2<4, W>(w, rows, K, out, next, units); return;
    case 5: project_by_gate_sums_avx2<5, W>(w, rows, K, out, next, units); return;
    default: project_by_gate_sums_avx2<6, W>(w, rows, K, out, next, units); return;
  }
}

}  // namespace

void step_block_avx2(const StepArgs& a, int nb) {
  switch (a.cell) {
    case CellKind::kLstm: step_cell_avx2<CellKind::kLstm>(a, nb); return;
    case CellKind::kGru: break;  // never planned: make_backend runs such stacks on the reference
  }
}

void project_block_avx2(const float* w, const float* const* rows, std::int64_t K,
                        float* const* out, int nb, Prefetch next, std::int64_t units) {
  if (nb == 1) {
    // A/B on the family 25 model 17 EPYC, 2 threads, I = H, calls of one step, B = 1: H = 256
    // 0.0209 -> 0.0181 ms, H = 1024 0.343 -> 0.288 (2 chains a pass waited on the FMA latency).
    project_by_gate_sums_avx2<1, F32>(w, rows, K, out, next, units);
  } else if (units <= 8) {
    project_block_avx2_t<true>(w, rows, K, out, nb, next);
  } else {
    project_block_avx2_t<false>(w, rows, K, out, nb, next);
  }
}

void project_block16_avx2(const std::uint16_t* w, bool bf16, const float* const* rows,
                          std::int64_t K, float* const* out, int nb, Prefetch next,
                          std::int64_t units) {
  if (bf16) {
    project_block16_avx2_t<Bf16>(w, rows, K, out, nb, next, units);
  } else {
    project_block16_avx2_t<Fp16>(w, rows, K, out, nb, next, units);
  }
}

namespace {

template <typename W>
__attribute__((target("avx2,fma,f16c"))) void widen_codes_avx2_t(const std::uint16_t* src,
                                                                  float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += 8) _mm256_store_ps(dst + i, W::load8(src + i));
}

}  // namespace

void widen_codes_avx2(const std::uint16_t* src, bool bf16, float* dst, std::int64_t n) {
  if (bf16) {
    widen_codes_avx2_t<Bf16>(src, dst, n);
  } else {
    widen_codes_avx2_t<Fp16>(src, dst, n);
  }
}

}  // namespace slstm::cpu

#endif  // __GNUC__ && __x86_64__
