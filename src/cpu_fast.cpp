// The CPU fast path (DESIGN §4 "CPU path", issue 6).
//
// Structure, per layer (layer by layer over the whole sequence):
//   1. Input projection: one GEMM over all B*T rows of the layer's input, G = X * Wx^T,
//      shared out among the workers by hidden-unit groups (each streams only its part of Wx)
//      or, with few groups, by rows, on the library's own register-blocked kernels (AVX-512,
//      AVX2 or portable, the same family as step 2's), which read the caller's rows in place
//      and write G directly in the layout the fused step reads.  Why not OpenBLAS: its result
//      for one row depends on how many rows the call has (its kernels for the last rows of
//      a matrix add up in another order: measured with Debian's 0.3.21 on the AVX2 kernels,
//      a row alone differed by ~1e-7 from the same row among 4 or more), so a step's result
//      depended on the call's length and chunked streaming was not exact (issue 13); and
//      Debian 12's OpenBLAS does not recognise recent Xeons (e.g. model 0xCF) and falls back
//      to its SSE3 kernel, ~6x below our AVX-512 one.  G's rows are in a worker share's own
//      batch-major order (see Share).
//   2. Per step, the recurrent GEMM h_prev * Wh^T runs on a register-blocked micro-kernel
//      over pre-packed weights, which applies the gate math, the bias (forget_bias folded
//      in) and the sequence-length mask in the same kernel while the four gate sums are
//      still in registers ("fused gate loop").  Two ways to share a step:
//      - unit split: each worker owns a contiguous range of 16-unit groups for every batch
//        row, and one barrier per step publishes the new h; a worker done with its own
//        groups takes those of another that nobody has started yet (large groups only), so
//        a core the machine delays does not hold up every step;
//      - batch split (B >= 5 rows per worker, T >= 8, each layer's Wh <= 1.5 MB so that one
//        core keeps it cached): each worker runs its own batch rows through every layer,
//        projection included, with no barrier at all: batch rows never interact.
//      For B <= 4 the kernel runs as a blocked GEMV (one weight stream per step, every batch
//      row served from it).
//   Kernels, picked per CPU (make_cpu_fast_backend): AVX-512, else AVX2+FMA, else portable
//   (plain C++ loops the compiler vectorises), each for both GEMMs; all take both splits.
//
// Packing (once per session): a layer's hidden units are cut into groups of 16 (the last one
// zero-padded).  For group g the recurrent weights are stored as [k][gate i,f,g,o][16 units],
// one contiguous 256-byte row per k, so the micro-kernel streams them linearly (and, for
// B <= 4, prefetches them); the input weights likewise [group][I][64], or on the AVX2
// kernels [group][gate][I][16] (its projection works on 16 columns at a time, which then
// lie contiguous); the bias is [group][gate][16] with forget_bias added to the f block.
//
// Threads: a persistent pool of num_threads workers (0 = one per core; the calling thread is
// worker 0; capped at the number of 16-unit groups of the widest layer) created with the
// session; a call wakes them, never creates one.  How many a call uses, and which split, is
// chosen from the shape alone (forward(): enough recurrent work per worker between two
// barriers, kFlopsPerWorker / kBytesPerWorker; enough projection work to pay for waking a
// worker, kProjFlopsPerWorker; always all of them on the AVX2 and portable kernels).
//
// Determinism: every element of G, and every gate sum of a step, is one chain of
// multiply-adds in increasing k computed by one worker with the same instructions whichever
// row block, split, worker or call it falls in; the gate math is element-wise.  So a step's
// result depends only on its inputs (the step's x, the carried c and h, the weights): not
// on B or T, the layout, the row's batch neighbours, the split, the thread count, or where
// a sequence was cut into calls.  Streaming in chunks and slstm_session_step are therefore
// bitwise equal to one call, on every kernel (tests/test_streaming.cpp).  Different kernels
// (AVX-512, AVX2, portable, reference) differ from one another by rounding.
//
// Gate math: the AVX-512 and AVX2 kernels use a vectorised exp (Cephes-style, ~1 ulp) with
// sigmoid(x) = 1/(1+exp(-x)) and tanh(x) = 2*sigmoid(2x) - 1 (absolute error ~1e-7); the
// portable kernel runs the same decomposition with slstm::lstm_cell (libm).  Accuracy
// against float64: README "Accuracy".
#include "cpu_fast.hpp"

#include <algorithm>
#include <limits>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() as the masked-off source, which
// -Wmaybe-uninitialized flags once they are inlined here; the warning is about the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#include <sched.h>

#include "gate_math.hpp"

namespace slstm {
namespace {

constexpr std::int64_t kGroup = 16;          // hidden units per group
constexpr std::int64_t kRow = 4 * kGroup;    // packed floats per k in a group (4 gates)
constexpr int kMaxNb = 6;                    // batch rows per micro-kernel block
constexpr double kFlopsPerWorker = 1.5e5;    // least recurrent FLOPs per worker and step
constexpr std::int64_t kPrefetchRows = 8;   // k rows ahead the GEMV path prefetches
constexpr double kBytesPerWorker = 1.2e5;    // least recurrent weight bytes per worker and step
constexpr double kProjFlopsPerWorker = 2e6;  // least input-projection FLOPs per worker
constexpr std::int64_t kChunkBytes = 768 * 1024;  // projection inputs kept in L2 per chunk
constexpr double kStealFma = 262144;            // least FMAs per group and step to steal it
constexpr std::int64_t kMinRowsPerWorker = 5;  // batch rows per worker for the batch split
constexpr std::int64_t kMinSplitTime = 8;      // least time steps for the batch split
constexpr double kBatchSplitBytes = 1.5e6;   // largest per-layer Wh for the batch split

// ---- aligned storage ----------------------------------------------------------------------

struct AlignedFree {
  void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;

// 64-byte aligned floats, zeroed unless `zero` is false (scratch that is written before read).
Buffer allocate(std::size_t n, bool zero = true) {
  if (n == 0) n = 1;
  const std::size_t bytes = mul_size(n, sizeof(float), "CPU fast-path workspace");
  auto* p = static_cast<float*>(::operator new[](bytes, std::align_val_t(64)));
  if (zero) std::memset(p, 0, bytes);
  return Buffer(p);
}

// ---- the worker pool ----------------------------------------------------------------------

// Spin, then yield, so that oversubscription stays live.
inline void relax(unsigned spins) {
  if (spins < 500) {
    _mm_pause();
  } else {
    sched_yield();
  }
}

// A reusable barrier for the first n workers of a job (n may differ from one use to the next,
// never between the workers of one use).
class Barrier {
 public:
  void wait(int n) {
    if (n <= 1) return;
    const unsigned phase = phase_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      phase_.store(phase + 1, std::memory_order_release);
      return;
    }
    for (unsigned spins = 0; phase_.load(std::memory_order_acquire) == phase; ++spins) {
      relax(spins);
    }
  }

