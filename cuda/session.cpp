// A forward call (steps 1-6 in session.hpp) and the session's destruction.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

#include "kernels.cuh"
#include "session.hpp"

namespace slstm_cuda {

Session::~Session() {
  // The members release their resources after this body, with the session's device current;
  // teardown_, destroyed last, then restores the caller's device.
  teardown_.enter(device_, main_);
}

void Session::forward(const slstm_cuda_forward_desc& c) { run(c, nullptr); }

// A forward call; with slot_ids, the state comes from and goes back to the stream slots
// (forward_slots, slots.cpp) instead of c.initial_state / c.final_state.
void Session::run(const slstm_cuda_forward_desc& call, const std::int64_t* slot_ids) {
  DeviceGuard guard(device_);
  settle_previous_call();
  const bool host = call.memory == SLSTM_MEMORY_HOST;
  const cudaMemcpyKind to_dev = host ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice;
  const cudaMemcpyKind from_dev = host ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
  if (!host) check_device_pointers(call);
  if (call.batch < 1 || call.batch > max_batch_ || call.time < 0 || call.time > max_time_) {
    fail(SLSTM_ERR_INTERNAL, "forward: unvalidated batch/time reached the CUDA module");
  }
  const int B = static_cast<int>(call.batch);
  const int T = static_cast<int>(call.time);
  const std::int64_t state_floats = call.batch * state_row_floats_;
  const std::size_t state_bytes = static_cast<std::size_t>(state_floats) * sizeof(float);
  if (T == 0) {
    if (slot_ids == nullptr) copy_state_without_steps(call, host, state_floats);
    return;  // slots: no step, every slot keeps its state
  }
  // cuda.staging=on: host buffers that fit go through the pinned buffer; `c` is the call as
  // the steps below see it (its buffers in h_stage_), `call` the caller's.
  slstm_cuda_forward_desc staged{};
  const bool is_staged = host && stage_host_call(call, &staged);
  const slstm_cuda_forward_desc& c = is_staged ? staged : call;
  upload_lengths(c);    // 1.
  stage_input(c, host);  // 2.
  tune(B, T, c.layout);  // cuda.tune=on: the first call of this batch times the paths
  // 3. Initial state and 4. the compute. A persistent kernel the device refuses to launch
  // (or a graph's capture, instantiation or launch that fails: LaunchRefused) turns it off,
  // and 3-4 run again on the fused step (3 too: steps enqueued before the refusal may have
  // moved the state). Any other failure (of 3, a copy, cuBLAS) is this call's own error and
  // leaves the persistent kernel on. When even turning it off fails (a device that failed
  // for good), the error reported is the refusal's.
  start_state(c, slot_ids, to_dev, state_bytes);
  try {
    enqueue_call(B, T, c.layout);
  } catch (const LaunchRefused&) {
    if (!persistent_on()) throw;
    const std::exception_ptr refused = std::current_exception();
    try {
      turn_persistent_off();
    } catch (const slstm::Error&) {
      std::rethrow_exception(refused);
    }
    start_state(c, slot_ids, to_dev, state_bytes);
    enqueue_call(B, T, c.layout);
  }
  // 5. Results.
  if (c.output != nullptr) {
    const std::size_t out_bytes =
        static_cast<std::size_t>(c.batch * c.time * layers_.back().hid) * sizeof(float);
    check(cudaMemcpyAsync(c.output, d_out_.get(), out_bytes, from_dev, main_),
          "cudaMemcpyAsync (output)");
  }
  if (slot_ids != nullptr) {
    copy_slots(B, false);
  } else if (c.final_state != nullptr) {
    check(cudaMemcpyAsync(c.final_state, d_state_.get(), state_bytes, from_dev, main_),
          "cudaMemcpyAsync (final_state)");
  }
  // 6. Host buffers (or no caller stream to synchronise on): wait and report.
  finish(host);
  if (!host && !own_main_ && persistent_on()) {
    check(cudaEventRecord(ev_call_end_.get(), main_), "cudaEventRecord (call end)");
    call_unsynced_ = true;
  }
  // 7. The persistent kernel gave up waiting: its results are invalid. Turn it off and run
  // the call again on the fused step (the same numbers it would have given) while its
  // inputs are intact: not after an in-place state update or with stream slots.
  // (A staged call has not written the caller's buffers yet: it can run again in place.)
  if ((host || own_main_) && persistent_failed()) {
    turn_persistent_off();
    if (slot_ids != nullptr || (!is_staged && call.initial_state != nullptr &&
                                call.initial_state == call.final_state)) {
      fail(SLSTM_ERR_BACKEND_FAILURE,
           "cuda.persistent: the persistent kernel gave up waiting at its grid barrier "
           "(cuda.persistent_timeout_us); this call's output and final state are not valid "
           "and, its state having been updated in place, it cannot be run again here. The "
           "session has turned the persistent kernel off (the fused step runs instead, with "
           "the same numbers)");
    }
    run(call, slot_ids);
    return;
  }
  if (is_staged) deliver_staged(call, staged);
}

// The persistent kernel of an earlier call that returned before the kernel ran (device
// buffers on the caller's stream) gave up waiting: say so now, and stop using it. That call's
// work is waited for first: a failure seen later would be taken for this call's. (Every
// entry that reads or writes the session's state: forward, slot_write, slot_read.)
void Session::settle_previous_call() {
  if (call_unsynced_) {
    check(cudaEventSynchronize(ev_call_end_.get()), "cudaEventSynchronize (the previous call)");
    call_unsynced_ = false;
  }
  if (persistent_failed()) {
    turn_persistent_off();
    fail(SLSTM_ERR_BACKEND_FAILURE,
         "cuda.persistent: an earlier call's persistent kernel gave up waiting at its grid "
         "barrier (cuda.persistent_timeout_us); that call's output and final state are not "
         "valid. The session has turned the persistent kernel off (the fused step runs "
         "instead, with the same numbers); this call did nothing");
  }
}

// 3. The initial state: from the stream slots, the caller's buffer, or zeros.
void Session::start_state(const slstm_cuda_forward_desc& c, const std::int64_t* slot_ids,
                          cudaMemcpyKind to_dev, std::size_t state_bytes) {
  if (slot_ids != nullptr) {
    upload_slot_ids(slot_ids, static_cast<int>(c.batch));
    copy_slots(static_cast<int>(c.batch), true);
  } else if (c.initial_state != nullptr) {
    check(cudaMemcpyAsync(d_state_.get(), c.initial_state, state_bytes, to_dev, main_),
          "cudaMemcpyAsync (initial_state)");
  } else {
    check(cudaMemsetAsync(d_state_.get(), 0, state_bytes, main_), "cudaMemsetAsync (state)");
  }
}

// 4. The compute: replayed from its graph, or enqueued directly.
void Session::enqueue_call(int batch, int time, std::int32_t layout) {
  if (use_graphs_) {
    cudaGraphExec_t exec = graph_for(batch, time, layout);
    check_launch(cudaGraphLaunch(exec, main_), "cudaGraphLaunch");
  } else {
    enqueue_compute(main_, batch, time, layout);
  }
}

bool Session::persistent_failed() {
  return h_status_ && *static_cast<volatile int*>(h_status_.get()) != 0;
}

// After a failure of the persistent kernel: every later call runs the fused step (the graphs
// that launch the persistent kernel are dropped), once the failed call's work has drained.
void Session::turn_persistent_off() {
  // Every layer's streams too: a refused launch leaves the steps enqueued before it on the
  // layers' streams, which never joined main_ (graphs off), and the call's retry must not
  // reset the state under them.
  for (LayerData& ld : layers_) {
    const char* what = "cudaStreamSynchronize (persistent kernel failure)";
    check(cudaStreamSynchronize(ld.rec.get()), what);
    if (ld.proj) check(cudaStreamSynchronize(ld.proj.get()), what);
  }
  check(cudaStreamSynchronize(main_), "cudaStreamSynchronize (persistent kernel failure)");
  persistent_off_ = true;
  graphs_.clear();
  *h_status_.get() = 0;
}

// SLSTM_MEMORY_DEVICE: every buffer the call will touch is device memory of our device.
void Session::check_device_pointers(const slstm_cuda_forward_desc& c) const {
  if (c.time > 0) check_device_pointer(c.input, "input");
  check_device_pointer(c.initial_state, "initial_state");
  if (c.time > 0) check_device_pointer(c.output, "output");
  check_device_pointer(c.final_state, "final_state");
}

void Session::check_device_pointer(const void* p, const char* name) const {
  check_device_memory(p, name, device_);
}

// No steps (T = 0): final state = initial state (or zeros).
void Session::copy_state_without_steps(const slstm_cuda_forward_desc& c, bool host,
                                       std::int64_t state_floats) {
  if (c.final_state == nullptr) return;
  const std::size_t state_bytes = static_cast<std::size_t>(state_floats) * sizeof(float);
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
}

// 1. Lengths, T for every row when none are given (the pinned buffer is reused only after
// its previous copy has run). A call without lengths whose rows d_len_ already holds as T
// (the previous upload was such a call's, of this T and at least this batch) copies nothing.
void Session::upload_lengths(const slstm_cuda_forward_desc& c) {
  const int B = static_cast<int>(c.batch);
  const int T = static_cast<int>(c.time);
  if (c.lengths == nullptr && len_uniform_time_ == T && len_uniform_rows_ >= B) return;
  len_uniform_time_ = -1;  // until this upload is enqueued
  if (len_pending_) {
    check(cudaEventSynchronize(ev_len_.get()), "cudaEventSynchronize");
    len_pending_ = false;
  }
  std::int32_t* h_len = h_len_.get();
  for (int b = 0; b < B; ++b) h_len[b] = c.lengths != nullptr ? c.lengths[b] : T;
  check(cudaMemcpyAsync(d_len_.get(), h_len, static_cast<std::size_t>(B) * sizeof(std::int32_t),
                        cudaMemcpyHostToDevice, main_),
        "cudaMemcpyAsync (sequence_lengths)");
  check(cudaEventRecord(ev_len_.get(), main_), "cudaEventRecord");
  len_pending_ = true;
  if (c.lengths == nullptr) {
    len_uniform_time_ = T;
    len_uniform_rows_ = B;
  }
}

// 2. Input into d_x_, the time-major augmented rows (their column of ones and padding stay as
// set at creation). Rows already in time-major order (a time-major input, or T = 1): one 2D
// copy straight from the caller's buffer, host or device. Otherwise a host input is copied
// to d_in_ first, then the pack kernel reorders it.
void Session::stage_input(const slstm_cuda_forward_desc& c, bool host) {
  const std::size_t row_bytes = static_cast<std::size_t>(input_size_) * sizeof(float);
  const auto rows = static_cast<std::size_t>(c.batch * c.time);
  const int ld = layers_.front().ld_x;
  if (c.layout == SLSTM_TIME_MAJOR || c.time == 1) {
    check(cudaMemcpy2DAsync(d_x_.get(), static_cast<std::size_t>(ld) * sizeof(float), c.input,
                            row_bytes, row_bytes, rows,
                            host ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice, main_),
          "cudaMemcpy2DAsync (input)");
    return;
  }
  const float* src = c.input;
  if (host) {
    check(cudaMemcpyAsync(d_in_.get(), c.input, rows * row_bytes, cudaMemcpyHostToDevice, main_),
          "cudaMemcpyAsync (input)");
    src = d_in_.get();
  }
  check(launch_pack_input(main_, src, d_x_.get(), static_cast<int>(c.batch),
                          static_cast<int>(c.time), input_size_, ld,
                          c.layout == SLSTM_BATCH_MAJOR),
        "pack_input_kernel");
}

void Session::finish(bool host) {
  if (host || own_main_) {
    check(cudaStreamSynchronize(main_), "forward (cudaStreamSynchronize)");
    len_pending_ = false;
    slot_ids_pending_ = false;
  }
  check(cudaGetLastError(), "forward");
}

// cuda.staging=on: when the call's host buffers fit h_stage_, points *staged (a copy of c) at
// its regions -- input, initial state, output, final state, those the call has -- and copies
// the input and the initial state there. (A staged call that failed before its sync may leave
// copies from and to the buffer queued: they run on main_ before this call's, and what they
// bring the device, or the buffer, only that failed call's work reads.)
bool Session::stage_host_call(const slstm_cuda_forward_desc& c, slstm_cuda_forward_desc* staged) {
  if (stage_floats_ == 0) return false;
  const std::int64_t rows = c.batch * c.time;
  const std::int64_t in_n = rows * input_size_;
  const std::int64_t out_n = c.output != nullptr ? rows * layers_.back().hid : 0;
  const std::int64_t state_n = c.batch * state_row_floats_;
  const std::int64_t s0_n = c.initial_state != nullptr ? state_n : 0;
  const std::int64_t s1_n = c.final_state != nullptr ? state_n : 0;
  if (in_n + s0_n + out_n + s1_n > stage_floats_) return false;
  const auto bytes = [](std::int64_t n) { return static_cast<std::size_t>(n) * sizeof(float); };
  float* p = h_stage_.get();
  *staged = c;
  std::memcpy(p, c.input, bytes(in_n));
  staged->input = p;
  p += in_n;
  if (s0_n > 0) {
    std::memcpy(p, c.initial_state, bytes(s0_n));
    staged->initial_state = p;
    p += s0_n;
  }
  if (out_n > 0) {
    staged->output = p;
    p += out_n;
  }
  if (s1_n > 0) staged->final_state = p;
  return true;
}

// A staged call's output and final state, from h_stage_ to the caller's buffers (after the
// call's sync).
void Session::deliver_staged(const slstm_cuda_forward_desc& c,
                             const slstm_cuda_forward_desc& staged) const {
  if (c.output != nullptr) {
    std::memcpy(c.output, staged.output,
                static_cast<std::size_t>(c.batch * c.time * layers_.back().hid) * sizeof(float));
  }
  if (c.final_state != nullptr) {
    std::memcpy(c.final_state, staged.final_state,
                static_cast<std::size_t>(c.batch * state_row_floats_) * sizeof(float));
  }
}

}  // namespace slstm_cuda
