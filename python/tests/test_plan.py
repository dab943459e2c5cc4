"""The session's plan (Session.describe) and keyed settings (config=)."""
import pytest

import stacklstm


@pytest.fixture
def model():
    return stacklstm.Model.random(4, [3, 2], seed=1)


def test_describe_json_names_the_backend_and_every_layer(model):
    with model.session(max_batch=2, max_time=3, cpu_path="reference") as s:
        plan = s.describe("json")
    assert plan["backend"] == "cpu"
    assert plan["path"] == "reference"
    assert [layer["path"] for layer in plan["layers"]] == ["reference", "reference"]


def test_describe_text_has_one_line_per_layer(model):
    with model.session(max_batch=2, max_time=3) as s:
        text = s.describe()
    assert "layer 0: " in text and "layer 1: " in text


def test_config_as_a_dict_or_a_string_is_accepted(model):
    with model.session(2, 3, config={"cuda.graphs": "off", "cuda.chunk": 4}):
        pass
    with model.session(2, 3, config="cuda.fused=never; cpu.kernel=auto"):
        pass


def test_an_unknown_config_key_is_refused_by_the_library(model):
    with pytest.raises(stacklstm.InvalidArgumentError, match="unknown key \"cpu.kernal\""):
        model.session(2, 3, config={"cpu.kernal": "avx2"})


def test_a_config_of_the_wrong_type_is_refused(model):
    with pytest.raises(TypeError):
        model.session(2, 3, config=["cpu.kernel=avx2"])
    with pytest.raises(TypeError):
        model.session(2, 3, config={"cuda.graphs": True})


def test_a_config_with_a_nul_character_is_refused_not_cut():
    m = stacklstm.Model.random(3, [4], seed=1)
    with pytest.raises(ValueError, match="NUL"):
        m.session(1, 1, config="\0cpu.no_such_key=1")


def test_allow_tf32_reaches_the_library_which_refuses_it_beside_an_explicit_fp32():
    m = stacklstm.Model.random(3, [4], seed=1)
    with pytest.raises(stacklstm.InvalidArgumentError, match="allow_tf32 is 1"):
        m.session(1, 1, allow_tf32=True, precision="fp32")
    with m.session(1, 1, allow_tf32=True) as s:   # the CPU ignores it under the default
        assert s.describe("json")["precision"] == "fp32"
