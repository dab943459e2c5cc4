#!/usr/bin/env bash
# Reliability checks (issue 8), run by .ci/run after the normal suite, from a fresh clone on
# a fresh Debian machine without a GPU.  Installs its own packages, then:
#   1. ASan + UBSan build (Clang, -Werror) of the library, examples and the whole CPU test
#      suite (ctest, every CPU path: reference and the fast path on each of its kernels; the
#      CUDA module's host code on the fake CUDA runtime);
#   2. ThreadSanitizer build, the [concurrency], [cpu-fast] and [precision] tests on every CPU path;
#   3. valgrind memcheck of the C example and a short test run (tests/valgrind.sh);
#   4. the libFuzzer targets, FUZZ_SECONDS (default 60) each (fuzz/run.sh).
# Prints how long each stage took.  Usage: bash .ci/reliability.sh [normal-build-dir]
# (the normal build valgrind checks; default build-ci, the one .ci/run makes; built if absent)
set -euo pipefail
cd "$(dirname "$0")/.."
normal_build=${1:-build-ci}
jobs=$(nproc)
t_start=$(date +%s)
declare -a timings=()
stage() { echo; echo "==== reliability: $1"; t_stage=$(date +%s); }
done_stage() { timings+=("$(printf '%-34s %5ss' "$1" $(( $(date +%s) - t_stage )))"); }

stage "packages"
source .ci/ensure-packages.sh
ensure_packages cmake g++ make catch2 pkg-config binutils libopenblas-dev nlohmann-json3-dev \
  valgrind clang
# libFuzzer and the sanitizer runtimes of the installed clang (Debian: libclang-rt-N-dev).
clang_major=$(clang --version | sed -n 's/.*clang version \([0-9]*\)\..*/\1/p' | head -n1)
rt="libclang-rt-${clang_major}-dev"
ensure_packages "$rt"
done_stage "packages"

# ---- 1. ASan + UBSan: the whole CPU suite ---------------------------------------------------
stage "asan+ubsan build"
# SLSTM_CUDA_EMULATED_TESTS: the CUDA module loader without the (uninstrumentable) CUDA
# module, so that the suite's "cuda-emu:" cases run the generic path's engine and per-element
# code on the emulated module (tests/cuda_emu) under ASan + UBSan too. SLSTM_CUDA_FAKE_TESTS:
# the CUDA module's real host code on the fake runtime (tests/cuda_fake: "cuda-fake:" tests,
# and the generic path's device code on the simulator) under ASan + UBSan as well.
# Built with Clang (and warnings as errors): the normal build is GCC's, so this stage is also
# the suite's Clang build (Clang's UBSan checks more than GCC's, e.g. -fsanitize=function).
CC=clang CXX=clang++ \
cmake -S . -B build-asan -DSLSTM_SANITIZE=address,undefined -DSLSTM_ENABLE_CUDA=OFF \
  -DSLSTM_WERROR=ON -DSLSTM_CUDA_EMULATED_TESTS=ON -DSLSTM_CUDA_FAKE_TESTS=ON \
  -DSLSTM_BUILD_BENCH=OFF -DSLSTM_BUILD_TESTS=ON -DSLSTM_BUILD_EXAMPLES=ON >/dev/null
cmake --build build-asan -j"$jobs"
done_stage "asan+ubsan build"

stage "asan+ubsan suite"
# allocator_may_return_null: the suite asks for absurd allocations to test
# SLSTM_ERR_OUT_OF_MEMORY (with cmake/sanitizer_operator_new.cpp, see there).
# The install check is left out: it builds an uninstrumented consumer against the
# instrumented library, which ASan refuses to load ("runtime does not come first").
ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure --no-tests=error -j"$jobs" \
    -E '^install_tree_is_usable'
done_stage "asan+ubsan suite"

# ---- 2. TSan: the concurrency tests and the fast path's worker splits -------------------
stage "tsan build"
cmake -S . -B build-tsan -DSLSTM_SANITIZE=thread -DSLSTM_ENABLE_CUDA=OFF -DSLSTM_BUILD_BENCH=OFF \
  -DSLSTM_CUDA_EMULATED_TESTS=ON -DSLSTM_BUILD_TESTS=ON -DSLSTM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-tsan -j"$jobs" --target slstm_tests slstm_cuda_emu slstm_cuda_sim_tests
done_stage "tsan build"

stage "tsan [concurrency],[cpu-fast],[precision],[cuda-generic]"
for path in reference fast fast-avx2 fast-portable; do
  echo "-- cpu path: $path"
  SLSTM_TEST_CPU_PATH=$path \
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp" \
    build-tsan/tests/slstm_tests "[concurrency],[cpu-fast],[precision]" --reporter compact
done
# The generic CUDA path's sessions on the emulated module (sessions from several threads,
# the core's module firewall, the engine's graph record/replay).
echo "-- the CUDA generic path on the emulated module"
SLSTM_CUDA_MODULE=$PWD/build-tsan/tests/libslstm_cuda_emu.so \
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp" \
  build-tsan/tests/slstm_tests "[cuda-generic],[cuda-emu]" --reporter compact
# The CUDA kernels' own source on the simulator (tests/cuda_sim): every fiber a TSan fiber,
# ordered only by what orders threads on a GPU, so that TSan checks the ordering within a
# block (shared and global memory between barriers: compute-sanitizer's racecheck) and
# between blocks (the persistent kernel's step flags, the cluster barrier). The [sweep] cases
# repeat a kernel over many shapes for its arithmetic, which the normal and ASan suites check:
# left out here, where they took ~8 of the ~10 minutes (the rest, every kernel at every batch
# width, ~3 minutes on a 2-core machine).
echo "-- the CUDA kernels on the simulator"
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp" \
  build-tsan/tests/slstm_cuda_sim_tests "~[sweep]" --reporter compact
done_stage "tsan [concurrency],[cpu-fast],[precision],[cuda-generic]"

# ---- 3. valgrind memcheck ----------------------------------------------------------------------
stage "valgrind"
if [ ! -x "$normal_build/tests/slstm_tests" ] || [ ! -x "$normal_build/examples/seed_demo" ]; then
  cmake -S . -B "$normal_build" -DSLSTM_BUILD_TESTS=ON -DSLSTM_BUILD_EXAMPLES=ON >/dev/null
  cmake --build "$normal_build" -j"$jobs"
fi
sh tests/valgrind.sh "$normal_build"
done_stage "valgrind"

# ---- 4. libFuzzer -----------------------------------------------------------------------------
stage "fuzz (build + ${FUZZ_SECONDS:-60}s per target)"
FUZZ_SECONDS=${FUZZ_SECONDS:-60} bash fuzz/run.sh
done_stage "fuzz"

echo
echo "==== reliability: stage times"
printf '%s\n' "${timings[@]}"
echo "total                              $(( $(date +%s) - t_start ))s"
