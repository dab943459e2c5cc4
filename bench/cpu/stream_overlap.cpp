// Why the large-batch rows with the largest W_h stay below 80 % of the SGEMM peak (issue 18):
// the fast path's recurrent micro-kernel (6 rows x 64 columns in 24 zmm sums, the packed
// weights [groups][K][64] streamed, the rows broadcast, as src/cpu/step_kernels_avx512.cpp)
// on one worker's half of W_h, run by `threads` threads at once (each its own weights and
// rows, as the unit split shares a step), in the variants that could hide the weight stream:
//
//   stream     1 row: the weight stream alone (its rate is the per-core L3 bandwidth)
//   resident   the same rows over weights that fit L2 (the kernel's FMA rate)
//   l3         the rows over weights that live in L3 (H = 2048: 32 MB a worker), as a step
//   l3-kc      the same, K cut into chunks of kc (each chunk's 64-column panel in L1 for all
//              the row blocks; the sums stored and reloaded between chunks: same bits)
//   l3-pf      the same, each row block fetching its share of the next group's weights
//              into L2 (prefetcht1) spread over its K loop, as the library does
//   l3-pf0     the same with prefetcht0
//   l3-mix     l3-pf, and after each group as much input-projection work (the same kernel,
//              as many rows, over one group of weights that stays in L2) as the group's
//              recurrent FMAs: a step interleaved with a future step's projection, which
//              does not depend on it.  Against l3-pf + resident (the two one after the
//              other, as the library runs them): what interleaving would hide
//
// Usage: slstm_stream_overlap [rows=16] [K=2048] [columns per thread=4096] [threads=2]
//                             [kc=128] [seconds=2]
// Prints one line per variant: ms per step (median over repeats; resident: per step of as many
// groups as the others, each in L2), GFLOP/s over all threads, the weight bytes per second.
// AVX-512 only (prints a line and exits 0 elsewhere).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define SLSTM_AVX512 __attribute__((target("avx512f")))
#endif

namespace {

struct Variant {
  const char* name;
  bool resident;  // weights that fit L2
  std::int64_t kc;  // K chunk (0: whole K)
  int prefetch;     // 0 none, 2 prefetcht1, 3 prefetcht0
  bool one_row;
  bool mix = false;  // projection work over L2-resident weights after each group
};

#if defined(__GNUC__) && defined(__x86_64__)
constexpr std::int64_t kRow = 64;  // packed floats per k of a group (4 gates x 16 units)
constexpr int kMaxNb = 6;

// rows[b][k0..k1) . w[k0..k1) added to (or, with first, written to) out[b][0..63], for NB
// rows; `pf` lines fetched along the way.
template <int NB>
SLSTM_AVX512 void block(const float* w, const float* const* rows, std::int64_t k0,
                        std::int64_t k1, float* const* out, bool first, const char* pf,
                        std::int64_t pf_lines, int hint) {
  __m512 acc[NB][4];
  for (int b = 0; b < NB; ++b) {
    for (int q = 0; q < 4; ++q) {
      acc[b][q] = first ? _mm512_setzero_ps() : _mm512_load_ps(out[b] + 16 * q);
    }
  }
  const std::int64_t per_k = pf_lines > 0 ? (pf_lines + (k1 - k0) - 1) / (k1 - k0) : 0;
  const char* pf_end = pf + pf_lines * 64;
  w += k0 * kRow;
  for (std::int64_t k = k0; k < k1; ++k, w += kRow) {
    for (std::int64_t j = 0; j < per_k && pf < pf_end; ++j, pf += 64) {
      if (hint == 3) {
        _mm_prefetch(pf, _MM_HINT_T0);
      } else {
        _mm_prefetch(pf, _MM_HINT_T1);
      }
    }
    const __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16);
    const __m512 w2 = _mm512_load_ps(w + 32), w3 = _mm512_load_ps(w + 48);
    for (int b = 0; b < NB; ++b) {
      const __m512 x = _mm512_set1_ps(rows[b][k]);
      acc[b][0] = _mm512_fmadd_ps(w0, x, acc[b][0]);
      acc[b][1] = _mm512_fmadd_ps(w1, x, acc[b][1]);
      acc[b][2] = _mm512_fmadd_ps(w2, x, acc[b][2]);
      acc[b][3] = _mm512_fmadd_ps(w3, x, acc[b][3]);
    }
  }
  for (int b = 0; b < NB; ++b) {
    for (int q = 0; q < 4; ++q) _mm512_store_ps(out[b] + 16 * q, acc[b][q]);
  }
}

