#!/usr/bin/env bash
# The Python source distribution: stacklstm-<version>.tar.gz, which `pip install` builds on
# any Linux with a C++17 compiler and CMake >= 3.25 (the CUDA module too where a CUDA toolkit
# is found, as `pip install ./python` does).  python/pyproject.toml builds from a checkout
# (its CMake project adds ../), which an sdist of python/ alone cannot hold; so the sdist is
# made from a copy of the checkout's files (tracked, and untracked but not ignored, less
# virtual environments and build trees: python/checkout_files.py) with a
# pyproject.toml at its top: python/pyproject.toml with its paths taken from there
# (cmake.source-dir = "python").  The one source of the package metadata stays
# python/pyproject.toml.
#
#   bash python/make_sdist.sh [OUT_DIR]       (default: dist/ in the checkout)
#
# PYTHON: a python3 that imports scikit_build_core (default: python3; without it, one is
# installed into a temporary venv from PyPI).  Prints the sdist's path last.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d /tmp/stacklstm-sdist.XXXXXX)
trap 'rm -rf "$stage"' EXIT

py=${PYTHON:-python3}
if ! "$py" -c "import scikit_build_core" 2>/dev/null; then
  /usr/bin/python3 -m venv "$stage/tools"
  "$stage/tools/bin/pip" install -q --disable-pip-version-check "scikit-build-core>=0.10"
  py=$stage/tools/bin/python
fi

mkdir "$stage/src"
/usr/bin/python3 "$root/python/checkout_files.py" "$root" |
  (cd "$root" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$stage/src"

# python/pyproject.toml, its paths from the top; each edit must apply exactly once, so that
# a change there that this script does not know fails here instead of making a wrong sdist.
"$py" - "$stage/src/python/pyproject.toml" "$stage/src/pyproject.toml" <<'EOF'
import sys
text = open(sys.argv[1]).read()
edits = [
    ('readme = "README.md"', 'readme = "python/README.md"'),
    ('[tool.scikit-build]\n',
     '[tool.scikit-build]\n'
     '# Made by python/make_sdist.sh from python/pyproject.toml: the build runs python/.\n'
     'cmake.source-dir = "python"\n'
     '# Not needed to build: measurements, fuzzing seeds, test fixtures.\n'
     'sdist.exclude = ["bench/results", "fuzz/corpus", "tests/fixtures/*.fix", "dist"]\n'),
    ('wheel.packages = ["stacklstm"]', 'wheel.packages = ["python/stacklstm"]'),
    ('wheel.license-files = ["../LICENSE"]', 'wheel.license-files = ["LICENSE"]'),
    ('input = "../CMakeLists.txt"', 'input = "CMakeLists.txt"'),
]
for old, new in edits:
    if text.count(old) != 1:
        sys.exit("make_sdist.sh: python/pyproject.toml has %d of %r (expected 1)"
                 % (text.count(old), old))
    text = text.replace(old, new)
open(sys.argv[2], "w").write(text)
EOF

cd "$stage/src"
name=$("$py" -c "
import scikit_build_core.build as b
print(b.build_sdist('$out'))" | tail -1)
echo "$out/$name"
