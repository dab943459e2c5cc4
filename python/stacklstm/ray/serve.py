"""Online serving with Ray Serve: replicas that each hold a session and the dynamic batcher.

    import stacklstm.ray.serve as ss
    client = ss.deploy("model.safetensors", shards=4)      # after ray.init()
    out, final = client.sequence(x)                        # x [T, D]: any shard, batched
    client.open_stream("call-17")                          # pinned to one shard
    h = client.frame("call-17", frame)                     # frame [D] -> h [H_last]
    checkpoint = client.stream_state("call-17")            # keep it to recover from a loss
    hs = client.step_streams([(sid, f) for sid, f in frames])   # many streams, 1 request/shard

Layout. `deploy` runs `shards` Serve applications named "<name>-0", "<name>-1", ..., each
with one deployment of exactly one replica (num_replicas=1) of LSTMReplica: one model, one
stacklstm.batcher.Batcher (a Streams table of `max_streams` slots and a session for whole
sequences). Concurrent requests reaching a replica (up to max_ongoing_requests) are grouped
by its batcher into one library call per window.

How a stream reaches the replica that holds its state. A stream's state lives in one
replica's memory, so every request of a stream must reach that replica. Ray Serve routes the
requests of one deployment to any of its replicas (power of two choices; model multiplexing
only prefers a replica, it does not guarantee one), so pinning is done one level up: each
shard is a deployment of its own with a single replica, and the client maps a stream id to a
shard by rendezvous (highest-random-weight) hashing over the shard names. The map depends only
on the stream id and the set of shard names: every client computes the same shard, with no
coordination, and adding a shard moves only about 1/(shards+1) of the streams. (Ray Serve's
custom RequestRouter API could route inside one deployment, but it is alpha, and its replica
set changes as replicas die or are added, which would move streams between replicas
silently.) Whole-sequence requests carry no state: they go to the shards in turn.

What a replica loss loses, and how a client recovers. When a replica's process dies, Serve
starts a new replica for that shard, with no open streams. Every stream pinned to that shard
has lost its state: the requests then in flight fail, and every later frame of those streams
reaches a replica that does not know them. Both surface as StreamStateLostError (the stream
id, the shard, the cause); nothing is retried silently, because a frame must never be
applied to a state other than the one the client expects. To recover, the client reopens the
stream from its last checkpoint (client.open_stream(stream_id, state=checkpoint), where
checkpoint = client.stream_state(stream_id) taken earlier, or zeros) and resends the frames
it sent since that checkpoint, in order: the results are then those of the uninterrupted
stream, bitwise (the library is deterministic; python/tests/test_ray.py checks it). Streams of the
other shards are unaffected. Whole-sequence requests are stateless, so the client retries
them on the next shard (up to `retries` times) when a replica dies under them.

Per-stream order: a client's calls on one stream, made one after the other (each waiting for
its result, or in order from one thread/task), are applied in that order (the replica's
batcher applies a stream's operations in arrival order and one frame per batch). Requests of
one stream sent concurrently without waiting have no defined order between them (the
network does not order them), so send a stream's frames from one caller, in sequence
(client.frames(stream_id, xs) sends several in order in one request).

Cost. A Ray Serve request costs far more than one frame's compute (docs/scaling.md): send
many frames per request where latency allows -- several of a stream (frames) or one of each
of many streams (step_streams: one request per shard, batched on the replica).
"""

import asyncio
import hashlib
import itertools
import os
import threading
import uuid
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import load_model, require_ray

__all__ = ["LSTMReplica", "StreamsClient", "StreamStateLostError", "deploy", "shard_of"]

_StreamId = Union[str, int]          # a stream id (hashed the same in every process)
# A state as it travels: per layer (c, h) for an LSTM layer, the array h for a GRU layer,
# BidirectionalState(fw, bw) of those for a bidirectional layer (sequences only).
_Pairs = List[Any]


