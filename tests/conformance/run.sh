#!/bin/bash
# Run the OCI runtime-tools validation suite against one runtime.
#
# usage: tests/conformance/run.sh RUNTIME_PATH [OUTDIR]  (not part of the CI suite; see
# docs/conformance.md for building the suite outside this repository)
#
# env:
#   SUITE_DIR   runtime-tools checkout with built *.t / runtimetest
#               (default /work/ext/runtime-tools)
#   TEST_TIMEOUT  per-test timeout in seconds (default 120)
#   TESTS       space-separated test names to run (default: all)
#   CLEANUP     1 (default): after each test, `RUNTIME delete -f` any container
#               that appeared during the test (uses `RUNTIME list -q`).
#   SUMMARY_ONLY=1  don't run anything, just re-print the summary of OUTDIR.
#
# Writes OUTDIR/<name>.tap (stdout), OUTDIR/<name>.err (stderr),
# OUTDIR/<name>.rc (exit status), OUTDIR/summary.txt.
set -u

if [ $# -lt 1 ]; then
	echo "usage: $0 RUNTIME_PATH [OUTDIR]" >&2
	exit 2
fi
RUNTIME_PATH=$(readlink -f "$(command -v "$1" || echo "$1")")
[ -x "$RUNTIME_PATH" ] || { echo "runtime not executable: $1" >&2; exit 2; }
OUTDIR=${2:-/work/ext/results/$(basename "$RUNTIME_PATH")-$(date +%Y%m%d-%H%M%S)}
SUITE_DIR=${SUITE_DIR:-/work/ext/runtime-tools}
TEST_TIMEOUT=${TEST_TIMEOUT:-120}
CLEANUP=${CLEANUP:-1}

mkdir -p "$OUTDIR"
OUTDIR=$(readlink -f "$OUTDIR")
cd "$SUITE_DIR" || exit 2
[ -x runtimetest ] || { echo "missing $SUITE_DIR/runtimetest (build first)" >&2; exit 2; }
[ -f rootfs-amd64.tar.gz ] || { echo "missing $SUITE_DIR/rootfs-amd64.tar.gz" >&2; exit 2; }

# Bundles go to a private TMPDIR so leftovers are easy to find.
export TMPDIR="$OUTDIR/tmp"
mkdir -p "$TMPDIR"
export RUNTIME="$RUNTIME_PATH"

list_ids() { "$RUNTIME_PATH" list -q 2>/dev/null | sort; }
BASE_IDS=$(list_ids)

if [ -n "${TESTS:-}" ]; then
	tests=()
	for n in $TESTS; do tests+=("validation/$n/$n.t"); done
else
	tests=(validation/*/*.t)
fi

start_all=$(date +%s)
[ "${SUMMARY_ONLY:-0}" = 1 ] && tests=()   # just re-summarize OUTDIR
for t in "${tests[@]}"; do
	name=$(basename "$t" .t)
	[ -x "$t" ] || { echo "missing $t" >&2; echo 127 >"$OUTDIR/$name.rc"; continue; }
	s=$(date +%s.%N)
	timeout -k 10 "$TEST_TIMEOUT" "./$t" >"$OUTDIR/$name.tap" 2>"$OUTDIR/$name.err" </dev/null
	rc=$?
	e=$(date +%s.%N)
	echo "$rc" >"$OUTDIR/$name.rc"
	printf '%-40s rc=%-3s %6.1fs\n' "$name" "$rc" "$(echo "$e - $s" | bc)"
	# Mounts leaked into the host namespace under our TMPDIR (e.g. by
	# rootfsPropagation=shared): record and lazily unmount them.
	leaked=$(awk -v d="$TMPDIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
	if [ -n "$leaked" ]; then
		echo "$leaked" >"$OUTDIR/$name.leaked-mounts"
		echo "  (leaked $(echo "$leaked" | wc -l) mounts under TMPDIR; unmounting)"
		for m in $leaked; do umount -l "$m" 2>/dev/null; done
	fi
	if [ "$CLEANUP" = 1 ]; then
		for id in $(comm -13 <(echo "$BASE_IDS") <(list_ids)); do
			"$RUNTIME_PATH" delete -f "$id" >/dev/null 2>&1 || true
			echo "  (cleaned leftover container $id)"
		done
	fi
done
end_all=$(date +%s)

# ---- summary ----
{
	echo "runtime: $RUNTIME_PATH"
	echo "outdir:  $OUTDIR"
	echo "wall:    $((end_all - start_all)) s"
	# Iterate over .rc files so tests with empty TAP output are counted too.
	awk -v outdir="$OUTDIR" '
	FNR == 1 {
		name = FILENAME; sub(".*/", "", name); sub("\\.(tap|rc)$", "", name)
		if (FILENAME ~ /\.rc$/) { rcval[name] = $0 + 0; files[name] = 1; next }
		nassert[name] = 0
	}
	FILENAME ~ /\.rc$/ { next }
	# several plans may appear (runtimetest TAP + outer TAP): sum them
	/^1\.\.[0-9]+/ { plan[name] += substr($1, 4) + 0; hasplan[name] = 1 }
	/^(not )?ok( |$)/ {
		nassert[name]++
		line = $0
		isnot = (line ~ /^not ok/)
		skip = (line ~ /#[ \t]*[Ss][Kk][Ii][Pp]/)
		todo = (line ~ /#[ \t]*[Tt][Oo][Dd][Oo]/)
		if (skip) nskip++
		else if (todo) { ntodo++; if (isnot) ntodofail++ }
		else if (isnot) { nnot++; fails[++nf] = name ": " line }
		else nok++
	}
	END {
		printf "assertions: ok=%d  not_ok=%d  skip=%d  todo=%d (todo-failing=%d)\n", nok, nnot, nskip, ntodo, ntodofail
		ntests = 0
		for (n in files) {
			ntests++
			rc = rcval[n]
			if (rc == 124 || rc == 137) timedout[++nto] = n
			else if (rc != 0) crashed[++ncr] = n " (rc=" rc ", " nassert[n] + 0 " assertions)"
			else if (!(n in hasplan)) { if (n ~ /_fail$/) negpass[++nnp2] = n; else noplan[++nnp] = n " (no plan)" }
			else if (plan[n] != nassert[n]) noplan[++nnp] = n " (plan " plan[n] ", got " nassert[n] ")"
		}
		printf "tests run: %d  exited-nonzero=%d  timed_out=%d  plan_mismatch=%d\n", ntests, ncr, nto, nnp
		for (i = 1; i <= ncr; i++) print "  EXIT!=0  " crashed[i]
		for (i = 1; i <= nto; i++) print "  TIMEOUT  " timedout[i]
		for (i = 1; i <= nnp; i++) print "  PLAN     " noplan[i]
		for (i = 1; i <= nnp2; i++) print "  NEG-PASS " negpass[i] " (no TAP, rc=0: runtime rejected the bad config as required)"
		print "failing assertions:"
		for (i = 1; i <= nf; i++) print "  " fails[i]
	}' "$OUTDIR"/*.rc "$OUTDIR"/*.tap
	for f in "$OUTDIR"/*.leaked-mounts; do
		[ -e "$f" ] && echo "leaked host mounts: $(basename "$f" .leaked-mounts) ($(wc -l <"$f"))"
	done
} | tee "$OUTDIR/summary.txt"

# Leftover bundles: remove only if nothing is still mounted below TMPDIR.
if grep -q " $TMPDIR/" /proc/self/mountinfo; then
	echo "WARNING: mounts remain under $TMPDIR; not removing it" >&2
else
	rm -rf --one-file-system "$TMPDIR"
fi

# Cgroups the suite creates (cgroups.AbsCgroupPath=/cgrouptest,
# RelCgroupPath=testdir/cgrouptest/container) may be left behind by the
# runtime. Report them, and rmdir the empty ones (deepest first).
left=$(ls -d /sys/fs/cgroup/*/testdir/cgrouptest/container /sys/fs/cgroup/*/testdir/cgrouptest \
	/sys/fs/cgroup/*/testdir /sys/fs/cgroup/*/cgrouptest /sys/fs/cgroup/testdir/cgrouptest/container \
	/sys/fs/cgroup/testdir/cgrouptest /sys/fs/cgroup/testdir /sys/fs/cgroup/cgrouptest 2>/dev/null | sort -r)
if [ -n "$left" ]; then
	echo "leftover cgroup dirs: $(echo "$left" | wc -l) (e.g. $(echo "$left" | head -1)); removing empty ones" | tee -a "$OUTDIR/summary.txt"
	for d in $left; do rmdir "$d" 2>/dev/null; done
fi
