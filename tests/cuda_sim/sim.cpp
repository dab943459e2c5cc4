// The simulator's engine (sim.hpp): blocks on host threads, CUDA threads as fibers (a
// register switch of our own, or ucontext) scheduled round-robin within their block,
// barriers and shuffles between them.
#include "sim.hpp"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <ucontext.h>

#if defined(__SANITIZE_THREAD__)
#define SLSTM_SIM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SLSTM_SIM_TSAN 1
#endif
#endif
#ifdef SLSTM_SIM_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SLSTM_SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLSTM_SIM_ASAN 1
#endif
#endif
// How a fiber switches: a switch of the callee-saved registers of our own (below) on x86-64,
// without ucontext's sigprocmask system call and FPU environment per switch (most of a
// simulated kernel's time was switches: the simulator's tests ran 5 times faster with it,
// the persistent kernel's GPU-suite cases 4-20 times); ucontext elsewhere, and under
// AddressSanitizer, which knows ucontext's stacks. (ThreadSanitizer is told of every switch
// through its fiber interface either way.)
#if defined(SLSTM_SIM_ASAN) || !defined(__x86_64__)
#define SLSTM_SIM_UCONTEXT 1
#endif

#include <algorithm>
#include <climits>
#include <ctime>
#include <chrono>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

namespace slstm_sim {
namespace {

// Under ThreadSanitizer every fiber is a thread of its own to TSan, and only what orders
// threads on a GPU orders them: a switch from the scheduler into a fiber carries no
// synchronisation (a fiber's switch back to the scheduler does: the scheduler reads what the
// fibers did), a barrier is a release by each thread that arrives and an acquire by each
// that leaves (on one of two sync addresses used in turn, so that a thread already at the
// next barrier orders nothing for a thread still leaving this one), and a fiber starts with
// an acquire of the block's set-up. So TSan checks the ordering WITHIN a block (shared and
// global memory between barriers: what compute-sanitizer's racecheck checks on a GPU) and
// BETWEEN blocks (the persistent kernel's step flags) against the C++ memory model (stricter
// than this host's). The simulator's own bookkeeping, which fibers of a block share without
// order (the host thread runs them one at a time), is hidden from TSan (Bookkeeping below).
#ifdef SLSTM_SIM_TSAN
}  // namespace
}  // namespace slstm_sim
extern "C" {
void AnnotateIgnoreReadsBegin(const char* file, int line);
void AnnotateIgnoreReadsEnd(const char* file, int line);
void AnnotateIgnoreWritesBegin(const char* file, int line);
void AnnotateIgnoreWritesEnd(const char* file, int line);
}
namespace slstm_sim {
namespace {
void* tsan_fiber_create() { return __tsan_create_fiber(0); }
void tsan_fiber_destroy(void* f) { __tsan_destroy_fiber(f); }
void* tsan_fiber_current() { return __tsan_get_current_fiber(); }
void tsan_switch(void* f) { __tsan_switch_to_fiber(f, 0); }
void tsan_switch_unordered(void* f) { __tsan_switch_to_fiber(f, __tsan_switch_to_fiber_no_sync); }
void tsan_release(void* a) { __tsan_release(a); }
void tsan_acquire(void* a) { __tsan_acquire(a); }
struct Bookkeeping {
  Bookkeeping() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~Bookkeeping() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
  Bookkeeping(const Bookkeeping&) = delete;
  Bookkeeping& operator=(const Bookkeeping&) = delete;
};
#else
void* tsan_fiber_create() { return nullptr; }
void tsan_fiber_destroy(void*) {}
void* tsan_fiber_current() { return nullptr; }
void tsan_switch(void*) {}
void tsan_switch_unordered(void*) {}
void tsan_release(void*) {}
void tsan_acquire(void*) {}
struct Bookkeeping {
  Bookkeeping() {}   // NOLINT(modernize-use-equals-default): user-provided, so that a
  ~Bookkeeping() {}  // NOLINT(modernize-use-equals-default): `quiet` is never "unused"
  Bookkeeping(const Bookkeeping&) = delete;
  Bookkeeping& operator=(const Bookkeeping&) = delete;
};
#endif

#ifdef SLSTM_SIM_UCONTEXT
struct Context {
  ucontext_t uc{};
};
void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
// `c` to start in `entry` (which never returns) on the stack [stack, stack + bytes).
bool make_context(Context& c, void* stack, std::size_t bytes, void (*entry)()) {
  if (getcontext(&c.uc) != 0) return false;
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
  return true;
}
#else
}  // namespace
}  // namespace slstm_sim
// slstm_sim_switch(save, load): pushes the System V callee-saved registers, MXCSR and the
// x87 control word on the current stack, stores the stack pointer in *save, then takes the
// stack at `load` and pops the same from it. slstm_sim_start: where a new fiber's first
// switch returns to; calls r12 (its entry) on a 16-byte aligned stack.
extern "C" void slstm_sim_switch(void** save, void* load);
extern "C" void slstm_sim_start();
asm(R"(
  .pushsection .text
  .globl slstm_sim_switch
  .hidden slstm_sim_switch
  .type slstm_sim_switch, @function
slstm_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size slstm_sim_switch, .-slstm_sim_switch

  .globl slstm_sim_start
  .hidden slstm_sim_start
  .type slstm_sim_start, @function
slstm_sim_start:
  andq $-16, %rsp
  callq *%r12
  ud2
  .size slstm_sim_start, .-slstm_sim_start
  .popsection
)");
namespace slstm_sim {
namespace {
struct Context {
  void* sp = nullptr;
};
void switch_context(Context& from, Context& to) { slstm_sim_switch(&from.sp, to.sp); }
bool make_context(Context& c, void* stack, std::size_t bytes, void (*entry)()) {
  // The frame slstm_sim_switch pops: control words, r15, r14, r13, r12 = entry, rbx, rbp,
  // the return address (slstm_sim_start); two words of room above it.
  auto* top = reinterpret_cast<std::uintptr_t*>(static_cast<char*>(stack) + bytes);
  std::uintptr_t* sp = top - 10;
  std::uint32_t mxcsr = 0;
  std::uint16_t fpcw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpcw));
  sp[0] = static_cast<std::uintptr_t>(mxcsr) | (static_cast<std::uintptr_t>(fpcw) << 32);
  for (int r = 1; r <= 6; ++r) sp[r] = 0;
  sp[4] = reinterpret_cast<std::uintptr_t>(entry);
  sp[7] = reinterpret_cast<std::uintptr_t>(&slstm_sim_start);
  c.sp = sp;
  return true;
}
#endif

