"""stacklstm.torch.LSTM: torch.nn.LSTM's interface and numbers (issue 16, item 4).

Numbers are checked two ways: against torch.nn.LSTM itself, and against an independent
float64 evaluation of the same equations (NumPy, below). Both must hold the accuracy rule
at everyday scales (README, "Accuracy": each step within ~1e-5; these short sequences stay
well inside ATOL)."""
import io
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import stacklstm  # noqa: E402
import stacklstm.torch as slt  # noqa: E402
from stacklstm import Layer  # noqa: E402

ATOL = 2e-5   # everyday scales, a few steps: the rule's bound is ~1e-5 per step


def lstm64(x, layers, h0=None, c0=None):
    """Float64 reference of nn.LSTM (time-major x [T, B, D]); layers: per layer the torch
    tensors (W_ih, W_hh, b_ih, b_hh). Returns output [T, B, H_last] and per-layer (h, c)."""
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    finals = []
    for l, (wi, wh, bi, bh) in enumerate(layers):
        wi, wh, bi, bh = (np.asarray(t, np.float64) for t in (wi, wh, bi, bh))
        H = wh.shape[1]
        h = np.zeros((B, H)) if h0 is None else np.asarray(h0[l], np.float64)
        c = np.zeros((B, H)) if c0 is None else np.asarray(c0[l], np.float64)
        ys = []
        for t in range(T):
            z = x[t] @ wi.T + bi + h @ wh.T + bh
            i, f, g, o = np.split(z, 4, axis=1)
            sig = lambda v: 1 / (1 + np.exp(-v))   # noqa: E731
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
            ys.append(h)
        x = np.stack(ys)
        finals.append((h, c))
    return x, finals


def torch_layers(lstm):
    sd = lstm.state_dict()
    out = []
    for l in range(lstm.num_layers):
        H4 = sd["weight_hh_l%d" % l].shape[0]
        z = torch.zeros(H4)
        out.append((sd["weight_ih_l%d" % l], sd["weight_hh_l%d" % l],
                    sd.get("bias_ih_l%d" % l, z), sd.get("bias_hh_l%d" % l, z)))
    return out


def close(a, b):
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max() <= ATOL


def make(num_layers=2, batch_first=False, bias=True, D=5, H=7, seed=0):
    torch.manual_seed(seed)
    ref = torch.nn.LSTM(D, H, num_layers=num_layers, batch_first=batch_first,
                        bias=bias).eval()
    return ref, slt.LSTM.from_torch(ref)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_outputs_and_state_equal_nn_lstm_and_a_float64_reference(batch_first, with_hx,
                                                                  num_layers):
    ref, ours = make(num_layers, batch_first)
    T, B = 6, 3
    g = torch.Generator().manual_seed(1)
    x = torch.randn((B, T, 5) if batch_first else (T, B, 5), generator=g)
    hx = None
    if with_hx:
        hx = (torch.randn(num_layers, B, 7, generator=g),
              torch.randn(num_layers, B, 7, generator=g))
    with torch.no_grad():
        want, (wh, wc) = ref(x, hx)
        got, (gh, gc) = ours(x, hx)
    assert got.shape == want.shape and gh.shape == wh.shape == (num_layers, B, 7)
    assert close(got, want) and close(gh, wh) and close(gc, wc)
    xt = x.transpose(0, 1) if batch_first else x
    out64, fin64 = lstm64(xt.numpy(), torch_layers(ref),
                          None if hx is None else hx[0].numpy(),
                          None if hx is None else hx[1].numpy())
    got_t = got.transpose(0, 1) if batch_first else got
    assert close(got_t, out64)
    assert close(gh, np.stack([h for h, _ in fin64])) and close(gc, np.stack([c for _, c in fin64]))


