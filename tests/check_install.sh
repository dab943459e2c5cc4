#!/bin/sh
# Installs the build tree into a scratch prefix, then builds a consumer project with
# find_package(stacklstm CONFIG) and another with pkg-config, and runs both.
# Usage: check_install.sh <build dir> <scratch dir> <consumer source dir>
set -eu
build=$1
scratch=$2
consumer=$3
rm -rf "$scratch"
mkdir -p "$scratch"
prefix="$scratch/prefix"
cmake --install "$build" --prefix "$prefix" > "$scratch/install.log"
libdir=$(dirname "$(find "$prefix" -name 'libstacklstm.so' | head -n 1)")
# The license travels with the installed library.
test -f "$prefix/share/doc/stacklstm/LICENSE" || { echo "LICENSE not installed" >&2; exit 1; }
test -f "$prefix/include/stacklstm/stacklstm.hpp" || { echo "C++ wrapper not installed" >&2; exit 1; }

cmake -S "$consumer" -B "$scratch/cmake-consumer" -DCMAKE_PREFIX_PATH="$prefix" > "$scratch/configure.log"
cmake --build "$scratch/cmake-consumer" > "$scratch/build.log"
LD_LIBRARY_PATH="$libdir" "$scratch/cmake-consumer/consumer"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --exists stacklstm
# (eval: pkg-config escapes a space in a path with a backslash, which only the shell's own
# parsing honours; a plain $(...) splits the path there.)
eval "cc -std=c99 -o \"\$scratch/pc-consumer\" \"\$consumer/main.c\" \
  $(pkg-config --cflags --libs stacklstm)"
LD_LIBRARY_PATH="$libdir" "$scratch/pc-consumer"
echo "ok: installed tree works with find_package and pkg-config"
