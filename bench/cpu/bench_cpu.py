#!/usr/bin/env python3
"""CPU benchmark: libstacklstm's CPU fast path (and, where cheap, its reference path) against
PyTorch nn.LSTM on the CPU, same thread count, inference mode, in one run.

  python3 bench/cpu/bench_cpu.py --bin BUILD/bench/cpu/slstm_bench_cpu [--quick]
          [--threads N] [--out-dir bench/results]
  python3 bench/cpu/bench_cpu.py --bin ... --grid bench/anchors/grid.csv [--only A,B]
          --long-csv FILE --machine-csv FILE [--seconds X] [--rounds R] [--no-torch]
          [--no-reference] [--no-ort] [--ort-python PY] [--install-ort]

Without --grid: writes <out-dir>/cpu.csv and <out-dir>/cpu.md (the 13 shapes below).
With --grid (bench/run.sh uses this): the grid's shapes; writes --long-csv (one row per shape
and backend, the columns of bench/anchors' timing CSVs: tool ours_cpu / pytorch_cpu) and
--machine-csv (this machine's ceilings: SGEMM peak, FMA peak, copy bandwidth, tiny step,
and the SGEMM rate beside each shape: a short --probe-size SGEMM in each of its rounds; the
columns of bench/anchors' ceilings.csv), for bench/report.py.  Per shape: median wall time of
one forward call (time-major input, initial state given, output and final state written),
PyTorch's median for the same shape, their ratio (torch / ours: > 1 means we are faster), and the floor
= FLOPs / the machine's measured SGEMM peak (a large cblas_sgemm timed in this run).
Run it through bench/cpu/run.sh, which builds the driver and unsets OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE for the benchmark only.

ONNX Runtime (issue 18) is the second anchor: the same model (our weights, exported by the
library in the ONNX LSTM layout), the same inputs and initial state, as one ONNX LSTM node per
layer, with intra_op_num_threads = --threads (bench/cpu/ort_anchor.py, a worker process per
shape, timed in the same alternating rounds as ours and PyTorch).  Its output is checked in
the same run against our reference path (max relative error in the row; above the tolerance
the row says MISMATCH).  The worker runs in the first Python that imports onnxruntime and
onnx: --ort-python, $SLSTM_ORT_PYTHON, this Python, or BUILD/ort-venv/bin/python (BUILD: the
build folder of --bin); --install-ort creates that venv (--system-site-packages) and
pip-installs onnxruntime and onnx into it when none is found.  Without one, the ORT columns
say "-" and the reason is in the report; --no-ort leaves ORT out.
"""

import argparse
import csv
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import flops, load_grid, quantile  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ort_anchor  # noqa: E402  (standard library only at import time)

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


def ours_stats(binary, s, path, threads, seconds, min_iters=3, gap_us=0.0):
    """One run of the driver: dict(median, min, p10, p90 in ms, reps); gap_us: the calls that
    far apart (streaming frames; the sleep is not timed)."""
    kv = run_bin([binary, "lstm", "--path", path, "--threads", str(threads),
                  "--input", str(s["input"]), "--hidden", ",".join(map(str, s["hidden"])),
                  "--batch", str(s["batch"]), "--time", str(s["time"]),
                  "--seconds", str(seconds), "--min-iters", str(min_iters),
                  "--gap-us", "%g" % gap_us])
    return dict(median=float(kv["ms"]), min=float(kv["ms_min"]), p10=float(kv["ms_p10"]),
                p90=float(kv["ms_p90"]), reps=int(kv["iters"]),
                plan="kernel %s, %s threads used, layer paths %s" % (
                    kv.get("kernel", "?"), kv.get("threads_used", "?"),
                    kv.get("layer_paths", "?")))


def ours(binary, s, path, threads, seconds):
    st = ours_stats(binary, s, path, threads, seconds)
    return st["median"], st["min"]


