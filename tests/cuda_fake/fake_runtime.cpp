// A FAKE CUDA runtime and cuBLAS on the host (tests/cuda_fake), for testing the CUDA module's
// host code without a GPU: the real cuda/*.cpp host sources, compiled against include/,
// run on it as the module slstm_cuda_fake (tests/cuda_fake/CMakeLists.txt).
//
// What it emulates, to catch ordering and bounds bugs of the host code:
// - streams: work is queued as host closures and runs only at a sync point (a stream or
//   event synchronize, a synchronous copy, a copy to pageable memory, cudaFree), in a random
//   order ($SLSTM_CUDA_FAKE_SEED, 1 when unset) that honours only stream order, event waits
//   and graph dependencies. A missing wait lets work run before what it needs, with some
//   seeds. $SLSTM_CUDA_FAKE_TRACE prints each piece of work as it runs.
// - capture and graphs: a capture records each closure with its arguments and the edges of
//   the streams that joined it through events; EndCapture rejects a fork that was not
//   joined back; a launch replays the recording, ordered after the stream's earlier work
//   and the same exec's earlier launch.
// - memory: device and pinned allocations are host memory filled with 0xFF (NaN as float,
//   -1 as int); every copy, memset, GEMM and emulated kernel checks its range against one
//   live allocation when it runs, and a copy's kind against where its pointers are (any
//   placement for cudaMemcpyDefault). A pageable source is read when the copy is issued, a
//   pinned one when the copy runs.
// - cuBLAS: cublasSgemm and cublasGemmEx (FP16 / BF16 operands) summed in double on the
//   handle's stream; a captured GEMM needs a workspace (cublasSetWorkspace after
//   cublasSetStream).
// A misuse it detects (bad pointer or range, wrong copy kind, destroyed handle, a wait that
// joins two captures, a deadlock) aborts the process with "cuda-fake FATAL: ...".
// - capture modes: cudaMalloc / cudaFree / cudaMallocHost / cudaFreeHost are the
//   "potentially unsafe" calls; made by a thread whose mode (cudaThreadExchangeStreamCaptureMode,
//   Global by default) is not Relaxed while its own non-relaxed capture, or (mode Global)
//   another thread's Global capture, is under way, they fail with
//   cudaErrorStreamCaptureUnsupported and invalidate that capture, as the CUDA runtime
//   documents.
//
// Not emulated: the legacy default stream's implicit synchronisation (stream 0 is an
// ordinary stream here; cudaMemcpy and cudaDeviceSynchronize run everything queued), the
// per-thread default stream, device-side faults, running out of memory, TF32 (every GEMM is
// exact FP32 in, double sums), timings (every elapsed time is 1 ms), more than one device.
// Work runs on the thread that reaches the sync point, under one lock: concurrency inside a
// kernel is not modelled.
#include "fake_device.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <thread>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

// ---- queued work: a DAG of closures --------------------------------------------------------

struct Node {
  std::function<void()> work;
  std::vector<std::shared_ptr<Node>> deps;
  std::string name;
  bool done = false;
};
using NodeP = std::shared_ptr<Node>;

// A node of a capture or a graph: its dependencies are indices of earlier nodes.
struct GraphNode {
  std::function<void()> work;
  std::vector<int> deps;
  std::string name;
};
struct Capture {
  std::vector<GraphNode> nodes;
  cudaStream_t origin = nullptr;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;          // the thread that began it
  std::set<cudaStream_t> members;  // streams that joined through an event wait
  bool invalid = false;
  bool ended = false;
};

std::uint64_t seed_from_env() {
  const char* s = std::getenv("SLSTM_CUDA_FAKE_SEED");
  return s != nullptr && s[0] != '\0' ? std::strtoull(s, nullptr, 10) : 1;
}

std::recursive_mutex g_mu;
std::uint64_t g_calls = 0;
std::uint64_t g_host_waits = 0;  // cuda_fake::host_waits()
const std::uint64_t g_seed = seed_from_env();
std::mt19937_64 g_rng(g_seed);
const bool g_trace = std::getenv("SLSTM_CUDA_FAKE_TRACE") != nullptr;
std::vector<NodeP> g_pending;
thread_local cudaError_t t_last_error = cudaSuccess;
int g_device = 0;

// Every API entry holds the lock (recursive: queued work runs under it and range-checks).
class Call {
 public:
  Call() : lock_(g_mu) { ++g_calls; }

 private:
  std::lock_guard<std::recursive_mutex> lock_;
};

// Captures under way (capture modes), and this thread's mode.
std::vector<std::weak_ptr<Capture>> g_captures;
thread_local cudaStreamCaptureMode t_capture_mode = cudaStreamCaptureModeGlobal;

// Under the lock: whether this thread may make a potentially unsafe call now; if not, the
// captures that forbid it are invalidated (the caller returns the error).
bool unsafe_call_allowed() {
  if (t_capture_mode == cudaStreamCaptureModeRelaxed) return true;
  bool allowed = true;
  for (const std::weak_ptr<Capture>& w : g_captures) {
    const std::shared_ptr<Capture> c = w.lock();
    if (c == nullptr || c->ended || c->invalid) continue;
    const bool own = c->thread == std::this_thread::get_id();
    const bool forbids = own ? c->mode != cudaStreamCaptureModeRelaxed
                             : t_capture_mode == cudaStreamCaptureModeGlobal &&
                                   c->mode == cudaStreamCaptureModeGlobal;
    if (forbids) {
      c->invalid = true;
      allowed = false;
    }
  }
  return allowed;
}

