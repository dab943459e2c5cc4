// The exception firewall of the C API: every entry point runs its body through guard(),
// which turns any C++ exception into a status code and the per-thread last-error text.
#pragma once

#include "../src/firewall.hpp"

namespace slstm::capi {

// Records `message` as this thread's last error (truncated to the buffer; never throws).
void set_error(const char* message) noexcept;

template <typename Body>
slstm_status guard(Body&& body) noexcept {
  return firewall(&set_error, body);
}

// Fails with SLSTM_ERR_INVALID_ARGUMENT naming `name` when `p` is NULL.
inline void require_non_null(const void* p, const char* name) {
  if (p == nullptr) fail(SLSTM_ERR_INVALID_ARGUMENT, std::string(name) + " is NULL");
}

}  // namespace slstm::capi
