"""The `stacklstm` command-line tool (issue 16, item 5), end to end from Python.

The native tool is found through $SLSTM_CLI (tests/run.sh sets it to <build>/cli/stacklstm);
the tests that run it are skipped, visibly, when it is unset. The library the package loads
($SLSTM_LIBRARY) should be the one the tool was built with, so results compare bit for bit.
"""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import stacklstm

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
CLI = os.environ.get("SLSTM_CLI")

needs_cli = pytest.mark.skipif(
    not CLI, reason="SLSTM_CLI is not set (the built tool, e.g. build/cli/stacklstm)")


def tool(*args, env=None):
    return subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True,
                          env=env, timeout=120)


def python_m(*args, env=None):
    """`python -m stacklstm ARGS` with this source tree's package."""
    e = dict(os.environ if env is None else env)
    e["PYTHONPATH"] = PYTHON_DIR + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "stacklstm"] + [str(a) for a in args],
                          capture_output=True, text=True, env=e, timeout=300)


@pytest.fixture
def model_file(tmp_path):
    """A 3-layer model with uneven sizes and a non-default forget_bias, saved to a file."""
    path = tmp_path / "model.safetensors"
    with stacklstm.Model.random(5, [7, 4, 6], seed=11, forget_bias=0.25) as m:
        m.save(str(path), source_layout="test")
    return path


