"""How Model.from_keras reads a model's structure (naming.keras_model_stack), on stand-ins
for Keras layers: the classes' names, configs, weights and graph links Keras gives
(`_inbound_nodes`, `input`, `_keras_history`), so that these rules are checked without
TensorFlow (python/tests/test_cells_keras.py checks the numbers against tf_keras where it is
installed). The recurrent layers must be one chain with nothing computing between them;
whatever would be dropped from the model silently is refused, naming the layer."""

import numpy as np
import pytest

import stacklstm
from stacklstm import Layer, naming

I = 3


class Tensor:
    """A symbolic tensor: which layer computed it."""

    def __init__(self, producer):
        self._keras_history = (producer, 0, 0)


class KerasLayer:
    def __init__(self, name, inputs=None, calls=1):
        self.name = name
        self._inbound_nodes = [object()] * calls
        if inputs is not None:
            self.input = inputs
        self.output = Tensor(self)

    def get_config(self):
        return {}

    def get_weights(self):
        return []


def kind(name, base=KerasLayer):
    return type(name, (base,), {})


InputLayer, Dense, Dropout, Masking = (kind(n) for n in ("InputLayer", "Dense", "Dropout",
                                                          "Masking"))
RNN = kind("RNN")


class Recurrent(KerasLayer):
    gates = 4

    def __init__(self, name, units, inputs=None, width=I, seed=0, calls=1, **cfg):
        super().__init__(name, inputs, calls)
        self.units, self.width = units, width
        self.cfg = dict(dict(units=units, activation="tanh", recurrent_activation="sigmoid",
                             use_bias=True, go_backwards=False), **cfg)
        self.time_major = cfg.get("time_major", False)
        rng = np.random.default_rng(seed)
        G = self.gates * units
        self.weights = [rng.uniform(-0.5, 0.5, s).astype(np.float32)
                        for s in ((width, G), (units, G), self.bias_shape())]

    def bias_shape(self):
        return (self.gates * self.units,)

    def get_config(self):
        return dict(self.cfg)

    def get_weights(self):
        return list(self.weights)


LSTM = kind("LSTM", Recurrent)


class GRU(Recurrent):
    gates = 3

    def bias_shape(self):
        return (2, 3 * self.units) if self.cfg.get("reset_after", True) else (3 * self.units,)


class CuDNNGRU(GRU):
    def bias_shape(self):
        return (6 * self.units,)


class CuDNNLSTM(Recurrent):
    def bias_shape(self):
        return (8 * self.units,)


class Bidirectional(KerasLayer):
    def __init__(self, name, forward, backward, inputs=None, merge_mode="concat"):
        super().__init__(name, inputs)
        self.forward_layer, self.backward_layer = forward, backward
        self.merge_mode = merge_mode


class Model:
    def __init__(self, *layers):
        self.layers = list(layers)


def stack(*middle, first=None):
    """Input -> LSTM(4) -> middle... -> LSTM(2), each layer fed by the one before."""
    inp = InputLayer("input")
    a = first or LSTM("a", 4, Tensor(inp))
    layers, prev = [inp, a], a
    for make in middle:
        prev = make(Tensor(prev))
        layers.append(prev)
    b = LSTM("b", 2, Tensor(prev), width=4, seed=1)
    return Model(*(layers + [b]))


def test_a_layer_that_computes_between_recurrent_layers_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"dense \(Dense\) sits between recurrent layers"):
        naming.keras_model_stack(stack(lambda t: Dense("dense", t)))


def test_dropout_between_recurrent_layers_is_skipped():
    fmt, layers, _ = naming.keras_model_stack(stack(lambda t: Dropout("drop", t)))
    assert fmt == "keras" and layers == [Layer.lstm(4), Layer.lstm(2)]


def test_two_branches_from_the_input_are_not_one_stack():
    inp = InputLayer("input")
    a = LSTM("a", 4, Tensor(inp))
    b = LSTM("b", 2, Tensor(inp), seed=1)
    with pytest.raises(ValueError, match="b: its input comes from the model's input, not from "
                                         "the recurrent layer before it"):
        naming.keras_model_stack(Model(inp, a, b))


