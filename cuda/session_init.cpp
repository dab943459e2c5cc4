// Creating a session (session.hpp), in this order: the device and its kernel image, the
// knobs, the size checks (all before any big allocation), the streams, the shared buffers,
// then per layer its weights, its activations and its streams, cuBLAS handles and events.
// The setup work runs on the private stream capture_, synchronised once at the end.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels.cuh"
#include "session.hpp"

namespace slstm_cuda {
namespace {

[[noreturn]] void fail_kernel_image(cudaError_t ke, int device) {
  (void)cudaGetLastError();
  int major = 0, minor = 0;
  (void)cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  (void)cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  const slstm_status status = ke == cudaErrorNoKernelImageForDevice ||
                                      ke == cudaErrorInvalidDeviceFunction ||
                                      ke == cudaErrorUnsupportedPtxVersion
                                  ? SLSTM_ERR_BACKEND_UNAVAILABLE
                                  : SLSTM_ERR_BACKEND_FAILURE;
  fail(status, "device " + std::to_string(device) + " (compute capability " +
                   std::to_string(major) + "." + std::to_string(minor) +
                   ") cannot run this build's kernels (" + cudaGetErrorName(ke) + ": " +
                   cudaGetErrorString(ke) + "); rebuild with -DCMAKE_CUDA_ARCHITECTURES=" +
                   std::to_string(major) + std::to_string(minor));
}

}  // namespace

int usable_device(int device) {
  int count = 0;
  const cudaError_t ce = cudaGetDeviceCount(&count);
  if (ce != cudaSuccess) {
    (void)cudaGetLastError();
    fail(SLSTM_ERR_BACKEND_UNAVAILABLE, std::string("no usable CUDA driver or device: "
                                                    "cudaGetDeviceCount: ") +
                                            cudaGetErrorName(ce) + ": " + cudaGetErrorString(ce));
  }
  if (device < 0 || device >= count) {
    fail(SLSTM_ERR_BACKEND_UNAVAILABLE,
         "options->device " + std::to_string(device) + " is out of range: this machine has " +
             std::to_string(count) + " CUDA device(s)");
  }
  return device;
}

void require_kernel_image(int device) {
  const cudaError_t ke = check_kernel_image();
  if (ke != cudaSuccess) fail_kernel_image(ke, device);
}

namespace {

// W_x augmented with the bias column (forget_bias folded into the f block) and zero pad,
// [4H, ld_x] row-major. With TF32 the GEMM would round the bias to a 10-bit mantissa with its
// inputs (about 5e-4 on a forget bias of 1, the same error every step): then the column is
// zero and the bias goes to `bias` [4H], which the step kernel adds in FP32.
void pack_weights(const slstm_cuda_layer_desc& src, const LayerData& ld, bool tf32,
                  std::vector<float>& wx, std::vector<float>& bias) {
  const std::int64_t H = ld.hid, I = ld.in, G = 4 * H;
  wx.assign(static_cast<std::size_t>(mul(G, ld.ld_x, "W_x")), 0.0f);
  bias.assign(static_cast<std::size_t>(G), 0.0f);
  for (std::int64_t r = 0; r < G; ++r) {
    std::memcpy(&wx[static_cast<std::size_t>(r * ld.ld_x)], src.w_x + r * I,
                static_cast<std::size_t>(I) * sizeof(float));
    const float b = src.bias[r];  // forget_bias already folded in by the core
    (tf32 ? bias : wx)[static_cast<std::size_t>(tf32 ? r : r * ld.ld_x + I)] = b;
  }
}

}  // namespace

std::unique_ptr<Session> Session::create(const slstm_cuda_session_desc& d) {
  // Not make_unique: the constructor is private. A failing init() destroys the session,
  // which releases whatever init() had created (~Session).
  std::unique_ptr<Session> session(new Session());
  session->init(d);
  return session;
}

void Session::init(const slstm_cuda_session_desc& d) {
  if (d.num_layers < 1 || d.layers == nullptr) fail(SLSTM_ERR_INTERNAL, "no layers");
  select_device(d.device);
  DeviceGuard guard(device_);
  probe_device();
  read_knobs(d);
  tf32_ = d.allow_tf32 != 0;
  init_tuning(d);
  const std::int64_t rows = check_sizes(d);
  create_streams(d.cuda_stream);
  size_layers(d);
  allocate(rows);
  const std::size_t L = layers_.size();
  for (std::size_t l = 0; l < L; ++l) {
    upload_layer(d.layers[l], layers_[l]);
    allocate_layer(layers_[l], rows, l + 1 == L);
    create_layer_streams(layers_[l], l > 0);
  }
  check(cudaStreamSynchronize(capture_.get()), "session setup (cudaStreamSynchronize)");
}

void Session::select_device(int device) { device_ = usable_device(device); }

// The current device (device_) runs this build's kernels; cuBLAS's workspace size for it
// (cuda.blas_workspace_mib may set another: read_knobs).
void Session::probe_device() {
  require_kernel_image(device_);
  int cc_major = 0;
  check(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, device_),
        "cudaDeviceGetAttribute");
  // cuBLAS's recommended user workspace: 32 MiB from Hopper on, 4 MiB before.
  workspace_bytes_ = static_cast<std::size_t>(cc_major >= 9 ? 32 : 4) << 20;
}

