// The CUDA backend's generic path (cuda.generic, docs/cuda-generic.md): every stack the core
// describes (LSTM with peepholes, clipping and a projection, GRU in both reset variants,
// reverse and bidirectional layers, residual connections, any mix), computed layer by layer
// with one input GEMM per direction over the whole sequence, and per step a recurrent GEMM
// plus the cell's pointwise kernels (generic_cells.cuh).
//
// Plain C++: the engine talks to its device through the Device interface below.  The CUDA
// module's device (generic_device.cu) runs it on a GPU with cuBLAS and CUDA kernels; the CPU
// suite's device (tests/cuda_emu) runs the same engine, with the same per-element functions,
// in host memory, behind a module of its own that the core loads like the real one.  So
// everything but the device's few primitives (allocation, copies, GEMM, launches) is
// tested on every machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "backend_module_abi.h"
#include "generic_cells.cuh"

namespace slstm_cuda::generic {

// C[m, n] = A[m, k] . W[n, k]^T, row-major with leading dimensions (in elements); beta 0;
// C float32.  Written in this order: Gemm{m, n, k, a, lda, w, ldw, c, ldc} (float32
// operands), or with format kOperandsBf16 / kOperandsFp16 and the operands as 16-bit codes
// in a16 / w16 (a BF16 / FP16 session: the products exact, the sums float32).
struct Gemm {
  std::int64_t m, n, k;
  const float* a;
  std::int64_t lda;
  const float* w;
  std::int64_t ldw;
  float* c;
  std::int64_t ldc;
  std::int32_t format;  // kOperandsF32 (0), kOperandsBf16, kOperandsFp16
  const std::uint16_t* a16;
  const std::uint16_t* w16;
};

// A Gemm as the column-major BLAS call that computes it (cuBLAS's Sgemm / GemmEx):
// C (n x m, ldc) = op_a(A) (n x k) . op_b(B) (k x m), A = W read transposed (ld ldw), B = the
// activations as stored (ld lda).  The GPU device passes these fields to cuBLAS as they are;
// the emulated device computes them with the BLAS definition (tests/cuda_emu), so every
// emulated test also checks this mapping.
struct BlasCall {
  bool trans_a, trans_b;    // op(A) = A^T when true
  std::int64_t m, n, k;     // BLAS's: C is m x n, op(A) m x k, op(B) k x n
  const void* a;            // float or 16-bit codes (Gemm::format)
  std::int64_t lda;
  const void* b;
  std::int64_t ldb;
  float* c;
  std::int64_t ldc;
};

inline BlasCall blas_call(const Gemm& g) {
  const bool f32 = g.format == kOperandsF32;
  return BlasCall{true,  false, g.n, g.m, g.k,
                  f32 ? static_cast<const void*>(g.w) : static_cast<const void*>(g.w16), g.ldw,
                  f32 ? static_cast<const void*>(g.a) : static_cast<const void*>(g.a16), g.lda,
                  g.c,   g.ldc};
}

// What identifies a call's compute for a device that records it (CUDA graphs): the same key,
// the same operations on the same buffers.
struct ComputeKey {
  std::int64_t batch = 0, time = 0;
  std::int64_t steps = 0;  // the longest row's length
  std::int32_t layout = 0;
};

// What the engine needs of a device.  Every operation is ordered after the previous ones
// (one stream); failures throw slstm::Error.  Memory from alloc() is the device's; copies
// take any mix of host and device pointers.
class Device {
 public:
  virtual ~Device() = default;
  virtual float* alloc_floats(std::int64_t count, const char* what) = 0;  // uninitialised
  virtual std::int32_t* alloc_ints(std::int64_t count, const char* what) = 0;
  virtual std::uint16_t* alloc_codes(std::int64_t count, const char* what) = 0;  // 16-bit
  virtual void release(void* p) noexcept = 0;
  virtual void copy(void* dst, const void* src, std::size_t bytes, const char* what) = 0;
  virtual void zero(void* dst, std::size_t bytes, const char* what) = 0;
  virtual void gemm(const Gemm& g) = 0;
  virtual void lstm_step(const LstmStep& a) = 0;        // B * H elements
  virtual void lstm_project(const LstmProject& a) = 0;  // B * P
  virtual void gru_reset(const GruStep& a) = 0;         // B * H
  virtual void gru_step(const GruStep& a) = 0;          // B * H
  virtual void layer_finish(const LayerFinish& a) = 0;  // T * B * W
  virtual void round16(const Round16& a) = 0;           // n (BF16 / FP16 sessions)
  virtual void widen16(const Widen16& a) = 0;           // n (16-bit input)
  // SLSTM_MEMORY_DEVICE: throws SLSTM_ERR_INVALID_ARGUMENT naming `name` unless p is memory
  // this device can use (null passes).
  virtual void check_device_pointer(const void* p, const char* name) = 0;
  // The end of a call: with host buffers (or no caller stream), wait for the work and report
  // any error; else return at once (the work stays ordered on the stream).
  virtual void end_call(bool host_memory) = 0;
  // The compute of a call: runs enqueue(ctx), which issues its operations, or replays what
  // an earlier enqueue issued for the same key (a CUDA graph) without calling it.  A device
  // that may replay (records() true) sees the first call's buffers every time: the engine
  // then gives it only buffers of its own (the caller's input staged into them).
  virtual bool records() const { return false; }
  virtual void compute(const ComputeKey& key, void (*enqueue)(void*), void* ctx) {
    (void)key;
    enqueue(ctx);
  }
};

class Engine {
 public:
  // Checks the description, uploads the weights and allocates every buffer for max_batch x
  // max_time.  `device` must outlive the engine.
  Engine(const slstm_cuda_session_desc& desc, Device& device);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // One validated forward call (batch <= max_batch, time <= max_time).
  void forward(const slstm_cuda_forward_desc& call);
  std::size_t num_layers() const { return layers_.size(); }

