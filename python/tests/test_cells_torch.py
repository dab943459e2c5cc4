"""PyTorch state_dicts of every recurrent layer PyTorch has (issue 20): nn.LSTM with and
without proj_size, nn.GRU, bidirectional layers, one multi-layer module or a ModuleList,
through SLSTM_FORMAT_PYTORCH (Model.from_torch_state_dict / naming.to_torch_state_dict). The
numbers are checked against the real torch modules run in float64 (ours: float32)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import stacklstm   # noqa: E402
from stacklstm import BidirectionalState, Layer, naming   # noqa: E402

ATOL = 2e-5


def module(kind, seed, **kw):
    torch.manual_seed(seed)
    m = getattr(torch.nn, kind)(**kw).double().eval()
    with torch.no_grad():
        for p in m.parameters():   # away from zero: every tensor matters
            p.uniform_(-0.6, 0.6)
    return m


def torch_run(m, x, lengths=None):
    """(output [B, T, nd*H'], h_n, c_n or None) of a batch_first=False module on x [B, T, D]."""
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2))).double()
    with torch.no_grad():
        if lengths is None:
            y, st = m(xt)
            y = y.numpy().transpose(1, 0, 2)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths),
                                                             enforce_sorted=False)
            y, st = m(packed)
            y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=x.shape[1])
            y = y.numpy().transpose(1, 0, 2)
    if isinstance(st, tuple):
        return y, st[0].numpy(), st[1].numpy()
    return y, st.numpy(), None


def ours(model, x, lengths=None):
    with model.session(x.shape[0], x.shape[1]) as s:
        return s.forward(x.astype(np.float32), sequence_lengths=lengths)


def torch_states(final, layers):
    """Our per-layer states as PyTorch's (h_n, c_n): [layers * directions, B, ...]."""
    hs, cs = [], []
    for s, L in zip(final, layers):
        for d in ([s.fw, s.bw] if isinstance(s, BidirectionalState) else [s]):
            if L.cell == "lstm":
                hs.append(d.h)
                cs.append(d.c)
            else:
                hs.append(d)
    return np.stack(hs), (np.stack(cs) if cs else None)


def check(m, x, lengths=None):
    with stacklstm.Model.from_torch_state_dict(m.state_dict()) as model:
        y, fin = ours(model, x, lengths)
        ty, th, tc = torch_run(m, x, lengths)
        np.testing.assert_allclose(y, ty, atol=ATOL, rtol=0)
        h, c = torch_states(fin, model.layers)
        np.testing.assert_allclose(h, th, atol=ATOL, rtol=0)
        if tc is not None:
            np.testing.assert_allclose(c, tc, atol=ATOL, rtol=0)
        return model.layers


@pytest.fixture
def x():
    return np.random.default_rng(3).standard_normal((3, 6, 4))


@pytest.mark.parametrize("kind, kw, layers", [
    ("LSTM", dict(hidden_size=5, num_layers=2),
     [Layer.lstm(5), Layer.lstm(5)]),
    ("LSTM", dict(hidden_size=5, num_layers=2, proj_size=3),
     [Layer.lstm(5, proj_size=3), Layer.lstm(5, proj_size=3)]),
    ("LSTM", dict(hidden_size=5, num_layers=2, bidirectional=True),
     [Layer.lstm(5, direction="bidirectional")] * 2),
    ("LSTM", dict(hidden_size=5, num_layers=2, bidirectional=True, proj_size=2),
     [Layer.lstm(5, direction="bidirectional", proj_size=2)] * 2),
    ("GRU", dict(hidden_size=5, num_layers=2),
     [Layer.gru(5, reset_after=True)] * 2),
    ("GRU", dict(hidden_size=5, num_layers=2, bidirectional=True),
     [Layer.gru(5, reset_after=True, direction="bidirectional")] * 2),
], ids=["lstm", "lstm-proj", "lstm-bidir", "lstm-bidir-proj", "gru", "gru-bidir"])
def test_a_torch_module_gives_its_layers_and_its_numbers(kind, kw, layers, x):
    m = module(kind, 1, input_size=4, **kw)
    assert list(check(m, x)) == layers


