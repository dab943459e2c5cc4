// cudnn_anchor — cuDNN 9 running an LSTM stack forward (v8 RNN API, CUDNN_FWD_MODE_INFERENCE),
// timed with CUDA events: the anchor our GPU backend is measured against.
//
//   cudnn_anchor [--grid FILE] [--only NAME,..] [--precisions P,..] [--algos A,..]
//                [--target-ms X] [--min-reps N] [--max-reps N] [--warmup N]
//                [--budget-s S] [--csv FILE] [--device N]
//   cudnn_anchor --hidden 100:200:300 --input 128 --batch 10 --time 100 [...]   one shape
//   cudnn_anchor --check        cuDNN vs libstacklstm's CPU reference on the same weights
//                               (cases [5,3] D4 B3 T6 chained, [5,5] and [64,64] one
//                               descriptor, [100,200,300]; every precision and algorithm)
//   cudnn_anchor --check --quick  only [5,3], fp32 strict, STANDARD: a probe that cuDNN works
//   cudnn_anchor --version      header/library versions (needs no device)
//   cudnn_anchor --dry-run      no GPU: lists the grid's configurations and runs --check's
//                               cases against a host emulation of cuDNN's LSTM equations
//
// Weights: a libstacklstm model (slstm_model_create_random) exported in SLSTM_FORMAT_CANONICAL
// (W_x [4H,I], W_h [4H,H], b [4H], gates i,f,g,o = cuDNN's linear-layer order) goes into
// cuDNN's linear layers 0-3 (W_x row blocks) and 4-7 (W_h row blocks); b goes into the W-side
// biases with forget_bias added to the f block (linear layer 1) once; the R-side biases are 0.
// Equal hidden sizes run as one multi-layer descriptor, unequal ones as one descriptor per
// layer, chained.  Data: CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED ([T, B, ·], every sequence of
// full length), zero initial state when timing, final h and c always written.
//
// Exit codes: 0 ran (or no CUDA device: the first line says so); 1 --check failed;
// 2 usage error or a failure outside a single configuration.

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>

#include "anchors_common.hpp"
#include "stacklstm/stacklstm.h"

#ifndef SLSTM_ANCHORS_GRID_FILE
#define SLSTM_ANCHORS_GRID_FILE "bench/anchors/grid.csv"
#endif

namespace {

using namespace anchors;

// ---- cuDNN errors -------------------------------------------------------------------------
struct CudnnError : std::runtime_error {
  cudnnStatus_t status;
  CudnnError(cudnnStatus_t s, const std::string& what) : std::runtime_error(what), status(s) {}
};

void cudnn_check(cudnnStatus_t s, const char* call) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  std::string name(call);
  name = name.substr(0, name.find('('));
  std::string msg = name + ": " + cudnnGetErrorString(s);
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  if (detail[0]) msg += " [" + std::string(detail) + "]";
  throw CudnnError(s, msg);
}
#define CUDNN_CALL(call) cudnn_check((call), #call)

// cuDNN 9 groups its status codes by thousands: 2xxx bad parameter, 3xxx not supported.
bool rejects_shape(cudnnStatus_t s) {
  int group = static_cast<int>(s) / 1000;
  return group == 2 || group == 3;
}

void slstm_check(slstm_status s, const char* what) {
  if (s != SLSTM_OK) {
    throw std::runtime_error(std::string(what) + ": " + slstm_status_string(s) + ": " +
                             slstm_last_error());
  }
}

// ---- precisions and algorithms ------------------------------------------------------------
struct Precision {
  const char* name;
  cudnnDataType_t data;
  cudnnDataType_t math;
  cudnnMathType_t math_type;
  size_t elem;       // bytes per element of data, weights and states
  double tolerance;  // --check: relative error allowed against the CPU reference
};

// fp32: strict FP32 (FMA only).  tf32: FP32 data, tensor cores allowed (CUDNN_DEFAULT_MATH,
// what PyTorch picks when allow_tf32 is on).  fp16: FP16 data and weights, FP32 math.
// fp32_conv (not in the default list): FP32 data, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, which
// lets cuDNN down-convert to FP16 for tensor cores.
const Precision kPrecisions[] = {
    {"fp32", CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_FMA_MATH, 4, 1e-5},
    {"tf32", CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_DEFAULT_MATH, 4, 1e-3},
    {"fp16", CUDNN_DATA_HALF, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH, 2, 1e-2},
    {"fp32_conv", CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, 4,
     1e-2},
};

struct Algorithm {
  const char* name;
  cudnnRNNAlgo_t algo;
};
const Algorithm kAlgorithms[] = {
    {"standard", CUDNN_RNN_ALGO_STANDARD},
    {"persist_static", CUDNN_RNN_ALGO_PERSIST_STATIC},
    {"persist_static_small_h", CUDNN_RNN_ALGO_PERSIST_STATIC_SMALL_H},
    {"persist_dynamic", CUDNN_RNN_ALGO_PERSIST_DYNAMIC},
};

template <class T, size_t N>
const T* find_by_name(const T (&table)[N], const std::string& name) {
  for (const auto& e : table)
    if (name == e.name) return &e;
  return nullptr;
}

// ---- host data ----------------------------------------------------------------------------
// A deterministic uniform [-scale, scale] generator (splitmix64), the same on every machine.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  float next(float scale) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    double u = static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
    return static_cast<float>((2.0 * u - 1.0) * scale);
  }
};

std::vector<float> random_vector(size_t n, uint64_t seed, float scale) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = r.next(scale);
  return v;
}

