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
// Determinism: every gate sum is one chain of multiply-adds in increasing k (on AMX: of
// 32-term tile products), computed with the same instructions whichever row block, split,
// worker or call it falls in; the epilogue is element-wise.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../layer_spec.hpp"
#include "cpu_features.hpp"

namespace slstm::cpu {

// Forces a cell epilogue into its GEMM loop (no call in the inner loop).
#if defined(__GNUC__)
#define SLSTM_CELL_INLINE __attribute__((always_inline)) inline
#else
#define SLSTM_CELL_INLINE inline
#endif

// a * b + c as the portable kernels compute their sums: fused (one rounding) where the
// compiler has a fused multiply-add it emits inline and vectorises (__FP_FAST_FMAF: aarch64),
// else a product, then a sum (x86-64 without -mfma, where std::fma would be a libm call per
// element).  Either way each sum is one fixed chain wherever it is computed
// (-ffp-contract=off: no other contraction).
#if defined(__FP_FAST_FMAF)
inline constexpr bool kPortableFma = true;
SLSTM_CELL_INLINE float madd(float a, float b, float c) { return std::fma(a, b, c); }
#else
inline constexpr bool kPortableFma = false;
SLSTM_CELL_INLINE float madd(float a, float b, float c) { return a * b + c; }
#endif

constexpr std::int64_t kGroup = 16;        // hidden units per group
constexpr std::int64_t kRow = 4 * kGroup;  // packed floats per k in a group (4 gates)
constexpr int kMaxNb = 6;                  // batch rows per micro-kernel block
constexpr int kMaxAmxTileRows = 16;        // rows of a tile
constexpr int kMaxAmxRows = 32;            // batch rows per AMX block (two tiles' rows)
constexpr std::int64_t kAmxK = 32;         // k per AMX tile (16 pairs of bfloat16)
constexpr std::int64_t kAmxTile = 16 * kAmxK;  // bfloat16 codes in one tile of weights
constexpr int kAmxGroups = 8;  // groups per AMX step call
// The gate sums of one AMX step call (StepArgs::sums): per group, gate, row, 16 units, for
// kAmxGroups groups of 16 rows (half as many of 32: step_block_amx takes them in turns).
constexpr std::int64_t kAmxSums = kAmxGroups * 4 * kMaxAmxTileRows * 16;

// Where block j of `blocks` starts among n rows cut as evenly as possible: with blocks = ceil(n /
// kMaxNb) every block has n / blocks rows or one more (32 rows: four blocks of 5 and two of 6, not
// 5 x 6 + 2 -- a block of 1-3 rows does the weight loads of a full one for a third of the FMAs or
// less).
constexpr std::int64_t row_cut(std::int64_t n, std::int64_t j, std::int64_t blocks) {
  return j * n / blocks;
}

// Which kernels the fast path runs (chosen once per session, see choose_kernel).
enum class Kernel {
  kPortable,  // plain C++ kernels (compiler-vectorised) for both GEMMs
  kAvx2,      // AVX2+FMA kernels for both
  kAvx512,    // AVX-512 kernels for both
};

const char* kernel_name(Kernel k);

// What this CPU runs (false off x86-64 GCC/Clang builds); cpu_has_avx512 and cpu_has_avx2
// are in cpu_features.hpp.
bool cpu_has_f16c();  // the binary16 conversions (every AVX2 CPU so far has them)
// AMX with BF16 tiles that this process may use: the CPU has AMX-TILE and AMX-BF16 (and
// AVX-512), the OS saves the tile state, and (Linux) granted this process its use, asked
// once per process (arch_prctl ARCH_REQ_XCOMP_PERM).  amx_bf16_refusal() says why not
// ("" when it is usable).
bool cpu_has_amx_bf16();
const char* amx_bf16_refusal();

// Lines of the NEXT group's packed weights that a block brings into L2 while it runs: a
// group's weights serve every block of rows from L2, but whichever block comes first
// would wait on L3 for each line; each block of a group fetches its share of the next
// group's lines ahead, one or a few per k (measured on one AVX-512 core with 8-32 MiB of
// weights in L3: 137-148 -> 161-170 GFLOP/s for 30-126 rows).  Only a hint: results never
// depend on it.
struct Prefetch {
  const char* at = nullptr;  // first line
  std::int64_t lines = 0;    // how many 64-byte lines (0: none)
};

// Block j (of n) of a group's blocks: its share of `bytes` at `next` (none for one block:
// the group's own stream is then the only one and the kernels fetch it ahead themselves).
inline Prefetch prefetch_share(const void* next, std::int64_t bytes, std::int64_t j,
                               std::int64_t n) {
  if (next == nullptr || n < 2) return {};
  const std::int64_t lines = (bytes + 63) / 64, per = (lines + n - 1) / n;
  const std::int64_t first = std::min(lines, j * per), last = std::min(lines, first + per);
  return {static_cast<const char*>(next) + first * 64, last - first};
}

// Pass i (of n) of a kernel that runs over K n times: its part of a block's share.
inline Prefetch pass_share(Prefetch share, int i, int n) {
  const std::int64_t per = (share.lines + n - 1) / n;
  const std::int64_t first = std::min(share.lines, i * per);
  return {share.at + first * 64, std::min(share.lines, first + per) - first};
}

// Issues a Prefetch's lines spread over a loop of K iterations: tick() once per k.
class PrefetchStream {
 public:
  PrefetchStream(Prefetch p, std::int64_t K)
      : at_(p.at), end_(p.at + p.lines * 64),
        per_k_(p.lines > 0 && K > 0 ? (p.lines + K - 1) / K : 0) {}
  SLSTM_CELL_INLINE void tick() {
    for (std::int64_t j = 0; j < per_k_ && at_ < end_; ++j, at_ += 64) {
#if defined(__GNUC__)
      __builtin_prefetch(at_, 0, 2);  // into L2 (prefetcht1)
#endif
    }
  }

