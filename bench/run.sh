#!/usr/bin/env bash
# The benchmark in one command (issue 5; bench/README.md): the grid bench/anchors/grid.csv,
# shape by shape, on every backend present, with the floor of each row; writes
# bench-cpu.{csv,md,png} and, where a GPU is usable, bench-gpu.{csv,md,png} (+ anchors-h100.csv
# and bench-gpu-log.txt) to the output folder, and prints compact tables last.  It never
# asserts speed: exit 0 unless a step broke.
#
#   bash bench/run.sh [--quick] [--out DIR] [--cpu-only | --gpu-only] [--only A,B,..]
#                     [--threads N] [--rounds N] [--seconds X] [--no-torch] [--no-ort] [--no-install]
#                     [--build DIR] [--cpu-bin PATH] [--gpu-build DIR] [--smoke]
#
#   --quick       a subset of the grid and shorter timings (CPU: a few minutes)
#   --out DIR     where the results go (default bench/results)
#   --only A,B    these grid rows only (names from grid.csv)
#   --rounds N    CPU: alternating rounds of ours / PyTorch per shape (default 3, quick 1)
#   --seconds X   CPU: timed seconds per shape and side (default 3, quick 0.4)
#   --build DIR   CPU build folder (default $BUILD_DIR or build-bench); --cpu-bin: a built
#                 slstm_bench_cpu (nothing is built then)
#   --gpu-build DIR  a folder made by bench/gpu/pack_carry.sh, or a CUDA build folder
#                 (default: build-gpu, else the CPU build folder)
#   --no-torch    leave PyTorch CPU out; --no-install: never pip-install torch or onnxruntime
#   --no-ort      leave ONNX Runtime (the second CPU anchor, bench/cpu/ort_anchor.py) out; it runs
#                 when a python3 here imports onnxruntime and onnx, else they are pip-installed
#                 into BUILD/ort-venv (not with --no-install or --smoke)
#   --smoke       the CI smoke test: seed_T1 only, one short round, small ceilings, no torch;
#                 ONNX Runtime when importable (SLSTM_ORT_PYTHON, python3, BUILD/ort-venv)
# Environment: PYTHON (a python3 with torch; else, of those found, the newest torch is used),
#   BENCH_OURS_GPU_BUDGET_S (90),
#   ANCHORS_CUDNN_BUDGET_S / ANCHORS_TORCH_BUDGET_S / ANCHORS_TARGET_MS (bench/anchors/run.sh).
# On this project's CPU machines OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set for the tests:
# the CPU part runs without them and reports the OpenBLAS kernel selected.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
grid="$root/bench/anchors/grid.csv"
quick=0 smoke=0 do_cpu=1 do_gpu=1 only="" threads="" rounds="" seconds="" no_torch=0 no_ort=0
no_install=0 out="$root/bench/results" build="${BUILD_DIR:-build-bench}" cpu_bin="" gpu_build=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --smoke) smoke=1 ;;
    --cpu-only) do_gpu=0 ;;
    --gpu-only) do_cpu=0 ;;
    --no-torch) no_torch=1 ;;
    --no-ort) no_ort=1 ;;
    --no-install) no_install=1 ;;
    --out) out="$2"; shift ;;
    --only) only="$2"; shift ;;
    --threads) threads="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --build) build="$2"; shift ;;
    --cpu-bin) cpu_bin="$2"; shift ;;
    --gpu-build) gpu_build="$2"; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1 (--help)"; exit 2 ;;
  esac
  shift
