#!/usr/bin/env python3
"""The Python package's cost per call above the C call it makes (issue 16, item 3).

A tiny model (input 4, one layer of 4; batch 1, time 1) makes the library's own work
negligible, so what a call costs in Python is its overhead. Timed, in rounds that alternate
so that every side sees the same (possibly busy) machine, each keeping its best round:

  C         bench/python/c_floor.c, built here with cc against the library: the same calls
            from C with arguments built once. This is the floor the target is measured from.
  ctypes    the package's own declared slstm_session_forward called from Python with an
            argument struct built once (what no Python wrapper can go below).
  Python    Session.forward / Session.step as users call them, every validation included,
            in several forms (state unpacked or packed, output buffers given or not).
  --ref REV the same Python cases with the package as it was at git revision REV (e.g. the
            commit before the fast path), for the before/after table.

Each call is timed by the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID, on both
sides) and by the wall clock, best of many short timings. The target is judged on CPU time:
on a shared or overcommitted machine the wall clock mostly measures the other processes
(and the hypervisor), which no wrapper can remove; on a quiet machine the two agree.

    SLSTM_LIBRARY=build/libstacklstm.so python3 bench/python/overhead.py [--ref REV]
        [--rounds 7] [--calls 20000] [--out bench/results/python-overhead.md | --no-write]

The export header (stacklstm/stacklstm_export.h) is looked for in <library dir>/include
(a build tree) and <library dir>/../include (an install); --include DIR names it otherwise.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TARGET_US = 10.0

# (name, what it does); the worker times each one.
CASES = [
    ("forward", "s.forward(x): outputs and the final state as one LSTMStateTuple per layer"),
    ("forward_packed", "s.forward(x, packed_state=True)"),
    ("forward_state_in", "s.forward(x, initial_state=packed, packed_state=True)"),
    ("forward_into", "s.forward(x, out=o, final_state_out=f, packed_state=True)"),
    ("step", "s.step(x2): last h and the state per layer"),
    ("step_packed", "s.step(x2, state=packed, packed_state=True)"),
    ("ctypes_forward", "lib.slstm_session_forward(handle, byref(args built once))"),
]


def worker(calls, repeats):
    """Run inside a process whose sys.path starts with the package to time; prints JSON
    {case: best ns per call}."""
    import ctypes
    import time
    import timeit

    import numpy as np

    import stacklstm
    from stacklstm import _lib

    m = stacklstm.Model.random(4, [4], seed=1)
    s = m.session(1, 1)
    x = np.linspace(-1, 1, 4, dtype=np.float32).reshape(1, 1, 4)
    x2 = x.reshape(1, 4)
    packed = np.zeros(m.state_count(1), np.float32)
    o = np.empty((1, 1, 4), np.float32)
    f = np.empty(m.state_count(1), np.float32)

    args = _lib.padded(_lib.ForwardArgs, _lib.lib.slstm_forward_args_init_sized)
    a = args.s
    a.batch, a.time = 1, 1
    a.input, a.input_count = x.ctypes.data_as(_lib.c_float_p), 4
    a.output, a.output_count = o.ctypes.data_as(_lib.c_float_p), 4
    a.final_state, a.final_state_count = f.ctypes.data_as(_lib.c_float_p), f.size
    ref = ctypes.byref(args)
    fwd = _lib.lib.slstm_session_forward
    h = s._h

    def ctypes_forward():
        if fwd(h, ref):
            raise RuntimeError("slstm_session_forward failed")

    fns = {
        "forward": lambda: s.forward(x),
        "forward_packed": lambda: s.forward(x, packed_state=True),
        "forward_state_in": lambda: s.forward(x, initial_state=packed, packed_state=True),
        "forward_into": lambda: s.forward(x, out=o, final_state_out=f, packed_state=True),
        "step": lambda: s.step(x2),
        "step_packed": lambda: s.step(x2, state=packed, packed_state=True),
        "ctypes_forward": ctypes_forward,
    }
    # The cases give the numbers of the plain call (a check that the timing is of real work).
    want_o, _ = s.forward(x, packed_state=True)
    got_o, _ = s.step(x2)
    if not np.array_equal(want_o.reshape(1, 4), got_o):
        raise SystemExit("overhead.py: forward and step disagree on one step")
    out = {}
    for name, fn in fns.items():
        fn()
        for clock, timer in (("cpu", time.thread_time), ("wall", time.perf_counter)):
            t = timeit.Timer(fn, timer=timer)
            out[name + "_" + clock] = min(t.repeat(number=calls, repeat=repeats)) / calls * 1e9
    s.close()
    m.close()
    print(json.dumps(out))


def run_worker(pkg_parent, calls, repeats, env):
    code = ("import sys; sys.path.insert(0, %r); sys.path.insert(1, %r); import overhead; "
            "overhead.worker(%d, %d)" % (pkg_parent, HERE, calls, repeats))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd="/")
    if r.returncode:
        raise SystemExit("overhead.py: the Python worker (%s) failed:\n%s"
                         % (pkg_parent, r.stderr))
    return json.loads(r.stdout.strip().splitlines()[-1])


def find_library():
    env = os.environ.get("SLSTM_LIBRARY")
    if env:
        return os.path.abspath(os.path.join(env, "libstacklstm.so") if os.path.isdir(env)
                               else env)
    sys.path.insert(0, os.path.join(REPO, "python"))
    import stacklstm
    return os.path.abspath(stacklstm.library_path)


def build_floor(lib, include, workdir):
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise SystemExit("overhead.py: no C compiler (%s) for the C floor; set CC" % cc)
    libdir = os.path.dirname(os.path.realpath(lib))
    incs = [os.path.join(REPO, "include")]
    cands = ([include] if include else
             [os.path.join(os.path.dirname(lib), "include"), os.path.join(libdir, "include"),
              os.path.join(libdir, "..", "include")])
    for c in cands:
        if os.path.exists(os.path.join(c, "stacklstm", "stacklstm_export.h")):
            incs.append(c)
            break
    else:
        raise SystemExit("overhead.py: stacklstm/stacklstm_export.h not found in %s; pass "
                         "--include DIR (the build tree's include/)" % cands)
    # Link the exact file loaded by the Python side (its soname resolves next to it).
    exe = os.path.join(workdir, "c_floor")
    cmd = [cc, "-O2", "-std=c99"] + ["-I" + i for i in incs] + [
        os.path.join(HERE, "c_floor.c"), os.path.realpath(lib),
        "-Wl,-rpath," + os.path.dirname(os.path.realpath(lib)), "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit("overhead.py: building the C floor failed:\n%s\n%s"
                         % (" ".join(cmd), r.stderr))
    return exe, " ".join(cmd)


def run_floor(exe, calls, repeats):
    r = subprocess.run([exe, str(calls), str(repeats)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit("overhead.py: c_floor failed: %s" % r.stderr)
    return {k: float(v) for k, v in (line.split() for line in r.stdout.strip().splitlines())}


def git(*args):
    r = subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def export_package(rev, workdir):
    """The python/ package as it is at `rev`, extracted into workdir; returns its parent."""
    dest = os.path.join(workdir, "ref")
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", REPO, "archive", rev, "python/stacklstm"],
                             capture_output=True)
    if archive.returncode:
        raise SystemExit("overhead.py: git archive %s failed: %s"
                         % (rev, archive.stderr.decode()))
    subprocess.run(["tar", "-x", "-C", dest], input=archive.stdout, check=True)
    return os.path.join(dest, "python")


def machine():
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d logical CPUs, %s" % (model, os.cpu_count() or 0, platform.platform())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=1000, help="calls per timing")
    ap.add_argument("--repeats", type=int, default=50, help="timings per case per round")
    ap.add_argument("--ref", help="also time the package as at this git revision")
    ap.add_argument("--include", help="directory holding stacklstm/stacklstm_export.h")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results",
                                                  "python-overhead.md"))
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)

    lib = find_library()
    env = dict(os.environ, SLSTM_LIBRARY=lib)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        exe, build_cmd = build_floor(lib, args.include, tmp)
        sides = [("now", os.path.join(REPO, "python"))]
        if args.ref:
            sides.append(("ref", export_package(args.ref, tmp)))
        best = {}
        for rnd in range(args.rounds):
            for name, v in run_floor(exe, args.calls, args.repeats).items():
                best[("C", name)] = min(best.get(("C", name), 1e30), v)
            for side, parent in sides:
                for case, v in run_worker(parent, args.calls, args.repeats, env).items():
                    best[(side, case)] = min(best.get((side, case), 1e30), v)
            print("round %d/%d done" % (rnd + 1, args.rounds), file=sys.stderr)
    load_after = os.getloadavg()

    us = lambda ns: ns / 1000.0   # noqa: E731

    def floor(case, clock):
        return best[("C", ("step_" if case.startswith("step") else "forward_") + clock)]

    rows = []
    for case, what in CASES:
        row = [what]
        for clock in ("cpu", "wall"):
            now = best[("now", case + "_" + clock)]
            if args.ref:
                ref = best.get(("ref", case + "_" + clock))
                row.append("%.2f" % us(ref) if ref is not None else "-")
            row += ["%.2f" % us(now), "%.2f" % us(floor(case, clock)),
                    "**%.2f**" % us(now - floor(case, clock))]
        rows.append(row)
    head = ["call (tiny model: input 4, one layer of 4, B=1, T=1)"]
    for clock in ("CPU", "wall"):
        if args.ref:
            head.append("%s: before (%s) µs" % (clock, args.ref))
        head += ["%s: now µs" % clock, "%s: C µs" % clock, "%s: now − C µs" % clock]
    worst = {clock: max(best[("now", c + "_" + clock)] - floor(c, clock)
                        for c, _ in CASES if c != "ctypes_forward")
             for clock in ("cpu", "wall")}
    commit = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "python/stacklstm", "bench/python")
    lines = [
        "# Python overhead per call (issue 16, item 3)",
        "",
        "Made by `bench/python/overhead.py`%s. Each number is per call, best of %d rounds (in "
        "each, the best of %d timings of %d calls), by the calling thread's CPU time and by "
        "the wall clock; the rounds alternate the C floor and the Python side(s) so that all "
        "see the same machine." % ((" --ref " + args.ref) if args.ref else "", args.rounds,
                                   args.repeats, args.calls),
        "",
        "- date (UTC): %s" % datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M"),
        "- commit: %s%s" % (commit, " (python/stacklstm or bench/python modified in the "
                            "working tree)" if dirty else ""),
        "- machine: %s; load average %.1f before, %.1f after" % (
            machine(), load_before[0], load_after[0]),
        "- Python %s, NumPy %s, library %s" % (
            platform.python_version(), _numpy_version(), lib),
        "- C floor: `%s`" % build_cmd.replace(REPO + "/", ""),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "",
        "The C floor is the same call from C with its arguments built once (forward %.2f µs, "
        "step %.2f µs CPU). The ctypes row is the least any ctypes wrapper pays (one declared "
        "call with a prebuilt struct). Target: every Python call within %.0f µs of the C "
        "call. Worst now: %.2f µs CPU time above it (%s), %.2f µs wall." % (
            us(best[("C", "forward_cpu")]), us(best[("C", "step_cpu")]), TARGET_US,
            us(worst["cpu"]), "met" if us(worst["cpu"]) < TARGET_US else "NOT met",
            us(worst["wall"])),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
        print("wrote %s" % args.out, file=sys.stderr)
    return 0


def _numpy_version():
    try:
        import numpy
        return numpy.__version__
    except ImportError:   # pragma: no cover
        return "?"


if __name__ == "__main__":
    sys.exit(main())
