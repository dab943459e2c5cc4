#include "rounding.hpp"

#include "step_kernels.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__GNUC__) && defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass an undefined vector as the masked-off source, which
// -Wmaybe-uninitialized flags once inlined (as in step_kernels_avx512.cpp).
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "simd_math.hpp"
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
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma"))) void bf16_codes_avx512(
    const float* src, std::uint16_t* dst, std::size_t n) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        bf16_codes512(_mm512_loadu_ps(src + i)));
  }
  if (i < n) {
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm256_mask_storeu_epi16(dst + i, m, bf16_codes512(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

// (_mm_cvtps_ph on one lane rather than _cvtss_sh, which clang's header writes with a
// compound literal that -Wpedantic refuses in C++.)
__attribute__((target("f16c"))) std::uint16_t fp16_code(float v) {
  const __m128i h = _mm_cvtps_ph(_mm_set_ss(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return static_cast<std::uint16_t>(_mm_cvtsi128_si32(h) & 0xffff);
}
}  // namespace
#endif

std::uint16_t code16(Precision p, float v) {
  if (p == Precision::kBf16) {
    std::uint32_t b;
    std::memcpy(&b, &v, sizeof b);
    // (A NaN stays a NaN: its payload may lie in the low half alone.)
    const bool nan = (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0;
    return static_cast<std::uint16_t>((b >> 16) | (nan ? 0x40u : 0u));
  }
#if defined(__GNUC__) && defined(__x86_64__)
  if (have_f16c()) return fp16_code(v);
#endif
  return 0;  // (never: 16-bit FP16 storage needs F16C)
}

void round_to_codes(Precision p, const float* src, std::uint16_t* dst, std::size_t n) {
#if defined(__GNUC__) && defined(__x86_64__)
  static const bool bw = cpu_has_avx512() && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl");
  if (p == Precision::kBf16 && bw) {
    bf16_codes_avx512(src, dst, n);
    return;
  }
#endif
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
