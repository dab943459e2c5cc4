// The CPU fast path for stacks beyond BasicLSTMCell (docs/cells.md): LSTM with peepholes,
// clipping and a projection, GRU in both reset variants, reverse and bidirectional layers,
// residual connections, any mix of them.  The BasicLSTMCell fast path (fast_backend.cpp) keeps
// its fused kernels; this one trades their last factor for generality.
//
// Structure: the steps of a call run batched, every active row of a step together, as
// float32 GEMMs over weights packed once per session (blocks of 32 gate rows stored
// transposed, so that a row's 32 sums stay in registers over the whole k loop and each k adds
// one contiguous slice): on AVX2+FMA CPUs an intrinsics kernel that serves 3 rows from each
// load of a slice (one FMA per product; up to 6 from each half slice of bfloat16 codes), on
// AVX-512 CPUs one that serves 6 (the same FMAs, so the same bits), elsewhere a loop the
// compiler vectorises (x86-64: SSE2, multiply then add; aarch64: NEON fused multiply-add,
// step_kernels.hpp madd),
// then the cell's pointwise math per row (on AVX2 8 units at a time with the fused kernels'
// vector sigmoid / tanh, peepholes and cell_clip included; scalar libm on the portable
// kernels).  A stack
// whose layers all read forward runs time step by time step (MultiRNNCell's order, no
// sequence-sized workspace); one with a reverse or bidirectional layer runs layer by layer
// over the whole sequence, each direction reading every row's valid part in its own order.
// Threads: the workers (num_threads, at most one per batch row) split the batch rows, each
// running its rows through every layer and step with its own workspace: rows never
// interact, so there is no barrier.  A call of fewer than 3 rows per thread would leave each
// worker streaming every weight for 1-2 rows (and at one row, the others idle), so then a
// stack with bidirectional layers splits the two directions between 2 workers (each every
// row; they meet twice per layer): forward_by_direction; and a stack whose step streams
// enough weights (kTeamMinBytes) runs as a team: every worker on every row, each GEMM cut
// by gate rows (32-row blocks) and the cell math by units, a barrier between the phases of
// a step (Team, step()) -- with its directions split, one team per direction.  The workers
// are the session's own, the process-wide pool's (cpu.pool=shared: a call that finds it busy
// runs alone), or a team of the tasks of the caller's pool (options->thread_pool).
//
// Determinism: every pre-activation is one chain of multiply-adds in increasing k (input
// part, then recurrent part) started from the bias, computed with the same instructions
// whichever rows share its step; the pointwise math is per element.  A step's result
// therefore depends only on its input, the carried state and the weights: chunked calls and
// slstm_session_step are bitwise equal to one call (tests/test_layers.cpp).  A call without
// initial_state skips each direction's first recurrent products (h = 0; step()'s h_zero),
// with the bits of a call from explicit zeros.
#include "generic_backend.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_* as the masked-off source, which
// -W(maybe-)uninitialized flags once they are inlined here; the warning is about the header.
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

#include "../gate_math.hpp"
#include "buffer.hpp"
#include "calibration.hpp"
#include "fast_plan.hpp"
#include "rounding.hpp"
#include "simd_math.hpp"
#include "thread_pool.hpp"

