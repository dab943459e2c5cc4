// The CPU fast path (DESIGN §4 "CPU path", issue 6).
//
// Structure, per layer (layer by layer over the whole sequence):
//   1. Input projection: ONE GEMM per worker over all B*T rows of the layer's input,
//      G_w = X * Wx_w^T, where Wx_w holds the worker's own hidden units (all four gates).
//      On CPUs with AVX-512 it runs the same packed register-blocked kernel as step 2; on
//      other CPUs it is a cblas_sgemm (OpenBLAS).  Why not always OpenBLAS: Debian 12's
//      OpenBLAS 0.3.21 does not recognise recent Xeons (e.g. model 0xCF) and falls back to
//      its SSE3 "Prescott" kernel, ~6x below the AVX-512 one; our kernel reaches ~90% of
//      OpenBLAS's best (SkylakeX) kernel on one core whatever OPENBLAS_CORETYPE says, and
//      writes G directly in the layout the fused step reads.  The rows of G keep the
//      caller's row order (batch- or time-major), so no transposition is ever needed.
//   2. Per step, each worker runs its own recurrent GEMM h_prev * Wh_w^T for its units with
//      a register-blocked AVX-512 micro-kernel over pre-packed weights, and applies the gate
//      math, the bias (forget_bias folded in) and the sequence-length mask in the same
//      kernel while the four gate sums are still in registers ("fused gate loop").  One
//      barrier per step publishes the new h.  For B <= 4 the same kernel runs as a blocked
//      GEMV (one weight stream per step, every batch row served from it).
//
// Packing (once per session): a layer's hidden units are cut into groups of 16 (the last one
// zero-padded).  For group g the recurrent weights are stored as [k][gate i,f,g,o][16 units],
// one contiguous 256-byte row per k, so the micro-kernel streams them linearly (and, for
// B <= 4, prefetches them); the input weights likewise [group][I][64] on the AVX-512 path,
// or row-major [group][gate][16][I] on the portable path so that one worker's slice is one
// contiguous B matrix for cblas_sgemm; the bias is [group][gate][16] with forget_bias added
// to the f block.
//
// Threads: a persistent pool of num_threads workers (0 = one per core; the calling thread is
// worker 0; capped at the number of 16-unit groups of the widest layer) created with the
// session; a call wakes them, never creates one.  A call uses A <= num_threads of them, A
// chosen from the shape alone (enough recurrent work per worker between two barriers, or
// weights too big for one core's cache: kFlopsPerWorker, kBytesPerWorker; always all of
// them on the portable path), and worker w owns a
// contiguous range of 16-unit groups of every layer.  Every output element is computed by
// one worker with a fixed k order, so on the AVX-512 path the result is bitwise the same
// for any thread count, and always the same run to run.  OpenBLAS (portable path only) is
// called by each worker on its own slice; the library never changes OpenBLAS's process-wide
// thread count.  OpenBLAS splits a GEMM over M and N only, never over K, so its result does
// not depend on its own thread count; with OpenBLAS threads > 1 the workers' concurrent calls
// are serialised inside OpenBLAS (correct, slower): OPENBLAS_NUM_THREADS=1 suits that path.
//
// Gate math: the AVX-512 kernel uses a vectorised exp (Cephes-style, ~1 ulp) with
// sigmoid(x) = 1/(1+exp(-x)) and tanh(x) = 2*sigmoid(2x) - 1 (absolute error ~1e-7), well
// inside the 1e-5 budget.  On a CPU without AVX-512 a portable kernel runs the same
// decomposition with slstm::lstm_cell.
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

#include <cblas.h>
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
constexpr double kFlopsPerWorker = 4e6;      // least recurrent FLOPs per worker and step
constexpr std::int64_t kPrefetchRows = 8;   // k rows ahead the GEMV path prefetches
constexpr double kBytesPerWorker = 1.5e6;    // recurrent weights one worker keeps cached

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

// A persistent pool: worker 0 is the calling thread, workers 1..n-1 are threads created
// once.  run() hands every worker the same job and returns when all have finished.  Inside a
// job, barrier() synchronises all workers (spin, then yield, so oversubscription stays live).
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

  // Synchronises the active workers of the running job.
  void barrier() {
    if (active_ == 1) return;
    const unsigned phase = phase_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == active_ - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      phase_.store(phase + 1, std::memory_order_release);
      return;
    }
    for (unsigned spins = 0; phase_.load(std::memory_order_acquire) == phase; ++spins) {
      relax(spins);
    }
  }

 private:
  static void relax(unsigned spins) {
    if (spins < 500) {
      _mm_pause();
    } else {
      sched_yield();
    }
  }

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
  alignas(64) std::atomic<int> arrived_{0};
  alignas(64) std::atomic<unsigned> phase_{0};
};