done
# Paths given on the command line are relative to where the command was started.
abs() { case "$1" in /*|"") echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
out="$(abs "$out")" cpu_bin="$(abs "$cpu_bin")" gpu_build="$(abs "$gpu_build")"
case "$build" in "${BUILD_DIR:-build-bench}") ;; *) build="$(abs "$build")" ;; esac
cd "$root"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/slstm-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
status=0
t0=$(date +%s)
say() { printf '\n== %s (%s s)\n' "$*" "$(($(date +%s) - t0))"; }
if [ "$smoke" = 1 ]; then
  only="${only:-seed_T1}" rounds=1 seconds="${seconds:-0.05}" no_torch=1 no_install=1
fi
if [ "$quick" = 1 ] && [ -z "$only" ]; then
  only="seed_T1,seed_T100,inf_H256_B1_T150,inf_H1024_B1_T25,inf_H2048_B4_T25"
  only="$only,train_H512_B64_T25,train_H1024_B16_T25,L4_H512_B64_T100"
fi
py_with() {  # py_with MODULE: the first python3 that imports MODULE
  local c
  for c in ${PYTHON:-} python3 /usr/bin/python3 /tmp/fixenv/bin/python "$root/$build/torch-venv/bin/python"; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c "import $1" >/dev/null 2>&1; then
      echo "$c"
      return 0
    fi
  done
  return 1
}
plot_py="$(py_with matplotlib || echo python3)"
torch_py() {  # the python3 here with the newest importable torch
  local c v
  if [ -n "${PYTHON:-}" ] && "$PYTHON" -c 'import torch' >/dev/null 2>&1; then echo "$PYTHON"; return; fi
  for c in python3 /usr/bin/python3 /tmp/fixenv/bin/python "$root/$build/torch-venv/bin/python"; do
    command -v "$c" >/dev/null 2>&1 || continue
    v="$("$c" -c 'import torch; print(torch.__version__)' 2>/dev/null)" || continue
    echo "$v $c"
  done | sort -V -k1,1 | tail -1 | cut -d' ' -f2-
}

# =========================== CPU: ours (fast, reference) and PyTorch ==========================
if [ "$do_cpu" = 1 ]; then
  say "CPU part"
  if [ -z "$cpu_bin" ]; then
    if [ ! -f "$build/CMakeCache.txt" ]; then
      cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSLSTM_BUILD_BENCH=ON \
        > "$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
    fi
    cmake --build "$build" -j"$(nproc)" --target slstm_bench_cpu > "$work/build.log" 2>&1 ||
      { cat "$work/build.log"; echo "bench/run.sh: building slstm_bench_cpu failed"; exit 1; }
    cpu_bin="$build/bench/cpu/slstm_bench_cpu"
  fi
  [ -x "$cpu_bin" ] || { echo "bench/run.sh: no CPU driver at $cpu_bin (needs OpenBLAS)"; exit 1; }
  py=""
  if [ "$no_torch" = 0 ]; then
    py="$(torch_py)"
    if [ -z "$py" ] && [ "$no_install" = 0 ]; then
      echo "torch not importable: pip-installing it (CPU wheel) into $build/torch-venv"
      python3 -m venv "$build/torch-venv" &&
        { "$build/torch-venv/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu ||
          "$build/torch-venv/bin/pip" install -q torch; } && py="$build/torch-venv/bin/python"
      "${py:-false}" -c 'import torch' 2>/dev/null || py=""
    fi
    [ -n "$py" ] || echo "PyTorch CPU left out: no python3 here imports torch"
  fi
  py="${py:-python3}"
  threads="${threads:-$(nproc)}"
  args=(--bin "$cpu_bin" --grid "$grid" --threads "$threads" --long-csv "$work/cpu-timings.csv"
        --machine-csv "$work/cpu-ceilings.csv")
  [ -n "$only" ] && args+=(--only "$only")
  [ "$quick" = 1 ] && args+=(--quick)
  [ -n "$rounds" ] && args+=(--rounds "$rounds")
  [ -n "$seconds" ] && args+=(--seconds "$seconds")
  [ "$no_torch" = 1 ] && args+=(--no-torch)
  [ "$no_ort" = 1 ] && args+=(--no-ort)
  [ "$no_ort" = 0 ] && [ "$no_install" = 0 ] && args+=(--install-ort)
  [ "$smoke" = 1 ] && args+=(--peak-size 512 --copy-mib 16 --probe-size 256 --probe-seconds 0.02)
  load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "python: $py; threads: $threads; load average before: $load_before"
  if env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONUNBUFFERED=1 "$py" \
       bench/cpu/bench_cpu.py "${args[@]}"; then
    info() {  # a value of the "info" rows of the ceilings CSV (quoted fields hold commas)
      python3 -c 'import csv, sys
for r in csv.reader(open(sys.argv[1])):
    if r[:2] == ["info", sys.argv[2]]: print(r[2].replace("\n", " ")); break' "$work/cpu-ceilings.csv" "$1"
    }
    {
      echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
      echo "machine=$(info machine), $(nproc) logical CPUs"
      echo "threads=$threads"
      echo "commit=$(c="$(git rev-parse --short HEAD 2>/dev/null)" &&
        { git diff --quiet HEAD 2>/dev/null && echo "$c" || echo "$c + uncommitted changes"; } || echo '?')"
      echo "blas_kernel=$(info blas_kernel) (OpenBLAS, selected at run time; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset)"
      echo "torch=$(info torch) (CPU, eval + inference_mode)"
      echo "load=before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)"
      echo "mode=$([ "$smoke" = 1 ] && echo smoke || { [ "$quick" = 1 ] && echo quick || echo full; })${only:+ ($only)}"
    } > "$work/cpu-meta.txt"
    "$plot_py" bench/report.py --platform cpu --timings "$work/cpu-timings.csv" \
      --ceilings "$work/cpu-ceilings.csv" --meta "$work/cpu-meta.txt" \
      --out-prefix "$out/bench-cpu" \
      --title "libstacklstm CPU fast path vs PyTorch nn.LSTM and ONNX Runtime (CPU)" | tee "$work/cpu-table.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  else
    echo "bench/run.sh: the CPU benchmark failed"
    status=1
  fi
fi

# ================== GPU: ours (FP32, TF32), cuDNN 9 and PyTorch (bench/anchors) ================
gpu_skip() { say "GPU part skipped: $*"; }
if [ "$do_gpu" = 1 ]; then
  say "GPU part"
  if [ -z "$gpu_build" ]; then
    if [ -x build-gpu/bench/gpu/slstm_gpu_bench ]; then gpu_build=build-gpu; else gpu_build="$build"; fi
  fi
  gpu_build="$(cd "$gpu_build" 2>/dev/null && pwd || echo "$gpu_build")"
  gbench="$gpu_build/bench/gpu/slstm_gpu_bench"
  # The libraries, as bench/gpu/check.sh finds them.
  libdirs="$gpu_build"
  [ -d "$gpu_build/carry-libs" ] && libdirs="$libdirs:$gpu_build/carry-libs"
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    for want in libcublas.so.13 libcublasLt.so.13 libcudart.so.13; do
      if ! ldconfig -p 2>/dev/null | grep -q "$want"; then
        if [ -r "${SLSTM_FIND_CACHE:-}" ]; then  # bench/gpu/check.sh's one pass over /
          hit=$(grep -m1 "/$want" "$SLSTM_FIND_CACHE")
        else
          hit=$(find / \( -path /proc -o -path /sys \) -prune -o -name "$want*" -print 2>/dev/null | head -1)
        fi
        [ -n "$hit" ] && libdirs="$libdirs:$(dirname "$hit")"
      fi
    done
  fi
  export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  probe="" probe_rc=0
  if [ -x "$gbench" ]; then
    probe="$("$gbench" --label probe --input 4 --layers 4 --batch 1 --time 1 --reps 1 \
             --warmup 0 2>&1)"
    probe_rc=$?
  fi
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    gpu_skip "no usable GPU (no nvidia-smi on this machine)"
  elif ! nvidia-smi -L >/dev/null 2>&1; then
    gpu_skip "no usable GPU (nvidia-smi -L: $(nvidia-smi -L 2>&1 | head -1))"
  elif [ ! -x "$gbench" ]; then
    gpu_skip "no CUDA build: $gbench is missing (bench/README.md: build-cuda + pack_carry.sh)"
  elif [ "$probe_rc" -eq 77 ]; then
    gpu_skip "no usable GPU ($probe)"
  elif [ "$probe_rc" -ne 0 ]; then
    gpu_skip "slstm_gpu_bench does not run here (exit $probe_rc): $probe"
    status=1
  elif [ "$smoke" = 1 ]; then
    gpu_skip "a GPU is usable, but --smoke times nothing on it"
  else
    gpu_log="$out/bench-gpu-log.txt"
    : > "$gpu_log"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$gpu_log"
    # ---- ours: every grid row, FP32 strict and TF32, device buffers, CUDA events ---------
    budget="${BENCH_OURS_GPU_BUDGET_S:-90}"
    [ "$quick" = 1 ] && budget=$((budget / 2))
    say "ours on the GPU (budget $budget s)" | tee -a "$gpu_log"
    ours_csv="$work/ours-gpu.csv"
    timeout $((budget + 120)) "$gbench" --grid "$grid" ${only:+--only "$only"} \
      --precisions fp32,tf32 --budget-s "$budget" --backend cuda --memory device \
      --timer events --rotate 4 --warmup 3 --reps 5 --target-ms 60 --max-reps 100 \
      > "$work/ours-gpu.txt" 2>&1
    echo "slstm_gpu_bench --grid: exit $?" >> "$work/ours-gpu.txt"
    grep -q "unknown argument --grid" "$work/ours-gpu.txt" &&
      echo "!! $gbench predates --grid: rebuild and re-pack (bench/README.md)" | tee -a "$work/ours-gpu.txt"
    cat "$work/ours-gpu.txt" | tee -a "$gpu_log"
    # RESULT lines -> the anchors' timing columns; a configuration with no RESULT line is an
    # error row (the process stopped early), one past the budget a skipped row.
    python3 - "$grid" "$work/ours-gpu.txt" "$only" > "$ours_csv" <<'PY'
import sys
grid, txt, only = sys.argv[1], sys.argv[2], sys.argv[3]
keep = set(only.split(",")) if only else None
got, fail = {}, {}
for line in open(txt):
    f = line.split()
    if f[:1] == ["RESULT"] and len(f) > 4:
        kv = dict(x.split("=", 1) for x in f[4:] if "=" in x)
        got[(f[1], "tf32" if f[2].endswith("tf32") else "fp32")] = kv
    elif f[:1] in (["RESULT-FAILED"], ["RESULT-SKIPPED"]) and len(f) > 2:
        fail[(f[1], f[2])] = ("error" if f[0] == "RESULT-FAILED" else "skipped",
                              " ".join(f[3:]))
print("tool,shape,layers,hidden,input,batch,time,precision,algo,status,median_us,p10_us,"
      "p90_us,min_us,reps,us_per_step,gflops,setup_ms,note")
for line in open(grid):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    name, hidden, inp, batch, time = line.split(",")[:5]
    if keep is not None and name not in keep:
        continue
    for prec in ("fp32", "tf32"):
        pre = "ours_gpu,%s,%d,%s,%s,%s,%s,%s,cuda" % (name, len(hidden.split(":")), hidden, inp,
                                                     batch, time, prec)
        kv = got.get((name, prec))
        if kv:
            us = lambda k: "%.3f" % (float(kv[k]) * 1e3)
            print("%s,ok,%s,%s,%s,%s,%s,,,,timer %s; inputs rotate among %s; CUDA graphs" % (
                pre, us("median_ms"), us("p10_ms"), us("p90_ms"), us("min_ms"), kv["reps"],
                kv.get("timer", "?"), kv.get("rotate", "?")))
        else:
            st, note = fail.get((name, prec), ("error", "no RESULT line (see the log)"))
            print("%s,%s,,,,,,,,,%s" % (pre, st, note.replace(",", ";")))
PY
    grep -c ',ok,' "$ours_csv" | sed 's/^/ours_gpu rows timed: /'
    # ---- the anchors: cuDNN --check, ceilings, cuDNN grid, PyTorch grid (one script) -----
    if [ "$quick" = 1 ]; then
      export ANCHORS_CUDNN_BUDGET_S="${ANCHORS_CUDNN_BUDGET_S:-45}" ANCHORS_TORCH_BUDGET_S="${ANCHORS_TORCH_BUDGET_S:-30}"
    fi
    say "anchors (bench/anchors/run.sh)" | tee -a "$gpu_log"
    OUT="$work/anchors" bash bench/anchors/run.sh "$gpu_build" > "$work/anchors-stdout.txt" 2>&1 ||
      { echo "bench/anchors/run.sh reported a failure (see $gpu_log)"; status=1; }
    tail -40 "$work/anchors-stdout.txt"
    cat "$work/anchors/log.txt" >> "$gpu_log" 2>/dev/null
    a="$work/anchors"
    [ -f "$a/anchors-h100.csv" ] && cp "$a/anchors-h100.csv" "$out/anchors-h100.csv"
    [ -f "$a/meta.txt" ] && cp "$a/meta.txt" "$work/gpu-meta.txt" || : > "$work/gpu-meta.txt"
    {
      # The commit the binaries were built from (pack_carry.sh writes it; a device machine's
      # copy of the repository may carry an older .git).
      built="$(cat "$gpu_build/COMMIT" 2>/dev/null || git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"
      echo "ours=libstacklstm CUDA backend, device buffers, CUDA graphs (default), $built"
      [ -f "$a/check.txt" ] && echo "cudnn_check=$(grep -E 'CHECK (PASS|FAIL)' "$a/check.txt" | tail -1)"
      echo "mode=$([ "$quick" = 1 ] && echo quick || echo full)${only:+ ($only)}"
    } >> "$work/gpu-meta.txt"
    timings=("$ours_csv")
    for f in cudnn.csv pytorch.csv; do [ -f "$a/$f" ] && timings+=("$a/$f"); done
    "$plot_py" bench/report.py --platform gpu --timings "${timings[@]}" \
      --ceilings "$a/ceilings.csv" --meta "$work/gpu-meta.txt" --check "$a/check.txt" \
      --out-prefix "$out/bench-gpu" \
      --title "libstacklstm CUDA backend vs cuDNN 9 and PyTorch nn.LSTM (GPU)" |
      tee "$work/gpu-table.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  fi
fi

# --smoke (the CI test): the CSV and the markdown are there, with their columns; no timing checked.
if [ "$smoke" = 1 ] && [ "$do_cpu" = 1 ]; then
  python3 - "$out/bench-cpu.csv" "$out/bench-cpu.md" <<'PY' || status=1
import csv, sys
need = ["date", "machine", "threads", "blas_kernel", "torch", "platform", "tool", "shape",
        "precision", "algo", "status", "median_us", "p10_us", "p90_us", "reps", "us_per_step",
        "gflops", "spread_pct", "over_ours", "floor_flops_us", "floor_bytes_us",
        "floor_latency_us", "floor_us", "floor_bound", "over_floor", "beside_gflops",
        "pct_of_beside"]
rows = list(csv.DictReader(open(sys.argv[1])))
missing = [c for c in need if c not in (rows[0] if rows else {})]
ours = [r for r in rows if r["tool"] == "ours_cpu" and r["algo"] == "fast" and r["status"] == "ok"]
md = open(sys.argv[2]).read()
bad = []
if missing: bad.append("CSV lacks columns %s" % missing)
if not ours or not float(ours[0]["median_us"]) > 0 or not float(ours[0]["floor_us"]) > 0:
    bad.append("CSV has no timed ours_cpu row with a floor")
elif not float(ours[0]["beside_gflops"] or 0) > 0 or not float(ours[0]["pct_of_beside"] or 0) > 0:
    bad.append("the ours_cpu row has no SGEMM rate probed beside it")
for col in ("| shape |", "ours ms", "PyTorch/ours", "ORT/ours", "floor ms", "ours/floor",
            "SGEMM beside GFLOP/s", "ours % of it"):
    if col not in md: bad.append("markdown lacks %r" % col)
# ONNX Runtime: when it ran, its row is timed and its output matched our reference; when it
# did not, the report says why.
ort = [r for r in rows if r["tool"] == "ort_cpu"]
if ort:
    if ort[0]["status"] != "ok" or ort[0].get("check") != "pass":
        bad.append("ORT row: status %s, check %s (%s)" % (ort[0]["status"], ort[0].get("check"),
                                                         ort[0]["note"][-200:]))
elif "ORT columns are `-`" not in md:
    bad.append("no ORT row and the markdown does not say why")
print("SMOKE ORT: %s" % ("ran, output matches our reference (max rel err %s)" % ort[0].get("max_rel_err")
                        if ort else "skipped: " + next((l for l in md.splitlines()
                                                        if "ORT columns are" in l), "?")))
print("SMOKE %s: %s" % ("FAIL" if bad else "PASS", "; ".join(bad) or
      "%d CSV rows, markdown table present (no timing is checked)" % len(rows)))
sys.exit(1 if bad else 0)
PY
fi

# ================================= the compact tables, last ===================================
say "done: exit status $status"
if [ "$do_cpu" = 1 ] && [ "$do_gpu" = 1 ] && [ -s "$work/gpu-table.txt" ]; then
  cat "$work/cpu-table.txt" "$work/gpu-table.txt"  # both tables at the end of the output
fi
exit "$status"
