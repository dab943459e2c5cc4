"""Mutation check of the Python package: do its tests notice a wrong line?

Each mutant of tests/tools/py_mutants.json changes one piece of python/stacklstm/ (a check
dropped, a comparison flipped, two arguments swapped: a bug a change could bring) and runs the
tests that should notice it. A mutant the tests do not kill is a behaviour no test pins down,
unless the list marks it "equivalent" (no observable change: the reason is given there).
First run on 2026-12-05 (session 30): 133 mutants, 49 survivors then, each with a test since.

    SLSTM_LIBRARY=$PWD/build/libstacklstm.so /usr/bin/python3 tests/tools/py_mutation.py \
        [--full] [--list FILE] [ID...]

--list FILE takes the mutants from FILE (default: py_mutants.json next to this script);
tests/tools/py_mutants_converters.json holds the framework converters' (naming.py's ONNX,
Keras, TF and torch readers and writers, convert.py, the Model.from_* entry points). A
mutant may say which modules its killing tests need ("needs": ["onnx"], ["tf_keras"],
["tensorflow"]): where one is not importable by this interpreter the mutant is NOT RUN
(reported, and exit status 1), never counted as survived or killed. The ONNX ones run in
the venv of tests/run.sh (onnx, onnxruntime):
    $build/venv-ray/bin/python tests/tools/py_mutation.py --list \
        tests/tools/py_mutants_converters.json
The TF and Keras readers' mutants need no TensorFlow (variable-name dicts, Keras stand-ins);
where tensorflow-cpu and tf_keras are installed, test_cells_tf / test_cells_keras kill the
numeric ones too. First run 2026-12-05: 135 mutants, 75 killed by the tests of then, 3
equivalent, 57 survivors (a few of them seen by TF-only tests), each with a test since.

tests/tools/py_mutants_runtime.json holds the runtime's: library loading and argument
marshalling (_lib.py), errors.py, safetensors_header.py, cli.py, __init__.py, the batcher, the
Session/Model run paths of model.py, and stacklstm.ray's serve.py and data.py (those need
"ray": run them with the venv-ray interpreter above). First run 2026-12-06: 163 mutants, 68
killed by the tests of then, 8 equivalent, 87 survivors, each with a test since.

(the interpreter that runs it runs the tests: one with pytest, numpy and torch, as
tests/run.sh's /usr/bin/python3; it first checks that the tests pass unmutated).

--full runs every test file for each mutant (else the mutant's own list). The package's
files are changed in place and restored after each mutant (also on Ctrl-C); it refuses to
start while python/stacklstm/ has uncommitted changes. ~5 minutes for all on 2 cores.
Exit status 1 when a mutant that is not marked equivalent survives, or no longer applies
(its `old` text changed: update the list).
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PKG = os.path.join(REPO, "python", "stacklstm")
TESTS = os.path.join(REPO, "python", "tests")


def pytest(files):
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--tb=no"]
    r = subprocess.run(cmd + files, cwd=REPO, capture_output=True, text=True, timeout=1800)
    return r.returncode


def _missing(m):
    """The modules of m["needs"] this interpreter cannot import."""
    return [n for n in m.get("needs", []) if importlib.util.find_spec(n) is None]


def main():
    argv = sys.argv[1:]
    listing = os.path.join(HERE, "py_mutants.json")
    if "--list" in argv:
        k = argv.index("--list")
        if k + 1 >= len(argv):
            sys.exit("py_mutation: --list needs a file")
        listing = argv[k + 1]
        del argv[k:k + 2]
    args = [a for a in argv if a != "--full"]
    full = "--full" in argv
    if not os.environ.get("SLSTM_LIBRARY"):
        sys.exit("py_mutation: set SLSTM_LIBRARY to the built library")
    dirty = subprocess.run(["git", "status", "--porcelain", "--", PKG], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout
    if dirty:
        sys.exit("py_mutation: python/stacklstm/ has uncommitted changes:\n" + dirty)
    with open(listing) as f:
        mutants = [m for m in json.load(f) if not args or m["id"] in args]
    not_run = [m["id"] for m in mutants if _missing(m)]
    for m in mutants:
        if _missing(m):
            print("%-6s NOT RUN: %s not importable by %s" % (m["id"], ", ".join(_missing(m)),
                                                            sys.executable))
    mutants = [m for m in mutants if not _missing(m)]
    # Unmutated, the tests must pass: else every mutant would count as killed.
    every = sorted({t for m in mutants for t in m["tests"]})
    if pytest([TESTS] if full else [os.path.join(TESTS, t) for t in every]) != 0:
        sys.exit("py_mutation: the tests fail without any mutant (run them with %s -m pytest "
                 "to see why: pytest, numpy, SLSTM_LIBRARY?)" % sys.executable)
    backup = tempfile.mkdtemp(prefix="py_mutation.")
    shutil.copytree(PKG, os.path.join(backup, "stacklstm"))
    bad = []
    try:
        for m in mutants:
            path = os.path.join(PKG, m["file"])
            src = open(os.path.join(backup, "stacklstm", m["file"])).read()
            n = src.count(m["old"])
            if n == 0 or (n > 1 and "occ" not in m):
                print("%-6s NO LONGER APPLIES (%d matches of its text)" % (m["id"], n))
                bad.append(m["id"])
                continue
            at = -1
            for _ in range(m.get("occ", 0) + 1):
                at = src.index(m["old"], at + 1)
            with open(path, "w") as f:
                f.write(src[:at] + m["new"] + src[at + len(m["old"]):])
            files = [TESTS] if full else [os.path.join(TESTS, t) for t in m["tests"]]
            killed = pytest(files) != 0
            shutil.copy(os.path.join(backup, "stacklstm", m["file"]), path)
            eq = m.get("equivalent")
            verdict = ("killed" if killed else "survived, equivalent: " + eq if eq
                       else "SURVIVED")
            print("%-6s %-12s %-60s %s" % (m["id"], m["file"], m["desc"][:60], verdict),
                  flush=True)
            if not killed and not eq:
                bad.append(m["id"])
    finally:
        for name in os.listdir(os.path.join(backup, "stacklstm")):
            if name.endswith(".py"):
                shutil.copy(os.path.join(backup, "stacklstm", name), os.path.join(PKG, name))
        shutil.rmtree(backup, ignore_errors=True)
    print("py_mutation: %d mutants, %d not killed and not equivalent%s%s"
          % (len(mutants), len(bad), (": " + " ".join(bad)) if bad else "",
             "; %d not run (modules missing): %s" % (len(not_run), " ".join(not_run))
             if not_run else ""))
    sys.exit(1 if bad or not_run else 0)


if __name__ == "__main__":
    main()
