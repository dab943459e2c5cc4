// The AVX-512 kernels: a block of up to 6 batch rows x 64 columns (4 gates x 16 units) of
// sums held in 24 zmm registers, one FMA chain per element in increasing k, then the cell
// epilogue on the registers.  Compiled for the baseline: each function carries the target
// attribute (SLSTM_AVX512) and runs only when cpu_has_avx512().
#if defined(__GNUC__) && defined(__x86_64__)

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() as the masked-off source, which
// -Wmaybe-uninitialized flags once they are inlined here; the warning is about the header.
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "simd_math.hpp"
#include "step_kernels.hpp"

namespace slstm::cpu {
namespace {

constexpr std::int64_t kPrefetchRows = 8;  // k rows ahead the kernels prefetch (accumulate512)

// ---- cell epilogues -----------------------------------------------------------------------

// LSTM, NB rows of the block from its row `first`: acc[b] holds row first + b's recurrent
// sums per gate (i, f, g, o), m the group's valid units.  Adds G and the bias, applies the
// gate math, updates c, writes h and the output row; a row past its length keeps its h and
// outputs zeros.
template <int NB>
SLSTM_AVX512_INLINE void lstm_cell_avx512(const StepArgs& a, __m512 (&acc)[NB][4], __mmask16 m,
                                          int first = 0) {
  for (int i = 0; i < NB; ++i) {
    const int b = first + i;
    const std::int64_t row = a.b0 + b;
    float* c = a.c + row * a.H + a.unit0;
    float* hn = a.h_next + row * a.H + a.unit0;
    if (!a.active[b]) {
      _mm512_mask_storeu_ps(hn, m, _mm512_maskz_loadu_ps(m, a.h_prev + row * a.H + a.unit0));
      if (a.out_row[b]) _mm512_mask_storeu_ps(a.out_row[b] + a.unit0, m, _mm512_setzero_ps());
      continue;
    }
    const float* g = a.g_row[b];
    const __m512 zi = _mm512_add_ps(acc[i][0], _mm512_add_ps(_mm512_load_ps(g),
                                                             _mm512_load_ps(a.bias)));
    const __m512 zf = _mm512_add_ps(acc[i][1], _mm512_add_ps(_mm512_load_ps(g + 16),
                                                             _mm512_load_ps(a.bias + 16)));
    const __m512 zg = _mm512_add_ps(acc[i][2], _mm512_add_ps(_mm512_load_ps(g + 32),
                                                             _mm512_load_ps(a.bias + 32)));
    const __m512 zo = _mm512_add_ps(acc[i][3], _mm512_add_ps(_mm512_load_ps(g + 48),
                                                             _mm512_load_ps(a.bias + 48)));
    const __m512 c_prev = _mm512_maskz_loadu_ps(m, c);
    const __m512 c_new = _mm512_fmadd_ps(c_prev, sigmoid512(zf),
                                         _mm512_mul_ps(sigmoid512(zi), tanh512(zg)));
    const __m512 h_new = _mm512_mul_ps(tanh512(c_new), sigmoid512(zo));
    _mm512_mask_storeu_ps(c, m, c_new);
    _mm512_mask_storeu_ps(hn, m, h_new);
    if (a.out_row[b]) _mm512_mask_storeu_ps(a.out_row[b] + a.unit0, m, h_new);
  }
}

// The epilogue of cell kind kCell (a new kind: its epilogue above and a branch here).
template <CellKind kCell, int NB>
SLSTM_AVX512_INLINE void cell_avx512(const StepArgs& a, __m512 (&acc)[NB][4], __mmask16 m,
                                     int first = 0) {
  if constexpr (kCell == CellKind::kLstm) {
    lstm_cell_avx512<NB>(a, acc, m, first);
  } else {
    static_assert(kCell == CellKind::kLstm, "no AVX-512 epilogue for this cell kind");
  }
}

// ---- GEMM loops ---------------------------------------------------------------------------


// acc[b][q] = sum_k rows[b][k] * w[k][q*16 .. q*16+15] for NB rows, w packed [K][64];
// `next`'s lines are fetched into L2 along the way, a few per k; with kFetch, w's own stream
// into L1 ahead of the loads.  kKeep (16-bit w): each k's weights, as loaded, stored to
// `keep` as float32 ([K][64]).
template <int NB, typename W = F32, bool kFetch = true, bool kKeep = false>
SLSTM_AVX512 inline void accumulate512(const typename W::T* w, const float* const* rows,
                                       std::int64_t K, __m512 (&acc)[NB][4], Prefetch next,
                                       float* keep = nullptr) {
  constexpr int kLineBytes = 64;
  constexpr int kRowBytes = static_cast<int>(kRow * sizeof(typename W::T));
  for (int b = 0; b < NB; ++b) {
    for (int q = 0; q < 4; ++q) acc[b][q] = _mm512_setzero_ps();
  }
  PrefetchStream ahead_of_next(next, K);
  // Two k per iteration: the loop's own instructions share the FMA ports (measured on an
  // AVX-512 Xeon, 5 rows over L2-resident weights: 3-5 % faster); the same FMAs in the same
  // order, the same bits.
#pragma GCC unroll 2
  for (std::int64_t k = 0; k < K; ++k, w += kRow) {
    ahead_of_next.tick();
    if constexpr (kFetch) {
      // The weight stream ahead, into L1.  The step's blocks of every size: a loop of few
      // FMAs per weight (1-4 rows) is bound by that stream, and a lone block of 5 or 6 rows
      // over a W_h streaming from L3 (B = 5, 6 with H = 2048; prefetch_share gives it no
      // share of the next group's lines) ran 1.1-1.4x slower without it, measured on an
      // AVX-512 Xeon (bench/results/cpu-prefetch-nb.md).  The projection's blocks of 1-4
      // rows only: its 5-6-row blocks over W_x in L2 lost 5 % to the extra loads.
      const char* ahead = reinterpret_cast<const char*>(w + kPrefetchRows * kRow);
      for (int at = 0; at < kRowBytes; at += kLineBytes) _mm_prefetch(ahead + at, _MM_HINT_T0);
    }
    __m512 w0 = W::load16(w);
    __m512 w1 = W::load16(w + 16);
    __m512 w2 = W::load16(w + 32);
    __m512 w3 = W::load16(w + 48);
    if constexpr (NB > 1 && W::kPlainLoad) {
      in_register(w0);
      in_register(w1);
      in_register(w2);
      in_register(w3);
    }
    if constexpr (kKeep) {
      float* const kk = keep + k * kRow;
      _mm512_store_ps(kk, w0);
      _mm512_store_ps(kk + 16, w1);
      _mm512_store_ps(kk + 32, w2);
      _mm512_store_ps(kk + 48, w3);
    }
    for (int b = 0; b < NB; ++b) {
      const __m512 x = _mm512_set1_ps(rows[b][k]);
      acc[b][0] = _mm512_fmadd_ps(w0, x, acc[b][0]);
      acc[b][1] = _mm512_fmadd_ps(w1, x, acc[b][1]);
      acc[b][2] = _mm512_fmadd_ps(w2, x, acc[b][2]);
      acc[b][3] = _mm512_fmadd_ps(w3, x, acc[b][3]);
    }
  }
}

// Input projection of NB rows for one group: out[b][0..63] = rows[b] . w (w packed [K][64],
// float32 or 16-bit codes: W; kKeep: see accumulate512).
template <int NB, typename W = F32, bool kKeep = false>
SLSTM_AVX512 void project_rows_avx512(const typename W::T* w, const float* const* rows,
                                      std::int64_t K, float* const* out, Prefetch next,
                                      float* keep = nullptr) {
  __m512 acc[NB][4];
  accumulate512<NB, W, (NB <= 4), kKeep>(w, rows, K, acc, next, keep);
  for (int b = 0; b < NB; ++b) {
    for (int q = 0; q < 4; ++q) _mm512_store_ps(out[b] + 16 * q, acc[b][q]);
  }
}

// One step of one group for NB rows: the recurrent sums, then the cell's epilogue.
template <int NB, CellKind kCell, typename W, bool kKeep = false>
SLSTM_AVX512 void step_rows_avx512(const StepArgs& a, const typename W::T* wh) {
  const float* h[NB];
  for (int b = 0; b < NB; ++b) {
    h[b] = a.h_gemm + (a.b0 + b) * a.H;
    prefetch_epilogue_inputs(a, b);
  }
  __m512 acc[NB][4];
  accumulate512<NB, W, true, kKeep>(wh, h, recurrent_k(a), acc, a.next, a.wh_keep);
  const __mmask16 m = static_cast<__mmask16>((1u << a.units) - 1u);
  cell_avx512<kCell, NB>(a, acc, m);
}

// ---- AMX: the recurrent products on BF16 tiles ---------------------------------------------

#define SLSTM_AMX \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,amx-tile,amx-bf16")))

// The tile configuration (palette 1) for a pair of row blocks, n0 (1..16) rows and n1
// (0..16) more: tiles 0-1 two gates' sums of block 0 (n0 rows x 16 floats), 2-3 the same
// of block 1 (n1 rows), tile 4 block 0's operand (n0 rows x 32 codes), 5 block 1's (n1
// rows), 6-7 two gates' weights (16 pairs of k x 16 units).  Two blocks share each weight
// tile: a group's weights come from L2 once per 32 rows instead of once per 16 (measured
// on a 2-core AMX Xeon VM, H = 512, B = 128: see bench/results/cpu-amx-bf16.md).
struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

SLSTM_AMX inline void configure_tiles(int n0, int n1) {
  TileConfig cfg;
  const int rows[8] = {n0, n0, n1, n1, n0, n1, 16, 16};
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = static_cast<std::uint8_t>(rows[t]);
    cfg.colsb[t] = rows[t] > 0 ? 64 : 0;
  }
  _tile_loadconfig(&cfg);
}

// One group's gate sums for the configured block pair: rows of codes at x (row stride ldx
// codes; block 1 from row 16) times the group's 4 x k_tiles weight tiles at w (pack_layer:
// gates i, f for every k, then g, o), each sum the tiles' products in increasing k; gate q
// of row r stored at out + q * gate_ld + r * ld (floats).  Two passes of two gates each,
// each pass one stream of weights (measured: also faster for one block than the four gates
// at once with the operand loaded once).  kGates = 2: one pass, a 32-column block of the
// generic path's packing ([k_tiles][2][16][16][2]: gemm_rows_amx).
template <int kGates = 4>
SLSTM_AMX inline void group_products(const std::uint16_t* x, std::int64_t ldx,
                                     const std::uint16_t* w, std::int64_t k_tiles, bool two,
                                     float* out, std::int64_t gate_ld, std::int64_t ld,
                                     PrefetchStream& ahead) {
  const auto ldx_bytes = static_cast<long>(ldx * sizeof(std::uint16_t));
  const auto ld_bytes = static_cast<long>(ld * sizeof(float));
  const std::uint16_t* x1 = x + kMaxAmxTileRows * ldx;
  for (int q = 0; q < kGates; q += 2) {
    _tile_zero(0);
    _tile_zero(1);
    if (two) {
      _tile_zero(2);
      _tile_zero(3);
    }
    const std::uint16_t* wq = w + q * k_tiles * kAmxTile;  // gates q, q + 1: [k_tiles][2]
    for (std::int64_t kt = 0; kt < k_tiles; ++kt, wq += 2 * kAmxTile) {
      ahead.tick();
      _tile_loadd(4, x + kt * kAmxK, ldx_bytes);
      _tile_loadd(6, wq, 64);
      _tile_loadd(7, wq + kAmxTile, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      if (two) {
        _tile_loadd(5, x1 + kt * kAmxK, ldx_bytes);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    float* o = out + q * gate_ld;
    _tile_stored(0, o, ld_bytes);
    _tile_stored(1, o + gate_ld, ld_bytes);
    if (two) {
      _tile_stored(2, o + kMaxAmxTileRows * ld, ld_bytes);
      _tile_stored(3, o + gate_ld + kMaxAmxTileRows * ld, ld_bytes);
    }
  }
}

// One step of `groups` groups for nb rows: the gate sums of as many groups as the worker's
// scratch holds on the tiles (then released), then per group and row the AVX-512 epilogue
// and the codes of the new h; again for the next groups.  A caller's thread is left without
// tile state, as it was found.
template <CellKind kCell>
SLSTM_AMX void step_rows_amx(const StepArgs& a, int nb, int groups) {
  for (int b = 0; b < nb; ++b) prefetch_epilogue_inputs(a, b);
  const int n0 = std::min(nb, kMaxAmxTileRows), n1 = nb - n0;
  const std::int64_t rows = n1 > 0 ? 2 * kMaxAmxTileRows : kMaxAmxTileRows;  // scratch rows
  const std::int64_t gate_ld = rows * 16, group_ld = 4 * gate_ld;
  const int per = static_cast<int>(kAmxSums / group_ld);  // groups whose sums fit
  const std::int64_t slab = a.k_tiles * 4 * kAmxTile;     // one group's codes
  const std::uint16_t* h = a.hb + a.b0 * a.ldh;
  StepArgs g = a;
  for (int i0 = 0; i0 < groups; i0 += per) {
    const int n = std::min(per, groups - i0);
    if (!a.h_zero) {  // (h = 0: every sum +0, the tiles untouched; StepArgs::h_zero)
      configure_tiles(n0, n1);
      for (int i = 0; i < n; ++i) {
        PrefetchStream ahead_of_next(i0 + i + 1 == groups ? a.next : Prefetch{},
                                     2 * a.k_tiles);
        group_products(h, a.ldh, a.wamx + (i0 + i) * slab, a.k_tiles, n1 > 0,
                       a.sums + i * group_ld, gate_ld, 16, ahead_of_next);
      }
      _tile_release();
    }
    for (int i = 0; i < n; ++i) {
      if (i0 + i > 0) {
        g.unit0 += kGroup;
        g.bias += kRow;
        for (int b = 0; b < nb; ++b) g.g_row[b] += kRow;
      }
      g.units = std::min(kGroup, g.H - g.unit0);
      const __mmask16 m = static_cast<__mmask16>((1u << g.units) - 1u);
      const float* sums = a.sums + i * group_ld;
      const __m512 zero = _mm512_setzero_ps();
      // Rows two at a time: two independent chains of gate math for the scheduler.
      int b = 0;
      for (; b + 2 <= nb; b += 2) {
        __m512 acc[2][4];
        for (int r = 0; r < 2; ++r) {
          for (int q = 0; q < 4; ++q) {
            acc[r][q] = a.h_zero ? zero : _mm512_load_ps(sums + q * gate_ld + (b + r) * 16);
          }
        }
        cell_avx512<kCell, 2>(g, acc, m, b);
      }
      if (b < nb) {
        __m512 acc[1][4];
        for (int q = 0; q < 4; ++q) {
          acc[0][q] = a.h_zero ? zero : _mm512_load_ps(sums + q * gate_ld + b * 16);
        }
        cell_avx512<kCell, 1>(g, acc, m, b);
      }
      // The new h (the row's old one past its length) as the next step's operand.
      for (b = 0; b < nb; ++b) {
        const std::int64_t row = g.b0 + b;
        const __m512 hn = _mm512_maskz_loadu_ps(m, g.h_next + row * g.H + g.unit0);
        _mm256_mask_storeu_epi16(g.hb_next + row * g.ldh + g.unit0, m, bf16_codes512(hn));
      }
    }
  }
}

template <CellKind kCell, typename W, bool kKeep = false>
void step_rows_any_avx512(const StepArgs& a, int nb, const typename W::T* wh) {
  switch (nb) {
    case 1: step_rows_avx512<1, kCell, W, kKeep>(a, wh); return;
    case 2: step_rows_avx512<2, kCell, W, kKeep>(a, wh); return;
    case 3: step_rows_avx512<3, kCell, W, kKeep>(a, wh); return;
    case 4: step_rows_avx512<4, kCell, W, kKeep>(a, wh); return;
    case 5: step_rows_avx512<5, kCell, W, kKeep>(a, wh); return;
    default: step_rows_avx512<6, kCell, W, kKeep>(a, wh); return;
  }
}

template <CellKind kCell, typename W>
void step_codes_avx512(const StepArgs& a, int nb) {
  if (a.wh_keep != nullptr) {
    step_rows_any_avx512<kCell, W, true>(a, nb, a.wh16);
  } else {
    step_rows_any_avx512<kCell, W>(a, nb, a.wh16);
  }
}

template <CellKind kCell>
void step_cell_avx512(const StepArgs& a, int nb) {
  if (a.wh16 == nullptr) {
    step_rows_any_avx512<kCell, F32>(a, nb, a.wh);
  } else if (a.wh16_is_bf16) {
    step_codes_avx512<kCell, Bf16>(a, nb);
  } else {
    step_codes_avx512<kCell, Fp16>(a, nb);
  }
}

}  // namespace

void step_block_avx512(const StepArgs& a, int nb) {
  switch (a.cell) {
    case CellKind::kLstm: step_cell_avx512<CellKind::kLstm>(a, nb); return;
    case CellKind::kGru: break;  // never planned: make_backend runs such stacks on the reference
  }
}

void step_block_amx(const StepArgs& a, int nb, int groups) {
  switch (a.cell) {
    case CellKind::kLstm: step_rows_amx<CellKind::kLstm>(a, nb, groups); return;
    case CellKind::kGru: break;  // never planned (as step_block_avx512)
  }
}

// group_products<kGates> of the weights at w for `rows` rows of codes at x (row stride ldx),
// in blocks of up to 32 rows, block r0's sums at out + r0 * ld_out; the tiles configured
// anew only where a block's rows differ from `configured` (n0 * 32 + n1; -1: not yet).
template <int kGates>
SLSTM_AMX inline void rows_products(const std::uint16_t* x, std::int64_t ldx, std::int64_t rows,
                                    const std::uint16_t* w, std::int64_t k_tiles, float* out,
                                    std::int64_t gate_ld, std::int64_t ld_out, int& configured) {
  PrefetchStream none({}, k_tiles);
  for (std::int64_t r0 = 0; r0 < rows; r0 += kMaxAmxRows) {
    const int nb = static_cast<int>(std::min<std::int64_t>(kMaxAmxRows, rows - r0));
    const int n0 = std::min(nb, kMaxAmxTileRows), n1 = nb - n0;
    if (n0 * 32 + n1 != configured) {
      configure_tiles(n0, n1);
      configured = n0 * 32 + n1;
    }
    group_products<kGates>(x + r0 * ldx, ldx, w, k_tiles, n1 > 0, out + r0 * ld_out, gate_ld,
                           ld_out, none);
  }
}

SLSTM_AMX void project_rows_amx(const std::uint16_t* w, std::int64_t groups,
                               const std::uint16_t* x, std::int64_t ldx, std::int64_t k_tiles,
                               float* out, std::int64_t ld_out, std::int64_t rows) {
  const std::int64_t slab = k_tiles * 4 * kAmxTile;
  int configured = -1;
  for (std::int64_t gi = 0; gi < groups; ++gi) {
    rows_products<4>(x, ldx, rows, w + gi * slab, k_tiles, out + gi * kRow, 16, ld_out,
                     configured);
  }
  _tile_release();
}

SLSTM_AMX void gemm_rows_amx(float* const* z, const std::uint16_t* x, std::int64_t ldx,
                            std::int64_t rows, const std::uint16_t* w, std::int64_t k_tiles,
                            std::int64_t n, const float* init, float* sums) {
  const std::int64_t slab = k_tiles * 2 * kAmxTile;  // one 32-column block's codes
  int configured = -1;
  for (std::int64_t j = 0; j * 32 < n; ++j) {
    rows_products<2>(x, ldx, rows, w + j * slab, k_tiles, sums, 16, 32, configured);
    // z = base + the block's sums (the columns past n are the packing's zeros: not written).
    const std::int64_t c0 = j * 32, valid = std::min<std::int64_t>(32, n - c0);
    const auto m0 = static_cast<__mmask16>(valid >= 16 ? 0xffffu : (1u << valid) - 1u);
    const auto m1 = static_cast<__mmask16>(valid >= 32   ? 0xffffu
                                           : valid <= 16 ? 0u
                                                         : (1u << (valid - 16)) - 1u);
    for (std::int64_t b = 0; b < rows; ++b) {
      float* zb = z[b] + c0;
      const float* base = init != nullptr ? init + c0 : zb;
      const float* s = sums + b * 32;
      const __m512 lo = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, base), _mm512_load_ps(s));
      const __m512 hi =
          _mm512_add_ps(_mm512_maskz_loadu_ps(m1, base + 16), _mm512_load_ps(s + 16));
      _mm512_mask_storeu_ps(zb, m0, lo);
      _mm512_mask_storeu_ps(zb + 16, m1, hi);
    }
  }
  _tile_release();
}

namespace {

template <typename W, bool kKeep = false>
void project_block_avx512_t(const typename W::T* w, const float* const* rows, std::int64_t K,
                            float* const* out, int nb, Prefetch next, float* keep = nullptr) {
  switch (nb) {
    case 1: project_rows_avx512<1, W, kKeep>(w, rows, K, out, next, keep); return;
    case 2: project_rows_avx512<2, W, kKeep>(w, rows, K, out, next, keep); return;
    case 3: project_rows_avx512<3, W, kKeep>(w, rows, K, out, next, keep); return;
    case 4: project_rows_avx512<4, W, kKeep>(w, rows, K, out, next, keep); return;
    case 5: project_rows_avx512<5, W, kKeep>(w, rows, K, out, next, keep); return;
    default: project_rows_avx512<6, W, kKeep>(w, rows, K, out, next, keep); return;
  }
}

template <typename W>
void project_codes_avx512(const std::uint16_t* w, const float* const* rows, std::int64_t K,
                          float* const* out, int nb, Prefetch next, float* keep) {
  if (keep != nullptr) {
    project_block_avx512_t<W, true>(w, rows, K, out, nb, next, keep);
  } else {
    project_block_avx512_t<W>(w, rows, K, out, nb, next);
  }
}

}  // namespace

void project_block_avx512(const float* w, const float* const* rows, std::int64_t K,
                          float* const* out, int nb, Prefetch next) {
  project_block_avx512_t<F32>(w, rows, K, out, nb, next);
}

void project_block16_avx512(const std::uint16_t* w, bool bf16, const float* const* rows,
                            std::int64_t K, float* const* out, int nb, Prefetch next,
                            float* keep) {
  if (bf16) {
    project_codes_avx512<Bf16>(w, rows, K, out, nb, next, keep);
  } else {
    project_codes_avx512<Fp16>(w, rows, K, out, nb, next, keep);
  }
}

}  // namespace slstm::cpu

#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // __GNUC__ && __x86_64__
