#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine (the README's test command).
# Installs what is missing (Debian packages), configures, builds and runs ctest, which fails
# when any test fails or when no test ran.   Usage: bash tests/run.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}

# Debian packages the build and the tests need.
packages=(cmake g++ make catch2 pkg-config binutils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi

echo "== configure ($build)"
cmake -S . -B "$build" -DSLSTM_WERROR=ON -DSLSTM_BUILD_TESTS=ON
echo "== build"
cmake --build "$build" -j"$(nproc)"
echo "== test"
ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$(nproc)"
