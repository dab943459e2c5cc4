// The module's side of src/backend_module_abi.h: the table of entry points and the one
// exported function, slstm_cuda_module_v7. Every entry point runs inside firewall(), which
// turns an exception into (status, message); nothing is thrown across the table.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "backend_module_abi.h"
#include "check.hpp"
#include "firewall.hpp"
#include "generic_session.hpp"
#include "session.hpp"
#include "stacklstm/stacklstm.h"

#define SLSTM_CUDA_EXPORT extern "C" __attribute__((visibility("default")))

namespace slstm_cuda {
namespace {

using slstm::module_firewall;  // exceptions -> (status, message in the core's buffer)
using slstm::write_message;

// A session as the core holds it: the basic path's or the generic path's (desc.generic).
struct Handle {
  std::unique_ptr<Session> basic;
  std::unique_ptr<GenericSession> generic;
  cudaStream_t caller_stream = nullptr;  // desc.cuda_stream
  MemoryTally memory;  // what its creation and its slots allocated (session_memory)
};

Handle& handle(void* session) { return *static_cast<Handle*>(session); }

// A call cannot be captured into the caller's CUDA graph (either path synchronises, and
// replays graphs of its own): refused before anything is enqueued, the capture left intact.
void refuse_capture(const Handle& h) {
  if (h.caller_stream == nullptr) return;  // the session's own stream: nobody captures it
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  const cudaError_t e = cudaStreamIsCapturing(h.caller_stream, &capturing);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    fail(SLSTM_ERR_BACKEND_FAILURE, std::string("cudaStreamIsCapturing (cuda_stream): ") +
                                        cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
  }
  if (capturing != cudaStreamCaptureStatusNone) {
    fail(SLSTM_ERR_UNSUPPORTED,
         "cuda_stream: the session's stream is being captured into a CUDA graph; a call "
         "cannot be captured (it synchronises and replays graphs of its own): make the call "
         "outside the capture");
  }
}

// The basic path's session, for the entry points only it has (stream slots: the core keeps
// the generic path's slots in host memory and never calls these for it).
Session& basic_session(void* session, const char* entry) {
  Handle& h = handle(session);
  if (!h.basic) fail(SLSTM_ERR_INTERNAL, std::string(entry) + ": not on the generic path");
  return *h.basic;
}

std::int32_t probe(char* msg, std::size_t size) {
  return module_firewall(msg, size, [&] {
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
  return module_firewall(msg, size, [&] {
    if (desc == nullptr || out == nullptr) fail(SLSTM_ERR_INTERNAL, "session_create: NULL");
    auto h = std::make_unique<Handle>();
    h->caller_stream = static_cast<cudaStream_t>(desc->cuda_stream);
    const TallyScope tally(&h->memory);
    if (desc->generic != 0) {
      h->generic = GenericSession::create(*desc);
    } else {
      h->basic = Session::create(*desc);
    }
    *out = h.release();
  });
}

std::int32_t session_forward(void* session, const slstm_cuda_forward_desc* call, char* msg,
                             std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr || call == nullptr) fail(SLSTM_ERR_INTERNAL, "session_forward: NULL");
    Handle& h = handle(session);
    refuse_capture(h);
    if (h.generic) {
      h.generic->forward(*call);
    } else {
      h.basic->forward(*call);
    }
  });
}

std::int32_t session_layer_plan(void* session, std::int32_t layer, std::uint32_t* fused_batches,
                                std::uint32_t* persistent_batches, char* msg, std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr || fused_batches == nullptr || persistent_batches == nullptr) {
      fail(SLSTM_ERR_INTERNAL, "session_layer_plan: NULL");
    }
    const Handle& h = handle(session);
    const std::size_t layers = h.generic ? h.generic->num_layers() : h.basic->num_layers();
    if (layer < 0 || static_cast<std::size_t>(layer) >= layers) {
      fail(SLSTM_ERR_INTERNAL, "session_layer_plan: no layer " + std::to_string(layer));
    }
    *fused_batches = 0;  // the generic path: cuBLAS GEMMs and pointwise kernels
    *persistent_batches = 0;
    if (h.generic) return;
    *fused_batches = h.basic->fused_batches(static_cast<std::size_t>(layer));
    *persistent_batches = h.basic->persistent_batches(static_cast<std::size_t>(layer));
  });
}

std::int32_t session_layer_cluster(void* session, std::int32_t layer,
                                   std::uint32_t* cluster_batches, std::int32_t* cluster_ctas,
                                   char* msg, std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr || cluster_batches == nullptr || cluster_ctas == nullptr) {
      fail(SLSTM_ERR_INTERNAL, "session_layer_cluster: NULL");
    }
    const Handle& h = handle(session);
    const std::size_t layers = h.generic ? h.generic->num_layers() : h.basic->num_layers();
    if (layer < 0 || static_cast<std::size_t>(layer) >= layers) {
      fail(SLSTM_ERR_INTERNAL, "session_layer_cluster: no layer " + std::to_string(layer));
    }
    *cluster_batches = 0;  // the generic path: no persistent kernel
    *cluster_ctas = 0;
    if (h.generic) return;
    *cluster_batches = h.basic->cluster_batches(static_cast<std::size_t>(layer));
    *cluster_ctas = h.basic->cluster_ctas(static_cast<std::size_t>(layer));
  });
}

