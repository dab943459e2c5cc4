#!/usr/bin/env python3
"""PyTorch nn.LSTM on the GPU over the anchor grid (bench/anchors/grid.csv), timed with CUDA
events: the second anchor our GPU backend is measured against.

  python3 bench/anchors/pytorch_anchor.py [--grid FILE] [--only NAME,..]
          [--precisions fp32,tf32,fp16] [--no-graphs] [--target-ms X] [--min-reps N]
          [--max-reps N] [--budget-s S] [--csv FILE|-] [--device cuda|cpu]

Per shape and precision, one row for plain eager calls (algo "nn.LSTM") and, for shapes
marked small in the grid, one for replaying a captured CUDA graph of the same call
("nn.LSTM+graph", one graph captured per input tensor).  Precisions: fp32 = TF32 off (torch.backends.cudnn.allow_tf32 and
torch.backends.cuda.matmul.allow_tf32 False), tf32 = both True, fp16 = module and input in
half.  Equal hidden sizes run as one nn.LSTM(num_layers=L), unequal ones as chained
single-layer modules.  Input is time-major [T, B, D], the initial state zeros, the final
(h, c) returned as by any nn.LSTM call.  Weights are PyTorch's default init (timings do not
depend on the values); inputs rotate among four random tensors.

Every timed call is one forward as a caller sees it: the stream idle before, the events
around the call.  Same CSV columns as cudnn_anchor.

--device cpu times nn.LSTM on the CPU instead (fp32 only, wall clock, no graphs; tool
"pytorch_cpu"), for the CPU anchor of the benchmark issue and as a smoke test without a GPU.

Exits with code 0 and a message when torch is not importable or CUDA is unavailable.
"""

import argparse
import csv
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import flops, load_grid, quantile  # noqa: E402

HEADER = ["tool", "shape", "layers", "hidden", "input", "batch", "time", "precision", "algo",
          "status", "median_us", "p10_us", "p90_us", "min_us", "reps", "us_per_step", "gflops",
          "setup_ms", "note"]
HERE = os.path.dirname(os.path.abspath(__file__))