@pytest.mark.parametrize("kind, kw", [
    ("LSTM", dict(bidirectional=True, proj_size=2)),
    ("GRU", dict(bidirectional=True)),
], ids=["lstm", "gru"])
def test_bidirectional_layers_with_lengths_match_packed_sequences(kind, kw, x):
    m = module(kind, 2, input_size=4, hidden_size=5, num_layers=2, **kw)
    check(m, x, lengths=[6, 1, 4])


def test_a_module_without_biases_gets_zero_biases(x):
    check(module("GRU", 3, input_size=4, hidden_size=5, bias=False), x)


def test_a_module_list_of_different_modules_is_one_stack(x):
    mods = torch.nn.ModuleList([module("GRU", 4, input_size=4, hidden_size=5,
                                       bidirectional=True),
                                module("LSTM", 5, input_size=10, hidden_size=3, proj_size=2)])
    with stacklstm.Model.from_torch_state_dict(mods.state_dict()) as model:
        assert model.layers == (Layer.gru(5, reset_after=True, direction="bidirectional"),
                                Layer.lstm(3, proj_size=2))
        y, _ = ours(model, x)
        ty = torch_run(mods[1], torch_run(mods[0], x)[0])[0]
        np.testing.assert_allclose(y, ty, atol=ATOL, rtol=0)


def test_to_torch_state_dict_loads_into_the_module_it_came_from(x):
    m = module("LSTM", 6, input_size=4, hidden_size=5, num_layers=2, bidirectional=True,
               proj_size=3)
    with stacklstm.Model.from_torch_state_dict(m.state_dict()) as model:
        sd = naming.to_torch_state_dict(model)
    assert sorted(sd) == sorted(m.state_dict())
    m2 = module("LSTM", 7, input_size=4, hidden_size=5, num_layers=2, bidirectional=True,
                proj_size=3)
    m2.load_state_dict({k: torch.from_numpy(v).double() for k, v in sd.items()})
    np.testing.assert_allclose(torch_run(m2, x)[0], torch_run(m, x)[0], atol=1e-6, rtol=0)


def test_a_gru_state_dict_round_trips_bitwise_through_the_library():
    m = module("GRU", 8, input_size=4, hidden_size=5, bidirectional=True)
    sd = {k: v.float().numpy() for k, v in m.state_dict().items()}
    with stacklstm.Model.from_torch_state_dict(sd) as model:
        back = naming.to_torch_state_dict(model)
    assert sorted(back) == sorted(sd)
    for k in sd:
        assert np.array_equal(back[k], sd[k]), k


def test_to_torch_state_dict_of_a_mixed_stack_is_a_module_list():
    layers = [Layer.gru(4, reset_after=True), Layer.lstm(3, direction="bidirectional")]
    with stacklstm.Model.random(2, layers=layers) as model:
        sd = naming.to_torch_state_dict(model)
    assert "0.weight_ih_l0" in sd and "1.weight_ih_l0_reverse" in sd


def test_a_layer_pytorch_cannot_express_is_refused_naming_the_field():
    with stacklstm.Model.random(2, layers=[Layer.lstm(3, peepholes=True)]) as model:
        with pytest.raises(stacklstm.UnsupportedError, match=r"layers\[0\]\.peepholes"):
            naming.to_torch_state_dict(model)


def test_a_weight_hh_of_no_known_shape_is_refused():
    sd = {"weight_ih_l0": np.zeros((10, 3)), "weight_hh_l0": np.zeros((10, 5))}
    with pytest.raises(ValueError, match="neither an nn.LSTM"):
        stacklstm.Model.from_torch_state_dict(sd)


def test_the_basic_reader_points_a_gru_to_the_stack_reader():
    m = module("GRU", 9, input_size=4, hidden_size=5)
    with pytest.raises(ValueError, match="torch_state_dict_stack"):
        naming.torch_state_dict_layers(m.state_dict())


# ---- PyTorch's state conventions for every stack ----------------------------------------------

