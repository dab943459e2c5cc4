"""stacklstm.Streams (stream slots, issue 17): each stream's outputs and state are bitwise
Session.forward's at batch 1 from the same state; errors raise the package's exceptions and
change nothing; the object's lock serialises threads."""
import threading

import numpy as np
import pytest

import stacklstm
from stacklstm import LSTMStateTuple
from stacklstm.errors import (InvalidArgumentError, OutOfRangeError, SessionBusyError,
                              SlotsFullError)
from stacklstm.streams import Streams
from stacklstm import Layer

D, HIDDEN = 7, [19, 11]


def _paths():
    out = ["reference"]
    m = stacklstm.Model.random(D, HIDDEN, seed=1)
    try:
        stacklstm.Session(m, 1, 1, cpu_path="fast").close()
        out.append("fast")
    except stacklstm.BackendUnavailableError:
        pass
    return out


PATHS = _paths()


@pytest.fixture
def model():
    with stacklstm.Model.random(D, HIDDEN, seed=3) as m:
        yield m


def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def _same(a, b):
    return np.array_equal(_bits(a), _bits(b))


def _same_state(got, want):
    return len(got) == len(want) and all(
        _same(g.c, w.c) and _same(g.h, w.h) for g, w in zip(got, want))


def _random_state(rng):
    return [LSTMStateTuple(rng.standard_normal((1, H)).astype(np.float32),
                           rng.standard_normal((1, H)).astype(np.float32)) for H in HIDDEN]


@pytest.mark.parametrize("cpu_path", PATHS)
def test_each_stream_is_bitwise_a_batch_1_session_forward(model, cpu_path):
    rng = np.random.default_rng(5)
    n, max_batch, max_time = 9, 7, 5
    single = stacklstm.Session(model, 1, max_time, cpu_path=cpu_path)
    with Streams(model, max_streams=n, max_batch=max_batch, max_time=max_time,
                 cpu_path=cpu_path) as streams:
        state, slot = [], []
        for k in range(n):
            st = _random_state(rng) if k % 2 else [
                LSTMStateTuple(np.zeros((1, H), np.float32), np.zeros((1, H), np.float32))
                for H in HIDDEN]
            state.append(st)
            slot.append(streams.open(st if k % 2 else None))
        for r in range(30):
            k = 1 + r % max_batch
            T = int(rng.integers(0, max_time + 1))
            time_major = bool(r % 2)
            who = rng.permutation(n)[:k]
            lengths = rng.integers(0, T + 1, size=k) if r % 3 else None
            x = rng.standard_normal((k, T, D)).astype(np.float32)
            got = streams.run([slot[i] for i in who], x.transpose(1, 0, 2) if time_major else x,
                              lengths=lengths, time_major=time_major)
            if time_major:
                got = got.transpose(1, 0, 2)
            assert got.shape == (k, T, HIDDEN[-1])
            for row, i in enumerate(who):
                want, final = single.forward(
                    x[row:row + 1], initial_state=state[i],
                    sequence_lengths=None if lengths is None else lengths[row:row + 1])
                assert _same(got[row], want[0]), (r, row, i)
                state[i] = final
        for i in range(n):
            assert _same_state(streams.get_state(slot[i]), state[i]), i
    single.close()


@pytest.mark.parametrize("cpu_path", PATHS)
def test_step_is_bitwise_a_one_frame_forward(model, cpu_path):
    rng = np.random.default_rng(6)
    with Streams(model, 4, 4, cpu_path=cpu_path) as streams, \
            stacklstm.Session(model, 1, 1, cpu_path=cpu_path) as single:
        ids = [streams.open() for _ in range(4)]
        states = [None] * 4
        for _ in range(5):
            x = rng.standard_normal((3, D)).astype(np.float32)
            who = [3, 0, 2]
            got = streams.step([ids[i] for i in who], x)
            assert got.shape == (3, HIDDEN[-1])
            for row, i in enumerate(who):
                want, states[i] = single.forward(x[row:row + 1, None, :], initial_state=states[i])
                assert _same(got[row], want[0, 0])
        assert _same_state(streams.get_state(ids[2]), states[2])


def test_open_takes_a_state_of_1_by_H_or_H_pieces_and_get_state_gives_1_by_H(model):
    rng = np.random.default_rng(7)
    st = _random_state(rng)
    flat = [LSTMStateTuple(s.c[0], s.h[0]) for s in st]
    with Streams(model, 3, 1) as streams:
        a = streams.open(st)
        b = streams.open(flat)
        got_a, got_b = streams.get_state(a), streams.get_state(b)
        assert isinstance(got_a, tuple) and len(got_a) == len(HIDDEN)
        assert all(isinstance(s, LSTMStateTuple) for s in got_a)
        assert [s.c.shape for s in got_a] == [(1, H) for H in HIDDEN]
        assert _same_state(got_a, st)
        assert _same_state(got_b, st)


