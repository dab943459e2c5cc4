#!/usr/bin/env bash
# The device check of the mechanisms the persistent recurrent kernel depends on (issue 19,
# item 4; what each number decides: bench/gpu/README.md). About 1-2 minutes on an H100/H200
# (estimated: not yet run on a GPU); needs no compiler there, only the binaries built here.
#
#   OUT=<log folder> bench/gpu/mechanisms.sh [BUILD=build-gpu] [--quick] [--parts 1,2,...]
#
# BUILD is a build folder with bench/gpu/slstm_gpu_mechanisms (a full build, or the folder
# pack_carry.sh makes with the binary copied in; README.md says how). Puts the libraries'
# folders on LD_LIBRARY_PATH (find_libs.sh; part 6 loads the CUDA module, which needs
# cuBLAS), prints the device and driver, runs the program under a hard `timeout`, and writes
# to $OUT (default ./out):
#   mechanisms.log  the program's full output (one MEAS line per measurement);
#   mechanisms.md   date, device, driver, the binaries' commit, exit status, and the table
#                   (a placeholder saying the run did not finish is written before the run).
# MECH_TIMEOUT_S (240 s by default) bounds the whole script, not just the program: check.sh
# passes the time it has left for this step. The program gets what is left of it after the
# library search and nvidia-smi (at least 30 s), less 5 s for the kill and the summary.
# The table is printed last. Exit status: 0 when every measurement ran and every check in it
# was right; 77 when there is no usable GPU (the program's reason is printed); otherwise
# non-zero (1 failed measurements, 3 a kernel past its host deadline, 124 or 137 the program
# past what was left of MECH_TIMEOUT_S, 2 usage).
set -u
start=$(date +%s)
budget=${MECH_TIMEOUT_S:-240}
case $budget in
  ''|*[!0-9]*) echo "mechanisms.sh: MECH_TIMEOUT_S must be whole seconds"; exit 2 ;;
esac
build_arg=build-gpu
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) args+=("$1") ;;
    --parts) [ $# -ge 2 ] || { echo "mechanisms.sh: --parts needs a value"; exit 2; }
             args+=("$1" "$2"); shift ;;
    -*) echo "mechanisms.sh: unknown option $1"; exit 2 ;;
    *) build_arg=$1 ;;
  esac
  shift
done
BUILD=$(cd "$build_arg" 2>/dev/null && pwd) || { echo "mechanisms.sh: no build folder $build_arg"; exit 2; }
BIN="$BUILD/bench/gpu/slstm_gpu_mechanisms"
[ -x "$BIN" ] || { echo "mechanisms.sh: $BIN missing (build the target slstm_gpu_mechanisms)"; exit 2; }
OUT=${OUT:-./out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/mechanisms.log"
MD="$OUT/mechanisms.md"
# Until the run ends, mechanisms.md says it did not (a caller that kills this script still
# finds the file, and mechanisms.log with every MEAS line so far).
{
  echo "# slstm_gpu_mechanisms (issue 19 item 4)"
  echo
  echo "- started $(date -u +%Y-%m-%dT%H:%MZ); did not finish (killed from outside?):"
  echo "  see mechanisms.log for the MEAS lines measured so far"
} > "$MD"

{
  echo "=== device and driver"
  date -u
  timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm \
      --format=csv 2>&1 || echo "nvidia-smi failed or missing"
  echo "=== libraries"
  # shellcheck source=find_libs.sh
  . "$(dirname "$0")/find_libs.sh"
  slstm_find_libs "$BUILD"
  ldd "$BIN" | grep -E "not found|stacklstm" || true
} > "$LOG" 2>&1
# The device line from the query above (no second nvidia-smi call to wait for).
DEVICE=$(awk -F', *' 'f && NF >= 2 {print $1 ", " $2; exit} /^name, driver_version/ {f = 1}' "$LOG")

# What is left of MECH_TIMEOUT_S, less 5 s for `timeout -k` and the summary; at least 30 s.
prog_s=$(( budget - ($(date +%s) - start) - 5 ))
[ "$prog_s" -ge 30 ] || prog_s=30
echo "=== slstm_gpu_mechanisms ${args[*]:-} (timeout $prog_s s of MECH_TIMEOUT_S=$budget)" >> "$LOG"
timeout -k 3 "$prog_s" "$BIN" "${args[@]}" >> "$LOG" 2>&1
rc=$?
[ "${FOUND_OWNED:-0}" = 1 ] && rm -f "$FOUND" && unset SLSTM_FIND_CACHE

case $rc in
  0) verdict="every measurement ran and every check was right" ;;
  77) verdict="no GPU: $(grep -m1 '^no usable GPU' "$LOG" || echo 'no usable GPU (no reason printed)')" ;;
  1) verdict="FAILED: $(grep -m1 '^failures:' "$LOG") (rows with TIMEOUT, WRONG or ERROR)" ;;
  3) verdict="FAILED: a kernel did not finish within its host deadline (TIMEOUT row; later parts not run)" ;;
  124|137) verdict="FAILED: the program passed its $prog_s s (what was left of MECH_TIMEOUT_S"
           verdict+="=$budget s) and was killed (the rows measured so far are below)" ;;
  *) verdict="FAILED: exit $rc" ;;
esac
{
  echo "# slstm_gpu_mechanisms (issue 19 item 4)"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- device, driver: ${DEVICE:-unknown (nvidia-smi gave nothing)}"
  echo "- binaries built from: $(cat "$BUILD/COMMIT" 2>/dev/null || echo 'unknown (no COMMIT file)')"
  echo "- exit status $rc: $verdict"
  echo "- run time: $(( $(date +%s) - start )) s"
  echo
  if grep -q '^=== TABLE BEGIN' "$LOG"; then
    sed -n '/^=== TABLE BEGIN/,/^=== TABLE END/p' "$LOG" | grep '^|'
  elif grep -q '^MEAS ' "$LOG"; then
    echo "(no final table: the program did not finish; its MEAS lines)"
    echo
    echo '```'
    grep '^MEAS ' "$LOG"
    echo '```'
  fi
} > "$MD"
cat "$MD"
exit "$rc"