class StreamStateLostError(RuntimeError):
    """A stream's state is gone: the replica holding it died (the request was in flight, or
    the stream is unknown to the replica that replaced it), or the stream was never opened
    or already closed. Nothing of the failed request was applied. Recover by reopening the
    stream from the last checkpointed state and resending the frames sent since then."""

    def __init__(self, stream_id: _StreamId, shard: str, cause: BaseException) -> None:
        self.stream_id = stream_id
        self.shard = shard
        self.cause = cause
        super().__init__(
            "stream %r (shard %s): its state is lost or it is not open there (%s: %s). Nothing "
            "of this request was applied. Reopen it with open_stream(%r, state=<your last "
            "checkpoint>) and resend the frames sent since that checkpoint."
            % (stream_id, shard, type(cause).__name__, _first_line(cause), stream_id))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[-1][:300] if text else ""


def _stream_key(stream_id: object) -> bytes:
    if isinstance(stream_id, bool) or not isinstance(stream_id, (str, int)):
        raise TypeError("stream ids must be str or int (hashed the same in every process), "
                        "got %s" % type(stream_id).__name__)
    return ("%s:%s" % (type(stream_id).__name__, stream_id)).encode()


def shard_of(stream_id: _StreamId, shards: Sequence[str]) -> str:
    """The shard (an application name) a stream belongs to: rendezvous hashing, the same in
    every process."""
    key = _stream_key(stream_id)
    return max(shards, key=lambda s: hashlib.blake2b(key + b"|" + s.encode(),
                                                     digest_size=8).digest())


class LSTMReplica:
    """The body of one Serve replica: one model and one Batcher. Its methods are what
    StreamsClient calls through a DeploymentHandle (arrays travel as NumPy arrays)."""

    def __init__(self, model: Any, max_batch: int = 32, max_wait_us: int = 500,
                 max_streams: int = 1024, max_time: int = 256, num_threads: int = 1,
                 backend: str = "auto", cpu_path: str = "auto") -> None:
        from ..batcher import Batcher
        if backend == "auto":
            backend = "cpu"
            try:
                import ray
                if ray.get_gpu_ids():
                    backend = "cuda"
            except ImportError:
                pass
        from ..errors import UnsupportedError
        self.model = load_model(model)
        try:
            self.batcher = Batcher(self.model, max_batch=max_batch, max_wait_us=max_wait_us,
                                   max_streams=max_streams, max_time=max_time,
                                   backend=backend,
                                   num_threads=num_threads if backend == "cpu" else 0,
                                   cpu_path=cpu_path)
        except UnsupportedError as e:
            if backend != "cuda" or not max_streams:
                raise
            raise UnsupportedError(e.status, "%s -- a replica passes no keyed settings, "
                                   "and CUDA stream slots need cuda.slots=on: deploy GPU "
                                   "shards for whole sequences with max_streams=0, and CPU "
                                   "shards for streams" % e.message, "LSTMReplica") from e
        self.incarnation = uuid.uuid4().hex   # a new replica of the same shard: a new value

    async def sequence(self, x: Any, initial_state: Optional[_Pairs] = None
                       ) -> Tuple[np.ndarray, _Pairs]:
        out, fin = await self.batcher.asequence(x, _tuples(initial_state))
        return out, [_travel(t) for t in fin]

    async def open_stream(self, stream_id: _StreamId, state: Optional[_Pairs] = None) -> str:
        await self.batcher.aopen_stream(stream_id, _tuples(state))
        return self.incarnation

    async def frame(self, stream_id: _StreamId, x: Any) -> np.ndarray:
        return await self.batcher.aframe(stream_id, x)

    async def frames(self, stream_id: _StreamId, xs: Any) -> np.ndarray:
        """Several frames of one stream, applied in order ([n, D] -> [n, H_last]). Cancelled
        (Ray Serve cancels a request whose caller gave up), the frames not yet in a batch are
        dropped from the last one back: what was applied is a prefix, never a stream with a
        gap."""
        futs = [self.batcher.submit_frame(stream_id, x) for x in xs]
        return np.stack(await _in_order(futs))

    async def step_streams(self, stream_ids: Sequence[_StreamId], xs: Any
                           ) -> Tuple[np.ndarray, Dict[int, Tuple[str, str]]]:
        """One frame for each of several streams of this shard (xs [k, D]; a stream named
        twice gets its frames in the given order), batched together. Returns (out [k, H_last],
        errors): errors maps a row to (exception class name, message) for rows that failed
        (their out rows are NaN); the other rows are applied."""
        futs = [self.batcher.submit_frame(sid, x) for sid, x in zip(stream_ids, xs)]
        out = np.full((len(futs), self.batcher.output_size), np.nan, np.float32)
        errors: Dict[int, Tuple[str, str]] = {}
        try:
            for i, f in enumerate(futs):
                try:
                    out[i] = await asyncio.wrap_future(f)
                except Exception as e:
                    errors[i] = (type(e).__name__, str(e))
        except asyncio.CancelledError:   # as frames(): drop from the last row back
            for f in reversed(futs):
                f.cancel()
            raise
        return out, errors

    async def close_stream(self, stream_id: _StreamId) -> None:
        await self.batcher.aclose_stream(stream_id)

    async def reset_stream(self, stream_id: _StreamId, state: Optional[_Pairs] = None) -> None:
        await self.batcher.areset_stream(stream_id, _tuples(state))

    async def stream_state(self, stream_id: _StreamId) -> _Pairs:
        return [_travel(t) for t in await self.batcher.astream_state(stream_id)]

    async def ping(self) -> None:
        """Does nothing: what a request costs in Ray Serve alone (bench/serving)."""
        return None

    def info(self) -> Dict[str, Any]:
        return {"pid": os.getpid(), "incarnation": self.incarnation,
                "open_streams": self.batcher.open_streams, "stats": self.batcher.stats()}

    def __del__(self) -> None:
        try:
            self.batcher.close()
        except Exception:
            pass


