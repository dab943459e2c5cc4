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


def test_load_model_gives_a_model_of_its_own_from_a_model_bytes_or_a_path(model, tmp_path):
    from stacklstm.ray import load_model
    x = np.random.default_rng(8).standard_normal((1, 3, D)).astype(np.float32)
    want = reference_sequence(model, x[0])[0]
    path = tmp_path / "m.safetensors"
    model.save(str(path))
    own = load_model(model)
    assert own is not model
    for m in (own, load_model(memoryview(model.to_bytes())), load_model(path)):
        with m.session(1, 3, cpu_path=PATH) as s:
            assert np.array_equal(s.forward(x)[0], want)


def test_require_ray_says_what_to_install():
    from stacklstm.ray import require_ray
    with pytest.raises(ImportError, match=r'pip install "stacklstm\[ray\]"'):
        require_ray("no_such_part_of_ray")


def test_a_bool_stream_id_is_refused():
    with pytest.raises(TypeError, match="str or int"):
        ss.shard_of(True, ["s0", "s1"])


def test_an_int_stream_id_and_its_text_are_different_streams():
    shards = ["t-%d" % i for i in range(8)]
    assert any(ss.shard_of(i, shards) != ss.shard_of(str(i), shards) for i in range(64))


def test_shard_of_is_the_same_in_every_version():
    # Clients of different releases must agree on where a stream lives.
    shards = ["stacklstm-0", "stacklstm-1", "stacklstm-2"]
    got = [ss.shard_of(k, shards) for k in ("call-17", "a", 7, 0, "")]
    assert got == ["stacklstm-0", "stacklstm-2", "stacklstm-1", "stacklstm-1", "stacklstm-1"]


def test_stream_state_lost_error_names_the_stream_the_shard_and_the_cause_s_last_line():
    cause = RuntimeError("Traceback (most recent call last):\n  File ...\n"
                         "UnknownStreamError: stream 'x' is not open")
    e = ss.StreamStateLostError("x", "t-1", cause)
    assert e.stream_id == "x" and e.shard == "t-1" and e.cause is cause
    assert "(RuntimeError: UnknownStreamError: stream 'x' is not open)" in str(e)


def test_a_client_needs_at_least_one_shard():
    with pytest.raises(ValueError, match="no shards"):
        ss.StreamsClient([])


def test_deploy_refuses_zero_shards(model):
    with pytest.raises(ValueError, match="shards must be >= 1"):
        ss.deploy(model, shards=0)


def replica(model):
    return ss.LSTMReplica(model, max_batch=4, max_wait_us=0, max_streams=4, max_time=8,
                          cpu_path=PATH)


def test_a_replica_takes_initial_states_as_c_h_pairs(model):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, D)).astype(np.float32)
    pairs = [(rng.standard_normal((1, H)).astype(np.float32),
              rng.standard_normal((1, H)).astype(np.float32)) for H in HS]
    with model.session(1, 5, cpu_path=PATH) as s:
        want, want_fin = s.forward(x[None], [stacklstm.LSTMStateTuple(c, h) for c, h in pairs])
    rep = replica(model)
    try:
        out, fin = asyncio.run(rep.sequence(x, pairs))
    finally:
        rep.batcher.close()
    assert np.array_equal(out, want[0])
    assert all(np.array_equal(c, w.c) and np.array_equal(h, w.h)
               for (c, h), w in zip(fin, want_fin))


def test_a_replica_opens_a_stream_from_one_dimensional_c_h_pieces(model):
    rng = np.random.default_rng(10)
    pairs = [(rng.standard_normal(H).astype(np.float32),
              rng.standard_normal(H).astype(np.float32)) for H in HS]
    rep = replica(model)

    async def run():
        await rep.open_stream("s", pairs)
        return await rep.stream_state("s")
    try:
        state = asyncio.run(run())
    finally:
        rep.batcher.close()
    assert all(np.array_equal(c, pc[None]) and np.array_equal(h, ph[None])
               for (c, h), (pc, ph) in zip(state, pairs))


def scorer(model, **kw):
    kw.setdefault("max_time", 8)
    return sd.SequenceScorer(model.to_bytes(), backend="cpu", cpu_path=PATH, **kw)


def test_scorer_refuses_an_unknown_outputs_value(model):
    with pytest.raises(ValueError, match="outputs must be 'last' or 'all'"):
        scorer(model, outputs="every")


def test_scorer_names_a_missing_input_column(model):
    import pyarrow as pa
    with pytest.raises(KeyError, match="the batch has no column 'x' \\(columns: seq\\)"):
        scorer(model)(pa.table({"seq": [np.zeros(D, np.float32)]}))


def test_scorer_refuses_a_row_that_is_not_whole_steps(model):
    import pyarrow as pa
    with pytest.raises(ValueError, match="row 0: 'x' holds 33 values .* not a whole number"):
        scorer(model)(pa.table({"x": [np.zeros(2 * D + 1, np.float32)]}))


def test_scorer_refuses_a_tensor_row_of_another_width(model):
    from ray.data.extensions import ArrowVariableShapedTensorArray
    import pyarrow as pa
    col = ArrowVariableShapedTensorArray.from_numpy([np.zeros((4, D // 2), np.float32)])
    with pytest.raises(ValueError, match="row 0: 'x' holds 32 values \\(shape \\(4, 8\\)\\)"):
        scorer(model)(pa.table({"x": col}))


@pytest.mark.parametrize("T, ok", [(8, True), (9, False), (0, False)])
def test_scorer_takes_sequences_of_1_to_max_time_steps(model, T, ok):
    import pyarrow as pa
    table = pa.table({"x": [np.ones(T * D, np.float32)]})
    if ok:
        got = scorer(model)(table).column("h_last").to_pylist()[0]
        want = reference_sequence(model, np.ones((T, D), np.float32))[1][-1].h[0]
        assert np.array_equal(np.asarray(got, np.float32), want)
    else:
        with pytest.raises(ValueError, match="a sequence of %d steps; this scorer takes 1 to 8"
                           % T):
            scorer(model)(table)


def test_scorer_keeps_the_input_column_when_asked(model):
    import pyarrow as pa
    table = pa.table({"x": [np.ones(2 * D, np.float32)], "id": [4]})
    assert scorer(model, keep_input=True)(table).column_names == ["x", "id", "h_last"]
    assert scorer(model)(table).column_names == ["id", "h_last"]


def test_whole_sequences_go_to_the_shards_in_turn(client):
    def served():
        return {s: client.replica_info(s)["stats"]["sequences"] for s in client.shards}
    before = served()
    for _ in client.shards:
        client.sequence(np.ones((2, D), np.float32))
    after = served()
    assert all(after[s] - before[s] == 1 for s in client.shards)


def test_an_unknown_stream_error_ray_could_not_rebuild_is_still_stream_state_lost():
    # Ray raises RayTaskError(UnknownStreamError), a subclass of both, when it can build one;
    # otherwise only the class name says what the replica raised.
    rebuilt = type("RayTaskError(UnknownStreamError)", (RuntimeError,), {})

    class Response:
        def result(self, timeout_s=None):
            raise rebuilt("stream 'x' is not open in this batcher")

    class Method:
        def remote(self, *args):
            return Response()

    class Handle:
        frame = Method()

    client = ss.StreamsClient.__new__(ss.StreamsClient)
    client.shards, client._handles, client.timeout_s = ["s0"], {"s0": Handle()}, 1.0
    with pytest.raises(ss.StreamStateLostError, match="stream 'x' \\(shard s0\\)"):
        client.frame("x", np.zeros(D, np.float32))
