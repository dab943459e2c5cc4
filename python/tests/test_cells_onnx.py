"""ONNX graphs of LSTM and GRU nodes beyond the node cases (issue 20): stacks as
torch.onnx.export writes them (Squeeze, or Transpose + Reshape between bidirectional nodes),
what is refused and why, and the old forward-LSTM-only reader."""

import io

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install onnx)")
from onnx import TensorProto, helper, numpy_helper   # noqa: E402

import stacklstm   # noqa: E402
from stacklstm import Layer, naming   # noqa: E402

ATOL = 2e-5


def node_graph(op="LSTM", H=3, I=2, nd=1, P=None, **attrs):
    """A one-node graph with random initializers W, R, B (and P when given)."""
    rng = np.random.default_rng(5)
    G = 4 if op == "LSTM" else 3
    inits = [numpy_helper.from_array(rng.standard_normal((nd, G * H, I)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((nd, G * H, H)).astype(np.float32), "R"),
             numpy_helper.from_array(rng.standard_normal((nd, 2 * G * H)).astype(np.float32),
                                     "B")]
    ins = ["X", "W", "R", "B"]
    if P is not None:
        inits.append(numpy_helper.from_array(P.astype(np.float32), "P"))
        ins += ["", "", "", "P"]
    node = helper.make_node(op, ins, ["Y"], hidden_size=H, name="rnn0", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, [None, None, I])], [helper.make_tensor_value_info(
            "Y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(g)


def exported(mod, batch_first=False):
    torch = pytest.importorskip("torch")
    f = io.BytesIO()
    x = torch.zeros((2, 5, mod.input_size) if batch_first else (5, 2, mod.input_size))
    torch.onnx.export(mod, (x,), f, opset_version=14)
    return onnx.load_from_string(f.getvalue())


def torch_module(kind, **kw):
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    return getattr(torch.nn, kind)(**kw).eval()


def torch_numbers(mod, x, batch_first=False):
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(x if batch_first else np.ascontiguousarray(x.transpose(1, 0, 2)))
    with torch.no_grad():
        y = mod(xt)[0].numpy()
    return y if batch_first else y.transpose(1, 0, 2)


def our_numbers(model, x):
    with model.session(x.shape[0], x.shape[1]) as s:
        return s.forward(x)[0]


@pytest.fixture
def x():
    return np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)


@pytest.mark.parametrize("kind, kw, layers", [
    ("LSTM", dict(bidirectional=True), [Layer.lstm(4, direction="bidirectional")] * 2),
    ("GRU", dict(), [Layer.gru(4, reset_after=True)] * 2),
    ("GRU", dict(bidirectional=True),
     [Layer.gru(4, reset_after=True, direction="bidirectional")] * 2),
], ids=["lstm-bidir", "gru", "gru-bidir"])
def test_a_stack_exported_by_torch_gives_its_layers_and_numbers(kind, kw, layers, x):
    mod = torch_module(kind, input_size=3, hidden_size=4, num_layers=2, **kw)
    with stacklstm.Model.from_onnx(exported(mod)) as model:
        assert list(model.layers) == layers
        np.testing.assert_allclose(our_numbers(model, x), torch_numbers(mod, x), atol=ATOL,
                                   rtol=0)


def test_a_batch_first_stack_exported_by_torch_reads_the_same(x):
    mod = torch_module("LSTM", input_size=3, hidden_size=4, num_layers=2, batch_first=True)
    with stacklstm.Model.from_onnx(exported(mod, batch_first=True)) as model:
        np.testing.assert_allclose(our_numbers(model, x), torch_numbers(mod, x, True),
                                   atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind, with_state", [("LSTM", True), ("GRU", True), ("GRU", False)])
def test_a_stack_exported_with_dynamic_axes_and_initial_states_reads_the_same(kind,
                                                                               with_state, x):
    # torch writes zero states of a dynamic batch as ConstantOfShape, and each layer's given
    # h0 / c0 as a Slice of the graph's input: both are a run's initial state, not the graph's
    torch = pytest.importorskip("torch")
    mod = torch_module(kind, input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    xt = torch.zeros(5, 2, 3)
    h0 = torch.zeros(4, 2, 4)
    args = (xt, ((h0, h0) if kind == "LSTM" else h0)) if with_state else (xt,)
    names = ["x"] + (["h0", "c0"] if kind == "LSTM" else ["h0"]) * with_state
    f = io.BytesIO()
    torch.onnx.export(mod, args, f, opset_version=14, input_names=names,
                      dynamic_axes={n: {0: "T", 1: "B"} if n == "x" else {1: "B"}
                                    for n in names})
    with stacklstm.Model.from_onnx(onnx.load_from_string(f.getvalue())) as model:
        np.testing.assert_allclose(our_numbers(model, x), torch_numbers(mod, x),
                                   atol=ATOL, rtol=0)


def test_a_model_file_path_is_read_too(tmp_path):
    path = str(tmp_path / "m.onnx")
    onnx.save(node_graph("GRU", linear_before_reset=1), path)
    with stacklstm.Model.from_onnx(path) as model:
        assert model.layers == (Layer.gru(3, reset_after=True),)


def test_peepholes_come_from_a_nonzero_p():
    with stacklstm.Model.from_onnx(node_graph(P=np.full((1, 9), 0.5))) as model:
        assert model.layers == (Layer.lstm(3, peepholes=True),)


def test_an_all_zero_p_is_no_peepholes():
    with stacklstm.Model.from_onnx(node_graph(P=np.zeros((1, 9)))) as model:
        assert model.layers == (Layer.lstm(3),)


@pytest.mark.parametrize("op, attrs, what", [
    ("LSTM", dict(clip=1.0), "clip"),
    ("LSTM", dict(input_forget=1), "input_forget"),
    ("LSTM", dict(activations=["Sigmoid", "Tanh", "Relu"]), "activations"),
    ("GRU", dict(activations=["HardSigmoid", "Tanh"]), "activations"),
    ("LSTM", dict(activations=["Tanh", "Sigmoid", "Tanh"]), "activations"),
], ids=["clip", "input_forget", "lstm-activations", "gru-activations",
        "lstm-default-activations-in-another-order"])
def test_what_the_library_does_not_compute_is_refused_naming_the_attribute(op, attrs, what):
    with pytest.raises(stacklstm.UnsupportedError, match="node 'rnn0': %s" % what):
        stacklstm.Model.from_onnx(node_graph(op, **attrs))


def test_default_activations_spelled_out_are_accepted():
    g = node_graph("LSTM", nd=2, direction="bidirectional",
                   activations=["sigmoid", "Tanh", "TANH"] * 2)
    with stacklstm.Model.from_onnx(g) as model:
        assert model.layers == (Layer.lstm(3, direction="bidirectional"),)


def test_a_direction_onnx_does_not_define_is_refused_naming_the_node():
    with pytest.raises(ValueError, match="LSTM node 'rnn0': direction 'sideways' is not "
                                         "forward, reverse or bidirectional"):
        stacklstm.Model.from_onnx(node_graph("LSTM", direction="sideways"))


def test_a_hidden_size_attribute_that_contradicts_r_is_refused():
    g = node_graph("GRU")
    g.graph.node[0].attribute[0].i = 5
    with pytest.raises(ValueError, match="hidden_size=5 but R"):
        stacklstm.Model.from_onnx(g)


def test_nodes_linked_by_anything_else_are_not_one_stack():
    g = node_graph("LSTM")
    relu = helper.make_node("Relu", ["Y"], ["Z"])
    second = helper.make_node("LSTM", ["Z", "W2", "R2"], ["Y2"], hidden_size=3, name="rnn1")
    rng = np.random.default_rng(0)
    g.graph.initializer.extend([
        numpy_helper.from_array(rng.standard_normal((1, 12, 3)).astype(np.float32), "W2"),
        numpy_helper.from_array(rng.standard_normal((1, 12, 3)).astype(np.float32), "R2")])
    g.graph.node.extend([relu, second])
    with pytest.raises(ValueError, match="node 'rnn1': its input X .*from a Relu node.* not "
                                         "one stack"):
        stacklstm.Model.from_onnx(g)


def chain(link, layout=0, nd0=1, into="Z", extra_inputs=(), layout0=None):
    """Two LSTM nodes (H = 3, input width 2, then nd0 * 3): 'rnn0' (nd0 directions, layout
    layout0, default `layout`) on the graph's input X gives Y; the nodes of `link` ((node,
    {initializer name: int64 values}) pairs) compute `into`, rnn1's X; its Y2 is the graph's
    output. Opset 14 (layout, Squeeze's axes input)."""
    rng = np.random.default_rng(6)
    H, I = 3, 2
    inits = [numpy_helper.from_array(rng.uniform(-.5, .5, shape).astype(np.float32), name)
             for name, shape in (("W0", (nd0, 4 * H, I)), ("R0", (nd0, 4 * H, H)),
                                 ("W1", (1, 4 * H, nd0 * H)), ("R1", (1, 4 * H, H)))]
    direction = "bidirectional" if nd0 == 2 else "forward"
    nodes = [helper.make_node("LSTM", ["X", "W0", "R0"], ["Y"], hidden_size=H,
                              layout=layout if layout0 is None else layout0,
                              direction=direction, name="rnn0")]
    for node, consts in link:
        nodes.append(node)
        inits += [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in consts.items()]
    nodes.append(helper.make_node("LSTM", [into, "W1", "R1"], ["Y2"], hidden_size=H,
                                  layout=layout, name="rnn1"))
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
              for n in ("X",) + tuple(extra_inputs)]
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(
        "Y2", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


def squeeze(src, axis):
    return helper.make_node("Squeeze", [src, "axes"], ["Z"]), {"axes": [axis]}


def reshape(src, shape):
    return helper.make_node("Reshape", [src, "shape"], ["Z"]), {"shape": shape}


def transpose(src, perm):
    return helper.make_node("Transpose", [src], ["Yt"], perm=perm), {}


@pytest.mark.parametrize("layout, nd0, link, extra", [
    (0, 1, [squeeze("Y", 2)], ()),
    (1, 1, [squeeze("Y", 1)], ()),
    (0, 1, [squeeze("Q", 1)], ("Q",)),
    (0, 2, [transpose("Y", [0, 2, 1, 3]), reshape("Yt", [10, 1, -1])], ()),
    (0, 2, [transpose("Y", [0, 1, 2, 3]), reshape("Yt", [0, 0, -1])], ()),
    (0, 2, [transpose("Q", [0, 2, 1, 3]), reshape("Yt", [0, 0, -1])], ("Q",)),
    (1, 1, [reshape("X", [0, 0, -1])], ()),
], ids=["squeeze-batch-axis", "layout1-squeeze-time-axis", "squeeze-of-another-value",
        "reshape-not-0-0", "transpose-not-0-2-1-3", "transpose-of-another-value",
        "layout1-reshape-of-another-value"])
def test_a_link_that_is_not_the_previous_nodes_y_merged_is_not_one_stack(layout, nd0, link,
                                                                         extra):
    g = chain(link, layout=layout, nd0=nd0, extra_inputs=extra)
    with pytest.raises(ValueError, match="node 'rnn1': its input X .* not one stack"):
        stacklstm.Model.from_onnx(g)


def test_nodes_of_different_layouts_are_not_one_stack():
    g = chain([squeeze("Y", 2)], layout=1, layout0=0)   # the link is layout=1's
    with pytest.raises(ValueError, match="node 'rnn1': its input X .*same layout"):
        stacklstm.Model.from_onnx(g)


@pytest.mark.parametrize("layout, axis", [(0, -3), (1, 2), (1, -2)])
def test_a_squeeze_of_the_direction_axis_links_nodes_of_either_layout(layout, axis, x):
    reference = pytest.importorskip("onnx.reference")
    g = chain([squeeze("Y", axis)], layout=layout)
    feed = x[:, :, :2] if layout else np.ascontiguousarray(x[:, :, :2].transpose(1, 0, 2))
    want = reference.ReferenceEvaluator(g).run(None, {"X": feed})[0]   # Y2
    want = want[:, :, 0] if layout else want[:, 0].transpose(1, 0, 2)   # -> [B, T, H]
    with stacklstm.Model.from_onnx(g) as m:
        assert m.layers == (Layer.lstm(3), Layer.lstm(3))
        np.testing.assert_allclose(our_numbers(m, x[:, :, :2]), want, atol=ATOL, rtol=0)


def with_input(g, index, name, value=None):
    """The graph's node with input `index` set to `name` (an initializer when value is given,
    else a graph input)."""
    node = g.graph.node[0]
    ins = list(node.input) + [""] * (8 - len(node.input))
    ins[index] = name
    del node.input[:]
    node.input.extend(ins)
    if value is not None:
        g.graph.initializer.append(numpy_helper.from_array(value, name))
    else:
        g.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return g


def test_an_op_before_the_first_recurrent_node_is_refused_naming_it():
    g = node_graph("LSTM")
    g.graph.node.insert(0, helper.make_node("Relu", ["X0"], ["X"], name="pre"))
    with pytest.raises(ValueError, match="node 'rnn0': its input X .* computed by a Relu node "
                                         "'pre'"):
        stacklstm.Model.from_onnx(g)


@pytest.mark.parametrize("before", [
    [helper.make_node("Transpose", ["X0"], ["X"], perm=[0, 2, 1], name="pre")],
    [helper.make_node("Relu", ["X0"], ["X1"], name="relu"),
     helper.make_node("Transpose", ["X1"], ["X"], perm=[1, 0, 2], name="pre")],
], ids=["transpose-not-batch-first", "transpose-of-a-computed-value"])
def test_only_a_batch_first_transpose_of_the_graphs_input_may_precede_the_stack(before):
    g = node_graph("LSTM")
    for k, node in enumerate(before):
        g.graph.node.insert(k, node)
    with pytest.raises(ValueError, match="node 'rnn0': its input X .* computed by a "
                                         "Transpose node 'pre'"):
        stacklstm.Model.from_onnx(g)


def test_an_output_computed_after_the_stack_is_refused_naming_it():
    g = node_graph("GRU")
    g.graph.node.append(helper.make_node("Relu", ["Y"], ["Z"], name="head"))
    g.graph.output.append(helper.make_tensor_value_info("Z", TensorProto.FLOAT, None))
    with pytest.raises(ValueError, match="graph output 'Z' is computed by a Relu node 'head'"):
        stacklstm.Model.from_onnx(g)


def with_second_node(g):
    """The graph with a second LSTM node 'rnn1' (H = 3) on the first one's Y, as
    torch.onnx.export links them (Squeeze of the direction axis)."""
    rng = np.random.default_rng(0)
    g.graph.node.extend([helper.make_node("Squeeze", ["Y"], ["Z"], axes=[1]),
                         helper.make_node("LSTM", ["Z", "W2", "R2"], ["Y2"], hidden_size=3,
                                          name="rnn1")])
    g.graph.initializer.extend([
        numpy_helper.from_array(rng.standard_normal((1, 12, 3)).astype(np.float32), "W2"),
        numpy_helper.from_array(rng.standard_normal((1, 12, 3)).astype(np.float32), "R2")])
    g.opset_import[0].version = 11
    return g


def test_an_output_concatenating_a_final_state_and_a_value_computed_after_is_refused():
    g = node_graph("GRU")
    g.graph.node[0].output.append("Y_h")
    g.graph.node.extend([helper.make_node("Relu", ["Y_h"], ["R"], name="head"),
                         helper.make_node("Concat", ["Y_h", "R"], ["both"], axis=0)])
    g.graph.output.append(helper.make_tensor_value_info("both", TensorProto.FLOAT, None))
    with pytest.raises(ValueError, match="graph output 'both' is computed by a Relu node "
                                         "'head'"):
        stacklstm.Model.from_onnx(g)


def test_an_output_that_is_an_earlier_nodes_y_is_refused():
    g = with_second_node(node_graph("LSTM"))
    with pytest.raises(ValueError, match="graph output 'Y' is node 'rnn0''s Y, not the last "
                                         "recurrent node's \\('rnn1'\\)"):
        stacklstm.Model.from_onnx(g)
    del g.graph.output[:]
    g.graph.output.append(helper.make_tensor_value_info("Y2", TensorProto.FLOAT, None))
    assert len(stacklstm.Model.from_onnx(g).layers) == 2


@pytest.mark.parametrize("op, index, role", [("LSTM", 5, "initial_h"), ("LSTM", 6, "initial_c"),
                                             ("GRU", 5, "initial_h")])
def test_an_initial_state_fixed_in_the_graph_is_refused_unless_zeros(op, index, role):
    state = np.full((1, 2, 3), 0.5, np.float32)
    g = with_input(node_graph(op), index, "s0", state)
    with pytest.raises(ValueError, match="its %s \\('s0'\\) is a nonzero constant" % role):
        stacklstm.Model.from_onnx(g)
    zeros = with_input(node_graph(op), index, "s0", np.zeros_like(state))
    assert stacklstm.Model.from_onnx(zeros).layers == stacklstm.Model.from_onnx(
        node_graph(op)).layers
    as_input = with_input(node_graph(op), index, "s0")   # a graph input: given per call
    assert len(stacklstm.Model.from_onnx(as_input).layers) == 1


@pytest.mark.parametrize("value, refused", [(0.5, True), (0.0, False), (None, False)])
def test_an_initial_state_of_constant_of_shape_is_refused_unless_zeros(value, refused):
    g = with_input(node_graph("LSTM"), 5, "h0")
    del g.graph.input[-1]   # h0 is the ConstantOfShape's, not a graph input
    attrs = {} if value is None else {"value": numpy_helper.from_array(
        np.array([value], np.float32))}
    g.graph.initializer.append(numpy_helper.from_array(np.array([1, 2, 3], np.int64), "shp"))
    g.graph.node.insert(0, helper.make_node("ConstantOfShape", ["shp"], ["h0"], name="fill",
                                            **attrs))
    if refused:
        with pytest.raises(ValueError, match="its initial_h \\('h0'\\) is a nonzero constant"):
            stacklstm.Model.from_onnx(g)
    else:
        assert stacklstm.Model.from_onnx(g).layers == (Layer.lstm(3),)


def test_an_initial_state_concatenated_from_an_input_and_a_constant_is_refused():
    g = with_input(node_graph("GRU"), 5, "h0")
    del g.graph.input[-1]   # h0 is the Concat's
    g.graph.input.append(helper.make_tensor_value_info("h_in", TensorProto.FLOAT, None))
    g.graph.initializer.append(numpy_helper.from_array(np.full((1, 1, 3), 0.5, np.float32),
                                                       "h_fixed"))
    g.graph.node.insert(0, helper.make_node("Concat", ["h_in", "h_fixed"], ["h0"], axis=1))
    with pytest.raises(ValueError, match="its initial_h \\('h0'\\) is a nonzero constant"):
        stacklstm.Model.from_onnx(g)


def test_an_initial_state_computed_by_another_node_is_refused():
    g = with_input(node_graph("GRU"), 5, "h0")
    g.graph.node.insert(0, helper.make_node("Relu", ["h_in"], ["h0"], name="state_op"))
    with pytest.raises(ValueError, match="its initial_h \\('h0'\\) is computed by a Relu "
                                         "node 'state_op'"):
        stacklstm.Model.from_onnx(g)


def test_sequence_lens_fixed_in_the_graph_is_refused():
    g = with_input(node_graph("LSTM"), 4, "lens", np.array([5, 2], np.int32))
    with pytest.raises(ValueError, match="its sequence_lens \\('lens'\\) is a constant"):
        stacklstm.Model.from_onnx(g)


def test_sequence_lens_on_some_nodes_only_is_refused():
    g = with_second_node(with_input(node_graph("LSTM"), 4, "lens"))
    del g.graph.output[:]
    with pytest.raises(ValueError, match="node 'rnn1': its sequence_lens \\('', from none\\) "
                                         "differs from the first recurrent node's \\(from "
                                         "\\['lens'\\]\\)"):
        stacklstm.Model.from_onnx(g)


def test_weights_in_an_external_file_that_was_not_loaded_are_refused(tmp_path):
    g = node_graph("LSTM")
    path = str(tmp_path / "m.onnx")
    onnx.save_model(g, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="w.bin", size_threshold=0)
    with pytest.raises(ValueError, match="external file that was not loaded"):
        stacklstm.Model.from_onnx(onnx.load(path, load_external_data=False))
    from_path, inline = stacklstm.Model.from_onnx(path), stacklstm.Model.from_onnx(
        node_graph("LSTM"))   # (saving moved g's data out of g)
    for a, b in zip(from_path.export("onnx")[0], inline.export("onnx")[0]):
        assert np.array_equal(a, b)


def test_weights_that_are_graph_inputs_need_their_values():
    g = node_graph("GRU")
    del g.graph.initializer[1]   # R
    with pytest.raises(ValueError, match="input 'R' is neither an initializer"):
        stacklstm.Model.from_onnx(g)


def test_run_inputs_given_in_values_stay_inputs_of_a_run():
    # values may be a node test's whole feed: its initial_h is still Session.forward's
    g = with_input(node_graph("LSTM"), 5, "h0")
    values = {"R": numpy_helper.to_array(g.graph.initializer[1]),
              "h0": np.full((1, 2, 3), 0.5, np.float32)}
    del g.graph.initializer[1]   # R
    assert stacklstm.Model.from_onnx(g, values=values).layers == (Layer.lstm(3),)


def test_the_forward_lstm_reader_points_other_nodes_to_the_stack_reader():
    with pytest.raises(stacklstm.UnsupportedError, match="onnx_model_stack"):
        naming.onnx_model_layers(node_graph("GRU"))


def test_a_graph_without_recurrent_nodes_is_refused():
    g = helper.make_model(helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g",
                                            [], []))
    with pytest.raises(ValueError, match="no LSTM or GRU node"):
        stacklstm.Model.from_onnx(g)


# ---- writing ONNX graphs: naming.to_onnx ---------------------------------------------------

EXPORTABLE = [Layer.lstm(4, peepholes=True, direction="bidirectional"),
              Layer.gru(3, reset_after=False),
              Layer.gru(5, reset_after=True, direction="reverse"),
              Layer.lstm(2)]


@pytest.mark.parametrize("batch_major", [False, True], ids=["time-major", "batch-major"])
def test_an_exported_graph_runs_in_onnxruntime_with_the_librarys_numbers(batch_major, x):
    ort = pytest.importorskip("onnxruntime")
    lengths = np.array([5, 2], np.int32)
    with stacklstm.Model.random(3, layers=EXPORTABLE, seed=21, scale=0.7,
                                forget_bias=0.5) as m:
        proto = naming.to_onnx(m, batch_major=batch_major, sequence_lengths=True)
        with m.session(2, 5) as s:
            want, _ = s.forward(x, sequence_lengths=lengths)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = x if batch_major else np.ascontiguousarray(x.transpose(1, 0, 2))
    got = sess.run(["Y"], {"X": feed, "sequence_lens": lengths})[0]
    if not batch_major:
        got = got.transpose(1, 0, 2)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("batch_major, dims", [(False, ["T", "B"]), (True, ["B", "T"])])
def test_an_exported_graphs_declared_input_and_output_follow_its_layout(batch_major, dims):
    with stacklstm.Model.random(3, layers=[Layer.gru(4)], seed=2) as m:
        g = naming.to_onnx(m, batch_major=batch_major).graph
    for value, last in ((g.input[0], 3), (g.output[0], 4)):
        shape = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert shape == dims + [last], value.name


def test_convert_records_onnx_as_the_files_source_layout(tmp_path):
    from stacklstm import convert
    src, dst = str(tmp_path / "m.onnx"), str(tmp_path / "m.safetensors")
    onnx.save(node_graph("GRU"), src)
    convert.convert("onnx", src, dst)
    assert stacklstm.read_header(dst)[0]["source_layout"] == "onnx"


def test_an_exported_graph_reads_back_as_the_same_stack(x):
    with stacklstm.Model.random(3, layers=EXPORTABLE, seed=22, forget_bias=0.0) as m:
        with stacklstm.Model.from_onnx(naming.to_onnx(m)) as m2:
            assert m2.layers == m.layers
            for a, b in zip(m.export("canonical"), m2.export("canonical")):
                for k in a:
                    assert np.array_equal(a[k], b[k]), k


def test_a_layer_onnx_cannot_express_is_refused_naming_the_field():
    with stacklstm.Model.random(3, layers=[Layer.lstm(4, proj_size=2)]) as m:
        with pytest.raises(stacklstm.UnsupportedError, match=r"layers\[0\]\.proj_size"):
            naming.to_onnx(m)


def test_a_residual_layer_is_refused_by_to_onnx():
    with stacklstm.Model.random(3, layers=[Layer.gru(3, residual=True)]) as m:
        with pytest.raises(ValueError, match="residual"):
            naming.to_onnx(m)


def test_a_batchwise_layout_stack_chained_by_reshape_reads_as_one_stack(x):
    # onnxruntime refuses layout=1; onnx's own reference evaluator runs it.
    reference = pytest.importorskip("onnx.reference")
    rng = np.random.default_rng(8)
    H1, H2 = 4, 3
    inits = [numpy_helper.from_array(rng.uniform(-.5, .5, shape).astype(np.float32), name)
             for name, shape in (("W1", (2, 3 * H1, 3)), ("R1", (2, 3 * H1, H1)),
                                 ("W2", (1, 4 * H2, 2 * H1)), ("R2", (1, 4 * H2, H2)))]
    inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape"))
    nodes = [helper.make_node("GRU", ["X", "W1", "R1"], ["Y1"], hidden_size=H1, layout=1,
                              direction="bidirectional", linear_before_reset=1, name="g"),
             helper.make_node("Reshape", ["Y1", "shape"], ["X2"]),
             helper.make_node("LSTM", ["X2", "W2", "R2"], ["Y2"], hidden_size=H2, layout=1,
                              name="l")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, [2, 5, 3])], [helper.make_tensor_value_info(
            "Y2", TensorProto.FLOAT, None)], initializer=inits)
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    with stacklstm.Model.from_onnx(proto) as m:
        assert m.layers == (Layer.gru(H1, reset_after=True, direction="bidirectional"),
                            Layer.lstm(H2))
        got = our_numbers(m, x)
    want = reference.ReferenceEvaluator(proto).run(None, {"X": x})[0]   # [B, T, 1, H2]
    np.testing.assert_allclose(got, want[:, :, 0], atol=ATOL, rtol=0)
