"""stacklstm.Layer and stacks beyond BasicLSTMCell (issue 20, docs/cells.md) through the Python
package: describing layers, creating models, tensor discovery, export / import, states of GRU
and bidirectional layers, and the numbers against an independent float64 NumPy reference of
docs/cells.md written here."""

import dataclasses

import numpy as np
import pytest

import stacklstm
from stacklstm import BidirectionalState, Layer, LSTMStateTuple
from stacklstm import naming

ATOL = 2e-5


# ---- an independent float64 reference of docs/cells.md ------------------------------------

def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _lstm_step(L, w, x, state, forget_bias):
    c, h = state
    z = w["W_x"] @ x + w["W_h"] @ h + w["b"]
    H = L.hidden_size
    zi, zf, zg, zo = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
    p = w.get("w_peep", np.zeros((3, H)))
    i = _sigmoid(zi + p[0] * c)
    f = _sigmoid(zf + forget_bias + p[1] * c)
    c = c * f + i * np.tanh(zg)
    if L.cell_clip > 0:
        c = np.clip(c, -L.cell_clip, L.cell_clip)
    o = _sigmoid(zo + p[2] * c)
    h = o * np.tanh(c)
    if L.proj_size:
        h = w["W_proj"] @ h
        if L.proj_clip > 0:
            h = np.clip(h, -L.proj_clip, L.proj_clip)
    return (c, h), h


def _gru_step(L, w, x, h):
    H = L.hidden_size
    gx = w["W_x"] @ x + w["b_x"]
    Wr, Wz, Wn = w["W_h"][:H], w["W_h"][H:2 * H], w["W_h"][2 * H:]
    br, bz, bn = w["b_h"][:H], w["b_h"][H:2 * H], w["b_h"][2 * H:]
    r = _sigmoid(gx[:H] + Wr @ h + br)
    z = _sigmoid(gx[H:2 * H] + Wz @ h + bz)
    if L.gru_reset_after:
        n = np.tanh(gx[2 * H:] + r * (Wn @ h + bn))
    else:
        n = np.tanh(gx[2 * H:] + Wn @ (r * h) + bn)
    h = (1 - z) * n + z * h
    return h, h


def _zero_state(L, B):
    if L.cell == "gru":
        return np.zeros((B, L.hidden_size))
    return LSTMStateTuple(np.zeros((B, L.hidden_size)), np.zeros((B, L.cell_output_size)))


def reference(layers, weights, x, forget_bias=1.0, lengths=None, initial=None):
    """(outputs [B, T, out], final states per layer) in float64, batch-major."""
    x = np.asarray(x, np.float64)
    B, T, _ = x.shape
    lengths = [T] * B if lengths is None else list(lengths)
    finals = []
    for l, L in enumerate(layers):
        w = {k: np.asarray(v, np.float64) for k, v in weights[l].items()}
        dirs = []
        for d in range(L.directions):
            reverse = L.direction == "reverse" or d == 1
            wd = {k[:-len("_reverse")]: v for k, v in w.items() if k.endswith("_reverse")} \
                if d == 1 else {k: v for k, v in w.items() if not k.endswith("_reverse")}
            if initial is None:
                s0 = _zero_state(L, B)
            else:
                s0 = initial[l] if L.directions == 1 else initial[l][d]
            out = np.zeros((B, T, L.cell_output_size))
            fin_c, fin_h = [], []
            for b in range(B):
                if L.cell == "lstm":
                    st = (np.asarray(s0.c[b], np.float64), np.asarray(s0.h[b], np.float64))
                else:
                    st = np.asarray(s0[b], np.float64)
                steps = range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])
                for t in steps:
                    if L.cell == "lstm":
                        st, y = _lstm_step(L, wd, x[b, t], st, forget_bias)
                    else:
                        st, y = _gru_step(L, wd, x[b, t], st)
                    out[b, t] = y
                if L.cell == "lstm":
                    fin_c.append(st[0])
                    fin_h.append(st[1])
                else:
                    fin_h.append(st)
            fin = (LSTMStateTuple(np.array(fin_c), np.array(fin_h)) if L.cell == "lstm"
                   else np.array(fin_h))
            dirs.append((out, fin))
        y = np.concatenate([o for o, _ in dirs], axis=2)
        if L.residual:
            y = y + x
        finals.append(dirs[0][1] if L.directions == 1 else
                      BidirectionalState(dirs[0][1], dirs[1][1]))
        x = y
    return x, finals


