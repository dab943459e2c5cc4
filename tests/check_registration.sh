#!/bin/sh
# Every CPU path the suite should run on has its tests registered with ctest, and every one of
# them runs with SLSTM_TEST_CPU_PATH=<path> in its environment (a registration that lost its
# environment would silently run the default path). Usage: check_registration.sh <build dir> <path>...
set -eu
build=$1
shift
ctest --test-dir "$build" --show-only=json-v1 > "$build/registration.json"
python3 - "$build/registration.json" "$@" <<'PY'
import json, sys
tests = json.load(open(sys.argv[1]))["tests"]
bad = 0
for path in sys.argv[2:]:
    mine = [t for t in tests if t["name"].startswith(f"cpu-{path}:")]
    wrong = []
    for t in mine:
        env = [v for p in t.get("properties", []) if p["name"] == "ENVIRONMENT" for v in p["value"]]
        if f"SLSTM_TEST_CPU_PATH={path}" not in env:
            wrong.append(t["name"])
    print(f"cpu-{path}: {len(mine)} tests registered, {len(wrong)} without SLSTM_TEST_CPU_PATH={path}")
    if not mine or wrong:
        bad = 1
        for name in wrong[:5]:
            print("  wrong environment:", name)
sys.exit(bad)
PY
