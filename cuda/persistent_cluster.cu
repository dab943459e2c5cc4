// The cluster tier of the persistent recurrent kernel (kernels.cuh, "The cluster tier"):
// one layer's steps [t0, t1) on ONE thread-block cluster (sm_90), h exchanged through the
// cluster's distributed shared memory with one hardware barrier per step.
//
// Layout. CTA r of the cluster owns units [r * units, min(H, (r + 1) * units)); warp w takes
// its units w, w + kRecWarps, ... in turn. Its shared memory holds the four gate rows of W_h
// of each of its units (ws[j][q][k], loaded once per launch), h_{t-1} of every batch row
// twice (xs[2][BMAX][H]: the buffer step t reads and the one step t + 1 reads), c of its
// units (cs[j][b]) and the parking area of the warp reduction.
//
// Per step t, for each of the warp's units: the sums over the buffer of step t in the fused
// step's order (rec_sums, RecReduce, rec_park: launch_lstm_rec_step's bits), lane b adds z
// and the bias and runs the cell, then stores the new h (or, past row b's length, the old
// one) into the other buffer of EVERY CTA of the cluster (its own included) and y into
// global memory. Then the cluster barrier (arrive.release / wait.acquire): every CTA's
// stores of step t are visible everywhere before any CTA starts step t + 1. One barrier per
// step suffices with two buffers: the buffer step t + 1 writes was last read at step t - 1,
// and every CTA's reads of step t - 1 came before its arrival at the barrier that ended it.
// A barrier before step t0 (every CTA has started and initialised its buffers before any
// other writes into them) and the one after the last step (none leaves while others may
// still write into its shared memory) bracket the launch.
#ifndef SLSTM_CUDA_SIM  // (the simulator of tests/cuda_sim brings its own)
#include <cooperative_groups.h>
#endif

#include "kernels.cuh"
#include "step_math.cuh"

namespace slstm_cuda {
namespace {

using step_math::LstmCell;
using step_math::rec_park;
using step_math::RecReduce;

// The cluster primitives: this CTA's rank, the barrier, a peer's address of a shared buffer.
#ifdef SLSTM_CUDA_SIM
inline unsigned cta_rank() { return ::slstm_sim::cluster_rank(); }
inline unsigned cta_count() { return ::slstm_sim::cluster_size(); }
inline void cluster_barrier() { ::slstm_sim::cluster_sync(__LINE__); }
inline float* peer_of(float* p, unsigned rank) {
  return static_cast<float*>(::slstm_sim::cluster_peer_smem(p, rank));
}
#elif !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
namespace cg = cooperative_groups;
__device__ __forceinline__ unsigned cta_rank() { return cg::this_cluster().block_rank(); }
__device__ __forceinline__ unsigned cta_count() { return cg::this_cluster().num_blocks(); }
__device__ __forceinline__ void cluster_barrier() { cg::this_cluster().sync(); }
__device__ __forceinline__ float* peer_of(float* p, unsigned rank) {
  return cg::this_cluster().map_shared_rank(p, rank);
}
#else  // (before sm_90: no clusters; the plan never launches the kernel there)
#define SLSTM_CLUSTER_UNSUPPORTED 1
#endif

template <int BMAX>
__global__ void __launch_bounds__(kRecThreads, 1) lstm_cluster_kernel(const ClusterArgs a) {
#ifdef SLSTM_CLUSTER_UNSUPPORTED
  (void)a;
#else
  constexpr int N = LstmCell::kGates * BMAX;
  constexpr int G = LstmCell::kGates;
  SLSTM_DYNAMIC_SMEM(float, smem);
  const PersistentLayer& L = a.layer;
  const int H = L.hidden;
  const int U = a.units;
  const unsigned rank = cta_rank(), ctas = cta_count();
  const int u0 = static_cast<int>(rank) * U;
  const int mine = u0 < H ? (H - u0 < U ? H - u0 : U) : 0;  // this CTA's units
  const std::int64_t GH = static_cast<std::int64_t>(G) * H;
  const std::int64_t n_h = static_cast<std::int64_t>(BMAX) * H;
  float* ws = smem;                                     // [U][4][H]
  float* xs = ws + static_cast<std::int64_t>(U) * GH;   // [2][BMAX][H]
  float* cs = xs + 2 * n_h;                             // [U][BMAX]
  float* red = cs + static_cast<std::int64_t>(U) * BMAX;  // [kRecWarps][N]
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;

  // Once: the rows of W_h, h of the launch's first step (rows past the batch zero in both
  // buffers: never written after), c.
  const std::int64_t n_w = static_cast<std::int64_t>(U) * GH;
  for (std::int64_t i = threadIdx.x; i < n_w; i += kRecThreads) {
    const std::int64_t j = i / GH, r = i - j * GH, q = r / H, k = r - q * H;
    ws[i] = j < mine ? L.wh[(q * H + u0 + j) * H + k] : 0.0f;
  }
  const float* h_first = (a.t0 & 1) == 0 ? L.h_even : L.h_odd;
  const std::int64_t n_live = static_cast<std::int64_t>(a.batch) * H;
  for (std::int64_t i = threadIdx.x; i < n_h; i += kRecThreads) {
    xs[i] = i < n_live ? __ldcg(h_first + i) : 0.0f;
    if (i >= n_live) xs[n_h + i] = 0.0f;
  }
  for (int i = static_cast<int>(threadIdx.x); i < U * BMAX; i += kRecThreads) {
    const int j = i / BMAX, b = i - j * BMAX;
    cs[i] = j < mine && b < a.batch ? L.c[static_cast<std::int64_t>(b) * H + u0 + j] : 0.0f;
  }
  __syncthreads();
  cluster_barrier();

  for (int t = a.t0; t < a.t1; ++t) {
    const bool odd = ((t - a.t0) & 1) != 0;
    const float* cur = xs + (odd ? n_h : 0);
    float* next = xs + (odd ? 0 : n_h);
    const bool last = t + 1 == a.t1;
    for (int j = warp; j < mine; j += kRecWarps) {  // (warp-uniform)
      const int u = u0 + j;
      float v[N];
      step_math::rec_sums<BMAX>(step_math::LoadPlain{}, ws + j * GH, H, cur, H, H, lane, v);
      RecReduce<N, 16>::run(v, lane);
      float* my_red = red + warp * N;
      rec_park<N>(v, lane, my_red);
      __syncwarp();
      if (lane < a.batch) {
        const int b = lane;
        const float* zr = L.z + t * L.z_step + static_cast<std::int64_t>(b) * GH;
        float zq[G];
#pragma unroll
        for (int q = 0; q < G; ++q) zq[q] = zr[q * H + u] + my_red[G * b + q];
        if (L.bias != nullptr) {
#pragma unroll
          for (int q = 0; q < G; ++q) zq[q] += L.bias[q * H + u];
        }
        float out = 0.0f, h = cur[b * H + u];  // frozen past the sequence's length
        float& c = cs[j * BMAX + b];
        if (t < a.len[b]) {
          float ci = c;
          out = LstmCell::cell(zq, ci);
          c = ci;
          h = out;
        }
        for (unsigned r = 0; r < ctas; ++r) peer_of(next, r)[b * H + u] = h;
        if (L.y != nullptr) __stcg(L.y + t * L.y_step + b * L.y_stride + u, out);
        if (last) {
          const std::int64_t i = static_cast<std::int64_t>(b) * H + u;
          L.c[i] = c;
          // Where the fused step's parity leaves the last h, and the state's h for finalize.
          __stcg(((t & 1) == 0 ? L.h_odd : L.h_even) + i, h);
          if (a.finalize) __stcg(L.h_even + i, h);
        }
      }
      __syncwarp();  // (my_red is parked again for the warp's next unit)
    }
    cluster_barrier();
  }
#endif
}

void* cluster_kernel(int bmax) {
  return step_math::kernel_for_bmax(bmax, [](auto b) {
    return reinterpret_cast<void*>(&lstm_cluster_kernel<decltype(b)::value>);
  });
}

#ifndef SLSTM_CUDA_SIM
cudaLaunchConfig_t cluster_config(int ctas, std::size_t smem, cudaStream_t stream,
                                  cudaLaunchAttribute* attr) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(ctas));
  cfg.blockDim = dim3(kRecThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  attr->id = cudaLaunchAttributeClusterDimension;
  attr->val.clusterDim.x = static_cast<unsigned>(ctas);
  attr->val.clusterDim.y = 1;
  attr->val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cfg;
}
#endif

}  // namespace

