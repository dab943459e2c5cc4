"""Offline batch inference with Ray Data: score a dataset of variable-length sequences.

    import ray, stacklstm.ray.data as sd
    ds = ray.data.read_parquet("sequences/")           # columns: x (list<float>), length, ...
    scored = sd.score(ds, "model.safetensors", actors=4)
    scored.write_parquet("scored/")

Input rows: a column `x` holding one sequence, either flattened (`length * input_size`
floats, with an integer `length` column giving T) or as a [T, input_size] tensor; T may differ
from row to row. Output rows: every input column except `x` (kept with keep_input=True), plus
`h_last` (list<float32>, [H_last]: the last layer's h at the row's last step, i.e. the final
state's h) and, with outputs="all", `outputs` (list<float32>, flattened [length, H_last]: the
last layer's output at every step). The numbers are those of Session.forward on the row
alone (rows of a batch are padded to the longest one and run with sequence_lengths).

Each actor of the pool holds one model (loaded once, from a model file path every node can
read, or from the model's bytes shipped with the actor's arguments) and one session: on a
GPU (backend "cuda", device 0 of the GPU Ray assigned it) when Ray gave the actor a GPU
(num_gpus=1), else on the CPU with `num_threads` library threads.
"""

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import load_model, require_ray

__all__ = ["SequenceScorer", "score"]


