// Tensor bytes of the file's dtypes (F32, F64, F16, BF16) converted to float32
// (src/model_file/reader.hpp, convert).
#include <cmath>
#include <cstring>
#include <limits>

#include "reader.hpp"

namespace slstm {
namespace model_file {
namespace {

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<std::uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// A double rounded to float as the FPU does (round to nearest, ties to even), without the
// undefined behaviour of converting an out-of-range double: finite values below
// FLT_MAX + 2^103 (half an ulp at FLT_MAX) round to at most FLT_MAX; from there on the
// result is infinite (returned as NaN: rejected by the caller like every non-finite value).
float double_to_float(double v) {
  constexpr double kFltMax = static_cast<double>(std::numeric_limits<float>::max());
  constexpr double kLimit = kFltMax + 0x1p103;
  if (!(std::fabs(v) < kLimit)) return std::numeric_limits<float>::quiet_NaN();
  if (v > kFltMax) return std::numeric_limits<float>::max();
  if (v < -kFltMax) return -std::numeric_limits<float>::max();
  return static_cast<float>(v);
}

}  // namespace

// Converts n elements of dtype d at src into dst; returns the index of the first element
// that is not a finite float32, or n.
std::size_t convert(const unsigned char* src, WireDType d, std::size_t n, float* dst) {
  switch (d) {
    case WireDType::F32:
      std::memcpy(dst, src, n * 4);
      break;
    case WireDType::F64:
      for (std::size_t k = 0; k < n; ++k) {
        double v;
        std::memcpy(&v, src + 8 * k, 8);
        dst[k] = double_to_float(v);
      }
      break;
    case WireDType::F16:
      for (std::size_t k = 0; k < n; ++k) {
        std::uint16_t u;
        std::memcpy(&u, src + 2 * k, 2);
        dst[k] = half_to_float(u);
      }
      break;
    case WireDType::BF16:
      for (std::size_t k = 0; k < n; ++k) {
        std::uint16_t u;
        std::memcpy(&u, src + 2 * k, 2);
        const std::uint32_t bits = static_cast<std::uint32_t>(u) << 16;
        std::memcpy(dst + k, &bits, 4);
      }
      break;
  }
  for (std::size_t k = 0; k < n; ++k) {
    if (!std::isfinite(dst[k])) return k;
  }
  return n;
}

}  // namespace model_file
}  // namespace slstm
