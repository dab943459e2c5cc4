// The CPU fast path (issue 6; src/cpu/fast_backend.cpp): packed weights, register-blocked
// kernels per ISA with the cell math fused in, and a persistent worker pool.  Built only
// when a BLAS was found (SLSTM_HAVE_CPU_FAST).
#pragma once

#include <memory>

#include "../backend.hpp"

namespace slstm {

// Throws SLSTM_ERR_OUT_OF_MEMORY when the workspace or the worker threads cannot be made.
std::unique_ptr<Backend> make_cpu_fast_backend(ModelPtr model, const SessionConfig& config);

}  // namespace slstm
