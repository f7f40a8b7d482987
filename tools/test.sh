#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tools/test.sh — the whole test suite. Set-up, then three builds:
#   build-test/asan-gcc     gcc, ASan+UBSan     suites unit, bus, integration
#   build-test/asan-clang   clang, ASan+UBSan   suites unit, bus, integration, fuzz (libFuzzer)
#   build-test/plain        gcc, optimized      suite vm (the real kernel under QEMU)
# Any sanitizer report fails its test. The last line is "N passed, N failed"; a skipped test
# counts as failed. Extra arguments go to every `meson test` (e.g. --suite unit).
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

ROOT=${BUILD_ROOT:-build-test}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-}

configs=(
        "asan-gcc|gcc|-Db_sanitize=address,undefined -Db_lundef=false -Dvm-tests=false|unit bus integration"
        "asan-clang|clang|-Db_sanitize=address,undefined -Db_lundef=false -Dvm-tests=false -Dfuzz=true|unit bus integration fuzz"
        "plain|gcc|-Dvm-tests=true|vm"
)

logs=()
build_failed=0
for c in "${configs[@]}"; do
        IFS='|' read -r name compiler options suites <<<"$c"
        dir=$ROOT/$name
        if [[ ! -f $dir/build.ninja ]]; then
                # shellcheck disable=SC2086
                CC=$compiler meson setup "$dir" $options >"$ROOT-$name-setup.log" 2>&1 || {
                        cat "$ROOT-$name-setup.log"; build_failed=$((build_failed + 1)); continue; }
        fi
        if ! ninja -C "$dir" >"$dir/ninja.log" 2>&1; then
                cat "$dir/ninja.log"
                build_failed=$((build_failed + 1))
                continue
        fi
        args=()
        for s in $suites; do
                # Only ask for suites that have tests in this build (meson fails on unknown ones).
                meson test -C "$dir" --list --suite "$s" >/dev/null 2>&1 && args+=(--suite "$s")
        done
        ((${#args[@]})) || continue
        echo "== $name: ${args[*]}"
        rm -f "$dir/meson-logs/testlog.json"
        meson test -C "$dir" --print-errorlogs --num-processes 2 "${args[@]}" "$@"
        logs+=("$dir/meson-logs/testlog.json")
done

# Count from meson's machine-readable logs: a skip is not a pass.
/usr/bin/python3 - "$build_failed" "${logs[@]}" <<'PY'
import json, sys
passed, failed = 0, int(sys.argv[1])
for path in sys.argv[2:]:
    try:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("result") in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                else:
                    failed += 1
                    print(f"FAILED: {path.split('/')[-3]}: {r.get('name')} ({r.get('result')})")
    except FileNotFoundError:
        failed += 1
        print(f"FAILED: no results in {path}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
