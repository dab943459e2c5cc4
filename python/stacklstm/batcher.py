"""A dynamic batcher: many concurrent callers, one batched library call per window.

Callers submit either

* **frames** of a stream: ``submit_frame(stream_id, x)`` with ``x`` one frame ``[D]`` of a
  stream opened with ``open_stream(stream_id)``. The stream's (c, h) state lives in a slot
  of a :class:`stacklstm.streams.Streams` table owned by the batcher; the result is the last
  layer's output ``h`` for that frame, ``[H_last]``, and the stream's state has advanced by
  one step. Frames of one stream are applied in submission order, and never two of one
  stream in the same batched call.
* **whole sequences**: ``submit_sequence(x, initial_state=None)`` with ``x`` ``[T, D]``
  (1 <= T <= max_time, T may differ per request). The result is ``(outputs [T, H_last],
  final_state)``, ``final_state`` one ``LSTMStateTuple(c [1, H_l], h [1, H_l])`` per layer
  (for other stacks, each layer's state as Session.forward gives it: a GRU's h,
  BidirectionalState, ...): the numbers of ``session.forward(x[None], initial_state)`` for
  that request alone. Stacks with a reverse or bidirectional layer take sequences only
  (``max_streams=0``: stream slots need unidirectional stacks).
  Sequences carry no stream state; they are independent of each other and of the streams.

A worker thread takes what has arrived: when the first request of a window arrives it waits
until ``max_batch`` requests are queued or ``max_wait_us`` microseconds have passed since
that first arrival, whichever is first (a queued stream operation -- open, close, reset,
state read -- ends the window at once: callers wait on those; so does a queue holding only
frames, at least one of every open stream: no further frame is expected), then makes one
``Streams.step`` call for up to ``max_batch`` frames (of distinct streams) and padded
``Session.forward`` calls with ``sequence_lengths`` for up to ``max_batch`` sequences (sorted
by length, cut where padding would exceed ``max_padding``), and resolves each caller's
future.

Guarantees:

* **Numbers**: each request's result is bitwise the result of running it alone (one frame:
  ``Streams.step([slot], x[None])``; one sequence: ``Session.forward(x[None])``) on the same
  backend and path whenever that path's rows are independent of the batch they are in
  (the CPU reference and fast paths are; python/tests/test_batcher.py checks it).
* **Per-stream order**: the operations on one stream (frames, open, reset, close, state
  reads) take effect in the order they were submitted; a stream's state read returns the
  state after every frame submitted before it.
* **Error isolation**: input that is wrong for a request (shape, dtype, length) is refused
  when submitted, raised to the submitting caller. A request that fails when its batch runs
  (an unknown or closed stream, a library error) fails alone: when a batched call fails, the
  library has changed nothing, and the batcher runs that batch's requests one by one so
  each caller gets its own result or its own exception.
* **Shutdown**: ``close()`` stops taking requests (later submissions raise
  :class:`BatcherClosedError`); the batch running completes; with ``drain=False`` (default)
  every request still queued fails with :class:`BatcherClosedError` (nothing of it was
  applied), with ``drain=True`` the queue is run first. Then the batcher's own Streams and
  Session are freed.
* **Cancellation**: a future cancelled before its batch is formed is dropped (its frame is
  not applied).

Thread-safe API: the ``submit_*`` methods return ``concurrent.futures.Future`` objects;
``frame``, ``sequence``, ``open_stream``, ... block for the result. asyncio API: ``await
batcher.aframe(...)``, ``asequence``, ``aopen_stream``, ``aclose_stream``, ``areset_stream``,
``astream_state`` (the event loop is never blocked; the worker wakes each loop once per
batch for all of that loop's results; cancelling the awaiting task cancels the request if
its batch has not been formed yet).
"""

import asyncio
import collections
import concurrent.futures
import threading
import time
from typing import Any, Dict, Hashable, List, Optional, Set, Tuple

import numpy as np

from .model import Model, Session, _f32
from .state import map_layer_state, zip_layer_states

