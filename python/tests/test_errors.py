"""Status codes become exceptions carrying the library's last-error text."""
import os
import re
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


@pytest.mark.parametrize("lengths", [np.array([[3], [2]]), np.array([[3, 2]]), np.int64(3)],
                         ids=["column", "row", "scalar"])
def test_sequence_lengths_that_are_not_a_vector_are_refused_not_flattened(session, lengths):
    # TensorFlow's dynamic_rnn and PyTorch's packing take a vector of batch lengths; a (B, 1)
    # or (1, B) array was flattened and ran, a (2, 1) one with batch 1 ran on the wrong count.
    with pytest.raises(ValueError, match=r"sequence_lengths must be a vector \(1 dimension, "
                                         r"one length per batch row\), got shape"):
        session.forward(np.zeros((2, 3, 4), np.float32), sequence_lengths=lengths)


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
    # Loading is lazy (import works without the library): the first real use fails.
    r = subprocess.run([sys.executable, "-c", "import stacklstm; stacklstm.version()"], env=env,
                       cwd=pkg,
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


def layer_shapes(fmt, I, H):
    return stacklstm.tensor_shapes(fmt, I, H)


def wrong_tensor_cases():
    """(format, layer, tensor index, axis): every axis of every tensor of layer 1 of a
    two-layer model, and of layer 0 where the format states H more than twice."""
    for fmt in sorted(stacklstm.FORMATS):
        per = stacklstm.tensors_per_layer(fmt)
        for layer in (0, 1):
            if layer == 0 and fmt == "tf":
                continue   # kernel [I+H, 4H] and bias [4H], I unknown: a tie, no majority
            for k in range(per):
                for axis in range(len(layer_shapes(fmt, 3, 4)[k])):
                    if layer == 0 and k == 0 and layer_shapes(fmt, 3, 4)[0][axis] == 3:
                        continue   # the input depth: any value is a valid input_size
                    yield fmt, layer, k, axis


@pytest.mark.parametrize("fmt, layer, k, axis", list(wrong_tensor_cases()))
def test_the_error_names_the_tensor_of_the_wrong_shape(fmt, layer, k, axis):
    I, hs = 3, [4, 4]
    layers, i = [], I
    for H in hs:
        layers.append([np.zeros(s, np.float32) for s in layer_shapes(fmt, i, H)])
        i = H
    bad = list(layers[layer][k].shape)
    bad[axis] += 1
    layers[layer][k] = np.zeros(bad, np.float32)
    with pytest.raises(stacklstm.ShapeMismatchError) as e:
        stacklstm.Model.from_weights(layers, fmt)
    name = stacklstm.TENSOR_NAMES[fmt][k]
    per = len(stacklstm.TENSOR_NAMES[fmt])
    assert "tensors[%d] (layer %d %s)" % (layer * per + k, layer, name) in e.value.message


@pytest.mark.parametrize("k", [0, 1, 2], ids=["kernel", "recurrent_kernel", "bias"])
def test_a_keras_tensor_wrong_by_a_whole_gate_width_is_the_one_named(k):
    # 4H + 4 is a multiple of 4 (a vote for H + 1): the other tensors' votes still win
    H, I = 4, 3
    w = [np.zeros((I, 4 * H)), np.zeros((H, 4 * H)), np.zeros(4 * H)]
    shape = list(w[k].shape)
    shape[-1] += 4
    w[k] = np.zeros(shape)
    with pytest.raises(stacklstm.ShapeMismatchError) as e:
        stacklstm.Model.from_weights([w], "keras")
    assert "(layer 0 %s)" % stacklstm.TENSOR_NAMES["keras"][k] in e.value.message


def test_a_wrong_weight_hh_is_named_weight_hh_not_weight_ih():
    H, I = 4, 3
    w = [np.zeros((4 * H, I)), np.zeros((4 * H, H + 1)), np.zeros(4 * H), np.zeros(4 * H)]
    with pytest.raises(stacklstm.ShapeMismatchError) as e:
        stacklstm.Model.from_weights([w], "pytorch")
    assert "weight_hh" in e.value.message and "weight_ih" not in e.value.message


def test_loading_a_missing_file_is_a_file_not_found_error(tmp_path):
    p = str(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError) as e:
        stacklstm.Model.load(p)
    assert e.value.filename == p


def test_a_torch_save_file_is_reported_as_not_safetensors():
    torch = pytest.importorskip("torch")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "state_dict.pt")
        torch.save(torch.nn.LSTM(3, 4).state_dict(), p)
        with pytest.raises(stacklstm.InvalidArgumentError) as e:
            stacklstm.Model.load(p)
        assert "not a safetensors file" in str(e.value) and "torch.save" in str(e.value)
        assert not re.search(r"header length \d", str(e.value))   # not an absurd number
        with pytest.raises(ValueError, match="not a safetensors file.*torch.save"):
            stacklstm.read_header(p)
        with open(p, "rb") as f:
            data = f.read()
        with pytest.raises(stacklstm.InvalidArgumentError, match="not a safetensors file"):
            stacklstm.Model.from_bytes(data)


def test_a_busy_session_status_becomes_session_busy_error():
    with pytest.raises(stacklstm.SessionBusyError) as e:
        stacklstm.errors.check(11, "slstm_session_forward")
    assert e.value.status_name == "session busy"
    assert isinstance(e.value, RuntimeError)


