#!/bin/sh
# The Rust or Go binding against the INSTALLED library (issue 16, item 7). Installs the build
# tree into a scratch prefix, then builds against that prefix and runs, with the loader
# pointed there:
#   seed      examples/seed_checksum.c and the language's seed_checksum example; the example
#             must print exactly what the C program prints (shapes, the bitwise final-state
#             checks, output values, FNV-1a checksums of every float, a refused call's
#             message) and both must exit 0;
#   contract  the binding's own tests (cargo test / go test): errors, refused buffers, every
#             argument in its place, handles.
#
# Usage: check_foreign.sh rust|go seed|contract <build dir> <work dir> <examples source dir>
# The work dir is emptied first; everything built (cargo target dir, Go caches) goes there,
# nothing into the source tree. Exit 77 (ctest: skipped) when the toolchain is missing.
# Environment: CMAKE and CC (default: cmake, cc), CARGO, GO (default: found on PATH; cargo
# also in ~/.cargo/bin, where rustup puts it); SLSTM_LIBRARY_SANITIZERS, when not empty, says
# the build is instrumented (SLSTM_SANITIZE): skipped, as no Rust or Go program can load it.
set -eu
lang=$1
what=$2
build=$3
work=$4
src=$5
case $what in
seed | contract) ;;
*)
  echo "usage: $0 rust|go seed|contract <build dir> <work dir> <examples source dir>" >&2
  exit 2
  ;;
esac

skip() {
  echo "SKIPPED ($lang $what check): $*"
  exit 77
}

if [ -n "${SLSTM_LIBRARY_SANITIZERS:-}" ]; then
  # An uninstrumented program cannot load an ASan library ("runtime does not come first").
  skip "the library is built with SLSTM_SANITIZE=$SLSTM_LIBRARY_SANITIZERS; the bindings run against plain builds"
fi
case $lang in
rust)
  cargo=${CARGO:-$(command -v cargo || true)}
  if [ -z "$cargo" ] && [ -x "${HOME:-/nonexistent}/.cargo/bin/cargo" ]; then
    cargo=$HOME/.cargo/bin/cargo
  fi
  [ -n "$cargo" ] || skip "cargo not found (Debian: apt-get install cargo; or rustup); set CARGO to use another"
  # rustup's cargo finds its rustc next to it.
  PATH=$(dirname "$cargo"):$PATH
  export PATH
  ;;
go)
  go=${GO:-$(command -v go || true)}
  [ -n "$go" ] || skip "go not found (Debian: apt-get install golang-go); set GO to use another"
  command -v pkg-config > /dev/null || skip "pkg-config not found (the cgo binding finds the library with it)"
  ;;
*)
  echo "usage: $0 rust|go seed|contract <build dir> <work dir> <examples source dir>" >&2
  exit 2
  ;;
esac

rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix
"${CMAKE:-cmake}" --install "$build" --prefix "$prefix" > "$work/install.log"
lib=$(find "$prefix" -name 'libstacklstm.so' | head -n 1)
[ -n "$lib" ] || { echo "no libstacklstm.so under $prefix" >&2; exit 1; }
libdir=$(dirname "$lib")
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH

# Where the binding finds the installed library.
if [ "$lang" = go ] || command -v pkg-config > /dev/null; then
  unset SLSTM_PREFIX
  PKG_CONFIG_PATH=$libdir/pkgconfig
  export PKG_CONFIG_PATH
else
  SLSTM_PREFIX=$prefix # build.rs's fallback when there is no pkg-config
  export SLSTM_PREFIX
fi
if [ "$lang" = rust ]; then
  # A copy of the workspace, so that Cargo.lock and target/ land in the work dir.
  mkdir -p "$work/rust"
  cp -R "$src/rust/Cargo.toml" "$src/rust/stacklstm-sys" "$src/rust/stacklstm" "$work/rust/"
fi
# Runs the language's tool with every cache and output under the work dir.
tool() {
  case $lang in
  rust) (cd "$work/rust" && CARGO_TARGET_DIR="$work/rust/target" "$cargo" "$@" --offline --release) ;;
  go) (cd "$src/go" && GOCACHE="$work/go-cache" GOPATH="$work/go-path" GOFLAGS=-mod=mod \
    GOPROXY=off GO111MODULE=on CGO_ENABLED=1 "$go" "$@") ;;
  esac
}

log=$work/build.log
start=$(date +%s)
if [ "$what" = contract ]; then
  case $lang in
  rust) tool test --tests > "$log" 2>&1 || { cat "$log"; echo "FAIL: cargo test" >&2; exit 1; } ;;
  go) tool test -count=1 -v ./... > "$log" 2>&1 || { cat "$log"; echo "FAIL: go test" >&2; exit 1; } ;;
  esac
  grep -E '^(test |--- |ok|FAIL|test result)' "$log" || true
  echo "ok: the $lang binding's tests pass against the installed library ($(($(date +%s) - start)) s)"
  exit 0
fi

case $lang in
rust)
  tool build --example seed_checksum > "$log" 2>&1 || { cat "$log"; exit 1; }
  bin=$work/rust/target/release/examples/seed_checksum
  ;;
go)
  tool build -o "$work/seed_checksum_go" ./cmd/seed_checksum > "$log" 2>&1 || { cat "$log"; exit 1; }
  bin=$work/seed_checksum_go
  ;;
esac
echo "$lang example built in $(($(date +%s) - start)) s against $prefix"

# The C reference, against the same prefix (strict C99: no contraction into FMAs).
"${CC:-cc}" -std=c99 -ffp-contract=off -o "$work/seed_checksum_c" "$src/seed_checksum.c" \
  -I"$prefix/include" -L"$libdir" -lstacklstm
"$work/seed_checksum_c" > "$work/expected.txt" || {
  cat "$work/expected.txt"
  echo "FAIL: the C reference failed" >&2
  exit 1
}
status=0
"$bin" > "$work/actual.txt" || status=$?
cat "$work/actual.txt"
if ! diff -u "$work/expected.txt" "$work/actual.txt"; then
  echo "FAIL: the $lang example's output differs from examples/seed_checksum.c's (above)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "FAIL: the $lang example exited with $status" >&2
  exit 1
fi
echo "ok: the $lang example prints what the C reference prints, against the installed library"
