#!/usr/bin/env python3
"""CPU speed of BF16 and FP16 sessions against FP32 (docs/precision.md, "Speed"), in one run.

    SLSTM_LIBRARY=BUILD/libstacklstm.so.0 python3 bench/cpu/precision_speed.py \\
        [--threads 2] [--rounds 5] [--calls 3] [--kernel auto]

Per shape (BasicLSTMCell stacks on the fused kernels, GRU / LSTMP on the generic path; batch-major
input, zero initial state):
FP32, BF16 (on AMX's tiles where cpu.amx=auto takes them: the plan's "amx" says so) and
FP16 sessions, BF16 on the AVX-512/AVX2 FMAs (cpu.amx=off), and BF16 with cpu.wh16=off (W_h
as float32 holding the same rounded values: what the 16-bit storage alone buys), timed in
alternating rounds; each round the median of --calls calls after a warm-up call; the table
gives each session's best round and the ratios FP32 / X (> 1: X is faster).  The outputs of
BF16 on the FMAs with and without 16-bit storage are compared bitwise (they must be equal).
With --torch, PyTorch's nn.LSTM (one module per layer size, inference mode, the same thread
count) in float32 and in bfloat16 (the module and the input converted: oneDNN's BF16 path)
is timed in the same rounds for the BasicLSTMCell shapes: the anchor at the same precision.
Prints a markdown table with the machine, the kernel the plan names and the commit.  Run with
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset.  Speed only: correctness is the test suite's (tests/test_precision.cpp).
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "python"))
import stacklstm  # noqa: E402

SHAPES = [  # (name, input, hidden sizes or stacklstm.Layer list, batch, time)
    ("H=2048, B=1, T=25", 2048, [2048], 1, 25),
    ("H=2048, B=4, T=25", 2048, [2048], 4, 25),
    ("H=1024, B=1, T=25", 1024, [1024], 1, 25),
    ("H=1024, B=4, T=25", 1024, [1024], 4, 25),
    ("H=256, B=1, T=150", 256, [256], 1, 150),
    ("seed [100, 200, 300], B=10, T=100", 128, [100, 200, 300], 10, 100),
    ("seed [100, 200, 300], B=10, T=1", 128, [100, 200, 300], 10, 1),
    # Calls of one step at batch 1 (streaming): W_x is read whole for one row, as W_h is.
    # (Timed as every row is: after the other sessions' rounds, a 50 ms sleep and one warm-up
    # call, so weights near the L3's size may come from memory: docs/precision.md.)
    ("H=1024, B=1, T=1", 1024, [1024], 1, 1),
    ("H=2048, B=1, T=1", 2048, [2048], 1, 1),
    # Large batches (the FLOPs bound a step: AMX's tiles, since 0.15).
    ("H=512, B=128, T=25", 512, [512], 128, 25),
    ("H=1024, B=16, T=25", 1024, [1024], 16, 25),
    ("H=1024, B=64, T=25", 1024, [1024], 64, 25),
    ("H=2048, B=16, T=25", 2048, [2048], 16, 25),
    # The generic path (docs/cells.md): every weight matrix in 16 bits (AMX tiles where
    # cpu.amx=auto takes them, since 0.16).
    ("GRU H=512, B=4, T=50", 512, [stacklstm.Layer("gru", 512, gru_reset_after=True)], 4, 50),
    ("GRU H=1024, B=1, T=25", 1024, [stacklstm.Layer("gru", 1024, gru_reset_after=True)], 1, 25),
    ("LSTMP 2 x H=512 P=128, B=1, T=100", 128,
     [stacklstm.Layer("lstm", 512, proj_size=128)] * 2, 1, 100),
    # ... and at batches where the FLOPs bound a step (AMX's tiles by default since 0.16).
    ("GRU H=1024, B=16, T=25", 1024, [stacklstm.Layer("gru", 1024, gru_reset_after=True)], 16,
     25),
    ("LSTMP 2 x H=1024 P=256, B=32, T=25", 256,
     [stacklstm.Layer("lstm", 1024, proj_size=256)] * 2, 32, 25),
    ("bidirectional H=512, B=16, T=50", 512,
     [stacklstm.Layer("lstm", 512, direction="bidirectional")], 16, 50),
]

SESSIONS = [("fp32", "fp32", None), ("bf16", "bf16", None), ("bf16 fma", "bf16", "cpu.amx=off"),
            ("fp16", "fp16", None), ("bf16 wh16=off", "bf16", "cpu.wh16=off;cpu.amx=off")]


def machine():
    name = platform.processor() or "?"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name in ("", "?", "x86_64"):
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "neither"
    return "%s, %s, %d logical CPUs" % (name, isa, os.cpu_count() or 0)


def commit():
    try:
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        out = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def time_round(session, x, calls):
    # The previous session's workers spin 20 ms after its last call (cpu.spin_us), PyTorch's
    # OpenMP threads a while too: let them sleep, so that no round runs beside another's
    # spinning threads.
    time.sleep(0.05)
    session.forward(x)  # warm-up
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        session.forward(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class TorchStack:
    """nn.LSTM per layer size in `dtype` (speed only: its own random weights)."""

    def __init__(self, torch, inp, hidden, dtype):
        self.torch, self.dtype, self.mods = torch, dtype, []
        for h in hidden:
            self.mods.append(torch.nn.LSTM(inp, h, batch_first=True).to(dtype).eval())
            inp = h

    def forward(self, x):
        with self.torch.inference_mode():
            y = self.torch.from_numpy(x).to(self.dtype)
            for m in self.mods:
                y = m(y)[0]
            return (y.float().numpy(),)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--kernel", default="auto", help="cpu.kernel for every session")
    ap.add_argument("--only", default="", help="shapes whose name contains this text")
    ap.add_argument("--torch", action="store_true",
                    help="time PyTorch nn.LSTM in float32 and bfloat16 beside (needs torch)")
    args = ap.parse_args()
    torch = None
    if args.torch:
        import torch  # noqa: E402  (optional: only for the anchor columns)
        torch.set_num_threads(args.threads)

    rows, kernel_seen = [], set()
    for name, inp, hidden, batch, steps in SHAPES:
        if args.only and args.only not in name:
            continue
        if isinstance(hidden[0], int):
            model = stacklstm.Model.random(inp, hidden, seed=7)
        else:
            model = stacklstm.Model.random(inp, layers=hidden, seed=7)
        x = np.random.default_rng(1).uniform(-1, 1, (batch, steps, inp)).astype(np.float32)
        sessions, amx = {}, "-"
        for label, precision, extra in SESSIONS:
            config = "cpu.kernel=%s" % args.kernel + (";" + extra if extra else "")
            s = model.session(batch, steps, num_threads=args.threads,
                              precision=precision, config=config)
            plan = s.describe("json")
            kernel_seen.add(plan.get("params", {}).get("kernel", "?"))
            if label == "bf16":
                amx = "yes" if plan.get("params", {}).get("amx", "off").startswith("on") else "no"
            sessions[label] = s
        same = np.array_equal(sessions["bf16 fma"].forward(x)[0],
                              sessions["bf16 wh16=off"].forward(x)[0])
        if torch is not None and isinstance(hidden[0], int):
            for label, dtype in (("torch fp32", torch.float32), ("torch bf16", torch.bfloat16)):
                sessions[label] = TorchStack(torch, inp, hidden, dtype)
        best = {label: float("inf") for label in sessions}
        for _ in range(args.rounds):
            for label, s in sessions.items():
                best[label] = min(best[label], time_round(s, x, args.calls))
        rows.append((name, best, same, amx))
        print("%-36s " % name + "  ".join("%s %.2f ms" % (k, v * 1e3) for k, v in best.items()) +
              ("" if same else "  BF16 16-bit != float32 storage!"), file=sys.stderr)

    print("- date: %s" % datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%MZ"))
    print("- machine: %s; threads: %d; kernel: %s; commit: %s" %
          (machine(), args.threads, ", ".join(sorted(kernel_seen)), commit()))
    print("- load average after: %.2f %.2f %.2f" % os.getloadavg())
    print("- best of %d alternating rounds of %d calls (median per round)%s\n" %
          (args.rounds, args.calls,
           "; torch %s" % torch.__version__ if torch is not None else ""))
    print("| shape | FP32 ms | BF16 ms | AMX | BF16 FMA ms | FP16 ms | BF16 W_h float32 ms "
          "| FP32/BF16 | FP32/BF16 FMA | FP32/FP16 | 16-bit storage gain (BF16 FMA) | same bits |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, b, same, amx in rows:
        print("| %s | %.3g | %.3g | %s | %.3g | %.3g | %.3g | %.2f | %.2f | %.2f | %.2f | %s |" % (
            name, b["fp32"] * 1e3, b["bf16"] * 1e3, amx, b["bf16 fma"] * 1e3, b["fp16"] * 1e3,
            b["bf16 wh16=off"] * 1e3, b["fp32"] / b["bf16"], b["fp32"] / b["bf16 fma"],
            b["fp32"] / b["fp16"], b["bf16 wh16=off"] / b["bf16 fma"], "yes" if same else "NO"))
    if torch is not None:
        print("\nPyTorch nn.LSTM at the same precision (BasicLSTMCell shapes):\n")
        print("| shape | ours FP32 ms | torch FP32 ms | torch/ours FP32 | ours BF16 ms "
              "| torch BF16 ms | torch/ours BF16 |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, b, _, _ in rows:
            if "torch bf16" in b:
                print("| %s | %.3g | %.3g | %.2f | %.3g | %.3g | %.2f |" % (
                    name, b["fp32"] * 1e3, b["torch fp32"] * 1e3, b["torch fp32"] / b["fp32"],
                    b["bf16"] * 1e3, b["torch bf16"] * 1e3, b["torch bf16"] / b["bf16"]))
    return 0 if all(same for _, _, same, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
