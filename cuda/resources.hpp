// RAII owners of the CUDA module's resources: device and pinned host memory, streams, events,
// cuBLAS handles, executable graphs, the scopes that make a device current, and a lease on a
// device's persisting L2 set-aside.
//
// An owner is move-only and releases what it holds when it goes (errors ignored: nothing
// useful can be done about a failed release, and a destructor must not throw). Everything is
// released on the device that is current then: the session makes its device current for its
// whole destruction (DeviceTeardown).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "check.hpp"

namespace slstm_cuda {

// One handle (a pointer or an opaque CUDA handle; null means none) and its release.
template <typename Handle, void (*Release)(Handle) noexcept>
class Owned {
 public:
  Owned() noexcept = default;
  explicit Owned(Handle h) noexcept : h_(h) {}
  Owned(Owned&& other) noexcept : h_(std::exchange(other.h_, Handle{})) {}
  Owned& operator=(Owned&& other) noexcept {
    if (this != &other) {
      reset();
      h_ = std::exchange(other.h_, Handle{});
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { reset(); }

  Handle get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != Handle{}; }
  void reset() noexcept {
    if (h_ != Handle{}) Release(std::exchange(h_, Handle{}));
  }

 private:
  Handle h_{};
};

namespace release {
inline void device_memory(void* p) noexcept { (void)cudaFree(p); }
inline void pinned_memory(void* p) noexcept { (void)cudaFreeHost(p); }
inline void stream(cudaStream_t s) noexcept { (void)cudaStreamDestroy(s); }
inline void event(cudaEvent_t e) noexcept { (void)cudaEventDestroy(e); }
inline void blas(cublasHandle_t h) noexcept { (void)cublasDestroy(h); }
inline void graph_exec(cudaGraphExec_t g) noexcept { (void)cudaGraphExecDestroy(g); }
}  // namespace release

using Stream = Owned<cudaStream_t, release::stream>;
using Event = Owned<cudaEvent_t, release::event>;
using BlasHandle = Owned<cublasHandle_t, release::blas>;
using GraphExec = Owned<cudaGraphExec_t, release::graph_exec>;

// Memory of T elements, device (cudaMalloc) or pinned host (cudaMallocHost).
template <typename T, void (*Release)(void*) noexcept>
class Memory {
 public:
  Memory() noexcept = default;
  explicit Memory(void* p) noexcept : p_(p) {}
  T* get() const noexcept { return static_cast<T*>(p_.get()); }
  explicit operator bool() const noexcept { return static_cast<bool>(p_); }

 private:
  Owned<void*, Release> p_;
};

template <typename T>
using DeviceBuffer = Memory<T, release::device_memory>;
template <typename T>
using PinnedBuffer = Memory<T, release::pinned_memory>;

// The memory a session allocates itself, in bytes (the plan's "memory": module_entry.cpp
// opens a TallyScope around a session's creation and its slots' allocation): device memory,
// of which cuBLAS workspaces, and pinned host memory. While a scope is open on a thread, the
// allocations below made on that thread add to its tally.
struct MemoryTally {
  std::int64_t device = 0;
  std::int64_t workspace = 0;  // (counted in device too)
  std::int64_t pinned = 0;
};
inline thread_local MemoryTally* t_tally = nullptr;

class TallyScope {
 public:
  explicit TallyScope(MemoryTally* tally) noexcept : outer_(std::exchange(t_tally, tally)) {}
  TallyScope(const TallyScope&) = delete;
  TallyScope& operator=(const TallyScope&) = delete;
  ~TallyScope() { t_tally = outer_; }

 private:
  MemoryTally* outer_;
};

// Device memory allocated (by cudaMalloc: what device_alloc and the generic path's own
// allocations call), a cuBLAS workspace among it, pinned memory: to the open tally if any.
inline void tally_device(std::int64_t bytes) noexcept {
  if (t_tally != nullptr) t_tally->device += bytes;
}
inline void tally_workspace(std::int64_t bytes) noexcept {
  if (t_tally != nullptr) t_tally->workspace += bytes;
}

// count elements of device memory (at least one), uninitialised.
template <typename T>
DeviceBuffer<T> device_alloc(std::int64_t count, const char* what) {
  void* p = nullptr;
  const std::int64_t bytes = mul(count < 1 ? 1 : count, static_cast<std::int64_t>(sizeof(T)), what);
  check(cudaMalloc(&p, static_cast<std::size_t>(bytes)), what);
  tally_device(bytes);
  return DeviceBuffer<T>(p);
}

// count elements of pinned host memory, uninitialised.
template <typename T>
PinnedBuffer<T> pinned_alloc(std::int64_t count, const char* what) {
  void* p = nullptr;
  check(cudaMallocHost(&p, static_cast<std::size_t>(count) * sizeof(T)), what);
  if (t_tally != nullptr) t_tally->pinned += count * static_cast<std::int64_t>(sizeof(T));
  return PinnedBuffer<T>(p);
}

// A stream that synchronises with the legacy default stream (cudaStreamCreate).
inline Stream blocking_stream() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreate(&s), "cudaStreamCreate");
  return Stream(s);
}

inline Stream non_blocking_stream() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return Stream(s);
}

// An event for ordering only (no timing).
inline Event ordering_event() {
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
  return Event(e);
}

inline BlasHandle blas_handle() {
  cublasHandle_t h = nullptr;
  check(cublasCreate(&h), "cublasCreate");
  return BlasHandle(h);
}

