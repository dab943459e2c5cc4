"""stacklstm: stacked LSTM layers (TensorFlow 1.x MultiRNNCell/BasicLSTMCell/dynamic_rnn
numbers) through libstacklstm's C ABI, over NumPy arrays. Pure Python (ctypes).

    import stacklstm
    model = stacklstm.Model.random(128, [100, 200, 300], seed=42)
    with model.session(max_batch=10, max_time=7) as s:
        outputs, final_state = s.forward(x)      # x [10, 7, 128]; final_state: one
                                                 # LSTMStateTuple(c, h) per layer
    h0, c0 = stacklstm.state_to_torch(final_state)   # PyTorch's (h, c) [layers, batch, H]

The library is found via $SLSTM_LIBRARY, next to this package, the repository's build
directories, then the system loader (stacklstm.library_path says which one was used).
"""

from ._lib import LibraryNotFoundError, library_path, lib as _clib
from .errors import (StackLSTMError, InvalidArgumentError, ShapeMismatchError, OutOfRangeError,
                     SizeOverflowError, OutOfMemoryError, BackendUnavailableError,
                     UnsupportedError, BackendFailureError, AliasingError, InternalError,
                     SessionBusyError, status_string)
from .model import (Model, Session, LSTMStateTuple, FORMATS, TENSOR_NAMES, tensor_shapes,
                    tensors_per_layer)
from .safetensors_header import read_header
from .state import state_from_torch, state_to_torch, state_from_keras, state_to_keras

__version__ = "0.2.0"   # of this package; the library's own: version()


def version():
    """The loaded library's "major.minor.patch" (asked of the library at run time)."""
    return _clib.slstm_version_string().decode()


def version_number():
    """The loaded library's major*10000 + minor*100 + patch."""
    return int(_clib.slstm_version_number())


def backend_available(backend="cuda"):
    """(True, "") when the backend can run here, else (False, the library's reason)."""
    from .model import BACKENDS
    from .errors import last_error
    from ._ints import INT32, checked_int
    if isinstance(backend, str):
        if backend.lower() not in BACKENDS:
            raise ValueError("backend must be one of %s, got %r" % (sorted(BACKENDS), backend))
        backend = BACKENDS[backend.lower()]
    st = _clib.slstm_backend_available(checked_int(backend, "backend", INT32))
    return (st == 0, "" if st == 0 else last_error())


__all__ = ["Model", "Session", "LSTMStateTuple", "FORMATS", "TENSOR_NAMES", "tensor_shapes",
           "tensors_per_layer", "read_header", "version", "version_number",
           "backend_available", "library_path", "LibraryNotFoundError", "StackLSTMError",
           "InvalidArgumentError", "ShapeMismatchError", "OutOfRangeError",
           "SizeOverflowError", "OutOfMemoryError", "BackendUnavailableError",
           "UnsupportedError", "BackendFailureError", "AliasingError", "InternalError",
           "SessionBusyError", "status_string", "state_from_torch", "state_to_torch", "state_from_keras",
           "state_to_keras"]
