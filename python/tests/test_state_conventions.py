"""States are read by shape, never by element count; PyTorch's and Keras' conventions go
through explicit converters (stacklstm.state_from_torch / state_to_torch /
state_from_keras / state_to_keras)."""
import numpy as np
import pytest

import stacklstm
from stacklstm import LSTMStateTuple
from stacklstm import Layer

B, D = 2, 5


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.fixture
def s3():
    """Three layers of the same size, batch 2."""
    return stacklstm.Model.random(D, [4, 4, 4], seed=3).session(B, 6)


def test_a_pytorch_style_h_c_pair_is_refused_not_read_as_a_packed_state(s3):
    rng = np.random.default_rng(0)
    h0, c0 = rand(rng, 3, B, 4), rand(rng, 3, B, 4)   # torch's (h, c): [layers, batch, H]
    with pytest.raises(ValueError, match="state_from_torch"):
        s3.forward(rand(rng, B, 6, D), initial_state=(h0, c0))


@pytest.mark.parametrize("shape", [(4, B), (4, 1, B), (B * 4,), (1, B, 4)])
def test_state_pieces_must_be_batch_by_hidden(s3, shape):
    rng = np.random.default_rng(1)
    good = rand(rng, B, 4)
    state = [LSTMStateTuple(good, good) for _ in range(3)]
    state[1] = LSTMStateTuple(rand(rng, *shape), good)
    with pytest.raises(ValueError, match=r"\[1\]\.c has shape .*expected \(2, 4\)"):
        s3.forward(rand(rng, B, 6, D), initial_state=state)


def test_plain_pairs_are_refused_because_their_order_is_ambiguous(s3):
    # (c, h) is TF's order, [h, c] Keras': a plain pair cannot say which one it is.
    rng = np.random.default_rng(2)
    pairs = [(rand(rng, B, 4), rand(rng, B, 4)) for _ in range(3)]
    with pytest.raises(ValueError, match="LSTMStateTuple") as e:
        s3.forward(rand(rng, B, 6, D), initial_state=pairs)
    assert "state_from_keras" in str(e.value)


