// The generic path on a GPU: the engine's Device (generic_engine.hpp) as cudaMalloc'd
// memory, cudaMemcpyAsync, cuBLAS SGEMMs and one kernel per pointwise operation (each
// thread one element, computed by the functions of generic_cells.cuh), all on the session's
// stream (the caller's cudaStream_t, or a blocking stream of the session's own).  With
// cuda.graphs=on a call's compute is captured once per (batch, time, layout, longest
// length) on a private stream, kept in a GraphCache and replayed on the session's stream; a
// capture that fails turns graphs off for the session and the compute runs as plain launches
// (the same operations, the same numbers).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include "check.hpp"
#include "generic_engine.hpp"
#include "graph_cache.hpp"
#include "generic_session.hpp"
#include "kernels.cuh"
#include "launch.cuh"
#include "resources.hpp"

namespace slstm_cuda {
namespace {

using generic::GruStep;
using generic::LayerFinish;
using generic::LstmProject;
using generic::LstmStep;

constexpr int kThreads = 256;

// One thread per element of an operation: Op::run(a, i) (the functions of
// generic_cells.cuh), in a grid-stride loop.
template <typename Op, typename Args>
__global__ void pointwise_kernel(Args a, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    Op::run(a, i);
  }
}
struct LstmStepOp {
  static __device__ void run(const LstmStep& a, std::int64_t i) { generic::lstm_step_element(a, i); }
};
struct LstmProjectOp {
  static __device__ void run(const LstmProject& a, std::int64_t i) {
    generic::lstm_project_element(a, i);
  }
};
struct GruResetOp {
  static __device__ void run(const GruStep& a, std::int64_t i) { generic::gru_reset_element(a, i); }
};
struct GruStepOp {
  static __device__ void run(const GruStep& a, std::int64_t i) { generic::gru_step_element(a, i); }
};
struct Round16Op {
  static __device__ void run(const generic::Round16& a, std::int64_t i) {
    generic::round16_element(a, i);
  }
};
struct Widen16Op {
  static __device__ void run(const generic::Widen16& a, std::int64_t i) {
    generic::widen16_element(a, i);
  }
};
struct LayerFinishOp {
  static __device__ void run(const LayerFinish& a, std::int64_t i) {
    generic::layer_finish_element(a, i);
  }
};

// Blocks for n elements (a grid-stride loop covers the rest).
unsigned blocks_for(std::int64_t n) {
  const std::int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::min<std::int64_t>(std::max<std::int64_t>(b, 1), 1 << 20));
}

