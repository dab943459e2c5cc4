// The CUDA kernels of the backend, as host-callable launchers. Every launcher checks its
// launch (cudaGetLastError) and returns the result; nothing here throws.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "step_plan.hpp"

namespace slstm_cuda {

// Copies a [B, T, D] (batch_major) or [T, B, D] input into the time-major augmented matrix
// dst [T*B, ld] (row t*B + b, columns 0..D-1). Column D holds 1.0 (set once at session
// creation, see launch_fill_column) so that the input GEMM adds the bias column of W_x.
cudaError_t launch_pack_input(cudaStream_t stream, const float* src, float* dst, int batch,
                              int time, int depth, int ld, bool batch_major);

// dst[r * ld + col] = value for r in [0, rows).
cudaError_t launch_fill_column(cudaStream_t stream, float* dst, std::int64_t rows, int ld,
                               int col, float value);

// One fused LSTM step of one layer for every row b < batch and unit u < hidden:
//   z [batch, 4H] (row stride 4H): pre-activations, bias and forget_bias included unless
//     bias is given: then bias [4H] (forget_bias folded in) is added here, in FP32;
//   c, h [batch, H]: the layer's state, updated in place for rows with t < len[b];
//   y (may be null): y[b * y_stride + u] = new h, or exactly 0 for rows with t >= len[b].
cudaError_t launch_lstm_step(cudaStream_t stream, const float* z, const float* bias, float* c,
                             float* h, float* y, std::int64_t y_stride, const std::int32_t* len,
                             int t, int batch, int hidden);

// The fused recurrent step for small batches: for every row b < batch and unit u < hidden,
//   z_q = z[b, q*H + u] (+ bias[q*H + u]) + sum_k h_prev[b, k] * wh[q*H + u, k],
// then the cell as launch_lstm_step does, except that h is double-buffered: h_next receives
// the new h (or h_prev's value for rows with t >= len[b]); c is updated in place.
// wh [4H, H] row-major. Only for shapes with rec_step_fits(batch, hidden) (step_plan.hpp);
// cudaErrorInvalidValue otherwise.
cudaError_t launch_lstm_rec_step(cudaStream_t stream, const float* wh, const float* z,
                                 const float* bias, const float* h_prev, float* h_next, float* c,
                                 float* y, std::int64_t y_stride, const std::int32_t* len, int t,
                                 int batch, int hidden);

// ---- The persistent recurrent kernel (persistent.cu; keyed setting cuda.persistent=on).
// ONE launch runs steps [t0, t1) of one layer, or of a whole stack as a wavefront, for a
// batch of at most 16 rows, without a launch per step and with the weights read from
// HBM/L2 once per launch instead of once per step. Each CTA keeps the four gate rows of its
// kRecWarps units in shared memory and c in registers; h alternates between h_even (read
// by even steps: the state's h) and h_odd (the second h buffer) as with the fused step.
//
// A layer either adds precomputed pre-activations z (wx null: the input GEMM ran before the
// launch; then its numbers are launch_lstm_rec_step's, bit for bit: the same sums in the
// same order, the same cell) or computes its input projection itself from [W_x | W_h] over
// [its input row | h] (wx given: the input row t of batch row b at src + t * src_step +
// b * ld_x, ld_x columns, the bias in W_x's column of ones unless `bias` is given). The
// layers of one launch occupy consecutive CTAs from cta_begin; a CTA starts step t once
// its own layer's CTAs have published step t - 1 and, for a layer with wx, the layer before
// it in the launch has published step t: step-tagged flags (a release store per CTA and
// step, acquire polls), each wait bounded in time: a wait longer than timeout_ns stops every
// CTA and sets *status (host-mapped) to 1; the call's results are then invalid and the
// session falls back (session.cpp). A cooperative launch of several CTAs needs them all
// resident at once (it fails rather than deadlock); the plan admits a launch only where
// persistent_ctas_per_sm says the device holds them. A launch of one step of one layer
// waits for nothing and needs no co-residency (the fallback's form).
struct PersistentLayer {
  const float* wh = nullptr;     // [4H, H] row-major
  const float* wx = nullptr;     // [4H, ld_x] row-major, or null: z holds the projection
  const float* z = nullptr;      // wx null: step t's pre-activations [batch, 4H] at z + t * z_step
  std::int64_t z_step = 0;
  const float* src = nullptr;    // wx given: the input rows (see above)
  std::int64_t src_step = 0;
  int ld_x = 0;
  const float* bias = nullptr;   // [4H] added in FP32, or null
  float* h_even = nullptr;       // [batch, H]
  float* h_odd = nullptr;        // [batch, H]
  float* c = nullptr;            // [batch, H]
  float* y = nullptr;            // row b of step t at y + t * y_step + b * y_stride, or null
  std::int64_t y_step = 0;
  std::int64_t y_stride = 0;
  int hidden = 0;
  int cta_begin = 0;             // first CTA of this layer in the launch
  // The hybrid tier (cuda.hybrid=on; wx null only): the first `resident` columns of each of
  // the CTA's W_h rows in shared memory, the rest read from wh every step (through the
  // read-only cache, in the same order: the same bits). -1: all of them.
  int resident = -1;
};
struct PersistentArgs {
  PersistentLayer layer[kMaxStackLayers];
  int layers = 0;
  const std::int32_t* len = nullptr;  // [batch] device memory
  int t0 = 0;
  int t1 = 0;
  int batch = 0;
  unsigned* sync = nullptr;      // persistent_sync_words(CTAs of the launch), zeroed before step 0
  int* status = nullptr;         // host-mapped word, set to 1 on a timeout
  long long timeout_ns = 0;      // bound of one wait (0: every wait gives up at once)
  // The launch ends the call: when its last step leaves h in h_odd, the kernel also puts it
  // into h_even (the state), after a last wait of each layer's CTAs for one another.
  bool finalize = false;
};
// (persistent_ctas, persistent_sync_words, persistent_smem_bytes: step_plan.hpp.)
// CTAs of the batch's kernel with `smem` bytes each that one SM of the current device holds
// at once (0: none, or batch > 16, or a CUDA error, which is cleared). Raises the kernel's
// dynamic shared memory limit to the current device's opt-in maximum.
int persistent_ctas_per_sm(int batch, std::size_t smem);
// The launch: CTAs as the layers' cta_begin and hidden sizes say, `smem` bytes each (the
// largest any of its layers needs); cooperative: all CTAs resident at once (needed whenever
// a CTA waits: several steps, or several layers).
// `window` (bytes 0: none): an L2 access policy window for the launch, its lines persisting
// with probability hit_ratio (the hybrid tier's W_h; the device's persisting L2 set-aside is
// the session's to size, cudaLimitPersistingL2CacheSize).
struct L2Window {
  const void* base = nullptr;
  std::size_t bytes = 0;
  float hit_ratio = 0.0f;
};
cudaError_t launch_lstm_persistent(cudaStream_t stream, const PersistentArgs& args,
                                   std::size_t smem, bool cooperative,
                                   const L2Window& window = L2Window{});

// ---- The cluster tier (persistent_cluster.cu; keyed setting cuda.cluster=on): steps
// [t0, t1) of ONE layer with precomputed pre-activations (layer.wx null; cta_begin unused) on
// ONE thread-block cluster of `ctas` CTAs (cluster_shape, step_plan.hpp), CTA r owning units
// [r * units, (r + 1) * units) of H. W_h's rows of its units stay in its shared memory, c of
// its units too; each step its warps take its units in turn, each unit's sums, reduction and
// cell exactly as launch_lstm_rec_step's (the same bits), and the owner lane of (row b, unit
// u) stores the new h straight into the next step's h buffer in the shared memory of every
// CTA of the cluster; then one cluster barrier. No step flags and no wait that can time out:
// the hardware runs a cluster's CTAs together or refuses the launch. The state's h and c are
// read at the start and written after the last step (into h_odd or h_even as the fused step's
// parity would leave them, and into h_even as well with finalize), y every step.
struct ClusterArgs {
  PersistentLayer layer;
  const std::int32_t* len = nullptr;  // [batch] device memory
  int t0 = 0;
  int t1 = 0;
  int batch = 0;
  int units = 0;  // per CTA
  bool finalize = false;
};
// Whether the current device launches one cluster of `ctas` CTAs of the batch's cluster
// kernel with `smem` bytes each (cudaOccupancyMaxActiveClusters >= 1; false on a CUDA error,
// which is cleared). Raises the kernel's shared memory limit to the device's opt-in maximum
// and allows the non-portable cluster size 16.
bool cluster_launchable(int batch, int ctas, std::size_t smem);
cudaError_t launch_lstm_cluster(cudaStream_t stream, const ClusterArgs& args, int ctas,
                                std::size_t smem);

// Stream slots: copies between the slots' states (slot s's packed batch-1 state: row_floats
// floats at slots + s * row_floats) and a packed state of `batch` rows (piece p of row b at
// packed + batch * off[p] + b * (off[p+1] - off[p]), the C API's STATE PACKING). off
// [pieces + 1] ascending, off[0] = 0, off[pieces] = row_floats (device memory); ids [batch]
// slot ids (device memory), distinct. to_packed: slots -> packed (gather), else packed ->
// slots (scatter).
cudaError_t launch_slot_copy(cudaStream_t stream, float* slots, float* packed,
                             const std::int64_t* ids, const std::int64_t* off, int pieces,
                             std::int64_t row_floats, int batch, bool to_packed);

// cudaSuccess when this module has a kernel image the current device can run.
cudaError_t check_kernel_image();

// `device` if it exists (else SLSTM_ERR_BACKEND_UNAVAILABLE with the reason); and a check
// that the current device (`device`) runs this build's kernels (session_init.cpp).
int usable_device(int device);
void require_kernel_image(int device);

}  // namespace slstm_cuda
