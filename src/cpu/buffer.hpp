// 64-byte aligned float storage for the CPU fast path's packed weights and workspaces.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>

#include "../common.hpp"

namespace slstm::cpu {

struct AlignedFree {
  void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;

// 64-byte aligned floats, zeroed unless `zero` is false (scratch that is written before read).
inline Buffer allocate(std::size_t n, bool zero = true) {
  if (n == 0) n = 1;
  const std::size_t bytes = mul_size(n, sizeof(float), "CPU fast-path workspace");
  auto* p = static_cast<float*>(::operator new[](bytes, std::align_val_t(64)));
  if (zero) std::memset(p, 0, bytes);
  return Buffer(p);
}

}  // namespace slstm::cpu