def _flat(state):
    """Every array of a per-layer state, in packed order."""
    out = []
    for s in state:
        for d in (s if isinstance(s, BidirectionalState) else [s]):
            out += [d.c, d.h] if isinstance(d, LSTMStateTuple) else [d]
    return out


def run(model, x, cpu_path="reference", **kw):
    B, T = x.shape[0], x.shape[1]
    with model.session(B, T, cpu_path=cpu_path) as s:
        return s.forward(x, **kw)


def check_against_reference(model, x, lengths=None, initial=None, cpu_path="reference"):
    out, fin = run(model, x, cpu_path, sequence_lengths=lengths, initial_state=initial)
    ref_out, ref_fin = reference(model.layers, model.export("canonical"), x,
                                 model.forget_bias, lengths, initial)
    np.testing.assert_allclose(out, ref_out, atol=ATOL, rtol=0)
    for got, want in zip(_flat(fin), _flat(ref_fin)):
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    return out, fin


@pytest.fixture
def x():
    return np.random.default_rng(7).standard_normal((3, 5, 4)).astype(np.float32)


# ---- stacklstm.Layer -----------------------------------------------------------------------

def test_a_layer_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Layer.lstm(4).hidden_size = 5


def test_a_layer_normalises_case_and_flags():
    L = Layer("GRU", 3, "Bidirectional", residual=1, gru_reset_after=1)
    assert (L.cell, L.direction, L.residual, L.gru_reset_after) == ("gru", "bidirectional",
                                                                   True, True)


@pytest.mark.parametrize("kwargs, field", [
    (dict(cell="rnn", hidden_size=3), "cell"),
    (dict(cell="lstm", hidden_size=3, direction="backward"), "direction"),
    (dict(cell="lstm", hidden_size=0), "hidden_size"),
    (dict(cell="lstm", hidden_size=3, cell_clip=-1.0), "cell_clip"),
    (dict(cell="lstm", hidden_size=3, proj_clip=float("nan")), "proj_clip"),
    (dict(cell="lstm", hidden_size=3, proj_size=-1), "proj_size"),
])
def test_a_layer_refuses_a_bad_value_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Layer(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    (dict(cell="lstm", hidden_size=3.0), "hidden_size"),
    (dict(cell="lstm", hidden_size=3, peepholes=2), "peepholes"),
    (dict(cell="lstm", hidden_size=3, cell_clip="1"), "cell_clip"),
])
def test_a_layer_refuses_a_bad_type_naming_the_field(kwargs, field):
    with pytest.raises(TypeError, match=field):
        Layer(**kwargs)


def test_a_layer_holds_its_clip_values_as_the_library_keeps_them():
    L = Layer.lstm(4, cell_clip=0.1, proj_size=2, proj_clip=0.3)
    assert L.cell_clip == float(np.float32(0.1))
    with stacklstm.Model.random(3, layers=[L]) as m:
        assert m.layers == (L,)


def test_a_layer_repr_names_only_the_fields_that_differ_from_their_defaults():
    assert repr(Layer.gru(5, reset_after=True)) == "Layer('gru', 5, gru_reset_after=True)"


def test_a_layers_output_size_is_its_projection_times_its_directions():
    assert Layer.lstm(8, proj_size=3, direction="bidirectional").output_size == 6
    assert Layer.gru(8).output_size == 8


