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