@pytest.mark.parametrize("kind, kw", [
    ("LSTM", dict(bidirectional=True, proj_size=2)),
    ("GRU", dict(bidirectional=True)),
    ("GRU", dict()),
], ids=["lstm-bidir-proj", "gru-bidir", "gru"])
def test_a_torch_initial_state_converts_and_gives_torchs_numbers(kind, kw, x):
    m = module(kind, 10, input_size=4, hidden_size=5, num_layers=2, **kw)
    rng = np.random.default_rng(0)
    nd = 2 if kw.get("bidirectional") else 1
    R = kw.get("proj_size") or 5
    h0 = rng.uniform(-1, 1, (2 * nd, 3, R))
    state = (h0, rng.uniform(-1, 1, (2 * nd, 3, 5))) if kind == "LSTM" else h0
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(1, 0, 2)))
    with torch.no_grad():
        ty, tst = m(xt, tuple(torch.from_numpy(a) for a in state) if kind == "LSTM"
                    else torch.from_numpy(state))
    with stacklstm.Model.from_torch_state_dict(m.state_dict()) as model:
        init = stacklstm.state_from_torch(state, layers=model.layers)
        with model.session(3, 6) as s:
            y, fin = s.forward(x.astype(np.float32), initial_state=init)
        back = stacklstm.state_to_torch(fin, layers=model.layers)
    np.testing.assert_allclose(y, ty.numpy().transpose(1, 0, 2), atol=ATOL, rtol=0)
    if kind == "LSTM":
        for got, want in zip(back, tst):
            np.testing.assert_allclose(got, want.numpy(), atol=ATOL, rtol=0)
    else:
        np.testing.assert_allclose(back, tst.numpy(), atol=ATOL, rtol=0)


def test_per_layer_torch_states_convert_for_a_stack_of_different_modules():
    layers = [Layer.gru(4, reset_after=True, direction="bidirectional"),
              Layer.lstm(3, proj_size=2)]
    per_layer = [np.arange(24.0).reshape(2, 3, 4),
                 (np.zeros((1, 3, 2)), np.ones((1, 3, 3)))]
    state = stacklstm.state_from_torch(per_layer, layers=layers)
    assert state[0].bw.tolist() == per_layer[0][1].tolist()
    assert state[1].c.shape == (3, 3) and state[1].h.shape == (3, 2)
    back = stacklstm.state_to_torch(state, layers=layers)
    assert np.array_equal(back[0], per_layer[0]) and np.array_equal(back[1][1], per_layer[1][1])


def test_a_torch_state_of_the_wrong_depth_is_refused_naming_the_expected_shape():
    with pytest.raises(ValueError, match=r"h must be \[4, batch, H\]"):
        stacklstm.state_from_torch(np.zeros((2, 3, 5)),
                                   layers=[Layer.gru(5, direction="bidirectional")] * 2)


def test_the_converter_writes_a_model_file_of_a_bidirectional_gru(tmp_path):
    from stacklstm import convert
    m = module("GRU", 11, input_size=4, hidden_size=5, num_layers=2, bidirectional=True)
    src, dst = str(tmp_path / "gru.pt"), str(tmp_path / "gru.safetensors")
    torch.save({k: v.float() for k, v in m.state_dict().items()}, src)
    assert convert.main(["torch", src, dst]) == 0
    with stacklstm.Model.load(dst) as model:
        assert model.layers == (Layer.gru(5, reset_after=True, direction="bidirectional"),) * 2
        x = np.random.default_rng(0).standard_normal((2, 3, 4))
        np.testing.assert_allclose(ours(model, x)[0], torch_run(m, x)[0], atol=ATOL, rtol=0)


# ---- stacklstm.torch.GRU: nn.GRU's drop-in -------------------------------------------------

def _gru_pair(**kw):
    import stacklstm.torch as st
    ref = module("GRU", 12, input_size=4, hidden_size=5, **kw).float()
    return ref, st.GRU.from_torch(ref)


@pytest.mark.parametrize("kw", [dict(num_layers=2), dict(num_layers=2, bidirectional=True),
                                dict(batch_first=True, bidirectional=True)],
                         ids=["stack", "bidirectional", "batch-first"])
