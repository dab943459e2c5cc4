// slstm_gpu_mechanisms: the device check of the mechanisms the persistent recurrent kernel
// depends on (issue 19, item 4; design: ../shared/notes/gpu-wave2.md §3a and §4 "Check A").
//
//   slstm_gpu_mechanisms [--parts 1,2,3,4,5,6] [--quick] [--kernel-timeout-s S]
//
// Parts (each bounded in time; every spin-wait inside a kernel is bounded by a clock64()
// budget and, when it runs out, the kernel sets a failure flag and returns; the host then
// reports TIMEOUT instead of a number; every launch is also waited for with a host-side
// deadline, past which the program prints what it has and exits 3, which tears the context
// down):
//   1  device facts: name, SMs, clocks, L2, persisting-L2 max, shared memory, registers,
//      cluster support; co-resident CTAs of every test kernel; max cluster sizes; a launch
//      with the cooperative and cluster attributes together.
//   2  cluster DSMEM exchange: clusters of 2/4/8/16 CTAs, every CTA pushes its slice of an
//      h vector (256 or 2048 floats) into every CTA's shared memory (map_shared_rank), then
//      cluster.sync(); 10^4 rounds in one launch; ns per round (also a bare cluster.sync()
//      loop, a bare barrier.cluster loop: arrive.relaxed + wait, no fence, and as many
//      clusters as fit at once).  The received values are checked.
//   3  grid exchange through global memory: G = 8/32/66/132 co-resident CTAs (one per SM,
//      cooperative launch after an occupancy check), per step every CTA writes its slice and
//      (a) publishes a step-tagged flag (release/acquire, device scope) and waits for all
//      flags, or (b) writes step-tagged 64-bit words {value, step} that readers poll, or
//      (c) grid.sync(); ns per step.  The received values are checked.
//   4  read bandwidth (L2-only loads) of 8..48 MB working sets, of 20/40/60 MB buffers with
//      and without an L2 persisting access-policy window, and of 1 GiB (HBM).
//   5  a register-resident LSTM recurrence prototype (W_h in registers spread over the CTAs
//      of a cluster or of a co-resident grid, h exchanged each step, cell in FP32),
//      H = 256/512/1024, B = 1..4, T = 1000, checked against a float64 CPU reference;
//      µs per step, printed only when the output is right (else WRONG).
//   6  today's library through the C API: T sweep for the seed stack (B = 10) and for
//      H = 256, B = 1, host and device buffers, µs per call, least-squares fixed + per-step
//      (over all T; the T = 1 median and the fit over T <= 32 in the note beside it).
//
// Output: one "MEAS" line per measurement while it runs, then a markdown table between
// "=== TABLE BEGIN" and "=== TABLE END".  Exit status: 0 = everything measured and every
// check right; 1 = some measurement failed (TIMEOUT, WRONG, ERROR); 2 = bad arguments;
// 3 = a kernel did not finish within the host deadline (the table so far is printed);
// 77 = no usable GPU ("no usable GPU: <reason>").  SKIP rows (a cluster size the device does
// not place, too few SMs for a grid size, no persisting L2) are not failures.
#include <cooperative_groups.h>
#include <cuda/atomic>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "stacklstm/stacklstm.h"

namespace cg = cooperative_groups;

namespace {

// ------------------------------------------------------------------------------------------
// Results

struct Row {
  std::string part, name, value, unit, status, note;
};
std::vector<Row> g_rows;
int g_failures = 0;

void emit(const Row& r) {
  std::printf("MEAS part=%s %s: %s %s [%s]%s%s\n", r.part.c_str(), r.name.c_str(), r.value.c_str(),
              r.unit.c_str(), r.status.c_str(), r.note.empty() ? "" : " ", r.note.c_str());
  std::fflush(stdout);
  g_rows.push_back(r);
  if (r.status == "TIMEOUT" || r.status == "WRONG" || r.status == "ERROR") ++g_failures;
}

std::string fmt(double v, int prec = 3) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

void ok(const std::string& part, const std::string& name, double v, const std::string& unit,
        const std::string& note = "", int prec = 3) {
  emit({part, name, fmt(v, prec), unit, "ok", note});
}
void info(const std::string& part, const std::string& name, const std::string& v,
          const std::string& note = "") {
  emit({part, name, v, "", "ok", note});
}
void bad(const std::string& part, const std::string& name, const std::string& status,
         const std::string& note) {
  emit({part, name, "-", "", status, note});
}

void print_table() {
  std::printf("\n=== TABLE BEGIN\n");
  std::printf("| part | measurement | value | unit | status | note |\n|---|---|---:|---|---|---|\n");
  for (const Row& r : g_rows) {
    std::printf("| %s | %s | %s | %s | %s | %s |\n", r.part.c_str(), r.name.c_str(),
                r.value.c_str(), r.unit.c_str(), r.status.c_str(), r.note.c_str());
  }
  std::printf("=== TABLE END\n");
  std::printf("failures: %d\n", g_failures);
  std::fflush(stdout);
}

double g_kernel_timeout_s = 20.0;

// Waits for the stream with a host deadline.  A kernel still running past it cannot be
// stopped from here: report, print the table so far and exit (the context goes with us).
cudaError_t wait_stream(cudaStream_t s, const std::string& part, const std::string& name) {
  const auto t0 = std::chrono::steady_clock::now();
  while (true) {
    const cudaError_t e = cudaStreamQuery(s);
    if (e != cudaErrorNotReady) return e;
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (el > g_kernel_timeout_s) {
      bad(part, name, "TIMEOUT",
          "host deadline of " + fmt(g_kernel_timeout_s, 0) + " s passed; exiting (exit 3)");
      print_table();
      std::_Exit(3);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// A CUDA call inside a part: on error, an ERROR row and the part returns false.
#define CK(part, name, expr)                                                              \
  do {                                                                                    \
    const cudaError_t ck_e = (expr);                                                      \
    if (ck_e != cudaSuccess) {                                                            \
      bad(part, name, "ERROR", std::string(#expr) + ": " + cudaGetErrorString(ck_e));     \
      return false;                                                                       \
    }                                                                                     \
  } while (0)

// Device-side status of one launch.
struct DevStatus {
  int fail;       // 1 = a bounded spin ran out (or saw another CTA's failure)
  int wrong;      // values received that were not the ones sent
  long long t0;   // %globaltimer (ns), CTA 0 thread 0, start of the timed loop
  long long t1;   // ... end
  long long c0;   // clock64 at the same points (SM cycles)
  long long c1;
};

__device__ __forceinline__ long long globaltimer() {
  long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// The spin budget in SM cycles (set from the host: ~0.5 s at the device's clock).
__device__ __forceinline__ bool spin_out(long long start, long long budget, DevStatus* st) {
  if (clock64() - start > budget) {
    atomicExch(&st->fail, 1);
    return true;
  }
  return *reinterpret_cast<volatile int*>(&st->fail) != 0;
}

__constant__ long long st_budget_cycles;

struct Device {
  int id = 0;
  cudaDeviceProp prop{};
  int sms = 0;
  int clock_khz = 0;
  long long spin_budget = 0;
};
Device g_dev;

// ------------------------------------------------------------------------------------------
// Part 2: cluster DSMEM exchange

constexpr int kClusterThreads = 256;

// sm_90 PTX for the one-way exchange: st.async into a peer CTA's shared memory completes bytes
// on the peer's mbarrier (PTX ISA 8.1), the peer waits on its own mbarrier's phase.
__device__ __forceinline__ unsigned smem_u32(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ unsigned map_rank(unsigned addr, unsigned rank) {
  unsigned r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(addr), "r"(rank));
  return r;
}
__device__ __forceinline__ void mbar_init(unsigned addr, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(addr), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive_expect(unsigned addr, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(addr), "r"(bytes) : "memory");
}
__device__ __forceinline__ void st_async_f32(unsigned raddr, float v, unsigned rmbar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];" ::"r"(raddr),
               "r"(__float_as_uint(v)), "r"(rmbar)
               : "memory");
}
__device__ __forceinline__ bool mbar_try_wait(unsigned addr, unsigned parity) {
  unsigned done;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n\t"
      "selp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(done)
      : "r"(addr), "r"(parity)
      : "memory");
  return done != 0;
}

// cp.async (sm_80+): a 4-byte global -> shared copy that holds no register until it is read;
// the issuing thread sees the data after cp.async.wait_group.
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(smem_u32(smem)), "l"(gmem)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}
// Waits until at most one of this thread's committed groups is still in flight.
__device__ __forceinline__ void cp_async_wait_all_but_one() {
  asm volatile("cp.async.wait_group 1;" ::: "memory");
}

// The bare cluster barrier of gpu-wave2.md §4 A2: arrive.relaxed orders no memory, so no fence
// is issued before it (cg's cluster.sync() is arrive.release + wait.acquire: a MEMBAR first).
__device__ __forceinline__ void cluster_barrier_relaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\n\tbarrier.cluster.wait.aligned;" ::
                   : "memory");
}

// mode 0: bare cluster.sync() per round; mode 3: bare barrier.cluster (arrive.relaxed + wait)
// per round; mode 1: push my slice of h into every CTA's buffer
// (double-buffered by round parity) + cluster.sync(); mode 2: the same push with st.async,
// completing bytes on the receiver's mbarrier (one per buffer parity), and a bounded wait on
// my own mbarrier instead of cluster.sync() (one-way: no barrier round trip).  h[e] of round r
// = h[e] of round r-1 plus one, so after R rounds every copy of every element must be R.
__global__ void __launch_bounds__(kClusterThreads) dsmem_exchange(int nfloats, int rounds, int mode,
                                                                  DevStatus* st) {
  extern __shared__ float buf[];  // [2][nfloats]
  __shared__ alignas(8) unsigned long long mbar[2];
  cg::cluster_group cl = cg::this_cluster();
  const unsigned n = cl.num_blocks();
  const unsigned rank = cl.block_rank();
  for (int i = threadIdx.x; i < 2 * nfloats; i += blockDim.x) buf[i] = 0.0f;
  const int slice = nfloats / static_cast<int>(n);
  // Bytes per round from the peers (my own slice I store locally, with plain stores).
  const unsigned bytes = static_cast<unsigned>(nfloats - slice) * 4u;
  if (mode == 2 && threadIdx.x == 0) {
    mbar_init(smem_u32(&mbar[0]), 1);
    mbar_init(smem_u32(&mbar[1]), 1);
    mbar_init_fence();
    mbar_arrive_expect(smem_u32(&mbar[0]), bytes);  // rounds 2, 4, 6, ...
    mbar_arrive_expect(smem_u32(&mbar[1]), bytes);  // rounds 1, 3, 5, ...
  }
  cl.sync();
  const int base = static_cast<int>(rank) * slice;
  const bool timer = blockIdx.x == 0 && threadIdx.x == 0;
  long long t0 = 0, c0 = 0;
  if (timer) {
    t0 = globaltimer();
    c0 = clock64();
  }
  bool timed_out = false;
  for (int r = 1; r <= rounds && mode == 2; ++r) {
    const int cur = r & 1, prev = cur ^ 1;
    for (int i = threadIdx.x; i < slice; i += blockDim.x) {
      const float v = buf[prev * nfloats + base + i] + 1.0f;
      buf[cur * nfloats + base + i] = v;
      const unsigned la = smem_u32(&buf[cur * nfloats + base + i]), lm = smem_u32(&mbar[cur]);
      for (unsigned p = 0; p < n; ++p) {
        if (p != rank) st_async_f32(map_rank(la, p), v, map_rank(lm, p));
      }
    }
    // Phase k of mbar[cur] is round 2k + cur (rounds counted from 1: k = (r - 1) / 2).
    const unsigned parity = static_cast<unsigned>((r - 1) >> 1) & 1u;
    if (!timed_out) {
      const long long start = clock64();
      for (unsigned spins = 0; !mbar_try_wait(smem_u32(&mbar[cur]), parity);) {
        // The budget is checked every 64th failed poll (not on the first: no clock read and
        // system-scope load in the common short wait).
        if ((++spins & 63u) == 0 && spin_out(start, st_budget_cycles, st)) {
          timed_out = true;  // keep going without waiting: every CTA reaches the final sync
          break;
        }
      }
    }
    // Every thread of the CTA is past this round's phase before thread 0 re-arms the barrier
    // for round r + 2: a thread with nothing to push is otherwise held only by its own wait,
    // could trail by two phases and then wait for one that never comes (a false TIMEOUT).
    __syncthreads();
    if (threadIdx.x == 0 && r + 2 <= rounds) mbar_arrive_expect(smem_u32(&mbar[cur]), bytes);
  }
  for (int r = 1; r <= rounds && mode != 2; ++r) {
    const int cur = r & 1, prev = cur ^ 1;
    if (mode == 3) {
      cluster_barrier_relaxed();
      continue;
    }
    if (mode == 1) {
      for (int i = threadIdx.x; i < slice; i += blockDim.x) {
        const float v = buf[prev * nfloats + base + i] + 1.0f;
        for (unsigned p = 0; p < n; ++p) {
          float* remote = cl.map_shared_rank(buf, p);
          remote[cur * nfloats + base + i] = v;
        }
      }
    }
    cl.sync();
  }
  if (timer) {
    st->t1 = globaltimer();
    st->c1 = clock64();
    st->t0 = t0;
    st->c0 = c0;
  }
  // No CTA leaves while a peer may still write into its shared memory.
  if (mode == 2) cl.sync();
  if (mode == 1 || mode == 2) {
    const int last = rounds & 1;
    int wrong = 0;
    for (int i = threadIdx.x; i < nfloats; i += blockDim.x) {
      if (buf[last * nfloats + i] != static_cast<float>(rounds)) ++wrong;
    }
    if (wrong) atomicAdd(&st->wrong, wrong);
  }
}

// A trivial kernel for the "cooperative + cluster attributes together" launch.
__global__ void trivial_kernel(int* out) {
  if (threadIdx.x == 0) atomicAdd(out, 1);
}

bool launch_cluster(void (*kern)(int, int, int, DevStatus*), int clusters, int csize, size_t smem,
                    cudaStream_t s, int nfloats, int rounds, int mode, DevStatus* st) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(clusters * csize));
  cfg.blockDim = dim3(kClusterThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(csize);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kern, nfloats, rounds, mode, st) == cudaSuccess;
}