def test_the_state_is_h_then_c_as_in_nn_lstm():
    ref, ours = make(2)
    x = torch.randn(4, 2, 5)
    with torch.no_grad():
        out, (h_n, c_n) = ours(x)
    assert torch.equal(h_n[-1], out[-1])        # h_n is the last output of the top layer
    assert not torch.allclose(c_n[-1], out[-1])
    assert h_n.is_contiguous() and c_n.is_contiguous()   # as nn.LSTM's


def test_hx_is_read_in_nn_lstm_order_not_swapped():
    ref, ours = make(1)
    x = torch.randn(3, 2, 5)
    h0, c0 = torch.randn(1, 2, 7), torch.randn(1, 2, 7) * 3
    with torch.no_grad():
        want = ref(x, (h0, c0))[0]
        got = ours(x, (h0, c0))[0]
        swapped = ours(x, (c0, h0))[0]
    assert close(got, want) and not close(swapped, want)


@pytest.mark.parametrize("batch_first", [False, True])
def test_a_packed_sequence_gives_nn_lstms_packed_output_and_per_sequence_final_state(
        batch_first):
    ref, ours = make(2, batch_first)
    T, B = 5, 4
    x = torch.randn((B, T, 5) if batch_first else (T, B, 5))
    lengths = torch.tensor([3, 5, 1, 4])
    p = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=batch_first,
                                                enforce_sorted=False)
    with torch.no_grad():
        want, (wh, wc) = ref(p)
        got, (gh, gc) = ours(p)
    assert isinstance(got, torch.nn.utils.rnn.PackedSequence)
    assert torch.equal(got.batch_sizes, want.batch_sizes)
    assert torch.equal(got.sorted_indices, want.sorted_indices)
    assert close(got.data, want.data) and close(gh, wh) and close(gc, wc)


def test_unbatched_input_and_state_as_nn_lstm():
    ref, ours = make(2)
    x = torch.randn(4, 5)
    hx = (torch.randn(2, 7), torch.randn(2, 7))
    with torch.no_grad():
        want, (wh, wc) = ref(x, hx)
        got, (gh, gc) = ours(x, hx)
    assert got.shape == (4, 7) and gh.shape == (2, 7)
    assert close(got, want) and close(gh, wh) and close(gc, wc)


@pytest.mark.parametrize("kind", ["lstm", "lstm-sizes", "lstm-bidirectional", "gru"])
@pytest.mark.parametrize("with_hx", [False, True])
def test_an_empty_batch_gives_empty_outputs_and_states_as_the_torch_module(kind, with_hx):
    torch.manual_seed(3)
    if kind == "gru":
        ref = torch.nn.GRU(5, 7, num_layers=2).eval()
        ours = slt.GRU.from_torch(ref)
        hx = torch.zeros(2, 0, 7) if with_hx else None
    elif kind == "lstm-bidirectional":
        ref = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True).eval()
        ours = slt.LSTM.from_torch(ref)
        hx = (torch.zeros(4, 0, 7), torch.zeros(4, 0, 7)) if with_hx else None
    else:
        ref = torch.nn.LSTM(5, 7, num_layers=2).eval()
        ours = slt.LSTM.from_torch(ref)
        hx = (torch.zeros(2, 0, 7), torch.zeros(2, 0, 7)) if with_hx else None
    if kind == "lstm-sizes":   # per-layer sizes: nn.LSTM has none, so no reference call
        ours = slt.LSTM(5, [7, 3])
        hx = [(torch.zeros(1, 0, 7), torch.zeros(1, 0, 7)),
              (torch.zeros(1, 0, 3), torch.zeros(1, 0, 3))] if with_hx else None
        got, state = ours(torch.zeros(4, 0, 5), hx)
        assert got.shape == (4, 0, 3)
        assert [tuple(t.shape) for pair in state for t in pair] == [(1, 0, 7), (1, 0, 7),
                                                                     (1, 0, 3), (1, 0, 3)]
        return
    x = torch.zeros(4, 0, 5)
    with torch.no_grad():
        want = ref(x, hx)
        got = ours(x, hx)
    assert got[0].shape == want[0].shape
    if kind == "gru":
        assert got[1].shape == want[1].shape
    else:
        assert got[1][0].shape == want[1][0].shape and got[1][1].shape == want[1][1].shape


