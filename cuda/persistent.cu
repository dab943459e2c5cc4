// The persistent recurrent kernel (kernels.cuh, "The persistent recurrent kernel"): the
// fused small-batch step of kernels.cu run for every step of a chunk inside ONE launch.
//
// Layout. CTA j owns units u = j * kRecWarps + w (warp w), as the fused step's blocks do.
// Its shared memory holds, for its kRecWarps units, the four gate rows of W_h
// (ws[w][q][k] = W_h[q*H + u][k], loaded once per launch: lane-strided reads are
// conflict-free), h_{t-1} staged for every row (as the fused step stages it) and the
// parking area of the warp reduction. Lane b < batch of warp w keeps c of (b, u) in a
// register for the whole launch.
//
// Per step t: stage h_{t-1} (L2 loads: another CTA wrote it, L1 is not coherent), every lane
// accumulates its k = lane, lane + 32, ... in the fused step's order, RecReduce + rec_park,
// lane b adds z (and bias) and runs the cell: the same operations in the same order as
// lstm_rec_step_kernel, hence the same bits. Then the grid barrier: after __syncthreads,
// thread 0 fences and release-stores t + 1 into its CTA's flag; threads j < gridDim.x
// acquire-poll flag j until it reaches t + 1. One barrier per step suffices with h
// double-buffered: a CTA overwrites the buffer it read at step t - 1 only after every CTA
// has published step t - 1, which it does after staging.
//
// A wait is bounded by timeout_ns (globaltimer): past it, the CTA raises the abort word
// (read by every waiter) and the host-mapped status, and every CTA leaves at its next
// barrier. Nothing here can hang the device.
#include <cuda/atomic>

#include "kernels.cuh"
#include "step_math.cuh"

