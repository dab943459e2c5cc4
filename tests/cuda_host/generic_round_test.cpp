// The generic path's 16-bit operand codes (cuda/generic_cells.cuh: bf16_code / fp16_code and
// their values), which its kernels and the emulated module compute in integer arithmetic,
// against the library's rounding (src/precision.hpp: round_bf16 / round_fp16, which the CPU
// backend uses and tests against F16C): the same value for every kind of float.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "../../src/precision.hpp"
#include "generic_cells.cuh"

namespace {

using namespace slstm_cuda::generic;

float from_bits(std::uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// Every kind of float: zeros, subnormals, the fp16 subnormal range and its edges, ties,
// values near 65504 / 65520, the largest floats, infinities, NaNs, and random bit patterns.
std::vector<float> samples() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f,
                          65536.0f, std::ldexp(1.0f, -24), std::ldexp(1.0f, -25),
                          std::ldexp(1.5f, -25), std::ldexp(1.0f, -14), std::ldexp(1.0f, -15),
                          std::ldexp(3.0f, -26), std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::min(),
                          std::numeric_limits<float>::denorm_min(),
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(), from_bits(0x7f800001u),
                          from_bits(0xff800001u), 1.0f + std::ldexp(1.0f, -11),
                          1.0f + std::ldexp(3.0f, -11), 1.0f + std::ldexp(1.0f, -8),
                          1.0f + std::ldexp(3.0f, -8)};
  for (int e = -30; e <= 17; ++e) {  // every binade fp16 touches, with ties in each
    for (std::uint32_t m : {0u, 1u, 0x1000u, 0x1001u, 0x3000u, 0x7fffffu, 0x8000u, 0x18000u}) {
      const float x = std::ldexp(1.0f + static_cast<float>(m) / 8388608.0f, e);
      v.push_back(x);
      v.push_back(-x);
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) v.push_back(from_bits(static_cast<std::uint32_t>(rng())));
  std::uniform_real_distribution<float> unit(-70000.0f, 70000.0f);
  for (int i = 0; i < 200000; ++i) v.push_back(unit(rng));
  return v;
}

bool same(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  std::uint32_t x, y;
  std::memcpy(&x, &a, sizeof x);
  std::memcpy(&y, &b, sizeof y);
  return x == y;  // signed zeros too
}

}  // namespace

TEST_CASE("the generic path's BF16 codes round as the library's BF16 rounding does",
          "[generic][precision]") {
  std::size_t bad = 0;
  for (float x : samples()) {
    if (!same(bf16_value(bf16_code(x)), slstm::round_bf16(x))) {
      if (++bad <= 5) FAIL_CHECK("x = " << x);
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("the generic path's FP16 codes round as the library's FP16 rounding does",
          "[generic][precision]") {
  std::size_t bad = 0;
  for (float x : samples()) {
    if (!same(fp16_value(fp16_code(x)), slstm::round_fp16(x))) {
      if (++bad <= 5) FAIL_CHECK("x = " << x << " code " << fp16_code(x));
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("every FP16 and BF16 code decodes to a value that encodes back to it",
          "[generic][precision]") {
  for (std::uint32_t c = 0; c < 0x10000u; ++c) {
    const auto code = static_cast<std::uint16_t>(c);
    const float h = fp16_value(code), b = bf16_value(code);
    if (!std::isnan(h)) CHECK(fp16_code(h) == code);
    if (!std::isnan(b)) CHECK(bf16_code(b) == code);
  }
}
