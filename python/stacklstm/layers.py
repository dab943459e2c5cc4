"""Layer descriptions (slstm_layer_config, since libstacklstm 0.4) and the state a layer keeps.

A model is a stack of layers; each is a `Layer`: its cell ("lstm": TF LSTMCell /
BasicLSTMCell, optionally with peepholes, cell clipping and an output projection; "gru": in
either reset placement), hidden size, direction ("forward", "reverse", "bidirectional") and
whether a residual connection wraps it. docs/cells.md is the specification of what each
option computes; the library checks every combination when a model is created and names the
layer and field it refuses.

A layer's state in this package (what Session.forward returns per layer, and takes back):

* a forward or reverse LSTM layer: ``LSTMStateTuple(c [B, H], h [B, R])`` (R = proj_size
  with a projection, else H);
* a forward or reverse GRU layer: the array ``h`` [B, H] (TF's GRUCell state);
* a bidirectional layer: ``BidirectionalState(fw, bw)``, each the state of one direction as
  above.
"""

from __future__ import annotations

import collections
import ctypes
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Dict

from ._ints import INT64, checked_int

__all__ = ["Layer", "BidirectionalState", "CELLS", "DIRECTIONS"]

# slstm_cell and slstm_direction values (ABI: appended only, never renumbered).
CELLS: Dict[str, int] = {"lstm": 0, "gru": 1}
DIRECTIONS: Dict[str, int] = {"forward": 0, "reverse": 1, "bidirectional": 2}

BidirectionalState = collections.namedtuple("BidirectionalState", ["fw", "bw"])
BidirectionalState.__doc__ = ("A bidirectional layer's state: (fw, bw), each the state of one "
                              "direction (LSTMStateTuple(c, h) for LSTM, the array h for GRU).")


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise TypeError("Layer.%s must be a bool (or 0/1), got %r" % (name, value))


def _nonneg_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("Layer.%s must be a real number, got %r" % (name, value))
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError("Layer.%s must be finite and >= 0 (0 = none), got %r" % (name, value))
    f = ctypes.c_float(v).value   # the library keeps a float: the Layer holds that value
    if math.isinf(f):
        raise ValueError("Layer.%s: %r is beyond float32's range" % (name, value))
    return f


def _count(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError("Layer.%s must be an integer, got %r" % (name, value))
    v = int(value)
    if v < low:
        raise ValueError("Layer.%s must be >= %d, got %d" % (name, low, v))
    # The C field is an int64_t, which ctypes would silently wrap (2**64 + 4 -> 4).
    return checked_int(v, "Layer." + name, INT64)


@dataclass(frozen=True)
class Layer:
    """One layer of a stack (the C API's slstm_layer_config; docs/cells.md).

    cell: "lstm" or "gru". hidden_size: H >= 1. direction: "forward", "reverse" (reads each
    row's valid part backwards, outputs at the original positions) or "bidirectional"
    (a forward and a reverse cell, output = concat(forward, reverse)). residual: output =
    cell output + layer input (widths must match). LSTM only: peepholes (TF's use_peepholes),
    cell_clip (0 = none), proj_size (0 = none, else 1..H: the state's and output's h has
    width proj_size), proj_clip (0 = none; only with a projection). GRU only:
    gru_reset_after (False: reset before the recurrent matmul, TF GRUCell / Keras
    reset_after=False / ONNX linear_before_reset=0; True: after, PyTorch / Keras default /
    ONNX linear_before_reset=1 / cuDNN).

    Types and enumerations are checked here (TypeError / ValueError naming the field); the
    combinations (a GRU with peepholes, proj_size > hidden_size, ...) are checked by the
    library when a model is made, which names the layer and the field."""

    cell: str
    hidden_size: int
    direction: str = "forward"
    residual: bool = False
    peepholes: bool = False
    cell_clip: float = 0.0
    proj_size: int = 0
    proj_clip: float = 0.0
    gru_reset_after: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.cell, str) or self.cell.lower() not in CELLS:
            raise ValueError("Layer.cell must be one of %s, got %r"
                             % (sorted(CELLS), self.cell))
        if not isinstance(self.direction, str) or self.direction.lower() not in DIRECTIONS:
            raise ValueError("Layer.direction must be one of %s, got %r"
                             % (sorted(DIRECTIONS), self.direction))
        fix = object.__setattr__   # the normalised values (frozen dataclass)
        fix(self, "cell", self.cell.lower())
        fix(self, "direction", self.direction.lower())
        fix(self, "hidden_size", _count(self.hidden_size, "hidden_size", 1))
        fix(self, "residual", _flag(self.residual, "residual"))
        fix(self, "peepholes", _flag(self.peepholes, "peepholes"))
        fix(self, "gru_reset_after", _flag(self.gru_reset_after, "gru_reset_after"))
        fix(self, "cell_clip", _nonneg_float(self.cell_clip, "cell_clip"))
        fix(self, "proj_clip", _nonneg_float(self.proj_clip, "proj_clip"))
        fix(self, "proj_size", _count(self.proj_size, "proj_size", 0))

    def __repr__(self) -> str:
        """Layer('cell', H, and only the fields that differ from their defaults)."""
        parts = [repr(self.cell), str(self.hidden_size)]
        for f in fields(self)[2:]:
            v = getattr(self, f.name)
            if v != f.default:
                parts.append("%s=%r" % (f.name, v))
        return "Layer(%s)" % ", ".join(parts)

    @classmethod
    def lstm(cls, hidden_size: int, direction: str = "forward", residual: bool = False,
             peepholes: bool = False, cell_clip: float = 0.0, proj_size: int = 0,
             proj_clip: float = 0.0) -> "Layer":
        """An LSTM layer (TF LSTMCell; BasicLSTMCell without the options)."""
        return cls("lstm", hidden_size, direction, residual, peepholes, cell_clip, proj_size,
                   proj_clip)

    @classmethod
    def gru(cls, hidden_size: int, reset_after: bool = False, direction: str = "forward",
            residual: bool = False) -> "Layer":
        """A GRU layer; reset_after as gru_reset_after."""
        return cls("gru", hidden_size, direction, residual, gru_reset_after=reset_after)

    @property
    def directions(self) -> int:
        """2 for a bidirectional layer, else 1."""
        return 2 if self.direction == "bidirectional" else 1

    @property
    def cell_output_size(self) -> int:
        """The width of one direction's output and of its state's h: proj_size or H."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    @property
    def output_size(self) -> int:
        """The layer's output width: cell_output_size, times 2 when bidirectional."""
        return self.cell_output_size * self.directions

    @property
    def is_basic(self) -> bool:
        """True for a forward LSTM layer without options (TF BasicLSTMCell)."""
        return (self.cell == "lstm" and self.direction == "forward" and not self.residual
                and not self.peepholes and self.cell_clip == 0.0 and self.proj_size == 0
                and self.proj_clip == 0.0)

    def _to_c(self, out: Any) -> None:
        """Writes this layer into an slstm_layer_config (initialised by the library)."""
        out.cell = CELLS[self.cell]
        out.hidden_size = self.hidden_size
        out.direction = DIRECTIONS[self.direction]
        out.residual = int(self.residual)
        out.peepholes = int(self.peepholes)
        out.cell_clip = self.cell_clip
        out.proj_size = self.proj_size
        out.proj_clip = self.proj_clip
        out.gru_reset_after = int(self.gru_reset_after)

    @classmethod
    def _from_c(cls, c: Any) -> "Layer":
        """The Layer an slstm_layer_config describes (as slstm_model_layer reports it)."""
        cells = {v: k for k, v in CELLS.items()}
        dirs = {v: k for k, v in DIRECTIONS.items()}
        if c.cell not in cells or c.direction not in dirs:
            raise ValueError("the library reports a layer of cell %d, direction %d, which this "
                             "package does not know (a newer library?)" % (c.cell, c.direction))
        return cls(cells[c.cell], int(c.hidden_size), dirs[c.direction], bool(c.residual),
                   bool(c.peepholes), float(c.cell_clip), int(c.proj_size),
                   float(c.proj_clip), bool(c.gru_reset_after))
