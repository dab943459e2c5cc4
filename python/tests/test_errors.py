"""Status codes become exceptions carrying the library's last-error text."""
import os
import subprocess
import sys

import numpy as np
import pytest

import stacklstm


@pytest.fixture
def session():
    m = stacklstm.Model.random(4, [3, 2], seed=1)
    return m.session(max_batch=2, max_time=3)


def test_status_texts_come_from_the_library():
    assert stacklstm.status_string(0) == "ok"
    assert stacklstm.status_string(2) == "shape mismatch"
    assert stacklstm.status_string(12345) == "unknown status"


def test_version_comes_from_the_library():
    v = stacklstm.version()
    major, minor, patch = (int(p) for p in v.split("."))
    assert stacklstm.version_number() == major * 10000 + minor * 100 + patch


def test_wrong_input_depth_is_a_shape_mismatch_naming_the_input(session):
    with pytest.raises(stacklstm.ShapeMismatchError) as e:
        session.forward(np.zeros((2, 3, 5)))
    assert e.value.status == 2 and "input" in e.value.message
    assert isinstance(e.value, ValueError)


def test_batch_above_the_maximum_is_out_of_range(session):
    with pytest.raises(stacklstm.OutOfRangeError) as e:
        session.forward(np.zeros((3, 3, 4)))
    assert "batch" in str(e.value)


def test_a_sequence_length_above_time_is_out_of_range(session):
    with pytest.raises(stacklstm.OutOfRangeError) as e:
        session.forward(np.zeros((2, 3, 4)), sequence_lengths=[1, 4])
    assert "length" in e.value.message


def test_an_invalid_architecture_is_an_invalid_argument():
    with pytest.raises(stacklstm.InvalidArgumentError) as e:
        stacklstm.Model.random(0, [3])
    assert "input_size" in e.value.message


def test_weights_of_the_wrong_shape_name_the_tensor():
    bad = [[np.zeros((4 + 3, 12)), np.zeros(11)]]
    with pytest.raises(stacklstm.ShapeMismatchError) as e:
        stacklstm.Model.from_weights(bad, "tf", input_size=4, hidden_sizes=[3])
    assert "layer 0 bias" in e.value.message


def test_unsupported_onnx_node_raises_unsupported():
    import ctypes
    from stacklstm import _lib
    node = _lib.padded(_lib.OnnxLstmNode, _lib.lib.slstm_onnx_lstm_node_init)
    node.s.input_forget = 1
    from stacklstm.errors import check
    with pytest.raises(stacklstm.UnsupportedError) as e:
        check(_lib.lib.slstm_onnx_check_node(ctypes.byref(node)))
    assert "input_forget" in e.value.message


def test_a_broken_model_file_raises_with_the_loaders_message(tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(stacklstm.InvalidArgumentError) as e:
        stacklstm.Model.load(str(p))
    assert "not valid JSON" in e.value.message


def test_unknown_format_and_backend_names_are_value_errors():
    with pytest.raises(ValueError):
        stacklstm.Model.from_weights([[np.zeros(1)]], "caffe")
    m = stacklstm.Model.random(2, [2])
    with pytest.raises(ValueError):
        m.session(1, 1, backend="tpu")


def test_a_missing_library_names_the_paths_tried():
    env = dict(os.environ, SLSTM_LIBRARY="/nonexistent/libstacklstm.so")
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", "import stacklstm"], env=env, cwd=pkg,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "LibraryNotFoundError" in r.stderr
    assert "/nonexistent/libstacklstm.so" in r.stderr


class FakeCudaArray:
    """Quacks like a CUDA array; its pointer is never dereferenced by a CPU session."""

    def __init__(self, shape, typestr="<f4", strides=None):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "strides": strides,
                                         "data": (0xDEAD0000, False), "version": 3}


def test_cuda_arrays_on_a_cpu_session_are_unsupported(session):
    with pytest.raises(stacklstm.UnsupportedError):
        session.forward(FakeCudaArray((2, 3, 4)), out=FakeCudaArray((2, 3, 2)),
                        final_state_out=FakeCudaArray((20,)))


def test_cuda_arrays_of_another_dtype_or_layout_are_not_copied_silently(session):
    with pytest.raises(TypeError, match="float32"):
        session.forward(FakeCudaArray((2, 3, 4), "<f8"), out=FakeCudaArray((2, 3, 2)),
                        final_state_out=FakeCudaArray((20,)))
    with pytest.raises(TypeError, match="contiguous"):
        session.forward(FakeCudaArray((2, 3, 4), strides=(4, 8, 24)),
                        out=FakeCudaArray((2, 3, 2)), final_state_out=FakeCudaArray((20,)))
    with pytest.raises(TypeError, match="out"):
        session.forward(FakeCudaArray((2, 3, 4)))