# ---- models made of layers -----------------------------------------------------------------

MIXED = [Layer.lstm(6, peepholes=True, cell_clip=0.7, proj_size=3, proj_clip=0.4),
         Layer.gru(5, direction="bidirectional", reset_after=True),
         Layer.gru(4, reset_after=False, direction="reverse"),
         Layer.lstm(4, residual=True)]


def test_a_model_reports_the_layers_it_was_made_of():
    with stacklstm.Model.random(4, layers=MIXED, seed=3) as m:
        assert m.layers == tuple(MIXED)
        assert m.hidden_sizes == (6, 5, 4, 4)
        assert m.output_size == 4


def test_a_model_from_hidden_sizes_reports_basic_lstm_layers():
    with stacklstm.Model.random(3, [5, 4]) as m:
        assert m.layers == (Layer.lstm(5), Layer.lstm(4))
        assert all(L.is_basic for L in m.layers)


def test_hidden_sizes_and_layers_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        stacklstm.Model.random(3, [4], layers=[Layer.lstm(4)])


def test_neither_hidden_sizes_nor_layers_is_refused():
    with pytest.raises(ValueError, match="hidden_sizes .* or layers"):
        stacklstm.Model.random(3)


def test_layers_must_be_layer_objects():
    with pytest.raises(TypeError, match=r"layers\[1\] must be a stacklstm.Layer"):
        stacklstm.Model.random(3, layers=[Layer.lstm(4), 4])


def test_the_library_refuses_an_inconsistent_layer_naming_layer_and_field():
    with pytest.raises(stacklstm.StackLSTMError, match=r"layers\[1\]\.peepholes"):
        stacklstm.Model.random(3, layers=[Layer.lstm(4), Layer("gru", 4, peepholes=True)])


def test_a_residual_layer_of_another_width_is_refused_naming_it():
    with pytest.raises(stacklstm.StackLSTMError, match=r"layers\[0\]\.residual"):
        stacklstm.Model.random(3, layers=[Layer.lstm(4, residual=True)])


def test_the_repr_of_a_general_stack_lists_its_layers():
    with stacklstm.Model.random(3, layers=[Layer.gru(4)]) as m:
        assert "layers=[Layer('gru', 4)]" in repr(m)


# ---- tensors: discovery, export, import ----------------------------------------------------

def test_format_tensors_lists_names_shapes_layers_and_directions():
    specs = stacklstm.format_tensors("canonical", 3, layers=[
        Layer.lstm(4, peepholes=True, proj_size=2), Layer.gru(5, direction="bidirectional")])
    assert [(t.name, t.shape, t.layer, t.direction) for t in specs] == [
        ("W_x", (16, 3), 0, 0), ("W_h", (16, 2), 0, 0), ("b", (16,), 0, 0),
        ("w_peep", (3, 4), 0, 0), ("W_proj", (2, 4), 0, 0),
        ("W_x", (15, 2), 1, 0), ("W_h", (15, 5), 1, 0), ("b_x", (15,), 1, 0),
        ("b_h", (15,), 1, 0),
        ("W_x", (15, 2), 1, 1), ("W_h", (15, 5), 1, 1), ("b_x", (15,), 1, 1),
        ("b_h", (15,), 1, 1)]


def test_format_tensors_of_hidden_sizes_gives_the_basic_layout():
    specs = stacklstm.format_tensors("tf", 3, hidden_sizes=[4])
    assert [(t.name, t.shape) for t in specs] == [("kernel", (7, 16)), ("bias", (16,))]


def test_a_format_that_cannot_express_a_layer_is_refused_naming_it():
    with pytest.raises(stacklstm.UnsupportedError, match=r"layers\[0\]"):
        stacklstm.format_tensors("pytorch", 3, layers=[Layer.lstm(4, peepholes=True)])


