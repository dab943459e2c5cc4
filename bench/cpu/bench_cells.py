#!/usr/bin/env python3
"""CPU benchmark of the cells beyond BasicLSTMCell (issue 20): GRU, LSTM with a projection
(LSTMP) and bidirectional stacks, libstacklstm's CPU paths against PyTorch's nn.GRU / nn.LSTM
with the same weights, in one run.

    SLSTM_LIBRARY=BUILD/libstacklstm.so python3 bench/cpu/bench_cells.py \\
        [--threads 1] [--seconds 1.5] [--rounds 5] [--no-ort] [--only ROW,...]
        [--out bench/results/bench-cpu-cells.md]

Per row: median wall time of one forward call (batch-major input, zero initial state, output
and final state written; --rounds alternating rounds of ours and PyTorch sharing --seconds
per side, the median of the rounds' medians) on our AUTO path (the generic fast path for these stacks, one
thread: docs/cells.md), on our reference path where it is cheap, and PyTorch's (inference
mode, torch.set_num_threads(--threads)); the ratio torch / ours (> 1: we are faster); the
floor = FLOPs / this machine's FMA peak for --threads cores as measured by
bench/cpu's driver is not repeated here: the GFLOP/s column says how far each is from it;
and the largest relative difference of our output from PyTorch's (float32 both; a
correctness guard, not a tolerance claim).  The model is PyTorch's module, its weights copied
into ours through the canonical layout (PyTorch's gate order is the canonical one).
ONNX Runtime (issue 18's CPU anchor), where onnxruntime imports: the same module exported by
torch.onnx's TorchScript exporter (one ONNX GRU / LSTM node per layer; LSTM with proj_size
has none, so those rows say "-"), intra_op_num_threads = --threads, timed in the same
alternating rounds, its output checked against PyTorch's; --no-ort leaves it out.

Run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (bench/cpu/run.sh does that for the
driver; this script is run by hand).

--device cuda: the same rows on the GPU, our CUDA backend's generic path (cuda.generic=on,
docs/cuda-generic.md; --tf32 for TF32 GEMMs on both sides) against PyTorch's cuDNN modules
with the same weights, host numpy buffers on our side and CUDA tensors on PyTorch's (each
timed call ends with torch.cuda.synchronize()); bench/gpu/check.sh runs it.  Prints the
table; exits 0 with a message when CUDA is unavailable to either side.
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "python"))
import stacklstm  # noqa: E402


def shapes():
    return [
        dict(name="gru_H256_B1_T100", kind="gru", hidden=256, layers=1, input=256, batch=1,
             time=100, bi=False),
        dict(name="gru_H512_B4_T50", kind="gru", hidden=512, layers=1, input=512, batch=4,
             time=50, bi=False),
        dict(name="gru2_H256_B10_T50", kind="gru", hidden=256, layers=2, input=128, batch=10,
             time=50, bi=False),
        dict(name="lstmp_H1024_P256_B4_T50", kind="lstmp", hidden=1024, proj=256, layers=1,
             input=256, batch=4, time=50, bi=False),
        dict(name="lstmp2_H512_P128_B1_T100", kind="lstmp", hidden=512, proj=128, layers=2,
             input=80, batch=1, time=100, bi=False),
        dict(name="bilstm2_H256_B4_T50", kind="lstm", hidden=256, layers=2, input=128,
             batch=4, time=50, bi=True),
        dict(name="bigru_H256_B4_T50", kind="gru", hidden=256, layers=1, input=128, batch=4,
             time=50, bi=True),
        # Large batches (the GEMMs near the machine's peak rather than its weight stream).
        dict(name="gru_H1024_B64_T25", kind="gru", hidden=1024, layers=1, input=1024,
             batch=64, time=25, bi=False),
        dict(name="lstmp_H1024_P256_B32_T25", kind="lstmp", hidden=1024, proj=256, layers=1,
             input=512, batch=32, time=25, bi=False),
        dict(name="bilstm_H512_B64_T25", kind="lstm", hidden=512, layers=1, input=256,
             batch=64, time=25, bi=True),
    ]


def torch_module(s):
    torch.manual_seed(0)
    if s["kind"] == "gru":
        return torch.nn.GRU(s["input"], s["hidden"], s["layers"], batch_first=True,
                            bidirectional=s["bi"])
    return torch.nn.LSTM(s["input"], s["hidden"], s["layers"], batch_first=True,
                         bidirectional=s["bi"], proj_size=s.get("proj", 0))


def our_model(s, mod):
    """Our model with the module's weights, through the canonical layout."""
    layers, weights = [], []
    sd = {k: v.detach().numpy() for k, v in mod.state_dict().items()}
    for l in range(s["layers"]):
        layer = stacklstm.Layer(cell="gru" if s["kind"] == "gru" else "lstm",
                                hidden_size=s["hidden"],
                                direction="bidirectional" if s["bi"] else "forward",
                                proj_size=s.get("proj", 0),
                                gru_reset_after=s["kind"] == "gru")
        layers.append(layer)
        lw = []
        for suffix in ([""] + (["_reverse"] if s["bi"] else [])):
            k = "_l%d%s" % (l, suffix)
            if s["kind"] == "gru":
                lw += [sd["weight_ih" + k], sd["weight_hh" + k], sd["bias_ih" + k],
                       sd["bias_hh" + k]]
            else:
                lw += [sd["weight_ih" + k], sd["weight_hh" + k], sd["bias_ih" + k] + sd["bias_hh" + k]]
                if s.get("proj"):
                    lw.append(sd["weight_hr" + k])
        weights.append(lw)
    return stacklstm.Model.from_weights(weights, "canonical", input_size=s["input"],
                                        forget_bias=0.0, layers=layers)


