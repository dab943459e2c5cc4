"""Finding and loading libstacklstm.so, and the ctypes declarations of its C API.

Everything here mirrors include/stacklstm/stacklstm.h. Enum values are ABI (they are only
ever appended, never renumbered); everything else that can be asked of the library at run
time (version, status texts, tensors per format) is asked.

The library is loaded lazily: importing the package loads nothing, so `import stacklstm`,
`stacklstm.__version__` and the command-line help work where the library cannot load. The
first real use (the first attribute of `lib`, `library_path`, or `load()`) loads it, or
raises LibraryNotFoundError naming every path tried; a failed load is tried again on the next
use (so fixing SLSTM_LIBRARY needs no restart), a successful one is kept.
"""

import ctypes
import ctypes.util
import glob
import os
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Type

__all__ = ["lib", "load", "library_path", "missing_symbols", "LibraryNotFoundError"]

MAX_DIMS = 4

# The file names the library may have next to the package: the wheel carries one file named
# by the soname; a copy made by hand is often the plain .so.
_NAMES = ("libstacklstm.so", "libstacklstm.so.0")


class LibraryNotFoundError(ImportError):
    """libstacklstm.so could not be loaded; the message names every path tried."""


def _is_checkout(root):
    """True when `root` is a source checkout of libstacklstm (not, say, site-packages/..)."""
    return (os.path.isfile(os.path.join(root, "CMakeLists.txt")) and
            os.path.isfile(os.path.join(root, "include", "stacklstm", "stacklstm.h")))


def package_dirs() -> List[str]:
    """The package's folders: this file's, then any other entry of the package's __path__
    (an editable install, pip install -e, keeps the sources here and the built library and
    tool in site-packages/stacklstm, which its import hook adds to __path__)."""
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = [here]
    pkg = sys.modules.get(__package__ or "stacklstm")
    for d in list(getattr(pkg, "__path__", None) or ()):
        d = os.path.abspath(str(d))
        if d not in dirs:
            dirs.append(d)
    return dirs


def _candidates():
    """(path, why) pairs in search order."""
    out = []
    env = os.environ.get("SLSTM_LIBRARY")
    if env:
        if os.path.isdir(env):
            out.append((os.path.join(env, "libstacklstm.so"), "$SLSTM_LIBRARY directory"))
        else:
            out.append((env, "$SLSTM_LIBRARY"))
        return out   # an explicit override is the only candidate: never load another one
    dirs = package_dirs()
    here = dirs[0]
    for name in _NAMES:
        out.append((os.path.join(here, name), "next to the package"))
    for d in dirs[1:]:
        for name in _NAMES:
            out.append((os.path.join(d, name), "in the package's __path__"))
    # A source checkout: python/stacklstm/ -> repository root -> build*/
    root = os.path.dirname(os.path.dirname(here))
    if _is_checkout(root):
        builds = sorted(glob.glob(os.path.join(root, "build*", "libstacklstm.so")),
                        key=lambda p: -os.path.getmtime(p))
        for p in builds:
            out.append((p, "build directory"))
        if not builds:
            out.append((os.path.join(root, "build", "libstacklstm.so"), "build directory"))
    found = ctypes.util.find_library("stacklstm")
    out.append((found or "libstacklstm.so.0", "system loader"))
    return out


def _load():
    tried = []
    for path, why in _candidates():
        is_file_path = os.sep in path
        if is_file_path and not os.path.exists(path):
            tried.append("%s (%s): no such file" % (path, why))
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s): %s" % (path, why, e))
    raise LibraryNotFoundError(
        "stacklstm: cannot load libstacklstm.so; tried, in order:\n  " + "\n  ".join(tried) +
        "\nInstall the wheel, which carries the library (pip install ./python from a checkout), "
        "or set SLSTM_LIBRARY to the library's path (e.g. build/libstacklstm.so).")


# ---- C types ---------------------------------------------------------------------------------

c_status = ctypes.c_int
c_enum = ctypes.c_int
c_float_p = ctypes.POINTER(ctypes.c_float)
c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_int32_p = ctypes.POINTER(ctypes.c_int32)


class Tensor(ctypes.Structure):
    _fields_ = [("data", c_float_p), ("ndim", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_DIMS)]


class TensorOut(ctypes.Structure):
    _fields_ = [("data", c_float_p), ("ndim", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_DIMS)]