std::int32_t session_layer_hybrid(void* session, std::int32_t layer,
                                  std::uint32_t* hybrid_batches, std::int32_t* resident,
                                  std::int64_t* l2_window_bytes, char* msg, std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr || hybrid_batches == nullptr || resident == nullptr ||
        l2_window_bytes == nullptr) {
      fail(SLSTM_ERR_INTERNAL, "session_layer_hybrid: NULL");
    }
    const Handle& h = handle(session);
    const std::size_t layers = h.generic ? h.generic->num_layers() : h.basic->num_layers();
    if (layer < 0 || static_cast<std::size_t>(layer) >= layers) {
      fail(SLSTM_ERR_INTERNAL, "session_layer_hybrid: no layer " + std::to_string(layer));
    }
    *hybrid_batches = 0;  // the generic path: no persistent kernel
    *resident = 0;
    *l2_window_bytes = 0;
    if (h.generic) return;
    const auto l = static_cast<std::size_t>(layer);
    *hybrid_batches = h.basic->hybrid_batches(l);
    *resident = h.basic->hybrid_resident(l);
    *l2_window_bytes = static_cast<std::int64_t>(h.basic->l2_window_bytes(l));
  });
}

std::int32_t session_slots_init(void* session, std::int64_t max_slots, char* msg,
                                std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr) fail(SLSTM_ERR_INTERNAL, "session_slots_init: NULL");
    const TallyScope tally(&handle(session).memory);
    basic_session(session, "session_slots_init").init_slots(max_slots);
  });
}

std::int32_t session_slot_write(void* session, std::int64_t slot, const float* state,
                                std::int32_t memory, char* msg, std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr) fail(SLSTM_ERR_INTERNAL, "session_slot_write: NULL");
    refuse_capture(handle(session));
    basic_session(session, "session_slot_write").slot_write(slot, state, memory);
  });
}

std::int32_t session_slot_read(void* session, std::int64_t slot, float* state,
                               std::int32_t memory, char* msg, std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr || state == nullptr) fail(SLSTM_ERR_INTERNAL, "session_slot_read: NULL");
    refuse_capture(handle(session));
    basic_session(session, "session_slot_read").slot_read(slot, state, memory);
  });
}

std::int32_t session_slot_forward(void* session, const slstm_cuda_forward_desc* call,
                                  const std::int64_t* slot_ids, char* msg, std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr || call == nullptr || slot_ids == nullptr) {
      fail(SLSTM_ERR_INTERNAL, "session_slot_forward: NULL");
    }
    refuse_capture(handle(session));
    basic_session(session, "session_slot_forward").forward_slots(*call, slot_ids);
  });
}

std::int32_t session_live_plan(void* session, std::uint32_t* tuned_batches,
                               std::uint32_t* stack_batches, char* file_error,
                               std::size_t file_error_size, char* msg, std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr || tuned_batches == nullptr || stack_batches == nullptr) {
      fail(SLSTM_ERR_INTERNAL, "session_live_plan: NULL");
    }
    const Handle& h = handle(session);
    *tuned_batches = 0;
    *stack_batches = 0;
    write_message(file_error, file_error_size, "");
    if (h.generic) return;
    *tuned_batches = h.basic->tuned_batches();
    *stack_batches = h.basic->stack_batches();
    write_message(file_error, file_error_size, h.basic->tune_file_error().c_str());
  });
}

std::int32_t session_graphs_failure(void* session, char* why, std::size_t why_size, char* msg,
                                    std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr) fail(SLSTM_ERR_INTERNAL, "session_graphs_failure: NULL");
    const Handle& h = handle(session);
    write_message(why, why_size, h.generic ? h.generic->graphs_failure().c_str() : "");
  });
}

std::int32_t session_memory(void* session, std::int64_t* device_bytes,
                            std::int64_t* workspace_bytes, std::int64_t* pinned_bytes, char* msg,
                            std::size_t size) {
  return module_firewall(msg, size, [&] {
    if (session == nullptr || device_bytes == nullptr || workspace_bytes == nullptr ||
        pinned_bytes == nullptr) {
      fail(SLSTM_ERR_INTERNAL, "session_memory: NULL");
    }
    const MemoryTally& m = handle(session).memory;
    *device_bytes = m.device;
    *workspace_bytes = m.workspace;
    *pinned_bytes = m.pinned;
  });
}

void session_destroy(void* session) {
  try {
    delete static_cast<Handle*>(session);
  } catch (...) {
  }
}

const slstm_cuda_module_table kTable = {
    sizeof(slstm_cuda_module_table), SLSTM_CUDA_MODULE_ABI_VERSION, &probe, &session_create,
    &session_forward, &session_destroy, &session_layer_plan, &session_slots_init,
    &session_slot_write, &session_slot_read, &session_slot_forward, &session_live_plan,
    &session_graphs_failure, &session_memory, &session_layer_cluster,
    &session_layer_hybrid};

}  // namespace
}  // namespace slstm_cuda

SLSTM_CUDA_EXPORT const slstm_cuda_module_table* slstm_cuda_module_v7(void) {
  return &slstm_cuda::kTable;
}
