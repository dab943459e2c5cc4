#!/usr/bin/env python3
"""CPU benchmark: libstacklstm's CPU fast path (and, where cheap, its reference path) against
PyTorch nn.LSTM on the CPU, same thread count, inference mode, in one run.

  python3 bench/cpu/bench_cpu.py --bin BUILD/bench/cpu/slstm_bench_cpu [--quick]
          [--threads N] [--out-dir bench/results]

Writes <out-dir>/cpu.csv and <out-dir>/cpu.md.  Per shape: median wall time of one forward
call (time-major input, initial state given, output and final state written), PyTorch's
median for the same shape, their ratio (torch / ours: > 1 means we are faster), and the floor
= FLOPs / the machine's measured SGEMM peak (a large cblas_sgemm timed in this run).
Run it through bench/cpu/run.sh, which builds the driver and unsets OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE for the benchmark only.
"""

import argparse
import csv
import datetime
import os
import platform
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def shapes():
    s = [dict(name="seed_T1", hidden=[100, 200, 300], input=128, batch=10, time=1),
         dict(name="seed_T100", hidden=[100, 200, 300], input=128, batch=10, time=100)]
    for h in (256, 512, 1024, 1536, 2048):
        t = 150 if h == 256 else 50 if h == 1536 else 25
        for b in (1, 4):
            s.append(dict(name=f"deepbench_H{h}_B{b}_T{t}", hidden=[h], input=h, batch=b, time=t))
    s.append(dict(name="2x512_B64_T100", hidden=[512, 512], input=512, batch=64, time=100))
    return s


def flops(s):
    total, inp = 0.0, s["input"]
    for h in s["hidden"]:
        total += 8.0 * s["batch"] * s["time"] * h * (inp + h)
        inp = h
    return total


def parse_kv(line):
    out = {}
    for m in re.finditer(r'(\w+)=("([^"]*)"|\S+)', line):
        out[m.group(1)] = m.group(3) if m.group(3) is not None else m.group(2)
    return out


def run_bin(args, env=None):
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr.strip()}")
    return parse_kv(r.stdout.strip().splitlines()[-1])


def ours(binary, s, path, threads, seconds):
    kv = run_bin([binary, "lstm", "--path", path, "--threads", str(threads),
                  "--input", str(s["input"]), "--hidden", ",".join(map(str, s["hidden"])),
                  "--batch", str(s["batch"]), "--time", str(s["time"]),
                  "--seconds", str(seconds), "--min-iters", "3"])
    return float(kv["ms"]), float(kv["ms_min"])


def torch_time(torch, s, threads, seconds):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hs = s["hidden"]
    if all(h == hs[0] for h in hs) and s["input"] == hs[0]:
        mods = [torch.nn.LSTM(s["input"], hs[0], num_layers=len(hs))]
    else:
        mods, inp = [], s["input"]
        for h in hs:
            mods.append(torch.nn.LSTM(inp, h))
            inp = h
    for m in mods:
        m.eval()
    x = torch.randn(s["time"], s["batch"], s["input"])
    states = [(torch.full((m.num_layers, s["batch"], m.hidden_size), 0.1),
               torch.full((m.num_layers, s["batch"], m.hidden_size), 0.1)) for m in mods]

    def call():
        y = x
        for m, st in zip(mods, states):
            y, _ = m(y, st)
        return y

    with torch.inference_mode():
        call()
        ts = []
        start = time.perf_counter()
        while len(ts) < 3 or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            call()
            ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1e3, ts[0] * 1e3


