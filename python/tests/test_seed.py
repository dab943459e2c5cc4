"""The seed scenario through Python: 3 layers [100, 200, 300], batch 10, depth 128."""
import numpy as np

import stacklstm


def test_seed_shapes_and_final_state_check():
    model = stacklstm.Model.random(128, [100, 200, 300], seed=42)
    with model, model.session(max_batch=10, max_time=7) as s:
        x = np.random.default_rng(0).standard_normal((10, 7, 128))   # float64: rounded
        outputs, state = s.forward(x)
        assert np.array_equal(outputs, s.forward(x.astype(np.float32))[0])
        assert outputs.shape == (10, 7, 300) and outputs.dtype == np.float32
        assert [(st.c.shape, st.h.shape) for st in state] == [
            ((10, 100), (10, 100)), ((10, 200), (10, 200)), ((10, 300), (10, 300))]
        assert np.array_equal(state[-1].h, outputs[:, -1, :])


def test_seed_one_multirnncell_step_equals_first_output_row():
    model = stacklstm.Model.random(128, [100, 200, 300], seed=42)
    s = model.session(max_batch=10, max_time=7)
    x = np.random.default_rng(1).random((10, 1, 128), dtype=np.float32)
    outputs, state = s.forward(x)
    h, new_state = s.step(x[:, 0, :])
    assert h.shape == (10, 300)
    assert np.array_equal(h, outputs[:, 0, :])
    for a, b in zip(state, new_state):
        assert np.array_equal(a.c, b.c) and np.array_equal(a.h, b.h)


def test_time_major_and_strided_inputs_give_the_batch_major_numbers():
    model = stacklstm.Model.random(6, [5, 4], seed=3)
    s = model.session(max_batch=3, max_time=5)
    x = np.random.default_rng(2).random((3, 5, 6))
    out_bm, st_bm = s.forward(x)
    out_tm, st_tm = s.forward(np.transpose(x, (1, 0, 2)), time_major=True)   # a strided view
    assert np.array_equal(out_tm.transpose(1, 0, 2), out_bm)
    big = np.zeros((3, 10, 6))
    big[:, ::2, :] = x
    out_strided, _ = s.forward(big[:, ::2, :])
    assert np.array_equal(out_strided, out_bm)


def test_chunks_carrying_the_state_equal_one_call():
    model = stacklstm.Model.random(4, [3, 5], seed=8)
    s = model.session(max_batch=2, max_time=6)
    x = np.random.default_rng(3).random((2, 6, 4), dtype=np.float32)
    out, final = s.forward(x)
    o1, st = s.forward(x[:, :2])
    o2, st = s.forward(x[:, 2:], initial_state=st)
    assert np.allclose(np.concatenate([o1, o2], axis=1), out, rtol=0, atol=1e-6)
    assert np.allclose(st[-1].h, final[-1].h, rtol=0, atol=1e-6)


def test_sequence_lengths_zero_the_padding():
    model = stacklstm.Model.random(3, [4], seed=2)
    s = model.session(max_batch=3, max_time=5)
    x = np.ones((3, 5, 3), dtype=np.float32)
    out, st = s.forward(x, sequence_lengths=[5, 2, 0])
    assert np.all(out[1, 2:] == 0) and np.all(out[2] == 0)
    assert np.array_equal(st[-1].h[1], out[1, 1])
    assert np.all(st[-1].h[2] == 0)


def test_random_weights_are_uniform_in_the_given_scale():
    w = stacklstm.Model.random(8, [16], seed=3, scale=0.5).export("tf")[0]["kernel"]
    assert np.abs(w).max() <= 0.5 and np.abs(w).max() > 0.45   # 768 draws fill the range
    w1 = stacklstm.Model.random(8, [16], seed=3).export("tf")[0]["kernel"]   # 1/sqrt(H)
    assert np.abs(w1).max() <= 0.25 and np.abs(w1).max() > 0.2