constexpr std::size_t kStackBytes = 256 * 1024;
constexpr int kWarp = 32;
constexpr unsigned kMaxCluster = 16;  // sm_90: 8 portably, 16 with the non-portable opt-in

// Fiber stacks, reused across launches (mapped once, never returned).
class StackPool {
 public:
  void* take() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        void* s = free_.back();
        free_.pop_back();
        return s;
      }
    }
    void* s = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return s == MAP_FAILED ? nullptr : s;
  }
  void give(void* s) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(s);
  }

 private:
  std::mutex mutex_;
  std::vector<void*> free_;
};
StackPool& stacks() {
  static StackPool* pool = new StackPool;  // never destroyed: fibers may outlive statics
  return *pool;
}

struct Barrier {
  int arrived = 0;
  unsigned generation = 0;
  int where = 0;
  char sync[2] = {};  // (under TSan: the addresses its generations release and acquire on)
};

struct Fiber {
  Context context;
  void* stack = nullptr;
  void* tsan = nullptr;
  unsigned index = 0;
  unsigned shuffles = 0;  // its warp shuffles so far
  // The barrier it waits at and that barrier's generation then (the scheduler does not
  // resume it before the barrier is released: nothing would change for it).
  const Barrier* waits = nullptr;
  unsigned waits_generation = 0;
  bool done = false;
};

struct Block;

// A thread-block cluster: its blocks (by rank) and its barrier (cluster_sync). The blocks'
// host threads share it, and nothing in it may order them for ThreadSanitizer (a mutex would:
// a thread polling for the release would acquire what threads already past it and on their way
// to the next barrier did, and hide their races with its reads), so the barrier's state is one
// atomic word changed by relaxed compare-and-swap, and the barrier's own order is a release by
// each thread that arrives and an acquire by each that leaves on sync[generation & 1], as in
// wait_at. A launch without clusters has a cluster of one per block.
struct Cluster {
  // generation << 32 | expected << 16 | arrived: expected, the cluster's threads that have
  // not exited (at most 16 blocks of 1024), arrived, those of them at the barrier now.
  std::atomic<std::uint64_t> state{0};
  std::atomic<int> failed{-1};  // the index of its first block that ended with an error
  std::vector<Block*> blocks;
  char sync[2] = {};  // (under TSan: the addresses its generations release and acquire on)
};

