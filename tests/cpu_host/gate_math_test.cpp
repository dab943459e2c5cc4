// The AVX-512 and AVX2 kernels' vector sigmoid and tanh (src/cpu/simd_math.hpp) against
// float64 over a sweep of floats: every 101st float of either sign from 1e-30 to 60 (17.5
// million values, every exponent and mantissas throughout; the exhaustive sweep of all 1.77e9
// floats there found the same worst cases: tanh 2.5 ulp on both widths, sigmoid 3.2).  An
// error is counted in units in the last place of the exact value rounded to float32, so a
// tiny argument is held to a tiny error: tanh(x) ~ x near 0 must come out as x does.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() as the masked-off source, which
// -Wmaybe-uninitialized flags once inlined (as in step_kernels_avx512.cpp).
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "cpu/cpu_features.hpp"
#include "cpu/simd_math.hpp"

namespace {

using namespace slstm::cpu;

constexpr std::size_t kBlock = 1 << 16;  // floats per batch of the sweep (a multiple of 16)

// The floats of the sweep, in blocks: calls `f` with up to kBlock of them at a time.
template <typename F>
void sweep(F&& f) {
  std::uint32_t lo, hi;
  const float flo = 1e-30f, fhi = 60.0f;
  std::memcpy(&lo, &flo, 4);
  std::memcpy(&hi, &fhi, 4);
  std::vector<float> x(kBlock);
  for (std::uint32_t sign : {0u, 0x80000000u}) {
    std::size_t n = 0;
    for (std::uint64_t b = lo; b <= hi; b += 101) {
      const std::uint32_t bits = static_cast<std::uint32_t>(b) | sign;
      std::memcpy(&x[n++], &bits, 4);
      if (n == kBlock) {
        f(x.data(), n);
        n = 0;
      }
    }
    for (std::size_t i = n; i < kBlock; ++i) x[i] = 0.5f;  // the last block's tail
    f(x.data(), n);
  }
}

SLSTM_AVX512 void tanh_avx512(const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 16) {
    _mm512_storeu_ps(y + i, tanh512(_mm512_loadu_ps(x + i)));
  }
}
SLSTM_AVX512 void sigmoid_avx512(const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 16) {
    _mm512_storeu_ps(y + i, sigmoid512(_mm512_loadu_ps(x + i)));
  }
}
SLSTM_AVX2 void tanh_avx2(const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 8) _mm256_storeu_ps(y + i, tanh256(_mm256_loadu_ps(x + i)));
}
SLSTM_AVX2 void sigmoid_avx2(const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 8) {
    _mm256_storeu_ps(y + i, sigmoid256(_mm256_loadu_ps(x + i)));
  }
}

// |got - exact| in units in the last place of exact rounded to float32 (a normal float here).
double ulps(float got, double exact) {
  const int e = std::ilogb(static_cast<float>(exact));
  return std::fabs(static_cast<double>(got) - exact) / std::ldexp(1.0, e - 23);
}

using Kernel = void (*)(const float*, float*, std::size_t);

// The worst error of `fn` over the sweep against `exact`, on the arguments `where` accepts.
template <typename Exact, typename Where>
double worst_ulps(Kernel fn, Exact exact, Where where) {
  std::vector<float> y(kBlock);
  double worst = 0.0;
  sweep([&](const float* x, std::size_t n) {
    fn(x, y.data(), kBlock);
    for (std::size_t i = 0; i < n; ++i) {
      if (where(x[i])) worst = std::fmax(worst, ulps(y[i], exact(static_cast<double>(x[i]))));
    }
  });
  return worst;
}

double exact_tanh(double x) { return std::tanh(x); }
double exact_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
// tanh rounds to +-1 beyond |x| ~ 9: ulps of 1 are not the point there, the saturation is
// (checked apart); sigmoid's exp is clamped below -87.3, its value ~1e-38 there.
bool tanh_range(float x) { return std::fabs(x) < 9.0f; }
bool sigmoid_range(float x) { return x > -80.0f; }