def test_a_packed_state_must_be_one_dimensional(s3):
    rng = np.random.default_rng(3)
    n = 2 * B * 4 * 3   # the packed count: the same number of values, in two dims
    with pytest.raises(ValueError, match="1-D"):
        s3.forward(rand(rng, B, 6, D), initial_state=rand(rng, 6, n // 6))


def test_a_wrong_number_of_layer_states_is_refused(s3):
    rng = np.random.default_rng(4)
    st = [LSTMStateTuple(rand(rng, B, 4), rand(rng, B, 4))] * 2
    with pytest.raises(ValueError, match="2 LSTMStateTuples for a model of 3 layers"):
        s3.forward(rand(rng, B, 6, D), initial_state=st)


def torch_or_skip():
    return pytest.importorskip("torch")


def test_state_from_torch_and_back_match_a_multi_layer_torch_lstm():
    torch = torch_or_skip()
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(D, 4, num_layers=3, batch_first=True).eval()
    rng = np.random.default_rng(5)
    x, h0, c0 = rand(rng, B, 6, D), rand(rng, 3, B, 4), rand(rng, 3, B, 4)
    with torch.no_grad():
        want, (hn, cn) = lstm(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    model = stacklstm.Model.from_torch_state_dict(lstm.state_dict())
    out, st = model.session(B, 6).forward(
        x, initial_state=stacklstm.state_from_torch((torch.from_numpy(h0),
                                                     torch.from_numpy(c0))))
    assert np.max(np.abs(out - want.numpy())) <= 1e-5
    h, c = stacklstm.state_to_torch(st)
    assert h.shape == c.shape == (3, B, 4) and h.dtype == np.float32
    assert np.max(np.abs(h - hn.numpy())) <= 1e-5 and np.max(np.abs(c - cn.numpy())) <= 1e-5


def test_state_converters_for_different_hidden_sizes_match_single_layer_torch_lstms():
    torch = torch_or_skip()
    torch.manual_seed(1)
    mods = torch.nn.ModuleList([torch.nn.LSTM(D, 6, batch_first=True),
                                torch.nn.LSTM(6, 3, batch_first=True)]).eval()
    rng = np.random.default_rng(6)
    x = rand(rng, B, 6, D)
    init = [(rand(rng, 1, B, 6), rand(rng, 1, B, 6)), (rand(rng, 1, B, 3), rand(rng, 1, B, 3))]
    y, finals = torch.from_numpy(x), []
    with torch.no_grad():
        for m, (h, c) in zip(mods, init):
            y, hc = m(y, (torch.from_numpy(h), torch.from_numpy(c)))
            finals.append(hc)
    model = stacklstm.Model.from_torch_state_dict(mods.state_dict())
    out, st = model.session(B, 6).forward(x, initial_state=stacklstm.state_from_torch(init))
    assert np.max(np.abs(out - y.numpy())) <= 1e-5
    back = stacklstm.state_to_torch(st)
    assert isinstance(back, list) and len(back) == 2
    for (h, c), (th, tc) in zip(back, finals):
        assert h.shape == tuple(th.shape) == (1, B, h.shape[-1])
        assert np.max(np.abs(h - th.numpy())) <= 1e-5 and np.max(np.abs(c - tc.numpy())) <= 1e-5


def keras_states(rng):
    return [[rand(rng, B, 4), rand(rng, B, 4)], [rand(rng, B, 3), rand(rng, B, 3)]]


def test_state_from_keras_reads_h_then_c_per_layer():
    rng = np.random.default_rng(7)
    model = stacklstm.Model.random(D, [4, 3], seed=4)
    s = model.session(B, 6)
    x, ks = rand(rng, B, 6, D), keras_states(rng)
    ours = stacklstm.state_from_keras(ks)
    assert all(np.array_equal(st.h, k[0]) and np.array_equal(st.c, k[1])
               for st, k in zip(ours, ks))
    want, _ = s.forward(x, initial_state=[LSTMStateTuple(c=k[1], h=k[0]) for k in ks])
    assert np.array_equal(s.forward(x, initial_state=ours)[0], want)


def test_state_from_keras_accepts_the_flat_list_of_h_and_c():
    ks = keras_states(np.random.default_rng(8))
    flat = stacklstm.state_from_keras([a for pair in ks for a in pair])
    nested = stacklstm.state_from_keras(ks)
    assert all(np.array_equal(a.c, b.c) and np.array_equal(a.h, b.h)
               for a, b in zip(flat, nested))


def test_state_to_keras_gives_h_then_c_per_layer():
    model = stacklstm.Model.random(D, [4, 3], seed=4)
    _, st = model.session(B, 6).forward(rand(np.random.default_rng(9), B, 6, D))
    back = stacklstm.state_to_keras(st)
    assert [len(k) for k in back] == [2, 2]
    assert all(np.array_equal(k[0], t.h) and np.array_equal(k[1], t.c)
               for k, t in zip(back, st))


def test_the_converters_refuse_what_they_cannot_read_unambiguously():
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match="3 dims"):   # torch pieces are [layers, batch, H]
        stacklstm.state_from_torch((rand(rng, B, 4), rand(rng, B, 4)))
    with pytest.raises(ValueError, match="same shape"):
        stacklstm.state_from_torch((rand(rng, 2, B, 4), rand(rng, 2, B, 3)))
    with pytest.raises(TypeError, match="unpack_state"):   # a packed vector has no layers
        stacklstm.state_to_torch(rand(rng, 16))
    with pytest.raises(ValueError, match="even"):
        stacklstm.state_from_keras([rand(rng, B, 4)] * 3)


def test_state_from_torch_refuses_a_list_entry_with_more_than_one_layer():
    h = np.zeros((2, B, 4), np.float32)   # two layers' rows in one list entry
    with pytest.raises(ValueError, match="layer 0"):
        stacklstm.state_from_torch([(h, h.copy())])


def test_state_from_torch_with_layers_refuses_c_with_the_wrong_number_of_rows():
    layers = [Layer.lstm(4), Layer.lstm(4)]
    h = np.zeros((2, B, 4), np.float32)
    c = np.zeros((3, B, 4), np.float32)
    with pytest.raises(ValueError, match="c must be"):
        stacklstm.state_from_torch((h, c), layers)


def test_state_from_torch_with_layers_refuses_a_list_of_more_states_than_layers():
    layers = [Layer.lstm(4), Layer.lstm(5)]
    pair = lambda H: (np.zeros((1, B, H), np.float32), np.zeros((1, B, H), np.float32))
    with pytest.raises(ValueError, match="3 states for 2 layers"):
        stacklstm.state_from_torch([pair(4), pair(5), pair(5)], layers)


def test_state_to_torch_gives_a_list_for_layers_that_differ_only_in_proj_size():
    m = stacklstm.Model.random(3, layers=[Layer.lstm(8, proj_size=4), Layer.lstm(8)], seed=1)
    state = m.unpack_state(np.arange(m.state_count(B), dtype=np.float32), B)
    got = stacklstm.state_to_torch(state, m.layers)
    assert isinstance(got, list) and len(got) == 2
    assert got[0][0].shape == (1, B, 4) and got[1][0].shape == (1, B, 8)
    back = stacklstm.state_from_torch(got, m.layers)
    assert np.array_equal(m.pack_state(back, B), m.pack_state(state, B))


def test_state_to_torch_gives_float32_for_float64_pieces():
    s = [LSTMStateTuple(np.ones((B, 4)), np.ones((B, 4)))]   # float64
    h, c = stacklstm.state_to_torch(s)
    assert h.dtype == np.float32 and c.dtype == np.float32


def test_state_to_keras_with_layers_gives_float32_for_float64_pieces():
    layers = [Layer.lstm(4), Layer.gru(5)]
    s = [LSTMStateTuple(np.ones((B, 4)), np.ones((B, 4))), np.ones((B, 5))]
    got = stacklstm.state_to_keras(s, layers)
    assert all(a.dtype == np.float32 for per in got for a in per)


def test_state_from_keras_with_layers_refuses_a_piece_that_is_not_2d():
    with pytest.raises(ValueError, match="batch, width"):
        stacklstm.state_from_keras([np.zeros((1, B, 4), np.float32)], [Layer.gru(4)])


def test_state_from_keras_with_layers_takes_a_grus_bare_h_in_a_per_layer_list():
    layers = [Layer.lstm(4), Layer.gru(5)]
    h, c = np.ones((B, 4), np.float32), np.full((B, 4), 2, np.float32)
    g = np.full((B, 5), 3, np.float32)
    got = stacklstm.state_from_keras([[h, c], g], layers)
    assert np.array_equal(got[0].c, c) and np.array_equal(got[0].h, h)
    assert np.array_equal(got[1], g)


def test_session_step_refuses_a_two_dimensional_packed_state():
    m = stacklstm.Model.random(3, [4], seed=1)
    packed = np.zeros(m.state_count(B), np.float32).reshape(B, -1)
    with m.session(B, 1) as s:
        with pytest.raises(ValueError, match="1-D"):
            s.step(np.zeros((B, 3), np.float32), packed)


def test_session_step_refuses_a_one_dimensional_input_with_a_value_error():
    m = stacklstm.Model.random(3, [4], seed=1)
    with m.session(1, 1) as s:
        with pytest.raises(ValueError, match="batch, depth"):
            s.step(np.zeros(3, np.float32))


def test_a_lone_lstm_state_tuple_is_refused_for_a_two_layer_gru_stack():
    m = stacklstm.Model.random(D, layers=[Layer.gru(3), Layer.gru(3)], seed=4)
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="expected a list with one state per layer"):
        m.pack_state(LSTMStateTuple(rand(rng, B, 3), rand(rng, B, 3)), B)


def test_a_list_of_floats_is_a_packed_state():
    m = stacklstm.Model.random(D, [2], seed=4)
    values = [float(v) for v in range(m.state_count(1))]
    assert np.array_equal(m.pack_state(values, 1), np.arange(4, dtype=np.float32))


def test_a_pytorch_style_h_c_pair_for_a_projected_stack_is_refused_with_the_torch_hint():
    layers = [Layer.lstm(4, proj_size=3), Layer.lstm(4, proj_size=3)]
    s = stacklstm.Model.random(D, layers=layers, seed=6).session(B, 6)
    rng = np.random.default_rng(7)
    h0, c0 = rand(rng, 2, B, 4), rand(rng, 2, B, 4)
    with pytest.raises(ValueError, match=r"this looks like PyTorch's \(h, c\)"):
        s.forward(rand(rng, B, 6, D), initial_state=(h0, c0))
