#!/usr/bin/env python3
"""Ray Serve scale-out on one machine (issue 17 item 4): sequences/s, frames/s and p50/p99
latency with 1, 2, 4 replicas (shards) of stacklstm.ray.serve, the same model.

A local Ray cluster is started with --ray-cpus logical CPUs (each replica reserves one, so 4
replicas fit whatever the machine has); clients are asyncio tasks in this process using
deployment handles (no HTTP), closed loop: each sends a request and awaits its result.

  sequences  --seq-clients clients each send whole sequences [T, 128], T uniform in
             [t_min, t_max], to any shard (round robin).
  frames     --streams streams, each a client sending single frames [128] to its shard.

Writes a markdown table and a PNG chart:

    SLSTM_LIBRARY=build/libstacklstm.so python3 bench/serving/ray_scaling.py \
        --out bench/results/serving-ray.md --chart bench/results/serving-ray.png
"""
import argparse
import asyncio
import datetime
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYDIR = os.path.join(REPO, "python")
sys.path.insert(0, PYDIR)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import stacklstm                                     # noqa: E402
from stacklstm.ray import require_ray                # noqa: E402
from stacklstm.ray import serve as ss                # noqa: E402
from benchlib import quantile                        # noqa: E402
from batcher_bench import machine, loadavg, commit   # noqa: E402


async def closed_loop(n, seconds, request):
    """n tasks, each awaiting request(k, i) in a loop for `seconds`: (rate, latencies)."""
    lat = [[] for _ in range(n)]
    stop = time.perf_counter() + seconds

    async def one(k):
        i = 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await request(k, i)
            lat[k].append(time.perf_counter() - t0)
            i += 1

    t0 = time.perf_counter()
    await asyncio.gather(*[one(k) for k in range(n)])
    wall = time.perf_counter() - t0
    flat = [x for v in lat for x in v]
    return len(flat) / wall, flat


def measure(client, args, rng):
    lens = rng.integers(args.t_min, args.t_max + 1, size=(args.seq_clients, 8))
    xs = [[rng.standard_normal((int(T), 128)).astype(np.float32) for T in row] for row in lens]
    frames = rng.standard_normal((args.streams, 32, 128)).astype(np.float32)
    ids = ["stream-%d" % k for k in range(args.streams)]
    for sid in ids:
        client.open_stream(sid)

    async def warm():
        await asyncio.gather(*[client.asequence(xs[k][0]) for k in range(args.seq_clients)],
                             *[client.aframe(sid, frames[0, 0]) for sid in ids])

    async def seqs():
        return await closed_loop(args.seq_clients, args.seconds,
                                 lambda k, i: client.asequence(xs[k][i % 8]))

    async def frms():
        return await closed_loop(args.streams, args.seconds,
                                 lambda k, i: client.aframe(ids[k], frames[k, i % 32]))

    async def chunks():
        k = args.chunk
        return await closed_loop(args.streams, args.seconds,
                                 lambda c, i: client.aframes(ids[c], frames[c, (i * k) % 32:
                                                                            (i * k) % 32 + k]))

    async def gateways():   # each gateway sends one frame of each of its streams per request
        g = args.gateways
        mine = [[(ids[j], j) for j in range(k, args.streams, g)] for k in range(g)]

        async def one(k, i):
            await client.astep_streams([(sid, frames[j, i % 32]) for sid, j in mine[k]])
        return await closed_loop(g, args.seconds, one)

    async def pings():
        handles = [client._handles[s] for s in client.shards]
        return await closed_loop(args.streams, args.seconds,
                                 lambda c, i: handles[c % len(handles)].ping.remote())

    asyncio.run(warm())
    seq_rate, seq_lat = asyncio.run(seqs())
    frame_rate, frame_lat = asyncio.run(frms())
    chunk_rate, chunk_lat = asyncio.run(chunks())
    gate_rate, gate_lat = asyncio.run(gateways())
    ping_rate, _ = asyncio.run(pings())
    stats = [client.replica_info(s)["stats"] for s in client.shards]
    for sid in ids:
        client.close_stream(sid)
    mean_seq_batch = sum(s["sequences"] for s in stats) / max(1, sum(s["sequence_calls"]
                                                                       for s in stats))
    mean_frame_batch = sum(s["frames"] for s in stats) / max(1, sum(s["frame_calls"]
                                                                     for s in stats))
    return dict(seq_rate=seq_rate, seq_p50=quantile(seq_lat, .5) * 1e3,
                seq_p99=quantile(seq_lat, .99) * 1e3, frame_rate=frame_rate,
                frame_p50=quantile(frame_lat, .5) * 1e3, frame_p99=quantile(frame_lat, .99) * 1e3,
                seq_batch=mean_seq_batch, frame_batch=mean_frame_batch,
                chunk_frame_rate=chunk_rate * args.chunk,
                chunk_p50=quantile(chunk_lat, .5) * 1e3, ping_rate=ping_rate,
                gate_frame_rate=gate_rate * args.streams / args.gateways,
                gate_p50=quantile(gate_lat, .5) * 1e3)


