"""stacklstm.torch: inference-only drop-ins for ``torch.nn.LSTM`` (and ``torch.nn.GRU``, see
the class GRU) running on libstacklstm.

    import torch, stacklstm.torch
    ref = torch.nn.LSTM(16, 32, num_layers=2, batch_first=True)
    lstm = stacklstm.torch.LSTM.from_torch(ref)        # or .from_state_dict(sd, ...)
    with torch.no_grad():
        output, (h_n, c_n) = lstm(x)                    # what ref(x) returns

It takes and returns torch tensors with nn.LSTM's conventions: ``input`` [T, B, D]
([B, T, D] with batch_first; [T, D] unbatched), ``hx = (h_0, c_0)`` each [layers, B, H] (the
*(h, c)* order; the package's numpy API uses TF's (c, h)), ``output`` [T, B, H] / [B, T, H]
and ``(h_n, c_n)`` each [layers, B, H]; the input may also be a DLPack capsule or
``__dlpack__`` object, or a ``__cuda_array_interface__`` array (CuPy), taken by torch without
a copy (the results are torch tensors); a ``PackedSequence`` input gives a PackedSequence
output and each sequence's state at its own last step, as nn.LSTM does.

CPU tensors are read and written in place (float32 and contiguous: no copy; a strided input
is made contiguous first). CUDA tensors run on a CUDA session of the tensor's device created
on ``torch.cuda.current_stream()`` (device pointers, no host round trip; one session is kept
per device, stream and maximum shape). On torch's default stream (handle 0, the legacy
default stream) the session uses a stream of its own, which CUDA orders after the default
stream's work, and the call returns when the results are ready; on any other stream the
call is queued on it like a torch kernel. The numbers are nn.LSTM's within the library's
accuracy rule (README, "Accuracy"): the same cell in float32, summed in another order.

``bidirectional=True`` and ``proj_size`` are supported (h_0 / h_n then [num_layers *
directions, B, proj_size or H], forward direction first, as nn.LSTM). On CUDA tensors such a
module, and the GRU module, run on the library's CUDA generic path, which runs only when the
keyed setting cuda.generic is on (it has not yet run on a GPU: docs/cuda-generic.md): set
``module.config = {"cuda.generic": "on"}`` (or SLSTM_CUDA_GENERIC=1); without it such a call
raises stacklstm.UnsupportedError saying so. ``module.config`` is Model.session's config for
every session the module makes. What nn.LSTM does and this module does not is refused, never
approximated: a dtype
other than float32, autograd (this is inference only: inputs that require grad with grad
enabled are an error), and dropout in training mode (nn.LSTM's
dropout acts in training only; in eval it is accepted and does nothing, as in nn.LSTM).
bias=False gives zero biases, as nn.LSTM. Our extension: ``hidden_size`` may be a list, one
size per layer; the state is then a list of per-layer (h, c) pairs, each [1, B, H_l].

``state_dict()`` uses nn.LSTM's names (``weight_ih_l0``, ...), so nn.LSTM loads it and
``load_state_dict`` takes an nn.LSTM's; the library keeps one bias per layer, so
``bias_ih_l<k>`` holds the sum of PyTorch's two biases and ``bias_hh_l<k>`` zeros (the same
network). The module holds no torch parameters or buffers: ``.to()``/``.cuda()`` move
nothing, and it runs wherever its input is. It pickles (and ``torch.save``s) with its
weights; its sessions are made again on first use.

Importing this module imports torch (``import stacklstm`` never does).
"""

from __future__ import annotations

import math
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar, Union, cast

try:
    import torch
    from torch import nn
except ImportError as _e:   # pragma: no cover (torch is installed where this is tested)
    raise ImportError("stacklstm.torch needs PyTorch (pip install torch); the rest of "
                      "stacklstm works without it") from _e

import numpy as np

from ._ints import checked_int
from .model import Model, Session, _C, _F32, _H
from .naming import to_torch_state_dict, torch_state_dict_layers

__all__ = ["LSTM", "GRU"]

State = Union[Tuple[torch.Tensor, torch.Tensor], List[Tuple[torch.Tensor, torch.Tensor]]]

_M = TypeVar("_M", bound="_Module")

_MAX_SESSIONS = 8   # sessions kept per module (the largest per device and stream survive)


def _pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def _arg(t: torch.Tensor) -> Any:
    """What Session.forward takes for a tensor: a NumPy view of a CPU tensor's memory, a CUDA
    tensor itself (read through __dlpack__: device pointers, ordered on the session's
    stream)."""
    return t.numpy() if t.device.type == "cpu" else t


Pieces = Dict[Tuple[int, int, int], torch.Tensor]   # (layer, direction, part) -> [B, width]


def _pack(layout: Any, pieces: Pieces, B: int, device: torch.device) -> torch.Tensor:
    """The packed state vector (float32, on `device`) holding `pieces`, each at the offset
    the library gives for it (Model._state_layout); parts not given are zero."""
    packed = torch.zeros(layout.count(B), dtype=torch.float32, device=device)
    for (l, d, part), t in pieces.items():
        off, width = layout.pieces[l][d][part]
        packed[B * off:B * (off + width)].view(B, width).copy_(t)
    return packed


def _unpack(layout: Any, packed: torch.Tensor, B: int) -> Pieces:
    """Every piece of a packed state vector as a [B, width] view of it."""
    return {(l, d, part): packed[B * off:B * (off + width)].view(B, width)
            for l, dirs in enumerate(layout.pieces) for d, parts in enumerate(dirs)
            for part, (off, width) in parts.items()}


