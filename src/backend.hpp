// The backend interface: what a session calls once the C API has validated a request.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model.hpp"
#include "plan.hpp"
#include "precision.hpp"
#include "settings.hpp"

namespace slstm {

// A forward request whose every argument has been validated against the model and the
// session (shapes, counts, lengths, aliasing). Pointers are host pointers; optional ones
// may be null. initial_state may equal final_state.
struct ForwardCall {
  slstm_layout layout = SLSTM_BATCH_MAJOR;
  std::int64_t batch = 0;
  std::int64_t time = 0;
  const float* input = nullptr;         // [B, T, D] or [T, B, D]
  const std::int32_t* lengths = nullptr;  // [B] or null (= time for every row)
  const float* initial_state = nullptr;   // packed, or null (= zeros)
  float* output = nullptr;                // [B, T, H_last] or [T, B, H_last], or null
  float* final_state = nullptr;           // packed, or null
  slstm_memory memory = SLSTM_MEMORY_HOST;  // where the float buffers live (lengths: host)
  // Input and output as 16-bit codes (SLSTM_DATA_BF16 / F16; checked against
  // Backend::takes_16bit_io), else float.
  slstm_data_type data_type = SLSTM_DATA_F32;
};

// The session's options after validation (see slstm_session_options).
struct SessionConfig {
  std::int64_t max_batch = 0;
  std::int64_t max_time = 0;
  slstm_cpu_path cpu_path = SLSTM_CPU_PATH_AUTO;
  std::int32_t num_threads = 0;  // 0 = one per core
  std::int32_t device = 0;
  bool allow_tf32 = false;  // TF32 products on CUDA (precision kTf32)
  Precision precision = Precision::kFp32;
  void* cuda_stream = nullptr;
  // The caller's thread pool (options->thread_pool, validated), or thread_pool.parallel_for
  // null for workers of the session's own
  slstm_thread_pool thread_pool{};
  Settings settings;  // the keyed options, environment overrides applied
};

class Backend;

// The backend's part of a session's stream slots (header "Stream slots"): the slots' states,
// kept where the backend keeps state (host memory on the CPU; on CUDA it would be device
// memory, gathered and scattered by a kernel, with no host round trip), and the batched call
// that gathers them into a packed state, runs the backend's forward on it and scatters the
// rows back.  The backend-neutral part (which slots are open, duplicate ids, every check of
// the arguments) is the C API's: these methods get validated requests (slot ids in range,
// open and distinct; counts checked) and allocate nothing.
class SlotStates {
 public:
  virtual ~SlotStates() = default;
  // Slot `slot`'s packed batch-1 state := `state` (state_count(1) floats in `memory`), or
  // zeros when state is null.
  virtual void write(std::int64_t slot, const float* state, slstm_memory memory) = 0;
  // `state` (state_count(1) floats in `memory`) := slot `slot`'s packed batch-1 state.
  virtual void read(std::int64_t slot, float* state, slstm_memory memory) const = 0;
  // Runs `call` (its initial_state and final_state null) with row i starting from slot
  // slots[i]'s state; slot slots[i] then holds row i's final state.  slots[0..call.batch).
  virtual void forward(const ForwardCall& call, const std::int64_t* slots) = 0;
};

// SlotStates in host memory over any backend that takes host states: max_slots packed
// batch-1 states and a packed scratch state of max_batch rows, both allocated here (checked:
// SLSTM_ERR_SIZE_OVERFLOW, SLSTM_ERR_OUT_OF_MEMORY).  forward() gathers the rows into the
// scratch, runs backend.forward with initial_state == final_state == scratch and scatters the
// scratch back.  `backend` must outlive the result.
std::unique_ptr<SlotStates> make_host_slot_states(Backend& backend, const Model& model,
                                                  std::int64_t max_slots,
                                                  std::int64_t max_batch);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual slstm_backend kind() const = 0;
  // The choices this backend made for the session (src/plan.hpp): fixed at creation, except
  // where a backend says otherwise (CUDA: paths tuned on the device, a persistent kernel
  // turned off after a failure).  A copy: callable from any thread, also while another
  // thread's call runs (a backend whose plan changes serialises the two).
  virtual Plan plan() const { return plan_; }
  // Whether calls may pass SLSTM_MEMORY_DEVICE buffers (the C API asks, instead of knowing
  // which backend kinds can).
  virtual bool takes_device_memory() const { return false; }
  // Whether calls may pass input and output as 16-bit codes (slstm_forward_args.data_type)
  // in device memory.
  virtual bool takes_16bit_io() const { return false; }
  // Runs the call. Throws slstm::Error; must not throw for a validated call on a healthy
  // machine. Allocates nothing.
  virtual void forward(const ForwardCall& call) = 0;
  // The session's stream slots (max_slots >= 1; max_batch as the session's), allocated once.
  // Throws SLSTM_ERR_UNSUPPORTED naming options->max_slots for a backend without them (the
  // default), SLSTM_ERR_SIZE_OVERFLOW / SLSTM_ERR_OUT_OF_MEMORY.
  virtual std::unique_ptr<SlotStates> make_slot_states(std::int64_t max_slots,
                                                       std::int64_t max_batch);
  // `bytes` more of host memory the session holds for this backend (the C API's table of
  // stream slots), for a backend whose plan counts them (host_memory_bytes); called at
  // creation only.
  virtual void count_host_memory(std::int64_t /*bytes*/) {}

