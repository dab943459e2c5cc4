"""Framework naming conventions: which tensors of a PyTorch state_dict, a TF checkpoint, an
ONNX graph or a Keras model are the weights of which layer. Each helper returns per-layer
lists in the order of stacklstm.TENSOR_NAMES[format]; Model.from_weights does the rest."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .state import _array

__all__ = ["torch_state_dict_layers", "tf_variable_layers", "onnx_model_layers",
           "onnx_model_stack", "onnx_node_layer", "torch_state_dict_stack",
           "tf_variable_stack", "keras_model_stack", "to_onnx", "keras_model_layers", "to_torch_state_dict",
           "to_tf_variables"]


_arr = _array   # torch / TF tensors and array-likes as NumPy


# ---- PyTorch ------------------------------------------------------------------------------

_TORCH_KEY = re.compile(r"^(?:(?P<mod>\d+)\.)?(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|"
                        r"weight_hr)_l(?P<layer>\d+)(?P<rev>_reverse)?$")


def _torch_numbering(found: Dict[Tuple[int, int], Any], prefix: str) -> None:
    """Modules numbered 0..m-1 (or none: one nn.LSTM / nn.GRU), each one's layers 0..n-1:
    a gap is a missing layer, never a shorter stack."""
    mods = sorted({mod for mod, _ in found})
    # one module, or modules numbered without a gap: an nn.Sequential may hold its LSTMs at
    # any position (Sequential(Embedding, LSTM, Linear): "1.weight_ih_l0")
    if mods != [-1] and (mods[0] < 0 or mods != list(range(mods[0], mods[0] + len(mods)))):
        raise ValueError("%smodule numbers %s have a gap (a module's tensors missing?)"
                         % (prefix, [m for m in mods if m >= 0]))
    for mod in mods:
        ks = sorted(k for m, k in found if m == mod)
        if ks != list(range(len(ks))):
            raise ValueError("%s%slayer numbers (_l<k>) %s are not 0..%d (a layer's tensors "
                             "missing?)" % (prefix, "%d." % mod if mod >= 0 else "", ks,
                                            len(ks) - 1))


def _torch_biases(t: Dict[str, np.ndarray], suffix: str, rows: int, where: str
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """A layer's (bias_ih, bias_hh): both, or neither (bias=False: zeros); one alone means
    the other went missing."""
    ih, hh = t.get("bias_ih" + suffix), t.get("bias_hh" + suffix)
    if (ih is None) != (hh is None):
        raise ValueError("%s%s: %s is missing (a layer has both biases, or neither with "
                         "bias=False)" % (where, suffix, ("bias_ih" if ih is None else "bias_hh")
                                          + suffix))
    if ih is None or hh is None:
        zeros = np.zeros(rows, dtype=np.float32)
        return zeros, zeros
    return ih, hh


def torch_state_dict_layers(state_dict: Any, prefix: str = "") -> List[List[Any]]:
    """Per-layer (weight_ih, weight_hh, bias_ih, bias_hh) from a state_dict of one multi-layer
    nn.LSTM (`weight_ih_l0`, `weight_ih_l1`, ...) or of a sequence of nn.LSTMs (e.g. an
    nn.ModuleList: `0.weight_ih_l0`, `1.weight_ih_l0`, ...), below `prefix` (e.g. "rnn.").
    A state_dict-bearing object (an nn.Module) is accepted too. Layers without biases
    (bias=False) get zeros. Bidirectional and projected (proj_size) LSTMs and GRUs are
    rejected: torch_state_dict_stack reads those."""
    if hasattr(state_dict, "state_dict") and callable(state_dict.state_dict):
        state_dict = state_dict.state_dict()
    found: Dict[Tuple[int, int], Dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        m = _TORCH_KEY.match(key[len(prefix):])
        if m is None:
            continue
        if m.group("rev"):
            raise ValueError("%s: a bidirectional layer: torch_state_dict_layers gives forward "
                             "nn.LSTM layers only (torch_state_dict_stack reads it)" % key)
        if m.group("kind") == "weight_hr":
            raise ValueError("%s: nn.LSTM with proj_size: torch_state_dict_layers gives "
                             "BasicLSTMCell layers only (torch_state_dict_stack reads it)"
                             % key)
        mod = int(m.group("mod")) if m.group("mod") is not None else -1
        found.setdefault((mod, int(m.group("layer"))), {})[m.group("kind")] = _arr(value)
    if not found:
        raise ValueError("no nn.LSTM weights (weight_ih_l<k>, ...) under prefix %r; keys: %s"
                         % (prefix, sorted(state_dict)[:10]))
    _torch_numbering(found, prefix)
    layers = []
    for key in sorted(found):
        t = found[key]
        name = ("%d." % key[0] if key[0] >= 0 else "") + "*_l%d" % key[1]
        for need in ("weight_ih", "weight_hh"):
            if need not in t:
                raise ValueError("%s%s: %s is missing" % (prefix, name, need))
        whh = t["weight_hh"]
        if whh.ndim == 2 and whh.shape[1] and whh.shape[0] == 3 * whh.shape[1]:
            raise ValueError("%s%s: weight_hh %s is an nn.GRU's: torch_state_dict_layers gives "
                             "nn.LSTM layers only (torch_state_dict_stack reads it)"
                             % (prefix, name, whh.shape))
        b_ih, b_hh = _torch_biases(t, "", whh.shape[0], prefix + name)
        layers.append([t["weight_ih"], t["weight_hh"], b_ih, b_hh])
    return layers


def torch_state_dict_stack(state_dict: Any, prefix: str = ""
                           ) -> Tuple[List[Any], List[Dict[str, np.ndarray]]]:
    """(layers, per-layer SLSTM_FORMAT_PYTORCH tensors) of a state_dict of one multi-layer
    nn.LSTM or nn.GRU (`weight_ih_l0`, ...) or of a sequence of them (an nn.ModuleList:
    `0.weight_ih_l0`, `1.weight_ih_l0`, ...), below `prefix` (e.g. "rnn."): LSTMs with and
    without proj_size (`weight_hr_l{k}`), GRUs (reset after: nn.GRU's), bidirectional layers
    (`..._reverse`). Model.from_weights(tensors, "pytorch", layers=layers) makes the model
    (Model.from_torch_state_dict does both). Each layer's tensors are a dict keyed
    "weight_ih", ..., "weight_ih_reverse", ... . Whether a layer is an LSTM or a GRU is read
    from its shapes (weight_hh [4H, H or P] with weight_hr [P, H], or [3H, H]); layers without
    biases (bias=False) get zeros. A state_dict-bearing object (an nn.Module) is accepted."""
    from .layers import Layer

    if hasattr(state_dict, "state_dict") and callable(state_dict.state_dict):
        state_dict = state_dict.state_dict()
    found: Dict[Tuple[int, int], Dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        m = _TORCH_KEY.match(key[len(prefix):])
        if m is None:
            continue
        mod = int(m.group("mod")) if m.group("mod") is not None else -1
        found.setdefault((mod, int(m.group("layer"))), {})[
            m.group("kind") + (m.group("rev") or "")] = _arr(value)
    if not found:
        raise ValueError("no nn.LSTM / nn.GRU weights (weight_ih_l<k>, ...) under prefix %r; "
                         "keys: %s" % (prefix, sorted(state_dict)[:10]))
    _torch_numbering(found, prefix)
    layers: List[Any] = []
    weights: List[Dict[str, np.ndarray]] = []
    for key in sorted(found):
        t = found[key]
        where = prefix + ("%d." % key[0] if key[0] >= 0 else "") + "*_l%d" % key[1]
        bidirectional = any(k.endswith("_reverse") for k in t)
        suffixes = ["", "_reverse"] if bidirectional else [""]
        for suf in suffixes:
            for need in ("weight_ih", "weight_hh"):
                if need + suf not in t:
                    raise ValueError("%s%s: %s is missing" % (where, suf, need + suf))
        whh = t["weight_hh"]
        if whh.ndim != 2 or whh.shape[1] == 0:
            raise ValueError("%s: weight_hh has shape %s, expected [gates*H, H or proj_size]"
                             % (where, whh.shape))
        if "weight_hr" in t:
            if t["weight_hr"].ndim != 2:
                raise ValueError("%s: weight_hr has shape %s, expected [proj_size, H]"
                                 % (where, t["weight_hr"].shape))
            H, P = int(t["weight_hr"].shape[1]), int(t["weight_hr"].shape[0])
            layer = Layer("lstm", H, "bidirectional" if bidirectional else "forward",
                          proj_size=P)
        elif whh.shape[0] == 4 * whh.shape[1]:
            layer = Layer("lstm", int(whh.shape[1]),
                          "bidirectional" if bidirectional else "forward")
        elif whh.shape[0] == 3 * whh.shape[1]:
            layer = Layer("gru", int(whh.shape[1]),
                          "bidirectional" if bidirectional else "forward",
                          gru_reset_after=True)
        else:
            raise ValueError("%s: weight_hh has shape %s: neither an nn.LSTM's [4H, H] (with "
                             "weight_hr: [4H, proj_size]) nor an nn.GRU's [3H, H]"
                             % (where, whh.shape))
        rows = t["weight_hh"].shape[0]
        tensors: Dict[str, np.ndarray] = {}
        for suf in suffixes:
            tensors["weight_ih" + suf] = t["weight_ih" + suf]
            tensors["weight_hh" + suf] = t["weight_hh" + suf]
            tensors["bias_ih" + suf], tensors["bias_hh" + suf] = _torch_biases(
                t, suf, rows, where)
            if layer.proj_size:
                if "weight_hr" + suf not in t:
                    raise ValueError("%s%s: weight_hr%s is missing" % (where, suf, suf))
                tensors["weight_hr" + suf] = t["weight_hr" + suf]
        layers.append(layer)
        weights.append(tensors)
    return layers, weights


# ---- TensorFlow ---------------------------------------------------------------------------

_TF_KEY = re.compile(r"^(?P<scope>.*?)(?:cell_(?P<cell>\d+)/)?"
                     r"(?P<cell_type>basic_lstm_cell|lstm_cell)/"
                     r"(?P<kind>kernel|bias|weights|biases|w_f_diag|w_i_diag|w_o_diag|"
                     r"projection/kernel)$")


def _in_scope(found: str, scope: Optional[str]) -> bool:
    """Whether the variables' scope `found` (e.g. "rnn_1/multi_rnn_cell/") lies in `scope`,
    compared by whole name components: "rnn" is "rnn/..." and not "rnn_1/..."."""
    if scope is None:
        return True
    s = scope.strip("/")
    return s == "" or (found.rstrip("/") + "/").startswith(s + "/")


_TF_PART = re.compile(r"/part_\d+$")
# A layer's scope in a MultiRNNCell or a stack_bidirectional_dynamic_rnn (not any cell_<k>:
# other networks, e.g. NASNet, have scopes of that name).
_TF_CELL = re.compile(r"(?:^|/)(?:multi_rnn_cell/cell_\d+/|cell_\d+/bidirectional_rnn/)")


def _tf_check_unread(names: List[str], scope: Optional[str], reader: Any) -> None:
    """Variables of the stack that the name pattern `reader` does not read would be dropped
    from the model without a word: refused, naming one. Sharded variables (`.../part_<k>`:
    num_unit_shards, num_proj_shards) and variables under a cell_<k> scope that are no cell's
    known variable (a cell made with name=) are; an optimizer's slots of a known variable
    (`.../kernel/Adam`) are not."""
    for n in names:
        n = n[:-2] if n.endswith(":0") else n
        if reader.match(n):
            continue
        # a slot of a variable read: some prefix of the name is one
        cuts = [i for i, ch in enumerate(n) if ch == "/"]
        if any(reader.match(n[:i]) for i in cuts) and not _TF_PART.search(n):
            continue
        m = reader.match(_TF_PART.sub("", n))
        if _TF_PART.search(n) and m is not None and _in_scope(m.group("scope"), scope):
            raise ValueError("%s: a sharded variable (num_unit_shards / num_proj_shards); read "
                             "the checkpoint by its path (TensorFlow joins the parts) or join "
                             "the parts into %s" % (n, _TF_PART.sub("", n)))
        c = _TF_CELL.search(n)
        if c is not None and _in_scope(n[:c.end()], scope):
            cell = re.search(r"cell_\d+", c.group(0))
            raise ValueError("%s: a variable of %s that this reader does not read (a cell "
                             "of another kind, or one made with name=?); the layer would be "
                             "dropped" % (n, cell.group(0) if cell else c.group(0)))


def _tf_variables(variables: Any) -> Any:
    if isinstance(variables, str):   # a checkpoint path / prefix
        import tensorflow as tf
        reader = tf.train.load_checkpoint(variables)
        return {name: reader.get_tensor(name)
                for name in reader.get_variable_to_shape_map()}
    return variables


def tf_variable_layers(variables: Any, scope: Optional[str] = None) -> List[List[Any]]:
    """Per-layer (kernel, bias) from TF variables named like a checkpoint of
    MultiRNNCell([BasicLSTMCell | LSTMCell]): `<scope>/multi_rnn_cell/cell_<k>/basic_lstm_cell/
    kernel` and `/bias` (old TF: `/weights`, `/biases`), or a single cell `<scope>/
    basic_lstm_cell/kernel`. `variables`: {name: array} (a trailing ":0" is ignored) or a
    checkpoint path (needs tensorflow). Optimizer slots (`.../kernel/Adam`) are ignored.
    LSTMCell peepholes and projections are rejected. With several RNNs in one checkpoint,
    pass `scope` (the name prefix before `multi_rnn_cell/` or the cell, in whole name
    components: "rnn" selects `rnn/...`, not `rnn_1/...`)."""
    variables = _tf_variables(variables)
    _tf_check_unread(list(variables), scope, _TF_KEY)
    groups: Dict[str, Dict[int, Dict[str, np.ndarray]]] = {}
    for name, value in variables.items():
        n = name[:-2] if name.endswith(":0") else name
        m = _TF_KEY.match(n)
        if m is None:
            continue
        sc = m.group("scope")
        if not _in_scope(sc, scope):
            continue
        kind = m.group("kind")
        if kind in ("w_f_diag", "w_i_diag", "w_o_diag"):
            raise ValueError("%s: LSTMCell with use_peepholes=True is not supported" % name)
        if kind == "projection/kernel":
            raise ValueError("%s: LSTMCell with num_proj is not supported" % name)
        kind = {"weights": "kernel", "biases": "bias"}.get(kind, kind)
        cell = int(m.group("cell")) if m.group("cell") is not None else 0
        layer = groups.setdefault(sc, {}).setdefault(cell, {})
        if kind in layer:
            raise ValueError("%s: layer %d's %s is given twice (new and old spelling?)"
                             % (name, cell, kind))
        layer[kind] = _arr(value)
    if not groups:
        raise ValueError("no LSTM cell variables (.../basic_lstm_cell/kernel or "
                         ".../weights) found among %d variables" % len(variables))
    if len(groups) > 1:
        raise ValueError("variables of several RNNs (scopes %s): pass scope=" % sorted(groups))
    cells = next(iter(groups.values()))
    if sorted(cells) != list(range(len(cells))):
        raise ValueError("cell numbers %s are not 0..%d" % (sorted(cells), len(cells) - 1))
    layers = []
    for k in range(len(cells)):
        for need in ("kernel", "bias"):
            if need not in cells[k]:
                raise ValueError("cell_%d: %s is missing" % (k, need))
        layers.append([cells[k]["kernel"], cells[k]["bias"]])
    return layers


_TF_ANY = re.compile(r"^(?P<scope>.*?)(?:cell_(?P<cell>\d+)/)?"
                     r"(?:bidirectional_rnn/(?P<dir>fw|bw)/)?"
                     r"(?P<cell_type>basic_lstm_cell|lstm_cell|gru_cell)/"
                     r"(?P<kind>kernel|bias|weights|biases|w_f_diag|w_i_diag|w_o_diag|"
                     r"projection/kernel|gates/kernel|gates/bias|candidate/kernel|"
                     r"candidate/bias)$")
_TF_GRU_KINDS = ("gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias")
_TF_PEEPS = ("w_i_diag", "w_f_diag", "w_o_diag")


def tf_variable_stack(variables: Any, scope: Optional[str] = None
                      ) -> Tuple[List[Any], List[Dict[str, np.ndarray]]]:
    """(layers, per-layer SLSTM_FORMAT_TF tensors) of TF 1.x RNN variables by checkpoint name:
    a MultiRNNCell of BasicLSTMCell / LSTMCell / GRUCell (`<scope>/multi_rnn_cell/cell_<k>/
    lstm_cell/kernel`, `bias`, `w_i_diag`, `w_f_diag`, `w_o_diag`, `projection/kernel`;
    `.../gru_cell/gates/kernel`, `gates/bias`, `candidate/kernel`, `candidate/bias`), or a
    stack_bidirectional_dynamic_rnn (`<scope>/cell_<k>/bidirectional_rnn/fw/lstm_cell/...` and
    `/bw/...`; a single bidirectional_dynamic_rnn without cell_<k> is one layer).
    `variables`: {name: array} (a trailing ":0" is ignored) or a checkpoint path (needs
    tensorflow); optimizer slots are ignored. Each layer's tensors are a dict keyed by the
    format's names ("kernel", ..., "fw/kernel", "bw/kernel" for bidirectional layers).

    The layers say what the names show: the cell, H, peepholes, proj_size, the direction.
    What a checkpoint does not hold (cell_clip, proj_clip, ResidualWrapper, forget_bias) is
    the caller's to give (Model.from_tf_variables(layers=...)); TF's GRUCell is a reset-before
    GRU. With several RNNs in one checkpoint, pass `scope` (the name prefix, in whole name
    components: "rnn" selects `rnn/...`, not `rnn_1/...`)."""
    from .layers import Layer

    variables = _tf_variables(variables)
    _tf_check_unread(list(variables), scope, _TF_ANY)
    groups: Dict[str, Dict[int, Dict[str, Any]]] = {}
    for name, value in variables.items():
        n = name[:-2] if name.endswith(":0") else name
        m = _TF_ANY.match(n)
        if m is None:
            continue
        sc = m.group("scope")
        if not _in_scope(sc, scope):
            continue
        kind = {"weights": "kernel", "biases": "bias"}.get(m.group("kind"), m.group("kind"))
        cell_type = m.group("cell_type")
        if (cell_type == "gru_cell") != (kind in _TF_GRU_KINDS):
            raise ValueError("%s: %s is not a variable of a %s" % (name, kind, cell_type))
        d = {"fw": 0, "bw": 1}.get(m.group("dir") or "", -1)
        cell = int(m.group("cell")) if m.group("cell") is not None else 0
        entry = groups.setdefault(sc, {}).setdefault(cell, {"types": set(), "dirs": set(),
                                                            "t": {}})
        entry["types"].add(cell_type)
        entry["dirs"].add(d)
        key = (max(d, 0), kind)
        if key in entry["t"]:
            raise ValueError("%s: layer %d's %s is given twice (new and old spelling?)"
                             % (name, cell, kind))
        entry["t"][key] = _arr(value)
    if not groups:
        raise ValueError("no RNN cell variables (.../lstm_cell/kernel, .../gru_cell/gates/"
                         "kernel, .../basic_lstm_cell/weights, ...) found among %d variables"
                         % len(variables))
    if len(groups) > 1:
        raise ValueError("variables of several RNNs (scopes %s): pass scope= (two independent "
                         "fw / bw stacks of bidirectional_dynamic_rnn are not one stack of "
                         "bidirectional layers)" % sorted(groups))
    cells = next(iter(groups.values()))
    if sorted(cells) != list(range(len(cells))):
        raise ValueError("cell numbers %s are not 0..%d" % (sorted(cells), len(cells) - 1))
    layers: List[Any] = []
    weights: List[Dict[str, np.ndarray]] = []
    for k in range(len(cells)):
        info = cells[k]
        if len(info["types"]) != 1:
            raise ValueError("cell_%d: variables of several cell types %s"
                             % (k, sorted(info["types"])))
        cell_type = next(iter(info["types"]))
        dirs = info["dirs"]
        if dirs == {-1}:
            ndir, prefixes = 1, [""]
        elif dirs == {0, 1}:
            ndir, prefixes = 2, ["fw/", "bw/"]
        else:
            raise ValueError("cell_%d: a bidirectional layer needs both fw/ and bw/ variables "
                             "(and nothing else), got %s" % (k, sorted(
                                 {-1: "plain", 0: "fw", 1: "bw"}[x] for x in dirs)))
        t = info["t"]
        kinds0 = {kind for (d, kind) in t if d == 0}
        if ndir == 2 and kinds0 != {kind for (d, kind) in t if d == 1}:
            raise ValueError("cell_%d: fw has %s, bw has %s" % (
                k, sorted(kinds0), sorted(kind for (d, kind) in t if d == 1)))
        needed = list(_TF_GRU_KINDS) if cell_type == "gru_cell" else ["kernel", "bias"]
        peeps = [p for p in _TF_PEEPS if p in kinds0]
        if peeps and len(peeps) != 3:
            raise ValueError("cell_%d: peepholes need w_i_diag, w_f_diag and w_o_diag, got %s"
                             % (k, peeps))
        for need in needed:
            if need not in kinds0:
                raise ValueError("cell_%d: %s is missing" % (k, need))
        direction = "bidirectional" if ndir == 2 else "forward"
        if cell_type == "gru_cell":
            H = int(np.shape(t[(0, "candidate/bias")])[0])
            layer = Layer("gru", H, direction)
            names = list(_TF_GRU_KINDS)
        else:
            H = int(np.shape(t[(0, "bias")])[0]) // 4
            P = (int(np.shape(t[(0, "projection/kernel")])[-1])
                 if "projection/kernel" in kinds0 else 0)
            layer = Layer("lstm", H, direction, peepholes=bool(peeps), proj_size=P)
            names = ["kernel", "bias"] + (list(_TF_PEEPS) if peeps else []) + \
                (["projection/kernel"] if P else [])
        layers.append(layer)
        weights.append({pre + n: t[(d, n)] for d, pre in enumerate(prefixes) for n in names})
    return layers, weights


# ---- ONNX ---------------------------------------------------------------------------------

_ONNX_DEFAULT_ACTIVATIONS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}


def _onnx_attrs(node: Any) -> Dict[str, Any]:
    import onnx
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list):
            v = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out


def _unsupported(message: str, call: str) -> Exception:
    from .errors import UnsupportedError
    return UnsupportedError(UnsupportedError.status or 0, message, call)


def onnx_node_layer(node: Any, get: Any) -> Tuple[Any, List[np.ndarray]]:
    """(stacklstm.Layer, its SLSTM_FORMAT_ONNX tensors [W, R, B] (+ P with peepholes)) of one
    ONNX `LSTM` or `GRU` node. `get(name)` gives the array of one of the node's inputs (an
    initializer, a Constant, or a value the caller has). What the library does not compute
    is refused with stacklstm.UnsupportedError naming the node and attribute: `clip` (ONNX
    clips the gates' pre-activations, which is not the cell clipping of docs/cells.md),
    `input_forget` = 1, activations other than the defaults (Sigmoid, Tanh[, Tanh]); a
    malformed node is a ValueError. A `P` input that is all
    zeros is no peepholes; `layout` does not change the weights (the caller's inputs and
    outputs follow it); `linear_before_reset` is Layer.gru_reset_after."""
    from .layers import Layer

    op = node.op_type
    if op not in _ONNX_DEFAULT_ACTIVATIONS:
        raise ValueError("node %r is a %s, not an LSTM or GRU" % (node.name, op))
    what = "%s node %r" % (op, node.name)
    attrs = _onnx_attrs(node)
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError("%s: direction %r is not forward, reverse or bidirectional"
                         % (what, direction))
    nd = 2 if direction == "bidirectional" else 1
    if "clip" in attrs:
        raise _unsupported("%s: clip=%g is not supported (ONNX clips the gates' "
                           "pre-activations; the library's cell_clip clips the cell state, "
                           "another function)" % (what, attrs["clip"]), "onnx_node_layer")
    if op == "LSTM" and int(attrs.get("input_forget", 0)) != 0:
        raise _unsupported("%s: input_forget=%d (coupled input and forget gates) is not "
                           "supported" % (what, attrs["input_forget"]), "onnx_node_layer")
    if "activations" in attrs:
        want = _ONNX_DEFAULT_ACTIVATIONS[op] * nd
        got = [str(a).lower() for a in attrs["activations"]]
        if got != want:
            raise _unsupported("%s: activations %s are not supported (only the defaults %s%s)"
                               % (what, attrs["activations"],
                                  [a.capitalize() for a in _ONNX_DEFAULT_ACTIVATIONS[op]],
                                  ", once per direction: %d names" % len(want) if nd > 1
                                  else ""), "onnx_node_layer")
    ins = list(node.input) + [""] * 8
    if not ins[1] or not ins[2]:
        raise ValueError("%s: W and R are required inputs" % what)
    W = np.asarray(get(ins[1]))
    R = np.asarray(get(ins[2]))
    if R.ndim != 3 or W.ndim != 3:
        raise ValueError("%s: W and R must have 3 dims ([num_directions, gates*H, ...]), got "
                         "W %s and R %s" % (what, W.shape, R.shape))
    H = int(R.shape[-1])
    if "hidden_size" in attrs and int(attrs["hidden_size"]) != H:
        raise ValueError("%s: hidden_size=%d but R is %s (H = %d)"
                         % (what, attrs["hidden_size"], R.shape, H))
    G = 4 if op == "LSTM" else 3
    B = (np.asarray(get(ins[3])) if ins[3]
         else np.zeros((nd, 2 * G * H), dtype=np.float32))
    tensors = [W, R, B]
    peepholes = False
    if op == "LSTM" and ins[7]:
        P = np.asarray(get(ins[7]))
        if P.size and np.any(P != 0):
            peepholes = True
            tensors.append(P)
    reset_after = op == "GRU" and int(attrs.get("linear_before_reset", 0)) != 0
    layer = Layer(op.lower(), H, direction, peepholes=peepholes, gru_reset_after=reset_after)
    return layer, tensors


# How one recurrent node's Y ([T, nd, B, H], or [B, T, nd, H] with layout=1) may reach the
# next node's X ([T, B, I] / [B, T, I]): torch.onnx.export writes Squeeze(axis 1) for one
# direction and Transpose(perm 0, 2, 1, 3) + Reshape(0, 0, -1) for two; with layout=1,
# Squeeze(axis 2) or Reshape(0, 0, -1).
def _onnx_link(x: str, y: str, producers: Dict[str, Any], const: Any, layout: int) -> bool:
    """True when the value `x` is the recurrent output `y` merged to [.., .., nd*H] by one of
    the accepted patterns."""
    node = producers.get(x)
    if node is None:
        return False
    attrs = _onnx_attrs(node)
    if node.op_type == "Squeeze":
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = const(node.input[1])
        ok_axis = 2 if layout else 1
        return (node.input[0] == y and axes is not None and
                [int(a) for a in np.ravel(axes)] in ([ok_axis], [ok_axis - 4]))
    if node.op_type == "Reshape":
        shape = const(node.input[1]) if len(node.input) > 1 else None
        if shape is None or [int(v) for v in np.ravel(shape)][:2] != [0, 0] or \
                len(np.ravel(shape)) != 3 or int(np.ravel(shape)[2]) not in (-1,):
            return False
        src = node.input[0]
        if layout:
            return src == y
        t = producers.get(src)
        return (t is not None and t.op_type == "Transpose" and t.input[0] == y and
                [int(p) for p in _onnx_attrs(t).get("perm", [])] == [0, 2, 1, 3])
    return False


def onnx_model_stack(model: Any, values: Optional[Dict[str, Any]] = None
                     ) -> Tuple[List[Any], List[List[np.ndarray]]]:
    """(layers, per-layer SLSTM_FORMAT_ONNX tensors) of the LSTM and GRU nodes of an ONNX
    model (a ModelProto or a path), in graph order: Model.from_weights(tensors, "onnx",
    layers=layers) makes the model (Model.from_onnx does both). Each node is read by
    onnx_node_layer. A stack must be one chain: each node's X is the previous node's Y
    through the patterns torch.onnx.export writes (Squeeze of the direction axis; Transpose
    + Reshape to [T, B, 2H] for a bidirectional node); anything else is a ValueError. The
    weights are initializers, Constant nodes or `values` ({input name: array}, for graphs
    that take them as inputs, like ONNX's own node tests). The graph's sequence_lens,
    initial_h and initial_c are inputs of a run (Session.forward's), not of the model: fixed
    in the graph (but zeros) or computed by other nodes they are refused, as are ops before
    the stack (but a Transpose(perm=[1, 0, 2]) of the input), graph outputs computed after
    it, and initializers whose external data was not loaded (docs/interop.md)."""
    import onnx
    from onnx import numpy_helper

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(model)
    external = [t.name for t in model.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:   # numpy_helper would read them relative to the working directory
        raise ValueError("initializer %r keeps its data in an external file that was not "
                         "loaded: pass the model's path, or a ModelProto loaded with "
                         "onnx.load(path) (load_external_data=True)" % external[0])
    arrays: Dict[str, Any] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producers: Dict[str, Any] = {}
    for node in model.graph.node:
        for out in node.output:
            producers[out] = node
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    arrays[node.output[0]] = numpy_helper.to_array(a.t)
    graph_constants = set(arrays)   # initializers and Constant nodes (not `values`)
    if values:
        arrays.update({k: _arr(v) for k, v in values.items()})

    def const(name: str) -> Optional[np.ndarray]:
        return np.asarray(arrays[name]) if name in arrays else None

    rnn_nodes = [n for n in model.graph.node if n.op_type in _ONNX_DEFAULT_ACTIVATIONS]
    layers: List[Any] = []
    weights: List[List[np.ndarray]] = []
    prev: Optional[Tuple[Any, int]] = None
    for node in rnn_nodes:
        _onnx_check_run_inputs(node, rnn_nodes, producers, graph_constants, const,
                               first=prev is None)

        def get(name: str, node: Any = node) -> np.ndarray:
            if name not in arrays:
                raise ValueError("%s node %r: input %r is neither an initializer nor a "
                                 "Constant (pass its value in values=)"
                                 % (node.op_type, node.name, name))
            return np.asarray(arrays[name])

        layer, tensors = onnx_node_layer(node, get)
        layout = int(_onnx_attrs(node).get("layout", 0))
        if prev is not None:
            p_node, p_layout = prev
            y = p_node.output[0] if p_node.output else ""
            if p_layout != layout or not y or not _onnx_link(node.input[0], y, producers,
                                                             const, layout):
                src = producers.get(node.input[0])
                raise ValueError(
                    "%s node %r: its input X (%r, from %s) is not the previous recurrent "
                    "node %r's output Y merged to [T, B, directions*H] (Squeeze of the "
                    "direction axis, or Transpose(perm=[0, 2, 1, 3]) + Reshape([0, 0, -1]), "
                    "as torch.onnx.export writes them; same layout); this graph is not one "
                    "stack" % (node.op_type, node.name, node.input[0],
                               "a %s node" % src.op_type if src is not None else
                               "the graph's inputs", p_node.name))
        layers.append(layer)
        weights.append(tensors)
        prev = (node, layout)
    if not layers:
        raise ValueError("the ONNX graph has no LSTM or GRU node")
    _onnx_check_outputs(model.graph, rnn_nodes, producers)
    return layers, weights


# Ops through which a recurrent node's initial state or lengths may come from the graph's
# inputs (or zeros): slicing, reshaping, casting, broadcasting, as torch.onnx.export writes
# them (a layer's h0 a Slice of the graph's h0; dynamic zeros a ConstantOfShape). The indices
# are the data inputs (None: all).
_ONNX_STATE_OPS: Dict[str, Optional[Tuple[int, ...]]] = {
    "Slice": (0,), "Split": (0,), "Gather": (0,), "Squeeze": (0,), "Unsqueeze": (0,),
    "Reshape": (0,), "Identity": (0,), "Expand": (0,), "Transpose": (0,), "Cast": (0,),
    "Concat": None}


def _onnx_run_source(name: str, producers: Dict[str, Any], graph_constants: Any,
                     const: Any, zeros_ok: bool) -> Tuple[Optional[str], frozenset]:
    """(problem, graph inputs): what `name` derives from, through _ONNX_STATE_OPS. problem is
    None when every source is a graph input (a run's input) or, with zeros_ok, a zero
    constant (a ConstantOfShape without a value, or of zero); else it says what fixes or
    computes the value in the graph."""
    todo, seen, inputs = [name], set(), set()
    while todo:
        n = todo.pop()
        if not n or n in seen:
            continue
        seen.add(n)
        if n in graph_constants:
            if zeros_ok and not np.any(np.asarray(const(n))):
                continue
            return ("a nonzero constant of the graph" if zeros_ok else
                    "a constant of the graph"), frozenset()
        node = producers.get(n)
        if node is None:
            inputs.add(n)   # a graph input
            continue
        if node.op_type == "ConstantOfShape":
            value = _onnx_attrs(node).get("value")
            if value is not None:
                from onnx import numpy_helper
                value = numpy_helper.to_array(value)
            if zeros_ok and (value is None or not np.any(value)):
                continue
            return ("a nonzero constant of the graph" if zeros_ok else
                    "a constant of the graph"), frozenset()
        if node.op_type not in _ONNX_STATE_OPS:
            return "computed by a %s node %r" % (node.op_type, node.name), frozenset()
        which = _ONNX_STATE_OPS[node.op_type]
        todo.extend(node.input if which is None else
                    [node.input[i] for i in which if i < len(node.input)])
    return None, frozenset(inputs)


def _onnx_check_run_inputs(node: Any, rnn_nodes: List[Any], producers: Dict[str, Any],
                           graph_constants: Any, const: Any, first: bool) -> None:
    """What a recurrent node takes besides its weights must be what a run of the stack
    takes (Session.forward's input, initial state and lengths: graph inputs, sliced or
    reshaped as torch writes them), never computed in the graph or fixed in it (zero initial
    states excepted: the library's default): refused otherwise, naming the node and input."""
    what = "%s node %r" % (node.op_type, node.name)
    ins = list(node.input) + [""] * 8
    if first:
        src = producers.get(ins[0])
        if src is not None and not (src.op_type == "Transpose" and src.input[0] not in
                                    producers and [int(p) for p in _onnx_attrs(src).get(
                                        "perm", [])] == [1, 0, 2]):
            raise ValueError("%s: its input X (%r) is computed by a %s node %r: the library "
                             "runs the recurrent stack alone, so what the graph computes "
                             "before it would be lost (only a Transpose(perm=[1, 0, 2]) of "
                             "the graph's input, torch's batch_first, is taken: the layout "
                             "is chosen per call)" % (what, ins[0], src.op_type, src.name))
    n_state = 7 if node.op_type == "LSTM" else 6
    for k, role in ((5, "initial_h"), (6, "initial_c"))[:n_state - 5]:
        problem, _ = _onnx_run_source(ins[k], producers, graph_constants, const, True)
        if problem is not None:
            raise ValueError("%s: its %s (%r) is %s: the library takes a stack's initial "
                             "state per call (Session.forward's initial_state), so it would "
                             "be lost; make it a graph input" % (what, role, ins[k], problem))
    lens_of = [_onnx_run_source((list(n.input) + [""] * 8)[4], producers, graph_constants,
                                const, False) for n in (node, rnn_nodes[0])]
    if lens_of[0][0] is not None:
        raise ValueError("%s: its sequence_lens (%r) is %s: the library takes lengths per "
                         "call (Session.forward's sequence_lengths); make it a graph input"
                         % (what, ins[4], lens_of[0][0]))
    if lens_of[0][1] != lens_of[1][1]:
        raise ValueError("%s: its sequence_lens (%r, from %s) differs from the first "
                         "recurrent node's (from %s): the library applies one set of lengths "
                         "to every layer, so every node must take the same input (or none)"
                         % (what, ins[4], sorted(lens_of[0][1]) or "none",
                            sorted(lens_of[1][1]) or "none"))


# Ops through which a graph output may come from the stack: reshaping and concatenation.
_ONNX_OUTPUT_OPS = ("Squeeze", "Unsqueeze", "Transpose", "Reshape", "Concat", "Identity")


def _onnx_check_outputs(graph: Any, rnn_nodes: List[Any], producers: Dict[str, Any]) -> None:
    """Every declared graph output must be the stack's: the last recurrent node's Y, or
    any node's final states Y_h / Y_c, reshaped or concatenated (as torch.onnx.export writes
    them); an output computed after the stack or from an earlier node's Y is refused."""
    last = rnn_nodes[-1]
    rnn_out = {out: (node, k) for node in rnn_nodes for k, out in enumerate(node.output)
               if out}
    for gout in graph.output:
        todo, seen = [gout.name], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in rnn_out:
                node, k = rnn_out[name]
                if k == 0 and node is not last:
                    raise ValueError("graph output %r is node %r's Y, not the last recurrent "
                                     "node's (%r): the library's output is the stack's last "
                                     "layer" % (gout.name, node.name, last.name))
                continue
            src = producers.get(name)
            if src is None or src.op_type not in _ONNX_OUTPUT_OPS:
                raise ValueError("graph output %r is %s: the library computes the recurrent "
                                 "stack alone, so the graph's result would differ" % (
                                     gout.name, "computed by a %s node %r after the stack"
                                     % (src.op_type, src.name) if src is not None else
                                     "not an output of the recurrent stack"))
            todo.extend(src.input[:] if src.op_type == "Concat" else src.input[:1])


def onnx_model_layers(model: Any) -> List[List[Any]]:
    """Per-layer (W, R, B) of the forward LSTM nodes of an ONNX model (a ModelProto or a
    path), in graph order, for Model.from_weights(layers, "onnx") (stacks of BasicLSTMCell
    layers). Graphs with other nodes (GRU, peepholes, reverse or bidirectional direction):
    onnx_model_stack / Model.from_onnx. Refusals as onnx_node_layer."""
    layers, weights = onnx_model_stack(model)
    for k, L in enumerate(layers):
        if not L.is_basic:
            raise _unsupported("ONNX recurrent node %d is %r (a peephole LSTM, a GRU or "
                               "another direction): onnx_model_layers gives forward LSTM "
                               "nodes only; use onnx_model_stack or stacklstm.Model.from_onnx"
                               % (k, L), "onnx_model_layers")
    return [[np.asarray(t, dtype=np.float64) for t in w] for w in weights]


# ---- Keras --------------------------------------------------------------------------------

def keras_model_layers(model: Any) -> Tuple[str, List[List[Any]]]:
    """(format, per-layer [kernel, recurrent_kernel, bias]) of the LSTM / CuDNNLSTM layers of
    a Keras model, in order. All must be of one kind. Models with GRU or Bidirectional
    layers: keras_model_stack / Model.from_keras."""
    layers, kinds = [], set()
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("GRU", "Bidirectional"):
            raise ValueError("%s: a %s layer: keras_model_layers gives LSTM / CuDNNLSTM layers "
                             "only (keras_model_stack and Model.from_keras read it)"
                             % (layer.name, kind))
        if kind not in ("LSTM", "CuDNNLSTM"):
            continue
        cfg = layer.get_config()
        if kind == "LSTM":
            if cfg.get("recurrent_activation") not in ("sigmoid", None):
                raise ValueError("%s: recurrent_activation %r is not supported (sigmoid only)"
                                 % (layer.name, cfg.get("recurrent_activation")))
            if cfg.get("activation") not in ("tanh", None):
                raise ValueError("%s: activation %r is not supported (tanh only)"
                                 % (layer.name, cfg.get("activation")))
        if cfg.get("go_backwards"):
            raise ValueError("%s: go_backwards=True is not supported" % layer.name)
        if kind == "LSTM" and not cfg.get("use_bias", True):
            w = layer.get_weights()
            w.append(np.zeros(w[1].shape[1], dtype=np.float32))
            layers.append(w)
            kinds.add(kind)
            continue
        layers.append(layer.get_weights())
        kinds.add(kind)
    if not layers:
        raise ValueError("the Keras model has no LSTM layer")
    if len(kinds) > 1:
        raise ValueError("the model mixes LSTM and CuDNNLSTM layers")
    return ("keras_cudnn" if "CuDNNLSTM" in kinds else "keras"), layers


def _keras_rnn_check(layer: Any, kind: str) -> Dict[str, Any]:
    """The config of a Keras LSTM / GRU layer, refusing what the library does not compute."""
    cfg = layer.get_config()
    if kind in ("LSTM", "GRU"):
        if cfg.get("recurrent_activation") not in ("sigmoid", None):
            raise ValueError("%s: recurrent_activation %r is not supported (sigmoid only)"
                             % (layer.name, cfg.get("recurrent_activation")))
        if cfg.get("activation") not in ("tanh", None):
            raise ValueError("%s: activation %r is not supported (tanh only)"
                             % (layer.name, cfg.get("activation")))
    return cfg


def _keras_weights(layer: Any, kind: str, cfg: Dict[str, Any]) -> List[np.ndarray]:
    """[kernel, recurrent_kernel, bias] of one Keras LSTM / GRU / CuDNNLSTM layer (zeros
    for a layer without biases)."""
    w = [np.asarray(a) for a in layer.get_weights()]
    if len(w) == 2 and not cfg.get("use_bias", True):
        cols = w[1].shape[1]
        shape = (2, cols) if kind == "GRU" and cfg.get("reset_after", True) else (cols,)
        w.append(np.zeros(shape, dtype=np.float32))
    if len(w) != 3:
        raise ValueError("%s: %d weight arrays, expected kernel, recurrent_kernel and bias"
                         % (layer.name, len(w)))
    return w


# Keras layers that compute nothing at inference (the stack may pass through them), recurrent
# layers the library reads, and recurrent layers it does not.
_KERAS_IDENTITY = ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout",
                   "AlphaDropout", "ActivityRegularization")
_KERAS_RECURRENT = ("LSTM", "GRU", "CuDNNLSTM", "CuDNNGRU", "Bidirectional")
_KERAS_OTHER_RECURRENT = ("RNN", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
                          "StackedRNNCells", "LSTMCell", "GRUCell", "SimpleRNNCell")


def _keras_model_nodes(model: Any, layer: Any) -> Optional[List[Any]]:
    """The calls of `layer` inside `model` (its graph's nodes: `_nodes_by_depth`, tf_keras
    and Keras 3), or None when the model does not hold them. A layer may be shared with
    other models (Keras' seq2seq inference decoder): only this model's calls count."""
    by_depth = getattr(model, "_nodes_by_depth", None)
    if not by_depth:
        return None
    out = []
    for nodes in by_depth.values():
        for n in nodes:
            owner = getattr(n, "layer", None)
            if owner is None:
                owner = getattr(n, "operation", None)
            if owner is layer:
                out.append(n)
    return out


def _keras_input_layer(layer: Any, model: Any) -> Tuple[bool, Any]:
    """(known, producer): the layer of the model that computes `layer`'s input, through
    identity layers (Dropout, ...), None for the model's input; known is False when the
    model holds no graph (a Sequential never called). Refuses a layer called more than once
    in the model and initial states computed by the model's layers."""
    src = layer
    ids = {id(x) for x in model.layers}
    while True:
        nodes = _keras_model_nodes(model, src)
        if nodes:   # the model's own graph
            calls = len(nodes)
            inp: Any = getattr(nodes[0], "input_tensors", None)   # a tensor or a list (no
            if inp is None or (isinstance(inp, (list, tuple)) and len(inp) == 0):  # bool())
                return False, None
        else:
            calls = len(getattr(src, "_inbound_nodes", None) or [None])
            try:
                inp = src.input
            except Exception:   # never called (a Sequential without an Input): no graph
                return False, None
        if calls > 1:
            raise ValueError("%s: the layer is called %d times in the model; the library reads "
                             "one chain of recurrent layers" % (src.name, calls))
        if isinstance(inp, (list, tuple)):
            # initial states (inputs of the model: given per call, Session.forward's
            # initial_state) or a mask; a state computed by a layer of the model is refused
            for extra in inp[1:]:
                h = getattr(extra, "_keras_history", None)
                if h is not None and id(h[0]) in ids and type(h[0]).__name__ != "InputLayer":
                    raise ValueError("%s: its initial state is computed by %s (%s); the "
                                     "library takes the initial state per call, so it would "
                                     "be lost" % (src.name, h[0].name, type(h[0]).__name__))
            inp = inp[0]
        history = getattr(inp, "_keras_history", None)
        producer = history[0] if history is not None else None
        if producer is None or type(producer).__name__ == "InputLayer":
            return True, None
        if type(producer).__name__ not in _KERAS_IDENTITY:
            return True, producer
        src = producer


def _keras_has_recurrent(model: Any) -> bool:
    """Whether a (nested) model holds a recurrent layer, at any depth."""
    for layer in getattr(model, "layers", []):
        kind = type(layer).__name__
        if kind in _KERAS_RECURRENT or kind in _KERAS_OTHER_RECURRENT or (
                hasattr(layer, "layers") and _keras_has_recurrent(layer)):
            return True
    return False


def _keras_check_structure(model: Any) -> None:
    """The recurrent layers of `model` must be one chain, with nothing between them that
    computes (refused, naming the layer): the library computes the recurrent stack alone."""
    all_layers = list(model.layers)
    kinds = [type(layer).__name__ for layer in all_layers]
    rec = [k for k, kind in enumerate(kinds) if kind in _KERAS_RECURRENT]
    for layer, kind in zip(all_layers, kinds):
        if kind in _KERAS_OTHER_RECURRENT:
            raise ValueError("%s: a %s layer is not one the library reads (LSTM, GRU, "
                             "CuDNNLSTM, CuDNNGRU, Bidirectional of LSTM or GRU)"
                             % (layer.name, kind))
        if hasattr(layer, "layers") and hasattr(layer, "get_weights") and \
                _keras_has_recurrent(layer):
            raise ValueError("%s: a nested model (%s) with recurrent layers: the library reads "
                             "the recurrent layers of one flat model; flatten it"
                             % (layer.name, kind))
    if not rec:
        return
    last = rec[-1]
    for k in range(rec[0] + 1, last):
        layer, kind = all_layers[k], kinds[k]
        if kind not in _KERAS_RECURRENT and kind not in _KERAS_IDENTITY:
            raise ValueError("%s (%s) sits between recurrent layers: the library computes the "
                             "recurrent stack alone, so its output would differ"
                             % (layer.name, kind))
    for i, k in enumerate(rec):
        known, src = _keras_input_layer(all_layers[k], model)
        if i == 0:
            if src is not None and type(src).__name__ in _KERAS_RECURRENT:
                raise ValueError("%s: its input comes from %s, after it in the model's "
                                 "layers" % (all_layers[k].name, src.name))
            continue
        prev = all_layers[rec[i - 1]]
        if known and src is not prev:
            raise ValueError("%s: its input comes from %s, not from the recurrent layer "
                             "before it (%s): the layers are not one stack (branches?)"
                             % (all_layers[k].name, "the model's input" if src is None else
                                "%s (%s)" % (src.name, type(src).__name__), prev.name))
    majors = {bool(getattr(getattr(all_layers[k], "forward_layer", all_layers[k]),
                           "time_major", False)) for k in rec}
    if len(majors) > 1:
        raise ValueError("the recurrent layers mix time_major=True and False; the library "
                         "takes one layout per call")


def keras_model_stack(model: Any) -> Tuple[str, List[Any], List[Dict[str, np.ndarray]]]:
    """(format, layers, per-layer tensors) of the recurrent layers of a Keras model, in
    order: LSTM, GRU (reset_after True or False), Bidirectional(LSTM | GRU) with
    merge_mode="concat" ("keras" format; a Bidirectional layer's tensors are keyed
    "forward/kernel", ..., "backward/kernel", ...), or CuDNNLSTM / CuDNNGRU layers only
    ("keras_cudnn"). Model.from_weights(tensors, format, layers=layers) makes the model
    (Model.from_keras does both). The model is the recurrent stack: layers before the first
    recurrent layer (its input is the stack's input) and after the last are not part of it;
    between recurrent layers only Dropout-like layers (no computation at inference) may
    sit. The output is every step's (return_sequences=True's): a last layer with
    return_sequences=False returns Keras' output at each row's last step, out[:, -1] (a
    bidirectional one: out[:, -1, :H] forward, and the backward half at the row's first
    step, out[:, 0, H:] = final_state.bw.h). A mask (Masking, mask_zero) is not part of the
    stack: rows padded at their end give Keras' numbers on their valid steps with
    sequence_lengths; a mask that skips other steps (pre-padding) has no equivalent. Initial
    states that are inputs of the model are given per call (Session.forward). Refused with a
    ValueError naming the layer: activations other than tanh / sigmoid, go_backwards=True
    (Keras then returns the outputs in reversed order), other merge modes, a backward_layer
    unlike its forward one, layers between recurrent layers that compute, recurrent layers
    not chained to each other (branches, a layer called twice, initial states computed in
    the model), nested models, other recurrent layers (RNN(cell), SimpleRNN, ConvLSTM),
    mixed time_major."""
    from .layers import Layer

    _keras_check_structure(model)
    layers: List[Any] = []
    weights: List[Dict[str, np.ndarray]] = []
    kinds = set()
    for layer in model.layers:
        kind = type(layer).__name__
        inner, direction = layer, "forward"
        if kind == "Bidirectional":
            inner = layer.forward_layer
            if type(inner).__name__ not in ("LSTM", "GRU"):
                raise ValueError("%s: Bidirectional(%s) is not supported (LSTM or GRU only)"
                                 % (layer.name, type(inner).__name__))
            if layer.merge_mode != "concat":
                raise ValueError("%s: merge_mode %r is not supported (concat only: the "
                                 "library's bidirectional output is concat(forward, backward))"
                                 % (layer.name, layer.merge_mode))
            direction = "bidirectional"
        elif kind not in ("LSTM", "GRU", "CuDNNLSTM", "CuDNNGRU"):
            continue
        ikind = type(inner).__name__
        cfg = _keras_rnn_check(inner, ikind)
        if cfg.get("go_backwards"):
            raise ValueError("%s: go_backwards=True is not supported (Keras returns the "
                             "outputs in reversed order; Bidirectional is)" % layer.name)
        if direction == "bidirectional":
            bw = layer.backward_layer
            bcfg = _keras_rnn_check(bw, type(bw).__name__)
            for key in ("units", "reset_after", "use_bias"):
                if type(bw).__name__ != ikind or bcfg.get(key) != cfg.get(key):
                    raise ValueError("%s: its backward_layer (%s, %s=%r) differs from its "
                                     "forward layer (%s, %s=%r); the library's bidirectional "
                                     "layer has one cell" % (layer.name, type(bw).__name__, key,
                                                              bcfg.get(key), ikind, key,
                                                              cfg.get(key)))
        units = int(cfg["units"])
        if ikind in ("GRU", "CuDNNGRU"):
            L = Layer("gru", units, direction, gru_reset_after=bool(cfg.get("reset_after",
                                                                             True)))
        else:
            L = Layer("lstm", units, direction)
        if direction == "bidirectional":
            fw = _keras_weights(layer.forward_layer, ikind, cfg)
            bww = _keras_weights(layer.backward_layer, ikind, layer.backward_layer.get_config())
            names = ("kernel", "recurrent_kernel", "bias")
            t = {"forward/" + n: a for n, a in zip(names, fw)}
            t.update({"backward/" + n: a for n, a in zip(names, bww)})
        else:
            t = dict(zip(("kernel", "recurrent_kernel", "bias"),
                         _keras_weights(layer, ikind, cfg)))
        kinds.add("cudnn" if ikind in ("CuDNNLSTM", "CuDNNGRU") else "other")
        layers.append(L)
        weights.append(t)
    if not layers:
        raise ValueError("the Keras model has no LSTM, GRU or Bidirectional layer")
    if len(kinds) > 1:
        raise ValueError("the model mixes CuDNNLSTM / CuDNNGRU with other recurrent layers")
    return ("keras_cudnn" if "cudnn" in kinds else "keras"), layers, weights


# ---- export to framework names ------------------------------------------------------------

def to_torch_state_dict(model: Any, single_module: Optional[bool] = None
                        ) -> Dict[str, np.ndarray]:
    """The model's weights as a PyTorch state_dict of NumPy arrays (SLSTM_FORMAT_PYTORCH):
    `weight_ih_l{k}`, ..., `weight_hr_l{k}` (projections), `..._l{k}_reverse` (bidirectional
    layers) for one multi-layer nn.LSTM / nn.GRU when every layer is the same (or
    single_module=True), else `{k}.weight_ih_l0` ... for a ModuleList of single-layer ones.
    LSTM: forget_bias is folded into bias_ih once; bias_hh is zeros. GRU: bias_ih and bias_hh
    are b_x and b_h. Layers PyTorch cannot express (peepholes, clipping, a reset-before GRU,
    a reverse-only layer) raise stacklstm.UnsupportedError naming the layer and field;
    residual connections are not in a state_dict (the module must add them)."""
    layers = model.export("pytorch")
    kinds = model.layers if hasattr(model, "layers") else None
    same = (len(set(model.hidden_sizes)) == 1 if kinds is None else
            len({(L.cell, L.hidden_size, L.direction, L.proj_size) for L in kinds}) == 1)
    if single_module is None:
        single_module = same
    if single_module and not same:
        raise ValueError("one nn.LSTM / nn.GRU needs layers of one kind and size, got %s"
                         % (list(kinds) if kinds is not None else list(model.hidden_sizes),))
    out = {}
    for k, layer in enumerate(layers):
        for name, a in layer.items():
            rev = name.endswith("_reverse")
            base = name[:-len("_reverse")] if rev else name
            key = "%s_l%d%s" % (base, k if single_module else 0, "_reverse" if rev else "")
            out[key if single_module else "%d.%s" % (k, key)] = a
    return out


def to_onnx(model: Any, batch_major: bool = False, sequence_lengths: bool = False,
            opset: int = 14) -> Any:
    """The model as an ONNX graph (an onnx.ModelProto; needs the onnx package): one `LSTM` or
    `GRU` node per layer with the weights as initializers (SLSTM_FORMAT_ONNX: W, R, B, and P
    for peepholes; the model's forget_bias folded into B once), chained as torch.onnx.export
    chains them (Squeeze of the direction axis, or Transpose + Reshape after a bidirectional
    node), so that Model.from_onnx reads it back. Input "X" [T, B, input_size] ([B, T, ...]
    when batch_major), output "Y" [T, B, output_size] (likewise); with sequence_lengths an
    int32 input "sequence_lens" [B] goes to every node (ONNX then zeroes Y past each
    length, as the library does). Initial states are zeros. Layers ONNX's operators cannot
    express (projections, cell clipping) raise stacklstm.UnsupportedError; residual
    connections (no ONNX attribute) a ValueError."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = list(model.layers)
    for l, L in enumerate(layers):
        if L.residual:
            raise ValueError("layer %d (%r): a residual connection is not an attribute of "
                             "ONNX's LSTM / GRU; to_onnx writes stacks without them" % (l, L))
    tensors = model.export("onnx")   # refuses what ONNX cannot express, naming the field
    nodes: List[Any] = []
    inits: List[Any] = []
    x = "X"
    if batch_major:
        nodes.append(helper.make_node("Transpose", ["X"], ["X_tm"], perm=[1, 0, 2]))
        x = "X_tm"
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis_1"))
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), "merge_shape"))
    for l, (L, t) in enumerate(zip(layers, tensors)):
        names = {}
        for key in ("W", "R", "B", "P"):
            if key in t:
                names[key] = "layer%d.%s" % (l, key)
                inits.append(numpy_helper.from_array(t[key], names[key]))
        ins = [x, names["W"], names["R"], names["B"], "sequence_lens" if sequence_lengths else ""]
        if "P" in names:
            ins += ["", "", names["P"]]
        attrs: Dict[str, Any] = {"hidden_size": L.hidden_size, "direction": L.direction}
        if L.cell == "gru":
            attrs["linear_before_reset"] = int(L.gru_reset_after)
        y = "layer%d.Y" % l
        nodes.append(helper.make_node(L.cell.upper(), ins, [y], name="layer%d" % l, **attrs))
        out = "layer%d.out" % l
        if L.directions == 1:
            nodes.append(helper.make_node("Squeeze", [y, "axis_1"], [out]))
        else:
            nodes.append(helper.make_node("Transpose", [y], [y + "_t"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [y + "_t", "merge_shape"], [out]))
        x = out
    if batch_major:
        nodes.append(helper.make_node("Transpose", [x], ["Y"], perm=[1, 0, 2]))
    else:
        nodes.append(helper.make_node("Identity", [x], ["Y"]))
    dims = ["B", "T"] if batch_major else ["T", "B"]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                            dims + [model.input_size])]
    if sequence_lengths:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["B"]))
    graph = helper.make_graph(nodes, "stacklstm", inputs, [helper.make_tensor_value_info(
        "Y", TensorProto.FLOAT, dims + [model.output_size])], initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="stacklstm")
    onnx.checker.check_model(proto)
    return proto


def to_tf_variables(model: Any, scope: Optional[str] = None, old_names: bool = False
                    ) -> Dict[str, np.ndarray]:
    """The model's weights under TF 1.x checkpoint names (SLSTM_FORMAT_TF). A stack of
    forward layers: `<scope>/multi_rnn_cell/cell_<k>/<cell>/...` (scope "rnn", dynamic_rnn's
    default), <cell> being basic_lstm_cell for a BasicLSTMCell layer (old_names: `/weights`,
    `/biases`), lstm_cell for an LSTMCell (kernel, bias, w_i_diag, w_f_diag, w_o_diag,
    projection/kernel), gru_cell for a GRUCell (gates/kernel, gates/bias, candidate/kernel,
    candidate/bias). A stack of bidirectional layers: stack_bidirectional_dynamic_rnn's
    `<scope>/cell_<k>/bidirectional_rnn/fw/<cell>/...` and `/bw/` (scope
    "stack_bidirectional_rnn"). The model's forget_bias, clips and residual connections are
    NOT in them (TF keeps them in the graph: LSTMCell(forget_bias=model.forget_bias, ...)).
    Other stacks (reverse-only layers, forward and bidirectional layers mixed) have no TF
    naming: ValueError; a reset-after GRU: stacklstm.UnsupportedError."""
    layers = list(getattr(model, "layers", ()))
    if not layers:   # a model of a library before 0.4: BasicLSTMCell layers
        from .layers import Layer
        layers = [Layer("lstm", H) for H in model.hidden_sizes]
    dirs = {L.direction for L in layers}
    if dirs not in ({"forward"}, {"bidirectional"}):
        raise ValueError("TF names a stack of forward layers (MultiRNNCell) or of "
                         "bidirectional ones (stack_bidirectional_dynamic_rnn); this model's "
                         "directions are %s" % [L.direction for L in layers])
    bidirectional = dirs == {"bidirectional"}
    if scope is None:
        scope = "stack_bidirectional_rnn" if bidirectional else "rnn"
    out = {}
    for k, (L, tensors) in enumerate(zip(layers, model.export("tf"))):
        if L.cell == "gru":
            cell = "gru_cell"
        elif L.peepholes or L.proj_size:
            cell = "lstm_cell"
        else:
            cell = "basic_lstm_cell"
        for name, a in tensors.items():
            d, n = (name.split("/", 1) if bidirectional else ("", name))
            if cell == "basic_lstm_cell" and old_names:
                n = {"kernel": "weights", "bias": "biases"}[n]
            if bidirectional:
                key = "%s/cell_%d/bidirectional_rnn/%s/%s/%s" % (scope, k, d, cell, n)
            else:
                key = "%s/multi_rnn_cell/cell_%d/%s/%s" % (scope, k, cell, n)
            out[key] = a
    return out
