"""stacklstm.torch's CUDA path on every machine: the emulated CUDA module.

tests/cuda_emu/emu_module.cpp is a CUDA module (loaded through SLSTM_CUDA_MODULE) whose
sessions run the generic path's engine, the very code of the real module, on a device whose
memory is host memory.  Given CPU tensors dressed as CUDA arrays (a __cuda_array_interface__
over their memory), the torch modules take their CUDA path all the way: the session made for a
device and stream, the state packed and cut with torch ops (_pack / _unpack over the library's
state layout), Session.forward's device-memory call (SLSTM_MEMORY_DEVICE: addresses, shapes,
the call's packed state), and the library's CUDA backend and module interface.  What it cannot
show: real device memory, streams and DLPack (the GPU check runs those: pytest -k cuda).

Each case runs in a fresh process: the library loads its CUDA module once per process.
"""
import subprocess
import sys

import pytest

_SCRIPT = r'''
import copy
import sys
import numpy as np
import torch
import stacklstm.torch as st

class CudaArray:
    """A CPU tensor's memory as a CUDA array (the emulated device's memory is host memory)."""
    def __init__(self, t):
        self.t = t
        self.__cuda_array_interface__ = {"shape": tuple(t.shape), "typestr": "<f4",
                                         "data": (t.data_ptr(), False), "version": 2,
                                         "strides": None}

st._arg = lambda t: CudaArray(t)

def session(self, device, B, T):   # what _session makes for a CUDA device, minus torch.cuda
    key = ("emulated", B, T)
    if key not in self._sessions:
        self._sessions[key] = self.model.session(B, T, backend="cuda", config=self._config)
    return self._sessions[key]

st._Module._session = session

# The plain LSTM module picks its CUDA path by the tensor's device: send CPU tensors there.
def run_as_cuda(self, session, x, h0c0, B, lengths):
    T = x.shape[1] if self.batch_first else x.shape[0]
    return self._run_cuda(session, x, h0c0, B, T, lengths)

st.LSTM._run_cpu = run_as_cuda

def states(s, kind):
    return s if kind == "LSTM" else (s,)

kind, kw, packed = sys.argv[1], eval(sys.argv[2]), sys.argv[3] == "packed"
torch.manual_seed(0)
ref32 = getattr(torch.nn, kind)(4, 5, **kw).eval()
ours = getattr(st, kind).from_torch(ref32)
ref = copy.deepcopy(ref32).double()   # the reference in float64
ours.config = {"cuda.generic": "on"}
rows = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
bf = kw.get("batch_first", False)
x = torch.randn((3, 6, 4) if bf else (6, 3, 4))
h0 = torch.randn(rows, 3, kw.get("proj_size", 0) or 5)
hx = h0 if kind == "GRU" else (h0, torch.randn(rows, 3, 5))
hx64 = tuple(t.double() for t in states(hx, kind))
hx64 = hx64 if kind == "LSTM" else hx64[0]
with torch.no_grad():
    if packed:
        lens = torch.tensor([6, 2, 4])
        p = torch.nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=bf, enforce_sorted=False)
        p64 = torch.nn.utils.rnn.pack_padded_sequence(x.double(), lens, batch_first=bf,
                                                      enforce_sorted=False)
        (want, want_s), (got, got_s) = ref(p64, hx64), ours(p, hx)
        want, got = want.data, got.data
    else:
        (want, want_s), (got, got_s) = ref(x.double(), hx64), ours(x, hx)
plan = next(iter(ours._sessions.values())).describe("json")
assert plan["backend"] == "cuda", plan["backend"]   # the CUDA backend ran it (emulated module)
path = plan["path"]
err = max([(got.double() - want).abs().max().item()] +
          [(g.double() - w).abs().max().item()
           for g, w in zip(states(got_s, kind), states(want_s, kind))])
assert err <= 2e-5, err
print("ok", kind, path, err)
'''

CASES = [
    ("LSTM", "dict(num_layers=3)"),
    ("LSTM", "dict(num_layers=2, batch_first=True)"),
    ("LSTM", "dict(num_layers=2, bidirectional=True, proj_size=3, batch_first=True)"),
    ("LSTM", "dict(proj_size=2)"),
    ("GRU", "dict(num_layers=2, bidirectional=True)"),
]


@pytest.mark.parametrize("packed", ["padded", "packed"])
@pytest.mark.parametrize("kind, kw", CASES, ids=[k + ":" + w[5:-1] for k, w in CASES])
def test_torch_modules_cuda_path_on_the_emulated_module_gives_the_torch_modules_numbers(
        kind, kw, packed, emulated_cuda_env):
    r = subprocess.run([sys.executable, "-c", _SCRIPT, kind, kw, packed], env=emulated_cuda_env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr
