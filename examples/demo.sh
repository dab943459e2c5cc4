#!/usr/bin/env bash
# The README's main command: builds the library and runs the seed-scenario demo (3 layers
# [100, 200, 300], batch 10, input 128) on the GPU when one is usable, else on the CPU.
# Installs the Debian packages the build needs when they are missing.
# Usage: bash examples/demo.sh [time steps (default 7)]
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/ensure-packages.sh
ensure_packages cmake g++ make nlohmann-json3-dev
cmake -S . -B build-demo -DSLSTM_BUILD_TESTS=OFF -DSLSTM_BUILD_BENCH=OFF > build-demo.log
cmake --build build-demo -j"$(nproc)" >> build-demo.log
rm -f build-demo.log
./build-demo/examples/seed_demo "$@"