def torch_time(torch, s, threads, seconds, min_iters=3, stats=False):
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

    # Four inputs used in turn, as the C++ driver does (a small input does not stay cached).
    xs = [x] + [torch.randn(s["time"], s["batch"], s["input"]) for _ in range(3)]
    k = [0]

    def call():
        k[0] = (k[0] + 1) % len(xs)
        y = xs[k[0]]
        for m, st in zip(mods, states):
            y, _ = m(y, st)
        return y

    with torch.inference_mode():
        call()
        ts = []
        start = time.perf_counter()
        while len(ts) < min_iters or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            call()
            ts.append(time.perf_counter() - t0)
    ts.sort()
    if stats:
        return dict(median=ts[len(ts) // 2] * 1e3, min=ts[0] * 1e3,
                    p10=quantile(ts, 0.1) * 1e3, p90=quantile(ts, 0.9) * 1e3, reps=len(ts))
    return ts[len(ts) // 2] * 1e3, ts[0] * 1e3


ORT_ANCHOR = os.path.join(HERE, "ort_anchor.py")
CHECK_FLOPS = 0.3e9  # the reference check's budget per shape (FLOPs of the checked slice)


def find_ort_python(a):
    """(python, info dict, None) for the first Python that runs ort_anchor.py info, else
    (None, None, reason).  With --install-ort, a venv is made for it when none is found."""
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(a.bin))))
    venv = os.path.join(build, "ort-venv")
    venv_py = os.path.join(venv, "bin", "python")
    cands = [c for c in (a.ort_python, os.environ.get("SLSTM_ORT_PYTHON"), sys.executable,
                         venv_py) if c]
    tried = []

    def probe(c):
        try:
            r = subprocess.run([c, ORT_ANCHOR, "info"], capture_output=True, text=True,
                               timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            tried.append("%s: %s" % (c, e))
            return None
        kv = parse_kv(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
        if r.returncode == 0 and "ort" in kv:
            return kv
        tried.append("%s: %s" % (c, kv.get("error") or r.stderr.strip()[-200:] or
                                 "exit %d" % r.returncode))
        return None

    for c in dict.fromkeys(cands):
        if c != venv_py or os.path.exists(c):
            kv = probe(c)
            if kv:
                return c, kv, None
    if a.install_ort:
        print("onnxruntime not importable: pip-installing onnxruntime and onnx into " + venv,
              flush=True)
        r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                           capture_output=True, text=True)
        if r.returncode == 0:
            r = subprocess.run([venv_py, "-m", "pip", "install", "-q", "onnxruntime", "onnx"],
                               capture_output=True, text=True)
        if r.returncode != 0:
            tried.append("install into %s failed: %s" % (venv, r.stderr.strip()[-300:]))
        else:
            kv = probe(venv_py)
            if kv:
                return venv_py, kv, None
    return None, None, ("onnxruntime and onnx not importable (%s); pip install onnxruntime "
                        "onnx, or --install-ort" % "; ".join(tried))


def check_slice(s):
    """(B2, T2): the rows and steps of input x0 that the reference computes for the check:
    all of them when that costs at most CHECK_FLOPS, else up to 2 rows and as many steps as
    fit (at least 2).  An LSTM's output for those rows and steps does not depend on the rest."""
    if flops(s) <= CHECK_FLOPS:
        return s["batch"], s["time"]
    b = min(s["batch"], 2)
    per_step = flops(dict(s, batch=b, time=1))
    return b, min(s["time"], max(2, int(CHECK_FLOPS // per_step)))


class OrtSide:
    """ONNX Runtime on one shape: our model dumped by the driver, a worker process holding one
    session, timed a round at a time.  .error says why it could not run (then no rounds)."""

    def __init__(self, a, py, s, tol):
        self.proc, self.error, self.check = None, None, {}
        self.dir = tempfile.mkdtemp(prefix="slstm-ort-")
        # The worker's stderr goes to a file, not a pipe nobody drains while it times.
        self.err = tempfile.TemporaryFile(mode="w+")
        hidden = ",".join(map(str, s["hidden"]))
        cb, ct = check_slice(s)
        try:
            self.dump = run_bin([a.bin, "dump", "--dir", self.dir, "--threads", str(a.threads),
                                 "--input", str(s["input"]), "--hidden", hidden,
                                 "--batch", str(s["batch"]), "--time", str(s["time"]),
                                 "--check-batch", str(cb), "--check-time", str(ct)])
            self.proc = subprocess.Popen(
                [py, ORT_ANCHOR, "serve", "--dir", self.dir, "--threads", str(a.threads),
                 "--input", str(s["input"]), "--hidden", hidden, "--batch", str(s["batch"]),
                 "--time", str(s["time"]), "--check-batch", self.dump["check_batch"],
                 "--check-time", self.dump["check_time"], "--tol", str(tol)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True)
            line = self.proc.stdout.readline().strip()
            if not line.startswith("ready "):
                self.error = "worker: " + (line or self.stderr_tail() or
                                           "exit %s" % self.proc.wait())
                self.close()
            else:
                self.check = parse_kv(line[len("ready "):])
        except (RuntimeError, OSError) as e:
            self.error = str(e)
            self.close()

    def time(self, seconds, min_iters=3, gap_us=0.0):
        if self.proc is None:
            return None
        self.proc.stdin.write("time %g %d %g\n" % (seconds, min_iters, gap_us))
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if not line.startswith("result "):
            self.error = "worker: " + (line or self.stderr_tail() or "stopped")
            self.close()
            return None
        kv = parse_kv(line[len("result "):])
        return dict(median=float(kv["ms"]), min=float(kv["ms_min"]), p10=float(kv["ms_p10"]),
                    p90=float(kv["ms_p90"]), reps=int(kv["iters"]))

    def stderr_tail(self):
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.err.seek(0)
        return self.err.read().strip()[-300:]

    def note(self):
        c = self.check
        return "check %s: max rel err %s vs our reference, %s (tol %s)" % (
            c.get("check", "?"), c.get("max_rel_err", "?"), c.get("compared", "?"),
            c.get("tol", "?"))

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.dir:
            for f in os.listdir(self.dir):
                os.unlink(os.path.join(self.dir, f))
            os.rmdir(self.dir)
            self.dir = None
        if self.err is not None:
            self.err.close()
            self.err = None


def torch_backend(torch):
    """PyTorch's CPU backend in one line: oneDNN (mkldnn) / MKL availability, the CPU
    capability and BLAS of its build (torch.__config__.show())."""
    if torch is None:
        return "not run (no torch in this run)"
    parts = ["mkldnn (oneDNN) available=%s enabled=%s" % (
        torch.backends.mkldnn.is_available(), getattr(torch.backends.mkldnn, "enabled", "?")),
        "mkl available=%s" % torch.backends.mkl.is_available()]
    cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    if cap:
        parts.append("cpu capability %s" % cap())
    try:
        show = torch.__config__.show()
    except Exception:  # an odd build: the rest still says something
        show = ""
    for line in show.splitlines():
        line = line.strip().lstrip("- ")
        if line.startswith("CPU capability usage"):
            parts.append(line)
        elif line.startswith("Build settings"):
            m = re.search(r"BLAS_INFO=([^,]+)", line)
            parts.append("BLAS_INFO=%s" % (m.group(1) if m else "?"))
            m = re.search(r"USE_MKLDNN=([^,]+)", line)
            if m:
                parts.append("USE_MKLDNN=%s" % m.group(1))
    return "; ".join(parts)


def commit_info():
    """HEAD's short hash, and whether what the benchmark builds from (src, include, bench/cpu,
    CMake files) differs from it in the working tree."""
    root = os.path.dirname(os.path.dirname(HERE))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "src",
                                "include", "bench/cpu", "cmake", "CMakeLists.txt"],
                               capture_output=True, text=True).stdout.split("\n")
    except OSError:
        return "?"
    dirty = [l[3:] for l in dirty if l.strip()]
    return head + (" + uncommitted changes in %s" % ", ".join(dirty[:5]) if dirty else
                   " (src, include, bench/cpu as committed)") if head else "?"


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


def grid_main(a, torch, torch_version, peaks, peak_auto, peak_gflops, fma_gflops, seconds,
              ort):
    """--grid: the grid's shapes, rows in the anchors' CSV columns, plus the ceilings."""
    grid = load_grid(a.grid, a.only)
    ort_py, ort_info, ort_reason = ort
    load_before = "%.2f %.2f %.2f" % os.getloadavg()
    ours_plans = {}  # our session's plan (slstm_session_describe) -> shapes
    m = run_bin([a.bin, "machine", "--threads", str(a.threads), "--mib", str(a.copy_mib),
                 "--seconds", str(max(0.1, min(seconds, 1.0)))])
    # The per-step latency of the floor: one dependent step with (almost) nothing to compute,
    # measured as our fast path's time per step on a tiny model (H = D = 16, B = 1,
    # T = 1000): the cheapest dependent step measured on this machine.
    tiny = dict(name="tiny", hidden=[16], input=16, batch=1, time=1000)
    tiny_step_us = ours_stats(a.bin, tiny, "fast", a.threads, max(0.1, min(seconds, 1.0)),
                              min_iters=3)["median"] * 1e3 / tiny["time"]
    header = ["tool", "shape", "layers", "hidden", "input", "batch", "time", "precision",
              "algo", "status", "median_us", "p10_us", "p90_us", "min_us", "reps",
              "us_per_step", "gflops", "setup_ms", "note", "check", "max_rel_err"]
    fh = open(a.long_csv, "w", newline="")
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(header)

    def emit(tool, s, algo, st, note, check="", err="", setup_ms=""):
        f = flops(s)
        pre = [tool, s["name"], len(s["hidden"]), ":".join(map(str, s["hidden"])), s["input"],
               s["batch"], s["time"], "fp32", algo]
        if st is None:  # a side that could not run: the row says why
            w.writerow(pre + ["error"] + [""] * 7 + [setup_ms, note, check, err])
            fh.flush()
            print("%-12s %-22s %-9s %15s  %s" % (tool, s["name"], algo, "not run", note),
                  flush=True)
            return
        r = pre + ["ok", "%.3f" % (st["median"] * 1e3), "%.3f" % (st["p10"] * 1e3),
                   "%.3f" % (st["p90"] * 1e3), "%.3f" % (st["min"] * 1e3), st["reps"],
                   "%.3f" % (st["median"] * 1e3 / s["time"]), "%.1f" % (f / st["median"] * 1e-6),
                   setup_ms, note, check, err]
        w.writerow(r)
        fh.flush()
        print("%-12s %-22s %-9s %12.1f us  p10-p90 %.1f-%.1f  %s%s" % (
            tool, s["name"], algo, st["median"] * 1e3, st["p10"] * 1e3, st["p90"] * 1e3, note,
            "  [check %s]" % check if check else ""), flush=True)

    # The SGEMM rate beside each shape: a short probe in each of the shape's rounds, with the
    # kernel that gave the better peak at the start.  The machine's speed can move by tens of
    # percent within a run (a shared VM), so a row's share of the peak is read against the
    # rate measured in its own rounds, not against a peak taken minutes away (report.py).
    best_start = max(peaks, key=lambda p: float(p["gflops"]))
    probe_env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    if best_start is not peak_auto:
        probe_env["OPENBLAS_CORETYPE"] = best_start["corename"]
    beside = {}  # shape name -> best probe GFLOP/s over its rounds

    def probe():
        kv = run_bin([a.bin, "peak", "--threads", str(a.threads), "--size",
                      str(a.probe_size), "--seconds", "%g" % a.probe_seconds, "--fma", "0"],
                     probe_env)
        return float(kv["gflops"])

    for s in grid:
        f = flops(s)
        # ONNX Runtime's worker for this shape: our model dumped, its session made and its
        # output checked before any timing.
        side = OrtSide(a, ort_py, s, a.ort_tol) if ort_py else None
        # Rounds alternate ours, PyTorch and ONNX Runtime so that all see the same machine;
        # each side keeps its round with the lowest median (the machine may be shared).
        best_ours = best_torch = best_ort = None
        try:
            for _ in range(a.rounds):
                st = ours_stats(a.bin, s, "fast", a.threads, seconds / a.rounds)
                if best_ours is None or st["median"] < best_ours["median"]:
                    best_ours = st
                if torch is not None:
                    st = torch_time(torch, s, a.threads, seconds / a.rounds, stats=True)
                    if best_torch is None or st["median"] < best_torch["median"]:
                        best_torch = st
                if side is not None:
                    st = side.time(seconds / a.rounds)
                    if st is not None and (best_ort is None or
                                           st["median"] < best_ort["median"]):
                        best_ort = st
                if a.probe_seconds > 0:
                    beside[s["name"]] = max(beside.get(s["name"], 0.0), probe())
        finally:  # the worker and its files go whatever happens (the check stays)
            if side is not None:
                side.close()
        note = "threads=%d; best of %d round(s); inputs rotate among 4" % (a.threads, a.rounds)
        emit("ours_cpu", s, "fast", best_ours, note + "; " + best_ours["plan"])
        ours_plans.setdefault(best_ours["plan"], []).append(s["name"])
        if best_torch is not None:
            emit("pytorch_cpu", s, "nn.LSTM", best_torch, note + "; torch " + torch_version)
        if side is not None:
            c = side.check
            if side.error:
                emit("ort_cpu", s, "LSTM", None, "ONNX Runtime %s did not run: %s" % (
                    ort_info["ort"], side.error), c.get("check", ""), c.get("max_rel_err", ""))
            else:
                emit("ort_cpu", s, "LSTM", best_ort, note + "; onnxruntime %s, %s; %s" % (
                    ort_info["ort"], "IOBinding, intra_op %d, inter_op 1, sequential, "
                    "ORT_ENABLE_ALL" % a.threads, side.note()), c.get("check", ""),
                    c.get("max_rel_err", ""), c.get("setup_ms", ""))
        # The reference path (naive loops) where it is cheap: up to 0.5 GFLOP per call.
        if not a.no_reference and f <= 0.5e9 and not (a.quick and f > 1e8):
            st = ours_stats(a.bin, s, "reference", a.threads, seconds / 4, min_iters=1)
            emit("ours_cpu", s, "reference", st, "threads=%d" % a.threads)
    fh.close()

    # The ceilings again, at the end: the machine (a shared VM) can run slower for minutes at a
    # time, invisibly to the load average; a floor must not rest on a slow moment, so the
    # SGEMM peak is the better of the start and the end, the tiny step the faster.
    best = max(peaks, key=lambda p: float(p["gflops"]))
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    if best is not peak_auto:
        env["OPENBLAS_CORETYPE"] = best["corename"]
    again = run_bin([a.bin, "peak", "--threads", str(a.threads), "--seconds", str(seconds * 2),
                     "--size", str(a.peak_size)], env)
    again["when"] = "end"
    peaks = peaks + [again]
    peak_gflops = max(peak_gflops, float(again["gflops"]))
    tiny_step_us = min(tiny_step_us, ours_stats(a.bin, tiny, "fast", a.threads,
                                                max(0.1, min(seconds, 1.0)),
                                                min_iters=3)["median"] * 1e3 / tiny["time"])
    kernel = peak_auto["corename"]
    forced = [p for p in peaks if p is not peak_auto]
    with open(a.machine_csv, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["tool", "metric", "value", "unit", "detail"])
        w.writerow(["ceiling_cpu", "sgemm_GFLOPs", "%.1f" % peak_gflops, "GFLOP/s",
                    "best %d^3 cblas_sgemm below (start and end of the run), %d threads" % (a.peak_size, a.threads)])
        for p in peaks:
            w.writerow(["ceiling_cpu", "sgemm_%s%s_GFLOPs" % (p["corename"],
                                                              "_end" if p is again else ""),
                        p["gflops"], "GFLOP/s",
                        "OpenBLAS kernel %s %s%s" % (
                            p["corename"], "as selected at run time"
                            if p is peak_auto or (p is again and best is peak_auto) else
                            "forced by OPENBLAS_CORETYPE for this line",
                            ", at the end of the run" if p is again else
                            ", at the start of the run")])
        for name, gflops in beside.items():
            w.writerow(["ceiling_cpu", "sgemm_beside_GFLOPs:%s" % name, "%.1f" % gflops,
                        "GFLOP/s", "best of %d %d^3 cblas_sgemm probes (kernel %s), one in "
                        "each of this shape's rounds, %d threads" % (
                            a.rounds, a.probe_size, best_start["corename"], a.threads)])
        w.writerow(["ceiling_cpu", "fma_GFLOPs", "%.1f" % fma_gflops, "GFLOP/s",
                    "register-only FMAs (%s), %d threads" % (peaks[0].get("fma_isa", "?"),
                                                            a.threads)])
        w.writerow(["ceiling_cpu", "copy_GBps", m["copy_gbps"], "GB/s",
                    "%s MiB memcpy split over %s threads, bytes read + written, median"
                    % (m["copy_mib"], m["threads"])])
        # The same for smaller working sets (source + destination), which stay in cache
        # from one copy to the next, as a small model's weights do from one call to the next.
        for point in m.get("copy_curve", "").split(","):
            if ":" in point:
                ws, gbps = point.split(":")
                w.writerow(["ceiling_cpu", "copy_GBps_ws%sMiB" % ws, gbps, "GB/s",
                            "working set %s MiB (src + dst), copied repeatedly, median" % ws])
        # Read bandwidth per working set (each thread reading its slice, forward and backward
        # in turn, as a step's weight stream): the memory floor's ceiling (report.py).
        for point in m.get("read_curve", "").split(","):
            if ":" in point:
                ws, gbps = point.split(":")
                w.writerow(["ceiling_cpu", "read_GBps_ws%sMiB" % ws, gbps, "GB/s",
                            "working set %s MiB read repeatedly (forward, backward) split over "
                            "%s threads, median" % (ws, m["threads"])])
        w.writerow(["ceiling_cpu", "step_latency_us", "%.3f" % tiny_step_us, "us",
                    "tiny step: libstacklstm fast path per step, H=D=16 B=1 T=1000, median "
                    "(the faster of the start and the end of the run)"])
        w.writerow(["info", "blas_kernel", kernel, "",
                    "OpenBLAS kernel selected at run time; %s" % peak_auto["config"]
                    + ("; the peak used " + forced[0]["corename"] if forced and
                       float(forced[0]["gflops"]) > float(peak_auto["gflops"]) else "")])
        w.writerow(["info", "threads", str(a.threads), "", "session num_threads, "
                    "torch.set_num_threads, OPENBLAS_NUM_THREADS for the peak"])
        w.writerow(["info", "torch", torch_version, "", "PyTorch CPU, eval + inference_mode"])
        w.writerow(["info", "machine", lscpu_model(), "", "%d logical CPUs" % os.cpu_count()])
        flags = ort_anchor.cpu_flags()
        w.writerow(["info", "ours_kernel", "; ".join(
            "%s (%s)" % (p, ", ".join(v) if len(v) < len(grid) else "every shape")
            for p, v in ours_plans.items()), "",
            "our fast path's session plan (slstm_session_describe) per shape"])
        w.writerow(["info", "isa", ort_anchor.isa_summary(flags), "",
                    "vector extensions in /proc/cpuinfo flags"])
        w.writerow(["info", "torch_backend", torch_backend(torch), "",
                    "torch.backends and torch.__config__.show()"])
        if ort_py:
            w.writerow(["info", "ort", "onnxruntime %s (onnx %s)" % (ort_info["ort"],
                                                                   ort_info.get("onnx", "?")),
                        "", "providers %s; build %s; python %s; a call that computes "
                        "nothing costs %s us through this binding (in every ORT time)" % (
                            ort_info.get("providers", "?"), ort_info.get("build", "?"),
                            ort_py, ort_info.get("call_us", "?"))])
        else:
            w.writerow(["info", "ort", "not run", "", ort_reason])
        w.writerow(["info", "ort_kernel", "MLAS %s" % ort_anchor.mlas_isa(flags), "",
                    "MLAS's float GEMM kernel for these CPU flags, by MLAS's x86 dispatch rule "
                    "(ORT does not report it): AVX-512F -> Avx512F, AVX2+FMA -> Fma3"])
        w.writerow(["info", "load_bench", "before %s, after %s" % (
            load_before, "%.2f %.2f %.2f" % os.getloadavg()), "",
                    "os.getloadavg() around the timed shapes"])
        w.writerow(["info", "commit_bench", commit_info(), "", "git, at the end of the run"])
    print("ceilings (start and end): SGEMM %.1f GFLOP/s (kernel as selected: %s, %s GFLOP/s), FMA %.1f GFLOP/s, "
          "copy %s GB/s, tiny step %.3f us" % (
              peak_gflops, kernel, peak_auto["gflops"], fma_gflops, m["copy_gbps"],
              tiny_step_us), flush=True)

    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--quick", action="store_true", help="short timings (a few minutes)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out-dir", default=os.path.join(HERE, "..", "results"))
    ap.add_argument("--rounds", type=int, default=0, help="alternating rounds per shape")
    ap.add_argument("--grid", help="time this grid file's shapes (bench/anchors/grid.csv)")
    ap.add_argument("--only", default="", help="with --grid: these shape names only")
    ap.add_argument("--long-csv", help="with --grid: the timing rows")
    ap.add_argument("--machine-csv", help="with --grid: the machine's ceilings")
    ap.add_argument("--seconds", type=float, default=0.0,
                    help="timed seconds per shape and side, split over the rounds")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--no-reference", action="store_true", help="leave the reference path out")
    ap.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    ap.add_argument("--ort-python", default="",
                    help="a python3 that imports onnxruntime and onnx (default: $SLSTM_ORT_PYTHON, "
                         "this python, BUILD/ort-venv/bin/python)")
    ap.add_argument("--install-ort", action="store_true",
                    help="pip-install onnxruntime and onnx into BUILD/ort-venv when no "
                         "python here imports them")
    ap.add_argument("--ort-tol", type=float, default=ort_anchor.TOL,
                    help="ORT vs our reference: max relative error allowed (default %(default)g)")
    ap.add_argument("--peak-size", type=int, default=4096, help="SGEMM size for the peak")
    ap.add_argument("--probe-size", type=int, default=2048,
                    help="with --grid: SGEMM size of the probe in each shape's rounds")
    ap.add_argument("--probe-seconds", type=float, default=0.2,
                    help="with --grid: seconds of each probe (0: no probes)")
    ap.add_argument("--copy-mib", type=int, default=512, help="buffer for the copy bandwidth")
    a = ap.parse_args()
    if a.grid and not (a.long_csv and a.machine_csv):
        ap.error("--grid needs --long-csv and --machine-csv")
    seconds = a.seconds if a.seconds > 0 else 0.4 if a.quick else 3.0
    if a.rounds < 1:
        a.rounds = 1 if a.quick else 3
    torch, torch_version = None, "left out (--no-torch)"
    if not a.no_torch:
        try:
            import torch
            torch_version = torch.__version__
        except ImportError:
            torch, torch_version = None, "not installed"

    # The machine's SGEMM peak with OpenBLAS as it selects its kernel here, and, on AVX-512
    # CPUs, with OpenBLAS's AVX-512 kernel forced for this measurement only (Debian's 0.3.21
    # may not recognise a newer CPU and fall back to an old kernel).  The floor uses the best.
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    size = ["--size", str(a.peak_size)]
    peak_auto = run_bin([a.bin, "peak", "--threads", str(a.threads), "--seconds",
                         str(seconds * 2)] + size, env)
    peaks = [peak_auto]
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        flags = ""
    if " avx512f" in flags:
        peaks.append(run_bin([a.bin, "peak", "--threads", str(a.threads), "--seconds",
                              str(seconds * 2)] + size, dict(env, OPENBLAS_CORETYPE="SkylakeX")))
    best = max(peaks, key=lambda p: float(p["gflops"]))
    peak_gflops = float(best["gflops"])
    # The arithmetic ceiling: register-only FMAs on the same threads (best of the runs).
    # Measured on all threads at once and on one (times the thread count): a busy machine
    # lowers the first, so the ceiling is the larger.
    one = run_bin([a.bin, "peak", "--threads", "1", "--size", str(min(1024, a.peak_size)),
                   "--seconds", str(min(0.5, seconds))], env)
    fma_gflops = max([float(p["fma_gflops"]) for p in peaks] +
                     [float(one["fma_gflops"]) * a.threads])
    if a.no_ort:
        ort = (None, None, "left out (--no-ort)")
    else:
        ort = find_ort_python(a)
    print("ONNX Runtime: " + ("onnxruntime %s via %s" % (ort[1]["ort"], ort[0]) if ort[0]
                              else ort[2]), flush=True)
    if a.grid:
        return grid_main(a, torch, torch_version, peaks, peak_auto, peak_gflops, fma_gflops,
                         seconds, ort)

    rows = []
    load_before = "%.2f %.2f %.2f" % os.getloadavg()
    for s in shapes():
        f = flops(s)
        side = OrtSide(a, ort[0], s, a.ort_tol) if ort[0] else None
        # Rounds alternate ours, PyTorch and ONNX Runtime so that all see the same machine;
        # each side's time is its best round median (the machine may be shared: see the load
        # average).
        fast_ms = fast_min = t_ms = t_min = o_ms = o_min = float("inf")
        try:
            for _ in range(a.rounds):
                m, mn = ours(a.bin, s, "fast", a.threads, seconds / a.rounds)
                fast_ms, fast_min = min(fast_ms, m), min(fast_min, mn)
                if torch is not None:
                    m, mn = torch_time(torch, s, a.threads, seconds / a.rounds)
                    t_ms, t_min = min(t_ms, m), min(t_min, mn)
                if side is not None:
                    st = side.time(seconds / a.rounds)
                    if st is not None:
                        o_ms, o_min = min(o_ms, st["median"]), min(o_min, st["min"])
        finally:
            if side is not None:
                side.close()
        if torch is None:
            t_ms = t_min = float("nan")
        if side is None or side.error or o_ms == float("inf"):
            o_ms = o_min = float("nan")
        ort_check = ("-" if side is None else "not run: " + side.error if side.error else
                     "%s %s" % (side.check.get("check", "?"), side.check.get("max_rel_err", "?")))
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
                   ort_ms="%.3f" % o_ms, ort_min_ms="%.3f" % o_min,
                   ort_over_fast="%.2f" % (o_ms / fast_ms), ort_check=ort_check,
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
                 f"{' (quick mode)' if a.quick else ''}; commit {commit_info()}\n")
        fh.write(f"- machine: {lscpu_model()}, {os.cpu_count()} logical CPUs; ISA "
                 f"{ort_anchor.isa_summary(ort_anchor.cpu_flags())}; load average "
                 f"before {load_before}, at the end {load}\n")
        fh.write(f"- threads: {a.threads} (our session num_threads, torch.set_num_threads, "
                 f"OPENBLAS_NUM_THREADS for the peak)\n")
        fh.write(f"- PyTorch {torch_version}, CPU, eval + inference_mode, time-major input; "
                 f"{torch_backend(torch)}\n")
        if ort[0]:
            fh.write(f"- ONNX Runtime {ort[1]['ort']} ({ort[1].get('providers', '?')}; MLAS "
                     f"{ort_anchor.mlas_isa(ort_anchor.cpu_flags())} by MLAS's dispatch rule "
                     f"for these CPU flags): our weights and inputs as one ONNX LSTM node per "
                     f"layer, intra_op_num_threads {a.threads}, inter_op 1, sequential, "
                     f"ORT_ENABLE_ALL, IOBinding; output checked against our reference "
                     f"(ORT check: max relative error, tolerance {a.ort_tol:g})\n")
        else:
            fh.write(f"- ONNX Runtime: not run ({ort[2]})\n")
        for p in peaks:
            fh.write(f"- SGEMM peak ({p['size']}^3 cblas_sgemm): {float(p['gflops']):.1f} "
                     f"GFLOP/s with OpenBLAS kernel `{p['corename']}` ({p['config']})"
                     f"{' [kernel forced by OPENBLAS_CORETYPE for this line only]' if p is not peak_auto else ' [as selected at run time]'}\n")
        fh.write(f"- floor = FLOPs / {peak_gflops:.1f} GFLOP/s (the best SGEMM peak above); "
                 f"FMA floor = FLOPs / {fma_gflops:.1f} GFLOP/s (register-only "
                 f"{peaks[0].get('fma_isa', '?')} FMAs: the "
                 f"larger of {a.threads} threads measured together and {a.threads} x one "
                 f"thread; the arithmetic ceiling, which no GEMM reaches)\n")
        fh.write("- OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for the run (bench/cpu/run.sh).\n"
                 "  On AVX-512 CPUs the fast path runs its own packed AVX-512 kernels for both\n"
                 "  GEMMs, so its time does not depend on the OpenBLAS kernel selected.\n\n")
        fh.write("| shape | GFLOP | ours fast ms | ours ref ms | PyTorch ms | PyTorch/ours | "
                 "ORT ms | ORT/ours | ORT check | "
                 "ours GFLOP/s | SGEMM floor ms | ours/floor | FMA floor ms | ours/FMA floor |\n")
        fh.write("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
        for r in rows:
            nan = ("nan", "-")
            fh.write(f"| {r['shape']} | {r['gflop']} | {r['fast_ms']} | {r['reference_ms'] or '-'}"
                     f" | {r['torch_ms']} | {r['torch_over_fast']} | "
                     f"{'-' if r['ort_ms'] in nan else r['ort_ms']} | "
                     f"{'-' if r['ort_over_fast'] in nan else r['ort_over_fast']} | "
                     f"{r['ort_check']} | {r['fast_gflops']} | "
                     f"{r['floor_ms']} | {r['fast_over_floor']} | {r['fma_floor_ms']} | "
                     f"{r['fast_over_fma_floor']} |\n")
        fh.write(f"\nTimes: per shape, {a.rounds} round(s) alternating ours, PyTorch and ONNX "
                 "Runtime; in each round the median of repeated calls after one warm-up call; "
                 "the table shows each side's best round (cpu.csv also has the fastest single "
                 "calls). PyTorch/ours > 1 and ORT/ours > 1 mean libstacklstm is faster.\n")
        fh.write("\nCaveat: this is a 2-CPU VM shared with other jobs (load average above). PyTorch's "
                 "times swing widely between runs here when the machine is loaded (seed_T100 "
                 "from ~12 ms on a quiet machine to seconds on a loaded one): its "
                 "OpenMP workers stall when another job holds a core; ours use one barrier per "
                 "step that yields after a short spin, and fewer workers on small problems. "
                 "Compare ratios from one run only.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
