// The persistent recurrent kernel (kernels.cuh, "The persistent recurrent kernel"): the
// fused small-batch step of kernels.cu run for every step of a chunk inside ONE launch, for
// one layer or for a whole stack as a wavefront.
//
// Layout. The layers of a launch take consecutive CTAs; within a layer, CTA j owns units
// u = j * kRecWarps + w (warp w), as the fused step's blocks do. Its shared memory holds,
// for its kRecWarps units, the four gate rows of W_h, or of [W_x | W_h] when the layer
// computes its own input projection (ws[w][q][k], loaded once per launch: lane-strided reads
// are conflict-free), the step's [input row | h_{t-1}] staged for every batch row, and the
// parking area of the warp reduction. In the hybrid tier (cuda.hybrid, a layer without its
// own input projection) only the first L.resident columns of the W_h rows are there; each
// step reads the rest from global memory, continuing each lane's sums in the same order.
// Lane b < batch of warp w keeps c of (b, u) in a register for the whole launch.
//
// Per step t: wait (below), stage the rows (L2 loads: other CTAs wrote them, L1 is not
// coherent), every lane accumulates its k = lane, lane + 32, ... in the fused step's order,
// RecReduce + rec_park, lane b adds z (and bias) and runs the cell: for a layer with
// precomputed z, the same operations in the same order as lstm_rec_step_kernel, hence the
// same bits. Then the CTA publishes step t: after __syncthreads, thread 0 fences and
// release-stores t + 1 into its flag. Before step t a CTA's threads acquire-poll the flags of
// its layer's CTAs until they reach t (step t - 1 done everywhere: with h double-buffered,
// the buffer step t overwrites was read at step t - 1, before that step was published) and,
// when the layer below runs in the same launch, that layer's flags until they reach t + 1
// (its output row t, written once, is there).
//
// A wait is bounded by timeout_ns (globaltimer): past it, the CTA raises the abort word
// (read by every waiter) and the host-mapped status, and every CTA leaves at its next
// wait. Nothing here can hang the device.
#ifndef SLSTM_CUDA_SIM  // (the simulator of tests/cuda_sim brings its own atomic_ref)
#include <cuda/atomic>
#endif

#include "kernels.cuh"
#include "step_math.cuh"