 private:
  struct Cell {  // one direction's weights, in device memory
    float* w_x = nullptr;
    float* w_h = nullptr;
    float* bias = nullptr;
    float* bias_hn = nullptr;
    float* peep = nullptr;
    float* w_proj = nullptr;
    // BF16 / FP16 sessions: the products' weights as 16-bit codes (rounded once); the
    // float32 copies above are not kept then.
    std::uint16_t* w_x16 = nullptr;
    std::uint16_t* w_h16 = nullptr;
    std::uint16_t* w_proj16 = nullptr;
  };
  struct Layer {
    std::int32_t cell = 0, direction = 0;
    std::int64_t in = 0, hidden = 0, proj = 0;
    float cell_clip = 0.0f, proj_clip = 0.0f;
    bool reset_after = false, residual = false;
    std::int32_t state_parts = 0;
    std::int64_t state_part_row[4] = {};
    Cell cells[2];
    int gates() const { return cell == 1 ? 3 : 4; }
    int directions() const { return direction == 2 ? 2 : 1; }
    std::int64_t out_width() const { return proj > 0 ? proj : hidden; }  // R
    std::int64_t width() const { return out_width() * directions(); }    // W
  };

  float* upload(const float* host, std::int64_t count, const char* what);
  std::uint16_t* upload16(const float* host, std::int64_t count, const char* what);
  // z = a . w^T as float32 or 16-bit operands (a is converted into a16 first when the session
  // rounds; w16 the weights' codes).
  void product(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
               std::uint16_t* a16, const float* w, const std::uint16_t* w16, std::int64_t ldw,
               float* c, std::int64_t ldc);
  // The compute of a call (every layer and direction), as Device::compute issues it.
  struct Compute {
    Engine* self;
    const float* x;  // the first layer's input
    Rows rows;
    std::int64_t steps;
  };
  static void enqueue_compute(void* compute);
  void run_direction(const Layer& l, int d, const float* x, std::int64_t x_ld, float* y,
                     const Rows& rows, std::int64_t steps);
  void step(const Layer& l, int d, float* y, const Rows& rows);

  Device& dev_;
  std::vector<void*> owned_;  // everything allocated, released by the destructor
  std::vector<Layer> layers_;
  std::int64_t input_size_ = 0, max_batch_ = 0, max_time_ = 0, state_row_floats_ = 0;
  std::int32_t format_ = kOperandsF32;  // the products' operands (desc.precision)
  // BF16 / FP16: the 16-bit codes of a layer's input [T*B][widest input] and of a step's
  // product operand (h, m or r o h) [B][widest].
  std::uint16_t* x16_ = nullptr;
  std::uint16_t* op16_ = nullptr;
  // Workspace (device): the staged input, two layer outputs, one direction's input
  // projections, a step's recurrent sums and its cell output / r o h / projection.
  float* x_ = nullptr;      // [T*B][D]
  float* y_[2] = {nullptr, nullptr};  // [T*B][widest W]
  float* gx_ = nullptr;     // [T*B][widest G*H]
  float* z_ = nullptr;      // [B][widest G*H]
  float* aux_ = nullptr;    // [B][widest H]
  float* p_ = nullptr;      // [B][widest P]
  float* state_ = nullptr;  // [B * state_row_floats]
  std::int32_t* lengths_ = nullptr;    // [B] on the device
  std::vector<std::int32_t> host_lengths_;  // [B] staged for the copy
};

}  // namespace slstm_cuda::generic