int max_active_clusters(const void* kern, int csize, int threads, size_t smem, std::string* why) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(csize));
  cfg.blockDim = dim3(static_cast<unsigned>(threads));
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(csize);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  int n = 0;
  const cudaError_t e = cudaOccupancyMaxActiveClusters(&n, kern, &cfg);
  if (e != cudaSuccess) {
    *why = cudaGetErrorString(e);
    cudaGetLastError();
    return 0;
  }
  return n;
}

bool part2(cudaStream_t s, DevStatus* st, bool quick) {
  const char* P = "2";
  const int rounds = quick ? 2000 : 10000;
  CK(P, "attributes", cudaFuncSetAttribute(dsmem_exchange, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  for (int csize : {2, 4, 8, 16}) {
    for (int variant : {0, 5, 1, 2, 3, 4}) {
      // bare cluster.sync(); bare barrier.cluster (relaxed); cluster.sync() push of 256 / 2048
      // floats; st.async + mbarrier 256 / 2048
      const int mode = variant == 0 ? 0 : variant == 5 ? 3 : (variant <= 2 ? 1 : 2);
      const int nfloats = variant == 0 || variant == 5 ? 0 : (variant % 2 == 1 ? 256 : 2048);
      const int nf = nfloats == 0 ? 256 : nfloats;
      const size_t smem = 2 * static_cast<size_t>(nf) * sizeof(float);
      std::string why;
      const int maxc = max_active_clusters(reinterpret_cast<const void*>(dsmem_exchange), csize,
                                           kClusterThreads, smem, &why);
      for (int all : {0, 1}) {
        if (all && nfloats != 256) continue;  // "as many clusters as fit" only for 256 floats
        const std::string name = "cluster" + std::to_string(csize) +
                                 (mode == 0   ? std::string(" bare cluster.sync()")
                                  : mode == 3 ? std::string(" bare barrier.cluster (relaxed)")
                                  : mode == 1 ? " push " + std::to_string(nfloats) + " floats + cluster.sync()"
                                              : " st.async " + std::to_string(nfloats) + " floats + mbarrier wait") +
                                 (all ? ", " + std::to_string(maxc) + " clusters at once" : ", 1 cluster");
        if (maxc < 1) {
          bad(P, name, "SKIP", "cudaOccupancyMaxActiveClusters = 0" + (why.empty() ? "" : " (" + why + ")"));
          continue;
        }
        const int clusters = all ? maxc : 1;
        CK(P, name, cudaMemsetAsync(st, 0, sizeof(DevStatus), s));
        if (!launch_cluster(dsmem_exchange, clusters, csize, smem, s, nf, rounds, mode, st)) {
          const cudaError_t e = cudaGetLastError();
          bad(P, name, "ERROR", std::string("cluster launch: ") + cudaGetErrorString(e));
          continue;
        }
        CK(P, name, wait_stream(s, P, name));
        DevStatus h{};
        CK(P, name, cudaMemcpy(&h, st, sizeof h, cudaMemcpyDeviceToHost));
        if (h.fail) {
          bad(P, name, "TIMEOUT", "an mbarrier wait ran out of its spin budget (no number)");
          continue;
        }
        if (h.wrong) {
          bad(P, name, "WRONG", std::to_string(h.wrong) + " received values differ from those sent");
          continue;
        }
        const double ns = static_cast<double>(h.t1 - h.t0) / rounds;
        const double ghz = static_cast<double>(h.c1 - h.c0) / static_cast<double>(h.t1 - h.t0);
        ok(P, name, ns, "ns/round", "SM clock " + fmt(ghz, 2) + " GHz", 1);
      }
    }
  }
  return true;
}

// ------------------------------------------------------------------------------------------
// Part 3: grid exchange through global memory

constexpr int kGridThreads = 256;
constexpr int kFlagStride = 32;  // one flag per 128-byte line
constexpr size_t kOneCtaPerSmSmem = 120 * 1024;  // > half an SM's shared memory: 1 CTA/SM

__host__ __device__ __forceinline__ float step_value(int t, int e) {
  return static_cast<float>((t * 7 + e) & 0xFFFF);
}

// A relaxed (device-scope) 128-bit load of two step-tagged words: each 64-bit element is read
// single-copy atomically (a vector access is a set of element accesses), so a word's tag and
// value always belong together.
__device__ __forceinline__ ulonglong2 ld_relaxed_v2(const unsigned long long* p) {
  ulonglong2 v;
  asm volatile("ld.relaxed.gpu.global.v2.u64 {%0, %1}, [%2];"
               : "=l"(v.x), "=l"(v.y)
               : "l"(p)
               : "memory");
  return v;
}

__device__ __forceinline__ bool tagged(ulonglong2 w, int t) {
  return static_cast<unsigned>(w.x >> 32) == static_cast<unsigned>(t) &&
         static_cast<unsigned>(w.y >> 32) == static_cast<unsigned>(t);
}

// mode 0: grid.sync(); 1: per-CTA step flag (release store / acquire polls) after the data;
// 2: step-tagged 64-bit words {value bits, step} polled by the readers.  Per step every CTA
// writes its slice of N floats, waits for the step, then reads and checks all N.  N is a
// template parameter so that each thread's reads are a compile-time count of 128-bit loads
// (N/1024 float4, or N/512 pairs of tagged words), unrolled and all issued before the first
// compare: one L2 round trip per step, not N/256 dependent ones.
template <int N>
__global__ void __launch_bounds__(kGridThreads, 1)
    grid_exchange(int mode, int steps, int warm, float* hb, unsigned long long* hb64,
                  unsigned* flags, DevStatus* st, long long budget) {
  static_assert(N % (4 * kGridThreads) == 0 && N / (4 * kGridThreads) <= 4, "N/1024 in 1..4");
  constexpr int V4 = N / (4 * kGridThreads);  // float4 loads per thread (modes 0, 1)
  constexpr int V2 = N / (2 * kGridThreads);  // 2-word loads per thread (mode 2), <= 8
  __shared__ int abort_cta;
  __shared__ int wrong_cta;
  const int G = static_cast<int>(gridDim.x);
  const int g = static_cast<int>(blockIdx.x);
  const int tid = static_cast<int>(threadIdx.x);
  const int slice = (N + G - 1) / G;
  const int lo = g * slice, hi = min(N, lo + slice);
  if (threadIdx.x == 0) {
    abort_cta = 0;
    wrong_cta = 0;
  }
  __syncthreads();
  const bool timer = g == 0 && threadIdx.x == 0;
  long long t0 = 0, c0 = 0;
  for (int t = 1; t <= steps; ++t) {
    if (timer && t == warm + 1) {
      t0 = globaltimer();
      c0 = clock64();
    }
    const int par = t & 1;
    if (mode == 2) {
      for (int e = lo + tid; e < hi; e += blockDim.x) {
        const float v = step_value(t, e);
        const unsigned long long w =
            (static_cast<unsigned long long>(t) << 32) | __float_as_uint(v);
        cuda::atomic_ref<unsigned long long, cuda::thread_scope_device> a(hb64[par * N + e]);
        a.store(w, cuda::memory_order_relaxed);
      }
      // Words 2 (tid + k kGridThreads) and the next: all loads first, then re-poll only the
      // pairs whose tag is not yet t.
      const unsigned long long* src = hb64 + par * N;
      ulonglong2 w[V2];
#pragma unroll
      for (int k = 0; k < V2; ++k) w[k] = ld_relaxed_v2(src + 2 * (tid + k * kGridThreads));
      unsigned pending = 0;
#pragma unroll
      for (int k = 0; k < V2; ++k) pending |= tagged(w[k], t) ? 0u : 1u << k;
      if (pending != 0) {
        const long long start = clock64();
        for (unsigned spins = 0; pending != 0;) {
          if ((++spins & 63u) == 0 && spin_out(start, budget, st)) {
            abort_cta = 1;
            break;
          }
#pragma unroll
          for (int k = 0; k < V2; ++k) {
            if (pending & (1u << k)) w[k] = ld_relaxed_v2(src + 2 * (tid + k * kGridThreads));
          }
          pending = 0;
#pragma unroll
          for (int k = 0; k < V2; ++k) pending |= tagged(w[k], t) ? 0u : 1u << k;
        }
      }
      if (pending == 0) {
        int wrong = 0;
#pragma unroll
        for (int k = 0; k < V2; ++k) {
          const int e = 2 * (tid + k * kGridThreads);
          wrong += __uint_as_float(static_cast<unsigned>(w[k].x)) != step_value(t, e);
          wrong += __uint_as_float(static_cast<unsigned>(w[k].y)) != step_value(t, e + 1);
        }
        if (wrong) atomicAdd(&wrong_cta, wrong);
      }
      // Orders this step's reads before the next step's overwrite of the other parity.
      __threadfence();
      __syncthreads();
    } else {
      for (int e = lo + tid; e < hi; e += blockDim.x) {
        __stcg(&hb[par * N + e], step_value(t, e));
      }
      if (mode == 0) {
        cg::this_grid().sync();
      } else {
        __syncthreads();
        if (threadIdx.x == 0) {
          cuda::atomic_ref<unsigned, cuda::thread_scope_device> f(flags[g * kFlagStride]);
          f.store(static_cast<unsigned>(t), cuda::memory_order_release);
        }
        for (int j = tid; j < G; j += blockDim.x) {
          cuda::atomic_ref<unsigned, cuda::thread_scope_device> f(flags[j * kFlagStride]);
          if (f.load(cuda::memory_order_acquire) >= static_cast<unsigned>(t)) continue;
          const long long start = clock64();
          for (unsigned spins = 0; f.load(cuda::memory_order_acquire) < static_cast<unsigned>(t);) {
            if ((++spins & 63u) == 0 && spin_out(start, budget, st)) {
              abort_cta = 1;
              break;
            }
          }
        }
        __syncthreads();
      }
      if (!abort_cta) {
        const float4* src = reinterpret_cast<const float4*>(hb + par * N);
        float4 v[V4];
#pragma unroll
        for (int k = 0; k < V4; ++k) v[k] = __ldcg(src + tid + k * kGridThreads);
        int wrong = 0;
#pragma unroll
        for (int k = 0; k < V4; ++k) {
          const int e = 4 * (tid + k * kGridThreads);
          wrong += (v[k].x != step_value(t, e)) + (v[k].y != step_value(t, e + 1)) +
                   (v[k].z != step_value(t, e + 2)) + (v[k].w != step_value(t, e + 3));
        }
        if (wrong) atomicAdd(&wrong_cta, wrong);
      }
    }
    __syncthreads();
    if (abort_cta) break;
  }
  if (timer) {
    st->t0 = t0;
    st->c0 = c0;
    st->t1 = globaltimer();
    st->c1 = clock64();
  }
  __syncthreads();
  if (threadIdx.x == 0 && wrong_cta) atomicAdd(&st->wrong, wrong_cta);
}

bool part3(cudaStream_t s, DevStatus* st, bool quick) {
  const char* P = "3";
  const int steps = quick ? 2000 : 10000, warm = 100;
  int per_sm = 1 << 30;  // the smaller of the two instantiations' (N = 1024, 4096)
  for (auto kern : {grid_exchange<1024>, grid_exchange<4096>}) {
    CK(P, "attributes", cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(kOneCtaPerSmSmem)));
    int k_per_sm = 0;
    CK(P, "occupancy", cudaOccupancyMaxActiveBlocksPerMultiprocessor(&k_per_sm, kern, kGridThreads,
                                                                      kOneCtaPerSmSmem));
    per_sm = std::min(per_sm, k_per_sm);
  }
  info(P, "co-resident CTAs/SM of the exchange kernel (256 threads, 120 KB smem)",
       std::to_string(per_sm));
  const int nmax = 4096;
  float* hb = nullptr;
  unsigned long long* hb64 = nullptr;
  unsigned* flags = nullptr;
  CK(P, "alloc", cudaMalloc(&hb, 2 * nmax * sizeof(float)));
  CK(P, "alloc", cudaMalloc(&hb64, 2 * nmax * sizeof(unsigned long long)));
  CK(P, "alloc", cudaMalloc(&flags, 1024 * kFlagStride * sizeof(unsigned)));
  std::vector<int> sizes;
  for (int g : {8, 32, 66, 132}) sizes.push_back(g);
  if (std::find(sizes.begin(), sizes.end(), g_dev.sms) == sizes.end()) sizes.push_back(g_dev.sms);
  const char* mode_name[3] = {"grid.sync()", "step flags (release/acquire)", "step-tagged 64-bit data"};
  bool okay = true;
  for (int n : {1024, 4096}) {
    const auto kern = n == 1024 ? grid_exchange<1024> : grid_exchange<4096>;
    for (int G : sizes) {
      for (int mode : {0, 1, 2}) {
        const std::string name = std::string(mode_name[mode]) + ", " + std::to_string(G) + " CTAs, " +
                                 std::to_string(n) + " floats";
        if (per_sm < 1 || G > g_dev.sms * per_sm || G > g_dev.sms) {
          bad(P, name, "SKIP", "not co-resident one per SM: " + std::to_string(g_dev.sms) + " SMs x " +
                                   std::to_string(per_sm) + " CTA/SM");
          continue;
        }
        if (cudaMemsetAsync(st, 0, sizeof(DevStatus), s) != cudaSuccess ||
            cudaMemsetAsync(flags, 0, 1024 * kFlagStride * sizeof(unsigned), s) != cudaSuccess ||
            cudaMemsetAsync(hb64, 0, 2 * nmax * sizeof(unsigned long long), s) != cudaSuccess) {
          bad(P, name, "ERROR", "memset failed");
          okay = false;
          break;
        }
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(static_cast<unsigned>(G));
        cfg.blockDim = dim3(kGridThreads);
        cfg.dynamicSmemBytes = kOneCtaPerSmSmem;
        cfg.stream = s;
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeCooperative;
        attr[0].val.cooperative = 1;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
        const cudaError_t le = cudaLaunchKernelEx(&cfg, kern, mode, steps, warm, hb, hb64, flags,
                                                  st, g_dev.spin_budget);
        if (le != cudaSuccess) {
          cudaGetLastError();
          bad(P, name, "ERROR", std::string("cooperative launch: ") + cudaGetErrorString(le));
          continue;
        }
        CK(P, name, wait_stream(s, P, name));
        DevStatus h{};
        CK(P, name, cudaMemcpy(&h, st, sizeof h, cudaMemcpyDeviceToHost));
        if (h.fail) {
          bad(P, name, "TIMEOUT", "a bounded spin ran out (no number)");
        } else if (h.wrong) {
          bad(P, name, "WRONG", std::to_string(h.wrong) + " received values differ from those sent");
        } else {
          const double ns = static_cast<double>(h.t1 - h.t0) / (steps - warm);
          const double ghz = static_cast<double>(h.c1 - h.c0) / static_cast<double>(h.t1 - h.t0);
          ok(P, name, ns, "ns/step", "SM clock " + fmt(ghz, 2) + " GHz", 1);
        }
      }
    }
  }
  cudaFree(hb);
  cudaFree(hb64);
  cudaFree(flags);
  return okay;
}

// ------------------------------------------------------------------------------------------
// Part 4: L2 / HBM read bandwidth

// Reads n4 float4 `passes` times with L2-only loads (ld.global.cg: an 8 MB set split over
// 132 SMs would otherwise sit in L1), 4 independent accumulators; one float per thread out.
__global__ void __launch_bounds__(512) read_bw(const float4* __restrict__ p, long long n4, int passes,
                                               float* sink) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  const long long i0 = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (int k = 0; k < passes; ++k) {
    long long i = i0;
    for (; i + 3 * stride < n4; i += 4 * stride) {
      const float4 v0 = __ldcg(p + i), v1 = __ldcg(p + i + stride);
      const float4 v2 = __ldcg(p + i + 2 * stride), v3 = __ldcg(p + i + 3 * stride);
      a0 += v0.x + v0.y + v0.z + v0.w;
      a1 += v1.x + v1.y + v1.z + v1.w;
      a2 += v2.x + v2.y + v2.z + v2.w;
      a3 += v3.x + v3.y + v3.z + v3.w;
    }
    for (; i < n4; i += stride) {
      const float4 v = __ldcg(p + i);
      a0 += v.x + v.y + v.z + v.w;
    }
  }
  sink[i0] = a0 + a1 + a2 + a3;
}

