"""LSTM state conventions and the converters between them.

This package's state is TF's: a list with one LSTMStateTuple(c, h) per layer, each piece
[batch, H_l]; the C library's is the same numbers packed into one flat float32 vector
c_0, h_0, c_1, h_1, ... (Model.pack_state / Model.unpack_state). PyTorch's nn.LSTM uses
(h, c), each [num_layers, batch, H]; Keras uses, per layer, [h, c], each [batch, H]. Their
shapes are the same as ours while their order is not, so states in those conventions are
never guessed at: Session.forward/step accept only LSTMStateTuple-like pairs (objects with
.c and .h) or the packed 1-D vector, and the converters below translate explicitly.
"""

from __future__ import annotations

import collections
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["LSTMStateTuple", "state_from_torch", "state_to_torch", "state_from_keras",
           "state_to_keras"]

LSTMStateTuple = collections.namedtuple("LSTMStateTuple", ["c", "h"])
LSTMStateTuple.__doc__ = "One layer's state, TF's order: (c, h), each [batch, H]."

CONVENTIONS = (
    "expected a list of one stacklstm.LSTMStateTuple(c, h) per layer (each piece "
    "[batch, H_l]; TF's order) or the packed 1-D float vector c_0, h_0, c_1, h_1, ... of "
    "Model.state_count(batch) values. PyTorch's (h, c) of [layers, batch, hidden]: "
    "stacklstm.state_from_torch((h, c)); Keras' per-layer [h, c]: "
    "stacklstm.state_from_keras(states)")


def _array(a: Any) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):   # a torch.Tensor
        a = a.detach().cpu()
        if str(a.dtype) == "torch.bfloat16":   # NumPy has no bfloat16: widened (exactly)
            a = a.float()
        a = a.numpy()
    elif hasattr(a, "numpy") and not isinstance(a, np.ndarray):   # a tf.Tensor / Variable
        a = a.numpy()
    return np.asarray(a)


def _is_array(a: Any) -> bool:
    return hasattr(a, "shape") and hasattr(a, "dtype")


def is_state_tuple(s: Any) -> bool:
    """An LSTMStateTuple or anything else with .c and .h (e.g. TF's LSTMStateTuple)."""
    return hasattr(s, "c") and hasattr(s, "h")


def _pair(h: Any, c: Any, what: str, ndim: int) -> Tuple[np.ndarray, np.ndarray]:
    h, c = _array(h), _array(c)
    if h.ndim != ndim or c.ndim != ndim or h.shape != c.shape:
        raise ValueError("%s: h and c must both have %d dims and the same shape, got h %s "
                         "and c %s" % (what, ndim, h.shape, c.shape))
    return h, c


def state_from_torch(state: Any, layers: Optional[Sequence[Any]] = None) -> List[Any]:
    """PyTorch's LSTM state -> this package's [LSTMStateTuple(c, h)] per layer (NumPy).

    `state`: what nn.LSTM takes and returns, (h, c) each [num_layers, batch, hidden]
    (torch tensors or arrays); or, for a stack of single-layer nn.LSTMs with different
    hidden sizes, a list with one such (h, c) pair, each [1, batch, H_l], per layer.

    With `layers` (a model's stacklstm.Layer list, e.g. model.layers) any stack PyTorch
    has: one module's state ((h, c) of an nn.LSTM, h of an nn.GRU; [layers * directions,
    batch, ...], forward direction first) or a list with one module's state per layer
    ([directions, batch, ...]); the result is per layer an LSTMStateTuple, a GRU's h or a
    BidirectionalState, as Session.forward takes them."""
    if layers is not None:
        return _stack_from_torch(state, layers)
    if not isinstance(state, (list, tuple)) or not state:
        raise TypeError("state_from_torch: expected (h, c) or a list of per-layer (h, c), "
                        "got %s" % type(state).__name__)
    if len(state) == 2 and all(_is_array(p) for p in state):
        h, c = _pair(state[0], state[1], "state_from_torch((h, c))", 3)
        return [LSTMStateTuple(c[l], h[l]) for l in range(h.shape[0])]
    out = []
    for l, pair in enumerate(state):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError("state_from_torch: layer %d: expected an (h, c) pair, got %s"
                            % (l, type(pair).__name__))
        h, c = _pair(pair[0], pair[1], "state_from_torch: layer %d" % l, 3)
        if h.shape[0] != 1:
            raise ValueError("state_from_torch: layer %d: h and c must be [1, batch, H] "
                             "(one single-layer nn.LSTM per list entry), got %s"
                             % (l, h.shape))
        out.append(LSTMStateTuple(c[0], h[0]))
    return out