// The keyed settings cuda.graphs, cuda.fused, cuda.chunk and cuda.persistent(_timeout_us), as the core parsed them (with
// the environment overrides SLSTM_CUDA_GRAPHS / _FUSED / _CHUNK applied: src/settings.cpp).
void Session::read_knobs(const slstm_cuda_session_desc& d) {
  use_graphs_ = d.use_graphs != 0;
  if (d.fused_mode < 0 || d.fused_mode > 2) fail(SLSTM_ERR_INTERNAL, "fused_mode out of range");
  fused_mode_ = d.fused_mode;
  chunk_override_ = d.chunk_steps > 0 ? d.chunk_steps : 0;
  if (d.persistent < 0 || d.persistent > 2) fail(SLSTM_ERR_INTERNAL, "persistent out of range");
  persistent_ = d.persistent != 0;
  persistent_stack_ = d.persistent == 1;
  if (d.cluster < 0 || d.cluster > 1) fail(SLSTM_ERR_INTERNAL, "cluster out of range");
  cluster_ = d.cluster != 0;
  if (d.hybrid < 0 || d.hybrid > 1) fail(SLSTM_ERR_INTERNAL, "hybrid out of range");
  hybrid_ = d.hybrid != 0;
  if (d.persistent_timeout_us < 0) fail(SLSTM_ERR_INTERNAL, "persistent_timeout_us < 0");
  if (d.host_staging_bytes < 0) fail(SLSTM_ERR_INTERNAL, "host_staging_bytes < 0");
  stage_floats_ = d.host_staging_bytes / static_cast<std::int64_t>(sizeof(float));
  if (d.blas_workspace_bytes < 0) fail(SLSTM_ERR_INTERNAL, "blas_workspace_bytes < 0");
  if (d.blas_workspace_bytes > 0) {
    workspace_bytes_ = static_cast<std::size_t>(d.blas_workspace_bytes);
  }
  persistent_timeout_ns_ = static_cast<long long>(d.persistent_timeout_us) * 1000;
}

// The session's sizes within what CUDA launches and cuBLAS take; returns max_batch x max_time.
std::int64_t Session::check_sizes(const slstm_cuda_session_desc& d) {
  max_batch_ = d.max_batch;
  max_time_ = d.max_time;
  input_size_ = to_int(d.input_size, "input_size");
  const std::int64_t rows = mul(max_batch_, max_time_, "max_batch x max_time");
  (void)to_int(rows, "max_batch x max_time");
  (void)to_int(max_batch_, "max_batch");
  return rows;
}

void Session::create_streams(void* caller_stream) {
  if (caller_stream != nullptr) {
    main_ = static_cast<cudaStream_t>(caller_stream);
  } else {
    own_main_ = blocking_stream();  // blocking: ordered with stream 0
    main_ = own_main_.get();
  }
  capture_ = non_blocking_stream();
  ev_fork_ = ordering_event();
  ev_len_ = ordering_event();
  ev_call_end_ = ordering_event();
}

