// The generic path on a GPU: the engine's Device (generic_engine.hpp) as cudaMalloc'd
// memory, cudaMemcpyAsync, cuBLAS SGEMMs and one kernel per pointwise operation (each
// thread one element, computed by the functions of generic_cells.cuh), all on the session's
// stream (the caller's cudaStream_t, or a blocking stream of the session's own).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "check.hpp"
#include "generic_engine.hpp"
#include "generic_session.hpp"
#include "kernels.cuh"
#include "resources.hpp"

namespace slstm_cuda {
namespace {

using generic::GruStep;
using generic::LayerFinish;
using generic::LstmProject;
using generic::LstmStep;

constexpr int kThreads = 256;

__global__ void lstm_step_kernel_g(LstmStep a, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    generic::lstm_step_element(a, i);
  }
}
__global__ void lstm_project_kernel_g(LstmProject a, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    generic::lstm_project_element(a, i);
  }
}
__global__ void gru_reset_kernel_g(GruStep a, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    generic::gru_reset_element(a, i);
  }
}
__global__ void gru_step_kernel_g(GruStep a, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    generic::gru_step_element(a, i);
  }
}
__global__ void layer_finish_kernel_g(LayerFinish a, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    generic::layer_finish_element(a, i);
  }
}

// Blocks for n elements (a grid-stride loop covers the rest).
unsigned blocks_for(std::int64_t n) {
  const std::int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(std::min<std::int64_t>(std::max<std::int64_t>(b, 1), 1 << 20));
}

