"""A model and session made in the parent, used by forked workers (multiprocessing's default
start method on Linux before Python 3.14): the workers get the parent's numbers and exit,
instead of waiting forever for worker threads that stayed in the parent (before 0.16.1)."""
import multiprocessing
import sys

import numpy as np
import pytest

import stacklstm

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork semantics of Linux")

_session = None  # inherited by the forked workers
_x = None


def _flat(state):
    """The arrays of a final state (nested lists/tuples of arrays), as bytes."""
    if isinstance(state, np.ndarray):
        return [state.tobytes()]
    return [b for part in state for b in _flat(part)]


def _forward_in_child(_):
    out, state = _session.forward(_x)
    return out.tobytes(), _flat(state)


def test_forked_workers_use_the_parents_session_with_its_numbers():
    global _session, _x
    m = stacklstm.Model.random(6, [32, 24], seed=5)
    _session = m.session(max_batch=4, max_time=5, num_threads=2)
    _x = np.random.default_rng(6).standard_normal((4, 5, 6)).astype(np.float32)
    want_out, want_state = _session.forward(_x)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        got = pool.map_async(_forward_in_child, range(4)).get(timeout=60)
    for out, state in got:
        assert out == want_out.tobytes()
        assert state == _flat(want_state)
    # and the parent's session still works
    out, _ = _session.forward(_x)
    np.testing.assert_array_equal(out, want_out)
    _session.close()
    _session = None
