#!/usr/bin/env python3
"""The dynamic batcher against one library call per request (issue 17 item 2), on the CPU.

N concurrent clients (threads), each a closed loop: submit a request, wait for its result,
submit the next. Two workloads:

  frames     each client owns one stream and sends single frames [D]; one call per request
             is Streams.step([slot], x[None]) on the same Streams table (its lock serializes
             the clients, as a shared session would), the batcher groups frames of different
             streams into one Streams.step.
  sequences  each client sends whole sequences [T, D], T uniform in [t_min, t_max]; one call
             per request is Session.forward(x[None]) on one shared session, the batcher
             pads a window's sequences into one forward with sequence_lengths.

Per (workload, clients, mode) it runs `--seconds` and reports requests/s and the p50/p99
latency of a request (submit to result). Writes a markdown table (machine, commit, date, load
average before/after) to --out when given.

    SLSTM_LIBRARY=build/libstacklstm.so python3 bench/serving/batcher_bench.py \
        --out bench/results/serving-batcher.md
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, os.path.dirname(HERE))

import stacklstm                                  # noqa: E402
from stacklstm.batcher import Batcher             # noqa: E402
from stacklstm.streams import Streams             # noqa: E402
from benchlib import quantile                     # noqa: E402


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d cores, %s" % (cpu, os.cpu_count() or 0, platform.platform())


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def commit():
    try:
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
        out = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "python",
                                "bench/serving"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return out + (" (+ uncommitted changes)" if dirty else "")
    except Exception:
        return "?"


def drive(clients, seconds, request):
    """Runs `clients` closed-loop threads for `seconds`; request(client, i) does one request.
    Returns (requests per second, latencies in seconds)."""
    lat = [[] for _ in range(clients)]
    stop = threading.Event()
    start = threading.Barrier(clients + 1)

    def loop(k):
        start.wait()
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            request(k, i)
            lat[k].append(time.perf_counter() - t0)
            i += 1

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    all_lat = [x for v in lat for x in v]
    return len(all_lat) / wall, all_lat


def drive_async(clients, seconds, request):
    """`clients` closed-loop coroutines in one event loop for `seconds`; request(k, i) is
    awaited (or, when it returns a non-awaitable, was a synchronous call)."""
    import asyncio
    lat = [[] for _ in range(clients)]

    async def loop(k, stop):
        i = 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = request(k, i)
            if asyncio.iscoroutine(r):
                await r
            else:
                await asyncio.sleep(0)   # a synchronous call: let the other clients in
            lat[k].append(time.perf_counter() - t0)
            i += 1

    async def main():
        stop = time.perf_counter() + seconds
        t0 = time.perf_counter()
        await asyncio.gather(*[loop(k, stop) for k in range(clients)])
        return time.perf_counter() - t0

    wall = asyncio.run(main())
    all_lat = [x for v in lat for x in v]
    return len(all_lat) / wall, all_lat


def run_frames_async(model, clients, args, mode, rng):
    return run_frames(model, clients, args, mode, rng, drive_async, True)


def run_frames(model, clients, args, mode, rng, driver=None, aio=False):
    driver = driver or drive
    xs = rng.standard_normal((clients, 64, model.input_size)).astype(np.float32)
    if mode == "direct":
        with Streams(model, clients, 1, num_threads=args.threads) as s:
            slots = [s.open() for _ in range(clients)]
            return driver(clients, args.seconds_now,
                          lambda k, i: s.step([slots[k]], xs[k, i % 64][None]))
    with Batcher(model, max_batch=args.max_batch, max_wait_us=args.max_wait_us,
                 max_streams=clients, max_time=0, num_threads=args.threads) as b:
        for k in range(clients):
            b.open_stream(k)
        if aio:
            r = driver(clients, args.seconds_now, lambda k, i: b.aframe(k, xs[k, i % 64]))
        else:
            r = driver(clients, args.seconds_now, lambda k, i: b.frame(k, xs[k, i % 64]))
        return r + (b.stats(),)


def run_sequences(model, clients, args, mode, rng):
    lens = rng.integers(args.t_min, args.t_max + 1, size=(clients, 16))
    xs = [[rng.standard_normal((int(T), model.input_size)).astype(np.float32) for T in row]
          for row in lens]
    if mode == "direct":
        with model.session(1, args.t_max, num_threads=args.threads) as s:
            return drive(clients, args.seconds_now, lambda k, i: s.forward(xs[k][i % 16][None]))
    with Batcher(model, max_batch=args.max_batch, max_wait_us=args.max_wait_us,
                 max_streams=0, max_time=args.t_max, num_threads=args.threads) as b:
        r = drive(clients, args.seconds_now, lambda k, i: b.sequence(xs[k][i % 16]))
        return r + (b.stats(),)


MODES = ("direct", "batcher")


def library_cost(model, args):
    """The library alone, per row: forward of [B, 30, 128] and step of [B, 128] at B = 1 and
    max_batch (best of 15 calls, one session, args.threads threads): what batching can gain
    before any Python or queueing cost."""
    out = []
    for what, T in (("step (one frame)", 1), ("forward T=30", 30)):
        calls, best, sessions = {}, {}, []
        for B in (1, args.max_batch):
            x = np.random.default_rng(0).random((B, T, model.input_size), np.float32)
            s = model.session(B, T, num_threads=args.threads)
            sessions.append(s)
            calls[B] = (lambda s=s, x=x: s.step(x[:, 0])) if T == 1 else \
                (lambda s=s, x=x: s.forward(x))
            calls[B]()
            best[B] = float("inf")
        for _ in range(15):   # alternating, so that load drift hits both sizes alike
            for B in calls:
                t0 = time.perf_counter()
                calls[B]()
                best[B] = min(best[B], time.perf_counter() - t0)
        for s in sessions:
            s.close()
        per_row = {B: best[B] / B * 1e6 for B in best}
        out.append((what, per_row[1], per_row[args.max_batch]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="1,8,32", help="comma-separated client counts")
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="per (workload, clients, mode), split over --rounds")
    ap.add_argument("--rounds", type=int, default=3,
                    help="direct and batcher alternate this many times per row")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-us", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="library threads per session")
    ap.add_argument("--t-min", type=int, default=10)
    ap.add_argument("--t-max", type=int, default=50)
    ap.add_argument("--workloads", default="frames,frames-asyncio,sequences")
    ap.add_argument("--out", help="write the markdown report here")
    args = ap.parse_args()
    model = stacklstm.Model.random(128, [100, 200, 300], seed=1)
    load_before = loadavg()
    rows = []
    for wl in args.workloads.split(","):
        fn = {"frames": run_frames, "frames-asyncio": run_frames_async,
              "sequences": run_sequences}[wl]
        for n in [int(c) for c in args.clients.split(",")]:
            acc = {m: dict(n=0, wall=0.0, lat=[], served=0, calls=0) for m in MODES}
            for rnd in range(args.rounds):   # interleaved, order alternating: drift hits both
                for mode in (MODES if rnd % 2 == 0 else MODES[::-1]):
                    args.seconds_now = args.seconds / args.rounds
                    r = fn(model, n, args, mode, np.random.default_rng(n))
                    a = acc[mode]
                    a["n"] += len(r[1])
                    a["wall"] += len(r[1]) / r[0]
                    a["lat"] += r[1]
                    if len(r) > 2:
                        fr = wl.startswith("frames")
                        a["calls"] += r[2]["frame_calls"] if fr else r[2]["sequence_calls"]
                        a["served"] += r[2]["frames"] if fr else r[2]["sequences"]
            res = {}
            for mode in MODES:
                a = acc[mode]
                res[mode] = dict(rate=a["n"] / a["wall"], p50=quantile(a["lat"], 0.5) * 1e3,
                                 p99=quantile(a["lat"], 0.99) * 1e3,
                                 mean_batch=(a["served"] / a["calls"]) if a["calls"] else 1.0)
                print("%-9s clients=%-3d %-7s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  "
                      "mean batch %.1f" % (wl, n, mode, res[mode]["rate"], res[mode]["p50"],
                                           res[mode]["p99"], res[mode]["mean_batch"]),
                      flush=True)
            rows.append((wl, n, res))
    cost = library_cost(model, args)
    load_after = loadavg()
    lines = [
        "# Dynamic batcher vs one call per request (CPU)",
        "",
        "`bench/serving/batcher_bench.py` (issue 17 item 2). Model: seed architecture, input "
        "128, hidden [100, 200, 300], `Model.random(seed=1)`, CPU backend, auto path, %d "
        "library thread(s) per session. Closed-loop clients (threads): each submits one "
        "request and waits for its result; *frames-asyncio*: the clients are coroutines in "
        "one event loop instead (direct: each makes its synchronous call in turn; batcher: "
        "`await batcher.aframe`). *direct*: one library call per request on one "
        "shared Streams table (frames) or session (sequences), serialized by its lock; "
        "*batcher*: `stacklstm.batcher.Batcher(max_batch=%d, max_wait_us=%d)`. Frames: one "
        "[128] frame of the client's own stream; sequences: [T, 128], T uniform in [%d, %d]. "
        "%.0f s per row, as %d interleaved rounds of direct and batcher (alternating which goes "
        "first); latency = submit to result."
        % (args.threads, args.max_batch, args.max_wait_us, args.t_min, args.t_max,
           args.seconds, args.rounds),
        "",
        "- machine: %s" % machine(),
        "- commit: %s; library: %s %s" % (commit(), getattr(stacklstm._lib, "library_path", "?"),
                                          stacklstm.version()),
        "- date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "- load average (1/5/15 min) before: %s, after: %s (the machine is shared: other "
        "jobs ran during the measurement)" % (load_before, load_after),
        "- command: `%s`" % " ".join(["python3", "bench/serving/batcher_bench.py"] +
                                     sys.argv[1:]),
        "",
        "| workload | clients | direct req/s | batcher req/s | gain | direct p50 / p99 ms "
        "| batcher p50 / p99 ms | mean batch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for wl, n, res in rows:
        d, b = res["direct"], res["batcher"]
        lines.append("| %s | %d | %.0f | %.0f | %.2fx | %.3f / %.3f | %.3f / %.3f | %.1f |"
                     % (wl, n, d["rate"], b["rate"], b["rate"] / d["rate"], d["p50"], d["p99"],
                        b["p50"], b["p99"], b["mean_batch"]))
    lines += ["", "The library alone (Python call included), time per row, best of 15 calls (the "
              "two sizes alternating):", "",
              "| call | batch 1 | batch %d | per-row gain |" % args.max_batch,
              "|---|---:|---:|---:|"]
    for what, one, many in cost:
        lines.append("| %s | %.1f us | %.1f us | %.2fx |" % (what, one, many, one / many))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
