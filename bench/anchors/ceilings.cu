// ceilings — what the card itself can do, measured in the same run as the anchors, so the
// benchmark's floors use measured peaks rather than datasheet numbers.
//
//   ceilings [--csv FILE|-] [--device N] [--quick]
//
// Rows (tool,metric,value,unit,detail):
//   copy_memcpy_GBps   cudaMemcpyAsync device-to-device, bytes read + written per second
//   copy_kernel_GBps   a float4 grid-stride copy kernel, bytes read + written per second
//   sgemm_TFLOPs       cublasGemmEx FP32 in/out, CUBLAS_COMPUTE_32F (strict FP32)
//   tf32_gemm_TFLOPs   the same with CUBLAS_COMPUTE_32F_FAST_TF32
//   fp16_gemm_TFLOPs   FP16 A, B, C with CUBLAS_COMPUTE_32F (FP32 accumulate)
//   launch_empty_us    back-to-back empty kernel launches, device time per launch
//   launch_sync_us     one empty launch + cudaStreamSynchronize, host wall clock (median)
//   graph_node_us      one node of a replayed 1000-node CUDA graph of empty kernels
//   graph_launch_us    replay of a one-node graph + synchronize, host wall clock (median)
//   grid_sync_us       one cooperative-groups grid.sync() across one block per SM
// plus info rows (device name, SMs, L2, clocks, versions).  Each rate is the median of the
// timed repeats after a warm-up; inputs are random, never zeros.
//
// Exit codes: 0 ran (or no CUDA device: the first line says so); 2 a failure.

#include <cooperative_groups.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstring>

#include "anchors_common.hpp"

namespace cg = cooperative_groups;
using namespace anchors;

namespace {

void cublas_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string(what) + ": " + cublasGetStatusString(s));
  }
}
#define CUBLAS_CALL(call) cublas_check((call), #call)

__global__ void empty_kernel() {}

__global__ void fill_random(float* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t x = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    x ^= x >> 16, x *= 0x7feb352du, x ^= x >> 15, x *= 0x846ca68bu, x ^= x >> 16;
    p[i] = static_cast<float>(x) * (2.0f / 4294967296.0f) - 1.0f;
  }
}

__global__ void to_half(const float* in, __half* out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2half_rn(in[i]);
  }
}

__global__ void copy_kernel(const float4* __restrict__ in, float4* __restrict__ out, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = in[i];
  }
}

__global__ void grid_sync_kernel(int iters, int* sink) {
  cg::grid_group g = cg::this_grid();
  for (int i = 0; i < iters; ++i) g.sync();
  if (g.thread_rank() == 0) *sink = iters;
}

class Events {
 public:
  Events() {
    ANCHORS_CUDA(cudaEventCreate(&a));
    ANCHORS_CUDA(cudaEventCreate(&b));
  }
  ~Events() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  // Device milliseconds of fn() on stream s.
  template <class F>
  double time_ms(cudaStream_t s, F&& fn) {
    ANCHORS_CUDA(cudaEventRecord(a, s));
    fn();
    ANCHORS_CUDA(cudaEventRecord(b, s));
    ANCHORS_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    ANCHORS_CUDA(cudaEventElapsedTime(&ms, a, b));
    return ms;
  }
  cudaEvent_t a = nullptr, b = nullptr;
};

template <class F>
double median_ms(cudaStream_t s, int warmup, int reps, F&& fn) {
  Events ev;
  for (int i = 0; i < warmup; ++i) fn();
  ANCHORS_CUDA(cudaStreamSynchronize(s));
  std::vector<double> v;
  for (int i = 0; i < reps; ++i) v.push_back(ev.time_ms(s, fn));
  return stats_of(v).median;
}

template <class F>
double host_median_us(cudaStream_t s, int warmup, int reps, F&& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  ANCHORS_CUDA(cudaStreamSynchronize(s));
  std::vector<double> v;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    ANCHORS_CUDA(cudaStreamSynchronize(s));
    v.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                    .count());
  }
  return stats_of(v).median;
}