__all__ = ["Batcher", "BatcherClosedError", "UnknownStreamError", "StreamExistsError"]


class BatcherClosedError(RuntimeError):
    """The batcher was closed: the request was not run (nothing of it was applied)."""


class UnknownStreamError(KeyError):
    """A frame or stream operation named a stream id that is not open in this batcher (never
    opened, already closed, or its state was lost with the process that held it). Nothing
    was applied. Reopen the stream (open_stream(stream_id, state=<last checkpoint>)) and
    resend the frames submitted since that checkpoint."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown stream"


class StreamExistsError(ValueError):
    """open_stream named a stream id that is already open."""


_FRAME, _SEQ, _OPEN, _CLOSE, _RESET, _STATE = range(6)
_OP_NAMES = {_OPEN: "open_stream", _CLOSE: "close_stream", _RESET: "reset_stream",
             _STATE: "stream_state", _FRAME: "frame"}


class _Request:
    __slots__ = ("kind", "stream", "x", "state", "future", "loop", "afut")

    def __init__(self, kind: int, stream: Optional[Hashable], x: Optional[np.ndarray],
                 state: Optional[np.ndarray]) -> None:
        self.kind = kind
        self.stream = stream
        self.x = x
        self.state = state
        self.future: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        # set for requests awaited in an event loop
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.afut: "Optional[asyncio.Future[Any]]" = None


def _positive(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError("%s must be an integer, got %r" % (name, value))
    if value < minimum:
        raise ValueError("%s must be >= %d, got %d" % (name, minimum, value))
    return int(value)


def _settle(reqs):
    """In an event loop's thread: each request's asyncio future takes its result."""
    for r in reqs:
        a = r.afut
        if a.done():
            continue
        f = r.future
        if f.cancelled():
            a.cancel()
        elif f.exception() is not None:
            a.set_exception(f.exception())
        else:
            a.set_result(f.result())


def _wake(reqs):
    """Hands the resolved requests that are awaited in event loops to their loops: one
    call_soon_threadsafe per loop."""
    by_loop = {}
    for r in reqs:
        if r.loop is not None and r.future.done():
            by_loop.setdefault(r.loop, []).append(r)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:   # the loop was closed: nobody is waiting any more
            pass


class Batcher:
    """Groups concurrent frame and sequence requests into batched library calls.

    Batcher(model, max_batch=32, max_wait_us=500, max_streams=256, max_time=256,
            backend="cpu", cpu_path="auto", num_threads=0, config=None, device=0,
            streams=None, session=None, max_padding=0.25)

    model        a stacklstm.Model (kept alive by the batcher's Streams and Session).
    max_batch    most requests of each kind in one batched call (>= 1).
    max_wait_us  the batching window: how long the first request of a window waits for
                 others (>= 0; 0 runs whatever is queued at once).
    max_streams  stream slots (open streams at a time); 0: no streaming (frame requests
                 are refused).
    max_time     longest whole sequence accepted; 0: no sequences.
    backend, cpu_path, num_threads, config, device: as for Model.session.
    max_padding  a window's sequences are sorted by length and cut into calls in which the
                 padded steps (rows x longest) exceed the real steps by at most this
                 fraction (0: only equal lengths share a call; inf: one call).
    streams / session: an existing stacklstm.streams.Streams (max_batch >= this max_batch)
                 or Session to use instead of making one; the batcher then does not close
                 it, and nothing else may use it while the batcher runs.

    Use it as a context manager, or call close()."""

    def __init__(self, model: Model, max_batch: int = 32, max_wait_us: int = 500,
                 max_streams: int = 256, max_time: int = 256, backend: Any = "cpu",
                 cpu_path: Any = "auto", num_threads: int = 0, config: Any = None,
                 device: int = 0, streams: Any = None, session: Optional[Session] = None,
                 max_padding: float = 0.25) -> None:
        if not isinstance(model, Model):
            raise TypeError("Batcher(model, ...) needs a stacklstm.Model, got %s"
                            % type(model).__name__)
        self.max_batch = _positive(max_batch, "max_batch")
        self.max_wait_us = _positive(max_wait_us, "max_wait_us", 0)
        max_streams = _positive(max_streams, "max_streams", 0)
        self.max_time = _positive(max_time, "max_time", 0)
        if not isinstance(max_padding, (int, float)) or not max_padding >= 0:
            raise ValueError("max_padding must be a number >= 0, got %r" % (max_padding,))
        self.max_padding = float(max_padding)
        self.input_size = model.input_size
        self.output_size = model.output_size
        self._model = model
        self._own_streams = self._own_session = False
        self._streams = streams
        self._session = session
        try:
            if streams is None and max_streams > 0:
                from .streams import Streams
                self._streams = Streams(model, max_streams, self.max_batch, max_time=1,
                                        backend=backend, cpu_path=cpu_path,
                                        num_threads=num_threads, config=config,
                                        device=device)
                self._own_streams = True
            if session is None and self.max_time > 0:
                self._session = model.session(self.max_batch, self.max_time, backend=backend,
                                              cpu_path=cpu_path, num_threads=num_threads,
                                              device=device, config=config)
                self._own_session = True
        except BaseException:
            self._free()
            raise
        if self._session is not None:
            self.max_time = self._session.max_time
        self.max_streams = 0 if self._streams is None else self._streams.max_streams
        self._slots: Dict[Hashable, int] = {}   # stream id -> slot; the worker's alone
        self._cv = threading.Condition()
        self._queue: "collections.deque[_Request]" = collections.deque()
        self._arrival = 0.0                     # when the oldest queued request arrived
        self._controls = 0                      # stream operations queued (end the window)
        self._frames = self._seqs = 0           # frames / sequences queued
        self._frame_streams: Set[Hashable] = set()   # streams with a frame queued
        self._closing = False
        self._drain = False
        self._stats = {"batches": 0, "frames": 0, "sequences": 0, "frame_calls": 0,
                       "sequence_calls": 0, "fallbacks": 0}
        self._worker = threading.Thread(target=self._run, name="stacklstm-batcher",
                                        daemon=True)
        self._worker.start()

    # ---- submission (any thread) ---------------------------------------------------------

    def _put(self, req: _Request) -> _Request:
        with self._cv:
            if self._closing:
                raise BatcherClosedError("the batcher is closed; %s was not submitted"
                                         % _OP_NAMES.get(req.kind, "sequence"))
            if req.kind == _FRAME:
                self._frames += 1
                self._frame_streams.add(req.stream)
            elif req.kind == _SEQ:
                self._seqs += 1
            else:
                self._controls += 1
            if not self._queue:
                self._arrival = time.perf_counter()
                self._queue.append(req)
                self._cv.notify()
            else:
                self._queue.append(req)
                if len(self._queue) >= self.max_batch or self._controls or self._full():
                    self._cv.notify()
        return req

    def _need_streams(self, what):
        if self._closing:
            raise BatcherClosedError("the batcher is closed; %s was not submitted" % what)
        if self.max_streams == 0:
            raise ValueError("%s: this batcher has no stream slots (max_streams=0)" % what)

    def _frame_array(self, x, name="frame"):
        if type(x) is np.ndarray and x.dtype == np.float32 and x.shape == (self.input_size,):
            return x.copy()   # the common case, fast; the caller may reuse its buffer
        a = _f32(x, name)
        if a.shape != (self.input_size,):
            raise ValueError("%s must be one frame of shape (%d,) (input_size), got shape %s"
                             % (name, self.input_size, a.shape))
        if a is x or not a.flags.owndata:
            a = a.copy()   # the caller may reuse its buffer once submit returns
        return a

    def _state_vector(self, state, name):
        if state is None:
            return None
        packed = self._model.pack_state(state, 1)
        return np.array(packed, dtype=np.float32, copy=True)

    def _req_frame(self, stream_id: Hashable, x: Any) -> _Request:
        self._need_streams("frame")
        hash(stream_id)
        return _Request(_FRAME, stream_id, self._frame_array(x), None)

    def _req_sequence(self, x: Any, initial_state: Any = None) -> _Request:
        if self._closing:
            raise BatcherClosedError("the batcher is closed; the sequence was not submitted")
        if self.max_time == 0:
            raise ValueError("sequence: this batcher takes no sequences (max_time=0)")
        a = _f32(x, "x")
        if a.ndim != 2 or a.shape[1] != self.input_size:
            raise ValueError("x must be one sequence of shape (T, %d) (input_size), got "
                             "shape %s" % (self.input_size, a.shape))
        if not 1 <= a.shape[0] <= self.max_time:
            raise ValueError("x: a sequence of %d steps; this batcher takes 1 to %d (max_time)"
                             % (a.shape[0], self.max_time))
        if a is x or not a.flags.owndata:
            # the caller may reuse its buffer once submit returns: a view of it (a torch
            # tensor's numpy(), a memoryview, an ndarray subclass) is copied too
            a = a.copy()
        return _Request(_SEQ, None, a, self._state_vector(initial_state, "initial_state"))

    def _req_stream_op(self, kind: int, stream_id: Hashable, state: Any = None) -> _Request:
        self._need_streams(_OP_NAMES[kind])
        hash(stream_id)
        return _Request(kind, stream_id, None, self._state_vector(state, "state"))

    # ---- the public API: futures (any thread), blocking, awaitable -----------------------

    def submit_frame(self, stream_id: Hashable, x: Any) -> concurrent.futures.Future:
        """Queues one frame [D] of stream `stream_id`; the future's result is the last layer's
        h for it, [H_last]. ValueError/TypeError at once for a frame of the wrong shape or
        dtype; UnknownStreamError through the future when the stream is not open when the
        frame's batch runs."""
        return self._put(self._req_frame(stream_id, x)).future

    def submit_sequence(self, x: Any, initial_state: Any = None) -> concurrent.futures.Future:
        """Queues one whole sequence [T, D] (1 <= T <= max_time), from `initial_state` (one
        LSTMStateTuple(c, h) per layer, each [1, H_l], or the packed vector; None: zeros).
        The future's result: (outputs [T, H_last], final_state: one LSTMStateTuple(c, h)
        per layer, each [1, H_l])."""
        return self._put(self._req_sequence(x, initial_state)).future

    def submit_open_stream(self, stream_id: Hashable,
                           state: Any = None) -> concurrent.futures.Future:
        """Opens stream `stream_id` from zeros or `state` (one LSTMStateTuple(c, h) per layer,
        each [1, H_l], or the packed vector). Future of None; StreamExistsError when the id
        is open, stacklstm.SlotsFullError when max_streams streams are open."""
        return self._put(self._req_stream_op(_OPEN, stream_id, state)).future

    def submit_close_stream(self, stream_id: Hashable) -> concurrent.futures.Future:
        """Closes the stream after the frames submitted before (future of None)."""
        return self._put(self._req_stream_op(_CLOSE, stream_id)).future

    def submit_reset_stream(self, stream_id: Hashable,
                            state: Any = None) -> concurrent.futures.Future:
        """Sets the stream's state (zeros, or `state`) after the frames submitted before."""
        return self._put(self._req_stream_op(_RESET, stream_id, state)).future

    def submit_stream_state(self, stream_id: Hashable) -> concurrent.futures.Future:
        """Future of the stream's state after the frames submitted before: one
        LSTMStateTuple(c, h) per layer, each [1, H_l] (copies)."""
        return self._put(self._req_stream_op(_STATE, stream_id)).future

    @staticmethod
    def _wait(fut: "concurrent.futures.Future[Any]", timeout: Optional[float]) -> Any:
        """The future's result within `timeout` seconds; on a timeout the request is
        cancelled when it has not started (dropped, as a cancelled future is: a caller who
        sends it again does not get it applied twice), else waited for."""
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            if fut.cancel():
                raise
            return fut.result()   # already in a batch: it is applied, its result is here soon

    def frame(self, stream_id: Hashable, x: Any, timeout: Optional[float] = None) -> np.ndarray:
        """submit_frame, waiting for the result (at most `timeout` seconds: then the frame is
        dropped, TimeoutError, unless its batch had already started; it is then waited for)."""
        return self._wait(self.submit_frame(stream_id, x), timeout)

    def sequence(self, x: Any, initial_state: Any = None, timeout: Optional[float] = None
                 ) -> Tuple[np.ndarray, List[Any]]:
        """submit_sequence, waiting for the result."""
        return self._wait(self.submit_sequence(x, initial_state), timeout)

    def open_stream(self, stream_id: Hashable, state: Any = None,
                    timeout: Optional[float] = None) -> None:
        """submit_open_stream, waiting until it is done."""
        return self._wait(self.submit_open_stream(stream_id, state), timeout)

    def close_stream(self, stream_id: Hashable, timeout: Optional[float] = None) -> None:
        """submit_close_stream, waiting until it is done."""
        return self._wait(self.submit_close_stream(stream_id), timeout)

    def reset_stream(self, stream_id: Hashable, state: Any = None,
                     timeout: Optional[float] = None) -> None:
        """submit_reset_stream, waiting until it is done."""
        return self._wait(self.submit_reset_stream(stream_id, state), timeout)

    def stream_state(self, stream_id: Hashable, timeout: Optional[float] = None
                     ) -> Tuple[Any, ...]:
        """submit_stream_state, waiting for the state."""
        return self._wait(self.submit_stream_state(stream_id), timeout)

    async def _await(self, req):
        """Queues `req` and awaits its result in the running loop: the worker resolves the
        loop's requests of a batch with one call_soon_threadsafe (one wake-up per batch, not
        one per request); cancelling the awaiting task cancels the request if it has not
        started."""
        loop = asyncio.get_running_loop()
        req.loop = loop
        req.afut = loop.create_future()
        self._put(req)
        try:
            return await req.afut
        except asyncio.CancelledError:
            req.future.cancel()
            raise

    async def aframe(self, stream_id: Hashable, x: Any) -> np.ndarray:
        """submit_frame, awaited."""
        return await self._await(self._req_frame(stream_id, x))

    async def asequence(self, x: Any, initial_state: Any = None
                        ) -> Tuple[np.ndarray, List[Any]]:
        """submit_sequence, awaited."""
        return await self._await(self._req_sequence(x, initial_state))

    async def aopen_stream(self, stream_id: Hashable, state: Any = None) -> None:
        """submit_open_stream, awaited."""
        return await self._await(self._req_stream_op(_OPEN, stream_id, state))

    async def aclose_stream(self, stream_id: Hashable) -> None:
        """submit_close_stream, awaited."""
        return await self._await(self._req_stream_op(_CLOSE, stream_id))

    async def areset_stream(self, stream_id: Hashable, state: Any = None) -> None:
        """submit_reset_stream, awaited."""
        return await self._await(self._req_stream_op(_RESET, stream_id, state))

    async def astream_state(self, stream_id: Hashable) -> Tuple[Any, ...]:
        """submit_stream_state, awaited."""
        return await self._await(self._req_stream_op(_STATE, stream_id))

    @property
    def open_streams(self) -> int:
        """How many streams are open (as of the last batch run)."""
        return len(self._slots)

    def stats(self) -> Dict[str, int]:
        """Counters: batches run, frames and sequences served, batched calls made, and
        fallbacks (a batched call that failed and was rerun request by request)."""
        return dict(self._stats)

    # ---- shutdown ------------------------------------------------------------------------

    def close(self, drain: bool = False, timeout: Optional[float] = None) -> None:
        """Stops the batcher (idempotent). drain=False: queued requests fail with
        BatcherClosedError; drain=True: they run first. Waits for the worker (at most
        `timeout` seconds), then frees the Streams and Session the batcher made."""
        with self._cv:
            if not self._closing:
                self._closing = True
                self._drain = bool(drain)
            self._cv.notify_all()
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout)
        if self._worker.is_alive():
            return   # still draining; the worker frees and fails what is left when done
        self._fail_queued()
        self._free()

    def _fail_queued(self):
        with self._cv:
            left, self._queue = list(self._queue), collections.deque()
        try:
            self._fail(left)
        finally:
            _wake(left)

    @staticmethod
    def _fail(left):
        for r in left:
            if r.future.set_running_or_notify_cancel():
                what = _OP_NAMES.get(r.kind, "sequence")
                where = "" if r.stream is None else " of stream %r" % (r.stream,)
                r.future.set_exception(BatcherClosedError(
                    "the batcher was closed before this %s%s ran; nothing of it was applied"
                    % (what, where)))

    def _free(self):
        if self._own_streams and self._streams is not None:
            s, self._streams = self._streams, None
            destroy = getattr(s, "destroy", None)
            if destroy is not None:
                destroy()
            else:
                s.__exit__(None, None, None)
        if self._own_session and self._session is not None:
            s, self._session = self._session, None
            s.close()

    def __enter__(self) -> "Batcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closing:
                self.close()
        except Exception:
            pass

    # ---- the worker ----------------------------------------------------------------------

    def _run(self):
        wait = self.max_wait_us * 1e-6
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if self._closing and not (self._drain and self._queue):
                    break
                if not self._closing:
                    deadline = self._arrival + wait
                    while (len(self._queue) < self.max_batch and not self._controls
                           and not self._full() and not self._closing):
                        left = deadline - time.perf_counter()
                        if left <= 0:
                            break
                        self._cv.wait(left)
                    if self._closing and not self._drain:
                        break
                batch = self._take()
            try:
                self._execute(*batch)
            except BaseException as e:   # never lose a caller: fail whatever is unresolved
                for r in batch[0] + batch[1] + batch[2]:
                    if not r.future.done():
                        r.future.set_exception(e)
            _wake(batch[0] + batch[1] + batch[2])
        self._fail_queued()
        if self._closing:
            self._free()

    def _full(self):
        """Under the lock: no point waiting longer -- only frames are queued, and of as many
        streams as are open (with each stream's caller waiting for its frame's result, as in
        a closed loop, no other stream's frame can come before this batch is run; several
        frames of one stream count once)."""
        return (not self._seqs and self._frames > 0
                and len(self._frame_streams) >= len(self._slots))

    def _take(self):
        """Under the lock: the ops to run now (in order), the frames (distinct streams) and
        the sequences of one batch; what is left stays queued in its order."""
        controls: List[_Request] = []
        frames: List[_Request] = []
        seqs: List[_Request] = []
        busy = set()      # streams with a frame in this batch, or an op left queued
        keep = collections.deque()
        for r in self._queue:
            if r.kind == _SEQ:
                if len(seqs) < self.max_batch:
                    if r.future.set_running_or_notify_cancel():
                        seqs.append(r)
                    continue
            elif r.stream not in busy:
                if r.kind == _FRAME:
                    if len(frames) < self.max_batch:
                        if r.future.set_running_or_notify_cancel():
                            frames.append(r)
                            busy.add(r.stream)
                        continue
                    busy.add(r.stream)
                else:
                    if r.future.set_running_or_notify_cancel():
                        controls.append(r)
                    continue
            keep.append(r)
        self._queue = keep
        self._controls = sum(1 for r in keep if r.kind not in (_FRAME, _SEQ))
        self._frames = sum(1 for r in keep if r.kind == _FRAME)
        self._frame_streams = {r.stream for r in keep if r.kind == _FRAME}
        self._seqs = sum(1 for r in keep if r.kind == _SEQ)
        self._arrival = 0.0   # what was left has waited its window: it runs next, at once
        return controls, frames, seqs

    def _execute(self, controls, frames, seqs):
        self._stats["batches"] += 1
        for r in controls:
            try:
                r.future.set_result(self._control(r))
            except Exception as e:
                r.future.set_exception(e)
        if frames:
            self._run_frames(frames)
        if seqs:
            self._run_sequences(seqs)

    def _slot(self, r):
        slot = self._slots.get(r.stream)
        if slot is None:
            raise UnknownStreamError(
                "%s: stream %r is not open in this batcher (never opened, closed, or its state "
                "was lost); nothing was applied: open it again (with its last checkpointed "
                "state) and resend the frames since" % (_OP_NAMES[r.kind], r.stream))
        return slot

    def _control(self, r):
        s = self._streams
        if r.kind == _OPEN:
            if r.stream in self._slots:
                raise StreamExistsError("open_stream: stream %r is already open" % (r.stream,))
            self._slots[r.stream] = s.open(r.state)
            return None
        slot = self._slot(r)
        if r.kind == _CLOSE:
            s.close(slot)
            del self._slots[r.stream]
            return None
        if r.kind == _RESET:
            s.reset(slot, r.state)
            return None
        return tuple(map_layer_state(np.copy, t) for t in s.get_state(slot))

    def _run_frames(self, frames):
        ready, slots = [], []
        for r in frames:
            try:
                slots.append(self._slot(r))
                ready.append(r)
            except UnknownStreamError as e:
                r.future.set_exception(e)
        if not ready:
            return
        x = np.stack([r.x for r in ready])
        self._stats["frame_calls"] += 1
        try:
            out = self._streams.step(slots, x)
        except Exception as e:
            if len(ready) == 1:
                ready[0].future.set_exception(e)
                return
            self._stats["fallbacks"] += 1
            for r, slot in zip(ready, slots):   # the failed call changed nothing
                try:
                    r.future.set_result(self._streams.step([slot], r.x[None])[0].copy())
                    self._stats["frames"] += 1
                except Exception as e1:
                    r.future.set_exception(e1)
            return
        self._stats["frames"] += len(ready)
        for i, r in enumerate(ready):
            r.future.set_result(out[i])   # rows of a fresh array: each caller owns its own

    def _one_sequence(self, r):
        out, fin = self._session.forward(r.x[None], initial_state=r.state)
        return out[0], [map_layer_state(np.copy, t) for t in fin]

    def _run_sequences(self, seqs):
        """Sorted by length and cut into calls whose padded steps (rows x longest) exceed
        the real steps by at most max_padding (padding costs compute: a row runs to its
        call's longest sequence)."""
        seqs = sorted(seqs, key=lambda r: r.x.shape[0])
        group, real = [], 0
        for r in seqs:
            T = r.x.shape[0]
            if group and (len(group) + 1) * T > (1.0 + self.max_padding) * (real + T):
                self._run_padded(group)
                group, real = [], 0
            group.append(r)
            real += T
        if group:
            self._run_padded(group)

    def _run_padded(self, seqs):
        B = len(seqs)
        self._stats["sequence_calls"] += 1
        if B == 1:
            r = seqs[0]
            try:
                r.future.set_result(self._one_sequence(r))
                self._stats["sequences"] += 1
            except Exception as e:
                r.future.set_exception(e)
            return
        lens = np.array([r.x.shape[0] for r in seqs], dtype=np.int64)
        T = int(lens.max())
        x = np.zeros((B, T, self.input_size), np.float32)
        for i, r in enumerate(seqs):
            x[i, :lens[i]] = r.x
        init = None
        if any(r.state is not None for r in seqs):
            zeros = np.zeros(self._model.state_count(1), np.float32)
            rows = [self._model.unpack_state(zeros if r.state is None else r.state, 1)
                    for r in seqs]
            init = [zip_layer_states(np.concatenate, [row[l] for row in rows])
                    for l in range(len(self._model.hidden_sizes))]
        try:
            out, fin = self._session.forward(x, initial_state=init, sequence_lengths=lens)
        except Exception:
            self._stats["fallbacks"] += 1
            for r in seqs:
                try:
                    r.future.set_result(self._one_sequence(r))
                    self._stats["sequences"] += 1
                except Exception as e1:
                    r.future.set_exception(e1)
            return
        self._stats["sequences"] += B
        for i, r in enumerate(seqs):
            r.future.set_result((out[i, :lens[i]],
                                 [map_layer_state(lambda a: a[i:i + 1].copy(), t)
                                  for t in fin]))
