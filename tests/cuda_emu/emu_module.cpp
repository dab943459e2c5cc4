// An emulated CUDA module for the CPU suite: the table of src/backend_module_abi.h, exported
// as slstm_cuda_module_v7 like the real libstacklstm_cuda.so, whose sessions run the generic
// path's engine (cuda/generic_engine.cpp, the very code the real module runs) on a device
// made of host memory and plain loops.  The pointwise operations call the same per-element
// functions the CUDA kernels call (cuda/generic_cells.cuh); only the GEMM is a loop here
// instead of cuBLAS.  The core loads it through SLSTM_CUDA_MODULE, so a test of the CUDA
// backend with cuda.generic=on exercises the whole path (C API, core, module interface,
// engine, cell math) on a machine without a GPU (tests/CMakeLists.txt, "cuda-emu").
//
// Faithful where it matters for finding bugs: memory from alloc is filled with NaN (an
// element read before it is written shows up in the results), every step's operations run
// in the order the engine issues them, and with cuda.graphs=on (the default) a call's
// compute is recorded at the first call of its key and replayed from the recording after
// (as a CUDA graph is: the first call's arguments, buffers included).  Not emulated:
// device-pointer checks (host memory is this device's memory: a call may pass host
// pointers as SLSTM_MEMORY_DEVICE, which the [cuda-emu] cases use), asynchrony, and the basic
// path (its sessions run on the generic engine here).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "backend_module_abi.h"
#include "firewall.hpp"
#include "generic_engine.hpp"
#include "stacklstm/stacklstm.h"

#define SLSTM_EMU_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using namespace slstm_cuda::generic;

struct GruReset {  // (gru_reset's operation: GruStep's arguments, another function)
  GruStep a;
};
struct Copy {
  void* dst;
  const void* src;
  std::size_t bytes;
};
struct Zero {
  void* dst;
  std::size_t bytes;
};
using Op = std::variant<Gemm, LstmStep, LstmProject, GruReset, GruStep, LayerFinish, Round16,
                        Widen16, Copy, Zero>;

class HostDevice final : public Device {
 public:
  explicit HostDevice(bool graphs) : graphs_(graphs) {}
  // What alloc_* allocated, in bytes (the session's "device memory": session_memory).
  std::int64_t allocated() const { return allocated_; }
  float* alloc_floats(std::int64_t count, const char* what) override {
    auto* p = static_cast<float*>(alloc(count, sizeof(float), what));
    for (std::int64_t i = 0; i < count; ++i) p[i] = std::numeric_limits<float>::quiet_NaN();
    return p;
  }
  std::uint16_t* alloc_codes(std::int64_t count, const char* what) override {
    auto* p = static_cast<std::uint16_t*>(alloc(count, sizeof(std::uint16_t), what));
    for (std::int64_t i = 0; i < count; ++i) p[i] = 0x7fc1;  // a NaN in both formats
    return p;
  }
  std::int32_t* alloc_ints(std::int64_t count, const char* what) override {
    auto* p = static_cast<std::int32_t*>(alloc(count, sizeof(std::int32_t), what));
    for (std::int64_t i = 0; i < count; ++i) p[i] = -1;
    return p;
  }
  void release(void* p) noexcept override { std::free(p); }
  void copy(void* dst, const void* src, std::size_t bytes, const char*) override {
    if (record(Copy{dst, src, bytes})) return;
    std::memmove(dst, src, bytes);
  }
  void zero(void* dst, std::size_t bytes, const char*) override {
    if (record(Zero{dst, bytes})) return;
    std::memset(dst, 0, bytes);
  }
  // The column-major BLAS call the GPU device hands cuBLAS (blas_call), computed by the BLAS
  // definition: C(i, j) = sum_l op(A)(i, l) op(B)(l, j), X(i, j) at X[i + j * ldx], op(X) =
  // X^T when transposed; 16-bit operands as their values (exact products, float32 sums).
  void gemm(const Gemm& g) override {
    if (record(g)) return;
    const BlasCall c = blas_call(g);
    auto at = [&](const void* p, std::int64_t ld, bool trans, std::int64_t i, std::int64_t l) {
      const std::int64_t idx = trans ? l + i * ld : i + l * ld;
      if (g.format == kOperandsF32) return static_cast<const float*>(p)[idx];
      return operand_value(g.format, static_cast<const std::uint16_t*>(p)[idx]);
    };
    for (std::int64_t j = 0; j < c.n; ++j) {
      for (std::int64_t i = 0; i < c.m; ++i) {
        float acc = 0.0f;
        for (std::int64_t l = 0; l < c.k; ++l) {
          acc += at(c.a, c.lda, c.trans_a, i, l) * at(c.b, c.ldb, c.trans_b, l, j);
        }
        c.c[i + j * c.ldc] = acc;
      }
    }
  }
  void lstm_step(const LstmStep& a) override {
    if (record(a)) return;
    for (std::int64_t i = 0; i < a.rows.batch * a.hidden; ++i) lstm_step_element(a, i);
  }
  void lstm_project(const LstmProject& a) override {
    if (record(a)) return;
    for (std::int64_t i = 0; i < a.rows.batch * a.proj; ++i) lstm_project_element(a, i);
  }
  void gru_reset(const GruStep& a) override {
    if (record(GruReset{a})) return;
    for (std::int64_t i = 0; i < a.rows.batch * a.hidden; ++i) gru_reset_element(a, i);
  }
  void gru_step(const GruStep& a) override {
    if (record(a)) return;
    for (std::int64_t i = 0; i < a.rows.batch * a.hidden; ++i) gru_step_element(a, i);
  }
  void layer_finish(const LayerFinish& a) override {
    if (record(a)) return;
    const std::int64_t n = a.rows.batch * a.rows.time * a.width;
    for (std::int64_t i = 0; i < n; ++i) layer_finish_element(a, i);
  }
  void round16(const Round16& a) override {
    if (record(a)) return;
    for (std::int64_t i = 0; i < a.n; ++i) round16_element(a, i);
  }
  void widen16(const Widen16& a) override {
    if (record(a)) return;
    for (std::int64_t i = 0; i < a.n; ++i) widen16_element(a, i);
  }
  void check_device_pointer(const void*, const char*) override {}
  void end_call(bool) override {}

