"""Framework naming conventions: which tensors of a PyTorch state_dict, a TF checkpoint, an
ONNX graph or a Keras model are the weights of which layer. Each helper returns per-layer
lists in the order of stacklstm.TENSOR_NAMES[format]; Model.from_weights does the rest."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

__all__ = ["torch_state_dict_layers", "tf_variable_layers", "onnx_model_layers",
           "keras_model_layers", "to_torch_state_dict", "to_tf_variables"]


def _arr(a: Any) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


# ---- PyTorch ------------------------------------------------------------------------------

_TORCH_KEY = re.compile(r"^(?:(?P<mod>\d+)\.)?(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|"
                        r"weight_hr)_l(?P<layer>\d+)(?P<rev>_reverse)?$")


def torch_state_dict_layers(state_dict: Any, prefix: str = "") -> List[List[Any]]:
    """Per-layer (weight_ih, weight_hh, bias_ih, bias_hh) from a state_dict of one multi-layer
    nn.LSTM (`weight_ih_l0`, `weight_ih_l1`, ...) or of a sequence of nn.LSTMs (e.g. an
    nn.ModuleList: `0.weight_ih_l0`, `1.weight_ih_l0`, ...), below `prefix` (e.g. "rnn.").
    A state_dict-bearing object (an nn.Module) is accepted too. Layers without biases
    (bias=False) get zeros. Bidirectional and projected (proj_size) LSTMs are rejected."""
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
            raise ValueError("%s: bidirectional nn.LSTM is not supported (this library runs "
                             "forward layers only)" % key)
        if m.group("kind") == "weight_hr":
            raise ValueError("%s: nn.LSTM with proj_size is not supported" % key)
        mod = int(m.group("mod")) if m.group("mod") is not None else -1
        found.setdefault((mod, int(m.group("layer"))), {})[m.group("kind")] = _arr(value)
    if not found:
        raise ValueError("no nn.LSTM weights (weight_ih_l<k>, ...) under prefix %r; keys: %s"
                         % (prefix, sorted(state_dict)[:10]))
    layers = []
    for key in sorted(found):
        t = found[key]
        name = ("%d." % key[0] if key[0] >= 0 else "") + "*_l%d" % key[1]
        for need in ("weight_ih", "weight_hh"):
            if need not in t:
                raise ValueError("%s%s: %s is missing" % (prefix, name, need))
        four_h = t["weight_hh"].shape[0]
        zeros = np.zeros(four_h, dtype=np.float32)
        layers.append([t["weight_ih"], t["weight_hh"], t.get("bias_ih", zeros),
                       t.get("bias_hh", zeros)])
    return layers


# ---- TensorFlow ---------------------------------------------------------------------------

_TF_KEY = re.compile(r"^(?P<scope>.*?)(?:cell_(?P<cell>\d+)/)?"
                     r"(?P<cell_type>basic_lstm_cell|lstm_cell)/"
                     r"(?P<kind>kernel|bias|weights|biases|w_f_diag|w_i_diag|w_o_diag|"
                     r"projection/kernel)$")


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
    pass `scope` (the name prefix before `multi_rnn_cell/` or the cell)."""
    variables = _tf_variables(variables)
    groups: Dict[str, Dict[int, Dict[str, np.ndarray]]] = {}
    for name, value in variables.items():
        n = name[:-2] if name.endswith(":0") else name
        m = _TF_KEY.match(n)
        if m is None:
            continue
        sc = m.group("scope")
        if scope is not None and not sc.startswith(scope):
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


# ---- ONNX ---------------------------------------------------------------------------------