def _check_state_tensor(name: str, t: torch.Tensor, device: torch.device) -> None:
    if t.device != device:
        raise ValueError("hx: %s is on %s, input on %s" % (name, t.device, device))
    if t.dtype != torch.float32:
        raise TypeError("hx: %s must be float32, got %s" % (name, t.dtype))


def _lstm_pieces(pairs: List[Tuple[torch.Tensor, torch.Tensor]]) -> Pieces:
    """Per-layer (h, c) [B, H_l] of a one-direction stack as state pieces."""
    out: Pieces = {}
    for l, (h, c) in enumerate(pairs):
        out[(l, 0, _H)], out[(l, 0, _C)] = h, c
    return out


class _Module:
    """What LSTM and GRU share: the model, sessions made on first need per device, stream
    and maximum shape, the sessions' `config`, pickling without sessions, and one call of
    a session on torch tensors (in place, on the tensors' device)."""

    model: Model
    batch_first: bool
    bias: bool
    dropout: float
    num_layers: int
    input_size: int
    training: bool

    def _setup(self, model: Model, batch_first: bool, dropout: float, bias: bool) -> None:
        raise NotImplementedError

    @classmethod
    def _wrap(cls: Type[_M], model: Model, batch_first: bool, dropout: float,
              bias: bool) -> _M:
        self = cls.__new__(cls)
        nn.Module.__init__(self)   # type: ignore[arg-type]
        self._setup(model, batch_first, dropout, bias)
        return self

    @classmethod
    def from_model(cls: Type[_M], model: Model, batch_first: bool = False) -> _M:
        """Around an existing stacklstm.Model (e.g. Model.load("m.safetensors")) of the torch
        module's layers; the model is shared, not copied."""
        if not isinstance(model, Model):
            raise TypeError("%s.from_model needs a stacklstm.Model, got %s"
                            % (cls.__name__, type(model).__name__))
        return cls._wrap(model, batch_first, 0.0, True)

    def _input(self, input: Any, hx: Any
               ) -> Tuple[torch.Tensor, int, int, bool, bool, Optional[np.ndarray]]:
        """What forward does first, for both modules: (x, B, T, unbatched, packed, lengths)
        from the input (a tensor, DLPack or CUDA array, or a PackedSequence: padded, with
        its lengths), checked as the torch module checks it; x is [T, B, D] ([B, T, D] with
        batch_first), an unbatched input given a batch of one."""
        me, ref = "stacklstm.torch." + type(self).__name__, "nn." + type(self).__name__
        if torch.jit.is_tracing():
            raise RuntimeError("%s cannot be traced (torch.jit.trace, torch.onnx.export's "
                               "tracer): the library computes outside the graph, so a trace "
                               "would replay this call's numbers for every input; export the "
                               "weights instead (stacklstm.naming.to_onnx, state_dict())" % me)
        packed = isinstance(input, nn.utils.rnn.PackedSequence)
        if self.training and self.dropout > 0 and self.num_layers > 1:
            raise RuntimeError("%s is inference-only: %s applies dropout=%g between layers in "
                               "training mode, which this module does not; call .eval()"
                               % (me, ref, self.dropout))
        lengths = None
        if packed:
            x, lens = nn.utils.rnn.pad_packed_sequence(input, batch_first=self.batch_first)
            lengths = lens.to(torch.int64).numpy()
        else:
            x = _as_tensor(input)
        if torch.is_grad_enabled() and (x.requires_grad or any(
                t.requires_grad for t in _state_tensors(hx))):
            raise RuntimeError("%s is inference-only (no autograd): an input requires grad; "
                               "run under torch.no_grad() or torch.inference_mode(), or "
                               "detach it" % me)
        if x.dtype != torch.float32:
            raise TypeError("input must be float32 (the module's weights are), got %s"
                            % (x.dtype,))
        if x.dim() not in (2, 3):
            raise ValueError("input must be [T, B, D] ([B, T, D] with batch_first) or [T, D] "
                             "unbatched, got shape %s" % (tuple(x.shape),))
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0 if self.batch_first else 1)
        if x.shape[-1] != self.input_size:
            raise ValueError("input.size(-1) must be %d (input_size), got %d"
                             % (self.input_size, x.shape[-1]))
        B, T = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        if T == 0 and not packed:
            raise ValueError("input has sequence length 0 (%s refuses it too)" % ref)
        return x, B, T, unbatched, packed, lengths

    def _output(self, y: torch.Tensor, input: Any, packed: bool, unbatched: bool) -> Any:
        """The output as the torch module returns it: a PackedSequence for a packed input,
        without the batch dimension for an unbatched one."""
        if packed:
            return _repack(y, input, self.batch_first)
        return y.squeeze(0 if self.batch_first else 1) if unbatched else y

    def _init_sessions(self) -> None:
        self._sessions: Dict[Tuple[Any, ...], Session] = {}
        self._sessions_lock = threading.Lock()
        self._config: Any = None

    @property
    def config(self) -> Any:
        """Model.session's `config` for the sessions this module makes (None, a string
        "key=value,..." or a dict of keyed settings), e.g. {"cuda.generic": "on"}: the
        library's CUDA backend runs GRU, bidirectional and projected stacks on its generic
        path only when that setting is on (docs/cuda-generic.md). Setting it drops the
        sessions made so far."""
        return self._config

    @config.setter
    def config(self, value: Any) -> None:
        if value is not None and not isinstance(value, (str, dict)):
            raise TypeError("config must be None, a string or a dict of keyed settings, got "
                            "%s" % type(value).__name__)
        with self._sessions_lock:
            self._sessions = {}
            self._config = None if value is None else (
                value if isinstance(value, str) else dict(value))

    def _keep(self, name: str) -> bool:
        """Whether a state_dict key is one of this module's: a bias=False module has no
        bias_* keys, as nn.LSTM(bias=False) has none."""
        return bool(self.bias) or not name.rsplit(".", 1)[-1].startswith("bias_")

    def _given(self, state_dict: Dict[str, Any], prefix: str
               ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """(every key below `prefix`, the keys this module takes), prefix cut."""
        given = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        return given, {k: v for k, v in given.items() if self._keep(k)}

    def _unexpected_keys(self, mine: Dict[str, Any], prefix: str) -> List[str]:
        """The keys of `mine` (a state_dict below `prefix`, prefix cut) that are not this
        module's: what nn.Module.load_state_dict(strict=True) refuses as unexpected."""
        own = set(self.state_dict().keys())   # type: ignore[attr-defined]
        return [prefix + k for k in mine if k not in own]

    def _replace_model(self, model: Model) -> None:
        # The old sessions are dropped, not closed: a call running in another thread keeps
        # its session (and that session its model) until it returns; the garbage collector
        # frees them after.
        with self._sessions_lock:
            self._sessions = {}
            self.model = model   # same architecture (checked by the caller): same layout

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_sessions"] = {}
        del state["_sessions_lock"]
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        state.setdefault("_config", None)   # pickled before modules had a config
        super().__setstate__(state)   # type: ignore[misc]
        self._sessions_lock = threading.Lock()

    def _session(self, device: torch.device, B: int, T: int) -> Session:
        """A session for `device` (on the current CUDA stream for a CUDA device) with room for
        B x T, made on first need with maxima rounded up to powers of two; a larger one
        replaces the smaller ones of its device and stream (they are dropped, not closed, so
        that a call still running on one in another thread finishes)."""
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            stream = torch.cuda.current_stream(index).cuda_stream
            where: Tuple[Any, ...] = ("cuda", index, int(stream))
        elif device.type == "cpu":
            where = ("cpu",)
        else:
            raise TypeError("stacklstm.torch.%s runs on CPU and CUDA tensors, got a %s "
                            "tensor" % (type(self).__name__, device.type))
        with self._sessions_lock:
            for key, s in self._sessions.items():
                if key[:-2] == where and key[-2] >= B and key[-1] >= T:
                    return s
            mb = max([_pow2(B)] + [k[-2] for k in self._sessions if k[:-2] == where])
            mt = max([_pow2(T)] + [k[-1] for k in self._sessions if k[:-2] == where])
            if where[0] == "cuda":
                s = self.model.session(mb, mt, backend="cuda", device=where[1],
                                       cuda_stream=where[2], config=self._config)
            else:
                s = self.model.session(mb, mt, config=self._config)
            stale = [k for k in self._sessions if k[:-2] == where]
            if len(self._sessions) - len(stale) >= _MAX_SESSIONS:
                stale = list(self._sessions)
            for k in stale:
                del self._sessions[k]
            self._sessions[where + (mb, mt)] = s
        return s

    def _run(self, session: Session, x: torch.Tensor, pieces: Optional[Pieces], B: int,
             T: int, lengths: Optional[np.ndarray]) -> Tuple[torch.Tensor, Pieces]:
        """One Session.forward over torch tensors on x's device (x contiguous float32): the
        output tensor and the final state's pieces (views of one packed tensor). On a CUDA
        device everything, the packing of `pieces` included, is queued on the current
        stream, which the session was made on: no host round trip."""
        layout = self.model._state_layout
        dev = x.device
        W = self.model.output_size
        out = torch.empty((B, T, W) if self.batch_first else (T, B, W), dtype=torch.float32,
                          device=dev)
        final = torch.empty(layout.count(B), dtype=torch.float32, device=dev)
        if B == 0:   # an empty batch: empty outputs and states, as torch's modules give
            return out, _unpack(layout, final, B)
        init = None if pieces is None else _arg(_pack(layout, pieces, B, dev))
        session.forward(_arg(x), initial_state=init, sequence_lengths=lengths,
                        time_major=not self.batch_first, out=_arg(out),
                        final_state_out=_arg(final))
        return out, _unpack(layout, final, B)


class LSTM(_Module, nn.Module):
    """nn.LSTM's interface over a stacklstm.Model (inference only; see the module doc).

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None)`` makes one with
    nn.LSTM's initialisation (uniform in ±1/sqrt(hidden_size), drawn from torch's RNG);
    ``LSTM.from_torch(nn_lstm)``, ``LSTM.from_state_dict(state_dict)`` and
    ``LSTM.from_model(model)`` wrap trained weights. ``hidden_size`` may be a list of per-layer
    sizes (then num_layers is its length). ``device``: accepted for signature compatibility;
    the module holds no tensors and runs where its input is. ``dtype``: None or float32."""

    def __init__(self, input_size: int, hidden_size: Union[int, Sequence[int]],
                 num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        # Integers, as nn.LSTM's constructor wants them (a float is a TypeError, not cut).
        input_size = checked_int(input_size, "input_size")
        num_layers = checked_int(num_layers, "num_layers")
        proj_size = checked_int(proj_size, "proj_size")
        if isinstance(hidden_size, (list, tuple)):
            hidden_size = [checked_int(h, "hidden_size[%d]" % i)
                           for i, h in enumerate(hidden_size)]
        else:
            hidden_size = checked_int(hidden_size, "hidden_size")
        sizes = self._check_options(hidden_size, num_layers, dropout, bidirectional,
                                    proj_size, dtype)
        # nn.LSTM.reset_parameters: every weight and bias uniform in ±1/sqrt(hidden_size).
        gen_state = torch.randint(0, 2 ** 62, (1,)).item()
        rng = np.random.default_rng(int(gen_state))
        if bidirectional or proj_size:
            H, P = sizes[0], int(proj_size)
            k = 1.0 / math.sqrt(H)
            sd: Dict[str, np.ndarray] = {}
            I = int(input_size)
            for l in range(len(sizes)):
                for suf in (["", "_reverse"] if bidirectional else [""]):
                    shapes = [("weight_ih", (4 * H, I)), ("weight_hh", (4 * H, P or H)),
                              ("bias_ih", (4 * H,)), ("bias_hh", (4 * H,))]
                    if P:
                        shapes.append(("weight_hr", (P, H)))
                    for name, shape in shapes:
                        a = rng.uniform(-k, k, shape).astype(np.float32)
                        if name.startswith("bias") and not bias:
                            a[:] = 0
                        sd["%s_l%d%s" % (name, l, suf)] = a
                I = (P or H) * (2 if bidirectional else 1)
            self._setup(Model.from_torch_state_dict(sd), batch_first, dropout, bias)
            return
        layers = []
        I = int(input_size)
        for H in sizes:
            k = 1.0 / math.sqrt(H)
            w = [rng.uniform(-k, k, shape).astype(np.float32)
                 for shape in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
            if not bias:
                w[2][:] = 0
                w[3][:] = 0
            layers.append(w)
            I = H
        self._setup(Model.from_weights(layers, "pytorch", input_size=int(input_size),
                                       hidden_sizes=sizes), batch_first, dropout, bias)

    # ---- construction ---------------------------------------------------------------------

    @staticmethod
    def _check_options(hidden_size: Union[int, Sequence[int]], num_layers: int,
                       dropout: float, bidirectional: bool, proj_size: int,
                       dtype: Any) -> List[int]:
        if (bidirectional or proj_size) and isinstance(hidden_size, (list, tuple)):
            raise ValueError("stacklstm.torch.LSTM: per-layer hidden sizes go with "
                             "bidirectional=False and proj_size=0 only")
        if int(proj_size) < 0 or (proj_size and int(proj_size) >= int(
                hidden_size)):   # type: ignore[arg-type]
            raise ValueError("proj_size has to be a positive integer smaller than "
                             "hidden_size (nn.LSTM's rule), got %r" % (proj_size,))
        if dtype is not None and dtype != torch.float32:
            raise TypeError("stacklstm.torch.LSTM: dtype %s is not supported (the library "
                            "computes in float32)" % (dtype,))
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError("dropout must be in [0, 1], got %r" % (dropout,))
        if isinstance(hidden_size, (list, tuple)):
            sizes = [int(h) for h in hidden_size]
            if num_layers not in (1, len(sizes)):
                raise ValueError("hidden_size lists %d layers but num_layers=%d"
                                 % (len(sizes), num_layers))
        else:
            if int(num_layers) < 1:
                raise ValueError("num_layers must be >= 1, got %r" % (num_layers,))
            sizes = [int(hidden_size)] * int(num_layers)   # type: ignore[arg-type]
        if not sizes or min(sizes) < 1:
            raise ValueError("hidden sizes must be >= 1, got %s" % (sizes,))
        return sizes

    def _setup(self, model: Model, batch_first: bool, dropout: float, bias: bool) -> None:
        layers = model.layers
        first = layers[0]
        # Stacks of plain forward LSTM layers (any sizes: this module's extension), or what
        # one nn.LSTM is: LSTM layers of one size, direction and projection.
        self._general = not all(L.is_basic for L in layers)
        for l, L in enumerate(layers):
            nn_lstm = (L.cell == "lstm" and L.direction != "reverse" and not L.residual and
                       not L.peepholes and L.cell_clip == 0 and L.proj_clip == 0)
            if not nn_lstm or (self._general and (L.hidden_size, L.direction, L.proj_size) !=
                               (first.hidden_size, first.direction, first.proj_size)):
                raise ValueError("stacklstm.torch.LSTM: layer %d is %r; this module stands for "
                                 "nn.LSTM: LSTM layers without peepholes, clipping or residual "
                                 "connections, of one size, direction and projection (run "
                                 "other stacks with Model.session)" % (l, L))
        self.model = model
        self.input_size = model.input_size
        hs = list(model.hidden_sizes)
        self.hidden_sizes = tuple(hs)
        self.hidden_size: Union[int, List[int]] = hs[0] if len(set(hs)) == 1 else hs
        self.num_layers = len(hs)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = first.direction == "bidirectional"
        self.proj_size = first.proj_size
        self.mode = "LSTM"
        self._init_sessions()
        # Whether the packed state is c_0, h_0, c_1, h_1, ... of one size back to back (the
        # library's layout today; the offsets are asked, not assumed).
        rows = model._state_layout.rows
        self._interleaved = not self._general and len(set(hs)) == 1 and all(
            c == 2 * l * hs[0] and h == c + hs[0] for l, (c, h, _) in enumerate(rows)) and \
            model._state_layout.row_floats == 2 * hs[0] * len(hs)

    @classmethod
    def from_torch(cls, lstm: nn.Module) -> "LSTM":
        """The same network as `lstm` (a torch.nn.LSTM), with its batch_first, dropout, bias
        and training flag. Its weights are copied (later changes to `lstm` do not show)."""
        if not isinstance(lstm, nn.LSTM):
            raise TypeError("LSTM.from_torch needs a torch.nn.LSTM, got %s (a state_dict: "
                            "LSTM.from_state_dict)" % type(lstm).__name__)
        cls._check_options(lstm.hidden_size, lstm.num_layers, lstm.dropout,
                           lstm.bidirectional, getattr(lstm, "proj_size", 0), None)
        for name, p in lstm.named_parameters():
            if p.dtype != torch.float32:
                raise TypeError("LSTM.from_torch: %s is %s; convert the nn.LSTM with "
                                ".float() first (the library computes in float32)"
                                % (name, p.dtype))
        model = Model.from_torch_state_dict(lstm.state_dict())
        out = cls._wrap(model, lstm.batch_first, lstm.dropout, lstm.bias)
        out.train(lstm.training)
        return out

    @classmethod
    def from_state_dict(cls, state_dict: Any, batch_first: bool = False, prefix: str = "",
                        dropout: float = 0.0) -> "LSTM":
        """From an nn.LSTM's state_dict (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
        ``bias_hh_l0``, ...; PyTorch's two biases are added by the library) or that of a
        sequence of single-layer nn.LSTMs (``0.weight_ih_l0``, ``1.weight_ih_l0``, ...,
        hidden sizes may then differ), below `prefix`. A state_dict without biases is
        bias=False (zeros). The architecture is read from the tensors' shapes."""
        keys = [k for k in state_dict.keys() if k.startswith(prefix)] \
            if hasattr(state_dict, "keys") else []
        bias = any("bias_ih_l" in k or "bias_hh_l" in k for k in keys) or not keys
        cls._check_options(1, 1, dropout, False, 0, None)
        return cls._wrap(Model.from_torch_state_dict(state_dict, prefix), batch_first, dropout,
                         bias)

    def extra_repr(self) -> str:
        s = "%d, %s, num_layers=%d" % (self.input_size, self.hidden_size, self.num_layers)
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += ", dropout=%g" % self.dropout
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += ", proj_size=%d" % self.proj_size
        return s + ", backend=libstacklstm"

    def flatten_parameters(self) -> None:
        """nn.LSTM's cuDNN weight compaction; nothing to do here (the library owns the
        weights in its own layout)."""

    # ---- state_dict: nn.LSTM's names, so that either module loads the other's ----------

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str,
                            keep_vars: bool) -> None:
        if self._general:
            for name, a in to_torch_state_dict(self.model, single_module=True).items():
                if self._keep(name):
                    destination[prefix + name] = torch.from_numpy(a)
            return
        for l, layer in enumerate(self.model.export("pytorch")):
            for name, a in layer.items():
                if self._keep(name):
                    destination[prefix + "%s_l%d" % (name, l)] = torch.from_numpy(a)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str,
                              local_metadata: Any, strict: bool, missing_keys: List[str],
                              unexpected_keys: List[str], error_msgs: List[str]) -> None:
        given, mine = self._given(state_dict, prefix)
        try:
            model = Model.from_torch_state_dict(mine)
        except (ValueError, TypeError) as e:
            error_msgs.append("stacklstm.torch.LSTM: %s" % e)
            return
        if (model.input_size, model.layers) != (self.input_size, self.model.layers):
            if not self._general and all(L.is_basic for L in model.layers):
                error_msgs.append("stacklstm.torch.LSTM: the state_dict is an LSTM of input "
                                  "%d and hidden sizes %s, this module has input %d and %s"
                                  % (model.input_size, list(model.hidden_sizes),
                                     self.input_size, list(self.hidden_sizes)))
            else:   # a GRU, bidirectional or projected: its layers say what it is
                error_msgs.append("stacklstm.torch.LSTM: the state_dict is a stack of input "
                                  "%d and layers %s, this module has input %d and %s"
                                  % (model.input_size, list(model.layers), self.input_size,
                                     list(self.model.layers)))
            return
        # As nn.Module's own loader (which always passes strict=True here and decides
        # later): the weights load, and keys that are not this module's are reported.
        unexpected_keys.extend(self._unexpected_keys(given, prefix))
        self._replace_model(model)

    # ---- forward --------------------------------------------------------------------------

    def forward(self, input: Any, hx: Optional[State] = None) -> Tuple[Any, State]:
        """nn.LSTM.forward: ``(output, (h_n, c_n))`` (see the module doc for shapes)."""
        x, B, T, unbatched, packed, lengths = self._input(input, hx)
        if self._general:
            return self._forward_general(input, x, hx, B, T, unbatched, packed, lengths)
        h0c0 = self._initial_state(hx, B, unbatched, x.device)
        x = x.detach()
        if not x.is_contiguous():
            x = x.contiguous()
        session = self._session(x.device, B, T)
        if x.device.type != "cpu" or B == 0:
            out, final = self._run_cuda(session, x, h0c0, B, T, lengths)
        else:
            out, final = self._run_cpu(session, x, h0c0, B, lengths)
        h_n, c_n = final
        out = self._output(out, input, packed, unbatched)
        if unbatched:
            h_n = [h.squeeze(1) for h in h_n] if isinstance(h_n, list) else h_n.squeeze(1)
            c_n = [c.squeeze(1) for c in c_n] if isinstance(c_n, list) else c_n.squeeze(1)
        if isinstance(h_n, list):
            return out, [(h, c) for h, c in zip(h_n, c_n)]
        return out, (h_n, c_n)

    def _forward_general(self, input: Any, x: torch.Tensor, hx: Any, B: int, T: int,
                         unbatched: bool, packed: bool, lengths: Optional[np.ndarray]
                         ) -> Tuple[Any, Any]:
        """forward for bidirectional and projected LSTMs: h_0 / c_0 [num_layers *
        directions, B, proj_size or H / H], forward direction first (nn.LSTM's order)."""
        dirs = 2 if self.bidirectional else 1
        rows = self.num_layers * dirs
        H, R = self.hidden_sizes[0], self.proj_size or self.hidden_sizes[0]
        pieces: Optional[Pieces] = None
        if hx is not None:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2 and
                    all(isinstance(t, torch.Tensor) for t in hx)):
                raise TypeError("hx must be a tuple (h_0, c_0) of tensors (nn.LSTM's order: "
                                "h first)")
            pieces = {}
            for nm, t, width, part in (("h_0", hx[0], R, _H), ("c_0", hx[1], H, _C)):
                want = (rows, width) if unbatched else (rows, B, width)
                if tuple(t.shape) != want:
                    raise ValueError("hx: %s has shape %s, expected %s = [num_layers * "
                                     "directions, %s%s]" % (nm, tuple(t.shape), want,
                                                            "" if unbatched else "batch, ",
                                                            "proj_size" if nm == "h_0" and
                                                            self.proj_size else "hidden_size"))
                _check_state_tensor(nm, t, x.device)
                t = t.detach()
                for k in range(rows):
                    pieces[(k // dirs, k % dirs, part)] = t[k] if not unbatched else t[k][None]
        x = x.detach()
        if not x.is_contiguous():
            x = x.contiguous()
        session = self._session(x.device, B, T)
        y, final = self._run(session, x, pieces, B, T, lengths)
        hn = torch.stack([final[(k // dirs, k % dirs, _H)] for k in range(rows)])
        cn = torch.stack([final[(k // dirs, k % dirs, _C)] for k in range(rows)])
        y = self._output(y, input, packed, unbatched)
        if unbatched:
            hn, cn = hn.squeeze(1), cn.squeeze(1)
        return y, (hn, cn)

    def _initial_state(self, hx: Optional[State], B: int, unbatched: bool,
                       device: torch.device) -> Optional[List[Tuple[torch.Tensor, torch.Tensor]]]:
        """hx as per-layer (h, c) tensors [B, H_l] on `device`, float32 (None: zeros)."""
        if hx is None:
            return None
        uniform = isinstance(self.hidden_size, int)
        if uniform:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2 and
                    all(isinstance(t, torch.Tensor) for t in hx)):
                raise TypeError("hx must be a tuple (h_0, c_0) of tensors, each [num_layers, "
                                "batch, hidden_size] (nn.LSTM's order: h first)")
            h0, c0 = cast(torch.Tensor, hx[0]), cast(torch.Tensor, hx[1])
            want = ((self.num_layers, self.hidden_size) if unbatched else
                    (self.num_layers, B, self.hidden_size))
            for nm, t in (("h_0", h0), ("c_0", c0)):
                if tuple(t.shape) != want:
                    raise ValueError("hx: %s has shape %s, expected %s = [num_layers, %s"
                                     "hidden_size]" % (nm, tuple(t.shape), want,
                                                       "" if unbatched else "batch, "))
            pairs = [(h0[l], c0[l]) for l in range(self.num_layers)]
        else:
            if not (isinstance(hx, (list, tuple)) and len(hx) == self.num_layers):
                raise TypeError("hx: this LSTM's layers differ in size (%s), so its state is "
                                "a list of %d per-layer (h, c) pairs, each [1, batch, H_l]"
                                % (list(self.hidden_sizes), self.num_layers))
            pairs = []
            for l, (pair, H) in enumerate(zip(hx, self.hidden_sizes)):
                if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                    raise TypeError("hx[%d] must be an (h, c) pair" % l)
                want = (1, H) if unbatched else (1, B, H)
                for nm, t in zip(("h", "c"), pair):
                    if not isinstance(t, torch.Tensor) or tuple(t.shape) != want:
                        raise ValueError("hx[%d]: %s must be a tensor of shape %s, got %s"
                                         % (l, nm, want, tuple(getattr(t, "shape", ()))))
                pairs.append((pair[0][0], pair[1][0]))
        out = []
        for l, (h, c) in enumerate(pairs):
            for nm, t in (("h_0", h), ("c_0", c)):
                _check_state_tensor(nm, t, device)
            if unbatched:
                h, c = h.unsqueeze(0), c.unsqueeze(0)
            out.append((h.detach(), c.detach()))
        return out

    def _state_out(self, pieces: List[Tuple[torch.Tensor, torch.Tensor]]) -> Tuple[Any, Any]:
        """Per-layer (h, c) [B, H_l] -> (h_n, c_n): stacked [layers, B, H] for equal sizes,
        else lists of [1, B, H_l]."""
        if isinstance(self.hidden_size, int):
            return (torch.stack([h for h, _ in pieces]), torch.stack([c for _, c in pieces]))
        return ([h.unsqueeze(0) for h, _ in pieces], [c.unsqueeze(0) for _, c in pieces])

    def _run_cpu(self, session: Session, x: torch.Tensor,
                 h0c0: Optional[List[Tuple[torch.Tensor, torch.Tensor]]], B: int,
                 lengths: Optional[np.ndarray]) -> Tuple[torch.Tensor, Tuple[Any, Any]]:
        xn = x.numpy()   # zero-copy: x is a contiguous float32 CPU tensor
        init = None
        if h0c0 is not None:
            layout = self.model._state_layout
            init = np.empty(layout.count(B), _F32)
            for (c_row, h_row, H), (h, c) in zip(layout.rows, h0c0):
                init[B * c_row:B * c_row + B * H] = c.reshape(-1).numpy()
                init[B * h_row:B * h_row + B * H] = h.reshape(-1).numpy()
        out, final = session.forward(xn, initial_state=init, sequence_lengths=lengths,
                                     time_major=not self.batch_first, packed_state=True)
        if self._interleaved:   # c_0, h_0, c_1, h_1, ... each [B, H]: one reshape
            v = final.reshape(self.num_layers, 2, B, self.hidden_sizes[0])
            return torch.from_numpy(out), (torch.from_numpy(np.ascontiguousarray(v[:, 1])),
                                           torch.from_numpy(np.ascontiguousarray(v[:, 0])))
        pieces = [(torch.from_numpy(s.h), torch.from_numpy(s.c))
                  for s in self.model.unpack_state(final, B)]
        return torch.from_numpy(out), self._state_out(pieces)


    def _run_cuda(self, session: Session, x: torch.Tensor,
                  h0c0: Optional[List[Tuple[torch.Tensor, torch.Tensor]]], B: int, T: int,
                  lengths: Optional[np.ndarray]) -> Tuple[torch.Tensor, Tuple[Any, Any]]:
        """The path of CUDA tensors (device pointers on the current stream, the state packed
        and cut by torch ops on the device); nothing in it is CUDA-specific, so the tests run
        it on CPU tensors where no GPU is."""
        out, fin = self._run(session, x, None if h0c0 is None else _lstm_pieces(h0c0), B, T,
                             lengths)
        return out, self._state_out([(fin[(l, 0, _H)], fin[(l, 0, _C)])
                                     for l in range(self.num_layers)])

def _as_tensor(x: Any) -> torch.Tensor:
    """A torch tensor over the same memory as `x`: a tensor itself, a DLPack capsule or
    __dlpack__ object such as a CuPy array (torch.from_dlpack, which asks the producer for
    torch's current stream), or else a __cuda_array_interface__ object (torch.as_tensor)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        raise TypeError("input must be a torch.Tensor, a PackedSequence or a DLPack / CUDA "
                        "array, got a NumPy array (NumPy: stacklstm.Session.forward, or "
                        "torch.from_numpy)")
    # DLPack first: from_dlpack keeps the producer's device and asks it for torch's current
    # stream; torch.as_tensor on an array interface copies to the current device and ignores
    # the interface's stream.
    if hasattr(x, "__dlpack__") or type(x).__name__ == "PyCapsule":
        return torch.utils.dlpack.from_dlpack(x)
    if hasattr(x, "__cuda_array_interface__"):
        return torch.as_tensor(x, device="cuda")
    raise TypeError("input must be a torch.Tensor, a PackedSequence or a DLPack / CUDA array, "
                    "got %s" % type(x).__name__)


def _state_tensors(hx: Any) -> List[torch.Tensor]:
    if hx is None:
        return []
    if isinstance(hx, torch.Tensor):
        return [hx]
    if isinstance(hx, (list, tuple)):
        return [t for p in hx for t in _state_tensors(p)]
    return []


def _repack(out: torch.Tensor, like: Any, batch_first: bool) -> Any:
    """The padded output (original batch order) as a PackedSequence with `like`'s
    batch_sizes and sorted/unsorted indices, which is what nn.LSTM returns."""
    seq = out if not batch_first else out.transpose(0, 1)   # [T, B, H]
    if like.sorted_indices is not None:
        seq = seq.index_select(1, like.sorted_indices.to(seq.device))
    lengths = _lengths_of(like.batch_sizes)
    data = nn.utils.rnn.pack_padded_sequence(seq, lengths, enforce_sorted=True).data
    return nn.utils.rnn.PackedSequence(data, like.batch_sizes, like.sorted_indices,
                                       like.unsorted_indices)


def _lengths_of(batch_sizes: torch.Tensor) -> torch.Tensor:
    """The (sorted, descending) sequence lengths a PackedSequence's batch_sizes encode."""
    bs = batch_sizes.tolist()
    B = bs[0] if bs else 0
    return torch.tensor([sum(1 for n in bs if n > b) for b in range(B)], dtype=torch.int64)


class GRU(_Module, nn.Module):
    """nn.GRU's interface over a stacklstm.Model (inference only; CPU tensors, and CUDA
    tensors with ``config = {"cuda.generic": "on"}``: see the module doc).

    ``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, device=None, dtype=None)`` makes one with nn.GRU's initialisation
    (uniform in ±1/sqrt(hidden_size), drawn from torch's RNG); ``GRU.from_torch(nn_gru)``,
    ``GRU.from_state_dict(state_dict)`` and ``GRU.from_model(model)`` wrap trained weights.
    ``forward(input, h_0=None)`` returns ``(output, h_n)`` with nn.GRU's shapes: input
    [T, B, D] ([B, T, D] with batch_first, [T, D] unbatched, or a PackedSequence), h_0 and
    h_n [num_layers * directions, B, H] (forward direction first), output [T, B, directions
    * H]. The cell is PyTorch's (the reset applied after the recurrent matmul: a
    stacklstm.Layer with gru_reset_after=True). ``state_dict()`` has nn.GRU's names, so either
    module loads the other's. Refused, never approximated: autograd, dropout in training
    mode and dtypes other than float32."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if dtype is not None and dtype != torch.float32:
            raise TypeError("stacklstm.torch.GRU: dtype %s is not supported (the library "
                            "computes in float32)" % (dtype,))
        H = checked_int(hidden_size, "hidden_size")
        L = checked_int(num_layers, "num_layers")
        input_size = checked_int(input_size, "input_size")
        if H < 1 or L < 1:
            raise ValueError("hidden_size and num_layers must be >= 1, got %r and %r"
                             % (hidden_size, num_layers))
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError("dropout must be in [0, 1], got %r" % (dropout,))
        # nn.GRU.reset_parameters: every weight and bias uniform in ±1/sqrt(hidden_size).
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,)).item()))
        k = 1.0 / math.sqrt(H)
        sd: Dict[str, np.ndarray] = {}
        I = int(input_size)
        for l in range(L):
            for suf in (["", "_reverse"] if bidirectional else [""]):
                for name, shape in (("weight_ih", (3 * H, I)), ("weight_hh", (3 * H, H)),
                                    ("bias_ih", (3 * H,)), ("bias_hh", (3 * H,))):
                    a = rng.uniform(-k, k, shape).astype(np.float32)
                    if name.startswith("bias") and not bias:
                        a[:] = 0
                    sd["%s_l%d%s" % (name, l, suf)] = a
            I = H * (2 if bidirectional else 1)
        self._setup(Model.from_torch_state_dict(sd), batch_first, dropout, bias)

    def _setup(self, model: Model, batch_first: bool, dropout: float, bias: bool) -> None:
        layers = model.layers
        first = layers[0]
        for l, layer in enumerate(layers):
            if (layer.cell, layer.gru_reset_after, layer.residual) != ("gru", True, False) or \
                    layer.direction == "reverse" or \
                    (layer.hidden_size, layer.direction) != (first.hidden_size,
                                                             first.direction):
                raise ValueError("stacklstm.torch.GRU: layer %d is %r; nn.GRU's layers are "
                                 "reset-after GRUs of one size and direction (forward or "
                                 "bidirectional)" % (l, layer))
        self.model = model
        self.input_size = model.input_size
        self.hidden_size = first.hidden_size
        self.num_layers = len(layers)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = first.direction == "bidirectional"
        self.proj_size = 0   # nn.GRU has the attribute (always 0)
        self.mode = "GRU"
        self._init_sessions()

    @classmethod
    def from_torch(cls, gru: nn.Module) -> "GRU":
        """The same network as `gru` (a torch.nn.GRU), with its batch_first, dropout, bias
        and training flag; its weights are copied."""
        if not isinstance(gru, nn.GRU):
            raise TypeError("GRU.from_torch needs a torch.nn.GRU, got %s (a state_dict: "
                            "GRU.from_state_dict)" % type(gru).__name__)
        for name, p in gru.named_parameters():
            if p.dtype != torch.float32:
                raise TypeError("GRU.from_torch: %s is %s; convert the nn.GRU with .float() "
                                "first (the library computes in float32)" % (name, p.dtype))
        out = cls._wrap(Model.from_torch_state_dict(gru.state_dict()), gru.batch_first,
                        gru.dropout, gru.bias)
        out.train(gru.training)
        return out

    @classmethod
    def from_state_dict(cls, state_dict: Any, batch_first: bool = False, prefix: str = "",
                        dropout: float = 0.0) -> "GRU":
        """From an nn.GRU's state_dict (``weight_ih_l0``, ..., ``..._reverse``), below
        `prefix`. A state_dict without biases is bias=False (zeros)."""
        model = Model.from_torch_state_dict(state_dict, prefix)
        bias = any(k.startswith(prefix) and ("bias_ih_l" in k or "bias_hh_l" in k)
                   for k in state_dict.keys())
        return cls._wrap(model, batch_first, dropout, bias)

    def extra_repr(self) -> str:
        s = "%d, %d, num_layers=%d" % (self.input_size, self.hidden_size, self.num_layers)
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s + ", backend=libstacklstm"

    def flatten_parameters(self) -> None:
        """nn.GRU's cuDNN weight compaction; nothing to do here."""

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str,
                            keep_vars: bool) -> None:
        for name, a in to_torch_state_dict(self.model, single_module=True).items():
            if self._keep(name):
                destination[prefix + name] = torch.from_numpy(a)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str,
                              local_metadata: Any, strict: bool, missing_keys: List[str],
                              unexpected_keys: List[str], error_msgs: List[str]) -> None:
        given, mine = self._given(state_dict, prefix)
        try:
            model = Model.from_torch_state_dict(mine)
        except (ValueError, TypeError) as e:
            error_msgs.append("stacklstm.torch.GRU: %s" % e)
            return
        if (model.input_size, model.layers) != (self.input_size, self.model.layers):
            error_msgs.append("stacklstm.torch.GRU: the state_dict is a stack of input %d and "
                              "layers %s, this module has input %d and %s"
                              % (model.input_size, list(model.layers), self.input_size,
                                 list(self.model.layers)))
            return
        # As nn.Module's own loader (which always passes strict=True here and decides
        # later): the weights load, and keys that are not this module's are reported.
        unexpected_keys.extend(self._unexpected_keys(given, prefix))
        self._replace_model(model)

    def forward(self, input: Any, hx: Optional[torch.Tensor] = None) -> Tuple[Any, Any]:
        """nn.GRU.forward: ``(output, h_n)`` (see the class doc for shapes)."""
        x, B, T, unbatched, packed, lengths = self._input(input, hx)
        dirs = 2 if self.bidirectional else 1
        rows = self.num_layers * dirs
        pieces: Optional[Pieces] = None
        if hx is not None:
            if not isinstance(hx, torch.Tensor):
                raise TypeError("hx must be a tensor [num_layers * directions, batch, "
                                "hidden_size], got %s" % type(hx).__name__)
            want = (rows, self.hidden_size) if unbatched else (rows, B, self.hidden_size)
            if tuple(hx.shape) != want:
                raise ValueError("hx has shape %s, expected %s = [num_layers * directions, "
                                 "%shidden_size]" % (tuple(hx.shape), want,
                                                     "" if unbatched else "batch, "))
            _check_state_tensor("h_0", hx, x.device)
            h0 = hx.detach()
            pieces = {(k // dirs, k % dirs, _H): h0[k] if not unbatched else h0[k][None]
                      for k in range(rows)}
        x = x.detach()
        if not x.is_contiguous():
            x = x.contiguous()
        session = self._session(x.device, B, T)
        y, final = self._run(session, x, pieces, B, T, lengths)
        h_n = torch.stack([final[(k // dirs, k % dirs, _H)] for k in range(rows)])
        y = self._output(y, input, packed, unbatched)
        if unbatched:
            h_n = h_n.squeeze(1)
        return y, h_n
