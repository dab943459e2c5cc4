#!/usr/bin/env python3
"""Streaming frames on the CPU: one call of T = 1 step per frame, the frames some time apart,
ours (slstm_bench_cpu lstm --gap-us) against ONNX Runtime (ort_anchor.py, the same weights and
inputs, output checked against our reference) in alternating rounds of one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 bench/cpu/frame_latency.py \\
        --bin BUILD/bench/cpu/slstm_bench_cpu [--threads 2] [--gaps 0,1000,10000] \\
        [--rounds 3] [--seconds 1.5] [--ort-python VENV/bin/python] [--config "k=v;..."]

A back-to-back benchmark (gap 0) finds every engine's worker threads spinning; frames that
arrive every few milliseconds find them asleep, and a call then pays for waking them. Prints,
per shape and gap, the best round's median and p90 per call (the sleep between calls is not
timed) and ORT / ours (> 1: we are faster). Speed only: nothing here asserts.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_cpu  # noqa: E402

SHAPES = [
    dict(name="seed_B10", hidden=[100, 200, 300], input=128, batch=10, time=1),
    dict(name="seed_B1", hidden=[100, 200, 300], input=128, batch=1, time=1),
    dict(name="H512_B1", hidden=[512], input=512, batch=1, time=1),
    dict(name="H1024_B1", hidden=[1024], input=1024, batch=1, time=1),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="slstm_bench_cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gaps", default="0,1000,10000", help="microseconds between frames")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5, help="per side, round and gap")
    ap.add_argument("--only", default="", help="these shape names only")
    ap.add_argument("--config", default="", help="our session's keyed settings")
    ap.add_argument("--ort-python", default="")
    ap.add_argument("--no-ort", action="store_true")
    a = ap.parse_args()
    a.install_ort = False
    gaps = [float(g) for g in a.gaps.split(",")]
    shapes = [s for s in SHAPES if not a.only or s["name"] in a.only.split(",")]
    py, info, why = (None, None, "left out") if a.no_ort else bench_cpu.find_ort_python(a)
    print("ONNX Runtime: %s" % ("onnxruntime %s via %s" % (info["ort"], py) if py else why))
    print("threads %d, best of %d alternating rounds, %.1f s per side, round and gap"
          % (a.threads, a.rounds, a.seconds))
    print()
    print("| shape | gap us | ours median us | ours p90 us | ORT median us | ORT p90 us "
          "| ORT / ours |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in shapes:
        ort = bench_cpu.OrtSide(a, py, s, bench_cpu.ort_anchor.TOL) if py else None
        if ort is not None and ort.error:
            print("ORT on %s: %s" % (s["name"], ort.error), file=sys.stderr)
        try:
            for gap in gaps:
                best = {}
                for _ in range(a.rounds):
                    mine = ours_round(a, s, gap)
                    keep(best, "ours", mine)
                    if ort is not None and not ort.error:
                        keep(best, "ort", ort.time(a.seconds, 5, gap))
                o, r = best.get("ours"), best.get("ort")
                ratio = "%.2f" % (r["median"] / o["median"]) if o and r else "-"
                print("| %s | %g | %s | %s | %s | %s | %s |" % (
                    s["name"], gap, us(o, "median"), us(o, "p90"), us(r, "median"),
                    us(r, "p90"), ratio), flush=True)
        finally:
            if ort is not None:
                ort.close()
        if ort is not None and ort.check:
            print("(%s: ORT %s)" % (s["name"], ort.note()))
    return 0


def ours_round(a, s, gap):
    args = [a.bin, "lstm", "--path", "fast", "--threads", str(a.threads),
            "--input", str(s["input"]), "--hidden", ",".join(map(str, s["hidden"])),
            "--batch", str(s["batch"]), "--time", str(s["time"]), "--seconds", str(a.seconds),
            "--min-iters", "5", "--gap-us", "%g" % gap]
    if a.config:
        args += ["--config", a.config]
    kv = bench_cpu.run_bin(args)
    return dict(median=float(kv["ms"]), p90=float(kv["ms_p90"]))


def keep(best, side, st):
    if st is not None and (side not in best or st["median"] < best[side]["median"]):
        best[side] = st


def us(st, key):
    return "%.1f" % (st[key] * 1e3) if st else "-"


if __name__ == "__main__":
    sys.exit(main())