def test_the_gru_module_gives_nn_grus_output_and_state(kw):
    ref, ours_mod = _gru_pair(**kw)
    rows = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    x = torch.randn((3, 6, 4) if kw.get("batch_first") else (6, 3, 4))
    h0 = torch.randn(rows, 3, 5)
    with torch.no_grad():
        want, want_h = ref(x, h0)
        got, got_h = ours_mod(x, h0)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got_h.numpy(), want_h.numpy(), atol=ATOL, rtol=0)


def test_the_gru_module_takes_packed_sequences_as_nn_gru():
    ref, ours_mod = _gru_pair(num_layers=2, bidirectional=True)
    x = torch.randn(6, 3, 4)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([4, 6, 1]),
                                                     enforce_sorted=False)
    with torch.no_grad():
        want, want_h = ref(packed)
        got, got_h = ours_mod(packed)
    np.testing.assert_allclose(got.data.numpy(), want.data.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got_h.numpy(), want_h.numpy(), atol=ATOL, rtol=0)


def test_the_gru_module_takes_an_unbatched_sequence():
    ref, ours_mod = _gru_pair(bidirectional=True)
    x = torch.randn(6, 4)
    with torch.no_grad():
        want, want_h = ref(x)
        got, got_h = ours_mod(x)
    assert got.shape == want.shape and got_h.shape == want_h.shape
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=ATOL, rtol=0)


def test_the_gru_modules_state_dict_loads_into_nn_gru_and_back():
    import stacklstm.torch as st
    ref, ours_mod = _gru_pair(num_layers=2, bidirectional=True)
    assert sorted(ours_mod.state_dict()) == sorted(ref.state_dict())
    fresh = torch.nn.GRU(4, 5, num_layers=2, bidirectional=True)
    fresh.load_state_dict(ours_mod.state_dict())
    other = st.GRU(4, 5, num_layers=2, bidirectional=True)
    other.load_state_dict(ref.state_dict())
    x = torch.randn(6, 3, 4)
    with torch.no_grad():
        np.testing.assert_allclose(fresh(x)[0].numpy(), ref(x)[0].numpy(), atol=1e-6, rtol=0)
        np.testing.assert_allclose(other(x)[0].numpy(), ref(x)[0].numpy(), atol=ATOL, rtol=0)


def test_a_new_gru_module_has_nn_grus_shapes_and_initial_range():
    import stacklstm.torch as st
    g = st.GRU(4, 5, num_layers=2, bidirectional=True, bias=False)
    sd = g.state_dict()
    assert sd["weight_ih_l1_reverse"].shape == (15, 10)
    assert float(sd["weight_hh_l0"].abs().max()) <= 1 / np.sqrt(5)
    # bias=False: no bias keys, as nn.GRU(bias=False) has none (either loads the other's)
    ref = torch.nn.GRU(4, 5, num_layers=2, bidirectional=True, bias=False)
    assert sorted(sd) == sorted(ref.state_dict())
    ref.load_state_dict(sd)
    g.load_state_dict(ref.state_dict())
    assert g.proj_size == 0 == ref.proj_size


@pytest.mark.parametrize("call, error, what", [
    (lambda g: g(torch.randn(6, 3, 4, requires_grad=True)), RuntimeError, "inference-only"),
    (lambda g: g(torch.randn(6, 3, 4).double()), TypeError, "float32"),
    (lambda g: g(torch.randn(6, 3, 4), torch.zeros(1, 3, 5)), ValueError,
     r"hx has shape \(1, 3, 5\), expected \(2, 3, 5\)"),
    (lambda g: g(torch.randn(6, 3, 7)), ValueError, "input_size"),
], ids=["grad", "dtype", "hx-shape", "input-size"])
def test_the_gru_module_refuses_what_it_does_not_compute(call, error, what):
    _, ours_mod = _gru_pair(bidirectional=True)
    with pytest.raises(error, match=what):
        call(ours_mod)


def test_the_gru_module_refuses_a_model_nn_gru_cannot_be():
    import stacklstm.torch as st
    with stacklstm.Model.random(4, layers=[Layer.gru(5)]) as m:   # reset before
        with pytest.raises(ValueError, match="reset-after GRUs"):
            st.GRU.from_model(m)


