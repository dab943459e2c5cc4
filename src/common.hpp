// Internal helpers shared by src/, capi/ and cuda/: the error type that carries a status and
// a message to the C API's firewall, allocation failures as that error, and overflow-checked
// size arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "stacklstm/stacklstm.h"

namespace slstm {

// Thrown inside the library; converted to (status, last-error text) at the C boundary.
class Error : public std::runtime_error {
 public:
  Error(slstm_status status, std::string message)
      : std::runtime_error(std::move(message)), status_(status) {}
  slstm_status status() const noexcept { return status_; }

 private:
  slstm_status status_;
};

[[noreturn]] inline void fail(slstm_status status, std::string message) {
  throw Error(status, std::move(message));
}

// For the `catch (...)` around a block that allocates: an allocation that failed
// (std::bad_alloc, or the std::length_error of a container asked for more than it can hold)
// becomes SLSTM_ERR_OUT_OF_MEMORY with `message`; anything else is rethrown as it was.
[[noreturn]] inline void rethrow_as_out_of_memory(const std::string& message) {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    fail(SLSTM_ERR_OUT_OF_MEMORY, message);
  } catch (const std::length_error&) {
    fail(SLSTM_ERR_OUT_OF_MEMORY, message);
  }
}

// a * b as size_t, or SLSTM_ERR_SIZE_OVERFLOW naming `what`. Both operands must be >= 0.
inline std::size_t mul_size(std::size_t a, std::size_t b, const char* what) {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a) {
    fail(SLSTM_ERR_SIZE_OVERFLOW, std::string(what) + ": size overflows size_t");
  }
  return a * b;
}

inline std::size_t add_size(std::size_t a, std::size_t b, const char* what) {
  if (b > std::numeric_limits<std::size_t>::max() - a) {
    fail(SLSTM_ERR_SIZE_OVERFLOW, std::string(what) + ": size overflows size_t");
  }
  return a + b;
}

// Product of non-negative int64 extents as size_t, checked.
inline std::size_t product(std::initializer_list<std::int64_t> dims, const char* what) {
  std::size_t n = 1;
  for (std::int64_t d : dims) {
    if (d < 0) fail(SLSTM_ERR_INVALID_ARGUMENT, std::string(what) + ": negative extent");
    if (static_cast<std::uint64_t>(d) > std::numeric_limits<std::size_t>::max()) {
      fail(SLSTM_ERR_SIZE_OVERFLOW, std::string(what) + ": size overflows size_t");
    }
    n = mul_size(n, static_cast<std::size_t>(d), what);
  }
  return n;
}

}  // namespace slstm
