#!/bin/sh
# Every CPU path the suite should run on has its tests registered with ctest (the fast run
# also has the [cpu-fast] cases, so it has at least as many as the others). Usage: check_registration.sh <build dir> <path>...
set -eu
build=$1
shift
listing=$(ctest --test-dir "$build" -N)
for path in "$@"; do
  n=$(printf '%s\n' "$listing" | grep -c "cpu-$path:" || true)
  echo "cpu-$path: $n tests registered"
  [ "$n" -gt 0 ] || { echo "no tests registered for cpu-$path"; exit 1; }
done