namespace slstm_cuda {
namespace {

using step_math::kRecThreads;
using step_math::kRecWarps;
using step_math::LstmCell;
using step_math::rec_bmax;
using step_math::rec_park;
using step_math::RecReduce;

constexpr int kFlagStride = 32;  // words between two CTAs' flags: one 128-byte line each

__device__ __forceinline__ long long global_ns() {
  long long t = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Waits until flag j holds at least `step`; false when the wait was abandoned (abort raised
// by another CTA, or this wait ran out of time: then this thread raises it).
__device__ bool wait_flag(unsigned* sync, int j, int ctas, unsigned step, int* status,
                          long long timeout_ns) {
  cuda::atomic_ref<unsigned, cuda::thread_scope_device> flag(sync[j * kFlagStride]);
  cuda::atomic_ref<unsigned, cuda::thread_scope_device> abort_word(sync[ctas * kFlagStride]);
  if (timeout_ns <= 0) {  // cuda.persistent_timeout_us=0: every wait fails (tests the fallback)
    abort_word.store(1u, cuda::memory_order_relaxed);
    *reinterpret_cast<volatile int*>(status) = 1;
    __threadfence_system();
    return false;
  }
  long long start = 0;
  for (unsigned spins = 0;; ++spins) {
    if (flag.load(cuda::memory_order_acquire) >= step) return true;
    if ((spins & 63u) == 0) {
      if (abort_word.load(cuda::memory_order_relaxed) != 0) return false;
      const long long now = global_ns();
      if (spins == 0) {
        start = now;
      } else if (now - start > timeout_ns) {
        abort_word.store(1u, cuda::memory_order_relaxed);
        *reinterpret_cast<volatile int*>(status) = 1;
        __threadfence_system();
        return false;
      }
    }
  }
}

template <int BMAX>
__global__ void __launch_bounds__(kRecThreads, 1) lstm_persistent_kernel(PersistentArgs a) {
  constexpr int N = LstmCell::kGates * BMAX;
  extern __shared__ float smem[];
  __shared__ int stop;
  const int H = a.hidden;
  const std::int64_t G = static_cast<std::int64_t>(LstmCell::kGates) * H;
  float* ws = smem;                                           // [kRecWarps][4][H]
  float* hs = ws + static_cast<std::int64_t>(kRecWarps) * G;  // [BMAX][H]
  float* red = hs + static_cast<std::int64_t>(BMAX) * H;      // [kRecWarps][N]
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int u0 = static_cast<int>(blockIdx.x) * kRecWarps;
  const int u = u0 + warp;
  const bool live = u < H;
  const int ctas = static_cast<int>(gridDim.x);

  // This CTA's W_h rows, once (rows of units past H: zero, never used).
  const std::int64_t n_w = static_cast<std::int64_t>(kRecWarps) * G;
  for (std::int64_t i = threadIdx.x; i < n_w; i += kRecThreads) {
    const std::int64_t w = i / G, r = i - w * G, q = r / H, k = r - q * H;
    const std::int64_t uu = u0 + w;
    ws[i] = uu < H ? a.wh[(q * H + uu) * H + k] : 0.0f;
  }
  const bool owner = live && lane < a.batch;  // lane b owns (row b, unit u)
  const std::int64_t i_own = static_cast<std::int64_t>(lane) * H + u;
  float c = owner ? a.c[i_own] : 0.0f;
  if (threadIdx.x == 0) stop = 0;
  __syncthreads();

  const int n_h = BMAX * H;
  const int n_live = a.batch * H;
  for (int t = a.t0; t < a.t1; ++t) {
    const bool even = (t & 1) == 0;
    const float* h_prev = even ? a.h_even : a.h_odd;
    float* h_next = even ? a.h_odd : a.h_even;
    for (int i = static_cast<int>(threadIdx.x); i < n_h; i += kRecThreads) {
      hs[i] = i < n_live ? __ldcg(h_prev + i) : 0.0f;
    }
    __syncthreads();
    if (live) {
      const float* w = ws + static_cast<std::int64_t>(warp) * G;
      float v[N];
#pragma unroll
      for (int i = 0; i < N; ++i) v[i] = 0.0f;
#pragma unroll 4
      for (int k = lane; k < H; k += 32) {
        const float w0 = w[k];
        const float w1 = w[H + k];
        const float w2 = w[2 * H + k];
        const float w3 = w[3 * H + k];
#pragma unroll
        for (int b = 0; b < BMAX; ++b) {
          const float x = hs[b * H + k];
          v[4 * b + 0] = fmaf(w0, x, v[4 * b + 0]);
          v[4 * b + 1] = fmaf(w1, x, v[4 * b + 1]);
          v[4 * b + 2] = fmaf(w2, x, v[4 * b + 2]);
          v[4 * b + 3] = fmaf(w3, x, v[4 * b + 3]);
        }
      }
      RecReduce<N, 16>::run(v, lane);
      float* my_red = red + warp * N;
      rec_park<N>(v, lane, my_red);
      __syncwarp();
      if (owner) {
        const int b = lane;
        const float* zr = a.z + t * a.z_step + static_cast<std::int64_t>(b) * G;
        float zq[LstmCell::kGates];
#pragma unroll
        for (int q = 0; q < LstmCell::kGates; ++q) {
          const int r = q * H + u;
          zq[q] = zr[r] + my_red[LstmCell::kGates * b + q];
          if (a.bias != nullptr) zq[q] += a.bias[r];
        }
        float out = 0.0f;
        if (t < a.len[b]) {
          out = LstmCell::cell(zq, c);
          __stcg(h_next + i_own, out);
        } else {
          __stcg(h_next + i_own, hs[b * H + u]);  // frozen past the sequence's length
        }
        if (a.y != nullptr) a.y[t * a.y_step + b * a.y_stride + u] = out;
      }
    }
    if (t + 1 == a.t1) break;  // the kernel's end orders the last step's writes
    // The grid barrier of step t.
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      cuda::atomic_ref<unsigned, cuda::thread_scope_device> mine(
          a.sync[static_cast<int>(blockIdx.x) * kFlagStride]);
      mine.store(static_cast<unsigned>(t + 1), cuda::memory_order_release);
    }
    for (int j = static_cast<int>(threadIdx.x); j < ctas; j += kRecThreads) {
      if (!wait_flag(a.sync, j, ctas, static_cast<unsigned>(t + 1), a.status, a.timeout_ns)) {
        stop = 1;
      }
    }
    __threadfence();
    __syncthreads();
    if (stop != 0) break;  // the results are invalid; the host knows from *status
  }
  if (owner) a.c[i_own] = c;
}

template <int BMAX>
void* kernel_of() {
  return reinterpret_cast<void*>(&lstm_persistent_kernel<BMAX>);
}

void* persistent_kernel(int bmax) {
  switch (bmax) {
    case 1: return kernel_of<1>();
    case 2: return kernel_of<2>();
    case 4: return kernel_of<4>();
    case 8: return kernel_of<8>();
    case 16: return kernel_of<16>();
    default: return nullptr;
  }
}

}  // namespace

int persistent_ctas(int hidden) { return (hidden + kRecWarps - 1) / kRecWarps; }

std::size_t persistent_sync_words(int hidden) {
  return static_cast<std::size_t>(persistent_ctas(hidden) + 1) * kFlagStride;
}

std::size_t persistent_smem_bytes(int batch, int hidden) {
  const auto h = static_cast<std::size_t>(hidden);
  const auto bmax = static_cast<std::size_t>(rec_bmax(batch));
  return (static_cast<std::size_t>(kRecWarps) * 4 * h + bmax * h +
          static_cast<std::size_t>(kRecWarps) * 4 * bmax) *
         sizeof(float);
}

int persistent_ctas_per_sm(int batch, int hidden) {
  void* kernel = persistent_kernel(rec_bmax(batch));
  if (kernel == nullptr || batch < 1 || hidden < 1) return 0;
  int device = 0, optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
          cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  const std::size_t smem = persistent_smem_bytes(batch, hidden);
  if (smem > static_cast<std::size_t>(optin)) return 0;
  // The device's limit, not this shape's size: the attribute belongs to the kernel, which
  // other layers and sessions launch with other sizes.
  int per_sm = 0;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin) !=
          cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kRecThreads, smem) !=
          cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return per_sm;
}

cudaError_t launch_lstm_persistent(cudaStream_t stream, const PersistentArgs& args) {
  void* kernel = persistent_kernel(rec_bmax(args.batch));
  if (kernel == nullptr || args.hidden < 1 || args.t0 < 0 || args.t1 <= args.t0) {
    return cudaErrorInvalidValue;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(persistent_ctas(args.hidden)));
  cfg.blockDim = dim3(kRecThreads);
  cfg.dynamicSmemBytes = persistent_smem_bytes(args.batch, args.hidden);
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;
  attr[0].val.cooperative = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  void* params[] = {const_cast<PersistentArgs*>(&args)};
  const cudaError_t e = cudaLaunchKernelExC(&cfg, kernel, params);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
}

}  // namespace slstm_cuda