class CudaDevice final : public generic::Device {
 public:
  CudaDevice(int device, void* caller_stream, bool tf32) : device_(device) {
    if (caller_stream != nullptr) {
      stream_ = static_cast<cudaStream_t>(caller_stream);
    } else {
      own_stream_ = blocking_stream();  // blocking: ordered with stream 0
      stream_ = own_stream_.get();
    }
    blas_ = blas_handle();
    check(cublasSetStream(blas_.get(), stream_), "cublasSetStream");
    check(cublasSetMathMode(blas_.get(), tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
          "cublasSetMathMode");
    check(cublasSetPointerMode(blas_.get(), CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
    check(cublasSetAtomicsMode(blas_.get(), CUBLAS_ATOMICS_NOT_ALLOWED), "cublasSetAtomicsMode");
  }
  ~CudaDevice() override {
    if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
  }

  float* alloc_floats(std::int64_t count, const char* what) override {
    return static_cast<float*>(alloc(mul(std::max<std::int64_t>(count, 1), sizeof(float), what), what));
  }
  std::int32_t* alloc_ints(std::int64_t count, const char* what) override {
    return static_cast<std::int32_t*>(alloc(mul(std::max<std::int64_t>(count, 1), sizeof(std::int32_t), what), what));
  }
  void release(void* p) noexcept override { (void)cudaFree(p); }
  // (The messages are built on failure only: a call allocates nothing.)
  void copy(void* dst, const void* src, std::size_t bytes, const char* what) override {
    const cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_);
    if (e != cudaSuccess) check(e, (std::string("cudaMemcpyAsync (") + what + ")").c_str());
  }
  void zero(void* dst, std::size_t bytes, const char* what) override {
    const cudaError_t e = cudaMemsetAsync(dst, 0, bytes, stream_);
    if (e != cudaSuccess) check(e, (std::string("cudaMemsetAsync (") + what + ")").c_str());
  }
  void gemm(const generic::Gemm& g) override {
    const float one = 1.0f, zero = 0.0f;
    // Row-major C[m, n] = A[m, k] . W[n, k]^T is column-major C^T = W^T(op T) . A^T.
    check(cublasSgemm(blas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, to_int(g.n, "GEMM n"),
                      to_int(g.m, "GEMM m"), to_int(g.k, "GEMM k"), &one, g.w,
                      to_int(g.ldw, "GEMM ldw"), g.a, to_int(g.lda, "GEMM lda"), &zero, g.c,
                      to_int(g.ldc, "GEMM ldc")),
          "cublasSgemm (generic path)");
  }
  void lstm_step(const LstmStep& a) override {
    const std::int64_t n = a.rows.batch * a.hidden;
    lstm_step_kernel_g<<<blocks_for(n), kThreads, 0, stream_>>>(a, n);
    check(cudaGetLastError(), "generic LSTM step kernel launch");
  }
  void lstm_project(const LstmProject& a) override {
    const std::int64_t n = a.rows.batch * a.proj;
    lstm_project_kernel_g<<<blocks_for(n), kThreads, 0, stream_>>>(a, n);
    check(cudaGetLastError(), "generic LSTM projection kernel launch");
  }
  void gru_reset(const GruStep& a) override {
    const std::int64_t n = a.rows.batch * a.hidden;
    gru_reset_kernel_g<<<blocks_for(n), kThreads, 0, stream_>>>(a, n);
    check(cudaGetLastError(), "generic GRU reset kernel launch");
  }
  void gru_step(const GruStep& a) override {
    const std::int64_t n = a.rows.batch * a.hidden;
    gru_step_kernel_g<<<blocks_for(n), kThreads, 0, stream_>>>(a, n);
    check(cudaGetLastError(), "generic GRU step kernel launch");
  }
  void layer_finish(const LayerFinish& a) override {
    const std::int64_t n = a.rows.batch * a.rows.time * a.width;
    layer_finish_kernel_g<<<blocks_for(n), kThreads, 0, stream_>>>(a, n);
    check(cudaGetLastError(), "generic layer finish kernel launch");
  }
  void check_device_pointer(const void* p, const char* name) override {
    if (p == nullptr) return;
    cudaPointerAttributes attr{};
    const cudaError_t e = cudaPointerGetAttributes(&attr, p);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      fail(SLSTM_ERR_INVALID_ARGUMENT, std::string(name) +
                                           ": memory is SLSTM_MEMORY_DEVICE but the pointer is "
                                           "not CUDA memory (" + cudaGetErrorString(e) + ")");
    }
    if (attr.type == cudaMemoryTypeManaged) return;
    if (attr.type != cudaMemoryTypeDevice) {
      fail(SLSTM_ERR_INVALID_ARGUMENT, std::string(name) +
                                           ": memory is SLSTM_MEMORY_DEVICE but the pointer is "
                                           "host memory");
    }
    if (attr.device != device_) {
      fail(SLSTM_ERR_INVALID_ARGUMENT,
           std::string(name) + ": device memory of device " + std::to_string(attr.device) +
               ", but the session runs on device " + std::to_string(device_));
    }
  }
  void end_call(bool host_memory) override {
    if (host_memory || own_stream_) {
      check(cudaStreamSynchronize(stream_), "forward (cudaStreamSynchronize)");
    }
    check(cudaGetLastError(), "forward");
  }

 private:
  void* alloc(std::int64_t bytes, const char* what) {
    void* p = nullptr;
    check(cudaMalloc(&p, static_cast<std::size_t>(bytes)), what);
    return p;
  }

  int device_ = 0;
  Stream own_stream_;
  cudaStream_t stream_ = nullptr;
  BlasHandle blas_;
};

class CudaGenericSession final : public GenericSession {
 public:
  // With `device` current.
  CudaGenericSession(const slstm_cuda_session_desc& d, int device) : device_(device) {
    dev_ = std::make_unique<CudaDevice>(device_, d.cuda_stream, d.allow_tf32 != 0);
    engine_ = std::make_unique<generic::Engine>(d, *dev_);
  }
  ~CudaGenericSession() override { teardown_.enter(device_, nullptr); }
  void forward(const slstm_cuda_forward_desc& c) override {
    DeviceGuard guard(device_);
    engine_->forward(c);
  }
  std::size_t num_layers() const override { return engine_->num_layers(); }

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