 protected:
  Plan plan_;  // filled by each backend's constructor
};

// The bytes a vector holds (its capacity), for host_memory_bytes.
template <typename T>
std::int64_t held_bytes(const std::vector<T>& v) {
  return static_cast<std::int64_t>(v.capacity() * sizeof(T));
}

// A backend that keeps its state in host memory (the CPU reference, fast and generic
// paths): kind CPU, stream slots over make_host_slot_states, the packed state a call
// starts from, and the plan's host_memory_bytes.
class HostBackend : public Backend {
 public:
  explicit HostBackend(ModelPtr model) : model_(std::move(model)) {}
  slstm_backend kind() const override { return SLSTM_BACKEND_CPU; }
  // (The slots' states count in host_memory_bytes.)
  std::unique_ptr<SlotStates> make_slot_states(std::int64_t max_slots,
                                               std::int64_t max_batch) override;
  void count_host_memory(std::int64_t bytes) override;

 protected:
  // The plan's param host_memory_bytes := `bytes`: what the backend allocated for itself
  // (packed weights, workspaces for the session's maxima, states), set by each backend's
  // constructor once its buffers are allocated; the slots' states and table are added to it
  // (count_host_memory).
  void set_host_memory(std::int64_t bytes);

  // state[0 .. state_count(call.batch)) := the call's initial state, or zeros.
  void load_initial_state(const ForwardCall& call, float* state) const;
  // state_count(call.batch) floats of `state` into the call's final state, if it wants one.
  void store_final_state(const ForwardCall& call, const float* state) const;

  ModelPtr model_;

 private:
  std::int64_t host_memory_ = 0;  // the plan's host_memory_bytes
};

// Throws SLSTM_ERR_BACKEND_UNAVAILABLE (with the reason) unless `kind` can run here;
// SLSTM_ERR_INVALID_ARGUMENT for an unknown value.
void require_backend(slstm_backend kind);

// Creates a backend for `model`, allocating its workspace for config's maxima.
std::unique_ptr<Backend> make_backend(slstm_backend kind, ModelPtr model,
                                      const SessionConfig& config);

// Throws SLSTM_ERR_BACKEND_UNAVAILABLE unless the CPU fast path is built in.
void require_cpu_fast_path();

std::unique_ptr<Backend> make_cpu_reference_backend(ModelPtr model, const SessionConfig& config);

}  // namespace slstm