constexpr std::uint64_t kClusterCount = 0xffff;
std::uint64_t cluster_state(unsigned generation, std::uint64_t expected, std::uint64_t arrived) {
  return static_cast<std::uint64_t>(generation) << 32 | expected << 16 | arrived;
}
unsigned cluster_generation(const Cluster& c) {
  return static_cast<unsigned>(c.state.load(std::memory_order_relaxed) >> 32);
}

// One more thread at the cluster's barrier (`arrival`) or one fewer expected there (an exit);
// releases the barrier if that completes it, and says so.
bool cluster_count(Cluster& c, bool arrival) {
  std::uint64_t s = c.state.load(std::memory_order_relaxed);
  for (;;) {
    std::uint64_t expected = s >> 16 & kClusterCount, arrived = s & kClusterCount;
    if (arrival) {
      ++arrived;
    } else {
      --expected;
    }
    const auto generation = static_cast<unsigned>(s >> 32);
    const bool opened = arrived > 0 && arrived >= expected;
    const std::uint64_t next = opened ? cluster_state(generation + 1, expected, 0)
                                      : cluster_state(generation, expected, arrived);
    if (c.state.compare_exchange_weak(s, next, std::memory_order_relaxed)) return opened;
  }
}

struct Block {
  dim3 index, dim, grid;
  Cluster* cluster = nullptr;
  unsigned cluster_rank = 0;
  const std::function<void()>* body = nullptr;
  std::vector<Fiber> fibers;
  int current = -1;
  int live = 0;
  std::vector<int> warp_live;
  Barrier block_barrier;
  std::vector<Barrier> warp_barrier;
  std::vector<float> lanes;  // [warps][2][32]: shuffle slots, two sets used in turn
  std::vector<float> smem;   // dynamic shared memory (floats: 4-byte aligned, 16 via vector)
  std::size_t smem_bytes = 0;
  Context scheduler;
  void* tsan_scheduler = nullptr;
  int progress = 0;  // arrivals and exits in this round
  int polls = 0;     // atomic loads in this round
  std::string error;
  bool peer_failed = false;  // its error: a block of its cluster failed (cluster_sync)
  char setup = 0;  // (under TSan: the address its set-up is released on)
};

thread_local Block* tl_block = nullptr;
std::atomic<std::uint64_t> g_launches{0};

// Stores to simulated atomics, counted: a block whose threads only poll sleeps until the
// count moves (or a millisecond passes: the kernels' time bounds must still run out) instead
// of spinning against the blocks it waits for. A relaxed counter and a futex: nothing here
// may order the blocks for ThreadSanitizer (a mutex would, and hide the races it is there
// to find between them).
std::atomic<std::uint32_t> g_stores{0};

std::uint32_t stores_now() { return g_stores.load(std::memory_order_relaxed); }
void sleep_until_store(std::uint32_t seen) {
  timespec limit{0, 1000000};  // 1 ms
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&g_stores), FUTEX_WAIT_PRIVATE, seen,
          &limit, nullptr, 0);
}

Block& block() { return *tl_block; }
Fiber& fiber() {
  const Bookkeeping quiet;
  return block().fibers[static_cast<std::size_t>(block().current)];
}

void fail(Block& b, const std::string& what) {
  if (b.error.empty()) b.error = what;
}

// Back to the scheduler; resumes when the round comes back to this fiber.
void switch_out() {
  Block& b = block();
  Fiber& f = fiber();
  tsan_switch(b.tsan_scheduler);
  switch_context(f.context, b.scheduler);
}

void release(Barrier& bar) {
  bar.arrived = 0;
  ++bar.generation;
}

// Waits at `bar` until `live` threads have arrived (live may drop as threads exit). (The
// bookkeeping is hidden from TSan in scopes that end before each switch: a fiber must not
// switch, let alone end, with TSan's ignores on.)
void wait_at(Barrier& bar, const int& live, int where, const char* what) {
  Block& b = block();
  unsigned generation = 0;
  bool opened = false;
  {
    const Bookkeeping quiet;
    // (TSan: what this thread did before the barrier happens before what every thread does
    // after it; see tsan_switch_unordered)
    tsan_release(&bar.sync[bar.generation & 1u]);
    if (bar.arrived == 0) {
      bar.where = where;
    } else if (bar.where != where) {
      fail(b, std::string(what) + " reached at line " + std::to_string(bar.where) +
                  " and at line " + std::to_string(where) + " by threads of one block at once");
    }
    ++b.progress;
    generation = bar.generation;
    opened = ++bar.arrived >= live;
    if (opened) {
      release(bar);
    } else {
      Fiber& f = fiber();
      f.waits = &bar;
      f.waits_generation = generation;
    }
  }
  while (!opened) {
    {
      const Bookkeeping quiet;
      if (bar.generation != generation || !b.error.empty()) {
        fiber().waits = nullptr;
        break;
      }
    }
    switch_out();
  }
  tsan_acquire(&bar.sync[generation & 1u]);
}

