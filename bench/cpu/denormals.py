"""Denormal weights on the fast path: one H = 512 layer (input 256, batch 8, T = 50, two
threads) whose weights are drawn at scale 0.05 (everyday), 1e-36 (their products and sums
fall below float32's normal range, 1.2e-38) and 1e-39 (the weights themselves denormal);
median of 5 calls after a warm-up; and a tiny T = 1 call (H = 32, one thread, through
Python: the per-call cost, where the flush's two MXCSR writes would show).

Run it against each library to compare, alternating, in one sitting:
    for lib in OLD/libstacklstm.so NEW/libstacklstm.so; do
      SLSTM_LIBRARY=$lib PYTHONPATH=python python3 bench/cpu/denormals.py; done
(bench/results/cpu-denormals.md)."""
import time

import numpy as np

import stacklstm as sl

D, H, B, T = 256, 512, 8, 50


def main():
    x = np.random.default_rng(1).standard_normal((B, T, D)).astype(np.float32)
    for scale in [0.05, 1e-36, 1e-39]:
        m = sl.Model.random(D, [H], seed=1, scale=scale)
        s = m.session(max_batch=B, max_time=T, num_threads=2, cpu_path="fast")
        s.forward(x)
        ts = []
        for _ in range(5):
            t = time.perf_counter()
            s.forward(x)
            ts.append(time.perf_counter() - t)
        print("H512 B8 T50 weights at scale %g\t%.1f ms" % (scale, sorted(ts)[2] * 1e3))
    m = sl.Model.random(16, [32], seed=2)
    s = m.session(max_batch=1, max_time=1, num_threads=1, cpu_path="fast")
    x1 = np.zeros((1, 1, 16), np.float32)
    s.forward(x1)
    best = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(2000):
            s.forward(x1)
        best.append((time.perf_counter() - t) / 2000 * 1e6)
    print("H32 B1 T1 call through Python\t%.2f us" % min(best))


if __name__ == "__main__":
    main()