class SequenceScorer:
    """A callable class for Dataset.map_batches(batch_format="pyarrow") with an actor pool
    (see the module's docstring for the columns).

    SequenceScorer(model, max_batch=64, max_time=1024, outputs="last", num_threads=1,
                   backend="auto", input_column="x", length_column="length",
                   keep_input=False)

    model        a model file path (readable on every node), the model's safetensors bytes,
                 or a stacklstm.Model (shipped as its bytes).
    max_batch    rows per library call (a Ray batch is cut into calls of at most this).
    max_time     the longest sequence accepted; a longer row is a ValueError naming it.
    outputs      "last" (h_last only) or "all" (h_last and every step's output).
    backend      "auto": "cuda" when Ray assigned this actor a GPU, else "cpu".
    """

    def __init__(self, model: Any, max_batch: int = 64, max_time: int = 1024,
                 outputs: str = "last", num_threads: int = 1, backend: str = "auto",
                 input_column: str = "x", length_column: str = "length",
                 keep_input: bool = False, cpu_path: str = "auto") -> None:
        if outputs not in ("last", "all"):
            raise ValueError("outputs must be 'last' or 'all', got %r" % (outputs,))
        if backend == "auto":
            backend = "cpu"
            try:
                import ray
                if ray.is_initialized() and ray.get_gpu_ids():
                    backend = "cuda"   # Ray set CUDA_VISIBLE_DEVICES: our GPU is device 0
            except ImportError:
                pass
        self.model = load_model(model)
        self.session = self.model.session(max_batch, max_time, backend=backend,
                                          num_threads=num_threads if backend == "cpu" else 0,
                                          cpu_path=cpu_path if backend == "cpu" else "auto")
        self.max_batch, self.max_time = max_batch, max_time
        self.outputs = outputs
        self.input_column, self.length_column = input_column, length_column
        self.keep_input = keep_input
        self.backend = backend

    def _sequences(self, table):
        """The rows' sequences as [T, D] float32 arrays."""
        D = self.model.input_size
        if self.input_column not in table.column_names:
            raise KeyError("SequenceScorer: the batch has no column %r (columns: %s)"
                           % (self.input_column, ", ".join(table.column_names)))
        col = table.column(self.input_column)
        has_len = self.length_column in table.column_names
        lens = (np.asarray(table.column(self.length_column).to_numpy(), dtype=np.int64)
                if has_len else None)
        import pyarrow as pa
        arr = col.combine_chunks()
        if isinstance(arr.type, (pa.ListType, pa.LargeListType)):   # flattened lists
            flat = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), np.float32)
            offsets = np.asarray(arr.offsets.to_numpy(), dtype=np.int64)
            offsets = offsets - offsets[0]
            seqs = [flat[offsets[i]:offsets[i + 1]] for i in range(len(arr))]
        else:   # a Ray tensor extension column (fixed or variable shape)
            seqs = [np.asarray(v, np.float32) for v in arr.to_numpy(zero_copy_only=False)]
        out = []
        for i, s in enumerate(seqs):
            n = s.size // D if s.size % D == 0 else -1
            if n < 0 or (s.ndim == 2 and s.shape[1] != D):
                raise ValueError("batch row %d: %r holds %d values (shape %s), not a whole "
                                 "number of %d-value steps (input_size)"
                                 % (i, self.input_column, s.size, s.shape, D))
            if lens is not None and lens[i] != n:
                raise ValueError("batch row %d: %r = %d but %r holds %d steps"
                                 % (i, self.length_column, lens[i], self.input_column, n))
            if not 1 <= n <= self.max_time:
                raise ValueError("batch row %d: a sequence of %d steps; this scorer takes 1 to %d "
                                 "(max_time)" % (i, n, self.max_time))
            out.append(s.reshape(n, D))
        return out

    def score_arrays(self, seqs: Sequence[np.ndarray]
                     ) -> Tuple[np.ndarray, Optional[List[np.ndarray]]]:
        """[T_i, D] arrays -> (h_last [n, H], outputs: a list of [T_i, H] arrays or None)."""
        n, H = len(seqs), self.model.output_size
        lens = np.array([s.shape[0] for s in seqs], dtype=np.int64)
        h_last = np.empty((n, H), np.float32)
        outs: Optional[List[Any]] = [None] * n if self.outputs == "all" else None
        order = np.argsort(lens, kind="stable")       # similar lengths share a call
        for start in range(0, n, self.max_batch):
            idx = order[start:start + self.max_batch]
            T = int(lens[idx].max())
            x = np.zeros((len(idx), T, self.model.input_size), np.float32)
            for j, i in enumerate(idx):
                x[j, :lens[i]] = seqs[i]
            o, fin = self.session.forward(x, sequence_lengths=lens[idx])
            h_last[idx] = fin[-1].h
            if outs is not None:
                for j, i in enumerate(idx):
                    outs[i] = o[j, :lens[i]].copy()
        return h_last, outs

    def __call__(self, table: Any) -> Any:
        import pyarrow as pa
        seqs = self._sequences(table)
        h_last, outs = self.score_arrays(seqs)
        H = h_last.shape[1]
        keep = table if self.keep_input else table.drop_columns(
            [c for c in [self.input_column] if c in table.column_names])
        offsets = pa.array(np.arange(0, (len(seqs) + 1) * H, H, dtype=np.int32))
        keep = keep.append_column("h_last", pa.ListArray.from_arrays(
            offsets, pa.array(h_last.reshape(-1))))
        if outs is not None:
            sizes = np.array([o.size for o in outs], dtype=np.int64)
            off = pa.array(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
            flat = np.concatenate([o.reshape(-1) for o in outs]) if outs else \
                np.zeros(0, np.float32)
            keep = keep.append_column("outputs", pa.LargeListArray.from_arrays(
                off, pa.array(flat)))
        return keep


def score(ds: Any, model: Any, actors: int = 2, batch_size: int = 256,
          num_gpus: Optional[float] = None, num_cpus: Optional[float] = None,
          **scorer_kwargs: Any) -> Any:
    """ds.map_batches(SequenceScorer, ...) over an actor pool of `actors` actors, each with
    one model and one session. num_gpus: per actor (default: 1 when the cluster has GPUs,
    else 0); num_cpus: per actor (default: scorer_kwargs' num_threads, 1). A Model is shipped
    as its bytes."""
    ray = require_ray("data")
    from ..model import Model
    if isinstance(model, Model):
        model = model.to_bytes()
    if num_gpus is None:
        num_gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    if num_cpus is None:
        num_cpus = scorer_kwargs.get("num_threads", 1) if not num_gpus else 1
    return ds.map_batches(SequenceScorer, batch_format="pyarrow", batch_size=batch_size,
                          compute=ray.data.ActorPoolStrategy(size=actors),
                          fn_constructor_kwargs=dict(model=model, **scorer_kwargs),
                          num_gpus=num_gpus, num_cpus=num_cpus)