// Handles made and not yet destroyed (cuda_fake::live_resources), under g_mu.
long g_streams = 0, g_events = 0, g_graphs = 0, g_execs = 0, g_blas = 0;

// Streams, events, graphs and execs are never freed, so that a use after destroy is caught
// (a `destroyed` flag): every one is kept here, where LeakSanitizer sees it reachable.
template <typename T>
T* kept(T* handle) {
  static auto* all = new std::vector<const void*>;  // (never destroyed, as the handles)
  all->push_back(handle);
  return handle;
}

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "cuda-fake FATAL: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

cudaError_t fail(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}

// ---- allocations ---------------------------------------------------------------------------

struct Alloc {
  std::size_t bytes;
  bool device;  // else pinned host memory
  bool live;    // freed entries stay (until their range is reused) so that a use is reported
};
std::map<std::uintptr_t, Alloc> g_allocs;

std::uintptr_t address(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }
std::size_t span(const Alloc& a) { return std::max<std::size_t>(a.bytes, 1); }

const Alloc* find_alloc(const void* p, std::uintptr_t* base) {
  const std::uintptr_t u = address(p);
  auto it = g_allocs.upper_bound(u);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  if (u >= it->first + span(it->second)) return nullptr;
  if (base != nullptr) *base = it->first;
  return &it->second;
}

// The module's 32 MiB cuBLAS workspaces (two per layer) would each be a fresh mmap, faulted
// in page by page: kept in the heap instead, their pages are reused from one session to the
// next (the fault tests make hundreds of sessions). (glibc; other allocators ignore it.)
const bool g_heap_for_large = [] {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
  return true;
}();

void* allocate(std::size_t bytes, bool device) {
  void* p = std::malloc(std::max<std::size_t>(bytes, 1));
  if (p == nullptr) return nullptr;
  std::memset(p, 0xFF, bytes);
  const std::uintptr_t lo = address(p), hi = lo + std::max<std::size_t>(bytes, 1);
  auto it = g_allocs.lower_bound(lo);
  if (it != g_allocs.begin() && std::prev(it)->first + span(std::prev(it)->second) > lo) --it;
  while (it != g_allocs.end() && it->first < hi) it = g_allocs.erase(it);  // freed entries
  g_allocs.emplace(lo, Alloc{bytes, device, true});
  return p;
}

void release(void* p, bool device, const char* what) {
  auto it = g_allocs.find(address(p));
  if (it == g_allocs.end() || !it->second.live || it->second.device != device) {
    die(std::string(what) + " of a pointer it did not allocate, or freed already");
  }
  it->second.live = false;
  std::free(p);
}

enum class Where { Device, Pinned, Pageable };
Where where(const void* p) {
  const Alloc* a = find_alloc(p, nullptr);
  if (a == nullptr || !a->live) return Where::Pageable;
  return a->device ? Where::Device : Where::Pinned;
}

}  // namespace

// ---- handles -------------------------------------------------------------------------------
// Destroyed handles are flagged and kept, so that a later use is reported, not undefined.

struct CUstream_st {
  NodeP last;                     // the stream's last queued node
  std::shared_ptr<Capture> capture;
  std::vector<int> capture_tail;  // the capture's nodes the stream's next node depends on
  bool destroyed = false;
};
struct CUevent_st {
  NodeP node;                     // recorded outside a capture: the node to wait for
  std::shared_ptr<Capture> capture;
  std::vector<int> capture_tail;  // recorded in a capture: the nodes to depend on
  bool destroyed = false;
};
struct CUgraph_st {
  std::vector<GraphNode> nodes;
  bool destroyed = false;
};
struct CUgraphExec_st {
  std::vector<GraphNode> nodes;
  NodeP last_launch;
  bool destroyed = false;
};
struct cublasContext {
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
};

namespace {

CUstream_st g_legacy_stream;  // stream 0

CUstream_st* stream_of(cudaStream_t s) {
  if (s == nullptr) return &g_legacy_stream;
  if (address(s) <= 2) die("the special stream handles (cudaStreamLegacy, PerThread)");
  if (s->destroyed) die("use of a destroyed stream");
  return s;
}
CUevent_st* event_of(cudaEvent_t e) {
  if (e == nullptr || e->destroyed) die("use of a null or destroyed event");
  return e;
}

void run_node(const NodeP& n) {
  if (g_trace) std::fprintf(stderr, "cuda-fake: run %s\n", n->name.c_str());
  if (n->work) n->work();
  n->done = true;
  n->work = nullptr;  // (frees what the closure held; a graph keeps its own copy)
  n->deps.clear();
}

// Runs ready nodes, picked at random, until `target` has run (every node: target null).
void run_until(const NodeP& target) {
  while (target != nullptr ? !target->done : !g_pending.empty()) {
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < g_pending.size(); ++i) {
      const auto& deps = g_pending[i]->deps;
      if (std::all_of(deps.begin(), deps.end(), [](const NodeP& d) { return d->done; })) {
        ready.push_back(i);
      }
    }
    if (ready.empty()) die("deadlock: queued work of which none can run");
    const std::size_t pick = ready[g_rng() % ready.size()];
    const NodeP n = g_pending[pick];
    g_pending.erase(g_pending.begin() + static_cast<std::ptrdiff_t>(pick));
    run_node(n);
  }
}

