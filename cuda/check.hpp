// Errors inside the CUDA module. A failure is an slstm::Error (src/common.hpp, the core's own
// error type: a status and a message), thrown anywhere in the module and turned back into
// (status, message) by the firewall of module_entry.cpp; nothing is thrown across the table.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <string>

#include "common.hpp"
#include "stacklstm/stacklstm.h"

namespace slstm_cuda {

using slstm::fail;

// Throws for a failed CUDA runtime call: SLSTM_ERR_OUT_OF_MEMORY for an allocation,
// SLSTM_ERR_BACKEND_FAILURE otherwise, with `what` and the runtime's name and text.
inline void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  // Clear the runtime's last error, so that a later call's launch check does not report this
  // one again (sticky errors, which break the context, stay whatever we do).
  (void)cudaGetLastError();
  const slstm_status status =
      e == cudaErrorMemoryAllocation ? SLSTM_ERR_OUT_OF_MEMORY : SLSTM_ERR_BACKEND_FAILURE;
  fail(status, std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

// A failure that a persistent kernel may be the cause of: its own launch refused (too many
// CTAs to be resident at once, too much shared memory), or the capture, instantiation or
// launch of a graph that may hold it. Session::run turns the kernel off and runs the call
// again on such a failure; any other failure is the call's own, reported as it is.
class LaunchRefused : public slstm::Error {
 public:
  using slstm::Error::Error;
};

// check(), throwing LaunchRefused.
inline void check_launch(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  try {
    check(e, what);
  } catch (const slstm::Error& x) {
    throw LaunchRefused(x.status(), x.what());
  }
}

// The same for a cuBLAS call.
inline void check(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  const slstm_status status =
      s == CUBLAS_STATUS_ALLOC_FAILED ? SLSTM_ERR_OUT_OF_MEMORY : SLSTM_ERR_BACKEND_FAILURE;
  fail(status, std::string(what) + ": " + cublasGetStatusName(s) + ": " + cublasGetStatusString(s));
}

// a * b for non-negative sizes, or SLSTM_ERR_SIZE_OVERFLOW naming `what`.
inline std::int64_t mul(std::int64_t a, std::int64_t b, const char* what) {
  if (a < 0 || b < 0 || (a != 0 && b > std::numeric_limits<std::int64_t>::max() / a)) {
    fail(SLSTM_ERR_SIZE_OVERFLOW, std::string(what) + ": size overflows int64");
  }
  return a * b;
}

// v as the int that CUDA launches and cuBLAS take, or SLSTM_ERR_UNSUPPORTED naming `what`.
inline int to_int(std::int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<int>::max()) {
    fail(SLSTM_ERR_UNSUPPORTED, std::string(what) + " = " + std::to_string(v) +
                                    " exceeds what the CUDA backend supports (2^31 - 1)");
  }
  return static_cast<int>(v);
}

inline std::int64_t round_up4(std::int64_t v) { return (v + 3) / 4 * 4; }

// SLSTM_MEMORY_DEVICE: p (null passes) must be device (or managed) memory of `device`, else
// SLSTM_ERR_INVALID_ARGUMENT naming `name`.
inline void check_device_memory(const void* p, const char* name, int device) {
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
  if (attr.device != device) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         std::string(name) + ": device memory of device " + std::to_string(attr.device) +
             ", but the session runs on device " + std::to_string(device));
  }
}

}  // namespace slstm_cuda
