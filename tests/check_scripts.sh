#!/bin/sh
# The device scripts (bench/gpu/*.sh) run first on a GPU a session may hold for 15 minutes,
# never on CI's machine: here they must at least parse (bash -n) and, where shellcheck is
# installed (CI installs it), pass it at warning level.  Usage: check_scripts.sh <source dir>
set -eu
src=$1
status=0
for f in "$src"/bench/gpu/*.sh; do
  bash -n "$f" || { echo "does not parse: $f"; status=1; }
done
if command -v shellcheck > /dev/null 2>&1; then
  shellcheck -S warning "$src"/bench/gpu/*.sh || status=1
  echo "bench/gpu/*.sh: bash -n and shellcheck -S warning"
else
  echo "bench/gpu/*.sh: bash -n only (shellcheck not installed)"
fi
exit $status
