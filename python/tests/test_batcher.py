"""stacklstm.batcher.Batcher: batched results equal one call per request, bitwise (CPU
reference path); per-stream order; shutdown; error isolation; the asyncio API.

The independent reference for frames is a dedicated batch-1 Session per stream stepping
its own state (Session.step); for sequences a batch-1 Session.forward per request."""
import asyncio
import concurrent.futures
import threading
import time

import numpy as np
import pytest

import stacklstm
from stacklstm.batcher import (Batcher, BatcherClosedError, StreamExistsError,
                               UnknownStreamError)

D, HS = 16, [24, 20]
PATH = "reference"


@pytest.fixture(scope="module")
def model():
    return stacklstm.Model.random(D, HS, seed=7)


def frames_for(n_streams, n_frames, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_streams, n_frames, D)).astype(np.float32)


def reference_steps(model, xs, state=None):
    """h of the last layer per frame of one stream, from a batch-1 session of its own."""
    with model.session(1, 1, cpu_path=PATH) as s:
        outs = []
        for x in xs:
            o, state = s.step(x[None], state)
            outs.append(o[0])
    return outs, state


def reference_sequence(model, x, state=None):
    with model.session(1, x.shape[0], cpu_path=PATH) as s:
        o, fin = s.forward(x[None], initial_state=state)
    return o[0], fin


def make(model, **kw):
    kw.setdefault("cpu_path", PATH)
    kw.setdefault("max_batch", 8)
    kw.setdefault("max_wait_us", 2000)
    kw.setdefault("max_streams", 16)
    kw.setdefault("max_time", 12)
    return Batcher(model, **kw)


