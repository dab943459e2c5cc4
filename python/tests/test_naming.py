"""Framework naming conventions and the model file through the package."""
import numpy as np
import pytest

import stacklstm
from stacklstm import naming
from stacklstm import Layer


def torch_like_state_dict(rng, D, H, L):
    sd, I = {}, D
    for l in range(L):
        sd["weight_ih_l%d" % l] = rng.standard_normal((4 * H, I)).astype(np.float32)
        sd["weight_hh_l%d" % l] = rng.standard_normal((4 * H, H)).astype(np.float32)
        sd["bias_ih_l%d" % l] = rng.standard_normal(4 * H).astype(np.float32)
        sd["bias_hh_l%d" % l] = rng.standard_normal(4 * H).astype(np.float32)
        I = H
    return sd


def same_numbers(a, b):
    with a.session(2, 3) as sa, b.session(2, 3) as sb:
        x = np.random.default_rng(5).random((2, 3, a.input_size))
        return np.array_equal(sa.forward(x)[0], sb.forward(x)[0])


def test_a_multi_layer_torch_state_dict_imports_in_layer_order():
    sd = torch_like_state_dict(np.random.default_rng(0), 3, 4, 3)
    m = stacklstm.Model.from_torch_state_dict(sd)
    assert m.input_size == 3 and m.hidden_sizes == (4, 4, 4) and m.forget_bias == 0
    layers = [[sd["%s_l%d" % (n, l)] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
              for l in range(3)]
    assert same_numbers(m, stacklstm.Model.from_weights(layers, "pytorch"))


def test_a_module_list_of_torch_lstms_with_different_sizes_imports():
    rng = np.random.default_rng(1)
    sd = {}
    for k, (I, H) in enumerate([(3, 5), (5, 2)]):
        for n, v in torch_like_state_dict(rng, I, H, 1).items():
            sd["rnn.%d.%s" % (k, n)] = v
    sd["head.weight"] = np.zeros((1, 2))
    m = stacklstm.Model.from_torch_state_dict(sd, prefix="rnn.")
    assert m.hidden_sizes == (5, 2)


def test_a_bidirectional_torch_layer_without_all_its_reverse_tensors_is_refused():
    sd = torch_like_state_dict(np.random.default_rng(0), 3, 4, 1)
    sd["weight_ih_l0_reverse"] = sd["weight_ih_l0"]
    with pytest.raises(ValueError, match="weight_hh_reverse is missing"):
        stacklstm.Model.from_torch_state_dict(sd)


@pytest.mark.parametrize("drop", ["bias_hh_l1", "bias_ih_l0"])
def test_a_torch_layer_with_one_bias_missing_is_refused_naming_it(drop):
    sd = torch_like_state_dict(np.random.default_rng(0), 3, 4, 2)
    del sd[drop]
    with pytest.raises(ValueError, match=drop[:-3] + " is missing"):
        stacklstm.Model.from_torch_state_dict(sd)
    with pytest.raises(ValueError, match=drop[:-3] + " is missing"):
        naming.torch_state_dict_layers(sd)


@pytest.mark.parametrize("key, shape, what", [
    ("weight_hr_l0", (2, 4), "proj_size"), ("weight_ih_l0_reverse", (16, 3), "bidirectional")],
    ids=["projection", "reverse"])
def test_the_basic_torch_reader_refuses_what_it_would_drop(key, shape, what):
    sd = dict(torch_like_state_dict(np.random.default_rng(0), 3, 4, 1),
              **{key: np.zeros(shape, np.float32)})
    with pytest.raises(ValueError, match="%s: .*%s.*torch_state_dict_stack" % (key, what)):
        naming.torch_state_dict_layers(sd)


def test_torch_keys_outside_the_prefix_are_not_read_even_of_the_same_length():
    enc = torch_like_state_dict(np.random.default_rng(3), 3, 5, 2)
    dec = torch_like_state_dict(np.random.default_rng(4), 3, 4, 2)
    sd = dict({"dec." + k: v for k, v in dec.items()}, **{"enc." + k: v for k, v in enc.items()})
    assert same_numbers(stacklstm.Model.from_torch_state_dict(sd, prefix="dec."),
                        stacklstm.Model.from_torch_state_dict(dec))
    for got, want in zip(naming.torch_state_dict_layers(sd, prefix="dec."),
                         naming.torch_state_dict_layers(dec)):
        for a, b in zip(got, want):
            assert np.array_equal(a, b)


def test_a_torch_layer_without_either_bias_gets_zeros():
    sd = torch_like_state_dict(np.random.default_rng(0), 3, 4, 2)
    zero = dict(sd, bias_ih_l1=np.zeros(16, np.float32), bias_hh_l1=np.zeros(16, np.float32))
    del sd["bias_ih_l1"], sd["bias_hh_l1"]
    assert same_numbers(stacklstm.Model.from_torch_state_dict(sd),
                        stacklstm.Model.from_torch_state_dict(zero))


def test_a_torch_state_dict_missing_a_middle_layer_is_refused_not_a_shorter_stack():
    sd = torch_like_state_dict(np.random.default_rng(0), 4, 4, 3)
    sd = {k: v for k, v in sd.items() if not k.endswith("_l1")}
    with pytest.raises(ValueError, match=r"layer numbers \(_l<k>\) \[0, 2\] are not 0..1"):
        stacklstm.Model.from_torch_state_dict(sd)
    with pytest.raises(ValueError, match=r"\[0, 2\] are not 0..1"):
        naming.torch_state_dict_layers(sd)


def test_a_module_list_missing_a_module_is_refused_not_a_shorter_stack():
    one = torch_like_state_dict(np.random.default_rng(0), 4, 4, 1)
    sd = {"%d.%s" % (k, n): v for k in (0, 2) for n, v in one.items()}
    with pytest.raises(ValueError, match=r"module numbers \[0, 2\] have a gap"):
        stacklstm.Model.from_torch_state_dict(sd)


def test_lstms_at_a_later_position_of_a_sequential_import():
    # nn.Sequential(Embedding, LSTM, Linear): the LSTM's keys are "1.weight_ih_l0", ...
    one = torch_like_state_dict(np.random.default_rng(0), 4, 4, 1)
    sd = dict({"1.%s" % n: v for n, v in one.items()}, **{"0.weight": np.zeros((9, 4))})
    assert same_numbers(stacklstm.Model.from_torch_state_dict(sd),
                        stacklstm.Model.from_torch_state_dict(one))


def test_a_misspelt_tensor_name_in_a_layers_dict_is_refused_not_dropped():
    rng = np.random.default_rng(1)
    layer = {"kernel": rng.random((3 + 4, 16)), "bias": rng.random(16), "bais": rng.random(16)}
    with pytest.raises(ValueError, match=r"layer 0: unknown \['bais'\]"):
        stacklstm.Model.from_weights([layer], "tf")


def test_a_tf_scope_selects_whole_name_components_not_a_string_prefix():
    v = tf_vars(np.random.default_rng(2), 3, [4])
    w = tf_vars(np.random.default_rng(3), 3, [5])
    both = dict(v, **{"rnn_1/" + k[len("rnn/"):]: a for k, a in w.items()})
    for scope in ("rnn", "rnn/", "rnn/multi_rnn_cell"):
        assert stacklstm.Model.from_tf_variables(both, scope=scope).hidden_sizes == (4,)
        assert naming.tf_variable_layers(both, scope=scope)[0][1].shape == (16,)
    assert stacklstm.Model.from_tf_variables(both, scope="rnn_1").hidden_sizes == (5,)
    with pytest.raises(ValueError, match="several RNNs"):
        stacklstm.Model.from_tf_variables(both)


def tf_vars(rng, D, hs, old=False):
    v, I = {}, D
    for k, H in enumerate(hs):
        base = "rnn/multi_rnn_cell/cell_%d/basic_lstm_cell/" % k
        v[base + ("weights" if old else "kernel")] = rng.standard_normal((I + H, 4 * H))
        v[base + ("biases" if old else "bias")] = rng.standard_normal(4 * H)
        v[base + "kernel/Adam"] = np.zeros(1)   # optimizer slot: ignored
        I = H
    return v


def test_tf_sharded_variables_in_a_dict_are_refused_not_dropped():
    v = {k.replace("basic_lstm_cell", "lstm_cell"): a
         for k, a in tf_vars(np.random.default_rng(2), 3, [4]).items()}
    base = "rnn/multi_rnn_cell/cell_0/lstm_cell/"
    v[base + "projection/kernel/part_0"] = np.zeros((2, 2))
    v[base + "projection/kernel/part_1"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="projection/kernel/part_0: a sharded variable"):
        stacklstm.Model.from_tf_variables(v)


def test_tf_variables_of_a_cell_made_with_a_name_are_refused_not_dropped():
    v = tf_vars(np.random.default_rng(2), 3, [4])
    rng = np.random.default_rng(3)
    v["rnn/multi_rnn_cell/cell_1/top/kernel"] = rng.standard_normal((8, 16))
    v["rnn/multi_rnn_cell/cell_1/top/bias"] = rng.standard_normal(16)
    for read in (stacklstm.Model.from_tf_variables, naming.tf_variable_layers):
        for scope in (None, "rnn", "rnn/multi_rnn_cell"):
            with pytest.raises(ValueError, match="cell_1/top/(kernel|bias): a variable of "
                                                 "cell_1 that this reader does not read"):
                read(v, scope=scope)


def test_the_basic_tf_reader_refuses_a_gru_layer_instead_of_dropping_it():
    v = tf_vars(np.random.default_rng(2), 3, [4])
    v["rnn/multi_rnn_cell/cell_1/gru_cell/gates/kernel"] = np.zeros((8, 8))
    with pytest.raises(ValueError, match="cell_1/gru_cell/gates/kernel: a variable of cell_1"):
        naming.tf_variable_layers(v)


def test_tf_checkpoint_names_new_and_old_spellings_give_the_same_model():
    new = tf_vars(np.random.default_rng(2), 3, [4, 2])
    old = tf_vars(np.random.default_rng(2), 3, [4, 2], old=True)
    old = {k: v for k, v in old.items() if not k.endswith("Adam")}
    a = stacklstm.Model.from_tf_variables(new, forget_bias=0.5)
    b = stacklstm.Model.from_tf_variables(old, forget_bias=0.5)
    assert a.hidden_sizes == (4, 2) and a.forget_bias == 0.5
    assert same_numbers(a, b)


def test_tf_peephole_variables_need_all_three_diagonals():
    v = {k.replace("basic_lstm_cell", "lstm_cell"): a
         for k, a in tf_vars(np.random.default_rng(2), 3, [4]).items()}
    v["rnn/multi_rnn_cell/cell_0/lstm_cell/w_f_diag"] = np.zeros(4)
    with pytest.raises(ValueError, match="cell_0: peepholes need w_i_diag, w_f_diag and "
                                         "w_o_diag, got \\['w_f_diag'\\]"):
        stacklstm.Model.from_tf_variables(v)


def test_tf_variables_of_two_cell_types_in_one_layer_are_refused():
    v = tf_vars(np.random.default_rng(2), 3, [4])
    v["rnn/multi_rnn_cell/cell_0/lstm_cell/w_f_diag"] = np.zeros(4)
    with pytest.raises(ValueError, match="cell_0: variables of several cell types"):
        stacklstm.Model.from_tf_variables(v)


def test_tf_readers_refuse_cell_numbers_with_a_gap_not_a_shorter_stack():
    v = tf_vars(np.random.default_rng(2), 3, [4, 4, 4])
    v = {k: a for k, a in v.items() if "/cell_1/" not in k}
    for read in (stacklstm.Model.from_tf_variables, naming.tf_variable_layers):
        with pytest.raises(ValueError, match=r"cell numbers \[0, 2\] are not 0..1"):
            read(v)


def test_the_basic_tf_reader_refuses_a_projection_not_drops_it():
    v = {k.replace("basic_lstm_cell", "lstm_cell"): a
         for k, a in tf_vars(np.random.default_rng(2), 3, [4]).items()}
    v["rnn/multi_rnn_cell/cell_0/lstm_cell/projection/kernel"] = np.zeros((4, 2))
    with pytest.raises(ValueError, match="projection/kernel: LSTMCell with num_proj"):
        naming.tf_variable_layers(v)


def test_the_basic_tf_reader_needs_a_scope_for_several_rnns():
    v = tf_vars(np.random.default_rng(2), 3, [4])
    both = dict(v, **{"rnn_1/" + k[len("rnn/"):]: a for k, a in v.items()})
    with pytest.raises(ValueError, match="several RNNs"):
        naming.tf_variable_layers(both)


def test_a_cell_made_with_a_name_outside_the_scope_does_not_stop_the_scopes_reading():
    v = tf_vars(np.random.default_rng(2), 3, [4])
    v["other/multi_rnn_cell/cell_0/top/kernel"] = np.zeros((8, 16))
    assert stacklstm.Model.from_tf_variables(v, scope="rnn").hidden_sizes == (4,)
    assert naming.tf_variable_layers(v, scope="rnn")[0][1].shape == (16,)


def test_an_lstm_variable_name_under_a_gru_cell_is_refused_naming_it():
    v = {k.replace("basic_lstm_cell", "gru_cell"): a
         for k, a in tf_vars(np.random.default_rng(2), 3, [4]).items()}
    with pytest.raises(ValueError, match="gru_cell/kernel: kernel is not a variable of a "
                                         "gru_cell"):
        stacklstm.Model.from_tf_variables(v)


def test_a_tf_bidirectional_layer_with_fw_variables_only_is_refused():
    base = "stack_bidirectional_rnn/cell_0/bidirectional_rnn/fw/lstm_cell/"
    v = {base + "kernel": np.zeros((7, 16)), base + "bias": np.zeros(16)}
    with pytest.raises(ValueError, match=r"cell_0: a bidirectional layer needs both fw/ and "
                                         r"bw/ variables .*got \['fw'\]"):
        stacklstm.Model.from_tf_variables(v)


def test_tf_names_with_a_trailing_colon_0_read_as_without():
    v = tf_vars(np.random.default_rng(2), 3, [4, 2])
    a = stacklstm.Model.from_tf_variables(v)
    b = stacklstm.Model.from_tf_variables({k + ":0": x for k, x in v.items()})
    assert a.layers == b.layers and same_numbers(a, b)


def test_tf_names_of_a_bidirectional_stack_read_back_as_the_same_model():
    layers = [Layer.lstm(4, direction="bidirectional"), Layer.gru(3, direction="bidirectional")]
    with stacklstm.Model.random(3, layers=layers, seed=5, scale=0.8, forget_bias=0.0) as m:
        v = naming.to_tf_variables(m)
        w = m.export("tf")[0]
        assert np.array_equal(
            v["stack_bidirectional_rnn/cell_0/bidirectional_rnn/bw/basic_lstm_cell/kernel"],
            w["bw/kernel"])
        with stacklstm.Model.from_tf_variables(v, forget_bias=0.0) as back:
            assert back.layers == m.layers and same_numbers(m, back)


def test_export_then_import_is_the_identity_in_every_format():
    m = stacklstm.Model.random(3, [4, 2], seed=4, forget_bias=0.25)
    for fmt in stacklstm.FORMATS:
        w = m.export(fmt)
        back = stacklstm.Model.from_weights(w, fmt, forget_bias=m.forget_bias)
        assert same_numbers(m, back), fmt


def test_model_file_round_trip_keeps_architecture_and_source_layout(tmp_path):
    m = stacklstm.Model.random(3, [4, 2], seed=4, forget_bias=0.25)
    path = str(tmp_path / "m.safetensors")
    m.save(path, source_layout="pytorch")
    meta, tensors = stacklstm.read_header(path)
    assert meta["hidden_sizes"] == "4,2" and meta["source_layout"] == "pytorch"
    assert sorted(tensors) == ["layers.%d.%s" % (l, n) for l in range(2)
                               for n in ("W_h", "W_x", "b")]
    back = stacklstm.Model.load(path)
    assert back.forget_bias == 0.25 and same_numbers(m, back)


def test_a_file_written_by_the_safetensors_package_loads(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    m = stacklstm.Model.random(3, [4], seed=4)
    w = m.export("canonical")[0]
    path = str(tmp_path / "ext.safetensors")
    st.save_file({"layers.0.%s" % k: v for k, v in w.items()}, path,
                 metadata={"format": "stacklstm", "format_version": "1", "input_size": "3",
                           "hidden_sizes": "4", "forget_bias": "1"})
    assert same_numbers(m, stacklstm.Model.load(path))


def test_onnx_model_converts_and_rejects_peepholes(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper, TensorProto
    rng = np.random.default_rng(3)
    H, I = 3, 2
    W = rng.standard_normal((1, 4 * H, I)).astype(np.float32)
    R = rng.standard_normal((1, 4 * H, H)).astype(np.float32)
    B = rng.standard_normal((1, 8 * H)).astype(np.float32)

    def graph(P=None):
        inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
                 numpy_helper.from_array(B, "B")]
        ins = ["X", "W", "R", "B"]
        if P is not None:
            inits.append(numpy_helper.from_array(P, "P"))
            ins += ["", "", "", "P"]
        node = helper.make_node("LSTM", ins, ["Y"], hidden_size=H)
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info(
            "X", TensorProto.FLOAT, [1, 1, I])], [helper.make_tensor_value_info(
                "Y", TensorProto.FLOAT, [1, 1, 1, H])], initializer=inits)
        return helper.make_model(g)

    layers = naming.onnx_model_layers(graph())
    m = stacklstm.Model.from_weights(layers, "onnx")
    assert same_numbers(m, stacklstm.Model.from_weights([[W, R, B]], "onnx"))
    assert naming.onnx_model_layers(graph(np.zeros((1, 3 * H), np.float32)))
    with pytest.raises(stacklstm.UnsupportedError, match="peephole"):
        naming.onnx_model_layers(graph(np.ones((1, 3 * H), np.float32)))


