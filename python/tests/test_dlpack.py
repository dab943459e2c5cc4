"""Session.forward takes DLPack tensors (capsules and __dlpack__ objects) and
__cuda_array_interface__ arrays (issue 16, item 4). Host DLPack tensors are read as the NumPy
arrays over the same memory; CUDA ones by address on the device path, with the producer's
stream honoured. No GPU here: the CUDA cases use hand-made CUDA capsules that a CPU session
must refuse (the library reports device memory on a CPU session as UNSUPPORTED before it
reads any), which checks everything up to the C call."""
import ctypes

import numpy as np
import pytest

import stacklstm
from stacklstm import model as M


@pytest.fixture(scope="module")
def session():
    m = stacklstm.Model.random(3, [4, 5], seed=7)
    with m.session(2, 3) as s:
        yield s


def x_array():
    return np.random.default_rng(0).standard_normal((2, 3, 3)).astype(np.float32)


class _DLManaged(ctypes.Structure):
    _fields_ = [("t", M._DLTensor), ("ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_keep = []


def fake_capsule(shape, device=(2, 0), dtype=(2, 32, 1), strides=None, address=0x10000):
    """A DLPack capsule describing memory at `address` on `device` (never dereferenced)."""
    shp = (ctypes.c_int64 * len(shape))(*shape)
    st = (ctypes.c_int64 * len(shape))(*strides) if strides else None
    m = _DLManaged()
    m.t.data = address
    m.t.device.device_type, m.t.device.device_id = device
    m.t.ndim = len(shape)
    m.t.dtype.code, m.t.dtype.bits, m.t.dtype.lanes = dtype
    m.t.shape = ctypes.cast(shp, ctypes.POINTER(ctypes.c_int64))
    if st is not None:
        m.t.strides = ctypes.cast(st, ctypes.POINTER(ctypes.c_int64))
    _keep.extend([shp, st, m])
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p,
                                                   ctypes.c_void_p]
    return new(ctypes.addressof(m), b"dltensor", None)


class DLPackObject:
    """A producer with __dlpack__ that records the stream it was asked for."""

    def __init__(self, capsule, device):
        self.capsule, self.device, self.streams = capsule, device, []

    def __dlpack__(self, stream=None):
        self.streams.append(stream)
        return self.capsule

    def __dlpack_device__(self):
        return self.device


def test_a_host_dlpack_capsule_gives_the_numbers_of_the_array(session):
    torch = pytest.importorskip("torch")
    x = x_array()
    capsule = torch.utils.dlpack.to_dlpack(torch.from_numpy(x.copy()))
    got, _ = session.forward(capsule, packed_state=True)
    want, _ = session.forward(x, packed_state=True)
    assert np.array_equal(got, want)


def test_a_host_object_with_dlpack_gives_the_numbers_of_the_array(session):
    x = x_array()
    if not hasattr(x, "__dlpack__"):
        pytest.skip("NumPy %s has no __dlpack__" % np.__version__)

    class Producer:
        def __dlpack__(self, stream=None):
            return x.__dlpack__()

        def __dlpack_device__(self):
            return x.__dlpack_device__()

    got, st = session.forward(Producer())
    want, st2 = session.forward(x)
    assert np.array_equal(got, want) and np.array_equal(st[1].h, st2[1].h)


def test_a_used_capsule_is_refused_as_used(session):
    torch = pytest.importorskip("torch")
    capsule = torch.utils.dlpack.to_dlpack(torch.zeros(2, 3, 3))
    session.forward(capsule)
    with pytest.raises(TypeError, match="used once"):
        session.forward(capsule)


def cuda_call_args(B=2, T=3, D=3, H=5, count=36):   # count: B * 2 * (4 + 5)
    return (fake_capsule((B, T, D)), fake_capsule((B, T, H), address=0x20000),
            fake_capsule((count,), address=0x30000))


def test_cuda_dlpack_capsules_take_the_device_path(session):
    x, out, fin = cuda_call_args()
    with pytest.raises(stacklstm.UnsupportedError):   # a CPU session: device memory refused
        session.forward(x, out=out, final_state_out=fin)


def test_a_dlpack_producer_is_asked_for_the_sessions_stream(session):
    x, out, fin = cuda_call_args()
    producer = DLPackObject(x, (2, 0))
    with pytest.raises(stacklstm.UnsupportedError):
        session.forward(producer, out=out, final_state_out=fin)
    assert producer.streams == [1]   # the session's own stream follows the legacy default


@pytest.mark.parametrize("kwargs, error, match", [
    ({"dtype": (2, 64, 1)}, TypeError, "float32"),
    ({"strides": (1, 2, 6)}, TypeError, "C-contiguous"),
    ({"device": (2, 1)}, ValueError, "CUDA device 1, the session on 0"),
])
def test_a_cuda_dlpack_input_of_the_wrong_kind_names_the_argument(session, kwargs, error,
                                                                   match):
    _, out, fin = cuda_call_args()
    with pytest.raises(error, match="inputs.*" + match):
        session.forward(fake_capsule((2, 3, 3), **kwargs), out=out, final_state_out=fin)


def test_a_cuda_input_without_cuda_outputs_is_refused(session):
    x, _, _ = cuda_call_args()
    with pytest.raises(TypeError, match="out.*final_state_out"):
        session.forward(x)


class CAI:
    def __init__(self, shape, stream=None, address=0x40000):
        self.__cuda_array_interface__ = {"shape": shape, "typestr": "<f4",
                                         "data": (address, False), "version": 3,
                                         "strides": None}
        if stream is not None:
            self.__cuda_array_interface__["stream"] = stream


@pytest.mark.parametrize("session_stream, producer_stream, waits", [
    (None, None, {}),             # no stream given: nothing to wait for
    (None, 1, {}),                # legacy default: the session's own stream follows it
    (None, 0x1234, {0x1234: "inputs"}),
    (0x1234, 0x1234, {}),         # the session's own (caller's) stream
    (0x1234, 1, {1: "inputs"}),
])
def test_a_cuda_array_interface_stream_is_waited_for_unless_ordered(session_stream,
                                                                    producer_stream, waits):
    dv = M._DeviceArgs(session_stream, 0)
    addr, shape = dv.view(CAI((2, 3, 3), producer_stream), "inputs", False)
    assert (addr, shape) == (0x40000, (2, 3, 3))
    assert dv.waits == waits


class BrokenInterface(DLPackObject):
    """A producer whose __cuda_array_interface__ cannot be built (as torch's for bfloat16, or
    for a tensor that requires grad) but whose __dlpack__ works."""

    @property
    def __cuda_array_interface__(self):
        raise KeyError("bfloat16")


def test_an_array_interface_that_cannot_be_built_falls_back_to_dlpack(session):
    x, out, fin = cuda_call_args()
    producer = BrokenInterface(x, (2, 0))
    with pytest.raises(stacklstm.UnsupportedError):   # reached the device path (CPU session)
        session.forward(producer, out=out, final_state_out=fin)
    assert producer.streams == [1]


class TorchLikeCudaTensor(DLPackObject):
    """What Session.forward sees of a torch CUDA tensor: __dlpack__, detach, cpu, is_cuda and
    an array interface without a stream (which must not be the one read)."""
    is_cuda = True
    requires_grad = False

    def detach(self):
        return self

    def cpu(self):
        raise AssertionError("a CUDA tensor is not copied to the host")

    @property
    def __cuda_array_interface__(self):
        raise AssertionError("a torch tensor is read through __dlpack__")


def test_a_torch_cuda_tensor_is_read_through_dlpack_on_the_sessions_stream(session):
    x, out, fin = cuda_call_args()
    producer = TorchLikeCudaTensor(x, (2, 0))
    assert M._is_device_array(producer)
    with pytest.raises(stacklstm.UnsupportedError):
        session.forward(producer, out=out, final_state_out=fin)
    assert producer.streams == [1]
