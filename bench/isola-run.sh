#!/usr/bin/env bash
# isola-run.sh: wall-clock time of `run --rm IMAGE true` from the user's command line:
# `isola run --rm --isolation=process busybox true` against `podman run --rm` of the same
# image (the same oci-archive loaded into both), podman with runc, with crun (when it can run
# here) and with isola-runtime as its OCI runtime, interleaved round-robin
# (isola, podman-runc, podman-crun, podman-isola, isola, ...). Prints one table (median, p10,
# p90, ratio to isola's median) or JSON with --json. A measurement, not a test: no thresholds.
#
# usage: bench/isola-run.sh [-n RUNS] [-w WARMUP] [--json] [--mode v1ns|host] [--build DIR]
#                           [--columns isola,podman-runc,podman-crun,podman-isola] [--keep]
#   -n RUNS      timed runs per column (default 30, at least 20 advised)
#   -w WARMUP    untimed rounds first (default 3)
#   --mode v1ns  (default) everything runs in a private mount namespace where the cgroup2
#                mount /sys/fs/cgroup/unified is unmounted (a pure cgroup v1 host), so that
#                crun 1.8.1 can run (it refuses hybrid cgroups); as bench/runtime-run.sh.
#   --mode host  the host as it is (hybrid cgroups); podman-crun is tried and left out.
#   --build DIR  meson build dir with cli/isola, cli/isola-runtime, images/busybox.oci.tar
#                (default: the repository's build/)
#   --keep       keep the work directory (logs, samples); images are still removed and
#                mounts undone
# environment: ISOLA, ISOLA_RUNTIME, BUSYBOX_ARCHIVE (override --build), PODMAN,
# BENCH_TMP (where the work dir goes, default /tmp; must support overlayfs upper dirs).
# Needs root and podman. Every store is private to the work dir and removed at the end.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
args=("$@")
runs=30 warmup=3 json=0 mode=v1ns keep=0 build=$top/build
want=isola,podman-runc,podman-crun,podman-isola
while [ $# -gt 0 ]; do
  case $1 in
    -n|--runs) runs=$2; shift 2 ;;
    -w|--warmup) warmup=$2; shift 2 ;;
    --json) json=1; shift ;;
    --mode) mode=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --columns) want=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "isola-run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $mode in v1ns|host) ;; *) echo "isola-run.sh: --mode v1ns or host" >&2; exit 2 ;; esac
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || { echo "isola-run.sh: bad -n" >&2; exit 2; }
[[ $warmup =~ ^[0-9]+$ ]] || { echo "isola-run.sh: bad -w" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "isola-run.sh: needs root" >&2; exit 1; }
podman_bin=${PODMAN:-podman}
command -v "$podman_bin" >/dev/null || { echo "isola-run.sh: podman not found" >&2; exit 1; }

# v1ns: re-run inside a private mount namespace, then hide the cgroup2 mount. Every mount made
# below (podman's and isola's overlays) lives in this namespace and dies with it.
if [ "$mode" = v1ns ] && [ -z "${ISOLA_BENCH_IN_NS:-}" ]; then
  exec env ISOLA_BENCH_IN_NS=1 unshare --mount --propagation private -- "$0" "${args[@]}"
