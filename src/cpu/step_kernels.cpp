// Which kernels this CPU runs, and the dispatch to those of the session's Kernel.
#include "step_kernels.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#endif

namespace slstm::cpu {

const char* kernel_name(Kernel k) {
  switch (k) {
    case Kernel::kPortable: return "portable";
    case Kernel::kAvx2: return "avx2";
    case Kernel::kAvx512: return "avx512";
  }
  return "portable";
}

#if defined(__GNUC__) && defined(__x86_64__)
bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("fma");
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool cpu_has_f16c() {
  // CPUID.1:ECX.F16C (clang's __builtin_cpu_supports does not know "f16c"), with the OS
  // saving the ymm registers (what "avx" checks).
  __builtin_cpu_init();
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __builtin_cpu_supports("avx") && __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 &&
         (ecx & bit_F16C) != 0;
}

void step_block(const StepArgs& a, int nb, Kernel kernel) {
  switch (kernel) {
    case Kernel::kAvx2: step_block_avx2(a, nb); return;
    case Kernel::kAvx512: step_block_avx512(a, nb); return;
    case Kernel::kPortable: break;
  }
  step_block_portable(a, nb);
}

void project_block(const float* w, const float* const* rows, std::int64_t K, float* const* out,
                   int nb, Kernel kernel, Prefetch next) {
  switch (kernel) {
    case Kernel::kAvx2: project_block_avx2(w, rows, K, out, nb, next); return;
    case Kernel::kAvx512: project_block_avx512(w, rows, K, out, nb, next); return;
    case Kernel::kPortable: break;
  }
  project_block_portable(w, rows, K, out, nb);
}
#else
bool cpu_has_avx512() { return false; }
bool cpu_has_avx2() { return false; }
bool cpu_has_f16c() { return false; }
void step_block(const StepArgs& a, int nb, Kernel) { step_block_portable(a, nb); }
void project_block(const float* w, const float* const* rows, std::int64_t K, float* const* out,
                   int nb, Kernel, Prefetch) {
  project_block_portable(w, rows, K, out, nb);
}
#endif

}  // namespace slstm::cpu
