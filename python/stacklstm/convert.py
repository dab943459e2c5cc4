"""Convert a framework's own file to a stacklstm model file (safetensors).

    python -m stacklstm.convert torch  state_dict.pt   model.safetensors [--prefix rnn.]
    python -m stacklstm.convert tf     ckpt/model.ckpt model.safetensors [--forget-bias 1.0]
    python -m stacklstm.convert onnx   model.onnx      model.safetensors
    python -m stacklstm.convert keras  model.h5        model.safetensors

Each source needs its framework (torch, tensorflow, onnx, tf_keras) importable; the output
is written by libstacklstm itself (Model.save) after it validated the weights. Every stack a
source can hold is read (docs/python.md, "Layers beyond BasicLSTMCell"): nn.LSTM (proj_size)
and nn.GRU state dicts, bidirectional included; ONNX LSTM/GRU graphs; TF LSTMCell/GRUCell and
stack_bidirectional_dynamic_rnn checkpoints (cell_clip, proj_clip and residual wrappers are
not in checkpoints: use Model.from_tf_variables(layers=...) in Python for those); Keras
LSTM/GRU/Bidirectional models.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

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


def from_tf(path: str, forget_bias: float = 1.0, scope: Optional[str] = None) -> Model:
    return Model.from_tf_variables(path, forget_bias=forget_bias, scope=scope)


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
            scope: Optional[str] = None) -> str:
    """Converts `src` (a `kind` file: torch, tf, onnx, keras) to the model file `dst`."""
    if kind == "torch":
        model = from_torch(src, prefix)
        layout = "pytorch"
    elif kind == "tf":
        model = from_tf(src, forget_bias, scope)
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


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stacklstm.convert",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=["torch", "tf", "onnx", "keras"])
    ap.add_argument("src", help="the framework's file (TF: the checkpoint prefix)")
    ap.add_argument("dst", help="the model file to write (.safetensors)")
    ap.add_argument("--forget-bias", type=float, default=1.0,
                    help="TF only: BasicLSTMCell's forget_bias (not in checkpoints; default 1.0)")
    ap.add_argument("--prefix", default="", help="torch only: state_dict key prefix")
    ap.add_argument("--scope", default=None, help="tf only: variable scope of the RNN")
    args = ap.parse_args(argv)
    try:
        desc = convert(args.kind, args.src, args.dst, args.forget_bias, args.prefix, args.scope)
    except Exception as e:   # report, don't trace
        print("stacklstm.convert: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print("wrote %s: %s" % (args.dst, desc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
