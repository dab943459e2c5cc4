"""stacklstm on Ray (issue 17 item 3): offline scoring with Ray Data (stacklstm.ray.data) and
online serving with Ray Serve (stacklstm.ray.serve).

Ray is an optional dependency (`pip install "stacklstm[ray]"`, i.e. ray[data,serve]); this
package imports it only when one of its functions or classes is used, and raises an
ImportError that says what to install when it is missing. See docs/serving.md and
docs/scaling.md in the repository.
"""

import os

__all__ = ["require_ray", "load_model"]

_INSTALL = ('stacklstm.ray needs Ray: pip install "stacklstm[ray]" (or: pip install '
            '"ray[data,serve]")')


def require_ray(*parts):
    """Imports ray (and ray.<part> for each part: "data", "serve") or raises ImportError
    saying what to install."""
    try:
        import ray
        for p in parts:
            __import__("ray." + p)
    except ImportError as e:
        raise ImportError("%s (%s)" % (_INSTALL, e)) from e
    return ray


def load_model(model):
    """A stacklstm.Model from a safetensors model file path, its bytes, or a Model (a copy of
    its own, through its model file image)."""
    from ..model import Model
    if isinstance(model, Model):
        return Model.from_bytes(model.to_bytes())
    if isinstance(model, (bytes, bytearray, memoryview)):
        return Model.from_bytes(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        return Model.load(model)
    raise TypeError("model must be a model file path, its bytes or a stacklstm.Model, got %s"
                    % type(model).__name__)
