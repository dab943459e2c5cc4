// Which kernels this CPU runs, and the dispatch to those of the session's Kernel.
#include "step_kernels.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
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
bool cpu_has_f16c() {
  // CPUID.1:ECX.F16C (clang's __builtin_cpu_supports does not know "f16c"), with the OS
  // saving the ymm registers (what "avx" checks).
  __builtin_cpu_init();
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __builtin_cpu_supports("avx") && __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 &&
         (ecx & bit_F16C) != 0;
}

namespace {

// Why this process cannot use AMX's BF16 tiles, or "" (cpu_has_amx_bf16).
const char* find_amx_refusal() {
  __builtin_cpu_init();
  if (!cpu_has_avx512() || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl")) {
    return "this CPU has no AVX-512 (F, DQ, BW, VL)";
  }
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0 || (edx & (1u << 24)) == 0 ||
      (edx & (1u << 22)) == 0) {
    return "this CPU has no AMX-BF16";
  }
  // XCR0 bits 17-18: the OS saves the tile configuration and data (XGETBV needs OSXSAVE).
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || (ecx & bit_OSXSAVE) == 0) {
    return "the OS does not enable AMX's tile state";
  }
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if (((lo >> 17) & 3u) != 3u) return "the OS does not enable AMX's tile state";
#if defined(__linux__) && defined(SYS_arch_prctl)
  // Linux (5.16+) hands the tile data state to the processes that ask for it.
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) != 0) {
    return "the OS did not grant this process AMX's tile state (arch_prctl)";
  }
  return "";
#else
  return "AMX's tile state is only requested on Linux";
#endif
}

}  // namespace

const char* amx_bf16_refusal() {
  static const char* const why = find_amx_refusal();
  return why;
}

bool cpu_has_amx_bf16() { return amx_bf16_refusal()[0] == '\0'; }

void step_block(const StepArgs& a, int nb, Kernel kernel) {
  switch (kernel) {
    case Kernel::kAvx2: step_block_avx2(a, nb); return;
    case Kernel::kAvx512: step_block_avx512(a, nb); return;
    case Kernel::kPortable: break;
  }
  step_block_portable(a, nb);
}

void project_block(const float* w, const float* const* rows, std::int64_t K, float* const* out,
                   int nb, Kernel kernel, Prefetch next, std::int64_t units) {
  switch (kernel) {
    case Kernel::kAvx2: project_block_avx2(w, rows, K, out, nb, next, units); return;
    case Kernel::kAvx512: project_block_avx512(w, rows, K, out, nb, next); return;
    case Kernel::kPortable: break;
  }
  project_block_portable(w, rows, K, out, nb);
}
#else
bool cpu_has_f16c() { return false; }
bool cpu_has_amx_bf16() { return false; }
const char* amx_bf16_refusal() { return "AMX is only used on x86-64 GCC/Clang builds"; }
void step_block(const StepArgs& a, int nb, Kernel) { step_block_portable(a, nb); }
void project_block(const float* w, const float* const* rows, std::int64_t K, float* const* out,
                   int nb, Kernel, Prefetch, std::int64_t) {
  project_block_portable(w, rows, K, out, nb);
}
#endif

}  // namespace slstm::cpu
