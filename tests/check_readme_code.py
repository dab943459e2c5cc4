#!/usr/bin/env python3
"""The README's C, C++ and Python code blocks compile and run against the built library.

The blocks are fragments (they use buffers the reader brings: weights, inputs, outputs), so
each runs inside a harness of its own: the declarations it leaves out before it, a check of
what it made after it (a status, a model, an assertion). A block is recognised by a line
it contains; a block no harness recognises fails the check, naming its line, so that a new
example gets a harness when it is written. The TensorFlow code at the top (which imports no
stacklstm) is the one block that is only shown.

Usage: check_readme_code.py README CC CXX LIBRARY INCLUDE_DIR [INCLUDE_DIR...]
  (LIBRARY: the built libstacklstm.so; PYTHON_PACKAGE in the environment: the folder that
  holds the `stacklstm` Python package, default python/ next to README.)
Exit 0: every block ran; 1: one did not (its source and the compiler's or program's output
are printed); 77: the Python block was not run for want of numpy and torch in this python3
or Debian's /usr/bin/python3 (said why), the others passed.
"""
import os
import re
import subprocess
import sys
import tempfile

# The harnesses: (a line the block contains, language, code before it, code after it).
C_PRELUDE = """#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <stacklstm/stacklstm.h>
"""
HARNESSES = [
    # "A C example": TF-layout weights of the seed stack, a batch of 10 rows of 50 steps.
    ("slstm_forward_args a;", "c",
     """static float kernel0[(128 + 100) * 400], bias0[400], kernel1[(100 + 200) * 800],
    bias1[800], kernel2[(200 + 300) * 1200], bias2[1200];
static float x[10 * 50 * 128], out[10 * 50 * 300], state[2 * 10 * (100 + 200 + 300)];
static int32_t len[10] = {50, 49, 1, 0, 50, 7, 50, 50, 25, 3};
int main(void) {
""",
     """  if (st != SLSTM_OK) {
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
    # "Other cells, directions and residual stacks": the layer configs make a model.
    ("slstm_layer_config layers[3];", "c",
     "int main(void) {\n",
     """  slstm_model* model = NULL;
  if (slstm_model_create_random(&cfg, 1, 0.0f, &model) != SLSTM_OK) {
    fprintf(stderr, "%s\\n", slstm_last_error());
    return 1;
  }
  slstm_model_destroy(model);
  return 0;
}
"""),
    # "C++": the wrapper over the seed stack, caller buffers sized for it.
    ("stacklstm::Session session(", "cpp",
     """#include <cstdint>
#include <vector>
int main() {
  std::vector<float> x(10 * 50 * 128, 0.25f), out(10 * 50 * 300);
  std::vector<float> state(2 * 10 * (100 + 200 + 300), 0.5f);
  std::vector<std::int32_t> lengths(10, 50);
""",
     """  if (r.output.size() != 10u * 50 * 300 || h.size() != 10u * 300) return 1;
  return 0;
}
"""),
    # "Python": a two-layer PyTorch LSTM's weights and state.
    ("import numpy as np, stacklstm", "python",
     """import numpy as np
import torch
torch_lstm = torch.nn.LSTM(128, 64, num_layers=2, batch_first=True)
x = np.random.default_rng(0).standard_normal((10, 7, 128)).astype(np.float32)
h0 = torch.zeros(2, 10, 64)
c0 = torch.full((2, 10, 64), 0.5)
""",
     """assert out.shape == (10, 7, 64)
assert h_n.shape == (2, 10, 64) and c_n.shape == (2, 10, 64)
want, _ = torch_lstm(torch.from_numpy(x), (h0, c0))
assert np.allclose(out, want.detach().numpy(), atol=1e-5)
"""),
]
SHOWN_ONLY = "tf.nn.rnn_cell.MultiRNNCell"  # the TensorFlow code the library reproduces
# Where the Python block may run: this interpreter, else Debian's (python3-numpy and
# python3-torch, as tests/run.sh installs them; a python3 earlier on PATH may lack them).
PYTHONS = [sys.executable, "/usr/bin/python3"]


def blocks(readme):
    """(line, language, text) of every fenced block tagged c, cpp or python."""
    out, lang, start, text = [], None, 0, []
    with open(readme, encoding="utf-8") as f:
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


def main():
    if len(sys.argv) < 6:
        print(__doc__)
        return 2
    readme, cc, cxx = sys.argv[1:4]
    library = os.path.abspath(sys.argv[4])
    includes = sys.argv[5:]
    package = os.environ.get("PYTHON_PACKAGE",
                             os.path.join(os.path.dirname(os.path.abspath(readme)), "python"))
    lib_dir = os.path.dirname(os.path.abspath(library))
    found = blocks(readme)
    failed, skipped, ran = 0, [], 0
    used = set()
    with tempfile.TemporaryDirectory(prefix="readme-code-") as tmp:
        for line, lang, text in found:
            if lang == "python" and SHOWN_ONLY in text:
                continue
            harness = [h for h in HARNESSES if h[1] == lang and h[0] in text]
            if len(harness) != 1:
                print(f"README.md:{line}: a ```{lang} block that no harness of "
                      f"tests/check_readme_code.py recognises ({len(harness)} match): give it "
                      "one (the declarations it leaves out, a check of what it makes)")
                failed += 1
                continue
            key, _, before, after = harness[0]
            used.add(key)
            name = os.path.join(tmp, f"block{line}")
            if lang == "python":
                source = before + text + after
                with open(name + ".py", "w") as f:
                    f.write(source)
                env = dict(os.environ, SLSTM_LIBRARY=library,
                           PYTHONPATH=package + os.pathsep + os.environ.get("PYTHONPATH", ""))
                python = next((p for p in PYTHONS if p and os.path.exists(p) and
                               run([p, "-c", "import numpy, torch"], env=env)[0] == 0), None)
                if python is None:
                    skipped.append(f"README.md:{line} (python): none of {', '.join(PYTHONS)} "
                                   "imports numpy and torch")
                    continue
                code, out = run([python, name + ".py"], env=env, cwd=tmp)
            else:
                # The block's own #include lines go first, the harness's body around the rest.
                incl = "".join(l for l in text.splitlines(True) if l.startswith("#include"))
                body = "".join(l for l in text.splitlines(True) if not l.startswith("#include"))
                source = C_PRELUDE + incl + before + body + after
                ext, compiler = (".c", [cc, "-std=c11"]) if lang == "c" else \
                    (".cpp", [cxx, "-std=c++17"])
                with open(name + ext, "w") as f:
                    f.write(source)
                cmd = compiler + ["-Wall", "-Werror", "-Wno-unused-variable"] + \
                    [f"-I{d}" for d in includes] + \
                    [name + ext, "-o", name, library, f"-Wl,-rpath,{lib_dir}"]
                code, out = run(cmd)
                if code == 0:
                    code, out = run([name], cwd=tmp)
            ran += 1
            if code != 0:
                failed += 1
                print(f"README.md:{line}: the ```{lang} block failed (exit {code}):\n{out}\n"
                      f"---- the program:\n{source}----")
            else:
                print(f"README.md:{line}: the ```{lang} block ran")
    for key, lang, _, _ in HARNESSES:
        if key not in used:
            print(f"the README has no ```{lang} block containing {key!r} any more: drop its "
                  "harness from tests/check_readme_code.py, or restore the block")
            failed += 1
    if failed:
        return 1
    if skipped:
        print("SKIPPED:", "; ".join(skipped))
        return 77
    print(f"{ran} README code blocks compiled and ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
