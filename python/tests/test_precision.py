"""Session precision from Python (docs/precision.md): precision="bf16" / "fp16" on the CPU
backend rounds the products' operands; the numbers stay within the written tolerance of the
FP32 reference, and what a backend does not run is refused with the library's message."""
import numpy as np
import pytest

import stacklstm


@pytest.fixture
def model():
    with stacklstm.Model.random(9, [37, 13], seed=5) as m:
        yield m


X = np.random.default_rng(3).uniform(-1, 1, size=(3, 10, 9)).astype(np.float32)


def run(model, **kw):
    with model.session(3, 10, **kw) as s:
        y, state = s.forward(X)
        return y, s.describe("json")


@pytest.mark.parametrize("precision, unit", [("bf16", 2.0 ** -8), ("fp16", 2.0 ** -11)])
@pytest.mark.parametrize("cpu_path", ["fast", "reference"])
def test_half_precision_session_is_within_tolerance_of_fp32(model, precision, unit, cpu_path):
    want, _ = run(model, cpu_path="reference", precision="fp32")
    got, plan = run(model, cpu_path=cpu_path, precision=precision)
    assert plan["precision"] == precision
    err = np.abs(got.astype(np.float64) - want).max()
    assert 0 < err <= unit * (1 + np.sqrt(37 + 37) / 4)


def test_precision_names_are_checked_before_the_library(model):
    with pytest.raises(ValueError, match="precision must be one of"):
        model.session(1, 1, precision="int8")


def test_tf32_on_the_cpu_is_refused_with_the_library_s_message(model):
    with pytest.raises(stacklstm.UnsupportedError, match="options->precision tf32"):
        model.session(1, 1, precision="tf32")


def test_default_precision_is_fp32_bit_for_bit(model):
    a, plan = run(model)
    b, _ = run(model, precision="fp32")
    assert plan["precision"] == "fp32"
    assert np.array_equal(a, b)