def test_export_keys_a_bidirectional_layers_reverse_tensors_apart():
    with stacklstm.Model.random(3, layers=[Layer.gru(4, direction="bidirectional")]) as m:
        assert list(m.export("canonical")[0]) == [
            "W_x", "W_h", "b_x", "b_h", "W_x_reverse", "W_h_reverse", "b_x_reverse",
            "b_h_reverse"]


def test_canonical_export_then_import_is_bitwise_the_same_model(x):
    with stacklstm.Model.random(4, layers=MIXED, seed=5, forget_bias=0.5) as m:
        w = m.export("canonical")
        with stacklstm.Model.from_weights(w, "canonical", layers=MIXED,
                                          forget_bias=0.5) as m2:
            for a, b in zip(w, m2.export("canonical")):
                assert a.keys() == b.keys()
                for k in a:
                    assert np.array_equal(a[k], b[k]), k
            assert np.array_equal(run(m, x, packed_state=True)[1],
                                  run(m2, x, packed_state=True)[1])


def test_from_weights_takes_per_layer_lists_or_one_flat_list():
    layers = [Layer.gru(4), Layer.lstm(3, proj_size=2)]
    with stacklstm.Model.random(3, layers=layers, seed=2) as m:
        w = m.export("canonical")
        per_layer = [list(lw.values()) for lw in w]
        flat = [t for lw in per_layer for t in lw]
        for given in (per_layer, flat):
            with stacklstm.Model.from_weights(given, "canonical", layers=layers) as m2:
                assert m2.input_size == 3
                assert np.array_equal(m2.export("canonical")[1]["W_proj"], w[1]["W_proj"])


def test_from_weights_infers_the_input_size_from_layer_0():
    with stacklstm.Model.random(7, layers=[Layer.gru(4, direction="bidirectional")]) as m:
        with stacklstm.Model.from_weights(m.export("canonical"), "canonical",
                                          layers=m.layers) as m2:
            assert m2.input_size == 7


def test_from_weights_names_a_missing_tensor_of_a_layer():
    layers = [Layer.lstm(4, peepholes=True)]
    with stacklstm.Model.random(3, layers=layers) as m:
        w = m.export("canonical")
        del w[0]["w_peep"]
        with pytest.raises(ValueError, match=r"layer 0: missing \['w_peep'\]"):
            stacklstm.Model.from_weights(w, "canonical", layers=layers)


def test_from_weights_names_a_tensor_of_the_wrong_shape():
    layers = [Layer.gru(4)]
    with stacklstm.Model.random(3, layers=layers) as m:
        w = m.export("canonical")
        w[0]["b_h"] = np.zeros(11, np.float32)
        with pytest.raises(stacklstm.ShapeMismatchError, match="b_h"):
            stacklstm.Model.from_weights(w, "canonical", layers=layers)


# ---- states --------------------------------------------------------------------------------

def test_a_gru_layers_state_is_its_h_array(x):
    with stacklstm.Model.random(4, layers=[Layer.gru(3)]) as m:
        _, fin = run(m, x)
        assert isinstance(fin[0], np.ndarray) and fin[0].shape == (3, 3)


def test_a_bidirectional_layers_state_has_one_state_per_direction(x):
    with stacklstm.Model.random(4, layers=[Layer.lstm(3, direction="bidirectional")]) as m:
        _, fin = run(m, x)
        assert isinstance(fin[0], BidirectionalState)
        assert isinstance(fin[0].fw, LSTMStateTuple) and fin[0].bw.h.shape == (3, 3)


def test_a_projected_lstm_states_h_has_the_projection_width(x):
    with stacklstm.Model.random(4, layers=[Layer.lstm(5, proj_size=2)]) as m:
        _, fin = run(m, x)
        assert fin[0].c.shape == (3, 5) and fin[0].h.shape == (3, 2)


