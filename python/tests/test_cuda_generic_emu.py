"""The Python API on CUDA's generic path (config "cuda.generic=on", docs/cuda-generic.md),
run in a child process whose CUDA module is the emulated one of tests/cuda_emu (the path's
engine and per-element kernel code in host memory): backend="cuda" with a config string or
dict reaches the module, a mixed stack gives the CPU's numbers, and float16 "CUDA arrays"
(__cuda_array_interface__ over host memory, which the emulated module takes as its device
memory) go through slstm_forward_args.data_type.  Skipped when the build
has no emulated module next to $SLSTM_LIBRARY (a build without the CUDA toolkit)."""
import os
import subprocess
import sys
import textwrap


HERE = os.path.dirname(os.path.abspath(__file__))


CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    import stacklstm
    layers = [stacklstm.Layer(cell="gru", hidden_size=6, direction="bidirectional",
                              gru_reset_after=True),
              stacklstm.Layer(cell="lstm", hidden_size=7, proj_size=4, peepholes=True,
                              cell_clip=0.5)]
    m = stacklstm.Model.random(5, layers=layers, seed=3)
    x = np.random.default_rng(0).uniform(-1, 1, (3, 6, 5)).astype(np.float32)
    lengths = np.array([6, 0, 2], dtype=np.int32)
    want_y, want_s = m.session(3, 6, cpu_path="reference").forward(x, sequence_lengths=lengths)
    want_s = m.pack_state(want_s, 3)
    for config in ("cuda.generic=on", {"cuda.generic": "on"}):
        s = m.session(3, 6, backend="cuda", config=config)
        assert s.describe("json")["path"] == "generic", s.describe("json")
        y, st = s.forward(x, sequence_lengths=lengths)
        st = m.pack_state(st, 3)
        scale = max(float(np.max(np.abs(want_y))), 1e-30)
        assert float(np.max(np.abs(y - want_y))) / scale < 1e-5
        assert float(np.max(np.abs(st - want_s))) / max(float(np.max(np.abs(want_s))), 1e-30) < 1e-5
    # 16-bit inputs and out as "CUDA arrays" (the emulated module's device memory is host
    # memory): the float call on the inputs' values, its output rounded; states float32.
    class Dev:
        def __init__(self, arr):
            self.arr = arr
            self.__cuda_array_interface__ = {"shape": arr.shape, "typestr": arr.dtype.str,
                                             "data": (arr.ctypes.data, False), "version": 3,
                                             "strides": None}
    s = m.session(3, 6, backend="cuda", config="cuda.generic=on")
    x16 = x.astype(np.float16)
    want_y, _ = m.session(3, 6, cpu_path="reference").forward(x16.astype(np.float32))
    got = s.forward(x16.astype(np.float32))[0]
    out16 = np.full(want_y.shape, np.nan, np.float16)
    fin = np.zeros(m.state_count(3), np.float32)
    s.forward(Dev(x16), out=Dev(out16), final_state_out=Dev(fin))
    assert np.array_equal(out16.view(np.uint16), got.astype(np.float16).view(np.uint16))
    assert float(np.max(np.abs(got - want_y))) < 1e-5
    try:
        s.forward(Dev(x16), out=Dev(np.zeros(want_y.shape, np.float32)), final_state_out=Dev(fin))
        raise AssertionError("float16 inputs with a float32 out were accepted")
    except TypeError as e:
        assert "float32 array for float16 inputs" in str(e), str(e)
    try:
        m.session(3, 6, backend="cuda")
        raise AssertionError("a GRU stack on CUDA without cuda.generic was accepted")
    except stacklstm.UnsupportedError as e:
        assert "cuda.generic=on" in str(e), str(e)
    print("ok")
""")


def test_a_mixed_stack_on_cudas_generic_path_gives_the_cpus_numbers(emulated_cuda_env):
    r = subprocess.run([sys.executable, "-c", CHILD, os.path.dirname(HERE)],
                       env=emulated_cuda_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
