#!/usr/bin/env python3
"""ONNX Runtime as a CPU anchor for the CPU benchmark (issue 18): the benchmark's stack as an
ONNX graph of LSTM nodes, timed by ONNX Runtime's CPU execution provider.

  python3 bench/cpu/ort_anchor.py info
      one line of key=value pairs: ORT's version, providers, build info, the CPU flags MLAS
      (ORT's kernel library) dispatches on, and call_us (what a timed call that computes
      nothing costs through IOBinding: part of every ORT time); exit 3 when onnxruntime or
      onnx is missing (the line then says why)
  python3 bench/cpu/ort_anchor.py serve --dir DIR --threads N --input D --hidden H1,H2,..
          --batch B --time T [--tol X]
      a worker for bench_cpu.py: builds the graph from DIR (written by `slstm_bench_cpu dump`:
      our model's weights in the ONNX layout, the inputs our driver rotates among, the
      reference path's answer), creates one session, checks its output against the reference,
      prints a `ready ...` line, then answers commands on stdin, one line each:
          time SECONDS MIN_ITERS [GAP_US]  ->  result ms=.. ms_min=.. ms_p10=.. ms_p90=.. iters=..
              (GAP_US: a sleep that long before each timed call, outside its time: frames of
              a stream, ORT's threads may have stopped spinning by the next call)
          quit
      bench_cpu.py alternates these rounds with ours and PyTorch's.

The graph: one ONNX `LSTM` node per layer (forward, default activations sigmoid/tanh/tanh, no
peepholes, no clip), W, R, B as initializers (the library's own ONNX export: gate blocks
i, o, f, c; forget_bias folded into Wb), layer l+1's input = Squeeze(Y_l, axis 1); inputs X
[T, B, D] and each layer's initial_h / initial_c [1, B, H_l] (0.1, as our driver's initial
state); outputs the last layer's Y [T, B, H] and every layer's Y_h, Y_c (our driver writes
the output and the final state).  Static shapes, opset 14.
Session: intra_op_num_threads = our thread count, inter_op_num_threads = 1, sequential
execution, all graph optimizations, CPUExecutionProvider, ORT's other defaults (thread
spinning on).  Calls go through IOBinding with the inputs and outputs bound once to
preallocated arrays (one binding per input, rotating among them as our driver does), so a
timed call is session.run_with_iobinding: no per-call conversion or allocation on the
Python side.

The check: the output for input x0 (its first T2 steps and B2 rows, as dumped) against our
reference path (float32 in and out, sums in double); max relative error = max |ort - ref| /
max |ref| over the last layer's output and, when every step was checked, over every layer's
final (c, h).  Above --tol (default 1e-4) the check says MISMATCH; bench_cpu.py marks the row.
"""

import argparse
import os
import re
import sys
import time

TOL = 1e-4
OPSET = 14