def test_the_gru_module_pickles_with_its_weights():
    import pickle
    ref, ours_mod = _gru_pair(num_layers=2)
    again = pickle.loads(pickle.dumps(ours_mod))
    x = torch.randn(6, 3, 4)
    with torch.no_grad():
        assert torch.equal(again(x)[0], ours_mod(x)[0])


# ---- the modules' sessions: where they run and with what settings -------------------------

def _lstm_pair(**kw):
    import stacklstm.torch as st
    ref = module("LSTM", 13, input_size=4, hidden_size=5, **kw).float()
    return ref, st.LSTM.from_torch(ref)


def test_a_modules_config_reaches_every_session_it_makes():
    _, g = _gru_pair(bidirectional=True)
    x = torch.randn(6, 3, 4)
    with torch.no_grad():
        default = g(x)[0]
        g.config = {"cpu.kernel": "portable"}
        assert not g._sessions   # setting it drops the sessions made before
        portable = g(x)[0]
    (s,) = g._sessions.values()
    assert s.describe("json")["settings"]["cpu.kernel"] == "portable (config)"
    np.testing.assert_allclose(portable.numpy(), default.numpy(), atol=ATOL, rtol=0)


def test_a_modules_config_is_checked_by_the_library_on_the_first_call():
    _, ours_mod = _lstm_pair(proj_size=3)
    ours_mod.config = "cpu.bogus=1"
    with pytest.raises(stacklstm.InvalidArgumentError, match='unknown key "cpu.bogus"'):
        with torch.no_grad():
            ours_mod(torch.randn(6, 3, 4))


def test_a_config_that_is_not_a_string_or_dict_is_refused():
    _, g = _gru_pair()
    with pytest.raises(TypeError, match="config must be None, a string or a dict"):
        g.config = ["cpu.kernel=portable"]


def test_a_modules_config_survives_pickling():
    import pickle
    _, g = _gru_pair()
    g.config = {"cpu.kernel": "portable"}
    assert pickle.loads(pickle.dumps(g)).config == {"cpu.kernel": "portable"}


@pytest.mark.parametrize("make", [lambda: _gru_pair(bidirectional=True)[1],
                                  lambda: _lstm_pair(bidirectional=True, proj_size=3)[1]],
                         ids=["gru", "lstm-bidirectional-proj"])
def test_input_on_another_device_than_cpu_or_cuda_is_refused(make):
    ours_mod = make()
    with pytest.raises(TypeError, match="runs on CPU and CUDA tensors, got a meta tensor"):
        with torch.no_grad():
            ours_mod(torch.randn(6, 3, 4, device="meta"))


def test_a_state_on_another_device_than_the_input_is_refused():
    _, g = _gru_pair(bidirectional=True)
    _, lstm = _lstm_pair(bidirectional=True, proj_size=3)
    x = torch.randn(6, 3, 4)
    with torch.no_grad(), pytest.raises(ValueError, match="h_0 is on meta, input on cpu"):
        g(x, torch.zeros(2, 3, 5, device="meta"))
    with torch.no_grad(), pytest.raises(ValueError, match="c_0 is on meta, input on cpu"):
        lstm(x, (torch.zeros(2, 3, 3), torch.zeros(2, 3, 5, device="meta")))


CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="no CUDA device here: stacklstm.torch's GRU and bidirectional "
                                 "/ projected LSTM modules on CUDA tensors have not run")


@CUDA
@pytest.mark.parametrize("kind, kw", [
    ("GRU", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3, batch_first=True)),
    ("LSTM", dict(proj_size=2)),
], ids=["gru-bidirectional", "lstm-bidirectional-proj", "lstm-proj"])
def test_general_modules_on_cuda_tensors_give_the_torch_modules_numbers(kind, kw,
                                                                        cuda_backend):
    ref, ours_mod = (_gru_pair if kind == "GRU" else _lstm_pair)(**kw)
    ref = ref.double().cuda()
    rows = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    x = torch.randn((3, 6, 4) if kw.get("batch_first") else (6, 3, 4), device="cuda")
    h0 = torch.randn(rows, 3, kw.get("proj_size", 5), device="cuda")
    hx = h0 if kind == "GRU" else (h0, torch.randn(rows, 3, 5, device="cuda"))
    dbl = h0.double() if kind == "GRU" else (hx[0].double(), hx[1].double())
    ours_mod.config = {"cuda.generic": "on"}
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())  # x and hx were made on the current stream
    with torch.no_grad(), torch.cuda.stream(side):
        want, want_s = ref(x.double(), dbl)
        got, got_s = ours_mod(x, hx)
    side.synchronize()
    assert got.is_cuda and ("cuda", x.device.index or 0, side.cuda_stream) == \
        next(iter(ours_mod._sessions))[:3]
    np.testing.assert_allclose(got.cpu().numpy(), want.cpu().numpy(), atol=ATOL, rtol=0)
    for g, w in zip(*((got_s, want_s) if kind == "LSTM" else ((got_s,), (want_s,)))):
        np.testing.assert_allclose(g.cpu().numpy(), w.cpu().numpy(), atol=ATOL, rtol=0)


