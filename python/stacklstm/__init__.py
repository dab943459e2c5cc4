"""stacklstm: stacked LSTM layers (TensorFlow 1.x MultiRNNCell/BasicLSTMCell/dynamic_rnn
numbers) through libstacklstm's C ABI (ctypes; the wheel carries the library), over NumPy arrays.

    import stacklstm
    model = stacklstm.Model.random(128, [100, 200, 300], seed=42)
    with model.session(max_batch=10, max_time=7) as s:
        outputs, final_state = s.forward(x)      # x [10, 7, 128]; final_state: one
                                                 # LSTMStateTuple(c, h) per layer
    h0, c0 = stacklstm.state_to_torch(final_state)   # PyTorch's (h, c) [layers, batch, H]

Any stack of docs/cells.md (LSTM with peepholes, clipping and projection; GRU; reverse and
bidirectional layers; residual connections) is a list of stacklstm.Layer:

    model = stacklstm.Model.random(128, layers=[stacklstm.Layer.gru(64, reset_after=True),
                                                stacklstm.Layer.lstm(64, proj_size=32)])
    model = stacklstm.Model.from_torch_state_dict(nn_gru.state_dict())   # or from_onnx,
                                                    # from_tf_variables, from_keras

The library is loaded on first use, not on import (so `import stacklstm`, `__version__` and
`python -m stacklstm --help` work where it cannot load), from $SLSTM_LIBRARY when set, else
next to this package (where the wheel puts it), the repository's build directories (in a
checkout), then the system loader; stacklstm.library_path says which file was loaded. When
none loads, the first use raises LibraryNotFoundError naming every path tried.
"""

from typing import Any as _Any, Tuple as _Tuple, Union as _Union  # not re-exported

from ._lib import LibraryNotFoundError, load as load_library, lib as _clib
from .errors import (StackLSTMError, InvalidArgumentError, ShapeMismatchError, OutOfRangeError,
                     SizeOverflowError, OutOfMemoryError, BackendUnavailableError,
                     UnsupportedError, BackendFailureError, AliasingError, InternalError,
                     SessionBusyError, SlotsFullError, status_string)
from .layers import Layer, BidirectionalState
from .model import (Model, Session, LSTMStateTuple, FORMATS, TENSOR_NAMES, tensor_shapes,
                    tensors_per_layer, format_tensors, TensorSpec)
from .safetensors_header import read_header
from .state import state_from_torch, state_to_torch, state_from_keras, state_to_keras
from .streams import Streams


def _package_version() -> str:
    """This package's version: generated into the wheel from the root CMakeLists.txt's
    project(... VERSION x.y.z); in a source checkout read from that file itself."""
    try:
        from ._version import __version__ as v
        return v
    except ImportError:
        pass
    import os
    import re
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        with open(os.path.join(root, "CMakeLists.txt")) as f:
            m = re.search(r"project\(stacklstm\s+VERSION\s+([0-9]+\.[0-9]+\.[0-9]+)", f.read())
        if m:
            return m.group(1)
    except OSError:
        pass
    return "0+unknown"


__version__ = _package_version()   # of this package; the loaded library's own: version()


def __getattr__(name: str) -> _Any:
    # library_path: the file the library was loaded from (asking loads it).
    if name == "library_path":
        load_library()
        from . import _lib
        return _lib.library_path
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def version() -> str:
    """The loaded library's "major.minor.patch" (asked of the library at run time)."""
    return _clib.slstm_version_string().decode()


def version_number() -> int:
    """The loaded library's major*10000 + minor*100 + patch."""
    return int(_clib.slstm_version_number())


def backend_available(backend: _Union[str, int] = "cuda") -> _Tuple[bool, str]:
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


# library_path is left out: `from stacklstm import *` must not load the library.
__all__ = ["Model", "Session", "LSTMStateTuple", "FORMATS", "TENSOR_NAMES", "tensor_shapes",
           "tensors_per_layer", "read_header", "version", "version_number",
           "backend_available", "load_library", "LibraryNotFoundError", "StackLSTMError",
           "InvalidArgumentError", "ShapeMismatchError", "OutOfRangeError",
           "SizeOverflowError", "OutOfMemoryError", "BackendUnavailableError",
           "UnsupportedError", "BackendFailureError", "AliasingError", "InternalError",
           "SessionBusyError", "SlotsFullError", "Streams", "status_string",
           "state_from_torch", "state_to_torch", "state_from_keras", "state_to_keras",
           "Layer", "BidirectionalState", "format_tensors", "TensorSpec"]
