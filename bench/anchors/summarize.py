#!/usr/bin/env python3
"""Merges the anchor CSVs of one run (cudnn_anchor, pytorch_anchor.py, ceilings) into one CSV
stamped with the machine's card, driver, CUDA/cuDNN/PyTorch versions and date, and prints a
compact table.  Standard library only.

  python3 bench/anchors/summarize.py --dir OUT [--meta OUT/meta.txt] [--out OUT/anchors-h100.csv]

Reads OUT/cudnn.csv, OUT/pytorch.csv, OUT/ceilings.csv (each optional) and meta.txt
(key=value lines: date, card, driver, cuda, cudnn, torch).
"""

import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib  # noqa: E402
from benchlib import read_csv  # noqa: E402

META_KEYS = ["date", "card", "driver", "cuda", "cudnn", "torch"]
TIMING = ["tool", "shape", "layers", "hidden", "input", "batch", "time", "precision", "algo",
          "status", "median_us", "p10_us", "p90_us", "min_us", "reps", "us_per_step", "gflops",
          "setup_ms", "note"]
ALGO_SHORT = {"standard": "S", "persist_static": "PS", "persist_static_small_h": "PSH",
              "persist_dynamic": "PD", "nn.LSTM": "", "nn.LSTM+graph": "g"}


def read_meta(path):
    meta = {k: "" for k in META_KEYS}
    meta.update(benchlib.read_meta(path))
    return meta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="out")
    ap.add_argument("--meta", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    meta = read_meta(a.meta or os.path.join(a.dir, "meta.txt"))
    cud = read_csv(os.path.join(a.dir, "cudnn.csv"))
    tor = read_csv(os.path.join(a.dir, "pytorch.csv"))
    ceil = read_csv(os.path.join(a.dir, "ceilings.csv"))

    out_path = a.out or os.path.join(a.dir, "anchors-h100.csv")
    with open(out_path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(META_KEYS + TIMING + ["value", "unit"])
        base = [meta.get(k, "") for k in META_KEYS]
        for r in cud + tor:
            w.writerow(base + [r.get(k, "") for k in TIMING] + ["", ""])
        for r in ceil:
            row = {k: "" for k in TIMING}
            row.update(tool="ceiling", shape=r.get("metric", ""), status="ok",
                       note=r.get("detail", ""))
            w.writerow(base + [row[k] for k in TIMING] + [r.get("value", ""), r.get("unit", "")])

    # ---- the compact table: median us per forward, best algorithm per cuDNN precision ------
    best = {}  # (shape, column) -> (us, algo)
    order = []
    for r in cud + tor:
        if r["shape"] not in order:
            order.append(r["shape"])
        if r["status"] != "ok":
            continue
        us = float(r["median_us"])
        if r["tool"] == "cudnn":
            col = "cudnn " + r["precision"]
        elif r["tool"] == "pytorch_cpu":
            col = "torchcpu " + r["precision"]
        else:
            col = ("torch " if r["algo"] == "nn.LSTM" else "graph ") + r["precision"]
        if (r["shape"], col) not in best or us < best[(r["shape"], col)][0]:
            best[(r["shape"], col)] = (us, ALGO_SHORT.get(r["algo"], r["algo"]))
    cols = [c for c in ["cudnn fp32", "cudnn tf32", "cudnn fp16", "torch fp32", "torch tf32",
                        "torch fp16", "graph fp32", "graph tf32", "graph fp16", "torchcpu fp32"]
            if any(k[1] == c for k in best)]
    flops = {}  # GFLOP per forward: sum over layers of 8*B*T*H*(I+H)
    for r in cud + tor:
        try:
            inp, total = int(r["input"]), 0.0
            for h in (int(x) for x in r["hidden"].split(":")):
                total += 8.0 * int(r["batch"]) * int(r["time"]) * h * (inp + h)
                inp = h
            flops[r["shape"]] = total / 1e9
        except (KeyError, ValueError):
            pass

    print()
    print("anchors: %s, driver %s, CUDA %s, cuDNN %s, torch %s, %s" % tuple(
        meta.get(k, "") or "?" for k in ["card", "driver", "cuda", "cudnn", "torch", "date"]))
    if order:
        print("median us per forward (cuDNN: fastest algorithm that ran, S standard, "
              "PS persist_static, PSH ..._small_h, PD persist_dynamic)")
        head = "%-21s %8s" % ("shape", "GFLOP") + "".join(" %12s" % c for c in cols)
        print(head)
        for s in order:
            line = "%-21s %8s" % (s[:21], ("%.3f" % flops[s]) if s in flops else "")
            for c in cols:
                if (s, c) in best:
                    us, alg = best[(s, c)]
                    cell = ("%.1f" % us if us < 1e4 else "%.0f" % us) + \
                        ((" " + alg) if c.startswith("cudnn") else "")
                else:
                    cell = "-"
                line += " %12s" % cell
            print(line)
        bad = [r for r in cud + tor if r["status"] not in ("ok", "unsupported")]
        unsup = sum(1 for r in cud if r["status"] == "unsupported")
        print("%d cuDNN configurations unsupported by cuDNN; %d rows error/skipped%s" % (
            unsup, len(bad), (": " + "; ".join(
                "%s %s %s %s" % (r["tool"], r["shape"], r["precision"], r["algo"])
                for r in bad[:6]) + (" ..." if len(bad) > 6 else "")) if bad else ""))
    if ceil:
        print("ceilings: " + ", ".join(
            "%s %s %s" % (r["metric"], r["value"], r["unit"]) for r in ceil
            if r["metric"].endswith(("GBps", "TFLOPs", "_us"))))
    print("full CSV: %s" % out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