struct Buf {
  void* p = nullptr;
  explicit Buf(size_t bytes) { ANCHORS_CUDA(cudaMalloc(&p, bytes)); }
  ~Buf() { cudaFree(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string csv_path = "-";
  int dev = 0;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--csv" && i + 1 < argc) csv_path = argv[++i];
    else if (a == "--device" && i + 1 < argc) dev = std::atoi(argv[++i]);
    else if (a == "--quick") quick = true;
    else {
      std::fprintf(stderr, "usage: ceilings [--csv FILE|-] [--device N] [--quick]\n");
      return 2;
    }
  }
  require_device_or_exit("ceilings", dev);
  try {
    CsvOut csv(csv_path);
    csv.row({"tool", "metric", "value", "unit", "detail"});
    auto emit = [&](const std::string& metric, const std::string& value, const std::string& unit,
                    const std::string& detail) {
      csv.row({"ceiling", metric, value, unit, detail});
      if (!csv.is_stdout()) {
        std::fprintf(stderr, "ceilings %-18s %14s %-7s %s\n", metric.c_str(), value.c_str(),
                     unit.c_str(), detail.c_str());
      }
    };

    cudaDeviceProp prop{};
    ANCHORS_CUDA(cudaGetDeviceProperties(&prop, dev));
    int rt = 0, drv = 0, cublas_ver = 0, sm_clock_khz = 0, mem_clock_khz = 0, bus = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    cudaDeviceGetAttribute(&sm_clock_khz, cudaDevAttrClockRate, dev);
    cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, dev);
    cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, dev);
    emit("device", prop.name, "", "sm_" + std::to_string(prop.major) + std::to_string(prop.minor));
    emit("sms", std::to_string(prop.multiProcessorCount), "", "");
    emit("l2_bytes", std::to_string(prop.l2CacheSize), "B", "");
    emit("global_mem_bytes", std::to_string(prop.totalGlobalMem), "B", "");
    emit("max_sm_clock", std::to_string(sm_clock_khz / 1000), "MHz", "cudaDevAttrClockRate");
    emit("mem_clock", std::to_string(mem_clock_khz / 1000), "MHz",
         "bus " + std::to_string(bus) + " bit");
    emit("cuda_runtime", std::to_string(rt), "", "driver " + std::to_string(drv));

    cudaStream_t s;
    ANCHORS_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cublasHandle_t blas;
    CUBLAS_CALL(cublasCreate(&blas));
    CUBLAS_CALL(cublasGetVersion(blas, &cublas_ver));
    emit("cublas", std::to_string(cublas_ver), "", "");
    CUBLAS_CALL(cublasSetStream(blas, s));
    const int fill_blocks = 4 * prop.multiProcessorCount;