def test_torch_state_dict_and_tf_names_round_trip():
    m = stacklstm.Model.random(3, [4, 4], seed=6, forget_bias=0.5)
    sd = naming.to_torch_state_dict(m)
    assert sorted(sd)[:2] == ["bias_hh_l0", "bias_hh_l1"]
    assert same_numbers(m, stacklstm.Model.from_torch_state_dict(sd))
    m2 = stacklstm.Model.random(3, [4, 2], seed=6, forget_bias=0.5)
    assert "1.weight_ih_l0" in naming.to_torch_state_dict(m2)
    assert same_numbers(m2, stacklstm.Model.from_torch_state_dict(naming.to_torch_state_dict(m2)))
    for old in (False, True):
        v = naming.to_tf_variables(m2, old_names=old)
        assert same_numbers(m2, stacklstm.Model.from_tf_variables(v, forget_bias=0.5))


def test_tf_variable_layers_refuses_a_cell_given_in_both_spellings():
    v = naming.to_tf_variables(stacklstm.Model.random(3, [4], seed=1))
    k = "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/"
    v[k + "weights"] = np.zeros_like(v[k + "kernel"])
    with pytest.raises(ValueError, match="twice"):
        naming.tf_variable_layers(v)


def test_tf_variable_layers_refuses_peepholes_not_drops_them():
    m = stacklstm.Model.random(3, layers=[Layer.lstm(4, peepholes=True)], seed=1)
    with pytest.raises(ValueError, match="peepholes"):
        naming.tf_variable_layers(naming.to_tf_variables(m))