// ---- one step of one group of units for a block of batch rows ------------------------------

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

#if defined(__GNUC__) && defined(__x86_64__)
#define SLSTM_AVX512 __attribute__((target("avx512f,avx512dq,fma")))

// exp(x) for float32, Cephes expf polynomial with a two-constant ln2 reduction (~1 ulp).
SLSTM_AVX512 inline __m512 exp512(__m512 x) {
  // (MAXPS/MINPS return their second operand when either is NaN: NaN stays NaN.)
  x = _mm512_min_ps(_mm512_set1_ps(88.3f), _mm512_max_ps(_mm512_set1_ps(-87.3f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
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
  for (int b = 0; b < NB; ++b) h[b] = a.h_prev + (a.b0 + b) * a.H;
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

void step_block(const StepArgs& a, int nb, bool avx512) {
  if (avx512) {
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
                   int nb) {
  switch (nb) {
    case 1: project_block_avx512<1>(w, rows, K, out); return;
    case 2: project_block_avx512<2>(w, rows, K, out); return;
    case 3: project_block_avx512<3>(w, rows, K, out); return;
    case 4: project_block_avx512<4>(w, rows, K, out); return;
    case 5: project_block_avx512<5>(w, rows, K, out); return;
    default: project_block_avx512<6>(w, rows, K, out); return;
  }
}
#else
bool cpu_has_avx512() { return false; }
void step_block(const StepArgs& a, int nb, bool) { step_block_portable(a, nb); }
void project_block(const float*, const float* const*, std::int64_t, float* const*, int) {}
#endif

// ---- the backend --------------------------------------------------------------------------

struct PackedLayer {
  std::int64_t I = 0, H = 0, groups = 0;
  Buffer wx;    // [groups*64][I]
  Buffer wh;    // [groups][H][64]
  Buffer bias;  // [groups*64]
};

class CpuFastBackend final : public Backend {
 public:
  CpuFastBackend(ModelPtr model, const SessionConfig& config, bool force_portable)
      : model_(std::move(model)) {
    const Model& m = *model_;
    avx512_ = !force_portable && cpu_has_avx512();
    // The portable path's GEMM dimensions (rows = batch x time, a layer's input depth and
    // 4H) are BLAS ints (32-bit in Debian's OpenBLAS): refuse a session that could exceed
    // them, before any allocation, rather than truncate. (The AVX-512 kernels index in 64 bits.)
    constexpr std::int64_t kBlasMax = std::numeric_limits<std::int32_t>::max();
    if (!avx512_ && config.max_batch > kBlasMax / config.max_time) {
      fail(SLSTM_ERR_SIZE_OVERFLOW,
           "options->max_batch x options->max_time exceeds the CPU fast path's limit of " +
               std::to_string(kBlasMax) + " rows per call (SLSTM_CPU_PATH_REFERENCE has none)");
    }
    for (const Layer& layer : m.layers()) {
      if (!avx512_ && (layer.input_size > kBlasMax || layer.hidden_size > kBlasMax / 4)) {
        fail(SLSTM_ERR_SIZE_OVERFLOW,
             "a layer's input or 4 x hidden size exceeds the CPU fast path's limit of " +
                 std::to_string(kBlasMax) + " (SLSTM_CPU_PATH_REFERENCE has none)");
      }
    }
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
      std::int64_t max_h_inner = 1;  // widest non-last layer (its outputs are a workspace)
      for (std::size_t l = 0; l + 1 < m.layers().size(); ++l) {
        max_h_inner = std::max(max_h_inner, m.layer(l).hidden_size);
      }
      g_ = allocate(product({max_rows, max_groups, kRow}, "workspace"), false);
      y_[0] = allocate(product({max_rows, max_h_inner}, "workspace"), false);
      y_[1] = allocate(product({max_rows, max_h_inner}, "workspace"), false);
      for (const Layer& layer : m.layers()) pack(layer, m.forget_bias());
      state_ = allocate(m.state_count(config.max_batch));
      h_alt_ = allocate(product({config.max_batch, m.max_hidden()}, "workspace"));
      pool_ = std::make_unique<Pool>(P);
    } catch (const std::bad_alloc&) {
      fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the CPU fast-path workspace");
    } catch (const std::length_error&) {
      fail(SLSTM_ERR_OUT_OF_MEMORY, "cannot allocate the CPU fast-path workspace");
    } catch (const std::system_error& e) {
      fail(SLSTM_ERR_OUT_OF_MEMORY,
           std::string("cannot create the CPU fast-path worker threads: ") + e.what());
    }
  }

  slstm_backend kind() const override { return SLSTM_BACKEND_CPU; }
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
      // Workers for this call: a barrier per step only pays when every worker gets enough
      // recurrent work between two barriers (kFlopsPerWorker); more would mostly wait,
      // and badly so on a loaded machine.  On the AVX-512 path every element's arithmetic is
      // the same whatever the split, so this choice never changes a bit of the result.
      // Likewise when the recurrent weights exceed what one core's cache holds
      // (kBytesPerWorker): split over more cores, each streams only its share.
      double step_flops = 0.0, weight_bytes = 0.0;
      for (const PackedLayer& p : layers_) {
        step_flops += 8.0 * static_cast<double>(B) * static_cast<double>(p.H * p.H);
        weight_bytes += 16.0 * static_cast<double>(p.H * p.H);
      }
      const double want = std::max(step_flops / kFlopsPerWorker,
                                   std::ceil(weight_bytes / kBytesPerWorker));
      active_ = avx512_ ? static_cast<int>(std::clamp<double>(want, 1.0, pool_->size()))
                        : pool_->size();
      pool_->run(&CpuFastBackend::job, this, active_);
      call_ = nullptr;
    }
    if (call.final_state) {
      std::memcpy(call.final_state, state_.get(), n_state * sizeof(float));
    }
  }

 private:
  void pack(const Layer& layer, float forget_bias) {
    PackedLayer p;
    p.I = layer.input_size;
    p.H = layer.hidden_size;
    p.groups = (p.H + kGroup - 1) / kGroup;
    // AVX-512: [group][I][64] for the packed kernel; otherwise [group*64][I] for cblas.
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
            const std::size_t at = static_cast<std::size_t>(
                avx512_ ? (g * p.I + k) * kRow + q * kGroup + j : dst * p.I + k);
            p.wx[at] = layer.w_x[static_cast<std::size_t>(src * p.I + k)];
          }
          for (std::int64_t k = 0; k < p.H; ++k) {
            p.wh[static_cast<std::size_t>((g * p.H + k) * kRow + q * kGroup + j)] =
                layer.w_h[static_cast<std::size_t>(src * p.H + k)];
          }
          p.bias[static_cast<std::size_t>(dst)] =
              layer.bias[static_cast<std::size_t>(src)] + (q == kGateF ? forget_bias : 0.0f);
        }
      }
    }
    layers_.push_back(std::move(p));
  }

  // G_w[r][(g-g0)*64 ..] = x[r] . Wx_g for r < rows and this worker's groups [g0, g1):
  // row chunks that stay in L2, the groups inside, blocks of kMaxNb rows innermost.
  void project(const PackedLayer& p, const float* x, std::int64_t rows, std::int64_t g0,
               std::int64_t g1, float* g_w) {
    constexpr std::int64_t kChunk = 8 * kMaxNb;
    const std::int64_t ld_g = (g1 - g0) * kRow;
    for (std::int64_t r0 = 0; r0 < rows; r0 += kChunk) {
      const std::int64_t r1 = std::min(rows, r0 + kChunk);
      for (std::int64_t g = g0; g < g1; ++g) {
        const float* w = p.wx.get() + g * p.I * kRow;
        for (std::int64_t b0 = r0; b0 < r1; b0 += kMaxNb) {
          const int nb = static_cast<int>(std::min<std::int64_t>(kMaxNb, r1 - b0));
          const float* in[kMaxNb];
          float* out[kMaxNb];
          for (int i = 0; i < nb; ++i) {
            in[i] = x + (b0 + i) * p.I;
            out[i] = g_w + (b0 + i) * ld_g + (g - g0) * kRow;
          }
          project_block(w, in, p.I, out, nb);
        }
      }
    }
  }

  static void job(void* self, int worker) { static_cast<CpuFastBackend*>(self)->run(worker); }

  // Worker `w`'s share of the whole forward call.
  void run(int w) {
    const ForwardCall& call = *call_;
    const std::int64_t B = call.batch, T = call.time, rows = B * T;
    const bool time_major = call.layout == SLSTM_TIME_MAJOR;
    const std::size_t L = layers_.size();
    std::size_t state_off = 0;
    const float* x = call.input;
    for (std::size_t l = 0; l < L; ++l) {
      const PackedLayer& p = layers_[l];
      const std::int64_t g0 = p.groups * w / active_;
      const std::int64_t g1 = p.groups * (w + 1) / active_;
      const std::int64_t ld_g = (g1 - g0) * kRow;
      float* g_w = g_.get() + rows * g0 * kRow;  // this worker's [rows][ld_g] block
      const bool last = l + 1 == L;
      float* y = last ? call.output : y_[l % 2].get();
      float* c = state_.get() + state_off;
      float* h_state = c + B * p.H;
      float* h_buf[2] = {h_state, h_alt_.get()};
      if (ld_g > 0 && avx512_) {
        project(p, x, rows, g0, g1, g_w);
      } else if (ld_g > 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows),
                    static_cast<blasint>(ld_g), static_cast<blasint>(p.I), 1.0f, x,
                    static_cast<blasint>(p.I), p.wx.get() + g0 * kRow * p.I,
                    static_cast<blasint>(p.I), 0.0f, g_w, static_cast<blasint>(ld_g));
      }
      for (std::int64_t t = 0; t < T; ++t) {
        StepArgs a;
        a.H = p.H;
        a.h_prev = h_buf[t % 2];
        a.h_next = h_buf[(t + 1) % 2];
        a.c = c;
        for (std::int64_t g = g0; g < g1; ++g) {
          a.unit0 = g * kGroup;
          a.units = std::min(kGroup, p.H - a.unit0);
          a.wh = p.wh.get() + g * p.H * kRow;
          a.bias = p.bias.get() + g * kRow;
          for (std::int64_t b0 = 0; b0 < B; b0 += kMaxNb) {
            const int nb = static_cast<int>(std::min<std::int64_t>(kMaxNb, B - b0));
            a.b0 = b0;
            for (int i = 0; i < nb; ++i) {
              const std::int64_t b = b0 + i;
              const std::int64_t row = time_major ? t * B + b : b * T + t;
              a.g_row[i] = g_w + row * ld_g + (g - g0) * kRow;
              a.out_row[i] = y ? y + row * p.H : nullptr;
              a.active[i] = call.lengths == nullptr || t < call.lengths[b];
            }
            step_block(a, nb, avx512_);
          }
        }
        pool_->barrier();  // h_next complete before anyone reads it
      }
      if (T % 2 == 1) {
        // The final h is in the alternate buffer: move it into the packed state.
        for (std::int64_t b = 0; b < B; ++b) {
          const std::int64_t u0 = g0 * kGroup, u1 = std::min(g1 * kGroup, p.H);
          if (u1 > u0) {
            std::memcpy(h_state + b * p.H + u0, h_alt_.get() + b * p.H + u0,
                        static_cast<std::size_t>(u1 - u0) * sizeof(float));
          }
        }
      }
      pool_->barrier();  // this layer's outputs (and h_alt_) complete before the next layer
      state_off += static_cast<std::size_t>(2 * B * p.H);
      x = y;
    }
  }

  ModelPtr model_;
  bool avx512_ = false;
  std::vector<PackedLayer> layers_;
  Buffer g_;       // input projections, [rows][groups*64] split in per-worker blocks
  Buffer y_[2];    // outputs of the non-last layers, ping-pong
  Buffer state_;   // packed state (c, h per layer) for up to max_batch rows
  Buffer h_alt_;   // the other half of the h double buffer
  std::unique_ptr<Pool> pool_;
  const ForwardCall* call_ = nullptr;
  int active_ = 1;  // workers taking part in the current call
};

}  // namespace

std::unique_ptr<Backend> make_cpu_fast_backend(ModelPtr model, const SessionConfig& config) {
  // SLSTM_CPU_KERNEL=portable selects the OpenBLAS path that CPUs without AVX-512 take, so
  // that it is tested (and can be compared) on any machine. Read once per session.
  const char* kernel = std::getenv("SLSTM_CPU_KERNEL");
  const bool portable = kernel != nullptr && std::strcmp(kernel, "portable") == 0;
  return std::make_unique<CpuFastBackend>(std::move(model), config, portable);
}

}  // namespace slstm

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