def test_pack_then_unpack_of_a_mixed_stack_is_the_identity():
    with stacklstm.Model.random(4, layers=MIXED) as m:
        packed = np.arange(m.state_count(2), dtype=np.float32)
        again = m.pack_state(m.unpack_state(packed, 2), 2)
        assert np.array_equal(again, packed)


def test_the_packed_order_is_the_librarys_pieces_order():
    layers = [Layer.gru(2, direction="bidirectional"), Layer.lstm(3, proj_size=1)]
    with stacklstm.Model.random(4, layers=layers) as m:
        st = m.unpack_state(np.arange(m.state_count(1), dtype=np.float32), 1)
        # docs/cells.md: layer 0 fw h, bw h; layer 1 c [H], h [P].
        assert st[0].fw.tolist() == [[0, 1]] and st[0].bw.tolist() == [[2, 3]]
        assert st[1].c.tolist() == [[4, 5, 6]] and st[1].h.tolist() == [[7]]


def test_an_lstm_tuple_for_a_gru_layer_is_refused():
    with stacklstm.Model.random(4, layers=[Layer.gru(3)]) as m:
        s = LSTMStateTuple(np.zeros((1, 3)), np.zeros((1, 3)))
        with pytest.raises(ValueError, match="GRU layer's h"):
            m.pack_state([s], 1)


def test_a_bidirectional_layer_needs_a_bidirectional_state():
    with stacklstm.Model.random(4, layers=[Layer.gru(3, direction="bidirectional")]) as m:
        with pytest.raises(ValueError, match="BidirectionalState"):
            m.pack_state([np.zeros((1, 3))], 1)


def test_a_state_piece_of_the_wrong_width_is_named():
    with stacklstm.Model.random(4, layers=[Layer.lstm(3, direction="bidirectional",
                                                      proj_size=2)]) as m:
        bad = BidirectionalState(LSTMStateTuple(np.zeros((1, 3)), np.zeros((1, 2))),
                                 LSTMStateTuple(np.zeros((1, 3)), np.zeros((1, 3))))
        with pytest.raises(ValueError, match=r"state\[0\]\.bw\.h has shape \(1, 3\), "
                                             r"expected \(1, 2\)"):
            m.pack_state([bad], 1)


# ---- the numbers (CPU reference backend) against the float64 reference above ---------------

@pytest.mark.parametrize("layer", [
    Layer.lstm(5, peepholes=True),
    Layer.lstm(5, cell_clip=0.3),
    Layer.lstm(5, proj_size=3),
    Layer.lstm(5, peepholes=True, cell_clip=0.5, proj_size=2, proj_clip=0.2),
    Layer.gru(5, reset_after=False),
    Layer.gru(5, reset_after=True),
    Layer.lstm(5, direction="reverse"),
    Layer.gru(5, direction="reverse", reset_after=True),
    Layer.lstm(5, direction="bidirectional", proj_size=2),
    Layer.gru(5, direction="bidirectional"),
], ids=repr)
@pytest.mark.parametrize("cpu_path", ["reference", "auto"])
def test_one_layer_matches_the_reference(layer, cpu_path, x):
    with stacklstm.Model.random(4, layers=[layer], seed=11, scale=0.8) as m:
        check_against_reference(m, x, lengths=[5, 2, 0], cpu_path=cpu_path)


def test_a_residual_layer_adds_its_input(x):
    with stacklstm.Model.random(4, layers=[Layer.gru(4, residual=True)], seed=1) as m:
        check_against_reference(m, x)


@pytest.mark.parametrize("cpu_path", ["reference", "auto"])
def test_a_mixed_stack_matches_the_reference_with_lengths_and_initial_states(cpu_path, x):
    with stacklstm.Model.random(4, layers=MIXED, seed=9, scale=0.6, forget_bias=0.5) as m:
        rng = np.random.default_rng(1)
        init = m.unpack_state(rng.standard_normal(m.state_count(3)).astype(np.float32), 3)
        out, _ = check_against_reference(m, x, lengths=[5, 0, 3], initial=init,
                                         cpu_path=cpu_path)
        assert not out[1].any() and not out[2, 3:].any()