async def _in_order(futs: List[Any]) -> List[Any]:
    """The results of futures of one stream's frames, in order. Cancelled, it cancels those
    not yet in a batch from the last one back (the batcher applies a stream's frames in
    order, so what was applied stays a prefix)."""
    try:
        return [await asyncio.wrap_future(f) for f in futs]
    except asyncio.CancelledError:
        for f in reversed(futs):
            f.cancel()
        raise


def _travel(t: Any) -> Any:
    """One layer's state as it travels: (c, h) for an LSTM layer, the array h for a GRU
    layer, BidirectionalState of those."""
    from ..layers import BidirectionalState
    from ..state import is_state_tuple
    if isinstance(t, BidirectionalState):
        return BidirectionalState(_travel(t.fw), _travel(t.bw))
    if is_state_tuple(t):
        return (t.c, t.h)
    return t


def _tuples(state: Any) -> Any:
    """Per-layer states as they travel ((c, h), h, BidirectionalState) -> the package's
    (LSTMStateTuple, h, BidirectionalState), each piece [1, width]; None stays None."""
    if state is None:
        return None
    from ..layers import BidirectionalState
    from ..state import LSTMStateTuple

    def one(t: Any) -> Any:
        if isinstance(t, BidirectionalState):
            return BidirectionalState(one(t.fw), one(t.bw))
        if isinstance(t, (tuple, list)) and len(t) == 2:
            return LSTMStateTuple(np.asarray(t[0], np.float32).reshape(1, -1),
                                  np.asarray(t[1], np.float32).reshape(1, -1))
        return np.asarray(t, np.float32).reshape(1, -1)
    return [one(t) for t in state]