// A new node at the end of stream `s`, after `extra` too.
NodeP append(CUstream_st* s, std::string name, std::function<void()> work,
             const std::vector<NodeP>& extra = {}) {
  auto n = std::make_shared<Node>();
  n->work = std::move(work);
  n->name = std::move(name);
  if (s->last != nullptr && !s->last->done) n->deps.push_back(s->last);
  for (const NodeP& d : extra) {
    if (d != nullptr && !d->done) n->deps.push_back(d);
  }
  s->last = n;
  g_pending.push_back(n);
  return n;
}

// Queues work on the stream, or records it into the stream's capture.
cudaError_t enqueue_on(cudaStream_t stream, const char* name, std::function<void()> work) {
  CUstream_st* s = stream_of(stream);
  if (s->capture == nullptr) {
    append(s, name, std::move(work));
    return cudaSuccess;
  }
  if (s->capture->invalid) return cudaErrorStreamCaptureInvalidated;
  s->capture->nodes.push_back(GraphNode{std::move(work), s->capture_tail, name});
  s->capture_tail = {static_cast<int>(s->capture->nodes.size() - 1)};
  return cudaSuccess;
}

// A fault injected for this call of `api` (cuda_fake::take_fault); one in an operation on a
// stream under capture also invalidates the capture, as a failed captured call does.
cudaError_t fault_on(const char* api, cudaStream_t stream, const void* ptr) {
  const cudaError_t e = cuda_fake::take_fault(api, ptr);
  if (e != cudaSuccess) {
    CUstream_st* s = stream_of(stream);
    if (s->capture != nullptr) s->capture->invalid = true;
  }
  return e;
}

// Whether node `ancestor` is `from` or one of its ancestors in the graph.
bool reaches(const std::vector<GraphNode>& g, int from, int ancestor) {
  std::vector<int> stack{from};
  std::set<int> seen;
  while (!stack.empty()) {
    const int x = stack.back();
    stack.pop_back();
    if (x == ancestor) return true;
    if (!seen.insert(x).second) continue;
    const auto& deps = g[static_cast<std::size_t>(x)].deps;
    stack.insert(stack.end(), deps.begin(), deps.end());
  }
  return false;
}

void require_kind(Where w, bool device, const char* what) {
  if (device != (w == Where::Device)) {
    die(std::string("memcpy kind mismatch: ") + what + (device ? " is not" : " is") +
        " device memory");
  }
}

// `height` rows of `width` bytes, queued on `stream`; `sync`: returns when the copy is done.
cudaError_t copy_rows(void* dst, std::size_t dpitch, const void* src, std::size_t spitch,
                      std::size_t width, std::size_t height, cudaMemcpyKind kind,
                      cudaStream_t stream, bool sync) {
  if (width > dpitch || width > spitch) return fail(cudaErrorInvalidValue);
  if (width == 0 || height == 0) return cudaSuccess;
  const std::size_t dspan = (height - 1) * dpitch + width;
  const std::size_t sspan = (height - 1) * spitch + width;
  const Where wd = where(dst), ws = where(src);
  switch (kind) {
    case cudaMemcpyHostToDevice:
      require_kind(wd, true, "dst");
      require_kind(ws, false, "src");
      break;
    case cudaMemcpyDeviceToHost:
      require_kind(wd, false, "dst");
      require_kind(ws, true, "src");
      break;
    case cudaMemcpyDeviceToDevice:
      require_kind(wd, true, "dst");
      require_kind(ws, true, "src");
      break;
    case cudaMemcpyDefault:  // (unified addressing: the driver tells where each pointer is)
      break;
    default:
      die("memcpy kind " + std::to_string(static_cast<int>(kind)) + " is not emulated");
  }
  CUstream_st* s = stream_of(stream);
  if (s->capture != nullptr && (ws == Where::Pageable || wd == Where::Pageable)) {
    s->capture->invalid = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  auto rows = [=](const char* from) {
    for (std::size_t r = 0; r < height; ++r) {
      std::memcpy(static_cast<char*>(dst) + r * dpitch, from + r * spitch, width);
    }
  };
  std::function<void()> work;
  if (ws == Where::Pageable) {  // staged when the call is made, as the driver does
    auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                      static_cast<const char*>(src) + sspan);
    work = [=] {
      if (wd != Where::Pageable) cuda_fake::require_device(dst, dspan, "memcpy dst", true);
      rows(staged->data());
    };
  } else {
    work = [=] {
      cuda_fake::require_device(src, sspan, "memcpy src", true);
      if (wd != Where::Pageable) cuda_fake::require_device(dst, dspan, "memcpy dst", true);
      rows(static_cast<const char*>(src));
    };
  }
  const cudaError_t e = enqueue_on(stream, "memcpy", std::move(work));
  if (e != cudaSuccess) return fail(e);
  if (sync || ws == Where::Pageable || wd == Where::Pageable) ++g_host_waits;
  // A pageable destination makes the call synchronous, as with the driver.
  if (s->capture == nullptr && (sync || wd == Where::Pageable)) run_until(s->last);
  return cudaSuccess;
}