def test_a_dlpack_capsule_or_producer_is_taken_as_the_tensor():
    _, ours = make(1)
    x = torch.randn(3, 2, 5)

    class Producer:
        def __dlpack__(self, stream=None):
            return torch.utils.dlpack.to_dlpack(x)

        def __dlpack_device__(self):
            return (1, 0)

    with torch.no_grad():
        want = ours(x)[0]
        assert torch.equal(ours(torch.utils.dlpack.to_dlpack(x))[0], want)
        assert torch.equal(ours(Producer())[0], want)


def test_a_strided_input_gives_the_numbers_of_its_contiguous_copy():
    _, ours = make(1)
    x = torch.randn(3, 6, 5).transpose(0, 1)   # [6, 3, 5], not contiguous
    with torch.no_grad():
        a = ours(x)[0]
        b = ours(x.contiguous())[0]
    assert torch.equal(a, b)


def test_bias_false_runs_with_zero_biases_as_nn_lstm():
    ref, ours = make(2, bias=False)
    assert not ours.bias and "bias=False" in repr(ours)
    x = torch.randn(3, 2, 5)
    with torch.no_grad():
        assert close(ours(x)[0], ref(x)[0])


def test_from_state_dict_equals_from_torch_bitwise():
    ref, ours = make(3, batch_first=True)
    other = slt.LSTM.from_state_dict(ref.state_dict(), batch_first=True)
    x = torch.randn(2, 4, 5)
    with torch.no_grad():
        assert torch.equal(ours(x)[0], other(x)[0])
    assert (other.input_size, other.hidden_size, other.num_layers) == (5, 7, 3)


def test_a_list_of_hidden_sizes_runs_a_stack_of_single_layer_nn_lstms():
    torch.manual_seed(3)
    mods = torch.nn.ModuleList([torch.nn.LSTM(5, 6), torch.nn.LSTM(6, 3),
                                torch.nn.LSTM(3, 8)]).eval()
    ours = slt.LSTM.from_state_dict(mods.state_dict())
    assert ours.hidden_size == [6, 3, 8]
    x = torch.randn(4, 2, 5)
    hx = [(torch.randn(1, 2, H), torch.randn(1, 2, H)) for H in (6, 3, 8)]
    with torch.no_grad():
        y, want = x, []
        for m, s in zip(mods, hx):
            y, st = m(y, s)
            want.append(st)
        got, state = ours(x, hx)
    assert close(got, y)
    assert len(state) == 3
    for (gh, gc), (wh, wc) in zip(state, want):
        assert gh.shape == wh.shape and close(gh, wh) and close(gc, wc)


def test_a_new_module_is_initialised_as_nn_lstm():
    torch.manual_seed(0)
    m = slt.LSTM(4, 16, num_layers=2)
    sd = m.state_dict()
    assert set(sd) == set(torch.nn.LSTM(4, 16, num_layers=2).state_dict())
    k = 1 / 16 ** 0.5
    for name, t in sd.items():
        if name.startswith("weight"):
            assert k / 2 < t.abs().max() <= k, name   # uniform in +-1/sqrt(H)
    for l in range(2):   # the library keeps one bias: the sum of two such draws
        assert sd["bias_ih_l%d" % l].abs().max() <= 2 * k
        assert sd["bias_ih_l%d" % l].abs().max() > k / 2
        assert torch.equal(sd["bias_hh_l%d" % l], torch.zeros(64))


def test_state_dicts_load_both_ways():
    ref, ours = make(2)
    back = torch.nn.LSTM(5, 7, num_layers=2).eval()
    back.load_state_dict(ours.state_dict())
    x = torch.randn(3, 2, 5)
    with torch.no_grad():
        assert close(back(x)[0], ours(x)[0])
    fresh = slt.LSTM(5, 7, num_layers=2).eval()
    fresh.load_state_dict(ref.state_dict())
    with torch.no_grad():
        assert close(fresh(x)[0], ref(x)[0])