def lscpu_model():
    """lscpu's model name, with family/model numbers, caches and whether AVX-512 is there."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or "unknown"
    f = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            f[k.strip()] = v.strip()
    avx = "AVX-512" if " avx512f" in " " + f.get("Flags", "") else "no AVX-512"
    return (f"{f.get('Model name', 'unknown')} (family {f.get('CPU family', '?')} model "
            f"{f.get('Model', '?')}, {avx}, L2 {f.get('L2 cache', '?')}, "
            f"L3 {f.get('L3 cache', '?')})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--quick", action="store_true", help="short timings (a few minutes)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out-dir", default=os.path.join(HERE, "..", "results"))
    ap.add_argument("--rounds", type=int, default=0, help="alternating rounds per shape")
    a = ap.parse_args()
    seconds = 0.4 if a.quick else 3.0
    if a.rounds < 1:
        a.rounds = 1 if a.quick else 3
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch, torch_version = None, "not installed"

    # The machine's SGEMM peak with OpenBLAS as it selects its kernel here, and, on AVX-512
    # CPUs, with OpenBLAS's AVX-512 kernel forced for this measurement only (Debian's 0.3.21
    # may not recognise a newer CPU and fall back to an old kernel).  The floor uses the best.
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    peak_auto = run_bin([a.bin, "peak", "--threads", str(a.threads), "--seconds",
                         str(seconds * 2)], env)
    peaks = [peak_auto]
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        flags = ""
    if " avx512f" in flags:
        peaks.append(run_bin([a.bin, "peak", "--threads", str(a.threads), "--seconds",
                              str(seconds * 2)], dict(env, OPENBLAS_CORETYPE="SkylakeX")))
    best = max(peaks, key=lambda p: float(p["gflops"]))
    peak_gflops = float(best["gflops"])
    # The arithmetic ceiling: register-only FMAs on the same threads (best of the runs).
    # Measured on all threads at once and on one (times the thread count): a busy machine
    # lowers the first, so the ceiling is the larger.
    one = run_bin([a.bin, "peak", "--threads", "1", "--size", "1024", "--seconds", "0.5"], env)
    fma_gflops = max([float(p["fma_gflops"]) for p in peaks] +
                     [float(one["fma_gflops"]) * a.threads])

    rows = []
    for s in shapes():
        f = flops(s)
        # Rounds alternate ours and PyTorch so that both see the same machine; each side's
        # time is its best round median (the machine may be shared: see the load average).
        fast_ms = fast_min = t_ms = t_min = float("inf")
        for _ in range(a.rounds):
            m, mn = ours(a.bin, s, "fast", a.threads, seconds / a.rounds)
            fast_ms, fast_min = min(fast_ms, m), min(fast_min, mn)
            if torch is not None:
                m, mn = torch_time(torch, s, a.threads, seconds / a.rounds)
                t_ms, t_min = min(t_ms, m), min(t_min, mn)
        if torch is None:
            t_ms = t_min = float("nan")
        ref_ms = ""
        if f <= 0.5e9 and not (a.quick and f > 1e8):
            ref_ms = "%.3f" % ours(a.bin, s, "reference", a.threads, seconds / 4)[0]
        floor_ms = f / (peak_gflops * 1e9) * 1e3
        fma_floor_ms = f / (fma_gflops * 1e9) * 1e3
        row = dict(shape=s["name"], layers=len(s["hidden"]),
                   hidden=":".join(map(str, s["hidden"])), input=s["input"],
                   batch=s["batch"], time=s["time"], threads=a.threads, gflop="%.4f" % (f * 1e-9),
                   fast_ms="%.3f" % fast_ms, fast_min_ms="%.3f" % fast_min, reference_ms=ref_ms,
                   torch_ms="%.3f" % t_ms, torch_min_ms="%.3f" % t_min,
                   torch_over_fast="%.2f" % (t_ms / fast_ms),
                   fast_gflops="%.1f" % (f / fast_ms * 1e-6),
                   floor_ms="%.3f" % floor_ms, fast_over_floor="%.2f" % (fast_ms / floor_ms),
                   fma_floor_ms="%.3f" % fma_floor_ms,
                   fast_over_fma_floor="%.2f" % (fast_ms / fma_floor_ms))
        rows.append(row)
        print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)

    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "cpu.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "?"
    with open(os.path.join(a.out_dir, "cpu.md"), "w") as fh:
        fh.write("# CPU benchmark: libstacklstm fast path vs PyTorch nn.LSTM\n\n")
        fh.write(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}"
                 f"{' (quick mode)' if a.quick else ''}\n")
        fh.write(f"- machine: {lscpu_model()}, {os.cpu_count()} logical CPUs; load average "
                 f"at the end {load}\n")
        fh.write(f"- threads: {a.threads} (our session num_threads, torch.set_num_threads, "
                 f"OPENBLAS_NUM_THREADS for the peak)\n")
        fh.write(f"- PyTorch {torch_version}, CPU, eval + inference_mode, time-major input\n")
        for p in peaks:
            fh.write(f"- SGEMM peak ({p['size']}^3 cblas_sgemm): {float(p['gflops']):.1f} "
                     f"GFLOP/s with OpenBLAS kernel `{p['corename']}` ({p['config']})"
                     f"{' [kernel forced by OPENBLAS_CORETYPE for this line only]' if p is not peak_auto else ' [as selected at run time]'}\n")
        fh.write(f"- floor = FLOPs / {peak_gflops:.1f} GFLOP/s (the best SGEMM peak above); "
                 f"FMA floor = FLOPs / {fma_gflops:.1f} GFLOP/s (register-only AVX-512 FMAs: the "
                 f"larger of {a.threads} threads measured together and {a.threads} x one "
                 f"thread; the arithmetic ceiling, which no GEMM reaches)\n")
        fh.write("- OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for the run (bench/cpu/run.sh).\n"
                 "  On AVX-512 CPUs the fast path runs its own packed AVX-512 kernels for both\n"
                 "  GEMMs, so its time does not depend on the OpenBLAS kernel selected.\n\n")
        fh.write("| shape | GFLOP | ours fast ms | ours ref ms | PyTorch ms | PyTorch/ours | "
                 "ours GFLOP/s | SGEMM floor ms | ours/floor | FMA floor ms | ours/FMA floor |\n")
        fh.write("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for r in rows:
            fh.write(f"| {r['shape']} | {r['gflop']} | {r['fast_ms']} | {r['reference_ms'] or '-'}"
                     f" | {r['torch_ms']} | {r['torch_over_fast']} | {r['fast_gflops']} | "
                     f"{r['floor_ms']} | {r['fast_over_floor']} | {r['fma_floor_ms']} | "
                     f"{r['fast_over_fma_floor']} |\n")
        fh.write(f"\nTimes: per shape, {a.rounds} round(s) alternating ours and PyTorch; in each "
                 "round the median of repeated calls after one warm-up call; the table shows "
                 "each side's best round (cpu.csv also has the fastest single calls). "
                 "PyTorch/ours > 1 means libstacklstm is faster.\n")
        fh.write("\nCaveat: this is a 2-CPU VM shared with other jobs (load average above). PyTorch's "
                 "times swing widely between runs here (seed_T100 from ~25 ms to seconds): its "
                 "OpenMP workers stall when another job holds a core; ours use one barrier per "
                 "step that yields after a short spin, and fewer workers on small problems. "
                 "Compare ratios from one run only.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
