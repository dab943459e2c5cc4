// The generic path's pointwise work (docs/cuda-generic.md): the argument of each operation
// and the function that computes one element of it.  Plain C++ that nvcc compiles as
// __host__ __device__: the CUDA kernels (generic_device.cu) call these functions once per
// thread, the CPU suite's device (tests/cuda_emu) once per loop iteration, so the CPU suite
// runs the very per-element code the GPU runs.  Only the GEMMs differ (cuBLAS there).
//
// Every operation works on one step k of one direction of one layer, for all B rows of the
// call at once.  A row whose sequence has ended (k >= its length) is left alone: its state
// keeps its last value and nothing is written for it.  A backwards direction's step k
// reads and writes time len_b - 1 - k of row b (each row's valid part reversed).
#pragma once

#include <cstdint>
#include <cstring>

#include "gate_math.hpp"  // SLSTM_HD, sigmoidf

namespace slstm_cuda::generic {

// Which time step of which row a step touches, and where a (t, b) row lives in a sequence
// buffer of the call's layout.
struct Rows {
  std::int64_t batch = 0;  // B
  std::int64_t time = 0;   // T of the call
  std::int32_t time_major = 1;
  std::int32_t backwards = 0;
  std::int64_t step = 0;   // k
  const std::int32_t* lengths = nullptr;  // [B], every row's length (T when none are given)

