"""Pieces every benchmark script shares: the shape grid, the FLOP count, quantiles, and the
CSV / key=value files the benchmark programs write.  Imported by bench/report.py,
bench/cpu/bench_cpu.py, bench/anchors/pytorch_anchor.py and bench/anchors/summarize.py."""
import csv
import os


def load_grid(path, only=""):
    """The shapes of a grid file (bench/anchors/grid.csv): name, hidden sizes (a:b:c), input,
    batch, time and an optional `small` flag; `only` keeps the named rows (comma-separated)."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            p = [x.strip() for x in line.split(",")]
            out.append(dict(name=p[0], hidden=[int(h) for h in p[1].split(":")],
                            input=int(p[2]), batch=int(p[3]), time=int(p[4]),
                            small=len(p) > 5 and p[5] == "1"))
    if only:
        keep = only.split(",")
        missing = [k for k in keep if k not in {s["name"] for s in out}]
        if missing:
            raise SystemExit("not in %s: %s" % (path, ", ".join(missing)))
        out = [s for s in out if s["name"] in keep]
    return out


def flops(s):
    """Sum over layers of 8 * B * T * H_l * (I_l + H_l)."""
    total, inp = 0.0, s["input"]
    for h in s["hidden"]:
        total += 8.0 * s["batch"] * s["time"] * h * (inp + h)
        inp = h
    return total


def quantile(v, q):
    """Linear-interpolated quantile q in [0, 1] of a non-empty sequence."""
    v = sorted(v)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] * (1 - (pos - lo)) + v[hi] * (pos - lo)


def read_csv(path):
    """Rows of a CSV file with a header line, as dicts ([] when the file is absent or empty)."""
    if not path or not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return []
    head = rows[0]
    return [dict(zip(head, r)) for r in rows[1:] if len(r) == len(head)]


def read_meta(path):
    """(key, value) pairs of a key=value file, in order ([] when absent)."""
    meta = []
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta.append((k.strip(), v.strip()))
    return meta
