#!/usr/bin/env python3
"""When the generic path's team pays (cpu.team, docs/cells.md): one GRU layer (I = H) per H,
cpu.team=always against cpu.team=off in alternating rounds in one process, 2 threads.
With --bidirectional the layer is bidirectional: from 4 threads on, with its directions
split, "always" is one team per direction (the case a 2-CPU machine cannot measure).

    SLSTM_LIBRARY=BUILD/libstacklstm.so.0 python3 bench/cpu/team_ab.py [--threads 2]
        [--hidden 32,64,96,128,192,256] [--batch 1,4] [--time 100] [--rounds 7]
        [--cell gru|lstm] [--bidirectional]

Prints per (H, B) the best-round median time of each and rows / team (> 1: the team is
faster).  Run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset.  Speed only.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "python"))
import stacklstm  # noqa: E402
from stacklstm import Layer  # noqa: E402


def best_times(sessions, x, rounds, calls=5):
    best = {k: float("inf") for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            s.forward(x)
            ts = []
            for _ in range(calls):
                t0 = time.perf_counter()
                s.forward(x)
                ts.append(time.perf_counter() - t0)
            best[k] = min(best[k], statistics.median(ts))
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hidden", default="32,64,96,128,192,256")
    ap.add_argument("--batch", default="1,4")
    ap.add_argument("--time", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cell", choices=["gru", "lstm"], default="gru")
    ap.add_argument("--bidirectional", action="store_true")
    args = ap.parse_args()
    gates = 3 if args.cell == "gru" else 4
    dirs = 2 if args.bidirectional else 1
    print("%s%s, %d threads, T = %d" % ("bidirectional " if dirs == 2 else "", args.cell,
                                         args.threads, args.time))
    print("| H | weights a step | B | team ms | rows ms | rows / team |")
    print("|---:|---:|---:|---:|---:|---:|")
    for H in (int(v) for v in args.hidden.split(",")):
        layer = Layer(args.cell, H, direction="bidirectional" if dirs == 2 else "forward")
        model = stacklstm.Model.random(H, layers=[layer], seed=3)
        for B in (int(v) for v in args.batch.split(",")):
            x = np.random.default_rng(0).uniform(-1, 1, (B, args.time, H)).astype(np.float32)
            sessions = {k: model.session(B, args.time, num_threads=args.threads,
                                         config="cpu.team=" + k) for k in ("always", "off")}
            b = best_times(sessions, x, args.rounds)
            print("| %d | %.0f KiB | %d | %.3f | %.3f | %.2f |" % (
                H, dirs * gates * H * 2 * H * 4 / 1024, B, b["always"] * 1e3, b["off"] * 1e3,
                b["off"] / b["always"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
