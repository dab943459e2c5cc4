// Versioned option/argument structs (include/stacklstm/stacklstm.h, "ABI").
//
// Each such struct starts with `uint32_t struct_size`, the sizeof the CALLER's header gave it,
// and only ever grows by appending fields whose default is 0.  The library:
//   - initialises exactly the caller's size (init_sized): defaults for the fields it knows
//     that fit, zeros for the rest, and never a byte past `size`;
//   - reads a caller's struct (read_versioned) of any size from the first published one (v1)
//     up to its own, taking only the bytes the caller's size covers (fields appended later
//     keep their defaults), and a larger one (a caller built against a newer header) only
//     when every byte it does not know is zero (Linux's copy_struct_from_user rule).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "../src/common.hpp"

namespace slstm::capi {

// The largest struct_size taken at face value: a bigger one is a caller's bug (a garbage
// struct_size), not a newer header, and its tail is not scanned.
constexpr std::size_t kMaxStructSize = 4096;

// The size of a struct as first published: the end of its last v1 field (tail padding may
// or may not follow, depending on the caller's compiler; both are accepted).
#define SLSTM_V1_SIZE(type, last_field) (offsetof(type, last_field) + sizeof(((type*)0)->last_field))

// Writes `size` bytes at p: T's defaults (from `defaults`) where they fit, zeros beyond
// sizeof(T); struct_size = size.  A size too small to hold struct_size, or implausibly large,
// writes nothing (the struct is then rejected when used).
template <typename T>
void init_sized(void* p, std::size_t size, const T& defaults) {
  if (p == nullptr || size < sizeof(std::uint32_t) || size > kMaxStructSize) return;
  T local = defaults;
  local.struct_size = static_cast<std::uint32_t>(size);
  const std::size_t known = size < sizeof(T) ? size : sizeof(T);
  std::memcpy(p, &local, known);
  if (size > known) std::memset(static_cast<unsigned char*>(p) + known, 0, size - known);
}

// The caller's struct as this library's T: `defaults` overlaid with the bytes the caller's
// struct_size covers.  Fails with SLSTM_ERR_INVALID_ARGUMENT below the v1 size (or above
// kMaxStructSize) and SLSTM_ERR_UNSUPPORTED for a non-zero byte past sizeof(T).
template <typename T>
T read_versioned(const T* given, std::size_t v1_size, const char* name, const T& defaults) {
  const std::uint32_t size = given->struct_size;
  if (size < v1_size || size > kMaxStructSize) {
    fail(SLSTM_ERR_INVALID_ARGUMENT,
         std::string(name) + "->struct_size is " + std::to_string(size) + ", expected " +
             std::to_string(sizeof(T)) + " (at least " + std::to_string(v1_size) +
             "; initialise the struct with its _init function)");
  }
  if (size > sizeof(T)) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(given);
    for (std::size_t k = sizeof(T); k < size; ++k) {
      if (bytes[k] != 0) {
        fail(SLSTM_ERR_UNSUPPORTED,
             std::string(name) + "->struct_size is " + std::to_string(size) +
                 " and byte " + std::to_string(k) +
                 " is set: the caller was built against a newer libstacklstm than this " +
                 SLSTM_VERSION_STRING + " and uses a field it does not know");
      }
    }
  }
  T local = defaults;
  std::memcpy(&local, given, size < sizeof(T) ? size : sizeof(T));
  local.struct_size = static_cast<std::uint32_t>(sizeof(T));
  return local;
}

}  // namespace slstm::capi
