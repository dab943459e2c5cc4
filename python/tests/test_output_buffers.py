"""forward(out=..., final_state_out=...) with NumPy arrays: written in place and returned,
or refused when their dtype, shape, contiguity or writeability does not fit."""
import numpy as np
import pytest

import stacklstm

B, T, D, HS = 2, 4, 3, [5, 2]
COUNT = sum(2 * B * h for h in HS)


@pytest.fixture
def s():
    return stacklstm.Model.random(D, HS, seed=7).session(B, T)


@pytest.fixture
def x():
    return np.random.default_rng(0).random((B, T, D), dtype=np.float32)


def test_out_and_final_state_out_are_written_in_place_and_returned(s, x):
    want_out, want_final = s.forward(x, packed_state=True)
    out = np.full((B, T, HS[-1]), np.nan, np.float32)
    final = np.full(COUNT, np.nan, np.float32)
    got_out, got_final = s.forward(x, out=out, final_state_out=final, packed_state=True)
    assert got_out is out and got_final is final
    assert np.array_equal(out, want_out) and np.array_equal(final, want_final)


def test_time_major_out_has_the_time_major_shape(s, x):
    want, _ = s.forward(x)
    out = np.empty((T, B, HS[-1]), np.float32)
    s.forward(np.ascontiguousarray(x.transpose(1, 0, 2)), time_major=True, out=out)
    assert np.array_equal(out.transpose(1, 0, 2), want)


def test_the_unpacked_final_state_is_views_of_final_state_out(s, x):
    final = np.empty(COUNT, np.float32)
    _, st = s.forward(x, final_state_out=final)
    assert all(np.shares_memory(t.c, final) and np.shares_memory(t.h, final) for t in st)
    assert np.array_equal(final, s.forward(x, packed_state=True)[1])


def test_final_state_out_may_be_the_initial_state_updated_in_place(s, x):
    _, want = s.forward(x, packed_state=True)
    state = np.zeros(COUNT, np.float32)
    s.forward(x[:, :1], initial_state=state, final_state_out=state)
    s.forward(x[:, 1:], initial_state=state, final_state_out=state)
    assert np.allclose(state, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name, bad, error, match", [
    ("out", np.empty((B, T, HS[-1]), np.float64), TypeError, "float32"),
    ("out", np.empty((T, B, HS[-1]), np.float32), ValueError, "shape"),
    ("out", np.empty((B, T, 2 * HS[-1]), np.float32)[:, :, ::2], ValueError, "contiguous"),
    ("out", [[[0.0] * HS[-1]] * T] * B, TypeError, "numpy.ndarray"),
    ("final_state_out", np.empty((2, COUNT // 2), np.float32), ValueError, "shape"),
    ("final_state_out", np.empty(COUNT, np.float16), TypeError, "float32"),
])
def test_unusable_output_buffers_are_refused_not_ignored(s, x, name, bad, error, match):
    with pytest.raises(error, match=match):
        s.forward(x, **{name: bad})


def test_a_read_only_output_buffer_is_refused(s, x):
    out = np.empty((B, T, HS[-1]), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        s.forward(x, out=out)


class FakeCudaArray:
    """Quacks like a CUDA array; refused before any pointer is used."""

    def __init__(self, shape):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4", "strides": None,
                                         "data": (0xDEAD0000, False), "version": 3}


@pytest.mark.parametrize("out_shape, final_shape, init_shape", [
    ((T, B, 2), (COUNT,), None),           # time-major out for a batch-major call
    ((B, T, 2), (2, COUNT // 2), None),    # a packed state in two dims
    ((B, T, 2), (COUNT,), (2, COUNT // 2)),
])
def test_cuda_buffers_are_checked_by_shape_not_element_count(s, out_shape, final_shape,
                                                             init_shape):
    init = None if init_shape is None else FakeCudaArray(init_shape)
    with pytest.raises(ValueError, match="shape"):
        s.forward(FakeCudaArray((B, T, D)), initial_state=init, out=FakeCudaArray(out_shape),
                  final_state_out=FakeCudaArray(final_shape))


def test_a_read_only_final_state_out_of_the_right_shape_is_refused():
    m = stacklstm.Model.random(3, [4], seed=1)
    x = np.ones((2, 3, 3), np.float32)
    final = np.zeros(m.state_count(2), np.float32)
    final.flags.writeable = False
    with m.session(2, 3) as s:
        with pytest.raises(ValueError, match="read-only"):
            s.forward(x, final_state_out=final)
    assert not final.any()
