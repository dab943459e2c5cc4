#!/usr/bin/env python3
"""Writes the committed seed corpora fuzz/corpus/<target>/ (deterministic; run once, commit).

fuzz_model_file: small safetensors model images, valid (each dtype, 1-3 layers) and broken
(truncated, bad JSON, duplicate key, overlapping offsets).
fuzz_api: op sequences for fuzz_api.cpp's decoder (op byte, then its fields; 0 = default),
so the fuzzer starts from calls that get past the argument checks.
fuzz_npy: .npy images as numpy.save writes them (float32/64/16, int32/64 lengths, format
versions 1.0 and 2.0, an empty array, a scalar) and a few it refuses (Fortran order,
big-endian, truncated).
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def image(input_size, hidden, dtype="F32", forget_bias="1", tweak=None, pad=0):
    fmt, size = {"F32": ("<f", 4), "F64": ("<d", 8), "F16": ("<e", 2), "BF16": (None, 2)}[dtype]
    header = {"__metadata__": {"format": "stacklstm", "format_version": "1",
                               "input_size": str(input_size),
                               "hidden_sizes": ",".join(map(str, hidden)),
                               "forget_bias": forget_bias, "source_layout": "seed"}}
    data = b""
    prev = input_size
    k = 0
    for l, h in enumerate(hidden):
        for name, shape in (("W_x", [4 * h, prev]), ("W_h", [4 * h, h]), ("b", [4 * h])):
            n = 1
            for d in shape:
                n *= d
            vals = [((k + i) % 7 - 3) / 8.0 for i in range(n)]
            k += n
            if fmt:
                blob = b"".join(struct.pack(fmt, v) for v in vals)
            else:  # BF16: the high half of the float32
                blob = b"".join(struct.pack("<f", v)[2:] for v in vals)
            header[f"layers.{l}.{name}"] = {"dtype": dtype, "shape": shape,
                                            "data_offsets": [len(data), len(data) + len(blob)]}
            data += blob
        prev = h
    if tweak:
        tweak(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8 + pad)
    return struct.pack("<Q", len(text)) + text + data


def write(target, name, blob):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


def model_file_seeds():
    write("fuzz_model_file", "f32_1layer", image(2, [3]))
    write("fuzz_model_file", "f16_2layers", image(3, [4, 2], "F16", "0.5"))
    write("fuzz_model_file", "f64_1layer", image(1, [2], "F64", "-1.25"))
    write("fuzz_model_file", "bf16_3layers", image(2, [2, 3, 1], "BF16", "0"))
    write("fuzz_model_file", "f32_17units", image(1, [17]))
    ok = image(2, [3])
    write("fuzz_model_file", "truncated", ok[: len(ok) - 5])
    write("fuzz_model_file", "header_only", struct.pack("<Q", 2) + b"{}")
    write("fuzz_model_file", "not_json", struct.pack("<Q", 8) + b"{\"a\":[1,")

    def overlap(h):
        h["layers.0.b"]["data_offsets"] = [0, 48]
    write("fuzz_model_file", "overlap", image(2, [3], tweak=overlap))

    def dup(h):
        h["__metadata__"]["hidden_sizes"] = "3,3"
    write("fuzz_model_file", "wrong_layers", image(2, [3], tweak=dup))

    # Large headers (issue 13: the loader must stay linear; run.sh's -max_len admits them):
    # a real 1000-layer model (~300 kB of header), a valid model padded with 64 KiB of
    # spaces, and the hostile shape {"a0":{},"a1":{},...} (~100 kB).
    write("fuzz_model_file", "f32_1000layers", image(1, [1] * 1000))
    write("fuzz_model_file", "padded_64k", image(2, [3], pad=65536))
    objects = b"{" + b",".join(b'"a%d":{}' % k for k in range(10000)) + b"}"
    write("fuzz_model_file", "objects_100k", struct.pack("<Q", len(objects)) + objects)


# fuzz_api op codes (see LLVMFuzzerTestOneInput) and their field counts with default bytes.
CREATE_RANDOM, CREATE, DESTROY_MODEL, QUERY, EXPORT, SESSION, DESTROY_SESSION, FORWARD, STEP, \
    ONNX, MODEL_FILE, MISC = range(12)


def op(code, fields):
    return bytes([code]) + bytes(fields)


def api_seeds():
    create = op(CREATE_RANDOM, [0] * 23)
    session_ok = op(SESSION, [0] * 13)
    forward = op(FORWARD, [0] * 19)
    step = op(STEP, [0] * 18)
    # forward with lengths (selector >= 128, then 2 length bytes for batch 2, then its count)
    fwd_len = op(FORWARD, [0] * 12 + [200, 1, 3, 0] + [0] * 5)
    fast = op(SESSION, [0, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 0, 1])  # cpu_path FAST, 2 threads
    write("fuzz_api", "create_session_forward", create + session_ok + forward + step)
    write("fuzz_api", "forward_lengths", create + session_ok + fwd_len)
    write("fuzz_api", "fast_path", create + fast + op(FORWARD, [1] + [0] * 18))
    write("fuzz_api", "absurd_maxima", create + op(SESSION, [0, 0, 0, 222, 0] + [0] * 8))
    write("fuzz_api", "export_tf", create + op(EXPORT, [0, 1] + [0] * 16))
    write("fuzz_api", "model_file", create + op(MODEL_FILE, [0] * 8))
    write("fuzz_api", "onnx", op(ONNX, [0] * 10 + [210] + [0] * 24))
    write("fuzz_api", "misc", b"".join(op(MISC, [k, 3, 0]) for k in range(8)))


# format_version 2 seeds (issue 20): written from the format's description alone
# (docs/interop.md "Model files"), not by the library's writer.

def image_v2(input_size, layers, dtype="F32", forget_bias="1", tweak=None):
    """layers: dicts with cell ("lstm"/"gru"), hidden, and optional direction, residual,
    peepholes, cell_clip, proj, proj_clip, reset_after."""
    fmt = {"F32": "<f", "F64": "<d", "F16": "<e"}[dtype]
    L = [dict({"direction": "forward", "residual": 0, "peepholes": 0, "cell_clip": "0",
               "proj": 0, "proj_clip": "0", "reset_after": 0}, **l) for l in layers]
    meta = {"format": "stacklstm", "format_version": "2", "input_size": str(input_size),
            "hidden_sizes": ",".join(str(l["hidden"]) for l in L),
            "cells": ",".join(l["cell"] for l in L),
            "directions": ",".join(l["direction"] for l in L),
            "residual": ",".join(str(l["residual"]) for l in L),
            "peepholes": ",".join(str(l["peepholes"]) for l in L),
            "cell_clip": ",".join(l["cell_clip"] for l in L),
            "proj_sizes": ",".join(str(l["proj"]) for l in L),
            "proj_clip": ",".join(l["proj_clip"] for l in L),
            "gru_reset_after": ",".join(str(l["reset_after"]) for l in L),
            "forget_bias": forget_bias, "source_layout": "seed"}
    header = {"__metadata__": meta}
    data = b""
    prev = input_size
    k = 0
    for i, l in enumerate(L):
        h, p = l["hidden"], l["proj"]
        r = p or h
        if l["cell"] == "gru":
            pieces = [("W_x", [3 * h, prev]), ("W_h", [3 * h, h]), ("b_x", [3 * h]),
                      ("b_h", [3 * h])]
        else:
            pieces = [("W_x", [4 * h, prev]), ("W_h", [4 * h, r]), ("b", [4 * h])]
            if l["peepholes"]:
                pieces.append(("w_peep", [3, h]))
            if p:
                pieces.append(("W_proj", [p, h]))
        dirs = 2 if l["direction"] == "bidirectional" else 1
        for d in range(dirs):
            for name, shape in pieces:
                n = 1
                for e in shape:
                    n *= e
                blob = b"".join(struct.pack(fmt, ((k + j) % 7 - 3) / 8.0) for j in range(n))
                k += n
                key = f"layers.{i}.{'reverse.' if d else ''}{name}"
                header[key] = {"dtype": dtype, "shape": shape,
                               "data_offsets": [len(data), len(data) + len(blob)]}
                data += blob
        prev = r * dirs
    if tweak:
        tweak(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def model_file_v2_seeds():
    write("fuzz_model_file", "v2_lstmp_bidirectional",
          image_v2(2, [{"cell": "lstm", "hidden": 3, "direction": "bidirectional",
                        "peepholes": 1, "cell_clip": "2.5", "proj": 2, "proj_clip": "0.75"}]))
    write("fuzz_model_file", "v2_gru_both_resets",
          image_v2(3, [{"cell": "gru", "hidden": 2}, {"cell": "gru", "hidden": 2,
                                                      "reset_after": 1, "residual": 1}], "F16"))
    write("fuzz_model_file", "v2_mixed",
          image_v2(2, [{"cell": "gru", "hidden": 2, "direction": "reverse"},
                       {"cell": "lstm", "hidden": 2, "residual": 1, "peepholes": 1},
                       {"cell": "gru", "hidden": 1, "direction": "bidirectional",
                        "reset_after": 1},
                       {"cell": "lstm", "hidden": 3, "proj": 1}], "F64", "0.5"))
    write("fuzz_model_file", "v2_missing_reverse",
          image_v2(1, [{"cell": "lstm", "hidden": 2, "direction": "bidirectional"}],
                   tweak=lambda h: h.pop("layers.0.reverse.b")))


def npy(descr, shape, payload, version=1, fortran=False):
    dims = "".join(f"{d}, " for d in shape).rstrip(" ") if len(shape) != 1 else f"{shape[0]},"
    text = (f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': ({dims}), }}")
    prefix = 10 if version == 1 else 12
    text += " " * ((64 - (prefix + len(text) + 1) % 64) % 64) + "\n"
    length = struct.pack("<H" if version == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + length + text.encode() + payload


def npy_seeds():
    vals = [((i % 7) - 3) / 8.0 for i in range(24)]
    write("fuzz_npy", "f4_2x3x4", npy("<f4", [2, 3, 4], struct.pack("<24f", *vals)))
    write("fuzz_npy", "f8_2x3", npy("<f8", [2, 3], struct.pack("<6d", *vals[:6])))
    write("fuzz_npy", "f2_4", npy("<f2", [4], struct.pack("<4e", *vals[:4])))
    write("fuzz_npy", "i8_lengths", npy("<i8", [3], struct.pack("<3q", 0, 5, 9)))
    write("fuzz_npy", "i4_lengths_v2", npy("<i4", [2], struct.pack("<2i", 1, 2), version=2))
    write("fuzz_npy", "f4_empty", npy("<f4", [0, 3], b""))
    write("fuzz_npy", "f4_scalar", npy("<f4", [], struct.pack("<f", 1.5)))
    write("fuzz_npy", "f4_fortran", npy("<f4", [2, 2], struct.pack("<4f", *vals[:4]),
                                        fortran=True))
    write("fuzz_npy", "f4_big_endian", npy(">f4", [2], struct.pack(">2f", 1.0, 2.0)))
    write("fuzz_npy", "f4_truncated", npy("<f4", [2, 3], struct.pack("<5f", *vals[:5])))


if __name__ == "__main__":
    npy_seeds()
    model_file_seeds()
    model_file_v2_seeds()
    api_seeds()