@CUDA
def test_a_gru_module_on_cuda_tensors_without_cuda_generic_names_the_setting(cuda_backend):
    _, g = _gru_pair()
    with torch.no_grad(), pytest.raises(stacklstm.UnsupportedError, match="cuda.generic=on"):
        g(torch.randn(6, 3, 4, device="cuda"))


@CUDA
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_session_forward_takes_torch_cuda_tensors_of_each_data_type(dtype, cuda_backend):
    """Session.forward on torch CUDA tensors (read through __dlpack__ on the session's
    stream), float32 and 16-bit inputs and outputs (generic path, slstm_forward_args.
    data_type): the float call on the inputs' values, its output rounded; states float32."""
    layers = [Layer(cell="gru", hidden_size=6), Layer(cell="lstm", hidden_size=7, proj_size=4)]
    m = stacklstm.Model.random(5, layers=layers, seed=3)
    tdtype = getattr(torch, dtype)
    x = torch.randn(3, 6, 5, device="cuda").to(tdtype)
    want_y, want_s = m.session(3, 6, cpu_path="reference").forward(
        x.float().cpu().numpy(), packed_state=True)
    s = m.session(3, 6, backend="cuda", config="cuda.generic=on")
    out = torch.full((3, 6, 4), float("nan"), device="cuda", dtype=tdtype)
    fin = torch.full((m.state_count(3),), float("nan"), device="cuda")
    side = torch.cuda.Stream()      # the tensors' pending work is ordered before the call
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        s.forward(x, out=out, final_state_out=fin)
    torch.cuda.synchronize()
    scale = max(float(np.abs(want_y).max()), 1e-30)
    got = out.float().cpu().numpy()
    if dtype == "float32":
        assert float(np.abs(got - want_y).max()) / scale < 1e-5
    else:   # the output rounded to the 16-bit type: within half its ulp, plus the float error
        rel = 2.0 ** (-8 if dtype == "bfloat16" else -11)
        assert float(np.abs(got - want_y).max()) <= rel * scale + 1e-5 * scale
    np.testing.assert_allclose(fin.cpu().numpy(), want_s, atol=2e-5, rtol=0)


@CUDA
def test_a_general_module_on_cuda_tensors_on_the_default_stream_zero_state_packed_input(
        cuda_backend):
    """A GRU module on torch's default stream (the session's own stream: each call returns
    when done), hx=None (the state zero-filled on the device) and a PackedSequence."""
    ref, ours = _gru_pair(num_layers=2, bidirectional=True)
    ref = ref.double().cuda()
    ours.config = {"cuda.generic": "on"}
    x = torch.randn(6, 3, 4, device="cuda")
    lengths = torch.tensor([6, 2, 4])
    p = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    p64 = torch.nn.utils.rnn.pack_padded_sequence(x.double(), lengths, enforce_sorted=False)
    with torch.no_grad():
        want, want_h = ref(p64)
        got, got_h = ours(p)
    np.testing.assert_allclose(got.data.cpu().numpy(), want.data.cpu().numpy(), atol=ATOL,
                               rtol=0)
    np.testing.assert_allclose(got_h.cpu().numpy(), want_h.cpu().numpy(), atol=ATOL, rtol=0)
    assert next(iter(ours._sessions))[:3] == ("cuda", 0, torch.cuda.current_stream().cuda_stream)
