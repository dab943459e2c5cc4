"""Objects may be freed in any order; no leak over 10 000 create/destroy cycles."""
import gc

import numpy as np
import pytest

import stacklstm


def rss_kb():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import resource
    return pages * resource.getpagesize() // 1024


def test_a_session_outlives_its_model():
    m = stacklstm.Model.random(3, [4], seed=1)
    s = m.session(2, 2)
    m.close()
    del m
    gc.collect()
    out, _ = s.forward(np.ones((2, 2, 3)))
    assert out.shape == (2, 2, 4)
    s.close()


def test_close_is_idempotent_and_use_after_close_raises():
    m = stacklstm.Model.random(3, [4])
    s = m.session(1, 1)
    s.close()
    s.close()
    with pytest.raises(stacklstm.InvalidArgumentError):
        s.forward(np.ones((1, 1, 3)))
    m.close()
    m.close()
    with pytest.raises(stacklstm.InvalidArgumentError):
        m.session(1, 1)


def test_garbage_collection_in_any_order():
    for order in range(3):
        m = stacklstm.Model.random(3, [4], seed=order)
        s = m.session(1, 1)
        if order == 0:
            del m; del s
        elif order == 1:
            del s; del m
        else:
            with m, s:
                pass
        gc.collect()


def test_no_memory_growth_over_10000_create_destroy_cycles():
    x = np.ones((2, 3, 5), dtype=np.float32)

    def cycle(k):
        m = stacklstm.Model.random(5, [8, 4], seed=k)
        s = m.session(2, 3)
        s.forward(x)
        if k % 2:
            m.close(); s.close()
        else:
            s.close(); m.close()

    for k in range(500):       # warm up allocator pools
        cycle(k)
    gc.collect()
    before = rss_kb()
    for k in range(10000):
        cycle(k)
    gc.collect()
    grown = rss_kb() - before
    assert grown < 4096, "RSS grew by %d KiB over 10 000 cycles" % grown


def test_closing_a_model_waits_for_a_call_running_in_another_thread():
    import threading
    m = stacklstm.Model.random(3, [4], seed=2)
    closed = threading.Event()
    with m._using():   # a call of the model in flight
        t = threading.Thread(target=lambda: (m.close(), closed.set()))
        t.start()
        assert not closed.wait(0.3), "close() freed the model under a running call"
    t.join(10)
    assert closed.is_set()


@pytest.mark.parametrize("call", ["forward", "step"])
def test_a_call_on_a_closed_session_says_the_session_is_closed(call):
    s = stacklstm.Model.random(3, [4], seed=1).session(1, 1)
    s.close()
    x = np.ones((1, 1, 3), np.float32)
    with pytest.raises(stacklstm.InvalidArgumentError, match="the session is closed"):
        s.forward(x) if call == "forward" else s.step(x[0])
