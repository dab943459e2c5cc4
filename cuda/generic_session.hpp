// A CUDA session on the generic path (cuda.generic, generic_engine.hpp): the engine on a GPU
// device (generic_device.cu).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "backend_module_abi.h"

namespace slstm_cuda {

class GenericSession {
 public:
  // Selects and checks the device, creates the stream and cuBLAS handle, uploads the
  // weights and allocates every buffer (desc.generic must be 1).
  static std::unique_ptr<GenericSession> create(const slstm_cuda_session_desc& desc);
  virtual ~GenericSession() = default;
  virtual void forward(const slstm_cuda_forward_desc& call) = 0;
  virtual std::size_t num_layers() const = 0;
  // Why the session stopped recording CUDA graphs ("" while it records, or never did).
  virtual std::string graphs_failure() const = 0;
};

}  // namespace slstm_cuda
