"""ONNX's own node test cases for the LSTM and GRU operators (the ones the `onnx` package ships
in onnx.backend.test.case.node.lstm / .gru), run through the library: each case's node becomes
a model through SLSTM_FORMAT_ONNX (stacklstm.Model.from_onnx, with the case's weights as
input values), its X, sequence_lens, initial_h and initial_c go to Session.forward, and Y,
Y_h and Y_c must equal the case's expected outputs (float32, atol 1e-5). Issue 20: every
LSTM and GRU case passes, `reverse` and `bidirectional` as directions of their own, and the
batchwise (layout=1) cases too.  The same cases also run on the CUDA backend's generic path
(cuda.generic=on) through the emulated CUDA module of tests/cuda_emu, in a child pytest
(SLSTM_TEST_ONNX_BACKEND=cuda-generic selects that backend for run_case)."""

import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install onnx)")

import stacklstm   # noqa: E402
from stacklstm import BidirectionalState, LSTMStateTuple   # noqa: E402

ATOL = 1e-5
# The sessions' backend: the CPU's default path, or CUDA's generic path (the child run below).
SESSION = ({"backend": "cuda", "config": "cuda.generic=on"}
           if os.environ.get("SLSTM_TEST_ONNX_BACKEND") == "cuda-generic" else {})


def _collect():
    """(name, node, inputs, outputs) of every LSTM and GRU node case, from the modules' export_*
    functions with `expect` captured (each seeded: some draw random weights)."""
    from onnx.backend.test.case.node import gru, lstm
    cases = []

    def capture(node, inputs, outputs, name, **kwargs):
        cases.append((name, node, list(inputs), list(outputs)))

    for module, cls in ((lstm, lstm.LSTM), (gru, gru.GRU)):
        saved = module.expect
        module.expect = capture
        try:
            for attr in sorted(vars(cls)):
                if attr.startswith("export"):
                    np.random.seed(0)
                    getattr(cls, attr)()
        finally:
            module.expect = saved
    return cases


CASES = _collect()


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def run_case(node, inputs):
    """The case's node through the library: {output name: array} in ONNX's shapes."""
    names = [n for n in node.input if n]
    values = dict(zip(names, inputs))
    model_proto = onnx.helper.make_model(onnx.helper.make_graph([node], "case", [], []))
    ins = list(node.input) + [""] * 8
    layout = int(_attr(node, "layout", 0))
    with stacklstm.Model.from_onnx(model_proto, values={k: v for k, v in values.items()
                                                        if k in ins[1:4] + ins[7:8]}) as m:
        L = m.layers[0]
        nd, H = L.directions, L.hidden_size
        X = values[ins[0]]
        T, B = (X.shape[1], X.shape[0]) if layout else (X.shape[0], X.shape[1])
        init = None
        if ins[5] or ins[6]:
            def per_dir(name):
                if not name:
                    return np.zeros((nd, B, H), np.float32)
                a = values[name]
                return np.swapaxes(a, 0, 1) if layout else a    # -> [nd, B, H]
            h0, c0 = per_dir(ins[5]), per_dir(ins[6])
            dirs = [LSTMStateTuple(c0[d], h0[d]) if L.cell == "lstm" else h0[d]
                    for d in range(nd)]
            init = [dirs[0] if nd == 1 else BidirectionalState(*dirs)]
        lens = values[ins[4]] if ins[4] else None
        with m.session(B, T, **SESSION) as s:
            y, fin = s.forward(X, initial_state=init, sequence_lengths=lens,
                               time_major=not layout)
    dirs = [fin[0]] if nd == 1 else [fin[0].fw, fin[0].bw]
    hs = np.stack([d.h if L.cell == "lstm" else d for d in dirs])   # [nd, B, H]
    got = {}
    if layout:
        got["Y"] = y.reshape(B, T, nd, H)
        got["Y_h"] = np.swapaxes(hs, 0, 1)
    else:
        got["Y"] = y.reshape(T, B, nd, H).transpose(0, 2, 1, 3)
        got["Y_h"] = hs
    if L.cell == "lstm":
        cs = np.stack([d.c for d in dirs])
        got["Y_c"] = np.swapaxes(cs, 0, 1) if layout else cs
    return got


def test_every_lstm_and_gru_case_of_the_onnx_package_is_collected():
    ops = sorted({node.op_type for _, node, _, _ in CASES})
    assert ops == ["GRU", "LSTM"]
    assert sum(node.op_type == "LSTM" for _, node, _, _ in CASES) >= 6
    assert sum(node.op_type == "GRU" for _, node, _, _ in CASES) >= 6


@pytest.mark.parametrize("name, node, inputs, outputs", CASES, ids=[c[0] for c in CASES])
def test_the_library_gives_the_onnx_cases_expected_outputs(name, node, inputs, outputs):
    got = run_case(node, inputs)
    # The node's outputs are Y, Y_h, Y_c by position; "" marks one the case does not ask for.
    out_names = ["Y", "Y_h", "Y_c"]
    expected = {}
    k = 0
    for pos, n in enumerate(node.output):
        if n:
            expected[out_names[pos]] = outputs[k]
            k += 1
    assert expected, name
    for key, want in expected.items():
        assert got[key].shape == want.shape, (key, got[key].shape, want.shape)
        np.testing.assert_allclose(got[key], want, atol=ATOL, rtol=0, err_msg=key)


def test_the_onnx_cases_pass_on_cudas_generic_path_through_the_emulated_module():
    lib = os.environ.get("SLSTM_LIBRARY", "")
    emu = os.path.join(os.path.dirname(lib), "tests", "libslstm_cuda_emu.so") if lib else ""
    if not emu or not os.path.exists(emu):
        pytest.skip("no emulated CUDA module next to $SLSTM_LIBRARY (a build without CUDA)")
    if SESSION:
        pytest.skip("(this is the child run)")
    env = dict(os.environ, SLSTM_CUDA_MODULE=emu, SLSTM_TEST_ONNX_BACKEND="cuda-generic")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        os.path.abspath(__file__), "-k", "expected_outputs"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "%d passed" % len(CASES) in r.stdout, r.stdout[-2000:]