// Writes n floats at byte offset `off` of a host image of device memory, in the precision's
// element type.
void put(std::vector<unsigned char>& img, size_t off, const float* src, size_t n,
         const Precision& p) {
  if (off + n * p.elem > img.size()) throw std::runtime_error("internal: put out of range");
  if (p.elem == 4) {
    std::memcpy(img.data() + off, src, n * 4);
  } else {
    for (size_t i = 0; i < n; ++i) {
      __half h = __float2half_rn(src[i]);
      std::memcpy(img.data() + off + 2 * i, &h, 2);
    }
  }
}

std::vector<unsigned char> to_device_type(const std::vector<float>& v, const Precision& p) {
  std::vector<unsigned char> img(v.size() * p.elem);
  put(img, 0, v.data(), v.size(), p);
  return img;
}

std::vector<float> from_device_type(const std::vector<unsigned char>& img, const Precision& p) {
  size_t n = img.size() / p.elem;
  std::vector<float> v(n);
  if (p.elem == 4) {
    std::memcpy(v.data(), img.data(), n * 4);
  } else {
    for (size_t i = 0; i < n; ++i) {
      __half h;
      std::memcpy(&h, img.data() + 2 * i, 2);
      v[i] = __half2float(h);
    }
  }
  return v;
}

// ---- device memory ------------------------------------------------------------------------
class DevBuf {
 public:
  DevBuf() = default;
  explicit DevBuf(size_t bytes) : n_(bytes) {
    if (bytes) ANCHORS_CUDA(cudaMalloc(&p_, bytes));
  }
  ~DevBuf() {
    if (p_) cudaFree(p_);
  }
  DevBuf(DevBuf&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  DevBuf& operator=(DevBuf&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<unsigned char>& img) {
    if (img.size() != n_) throw std::runtime_error("internal: upload size");
    ANCHORS_CUDA(cudaMemcpy(p_, img.data(), n_, cudaMemcpyHostToDevice));
  }
  std::vector<unsigned char> download() const {
    std::vector<unsigned char> img(n_);
    ANCHORS_CUDA(cudaMemcpy(img.data(), p_, n_, cudaMemcpyDeviceToHost));
    return img;
  }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// ---- weights from libstacklstm ------------------------------------------------------------
struct HostModel {
  std::vector<int> hidden;
  int input = 0;
  float forget_bias = 0;
  std::vector<std::vector<float>> wx, wh, b;  // canonical, per layer
  slstm_model* model = nullptr;
  HostModel() = default;
  HostModel(const HostModel&) = delete;
  HostModel& operator=(const HostModel&) = delete;
  ~HostModel() { slstm_model_destroy(model); }
};

std::unique_ptr<HostModel> make_model(const std::vector<int>& hidden, int input, uint64_t seed) {
  auto m = std::make_unique<HostModel>();
  m->hidden = hidden;
  m->input = input;
  std::vector<int64_t> h64(hidden.begin(), hidden.end());
  slstm_model_config cfg;
  slstm_model_config_init(&cfg);
  cfg.input_size = input;
  cfg.num_layers = static_cast<int32_t>(hidden.size());
  cfg.hidden_sizes = h64.data();
  slstm_check(slstm_model_create_random(&cfg, seed, 0.0f, &m->model), "slstm_model_create_random");
  slstm_check(slstm_model_forget_bias(m->model, &m->forget_bias), "slstm_model_forget_bias");

  const size_t L = hidden.size();
  m->wx.resize(L), m->wh.resize(L), m->b.resize(L);
  std::vector<slstm_tensor_out> outs(3 * L);
  for (size_t l = 0; l < L; ++l) {
    int64_t H = hidden[l], I = l == 0 ? input : hidden[l - 1];
    m->wx[l].resize(static_cast<size_t>(4 * H * I));
    m->wh[l].resize(static_cast<size_t>(4 * H * H));
    m->b[l].resize(static_cast<size_t>(4 * H));
    outs[3 * l + 0] = {m->wx[l].data(), 2, {4 * H, I, 0, 0}};
    outs[3 * l + 1] = {m->wh[l].data(), 2, {4 * H, H, 0, 0}};
    outs[3 * l + 2] = {m->b[l].data(), 1, {4 * H, 0, 0, 0}};
  }
  slstm_check(slstm_model_export(m->model, SLSTM_FORMAT_CANONICAL, outs.data(), outs.size()),
              "slstm_model_export");
  return m;
}

// What goes into cuDNN linear layer `lin` (0-3: W for gates i, f, g, o; 4-7: R for the same)
// of layer l: a [H, cols] row-major block of W_x or W_h, and its bias.  The W-side biases carry
// the whole canonical bias with forget_bias folded into the f block once; the R-side biases
// are zero.
struct LinearLayer {
  const float* w = nullptr;
  size_t rows = 0, cols = 0;
  std::vector<float> bias;
};

LinearLayer linear_layer(const HostModel& m, size_t l, int lin) {
  const size_t H = static_cast<size_t>(m.hidden[l]);
  const size_t I = static_cast<size_t>(l == 0 ? m.input : m.hidden[l - 1]);
  const size_t q = static_cast<size_t>(lin % 4);  // gate i, f, g, o
  LinearLayer ll;
  ll.rows = H;
  ll.cols = lin < 4 ? I : H;
  ll.w = lin < 4 ? m.wx[l].data() + q * H * I : m.wh[l].data() + q * H * H;
  ll.bias.assign(H, 0.0f);
  if (lin < 4) {
    std::copy_n(m.b[l].begin() + static_cast<std::ptrdiff_t>(q * H), H, ll.bias.begin());
    if (q == 1)
      for (auto& v : ll.bias) v += m.forget_bias;
  }
  return ll;
}

// cuDNN's documented LSTM equations, in double on the host, over the very linear layers
// handed to cuDNN: i,f,o = sigma(W x + R h + bW + bR), g = tanh(...), c = f*c + i*g,
// h = o*tanh(c).  Time-major input; packed (c, h) state like libstacklstm.  Lets --dry-run
// check the weight mapping on a machine without a GPU.
void emulate_cudnn(const HostModel& m, int B, int T, const std::vector<float>& x,
                   const std::vector<float>& init, std::vector<float>& out,
                   std::vector<float>& state) {
  state = init;
  std::vector<double> in(x.begin(), x.end());
  size_t off = 0;
  for (size_t l = 0; l < m.hidden.size(); ++l) {
    const size_t H = static_cast<size_t>(m.hidden[l]);
    const size_t I = static_cast<size_t>(l == 0 ? m.input : m.hidden[l - 1]);
    std::vector<LinearLayer> ll;
    for (int lin = 0; lin < 8; ++lin) ll.push_back(linear_layer(m, l, lin));
    std::vector<double> c(state.begin() + static_cast<std::ptrdiff_t>(off),
                          state.begin() + static_cast<std::ptrdiff_t>(off + B * H));
    std::vector<double> h(state.begin() + static_cast<std::ptrdiff_t>(off + B * H),
                          state.begin() + static_cast<std::ptrdiff_t>(off + 2 * B * H));
    std::vector<double> y(static_cast<size_t>(T) * B * H);
    auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
    for (int t = 0; t < T; ++t) {
      std::vector<double> hn(B * H), cn(B * H);
      for (size_t b = 0; b < static_cast<size_t>(B); ++b) {
        const double* xt = in.data() + (static_cast<size_t>(t) * B + b) * I;
        for (size_t u = 0; u < H; ++u) {
          double z[4];
          for (int q = 0; q < 4; ++q) {
            const LinearLayer& W = ll[static_cast<size_t>(q)];
            const LinearLayer& R = ll[static_cast<size_t>(q + 4)];
            double acc = W.bias[u] + R.bias[u];
            for (size_t k = 0; k < I; ++k) acc += W.w[u * I + k] * xt[k];
            for (size_t k = 0; k < H; ++k) acc += R.w[u * H + k] * h[b * H + k];
            z[q] = acc;
          }
          double cc = sig(z[1]) * c[b * H + u] + sig(z[0]) * std::tanh(z[2]);
          cn[b * H + u] = cc;
          hn[b * H + u] = sig(z[3]) * std::tanh(cc);
        }
      }
      c = cn, h = hn;
      std::copy(h.begin(), h.end(), y.begin() + static_cast<std::ptrdiff_t>(t * B * H));
    }
    for (size_t i = 0; i < B * H; ++i) {
      state[off + i] = static_cast<float>(c[i]);
      state[off + B * H + i] = static_cast<float>(h[i]);
    }
    off += 2 * B * H;
    in = y;
  }
  out.assign(in.begin(), in.end());
}

// ---- one cuDNN stack ----------------------------------------------------------------------
struct Run {  // one RNN descriptor: layers [first, first + layers)
  int first = 0, layers = 0, in = 0, hid = 0;
  cudnnRNNDescriptor_t desc = nullptr;
  cudnnRNNDataDescriptor_t xd = nullptr, yd = nullptr;
  cudnnTensorDescriptor_t hd = nullptr;
  DevBuf w, y, hx, cx, hy, cy;
  Run() = default;
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  ~Run() {
    if (hd) cudnnDestroyTensorDescriptor(hd);
    if (yd) cudnnDestroyRNNDataDescriptor(yd);
    if (xd) cudnnDestroyRNNDataDescriptor(xd);
    if (desc) cudnnDestroyRNNDescriptor(desc);
  }
};

class TensorDesc {
 public:
  TensorDesc() { CUDNN_CALL(cudnnCreateTensorDescriptor(&d_)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  cudnnTensorDescriptor_t get() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_ = nullptr;
};

size_t elements_of(cudnnTensorDescriptor_t d) {
  cudnnDataType_t dt;
  int nb = 0, dims[8] = {0}, strides[8] = {0};
  CUDNN_CALL(cudnnGetTensorNdDescriptor(d, 8, &dt, &nb, dims, strides));
  size_t n = 1;
  for (int i = 0; i < nb; ++i) n *= static_cast<size_t>(dims[i]);
  return n;
}

class CudnnStack {
 public:
  CudnnStack(cudnnHandle_t handle, cudnnDropoutDescriptor_t dropout, const Shape& s,
             const Precision& p, cudnnRNNAlgo_t algo, const HostModel& m)
      : handle_(handle), shape_(s), prec_(p) {
    const int B = s.batch, T = s.time;
    std::vector<int> seq(static_cast<size_t>(B), T);
    seq_ = DevBuf(sizeof(int32_t) * static_cast<size_t>(B));
    {
      std::vector<unsigned char> img(seq_.size());
      std::memcpy(img.data(), seq.data(), img.size());
      seq_.upload(img);
    }
    // Equal sizes: one descriptor of L layers; unequal: one per layer.
    std::vector<std::pair<int, int>> groups;  // (first layer, count)
    if (s.equal_sizes()) groups.push_back({0, s.layers()});
    else
      for (int l = 0; l < s.layers(); ++l) groups.push_back({l, 1});

    TensorDesc mdesc, bdesc;
    size_t work = 0;
    for (auto [first, count] : groups) {
      runs_.push_back(std::make_unique<Run>());
      Run& r = *runs_.back();
      r.first = first, r.layers = count, r.in = s.layer_input(first);
      r.hid = s.hidden[static_cast<size_t>(first)];
      CUDNN_CALL(cudnnCreateRNNDescriptor(&r.desc));
      CUDNN_CALL(cudnnSetRNNDescriptor_v8(r.desc, algo, CUDNN_LSTM, CUDNN_RNN_DOUBLE_BIAS,
                                          CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, p.data,
                                          p.math, p.math_type, r.in, r.hid, r.hid, r.layers,
                                          dropout, CUDNN_RNN_PADDED_IO_DISABLED));
      if (algo == CUDNN_RNN_ALGO_PERSIST_DYNAMIC) {
        CUDNN_CALL(cudnnBuildRNNDynamic(handle, r.desc, B));
      }
      CUDNN_CALL(cudnnCreateRNNDataDescriptor(&r.xd));
      CUDNN_CALL(cudnnSetRNNDataDescriptor(r.xd, p.data, CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED,
                                           T, B, r.in, seq.data(), nullptr));
      CUDNN_CALL(cudnnCreateRNNDataDescriptor(&r.yd));
      CUDNN_CALL(cudnnSetRNNDataDescriptor(r.yd, p.data, CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_PACKED,
                                           T, B, r.hid, seq.data(), nullptr));
      CUDNN_CALL(cudnnCreateTensorDescriptor(&r.hd));
      int dims[3] = {r.layers, B, r.hid}, strides[3] = {B * r.hid, r.hid, 1};
      CUDNN_CALL(cudnnSetTensorNdDescriptor(r.hd, p.data, 3, dims, strides));

      size_t wbytes = 0;
      CUDNN_CALL(cudnnGetRNNWeightSpaceSize(handle, r.desc, &wbytes));
      r.w = DevBuf(wbytes);
      std::vector<unsigned char> img(wbytes, 0);  // R-side biases stay 0
      const auto* base = static_cast<const unsigned char*>(r.w.get());
      for (int k = 0; k < r.layers; ++k) {
        const size_t l = static_cast<size_t>(r.first + k);
        for (int lin = 0; lin < 8; ++lin) {
          void* maddr = nullptr;
          void* baddr = nullptr;
          CUDNN_CALL(cudnnGetRNNWeightParams(handle, r.desc, k, wbytes, r.w.get(), lin,
                                             mdesc.get(), &maddr, bdesc.get(), &baddr));
          if (!maddr || !baddr) throw std::runtime_error("cuDNN returned no weight address");
          LinearLayer ll = linear_layer(m, l, lin);
          if (elements_of(mdesc.get()) != ll.rows * ll.cols ||
              elements_of(bdesc.get()) != ll.rows) {
            throw std::runtime_error("cuDNN linear layer " + std::to_string(lin) +
                                     " has an unexpected size");
          }
          put(img, static_cast<size_t>(static_cast<const unsigned char*>(maddr) - base), ll.w,
              ll.rows * ll.cols, p);
          put(img, static_cast<size_t>(static_cast<const unsigned char*>(baddr) - base),
              ll.bias.data(), ll.rows, p);
        }
      }
      r.w.upload(img);

      size_t rwork = 0, reserve = 0;
      CUDNN_CALL(cudnnGetRNNTempSpaceSizes(handle, r.desc, CUDNN_FWD_MODE_INFERENCE, r.xd,
                                           &rwork, &reserve));
      work = std::max(work, rwork);
      const size_t state_bytes = static_cast<size_t>(r.layers) * B * r.hid * p.elem;
      r.y = DevBuf(static_cast<size_t>(T) * B * r.hid * p.elem);
      r.hy = DevBuf(state_bytes);
      r.cy = DevBuf(state_bytes);
    }
    work_ = DevBuf(work);
    ANCHORS_CUDA(cudaDeviceSynchronize());  // every upload has landed before the first use
  }

  size_t input_bytes() const {
    return static_cast<size_t>(shape_.time) * shape_.batch * shape_.input * prec_.elem;
  }

  // Sets the initial state from a libstacklstm packed state (c_0, h_0, c_1, h_1, ...).
  void set_initial_state(const std::vector<float>& packed) {
    const size_t B = static_cast<size_t>(shape_.batch);
    size_t off = 0;
    for (auto& rp : runs_) {
      Run& r = *rp;
      const size_t H = static_cast<size_t>(r.hid), n = B * H;
      std::vector<float> h(r.layers * n), c(r.layers * n);
      for (int k = 0; k < r.layers; ++k) {
        std::copy_n(packed.begin() + static_cast<std::ptrdiff_t>(off), n, c.begin() + k * n);
        std::copy_n(packed.begin() + static_cast<std::ptrdiff_t>(off + n), n, h.begin() + k * n);
        off += 2 * n;
      }
      r.hx = DevBuf(h.size() * prec_.elem);
      r.cx = DevBuf(c.size() * prec_.elem);
      r.hx.upload(to_device_type(h, prec_));
      r.cx.upload(to_device_type(c, prec_));
    }
  }

  void forward(const void* x) {
    const void* in = x;
    for (auto& rp : runs_) {
      Run& r = *rp;
      CUDNN_CALL(cudnnRNNForward(handle_, r.desc, CUDNN_FWD_MODE_INFERENCE,
                                 static_cast<const int32_t*>(seq_.get()), r.xd, in, r.yd,
                                 r.y.get(), r.hd, r.hx.get(), r.hy.get(), r.hd, r.cx.get(),
                                 r.cy.get(), r.w.size(), r.w.get(), work_.size(), work_.get(),
                                 0, nullptr));
      in = r.y.get();
    }
  }

  std::vector<float> output() const { return from_device_type(runs_.back()->y.download(), prec_); }

  // Final state in libstacklstm's packed order.
  std::vector<float> final_state() const {
    std::vector<float> packed;
    const size_t B = static_cast<size_t>(shape_.batch);
    for (const auto& rp : runs_) {
      const Run& r = *rp;
      auto h = from_device_type(r.hy.download(), prec_);
      auto c = from_device_type(r.cy.download(), prec_);
      const size_t n = B * static_cast<size_t>(r.hid);
      for (int k = 0; k < r.layers; ++k) {
        packed.insert(packed.end(), c.begin() + k * n, c.begin() + (k + 1) * n);
        packed.insert(packed.end(), h.begin() + k * n, h.begin() + (k + 1) * n);
      }
    }
    return packed;
  }

  size_t descriptors() const { return runs_.size(); }

 private:
  cudnnHandle_t handle_;
  Shape shape_;
  Precision prec_;
  std::vector<std::unique_ptr<Run>> runs_;
  DevBuf seq_, work_;
};

// ---- options ------------------------------------------------------------------------------
struct Options {
  bool check = false, version = false, grid_given = false, quick = false, dry_run = false;
  std::string grid = SLSTM_ANCHORS_GRID_FILE;
  std::string csv = "-";
  std::vector<std::string> only;
  std::vector<const Precision*> precisions;
  std::vector<const Algorithm*> algorithms;
  double target_ms = 100;  // timed time per configuration
  int min_reps = 5, max_reps = 200, warmup = 3, device = 0;
  double budget_s = 0;  // 0: none
  Shape custom;
  bool has_custom = false;
};

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr,
               "cudnn_anchor: %s\n"
               "usage: cudnn_anchor [--check [--quick] | --version | --dry-run] [--grid FILE]\n"
               "         [--only NAME,..]\n"
               "         [--hidden H1:H2:.. --input D --batch B --time T]\n"
               "         [--precisions fp32,tf32,fp16,fp32_conv]\n"
               "         [--algos standard,persist_static,persist_static_small_h,"
               "persist_dynamic]\n"
               "         [--target-ms X] [--min-reps N] [--max-reps N] [--warmup N]\n"
               "         [--budget-s S] [--csv FILE|-] [--device N]\n",
               msg.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  std::string precs = "fp32,tf32,fp16";
  std::string algos = "standard,persist_static,persist_static_small_h,persist_dynamic";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value after " + a);
      return argv[++i];
    };
    try {
      if (a == "--check") o.check = true;
      else if (a == "--version") o.version = true;
      else if (a == "--quick") o.quick = true;
      else if (a == "--dry-run") o.dry_run = true;
      else if (a == "--grid") o.grid = val(), o.grid_given = true;
      else if (a == "--csv") o.csv = val();
      else if (a == "--only") o.only = split(val(), ',');
      else if (a == "--precisions") precs = val();
      else if (a == "--algos") algos = val();
      else if (a == "--target-ms") o.target_ms = std::stod(val());
      else if (a == "--min-reps") o.min_reps = to_int(val(), "--min-reps");
      else if (a == "--max-reps") o.max_reps = to_int(val(), "--max-reps");
      else if (a == "--warmup") o.warmup = to_int(val(), "--warmup");
      else if (a == "--budget-s") o.budget_s = std::stod(val());
      else if (a == "--device") o.device = to_int(val(), "--device");
      else if (a == "--hidden") o.custom.hidden = parse_sizes(val()), o.has_custom = true;
      else if (a == "--input") o.custom.input = to_int(val(), "--input");
      else if (a == "--batch") o.custom.batch = to_int(val(), "--batch");
      else if (a == "--time") o.custom.time = to_int(val(), "--time");
      else if (a == "-h" || a == "--help") usage("help");
      else usage("unknown argument " + a);
    } catch (const std::exception& e) {
      usage(e.what());
    }
  }
  for (const auto& n : split(precs, ',')) {
    const Precision* p = find_by_name(kPrecisions, trim(n));
    if (!p) usage("unknown precision " + n);
    o.precisions.push_back(p);
  }
  for (const auto& n : split(algos, ',')) {
    const Algorithm* a = find_by_name(kAlgorithms, trim(n));
    if (!a) usage("unknown algorithm " + n);
    o.algorithms.push_back(a);
  }
  if (o.min_reps < 1 || o.max_reps < o.min_reps) usage("need 1 <= --min-reps <= --max-reps");
  if (o.has_custom) {
    Shape& c = o.custom;
    if (c.input < 1 || c.batch < 1 || c.time < 1) {
      usage("--hidden needs --input, --batch and --time >= 1");
    }
    c.name = "custom_L" + std::to_string(c.layers()) + "_H" + c.hidden_str() + "_D" +
             std::to_string(c.input) + "_B" + std::to_string(c.batch) + "_T" +
             std::to_string(c.time);
  }
  return o;
}

std::string versions() {
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);  // 0 when no driver
  return "cuDNN header " + std::to_string(CUDNN_VERSION) + ", library " +
         std::to_string(cudnnGetVersion()) + " (built for cudart " +
         std::to_string(cudnnGetCudartVersion()) + "); CUDA runtime " + std::to_string(rt) +
         ", driver " + std::to_string(drv) + "; libstacklstm " + slstm_version_string();
}

