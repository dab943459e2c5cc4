// The generic path's device code (cuda/generic_device.cu: its pointwise kernels, its cuBLAS
// calls, its graph capture) on the simulator (sim.hpp), for the fake CUDA runtime's module
// (tests/cuda_fake, slstm_cuda_fake_sim): cuBLAS and the runtime are the fake ones there.
#include "sim.hpp"
// (after sim.hpp)
#include "generic_device.cu"