fi
if [ "$mode" = v1ns ]; then
  while mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; do umount /sys/fs/cgroup/unified; done
  if grep -q ' cgroup2 ' /proc/self/mounts && ! [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    echo "isola-run.sh: a cgroup2 mount other than /sys/fs/cgroup/unified is left;" \
         "--mode v1ns expects the hybrid layout of MACHINE.md" >&2
    exit 1
  fi
fi

log() { echo "$@" >&2; }
isola_src=${ISOLA:-$build/cli/isola}
runtime_src=${ISOLA_RUNTIME:-$build/cli/isola-runtime}
archive=${BUSYBOX_ARCHIVE:-$build/images/busybox.oci.tar}
for f in "$isola_src" "$runtime_src" "$archive"; do
  [ -f "$f" ] || { log "isola-run.sh: $f is missing (ninja -C $build)"; exit 1; }
done
declare -A known=([isola]=1 [podman-runc]=1 [podman-crun]=1 [podman-isola]=1)
IFS=, read -r -a requested <<<"$want"
for c in "${requested[@]}"; do
  [ -n "${known[$c]:-}" ] || { log "isola-run.sh: unknown column $c"; exit 2; }
done

work=$(mktemp -d "${BENCH_TMP:-/tmp}/isola-run-bench.XXXXXX")
isola_store=$work/isola-store
proot=$work/podman-root prunroot=$work/podman-runroot ptmp=$work/podman-tmp
driver=overlay
podman_global() {
  echo "--root $proot --runroot $prunroot --tmpdir $ptmp --storage-driver $driver" \
       "--cgroup-manager cgroupfs --events-backend none"
}
cleanup() {
  set +e
  if [ -d "$proot" ]; then
    # shellcheck disable=SC2046
    "$podman_bin" $(podman_global) rm -a -f >/dev/null 2>&1
    # shellcheck disable=SC2046
    "$podman_bin" $(podman_global) rmi -a -f >/dev/null 2>&1
  fi
  if [ -x "$work/isola" ] && [ -d "$isola_store" ]; then
    for c in $("$work/isola" --root "$isola_store" ps -a -q 2>/dev/null); do
      "$work/isola" --root "$isola_store" rm -f "$c" >/dev/null 2>&1
    done
    "$work/isola" --root "$isola_store" rmi -f busybox >/dev/null 2>&1
    "$work/isola" --root "$isola_store" system prune >/dev/null 2>&1
  fi
  # Whatever is still mounted under the work dir (deepest first).
  awk -v w="$work" '$2 == w || index($2, w "/") == 1 {print $2}' /proc/self/mounts |
    sort -r | while read -r m; do umount -l "$m"; done
  if [ "$keep" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Measure private copies: others may relink the build dir while this runs.
cp "$isola_src" "$work/isola"
cp "$runtime_src" "$work/isola-runtime"
cp "$archive" "$work/busybox.oci.tar"
mkdir -p "$ptmp"

notes=$work/notes
: >"$notes"
note() { echo "$*" >>"$notes"; }

# The same archive into both stores.
if ! "$work/isola" --root "$isola_store" load -q -i "$work/busybox.oci.tar" >"$work/log-isola-load" 2>&1; then
  log "isola-run.sh: isola load failed:"; cat "$work/log-isola-load" >&2; exit 1
fi
# shellcheck disable=SC2046
if ! "$podman_bin" $(podman_global) load -q -i "$work/busybox.oci.tar" >"$work/log-podman-load" 2>&1; then
  log "isola-run.sh: podman load with the overlay driver failed; trying vfs:"
  cat "$work/log-podman-load" >&2
  # shellcheck disable=SC2046
  "$podman_bin" $(podman_global) rmi -a -f >/dev/null 2>&1 || true
  rm -rf "$proot" "$prunroot"
  driver=vfs
  # shellcheck disable=SC2046
  "$podman_bin" $(podman_global) load -q -i "$work/busybox.oci.tar" >"$work/log-podman-load" 2>&1 ||
    { log "isola-run.sh: podman load failed:"; cat "$work/log-podman-load" >&2; exit 1; }
fi
isola_image_id=$("$work/isola" --root "$isola_store" inspect busybox |
  python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d.get("Id") or d.get("id"))')
# shellcheck disable=SC2046
podman_image_id=$("$podman_bin" $(podman_global) image inspect --format '{{.ID}}' busybox)
if [ "${isola_image_id#sha256:}" != "${podman_image_id#sha256:}" ]; then
  log "isola-run.sh: the stores hold different images (isola $isola_image_id, podman $podman_image_id)"
  exit 1
fi

# Podman cannot raise a hard rlimit here (root lacks CAP_SYS_RESOURCE): its default
# RLIMIT_NOFILE/RLIMIT_NPROC of 1048576 fail in every runtime. Give both the caller's hard
# RLIMIT_NOFILE, which is what isola's config sets (it sets no RLIMIT_NPROC).
hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
ulimits="--ulimit nofile=$hard_nofile:$hard_nofile --ulimit nproc=$hard_nofile:$hard_nofile"
podman_run="run --rm --pull never --network none $ulimits busybox true"
isola_run="run --rm --isolation=process busybox true"

# The command of one column, as words.
column_cmd() {
  case $1 in
    isola) echo "$work/isola --root $isola_store $isola_run" ;;
    podman-runc) echo "$podman_bin $(podman_global) --runtime runc $podman_run" ;;
    podman-crun) echo "$podman_bin $(podman_global) --runtime crun $podman_run" ;;
    podman-isola) echo "$podman_bin $(podman_global) --runtime $work/isola-runtime $podman_run" ;;
  esac
}

