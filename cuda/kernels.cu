// The backend's kernels. The cell arithmetic is slstm::lstm_cell from src/gate_math.hpp, the
// very function the CPU backends run.
#include "kernels.cuh"

#include "step_math.cuh"

namespace slstm_cuda {
namespace {

using step_math::LstmCell;
using step_math::RecReduce;
using step_math::rec_park;
using step_math::weight;

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

template <typename Cell>
__global__ void lstm_step_kernel(const float* __restrict__ z, const float* __restrict__ bias,
                                 float* __restrict__ c, float* __restrict__ h, float* __restrict__ y,
                                 std::int64_t y_stride, const std::int32_t* __restrict__ len,
                                 int t, int batch, int hidden) {
  constexpr int G = Cell::kGates;
  const std::int64_t n = static_cast<std::int64_t>(batch) * hidden;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const std::int64_t b = i / hidden;
    const std::int64_t u = i - b * hidden;
    float out = 0.0f;
    if (t < len[b]) {
      const float* zr = z + b * G * static_cast<std::int64_t>(hidden);
      float zq[G];
      for (int q = 0; q < G; ++q) {
        const std::int64_t r = q * static_cast<std::int64_t>(hidden) + u;
        zq[q] = bias != nullptr ? zr[r] + bias[r] : zr[r];
      }
      out = Cell::update(zq, c, h, i);
    }
    if (y != nullptr) y[b * y_stride + u] = out;
  }
}

template <typename W, typename Cell, int BMAX>
__global__ void __launch_bounds__(kRecThreads)
lstm_rec_step_kernel(const W* __restrict__ wh, const float* __restrict__ z,
                     const float* __restrict__ bias, const float* __restrict__ h_prev,
                     float* __restrict__ h_next, float* __restrict__ c, float* __restrict__ y,
                     std::int64_t y_stride, const std::int32_t* __restrict__ len, int t,
                     int batch, int hidden) {
  static_assert(Cell::kGates == 4, "the k loop below is written for four gate rows");
  constexpr int N = Cell::kGates * BMAX;
  SLSTM_DYNAMIC_SMEM(float, smem);
  float* hs = smem;                                   // [BMAX][hidden]
  float* red = smem + static_cast<std::int64_t>(BMAX) * hidden;  // [kRecWarps][N]
  const int n_h = BMAX * hidden;
  const int n_live = batch * hidden;
  for (int i = threadIdx.x; i < n_h; i += kRecThreads) hs[i] = i < n_live ? h_prev[i] : 0.0f;
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int u = blockIdx.x * kRecWarps + warp;
  if (u >= hidden) return;  // whole warps only, after the block's last barrier

  const std::int64_t gate_stride = static_cast<std::int64_t>(hidden) * hidden;
  const W* w = wh + static_cast<std::int64_t>(u) * hidden;
  float v[N];
  step_math::rec_sums<BMAX>(step_math::LoadLdg{}, w, gate_stride, hs, hidden, hidden, lane, v);
  RecReduce<N, 16>::run(v, lane);
  float* my_red = red + warp * N;
  rec_park<N>(v, lane, my_red);
  __syncwarp();
  if (lane < batch) {
    const int b = lane;
    const float* zr = z + static_cast<std::int64_t>(b) * Cell::kGates * hidden;
    float zq[Cell::kGates];
#pragma unroll
    for (int q = 0; q < Cell::kGates; ++q) {
      const int r = q * hidden + u;
      zq[q] = zr[r] + my_red[Cell::kGates * b + q];
      if (bias != nullptr) zq[q] += bias[r];
    }
    const std::int64_t i = static_cast<std::int64_t>(b) * hidden + u;
    float out = 0.0f;
    if (t < len[b]) {
      out = Cell::update(zq, c, h_next, i);
    } else {
      h_next[i] = hs[b * hidden + u];  // frozen past the sequence's length
    }
    if (y != nullptr) y[b * y_stride + u] = out;
  }
}

}  // namespace

