#!/usr/bin/env python3
"""Offline scoring with Ray Data: generate a dataset of variable-length sequences, score it
with an actor pool (each actor one model + one session), write the results as Parquet, and
check a few rows against the plain API.

    SLSTM_LIBRARY=build/libstacklstm.so python3 examples/ray/score_dataset.py --rows 2000 \
        --out /tmp/scored

Needs `pip install "stacklstm[ray]"`. Starts a local Ray cluster (or joins RAY_ADDRESS).
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "python")
sys.path.insert(0, PYDIR)

import stacklstm                      # noqa: E402
import stacklstm.ray.data as sd       # noqa: E402
from stacklstm.ray import require_ray  # noqa: E402


def make_rows(n, input_size, t_min, t_max, seed):
    rng = np.random.default_rng(seed)
    lens = rng.integers(t_min, t_max + 1, size=n)
    return [{"id": i, "length": int(T),
             "x": rng.standard_normal(int(T) * input_size).astype(np.float32)}
            for i, T in enumerate(lens)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--t-min", type=int, default=5)
    ap.add_argument("--t-max", type=int, default=60)
    ap.add_argument("--outputs", choices=["last", "all"], default="last")
    ap.add_argument("--out", help="Parquet directory (default: a temporary one)")
    ap.add_argument("--num-cpus", type=int, default=2, help="for the local cluster")
    args = ap.parse_args()
    ray = require_ray("data")
    import pyarrow.parquet as pq

    model = stacklstm.Model.random(128, [100, 200, 300], seed=1)
    tmp = tempfile.mkdtemp(prefix="stacklstm-ray-")
    model_path = os.path.join(tmp, "model.safetensors")
    model.save(model_path)
    out = args.out or os.path.join(tmp, "scored")

    env = {"PYTHONPATH": PYDIR + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if os.environ.get("SLSTM_LIBRARY"):
        env["SLSTM_LIBRARY"] = os.path.abspath(os.environ["SLSTM_LIBRARY"])
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})
    try:
        rows = make_rows(args.rows, model.input_size, args.t_min, args.t_max, seed=3)
        ds = ray.data.from_items(rows)
        t0 = time.perf_counter()
        scored = sd.score(ds, model_path, actors=args.actors, batch_size=128,
                          outputs=args.outputs, max_time=args.t_max)
        scored.write_parquet(out)
        wall = time.perf_counter() - t0
    finally:
        ray.shutdown()

    table = pq.read_table(out)
    assert table.num_rows == args.rows, (table.num_rows, args.rows)
    by_id = {int(i): k for k, i in enumerate(table.column("id").to_pylist())}
    H = model.hidden_sizes[-1]
    with model.session(1, args.t_max) as s:
        for r in rows[:20]:
            k = by_id[r["id"]]
            _, fin = s.forward(r["x"].reshape(1, r["length"], -1))
            got = np.asarray(table.column("h_last")[k].as_py(), np.float32)
            assert got.shape == (H,) and np.array_equal(got, fin[-1].h[0]), r["id"]
            assert table.column("length")[k].as_py() == r["length"]
    steps = sum(r["length"] for r in rows)
    print("scored %d sequences (%d steps) with %d actors in %.1f s (%.0f sequences/s, "
          "including Ray's start-up of the pool); Parquet: %s; columns: %s; 20 rows checked "
          "against Session.forward: equal" % (args.rows, steps, args.actors, wall,
                                              args.rows / wall, out,
                                              ", ".join(table.column_names)))


if __name__ == "__main__":
    main()
