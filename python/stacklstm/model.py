"""Model and Session over NumPy arrays."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import numbers
import os
import platform
import stat
import threading
from typing import (Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple, TypeVar, Union)

import numpy as np

from . import _lib
from ._ints import INT32, UINT64, checked_int as _int
from ._lib import lib
from .errors import check, InvalidArgumentError
from .layers import BidirectionalState, Layer
from .safetensors_header import not_safetensors_reason
from .state import LSTMStateTuple, CONVENTIONS, describe, is_state_tuple, _array

__all__ = ["Model", "Session", "LSTMStateTuple", "FORMATS", "TENSOR_NAMES", "tensor_shapes",
           "tensors_per_layer", "format_tensors", "TensorSpec", "Layer", "BidirectionalState"]

# slstm_weight_format values (ABI: appended only, never renumbered).
FORMATS = {"canonical": 0, "tf": 1, "pytorch": 2, "keras": 3, "keras_cudnn": 4, "onnx": 5,
           "cudnn": 6}
TENSOR_NAMES = {
    "canonical": ("W_x", "W_h", "b"),
    "tf": ("kernel", "bias"),
    "pytorch": ("weight_ih", "weight_hh", "bias_ih", "bias_hh"),
    "keras": ("kernel", "recurrent_kernel", "bias"),
    "keras_cudnn": ("kernel", "recurrent_kernel", "bias"),
    "onnx": ("W", "R", "B"),
    "cudnn": ("W", "R", "bW", "bR"),
}
BACKENDS = {"cpu": 0, "cuda": 1}
CPU_PATHS = {"auto": 0, "reference": 1, "fast": 2}
# slstm_precision (docs/precision.md): "default" is FP32, or on CUDA TF32 with allow_tf32=True.
PRECISIONS = {"default": 0, "fp32": 1, "tf32": 2, "bf16": 3, "fp16": 4}


def _format_value(fmt: Union[str, int]) -> int:
    if isinstance(fmt, str):
        if fmt.lower() not in FORMATS:
            raise ValueError("format must be one of %s, got %r" % (sorted(FORMATS), fmt))
        return FORMATS[fmt.lower()]
    return _int(fmt, "format", INT32)


def _format_name(fmt: Union[str, int]) -> str:
    v = _format_value(fmt)
    for k, n in FORMATS.items():
        if n == v:
            return k
    raise ValueError("unknown format %r" % (fmt,))


def tensors_per_layer(fmt: Union[str, int]) -> int:
    """Tensors per layer of a format, asked of the library."""
    n = ctypes.c_int32()
    check(lib.slstm_format_tensors_per_layer(_format_value(fmt), ctypes.byref(n)),
          "slstm_format_tensors_per_layer")
    return n.value


def tensor_shapes(fmt: Union[str, int], I: int, H: int) -> List[Tuple[int, ...]]:
    """The shapes of one layer's tensors in `fmt` (input depth I, hidden size H)."""
    return {
        "canonical": [(4 * H, I), (4 * H, H), (4 * H,)],
        "tf": [(I + H, 4 * H), (4 * H,)],
        "pytorch": [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)],
        "keras": [(I, 4 * H), (H, 4 * H), (4 * H,)],
        "keras_cudnn": [(I, 4 * H), (H, 4 * H), (8 * H,)],
        "onnx": [(1, 4 * H, I), (1, 4 * H, H), (1, 8 * H)],
        "cudnn": [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)],
    }[_format_name(fmt)]


class TensorSpec(NamedTuple):
    """One weight tensor a format takes for an architecture (slstm_format_tensors)."""
    name: str                # the format's own name, e.g. "weight_hr" or "W_x"
    shape: Tuple[int, ...]
    layer: int               # the layer it belongs to
    direction: int           # 0: forward (or the only direction), 1: reverse half, -1: both


def _layers_arg(layers: Any) -> List[Layer]:
    """`layers` checked to be a sequence of stacklstm.Layer."""
    if isinstance(layers, (str, bytes, Layer)) or not hasattr(layers, "__len__"):
        raise TypeError("layers must be a sequence of stacklstm.Layer, got %r" % (layers,))
    out = list(layers)
    for k, L in enumerate(out):
        if not isinstance(L, Layer):
            raise TypeError("layers[%d] must be a stacklstm.Layer, got %s"
                            % (k, type(L).__name__))
    return out


def _model_config(input_size: int, hidden_sizes: Optional[Sequence[int]],
                  forget_bias: float, layers: Optional[Sequence[Layer]] = None
                  ) -> Tuple[Any, Any]:
    """slstm_model_config (padded, as `.s`) and the arrays it points to (keep them alive):
    from hidden_sizes (a stack of BasicLSTMCell layers) or from layers, exactly one."""
    cfg = _lib.padded(_lib.ModelConfig, lib.slstm_model_config_init_sized)
    cfg.s.input_size = _int(input_size, "input_size")
    cfg.s.forget_bias = float(forget_bias)
    if layers is not None:
        if hidden_sizes is not None:
            raise ValueError("give hidden_sizes or layers, not both")
        ls = _layers_arg(layers)
        if not _has_symbol("slstm_format_tensors"):
            raise RuntimeError("layers= needs libstacklstm 0.4 or newer; the library loaded "
                               "(%s) is %s" % (_lib.library_path,
                                               lib.slstm_version_string().decode()))
        arr = (_lib.LayerConfig * max(len(ls), 1))()
        for k, L in enumerate(ls):
            lib.slstm_layer_config_init_sized(ctypes.byref(arr[k]),
                                              ctypes.sizeof(_lib.LayerConfig))
            L._to_c(arr[k])
        cfg.s.num_layers = _int(len(ls), "the number of layers", INT32)
        cfg.s.layers = ctypes.cast(arr, ctypes.POINTER(_lib.LayerConfig))
        return cfg, arr
    if hidden_sizes is None:
        raise ValueError("give hidden_sizes (a stack of BasicLSTMCell layers) or layers "
                         "(a sequence of stacklstm.Layer)")
    if isinstance(hidden_sizes, (str, bytes)) or not hasattr(hidden_sizes, "__len__"):
        raise TypeError("hidden_sizes must be a sequence of integers, got %r"
                        % (hidden_sizes,))
    sizes = [_int(h, "hidden_sizes[%d]" % l) for l, h in enumerate(hidden_sizes)]
    hs = (ctypes.c_int64 * max(len(sizes), 1))(*sizes)
    cfg.s.num_layers = _int(len(sizes), "the number of layers", INT32)
    cfg.s.hidden_sizes = ctypes.cast(hs, _lib.c_int64_p)
    return cfg, hs


def _tensor_specs(cfg: Any, fmt: int) -> List[TensorSpec]:
    """slstm_format_tensors for a config made by _model_config."""
    n = ctypes.c_size_t()
    check(lib.slstm_format_tensors(ctypes.byref(cfg), fmt, None, 0, ctypes.byref(n)),
          "slstm_format_tensors")
    infos = (_lib.TensorInfo * max(n.value, 1))()
    for k in range(n.value):
        infos[k].struct_size = ctypes.sizeof(_lib.TensorInfo)
    got = ctypes.c_size_t()
    check(lib.slstm_format_tensors(ctypes.byref(cfg), fmt, infos, n.value, ctypes.byref(got)),
          "slstm_format_tensors")
    return [TensorSpec(infos[k].name.decode("utf-8", "replace"),
                       tuple(int(infos[k].shape[d]) for d in range(infos[k].ndim)),
                       int(infos[k].layer), int(infos[k].direction))
            for k in range(min(n.value, got.value))]


def format_tensors(format: Union[str, int], input_size: int,
                   layers: Optional[Sequence[Layer]] = None,
                   hidden_sizes: Optional[Sequence[int]] = None) -> List[TensorSpec]:
    """The tensors `format` takes (and Model.export gives) for an architecture, in API order:
    name, shape, layer and direction of each, as the library says (slstm_format_tensors).
    The architecture is `layers` (stacklstm.Layer) or `hidden_sizes` (BasicLSTMCell layers).
    A format that cannot express a layer raises stacklstm.UnsupportedError naming the layer
    and field, as creating the model would."""
    cfg, _keep = _model_config(input_size, hidden_sizes, 0.0, layers)
    return _tensor_specs(cfg, _format_value(format))


def _is_tensor_dict(weights: Any) -> bool:
    """A dict of tensors by name (one layer's), as opposed to a dict of per-layer entries."""
    return (isinstance(weights, dict) and bool(weights) and
            all(isinstance(k, str) for k in weights) and
            not any(isinstance(v, (list, tuple, dict)) for v in weights.values()))


def _layer_keys(specs: Sequence[TensorSpec]) -> List[str]:
    """The dict keys of one layer's tensors (Model.export, Model.from_weights): the format's
    names; where a bidirectional layer's two directions share a name (the canonical format),
    the reverse direction's is suffixed "_reverse" (PyTorch's convention)."""
    names = [t.name for t in specs]
    return [t.name + "_reverse" if t.direction == 1 and names.count(t.name) > 1 else t.name
            for t in specs]


def _by_layer(specs: Sequence[TensorSpec], num_layers: int) -> List[List[TensorSpec]]:
    out: List[List[TensorSpec]] = [[] for _ in range(num_layers)]
    for t in specs:
        out[t.layer].append(t)
    return out


