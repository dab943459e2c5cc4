#include <string>

#include "backend.hpp"
#include "cuda_module.hpp"

namespace slstm {

void require_backend(slstm_backend kind) {
  switch (kind) {
    case SLSTM_BACKEND_CPU: return;
    case SLSTM_BACKEND_CUDA: require_cuda_backend(); return;
  }
  fail(SLSTM_ERR_INVALID_ARGUMENT, "backend: unknown value " + std::to_string(kind));
}

std::unique_ptr<Backend> make_backend(slstm_backend kind, ModelPtr model,
                                      const SessionConfig& config) {
  require_backend(kind);
  if (kind == SLSTM_BACKEND_CUDA) return make_cuda_backend(std::move(model), config);
  return make_cpu_reference_backend(std::move(model), config);
}

}  // namespace slstm
