"""Stream slots (libstacklstm's "Stream slots", issue 17): one session that holds the (c, h)
state of up to `max_streams` streams and advances any set of them as one batch.

    streams = stacklstm.Streams(model, max_streams=64, max_batch=16)
    a = streams.open()                          # a stream starting from zeros
    b = streams.open(state)                     # ... or from a state (as Session.forward's)
    out = streams.step([a, b], x)               # x [2, D]: one frame per stream -> [2, H_last]
    out = streams.run([b], chunk)               # chunk [1, T, D] -> [1, T, H_last]
    streams.close(a)

Each stream's numbers are bitwise those of Session.forward at batch 1 fed the same frames
from the same state, on every CPU path (whatever other streams share its calls, their order,
and how its frames were cut into calls); the states never leave the library between calls.

Thread safety: a lock serialises every call on a Streams object (a call made while another
thread's call runs waits for it), so one Streams may be shared by threads; a stream's frames
advance its state in the order the calls take the lock, so callers that feed one stream from
several threads must order those calls themselves.  A failed call (an exception) changes
nothing: no stream is opened, closed or advanced.
"""

from __future__ import annotations

import ctypes
import numbers
import threading
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._ints import checked_int as _int
from ._lib import lib
from .errors import check
from .model import (Model, _Owned, _create_session, _f32, _lengths, _pack_state,
                    _session_options, _unpack_state)
from .state import LSTMStateTuple, is_state_tuple

__all__ = ["Streams"]

_MEMORY_HOST = 0


class _SlotForwardArgs(ctypes.Structure):
    """slstm_slot_forward_args (include/stacklstm/stacklstm.h)."""
    _fields_ = [("struct_size", ctypes.c_uint32), ("layout", ctypes.c_int),
                ("batch", ctypes.c_int64),
                ("slot_ids", ctypes.c_void_p), ("slot_ids_count", ctypes.c_size_t),
                ("time", ctypes.c_int64),
                ("input", ctypes.c_void_p), ("input_count", ctypes.c_size_t),
                ("sequence_lengths", ctypes.c_void_p),
                ("sequence_lengths_count", ctypes.c_size_t),
                ("output", ctypes.c_void_p), ("output_count", ctypes.c_size_t),
                ("memory", ctypes.c_int)]


_declared = False
_declare_lock = threading.Lock()


def _declare(clib: Any) -> None:
    """The slot functions' ctypes signatures, set once (on first use)."""
    global _declared
    with _declare_lock:
        if _declared:
            return
        vp, sz, i64 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64
        p64 = ctypes.POINTER(ctypes.c_int64)
        sigs = {
            "slstm_session_slot_open": [vp, vp, sz, ctypes.c_int, p64],
            "slstm_session_slot_close": [vp, i64],
            "slstm_session_slot_set_state": [vp, i64, vp, sz, ctypes.c_int],
            "slstm_session_slot_get_state": [vp, i64, vp, sz, ctypes.c_int],
            "slstm_session_slot_info": [vp, p64, p64],
            "slstm_session_slot_forward": [vp, vp],
            "slstm_slot_forward_args_init_sized": [vp, sz],
        }
        for name, args in sigs.items():
            try:
                f = getattr(clib, name)
            except AttributeError:
                raise ImportError(
                    "stacklstm.Streams needs libstacklstm with stream slots (0.3 or newer); "
                    "the loaded library %s (%s) has no %s"
                    % (_lib.library_path, clib.slstm_version_string().decode(), name)) from None
            f.argtypes = args
            f.restype = None if name.endswith("_init_sized") else ctypes.c_int
        _declared = True


_F32 = np.dtype(np.float32)


def _floats(a: Any, name: str) -> np.ndarray:
    """`a` as a C-contiguous float32 array: itself when it already is one (the per-frame
    path), else converted by the package's dtype policy (model._f32)."""
    if type(a) is np.ndarray and a.dtype is _F32 and a.flags.c_contiguous:
        return a
    return _f32(a, name)


def _ids(slots: Any) -> np.ndarray:
    """Slot ids as a contiguous int64 vector: Python ints or an integer array, nothing else
    (a float id is a TypeError, not silently truncated)."""
    if type(slots) is list and all(type(s) is int for s in slots):
        try:
            return np.array(slots, dtype=np.int64)
        except OverflowError:
            pass   # the checked path below names the offending id
    if isinstance(slots, np.ndarray):
        if slots.ndim != 1:
            raise ValueError("slots must be a vector (1 dimension, one slot id per batch row), "
                             "got shape %s" % (slots.shape,))
        if slots.size and not np.issubdtype(slots.dtype, np.integer):
            raise TypeError("slots must be integers, got dtype %s" % slots.dtype)
        return np.ascontiguousarray(slots, dtype=np.int64)
    if isinstance(slots, numbers.Integral):
        raise TypeError("slots must be a sequence of slot ids (e.g. [slot]), got one int")
    return np.array([_int(s, "slots[%d]" % i) for i, s in enumerate(slots)], dtype=np.int64)


