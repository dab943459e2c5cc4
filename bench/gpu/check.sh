#!/usr/bin/env bash
# shellcheck disable=SC2034,SC2046  # scenarios are read by name (${!scen}); optional
# flags and scenario words split on purpose
# The GPU check of issue 3: 46 s on an H100 (184 s with --grid) on 2026-11-26, on any CUDA
# GPU the build has kernels for (sm_90 by default). It needs no compiler there: it runs
# binaries built on a CPU machine (a build folder, or the lean folder pack_carry.sh makes).
#
#   OUT=<log folder> bench/gpu/check.sh [BUILD=build-gpu] [--grid] [--mechanisms] [--cpu-teams]
#                                       [--timings-only]
#
# --timings-only skips steps 3-4 and 6 (tests, demo, sanitizers): for a second, shorter run of
# a device session whose first run reached them, so that the time goes to the timing rows the
# first run's budget cut.
#
# 1. prints the device and driver (nvidia-smi);
# 2. finds cuBLAS / cuDNN / the CUDA runtime and puts their folders on LD_LIBRARY_PATH;
# 2b. with --mechanisms: first the device check of the persistent kernel's mechanisms
#    (bench/gpu/mechanisms.sh, issue 19 item 4; ~1-2 min); its table is appended to
#    table.txt, its log and table go into logs.tgz; a failure there makes the exit status 1;
# 3. runs the GPU test suite (tests/gpu, every case tagged [gpu]);
# 3b. runs the CPU suite's [cuda-generic] cases (the generic path, cuda.generic=on, issue 20)
#    on the real module (tests/slstm_tests, fixtures from this checkout);
# 3c. runs stacklstm.torch's CUDA-tensor tests (pytest -k cuda over test_torch_module.py and
#    test_cells_torch.py: nn.LSTM, and nn.GRU / bidirectional / proj_size on the generic
#    path), when the device's python3 has torch, numpy and pytest;
# 4. runs compute-sanitizer memcheck (graphs on and the fused step; graphs off and the cuBLAS
#    step), racecheck and initcheck on a small case with sequence lengths, host and device
#    buffers;
# 5. times the seed scenario (3 layers [100,200,300], D=128, B=10, T=100) and two larger
#    shapes (2 x 1024, D=1024, B=64, T=100; 1 layer H=512, D=512, B=1, T=25) on the CUDA
#    backend (host and device buffers) and on the CPU backend; then the persistent kernel
#    (SLSTM_CUDA_PERSISTENT=1) beside the default plan and the fused step on the small-batch
#    shapes (compute-sanitizer in step 4 also runs it: memcheck, racecheck, synccheck,
#    initcheck); the generic path on stacks of GRU, LSTMP and bidirectional layers (ours
#    with gpu_bench --cells, and beside cuDNN through PyTorch with the same weights:
#    bench/cpu/bench_cells.py --device cuda, its table in generic.md);
# 5b. with --cpu-teams (~1-2 min, CPU only): the CPU generic path's direction teams (cpu.team,
#    one team per direction from 4 threads on; a 2-CPU machine cannot measure them) on the
#    device machine's cores, bench/cpu/team_ab.py --bidirectional at 4 and 8 threads;
# 6. runs the README's demo (examples/seed_demo: on the GPU);
# 7. with --grid (and only when 3 and 4 came out clean): the benchmark grid of issue 5,
#    `bench/run.sh --gpu-only` (ours FP32/TF32, cuDNN 9, PyTorch, the floor), into $OUT/grid;
# and prints a short table last.
#
# Time budget: a device session has 15 minutes in all, machine start and give-back included,
# and one command at most 10. The script keeps to CHECK_BUDGET_S (default 420 s) from its
# start: a step runs only when the time it needs at the least is left, its timeout is cut to
# what is left (less 20 s for the summary), and a step that does not run says so in the table
# ("not run: time budget"). So the summary, table.txt and logs.tgz always come back, even when
# the GPU is slower than planned. The steps run in the order of what they decide: the
# mechanisms (when asked), the GPU tests and the demo, the generic path's cases, the
# compute-sanitizer runs (the most telling first), the timings of issue 19's paths, the rest.
# Run it with a timeout_s of CHECK_BUDGET_S + 60 or more.
#
# Full logs go to $OUT (default ./out): check.log, table.txt,
# logs.tgz (gpu_tests.log, sanitizer.log, bench.log, demo.log: packed so that with the grid's
# five files $OUT holds at most eight, what a device session brings back). Exit status 0 only
# when the tests passed and the sanitizers found nothing (and the grid, if asked for, ran).
#
#   OUT=<log folder> bench/gpu/check.sh [BUILD=build-gpu] [--grid] [--mechanisms] [--cpu-teams]
#                                       [--timings-only]
# Environment: CHECK_BUDGET_S (420). For --grid: BENCH_OURS_GPU_BUDGET_S (50), ANCHORS_CUDNN_BUDGET_S (80),
#   ANCHORS_TORCH_BUDGET_S (50), ANCHORS_TARGET_MS (40); the grid is cut at 300 s.
set -u
grid=0 mech=0 teams=0 timings_only=0 build_arg=build-gpu
for a in "$@"; do
  case "$a" in
    --grid) grid=1 ;; --mechanisms) mech=1 ;; --cpu-teams) teams=1 ;; --timings-only) timings_only=1 ;;
    -*) echo "check.sh: unknown option $a"; exit 2 ;;
    *) build_arg=$a ;;
  esac
