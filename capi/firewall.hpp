// The exception firewall of the C API: every entry point runs its body through guard(),
// which turns any C++ exception into a status code and the per-thread last-error text.
#pragma once

#include <exception>
#include <new>

#include "../src/common.hpp"

namespace slstm::capi {

// Records `message` as this thread's last error (truncated to the buffer; never throws).
void set_error(const char* message) noexcept;

template <typename Body>
slstm_status guard(Body&& body) noexcept {
  try {
    body();
    return SLSTM_OK;
  } catch (const Error& e) {
    set_error(e.what());
    return e.status();
  } catch (const std::bad_alloc&) {
    set_error("out of memory");
    return SLSTM_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_error(e.what());
    return SLSTM_ERR_INTERNAL;
  } catch (...) {
    set_error("unknown internal error");
    return SLSTM_ERR_INTERNAL;
  }
}

// Fails with SLSTM_ERR_INVALID_ARGUMENT naming `name` when `p` is NULL.
inline void require_non_null(const void* p, const char* name) {
  if (p == nullptr) fail(SLSTM_ERR_INVALID_ARGUMENT, std::string(name) + " is NULL");
}

}  // namespace slstm::capi
