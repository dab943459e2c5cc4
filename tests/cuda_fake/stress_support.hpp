// Helpers of the fake runtime's stress tests (test_async.cpp, test_async_slots.cpp): a
// buffer of floats in (fake) device memory, a hash for the tests' random choices, and the
// number of calls each test makes ($SLSTM_CUDA_FAKE_CALLS; run.sh raises it, ctest does not).
#pragma once

#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace cuda_fake_test {

class DeviceFloats {
 public:
  explicit DeviceFloats(std::size_t count) : count_(count) {
    if (count_ > 0) {
      REQUIRE(cudaMalloc(reinterpret_cast<void**>(&ptr_), count_ * sizeof(float)) ==
              cudaSuccess);
    }
  }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  ~DeviceFloats() { (void)cudaFree(ptr_); }

  float* get() const { return ptr_; }
  // Synchronous copies (cudaMemcpy: everything queued runs first).
  void upload(const std::vector<float>& v) {
    REQUIRE(v.size() == count_);
    if (count_ > 0) {
      REQUIRE(cudaMemcpy(ptr_, v.data(), count_ * sizeof(float), cudaMemcpyHostToDevice) ==
              cudaSuccess);
    }
  }
  std::vector<float> download() const {
    std::vector<float> v(count_);
    if (count_ > 0) {
      REQUIRE(cudaMemcpy(v.data(), ptr_, count_ * sizeof(float), cudaMemcpyDeviceToHost) ==
              cudaSuccess);
    }
    return v;
  }

 private:
  std::size_t count_;
  float* ptr_ = nullptr;
};

// splitmix64's finalizer.
inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// $SLSTM_CUDA_FAKE_CALLS when set (at least 1), else `fallback`.
inline int calls_per_run(int fallback) {
  const char* s = std::getenv("SLSTM_CUDA_FAKE_CALLS");
  const long n = s != nullptr ? std::strtol(s, nullptr, 10) : 0;
  return n >= 1 ? static_cast<int>(n) : fallback;
}

}  // namespace cuda_fake_test
