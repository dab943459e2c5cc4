"""Lazy loading of libstacklstm.so (issue 16, item 2).

Importing the package loads nothing; the first real use loads the library or raises
LibraryNotFoundError naming every path tried; $SLSTM_LIBRARY, when set, is the only
candidate. Each case runs a fresh interpreter, since a process loads the library once.
"""
import ctypes.util
import os
import re
import shutil
import subprocess
import sys

import pytest

import stacklstm

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)                 # python/
REPO = os.path.dirname(PKG)
MISSING = "/nonexistent/libstacklstm.so"


def run(code, env=None, pythonpath=PKG, cwd="/"):
    """Runs `code` in a fresh interpreter with SLSTM_LIBRARY as given in env (None: unset)."""
    e = {k: v for k, v in os.environ.items() if k != "SLSTM_LIBRARY"}
    e["PYTHONPATH"] = pythonpath
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", code], env=e, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def real_library():
    return stacklstm.library_path   # the library this test session uses (loads it)


def copy_package(tmp_path):
    """The package alone, outside any checkout (no build*/ directories beside it)."""
    site = tmp_path / "site"
    shutil.copytree(os.path.join(PKG, "stacklstm"), str(site / "stacklstm"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.so.*"))
    return site


def cmake_project_version():
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        return re.search(r"project\(stacklstm\s+VERSION\s+([0-9.]+)", f.read()).group(1)


def test_import_loads_no_library():
    r = run("import stacklstm, stacklstm._lib as L; print(L.is_loaded())",
            env={"SLSTM_LIBRARY": MISSING})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_version_is_the_cmake_project_version_without_the_library():
    r = run("import stacklstm; print(stacklstm.__version__)", env={"SLSTM_LIBRARY": MISSING})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == cmake_project_version()


def test_star_import_loads_no_library():
    r = run("from stacklstm import *; import stacklstm._lib as L; print(L.is_loaded())",
            env={"SLSTM_LIBRARY": MISSING})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_first_use_raises_LibraryNotFoundError_naming_the_override():
    r = run("import stacklstm\n"
            "try:\n"
            "    stacklstm.Model.random(4, [3], seed=1)\n"
            "except stacklstm.LibraryNotFoundError as e:\n"
            "    print('RAISED', isinstance(e, ImportError)); print(e)\n",
            env={"SLSTM_LIBRARY": MISSING})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("RAISED True")
    assert MISSING + " ($SLSTM_LIBRARY): no such file" in r.stdout


def test_without_override_the_error_lists_every_place_searched(tmp_path):
    if ctypes.util.find_library("stacklstm"):
        pytest.skip("a libstacklstm is installed system-wide: the system loader would find it")
    site = copy_package(tmp_path)
    r = run("import stacklstm\n"
            "try:\n"
            "    stacklstm.version()\n"
            "except stacklstm.LibraryNotFoundError as e:\n"
            "    print(e)\n", pythonpath=str(site))
    assert r.returncode == 0, r.stderr
    for name in ("libstacklstm.so", "libstacklstm.so.0"):
        assert "%s (next to the package): no such file" % (site / "stacklstm" / name) in r.stdout
    assert "(system loader)" in r.stdout
    assert "build directory" not in r.stdout   # a copy outside the checkout has none


def test_a_library_next_to_the_package_is_loaded(tmp_path):
    site = copy_package(tmp_path)
    dst = site / "stacklstm" / "libstacklstm.so.0"   # as the wheel ships it
    shutil.copyfile(real_library(), str(dst))
    r = run("import stacklstm; print(stacklstm.library_path); print(stacklstm.version())",
            pythonpath=str(site))
    assert r.returncode == 0, r.stderr
    path, version = r.stdout.split()
    assert path == str(dst)
    assert version == stacklstm.version()


def test_an_editable_install_finds_the_library_and_tool_in_another_package_folder(tmp_path):
    # pip install -e: the sources stay where they are and the built library and tool go to
    # site-packages/stacklstm, which the install's import hook adds to the package's __path__.
    site = copy_package(tmp_path)
    built = tmp_path / "site-packages" / "stacklstm"
    (built / "bin").mkdir(parents=True)
    dst = built / "libstacklstm.so.0"
    shutil.copyfile(real_library(), str(dst))
    tool = built / "bin" / "stacklstm"
    shutil.copyfile("/bin/true", str(tool))   # any native executable
    os.chmod(str(tool), 0o755)
    r = run("import stacklstm, stacklstm.cli as c\n"
            "stacklstm.__path__.append(%r)\n"
            "print(stacklstm.library_path); print(c.find_tool())" % str(built),
            pythonpath=str(site), env={"SLSTM_CLI": ""})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(dst), str(tool)]


def test_SLSTM_LIBRARY_overrides_the_library_next_to_the_package(tmp_path):
    site = copy_package(tmp_path)
    (site / "stacklstm" / "libstacklstm.so").write_bytes(b"not an ELF file")
    r = run("import stacklstm; print(stacklstm.library_path)", pythonpath=str(site),
            env={"SLSTM_LIBRARY": real_library()})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == real_library()


def test_a_library_that_fails_to_load_is_named_with_the_loaders_reason(tmp_path):
    site = copy_package(tmp_path)
    bad = site / "stacklstm" / "libstacklstm.so"
    bad.write_bytes(b"not an ELF file")
    r = run("import stacklstm\n"
            "try:\n"
            "    stacklstm.version()\n"
            "except stacklstm.LibraryNotFoundError as e:\n"
            "    print(e)\n", env={"SLSTM_LIBRARY": str(bad)})
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stdout.splitlines() if str(bad) in l]
    assert line and "no such file" not in line[0] and "($SLSTM_LIBRARY)" in line[0]


