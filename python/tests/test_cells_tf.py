"""TF 1.x checkpoints of every cell TF has (issue 20): MultiRNNCell stacks of LSTMCell
(peepholes, cell_clip, num_proj, proj_clip), GRUCell and ResidualWrapper(BasicLSTMCell), and
stack_bidirectional_dynamic_rnn stacks, read by name (Model.from_tf_variables) and written back
(naming.to_tf_variables). The numbers are TF's own: tf.compat.v1 cells run in float64 by the
tensorflow-cpu package (with tf_keras, TF_USE_LEGACY_KERAS=1); ours in float32."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")
try:
    tf.compat.v1.nn.rnn_cell.LSTMCell
except Exception as e:   # Keras 3 without tf_keras: the v1 cells are gone
    pytest.skip("tf.compat.v1 cells are not usable here (%s)" % e, allow_module_level=True)

import stacklstm   # noqa: E402
from stacklstm import BidirectionalState, Layer, naming   # noqa: E402

ATOL = 2e-5
v1 = tf.compat.v1
rc = v1.nn.rnn_cell


def tf_graph(build, x, lengths, seed):
    """Runs build(x_tensor, seq) -> (outputs, flat final state tensors) in float64 after
    giving every variable uniform values in [-0.6, 0.6]; returns (outputs, finals, {name:
    value})."""
    graph = tf.Graph()
    with graph.as_default():
        xt = tf.constant(x, dtype=tf.float64)
        seq = tf.constant(lengths, dtype=tf.int32) if lengths is not None else None
        y, finals = build(xt, seq)
        rng = np.random.default_rng(seed)
        assigns = [v1.assign(v, rng.uniform(-0.6, 0.6, v.shape.as_list()))
                   for v in v1.global_variables()]
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(assigns)
            out, fin = sess.run([y, finals])
            names = {v.name: sess.run(v) for v in v1.global_variables()}
    return out, fin, names


def flat_state(state, layers):
    out = []
    for s, L in zip(state, layers):
        for d in ([s.fw, s.bw] if isinstance(s, BidirectionalState) else [s]):
            out += [d.c, d.h] if L.cell == "lstm" else [d]
    return out


def ours(model, x, lengths):
    with model.session(x.shape[0], x.shape[1]) as s:
        return s.forward(x.astype(np.float32), sequence_lengths=lengths)


@pytest.fixture
def x():
    return np.random.default_rng(4).standard_normal((3, 6, 4))


LENGTHS = [6, 0, 3]
FORWARD = [Layer.lstm(5, peepholes=True, cell_clip=0.4, proj_size=3, proj_clip=0.3),
           Layer.gru(4),
           Layer.lstm(4, residual=True)]


def forward_stack(forget_bias):
    def build(xt, seq):
        cells = [rc.LSTMCell(5, use_peepholes=True, cell_clip=0.4, num_proj=3, proj_clip=0.3,
                             forget_bias=forget_bias, dtype=tf.float64),
                 rc.GRUCell(4, dtype=tf.float64),
                 rc.ResidualWrapper(rc.BasicLSTMCell(4, forget_bias=forget_bias,
                                                     dtype=tf.float64))]
        y, st = v1.nn.dynamic_rnn(rc.MultiRNNCell(cells), xt, sequence_length=seq,
                                  dtype=tf.float64)
        return y, [st[0].c, st[0].h, st[1], st[2].c, st[2].h]
    return build


def bidirectional_stack(xt, seq):
    y = xt
    finals = []
    with v1.variable_scope("stack_bidirectional_rnn"):
        for k, make in enumerate([lambda: rc.LSTMCell(5, num_proj=2, dtype=tf.float64),
                                  lambda: rc.GRUCell(3, dtype=tf.float64)]):
            with v1.variable_scope("cell_%d" % k):
                (yf, yb), (sf, sb) = v1.nn.bidirectional_dynamic_rnn(
                    make(), make(), y, sequence_length=seq, dtype=tf.float64)
            y = tf.concat([yf, yb], axis=2)
            for s in (sf, sb):
                finals += [s.c, s.h] if k == 0 else [s]
    return y, finals


BIDIRECTIONAL = [Layer.lstm(5, direction="bidirectional", proj_size=2),
                 Layer.gru(3, direction="bidirectional")]


def test_a_multirnncell_checkpoint_shows_cells_sizes_peepholes_and_projection(x):
    _, _, names = tf_graph(forward_stack(1.0), x, None, 1)
    layers, _ = naming.tf_variable_stack(names)
    assert layers == [Layer.lstm(5, peepholes=True, proj_size=3), Layer.gru(4),
                      Layer.lstm(4)]


def test_a_multirnncell_stack_gives_tfs_numbers(x):
    out, fin, names = tf_graph(forward_stack(0.5), x, LENGTHS, 2)
    with stacklstm.Model.from_tf_variables(names, forget_bias=0.5, layers=FORWARD) as m:
        y, state = ours(m, x, LENGTHS)
        np.testing.assert_allclose(y, out, atol=ATOL, rtol=0)
        for got, want in zip(flat_state(state, m.layers), fin):
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_a_stack_bidirectional_dynamic_rnn_gives_tfs_numbers(x):
    out, fin, names = tf_graph(bidirectional_stack, x, LENGTHS, 3)
    with stacklstm.Model.from_tf_variables(names) as m:
        assert list(m.layers) == BIDIRECTIONAL
        y, state = ours(m, x, LENGTHS)
        np.testing.assert_allclose(y, out, atol=ATOL, rtol=0)
        for got, want in zip(flat_state(state, m.layers), fin):
            np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("build, layers", [(forward_stack(1.0), FORWARD),
                                           (bidirectional_stack, BIDIRECTIONAL)],
                         ids=["multirnncell", "stack-bidirectional"])
def test_to_tf_variables_gives_back_tfs_names_and_values(build, layers, x):
    _, _, names = tf_graph(build, x, None, 5)
    with stacklstm.Model.from_tf_variables(names, layers=layers) as m:
        back = naming.to_tf_variables(m)
    want = {k[:-2]: v for k, v in names.items()}
    assert sorted(back) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(back[k], want[k].astype(np.float32), err_msg=k)


def test_given_layers_must_agree_with_the_checkpoint(x):
    _, _, names = tf_graph(forward_stack(1.0), x, None, 6)
    wrong = [Layer.lstm(5, proj_size=3)] + FORWARD[1:]   # the checkpoint has peepholes
    with pytest.raises(ValueError, match=r"layers\[0\] is .* but the variables hold"):
        stacklstm.Model.from_tf_variables(names, layers=wrong)
