#!/usr/bin/env bash
# The CPU benchmark in one command: builds the driver, then times libstacklstm's CPU paths
# beside PyTorch nn.LSTM and ONNX Runtime and writes bench/results/cpu.csv and cpu.md.
#   Usage: bash bench/cpu/run.sh [--quick] [--threads N] [--no-ort] [bench_cpu.py options]
#          (env BUILD_DIR, PYTHON; SLSTM_ORT_PYTHON: a python3 with onnxruntime and onnx)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build-bench-cpu}
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSLSTM_BUILD_TESTS=OFF \
      -DSLSTM_BUILD_EXAMPLES=OFF -DSLSTM_BUILD_BENCH=ON > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target slstm_bench_cpu
bin="$build/bench/cpu/slstm_bench_cpu"

# A Python with torch: $PYTHON, python3, or the fixture venv; else try pip, else run without.
py=""
for cand in ${PYTHON:-} python3 /tmp/fixenv/bin/python; do
  if command -v "$cand" > /dev/null 2>&1 && "$cand" -c 'import torch' > /dev/null 2>&1; then
    py=$cand
    break
  fi
done
if [ -z "$py" ]; then
  echo "== torch not found: trying pip install torch (CPU wheel)"
  python3 -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu ||
    python3 -m pip install --quiet --break-system-packages torch || true
  py=python3
fi
# ONNX Runtime (the second anchor) runs in a worker process of the first Python that imports
# onnxruntime and onnx; when none does, bench_cpu.py pip-installs both into $build/ort-venv
# (--install-ort), as torch is installed above.  --no-ort leaves ORT out.
ort=(--install-ort)
for arg in "$@"; do [ "$arg" = --no-ort ] && ort=(); done
# This machine sets OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE for tests and CI; the benchmark runs
# without them and reports which OpenBLAS kernel was selected.
exec env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$py" bench/cpu/bench_cpu.py --bin "$bin" \
  ${ort[@]+"${ort[@]}"} "$@"
