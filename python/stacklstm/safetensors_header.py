"""Reading a safetensors file's JSON header (metadata and tensor table) without loading it."""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Dict, Optional, Tuple, Union

__all__ = ["read_header", "not_safetensors_reason"]

MAX_HEADER = 100_000_000

# What other files commonly handed to a model loader start with.
_MAGIC = [
    (b"PK\x03\x04", "a ZIP archive, as torch.save writes a .pt/.pth file (also .npz, "
                     ".keras); a PyTorch state_dict converts with `python -m "
                     "stacklstm.convert torch SRC OUT.safetensors`"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file, e.g. a Keras .h5 model; it converts with "
                             "`python -m stacklstm.convert keras SRC OUT.safetensors`"),
    (b"\x93NUMPY", "a NumPy .npy array file"),
    (b"\x1f\x8b", "a gzip-compressed file"),
]


def not_safetensors_reason(head: Union[bytes, bytearray, memoryview], size: int
                           ) -> Optional[str]:
    """None when `head` (the first bytes of a file of `size` bytes) may start a safetensors
    file, else a sentence saying what it is instead. A safetensors file is an 8-byte
    little-endian header length and then the JSON header, which begins with '{' (the library
    tolerates JSON whitespace before it); anything else is not safetensors, whatever the
    8-byte number says."""
    head = bytes(head)
    if size < 9 or len(head) < 9 or head[8:9] in (b"{", b" ", b"\t", b"\r", b"\n"):
        return None
    what = None
    for magic, text in _MAGIC:
        if head.startswith(magic):
            what = text
            break
    if what is None and head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04",
                                                              b"\x05"):
        what = ("a Python pickle, as older torch.save (_use_new_zipfile_serialization=False) "
                "writes; a PyTorch state_dict converts with `python -m stacklstm.convert "
                "torch SRC OUT.safetensors`")
    if what is None and head[:1] == b"\x08":
        what = ("perhaps a protobuf such as an ONNX model; an ONNX model converts with "
                "`python -m stacklstm.convert onnx SRC OUT.safetensors`")
    return ("not a safetensors file (which starts with 8 bytes of length and then its JSON "
            "header, '{'): this file starts with bytes %s%s"
            % (head[:12].hex(" "), (", " + what) if what else ""))


def read_header(path: Union[str, "os.PathLike[str]"]
                ) -> Tuple[Dict[str, str], Dict[str, Dict[str, Any]]]:
    """(metadata dict, {tensor name: {"dtype", "shape", "data_offsets"}}) of a safetensors
    file, e.g. a stacklstm model file's architecture and source_layout. The library does
    the real validation when it loads the model."""
    with open(path, "rb") as f:
        head = f.read(16)
        why = not_safetensors_reason(head, os.fstat(f.fileno()).st_size)
        if why:
            raise ValueError("%s: %s" % (path, why))
        if len(head) < 8:
            raise ValueError("%s: shorter than the 8-byte header length" % path)
        (n,) = struct.unpack("<Q", head[:8])
        f.seek(8)
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