class SpyStreams:
    """Wraps the batcher's Streams: records the slot list of every step call and can make
    the library-level call fail when a chosen slot is in it (as the library would refuse)."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []
        self.fail_slot = None
        self.max_streams = inner.max_streams

    def step(self, slots, x):
        self.calls.append(list(slots))
        if self.fail_slot is not None and self.fail_slot in slots:
            raise stacklstm.InvalidArgumentError(1, "injected failure for slot %d"
                                                 % self.fail_slot, "step")
        return self.inner.step(slots, x)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def spy(b):
    b._streams = SpyStreams(b._streams)
    return b._streams


def window_watch(b):
    """An Event set when the batcher's worker begins waiting out a window (its Condition's
    wait with a timeout; the idle wait has none): a test submits what must arrive during the
    window only after that, instead of sleeping and hoping the worker got there."""
    entered = threading.Event()
    inner = b._cv.wait

    def wait(timeout=None):
        if timeout is not None:
            entered.set()
        return inner(timeout)

    b._cv.wait = wait   # the worker looks the method up again at each wait
    return entered


def test_frames_from_concurrent_threads_equal_one_session_per_stream_bitwise(model):
    xs = frames_for(6, 10)
    with make(model, max_wait_us=50_000) as b:   # ends early once all six have a frame queued
        for k in range(6):
            b.open_stream(("s", k))

        def client(k):
            return [b.frame(("s", k), xs[k, t]) for t in range(10)]

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            got = list(pool.map(client, range(6)))
        states = [b.stream_state(("s", k)) for k in range(6)]
        assert b.stats()["frame_calls"] < 60   # frames of different streams were batched
    for k in range(6):
        want, want_state = reference_steps(model, xs[k])
        for t in range(10):
            assert np.array_equal(got[k][t], want[t]), (k, t)
        for a, w in zip(states[k], want_state):
            assert np.array_equal(a.c, w.c) and np.array_equal(a.h, w.h)


def test_sequences_of_different_lengths_equal_one_forward_per_request_bitwise(model):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((T, D)).astype(np.float32) for T in (3, 12, 1, 7, 12, 5)]
    init = [stacklstm.LSTMStateTuple(rng.standard_normal((1, H)).astype(np.float32),
                                     rng.standard_normal((1, H)).astype(np.float32))
            for H in HS]
    with make(model, max_batch=6, max_wait_us=5_000_000, max_padding=float("inf")) as b:
        futs = [b.submit_sequence(x, init if i % 2 else None) for i, x in enumerate(xs)]
        got = [f.result(10) for f in futs]
        assert b.stats()["sequence_calls"] == 1   # all six in one padded call
    for i, x in enumerate(xs):
        want_out, want_fin = reference_sequence(model, x, init if i % 2 else None)
        out, fin = got[i]
        assert out.shape == (x.shape[0], HS[-1])
        assert np.array_equal(out, want_out)
        for a, w in zip(fin, want_fin):
            assert np.array_equal(a.c, w.c) and np.array_equal(a.h, w.h)


def test_frames_of_one_stream_apply_in_submission_order_one_per_batch(model):
    xs = frames_for(2, 12, seed=2)
    with make(model, max_wait_us=100000) as b:
        b.open_stream("a")
        b.open_stream("b")
        s = spy(b)
        futs = [(k, b.submit_frame(k, xs[i, t])) for t in range(12)
                for i, k in enumerate("ab")]
        got = {"a": [], "b": []}
        for k, f in futs:
            got[k].append(f.result(10))
    for call in s.calls:
        assert len(call) == len(set(call))   # never two frames of one stream in one call
    assert len(s.calls) >= 12
    for i, k in enumerate("ab"):
        want, _ = reference_steps(model, xs[i])
        assert all(np.array_equal(g, w) for g, w in zip(got[k], want))


def test_stream_state_read_returns_the_state_after_every_earlier_frame(model):
    xs = frames_for(1, 5, seed=3)[0]
    with make(model, max_wait_us=50000) as b:
        b.open_stream(0)
        for x in xs:
            b.submit_frame(0, x)
        state = b.stream_state(0)
    _, want = reference_steps(model, xs)
    for a, w in zip(state, want):
        assert np.array_equal(a.c, w.c) and np.array_equal(a.h, w.h)


def test_open_with_state_and_reset_take_effect_in_order(model):
    rng = np.random.default_rng(4)
    st = [stacklstm.LSTMStateTuple(rng.standard_normal((1, H)).astype(np.float32),
                                   rng.standard_normal((1, H)).astype(np.float32))
          for H in HS]
    xs = frames_for(1, 4, seed=5)[0]
    with make(model, max_wait_us=50000) as b:
        b.submit_open_stream("x", st)
        f1 = [b.submit_frame("x", x) for x in xs[:2]]
        b.submit_reset_stream("x")          # back to zeros after the first two frames
        f2 = [b.submit_frame("x", x) for x in xs[2:]]
        got1 = [f.result(10) for f in f1]
        got2 = [f.result(10) for f in f2]
    want1, _ = reference_steps(model, xs[:2], st)
    want2, _ = reference_steps(model, xs[2:])
    assert all(np.array_equal(g, w) for g, w in zip(got1 + got2, want1 + want2))


def test_close_fails_queued_requests_with_batcher_closed_error(model):
    b = make(model, max_batch=64, max_wait_us=30_000_000)   # the window never ends itself
    for k in ("s", "t", "u", "v"):   # fewer frames queued than open streams: no early run
        b.open_stream(k)
    futs = [b.submit_frame("s", x) for x in frames_for(1, 3)[0]]
    seq = b.submit_sequence(np.ones((4, D), np.float32))
    t0 = time.monotonic()
    b.close()
    assert time.monotonic() - t0 < 5
    for f in futs + [seq]:
        with pytest.raises(BatcherClosedError, match="nothing of it was applied"):
            f.result(5)


def test_close_with_drain_runs_the_queued_requests(model):
    xs = frames_for(1, 3, seed=6)[0]
    b = make(model, max_batch=64, max_wait_us=30_000_000)
    for k in ("s", "t", "u", "v"):
        b.open_stream(k)
    futs = [b.submit_frame("s", x) for x in xs]
    b.close(drain=True)
    want, _ = reference_steps(model, xs)
    assert all(np.array_equal(f.result(5), w) for f, w in zip(futs, want))


def test_submit_after_close_raises_batcher_closed_error(model):
    b = make(model)
    b.open_stream("s")
    b.close()
    with pytest.raises(BatcherClosedError):
        b.submit_frame("s", np.zeros(D, np.float32))
    with pytest.raises(BatcherClosedError):
        b.submit_sequence(np.zeros((2, D), np.float32))
    b.close()   # idempotent


def test_frame_for_unknown_stream_fails_only_that_caller(model):
    xs = frames_for(2, 1, seed=8)
    with make(model, max_wait_us=100000) as b:
        b.open_stream("good")
        slot = b._slots["good"]
        s = spy(b)
        good = b.submit_frame("good", xs[0, 0])
        bad = b.submit_frame("never-opened", xs[1, 0])
        with pytest.raises(UnknownStreamError, match="never-opened"):
            bad.result(10)
        got = good.result(10)
    assert s.calls == [[slot]]   # the unknown stream's frame never reached the library
    assert np.array_equal(got, reference_steps(model, xs[0])[0][0])


def test_a_failing_batched_call_fails_only_the_request_that_caused_it(model):
    xs = frames_for(3, 2, seed=9)
    with make(model, max_wait_us=5_000_000) as b:   # the three frames share one call
        for k in range(3):
            b.open_stream(k)
        s = spy(b)
        s.fail_slot = b._slots[1]
        futs = [b.submit_frame(k, xs[k, 0]) for k in range(3)]
        with pytest.raises(stacklstm.InvalidArgumentError, match="injected"):
            futs[1].result(10)
        got = [futs[0].result(10), futs[2].result(10)]
        s.fail_slot = None
        after = [f.result(10) for f in [b.submit_frame(k, xs[k, 1]) for k in range(3)]]
        assert b.stats()["fallbacks"] == 1
        assert b.stats()["frames"] == 2 + 3   # the fallback's two served frames count
    for k, g in ((0, got[0]), (2, got[1])):
        assert np.array_equal(g, reference_steps(model, xs[k, :1])[0][0])
    for k in range(3):   # stream 1's failed frame left its state unchanged
        frames = xs[k] if k != 1 else xs[k, 1:]
        assert np.array_equal(after[k], reference_steps(model, frames)[0][-1])


def test_bad_input_is_refused_when_submitted_and_changes_nothing(model):
    with make(model) as b:
        b.open_stream("s")
        with pytest.raises(ValueError, match=r"frame must be one frame of shape \(16,\)"):
            b.submit_frame("s", np.zeros((1, D), np.float32))
        with pytest.raises(TypeError, match="complex"):
            b.submit_frame("s", np.zeros(D, np.complex64))
        with pytest.raises(ValueError, match="1 to 12"):
            b.submit_sequence(np.zeros((13, D), np.float32))
        with pytest.raises(ValueError, match=r"shape \(T, 16\)"):
            b.submit_sequence(np.zeros((3, D + 1), np.float32))
        with pytest.raises(ValueError):
            b.submit_open_stream("t", [stacklstm.LSTMStateTuple(np.zeros((1, 3)),
                                                                np.zeros((1, 3)))])
        state = b.stream_state("s")
    assert all(not t.c.any() and not t.h.any() for t in state)


def test_opening_an_open_stream_raises_stream_exists_error(model):
    with make(model) as b:
        b.open_stream("s")
        with pytest.raises(StreamExistsError, match="'s' is already open"):
            b.open_stream("s")


def test_opening_more_streams_than_slots_fails_that_open_only(model):
    with make(model, max_streams=2) as b:
        b.open_stream(1)
        b.open_stream(2)
        with pytest.raises(stacklstm.SlotsFullError):
            b.open_stream(3)
        b.close_stream(1)
        b.open_stream(3)
        assert b.open_streams == 2


def test_frames_after_close_stream_fail_with_unknown_stream_error(model):
    with make(model, max_wait_us=50000) as b:
        b.open_stream("s")
        f = b.submit_frame("s", np.zeros(D, np.float32))
        b.submit_close_stream("s")
        g = b.submit_frame("s", np.zeros(D, np.float32))
        f.result(10)
        with pytest.raises(UnknownStreamError, match="not open"):
            g.result(10)


def test_a_cancelled_frame_is_not_applied(model):
    xs = frames_for(1, 2, seed=10)[0]
    with make(model, max_batch=64, max_wait_us=300000) as b:
        b.open_stream("s")
        f = b.submit_frame("s", xs[0])
        assert f.cancel()
        g = b.submit_frame("s", xs[1])
        got = g.result(10)
    assert np.array_equal(got, reference_steps(model, xs[1:])[0][0])


def test_a_frame_whose_wait_times_out_is_dropped_not_applied_later(model):
    xs = frames_for(1, 2, seed=11)[0]
    with make(model, max_batch=64, max_wait_us=2_000_000) as b:   # the frame waits 2 s
        b.open_stream("s")
        b.open_stream("other")   # an open stream without a frame: the window is waited out
        with pytest.raises(concurrent.futures.TimeoutError):
            b.frame("s", xs[0], timeout=0.05)
        state = b.stream_state("s")
    assert all(not np.any(t.c) and not np.any(t.h) for t in state), \
        "the timed-out frame was applied later"


class _Sub(np.ndarray):
    pass


@pytest.mark.parametrize("view", [memoryview, lambda a: a.view(_Sub), lambda a: a[:]],
                         ids=["memoryview", "ndarray-subclass", "slice"])
def test_a_sequence_is_copied_at_submission_whatever_view_of_the_buffer_it_comes_as(model,
                                                                                     view):
    x = frames_for(1, 5, seed=12)[0]
    buf = x.copy()
    with make(model, max_wait_us=200_000) as b:
        fut = b.submit_sequence(view(buf))
        buf[:] = 0.0   # the caller reuses its buffer once submit returns
        got, _ = fut.result(10)
    assert np.array_equal(got, reference_sequence(model, x)[0])


def test_asyncio_clients_get_the_numbers_of_one_session_per_stream(model):
    xs = frames_for(4, 6, seed=11)
    seq = np.random.default_rng(12).standard_normal((5, D)).astype(np.float32)

    async def client(b, k):
        await b.aopen_stream(k)
        outs = [await b.aframe(k, x) for x in xs[k]]
        state = await b.astream_state(k)
        await b.aclose_stream(k)
        return outs, state

    async def main(b):
        return await asyncio.gather(*[client(b, k) for k in range(4)], b.asequence(seq))

    with make(model, max_wait_us=1000) as b:
        results = asyncio.run(main(b))
    for k in range(4):
        want, want_state = reference_steps(model, xs[k])
        outs, state = results[k]
        assert all(np.array_equal(g, w) for g, w in zip(outs, want))
        assert np.array_equal(state[-1].h, want_state[-1].h)
    out, _ = results[4]
    assert np.array_equal(out, reference_sequence(model, seq)[0])


def test_constructor_refuses_bad_settings(model):
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        Batcher(model, max_batch=0)
    with pytest.raises(TypeError, match="max_wait_us must be an integer"):
        Batcher(model, max_wait_us=0.5)
    with pytest.raises(TypeError, match="stacklstm.Model"):
        Batcher("model.safetensors")


def test_a_batcher_without_slots_refuses_frames_and_one_without_sequences_refuses_them(model):
    with make(model, max_streams=0) as b:
        with pytest.raises(ValueError, match="max_streams=0"):
            b.submit_frame("s", np.zeros(D, np.float32))
    with make(model, max_time=0) as b:
        with pytest.raises(ValueError, match="max_time=0"):
            b.submit_sequence(np.zeros((2, D), np.float32))


def test_frames_do_not_wait_for_the_window_when_every_open_stream_has_one_queued(model):
    with make(model, max_batch=64, max_wait_us=20_000_000) as b:   # a 20 s window
        b.open_stream("only")
        t0 = time.monotonic()
        b.frame("only", np.zeros(D, np.float32), timeout=10)
        assert time.monotonic() - t0 < 5


def test_frames_of_one_stream_do_not_end_the_window_while_another_stream_has_none(model):
    with make(model, max_batch=64, max_wait_us=20_000_000) as b:   # a 20 s window
        b.open_stream("a")
        b.open_stream("b")
        in_window = window_watch(b)
        a1 = b.submit_frame("a", np.zeros(D, np.float32))
        a2 = b.submit_frame("a", np.ones(D, np.float32))
        assert in_window.wait(10)
        assert not a1.done()      # two frames queued, but "b" may still send one
        t0 = time.monotonic()
        b1 = b.submit_frame("b", np.ones(D, np.float32))
        for f in (a1, b1, a2):
            f.result(10)
        assert time.monotonic() - t0 < 5
        assert b.stats()["frame_calls"] == 2    # a1 with b1, then a2


def test_a_sequence_waits_for_the_window_to_gather_others(model):
    with make(model, max_batch=4, max_wait_us=300_000) as b:
        t0 = time.monotonic()
        futs = [b.submit_sequence(np.ones((2, D), np.float32)) for _ in range(3)]
        for f in futs:
            f.result(10)
        assert time.monotonic() - t0 >= 0.25
        assert b.stats()["sequence_calls"] == 1


def test_sequences_are_cut_into_calls_where_padding_would_exceed_max_padding(model):
    rng = np.random.default_rng(13)
    lens = (2, 2, 12, 11, 2, 12)      # sorted: 2 2 2 | 11 12 12 at max_padding 0.25
    xs = [rng.standard_normal((T, D)).astype(np.float32) for T in lens]
    with make(model, max_batch=6, max_wait_us=5_000_000, max_padding=0.25) as b:
        got = [f.result(10) for f in [b.submit_sequence(x) for x in xs]]
        assert b.stats()["sequence_calls"] == 2
    for x, (out, _) in zip(xs, got):
        assert np.array_equal(out, reference_sequence(model, x)[0])


def test_an_awaiting_coroutine_gets_batcher_closed_error_when_the_batcher_closes(model):
    b = make(model, max_batch=64, max_wait_us=30_000_000)
    for k in ("s", "t"):
        b.open_stream(k)

    in_window = window_watch(b)

    async def main():
        task = asyncio.ensure_future(b.aframe("s", np.zeros(D, np.float32)))
        assert await asyncio.to_thread(in_window.wait, 10)   # queued, the worker waiting
        threading.Thread(target=b.close).start()
        with pytest.raises(BatcherClosedError, match="frame of stream 's'"):
            await asyncio.wait_for(task, 10)

    asyncio.run(main())


def test_a_cancelled_await_does_not_apply_its_frame(model):
    xs = frames_for(1, 2, seed=14)[0]
    with make(model, max_batch=64, max_wait_us=1_000_000) as b:
        for k in ("s", "t"):
            b.open_stream(k)
        in_window = window_watch(b)

        async def main():
            task = asyncio.ensure_future(b.aframe("s", xs[0]))
            assert await asyncio.to_thread(in_window.wait, 10)   # queued, not yet run
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await b.aframe("s", xs[1])

        got = asyncio.run(main())
    assert np.array_equal(got, reference_steps(model, xs[1:])[0][0])


@pytest.mark.parametrize("kw", [{"max_batch": True}, {"max_streams": False},
                                {"max_time": True}])
def test_a_bool_size_is_a_type_error(model, kw):
    with pytest.raises(TypeError, match=list(kw)[0]):
        make(model, **kw)


@pytest.mark.parametrize("pad", [-0.5, float("nan")])
def test_a_negative_or_nan_max_padding_is_refused(model, pad):
    with pytest.raises(ValueError, match="max_padding"):
        make(model, max_padding=pad)


@pytest.mark.parametrize("shape", [(0, D), (1, 3, D)])
def test_an_empty_or_three_dimensional_sequence_is_refused_when_submitted(model, shape):
    with make(model) as b:
        with pytest.raises(ValueError):
            b.submit_sequence(np.zeros(shape, np.float32))


def test_a_float32_frame_is_copied_at_submission(model):
    x = np.random.default_rng(3).standard_normal(D).astype(np.float32)
    buf = x.copy()
    with make(model, max_batch=64, max_wait_us=20_000_000) as b:
        b.open_stream("a")
        b.open_stream("b")
        fa = b.submit_frame("a", buf)          # "b" has none queued: the window stays open
        buf[:] = 0.0                            # the caller reuses its buffer
        fb = b.submit_frame("b", np.zeros(D, np.float32))   # every open stream: runs now
        got = fa.result(10)
        fb.result(10)
    assert np.array_equal(got, reference_steps(model, [x])[0][0])


def test_no_batched_call_gets_more_than_max_batch_frames(model):
    with make(model, max_batch=2, max_wait_us=20_000_000) as b:
        for k in range(3):
            b.open_stream(k)
        with b._cv:   # all three queued before the worker looks (the Condition's RLock)
            futs = [b.submit_frame(k, np.ones(D, np.float32)) for k in range(3)]
        for f in futs:
            f.result(10)
        st = b.stats()
    assert st["fallbacks"] == 0 and st["frame_calls"] == 2


def test_no_batched_call_gets_more_than_max_batch_sequences(model):
    with make(model, max_batch=2, max_streams=0, max_wait_us=20_000_000) as b:
        with b._cv:
            futs = [b.submit_sequence(np.ones((3, D), np.float32)) for _ in range(3)]
        for f in futs:
            f.result(10)
        st = b.stats()
    assert st["fallbacks"] == 0 and st["sequence_calls"] == 2


class GatedStreams(SpyStreams):
    """A SpyStreams whose step calls wait until `release` is set, after setting `entered`:
    a test can queue requests while a batch is running."""

    def __init__(self, inner):
        super().__init__(inner)
        self.entered = threading.Event()
        self.release = threading.Event()

    def step(self, slots, x):
        self.entered.set()
        assert self.release.wait(10)
        return super().step(slots, x)


def gate(b):
    b._streams = GatedStreams(b._streams)
    return b._streams


def test_a_submission_racing_close_is_refused_not_left_unresolved(model):
    b = make(model)
    b.open_stream("s")

    class ClosesOnHash:
        def __hash__(self):
            b.close()   # close() runs between the submission's checks and its queueing
            return 1

    with pytest.raises(BatcherClosedError):
        b.submit_frame(ClosesOnHash(), np.zeros(D, np.float32))


def test_a_full_queue_of_sequences_runs_without_waiting_out_the_window(model):
    with make(model, max_batch=2, max_streams=0, max_wait_us=30_000_000) as b:
        in_window = window_watch(b)
        first = b.submit_sequence(np.ones((2, D), np.float32))
        assert in_window.wait(10)   # the worker waits in the window
        second = b.submit_sequence(np.ones((2, D), np.float32))
        for f in (first, second):
            f.result(10)   # not after the 30 s window


def test_a_stream_operation_ends_the_window_of_a_waiting_sequence(model):
    with make(model, max_batch=64, max_wait_us=30_000_000) as b:
        in_window = window_watch(b)
        seq = b.submit_sequence(np.ones((2, D), np.float32))   # waits for others
        assert in_window.wait(10)
        b.open_stream("s", timeout=10)                         # callers wait on it: run now
        seq.result(10)


def test_a_packed_initial_state_is_copied_at_submission(model):
    rng = np.random.default_rng(16)
    x = rng.standard_normal((3, D)).astype(np.float32)
    packed = rng.standard_normal(model.state_count(1)).astype(np.float32)
    want = reference_sequence(model, x, packed.copy())[0]
    with make(model, max_streams=0, max_wait_us=300_000) as b:
        fut = b.submit_sequence(x, packed)
        packed[:] = 0.0   # the caller reuses its buffer once submit returns
        got, _ = fut.result(10)
    assert np.array_equal(got, want)


def test_an_unhashable_stream_id_is_refused_when_submitted_and_the_batcher_goes_on(model):
    with make(model) as b:
        for op in (b.submit_open_stream, b.submit_close_stream, b.submit_stream_state):
            with pytest.raises(TypeError, match="unhashable"):
                op(["a"])
        b.open_stream("s", timeout=10)
        b.frame("s", np.zeros(D, np.float32), timeout=10)


def test_a_timed_out_wait_for_a_frame_already_running_returns_its_result(model):
    x = frames_for(1, 1, seed=18)[0, 0]
    with make(model, max_wait_us=0) as b:
        b.open_stream("s")
        g = gate(b)

        def release_later():   # the step ends well after the caller's timeout
            if g.entered.wait(10):
                time.sleep(1.2)
            g.release.set()

        threading.Thread(target=release_later).start()
        got = b.frame("s", x, timeout=1.0)   # its batch started by then: waited for
    assert np.array_equal(got, reference_steps(model, [x])[0][0])


def test_a_stream_operation_waits_for_a_frame_of_its_stream_left_for_the_next_batch(model):
    xs = frames_for(3, 1, seed=19)[:, 0]
    with make(model, max_batch=1, max_wait_us=0) as b:
        for k in ("x", "a", "b"):
            b.open_stream(k)
        g = gate(b)
        first = b.submit_frame("x", xs[0])
        assert g.entered.wait(10)   # the worker is in that step: the rest queue up
        fa = b.submit_frame("a", xs[1])
        fb = b.submit_frame("b", xs[2])   # max_batch 1: left for a later batch
        state_b = b.submit_stream_state("b")
        g.release.set()
        for f in (first, fa, fb):
            f.result(10)
        state = state_b.result(10)
    _, want = reference_steps(model, xs[2:])
    assert all(np.array_equal(a.h, w.h) for a, w in zip(state, want)), \
        "the state read overtook the stream's earlier frame"


def test_a_cancelled_sequence_is_dropped_and_the_others_of_its_batch_run(model):
    x = frames_for(1, 4, seed=20)[0]
    with make(model, max_batch=2, max_streams=0, max_wait_us=20_000_000) as b:
        with b._cv:   # both queued before the worker looks; two: the batch is full
            f1 = b.submit_sequence(x)
            f2 = b.submit_sequence(x[::-1])   # of one length: they would share a call
            assert f1.cancel()
        got, _ = f2.result(10)
        assert b.stats()["sequences"] == 1
    assert np.array_equal(got, reference_sequence(model, x[::-1].copy())[0])


def test_a_lone_frame_whose_call_fails_is_not_run_again(model):
    with make(model) as b:
        b.open_stream("s")
        s = spy(b)
        s.fail_slot = b._slots["s"]
        with pytest.raises(stacklstm.InvalidArgumentError, match="injected"):
            b.frame("s", np.zeros(D, np.float32), timeout=10)
        assert len(s.calls) == 1 and b.stats()["fallbacks"] == 0


def test_frames_for_unknown_streams_are_not_counted_as_served(model):
    with make(model, max_wait_us=20_000_000) as b:
        b.open_stream("s")
        with b._cv:
            good = b.submit_frame("s", np.zeros(D, np.float32))
            bad = b.submit_frame("nope", np.zeros(D, np.float32))
        good.result(10)
        with pytest.raises(UnknownStreamError):
            bad.result(10)
        assert b.stats()["frames"] == 1


def test_closing_the_batcher_leaves_a_given_session_and_streams_open(model):
    from stacklstm.streams import Streams
    x = frames_for(1, 2, seed=22)[0]
    with model.session(8, 12, cpu_path=PATH) as s, \
            Streams(model, 4, 8, max_time=1, cpu_path=PATH) as st:
        with Batcher(model, session=s, streams=st, max_wait_us=0) as b:
            b.open_stream("a")
            b.frame("a", x[0], timeout=10)
            b.sequence(x, timeout=10)
        assert s.forward(x[None])[0].shape == (1, 2, HS[-1])   # still open
        slot = st.open()
        assert st.step([slot], x[:1]).shape == (1, HS[-1])


def test_a_given_session_s_max_time_bounds_the_sequences(model):
    with model.session(8, 5, cpu_path=PATH) as s:
        with Batcher(model, session=s, max_streams=0) as b:
            assert b.max_time == 5
            with pytest.raises(ValueError, match="this batcher takes 1 to 5"):
                b.submit_sequence(np.zeros((6, D), np.float32))


def test_stats_returns_a_snapshot(model):
    with make(model) as b:
        before = b.stats()
        b.sequence(np.ones((2, D), np.float32), timeout=10)
        assert before["sequences"] == 0 and b.stats()["sequences"] == 1


def test_closing_with_a_cancelled_request_queued_fails_the_others(model):
    b = make(model, max_batch=64, max_wait_us=30_000_000)
    for k in ("s", "t"):
        b.open_stream(k)
    f1 = b.submit_frame("s", np.zeros(D, np.float32))
    f2 = b.submit_frame("s", np.ones(D, np.float32))
    assert f1.cancel()
    b.close()
    with pytest.raises(BatcherClosedError):
        f2.result(5)


@pytest.mark.parametrize("view", [memoryview, lambda a: a.view(_Sub)],
                         ids=["memoryview", "ndarray-subclass"])
def test_a_frame_is_copied_at_submission_whatever_view_of_the_buffer_it_comes_as(model,
                                                                                  view):
    x = frames_for(1, 1, seed=23)[0, 0]
    buf = x.copy()
    with make(model, max_batch=64, max_wait_us=20_000_000) as b:
        b.open_stream("a")
        b.open_stream("b")
        fa = b.submit_frame("a", view(buf))   # "b" has none queued: the window stays open
        buf[:] = 0.0
        b.submit_frame("b", np.zeros(D, np.float32)).result(10)
        got = fa.result(10)
    assert np.array_equal(got, reference_steps(model, [x])[0][0])


def test_reset_with_a_state_sets_that_state(model):
    rng = np.random.default_rng(24)
    st = [stacklstm.LSTMStateTuple(rng.standard_normal((1, H)).astype(np.float32),
                                   rng.standard_normal((1, H)).astype(np.float32))
          for H in HS]
    x = frames_for(1, 2, seed=25)[0]
    with make(model) as b:
        b.open_stream("s")
        b.frame("s", x[0], timeout=10)
        b.reset_stream("s", st, timeout=10)
        got = b.frame("s", x[1], timeout=10)
    assert np.array_equal(got, reference_steps(model, x[1:], st)[0][0])


def test_a_queued_sequence_keeps_the_window_open_though_every_stream_has_a_frame(model):
    with make(model, max_batch=64, max_wait_us=1_500_000) as b:
        b.open_stream("only")
        in_window = window_watch(b)
        s1 = b.submit_sequence(np.ones((2, D), np.float32))
        f = b.submit_frame("only", np.ones(D, np.float32))   # a sequence may still come
        assert in_window.wait(10)
        s2 = b.submit_sequence(np.zeros((2, D), np.float32))
        for fut in (s1, f, s2):
            fut.result(10)
        assert b.stats()["sequence_calls"] == 1   # s2 joined s1's window


def test_an_await_cancelled_while_its_batch_runs_does_not_stall_the_others(model):
    with make(model, max_wait_us=20_000_000) as b:   # both frames: one batch, at once
        for k in ("a", "b"):
            b.open_stream(k)
        g = gate(b)

        async def main():
            ta = asyncio.ensure_future(b.aframe("a", np.ones(D, np.float32)))
            tb = asyncio.ensure_future(b.aframe("b", np.ones(D, np.float32)))
            assert await asyncio.get_running_loop().run_in_executor(None, g.entered.wait, 10)
            ta.cancel()   # too late to drop the frame: its batch is running
            g.release.set()
            got = await asyncio.wait_for(tb, 10)
            with pytest.raises(asyncio.CancelledError):
                await ta
            return got

        got = asyncio.run(main())
    assert np.array_equal(got, reference_steps(model, [np.ones(D, np.float32)])[0][0])
