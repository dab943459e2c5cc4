// The backend's kernels. The cell arithmetic is slstm::lstm_cell from src/gate_math.hpp, the
// very function the CPU backends run.
#include "kernels.cuh"

#include "../src/gate_math.hpp"

namespace slstm_cuda {
namespace {

constexpr int kThreads = 256;
constexpr std::int64_t kMaxBlocks = 65535;

int blocks_for(std::int64_t n) {
  const std::int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

__global__ void pack_input_kernel(const float* __restrict__ src, float* __restrict__ dst,
                                  int batch, int time, int depth, int ld, int batch_major) {
  const std::int64_t n = static_cast<std::int64_t>(time) * batch * depth;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const std::int64_t row = i / depth;  // time-major row t * batch + b
    const std::int64_t k = i - row * depth;
    const std::int64_t t = row / batch;
    const std::int64_t b = row - t * batch;
    const std::int64_t src_row = batch_major ? b * time + t : row;
    dst[row * ld + k] = src[src_row * depth + k];
  }
}

__global__ void fill_column_kernel(float* __restrict__ dst, std::int64_t rows, int ld, int col,
                                   float value) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       r < rows; r += stride) {
    dst[r * ld + col] = value;
  }
}

__global__ void lstm_step_kernel(const float* __restrict__ z, const float* __restrict__ bias,
                                 float* __restrict__ c, float* __restrict__ h, float* __restrict__ y,
                                 std::int64_t y_stride, const std::int32_t* __restrict__ len,
                                 int t, int batch, int hidden) {
  const std::int64_t n = static_cast<std::int64_t>(batch) * hidden;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const std::int64_t b = i / hidden;
    const std::int64_t u = i - b * hidden;
    float out = 0.0f;
    if (t < len[b]) {
      const float* zr = z + b * 4 * static_cast<std::int64_t>(hidden);
      float zq[4];
      for (int q = 0; q < 4; ++q) {
        const std::int64_t r = q * static_cast<std::int64_t>(hidden) + u;
        zq[q] = bias != nullptr ? zr[r] + bias[r] : zr[r];
      }
      float c_new = 0.0f, h_new = 0.0f;
      // forget_bias is already in z (the input projection's bias column) or in bias.
      slstm::lstm_cell(zq[slstm::kGateI], zq[slstm::kGateF], zq[slstm::kGateG],
                       zq[slstm::kGateO], 0.0f, c[i], &c_new, &h_new);
      c[i] = c_new;
      h[i] = h_new;
      out = h_new;
    }
    if (y != nullptr) y[b * y_stride + u] = out;
  }
}

}  // namespace

cudaError_t launch_pack_input(cudaStream_t stream, const float* src, float* dst, int batch,
                              int time, int depth, int ld, bool batch_major) {
  const std::int64_t n = static_cast<std::int64_t>(time) * batch * depth;
  if (n == 0) return cudaSuccess;
  pack_input_kernel<<<blocks_for(n), kThreads, 0, stream>>>(src, dst, batch, time, depth, ld,
                                                            batch_major ? 1 : 0);
  return cudaGetLastError();
}

cudaError_t launch_fill_column(cudaStream_t stream, float* dst, std::int64_t rows, int ld,
                               int col, float value) {
  if (rows == 0) return cudaSuccess;
  fill_column_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(dst, rows, ld, col, value);
  return cudaGetLastError();
}

cudaError_t launch_lstm_step(cudaStream_t stream, const float* z, const float* bias, float* c,
                             float* h, float* y, std::int64_t y_stride, const std::int32_t* len,
                             int t, int batch, int hidden) {
  const std::int64_t n = static_cast<std::int64_t>(batch) * hidden;
  if (n == 0) return cudaSuccess;
  lstm_step_kernel<<<blocks_for(n), kThreads, 0, stream>>>(z, bias, c, h, y, y_stride, len, t,
                                                           batch, hidden);
  return cudaGetLastError();
}

cudaError_t check_kernel_image() {
  cudaFuncAttributes attr{};
  return cudaFuncGetAttributes(&attr, lstm_step_kernel);
}

}  // namespace slstm_cuda