def chart(rows, path, chunk):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    reps = [r["replicas"] for r in rows]
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    for key, label, style in (("seq_rate", "sequences/s", "o-"),
                              ("frame_rate", "frames/s, 1 per request", "s-"),
                              ("chunk_frame_rate", "frames/s, %d per request" % chunk, "^-"),
                              ("gate_frame_rate", "frames/s, many streams per request "
                               "(gateways)", "v-"),
                              ("ping_rate", "no-op requests/s (Ray Serve alone)", "x--")):
        ax[0].plot(reps, [r[key] for r in rows], style, label=label)
    ax[0].set_ylabel("per second")
    ax[0].set_title("throughput")
    ax[0].legend(fontsize=8)
    for i, (kind, title) in enumerate((("seq", "sequence latency"), ("frame", "frame latency"))):
        ax[i + 1].plot(reps, [r[kind + "_p50"] for r in rows], "o-", label="p50")
        ax[i + 1].plot(reps, [r[kind + "_p99"] for r in rows], "s--", label="p99")
        ax[i + 1].set_ylabel("ms")
        ax[i + 1].set_title(title)
        ax[i + 1].legend()
    for a in ax:
        a.set_xlabel("replicas (2 physical cores)")
        a.set_xticks(reps)
        a.set_ylim(bottom=0)
    fig.suptitle("stacklstm.ray.serve on one shared 2-core machine (seed model, CPU); clients: "
                 "one Python driver")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicas", default="1,2,4")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--seq-clients", type=int, default=16)
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--t-min", type=int, default=10)
    ap.add_argument("--t-max", type=int, default=50)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-us", type=int, default=1000)
    ap.add_argument("--ray-cpus", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=8, help="frames per request, chunked row")
    ap.add_argument("--gateways", type=int, default=2,
                    help="gateway row: clients each sending one frame of each of its "
                         "streams per round (client.astep_streams)")
    ap.add_argument("--out")
    ap.add_argument("--chart")
    args = ap.parse_args()
    ray = require_ray("serve")
    from ray import serve
    model = stacklstm.Model.random(128, [100, 200, 300], seed=1)
    env = {"PYTHONPATH": PYDIR + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if os.environ.get("SLSTM_LIBRARY"):
        env["SLSTM_LIBRARY"] = os.path.abspath(os.environ["SLSTM_LIBRARY"])
    load_before = loadavg()
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env}, configure_logging=False)
    rows = []
    try:
        serve.start(proxy_location="Disabled")
        for n in [int(r) for r in args.replicas.split(",")]:
            client = ss.deploy(model, shards=n, name="scale%d" % n, num_cpus=1, num_threads=1,
                               max_batch=args.max_batch, max_wait_us=args.max_wait_us,
                               max_time=args.t_max, max_streams=args.streams)
            r = measure(client, args, np.random.default_rng(n))
            r["replicas"] = n
            rows.append(r)
            print("replicas=%d  %7.1f seq/s (p50 %6.1f p99 %6.1f ms, batch %.1f)  %7.0f frames/s "
                  "(p50 %6.2f p99 %6.2f ms, batch %.1f)"
                  % (n, r["seq_rate"], r["seq_p50"], r["seq_p99"], r["seq_batch"],
                     r["frame_rate"], r["frame_p50"], r["frame_p99"], r["frame_batch"]),
                  flush=True)
            print("            %7.0f frames/s in %d-frame requests (p50 %.1f ms); %7.0f frames/s "
                  "via %d gateways (round p50 %.1f ms); no-op requests %7.0f/s"
                  % (r["chunk_frame_rate"], args.chunk, r["chunk_p50"], r["gate_frame_rate"],
                     args.gateways, r["gate_p50"], r["ping_rate"]), flush=True)
            ss.undeploy(client)
    finally:
        serve.shutdown()
        ray.shutdown()
    load_after = loadavg()
    if args.chart:
        chart(rows, args.chart, args.chunk)
    lines = [
        "# Ray Serve scale-out on one machine: 1, 2, 4 replicas (CPU)",
        "",
        "`bench/serving/ray_scaling.py` (issue 17 item 4). Model: input 128, hidden [100, 200, "
        "300] (`Model.random(seed=1)`), CPU backend, auto path, 1 library thread per replica. "
        "`stacklstm.ray.serve.deploy(shards=R)`: R single-replica shards, each a "
        "`Batcher(max_batch=%d, max_wait_us=%d)`; Ray started with %d logical CPUs, one per "
        "replica. Clients: asyncio tasks in the driver using deployment handles (no HTTP), "
        "closed loop. Sequences: %d clients, [T, 128] with T uniform in [%d, %d], round robin "
        "over the shards. Frames: %d streams, one client each, one [128] frame per request, "
        "each stream pinned to its shard; also %d frames of a stream per request "
        "(`client.aframes`), and %d gateways each sending one frame of each of its share of "
        "the streams per round (`client.astep_streams`: one request per shard). %.0f s per "
        "measurement; latency = request to result as the client sees it (handle routing and "
        "Ray's object transfer included)."
        % (args.max_batch, args.max_wait_us, args.ray_cpus, args.seq_clients, args.t_min,
           args.t_max, args.streams, args.chunk, args.gateways, args.seconds),
        "",
        "- machine: %s" % machine(),
        "- commit: %s; Ray %s; library %s" % (commit(), ray.__version__, stacklstm.version()),
        "- date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "- load average (1/5/15 min) before: %s, after: %s (shared machine)"
        % (load_before, load_after),
        "- command: `%s`" % " ".join(["python3", "bench/serving/ray_scaling.py"] + sys.argv[1:]),
        "",
        "| replicas | sequences/s | seq p50 / p99 ms | mean seq batch | frames/s "
        "| frame p50 / p99 ms | mean frame batch | frames/s, %d per request | frames/s, "
        "%d gateways | no-op requests/s |" % (args.chunk, args.gateways),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append("| %d | %.1f | %.1f / %.1f | %.1f | %.0f | %.2f / %.2f | %.1f | %.0f | %.0f "
                     "| %.0f |"
                     % (r["replicas"], r["seq_rate"], r["seq_p50"], r["seq_p99"],
                        r["seq_batch"], r["frame_rate"], r["frame_p50"], r["frame_p99"],
                        r["frame_batch"], r["chunk_frame_rate"], r["gate_frame_rate"],
                        r["ping_rate"]))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
