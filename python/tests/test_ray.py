"""stacklstm.ray on a local Ray cluster started inside the tests (2 CPUs, no dashboard, no
external service): Ray Data scoring and Ray Serve serving give the plain API's numbers
(bitwise, CPU reference path), streams stay on their shard, and a killed replica loses its
streams with StreamStateLostError, from which resending from a checkpoint recovers.

Skipped (with the reason shown) when ray[data,serve] is not importable."""
import asyncio
import os
import signal
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'stacklstm[ray]')")
pytest.importorskip("ray.serve", reason="ray[serve] is not installed")
pytest.importorskip("ray.data", reason="ray[data] is not installed")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed")

import stacklstm                                             # noqa: E402
from stacklstm.ray import serve as ss                        # noqa: E402
from stacklstm.ray import data as sd                         # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
D, HS = 16, [24, 20]
PATH = "reference"
TIMEOUT = 90


@pytest.fixture(scope="module")
def model():
    return stacklstm.Model.random(D, HS, seed=5)


@pytest.fixture(scope="module")
def cluster():
    env = {"PYTHONPATH": PYDIR + os.pathsep + os.environ.get("PYTHONPATH", "")}
    lib = os.environ.get("SLSTM_LIBRARY") or getattr(stacklstm._lib, "library_path", None)
    if lib:
        env["SLSTM_LIBRARY"] = os.path.abspath(str(lib))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env}, configure_logging=False)
    yield
    from ray import serve
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def client(cluster, model):
    from ray import serve
    serve.start(proxy_location="Disabled")
    c = ss.deploy(model, shards=2, name="t", max_batch=16, max_wait_us=20000, max_streams=64,
                  max_time=40, num_cpus=0.5, cpu_path=PATH, timeout_s=TIMEOUT)
    yield c
    ss.undeploy(c)


def reference_sequence(model, x):
    with model.session(1, x.shape[0], cpu_path=PATH) as s:
        return s.forward(x[None])


def reference_steps(model, xs):
    with model.session(1, 1, cpu_path=PATH) as s:
        state, outs = None, []
        for x in xs:
            o, state = s.step(x[None], state)
            outs.append(o[0])
    return outs, state


def test_ray_data_scoring_carries_lengths_and_equals_session_forward(cluster, model, tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"id": i, "length": int(T), "x": rng.standard_normal(int(T) * D).astype(np.float32)}
            for i, T in enumerate(rng.integers(1, 30, size=50))]
    ds = ray.data.from_items(rows)
    out = str(tmp_path / "scored")
    sd.score(ds, model, actors=2, batch_size=16, num_cpus=0.5, outputs="all", max_time=30,
             max_batch=8, cpu_path=PATH).write_parquet(out)
    table = pq.read_table(out)
    assert table.num_rows == 50
    assert "x" not in table.column_names
    got = {r["id"]: r for r in table.to_pylist()}
    for r in rows:
        o, fin = reference_sequence(model, r["x"].reshape(r["length"], D))
        g = got[r["id"]]
        assert g["length"] == r["length"]
        assert np.array_equal(np.asarray(g["h_last"], np.float32), fin[-1].h[0])
        assert np.array_equal(np.asarray(g["outputs"], np.float32).reshape(r["length"], -1),
                              o[0])


def test_ray_data_scoring_takes_sequences_as_a_variable_shaped_tensor_column(cluster, model):
    rng = np.random.default_rng(6)
    rows = [{"id": i, "x": rng.standard_normal((int(T), D)).astype(np.float32)}
            for i, T in enumerate((3, 9, 1, 6))]
    out = sd.score(ray.data.from_items(rows), model, actors=1, batch_size=4, num_cpus=0.5,
                   max_time=10, cpu_path=PATH).take_all()
    got = {r["id"]: np.asarray(r["h_last"], np.float32) for r in out}
    for r in rows:
        assert np.array_equal(got[r["id"]], reference_sequence(model, r["x"])[1][-1].h[0])


def test_scorer_refuses_a_row_whose_length_does_not_match_its_values(model):
    import pyarrow as pa
    sc = sd.SequenceScorer(model.to_bytes(), max_time=8, backend="cpu")
    table = pa.table({"x": [np.zeros(3 * D, np.float32)], "length": [4]})
    with pytest.raises(ValueError, match="row 0: 'length' = 4 but 'x' holds 3 steps"):
        sc(table)


