// The generic path's kernels (generic_backend.cpp runs them): weight matrices packed for its
// GEMMs, the GEMMs themselves (portable, AVX2+FMA, AVX-512; AMX in step_kernels.hpp) and the
// cells' pointwise math per row (LSTM plain or with peepholes / clip, GRU), each in the
// portable and the AVX2 flavour.  Every pre-activation is one chain of multiply-adds in
// increasing k started from the bias, with the same instructions whichever rows share its
// step (generic_backend.cpp's "Determinism"); the kernels of one ISA come as a table
// (generic_kernels) the session picks once.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../precision.hpp"
#include "buffer.hpp"
#include "calibration.hpp"
#include "step_kernels.hpp"

namespace slstm::cpu {

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
                       std::int64_t K, Precision precision, bool store16, bool amx);

// Room for such a panel widened to float32, for W of up to K columns: a quarter of L2, or
// one block.
inline std::int64_t wide_panel_floats(std::int64_t K) {
  return std::max(l2_cache_bytes() / 4 / static_cast<std::int64_t>(sizeof(float)), K * kBlock);
}

// z, x, W, rows, init and `wide`: scratch for a panel of W widened to float32
// (wide_panel_floats(W.K) floats; gemm_rows_avx512), or null.
using GemmRows = void (*)(float* const*, const float* const*, const MatView&, std::int64_t,
                          const float*, float*);

// v within [-bound, bound] where bound > 0 (TF's cell_clip / proj_clip; a NaN stays NaN).
inline float clip(float v, float bound) {
  return bound > 0.0f ? std::min(std::max(v, -bound), bound) : v;
}

// The kernels of one ISA (generic_kernels): the GEMM, and per row the cells' pointwise math.
struct GenericKernels {
  GemmRows gemm = nullptr;
  // The plain LSTM cell of a row, units [u0, u1): z's pre-activations [4][H], c updated in
  // place, the unprojected output into m (forget_bias is in z already).
  void (*lstm_plain)(const float* z, std::int64_t H, std::int64_t u0, std::int64_t u1,
                     float* c, float* m) = nullptr;
  // ... with peepholes (peep [3H] or null) and / or a cell clip (bound > 0).
  void (*lstm_extras)(const float* z, std::int64_t H, std::int64_t u0, std::int64_t u1,
                      float* c, float* m, const float* peep, float bound) = nullptr;
  // The GRU's gates (elements [e0, e1) of z) and new h (units [u0, u1)) of a row.
  void (*gru_gates)(float* z, std::int64_t e0, std::int64_t e1) = nullptr;
  void (*gru_h)(const float* zn, const float* rz, const float* a, float* h, std::int64_t H,
                std::int64_t u0, std::int64_t u1) = nullptr;
};

// The kernels `kernel` names: the AVX-512 GEMM with the AVX2 cell math, the AVX2 ones, or
// the portable ones (the only ones off x86-64).
GenericKernels generic_kernels(Kernel kernel);

}  // namespace slstm::cpu
