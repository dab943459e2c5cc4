"""Model and Session over NumPy arrays."""

import collections
import ctypes
import os

import numpy as np

from . import _lib
from ._lib import lib
from .errors import check, InvalidArgumentError

__all__ = ["Model", "Session", "LSTMStateTuple", "FORMATS", "TENSOR_NAMES", "tensor_shapes",
           "tensors_per_layer"]

LSTMStateTuple = collections.namedtuple("LSTMStateTuple", ["c", "h"])
LSTMStateTuple.__doc__ = "One layer's state, TF's order: (c, h), each [batch, H]."

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


def _format_value(fmt):
    if isinstance(fmt, str):
        if fmt.lower() not in FORMATS:
            raise ValueError("format must be one of %s, got %r" % (sorted(FORMATS), fmt))
        return FORMATS[fmt.lower()]
    return int(fmt)


def _format_name(fmt):
    v = _format_value(fmt)
    for k, n in FORMATS.items():
        if n == v:
            return k
    raise ValueError("unknown format %r" % (fmt,))


def tensors_per_layer(fmt):
    """Tensors per layer of a format, asked of the library."""
    n = ctypes.c_int32()
    check(lib.slstm_format_tensors_per_layer(_format_value(fmt), ctypes.byref(n)),
          "slstm_format_tensors_per_layer")
    return n.value


def tensor_shapes(fmt, I, H):
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


def _to_numpy(a):
    if hasattr(a, "detach") and hasattr(a, "cpu"):   # a torch.Tensor
        a = a.detach().cpu().numpy()
    elif hasattr(a, "numpy") and not isinstance(a, np.ndarray):   # a tf.Tensor / Variable
        a = a.numpy()
    return np.asarray(a)


def _f32(a, name="array"):
    """A C-contiguous float32 view of `a` (a copy only when dtype or strides require one)."""
    arr = _to_numpy(a)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError("%s: expected numbers, got dtype %s" % (name, arr.dtype))
    return np.ascontiguousarray(arr, dtype=np.float32)


def _fptr(a):
    return a.ctypes.data_as(_lib.c_float_p) if a is not None else None


def _infer_architecture(fmt, layers):
    """(input_size, hidden_sizes) from per-layer tensors of a format."""
    name = _format_name(fmt)
    hs, I = [], None
    for l, ts in enumerate(layers):
        s0 = np.shape(ts[0])
        if name == "tf":
            H = np.shape(ts[1])[0] // 4
            i = s0[0] - H
        elif name in ("keras", "keras_cudnn"):
            H = np.shape(ts[1])[0]
            i = s0[0]
        elif name == "onnx":
            H = np.shape(ts[1])[-1]
            i = s0[-1]
        else:   # canonical, pytorch, cudnn: [4H, I], [4H, H]
            H = np.shape(ts[1])[-1]
            i = s0[-1]
        if l == 0:
            I = int(i)
        hs.append(int(H))
    return I, hs