cudaError_t launch_lstm_rec_step(cudaStream_t stream, const float* wh, const float* z,
                                 const float* bias, const float* h_prev, float* h_next, float* c,
                                 float* y, std::int64_t y_stride, const std::int32_t* len, int t,
                                 int batch, int hidden) {
  if (!rec_step_fits(batch, hidden)) return cudaErrorInvalidValue;
  const int bmax = rec_bmax(batch);
  const int blocks = (hidden + kRecWarps - 1) / kRecWarps;
  const std::size_t smem = rec_smem_bytes(bmax, hidden);
  switch (bmax) {
#define SLSTM_REC_CASE(BM)                                                                  \
  case BM:                                                                                  \
    SLSTM_LAUNCH(blocks, kRecThreads, smem, stream,                                          \
                 lstm_rec_step_kernel<float, LstmCell, BM>)(                                 \
        wh, z, bias, h_prev, h_next, c, y, y_stride, len, t, batch, hidden);                \
    break;
    SLSTM_REC_CASE(1)
    SLSTM_REC_CASE(2)
    SLSTM_REC_CASE(4)
    SLSTM_REC_CASE(8)
    SLSTM_REC_CASE(16)
#undef SLSTM_REC_CASE
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_pack_input(cudaStream_t stream, const float* src, float* dst, int batch,
                              int time, int depth, int ld, bool batch_major) {
  const std::int64_t n = static_cast<std::int64_t>(time) * batch * depth;
  if (n == 0) return cudaSuccess;
  SLSTM_LAUNCH(blocks_for(n), kThreads, 0, stream, pack_input_kernel)(
      src, dst, batch, time, depth, ld, batch_major ? 1 : 0);
  return cudaGetLastError();
}

cudaError_t launch_fill_column(cudaStream_t stream, float* dst, std::int64_t rows, int ld,
                               int col, float value) {
  if (rows == 0) return cudaSuccess;
  SLSTM_LAUNCH(blocks_for(rows), kThreads, 0, stream, fill_column_kernel)(dst, rows, ld, col,
                                                                          value);
  return cudaGetLastError();
}

cudaError_t launch_lstm_step(cudaStream_t stream, const float* z, const float* bias, float* c,
                             float* h, float* y, std::int64_t y_stride, const std::int32_t* len,
                             int t, int batch, int hidden) {
  const std::int64_t n = static_cast<std::int64_t>(batch) * hidden;
  if (n == 0) return cudaSuccess;
  SLSTM_LAUNCH(blocks_for(n), kThreads, 0, stream, lstm_step_kernel<LstmCell>)(
      z, bias, c, h, y, y_stride, len, t, batch, hidden);
  return cudaGetLastError();
}

// One thread per float of the batch's state; the piece by binary search over off.
__global__ void slot_copy_kernel(float* __restrict__ slots, float* __restrict__ packed,
                                 const std::int64_t* __restrict__ ids,
                                 const std::int64_t* __restrict__ off, int pieces,
                                 std::int64_t row_floats, int batch, int to_packed) {
  const std::int64_t n = static_cast<std::int64_t>(batch) * row_floats;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t b = i / row_floats, j = i % row_floats;
    int lo = 0, hi = pieces - 1;  // the last p with off[p] <= j
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (off[mid] <= j) lo = mid;
      else hi = mid - 1;
    }
    const std::int64_t width = off[lo + 1] - off[lo];
    float* p = packed + batch * off[lo] + b * width + (j - off[lo]);
    float* s = slots + ids[b] * row_floats + j;
    if (to_packed) *p = *s;
    else *s = *p;
  }
}

cudaError_t launch_slot_copy(cudaStream_t stream, float* slots, float* packed,
                             const std::int64_t* ids, const std::int64_t* off, int pieces,
                             std::int64_t row_floats, int batch, bool to_packed) {
  const std::int64_t n = static_cast<std::int64_t>(batch) * row_floats;
  if (n == 0 || pieces < 1) return cudaSuccess;
  SLSTM_LAUNCH(blocks_for(n), kThreads, 0, stream, slot_copy_kernel)(
      slots, packed, ids, off, pieces, row_floats, batch, to_packed ? 1 : 0);
  return cudaGetLastError();
}

#ifndef SLSTM_CUDA_SIM
cudaError_t check_kernel_image() {
  cudaFuncAttributes attr{};
  return cudaFuncGetAttributes(&attr, lstm_step_kernel<LstmCell>);
}
#endif

}  // namespace slstm_cuda
