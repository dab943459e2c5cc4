#!/bin/sh
# `cmake --install` puts the tool in <prefix>/bin, where it finds <prefix>/lib/libstacklstm.so
# through its rpath ($ORIGIN/../lib), with no LD_LIBRARY_PATH; laid out as in the wheel
# (stacklstm/bin/stacklstm beside stacklstm/libstacklstm.so) it finds the library at $ORIGIN/..
# Usage: check_installed_cli.sh <build dir> <scratch dir>
set -eu
build=$1
scratch=$2
rm -rf "$scratch"
mkdir -p "$scratch"
prefix="$scratch/prefix"
cmake --install "$build" --prefix "$prefix" > "$scratch/install.log"
tool="$prefix/bin/stacklstm"
test -x "$tool" || { echo "FAIL: $tool not installed" >&2; exit 1; }
unset LD_LIBRARY_PATH
out=$("$tool" --version) || { echo "FAIL: the installed tool does not start" >&2; exit 1; }
echo "installed: $out"
# The installed tool must use the installed library, not the build tree's.
if command -v ldd > /dev/null; then
  ldd "$tool" | grep 'libstacklstm' | grep -qF "$prefix/" \
    || { echo "FAIL: the installed tool resolves libstacklstm elsewhere:" >&2; ldd "$tool" >&2; exit 1; }
fi
# The wheel's layout: <pkg>/bin/stacklstm and <pkg>/libstacklstm.so.<major>.
pkg="$scratch/wheel/stacklstm"
mkdir -p "$pkg/bin"
cp "$tool" "$pkg/bin/stacklstm"
lib=$(find "$prefix" -name 'libstacklstm.so.[0-9]' | head -n 1)
cp "$lib" "$pkg/"
rm -rf "$prefix"
out=$("$pkg/bin/stacklstm" --version) || { echo "FAIL: the tool in the wheel layout does not start" >&2; exit 1; }
echo "wheel layout: $out"
echo "ok: the installed tool finds its library in both layouts"
