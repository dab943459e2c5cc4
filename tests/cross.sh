#!/usr/bin/env bash
# The library on a CPU other than x86-64, from this x86-64 machine: cross-builds it, its test
# suite and examples for aarch64 with Debian's g++-aarch64-linux-gnu
# (cmake/toolchains/aarch64-linux-gnu.cmake) and runs them under qemu-user.  There the CPU
# fast path has its portable kernels alone (no AVX), and every bitwise case of the suite
# (threads, splits, chunks, steps) must hold on a CPU whose base ISA has FMA.
#
#   Usage: bash tests/cross.sh [build-dir] [--slice]     (build-dir: build-aarch64)
#   whole (default): ctest, every test but those labelled `native`, which run the build's
#     programs with this machine's own tools (sh scripts, python3, cargo, go); the suite on
#     the reference and the fast path (its portable kernels): ~4 min of tests on 2 CPUs.
#   --slice (.ci/run): the library, slstm_tests (every case once, on the default CPU path:
#     the fast path's portable kernels) and the C++ demo: ~4 min in all on 2 CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
build="build-aarch64"
slice=0
for arg in "$@"; do
  case $arg in
    --slice) slice=1 ;;
    -*) echo "usage: bash tests/cross.sh [build-dir] [--slice]" >&2; exit 2 ;;
    *) build=$arg ;;
  esac
done

source .ci/ensure-packages.sh
ensure_packages cmake make g++-aarch64-linux-gnu qemu-user catch2 nlohmann-json3-dev file

t0=$(date +%s)
echo "== cross: configure ($build, aarch64)"
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
  -DSLSTM_WERROR=ON -DSLSTM_BUILD_TESTS=ON -DSLSTM_ENABLE_CUDA=OFF > "$build/configure.log" ||
  { cat "$build/configure.log"; exit 1; }
echo "== cross: build"
if [ "$slice" = 1 ]; then
  cmake --build "$build" -j"$(nproc)" --target stacklstm slstm_tests cpp_demo
else
  cmake --build "$build" -j"$(nproc)"
fi
file -L "$build/libstacklstm.so" | grep -q "ARM aarch64" ||
  { echo "cross: $build/libstacklstm.so is not an aarch64 library" >&2; exit 1; }
emu=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
echo "== cross: the C++ demo under qemu-aarch64"
"${emu[@]}" "$build/examples/cpp_demo" | tee "$build/cpp_demo.log"
grep -q "final_state\[-1\].h == outputs\[:, -1, :\]: true" "$build/cpp_demo.log"
if [ "$slice" = 1 ]; then
  echo "== cross: slstm_tests under qemu-aarch64 (every case, default CPU path)"
  "${emu[@]}" "$build/tests/slstm_tests" --reporter compact
else
  echo "== cross: ctest under qemu-aarch64 (all but the tests labelled native)"
  ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$(nproc)" -LE native
fi
echo "== cross: aarch64 passed ($(( $(date +%s) - t0 )) s)"
