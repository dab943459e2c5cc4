#!/usr/bin/env bash
# The one prepared script for the H100 (see bench/anchors/README.md): finds cuBLAS and cuDNN,
# prints the machine, then runs cudnn_anchor --check, ceilings, the cuDNN grid and the PyTorch
# grid, writes every CSV under $OUT and prints a compact table last.  About 4-5 minutes.
#
#   bench/anchors/run.sh [BUILD_DIR]      BUILD_DIR: the carried build folder
#                                         (default: <repo>/build-anchors)
# Environment: OUT (default ./out), ANCHORS_CUDNN_BUDGET_S (130), ANCHORS_TORCH_BUDGET_S (70),
#              ANCHORS_TARGET_MS (timed milliseconds per configuration, 60).
# Files under $OUT: log.txt check.txt ceilings.csv cudnn.csv pytorch.csv meta.txt
#                   anchors-h100.csv (all of it merged, stamped with card/driver/versions/date).
# Exit code: 0 when every step ran (a step that found no GPU counts as ran), else 1.
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build-anchors}"
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
OUT="${OUT:-./out}"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
log="$OUT/log.txt"
: >"$log"
cudnn_budget="${ANCHORS_CUDNN_BUDGET_S:-130}"
torch_budget="${ANCHORS_TORCH_BUDGET_S:-70}"
target_ms="${ANCHORS_TARGET_MS:-60}"
status=0
t_start=$(date +%s)

say() { echo "$@" | tee -a "$log"; }
# step NAME TIMEOUT_S CMD...: runs CMD with its output shown and logged; notes a failure.
step() {
  local name="$1" limit="$2"
  shift 2
  say "== $name ($(($(date +%s) - t_start)) s in)"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    say "!! $name: exit code $rc$([ "$rc" -eq 124 ] && echo " (timed out after ${limit} s)")"
    status=1
  fi
  return "$rc"
}

# ---- the machine ---------------------------------------------------------------------------
say "== machine ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
{ nvidia-smi || echo "nvidia-smi failed or absent"; } 2>&1 | tee -a "$log"
card="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)"
{ command -v nvcc >/dev/null && nvcc --version | tail -2; } 2>&1 | tee -a "$log"
torch_ver="$(python3 -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())' 2>/dev/null || echo "not importable")"
say "python3: $(command -v python3) $(python3 --version 2>&1); torch: $torch_ver"
[ -n "${NVIDIA_TF32_OVERRIDE:-}" ] && say "WARNING: NVIDIA_TF32_OVERRIDE=$NVIDIA_TF32_OVERRIDE changes TF32 behaviour"

# ---- the libraries -------------------------------------------------------------------------
say "== looking for cuDNN 9 and cuBLAS 13"
if [ -r "${SLSTM_FIND_CACHE:-}" ]; then  # bench/gpu/check.sh's one pass over / (same names)
  found="$(grep -E '/lib(cudnn\.so\.9|cublas\.so\.13)' "$SLSTM_FIND_CACHE")"
else
  found="$(find / \( -path /proc -o -path /sys -o -path /dev -o -path "$OUT" \) -prune -o \
    \( -name 'libcudnn.so.9*' -o -name 'libcublas.so.13*' \) -print 2>/dev/null)"
fi
cudnn_dirs=()
cublas_dir=""
while IFS= read -r d; do
  [ -n "$d" ] || continue
  if ls "$d"/libcudnn_adv.so.9* >/dev/null 2>&1; then cudnn_dirs+=("$d"); fi
done < <(echo "$found" | grep '/libcudnn\.so\.9' | xargs -r -n1 dirname | sort -u)
while IFS= read -r d; do
  [ -n "$d" ] || continue
  if ls "$d"/libcublasLt.so.13* >/dev/null 2>&1; then cublas_dir="$d"; break; fi
done < <(echo "$found" | grep '/libcublas\.so\.13' | xargs -r -n1 dirname | sort -u |
  awk '/\/usr\/local\/cuda/ {print; next} {rest = rest $0 "\n"} END {printf "%s", rest}')
say "cuBLAS: ${cublas_dir:-NOT FOUND}; cuDNN candidates: ${cudnn_dirs[*]:-NONE}"