def cpu_flags():
    """The x86 flags MLAS's platform initialisation dispatches on (from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return set()
    m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    return set(m.group(1).split()) if m else set()


def mlas_isa(flags):
    """MLAS's float GEMM kernel as its x86 dispatch would pick it from these flags (MLAS's
    platform.cpp: AVX-512F -> the Avx512F kernels, else AVX2 + FMA -> Fma3, else AVX, else
    SSE2).  ORT does not report the choice; this is the rule applied to the flags."""
    if "avx512f" in flags:
        return "Avx512F"
    if "avx2" in flags and "fma" in flags:
        return "Fma3 (AVX2)"
    if "avx" in flags:
        return "Avx"
    return "Sse2" if flags else "unknown (no /proc/cpuinfo)"


def isa_summary(flags):
    """The vector ISA of this CPU in a few words (AVX2 / AVX-512 and its useful extensions)."""
    if not flags:
        return "unknown (no /proc/cpuinfo)"
    have = [n for f, n in (("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512F"),
                           ("avx512bw", "BW"), ("avx512vl", "VL"), ("avx512_vnni", "VNNI"),
                           ("avx512_bf16", "BF16"), ("amx_tile", "AMX")) if f in flags]
    return " ".join(have) if have else "no AVX2"


def kv_line(d):
    out = []
    for k, v in d.items():
        v = str(v)
        out.append('%s="%s"' % (k, v.replace('"', "'")) if re.search(r'\s|"', v) or not v
                   else "%s=%s" % (k, v))
    return " ".join(out)


def info():
    flags = cpu_flags()
    d = {"python": sys.executable, "isa": isa_summary(flags), "mlas_sgemm": mlas_isa(flags)}
    try:
        import onnxruntime as ort
        import onnx
    except Exception as e:  # ImportError, or a wheel that does not load here
        d["error"] = "%s: %s" % (type(e).__name__, e)
        print(kv_line(d))
        return 3
    d["ort"] = ort.__version__
    d["onnx"] = onnx.__version__
    d["providers"] = ",".join(ort.get_available_providers())
    d["device"] = ort.get_device()
    build = getattr(ort, "get_build_info", None)
    d["build"] = build() if build else "?"
    d["call_us"] = "%.1f" % call_overhead_us(ort)
    print(kv_line(d))
    return 0


def call_overhead_us(ort, calls=2000):
    """The cost of one timed call that computes nothing: run_with_iobinding on a one-float
    Identity graph, median microseconds.  Part of every ORT time in the table (ours are timed
    inside the C++ driver, with no binding layer in between)."""
    import numpy as np
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "call",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    sess = ort.InferenceSession(m.SerializeToString(), session_options(ort, 1),
                                providers=["CPUExecutionProvider"])
    x, y = np.ones(1, np.float32), np.empty(1, np.float32)
    b = sess.io_binding()
    b.bind_cpu_input("x", x)
    b.bind_output("y", "cpu", 0, np.float32, [1], y.ctypes.data)
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        sess.run_with_iobinding(b)
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1e6


def read_f32(path, shape):
    import numpy as np
    a = np.fromfile(path, dtype=np.float32)
    n = 1
    for x in shape:
        n *= x
    if a.size != n:
        raise SystemExit("ort_anchor: %s holds %d floats, expected %d for shape %s"
                         % (path, a.size, n, shape))
    return a.reshape(shape)


def build_model(d, hidden, input_size, batch, steps):
    """The ModelProto: one LSTM node per layer with our exported weights (see the module doc)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits, inputs, outputs = [], [], [], []
    inputs.append(helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                [steps, batch, input_size]))
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    x, inp = "X", input_size
    for l, h in enumerate(hidden):
        for name, shape in (("W", [1, 4 * h, inp]), ("R", [1, 4 * h, h]), ("B", [1, 8 * h])):
            arr = read_f32(os.path.join(d, "onnx_%s%d.f32" % (name, l)), shape)
            inits.append(numpy_helper.from_array(arr, "%s%d" % (name, l)))
        for s in ("h0_", "c0_"):
            inputs.append(helper.make_tensor_value_info(s + str(l), TensorProto.FLOAT,
                                                        [1, batch, h]))
        nodes.append(helper.make_node(
            "LSTM", [x, "W%d" % l, "R%d" % l, "B%d" % l, "", "h0_%d" % l, "c0_%d" % l],
            ["Y%d" % l, "Yh%d" % l, "Yc%d" % l], name="lstm%d" % l, hidden_size=h,
            direction="forward"))
        y = "Y" if l == len(hidden) - 1 else "X%d" % (l + 1)
        nodes.append(helper.make_node("Squeeze", ["Y%d" % l, "axis1"], [y],
                                      name="squeeze%d" % l))
        for s in ("Yh", "Yc"):
            outputs.append(helper.make_tensor_value_info("%s%d" % (s, l), TensorProto.FLOAT,
                                                         [1, batch, h]))
        x, inp = y, h
    outputs.insert(0, helper.make_tensor_value_info("Y", TensorProto.FLOAT,
                                                    [steps, batch, hidden[-1]]))
    graph = helper.make_graph(nodes, "stacklstm_bench", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="libstacklstm bench/cpu/ort_anchor.py")
    model.ir_version = 8  # readable by every ORT release that has opset 14
    return model