def test_loading_a_state_dict_of_another_architecture_fails_and_keeps_the_module():
    _, ours = make(2)
    x = torch.randn(3, 2, 5)
    with torch.no_grad():
        before = ours(x)[0]
    with pytest.raises(RuntimeError, match="hidden sizes"):
        ours.load_state_dict(torch.nn.LSTM(5, 9, num_layers=2).state_dict())
    with torch.no_grad():
        assert torch.equal(ours(x)[0], before)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_loading_a_state_dict_of_another_input_size_fails_as_nn_modules_do(kind):
    other = getattr(torch.nn, kind)(6, 7).state_dict()
    with pytest.raises(RuntimeError, match="size mismatch"):
        getattr(torch.nn, kind)(5, 7).load_state_dict(other)   # the reference
    ours = getattr(slt, kind)(5, 7)
    with pytest.raises(RuntimeError, match="input 6 and .*this module has input 5"):
        ours.load_state_dict(other)
    assert ours.input_size == 5


@pytest.mark.parametrize("other", [
    lambda: torch.nn.GRU(5, 7, num_layers=2),
    lambda: torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True),
], ids=["gru", "bidirectional"])
def test_loading_another_kind_of_rnn_names_its_layers_in_the_error(other):
    _, ours = make(2)
    with pytest.raises(RuntimeError, match=r"layers \[Layer\('(gru|lstm)', 7, .*\], this "
                                           r"module has input 5 and \[Layer\('lstm', 7\)"):
        ours.load_state_dict(other().state_dict())


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_an_unexpected_key_is_reported_as_nn_modules_report_it(kind):
    torch.manual_seed(3)
    ref = getattr(torch.nn, kind)(5, 7).eval()
    ours = getattr(slt, kind)(5, 7)
    x = torch.randn(3, 2, 5)
    sd = dict(ref.state_dict(), weight_ih_l0_revrse=torch.zeros(1))
    with pytest.raises(RuntimeError, match='Unexpected key.*"weight_ih_l0_revrse"'):
        ours.load_state_dict(sd)
    with pytest.raises(RuntimeError, match='Unexpected key.*"weight_ih_l0_revrse"'):
        getattr(torch.nn, kind)(5, 7).load_state_dict(sd)   # what nn.LSTM / nn.GRU do
    result = ours.load_state_dict(sd, strict=False)   # not strict: loaded, the key reported
    assert list(result.unexpected_keys) == ["weight_ih_l0_revrse"]
    with torch.no_grad():
        assert close(ours(x)[0], ref(x)[0])


@pytest.mark.parametrize("make_module", [
    lambda: slt.LSTM(5, 6.5), lambda: slt.LSTM(5.9, 6), lambda: slt.LSTM(5, 6, num_layers=2.7),
    lambda: slt.LSTM(5, [6, 7.5]), lambda: slt.LSTM(5, 6, proj_size=2.0),
    lambda: slt.GRU(5, 6.5), lambda: slt.GRU(5.0, 6), lambda: slt.GRU(5, 6, num_layers=1.5),
], ids=["lstm_hidden", "lstm_input", "lstm_layers", "lstm_list", "lstm_proj", "gru_hidden",
        "gru_input", "gru_layers"])
def test_fractional_sizes_are_type_errors_as_in_nn_lstm(make_module):
    with pytest.raises(TypeError, match="must be an integer"):
        make_module()


