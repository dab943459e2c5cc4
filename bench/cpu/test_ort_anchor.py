"""Specification of the ONNX Runtime anchor (bench/cpu/ort_anchor.py) and of the driver's dump
mode it reads (slstm_bench_cpu dump): the graph built from our exported weights computes our
LSTM, and the check catches a graph that computes something else.

  SLSTM_BENCH_CPU_BIN=BUILD/bench/cpu/slstm_bench_cpu PYTHON_WITH_ORT -m pytest -q \\
      bench/cpu/test_ort_anchor.py
  SLSTM_BENCH_CPU_BIN=... python3 bench/cpu/test_ort_anchor.py     (for CTest)

Skipped (with the reason) without the driver or without onnxruntime and onnx.  Run as a
script, it runs pytest on itself in the first Python that imports onnxruntime, onnx and
pytest (this one, $SLSTM_ORT_PYTHON, or BUILD/ort-venv/bin/python beside the driver, as
bench_cpu.py looks), and exits 77 (CTest's skip code) when there is none.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import ort_anchor  # noqa: E402


def _main():
    binary = os.environ.get("SLSTM_BENCH_CPU_BIN", "")
    if not (binary and os.access(binary, os.X_OK)):
        print("skipped: SLSTM_BENCH_CPU_BIN does not name the built slstm_bench_cpu")
        return 77
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(binary))))
    tried = []
    for py in dict.fromkeys(c for c in (sys.executable, os.environ.get("SLSTM_ORT_PYTHON"),
                                        os.path.join(build, "ort-venv", "bin", "python")) if c):
        if not os.path.exists(py):
            continue
        r = subprocess.run([py, "-c", "import onnxruntime, onnx, pytest, numpy"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return subprocess.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                   os.path.abspath(__file__)]).returncode
        tried.append("%s: %s" % (py, (r.stderr.strip().splitlines() or ["?"])[-1]))
    print("skipped: no python here imports onnxruntime, onnx, pytest and numpy (%s)"
          % "; ".join(tried))
    return 77


if __name__ == "__main__":
    sys.exit(_main())

import pytest  # noqa: E402

BIN = os.environ.get("SLSTM_BENCH_CPU_BIN", "")
np = pytest.importorskip("numpy")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
if not (BIN and os.access(BIN, os.X_OK)):
    pytest.skip("SLSTM_BENCH_CPU_BIN does not name the built slstm_bench_cpu",
                allow_module_level=True)

# Two layers of different sizes, input depth unlike either, odd batch and time.
SHAPE = dict(input=3, hidden=[5, 7], batch=3, time=4)


def dump(tmp_path, check_batch=0, check_time=0, **shape):
    s = dict(SHAPE, **shape)
    cmd = [BIN, "dump", "--dir", str(tmp_path), "--threads", "1", "--input", str(s["input"]),
           "--hidden", ",".join(map(str, s["hidden"])), "--batch", str(s["batch"]),
           "--time", str(s["time"])]
    if check_batch:
        cmd += ["--check-batch", str(check_batch)]
    if check_time:
        cmd += ["--check-time", str(check_time)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return s, dict(kv.split("=", 1) for kv in out.split())


def anchor(tmp_path, s):
    return ort_anchor.Anchor(str(tmp_path), 1, s["input"], s["hidden"], s["batch"], s["time"])


def test_graph_of_exported_weights_matches_reference_output_and_final_state(tmp_path):
    s, kv = dump(tmp_path)
    err, what, ok = anchor(tmp_path, s).check(str(tmp_path), s["batch"], s["time"], 1e-4)
    assert ok and err < 1e-5, (err, what)
    assert "final (c, h)" in what


def test_check_on_first_steps_and_rows_matches_reference(tmp_path):
    s, kv = dump(tmp_path, check_batch=2, check_time=3)
    assert (kv["check_batch"], kv["check_time"]) == ("2", "3")
    err, what, ok = anchor(tmp_path, s).check(str(tmp_path), 2, 3, 1e-4)
    assert ok and err < 1e-5, (err, what)
    assert "T 3 of 4, B 2 of 3" in what


def test_check_reports_mismatch_when_forget_bias_is_not_in_the_bias(tmp_path):
    s, kv = dump(tmp_path)
    assert float(kv["forget_bias"]) == 1.0
    h = s["hidden"][0]
    path = os.path.join(str(tmp_path), "onnx_B0.f32")
    b = np.fromfile(path, dtype=np.float32)
    b[2 * h:3 * h] -= 1.0  # ONNX's f block of Wb without the folded forget_bias
    b.tofile(path)
    err, what, ok = anchor(tmp_path, s).check(str(tmp_path), s["batch"], s["time"], 1e-4)
    assert not ok and err > 1e-3


def test_timing_rotates_over_every_dumped_input_and_reports_quantiles(tmp_path):
    s, kv = dump(tmp_path)
    a = anchor(tmp_path, s)
    assert len(a.bindings) == int(kv["rotate"]) == 4
    st = a.time(0.0, 5)
    assert st["iters"] == 5
    assert 0 < st["ms_min"] <= st["ms_p10"] <= st["ms"] <= st["ms_p90"]


def test_timing_with_a_gap_sleeps_between_calls_outside_their_time(tmp_path):
    import time
    s, _ = dump(tmp_path)
    a = anchor(tmp_path, s)
    t0 = time.perf_counter()
    st = a.time(0.0, 5, 20000.0)  # 20 ms before each of 5 calls
    assert time.perf_counter() - t0 >= 5 * 0.02
    assert st["iters"] == 5 and st["ms_p90"] < 20.0


def test_driver_gap_sleeps_between_calls_outside_their_time():
    import time
    import bench_cpu
    s = dict(hidden=[5, 7], input=3, batch=3, time=4)
    t0 = time.perf_counter()
    st = bench_cpu.ours_stats(BIN, s, "fast", 1, 0.0, min_iters=5, gap_us=20000.0)
    assert time.perf_counter() - t0 >= 5 * 0.02
    assert st["reps"] == 5 and st["p90"] < 20.0


def test_check_slice_keeps_the_whole_shape_when_cheap_and_cuts_steps_and_rows_otherwise():
    import bench_cpu
    small = dict(hidden=[5, 7], input=3, batch=3, time=4)
    assert bench_cpu.check_slice(small) == (3, 4)
    big = dict(hidden=[2048], input=2048, batch=128, time=25)
    b, t = bench_cpu.check_slice(big)
    assert b == 2 and 2 <= t < 25
    assert bench_cpu.flops(dict(big, batch=b, time=t)) <= bench_cpu.CHECK_FLOPS