struct Context {
  cudnnHandle_t handle = nullptr;
  cudnnDropoutDescriptor_t dropout = nullptr;
  cudaStream_t stream = nullptr;
  Context() {
    CUDNN_CALL(cudnnCreate(&handle));
    // A blocking stream: it orders after the synchronous uploads on the legacy stream.
    ANCHORS_CUDA(cudaStreamCreate(&stream));
    CUDNN_CALL(cudnnSetStream(handle, stream));
    CUDNN_CALL(cudnnCreateDropoutDescriptor(&dropout));
    // No dropout: no RNG states are needed (the same call PyTorch makes for inference).
    CUDNN_CALL(cudnnSetDropoutDescriptor(dropout, handle, 0.0f, nullptr, 0, 0));
  }
  ~Context() {
    if (dropout) cudnnDestroyDropoutDescriptor(dropout);
    if (handle) cudnnDestroy(handle);
    if (stream) cudaStreamDestroy(stream);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
};

// ---- --check ------------------------------------------------------------------------------
std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

double rel_error(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double d = static_cast<double>(got[i]) - ref[i];
    if (!std::isfinite(got[i])) return INFINITY;
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// ctx == nullptr (--dry-run): no GPU; the cuDNN equations are emulated on the host instead,
// over the same linear layers, which checks the weight mapping and the oracle.
int run_check(const Options& o, Context* ctx) {
  std::vector<Shape> cases;
  auto add = [&](const char* name, std::vector<int> h, int d, int b, int t) {
    Shape s;
    s.name = name, s.hidden = std::move(h), s.input = d, s.batch = b, s.time = t;
    cases.push_back(s);
  };
  add("unequal_5_3", {5, 3}, 4, 3, 6);  // chained descriptors
  if (!o.quick) {
    add("equal_2x5", {5, 5}, 4, 3, 6);                     // one multi-layer descriptor
    add("equal_2x64", {64, 64}, 32, 5, 9);                 // bigger GEMM tiles
    add("seed_100_200_300", {100, 200, 300}, 128, 10, 7);  // the seed architecture
  }

  bool all_ok = true, strict_seen = false;
  std::printf("%-18s %-5s %-22s %-12s %-9s %s\n", "case", "prec", "algo", "rel_err", "tol",
              "result");
  uint64_t seed = 1234;
  for (const Shape& s : cases) {
    auto m = make_model(s.hidden, s.input, seed++);
    const size_t B = static_cast<size_t>(s.batch), T = static_cast<size_t>(s.time);
    const size_t Hl = static_cast<size_t>(s.hidden.back());
    auto x = random_vector(T * B * static_cast<size_t>(s.input), seed++, 1.0f);
    size_t state_n = 0;
    slstm_check(slstm_model_state_count(m->model, s.batch, &state_n), "slstm_model_state_count");
    auto init = random_vector(state_n, seed++, 0.5f);

    // The oracle: libstacklstm's CPU reference, time-major, same weights/input/state.
    slstm_session_options so;
    slstm_session_options_init(&so);
    so.backend = SLSTM_BACKEND_CPU;
    so.cpu_path = SLSTM_CPU_PATH_REFERENCE;
    so.max_batch = s.batch, so.max_time = s.time, so.num_threads = 1;
    slstm_session* sess = nullptr;
    slstm_check(slstm_session_create(m->model, &so, &sess), "slstm_session_create");
    std::vector<float> ref_out(T * B * Hl), ref_state(state_n);
    slstm_forward_args fa;
    slstm_forward_args_init(&fa);
    fa.layout = SLSTM_TIME_MAJOR;
    fa.batch = s.batch, fa.time = s.time;
    fa.input = x.data(), fa.input_count = x.size();
    fa.initial_state = init.data(), fa.initial_state_count = init.size();
    fa.output = ref_out.data(), fa.output_count = ref_out.size();
    fa.final_state = ref_state.data(), fa.final_state_count = ref_state.size();
    slstm_status st = slstm_session_forward(sess, &fa);
    slstm_session_destroy(sess);
    slstm_check(st, "slstm_session_forward");

    if (!ctx) {
      std::vector<float> emu_out, emu_state;
      emulate_cudnn(*m, s.batch, s.time, x, init, emu_out, emu_state);
      double err = std::max(rel_error(emu_out, ref_out), rel_error(emu_state, ref_state));
      bool ok = err <= 1e-6;
      if (!ok) all_ok = false;
      strict_seen = true;
      std::printf("%-18s %-5s %-22s %-12s %-9s %s\n", s.name.c_str(), "fp64", "host-emulation",
                  sci(err).c_str(), "1e-06", ok ? "PASS" : "FAIL");
      continue;
    }

    for (const Precision* p : o.precisions) {
      for (const Algorithm* a : o.algorithms) {
        if (o.quick && (std::strcmp(p->name, "fp32") != 0 || a->algo != CUDNN_RNN_ALGO_STANDARD)) {
          continue;  // --quick: the strict standard path only (a probe that cuDNN works)
        }
        std::string result;
        double err = -1;
        try {
          CudnnStack stack(ctx->handle, ctx->dropout, s, *p, a->algo, *m);
          stack.set_initial_state(init);
          DevBuf dx(stack.input_bytes());
          dx.upload(to_device_type(x, *p));
          stack.forward(dx.get());
          ANCHORS_CUDA(cudaStreamSynchronize(ctx->stream));
          // Compare output, final h and final c (each layer), taking the worst.
          auto out = stack.output();
          auto fin = stack.final_state();
          err = std::max(rel_error(out, ref_out), rel_error(fin, ref_state));
          bool ok = err <= p->tolerance;
          // FP32 strict is the gate; TF32 and FP16 rows are reported against their
          // tolerances (DESIGN §7) but do not decide the verdict.
          const bool gating = std::strcmp(p->name, "fp32") == 0;
          if (!ok && gating) all_ok = false;
          if (gating && a->algo == CUDNN_RNN_ALGO_STANDARD) strict_seen = true;
          result = gating ? (ok ? "PASS" : "FAIL") : (ok ? "within tol" : "OVER tol (not gating)");
        } catch (const CudnnError& e) {
          if (rejects_shape(e.status)) {
            result = std::string("unsupported: ") + e.what();
          } else {
            result = std::string("ERROR: ") + e.what();
            all_ok = false;
          }
          if (std::strcmp(p->name, "fp32") == 0 && a->algo == CUDNN_RNN_ALGO_STANDARD) {
            all_ok = false;  // the strict standard path must run
          }
        } catch (const std::exception& e) {
          result = std::string("ERROR: ") + e.what();
          all_ok = false;
        }
        std::printf("%-18s %-5s %-22s %-12s %-9s %s\n", s.name.c_str(), p->name, a->name,
                    err < 0 ? "-" : sci(err).c_str(), sci(p->tolerance).c_str(),
                    result.c_str());
        std::fflush(stdout);
      }
    }
  }
  bool pass = all_ok && strict_seen;
  if (!ctx) {
    std::printf("DRY-RUN CHECK %s: cuDNN's LSTM equations emulated on the host over the linear "
                "layers cuDNN would get vs libstacklstm CPU reference (tol 1e-6); no GPU used\n",
                pass ? "PASS" : "FAIL");
    return pass ? 0 : 1;
  }
  std::printf("CHECK %s: cuDNN %s vs libstacklstm CPU reference (gate: fp32 strict, every "
              "algorithm cuDNN accepts, rel. error <= 1e-5 on output, final h and c; tf32 "
              "1e-3 and fp16 1e-2 reported only)\n",
              pass ? "PASS" : "FAIL", std::to_string(cudnnGetVersion()).c_str());
  return pass ? 0 : 1;
}

// ---- timing -------------------------------------------------------------------------------
const std::vector<std::string> kHeader = {
    "tool", "shape", "layers", "hidden", "input", "batch", "time", "precision", "algo",
    "status", "median_us", "p10_us", "p90_us", "min_us", "reps", "us_per_step", "gflops",
    "setup_ms", "note"};

std::vector<std::string> row_for(const Shape& s, const Precision& p, const Algorithm& a,
                                 const std::string& status, const Stats* st, double setup_ms,
                                 const std::string& note) {
  std::vector<std::string> r = {"cudnn", s.name, std::to_string(s.layers()), s.hidden_str(),
                                std::to_string(s.input), std::to_string(s.batch),
                                std::to_string(s.time), p.name, a.name, status};
  if (st) {
    r.insert(r.end(), {fmt(st->median), fmt(st->p10), fmt(st->p90), fmt(st->min),
                       std::to_string(st->n), fmt(st->median / s.time),
                       fmt(s.flops() / st->median / 1e3, 1)});
  } else {
    r.insert(r.end(), {"", "", "", "", "", "", ""});
  }
  r.push_back(setup_ms >= 0 ? fmt(setup_ms, 1) : "");
  r.push_back(note);
  return r;
}

std::vector<std::string> time_one(const Options& o, Context& ctx, const Shape& s,
                                  const Precision& p, const Algorithm& a, const HostModel& m) {
  auto t0 = std::chrono::steady_clock::now();
  try {
    CudnnStack stack(ctx.handle, ctx.dropout, s, p, a.algo, m);
    // Rotate among a few inputs so repeated runs do not read one cached buffer.
    const int kInputs = 4;
    std::vector<DevBuf> xs;
    auto host = random_vector(stack.input_bytes() / p.elem, 99, 1.0f);
    for (int i = 0; i < kInputs; ++i) {
      xs.emplace_back(stack.input_bytes());
      std::rotate(host.begin(), host.begin() + static_cast<std::ptrdiff_t>(host.size() / 7),
                  host.end());
      xs.back().upload(to_device_type(host, p));
    }
    for (int i = 0; i < std::max(1, o.warmup); ++i) stack.forward(xs[static_cast<size_t>(i % kInputs)].get());
    ANCHORS_CUDA(cudaStreamSynchronize(ctx.stream));
    double setup_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    cudaEvent_t e0, e1;
    ANCHORS_CUDA(cudaEventCreate(&e0));
    ANCHORS_CUDA(cudaEventCreate(&e1));
    auto time_once = [&](int i) {
      // One forward as a caller sees it: the stream idle before, every launch inside.
      ANCHORS_CUDA(cudaStreamSynchronize(ctx.stream));
      ANCHORS_CUDA(cudaEventRecord(e0, ctx.stream));
      stack.forward(xs[static_cast<size_t>(i % kInputs)].get());
      ANCHORS_CUDA(cudaEventRecord(e1, ctx.stream));
      ANCHORS_CUDA(cudaEventSynchronize(e1));
      float ms = 0;
      ANCHORS_CUDA(cudaEventElapsedTime(&ms, e0, e1));
      return static_cast<double>(ms);
    };
    std::vector<double> us;
    try {
      double est = time_once(0);
      int reps = static_cast<int>(std::ceil(o.target_ms / std::max(est, 1e-3)));
      reps = std::min(std::max(reps, o.min_reps), o.max_reps);
      for (int i = 0; i < reps; ++i) us.push_back(1e3 * time_once(i + 1));
    } catch (...) {
      cudaEventDestroy(e0);
      cudaEventDestroy(e1);
      throw;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    Stats st = stats_of(us);
    std::string note = std::to_string(stack.descriptors()) + " descriptor(s)";
    return row_for(s, p, a, "ok", &st, setup_ms, note);
  } catch (const CudnnError& e) {
    cudaGetLastError();
    return row_for(s, p, a, rejects_shape(e.status) ? "unsupported" : "error", nullptr, -1,
                   e.what());
  } catch (const std::exception& e) {
    cudaGetLastError();
    return row_for(s, p, a, "error", nullptr, -1, e.what());
  }
}

std::vector<Shape> select_grid(const Options& o) {
  std::vector<Shape> grid;
  if (o.has_custom) {
    grid.push_back(o.custom);
  } else {
    std::string path = o.grid;
    if (!o.grid_given && !std::ifstream(path)) path = "bench/anchors/grid.csv";  // carried build
    grid = load_grid(path);
    if (!o.only.empty()) {
      std::vector<Shape> keep;
      for (const auto& s : grid)
        if (std::find(o.only.begin(), o.only.end(), s.name) != o.only.end()) keep.push_back(s);
      grid = keep;
    }
  }
  if (grid.empty()) usage("no shape selected");
  return grid;
}

// --dry-run: what a grid run would do, and the check's mapping test, without a GPU.
int run_dry(const Options& o) {
  std::vector<Shape> grid = select_grid(o);
  std::printf("%-22s %6s %-16s %5s %5s %5s %11s %9s\n", "shape", "layers", "hidden", "input",
              "batch", "time", "GFLOP", "weights");
  for (const Shape& s : grid) {
    double params = 0;
    for (int l = 0; l < s.layers(); ++l) {
      double H = s.hidden[static_cast<size_t>(l)];
      params += 4 * H * (s.layer_input(l) + H + 2);
    }
    std::printf("%-22s %6d %-16s %5d %5d %5d %11.4f %6.1f MB\n", s.name.c_str(), s.layers(),
                s.hidden_str().c_str(), s.input, s.batch, s.time, s.flops() / 1e9,
                params * 4 / 1e6);
  }
  std::printf("%zu shapes x %zu precisions x %zu algorithms = %zu configurations; %s\n",
              grid.size(), o.precisions.size(), o.algorithms.size(),
              grid.size() * o.precisions.size() * o.algorithms.size(),
              "equal sizes: one multi-layer descriptor, unequal: one per layer");
  return run_check(o, nullptr);
}

int run_grid(const Options& o, Context& ctx) {
  std::vector<Shape> grid = select_grid(o);
  CsvOut csv(o.csv);
  csv.row(kHeader);
  std::map<std::string, std::unique_ptr<HostModel>> models;  // weights per architecture
  const auto start = std::chrono::steady_clock::now();
  // Algorithm outermost: STANDARD for every shape first, the persistent ones after, so a
  // time budget drops the least important rows.
  for (const Algorithm* a : o.algorithms) {
    for (const Shape& s : grid) {
      for (const Precision* p : o.precisions) {
        double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (o.budget_s > 0 && elapsed > o.budget_s) {
          csv.row(row_for(s, *p, *a, "skipped", nullptr, -1,
                          "time budget of " + fmt(o.budget_s, 0) + " s spent"));
          continue;
        }
        std::string key = s.hidden_str() + "/" + std::to_string(s.input);
        auto it = models.find(key);
        if (it == models.end()) it = models.emplace(key, make_model(s.hidden, s.input, 42)).first;
        auto row = time_one(o, ctx, s, *p, *a, *it->second);
        csv.row(row);
        if (!csv.is_stdout()) {
          std::fprintf(stderr, "cudnn %-22s %-5s %-22s %-11s %10s us  %s\n", s.name.c_str(),
                       p->name, a->name, row[9].c_str(), row[10].c_str(),
                       row[9] == "ok" ? "" : row.back().substr(0, 100).c_str());
        }
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  if (o.version) {
    std::printf("cudnn_anchor: %s\n", versions().c_str());
    return 0;
  }
  if (o.dry_run) {
    try {
      return run_dry(o);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cudnn_anchor: %s\n", e.what());
      return 2;
    }
  }
  require_device_or_exit(o.check ? "cudnn_anchor --check" : "cudnn_anchor", o.device);
  try {
    cudaDeviceProp prop{};
    ANCHORS_CUDA(cudaGetDeviceProperties(&prop, o.device));
    std::fprintf(stderr, "cudnn_anchor: %s (sm_%d%d, %d SMs); %s\n", prop.name, prop.major,
                 prop.minor, prop.multiProcessorCount, versions().c_str());
    Context ctx;
    return o.check ? run_check(o, &ctx) : run_grid(o, ctx);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cudnn_anchor: %s\n", e.what());
    return 2;
  }
}