void fiber_main() {
  Block* bp = nullptr;
  {
    const Bookkeeping quiet;
    bp = tl_block;
  }
  Block& b = *bp;
  tsan_acquire(&b.setup);  // (TSan: the block's set-up happens before its threads)
  (*b.body)();
  {
    const Bookkeeping quiet;
    Fiber& f = fiber();
    f.done = true;
    ++b.progress;
    --b.live;
    const std::size_t w = f.index / kWarp;
    --b.warp_live[w];
    // A barrier that waited only for this thread completes without it (sm_70+ semantics).
    if (b.block_barrier.arrived > 0 && b.block_barrier.arrived >= b.live) {
      release(b.block_barrier);
    }
    if (b.warp_barrier[w].arrived > 0 && b.warp_barrier[w].arrived >= b.warp_live[w]) {
      release(b.warp_barrier[w]);
    }
  }
  if (cluster_count(*b.cluster, false)) atomic_stored();  // (wakes the cluster's waiters)
  switch_out();  // for good: a finished fiber is never resumed
}

void run_block(Block& b) {
  tl_block = &b;
  b.tsan_scheduler = tsan_fiber_current();
  const unsigned n = b.dim.x * b.dim.y * b.dim.z;
  const unsigned warps = (n + kWarp - 1) / kWarp;
  b.fibers.resize(n);
  b.live = static_cast<int>(n);
  b.warp_live.assign(warps, 0);
  for (unsigned i = 0; i < n; ++i) ++b.warp_live[i / kWarp];
  b.warp_barrier.assign(warps, Barrier{});
  b.lanes.assign(static_cast<std::size_t>(warps) * 2 * kWarp, 0.0f);
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = b.fibers[i];
    f.index = i;
    f.stack = stacks().take();
    if (f.stack == nullptr || !make_context(f.context, f.stack, kStackBytes, fiber_main)) {
      fail(b, "no memory for a thread's stack");
      f.done = true;
      --b.live;
      continue;
    }
    f.tsan = tsan_fiber_create();
  }
  tsan_release(&b.setup);
  while (b.live > 0 && b.error.empty()) {
    b.progress = 0;
    b.polls = 0;
    const std::uint32_t stores = stores_now();
    for (unsigned i = 0; i < n && b.error.empty(); ++i) {
      const Fiber& f = b.fibers[i];
      if (f.done || (f.waits != nullptr && f.waits->generation == f.waits_generation)) continue;
      b.current = static_cast<int>(i);
      tsan_switch_unordered(b.fibers[i].tsan);
      switch_context(b.scheduler, b.fibers[i].context);
    }
    if (b.progress == 0 && b.polls == 0 && b.live > 0) {
      fail(b, "deadlock: threads of block " + std::to_string(b.index.x) +
                  " wait at barriers that cannot complete");
    }
    if (b.progress == 0 && b.polls > 0) sleep_until_store(stores);  // waiting on other blocks
  }
  // Its threads that never exit would hold up its cluster's barrier for good: the barrier
  // fails its waiters instead (cluster_sync).
  if (!b.error.empty()) {
    int none = -1;
    b.cluster->failed.compare_exchange_strong(none, static_cast<int>(b.index.x),
                                              std::memory_order_relaxed);
    atomic_stored();
  }
  // Fibers left behind by an error never resume; their stacks hold nothing to destroy.
  for (Fiber& f : b.fibers) {
    if (f.stack != nullptr) stacks().give(f.stack);
    if (f.tsan != nullptr) tsan_fiber_destroy(f.tsan);
  }
  tl_block = nullptr;
}

}  // namespace