def _stack_from_torch(state: Any, layers: Sequence[Any]) -> List[Any]:
    """state_from_torch for any stack of stacklstm.Layer (see there)."""
    from .layers import BidirectionalState
    kinds = {L.cell for L in layers}

    def pieces(entry: Any, cell: str, where: str, rows: int) -> Tuple[np.ndarray, Any]:
        if cell == "lstm":
            if not isinstance(entry, (list, tuple)) or len(entry) != 2:
                raise TypeError("state_from_torch: %s: an LSTM's state is (h, c), got %s"
                                % (where, type(entry).__name__))
            h, c = _array(entry[0]), _array(entry[1])
            if c.ndim != 3 or c.shape[0] != rows:
                raise ValueError("state_from_torch: %s: c must be [%d, batch, H], got %s"
                                 % (where, rows, c.shape))
        else:
            if isinstance(entry, (list, tuple)):
                raise TypeError("state_from_torch: %s: a GRU's state is the tensor h, got a "
                                "%s" % (where, type(entry).__name__))
            h, c = _array(entry), None
        if h.ndim != 3 or h.shape[0] != rows:
            raise ValueError("state_from_torch: %s: h must be [%d, batch, H], got %s"
                             % (where, rows, h.shape))
        return h, c

    def layer_state(L: Any, h: np.ndarray, c: Any, k: int) -> Any:
        dirs = [LSTMStateTuple(c[k + d], h[k + d]) if L.cell == "lstm" else h[k + d]
                for d in range(L.directions)]
        return dirs[0] if L.directions == 1 else BidirectionalState(dirs[0], dirs[1])

    if isinstance(state, list):   # one entry per layer (single-layer modules)
        if len(state) != len(layers):
            raise ValueError("state_from_torch: %d states for %d layers" % (len(state),
                                                                           len(layers)))
        out = []
        for l, (entry, L) in enumerate(zip(state, layers)):
            h, c = pieces(entry, L.cell, "layer %d" % l, L.directions)
            out.append(layer_state(L, h, c, 0))
        return out
    if len(kinds) != 1 or len({L.directions for L in layers}) != 1:
        raise TypeError("state_from_torch: a stack of different layers takes a list with "
                        "one state per layer ((h, c) or h, each [directions, batch, ...])")
    nd = layers[0].directions
    h, c = pieces(state, layers[0].cell, "the state", nd * len(layers))
    return [layer_state(L, h, c, nd * l) for l, L in enumerate(layers)]


def _stack_to_torch(state: Sequence[Any], layers: Sequence[Any]) -> Any:
    """state_to_torch for any stack of stacklstm.Layer (see there)."""
    if not isinstance(state, (list, tuple)) or len(state) != len(layers):
        raise TypeError("state_to_torch: expected one state per layer (%d), got %s"
                        % (len(layers), describe(state)))
    per_layer = []
    for l, (s, L) in enumerate(zip(state, layers)):
        dirs = [s.fw, s.bw] if L.directions == 2 else [s]
        try:
            if L.cell == "lstm":
                h = np.stack([_array(d.h) for d in dirs]).astype(np.float32, copy=False)
                c = np.stack([_array(d.c) for d in dirs]).astype(np.float32, copy=False)
                per_layer.append((h, c))
            else:
                per_layer.append(np.stack([_array(d) for d in dirs]).astype(np.float32,
                                                                             copy=False))
        except (AttributeError, ValueError) as e:
            raise TypeError("state_to_torch: layer %d (%r): %s" % (l, L, e)) from e
    same = len({(L.cell, L.hidden_size, L.proj_size, L.directions) for L in layers}) == 1
    if not same:
        return per_layer
    if layers[0].cell == "lstm":
        return (np.concatenate([p[0] for p in per_layer]),
                np.concatenate([p[1] for p in per_layer]))
    return np.concatenate(per_layer)