def row(s, prec, algo, status, us=None, setup_ms=None, note="", tool="pytorch"):
    r = [tool, s["name"], str(len(s["hidden"])), ":".join(map(str, s["hidden"])),
         str(s["input"]), str(s["batch"]), str(s["time"]), prec, algo, status]
    if us:
        med = quantile(us, 0.5)
        r += ["%.3f" % med, "%.3f" % quantile(us, 0.1), "%.3f" % quantile(us, 0.9),
              "%.3f" % min(us), str(len(us)), "%.3f" % (med / s["time"]),
              "%.1f" % (flops(s) / med / 1e3)]
    else:
        r += [""] * 7
    r += ["" if setup_ms is None else "%.1f" % setup_ms, note]
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", default=os.path.join(HERE, "grid.csv"))
    ap.add_argument("--only", default="")
    ap.add_argument("--precisions", default="fp32,tf32,fp16")
    ap.add_argument("--no-graphs", action="store_true")
    ap.add_argument("--target-ms", type=float, default=100.0)
    ap.add_argument("--min-reps", type=int, default=5)
    ap.add_argument("--max-reps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=0.0, help="0: no limit")
    ap.add_argument("--csv", default="-")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = ap.parse_args()
    on_cpu = args.device == "cpu"

    try:
        import torch
    except Exception as e:  # ImportError, or a broken install
        print("pytorch_anchor: no PyTorch: %s: %s" % (type(e).__name__, e))
        return 0
    if not on_cpu and not torch.cuda.is_available():
        reason = "torch.cuda.is_available() is False"
        if torch.version.cuda is None:
            reason += " (this torch %s is a CPU-only build)" % torch.__version__
        else:
            try:
                torch.cuda.init()
            except Exception as e:
                reason += " (%s)" % e
        print("pytorch_anchor: no CUDA device: %s" % reason)
        return 0

    precisions = [p for p in args.precisions.split(",") if p]
    for p in precisions:
        if p not in ("fp32", "tf32", "fp16"):
            ap.error("unknown precision " + p)
    if on_cpu:
        precisions = [p for p in precisions if p == "fp32"]
        args.no_graphs = True
    shapes = load_grid(args.grid)
    if args.only:
        keep = set(args.only.split(","))
        shapes = [s for s in shapes if s["name"] in keep]

    dev = torch.device(args.device)
    tool = "pytorch_cpu" if on_cpu else "pytorch"
    where = ("CPU, %d threads" % torch.get_num_threads() if on_cpu
             else torch.cuda.get_device_name(dev))
    sys.stderr.write("pytorch_anchor: torch %s (CUDA %s, cuDNN %s) on %s\n" % (
        torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), where))
    out = sys.stdout if args.csv == "-" else open(args.csv, "w", newline="")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    out.flush()
    start = time.monotonic()
    def timed_cpu(fn):
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e6  # us

    if not on_cpu:
        stream = torch.cuda.Stream()
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)

    def timed_cuda(fn):
        # One forward as a caller sees it: the stream idle before, events around the call.
        torch.cuda.current_stream().synchronize()
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        return e0.elapsed_time(e1) * 1e3  # us

    timed = timed_cpu if on_cpu else timed_cuda

    def measure(fn, t0):
        """Warm-up, then timed calls; returns (us list, setup ms since t0 incl. warm-up)."""
        for _ in range(max(1, args.warmup)):
            fn()
        if not on_cpu:
            torch.cuda.synchronize()
        setup_ms = (time.monotonic() - t0) * 1e3
        est = timed(fn)
        reps = int(math.ceil(args.target_ms * 1e3 / max(est, 1.0)))
        reps = min(max(reps, args.min_reps), args.max_reps)
        return [timed(fn) for _ in range(reps)], setup_ms

    def emit(r):
        w.writerow(r)
        out.flush()
        if out is not sys.stdout:
            sys.stderr.write("pytorch %-22s %-5s %-14s %-8s %10s us %s\n" % (
                r[1], r[7], r[8], r[9], r[10], r[-1][:100] if r[9] != "ok" else ""))

    torch.manual_seed(0)
    for s in shapes:
        for prec in precisions:
            algos = ["nn.LSTM"] + (["nn.LSTM+graph"] if s["small"] and not args.no_graphs else [])
            if args.budget_s > 0 and time.monotonic() - start > args.budget_s:
                for a in algos:
                    emit(row(s, prec, a, "skipped", tool=tool,
                             note="time budget of %g s spent" % args.budget_s))
                continue
            t0 = time.monotonic()
            try:
                tf32 = prec == "tf32"
                torch.backends.cudnn.allow_tf32 = tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
                dtype = torch.float16 if prec == "fp16" else torch.float32
                H, L = s["hidden"], len(s["hidden"])
                if all(h == H[0] for h in H):
                    mods = [torch.nn.LSTM(s["input"], H[0], num_layers=L)]
                else:
                    ins = [s["input"]] + H[:-1]
                    mods = [torch.nn.LSTM(i, h) for i, h in zip(ins, H)]
                mods = [m.to(device=dev, dtype=dtype).eval() for m in mods]
                xs = [torch.rand(s["time"], s["batch"], s["input"], device=dev, dtype=dtype)
                      * 2 - 1 for _ in range(4)]
                k = [0]

                def forward(x):
                    y, states = x, []
                    for m in mods:
                        y, hc = m(y)
                        states.append(hc)
                    return y, states

                def eager():
                    k[0] = (k[0] + 1) % len(xs)
                    return forward(xs[k[0]])

                with torch.inference_mode():
                    us, setup_ms = measure(eager, t0)
                    note = "%d module(s); torch %s cuDNN %s" % (
                        len(mods), torch.__version__, torch.backends.cudnn.version())
                    emit(row(s, prec, "nn.LSTM", "ok", us, setup_ms, note, tool=tool))
            except Exception as e:
                emit(row(s, prec, "nn.LSTM", "error", note="%s: %s" % (type(e).__name__, e),
                         tool=tool))
                if not on_cpu:
                    torch.cuda.synchronize()
                continue
            if len(algos) < 2:
                continue
            t0 = time.monotonic()
            try:
                with torch.inference_mode():
                    stream.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(stream):  # warm-up off the capture stream
                        for _ in range(3):
                            forward(xs[0])
                    torch.cuda.current_stream().wait_stream(stream)
                    # One graph per input tensor, so replays rotate inputs without a copy.
                    graphs = []
                    for x in xs:
                        g = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(g):
                            forward(x)
                        graphs.append(g)
                    k2 = [0]

                    def replay():
                        k2[0] = (k2[0] + 1) % len(graphs)
                        graphs[k2[0]].replay()

                    us, setup_ms = measure(replay, t0)
                    emit(row(s, prec, "nn.LSTM+graph", "ok", us, setup_ms,
                             note + "; %d graphs, one per input" % len(graphs)))
                    del graphs
            except Exception as e:
                emit(row(s, prec, "nn.LSTM+graph", "error",
                         note="%s: %s" % (type(e).__name__, e)))
                torch.cuda.synchronize()
    if out is not sys.stdout:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