// GB/s of `passes` reads of the first `bytes` of buf (one warm-up launch first).
bool time_read(cudaStream_t s, const float* buf, size_t bytes, int passes, float* sink, int blocks,
               const std::string& name, double* gbs) {
  const char* P = "4";
  const long long n4 = static_cast<long long>(bytes / 16);
  cudaEvent_t e0, e1;
  CK(P, name, cudaEventCreate(&e0));
  CK(P, name, cudaEventCreate(&e1));
  read_bw<<<blocks, 512, 0, s>>>(reinterpret_cast<const float4*>(buf), n4, 1, sink);
  CK(P, name, cudaGetLastError());
  CK(P, name, cudaEventRecord(e0, s));
  read_bw<<<blocks, 512, 0, s>>>(reinterpret_cast<const float4*>(buf), n4, passes, sink);
  CK(P, name, cudaGetLastError());
  CK(P, name, cudaEventRecord(e1, s));
  CK(P, name, wait_stream(s, P, name));
  float ms = 0;
  CK(P, name, cudaEventElapsedTime(&ms, e0, e1));
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  *gbs = static_cast<double>(n4) * 16.0 * passes / (ms * 1e-3) / 1e9;
  return true;
}

bool part4(cudaStream_t s, bool quick) {
  const char* P = "4";
  const size_t MB = 1024 * 1024;
  const size_t hbm = 1024 * MB;
  float* buf = nullptr;
  float* sink = nullptr;
  int per_sm = 0;
  CK(P, "occupancy", cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, read_bw, 512, 0));
  const int blocks = g_dev.sms * std::max(per_sm, 1);
  CK(P, "alloc", cudaMalloc(&buf, hbm));
  CK(P, "alloc", cudaMalloc(&sink, static_cast<size_t>(blocks) * 512 * sizeof(float)));
  CK(P, "fill", cudaMemsetAsync(buf, 0x3c, hbm, s));  // 0x3c3c3c3c = 0.0115 (finite)
  const double target = quick ? 2e9 : 8e9;  // bytes read per measurement
  for (size_t mb : {8, 16, 24, 32, 40, 48}) {
    const size_t bytes = mb * MB;
    const int passes = static_cast<int>(std::max(1.0, target / static_cast<double>(bytes)));
    double gbs = 0;
    const std::string name = "read " + std::to_string(mb) + " MB working set (L2-only loads)";
    if (!time_read(s, buf, bytes, passes, sink, blocks, name, &gbs)) continue;
    ok(P, name, gbs, "GB/s", std::to_string(passes) + " passes", 0);
  }
  {
    double gbs = 0;
    const std::string name = "read 1024 MB (HBM)";
    if (time_read(s, buf, hbm, quick ? 2 : 6, sink, blocks, name, &gbs)) ok(P, name, gbs, "GB/s", "", 0);
  }
  // Persisting window.
  int max_persist = 0, max_window = 0;
  CK(P, "attributes", cudaDeviceGetAttribute(&max_persist, cudaDevAttrMaxPersistingL2CacheSize, g_dev.id));
  CK(P, "attributes", cudaDeviceGetAttribute(&max_window, cudaDevAttrMaxAccessPolicyWindowSize, g_dev.id));
  for (size_t mb : {20, 40, 60}) {
    const size_t bytes = mb * MB;
    const int passes = static_cast<int>(std::max(1.0, target / static_cast<double>(bytes)));
    const std::string base = "read " + std::to_string(mb) + " MB W_h-like buffer";
    double plain = 0, pers = 0;
    if (!time_read(s, buf, bytes, passes, sink, blocks, base + ", no window", &plain)) continue;
    ok(P, base + ", no window", plain, "GB/s", "", 0);
    const std::string name = base + ", persisting window";
    if (max_persist <= 0 || max_window <= 0) {
      bad(P, name, "SKIP", "persisting L2 not available (max " + std::to_string(max_persist) + " B)");
      continue;
    }
    const cudaError_t le = cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, static_cast<size_t>(max_persist));
    if (le != cudaSuccess) {
      cudaGetLastError();
      bad(P, name, "SKIP", std::string("cudaLimitPersistingL2CacheSize: ") + cudaGetErrorString(le));
      continue;
    }
    cudaStreamAttrValue v = {};
    const size_t win = std::min(bytes, static_cast<size_t>(max_window));
    v.accessPolicyWindow.base_ptr = buf;
    v.accessPolicyWindow.num_bytes = win;
    v.accessPolicyWindow.hitRatio =
        static_cast<float>(std::min(1.0, static_cast<double>(max_persist) / static_cast<double>(win)));
    v.accessPolicyWindow.hitProp = cudaAccessPropertyPersisting;
    v.accessPolicyWindow.missProp = cudaAccessPropertyStreaming;
    CK(P, name, cudaStreamSetAttribute(s, cudaStreamAttributeAccessPolicyWindow, &v));
    const bool timed = time_read(s, buf, bytes, passes, sink, blocks, name, &pers);
    v.accessPolicyWindow.num_bytes = 0;
    CK(P, name, cudaStreamSetAttribute(s, cudaStreamAttributeAccessPolicyWindow, &v));
    CK(P, name, cudaCtxResetPersistingL2Cache());
    CK(P, name, cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, 0));
    if (!timed) continue;
    ok(P, name, pers, "GB/s",
       "window " + std::to_string(win / MB) + " MB, hitRatio " + fmt(v.accessPolicyWindow.hitRatio, 2) +
           ", set-aside " + std::to_string(max_persist / static_cast<int>(MB)) + " MB; x" +
           fmt(pers / plain, 2) + " vs no window",
       0);
  }
  cudaFree(buf);
  cudaFree(sink);
  return true;
}