def _layers(state: Any, fn: str) -> List[Tuple[np.ndarray, np.ndarray]]:
    if is_state_tuple(state) or not isinstance(state, (list, tuple)) or not all(
            is_state_tuple(s) for s in state):
        raise TypeError("%s: expected a list of LSTMStateTuple(c, h) per layer (what "
                        "Session.forward returns); a packed vector: Model.unpack_state first"
                        % fn)
    out = []
    for l, s in enumerate(state):
        h, c = _pair(s.h, s.c, "%s: layer %d" % (fn, l), 2)
        out.append((h, c))
    return out


def state_to_torch(state: Sequence[Any], layers: Optional[Sequence[Any]] = None) -> Any:
    """This package's [LSTMStateTuple(c, h)] -> PyTorch's layout, as float32 NumPy arrays
    (torch.from_numpy makes tensors of them): (h, c), each [num_layers, batch, H], when all
    layers have the same hidden size; else a list with one (h, c) pair, each [1, batch, H_l],
    per layer (for a stack of single-layer nn.LSTMs).

    With `layers` (model.layers) any stack PyTorch has: one module's state ((h, c) or a
    GRU's h, [layers * directions, batch, ...]) when every layer is the same, else a list
    with one per layer ([directions, batch, ...]); state_from_torch's inverse."""
    if layers is not None:
        return _stack_to_torch(state, layers)
    pairs = _layers(state, "state_to_torch")
    if len({h.shape for h, _ in pairs}) == 1:
        return (np.stack([h for h, _ in pairs]).astype(np.float32, copy=False),
                np.stack([c for _, c in pairs]).astype(np.float32, copy=False))
    return [(h[None].astype(np.float32), c[None].astype(np.float32)) for h, c in pairs]


def _keras_order(L: Any) -> List[Tuple[int, str]]:
    """(direction, piece) of a layer's Keras states in Keras' order: an LSTM's [h, c], a
    GRU's [h], a Bidirectional layer's forward states then backward ones."""
    pieces = ["h", "c"] if L.cell == "lstm" else ["h"]
    return [(d, p) for d in range(L.directions) for p in pieces]


def state_from_keras(states: Any, layers: Optional[Sequence[Any]] = None) -> List[Any]:
    """Keras' LSTM states -> this package's [LSTMStateTuple(c, h)] per layer (NumPy).

    `states`: a list with one [h, c] per layer (each [batch, H_l]), as a stack of LSTM
    layers with return_state=True gives them or StackedRNNCells keeps them; or the flat list
    [h_0, c_0, h_1, c_1, ...].

    With `layers` (model.layers) any stack Keras has: per layer Keras' states (an LSTM's
    [h, c], a GRU's [h] or h, a Bidirectional layer's [h_fw, c_fw, h_bw, c_bw] or
    [h_fw, h_bw], as return_state gives them), as a list per layer or one flat list; the
    result is per layer an LSTMStateTuple, a GRU's h or a BidirectionalState."""
    if layers is not None:
        return _stack_from_keras(states, layers)
    if not isinstance(states, (list, tuple)) or not states:
        raise TypeError("state_from_keras: expected a list of per-layer [h, c], got %s"
                        % type(states).__name__)
    if all(_is_array(p) for p in states):
        if len(states) % 2:
            raise ValueError("state_from_keras: a flat list needs h and c of every layer "
                             "(an even count), got %d arrays" % len(states))
        states = [states[k:k + 2] for k in range(0, len(states), 2)]
    out = []
    for l, pair in enumerate(states):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError("state_from_keras: layer %d: expected [h, c], got %s"
                            % (l, type(pair).__name__))
        h, c = _pair(pair[0], pair[1], "state_from_keras: layer %d" % l, 2)
        out.append(LSTMStateTuple(c, h))
    return out


