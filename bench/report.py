#!/usr/bin/env python3
"""The benchmark's report (issue 5): merges one run's timing CSVs (ours and the anchors, in
bench/anchors' timing columns) with the ceilings measured in the same run, computes each row's
floor and ratios, and writes PREFIX.csv, PREFIX.md and PREFIX.png; prints a compact table last.
Standard library only, except the PNG (matplotlib; skipped, with a message, without it).

  python3 bench/report.py --platform cpu|gpu --timings A.csv [B.csv ..]
          --ceilings C.csv [D.csv ..] [--meta meta.txt] [--check check.txt]
          --out-prefix bench/results/bench-cpu [--title TEXT] [--no-png]
  python3 bench/report.py --from bench/results/bench-gpu.csv --out-prefix ...  (re-render
          the markdown and the chart from a merged CSV this script wrote, e.g. on a machine
          with matplotlib when the run's machine had none)

Timing rows: tool (ours_cpu, pytorch_cpu, ort_cpu | ours_gpu, cudnn, pytorch), shape, layers,
hidden, input, batch, time, precision, algo, status, median_us, p10_us, p90_us, min_us, reps,
..., check, max_rel_err (an anchor's output checked against our reference in the same run:
pass / MISMATCH; a MISMATCH row keeps its time, marked, and stays out of the ratios' summary).
Ceiling rows (tool,metric,value,unit,detail): CPU from bench_cpu.py --machine-csv (sgemm_GFLOPs,
copy_GBps, step_latency_us, sgemm_beside_GFLOPs:SHAPE), GPU from bench/anchors/ceilings
(sgemm_TFLOPs, tf32_gemm_TFLOPs, fp16_gemm_TFLOPs, copy_memcpy_GBps, copy_kernel_GBps,
launch_empty_us, graph_node_us).

The floor of a row = the largest of
  FLOPs / peak:   sum_l 8*B*T*H_l*(I_l+H_l) over the measured GEMM peak of the row's precision;
  bytes / bandwidth: compulsory bytes (weights and biases read once, input read, output
                  written, initial state read, final state written) over the measured copy
                  bandwidth;
  steps x latency: dependent steps (T + L - 1, the wavefront's critical path) times the
                  measured per-step latency (GPU: the smaller of an empty launch and a graph
                  node; CPU: a tiny step, see bench/README.md).
Rows of batch <= 4 also get a memory floor (mem_floor_us: W_h streamed every step, W_x read
once, over the read bandwidth of that working set (CPU: bench_cpu.py's read_GBps_ws* rows;
the copy bandwidth in CSVs from before them); issue 18's small rows), summarised under the
table against it and against the larger of it and the FLOPs term.
CPU runs since 2026-12-06 also carry the SGEMM rate probed in each shape's own rounds
(sgemm_beside_GFLOPs:SHAPE): the table's `SGEMM beside` and `ours % of it` columns, and the
large rows (>= 1 GFLOP, batch > 4; issue 18: >= 80 %) summarised against it. A shared VM's
speed moves within a run; a share of a peak taken minutes away says little.
"""

import argparse
import csv
import math
import os
import sys

from benchlib import flops, read_csv, read_meta

TIMING = ["tool", "shape", "layers", "hidden", "input", "batch", "time", "precision", "algo",
          "status", "median_us", "p10_us", "p90_us", "min_us", "reps", "us_per_step", "gflops",
          "setup_ms", "note", "check", "max_rel_err"]
DERIVED = ["gflop", "spread_pct", "ours_us", "over_ours", "floor_flops_us", "floor_bytes_us",
           "floor_latency_us", "floor_us", "floor_bound", "over_floor", "mem_floor_us",
           "over_mem_floor", "beside_gflops", "pct_of_beside"]