def test_serve_sequences_from_concurrent_clients_equal_the_plain_api(client, model):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((int(T), D)).astype(np.float32)
          for T in rng.integers(1, 40, size=24)]

    async def main():
        return await asyncio.gather(*[client.asequence(x) for x in xs])

    results = asyncio.run(main())
    for x, (out, fin) in zip(xs, results):
        o, f = reference_sequence(model, x)
        assert np.array_equal(out, o[0])
        assert all(np.array_equal(c, t.c) and np.array_equal(h, t.h)
                   for (c, h), t in zip(fin, f))
    stats = [client.replica_info(s)["stats"] for s in client.shards]
    assert sum(s["sequences"] for s in stats) >= 24
    assert sum(s["sequence_calls"] for s in stats) < sum(s["sequences"] for s in stats)


def test_serve_stream_frames_equal_the_plain_api_and_stay_on_their_shard(client, model):
    rng = np.random.default_rng(2)
    ids = ["a", "b", 7, "d"]
    xs = rng.standard_normal((len(ids), 6, D)).astype(np.float32)
    before = {s: client.replica_info(s)["open_streams"] for s in client.shards}
    for k in ids:
        client.open_stream(k)
    after = {s: client.replica_info(s)["open_streams"] for s in client.shards}
    for s in client.shards:
        assert after[s] - before[s] == sum(1 for k in ids if client.shard_of(k) == s)

    async def stream(i, k):
        return [await client.aframe(k, x) for x in xs[i]]

    async def main():
        return await asyncio.gather(*[stream(i, k) for i, k in enumerate(ids)])

    got = asyncio.run(main())
    for i, k in enumerate(ids):
        want, want_state = reference_steps(model, xs[i])
        assert all(np.array_equal(g, w) for g, w in zip(got[i], want))
        state = client.stream_state(k)
        assert np.array_equal(state[-1][1], want_state[-1].h)
        client.close_stream(k)


def test_step_streams_sends_frames_of_many_streams_in_one_request_per_shard(client, model):
    rng = np.random.default_rng(4)
    ids = ["m%d" % k for k in range(6)]
    xs = rng.standard_normal((len(ids), 3, D)).astype(np.float32)
    for k in ids:
        client.open_stream(k)
    calls_before = sum(client.replica_info(s)["stats"]["frame_calls"] for s in client.shards)
    rounds = []
    for t in range(3):
        rounds.append(client.step_streams([(k, xs[i, t]) for i, k in enumerate(ids)] +
                                          [("not-open", xs[0, t])]))
    calls = sum(client.replica_info(s)["stats"]["frame_calls"] for s in client.shards) \
        - calls_before
    assert calls < 3 * len(ids)                   # batched: fewer calls than frames
    for t, res in enumerate(rounds):
        assert isinstance(res[-1], ss.StreamStateLostError) and res[-1].stream_id == "not-open"
        for i, k in enumerate(ids):
            assert np.array_equal(res[i], reference_steps(model, xs[i, :t + 1])[0][t])
    for k in ids:
        client.close_stream(k)


def test_step_streams_gives_a_failed_rows_error_and_the_other_rows_results(client, model):
    # One shard's request fails as a whole (its only row is not a frame of size D): the other
    # shard's row is applied and its result returned, not lost to the failure.
    good = next(k for k in ("g%d" % i for i in range(50)) if client.shard_of(k) == client.shards[0])
    bad = next(k for k in ("b%d" % i for i in range(50)) if client.shard_of(k) == client.shards[1])
    client.open_stream(good)
    client.open_stream(bad)
    x = np.random.default_rng(5).standard_normal(D).astype(np.float32)
    res = client.step_streams([(good, x), (bad, np.zeros(D + 1, np.float32))])
    assert np.array_equal(res[0], reference_steps(model, x[None])[0][0])
    assert isinstance(res[1], Exception) and not isinstance(res[1], ss.StreamStateLostError)
    assert callable(client.areset_stream) and callable(client.areplica_info)
    for k in (good, bad):
        client.close_stream(k)