def _is_replica_loss(e: BaseException) -> bool:
    import ray.exceptions as rex
    from ray.serve import exceptions as sex
    kinds = tuple(k for k in (getattr(rex, "RayActorError", None),
                              getattr(rex, "ActorDiedError", None),
                              getattr(rex, "ActorUnavailableError", None),
                              getattr(sex, "ReplicaUnavailableError", None),
                              getattr(sex, "DeploymentUnavailableError", None)) if k)
    return isinstance(e, kinds)


def _is_unknown_stream(e: BaseException) -> bool:
    from ..batcher import UnknownStreamError
    return isinstance(e, UnknownStreamError) or "UnknownStreamError" in type(e).__name__


class StreamsClient:
    """Calls the shards of a deployment made by deploy(): streams pinned by rendezvous
    hashing of their id, sequences spread over the shards. Blocking methods (any thread, not
    inside a running event loop) and async ones (prefixed with `a`, for asyncio code and
    other deployments). `timeout_s` bounds each blocking call."""

    def __init__(self, shard_names: Sequence[str], timeout_s: float = 60.0,
                 retries: int = 2) -> None:
        serve = require_ray("serve").serve
        self.shards = list(shard_names)
        if not self.shards:
            raise ValueError("StreamsClient: no shards")
        self._handles = {s: serve.get_app_handle(s) for s in self.shards}
        self.timeout_s = timeout_s
        self.retries = retries
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def shard_of(self, stream_id: _StreamId) -> str:
        return shard_of(stream_id, self.shards)

    def _handle(self, stream_id):
        shard = self.shard_of(stream_id)
        return shard, self._handles[shard]

    def _next_shard(self):
        with self._lock:
            return self.shards[next(self._turn) % len(self.shards)]

    def _stream_call(self, stream_id, method, *args):
        shard, h = self._handle(stream_id)
        response = getattr(h, method).remote(stream_id, *args)
        try:
            return response.result(timeout_s=self.timeout_s)
        except Exception as e:
            if isinstance(e, TimeoutError):
                # waited enough: cancel it too (frames not yet in a batch are dropped, so a
                # call sent again is not applied twice), as the async twins' cancellation does
                cancel = getattr(response, "cancel", None)
                if cancel is not None:
                    cancel()
                raise
            if _is_replica_loss(e) or (_is_unknown_stream(e) and method != "open_stream"):
                raise StreamStateLostError(stream_id, shard, e) from e
            raise

    async def _astream_call(self, stream_id, method, *args):
        shard, h = self._handle(stream_id)
        try:
            return await getattr(h, method).remote(stream_id, *args)
        except Exception as e:
            if _is_replica_loss(e) or (_is_unknown_stream(e) and method != "open_stream"):
                raise StreamStateLostError(stream_id, shard, e) from e
            raise

    # streams
    def open_stream(self, stream_id: _StreamId, state: Any = None) -> str:
        """Opens the stream on its shard (from zeros or `state`: one (c, h) per layer -- a GRU
        layer's h alone --, e.g. a checkpoint from stream_state). Returns the replica's
        incarnation id."""
        return self._stream_call(stream_id, "open_stream", _pairs(state))

    def frame(self, stream_id: _StreamId, x: Any) -> np.ndarray:
        """One frame [D] -> the last layer's h [H_last]; the stream's state advances."""
        return self._stream_call(stream_id, "frame", np.asarray(x, np.float32))

    def frames(self, stream_id: _StreamId, xs: Any) -> np.ndarray:
        """Frames [n, D] of one stream, in order, in one round trip -> [n, H_last]."""
        return self._stream_call(stream_id, "frames", np.asarray(xs, np.float32))

    def stream_state(self, stream_id: _StreamId) -> _Pairs:
        """The stream's state (one (c, h) per layer, each [1, H_l]; a GRU layer's h alone):
        a checkpoint."""
        return self._stream_call(stream_id, "stream_state")

    def reset_stream(self, stream_id: _StreamId, state: Any = None) -> None:
        return self._stream_call(stream_id, "reset_stream", _pairs(state))

    def close_stream(self, stream_id: _StreamId) -> None:
        return self._stream_call(stream_id, "close_stream")

    async def aopen_stream(self, stream_id: _StreamId, state: Any = None) -> str:
        return await self._astream_call(stream_id, "open_stream", _pairs(state))

    async def aframe(self, stream_id: _StreamId, x: Any) -> np.ndarray:
        return await self._astream_call(stream_id, "frame", np.asarray(x, np.float32))

    async def aframes(self, stream_id: _StreamId, xs: Any) -> np.ndarray:
        return await self._astream_call(stream_id, "frames", np.asarray(xs, np.float32))

    async def astream_state(self, stream_id: _StreamId) -> _Pairs:
        return await self._astream_call(stream_id, "stream_state")

    async def areset_stream(self, stream_id: _StreamId, state: Any = None) -> None:
        return await self._astream_call(stream_id, "reset_stream", _pairs(state))

    async def aclose_stream(self, stream_id: _StreamId) -> None:
        return await self._astream_call(stream_id, "close_stream")

    # frames of many streams per request (a gateway's fan-in)
    async def astep_streams(self, items: Sequence[Tuple[_StreamId, Any]]
                            ) -> List[Union[np.ndarray, Exception]]:
        """One frame for each (stream_id, x) in `items`, in one request per shard (sent
        concurrently), batched on each replica. Returns a list in the order of `items`: the
        row's h [H_last], or the StreamStateLostError of a row whose stream is lost or not
        open, or the exception of a row that failed otherwise (its frame, or its shard's
        request), as asyncio.gather(..., return_exceptions=True) gives them; the other rows
        are applied.
        Frames of one stream in `items` are applied in their order."""
        by_shard: Dict[str, List[int]] = {}
        for i, (sid, x) in enumerate(items):
            by_shard.setdefault(self.shard_of(sid), []).append(i)
        results: List[Any] = [None] * len(items)

        async def one(shard: str, rows: List[int]) -> None:
            ids = [items[i][0] for i in rows]
            try:
                xs = np.stack([np.asarray(items[i][1], np.float32) for i in rows])
                out, errors = await self._handles[shard].step_streams.remote(ids, xs)
            except Exception as e:
                # every row of the shard gets the error (the other shards' rows were applied:
                # their results are returned, never lost to one shard's failure)
                for i in rows:
                    results[i] = StreamStateLostError(items[i][0], shard, e) \
                        if _is_replica_loss(e) else e
                return
            for j, i in enumerate(rows):
                if j in errors:
                    name, msg = errors[j]
                    cause = RuntimeError("%s: %s" % (name, msg))
                    results[i] = StreamStateLostError(items[i][0], shard, cause) \
                        if name == "UnknownStreamError" else cause
                else:
                    results[i] = out[j]

        await asyncio.gather(*[one(s, rows) for s, rows in by_shard.items()])
        return results

    def step_streams(self, items: Sequence[Tuple[_StreamId, Any]]
                     ) -> List[Union[np.ndarray, Exception]]:
        """astep_streams, blocking (not from inside a running event loop), at most timeout_s
        seconds (then TimeoutError)."""
        return asyncio.run(asyncio.wait_for(self.astep_streams(items), self.timeout_s))

    # whole sequences
    # (type: ignore[return]: every attempt returns or raises, the last one raising; only
    # retries < 0, no attempt at all, falls off the end, with None)
    def sequence(self, x: Any,  # type: ignore[return]
                 initial_state: Any = None) -> Tuple[np.ndarray, _Pairs]:
        """One whole sequence [T, D] -> (outputs [T, H_last], final state: one (c, h) per
        layer). Retried on the next shard when a replica dies under it (it is stateless)."""
        x = np.asarray(x, np.float32)
        for attempt in range(self.retries + 1):
            shard = self._next_shard()
            try:
                return self._handles[shard].sequence.remote(x, _pairs(initial_state)).result(
                    timeout_s=self.timeout_s)
            except Exception as e:
                if not _is_replica_loss(e) or attempt == self.retries:
                    raise

    async def asequence(self, x: Any,  # type: ignore[return]  # as sequence
                        initial_state: Any = None) -> Tuple[np.ndarray, _Pairs]:
        x = np.asarray(x, np.float32)
        for attempt in range(self.retries + 1):
            shard = self._next_shard()
            try:
                return await self._handles[shard].sequence.remote(x, _pairs(initial_state))
            except Exception as e:
                if not _is_replica_loss(e) or attempt == self.retries:
                    raise

    def replica_info(self, shard: str) -> Dict[str, Any]:
        """The shard's replica: pid, incarnation, open streams, batcher counters."""
        return self._handles[shard].info.remote().result(timeout_s=self.timeout_s)

    async def areplica_info(self, shard: str) -> Dict[str, Any]:
        return await self._handles[shard].info.remote()