 private:
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<unsigned> phase_{0};
};

// A persistent pool: worker 0 is the calling thread, workers 1..n-1 are threads created
// once.  run() hands every worker the same job and returns when all have finished.
class Pool {
 public:
  using Job = void (*)(void* ctx, int worker);

  explicit Pool(int n) : n_(n) {
    threads_.reserve(static_cast<std::size_t>(n - 1));
    try {
      for (int w = 1; w < n; ++w) threads_.emplace_back([this, w] { loop(w); });
    } catch (...) {
      stop();
      throw;
    }
  }
  ~Pool() { stop(); }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  int size() const { return n_; }

  // Runs job(ctx, w) on workers w < active (1 <= active <= size()); the others stay idle.
  void run(Job job, void* ctx, int active) {
    active_ = active;
    if (active == 1) {
      job(ctx, 0);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = job;
      ctx_ = ctx;
      pending_.store(n_ - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    job(ctx, 0);
    for (unsigned spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) relax(spins);
  }

 private:
  void loop(int w) {
    std::uint64_t seen = 0;
    for (;;) {
      // Spin briefly for back-to-back calls, then sleep.
      for (unsigned spins = 0; spins < 4000; ++spins) {
        if (generation_.load(std::memory_order_acquire) != seen || stopping_.load()) break;
        _mm_pause();
      }
      Job job;
      void* ctx;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] {
          return stopping_.load() || generation_.load(std::memory_order_acquire) != seen;
        });
        if (stopping_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        job = job_;
        ctx = ctx_;
      }
      if (w < active_) job(ctx, w);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_.store(true);
    }
    wake_.notify_all();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

  const int n_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
  Job job_ = nullptr;
  void* ctx_ = nullptr;
  int active_ = 1;  // written before the release of generation_, read after its acquire
};

// ---- one step of one group of units for a block of batch rows ------------------------------

// Which kernels the fast path runs (chosen once per session, see make_cpu_fast_backend).
enum class Kernel {
  kPortable,  // plain C++ kernels (compiler-vectorised) for both GEMMs
  kAvx2,      // AVX2+FMA kernels for both
  kAvx512,    // AVX-512 kernels for both
};

const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::kPortable: return "portable";
    case Kernel::kAvx2: return "avx2";
    case Kernel::kAvx512: return "avx512";
  }
  return "portable";
}

// What a step kernel needs besides the weights.
struct StepArgs {
  std::int64_t H = 0;          // hidden size (K of the recurrent GEMM, row stride of h and c)
  std::int64_t units = 0;      // valid units in this group (1..16)
  std::int64_t unit0 = 0;      // first unit of the group
  const float* wh = nullptr;   // packed [H][64] of this group
  const float* bias = nullptr; // packed [64] of this group (forget_bias folded in)
  const float* h_prev = nullptr;  // [B][H]
  float* h_next = nullptr;        // [B][H]
  float* c = nullptr;             // [B][H], updated in place
  // Per batch row b of the block: the row of G (input projection, 64 floats for this group
  // at g_row[b]), the output row (or null), and whether the row is active at this step.
  const float* g_row[kMaxNb] = {};
  float* out_row[kMaxNb] = {};
  bool active[kMaxNb] = {};
  std::int64_t b0 = 0;  // first batch row of the block
};

// Portable kernel: the same decomposition with scalar loops and slstm::lstm_cell.
void step_block_portable(const StepArgs& a, int nb) {
  float acc[kMaxNb][kRow];
  for (int b = 0; b < nb; ++b) std::fill_n(acc[b], kRow, 0.0f);
  for (std::int64_t k = 0; k < a.H; ++k) {
    const float* w = a.wh + k * kRow;
    for (int b = 0; b < nb; ++b) {
      const float x = a.h_prev[(a.b0 + b) * a.H + k];
      for (std::int64_t r = 0; r < kRow; ++r) acc[b][r] += x * w[r];
    }
  }
  for (int b = 0; b < nb; ++b) {
    const std::int64_t row = a.b0 + b;
    float* c = a.c + row * a.H + a.unit0;
    float* hn = a.h_next + row * a.H + a.unit0;
    const float* hp = a.h_prev + row * a.H + a.unit0;
    if (!a.active[b]) {
      for (std::int64_t j = 0; j < a.units; ++j) hn[j] = hp[j];
      if (a.out_row[b]) std::fill_n(a.out_row[b] + a.unit0, a.units, 0.0f);
      continue;
    }
    const float* g = a.g_row[b];
    for (std::int64_t j = 0; j < a.units; ++j) {
      float z[4];
      for (int q = 0; q < 4; ++q) {
        const std::int64_t r = q * kGroup + j;
        z[q] = acc[b][r] + g[r] + a.bias[r];
      }
      // forget_bias is already in the packed bias: pass 0 to the shared cell math.
      lstm_cell(z[kGateI], z[kGateF], z[kGateG], z[kGateO], 0.0f, c[j], &c[j], &hn[j]);
      if (a.out_row[b]) a.out_row[b][a.unit0 + j] = hn[j];
    }
  }
}

// Portable kernel for the input projection of NB rows and one group: out[b][0..63] =
// rows[b] . w (w packed [K][64]).  In strips of 8 columns, so that the NB x 8 sums can stay
// in registers (12 SSE registers for 6 rows); each sum is added up in increasing k.
template <int NB>
void project_block_portable(const float* w, const float* const* rows, std::int64_t K,
                            float* const* out) {
  constexpr int kStrip = 8;
  for (int col0 = 0; col0 < kRow; col0 += kStrip) {
    float acc[NB][kStrip] = {};
    for (std::int64_t k = 0; k < K; ++k) {
      const float* wk = w + k * kRow + col0;
      for (int b = 0; b < NB; ++b) {
        const float x = rows[b][k];
        for (int j = 0; j < kStrip; ++j) acc[b][j] += x * wk[j];
      }
    }
    for (int b = 0; b < NB; ++b) std::copy_n(acc[b], kStrip, out[b] + col0);
  }
}

void project_block_portable(const float* w, const float* const* rows, std::int64_t K,
                            float* const* out, int nb) {
  switch (nb) {
    case 1: project_block_portable<1>(w, rows, K, out); return;
    case 2: project_block_portable<2>(w, rows, K, out); return;
    case 3: project_block_portable<3>(w, rows, K, out); return;
    case 4: project_block_portable<4>(w, rows, K, out); return;
    case 5: project_block_portable<5>(w, rows, K, out); return;
    default: project_block_portable<6>(w, rows, K, out); return;
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
#define SLSTM_AVX512 __attribute__((target("avx512f,avx512dq,fma")))

// exp(x) for float32: Cephes expf, x clamped to [kExpLo, kExpHi], n = round(x log2 e),
// r = x - n ln2 in two steps (ln2 = kLn2Hi + kLn2Lo), p(r) = 1 + r + r^2 (((((c0 r + c1) r
// + c2) r + c3) r + c4) r + c5), exp(x) = p 2^n (~1 ulp). Both vector widths use these.
constexpr float kExpHi = 88.3f, kExpLo = -87.3f, kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kExpPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                               4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

SLSTM_AVX512 inline __m512 exp512(__m512 x) {
  // (MAXPS/MINPS return their second operand when either is NaN: NaN stays NaN.)
  x = _mm512_min_ps(_mm512_set1_ps(kExpHi), _mm512_max_ps(_mm512_set1_ps(kExpLo), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpPoly[i]));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

SLSTM_AVX512 inline __m512 sigmoid512(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

SLSTM_AVX512 inline __m512 tanh512(__m512 x) {
  const __m512 two = _mm512_set1_ps(2.0f);
  return _mm512_fmsub_ps(two, sigmoid512(_mm512_mul_ps(two, x)), _mm512_set1_ps(1.0f));
}

// acc[b][q] = sum_k rows[b][k] * w[k][q*16 .. q*16+15] for NB rows, w packed [K][64].
template <int NB>
SLSTM_AVX512 inline void accumulate512(const float* w, const float* const* rows, std::int64_t K,
                                       __m512 (&acc)[NB][4]) {
  for (int b = 0; b < NB; ++b) {
    for (int q = 0; q < 4; ++q) acc[b][q] = _mm512_setzero_ps();
  }
  for (std::int64_t k = 0; k < K; ++k, w += kRow) {
    if (NB <= 4) {
      // Few FMAs per weight: the loop is bound by the weight stream, help the prefetcher.
      const char* ahead = reinterpret_cast<const char*>(w + kPrefetchRows * kRow);
      _mm_prefetch(ahead, _MM_HINT_T0);
      _mm_prefetch(ahead + 64, _MM_HINT_T0);
      _mm_prefetch(ahead + 128, _MM_HINT_T0);
      _mm_prefetch(ahead + 192, _MM_HINT_T0);
    }
    const __m512 w0 = _mm512_load_ps(w);
    const __m512 w1 = _mm512_load_ps(w + 16);
    const __m512 w2 = _mm512_load_ps(w + 32);
    const __m512 w3 = _mm512_load_ps(w + 48);
    for (int b = 0; b < NB; ++b) {
      const __m512 x = _mm512_set1_ps(rows[b][k]);
      acc[b][0] = _mm512_fmadd_ps(w0, x, acc[b][0]);
      acc[b][1] = _mm512_fmadd_ps(w1, x, acc[b][1]);
      acc[b][2] = _mm512_fmadd_ps(w2, x, acc[b][2]);
      acc[b][3] = _mm512_fmadd_ps(w3, x, acc[b][3]);
    }
  }
}

// Input projection of NB rows for one group: out[b][0..63] = rows[b] . w (w packed [K][64]).
template <int NB>
SLSTM_AVX512 void project_block_avx512(const float* w, const float* const* rows,
                                       std::int64_t K, float* const* out) {
  __m512 acc[NB][4];
  accumulate512<NB>(w, rows, K, acc);
  for (int b = 0; b < NB; ++b) {
    for (int q = 0; q < 4; ++q) _mm512_store_ps(out[b] + 16 * q, acc[b][q]);
  }
}

template <int NB>
SLSTM_AVX512 void step_block_avx512(const StepArgs& a) {
  const float* h[NB];
  for (int b = 0; b < NB; ++b) {
    h[b] = a.h_prev + (a.b0 + b) * a.H;
    // The epilogue's G row and c were written long ago (G by the projection, c one step
    // back): fetch them while the FMAs run.
    const char* g = reinterpret_cast<const char*>(a.g_row[b]);
    _mm_prefetch(g, _MM_HINT_T0);
    _mm_prefetch(g + 64, _MM_HINT_T0);
    _mm_prefetch(g + 128, _MM_HINT_T0);
    _mm_prefetch(g + 192, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a.c + (a.b0 + b) * a.H + a.unit0), _MM_HINT_T0);
  }
  __m512 acc[NB][4];
  accumulate512<NB>(a.wh, h, a.H, acc);
  const __mmask16 m = static_cast<__mmask16>((1u << a.units) - 1u);
  for (int b = 0; b < NB; ++b) {
    const std::int64_t row = a.b0 + b;
    float* c = a.c + row * a.H + a.unit0;
    float* hn = a.h_next + row * a.H + a.unit0;
    if (!a.active[b]) {
      _mm512_mask_storeu_ps(hn, m, _mm512_maskz_loadu_ps(m, a.h_prev + row * a.H + a.unit0));
      if (a.out_row[b]) _mm512_mask_storeu_ps(a.out_row[b] + a.unit0, m, _mm512_setzero_ps());
      continue;
    }
    const float* g = a.g_row[b];
    const __m512 zi = _mm512_add_ps(acc[b][0], _mm512_add_ps(_mm512_load_ps(g),
                                                             _mm512_load_ps(a.bias)));
    const __m512 zf = _mm512_add_ps(acc[b][1], _mm512_add_ps(_mm512_load_ps(g + 16),
                                                             _mm512_load_ps(a.bias + 16)));
    const __m512 zg = _mm512_add_ps(acc[b][2], _mm512_add_ps(_mm512_load_ps(g + 32),
                                                             _mm512_load_ps(a.bias + 32)));
    const __m512 zo = _mm512_add_ps(acc[b][3], _mm512_add_ps(_mm512_load_ps(g + 48),
                                                             _mm512_load_ps(a.bias + 48)));
    const __m512 c_prev = _mm512_maskz_loadu_ps(m, c);
    const __m512 c_new = _mm512_fmadd_ps(c_prev, sigmoid512(zf),
                                         _mm512_mul_ps(sigmoid512(zi), tanh512(zg)));
    const __m512 h_new = _mm512_mul_ps(tanh512(c_new), sigmoid512(zo));
    _mm512_mask_storeu_ps(c, m, c_new);
    _mm512_mask_storeu_ps(hn, m, h_new);
    if (a.out_row[b]) _mm512_mask_storeu_ps(a.out_row[b] + a.unit0, m, h_new);
  }
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("fma");
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// ---- the AVX2 step kernel (CPUs without AVX-512) -------------------------------------------
// 16 ymm registers do not hold a block of rows x 64 columns, so the recurrent sums of a
// block are computed in passes of 8*NV columns (NB x NV accumulators, NV weight vectors and
// one broadcast: 15 registers for 6 x 2, 13 for 2 x 4), parked in z, and the gate epilogue
// reads them back.  Each element is one FMA chain in increasing k, as on the AVX-512 path.
#define SLSTM_AVX2 __attribute__((target("avx2,fma")))

// exp(x), exp512's polynomial and constants; 2^n is built in the exponent field (n is in
// [-126, 127] after the clamp, so it is always a normal float).
SLSTM_AVX2 inline __m256 exp256(__m256 x) {
  // (MAXPS/MINPS return their second operand when either is NaN: NaN stays NaN.)
  x = _mm256_min_ps(_mm256_set1_ps(kExpHi), _mm256_max_ps(_mm256_set1_ps(kExpLo), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpPoly[i]));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

SLSTM_AVX2 inline __m256 sigmoid256(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

SLSTM_AVX2 inline __m256 tanh256(__m256 x) {
  const __m256 two = _mm256_set1_ps(2.0f);
  return _mm256_fmsub_ps(two, sigmoid256(_mm256_mul_ps(two, x)), _mm256_set1_ps(1.0f));
}

// z[b][col0 .. col0 + 8*NV) = sum_k rows[b][k] * w[k][col0 ..] for NB rows, w packed [K][64].
template <int NB, int NV>
SLSTM_AVX2 inline void accumulate256(const float* w, const float* const* rows, std::int64_t K,
                                     int col0, float (*z)[kRow]) {
  __m256 acc[NB][NV];
  for (int b = 0; b < NB; ++b) {
    for (int v = 0; v < NV; ++v) acc[b][v] = _mm256_setzero_ps();
  }
  w += col0;
  for (std::int64_t k = 0; k < K; ++k, w += kRow) {
    __m256 wv[NV];
    for (int v = 0; v < NV; ++v) wv[v] = _mm256_load_ps(w + 8 * v);
    for (int b = 0; b < NB; ++b) {
      const __m256 x = _mm256_broadcast_ss(rows[b] + k);
      for (int v = 0; v < NV; ++v) acc[b][v] = _mm256_fmadd_ps(wv[v], x, acc[b][v]);
    }
  }
  for (int b = 0; b < NB; ++b) {
    for (int v = 0; v < NV; ++v) _mm256_store_ps(z[b] + col0 + 8 * v, acc[b][v]);
  }
}

template <int NB>
SLSTM_AVX2 void step_block_avx2(const StepArgs& a) {
  constexpr int NV = NB <= 2 ? 4 : 2;
  const float* h[NB];
  for (int b = 0; b < NB; ++b) h[b] = a.h_prev + (a.b0 + b) * a.H;
  alignas(32) float z[NB][kRow];
  for (int col0 = 0; col0 < kRow; col0 += 8 * NV) accumulate256<NB, NV>(a.wh, h, a.H, col0, z);
  const std::size_t bytes = static_cast<std::size_t>(a.units) * sizeof(float);
  for (int b = 0; b < NB; ++b) {
    const std::int64_t row = a.b0 + b;
    float* c = a.c + row * a.H + a.unit0;
    float* hn = a.h_next + row * a.H + a.unit0;
    if (!a.active[b]) {
      std::memcpy(hn, a.h_prev + row * a.H + a.unit0, bytes);
      if (a.out_row[b]) std::memset(a.out_row[b] + a.unit0, 0, bytes);
      continue;
    }
    // The group's units go through 16-float buffers (a group may be narrower than 16).
    alignas(32) float c_io[kGroup] = {};
    alignas(32) float h_new[kGroup];
    std::memcpy(c_io, c, bytes);
    const float* g = a.g_row[b];
    for (int j = 0; j < kGroup; j += 8) {
      __m256 zq[4];
      for (int q = 0; q < 4; ++q) {
        const std::int64_t r = q * kGroup + j;
        zq[q] = _mm256_add_ps(_mm256_load_ps(z[b] + r),
                              _mm256_add_ps(_mm256_load_ps(g + r), _mm256_load_ps(a.bias + r)));
      }
      const __m256 c_new =
          _mm256_fmadd_ps(_mm256_load_ps(c_io + j), sigmoid256(zq[kGateF]),
                          _mm256_mul_ps(sigmoid256(zq[kGateI]), tanh256(zq[kGateG])));
      _mm256_store_ps(c_io + j, c_new);
      _mm256_store_ps(h_new + j, _mm256_mul_ps(tanh256(c_new), sigmoid256(zq[kGateO])));
    }
    std::memcpy(c, c_io, bytes);
    std::memcpy(hn, h_new, bytes);
    if (a.out_row[b]) std::memcpy(a.out_row[b] + a.unit0, h_new, bytes);
  }
}

// Input projection of NB rows for one group on the AVX2 kernels: out[b][0..63] = rows[b] . w
// (w packed [4][K][16], out[b] 32-byte aligned), in four passes of 16 columns (12
// accumulators for 6 rows), each element one FMA chain in increasing k.
template <int NB>
SLSTM_AVX2 void project_block_avx2(const float* w, const float* const* rows, std::int64_t K,
                                   float* const* out) {
  const float* x[NB];
  for (int b = 0; b < NB; ++b) x[b] = rows[b];
  for (int col0 = 0; col0 < kRow; col0 += 16) {
    __m256 acc0[NB], acc1[NB];
    for (int b = 0; b < NB; ++b) acc0[b] = acc1[b] = _mm256_setzero_ps();
    const float* wk = w + col0 * K;
    for (std::int64_t k = 0; k < K; ++k, wk += 16) {
      const __m256 w0 = _mm256_load_ps(wk);
      const __m256 w1 = _mm256_load_ps(wk + 8);
      for (int b = 0; b < NB; ++b) {
        const __m256 xb = _mm256_broadcast_ss(x[b] + k);
        acc0[b] = _mm256_fmadd_ps(w0, xb, acc0[b]);
        acc1[b] = _mm256_fmadd_ps(w1, xb, acc1[b]);
      }
    }
    for (int b = 0; b < NB; ++b) {
      _mm256_store_ps(out[b] + col0, acc0[b]);
      _mm256_store_ps(out[b] + col0 + 8, acc1[b]);
    }
  }
}

void step_block(const StepArgs& a, int nb, Kernel kernel) {
  if (kernel == Kernel::kAvx2) {
    switch (nb) {
      case 1: step_block_avx2<1>(a); return;
      case 2: step_block_avx2<2>(a); return;
      case 3: step_block_avx2<3>(a); return;
      case 4: step_block_avx2<4>(a); return;
      case 5: step_block_avx2<5>(a); return;
      default: step_block_avx2<6>(a); return;
    }
  }
  if (kernel == Kernel::kAvx512) {
    switch (nb) {
      case 1: step_block_avx512<1>(a); return;
      case 2: step_block_avx512<2>(a); return;
      case 3: step_block_avx512<3>(a); return;
      case 4: step_block_avx512<4>(a); return;
      case 5: step_block_avx512<5>(a); return;
      default: step_block_avx512<6>(a); return;
    }
  }
  step_block_portable(a, nb);
}

void project_block(const float* w, const float* const* rows, std::int64_t K, float* const* out,
                   int nb, Kernel kernel) {
  if (kernel == Kernel::kAvx2) {
    switch (nb) {
      case 1: project_block_avx2<1>(w, rows, K, out); return;
      case 2: project_block_avx2<2>(w, rows, K, out); return;
      case 3: project_block_avx2<3>(w, rows, K, out); return;
      case 4: project_block_avx2<4>(w, rows, K, out); return;
      case 5: project_block_avx2<5>(w, rows, K, out); return;
      default: project_block_avx2<6>(w, rows, K, out); return;
    }
  }
  if (kernel == Kernel::kAvx512) {
    switch (nb) {
      case 1: project_block_avx512<1>(w, rows, K, out); return;
      case 2: project_block_avx512<2>(w, rows, K, out); return;
      case 3: project_block_avx512<3>(w, rows, K, out); return;
      case 4: project_block_avx512<4>(w, rows, K, out); return;
      case 5: project_block_avx512<5>(w, rows, K, out); return;
      default: project_block_avx512<6>(w, rows, K, out); return;
    }
  }
  project_block_portable(w, rows, K, out, nb);
}
#else
bool cpu_has_avx512() { return false; }
bool cpu_has_avx2() { return false; }
void step_block(const StepArgs& a, int nb, Kernel) { step_block_portable(a, nb); }
void project_block(const float* w, const float* const* rows, std::int64_t K, float* const* out,
                   int nb, Kernel) {
  project_block_portable(w, rows, K, out, nb);
}
#endif

// ---- the backend --------------------------------------------------------------------------

struct PackedLayer {
  std::int64_t I = 0, H = 0, groups = 0;
  Buffer wx;    // [groups][I][64], or [groups][4][I][16] on the AVX2 kernels
  Buffer wh;    // [groups][H][64]
  Buffer bias;  // [groups*64]
};

class CpuFastBackend final : public Backend {
 public:
  CpuFastBackend(ModelPtr model, const SessionConfig& config, Kernel kernel, const char* why)
      : model_(std::move(model)) {
    const Model& m = *model_;
    kernel_ = kernel;
    std::int64_t max_groups = 0;
    for (const Layer& layer : m.layers()) {
      max_groups = std::max(max_groups, (layer.hidden_size + kGroup - 1) / kGroup);
    }
    std::int64_t threads = config.num_threads;
    if (threads == 0) threads = std::max<std::int64_t>(1, std::thread::hardware_concurrency());
    // More workers than 16-unit groups of the widest layer would only wait at barriers.
    threads = std::min<std::int64_t>({threads, max_groups, 256});
    const int P = static_cast<int>(threads);
    try {
      const std::int64_t max_rows = config.max_batch * config.max_time;
      max_h_inner_ = 1;  // widest non-last layer (its outputs are a workspace)
      for (std::size_t l = 0; l + 1 < m.layers().size(); ++l) {
        max_h_inner_ = std::max(max_h_inner_, m.layer(l).hidden_size);
      }
      max_groups_ = max_groups;
      g_ = allocate(product({max_rows, max_groups, kRow}, "workspace"), false);
      y_[0] = allocate(product({max_rows, max_h_inner_}, "workspace"), false);
      y_[1] = allocate(product({max_rows, max_h_inner_}, "workspace"), false);
      for (std::size_t l = 0; l < m.layers().size(); ++l) pack(m, l);
      state_ = allocate(m.state_count(config.max_batch));
      h_alt_ = allocate(product({config.max_batch, m.max_hidden()}, "workspace"));
      next_group_ = std::make_unique<Counter64[]>(static_cast<std::size_t>(P));
      pool_ = std::make_unique<Pool>(P);
    } catch (const std::bad_alloc&) {
      fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the CPU fast-path workspace");
    } catch (const std::length_error&) {
      fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the CPU fast-path workspace");
    } catch (const std::system_error& e) {
      fail(SLSTM_ERR_OUT_OF_MEMORY,
           std::string("cannot create the CPU fast-path worker threads: ") + e.what());
    }
    describe(config, why);
  }

  slstm_backend kind() const override { return SLSTM_BACKEND_CPU; }
  bool avx512() const { return kernel_ == Kernel::kAvx512; }
  bool avx2() const { return kernel_ == Kernel::kAvx2; }
  int threads() const { return pool_->size(); }

  void forward(const ForwardCall& call) override {
    const Model& m = *model_;
    const std::int64_t B = call.batch;
    const std::size_t n_state = m.state_count(B);
    if (call.initial_state) {
      std::memcpy(state_.get(), call.initial_state, n_state * sizeof(float));
    } else {
      std::fill_n(state_.get(), n_state, 0.0f);
    }
    if (call.time > 0) {
      call_ = &call;
      // Workers for this call (every element's arithmetic is the same whatever the split, so
      // none of these choices changes a bit of the result):
      // - the recurrence needs one barrier per step, which only pays when every worker gets
      //   enough recurrent work between two barriers: FLOPs (kFlopsPerWorker) or weight
      //   bytes to stream (kBytesPerWorker);
      // - the input projections have no barrier inside: every worker takes a share as soon
      //   as there is enough of them to pay for waking it (kProjFlopsPerWorker);
      // - with enough batch rows for every worker, a sequence long enough to amortise
      //   streaming every weight once per worker, and recurrent weights that one core keeps
      //   cached, the workers split the batch instead: no barrier at all, and no imbalance
      //   from the 16-unit groups.
      const std::int64_t T = call.time;
      // - in the unit split, a worker done with its own groups takes groups of another's share
      //   that nobody has started (grab()), when a group is worth moving (kStealFma: taking
      //   one over costs its owner's cached weights).
      double step_flops = 0.0, weight_bytes = 0.0, proj_flops = 0.0, widest = 0.0;
      double smallest_group = std::numeric_limits<double>::max();
      for (const PackedLayer& p : layers_) {
        smallest_group = std::min(smallest_group, static_cast<double>(B * p.H) * kRow);
        const double wh_bytes = 16.0 * static_cast<double>(p.H * p.H);
        step_flops += 8.0 * static_cast<double>(B) * static_cast<double>(p.H * p.H);
        weight_bytes += wh_bytes;
        widest = std::max(widest, wh_bytes);
        proj_flops += 8.0 * static_cast<double>(B * T) * static_cast<double>(p.I * p.H);
      }
      const int P = pool_->size();
      steal_ = smallest_group >= kStealFma;
      if (B >= kMinRowsPerWorker * P && T >= kMinSplitTime && widest <= kBatchSplitBytes) {
        split_batch_ = true;
        active_ = workers_ = P;
      } else if (!avx512()) {
        split_batch_ = false;
        active_ = workers_ = P;
      } else {
        split_batch_ = false;
        active_ = static_cast<int>(std::clamp<double>(
            std::max(step_flops / kFlopsPerWorker, weight_bytes / kBytesPerWorker), 1.0, P));
        workers_ = std::max(
            active_, static_cast<int>(std::clamp<double>(proj_flops / kProjFlopsPerWorker, 1.0, P)));
      }
      pool_->run(&CpuFastBackend::job, this, workers_);
      epoch_base_ += layers_.size() * static_cast<std::uint64_t>(T);
      call_ = nullptr;
    }
    if (call.final_state) {
      std::memcpy(call.final_state, state_.get(), n_state * sizeof(float));
    }
  }

 private:
  // The plan (src/plan.hpp): the kernel, the threads and, as the rule forward() applies per
  // call, the worker split; per layer its packing and whether it admits the batch split.
  void describe(const SessionConfig& config, const char* why) {
    plan_.backend = "cpu";
    plan_.path = "fast";
    plan_.precision = "fp32";
    plan_.params = {
        {"kernel", kernel_name(kernel_)},
        {"kernel_reason", why},
        {"threads", std::to_string(threads())},
        {"split",
         "per call: batch split (each worker its own rows through every layer, no barrier) "
         "when batch >= " + std::to_string(kMinRowsPerWorker) + " x threads, time >= " +
             std::to_string(kMinSplitTime) + " and every layer's W_h <= 1.5 MB; else unit "
             "split (16-unit groups per worker, one barrier per step) with " +
             (avx512() ? std::string("as many workers as the step's work pays for")
                       : std::string("every thread"))}};
    plan_.settings = config.settings.cpu_params();
    for (const PackedLayer& p : layers_) {
      const double wh_bytes = 16.0 * static_cast<double>(p.H * p.H);
      plan_.layers.push_back(
          {kernel_name(kernel_), "fused recurrent GEMM + gate kernel over packed weights",
           {{"hidden", std::to_string(p.H)},
            {"groups", std::to_string(p.groups)},
            {"batch_split", wh_bytes <= kBatchSplitBytes ? "allowed" : "no (W_h > 1.5 MB)"}}});
    }
  }

  void pack(const Model& m, std::size_t l) {
    const Layer& layer = m.layer(l);
    PackedLayer p;
    p.I = layer.input_size;
    p.H = layer.hidden_size;
    p.groups = (p.H + kGroup - 1) / kGroup;
    // Wx as [group][I][64]; on the AVX2 kernels [group][gate][I][16] (see the header).
    p.wx = allocate(product({p.groups, kRow, p.I}, "packed weights"));
    p.wh = allocate(product({p.groups, p.H, kRow}, "packed weights"));
    p.bias = allocate(product({p.groups, kRow}, "packed weights"));
    for (std::int64_t g = 0; g < p.groups; ++g) {
      for (std::int64_t q = 0; q < 4; ++q) {
        for (std::int64_t j = 0; j < kGroup; ++j) {
          const std::int64_t u = g * kGroup + j;
          if (u >= p.H) continue;  // padding stays zero
          const std::int64_t src = q * p.H + u;  // canonical row
          const std::int64_t dst = g * kRow + q * kGroup + j;
          for (std::int64_t k = 0; k < p.I; ++k) {
            p.wx[static_cast<std::size_t>(
                avx2() ? g * p.I * kRow + q * kGroup * p.I + k * kGroup + j
                       : (g * p.I + k) * kRow + q * kGroup + j)] =
                layer.w_x[static_cast<std::size_t>(src * p.I + k)];
          }
          for (std::int64_t k = 0; k < p.H; ++k) {
            p.wh[static_cast<std::size_t>((g * p.H + k) * kRow + q * kGroup + j)] =
                layer.w_h[static_cast<std::size_t>(src * p.H + k)];
          }
          p.bias[static_cast<std::size_t>(dst)] = m.folded_bias(l, static_cast<std::size_t>(src));
        }
      }
    }
    layers_.push_back(std::move(p));
  }

  // The rows one worker works on: batch rows [b0, b1) of the call, all T steps.  The
  // workspaces (G, the inner layers' outputs, the other h buffer) hold them in a region of
  // their own, rows in the worker's order (b - b0) * T + t and each layer's own row length:
  // in the batch split the workers run through the layers at their own pace, and a row
  // length that changes with the layer must not make their regions overlap.
  struct Share {
    std::int64_t b0 = 0, b1 = 0;
    float* g = nullptr;        // G region: local row i at g + i * (groups * 64)
    float* y_inner[2] = {};    // outputs of the inner layers l, in y_inner[l % 2]
    float* h_alt = nullptr;    // other h buffer, batch row b at h_alt + b * H (b in [b0, b1))
  };

  Share share(std::int64_t b0, std::int64_t b1) const {
    const std::int64_t T = call_->time;
    Share sh;
    sh.b0 = b0;
    sh.b1 = b1;
    sh.g = g_.get() + b0 * T * max_groups_ * kRow;
    for (int i = 0; i < 2; ++i) sh.y_inner[i] = y_[i].get() + b0 * T * max_h_inner_;
    sh.h_alt = h_alt_.get() + b0 * model_->max_hidden();
    return sh;
  }

  // One layer of the running call, for one share.
  struct LayerView {
    const PackedLayer* p = nullptr;
    const Share* sh = nullptr;
    const float* x = nullptr;  // input rows: the call's input (layer 0) or the share's
    bool x_local = false;      //   region of the previous layer's outputs (x_local)
    float* y = nullptr;        // output rows: the call's output (last layer, may be null)
    bool y_local = false;      //   or the share's region (y_local)
    float* c = nullptr;        // [B][H] cell state, updated in place
    float* h_state = nullptr;  // [B][H] h in the packed state
    float* h_alt = nullptr;    // [B][H] view of the other h buffer (rows of the share only)
  };

  LayerView view(const Share& sh, std::size_t l, std::size_t state_off) const {
    LayerView v;
    v.p = &layers_[l];
    v.sh = &sh;
    v.x = l == 0 ? call_->input : sh.y_inner[(l - 1) % 2];
    v.x_local = l > 0;
    v.y_local = l + 1 < layers_.size();
    v.y = v.y_local ? sh.y_inner[l % 2] : call_->output;
    v.c = state_.get() + state_off;
    v.h_state = v.c + call_->batch * v.p->H;
    v.h_alt = sh.h_alt - sh.b0 * v.p->H;  // so that v.h_alt + b * H is in the share's region
    return v;
  }

  // Row of (batch row b, step t): in the share's region, or in the caller's layout.
  std::int64_t local_row(const Share& sh, std::int64_t b, std::int64_t t) const {
    return (b - sh.b0) * call_->time + t;
  }
  std::int64_t call_row(std::int64_t b, std::int64_t t) const {
    return call_->layout == SLSTM_TIME_MAJOR ? t * call_->batch + b : b * call_->time + t;
  }

  // G[i][g*64 ..] = x(i) . Wx_g for the share's local rows i in [i0, i1) and groups g in
  // [g0, g1): chunks of rows whose inputs stay in L2 (kChunkBytes), the groups inside, blocks
  // of kMaxNb rows innermost.  Each group's weights come from L3 once per chunk and serve
  // every block of it from L2: the longer the chunk, the fewer trips (48 rows -> 384 rows
  // measured +8% on one core with 4 MB of weights).
  void project(const LayerView& v, std::int64_t i0, std::int64_t i1, std::int64_t g0,
               std::int64_t g1) const {
    const PackedLayer& p = *v.p;
    const std::int64_t kChunk =
        std::clamp<std::int64_t>(kChunkBytes / (4 * p.I) / kMaxNb, 8, 64) * kMaxNb;
    const std::int64_t T = call_->time, ld_g = p.groups * kRow;
    for (std::int64_t c0 = i0; c0 < i1; c0 += kChunk) {
      const std::int64_t c1 = std::min(i1, c0 + kChunk);
      for (std::int64_t gi = g0; gi < g1; ++gi) {
        const float* w = p.wx.get() + gi * p.I * kRow;
        for (std::int64_t r0 = c0; r0 < c1; r0 += kMaxNb) {
          const int nb = static_cast<int>(std::min<std::int64_t>(kMaxNb, c1 - r0));
          const float* in[kMaxNb];
          float* out[kMaxNb];
          for (int k = 0; k < nb; ++k) {
            const std::int64_t i = r0 + k;
            const std::int64_t xr = v.x_local ? i : call_row(v.sh->b0 + i / T, i % T);
            in[k] = v.x + xr * p.I;
            out[k] = v.sh->g + i * ld_g + gi * kRow;
          }
          project_block(w, in, p.I, out, nb, kernel_);
        }
      }
    }
  }

  // Worker w's part (of P) of the projection of a share that P workers split.  Each element
  // is one dot product in a fixed k order whoever computes it, so the split never changes a
  // bit.  By groups when there are enough of them (each worker then streams only its part
  // of Wx), else by rows.
  void project_part(const LayerView& v, int w, int P) const {
    const PackedLayer& p = *v.p;
    const std::int64_t rows = (v.sh->b1 - v.sh->b0) * call_->time;
    if (p.groups >= 4 * P) {
      project(v, 0, rows, p.groups * w / P, p.groups * (w + 1) / P);
    } else {
      const std::int64_t blocks = (rows + kMaxNb - 1) / kMaxNb;
      project(v, std::min(rows, blocks * w / P * kMaxNb),
              std::min(rows, blocks * (w + 1) / P * kMaxNb), 0, p.groups);
    }
  }

  static void job(void* self, int worker) { static_cast<CpuFastBackend*>(self)->run(worker); }

  // Step t of layer v for groups [g0, g1) and the share's batch rows.
  void step(const LayerView& v, std::int64_t t, std::int64_t g0, std::int64_t g1) const {
    const ForwardCall& call = *call_;
    const PackedLayer& p = *v.p;
    const std::int64_t ld_g = p.groups * kRow, b0 = v.sh->b0, b1 = v.sh->b1;
    float* h_buf[2] = {v.h_state, v.h_alt};
    StepArgs a;
    a.H = p.H;
    a.h_prev = h_buf[t % 2];
    a.h_next = h_buf[(t + 1) % 2];
    a.c = v.c;
    for (std::int64_t gi = g0; gi < g1; ++gi) {
      a.unit0 = gi * kGroup;
      a.units = std::min(kGroup, p.H - a.unit0);
      a.wh = p.wh.get() + gi * p.H * kRow;
      a.bias = p.bias.get() + gi * kRow;
      for (std::int64_t r0 = b0; r0 < b1; r0 += kMaxNb) {
        const int nb = static_cast<int>(std::min<std::int64_t>(kMaxNb, b1 - r0));
        a.b0 = r0;
        for (int i = 0; i < nb; ++i) {
          const std::int64_t b = r0 + i;
          const std::int64_t local = local_row(*v.sh, b, t);
          a.g_row[i] = v.sh->g + local * ld_g + gi * kRow;
          a.out_row[i] = v.y ? v.y + (v.y_local ? local : call_row(b, t)) * p.H : nullptr;
          a.active[i] = call.lengths == nullptr || t < call.lengths[b];
        }
        step_block(a, nb, kernel_);
      }
    }
  }

  // After T steps: when T is odd the final h is in the other buffer; move units [u0, u1) of
  // the share's rows into the packed state.
  void settle_h(const LayerView& v, std::int64_t u0, std::int64_t u1) const {
    const std::int64_t H = v.p->H;
    if (call_->time % 2 == 0 || u1 <= u0) return;
    for (std::int64_t b = v.sh->b0; b < v.sh->b1; ++b) {
      std::memcpy(v.h_state + b * H + u0, v.h_alt + b * H + u0,
                  static_cast<std::size_t>(u1 - u0) * sizeof(float));
    }
  }

  void run(int w) {
    if (split_batch_) {
      run_batch_share(w);
    } else {
      run_unit_share(w);
    }
  }

  // Worker w's part when the units are split: per layer, its part of the input projection
  // (all workers_), then, for the first active_ workers, the recurrence over a contiguous
  // range of the layer's 16-unit groups for every batch row, one barrier per step.
  void run_unit_share(int w) {
    const std::int64_t T = call_->time;
    const int P = workers_, A = active_;
    const Share sh = share(0, call_->batch);
    std::size_t state_off = 0;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const LayerView v = view(sh, l, state_off);
      const PackedLayer& p = *v.p;
      project_part(v, w, P);
      layer_barrier_.wait(P);  // all of G written before any step reads it
      if (w < A) {
        for (std::int64_t t = 0; t < T; ++t) {
          // This step's number, the same on every worker.
          const std::uint64_t epoch = epoch_base_ + l * static_cast<std::uint64_t>(T) +
                                      static_cast<std::uint64_t>(t) + 1;
          // Own groups first (their weights are in this core's cache), then, when a group is
          // worth moving (steal_), whatever the other workers have not started yet: a worker
          // the machine delays does not hold up the step.  Each group is still computed whole
          // by one worker.
          for (int k = 0; k < (steal_ ? A : 1); ++k) {
            const int owner = (w + k) % A;
            for (std::int64_t g; (g = grab(p, owner, A, epoch)) >= 0;) step(v, t, g, g + 1);
          }
          step_barrier_.wait(A);  // h_next complete before anyone reads it
        }
        const std::int64_t g0 = p.groups * w / A, g1 = p.groups * (w + 1) / A;
        settle_h(v, g0 * kGroup, std::min(g1 * kGroup, p.H));
      }
      layer_barrier_.wait(P);  // this layer's outputs (and h) complete before the next layer
      state_off += static_cast<std::size_t>(2 * call_->batch * p.H);
    }
  }

  // The next group of `owner`'s share (of A) for the step numbered `epoch`, or -1 when all
  // are taken.  The owner's counter holds (step number mod 2^40) << 24 | next group (a layer
  // has fewer than 2^24 groups: its weights would not fit in memory otherwise); whoever
  // finds it tagged with an earlier step starts it at the share's first group.
  std::int64_t grab(const PackedLayer& p, int owner, int A, std::uint64_t epoch) {
    std::atomic<std::uint64_t>& next = next_group_[owner].v;
    const std::int64_t g0 = p.groups * owner / A, g1 = p.groups * (owner + 1) / A;
    const std::uint64_t tag = (epoch & ((std::uint64_t{1} << 40) - 1)) << 24;
    std::uint64_t cur = next.load(std::memory_order_acquire);
    for (;;) {
      if ((cur >> 24) != (tag >> 24)) {
        next.compare_exchange_weak(cur, tag | static_cast<std::uint64_t>(g0),
                                   std::memory_order_acq_rel, std::memory_order_acquire);
        continue;  // started (by us or another worker), or cur reloaded: look again
      }
      const std::int64_t g = static_cast<std::int64_t>(cur & 0xffffffu);
      if (g >= g1) return -1;
      if (next.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
        return g;
      }
    }
  }

  // Worker w's part when the batch is split: batch rows [b0, b1) through every layer, all
  // units, projection included.  Batch rows never interact, so there is no barrier at all.
  void run_batch_share(int w) {
    const std::int64_t B = call_->batch, T = call_->time;
    const Share sh = share(B * w / active_, B * (w + 1) / active_);
    if (sh.b1 <= sh.b0) return;
    std::size_t state_off = 0;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const LayerView v = view(sh, l, state_off);
      project(v, 0, (v.sh->b1 - v.sh->b0) * T, 0, v.p->groups);
      for (std::int64_t t = 0; t < T; ++t) step(v, t, 0, v.p->groups);
      settle_h(v, 0, v.p->H);
      state_off += static_cast<std::size_t>(2 * B * v.p->H);
    }
  }

  ModelPtr model_;
  Kernel kernel_ = Kernel::kPortable;

  std::vector<PackedLayer> layers_;
  Buffer g_;       // input projections, [rows][groups*64] split in per-worker blocks
  Buffer y_[2];    // outputs of the non-last layers, ping-pong
  Buffer state_;   // packed state (c, h per layer) for up to max_batch rows
  Buffer h_alt_;   // the other half of the h double buffer
  std::int64_t max_groups_ = 0, max_h_inner_ = 0;
  std::unique_ptr<Pool> pool_;
  const ForwardCall* call_ = nullptr;
  int workers_ = 1;  // workers taking part in the current call (the input projections)
  int active_ = 1;   // workers taking part in the recurrence, <= workers_
  bool split_batch_ = false;  // the active_ workers split the batch rows, not the units
  Barrier step_barrier_;   // among the active_ recurrent workers, once per step
  // Per worker: the next group of its share that nobody has taken yet (see grab()), tagged
  // with a step number: epoch_base_ (advanced by L*T per call) + l*T + t + 1.
  struct alignas(64) Counter64 { std::atomic<std::uint64_t> v{0}; };
  std::unique_ptr<Counter64[]> next_group_;
  std::uint64_t epoch_base_ = 0;
  bool steal_ = false;  // workers may take groups of another's share (unit split)
  Barrier layer_barrier_;  // among all workers_, around each layer's recurrence
};

}  // namespace

std::unique_ptr<Backend> make_cpu_fast_backend(ModelPtr model, const SessionConfig& config) {
  // The best kernels this CPU runs: AVX-512, else AVX2+FMA, else portable, unless the keyed
  // setting cpu.kernel asks for another: one the CPU lacks is refused.  The environment
  // override SLSTM_CPU_KERNEL=avx2|portable (for tests and comparisons) only ever lowers the
  // kernel: avx2 on a CPU without it runs portable.
  const Kernel best = cpu_has_avx512() ? Kernel::kAvx512
                      : cpu_has_avx2() ? Kernel::kAvx2
                                       : Kernel::kPortable;
  const Settings& s = config.settings;
  Kernel kernel = best;
  const char* why = "the best this CPU runs";
  const bool from_env = s.cpu_kernel_from == "SLSTM_CPU_KERNEL";
  switch (s.cpu_kernel) {
    case Settings::CpuKernel::kAuto: break;
    case Settings::CpuKernel::kAvx512:
      if (best != Kernel::kAvx512) {
        fail(SLSTM_ERR_UNSUPPORTED, "options->config: cpu.kernel=avx512, but this CPU has no AVX-512");
      }
      why = "cpu.kernel=avx512";
      break;
    case Settings::CpuKernel::kAvx2:
      if (best == Kernel::kPortable && !from_env) {
        fail(SLSTM_ERR_UNSUPPORTED, "options->config: cpu.kernel=avx2, but this CPU has no AVX2+FMA");
      }
      kernel = best == Kernel::kPortable ? Kernel::kPortable : Kernel::kAvx2;
      why = from_env ? "SLSTM_CPU_KERNEL=avx2 (environment override)" : "cpu.kernel=avx2";
      break;
    case Settings::CpuKernel::kPortable:
      kernel = Kernel::kPortable;
      why = from_env ? "SLSTM_CPU_KERNEL=portable (environment override)" : "cpu.kernel=portable";
      break;
  }
  return std::make_unique<CpuFastBackend>(std::move(model), config, kernel, why);
}

}  // namespace slstm

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
