"""Equality with the numbers the C tests check: every committed fixture (real TF, PyTorch,
tf_keras, ONNX, and the numpy reference) through the Python package."""
import numpy as np
import pytest

import stacklstm

NAMES = {"tf": ("kernel", "bias"),
         "pytorch": ("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
         "keras": ("kernel", "recurrent_kernel", "bias"),
         "keras_cudnn": ("kernel", "recurrent_kernel", "bias"),
         "onnx": ("W", "R", "B")}
TOL = 1e-5


def rel_err(got, want):
    want = np.asarray(want, dtype=np.float64).ravel()
    got = np.asarray(got, dtype=np.float64).ravel()
    return np.max(np.abs(got - want), initial=0.0) / max(np.max(np.abs(want), initial=0.0), 1e-30)


def run_fixture(fx, fmt=None, names=None):
    fmt = fmt or fx["format"]
    names = names or NAMES[fx["format"]]
    ts = fx["tensors"]
    layers = []
    I = fx["input_size"]
    for l, H in enumerate(fx["hidden_sizes"]):
        shapes = stacklstm.tensor_shapes(fmt, I, H)
        layers.append({stacklstm.TENSOR_NAMES[fmt][k]: ts["L%d.%s" % (l, n)].reshape(shapes[k])
                       for k, n in enumerate(names)})
        I = H
    model = stacklstm.Model.from_weights(layers, fmt, forget_bias=fx["forget_bias"])
    B, T, D = fx["batch"], fx["time"], fx["input_size"]
    x = ts["input"].reshape((T, B, D) if fx["time_major"] else (B, T, D))
    with model.session(B, max(T, 1)) as s:
        out, final = s.forward(x, initial_state=ts.get("initial_state"),
                               sequence_lengths=(ts["lengths"].astype(np.int64)
                                                 if "lengths" in ts else None),
                               time_major=bool(fx["time_major"]), packed_state=True)
    return out, final


@pytest.mark.parametrize("prefix", ["ref_", "tfreal_", "torch_", "keras_", "onnx_"])
def test_fixtures_match_their_framework(prefix, fixture_names, load_fix):
    names = fixture_names(prefix)
    assert names, "no %s*.fix fixtures" % prefix
    for name in names:
        fx = load_fix(name)
        out, final = run_fixture(fx)
        assert rel_err(out, fx["tensors"]["output"]) <= TOL, name
        assert rel_err(final, fx["tensors"]["final_state"]) <= TOL, name


def test_cudnn_layout_reproduces_torch(fixture_names, load_fix):
    for name in fixture_names("torch_"):
        fx = load_fix(name)
        out, final = run_fixture(fx, "cudnn", NAMES["pytorch"])
        assert rel_err(out, fx["tensors"]["output"]) <= TOL, name


def test_python_and_c_agree_bit_for_bit_on_the_same_model(load_fix):
    # The golden test above goes through the same C entry points as tests/test_golden.cpp;
    # here, two routes inside the library (TF import vs its own model file) must agree.
    fx = load_fix("tfreal_lengths")
    out1, fin1 = run_fixture(fx)
    ts = fx["tensors"]
    layers = [[ts["L%d.kernel" % l], ts["L%d.bias" % l]] for l in range(fx["num_layers"])]
    m = stacklstm.Model.from_weights(
        [[k.reshape(-1, 4 * H), b] for (k, b), H in zip(layers, fx["hidden_sizes"])],
        "tf", forget_bias=fx["forget_bias"])
    m2 = stacklstm.Model.from_bytes(m.to_bytes("tf"))
    x = ts["input"].reshape(fx["batch"], fx["time"], fx["input_size"])
    out2, fin2 = m2.session(fx["batch"], fx["time"]).forward(
        x, ts["initial_state"], ts["lengths"].astype(int), packed_state=True)
    assert np.array_equal(out1, out2) and np.array_equal(fin1, fin2)