def test_a_bfloat16_cpu_tensor_is_widened_exactly_as_inputs_and_as_weights():
    torch.manual_seed(4)
    ref = torch.nn.LSTM(5, 7).eval()
    sd16 = {k: v.to(torch.bfloat16) for k, v in ref.state_dict().items()}
    m16 = stacklstm.Model.from_torch_state_dict(sd16)
    m32 = stacklstm.Model.from_torch_state_dict({k: v.float() for k, v in sd16.items()})
    x16 = torch.randn(2, 3, 5).to(torch.bfloat16)
    with m16.session(2, 3) as a, m32.session(2, 3) as b:
        assert np.array_equal(a.forward(x16)[0], b.forward(x16.float().numpy())[0])


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_tracing_is_refused_not_a_graph_of_constants(kind):
    m = getattr(slt, kind)(5, 7).eval()
    with torch.no_grad(), pytest.raises(RuntimeError, match="cannot be traced"):
        torch.jit.trace(m, torch.randn(3, 2, 5))


def test_a_bias_free_module_has_nn_lstms_keys_and_refuses_biases():
    _, ours = make(2, bias=False)
    ref = torch.nn.LSTM(5, 7, num_layers=2, bias=False)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    with pytest.raises(RuntimeError, match='Unexpected key.*"bias_ih_l0"'):
        ours.load_state_dict(torch.nn.LSTM(5, 7, num_layers=2).state_dict())


def test_the_module_pickles_and_saves_with_its_weights():
    _, ours = make(2)
    x = torch.randn(3, 2, 5)
    with torch.no_grad():
        want = ours(x)[0]
        again = pickle.loads(pickle.dumps(ours))
        assert torch.equal(again(x)[0], want)
        buf = io.BytesIO()
        torch.save(ours, buf)
        buf.seek(0)
        loaded = torch.load(buf)
        assert torch.equal(loaded(x)[0], want)


def test_sessions_grow_with_the_input_and_are_reused():
    _, ours = make(1)
    with torch.no_grad():
        ours(torch.randn(3, 2, 5))
        ours(torch.randn(2, 1, 5))
        assert len(ours._sessions) == 1
        ours(torch.randn(9, 5, 5))
    assert list(ours._sessions) == [("cpu", 8, 16)]


def test_a_proj_size_not_below_hidden_size_is_refused_as_nn_lstm_does():
    with pytest.raises(ValueError, match="proj_size"):
        slt.LSTM(5, 7, proj_size=7)


@pytest.mark.parametrize("kwargs", [dict(bidirectional=True), dict(proj_size=3),
                                    dict(bidirectional=True, proj_size=3, batch_first=True)],
                         ids=["bidirectional", "proj", "both-batch-first"])
def test_bidirectional_and_projected_nn_lstms_give_their_outputs_and_states(kwargs):
    torch.manual_seed(4)
    ref = torch.nn.LSTM(5, 7, num_layers=2, **kwargs).eval()
    ours = slt.LSTM.from_torch(ref)
    rows = 4 if kwargs.get("bidirectional") else 2
    x = torch.randn((3, 6, 5) if kwargs.get("batch_first") else (6, 3, 5))
    hx = (torch.randn(rows, 3, kwargs.get("proj_size", 7)), torch.randn(rows, 3, 7))
    with torch.no_grad():
        want, (wh, wc) = ref(x, hx)
        got, (gh, gc) = ours(x, hx)
    for g, w in ((got, want), (gh, wh), (gc, wc)):
        assert g.shape == w.shape
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=2e-5, rtol=0)


def test_a_bidirectional_lstm_takes_packed_sequences_and_unbatched_input():
    torch.manual_seed(5)
    ref = torch.nn.LSTM(5, 7, bidirectional=True, proj_size=2).eval()
    ours = slt.LSTM.from_torch(ref)
    x = torch.randn(6, 3, 5)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([2, 6, 5]),
                                                     enforce_sorted=False)
    with torch.no_grad():
        want, (wh, _) = ref(packed)
        got, (gh, _) = ours(packed)
        np.testing.assert_allclose(got.data.numpy(), want.data.numpy(), atol=2e-5, rtol=0)
        np.testing.assert_allclose(gh.numpy(), wh.numpy(), atol=2e-5, rtol=0)
        np.testing.assert_allclose(ours(x[:, 0])[0].numpy(), ref(x[:, 0])[0].numpy(),
                                   atol=2e-5, rtol=0)


