#include <string>

#include "backend.hpp"
#include "cuda_module.hpp"
#if defined(SLSTM_HAVE_CPU_FAST)
#include "cpu/fast_backend.hpp"
#endif

namespace slstm {

void require_backend(slstm_backend kind) {
  switch (kind) {
    case SLSTM_BACKEND_CPU: return;
    case SLSTM_BACKEND_CUDA: require_cuda_backend(); return;
  }
  fail(SLSTM_ERR_INVALID_ARGUMENT, "backend: unknown value " + std::to_string(kind));
}

void require_cpu_fast_path() {
#if !defined(SLSTM_HAVE_CPU_FAST)
  fail(SLSTM_ERR_BACKEND_UNAVAILABLE,
       "options->cpu_path SLSTM_CPU_PATH_FAST: this build of libstacklstm has no CPU fast path");
#endif
}

std::unique_ptr<Backend> make_backend(slstm_backend kind, ModelPtr model,
                                      const SessionConfig& config) {
  require_backend(kind);
  if (kind == SLSTM_BACKEND_CUDA) return make_cuda_backend(std::move(model), config);
  switch (config.cpu_path) {
#if defined(SLSTM_HAVE_CPU_FAST)
    case SLSTM_CPU_PATH_AUTO:
    case SLSTM_CPU_PATH_FAST: return make_cpu_fast_backend(std::move(model), config);
    case SLSTM_CPU_PATH_REFERENCE: return make_cpu_reference_backend(std::move(model), config);
#else
    case SLSTM_CPU_PATH_AUTO:
    case SLSTM_CPU_PATH_REFERENCE: return make_cpu_reference_backend(std::move(model), config);
    case SLSTM_CPU_PATH_FAST: require_cpu_fast_path(); break;
#endif
  }
  fail(SLSTM_ERR_INVALID_ARGUMENT, "options->cpu_path: unknown value " +
                                       std::to_string(config.cpu_path));
}

}  // namespace slstm
