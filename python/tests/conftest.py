"""Shared pytest fixtures. The library under test is $SLSTM_LIBRARY when set (CI sets it to
the freshly built build/libstacklstm.so), else the package's own search order."""
import importlib.util
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
sys.path.insert(0, os.path.dirname(HERE))   # the package from this source tree


def _gen_fixtures():
    spec = importlib.util.spec_from_file_location(
        "gen_fixtures", os.path.join(FIXTURES, "gen_fixtures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def gen():
    """tests/fixtures/gen_fixtures.py as a module (its strict .fix parser)."""
    return _gen_fixtures()


@pytest.fixture(scope="session")
def load_fix(gen):
    def load(name):
        return gen.load_fixture(os.path.join(FIXTURES, name + ".fix"))
    return load


@pytest.fixture(scope="session")
def fixture_names():
    def names(prefix):
        return sorted(f[:-4] for f in os.listdir(FIXTURES)
                      if f.startswith(prefix) and f.endswith(".fix"))
    return names


@pytest.fixture
def emulated_cuda_env():
    """The environment of a child process whose CUDA module is the emulated one of
    tests/cuda_emu (next to $SLSTM_LIBRARY; the library loads its CUDA module once per
    process, hence a child), with this checkout's package first on PYTHONPATH.  Skips the
    test where the build has none (a build without the CUDA toolkit)."""
    lib = os.environ.get("SLSTM_LIBRARY", "")
    path = os.path.join(os.path.dirname(os.path.abspath(lib)), "tests",
                        "libslstm_cuda_emu.so") if lib else ""
    if not path or not os.path.exists(path):
        pytest.skip("no emulated CUDA module next to $SLSTM_LIBRARY (a build without CUDA)")
    python_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return dict(os.environ, SLSTM_CUDA_MODULE=path,
                PYTHONPATH=python_dir + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture
def cuda_backend():
    """Skips the test unless the library's CUDA backend can run here (a GPU, its driver and
    the CUDA module), naming why."""
    import stacklstm
    ok, why = stacklstm.backend_available("cuda")
    if not ok:
        # On the GPU check (bench/gpu/check.sh sets SLSTM_REQUIRE_CUDA=1) a backend that does
        # not load is a failure, not a skip.
        if os.environ.get("SLSTM_REQUIRE_CUDA") == "1":
            pytest.fail("SLSTM_REQUIRE_CUDA=1 but the library's CUDA backend is unavailable: %s"
                        % why)
        pytest.skip("the library's CUDA backend is unavailable: %s" % why)
