// The CUDA backend as seen from the core library. The core never includes a CUDA header:
// the CUDA backend lives in cuda/ and is reached only through these two functions.
#pragma once

#include <memory>

#include "backend.hpp"

namespace slstm {

// Throws SLSTM_ERR_BACKEND_UNAVAILABLE with the reason unless the CUDA backend can run here.
void require_cuda_backend();

std::unique_ptr<Backend> make_cuda_backend(ModelPtr model, const SessionConfig& config);

}  // namespace slstm