done
BUILD=$(cd "$build_arg" && pwd) || { echo "check.sh: no build folder $build_arg"; exit 2; }
OUT=${OUT:-./out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BUDGET=${CHECK_BUDGET_S:-420}
case $BUDGET in ''|*[!0-9]*) echo "check.sh: CHECK_BUDGET_S must be whole seconds"; exit 2 ;; esac
SUMMARY_S=30   # kept back for the summary, table.txt and logs.tgz (and a -k 10 kill)
exec > >(tee "$OUT/check.log") 2>&1
TEE_PID=$!   # waited for at the end, so that check.log has its last line when we exit
start=$(date +%s)
status=0
say() { printf '\n=== %s (t+%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
left() { echo $(( BUDGET - ($(date +%s) - start) )); }
# time_for NEED MAX: the timeout a step gets: MAX, or what is left of the budget less
# SUMMARY_S if that is smaller; 0 when less than NEED is left (the step is not run).
time_for() {
  local t=$(( $(left) - SUMMARY_S ))
  [ "$t" -gt "$2" ] && t=$2
  [ "$t" -lt "$1" ] && t=0
  echo "$t"
}
# (what is left for steps: the budget's remainder less what the summary keeps back)
no_time() {
  echo "not run: time budget ($(( $(left) - SUMMARY_S )) s of ${BUDGET} s left for steps, needs $1 s)"
}

say "device and driver (time budget ${BUDGET} s)"
date -u
uname -m
timeout -k 5 30 nvidia-smi || echo "nvidia-smi failed"
timeout -k 5 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
DEVICE=$(timeout -k 5 30 nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)

say "libraries"
. "$(dirname "$0")/find_libs.sh"   # LD_LIBRARY_PATH, FOUND, SAN, SLSTM_FIND_CACHE
slstm_find_libs "$BUILD"
TESTS="$BUILD/tests/gpu/slstm_gpu_tests"
BENCH="$BUILD/bench/gpu/slstm_gpu_bench"
ldd "$BUILD/libstacklstm_cuda.so" | grep -E "not found|cublas" || true
ldd "$TESTS" | grep -E "not found|stacklstm|cudart" || true
echo "compute-sanitizer: ${SAN:-not found}"

MECH_RESULT="not run (no --mechanisms)"
if [ "$mech" = 1 ]; then
  say "mechanisms (bench/gpu/mechanisms.sh)"
  t=$(time_for 60 240)
  if [ "$t" = 0 ]; then
    MECH_RESULT=$(no_time 60); status=1
  else
    OUT="$OUT" MECH_TIMEOUT_S=$t bash "$(dirname "$0")/mechanisms.sh" "$BUILD"
    mech_rc=$?
    MECH_RESULT="exit $mech_rc (table below; 0 = all measured and right, 77 = no GPU)"
    [ "$mech_rc" = 0 ] || status=1
  fi
fi

if [ "$timings_only" = 1 ]; then
  # A second run of a session whose first run covered the tests: its time goes to the rows.
  for v in TEST_RESULT DEMO_RESULT GENERIC_RESULT TORCH_RESULT; do
    printf -v "$v" '%s' "not run (--timings-only)"
  done
  SAN_RESULT=" not run (--timings-only)"
else
say "GPU tests"
t=$(time_for 30 240)
if [ "$t" = 0 ]; then
  TEST_RESULT=$(no_time 30); status=1
else
  timeout -k 10 "$t" "$TESTS" -r compact -d yes > "$OUT/gpu_tests.log" 2>&1
  test_rc=$?
  tail -25 "$OUT/gpu_tests.log"
  case $test_rc in
    0) TEST_RESULT="passed" ;;
    77) TEST_RESULT="SKIPPED ($(head -1 "$OUT/gpu_tests.log"))"; status=1 ;;
    124|137) TEST_RESULT="TIMED OUT ($t s)"; status=1 ;;
    *) TEST_RESULT="FAILED (exit $test_rc)"; status=1 ;;
  esac
