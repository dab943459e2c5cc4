#!/usr/bin/env python3
"""The C, C++ and Python code blocks of the README and docs compile and run.

The blocks are fragments (they use buffers the reader brings: weights, inputs, outputs), so
each runs inside a harness of its own: the declarations it leaves out before it, a check of
what it made after it (a status, a model, an assertion). A block is recognised by a line
it contains; a block no harness recognises fails the check, naming its file and line, so
that a new example gets a harness when it is written. The blocks that cannot run here
(TensorFlow, a Ray cluster, oneTBB, a quote of the header) are listed in SHOWN_ONLY, each
with the reason.

Usage: check_doc_code.py --cc CC --cxx CXX --library LIB --include DIR [--include DIR ...]
                         FILE.md [FILE.md ...]
  (LIB: the built libstacklstm.so; PYTHON_PACKAGE in the environment: the folder that holds
  the `stacklstm` Python package, default python/ of the checkout this script is in.)
Exit 0: every block ran; 1: one did not (its source and the compiler's or program's output
are printed); 77: the Python blocks were not run for want of numpy and torch in this python3
or Debian's /usr/bin/python3 (said why), the others passed.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

# Included before every C and C++ block (a block's own #include lines follow these).
C_PRELUDE = """#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <stacklstm/stacklstm.h>
"""
# A harness: a line the block contains, its language, code before it, code after it, and
# optionally `file_scope`: the first line of the block that belongs inside main (the lines
# before it, function definitions, go at file scope, before `before`).
HARNESSES = [
    # README "A C example": TF-layout weights of the seed stack, 10 rows of 50 steps.
    dict(key="slstm_forward_args a;", lang="c", before="""
static float kernel0[(128 + 100) * 400], bias0[400], kernel1[(100 + 200) * 800],
    bias1[800], kernel2[(200 + 300) * 1200], bias2[1200];
static float x[10 * 50 * 128], out[10 * 50 * 300], state[2 * 10 * (100 + 200 + 300)];
static int32_t len[10] = {50, 49, 1, 0, 50, 7, 50, 50, 25, 3};
int main(void) {
""", after="""
  if (st != SLSTM_OK) {
    fprintf(stderr, "slstm_session_forward: status %d\\n", (int)st);
    return 1;
  }
  if (n_state != sizeof state / sizeof state[0]) return 1;
  for (int i = 0; i < 10 * 50 * 300; ++i) {
    if (out[i] != out[i]) return 1; /* a NaN: an element left unwritten */
  }
  return 0;
}
"""),
    # README "Other cells, directions and residual stacks": the layer configs make a model.
    dict(key="slstm_layer_config layers[3];", lang="c", before="int main(void) {\n",
         after="""
  slstm_model* model = NULL;
  if (slstm_model_create_random(&cfg, 1, 0.0f, &model) != SLSTM_OK) {
    fprintf(stderr, "%s\\n", slstm_last_error());
    return 1;
  }
  slstm_model_destroy(model);
  return 0;
}
"""),
    # README "C++": the wrapper over the seed stack, caller buffers sized for it.
    dict(key="stacklstm::Session session(", lang="cpp", before="""
#include <cstdint>
#include <vector>
int main() {
  std::vector<float> x(10 * 50 * 128, 0.25f), out(10 * 50 * 300);
  std::vector<float> state(2 * 10 * (100 + 200 + 300), 0.5f);
  std::vector<std::int32_t> lengths(10, 50);
""", after="""
  if (r.output.size() != 10u * 50 * 300 || h.size() != 10u * 300) return 1;
  return 0;
}
"""),
    # docs/streams.md: a whole program.
    dict(key="slstm_session_slot_open(s, NULL, 0, SLSTM_MEMORY_HOST, &a)", lang="c",
         before="", after=""),
    # docs/threads.md: the OpenMP adapter lent to a session of the seed stack.
    dict(key="omp_parallel_for(void* pool_arg", lang="c", file_scope="slstm_thread_pool pool",
         cflags=["-fopenmp"], before="#include <omp.h>\nint main(void) {\n", after="""
  const int64_t hidden[3] = {100, 200, 300};
  slstm_model_config cfg = SLSTM_MODEL_CONFIG_INIT;
  cfg.input_size = 128;
  cfg.num_layers = 3;
  cfg.hidden_sizes = hidden;
  slstm_model* model = NULL;
  slstm_session* s = NULL;
  slstm_session_options opt = SLSTM_SESSION_OPTIONS_INIT;
  opt.backend = SLSTM_BACKEND_CPU;
  opt.max_batch = 10;
  opt.max_time = 20;
  opt.thread_pool = &pool;
  static float x[10 * 20 * 128], out[10 * 20 * 300];
  slstm_forward_args a = SLSTM_FORWARD_ARGS_INIT;
  a.batch = 10;
  a.time = 20;
  a.input = x;
  a.input_count = 10 * 20 * 128;
  a.output = out;
  a.output_count = 10 * 20 * 300;
  if (slstm_model_create_random(&cfg, 7, 0.0f, &model) != SLSTM_OK ||
      slstm_session_create(model, &opt, &s) != SLSTM_OK ||
      slstm_session_forward(s, &a) != SLSTM_OK) {
    fprintf(stderr, "%s\\n", slstm_last_error());
    return 1;
  }
  slstm_session_destroy(s);
  slstm_model_destroy(model);
  return 0;
}
"""),
    # README "Python": a two-layer PyTorch LSTM's weights and state.
    dict(key="model = stacklstm.Model.from_torch_state_dict(torch_lstm.state_dict())",
         lang="python", before="""
