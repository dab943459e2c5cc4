"""The examples/ programs and the converter CLI, run as a user would run them."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import stacklstm

PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(PKG)
EXAMPLES = os.path.join(REPO, "examples")


def run_py(args, **kw):
    env = dict(os.environ, PYTHONPATH=PKG + os.pathsep + os.environ.get("PYTHONPATH", ""),
               SLSTM_LIBRARY=stacklstm.library_path)
    return subprocess.run([sys.executable] + args, env=env, capture_output=True, text=True,
                          timeout=600, **kw)


def test_python_example_runs_a_model_file():
    r = run_py([os.path.join(EXAMPLES, "run_model_file.py"), "--self-test"])
    assert r.returncode == 0, r.stderr
    assert "final_state[-1].h == outputs[:, -1, :]: true" in r.stdout


def test_c_example_runs_a_model_file_written_by_python(tmp_path):
    exe = os.path.join(os.path.dirname(stacklstm.library_path), "examples", "model_file_demo")
    if not os.path.exists(exe):
        pytest.skip("model_file_demo not built next to %s" % stacklstm.library_path)
    path = str(tmp_path / "m.safetensors")
    stacklstm.Model.random(7, [5, 3], seed=1).save(path, "random")
    r = subprocess.run([exe, path, "2", "3"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "final_state[-1].h == outputs[:, -1, :]: true" in r.stdout


def test_pytorch_example_matches_pytorch():
    pytest.importorskip("torch")
    r = run_py([os.path.join(EXAMPLES, "pytorch_check.py")])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all match" in r.stdout


def test_converter_from_a_torch_state_dict_file(tmp_path):
    torch = pytest.importorskip("torch")
    lstm = torch.nn.LSTM(3, 4, num_layers=2)
    src, dst = str(tmp_path / "sd.pt"), str(tmp_path / "m.safetensors")
    torch.save(lstm.state_dict(), src)
    r = run_py(["-m", "stacklstm.convert", "torch", src, dst])
    assert r.returncode == 0, r.stderr
    m = stacklstm.Model.load(dst)
    assert m.hidden_sizes == (4, 4) and stacklstm.read_header(dst)[0]["source_layout"] == "pytorch"


def test_converter_from_an_onnx_file(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper, TensorProto
    H, I = 2, 3
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("W", (1, 4 * H, I)), ("R", (1, 4 * H, H)), ("B", (1, 8 * H)))]
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y"], hidden_size=H)
    g = helper.make_graph([node], "g",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, I])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1, 1, H])],
                          initializer=inits)
    src, dst = str(tmp_path / "m.onnx"), str(tmp_path / "m.safetensors")
    onnx.save(helper.make_model(g), src)
    r = run_py(["-m", "stacklstm.convert", "onnx", src, dst])
    assert r.returncode == 0, r.stderr
    assert stacklstm.Model.load(dst).hidden_sizes == (H,)


def test_converter_from_a_tf_checkpoint(tmp_path):
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow not installed")
    code = r'''
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tensorflow as tf
v = {"rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel": np.ones((5, 8), np.float32),
     "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias": np.zeros(8, np.float32),
     "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/weights": np.ones((4, 8), np.float32),
     "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/biases": np.zeros(8, np.float32)}
class M(tf.Module):
    pass
g = tf.Graph()
with g.as_default():
    vs = [tf.compat.v1.get_variable(k, initializer=a) for k, a in v.items()]
    saver = tf.compat.v1.train.Saver()
    with tf.compat.v1.Session() as s:
        s.run(tf.compat.v1.global_variables_initializer())
        saver.save(s, sys.argv[1])
'''
    prefix = str(tmp_path / "model.ckpt")
    r = run_py(["-c", code, prefix])
    assert r.returncode == 0, r.stderr
    dst = str(tmp_path / "m.safetensors")
    r = run_py(["-m", "stacklstm.convert", "tf", prefix, dst, "--forget-bias", "0.5"])
    assert r.returncode == 0, r.stderr
    m = stacklstm.Model.load(dst)
    assert m.input_size == 3 and m.hidden_sizes == (2, 2) and m.forget_bias == 0.5


def test_converter_from_a_keras_model_matches_keras(tmp_path):
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf_keras not installed")
    code = r'''
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"; os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tf_keras as keras
m = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, return_sequences=True),
                      keras.layers.LSTM(2, return_sequences=True)])
m.save(sys.argv[1])
x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
np.save(sys.argv[2], x); np.save(sys.argv[3], m(x).numpy())
'''
    src = str(tmp_path / "m.h5")
    xs, ys = str(tmp_path / "x.npy"), str(tmp_path / "y.npy")
    r = run_py(["-c", code, src, xs, ys])
    assert r.returncode == 0, r.stderr
    dst = str(tmp_path / "m.safetensors")
    r = run_py(["-m", "stacklstm.convert", "keras", src, dst])
    assert r.returncode == 0, r.stderr
    m = stacklstm.Model.load(dst)
    out, _ = m.session(2, 5).forward(np.load(xs))
    assert np.max(np.abs(out - np.load(ys))) <= 1e-5
