"""Reading a safetensors file's JSON header (metadata and tensor table) without loading it."""

import json
import struct

__all__ = ["read_header"]

MAX_HEADER = 100_000_000


def read_header(path):
    """(metadata dict, {tensor name: {"dtype", "shape", "data_offsets"}}) of a safetensors
    file, e.g. a stacklstm model file's architecture and source_layout. The library does
    the real validation when it loads the model."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("%s: shorter than the 8-byte header length" % path)
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER:
            raise ValueError("%s: header length %d exceeds %d" % (path, n, MAX_HEADER))
        text = f.read(n)
        if len(text) != n:
            raise ValueError("%s: header runs past the end of the file" % path)
    header = json.loads(text.decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("%s: header is not a JSON object" % path)
    meta = header.pop("__metadata__", {})
    return meta, header
