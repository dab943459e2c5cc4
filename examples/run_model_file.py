#!/usr/bin/env python3
"""Loads a stacklstm model file and runs it through the Python package.

    python3 examples/run_model_file.py MODEL.safetensors [batch] [time]
    python3 examples/run_model_file.py --self-test

(--self-test saves a random seed-scenario model [100, 200, 300] first.) Prints the
architecture, the output shape and the seed check final_state[-1].h == outputs[:, -1, :].
"""
import os
import sys
import tempfile

import numpy as np

import stacklstm


def run(path, batch=4, time=5):
    meta, _ = stacklstm.read_header(path)
    with stacklstm.Model.load(path) as model:
        print("%s: %r (source layout: %s)" % (path, model, meta.get("source_layout", "?")))
        with model.session(max_batch=batch, max_time=time) as s:
            x = np.random.default_rng(0).standard_normal((batch, time, model.input_size))
            outputs, state = s.forward(x)
    same = np.array_equal(state[-1].h, outputs[:, -1, :])
    print("outputs: %s  final_state[-1].h == outputs[:, -1, :]: %s"
          % (list(outputs.shape), str(same).lower()))
    return 0 if same else 1


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    batch = int(argv[2]) if len(argv) > 2 else 4
    time = int(argv[3]) if len(argv) > 3 else 5
    if argv[1] == "--self-test":
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "seed.safetensors")
            stacklstm.Model.random(128, [100, 200, 300], seed=42).save(path, "random")
            return run(path, batch, time)
    return run(argv[1], batch, time)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