class CudaDevice final : public generic::Device {
 public:
  // workspace_bytes: cuBLAS's workspace, 0 for the device's recommendation.
  CudaDevice(int device, void* caller_stream, bool tf32, bool graphs,
             std::int64_t workspace_bytes)
      : device_(device), use_graphs_(graphs) {
    if (caller_stream != nullptr) {
      stream_ = static_cast<cudaStream_t>(caller_stream);
    } else {
      own_stream_ = blocking_stream();  // blocking: ordered with stream 0
      stream_ = own_stream_.get();
    }
    cur_ = stream_;
    capture_ = non_blocking_stream();
    // cuBLAS's own workspace, so that a captured SGEMM allocates nothing (the basic path's
    // size: 32 MiB from Hopper on, 4 MiB before, or cuda.blas_workspace_mib); zeroed once for
    // initcheck.
    int cc_major = 0;
    check(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, device),
          "cudaDeviceGetAttribute");
    workspace_bytes_ = workspace_bytes > 0 ? static_cast<std::size_t>(workspace_bytes)
                                           : static_cast<std::size_t>(cc_major >= 9 ? 32 : 4) << 20;
    workspace_ = device_alloc<unsigned char>(static_cast<std::int64_t>(workspace_bytes_),
                                             "cudaMalloc (cuBLAS workspace)");
    tally_workspace(static_cast<std::int64_t>(workspace_bytes_));
    check(cudaMemsetAsync(workspace_.get(), 0, workspace_bytes_, stream_), "cudaMemsetAsync");
    blas_ = blas_handle();
    bind_blas(stream_);
    check(cublasSetMathMode(blas_.get(), tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
          "cublasSetMathMode");
    check(cublasSetPointerMode(blas_.get(), CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
    check(cublasSetAtomicsMode(blas_.get(), CUBLAS_ATOMICS_NOT_ALLOWED), "cublasSetAtomicsMode");
  }
  // (The session's teardown has waited for the stream, unless the caller is capturing it.)
  ~CudaDevice() override { graphs_.clear(); }

  cudaStream_t stream() const { return stream_; }

  bool records() const override { return use_graphs_ && !graphs_failed_; }
  const std::string& graphs_failure() const { return graphs_failure_; }

  void compute(const generic::ComputeKey& key, void (*enqueue)(void*), void* ctx) override {
    if (!records()) {
      enqueue(ctx);
      return;
    }
    cudaGraphExec_t exec = graphs_.find(key.batch, key.time, key.layout, key.steps);
    if (exec == nullptr) {
      std::string why;
      GraphExec captured = capture(enqueue, ctx, &why);
      if (!captured) {  // this call's compute as plain launches
        enqueue(ctx);
        graphs_failed_ = true;  // graphs off for good, once the compute itself ran
        graphs_failure_ = why;
        return;
      }
      exec = graphs_.insert(key.batch, key.time, key.layout, key.steps, std::move(captured));
    }
    check(cudaGraphLaunch(exec, stream_), "cudaGraphLaunch (generic path)");
  }

  float* alloc_floats(std::int64_t count, const char* what) override {
    return static_cast<float*>(alloc(mul(std::max<std::int64_t>(count, 1), sizeof(float), what), what));
  }
  std::uint16_t* alloc_codes(std::int64_t count, const char* what) override {
    return static_cast<std::uint16_t*>(
        alloc(mul(std::max<std::int64_t>(count, 1), sizeof(std::uint16_t), what), what));
  }
  std::int32_t* alloc_ints(std::int64_t count, const char* what) override {
    return static_cast<std::int32_t*>(alloc(mul(std::max<std::int64_t>(count, 1), sizeof(std::int32_t), what), what));
  }
  void release(void* p) noexcept override { (void)cudaFree(p); }
  // (The messages are built on failure only: a call allocates nothing.)
  void copy(void* dst, const void* src, std::size_t bytes, const char* what) override {
    const cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, cur_);
    if (e != cudaSuccess) check(e, (std::string("cudaMemcpyAsync (") + what + ")").c_str());
  }
  void zero(void* dst, std::size_t bytes, const char* what) override {
    const cudaError_t e = cudaMemsetAsync(dst, 0, bytes, cur_);
    if (e != cudaSuccess) check(e, (std::string("cudaMemsetAsync (") + what + ")").c_str());
  }
  void gemm(const generic::Gemm& g) override {
    const float one = 1.0f, zero = 0.0f;
    const generic::BlasCall c = generic::blas_call(g);
    const cublasOperation_t op_a = c.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = c.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int m = to_int(c.m, "GEMM m"), n = to_int(c.n, "GEMM n"), k = to_int(c.k, "GEMM k");
    const int lda = to_int(c.lda, "GEMM lda"), ldb = to_int(c.ldb, "GEMM ldb");
    const int ldc = to_int(c.ldc, "GEMM ldc");
    if (g.format != generic::kOperandsF32) {
      // 16-bit operands, float32 products and sums (tensor cores), float32 C.
      const cudaDataType_t type = g.format == generic::kOperandsFp16 ? CUDA_R_16F : CUDA_R_16BF;
      check(cublasGemmEx(blas_.get(), op_a, op_b, m, n, k, &one, c.a, type, lda, c.b, type, ldb,
                         &zero, c.c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx (generic path, 16-bit operands)");
      return;
    }
    check(cublasSgemm(blas_.get(), op_a, op_b, m, n, k, &one, static_cast<const float*>(c.a), lda,
                      static_cast<const float*>(c.b), ldb, &zero, c.c, ldc),
          "cublasSgemm (generic path)");
  }
  void lstm_step(const LstmStep& a) override {
    launch<LstmStepOp>(a, a.rows.batch * a.hidden, "generic LSTM step kernel launch");
  }
  void lstm_project(const LstmProject& a) override {
    launch<LstmProjectOp>(a, a.rows.batch * a.proj, "generic LSTM projection kernel launch");
  }
  void gru_reset(const GruStep& a) override {
    launch<GruResetOp>(a, a.rows.batch * a.hidden, "generic GRU reset kernel launch");
  }
  void gru_step(const GruStep& a) override {
    launch<GruStepOp>(a, a.rows.batch * a.hidden, "generic GRU step kernel launch");
  }
  void round16(const generic::Round16& a) override {
    launch<Round16Op>(a, a.n, "generic 16-bit rounding kernel launch");
  }
  void widen16(const generic::Widen16& a) override {
    launch<Widen16Op>(a, a.n, "generic 16-bit input kernel launch");
  }
  void layer_finish(const LayerFinish& a) override {
    launch<LayerFinishOp>(a, a.rows.batch * a.rows.time * a.width,
                          "generic layer finish kernel launch");
  }
  void check_device_pointer(const void* p, const char* name) override {
    check_device_memory(p, name, device_);
  }
  void end_call(bool host_memory) override {
    if (host_memory || own_stream_) {
      check(cudaStreamSynchronize(stream_), "forward (cudaStreamSynchronize)");
    }
    check(cudaGetLastError(), "forward");
  }

 private:
  template <typename Op, typename Args>
  void launch(const Args& a, std::int64_t n, const char* what) {
    SLSTM_LAUNCH(blocks_for(n), kThreads, 0, cur_, pointwise_kernel<Op, Args>)(a, n);
    check(cudaGetLastError(), what);
  }

  // cublasSetStream resets the workspace: the stream first.
  void bind_blas(cudaStream_t s) {
    check(cublasSetStream(blas_.get(), s), "cublasSetStream");
    check(cublasSetWorkspace(blas_.get(), workspace_.get(), workspace_bytes_),
          "cublasSetWorkspace");
  }

  // enqueue(ctx) captured on capture_ and instantiated; empty when any step of it fails
  // (the failure cleared: the caller runs the compute as plain launches instead).
  GraphExec capture(void (*enqueue)(void*), void* ctx, std::string* why) {
    const auto said = [](const char* what, cudaError_t e) {
      return std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    };
    // cuBLAS moves to the capture stream before the capture begins (its stream and workspace
    // are set outside the graph).
    bind_blas(capture_.get());
    const cudaError_t began = cudaStreamBeginCapture(capture_.get(),
                                                     cudaStreamCaptureModeThreadLocal);
    if (began != cudaSuccess) {
      *why = said("cudaStreamBeginCapture", began);
      (void)cudaGetLastError();
      bind_blas(stream_);
      return GraphExec();
    }
    cur_ = capture_.get();
    try {
      enqueue(ctx);
    } catch (const std::exception& e) {
      *why = std::string("an operation under capture: ") + e.what();
    } catch (...) {
      *why = "an operation under capture failed";
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(capture_.get(), &graph);
    cur_ = stream_;
    bind_blas(stream_);
    cudaGraphExec_t exec = nullptr;
    if (why->empty() && ended != cudaSuccess) *why = said("cudaStreamEndCapture", ended);
    if (why->empty() && graph == nullptr) *why = "cudaStreamEndCapture gave no graph";
    if (why->empty()) {
      const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
      if (made != cudaSuccess) *why = said("cudaGraphInstantiate", made);
    }
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    return why->empty() ? GraphExec(exec) : GraphExec();
  }

  void* alloc(std::int64_t bytes, const char* what) {
    void* p = nullptr;
    check(cudaMalloc(&p, static_cast<std::size_t>(bytes)), what);
    tally_device(bytes);
    return p;
  }

  int device_ = 0;
  bool use_graphs_ = true;     // cuda.graphs
  bool graphs_failed_ = false;  // a capture failed: plain launches from then on
  std::string graphs_failure_;  // why
  Stream own_stream_;
  cudaStream_t stream_ = nullptr;  // the session's (the caller's, or own_stream_)
  Stream capture_;                 // where graphs are captured
  cudaStream_t cur_ = nullptr;     // where the operations go now: stream_, or capture_
  std::size_t workspace_bytes_ = 0;
  DeviceBuffer<unsigned char> workspace_;
  BlasHandle blas_;   // after workspace_: destroyed before it
  GraphCache graphs_;
};

class CudaGenericSession final : public GenericSession {
 public:
  // With `device` current.
  CudaGenericSession(const slstm_cuda_session_desc& d, int device) : device_(device) {
    dev_ = std::make_unique<CudaDevice>(device_, d.cuda_stream,
                                        d.allow_tf32 != 0 && d.precision == 0,
                                        d.use_graphs != 0, d.blas_workspace_bytes);
    engine_ = std::make_unique<generic::Engine>(d, *dev_);
  }
  ~CudaGenericSession() override { teardown_.enter(device_, dev_->stream()); }
  void forward(const slstm_cuda_forward_desc& c) override {
    DeviceGuard guard(device_);
    engine_->forward(c);
  }
  std::size_t num_layers() const override { return engine_->num_layers(); }
  std::string graphs_failure() const override { return dev_->graphs_failure(); }

 private:
  DeviceTeardown teardown_;  // first: the members below are released on the device
  int device_;
  std::unique_ptr<CudaDevice> dev_;
  std::unique_ptr<generic::Engine> engine_;  // after dev_: released before it
};

}  // namespace

std::unique_ptr<GenericSession> GenericSession::create(const slstm_cuda_session_desc& d) {
  if (d.generic != 1) fail(SLSTM_ERR_INTERNAL, "GenericSession::create: desc.generic != 1");
  const int device = usable_device(d.device);
  DeviceGuard guard(device);
  require_kernel_image(device);
  return std::make_unique<CudaGenericSession>(d, device);
}

}  // namespace slstm_cuda
