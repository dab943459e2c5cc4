// The CPU fast path's kernels: one step of a group of 16 hidden units for a block of batch
// rows (the recurrent GEMM h_prev * Wh^T over packed weights, then the cell epilogue while
// the gate sums are still in registers), and the input projection of a block of rows.  One
// translation unit per ISA (step_kernels_{portable,avx2,avx512}.cpp); step_block and
// project_block pick the one of the session's Kernel.
//
// GEMM and cell are apart: each ISA's GEMM loop is a template on the cell kind (LayerSpec::
// cell) and calls that kind's epilogue for the ISA (lstm_cell_avx512, lstm_cell_avx2,
// lstm_cell_portable), which completes the pre-activations (G + bias), applies the gate
// math, updates the state, applies the length mask and writes the outputs.  A new cell kind
// is one epilogue per ISA (and its packing), not an edit of the GEMM loops.
//
// Determinism: every gate sum is one chain of multiply-adds in increasing k, computed with
// the same instructions whichever row block, split, worker or call it falls in; the
// epilogue is element-wise.
#pragma once

#include <cstdint>

#include "../layer_spec.hpp"

namespace slstm::cpu {

// Forces a cell epilogue into its GEMM loop (no call in the inner loop).
#if defined(__GNUC__)
#define SLSTM_CELL_INLINE __attribute__((always_inline)) inline
#else
#define SLSTM_CELL_INLINE inline
#endif

constexpr std::int64_t kGroup = 16;        // hidden units per group
constexpr std::int64_t kRow = 4 * kGroup;  // packed floats per k in a group (4 gates)
constexpr int kMaxNb = 6;                  // batch rows per micro-kernel block

// Which kernels the fast path runs (chosen once per session, see choose_kernel).
enum class Kernel {
  kPortable,  // plain C++ kernels (compiler-vectorised) for both GEMMs
  kAvx2,      // AVX2+FMA kernels for both
  kAvx512,    // AVX-512 kernels for both
};

const char* kernel_name(Kernel k);

// What this CPU runs (false off x86-64 GCC/Clang builds).
bool cpu_has_avx512();
bool cpu_has_avx2();
bool cpu_has_f16c();  // the binary16 conversions (every AVX2 CPU so far has them)

// What a step kernel needs besides the weights.
struct StepArgs {
  std::int64_t H = 0;          // hidden size (K of the recurrent GEMM, row stride of h and c)
  std::int64_t units = 0;      // valid units in this group (1..16)
  std::int64_t unit0 = 0;      // first unit of the group
  const float* wh = nullptr;   // this group's packed Wh ([H][64]; AVX2: [4][H][16])
  // BF16/FP16 sessions on the AVX2 and AVX-512 kernels: Wh stored in 16 bits instead (same
  // layout as wh, which is then null), half the bytes a step streams; the values are the
  // rounded ones wh would hold, converted exactly on load.
  const std::uint16_t* wh16 = nullptr;
  bool wh16_is_bf16 = false;   // the codes of wh16: bfloat16 (true) or binary16
  const float* bias = nullptr; // packed [64] of this group (forget_bias folded in)
  const float* h_prev = nullptr;  // [B][H], the state (a row past its length keeps it)
  const float* h_gemm = nullptr;  // [B][H], what the recurrent product reads: h_prev, or its
                                  // rounding in a BF16/FP16 session
  float* h_next = nullptr;        // [B][H]
  float* c = nullptr;             // [B][H], updated in place
  // Per batch row b of the block: the row of G (input projection, 64 floats for this group
  // at g_row[b]), the output row (or null), and whether the row is active at this step.
  const float* g_row[kMaxNb] = {};
  float* out_row[kMaxNb] = {};
  bool active[kMaxNb] = {};
  std::int64_t b0 = 0;  // first batch row of the block
  CellKind cell = CellKind::kLstm;  // the layer's cell: which epilogue the kernel applies
};

#if defined(__GNUC__) && defined(__x86_64__)
// The epilogue's inputs of row b of the block, written long ago (G by the projection, c one
// step back): fetched while the recurrent FMAs run (the AVX-512 and AVX2 kernels).
SLSTM_CELL_INLINE void prefetch_epilogue_inputs(const StepArgs& a, int b) {
  const char* g = reinterpret_cast<const char*>(a.g_row[b]);
  __builtin_prefetch(g, 0, 3);
  __builtin_prefetch(g + 64, 0, 3);
  __builtin_prefetch(g + 128, 0, 3);
  __builtin_prefetch(g + 192, 0, 3);
  __builtin_prefetch(a.c + (a.b0 + b) * a.H + a.unit0, 0, 3);
}
#endif

// One step of one group for nb (1..kMaxNb) batch rows starting at a.b0.
void step_block(const StepArgs& a, int nb, Kernel kernel);

// Input projection of nb (1..kMaxNb) rows for one group: out[b][0..63] = rows[b] . w, w the
// group's packed Wx (pack_layer: [K][64], or [4][K][16] on the AVX2 kernels).
void project_block(const float* w, const float* const* rows, std::int64_t K, float* const* out,
                   int nb, Kernel kernel);

// The kernels of each ISA (the AVX ones exist on x86-64 GCC/Clang builds only).
void step_block_portable(const StepArgs& a, int nb);
void project_block_portable(const float* w, const float* const* rows, std::int64_t K,
                            float* const* out, int nb);
void step_block_avx2(const StepArgs& a, int nb);
void project_block_avx2(const float* w, const float* const* rows, std::int64_t K,
                        float* const* out, int nb);
void step_block_avx512(const StepArgs& a, int nb);
void project_block_avx512(const float* w, const float* const* rows, std::int64_t K,
                          float* const* out, int nb);

}  // namespace slstm::cpu