// ------------------------------------------------------------------------------------------
// Part 5: register-resident recurrence prototype

constexpr int kProtoT = 1000;
constexpr int kProtoBRef = 4;  // the reference and z_x are computed for 4 rows; B uses the first B
constexpr float kForgetBias = 1.0f;

__device__ __forceinline__ float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

// One layer, T steps.  Each CTA owns UPW*WARPS whole cells (units); warp w, lane l holds
// W_h[q*H + u][l + 32 j] (gate q, unit u, j < H/32) in registers for the whole sequence.
// Per step: every lane multiplies its weights with h_{t-1} (all B rows, from shared memory),
// a warp all-reduce gives the 4 gate sums of each unit and row, lane b adds z_x[t] (copied
// one step ahead, at the top of step t-1, into shared memory with cp.async: at H = 1024 z_x is
// 65.5 MB, more than L2, so a load on the step's critical path would wait on HBM; a register
// double buffer spills at 512 threads, B = 4) and runs the cell (c in a register), writes
// y[t] and sends h to every CTA:
//   kExSync:  DSMEM stores into every CTA of the cluster, then the cluster barrier split:
//             arrive.release, the y[t] store, wait.acquire (the release fence that
//             cluster.sync() issues covers the DSMEM stores, not this step's y store);
//   kExAsync: st.async into the peers' shared memory completing bytes on their mbarrier (one
//             per parity), a plain local store + __syncthreads(), a bounded wait on my own
//             mbarrier (one-way, no cluster barrier per step);
//   kExFlags: a co-resident grid (one CTA per SM): global memory + a step flag per CTA
//             (release/acquire, bounded spins), then every CTA copies h into its shared
//             memory (all its float4 loads issued before the first shared store).
// z_x holds the input projection with the bias: [T][kProtoBRef][4H], canonical gate order.
constexpr int kExSync = 0, kExAsync = 1, kExFlags = 2;
template <int H, int UPW, int WARPS, int B, int EX>
__global__ void __launch_bounds__(WARPS * 32, 1)
    proto_lstm(const float* __restrict__ W, const float* __restrict__ zx, int T, float* y,
               float* hglob, unsigned* flags, DevStatus* st, long long budget) {
  constexpr int KJ = H / 32;
  constexpr int UPC = UPW * WARPS;
  constexpr bool CLUSTER = EX != kExFlags;
  __shared__ alignas(16) float hs[2][B][H];
  __shared__ float zs[2][WARPS][B][UPW * 4];  // z_x[t] for lane b < B of each warp, by parity
  __shared__ alignas(8) unsigned long long mbar[2];
  __shared__ int abort_cta;
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  int rank = static_cast<int>(blockIdx.x), nctas = static_cast<int>(gridDim.x);
  if constexpr (CLUSTER) {
    rank = static_cast<int>(cg::this_cluster().block_rank());
    nctas = static_cast<int>(cg::this_cluster().num_blocks());
  }
  float w[UPW][4][KJ];
#pragma unroll
  for (int uu = 0; uu < UPW; ++uu) {
    const int u = rank * UPC + warp * UPW + uu;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
#pragma unroll
      for (int j = 0; j < KJ; ++j) w[uu][q][j] = W[static_cast<size_t>(q * H + u) * H + lane + 32 * j];
    }
  }
  float c[UPW];
