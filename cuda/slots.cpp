// Stream slots on the CUDA backend (session.hpp; the C API's "Stream slots"): the slots'
// states live in device memory, a call's rows are gathered from them into d_state_ by a
// kernel before the compute and scattered back after it, all on the main stream, so a
// stream's state never travels to the host. Enabled by the keyed setting cuda.slots=on
// (off by default until it has run on a GPU: bench/results/gpu-pending.md).
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels.cuh"
#include "session.hpp"

namespace slstm_cuda {

void Session::init_slots(std::int64_t max_slots) {
  DeviceGuard guard(device_);
  if (max_slots < 1 || max_slots_ != 0) fail(SLSTM_ERR_INTERNAL, "init_slots: bad request");
  // The pieces of a row of the packed state (c and h of each layer), in row order; they
  // must tile the row (the core's StateLayout does: layer after layer, c then h).
  std::vector<std::pair<std::int64_t, std::int64_t>> pieces;  // (row offset, width)
  for (const LayerData& l : layers_) {
    pieces.emplace_back(l.state_c_row, l.hid);
    pieces.emplace_back(l.state_h_row, l.hid);
  }
  std::sort(pieces.begin(), pieces.end());
  std::vector<std::int64_t> off;
  std::int64_t at = 0;
  for (const auto& p : pieces) {
    if (p.first != at) fail(SLSTM_ERR_INTERNAL, "init_slots: the state pieces do not tile a row");
    off.push_back(at);
    at += p.second;
  }
  if (at != state_row_floats_) fail(SLSTM_ERR_INTERNAL, "init_slots: state row size mismatch");
  off.push_back(at);
  const std::int64_t floats = mul(max_slots, state_row_floats_, "max_slots x state size");
  d_slots_ = device_alloc<float>(floats, "cudaMalloc (stream slots)");
  d_slot_off_ = device_alloc<std::int64_t>(static_cast<std::int64_t>(off.size()),
                                           "cudaMalloc (stream slots)");
  d_slot_ids_ = device_alloc<std::int64_t>(max_batch_, "cudaMalloc (stream slots)");
  h_slot_ids_ = pinned_alloc<std::int64_t>(max_batch_, "cudaMallocHost (stream slots)");
  ev_slot_ids_ = ordering_event();
  check(cudaMemsetAsync(d_slots_.get(), 0, static_cast<std::size_t>(floats) * sizeof(float),
                        capture_.get()),
        "cudaMemsetAsync (stream slots)");
  check(cudaMemcpyAsync(d_slot_off_.get(), off.data(), off.size() * sizeof(std::int64_t),
                        cudaMemcpyHostToDevice, capture_.get()),
        "cudaMemcpyAsync (stream slots)");
  check(cudaStreamSynchronize(capture_.get()), "stream slots setup (cudaStreamSynchronize)");
  slot_pieces_ = static_cast<int>(pieces.size());
  max_slots_ = max_slots;
}

void Session::check_slot(std::int64_t slot) const {
  if (slot < 0 || slot >= max_slots_) {
    fail(SLSTM_ERR_INTERNAL, "unvalidated slot id " + std::to_string(slot) +
                                 " reached the CUDA module");
  }
}

void Session::slot_write(std::int64_t slot, const float* state, std::int32_t memory) {
  DeviceGuard guard(device_);
  check_slot(slot);
  settle_previous_call();
  float* dst = d_slots_.get() + slot * state_row_floats_;
  const std::size_t bytes = static_cast<std::size_t>(state_row_floats_) * sizeof(float);
  const bool host = memory == SLSTM_MEMORY_HOST;
  if (state == nullptr) {
    check(cudaMemsetAsync(dst, 0, bytes, main_), "cudaMemsetAsync (slot state)");
  } else {
    if (!host) check_device_pointer(state, "state");
    check(cudaMemcpyAsync(dst, state, bytes,
                          host ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToDevice, main_),
          "cudaMemcpyAsync (slot state)");
  }
  finish(host);
}

void Session::slot_read(std::int64_t slot, float* state, std::int32_t memory) {
  DeviceGuard guard(device_);
  check_slot(slot);
  settle_previous_call();
  const bool host = memory == SLSTM_MEMORY_HOST;
  if (!host) check_device_pointer(state, "state");
  check(cudaMemcpyAsync(state, d_slots_.get() + slot * state_row_floats_,
                        static_cast<std::size_t>(state_row_floats_) * sizeof(float),
                        host ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice, main_),
        "cudaMemcpyAsync (slot state)");
  finish(host);
}

void Session::forward_slots(const slstm_cuda_forward_desc& c, const std::int64_t* ids) {
  if (max_slots_ == 0 || ids == nullptr || c.initial_state != nullptr ||
      c.final_state != nullptr) {
    fail(SLSTM_ERR_INTERNAL, "forward_slots: bad request");
  }
  for (std::int64_t b = 0; b < c.batch; ++b) check_slot(ids[b]);
  run(c, ids);
}

// The call's slot ids to d_slot_ids_ through the pinned staging buffer (reused only after its
// previous copy has run, as the lengths' buffer is).
void Session::upload_slot_ids(const std::int64_t* ids, int batch) {
  if (slot_ids_pending_) {
    check(cudaEventSynchronize(ev_slot_ids_.get()), "cudaEventSynchronize");
    slot_ids_pending_ = false;
  }
  std::copy(ids, ids + batch, h_slot_ids_.get());
  check(cudaMemcpyAsync(d_slot_ids_.get(), h_slot_ids_.get(),
                        static_cast<std::size_t>(batch) * sizeof(std::int64_t),
                        cudaMemcpyHostToDevice, main_),
        "cudaMemcpyAsync (slot ids)");
  check(cudaEventRecord(ev_slot_ids_.get(), main_), "cudaEventRecord");
  slot_ids_pending_ = true;
}

void Session::copy_slots(int batch, bool to_packed) {
  check(launch_slot_copy(main_, d_slots_.get(), d_state_.get(), d_slot_ids_.get(),
                         d_slot_off_.get(), slot_pieces_, state_row_floats_, batch, to_packed),
        to_packed ? "slot_copy_kernel (gather)" : "slot_copy_kernel (scatter)");
}

}  // namespace slstm_cuda
