#!/usr/bin/env python3
"""cpu.calibration A/B (issue 18): the fast path with its work-sharing thresholds measured on
this machine (the default) against the built-in constants (cpu.calibration=fixed), same
binary, same shapes, alternating rounds in one run.  Neither changes a result (a test checks
that bit for bit); this says what it changes in time.

  python3 bench/cpu/calibration_ab.py --bin BUILD/bench/cpu/slstm_bench_cpu [--threads N]
          [--rounds R] [--seconds X] [--out FILE.md]

Per shape: the median over rounds of each side's median call time, and fixed / measured (> 1:
the measured thresholds are faster).  The plan of each side (slstm_session_describe) is not
printed here; `stacklstm` sessions report it.  Run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
unset, as every benchmark (they do not matter here: no OpenBLAS call is timed).
"""

import argparse
import datetime
import os
import statistics
import subprocess

# (name, input, hidden sizes, batch, time): grid rows where the two calibrations can differ
# (tiny steps, the batch split's W_h limit, projection workers) and a few where they cannot.
SHAPES = [
    ("tiny_H32_B1_T100", 32, "32", 1, 100),
    ("tiny_H64_B1_T100", 64, "64", 1, 100),
    ("seed_T1", 128, "100,200,300", 10, 1),
    ("seed_T100", 128, "100,200,300", 10, 100),
    ("H300_B16_T100", 300, "300", 16, 100),
    ("inf_H256_B1_T150", 256, "256", 1, 150),
    ("inf_H1024_B1_T25", 1024, "1024", 1, 25),
    ("train_H512_B16_T25", 512, "512", 16, 25),
]


def run(binary, threads, seconds, calibration, shape):
    _, d, hidden, b, t = shape
    cmd = [binary, "lstm", "--threads", str(threads), "--input", str(d), "--hidden", hidden,
           "--batch", str(b), "--time", str(t), "--seconds", str(seconds),
           "--config", "cpu.calibration=" + calibration]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
    return float(fields["ms"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.4)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    load_before = os.getloadavg()
    rows = []
    for shape in SHAPES:
        got = {"measured": [], "fixed": []}
        for _ in range(a.rounds):
            for side in ("measured", "fixed"):
                got[side].append(run(a.bin, a.threads, a.seconds, side, shape))
        m, f = statistics.median(got["measured"]), statistics.median(got["fixed"])
        spread = (max(got["fixed"]) - min(got["fixed"])) / f
        rows.append((shape[0], m, f, f / m, spread))
        print(f"{shape[0]:22s} measured {m:9.4f} ms  fixed {f:9.4f} ms  fixed/measured {f / m:.3f}",
              flush=True)
    load_after = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    info = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = info.get("flags", "").split()
    isa = "AVX-512" if "avx512f" in flags else "AVX2 + FMA" if "avx2" in flags else "no AVX2"
    model = (f"{info.get('model name', 'unknown')} (family {info.get('cpu family', '?')} "
             f"model {info.get('model', '?')}), {isa}")
    lines = [
        "# cpu.calibration: measured vs fixed (issue 18)", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%MZ}",
        f"- machine: {model}, {os.cpu_count()} logical CPUs; threads {a.threads}",
        f"- commit: {commit}",
        f"- rounds: {a.rounds} alternating, {a.seconds} s per side and round; "
        f"load before {load_before[0]:.2f}, after {load_after[0]:.2f}",
        "", "| shape | measured ms | fixed ms | fixed / measured | fixed's spread over rounds |",
        "|---|---:|---:|---:|---:|"]
    for name, m, f, r, s in rows:
        lines.append(f"| {name} | {m:.4f} | {f:.4f} | {r:.3f} | {100 * s:.0f} % |")
    gm = statistics.geometric_mean([r[3] for r in rows])
    lines += ["", f"fixed / measured: geometric mean {gm:.3f} over {len(rows)} shapes."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