namespace slstm_cuda {
namespace {

using step_math::LstmCell;
using step_math::rec_park;
using step_math::RecReduce;

constexpr int kFlagStride = kPersistFlagStride;

__device__ __forceinline__ long long global_ns() {
#ifdef SLSTM_CUDA_SIM
  return ::slstm_sim::global_ns();
#else
  long long t = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
#endif
}

// Stops the launch: raises the abort word (every waiter reads it) and the host-mapped status.
// Several threads may do it at once, hence atomic stores (a volatile store, as it was, is the
// same in PTX, relaxed at system scope; ThreadSanitizer on the CPU suite's simulator of this
// kernel takes it for a data race).
template <typename Word>
__device__ void give_up(const Word& abort_word, int* status) {
  abort_word.store(1u, cuda::memory_order_relaxed);
  cuda::atomic_ref<int, cuda::thread_scope_system>(*status).store(1, cuda::memory_order_relaxed);
  __threadfence_system();
}

// Waits until flag j holds at least `step`; false when the wait was abandoned (abort raised
// by another CTA, or this wait ran out of time: then this thread raises it).
__device__ bool wait_flag(unsigned* sync, int j, int ctas, unsigned step, int* status,
                          long long timeout_ns) {
  cuda::atomic_ref<unsigned, cuda::thread_scope_device> flag(sync[j * kFlagStride]);
  cuda::atomic_ref<unsigned, cuda::thread_scope_device> abort_word(sync[ctas * kFlagStride]);
  if (timeout_ns <= 0) {  // cuda.persistent_timeout_us=0: every wait fails (tests the fallback)
    give_up(abort_word, status);
    return false;
  }
  if (flag.load(cuda::memory_order_acquire) >= step) return true;
  if (abort_word.load(cuda::memory_order_relaxed) != 0) return false;
  // The clock starts once, here: the poll counter below may wrap (2^32 polls take ~10 min at
  // L2 latency) without restarting it, so every timeout the setting allows fires.
  const long long start = global_ns();
  for (unsigned spins = 1;; ++spins) {
    if (flag.load(cuda::memory_order_acquire) >= step) return true;
    if ((spins & 63u) == 0) {
      if (abort_word.load(cuda::memory_order_relaxed) != 0) return false;
      if (global_ns() - start > timeout_ns) {
        give_up(abort_word, status);
        return false;
      }
    }
  }
}

// Waits, with every thread of the CTA, for what `w` names (step_plan.hpp); false when
// abandoned (the CTA must stop).
__device__ bool wait_for(const PersistentArgs& a, const PersistentWait& w, int* stop) {
  const int ctas = static_cast<int>(gridDim.x);
  const int n0 = w.own_end - w.own_begin, n = n0 + (w.prev_end - w.prev_begin);
  for (int i = static_cast<int>(threadIdx.x); i < n; i += kRecThreads) {
    const bool own = i < n0;
    const int j = own ? w.own_begin + i : w.prev_begin + (i - n0);
    // An atomic: several threads may give up in one wait (racecheck: no write-write race).
    if (!wait_flag(a.sync, j, ctas, own ? w.own_step : w.prev_step, a.status, a.timeout_ns)) {
      atomicOr(stop, 1);
    }
  }
  __threadfence();
  __syncthreads();
  return *stop == 0;
}

template <int BMAX>
__global__ void __launch_bounds__(kRecThreads, 1) lstm_persistent_kernel(const PersistentArgs a) {
  constexpr int N = LstmCell::kGates * BMAX;
  SLSTM_DYNAMIC_SMEM(float, smem);
  __shared__ int stop;
  const auto begin = [&a](int i) { return a.layer[i].cta_begin; };
  const int ctas = static_cast<int>(gridDim.x);
  const int li = persistent_layer_of(begin, a.layers, static_cast<int>(blockIdx.x));
  const PersistentLayer& L = a.layer[li];
  const int H = L.hidden;
  const int KX = L.wx != nullptr ? L.ld_x : 0;  // input columns computed here
  const int K = KX + H;
  // The hybrid tier: the first KR columns of the rows in shared memory, the rest from L.wh.
  const int KR = KX == 0 && L.resident >= 0 && L.resident < H ? L.resident : K;
  const std::int64_t GK = static_cast<std::int64_t>(LstmCell::kGates) * KR;
  float* ws = smem;                                            // [kRecWarps][4][KR]
  float* xs = ws + static_cast<std::int64_t>(kRecWarps) * GK;  // [BMAX][K]: input row | h
  float* red = xs + static_cast<std::int64_t>(BMAX) * K;       // [kRecWarps][N]
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int u0 = (static_cast<int>(blockIdx.x) - L.cta_begin) * kRecWarps;
  const int u = u0 + warp;
  const bool live = u < H;

  // This CTA's rows of [W_x | W_h], once (rows of units past H: zero, never used).
  const std::int64_t n_w = static_cast<std::int64_t>(kRecWarps) * GK;
  for (std::int64_t i = threadIdx.x; i < n_w; i += kRecThreads) {
    const std::int64_t w = i / GK, r = i - w * GK, q = r / KR, k = r - q * KR;
    const std::int64_t uu = u0 + w, row = q * H + uu;
    float v = 0.0f;
    if (uu < H) v = k < KX ? L.wx[row * KX + k] : L.wh[row * H + (k - KX)];
    ws[i] = v;
  }
  const bool owner = live && lane < a.batch;  // lane b owns (row b, unit u)
  const std::int64_t i_own = static_cast<std::int64_t>(lane) * H + u;
  float c = owner ? L.c[i_own] : 0.0f;
  if (threadIdx.x == 0) stop = 0;
  __syncthreads();

  const int n_x = BMAX * K;
  float h_last = 0.0f;  // the owner's latest h (finalize)
  // Whether every wait succeeded: the same in every thread (each wait_for returns what all
  // read after its barrier). The finalize tests it, not `stop`, which another thread of the
  // CTA may already be setting in the finalize's own wait.
  bool ok = true;
  for (int t = a.t0; t < a.t1; ++t) {
    // Before step t: this layer's CTAs are done with step t - 1, the layer below (when it
    // feeds this one in the launch) with step t (persistent_wait).
    const PersistentWait w = persistent_wait(begin, a.layers, ctas, li, KX > 0, t, a.t0);
    if (w.any() && !wait_for(a, w, &stop)) {  // results invalid; *status tells the host
      ok = false;
      break;
    }
    const bool even = (t & 1) == 0;
    const float* h_prev = even ? L.h_even : L.h_odd;
    float* h_next = even ? L.h_odd : L.h_even;
    const float* src = KX > 0 ? L.src + t * L.src_step : nullptr;
    for (int i = static_cast<int>(threadIdx.x); i < n_x; i += kRecThreads) {
      const int b = i / K, k = i - b * K;
      float v = 0.0f;
      if (b < a.batch) {
        v = k < KX ? __ldcg(src + static_cast<std::int64_t>(b) * KX + k)
                   : __ldcg(h_prev + static_cast<std::int64_t>(b) * H + (k - KX));
      }
      xs[i] = v;
    }
    __syncthreads();
    if (live) {
      float v[N];
      step_math::rec_sums<BMAX>(step_math::LoadPlain{}, ws + static_cast<std::int64_t>(warp) * GK,
                                KR, xs, K, KR, lane, v);
      if (KR < K) {  // (KX = 0: column k of xs is h's)
        step_math::rec_sums_from<BMAX>(step_math::LoadLdg{},
                                       L.wh + static_cast<std::int64_t>(u) * H,
                                       static_cast<std::int64_t>(H) * H, xs, K, KR, K, lane, v);
      }
      RecReduce<N, 16>::run(v, lane);
      float* my_red = red + warp * N;
      rec_park<N>(v, lane, my_red);
      __syncwarp();
      if (owner) {
        const int b = lane;
        float zq[LstmCell::kGates];
        if (KX > 0) {
#pragma unroll
          for (int q = 0; q < LstmCell::kGates; ++q) zq[q] = my_red[LstmCell::kGates * b + q];
        } else {
          const float* zr = L.z + t * L.z_step + static_cast<std::int64_t>(b) * LstmCell::kGates * H;
#pragma unroll
          for (int q = 0; q < LstmCell::kGates; ++q) zq[q] = zr[q * H + u] + my_red[LstmCell::kGates * b + q];
        }
        if (L.bias != nullptr) {
#pragma unroll
          for (int q = 0; q < LstmCell::kGates; ++q) zq[q] += L.bias[q * H + u];
        }
        float out = 0.0f;
        if (t < a.len[b]) {
          out = LstmCell::cell(zq, c);
          h_last = out;
        } else {
          h_last = xs[b * K + KX + u];  // frozen past the sequence's length
        }
        __stcg(h_next + i_own, h_last);
        if (L.y != nullptr) __stcg(L.y + t * L.y_step + b * L.y_stride + u, out);
      }
    }
    // Step t done: publish it.
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      cuda::atomic_ref<unsigned, cuda::thread_scope_device> mine(
          a.sync[static_cast<int>(blockIdx.x) * kFlagStride]);
      mine.store(static_cast<unsigned>(t + 1), cuda::memory_order_release);
    }
  }
  if (owner) L.c[i_own] = c;
  // finalize: the last h went to h_odd; once no CTA of the layer reads h_even any more (all
  // have published the last step), each owner puts its h there too (no copy after the launch).
  if (a.finalize && ok && ((a.t1 - 1) & 1) == 0 &&
      wait_for(a, persistent_final_wait(begin, a.layers, ctas, li, a.t1), &stop) && owner) {
    __stcg(L.h_even + i_own, h_last);
  }
}

void* persistent_kernel(int bmax) {
  return step_math::kernel_for_bmax(bmax, [](auto b) {
    return reinterpret_cast<void*>(&lstm_persistent_kernel<decltype(b)::value>);
  });
}

}  // namespace