#pragma unroll
  for (int uu = 0; uu < UPW; ++uu) c[uu] = 0.0f;
  for (int i = static_cast<int>(threadIdx.x); i < 2 * B * H; i += blockDim.x) (&hs[0][0][0])[i] = 0.0f;
  if (threadIdx.x == 0) abort_cta = 0;
  // kExAsync: bytes per step from the peers (all rows of every unit but mine).
  constexpr unsigned kAsyncBytes = static_cast<unsigned>(B * (H - UPC)) * 4u;
  if constexpr (EX == kExAsync) {
    if (threadIdx.x == 0) {
      mbar_init(smem_u32(&mbar[0]), 1);
      mbar_init(smem_u32(&mbar[1]), 1);
      mbar_init_fence();
      mbar_arrive_expect(smem_u32(&mbar[0]), kAsyncBytes);  // steps 0, 2, 4, ...
      mbar_arrive_expect(smem_u32(&mbar[1]), kAsyncBytes);  // steps 1, 3, 5, ...
    }
  }
  if constexpr (CLUSTER) {
    cg::this_cluster().sync();
  } else {
    __syncthreads();
  }
  // Lane b < B copies z_x[t][b] of this warp's units into zs[t & 1][warp][b] (one commit
  // group per step, empty for the other lanes and past the last step).
  const float* zrow = zx + static_cast<size_t>(min(lane, B - 1)) * 4 * H;
  constexpr size_t kZStep = static_cast<size_t>(kProtoBRef) * 4 * H;
  auto fetch_z = [&](int t) {
    if (lane < B && t < T) {
      const float* z = zrow + static_cast<size_t>(t) * kZStep;
#pragma unroll
      for (int uu = 0; uu < UPW; ++uu)
#pragma unroll
        for (int q = 0; q < 4; ++q)
          cp_async4(&zs[t & 1][warp][lane][uu * 4 + q], z + q * H + rank * UPC + warp * UPW + uu);
    }
    cp_async_commit();
  };
  fetch_z(0);
  float hy[UPW];  // kExSync: lane b's h of this step, stored to y after the barrier's arrive
#pragma unroll
  for (int uu = 0; uu < UPW; ++uu) hy[uu] = 0.0f;
  const bool timer = blockIdx.x == 0 && threadIdx.x == 0;
  long long t0 = 0, c0 = 0;
  if (timer) {
    t0 = globaltimer();
    c0 = clock64();
  }
  bool timed_out = false;
  for (int t = 0; t < T; ++t) {
    const int cur = t & 1, prev = cur ^ 1;
    fetch_z(t + 1);  // the next step's z_x, off this step's critical path
    float acc[UPW][4][B];
#pragma unroll
    for (int uu = 0; uu < UPW; ++uu)
#pragma unroll
      for (int q = 0; q < 4; ++q)
#pragma unroll
        for (int b = 0; b < B; ++b) acc[uu][q][b] = 0.0f;
#pragma unroll
    for (int j = 0; j < KJ; ++j) {
#pragma unroll
      for (int b = 0; b < B; ++b) {
        const float hv = hs[prev][b][lane + 32 * j];
#pragma unroll
        for (int uu = 0; uu < UPW; ++uu)
#pragma unroll
          for (int q = 0; q < 4; ++q) acc[uu][q][b] = fmaf(w[uu][q][j], hv, acc[uu][q][b]);
      }
    }
#pragma unroll
    for (int uu = 0; uu < UPW; ++uu)
#pragma unroll
      for (int q = 0; q < 4; ++q)
#pragma unroll
        for (int b = 0; b < B; ++b)
#pragma unroll
          for (int off = 16; off > 0; off >>= 1) acc[uu][q][b] += __shfl_xor_sync(0xffffffffu, acc[uu][q][b], off);
    cp_async_wait_all_but_one();  // this step's z_x (issued a step ago) is in zs[cur]
#pragma unroll
    for (int uu = 0; uu < UPW; ++uu) {
      const int u = rank * UPC + warp * UPW + uu;
#pragma unroll
      for (int b = 0; b < B; ++b) {
        if (lane == b) {
          const float* z = &zs[cur][warp][b][uu * 4];
          const float zi = acc[uu][0][b] + z[0], zf = acc[uu][1][b] + z[1];
          const float zg = acc[uu][2][b] + z[2], zo = acc[uu][3][b] + z[3];
          const float cn = c[uu] * sigm(zf + kForgetBias) + sigm(zi) * tanhf(zg);
          c[uu] = cn;
          const float hn = tanhf(cn) * sigm(zo);
          if constexpr (EX == kExSync) {
            hy[uu] = hn;
          } else {
            y[(static_cast<size_t>(t) * B + b) * H + u] = hn;
          }
          if constexpr (EX == kExSync) {
            for (int p = 0; p < nctas; ++p) {
              float* remote = cg::this_cluster().map_shared_rank(&hs[cur][b][u], static_cast<unsigned>(p));
              *remote = hn;
            }
          } else if constexpr (EX == kExAsync) {
            hs[cur][b][u] = hn;
            const unsigned la = smem_u32(&hs[cur][b][u]), lm = smem_u32(&mbar[cur]);
            for (int p = 0; p < nctas; ++p) {
              if (p != rank) st_async_f32(map_rank(la, static_cast<unsigned>(p)), hn, map_rank(lm, static_cast<unsigned>(p)));
            }
          } else {
            __stcg(&hglob[(static_cast<size_t>(cur) * B + b) * H + u], hn);
          }
        }
      }
    }
    if constexpr (EX == kExSync) {
      // cluster.sync() split so that its release fence does not wait for this step's y store.
      asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
      if (lane < B) {
#pragma unroll
        for (int uu = 0; uu < UPW; ++uu)
          y[(static_cast<size_t>(t) * B + lane) * H + rank * UPC + warp * UPW + uu] = hy[uu];
      }
      asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
    } else if constexpr (EX == kExAsync) {
      __syncthreads();  // my own units' h (plain local stores) for every warp
      if (!timed_out) {
        const long long start = clock64();
        const unsigned parity = static_cast<unsigned>(t >> 1) & 1u;
        for (unsigned spins = 0; !mbar_try_wait(smem_u32(&mbar[cur]), parity);) {
          if ((++spins & 63u) == 0 && spin_out(start, budget, st)) {
            timed_out = true;  // go on without waiting: every CTA reaches the final sync
            break;
          }
        }
      }
      if (threadIdx.x == 0 && t + 2 < T) mbar_arrive_expect(smem_u32(&mbar[cur]), kAsyncBytes);
    } else {
      __syncthreads();
      if (threadIdx.x == 0) {
        cuda::atomic_ref<unsigned, cuda::thread_scope_device> f(flags[rank * kFlagStride]);
        f.store(static_cast<unsigned>(t + 1), cuda::memory_order_release);
      }
      for (int j = tid; j < nctas; j += blockDim.x) {
        cuda::atomic_ref<unsigned, cuda::thread_scope_device> f(flags[j * kFlagStride]);
        const unsigned want = static_cast<unsigned>(t + 1);
        if (f.load(cuda::memory_order_acquire) >= want) continue;
        const long long start = clock64();
        for (unsigned spins = 0; f.load(cuda::memory_order_acquire) < want;) {
          if ((++spins & 63u) == 0 && spin_out(start, budget, st)) {
            abort_cta = 1;
            break;
          }
        }
      }
      __syncthreads();
      if (abort_cta) break;
      // h (B*H floats) into shared memory: every thread's PER float4 loads (and one more for
      // the first REM threads) are issued before its first shared store.
      constexpr int kThreads = WARPS * 32, Q = B * H / 4;
      constexpr int PER = Q / kThreads, REM = Q % kThreads;
      const float4* src = reinterpret_cast<const float4*>(hglob + static_cast<size_t>(cur) * B * H);
      float4* dst = reinterpret_cast<float4*>(&hs[cur][0][0]);
      float4 hv[PER + 1];
#pragma unroll
      for (int k = 0; k < PER; ++k) hv[k] = __ldcg(src + tid + k * kThreads);
      if (REM > 0 && tid < REM) hv[PER] = __ldcg(src + PER * kThreads + tid);
#pragma unroll
      for (int k = 0; k < PER; ++k) dst[tid + k * kThreads] = hv[k];
      if (REM > 0 && tid < REM) dst[PER * kThreads + tid] = hv[PER];
      __syncthreads();
    }
  }
  if (timer) {
    st->t0 = t0;
    st->c0 = c0;
    st->t1 = globaltimer();
    st->c1 = clock64();
  }
  // No CTA leaves while a peer may still write into its shared memory.
  if constexpr (EX == kExAsync) cg::this_cluster().sync();
}