def test_tf_variable_stack_refuses_a_bidirectional_layer_whose_bw_has_peepholes_and_fw_not():
    m = stacklstm.Model.random(
        3, layers=[Layer.lstm(4, direction="bidirectional", peepholes=True)], seed=1)
    v = naming.to_tf_variables(m)
    for k in [k for k in v if "/fw/" in k and "_diag" in k]:
        del v[k]
    with pytest.raises(ValueError, match="fw has"):
        naming.tf_variable_stack(v)


def test_to_tf_variables_old_names_are_weights_and_biases():
    v = naming.to_tf_variables(stacklstm.Model.random(3, [4], seed=1), old_names=True)
    assert sorted(v) == ["rnn/multi_rnn_cell/cell_0/basic_lstm_cell/biases",
                         "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/weights"]


def test_to_tf_variables_of_a_bidirectional_stack_defaults_to_stack_bidirectional_rnn():
    m = stacklstm.Model.random(3, layers=[Layer.lstm(4, direction="bidirectional")], seed=1)
    v = naming.to_tf_variables(m)
    assert all(k.startswith("stack_bidirectional_rnn/cell_0/bidirectional_rnn/") for k in v)


def test_to_tf_variables_names_a_peephole_lstm_an_lstm_cell_as_tf_does():
    m = stacklstm.Model.random(3, layers=[Layer.lstm(4, peepholes=True)], seed=1)
    v = naming.to_tf_variables(m)   # LSTMCell(use_peepholes=True): lstm_cell/w_*_diag
    assert sorted(v) == ["rnn/multi_rnn_cell/cell_0/lstm_cell/" + n
                         for n in ("bias", "kernel", "w_f_diag", "w_i_diag", "w_o_diag")]


