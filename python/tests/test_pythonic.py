"""Python ergonomics (issue 16, item 3): repr, pickling and copying, the typing marker,
torch staying optional."""
import copy
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import stacklstm

PKG = os.path.dirname(os.path.abspath(stacklstm.__file__))
# Every module: each public function (dunder methods included) is annotated, parameters and
# return (checked below), and mypy must find nothing in them.
TYPED = ["model.py", "layers.py", "state.py", "naming.py", "convert.py", "safetensors_header.py",
         "_ints.py", "torch.py", "streams.py", "errors.py", "_lib.py", "batcher.py", "cli.py",
         "__init__.py", os.path.join("ray", "data.py"), os.path.join("ray", "serve.py")]
CHECKED = TYPED


@pytest.fixture
def model():
    with stacklstm.Model.random(3, [5, 4], seed=11, forget_bias=0.5) as m:
        yield m


def outputs(m):
    x = np.random.default_rng(2).standard_normal((2, 6, 3)).astype(np.float32)
    with m.session(2, 6) as s:
        return s.forward(x, packed_state=True)


def test_model_repr_gives_the_architecture_and_no_weights(model):
    r = repr(model)
    assert r == "stacklstm.Model(input_size=3, hidden_sizes=[5, 4], forget_bias=0.5)"
    model.close()
    assert repr(model).endswith(", closed)")


def test_session_repr_gives_architecture_backend_and_maxima(model):
    s = model.session(8, 100)
    assert repr(s) == ("stacklstm.Session(input_size=3, hidden_sizes=[5, 4], backend='cpu', "
                       "max_batch=8, max_time=100)")
    s.close()
    assert repr(s).endswith(", closed)")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_model_pickles_to_the_same_model_bitwise(model, protocol):
    again = pickle.loads(pickle.dumps(model, protocol=protocol))
    assert again is not model and again._h.value != model._h.value
    assert again.to_bytes() == model.to_bytes()
    (o1, f1), (o2, f2) = outputs(model), outputs(again)
    assert np.array_equal(o1, o2) and np.array_equal(f1, f2)
    assert repr(again) == repr(model)


def test_a_model_pickles_through_its_safetensors_image(model):
    fn, args = model.__reduce_ex__(4)
    assert fn == stacklstm.Model.from_bytes and args == (model.to_bytes(),)


def test_a_copied_model_owns_its_own_handle(model):
    for c in (copy.copy(model), copy.deepcopy(model)):
        assert c._h.value != model._h.value and c.to_bytes() == model.to_bytes()
        c.close()
    assert outputs(model)[0].shape == (2, 6, 4)   # the original is still open


def test_a_closed_model_refuses_to_pickle(model):
    model.close()
    with pytest.raises(stacklstm.InvalidArgumentError, match="closed"):
        pickle.dumps(model)


def test_a_session_refuses_to_pickle_or_copy(model):
    with model.session(1, 1) as s:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(s)
        with pytest.raises(TypeError, match="cannot be copied"):
            copy.copy(s)


def test_the_package_carries_the_py_typed_marker():
    assert os.path.isfile(os.path.join(PKG, "py.typed"))


def test_public_functions_of_the_typed_modules_are_annotated():
    import ast
    missing = []
    for name in TYPED:
        with open(os.path.join(PKG, name)) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name.startswith("_") and not node.name.startswith("__"):
                    continue
                if node.returns is None:
                    missing.append("%s:%d %s" % (name, node.lineno, node.name))
                a = node.args
                params = a.posonlyargs + a.args + a.kwonlyargs
                if params and params[0].arg in ("self", "cls"):
                    params = params[1:]
                params += [p for p in (a.vararg, a.kwarg) if p is not None]
                missing += ["%s:%d %s(%s)" % (name, node.lineno, node.name, p.arg)
                            for p in params if p.annotation is None]
    assert not missing, missing


def test_mypy_finds_nothing_in_the_package():
    pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")
    r = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent",
                        "--ignore-missing-imports"] + [os.path.join(PKG, n) for n in CHECKED],
                       capture_output=True, text=True, cwd=os.path.dirname(PKG))
    assert r.returncode == 0, r.stdout + r.stderr