class LayerConfig(ctypes.Structure):
    """slstm_layer_config (since 0.4)."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("cell", c_enum),
                ("hidden_size", ctypes.c_int64), ("direction", c_enum),
                ("residual", ctypes.c_int32), ("peepholes", ctypes.c_int32),
                ("cell_clip", ctypes.c_float), ("proj_size", ctypes.c_int64),
                ("proj_clip", ctypes.c_float), ("gru_reset_after", ctypes.c_int32)]


class ModelConfig(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("input_size", ctypes.c_int64),
                ("num_layers", ctypes.c_int32), ("hidden_sizes", c_int64_p),
                ("forget_bias", ctypes.c_float),
                ("layers", ctypes.POINTER(LayerConfig))]   # since 0.4


class StatePiece(ctypes.Structure):
    """slstm_state_piece (since 0.4)."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("layer", ctypes.c_int32),
                ("direction", ctypes.c_int32), ("part", c_enum), ("width", ctypes.c_int64),
                ("offset", ctypes.c_size_t), ("count", ctypes.c_size_t)]


class TensorInfo(ctypes.Structure):
    """slstm_tensor_info (since 0.4)."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("layer", ctypes.c_int32),
                ("direction", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_DIMS), ("name", ctypes.c_char * 48)]


class SessionOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("backend", c_enum),
                ("max_batch", ctypes.c_int64), ("max_time", ctypes.c_int64),
                ("cpu_path", c_enum), ("num_threads", ctypes.c_int32),
                ("device", ctypes.c_int32), ("allow_tf32", ctypes.c_int32),
                ("cuda_stream", ctypes.c_void_p), ("config", ctypes.c_char_p),
                ("max_slots", ctypes.c_int64), ("precision", ctypes.c_int32)]


class ForwardArgs(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("layout", c_enum),
                ("batch", ctypes.c_int64), ("time", ctypes.c_int64),
                ("input", c_float_p), ("input_count", ctypes.c_size_t),
                ("sequence_lengths", c_int32_p), ("sequence_lengths_count", ctypes.c_size_t),
                ("initial_state", c_float_p), ("initial_state_count", ctypes.c_size_t),
                ("output", c_float_p), ("output_count", ctypes.c_size_t),
                ("final_state", c_float_p), ("final_state_count", ctypes.c_size_t),
                ("memory", c_enum), ("data_type", c_enum)]


class OnnxLstmNode(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("direction", ctypes.c_char_p),
                ("has_clip", ctypes.c_int32), ("clip", ctypes.c_float),
                ("input_forget", ctypes.c_int64), ("layout", ctypes.c_int64),
                ("num_activations", ctypes.c_int32),
                ("activations", ctypes.POINTER(ctypes.c_char_p)),
                ("peepholes", ctypes.POINTER(Tensor))]


_holders: Dict[type, type] = {}


def padded(struct_type: Type[ctypes.Structure], init_sized: Callable[..., Any]) -> Any:
    """An instance of struct_type (as `.s`) filled by the library's sized *_init function
    with THIS package's struct size: the library writes exactly that many bytes (defaults for
    the fields it knows, zeros for any it does not), whichever version it is, and later reads
    only that many (header, "ABI"). The holder type is made once per struct type."""
    holder = _holders.get(struct_type)
    if holder is None:
        holder = type("Holder" + struct_type.__name__, (ctypes.Structure,),
                      {"_fields_": [("s", struct_type)]})
        _holders[struct_type] = holder
    buf = holder()
    init_sized(ctypes.byref(buf), ctypes.sizeof(struct_type))
    return buf


P = ctypes.POINTER
vp = ctypes.c_void_p
# name: (restype, argtypes) of every C function this package calls.
_declared = {
    "slstm_status_string": (ctypes.c_char_p, [c_status]),
    "slstm_last_error": (ctypes.c_char_p, []),
    "slstm_last_error_copy": (ctypes.c_size_t, [ctypes.c_char_p, ctypes.c_size_t]),
    "slstm_version_number": (ctypes.c_uint32, []),
    "slstm_version_string": (ctypes.c_char_p, []),
    "slstm_backend_available": (c_status, [c_enum]),
    "slstm_format_tensors_per_layer": (c_status, [c_enum, c_int32_p]),
    "slstm_model_config_init_sized": (None, [vp, ctypes.c_size_t]),
    "slstm_layer_config_init_sized": (None, [vp, ctypes.c_size_t]),
    "slstm_model_layer": (c_status, [vp, ctypes.c_int32, vp]),
    "slstm_model_output_size": (c_status, [vp, c_int64_p]),
    "slstm_model_state_pieces": (c_status, [vp, c_int64_p]),
    "slstm_model_state_piece": (c_status, [vp, ctypes.c_int64, ctypes.c_int64, vp]),
    "slstm_format_tensors": (c_status, [vp, c_enum, vp, ctypes.c_size_t,
                                        P(ctypes.c_size_t)]),
    "slstm_model_create": (c_status, [vp, c_enum, P(Tensor), ctypes.c_size_t, P(vp)]),
    "slstm_model_create_random": (c_status, [vp, ctypes.c_uint64, ctypes.c_float, P(vp)]),
    "slstm_model_destroy": (None, [vp]),
    "slstm_model_export": (c_status, [vp, c_enum, P(TensorOut), ctypes.c_size_t]),
    "slstm_model_num_layers": (c_status, [vp, c_int32_p]),
    "slstm_model_input_size": (c_status, [vp, c_int64_p]),
    "slstm_model_hidden_size": (c_status, [vp, ctypes.c_int32, c_int64_p]),
    "slstm_model_forget_bias": (c_status, [vp, P(ctypes.c_float)]),
    "slstm_model_state_count": (c_status, [vp, ctypes.c_int64, P(ctypes.c_size_t)]),
    "slstm_model_state_offset": (c_status, [vp, ctypes.c_int64, ctypes.c_int32, c_enum,
                                            P(ctypes.c_size_t)]),
    "slstm_session_options_init_sized": (None, [vp, ctypes.c_size_t]),
    "slstm_session_create": (c_status, [vp, vp, P(vp)]),
    "slstm_session_destroy": (None, [vp]),
    "slstm_session_describe": (c_status, [vp, c_enum, ctypes.c_char_p, ctypes.c_size_t,
                                          P(ctypes.c_size_t)]),
    "slstm_session_backend": (c_status, [vp, P(c_enum)]),
    "slstm_forward_args_init_sized": (None, [vp, ctypes.c_size_t]),
    "slstm_session_forward": (c_status, [vp, vp]),
    "slstm_session_step": (c_status, [vp, ctypes.c_int64, c_float_p, ctypes.c_size_t,
                                      c_float_p, ctypes.c_size_t, c_float_p,
                                      ctypes.c_size_t, c_float_p, ctypes.c_size_t]),
    "slstm_onnx_lstm_node_init_sized": (None, [vp, ctypes.c_size_t]),
    "slstm_onnx_check_node": (c_status, [vp]),
    "slstm_model_file_size": (c_status, [vp, ctypes.c_char_p, P(ctypes.c_size_t)]),
    "slstm_model_save_memory": (c_status, [vp, ctypes.c_char_p, vp, ctypes.c_size_t,
                                           P(ctypes.c_size_t)]),
    "slstm_model_save_file": (c_status, [vp, ctypes.c_char_p, ctypes.c_char_p]),
    "slstm_model_load_memory": (c_status, [vp, ctypes.c_size_t, P(vp)]),
    "slstm_model_load_file": (c_status, [ctypes.c_char_p, P(vp)]),
}
del P, vp


def _declare(cdll):
    """Sets restype/argtypes of every function in _declared; returns the names cdll lacks."""
    missing = []
    for name, (res, args) in _declared.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = res
        fn.argtypes = args
    return missing


# ---- lazy loading ----------------------------------------------------------------------------

_load_lock = threading.Lock()
_cdll: Optional[ctypes.CDLL] = None
# Set by load() (globals().update); until then the module's __getattr__ answers (and loads):
# declared here for type checkers only (a bare annotation binds nothing).
library_path: str
missing_symbols: List[str]


class _LazyLibrary(object):
    """Stands for the loaded ctypes.CDLL: `lib.slstm_x(...)` loads the library on first use.

    Each attribute, once looked up, is stored on this object, so later calls find it as a
    plain attribute (no loading check, no __getattr__): no cost per call after the first."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)   # copy/pickle/inspect probing never loads the library
        value = getattr(load(), name)
        self.__dict__[name] = value
        return value

    def __repr__(self) -> str:
        if _cdll is None:
            return "<stacklstm library: not loaded yet>"
        return "<stacklstm library %s>" % library_path


lib = _LazyLibrary()


def load() -> ctypes.CDLL:
    """The loaded library (a ctypes.CDLL with the C API's signatures declared); loads it on
    the first call. Raises LibraryNotFoundError, naming every path tried, when it cannot be
    loaded; a later call tries again."""
    global _cdll
    cdll = _cdll
    if cdll is not None:
        return cdll
    with _load_lock:
        if _cdll is None:
            cdll, path = _load()
            missing = _declare(cdll)
            globals().update(library_path=path, missing_symbols=missing)
            for name in _declared:
                if name not in missing:
                    lib.__dict__[name] = getattr(cdll, name)
            _cdll = cdll
    return _cdll


def is_loaded() -> bool:
    """True once the library has been loaded (this never loads it)."""
    return _cdll is not None


def __getattr__(name: str) -> Any:
    # library_path (the file loaded) and missing_symbols (the C functions this package knows
    # and the loaded library lacks) exist once the library is loaded: asking loads it.
    if name in ("library_path", "missing_symbols"):
        load()
        return globals()[name]
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