class _Owned:
    """A library handle in self._h, released by self._destroy (kept on the object so that
    __del__ still works at interpreter exit): close() is idempotent, `with` closes, and the
    garbage collector closes what was left open."""

    _h = None

    def close(self):
        """Releases this handle. Idempotent."""
        h, self._h = self._h, None
        if h is not None:
            self._destroy(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Model(_Owned):
    """An immutable stack of LSTM layers (architecture + weights), owned by the library.

    Build one with Model.from_weights, Model.random, Model.load or the naming helpers
    (Model.from_torch_state_dict, Model.from_tf_variables). Free it with close() or a `with`
    block (or let the garbage collector do it); sessions made from it keep it alive."""

    def __init__(self, handle):
        if not handle:
            raise ValueError("Model() takes a library handle; use Model.from_weights, "
                             "Model.random or Model.load")
        self._h = ctypes.c_void_p(handle)
        self._destroy = lib.slstm_model_destroy   # kept for __del__ at interpreter exit
        n = ctypes.c_int32()
        check(lib.slstm_model_num_layers(self._h, ctypes.byref(n)), "slstm_model_num_layers")
        i = ctypes.c_int64()
        check(lib.slstm_model_input_size(self._h, ctypes.byref(i)), "slstm_model_input_size")
        hs = []
        for l in range(n.value):
            h = ctypes.c_int64()
            check(lib.slstm_model_hidden_size(self._h, l, ctypes.byref(h)),
                  "slstm_model_hidden_size")
            hs.append(h.value)
        fb = ctypes.c_float()
        check(lib.slstm_model_forget_bias(self._h, ctypes.byref(fb)), "slstm_model_forget_bias")
        self.input_size = i.value
        self.hidden_sizes = tuple(hs)
        self.forget_bias = fb.value

    # ---- construction -------------------------------------------------------------------

    @staticmethod
    def _config(input_size, hidden_sizes, forget_bias):
        cfg = _lib.padded(_lib.ModelConfig, lib.slstm_model_config_init)
        hs = (ctypes.c_int64 * max(len(hidden_sizes), 1))(*[int(h) for h in hidden_sizes])
        cfg.s.input_size = int(input_size)
        cfg.s.num_layers = len(hidden_sizes)
        cfg.s.hidden_sizes = ctypes.cast(hs, _lib.c_int64_p)
        cfg.s.forget_bias = float(forget_bias)
        return cfg, hs

    @classmethod
    def from_weights(cls, weights, format="tf", input_size=None, hidden_sizes=None,
                     forget_bias=1.0):
        """A model from framework weights. `weights`: per layer, a sequence (in the order of
        TENSOR_NAMES[format]) or a dict keyed by those names; or one flat sequence of all
        layers' tensors. Any array-like of any dtype/strides (NumPy, torch, TF) is accepted.
        input_size/hidden_sizes default to what the shapes say. forget_bias is used by the
        "tf" and "canonical" formats only (the others have none: the library sets 0)."""
        name = _format_name(format)
        names = TENSOR_NAMES[name]
        per = tensors_per_layer(name)
        weights = list(weights.values()) if isinstance(weights, dict) else list(weights)
        if weights and not isinstance(weights[0], (list, tuple, dict)):
            if len(weights) % per:
                raise ValueError("%d tensors is not a multiple of %d (%s format)"
                                 % (len(weights), per, name))
            weights = [weights[k:k + per] for k in range(0, len(weights), per)]
        layers = []
        for l, lw in enumerate(weights):
            if isinstance(lw, dict):
                missing = [n for n in names if n not in lw]
                if missing:
                    raise ValueError("layer %d: missing %s (the %s format has %s)"
                                     % (l, missing, name, list(names)))
                lw = [lw[n] for n in names]
            if len(lw) != per:
                raise ValueError("layer %d: %d tensors, the %s format has %d (%s)"
                                 % (l, len(lw), name, per, ", ".join(names)))
            layers.append([_f32(t, "layer %d %s" % (l, names[k])) for k, t in enumerate(lw)])
        if not layers:
            raise ValueError("weights: no layers")
        if input_size is None or hidden_sizes is None:
            I, hs = _infer_architecture(name, layers)
            input_size = I if input_size is None else input_size
            hidden_sizes = hs if hidden_sizes is None else hidden_sizes
        flat = [t for lw in layers for t in lw]
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
        return cls(h.value)

    @classmethod
    def random(cls, input_size, hidden_sizes, seed=0, scale=0.0, forget_bias=1.0):
        """Seeded pseudo-random weights, uniform in [-scale, scale] (0: 1/sqrt(H))."""
        cfg, _keep = cls._config(input_size, list(hidden_sizes), forget_bias)
        h = ctypes.c_void_p()
        check(lib.slstm_model_create_random(ctypes.byref(cfg), int(seed), float(scale),
                                            ctypes.byref(h)), "slstm_model_create_random")
        return cls(h.value)

    @classmethod
    def load(cls, path):
        """A model from a safetensors model file (validated by the library)."""
        h = ctypes.c_void_p()
        check(lib.slstm_model_load_file(os.fsencode(path), ctypes.byref(h)),
              "slstm_model_load_file")
        return cls(h.value)

    @classmethod
    def from_bytes(cls, data):
        """A model from a safetensors image in memory."""
        data = bytes(data)
        buf = ctypes.create_string_buffer(data, len(data)) if data else None
        h = ctypes.c_void_p()
        check(lib.slstm_model_load_memory(buf, len(data), ctypes.byref(h)),
              "slstm_model_load_memory")
        return cls(h.value)

    @classmethod
    def from_torch_state_dict(cls, state_dict, prefix=""):
        """A model from a PyTorch state_dict: one multi-layer nn.LSTM (`weight_ih_l{k}`, ...)
        or a sequence of single-layer ones (`0.weight_ih_l0`, `1.weight_ih_l0`, ...)."""
        from .naming import torch_state_dict_layers
        return cls.from_weights(torch_state_dict_layers(state_dict, prefix), "pytorch")

    @classmethod
    def from_tf_variables(cls, variables, forget_bias=1.0, scope=None):
        """A model from TF variables by checkpoint name (`.../cell_<k>/basic_lstm_cell/kernel`
        and `/bias`, or the old `/weights`, `/biases`), as a {name: array} dict or a
        checkpoint path (needs tensorflow)."""
        from .naming import tf_variable_layers
        return cls.from_weights(tf_variable_layers(variables, scope), "tf",
                                forget_bias=forget_bias)

    # ---- queries, export, files ---------------------------------------------------------

    def _handle(self):
        if self._h is None:
            raise InvalidArgumentError(1, "the model is closed", "Model")
        return self._h

    @property
    def num_layers(self):
        return len(self.hidden_sizes)

    @property
    def output_size(self):
        return self.hidden_sizes[-1]

    def state_count(self, batch):
        n = ctypes.c_size_t()
        check(lib.slstm_model_state_count(self._handle(), int(batch), ctypes.byref(n)),
              "slstm_model_state_count")
        return n.value

    def export(self, format="tf"):
        """The weights in `format`: a list, per layer, of dicts {tensor name: ndarray}."""
        name = _format_name(format)
        out, arrays = [], []
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
        check(lib.slstm_model_export(self._handle(), FORMATS[name], tensors, len(arrays)),
              "slstm_model_export")
        return out

    def to_bytes(self, source_layout=None):
        """The model as a safetensors image."""
        layout = source_layout.encode() if source_layout is not None else None
        n = ctypes.c_size_t()
        check(lib.slstm_model_file_size(self._handle(), layout, ctypes.byref(n)),
              "slstm_model_file_size")
        buf = ctypes.create_string_buffer(max(n.value, 1))
        check(lib.slstm_model_save_memory(self._handle(), layout, buf, n.value, None),
              "slstm_model_save_memory")
        return buf.raw[:n.value]

    def save(self, path, source_layout=None):
        """Writes the model as a safetensors file."""
        layout = source_layout.encode() if source_layout is not None else None
        check(lib.slstm_model_save_file(self._handle(), os.fsencode(path), layout),
              "slstm_model_save_file")

    def session(self, max_batch, max_time, backend="cpu", cpu_path="auto", num_threads=0,
                device=0, allow_tf32=False):
        """A Session on `backend` ("cpu" or "cuda") for up to max_batch x max_time."""
        return Session(self, max_batch, max_time, backend, cpu_path, num_threads, device,
                       allow_tf32)

    # ---- state packing ------------------------------------------------------------------

    def pack_state(self, state, batch):
        return _pack_state(state, batch, self.hidden_sizes)

    def unpack_state(self, packed, batch):
        return _unpack_state(packed, batch, self.hidden_sizes)

    def __repr__(self):
        return "stacklstm.Model(input_size=%d, hidden_sizes=%s, forget_bias=%g%s)" % (
            self.input_size, list(self.hidden_sizes), self.forget_bias,
            "" if self._h is not None else ", closed")


def _prod(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _cuda_view(obj, name):
    """(device pointer, shape) of a float32 C-contiguous __cuda_array_interface__ object."""
    cai = getattr(obj, "__cuda_array_interface__", None)
    if cai is None:
        raise TypeError("%s: expected a CUDA array (with __cuda_array_interface__)" % name)
    shape = tuple(cai["shape"])
    if cai.get("typestr") != "<f4":
        raise TypeError("%s: CUDA arrays must be float32 ('<f4'), got %r (no silent copies "
                        "of device arrays)" % (name, cai.get("typestr")))
    strides = cai.get("strides")
    if strides is not None:
        want, acc = [], 4
        for d in reversed(shape):
            want.append(acc)
            acc *= int(d)
        if tuple(strides) != tuple(reversed(want)) and _prod(shape) > 1:
            raise TypeError("%s: CUDA arrays must be C-contiguous (no silent copies)" % name)
    ptr = cai["data"][0]
    if cai["data"][1] and name in ("out", "final_state_out"):
        raise TypeError("%s: the CUDA array is read-only" % name)
    return ctypes.c_void_p(ptr), shape


def _pack_state(state, batch, hidden_sizes):
    """A packed (c_0, h_0, c_1, h_1, ...) float32 vector from a packed array or a sequence
    of per-layer (c, h) pairs, each [batch, H]."""
    count = sum(2 * batch * h for h in hidden_sizes)
    if isinstance(state, (list, tuple)) and len(state) == len(hidden_sizes) and all(
            isinstance(s, (list, tuple)) and len(s) == 2 for s in state):
        parts = []
        for l, ((c, h), H) in enumerate(zip(state, hidden_sizes)):
            for nm, a in (("c", c), ("h", h)):
                a = _f32(a, "state[%d].%s" % (l, nm))
                if a.shape != (batch, H) and a.size != batch * H:
                    raise ValueError("state[%d].%s has shape %s, expected (%d, %d)"
                                     % (l, nm, a.shape, batch, H))
                parts.append(a.reshape(-1))
        return np.ascontiguousarray(np.concatenate(parts))
    packed = _f32(state, "state").reshape(-1)
    if packed.size != count:
        raise ValueError("packed state has %d values, expected %d" % (packed.size, count))
    return packed


def _unpack_state(packed, batch, hidden_sizes):
    out, off = [], 0
    for H in hidden_sizes:
        n = batch * H
        c = packed[off:off + n].reshape(batch, H)
        h = packed[off + n:off + 2 * n].reshape(batch, H)
        out.append(LSTMStateTuple(c, h))
        off += 2 * n
    return out


class Session(_Owned):
    """A model bound to a backend with workspace for max_batch x max_time. One thread at a
    time; free with close() or a `with` block."""

    def __init__(self, model, max_batch, max_time, backend="cpu", cpu_path="auto",
                 num_threads=0, device=0, allow_tf32=False):
        self._h = None
        self._destroy = lib.slstm_session_destroy
        opt = _lib.padded(_lib.SessionOptions, lib.slstm_session_options_init)
        if isinstance(backend, str):
            if backend.lower() not in BACKENDS:
                raise ValueError("backend must be one of %s, got %r" % (sorted(BACKENDS), backend))
            backend = BACKENDS[backend.lower()]
        if isinstance(cpu_path, str):
            if cpu_path.lower() not in CPU_PATHS:
                raise ValueError("cpu_path must be one of %s, got %r"
                                 % (sorted(CPU_PATHS), cpu_path))
            cpu_path = CPU_PATHS[cpu_path.lower()]
        opt.s.backend = int(backend)
        opt.s.max_batch = int(max_batch)
        opt.s.max_time = int(max_time)
        opt.s.cpu_path = int(cpu_path)
        opt.s.num_threads = int(num_threads)
        opt.s.device = int(device)
        opt.s.allow_tf32 = 1 if allow_tf32 else 0
        h = ctypes.c_void_p()
        check(lib.slstm_session_create(model._handle(), ctypes.byref(opt), ctypes.byref(h)),
              "slstm_session_create")
        self._h = h
        self.input_size = model.input_size
        self.hidden_sizes = model.hidden_sizes
        self.max_batch, self.max_time = int(max_batch), int(max_time)

    @property
    def backend(self):
        b = ctypes.c_int()
        check(lib.slstm_session_backend(self._handle(), ctypes.byref(b)), "slstm_session_backend")
        return {v: k for k, v in BACKENDS.items()}.get(b.value, b.value)

    def _handle(self):
        if self._h is None:
            raise InvalidArgumentError(1, "the session is closed", "Session")
        return self._h

    def forward(self, inputs, initial_state=None, sequence_lengths=None, time_major=False,
                packed_state=False, out=None, final_state_out=None):
        """tf.nn.dynamic_rnn: returns (outputs, final_state). inputs [B, T, D] ([T, B, D] when
        time_major), any dtype/strides. initial_state: None (zeros), per-layer (c, h) pairs or
        a packed vector. final_state: a list of LSTMStateTuple(c, h) per layer, or the packed
        vector when packed_state=True.

        GPU arrays: when `inputs` exposes __cuda_array_interface__ (CuPy, PyTorch CUDA
        tensors, Numba...), the call runs on device memory without copies: `out`
        ([B, T, H_last]) and `final_state_out` (packed, state_count(B) floats) must then be
        given as CUDA arrays too (and initial_state, if any, as a packed CUDA array); all
        float32 and C-contiguous, or TypeError (nothing is copied silently). They are
        returned as (out, final_state_out)."""
        if hasattr(inputs, "__cuda_array_interface__"):
            return self._forward_device(inputs, initial_state, sequence_lengths, time_major,
                                        out, final_state_out)
        x = _f32(inputs, "inputs")
        if x.ndim != 3:
            raise ValueError("inputs must have 3 dims ([B, T, D] or [T, B, D]), got shape %s"
                             % (x.shape,))
        T, B = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
        H = self.hidden_sizes[-1]
        count = sum(2 * B * h for h in self.hidden_sizes)
        out = np.empty((T, B, H) if time_major else (B, T, H), dtype=np.float32)
        final = np.empty(count, dtype=np.float32)
        args = _lib.padded(_lib.ForwardArgs, lib.slstm_forward_args_init)
        a = args.s
        a.layout = 1 if time_major else 0
        a.batch, a.time = B, T
        a.input, a.input_count = (_fptr(x) if x.size else None), x.size
        init = lens = None
        if initial_state is not None:
            init = _pack_state(initial_state, B, self.hidden_sizes)
            a.initial_state, a.initial_state_count = _fptr(init), init.size
        if sequence_lengths is not None:
            lens = np.ascontiguousarray(_to_numpy(sequence_lengths).reshape(-1))
            if lens.size and not np.issubdtype(lens.dtype, np.integer):
                raise TypeError("sequence_lengths must be integers, got dtype %s" % lens.dtype)
            if lens.size and (lens.min() < np.iinfo(np.int32).min or
                              lens.max() > np.iinfo(np.int32).max):
                raise ValueError("sequence_lengths out of int32 range")
            lens = lens.astype(np.int32)
            a.sequence_lengths = lens.ctypes.data_as(_lib.c_int32_p)
            a.sequence_lengths_count = lens.size
        if out.size:
            a.output, a.output_count = _fptr(out), out.size
        a.final_state, a.final_state_count = _fptr(final), final.size
        check(lib.slstm_session_forward(self._handle(), ctypes.byref(args)),
              "slstm_session_forward")
        return out, (final if packed_state else _unpack_state(final, B, self.hidden_sizes))

    def _forward_device(self, inputs, initial_state, sequence_lengths, time_major, out,
                        final_state_out):
        x = _cuda_view(inputs, "inputs")
        if len(x[1]) != 3:
            raise ValueError("inputs must have 3 dims, got shape %s" % (x[1],))
        T, B = (x[1][0], x[1][1]) if time_major else (x[1][1], x[1][0])
        if out is None or final_state_out is None:
            raise TypeError("CUDA inputs need `out` and `final_state_out` CUDA arrays (the "
                            "package allocates no device memory)")
        o, f = _cuda_view(out, "out"), _cuda_view(final_state_out, "final_state_out")
        args = _lib.padded(_lib.ForwardArgs, lib.slstm_forward_args_init)
        a = args.s
        a.memory = 1   # SLSTM_MEMORY_DEVICE
        a.layout = 1 if time_major else 0
        a.batch, a.time = B, T
        a.input, a.input_count = ctypes.cast(x[0], _lib.c_float_p), _prod(x[1])
        a.output, a.output_count = ctypes.cast(o[0], _lib.c_float_p), _prod(o[1])
        a.final_state = ctypes.cast(f[0], _lib.c_float_p)
        a.final_state_count = _prod(f[1])
        if initial_state is not None:
            i = _cuda_view(initial_state, "initial_state")
            a.initial_state = ctypes.cast(i[0], _lib.c_float_p)
            a.initial_state_count = _prod(i[1])
        lens = None
        if sequence_lengths is not None:
            lens = np.ascontiguousarray(_to_numpy(sequence_lengths), dtype=np.int32).reshape(-1)
            a.sequence_lengths = lens.ctypes.data_as(_lib.c_int32_p)
            a.sequence_lengths_count = lens.size
        check(lib.slstm_session_forward(self._handle(), ctypes.byref(args)),
              "slstm_session_forward")
        return out, final_state_out

    def step(self, inputs, state=None, packed_state=False):
        """One MultiRNNCell step: inputs [B, D] -> (h of the last layer [B, H_last], new
        state)."""
        x = _f32(inputs, "inputs")
        if x.ndim != 2:
            raise ValueError("inputs must be [batch, depth], got shape %s" % (x.shape,))
        B = x.shape[0]
        st = None if state is None else _pack_state(state, B, self.hidden_sizes)
        out = np.empty((B, self.hidden_sizes[-1]), dtype=np.float32)
        new = np.empty(sum(2 * B * h for h in self.hidden_sizes), dtype=np.float32)
        check(lib.slstm_session_step(self._handle(), B, _fptr(x), x.size, _fptr(st),
                                     0 if st is None else st.size, _fptr(out), out.size,
                                     _fptr(new), new.size), "slstm_session_step")
        return out, (new if packed_state else _unpack_state(new, B, self.hidden_sizes))

    __call__ = forward

