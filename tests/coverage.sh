#!/usr/bin/env bash
# Which lines and branches of the library (src/, capi/) the CPU suite runs: a gcov build of
# everything the suite builds (the CUDA module's host code on the fake runtime, the generic
# path's engine on the emulated module; no nvcc), ctest and the Python package's tests
# against it, then gcovr's summary.  Run on purpose, not in CI (~30 min on a 2-core machine:
# the build ~8, ctest ~20 at -O1 with counters).  A line it lists as missed is a place to
# look, not a verdict: the children of the fork tests leave with _exit and write no counts,
# allocation failures (OUT_OF_MEMORY) are reached only where a test can make one.
#   bash tests/coverage.sh [build-dir]     (default build-coverage)
# Writes <build-dir>/coverage-lines.txt, coverage-branches.txt (throw and unreachable
# branches left out) and prints both totals last; exits non-zero if a test failed.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=$(realpath -m "${1:-build-coverage}")

source .ci/ensure-packages.sh
ensure_packages cmake g++ make catch2 pkg-config binutils libopenblas-dev nlohmann-json3-dev \
  python3-numpy python3-pytest python3-torch gcovr

# (Counters updated without atomics: -fprofile-update=atomic made the fake-CUDA suite run
# past its ctest timeout; the few counts that racing workers lose do not hide a line.)
flags="--coverage -O1"
echo "== configure ($build)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="$flags" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS=--coverage \
  -DCMAKE_SHARED_LINKER_FLAGS=--coverage -DSLSTM_ENABLE_CUDA=OFF \
  -DSLSTM_CUDA_EMULATED_TESTS=ON -DSLSTM_CUDA_FAKE_TESTS=ON -DSLSTM_BUILD_BENCH=OFF \
  -DSLSTM_BUILD_TESTS=ON -DSLSTM_BUILD_EXAMPLES=ON > /dev/null
echo "== build"
cmake --build "$build" -j"$(nproc)"
find "$build" -name '*.gcda' -delete  # counts of this run only
# A failing test still leaves its counts: the report is written, the exit status says it.
status=0
echo "== ctest"
ctest --test-dir "$build" --no-tests=error -j"$(nproc)" > "$build/coverage-ctest.log" || status=1
tail -n 4 "$build/coverage-ctest.log"
echo "== python package tests"
SLSTM_LIBRARY="$build/libstacklstm.so" SLSTM_CLI="$build/cli/stacklstm" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests > "$build/coverage-pytest.log" \
  || status=1
tail -n 1 "$build/coverage-pytest.log"
echo "== gcovr"
report() {
  gcovr -r "$src" --object-directory "$build" -f "$src/src/" -f "$src/capi/" -j"$(nproc)" \
    --gcov-ignore-parse-errors "$@" 2> /dev/null
}
report > "$build/coverage-lines.txt"
report --branches --exclude-throw-branches --exclude-unreachable-branches \
  > "$build/coverage-branches.txt"
echo "lines:    $(grep '^TOTAL' "$build/coverage-lines.txt")"
echo "branches: $(grep '^TOTAL' "$build/coverage-branches.txt")"
echo "(per file, with the missed line numbers: $build/coverage-lines.txt," \
  "$build/coverage-branches.txt)"
[ "$status" -eq 0 ] || echo "some tests failed: $build/coverage-ctest.log, coverage-pytest.log"
exit "$status"