# One run; prints milliseconds. $1 column, $2 tag for the log.
one_run() {
  local c=$1 tag=$2 t0 t1 rc=0 cmd
  read -r -a cmd <<<"$(column_cmd "$c")"
  t0=$EPOCHREALTIME
  "${cmd[@]}" </dev/null >"$work/log-$c-$tag" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  if [ "$rc" != 0 ]; then return "$rc"; fi
  rm -f "$work/log-$c-$tag"
  local us=$(( (${t1%.*} - ${t0%.*}) * 1000000 + (10#${t1#*.} - 10#${t0#*.}) ))
  printf '%d.%03d\n' $((us / 1000)) $((us % 1000))
}

version_of() {
  case $1 in
    isola) "$work/isola" --version | head -1 ;;
    podman-runc) echo "$("$podman_bin" --version | head -1), $(runc --version | head -1)" ;;
    podman-crun) echo "$("$podman_bin" --version | head -1), $(crun --version | head -1)" ;;
    podman-isola) echo "$("$podman_bin" --version | head -1), $("$work/isola-runtime" --version | head -1)" ;;
  esac
}

# Probe each column once; leave out (with the reason) those that fail.
active=() unavailable=$work/unavailable versions=$work/versions commands=$work/commands
: >"$unavailable"; : >"$versions"; : >"$commands"
for c in "${requested[@]}"; do
  printf '%s\t%s\n' "$c" "$(column_cmd "$c" | sed "s|$work|\$W|g")" >>"$commands"
  if one_run "$c" probe >/dev/null; then
    active+=("$c")
    printf '%s\t%s\n' "$c" "$(version_of "$c" 2>/dev/null || echo '?')" >>"$versions"
  else
    reason=$(grep -v '^$' "$work/log-$c-probe" | tail -1)
    printf '%s\t%s\n' "$c" "${reason:-exit status non-zero}" >>"$unavailable"
    log "isola-run.sh: $c cannot run here ($reason); left out"
  fi