# ---- the binaries (built here only when the carried folder has none) -----------------------
anchor="$build/bench/anchors/cudnn_anchor"
ceilings="$build/bench/anchors/ceilings"
if [ ! -x "$anchor" ] || [ ! -x "$ceilings" ]; then
  say "== no carried binaries in $build: building into $root/build-anchors-device"
  build="$root/build-anchors-device"
  hint=()
  [ ${#cudnn_dirs[@]} -gt 0 ] && hint=("-DSLSTM_CUDNN_ROOT=$(dirname "${cudnn_dirs[0]}")")
  step "cmake configure" 120 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DSLSTM_BUILD_TESTS=OFF -DSLSTM_BUILD_EXAMPLES=OFF "${hint[@]}"
  step "cmake build" 300 cmake --build "$build" -j 16 --target cudnn_anchor ceilings
  anchor="$build/bench/anchors/cudnn_anchor"
  ceilings="$build/bench/anchors/ceilings"
fi
libpath() { echo "$1${cublas_dir:+:$cublas_dir}:$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; }

# Newest cuDNN first; keep the first one whose --check --quick passes on this GPU.
ranked="$(for d in "${cudnn_dirs[@]}"; do
  v="$(LD_LIBRARY_PATH="$(libpath "$d")" "$anchor" --version 2>/dev/null |
    sed -n 's/.*library \([0-9]*\).*/\1/p')"
  echo "${v:-0} $d"
done | sort -rn)"
say "cuDNN versions found (version dir):"
say "$ranked"
cudnn_dir=""
cudnn_ver=""
no_device=""
while read -r v d; do
  [ -n "${d:-}" ] || continue
  probe="$(LD_LIBRARY_PATH="$(libpath "$d")" timeout 60 "$anchor" --check --quick 2>&1)"
  say "$probe"
  if echo "$probe" | grep -q 'no CUDA device'; then
    no_device="$(echo "$probe" | grep 'no CUDA device' | head -1)"
    break
  elif echo "$probe" | grep -q 'CHECK PASS'; then
    cudnn_dir="$d"
    cudnn_ver="$v"
    break
  fi
  say "cuDNN in $d did not pass the quick probe"
done <<<"$ranked"
if [ -n "$no_device" ]; then
  say "== $no_device"
  say "== nothing to time on this machine; run this script on the H100 (bench/anchors/README.md)"
  exit 0
fi
if [ -z "$cudnn_dir" ]; then
  say "!! no cuDNN passed the quick probe; cuDNN rows will fail"
  status=1
  cudnn_dir="${cudnn_dirs[0]:-}"
fi
LD_LIBRARY_PATH="$(libpath "$cudnn_dir")"
export LD_LIBRARY_PATH
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
versions="$("$anchor" --version 2>&1)"
say "$versions"
cuda_rt="$(echo "$versions" | sed -n 's/.*CUDA runtime \([0-9]*\), driver \([0-9]*\).*/runtime \1 driver-api \2/p')"

{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "card=$card"
  echo "driver=$driver"
  echo "cuda=$cuda_rt"
  echo "cudnn=$cudnn_ver"
  echo "torch=$torch_ver"
} >"$OUT/meta.txt"

# ---- the runs ------------------------------------------------------------------------------
# shellcheck disable=SC2016  # $0 and $1 expand in the inner shell
step "cudnn_anchor --check (cuDNN vs libstacklstm CPU reference)" 120 \
  bash -o pipefail -c '"$0" --check | tee "$1"' "$anchor" "$OUT/check.txt"
step "ceilings" 90 "$ceilings" --csv "$OUT/ceilings.csv"
step "cuDNN grid (budget ${cudnn_budget} s)" $((cudnn_budget + 60)) \
  "$anchor" --grid "$here/grid.csv" --csv "$OUT/cudnn.csv" --budget-s "$cudnn_budget" \
  --target-ms "$target_ms" --max-reps 100
step "PyTorch grid (budget ${torch_budget} s)" $((torch_budget + 60)) \
  env PYTHONUNBUFFERED=1 python3 "$here/pytorch_anchor.py" --grid "$here/grid.csv" \
  --csv "$OUT/pytorch.csv" --budget-s "$torch_budget" --target-ms "$target_ms" --max-reps 100

say "== done in $(($(date +%s) - t_start)) s; files in $OUT"
python3 "$here/summarize.py" --dir "$OUT" --out "$OUT/anchors-h100.csv" 2>&1 | tee -a "$log"
exit "$status"