// float64 reference of the same layer (h0 = c0 = 0) for row b: y_ref[t][H].
void reference_row(int H, const std::vector<float>& W, const std::vector<float>& zx, int b,
                   std::vector<double>* yref) {
  std::vector<double> h(static_cast<size_t>(H), 0.0), c(static_cast<size_t>(H), 0.0),
      z(static_cast<size_t>(4 * H));
  std::vector<double> Wd(W.begin(), W.end());
  yref->assign(static_cast<size_t>(kProtoT) * H, 0.0);
  for (int t = 0; t < kProtoT; ++t) {
    const float* zt = zx.data() + (static_cast<size_t>(t) * kProtoBRef + b) * 4 * H;
    for (int r = 0; r < 4 * H; ++r) {
      const double* wr = Wd.data() + static_cast<size_t>(r) * H;
      double s = 0;
      for (int k = 0; k < H; ++k) s += wr[k] * h[static_cast<size_t>(k)];
      z[static_cast<size_t>(r)] = s + zt[r];
    }
    auto sg = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
    for (int u = 0; u < H; ++u) {
      const size_t uu = static_cast<size_t>(u), hh = static_cast<size_t>(H);
      const double cn = c[uu] * sg(z[hh + uu] + kForgetBias) + sg(z[uu]) * std::tanh(z[2 * hh + uu]);
      c[uu] = cn;
      h[uu] = std::tanh(cn) * sg(z[3 * hh + uu]);
      (*yref)[static_cast<size_t>(t) * hh + uu] = h[uu];
    }
  }
}

struct ProtoData {
  int H = 0;
  float* dW = nullptr;
  float* dzx = nullptr;
  float* dy = nullptr;
  float* dh = nullptr;
  unsigned* dflags = nullptr;
  std::vector<std::vector<double>> yref;  // [b][t*H+u]
};

float uniform(std::uint64_t* x, float a) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return static_cast<float>((static_cast<double>(*x >> 11) * (2.0 / 9007199254740992.0) - 1.0) * a);
}

bool proto_prepare(int H, ProtoData* d) {
  const char* P = "5";
  const std::string name = "prepare H=" + std::to_string(H);
  d->H = H;
  std::vector<float> W(static_cast<size_t>(4 * H) * H), zx(static_cast<size_t>(kProtoT) * kProtoBRef * 4 * H);
  std::uint64_t x = 0x1234567ull + static_cast<std::uint64_t>(H);
  const float a = 1.0f / std::sqrt(static_cast<float>(H));
  for (float& v : W) v = uniform(&x, a);
  for (float& v : zx) v = uniform(&x, 1.0f);
  CK(P, name, cudaMalloc(&d->dW, W.size() * sizeof(float)));
  CK(P, name, cudaMalloc(&d->dzx, zx.size() * sizeof(float)));
  CK(P, name, cudaMalloc(&d->dy, static_cast<size_t>(kProtoT) * kProtoBRef * H * sizeof(float)));
  CK(P, name, cudaMalloc(&d->dh, 2 * static_cast<size_t>(kProtoBRef) * H * sizeof(float)));
  CK(P, name, cudaMalloc(&d->dflags, 1024 * kFlagStride * sizeof(unsigned)));
  CK(P, name, cudaMemcpy(d->dW, W.data(), W.size() * sizeof(float), cudaMemcpyHostToDevice));
  CK(P, name, cudaMemcpy(d->dzx, zx.data(), zx.size() * sizeof(float), cudaMemcpyHostToDevice));
  d->yref.assign(kProtoBRef, {});
  std::vector<std::thread> th;
  for (int b = 0; b < kProtoBRef; ++b) {
    th.emplace_back(reference_row, H, std::cref(W), std::cref(zx), b, &d->yref[static_cast<size_t>(b)]);
  }
  for (std::thread& t : th) t.join();
  return true;
}

void proto_free(ProtoData* d) {
  cudaFree(d->dW);
  cudaFree(d->dzx);
  cudaFree(d->dy);
  cudaFree(d->dh);
  cudaFree(d->dflags);
  *d = ProtoData{};
}

template <int H, int UPW, int WARPS, int B, int EX>
void proto_run(cudaStream_t s, DevStatus* st, ProtoData& d) {
  const char* P = "5";
  constexpr int nctas = H / (UPW * WARPS);
  constexpr bool CLUSTER = EX != kExFlags;
  auto kern = proto_lstm<H, UPW, WARPS, B, EX>;
  const std::string name = std::string("LSTM H=") + std::to_string(H) + " B=" + std::to_string(B) + " T=" +
                           std::to_string(kProtoT) + ", " + std::to_string(nctas) + " CTAs x " +
                           std::to_string(WARPS * 32) + " threads, " +
                           (EX == kExSync    ? "one cluster, DSMEM stores + cluster barrier "
                                               "(arrive.release, y store, wait.acquire)"
                            : EX == kExAsync ? "one cluster, st.async + mbarrier"
                                             : "grid, step flags");
  cudaFuncAttributes fa{};
  if (cudaFuncGetAttributes(&fa, kern) != cudaSuccess) {
    cudaGetLastError();
    bad(P, name, "ERROR", "cudaFuncGetAttributes failed");
    return;
  }
  std::string regs = std::to_string(fa.numRegs) + " regs/thread, " +
                     std::to_string(fa.localSizeBytes) + " B local";
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(nctas);
  cfg.blockDim = dim3(WARPS * 32);
  cfg.stream = s;
  // The grid prototype: unused dynamic shared memory (as part 3's) over half an SM's, so that
  // one CTA fits per SM (its registers and static shared memory would allow 4-8).
  if (!CLUSTER) cfg.dynamicSmemBytes = kOneCtaPerSmSmem;
  cudaLaunchAttribute attr[1];
  if (CLUSTER) {
    if (nctas > 8 && cudaFuncSetAttribute(kern, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) != cudaSuccess) {
      cudaGetLastError();
      bad(P, name, "SKIP", "non-portable cluster size not allowed");
      return;
    }
    std::string why;
    const int maxc = max_active_clusters(reinterpret_cast<const void*>(kern), nctas, WARPS * 32, 0, &why);
    if (maxc < 1) {
      bad(P, name, "SKIP", "cluster of " + std::to_string(nctas) + " not placeable" + (why.empty() ? "" : ": " + why));
      return;
    }
    regs += ", " + std::to_string(maxc) + " such clusters co-resident";
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = nctas;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
  } else {
    int per_sm = 0;
    const cudaError_t ae = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                static_cast<int>(kOneCtaPerSmSmem));
    const cudaError_t oe = ae != cudaSuccess ? ae
                           : cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                                 &per_sm, kern, WARPS * 32, kOneCtaPerSmSmem);
    if (oe != cudaSuccess || per_sm != 1) {
      cudaGetLastError();
      bad(P, name, "ERROR", "not one CTA per SM with 120 KB dynamic smem: " +
                                (oe != cudaSuccess ? std::string(cudaGetErrorString(oe))
                                                   : std::to_string(per_sm) + " CTA/SM"));
      return;
    }
    if (g_dev.sms < nctas) {
      bad(P, name, "SKIP", "not co-resident one per SM: " + std::to_string(g_dev.sms) +
                               " SMs < " + std::to_string(nctas) + " CTAs");
      return;
    }
    regs += ", " + std::to_string(per_sm) + " CTA/SM co-resident";
    attr[0].id = cudaLaunchAttributeCooperative;
    attr[0].val.cooperative = 1;
  }
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  if (cudaMemsetAsync(st, 0, sizeof(DevStatus), s) != cudaSuccess ||
      cudaMemsetAsync(d.dflags, 0, 1024 * kFlagStride * sizeof(unsigned), s) != cudaSuccess ||
      cudaMemsetAsync(d.dy, 0xff, static_cast<size_t>(kProtoT) * B * H * sizeof(float), s) != cudaSuccess) {
    bad(P, name, "ERROR", "memset failed");
    return;
  }
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaEventRecord(e0, s);
  const cudaError_t le = cudaLaunchKernelEx(&cfg, kern, static_cast<const float*>(d.dW),
                                            static_cast<const float*>(d.dzx), kProtoT, d.dy, d.dh, d.dflags,
                                            st, g_dev.spin_budget);
  if (le != cudaSuccess) {
    cudaGetLastError();
    bad(P, name, "ERROR", std::string("launch: ") + cudaGetErrorString(le) + " (" + regs + ")");
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return;
  }
  cudaEventRecord(e1, s);
  const cudaError_t we = wait_stream(s, P, name);
  if (we != cudaSuccess) {
    bad(P, name, "ERROR", std::string("kernel: ") + cudaGetErrorString(we));
    return;
  }
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  DevStatus h{};
  std::vector<float> yv(static_cast<size_t>(kProtoT) * B * H);
  if (cudaMemcpy(&h, st, sizeof h, cudaMemcpyDeviceToHost) != cudaSuccess ||
      cudaMemcpy(yv.data(), d.dy, yv.size() * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess) {
    bad(P, name, "ERROR", "copy back failed");
    return;
  }
  if (h.fail) {
    bad(P, name, "TIMEOUT", "a bounded spin ran out (no number)");
    return;
  }
  // Normwise relative error (tests/support.hpp's rule): max |got - want| / max |want|.
  double maxdiff = 0, maxref = 0;
  bool finite = true;
  for (int t = 0; t < kProtoT; ++t) {
    for (int b = 0; b < B; ++b) {
      for (int u = 0; u < H; ++u) {
        const double want = d.yref[static_cast<size_t>(b)][static_cast<size_t>(t) * H + u];
        const double got = yv[(static_cast<size_t>(t) * B + b) * H + u];
        if (!std::isfinite(got)) finite = false;
        maxdiff = std::max(maxdiff, std::fabs(got - want));
        maxref = std::max(maxref, std::fabs(want));
      }
    }
  }
  const double rel = maxdiff / std::max(maxref, 1e-30);
  // FP32 against float64 over 1000 dependent steps: 1e-4 (the library's tests use 1e-5 at
  // T <= 100; the error printed either way).
  if (!finite || !(rel <= 1e-4)) {
    bad(P, name, "WRONG", "normwise rel. error " + (finite ? fmt(rel * 1e6, 2) + "e-6" : std::string("non-finite")) +
                              " > 1e-4 vs float64 reference; " + regs);
    return;
  }
  const double us = static_cast<double>(h.t1 - h.t0) / 1e3 / kProtoT;
  const double ghz = static_cast<double>(h.c1 - h.c0) / static_cast<double>(h.t1 - h.t0);
  ok(P, name, us, "us/step",
     "rel. error " + fmt(rel * 1e6, 2) + "e-6; whole launch " + fmt(ms * 1e3 / kProtoT, 3) +
         " us/step (incl. weight load); SM clock " + fmt(ghz, 2) + " GHz; " + regs);
}