def session_options(ort, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


class Anchor:
    """One session on one shape, with an IOBinding per rotating input."""

    def __init__(self, d, threads, input_size, hidden, batch, steps):
        import numpy as np
        import onnxruntime as ort
        self.np, self.hidden, self.batch, self.steps = np, hidden, batch, steps
        model = build_model(d, hidden, input_size, batch, steps)
        self.session = ort.InferenceSession(model.SerializeToString(),
                                            session_options(ort, threads),
                                            providers=["CPUExecutionProvider"])
        self.xs = []
        r = 0
        while os.path.exists(os.path.join(d, "x%d.f32" % r)):
            self.xs.append(read_f32(os.path.join(d, "x%d.f32" % r), [steps, batch, input_size]))
            r += 1
        if not self.xs:
            raise SystemExit("ort_anchor: no x0.f32 in %s" % d)
        self.state0 = {}
        for l, h in enumerate(hidden):
            for s in ("h0_", "c0_"):
                self.state0[s + str(l)] = np.full((1, batch, h), 0.1, dtype=np.float32)
        self.out = {"Y": np.empty((steps, batch, hidden[-1]), dtype=np.float32)}
        for l, h in enumerate(hidden):
            for s in ("Yh", "Yc"):
                self.out["%s%d" % (s, l)] = np.empty((1, batch, h), dtype=np.float32)
        self.bindings = []
        for x in self.xs:
            b = self.session.io_binding()
            b.bind_cpu_input("X", x)
            for k, v in self.state0.items():
                b.bind_cpu_input(k, v)
            for k, v in self.out.items():
                b.bind_output(k, "cpu", 0, np.float32, list(v.shape), v.ctypes.data)
            self.bindings.append(b)
        self.next = 0

    def call(self, k=None):
        if k is None:
            k = self.next
            self.next = (self.next + 1) % len(self.bindings)
        self.session.run_with_iobinding(self.bindings[k])

    def check(self, d, check_batch, check_time, tol):
        """(max relative error, what was compared, passed) for input x0 against the reference."""
        np = self.np
        self.call(0)
        ref_y = read_f32(os.path.join(d, "ref_y.f32"), [check_time, check_batch,
                                                        self.hidden[-1]])
        got = self.out["Y"][:check_time, :check_batch].astype(np.float64)
        ref = [ref_y.astype(np.float64)]
        cmp_ = [got]
        what = "output (T %d of %d, B %d of %d)" % (check_time, self.steps, check_batch,
                                                   self.batch)
        if check_time == self.steps:
            n = sum(2 * check_batch * h for h in self.hidden)
            st = read_f32(os.path.join(d, "ref_state.f32"), [n]).astype(np.float64)
            off = 0
            for l, h in enumerate(self.hidden):  # packed (c_l, h_l), each [B2, H_l]
                for s in ("Yc", "Yh"):
                    ref.append(st[off:off + check_batch * h].reshape(check_batch, h))
                    cmp_.append(self.out["%s%d" % (s, l)][0, :check_batch].astype(np.float64))
                    off += check_batch * h
            what += " and every layer's final (c, h)"
        scale = max(float(np.max(np.abs(r))) for r in ref) or 1.0
        err = max(float(np.max(np.abs(g - r))) for g, r in zip(cmp_, ref)) / scale
        ok = bool(np.isfinite(err)) and err <= tol
        return err, what, ok

    def time(self, seconds, min_iters, gap_us=0.0):
        self.call()  # warm-up, as the other sides do in every round
        ts = []
        start = time.perf_counter()
        while len(ts) < min_iters or time.perf_counter() - start < seconds:
            if gap_us > 0:
                time.sleep(gap_us * 1e-6)
            t0 = time.perf_counter()
            self.call()
            ts.append(time.perf_counter() - t0)
            if len(ts) >= 100000:
                break
        ts.sort()
        n = len(ts)
        return dict(ms=ts[n // 2] * 1e3, ms_min=ts[0] * 1e3,
                    ms_p10=ts[(n - 1) // 10] * 1e3, ms_p90=ts[(n - 1) - (n - 1) // 10] * 1e3,
                    iters=n)


def serve(a):
    hidden = [int(h) for h in a.hidden.split(",")]
    t0 = time.perf_counter()
    try:
        anchor = Anchor(a.dir, a.threads, a.input, hidden, a.batch, a.time)
    except Exception as e:  # a graph ORT refuses, a missing file: one line for the caller
        print("failed " + kv_line({"error": "%s: %s" % (type(e).__name__, e)}), flush=True)
        return 1
    setup_ms = (time.perf_counter() - t0) * 1e3
    err, what, ok = anchor.check(a.dir, a.check_batch, a.check_time, a.tol)
    print("ready " + kv_line({"check": "pass" if ok else "MISMATCH", "max_rel_err": "%.3g" % err,
                              "tol": "%g" % a.tol, "compared": what,
                              "setup_ms": "%.1f" % setup_ms}), flush=True)
    for line in sys.stdin:
        f = line.split()
        if not f:
            continue
        if f[0] == "quit":
            break
        if f[0] == "time" and len(f) in (3, 4):
            st = anchor.time(float(f[1]), int(f[2]), float(f[3]) if len(f) == 4 else 0.0)
            print("result " + kv_line({k: ("%.4f" % v if isinstance(v, float) else v)
                                       for k, v in st.items()}), flush=True)
        else:
            print("failed " + kv_line({"error": "unknown command %r" % line.strip()}),
                  flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info")
    s = sub.add_parser("serve")
    s.add_argument("--dir", required=True)
    s.add_argument("--threads", type=int, required=True)
    s.add_argument("--input", type=int, required=True)
    s.add_argument("--hidden", required=True, help="H1,H2,...")
    s.add_argument("--batch", type=int, required=True)
    s.add_argument("--time", type=int, required=True)
    s.add_argument("--check-batch", type=int, required=True)
    s.add_argument("--check-time", type=int, required=True)
    s.add_argument("--tol", type=float, default=TOL)
    a = ap.parse_args()
    if a.cmd == "info":
        return info()
    return serve(a)


if __name__ == "__main__":
    sys.exit(main())
