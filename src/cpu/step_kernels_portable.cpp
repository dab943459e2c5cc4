// The portable kernels: plain C++ loops the compiler vectorises, the same decomposition as
// the AVX ones, with the gate math of slstm::lstm_cell (gate_math.hpp, libm).
#include <algorithm>

#include "../gate_math.hpp"
#include "step_kernels.hpp"

namespace slstm::cpu {
namespace {

// ---- cell epilogues -----------------------------------------------------------------------

// LSTM, the block's nb rows: acc[b] holds row b's 64 recurrent sums [gate][16 units].  Adds
// G and the bias, applies the gate math, updates c, writes h and the output row; a row past
// its length keeps its h and outputs zeros.
SLSTM_CELL_INLINE void lstm_cell_portable(const StepArgs& a, int nb,
                                          const float (&acc)[kMaxNb][kRow]) {
  for (int b = 0; b < nb; ++b) {
    const std::int64_t row = a.b0 + b;
    float* c = a.c + row * a.H + a.unit0;
    float* hn = a.h_next + row * a.H + a.unit0;
    const float* hp = a.h_prev + row * a.H + a.unit0;
    if (!a.active[b]) {
      for (std::int64_t j = 0; j < a.units; ++j) hn[j] = hp[j];
      if (a.out_row[b]) std::fill_n(a.out_row[b] + a.unit0, a.units, 0.0f);
      continue;
    }
    const float* g = a.g_row[b];
    for (std::int64_t j = 0; j < a.units; ++j) {
      float z[4];
      for (int q = 0; q < 4; ++q) {
        const std::int64_t r = q * kGroup + j;
        z[q] = acc[b][r] + g[r] + a.bias[r];
      }
      // forget_bias is already in the packed bias: pass 0 to the shared cell math.
      lstm_cell(z[kGateI], z[kGateF], z[kGateG], z[kGateO], 0.0f, c[j], &c[j], &hn[j]);
      if (a.out_row[b]) a.out_row[b][a.unit0 + j] = hn[j];
    }
  }
}

// The epilogue of cell kind kCell (a new kind: its epilogue above and a branch here).
template <CellKind kCell>
SLSTM_CELL_INLINE void cell_portable(const StepArgs& a, int nb,
                                     const float (&acc)[kMaxNb][kRow]) {
  if constexpr (kCell == CellKind::kLstm) {
    lstm_cell_portable(a, nb, acc);
  } else {
    static_assert(kCell == CellKind::kLstm, "no portable epilogue for this cell kind");
  }
}

// ---- GEMM loops ---------------------------------------------------------------------------

template <CellKind kCell>
void step_rows_portable(const StepArgs& a, int nb) {
  float acc[kMaxNb][kRow];
  for (int b = 0; b < nb; ++b) std::fill_n(acc[b], kRow, 0.0f);
  for (std::int64_t k = 0; k < recurrent_k(a); ++k) {
    const float* w = a.wh + k * kRow;
    for (int b = 0; b < nb; ++b) {
      const float x = a.h_gemm[(a.b0 + b) * a.H + k];
      for (std::int64_t r = 0; r < kRow; ++r) acc[b][r] = madd(x, w[r], acc[b][r]);
    }
  }
  cell_portable<kCell>(a, nb, acc);
}

// Input projection of NB rows and one group: out[b][0..63] = rows[b] . w (w packed [K][64]).
// In strips of 8 columns, so that the NB x 8 sums can stay in registers (12 SSE registers
// for 6 rows); each sum is added up in increasing k.
template <int NB>
void project_rows_portable(const float* w, const float* const* rows, std::int64_t K,
                           float* const* out) {
  constexpr int kStrip = 8;
  for (int col0 = 0; col0 < kRow; col0 += kStrip) {
    float acc[NB][kStrip] = {};
    for (std::int64_t k = 0; k < K; ++k) {
      const float* wk = w + k * kRow + col0;
      for (int b = 0; b < NB; ++b) {
        const float x = rows[b][k];
        for (int j = 0; j < kStrip; ++j) acc[b][j] = madd(x, wk[j], acc[b][j]);
      }
    }
    for (int b = 0; b < NB; ++b) std::copy_n(acc[b], kStrip, out[b] + col0);
  }
}

}  // namespace

void step_block_portable(const StepArgs& a, int nb) {
  switch (a.cell) {
    case CellKind::kLstm: step_rows_portable<CellKind::kLstm>(a, nb); return;
    case CellKind::kGru: break;  // never planned: make_backend runs such stacks on the reference
  }
}

void project_block_portable(const float* w, const float* const* rows, std::int64_t K,
                            float* const* out, int nb) {
  switch (nb) {
    case 1: project_rows_portable<1>(w, rows, K, out); return;
    case 2: project_rows_portable<2>(w, rows, K, out); return;
    case 3: project_rows_portable<3>(w, rows, K, out); return;
    case 4: project_rows_portable<4>(w, rows, K, out); return;
    case 5: project_rows_portable<5>(w, rows, K, out); return;
    default: project_rows_portable<6>(w, rows, K, out); return;
  }
}

}  // namespace slstm::cpu
