// A session's precision (slstm_precision, docs/precision.md) and the rounding it applies to
// the operands of the matrix products: weights once, activations where they enter a product.
// Round to nearest even, as the hardware's conversions do (F16C vcvtps2ph with imm 0,
// cuda's __float2bfloat16_rn / __float2half_rn); NaN stays NaN, infinities stay.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

namespace slstm {

enum class Precision { kFp32, kTf32, kBf16, kFp16 };

inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kTf32: return "tf32";
    case Precision::kBf16: return "bf16";
    case Precision::kFp16: return "fp16";
  }
  return "?";
}

// Whether the products' operands are rounded (BF16, FP16).
inline bool rounds_operands(Precision p) { return p == Precision::kBf16 || p == Precision::kFp16; }

// x rounded to the nearest bfloat16 (8 significant bits, float32's exponent range).
inline float round_bf16(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  if ((b & 0x7f800000u) == 0x7f800000u) return x;  // inf, NaN
  b += 0x7fffu + ((b >> 16) & 1u);
  b &= 0xffff0000u;
  float r;
  std::memcpy(&r, &b, sizeof r);
  return r;
}

// The largest finite binary16 and the magnitude from which round-to-nearest gives inf.
constexpr float kFp16Max = 65504.0f;
constexpr float kFp16Overflow = 65520.0f;

// x rounded to the nearest IEEE binary16 (11 significant bits, subnormals from 2^-24; from
// 65520 on +-inf).
inline float round_fp16(float x) {
  if (!std::isfinite(x)) return x;
  const float a = std::fabs(x);
  if (a >= kFp16Overflow) return std::copysign(std::numeric_limits<float>::infinity(), x);
  if (a == 0.0f) return x;
  int e = 0;
  std::frexp(a, &e);                              // a = m * 2^e, m in [0.5, 1)
  const int quantum = e - 11 < -24 ? -24 : e - 11;  // 2^quantum: the spacing at a
  const float r = std::ldexp(std::nearbyint(std::ldexp(a, -quantum)), quantum);
  return std::copysign(r, x);
}

inline float round_to(Precision p, float x) {
  switch (p) {
    case Precision::kBf16: return round_bf16(x);
    case Precision::kFp16: return round_fp16(x);
    default: return x;
  }
}

// n floats of src rounded into dst (dst may be src).
inline void round_into(Precision p, const float* src, float* dst, std::size_t n) {
  switch (p) {
    case Precision::kBf16:
      for (std::size_t i = 0; i < n; ++i) dst[i] = round_bf16(src[i]);
      return;
    case Precision::kFp16:
      for (std::size_t i = 0; i < n; ++i) dst[i] = round_fp16(src[i]);
      return;
    default:
      if (dst != src) std::memcpy(dst, src, n * sizeof(float));
      return;
  }
}

}  // namespace slstm