def test_a_recurrent_layer_called_twice_is_refused():
    inp = InputLayer("input")
    with pytest.raises(ValueError, match="a: the layer is called 2 times"):
        naming.keras_model_stack(Model(inp, LSTM("a", 4, Tensor(inp), calls=2)))


def test_an_initial_state_computed_in_the_model_is_refused_and_a_model_input_is_not():
    inp, h0 = InputLayer("input"), InputLayer("h0")
    enc = LSTM("enc", 4, Tensor(inp))
    dec = LSTM("dec", 4, [Tensor(inp), Tensor(enc)], seed=1)
    with pytest.raises(ValueError, match=r"dec: its initial state is computed by enc \(LSTM\)"):
        naming.keras_model_stack(Model(inp, enc, dec))
    given = GRU("gru", 4, [Tensor(inp), Tensor(h0)], reset_after=True)
    _, layers, _ = naming.keras_model_stack(Model(inp, h0, given))
    assert layers == [Layer.gru(4, reset_after=True)]


def nested(name, t, *layers):
    """A nested model (a layer with layers) holding `layers`."""
    return type("Sequential", (KerasLayer,), {"layers": list(layers)})(name, t)


@pytest.mark.parametrize("make, what", [
    (lambda t: RNN("rnn", t), "a RNN layer is not one the library reads"),
    (lambda t: nested("seq", t, LSTM("inner", 4)), "a nested model .* with recurrent layers"),
    (lambda t: nested("pre", t, Dense("d")), r"pre \(Sequential\) sits between"),
    (lambda t: nested("seq", t, nested("deeper", None, LSTM("inner", 4))),
     "seq: a nested model .* with recurrent layers"),
], ids=["rnn_cell", "nested", "nested-between", "nested-two-deep"])
def test_recurrent_layers_the_library_does_not_read_are_refused_not_skipped(make, what):
    with pytest.raises(ValueError, match=what):
        naming.keras_model_stack(stack(make))


def test_a_backward_layer_unlike_its_forward_layer_is_refused():
    inp = InputLayer("input")
    fw = LSTM("fw", 3)
    bw = LSTM("bw", 2, go_backwards=True)
    with pytest.raises(ValueError, match=r"bidi: its backward_layer \(LSTM, units=2\) differs"):
        naming.keras_model_stack(Model(inp, Bidirectional("bidi", fw, bw, Tensor(inp))))


@pytest.mark.parametrize("fw, bw, what", [
    (lambda: LSTM("fw", 3), lambda: LSTM("bw", 3, use_bias=False), "use_bias=False"),
    (lambda: GRU("fw", 3), lambda: GRU("bw", 3, reset_after=False), "reset_after=False"),
], ids=["use_bias", "reset_after"])
def test_a_backward_layer_configured_unlike_its_forward_layer_is_refused(fw, bw, what):
    inp = InputLayer("input")
    with pytest.raises(ValueError, match=r"bidi: its backward_layer \(\w+, %s\) differs" % what):
        naming.keras_model_stack(Model(inp, Bidirectional("bidi", fw(), bw(), Tensor(inp))))


@pytest.mark.parametrize("make, what", [
    (lambda t: Bidirectional("bidi", LSTM("fw", 3), LSTM("bw", 3), t, merge_mode="sum"),
     "bidi: merge_mode 'sum' is not supported"),
    (lambda t: Bidirectional("bidi", RNN("fw"), RNN("bw"), t),
     r"bidi: Bidirectional\(RNN\) is not supported"),
], ids=["merge_mode", "inner-kind"])
def test_a_bidirectional_layer_the_library_does_not_compute_is_refused(make, what):
    inp = InputLayer("input")
    with pytest.raises(ValueError, match=what):
        naming.keras_model_stack(Model(inp, make(Tensor(inp))))


