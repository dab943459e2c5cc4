#!/bin/sh
# The shared library exports the C API prefix and nothing else, under soname .so.<major>.
# Usage: check_exports.sh <path to libstacklstm.so> <major version>
set -eu
lib=$1
major=$2
syms=$(nm -D --defined-only "$lib" | awk '{print $NF}')
stray=$(printf '%s\n' "$syms" | grep -vE '^slstm_' || true)
if [ -n "$stray" ]; then
  echo "symbols outside the slstm_ prefix:"; printf '%s\n' "$stray"; exit 1
fi
for required in slstm_session_forward slstm_model_create slstm_last_error slstm_version_number; do
  printf '%s\n' "$syms" | grep -qx "$required" || { echo "missing export: $required"; exit 1; }
done
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "libstacklstm.so.$major" ] || { echo "soname is '$soname'"; exit 1; }
echo "ok: $(printf '%s\n' "$syms" | wc -l) exports, all slstm_*, soname $soname"
