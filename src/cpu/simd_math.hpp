// The vectorised gate functions of the AVX-512 and AVX2 kernels: exp (Cephes-style, ~1 ulp),
// sigmoid(x) = 1/(1+exp(-x)) and tanh(x) = expm1(2x) / (expm1(2x) + 2), each within a few
// ulp of the exact value relative to it, tiny arguments included (the portable kernel runs
// libm's expf and tanhf: slstm::lstm_cell, gate_math.hpp).  Before 0.19.1 tanh was
// 2*sigmoid(2x) - 1, ~6e-8 off in absolute terms: for |x| = 1e-5 a relative error of 1e-3.
// Each function carries the target attribute of its ISA, so that a translation unit compiled
// for the baseline can include this header; only the kernels of that ISA call them.
#pragma once

#if defined(__GNUC__) && defined(__x86_64__)

#include <cstdint>
#include <immintrin.h>

#define SLSTM_AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define SLSTM_AVX2 __attribute__((target("avx2,fma")))
// For the cell epilogues: always inlined into the step kernels (no call in the inner loop).
#define SLSTM_AVX512_INLINE __attribute__((target("avx512f,avx512dq,fma"), always_inline)) inline
#define SLSTM_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline
// AVX-512 with the 16-bit element instructions (BW, VL: every CPU with AMX has them).
#define SLSTM_AVX512BW_INLINE \
  __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma"), always_inline)) inline

namespace slstm::cpu {

// Keeps a loaded weight vector in a register for the FMAs of several rows.  Where a value
// feeds 2-3 FMAs, GCC 12 folds its load into each of them (a memory operand), so the kernel
// loads every weight once per row and waits on the loads: the generic AVX-512 GEMM ran 2 rows
// at 0.47 and 3 rows at 0.46 of the FMA peak that way, 0.69 and 0.91 with the vector pinned
// (AVX-512 Xeon, weights in L2).  The empty asm changes nothing but where the value lives:
// the same FMAs on the same values, the same bits.  (One overload per ISA, carrying its
// target: clang checks the asm's register constraint against the function's own target.)
SLSTM_AVX2_INLINE void in_register(__m256& v) { asm("" : "+x"(v)); }
SLSTM_AVX512_INLINE void in_register(__m512& v) { asm("" : "+v"(v)); }

// One row of bfloat16 weights, 16 columns at a time: the 16 codes are one 256-bit load,
// widened by one operation per 8 (the even columns' codes shifted up, the odd ones' masked: a
// code is a float's upper half) where vpmovzxwd + vpslld take two.  The sums of the even
// columns (lanes: 0 2 4 6 | 8 10 12 14) and of the odd ones (1 3 5 7 | 9 11 13 15) are kept
// apart: each column's chain is the one it would be in column order.
SLSTM_AVX2_INLINE void bf16_widen(const std::uint16_t* codes, __m256& even, __m256& odd) {
  const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes));
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  even = _mm256_castsi256_ps(_mm256_slli_epi32(c, 16));
  odd = _mm256_castsi256_ps(_mm256_and_si256(c, high));
}

// bf16_widen's two halves on their own (each reads the 16 codes).
SLSTM_AVX2_INLINE __m256 bf16_even(const std::uint16_t* codes) {
  const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes));
  return _mm256_castsi256_ps(_mm256_slli_epi32(c, 16));
}
SLSTM_AVX2_INLINE __m256 bf16_odd(const std::uint16_t* codes) {
  const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes));
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  return _mm256_castsi256_ps(_mm256_and_si256(c, high));
}

// even += (the even columns' weights) * x, odd likewise.
SLSTM_AVX2_INLINE void bf16_pair_fma(const std::uint16_t* codes, __m256 x, __m256& even,
                                     __m256& odd) {
  __m256 we, wo;
  bf16_widen(codes, we, wo);
  even = _mm256_fmadd_ps(we, x, even);
  odd = _mm256_fmadd_ps(wo, x, odd);
}