fi
echo "GPU tests: $TEST_RESULT"

say "demo (examples/seed_demo, the README's main job)"
if [ ! -x "$BUILD/examples/seed_demo" ]; then
  DEMO_RESULT="not run ($BUILD/examples/seed_demo missing)"
elif t=$(time_for 10 60) && [ "$t" = 0 ]; then
  DEMO_RESULT=$(no_time 10); status=1
else
  timeout -k 10 "$t" "$BUILD/examples/seed_demo" > "$OUT/demo.log" 2>&1
  demo_rc=$?
  cat "$OUT/demo.log"
  DEMO_RESULT="exit $demo_rc; $(grep -iE 'backend|check' "$OUT/demo.log" | tr '\n' ' ' | cut -c1-160)"
  [ "$demo_rc" = 0 ] || status=1
fi

say "the generic path's cases of the CPU suite (cuda.generic, issue 20)"
GENERIC_RESULT="not run ($BUILD/tests/slstm_tests missing)"
if [ -x "$BUILD/tests/slstm_tests" ]; then
  t=$(time_for 30 240)
  if [ "$t" = 0 ]; then
    GENERIC_RESULT=$(no_time 30); status=1
  else
    SLSTM_FIXTURE_DIR="$(cd "$(dirname "$0")/../../tests/fixtures" && pwd)" \
      timeout -k 10 "$t" "$BUILD/tests/slstm_tests" "[cuda-generic]" -r compact \
      > "$OUT/generic_tests.log" 2>&1
    generic_rc=$?
    tail -15 "$OUT/generic_tests.log"
    if grep -q "SKIPPED: no usable GPU" "$OUT/generic_tests.log"; then
      GENERIC_RESULT="SKIPPED (no usable GPU)"; status=1
    elif [ "$generic_rc" = 0 ]; then
      GENERIC_RESULT="passed"
    else
      GENERIC_RESULT="FAILED (exit $generic_rc)"; status=1
    fi
  fi
fi
echo "generic path cases: $GENERIC_RESULT"

say "stacklstm.torch on CUDA tensors (python/tests, pytest -k cuda)"
TORCH_RESULT="not run (no python3 with torch, numpy and pytest)"
if python3 -c "import torch, numpy, pytest" 2>/dev/null; then
  t=$(time_for 20 180)
  if [ "$t" = 0 ]; then
    TORCH_RESULT=$(no_time 20); status=1
  else
    SLSTM_LIBRARY="$BUILD/libstacklstm.so.0" PYTHONPATH="$(dirname "$0")/../../python" \
      SLSTM_REQUIRE_CUDA=1 timeout -k 10 "$t" python3 -m pytest -q -p no:cacheprovider -rs -k cuda \
      "$(dirname "$0")/../../python/tests/test_torch_module.py" \
      "$(dirname "$0")/../../python/tests/test_cells_torch.py" > "$OUT/torch_cuda.log" 2>&1
    torch_rc=$?
    tail -8 "$OUT/torch_cuda.log"
    TORCH_RESULT="exit $torch_rc: $(tail -1 "$OUT/torch_cuda.log" | cut -c1-120)"
    grep -q "SKIPPED" "$OUT/torch_cuda.log" && TORCH_RESULT="$TORCH_RESULT (some SKIPPED: see log)"
    [ "$torch_rc" = 0 ] || status=1
  fi