def test_a_bidirectional_lstms_state_dict_loads_both_ways():
    torch.manual_seed(6)
    ref = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3).eval()
    ours = slt.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    back = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, proj_size=3).eval()
    back.load_state_dict(ours.state_dict())
    x = torch.randn(6, 3, 5)
    with torch.no_grad():
        np.testing.assert_allclose(ours(x)[0].numpy(), ref(x)[0].numpy(), atol=2e-5, rtol=0)
        np.testing.assert_allclose(back(x)[0].numpy(), ref(x)[0].numpy(), atol=1e-6, rtol=0)


def test_a_stack_nn_lstm_cannot_be_is_refused_by_from_model():
    with stacklstm.Model.random(5, layers=[stacklstm.Layer.lstm(4, peepholes=True)]) as m:
        with pytest.raises(ValueError, match="stands for nn.LSTM"):
            slt.LSTM.from_model(m)


def test_a_float64_nn_lstm_or_dtype_is_refused():
    with pytest.raises(TypeError, match="float32"):
        slt.LSTM.from_torch(torch.nn.LSTM(5, 7).double())
    with pytest.raises(TypeError, match="float32"):
        slt.LSTM(5, 7, dtype=torch.float64)


def test_a_float64_input_is_refused_as_nn_lstm_does():
    _, ours = make(1)
    with pytest.raises(TypeError, match="float32"):
        with torch.no_grad():
            ours(torch.randn(3, 2, 5, dtype=torch.float64))


def test_an_input_requiring_grad_is_refused_outside_no_grad():
    _, ours = make(1)
    x = torch.randn(3, 2, 5, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference-only"):
        ours(x)
    with torch.no_grad():
        ours(x)


def test_dropout_is_accepted_in_eval_and_refused_in_training():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(5, 7, num_layers=2, dropout=0.3)
    ours = slt.LSTM.from_torch(ref.eval())
    x = torch.randn(3, 2, 5)
    with torch.no_grad():
        assert close(ours(x)[0], ref(x)[0])
        ours.train()
        with pytest.raises(RuntimeError, match="dropout"):
            ours(x)


def test_a_wrong_input_size_or_state_shape_names_the_argument():
    _, ours = make(2)
    with torch.no_grad():
        with pytest.raises(ValueError, match="input_size"):
            ours(torch.randn(3, 2, 4))
        with pytest.raises(ValueError, match="h_0"):
            ours(torch.randn(3, 2, 5), (torch.randn(2, 3, 7), torch.randn(2, 2, 7)))
        with pytest.raises(TypeError, match="NumPy"):
            ours(np.zeros((3, 2, 5), np.float32))


def test_from_model_shares_a_stacklstm_model():
    ref, ours = make(2)
    again = slt.LSTM.from_model(ours.model)
    x = torch.randn(3, 2, 5)
    with torch.no_grad():
        assert torch.equal(again(x)[0], ours(x)[0])


class HostStandIn:
    """A stand-in for a CUDA session that runs the same call on the CPU over the torch
    tensors' memory (CPU tensors reach it as their .numpy() views): it lets the CUDA path's
    tensor logic (packing hx with torch ops, cutting h_n / c_n from the packed final state)
    run here, where no GPU is, and checks the device call's contract (the caller gives `out`
    and the packed `final_state_out`, and the initial state packed)."""

    def __init__(self, session):
        self.session = session
        self.calls = 0

    def forward(self, x, initial_state=None, sequence_lengths=None, time_major=False,
                out=None, final_state_out=None):
        assert out is not None and final_state_out is not None
        B = x.shape[1 if time_major else 0]
        assert final_state_out.shape == (self.session._state_layout.count(B),)
        assert initial_state is None or initial_state.shape == final_state_out.shape
        self.calls += 1
        return self.session.forward(x, initial_state, sequence_lengths, time_major,
                                    out=out, final_state_out=final_state_out)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("hidden", [7, [6, 3, 8]])
def test_the_cuda_paths_tensor_logic_gives_nn_lstms_numbers_with_a_host_stand_in(
        batch_first, hidden):
    torch.manual_seed(4)
    if isinstance(hidden, list):
        mods = torch.nn.ModuleList(torch.nn.LSTM(i, h, batch_first=batch_first) for i, h in
                                   zip([5] + hidden, hidden)).eval()
        ours = slt.LSTM.from_state_dict(mods.state_dict(), batch_first=batch_first)
        L = len(hidden)
    else:
        ref = torch.nn.LSTM(5, hidden, num_layers=3, batch_first=batch_first).eval()
        ours = slt.LSTM.from_torch(ref)
        L = 3
    B, T = 3, 4
    x = torch.randn((B, T, 5) if batch_first else (T, B, 5))
    sizes = hidden if isinstance(hidden, list) else [hidden] * L
    pairs = [(torch.randn(B, H), torch.randn(B, H)) for H in sizes]
    with torch.no_grad():
        if isinstance(hidden, list):
            y, want_state = x, []
            for m, (h, c) in zip(mods, pairs):
                y, st = m(y, (h[None], c[None]))
                want_state.append(st)
            want_out = y
        else:
            hx = (torch.stack([h for h, _ in pairs]), torch.stack([c for _, c in pairs]))
            want_out, want_state = ref(x, hx)
        with ours.model.session(B, T) as s:
            out, (h_n, c_n) = ours._run_cuda(HostStandIn(s), x, pairs, B, T, None)
    assert close(out, want_out)
    if isinstance(hidden, list):
        for l, (wh, wc) in enumerate(want_state):
            assert close(h_n[l], wh) and close(c_n[l], wc)
    else:
        assert close(h_n, want_state[0]) and close(c_n, want_state[1])


CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="no CUDA device here: the CUDA path of stacklstm.torch "
                                 "(device pointers on the current stream) has not run")


