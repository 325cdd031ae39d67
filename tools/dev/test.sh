#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every suite (unit,
# integration, unit again under ASan+UBSan, each fuzzer for a fixed number of runs) and
# ends with one line "N passed, N failed" counted from meson's test logs.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"

export FLINC_TIMEOUT_SCALE=${FLINC_TIMEOUT_SCALE:-1}
status=0
logs=()

bash tools/dev/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

run_suite() { # build-dir, suite
  local dir=$1 suite=$2
  # each run writes its own log (meson-logs/testlog-<suite>.json): one testlog.json
  # per build dir would keep only the last suite run there
  rm -f "$dir/meson-logs/testlog-$suite.json"
  meson test -C "$dir" --print-errorlogs --timeout-multiplier "$FLINC_TIMEOUT_SCALE" \
    --logbase "testlog-$suite" --suite "$suite" || status=1
  logs+=("$dir/meson-logs/testlog-$suite.json")
}

run_suite build unit
run_suite build integration
run_suite build drills

# The unit suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dintegration=false
fi
if ninja -C build-asan; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suite build-asan unit
else
  status=1
fi

# libFuzzer targets, each for a fixed number of runs.
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzzers=true -Dintegration=false -Dtests=false
fi
if ninja -C build-fuzz; then
  run_suite build-fuzz fuzz
else
  status=1
fi

python3 - "${logs[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        failed += 1
        print(f"missing test log {path}")
        continue
    for line in lines:
        if not line.strip():
            continue
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
tail = f", {skipped} skipped" if skipped else ""
print(f"{passed} passed, {failed} failed{tail}")
sys.exit(1 if failed else 0)
PY
rc=$?
[ $status -eq 0 ] || rc=1
exit $rc
