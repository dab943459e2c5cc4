// The step kernels' own source (cuda/kernels.cu) on the simulator (sim.hpp): sim.hpp first,
// so that the CUDA spellings (__global__, threadIdx, __syncthreads, SLSTM_LAUNCH...) are its.
#include "sim.hpp"
// (after sim.hpp)
#include "kernels.cu"