fi
echo "torch modules on CUDA: $TORCH_RESULT"

say "compute-sanitizer"
: > "$OUT/sanitizer.log"
SAN_RESULT=""
small="--input 7 --layers 33,5 --batch 6 --time 9 --lengths --reps 2 --warmup 1"
run_san() {  # name tool [VAR=value ...] -- bench args ...
  local name=$1 tool=$2; shift 2
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift  # the "--": what follows goes to the bench, not to env
  local t
  t=$(time_for 15 90)
  if [ "$t" = 0 ]; then
    echo "$name: $(no_time 15)"
    SAN_RESULT="$SAN_RESULT $name=budget"; status=1
    return
  fi
  echo "--- $name" >> "$OUT/sanitizer.log"
  local one="$OUT/sanitizer-$name.tmp"
  timeout -k 10 "$t" env "${envs[@]}" "$SAN" --tool "$tool" --error-exitcode 99 --print-limit 20 \
      $( [ "$tool" = memcheck ] && echo --leak-check full ) \
      "$BENCH" --label "san-$name" $small "$@" > "$one" 2>&1
  local rc=$?
  # A bench that found no GPU under the sanitizer checked nothing: not clean.
  grep -q "^SKIPPED" "$one" && [ "$rc" = 0 ] && rc=77
  cat "$one" >> "$OUT/sanitizer.log" && rm -f "$one"
  local summary
  summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer.log" | tail -1)
  echo "$name: exit $rc; $summary"
  SAN_RESULT="$SAN_RESULT $name=$rc"
  [ "$rc" = 0 ] || status=1
}
if [ -n "${SAN:-}" ]; then
  # The most telling first: each path's memcheck, then the races, then the rest.
  generic_small="--cells bilstmp:9:4,gru0:6,revgru:5 --config cuda.generic=on"
  run_san memcheck-graphs memcheck SLSTM_CUDA_GRAPHS=1 -- --memory host
  # The persistent kernel (cuda.persistent=on, issue 19; its environment override), with a
  # minute for each wait at its grid barrier: under a sanitizer a CTA may wait far longer
  # than the default second, and a kernel that gave up would leave the fallback checked.
  # (The PLAN line in sanitizer.log says whether the kernel was still on at the end.)
  long_wait="--config cuda.persistent_timeout_us=60000000"
  run_san memcheck-persistent memcheck SLSTM_CUDA_PERSISTENT=1 SLSTM_CUDA_GRAPHS=1 -- --memory host \
    $long_wait
  # The generic path (cuda.generic=on, issue 20): every kernel of it in one stack.
  run_san memcheck-generic memcheck -- $generic_small --memory device
  run_san racecheck-persistent racecheck SLSTM_CUDA_PERSISTENT=1 SLSTM_CUDA_GRAPHS=0 -- \
    --memory device $long_wait
  run_san synccheck-persistent synccheck SLSTM_CUDA_PERSISTENT=1 SLSTM_CUDA_GRAPHS=0 -- \
    --memory device $long_wait
  run_san memcheck-cublas memcheck SLSTM_CUDA_GRAPHS=0 SLSTM_CUDA_FUSED=0 -- --memory device
  run_san racecheck racecheck SLSTM_CUDA_GRAPHS=0 SLSTM_CUDA_CHUNK=2 -- --memory device
  run_san initcheck initcheck SLSTM_CUDA_GRAPHS=1 -- --memory host
  run_san initcheck-persistent initcheck SLSTM_CUDA_PERSISTENT=1 SLSTM_CUDA_GRAPHS=1 -- \
    --memory host $long_wait
  run_san memcheck-persistent-layers memcheck SLSTM_CUDA_PERSISTENT=layers SLSTM_CUDA_CHUNK=3 -- \
    --memory device $long_wait
  # The cluster tier (cuda.cluster=on): distributed shared memory and the cluster barrier.
  run_san memcheck-cluster memcheck SLSTM_CUDA_PERSISTENT=layers -- --memory device \
    --config cuda.cluster=on
  run_san racecheck-cluster racecheck SLSTM_CUDA_PERSISTENT=layers SLSTM_CUDA_GRAPHS=0 -- \
    --memory device --config cuda.cluster=on
  run_san synccheck-cluster synccheck SLSTM_CUDA_PERSISTENT=layers SLSTM_CUDA_GRAPHS=0 -- \
    --memory device --config cuda.cluster=on
  # The hybrid tier (cuda.hybrid=on): H = 1100, 138 CTAs at two to an SM, each with part of
  # its W_h rows in shared memory and the rest read through L2 under an L2 window.
  hybrid_small="--input 7 --layers 1100 --batch 2 --time 4"
  hybrid_config="cuda.hybrid=on;cuda.persistent_timeout_us=60000000"
  run_san memcheck-hybrid memcheck SLSTM_CUDA_PERSISTENT=layers -- $hybrid_small --memory device \
    --config "$hybrid_config"
  run_san racecheck-hybrid racecheck SLSTM_CUDA_PERSISTENT=layers SLSTM_CUDA_GRAPHS=0 -- \
    $hybrid_small --memory device --config "$hybrid_config"
  run_san initcheck-generic initcheck -- $generic_small --memory host
  run_san memcheck-generic-bf16 memcheck -- $generic_small --precision bf16 --memory device
  run_san racecheck-generic racecheck SLSTM_CUDA_GRAPHS=0 -- $generic_small --memory device