@CUDA
@pytest.mark.parametrize("batch_first", [False, True])
def test_cuda_tensors_give_nn_lstms_numbers_on_the_current_stream(batch_first,
                                                                   cuda_backend):
    ref, ours = make(2, batch_first)
    ref = ref.double().cuda()  # float64: cuDNN's float32 LSTM may run in TF32
    x = torch.randn((3, 6, 5) if batch_first else (6, 3, 5), device="cuda")
    hx = (torch.randn(2, 3, 7, device="cuda"), torch.randn(2, 3, 7, device="cuda"))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())  # x and hx were made on the current stream
    with torch.no_grad(), torch.cuda.stream(side):
        want, (wh, wc) = ref(x.double(), tuple(t.double() for t in hx))
        got, (gh, gc) = ours(x, hx)
    side.synchronize()
    assert got.is_cuda and gh.is_cuda
    assert close(got.cpu(), want.cpu()) and close(gh.cpu(), wh.cpu()) and close(gc.cpu(),
                                                                               wc.cpu())
    assert ("cuda", x.device.index or 0, side.cuda_stream) == next(iter(ours._sessions))[:3]


@CUDA
def test_cuda_packed_sequence_gives_nn_lstms_numbers(cuda_backend):
    ref, ours = make(2)
    ref = ref.double().cuda()  # float64: cuDNN's float32 LSTM may run in TF32
    x = torch.randn(5, 4, 5, device="cuda")
    lengths = torch.tensor([3, 5, 1, 4])
    p = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    p64 = torch.nn.utils.rnn.pack_padded_sequence(x.double(), lengths, enforce_sorted=False)
    with torch.no_grad():
        want, (wh, _) = ref(p64)
        got, (gh, _) = ours(p)
    assert close(got.data.cpu(), want.data.cpu()) and close(gh.cpu(), wh.cpu())


