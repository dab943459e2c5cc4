// The CUDA kernels of the backend, as host-callable launchers. Every launcher checks its
// launch (cudaGetLastError) and returns the result; nothing here throws.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

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
// wh [4H, H] row-major. Only for shapes with rec_step_fits(batch, hidden) (batch <= 16 and the
// staged h_prev within kRecMaxSmem); cudaErrorInvalidValue otherwise.
constexpr std::size_t kRecMaxSmem = 48 * 1024;
bool rec_step_fits(int batch, int hidden);
// Where the fused step beat cuBLAS + the step kernel on an H100 (bench/results/
// gpu-fused-step.md): everywhere the recurrent GEMM is small (seed: 5.4x); not where
// streaming W_h dominates (B <= 2 with large H, B >= 3 with the largest H), there cuBLAS's
// GEMV-like kernels read it faster.
bool rec_step_preferred(int batch, int hidden, bool tf32);
cudaError_t launch_lstm_rec_step(cudaStream_t stream, const float* wh, const float* z,
                                 const float* bias, const float* h_prev, float* h_next, float* c,
                                 float* y, std::int64_t y_stride, const std::int32_t* len, int t,
                                 int batch, int hidden);

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

}  // namespace slstm_cuda