@pytest.fixture
def batch(tmp_path):
    """x [3, 8, 5] float32 in a .npy file."""
    x = np.random.default_rng(5).uniform(-2, 2, size=(3, 8, 5)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    return x, path


def one_line_error(proc, status, fragment):
    assert proc.returncode == status, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("stacklstm: ")
    assert fragment in lines[0]


@needs_cli
def test_run_writes_bitwise_what_session_forward_returns(model_file, batch, tmp_path):
    x, xpath = batch
    out = tmp_path / "y.npy"
    p = tool("run", model_file, xpath, "-o", out)
    assert p.returncode == 0, p.stderr
    y = np.load(out)
    assert y.dtype == np.float32 and y.shape == (3, 8, 6)
    with stacklstm.Model.load(str(model_file)) as m, m.session(3, 8) as s:
        expected, _ = s.forward(x)
    assert np.array_equal(y, expected)


@needs_cli
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_run_precision_gives_the_session_of_that_precision_bit_for_bit(model_file, batch,
                                                                       tmp_path, precision):
    x, xpath = batch
    out = tmp_path / "y.npy"
    p = tool("run", model_file, xpath, "-o", out, "--precision", precision)
    assert p.returncode == 0, p.stderr
    with stacklstm.Model.load(str(model_file)) as m:
        with m.session(3, 8, precision=precision) as s:
            expected, _ = s.forward(x)
        with m.session(3, 8) as s:
            fp32, _ = s.forward(x)
    assert np.array_equal(np.load(out), expected)
    assert not np.array_equal(expected, fp32)


@needs_cli
def test_run_precision_the_cpu_does_not_run_is_refused_with_the_library_s_message(
        model_file, batch, tmp_path):
    _, xpath = batch
    p = tool("run", model_file, xpath, "-o", tmp_path / "y.npy", "--precision", "tf32")
    one_line_error(p, 1, "options->precision tf32")
    assert not (tmp_path / "y.npy").exists()


@needs_cli
def test_run_time_major_reads_and_writes_time_first(model_file, batch, tmp_path):
    x, _ = batch
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    np.save(tmp_path / "xt.npy", xt)
    p = tool("run", model_file, tmp_path / "xt.npy", "--time-major", "-o", tmp_path / "yt.npy")
    assert p.returncode == 0, p.stderr
    with stacklstm.Model.load(str(model_file)) as m, m.session(3, 8) as s:
        expected, _ = s.forward(x)
    assert np.array_equal(np.load(tmp_path / "yt.npy"), expected.transpose(1, 0, 2))


@needs_cli
def test_run_with_lengths_zeroes_outputs_past_each_length(model_file, batch, tmp_path):
    x, xpath = batch
    lengths = np.array([8, 0, 3], dtype=np.int64)
    np.save(tmp_path / "len.npy", lengths)
    p = tool("run", model_file, xpath, "--lengths", tmp_path / "len.npy", "-o",
             tmp_path / "y.npy", "--final-state", tmp_path / "f.npy")
    assert p.returncode == 0, p.stderr
    y = np.load(tmp_path / "y.npy")
    with stacklstm.Model.load(str(model_file)) as m, m.session(3, 8) as s:
        expected, final = s.forward(x, sequence_lengths=lengths.astype(np.int32),
                                    packed_state=True)
    assert np.array_equal(y, expected)
    assert not y[1].any() and not y[2, 3:].any()
    assert np.array_equal(np.load(tmp_path / "f.npy"), final)


@needs_cli
def test_run_initial_and_final_state_are_packed_states(model_file, batch, tmp_path):
    x, xpath = batch
    with stacklstm.Model.load(str(model_file)) as m:
        n = m.state_count(3)
        s0 = np.random.default_rng(2).uniform(-1, 1, size=n).astype(np.float32)
        with m.session(3, 8) as s:
            _, expected = s.forward(x, initial_state=s0, packed_state=True)
    np.save(tmp_path / "s0.npy", s0)
    p = tool("run", model_file, xpath, "--initial-state", tmp_path / "s0.npy",
             "--final-state", tmp_path / "f.npy")
    assert p.returncode == 0, p.stderr
    f = np.load(tmp_path / "f.npy")
    assert f.shape == (n,) and np.array_equal(f, expected)


@needs_cli
def test_run_converts_float64_input_and_says_so(model_file, batch, tmp_path):
    x, _ = batch
    np.save(tmp_path / "x64.npy", x.astype(np.float64))
    p = tool("run", model_file, tmp_path / "x64.npy", "-o", tmp_path / "y.npy")
    assert p.returncode == 0, p.stderr
    assert "x64.npy is float64; converted to float32" in p.stderr
    with stacklstm.Model.load(str(model_file)) as m, m.session(3, 8) as s:
        expected, _ = s.forward(x)
    assert np.array_equal(np.load(tmp_path / "y.npy"), expected)


@needs_cli
def test_run_refuses_a_big_endian_input_in_one_line(model_file, batch, tmp_path):
    x, _ = batch
    np.save(tmp_path / "be.npy", x.astype(">f4"))
    one_line_error(tool("run", model_file, tmp_path / "be.npy", "-o", tmp_path / "y.npy"),
                   1, "big-endian")
    assert not (tmp_path / "y.npy").exists()


@needs_cli
def test_run_refuses_a_fortran_ordered_input_in_one_line(model_file, batch, tmp_path):
    x, _ = batch
    np.save(tmp_path / "f.npy", np.asfortranarray(x))
    one_line_error(tool("run", model_file, tmp_path / "f.npy", "-o", tmp_path / "y.npy"),
                   1, "Fortran order")


@needs_cli
def test_run_passes_the_library_s_message_for_a_length_past_time(model_file, batch, tmp_path):
    _, xpath = batch
    np.save(tmp_path / "len.npy", np.array([1, 9, 2], dtype=np.int32))
    one_line_error(tool("run", model_file, xpath, "--lengths", tmp_path / "len.npy", "-o",
                        tmp_path / "y.npy"), 1, "stacklstm: run: ")


@needs_cli
def test_inspect_json_reports_architecture_and_checksum(model_file):
    p = tool("inspect", model_file, "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["input_size"] == 5
    assert info["num_layers"] == 3
    assert info["hidden_sizes"] == [7, 4, 6]
    assert info["cells"] == ["lstm", "lstm", "lstm"]
    assert info["output_size"] == 6
    assert np.float32(info["forget_bias"]) == np.float32(0.25)
    assert info["source_layout"] == "test"
    assert info["format"] == "stacklstm"
    assert info["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert info["file_bytes"] == model_file.stat().st_size
    assert info["tensor_count"] == 9
    sizes = [(5, 7), (7, 4), (4, 6)]
    assert info["parameters"] == sum(4 * h * (i + h + 1) for i, h in sizes)
    assert info["tensor_bytes"] == 4 * info["parameters"]
    assert info["state_floats_per_sequence"] == 2 * (7 + 4 + 6)
    assert [t["name"] for t in info["tensors"][:3]] == ["layers.0.W_x", "layers.0.W_h",
                                                        "layers.0.b"]
    assert info["tensors"][0]["shape"] == [28, 5]


@needs_cli
def test_inspect_json_gives_each_layers_settings_as_the_model_has_them(tmp_path):
    layers = [stacklstm.Layer.lstm(4, "bidirectional", peepholes=True, cell_clip=2.5,
                                   proj_size=3, proj_clip=1.5),
              stacklstm.Layer.gru(6, reset_after=True, residual=True),
              stacklstm.Layer.gru(2, direction="reverse"),
              stacklstm.Layer.lstm(2, cell_clip=0.75)]
    path = tmp_path / "cells.safetensors"
    with stacklstm.Model.random(4, layers=layers, seed=3) as m:
        m.save(str(path))
    p = tool("inspect", path, "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["cells"] == ["lstm", "gru", "gru", "lstm"]
    assert info["output_size"] == 2
    assert info["state_floats_per_sequence"] == (4 + 3) * 2 + 6 + 2 + (2 + 2)
    want = [{"cell": L.cell, "hidden_size": L.hidden_size, "direction": L.direction,
             "residual": L.residual, "peepholes": L.peepholes, "cell_clip": L.cell_clip,
             "proj_size": L.proj_size, "proj_clip": L.proj_clip,
             "gru_reset_after": L.gru_reset_after} for L in layers]
    assert info["layers"] == want


def _safetensors_as(src, dst, dtype):
    """src (float32 tensors) rewritten with every tensor in dtype: F16, BF16 or F64."""
    raw = src.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out, offset = {}, 0
    chunks = []
    for name, t in header.items():
        if name == "__metadata__":
            out[name] = t
            continue
        a = np.frombuffer(data[t["data_offsets"][0]:t["data_offsets"][1]], dtype="<f4")
        if dtype == "BF16":
            b = (a.view("<u4") >> 16).astype("<u2").tobytes()  # truncated: sizes matter here
        else:
            b = a.astype({"F16": "<f2", "F64": "<f8"}[dtype]).tobytes()
        out[name] = dict(t, dtype=dtype, data_offsets=[offset, offset + len(b)])
        chunks.append(b)
        offset += len(b)
    text = json.dumps(out).encode()
    text += b" " * (-len(text) % 8)
    dst.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(chunks))


@needs_cli
@pytest.mark.parametrize("dtype, size", [("F16", 2), ("BF16", 2), ("F64", 8)])
def test_inspect_counts_each_tensors_bytes_by_its_dtype(model_file, tmp_path, dtype, size):
    path = tmp_path / ("m_%s.safetensors" % dtype)
    _safetensors_as(model_file, path, dtype)
    p = tool("inspect", path, "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["dtypes"] == {dtype: 9}
    assert info["tensor_bytes"] == size * info["parameters"]
    assert all(t["bytes"] == size * int(np.prod(t["shape"])) for t in info["tensors"])


@needs_cli
def test_inspect_of_a_missing_file_is_one_line_and_status_1(tmp_path):
    one_line_error(tool("inspect", tmp_path / "nope.safetensors"), 1, "nope.safetensors")


@needs_cli
def test_bad_usage_is_one_line_and_status_2(model_file):
    one_line_error(tool("run", model_file), 2, "stacklstm: run: needs MODEL.safetensors")
    one_line_error(tool("bench", model_file, "--batch", "0"), 2, "--batch must be between")


@needs_cli
def test_bench_prints_a_table_and_no_progress_bar_when_stderr_is_not_a_terminal(model_file):
    p = tool("bench", model_file, "--batch", "2", "--time", "4", "--repeat", "3",
             "--warmup", "1")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    header = [l for l in p.stdout.splitlines() if "median ms" in l]
    assert header and "sequences/s" in header[0] and "steps/s" in header[0]


@needs_cli
@pytest.mark.parametrize("repeat", [4, 5])
def test_bench_json_statistics_are_those_of_its_times(model_file, repeat):
    # median (the mean of the middle two for an even count), p90 by nearest rank, the rates
    # from the median; --warmup 0 is allowed.
    p = tool("bench", model_file, "--batch", "3", "--time", "2", "--repeat", repeat,
             "--warmup", "0", "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    times = sorted(j["times_ms"])
    assert len(times) == repeat and j["warmup"] == 0
    assert j["min_ms"] == times[0]
    assert j["median_ms"] == pytest.approx(float(np.median(times)), rel=1e-12)
    assert j["p90_ms"] == times[int(np.ceil(0.9 * repeat)) - 1]
    assert j["sequences_per_s"] == pytest.approx(3 / (j["median_ms"] / 1000), rel=1e-12)
    assert j["steps_per_s"] == pytest.approx(3 * 2 / (j["median_ms"] / 1000), rel=1e-12)


def test_python_m_stacklstm_help_lists_the_commands():
    p = python_m("--help", env=dict(os.environ, SLSTM_LIBRARY="/nonexistent/libstacklstm.so"))
    assert p.returncode == 0, p.stderr
    for c in ("run", "inspect", "bench", "convert"):
        assert "\n  %s " % c in p.stdout


def test_python_m_stacklstm_without_a_tool_says_where_it_looked(tmp_path):
    env = dict(os.environ, SLSTM_CLI=str(tmp_path / "no-tool"))
    one_line_error(python_m("inspect", "m.safetensors", env=env), 1, "$SLSTM_CLI")


def test_python_m_stacklstm_version_without_a_tool_is_the_library_s(tmp_path):
    env = dict(os.environ, SLSTM_CLI="", PATH=str(tmp_path))
    p = python_m("--version", env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "stacklstm %s" % stacklstm.version()


@needs_cli
def test_python_m_stacklstm_version_is_the_tool_s():
    p = python_m("--version", env=dict(os.environ, SLSTM_CLI=CLI))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == tool("--version").stdout.strip()


def test_python_m_stacklstm_rejects_an_unknown_command():
    one_line_error(python_m("frobnicate"), 2, "unknown command 'frobnicate'")


@needs_cli
def test_python_m_stacklstm_run_hands_over_to_the_tool(model_file, batch, tmp_path):
    x, xpath = batch
    p = python_m("run", model_file, xpath, "-o", tmp_path / "y.npy",
                 env=dict(os.environ, SLSTM_CLI=CLI))
    assert p.returncode == 0, p.stderr
    with stacklstm.Model.load(str(model_file)) as m, m.session(3, 8) as s:
        expected, _ = s.forward(x)
    assert np.array_equal(np.load(tmp_path / "y.npy"), expected)


def test_python_m_stacklstm_convert_torch_gives_nn_lstm_numbers(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 6, num_layers=2, batch_first=True)
    torch.save(lstm.state_dict(), tmp_path / "sd.pt")
    out = tmp_path / "m.safetensors"
    p = python_m("convert", "torch", tmp_path / "sd.pt", out)
    assert p.returncode == 0, p.stderr
    x = np.random.default_rng(1).uniform(-1, 1, size=(2, 7, 5)).astype(np.float32)
    with torch.no_grad():
        ref = lstm(torch.from_numpy(x))[0].numpy()
    with stacklstm.Model.load(str(out)) as m, m.session(2, 7) as s:
        y, _ = s.forward(x)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5)


def test_convert_torch_reads_the_lstm_below_prefix(tmp_path):
    torch = pytest.importorskip("torch")
    from stacklstm import convert
    torch.manual_seed(2)
    enc, dec = torch.nn.LSTM(3, 5), torch.nn.LSTM(3, 4, num_layers=2)
    sd = {**{"enc." + k: v for k, v in enc.state_dict().items()},
          **{"dec." + k: v for k, v in dec.state_dict().items()}}
    torch.save(sd, tmp_path / "sd.pt")
    out = tmp_path / "m.safetensors"
    assert convert.main(["torch", str(tmp_path / "sd.pt"), str(out), "--prefix", "dec."]) == 0
    with stacklstm.Model.load(str(out)) as m:
        w = m.export("pytorch")[1]
    assert np.array_equal(w["weight_hh"], dec.weight_hh_l1.detach().numpy())


@needs_cli
def test_native_convert_hands_over_to_python_s_converter(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(3, 4, num_layers=1, batch_first=True)
    torch.save(lstm.state_dict(), tmp_path / "sd.pt")
    env = dict(os.environ, SLSTM_PYTHON=sys.executable,
               PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "m.safetensors"
    p = tool("convert", "torch", tmp_path / "sd.pt", out, env=env)
    assert p.returncode == 0, p.stderr
    with stacklstm.Model.load(str(out)) as m:
        w = m.export("pytorch")[0]
    assert np.array_equal(w["weight_ih"], lstm.weight_ih_l0.detach().numpy())
    assert np.array_equal(w["weight_hh"], lstm.weight_hh_l0.detach().numpy())


def test_python_m_stacklstm_convert_help_needs_no_library():
    env = dict(os.environ, SLSTM_LIBRARY="/nonexistent/libstacklstm.so")
    p = python_m("convert", "--help", env=env)   # `import stacklstm` loads nothing yet
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: stacklstm convert KIND SRC DST")


def no_tool_env(tmp_path):
    """No $SLSTM_CLI and a PATH holding no `stacklstm`: the native tool cannot be found."""
    return dict(os.environ, SLSTM_CLI="", PATH=str(tmp_path))


def test_python_m_stacklstm_without_arguments_prints_the_usage_and_exits_2():
    p = python_m(env=dict(os.environ, SLSTM_LIBRARY="/nonexistent/libstacklstm.so"))
    assert p.returncode == 2
    assert p.stderr.startswith("usage: stacklstm <command>") and not p.stdout


def test_python_m_stacklstm_rejects_an_unknown_option_as_an_option():
    one_line_error(python_m("--frobnicate"), 2, "unknown option '--frobnicate'")


def test_python_m_stacklstm_help_convert_is_the_converter_s_help_without_a_tool(tmp_path):
    p = python_m("help", "convert", env=no_tool_env(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: stacklstm convert KIND SRC DST")


def test_python_m_stacklstm_short_version_flag_without_a_tool_is_the_library_s(tmp_path):
    p = python_m("-V", env=no_tool_env(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "stacklstm %s" % stacklstm.version()


def test_python_m_stacklstm_bench_is_a_command_handed_to_the_tool(tmp_path):
    one_line_error(python_m("bench", "m.safetensors", env=no_tool_env(tmp_path)), 1,
                   "stacklstm: bench: the native stacklstm tool was not found")


def test_python_m_stacklstm_refuses_an_SLSTM_CLI_that_is_not_executable(tmp_path):
    f = tmp_path / "stacklstm"
    f.write_bytes(b"\x7fELF not really")
    os.chmod(str(f), 0o644)
    one_line_error(python_m("inspect", "m.safetensors", env=dict(os.environ, SLSTM_CLI=str(f))),
                   1, "$SLSTM_CLI is %s, which is not an executable file" % f)


def test_python_m_stacklstm_does_not_take_a_script_on_PATH_for_the_native_tool(tmp_path):
    script = tmp_path / "stacklstm"   # e.g. the console script of this very package
    script.write_text("#!/bin/sh\necho SCRIPT RAN\n")
    os.chmod(str(script), 0o755)
    p = python_m("inspect", "m.safetensors", env=no_tool_env(tmp_path))
    one_line_error(p, 1, "the native stacklstm tool was not found")
    assert "SCRIPT RAN" not in p.stdout