def test_a_session_output_has_the_models_output_width(x):
    layers = [Layer.lstm(5, proj_size=2, direction="bidirectional")]
    with stacklstm.Model.random(4, layers=layers) as m:
        out, _ = run(m, x)
        assert out.shape == (3, 5, 4) and m.output_size == 4


def test_time_major_gives_the_transposed_batch_major_numbers(x):
    with stacklstm.Model.random(4, layers=MIXED, seed=4) as m:
        with m.session(3, 5, cpu_path="reference") as s:
            bm, _ = s.forward(x, sequence_lengths=[5, 2, 4])
            tm, _ = s.forward(np.ascontiguousarray(x.transpose(1, 0, 2)), time_major=True,
                              sequence_lengths=[5, 2, 4])
        assert np.array_equal(tm.transpose(1, 0, 2), bm)


# ---- single steps and streams of unidirectional stacks --------------------------------------

UNIDIRECTIONAL = [Layer.gru(5, reset_after=True), Layer.lstm(6, proj_size=3, peepholes=True),
                  Layer.gru(3, direction="forward", residual=True)]


def test_single_steps_of_a_unidirectional_stack_give_the_sequences_numbers(x):
    with stacklstm.Model.random(4, layers=UNIDIRECTIONAL, seed=8) as m:
        with m.session(3, 5, cpu_path="reference") as s:
            whole, final = s.forward(x, packed_state=True)
            state = None
            for t in range(5):
                y, state = s.step(x[:, t], state, packed_state=True)
                np.testing.assert_allclose(y, whole[:, t], atol=1e-6, rtol=0)
        np.testing.assert_allclose(state, final, atol=1e-6, rtol=0)


def test_a_step_of_a_stack_with_a_reverse_layer_is_refused_naming_the_layer(x):
    layers = [Layer.gru(4), Layer.lstm(4, direction="reverse")]
    with stacklstm.Model.random(4, layers=layers) as m:
        with m.session(3, 5) as s:
            with pytest.raises(stacklstm.UnsupportedError, match=r"layer 1|layers\[1\]"):
                s.step(x[:, 0])


def test_a_stream_of_a_gru_stack_keeps_its_state_between_chunks(x):
    with stacklstm.Model.random(4, layers=UNIDIRECTIONAL, seed=8) as m:
        whole, final = run(m, x[:1], "auto")
        with stacklstm.Streams(m, max_streams=2, max_batch=1, max_time=5) as streams:
            slot = streams.open()
            first = streams.run([slot], x[:1, :2])
            rest = streams.run([slot], x[:1, 2:])
            state = streams.get_state(slot)
        np.testing.assert_allclose(np.concatenate([first, rest], axis=1), whole, atol=1e-6,
                                   rtol=0)
        for got, want in zip(_flat(state), _flat(final)):
            np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_the_torch_lstm_module_refuses_a_stack_it_cannot_stand_for():
    pytest.importorskip("torch")
    import stacklstm.torch as torch_mod
    with stacklstm.Model.random(4, layers=[Layer.gru(3)]) as m:
        with pytest.raises(ValueError, match="layer 0 is Layer\\('gru', 3\\)"):
            torch_mod.LSTM.from_model(m)


# ---- model files ----------------------------------------------------------------------------

def test_a_mixed_stack_survives_its_model_file_image_bitwise():
    with stacklstm.Model.random(4, layers=MIXED, seed=12, forget_bias=0.25) as m:
        with stacklstm.Model.from_bytes(m.to_bytes()) as m2:
            assert m2.layers == m.layers and m2.forget_bias == 0.25
            for a, b in zip(m.export("canonical"), m2.export("canonical")):
                for k in a:
                    assert np.array_equal(a[k], b[k]), k