#ifndef SLSTM_CUDA_SIM  // (the simulator models no occupancy)
int persistent_ctas_per_sm(int batch, std::size_t smem) {
  void* kernel = persistent_kernel(rec_bmax(batch));
  if (kernel == nullptr || batch < 1) return 0;
  int device = 0, optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
          cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  // The kernel's static shared memory (the abort flag) counts against the same limit: the
  // dynamic maximum is the opt-in limit less it (asking for the whole limit is refused).
  cudaFuncAttributes fa{};
  if (cudaFuncGetAttributes(&fa, kernel) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  const int max_dynamic = optin - static_cast<int>(fa.sharedSizeBytes);
  if (max_dynamic < 0 || smem > static_cast<std::size_t>(max_dynamic)) return 0;
  // The device's limit, not this shape's size: the attribute belongs to the kernel, which
  // other layers and sessions launch with other sizes.
  int per_sm = 0;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_dynamic) !=
          cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kRecThreads, smem) !=
          cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return per_sm;
}
#endif

cudaError_t launch_lstm_persistent(cudaStream_t stream, const PersistentArgs& args,
                                   std::size_t smem, bool cooperative, const L2Window& window) {
  void* kernel = persistent_kernel(rec_bmax(args.batch));
  if (kernel == nullptr || args.layers < 1 || args.layers > kMaxStackLayers || args.t0 < 0 ||
      args.t1 <= args.t0) {
    return cudaErrorInvalidValue;
  }
  const PersistentLayer& last = args.layer[args.layers - 1];
  if (last.hidden < 1) return cudaErrorInvalidValue;
  const int ctas = last.cta_begin + persistent_ctas(last.hidden);
  if (window.bytes > 0 && (window.base == nullptr || !(window.hit_ratio > 0.0f) ||
                           window.hit_ratio > 1.0f)) {
    return cudaErrorInvalidValue;
  }
#ifdef SLSTM_CUDA_SIM  // (the simulator has no L2: the window changes no result)
  // Cooperative: every CTA resident at once; otherwise one at a time (the weakest guarantee
  // of a plain launch, under which a launch that waits must time out, not hang).
  ::slstm_sim::launch_kernel(stream, "lstm_persistent_kernel", static_cast<unsigned>(ctas),
                             kRecThreads, smem, cooperative ? 0 : 1,
                             reinterpret_cast<void (*)(PersistentArgs)>(kernel), args);
  return cudaGetLastError();
#else
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(ctas));
  cfg.blockDim = dim3(kRecThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  unsigned n_attr = 0;
  if (cooperative) {
    attr[n_attr].id = cudaLaunchAttributeCooperative;
    attr[n_attr++].val.cooperative = 1;
  }
  if (window.bytes > 0) {
    attr[n_attr].id = cudaLaunchAttributeAccessPolicyWindow;
    cudaAccessPolicyWindow& w = attr[n_attr++].val.accessPolicyWindow;
    w.base_ptr = const_cast<void*>(window.base);
    w.num_bytes = window.bytes;
    w.hitRatio = window.hit_ratio;
    w.hitProp = cudaAccessPropertyPersisting;
    w.missProp = cudaAccessPropertyStreaming;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n_attr;
  void* params[] = {const_cast<PersistentArgs*>(&args)};
  const cudaError_t e = cudaLaunchKernelExC(&cfg, kernel, params);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
#endif
}

}  // namespace slstm_cuda
