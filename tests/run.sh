#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine (the README's test command).
# Installs what is missing (Debian packages), configures, builds and runs ctest, which fails
# when any test fails or when no test ran.   Usage: bash tests/run.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}

source .ci/ensure-packages.sh
# Debian packages the build and the tests need.
packages=(cmake g++ make catch2 pkg-config binutils libopenblas-dev nlohmann-json3-dev
          python3-numpy python3-pytest python3-pip python3-setuptools
          python3-torch   # torch: the PyTorch example and converter tests run, not skip
          cargo golang-go  # the Rust and Go examples (examples/rust, examples/go) run, not skip
          python3-venv git  # tests/wheel.sh: a fresh venv, a clean copy of the tree
          shellcheck  # tests/check_scripts.sh: the GPU check scripts
          locales)  # tests/check_locale.sh: a comma-decimal locale, made from its sources
ensure_packages "${packages[@]}"

echo "== configure ($build)"
cmake -S . -B "$build" -DSLSTM_WERROR=ON -DSLSTM_BUILD_TESTS=ON
echo "== build"
cmake --build "$build" -j"$(nproc)"
echo "== test"
ctest --test-dir "$build" --output-on-failure --no-tests=error -j"$(nproc)"

# The Python package (python/) against the library just built. Debian's /usr/bin/python3
# with python3-numpy and python3-pytest (a `python3` earlier on PATH, e.g. pyenv, may lack
# numpy). pytest's exit status 5 means no test was collected: a failure here.
echo "== python package tests"
set +e
SLSTM_LIBRARY="$PWD/$build/libstacklstm.so" SLSTM_CLI="$PWD/$build/cli/stacklstm" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests
py_rc=$?
set -e
if [ "$py_rc" -eq 5 ]; then
  echo "python package tests: no test collected" >&2
  exit 1
fi
[ "$py_rc" -eq 0 ] || exit "$py_rc"

# stacklstm.ray against a local Ray cluster started inside the tests (python/tests/test_ray.py)
# and the two Ray examples. Ray goes into a venv that sees Debian's packages, never into
# Debian's python itself: its pyarrow would pull numpy 2, which Debian's torch is not built
# for, hence the pins (numpy as Debian ships it, a pyarrow that supports it).
# The same venv gets onnx and onnxruntime: the ONNX node test cases of the onnx package (every
# LSTM and GRU case, issue 20), the ONNX converters and the to_onnx round trip run there.
echo "== ray, onnx (and mypy)"
ray_venv="$build/venv-ray"
[ -x "$ray_venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$ray_venv"
"$ray_venv/bin/python" -m pip install -q "ray[data,serve]==2.60.0" \
  "numpy==$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)')" "pyarrow<20" mypy \
  onnx onnxruntime
export SLSTM_LIBRARY="$PWD/$build/libstacklstm.so"
set +e
"$ray_venv/bin/python" -m pytest -q -p no:cacheprovider -rs python/tests/test_ray.py \
  python/tests/test_pythonic.py \
  python/tests/test_onnx_node_cases.py python/tests/test_cells_onnx.py \
  python/tests/test_naming.py python/tests/test_examples.py  # mypy and onnx run here
ray_rc=$?
set -e
[ "$ray_rc" -eq 0 ] || { echo "ray tests failed (pytest exit $ray_rc)" >&2; exit 1; }
"$ray_venv/bin/python" examples/ray/score_dataset.py --rows 300
"$ray_venv/bin/python" examples/ray/serve_streams.py --kill
unset SLSTM_LIBRARY

# The fixtures still say what their generator computes (float64 NumPy, < 1 s).
echo "== fixtures"
/usr/bin/python3 tests/fixtures/gen_fixtures.py --verify

# The wheel as a user installs it: pip wheel ./python, auditwheel, a fresh venv, checks from /.
echo "== wheel"
bash tests/wheel.sh
