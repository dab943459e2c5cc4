// A thread-level simulator of CUDA device code on the host (tests/cuda_sim): the kernels'
// OWN source (cuda/kernels.cu, cuda/persistent.cu) compiled as C++ and run with real CUDA
// semantics where they decide correctness, on a machine without a GPU.
//
//   * every CUDA thread is a fiber (its own stack); the threads of one block share one host
//     thread, every block of a launch runs on its own host thread at the same time (so the
//     persistent kernel's CTAs really are co-resident and really wait for one another);
//   * __syncthreads / __syncwarp are barriers over the block's / warp's threads that have
//     not exited; __shfl_xor_sync exchanges values between the 32 lanes of a warp;
//   * __shared__ variables are per block (thread_local of the block's host thread), the
//     dynamic shared memory is per block and filled with NaN before the block starts (a read
//     before a write shows up in the results);
//   * cuda::atomic_ref loads and stores are host atomics with the asked order, and a load
//     lets the block's other threads run (a spin-wait cannot starve the thread it waits for);
//     a block whose threads only poll sleeps until some atomic store happens (or 1 ms);
//   * thread-block clusters (sm_90): a cluster's blocks run at once, each can address the
//     others' dynamic shared memory (distributed shared memory), and the cluster barrier waits
//     for every thread of the cluster that has not exited.
//
// Misuse the hardware leaves undefined is reported as the launch's error instead: threads of
// a block at two different __syncthreads at once, a shuffle or __syncwarp with a lane missing,
// threads of a block at a cluster barrier and at a __syncthreads or __syncwarp at once, a
// peer address outside dynamic shared memory or of a rank outside the cluster.
// Not simulated: timing, memory coherence weaker than the host's (x86: TSO), L1/L2 caches,
// occupancy limits (a launch gets every block at once unless `resident` says otherwise),
// warp-level lockstep beyond the barriers above, a block that exits while its cluster's
// peers may still use its shared memory (a device needs a cluster barrier first). Results
// are the host's float arithmetic: the same operations in the same order as on the GPU, so
// bit-for-bit comparisons between two kernels hold here as they do there, but not bits
// against a GPU run.
#pragma once

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#define SLSTM_CUDA_SIM 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// One block per host thread: thread_local is per block.
#define __shared__ static thread_local

namespace slstm_sim {

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3() = default;
  dim3(unsigned x_, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}  // NOLINT
};

// The calling fiber's coordinates and its block's shared memory.
dim3 thread_idx();
dim3 block_idx();
dim3 block_dim();
dim3 grid_dim();
void* dynamic_smem();
// The barriers (`where`: the call site, to report threads at different barriers).
void sync_threads(int where);
void sync_warp(int where);
float shfl_xor(float v, int lane_mask, int where);
// Thread-block clusters (sm_90): a launch with cluster size C > 0 groups blocks
// [k*C, (k+1)*C) into cluster k; all blocks of a cluster run at the same time. A launch without
// clusters is, to these functions, one of clusters of one block.
unsigned cluster_rank();  // this block's rank in its cluster (blockIdx.x % C); 0 without clusters
unsigned cluster_size();  // C; 1 in a launch without clusters
// barrier.cluster.arrive.release + barrier.cluster.wait.acquire (cooperative_groups'
// cluster.sync()): waits until every non-exited thread of every block of the cluster has
// arrived; what any of them wrote before arriving (global memory, its own or a peer's shared
// memory) is visible to every one after it. Without clusters: a barrier of the block's
// non-exited threads. (`where`: the call site, for the report of threads of one block at it
// and at a __syncthreads or __syncwarp at once, which deadlocks on a device.)
void cluster_sync(int where);
// cluster.map_shared_rank(local, rank): the address in block `rank`'s dynamic shared memory
// at the offset `local` has in this block's dynamic shared memory. A `local` outside this
// block's dynamic shared memory, or rank >= cluster_size(), is the launch's error, and the
// answer is `local`. (Every block's dynamic shared memory exists for the whole launch.)
void* cluster_peer_smem(const void* local, unsigned rank);
// Lets the block's other threads run (called by every simulated atomic load).
void yield();
// Wakes the blocks that sleep because their threads only poll (every simulated atomic store).
void atomic_stored();
// Host nanoseconds divided by the clock divisor (the device's %globaltimer): a simulated
// block runs 10^3-10^5 times slower than a GPU's, so a runtime that keeps a GPU's time bounds
// (the persistent kernel's wait timeout: 1 s by default) slows the clock (tests/cuda_fake's
// simulated module: 100), lest a healthy wait time out on a busy machine.
long long global_ns();
void set_clock_divisor(long long divisor);

// Runs `block_body` (a kernel call) as `grid` blocks of `block` threads, `smem` bytes of
// dynamic shared memory each, at most `resident` blocks at once (0: all: then blocks that
// wait for one another make progress, as a cooperative launch guarantees on a device). With
// `cluster` > 0: in clusters of `cluster` blocks (grid a multiple of it, at most 16: sm_90's
// limit with the non-portable opt-in, 8 without), every block resident at once whatever
// `resident` says.
// Returns "" or what went wrong (barrier misuse, see above).
std::string launch(unsigned grid, unsigned block, std::size_t smem,
                   const std::function<void()>& block_body, unsigned resident = 0,
                   unsigned cluster = 0);

