#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds (plain and ASan+UBSan), runs the C unit
# tests and the integration tests against both builds, and ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1
scripts/build.sh --asan || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=99}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=98}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Unit tests run under both builds as part of pytest (tests/integration/test_unit.py), so one
# runner counts everything.
ISOLA_BUILDS=build,build-asan /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE \
  --junitxml="$out/junit.xml" tests/integration "$@"
rc=$?
/usr/bin/python3 - "$out/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 passed, 1 failed")
    sys.exit(0)
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
line = f"{tests - failed - skipped} passed, {failed} failed"
print(line + (f", {skipped} skipped" if skipped else ""))
PY
exit $rc