def test_a_bidirectional_layers_backward_weights_are_its_backward_layers():
    inp = InputLayer("input")
    fw, bw = LSTM("fw", 3, seed=0), LSTM("bw", 3, seed=1)
    _, _, tensors = naming.keras_model_stack(Model(inp, Bidirectional("bidi", fw, bw,
                                                                      Tensor(inp))))
    for name, want in zip(("kernel", "recurrent_kernel", "bias"), bw.get_weights()):
        assert np.array_equal(tensors[0]["backward/" + name], want), name


def test_go_backwards_is_refused_also_inside_bidirectional():
    inp = InputLayer("input")
    fw = LSTM("fw", 3, go_backwards=True)
    bw = LSTM("bw", 3)
    with pytest.raises(ValueError, match="bidi: go_backwards=True is not supported"):
        naming.keras_model_stack(Model(inp, Bidirectional("bidi", fw, bw, Tensor(inp))))


@pytest.mark.parametrize("cell", [LSTM, GRU], ids=["lstm", "gru"])
@pytest.mark.parametrize("cfg, what", [
    (dict(recurrent_activation="hard_sigmoid"), "recurrent_activation 'hard_sigmoid'"),
    (dict(activation="relu"), "activation 'relu'"),
], ids=["recurrent_activation", "activation"])
def test_the_stack_reader_refuses_activations_the_library_does_not_compute(cell, cfg, what):
    inp = InputLayer("input")
    a = cell("a", 4, Tensor(inp), **cfg)
    with pytest.raises(ValueError, match="a: %s is not supported" % what):
        naming.keras_model_stack(Model(inp, a))


@pytest.mark.parametrize("cfg, what", [
    (dict(recurrent_activation="hard_sigmoid"), "recurrent_activation 'hard_sigmoid'"),
    (dict(activation="relu"), "activation 'relu'"),
    (dict(go_backwards=True), "go_backwards=True"),
    (dict(go_backwards=True, use_bias=False), "go_backwards=True"),
], ids=["recurrent_activation", "activation", "go_backwards", "go_backwards_without_bias"])
def test_the_lstm_only_reader_refuses_what_the_library_does_not_compute(cfg, what):
    inp = InputLayer("input")
    a = LSTM("a", 4, Tensor(inp), **cfg)
    with pytest.raises(ValueError, match="a: %s is not supported" % what):
        naming.keras_model_layers(Model(inp, a))


def test_recurrent_layers_of_mixed_time_major_are_refused():
    inp = InputLayer("input")
    a = LSTM("a", 4, Tensor(inp), time_major=True)
    b = LSTM("b", 2, Tensor(a), width=4, seed=1)
    with pytest.raises(ValueError, match="mix time_major"):
        naming.keras_model_stack(Model(inp, a, b))


def test_a_model_without_a_graph_is_read_in_layer_order():
    a, b = LSTM("a", 4), LSTM("b", 2, width=4, seed=1)   # never called: no .input
    _, layers, _ = naming.keras_model_stack(Model(a, Dropout("d"), b))
    assert layers == [Layer.lstm(4), Layer.lstm(2)]
    with pytest.raises(ValueError, match="sits between recurrent layers"):
        naming.keras_model_stack(Model(a, Dense("d"), b))


def test_a_cudnn_gru_is_a_reset_after_gru_in_the_keras_cudnn_format():
    inp = InputLayer("input")
    g = CuDNNGRU("g", 4, Tensor(inp))
    fmt, layers, tensors = naming.keras_model_stack(Model(inp, g))
    assert fmt == "keras_cudnn" and layers == [Layer.gru(4, reset_after=True)]
    with stacklstm.Model.from_keras(Model(inp, g)) as m, stacklstm.Model.from_weights(
            [g.get_weights()], "keras_cudnn", layers=[Layer.gru(4, reset_after=True)]) as w:
        for a, b in zip(m.export("canonical")[0], w.export("canonical")[0]):
            assert np.array_equal(a, b)


