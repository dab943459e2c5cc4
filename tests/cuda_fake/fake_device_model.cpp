// What the fake modules (tests/cuda_fake) answer for the device's kernels without running
// one: the occupancy of the persistent kernel (the formula of an H100, as tests/cuda_host
// models it), which clusters launch and a kernel image that always fits. Shared by the
// module with host versions of the kernels (fake_kernels.cpp) and the one with the kernels'
// own source on the simulator (tests/cuda_sim).
#include <cstddef>

#include "fake_device.hpp"
#include "kernels.cuh"

namespace slstm_cuda {

int persistent_ctas_per_sm(int batch, std::size_t smem) {
  constexpr std::size_t kStaticSmem = 16, kReservedPerCta = 1024;
  if (batch < 1 || rec_bmax(batch) == 0) return 0;
  if (smem + kStaticSmem > cuda_fake::kSmemPerCtaOptin) return 0;
  const std::size_t fit = cuda_fake::kSmemPerSm / (smem + kStaticSmem + kReservedPerCta);
  return static_cast<int>(fit < 8 ? fit : 8);
}

// One cluster of up to 16 CTAs (Hopper's non-portable limit), each within the opt-in limit.
bool cluster_launchable(int batch, int ctas, std::size_t smem) {
  return batch >= 1 && rec_bmax(batch) > 0 && ctas >= 1 && ctas <= kClusterMaxCtas &&
         smem <= cuda_fake::kSmemPerCtaOptin;  // (the cluster kernel has no static shared memory)
}

cudaError_t check_kernel_image() { return cudaSuccess; }

}  // namespace slstm_cuda
