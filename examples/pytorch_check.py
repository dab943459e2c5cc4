#!/usr/bin/env python3
"""Converts a PyTorch LSTM stack (nothing is trained) to stacklstm and checks our outputs
against PyTorch's: a 2-layer nn.LSTM (same hidden size) and a stack of single-layer nn.LSTMs
with different hidden sizes, through the state_dict importer and through a model file.

    python3 examples/pytorch_check.py            (needs torch; exit 0 when all agree)
"""
import os
import sys
import tempfile

import numpy as np
import torch

import stacklstm


class Stack(torch.nn.Module):
    def __init__(self, D, hidden):
        super().__init__()
        sizes = [D] + list(hidden)
        self.rnn = torch.nn.ModuleList(
            torch.nn.LSTM(i, h, batch_first=True) for i, h in zip(sizes, sizes[1:]))

    def forward(self, x):
        for m in self.rnn:
            x, _ = m(x)
        return x


def check(name, module, x, prefix=""):
    with torch.no_grad():
        want = module(torch.from_numpy(x))
        want = (want[0] if isinstance(want, tuple) else want).numpy()
    model = stacklstm.Model.from_torch_state_dict(module.state_dict(), prefix=prefix)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        model.save(path, source_layout="pytorch")
        model = stacklstm.Model.load(path)
    with model.session(x.shape[0], x.shape[1]) as s:
        got, _ = s.forward(x)
    err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
    print("%-28s %r  rel err vs PyTorch %.2e" % (name, model, err))
    return err <= 1e-5


def main():
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((4, 9, 16)).astype(np.float32)
    ok = check("nn.LSTM(16, 32, num_layers=2)",
               torch.nn.LSTM(16, 32, num_layers=2, batch_first=True).eval(), x)
    ok &= check("ModuleList of nn.LSTM", Stack(16, [24, 12, 8]).eval(), x, prefix="rnn.")
    print("all match" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