  // cuda.graphs=on: the first call of a key records its operations without running them
  // (a stream capture), then runs the recording; later calls of the key run the recording.
  // At most 8 recordings, the least recently used dropped first (GraphCache's rule).
  bool records() const override { return graphs_; }
  void compute(const ComputeKey& key, void (*enqueue)(void*), void* ctx) override {
    if (!graphs_) {
      enqueue(ctx);
      return;
    }
    Recording* found = nullptr;
    for (Recording& r : recordings_) {
      if (r.key.batch == key.batch && r.key.time == key.time && r.key.steps == key.steps &&
          r.key.layout == key.layout) {
        found = &r;
      }
    }
    if (found == nullptr) {
      if (recordings_.size() >= 8) {
        std::size_t oldest = 0;
        for (std::size_t i = 1; i < recordings_.size(); ++i) {
          if (recordings_[i].last_use < recordings_[oldest].last_use) oldest = i;
        }
        recordings_.erase(recordings_.begin() + static_cast<std::ptrdiff_t>(oldest));
      }
      recordings_.push_back(Recording{key, {}, 0});
      found = &recordings_.back();
      recording_ = &found->ops;
      try {
        enqueue(ctx);
      } catch (...) {
        recording_ = nullptr;
        recordings_.pop_back();
        throw;
      }
      recording_ = nullptr;
    }
    found->last_use = ++clock_;
    for (const Op& op : found->ops) std::visit([this](const auto& o) { run(o); }, op);
  }

 private:
  struct Recording {
    ComputeKey key;
    std::vector<Op> ops;
    std::uint64_t last_use;
  };

  template <typename T>
  bool record(const T& op) {
    if (recording_ == nullptr) return false;
    recording_->push_back(op);
    return true;
  }
  void run(const Gemm& g) { gemm(g); }
  void run(const LstmStep& a) { lstm_step(a); }
  void run(const LstmProject& a) { lstm_project(a); }
  void run(const GruReset& a) { gru_reset(a.a); }
  void run(const GruStep& a) { gru_step(a); }
  void run(const LayerFinish& a) { layer_finish(a); }
  void run(const Round16& a) { round16(a); }
  void run(const Widen16& a) { widen16(a); }
  void run(const Copy& c) { copy(c.dst, c.src, c.bytes, "replay"); }
  void run(const Zero& z) { zero(z.dst, z.bytes, "replay"); }

  void* alloc(std::int64_t count, std::size_t size, const char* what) {
    if (count < 1) count = 1;
    if (static_cast<std::uint64_t>(count) > std::numeric_limits<std::size_t>::max() / size) {
      slstm::fail(SLSTM_ERR_SIZE_OVERFLOW, std::string(what) + ": size overflows size_t");
    }
    void* p = std::malloc(static_cast<std::size_t>(count) * size);
    if (p == nullptr) slstm::fail(SLSTM_ERR_OUT_OF_MEMORY, std::string(what) + ": out of memory");
    allocated_ += count * static_cast<std::int64_t>(size);
    return p;
  }