dim3 thread_idx() {
  const Bookkeeping quiet;
  const Block& b = block();
  const unsigned i = b.fibers[static_cast<std::size_t>(b.current)].index;
  return dim3(i % b.dim.x, (i / b.dim.x) % b.dim.y, i / (b.dim.x * b.dim.y));
}
dim3 block_idx() { return block().index; }
dim3 block_dim() { return block().dim; }
dim3 grid_dim() { return block().grid; }
void* dynamic_smem() { return block().smem.data(); }

void sync_threads(int where) {
  Block& b = block();
  wait_at(b.block_barrier, b.live, where, "__syncthreads");
}

unsigned cluster_rank() { return block().cluster_rank; }
unsigned cluster_size() { return static_cast<unsigned>(block().cluster->blocks.size()); }

// A waiting thread polls (as a spin-wait on an atomic does: the block's other threads run,
// and a block whose threads only wait sleeps until a store), since the barrier's release
// comes from another block's host thread.
void cluster_sync(int where) {
  Block& b = block();
  Cluster& c = *b.cluster;
  // (the generation cannot move before this thread arrives)
  const unsigned generation = cluster_generation(c);
  // (TSan: what this thread did before the barrier happens before what every thread of the
  // cluster does after it)
  tsan_release(&c.sync[generation & 1u]);
  {
    const Bookkeeping quiet;
    ++b.progress;
  }
  if (cluster_count(c, true)) {
    atomic_stored();  // wakes the blocks whose threads only wait here
  } else {
    while (cluster_generation(c) == generation) {
      {
        const Bookkeeping quiet;
        const std::size_t w = fiber().index / kWarp;
        const int failed = c.failed.load(std::memory_order_relaxed);
        // Threads of this block at a __syncthreads or __syncwarp wait for this one, which
        // waits for them: a deadlock on a device.
        const Barrier* other = b.block_barrier.arrived > 0     ? &b.block_barrier
                               : b.warp_barrier[w].arrived > 0 ? &b.warp_barrier[w]
                                                               : nullptr;
        if (failed >= 0 && b.error.empty()) {
          fail(b, "cluster barrier: block " + std::to_string(failed) + " of the cluster failed");
          b.peer_failed = true;
        } else if (other != nullptr) {
          fail(b, "cluster barrier at line " + std::to_string(where) + " and " +
                      (other == &b.block_barrier ? "__syncthreads" : "__syncwarp") +
                      " at line " + std::to_string(other->where) +
                      " reached by threads of one block at once");
        }
        // (after an error, the scheduler resumes no thread of this block: this one stays)
        ++b.polls;
      }
      switch_out();
    }
  }
  tsan_acquire(&c.sync[generation & 1u]);
}

void* cluster_peer_smem(const void* local, unsigned rank) {
  Block& b = block();
  const Cluster& c = *b.cluster;
  const auto at = reinterpret_cast<std::uintptr_t>(local);
  const auto base = reinterpret_cast<std::uintptr_t>(b.smem.data());
  if (rank >= c.blocks.size() || at < base || at - base >= b.smem_bytes) {
    const Bookkeeping quiet;
    fail(b, rank >= c.blocks.size()
                ? "cluster_peer_smem: rank " + std::to_string(rank) + " in a cluster of " +
                      std::to_string(c.blocks.size())
                : "cluster_peer_smem: an address outside the block's " +
                      std::to_string(b.smem_bytes) + " bytes of dynamic shared memory");
    return const_cast<void*>(local);
  }
  return reinterpret_cast<char*>(c.blocks[rank]->smem.data()) + (at - base);
}

void sync_warp(int where) {
  Block& b = block();
  const std::size_t w = fiber().index / kWarp;
  wait_at(b.warp_barrier[w], b.warp_live[w], where, "__syncwarp");
}

float shfl_xor(float v, int lane_mask, int where) {
  Block& b = block();
  float* lanes = nullptr;
  unsigned lane = 0;
  {
    const Bookkeeping quiet;
    Fiber& f = fiber();
    const std::size_t w = f.index / kWarp;
    if (b.warp_live[w] != kWarp) {
      fail(b, "a full-warp shuffle at line " + std::to_string(where) + " with " +
                  std::to_string(b.warp_live[w]) + " live lanes");
      return v;
    }
    // The warp's shuffles use two sets of slots in turn, so one barrier suffices: every lane
    // has written before any reads; and no lane can write this set again (two shuffles on)
    // before every lane has read it, since each must first pass the next shuffle's barrier
    // (which also orders the slots for TSan).
    lanes = b.lanes.data() + (w * 2 + (f.shuffles++ & 1u)) * kWarp;
    lane = f.index % kWarp;
  }
  lanes[lane] = v;
  sync_warp(where);
  return lanes[lane ^ static_cast<unsigned>(lane_mask)];
}

