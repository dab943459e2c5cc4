// What one core's kernels can do here, apart from the library (the numbers behind
// bench/results/bench-cpu-ort-avx512-m167.md "Since then" and cpu-amx-bf16.md "Where a
// large-batch step's time goes"):
//
//   fma        the recurrent micro-kernel's loop (5 rows x 64 columns in 20 zmm sums, the
//              weights packed [groups][K][64], the rows broadcast, as step_kernels_avx512.cpp)
//              over K = 300 and 4 .. 28 groups of weights (300 KB .. 2.1 MB: in L2, then
//              beyond), one and two k per iteration: GFLOP/s (one core's FMA peak: the
//              register-only rate printed first).
//   epilogue   the LSTM cell epilogue alone (src/cpu/simd_math.hpp's sigmoid and tanh, 16
//              units a row), over 5 .. 400 rows of sums in L1: ns and cycles per row
//              (at --ghz, default 3.8: this VM's cores under load).
//   amx        AMX-BF16 tiles: `tdpbf16ps` with no loads (its issue rate), then the 2 x 2
//              blocking of the library (two 16-row blocks of codes, two gates' weight
//              tiles, K = 512) over 1 MB of weights with the codes in L1, in L2 and beyond,
//              and with a vector phase and a tile release / configure between every 4
//              groups: ns per `tdpbf16ps`.
//
// Usage: slstm_kernel_probe [fma|epilogue|amx|all] [--ghz G]
// One thread; best of many repeats (the machine's noise is not the point here).  Prints a
// line per measurement; a section this CPU cannot run prints why and the program exits 0.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() as the masked-off source, which
// -W(maybe-)uninitialized flags once they are inlined here; the warning is about the header.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../src/cpu/simd_math.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

float* floats(std::size_t n, float value) {
  auto* p = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
  if (p == nullptr) {
    std::fprintf(stderr, "slstm_kernel_probe: out of memory\n");
    std::exit(1);
  }
  for (std::size_t i = 0; i < n; ++i) p[i] = value * static_cast<float>(i % 7 + 1);
  return p;
}

// ---- fma ------------------------------------------------------------------------------------

constexpr int kRows = 5;

template <int kUnroll>
SLSTM_AVX512 __attribute__((noinline)) void fma_group(const float* w, const float* const* rows,
                                                     long K, float* out) {
  __m512 acc[kRows][4];
  for (int b = 0; b < kRows; ++b) {
    for (int q = 0; q < 4; ++q) acc[b][q] = _mm512_setzero_ps();
  }
  for (long k = 0; k < K; k += kUnroll) {
    for (int u = 0; u < kUnroll && k + u < K; ++u, w += 64) {
      __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16), w2 = _mm512_load_ps(w + 32),
             w3 = _mm512_load_ps(w + 48);
      slstm::cpu::in_register(w0);
      slstm::cpu::in_register(w1);
      slstm::cpu::in_register(w2);
      slstm::cpu::in_register(w3);
      for (int b = 0; b < kRows; ++b) {
        const __m512 x = _mm512_set1_ps(rows[b][k + u]);
        acc[b][0] = _mm512_fmadd_ps(w0, x, acc[b][0]);
        acc[b][1] = _mm512_fmadd_ps(w1, x, acc[b][1]);
        acc[b][2] = _mm512_fmadd_ps(w2, x, acc[b][2]);
        acc[b][3] = _mm512_fmadd_ps(w3, x, acc[b][3]);
      }
    }
  }
  for (int b = 0; b < kRows; ++b) {
    for (int q = 0; q < 4; ++q) _mm512_store_ps(out + b * 64 + q * 16, acc[b][q]);
  }
}