def test_a_cudnn_lstm_reads_in_the_keras_cudnn_format():
    inp = InputLayer("input")
    c = CuDNNLSTM("c", 4, Tensor(inp))
    assert naming.keras_model_stack(Model(inp, c))[:2] == ("keras_cudnn", [Layer.lstm(4)])
    with stacklstm.Model.from_keras(Model(inp, c)) as m, stacklstm.Model.from_weights(
            [c.get_weights()], "keras_cudnn") as w:
        for a, b in zip(m.export("canonical")[0].values(), w.export("canonical")[0].values()):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("read, what", [
    (naming.keras_model_stack, "mixes CuDNNLSTM / CuDNNGRU with other recurrent layers"),
    (naming.keras_model_layers, "mixes LSTM and CuDNNLSTM layers"),
], ids=["stack", "lstm-only"])
def test_cudnn_and_other_recurrent_layers_in_one_model_are_refused(read, what):
    inp = InputLayer("input")
    c = CuDNNLSTM("c", 4, Tensor(inp))
    b = LSTM("b", 2, Tensor(c), width=4, seed=1)
    with pytest.raises(ValueError, match=what):
        read(Model(inp, c, b))


def test_a_reset_before_gru_reads_as_one():
    inp = InputLayer("input")
    g = GRU("g", 4, Tensor(inp), reset_after=False)
    assert naming.keras_model_stack(Model(inp, g))[1] == [Layer.gru(4, reset_after=False)]


@pytest.mark.parametrize("cfg, layer", [
    ({}, Layer.gru(4, reset_after=True)),   # no reset_after in the config: Keras' default
    (dict(reset_after=False), Layer.gru(4, reset_after=False)),
], ids=["default", "reset_before"])
def test_a_bias_free_gru_gets_zero_biases_of_its_kind(cfg, layer):
    inp = InputLayer("input")
    g = GRU("g", 4, Tensor(inp), use_bias=False, **cfg)
    g.weights = g.weights[:2]   # Keras' get_weights without use_bias: kernel, recurrent_kernel
    with stacklstm.Model.from_keras(Model(inp, g)) as m:
        assert m.layers == (layer,)
        assert not any(np.any(v) for k, v in m.export("canonical")[0].items() if k.startswith("b"))


def test_a_first_recurrent_layer_fed_by_a_later_one_is_refused():
    inp = InputLayer("input")
    b = LSTM("b", 2, Tensor(inp), seed=1)
    a = LSTM("a", 4, Tensor(b), width=2)
    with pytest.raises(ValueError, match="a: its input comes from b, after it"):
        naming.keras_model_stack(Model(inp, a, b))


def test_a_nested_model_without_recurrent_layers_before_the_stack_is_not_part_of_it():
    inp = InputLayer("input")
    pre = nested("pre", Tensor(inp), Dense("d"))
    a = LSTM("a", 4, Tensor(pre))
    _, layers, _ = naming.keras_model_stack(Model(inp, pre, a))
    assert layers == [Layer.lstm(4)]


class Node:
    """A call of a layer in a model's graph (`_nodes_by_depth`)."""

    def __init__(self, layer, *inputs):
        self.layer, self.input_tensors = layer, list(inputs)


def test_a_layer_shared_with_another_model_counts_this_models_call_only():
    # Keras' seq2seq inference decoder: the decoder LSTM is also called by the training model
    # (two inbound nodes), once in this one, with initial states that are this model's inputs.
    inp, h_in, c_in, enc_in = (InputLayer(n) for n in ("x", "h", "c", "enc"))
    enc = LSTM("enc", 4, Tensor(enc_in))
    dec = LSTM("dec", 4, calls=2)
    m = Model(inp, h_in, c_in, dec)
    m._nodes_by_depth = {0: [Node(dec, Tensor(inp), Tensor(h_in), Tensor(c_in))],
                         1: [Node(inp), Node(h_in), Node(c_in)]}
    _, layers, _ = naming.keras_model_stack(m)
    assert layers == [Layer.lstm(4)]
    twice = Model(inp, enc, dec)   # called twice in this model: refused
    twice._nodes_by_depth = {0: [Node(dec, Tensor(inp)), Node(dec, Tensor(enc))]}
    with pytest.raises(ValueError, match="dec: the layer is called 2 times in the model"):
        naming.keras_model_stack(twice)