SMALL_BATCH = 4  # rows of at most this batch get the memory floor (issue 18's small rows)
LARGE_GFLOP = 1.0  # rows of at least this many GFLOP and batch > SMALL_BATCH: issue 18's large
LARGE_SHARE = 0.80  # rows, held to this share of the SGEMM rate measured beside them
BESIDE = "sgemm_beside_GFLOPs:"  # CPU ceiling rows: the SGEMM probe in a shape's own rounds
CEILING_TOOLS = ("ceiling", "ceiling_cpu", "info")
BYTES = {"fp32": 4, "tf32": 4, "fp16": 2}
NAMES = {"ours_cpu": "ours", "ours_gpu": "ours", "pytorch_cpu": "PyTorch", "pytorch": "PyTorch",
         "cudnn": "cuDNN", "ort_cpu": "ORT"}
# Info rows (tool "info" in the ceilings CSV) shown in the markdown's header under these names,
# unless the meta file already has the key.
INFO_LABELS = {"machine": "machine", "isa": "ISA", "threads": "threads",
               "ours_kernel": "our kernel", "blas_kernel": "OpenBLAS kernel", "torch": "PyTorch",
               "torch_backend": "PyTorch CPU backend", "ort": "ONNX Runtime",
               "ort_kernel": "ONNX Runtime kernel", "load_bench": "load average (benchmark)",
               "commit_bench": "commit (benchmark)"}
ALGO_SHORT = {"standard": "S", "persist_static": "PS", "persist_static_small_h": "PSH",
              "persist_dynamic": "PD", "nn.LSTM": "", "nn.LSTM+graph": "g"}


def fnum(x):
    try:
        v = float(x)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def shape_of(r):
    hidden = [int(h) for h in r["hidden"].split(":")]
    return dict(hidden=hidden, input=int(r["input"]), batch=int(r["batch"]), time=int(r["time"]))


def compulsory_bytes(s, elem):
    """Weights + biases read once, input read, output written, (h, c) read and written."""
    n, inp = 0, s["input"]
    for h in s["hidden"]:
        n += 4 * h * (inp + h) + 4 * h
        inp = h
    n += s["batch"] * s["time"] * (s["input"] + s["hidden"][-1])
    n += 2 * 2 * s["batch"] * sum(s["hidden"])
    return n * elem


