#!/usr/bin/env bash
# The fake CUDA runtime's FULL set, run on purpose (not by ctest or CI): every case of the GPU
# suite that the fake module can run (all but [generic]) and the two stress tests with more
# calls (SLSTM_CUDA_FAKE_CALLS, 96 unless set), once per execution-order seed. About 100 s
# of CPU per seed (on this repo's 2-core CI machine kind); seeds run `jobs` at a time.
# ctest runs only a slice of this with seed 1 ("cuda-fake: ..." tests, tests/cuda_fake/
# CMakeLists.txt). What it checks, and what it cannot: docs/reliability.md, "The fake CUDA
# runtime". These are results of a host emulation, not of a GPU.
#
# Usage: bash tests/cuda_fake/run.sh [-j JOBS] [--module PATH] [BUILD_DIR [SEED...]]
#   BUILD_DIR  a build configured with SLSTM_CUDA_FAKE_TESTS=ON (default: build)
#   SEED...    execution-order seeds (default: 1 2 3 4 5)
#   -j JOBS    seeds run at once (default: nproc)
#   --module   another fake module to test (e.g. one built from a modified copy of cuda/)
# Logs: BUILD_DIR/tests/cuda_fake/run-logs/. Exit status 0 when every run passed.
set -euo pipefail

jobs=$(nproc)
module=
while [ $# -gt 0 ]; do
  case $1 in
    -j) jobs=$2; shift 2 ;;
    --module) module=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
build=${1:-build}
[ $# -gt 0 ] && shift
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3 4 5)

dir=$(cd "$build/tests/cuda_fake" 2>/dev/null && pwd) || {
  echo "run.sh: no $build/tests/cuda_fake: configure with -DSLSTM_CUDA_FAKE_TESTS=ON" >&2
  exit 2
}
for exe in slstm_cuda_fake_gpu_tests slstm_cuda_fake_tests; do
  [ -x "$dir/$exe" ] || { echo "run.sh: $dir/$exe is not built" >&2; exit 2; }
done
module=${module:-$dir/libslstm_cuda_fake.so}
[ -f "$module" ] || { echo "run.sh: no module $module" >&2; exit 2; }
logs=$dir/run-logs
mkdir -p "$logs"
export SLSTM_CUDA_MODULE=$module
export SLSTM_CUDA_FAKE_CALLS=${SLSTM_CUDA_FAKE_CALLS:-96}

# One seed: both executables, one log each; prints one line per executable.
run_seed() {
  local seed=$1 rc=0 exe
  for exe in slstm_cuda_fake_gpu_tests slstm_cuda_fake_tests; do
    local log=$logs/$exe.seed$seed.log start=$SECONDS
    # ([generic], [faults-sim], [memory-sim]: the generic path, which only the simulated
    # module has)
    local spec="~[generic]~[faults-sim]~[memory-sim]"
    if SLSTM_CUDA_FAKE_SEED=$seed "$dir/$exe" "$spec" >"$log" 2>&1; then
      echo "seed $seed $exe: passed ($((SECONDS - start)) s)"
    else
      echo "seed $seed $exe: FAILED ($((SECONDS - start)) s), see $log"
      rc=1
    fi
  done
  return $rc
}

echo "cuda-fake: the FAKE CUDA runtime (host emulation, NOT a GPU); module $module;" \
     "seeds ${seeds[*]}; $jobs at a time; $SLSTM_CUDA_FAKE_CALLS calls per stress run"
status=0
pids=()
for seed in "${seeds[@]}"; do
  run_seed "$seed" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
if [ $status -eq 0 ]; then
  echo "cuda-fake: every seed passed (fake CUDA runtime, not a GPU)"
else
  echo "cuda-fake: FAILED (fake CUDA runtime, not a GPU); logs in $logs"
fi
exit $status