#ifndef SLSTM_CUDA_SIM  // (the simulator models no occupancy)
bool cluster_launchable(int batch, int ctas, std::size_t smem) {
  void* kernel = cluster_kernel(rec_bmax(batch));
  if (kernel == nullptr || batch < 1 || ctas < 1 || ctas > kClusterMaxCtas) return false;
  int device = 0, major = 0, optin = 0;
  cudaFuncAttributes fa{};
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
          cudaSuccess ||
      cudaFuncGetAttributes(&fa, kernel) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  if (major < 9) return false;  // no clusters before sm_90
  // As persistent_ctas_per_sm: the device's limit (the attribute belongs to the kernel, which
  // other layers and sessions launch with other sizes), less the static shared memory.
  const int max_dynamic = optin - static_cast<int>(fa.sharedSizeBytes);
  if (max_dynamic < 0 || smem > static_cast<std::size_t>(max_dynamic)) return false;
  cudaLaunchAttribute attr{};
  const cudaLaunchConfig_t cfg = cluster_config(ctas, smem, nullptr, &attr);
  int clusters = 0;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_dynamic) !=
          cudaSuccess ||
      cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) !=
          cudaSuccess ||
      cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return clusters >= 1;
}
#endif

cudaError_t launch_lstm_cluster(cudaStream_t stream, const ClusterArgs& args, int ctas,
                                std::size_t smem) {
  void* kernel = cluster_kernel(rec_bmax(args.batch));
  const PersistentLayer& L = args.layer;
  if (kernel == nullptr || L.wx != nullptr || L.hidden < 1 || args.units < 1 || ctas < 1 ||
      ctas > kClusterMaxCtas || static_cast<std::int64_t>(ctas) * args.units < L.hidden ||
      args.t0 < 0 || args.t1 <= args.t0 || smem < cluster_smem_bytes(args.batch, L.hidden,
                                                                      args.units)) {
    return cudaErrorInvalidValue;
  }
#ifdef SLSTM_CUDA_SIM
  ::slstm_sim::launch_cluster_kernel(stream, "lstm_cluster_kernel", static_cast<unsigned>(ctas),
                                     static_cast<unsigned>(ctas), kRecThreads, smem,
                                     reinterpret_cast<void (*)(ClusterArgs)>(kernel), args);
  return cudaGetLastError();
#else
  cudaLaunchAttribute attr{};
  const cudaLaunchConfig_t cfg = cluster_config(ctas, smem, stream, &attr);
  void* params[] = {const_cast<ClusterArgs*>(&args)};
  const cudaError_t e = cudaLaunchKernelExC(&cfg, kernel, params);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
#endif
}

}  // namespace slstm_cuda