void atomic_stored() {
  g_stores.fetch_add(1, std::memory_order_relaxed);
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&g_stores), FUTEX_WAKE_PRIVATE, INT_MAX,
          nullptr, nullptr, 0);
}

void yield() {
  {
    const Bookkeeping quiet;
    if (tl_block == nullptr) return;  // host code
    ++block().polls;
  }
  switch_out();
}

namespace {
std::atomic<long long> g_clock_divisor{1};
}  // namespace
void set_clock_divisor(long long divisor) { g_clock_divisor.store(divisor < 1 ? 1 : divisor); }
long long global_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
             .count() /
         g_clock_divisor.load();
}

std::string launch(unsigned grid, unsigned block_threads, std::size_t smem,
                   const std::function<void()>& body, unsigned resident, unsigned cluster) {
  g_launches.fetch_add(1, std::memory_order_relaxed);
  if (grid == 0 || block_threads == 0 || block_threads > 1024 || cluster > kMaxCluster ||
      (cluster > 0 && grid % cluster != 0)) {
    return "invalid launch configuration: " + std::to_string(grid) + " blocks of " +
           std::to_string(block_threads) + " threads" +
           (cluster > 0 ? " in clusters of " + std::to_string(cluster) : "");
  }
  const unsigned size = cluster == 0 ? 1 : cluster;
  // (a cluster's blocks run at once: with clusters, every block does)
  const unsigned wave = resident == 0 || cluster > 0 ? grid : std::min(resident, grid);
  std::vector<Block> blocks(grid);
  std::vector<Cluster> clusters(grid / size);
  for (Cluster& c : clusters) {
    c.blocks.resize(size);
    c.state.store(cluster_state(0, std::uint64_t{size} * block_threads, 0),
                  std::memory_order_relaxed);
  }
  for (unsigned first = 0; first < grid; first += wave) {
    const unsigned last = std::min(grid, first + wave);
    // Every block of the wave (its shared memory, which its cluster's peers may use from
    // their start) is set up before any starts.
    for (unsigned i = first; i < last; ++i) {
      Block& b = blocks[i];
      b.index = dim3(i);
      b.dim = dim3(block_threads);
      b.grid = dim3(grid);
      b.body = &body;
      b.cluster = &clusters[i / size];
      b.cluster_rank = i % size;
      b.cluster->blocks[b.cluster_rank] = &b;
      std::vector<float>((smem + sizeof(float) - 1) / sizeof(float),
                         std::numeric_limits<float>::quiet_NaN())
          .swap(b.smem);
      b.smem_bytes = smem;
    }
    std::vector<std::thread> threads;
    threads.reserve(last - first);
    for (unsigned i = first; i < last; ++i) {
      Block& b = blocks[i];
      threads.emplace_back([&b] { run_block(b); });
    }
    for (std::thread& t : threads) t.join();
  }
  // The first block's error, but one of a block's own before one that says only that a block
  // of its cluster failed.
  const Block* failed = nullptr;
  for (const Block& b : blocks) {
    if (b.error.empty()) continue;
    if (!b.peer_failed) {
      failed = &b;
      break;
    }
    if (failed == nullptr) failed = &b;
  }
  return failed == nullptr ? "" : "block " + std::to_string(failed->index.x) + ": " + failed->error;
}

std::uint64_t launches() { return g_launches.load(std::memory_order_relaxed); }

namespace {
thread_local std::string tl_pending;  // the first error since the last take_error
thread_local std::string tl_last;     // the last launch's
}  // namespace
void set_error(std::string what) {
  if (tl_pending.empty()) tl_pending = what;
  tl_last = std::move(what);
}
std::string take_error() {
  std::string e;
  e.swap(tl_pending);
  return e;
}
std::string last_error() { return tl_last; }

namespace {
std::atomic<Submitter> g_submitter{nullptr};
}  // namespace
void set_submitter(Submitter submitter) { g_submitter.store(submitter); }
void submit(const void* stream, const char* name, std::function<void()> work) {
  const Submitter s = g_submitter.load();
  if (s == nullptr) {
    work();
  } else {
    s(stream, name, std::move(work));
  }
}

}  // namespace slstm_sim
