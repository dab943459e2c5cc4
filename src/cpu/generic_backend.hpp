// The CPU fast path for stacks beyond BasicLSTMCell (src/cpu/generic_backend.cpp).
#pragma once

#include <memory>

#include "../backend.hpp"

namespace slstm {

// Throws SLSTM_ERR_OUT_OF_MEMORY when the workspace cannot be allocated.
std::unique_ptr<Backend> make_cpu_generic_backend(ModelPtr model, const SessionConfig& config);

}  // namespace slstm