else
  SAN_RESULT=" not run (compute-sanitizer not found)"; status=1
fi

fi  # (--timings-only)

say "timings"
: > "$OUT/bench.log"
BENCH_CUT=0
BENCH_FAILED=0
bench() {  # label backend memory reps args...
  local label=$1 backend=$2 memory=$3 reps=$4; shift 4
  local t shown=$backend
  # The backend column as slstm_gpu_bench's own RESULT line names it (for the NA rows).
  case " $* " in
    *" --tf32 "*) shown=$backend-tf32 ;;
    *" --precision bf16 "*) shown=$backend-bf16 ;;
    *" --precision fp16 "*) shown=$backend-fp16 ;;
  esac
  t=$(time_for 10 120)
  if [ "$t" = 0 ]; then
    echo "RESULT $label $shown $memory median_ms=NA min_ms=NA (not run: time budget)" |
      tee -a "$OUT/bench.log"
    BENCH_CUT=$((BENCH_CUT + 1))
    return
  fi
  timeout -k 10 "$t" "$BENCH" --label "$label" --backend "$backend" --memory "$memory" --reps "$reps" \
      --warmup 2 "$@" 2>&1 | tee -a "$OUT/bench.log" | grep -E "^RESULT|^PLAN|SKIPPED|slstm_gpu_bench"
  local rc=${PIPESTATUS[0]}
  # A failed run still gets its row in the table (an error line alone would drop it).
  if [ "$rc" != 0 ]; then
    echo "RESULT $label $shown $memory median_ms=NA min_ms=NA (exit $rc)" | tee -a "$OUT/bench.log"
    BENCH_FAILED=$((BENCH_FAILED + 1))
  fi
}
seed="--input 128 --layers 100,200,300 --batch 10 --time 100"
seed1="--input 128 --layers 100,200,300 --batch 10 --time 1"
big="--input 1024 --layers 1024,1024 --batch 64 --time 100"
one="--input 512 --layers 512 --batch 1 --time 25"
h256="--input 256 --layers 256 --batch 1 --time 150"
h1024="--input 1024 --layers 1024 --batch 4 --time 25"

