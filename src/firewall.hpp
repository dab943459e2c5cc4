// The exception firewall, shared by the C API (capi/) and the CUDA module's entry points
// (cuda/module_entry.cpp): runs a body and turns whatever it throws into a status plus a
// message handed to `report` (the C API records it as the thread's last error; the module
// writes it into the core's buffer).  Nothing is thrown across either boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <new>

#include "common.hpp"

namespace slstm {

// `report(const char*)` must not throw (it runs inside the handlers).
template <typename Report, typename Body>
slstm_status firewall(Report&& report, Body&& body) noexcept {
  try {
    body();
    return SLSTM_OK;
  } catch (const Error& e) {
    report(e.what());
    return e.status();
  } catch (const std::bad_alloc&) {
    report("out of memory");
    return SLSTM_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    report(e.what());
    return SLSTM_ERR_INTERNAL;
  } catch (...) {
    report("unknown internal error");
    return SLSTM_ERR_INTERNAL;
  }
}

// The backend modules' side (cuda/module_entry.cpp, tests/cuda_emu): the message goes into
// the core's buffer (truncated, NUL-terminated; nothing allocated).
inline void write_message(char* msg, std::size_t size, const char* text) noexcept {
  if (msg == nullptr || size == 0) return;
  std::snprintf(msg, size, "%s", text);
}

template <typename Body>
std::int32_t module_firewall(char* msg, std::size_t size, Body&& body) noexcept {
  return firewall([&](const char* text) noexcept { write_message(msg, size, text); }, body);
}

}  // namespace slstm