def test_a_failed_load_is_tried_again_on_the_next_use():
    r = run("import os, stacklstm\n"
            "try:\n"
            "    stacklstm.version()\n"
            "except stacklstm.LibraryNotFoundError:\n"
            "    print('first use failed')\n"
            "os.environ['SLSTM_LIBRARY'] = %r\n"
            "print(stacklstm.version())\n" % real_library(),
            env={"SLSTM_LIBRARY": MISSING})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["first use failed", stacklstm.version()]


def test_the_lib_proxy_calls_the_declared_C_functions():
    r = run("from stacklstm._lib import lib, is_loaded\n"
            "n = lib.slstm_version_number()\n"
            "print(is_loaded(), type(n).__name__, lib.slstm_version_number.restype.__name__)",
            env={"SLSTM_LIBRARY": real_library()})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "int", "c_uint"]


def test_probing_dunder_attributes_of_the_proxy_loads_nothing():
    r = run("import copy, inspect, stacklstm._lib as L\n"
            "inspect.unwrap(L.lib); copy.copy(L.lib); print(hasattr(L.lib, '__wrapped__'))\n"
            "print(L.is_loaded(), repr(L.lib))", env={"SLSTM_LIBRARY": MISSING})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["False", "False <stacklstm library: not loaded yet>"]


def test_python_m_stacklstm_help_works_without_the_library():
    if not os.path.exists(os.path.join(PKG, "stacklstm", "__main__.py")):
        pytest.skip("no stacklstm/__main__.py (the command-line entry point) in this tree")
    e = {k: v for k, v in os.environ.items() if k != "SLSTM_LIBRARY"}
    e.update(PYTHONPATH=PKG, SLSTM_LIBRARY=MISSING)
    r = subprocess.run([sys.executable, "-m", "stacklstm", "--help"], env=e, cwd="/",
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower()


def test_SLSTM_LIBRARY_is_the_only_candidate_even_when_it_cannot_load(tmp_path):
    site = copy_package(tmp_path)
    shutil.copyfile(real_library(), str(site / "stacklstm" / "libstacklstm.so"))
    r = run("import stacklstm\n"
            "try:\n"
            "    print(stacklstm.version())\n"
            "except stacklstm.LibraryNotFoundError as e:\n"
            "    print('RAISED'); print(e)\n", pythonpath=str(site),
            env={"SLSTM_LIBRARY": MISSING})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("RAISED\n")
    tried = [l for l in r.stdout.splitlines() if l.startswith("  ")]
    assert tried == ["  %s ($SLSTM_LIBRARY): no such file" % MISSING]


def test_SLSTM_LIBRARY_naming_a_directory_loads_libstacklstm_so_in_it(tmp_path):
    d = tmp_path / "libdir"
    d.mkdir()
    shutil.copyfile(real_library(), str(d / "libstacklstm.so"))
    r = run("import stacklstm; print(stacklstm.library_path)", env={"SLSTM_LIBRARY": str(d)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(d / "libstacklstm.so")


def fake_checkout(tmp_path, header=True):
    """A source tree around a copy of the package: CMakeLists.txt, include/stacklstm/
    stacklstm.h (when `header`) and python/stacklstm; build directories are the caller's."""
    root = tmp_path / "checkout"
    shutil.copytree(os.path.join(PKG, "stacklstm"), str(root / "python" / "stacklstm"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.so.*"))
    (root / "CMakeLists.txt").write_text("project(stacklstm VERSION 0.0.1)\n")
    if header:
        (root / "include" / "stacklstm").mkdir(parents=True)
        (root / "include" / "stacklstm" / "stacklstm.h").write_text("/* */\n")
    return root


def test_in_a_checkout_the_newest_build_directory_s_library_is_loaded(tmp_path):
    root = fake_checkout(tmp_path)
    for name, mtime in (("build-new", 2_000_000_000), ("build-old", 1_000_000_000)):
        (root / name).mkdir()
        lib = root / name / "libstacklstm.so"
        shutil.copyfile(real_library(), str(lib))
        os.utime(str(lib), (mtime, mtime))
    r = run("import stacklstm; print(stacklstm.library_path)",
            pythonpath=str(root / "python"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(root / "build-new" / "libstacklstm.so")


def test_a_folder_with_cmakelists_but_no_stacklstm_header_is_not_a_checkout(tmp_path):
    if ctypes.util.find_library("stacklstm"):
        pytest.skip("a libstacklstm is installed system-wide: the system loader would find it")
    root = fake_checkout(tmp_path, header=False)
    (root / "build").mkdir()
    shutil.copyfile(real_library(), str(root / "build" / "libstacklstm.so"))
    r = run("import stacklstm\n"
            "try:\n"
            "    print(stacklstm.library_path)\n"
            "except stacklstm.LibraryNotFoundError as e:\n"
            "    print('RAISED')\n", pythonpath=str(root / "python"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "RAISED"


def test_asking_for_missing_symbols_loads_the_library():
    r = run("import stacklstm._lib as L\n"
            "print(L.is_loaded()); print(L.missing_symbols); print(L.is_loaded())",
            env={"SLSTM_LIBRARY": real_library()})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "[]", "True"]


def test_the_lib_proxy_s_repr_names_the_loaded_file():
    real_library()   # loaded
    assert repr(stacklstm._lib.lib) == "<stacklstm library %s>" % stacklstm.library_path