def _stack_from_keras(states: Any, layers: Sequence[Any]) -> List[Any]:
    from .layers import BidirectionalState
    if not isinstance(states, (list, tuple)):
        raise TypeError("state_from_keras: expected a list, got %s" % type(states).__name__)
    orders = [_keras_order(L) for L in layers]
    if all(_is_array(p) for p in states):   # one flat list
        want = sum(len(o) for o in orders)
        if len(states) != want:
            raise ValueError("state_from_keras: %d arrays, these layers' Keras states are %d "
                             "(%s)" % (len(states), want, "; ".join(
                                 ", ".join(("%s_%s" % (p, "fw" if d == 0 else "bw"))
                                           if L.directions == 2 else p for d, p in o)
                                 for L, o in zip(layers, orders))))
        grouped, k = [], 0
        for o in orders:
            grouped.append(list(states[k:k + len(o)]))
            k += len(o)
        states = grouped
    if len(states) != len(layers):
        raise ValueError("state_from_keras: %d states for %d layers" % (len(states),
                                                                       len(layers)))
    out = []
    for l, (entry, L, o) in enumerate(zip(states, layers, orders)):
        if _is_array(entry) and len(o) == 1:
            entry = [entry]
        if not isinstance(entry, (list, tuple)) or len(entry) != len(o):
            raise ValueError("state_from_keras: layer %d (%r) takes %d arrays (%s), got %s"
                             % (l, L, len(o), ", ".join(p for _, p in o), describe(entry)))
        got = {key: _array(a) for key, a in zip(o, entry)}
        for key, a in got.items():
            if a.ndim != 2:
                raise ValueError("state_from_keras: layer %d: %s must be [batch, width], got "
                                 "%s" % (l, key[1], a.shape))
        dirs = [LSTMStateTuple(got[(d, "c")], got[(d, "h")]) if L.cell == "lstm"
                else got[(d, "h")] for d in range(L.directions)]
        out.append(dirs[0] if L.directions == 1 else BidirectionalState(*dirs))
    return out


def state_to_keras(state: Sequence[Any], layers: Optional[Sequence[Any]] = None
                   ) -> List[List[np.ndarray]]:
    """This package's [LSTMStateTuple(c, h)] -> Keras' list with one [h, c] per layer (each
    [batch, H_l], float32 NumPy). With `layers` (model.layers): per layer Keras' list for
    that layer (state_from_keras' inverse)."""
    if layers is not None:
        if not isinstance(state, (list, tuple)) or len(state) != len(layers):
            raise TypeError("state_to_keras: expected one state per layer (%d), got %s"
                            % (len(layers), describe(state)))
        result = []
        for s, L in zip(state, layers):
            dirs = [s.fw, s.bw] if L.directions == 2 else [s]
            result.append([np.asarray(getattr(dirs[d], p) if L.cell == "lstm" else dirs[d],
                                      dtype=np.float32) for d, p in _keras_order(L)])
        return result
    return [[h.astype(np.float32, copy=False), c.astype(np.float32, copy=False)]
            for h, c in _layers(state, "state_to_keras")]


def map_layer_state(fn: Any, s: Any) -> Any:
    """One layer's state (LSTMStateTuple, a GRU's h, BidirectionalState) with `fn` applied
    to each of its arrays, in the same structure."""
    from .layers import BidirectionalState
    if isinstance(s, BidirectionalState):
        return BidirectionalState(map_layer_state(fn, s.fw), map_layer_state(fn, s.bw))
    if is_state_tuple(s):
        return LSTMStateTuple(fn(s.c), fn(s.h))
    return fn(s)


def zip_layer_states(fn: Any, states: Sequence[Any]) -> Any:
    """Layer states of one structure combined piece by piece: fn(list of arrays) per piece
    (e.g. np.concatenate to stack batch rows)."""
    from .layers import BidirectionalState
    first = states[0]
    if isinstance(first, BidirectionalState):
        return BidirectionalState(zip_layer_states(fn, [s.fw for s in states]),
                                  zip_layer_states(fn, [s.bw for s in states]))
    if is_state_tuple(first):
        return LSTMStateTuple(fn([s.c for s in states]), fn([s.h for s in states]))
    return fn(list(states))


def describe(state: Any) -> str:
    """A short description of what was passed, for error messages."""
    if isinstance(state, (list, tuple)):
        parts = []
        for s in state[:4]:
            if is_state_tuple(s):
                parts.append("%s(c %s, h %s)" % (type(s).__name__, np.shape(s.c),
                                                  np.shape(s.h)))
            elif _is_array(s):
                parts.append("array %s" % (tuple(s.shape),))
            elif isinstance(s, (list, tuple)):
                parts.append("%s of %d" % (type(s).__name__, len(s)))
            else:
                parts.append(type(s).__name__)
        more = ", ..." if len(state) > 4 else ""
        return "a %s of %d: [%s%s]" % (type(state).__name__, len(state), ", ".join(parts),
                                       more)
    if _is_array(state):
        return "an array of shape %s" % (tuple(state.shape),)
    return "a %s" % type(state).__name__