def test_a_mixed_stack_pickles_to_the_same_layers(tmp_path):
    import pickle
    with stacklstm.Model.random(4, layers=MIXED, seed=13) as m:
        m2 = pickle.loads(pickle.dumps(m))
        assert m2.layers == m.layers and m2.output_size == m.output_size
        m2.close()


# ---- Keras' state order for every stack (no Keras needed) -----------------------------------

def test_keras_states_of_a_mixed_stack_convert_both_ways():
    layers = [Layer.lstm(2, direction="bidirectional"), Layer.gru(3)]
    flat = [np.full((1, 2), v, np.float32) for v in (1, 2, 3, 4)] + [np.full((1, 3), 5.0)]
    state = stacklstm.state_from_keras(flat, layers=layers)
    assert state[0].fw.h[0, 0] == 1 and state[0].fw.c[0, 0] == 2
    assert state[0].bw.h[0, 0] == 3 and state[0].bw.c[0, 0] == 4 and state[1][0, 0] == 5
    back = stacklstm.state_to_keras(state, layers=layers)
    assert [a[0, 0] for a in back[0]] == [1, 2, 3, 4] and back[1][0][0, 0] == 5


def test_a_keras_state_list_of_the_wrong_length_names_what_each_layer_takes():
    layers = [Layer.lstm(2, direction="bidirectional"), Layer.gru(3)]
    with pytest.raises(ValueError, match="h_fw, c_fw, h_bw, c_bw; h"):
        stacklstm.state_from_keras([np.zeros((1, 2))] * 3, layers=layers)


# ---- the batcher ----------------------------------------------------------------------------

def test_the_batcher_runs_sequences_of_a_bidirectional_stack_as_alone(x):
    layers = [Layer.gru(4, direction="bidirectional", reset_after=True),
              Layer.lstm(3, proj_size=2)]
    with stacklstm.Model.random(4, layers=layers, seed=14) as m:
        init = m.unpack_state(np.random.default_rng(3).standard_normal(
            m.state_count(1)).astype(np.float32), 1)
        from stacklstm.batcher import Batcher
        with Batcher(m, max_batch=3, max_streams=0, max_time=5,
                     max_wait_us=200000) as b:
            futures = [b.submit_sequence(x[0, :5], init), b.submit_sequence(x[1, :2]),
                       b.submit_sequence(x[2, :4], init)]
            results = [f.result(30) for f in futures]
        for k, (n, st) in enumerate([(5, init), (2, None), (4, init)]):
            want_out, want_fin = run(m, x[k:k + 1, :n], "auto", initial_state=st)
            assert np.array_equal(results[k][0], want_out[0])
            for got, want in zip(_flat(results[k][1]), _flat(want_fin)):
                assert np.array_equal(got, want)


# ---- how states travel to and from a Ray Serve replica (no Ray needed) ----------------------

def test_states_of_any_stack_travel_to_a_replica_and_back_unchanged():
    from stacklstm.ray import serve as ss
    layers = [Layer.gru(3), Layer.lstm(4, proj_size=2), Layer.gru(2, direction="bidirectional")]
    with stacklstm.Model.random(3, layers=layers) as m:
        packed = np.arange(m.state_count(1), dtype=np.float32)
        state = m.unpack_state(packed, 1)
        arrived = ss._tuples(ss._pairs(state))   # client -> replica
        assert np.array_equal(m.pack_state(arrived, 1), packed)
        back = ss._pairs([ss._travel(t) for t in arrived])   # replica -> client
        assert np.array_equal(m.pack_state(ss._tuples(back), 1), packed)


def test_lstm_states_still_travel_as_c_h_pairs():
    from stacklstm.ray import serve as ss
    st = [LSTMStateTuple(np.zeros((1, 2)), np.ones((1, 2)))]
    sent = ss._pairs(st)
    assert isinstance(sent[0], tuple) and sent[0][1].tolist() == [[1, 1]]


