// What the FAKE CUDA runtime (fake_runtime.cpp) offers besides the CUDA API: for the host
// emulations of the module's kernels (fake_kernels.cpp), a way to queue work on a stream and
// to range-check the memory a kernel touches; for the test mains, proof that the module in
// use runs on this runtime. Not part of CUDA; nothing here exists on a real GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <cuda_runtime.h>

namespace cuda_fake {

// The fake device, as cudaDeviceGetAttribute reports it (an H100 SXM's numbers): its SMs,
// the shared memory one SM holds and the most one CTA may opt in to.
constexpr int kSmCount = 132;
constexpr std::size_t kSmemPerSm = 228 * 1024;
constexpr std::size_t kSmemPerCtaOptin = 227 * 1024;
// Its L2's persisting set-aside at most (cudaDevAttrMaxPersistingL2CacheSize: assumed 3/4 of
// a 50 MB L2, not an H100's reading) and the largest access policy window (assumed).
constexpr std::size_t kMaxPersistingL2 = 37'500'000;
constexpr std::size_t kMaxAccessPolicyWindow = 134'213'632;

// Queues `work` on `stream` (or records it into the stream's capture); it runs at a later
// sync point, in the order the stream, the events and the graphs allow. `name` shows in
// SLSTM_CUDA_FAKE_TRACE's output.
cudaError_t enqueue(cudaStream_t stream, const char* name, std::function<void()> work);

// Aborts the process (with `what` in the message) unless [p, p + bytes) lies inside one live
// device allocation (or pinned host allocation, with allow_pinned). Call it from the work
// itself, when the access happens.
void require_device(const void* p, std::size_t bytes, const char* what,
                    bool allow_pinned = false);

// The number of CUDA API calls this runtime has served (in this process), and the seed of
// its execution order ($SLSTM_CUDA_FAKE_SEED, 1 when unset).
std::uint64_t api_calls();
std::uint64_t seed();
// The number of calls that may make the host wait for the device: stream, event and device
// synchronisations, synchronous copies, cudaFree / cudaFreeHost, and asynchronous copies
// from or to pageable host memory (which the driver stages through pinned memory and which
// "might be synchronous with respect to host", the CUDA runtime's API synchronisation notes).
std::uint64_t host_waits();

// Fault injection, for the tests of the module's error paths: the next call of `api` whose
// pointer argument is `match` (nullptr: any) returns `error` and does nothing. The calls
// that can fail so, with their pointer argument: "cudaMemcpyAsync" and "cudaMemcpy2DAsync"
// (the source), "cudaMemsetAsync" (the memory), "cudaEventRecord", "cudaStreamWaitEvent",
// "cudaEventSynchronize" (the event), "cudaStreamSynchronize", "cudaStreamBeginCapture",
// "cudaStreamEndCapture" (which ends the capture all the same, with no graph),
// "cudaGraphLaunch" (the stream), "cudaGraphInstantiate" (the graph), "kernel launch" (any
// fake kernel's), "sgemm", "gemmex fp16", "gemmex bf16" (cuBLAS: CUBLAS_STATUS_EXECUTION_
// FAILED; C), "cudaMalloc", "cudaMallocHost" (cudaErrorMemoryAllocation), and
// "lstm_persistent_kernel", "lstm_cluster_kernel" (the fake persistent kernel's launch or
// its cluster tier's, refused). A fault in an operation on a stream under capture also
// invalidates the capture, as on a GPU. One call per injected fault.
void inject_fault(const char* api, cudaError_t error, const void* match = nullptr);
// The n-th of those calls from now on (n >= 1), whichever it is, fails with `error` (or the
// call's own error, as above); nth_fault_api() names the call it failed ("" until then).
void inject_nth_fault(int n, cudaError_t error);
std::string nth_fault_api();
// Drops every fault no call took (inject_nth_fault's too) and says how many there were.
int clear_faults();
// (Also faulty: "cudaStreamCreate", "cudaEventCreate" and "cublasCreate": CUBLAS_STATUS_
// ALLOC_FAILED.)

// What is made and not yet freed or destroyed: for the tests that nothing leaks.
struct Resources {
  long device_allocations = 0, pinned_allocations = 0, streams = 0, events = 0, graphs = 0,
       graph_execs = 0, cublas_handles = 0;
  long long device_bytes = 0, pinned_bytes = 0;  // the live allocations' sizes
  bool operator==(const Resources& o) const {
    return device_allocations == o.device_allocations &&
           pinned_allocations == o.pinned_allocations && device_bytes == o.device_bytes &&
           pinned_bytes == o.pinned_bytes && streams == o.streams &&
           events == o.events && graphs == o.graphs && graph_execs == o.graph_execs &&
           cublas_handles == o.cublas_handles;
  }
  std::string text() const;
};
Resources live_resources();
// The L2 access policy windows the fake persistent kernel's launches carried (in order), and
// the persisting set-aside (cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize); 0 at start).
struct L2WindowSeen {
  const void* base = nullptr;
  std::size_t bytes = 0;
  float hit_ratio = 0.0f;
};
void note_l2_window(const void* base, std::size_t bytes, float hit_ratio);
std::vector<L2WindowSeen> l2_windows();
void clear_l2_windows();

// (For the runtime and the fake kernels: the error of a fault injected for this call of
// `api` with pointer argument `ptr`, used up; cudaSuccess when there is none.)
cudaError_t take_fault(const char* api, const void* ptr);

}  // namespace cuda_fake