namespace slstm::cpu {
namespace {

// A weight matrix W [n, K] (rows r0..r0+n of a layer's W_x, W_h or W_proj) packed for
// gemm_rows: blocks of kBlock rows of W, each stored transposed and contiguous ([K][kBlock],
// the last block zero-padded), so that a block's k-th slice is one contiguous load and a
// row's kBlock sums stay in registers over the whole k loop.
constexpr std::int64_t kBlock = 32;

// What a GEMM reads: n rows of W from a block boundary of a PackedMatrix on, as float32
// (`data`) or, in a BF16/FP16 session on the AVX2 / AVX-512 kernels, as the 16-bit codes of
// the same rounded values (`codes`, bfloat16 when `bf16`, else binary16; data is then null),
// or, in a BF16 session on AMX (cpu.amx), as tiles of bfloat16 pairs (`tiles`: per block
// of 32 rows [k_tiles][2 x 16 rows][16 pairs of k][16][2], zero past K; gemm_rows_amx).
struct MatView {
  const float* data = nullptr;
  const std::uint16_t* codes = nullptr;
  bool bf16 = false;
  std::int64_t K = 0, n = 0;
  const std::uint16_t* tiles = nullptr;
  std::int64_t k_tiles = 0;
};

// The packed values live in allocate_streamed's storage (buffer.hpp: from 4 MiB on in
// transparent huge pages, as the fused path's weights): a step streams them whole.
struct PackedMatrix {
  Buffer store;          // [blocks][K][kBlock] floats, or as many 16-bit codes (codes16)
  bool codes16 = false;  // 16-bit storage (bfloat16 when bf16, else binary16)
  bool bf16 = false;
  bool amx = false;      // ... as AMX tiles instead: [blocks][k_tiles][2][16][16][2] codes
  std::int64_t K = 0, n = 0, k_tiles = 0;
  MatView view() const { return rows(0, n); }
  // Rows [r0, r1) of W, r0 a multiple of kBlock.
  MatView rows(std::int64_t r0, std::int64_t r1) const {
    if (store == nullptr) return {nullptr, nullptr, false, K, r1 - r0};  // (no such matrix)
    if (amx) {
      return {nullptr, nullptr, true, K, r1 - r0, codes() + (r0 / kBlock) * k_tiles * 2 * kAmxTile,
              k_tiles};
    }
    const std::int64_t at = (r0 / kBlock) * K * kBlock;
    if (codes16) return {nullptr, codes() + at, bf16, K, r1 - r0};
    return {store.get() + at, nullptr, false, K, r1 - r0};
  }
  std::uint16_t* codes() const { return reinterpret_cast<std::uint16_t*>(store.get()); }
};

// Rows r0 .. r0+n of w ([.][K]) rounded to `precision`; as 16-bit codes with `store16`, as
// AMX tiles with `amx` (a BF16 session).
PackedMatrix pack_rows(const std::vector<float>& w, std::int64_t r0, std::int64_t n,
                       std::int64_t K, Precision precision, bool store16, bool amx) {
  PackedMatrix p;
  p.K = K;
  p.n = n;
  p.bf16 = precision == Precision::kBf16;
  p.amx = amx;
  p.k_tiles = (K + kAmxK - 1) / kAmxK;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  const std::int64_t Kp = amx ? p.k_tiles * kAmxK : K;  // (AMX: K padded to whole tiles)
  const std::size_t size = product({blocks, Kp, kBlock}, "packed weights");
  // (Zeroed: code 0 is +0 in both 16-bit formats, the padding.)
  p.codes16 = store16 || amx;
  p.store = allocate_streamed(p.codes16 ? (size + 1) / 2 : size);
  std::uint16_t* const codes = p.codes();
  float* const data = p.store.get();
  std::vector<float> row(static_cast<std::size_t>(K));  // W's row r0 + r, rounded (8 at a time)
  for (std::int64_t r = 0; r < n; ++r) {
    const std::int64_t at = (r / kBlock) * K * kBlock + r % kBlock;
    round_floats(precision, w.data() + (r0 + r) * K, row.data(), row.size());
    for (std::int64_t k = 0; k < K; ++k) {
      const float v = row[static_cast<std::size_t>(k)];
      if (amx) {  // block, tile of k, half of the block's rows, pair of k, row, k's parity
        const std::int64_t half = (r % kBlock) / 16, j = r % 16;
        codes[static_cast<std::size_t>(
            (((r / kBlock) * p.k_tiles + k / kAmxK) * 2 + half) * kAmxTile +
            (k % kAmxK) / 2 * kAmxK + 2 * j + k % 2)] = code16(precision, v);
        continue;
      }
      const auto i = static_cast<std::size_t>(at + k * kBlock);
      if (store16) {
        codes[i] = code16(precision, v);
      } else {
        data[i] = v;
      }
    }
  }
  return p;
}

// z[b][0..n) += sum_k x[b][k] * W[0..n)[k], k = 0, 1, ..., K-1 in that order, for b < nb:
// every element one chain of multiply-adds in increasing k, whatever nb or the block.  With
// `init`, each chain starts from init[0..n) (the same for every row: a bias) instead of
// from z, whose old values are then neither read nor needed (no copy of the bias first).
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline void gemm_rows_body(float* const* z, const float* const* x, const MatView& w,
                           std::int64_t nb, const float* init) {
  const std::int64_t K = w.K;
  for (std::int64_t i0 = 0; i0 < w.n; i0 += kBlock) {
    const std::int64_t valid = std::min(kBlock, w.n - i0);
    const float* __restrict blk = w.data + (i0 / kBlock) * K * kBlock;
    for (std::int64_t b = 0; b < nb; ++b) {
      float acc[kBlock];
      const float* from = init != nullptr ? init : z[b];
      for (std::int64_t i = 0; i < kBlock; ++i) acc[i] = i < valid ? from[i0 + i] : 0.0f;
      const float* __restrict xb = x[b];
      for (std::int64_t k = 0; k < K; ++k) {
        const float a = xb[k];
        const float* __restrict wk = blk + k * kBlock;
        for (std::int64_t i = 0; i < kBlock; ++i) acc[i] = madd(a, wk[i], acc[i]);
      }
      for (std::int64_t i = 0; i < valid; ++i) z[b][i0 + i] = acc[i];
    }
  }
}

// Panels of 16-bit weights are widened to float32 (into `wide`, by the first group of rows as
// it reads them) for this many groups of up to 6 rows or more, instead of every group
// converting them.  The first group's stores cost it ~1.5x a float32 group's time, a group
// that converts ~1.15x (perf, GRU H = 1024 B = 64 on a 2-vCPU AVX-512 Xeon): 4 groups break
// even, 6 gain ~7 % (bench/results/cpu-wx16.md).
constexpr std::int64_t kWidenGroups = 4;
inline bool widens(std::int64_t rows) { return (rows + 5) / 6 >= kWidenGroups; }

// gemm_rows_avx512's panels over many rows: blocks of W whose weights (block_bytes each) stay
// in a quarter of this core's L2, at least one.
inline std::int64_t panel_blocks(std::int64_t block_bytes) {
  return std::max<std::int64_t>(1, l2_cache_bytes() / 4 / block_bytes);
}
// Room for such a panel widened to float32, for W of up to K columns: a quarter of L2, or
// one block.
inline std::int64_t wide_panel_floats(std::int64_t K) {
  return std::max(l2_cache_bytes() / 4 / static_cast<std::int64_t>(sizeof(float)), K * kBlock);
}

// z, x, W, rows, init and `wide`: scratch for a panel of W widened to float32
// (wide_panel_floats(W.K) floats; gemm_rows_avx512), or null.
using GemmRows = void (*)(float* const*, const float* const*, const MatView&, std::int64_t,
                          const float*, float*);

void gemm_rows_portable(float* const* z, const float* const* x, const MatView& w,
                        std::int64_t nb, const float* init, float* /*wide*/) {
  gemm_rows_body(z, x, w, nb, init);
}

#if defined(__GNUC__) && defined(__x86_64__)
// How the AVX kernels read 8 (ymm) or 16 (zmm) weights: float32, or 16-bit codes converted
// exactly (the values float32 storage would hold).
#define SLSTM_AVX2_F16C_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline
struct F32 {
  using T = float;
  static constexpr bool kPlainLoad = true;  // (in_register, simd_math.hpp)
  SLSTM_AVX2_F16C_INLINE static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  SLSTM_AVX512_INLINE static __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
};
struct Bf16 {
  using T = std::uint16_t;
  static constexpr bool kPlainLoad = false;
  SLSTM_AVX2_F16C_INLINE static __m256 load8(const std::uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  SLSTM_AVX512_INLINE static __m512 load16(const std::uint16_t* p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};
struct Fp16 {
  using T = std::uint16_t;
  static constexpr bool kPlainLoad = false;
  SLSTM_AVX2_F16C_INLINE static __m256 load8(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  SLSTM_AVX512_INLINE static __m512 load16(const std::uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
};

// Two or three rows of a block of bfloat16 weights (gemm_block_loop_avx2 below): each k's 32
// codes widened by one operation per 8 (even columns shifted, odd ones masked: bf16_even,
// bf16_odd, simd_math.hpp; the even and odd columns summed apart), where load8 takes two,
// each serving every row (4 NB chains).  At 3 rows one vector at a time, in 16 registers: 12
// sums, 3 broadcasts and the widened vector; the mask stays a memory operand (checked in the
// disassembly: no spill); at 2, both halves of 16 codes from one load (1.5 % faster).  The
// same chains.
template <int NB>
__attribute__((target("avx2,fma,f16c"))) inline void gemm_block_loop_bf16_rows(
    float* const* zb, const float* const* from, const float* const* x, const std::uint16_t* blk,
    std::int64_t K) {
  __m256 acc[NB][4];  // per row: even, odd (columns 0-15), even, odd (16-31)
  for (int b = 0; b < NB; ++b) {
    load_deinterleaved(from[b], acc[b][0], acc[b][1]);
    load_deinterleaved(from[b] + 16, acc[b][2], acc[b][3]);
  }
  std::int64_t k = 0;
  do {  // (a do-while, see gemm_block_loop_avx2)
    const std::uint16_t* wk = blk + k * kBlock;
    __m256 xb[NB];
    for (int b = 0; b < NB; ++b) xb[b] = _mm256_broadcast_ss(x[b] + k);
    for (int half = 0; half < 2; ++half) {
      const std::uint16_t* codes = wk + 16 * half;
      __m256 we, wo;
      if constexpr (NB == 2) {
        bf16_widen(codes, we, wo);  // (both at once: one load of the codes)
      } else {
        we = bf16_even(codes);
      }
      for (int b = 0; b < NB; ++b) acc[b][2 * half] = _mm256_fmadd_ps(we, xb[b], acc[b][2 * half]);
      if constexpr (NB != 2) wo = bf16_odd(codes);
      for (int b = 0; b < NB; ++b) {
        acc[b][2 * half + 1] = _mm256_fmadd_ps(wo, xb[b], acc[b][2 * half + 1]);
      }
    }
  } while (++k < K);
  for (int b = 0; b < NB; ++b) {
    store_interleaved(zb[b], acc[b][0], acc[b][1]);
    store_interleaved(zb[b] + 16, acc[b][2], acc[b][3]);
  }
}

// NB rows (4-6) of a block of bfloat16 weights, 16 of its 32 columns at a time: each k's 16
// codes widened once (bf16_widen: one operation per 8, the even and odd columns summed apart)
// and serving all NB rows, 2 NB chains (12 sums, the two widened vectors, one broadcast and
// the mask at NB = 6: the 16 registers).  The same chains.
template <int NB>
__attribute__((target("avx2,fma,f16c"))) inline void gemm_block_loop_bf16_half(
    float* const* zb, const float* const* from, const float* const* x, const std::uint16_t* blk,
    std::int64_t K) {
  for (int half = 0; half < 2; ++half) {
    __m256 even[NB], odd[NB];
    for (int b = 0; b < NB; ++b) load_deinterleaved(from[b] + 16 * half, even[b], odd[b]);
    const std::uint16_t* w = blk + 16 * half;
    std::int64_t k = 0;
    do {  // (a do-while, see gemm_block_loop_avx2)
      __m256 we, wo;
      bf16_widen(w + k * kBlock, we, wo);
      for (int b = 0; b < NB; ++b) {
        const __m256 xb = _mm256_broadcast_ss(x[b] + k);
        even[b] = _mm256_fmadd_ps(we, xb, even[b]);
        odd[b] = _mm256_fmadd_ps(wo, xb, odd[b]);
      }
    } while (++k < K);
    for (int b = 0; b < NB; ++b) store_interleaved(zb[b] + 16 * half, even[b], odd[b]);
  }
}

// The AVX2+FMA GEMM: the same chains as gemm_rows_body (each element starts from z and adds
// x[b][k] * W[.][k] in increasing k, one FMA each), with NB rows sharing every load of a
// block's k-th slice, so that a block is streamed once per 3 rows instead of once per row.
// The chains start from from[b] (z itself, or the GEMM's init).
template <int NB, typename W>
__attribute__((target("avx2,fma,f16c"))) inline void gemm_block_loop_avx2(
    float* const* zb, const float* const* from, const float* const* x,
    const typename W::T* blk, std::int64_t K) {
  if constexpr ((NB == 2 || NB == 3) && std::is_same_v<W, Bf16>) {
    gemm_block_loop_bf16_rows<NB>(zb, from, x, blk, K);
    return;
  } else if constexpr (NB >= 4 && std::is_same_v<W, Bf16>) {
    gemm_block_loop_bf16_half<NB>(zb, from, x, blk, K);
    return;
  }
  __m256 acc[NB][4];
  for (int b = 0; b < NB; ++b) {
    for (int v = 0; v < 4; ++v) acc[b][v] = _mm256_loadu_ps(from[b] + 8 * v);
  }
  // Registers at NB = 3: 12 accumulators, 3 broadcasts and one weight vector at a time.  A
  // do-while (K >= 1): with a for loop GCC 12 -O3 also stores every accumulator to the stack
  // on each k, which halved the kernel's speed.
  std::int64_t k = 0;
  do {
    const typename W::T* wk = blk + k * kBlock;
    __m256 xb[NB];
    for (int b = 0; b < NB; ++b) xb[b] = _mm256_broadcast_ss(x[b] + k);
    for (int v = 0; v < 4; ++v) {
      __m256 w = W::load8(wk + 8 * v);
      if constexpr (NB > 1 && W::kPlainLoad) in_register(w);
      for (int b = 0; b < NB; ++b) acc[b][v] = _mm256_fmadd_ps(w, xb[b], acc[b][v]);
    }
  } while (++k < K);
  for (int b = 0; b < NB; ++b) {
    for (int v = 0; v < 4; ++v) _mm256_storeu_ps(zb[b] + 8 * v, acc[b][v]);
  }
}

template <int NB, typename W>
__attribute__((target("avx2,fma,f16c"))) inline void gemm_block_avx2(
    float* const* z, const float* const* x, const typename W::T* blk, std::int64_t K,
    std::int64_t i0, std::int64_t valid, const float* init) {
  // A partial block (its last rows) goes through io, so that the loop reads and writes 32.
  alignas(32) float io[NB][kBlock];
  float* zb[NB];
  const float* from[NB];
  for (int b = 0; b < NB; ++b) {
    zb[b] = z[b] + i0;
    from[b] = init != nullptr ? init + i0 : zb[b];
    if (valid < kBlock) {
      std::fill_n(io[b], kBlock, 0.0f);
      std::copy_n(from[b], valid, io[b]);
      zb[b] = io[b];
      from[b] = io[b];
    }
  }
  gemm_block_loop_avx2<NB, W>(zb, from, x, blk, K);
  if (valid < kBlock) {
    for (int b = 0; b < NB; ++b) std::copy_n(io[b], valid, z[b] + i0);
  }
}

// z[0..64) (two whole blocks, the second at blk + K * kBlock) for one row x.
template <typename W>
__attribute__((target("avx2,fma,f16c"))) inline void gemm_two_blocks_avx2(
    float* z, const float* from, const float* x, const typename W::T* blk, std::int64_t K) {
  const typename W::T* blk2 = blk + K * kBlock;
  if constexpr (std::is_same_v<W, Bf16>) {
    // bfloat16: 16 codes widened by one operation per 8, the even and odd columns summed
    // apart (bf16_pair_fma, simd_math.hpp), where load8 takes two per 8.  The same chains.
    __m256 e0, o0, e1, o1, e2, o2, e3, o3;  // (named: see the do-while below)
    load_deinterleaved(from, e0, o0);
    load_deinterleaved(from + 16, e1, o1);
    load_deinterleaved(from + 32, e2, o2);
    load_deinterleaved(from + 48, e3, o3);
    std::int64_t k = 0;
    do {
      const __m256 xb = _mm256_broadcast_ss(x + k);
      bf16_pair_fma(blk + k * kBlock, xb, e0, o0);
      bf16_pair_fma(blk + k * kBlock + 16, xb, e1, o1);
      bf16_pair_fma(blk2 + k * kBlock, xb, e2, o2);
      bf16_pair_fma(blk2 + k * kBlock + 16, xb, e3, o3);
    } while (++k < K);
    store_interleaved(z, e0, o0);
    store_interleaved(z + 16, e1, o1);
    store_interleaved(z + 32, e2, o2);
    store_interleaved(z + 48, e3, o3);
    return;
  }
  __m256 acc[8];
  for (int v = 0; v < 8; ++v) acc[v] = _mm256_loadu_ps(from + 8 * v);
  std::int64_t k = 0;
  do {  // (a do-while, see gemm_block_loop_avx2)
    const __m256 xb = _mm256_broadcast_ss(x + k);
    for (int v = 0; v < 4; ++v) {
      acc[v] = _mm256_fmadd_ps(W::load8(blk + k * kBlock + 8 * v), xb, acc[v]);
      acc[4 + v] = _mm256_fmadd_ps(W::load8(blk2 + k * kBlock + 8 * v), xb, acc[4 + v]);
    }
  } while (++k < K);
  for (int v = 0; v < 8; ++v) _mm256_storeu_ps(z + 8 * v, acc[v]);
}

template <typename W>
__attribute__((target("avx2,fma,f16c"))) void gemm_rows_avx2_t(
    float* const* z, const float* const* x, const typename W::T* base, std::int64_t K,
    std::int64_t n, std::int64_t nb, const float* init) {
  for (std::int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const std::int64_t valid = std::min(kBlock, n - i0);
    const typename W::T* blk = base + (i0 / kBlock) * K * kBlock;
    if (nb == 1 && valid == kBlock && i0 + 2 * kBlock <= n) {
      // One row: two whole blocks at once (8 independent chains: 4 would wait on the FMA
      // latency).
      gemm_two_blocks_avx2<W>(z[0] + i0, init != nullptr ? init + i0 : z[0] + i0, x[0], blk, K);
      i0 += kBlock;
      continue;
    }
    std::int64_t b = 0;
    if constexpr (std::is_same_v<W, Bf16>) {
      // bfloat16: 3 or more rows in even groups of 3-6 (gemm_block_loop_bf16_rows,
      // gemm_block_loop_bf16_half).
      const std::int64_t groups = nb >= 3 ? (nb + 5) / 6 : 0;
      for (std::int64_t g = 0; g < groups; ++g, b = row_cut(nb, g, groups)) {
        switch (row_cut(nb, g + 1, groups) - b) {
          case 6: gemm_block_avx2<6, W>(z + b, x + b, blk, K, i0, valid, init); break;
          case 5: gemm_block_avx2<5, W>(z + b, x + b, blk, K, i0, valid, init); break;
          case 4: gemm_block_avx2<4, W>(z + b, x + b, blk, K, i0, valid, init); break;
          default: gemm_block_avx2<3, W>(z + b, x + b, blk, K, i0, valid, init); break;
        }
      }
    }
    // Blocks of 3 rows, the last 4 as 2 + 2 (a lone row's block has 4 FMA chains, which wait
    // on the FMA latency).
    for (; nb - b >= 3 && nb - b != 4; b += 3) {
      gemm_block_avx2<3, W>(z + b, x + b, blk, K, i0, valid, init);
    }
    for (; nb - b >= 2; b += 2) gemm_block_avx2<2, W>(z + b, x + b, blk, K, i0, valid, init);
    if (nb - b == 1) gemm_block_avx2<1, W>(z + b, x + b, blk, K, i0, valid, init);
  }
}

// run(W{}, base) with the loader W of w's storage and its first weight.
template <typename Run>
void with_storage(const MatView& w, Run&& run) {
  if (w.codes == nullptr) {
    run(F32{}, w.data);
  } else if (w.bf16) {
    run(Bf16{}, w.codes);
  } else {
    run(Fp16{}, w.codes);
  }
}

void gemm_rows_avx2(float* const* z, const float* const* x, const MatView& w, std::int64_t nb,
                    const float* init, float* /*wide*/) {
  if (w.K < 1) return;  // (never: every layer has an input and a state)
  with_storage(w, [&](auto loader, const auto* base) {
    gemm_rows_avx2_t<decltype(loader)>(z, x, base, w.K, w.n, nb, init);
  });
}
#endif

#if defined(__GNUC__) && defined(__x86_64__)
// The AVX-512 GEMM: the same chains again (each element starts from z and adds x[b][k] *
// W[.][k] in increasing k, one FMA each: the AVX2 kernel's bits), a block's 32 sums in two
// zmm registers.  NB rows share every load of NBLK consecutive blocks' k-th slices; NBLK
// keeps more than 8 chains in flight for 1-4 rows (with 8, as 4 rows x 1 block gave, the
// FMAs wait on their latency: 2 blocks for 4 rows measured 1.06-1.12x faster on the B = 4
// rows of bench_cells, AVX-512 Xeon), and halves the broadcasts per FMA for 5-6 rows (24
// accumulators, 6 broadcasts and one weight vector: 31 zmm, no spill; 1.11-1.20x on
// GRU / LSTMP / bidirectional rows of 32-64 batch rows, level on the small ones).  The last
// block may be partial: its z lanes load and store under a mask (its weights are zero).
constexpr std::int64_t kPrefetchK = 8;  // k ahead gemm_pass_avx512 fetches its weights

template <int NB>
constexpr int blocks_per_pass512() {
  return NB == 1 ? 4 : 2;
}

inline __mmask16 lanes(std::int64_t valid) {  // the first min(valid, 16) lanes (valid >= 0)
  return valid >= 16 ? static_cast<__mmask16>(0xFFFF)
                     : static_cast<__mmask16>((1u << static_cast<unsigned>(valid)) - 1u);
}

// `keep` (kKeep: 16-bit weights): each weight as read, widened, stored there in the same
// layout (a panel the next groups of rows read as float32; gemm_rows_avx512_t).
template <int NB, int NBLK, typename W, bool kKeep = false>
SLSTM_AVX512 void gemm_pass_avx512(float* const* z, const float* const* x,
                                   const typename W::T* blk, std::int64_t K, std::int64_t i0,
                                   std::int64_t n, Prefetch next, const float* init,
                                   bool fetch, float* keep = nullptr) {
  PrefetchStream ahead(next, K);
  __mmask16 mask[NBLK][2];
  for (int j = 0; j < NBLK; ++j) {
    const std::int64_t valid = std::min<std::int64_t>(kBlock, n - i0 - j * kBlock);
    mask[j][0] = lanes(valid);
    mask[j][1] = lanes(std::max<std::int64_t>(valid - 16, 0));
  }
  __m512 acc[NB][NBLK][2];
  for (int b = 0; b < NB; ++b) {
    for (int j = 0; j < NBLK; ++j) {
      for (int v = 0; v < 2; ++v) {
        acc[b][j][v] = _mm512_maskz_loadu_ps(
            mask[j][v], (init != nullptr ? init : z[b]) + i0 + j * kBlock + 16 * v);
      }
    }
  }
  std::int64_t k = 0;
  do {  // (a do-while, see gemm_block_loop_avx2)
    ahead.tick();
    // `fetch`: each block's weight stream, kPrefetchK k ahead, into L1 (prefetches never
    // fault: past the end they fetch nothing useful and nothing else).
    for (int j = 0; fetch && j < NBLK; ++j) {
      const char* wa =
          reinterpret_cast<const char*>(blk + j * K * kBlock + (k + kPrefetchK) * kBlock);
      for (int at = 0; at < static_cast<int>(kBlock * sizeof(typename W::T)); at += 64) {
        _mm_prefetch(wa + at, _MM_HINT_T0);
      }
    }
    __m512 xb[NB];
    for (int b = 0; b < NB; ++b) xb[b] = _mm512_set1_ps(x[b][k]);
    for (int j = 0; j < NBLK; ++j) {
      const typename W::T* wk = blk + j * K * kBlock + k * kBlock;
      for (int v = 0; v < 2; ++v) {
        __m512 w = W::load16(wk + 16 * v);
        if constexpr (NB > 1 && W::kPlainLoad) in_register(w);
        if constexpr (kKeep) _mm512_storeu_ps(keep + j * K * kBlock + k * kBlock + 16 * v, w);
        for (int b = 0; b < NB; ++b) acc[b][j][v] = _mm512_fmadd_ps(w, xb[b], acc[b][j][v]);
      }
    }
  } while (++k < K);
  for (int b = 0; b < NB; ++b) {
    for (int j = 0; j < NBLK; ++j) {
      for (int v = 0; v < 2; ++v) {
        _mm512_mask_storeu_ps(z[b] + i0 + j * kBlock + 16 * v, mask[j][v], acc[b][j][v]);
      }
    }
  }
}

// `next`: lines to fetch into L2 meanwhile, spread over the passes.  `keep`: see
// gemm_pass_avx512.
template <int NB, typename W, bool kKeep = false>
SLSTM_AVX512 void gemm_rows_nb_avx512(float* const* z, const float* const* x,
                                      const typename W::T* base, std::int64_t K,
                                      std::int64_t n, Prefetch next, const float* init,
                                      float* keep = nullptr) {
  constexpr int kPass = blocks_per_pass512<NB>();
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  // The passes fetch their weights ahead into L1 (with the hardware's prefetch alone, 5-6
  // rows over a W_h streaming from L3 took ~1.8x the time of 4: GRU H = 2048, B = 6 1.10x
  // faster with it, other rows 1.03-1.15x; bench/results/cpu-prefetch-nb.md), but for one
  // row over weights that stay in L2, whose loop of 8 FMAs per 8 lines lost 4 % to them.
  const bool fetch =
      NB > 1 || 2 * K * blocks * kBlock * static_cast<std::int64_t>(sizeof(typename W::T)) >
                    l2_cache_bytes();
  const auto passes = static_cast<int>(blocks / kPass + blocks % kPass);
  int pass = 0;
  std::int64_t j = 0;
  for (; j + kPass <= blocks; j += kPass, ++pass) {
    gemm_pass_avx512<NB, kPass, W, kKeep>(z, x, base + j * K * kBlock, K, j * kBlock, n,
                                          pass_share(next, pass, passes), init, fetch,
                                          kKeep ? keep + j * K * kBlock : nullptr);
  }
  for (; j < blocks; ++j, ++pass) {
    gemm_pass_avx512<NB, 1, W, kKeep>(z, x, base + j * K * kBlock, K, j * kBlock, n,
                                      pass_share(next, pass, passes), init, fetch,
                                      kKeep ? keep + j * K * kBlock : nullptr);
  }
}

// Up to 6 rows (nb) over all n columns: NB rows share each pass over the blocks.
template <typename W, bool kKeep = false>
void gemm_few_rows_avx512(float* const* z, const float* const* x, const typename W::T* base,
                          std::int64_t K, std::int64_t n, std::int64_t nb, Prefetch next,
                          const float* init, float* keep = nullptr) {
  switch (nb) {
    case 6: gemm_rows_nb_avx512<6, W, kKeep>(z, x, base, K, n, next, init, keep); break;
    case 5: gemm_rows_nb_avx512<5, W, kKeep>(z, x, base, K, n, next, init, keep); break;
    case 4: gemm_rows_nb_avx512<4, W, kKeep>(z, x, base, K, n, next, init, keep); break;
    case 3: gemm_rows_nb_avx512<3, W, kKeep>(z, x, base, K, n, next, init, keep); break;
    case 2: gemm_rows_nb_avx512<2, W, kKeep>(z, x, base, K, n, next, init, keep); break;
    case 1: gemm_rows_nb_avx512<1, W, kKeep>(z, x, base, K, n, next, init, keep); break;
    default: break;
  }
}

template <typename W>
void gemm_rows_avx512_t(float* const* z, const float* const* x, const typename W::T* base,
                        std::int64_t K, std::int64_t n, std::int64_t nb,
                        const float* init, float* wide) {
  if (nb <= 6) {
    gemm_few_rows_avx512<W>(z, x, base, K, n, nb, Prefetch{}, init);
    return;
  }
  // Many rows (an input projection, a large batch): panels of blocks whose weights stay in
  // this core's L2 (a quarter of it) while every group of rows passes over them, instead of
  // all of W streaming past every 6 rows.  Each element is still one pass: the same chain.
  // The groups are evened out (row_cut).  While the rows pass over a panel they fetch the
  // next one into L2 (Prefetch, step_kernels.hpp).  With kWidenGroups groups or more, a
  // panel of 16-bit weights (a BF16 / FP16 session) is widened into `wide` by the first group
  // as it reads it, and the other groups read the float32 values (the same ones: the same
  // bits); the panel is then a quarter of L2 in float32.
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  const std::int64_t groups = (nb + 5) / 6;
  constexpr bool codes = !std::is_same_v<W, F32>;
  const bool widen = codes && wide != nullptr && widens(nb);
  const auto block_bytes = static_cast<std::int64_t>(K * kBlock * sizeof(typename W::T));
  const std::int64_t per =
      panel_blocks(widen ? K * kBlock * static_cast<std::int64_t>(sizeof(float)) : block_bytes);
  for (std::int64_t j0 = 0; j0 < blocks; j0 += per) {
    const std::int64_t c0 = j0 * kBlock, cn = std::min(n, (j0 + per) * kBlock) - c0;
    const std::int64_t next_blocks = std::min(per, blocks - j0 - per);
    const void* next =
        next_blocks > 0 && 2 * blocks * block_bytes > l2_cache_bytes()  // (else W stays in L2)
            ? base + (j0 + per) * K * kBlock
            : nullptr;
    for (std::int64_t g = 0; g < groups; ++g) {
      const std::int64_t r0 = row_cut(nb, g, groups), r1 = row_cut(nb, g + 1, groups);
      float* zp[6];
      for (std::int64_t i = r0; i < r1; ++i) zp[i - r0] = z[i] + c0;
      const Prefetch ahead = prefetch_share(next, next_blocks * block_bytes, g, groups);
      const float* from = init != nullptr ? init + c0 : nullptr;
      const typename W::T* panel = base + j0 * K * kBlock;
      if (!widen) {
        gemm_few_rows_avx512<W>(zp, x + r0, panel, K, cn, r1 - r0, ahead, from);
      } else if (g > 0) {
        gemm_few_rows_avx512<F32>(zp, x + r0, wide, K, cn, r1 - r0, ahead, from);
      } else if constexpr (codes) {
        gemm_few_rows_avx512<W, true>(zp, x + r0, panel, K, cn, r1 - r0, ahead, from, wide);
      }
    }
  }
}

void gemm_rows_avx512(float* const* z, const float* const* x, const MatView& w,
                      std::int64_t nb, const float* init, float* wide) {
  if (w.K < 1) return;  // (never: every layer has an input and a state)
  with_storage(w, [&](auto loader, const auto* base) {
    gemm_rows_avx512_t<decltype(loader)>(z, x, base, w.K, w.n, nb, init, wide);
  });
}
#endif

#if defined(__GNUC__) && defined(__x86_64__)
// The LSTM cell of one row on AVX2: 8 units at a time with the fused kernels' vector sigmoid
// and tanh (simd_math.hpp), c updated in place, the unprojected output into m; with
// peepholes (`peep`: w_i, w_f, w_o [3H], or null) and / or a cell clip (`bound` > 0) in TF's
// LSTMCell order (c clipped before w_o reads it), each peephole term one fused multiply-add,
// the clip a max then a min that keep a NaN (as std::max / std::min with the value first).
// The last H % 8 units go through one padded vector, so every unit gets the same
// instructions wherever it sits (results do not depend on H's alignment, the row, the split
// or the call).  Per element, as lstm_cell (forget_bias is in z already).
SLSTM_AVX2_INLINE void lstm_cell8(const float* zi, const float* zf, const float* zg,
                                  const float* zo, const float* wi, const float* wf,
                                  const float* wo, float bound, float* c, float* m) {
  const __m256 c_prev = _mm256_loadu_ps(c);
  __m256 pi = _mm256_loadu_ps(zi), pf = _mm256_loadu_ps(zf), po = _mm256_loadu_ps(zo);
  if (wi != nullptr) {
    pi = _mm256_fmadd_ps(_mm256_loadu_ps(wi), c_prev, pi);
    pf = _mm256_fmadd_ps(_mm256_loadu_ps(wf), c_prev, pf);
  }
  __m256 c_new = _mm256_fmadd_ps(c_prev, sigmoid256(pf),
                                 _mm256_mul_ps(sigmoid256(pi), tanh256(_mm256_loadu_ps(zg))));
  if (bound > 0.0f) {  // (max / min return their second operand when one is NaN)
    c_new = _mm256_min_ps(_mm256_set1_ps(bound), _mm256_max_ps(_mm256_set1_ps(-bound), c_new));
  }
  if (wo != nullptr) po = _mm256_fmadd_ps(_mm256_loadu_ps(wo), c_new, po);
  _mm256_storeu_ps(c, c_new);
  _mm256_storeu_ps(m, _mm256_mul_ps(tanh256(c_new), sigmoid256(po)));
}

// Units [u0, u1) (u0 a multiple of 8 or u1 == u0).
SLSTM_AVX2 void lstm_extras_avx2(const float* z, std::int64_t H, std::int64_t u0,
                                 std::int64_t u1, float* c, float* m, const float* peep,
                                 float bound) {
  const auto at = [&](int row, std::int64_t u) {
    return peep != nullptr ? peep + row * H + u : nullptr;
  };
  std::int64_t u = u0;
  for (; u + 8 <= u1; u += 8) {
    lstm_cell8(z + kGateI * H + u, z + kGateF * H + u, z + kGateG * H + u, z + kGateO * H + u,
               at(0, u), at(1, u), at(2, u), bound, c + u, m + u);
  }
  if (u >= u1) return;
  const std::int64_t n = u1 - u;
  alignas(32) float q[4][8] = {}, w[3][8] = {}, cc[8] = {}, mm[8];
  for (int g = 0; g < 4; ++g) std::copy_n(z + g * H + u, n, q[g]);
  for (int r = 0; r < 3 && peep != nullptr; ++r) std::copy_n(peep + r * H + u, n, w[r]);
  std::copy_n(c + u, n, cc);
  const bool peeps = peep != nullptr;
  lstm_cell8(q[kGateI], q[kGateF], q[kGateG], q[kGateO], peeps ? w[0] : nullptr,
             peeps ? w[1] : nullptr, peeps ? w[2] : nullptr, bound, cc, mm);
  std::copy_n(cc, n, c + u);
  std::copy_n(mm, n, m + u);
}

SLSTM_AVX2 void lstm_plain_avx2(const float* z, std::int64_t H, std::int64_t u0,
                                std::int64_t u1, float* c, float* m) {
  lstm_extras_avx2(z, H, u0, u1, c, m, nullptr, 0.0f);
}

// The GRU's gates on one row: r and z in place (sigmoid of z[e0 .. e1), r and z being
// z[0 .. 2H)), then the new h from the n block zn, r (rz[0 .. H)), the update gate
// (rz[H .. 2H)) and, with the reset after the product, r scales a (b_hn + W_hn h): h = (1 -
// u) tanh(zn [+ r a]) + u h.  Per element, 8 at a time, the tail padded, as lstm_plain_avx2.
SLSTM_AVX2 void gru_gates_avx2(float* z, std::int64_t e0, std::int64_t e1) {
  std::int64_t u = e0;
  for (; u + 8 <= e1; u += 8) _mm256_storeu_ps(z + u, sigmoid256(_mm256_loadu_ps(z + u)));
  if (u >= e1) return;
  alignas(32) float q[8] = {};
  std::copy_n(z + u, e1 - u, q);
  _mm256_store_ps(q, sigmoid256(_mm256_load_ps(q)));
  std::copy_n(q, e1 - u, z + u);
}

SLSTM_AVX2_INLINE void gru_h8(const float* zn, const float* r, const float* upd, const float* a,
                              float* h) {
  __m256 pre = _mm256_loadu_ps(zn);
  if (a != nullptr) pre = _mm256_add_ps(pre, _mm256_mul_ps(_mm256_loadu_ps(r), _mm256_loadu_ps(a)));
  const __m256 uz = _mm256_loadu_ps(upd);
  const __m256 one_minus = _mm256_sub_ps(_mm256_set1_ps(1.0f), uz);
  _mm256_storeu_ps(h, _mm256_add_ps(_mm256_mul_ps(one_minus, tanh256(pre)),
                                    _mm256_mul_ps(uz, _mm256_loadu_ps(h))));
}

SLSTM_AVX2 void gru_h_avx2(const float* zn, const float* rz, const float* a, float* h,
                           std::int64_t H, std::int64_t u0, std::int64_t u1) {
  std::int64_t u = u0;
  for (; u + 8 <= u1; u += 8) {
    gru_h8(zn + u, rz + u, rz + H + u, a != nullptr ? a + u : nullptr, h + u);
  }
  if (u >= u1) return;
  const std::int64_t n = u1 - u;
  alignas(32) float q[4][8] = {}, hh[8] = {};
  std::copy_n(zn + u, n, q[0]);
  std::copy_n(rz + u, n, q[1]);
  std::copy_n(rz + H + u, n, q[2]);
  if (a != nullptr) std::copy_n(a + u, n, q[3]);
  std::copy_n(h + u, n, hh);
  gru_h8(q[0], q[1], q[2], a != nullptr ? q[3] : nullptr, hh);
  std::copy_n(hh, n, h + u);
}
#endif

// The same in scalar C++ (libm's expf / tanhf through gate_math.hpp): the portable kernels.
void gru_gates_portable(float* z, std::int64_t e0, std::int64_t e1) {
  for (std::int64_t u = e0; u < e1; ++u) z[u] = sigmoidf(z[u]);
}

void gru_h_portable(const float* zn, const float* rz, const float* a, float* h, std::int64_t H,
                    std::int64_t u0, std::int64_t u1) {
  for (std::int64_t u = u0; u < u1; ++u) {
    const float cand = a != nullptr ? tanhf(zn[u] + rz[u] * a[u]) : tanhf(zn[u]);
    const float upd = rz[H + u];
    h[u] = (1.0f - upd) * cand + upd * h[u];
  }
}

void lstm_plain_portable(const float* z, std::int64_t H, std::int64_t u0, std::int64_t u1,
                         float* c, float* m) {
  for (std::int64_t u = u0; u < u1; ++u) {
    lstm_cell(z[kGateI * H + u], z[kGateF * H + u], z[kGateG * H + u], z[kGateO * H + u], 0.0f,
              c[u], &c[u], &m[u]);  // forget_bias is in z's chain already
  }
}

float clip(float v, float bound) {
  return bound > 0.0f ? std::min(std::max(v, -bound), bound) : v;
}

// lstm_extras_avx2 in scalar C++ with libm (the portable kernels).
void lstm_extras_portable(const float* z, std::int64_t H, std::int64_t u0, std::int64_t u1,
                          float* c, float* m, const float* peep, float bound) {
  for (std::int64_t u = u0; u < u1; ++u) {
    const float c_prev = c[u];
    const float zi = z[kGateI * H + u] + (peep ? peep[u] * c_prev : 0.0f);
    const float zf = z[kGateF * H + u] + (peep ? peep[H + u] * c_prev : 0.0f);
    float cn = c_prev * sigmoidf(zf) + sigmoidf(zi) * tanhf(z[kGateG * H + u]);
    cn = clip(cn, bound);
    const float zo = z[kGateO * H + u] + (peep ? peep[2 * H + u] * cn : 0.0f);
    c[u] = cn;
    m[u] = tanhf(cn) * sigmoidf(zo);
  }
}

// One direction's weights as the steps read them.
struct Packed {
  PackedMatrix wx;          // W_x, all G*H rows
  PackedMatrix wh;          // W_h: LSTM all 4H rows; GRU the r and z rows (2H)
  PackedMatrix wh_n;        // GRU: W_h's n rows (H)
  PackedMatrix wproj;       // LSTM with a projection: W_proj (P rows)
  std::vector<float> bias;  // [G*H]: where each chain starts (see pack())
  std::vector<float> bh_n;  // GRU reset_after: b_h of the n block [H]
  std::vector<float> peep;  // LSTM peepholes [3H]
};

// (BF16/FP16: the weights rounded to the precision, docs/precision.md.)
Packed pack(const Model& m, std::size_t l, int d, Precision pr, bool store16, bool amx) {
  const Layer& layer = m.layer(l);
  const LayerSpec& s = layer.spec;
  const CellWeights& w = layer.dir(d);
  const std::int64_t GH = s.gate_rows(), H = s.hidden_size;
  Packed p;
  p.wx = pack_rows(w.w_x, 0, GH, s.input_size, pr, store16, amx);
  if (s.cell == CellKind::kGru) {
    p.wh = pack_rows(w.w_h, 0, 2 * H, H, pr, store16, amx);
    p.wh_n = pack_rows(w.w_h, 2 * H, H, H, pr, store16, amx);
  } else {
    p.wh = pack_rows(w.w_h, 0, GH, s.cell_output_size(), pr, store16, amx);
  }
  // LSTM: + forget_bias on f; GRU r, z: b_x + b_h; n: b_x (+ b_h when the reset comes first:
  // then b_h,n is additive; after, r scales b_h,n + W_h,n h).
  p.bias = m.step_bias(l, d);
  p.bh_n = m.step_bias_hn(l, d);
  p.peep = w.peep;
  if (s.proj_size > 0) p.wproj = pack_rows(w.w_proj, 0, s.proj_size, H, pr, store16, amx);
  return p;
}

// Batch rows per worker below which a stack with bidirectional layers splits the directions
// (the AVX2 GEMM serves rows in blocks of 3).
constexpr std::int64_t kDirectionSplitRows = 3;
// With 2 workers, a call of fewer rows than this splits the directions too: split by rows,
// each worker streams both directions' weights for half the rows, twice the bytes of one
// direction's for every row.  Measured on the 2-vCPU AVX-512 Xeon (always split against
// split by rows, min of 5 alternating rounds): bidirectional LSTM H = 1024 / 512 / 256 at
// B = 16 1.32 / 1.08 / 1.19x faster; at B = 32 mixed (2-layer LSTM H = 256 1.20, H = 512
// 1.01, 2-layer GRU H = 256 0.95), at B = 64 H = 512 0.97.  (With more workers the rule
// above stands: unmeasured there, and the directions take only 2 workers without teams.)
constexpr std::int64_t kDirectionSplitRowsTwoWorkers = 24;
// ... and so does a call of up to this many rows when a direction's W_h (of some layer) is
// larger than a core's L2: the step then streams it from L3 for every row group, and a
// worker with all the rows of one direction reuses each L2 panel of it for twice the rows
// (the AVX-512 GEMM: ~0.82 of the FMA peak at 64 rows against ~0.76 at 32, microbenchmark).
// Measured (2-vCPU AVX-512 Xeon, min of 5-8 alternating rounds, split directions / rows):
// bidirectional LSTM B = 64 H = 512 1.03, H = 1024 1.07; B = 32 H = 512 1.04; GRU B = 64
// H = 1024 1.04, H = 512 1.01; level where W_h fits L2 (2 x 256 LSTM B = 32 / 64 0.99-1.01,
// GRU 0.98), and B = 128 H = 512 0.97 (row split already gives each worker 64 rows).
constexpr std::int64_t kDirectionSplitRowsLargeWh = 64;

// The input projections of a direction's steps run ahead of the steps, as one GEMM over the
// rows of up to this many bytes of pre-activations (each weight block then serves every row
// of the chunk from cache, instead of being streamed again at every step).
constexpr std::int64_t kProjectionChunkBytes = 1 << 20;
// On AMX, a GEMM converts its operand rows to bfloat16 codes in chunks of about this many
// bytes (kept in L2 while every 32-column block of the weights passes over them).
constexpr std::int64_t kAmxChunkBytes = 768 * 1024;

// A forward stack's calls of fewer than this many batch rows per thread may run as one team
// (the GEMMs cut by gate rows, the cell math by units; forward_time_major): a call of fewer
// rows than threads when a step streams at least kTeamMinBytes of weights, one of 1 to 3
// rows per thread from twice that (the rows split already keeps every worker busy there),
// with one worker per kTeamBytesPerWorker.  Below, the 3-5 barriers of a step cost more than
// the split saves: measured on a 2-vCPU AVX-512 Xeon, GRU B = 1 (team / rows time): H = 128
// (384 KiB) 1.45, H = 192 (864 KiB) 0.71, H = 256 (1.5 MiB) 0.67; B = 4: 1.05 at 864 KiB,
// 0.86 at 1.5 MiB (bench/results/bench-cpu-cells.md).
constexpr std::int64_t kTeamRows = 3;
constexpr double kTeamMinBytes = 768.0 * 1024.0;
constexpr double kTeamBytesPerWorker = 384.0 * 1024.0;
constexpr std::int64_t kUnitAlign = 8;  // units per part's step (the AVX2 cell math's width)

// A worker's scratch for the GEMMs.  On AMX (gemm_amx): a chunk of up to `rows` rows of the
// operand as bfloat16 codes (row stride kp, zero past K), and their sums of a 32-column
// block.  With 16-bit weights on the AVX-512 kernels (wide_): a panel of W's blocks widened
// to float32 (gemm_rows_avx512's `wide`).
struct GemmScratch {
  Buffer codes;  // rows x kp codes (in floats' storage)
  Buffer sums;   // rows x 32 floats
  std::int64_t rows = 0, kp = 0;
  Buffer wide;   // wide_panel_floats(K) floats, or none
  std::uint16_t* code_rows() const { return reinterpret_cast<std::uint16_t*>(codes.get()); }
};

// The workers running one step together (step(), team_gemm()): worker `worker` of `workers`,
// meeting at `barrier`; one worker alone is a team of one (no barrier, every part whole).
struct Team {
  int worker = 0, workers = 1;
  Barrier* barrier = nullptr;
  std::vector<float*>* z_offset = nullptr;  // this worker's row pointers for team_gemm
  GemmScratch* scratch = nullptr;           // ... and its GEMM scratch (null: the Work's)
  bool lead() const { return worker == 0; }
  void sync() const {
    if (workers > 1) barrier->wait(workers);
  }
  // This worker's part [a, b) of [0, n), cut at multiples of `align`.
  std::pair<std::int64_t, std::int64_t> part(std::int64_t n, std::int64_t align) const {
    if (workers == 1) return {0, n};
    const std::int64_t pieces = (n + align - 1) / align;
    return {std::min(n, pieces * worker / workers * align),
            std::min(n, pieces * (worker + 1) / workers * align)};
  }
};

class CpuGenericBackend final : public HostBackend {
 public:
  CpuGenericBackend(ModelPtr model, const SessionConfig& config, const KernelChoice& kernel)
      : HostBackend(std::move(model)), precision_(config.precision) {
    const Model& m = *model_;
#if defined(__GNUC__) && defined(__x86_64__)
    const bool avx2 = kernel.kernel != Kernel::kPortable;
    const bool avx512 = kernel.kernel == Kernel::kAvx512;
    gemm_ = avx512 ? gemm_rows_avx512 : avx2 ? gemm_rows_avx2 : gemm_rows_portable;
    lstm_plain_ = avx2 ? lstm_plain_avx2 : lstm_plain_portable;
    lstm_extras_ = avx2 ? lstm_extras_avx2 : lstm_extras_portable;
    gru_gates_ = avx2 ? gru_gates_avx2 : gru_gates_portable;
    gru_h_ = avx2 ? gru_h_avx2 : gru_h_portable;
#else
    const bool avx2 = false, avx512 = false;
    gemm_ = gemm_rows_portable;
    lstm_plain_ = lstm_plain_portable;
    lstm_extras_ = lstm_extras_portable;
    gru_gates_ = gru_gates_portable;
    gru_h_ = gru_h_portable;
#endif
    layer_major_ = m.first_non_forward() >= 0;
    bool bidirectional = false;
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      bidirectional = bidirectional || m.spec(l).directions() == 2;
    }
    plan_.backend = "cpu";
    plan_.path = "fast";
    plan_.precision = precision_name(precision_);
    plan_.params = {{"threads", "1"},
                    {"kernel", avx512 ? "avx512" : avx2 ? "avx2" : "portable"},
                    {"gemm", avx512 ? "AVX-512: a block's 32 sums in 2 zmm, up to 6 rows "
                                      "per load of a weight slice, more rows in panels "
                                      "of blocks that stay in L2"
                             : avx2 ? "AVX2: a block's 32 sums in 4 ymm, up to 3 rows per "
                                      "load of a weight slice (bfloat16 weights: up to 6, "
                                      "16 columns at a time)"
                             : kPortableFma ? "portable (compiler-vectorised, fused multiply-add)"
                                            : "portable (compiler-vectorised, multiply then add)"},
                    {"pointwise", avx2 ? "8 units at a time (AVX2 sigmoid/tanh, "
                                         "simd_math.hpp)"
                                       : "scalar (libm expf/tanhf)"},
                    {"kernel_reason", kernel.why},
                    {"order", layer_major_ ? "layer-major (a layer reads backwards)"
                                           : "time-major (MultiRNNCell)"}};
    const std::int64_t B = config.max_batch;
    const bool caller = config.thread_pool.parallel_for != nullptr;
    const bool shared = !caller && config.settings.cpu_pool == Settings::CpuPool::kShared;
    std::int64_t asked = caller                   ? caller_threads(config)
                         : config.num_threads > 0 ? config.num_threads
                                                  : usable_cpus();
    if (shared) {
      // cpu.pool=shared: the process-wide workers (thread_pool.hpp), as on the BasicLSTMCell
      // path; a session takes no more of them than the pool has.
      try {
        shared_ = acquire_shared_pool(usable_cpus());
      } catch (const std::bad_alloc&) {
        fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the CPU workspace");
      } catch (const std::system_error&) {
        fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot create the CPU worker threads");
      }
      asked = std::min<std::int64_t>(asked, shared_->pool.size());
    }
    // A forward stack whose step streams at least kTeamMinBytes of weights may run a call of
    // few rows as a team: up to one worker per kTeamBytesPerWorker of them.
    double& step_bytes = step_bytes_;
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      const LayerSpec& s = m.spec(l);
      step_bytes += 4.0 * static_cast<double>(
                              s.gate_rows() * (s.input_size + s.cell_output_size()) +
                              s.proj_size * s.hidden_size);
      wh_over_l2_ = wh_over_l2_ || 4 * s.gate_rows() * s.cell_output_size() > l2_cache_bytes();
    }
    // (cpu.team=always: every stack, as many workers as asked; off: none.)  A stack with a
    // bidirectional layer splits its directions first: then each direction may be a team.
    const Settings::Team team_setting = config.settings.cpu_team;
    team_always_ = team_setting == Settings::Team::kAlways;
    spin_ns_ = config.settings.cpu_spin_us * 1000;
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      const LayerSpec& s = m.spec(l);
      weight_floats_ += static_cast<double>(s.directions()) *
                        static_cast<double>(s.gate_rows() * (s.input_size + s.cell_output_size()) +
                                            s.proj_size * s.hidden_size);
    }
    rates_ = fixed_thresholds(avx512);  // the fast path's fixed rates for the kernel family
    if (team_setting != Settings::Team::kOff &&
        (step_bytes >= kTeamMinBytes || team_setting == Settings::Team::kAlways)) {
      const double by_bytes = team_setting == Settings::Team::kAlways
                                  ? 256.0
                                  : std::max(2.0, step_bytes / kTeamBytesPerWorker);
      const double room = static_cast<double>(bidirectional ? asked / 2 : asked);
      team_workers_ = static_cast<int>(std::min<double>({room, by_bytes, 256.0}));
    }
    // Workers split the batch rows (rows never interact: no barrier); more than one per row
    // would idle, except that a bidirectional stack's two directions can take two workers
    // (or two teams) whatever the batch, and a team any.  The results do not depend on the
    // split (see "Determinism" above).
    const std::int64_t split_workers =
        bidirectional ? std::max<std::int64_t>(2, 2 * std::max(team_workers_, 1)) : team_workers_;
    threads_ = static_cast<int>(
        std::min<std::int64_t>({asked, std::max<std::int64_t>(B, split_workers), 256}));
    team_workers_ = std::min(team_workers_, bidirectional ? threads_ / 2 : threads_);
    if (team_workers_ < 2) team_workers_ = 0;
    plan_.params[0].second = std::to_string(threads_);
    plan_.settings = config.settings.cpu_params();
    direction_split_ = bidirectional && threads_ >= 2;
    const std::string rows_split =
        "batch rows (each worker runs its rows through every layer and step; no barrier)";
    const std::string team_text =
        team_workers_ < 2
            ? std::string()
            : "a team of " + std::to_string(team_workers_) +
                  " workers on every row (each GEMM cut by gate rows, the cell math by units; "
                  "3-5 barriers per layer and step) with " +
                  (team_always_ ? "fewer than " + std::to_string(kTeamRows) +
                                      " rows per thread (cpu.team=always)"
                   : step_bytes_ >= 2 * kTeamMinBytes
                       ? "fewer than " + std::to_string(kTeamRows) + " rows per thread"
                       : std::string("fewer rows than threads")) +
                  " (a step streams " +
                  std::to_string(static_cast<long long>(step_bytes_ / 1024.0)) +
                  " KiB of weights)";
    plan_.params.push_back(
        {"split", direction_split_
                      ? "per call: with fewer than " +
                            (threads_ != 2 ? std::to_string(kDirectionSplitRows) +
                                                 " rows per thread"
                             : wh_over_l2_
                                 ? std::to_string(kDirectionSplitRowsLargeWh + 1) +
                                       " rows (a W_h larger than the core's L2)"
                                 : std::to_string(kDirectionSplitRowsTwoWorkers) + " rows") +
                            " the directions (2 workers, each every row of "
                            "its direction, two barriers per layer" +
                            (team_text.empty() ? std::string(")")
                                               : "; each direction as " + team_text + ")") +
                            ", else batch rows"
                  : team_workers_ >= 2 ? "per call: " + team_text + ", else " + rows_split
                                       : rows_split});
    // BF16/FP16 on the AVX2 (with F16C) and AVX-512 kernels: every weight matrix as 16-bit
    // codes (a step streams half the bytes), unless cpu.wh16=off; same numbers either way.
    const bool can16 = stores_wh16(kernel.kernel, precision_);
    const bool store16 = can16 && config.settings.cpu_wh16;
    // BF16 on AMX's tiles (cpu.amx, as on the BasicLSTMCell path): every GEMM.
    const AmxChoice amx = choose_amx(config.settings, kernel.kernel, precision_);
    amx_ = amx.use;
    wide_ = store16 && avx512 && !amx_;
    if (rounds_operands(precision_)) {
      plan_.params.push_back(
          {"operands", std::string("weights rounded to ") + precision_name(precision_) +
                           " once; x, h, m and r o h rounded where they enter a product; sums "
                           "float32; " +
                           (amx_      ? "weights stored in 16 bits as AMX tiles"
                            : wide_    ? "weights stored in 16 bits, converted once per "
                                         "panel where 4 or more groups of 6 rows read it"
                            : store16 ? "weights stored in 16 bits"
                            : can16   ? "weights stored as float32 (cpu.wh16=off)"
                                      : "weights stored as float32 (what this kernel reads)")});
    }
    plan_.params.emplace_back("amx", amx.why);
    for (auto& [key, value] : plan_.params) {
      if (key == "gemm" && amx_) {
        value = "AMX: 32 columns of W per pass (two 16-column tiles) over blocks of up to 32 "
                "rows (two 16-row tiles) of bfloat16 codes, chunks of rows kept in L2";
      }
    }
    try {
      for (std::size_t l = 0; l < m.layers().size(); ++l) {
        const LayerSpec& s = m.spec(l);
        plan_.layers.push_back({"generic",
                                "the fused kernels run forward BasicLSTMCell layers only; "
                                "batched float32 GEMMs over packed weights",
                                {{"cell", cell_name(s.cell)},
                                 {"direction", direction_name(s.direction)},
                                 {"hidden", std::to_string(s.hidden_size)}}});
        packed_.emplace_back();
        for (int d = 0; d < s.directions(); ++d) {
          packed_.back().push_back(pack(m, l, d, precision_, store16, amx_));
        }
      }
      state_.resize(m.state_count(B));
      const std::int64_t share = (B + threads_ - 1) / threads_;
      work_.resize(static_cast<std::size_t>(threads_));
      for (std::size_t i = 0; i < work_.size(); ++i) {
        // Worker 0 may take every row of a call: alone (workers asleep: forward), with the
        // directions split, or as a team's lead (every worker works on worker 0's Work, its
        // own: team_gemm's row pointers); with the directions split, worker 1 too (or the
        // second direction's team's lead: worker team_workers_).
        const bool all_rows =
            i == 0 ||
            (direction_split_ && (i == 1 || i == static_cast<std::size_t>(team_workers_)));
        work_[i].allocate(all_rows ? B : share, config.max_time, m, rounds_operands(precision_),
                          amx_, wide_);
      }
      if (team_workers_ >= 2) {
        for (Work& w : work_) w.z_offset.resize(work_[0].zx_ptr.size());
      }
      if (layer_major_) {
        const std::size_t n = product({B, config.max_time, m.max_width()},
                                      "workspace (max_batch x max_time x widest layer)");
        seq_[0].resize(n);
        seq_[1].resize(n);
      }
      state_ptr_base_ = state_.data();
      seq_base_[0] = seq_[0].data();
      seq_base_[1] = seq_[1].data();
      if (caller) {
        caller_ = std::make_unique<CallerPool>(config.thread_pool,
                                               config.settings.cpu_pool_join_us * 1000);
        plan_.params.emplace_back("pool", describe_caller_pool(config, threads_));
      } else if (shared) {
        plan_.params.emplace_back("pool", describe_shared_pool(shared_->pool.size()));
      } else {
        if (threads_ > 1) pool_ = std::make_unique<Pool>(threads_);
        plan_.params.emplace_back("pool", describe_session_pool(threads_));
      }
    } catch (const std::bad_alloc&) {
      fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the CPU workspace");
    } catch (const std::length_error&) {
      fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the CPU workspace");
    } catch (const std::system_error&) {
      fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot create the CPU worker threads");
    }
  }

  // The plan, with how many calls so far ran alone because their workers were asleep.
  Plan plan() const override {
    return caller_ ? with_short_team_count(plan_, short_team_)
                   : with_alone_count(plan_, alone_asleep_);
  }

  void forward(const ForwardCall& call) override {
    const FlushDenormals flush;  // as TensorFlow's kernels (thread_pool.hpp)
    load_initial_state(call, state_.data());
    // Fewer than 3 rows per worker leave the GEMMs' row blocks short (each worker streams
    // every weight for 1-2 rows): a stack with bidirectional layers then splits the
    // directions between 2 workers instead (forward_by_direction).
    const bool by_direction =
        direction_split_ &&
        (call.batch < kDirectionSplitRows * threads_ ||
         (threads_ == 2 && (call.batch < kDirectionSplitRowsTwoWorkers ||
                            (wh_over_l2_ && call.batch <= kDirectionSplitRowsLargeWh))));
    // Likewise a call runs as a team (each direction's, with the directions split).
    const bool team =
        team_workers_ >= 2 && call.batch < kTeamRows * threads_ &&
        (team_always_ || call.batch < threads_ || step_bytes_ >= 2 * kTeamMinBytes);
    int active =
        by_direction ? 2 * (team ? team_workers_ : 1)
        : team       ? team_workers_
                     : static_cast<int>(std::min<std::int64_t>(threads_, call.batch));
    // With cpu.pool=shared, the process-wide workers if no other call holds them, else this
    // thread alone (same bits: every split gives them).
    Pool* pool = pool_.get();
    std::unique_lock<std::mutex> taken;
    if (active > 1 && shared_) {
      taken = std::unique_lock<std::mutex>(shared_->taken, std::try_to_lock);
      pool = taken.owns_lock() ? &shared_->pool : nullptr;
      if (pool == nullptr) active = 1;
    }
    if (pool != nullptr && pool->orphaned()) active = 1;  // a child process (thread_pool.hpp)
    // A call that finds every worker asleep runs on this thread alone where waking them
    // would cost it more than they would take off (split.hpp alone_when_asleep; one core's
    // time from the weights a step reads and their FLOPs for the call's rows), and wakes
    // them to spin for the next call.  Same bits: every split gives them.
    if (active > 1 && pool != nullptr && pool->sleeping() == pool->size() - 1) {
      const double rows = static_cast<double>(call.batch), T = static_cast<double>(call.time);
      const double one_core_s =
          one_core_seconds(rows * T * 2.0 * weight_floats_, T * 4.0 * weight_floats_, rates_);
      if (alone_when_asleep(one_core_s, active)) {
        active = 1;
        if (spin_ns_ > 0) pool->nudge(spin_ns_);
        alone_asleep_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    Job job{this, &call, active, active > 1 && by_direction, active > 1 && team, active};
    if (active == 1) {
      run_share(job, 0);
    } else if (caller_) {
      if (caller_->run(&CpuGenericBackend::run_member_entry, &CpuGenericBackend::choose_team,
                       &job, active) < active) {
        short_team_.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      pool->run(&CpuGenericBackend::run_share_entry, &job, active, spin_ns_);
    }
    store_final_state(call, state_.data());
  }

 private:
  // One worker's per-step workspace, for up to `rows` batch rows.
  struct Work {
    std::vector<float> z;      // pre-activations of a step's rows [rows][G*H]
    std::vector<float> aux;    // per row [H]: m, r o h, or b_h,n + W_h,n h
    std::vector<float> y[2];   // layer outputs of a step's rows (time-major)
    std::vector<float> xq, hq;  // BF16/FP16: a step's rows of x and h, rounded
    std::vector<float> pxq;     // BF16/FP16: a projection chunk's inputs, rounded
    std::int64_t xq_width = 0, hq_width = 0;  // their row strides
    std::vector<float*> z_ptr, zn_ptr, aux_ptr, state_ptr, c_ptr, out_ptr;
    std::vector<float*> z_offset;  // team_gemm's row pointers (its own, in a team)
    std::vector<const float*> x_ptr, aux_cptr, xq_ptr, hq_ptr;
    std::vector<std::int64_t> rows;  // the batch rows of a step
    // The input projection of up to zx_steps steps of the rows, done before their steps
    // (project_chunk): [zx_steps * rows][G*H], with its row pointers, and each step's rows.
    std::vector<float> zx;
    std::vector<float*> zx_ptr, zx_step;
    std::vector<const float*> px_ptr;
    std::int64_t zx_steps = 0;
    GemmScratch scratch;  // this worker's (gemm_amx, the widened panels)
    // `rounding`: a BF16/FP16 session (the chunk's inputs are rounded into pxq first).
    // `amx`: the GEMMs run on AMX tiles (the scratch of gemm_amx).  `wide`: the GEMMs may
    // widen 16-bit weights (gemm_rows_avx512), a panel for any layer's K.
    void allocate(std::int64_t n, std::int64_t max_time, const Model& m, bool rounding,
                  bool on_amx, bool wide) {
      xq_width = std::max(m.max_width(), m.input_size());
      const std::int64_t per_row =
          std::max<std::int64_t>(4 * m.max_hidden(), rounding ? xq_width : 0);
      const std::int64_t per_step = std::max<std::int64_t>(1, n * per_row * 4);
      zx_steps = std::clamp<std::int64_t>(kProjectionChunkBytes / per_step, 1,
                                          std::max<std::int64_t>(max_time, 1));
      zx.resize(product({zx_steps, n, 4, m.max_hidden()}, "workspace"));
      if (rounding) pxq.resize(product({zx_steps, n, xq_width}, "workspace"));
      zx_ptr.resize(static_cast<std::size_t>(zx_steps * n));
      px_ptr.resize(zx_ptr.size());
      zx_step.resize(static_cast<std::size_t>(n));
      z.resize(product({n, 4, m.max_hidden()}, "workspace"));
      aux.resize(product({n, m.max_hidden()}, "workspace"));
      y[0].resize(product({n, m.max_width()}, "workspace"));
      y[1].resize(y[0].size());
      hq_width = m.max_hidden();
      xq.resize(product({n, xq_width}, "workspace"));
      hq.resize(product({n, hq_width}, "workspace"));
      const auto r = static_cast<std::size_t>(n);
      for (auto* v : {&z_ptr, &zn_ptr, &aux_ptr, &state_ptr, &c_ptr, &out_ptr, &z_offset}) {
        v->resize(r);
      }
      for (auto* v : {&x_ptr, &aux_cptr, &xq_ptr, &hq_ptr}) v->resize(r);
      rows.resize(r);
      if (on_amx) {
        // Chunks of rows whose codes stay in L2 (kAmxChunkBytes), in whole blocks of 32
        // rows, no more than a GEMM ever gets (a projection chunk's).  K: any layer's input,
        // output or hidden size, padded to whole tiles.
        const std::int64_t K = std::max({xq_width, m.max_hidden(), std::int64_t{1}});
        GemmScratch& s = scratch;
        s.kp = (K + kAmxK - 1) / kAmxK * kAmxK;
        s.rows = std::min(
            std::clamp<std::int64_t>(kAmxChunkBytes / (2 * s.kp) / kMaxAmxRows, 1, 12) *
                kMaxAmxRows,
            zx_steps * n);
        s.codes = cpu::allocate((product({s.rows, s.kp}, "workspace") + 1) / 2, false);
        s.sums = cpu::allocate(product({s.rows, 32}, "workspace"), false);
      }
      if (wide) {
        const std::int64_t K = std::max({xq_width, m.max_hidden(), std::int64_t{1}});
        scratch.wide = cpu::allocate(static_cast<std::size_t>(wide_panel_floats(K)), false);
      }
    }
  };

  struct Job {
    CpuGenericBackend* self;
    const ForwardCall* call;
    int workers;
    bool by_direction;  // forward_by_direction, else the batch rows split ...
    bool team;          // ... or every row by a team (forward_time_major)
    int members;        // threads running the shares: `workers`, or fewer in the rows split
  };
  static void run_share_entry(void* ctx, int worker) {
    const Job& job = *static_cast<const Job*>(ctx);
    job.self->run_share(job, worker);
  }
  // On the caller's pool (CallerPool): a team of k members.  The directions split and the
  // team pass barriers and need `workers` members; with fewer, the call takes the rows split
  // (any split gives the same bits), each member running shares member, member + k, ... in
  // turn (rows never interact), each share in its own Work as with a worker of its own.
  static int choose_team(void* ctx, int k) {
    Job& job = *static_cast<Job*>(ctx);
    if (k < job.workers) {
      if (job.by_direction || job.team) {
        job.by_direction = job.team = false;
        job.workers = static_cast<int>(
            std::min<std::int64_t>(job.self->threads_, job.call->batch));
      }
      job.members = std::min(k, job.workers);
    }
    return job.members;
  }
  static void run_member_entry(void* ctx, int member) {
    const Job& job = *static_cast<const Job*>(ctx);
    for (int share = member; share < job.workers; share += job.members) {
      job.self->run_share(job, share);
    }
  }
  // Worker `worker`'s rows [b0, b1) of the call, through every layer and step.
  void run_share(const Job& job, int worker) {
    const std::int64_t B = job.call->batch;
    const std::int64_t b0 = B * worker / job.workers, b1 = B * (worker + 1) / job.workers;
    Work& w = work_[static_cast<std::size_t>(worker)];
    if (job.by_direction) {
      forward_by_direction(*job.call, worker, job.workers, job.workers / 2);
    } else if (job.team) {
      const Team team{worker, job.workers, &barrier_, &w.z_offset, &w.scratch};
      if (layer_major_) {
        forward_layer_major(*job.call, 0, B, work_[0], team);
      } else {
        forward_time_major(*job.call, 0, B, work_[0], team);
      }
    } else if (layer_major_) {
      forward_layer_major(*job.call, b0, b1, w);
    } else {
      forward_time_major(*job.call, b0, b1, w);
    }
  }

  std::int64_t row_of(const ForwardCall& c, std::int64_t t, std::int64_t b) const {
    return c.layout == SLSTM_TIME_MAJOR ? t * c.batch + b : b * c.time + t;
  }

  // Row b's piece `kind` (0 = c, 1 = h) of direction d of layer l in a packed state of B rows.
  float* piece(std::size_t l, int d, int kind, std::int64_t B, std::int64_t b) const {
    const Model& m = *model_;
    const LayerSpec& s = m.spec(l);
    const int p = d * s.cell_state_parts() + (s.cell == CellKind::kGru ? 0 : kind);
    return state_ptr_base_ + m.state_offset(B, l, p) + b * m.state_layout().width(l, p);
  }

  // One step of direction d of layer l for the n rows w.rows[0..n): input w.x_ptr[i], the
  // cell's output (width R) written to w.out_ptr[i].
  // With `zx` (project_chunk's rows for these n rows), the input part of the chains is
  // taken from there instead of computed here: the same chains, the same bits.  The step
  // then sums into those rows in place (each is read by this step only).
  // With a team of several workers (forward_time_major's gate split), every worker calls it
  // with the lead's Work `w`: the lead sets the step up, each GEMM is cut by gate rows and
  // the cell math by units (Team::part), the phases separated by the team's barrier; each
  // element gets the instructions it gets alone, so the bits do not depend on the team.
  // h_zero: every row's h is the zero state (the call's first step of this direction, no
  // initial_state): the recurrent products are skipped.  Each would add a sum of zeros (the
  // weights are finite) to a chain, which changes nothing but a -0 into +0, and no gate tells
  // -0 from +0 there: sigmoid(-0) = sigmoid(+0); tanh(-0) = -0 meets c = f * 0 + i * tanh(g)
  // (and the GRU's (1 - u) tanh(n) + u * 0) only as a term added to +0, which gives +0.
  // The outputs and states are the bits of a call from explicit zeros (tests/test_layers.cpp).
  void step(std::size_t l, int d, std::int64_t B, std::int64_t n, Work& w, bool h_zero,
            float* const* zx = nullptr, const Team& team = Team()) const {
    const Model& m = *model_;
    const LayerSpec& s = m.spec(l);
    const Packed& p = packed_[l][static_cast<std::size_t>(d)];
    const std::int64_t H = s.hidden_size, GH = s.gate_rows(), R = s.cell_output_size();
    const bool rounding = rounds_operands(precision_);
    if (team.lead()) {
      for (std::int64_t i = 0; i < n; ++i) {
        w.z_ptr[i] = zx != nullptr ? zx[i] : w.z.data() + i * GH;  // (else W_x's GEMM: bias)
        const std::int64_t b = w.rows[i];
        w.state_ptr[i] = piece(l, d, 1, B, b);
        w.c_ptr[i] = s.cell == CellKind::kLstm ? piece(l, d, 0, B, b) : nullptr;
        w.aux_ptr[i] = w.aux.data() + i * H;
        w.aux_cptr[i] = w.aux_ptr[i];
        w.zn_ptr[i] = w.z_ptr[i] + 2 * H;  // GRU: the n block
      }
      if (rounding) {
        // The products' operands x and h, rounded (the state keeps its float32 h).
        for (std::int64_t i = 0; i < n; ++i) {
          float* xr = w.xq.data() + i * w.xq_width;
          float* hr = w.hq.data() + i * w.hq_width;
          if (zx == nullptr) {  // (else projected ahead, from rounded inputs)
            round_floats(precision_, w.x_ptr[i], xr, static_cast<std::size_t>(s.input_size));
          }
          if (!h_zero) round_floats(precision_, w.state_ptr[i], hr, static_cast<std::size_t>(R));
          w.xq_ptr[i] = xr;
          w.hq_ptr[i] = hr;
        }
      }
    }
    team.sync();
    const float* const* h = rounding ? w.hq_ptr.data() : w.state_ptr.data();
    const float* const* x = rounding ? w.xq_ptr.data() : w.x_ptr.data();
    if (zx == nullptr) {
      team_gemm(team, w, w.z_ptr.data(), x, p.wx, n, false, p.bias.data());
      if (p.wx.n != p.wh.n) team.sync();  // (GRU: W_x's 3H rows are cut elsewhere than W_h's 2H)
    }
    if (!h_zero) team_gemm(team, w, w.z_ptr.data(), h, p.wh, n);
    team.sync();
    const auto [u0, u1] = team.part(H, kUnitAlign);
    if (s.cell == CellKind::kLstm) {
      for (std::int64_t i = 0; i < n; ++i) {
        if (!s.peepholes && s.cell_clip == 0.0f) {
          lstm_plain_(w.z_ptr[i], H, u0, u1, w.c_ptr[i], w.aux_ptr[i]);
        } else {
          lstm_extras_(w.z_ptr[i], H, u0, u1, w.c_ptr[i], w.aux_ptr[i],
                       s.peepholes ? p.peep.data() : nullptr, s.cell_clip);
        }
        if (s.proj_size > 0 && rounding) {  // W_proj's operand m
          round_floats(precision_, w.aux_ptr[i] + u0, w.aux_ptr[i] + u0,
                     static_cast<std::size_t>(u1 - u0));
        }
      }
      if (s.proj_size > 0) {
        team.sync();  // m complete
        // h = W_proj m into the state's h, from zero (each worker its rows of W_proj).
        team_gemm(team, w, w.state_ptr.data(), w.aux_cptr.data(), p.wproj, n, /*from_zero=*/true);
        team.sync();
        const auto [v0, v1] = team.part(R, kUnitAlign);
        for (std::int64_t i = 0; i < n; ++i) {
          if (s.proj_clip > 0.0f) {
            for (std::int64_t u = v0; u < v1; ++u) {
              w.state_ptr[i][u] = clip(w.state_ptr[i][u], s.proj_clip);
            }
          }
          std::copy(w.state_ptr[i] + v0, w.state_ptr[i] + v1, w.out_ptr[i] + v0);
        }
      } else {
        for (std::int64_t i = 0; i < n; ++i) {
          std::copy(w.aux_ptr[i] + u0, w.aux_ptr[i] + u1, w.state_ptr[i] + u0);
          std::copy(w.aux_ptr[i] + u0, w.aux_ptr[i] + u1, w.out_ptr[i] + u0);
        }
      }
    } else {
      // r and z: the recurrent part of their chains is in; their gates, and what the n
      // block's product reads.
      for (std::int64_t i = 0; i < n; ++i) {
        float* z = w.z_ptr[i];
        gru_gates_(z, u0, u1);
        gru_gates_(z, H + u0, H + u1);
        float* a = w.aux_ptr[i];
        if (s.reset_after) {
          std::copy(p.bh_n.data() + u0, p.bh_n.data() + u1, a + u0);  // b_h,n + W_h,n h ...
        } else if (!h_zero) {
          const float* hs = w.state_ptr[i];  // r o h of the float32 state h (then rounded)
          for (std::int64_t u = u0; u < u1; ++u) a[u] = z[u] * hs[u];
          if (rounding) {
            round_floats(precision_, a + u0, a + u0, static_cast<std::size_t>(u1 - u0));
          }
        }
      }
      team.sync();
      if (h_zero) {
        // (W_h,n times h = 0, or times r o h = 0)
      } else if (s.reset_after) {
        team_gemm(team, w, w.aux_ptr.data(), h, p.wh_n, n);  // ... then scaled by r
      } else {
        team_gemm(team, w, w.zn_ptr.data(), w.aux_cptr.data(), p.wh_n, n);
      }
      team.sync();
      for (std::int64_t i = 0; i < n; ++i) {
        const float* zn = w.zn_ptr[i];
        gru_h_(zn, w.z_ptr[i], s.reset_after ? w.aux_ptr[i] : nullptr, w.state_ptr[i], H, u0,
               u1);
        std::copy(w.state_ptr[i] + u0, w.state_ptr[i] + u1, w.out_ptr[i] + u0);
      }
    }
    team.sync();  // the step's state and outputs complete
  }

  // z[i] += x[i] . W for the n rows: this worker's rows of W (all of them alone).  Every
  // GEMM of a step that writes the same z is cut at the same rows, so each element's chain
  // stays with one worker.
  // from_zero: z's rows of this worker set to 0 first.  init: every row's chains start from
  // init (W.n values, a bias) instead of from z.
  // The worker's scratch is team.scratch, or w's alone.
  void team_gemm(const Team& team, Work& w, float* const* z, const float* const* x,
                 const PackedMatrix& W, std::int64_t n, bool from_zero = false,
                 const float* init = nullptr, bool widen = true) const {
    const auto [r0, r1] = team.part(W.n, kBlock);
    if (r0 >= r1) return;
    if (from_zero) {
      for (std::int64_t i = 0; i < n; ++i) std::fill(z[i] + r0, z[i] + r1, 0.0f);
    }
    float* const* zo = z;
    if (team.workers > 1) {
      float** offset = team.z_offset->data();
      for (std::int64_t i = 0; i < n; ++i) offset[i] = z[i] + r0;
      zo = offset;
    }
    const MatView v = W.rows(r0, r1);
    const float* const init_r = init != nullptr ? init + r0 : nullptr;
    GemmScratch& s = team.scratch != nullptr ? *team.scratch : w.scratch;
    if (W.amx) {
      gemm_amx(zo, x, v, n, init_r, s);
    } else {
      gemm_(zo, x, v, n, init_r, widen ? s.wide.get() : nullptr);
    }
  }

  // gemm_'s product on AMX tiles (a BF16 session, choose_amx): per chunk of up to s.rows
  // rows, their x as bfloat16 codes (exact: x is rounded already), then gemm_rows_amx.
  static void gemm_amx(float* const* z, const float* const* x, const MatView& v,
                       std::int64_t nb, const float* init, GemmScratch& s) {
#if defined(__GNUC__) && defined(__x86_64__)
    std::uint16_t* const codes = s.code_rows();
    for (std::int64_t c0 = 0; c0 < nb; c0 += s.rows) {
      const std::int64_t rows = std::min(s.rows, nb - c0);
      for (std::int64_t i = 0; i < rows; ++i) {
        std::uint16_t* row = codes + i * s.kp;
        round_to_codes(Precision::kBf16, x[c0 + i], row, static_cast<std::size_t>(v.K));
        std::fill(row + v.K, row + v.k_tiles * kAmxK, std::uint16_t{0});
      }
      gemm_rows_amx(z + c0, codes, s.kp, rows, v.tiles, v.k_tiles, v.n, init, s.sums.get());
    }
#else
    (void)z, (void)x, (void)v, (void)nb, (void)init, (void)s;  // (never: amx_ needs x86-64)
#endif
  }

  void add_residual(std::size_t l, const float* x, float* y) const {  // (per row)
    const LayerSpec& s = model_->spec(l);
    if (!s.residual) return;
    for (std::int64_t u = 0; u < s.output_size(); ++u) y[u] += x[u];
  }

  // Rows [b0, b1) through every step and layer.  In a team (the gate split), every worker
  // runs this for the same rows on the lead's Work `w`: the lead keeps the books (row lists,
  // pointers, residuals, the caller's output), step() and project_chunk() share the work.
  void forward_time_major(const ForwardCall& call, std::int64_t b0, std::int64_t b1, Work& w,
                          const Team& team = Team()) const {
    const Model& m = *model_;
    const std::int64_t B = call.batch, T = call.time, D = m.input_size(), W = m.output_size();
    const std::size_t L = m.layers().size();
    const auto valid = [&](std::int64_t b, std::int64_t k) {
      return call.lengths == nullptr || k < call.lengths[b];
    };
    // Layer 0's input is the call's: its projections run ahead, w.zx_steps steps at a time
    // (project_chunk); the layers above project per step (their input is the step below).
    const bool ahead = true;
    std::int64_t next = 0;  // the next projected row of layer 0
    for (std::int64_t t = 0; t < T; ++t) {
      if (ahead && t % w.zx_steps == 0) {
        std::int64_t nr = 0;
        for (std::int64_t k = t; k < std::min(T, t + w.zx_steps); ++k) {
          for (std::int64_t b = b0; b < b1; ++b) {
            if (!valid(b, k)) continue;
            if (team.lead()) {
              w.px_ptr[static_cast<std::size_t>(nr)] = call.input + row_of(call, k, b) * D;
            }
            ++nr;
          }
        }
        if (nr > 0) project_chunk(0, 0, nr, b1 - b0, w, team);
        next = 0;
      }
      std::int64_t n = 0;
      for (std::int64_t b = b0; b < b1; ++b) {
        if (!valid(b, t)) continue;
        if (team.lead()) w.rows[n] = b;
        ++n;
      }
      const float* in = nullptr;
      std::int64_t in_width = D;
      for (std::size_t l = 0; l < L; ++l) {
        const std::int64_t width = m.spec(l).output_size();
        float* y = w.y[l % 2].data();
        if (team.lead()) {
          for (std::int64_t i = 0; i < n; ++i) {
            w.x_ptr[i] =
                l == 0 ? call.input + row_of(call, t, w.rows[i]) * D : in + i * in_width;
            w.out_ptr[i] = y + i * width;
            if (l == 0 && ahead) {
              w.zx_step[static_cast<std::size_t>(i)] =
                  w.zx_ptr[static_cast<std::size_t>(next++)];
            }
          }
        }
        step(l, 0, B, n, w, t == 0 && call.initial_state == nullptr,
             l == 0 && ahead ? w.zx_step.data() : nullptr, team);
        if (team.lead()) {
          for (std::int64_t i = 0; i < n; ++i) add_residual(l, w.x_ptr[i], w.out_ptr[i]);
        }
        in = y;
        in_width = width;
      }
      if (call.output == nullptr || !team.lead()) continue;
      for (std::int64_t b = b0; b < b1; ++b) {
        std::fill_n(call.output + row_of(call, t, b) * W, W, 0.0f);
      }
      for (std::int64_t i = 0; i < n; ++i) {
        std::memcpy(call.output + row_of(call, t, w.rows[i]) * W, in + i * W,
                    static_cast<std::size_t>(W) * sizeof(float));
      }
    }
  }

  // The layers' outputs live in seq_ with one row stride for every layer (the widest), so
  // that the rows of different workers never overlap whatever layer each worker is on (with
  // each layer's own width as the stride, the time-major layout's interleaved rows of two
  // workers on layers of different widths would).
  // In a team (a stack with reverse layers, no bidirectional one), every worker runs this
  // for the same rows on the lead's Work; the lead finishes each layer and the call.
  void forward_layer_major(const ForwardCall& call, std::int64_t b0, std::int64_t b1,
                           Work& w, const Team& team = Team()) const {
    const Model& m = *model_;
    const std::int64_t stride = m.max_width();
    const float* in = call.input;
    std::int64_t in_stride = m.input_size();
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      float* out = seq_base_[l % 2];
      for (int d = 0; d < m.spec(l).directions(); ++d) {
        run_direction(call, l, d, b0, b1, in, in_stride, out, w, team);
      }
      if (team.lead()) finish_layer(call, l, b0, b1, in, in_stride, out);
      team.sync();  // the layer's output complete before the next reads it
      in = out;
      in_stride = stride;
    }
    if (team.lead()) copy_output(call, b0, b1, in);
  }

  // Layer-major with the directions split (direction_split_): worker `worker` of 2 runs
  // direction `worker` of every bidirectional layer for every batch row (worker 0 the one
  // direction of the others), each streaming only its own direction's weights; the workers
  // meet after each layer's directions and after its residual / zeroing pass, which they
  // share by rows.  Same steps, rows and operations as forward_layer_major: the same bits.
  // With `per_direction` > 1 workers per direction (2 x per_direction workers), each
  // direction runs as a team of its own (lead: worker 0 or per_direction).
  void forward_by_direction(const ForwardCall& call, int worker, int workers,
                            int per_direction) {
    const Model& m = *model_;
    const std::int64_t B = call.batch, stride = m.max_width();
    const std::int64_t r0 = B * worker / workers, r1 = B * (worker + 1) / workers;
    const int mine = worker / per_direction;  // this worker's direction
    const Team team{worker % per_direction, per_direction,
                    &direction_barrier_[static_cast<std::size_t>(mine)],
                    &work_[static_cast<std::size_t>(worker)].z_offset,
                    &work_[static_cast<std::size_t>(worker)].scratch};
    Work& w = work_[static_cast<std::size_t>(mine * per_direction)];
    const float* in = call.input;
    std::int64_t in_stride = m.input_size();
    for (std::size_t l = 0; l < m.layers().size(); ++l) {
      float* out = seq_base_[l % 2];
      const int dirs = m.spec(l).directions();
      for (int d = mine; d < dirs; d += 2) {
        run_direction(call, l, d, 0, B, in, in_stride, out, w, team);
      }
      barrier_.wait(workers);  // both directions of every row written
      finish_layer(call, l, r0, r1, in, in_stride, out);
      barrier_.wait(workers);  // the layer's output complete before the next reads it
      in = out;
      in_stride = stride;
    }
    copy_output(call, r0, r1, in);
  }


  // The input part of the pre-activations of n rows (w.px_ptr: their inputs) of direction d
  // of layer l into w.zx_ptr: each chain started from the bias, k increasing, as step()
  // computes it.  `step_rows`: the rows of each step.  The product widens 16-bit weights
  // (gemm_rows_avx512) only where the steps have more than one group of 6 rows: else the
  // widened panel pushes out of L2 the W_h that such steps, bound by its stream, read from
  // there (measured 0.95-0.97x on GRU H = 512 B = 4 and a bidirectional H = 512 B = 4).
  // In a team, the lead sets the rows up and the product is cut by gate rows (team_gemm).
  void project_chunk(std::size_t l, int d, std::int64_t n, std::int64_t step_rows, Work& w,
                     const Team& team = Team()) const {
    const Packed& p = packed_[l][static_cast<std::size_t>(d)];
    const std::int64_t GH = model_->spec(l).gate_rows();
    if (team.lead()) {
      if (rounds_operands(precision_)) {  // the product's operand x, rounded (BF16/FP16)
        const std::int64_t width = model_->spec(l).input_size;
        for (std::int64_t i = 0; i < n; ++i) {
          float* xr = w.pxq.data() + i * width;
          round_floats(precision_, w.px_ptr[static_cast<std::size_t>(i)], xr,
                     static_cast<std::size_t>(width));
          w.px_ptr[static_cast<std::size_t>(i)] = xr;
        }
      }
      for (std::int64_t i = 0; i < n; ++i) {
        w.zx_ptr[static_cast<std::size_t>(i)] = w.zx.data() + i * GH;
      }
    }
    team.sync();
    team_gemm(team, w, w.zx_ptr.data(), w.px_ptr.data(), p.wx, n, false, p.bias.data(),
              step_rows > 6);
    team.sync();
  }

  // Direction d of layer l over every step for rows [b0, b1): reads `in` (row stride
  // in_stride), writes the cell's output into its half of `out` (row stride max_width()).
  // The input projections of w.zx_steps steps at a time run first (project_chunk).
  // In a team, every worker runs this with the lead's Work: the lead keeps the books.
  void run_direction(const ForwardCall& call, std::size_t l, int d, std::int64_t b0,
                     std::int64_t b1, const float* in, std::int64_t in_stride, float* out,
                     Work& w, const Team& team = Team()) const {
    const LayerSpec& s = model_->spec(l);
    const std::int64_t B = call.batch, T = call.time, stride = model_->max_width();
    const std::int64_t R = s.cell_output_size();
    const bool backwards = s.direction == Direction::kReverse || d == 1;
    const auto len_of = [&](std::int64_t b) { return call.lengths ? call.lengths[b] : T; };
    for (std::int64_t k0 = 0; k0 < T; k0 += w.zx_steps) {
      const std::int64_t k1 = std::min(T, k0 + w.zx_steps);
      std::int64_t nr = 0;  // the chunk's valid rows, in the order its steps take them
      for (std::int64_t k = k0; k < k1; ++k) {
        for (std::int64_t b = b0; b < b1; ++b) {
          if (k >= len_of(b)) continue;
          const std::int64_t t = backwards ? len_of(b) - 1 - k : k;
          if (team.lead()) {
            w.px_ptr[static_cast<std::size_t>(nr)] = in + row_of(call, t, b) * in_stride;
          }
          ++nr;
        }
      }
      if (nr == 0) return;  // rows' lengths only shrink the active set as k grows
      project_chunk(l, d, nr, b1 - b0, w, team);
      std::int64_t next = 0;  // the chunk's next projected row
      for (std::int64_t k = k0; k < k1; ++k) {
        std::int64_t n = 0;
        for (std::int64_t b = b0; b < b1; ++b) {
          if (k >= len_of(b)) continue;
          const std::int64_t t = backwards ? len_of(b) - 1 - k : k;
          if (team.lead()) {
            w.rows[n] = b;
            w.x_ptr[n] = in + row_of(call, t, b) * in_stride;
            w.out_ptr[n] = out + row_of(call, t, b) * stride + d * R;
            w.zx_step[static_cast<std::size_t>(n)] = w.zx_ptr[static_cast<std::size_t>(next++)];
          }
          ++n;
        }
        if (n == 0) return;
        step(l, d, B, n, w, k == 0 && call.initial_state == nullptr, w.zx_step.data(), team);
      }
    }
  }

  // Layer l's output rows [b0, b1) completed: the residual added on valid steps, zeros past
  // each row's length.
  void finish_layer(const ForwardCall& call, std::size_t l, std::int64_t b0, std::int64_t b1,
                    const float* in, std::int64_t in_stride, float* out) const {
    const std::int64_t T = call.time, stride = model_->max_width();
    const std::int64_t W = model_->spec(l).output_size();
    for (std::int64_t b = b0; b < b1; ++b) {
      const std::int64_t len = call.lengths ? call.lengths[b] : T;
      for (std::int64_t t = 0; t < T; ++t) {
        float* y = out + row_of(call, t, b) * stride;
        if (t < len) {
          add_residual(l, in + row_of(call, t, b) * in_stride, y);
        } else {
          std::fill_n(y, W, 0.0f);
        }
      }
    }
  }

  // The last layer's rows [b0, b1) (row stride max_width()) into the caller's output.
  void copy_output(const ForwardCall& call, std::int64_t b0, std::int64_t b1,
                   const float* last) const {
    if (call.output == nullptr) return;
    const std::int64_t T = call.time, stride = model_->max_width();
    const std::int64_t W = model_->output_size();
    for (std::int64_t b = b0; b < b1; ++b) {
      for (std::int64_t t = 0; t < T; ++t) {
        std::memcpy(call.output + row_of(call, t, b) * W, last + row_of(call, t, b) * stride,
                    static_cast<std::size_t>(W) * sizeof(float));
      }
    }
  }

  Precision precision_ = Precision::kFp32;
  GemmRows gemm_ = nullptr;
  bool amx_ = false;  // every GEMM on AMX tiles (a BF16 session, choose_amx): gemm_amx
  bool wide_ = false;  // 16-bit weights on the AVX-512 kernels: GemmScratch::wide per worker
  // The plain LSTM cell of a row (lstm_plain_avx2 or _portable, with the GEMM's kernel).
  // (Units [u0, u1) of the row.)
  void (*lstm_plain_)(const float* z, std::int64_t H, std::int64_t u0, std::int64_t u1,
                      float* c, float* m) = nullptr;
  // ... with peepholes (peep [3H] or null) and / or a cell clip (bound > 0; lstm_extras_avx2
  // or _portable).
  void (*lstm_extras_)(const float* z, std::int64_t H, std::int64_t u0, std::int64_t u1,
                       float* c, float* m, const float* peep, float bound) = nullptr;
  // The GRU's gates (elements [e0, e1) of z) and new h (units [u0, u1)) of a row
  // (gru_gates_avx2 / gru_h_avx2 or the portable ones).
  void (*gru_gates_)(float* z, std::int64_t e0, std::int64_t e1) = nullptr;
  void (*gru_h_)(const float* zn, const float* rz, const float* a, float* h, std::int64_t H,
                 std::int64_t u0, std::int64_t u1) = nullptr;
  bool layer_major_ = false;
  bool direction_split_ = false;  // a bidirectional layer and >= 2 threads (forward())
  bool wh_over_l2_ = false;       // some layer's W_h (one direction) is larger than a core's L2
  int team_workers_ = 0;          // a team's size (>= 2), or 0: no team (forward())
  bool team_always_ = false;      // cpu.team=always
  double step_bytes_ = 0.0;       // the weights a step of the stack streams
  mutable Barrier barrier_;       // forward_by_direction's workers, or a team's
  mutable Barrier direction_barrier_[2];  // forward_by_direction's teams, one per direction
  int threads_ = 1;
  std::vector<std::vector<Packed>> packed_;  // [layer][direction]
  std::vector<float> state_;                 // packed state of up to max_batch rows
  std::vector<float> seq_[2];                // layer outputs of a call (layer-major)
  // Where the workers write (rows disjoint between workers): state_ and seq_'s data.
  float* state_ptr_base_ = nullptr;
  float* seq_base_[2] = {nullptr, nullptr};
  std::vector<Work> work_;                   // one per worker
  std::unique_ptr<Pool> pool_;               // workers 1.. (worker 0 is the caller), or
  std::shared_ptr<SharedPool> shared_;       // the process-wide ones (cpu.pool=shared), or
  std::int64_t spin_ns_ = 0;                 // cpu.spin_us, in nanoseconds
  std::atomic<std::uint64_t> alone_asleep_{0};  // calls run alone, the workers asleep
  std::unique_ptr<CallerPool> caller_;       // the caller's pool (options->thread_pool)
  std::atomic<std::uint64_t> short_team_{0};  // calls of a smaller team than asked
  double weight_floats_ = 0.0;               // every layer's weights (both directions)
  Thresholds rates_;                         // one core's rates, for alone_when_asleep
};

}  // namespace
}  // namespace slstm::cpu

namespace slstm {

std::unique_ptr<Backend> make_cpu_generic_backend(ModelPtr model, const SessionConfig& config) {
  const cpu::KernelChoice kernel = cpu::choose_kernel(config.settings);
  return std::make_unique<cpu::CpuGenericBackend>(std::move(model), config, kernel);
}

}  // namespace slstm

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