def onnx_model_layers(model: Any) -> List[List[Any]]:
    """Per-layer (W, R, B) of the LSTM nodes of an ONNX model (a ModelProto or a path), in
    graph order. Each node's attributes and P input are checked by the library
    (slstm_onnx_check_node): bidirectional, clip, input_forget, other activations and non-zero
    peepholes raise stacklstm.UnsupportedError. Weights must be initializers."""
    import ctypes

    import onnx
    from onnx import numpy_helper

    from . import _lib
    from ._ints import checked_int
    from .errors import check

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(model)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consts = {}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(a.t)
    inits.update(consts)

    def get(name: str, what: str, node: Any) -> np.ndarray:
        if name not in inits:
            raise ValueError("LSTM node %r: input %s (%r) is not an initializer"
                             % (node.name, what, name))
        return np.asarray(inits[name], dtype=np.float64)

    layers = []
    for node in model.graph.node:
        if node.op_type != "LSTM":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        spec = _lib.padded(_lib.OnnxLstmNode, _lib.lib.slstm_onnx_lstm_node_init_sized)
        keep: List[Any] = []
        if "direction" in attrs:
            d = attrs["direction"]
            spec.s.direction = d if isinstance(d, bytes) else d.encode()
        if "clip" in attrs:
            spec.s.has_clip, spec.s.clip = 1, float(attrs["clip"])
        spec.s.input_forget = checked_int(attrs.get("input_forget", 0),
                                          "LSTM node %r: input_forget" % node.name)
        spec.s.layout = checked_int(attrs.get("layout", 0), "LSTM node %r: layout" % node.name)
        if "activations" in attrs:
            acts = [a if isinstance(a, bytes) else a.encode() for a in attrs["activations"]]
            arr = (ctypes.c_char_p * len(acts))(*acts)
            keep.append(arr)
            spec.s.num_activations = len(acts)
            spec.s.activations = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
        ins = list(node.input) + [""] * 8
        if ins[7]:
            p = np.ascontiguousarray(get(ins[7], "P", node), dtype=np.float32)
            t = _lib.Tensor()
            t.data = p.ctypes.data_as(_lib.c_float_p)
            t.ndim = p.ndim
            for k, s in enumerate(p.shape):
                t.shape[k] = s
            keep += [p, t]
            spec.s.peepholes = ctypes.pointer(t)
        check(_lib.lib.slstm_onnx_check_node(ctypes.byref(spec)),
              "slstm_onnx_check_node (node %r)" % node.name)
        W, R = get(ins[1], "W", node), get(ins[2], "R", node)
        H = R.shape[-1]
        B = get(ins[3], "B", node) if ins[3] else np.zeros((1, 8 * H))
        layers.append([W, R, B])
    if not layers:
        raise ValueError("the ONNX graph has no LSTM node")
    return layers


# ---- Keras --------------------------------------------------------------------------------

def keras_model_layers(model: Any) -> Tuple[str, List[List[Any]]]:
    """(format, per-layer [kernel, recurrent_kernel, bias]) of the LSTM / CuDNNLSTM layers of
    a Keras model, in order. All must be of one kind."""
    layers, kinds = [], set()
    for layer in model.layers:
        kind = type(layer).__name__
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
            if not cfg.get("use_bias", True):
                w = layer.get_weights()
                w.append(np.zeros(w[1].shape[1], dtype=np.float32))
                layers.append(w)
                kinds.add(kind)
                continue
        if cfg.get("go_backwards"):
            raise ValueError("%s: go_backwards=True is not supported" % layer.name)
        layers.append(layer.get_weights())
        kinds.add(kind)
    if not layers:
        raise ValueError("the Keras model has no LSTM layer")
    if len(kinds) > 1:
        raise ValueError("the model mixes LSTM and CuDNNLSTM layers")
    return ("keras_cudnn" if "CuDNNLSTM" in kinds else "keras"), layers


# ---- export to framework names ------------------------------------------------------------

def to_torch_state_dict(model: Any, single_module: Optional[bool] = None
                        ) -> Dict[str, np.ndarray]:
    """The model's weights as a PyTorch state_dict of NumPy arrays: `weight_ih_l{k}` ... for
    one multi-layer nn.LSTM when every layer has the same hidden size (or single_module=True),
    else `{k}.weight_ih_l0` ... for a ModuleList of single-layer nn.LSTMs. forget_bias is
    folded into bias_ih once; bias_hh is zeros."""
    layers = model.export("pytorch")
    same = len(set(model.hidden_sizes)) == 1
    if single_module is None:
        single_module = same
    if single_module and not same:
        raise ValueError("one nn.LSTM needs equal hidden sizes, got %s" % (model.hidden_sizes,))
    out = {}
    for k, layer in enumerate(layers):
        for name, a in layer.items():
            out[("%s_l%d" % (name, k)) if single_module else ("%d.%s_l0" % (k, name))] = a
    return out


def to_tf_variables(model: Any, scope: str = "rnn", old_names: bool = False
                    ) -> Dict[str, np.ndarray]:
    """The model's weights under TF 1.x checkpoint names:
    `<scope>/multi_rnn_cell/cell_<k>/basic_lstm_cell/kernel` and `/bias` (old_names: `/weights`,
    `/biases`). The model's forget_bias is NOT in them (TF keeps it in the graph: pass it to
    BasicLSTMCell(forget_bias=model.forget_bias))."""
    k_name, b_name = ("weights", "biases") if old_names else ("kernel", "bias")
    out = {}
    for k, layer in enumerate(model.export("tf")):
        base = "%s/multi_rnn_cell/cell_%d/basic_lstm_cell/" % (scope, k)
        out[base + k_name] = layer["kernel"]
        out[base + b_name] = layer["bias"]
    return out