  bool graphs_;
  std::vector<Recording> recordings_;
  std::vector<Op>* recording_ = nullptr;  // while compute() records
  std::uint64_t clock_ = 0;
  std::int64_t allocated_ = 0;
};

struct EmuSession {
  explicit EmuSession(bool graphs) : device(graphs) {}
  HostDevice device;
  std::unique_ptr<Engine> engine;
};

using slstm::module_firewall;  // exceptions -> (status, message in the core's buffer)
using slstm::write_message;

std::int32_t probe(char*, std::size_t) { return SLSTM_OK; }

std::int32_t session_create(const slstm_cuda_session_desc* desc, void** out, char* msg,
                            std::size_t size) {
  return module_firewall(msg, size, [&] {
    // (A basic-path session, desc->generic == 0, runs on the engine too: what a test of it
    // here checks is the core's side, e.g. what the core refuses on the basic path.)
    auto s = std::make_unique<EmuSession>(desc->use_graphs != 0);
    s->engine = std::make_unique<Engine>(*desc, s->device);
    *out = s.release();
  });
}

std::int32_t session_forward(void* session, const slstm_cuda_forward_desc* call, char* msg,
                             std::size_t size) {
  return module_firewall(msg, size, [&] { static_cast<EmuSession*>(session)->engine->forward(*call); });
}

void session_destroy(void* session) { delete static_cast<EmuSession*>(session); }

std::int32_t session_layer_plan(void*, std::int32_t, std::uint32_t* fused, std::uint32_t* persistent,
                                char*, std::size_t) {
  *fused = 0;
  *persistent = 0;
  return SLSTM_OK;
}

// No persistent kernel here, hence no cluster tier either (cuda.cluster=on changes nothing).
std::int32_t layer_cluster(void*, std::int32_t, std::uint32_t* batches, std::int32_t* ctas, char*,
                           std::size_t) {
  *batches = 0;
  *ctas = 0;
  return SLSTM_OK;
}

// Nor a hybrid tier (cuda.hybrid=on changes nothing).
std::int32_t layer_hybrid(void*, std::int32_t, std::uint32_t* batches, std::int32_t* resident,
                          std::int64_t* window, char*, std::size_t) {
  *batches = 0;
  *resident = 0;
  *window = 0;
  return SLSTM_OK;
}

std::int32_t no_slots(char* msg, std::size_t size) {
  write_message(msg, size, "the emulated CUDA module has no device slots");
  return SLSTM_ERR_INTERNAL;
}
std::int32_t slots_init(void*, std::int64_t, char* msg, std::size_t size) {
  return no_slots(msg, size);
}
std::int32_t slot_write(void*, std::int64_t, const float*, std::int32_t, char* msg,
                        std::size_t size) {
  return no_slots(msg, size);
}
std::int32_t slot_read(void*, std::int64_t, float*, std::int32_t, char* msg, std::size_t size) {
  return no_slots(msg, size);
}
std::int32_t slot_forward(void*, const slstm_cuda_forward_desc*, const std::int64_t*, char* msg,
                          std::size_t size) {
  return no_slots(msg, size);
}

std::int32_t live_plan(void*, std::uint32_t* tuned, std::uint32_t* stack, char* file_error,
                       std::size_t file_error_size, char*, std::size_t) {
  *tuned = 0;
  *stack = 0;
  write_message(file_error, file_error_size, "");
  return SLSTM_OK;
}

std::int32_t graphs_failure(void*, char* why, std::size_t why_size, char*, std::size_t) {
  write_message(why, why_size, "");  // the emulated device records every compute it is given
  return SLSTM_OK;
}

// Its "device memory": host memory here, no cuBLAS workspace, nothing pinned.
std::int32_t memory(void* session, std::int64_t* device, std::int64_t* workspace,
                    std::int64_t* pinned, char*, std::size_t) {
  *device = static_cast<EmuSession*>(session)->device.allocated();
  *workspace = 0;
  *pinned = 0;
  return SLSTM_OK;
}

const slstm_cuda_module_table kTable = {
    sizeof(slstm_cuda_module_table), SLSTM_CUDA_MODULE_ABI_VERSION, &probe, &session_create,
    &session_forward, &session_destroy, &session_layer_plan, &slots_init, &slot_write,
    &slot_read, &slot_forward, &live_plan, &graphs_failure, &memory, &layer_cluster,
    &layer_hybrid};

}  // namespace

SLSTM_EMU_EXPORT const slstm_cuda_module_table* slstm_cuda_module_v7(void) { return &kTable; }
