"""Convert a framework's own file to a stacklstm model file (safetensors).

    python -m stacklstm.convert torch  state_dict.pt   model.safetensors [--prefix rnn.]
    python -m stacklstm.convert tf     ckpt/model.ckpt model.safetensors [--forget-bias 1.0]
                                       [--cell-clip C] [--proj-clip P] [--residual L,..]
    python -m stacklstm.convert onnx   model.onnx      model.safetensors
    python -m stacklstm.convert keras  model.h5        model.safetensors

Each source needs its framework (torch, tensorflow, onnx, tf_keras) importable; the output
is written by libstacklstm itself (Model.save) after it validated the weights. Every stack a
source can hold is read (docs/python.md, "Layers beyond BasicLSTMCell"): nn.LSTM (proj_size)
and nn.GRU state dicts, bidirectional included; ONNX LSTM/GRU graphs; TF LSTMCell/GRUCell and
stack_bidirectional_dynamic_rnn checkpoints; Keras LSTM/GRU/Bidirectional models.

What a TF checkpoint does not hold comes from options (TF keeps it in the graph-building code):
--forget-bias (BasicLSTMCell's / LSTMCell's forget_bias), --cell-clip and --proj-clip
(LSTMCell's cell_clip and proj_clip: one value for every layer that can take it, or a
comma-separated value per layer, 0 = none) and --residual (the layers wrapped in a
ResidualWrapper, comma-separated indices from 0). A TF source may also be a .npz file of the
variables under their checkpoint names (numpy.savez(path, **{name: value}), e.g. from
tf.train.load_checkpoint on another machine): then tensorflow is not needed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, List, NoReturn, Optional, Sequence

import numpy as np

from .layers import Layer
from .model import Model


def from_torch(path: str, prefix: str = "") -> Model:
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:   # torch < 1.13 has no weights_only
        obj = torch.load(path, map_location="cpu")
    if hasattr(obj, "state_dict"):
        obj = obj.state_dict()
    return Model.from_torch_state_dict(obj, prefix)


def _per_layer(text: Optional[str], n: int, option: str) -> List[float]:
    """--cell-clip / --proj-clip: one value for every layer or one per layer."""
    if text is None:
        return [0.0] * n
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError("%s: %r is not a number or a comma-separated list of numbers"
                         % (option, text)) from None
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError("%s: %d values given, the checkpoint holds %d layers"
                         % (option, len(values), n))
    return values


def tf_layers(found: Sequence[Layer], cell_clip: Optional[str] = None,
              proj_clip: Optional[str] = None, residual: Optional[str] = None) -> List[Layer]:
    """The checkpoint's layers with the options a checkpoint does not hold (see the module's
    text): a single --cell-clip applies to the LSTM layers and a single --proj-clip to the
    layers with a projection; a per-layer list must give 0 where the layer cannot take one
    (else the library refuses the model, naming the layer and the field)."""
    n = len(found)
    cc = _per_layer(cell_clip, n, "--cell-clip")
    pc = _per_layer(proj_clip, n, "--proj-clip")
    single_cc = cell_clip is not None and "," not in cell_clip
    single_pc = proj_clip is not None and "," not in proj_clip
    res = set()
    if residual:
        for word in residual.split(","):
            try:
                k = int(word)
            except ValueError:
                raise ValueError("--residual: %r is not a layer index" % word) from None
            if not 0 <= k < n:
                raise ValueError("--residual: layer %d does not exist (the checkpoint holds "
                                 "layers 0..%d)" % (k, n - 1))
            res.add(k)
    out = []
    for k, L in enumerate(found):
        c = 0.0 if single_cc and L.cell != "lstm" else cc[k]
        p = 0.0 if single_pc and L.proj_size == 0 else pc[k]
        out.append(dataclasses.replace(L, cell_clip=c, proj_clip=p, residual=k in res))
    return out


def _tf_source(path: str) -> Any:
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    return path


def from_tf(path: str, forget_bias: float = 1.0, scope: Optional[str] = None,
            cell_clip: Optional[str] = None, proj_clip: Optional[str] = None,
            residual: Optional[str] = None) -> Model:
    variables = _tf_source(path)
    if cell_clip is None and proj_clip is None and not residual:
        return Model.from_tf_variables(variables, forget_bias=forget_bias, scope=scope)
    from .naming import _tf_variables, tf_variable_stack
    variables = _tf_variables(variables)
    found, _ = tf_variable_stack(variables, scope)
    return Model.from_tf_variables(variables, forget_bias=forget_bias, scope=scope,
                                   layers=tf_layers(found, cell_clip, proj_clip, residual))


def from_onnx(path: str) -> Model:
    return Model.from_onnx(path)


def from_keras(path: str) -> Model:
    import os
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        import tf_keras as keras
    except ImportError:
        from tensorflow import keras
    model = keras.models.load_model(path, compile=False)
    return Model.from_keras(model)


def convert(kind: str, src: str, dst: str, forget_bias: float = 1.0, prefix: str = "",
            scope: Optional[str] = None, cell_clip: Optional[str] = None,
            proj_clip: Optional[str] = None, residual: Optional[str] = None) -> str:
    """Converts `src` (a `kind` file: torch, tf, onnx, keras) to the model file `dst`.
    cell_clip, proj_clip, residual: TF only, the texts of the options of the same names."""
    if kind != "tf" and (cell_clip is not None or proj_clip is not None or residual):
        raise ValueError("--cell-clip, --proj-clip and --residual are for tf checkpoints (a "
                         "%s file holds what it computes)" % kind)
    if kind == "torch":
        model = from_torch(src, prefix)
        layout = "pytorch"
    elif kind == "tf":
        model = from_tf(src, forget_bias, scope, cell_clip, proj_clip, residual)
        layout = "tf"
    elif kind == "onnx":
        model = from_onnx(src)
        layout = "onnx"
    elif kind == "keras":
        model = from_keras(src)
        layout = "keras"
    else:
        raise ValueError("kind must be torch, tf, onnx or keras, got %r" % kind)
    with model:
        model.save(dst, source_layout=layout)
        return repr(model)


class _Parser(argparse.ArgumentParser):
    """argparse with the tool's error form: one line, `stacklstm: convert: <message> (see
    stacklstm convert --help)`, exit status 2 (docs/cli.md)."""

    def error(self, message: str) -> NoReturn:
        print("stacklstm: convert: %s (see stacklstm convert --help)"
              % " ".join(message.split()), file=sys.stderr)
        sys.exit(2)


def main(argv: Optional[List[str]] = None) -> int:
    ap = _Parser(prog="stacklstm convert", description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=["torch", "tf", "onnx", "keras"])
    ap.add_argument("src", help="the framework's file (TF: the checkpoint prefix)")
    ap.add_argument("dst", help="the model file to write (.safetensors)")
    ap.add_argument("--forget-bias", type=float, default=1.0,
                    help="TF only: BasicLSTMCell's forget_bias (not in checkpoints; default 1.0)")
    ap.add_argument("--prefix", default="", help="torch only: state_dict key prefix")
    ap.add_argument("--scope", default=None, help="tf only: variable scope of the RNN")
    ap.add_argument("--cell-clip", default=None, metavar="C[,C..]",
                    help="tf only: LSTMCell's cell_clip, for every LSTM layer or per layer "
                         "(0 = none; not in checkpoints)")
    ap.add_argument("--proj-clip", default=None, metavar="P[,P..]",
                    help="tf only: LSTMCell's proj_clip, for every layer with a projection or "
                         "per layer (0 = none; not in checkpoints)")
    ap.add_argument("--residual", default=None, metavar="L[,L..]",
                    help="tf only: the layers wrapped in a ResidualWrapper (indices from 0; "
                         "not in checkpoints)")
    args = ap.parse_args(argv)
    try:
        desc = convert(args.kind, args.src, args.dst, args.forget_bias, args.prefix, args.scope,
                       args.cell_clip, args.proj_clip, args.residual)
    except Exception as e:   # report in one line, don't trace
        print("stacklstm: convert: %s: %s" % (type(e).__name__, " ".join(str(e).split())),
              file=sys.stderr)
        return 1
    print("wrote %s: %s" % (args.dst, desc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
