#!/usr/bin/env bash
# runtime-run.sh: wall-clock time of `RUNTIME run` of `true` in one busybox bundle, for
# isola-runtime, crun and runc, interleaved round-robin (isola, crun, runc, isola, ...), each
# run with its own container id and its own --root. Prints one table (median, p10, p90, ratio
# to isola's median), or JSON with --json. A measurement, not a test: no thresholds.
#
# usage: bench/runtime-run.sh [-n RUNS] [-w WARMUP] [--json] [--mode v1ns|host]
#                             [--runtimes isola,crun,runc] [--keep]
#   -n RUNS      timed runs per runtime (default 30, at least 20 advised)
#   -w WARMUP    untimed rounds first (default 2)
#   --mode v1ns  (default) run everything in a private mount namespace where the cgroup2
#                mount /sys/fs/cgroup/unified is unmounted, so all three runtimes see a pure
#                cgroup v1 host and all three create and remove cgroups. Needed because crun
#                1.8.1 refuses hybrid cgroups (even with --cgroup-manager=disabled).
#   --mode host  the host as it is (hybrid cgroups); crun is tried and left out if it fails.
#   --keep       keep the work directory (bundle, per-run logs, samples)
# environment: ISOLA_RUNTIME, CRUN, RUNC (binaries), BENCH_TMP (where the work dir goes).
# Needs root. Temporary files go to a fresh directory under ${BENCH_TMP:-/tmp}.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
args=("$@")
runs=30 warmup=2 json=0 mode=v1ns keep=0 want=isola,crun,runc
while [ $# -gt 0 ]; do
  case $1 in
    -n|--runs) runs=$2; shift 2 ;;
    -w|--warmup) warmup=$2; shift 2 ;;
    --json) json=1; shift ;;
    --mode) mode=$2; shift 2 ;;
    --runtimes) want=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "runtime-run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $mode in v1ns|host) ;; *) echo "runtime-run.sh: --mode v1ns or host" >&2; exit 2 ;; esac
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || { echo "runtime-run.sh: bad -n" >&2; exit 2; }
[[ $warmup =~ ^[0-9]+$ ]] || { echo "runtime-run.sh: bad -w" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "runtime-run.sh: needs root" >&2; exit 1; }

# v1ns: re-run this script inside a private mount namespace, then hide the cgroup2 mount.
if [ "$mode" = v1ns ] && [ -z "${ISOLA_BENCH_IN_NS:-}" ]; then
  exec env ISOLA_BENCH_IN_NS=1 unshare --mount --propagation private -- "$0" "${args[@]}"
