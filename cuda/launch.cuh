// The two CUDA-only spellings of the kernels' source: their dynamic shared memory and a launch
// (SLSTM_LAUNCH(grid, block, smem, stream, kernel)(arguments...)). Under nvcc they are CUDA's
// own tokens; the CPU suite's simulator (tests/cuda_sim/sim.hpp, which defines
// SLSTM_CUDA_SIM) defines them too, and compiles the kernels' own source as C++.
#pragma once

#ifndef SLSTM_CUDA_SIM
#define SLSTM_DYNAMIC_SMEM(T, name) extern __shared__ T name[]
#define SLSTM_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#endif
