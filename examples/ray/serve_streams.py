#!/usr/bin/env python3
"""Online serving with Ray Serve: whole sequences from many clients batched on each replica,
and streams pinned to the shard that holds their state; with --kill, one replica is killed
mid-stream and the stream recovers from its checkpoint.

    SLSTM_LIBRARY=build/libstacklstm.so python3 examples/ray/serve_streams.py --shards 2 --kill

Needs `pip install "stacklstm[ray]"`. Starts a local Ray cluster (no HTTP proxy: the
clients use deployment handles).
"""
import argparse
import asyncio
import os
import signal
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "python")
sys.path.insert(0, PYDIR)

import stacklstm                          # noqa: E402
from stacklstm.ray import require_ray     # noqa: E402
from stacklstm.ray import serve as ss     # noqa: E402


async def stream_client(client, stream_id, frames):
    await client.aopen_stream(stream_id)
    outs = [await client.aframe(stream_id, f) for f in frames]
    await client.aclose_stream(stream_id)
    return outs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--sequences", type=int, default=32)
    ap.add_argument("--kill", action="store_true", help="kill a replica mid-stream")
    ap.add_argument("--num-cpus", type=int, default=2)
    args = ap.parse_args()
    ray = require_ray("serve")
    from ray import serve

    model = stacklstm.Model.random(128, [100, 200, 300], seed=1)
    env = {"PYTHONPATH": PYDIR + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if os.environ.get("SLSTM_LIBRARY"):
        env["SLSTM_LIBRARY"] = os.path.abspath(os.environ["SLSTM_LIBRARY"])
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})
    try:
        serve.start(proxy_location="Disabled")
        client = ss.deploy(model, shards=args.shards, num_cpus=args.num_cpus / args.shards,
                           max_time=64)
        rng = np.random.default_rng(0)

        # whole sequences from concurrent clients: batched on each replica
        xs = [rng.standard_normal((int(T), 128)).astype(np.float32)
              for T in rng.integers(5, 64, size=args.sequences)]

        async def sequences():
            return await asyncio.gather(*[client.asequence(x) for x in xs])

        t0 = time.perf_counter()
        results = asyncio.run(sequences())
        wall = time.perf_counter() - t0
        with model.session(1, 64) as s:
            for x, (out, _) in zip(xs, results):
                assert np.array_equal(out, s.forward(x[None])[0][0])
        calls = sum(client.replica_info(sh)["stats"]["sequence_calls"] for sh in client.shards)
        print("%d sequences in %.2f s over %d shard(s), %d batched library calls; equal to "
              "Session.forward" % (len(xs), wall, args.shards, calls))

        # streams: each pinned to its shard
        frames = rng.standard_normal((args.streams, args.frames, 128)).astype(np.float32)

        async def streams():
            return await asyncio.gather(*[stream_client(client, "user-%d" % k, frames[k])
                                          for k in range(args.streams)])

        got = asyncio.run(streams())
        with model.session(1, 1) as s:
            for k in range(args.streams):
                state = None
                for t in range(args.frames):
                    o, state = s.step(frames[k, t][None], state)
                    assert np.array_equal(o[0], got[k][t])
        print("%d streams x %d frames: equal to a batch-1 session per stream; shards: %s"
              % (args.streams, args.frames,
                 {sh: sum(1 for k in range(args.streams)
                          if client.shard_of("user-%d" % k) == sh) for sh in client.shards}))

        if args.kill:
            sid = "survivor"
            shard = client.shard_of(sid)
            client.open_stream(sid)
            for f in frames[0, :5]:
                client.frame(sid, f)
            checkpoint = client.stream_state(sid)          # the client keeps this
            sent = list(frames[0, 5:8])
            for f in sent:
                client.frame(sid, f)
            info = client.replica_info(shard)
            os.kill(info["pid"], signal.SIGKILL)
            try:
                client.frame(sid, frames[0, 8])
            except ss.StreamStateLostError as e:
                print("after the kill:", e)
            while True:                                      # wait for Serve's new replica
                try:
                    if client.replica_info(shard)["incarnation"] != info["incarnation"]:
                        break
                except Exception:
                    pass
                time.sleep(0.5)
            client.open_stream(sid, state=checkpoint)
            for f in sent:                                   # resend since the checkpoint
                client.frame(sid, f)
            h = client.frame(sid, frames[0, 8])
            with model.session(1, 9) as s:
                _, fin = s.forward(frames[0, :9][None])
            assert np.array_equal(h, fin[-1].h[0])
            print("recovered: reopened from the checkpoint, resent %d frames; the next output "
                  "equals the uninterrupted stream's" % len(sent))
        ss.undeploy(client)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
