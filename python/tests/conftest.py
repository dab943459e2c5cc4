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
def cuda_backend():
    """Skips the test unless the library's CUDA backend can run here (a GPU, its driver and
    the CUDA module), naming why."""
    import stacklstm
    ok, why = stacklstm.backend_available("cuda")
    if not ok:
        pytest.skip("the library's CUDA backend is unavailable: %s" % why)