void block_any(int nb, const float* w, const float* const* rows, std::int64_t k0,
               std::int64_t k1, float* const* out, bool first, const char* pf,
               std::int64_t pf_lines, int hint) {
  switch (nb) {
    case 1: block<1>(w, rows, k0, k1, out, first, pf, pf_lines, hint); return;
    case 2: block<2>(w, rows, k0, k1, out, first, pf, pf_lines, hint); return;
    case 3: block<3>(w, rows, k0, k1, out, first, pf, pf_lines, hint); return;
    case 4: block<4>(w, rows, k0, k1, out, first, pf, pf_lines, hint); return;
    case 5: block<5>(w, rows, k0, k1, out, first, pf, pf_lines, hint); return;
    default: block<6>(w, rows, k0, k1, out, first, pf, pf_lines, hint); return;
  }
}

struct Worker {
  std::int64_t rows, K, groups;
  float* w = nullptr;
  float* x = nullptr;
  float* g = nullptr;
  float* pw = nullptr;  // the projection's group of weights (l3-mix)
  float* pg = nullptr;  // its outputs
  void* mem = nullptr;

  Worker(std::int64_t rows_, std::int64_t K_, std::int64_t groups_)
      : rows(rows_), K(K_), groups(groups_) {
    const std::int64_t nw = groups * K * kRow, nx = rows * K, ng = rows * groups * kRow;
    const std::int64_t np = K * kRow;  // one projection group, resident in L2
    mem = std::aligned_alloc(64, static_cast<std::size_t>((nw + nx + ng + np + ng) * 4));
    if (mem == nullptr) std::abort();
    w = static_cast<float*>(mem);
    x = w + nw;
    g = x + nx;
    pw = g + ng;
    pg = pw + np;
    for (std::int64_t i = 0; i < nw + np; ++i) w[i] = static_cast<float>(i % 17) * 0.01f;
    for (std::int64_t i = 0; i < ng; ++i) pg[i] = 0.0f;
    for (std::int64_t i = 0; i < nx; ++i) x[i] = static_cast<float>(i % 13) * 0.01f;
  }
  ~Worker() { std::free(mem); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // One step: every group, its row blocks innermost (row_cut as the library cuts them).
  void step(const Variant& v) {
    const std::int64_t blocks = (rows + kMaxNb - 1) / kMaxNb;
    const std::int64_t kc = v.kc > 0 ? v.kc : K;
    const std::int64_t slab = K * kRow, lines = slab * 4 / 64;
    for (std::int64_t gi = 0; gi < groups; ++gi) {
      const float* wg = w + gi * slab;
      const char* next = gi + 1 < groups ? reinterpret_cast<const char*>(wg + slab) : nullptr;
      for (std::int64_t k0 = 0; k0 < K; k0 += kc) {
        const std::int64_t k1 = std::min(K, k0 + kc);
        for (std::int64_t j = 0; j < blocks; ++j) {
          const float* in[kMaxNb];
          float* out[kMaxNb];
          const std::int64_t nb = block_rows(j, blocks, gi, g, in, out);
          const char* pf = nullptr;
          std::int64_t pf_lines = 0;
          if (v.prefetch != 0 && next != nullptr && k0 == 0) {
            const std::int64_t per = (lines + blocks - 1) / blocks;
            const std::int64_t first = std::min(lines, j * per);
            pf = next + first * 64;
            pf_lines = std::min(lines, first + per) - first;
          }
          block_any(static_cast<int>(nb), wg, in, k0, k1, out, k0 == 0, pf, pf_lines,
                    v.prefetch);
        }
      }
      if (v.mix) project(gi, blocks);
    }
  }

  // As many rows of projection over the resident group as the recurrent group had.
  void project(std::int64_t gi, std::int64_t blocks) {
    for (std::int64_t j = 0; j < blocks; ++j) {
      const float* in[kMaxNb];
      float* out[kMaxNb];
      const std::int64_t nb = block_rows(j, blocks, gi, pg, in, out);
      block_any(static_cast<int>(nb), pw, in, 0, K, out, true, nullptr, 0, 0);
    }
  }

  // Row block j of `blocks` (cut evenly): its rows' inputs, and their outputs of group gi in
  // `base`; returns the block's row count.
  std::int64_t block_rows(std::int64_t j, std::int64_t blocks, std::int64_t gi, float* base,
                          const float** in, float** out) const {
    const std::int64_t r0 = j * rows / blocks, r1 = (j + 1) * rows / blocks;
    for (std::int64_t b = 0; b < r1 - r0; ++b) {
      in[b] = x + (r0 + b) * K;
      out[b] = base + (r0 + b) * groups * kRow + gi * kRow;
    }
    return r1 - r0;
  }
};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Median ms per step of `threads` workers stepping together, `inner` steps per start (the
// resident variant's steps are short: a thread's start would weigh).
double run(const Variant& v, std::int64_t rows, std::int64_t K, std::int64_t groups,
           int threads, int inner, double seconds) {
  std::vector<std::unique_ptr<Worker>> ws;
  for (int t = 0; t < threads; ++t) ws.push_back(std::make_unique<Worker>(rows, K, groups));
  std::vector<double> times;
  const double end = now() + seconds;
  for (int rep = 0; rep < 3 || (now() < end && rep < 10000); ++rep) {
    const double t0 = now();
    std::vector<std::thread> th;
    for (int t = 1; t < threads; ++t) {
      th.emplace_back([&, t] {
        for (int i = 0; i < inner; ++i) ws[t]->step(v);
      });
    }
    for (int i = 0; i < inner; ++i) ws[0]->step(v);
    for (std::thread& t : th) t.join();
    times.push_back((now() - t0) * 1e3 / inner);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const auto arg = [&](int i, long long d) { return argc > i ? std::atoll(argv[i]) : d; };
  const std::int64_t rows = arg(1, 16), K = arg(2, 2048), cols = arg(3, 4096);
  const int threads = static_cast<int>(arg(4, 2));
  const std::int64_t kc = arg(5, 128);
  const double seconds = argc > 6 ? std::atof(argv[6]) : 2.0;
#if defined(__GNUC__) && defined(__x86_64__)
  if (!__builtin_cpu_supports("avx512f")) {
    std::printf("stream_overlap: this CPU has no AVX-512 (nothing measured)\n");
    return 0;
  }
  if (rows < 1 || K < 1 || cols < 64 || threads < 1 || kc < 1) {
    std::fprintf(stderr, "usage: %s [rows] [K] [columns per thread] [threads] [kc] [s]\n",
                 argv[0]);
    return 2;
  }
  const std::int64_t groups = cols / 64;
  // L2-resident: as many groups as 1 MiB of weights holds (at least one).
  const std::int64_t resident_groups =
      std::max<std::int64_t>(1, (1 << 20) / (K * kRow * 4));
  const Variant variants[] = {
      {"stream", false, 0, 0, true},  {"resident", true, 0, 0, false},
      {"l3", false, 0, 0, false},     {"l3-kc", false, kc, 0, false},
      {"l3-pf", false, 0, 2, false},  {"l3-pf0", false, 0, 3, false},
      {"l3-mix", false, 0, 2, false, true},
  };
  std::printf("rows=%lld K=%lld columns/thread=%lld threads=%d kc=%lld\n",
              static_cast<long long>(rows), static_cast<long long>(K),
              static_cast<long long>(groups * 64), threads, static_cast<long long>(kc));
  for (const Variant& v : variants) {
    const std::int64_t r = v.one_row ? 1 : rows;
    const std::int64_t gs = v.resident ? resident_groups : groups;
    const int inner = static_cast<int>(groups / gs);
    // (resident: per step of all the groups, as if every group's weights were in L2)
    const double scale = static_cast<double>(groups) / static_cast<double>(gs);
    const double ms = run(v, r, K, gs, threads, std::max(1, inner), seconds) * scale;
    const double flop =
        2.0 * static_cast<double>(r * groups * kRow * K) * threads * (v.mix ? 2 : 1);
    const double bytes = static_cast<double>(groups * kRow * K * 4) * threads;
    std::printf("%-9s ms/step %8.3f  GFLOP/s %7.1f  weights GB/s %6.1f%s\n", v.name, ms,
                flop / ms / 1e6, bytes / ms / 1e6,
                v.resident ? "  (from L2: the FMA rate)"
                : v.mix    ? "  (GFLOP/s: both; compare ms with l3-pf + resident)"
                           : "");
  }
  return 0;
#else
  (void)rows;
  (void)K;
  (void)cols;
  (void)threads;
  (void)kc;
  (void)seconds;
  std::printf("stream_overlap: x86-64 GCC/Clang builds only (nothing measured)\n");
  return 0;
#endif
}
