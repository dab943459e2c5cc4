// The CPU fast path's rounding of a BF16/FP16 session's product operands (precision.hpp), n
// floats at a time: AVX2 / F16C where the CPU has them (the hardware conversions, round to
// nearest even), else precision.hpp's scalar functions.  Bit for bit the same either way
// (tests/test_precision.cpp).
#pragma once

#include <cstddef>

#include "../precision.hpp"

namespace slstm::cpu {

// dst[i] = round_to(p, src[i]) for i < n (dst may be src; FP32 / TF32: a copy).
void round_floats(Precision p, const float* src, float* dst, std::size_t n);

}  // namespace slstm::cpu