def test_to_tf_variables_refuses_a_stack_tf_has_no_names_for():
    for layers in ([Layer.lstm(4, direction="reverse")],
                   [Layer.lstm(4), Layer.lstm(4, direction="bidirectional")]):
        with stacklstm.Model.random(3, layers=layers, seed=1) as m:
            with pytest.raises(ValueError, match="this model's directions are"):
                naming.to_tf_variables(m)


def test_to_torch_state_dict_refuses_one_module_for_layers_of_different_sizes():
    m = stacklstm.Model.random(3, [4, 5], seed=1)
    with pytest.raises(ValueError, match="one kind and size"):
        naming.to_torch_state_dict(m, single_module=True)


def test_to_torch_state_dict_of_layers_differing_in_proj_size_is_a_module_list():
    layers = [Layer.lstm(4, proj_size=2), Layer.lstm(4, proj_size=3)]
    with stacklstm.Model.random(3, layers=layers, seed=1) as m:
        sd = naming.to_torch_state_dict(m)
        assert sorted(k for k in sd if "weight_hr" in k) == ["0.weight_hr_l0", "1.weight_hr_l0"]
        with pytest.raises(ValueError, match="one nn.LSTM / nn.GRU needs layers of one kind"):
            naming.to_torch_state_dict(m, single_module=True)


def test_a_bidirectional_projected_state_dict_missing_weight_hr_reverse_is_a_value_error():
    torch = pytest.importorskip("torch")
    sd = torch.nn.LSTM(3, 4, proj_size=2, bidirectional=True).state_dict()
    del sd["weight_hr_l0_reverse"]
    with pytest.raises(ValueError, match="weight_hr_reverse"):
        naming.torch_state_dict_stack(sd)
