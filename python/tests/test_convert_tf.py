"""`python -m stacklstm.convert tf` with what a TF checkpoint does not hold (issue 20):
--cell-clip, --proj-clip and --residual, and a .npz of the variables as the source (no
tensorflow needed). The variables are the library's own TF naming (naming.to_tf_variables)
of a model whose numbers the converted file must reproduce bit for bit."""
import os
import subprocess
import sys

import numpy as np
import pytest

import stacklstm
from stacklstm import Layer, convert, naming

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tf_npz(tmp_path, layers, input_size=5, seed=3):
    """A model of `layers` with clips and residuals removed (what a checkpoint holds), its
    TF variables saved to a .npz; returns (path, the model's TF variables)."""
    bare = [Layer(**{**L.__dict__, "cell_clip": 0.0, "proj_clip": 0.0, "residual": False})
            for L in layers]
    with stacklstm.Model.random(input_size, layers=bare, seed=seed, scale=1.0) as m:
        variables = naming.to_tf_variables(m)
    path = tmp_path / "vars.npz"
    np.savez(path, **variables)
    return path, variables


def run(tmp_path, src, *options):
    out = tmp_path / "m.safetensors"
    status = convert.main(["tf", str(src), str(out)] + list(options))
    return status, out


def outputs(model, x):
    with model.session(x.shape[0], x.shape[1]) as s:
        y, state = s.forward(x)
    return y


X = np.random.default_rng(7).uniform(-3, 3, size=(2, 6, 5)).astype(np.float32)

LSTMP_GRU = [Layer("lstm", 6, peepholes=True, proj_size=5), Layer("gru", 5)]


def test_convert_tf_reads_a_npz_of_variables_without_options(tmp_path):
    path, variables = tf_npz(tmp_path, LSTMP_GRU)
    status, out = run(tmp_path, path)
    assert status == 0
    with stacklstm.Model.load(str(out)) as m:
        assert list(m.layers) == LSTMP_GRU
        back = naming.to_tf_variables(m)
    assert back.keys() == variables.keys()
    for k in variables:
        assert np.array_equal(back[k], variables[k]), k


def test_convert_tf_single_cell_clip_applies_to_every_lstm_layer_only(tmp_path):
    path, _ = tf_npz(tmp_path, LSTMP_GRU)
    status, out = run(tmp_path, path, "--cell-clip", "0.5", "--proj-clip", "0.25")
    assert status == 0
    with stacklstm.Model.load(str(out)) as m:
        assert list(m.layers) == [Layer("lstm", 6, peepholes=True, proj_size=5, cell_clip=0.5,
                                  proj_clip=0.25), Layer("gru", 5)]


def test_convert_tf_with_clips_gives_the_numbers_of_the_clipped_model(tmp_path):
    # (clips that float32 holds exactly: the library keeps them as float32)
    layers = [Layer("lstm", 6, peepholes=True, proj_size=5, cell_clip=0.375, proj_clip=0.25),
              Layer("lstm", 5, cell_clip=0.4375, residual=True)]
    path, variables = tf_npz(tmp_path, layers)
    status, out = run(tmp_path, path, "--cell-clip", "0.375,0.4375", "--proj-clip", "0.25",
                      "--residual", "1")
    assert status == 0
    with stacklstm.Model.load(str(out)) as got, \
            stacklstm.Model.from_tf_variables(variables, layers=layers) as want:
        assert list(got.layers) == layers
        assert np.array_equal(outputs(got, X), outputs(want, X))
        # the clips took effect: layer 0's projected h stays within proj_clip
        with got.session(2, 6) as s:
            _, state = s.forward(X)
        assert np.abs(state[0].h).max() <= 0.25


@pytest.mark.parametrize("options", [[], ["--cell-clip", "0.5"]], ids=["plain", "with-clip"])
def test_convert_tf_forget_bias_reaches_the_model(tmp_path, options):
    layers = [Layer("lstm", 4), Layer("lstm", 3)]
    path, variables = tf_npz(tmp_path, layers)
    status, out = run(tmp_path, path, "--forget-bias", "0.5", *options)
    assert status == 0
    clipped = [Layer("lstm", L.hidden_size, cell_clip=0.5 if options else 0.0) for L in layers]
    with stacklstm.Model.load(str(out)) as got, stacklstm.Model.from_tf_variables(
            variables, forget_bias=0.5, layers=clipped) as want:
        assert got.forget_bias == 0.5
        assert np.array_equal(outputs(got, X), outputs(want, X))