// Register-only FMAs: one core's peak.
SLSTM_AVX512 __attribute__((noinline)) double fma_peak() {
  double best = 1e9;
  __m512 acc[12];
  for (auto& a : acc) a = _mm512_set1_ps(1.0f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  constexpr long kIters = 200000;
  for (int rep = 0; rep < 20; ++rep) {
    const auto t0 = Clock::now();
    for (long i = 0; i < kIters; ++i) {
      for (auto& a : acc) a = _mm512_fmadd_ps(a, m, c);
    }
    best = std::min(best, seconds_since(t0));
  }
  alignas(64) float lanes[16];
  float sink = 0;
  for (auto& a : acc) {
    _mm512_store_ps(lanes, a);
    sink += lanes[0];
  }
  if (sink == 12345.0f) std::printf(" ");  // (keeps the FMAs)
  return 12.0 * kIters * 32 / best * 1e-9;
}

template <int kUnroll>
double fma_rate(long K, long groups) {
  float* w = floats(static_cast<std::size_t>(K * 64 * groups), 1e-3f);
  float* h = floats(static_cast<std::size_t>(kRows * K), 1e-3f);
  float* out = floats(static_cast<std::size_t>(kRows * 64 * groups), 0.0f);
  const float* rows[kRows];
  for (int b = 0; b < kRows; ++b) rows[b] = h + b * K;
  double best = 1e9;
  for (int rep = 0; rep < 200; ++rep) {
    const auto t0 = Clock::now();
    for (long g = 0; g < groups; ++g) {
      fma_group<kUnroll>(w + g * K * 64, rows, K, out + g * kRows * 64);
    }
    best = std::min(best, seconds_since(t0));
  }
  std::free(w);
  std::free(h);
  std::free(out);
  return 2.0 * kRows * 64 * static_cast<double>(K * groups) / best * 1e-9;
}

void probe_fma() {
  std::printf("fma: one core's register-only peak %.1f GFLOP/s\n", fma_peak());
  for (long groups : {4L, 8L, 12L, 16L, 19L, 24L, 28L}) {
    const long K = 300;
    std::printf("fma: %d rows, K %ld, %ld groups (%ld KB of weights): %.1f GFLOP/s one k per "
                "iteration, %.1f two\n",
                kRows, K, groups, K * 256 * groups / 1024, fma_rate<1>(K, groups),
                fma_rate<2>(K, groups));
  }
}

// ---- epilogue -------------------------------------------------------------------------------

SLSTM_AVX512 __attribute__((noinline)) void epilogue_rows(const float* sums, const float* g,
                                                         float* c, float* h, long n) {
  using slstm::cpu::sigmoid512;
  using slstm::cpu::tanh512;
  for (long r = 0; r < n; ++r, sums += 64, g += 64, c += 16, h += 16) {
    const __m512 zi = _mm512_add_ps(_mm512_load_ps(sums), _mm512_load_ps(g));
    const __m512 zf = _mm512_add_ps(_mm512_load_ps(sums + 16), _mm512_load_ps(g + 16));
    const __m512 zg = _mm512_add_ps(_mm512_load_ps(sums + 32), _mm512_load_ps(g + 32));
    const __m512 zo = _mm512_add_ps(_mm512_load_ps(sums + 48), _mm512_load_ps(g + 48));
    const __m512 c_new = _mm512_fmadd_ps(_mm512_load_ps(c), sigmoid512(zf),
                                         _mm512_mul_ps(sigmoid512(zi), tanh512(zg)));
    _mm512_store_ps(c, c_new);
    _mm512_store_ps(h, _mm512_mul_ps(tanh512(c_new), sigmoid512(zo)));
  }
}

void probe_epilogue(double ghz) {
  for (long n : {5L, 95L, 400L}) {
    float* sums = floats(static_cast<std::size_t>(n * 64), 0.01f);
    float* g = floats(static_cast<std::size_t>(n * 64), 0.02f);
    float* c = floats(static_cast<std::size_t>(n * 16), 0.1f);
    float* h = floats(static_cast<std::size_t>(n * 16), 0.0f);
    double best = 1e9;
    for (int rep = 0; rep < 2000; ++rep) {
      const auto t0 = Clock::now();
      epilogue_rows(sums, g, c, h, n);
      best = std::min(best, seconds_since(t0));
    }
    std::printf("epilogue: %ld rows of 16 units: %.1f ns a row (%.0f cycles at %.2f GHz)\n", n,
                best / static_cast<double>(n) * 1e9, best / static_cast<double>(n) * ghz * 1e9,
                ghz);
    std::free(sums);
    std::free(g);
    std::free(c);
    std::free(h);
  }
}

// ---- amx ------------------------------------------------------------------------------------

#define PROBE_AMX __attribute__((target("avx512f,avx512bw,fma,amx-tile,amx-bf16")))

struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

// Why AMX-BF16 cannot run here ("" when it can): CPUID, then the OS's permission.
const char* amx_refusal() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return "no CPUID leaf 7";
  if ((d & (1u << 24)) == 0 || (d & (1u << 22)) == 0) return "no AMX-TILE / AMX-BF16 in CPUID";
  constexpr long kReqXcompPerm = 0x1023, kXfeatureTileData = 18;
  if (syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureTileData) != 0) {
    return "the OS refused the tile state (arch_prctl)";
  }
  return "";
}

PROBE_AMX void configure_all_16() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

PROBE_AMX __attribute__((noinline)) void tdp_only(long n, float* out) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (long i = 0; i < n; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 64);
}

