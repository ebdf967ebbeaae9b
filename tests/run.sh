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
# runner counts everything. Tests marked kvm need /dev/kvm: on a machine without it they run in
# the nested KVM host (tests/nested/nested.py: Debian's kernel with kvm_amd under QEMU's
# emulated SVM), so that isola's VMs meet real KVM here too.
pytest=(/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE)
# The guest kernel, before the tests that boot it (the first build takes about 10 CPU-minutes;
# later runs find it in /var/cache/isola/kernel). If it fails, test_kernel.py says why.
kernel-config/build.sh --print-path >/dev/null || echo "run.sh: the guest kernel did not build" >&2
export ISOLA_BUILDS=build,build-asan
if [[ -r /dev/kvm && -w /dev/kvm ]] || [[ ${ISOLA_NESTED:-1} == 0 ]] ||
  ! tests/nested/nested.py prepare >/dev/null; then
  "${pytest[@]}" --junitxml="$out/junit.xml" tests/integration "$@"
  rc=$?
else
  "${pytest[@]}" -m "not kvm" --junitxml="$out/junit.xml" tests/integration "$@"
  rc=$?
  echo "the kvm tests, in the nested KVM host (no /dev/kvm here):"
  PYTHONDONTWRITEBYTECODE=1 tests/nested/nested.py run --share "$out" -- \
    "${pytest[@]}" -m kvm --junitxml="$out/junit-kvm.xml" tests/integration "$@"
  r=$?
  ((r > rc)) && rc=$r
  [[ -s $out/junit-kvm.xml ]] || echo '<testsuite tests="1" failures="1"/>' >"$out/junit-kvm.xml"
fi
/usr/bin/python3 - "$out"/junit*.xml <<'PY'
import sys, xml.etree.ElementTree as ET
suites = []
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except Exception:
        root = ET.fromstring('<testsuite tests="1" failures="1"/>')
    suites += [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
line = f"{tests - failed - skipped} passed, {failed} failed"
print(line + (f", {skipped} skipped" if skipped else ""))
PY
exit $rc