// ---- cuBLAS's GEMMs ----------------------------------------------------------------------

// The value of an operand element: float32, IEEE binary16, bfloat16 (decoded here on their
// own, not by the library's conversions).
double float_value(float x) { return x; }
double fp16_value(std::uint16_t h) {
  const int exponent = (h >> 10) & 31, mantissa = h & 1023;
  double v = 0.0;
  if (exponent == 0) {
    v = std::ldexp(mantissa, -24);  // zero and subnormals
  } else if (exponent == 31) {
    v = mantissa != 0 ? std::nan("") : HUGE_VAL;
  } else {
    v = std::ldexp(mantissa + 1024, exponent - 25);
  }
  return (h & 0x8000u) != 0 ? -v : v;
}
double bf16_value(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

// C = alpha op(A) op(B) + beta C, column-major as cuBLAS: op(A) [m, k], op(B) [k, n],
// C [m, n] float32, products and sums in double, queued on the handle's stream.
template <typename T, typename Value>
cublasStatus_t fake_gemm(cublasHandle_t handle, cublasOperation_t transa,
                         cublasOperation_t transb, int m, int n, int k, float alpha, const T* A,
                         int lda, const T* B, int ldb, float beta, float* C, int ldc,
                         const char* name, Value value) {
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (fault_on(name, handle->stream, C) != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  const std::size_t arows = ta ? k : m, acols = ta ? m : k;
  const std::size_t brows = tb ? n : k, bcols = tb ? k : n;
  const auto at_least = [](int ld, std::size_t rows) {
    return static_cast<std::size_t>(ld) >= std::max<std::size_t>(rows, 1);
  };
  if (!at_least(lda, arows) || !at_least(ldb, brows) || !at_least(ldc, m)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  if (stream_of(handle->stream)->capture != nullptr && handle->workspace == nullptr) {
    die("cuBLAS captured without a workspace of its own (cublasSetWorkspace)");
  }
  const double al = alpha, be = beta;  // host pointer mode: read at the call
  const std::size_t M = m, N = n, K = k, LA = lda, LB = ldb, LC = ldc;
  const std::string what(name);
  const cudaError_t e = enqueue_on(handle->stream, name, [=] {
    if (K > 0) {
      cuda_fake::require_device(A, ((acols - 1) * LA + arows) * sizeof(T), (what + " A").c_str());
      cuda_fake::require_device(B, ((bcols - 1) * LB + brows) * sizeof(T), (what + " B").c_str());
    }
    cuda_fake::require_device(C, ((N - 1) * LC + M) * sizeof(float), (what + " C").c_str());
    // op(A) by rows and op(B) by columns, converted once: the dot products below run over
    // contiguous doubles, in the same order (p = 0, 1, ...) as one loop over the operands.
    std::vector<double> arow(M * K), bcol(N * K);
    for (std::size_t i = 0; i < M; ++i) {
      for (std::size_t p = 0; p < K; ++p) {
        arow[i * K + p] = value(ta ? A[p + i * LA] : A[i + p * LA]);
      }
    }
    for (std::size_t j = 0; j < N; ++j) {
      for (std::size_t p = 0; p < K; ++p) {
        bcol[j * K + p] = value(tb ? B[j + p * LB] : B[p + j * LB]);
      }
    }
    for (std::size_t j = 0; j < N; ++j) {
      const double* b = bcol.data() + j * K;
      for (std::size_t i = 0; i < M; ++i) {
        const double* a = arow.data() + i * K;
        double acc = 0.0;
        for (std::size_t p = 0; p < K; ++p) acc += a[p] * b[p];
        float& c = C[i + j * LC];
        const double prev = be == 0.0 ? 0.0 : c;  // beta 0: C is not read (NaN stays out)
        c = static_cast<float>(al * acc + be * prev);
      }
    }
  });
  return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

}  // namespace

namespace cuda_fake {

cudaError_t enqueue(cudaStream_t stream, const char* name, std::function<void()> work) {
  const Call call;
  if (const cudaError_t e = fault_on("kernel launch", stream, nullptr); e != cudaSuccess) {
    return fail(e);
  }
  return fail(enqueue_on(stream, name, std::move(work)));
}

void require_device(const void* p, std::size_t bytes, const char* what, bool allow_pinned) {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (bytes == 0) return;
  std::uintptr_t base = 0;
  const Alloc* a = find_alloc(p, &base);
  if (a == nullptr || !a->live || (!a->device && !allow_pinned)) {
    const char* why = a == nullptr ? "" : !a->live ? " (freed)" : " (pinned host memory)";
    die(std::string(what) + ": " + std::to_string(address(p)) + " is not live device memory" +
        why);
  }
  if (address(p) + bytes > base + a->bytes) {
    die(std::string(what) + ": out of bounds by " +
        std::to_string(address(p) + bytes - base - a->bytes) + " bytes (an access of " +
        std::to_string(bytes) + " bytes at offset " + std::to_string(address(p) - base) +
        " of an allocation of " + std::to_string(a->bytes) + ")");
  }
}

std::uint64_t api_calls() {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  return g_calls;
}

std::uint64_t host_waits() {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  return g_host_waits;
}

std::uint64_t seed() { return g_seed; }

namespace {
std::vector<L2WindowSeen> g_l2_windows;  // (under g_mu)
std::size_t g_persisting_l2 = 0;         // cudaLimitPersistingL2CacheSize (under g_mu)
}  // namespace

void note_l2_window(const void* base, std::size_t bytes, float hit_ratio) {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  g_l2_windows.push_back({base, bytes, hit_ratio});
}

std::vector<L2WindowSeen> l2_windows() {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  return g_l2_windows;
}

void clear_l2_windows() {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  g_l2_windows.clear();
}

namespace {
struct Fault {
  std::string api;
  cudaError_t error;
  const void* match;
};
std::vector<Fault> g_faults;  // (under g_mu, as the three below)
int g_nth = 0;                // inject_nth_fault's countdown (0: none)
cudaError_t g_nth_error = cudaSuccess;
std::string g_nth_api;        // the call it failed
}  // namespace

Resources live_resources() {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  Resources r;
  for (const auto& [at, a] : g_allocs) {
    if (!a.live) continue;
    ++(a.device ? r.device_allocations : r.pinned_allocations);
    (a.device ? r.device_bytes : r.pinned_bytes) += static_cast<long long>(a.bytes);
  }
  r.streams = g_streams;
  r.events = g_events;
  r.graphs = g_graphs;
  r.graph_execs = g_execs;
  r.cublas_handles = g_blas;
  return r;
}

std::string Resources::text() const {
  return std::to_string(device_allocations) + " device and " +
         std::to_string(pinned_allocations) + " pinned allocations (" +
         std::to_string(device_bytes) + " and " + std::to_string(pinned_bytes) + " bytes), " +
         std::to_string(streams) + " streams, " + std::to_string(events) + " events, " +
         std::to_string(graphs) + " graphs, " + std::to_string(graph_execs) +
         " graph execs, " + std::to_string(cublas_handles) + " cuBLAS handles";
}

void inject_nth_fault(int n, cudaError_t error) {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  g_nth = n > 0 ? n : 0;
  g_nth_error = error;
  g_nth_api.clear();
}

std::string nth_fault_api() {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  return g_nth_api;
}

void inject_fault(const char* api, cudaError_t error, const void* match) {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  g_faults.push_back(Fault{api, error, match});
}

int clear_faults() {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  const int left = static_cast<int>(g_faults.size()) + (g_nth > 0 ? 1 : 0);
  g_faults.clear();
  g_nth = 0;
  return left;
}

cudaError_t take_fault(const char* api, const void* ptr) {
  const std::lock_guard<std::recursive_mutex> lock(g_mu);
  for (auto f = g_faults.begin(); f != g_faults.end(); ++f) {
    if (f->api == api && (f->match == nullptr || f->match == ptr)) {
      const cudaError_t e = f->error;
      g_faults.erase(f);
      return e;
    }
  }
  if (g_nth > 0 && --g_nth == 0) {
    g_nth_api = api;
    return g_nth_error;
  }
  return cudaSuccess;
}

}  // namespace cuda_fake

extern "C" {

// ---- device --------------------------------------------------------------------------------

cudaError_t cudaGetDeviceCount(int* count) {
  const Call call;
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  const Call call;
  if (device != 0) return fail(cudaErrorInvalidDevice);
  g_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  const Call call;
  *device = g_device;
  return cudaSuccess;
}
// The compute capability's major number: 9 (an H100's), or $SLSTM_CUDA_FAKE_CC_MAJOR (the
// fault tests take 8: the module then gives each cuBLAS handle 4 MiB of workspace instead of
// 32, and those tests make hundreds of sessions).
static int cc_major() {
  static const int major = [] {
    const char* s = std::getenv("SLSTM_CUDA_FAKE_CC_MAJOR");
    const long v = s != nullptr ? std::strtol(s, nullptr, 10) : 0;
    return v >= 1 && v <= 99 ? static_cast<int>(v) : 9;
  }();
  return major;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  const Call call;
  if (device != 0) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *value = cuda_fake::kSmCount; break;
    case cudaDevAttrComputeCapabilityMajor: *value = cc_major(); break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrCooperativeLaunch: *value = 1; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(cuda_fake::kSmemPerCtaOptin);
      break;
    case cudaDevAttrMaxPersistingL2CacheSize:
      *value = static_cast<int>(cuda_fake::kMaxPersistingL2);
      break;
    case cudaDevAttrMaxAccessPolicyWindowSize:
      *value = static_cast<int>(cuda_fake::kMaxAccessPolicyWindow);
      break;
    default: return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

// The persisting L2 set-aside only, within the device's maximum (as CUDA: larger is refused).
cudaError_t cudaDeviceGetLimit(size_t* value, cudaLimit limit) {
  const Call call;
  if (value == nullptr || limit != cudaLimitPersistingL2CacheSize) {
    return fail(cudaErrorInvalidValue);
  }
  *value = cuda_fake::g_persisting_l2;
  return cudaSuccess;
}
cudaError_t cudaDeviceSetLimit(cudaLimit limit, size_t value) {
  const Call call;
  if (limit != cudaLimitPersistingL2CacheSize || value > cuda_fake::kMaxPersistingL2) {
    return fail(cudaErrorInvalidValue);
  }
  cuda_fake::g_persisting_l2 = value;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  const Call call;
  if (device != 0) return fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "cuda-fake (host emulation, not a GPU)");
  prop->major = cc_major();
  prop->minor = 0;
  prop->multiProcessorCount = cuda_fake::kSmCount;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
  const Call call;
  ++g_host_waits;
  run_until(nullptr);
  return cudaSuccess;
}

// ---- errors --------------------------------------------------------------------------------

cudaError_t cudaGetLastError(void) {
  const Call call;
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorUnsupportedPtxVersion: return "cudaErrorUnsupportedPtxVersion";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorCooperativeLaunchTooLarge: return "cudaErrorCooperativeLaunchTooLarge";
    case cudaErrorInvalidClusterSize: return "cudaErrorInvalidClusterSize";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureUnjoined: return "cudaErrorStreamCaptureUnjoined";
    case cudaErrorStreamCaptureIsolation: return "cudaErrorStreamCaptureIsolation";
    case cudaErrorUnknown: return "cudaErrorUnknown";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t error) { return cudaGetErrorName(error); }

// ---- memory --------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  const Call call;
  if (!unsafe_call_allowed()) return fail(cudaErrorStreamCaptureUnsupported);
  if (cuda_fake::take_fault("cudaMalloc", nullptr) != cudaSuccess) {
    return fail(cudaErrorMemoryAllocation);
  }
  *ptr = allocate(bytes, true);
  return *ptr != nullptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* ptr) {
  const Call call;
  if (ptr == nullptr) return cudaSuccess;
  if (!unsafe_call_allowed()) return fail(cudaErrorStreamCaptureUnsupported);
  ++g_host_waits;
  run_until(nullptr);  // cudaFree synchronises the device
  release(ptr, true, "cudaFree");
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  const Call call;
  if (!unsafe_call_allowed()) return fail(cudaErrorStreamCaptureUnsupported);
  if (cuda_fake::take_fault("cudaMallocHost", nullptr) != cudaSuccess) {
    return fail(cudaErrorMemoryAllocation);
  }
  *ptr = allocate(bytes, false);
  return *ptr != nullptr ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFreeHost(void* ptr) {
  const Call call;
  if (ptr == nullptr) return cudaSuccess;
  if (!unsafe_call_allowed()) return fail(cudaErrorStreamCaptureUnsupported);
  ++g_host_waits;
  run_until(nullptr);
  release(ptr, false, "cudaFreeHost");
  return cudaSuccess;
}
cudaError_t cudaHostGetDevicePointer(void** device_ptr, void* host_ptr, unsigned int) {
  const Call call;
  if (where(host_ptr) != Where::Pinned) return fail(cudaErrorInvalidValue);
  *device_ptr = host_ptr;  // (unified addressing: the same address)
  return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attr, const void* ptr) {
  const Call call;
  std::memset(attr, 0, sizeof(*attr));
  switch (where(ptr)) {
    case Where::Device:
      attr->type = cudaMemoryTypeDevice;
      attr->devicePointer = const_cast<void*>(ptr);
      break;
    case Where::Pinned:
      attr->type = cudaMemoryTypeHost;
      attr->devicePointer = const_cast<void*>(ptr);
      attr->hostPointer = const_cast<void*>(ptr);
      break;
    case Where::Pageable:
      attr->type = cudaMemoryTypeUnregistered;
      attr->device = -2;
      attr->hostPointer = const_cast<void*>(ptr);
      break;
  }
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  const Call call;
  run_until(nullptr);
  return copy_rows(dst, bytes, src, bytes, bytes, 1, kind, nullptr, true);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  const Call call;
  if (const cudaError_t e = fault_on("cudaMemcpyAsync", stream, src); e != cudaSuccess) {
    return fail(e);
  }
  return copy_rows(dst, bytes, src, bytes, bytes, 1, kind, stream, false);
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind kind,
                              cudaStream_t stream) {
  const Call call;
  if (const cudaError_t e = fault_on("cudaMemcpy2DAsync", stream, src); e != cudaSuccess) {
    return fail(e);
  }
  return copy_rows(dst, dpitch, src, spitch, width, height, kind, stream, false);
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  const Call call;
  if (const cudaError_t e = fault_on("cudaMemsetAsync", stream, ptr); e != cudaSuccess) {
    return fail(e);
  }
  if (bytes == 0) return cudaSuccess;
  if (where(ptr) != Where::Device) die("cudaMemsetAsync on memory that is not the device's");
  return fail(enqueue_on(stream, "memset", [=] {
    cuda_fake::require_device(ptr, bytes, "memset");
    std::memset(ptr, value, bytes);
  }));
}

// ---- streams and events --------------------------------------------------------------------

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  const Call call;
  if (const cudaError_t e = cuda_fake::take_fault("cudaStreamCreate", nullptr);
      e != cudaSuccess) {
    return fail(e);
  }
  *stream = kept(new CUstream_st());
  ++g_streams;
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) {
  return cudaStreamCreate(stream);
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  const Call call;
  CUstream_st* s = stream_of(stream);
  if (s == &g_legacy_stream) return fail(cudaErrorInvalidResourceHandle);
  if (s->capture != nullptr) die("cudaStreamDestroy of a stream in a capture");
  if (s->destroyed) die("cudaStreamDestroy of a destroyed stream");
  s->destroyed = true;  // (its queued work still runs, as on a GPU)
  --g_streams;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  const Call call;
  if (const cudaError_t e = cuda_fake::take_fault("cudaStreamSynchronize", stream);
      e != cudaSuccess) {
    return fail(e);
  }
  CUstream_st* s = stream_of(stream);
  if (s->capture != nullptr) {
    s->capture->invalid = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  ++g_host_waits;
  if (s->last != nullptr) run_until(s->last);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* event) {
  const Call call;
  if (const cudaError_t e = cuda_fake::take_fault("cudaEventCreate", nullptr);
      e != cudaSuccess) {
    return fail(e);
  }
  *event = kept(new CUevent_st());
  ++g_events;
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  return cudaEventCreate(event);
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  const Call call;
  CUevent_st* e = event_of(event);
  if (e->destroyed) die("cudaEventDestroy of a destroyed event");
  e->destroyed = true;
  --g_events;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  const Call call;
  if (const cudaError_t e = fault_on("cudaEventRecord", stream, event); e != cudaSuccess) {
    return fail(e);
  }
  CUevent_st* e = event_of(event);
  CUstream_st* s = stream_of(stream);
  if (s->capture != nullptr) {
    if (s->capture->invalid) return fail(cudaErrorStreamCaptureInvalidated);
    e->node = nullptr;
    e->capture = s->capture;
    e->capture_tail = s->capture_tail;
    return cudaSuccess;
  }
  e->capture = nullptr;
  e->capture_tail.clear();
  e->node = append(s, "event", nullptr);
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
  const Call call;
  if (const cudaError_t e = fault_on("cudaStreamWaitEvent", stream, event); e != cudaSuccess) {
    return fail(e);
  }
  CUstream_st* s = stream_of(stream);
  const CUevent_st* e = event_of(event);
  if (e->capture != nullptr) {
    if (e->capture->ended) die("a wait on an event recorded in a capture that has ended");
    if (e->capture->invalid) return fail(cudaErrorStreamCaptureInvalidated);
    if (s->capture != nullptr && s->capture != e->capture) die("a wait joins two captures");
    if (s->capture == nullptr) {  // the stream joins the capture
      s->capture = e->capture;
      s->capture_tail = e->capture_tail;
      e->capture->members.insert(stream);
      return cudaSuccess;
    }
    for (int t : e->capture_tail) {
      if (std::find(s->capture_tail.begin(), s->capture_tail.end(), t) ==
          s->capture_tail.end()) {
        s->capture_tail.push_back(t);
      }
    }
    return cudaSuccess;
  }
  if (s->capture != nullptr) {  // a dependency from outside the capture
    s->capture->invalid = true;
    return fail(cudaErrorStreamCaptureIsolation);
  }
  if (e->node != nullptr) append(s, "wait", nullptr, {e->node});  // never recorded: no-op
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  const Call call;
  if (const cudaError_t e = cuda_fake::take_fault("cudaEventSynchronize", event);
      e != cudaSuccess) {
    return fail(e);
  }
  const CUevent_st* e = event_of(event);
  if (e->capture != nullptr) return fail(cudaErrorStreamCaptureUnsupported);
  ++g_host_waits;
  if (e->node != nullptr) run_until(e->node);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  const Call call;
  const CUevent_st* a = event_of(start);
  const CUevent_st* b = event_of(end);
  if (a->node == nullptr || b->node == nullptr || !a->node->done || !b->node->done) {
    return fail(cudaErrorInvalidResourceHandle);
  }
  *ms = 1.0f;
  return cudaSuccess;
}

// ---- capture and graphs --------------------------------------------------------------------

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  const Call call;
  CUstream_st* s = stream_of(stream);
  if (s == &g_legacy_stream) return fail(cudaErrorStreamCaptureUnsupported);
  if (s->capture != nullptr) return fail(cudaErrorIllegalState);
  if (const cudaError_t e = cuda_fake::take_fault("cudaStreamBeginCapture", stream);
      e != cudaSuccess) {
    return fail(e);
  }
  s->capture = std::make_shared<Capture>();
  s->capture->origin = stream;
  s->capture->mode = mode;
  s->capture->thread = std::this_thread::get_id();
  g_captures.erase(std::remove_if(g_captures.begin(), g_captures.end(),
                                  [](const std::weak_ptr<Capture>& w) {
                                    const std::shared_ptr<Capture> c = w.lock();
                                    return c == nullptr || c->ended;
                                  }),
                   g_captures.end());
  g_captures.push_back(s->capture);
  s->capture_tail.clear();
  return cudaSuccess;
}
cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  const Call call;
  if (mode == nullptr) return fail(cudaErrorInvalidValue);
  std::swap(*mode, t_capture_mode);
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  const Call call;
  const CUstream_st* s = stream_of(stream);
  *status = s->capture == nullptr ? cudaStreamCaptureStatusNone
            : s->capture->invalid ? cudaStreamCaptureStatusInvalidated
                                  : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  const Call call;
  CUstream_st* s = stream_of(stream);
  *graph = nullptr;
  if (s->capture == nullptr || s->capture->origin != stream) {
    return fail(cudaErrorStreamCaptureUnmatched);
  }
  const std::shared_ptr<Capture> capture = s->capture;
  // (A fault here ends the capture all the same, as an invalidated one: no graph.)
  if (cuda_fake::take_fault("cudaStreamEndCapture", stream) != cudaSuccess) {
    capture->invalid = true;
  }
  cudaError_t result = capture->invalid ? cudaErrorStreamCaptureInvalidated : cudaSuccess;
  // Every stream that joined must be joined back: its last node an ancestor of the origin's.
  for (cudaStream_t member : capture->members) {
    for (int t : member->capture_tail) {
      const bool joined = std::any_of(s->capture_tail.begin(), s->capture_tail.end(),
                                      [&](int o) { return reaches(capture->nodes, o, t); });
      if (!joined && result == cudaSuccess) result = cudaErrorStreamCaptureUnjoined;
    }
    member->capture = nullptr;
    member->capture_tail.clear();
  }
  s->capture = nullptr;
  s->capture_tail.clear();
  capture->ended = true;
  if (result != cudaSuccess) return fail(result);
  *graph = kept(new CUgraph_st{capture->nodes, false});
  ++g_graphs;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  const Call call;
  if (graph == nullptr || graph->destroyed) die("instantiation of a null or destroyed graph");
  if (const cudaError_t e = cuda_fake::take_fault("cudaGraphInstantiate", graph);
      e != cudaSuccess) {
    *exec = nullptr;
    return fail(e);
  }
  *exec = kept(new CUgraphExec_st{graph->nodes, nullptr, false});
  ++g_execs;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  const Call call;
  if (graph == nullptr || graph->destroyed) die("cudaGraphDestroy of a null or destroyed graph");
  graph->destroyed = true;
  graph->nodes.clear();
  --g_graphs;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  const Call call;
  if (exec == nullptr || exec->destroyed) die("cudaGraphExecDestroy of a destroyed exec");
  exec->destroyed = true;  // (launches already queued still run: their nodes are copies)
  exec->nodes.clear();
  --g_execs;
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  const Call call;
  CUstream_st* s = stream_of(stream);
  if (exec == nullptr || exec->destroyed) die("launch of a null or destroyed graph exec");
  if (s->capture != nullptr) die("a graph launch into a capture (not emulated)");
  if (const cudaError_t e = cuda_fake::take_fault("cudaGraphLaunch", stream); e != cudaSuccess) {
    return fail(e);
  }
  const NodeP before = s->last;
  std::vector<NodeP> made;
  for (const GraphNode& g : exec->nodes) {
    auto n = std::make_shared<Node>();
    n->work = g.work;
    n->name = "graph: " + g.name;
    for (int d : g.deps) n->deps.push_back(made[static_cast<std::size_t>(d)]);
    if (g.deps.empty()) {
      for (const NodeP& p : {before, exec->last_launch}) {
        if (p != nullptr && !p->done) n->deps.push_back(p);
      }
    }
    made.push_back(n);
    g_pending.push_back(n);
  }
  made.push_back(exec->last_launch);
  exec->last_launch = append(s, "graph end", nullptr, made);
  return cudaSuccess;
}

// ---- cuBLAS --------------------------------------------------------------------------------

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  const Call call;
  if (cuda_fake::take_fault("cublasCreate", nullptr) != cudaSuccess) {
    return CUBLAS_STATUS_ALLOC_FAILED;
  }
  *handle = new cublasContext();
  ++g_blas;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  const Call call;
  delete handle;
  --g_blas;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  const Call call;
  stream_of(stream);
  handle->stream = stream;
  handle->workspace = nullptr;  // (cuBLAS goes back to its own workspace pool)
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, size_t bytes) {
  const Call call;
  if (bytes > 0) cuda_fake::require_device(workspace, bytes, "cublasSetWorkspace");
  handle->workspace = workspace;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetPointerMode(cublasHandle_t, cublasPointerMode_t mode) {
  return mode == CUBLAS_POINTER_MODE_HOST ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasSetAtomicsMode(cublasHandle_t, cublasAtomicsMode_t) {
  return CUBLAS_STATUS_SUCCESS;
}
const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}
const char* cublasGetStatusString(cublasStatus_t status) { return cublasGetStatusName(status); }

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float* alpha,
                           const float* A, int lda, const float* B, int ldb, const float* beta,
                           float* C, int ldc) {
  const Call call;
  return fake_gemm(handle, transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc,
                   "sgemm", float_value);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void* alpha,
                            const void* A, cudaDataType_t Atype, int lda, const void* B,
                            cudaDataType_t Btype, int ldb, const void* beta, void* C,
                            cudaDataType_t Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t) {
  const Call call;
  if (Atype != Btype || (Atype != CUDA_R_16F && Atype != CUDA_R_16BF) || Ctype != CUDA_R_32F ||
      computeType != CUBLAS_COMPUTE_32F) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  const auto* a = static_cast<const std::uint16_t*>(A);
  const auto* b = static_cast<const std::uint16_t*>(B);
  auto* c = static_cast<float*>(C);
  return Atype == CUDA_R_16F
             ? fake_gemm(handle, transa, transb, m, n, k, al, a, lda, b, ldb, be, c, ldc,
                         "gemmex fp16", fp16_value)
             : fake_gemm(handle, transa, transb, m, n, k, al, a, lda, b, ldb, be, c, ldc,
                         "gemmex bf16", bf16_value);
}

}  // extern "C"