// Every layer's sizes, offsets and step plan, checked before anything big is allocated.
void Session::size_layers(const slstm_cuda_session_desc& d) {
  const std::size_t L = static_cast<std::size_t>(d.num_layers);
  layers_.resize(L);
  state_row_floats_ = d.state_row_floats;
  for (std::size_t l = 0; l < L; ++l) {
    const slstm_cuda_layer_desc& src = d.layers[l];
    LayerData& ld = layers_[l];
    ld.in = to_int(src.input_size, "input size of a layer");
    ld.hid = to_int(src.hidden_size, "hidden size of a layer");
    (void)to_int(mul(4, src.hidden_size, "4 x hidden size"), "4 x hidden size");
    ld.ld_x = to_int(round_up4(src.input_size + 1), "input size of a layer + 1");
    // The packed state's layout is the core's (StateLayout); it must hold c and h of H each.
    if (src.state_c_row < 0 || src.state_h_row < 0 ||
        src.state_c_row + src.hidden_size > d.state_row_floats ||
        src.state_h_row + src.hidden_size > d.state_row_floats) {
      fail(SLSTM_ERR_INTERNAL, "a layer's state offsets lie outside the packed state");
    }
    ld.state_c_row = src.state_c_row;
    ld.state_h_row = src.state_h_row;
    (void)to_int(mul(max_batch_, src.hidden_size, "max_batch x hidden size"),
                 "max_batch x hidden size");
    ld.plan = plan_steps(ld.hid, fused_mode_, tf32_, max_batch_);
  }
  for (std::size_t l = 0; l + 1 < L; ++l) layers_[l].ld_next = layers_[l + 1].ld_x;
  if (persistent_) {
    int sms = 0, cooperative = 0;
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_),
          "cudaDeviceGetAttribute");
    check(cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device_),
          "cudaDeviceGetAttribute");
    if (cooperative != 0) {
      std::vector<LayerShape> shapes;
      for (const LayerData& ld : layers_) shapes.push_back({ld.hid, ld.ld_x});
      const std::vector<std::uint32_t> masks =
          plan_persistent(shapes, max_batch_, sms, persistent_ctas_per_sm);
      for (std::size_t l = 0; l < L; ++l) layers_[l].plan.persistent_batches = masks[l];
      if (persistent_stack_) stack_ = plan_stack(shapes, max_batch_, sms, persistent_ctas_per_sm);
      if (hybrid_) plan_hybrid_tier(shapes, masks, sms);
      // cuda.cluster=on: the persistent batches a layer runs on one cluster (never those of
      // the whole-stack launch, which keeps its step flags, nor the hybrid tier's).
      for (std::size_t l = 0; cluster_ && l < L; ++l) {
        StepPlan& p = layers_[l].plan;
        const std::uint32_t mine = p.persistent_batches & ~stack_.batches & ~p.hybrid_batches;
        const ClusterPlan c = plan_cluster(layers_[l].hid, mine, cluster_launchable);
        p.cluster_batches = c.batches;
        p.cluster_ctas = c.shape.ctas;
        p.cluster_units = c.shape.units;
      }
    }
  }
}

// cuda.hybrid=on: the layers plan_persistent left out (`full`: its masks) run the hybrid
// tier for the batches plan_hybrid finds, their CTAs holding the first hybrid_resident
// columns of each W_h row. Each such layer's launches carry an L2 access policy window over
// its W_h (as much as the device's largest window covers), its lines persisting with the
// probability that fits the device's persisting set-aside (hit_ratio = set-aside / window),
// which the session raises to the largest window, up to the device's maximum, and never
// lowers (cudaLimitPersistingL2CacheSize: the process's, on that device); when the device's
// last session that holds it ends, it goes back to what it was (SetAsideLease). Where the
// device has no set-aside or refuses the queries, the tier runs without windows.
void Session::plan_hybrid_tier(const std::vector<LayerShape>& shapes,
                               const std::vector<std::uint32_t>& full, int sms) {
  const std::vector<HybridPlan> hybrid =
      plan_hybrid(shapes, full, max_batch_, sms, persistent_ctas_per_sm);
  int max_window = 0, max_persisting = 0;
  if (cudaDeviceGetAttribute(&max_window, cudaDevAttrMaxAccessPolicyWindowSize, device_) !=
          cudaSuccess ||
      cudaDeviceGetAttribute(&max_persisting, cudaDevAttrMaxPersistingL2CacheSize, device_) !=
          cudaSuccess) {
    (void)cudaGetLastError();
    max_window = max_persisting = 0;
  }
  std::size_t widest = 0;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    if (hybrid[l].batches == 0) continue;
    LayerData& ld = layers_[l];
    ld.plan.hybrid_batches = hybrid[l].batches;
    ld.plan.hybrid_resident = hybrid[l].resident;
    ld.plan.persistent_batches |= hybrid[l].batches;
    const std::size_t wh_bytes = static_cast<std::size_t>(4) * static_cast<std::size_t>(ld.hid) *
                                 static_cast<std::size_t>(ld.hid) * sizeof(float);
    ld.l2_window.bytes = std::min(wh_bytes, static_cast<std::size_t>(std::max(max_window, 0)));
    widest = std::max(widest, ld.l2_window.bytes);
  }
  if (widest > 0 && max_persisting > 0) {
    set_aside_ = SetAsideLease::acquire(
        device_, std::min(widest, static_cast<std::size_t>(max_persisting)));
  }
  const std::size_t set_aside = set_aside_.bytes();
  for (LayerData& ld : layers_) {
    if (set_aside == 0 || ld.l2_window.bytes == 0) {
      ld.l2_window.bytes = 0;
      continue;
    }
    ld.l2_window.hit_ratio = static_cast<float>(
        std::min(1.0, static_cast<double>(set_aside) / static_cast<double>(ld.l2_window.bytes)));
  }
}