@pytest.mark.parametrize("options", [[], ["--cell-clip", "0.5"]], ids=["plain", "with-clip"])
def test_convert_tf_scope_selects_one_rnn_of_several(tmp_path, options):
    path, _ = tf_npz(tmp_path, [Layer("lstm", 4)])
    with stacklstm.Model.random(5, layers=[Layer("gru", 3)] * 2, seed=4) as other:
        both = dict(np.load(path), **naming.to_tf_variables(other, scope="enc"))
    np.savez(path, **both)
    status, out = run(tmp_path, path, "--scope", "enc", *options)
    assert status == 0
    with stacklstm.Model.load(str(out)) as m:
        assert list(m.layers) == [Layer("gru", 3)] * 2


def test_convert_tf_per_layer_clip_list_must_match_the_layer_count(tmp_path, capsys):
    path, _ = tf_npz(tmp_path, LSTMP_GRU)
    status, _ = run(tmp_path, path, "--cell-clip", "0.5,0,1")
    assert status == 1
    assert "--cell-clip: 3 values given, the checkpoint holds 2 layers" in capsys.readouterr().err


def test_convert_tf_per_layer_clip_on_a_gru_is_refused_naming_the_layer(tmp_path, capsys):
    path, _ = tf_npz(tmp_path, LSTMP_GRU)
    status, out = run(tmp_path, path, "--cell-clip", "0.5,0.5")
    assert status == 1
    err = capsys.readouterr().err
    assert "layers[1].cell_clip" in err
    assert not out.exists()


@pytest.mark.parametrize("option, value, fragment", [
    ("--cell-clip", "x", "--cell-clip: 'x' is not a number"),
    ("--residual", "7", "--residual: layer 7 does not exist (the checkpoint holds layers 0..1)"),
    ("--residual", "a", "--residual: 'a' is not a layer index"),
])
def test_convert_tf_bad_option_values_are_named(tmp_path, capsys, option, value, fragment):
    path, _ = tf_npz(tmp_path, LSTMP_GRU)
    status, out = run(tmp_path, path, option, value)
    assert status == 1
    assert fragment in capsys.readouterr().err
    assert not out.exists()


def test_convert_tf_residual_with_mismatched_widths_is_refused_by_the_library(tmp_path, capsys):
    path, _ = tf_npz(tmp_path, LSTMP_GRU)   # layer 0 reads 5 inputs and outputs 5: fine;
    status, _ = run(tmp_path, path, "--residual", "0")
    assert status == 0
    path, _ = tf_npz(tmp_path, [Layer("lstm", 4), Layer("lstm", 3)])
    status, out = run(tmp_path, path, "--residual", "1")   # 4 inputs, 3 outputs
    assert status == 1
    assert "layers[1].residual" in capsys.readouterr().err


def test_convert_clip_options_are_refused_for_other_kinds(tmp_path, capsys):
    status = convert.main(["onnx", str(tmp_path / "m.onnx"), str(tmp_path / "o.safetensors"),
                           "--cell-clip", "1"])
    assert status == 1
    assert "--cell-clip, --proj-clip and --residual are for tf checkpoints" in \
        capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("SLSTM_CLI"),
                    reason="SLSTM_CLI is not set (the built tool, e.g. build/cli/stacklstm)")
def test_native_convert_tf_passes_the_clip_options_to_python(tmp_path):
    path, _ = tf_npz(tmp_path, LSTMP_GRU)
    out = tmp_path / "m.safetensors"
    env = dict(os.environ, SLSTM_PYTHON=sys.executable,
               PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([os.environ["SLSTM_CLI"], "convert", "tf", str(path), str(out),
                        "--cell-clip", "0.5", "--residual", "0"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    with stacklstm.Model.load(str(out)) as m:
        assert list(m.layers) == [Layer("lstm", 6, peepholes=True, proj_size=5, cell_clip=0.5,
                                        residual=True), Layer("gru", 5)]


def test_tf_layers_refuses_a_negative_residual_index():
    from stacklstm.convert import tf_layers
    with pytest.raises(ValueError, match="--residual"):
        tf_layers([Layer.lstm(4), Layer.lstm(4)], residual="-1")