def test_a_cancelled_frames_request_applies_none_of_its_frames_not_yet_batched(model):
    # What Ray Serve does to a replica's task when the caller gives up, on the replica class
    # itself (no cluster): the frames wait in the batcher's window, the task is cancelled;
    # none may be applied, never the later ones alone.
    xs = np.random.default_rng(6).standard_normal((5, D)).astype(np.float32)

    async def run(method, args):
        rep = ss.LSTMReplica(model, max_batch=16, max_wait_us=300_000, max_streams=16,
                             max_time=8, cpu_path=PATH)
        try:
            # more open streams than frames queued: the batcher waits for its window
            for sid in ["s"] + ["idle%d" % i for i in range(8)]:
                await rep.open_stream(sid)
            task = asyncio.ensure_future(getattr(rep, method)(*args))
            await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.6)   # past the window: anything left would have run
            return await rep.stream_state("s")
        finally:
            rep.batcher.close()

    for method, args in (("frames", ("s", xs)), ("step_streams", (["s"] * 3, xs[:3]))):
        state = asyncio.run(run(method, args))
        assert all(not np.any(np.asarray(a)) for pair in state for a in pair), \
            "%s: frames of a cancelled request were applied" % method


def test_a_frame_for_a_stream_that_is_not_open_is_stream_state_lost_error(client):
    with pytest.raises(ss.StreamStateLostError, match="never-opened"):
        client.frame("never-opened", np.zeros(D, np.float32))


def test_killed_replica_loses_its_streams_and_resending_from_a_checkpoint_recovers(client,
                                                                                  model):
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((8, D)).astype(np.float32)
    want, _ = reference_steps(model, xs)
    victim = "victim-1"
    shard = client.shard_of(victim)
    other = next((k for k in ("other-%d" % i for i in range(50))
                  if client.shard_of(k) != shard), None)
    client.open_stream(victim)
    if other is not None:
        client.open_stream(other)
        client.frame(other, xs[0])
    outs = [client.frame(victim, x) for x in xs[:3]]
    checkpoint = client.stream_state(victim)
    outs += [client.frame(victim, x) for x in xs[3:5]]
    info = client.replica_info(shard)
    os.kill(info["pid"], signal.SIGKILL)            # the replica dies mid-stream

    with pytest.raises(ss.StreamStateLostError) as lost:
        client.frame(victim, xs[5])
    assert lost.value.stream_id == victim and lost.value.shard == shard
    assert "resend the frames sent since that checkpoint" in str(lost.value)

    seq = rng.standard_normal((7, D)).astype(np.float32)   # stateless: served meanwhile
    for _ in range(2 * len(client.shards)):
        assert np.array_equal(client.sequence(seq)[0], reference_sequence(model, seq)[0][0])

    deadline = time.monotonic() + TIMEOUT          # Serve replaces the replica
    while True:
        try:
            if client.replica_info(shard)["incarnation"] != info["incarnation"]:
                break
        except Exception:
            pass
        assert time.monotonic() < deadline, "Serve did not replace the killed replica"
        time.sleep(0.5)

    client.open_stream(victim, state=checkpoint)   # recover: checkpoint + resend frames 3..
    resent = [client.frame(victim, x) for x in xs[3:]]
    assert all(np.array_equal(g, w) for g, w in zip(outs[:3] + resent, want))
    if other is not None:                          # the other shard's stream lost nothing
        assert np.array_equal(client.frame(other, xs[1]), reference_steps(model, xs[:2])[0][1])
    assert ss.shard_of(victim, client.shards) == shard


def test_stream_ids_must_be_str_or_int():
    with pytest.raises(TypeError, match="str or int"):
        ss.shard_of(("a", 1), ["s0", "s1"])


def test_shard_of_is_stable_and_adding_a_shard_moves_few_streams():
    three = ["x-0", "x-1", "x-2"]
    four = three + ["x-3"]
    ids = list(range(2000))
    a = [ss.shard_of(i, three) for i in ids]
    assert a == [ss.shard_of(i, three) for i in ids]
    moved = sum(1 for i, s in zip(ids, a) if ss.shard_of(i, four) != s)
    assert all(ss.shard_of(i, four) == "x-3" for i, s in zip(ids, a)
               if ss.shard_of(i, four) != s)
    assert 0.15 < moved / len(ids) < 0.35
