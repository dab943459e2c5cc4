"""The version-2 golden fixtures (tests/fixtures/cells_*.fix, issue 20: outputs of the real
frameworks for each cell, variant, direction and stack) through the Python package: each
fixture's native tensors go through Model.from_weights(format, layers=...), its canonical ones
through the canonical format, and both give the fixture's outputs and final state."""

import os

import numpy as np
import pytest

import stacklstm
from stacklstm import Layer

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tests", "fixtures")
NAMES = sorted(f[:-4] for f in os.listdir(FIXTURES)
               if f.startswith("cells_") and f.endswith(".fix"))
ATOL = 2e-5


def layers_of(fx):
    return [Layer(s["cell"], s["H"], s["dir"], bool(s["res"]), bool(s["peep"]), s["cclip"],
                  s["P"], s["pclip"], bool(s["ra"])) for s in fx["layers"]]


def weights(gen, fx, fmt, layers, source):
    """Per layer, the tensors `fmt` takes (in slstm_format_tensors' order) from the fixture's
    `source` dict (fx["native"] or fx["canonical"]), shaped as the library lists them."""
    specs = stacklstm.format_tensors(fmt, fx["input_size"], layers=layers)
    out = [[] for _ in layers]
    for t in specs:
        name = gen.base_name(fmt, t.name) if fmt != "canonical" else t.name
        out[t.layer].append(source[(t.layer, t.direction, name)].reshape(t.shape))
    return out


def run(fx, model):
    B, T, D = fx["batch"], fx["time"], fx["input_size"]
    t = fx["tensors"]
    x = t["input"].reshape((T, B, D) if fx["time_major"] else (B, T, D))
    lens = t["lengths"].astype(np.int64) if "lengths" in t else None
    init = t.get("initial_state")
    with model.session(B, T) as s:
        return s.forward(x, initial_state=init, sequence_lengths=lens,
                         time_major=bool(fx["time_major"]), packed_state=True)


@pytest.fixture(scope="module")
def gen():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "gen_fixtures", os.path.join(FIXTURES, "gen_fixtures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_there_are_cell_fixtures():
    assert len(NAMES) >= 10


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("source", ["native", "canonical"])
def test_a_fixture_gives_its_outputs_and_final_state(gen, name, source):
    fx = gen.load_fixture2(os.path.join(FIXTURES, name + ".fix"))
    layers = layers_of(fx)
    fmt = fx["format"] if source == "native" else "canonical"
    w = weights(gen, fx, fmt, layers, fx[source])
    # A native format without forget_bias (all but tf) is imported with 0, as the library
    # documents; the canonical tensors carry the fixture's own.
    with stacklstm.Model.from_weights(w, fmt, layers=layers,
                                      forget_bias=fx["forget_bias"]) as m:
        assert list(m.layers) == layers
        out, final = run(fx, m)
    np.testing.assert_allclose(out.reshape(-1), fx["tensors"]["output"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(final, fx["tensors"]["final_state"], atol=ATOL, rtol=0)