fi
if [ "$mode" = v1ns ]; then
  while mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; do umount /sys/fs/cgroup/unified; done
  if grep -q ' cgroup2 ' /proc/self/mounts && ! [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    echo "runtime-run.sh: a cgroup2 mount other than /sys/fs/cgroup/unified is left;" \
         "--mode v1ns expects the hybrid layout of MACHINE.md" >&2
    exit 1
  fi
fi

log() { echo "$@" >&2; }
isola=${ISOLA_RUNTIME:-$top/build/cli/isola-runtime}
declare -A bin=([isola]=$isola [crun]=${CRUN:-crun} [runc]=${RUNC:-runc})
IFS=, read -r -a requested <<<"$want"
for r in "${requested[@]}"; do
  [ -n "${bin[$r]:-}" ] || { log "runtime-run.sh: unknown runtime $r"; exit 2; }
done

work=$(mktemp -d "${BENCH_TMP:-/tmp}/isola-bench.XXXXXX")
cleanup() {
  # Containers of `run` are gone when it returns; only roots and logs remain.
  if [ "$keep" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Measure a private copy: others may relink build/ while this runs.
if ldd "$isola" 2>/dev/null | grep -q "$top/"; then
  log "runtime-run.sh: $isola links libraries from the build tree; timing it in place"
else
  cp "$isola" "$work/isola-runtime"
  bin[isola]=$work/isola-runtime
fi
isola_id="$isola, sha256 $(sha256sum "${bin[isola]}" | cut -c1-12), built $(date -r "$isola" '+%F %T')"

bundle=$work/bundle
ISOLA_RUNTIME=${bin[isola]} "$top/scripts/make-bundle.sh" "$bundle" true >/dev/null
# crun 1.8.1 accepts only ociVersion 1.0.x ("unknown version specified" for the 1.3.0 that
# `isola-runtime spec` writes); the same config goes to all three runtimes.
spec_version=$(python3 - "$bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); print(c.get("ociVersion")); c["ociVersion"] = "1.0.2"
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
)

notes=$work/notes
: >"$notes"
if [ "$mode" = v1ns ]; then
  echo "mode v1ns: all runtimes ran in a private mount namespace with /sys/fs/cgroup/unified (cgroup2, holding only hugetlb) unmounted, i.e. a pure cgroup v1 host; crun 1.8.1 refuses the real hybrid layout even with --cgroup-manager=disabled. Each runtime creates and removes its v1 cgroups (crun: cgroupfs manager)." >>"$notes"
else
  echo "mode host: the real hybrid cgroup layout (v1 controllers + cgroup2 at /sys/fs/cgroup/unified)." >>"$notes"
fi
echo "bundle: busybox rootfs, args [\"true\"], terminal false, ociVersion rewritten $spec_version -> 1.0.2 for crun 1.8.1 (it accepts only 1.0.x)." >>"$notes"
echo "isola binary: $isola_id (repository at $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?'))." >>"$notes"
echo "time: wall clock of the whole '<runtime> --root DIR run --bundle B ID' process, from bash (\$EPOCHREALTIME)." >>"$notes"

# One run; prints milliseconds. $1 runtime, $2 tag for the id and root.
one_run() {
  local r=$1 tag=$2 root=$work/root-$1-$2 id="b-$1-$2-$$" t0 t1 rc=0
  mkdir -p "$root"
  t0=$EPOCHREALTIME
  "${bin[$r]}" --root "$root" run --bundle "$bundle" "$id" </dev/null >"$work/log-$r-$tag" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  if [ "$rc" != 0 ]; then return "$rc"; fi
  rm -rf "$root"
  # microseconds from the two "s.uuuuuu" stamps, printed as ms with 3 decimals
  local us=$(( (${t1%.*} - ${t0%.*}) * 1000000 + (10#${t1#*.} - 10#${t0#*.}) ))
  printf '%d.%03d\n' $((us / 1000)) $((us % 1000))
}

# Probe each runtime once; leave out (with the reason) those that fail.
active=() unavailable=$work/unavailable
: >"$unavailable"
versions=$work/versions
: >"$versions"
for r in "${requested[@]}"; do
  if one_run "$r" probe >/dev/null; then
    active+=("$r")
    v=$("${bin[$r]}" --version 2>/dev/null | head -1 || true)
    [ -n "$v" ] || v=$(basename "${bin[$r]}")
    printf '%s\t%s\n' "$r" "$v" >>"$versions"
  else
    reason=$(grep -v '^$' "$work/log-$r-probe" | tail -1)
    printf '%s\t%s\n' "$r" "${reason:-exit status non-zero}" >>"$unavailable"
    log "runtime-run.sh: $r cannot run here ($reason); left out"
  fi
done
[ ${#active[@]} -gt 0 ] || { log "runtime-run.sh: no runtime could run the bundle"; exit 1; }

for ((i = 1; i <= warmup; i++)); do
  for r in "${active[@]}"; do one_run "$r" "w$i" >/dev/null; done
done

samples=$work/samples
: >"$samples"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "runtime-run.sh: $runs rounds of ${active[*]} (mode $mode)"
for ((i = 1; i <= runs; i++)); do
  for r in "${active[@]}"; do
    if ! ms=$(one_run "$r" "$i"); then
      log "runtime-run.sh: $r run $i failed:"; cat "$work/log-$r-$i" >&2; exit 1
    fi
    printf '%s\t%s\t%s\n' "$r" "$ms" "$i" >>"$samples"
  done
  [ $((i % 10)) = 0 ] && log "  round $i/$runs"
done

echo "load average (1/5/15 min) before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg); other work on the machine widens p10..p90." >>"$notes"
host="$(nproc) vCPU, $(uname -r), $(uname -m)"
python3 "$top/bench/runtime_stats.py" --samples "$samples" --versions "$versions" \
  --unavailable "$unavailable" --notes "$notes" --mode "$mode" --runs "$runs" \
  --host "$host" $([ "$json" = 1 ] && echo --json)