def test_importing_stacklstm_does_not_import_torch():
    code = ("import sys, stacklstm; m = stacklstm.Model.random(2, [3]); "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=os.path.dirname(PKG)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


# ---- the per-call fast path: cached argument structs (bench/python/overhead.py) ----------

def fresh(m, x, **kw):
    B, T = (x.shape[1], x.shape[0]) if kw.get("time_major") else x.shape[:2]
    with m.session(B, T) as s:
        return s.forward(x, packed_state=True, **kw)


def test_more_call_shapes_than_the_cache_holds_give_fresh_session_numbers(model):
    x = np.random.default_rng(5).standard_normal((2, 70, 3)).astype(np.float32)
    with model.session(2, 70) as s:
        for T in list(range(1, 71)) + [1, 2, 3]:   # past the 64-shape cache and back
            got = s.forward(x[:, :T], packed_state=True)
            want = fresh(model, np.ascontiguousarray(x[:, :T]))
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), T


def test_time_major_and_batch_major_calls_of_one_size_do_not_share_a_struct(model):
    x = np.random.default_rng(6).standard_normal((3, 3, 3)).astype(np.float32)
    with model.session(3, 3) as s:
        for tm in (False, True, False, True):
            got = s.forward(x, time_major=tm, packed_state=True)
            want = fresh(model, x, time_major=tm)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_optional_arguments_of_one_call_do_not_leak_into_the_next(model):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    init = rng.standard_normal(model.state_count(2)).astype(np.float32)
    with model.session(2, 4) as s:
        s.forward(x, initial_state=init, sequence_lengths=[2, 3])
        got = s.forward(x, packed_state=True)   # zeros, full lengths
        want = fresh(model, x)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        s.step(x[:, 0], state=init)
        h, st = s.step(x[:, 0], packed_state=True)
        with model.session(2, 1) as s2:
            h2, st2 = s2.step(x[:, 0], packed_state=True)
        assert np.array_equal(h, h2) and np.array_equal(st, st2)


def test_the_array_address_reader_agrees_with_numpy():
    from stacklstm import model as M
    base = np.arange(40, dtype=np.float32)
    for a in (base, base[3:], base.reshape(5, 8)[2], np.empty((0, 4), np.float32)):
        assert M._addr(a) == a.ctypes.data


def test_loading_a_directory_is_an_is_a_directory_error_that_says_so(tmp_path):
    with pytest.raises(IsADirectoryError, match="a directory, not a model file"):
        stacklstm.Model.load(str(tmp_path))


def test_to_bytes_records_the_source_layout(model, tmp_path):
    p = tmp_path / "m.safetensors"
    p.write_bytes(model.to_bytes(source_layout="keras"))
    assert stacklstm.read_header(str(p))[0]["source_layout"] == "keras"


def test_a_session_of_something_that_is_not_a_model_is_a_type_error():
    with pytest.raises(TypeError, match="needs a stacklstm.Model, got str"):
        stacklstm.Session("model.safetensors", 1, 1)


def test_describe_refuses_an_unknown_format(model):
    with model.session(1, 1) as s:
        with pytest.raises(ValueError, match="format must be 'text' or 'json'"):
            s.describe("xml")


@pytest.mark.parametrize("kw, name", [({"precision": "fp64"}, "precision"),
                                      ({"cpu_path": "fastest"}, "cpu_path")])
def test_an_unknown_precision_or_cpu_path_name_is_a_value_error(model, kw, name):
    with pytest.raises(ValueError, match="%s must be one of" % name):
        model.session(1, 1, **kw)


def test_num_threads_reaches_the_library_as_num_threads(model):
    with model.session(1, 1, num_threads=3) as s:
        assert s.describe("json")["params"]["threads_reason"].startswith("num_threads=3")


def test_backend_available_gives_no_reason_for_an_available_backend():
    with pytest.raises(stacklstm.InvalidArgumentError):   # leaves a last-error text behind
        stacklstm.Model.random(0, [4])
    assert stacklstm.backend_available("cpu") == (True, "")


def test_backend_available_takes_the_backend_name_in_any_case():
    assert stacklstm.backend_available("CPU") == (True, "")
    ok, why = stacklstm.backend_available("Cuda")
    assert ok == stacklstm.backend_available("cuda")[0] and (ok or why)


def test_a_model_cannot_be_constructed_directly():
    with pytest.raises(TypeError, match="use Model.from_weights, Model.random"):
        stacklstm.Model(3, [4])