  SLSTM_HD bool active(std::int64_t b) const { return step < lengths[b]; }
  SLSTM_HD std::int64_t t(std::int64_t b) const {
    return backwards ? lengths[b] - 1 - step : step;
  }
  SLSTM_HD std::int64_t row(std::int64_t t, std::int64_t b) const {
    return time_major ? t * batch + b : b * time + t;
  }
};

SLSTM_HD float clip_to(float v, float bound) {
  return bound > 0.0f ? (v < -bound ? -bound : (v > bound ? bound : v)) : v;
}

// Where a step's output goes: row (t, b) of y at y + row * ld + col.
struct Out {
  float* y = nullptr;
  std::int64_t ld = 0;   // the layer's output width W
  std::int64_t col = 0;  // the direction's first column (0, or R for a bidirectional reverse)
};

// LSTM (TF LSTMCell): B * H elements.  Pre-activation of gate g, unit u, row b:
// gx[row(t, b)][gH + u] + z[b][gH + u] + bias[gH + u] (+ peephole).  Updates c; the cell
// output tanh(c) * o goes to h and the output (no projection) or to m (projection: then
// lstm_project finishes the step).
struct LstmStep {
  Rows rows;
  std::int64_t hidden = 0;       // H
  std::int64_t out_width = 0;    // R: width of h (P with a projection, else H)
  const float* gx = nullptr;     // [T*B rows of the call's layout][4H] input projections
  const float* z = nullptr;      // [B][4H] recurrent sums h . W_h^T
  const float* bias = nullptr;   // [4H]
  const float* peep = nullptr;   // [3H] w_i, w_f, w_o, or null
  float cell_clip = 0.0f;        // 0 = none
  float* c = nullptr;            // [B][H] state
  float* h = nullptr;            // [B][R] state (written without a projection)
  float* m = nullptr;            // [B][H] cell output before the projection (with one)
  Out out;
};

SLSTM_HD void lstm_step_element(const LstmStep& a, std::int64_t i) {
  const std::int64_t H = a.hidden;
  const std::int64_t b = i / H, u = i % H;
  if (!a.rows.active(b)) {
    // The projection's product reads every row of m: a row past its length gets zeros, not
    // memory never written (its projected values are never used).
    if (a.m != nullptr) a.m[b * H + u] = 0.0f;
    return;
  }
  const float* gx = a.gx + a.rows.row(a.rows.t(b), b) * 4 * H;
  const float* z = a.z + b * 4 * H;
  float pre[4];
  for (int g = 0; g < 4; ++g) pre[g] = gx[g * H + u] + z[g * H + u] + a.bias[g * H + u];
  const float c_prev = a.c[b * H + u];
  if (a.peep != nullptr) {
    pre[0] += a.peep[u] * c_prev;
    pre[1] += a.peep[H + u] * c_prev;
  }
  float c = c_prev * slstm::sigmoidf(pre[1]) + slstm::sigmoidf(pre[0]) * tanhf(pre[2]);
  c = clip_to(c, a.cell_clip);
  if (a.peep != nullptr) pre[3] += a.peep[2 * H + u] * c;
  const float out = tanhf(c) * slstm::sigmoidf(pre[3]);
  a.c[b * H + u] = c;
  if (a.m != nullptr) {
    a.m[b * H + u] = out;
    return;
  }
  a.h[b * a.out_width + u] = out;
  a.out.y[a.rows.row(a.rows.t(b), b) * a.out.ld + a.out.col + u] = out;
}

// LSTM with a projection, after p = m . W_proj^T: B * P elements, h = clip(p).
struct LstmProject {
  Rows rows;
  std::int64_t proj = 0;       // P
  const float* p = nullptr;    // [B][P]
  float proj_clip = 0.0f;      // 0 = none
  float* h = nullptr;          // [B][P] state
  Out out;
};

SLSTM_HD void lstm_project_element(const LstmProject& a, std::int64_t i) {
  const std::int64_t b = i / a.proj, u = i % a.proj;
  if (!a.rows.active(b)) return;
  const float v = clip_to(a.p[b * a.proj + u], a.proj_clip);
  a.h[b * a.proj + u] = v;
  a.out.y[a.rows.row(a.rows.t(b), b) * a.out.ld + a.out.col + u] = v;
}

// GRU: B * H elements.  r = s(gx_r + z_r + b_r), u = s(gx_z + z_z + b_z);
// reset before (TF GRUCell, ONNX linear_before_reset=0): z_n = (r o h) . W_hn^T, computed
// between gru_reset and gru_step, and n = tanh(gx_n + z_n + b_n);
// reset after (Keras reset_after, PyTorch, ONNX linear_before_reset=1): z_n = h . W_hn^T
// and n = tanh(gx_n + b_n + r * (z_n + b_hn)).  h = (1 - u) * n + u * h.
struct GruStep {
  Rows rows;
  std::int64_t hidden = 0;         // H
  const float* gx = nullptr;       // [T*B rows][3H]
  const float* z = nullptr;        // [B][3H] recurrent sums
  const float* bias = nullptr;     // [3H]
  const float* bias_hn = nullptr;  // [H] reset after; null before
  float* rh = nullptr;             // [B][H] r o h (reset before: gru_reset writes it)
  float* h = nullptr;              // [B][H] state
  Out out;
};

SLSTM_HD float gru_gate(const GruStep& a, const float* gx, std::int64_t b, std::int64_t r) {
  return slstm::sigmoidf(gx[r] + a.z[b * 3 * a.hidden + r] + a.bias[r]);
}

// Reset before: rh = r o h for the n block's recurrent product (0 for ended rows, whose
// sums are not read).
SLSTM_HD void gru_reset_element(const GruStep& a, std::int64_t i) {
  const std::int64_t H = a.hidden;
  const std::int64_t b = i / H, u = i % H;
  if (!a.rows.active(b)) {
    a.rh[b * H + u] = 0.0f;
    return;
  }
  const float* gx = a.gx + a.rows.row(a.rows.t(b), b) * 3 * H;
  a.rh[b * H + u] = gru_gate(a, gx, b, u) * a.h[b * H + u];
}

SLSTM_HD void gru_step_element(const GruStep& a, std::int64_t i) {
  const std::int64_t H = a.hidden;
  const std::int64_t b = i / H, u = i % H;
  if (!a.rows.active(b)) return;
  const std::int64_t t = a.rows.t(b);
  const float* gx = a.gx + a.rows.row(t, b) * 3 * H;
  const float zn = a.z[b * 3 * H + 2 * H + u];
  const float upd = gru_gate(a, gx, b, H + u);
  float n;
  if (a.bias_hn != nullptr) {
    const float r = gru_gate(a, gx, b, u);
    n = tanhf(gx[2 * H + u] + a.bias[2 * H + u] + r * (zn + a.bias_hn[u]));
  } else {
    n = tanhf(gx[2 * H + u] + zn + a.bias[2 * H + u]);
  }
  const float h = (1.0f - upd) * n + upd * a.h[b * H + u];
  a.h[b * H + u] = h;
  a.out.y[a.rows.row(t, b) * a.out.ld + a.out.col + u] = h;
}

// ---- BF16 / FP16 sessions (docs/precision.md): the products' operands as 16-bit codes ----
// Round to nearest even, NaN kept a (quiet) NaN, infinities kept; FP16 overflows to inf from
// 65520 on and has subnormals from 2^-24: slstm::round_bf16 / round_fp16 (src/precision.hpp)
// bit for bit (tests/cuda_host/generic_round_test.cpp), in integer arithmetic the device and
// the host share.
SLSTM_HD std::uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  std::uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
#endif
}

SLSTM_HD float bits_float(std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
#endif
}

