#include "rounding.hpp"

#include "step_kernels.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace slstm::cpu {
namespace {

#if defined(__GNUC__) && defined(__x86_64__)
bool have_f16c() {
  static const bool yes = cpu_has_f16c();
  return yes;
}
bool have_avx2() {
  static const bool yes = cpu_has_avx2();
  return yes;
}

// The hardware's float -> binary16 -> float, 8 at a time (round to nearest even).
__attribute__((target("avx,f16c"))) std::size_t fp16_f16c(const float* src, float* dst,
                                                          std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  return i;
}

// round_bf16 on 8 lanes: add 0x7fff + the kept part's lowest bit, clear the low 16 bits;
// infinities and NaNs (exponent all ones) pass unchanged.
__attribute__((target("avx2"))) std::size_t bf16_avx2(const float* src, float* dst,
                                                      std::size_t n) {
  const __m256i exp_mask = _mm256_set1_epi32(0x7f800000);
  const __m256i bias = _mm256_set1_epi32(0x7fff);
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i keep = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), one);
    const __m256i r =
        _mm256_and_si256(_mm256_add_epi32(b, _mm256_add_epi32(bias, lsb)), keep);
    const __m256i special = _mm256_cmpeq_epi32(_mm256_and_si256(b, exp_mask), exp_mask);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_blendv_epi8(r, b, special));
  }
  return i;
}
#endif

}  // namespace

#if defined(__GNUC__) && defined(__x86_64__)
namespace {
__attribute__((target("f16c"))) std::uint16_t fp16_code(float v) {
  return static_cast<std::uint16_t>(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
}  // namespace
#endif

std::uint16_t code16(Precision p, float v) {
  if (p == Precision::kBf16) {
    std::uint32_t b;
    std::memcpy(&b, &v, sizeof b);
    return static_cast<std::uint16_t>(b >> 16);
  }
#if defined(__GNUC__) && defined(__x86_64__)
  if (have_f16c()) return fp16_code(v);
#endif
  return 0;  // (never: 16-bit FP16 storage needs F16C)
}

void round_to_codes(Precision p, const float* src, std::uint16_t* dst, std::size_t n) {
  constexpr std::size_t kChunk = 64;
  float rounded[kChunk];
  for (std::size_t i = 0; i < n; i += kChunk) {
    const std::size_t m = std::min(kChunk, n - i);
    round_floats(p, src + i, rounded, m);
    for (std::size_t j = 0; j < m; ++j) dst[i + j] = code16(p, rounded[j]);
  }
}

void round_floats(Precision p, const float* src, float* dst, std::size_t n) {
  std::size_t i = 0;
#if defined(__GNUC__) && defined(__x86_64__)
  if (p == Precision::kFp16 && have_f16c()) i = fp16_f16c(src, dst, n);
  if (p == Precision::kBf16 && have_avx2()) i = bf16_avx2(src, dst, n);
#endif
  round_into(p, src + i, dst + i, n - i);
}

}  // namespace slstm::cpu
