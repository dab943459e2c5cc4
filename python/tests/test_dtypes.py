"""The dtype policy: float32 as is; other real dtypes rounded to the nearest float32;
complex refused (its imaginary part would be lost); a float64 beyond float32's range
refused (it would become inf)."""
import numpy as np
import pytest

import stacklstm
from stacklstm import LSTMStateTuple


@pytest.fixture
def s():
    return stacklstm.Model.random(3, [4], seed=1).session(2, 3)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_inputs_are_refused(s, dtype):
    x = np.ones((2, 3, 3), dtype) * (1 + 2j)
    with pytest.raises(TypeError, match="complex"):
        s.forward(x)
    with pytest.raises(TypeError, match="complex"):
        s.step(x[:, 0])


def test_a_complex_initial_state_is_refused(s):
    z = np.zeros((2, 4), np.complex64)
    with pytest.raises(TypeError, match="complex"):
        s.forward(np.zeros((2, 3, 3), np.float32), initial_state=[LSTMStateTuple(z, z)])


def test_complex_weights_are_refused():
    k, b = np.ones((3 + 4, 16), np.complex128), np.zeros(16)
    with pytest.raises(TypeError, match="complex"):
        stacklstm.Model.from_weights([[k, b]], "tf")


def test_float64_beyond_float32_range_is_refused_not_made_inf(s):
    x = np.zeros((2, 3, 3))
    x[1, 2, 0] = 1e39
    with pytest.raises(ValueError, match=r"float32's range") as e:
        s.forward(x)
    assert "(1, 2, 0)" in str(e.value)


def test_a_numpy_scalar_input_is_reported_with_its_own_shape(s):
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        s.forward(np.float32(1))


def test_a_bool_input_is_read_as_zeros_and_ones(s):
    x = np.random.default_rng(4).random((2, 3, 3)) > 0.5
    assert np.array_equal(s.forward(x)[0], s.forward(x.astype(np.float32))[0])


def test_a_float64_infinity_stays_an_infinity_not_an_out_of_range_error():
    m = stacklstm.Model.random(3, [4], seed=1)
    x = np.zeros((1, 3), np.float64)
    x[0, 1] = np.inf
    assert np.isinf(m.pack_state(np.concatenate([x[0], np.zeros(5)]), 1)[1])