// Makes `device` current for the scope and restores the caller's current device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    check(cudaSetDevice(device), "cudaSetDevice");
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard() {
    if (previous_ >= 0) (void)cudaSetDevice(previous_);
  }

 private:
  int previous_ = -1;
};

// The device scope of an owner's destruction. Declared as the owner's first member (so
// destroyed last) and entered in the owner's destructor body: enter() makes the owner's
// device current and waits for the owner's stream; after every other member has released
// its resources on that device, the destructor restores the caller's current device and
// clears the runtime's last error. Never fails.
class DeviceTeardown {
 public:
  DeviceTeardown() noexcept = default;
  DeviceTeardown(const DeviceTeardown&) = delete;
  DeviceTeardown& operator=(const DeviceTeardown&) = delete;
  ~DeviceTeardown() {
    if (relaxed_) (void)cudaThreadExchangeStreamCaptureMode(&mode_);
    if (previous_ >= 0) (void)cudaSetDevice(previous_);
    (void)cudaGetLastError();
  }

  void enter(int device, cudaStream_t drain) noexcept {
    // The owner's members free memory (cudaFree, cudaFreeHost), "potentially unsafe" calls
    // that would invalidate a capture this thread (or, in the global mode, any thread) has
    // under way: in the relaxed mode they are allowed, so a session destroyed while its
    // caller captures leaves the capture alone.  The thread's mode is restored after.
    mode_ = cudaStreamCaptureModeRelaxed;
    relaxed_ = cudaThreadExchangeStreamCaptureMode(&mode_) == cudaSuccess;
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    const bool on_device = cudaSetDevice(device) == cudaSuccess;
    // A stream being captured is not synchronised (that would invalidate the caller's
    // capture); none of the owner's work is in it: calls under capture are refused.
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    if (on_device && drain != nullptr &&
        cudaStreamIsCapturing(drain, &capture) == cudaSuccess &&
        capture == cudaStreamCaptureStatusNone) {
      (void)cudaStreamSynchronize(drain);
    }
  }

 private:
  int previous_ = -1;
  bool relaxed_ = false;
  cudaStreamCaptureMode mode_ = cudaStreamCaptureModeRelaxed;  // the thread's, to restore
};

// A lease on the current device's persisting L2 set-aside (cudaLimitPersistingL2CacheSize:
// one per device, shared by the whole process). acquire() raises it to `want` where it is
// less and never lowers it; while leases on the device live it stays at least what each
// asked for. When the device's last lease ends, the set-aside goes back to what it was before
// the library raised it, unless something else changed it since (then it is left as it is).
// Released on the device that is current then: the owner's, under DeviceTeardown.
class SetAsideLease {
 public:
  SetAsideLease() noexcept = default;
  SetAsideLease(SetAsideLease&& other) noexcept
      : device_(std::exchange(other.device_, -1)), bytes_(std::exchange(other.bytes_, 0)) {}
  SetAsideLease& operator=(SetAsideLease&& other) noexcept {
    if (this != &other) {
      release();
      device_ = std::exchange(other.device_, -1);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  SetAsideLease(const SetAsideLease&) = delete;
  SetAsideLease& operator=(const SetAsideLease&) = delete;
  ~SetAsideLease() { release(); }

  // `device` is the current device. No lease (bytes() 0) where the device refuses the query
  // or the raise; the runtime's last error is cleared then.
  static SetAsideLease acquire(int device, std::size_t want) noexcept {
    Book& book = book_of_process();
    const std::lock_guard<std::mutex> lock(book.mu);
    std::size_t now = 0;
    if (cudaDeviceGetLimit(&now, cudaLimitPersistingL2CacheSize) != cudaSuccess) {
      (void)cudaGetLastError();
      return SetAsideLease();
    }
    Entry& e = book.devices[device];
    if (now < want) {
      if (cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, want) != cudaSuccess) {
        (void)cudaGetLastError();
        if (e.leases == 0) book.devices.erase(device);
        return SetAsideLease();
      }
      // What to give back: the value found, unless it is the one the library set last.
      if (e.leases == 0 || now != e.ours) e.found = now;
      e.ours = want;
      now = want;
    }
    ++e.leases;
    SetAsideLease lease;
    lease.device_ = device;
    lease.bytes_ = now;
    return lease;
  }

  std::size_t bytes() const noexcept { return bytes_; }

 private:
  struct Entry {
    std::size_t found = 0;  // the set-aside before the library raised it
    std::size_t ours = 0;   // what the library set it to last (0: it did not)
    int leases = 0;
  };
  struct Book {
    std::mutex mu;
    std::map<int, Entry> devices;
  };
  // Never destroyed: a lease that ends during the process's exit still finds it.
  static Book& book_of_process() {
    static Book* book = new Book;
    return *book;
  }

  void release() noexcept {
    if (device_ < 0) return;
    Book& book = book_of_process();
    const std::lock_guard<std::mutex> lock(book.mu);
    auto it = book.devices.find(device_);
    if (it != book.devices.end() && --it->second.leases == 0) {
      std::size_t now = 0;
      if (it->second.ours != 0 &&
          cudaDeviceGetLimit(&now, cudaLimitPersistingL2CacheSize) == cudaSuccess &&
          now == it->second.ours) {
        (void)cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, it->second.found);
      }
      (void)cudaGetLastError();
      book.devices.erase(it);
    }
    device_ = -1;
    bytes_ = 0;
  }

  int device_ = -1;
  std::size_t bytes_ = 0;
};

}  // namespace slstm_cuda