class Ceilings:
    def __init__(self, rows, platform):
        self.rows = rows
        v = {r.get("metric", ""): fnum(r.get("value")) for r in rows}
        self.curve = []
        self.read_curve = []
        self.peak = {}  # GFLOP/s per precision
        # CPU, since 2026-12-06: the SGEMM rate probed in each shape's own rounds (shape ->
        # GFLOP/s), which a shared VM's drift within a run cannot separate from the row.
        self.beside = {k[len(BESIDE):]: x for k, x in v.items() if k.startswith(BESIDE) and x}
        if platform == "cpu":
            if v.get("sgemm_GFLOPs"):
                self.peak["fp32"] = v["sgemm_GFLOPs"]
            self.bw = v.get("copy_GBps")
            # Working-set bandwidths (MiB -> GB/s): data that stays in cache between calls.
            self.curve = sorted((float(k[len("copy_GBps_ws"):-3]), x) for k, x in v.items()
                                if k.startswith("copy_GBps_ws") and k.endswith("MiB") and x)
            # Read-only bandwidth per working set (since 2026-12-04; older CSVs lack it): the
            # memory floor's weight stream is reads, which a copy's writes would slow.
            self.read_curve = sorted((float(k[len("read_GBps_ws"):-3]), x) for k, x in v.items()
                                     if k.startswith("read_GBps_ws") and k.endswith("MiB") and x)
            self.lat = v.get("step_latency_us")
            self.lat_what = "tiny step"
        else:
            for p, m in (("fp32", "sgemm_TFLOPs"), ("tf32", "tf32_gemm_TFLOPs"),
                         ("fp16", "fp16_gemm_TFLOPs")):
                if v.get(m):
                    self.peak[p] = v[m] * 1e3
            bws = [x for x in (v.get("copy_memcpy_GBps"), v.get("copy_kernel_GBps")) if x]
            self.bw = max(bws) if bws else None
            lats = [x for x in (v.get("launch_empty_us"), v.get("graph_node_us")) if x]
            self.lat = min(lats) if lats else None
            self.lat_what = "empty launch / graph node"

    def bandwidth(self, nbytes):
        """GB/s for a working set of nbytes: the best measured over working sets at least
        that large (the full-buffer copy included), so a set that fits a cache is held to
        that cache's bandwidth and the term stays a lower bound."""
        mib = nbytes / 2.0 ** 20
        return max([self.bw] + [g for ws, g in self.curve if ws >= mib])

    def read_bandwidth(self, nbytes):
        """GB/s for reading a working set of nbytes: as bandwidth(), over the read curve
        (where the CSV has one, else the copy curve)."""
        if not self.read_curve:
            return self.bandwidth(nbytes)
        mib = nbytes / 2.0 ** 20
        larger = [g for ws, g in self.read_curve if ws >= mib]
        return max(larger) if larger else self.read_curve[-1][1]

    def memory_floor(self, s, precision):
        """The small rows' memory floor (issue 18): every step streams the recurrent weights
        W_h of every layer, the input weights W_x are read once per call (one projection
        GEMM over all steps), each over the read bandwidth measured on a working set that
        large (read_bandwidth(); the copy bandwidth in CSVs from before the read curve).
        None where no bandwidth was measured."""
        if not self.bw and not self.read_curve:
            return None
        elem = BYTES.get(precision, 4)
        wh = sum(4 * h * h * elem for h in s["hidden"])
        wx, inp = 0, s["input"]
        for h in s["hidden"]:
            wx += 4 * h * inp * elem
            inp = h
        bw = self.read_bandwidth
        return (s["time"] * wh / (bw(wh) * 1e9) + wx / (bw(wx) * 1e9)) * 1e6

    def floor(self, s, precision):
        """(flops_us, bytes_us, latency_us, floor_us, bound) with None where unmeasured."""
        terms = {}
        if self.peak.get(precision):
            terms["FLOPs"] = flops(s) / (self.peak[precision] * 1e9) * 1e6
        if self.bw:
            nbytes = compulsory_bytes(s, BYTES.get(precision, 4))
            terms["bytes"] = nbytes / (self.bandwidth(nbytes) * 1e9) * 1e6
        if self.lat:
            terms["latency"] = (s["time"] + len(s["hidden"]) - 1) * self.lat
        if not terms:
            return None, None, None, None, ""
        bound = max(terms, key=terms.get)
        return terms.get("FLOPs"), terms.get("bytes"), terms.get("latency"), terms[bound], bound


def groups_for(platform, rows):
    """(title, precision, ours tool, [(label, tool)]) per table."""
    if platform == "cpu":
        return [("CPU, FP32", "fp32", "ours_cpu", [("PyTorch", "pytorch_cpu"),
                                                   ("ORT", "ort_cpu")])]
    out = []
    for p, title in (("fp32", "GPU, FP32 strict (no tensor cores)"),
                     ("tf32", "GPU, TF32 allowed")):
        if any(r["precision"] == p for r in rows):
            out.append((title, p, "ours_gpu", [("cuDNN", "cudnn"), ("PyTorch", "pytorch")]))
    return out


def best_row(rows, tool, shape, precision, algo=None):
    cands = [r for r in rows if r["tool"] == tool and r["shape"] == shape and
             r["precision"] == precision and r["status"] == "ok" and fnum(r["median_us"]) and
             (algo is None or r["algo"] == algo)]
    return min(cands, key=lambda r: float(r["median_us"])) if cands else None