def test_threads_of_different_sizes_share_one_module():
    import threading
    _, ours = make(2)
    xs = [torch.randn(t, b, 5) for t, b in ((3, 1), (9, 4), (17, 2), (5, 7))]
    with torch.no_grad():
        want = [ours(x)[0] for x in xs]
    ours._sessions.clear()
    errors = []

    def run(k):
        try:
            with torch.no_grad():
                for _ in range(20):
                    assert torch.equal(ours(xs[k])[0], want[k])
        except Exception as e:   # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_a_dropout_outside_0_1_is_refused_as_nn_lstm_does():
    with pytest.raises(ValueError, match="dropout"):
        slt.LSTM(3, 4, num_layers=2, dropout=1.5)


def test_a_single_layer_lstm_with_dropout_runs_in_training_mode_as_nn_lstm_does():
    m = slt.LSTM(3, 4, num_layers=1, dropout=0.5)
    m.train()
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        y_train, _ = m(x)
        m.eval()
        y_eval, _ = m(x)
    assert torch.equal(y_train, y_eval)


def test_an_empty_sequence_is_refused_as_nn_lstm_does():
    m = slt.LSTM(3, 4)
    with torch.no_grad(), pytest.raises(ValueError, match="sequence length 0"):
        m(torch.zeros(0, 2, 3))


def test_a_float64_hx_is_a_type_error_not_converted():
    m = slt.LSTM(3, 4, num_layers=2)
    h0 = torch.zeros(2, 2, 4, dtype=torch.float64)
    with torch.no_grad(), pytest.raises(TypeError, match="float32"):
        m(torch.zeros(5, 2, 3), (h0, h0.clone()))


def test_from_state_dict_of_a_bias_free_lstm_is_bias_free():
    sd = torch.nn.LSTM(3, 4, bias=False).state_dict()
    m = slt.LSTM.from_state_dict(sd)
    assert m.bias is False
    assert not any(k.startswith("bias_") for k in m.state_dict())


def test_gru_from_state_dict_of_a_bias_free_gru_is_bias_free():
    ref = torch.nn.GRU(3, 4, bias=False)
    m = slt.GRU.from_state_dict(ref.state_dict())
    assert m.bias is False
    assert sorted(m.state_dict()) == sorted(ref.state_dict())


@pytest.mark.parametrize("kw", [dict(bidirectional=True), dict(proj_size=3)],
                         ids=["bidirectional", "proj_size"])
def test_a_new_bias_free_lstm_computes_what_nn_lstm_does_with_its_weights(kw):
    torch.manual_seed(4)
    ours = slt.LSTM(5, 7, num_layers=2, bias=False, **kw)
    ref = torch.nn.LSTM(5, 7, num_layers=2, bias=False, **kw).eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, 2, 5)
    with torch.no_grad():
        np.testing.assert_allclose(ours(x)[0].numpy(), ref(x)[0].numpy(), atol=1e-5, rtol=0)


def test_a_size_list_that_contradicts_num_layers_is_refused():
    with pytest.raises(ValueError, match="num_layers"):
        slt.LSTM(3, [4, 5], num_layers=3)


def test_a_size_list_with_bidirectional_is_refused_not_cut_to_its_first_size():
    with pytest.raises(ValueError, match="per-layer hidden sizes"):
        slt.LSTM(3, [4, 5], bidirectional=True)


def test_a_gru_of_dtype_float64_is_refused():
    with pytest.raises(TypeError, match="dtype"):
        slt.GRU(3, 4, dtype=torch.float64)


def test_a_gru_of_hidden_size_0_is_a_value_error():
    with pytest.raises(ValueError, match="hidden_size"):
        slt.GRU(3, 0)


def test_a_gru_module_refuses_a_reverse_only_layer():
    m = stacklstm.Model.random(3, layers=[Layer.gru(4, reset_after=True, direction="reverse")],
                               seed=1)
    with pytest.raises(ValueError, match="layer 0"):
        slt.GRU.from_model(m)