template <int H, int UPW, int WARPS, int EX>
void proto_all_b(cudaStream_t s, DevStatus* st, ProtoData& d) {
  proto_run<H, UPW, WARPS, 1, EX>(s, st, d);
  proto_run<H, UPW, WARPS, 2, EX>(s, st, d);
  proto_run<H, UPW, WARPS, 3, EX>(s, st, d);
  proto_run<H, UPW, WARPS, 4, EX>(s, st, d);
}

bool part5(cudaStream_t s, DevStatus* st, bool quick) {
  ProtoData d;
  if (proto_prepare(256, &d)) {
    proto_all_b<256, 1, 16, kExSync>(s, st, d);   // 16-CTA cluster (non-portable), 16 units per CTA
    proto_all_b<256, 1, 16, kExAsync>(s, st, d);
    proto_all_b<256, 2, 16, kExSync>(s, st, d);   // 8-CTA cluster, 32 units per CTA
    proto_all_b<256, 2, 16, kExAsync>(s, st, d);
    proto_all_b<256, 1, 8, kExFlags>(s, st, d);   // 32-CTA grid
  }
  proto_free(&d);
  if (proto_prepare(512, &d)) {
    proto_all_b<512, 1, 8, kExFlags>(s, st, d);   // 64-CTA grid
    proto_all_b<512, 1, 4, kExFlags>(s, st, d);   // 128-CTA grid
  }
  proto_free(&d);
  if (!quick && proto_prepare(1024, &d)) {
    proto_all_b<1024, 1, 8, kExFlags>(s, st, d);  // 128-CTA grid, 128 weights per lane
  }
  proto_free(&d);
  return true;
}

// ------------------------------------------------------------------------------------------
// Part 6: today's library over a T sweep (C API)

struct LibCase {
  std::string label;
  std::int64_t input, batch;
  std::vector<std::int64_t> layers;
};

// Median µs per call of slstm_session_forward at time T, host or device buffers (wall clock;
// each call returns when its work is done).
bool lib_time(slstm_session* sess, const LibCase& lc, std::int64_t T, bool device, std::size_t n_state,
              double* med_us, std::string* why) {
  const std::size_t n_in = static_cast<std::size_t>(lc.batch * T * lc.input);
  const std::size_t n_out = static_cast<std::size_t>(lc.batch * T * lc.layers.back());
  std::uint64_t x = 99 + static_cast<std::uint64_t>(T);
  std::vector<float> in(n_in), init(n_state), out(n_out), fin(n_state);
  for (float& v : in) v = uniform(&x, 1.0f);
  for (float& v : init) v = uniform(&x, 0.5f);
  slstm_forward_args a;
  slstm_forward_args_init(&a);
  a.batch = lc.batch;
  a.time = T;
  a.input_count = n_in;
  a.initial_state_count = n_state;
  a.output_count = n_out;
  a.final_state_count = n_state;
  float *di = nullptr, *ds = nullptr, *dout = nullptr, *dfin = nullptr;
  if (device) {
    if (cudaMalloc(&di, n_in * 4) != cudaSuccess || cudaMalloc(&ds, n_state * 4) != cudaSuccess ||
        cudaMalloc(&dout, n_out * 4) != cudaSuccess || cudaMalloc(&dfin, n_state * 4) != cudaSuccess ||
        cudaMemcpy(di, in.data(), n_in * 4, cudaMemcpyHostToDevice) != cudaSuccess ||
        cudaMemcpy(ds, init.data(), n_state * 4, cudaMemcpyHostToDevice) != cudaSuccess) {
      *why = "device buffers: " + std::string(cudaGetErrorString(cudaGetLastError()));
      return false;
    }
    a.memory = SLSTM_MEMORY_DEVICE;
    a.input = di;
    a.initial_state = ds;
    a.output = dout;
    a.final_state = dfin;
  } else {
    a.input = in.data();
    a.initial_state = init.data();
    a.output = out.data();
    a.final_state = fin.data();
  }
  bool okay = true;
  std::vector<double> us;
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; okay; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (slstm_session_forward(sess, &a) != SLSTM_OK) {
      *why = std::string("forward: ") + slstm_last_error();
      okay = false;
      break;
    }
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= 3) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    const double spent = std::chrono::duration<double>(t1 - begin).count();
    if ((us.size() >= 20 && spent > 0.15) || us.size() >= 300) break;
  }
  if (device) {
    cudaFree(di);
    cudaFree(ds);
    cudaFree(dout);
    cudaFree(dfin);
  }
  if (!okay) return false;
  std::sort(us.begin(), us.end());
  *med_us = us[us.size() / 2];
  return true;
}