def ort_session(mod, x, threads):
    """PyTorch's module exported to ONNX (the TorchScript exporter: one ONNX GRU / LSTM node
    per layer) in an ONNX Runtime session with `threads` intra-op threads; (None, reason)
    where onnxruntime is missing or the export fails (LSTM with proj_size has no ONNX node)."""
    try:
        import io
        import warnings
        import onnxruntime as ort
    except ImportError as e:
        return None, "onnxruntime not importable (%s)" % e
    f = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(mod, (torch.from_numpy(x),), f, input_names=["x"],
                              output_names=["y", "h"], dynamo=False)
    except Exception as e:  # noqa: BLE001 - any export failure just leaves ORT out
        return None, "export failed: %s" % str(e).splitlines()[0][:120]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(f.getvalue(), so, providers=["CPUExecutionProvider"])
    return sess, "onnxruntime %s" % ort.__version__


def flops(s):
    """Multiply-adds x 2 of the matrix products per forward call."""
    g = 3 if s["kind"] == "gru" else 4
    H, P = s["hidden"], s.get("proj", 0) or s["hidden"]
    dirs = 2 if s["bi"] else 1
    total, inp = 0, s["input"]
    for _ in range(s["layers"]):
        per_step = g * H * (inp + P) + (H * P if s.get("proj") else 0)
        total += dirs * per_step
        inp = P * dirs
    return 2.0 * total * s["batch"] * s["time"]