def _pairs(state: Any) -> Any:
    """A caller's per-layer states in the form they travel (see _travel); None stays None."""
    if state is None:
        return None
    from ..layers import BidirectionalState
    from ..state import is_state_tuple

    def one(t: Any) -> Any:
        if isinstance(t, BidirectionalState):
            return BidirectionalState(one(t.fw), one(t.bw))
        if is_state_tuple(t):
            return (np.asarray(t.c, np.float32), np.asarray(t.h, np.float32))
        if isinstance(t, (tuple, list)) and len(t) == 2:
            return (np.asarray(t[0], np.float32), np.asarray(t[1], np.float32))
        return np.asarray(t, np.float32)
    return [one(t) for t in state]


def deploy(model: Any, shards: int = 1, name: str = "stacklstm", max_batch: int = 32,
           max_wait_us: int = 500, max_streams: int = 1024, max_time: int = 256,
           num_threads: int = 1, num_cpus: float = 1.0, num_gpus: Optional[float] = None,
           max_ongoing_requests: int = 256, timeout_s: float = 60.0,
           health_check_period_s: float = 2.0, cpu_path: str = "auto") -> StreamsClient:
    """Runs `shards` Serve applications "<name>-<i>" (one replica each, see the module's
    docstring) on the connected Ray cluster and returns a StreamsClient for them. `model`: a
    model file path (readable on every node), bytes, or a Model (shipped as its bytes).
    num_gpus per replica: default 1 when the cluster has GPUs, else 0 (CPU, num_threads
    library threads, num_cpus reserved)."""
    ray = require_ray("serve")
    from ray import serve
    from ..model import Model
    if isinstance(model, Model):
        model = model.to_bytes()
    if shards < 1:
        raise ValueError("shards must be >= 1, got %r" % (shards,))
    if num_gpus is None:
        num_gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    dep: Any = serve.deployment(LSTMReplica)  # ray's stubs pick the decorator-factory overload
    names = ["%s-%d" % (name, i) for i in range(shards)]
    targets = []
    for n in names:
        app = dep.options(name="LSTMReplica", num_replicas=1,
                          max_ongoing_requests=max_ongoing_requests,
                          health_check_period_s=health_check_period_s,
                          max_constructor_retry_count=3,   # a bad model/option fails fast
                          ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus}).bind(
            model, max_batch=max_batch, max_wait_us=max_wait_us, max_streams=max_streams,
            max_time=max_time, num_threads=num_threads, cpu_path=cpu_path)
        targets.append(serve.RunTarget(target=app, name=n, route_prefix=None))
    serve.run_many(targets)
    return StreamsClient(names, timeout_s=timeout_s)


def undeploy(client_or_names: Union[StreamsClient, Iterable[str]]) -> None:
    """Deletes the shard applications of a deployment."""
    from ray import serve
    names = client_or_names.shards if isinstance(client_or_names, StreamsClient) \
        else list(client_or_names)
    for n in names:
        serve.delete(n)
