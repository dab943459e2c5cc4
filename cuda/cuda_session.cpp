// The CUDA backend session and the module's exported entry (cuda/module_abi.h).
//
// Per forward call (T > 0), everything on the session's main stream (the caller's
// cudaStream_t, or a blocking stream of the session's own):
//   1. lengths  -> d_len_ (from a pinned host buffer; T for every row when none are given);
//   2. input    -> (host: one H2D copy into d_in_) -> pack kernel -> d_x_, the time-major
//                  augmented input [T*B, Ip_0] whose column D is 1.0;
//   3. initial state -> d_state_ (packed, as in the C API), or zeros;
//   4. the compute, replayed from a CUDA graph captured on first use of (B, T, layout):
//        layer 0: ONE input GEMM for all T steps  Zx_0 = X_aug . [W_x | b + fb_f]^T;
//        layers l >= 1: the same GEMM chunk by chunk of C steps, as soon as layer l-1 has
//          produced those steps (wavefront across per-layer streams joined by events, so the
//          dependent chain is about T + (L-1)*C steps instead of L*T);
//        per step and layer: one recurrent GEMM  Zx_l[t] += h . W_h^T  (beta = 1, in place)
//          and ONE fused kernel (slstm::lstm_cell, c/h in place, output row, length mask);
//          or, for batches of at most 16 whose h fits in shared memory, where it was measured
//          faster (rec_step_preferred), ONE kernel that also computes h . W_h^T
//          (launch_lstm_rec_step; h double-buffered). A stack may mix both, layer by layer;
//   5. d_out_ / d_state_ -> the caller's output / final state (D2H or D2D);
//   6. host buffers, or no caller stream: synchronise and report any error.
// Every buffer is allocated when the session is created; a call allocates nothing on the
// device (graph instantiation on a shape's first use allocates host-side graph objects).
#include <cuda_runtime.h>
#include <cublas_v2.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "kernels.cuh"
#include "module_abi.h"
#include "stacklstm/stacklstm.h"

#define SLSTM_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

namespace slstm_cuda {
namespace {

// Thrown inside the module, turned into (status, message) at the table's entry points.
struct Failure {
  std::int32_t status;
  std::string message;
};

[[noreturn]] void fail(std::int32_t status, std::string message) {
  throw Failure{status, std::move(message)};
}

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  // Clear the runtime's last error, so that a later call's launch check does not report this
  // one again (sticky errors, which break the context, stay whatever we do).
  (void)cudaGetLastError();
  const std::int32_t status =
      e == cudaErrorMemoryAllocation ? SLSTM_ERR_OUT_OF_MEMORY : SLSTM_ERR_BACKEND_FAILURE;
  fail(status, std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

void check(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  const std::int32_t status =
      s == CUBLAS_STATUS_ALLOC_FAILED ? SLSTM_ERR_OUT_OF_MEMORY : SLSTM_ERR_BACKEND_FAILURE;
  fail(status, std::string(what) + ": " + cublasGetStatusName(s) + ": " + cublasGetStatusString(s));
}

std::int64_t mul(std::int64_t a, std::int64_t b, const char* what) {
  if (a < 0 || b < 0 || (a != 0 && b > std::numeric_limits<std::int64_t>::max() / a)) {
    fail(SLSTM_ERR_SIZE_OVERFLOW, std::string(what) + ": size overflows int64");
  }
  return a * b;
}

int to_int(std::int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<int>::max()) {
    fail(SLSTM_ERR_UNSUPPORTED, std::string(what) + " = " + std::to_string(v) +
                                    " exceeds what the CUDA backend supports (2^31 - 1)");
  }
  return static_cast<int>(v);
}

std::int64_t round_up4(std::int64_t v) { return (v + 3) / 4 * 4; }

// Makes `device` current for the scope and restores the caller's current device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    check(cudaSetDevice(device), "cudaSetDevice");
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard() {
    if (previous_ >= 0) (void)cudaSetDevice(previous_);
  }