# First what issue 19 turns on: the persistent kernel (cuda.persistent=on: the seed's stack
# as ONE launch; =layers: one launch per layer and wavefront chunk) against the default plan
# and the fused step everywhere, same run: the seed (T = 100 and the single call T = 1) and
# the small-batch rows of the grid it reaches (H = 256 B = 1, H = 512 B = 1, H = 1024 B = 4).
for scen in seed seed1 one h256 h1024; do
  args=${!scen}
  bench "$scen-default" cuda device 50 $args
  SLSTM_CUDA_FUSED=always bench "$scen-fused" cuda device 50 $args
  SLSTM_CUDA_PERSISTENT=1 bench "$scen-persist" cuda device 50 $args
  SLSTM_CUDA_PERSISTENT=1 bench "$scen-persist" cuda host 50 $args
  [ "$scen" = seed ] || [ "$scen" = seed1 ] &&
    SLSTM_CUDA_PERSISTENT=layers bench "$scen-persist-layers" cuda device 50 $args
  # The cluster tier (cuda.cluster=on): every layer up to H = 464 on one thread-block cluster,
  # one hardware barrier per step instead of the grid's step flags (h1024: none, as planned).
  [ "$scen" = h1024 ] ||
    SLSTM_CUDA_PERSISTENT=layers bench "$scen-cluster" cuda device 50 $args --config cuda.cluster=on
  # ... and tuned with it: the cluster tier timed beside the grid tier and the others.
  [ "$scen" = h256 ] && SLSTM_CUDA_PERSISTENT=layers SLSTM_CUDA_TUNE=1 \
    bench "$scen-cluster-tuned" cuda device 50 $args --config cuda.cluster=on
  # The plan tuned on the device (cuda.tune=on, issue 19 item 3) with every path allowed:
  # never slower than the fastest of the rows above, by construction, if tuning works.
  SLSTM_CUDA_PERSISTENT=1 SLSTM_CUDA_TUNE=1 bench "$scen-tuned" cuda device 50 $args
done
# The hybrid tier (cuda.hybrid=on): H = 2048, whose W_h (67 MB) no grid of CTAs holds,
# 256 CTAs at two to an SM with part of each row in shared memory, the rest read every step
# through L2 under an L2-persisting window (the PLAN line: hybrid_resident, l2_window_bytes);
# H = 1536 (192 CTAs, its 38 MB fit L2); beside the default plan and the fused step, and tuned
# against them.
h2048="--input 2048 --layers 2048 --batch 1 --time 25"
h2048b4="--input 2048 --layers 2048 --batch 4 --time 25"
h1536="--input 1536 --layers 1536 --batch 1 --time 50"
for scen in h2048 h2048b4 h1536; do
  args=${!scen}
  bench "$scen-default" cuda device 50 $args
  SLSTM_CUDA_FUSED=always bench "$scen-fused" cuda device 50 $args
  SLSTM_CUDA_PERSISTENT=layers bench "$scen-hybrid" cuda device 50 $args --config cuda.hybrid=on
  SLSTM_CUDA_PERSISTENT=layers SLSTM_CUDA_TUNE=1 \
    bench "$scen-hybrid-tuned" cuda device 50 $args --config cuda.hybrid=on
done
# cuda.staging=on (issue 19 item 2: the single call with host buffers, through one pinned
# buffer, one wait for the device per call) beside the same host-buffer calls without it:
# the default plan, and the persistent stack (whose row without it, *-persist host, is above).
for scen in seed1 one; do
  args=${!scen}
  bench "$scen-host" cuda host 50 $args
  bench "$scen-host-staged" cuda host 50 $args --config cuda.staging=on
  SLSTM_CUDA_PERSISTENT=1 bench "$scen-persist-staged" cuda host 50 $args --config cuda.staging=on
done
# cuda.blas_workspace_mib=1 (each cuBLAS handle's workspace 1 MiB instead of 32 on Hopper: a
# seed-model session's device memory 172 MB -> 9 MB) beside the default plan's rows below
# (seed, big, one on device buffers): what the smaller workspace costs the GEMMs.
for scen in seed big one; do
  bench "$scen-ws1" cuda device 50 ${!scen} --config cuda.blas_workspace_mib=1
done

# The default plan: host and device buffers, TF32, and the CPU backend beside it.
for scen in seed big one; do
  args=${!scen}
  bench "$scen" cuda host 50 $args
  bench "$scen" cuda device 50 $args
  bench "$scen" cuda device 50 $args --tf32
  bench "$scen" cpu host $([ "$scen" = big ] && echo 5 || echo 20) $args
done

# The generic path (cuda.generic=on, issue 20): GRU, LSTMP and bidirectional stacks, and a
# BasicLSTMCell stack on it (cuda.generic=always) beside the basic path's default plan.
g_gru="--input 256 --cells gru:256 --batch 1 --time 100"
g_lstmp="--input 256 --cells lstmp:1024:256 --batch 4 --time 50"
g_bigru="--input 128 --cells bigru:256 --batch 4 --time 50"
g_big="--input 512 --cells bilstm:512,bilstm:512 --batch 64 --time 100"
for scen in g_gru g_lstmp g_bigru g_big; do
  bench "$scen" cuda device 20 ${!scen} --config cuda.generic=on