def timed(fn, seconds, min_iters=3):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--only", default="",
                    help="comma-separated row names (e.g. bilstm_H512_B64_T25): time only these")
    a = ap.parse_args()
    a.only_rows = [n for n in a.only.split(",") if n]
    unknown = sorted(set(a.only_rows) - {s["name"] for s in shapes()})
    if unknown:
        ap.error("--only: no row named %s (rows: %s)"
                 % (", ".join(unknown), ", ".join(s["name"] for s in shapes())))
    torch.set_num_threads(a.threads)
    if a.device == "cuda":
        if not torch.cuda.is_available() or not stacklstm.backend_available("cuda")[0]:
            print("SKIPPED: CUDA unavailable to PyTorch or to libstacklstm")
            return 0
        return main_cuda(a)
    rows, notes = [], set()
    for s in shapes():
        if a.only_rows and s["name"] not in a.only_rows:
            continue
        mod = torch_module(s).eval()
        model = our_model(s, mod)
        x = np.random.default_rng(1).uniform(-1, 1, (s["batch"], s["time"], s["input"])) \
            .astype(np.float32)
        xt = torch.from_numpy(x)
        fast = model.session(s["batch"], s["time"], cpu_path="auto", num_threads=a.threads)
        plan = fast.describe("json")
        with torch.inference_mode():
            want = mod(xt)[0].numpy()
        got = fast.forward(x)[0]
        err = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
        # Alternating rounds (this VM's speed moves by 2x for seconds at a time): each side's
        # time is the median of its rounds' medians.
        ort_s, ort_note = (None, "--no-ort") if a.no_ort else ort_session(mod, x, a.threads)
        err_ort = None
        if ort_s is not None:
            y_ort = ort_s.run(None, {"x": x})[0]
            err_ort = float(np.max(np.abs(y_ort - want)) / max(np.max(np.abs(want)), 1e-30))
        ours_r, torch_r, ort_r = [], [], []
        for _ in range(a.rounds):
            ours_r.append(timed(lambda: fast.forward(x), a.seconds / a.rounds))
            with torch.inference_mode():
                torch_r.append(timed(lambda: mod(xt), a.seconds / a.rounds))
            if ort_s is not None:
                ort_r.append(timed(lambda: ort_s.run(None, {"x": x}), a.seconds / a.rounds))
        t_ours, t_torch = statistics.median(ours_r), statistics.median(torch_r)
        t_ort = statistics.median(ort_r) if ort_r else None
        notes.add(ort_note)
        t_ref = None
        if not a.no_reference and flops(s) < 2e8:
            ref = model.session(s["batch"], s["time"], cpu_path="reference")
            t_ref = timed(lambda: ref.forward(x), a.seconds / 2, min_iters=1)
        f = flops(s)
        rows.append((s["name"], t_ours, t_ref, t_torch, f, err, t_ort, err_ort))
        print("%-26s ours %8.3f ms  ref %s  torch %8.3f ms  torch/ours %.2f  err %.1e  ort %s" % (
            s["name"], t_ours * 1e3, "-" if t_ref is None else "%8.3f ms" % (t_ref * 1e3),
            t_torch * 1e3, t_torch / t_ours, err,
            "-" if t_ort is None else "%.3f ms ort/ours %.2f err %.1e" % (
                t_ort * 1e3, t_ort / t_ours, err_ort)), flush=True)
    lines = [
        "# CPU: GRU, LSTMP and bidirectional stacks against PyTorch (issue 20)",
        "",
        "Machine: %s, %d CPUs; %s; PyTorch %s (torch.set_num_threads(%d)); libstacklstm %s, "
        "AUTO path (the generic fast path, num_threads=%d: docs/cells.md); %s UTC; "
        "bench/cpu/bench_cells.py --threads %d --rounds %d (alternating)." % (
            platform.processor() or platform.machine(), os.cpu_count() or 0,
            platform.platform(), torch.__version__, a.threads, stacklstm.__version__,
            a.threads, datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), a.threads,
            a.rounds),
        "",
        "ONNX Runtime: %s (PyTorch's module exported by torch.onnx's TorchScript exporter, "
        "intra_op_num_threads=%d, sequential; its max rel. diff is against PyTorch's output)."
        % ("; ".join(sorted(notes)), a.threads),
        "",
        "| shape | ours (ms) | GFLOP/s | reference (ms) | PyTorch (ms) | PyTorch / ours | "
        "max rel. diff vs PyTorch | ORT (ms) | ORT / ours | ORT max rel. diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t, tr, tt, f, err, to, eo in rows:
        lines.append("| %s | %.3f | %.1f | %s | %.3f | %.2f | %.1e | %s | %s | %s |" % (
            name, t * 1e3, f / t / 1e9, "-" if tr is None else "%.2f" % (tr * 1e3),
            tt * 1e3, tt / t, err, "-" if to is None else "%.3f" % (to * 1e3),
            "-" if to is None else "%.2f" % (to / t), "-" if eo is None else "%.1e" % eo))
    text = "\n".join(lines) + "\n"
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)
    print(text)


def main_cuda(a):
    """--device cuda: our generic CUDA path against cuDNN through PyTorch, same weights."""
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    print("device: %s; PyTorch %s, cuDNN %s; libstacklstm %s; %s; %s UTC" % (
        torch.cuda.get_device_name(0), torch.__version__, torch.backends.cudnn.version(),
        stacklstm.__version__, "tf32" if a.tf32 else "fp32",
        datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")))
    print("| shape | ours generic (ms) | cuDNN (ms) | cuDNN / ours | GFLOP/s ours | "
          "max rel. diff vs cuDNN |")
    print("|---|---:|---:|---:|---:|---:|")
    status = 0
    for s in shapes():
        if a.only_rows and s["name"] not in a.only_rows:
            continue
        mod = torch_module(s).eval()
        model = our_model(s, mod)
        mod = mod.cuda()
        x = np.random.default_rng(1).uniform(-1, 1, (s["batch"], s["time"], s["input"])) \
            .astype(np.float32)
        xt = torch.from_numpy(x).cuda()
        try:
            ours = model.session(s["batch"], s["time"], backend="cuda", allow_tf32=a.tf32,
                                 config="cuda.generic=on")
        except Exception as e:  # noqa: BLE001 (the row says why)
            print("| %s | failed: %s | | | | |" % (s["name"], str(e)[:120]))
            status = 1
            continue
        with torch.inference_mode():
            want = mod(xt)[0].cpu().numpy()
        got = ours.forward(x)[0]
        err = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))

        def torch_call():
            with torch.inference_mode():
                mod(xt)
            torch.cuda.synchronize()

        t_ours = timed(lambda: ours.forward(x), a.seconds)
        t_torch = timed(torch_call, a.seconds)
        print("| %s | %.3f | %.3f | %.2f | %.1f | %.1e |" % (
            s["name"], t_ours * 1e3, t_torch * 1e3, t_torch / t_ours, flops(s) / t_ours / 1e9,
            err), flush=True)
        if not err < (1e-3 if a.tf32 else 1e-4):
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
