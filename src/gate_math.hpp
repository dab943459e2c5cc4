// The LSTM cell's pointwise math, shared by the CPU backends and the CUDA kernels so that
// the CPU tests exercise the very arithmetic the GPU runs. Plain inline functions, usable as
// __host__ __device__ when compiled by nvcc.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define SLSTM_HD __host__ __device__ __forceinline__
#else
#define SLSTM_HD inline
#endif

namespace slstm {

// Gate blocks of the canonical pre-activation z [4H]: i, f, g, o (g is TF's j).
enum Gate : int { kGateI = 0, kGateF = 1, kGateG = 2, kGateO = 3 };

SLSTM_HD float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// One cell update for one unit. zi, zf, zg, zo are complete pre-activations (input part +
// recurrent part + bias) WITHOUT forget_bias, which is added here exactly once.
SLSTM_HD void lstm_cell(float zi, float zf, float zg, float zo, float forget_bias,
                        float c_prev, float* c_out, float* h_out) {
  const float c = c_prev * sigmoidf(zf + forget_bias) + sigmoidf(zi) * tanhf(zg);
  *c_out = c;
  *h_out = tanhf(c) * sigmoidf(zo);
}

}  // namespace slstm