SLSTM_HD std::uint16_t bf16_code(float x) {
  const std::uint32_t b = float_bits(x);
  if ((b & 0x7f800000u) == 0x7f800000u) {  // inf stays inf, NaN stays a quiet NaN
    return static_cast<std::uint16_t>((b >> 16) | ((b & 0x007fffffu) != 0 ? 0x0040u : 0u));
  }
  return static_cast<std::uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

SLSTM_HD float bf16_value(std::uint16_t c) { return bits_float(static_cast<std::uint32_t>(c) << 16); }

SLSTM_HD std::uint16_t fp16_code(float x) {
  const std::uint32_t b = float_bits(x);
  const std::uint16_t sign = static_cast<std::uint16_t>((b >> 16) & 0x8000u);
  const std::uint32_t e = (b >> 23) & 0xffu;
  std::uint32_t m = b & 0x007fffffu;
  if (e == 0xffu) return static_cast<std::uint16_t>(sign | 0x7c00u | (m != 0 ? 0x0200u : 0u));
  const int exp = static_cast<int>(e) - 127;  // x = 1.m * 2^exp (e > 0)
  if (exp > 15) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65536: inf
  if (exp >= -14) {  // normal: 10 of the 23 fraction bits, to nearest even
    const std::uint32_t rest = m & 0x1fffu, half = 0x1000u;
    std::uint32_t code = (static_cast<std::uint32_t>(exp + 15) << 10) | (m >> 13);
    if (rest > half || (rest == half && (code & 1u) != 0)) ++code;  // may carry into inf
    return static_cast<std::uint16_t>(sign | code);
  }
  if (exp < -25) return sign;  // below half the smallest subnormal (2^-25): zero
  // Subnormal: the value / 2^-24 = (1.m) * 2^(exp + 24), to nearest even.
  m |= 0x00800000u;                            // the implicit bit: x = m * 2^(exp - 23)
  const int shift = -1 - exp;                  // 14 .. 24: m >> (shift) gives units of 2^-24
  const std::uint32_t q = m >> shift, rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
  const std::uint32_t code = q + ((rest > half || (rest == half && (q & 1u) != 0)) ? 1u : 0u);
  return static_cast<std::uint16_t>(sign | code);
}

SLSTM_HD float fp16_value(std::uint16_t c) {
  const std::uint32_t sign = static_cast<std::uint32_t>(c & 0x8000u) << 16;
  const std::uint32_t e = (c >> 10) & 0x1fu, m = c & 0x3ffu;
  if (e == 0x1fu) return bits_float(sign | 0x7f800000u | (m << 13));
  if (e != 0) return bits_float(sign | ((e + 112u) << 23) | (m << 13));
  const float v = static_cast<float>(m) * (1.0f / 16777216.0f);  // m * 2^-24, exact
  return sign != 0 ? -v : v;
}

// The products' operand formats of a session (slstm_cuda_session_desc.precision).
enum : std::int32_t { kOperandsF32 = 0, kOperandsBf16 = 1, kOperandsFp16 = 2 };

SLSTM_HD std::uint16_t operand_code(std::int32_t format, float x) {
  return format == kOperandsFp16 ? fp16_code(x) : bf16_code(x);
}
SLSTM_HD float operand_value(std::int32_t format, std::uint16_t c) {
  return format == kOperandsFp16 ? fp16_value(c) : bf16_value(c);
}

// n floats as 16-bit codes (an operand of the next product: x, h, m or r o h).
struct Round16 {
  const float* src = nullptr;
  std::uint16_t* dst = nullptr;
  std::int64_t n = 0;
  std::int32_t format = kOperandsBf16;
};

SLSTM_HD void round16_element(const Round16& a, std::int64_t i) {
  a.dst[i] = operand_code(a.format, a.src[i]);
}

// n 16-bit codes as floats (a call's 16-bit input, slstm_forward_args.data_type).
struct Widen16 {
  const std::uint16_t* src = nullptr;
  float* dst = nullptr;
  std::int64_t n = 0;
  std::int32_t format = kOperandsBf16;
};

SLSTM_HD void widen16_element(const Widen16& a, std::int64_t i) {
  a.dst[i] = operand_value(a.format, a.src[i]);
}

// After every direction of a layer: T * B * W elements of its output y.  Rows past their
// sequence's end become 0 (TF's dynamic_rnn); with a residual connection the others add the
// layer's input (same width).
struct LayerFinish {
  Rows rows;                   // (step, backwards unused)
  std::int64_t width = 0;      // W
  float* y = nullptr;          // [T*B rows][W]
  const float* x = nullptr;    // [T*B rows][W] the layer input, residual only; else null
};

SLSTM_HD void layer_finish_element(const LayerFinish& a, std::int64_t i) {
  const std::int64_t q = i / a.width;
  const std::int64_t B = a.rows.batch, T = a.rows.time;
  const std::int64_t t = a.rows.time_major ? q / B : q % T;
  const std::int64_t b = a.rows.time_major ? q % B : q / T;
  if (t >= a.rows.lengths[b]) {
    a.y[i] = 0.0f;
  } else if (a.x != nullptr) {
    a.y[i] += a.x[i];
  }
}

}  // namespace slstm_cuda::generic
