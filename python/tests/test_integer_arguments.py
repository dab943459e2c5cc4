"""Integers are range-checked before they cross into C: ctypes would silently keep only
their low bits (2**64 + 4 would become 4), and a float is not truncated to an integer."""
import numpy as np
import pytest

import stacklstm
from stacklstm._ints import INT64, UINT64, checked_int


@pytest.fixture(scope="module")
def model():
    return stacklstm.Model.random(5, [4], seed=1)


def test_a_hidden_size_beyond_int64_is_refused_not_truncated():
    with pytest.raises(OverflowError, match=r"hidden_sizes\[0\]"):
        stacklstm.Model.random(5, [2 ** 64 + 4])


def test_an_input_size_beyond_int64_is_refused_not_truncated():
    with pytest.raises(OverflowError, match="input_size"):
        stacklstm.Model.random(2 ** 64 + 5, [4])


@pytest.mark.parametrize("field", ["max_batch", "max_time"])
def test_session_sizes_beyond_int64_are_refused_not_truncated(model, field):
    kw = dict(max_batch=2, max_time=3)
    kw[field] = 2 ** 64 + 2
    with pytest.raises(OverflowError, match=field):
        model.session(**kw)


@pytest.mark.parametrize("field", ["num_threads", "device"])
def test_int32_session_options_beyond_int32_are_refused_not_truncated(model, field):
    with pytest.raises(OverflowError, match=field):
        model.session(2, 3, **{field: 2 ** 40})


def test_a_negative_seed_is_refused_not_wrapped():
    with pytest.raises(OverflowError, match="seed"):
        stacklstm.Model.random(5, [4], seed=-1)


def test_fractional_sizes_are_type_errors_not_truncated(model):
    with pytest.raises(TypeError, match="max_batch"):
        model.session(2.7, 3)
    with pytest.raises(TypeError, match="hidden_sizes"):
        stacklstm.Model.random(5, [4.5])


def test_a_state_count_batch_beyond_int64_is_refused(model):
    with pytest.raises(OverflowError, match="batch"):
        model.state_count(2 ** 64 + 1)


def test_sequence_lengths_beyond_int32_are_refused(model):
    s = model.session(2, 3)
    with pytest.raises(OverflowError, match="sequence_lengths"):
        s.forward(np.zeros((2, 3, 5), np.float32), sequence_lengths=[2 ** 32 + 1, 1])


def test_status_and_backend_values_beyond_int32_are_refused_not_truncated():
    with pytest.raises(OverflowError, match="status"):
        stacklstm.status_string(2 ** 32 + 2)   # would read as 2, "shape mismatch"
    with pytest.raises(OverflowError, match="backend"):
        stacklstm.backend_available(2 ** 32)   # would read as 0, the CPU


@pytest.mark.parametrize("make, field", [
    (lambda: stacklstm.Layer.lstm(2 ** 64 + 4), "hidden_size"),
    (lambda: stacklstm.Layer.lstm(4, proj_size=2 ** 64 + 2), "proj_size"),
    (lambda: stacklstm.Layer.gru(2 ** 63), "hidden_size"),
], ids=["hidden_size_2**64+4", "proj_size_2**64+2", "hidden_size_2**63"])
def test_layer_sizes_beyond_int64_are_refused_not_wrapped(make, field):
    with pytest.raises(OverflowError, match="Layer." + field):
        make()


def test_the_largest_seed_uint64_max_is_accepted():
    a = stacklstm.Model.random(3, [4], seed=2 ** 64 - 1)
    b = stacklstm.Model.random(3, [4], seed=2 ** 64 - 1)
    assert a.to_bytes() == b.to_bytes()


def test_checked_int_accepts_both_ends_of_each_range():
    for lo, hi in (INT64, UINT64):
        assert checked_int(lo, "x", (lo, hi)) == lo
        assert checked_int(hi, "x", (lo, hi)) == hi


def test_float_sequence_lengths_are_a_type_error_not_truncated():
    m = stacklstm.Model.random(3, [4], seed=1)
    x = np.zeros((2, 3, 3), np.float32)
    with m.session(2, 3) as s:
        with pytest.raises(TypeError, match="sequence_lengths"):
            s.forward(x, sequence_lengths=np.array([2.5, 3.0]))
