"""The binding raises, it never crashes the interpreter: constructors refuse what is not
theirs, and one Session used by several Python threads at once serializes the calls (the
library allows one thread per session at a time; ctypes releases the GIL). Each case runs
in a child interpreter, so a crash fails that test instead of ending the whole run."""
import os
import subprocess
import sys
import textwrap

import pytest

import stacklstm

PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(code, timeout=120):
    env = dict(os.environ, PYTHONPATH=PKG, SLSTM_LIBRARY=stacklstm.library_path)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_model_from_a_raw_integer_raises_instead_of_crashing():
    r = run_child("""
        import stacklstm
        try:
            stacklstm.Model(12345)
        except TypeError as e:
            print("TypeError:", e)
    """)
    assert r.returncode == 0, r.stderr
    assert "TypeError: stacklstm.Model cannot be constructed directly" in r.stdout


def test_a_session_of_something_that_is_not_a_model_raises_instead_of_crashing():
    r = run_child("""
        import stacklstm
        try:
            stacklstm.Session(12345, 1, 1)
        except TypeError as e:
            print("TypeError:", e)
    """)
    assert r.returncode == 0, r.stderr
    assert "needs a stacklstm.Model" in r.stdout


@pytest.mark.parametrize("cpu_path", ["reference", "auto"])
def test_one_session_used_by_four_threads_gives_the_one_thread_numbers(cpu_path):
    r = run_child("""
        import threading, numpy as np, stacklstm
        m = stacklstm.Model.random(16, [32, 24], seed=1)
        s = m.session(max_batch=8, max_time=20, cpu_path=%r)
        x = np.random.default_rng(0).random((8, 20, 16), dtype=np.float32)
        want, _ = s.forward(x)
        bad = []
        def work():
            for _ in range(100):
                out, _ = s.forward(x)
                bad.append(not np.array_equal(out, want))
        ts = [threading.Thread(target=work) for _ in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        print("calls", len(bad), "wrong", sum(bad))
    """ % cpu_path)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert "calls 400 wrong 0" in r.stdout, r.stdout


def test_closing_a_session_while_other_threads_run_it_raises_in_them_not_crashes():
    r = run_child("""
        import threading, numpy as np, stacklstm
        m = stacklstm.Model.random(16, [32], seed=1)
        s = m.session(max_batch=8, max_time=20)
        x = np.random.default_rng(0).random((8, 20, 16), dtype=np.float32)
        closed = []
        def work():
            for _ in range(2000):
                try:
                    s.forward(x)
                except stacklstm.InvalidArgumentError as e:
                    closed.append("closed" in str(e))
                    return
        ts = [threading.Thread(target=work) for _ in range(3)]
        [t.start() for t in ts]
        s.close()
        [t.join() for t in ts]
        print("stopped", len(closed), all(closed))
    """)
    assert r.returncode == 0, r.stderr
    assert "stopped 3 True" in r.stdout


def test_copying_a_session_raises_instead_of_freeing_its_handle_twice():
    r = run_child("""
        import copy, gc, pickle, stacklstm
        s = stacklstm.Model.random(3, [4]).session(1, 1)
        for f in (copy.copy, copy.deepcopy, pickle.dumps):
            try:
                f(s)
            except TypeError as e:
                print("TypeError:", e)
        del s
        gc.collect()
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("TypeError: a stacklstm.Session") == 3, r.stdout


def test_a_copied_or_pickled_model_has_a_handle_of_its_own():
    r = run_child("""
        import copy, gc, pickle, numpy as np, stacklstm
        m = stacklstm.Model.random(3, [4, 2], seed=5, forget_bias=0.5)
        x = np.random.default_rng(0).random((2, 3, 3), dtype=np.float32)
        want = m.session(2, 3).forward(x)[0]
        copies = [copy.copy(m), copy.deepcopy(m), pickle.loads(pickle.dumps(m))]
        m.close()
        del m
        gc.collect()
        print("same", [bool(np.array_equal(c.session(2, 3).forward(x)[0], want)) and
                       c.forget_bias == 0.5 for c in copies])
    """)
    assert r.returncode == 0, r.stderr
    assert "same [True, True, True]" in r.stdout, r.stdout
