// The generic path's kernels: see generic_kernels.hpp.  The GEMMs (portable, AVX2, AVX-512)
// and the cells' pointwise math (portable, AVX2), each compiled for the baseline with its
// functions carrying the target attribute of their ISA (simd_math.hpp), so that only the
// table of a CPU that runs them (choose_kernel) ever calls them.
#include "generic_kernels.hpp"

#include <algorithm>
#include <cstring>

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
#include "rounding.hpp"
#include "simd_math.hpp"

namespace slstm::cpu {

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

namespace {

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

void gemm_rows_portable(float* const* z, const float* const* x, const MatView& w,
                        std::int64_t nb, const float* init, float* /*wide*/) {
  gemm_rows_body(z, x, w, nb, init);
}

#if defined(__GNUC__) && defined(__x86_64__)

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

}  // namespace

GenericKernels generic_kernels(Kernel kernel) {
  GenericKernels k;
#if defined(__GNUC__) && defined(__x86_64__)
  const bool avx2 = kernel != Kernel::kPortable;
  k.gemm = kernel == Kernel::kAvx512 ? gemm_rows_avx512
           : avx2                    ? gemm_rows_avx2
                                     : gemm_rows_portable;
  k.lstm_plain = avx2 ? lstm_plain_avx2 : lstm_plain_portable;
  k.lstm_extras = avx2 ? lstm_extras_avx2 : lstm_extras_portable;
  k.gru_gates = avx2 ? gru_gates_avx2 : gru_gates_portable;
  k.gru_h = avx2 ? gru_h_avx2 : gru_h_portable;
#else
  (void)kernel;  // (the portable kernels only)
  k.gemm = gemm_rows_portable;
  k.lstm_plain = lstm_plain_portable;
  k.lstm_extras = lstm_extras_portable;
  k.gru_gates = gru_gates_portable;
  k.gru_h = gru_h_portable;
#endif
  return k;
}

}  // namespace slstm::cpu

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
