#!/usr/bin/env bash
# Packs what check.sh needs from a build folder into a small folder that a device session
# carries (the full build folder plus OpenBLAS would crowd the 64 MiB limit):
#   DEST/libstacklstm.so.0, DEST/libstacklstm_cuda.so, DEST/tests/gpu/slstm_gpu_tests,
#   DEST/bench/gpu/slstm_gpu_bench, DEST/carry-libs/ (non-system libraries the core needs,
#   e.g. OpenBLAS and libgfortran, which the device image may lack; never CUDA libraries),
#   DEST/examples/seed_demo (the README's demo), DEST/tests/slstm_tests (the CPU suite, for
#   its [cuda-generic] cases: the generic path on the real module), and, when the build has them, DEST/bench/anchors/{cudnn_anchor,ceilings} (bench/anchors:
#   their $ORIGIN/../.. run path finds DEST/libstacklstm.so.0), so that one folder serves
#   check.sh, bench/anchors/run.sh and bench/run.sh --gpu-only.
# Usage (on the build machine, from the repository root):
#   bench/gpu/pack_carry.sh [BUILD=build-cuda] [DEST=build-gpu]
set -euo pipefail
BUILD=${1:-build-cuda}
DEST=${2:-build-gpu}
for f in "$BUILD/libstacklstm.so.0" "$BUILD/libstacklstm_cuda.so" \
         "$BUILD/tests/gpu/slstm_gpu_tests" "$BUILD/bench/gpu/slstm_gpu_bench"; do
  [ -e "$f" ] || { echo "pack_carry: missing $f (build with the CUDA module first)"; exit 1; }
done
rm -rf "$DEST"
mkdir -p "$DEST/tests/gpu" "$DEST/bench/gpu" "$DEST/carry-libs"
cp -L "$BUILD/libstacklstm.so.0" "$DEST/"
cp -L "$BUILD/libstacklstm_cuda.so" "$DEST/"
cp -L "$BUILD/tests/gpu/slstm_gpu_tests" "$DEST/tests/gpu/"
cp -L "$BUILD/bench/gpu/slstm_gpu_bench" "$DEST/bench/gpu/"
if [ -x "$BUILD/bench/gpu/slstm_gpu_mechanisms" ]; then
  cp -L "$BUILD/bench/gpu/slstm_gpu_mechanisms" "$DEST/bench/gpu/"
fi
if [ -x "$BUILD/tests/slstm_tests" ]; then
  cp -L "$BUILD/tests/slstm_tests" "$DEST/tests/"
fi
if [ -x "$BUILD/examples/seed_demo" ]; then
  mkdir -p "$DEST/examples" && cp -L "$BUILD/examples/seed_demo" "$DEST/examples/"
fi
if [ -x "$BUILD/bench/anchors/cudnn_anchor" ] && [ -x "$BUILD/bench/anchors/ceilings" ]; then
  mkdir -p "$DEST/bench/anchors"
  cp -L "$BUILD/bench/anchors/cudnn_anchor" "$BUILD/bench/anchors/ceilings" "$DEST/bench/anchors/"
else
  echo "pack_carry: no anchors in $BUILD/bench/anchors (bench/anchors/run.sh would build them there)"
fi
# Non-system, non-CUDA dependencies of the core (resolved here).
ldd "$BUILD/libstacklstm.so.0" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' |
  while read -r name path; do
    case "$name" in
      libc.so*|libm.so*|libstdc++.so*|libgcc_s.so*|ld-linux*|libpthread.so*|libdl.so*|librt.so*) ;;
      libcu*|libnv*) ;;
      *) cp -L "$path" "$DEST/carry-libs/$name" ;;
    esac
  done
strip --strip-unneeded "$DEST"/carry-libs/* 2>/dev/null || true
# The commit the binaries come from (bench/run.sh labels the GPU table with it).
{ c="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  git diff --quiet HEAD -- cuda src include capi 2>/dev/null && echo "$c" ||
    echo "$c + uncommitted changes"; } > "$DEST/COMMIT"
du -sh "$DEST"
ls -la "$DEST" "$DEST/carry-libs"