done
[ ${#active[@]} -gt 0 ] || { log "isola-run.sh: no column could run"; exit 1; }

for ((i = 1; i <= warmup; i++)); do
  for c in "${active[@]}"; do
    one_run "$c" "w$i" >/dev/null || { log "isola-run.sh: $c warm-up failed"; exit 1; }
  done
done

samples=$work/samples
: >"$samples"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "isola-run.sh: $runs rounds of ${active[*]} (mode $mode, podman storage $driver)"
for ((i = 1; i <= runs; i++)); do
  for c in "${active[@]}"; do
    if ! ms=$(one_run "$c" "$i"); then
      log "isola-run.sh: $c run $i failed:"; cat "$work/log-$c-$i" >&2; exit 1
    fi
    printf '%s\t%s\t%s\n' "$c" "$ms" "$i" >>"$samples"
  done
  [ $((i % 10)) = 0 ] && log "  round $i/$runs"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Nothing may be left behind by --rm.
left_isola=$(find "$isola_store/containers" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
# shellcheck disable=SC2046
left_podman=$("$podman_bin" $(podman_global) ps -a -q | wc -l)

if [ "$mode" = v1ns ]; then
  note "mode v1ns: everything ran in a private mount namespace with /sys/fs/cgroup/unified (cgroup2, holding only hugetlb) unmounted, i.e. a pure cgroup v1 host; crun 1.8.1 refuses the real hybrid layout. Each runtime creates and removes its v1 cgroups (podman: cgroupfs manager)."
else
  note "mode host: the real hybrid cgroup layout (v1 controllers + cgroup2 at /sys/fs/cgroup/unified)."
fi
note "image: $archive loaded into both stores (image id ${isola_image_id#sha256:} in both); isola store --root \$W/isola-store (run root \$W/isola-store/run); podman storage driver $driver under \$W."
note "podman global flags: $(podman_global | sed "s|$work|\$W|g"); run flags: $podman_run. --pull never: no registry lookup; --network none: isola's default; the ulimits because podman's default 1048576 needs CAP_SYS_RESOURCE, which root lacks here (isola's config sets RLIMIT_NOFILE to the caller's hard limit, $hard_nofile)."
note "podman keeps conmon's exit files in /run/libpod/exits and each runtime its state in its default dir (/run/runc, /run/crun, /run/isola) while a container exists; podman applies its default seccomp profile, isola's config has none."
note "binaries: isola sha256 $(sha256sum "$work/isola" | cut -c1-12), isola-runtime sha256 $(sha256sum "$work/isola-runtime" | cut -c1-12), built $(date -r "$isola_src" '+%F %T') (repository at $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?'))."
note "time: wall clock of the whole CLI process (isola run / podman run), from bash (\$EPOCHREALTIME); $warmup untimed warm-up rounds first."
note "load average (1/5/15 min) before: $load_before, after: $load_after."
note "left behind after the runs: $left_isola isola containers, $left_podman podman containers."

host="$(nproc) vCPU, $(uname -r), $(uname -m)"
python3 - "$samples" "$versions" "$unavailable" "$notes" "$commands" "$mode" "$runs" "$host" "$json" <<'PY'
import json, statistics, sys

samples_p, versions_p, unavail_p, notes_p, commands_p, mode, runs, host, as_json = sys.argv[1:]
order = ["isola", "podman-runc", "podman-crun", "podman-isola"]

def pairs(path):
    with open(path) as f:
        return [tuple(l.rstrip("\n").split("\t", 1)) for l in f if l.strip()]

def quantile(xs, q):  # linear interpolation between order statistics (numpy's default)
    xs = sorted(xs)
    pos = (len(xs) - 1) * q
    lo = int(pos); hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

samples, by_round = {}, {}
for c, rest in pairs(samples_p):
    ms, rnd = rest.split("\t")
    samples.setdefault(c, []).append(float(ms))
    by_round.setdefault(rnd, {})[c] = float(ms)
versions, unavailable, commands = dict(pairs(versions_p)), dict(pairs(unavail_p)), dict(pairs(commands_p))
notes = [l.rstrip("\n") for l in open(notes_p) if l.strip()]
notes += [f"{c} left out: {why}" for c, why in unavailable.items()]

stats = {}
for c in order:
    xs = samples.get(c)
    if not xs:
        continue
    stats[c] = {"version": versions.get(c, ""), "command": commands.get(c, ""), "n": len(xs),
                "median_ms": statistics.median(xs), "p10_ms": quantile(xs, 0.10),
                "p90_ms": quantile(xs, 0.90), "mean_ms": statistics.fmean(xs),
                "min_ms": min(xs), "max_ms": max(xs), "samples_ms": xs}
base = stats.get("isola", {}).get("median_ms")
for s in stats.values():
    s["ratio_to_isola"] = s["median_ms"] / base if base else None

# A/B as the ratio of medians and as the median of the per-round ratios (each round runs the
# columns back to back, so load that drifts over the run cancels out more).
ratios, paired = {}, {}
for a, b in [("isola", "podman-runc"), ("isola", "podman-crun"), ("isola", "podman-isola"),
             ("podman-isola", "podman-runc"), ("podman-isola", "podman-crun")]:
    if a in stats and b in stats:
        k = f"{a}/{b}"
        ratios[k] = stats[a]["median_ms"] / stats[b]["median_ms"]
        pr = [v[a] / v[b] for v in by_round.values() if a in v and b in v]
        paired[k] = {"median": statistics.median(pr), "p10": quantile(pr, 0.10),
                     "p90": quantile(pr, 0.90)}

if as_json == "1":
    json.dump({"benchmark": "isola-run", "command": "run --rm busybox true", "mode": mode,
               "runs_per_column": int(runs), "host": host, "columns": stats, "ratios": ratios,
               "paired_ratios": paired, "goal": {"isola/podman-runc": "<= 0.3"},
               "unavailable": unavailable, "notes": notes}, sys.stdout, indent=2)
    print()
    sys.exit(0)

print(f"isola run benchmark: `run --rm busybox true`, {runs} interleaved runs each, mode {mode}, host {host}")
print(f"{'column':<13} {'n':>4} {'median ms':>10} {'p10 ms':>9} {'p90 ms':>9} {'x isola':>8}  version")
for c, s in stats.items():
    r = f"{s['ratio_to_isola']:.2f}" if s["ratio_to_isola"] is not None else "-"
    print(f"{c:<13} {s['n']:>4} {s['median_ms']:>10.1f} {s['p10_ms']:>9.1f} {s['p90_ms']:>9.1f} {r:>8}  {s['version']}")
for c in unavailable:
    print(f"{c:<13} {'-':>4} {'n/a':>10} {'n/a':>9} {'n/a':>9} {'-':>8}  (left out)")
for k, v in ratios.items():
    goal = "  (goal: <= 0.3)" if k == "isola/podman-runc" else ""
    p = paired[k]
    print(f"{k}: ratio of medians {v:.2f}; per-round ratio median {p['median']:.2f} "
          f"(p10 {p['p10']:.2f}, p90 {p['p90']:.2f}){goal}")
for c, s in stats.items():
    print(f"command {c}: {s['command']}")
for n in notes:
    print(f"note: {n}")
PY
