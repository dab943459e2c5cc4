// Whether this CPU runs the AVX-512 or the AVX2 kernels: the fast path's choice of kernel
// (step_kernels.cpp, fast_plan.cpp) and the tests of those kernels ask the same question.
#pragma once

namespace slstm::cpu {

#if defined(__GNUC__) && defined(__x86_64__)
// AVX-512 F and DQ with FMA: what SLSTM_AVX512 (simd_math.hpp) compiles for.
inline bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("fma");
}

// AVX2 with FMA: what SLSTM_AVX2 compiles for.
inline bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
inline bool cpu_has_avx512() { return false; }
inline bool cpu_has_avx2() { return false; }
#endif

}  // namespace slstm::cpu
