"""python/checkout_files.py: what the sdist (python/make_sdist.sh) and tests/wheel.sh copy of
a checkout. An untracked virtual environment or build tree, whatever its name, stays out (a
.venv/ inside the checkout made a 39 MB sdist of 3,500 files); new untracked sources go in."""
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "checkout_files.py")


def write(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.fixture
def checkout(tmp_path):
    if subprocess.run(["git", "--version"], capture_output=True).returncode != 0:
        pytest.skip("git is not installed")
    root = str(tmp_path / "repo")
    write(os.path.join(root, "src", "a.cpp"))
    write(os.path.join(root, ".gitignore"), "/build*/\n")
    subprocess.run(["git", "init", "-q", root], check=True)
    subprocess.run(["git", "-C", root, "add", "."], check=True)
    write(os.path.join(root, "src", "new.cpp"))                  # untracked source
    write(os.path.join(root, ".venv", "pyvenv.cfg"))             # a venv
    write(os.path.join(root, ".venv", "lib", "site.py"))
    write(os.path.join(root, "cmake-build-debug", "CMakeCache.txt"))   # a CLion build tree
    write(os.path.join(root, "cmake-build-debug", "a.o"))
    write(os.path.join(root, "build", "libx.so"))                # ignored
    return root


def test_an_untracked_venv_or_build_tree_is_left_out_and_new_sources_kept(checkout):
    r = subprocess.run([sys.executable, SCRIPT, checkout], capture_output=True, check=True)
    files = sorted(p.decode() for p in r.stdout.split(b"\0") if p)
    assert files == [".gitignore", "src/a.cpp", "src/new.cpp"]
    assert b"left out .venv/" in r.stderr and b"left out cmake-build-debug/" in r.stderr