done
SLSTM_CUDA_GRAPHS=0 bench "g_gru-nographs" cuda device 20 $g_gru --config cuda.generic=on
# BF16 / FP16 sessions on it (issue 15: 16-bit operands through cublasGemmEx).
for prec in bf16 fp16; do
  bench "g_lstmp" cuda device 20 $g_lstmp --config cuda.generic=on --precision $prec
  bench "g_big" cuda device 20 $g_big --config cuda.generic=on --precision $prec
done
bench "seed-generic" cuda device 20 $seed --config cuda.generic=always
bench "seed-generic" cuda device 20 $seed --config cuda.generic=always --tf32

say "the generic path beside cuDNN (bench/cpu/bench_cells.py --device cuda)"
CELLS_RESULT="not run (no python3 with torch and numpy)"
if python3 -c "import torch, numpy" 2>/dev/null; then
  t=$(time_for 30 180)
  if [ "$t" = 0 ]; then
    CELLS_RESULT=$(no_time 30)
  else
    SLSTM_LIBRARY="$BUILD/libstacklstm.so.0" PYTHONPATH="$(dirname "$0")/../../python" \
      timeout -k 10 "$t" python3 "$(dirname "$0")/../cpu/bench_cells.py" --device cuda --seconds 1 \
      > "$OUT/generic.md" 2>&1
    cells_rc=$?
    cat "$OUT/generic.md"
    CELLS_RESULT="exit $cells_rc (table in generic.md; 0 = every row ran and agreed with cuDNN)"
    [ "$cells_rc" = 0 ] || status=1
    # (bench_cells.py exits 0 when a backend is unavailable, saying SKIPPED: not a pass here)
    if grep -q '^SKIPPED' "$OUT/generic.md"; then
      CELLS_RESULT="SKIPPED ($(grep -m1 '^SKIPPED' "$OUT/generic.md"))"; status=1
    fi
  fi
fi

say "schedule experiments: wavefront chunk, graphs off, cuBLAS step"
# The wavefront's chunk size on the seed scenario (schedule only; numbers are tested above).
for c in 1 4 16 100; do
  SLSTM_CUDA_CHUNK=$c bench "seed-chunk$c" cuda device 50 $seed
done
SLSTM_CUDA_GRAPHS=0 bench "seed-nographs" cuda device 50 $seed
# The small-batch fused recurrent step against the cuBLAS GEMM + step kernel it replaces.
SLSTM_CUDA_FUSED=0 bench "seed-cublas" cuda device 50 $seed
SLSTM_CUDA_FUSED=0 bench "seed-cublas" cuda device 50 $seed --tf32
SLSTM_CUDA_FUSED=0 bench "one-cublas" cuda device 50 $one

TEAMS_RESULT="not run (no --cpu-teams)"
if [ "$teams" = 1 ]; then
  say "the CPU generic path's direction teams on this machine's cores (team_ab.py)"
  if ! python3 -c "import numpy" 2>/dev/null || [ "$(nproc)" -lt 4 ]; then
    TEAMS_RESULT="not run (needs numpy and at least 4 CPUs; $(nproc) here)"
  elif [ "$(time_for 60 480)" = 0 ]; then
    TEAMS_RESULT=$(no_time 60)
  else
    : > "$OUT/teams.md"
    teams_cut=0
    for th in 4 8; do
      for cell in lstm gru; do
        t=$(time_for 20 120)
        if [ "$t" = 0 ]; then teams_cut=$((teams_cut + 1)); continue; fi
        env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE SLSTM_LIBRARY="$BUILD/libstacklstm.so.0" \
          timeout -k 10 "$t" python3 "$(dirname "$0")/../cpu/team_ab.py" --bidirectional --cell $cell \
          --threads $th --hidden 256,512,1024 --batch 1,4,16 --time 50 --rounds 5 \
          >> "$OUT/teams.md" 2>&1
      done
    done
    cat "$OUT/teams.md"
    TEAMS_RESULT="ran on $(nproc) CPUs (table in teams.md: rows / team > 1 = the team is faster)"
    [ "$teams_cut" = 0 ] || TEAMS_RESULT="$TEAMS_RESULT; $teams_cut of 4 runs not run: time budget"
  fi