def test_reset_to_zeros_or_to_a_state(model):
    rng = np.random.default_rng(8)
    st = _random_state(rng)
    with Streams(model, 1, 1) as streams:
        a = streams.open(st)
        streams.reset(a)
        assert all(not s.c.any() and not s.h.any() for s in streams.get_state(a))
        streams.reset(a, st)
        assert _same_state(streams.get_state(a), st)


def test_open_count_and_max_streams(model):
    with Streams(model, 3, 2) as streams:
        assert streams.max_streams == 3
        assert streams.open_count == 0
        a = streams.open()
        streams.open()
        assert streams.open_count == 2
        streams.close(a)
        assert streams.open_count == 1
        assert streams.open() == a   # the lowest free slot


def test_a_full_table_raises_SlotsFullError(model):
    with Streams(model, 2, 1) as streams:
        streams.open()
        streams.open()
        with pytest.raises(SlotsFullError, match="all 2 stream slots are open"):
            streams.open()
        assert streams.open_count == 2


def test_bad_slots_raise_and_change_nothing(model):
    rng = np.random.default_rng(9)
    st = _random_state(rng)
    x = rng.standard_normal((2, 1, D)).astype(np.float32)
    with Streams(model, 3, 3) as streams:
        a, b = streams.open(st), streams.open()
        with pytest.raises(OutOfRangeError, match=r"slot_ids\[1\] is 3"):
            streams.run([a, 3], x)
        with pytest.raises(InvalidArgumentError, match=r"slot_ids\[1\] is 2: that slot is not open"):
            streams.run([a, 2], x)
        with pytest.raises(InvalidArgumentError, match=r"slot_ids\[0\] and slot_ids\[1\]"):
            streams.run([b, b], x)
        with pytest.raises(InvalidArgumentError, match="not open"):
            streams.close(2)
        with pytest.raises(TypeError, match=r"slots\[1\] must be an integer"):
            streams.run([a, 1.0], x)
        with pytest.raises(OverflowError, match=r"slots\[1\]"):
            streams.run([a, 2 ** 70], x)
        with pytest.raises(ValueError, match="expected"):
            streams.run([a], x)
        with pytest.raises(ValueError, match=r"slots must be a vector .*got shape \(1, 2\)"):
            streams.run(np.array([[a, b]]), x)
        assert _same_state(streams.get_state(a), st)
        assert all(not s.c.any() for s in streams.get_state(b))
        assert streams.open_count == 2


def test_a_closed_Streams_refuses_calls(model):
    streams = Streams(model, 1, 1)
    streams.open()
    streams.destroy()
    with pytest.raises(InvalidArgumentError, match="closed"):
        streams.open()
    streams.close()   # idempotent


def test_threads_sharing_a_Streams_are_serialised_and_exact(model):
    """Four threads step their own streams through one Streams object at once: the lock
    makes them wait for each other (no SessionBusyError) and every result is exact."""
    rng = np.random.default_rng(10)
    frames = rng.standard_normal((4, 40, D)).astype(np.float32)
    with Streams(model, 4, 4) as streams, stacklstm.Session(model, 1, 40) as single:
        ids = [streams.open() for _ in range(4)]
        got = [[None] * 40 for _ in range(4)]
        errors = []

        def feed(k):
            try:
                for t in range(40):
                    got[k][t] = streams.step([ids[k]], frames[k, t][None, :])[0]
            except Exception as e:   # pragma: no cover (reported below)
                errors.append(e)

        threads = [threading.Thread(target=feed, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        assert not any(isinstance(e, SessionBusyError) for e in errors)
        for k in range(4):
            want, final = single.forward(frames[k:k + 1])
            assert _same(np.stack(got[k]), want[0]), k
            assert _same_state(streams.get_state(ids[k]), final), k


def test_a_float_slot_array_is_a_type_error_not_truncated():
    m = stacklstm.Model.random(D, [5], seed=1)
    with Streams(m, 2, 2) as s:
        s.open()
        with pytest.raises(TypeError, match="slots"):
            s.run(np.array([0.0]), np.zeros((1, 1, D), np.float32))


def test_step_refuses_a_one_dimensional_frame_with_a_value_error():
    m = stacklstm.Model.random(D, [5], seed=1)
    with Streams(m, 2, 2) as s:
        a = s.open()
        with pytest.raises(ValueError, match="k, D"):
            s.step([a], np.zeros(D, np.float32))


def test_a_gru_stream_opens_from_a_one_dimensional_h():
    m = stacklstm.Model.random(D, layers=[Layer.gru(5)], seed=1)
    h = np.arange(5, dtype=np.float32)
    with Streams(m, 2, 2) as s:
        a = s.open([h])
        got = s.get_state(a)
    assert np.array_equal(np.asarray(got[0]).reshape(-1), h)