import numpy as np
import torch
torch_lstm = torch.nn.LSTM(128, 64, num_layers=2, batch_first=True)
x = np.random.default_rng(0).standard_normal((10, 7, 128)).astype(np.float32)
h0 = torch.zeros(2, 10, 64)
c0 = torch.full((2, 10, 64), 0.5)
""", after="""
assert out.shape == (10, 7, 64)
assert h_n.shape == (2, 10, 64) and c_n.shape == (2, 10, 64)
want, _ = torch_lstm(torch.from_numpy(x), (h0, c0))
assert np.allclose(out, want.detach().numpy(), atol=1e-5)
"""),
    # python/README.md: the seed stack, saved.
    dict(key='model.save("model.safetensors")', lang="python", before="", after="""
assert stacklstm.Model.load("model.safetensors").hidden_sizes == (100, 200, 300)
"""),
    # python/README.md: PyTorch and Keras states.
    dict(key="model = stacklstm.Model.from_torch_state_dict(lstm.state_dict())", lang="python",
         before="""
import numpy as np
import stacklstm
x = np.random.default_rng(1).standard_normal((10, 7, 128)).astype(np.float32)
h0 = np.zeros((2, 10, 64), np.float32)
c0 = np.full((2, 10, 64), 0.25, np.float32)
""", after="""
want, (want_h, want_c) = lstm(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
assert np.allclose(out, want.detach().numpy(), atol=1e-5)
assert np.allclose(h_n.numpy(), want_h.detach().numpy(), atol=1e-5)
assert len(keras_states) == 2 and keras_states[0][0].shape == (10, 64)
h_back, c_back = stacklstm.state_to_torch(state)   # through Keras' form and back
assert np.array_equal(h_back, h_n.numpy()) and np.array_equal(c_back, c_n.numpy())
"""),
    # docs/interop.md: the package in brief.
    dict(key='model.export("onnx"); model.save("m.safetensors", source_layout="onnx")',
         lang="python", before="""
import numpy as np
x = np.random.default_rng(2).standard_normal((10, 7, 128)).astype(np.float32)
""", after="""
again = stacklstm.Model.load("m.safetensors")
with again.session(max_batch=10, max_time=7) as s:
    assert np.array_equal(s.forward(x)[0], outputs)
with model.session(max_batch=10, max_time=8) as s8:   # the step continued the sequence
    longer, _ = s8.forward(np.concatenate([x, x[:, :1]], axis=1))
assert np.array_equal(h, longer[:, 7])
"""),
    # docs/python.md: layer descriptions.
    dict(key="from stacklstm import Layer, Model", lang="python", before="", after="""
assert model.output_size == 256
assert len(model.layers) == 3
"""),
    # docs/python.md: the nn.LSTM drop-in.
    dict(key="lstm = stacklstm.torch.LSTM.from_torch(ref)", lang="python", before="""
import torch
h_0 = torch.zeros(2, 4, 32)
c_0 = torch.full((2, 4, 32), 0.5)
""", after="""
with torch.no_grad():
    want, (want_h, want_c) = ref(x, (h_0, c_0))
assert torch.allclose(output, want, atol=1e-5) and torch.allclose(c_n, want_c, atol=1e-5)
"""),
    # docs/serving.md: the batcher.
    dict(key="with Batcher(model, max_batch=32", lang="python", before="", after="""
assert h.shape == (300,) and out.shape == (40, 300)
"""),
    # docs/streams.md: the Python streams.
    dict(key="with Streams(model, max_streams=100, max_batch=8) as streams:", lang="python",
         before="", after="""
assert h.shape == (2, 32)
"""),
]
# Blocks that are shown, not run here: (a line the block contains, why).
SHOWN_ONLY = [
    ("tf.nn.rnn_cell.MultiRNNCell", "TensorFlow 1.x code: what the library reproduces"),
    ("stacklstm.ray.data as sd", "needs a Ray cluster (python/tests/test_ray.py runs it)"),
    ("stacklstm.ray.serve as ss", "needs a Ray cluster and Serve (python/tests/test_ray.py)"),
    ("typedef struct slstm_thread_pool {", "the header's declaration, quoted"),
    ("tbb::task_arena arena(threads);", "needs oneTBB, which CI does not install"),
]
# Where the Python blocks may run: this interpreter, else Debian's (python3-numpy and
# python3-torch, as tests/run.sh installs them; a python3 earlier on PATH may lack them).
PYTHONS = [sys.executable, "/usr/bin/python3"]


def blocks(path):
    """(line, language, text) of every fenced block of `path` tagged c, cpp or python."""
    out, lang, start, text = [], None, 0, []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"^```(\w*)\s*$", line)
            if m and lang is None:
                lang, start, text = m.group(1) or "-", n, []
            elif line.startswith("```") and lang is not None:
                if lang in ("c", "cpp", "python"):
                    out.append((start, lang, "".join(text)))
                lang = None
            elif lang is not None:
                text.append(line)
    return out


def run(cmd, env=None, cwd=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    return p.returncode, p.stdout + p.stderr


def c_source(h, text):
    """The translation unit of a C or C++ block in harness h."""
    lines = text.splitlines(True)
    incl = "".join(l for l in lines if l.startswith("#include"))
    rest = [l for l in lines if not l.startswith("#include")]
    scope = ""
    if h.get("file_scope"):
        cut = next(i for i, l in enumerate(rest) if l.startswith(h["file_scope"]))
        scope, rest = "".join(rest[:cut]), rest[cut:]
    return C_PRELUDE + incl + scope + h["before"] + "".join(rest) + h["after"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cc", required=True)
    ap.add_argument("--cxx", required=True)
    ap.add_argument("--library", required=True)
    ap.add_argument("--include", action="append", default=[])
    ap.add_argument("docs", nargs="+")
    args = ap.parse_args()
    library = os.path.abspath(args.library)
    lib_dir = os.path.dirname(library)
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.environ.get("PYTHON_PACKAGE", os.path.join(os.path.dirname(here), "python"))
    failed, skipped, ran, used = 0, [], 0, set()
    python = None
    with tempfile.TemporaryDirectory(prefix="doc-code-") as tmp:
        for doc in args.docs:
            where = os.path.relpath(doc)
            for line, lang, text in blocks(doc):
                if any(k in text for k, _ in SHOWN_ONLY):
                    used.update(k for k, _ in SHOWN_ONLY if k in text)
                    continue
                match = [h for h in HARNESSES if h["lang"] == lang and h["key"] in text]
                if len(match) != 1:
                    print(f"{where}:{line}: a ```{lang} block that {len(match)} harnesses of "
                          "tests/check_doc_code.py recognise (one must): give it one (the "
                          "declarations it leaves out, a check of what it makes), or list it "
                          "in SHOWN_ONLY with the reason")
                    failed += 1
                    continue
                h = match[0]
                used.add(h["key"])
                name = os.path.join(tmp, f"{os.path.basename(doc)}-{line}")
                if lang == "python":
                    source = h["before"] + text + h["after"]
                    env = dict(os.environ, SLSTM_LIBRARY=library,
                               PYTHONPATH=package + os.pathsep + os.environ.get("PYTHONPATH", ""))
                    if python is None:
                        python = next((p for p in PYTHONS if p and os.path.exists(p) and
                                       run([p, "-c", "import numpy, torch"], env=env)[0] == 0),
                                      "")
                    if not python:
                        skipped.append(f"{where}:{line}")
                        continue
                    with open(name + ".py", "w") as f:
                        f.write(source)
                    work = os.path.join(tmp, f"run-{os.path.basename(name)}")
                    os.mkdir(work)
                    code, out = run([python, name + ".py"], env=env, cwd=work)
                else:
                    source = c_source(h, text)
                    ext, compiler = (".c", [args.cc, "-std=c11"]) if lang == "c" else \
                        (".cpp", [args.cxx, "-std=c++17"])
                    with open(name + ext, "w") as f:
                        f.write(source)
                    cmd = compiler + ["-Wall", "-Werror", "-Wno-unused-variable"] + \
                        h.get("cflags", []) + [f"-I{d}" for d in args.include] + \
                        [name + ext, "-o", name, library, f"-Wl,-rpath,{lib_dir}"]
                    code, out = run(cmd)
                    if code == 0:
                        code, out = run([name], cwd=tmp)
                ran += 1
                if code != 0:
                    failed += 1
                    print(f"{where}:{line}: the ```{lang} block failed (exit {code}):\n{out}\n"
                          f"---- the program:\n{source}----")
                else:
                    print(f"{where}:{line}: the ```{lang} block ran")
    for key in [h["key"] for h in HARNESSES] + [k for k, _ in SHOWN_ONLY]:
        if key not in used:
            print(f"no block of {', '.join(args.docs)} contains {key!r} any more: drop its "
                  "entry from tests/check_doc_code.py, or restore the block")
            failed += 1
    if failed:
        return 1
    if skipped:
        print(f"SKIPPED: the Python blocks {', '.join(skipped)}: none of {', '.join(PYTHONS)} "
              f"imports numpy and torch; {ran} other blocks ran")
        return 77
    print(f"{ran} code blocks compiled and ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