// z[0 .. 16) from such even and odd sums, in column order.
SLSTM_AVX2_INLINE void store_interleaved(float* z, __m256 even, __m256 odd) {
  const __m256 lo = _mm256_unpacklo_ps(even, odd);  // 0 1 2 3 | 8 9 10 11
  const __m256 hi = _mm256_unpackhi_ps(even, odd);  // 4 5 6 7 | 12 13 14 15
  _mm256_storeu_ps(z, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(z + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}

// The even and odd sums' starting values from z[0 .. 16) (the inverse of store_interleaved).
SLSTM_AVX2_INLINE void load_deinterleaved(const float* z, __m256& even, __m256& odd) {
  const __m256 a = _mm256_loadu_ps(z), b = _mm256_loadu_ps(z + 8);
  const __m256 lo = _mm256_permute2f128_ps(a, b, 0x20);  // 0 1 2 3 | 8 9 10 11
  const __m256 hi = _mm256_permute2f128_ps(a, b, 0x31);  // 4 5 6 7 | 12 13 14 15
  even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  odd = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
}

// Internal linkage: each kernel translation unit has its own copy, inlined into its kernels
// (with external linkage GCC 12 lays the AVX-512 step kernels out differently).
namespace {

// exp(x) for float32: Cephes expf, x clamped to [kExpLo, kExpHi], n = round(x log2 e),
// r = x - n ln2 in two steps (ln2 = kLn2Hi + kLn2Lo), p(r) = 1 + r + r^2 (((((c0 r + c1) r
// + c2) r + c3) r + c4) r + c5), exp(x) = p 2^n (~1 ulp). Both vector widths use these.
constexpr float kExpHi = 88.3f, kExpLo = -87.3f, kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kExpPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                               4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// ---- AVX-512: 16 floats -------------------------------------------------------------------

// exp's argument reduction: x clamped, n = round(x log2 e), returns r = x - n ln2.
SLSTM_AVX512 inline __m512 exp_reduce512(__m512 x, __m512& n) {
  // (MAXPS/MINPS return their second operand when either is NaN: NaN stays NaN.)
  x = _mm512_min_ps(_mm512_set1_ps(kExpHi), _mm512_max_ps(_mm512_set1_ps(kExpLo), x));
  n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  return _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
}

// exp's polynomial less its 1 + r: (((((c0 r + c1) r + c2) r + c3) r + c4) r + c5).
SLSTM_AVX512 inline __m512 exp_poly512(__m512 r) {
  __m512 p = _mm512_set1_ps(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpPoly[i]));
  return p;
}

SLSTM_AVX512 inline __m512 exp512(__m512 x) {
  __m512 n;
  const __m512 r = exp_reduce512(x, n);
  const __m512 p = _mm512_fmadd_ps(exp_poly512(r), _mm512_mul_ps(r, r),
                                   _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// exp(x) - 1 = 2^n (q + 1) - 1 = 2^n q + (2^n - 1), q = r + r^2 P(r): no cancellation near
// 0, where n = 0 and the result is q itself.
SLSTM_AVX512 inline __m512 expm1_512(__m512 x) {
  __m512 n;
  const __m512 r = exp_reduce512(x, n);
  const __m512 q = _mm512_fmadd_ps(exp_poly512(r), _mm512_mul_ps(r, r), r);
  const __m512 t = _mm512_scalef_ps(_mm512_set1_ps(1.0f), n);
  return _mm512_fmadd_ps(t, q, _mm512_sub_ps(t, _mm512_set1_ps(1.0f)));
}

// The bfloat16 codes of 16 floats rounded to nearest even: precision.hpp's round_bf16 and
// rounding.hpp's code16, bit for bit (inf stays inf, a NaN stays a NaN, made quiet).
SLSTM_AVX512BW_INLINE __m256i bf16_codes512(__m512 v) {
  const __m512i b = _mm512_castps_si512(v);
  const __m512i exp_mask = _mm512_set1_epi32(0x7f800000);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(
      _mm512_add_epi32(b, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
  const __mmask16 special =
      _mm512_cmpeq_epi32_mask(_mm512_and_si512(b, exp_mask), exp_mask);
  const __mmask16 nan = _mm512_mask_test_epi32_mask(special, b, _mm512_set1_epi32(0x007fffff));
  r = _mm512_mask_mov_epi32(r, special, _mm512_srli_epi32(b, 16));
  r = _mm512_mask_or_epi32(r, nan, r, _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

SLSTM_AVX512 inline __m512 sigmoid512(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

// tanh(x) = (e^2x - 1) / (e^2x + 1) = e / (e + 2), e = expm1(2x): x itself to a few ulp near
// 0; +-1 beyond |x| = 44 (e is 2^127-ish or -1 there: 2x is clamped), NaN stays NaN.  The
// quotient of a negative x is <= 0 and keeps x's sign bit (or'ed in): the reduction's
// r = x - n ln2 = -0 + 0 is +0, so expm1(-0) would be +0 (and for a denormal x read as -0
// under DAZ), where tanh(-0) is -0, as libm's and TensorFlow's are.
SLSTM_AVX512 inline __m512 tanh512(__m512 x) {
  const __m512 two = _mm512_set1_ps(2.0f);
  const __m512 e = expm1_512(_mm512_mul_ps(two, x));
  const __m512 sign = _mm512_and_ps(x, _mm512_set1_ps(-0.0f));
  return _mm512_or_ps(_mm512_div_ps(e, _mm512_add_ps(e, two)), sign);
}

// ---- AVX2: 8 floats -----------------------------------------------------------------------

// exp512's argument reduction, polynomial and constants, 8 floats at a time.
SLSTM_AVX2 inline __m256 exp_reduce256(__m256 x, __m256& n) {
  // (MAXPS/MINPS return their second operand when either is NaN: NaN stays NaN.)
  x = _mm256_min_ps(_mm256_set1_ps(kExpHi), _mm256_max_ps(_mm256_set1_ps(kExpLo), x));
  n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  return _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
}

SLSTM_AVX2 inline __m256 exp_poly256(__m256 r) {
  __m256 p = _mm256_set1_ps(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpPoly[i]));
  return p;
}

// 2^n for n as a float, built in the exponent field (n is in [-126, 127] after the clamp,
// so it is always a normal float).
SLSTM_AVX2 inline __m256 pow2_256(__m256 n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}

SLSTM_AVX2 inline __m256 exp256(__m256 x) {
  __m256 n;
  const __m256 r = exp_reduce256(x, n);
  const __m256 p = _mm256_fmadd_ps(exp_poly256(r), _mm256_mul_ps(r, r),
                                   _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  return _mm256_mul_ps(p, pow2_256(n));
}

// expm1_512's decomposition.
SLSTM_AVX2 inline __m256 expm1_256(__m256 x) {
  __m256 n;
  const __m256 r = exp_reduce256(x, n);
  const __m256 q = _mm256_fmadd_ps(exp_poly256(r), _mm256_mul_ps(r, r), r);
  const __m256 t = pow2_256(n);
  return _mm256_fmadd_ps(t, q, _mm256_sub_ps(t, _mm256_set1_ps(1.0f)));
}

SLSTM_AVX2 inline __m256 sigmoid256(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// tanh512's formula and sign.
SLSTM_AVX2 inline __m256 tanh256(__m256 x) {
  const __m256 two = _mm256_set1_ps(2.0f);
  const __m256 e = expm1_256(_mm256_mul_ps(two, x));
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  return _mm256_or_ps(_mm256_div_ps(e, _mm256_add_ps(e, two)), sign);
}

// ---- Packed weights: how the kernels read them -------------------------------------------

// 8 (ymm, load8) or 16 (zmm, load16) packed weights: float32, or the 16-bit codes of a BF16 /
// FP16 session converted exactly (the values float32 storage would hold).  Unaligned loads
// for every kernel: on the step kernels' aligned panels they run as fast and fold into the
// FMAs as memory operands alike (the AVX2 step kernels' code differs only in vmovups for
// vmovaps).
#define SLSTM_AVX2_F16C_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline
struct F32 {
  using T = float;
  static constexpr bool kPlainLoad = true;  // (in_register)
  SLSTM_AVX2_F16C_INLINE static __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
  SLSTM_AVX512_INLINE static __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
};
struct Bf16 {
  using T = std::uint16_t;
  static constexpr bool kPlainLoad = false;
  SLSTM_AVX2_F16C_INLINE static __m256 load8(const std::uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  SLSTM_AVX512_INLINE static __m512 load16(const std::uint16_t* p) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};
struct Fp16 {
  using T = std::uint16_t;
  static constexpr bool kPlainLoad = false;
  SLSTM_AVX2_F16C_INLINE static __m256 load8(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  SLSTM_AVX512_INLINE static __m512 load16(const std::uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
};

}  // namespace
}  // namespace slstm::cpu

#endif  // __GNUC__ && __x86_64__
