#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined) in their own
# build directory and runs each for a bounded time.   Usage: bash fuzz/run.sh [target...]
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_BUILD     build directory (default build-fuzz)
# New inputs go to $FUZZ_BUILD/corpus/<target>; the committed seeds in fuzz/corpus/<target>
# are only read.  A crash, leak, sanitizer report or property violation leaves its input in
# $FUZZ_BUILD/artifacts/ and makes this script fail; reproduce it with
#   $FUZZ_BUILD/<target> <artifact>
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD:-build-fuzz}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_api fuzz_model_file fuzz_npy)

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz/run.sh: $tool not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
done

echo "== fuzz: configure and build ($build)"
CC=clang CXX=clang++ cmake -S fuzz -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"

# allocator_may_return_null + max_allocation_size_mb: an absurd allocation the decoder asks
# for fails (the library must report SLSTM_ERR_OUT_OF_MEMORY) instead of ending the process.
export ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=2048:detect_leaks=1:${ASAN_OPTIONS:-}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}
export OPENBLAS_NUM_THREADS=1

# fuzz_model_file: up to 4 MiB, so that it reaches large headers (the seeds include a
# ~300 kB one); -len_control grows lengths from the seeds' sizes.
declare -A max_len=([fuzz_api]=1024 [fuzz_model_file]=4194304 [fuzz_npy]=65536)
mkdir -p "$build/artifacts"
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t"
  echo "== fuzz: $t for ${seconds}s"
  set +e
  "$build/$t" "$build/corpus/$t" "fuzz/corpus/$t" \
    -max_total_time="$seconds" -max_len="${max_len[$t]:-4096}" -timeout=30 -rss_limit_mb=2560 \
    -artifact_prefix="$build/artifacts/$t-" -print_final_stats=1 >"$build/$t.log" 2>&1
  status=$?
  set -e
  grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)|NEW_FUNC\[|# Uses: [0-9]+$|WARNING: AddressSanitizer failed to allocate' "$build/$t.log" | tail -n 80 || true
  if [ "$status" -ne 0 ]; then
    echo "== fuzz: $t FAILED (exit $status); artifacts in $build/artifacts/" >&2
    exit 1
  fi
  echo "== fuzz: $t passed"
done
