// Status strings, the per-thread last-error text and the version queries.
#include <cstdio>
#include <cstring>

#include "firewall.hpp"

namespace {
// A fixed buffer: recording an error never allocates and so never fails.
thread_local char t_last_error[1024] = "";
}  // namespace

namespace slstm::capi {
void set_error(const char* message) noexcept {
  std::snprintf(t_last_error, sizeof t_last_error, "%s", message ? message : "");
}
}  // namespace slstm::capi

extern "C" {

SLSTM_API const char* slstm_status_string(slstm_status status) {
  switch (status) {
    case SLSTM_OK: return "ok";
    case SLSTM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case SLSTM_ERR_SHAPE_MISMATCH: return "shape mismatch";
    case SLSTM_ERR_OUT_OF_RANGE: return "value out of range";
    case SLSTM_ERR_SIZE_OVERFLOW: return "size overflow";
    case SLSTM_ERR_OUT_OF_MEMORY: return "out of memory";
    case SLSTM_ERR_BACKEND_UNAVAILABLE: return "backend unavailable";
    case SLSTM_ERR_UNSUPPORTED: return "unsupported";
    case SLSTM_ERR_BACKEND_FAILURE: return "backend failure";
    case SLSTM_ERR_ALIASING: return "overlapping buffers";
    case SLSTM_ERR_INTERNAL: return "internal error";
    case SLSTM_ERR_BUSY: return "session busy";
    case SLSTM_ERR_SLOTS_FULL: return "no free stream slot";
  }
  return "unknown status";
}

SLSTM_API const char* slstm_last_error(void) { return t_last_error; }

SLSTM_API size_t slstm_last_error_copy(char* buf, size_t size) {
  const size_t n = std::strlen(t_last_error);
  if (buf != nullptr && size > 0) {
    const size_t k = n < size - 1 ? n : size - 1;
    std::memcpy(buf, t_last_error, k);
    buf[k] = '\0';
  }
  return n;
}

SLSTM_API uint32_t slstm_version_number(void) { return SLSTM_VERSION_NUMBER; }

SLSTM_API const char* slstm_version_string(void) { return SLSTM_VERSION_STRING; }

}  // extern "C"
