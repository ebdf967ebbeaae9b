#!/usr/bin/env bash
# unpack.sh: wall-clock time to unpack one realistic gzip'd layer with isola's unpacker
# (tests/unit/unpack_tool, i.e. layer_unpack()) against GNU `tar -xzf`, interleaved round-robin
# (isola, tar, tar, isola, ... the order alternates each round), each run into a fresh
# directory that is removed (and synced) untimed afterwards. Prints median, p10, p90 per tool
# and throughput(isola)/throughput(tar), or JSON with --json. A measurement, not a test.
#
# usage: bench/unpack.sh [-n RUNS] [--json] [--keep] [--src "DIR DIR ..."]
#   -n RUNS      timed runs per tool (default 7, at least 5 advised)
#   --src DIRS   what the layer holds (default: /usr/lib/python3 /usr/lib/gcc /usr/share/doc,
#                about 430 MB in 25k files on Debian 12: many small files and some big ones)
#   --keep       keep the work directory (layer, samples)
# environment: UNPACK_TOOL (default build/tests/unit/unpack_tool), BENCH_TMP (work dir parent).
# Needs root (both tools then keep owners and modes, as they do for a real layer).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=7 json=0 keep=0 src="/usr/lib/python3 /usr/lib/gcc /usr/share/doc"
while [ $# -gt 0 ]; do
  case $1 in
    -n|--runs) runs=$2; shift 2 ;;
    --json) json=1; shift ;;
    --keep) keep=1; shift ;;
    --src) src=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unpack.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || { echo "unpack.sh: bad -n" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "unpack.sh: needs root" >&2; exit 1; }
log() { echo "$@" >&2; }

tool=${UNPACK_TOOL:-$top/build/tests/unit/unpack_tool}
[ -x "$tool" ] || { log "unpack.sh: $tool is not built (ninja -C build)"; exit 1; }
work=$(mktemp -d "${BENCH_TMP:-/tmp}/isola-bench-unpack.XXXXXX")
cleanup() {
  rm -rf "$work/out"
  if [ "$keep" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# Measure a private copy: others may relink build/ while this runs.
cp "$tool" "$work/unpack_tool"

layer=$work/layer.tar.gz
read -r -a dirs <<<"$src"
rel=()
for d in "${dirs[@]}"; do rel+=("${d#/}"); done
log "unpack.sh: making the layer from ${dirs[*]}"
tar -C / -cf - "${rel[@]}" | gzip -n >"$layer"
expanded=$(gzip -dc "$layer" | wc -c)
files=$(tar -tzf "$layer" | wc -l)

# One run; prints seconds. $1 tool.
one_run() {
  local t=$1 out=$work/out t0 t1
  mkdir "$out"
  sync
  t0=$EPOCHREALTIME
  case $t in
    isola) "$work/unpack_tool" "$layer" "$out" >"$work/last.json" ;;
    tar) tar -xzf "$layer" -C "$out" ;;
  esac
  t1=$EPOCHREALTIME
  rm -rf "$out"
  sync
  local us=$(( (${t1%.*} - ${t0%.*}) * 1000000 + (10#${t1#*.} - 10#${t0#*.}) ))
  printf '%d.%06d\n' $((us / 1000000)) $((us % 1000000))
}

# Both must produce the same tree (names, types, modes, owners, sizes, link targets).
listing() { (cd "$1" && find . -printf '%p %y %m %U %G %s %l\n' | LC_ALL=C sort); }
mkdir "$work/a" "$work/b"
"$work/unpack_tool" "$layer" "$work/a" >"$work/probe.json"
tar -xzf "$layer" -C "$work/b"
if ! cmp -s <(listing "$work/a") <(listing "$work/b"); then
  log "unpack.sh: isola and tar unpacked different trees:"
  diff <(listing "$work/a") <(listing "$work/b") | head -20 >&2
  exit 1
fi
rm -rf "$work/a" "$work/b"

samples=$work/samples
: >"$samples"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "unpack.sh: $runs rounds of isola and tar ($((expanded >> 20)) MiB, $files entries)"
for ((i = 1; i <= runs; i++)); do
  order=(isola tar)
  [ $((i % 2)) = 0 ] && order=(tar isola)
  for t in "${order[@]}"; do printf '%s\t%s\n' "$t" "$(one_run "$t")" >>"$samples"; done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$samples" "$expanded" "$(stat -c %s "$layer")" "$files" "$json" \
  "$load_before" "$load_after" "$(nproc) vCPU, $(uname -r)" "$src" <<'PY'
import json, statistics, sys
path, expanded, compressed, files, as_json, lb, la, host, src = sys.argv[1:]
expanded, compressed = int(expanded), int(compressed)
s = {}
for line in open(path):
    t, sec = line.split()
    s.setdefault(t, []).append(float(sec))
def q(v, p):
    v = sorted(v); k = (len(v) - 1) * p; f = int(k)
    return v[f] + (v[min(f + 1, len(v) - 1)] - v[f]) * (k - f)
stats = {t: {"median_s": statistics.median(v), "p10_s": q(v, .1), "p90_s": q(v, .9),
             "mb_per_s": expanded / 1e6 / statistics.median(v), "samples_s": v}
         for t, v in s.items()}
ratio = stats["tar"]["median_s"] / stats["isola"]["median_s"]
out = {"layer": {"source": src, "expanded_bytes": expanded, "compressed_bytes": compressed,
                 "entries": int(files)}, "host": host, "load_before": lb, "load_after": la,
       "tools": stats, "throughput_isola_over_tar": ratio}
if as_json == "1":
    print(json.dumps(out, indent=1))
    sys.exit(0)
print(f"layer: {src}: {expanded / 1e6:.0f} MB in {files} entries, "
      f"{compressed / 1e6:.0f} MB gzip'd; {host}; load {lb} -> {la}")
print(f"| tool | median s | p10 s | p90 s | MB/s (expanded) |")
print(f"|---|---:|---:|---:|---:|")
for t in ("isola", "tar"):
    x = stats[t]
    print(f"| {t} | {x['median_s']:.2f} | {x['p10_s']:.2f} | {x['p90_s']:.2f} | "
          f"{x['mb_per_s']:.0f} |")
print(f"throughput isola/tar: {ratio:.2f} (goal >= 0.8)")
PY
