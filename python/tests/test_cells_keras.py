"""Keras models of every recurrent layer Keras has (issue 20): LSTM, GRU with reset_after True
and False, Bidirectional(LSTM | GRU), read through SLSTM_FORMAT_KERAS (Model.from_keras). The
numbers are Keras' own (tf_keras, float64); ours in float32."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("tf_keras", reason="tf_keras is not installed")

import stacklstm   # noqa: E402
from stacklstm import BidirectionalState, Layer, naming   # noqa: E402

ATOL = 2e-5
L = keras.layers


@pytest.fixture(autouse=True)
def float64():
    keras.backend.set_floatx("float64")
    yield
    keras.backend.set_floatx("float32")


def randomised(model, seed):
    """Every weight uniform in [-0.6, 0.6] (Keras initialises biases to 0 and 1)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape) for w in model.get_weights()])
    return model


def sequential(D, *layers, seed=0):
    m = keras.Sequential([keras.Input((None, D))] + list(layers))
    return randomised(m, seed)


def ours(model, x, lengths=None):
    with model.session(x.shape[0], x.shape[1]) as s:
        return s.forward(x.astype(np.float32), sequence_lengths=lengths)


@pytest.fixture
def x():
    return np.random.default_rng(2).standard_normal((3, 6, 4))


@pytest.mark.parametrize("make, layer", [
    (lambda: L.GRU(5, return_sequences=True, reset_after=True),
     Layer.gru(5, reset_after=True)),
    (lambda: L.GRU(5, return_sequences=True, reset_after=False),
     Layer.gru(5, reset_after=False)),
    (lambda: L.Bidirectional(L.GRU(5, return_sequences=True)),
     Layer.gru(5, reset_after=True, direction="bidirectional")),
    (lambda: L.Bidirectional(L.GRU(5, return_sequences=True, reset_after=False)),
     Layer.gru(5, direction="bidirectional")),
    (lambda: L.Bidirectional(L.LSTM(5, return_sequences=True)),
     Layer.lstm(5, direction="bidirectional")),
], ids=["gru-after", "gru-before", "bidir-gru-after", "bidir-gru-before", "bidir-lstm"])
def test_a_keras_layer_gives_its_layer_and_its_numbers(make, layer, x):
    km = sequential(4, make(), seed=1)
    with stacklstm.Model.from_keras(km) as m:
        assert m.layers == (layer,) and m.forget_bias == 0.0
        np.testing.assert_allclose(ours(m, x)[0], km.predict(x, verbose=0), atol=ATOL, rtol=0)


def test_a_mixed_keras_stack_gives_keras_numbers(x):
    km = sequential(4, L.Bidirectional(L.LSTM(3, return_sequences=True)),
                    L.GRU(4, return_sequences=True, reset_after=False),
                    L.Bidirectional(L.GRU(2, return_sequences=True)), L.Dense(1), seed=2)
    with stacklstm.Model.from_keras(km) as m:
        assert m.output_size == 4
        want = keras.Model(km.inputs, km.layers[2].output).predict(x, verbose=0)
        np.testing.assert_allclose(ours(m, x)[0], want, atol=ATOL, rtol=0)


def test_final_states_of_a_bidirectional_layer_are_kerass(x):
    inp = keras.Input((None, 4))
    out = L.Bidirectional(L.LSTM(3, return_state=True))(inp)
    km = randomised(keras.Model(inp, out), 3)
    _, h_fw, c_fw, h_bw, c_bw = km.predict(x, verbose=0)
    with stacklstm.Model.from_keras(km) as m:
        _, fin = ours(m, x)
        keras_order = stacklstm.state_to_keras(fin, layers=m.layers)
    assert isinstance(fin[0], BidirectionalState)
    for got, want in zip(keras_order[0], (h_fw, c_fw, h_bw, c_bw)):
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_a_keras_initial_state_converts_and_gives_kerass_numbers(x):
    inp, h0 = keras.Input((None, 4)), keras.Input((3,))
    km = randomised(keras.Model([inp, h0], L.GRU(3, return_sequences=True, reset_after=False)(
        inp, initial_state=[h0])), 6)
    h = np.random.default_rng(9).uniform(-1, 1, (3, 3))
    want = km.predict([x, h], verbose=0)
    with stacklstm.Model.from_keras(km) as m:
        init = stacklstm.state_from_keras([h], layers=m.layers)
        with m.session(3, 6) as s:
            got, _ = s.forward(x.astype(np.float32), initial_state=init)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_masked_steps_of_a_bidirectional_layer_read_like_sequence_lengths(x):
    lengths = [6, 2, 4]
    xp = x.copy()
    for b, n in enumerate(lengths):
        xp[b, n:] = 0.0
    km = sequential(4, L.Masking(0.0), L.Bidirectional(L.GRU(3, return_sequences=True)),
                    seed=4)
    want = km.predict(xp, verbose=0)
    with stacklstm.Model.from_keras(km) as m:
        got, _ = ours(m, xp, lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(got[b, :n], want[b, :n], atol=ATOL, rtol=0)


def test_a_gru_without_bias_gets_zero_biases(x):
    km = sequential(4, L.GRU(3, return_sequences=True, use_bias=False), seed=5)
    with stacklstm.Model.from_keras(km) as m:
        np.testing.assert_allclose(ours(m, x)[0], km.predict(x, verbose=0), atol=ATOL, rtol=0)


@pytest.mark.parametrize("make, what", [
    (lambda: L.GRU(3, activation="relu"), "activation 'relu'"),
    (lambda: L.GRU(3, go_backwards=True), "go_backwards"),
    (lambda: L.Bidirectional(L.GRU(3), merge_mode="sum"), "merge_mode 'sum'"),
], ids=["activation", "go_backwards", "merge_mode"])
def test_what_the_library_does_not_compute_is_refused_naming_the_layer(make, what):
    km = sequential(4, make())
    with pytest.raises(ValueError, match=what):
        stacklstm.Model.from_keras(km)


def test_the_lstm_only_reader_points_a_gru_to_the_stack_reader():
    with pytest.raises(ValueError, match="keras_model_stack"):
        naming.keras_model_layers(sequential(4, L.GRU(3)))


def test_a_decoder_layer_shared_with_a_training_model_reads_as_its_inference_model(x):
    # keras.io's seq2seq: the decoder LSTM is called by the training model and again by the
    # inference decoder, whose initial states are its own inputs
    enc_in, dec_in = keras.Input((None, 4)), keras.Input((None, 4))
    _, sh, sc = L.LSTM(3, return_state=True)(enc_in)
    dec = L.LSTM(3, return_sequences=True, return_state=True)
    dec(dec_in, initial_state=[sh, sc])
    h_in, c_in = keras.Input((3,)), keras.Input((3,))
    out, _, _ = dec(dec_in, initial_state=[h_in, c_in])
    km = randomised(keras.Model([dec_in, h_in, c_in], out), 8)
    h, c = (np.random.default_rng(k).uniform(-1, 1, (3, 3)) for k in (1, 2))
    want = km.predict([x, h, c], verbose=0)
    with stacklstm.Model.from_keras(km) as m:
        init = stacklstm.state_from_keras([h, c], layers=m.layers)
        with m.session(3, 6) as s:
            got, _ = s.forward(x.astype(np.float32), initial_state=init)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