def fmt_t(us, unit):
    if us is None:
        return "-"
    v = us / 1e3 if unit == "ms" else us
    return "%.3g" % v if v < 100 else "%.0f" % v if v >= 1000 else "%.1f" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--platform", choices=["cpu", "gpu"])
    ap.add_argument("--from", dest="merged", help="a merged CSV written by this script")
    ap.add_argument("--timings", nargs="+", default=[])
    ap.add_argument("--ceilings", nargs="*", default=[])
    ap.add_argument("--meta", default=None)
    ap.add_argument("--check", default=None, help="cudnn_anchor --check output")
    ap.add_argument("--out-prefix", required=True)
    ap.add_argument("--title", default="")
    ap.add_argument("--no-png", action="store_true")
    a = ap.parse_args()

    if a.merged:
        merged = read_csv(a.merged)
        with open(a.merged, newline="") as f:
            head = next(csv.reader(f))
        meta_keys = head[:head.index("platform")]
        meta = [(k, merged[0][k]) for k in meta_keys] if merged else []
        a.platform = a.platform or (merged[0]["platform"] if merged else "cpu")
        ceil_rows = [dict(tool=r["tool"], metric=r["shape"], value=r["value"], unit=r["unit"],
                          detail=r["note"]) for r in merged if r["tool"] in CEILING_TOOLS]
        rows = [{k: r.get(k, "") for k in TIMING} for r in merged
                if r["tool"] not in CEILING_TOOLS]
        for r in rows:  # recomputed below
            r["us_per_step"] = r["gflops"] = ""
    else:
        if not a.platform:
            ap.error("--platform is required without --from")
        rows = [r for p in a.timings for r in read_csv(p)]
        ceil_rows = [r for p in a.ceilings for r in read_csv(p)]
        meta = read_meta(a.meta)
    ceil = Ceilings(ceil_rows, a.platform)
    unit = "ms" if a.platform == "cpu" else "us"
    order = []
    for r in rows:
        if r["shape"] not in order:
            order.append(r["shape"])
    groups = groups_for(a.platform, rows)

    # ---- the long CSV: every timing row with its floor and its ratio to ours ----------------
    os.makedirs(os.path.dirname(os.path.abspath(a.out_prefix)), exist_ok=True)
    csv_path, md_path, png_path = (a.out_prefix + ext for ext in (".csv", ".md", ".png"))
    meta_keys = [k for k, _ in meta]
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(meta_keys + ["platform"] + TIMING + DERIVED + ["value", "unit"])
        base = [v for _, v in meta] + [a.platform]
        ours_tool = "ours_cpu" if a.platform == "cpu" else "ours_gpu"
        for r in rows:
            d = {k: "" for k in DERIVED}
            try:
                s = shape_of(r)
            except (KeyError, ValueError):
                s = None
            if s:
                d["gflop"] = "%.4f" % (flops(s) / 1e9)
            med = fnum(r.get("median_us"))
            if med and s and r["status"] == "ok":
                r["us_per_step"] = r.get("us_per_step") or "%.3f" % (med / s["time"])
                r["gflops"] = r.get("gflops") or "%.1f" % (flops(s) / med / 1e3)
                p10, p90 = fnum(r.get("p10_us")), fnum(r.get("p90_us"))
                if p10 is not None and p90 is not None:
                    d["spread_pct"] = "%.1f" % (100.0 * (p90 - p10) / med)
                ours = best_row(rows, ours_tool, r["shape"], r["precision"],
                                "fast" if a.platform == "cpu" else None)
                if ours:
                    d["ours_us"] = ours["median_us"]
                    d["over_ours"] = "%.3f" % (med / float(ours["median_us"]))
                fl, by, la, fu, bound = ceil.floor(s, r["precision"])
                for k, v in (("floor_flops_us", fl), ("floor_bytes_us", by),
                             ("floor_latency_us", la), ("floor_us", fu)):
                    d[k] = "" if v is None else "%.3f" % v
                d["floor_bound"] = bound
                if fu:
                    d["over_floor"] = "%.2f" % (med / fu)
                mf = ceil.memory_floor(s, r["precision"]) if s["batch"] <= SMALL_BATCH else None
                if mf:
                    d["mem_floor_us"] = "%.3f" % mf
                    d["over_mem_floor"] = "%.2f" % (med / mf)
                near = ceil.beside.get(r["shape"])
                if near:
                    d["beside_gflops"] = "%.1f" % near
                    d["pct_of_beside"] = "%.1f" % (100.0 * flops(s) / med / 1e3 / near)
            w.writerow(base + [r.get(k, "") for k in TIMING] + [d[k] for k in DERIVED] +
                       ["", ""])
        for r in ceil_rows:
            row = {k: "" for k in TIMING}
            row.update(tool=r.get("tool", "ceiling"), shape=r.get("metric", ""), status="ok",
                       note=r.get("detail", ""))
            w.writerow(base + [row[k] for k in TIMING] + [""] * len(DERIVED) +
                       [r.get("value", ""), r.get("unit", "")])

    # ---- the tables -------------------------------------------------------------------------
    check_line = ""
    if a.check and os.path.exists(a.check):
        with open(a.check) as f:
            hits = [l.strip() for l in f if "CHECK" in l and ("PASS" in l or "FAIL" in l)]
        check_line = hits[-1] if hits else "no CHECK line in %s" % a.check
    tables = []  # (title, header, rows of cells, summary)
    for title, prec, ours_tool, anchors in groups:
        head = ["shape", "GFLOP", "ours %s" % unit, "spread %", "ours us/step",
                "ours GFLOP/s"]
        for label, _ in anchors:
            head += ["%s %s" % (label, unit), "%s/ours" % label]
        if a.platform == "cpu":
            head += ["ours ref %s" % unit]
        head += ["floor %s" % unit, "bound", "ours/floor"]
        if ceil.beside:
            head += ["SGEMM beside GFLOP/s", "ours % of it"]
        body, ratios = [], {label: [] for label, _ in anchors}
        per_shape = {label: [] for label, _ in anchors}  # (shape, ratio) for the win/lose line
        mismatched = {label: [] for label, _ in anchors}
        anchor_below = {label: [] for label, _ in anchors}  # anchor faster than the floor
        for shape in order:
            any_row = next(r for r in rows if r["shape"] == shape)
            s = shape_of(any_row)
            ours = best_row(rows, ours_tool, shape, prec, "fast" if a.platform == "cpu" else None)
            om = fnum(ours["median_us"]) if ours else None
            cells = [shape, "%.3g" % (flops(s) / 1e9), fmt_t(om, unit)]
            if ours:
                p10, p90 = fnum(ours["p10_us"]), fnum(ours["p90_us"])
                cells += ["%.0f" % (100 * (p90 - p10) / om) if p10 is not None and
                          p90 is not None else "-", "%.2f" % (om / s["time"]),
                          "%.1f" % (flops(s) / om / 1e3)]
            else:
                cells += ["-", "-", "-"]
            for label, tool in anchors:
                ar = best_row(rows, tool, shape, prec)
                am = fnum(ar["median_us"]) if ar else None
                tag = ALGO_SHORT.get(ar["algo"], ar["algo"]) if ar and a.platform == "gpu" else ""
                bad = bool(ar) and ar.get("check", "") == "MISMATCH"
                if bad:
                    tag = (tag + " " if tag else "") + "MISMATCH"
                    mismatched[label].append(shape)
                cells.append(fmt_t(am, unit) + (" " + tag if tag else ""))
                if am and om:
                    cells.append("%.2f" % (am / om) + ("!" if bad else ""))
                    if not bad:
                        ratios[label].append(am / om)
                        per_shape[label].append((shape, am / om))
                else:
                    cells.append("-")
            if a.platform == "cpu":
                rr = best_row(rows, "ours_cpu", shape, prec, "reference")
                cells.append(fmt_t(fnum(rr["median_us"]), unit) if rr else "-")
            fl, by, la, fu, bound = ceil.floor(s, prec)
            cells += [fmt_t(fu, unit), bound or "-",
                      "%.2f" % (om / fu) if om and fu else "-"]
            if ceil.beside:
                near = ceil.beside.get(shape)
                cells += ["%.0f" % near if near else "-",
                          "%.0f" % (100.0 * flops(s) / om / 1e3 / near) if near and om else "-"]
            body.append(cells)
            for label, tool in anchors:
                ar = best_row(rows, tool, shape, prec)
                am = fnum(ar["median_us"]) if ar else None
                if am and fu and am < fu:
                    anchor_below[label].append("%s %.2f" % (shape, am / fu))
        below = [c[0] for c in body if c[-1] not in ("-", "") and float(c[-1]) < 1.0]
        summary = "; ".join(
            "%s/ours: geometric mean %.2f over %d shapes (min %.2f, max %.2f)" % (
                label, math.exp(sum(math.log(x) for x in v) / len(v)), len(v), min(v), max(v))
            for label, v in ratios.items() if v)
        # Plainly: the rows we win and lose against each anchor (X/ours > 1: we are faster).
        for label, v in per_shape.items():
            if not v:
                continue
            win = [(sh, r) for sh, r in v if r > 1.0]
            lose = [(sh, r) for sh, r in v if r <= 1.0]
            summary += "\n\nAgainst %s: we win %d of %d shapes%s; we lose %d%s." % (
                label, len(win), len(v),
                " (%s)" % ", ".join("%s %.3f" % x for x in win) if win else "",
                len(lose),
                " (%s: %s/ours, below 1 = %s is faster)" % (
                    ", ".join("%s %.3f" % x for x in lose), label, label) if lose else "")
        for label, v in anchor_below.items():
            if v:
                summary += ("\n\n%s ran below the floor on %d shape(s) (%s; time/floor): the "
                            "floor's GEMM peak is the peak measured with %s, which %s's own "
                            "kernels beat here (or the ceilings were measured at a slow "
                            "moment), so there the floor is not this machine's limit." % (
                                label, len(v), ", ".join(v[:6]) + (" ..." if len(v) > 6 else ""),
                                "OpenBLAS's selected kernel" if a.platform == "cpu" else
                                "cuBLAS", label))
        for label, v in mismatched.items():
            if v:
                summary += ("\n\n%s's output did not match our reference on %d shape(s) (%s): "
                            "those rows (marked MISMATCH, ratio with !) compute something "
                            "else and are left out of the summary above; see the check column "
                            "of the CSV." % (label, len(v), ", ".join(v)))
        missing = [(label, tool) for label, tool in anchors
                   if not any(r["tool"] == tool for r in rows)]
        for label, tool in missing:
            info = next((r for r in ceil_rows if r.get("tool") == "info" and
                         r.get("metric") == {"ort_cpu": "ort", "pytorch_cpu": "torch"}.get(tool)),
                        {})
            why = info.get("detail" if info.get("value") == "not run" else "value", "")
            summary += "\n\n%s columns are `-`: no %s rows in this run%s." % (
                label, label, " (%s)" % why if why else "")
        if below:
            summary += ("%sours/floor < 1 on %d shape(s) (%s): a floor is a lower bound, so the "
                        "ceilings were measured while the machine ran slower than during those "
                        "rows (a shared machine?); do not trust those floors." % (
                            "\n\n" if summary else "", len(below), ", ".join(below[:6]) +
                            (" ..." if len(below) > 6 else "")))
        # The small rows against their memory floor (Ceilings.memory_floor).
        small = []
        for shape in order:
            s = shape_of(next(r for r in rows if r["shape"] == shape))
            ours = best_row(rows, ours_tool, shape, prec, "fast" if a.platform == "cpu" else None)
            mf = ceil.memory_floor(s, prec) if s["batch"] <= SMALL_BATCH else None
            if ours and mf and fnum(ours["median_us"]):
                fl = ceil.floor(s, prec)[0] or 0.0
                om = fnum(ours["median_us"])
                small.append((shape, om / mf, om / max(mf, fl), "FLOPs" if fl > mf else "memory"))
        if small:
            summary += ("\n\nSmall rows (batch <= %d) against their memory floor (every step "
                        "streams each layer's W_h, W_x is read once; each over the %s "
                        "bandwidth measured on a working set that large), and against the "
                        "larger of it and the FLOPs floor (at batch 4 and small H the "
                        "arithmetic outweighs the weight stream): ours/memory floor, "
                        "ours/max(memory, FLOPs) %s; within 2x of the larger floor on %d of %d, "
                        "of the memory floor alone on %d." % (
                            SMALL_BATCH, "read" if ceil.read_curve else "copy",
                            ", ".join("%s %.2f %.2f%s" % (
                                sh, m, b, " (FLOPs)" if which == "FLOPs" else "")
                                for sh, m, b, which in small),
                            sum(1 for x in small if x[2] <= 2.0), len(small),
                            sum(1 for x in small if x[1] <= 2.0)))
        # The large rows against the SGEMM rate measured beside them (issue 18's target).
        large = []
        for shape in order:
            s = shape_of(next(r for r in rows if r["shape"] == shape))
            ours = best_row(rows, ours_tool, shape, prec, "fast" if a.platform == "cpu" else None)
            near = ceil.beside.get(shape)
            if (near and ours and fnum(ours["median_us"]) and s["batch"] > SMALL_BATCH and
                    flops(s) >= LARGE_GFLOP * 1e9):
                large.append((shape, flops(s) / fnum(ours["median_us"]) / 1e3 / near))
        if large:
            under = [(sh, x) for sh, x in large if x < LARGE_SHARE]
            summary += ("\n\nLarge rows (>= %g GFLOP, batch > %d) against the SGEMM rate probed "
                        "in their own rounds (`SGEMM beside`): %d of %d at >= %.0f %% of it "
                        "(lowest %s %.0f %%, median %.0f %%)%s." % (
                            LARGE_GFLOP, SMALL_BATCH, len(large) - len(under), len(large),
                            100 * LARGE_SHARE, min(large, key=lambda x: x[1])[0],
                            100 * min(x for _, x in large),
                            100 * sorted(x for _, x in large)[len(large) // 2],
                            "; under it: " + ", ".join("%s %.0f %%" % (sh, 100 * x)
                                                       for sh, x in under) if under else ""))
        tables.append((title, head, body, summary.lstrip("\n")))

    with open(md_path, "w") as f:
        f.write("# %s\n\n" % (a.title or "Benchmark: libstacklstm vs its anchors (%s)"
                              % a.platform.upper()))
        for k, v in meta:
            f.write("- %s: %s\n" % (k, v))
        meta_keys = {k for k, _ in meta}
        for r in ceil_rows:  # what the benchmark recorded that the meta lines do not say
            m = r.get("metric", "")
            if r.get("tool") == "info" and m not in meta_keys and m in INFO_LABELS:
                f.write("- %s: %s%s\n" % (INFO_LABELS[m], r.get("value", ""),
                                          " (%s)" % r["detail"] if r.get("detail") else ""))
        if check_line:
            f.write("- cuDNN vs libstacklstm check (`cudnn_anchor --check`): %s\n" % check_line)
        f.write("- ceilings measured in this run:\n")
        for r in ceil_rows:
            # info rows repeat the meta lines above; the probes beside each shape are a column
            if r.get("tool") != "info" and not r.get("metric", "").startswith(BESIDE):
                f.write("  - %s: %s %s (%s)\n" % (r.get("metric"), r.get("value"),
                                                 r.get("unit"), r.get("detail")))
        probes = [r for r in ceil_rows if r.get("metric", "").startswith(BESIDE)]
        if probes:
            vals = [float(r["value"]) for r in probes]
            f.write("  - SGEMM beside each shape: %.1f-%.1f GFLOP/s over %d shapes (%s; per "
                    "shape in the table's `SGEMM beside` column)\n" % (
                        min(vals), max(vals), len(vals), probes[0].get("detail")))
        f.write("- floor = max(FLOPs / GEMM peak of the precision, compulsory bytes / copy "
                "bandwidth%s, (T + L - 1) x per-step latency [%s]); `bound` names the largest "
                "term. ours/floor: how far we are from it. X/ours > 1: we are faster than X.\n"
                % (" [the best copy rate measured on a working set at least that large]"
                   if ceil.curve else "", ceil.lat_what))
        f.write("- times: median of the timed calls (%s); spread = (p90 - p10) / median.\n"
                % ("wall clock, after a warm-up call, inputs rotating among 4"
                   if a.platform == "cpu" else
                   "CUDA events around each call with the stream idle before it, after "
                   "warm-up, inputs rotating among 4"))
        if a.platform == "gpu":
            f.write("- cuDNN: fastest algorithm that ran (S standard, PS persist_static, PSH "
                    "persist_static_small_h, PD persist_dynamic); PyTorch: g = CUDA-graph replay "
                    "was the faster of eager and graph.\n")
        for title, head, body, summary in tables:
            f.write("\n## %s\n\n" % title)
            f.write("| " + " | ".join(head) + " |\n")
            f.write("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|\n")
            for cells in body:
                f.write("| " + " | ".join(cells) + " |\n")
            if summary:
                f.write("\n%s\n" % summary)
        bad = [r for r in rows if r["status"] not in ("ok", "unsupported")]
        if bad:
            f.write("\n%d rows did not run: %s\n" % (len(bad), "; ".join(
                "%s %s %s %s (%s%s)" % (r["tool"], r["shape"], r["precision"], r["algo"],
                                        r["status"], ": " + r["note"][:200] if r.get("note")
                                        else "") for r in bad[:10])))

    # ---- the chart --------------------------------------------------------------------------
    png_msg = ""
    if a.no_png:
        png_msg = "PNG skipped (--no-png)"
    else:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except Exception as e:  # ImportError or a broken install
            png_msg = "PNG skipped: matplotlib not importable by %s (%s)" % (sys.executable, e)
            plt = None
        if plt is not None and groups:
            fig, axes = plt.subplots(len(groups), 1, figsize=(max(8, 0.45 * len(order) + 3),
                                                              4.2 * len(groups)), squeeze=False)
            for ax, (title, prec, ours_tool, anchors) in zip(axes[:, 0], groups):
                series = [("ours", ours_tool)] + list(anchors)
                width = 0.8 / len(series)
                for i, (label, tool) in enumerate(series):
                    ys = []
                    for shape in order:
                        r = best_row(rows, tool, shape, prec,
                                     "fast" if tool == "ours_cpu" else None)
                        fu = ceil.floor(shape_of(next(x for x in rows if x["shape"] == shape)),
                                        prec)[3]
                        ys.append(float(r["median_us"]) / fu if r and fu else float("nan"))
                    ax.bar([k + (i - (len(series) - 1) / 2) * width for k in range(len(order))],
                           ys, width, label=label)
                ax.axhline(1.0, color="black", linewidth=0.8)
                ax.set_yscale("log")
                ax.set_ylabel("time / floor (log; 1 = floor)")
                ax.set_title(title)
                ax.set_xticks(range(len(order)))
                ax.set_xticklabels(order, rotation=60, ha="right", fontsize=7)
                ax.legend(fontsize=8)
                ax.grid(axis="y", which="both", alpha=0.3)
            sup = a.title or "libstacklstm vs anchors"
            mline = ", ".join("%s %s" % (k, v.split(" (")[0]) for k, v in meta
                              if k in ("date", "card", "threads", "blas_kernel", "torch"))
            ort_v = next((r.get("value", "") for r in ceil_rows if r.get("tool") == "info"
                          and r.get("metric") == "ort"), "")
            if ort_v:
                mline += (", " if mline else "") + "ORT " + ort_v.split(" (")[0]
            fig.suptitle(sup + ("\n" + mline if mline else ""), fontsize=9)
            fig.tight_layout()
            fig.savefig(png_path, dpi=110)
            plt.close(fig)
            png_msg = "PNG: %s" % png_path
        elif plt is not None:
            png_msg = "PNG skipped: no rows"

    # ---- the compact table, printed last ----------------------------------------------------
    print()
    print("; ".join("%s %s" % (k, v) for k, v in meta))
    if check_line:
        print(check_line)
    for title, head, body, summary in tables:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)] if body else []
        print("\n" + title)
        if not body:
            print("(no rows)")
            continue
        for cells in [head] + body:
            print("  ".join(str(c).rjust(wd) if i else str(c).ljust(wd)
                            for i, (c, wd) in enumerate(zip(cells, widths))))
        if summary:
            print(summary)
    print("\nCSV: %s\nmarkdown: %s\n%s" % (csv_path, md_path, png_msg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