def test_an_input_of_depth_zero_is_a_shape_mismatch_of_its_count_not_a_null_input(session):
    with pytest.raises(stacklstm.ShapeMismatchError, match="input_count: expected 24"):
        session.forward(np.zeros((2, 3, 0), np.float32))
    with pytest.raises(stacklstm.ShapeMismatchError, match="input_count: expected 8"):
        session.step(np.zeros((2, 0), np.float32))


def test_a_config_with_non_ascii_text_reaches_the_library_which_names_the_key():
    m = stacklstm.Model.random(4, [3], seed=1)
    with pytest.raises(stacklstm.InvalidArgumentError, match="cpu.kernel must be"):
        m.session(2, 3, config="cpu.kernel=\u00e9")
    with pytest.raises(stacklstm.InvalidArgumentError, match="unknown key"):
        m.session(2, 3, config="cpu.k\u00e9rnel=auto")


@pytest.mark.parametrize("status, cls, builtin", [
    (1, stacklstm.InvalidArgumentError, ValueError),
    (2, stacklstm.ShapeMismatchError, ValueError),
    (3, stacklstm.OutOfRangeError, ValueError),
    (4, stacklstm.SizeOverflowError, OverflowError),
    (5, stacklstm.OutOfMemoryError, MemoryError),
    (6, stacklstm.BackendUnavailableError, RuntimeError),
    (7, stacklstm.UnsupportedError, NotImplementedError),
    (8, stacklstm.BackendFailureError, RuntimeError),
    (9, stacklstm.AliasingError, ValueError),
    (10, stacklstm.InternalError, RuntimeError),
    (11, stacklstm.SessionBusyError, RuntimeError),
    (12, stacklstm.SlotsFullError, RuntimeError),
])
def test_each_status_raises_its_class_which_is_also_the_matching_builtin(status, cls, builtin):
    with pytest.raises(cls) as e:
        stacklstm.errors.check(status, "slstm_x")
    assert type(e.value) is cls and isinstance(e.value, builtin)
    assert e.value.status == status == cls.status
    assert e.value.status_name == stacklstm.status_string(status)


def test_a_status_this_package_does_not_know_is_a_plain_stacklstm_error():
    with pytest.raises(stacklstm.StackLSTMError) as e:
        stacklstm.errors.check(99, "slstm_x")
    assert type(e.value) is stacklstm.StackLSTMError
    assert e.value.status == 99 and e.value.status_name == "unknown status"


def test_the_message_names_the_failing_call_and_the_status_text(session):
    with pytest.raises(stacklstm.ShapeMismatchError) as e:
        session.forward(np.zeros((2, 3, 5), np.float32))
    assert str(e.value).startswith("slstm_session_forward: shape mismatch: ")
    assert e.value.call == "slstm_session_forward"


def safetensors_file(tmp_path, header, length=None, tail=b""):
    """A file of an 8-byte little-endian header length (default: the header's), the header
    bytes and `tail`."""
    p = tmp_path / "h.safetensors"
    n = len(header) if length is None else length
    p.write_bytes(n.to_bytes(8, "little") + header + tail)
    return str(p)


def test_read_header_keeps_the_metadata_out_of_the_tensor_table(tmp_path):
    p = str(tmp_path / "m.safetensors")
    stacklstm.Model.random(4, [3], seed=1).save(p, source_layout="pytorch")
    meta, tensors = stacklstm.read_header(p)
    assert meta["source_layout"] == "pytorch"
    assert "__metadata__" not in tensors and tensors
    assert all(set(t) >= {"dtype", "shape", "data_offsets"} for t in tensors.values())


def test_read_header_takes_json_whitespace_before_the_brace(tmp_path):
    p = safetensors_file(tmp_path, b' \n{"__metadata__": {"k": "v"}}')
    assert stacklstm.read_header(p) == ({"k": "v"}, {})


def test_read_header_refuses_an_absurd_header_length_without_reading_it(tmp_path):
    p = safetensors_file(tmp_path, b"{}", length=10 ** 12)
    with pytest.raises(ValueError, match="header length 1000000000000 exceeds"):
        stacklstm.read_header(p)


def test_read_header_refuses_a_header_that_runs_past_the_end(tmp_path):
    p = safetensors_file(tmp_path, b'{"a": 1}', length=40)
    with pytest.raises(ValueError, match="header runs past the end of the file"):
        stacklstm.read_header(p)


def test_read_header_refuses_a_header_that_is_not_a_json_object(tmp_path):
    p = safetensors_file(tmp_path, b' [1, 2]')
    with pytest.raises(ValueError, match="header is not a JSON object"):
        stacklstm.read_header(p)


@pytest.mark.parametrize("head, what", [
    (b"\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P\x19.", "a Python pickle"),
    (b"\x08\x07\x12\x07pytorch\x1a\x032.1", "an ONNX model converts"),
])
def test_a_pickle_or_a_protobuf_is_named_as_such_not_as_safetensors(head, what):
    with pytest.raises(stacklstm.InvalidArgumentError) as e:
        stacklstm.Model.from_bytes(head + bytes(32))
    assert "not a safetensors file" in str(e.value) and what in str(e.value)