// Launches since the process started (tests count them).
std::uint64_t launches();

// The error of this host thread's last launch ("" if none), cleared by taking it; the
// simulator's cudaGetLastError (sim_runtime.cpp) reports it as cudaErrorLaunchFailure.
void set_error(std::string what);
std::string take_error();
// The last launch's error on this host thread ("" if it went well), kept for the tests.
std::string last_error();

// Where launches run: at once on the calling thread (the default), or queued by a runtime
// that runs work later, e.g. on the fake CUDA runtime's streams (tests/cuda_fake), which
// installs itself here; that runtime then checks take_error() after each piece of work.
using Submitter = void (*)(const void* stream, const char* name, std::function<void()> work);
void set_submitter(Submitter submitter);
void submit(const void* stream, const char* name, std::function<void()> work);

// A kernel launch on `stream`: the arguments converted to the kernel's parameter types and
// copied, as a launch copies them; at most `resident` blocks at once (0: all).
template <typename... P, typename... A>
void launch_kernel(const void* stream, const char* name, unsigned grid, unsigned block,
                   std::size_t smem, unsigned resident, void (*kernel)(P...), A&&... args) {
  std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
  submit(stream, name, [params, kernel, grid, block, smem, resident]() mutable {
    set_error(launch(
        grid, block, smem, [&params, kernel] { std::apply(kernel, params); }, resident));
  });
}

// A kernel launch on `stream` in clusters of `cluster` blocks (all blocks resident at once),
// the arguments converted and copied as by launch_kernel.
template <typename... P, typename... A>
void launch_cluster_kernel(const void* stream, const char* name, unsigned grid,
                           unsigned cluster, unsigned block, std::size_t smem,
                           void (*kernel)(P...), A&&... args) {
  std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
  submit(stream, name, [params, kernel, grid, cluster, block, smem]() mutable {
    set_error(launch(
        grid, block, smem, [&params, kernel] { std::apply(kernel, params); }, 0, cluster));
  });
}

// SLSTM_LAUNCH(grid, block, smem, stream, kernel)(arguments...): a plain launch, 16 blocks
// resident at a time (nothing guarantees co-residency to a plain launch).
template <typename... P>
struct Launch {
  const void* stream;
  const char* name;
  unsigned grid, block;
  std::size_t smem;
  void (*kernel)(P...);
  template <typename... A>
  void operator()(A&&... args) const {
    launch_kernel(stream, name, grid, block, smem, 16, kernel, std::forward<A>(args)...);
  }
};
template <typename Stream, typename... P>
Launch<P...> make_launch(int grid, int block, std::size_t smem, Stream stream, const char* name,
                         void (*kernel)(P...)) {
  return Launch<P...>{static_cast<const void*>(stream), name, static_cast<unsigned>(grid),
                      static_cast<unsigned>(block), smem, kernel};
}

}  // namespace slstm_sim

#define threadIdx (::slstm_sim::thread_idx())
#define blockIdx (::slstm_sim::block_idx())
#define blockDim (::slstm_sim::block_dim())
#define gridDim (::slstm_sim::grid_dim())
#define SLSTM_DYNAMIC_SMEM(T, name) T* const name = static_cast<T*>(::slstm_sim::dynamic_smem())
#define SLSTM_LAUNCH(grid, block, smem, stream, ...) \
  ::slstm_sim::make_launch(grid, block, smem, stream, #__VA_ARGS__, &__VA_ARGS__)
#define __syncthreads() ::slstm_sim::sync_threads(__LINE__)
#define __syncwarp(...) ::slstm_sim::sync_warp(__LINE__)
#define __shfl_xor_sync(mask, v, lane_mask) ::slstm_sim::shfl_xor((v), (lane_mask), __LINE__)

template <typename T>
inline T __ldg(const T* p) {  // NOLINT(bugprone-reserved-identifier): CUDA's name
  return *p;
}
template <typename T>
inline T __ldcg(const T* p) {  // NOLINT(bugprone-reserved-identifier)
  return *p;
}
template <typename T>
inline void __stcg(T* p, T v) {  // NOLINT(bugprone-reserved-identifier)
  *p = v;
}
inline int atomicOr(int* p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
inline void __threadfence() {  // NOLINT(bugprone-reserved-identifier)
  std::atomic_thread_fence(std::memory_order_seq_cst);
}
inline void __threadfence_system() {  // NOLINT(bugprone-reserved-identifier)
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

// libcu++'s cuda::atomic_ref, as far as the kernels use it.
namespace cuda {
enum memory_order { memory_order_relaxed, memory_order_acquire, memory_order_release };
enum thread_scope { thread_scope_system, thread_scope_device, thread_scope_block };
template <typename T, thread_scope S>
class atomic_ref {
 public:
  explicit atomic_ref(T& v) : p_(&v) {}
  T load(memory_order o) const {
    ::slstm_sim::yield();
    return __atomic_load_n(p_, o == memory_order_acquire ? __ATOMIC_ACQUIRE : __ATOMIC_RELAXED);
  }
  void store(T v, memory_order o) const {
    __atomic_store_n(p_, v, o == memory_order_release ? __ATOMIC_RELEASE : __ATOMIC_RELAXED);
    ::slstm_sim::atomic_stored();
  }

 private:
  T* p_;
};
}  // namespace cuda