// One group's pass: two 16-row blocks of codes (row stride lda codes) x two gates' tiles per
// k tile (w: [k_tiles][2][512 codes]), the four sums stored to out.
PROBE_AMX __attribute__((noinline)) void two_by_two(const std::uint16_t* a, long lda,
                                                   const std::uint16_t* w, long k_tiles,
                                                   float* out) {
  const long stride = lda * 2;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (long kt = 0; kt < k_tiles; ++kt) {
    _tile_loadd(4, a + kt * 32, stride);
    _tile_loadd(6, w + kt * 1024, 64);
    _tile_loadd(7, w + kt * 1024 + 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, a + 16 * lda + kt * 32, stride);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  _tile_stored(1, out + 256, 64);
  _tile_stored(2, out + 512, 64);
  _tile_stored(3, out + 768, 64);
}

std::uint16_t* codes(std::size_t n) {
  auto* p = static_cast<std::uint16_t*>(std::aligned_alloc(64, (n * 2 + 63) / 64 * 64));
  if (p == nullptr) {
    std::fprintf(stderr, "slstm_kernel_probe: out of memory\n");
    std::exit(1);
  }
  for (std::size_t i = 0; i < n; ++i) p[i] = 0x3c00;  // bfloat16 0.0078125
  return p;
}

// ns per tdpbf16ps: 1 MB of weights (K = 512, 32 groups' passes), the codes of 32 rows in
// `copies` copies of 32 KB taken in turn (1: in L1; 8: in L2; 32: beyond), with or without a
// vector phase (and a release / configure) between every 4 groups.
PROBE_AMX double two_by_two_ns(int copies, bool vector_phase) {
  constexpr long kKTiles = 16, kGroups = 32, kLda = kKTiles * 32;
  std::uint16_t* w = codes(static_cast<std::size_t>(kGroups * kKTiles * 1024));
  std::uint16_t* a = codes(static_cast<std::size_t>(copies * 32 * kLda));
  float* out = floats(4 * 1024, 0.0f);
  float* v = floats(16, 0.0f);
  double best = 1e9;
  for (int rep = 0; rep < 50; ++rep) {
    double tiles = 0;
    const auto t0 = Clock::now();
    for (int pass = 0; pass < 4; ++pass) {
      for (long g = 0; g < kGroups; g += 4) {
        const auto s0 = Clock::now();
        if (vector_phase) configure_all_16();
        for (long i = 0; i < 4; ++i) {
          const long at = ((pass * kGroups + g + i) % copies) * 32 * kLda;
          two_by_two(a + at, kLda, w + (g + i) * kKTiles * 1024, kKTiles, out + i * 1024);
        }
        if (vector_phase) {
          _tile_release();
          tiles += seconds_since(s0);
          __m512 x = _mm512_load_ps(v);
          for (int k = 0; k < 2000; ++k) {
            x = _mm512_fmadd_ps(x, _mm512_load_ps(out + (k & 255) * 16), _mm512_set1_ps(0.5f));
          }
          _mm512_store_ps(v, x);
        }
      }
    }
    best = std::min(best, vector_phase ? tiles : seconds_since(t0));
  }
  std::free(w);
  std::free(a);
  std::free(out);
  std::free(v);
  return best / (4.0 * kGroups * kKTiles * 4) * 1e9;
}

PROBE_AMX void probe_amx_tiles() {
  configure_all_16();
  float* out = floats(256, 0.0f);
  std::uint16_t* z = codes(512);
  std::memset(z, 0, 1024);
  _tile_loadd(4, z, 64);
  _tile_loadd(5, z, 64);
  _tile_loadd(6, z, 64);
  _tile_loadd(7, z, 64);
  double best = 1e9;
  constexpr long kN = 10000;
  for (int rep = 0; rep < 50; ++rep) {
    const auto t0 = Clock::now();
    tdp_only(kN, out);
    best = std::min(best, seconds_since(t0));
  }
  std::printf("amx: tdpbf16ps with no loads: %.2f ns each (%.2f TFLOP/s)\n", best / (4 * kN) * 1e9,
              4.0 * kN * 16 * 16 * 32 * 2 / best * 1e-12);
  std::printf("amx: 2 x 2 blocking, 1 MB of weights, codes in L1: %.2f ns per tdpbf16ps\n",
              two_by_two_ns(1, false));
  std::printf("amx: the same, codes in L2: %.2f ns\n", two_by_two_ns(8, false));
  std::printf("amx: the same, codes beyond L2: %.2f ns\n", two_by_two_ns(32, false));
  _tile_release();
  std::printf("amx: codes in L1, a vector phase and a release / configure every 4 groups: "
              "%.2f ns (the tile phase alone)\n",
              two_by_two_ns(1, true));
  std::free(out);
  std::free(z);
}

void probe_amx() {
  if (!__builtin_cpu_supports("avx512f")) {
    std::printf("amx: not run (no AVX-512)\n");
    return;
  }
  const char* why = amx_refusal();
  if (*why != '\0') {
    std::printf("amx: not run (%s)\n", why);
    return;
  }
  probe_amx_tiles();
}

}  // namespace

int main(int argc, char** argv) {
  std::string what = "all";
  double ghz = 3.8;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--ghz" && i + 1 < argc) {
      ghz = std::atof(argv[++i]);
    } else if (arg == "fma" || arg == "epilogue" || arg == "amx" || arg == "all") {
      what = arg;
    } else {
      std::fprintf(stderr, "usage: slstm_kernel_probe [fma|epilogue|amx|all] [--ghz G]\n");
      return 2;
    }
  }
  if (what != "amx" && !__builtin_cpu_supports("avx512f")) {
    std::printf("fma, epilogue: not run (no AVX-512)\n");
  } else {
    if (what == "fma" || what == "all") probe_fma();
    if (what == "epilogue" || what == "all") probe_epilogue(ghz);
  }
  if (what == "amx" || what == "all") probe_amx();
  return 0;
}

#else
int main() {
  std::printf("fma, epilogue: not run (x86-64 GCC/Clang builds only)\n");
  std::printf("amx: not run (x86-64 GCC/Clang builds only)\n");
  return 0;
}
#endif