    // ---- memory bandwidth --------------------------------------------------------------
    {
      const size_t bytes = (quick ? 256ull : 1024ull) << 20;  // per buffer
      Buf src(bytes), dst(bytes);
      fill_random<<<fill_blocks, 256, 0, s>>>(src.as<float>(), bytes / 4, 1);
      ANCHORS_CUDA(cudaGetLastError());
      const int reps = quick ? 5 : 20;
      double ms = median_ms(s, 2, reps, [&] {
        ANCHORS_CUDA(cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice, s));
      });
      emit("copy_memcpy_GBps", fmt(2.0 * bytes / (ms * 1e-3) / 1e9, 1), "GB/s",
           std::to_string(bytes >> 20) + " MiB each way, median of " + std::to_string(reps));
      ms = median_ms(s, 2, reps, [&] {
        copy_kernel<<<8 * prop.multiProcessorCount, 512, 0, s>>>(src.as<float4>(),
                                                                 dst.as<float4>(), bytes / 16);
        ANCHORS_CUDA(cudaGetLastError());
      });
      emit("copy_kernel_GBps", fmt(2.0 * bytes / (ms * 1e-3) / 1e9, 1), "GB/s",
           std::to_string(bytes >> 20) + " MiB each way, float4 grid-stride, median of " +
               std::to_string(reps));
    }

    // ---- GEMMs -------------------------------------------------------------------------
    {
      const int n = quick ? 4096 : 8192;
      const size_t elems = static_cast<size_t>(n) * n;
      Buf a(elems * 4), b(elems * 4), c(elems * 4), ah(elems * 2), bh(elems * 2), ch(elems * 2);
      fill_random<<<fill_blocks, 256, 0, s>>>(a.as<float>(), elems, 2);
      fill_random<<<fill_blocks, 256, 0, s>>>(b.as<float>(), elems, 3);
      to_half<<<fill_blocks, 256, 0, s>>>(a.as<float>(), ah.as<__half>(), elems);
      to_half<<<fill_blocks, 256, 0, s>>>(b.as<float>(), bh.as<__half>(), elems);
      ANCHORS_CUDA(cudaGetLastError());
      const float alpha = 1.0f, beta = 0.0f;
      const double flop = 2.0 * n * static_cast<double>(n) * n;
      struct Case {
        const char* metric;
        cudaDataType_t ab, cty;
        cublasComputeType_t compute;
        const char* detail;
      };
      const Case cases[] = {
          {"sgemm_TFLOPs", CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, "FP32 strict"},
          {"tf32_gemm_TFLOPs", CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32,
           "FP32 data, TF32 tensor cores"},
          {"fp16_gemm_TFLOPs", CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F,
           "FP16 data, FP32 accumulate"},
      };
      for (const Case& k : cases) {
        const bool half = k.ab == CUDA_R_16F;
        const int reps = quick ? 3 : 10;
        double ms = median_ms(s, 2, reps, [&] {
          CUBLAS_CALL(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha,
                                   half ? ah.p : a.p, k.ab, n, half ? bh.p : b.p, k.ab, n, &beta,
                                   half ? ch.p : c.p, k.cty, n, k.compute,
                                   CUBLAS_GEMM_DEFAULT));
        });
        emit(k.metric, fmt(flop / (ms * 1e-3) / 1e12, 1), "TFLOP/s",
             std::to_string(n) + "^3 " + k.detail + ", median of " + std::to_string(reps));
      }
    }

    // ---- launch costs ------------------------------------------------------------------
    {
      const int launches = quick ? 2000 : 20000;
      double ms = median_ms(s, 1, 5, [&] {
        for (int i = 0; i < launches; ++i) empty_kernel<<<1, 32, 0, s>>>();
        ANCHORS_CUDA(cudaGetLastError());
      });
      emit("launch_empty_us", fmt(1e3 * ms / launches, 3), "us",
           std::to_string(launches) + " back-to-back <<<1,32>>> launches, device time each");
      double us = host_median_us(s, 10, quick ? 200 : 2000, [&] {
        empty_kernel<<<1, 32, 0, s>>>();
        ANCHORS_CUDA(cudaGetLastError());
      });
      emit("launch_sync_us", fmt(us, 2), "us", "one launch + cudaStreamSynchronize, wall clock");

      const int nodes = 1000;
      cudaGraph_t g;
      cudaGraphExec_t ge;
      ANCHORS_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      for (int i = 0; i < nodes; ++i) empty_kernel<<<1, 32, 0, s>>>();
      ANCHORS_CUDA(cudaStreamEndCapture(s, &g));
      ANCHORS_CUDA(cudaGraphInstantiate(&ge, g, 0));
      ms = median_ms(s, 2, 10, [&] { ANCHORS_CUDA(cudaGraphLaunch(ge, s)); });
      emit("graph_node_us", fmt(1e3 * ms / nodes, 3), "us",
           "replay of a " + std::to_string(nodes) + "-node chain of empty kernels, per node");
      cudaGraphExecDestroy(ge);
      cudaGraphDestroy(g);

      ANCHORS_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      empty_kernel<<<1, 32, 0, s>>>();
      ANCHORS_CUDA(cudaStreamEndCapture(s, &g));
      ANCHORS_CUDA(cudaGraphInstantiate(&ge, g, 0));
      us = host_median_us(s, 10, quick ? 200 : 2000, [&] { ANCHORS_CUDA(cudaGraphLaunch(ge, s)); });
      emit("graph_launch_us", fmt(us, 2), "us", "one-node graph replay + synchronize, wall clock");
      cudaGraphExecDestroy(ge);
      cudaGraphDestroy(g);
    }

    // ---- grid-wide barrier -------------------------------------------------------------
    {
      int coop = 0, per_sm = 0;
      cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev);
      const int threads = 128;
      ANCHORS_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, grid_sync_kernel,
                                                                 threads, 0));
      if (!coop || per_sm < 1) {
        emit("grid_sync_us", "", "us", "cooperative launch not supported");
      } else {
        Buf sink(sizeof(int));
        const int blocks = prop.multiProcessorCount;
        auto launch = [&](int iters) {
          int* sp = sink.as<int>();
          void* args[] = {&iters, &sp};
          ANCHORS_CUDA(cudaLaunchCooperativeKernel(reinterpret_cast<void*>(grid_sync_kernel),
                                                   dim3(blocks), dim3(threads), args, 0, s));
        };
        const int iters = quick ? 1000 : 10000;
        double base = median_ms(s, 2, 5, [&] { launch(1); });
        double ms = median_ms(s, 2, 5, [&] { launch(iters + 1); });
        emit("grid_sync_us", fmt(1e3 * (ms - base) / iters, 3), "us",
             std::to_string(blocks) + " blocks x " + std::to_string(threads) +
                 " threads (one per SM), " + std::to_string(iters) +
                 " syncs, launch cost subtracted");
      }
    }
    cublasDestroy(blas);
    cudaStreamDestroy(s);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ceilings: %s\n", e.what());
    return 2;
  }
}