void check_special_values(Kernel tanh_fn) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {inf, -inf, std::nanf(""), 0.0f, -0.0f, 44.0f, 45.0f, 1e30f, -1e30f,
                          9.0f, -9.0f, 20.0f, -20.0f, 1e-38f, 1e-45f, -1e-38f, -1e-45f};
  x.resize(32, 0.5f);  // whole vectors of either width
  std::vector<float> y(x.size());
  tanh_fn(x.data(), y.data(), x.size());
  CHECK(y[0] == 1.0f);
  CHECK(y[1] == -1.0f);
  CHECK(std::isnan(y[2]));
  CHECK(y[3] == 0.0f);
  CHECK_FALSE(std::signbit(y[3]));
  CHECK(y[4] == 0.0f);
  CHECK(std::signbit(y[4]));  // tanh(-0) = -0, as libm's and TensorFlow's
  for (std::size_t i = 5; i < 9; ++i) CHECK(std::fabs(y[i]) == 1.0f);
  for (std::size_t i = 9; i < 13; ++i) CHECK(std::fabs(y[i]) >= 0.99999994f);  // 1 or 1 - 2^-24
  CHECK(y[13] == 1e-38f);   // tanh(x) = x to float32 precision
  CHECK(y[14] == 1e-45f);   // (no flush to zero outside a library call)
  CHECK(y[15] == -1e-38f);
  CHECK(y[16] == -1e-45f);
}

// One width's tanh, where the CPU runs it: the sweep and the special values.
void check_tanh(bool runs, Kernel tanh_fn, const char* isa) {
  if (!runs) {
    WARN("skipped: this CPU has no " << isa);
    return;
  }
  CHECK(worst_ulps(tanh_fn, exact_tanh, tanh_range) <= 3.0);
  check_special_values(tanh_fn);
}

}  // namespace

TEST_CASE("the AVX-512 tanh is within 3 ulp of the exact value, tiny arguments included",
          "[gate-math]") {
  check_tanh(cpu_has_avx512(), tanh_avx512, "AVX-512");
}

TEST_CASE("the AVX2 tanh is within 3 ulp of the exact value, tiny arguments included",
          "[gate-math]") {
  check_tanh(cpu_has_avx2(), tanh_avx2, "AVX2 and FMA");
}

TEST_CASE("the AVX-512 and AVX2 sigmoid are within 4 ulp of the exact value down to 1e-35",
          "[gate-math]") {
  if (cpu_has_avx512()) CHECK(worst_ulps(sigmoid_avx512, exact_sigmoid, sigmoid_range) <= 4.0);
  if (cpu_has_avx2()) CHECK(worst_ulps(sigmoid_avx2, exact_sigmoid, sigmoid_range) <= 4.0);
  if (!cpu_has_avx512() || !cpu_has_avx2()) WARN("skipped in part: this CPU lacks AVX-512 or AVX2");
}

TEST_CASE("the AVX-512 and AVX2 tanh and sigmoid give the same bits", "[gate-math]") {
  if (!cpu_has_avx512() || !cpu_has_avx2()) {
    WARN("skipped: this CPU lacks AVX-512 or AVX2");
    return;
  }
  std::vector<float> a(kBlock), b(kBlock);
  std::size_t differ = 0;
  sweep([&](const float* x, std::size_t n) {
    for (Kernel pair : {tanh_avx512, sigmoid_avx512}) {
      pair(x, a.data(), kBlock);
      (pair == tanh_avx512 ? tanh_avx2 : sigmoid_avx2)(x, b.data(), kBlock);
      differ += static_cast<std::size_t>(std::memcmp(a.data(), b.data(), n * 4) != 0);
    }
  });
  CHECK(differ == 0);
}

#else

TEST_CASE("the vector gate functions are x86-64 only", "[gate-math]") {
  WARN("skipped: no AVX-512 or AVX2 gate functions on this architecture");
}

#endif
