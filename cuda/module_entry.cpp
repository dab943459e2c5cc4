// The module's side of src/backend_module_abi.h: the table of entry points and the one
// exported function, slstm_cuda_module_v3. Every entry point runs inside firewall(), which
// turns an exception into (status, message); nothing is thrown across the table.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "backend_module_abi.h"
#include "check.hpp"
#include "firewall.hpp"
#include "session.hpp"
#include "stacklstm/stacklstm.h"

#define SLSTM_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

namespace slstm_cuda {
namespace {

// No allocation: called while an exception is handled, in a noexcept function.
void write_message(char* msg, std::size_t size, const char* text) noexcept {
  if (msg == nullptr || size == 0) return;
  std::snprintf(msg, size, "%s", text);
}

template <typename Body>
std::int32_t firewall(char* msg, std::size_t size, Body&& body) noexcept {
  return slstm::firewall([&](const char* text) noexcept { write_message(msg, size, text); },
                         body);
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
    *out = Session::create(*desc).release();
  });
}

std::int32_t session_forward(void* session, const slstm_cuda_forward_desc* call, char* msg,
                             std::size_t size) {
  return firewall(msg, size, [&] {
    if (session == nullptr || call == nullptr) fail(SLSTM_ERR_INTERNAL, "session_forward: NULL");
    static_cast<Session*>(session)->forward(*call);
  });
}

std::int32_t session_layer_plan(void* session, std::int32_t layer, std::uint32_t* fused_batches,
                                std::uint32_t* persistent_batches, char* msg, std::size_t size) {
  return firewall(msg, size, [&] {
    if (session == nullptr || fused_batches == nullptr || persistent_batches == nullptr) {
      fail(SLSTM_ERR_INTERNAL, "session_layer_plan: NULL");
    }
    const Session& s = *static_cast<const Session*>(session);
    if (layer < 0 || static_cast<std::size_t>(layer) >= s.num_layers()) {
      fail(SLSTM_ERR_INTERNAL, "session_layer_plan: no layer " + std::to_string(layer));
    }
    *fused_batches = s.fused_batches(static_cast<std::size_t>(layer));
    *persistent_batches = s.persistent_batches(static_cast<std::size_t>(layer));
  });
}

std::int32_t session_slots_init(void* session, std::int64_t max_slots, char* msg,
                                std::size_t size) {
  return firewall(msg, size, [&] {
    if (session == nullptr) fail(SLSTM_ERR_INTERNAL, "session_slots_init: NULL");
    static_cast<Session*>(session)->init_slots(max_slots);
  });
}

std::int32_t session_slot_write(void* session, std::int64_t slot, const float* state,
                                std::int32_t memory, char* msg, std::size_t size) {
  return firewall(msg, size, [&] {
    if (session == nullptr) fail(SLSTM_ERR_INTERNAL, "session_slot_write: NULL");
    static_cast<Session*>(session)->slot_write(slot, state, memory);
  });
}

std::int32_t session_slot_read(void* session, std::int64_t slot, float* state,
                               std::int32_t memory, char* msg, std::size_t size) {
  return firewall(msg, size, [&] {
    if (session == nullptr || state == nullptr) fail(SLSTM_ERR_INTERNAL, "session_slot_read: NULL");
    static_cast<Session*>(session)->slot_read(slot, state, memory);
  });
}

std::int32_t session_slot_forward(void* session, const slstm_cuda_forward_desc* call,
                                  const std::int64_t* slot_ids, char* msg, std::size_t size) {
  return firewall(msg, size, [&] {
    if (session == nullptr || call == nullptr || slot_ids == nullptr) {
      fail(SLSTM_ERR_INTERNAL, "session_slot_forward: NULL");
    }
    static_cast<Session*>(session)->forward_slots(*call, slot_ids);
  });
}

std::int32_t session_live_plan(void* session, std::uint32_t* tuned_batches,
                               std::uint32_t* stack_batches, char* file_error,
                               std::size_t file_error_size, char* msg, std::size_t size) {
  return firewall(msg, size, [&] {
    if (session == nullptr || tuned_batches == nullptr || stack_batches == nullptr) {
      fail(SLSTM_ERR_INTERNAL, "session_live_plan: NULL");
    }
    const Session& s = *static_cast<const Session*>(session);
    *tuned_batches = s.tuned_batches();
    *stack_batches = s.stack_batches();
    write_message(file_error, file_error_size, s.tune_file_error().c_str());
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
    &session_forward, &session_destroy, &session_layer_plan, &session_slots_init,
    &session_slot_write, &session_slot_read, &session_slot_forward, &session_live_plan};

}  // namespace
}  // namespace slstm_cuda

SLSTM_CUDA_EXPORT const slstm_cuda_module_table* slstm_cuda_module_v3(void) {
  return &slstm_cuda::kTable;
}