def test_one_layers_dict_of_names_is_read_by_name_not_by_order():
    layers = [Layer.gru(4)]
    with stacklstm.Model.random(4, layers=layers, seed=3) as m:
        w = m.export("canonical")[0]
        shuffled = {k: w[k] for k in ("b_h", "W_h", "b_x", "W_x")}   # W_x, W_h both [12, 4]
        with stacklstm.Model.from_weights(shuffled, "canonical", layers=layers) as m2:
            assert np.array_equal(m2.export("canonical")[0]["W_x"], w["W_x"])


def test_a_dict_of_names_for_several_layers_is_refused():
    layers = [Layer.gru(4), Layer.gru(4)]
    with stacklstm.Model.random(4, layers=layers) as m:
        with pytest.raises(TypeError, match="one layer's"):
            stacklstm.Model.from_weights(m.export("canonical")[0], "canonical", layers=layers)


def test_a_basic_layers_dict_of_names_is_read_by_name_too():
    with stacklstm.Model.random(4, [4], seed=3) as m:   # weight_ih and weight_hh: [16, 4]
        w = m.export("pytorch")[0]
        shuffled = {k: w[k] for k in ("bias_hh", "weight_hh", "bias_ih", "weight_ih")}
        with stacklstm.Model.from_weights(shuffled, "pytorch") as m2:
            assert np.array_equal(m2.export("pytorch")[0]["weight_ih"], w["weight_ih"])


def test_the_repr_of_a_session_of_a_general_stack_lists_its_layers():
    with stacklstm.Model.random(3, layers=[Layer.gru(4)]) as m:
        with m.session(1, 2) as s:
            assert "layers=[Layer('gru', 4)]" in repr(s)


def test_stream_slots_of_a_bidirectional_stack_are_refused_naming_the_layer():
    with stacklstm.Model.random(3, layers=[Layer.gru(4, direction="bidirectional")]) as m:
        with pytest.raises(stacklstm.UnsupportedError, match=r"layer 0|layers\[0\]"):
            stacklstm.Streams(m, max_streams=2, max_batch=1)


def test_a_bool_cell_clip_is_a_type_error_not_1():
    with pytest.raises(TypeError, match="cell_clip"):
        Layer("lstm", 4, cell_clip=True)


def test_a_bool_hidden_size_is_a_type_error_not_1():
    with pytest.raises(TypeError, match="hidden_size"):
        Layer("lstm", True)


def test_a_clip_beyond_float32_range_is_refused_not_made_inf():
    with pytest.raises(ValueError, match="cell_clip"):
        Layer("lstm", 4, cell_clip=1e39)


def test_a_clipped_lstm_layer_is_not_basic_and_from_tf_variables_keeps_its_clip():
    assert not Layer.lstm(4, cell_clip=0.5).is_basic
    variables = naming.to_tf_variables(stacklstm.Model.random(3, [4], seed=1))
    m = stacklstm.Model.from_tf_variables(variables, layers=[Layer.lstm(4, cell_clip=0.5)])
    assert m.layers[0].cell_clip == 0.5


def test_from_tf_variables_refuses_layers_whose_direction_the_checkpoint_contradicts():
    variables = naming.to_tf_variables(stacklstm.Model.random(3, [4], seed=1))
    with pytest.raises(ValueError, match="layers\\[0\\]"):
        stacklstm.Model.from_tf_variables(variables,
                                          layers=[Layer.lstm(4, direction="reverse")])


def test_from_tf_variables_refuses_fewer_basic_layers_than_the_checkpoint_holds():
    variables = naming.to_tf_variables(stacklstm.Model.random(3, [4, 4], seed=1))
    with pytest.raises(ValueError, match="1 given, the variables hold 2"):
        stacklstm.Model.from_tf_variables(variables, layers=[Layer.lstm(4)])
