// The CPU fast path's rounding of a BF16/FP16 session's product operands (precision.hpp), n
// floats at a time: AVX2 / F16C where the CPU has them (the hardware conversions, round to
// nearest even), else precision.hpp's scalar functions.  Bit for bit the same either way
// (tests/test_precision.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../precision.hpp"

namespace slstm::cpu {

// dst[i] = round_to(p, src[i]) for i < n (dst may be src; FP32 / TF32: a copy).
void round_floats(Precision p, const float* src, float* dst, std::size_t n);

// The 16-bit code (bfloat16 for BF16, binary16 for FP16) of v, a value already rounded to
// p (round_to), so that the code holds it exactly: what a kernel storing weights in 16 bits
// converts back on load.  FP16 needs F16C (cpu_has_f16c(); else 0).
std::uint16_t code16(Precision p, float v);

// dst[i] = code16(p, round_to(p, src[i])) for i < n: the 16-bit codes of n floats rounded
// to p (BF16 or FP16).
void round_to_codes(Precision p, const float* src, std::uint16_t* dst, std::size_t n);

}  // namespace slstm::cpu