def _infer_input_size(fmt: int, layers: Sequence[Layer], first: Sequence[Any]) -> int:
    """Layer 0's input width from its tensors in `fmt`: the library's expected shapes for
    input widths 1 and 2 show which axis of which tensor grows with it."""
    if layers[0].residual:
        return layers[0].output_size   # a residual layer's input is as wide as its output
    got = []
    for i in (1, 2):
        cfg, _keep = _model_config(i, None, 0.0, layers)
        got.append([t for t in _tensor_specs(cfg, fmt) if t.layer == 0])
    for k, (a, b) in enumerate(zip(*got)):
        if k >= len(first) or len(a.shape) != len(b.shape):
            continue
        for axis, (s1, s2) in enumerate(zip(a.shape, b.shape)):
            if s1 != s2:
                shape = np.shape(first[k])
                if len(shape) != len(a.shape):
                    raise ValueError("layer 0 %s has shape %s, expected %d dims (%s); pass "
                                     "input_size= or fix the tensor"
                                     % (a.name, tuple(shape), len(a.shape), a.name))
                return int((shape[axis] - s1) // (s2 - s1) + 1)
    raise ValueError("input_size: no tensor of layer 0 states it; pass input_size=")


_to_numpy = _array  # torch / TF tensors and array-likes as NumPy (stacklstm.state)


_F32_MAX = float(np.finfo(np.float32).max)


def _f32(a: Any, name: str = "array") -> np.ndarray:
    """A C-contiguous float32 view of `a` (a copy only when dtype or strides require one).

    The dtype policy: float32 is used as is; other real dtypes (bool, integers, float16,
    float64, longdouble) are converted to float32 by NumPy's cast, i.e. rounded to the
    nearest float32 (ties to even), so float64 data gives the numbers of its float32
    rounding; a finite value beyond float32's range (|x| > 3.4028235e38) is a ValueError,
    not an inf. Complex arrays are a TypeError (their imaginary part would be dropped), as
    are object, string and other non-numeric arrays."""
    arr = _to_numpy(_host_array(a))
    if np.iscomplexobj(arr):
        raise TypeError("%s: complex dtype %s is not accepted (the imaginary part would be "
                        "lost); pass real numbers" % (name, arr.dtype))
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError("%s: expected real numbers, got dtype %s" % (name, arr.dtype))
    with np.errstate(over="ignore"):   # an overflow is reported below, as an error
        # (ascontiguousarray would make a 0-d array 1-d: a scalar keeps its shape, ())
        out = (np.ascontiguousarray(arr, dtype=np.float32) if arr.ndim else
               np.asarray(arr, dtype=np.float32))
    if (arr.dtype != np.float32 and np.issubdtype(arr.dtype, np.floating) and
            arr.dtype.itemsize > 4 and out.size and not np.isfinite(out).all()):
        big = np.isfinite(arr) & (np.abs(arr) > _F32_MAX)
        if big.any():
            k = np.unravel_index(int(np.argmax(big)), arr.shape)
            raise ValueError("%s: %r at index %s is beyond float32's range (the library "
                             "computes in float32; it would become inf)"
                             % (name, arr[k].item(), tuple(int(i) for i in k)))
    return out


def _fptr(a: Optional[np.ndarray]) -> Any:
    return a.ctypes.data_as(_lib.c_float_p) if a is not None else None


# Where each format's tensors state the hidden size H: (tensor index, axis, divisor).
_H_SOURCES = {
    "tf": [(0, 1, 4), (1, 0, 4)],
    "keras": [(0, 1, 4), (1, 1, 4), (1, 0, 1), (2, 0, 4)],
    "keras_cudnn": [(0, 1, 4), (1, 1, 4), (1, 0, 1), (2, 0, 8)],
    "onnx": [(0, 1, 4), (1, 1, 4), (1, 2, 1), (2, 1, 8)],
    "canonical": [(0, 0, 4), (1, 0, 4), (1, 1, 1), (2, 0, 4)],
    "pytorch": [(0, 0, 4), (1, 0, 4), (1, 1, 1), (2, 0, 4), (3, 0, 4)],
    "cudnn": [(0, 0, 4), (1, 0, 4), (1, 1, 1), (2, 0, 4), (3, 0, 4)],
}
# Where the first layer's tensors state the input size: (tensor index, axis); tf's kernel
# has I + H rows.
_I_SOURCE = {"tf": (0, 0), "keras": (0, 0), "keras_cudnn": (0, 0), "onnx": (0, 2),
             "canonical": (0, 1), "pytorch": (0, 1), "cudnn": (0, 1)}


def _infer_architecture(fmt: Union[str, int], layers: Sequence[Sequence[Any]]
                        ) -> Tuple[int, List[int]]:
    """(input_size, hidden_sizes) from per-layer tensors of a format.

    Each layer's H is what most of its tensors say (each dimension that is a multiple of H
    votes; ties go to the first tensor), so one tensor of a wrong shape does not move H and
    the library's shape check then names that tensor, not a correct one."""
    name = _format_name(fmt)
    hs: List[int] = []
    I = 0
    for l, ts in enumerate(layers):
        votes = []
        for k, axis, div in _H_SOURCES[name]:
            shape = np.shape(ts[k])
            if axis < len(shape) and shape[axis] % div == 0 and shape[axis] > 0:
                votes.append(shape[axis] // div)
        if name == "tf" and l > 0 and len(np.shape(ts[0])) == 2:
            votes.append(np.shape(ts[0])[0] - hs[-1])   # kernel rows: I + H, I = previous H
        H = max(votes, key=votes.count) if votes else 0   # max keeps the first of a tie
        if l == 0:
            k, axis = _I_SOURCE[name]
            shape = np.shape(ts[k])
            i = shape[axis] if axis < len(shape) else (shape[-1] if shape else 0)
            I = i - H if name == "tf" else i
        hs.append(int(H))
    return int(I), hs


_O = TypeVar("_O", bound="_Owned")


class _Owned:
    """A library handle in self._h, released by self._destroy (kept on the object so that
    __del__ still works at interpreter exit): close() is idempotent, `with` closes, and the
    garbage collector closes what was left open. Every call that uses the handle holds it
    through self._using(), so close() from another thread waits for running calls instead
    of freeing the handle under them."""

    _h: Optional[ctypes.c_void_p] = None
    _lock: Optional[threading.Lock] = None
    _exclusive = False   # True: one call at a time (Session); False: calls may overlap (Model)

    def _adopt(self, handle: ctypes.c_void_p, destroy: Callable[[Any], None]) -> None:
        self._cond = threading.Condition()
        self._users = 0
        self._destroy = destroy
        self._lock = threading.Lock()
        self._h = handle

    def _closed(self) -> InvalidArgumentError:
        name = type(self).__name__
        return InvalidArgumentError(1, "the %s is closed" % name.lower(), name)

    @contextlib.contextmanager
    def _using(self) -> Iterator[ctypes.c_void_p]:
        """The handle, held open (and, when _exclusive, held by this thread alone) for the
        duration of the `with` block."""
        if self._lock is None:
            raise self._closed()
        if self._exclusive:
            # One call at a time: the call lock itself keeps close() out (close takes it).
            with self._lock:
                if self._h is None:
                    raise self._closed()
                yield self._h
            return
        with self._cond:
            if self._h is None:
                raise self._closed()
            self._users += 1
        try:
            yield self._h
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Releases this handle (after the calls running in other threads). Idempotent."""
        if self._lock is None:
            return
        if self._exclusive:
            with self._lock:   # waits for the running call, if any
                h, self._h = self._h, None
        else:
            with self._cond:
                h, self._h = self._h, None
                while self._users:
                    self._cond.wait()
        if h is not None:
            self._destroy(h)

    def __copy__(self) -> Any:
        raise TypeError("a stacklstm.%s owns a library handle and cannot be copied (a copy "
                        "would free it twice)" % type(self).__name__)

    def __deepcopy__(self, memo: Any) -> Any:
        return self.__copy__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("a stacklstm.%s cannot be pickled" % type(self).__name__)

    def __enter__(self: _O) -> _O:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


_CONSTRUCTORS = "Model.from_weights, Model.random, Model.load, Model.from_bytes, " \
                "Model.from_torch_state_dict, Model.from_tf_variables, Model.from_onnx or " \
                "Model.from_keras"


class Model(_Owned):
    """An immutable stack of LSTM layers (architecture + weights), owned by the library.

    Build one with Model.from_weights, Model.random, Model.load or the naming helpers
    (Model.from_torch_state_dict, Model.from_tf_variables); Model(...) itself raises. Free
    it with close() or a `with` block (or let the garbage collector do it); sessions made
    from it keep it alive. A model may be used by several threads at once."""

    input_size: int
    hidden_sizes: Tuple[int, ...]
    layers: Tuple[Layer, ...]
    output_size: int
    forget_bias: float
    _state_layout: "_StateLayout"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("stacklstm.Model cannot be constructed directly; use " + _CONSTRUCTORS)

    @classmethod
    def _from_handle(cls, handle: Optional[int]) -> "Model":
        """Wraps a handle the library just returned (the only way a Model is made)."""
        self = cls.__new__(cls)
        self._adopt(ctypes.c_void_p(handle), lib.slstm_model_destroy)
        try:
            n = ctypes.c_int32()
            check(lib.slstm_model_num_layers(self._h, ctypes.byref(n)),
                  "slstm_model_num_layers")
            i = ctypes.c_int64()
            check(lib.slstm_model_input_size(self._h, ctypes.byref(i)),
                  "slstm_model_input_size")
            hs = []
            for l in range(n.value):
                h = ctypes.c_int64()
                check(lib.slstm_model_hidden_size(self._h, l, ctypes.byref(h)),
                      "slstm_model_hidden_size")
                hs.append(h.value)
            fb = ctypes.c_float()
            check(lib.slstm_model_forget_bias(self._h, ctypes.byref(fb)),
                  "slstm_model_forget_bias")
            if _has_symbol("slstm_model_layer"):
                layers = []
                for l in range(n.value):
                    lc = _lib.padded(_lib.LayerConfig, lib.slstm_layer_config_init_sized)
                    check(lib.slstm_model_layer(self._h, l, ctypes.byref(lc)),
                          "slstm_model_layer")
                    layers.append(Layer._from_c(lc.s))
                o = ctypes.c_int64()
                check(lib.slstm_model_output_size(self._h, ctypes.byref(o)),
                      "slstm_model_output_size")
                out_size = o.value
            else:   # a library before 0.4: stacks of BasicLSTMCell layers only
                layers = [Layer("lstm", H) for H in hs]
                out_size = hs[-1]
            layout = _query_state_layout(self._h, layers)   # type: ignore[arg-type]
        except BaseException:
            self.close()
            raise
        self.input_size = i.value
        self.hidden_sizes = tuple(hs)
        self.layers = tuple(layers)
        self.output_size = out_size
        self.forget_bias = fb.value
        self._state_layout = layout
        return self

    def __copy__(self) -> "Model":
        """A model of its own with the same architecture and weights (through the model
        file image; the handle itself is never shared)."""
        return Model.from_bytes(self.to_bytes())

    def __deepcopy__(self, memo: Any) -> "Model":
        return self.__copy__()

    def __reduce_ex__(self, protocol: Any) -> Tuple[Any, Tuple[bytes]]:
        """Pickled as its safetensors model image."""
        return (Model.from_bytes, (self.to_bytes(),))

    # ---- construction -------------------------------------------------------------------

    @staticmethod
    def _config(input_size: int, hidden_sizes: Optional[Sequence[int]], forget_bias: float,
                layers: Optional[Sequence[Layer]] = None) -> Tuple[Any, Any]:
        return _model_config(input_size, hidden_sizes, forget_bias, layers)

    @classmethod
    def from_weights(cls, weights: Any, format: Union[str, int] = "tf",
                     input_size: Optional[int] = None,
                     hidden_sizes: Optional[Sequence[int]] = None,
                     forget_bias: float = 1.0,
                     layers: Optional[Sequence[Layer]] = None) -> "Model":
        """A model from framework weights. `weights`: per layer, a sequence (in the order of
        TENSOR_NAMES[format]) or a dict keyed by those names; or one flat sequence of all
        layers' tensors. Any array-like of any dtype/strides (NumPy, torch, TF) is accepted.
        input_size/hidden_sizes default to what the shapes say. forget_bias is used by the
        "tf" and "canonical" formats only (the others have none: the library sets 0).

        `layers` (a sequence of stacklstm.Layer) describes any stack of docs/cells.md instead
        of hidden_sizes; each layer's tensors are then those stacklstm.format_tensors lists
        (per layer in that order, or a dict keyed by their names, a bidirectional layer's
        reverse tensors suffixed "_reverse" where the two directions share a name, as
        Model.export gives them). input_size defaults to what layer 0's tensors say."""
        if layers is not None:
            return cls._from_layer_weights(weights, format, input_size, hidden_sizes,
                                           forget_bias, layers)
        name = _format_name(format)
        names = TENSOR_NAMES[name]
        per = tensors_per_layer(name)
        if _is_tensor_dict(weights):
            weights = [weights]   # one layer's tensors by name, never in insertion order
        weights = list(weights.values()) if isinstance(weights, dict) else list(weights)
        if weights and not isinstance(weights[0], (list, tuple, dict)):
            if len(weights) % per:
                raise ValueError("%d tensors is not a multiple of %d (%s format)"
                                 % (len(weights), per, name))
            weights = [weights[k:k + per] for k in range(0, len(weights), per)]
        arrays: List[List[np.ndarray]] = []
        for l, lw in enumerate(weights):
            if isinstance(lw, dict):
                missing = [n for n in names if n not in lw]
                unknown = sorted(set(lw) - set(names))   # a misspelt name is never dropped
                if missing or unknown:
                    raise ValueError("layer %d: %s%s (the %s format has %s)"
                                     % (l, "missing %s" % missing if missing else "",
                                        ("%sunknown %s" % ("; " if missing else "", unknown))
                                        if unknown else "", name, list(names)))
                lw = [lw[n] for n in names]
            if len(lw) != per:
                raise ValueError("layer %d: %d tensors, the %s format has %d (%s)"
                                 % (l, len(lw), name, per, ", ".join(names)))
            arrays.append([_f32(t, "layer %d %s" % (l, names[k])) for k, t in enumerate(lw)])
        if not arrays:
            raise ValueError("weights: no layers")
        if input_size is None or hidden_sizes is None:
            I, hs = _infer_architecture(name, arrays)
            input_size = I if input_size is None else input_size
            hidden_sizes = hs if hidden_sizes is None else hidden_sizes
        flat = [t for lw in arrays for t in lw]
        tensors = (_lib.Tensor * len(flat))()
        for k, a in enumerate(flat):
            if a.ndim < 1 or a.ndim > _lib.MAX_DIMS:
                raise ValueError("tensor %d (layer %d %s) has %d dims"
                                 % (k, k // per, names[k % per], a.ndim))
            tensors[k].data = _fptr(a)
            tensors[k].ndim = a.ndim
            for d, s in enumerate(a.shape):
                tensors[k].shape[d] = s
        cfg, _keep = cls._config(input_size, hidden_sizes, forget_bias)
        h = ctypes.c_void_p()
        check(lib.slstm_model_create(ctypes.byref(cfg), FORMATS[name], tensors, len(flat),
                                     ctypes.byref(h)), "slstm_model_create")
        return cls._from_handle(h.value)

    @classmethod
    def _from_layer_weights(cls, weights: Any, format: Union[str, int],
                            input_size: Optional[int], hidden_sizes: Optional[Sequence[int]],
                            forget_bias: float, layers: Sequence[Layer]) -> "Model":
        """Model.from_weights with `layers`: the tensors are the ones slstm_format_tensors
        lists for the architecture."""
        if hidden_sizes is not None:
            raise ValueError("give hidden_sizes or layers, not both")
        ls = _layers_arg(layers)
        if not ls:
            raise ValueError("layers: a model needs at least one layer")
        fmt = _format_value(format)
        name = _format_name(format)
        # Names and counts do not depend on the input width: ask for a placeholder one.
        probe = ls[0].output_size if ls[0].residual else 1
        cfg0, _keep0 = _model_config(probe, None, 0.0, ls)
        per_layer = _by_layer(_tensor_specs(cfg0, fmt), len(ls))
        keys = [_layer_keys(p) for p in per_layer]
        total = sum(len(p) for p in per_layer)
        if _is_tensor_dict(weights):
            # Tensor names: one layer's dict (never read in its insertion order).
            if len(ls) != 1:
                raise TypeError("weights: a dict keyed by tensor names (%s) is one layer's; "
                                "give a list with one per layer (%d layers)"
                                % (sorted(weights)[:4], len(ls)))
            weights = [weights]
        weights = list(weights.values()) if isinstance(weights, dict) else list(weights)
        if weights and not isinstance(weights[0], (list, tuple, dict)):
            if len(weights) != total:
                raise ValueError("weights: %d tensors, the %s format takes %d for these layers "
                                 "(stacklstm.format_tensors lists them)"
                                 % (len(weights), name, total))
            grouped, k = [], 0
            for p in per_layer:
                grouped.append(weights[k:k + len(p)])
                k += len(p)
            weights = grouped
        if len(weights) != len(ls):
            raise ValueError("weights: %d layers of tensors for %d layers"
                             % (len(weights), len(ls)))
        flat: List[np.ndarray] = []
        for l, (lw, lk) in enumerate(zip(weights, keys)):
            if isinstance(lw, dict):
                unknown = sorted(set(lw) - set(lk))
                missing = [k for k in lk if k not in lw]
                if missing or unknown:
                    raise ValueError("layer %d: %s%s; the %s format takes %s for %r"
                                     % (l, "missing %s" % missing if missing else "",
                                        ("%sunknown %s" % ("; " if missing else "", unknown))
                                        if unknown else "", name, lk, ls[l]))
                lw = [lw[k] for k in lk]
            if len(lw) != len(lk):
                raise ValueError("layer %d: %d tensors, the %s format takes %d (%s) for %r"
                                 % (l, len(lw), name, len(lk), ", ".join(lk), ls[l]))
            flat += [_f32(t, "layer %d %s" % (l, k)) for k, t in zip(lk, lw)]
        if input_size is None:
            input_size = _infer_input_size(fmt, ls, flat[:len(keys[0])])
        tensors = (_lib.Tensor * max(len(flat), 1))()
        for k, a in enumerate(flat):
            if a.ndim < 1 or a.ndim > _lib.MAX_DIMS:
                raise ValueError("tensor %d has %d dims (1 to %d)" % (k, a.ndim,
                                                                        _lib.MAX_DIMS))
            tensors[k].data = _fptr(a)
            tensors[k].ndim = a.ndim
            for d, n in enumerate(a.shape):
                tensors[k].shape[d] = n
        cfg, _keep = _model_config(input_size, None, forget_bias, ls)
        h = ctypes.c_void_p()
        check(lib.slstm_model_create(ctypes.byref(cfg), fmt, tensors, len(flat),
                                     ctypes.byref(h)), "slstm_model_create")
        return cls._from_handle(h.value)

    @classmethod
    def random(cls, input_size: int, hidden_sizes: Optional[Sequence[int]] = None,
               seed: int = 0, scale: float = 0.0, forget_bias: float = 1.0,
               layers: Optional[Sequence[Layer]] = None) -> "Model":
        """Seeded pseudo-random weights, uniform in [-scale, scale] (0: 1/sqrt(H)). The
        architecture: hidden_sizes (BasicLSTMCell layers) or layers (stacklstm.Layer)."""
        cfg, _keep = cls._config(input_size, None if hidden_sizes is None
                                 else list(hidden_sizes), forget_bias, layers)
        h = ctypes.c_void_p()
        check(lib.slstm_model_create_random(ctypes.byref(cfg), _int(seed, "seed", UINT64),
                                            float(scale),
                                            ctypes.byref(h)), "slstm_model_create_random")
        return cls._from_handle(h.value)

    @classmethod
    def load(cls, path: Union[str, bytes, "os.PathLike[str]"]) -> "Model":
        """A model from a safetensors model file (validated by the library). A missing file
        is a FileNotFoundError (a directory: IsADirectoryError); a file that is not
        safetensors at all (a torch.save .pt, a Keras .h5, ...) an InvalidArgumentError
        that says what it looks like."""
        st = os.stat(path)   # FileNotFoundError / PermissionError, with errno and the path
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a directory, not a model file", path)
        with open(path, "rb") as f:
            head = f.read(16)
        why = not_safetensors_reason(head, st.st_size)
        if why:
            raise InvalidArgumentError(1, "%s: %s" % (os.fsdecode(path), why), "Model.load")
        h = ctypes.c_void_p()
        check(lib.slstm_model_load_file(os.fsencode(path), ctypes.byref(h)),
              "slstm_model_load_file")
        return cls._from_handle(h.value)

    @classmethod
    def from_bytes(cls, data: Union[bytes, bytearray, memoryview]) -> "Model":
        """A model from a safetensors image in memory."""
        data = bytes(data)
        why = not_safetensors_reason(data[:16], len(data))
        if why:
            raise InvalidArgumentError(1, "the bytes: %s" % why, "Model.from_bytes")
        buf = ctypes.create_string_buffer(data, len(data)) if data else None
        h = ctypes.c_void_p()
        check(lib.slstm_model_load_memory(buf, len(data), ctypes.byref(h)),
              "slstm_model_load_memory")
        return cls._from_handle(h.value)

    @classmethod
    def from_torch_state_dict(cls, state_dict: Any, prefix: str = "") -> "Model":
        """A model from a PyTorch state_dict: one multi-layer nn.LSTM or nn.GRU
        (`weight_ih_l{k}`, ...) or a sequence of them (`0.weight_ih_l0`, `1.weight_ih_l0`,
        ...), with projections (proj_size) and bidirectional layers
        (stacklstm.naming.torch_state_dict_stack)."""
        from .naming import torch_state_dict_stack
        layers, weights = torch_state_dict_stack(state_dict, prefix)
        if all(L.is_basic for L in layers):   # also with libraries before 0.4
            names = TENSOR_NAMES["pytorch"]
            return cls.from_weights([[w[n] for n in names] for w in weights], "pytorch")
        return cls.from_weights(weights, "pytorch", layers=layers)

    @classmethod
    def from_onnx(cls, model: Any, values: Optional[Mapping[str, Any]] = None) -> "Model":
        """A model from the LSTM and GRU nodes of an ONNX graph (a ModelProto or a path; needs
        the onnx package): peepholes, every direction, GRU linear_before_reset 0 and 1, and
        stacks chained as torch.onnx.export writes them (stacklstm.naming.onnx_model_stack
        says what is accepted and refused). `values`: {input name: array} for weights the
        graph takes as inputs instead of initializers."""
        from .naming import onnx_model_stack
        layers, weights = onnx_model_stack(model, dict(values) if values else None)
        return cls.from_weights(weights, "onnx", layers=layers)

    @classmethod
    def from_keras(cls, model: Any) -> "Model":
        """A model from the recurrent layers of a Keras model (tf_keras / tf.keras): LSTM,
        GRU, Bidirectional(LSTM | GRU), CuDNNLSTM (stacklstm.naming.keras_model_stack says
        what is read and refused). Keras has no forget_bias: the model's is 0."""
        from .naming import keras_model_stack
        fmt, layers, weights = keras_model_stack(model)
        if all(L.is_basic for L in layers):   # also with libraries before 0.4
            names = TENSOR_NAMES[fmt]
            return cls.from_weights([[w[n] for n in names] for w in weights], fmt)
        return cls.from_weights(weights, fmt, layers=layers)

    @classmethod
    def from_tf_variables(cls, variables: Any, forget_bias: float = 1.0,
                          scope: Optional[str] = None,
                          layers: Optional[Sequence[Layer]] = None) -> "Model":
        """A model from TF 1.x variables by checkpoint name, as a {name: array} dict or a
        checkpoint path (needs tensorflow): MultiRNNCell stacks of BasicLSTMCell (`.../cell_<k>
        /basic_lstm_cell/kernel` and `/bias`, or the old `/weights`, `/biases`), LSTMCell
        (peepholes, projection) and GRUCell layers, and stack_bidirectional_dynamic_rnn
        stacks (stacklstm.naming.tf_variable_stack). The checkpoint shows each layer's cell,
        sizes, peepholes, projection and direction; what it cannot show (cell_clip,
        proj_clip, ResidualWrapper) comes from `layers` (stacklstm.Layer), which must agree
        with the checkpoint on everything else (ValueError naming the layer otherwise)."""
        from .naming import tf_variable_stack
        found, weights = tf_variable_stack(variables, scope)
        if layers is not None:
            given = _layers_arg(layers)
            if len(given) != len(found):
                raise ValueError("layers: %d given, the variables hold %d" % (len(given),
                                                                              len(found)))
            for k, (g, f) in enumerate(zip(given, found)):
                bare = dataclasses.replace(g, cell_clip=0.0, proj_clip=0.0, residual=False)
                if bare != f:
                    raise ValueError("layers[%d] is %r, but the variables hold %r (only "
                                     "cell_clip, proj_clip and residual may be added)"
                                     % (k, g, f))
            found = given
        if all(L.is_basic for L in found):   # also with libraries before 0.4
            return cls.from_weights([[w["kernel"], w["bias"]] for w in weights], "tf",
                                    forget_bias=forget_bias)
        return cls.from_weights(weights, "tf", forget_bias=forget_bias, layers=found)

    # ---- queries, export, files ---------------------------------------------------------

    @property
    def num_layers(self) -> int:
        return len(self.hidden_sizes)

    def state_count(self, batch: int) -> int:
        n = ctypes.c_size_t()
        batch = _int(batch, "batch")
        with self._using() as h:
            check(lib.slstm_model_state_count(h, batch, ctypes.byref(n)),
                  "slstm_model_state_count")
        return n.value

    def tensor_specs(self, format: Union[str, int] = "canonical") -> List[TensorSpec]:
        """The tensors of this model in `format` (names, shapes, layer, direction), in API
        order: stacklstm.format_tensors for the model's architecture."""
        return format_tensors(format, self.input_size, layers=self.layers)

    def export(self, format: Union[str, int] = "tf") -> List[Dict[str, np.ndarray]]:
        """The weights in `format`: a list, per layer, of dicts {tensor name: ndarray}, in the
        order of tensor_specs(format) (a bidirectional layer's reverse tensors suffixed
        "_reverse" where the two directions share a name). A format that cannot express a
        layer raises stacklstm.UnsupportedError naming the layer and field."""
        name = _format_name(format)
        out: List[Dict[str, np.ndarray]] = []
        arrays = []
        if _has_symbol("slstm_format_tensors"):
            specs = _by_layer(self.tensor_specs(name), len(self.layers))
            for p in specs:
                layer = {}
                for key, t in zip(_layer_keys(p), p):
                    layer[key] = np.empty(t.shape, dtype=np.float32)
                    arrays.append(layer[key])
                out.append(layer)
        else:   # a library before 0.4
            I = self.input_size
            for H in self.hidden_sizes:
                layer = {}
                for n, shape in zip(TENSOR_NAMES[name], tensor_shapes(name, I, H)):
                    layer[n] = np.empty(shape, dtype=np.float32)
                    arrays.append(layer[n])
                out.append(layer)
                I = H
        tensors = (_lib.TensorOut * len(arrays))()
        for k, a in enumerate(arrays):
            tensors[k].data = _fptr(a)
            tensors[k].ndim = a.ndim
            for d, s in enumerate(a.shape):
                tensors[k].shape[d] = s
        with self._using() as h:
            check(lib.slstm_model_export(h, FORMATS[name], tensors, len(arrays)),
                  "slstm_model_export")
        return out

    def to_bytes(self, source_layout: Optional[str] = None) -> bytes:
        """The model as a safetensors image."""
        layout = source_layout.encode() if source_layout is not None else None
        n = ctypes.c_size_t()
        with self._using() as h:
            check(lib.slstm_model_file_size(h, layout, ctypes.byref(n)),
                  "slstm_model_file_size")
            buf = ctypes.create_string_buffer(max(n.value, 1))
            check(lib.slstm_model_save_memory(h, layout, buf, n.value, None),
                  "slstm_model_save_memory")
        return buf.raw[:n.value]

    def save(self, path: Union[str, bytes, "os.PathLike[str]"],
             source_layout: Optional[str] = None) -> None:
        """Writes the model as a safetensors file."""
        layout = source_layout.encode() if source_layout is not None else None
        with self._using() as h:
            check(lib.slstm_model_save_file(h, os.fsencode(path), layout),
                  "slstm_model_save_file")

    def session(self, max_batch: int, max_time: int, backend: Union[str, int] = "cpu",
                cpu_path: Union[str, int] = "auto", num_threads: int = 0, device: int = 0,
                allow_tf32: bool = False, config: Union[None, str, Mapping[str, Any]] = None,
                cuda_stream: Optional[int] = None,
                precision: Union[str, int] = "default") -> "Session":
        """A Session on `backend` ("cpu" or "cuda") for up to max_batch x max_time. `config`:
        keyed backend settings, a "key=value;..." string or a dict (header,
        slstm_session_options.config), e.g. {"cpu.kernel": "avx2", "cuda.graphs": "off"}.
        `precision`: "default", "fp32", "tf32", "bf16" or "fp16" (docs/precision.md)."""
        return Session(self, max_batch, max_time, backend, cpu_path, num_threads, device,
                       allow_tf32, config, cuda_stream, precision)

    # ---- state packing ------------------------------------------------------------------

    def pack_state(self, state: Any, batch: int) -> np.ndarray:
        """The packed 1-D float32 vector (docs/cells.md, "The packed state": layer after
        layer, direction after direction, c then h; c_0, h_0, c_1, h_1, ... for LSTM stacks)
        of a state given per layer (an LSTM layer: LSTMStateTuple(c [batch, H], h [batch,
        proj_size or H]); a GRU layer: the array h [batch, H]; a bidirectional layer:
        BidirectionalState(fw, bw) of those) or already packed."""
        return _pack_state(state, _int(batch, "batch"), self._state_layout, "state")

    def unpack_state(self, packed: Any, batch: int) -> List[Any]:
        """The per-layer states (views of `packed`) of a packed state, in pack_state's
        forms: LSTMStateTuple(c, h), a GRU's h, BidirectionalState(fw, bw)."""
        batch = _int(batch, "batch")
        return _unpack_state(_pack_state(packed, batch, self._state_layout, "packed"), batch,
                             self._state_layout)

    def __repr__(self) -> str:
        if all(L.is_basic for L in self.layers):
            arch = "hidden_sizes=%s" % list(self.hidden_sizes)
        else:
            arch = "layers=%s" % list(self.layers)
        return "stacklstm.Model(input_size=%d, %s, forget_bias=%g%s)" % (
            self.input_size, arch, self.forget_bias,
            "" if self._h is not None else ", closed")


def _prod(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


# ---- device arrays: __cuda_array_interface__, DLPack ---------------------------------------
#
# A device array reaches Session.forward as an object with __cuda_array_interface__ (CuPy,
# Numba, PyTorch), an object with __dlpack__ (JAX, CuPy, PyTorch, ...) or a DLPack capsule
# ("dltensor", e.g. torch.utils.dlpack.to_dlpack / tf.experimental.dlpack.to_dlpack). Only
# its address and shape are read; the library reads and writes the memory in place.
#
# Streams. The session runs on its own CUDA stream (created with cudaStreamCreate, so it is
# ordered after work on the legacy default stream) or on the caller's (Session(cuda_stream=)).
# - __dlpack__ objects are asked for the capsule with stream= that stream (1, the legacy
#   default stream, for a session's own stream): by the DLPack protocol the producer then
#   makes its pending work visible to that stream.
# - A __cuda_array_interface__ (v3) "stream" other than the session's (and other than the
#   legacy default stream for a session's own stream) is waited for with
#   cudaStreamSynchronize before the call (libcudart through ctypes).
# - A bare capsule carries no stream: its producer must have finished writing it (or have
#   written it on the session's stream), as for any DLPack capsule handed over.

_KDL_CPU, _KDL_CUDA, _KDL_CUDA_HOST, _KDL_CUDA_MANAGED = 1, 2, 3, 13


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    """dlpack.h's DLTensor, the first member of DLManagedTensor (the "dltensor" capsule)."""
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_capsule_api: Dict[str, Any] = {}


def _capsule_fn(name: str) -> Any:
    fn = _capsule_api.get(name)
    if fn is None:
        fn = getattr(ctypes.pythonapi, name)
        if name == "PyCapsule_IsValid":
            fn.restype, fn.argtypes = ctypes.c_int, [ctypes.py_object, ctypes.c_char_p]
        else:
            fn.restype, fn.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        _capsule_api[name] = fn
    return fn


def _is_dlpack_capsule(obj: Any) -> bool:
    return (type(obj).__name__ == "PyCapsule" and
            bool(_capsule_fn("PyCapsule_IsValid")(obj, b"dltensor")))


class _DLView:
    """What a DLPack tensor says about itself (the capsule is kept alive with it)."""

    def __init__(self, capsule: Any, name: str) -> None:
        if not _is_dlpack_capsule(capsule):
            raise TypeError("%s: not an unconsumed DLPack capsule (\"dltensor\"; a capsule "
                            "can be consumed once)" % name)
        p = _capsule_fn("PyCapsule_GetPointer")(capsule, b"dltensor")
        t = _DLTensor.from_address(p)
        self.capsule = capsule
        self.device = (t.device.device_type, t.device.device_id)
        self.shape = tuple(t.shape[k] for k in range(t.ndim))
        self.strides = (None if not t.strides else tuple(t.strides[k] for k in range(t.ndim)))
        self.dtype = (t.dtype.code, t.dtype.bits, t.dtype.lanes)
        self.address = (t.data or 0) + t.byte_offset


class _CapsuleArray:
    """A bare host DLPack capsule as an object NumPy's from_dlpack takes (it consumes it)."""

    def __init__(self, capsule: Any, device: Tuple[int, int]) -> None:
        self._capsule, self._device = capsule, device

    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> Tuple[int, int]:
        return self._device


def _dlpack_device(obj: Any) -> Optional[Tuple[int, int]]:
    """(device type, id) of a DLPack capsule or __dlpack__ object; None for anything else."""
    if _is_dlpack_capsule(obj):
        return _DLView(obj, "array").device
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is not None and hasattr(obj, "__dlpack__"):
        d = dev()
        return (int(d[0]), int(d[1]))
    return None


def _host_from_dlpack(obj: Any, device: Tuple[int, int]) -> np.ndarray:
    """A host DLPack tensor as a NumPy array over the same memory (NumPy consumes it)."""
    if device[0] not in (_KDL_CPU, _KDL_CUDA_HOST):
        raise TypeError("a DLPack tensor on device type %d is neither host nor CUDA memory"
                        % device[0])
    if _is_dlpack_capsule(obj):
        obj = _CapsuleArray(obj, (_KDL_CPU, 0))
    from_dlpack = getattr(np, "from_dlpack", None)
    if from_dlpack is None:   # pragma: no cover (NumPy < 1.22)
        raise TypeError("DLPack input needs NumPy >= 1.22 (numpy.from_dlpack)")
    return from_dlpack(obj)


_cudart: Dict[str, Any] = {}


def _stream_synchronize(stream: int, name: str) -> None:
    """cudaStreamSynchronize(stream) through libcudart (loaded on first need)."""
    fn = _cudart.get("sync")
    if fn is None:
        err = None
        for cand in ("libcudart.so", "libcudart.so.13", "libcudart.so.12",
                     "libcudart.so.11.0"):
            try:
                rt = ctypes.CDLL(cand)
                break
            except OSError as e:
                err = e
        else:
            raise RuntimeError("%s is ready on CUDA stream 0x%x, not the session's, and "
                               "libcudart (to wait for that stream) cannot be loaded: %s; "
                               "create the session on that stream (Session(cuda_stream=...)) "
                               "or synchronize it first" % (name, stream, err))
        fn = rt.cudaStreamSynchronize
        fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_void_p]
        _cudart["sync"] = fn
    rc = fn(stream)
    if rc:
        raise RuntimeError("%s: cudaStreamSynchronize(0x%x) failed with cudaError %d"
                           % (name, stream, rc))


def _c_contiguous(shape: Sequence[int], strides: Optional[Sequence[int]], itemsize: int,
                  in_elements: bool) -> bool:
    if strides is None or _prod(shape) <= 1:
        return True
    acc = 1 if in_elements else itemsize
    for d, s in zip(reversed(tuple(shape)), reversed(tuple(strides))):
        if d != 1 and s != acc:
            return False
        acc *= int(d)
    return True


class _DeviceArgs:
    """The device views of one call: each argument's (address, shape), the DLPack capsules
    kept alive for the call and the producer streams to wait for."""

    def __init__(self, session_stream: Optional[int], device: int) -> None:
        self.session_stream = session_stream
        self.device = device
        self.keep: List[Any] = []
        self.waits: Dict[int, str] = {}
        self.data_type = 0  # of the last view

    def view(self, obj: Any, name: str, writable: bool,
             half: bool = False) -> Tuple[int, Tuple[int, ...]]:
        """(device address, shape) of a float32 C-contiguous CUDA array given as a
        __cuda_array_interface__ object, a __dlpack__ object or a DLPack capsule.  With
        half=True also float16 / bfloat16 (the call's inputs and out: slstm_forward_args.
        data_type); the element type found is left in self.data_type (0 float32, 1 bfloat16,
        2 float16)."""
        cai = _cuda_array_interface(obj)
        if cai is not None:
            shape = tuple(int(d) for d in cai["shape"])
            typestr = cai.get("typestr")
            if typestr == "<f2" and half:
                self.data_type, itemsize = 2, 2
            elif typestr != "<f4":
                raise TypeError("%s: CUDA arrays must be float32 ('<f4')%s, got %r (no silent "
                                "copies of device arrays)" % (
                                    name, " or float16 ('<f2')" if half else "", typestr))
            else:
                self.data_type, itemsize = 0, 4
            if not _c_contiguous(shape, cai.get("strides"), itemsize, False):
                raise TypeError("%s: CUDA arrays must be C-contiguous (no silent copies)"
                                % name)
            if writable and cai["data"][1]:
                raise TypeError("%s: the CUDA array is read-only" % name)
            stream = cai.get("stream")
            if stream is not None and stream != self.session_stream and not (
                    stream == 1 and self.session_stream is None):
                self.waits.setdefault(int(stream), name)
            return int(cai["data"][0] or 0), shape
        if _is_dlpack_capsule(obj):
            capsule = obj
        elif hasattr(obj, "__dlpack__"):
            # The producer makes its work visible on the stream we name (DLPack protocol).
            # (A torch tensor that requires grad exports only detached: the same memory.)
            if _is_torch_tensor(obj) and getattr(obj, "requires_grad", False):
                obj = obj.detach()
                self.keep.append(obj)
            capsule = obj.__dlpack__(stream=self.session_stream if self.session_stream
                                     else 1)
        else:
            raise TypeError("%s: expected a CUDA array (__cuda_array_interface__, __dlpack__ "
                            "or a DLPack capsule), got %s" % (name, type(obj).__name__))
        v = _DLView(capsule, name)
        self.keep.append(capsule)
        if v.device[0] not in (_KDL_CUDA, _KDL_CUDA_MANAGED):
            raise TypeError("%s: a DLPack tensor on device type %d where CUDA memory (type "
                            "2) is needed (the other arrays of the call are CUDA arrays)"
                            % (name, v.device[0]))
        if v.device[1] != self.device:
            raise ValueError("%s: the DLPack tensor is on CUDA device %d, the session on %d"
                             % (name, v.device[1], self.device))
        halves = {(2, 16, 1): 2, (4, 16, 1): 1}  # float16, bfloat16 (DLPack type codes)
        if half and v.dtype in halves:
            self.data_type = halves[v.dtype]
        elif v.dtype != (2, 32, 1):
            raise TypeError("%s: DLPack tensors must be float32 (code 2, 32 bits, 1 lane)%s, "
                            "got (code %d, %d bits, %d lanes)" % (
                                (name, ", float16 or bfloat16" if half else "") + v.dtype))
        else:
            self.data_type = 0
        if not _c_contiguous(v.shape, v.strides, 4, True):
            raise TypeError("%s: DLPack tensors must be C-contiguous (no silent copies)" % name)
        return v.address, v.shape

    def wait(self) -> None:
        for stream, name in self.waits.items():
            _stream_synchronize(stream, name)


# slstm_data_type values, by name.
_DATA_TYPE_NAMES = {0: "float32", 1: "bfloat16", 2: "float16"}


def _is_torch_tensor(obj: Any) -> bool:
    return hasattr(obj, "__dlpack__") and hasattr(obj, "detach") and hasattr(obj, "cpu")


def _cuda_array_interface(obj: Any) -> Optional[Dict[str, Any]]:
    """obj's __cuda_array_interface__, or None where DLPack serves it better or the
    interface cannot be read.  A torch tensor goes through __dlpack__ (torch orders its
    pending work before the stream the library names, where its array interface carries no
    stream, and only DLPack describes bfloat16); so does any object whose interface fails to
    build (torch raises for bfloat16 and for tensors that require grad)."""
    if _is_torch_tensor(obj):
        return None
    try:
        cai = getattr(obj, "__cuda_array_interface__", None)
    except Exception:  # noqa: BLE001 (a producer's property: any failure means "use DLPack")
        return None
    return cai if isinstance(cai, dict) else None


def _is_device_array(obj: Any) -> bool:
    """A CUDA array of any of the accepted kinds (see _DeviceArgs)."""
    if isinstance(obj, np.ndarray):
        return False
    if _is_torch_tensor(obj):  # a CUDA tensor: device memory through DLPack; else the host
        return bool(getattr(obj, "is_cuda", False))
    if _cuda_array_interface(obj) is not None:
        return True
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):   # a torch-like CPU tensor: the host path
        return False
    dev = _dlpack_device(obj) if (hasattr(obj, "__dlpack__") or
                                  type(obj).__name__ == "PyCapsule") else None
    return dev is not None and dev[0] in (_KDL_CUDA, _KDL_CUDA_MANAGED)


def _host_array(obj: Any) -> Any:
    """A host DLPack capsule / __dlpack__ object as NumPy; anything else unchanged."""
    if isinstance(obj, np.ndarray) or (hasattr(obj, "detach") and hasattr(obj, "cpu")):
        return obj
    if type(obj).__name__ == "PyCapsule" and not _is_dlpack_capsule(obj):
        raise TypeError("a capsule that is not an unconsumed DLPack tensor (\"dltensor\"; a "
                        "DLPack capsule can be used once, then it is \"used_dltensor\")")
    if type(obj).__name__ == "PyCapsule" or (hasattr(obj, "__dlpack__") and
                                             hasattr(obj, "__dlpack_device__")):
        dev = _dlpack_device(obj)
        if dev is not None:
            return _host_from_dlpack(obj, dev)
    return obj


_C, _H = 0, 1   # slstm_state_part


class _StateLayout:
    """Where each piece of a layer's state lives in a packed state, as the library says
    (slstm_model_state_piece, queried once per model for one batch row: every offset is the
    batch times its per-row offset). Python keeps no formula of its own.

    pieces[l][d] = {part: (offset per row, width)} for layer l's direction d."""

    def __init__(self, layers: Sequence[Layer], pieces: List[List[Dict[int, Tuple[int, int]]]],
                 row_floats: int) -> None:
        self.layers = list(layers)
        self.pieces = pieces
        self.row_floats = row_floats  # floats per batch row
        # A stack of one-direction LSTM layers whose c and h have one width: each layer's
        # state is one LSTMStateTuple, rows[l] = (c offset, h offset, H) per batch row.
        self.simple = all(L.cell == "lstm" and L.directions == 1 and
                          p[0][_C][1] == p[0][_H][1] for L, p in zip(self.layers, pieces))
        self.rows: List[Tuple[int, int, int]] = (
            [(p[0][_C][0], p[0][_H][0], p[0][_H][1]) for p in pieces] if self.simple else [])
        if self.simple:
            self.conventions = CONVENTIONS
        else:
            self.conventions = (
                "expected a list with one state per layer: an LSTM layer's "
                "stacklstm.LSTMStateTuple(c [batch, H], h [batch, proj_size or H]), a GRU "
                "layer's h [batch, H], a bidirectional layer's stacklstm.BidirectionalState"
                "(fw, bw) of those; or the packed 1-D float vector of Model.state_count(batch) "
                "values (docs/cells.md, \"The packed state\")")

    @property
    def hidden_sizes(self) -> List[int]:
        return [L.hidden_size for L in self.layers]

    def count(self, batch: int) -> int:
        return batch * self.row_floats


def _has_symbol(name: str) -> bool:
    """Whether the loaded library exports `name` (older libraries lack the newer calls)."""
    return name not in _lib.missing_symbols


def _query_state_layout(handle: ctypes.c_void_p, layers: Sequence[Layer]) -> _StateLayout:
    pieces: List[List[Dict[int, Tuple[int, int]]]] = [
        [{} for _ in range(L.directions)] for L in layers]
    if _has_symbol("slstm_model_state_piece"):
        npieces = ctypes.c_int64()
        check(lib.slstm_model_state_pieces(handle, ctypes.byref(npieces)),
              "slstm_model_state_pieces")
        for k in range(npieces.value):
            p = _lib.StatePiece()
            p.struct_size = ctypes.sizeof(_lib.StatePiece)
            check(lib.slstm_model_state_piece(handle, 1, k, ctypes.byref(p)),
                  "slstm_model_state_piece")
            pieces[p.layer][p.direction][int(p.part)] = (int(p.offset), int(p.width))
    else:   # a library before 0.4: one (c, h) per layer
        for l, L in enumerate(layers):
            for part in (_C, _H):
                off = ctypes.c_size_t()
                check(lib.slstm_model_state_offset(handle, 1, l, part, ctypes.byref(off)),
                      "slstm_model_state_offset")
                pieces[l][0][part] = (off.value, L.hidden_size)
    n = ctypes.c_size_t()
    check(lib.slstm_model_state_count(handle, 1, ctypes.byref(n)), "slstm_model_state_count")
    return _StateLayout(layers, pieces, n.value)


def _state_count(batch: int, layout: _StateLayout) -> int:
    return layout.count(batch)


def _direction_states(s: Any, L: Layer) -> Optional[List[Any]]:
    """A layer's state as its per-direction states, or None when it has the wrong form."""
    subs = [s]
    if L.directions == 2:
        if not (hasattr(s, "fw") and hasattr(s, "bw")):
            return None
        subs = [s.fw, s.bw]
    for sub in subs:
        if L.cell == "lstm":
            if not is_state_tuple(sub):
                return None
        elif is_state_tuple(sub) or not hasattr(sub, "shape"):
            return None
    return subs


def _pack_state(state: Any, batch: int, layout: _StateLayout,
                name: str = "initial_state") -> np.ndarray:
    """The packed float32 vector of a state given per layer (an LSTM layer: an
    LSTMStateTuple(c, h) or any object with .c and .h; a GRU layer: the array h; a
    bidirectional layer: BidirectionalState(fw, bw) of those), each piece [batch, width], or
    as the packed 1-D vector itself. Shapes are checked, not element counts: anything else
    (PyTorch's (h, c) of [layers, batch, hidden], Keras' [h, c] pairs, plain tuples whose
    order cannot be told, transposed pieces) is a ValueError naming the expected forms."""
    count = _state_count(batch, layout)
    layers = layout.layers
    if isinstance(state, (list, tuple)) and not all(
            isinstance(s, numbers.Number) for s in state):
        if is_state_tuple(state) or not all(
                _direction_states(s, L) is not None for s, L in zip(state, layers)):
            hint = ""
            if len(state) == 2 and all(np.ndim(s) == 3 for s in state):
                hint = " (this looks like PyTorch's (h, c): use stacklstm.state_from_torch)"
            elif all(isinstance(s, (list, tuple)) and len(s) == 2 and not is_state_tuple(s)
                     and not hasattr(s, "fw") for s in state):
                hint = (" (plain pairs are refused: TF's order is (c, h), Keras' [h, c]; "
                        "wrap them as stacklstm.LSTMStateTuple(c=..., h=...) or use "
                        "stacklstm.state_from_keras)")
            raise ValueError("%s: got %s%s; %s" % (name, describe(state), hint,
                                                   layout.conventions))
        if len(state) != len(layers):
            raise ValueError("%s: %d %s for a model of %d layers; %s"
                             % (name, len(state), "LSTMStateTuples" if layout.simple
                                else "layer states", len(layers), layout.conventions))
        packed = np.empty(count, dtype=np.float32)
        for l, (s, L, dirs) in enumerate(zip(state, layers, layout.pieces)):
            subs = _direction_states(s, L)
            assert subs is not None
            for d, (sub, parts) in enumerate(zip(subs, dirs)):
                where = "%s[%d]%s" % (name, l, "" if L.directions == 1 else
                                      (".fw", ".bw")[d])
                items = ([("c", sub.c, _C), ("h", sub.h, _H)] if L.cell == "lstm"
                         else [("", sub, _H)])
                for nm, value, part in items:
                    off, width = parts[part]
                    what = where + ("." + nm if nm else "")
                    a = _f32(value, what)
                    if a.shape != (batch, width):
                        if L.cell == "lstm" and part == _H and L.proj_size:
                            wname = "proj_size_%d" % l
                        else:
                            wname = "H_%d" % l
                        raise ValueError("%s has shape %s, expected (%d, %d) = [batch, %s]; %s"
                                         % (what, a.shape, batch, width, wname,
                                            layout.conventions))
                    packed[batch * off:batch * off + batch * width] = a.reshape(-1)
        return packed
    packed = _f32(state, name)
    if packed.ndim != 1 or packed.size != count:
        raise ValueError("%s: got %s; a packed state for batch %d is 1-D with %d values; %s"
                         % (name, describe(packed), batch, count, layout.conventions))
    return packed


def _unpack_state(packed: np.ndarray, batch: int, layout: _StateLayout) -> List[Any]:
    return _unpack_fast(packed, _unpack_rows(batch, layout))


def _lengths(sequence_lengths: Any) -> np.ndarray:
    """sequence_lengths as a contiguous int32 vector; a vector (one length per batch row, as
    TensorFlow and PyTorch take them: a (B, 1) array is refused, never flattened), integers
    only, each within int32."""
    lens = _to_numpy(sequence_lengths)
    if lens.ndim != 1:
        raise ValueError("sequence_lengths must be a vector (1 dimension, one length per batch "
                         "row), got shape %s" % (lens.shape,))
    lens = np.ascontiguousarray(lens)
    if lens.size and not np.issubdtype(lens.dtype, np.integer):
        raise TypeError("sequence_lengths must be integers, got dtype %s" % lens.dtype)
    if lens.size and (int(lens.min()) < INT32[0] or int(lens.max()) > INT32[1]):
        raise OverflowError("sequence_lengths: %d does not fit the library's int32_t"
                            % (int(lens.min()) if int(lens.min()) < INT32[0]
                               else int(lens.max())))
    return lens.astype(np.int32)


def _out_array(arr: Any, name: str, shape: Sequence[int]) -> np.ndarray:
    """A caller's NumPy output buffer, written in place: float32, C-contiguous, writeable and
    of exactly `shape`, else TypeError / ValueError (it is never silently replaced)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError("%s must be a numpy.ndarray (float32, C-contiguous) of shape %s, got "
                        "%s" % (name, shape, type(arr).__name__))
    if arr.dtype != np.float32:
        raise TypeError("%s must be float32, got %s (it is written in place)"
                        % (name, arr.dtype))
    if arr.shape != tuple(shape):
        raise ValueError("%s has shape %s, expected %s" % (name, arr.shape, tuple(shape)))
    if not arr.flags.c_contiguous:
        raise ValueError("%s must be C-contiguous (it is written in place)" % name)
    if not arr.flags.writeable:
        raise ValueError("%s is read-only" % name)
    return arr


def _config_text(config: Union[None, str, Mapping[str, Any]]) -> Optional[bytes]:
    """The keyed settings as the C string slstm_session_options.config takes."""
    if config is None:
        return None
    if isinstance(config, dict):
        parts = []
        for k, v in config.items():
            if not isinstance(k, str) or not isinstance(v, (str, int)) or isinstance(v, bool):
                raise TypeError("config keys must be str and values str or int, got %r: %r"
                                % (k, v))
            parts.append("%s=%s" % (k, v))
        config = ";".join(parts)
    if not isinstance(config, str):
        raise TypeError("config must be a str or a dict, got %s" % type(config).__name__)
    if "\0" in config:
        raise ValueError("config must not contain a NUL character")
    # UTF-8 (a file path in a value, e.g. cuda.tune_file, is the file system's bytes; an
    # undecodable one came in as surrogate escapes); the library names a key it refuses.
    return config.encode("utf-8", "surrogateescape")


# ---- the per-call fast path ------------------------------------------------------------------
#
# A call's ctypes work is done once per session and call shape, not per call: the argument
# struct of slstm_session_forward is filled with the shape's counts when the shape is first
# seen and cached in the session (each call writes only its buffers' addresses into it, under
# the session's call lock), the C functions are called through prototypes that take plain
# addresses, and a float32 C-contiguous NumPy array's address is read without building a
# ctypes object. bench/python/overhead.py measures what is left (bench/results/
# python-overhead.md).

_F32 = np.dtype(np.float32)
_I32 = np.dtype(np.int32)


def _void_struct(struct_type: Any) -> Any:
    """A copy of a ctypes struct whose pointer fields are c_void_p (same size and offsets), so
    that plain integer addresses can be stored in it without a ctypes cast per call."""
    fields = []
    for name, t in struct_type._fields_:
        if isinstance(t, type) and issubclass(t, (ctypes._Pointer, ctypes.c_char_p)):
            t = ctypes.c_void_p
        fields.append((name, t))
    out = type(struct_type.__name__ + "Addr", (ctypes.Structure,), {"_fields_": fields})
    if ctypes.sizeof(out) != ctypes.sizeof(struct_type):   # pragma: no cover (ABI guard)
        raise ImportError("stacklstm: %s address mirror has the wrong size" % struct_type)
    return out


_ForwardArgsAddr = _void_struct(_lib.ForwardArgs)

# Declared without argtypes: it is only ever called with ctypes objects of the exact C
# types (c_void_p, c_int64, c_size_t), which ctypes passes on without converting.
_c_step = ctypes.CFUNCTYPE(ctypes.c_int)
_calls: Dict[str, Any] = {}


def _raw_calls() -> Tuple[Any, Any]:
    """slstm_session_forward (as declared: it takes the cached struct by reference) and
    slstm_session_step as a prototype taking ctypes objects of its exact C types (made on
    first use: the library is loaded lazily). Both release the GIL like any ctypes call."""
    got = _calls.get("fs")
    if got is None:
        stp = ctypes.cast(lib.slstm_session_step, ctypes.c_void_p).value or 0
        got = _calls["fs"] = (lib.slstm_session_forward, _c_step(stp))
    return got


def _address_reader() -> Callable[[np.ndarray], int]:
    """A function giving a NumPy array's data address. On CPython, NumPy's PyArrayObject
    (numpy/ndarraytypes.h, public since NumPy 1.7) is PyObject_HEAD followed by `char *data`,
    so the address is one pointer read at id(a) + object.__basicsize__: ~10x cheaper than
    a.ctypes.data, which builds a ctypes helper object per call. The layout is verified here
    on arrays of several kinds (fresh, offset view, reshaped view, empty); anywhere it does
    not hold (another interpreter, another layout), a.ctypes.data is used."""
    def slow(a: np.ndarray) -> int:
        return a.ctypes.data

    if platform.python_implementation() != "CPython":
        return slow
    offset = object.__basicsize__
    read = ctypes.c_void_p.from_address

    def fast(a: np.ndarray) -> int:
        return read(id(a) + offset).value or 0

    base = np.arange(24, dtype=np.float32)
    probes = [base, base[5:], base.reshape(2, 3, 4)[1], np.empty((3, 0), np.float32),
              np.zeros(7, np.int32)]
    try:
        if all(fast(a) == slow(a) for a in probes):
            return fast
    except Exception:   # pragma: no cover
        pass
    return slow   # pragma: no cover


_addr = _address_reader()


def _is_f32c(a: Any) -> bool:
    """A float32 C-contiguous NumPy array, which the library reads in place."""
    return type(a) is np.ndarray and a.dtype is _F32 and a.flags.c_contiguous


class _ForwardShape:
    """What one call shape (batch, time, layout) of Session.forward needs, built once: the
    argument struct with its counts filled in, the output shapes and where each layer's c
    and h lie in the packed state."""

    __slots__ = ("holder", "args", "ref", "out_shape", "count", "rows")

    def __init__(self, B: int, T: int, x_size: int, time_major: bool, H: int,
                 layout: "_StateLayout") -> None:
        self.holder = _lib.padded(_ForwardArgsAddr, lib.slstm_forward_args_init_sized)
        self.args = a = self.holder.s
        self.ref = ctypes.byref(self.holder)
        a.layout = 1 if time_major else 0
        a.batch, a.time = B, T
        a.input_count = x_size
        self.out_shape = (T, B, H) if time_major else (B, T, H)
        self.count = layout.count(B)
        a.output_count = B * T * H
        a.final_state_count = self.count
        self.rows = _unpack_rows(B, layout)


_Piece = Tuple[int, int, Tuple[int, int]]   # start, end, shape of one piece
# How to cut a packed state of one batch into its per-layer states (see _unpack_rows):
# (whole, LSTM pieces, general recipe).
_Rows = Tuple[Optional[Tuple[int, int, int]], List[Tuple[int, int, int, int, Tuple[int, int]]],
              Optional[List[Tuple[int, str, List[List[_Piece]]]]]]


def _unpack_rows(B: int, layout: "_StateLayout") -> _Rows:
    """How to cut a packed state of batch B into per-layer states, worked out once per batch.
    For a stack of one-direction LSTM layers whose layers share one H and lie c_0, h_0, c_1,
    h_1, ... back to back, one reshape to [2 * layers, B, H] serves every layer; for other
    such stacks each (c, h) is its own slice (whatever offsets the library reported); any
    other stack (GRU, projections, bidirectional layers) gets a recipe per layer."""
    if not layout.simple:
        recipe = []
        for L, dirs in zip(layout.layers, layout.pieces):
            parts = (_C, _H) if L.cell == "lstm" else (_H,)
            recipe.append((L.directions, L.cell,
                           [[(B * d[p][0], B * d[p][0] + B * d[p][1], (B, d[p][1]))
                             for p in parts] for d in dirs]))
        return None, [], recipe
    rows = [(B * c, B * c + B * H, B * h, B * h + B * H, (B, H)) for c, h, H in layout.rows]
    Hs = {H for _, _, H in layout.rows}
    whole = None
    if len(Hs) == 1:
        H = Hs.pop()
        if all(c == 2 * l * H and h == c + H for l, (c, h, _) in enumerate(layout.rows)) \
                and layout.row_floats == 2 * H * len(layout.rows):
            whole = (2 * len(layout.rows), B, H)
    return whole, rows, None


def _unpack_fast(packed: np.ndarray, rows: _Rows) -> List[Any]:
    """The per-layer state views of a packed state (see _unpack_rows)."""
    whole, pieces, recipe = rows
    new = tuple.__new__
    if recipe is not None:
        out: List[Any] = []
        for ndir, cell, dirs in recipe:
            subs: List[Any] = []
            for d in dirs:
                views = [packed[a:b].reshape(shape) for a, b, shape in d]
                subs.append(new(LSTMStateTuple, views) if cell == "lstm" else views[0])
            out.append(subs[0] if ndir == 1 else new(BidirectionalState, subs))
        return out
    if whole is not None:
        v = packed.reshape(whole)
        return [new(LSTMStateTuple, (v[k], v[k + 1])) for k in range(0, whole[0], 2)]
    return [new(LSTMStateTuple, (packed[c0:c1].reshape(shape), packed[h0:h1].reshape(shape)))
            for c0, c1, h0, h1, shape in pieces]


_SHAPE_CACHE_MAX = 64   # call shapes remembered per session (the cache is cleared beyond)



def _session_options(backend: Union[str, int], max_batch: int, max_time: int,
                     cpu_path: Union[str, int] = "auto", num_threads: int = 0, device: int = 0,
                     allow_tf32: bool = False,
                     config: Union[None, str, Mapping[str, Any]] = None,
                     cuda_stream: Optional[int] = None, max_slots: int = 0,
                     precision: Union[str, int] = "default") -> Any:
    """slstm_session_options (padded, as `.s`) from the Python arguments of a session, each
    checked (names and integer ranges) before the library sees it; shared by Session and
    stacklstm.Streams. The config text is referenced by the struct for as long as it lives."""
    opt = _lib.padded(_lib.SessionOptions, lib.slstm_session_options_init_sized)
    if isinstance(backend, str):
        if backend.lower() not in BACKENDS:
            raise ValueError("backend must be one of %s, got %r" % (sorted(BACKENDS), backend))
        backend = BACKENDS[backend.lower()]
    if isinstance(cpu_path, str):
        if cpu_path.lower() not in CPU_PATHS:
            raise ValueError("cpu_path must be one of %s, got %r"
                             % (sorted(CPU_PATHS), cpu_path))
        cpu_path = CPU_PATHS[cpu_path.lower()]
    if isinstance(precision, str):
        if precision.lower() not in PRECISIONS:
            raise ValueError("precision must be one of %s, got %r"
                             % (sorted(PRECISIONS), precision))
        precision = PRECISIONS[precision.lower()]
    opt.s.backend = _int(backend, "backend", INT32)
    opt.s.max_batch = _int(max_batch, "max_batch")
    opt.s.max_time = _int(max_time, "max_time")
    opt.s.cpu_path = _int(cpu_path, "cpu_path", INT32)
    opt.s.num_threads = _int(num_threads, "num_threads", INT32)
    opt.s.device = _int(device, "device", INT32)
    opt.s.allow_tf32 = 1 if allow_tf32 else 0
    if cuda_stream is not None:
        opt.s.cuda_stream = _int(cuda_stream, "cuda_stream", UINT64) or None
    opt.s.config = _config_text(config)
    opt.s.max_slots = _int(max_slots, "max_streams")
    opt.s.precision = _int(precision, "precision", INT32)
    return opt


def _create_session(model: "Model", opt: Any) -> ctypes.c_void_p:
    """slstm_session_create of `model` with `opt` (from _session_options): the handle."""
    h = ctypes.c_void_p()
    with model._using() as mh:
        check(lib.slstm_session_create(mh, ctypes.byref(opt), ctypes.byref(h)),
              "slstm_session_create")
    return h

class Session(_Owned):
    """A model bound to a backend with workspace for max_batch x max_time. Free with close()
    or a `with` block. Calls on one session from several threads are serialized by the
    session's lock (the library allows one thread at a time); sessions of their own run in
    parallel. Sessions cannot be copied or pickled (make a new one from the model)."""

    _exclusive = True

    def __init__(self, model: Model, max_batch: int, max_time: int,
                 backend: Union[str, int] = "cpu", cpu_path: Union[str, int] = "auto",
                 num_threads: int = 0, device: int = 0, allow_tf32: bool = False,
                 config: Union[None, str, Mapping[str, Any]] = None,
                 cuda_stream: Optional[int] = None,
                 precision: Union[str, int] = "default") -> None:
        """`cuda_stream` (CUDA backend): the address of a cudaStream_t the caller owns (an
        int, e.g. torch.cuda.current_stream().cuda_stream or a CuPy stream's .ptr) that every
        call of the session runs on; None: a stream of the session's own. `precision`: the
        products' arithmetic, "default" (FP32, or TF32 with allow_tf32), "fp32", "tf32",
        "bf16", "fp16" (docs/precision.md; what the backend does not run is refused)."""
        if not isinstance(model, Model):
            raise TypeError("Session(model, ...) needs a stacklstm.Model, got %s"
                            % type(model).__name__)
        opt = _session_options(backend, max_batch, max_time, cpu_path, num_threads, device,
                               allow_tf32, config, cuda_stream, precision=precision)
        max_batch, max_time = opt.s.max_batch, opt.s.max_time
        self._adopt(_create_session(model, opt), lib.slstm_session_destroy)
        self.input_size: int = model.input_size
        self.hidden_sizes: Tuple[int, ...] = model.hidden_sizes
        self.output_size: int = model.output_size
        self.layers: Tuple[Layer, ...] = model.layers
        self._state_layout = model._state_layout
        self.max_batch, self.max_time = max_batch, max_time
        self._backend_value = opt.s.backend
        self._device = opt.s.device
        self._cuda_stream = int(cuda_stream) if cuda_stream else None  # (DLPack wants an int)
        self._shapes: Dict[Tuple[int, int, int, bool], _ForwardShape] = {}
        self._step_rows: Dict[Tuple[int, ...], Tuple[int, Tuple[int, int], _Rows, list]] = {}
        self._fwd, self._stp = _raw_calls()

    def __repr__(self) -> str:
        backend = {v: k for k, v in BACKENDS.items()}.get(self._backend_value,
                                                          self._backend_value)
        where = ""
        if backend == "cuda":
            where = ", device=%d" % self._device
            if self._cuda_stream:
                where += ", cuda_stream=0x%x" % self._cuda_stream
        if all(L.is_basic for L in self.layers):
            arch = "hidden_sizes=%s" % list(self.hidden_sizes)
        else:
            arch = "layers=%s" % list(self.layers)
        return ("stacklstm.Session(input_size=%d, %s, backend=%r%s, max_batch=%d, "
                "max_time=%d%s)" % (self.input_size, arch, backend, where,
                                    self.max_batch, self.max_time,
                                    "" if self._h is not None else ", closed"))

    def describe(self, format: str = "text") -> Any:
        """The session's plan as the library reports it (slstm_session_describe): "text"
        (a str for people) or "json" (the parsed dict: backend, path, precision, params,
        settings and per layer its path, reason and params)."""
        if format not in ("text", "json"):
            raise ValueError("format must be 'text' or 'json', got %r" % (format,))
        f = 1 if format == "json" else 0
        n = ctypes.c_size_t()
        size = 4096
        with self._using() as h:
            while True:   # one call whose text fits (a CUDA session's text can change between
                buf = ctypes.create_string_buffer(size)      # two calls: docs of the C API)
                check(lib.slstm_session_describe(h, f, buf, size, ctypes.byref(n)),
                      "slstm_session_describe")
                if n.value < size:
                    break
                size = n.value + 1
        text = buf.value.decode("utf-8", "replace")
        if format == "json":
            import json
            return json.loads(text)
        return text

    @property
    def backend(self) -> Union[str, int]:
        b = ctypes.c_int()
        with self._using() as h:
            check(lib.slstm_session_backend(h, ctypes.byref(b)), "slstm_session_backend")
        return {v: k for k, v in BACKENDS.items()}.get(b.value, b.value)

    def _shape(self, B: int, T: int, size: int, time_major: Any) -> _ForwardShape:
        """The cached _ForwardShape of a call shape, made on first use."""
        key = (B, T, size, time_major)   # time_major as given: True and 1 hash alike
        sh = self._shapes.get(key)
        if sh is None:
            if len(self._shapes) >= _SHAPE_CACHE_MAX:
                self._shapes.clear()
            sh = self._shapes[key] = _ForwardShape(B, T, size, bool(time_major),
                                                   self.output_size, self._state_layout)
        return sh

    def _step_shape(self, shape: Tuple[int, ...]) -> Tuple[int, Tuple[int, int], _Rows, list]:
        """The cached per-shape ([batch, depth]) constants and argument objects of step()."""
        if len(self._step_rows) >= _SHAPE_CACHE_MAX:
            self._step_rows.clear()
        B = shape[0]
        count = self._state_layout.count(B)
        H = self.output_size
        V, N = ctypes.c_void_p, ctypes.c_size_t
        argv = [ctypes.c_int64(B), V(), N(B * shape[1]), V(), N(0), V(), N(B * H), V(),
                N(count)]
        got = self._step_rows[shape] = (count, (B, H), _unpack_rows(B, self._state_layout),
                                        argv)
        return got

    def forward(self, inputs: Any, initial_state: Any = None, sequence_lengths: Any = None,
                time_major: bool = False, packed_state: bool = False,
                out: Any = None, final_state_out: Any = None) -> Tuple[Any, Any]:
        """tf.nn.dynamic_rnn: returns (outputs, final_state). inputs [B, T, D] ([T, B, D] when
        time_major), any strides; float32, or a real dtype converted to float32 (see the
        package README: complex is refused). initial_state: None (zeros), a list of one
        LSTMStateTuple(c, h) per layer (each [B, H_l]) or the packed 1-D vector; other
        conventions through stacklstm.state_from_torch / state_from_keras. final_state: a
        list of LSTMStateTuple(c, h) per layer, or the packed vector when packed_state=True.
        Stacks with other layers (stacklstm.Layer): a GRU layer's state is its h [B, H], an
        LSTM layer with a projection has h [B, proj_size], a bidirectional layer's state is
        BidirectionalState(fw, bw) (Model.pack_state); outputs are [B, T, output_size].
        sequence_lengths: None (every row T steps) or a vector of B integers in [0, T], as
        dynamic_rnn's sequence_length (any other shape is a ValueError, never flattened).

        out / final_state_out (optional): NumPy float32 C-contiguous writeable arrays that
        receive the outputs ([B, T, H_last], or [T, B, H_last] when time_major) and the
        packed final state ([state_count(B)]) in place; they are what is returned (the
        unpacked final state is then views of final_state_out). final_state_out may be the
        packed initial_state array itself (the state is updated in place). Anything else is
        a TypeError / ValueError, never silently ignored.

        GPU arrays: when `inputs` exposes __cuda_array_interface__ (CuPy, PyTorch CUDA
        tensors, Numba...), the call runs on device memory without copies: `out` and
        `final_state_out` (packed) must then be given as CUDA arrays too (and initial_state,
        if any, as a packed CUDA array); all float32 and C-contiguous, or TypeError (nothing
        is copied silently). They are returned as (out, final_state_out). `inputs` and `out`
        may instead both be float16 (or bfloat16, through DLPack) on a CUDA session running
        the generic path (config "cuda.generic=on"; slstm_forward_args.data_type): the stack
        reads the inputs' values and writes its output rounded; the states stay float32."""
        x = inputs
        if not (type(x) is np.ndarray and x.dtype is _F32 and x.flags.c_contiguous):
            if _is_device_array(x):
                return self._forward_device(x, initial_state, sequence_lengths, time_major,
                                            out, final_state_out)
            x = _f32(x, "inputs")
        shape = x.shape
        if len(shape) != 3:
            raise ValueError("inputs must have 3 dims ([B, T, D] or [T, B, D]), got shape %s"
                             % (shape,))
        if time_major:
            T, B = shape[0], shape[1]
        else:
            B, T = shape[0], shape[1]
        size = x.size
        sh = self._shapes.get((B, T, size, time_major))
        if sh is None:
            sh = self._shape(B, T, size, time_major)
        if out is None:
            out = np.empty(sh.out_shape, _F32)
        elif not (_is_f32c(out) and out.shape == sh.out_shape and out.flags.writeable):
            out = _out_array(out, "out", sh.out_shape)
        if final_state_out is None:
            final = np.empty(sh.count, _F32)
        else:
            final = final_state_out
            if not (_is_f32c(final) and final.shape == (sh.count,) and final.flags.writeable):
                final = _out_array(final, "final_state_out", (sh.count,))
        init = None
        if initial_state is not None:
            init = initial_state
            if not (_is_f32c(init) and init.shape == (sh.count,)):
                init = _pack_state(initial_state, B, self._state_layout)
        lens = None
        if sequence_lengths is not None:
            lens = _lengths(sequence_lengths)
        lock = self._lock
        if lock is None:
            raise self._closed()
        with lock:
            h = self._h
            if h is None:
                raise self._closed()
            a = sh.args
            a.input = _addr(x) or None   # an empty array's address too: then the library
            # names a wrong input_count (e.g. D = 0), not a NULL input
            a.output = _addr(out) if out.size else None
            a.final_state = _addr(final)
            if init is None:
                a.initial_state, a.initial_state_count = None, 0
            else:
                a.initial_state, a.initial_state_count = _addr(init), init.size
            if lens is None:
                a.sequence_lengths, a.sequence_lengths_count = None, 0
            else:
                a.sequence_lengths, a.sequence_lengths_count = _addr(lens), lens.size
            st = self._fwd(h, sh.ref)
        if st:
            check(st, "slstm_session_forward")
        return out, (final if packed_state else _unpack_fast(final, sh.rows))

    def _forward_device(self, inputs: Any, initial_state: Any, sequence_lengths: Any,
                        time_major: bool, out: Any, final_state_out: Any,
                        lens: Optional[np.ndarray] = None) -> Tuple[Any, Any]:
        dv = _DeviceArgs(self._cuda_stream or None, self._device)
        xa, xs = dv.view(inputs, "inputs", False, half=True)
        data_type = dv.data_type
        if len(xs) != 3:
            raise ValueError("inputs must have 3 dims, got shape %s" % (xs,))
        T, B = (xs[0], xs[1]) if time_major else (xs[1], xs[0])
        if out is None or final_state_out is None:
            raise TypeError("CUDA inputs need `out` and `final_state_out` CUDA arrays (the "
                            "package allocates no device memory)")
        oa, os_ = dv.view(out, "out", True, half=True)
        if dv.data_type != data_type:
            raise TypeError("out: a %s array for %s inputs (inputs and out share one element "
                            "type)" % (_DATA_TYPE_NAMES[dv.data_type],
                                       _DATA_TYPE_NAMES[data_type]))
        fa, fs = dv.view(final_state_out, "final_state_out", True)
        H, count = self.output_size, _state_count(B, self._state_layout)
        out_shape = (T, B, H) if time_major else (B, T, H)
        for nm, shape, want in (("out", os_, out_shape), ("final_state_out", fs, (count,))):
            if shape != want:
                raise ValueError("%s has shape %s, expected %s" % (nm, shape, want))
        ia = None
        if initial_state is not None:
            ia, is_ = dv.view(initial_state, "initial_state", False)
            if is_ != (count,):
                raise ValueError("initial_state: a CUDA initial state must be the packed 1-D "
                                 "vector of %d values, got shape %s" % (count, is_))
        if sequence_lengths is not None:
            lens = _lengths(sequence_lengths)
        args = _lib.padded(_ForwardArgsAddr, lib.slstm_forward_args_init_sized)
        a = args.s
        a.memory = 1   # SLSTM_MEMORY_DEVICE
        a.data_type = data_type  # SLSTM_DATA_F32 / BF16 / F16
        a.layout = 1 if time_major else 0
        a.batch, a.time = B, T
        a.input, a.input_count = xa or None, _prod(xs)
        a.output, a.output_count = oa or None, _prod(os_)
        a.final_state, a.final_state_count = fa or None, _prod(fs)
        if ia is not None:
            a.initial_state, a.initial_state_count = ia or None, count
        if lens is not None:
            a.sequence_lengths, a.sequence_lengths_count = _addr(lens), lens.size
        dv.wait()   # producers' streams other than the session's (see _DeviceArgs)
        with self._using() as h:
            st = self._fwd(h, ctypes.byref(args))
        if st:
            check(st, "slstm_session_forward")
        return out, final_state_out

    def step(self, inputs: Any, state: Any = None,
             packed_state: bool = False) -> Tuple[np.ndarray, Any]:
        """One MultiRNNCell step: inputs [B, D] -> (h of the last layer [B, H_last], new
        state). `state` as forward's initial_state."""
        x = inputs
        if not (type(x) is np.ndarray and x.dtype is _F32 and x.flags.c_contiguous):
            x = _f32(x, "inputs")
        if x.ndim != 2:
            raise ValueError("inputs must be [batch, depth], got shape %s" % (x.shape,))
        got = self._step_rows.get(x.shape)
        if got is None:
            got = self._step_shape(x.shape)
        count, out_shape, rows, argv = got
        st = state
        if st is not None and not (type(st) is np.ndarray and st.dtype is _F32 and
                                   st.flags.c_contiguous and st.shape == (count,)):
            st = _pack_state(state, x.shape[0], self._state_layout, "state")
        out = np.empty(out_shape, _F32)
        new = np.empty(count, _F32)
        lock = self._lock
        if lock is None:
            raise self._closed()
        with lock:
            h = self._h
            if h is None:
                raise self._closed()
            b, px, nx, ps, ns, po, no, pn, nn = argv
            px.value = _addr(x) or None   # empty: the library then checks its count
            if st is None:
                ps.value, ns.value = None, 0
            else:
                ps.value, ns.value = _addr(st), st.size
            po.value = _addr(out) if out.size else None
            pn.value = _addr(new)
            rc = self._stp(h, b, px, nx, ps, ns, po, no, pn, nn)
        if rc:
            check(rc, "slstm_session_step")
        return out, (new if packed_state else _unpack_fast(new, rows))

    __call__ = forward