fi

# (with --timings-only the rows are what the run is for: one that failed fails it)
[ "$timings_only" = 1 ] && [ "$BENCH_FAILED" != 0 ] && status=1
say "summary"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)   device: ${DEVICE:-unknown}"
  echo "binaries built from: $(cat "$BUILD/COMMIT" 2>/dev/null || echo 'unknown (no COMMIT file)')"
  echo "GPU tests: $TEST_RESULT"
  echo "generic path cases: $GENERIC_RESULT"
  echo "torch modules on CUDA: $TORCH_RESULT"
  echo "generic vs cuDNN: $CELLS_RESULT"
  echo "compute-sanitizer (exit codes, 0 = clean):$SAN_RESULT"
  echo "demo: $DEMO_RESULT"
  echo "mechanisms: $MECH_RESULT"
  echo "CPU direction teams: $TEAMS_RESULT"
  [ "$BENCH_CUT" = 0 ] || echo "timings: $BENCH_CUT rows not run: time budget (NA below)"
  # (a row that failed does not change the exit status: the table shows it, "NA (exit N)")
  [ "$BENCH_FAILED" = 0 ] || echo "timings: $BENCH_FAILED rows FAILED (NA (exit N) below; bench.log)"
  printf '%-20s %-10s %-7s %12s %12s\n' scenario backend memory median_ms min_ms
  grep '^RESULT' "$OUT/bench.log" | sed 's/median_ms=//; s/min_ms=//' |
    awk '{printf "%-20s %-10s %-7s %12s %12s\n", $2, $3, $4, $5, $6}'
  # What the persistent / tuned rows ran at their end ("none": the kernel was off by then).
  grep -h '^PLAN' "$OUT/bench.log" "$OUT/sanitizer.log" 2>/dev/null
  echo "total check time: $(( $(date +%s) - start )) s of a ${BUDGET} s budget"
} | tee "$OUT/table.txt"
[ -f "$OUT/mechanisms.md" ] && { echo; cat "$OUT/mechanisms.md"; } >> "$OUT/table.txt"
[ -f "$OUT/generic.md" ] && { echo; cat "$OUT/generic.md"; } >> "$OUT/table.txt"
[ -f "$OUT/teams.md" ] && { echo; cat "$OUT/teams.md"; } >> "$OUT/table.txt"
(cd "$OUT" && tar czf logs.tgz sanitizer.log bench.log \
    $(ls gpu_tests.log demo.log mechanisms.log mechanisms.md generic_tests.log generic.md \
      torch_cuda.log teams.md 2>/dev/null) &&
  rm -f gpu_tests.log sanitizer.log bench.log demo.log mechanisms.log mechanisms.md \
    generic_tests.log generic.md torch_cuda.log teams.md)

if [ "$grid" = 1 ]; then
  t=$(time_for 120 300)
  if [ "$status" != 0 ]; then
    echo "grid not run: the tests or the sanitizers did not come out clean" | tee -a "$OUT/table.txt"
  elif [ "$t" = 0 ]; then
    echo "grid $(no_time 120)" | tee -a "$OUT/table.txt"
    status=1
  else
    say "the grid (bench/run.sh --gpu-only --out \$OUT/grid)"
    BENCH_OURS_GPU_BUDGET_S=${BENCH_OURS_GPU_BUDGET_S:-50} \
    ANCHORS_CUDNN_BUDGET_S=${ANCHORS_CUDNN_BUDGET_S:-80} \
    ANCHORS_TORCH_BUDGET_S=${ANCHORS_TORCH_BUDGET_S:-50} ANCHORS_TARGET_MS=${ANCHORS_TARGET_MS:-40} \
      timeout -k 10 "$t" bash "$(dirname "$0")/../run.sh" --gpu-only --gpu-build "$BUILD" --out "$OUT/grid"
    grid_rc=$?
    echo "bench/run.sh --gpu-only: exit $grid_rc" | tee -a "$OUT/table.txt"
    [ "$grid_rc" = 0 ] || status=1
  fi
  cat "$OUT/table.txt"
fi
[ "$FOUND_OWNED" = 1 ] && rm -f "$FOUND"
echo "check.sh: exit $status after $(( $(date +%s) - start )) s"
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null
exit $status
