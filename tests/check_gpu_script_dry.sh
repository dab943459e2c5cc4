#!/bin/sh
# bench/gpu/check.sh (with --mechanisms --cpu-teams), the one script a (rare, short) GPU
# session runs, run here where there is no GPU: every step must be reached and report itself
# skipped or not run, the summary table and logs.tgz must come out, and the exit status must
# be 1 (nothing was checked on a GPU).
# A broken path, a missing binary or a step that stops the script shows here instead of in
# the device session.  Then once more with no time budget (CHECK_BUDGET_S=0): every step says
# it was not run, and the summary still comes out.  Skipped (77) where a GPU answers: there the script runs for real.
# Usage: check_gpu_script_dry.sh <source dir> <build dir>
set -u
src=$1
build=$2
if command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi > /dev/null 2>&1; then
  echo "SKIPPED: a GPU answers here; run bench/gpu/check.sh itself"
  exit 77
fi
out=$(mktemp -d /tmp/slstm_check_dry_XXXXXX)
trap 'rm -rf "$out"' EXIT
OUT="$out" CHECK_BUDGET_S=250 timeout 300 bash "$src/bench/gpu/check.sh" "$build" --mechanisms --cpu-teams \
  > "$out/stdout.txt" 2>&1
rc=$?
fail() { echo "FAILED: $*"; tail -40 "$out/stdout.txt"; exit 1; }
[ "$rc" = 1 ] || fail "check.sh exited $rc without a GPU (expected 1: nothing checked)"
[ -f "$out/table.txt" ] || fail "no table.txt"
[ -f "$out/logs.tgz" ] || fail "no logs.tgz"
for line in "GPU tests: SKIPPED" "generic path cases: SKIPPED" "torch modules on CUDA: " \
            "compute-sanitizer" "demo: exit 0" "mechanisms: exit 77" "CPU direction teams: " \
            "total check time:"; do
  grep -q "$line" "$out/table.txt" || fail "table.txt lacks '$line'"
done
for log in gpu_tests.log sanitizer.log bench.log demo.log mechanisms.log; do
  tar tzf "$out/logs.tgz" | grep -qx "$log" || fail "logs.tgz lacks $log"
done
took=$(grep 'total check time' "$out/table.txt")
# With no time left (CHECK_BUDGET_S=0) every step that needs the GPU says so, and the summary
# still comes out: what a device session gets back when its GPU is slower than planned.
rm -rf "${out:?}"/*
OUT="$out" CHECK_BUDGET_S=0 timeout 120 bash "$src/bench/gpu/check.sh" "$build" --mechanisms \
  > "$out/stdout.txt" 2>&1
rc=$?
[ "$rc" = 1 ] || fail "check.sh with CHECK_BUDGET_S=0 exited $rc (expected 1)"
[ -f "$out/table.txt" ] || fail "no table.txt with CHECK_BUDGET_S=0"
for line in "GPU tests: not run: time budget" "generic path cases: not run: time budget" \
            "demo: not run: time budget" "mechanisms: not run: time budget" \
            "rows not run: time budget"; do
  grep -q "$line" "$out/table.txt" || fail "with CHECK_BUDGET_S=0, table.txt lacks '$line'"
done
# A second run of a session (--timings-only): the tests and sanitizers say they were skipped,
# and rows that could not run fail it (they are what it is for).
rm -rf "${out:?}"/*
OUT="$out" CHECK_BUDGET_S=60 timeout 120 bash "$src/bench/gpu/check.sh" "$build" --timings-only \
  > "$out/stdout.txt" 2>&1
rc=$?
[ "$rc" = 1 ] || fail "check.sh --timings-only exited $rc without a GPU (expected 1)"
for line in "GPU tests: not run (--timings-only)" "demo: not run (--timings-only)" \
            "compute-sanitizer (exit codes, 0 = clean): not run (--timings-only)" \
            "rows FAILED"; do
  grep -qF "$line" "$out/table.txt" || fail "with --timings-only, table.txt lacks '$line'"
done
OUT="$out" CHECK_BUDGET_S=soon bash "$src/bench/gpu/check.sh" "$build" > "$out/stdout.txt" 2>&1
[ $? = 2 ] || fail "check.sh took CHECK_BUDGET_S=soon"
echo "ok: check.sh ran to its summary without a GPU ($took), with no time budget, and" \
  "--timings-only"
