// This build has no CUDA backend: selecting it fails cleanly with the reason.
#include "cuda_module.hpp"

namespace slstm {

void require_cuda_backend() {
  fail(SLSTM_ERR_BACKEND_UNAVAILABLE,
       "backend SLSTM_BACKEND_CUDA: this build of libstacklstm has no CUDA backend "
       "(it was configured without a CUDA toolkit or with SLSTM_ENABLE_CUDA=OFF)");
}

std::unique_ptr<Backend> make_cuda_backend(ModelPtr, const SessionConfig&) {
  require_cuda_backend();
  return nullptr;
}

}  // namespace slstm