// The buffers shared by the layers, zeroed; column D of the packed input set to 1.0.
void Session::allocate(std::int64_t rows) {
  const LayerData& first = layers_.front();
  const LayerData& last = layers_.back();
  d_in_ = device_alloc<float>(mul(rows, input_size_, "input staging"), "cudaMalloc (input)");
  d_x_ = device_alloc<float>(mul(rows, first.ld_x, "packed input"), "cudaMalloc (input)");
  d_out_ = device_alloc<float>(mul(rows, last.hid, "output staging"), "cudaMalloc (output)");
  const std::int64_t state_floats = mul(max_batch_, state_row_floats_, "state");
  d_state_ = device_alloc<float>(state_floats, "cudaMalloc (state)");
  d_len_ = device_alloc<std::int32_t>(max_batch_, "cudaMalloc (lengths)");
  h_len_ = pinned_alloc<std::int32_t>(max_batch_, "cudaMallocHost (lengths)");
  if (stage_floats_ > 0) {
    h_stage_ = pinned_alloc<float>(stage_floats_, "cudaMallocHost (cuda.staging)");
  }
  zero(d_in_.get(), static_cast<std::size_t>(rows * input_size_) * sizeof(float));
  zero(d_x_.get(), static_cast<std::size_t>(rows * first.ld_x) * sizeof(float));
  check(launch_fill_column(capture_.get(), d_x_.get(), rows, first.ld_x, input_size_, 1.0f),
        "fill_column_kernel");
  zero(d_out_.get(), static_cast<std::size_t>(rows * last.hid) * sizeof(float));
  zero(d_state_.get(), static_cast<std::size_t>(state_floats) * sizeof(float));
  zero(d_len_.get(), static_cast<std::size_t>(max_batch_) * sizeof(std::int32_t));
  if (stack_.batches != 0) {
    int ctas = 0;
    for (const LayerData& ld : layers_) ctas += persistent_ctas(ld.hid);
    const auto words = static_cast<std::int64_t>(persistent_sync_words(ctas));
    d_stack_sync_ = device_alloc<unsigned>(words, "cudaMalloc (persistent flags)");
    zero(d_stack_sync_.get(), static_cast<std::size_t>(words) * sizeof(unsigned));
  }
  if (persistent_) {
    h_status_ = pinned_alloc<int>(1, "cudaMallocHost (persistent status)");
    *h_status_.get() = 0;
    void* mapped = nullptr;
    check(cudaHostGetDevicePointer(&mapped, h_status_.get(), 0), "cudaHostGetDevicePointer");
    d_status_ = static_cast<int*>(mapped);
  }
}

// The layer's weights, packed (pack_weights) and copied to the device.
void Session::upload_layer(const slstm_cuda_layer_desc& src, LayerData& ld) {
  const std::int64_t H = ld.hid, G = 4 * H;
  std::vector<float> wx_host, bias_host;
  pack_weights(src, ld, tf32_, wx_host, bias_host);
  if (tf32_) {
    ld.bias = device_alloc<float>(G, "cudaMalloc (bias)");
    check(cudaMemcpyAsync(ld.bias.get(), bias_host.data(), bias_host.size() * sizeof(float),
                          cudaMemcpyHostToDevice, capture_.get()),
          "cudaMemcpyAsync (bias)");
  }
  ld.wx = device_alloc<float>(G * ld.ld_x, "cudaMalloc (W_x)");
  check(cudaMemcpyAsync(ld.wx.get(), wx_host.data(), wx_host.size() * sizeof(float),
                        cudaMemcpyHostToDevice, capture_.get()),
        "cudaMemcpyAsync (W_x)");
  // Pageable source: the copy has consumed wx_host once it returns, but make sure before
  // the vector is freed.
  check(cudaStreamSynchronize(capture_.get()), "cudaStreamSynchronize");
  ld.wh = device_alloc<float>(G * H, "cudaMalloc (W_h)");
  check(cudaMemcpyAsync(ld.wh.get(), src.w_h, static_cast<std::size_t>(G * H) * sizeof(float),
                        cudaMemcpyHostToDevice, capture_.get()),
        "cudaMemcpyAsync (W_h)");
  if (ld.l2_window.bytes > 0) ld.l2_window.base = ld.wh.get();
}