 private:
  const char* at_;
  const char* end_;
  std::int64_t per_k_;
};

// What a step kernel needs besides the weights.
struct StepArgs {
  std::int64_t H = 0;          // hidden size (K of the recurrent GEMM, row stride of h and c)
  // h_gemm is all zero: a call's first step from the zero state (no initial_state).  The
  // kernels then skip the recurrent product (recurrent_k): every term 0 * w is a zero (the
  // weights are finite: model.cpp refuses others, FP16 refuses what would round to inf) and
  // each sum starts at +0, so it would end at +0 anyway: the same bits, without streaming W_h.
  // (On AMX too: the tiles start at +0 and add the products 0 * w, so their sums are +0.)
  bool h_zero = false;
  std::int64_t units = 0;      // valid units in this group (1..16)
  std::int64_t unit0 = 0;      // first unit of the group
  const float* wh = nullptr;   // this group's packed Wh ([H][64]; AVX2: [4][H][16])
  // BF16/FP16 sessions on the AVX2 and AVX-512 kernels: Wh stored in 16 bits instead (same
  // layout as wh, which is then null), half the bytes a step streams; the values are the
  // rounded ones wh would hold, converted exactly on load.
  const std::uint16_t* wh16 = nullptr;
  bool wh16_is_bf16 = false;   // the codes of wh16: bfloat16 (true) or binary16
  // With wh16, on the AVX-512 kernels: where to store the group's weights as they are read,
  // widened to float32 in wh's layout ([H][64]), for the next blocks of rows to read as wh;
  // or null.
  float* wh_keep = nullptr;
  // BF16 sessions on AMX (cpu.amx): this group's W_h as tiles of bfloat16 pairs instead
  // ([gate pair][k_tiles][2 gates][16 pairs of k][16 units][2], pack_layer; wh and wh16 are
  // then null), and h as bfloat16 codes, row b at hb + b * ldh, zero from H to
  // k_tiles * kAmxK.
  // hb_next: the new h's codes (the kernel writes the group's units of each row).
  const std::uint16_t* wamx = nullptr;
  const std::uint16_t* hb = nullptr;
  std::uint16_t* hb_next = nullptr;
  std::int64_t ldh = 0, k_tiles = 0;
  float* sums = nullptr;  // the worker's scratch of kAmxSums floats, 64-byte aligned
  const float* bias = nullptr; // packed [64] of this group (forget_bias folded in)
  const float* h_prev = nullptr;  // [B][H], the state (a row past its length keeps it)
  const float* h_gemm = nullptr;  // [B][H], what the recurrent product reads: h_prev, or its
                                  // rounding in a BF16/FP16 session
  float* h_next = nullptr;        // [B][H]
  float* c = nullptr;             // [B][H], updated in place
  // Per batch row b of the block: the row of G (input projection, 64 floats for this group
  // at g_row[b]), the output row (or null), and whether the row is active at this step.
  const float* g_row[kMaxAmxRows] = {};
  float* out_row[kMaxAmxRows] = {};
  bool active[kMaxAmxRows] = {};
  std::int64_t b0 = 0;  // first batch row of the block
  CellKind cell = CellKind::kLstm;  // the layer's cell: which epilogue the kernel applies
  Prefetch next;                    // this block's share of the next group's weights
};

// How many k the recurrent product of a step runs over: H, or none (StepArgs::h_zero).
inline std::int64_t recurrent_k(const StepArgs& a) { return a.h_zero ? 0 : a.H; }

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

// One step of one group for nb (1..kMaxNb) batch rows starting at a.b0 (not on AMX:
// step_block_amx).
void step_block(const StepArgs& a, int nb, Kernel kernel);

// Input projection of nb (1..kMaxNb) rows for one group: out[b][0..63] = rows[b] . w, w the
// group's packed Wx (pack_layer: [K][64], or [4][K][16] on the AVX2 kernels).  `units`: the
// group's valid units (1..16); the AVX2 kernel leaves the columns of units 8..15 unwritten
// when units <= 8 (its step never reads them: step_rows_avx2).
void project_block(const float* w, const float* const* rows, std::int64_t K, float* const* out,
                   int nb, Kernel kernel, Prefetch next = {}, std::int64_t units = 16);

// The kernels of each ISA (the AVX ones exist on x86-64 GCC/Clang builds only: the others
// build the portable kernels alone, and name an x86 kernel under `if constexpr
// (kHaveX86Kernels)` only).
#if defined(__GNUC__) && defined(__x86_64__)
inline constexpr bool kHaveX86Kernels = true;
#else
inline constexpr bool kHaveX86Kernels = false;
#endif
void step_block_portable(const StepArgs& a, int nb);
void project_block_portable(const float* w, const float* const* rows, std::int64_t K,
                            float* const* out, int nb);
void step_block_avx2(const StepArgs& a, int nb);
void project_block_avx2(const float* w, const float* const* rows, std::int64_t K,
                        float* const* out, int nb, Prefetch next, std::int64_t units);
// project_block_avx2 over W_x's 16-bit codes in the same layout (bfloat16 when `bf16`, else
// binary16; a BF16 / FP16 session, pack_layer): the same sums as over their float32 values.
void project_block16_avx2(const std::uint16_t* w, bool bf16, const float* const* rows,
                          std::int64_t K, float* const* out, int nb, Prefetch next,
                          std::int64_t units);
void step_block_avx512(const StepArgs& a, int nb);
// The AVX-512 kernels' step with the recurrent products on AMX tiles (a.wamx): one step of
// `groups` (1..kAmxGroups) consecutive groups from a's (a.unit0, a.wamx, a.bias, a.g_row
// are the first one's) for nb (1..kMaxAmxRows) batch rows from a.b0.  Each gate sum is the
// tiles' dot products of 32 terms at a time added to the sum so far, in increasing k, in
// the AMX unit's own order and rounding (not the chain of FMAs of the other kernels;
// denormals count as zero); the epilogue is AVX-512's, and writes the new h's codes too.
// The tiles of all the groups run first (up to kAmxGroups of them, half as many for more
// than 16 rows: what the sums scratch holds), then all the epilogues: switching between
// the tiles and the vector units is slow.
void step_block_amx(const StepArgs& a, int nb, int groups);
// The input projection of `rows` rows for `groups` consecutive groups on AMX tiles, blocks
// of up to 32 rows: out row b, group i (at out + b * ld_out + i * 64, 64 floats) = x row b
// (bfloat16 codes at x + b * ldx, zero from I to k_tiles * 32) . group i's W_x tiles (at
// w + i * k_tiles * 4 * kAmxTile: [gate pair][k_tiles][2][16][16][2], pack_layer).
void project_rows_amx(const std::uint16_t* w, std::int64_t groups, const std::uint16_t* x,
                      std::int64_t ldx, std::int64_t k_tiles, float* out, std::int64_t ld_out,
                      std::int64_t rows);
void project_block_avx512(const float* w, const float* const* rows, std::int64_t K,
                          float* const* out, int nb, Prefetch next);
// dst[i] = the value of the 16-bit code src[i] (bfloat16 when `bf16`, else binary16), exact,
// for i < n: n a multiple of 8, src 32- and dst 64-byte aligned.  (The AVX-512 kernels widen
// codes as they read them instead: project_block16_avx512's `keep`, StepArgs::wh_keep.)
void widen_codes_avx2(const std::uint16_t* src, bool bf16, float* dst, std::int64_t n);
// project_block_avx512 over W_x's 16-bit codes in the same layout (bfloat16 when `bf16`, else
// binary16; a BF16 / FP16 session, pack_layer): the same sums as over their float32 values.
// `keep`: where to store the weights as they are read, widened to float32 ([K][64]), for the
// next blocks of rows to read with project_block_avx512; or null.
void project_block16_avx512(const std::uint16_t* w, bool bf16, const float* const* rows,
                            std::int64_t K, float* const* out, int nb, Prefetch next,
                            float* keep = nullptr);
// The generic path's GEMM (generic_backend.cpp) on AMX tiles, for `rows` rows: z[b][0..n)
// = base + x[b] . W, base = init[0..n) (the same for every row) or, without init, z[b]'s
// old values; x row b as bfloat16 codes at x + b * ldx (zero from K to k_tiles * 32), W's
// n rows in 32-column blocks of tiles at w + j * k_tiles * 2 * kAmxTile ([k_tiles][2 x 16
// columns][16 pairs of k][16][2], zero past K and n).  Each element's sum is the tiles' dot
// products of 32 terms at a time, in increasing k, then added to base: the same bits
// whatever the rows beside it or the block of rows it falls in.  sums: scratch of
// rows x 32 floats, 64-byte aligned.  Leaves the thread without tile state.
void gemm_rows_amx(float* const* z, const std::uint16_t* x, std::int64_t ldx,
                   std::int64_t rows, const std::uint16_t* w, std::int64_t k_tiles,
                   std::int64_t n, const float* init, float* sums);

}  // namespace slstm::cpu