bool part6(bool quick) {
  const char* P = "6";
  if (slstm_backend_available(SLSTM_BACKEND_CUDA) != SLSTM_OK) {
    bad(P, "library CUDA backend", "ERROR", std::string("unavailable: ") + slstm_last_error());
    return false;
  }
  const std::vector<std::int64_t> Ts = quick ? std::vector<std::int64_t>{1, 4, 16, 64}
                                             : std::vector<std::int64_t>{1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
  const std::vector<LibCase> cases = {{"seed [100,200,300] D=128 B=10", 128, 10, {100, 200, 300}},
                                      {"H=256 D=256 B=1, 1 layer", 256, 1, {256}}};
  for (const LibCase& lc : cases) {
    slstm_model_config mc;
    slstm_model_config_init(&mc);
    mc.input_size = lc.input;
    mc.num_layers = static_cast<std::int32_t>(lc.layers.size());
    mc.hidden_sizes = lc.layers.data();
    slstm_model* model = nullptr;
    if (slstm_model_create_random(&mc, 1234, 0.0f, &model) != SLSTM_OK) {
      bad(P, lc.label, "ERROR", std::string("model: ") + slstm_last_error());
      continue;
    }
    slstm_session_options so;
    slstm_session_options_init(&so);
    so.backend = SLSTM_BACKEND_CUDA;
    so.max_batch = lc.batch;
    so.max_time = Ts.back();
    slstm_session* sess = nullptr;
    if (slstm_session_create(model, &so, &sess) != SLSTM_OK) {
      bad(P, lc.label, "ERROR", std::string("session: ") + slstm_last_error());
      slstm_model_destroy(model);
      continue;
    }
    std::size_t n_state = 0;
    slstm_model_state_count(model, lc.batch, &n_state);
    for (bool device : {false, true}) {
      const std::string mem = device ? "device-to-device" : "host-to-host";
      std::vector<double> xs, ys;
      for (std::int64_t T : Ts) {
        double med = 0;
        std::string why;
        const std::string name = lc.label + ", " + mem + ", T=" + std::to_string(T);
        if (!lib_time(sess, lc, T, device, n_state, &med, &why)) {
          bad(P, name, "ERROR", why);
          continue;
        }
        ok(P, name, med, "us/call", "median, wall clock", 1);
        xs.push_back(static_cast<double>(T));
        ys.push_back(med);
      }
      // Unweighted least squares over the points with T <= tmax: {fixed, per step}.
      auto fit = [&](double tmax, double* fixed, double* slope) {
        double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        for (size_t i = 0; i < xs.size(); ++i) {
          if (xs[i] > tmax) continue;
          n += 1;
          sx += xs[i];
          sy += ys[i];
          sxx += xs[i] * xs[i];
          sxy += xs[i] * ys[i];
        }
        if (n < 3) return false;
        *slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
        *fixed = (sy - *slope * sx) / n;
        return true;
      };
      double fixed = 0, slope = 0, fixed32 = 0, slope32 = 0;
      if (fit(1e30, &fixed, &slope)) {
        // The fit over all T is dominated by the large T (a few % of error there is more than
        // the whole fixed cost): the T = 1 median and the fit over T <= 32 go beside it.
        std::string note = "unweighted fit over T = " + std::to_string(Ts.front()) + ".." +
                           std::to_string(Ts.back());
        if (xs.front() == 1) note += "; T = 1 median " + fmt(ys.front(), 1) + " us";
        const bool small = fit(32, &fixed32, &slope32);
        if (small) note += "; fit over T <= 32: " + fmt(fixed32, 1) + " us";
        ok(P, lc.label + ", " + mem + ": fixed cost (least squares)", fixed, "us/call", note, 1);
        ok(P, lc.label + ", " + mem + ": per-step cost (least squares)", slope, "us/step",
           small ? "fit over T <= 32: " + fmt(slope32, 3) + " us/step" : "", 3);
      }
    }
    slstm_session_destroy(sess);
    slstm_model_destroy(model);
  }
  return true;
}

// ------------------------------------------------------------------------------------------
// Part 1: device facts

bool part1(cudaStream_t s) {
  const char* P = "1";
  const int d = g_dev.id;
  auto attr = [&](cudaDeviceAttr a) {
    int v = 0;
    if (cudaDeviceGetAttribute(&v, a, d) != cudaSuccess) {
      cudaGetLastError();
      return -1;
    }
    return v;
  };
  int drv = 0, rt = 0;
  cudaDriverGetVersion(&drv);
  cudaRuntimeGetVersion(&rt);
  info(P, "device", g_dev.prop.name, "cc " + std::to_string(g_dev.prop.major) + "." + std::to_string(g_dev.prop.minor));
  info(P, "driver / runtime (CUDA version numbers)", std::to_string(drv) + " / " + std::to_string(rt));
  info(P, "SMs", std::to_string(g_dev.sms));
  info(P, "max SM clock", fmt(attr(cudaDevAttrClockRate) / 1e6, 3) + " GHz");
  info(P, "memory clock / bus", fmt(attr(cudaDevAttrMemoryClockRate) / 1e6, 3) + " GHz / " +
                                     std::to_string(attr(cudaDevAttrGlobalMemoryBusWidth)) + " bit");
  info(P, "L2 size", std::to_string(attr(cudaDevAttrL2CacheSize) / 1024) + " KiB");
  info(P, "persisting L2 max (cudaDevAttrMaxPersistingL2CacheSize)",
       std::to_string(attr(cudaDevAttrMaxPersistingL2CacheSize) / 1024) + " KiB");
  info(P, "access policy max window", std::to_string(attr(cudaDevAttrMaxAccessPolicyWindowSize) / 1024) + " KiB");
  info(P, "shared memory per block opt-in", std::to_string(attr(cudaDevAttrMaxSharedMemoryPerBlockOptin)) + " B");
  info(P, "shared memory per SM", std::to_string(attr(cudaDevAttrMaxSharedMemoryPerMultiprocessor)) + " B");
  info(P, "registers per SM", std::to_string(attr(cudaDevAttrMaxRegistersPerMultiprocessor)));
  info(P, "cluster launch supported", std::to_string(attr(cudaDevAttrClusterLaunch)));
  info(P, "cooperative launch supported", std::to_string(attr(cudaDevAttrCooperativeLaunch)));
  // Max cluster size of the exchange kernel, portable and non-portable.
  for (int nonportable : {0, 1}) {
    const std::string name = std::string("max cluster size (cudaOccupancyMaxPotentialClusterSize), ") +
                             (nonportable ? "non-portable allowed" : "portable");
    if (cudaFuncSetAttribute(dsmem_exchange, cudaFuncAttributeNonPortableClusterSizeAllowed, nonportable) !=
        cudaSuccess) {
      cudaGetLastError();
      bad(P, name, "ERROR", "cudaFuncSetAttribute(NonPortableClusterSizeAllowed) failed");
      continue;
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(16);
    cfg.blockDim = dim3(kClusterThreads);
    cfg.dynamicSmemBytes = 2 * 2048 * sizeof(float);
    int size = 0;
    const cudaError_t e = cudaOccupancyMaxPotentialClusterSize(&size, dsmem_exchange, &cfg);
    if (e != cudaSuccess) {
      cudaGetLastError();
      bad(P, name, "ERROR", cudaGetErrorString(e));
    } else {
      info(P, name, std::to_string(size), "256 threads, 16 KB smem");
    }
  }
  CK(P, "attributes", cudaFuncSetAttribute(dsmem_exchange, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  // Co-resident clusters of 8 and 16 CTAs at one CTA per SM (200 KB of shared memory each).
  if (cudaFuncSetAttribute(dsmem_exchange, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024) == cudaSuccess) {
    for (int cs : {2, 4, 8, 16}) {
      std::string why;
      const int n = max_active_clusters(reinterpret_cast<const void*>(dsmem_exchange), cs, kClusterThreads,
                                        200 * 1024, &why);
      info(P, "max co-resident clusters of " + std::to_string(cs) + " CTAs at 1 CTA/SM (200 KB smem)",
           std::to_string(n), why);
    }
    for (int cs : {8, 16}) {
      std::string why;
      const int n = max_active_clusters(reinterpret_cast<const void*>(dsmem_exchange), cs, kClusterThreads,
                                        2 * 2048 * sizeof(float), &why);
      info(P, "max co-resident clusters of " + std::to_string(cs) + " CTAs (256 threads, 16 KB smem)",
           std::to_string(n), why);
    }
  } else {
    cudaGetLastError();
    bad(P, "co-resident clusters at 200 KB smem", "ERROR", "cannot opt in to 200 KB of shared memory");
  }
  int per_sm = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, read_bw, 512, 0) == cudaSuccess) {
    info(P, "co-resident CTAs/SM of read_bw (512 threads)", std::to_string(per_sm));
  }
  // The cooperative and cluster attributes together on one launch.
  {
    const std::string name = "launch with cooperative + cluster(8) attributes together";
    int* cnt = nullptr;
    CK(P, name, cudaMalloc(&cnt, sizeof(int)));
    CK(P, name, cudaMemset(cnt, 0, sizeof(int)));
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(16);
    cfg.blockDim = dim3(32);
    cfg.stream = s;
    cudaLaunchAttribute at[2];
    at[0].id = cudaLaunchAttributeCooperative;
    at[0].val.cooperative = 1;
    at[1].id = cudaLaunchAttributeClusterDimension;
    at[1].val.clusterDim.x = 8;
    at[1].val.clusterDim.y = 1;
    at[1].val.clusterDim.z = 1;
    cfg.attrs = at;
    cfg.numAttrs = 2;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, trivial_kernel, cnt);
    if (e != cudaSuccess) {
      cudaGetLastError();
      info(P, name, "refused", cudaGetErrorString(e));
    } else {
      CK(P, name, wait_stream(s, P, name));
      int h = 0;
      CK(P, name, cudaMemcpy(&h, cnt, sizeof h, cudaMemcpyDeviceToHost));
      if (h == 16) info(P, name, "ran", "16 CTAs");
      else bad(P, name, "WRONG", std::to_string(h) + " of 16 CTAs ran");
    }
    cudaFree(cnt);
  }
  return true;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "slstm_gpu_mechanisms: %s\nusage: slstm_gpu_mechanisms [--parts 1,2,3,4,5,6] [--quick] "
               "[--kernel-timeout-s S]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  bool want[7] = {false, true, true, true, true, true, true};
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--parts" && i + 1 < argc) {
      for (bool& w : want) w = false;
      const std::string v = argv[++i];
      for (char ch : v) {
        if (ch >= '1' && ch <= '6') want[ch - '0'] = true;
        else if (ch != ',') usage("--parts takes digits 1-6 separated by commas");
      }
    } else if (a == "--kernel-timeout-s" && i + 1 < argc) {
      g_kernel_timeout_s = std::atof(argv[++i]);
      if (!(g_kernel_timeout_s > 0)) usage("--kernel-timeout-s must be > 0");
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  int count = 0;
  const cudaError_t ce = cudaGetDeviceCount(&count);
  if (ce != cudaSuccess || count < 1) {
    std::printf("no usable GPU: %s\n", ce != cudaSuccess ? cudaGetErrorString(ce) : "no CUDA device found");
    return 77;
  }
  if (cudaGetDeviceProperties(&g_dev.prop, 0) != cudaSuccess || cudaSetDevice(0) != cudaSuccess) {
    std::printf("no usable GPU: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 77;
  }
  if (g_dev.prop.major < 9) {
    std::printf("no usable GPU: %s is compute capability %d.%d; this check needs 9.0 (clusters)\n",
                g_dev.prop.name, g_dev.prop.major, g_dev.prop.minor);
    return 77;
  }
  g_dev.sms = g_dev.prop.multiProcessorCount;
  cudaDeviceGetAttribute(&g_dev.clock_khz, cudaDevAttrClockRate, 0);
  // ~0.5 s of spinning at the maximum clock before a wait gives up.
  g_dev.spin_budget = static_cast<long long>(std::max(g_dev.clock_khz, 1000000)) * 500LL;
  if (cudaMemcpyToSymbol(st_budget_cycles, &g_dev.spin_budget, sizeof(long long)) != cudaSuccess) {
    std::printf("no usable GPU: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 77;
  }
  std::printf("slstm_gpu_mechanisms: %s, %d SMs, parts", g_dev.prop.name, g_dev.sms);
  for (int p = 1; p <= 6; ++p) {
    if (want[p]) std::printf(" %d", p);
  }
  std::printf("%s, host deadline per kernel %.0f s\n", quick ? " (quick)" : "", g_kernel_timeout_s);
  cudaStream_t s = nullptr;
  DevStatus* st = nullptr;
  if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess ||
      cudaMalloc(&st, sizeof(DevStatus)) != cudaSuccess) {
    std::printf("no usable GPU: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 77;
  }
  const auto start = std::chrono::steady_clock::now();
  for (int p = 1; p <= 6; ++p) {
    if (!want[p]) continue;
    const auto p0 = std::chrono::steady_clock::now();
    std::printf("=== part %d\n", p);
    std::fflush(stdout);
    switch (p) {
      case 1: part1(s); break;
      case 2: part2(s, st, quick); break;
      case 3: part3(s, st, quick); break;
      case 4: part4(s, quick); break;
      case 5: part5(s, st, quick); break;
      case 6: part6(quick); break;
      default: break;
    }
    // A sticky error (a kernel fault) ends the run: later parts could not run anyway.
    const cudaError_t se = cudaDeviceSynchronize();
    if (se != cudaSuccess) {
      bad(std::to_string(p), "device state after the part", "ERROR", cudaGetErrorString(se));
      if (se != cudaErrorNotReady) {
        print_table();
        return 1;
      }
    }
    std::printf("=== part %d took %.1f s\n", p,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - p0).count());
  }
  std::printf("total %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  print_table();
  cudaFree(st);
  cudaStreamDestroy(s);
  return g_failures > 0 ? 1 : 0;
}