def _slot(slot: Any) -> int:
    return _int(slot, "slot")


class Streams(_Owned):
    """Up to `max_streams` streams in one session of their own, advanced together in batches
    of up to `max_batch` streams and `max_time` frames (see the module's doc)."""

    _exclusive = True   # one call at a time: the lock serialises calls on this object

    def __init__(self, model: Model, max_streams: int, max_batch: int, max_time: int = 1,
                 backend: Union[str, int] = "cpu", num_threads: int = 0,
                 config: Union[None, str, dict] = None, device: int = 0,
                 cpu_path: Union[str, int] = "auto",
                 precision: Union[str, int] = "default") -> None:
        """A session with max_slots = max_streams (all closed).  backend, num_threads,
        config, device, cpu_path and precision as for stacklstm.Session."""
        if not isinstance(model, Model):
            raise TypeError("Streams(model, ...) needs a stacklstm.Model, got %s"
                            % type(model).__name__)
        _declare(lib)
        opt = _session_options(backend, max_batch, max_time, cpu_path, num_threads, device,
                               config=config, max_slots=max_streams, precision=precision)
        self._adopt(_create_session(model, opt), lib.slstm_session_destroy)
        self.input_size: int = model.input_size
        self.hidden_sizes: Tuple[int, ...] = model.hidden_sizes
        self.output_size: int = model.output_size
        self.max_batch: int = opt.s.max_batch
        self.max_time: int = opt.s.max_time
        self._max_streams: int = opt.s.max_slots
        self._layout = model._state_layout
        self._state_count: int = self._layout.count(1)
        self._args = _lib.padded(_SlotForwardArgs, lib.slstm_slot_forward_args_init_sized)

    # ---- properties ----

    @property
    def max_streams(self) -> int:
        """How many streams may be open at once (the session's max_slots)."""
        return self._max_streams

    @property
    def open_count(self) -> int:
        """How many streams are open now."""
        n = ctypes.c_int64()
        with self._using() as h:
            check(lib.slstm_session_slot_info(h, None, ctypes.byref(n)),
                  "slstm_session_slot_info")
        return n.value

    def destroy(self) -> None:
        """Frees the session and every stream's state (the same as close())."""
        _Owned.close(self)

    def __repr__(self) -> str:
        return ("stacklstm.Streams(input_size=%d, hidden_sizes=%s, max_streams=%d, max_batch=%d,"
                " max_time=%d%s)" % (self.input_size, list(self.hidden_sizes), self._max_streams,
                                     self.max_batch, self.max_time,
                                     "" if self._h is not None else ", closed"))

    # ---- one stream ----

    def _packed(self, state: Any, name: str) -> np.ndarray:
        """A batch-1 packed state from one LSTMStateTuple(c, h) per layer, each [1, H] or [H]
        (Session.forward's initial_state at batch 1), or a packed 1-D vector."""
        if isinstance(state, (list, tuple)) and state and all(
                is_state_tuple(s) or hasattr(s, "shape") for s in state):
            rows: List[Any] = []
            for l, s in enumerate(state):
                if is_state_tuple(s):
                    c = _f32(s.c, "%s[%d].c" % (name, l))
                    hh = _f32(s.h, "%s[%d].h" % (name, l))
                    rows.append(LSTMStateTuple(c.reshape(1, -1) if c.ndim == 1 else c,
                                               hh.reshape(1, -1) if hh.ndim == 1 else hh))
                else:   # a GRU layer's h
                    hh = _f32(s, "%s[%d]" % (name, l))
                    rows.append(hh.reshape(1, -1) if hh.ndim == 1 else hh)
            state = rows
        return _pack_state(state, 1, self._layout, name)

    def open(self, state: Any = None) -> int:
        """Opens a stream (the lowest free slot) starting from `state`, or zeros; returns its
        slot id.  SlotsFullError when max_streams streams are open."""
        packed = None if state is None else self._packed(state, "state")
        slot = ctypes.c_int64(-1)
        with self._using() as h:
            if packed is None:
                st = lib.slstm_session_slot_open(h, None, 0, _MEMORY_HOST, ctypes.byref(slot))
            else:
                st = lib.slstm_session_slot_open(h, packed.ctypes.data, packed.size,
                                                 _MEMORY_HOST, ctypes.byref(slot))
            check(st, "slstm_session_slot_open")
        return slot.value

    def close(self, slot: Optional[int] = None) -> None:  # type: ignore[override]
        """close(slot): ends the stream in `slot` (its id may be reused by a later open).
        close() without a slot frees the whole Streams object, as destroy()."""
        if slot is None:
            _Owned.close(self)
            return
        slot = _slot(slot)
        with self._using() as h:
            check(lib.slstm_session_slot_close(h, slot), "slstm_session_slot_close")

    def reset(self, slot: int, state: Any = None) -> None:
        """Sets an open stream's state to `state` (as open's), or zeros."""
        slot = _slot(slot)
        packed = None if state is None else self._packed(state, "state")
        with self._using() as h:
            if packed is None:
                st = lib.slstm_session_slot_set_state(h, slot, None, 0, _MEMORY_HOST)
            else:
                st = lib.slstm_session_slot_set_state(h, slot, packed.ctypes.data, packed.size,
                                                      _MEMORY_HOST)
            check(st, "slstm_session_slot_set_state")

    def get_state(self, slot: int) -> Tuple[LSTMStateTuple, ...]:
        """An open stream's state: one LSTMStateTuple(c, h) per layer, each [1, H] (a copy;
        the same shapes as Session.forward's final_state at batch 1)."""
        slot = _slot(slot)
        packed = np.empty(self._state_count, dtype=np.float32)
        with self._using() as h:
            check(lib.slstm_session_slot_get_state(h, slot, packed.ctypes.data, packed.size,
                                                   _MEMORY_HOST),
                  "slstm_session_slot_get_state")
        return tuple(_unpack_state(packed, 1, self._layout))

    # ---- many streams at once ----

    def run(self, slots: Sequence[int], x: Any, lengths: Any = None,
            time_major: bool = False) -> np.ndarray:
        """Advances the streams `slots` (k distinct open slot ids, 1 <= k <= max_batch) by
        the chunk x [k, T, D] ([T, k, D] when time_major; T <= max_time); row i is stream
        slots[i].  lengths (optional, k ints in [0, T]): a stream whose length is shorter
        stops there (its state is the one after its last frame; its outputs past it are 0).
        Returns the outputs [k, T, H_last] ([T, k, H_last] when time_major)."""
        ids = _ids(slots)
        k = ids.size
        xs = _floats(x, "x")
        if xs.ndim != 3:
            raise ValueError("x must be [k, T, D]%s, got shape %s"
                             % (" ([T, k, D] when time_major)" if time_major else "", xs.shape))
        T = xs.shape[0] if time_major else xs.shape[1]
        rows = xs.shape[1] if time_major else xs.shape[0]
        if rows != k or xs.shape[2] != self.input_size:
            raise ValueError("x has shape %s; expected %s for %d slots and input_size %d"
                             % (xs.shape, "[T, %d, %d]" % (k, self.input_size) if time_major
                                else "[%d, T, %d]" % (k, self.input_size), k, self.input_size))
        H = self.output_size
        # Every element is written by the library (rows past their length get 0).
        out = np.empty((T, k, H) if time_major else (k, T, H), dtype=np.float32)
        lens = None
        if lengths is not None:
            lens = _lengths(lengths)
            if lens.size != k:
                raise ValueError("lengths: %d values for %d slots" % (lens.size, k))
        with self._using() as h:
            a = self._args.s
            a.layout = 1 if time_major else 0
            a.batch = k
            a.slot_ids, a.slot_ids_count = (ids.ctypes.data if k else None), k
            a.time = T
            a.input, a.input_count = (xs.ctypes.data if xs.size else None), xs.size
            if lens is None:
                a.sequence_lengths, a.sequence_lengths_count = None, 0
            else:
                a.sequence_lengths, a.sequence_lengths_count = lens.ctypes.data, lens.size
            a.output, a.output_count = (out.ctypes.data if out.size else None), out.size
            a.memory = _MEMORY_HOST
            try:
                check(lib.slstm_session_slot_forward(h, ctypes.addressof(self._args)),
                      "slstm_session_slot_forward")
            finally:   # no dangling addresses of this call's arrays in the kept struct
                a.slot_ids = a.input = a.sequence_lengths = a.output = None
        return out

    def step(self, slots: Sequence[int], x: Any) -> np.ndarray:
        """One frame for each of the streams `slots`: x [k, D] -> the last layer's new h
        [k, H_last] (run with T = 1; needs max_time >= 1)."""
        xs = _floats(x, "x")
        if xs.ndim != 2:
            raise ValueError("x must be [k, D] (one frame per slot), got shape %s" % (xs.shape,))
        return self.run(slots, xs.reshape(xs.shape[0], 1, xs.shape[1]))[:, 0, :]
