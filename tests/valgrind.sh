#!/usr/bin/env sh
# valgrind memcheck over the C example and a short run of the test suite (both CPU paths, and
# CUDA's generic path on the emulated module).
# Any memcheck error or definitely/indirectly lost block fails the script.
#   Usage: sh tests/valgrind.sh BUILD_DIR        (a normal, non-sanitizer build)
# Under valgrind the CPU reports no AVX-512 (valgrind does not emulate it), so the fast path
# runs its portable kernel and OpenBLAS its AVX2/SSE kernels: memcheck sees the same buffers
# and the same control flow around them, with the vector kernel swapped.
# The [memory] tests are left out: they make allocations fail on purpose, and valgrind's
# operator new aborts instead of throwing std::bad_alloc (the sanitizer build runs them).
set -eu
build=${1:?usage: tests/valgrind.sh BUILD_DIR}
command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)" >&2; exit 1; }

vg() {
  echo "== valgrind: $*"
  valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    --track-origins=yes --num-callers=30 --quiet \
    --suppressions="$(dirname "$0")/valgrind.supp" "$@"
}

vg "$build/examples/seed_demo" 5 >/dev/null
vg "$build/tests/c_api_smoke" >/dev/null
for path in reference fast; do
  SLSTM_TEST_CPU_PATH=$path OPENBLAS_NUM_THREADS=1 \
    vg "$build/tests/slstm_tests" "[golden],[reliability]~[memory],[errors]~[memory]" \
      --reporter compact
done
# CUDA's generic path on the emulated module (tests/cuda_emu; built where the CUDA toolkit is,
# or with SLSTM_CUDA_EMULATED_TESTS):
# the core's module interface, the engine and the per-element code under memcheck.
if [ -f "$build/tests/libslstm_cuda_emu.so" ]; then
  SLSTM_CUDA_MODULE="$build/tests/libslstm_cuda_emu.so" OPENBLAS_NUM_THREADS=1 \
    vg "$build/tests/slstm_tests" "[cuda-generic],[cuda-emu]" --reporter compact
fi
echo "== valgrind: clean"
