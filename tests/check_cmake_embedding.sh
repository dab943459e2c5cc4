#!/bin/sh
# Configures the project twice, as packagers and parent projects do, and checks what the
# configuration writes (no build: a few seconds each):
#  1. absolute CMAKE_INSTALL_LIBDIR / INCLUDEDIR (Nix passes them so): stacklstm.pc names
#     them as they are and the tool's install runpath reaches the library from bin/;
#  2. inside a parent project (add_subdirectory): the parent's build type is left alone, the
#     tests, examples, benchmarks and tool are off by default, and CMAKE_CUDA_ARCHITECTURES
#     does not land in the parent's cache.
# Usage: check_cmake_embedding.sh <source dir> <scratch dir>
set -eu
src=$1
scratch=$2
rm -rf "$scratch"
mkdir -p "$scratch"
fail() { echo "FAILED: $*" >&2; exit 1; }

prefix="$scratch/prefix"
cmake -S "$src" -B "$scratch/abs" -DSLSTM_ENABLE_CUDA=OFF -DSLSTM_BUILD_TESTS=OFF \
  -DSLSTM_BUILD_EXAMPLES=OFF -DSLSTM_BUILD_BENCH=OFF -DSLSTM_BUILD_CLI=ON \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR="$prefix/lib64" \
  -DCMAKE_INSTALL_INCLUDEDIR="$prefix/include" > "$scratch/abs.log" 2>&1 ||
  fail "configure with absolute install directories (log: $scratch/abs.log)"
grep -qx "libdir=$prefix/lib64" "$scratch/abs/stacklstm.pc" ||
  fail "stacklstm.pc: $(grep '^libdir=' "$scratch/abs/stacklstm.pc"), expected libdir=$prefix/lib64"
grep -qx "includedir=$prefix/include" "$scratch/abs/stacklstm.pc" ||
  fail "stacklstm.pc: $(grep '^includedir=' "$scratch/abs/stacklstm.pc")"
grep -qF 'NEW_RPATH "\$ORIGIN/../lib64:\$ORIGIN/.."' "$scratch/abs/cli/cmake_install.cmake" ||
  fail "the tool's install runpath is not \$ORIGIN/../lib64: $(grep -o 'NEW_RPATH "[^"]*"' \
    "$scratch/abs/cli/cmake_install.cmake")"

mkdir -p "$scratch/parent"
cat > "$scratch/parent/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(parent LANGUAGES C CXX)
set(SLSTM_ENABLE_CUDA OFF)
add_subdirectory("$src" stacklstm)
if(NOT TARGET stacklstm::stacklstm)
  message(FATAL_ERROR "no stacklstm::stacklstm")
endif()
foreach(t slstm_tests stacklstm_cli slstm_bench_cpu)
  if(TARGET \${t})
    message(FATAL_ERROR "target \${t} is built inside a parent project by default")
  endif()
endforeach()
CMAKE
cmake -S "$scratch/parent" -B "$scratch/parent-build" > "$scratch/parent.log" 2>&1 ||
  fail "the parent project (log: $scratch/parent.log): $(grep -A2 'CMake Error' \
    "$scratch/parent.log" | head -n 5)"
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$scratch/parent-build/CMakeCache.txt")
[ -z "$build_type" ] || fail "the parent's CMAKE_BUILD_TYPE became '$build_type'"
! grep -q '^CMAKE_CUDA_ARCHITECTURES' "$scratch/parent-build/CMakeCache.txt" ||
  fail "CMAKE_CUDA_ARCHITECTURES landed in the parent's cache"
echo "ok: absolute install directories and a parent project configure as they should"
