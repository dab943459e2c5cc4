// 64-byte aligned float storage for the CPU fast path's packed weights and workspaces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../common.hpp"

namespace slstm::cpu {

struct AlignedFree {
  std::size_t align = 64;
  std::size_t bytes = 0;  // what was allocated (the plan's host_memory_bytes)
  void operator()(float* p) const { ::operator delete[](p, std::align_val_t(align)); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;

// 64-byte aligned floats, zeroed unless `zero` is false (scratch that is written before read).
inline Buffer allocate(std::size_t n, bool zero = true) {
  if (n == 0) n = 1;
  const std::size_t bytes = mul_size(n, sizeof(float), "CPU fast-path workspace");
  auto* p = static_cast<float*>(::operator new[](bytes, std::align_val_t(64)));
  if (zero) std::memset(p, 0, bytes);
  return Buffer(p, AlignedFree{64, bytes});
}

constexpr std::size_t kHugePage = std::size_t{2} << 20;

// Like allocate(), for a large buffer streamed whole again and again (packed weights): from
// 4 MiB on it is aligned to 2 MiB and the kernel is asked for transparent huge pages
// (madvise; a hint, nothing fails without them), which saves a TLB walk per 4 KiB.
inline Buffer allocate_streamed(std::size_t n) {
  if (n == 0) n = 1;
  const std::size_t bytes = mul_size(n, sizeof(float), "CPU fast-path weights");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes >= 2 * kHugePage) {
    const std::size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    auto* p = static_cast<float*>(::operator new[](rounded, std::align_val_t(kHugePage)));
    (void)madvise(p, rounded, MADV_HUGEPAGE);
    std::memset(p, 0, rounded);
    return Buffer(p, AlignedFree{kHugePage, rounded});
  }
#endif
  return allocate(n);
}

}  // namespace slstm::cpu

namespace slstm {

// The bytes a buffer holds (0 for none), for host_memory_bytes (as backend.hpp's for vectors).
inline std::int64_t held_bytes(const cpu::Buffer& b) {
  return b ? static_cast<std::int64_t>(b.get_deleter().bytes) : 0;
}

}  // namespace slstm