// The layer's pre-activations, h sequence (all but the last layer) and second h buffer.
void Session::allocate_layer(LayerData& ld, std::int64_t rows, bool last) {
  const std::int64_t H = ld.hid, G = 4 * H;
  ld.zx = device_alloc<float>(mul(rows, G, "pre-activations"), "cudaMalloc (pre-activations)");
  zero(ld.zx.get(), static_cast<std::size_t>(rows * G) * sizeof(float));
  if (!last) {
    ld.hseq = device_alloc<float>(mul(rows, ld.ld_next, "hidden sequence"),
                                  "cudaMalloc (hidden sequence)");
    zero(ld.hseq.get(), static_cast<std::size_t>(rows * ld.ld_next) * sizeof(float));
    // Column H is the next layer's constant-1 bias column.
    check(launch_fill_column(capture_.get(), ld.hseq.get(), rows, ld.ld_next, ld.hid, 1.0f),
          "fill_column_kernel");
  }
  // The fused step's second h buffer, where some batch <= max_batch can use that kernel
  // (the persistent kernel's batches too: they fall back to it), and for the persistent stack.
  if (((fused_mode_ != 0 || ld.plan.persistent_batches != 0) && rec_step_fits(1, ld.hid)) ||
      stack_.batches != 0) {
    const std::int64_t n = mul(max_batch_, H, "h buffer");
    ld.hbuf = device_alloc<float>(n, "cudaMalloc (h buffer)");
    zero(ld.hbuf.get(), static_cast<std::size_t>(n) * sizeof(float));
  }
  if (ld.plan.persistent_batches != 0) {
    const auto words = static_cast<std::int64_t>(persistent_sync_words(persistent_ctas(ld.hid)));
    ld.sync = device_alloc<unsigned>(words, "cudaMalloc (persistent flags)");
    zero(ld.sync.get(), static_cast<std::size_t>(words) * sizeof(unsigned));
  }
}

// Streams, cuBLAS handles (one per stream, each with its own workspace: reproducible results
// and graph capture need that), events. `projects`: the layer has a projection stream.
void Session::create_layer_streams(LayerData& ld, bool projects) {
  const auto workspace = static_cast<std::int64_t>(workspace_bytes_);
  ld.rec = non_blocking_stream();
  ld.ev_done = ordering_event();
  ld.ev_join_rec = ordering_event();
  ld.rec_blas = blas_handle();
  ld.rec_ws = device_alloc<unsigned char>(workspace, "cudaMalloc (cuBLAS workspace)");
  tally_workspace(workspace);
  if (projects) {
    ld.proj = non_blocking_stream();
    ld.ev_proj = ordering_event();
    ld.ev_join_proj = ordering_event();
    ld.proj_blas = blas_handle();
    ld.proj_ws = device_alloc<unsigned char>(workspace, "cudaMalloc (cuBLAS workspace)");
    tally_workspace(workspace);
  }
  bind_blas(ld.rec_blas, ld.rec, ld.rec_ws);
  if (projects) bind_blas(ld.proj_blas, ld.proj, ld.proj_ws);
}

void Session::bind_blas(const BlasHandle& blas, const Stream& stream,
                        const DeviceBuffer<unsigned char>& workspace) {
  const cublasMath_t math = tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
  // Zeroed once, so that compute-sanitizer's initcheck sees no uninitialised reads.
  zero(workspace.get(), workspace_bytes_);
  // cublasSetStream resets the workspace: set the stream first.
  check(cublasSetStream(blas.get(), stream.get()), "cublasSetStream");
  check(cublasSetWorkspace(blas.get(), workspace.get(), workspace_bytes_), "cublasSetWorkspace");
  check(cublasSetMathMode(blas.get(), math), "cublasSetMathMode");
  check(cublasSetPointerMode(blas.get(), CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
  check(cublasSetAtomicsMode(blas.get(), CUBLAS_ATOMICS_NOT_ALLOWED), "cublasSetAtomicsMode");
}

void Session::zero(void* p, std::size_t bytes) {
  check(cudaMemsetAsync(p, 0, bytes, capture_.get()), "cudaMemsetAsync");
}

}  // namespace slstm_cuda
