// The simulator's engine (sim.hpp): blocks on host threads, CUDA threads as fibers
// (ucontext) scheduled round-robin within their block, barriers and shuffles between them.
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

// Under ThreadSanitizer every fiber is a thread of its own to TSan, and a switch between two
// fibers of a block orders them (as the block's barriers do, and more): what TSan checks is
// then the ordering BETWEEN blocks, i.e. the persistent kernel's step flags, against the C++
// memory model (stricter than this host's).
#ifdef SLSTM_SIM_TSAN
void* tsan_fiber_create() { return __tsan_create_fiber(0); }
void tsan_fiber_destroy(void* f) { __tsan_destroy_fiber(f); }
void* tsan_fiber_current() { return __tsan_get_current_fiber(); }
void tsan_switch(void* f) { __tsan_switch_to_fiber(f, 0); }
#else
void* tsan_fiber_create() { return nullptr; }
void tsan_fiber_destroy(void*) {}
void* tsan_fiber_current() { return nullptr; }
void tsan_switch(void*) {}
#endif

constexpr std::size_t kStackBytes = 256 * 1024;
constexpr int kWarp = 32;

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
};

struct Fiber {
  ucontext_t context{};
  void* stack = nullptr;
  void* tsan = nullptr;
  unsigned index = 0;
  bool done = false;
};

struct Block {
  dim3 index, dim, grid;
  const std::function<void()>* body = nullptr;
  std::vector<Fiber> fibers;
  int current = -1;
  int live = 0;
  std::vector<int> warp_live;
  Barrier block_barrier;
  std::vector<Barrier> warp_barrier;
  std::vector<float> lanes;  // [warps][32]: shuffle slots
  std::vector<float> smem;   // dynamic shared memory (floats: 4-byte aligned, 16 via vector)
  ucontext_t scheduler{};
  void* tsan_scheduler = nullptr;
  int progress = 0;  // arrivals and exits in this round
  int polls = 0;     // atomic loads in this round
  std::string error;
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
Fiber& fiber() { return block().fibers[static_cast<std::size_t>(block().current)]; }

void fail(Block& b, const std::string& what) {
  if (b.error.empty()) b.error = what;
}

// Back to the scheduler; resumes when the round comes back to this fiber.
void switch_out() {
  Block& b = block();
  Fiber& f = fiber();
  tsan_switch(b.tsan_scheduler);
  swapcontext(&f.context, &b.scheduler);
}

void release(Barrier& bar) {
  bar.arrived = 0;
  ++bar.generation;
}

// Waits at `bar` until `live` threads have arrived (live may drop as threads exit).
void wait_at(Barrier& bar, const int& live, int where, const char* what) {
  Block& b = block();
  if (bar.arrived == 0) {
    bar.where = where;
  } else if (bar.where != where) {
    fail(b, std::string(what) + " reached at line " + std::to_string(bar.where) + " and at line " +
                std::to_string(where) + " by threads of one block at once");
  }
  ++b.progress;
  const unsigned generation = bar.generation;
  if (++bar.arrived >= live) {
    release(bar);
    return;
  }
  while (bar.generation == generation && b.error.empty()) switch_out();
}

void fiber_main() {
  Block& b = block();
  (*b.body)();
  Fiber& f = fiber();
  f.done = true;
  ++b.progress;
  --b.live;
  const std::size_t w = f.index / kWarp;
  --b.warp_live[w];
  // A barrier that waited only for this thread completes without it (sm_70+ semantics).
  if (b.block_barrier.arrived > 0 && b.block_barrier.arrived >= b.live) release(b.block_barrier);
  if (b.warp_barrier[w].arrived > 0 && b.warp_barrier[w].arrived >= b.warp_live[w]) {
    release(b.warp_barrier[w]);
  }
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
  b.lanes.assign(static_cast<std::size_t>(warps) * kWarp, 0.0f);
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = b.fibers[i];
    f.index = i;
    f.stack = stacks().take();
    if (f.stack == nullptr || getcontext(&f.context) != 0) {
      fail(b, "no memory for a thread's stack");
      f.done = true;
      --b.live;
      continue;
    }
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &b.scheduler;
    makecontext(&f.context, fiber_main, 0);
    f.tsan = tsan_fiber_create();
  }
  while (b.live > 0 && b.error.empty()) {
    b.progress = 0;
    b.polls = 0;
    const std::uint32_t stores = stores_now();
    for (unsigned i = 0; i < n && b.error.empty(); ++i) {
      if (b.fibers[i].done) continue;
      b.current = static_cast<int>(i);
      tsan_switch(b.fibers[i].tsan);
      swapcontext(&b.scheduler, &b.fibers[i].context);
    }
    if (b.progress == 0 && b.polls == 0 && b.live > 0) {
      fail(b, "deadlock: threads of block " + std::to_string(b.index.x) +
                  " wait at barriers that cannot complete");
    }
    if (b.progress == 0 && b.polls > 0) sleep_until_store(stores);  // waiting on other blocks
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

void sync_warp(int where) {
  Block& b = block();
  const std::size_t w = fiber().index / kWarp;
  wait_at(b.warp_barrier[w], b.warp_live[w], where, "__syncwarp");
}

float shfl_xor(float v, int lane_mask, int where) {
  Block& b = block();
  const unsigned i = fiber().index;
  const std::size_t w = i / kWarp;
  if (b.warp_live[w] != kWarp) {
    fail(b, "a full-warp shuffle at line " + std::to_string(where) + " with " +
                std::to_string(b.warp_live[w]) + " live lanes");
    return v;
  }
  float* lanes = b.lanes.data() + w * kWarp;
  const unsigned lane = i % kWarp;
  // Two barriers: every lane has written before any reads, and has read before the next
  // shuffle writes again.
  lanes[lane] = v;
  sync_warp(where);
  const float r = lanes[lane ^ static_cast<unsigned>(lane_mask)];
  sync_warp(where);
  return r;
}

void atomic_stored() {
  g_stores.fetch_add(1, std::memory_order_relaxed);
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&g_stores), FUTEX_WAKE_PRIVATE, INT_MAX,
          nullptr, nullptr, 0);
}

void yield() {
  if (tl_block == nullptr) return;  // host code
  ++block().polls;
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
                   const std::function<void()>& body, unsigned resident) {
  g_launches.fetch_add(1, std::memory_order_relaxed);
  if (grid == 0 || block_threads == 0 || block_threads > 1024) {
    return "invalid launch configuration: " + std::to_string(grid) + " blocks of " +
           std::to_string(block_threads) + " threads";
  }
  const unsigned wave = resident == 0 ? grid : std::min(resident, grid);
  std::vector<Block> blocks(grid);
  for (unsigned first = 0; first < grid; first += wave) {
    const unsigned last = std::min(grid, first + wave);
    std::vector<std::thread> threads;
    threads.reserve(last - first);
    for (unsigned i = first; i < last; ++i) {
      Block& b = blocks[i];
      b.index = dim3(i);
      b.dim = dim3(block_threads);
      b.grid = dim3(grid);
      b.body = &body;
      std::vector<float>((smem + sizeof(float) - 1) / sizeof(float),
                         std::numeric_limits<float>::quiet_NaN())
          .swap(b.smem);
      threads.emplace_back([&b] { run_block(b); });
    }
    for (std::thread& t : threads) t.join();
  }
  for (const Block& b : blocks) {
    if (!b.error.empty()) return "block " + std::to_string(b.index.x) + ": " + b.error;
  }
  return "";
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