 private:
  int previous_ = -1;
};

template <typename T>
T* device_alloc(std::int64_t count, const char* what) {
  void* p = nullptr;
  const std::int64_t bytes = mul(count < 1 ? 1 : count, static_cast<std::int64_t>(sizeof(T)), what);
  check(cudaMalloc(&p, static_cast<std::size_t>(bytes)), what);
  return static_cast<T*>(p);
}

struct LayerData {
  int in = 0;       // I
  int hid = 0;      // H
  int ld_x = 0;     // Ip = round_up4(I + 1): row stride of this layer's augmented input
  int ld_next = 0;  // row stride of hseq (the next layer's ld_x); 0 for the last layer
  std::int64_t state_prefix = 0;  // sum of H over the layers before this one
  float* wx = nullptr;            // [4H, Ip]: W_x | bias (+ forget_bias on f) | zero pad
  float* wh = nullptr;            // [4H, H]
  float* bias = nullptr;          // [4H] bias (+ forget_bias on f), TF32 only (see upload)
  float* zx = nullptr;            // [T_max * B_max, 4H] pre-activations, time-major rows
  float* hseq = nullptr;          // [T_max * B_max, ld_next] this layer's h per step (not last)
  float* hbuf = nullptr;          // [B_max, H] the fused step's second h buffer (small batch)
  cudaStream_t rec = nullptr;     // recurrent steps
  cudaStream_t proj = nullptr;    // chunked input projection (layers >= 1)
  cublasHandle_t rec_blas = nullptr;
  cublasHandle_t proj_blas = nullptr;
  void* rec_ws = nullptr;
  void* proj_ws = nullptr;
  cudaEvent_t ev_done = nullptr;  // recorded on rec after each chunk
  cudaEvent_t ev_proj = nullptr;  // recorded on proj after each chunk's GEMM
  cudaEvent_t ev_join_rec = nullptr;
  cudaEvent_t ev_join_proj = nullptr;
};

struct GraphEntry {
  std::int64_t batch = 0;
  std::int64_t time = 0;
  std::int32_t layout = 0;
  cudaGraphExec_t exec = nullptr;
  std::uint64_t last_use = 0;
};

constexpr std::size_t kMaxGraphs = 8;

class Session {
 public:
  explicit Session(const slstm_cuda_session_desc& d) {
    try {
      init(d);
    } catch (...) {
      release_on_device();
      throw;
    }
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { release_on_device(); }

  void forward(const slstm_cuda_forward_desc& c);

 private:
  void init(const slstm_cuda_session_desc& d);
  void release() noexcept;
  void release_on_device() noexcept;
  void check_device_pointer(const void* p, const char* name) const;
  std::int64_t chunk_steps(std::int64_t batch, std::int64_t time) const;
  void input_gemm(cublasHandle_t blas, const LayerData& layer, const float* x, std::int64_t row0,
                  std::int64_t rows);
  void enqueue_compute(cudaStream_t origin, int batch, int time, std::int32_t layout);
  cudaGraphExec_t graph_for(int batch, int time, std::int32_t layout);
  void finish(bool host);

  int device_ = 0;
  bool own_stream_ = false;
  bool use_graphs_ = true;
  bool tf32_ = false;
  // The fused recurrent step: 1 where it fits and was measured faster (rec_step_preferred),
  // 0 never, 2 wherever it fits (SLSTM_CUDA_FUSED=0 / 1 / always; 1 by default).
  int fused_mode_ = 1;
  std::int64_t chunk_override_ = 0;
  std::int64_t max_batch_ = 0;
  std::int64_t max_time_ = 0;
  int input_size_ = 0;
  std::size_t workspace_bytes_ = 0;
  std::vector<LayerData> layers_;
  cudaStream_t main_ = nullptr;     // where every call runs (the caller's stream or our own)
  cudaStream_t capture_ = nullptr;  // private: graph capture and session-creation work
  cudaEvent_t ev_fork_ = nullptr;
  cudaEvent_t ev_len_ = nullptr;  // the pinned lengths buffer may be overwritten after it
  bool len_pending_ = false;
  float* d_in_ = nullptr;         // staging of a host input, caller layout
  float* d_x_ = nullptr;          // [T_max * B_max, Ip_0] augmented, time-major
  float* d_out_ = nullptr;        // [B*T*H_last], caller layout
  float* d_state_ = nullptr;      // packed state for up to max_batch rows
  std::int32_t* d_len_ = nullptr; // [max_batch]
  std::int32_t* h_len_ = nullptr; // pinned [max_batch]
  std::vector<GraphEntry> graphs_;
  std::uint64_t clock_ = 0;
};

void Session::init(const slstm_cuda_session_desc& d) {
  if (d.num_layers < 1 || d.layers == nullptr) fail(SLSTM_ERR_INTERNAL, "no layers");
  int count = 0;
  const cudaError_t ce = cudaGetDeviceCount(&count);
  if (ce != cudaSuccess) {
    (void)cudaGetLastError();
    fail(SLSTM_ERR_BACKEND_UNAVAILABLE, std::string("no usable CUDA driver or device: "
                                                    "cudaGetDeviceCount: ") +
                                            cudaGetErrorName(ce) + ": " + cudaGetErrorString(ce));
  }
  if (d.device < 0 || d.device >= count) {
    fail(SLSTM_ERR_BACKEND_UNAVAILABLE,
         "options->device " + std::to_string(d.device) + " is out of range: this machine has " +
             std::to_string(count) + " CUDA device(s)");
  }
  device_ = d.device;
  DeviceGuard guard(device_);
  {
    const cudaError_t ke = check_kernel_image();
    if (ke != cudaSuccess) {
      (void)cudaGetLastError();
      int major = 0, minor = 0;
      (void)cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_);
      (void)cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device_);
      const std::int32_t status = ke == cudaErrorNoKernelImageForDevice ||
                                          ke == cudaErrorInvalidDeviceFunction ||
                                          ke == cudaErrorUnsupportedPtxVersion
                                      ? SLSTM_ERR_BACKEND_UNAVAILABLE
                                      : SLSTM_ERR_BACKEND_FAILURE;
      fail(status, "device " + std::to_string(device_) + " (compute capability " +
                       std::to_string(major) + "." + std::to_string(minor) +
                       ") cannot run this build's kernels (" + cudaGetErrorName(ke) + ": " +
                       cudaGetErrorString(ke) +
                       "); rebuild with -DCMAKE_CUDA_ARCHITECTURES=" + std::to_string(major) +
                       std::to_string(minor));
    }
  }
  int cc_major = 0;
  check(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, device_),
        "cudaDeviceGetAttribute");
  // cuBLAS's recommended user workspace: 32 MiB from Hopper on, 4 MiB before.
  workspace_bytes_ = static_cast<std::size_t>(cc_major >= 9 ? 32 : 4) << 20;

  if (const char* env = std::getenv("SLSTM_CUDA_GRAPHS")) use_graphs_ = std::strcmp(env, "0") != 0;
  if (const char* env = std::getenv("SLSTM_CUDA_FUSED")) {
    fused_mode_ = std::strcmp(env, "0") == 0 ? 0 : std::strcmp(env, "always") == 0 ? 2 : 1;
  }
  if (const char* env = std::getenv("SLSTM_CUDA_CHUNK")) {
    const long long v = std::atoll(env);
    chunk_override_ = v > 0 ? v : 0;
  }
  tf32_ = d.allow_tf32 != 0;
  max_batch_ = d.max_batch;
  max_time_ = d.max_time;
  input_size_ = to_int(d.input_size, "input_size");
  const std::int64_t rows = mul(max_batch_, max_time_, "max_batch x max_time");
  (void)to_int(rows, "max_batch x max_time");
  (void)to_int(max_batch_, "max_batch");

  // Streams and events.
  if (d.cuda_stream != nullptr) {
    main_ = static_cast<cudaStream_t>(d.cuda_stream);
  } else {
    check(cudaStreamCreate(&main_), "cudaStreamCreate");  // blocking: ordered with stream 0
    own_stream_ = true;
  }
  check(cudaStreamCreateWithFlags(&capture_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  check(cudaEventCreateWithFlags(&ev_fork_, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventCreateWithFlags(&ev_len_, cudaEventDisableTiming), "cudaEventCreate");

  // Layers: sizes first (all checks before any big allocation).
  const std::size_t L = static_cast<std::size_t>(d.num_layers);
  layers_.resize(L);
  std::int64_t prefix = 0;
  for (std::size_t l = 0; l < L; ++l) {
    const slstm_cuda_layer_desc& src = d.layers[l];
    LayerData& ld = layers_[l];
    ld.in = to_int(src.input_size, "input size of a layer");
    ld.hid = to_int(src.hidden_size, "hidden size of a layer");
    (void)to_int(mul(4, src.hidden_size, "4 x hidden size"), "4 x hidden size");
    ld.ld_x = to_int(round_up4(src.input_size + 1), "input size of a layer + 1");
    ld.state_prefix = prefix;
    prefix += src.hidden_size;
    (void)to_int(mul(max_batch_, src.hidden_size, "max_batch x hidden size"),
                 "max_batch x hidden size");
  }
  for (std::size_t l = 0; l + 1 < L; ++l) layers_[l].ld_next = layers_[l + 1].ld_x;

  // Device buffers.
  const LayerData& last = layers_.back();
  d_in_ = device_alloc<float>(mul(rows, input_size_, "input staging"), "cudaMalloc (input)");
  d_x_ = device_alloc<float>(mul(rows, layers_[0].ld_x, "packed input"), "cudaMalloc (input)");
  d_out_ = device_alloc<float>(mul(rows, last.hid, "output staging"), "cudaMalloc (output)");
  const std::int64_t state_floats = mul(2 * max_batch_, prefix, "state");
  d_state_ = device_alloc<float>(state_floats, "cudaMalloc (state)");
  d_len_ = device_alloc<std::int32_t>(max_batch_, "cudaMalloc (lengths)");
  {
    void* p = nullptr;
    check(cudaMallocHost(&p, static_cast<std::size_t>(max_batch_) * sizeof(std::int32_t)),
          "cudaMallocHost (lengths)");
    h_len_ = static_cast<std::int32_t*>(p);
  }
  check(cudaMemsetAsync(d_in_, 0, static_cast<std::size_t>(rows * input_size_) * sizeof(float),
                        capture_),
        "cudaMemsetAsync");
  check(cudaMemsetAsync(d_x_, 0, static_cast<std::size_t>(rows * layers_[0].ld_x) * sizeof(float),
                        capture_),
        "cudaMemsetAsync");
  check(launch_fill_column(capture_, d_x_, rows, layers_[0].ld_x, input_size_, 1.0f),
        "fill_column_kernel");
  check(cudaMemsetAsync(d_out_, 0, static_cast<std::size_t>(rows * last.hid) * sizeof(float),
                        capture_),
        "cudaMemsetAsync");
  check(cudaMemsetAsync(d_state_, 0, static_cast<std::size_t>(state_floats) * sizeof(float),
                        capture_),
        "cudaMemsetAsync");
  check(cudaMemsetAsync(d_len_, 0, static_cast<std::size_t>(max_batch_) * sizeof(std::int32_t),
                        capture_),
        "cudaMemsetAsync");

  std::vector<float> wx_host, bias_host;
  for (std::size_t l = 0; l < L; ++l) {
    const slstm_cuda_layer_desc& src = d.layers[l];
    LayerData& ld = layers_[l];
    const std::int64_t H = ld.hid, I = ld.in, G = 4 * H;
    // W_x augmented with the bias column (forget_bias folded into the f block) and zero pad.
    // With TF32 the GEMM would round the bias to a 10-bit mantissa with its inputs (about
    // 5e-4 on a forget bias of 1, the same error every step): then the column is zero and
    // the step kernel adds the bias in FP32.
    wx_host.assign(static_cast<std::size_t>(mul(G, ld.ld_x, "W_x")), 0.0f);
    bias_host.assign(static_cast<std::size_t>(G), 0.0f);
    for (std::int64_t r = 0; r < G; ++r) {
      std::memcpy(&wx_host[static_cast<std::size_t>(r * ld.ld_x)], src.w_x + r * I,
                  static_cast<std::size_t>(I) * sizeof(float));
      const bool f_gate = r >= H && r < 2 * H;  // gate order i, f, g, o
      const float b = src.bias[r] + (f_gate ? d.forget_bias : 0.0f);
      (tf32_ ? bias_host : wx_host)[static_cast<std::size_t>(tf32_ ? r : r * ld.ld_x + I)] = b;
    }
    if (tf32_) {
      ld.bias = device_alloc<float>(G, "cudaMalloc (bias)");
      check(cudaMemcpyAsync(ld.bias, bias_host.data(), bias_host.size() * sizeof(float),
                            cudaMemcpyHostToDevice, capture_),
            "cudaMemcpyAsync (bias)");
    }
    ld.wx = device_alloc<float>(G * ld.ld_x, "cudaMalloc (W_x)");
    check(cudaMemcpyAsync(ld.wx, wx_host.data(), wx_host.size() * sizeof(float),
                          cudaMemcpyHostToDevice, capture_),
          "cudaMemcpyAsync (W_x)");
    // Pageable source: the copy has consumed wx_host once it returns, but make sure before
    // the vector is reused for the next layer.
    check(cudaStreamSynchronize(capture_), "cudaStreamSynchronize");
    ld.wh = device_alloc<float>(G * H, "cudaMalloc (W_h)");
    check(cudaMemcpyAsync(ld.wh, src.w_h, static_cast<std::size_t>(G * H) * sizeof(float),
                          cudaMemcpyHostToDevice, capture_),
          "cudaMemcpyAsync (W_h)");
    ld.zx = device_alloc<float>(mul(rows, G, "pre-activations"), "cudaMalloc (pre-activations)");
    check(cudaMemsetAsync(ld.zx, 0, static_cast<std::size_t>(rows * G) * sizeof(float), capture_),
          "cudaMemsetAsync");
    if (l + 1 < L) {
      ld.hseq = device_alloc<float>(mul(rows, ld.ld_next, "hidden sequence"),
                                    "cudaMalloc (hidden sequence)");
      check(cudaMemsetAsync(ld.hseq, 0,
                            static_cast<std::size_t>(rows * ld.ld_next) * sizeof(float), capture_),
            "cudaMemsetAsync");
      // Column H is the next layer's constant-1 bias column.
      check(launch_fill_column(capture_, ld.hseq, rows, ld.ld_next, ld.hid, 1.0f),
            "fill_column_kernel");
    }
    // The fused step's second h buffer, where some batch <= max_batch can use that kernel.
    if (fused_mode_ != 0 && rec_step_fits(1, ld.hid)) {
      const std::int64_t n = mul(max_batch_, H, "h buffer");
      ld.hbuf = device_alloc<float>(n, "cudaMalloc (h buffer)");
      check(cudaMemsetAsync(ld.hbuf, 0, static_cast<std::size_t>(n) * sizeof(float), capture_),
            "cudaMemsetAsync");
    }
    // Streams, cuBLAS handles (one per stream, each with its own workspace: reproducible
    // results and graph capture need that), events.
    check(cudaStreamCreateWithFlags(&ld.rec, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    check(cudaEventCreateWithFlags(&ld.ev_done, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreateWithFlags(&ld.ev_join_rec, cudaEventDisableTiming), "cudaEventCreate");
    check(cublasCreate(&ld.rec_blas), "cublasCreate");
    ld.rec_ws = device_alloc<unsigned char>(static_cast<std::int64_t>(workspace_bytes_),
                                            "cudaMalloc (cuBLAS workspace)");
    if (l > 0) {
      check(cudaStreamCreateWithFlags(&ld.proj, cudaStreamNonBlocking),
            "cudaStreamCreateWithFlags");
      check(cudaEventCreateWithFlags(&ld.ev_proj, cudaEventDisableTiming), "cudaEventCreate");
      check(cudaEventCreateWithFlags(&ld.ev_join_proj, cudaEventDisableTiming),
            "cudaEventCreate");
      check(cublasCreate(&ld.proj_blas), "cublasCreate");
      ld.proj_ws = device_alloc<unsigned char>(static_cast<std::int64_t>(workspace_bytes_),
                                               "cudaMalloc (cuBLAS workspace)");
    }
    const cublasMath_t math = tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    struct Bind {
      cublasHandle_t h;
      cudaStream_t s;
      void* ws;
    };
    const Bind binds[] = {{ld.rec_blas, ld.rec, ld.rec_ws}, {ld.proj_blas, ld.proj, ld.proj_ws}};
    for (const Bind& b : binds) {
      if (b.h == nullptr) continue;
      // cublasSetStream resets the workspace: set the stream first.
      // Zeroed once, so that compute-sanitizer's initcheck sees no uninitialised reads.
      check(cudaMemsetAsync(b.ws, 0, workspace_bytes_, capture_), "cudaMemsetAsync");
      check(cublasSetStream(b.h, b.s), "cublasSetStream");
      check(cublasSetWorkspace(b.h, b.ws, workspace_bytes_), "cublasSetWorkspace");
      check(cublasSetMathMode(b.h, math), "cublasSetMathMode");
      check(cublasSetPointerMode(b.h, CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
      check(cublasSetAtomicsMode(b.h, CUBLAS_ATOMICS_NOT_ALLOWED), "cublasSetAtomicsMode");
    }
  }
  check(cudaStreamSynchronize(capture_), "session setup (cudaStreamSynchronize)");
}

void Session::release() noexcept {
  for (GraphEntry& g : graphs_) {
    if (g.exec != nullptr) (void)cudaGraphExecDestroy(g.exec);
  }
  graphs_.clear();
  for (LayerData& ld : layers_) {
    if (ld.rec_blas != nullptr) (void)cublasDestroy(ld.rec_blas);
    if (ld.proj_blas != nullptr) (void)cublasDestroy(ld.proj_blas);
    for (cudaEvent_t e : {ld.ev_done, ld.ev_proj, ld.ev_join_rec, ld.ev_join_proj}) {
      if (e != nullptr) (void)cudaEventDestroy(e);
    }
    for (cudaStream_t s : {ld.rec, ld.proj}) {
      if (s != nullptr) (void)cudaStreamDestroy(s);
    }
    for (void* p : {static_cast<void*>(ld.wx), static_cast<void*>(ld.wh),
                    static_cast<void*>(ld.bias),
                    static_cast<void*>(ld.zx), static_cast<void*>(ld.hseq),
                    static_cast<void*>(ld.hbuf), ld.rec_ws,
                    ld.proj_ws}) {
      if (p != nullptr) (void)cudaFree(p);
    }
    ld = LayerData{};
  }
  layers_.clear();
  for (void* p : {static_cast<void*>(d_in_), static_cast<void*>(d_x_),
                  static_cast<void*>(d_out_), static_cast<void*>(d_state_),
                  static_cast<void*>(d_len_)}) {
    if (p != nullptr) (void)cudaFree(p);
  }
  d_in_ = d_x_ = d_out_ = d_state_ = nullptr;
  d_len_ = nullptr;
  if (h_len_ != nullptr) (void)cudaFreeHost(h_len_);
  h_len_ = nullptr;
  for (cudaEvent_t e : {ev_fork_, ev_len_}) {
    if (e != nullptr) (void)cudaEventDestroy(e);
  }
  ev_fork_ = ev_len_ = nullptr;
  if (capture_ != nullptr) (void)cudaStreamDestroy(capture_);
  capture_ = nullptr;
  if (own_stream_ && main_ != nullptr) (void)cudaStreamDestroy(main_);
  main_ = nullptr;
}

// Waits for the session's work, then frees everything with the session's device current.
void Session::release_on_device() noexcept {
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess) previous = -1;
  const bool on_device = cudaSetDevice(device_) == cudaSuccess;
  if (on_device && main_ != nullptr) (void)cudaStreamSynchronize(main_);
  release();
  if (previous >= 0) (void)cudaSetDevice(previous);
  (void)cudaGetLastError();
}

// Steps per chunk of the wavefront: small enough that layer l+1 starts soon after layer l,
// large enough that each chunk's input GEMM has some rows. One layer: no chunking at all.
std::int64_t Session::chunk_steps(std::int64_t batch, std::int64_t time) const {
  if (layers_.size() == 1) return time;
  std::int64_t c = chunk_override_ > 0 ? chunk_override_ : (64 + batch - 1) / batch;
  if (chunk_override_ <= 0) c = std::min<std::int64_t>(std::max<std::int64_t>(c, 1), 8);
  return std::max<std::int64_t>(1, std::min(c, time));
}

// Zx[row0 .. row0+rows) = X_aug[row0 .. row0+rows) . Wx_aug^T (bias via the 1.0 column).
// Row-major Y[M, N] = X[M, K] . W[N, K]^T is, in cuBLAS's column-major terms,
// Y^T[N, M] = op_T(W as [K, N]) . X^T as [K, M].
void Session::input_gemm(cublasHandle_t blas, const LayerData& layer, const float* x,
                         std::int64_t row0, std::int64_t rows) {
  const float one = 1.0f, zero = 0.0f;
  check(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, 4 * layer.hid, static_cast<int>(rows),
                    layer.in + 1, &one, layer.wx, layer.ld_x, x + row0 * layer.ld_x, layer.ld_x,
                    &zero, layer.zx + row0 * 4 * layer.hid, 4 * layer.hid),
        "cublasSgemm (input projection)");
}

void Session::enqueue_compute(cudaStream_t origin, int batch, int time, std::int32_t layout) {
  const std::size_t L = layers_.size();
  const std::int64_t B = batch, T = time;
  const float one = 1.0f;
  check(cudaEventRecord(ev_fork_, origin), "cudaEventRecord");
  for (LayerData& ld : layers_) {
    check(cudaStreamWaitEvent(ld.rec, ev_fork_, 0), "cudaStreamWaitEvent");
    if (ld.proj != nullptr) check(cudaStreamWaitEvent(ld.proj, ev_fork_, 0), "cudaStreamWaitEvent");
  }
  // Layer 0: one input GEMM for all T steps.
  input_gemm(layers_[0].rec_blas, layers_[0], d_x_, 0, T * B);
  const std::int64_t C = chunk_steps(B, T);
  const LayerData& last = layers_.back();
  for (std::int64_t t0 = 0; t0 < T; t0 += C) {
    const std::int64_t t1 = std::min(T, t0 + C);
    for (std::size_t l = 0; l < L; ++l) {
      LayerData& ld = layers_[l];
      const std::int64_t H = ld.hid, G = 4 * H;
      if (l > 0) {
        // This chunk's input projection, once layer l-1 has produced these steps.
        check(cudaStreamWaitEvent(ld.proj, layers_[l - 1].ev_done, 0), "cudaStreamWaitEvent");
        input_gemm(ld.proj_blas, ld, layers_[l - 1].hseq, t0 * B, (t1 - t0) * B);
        check(cudaEventRecord(ld.ev_proj, ld.proj), "cudaEventRecord");
        check(cudaStreamWaitEvent(ld.rec, ld.ev_proj, 0), "cudaStreamWaitEvent");
      }
      float* c = d_state_ + 2 * B * ld.state_prefix;
      float* h = c + B * H;
      // Small batches: one fused kernel per step, h alternating between the state's h (even
      // steps read it) and hbuf (odd steps read it); else a cuBLAS GEMM + the step kernel.
      const bool fused = ld.hbuf != nullptr &&
                         (fused_mode_ == 2 ? rec_step_fits(batch, ld.hid)
                                           : rec_step_preferred(batch, ld.hid, tf32_));
      for (std::int64_t t = t0; t < t1; ++t) {
        float* z = ld.zx + t * B * G;
        if (!fused) {
          // z += h . W_h^T (in place: beta = 1).
          check(cublasSgemm(ld.rec_blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(G), batch,
                            ld.hid, &one, ld.wh, ld.hid, h, ld.hid, &one, z, static_cast<int>(G)),
                "cublasSgemm (recurrent)");
        }
        float* y = nullptr;
        std::int64_t y_stride = 0;
        if (l + 1 < L) {
          y = ld.hseq + t * B * ld.ld_next;
          y_stride = ld.ld_next;
        } else if (layout == SLSTM_TIME_MAJOR) {
          y = d_out_ + t * B * last.hid;
          y_stride = last.hid;
        } else {
          y = d_out_ + t * last.hid;
          y_stride = T * last.hid;
        }
        if (fused) {
          const bool even = t % 2 == 0;
          check(launch_lstm_rec_step(ld.rec, ld.wh, z, ld.bias, even ? h : ld.hbuf,
                                     even ? ld.hbuf : h, c, y, y_stride, d_len_,
                                     static_cast<int>(t), batch, ld.hid),
                "lstm_rec_step_kernel");
        } else {
          check(launch_lstm_step(ld.rec, z, ld.bias, c, h, y, y_stride, d_len_,
                                 static_cast<int>(t), batch, ld.hid),
                "lstm_step_kernel");
        }
      }
      // After an odd number of fused steps the last h is in hbuf: back into the state.
      if (fused && t1 == T && T % 2 == 1) {
        check(cudaMemcpyAsync(h, ld.hbuf, static_cast<std::size_t>(B * H) * sizeof(float),
                              cudaMemcpyDeviceToDevice, ld.rec),
              "cudaMemcpyAsync (h buffer)");
      }
      if (l + 1 < L) check(cudaEventRecord(ld.ev_done, ld.rec), "cudaEventRecord");
    }
  }
  // Join every stream back into the origin.
  for (LayerData& ld : layers_) {
    check(cudaEventRecord(ld.ev_join_rec, ld.rec), "cudaEventRecord");
    check(cudaStreamWaitEvent(origin, ld.ev_join_rec, 0), "cudaStreamWaitEvent");
    if (ld.proj != nullptr) {
      check(cudaEventRecord(ld.ev_join_proj, ld.proj), "cudaEventRecord");
      check(cudaStreamWaitEvent(origin, ld.ev_join_proj, 0), "cudaStreamWaitEvent");
    }
  }
}

cudaGraphExec_t Session::graph_for(int batch, int time, std::int32_t layout) {
  for (GraphEntry& g : graphs_) {
    if (g.batch == batch && g.time == time && g.layout == layout) {
      g.last_use = ++clock_;
      return g.exec;
    }
  }
  check(cudaStreamBeginCapture(capture_, cudaStreamCaptureModeThreadLocal),
        "cudaStreamBeginCapture");
  try {
    enqueue_compute(capture_, batch, time, layout);
  } catch (...) {
    cudaGraph_t broken = nullptr;
    (void)cudaStreamEndCapture(capture_, &broken);
    if (broken != nullptr) (void)cudaGraphDestroy(broken);
    (void)cudaGetLastError();
    throw;
  }
  cudaGraph_t graph = nullptr;
  check(cudaStreamEndCapture(capture_, &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  check(e, "cudaGraphInstantiate");
  if (graphs_.size() >= kMaxGraphs) {
    auto oldest = std::min_element(graphs_.begin(), graphs_.end(),
                                   [](const GraphEntry& a, const GraphEntry& b) {
                                     return a.last_use < b.last_use;
                                   });
    (void)cudaGraphExecDestroy(oldest->exec);
    graphs_.erase(oldest);
  }
  GraphEntry entry;
  entry.batch = batch;
  entry.time = time;
  entry.layout = layout;
  entry.exec = exec;
  entry.last_use = ++clock_;
  try {
    graphs_.push_back(entry);
  } catch (...) {
    (void)cudaGraphExecDestroy(exec);
    throw;
  }
  return exec;
}

void Session::check_device_pointer(const void* p, const char* name) const {
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

void Session::finish(bool host) {
  if (host || own_stream_) {
    check(cudaStreamSynchronize(main_), "forward (cudaStreamSynchronize)");
    len_pending_ = false;
  }
  check(cudaGetLastError(), "forward");
}

void Session::forward(const slstm_cuda_forward_desc& c) {
  DeviceGuard guard(device_);
  const bool host = c.memory == SLSTM_MEMORY_HOST;
  const cudaMemcpyKind to_dev = host ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice;
  const cudaMemcpyKind from_dev = host ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
  if (!host) {
    if (c.time > 0) check_device_pointer(c.input, "input");
    check_device_pointer(c.initial_state, "initial_state");
    if (c.time > 0) check_device_pointer(c.output, "output");
    check_device_pointer(c.final_state, "final_state");
  }
  if (c.batch < 1 || c.batch > max_batch_ || c.time < 0 || c.time > max_time_) {
    fail(SLSTM_ERR_INTERNAL, "forward: unvalidated batch/time reached the CUDA module");
  }
  const int B = static_cast<int>(c.batch);
  const int T = static_cast<int>(c.time);
  std::int64_t state_floats = 0;
  for (const LayerData& ld : layers_) state_floats += 2 * c.batch * ld.hid;
  const std::size_t state_bytes = static_cast<std::size_t>(state_floats) * sizeof(float);

  if (T == 0) {  // no steps: final state = initial state (or zeros)
    if (c.final_state == nullptr) return;
    if (host) {
      if (c.initial_state == nullptr) {
        std::fill_n(c.final_state, state_floats, 0.0f);
      } else if (c.initial_state != c.final_state) {
        std::memcpy(c.final_state, c.initial_state, state_bytes);
      }
      return;
    }
    if (c.initial_state == nullptr) {
      check(cudaMemsetAsync(c.final_state, 0, state_bytes, main_), "cudaMemsetAsync (final_state)");
    } else if (c.initial_state != c.final_state) {
      check(cudaMemcpyAsync(c.final_state, c.initial_state, state_bytes, cudaMemcpyDeviceToDevice,
                            main_),
            "cudaMemcpyAsync (final_state)");
    }
    finish(false);
    return;
  }

  // 1. Lengths (the pinned buffer is reused only after its previous copy has run).
  if (len_pending_) {
    check(cudaEventSynchronize(ev_len_), "cudaEventSynchronize");
    len_pending_ = false;
  }
  for (int b = 0; b < B; ++b) h_len_[b] = c.lengths != nullptr ? c.lengths[b] : T;
  check(cudaMemcpyAsync(d_len_, h_len_, static_cast<std::size_t>(B) * sizeof(std::int32_t),
                        cudaMemcpyHostToDevice, main_),
        "cudaMemcpyAsync (sequence_lengths)");
  check(cudaEventRecord(ev_len_, main_), "cudaEventRecord");
  len_pending_ = true;
  // 2. Input.
  const LayerData& first = layers_.front();
  const LayerData& last = layers_.back();
  const std::size_t in_bytes =
      static_cast<std::size_t>(c.batch * c.time * input_size_) * sizeof(float);
  const float* src = c.input;
  if (host) {
    check(cudaMemcpyAsync(d_in_, c.input, in_bytes, cudaMemcpyHostToDevice, main_),
          "cudaMemcpyAsync (input)");
    src = d_in_;
  }
  check(launch_pack_input(main_, src, d_x_, B, T, input_size_, first.ld_x,
                          c.layout == SLSTM_BATCH_MAJOR),
        "pack_input_kernel");
  // 3. Initial state.
  if (c.initial_state != nullptr) {
    check(cudaMemcpyAsync(d_state_, c.initial_state, state_bytes, to_dev, main_),
          "cudaMemcpyAsync (initial_state)");
  } else {
    check(cudaMemsetAsync(d_state_, 0, state_bytes, main_), "cudaMemsetAsync (state)");
  }
  // 4. The compute.
  if (use_graphs_) {
    cudaGraphExec_t exec = graph_for(B, T, c.layout);
    check(cudaGraphLaunch(exec, main_), "cudaGraphLaunch");
  } else {
    enqueue_compute(main_, B, T, c.layout);
  }
  // 5. Results.
  if (c.output != nullptr) {
    const std::size_t out_bytes =
        static_cast<std::size_t>(c.batch * c.time * last.hid) * sizeof(float);
    check(cudaMemcpyAsync(c.output, d_out_, out_bytes, from_dev, main_), "cudaMemcpyAsync (output)");
  }
  if (c.final_state != nullptr) {
    check(cudaMemcpyAsync(c.final_state, d_state_, state_bytes, from_dev, main_),
          "cudaMemcpyAsync (final_state)");
  }
  // 6. Host buffers (or no caller stream to synchronise on): wait and report.
  finish(host);
}

void write_message(char* msg, std::size_t size, const std::string& text) {
  if (msg == nullptr || size == 0) return;
  std::snprintf(msg, size, "%s", text.c_str());
}

template <typename Body>
std::int32_t firewall(char* msg, std::size_t size, Body&& body) noexcept {
  try {
    body();
    return SLSTM_OK;
  } catch (const Failure& f) {
    try {
      write_message(msg, size, f.message);
    } catch (...) {
    }
    return f.status;
  } catch (const std::bad_alloc&) {
    write_message(msg, size, "out of host memory");
    return SLSTM_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    write_message(msg, size, e.what());
    return SLSTM_ERR_INTERNAL;
  } catch (...) {
    write_message(msg, size, "unknown error in the CUDA module");
    return SLSTM_ERR_INTERNAL;
  }
}

std::int32_t probe(char* msg, std::size_t size) {
  return firewall(msg, size, [&] {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      const char* cause = e == cudaErrorInsufficientDriver
                              ? "no NVIDIA driver is loaded, or it is older than this CUDA runtime"
                          : e == cudaErrorNoDevice ? "no CUDA device is visible"
                                                   : "the CUDA runtime cannot start";
      fail(SLSTM_ERR_BACKEND_UNAVAILABLE, std::string(cause) + " (cudaGetDeviceCount: " +
                                              cudaGetErrorName(e) + ": " + cudaGetErrorString(e) +
                                              ")");
    }
    if (count < 1) {
      fail(SLSTM_ERR_BACKEND_UNAVAILABLE, "no CUDA device is visible (cudaGetDeviceCount: 0)");
    }
  });
}

std::int32_t session_create(const slstm_cuda_session_desc* desc, void** out, char* msg,
                            std::size_t size) {
  return firewall(msg, size, [&] {
    if (desc == nullptr || out == nullptr) fail(SLSTM_ERR_INTERNAL, "session_create: NULL");
    Session* s = new Session(*desc);
    *out = s;
  });
}

std::int32_t session_forward(void* session, const slstm_cuda_forward_desc* call, char* msg,
                             std::size_t size) {
  return firewall(msg, size, [&] {
    if (session == nullptr || call == nullptr) fail(SLSTM_ERR_INTERNAL, "session_forward: NULL");
    static_cast<Session*>(session)->forward(*call);
  });
}

void session_destroy(void* session) {
  try {
    delete static_cast<Session*>(session);
  } catch (...) {
  }
}

const slstm_cuda_module_table kTable = {
    sizeof(slstm_cuda_module_table), SLSTM_CUDA_MODULE_ABI_VERSION, &probe, &session_create,
    &session_forward, &session_destroy};

}  // namespace
}  // namespace slstm_cuda

SLSTM_CUDA_EXPORT const slstm_cuda_module_table* slstm_cuda_module_v1(void) {
  return &slstm_cuda::kTable;
}
