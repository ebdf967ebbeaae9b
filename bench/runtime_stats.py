#!/usr/bin/env python3
"""Statistics and output for bench/runtime-run.sh: median, p10, p90 (linear interpolation
between order statistics, as numpy's default), ratio of each runtime's median to isola's."""
import argparse
import json
import statistics
import sys


def read_pairs(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                k, _, v = line.partition("\t")
                out.append((k, v))
    return out


def quantile(xs, q):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def main():
    ap = argparse.ArgumentParser()
    for a in ("samples", "versions", "unavailable", "notes", "mode", "host"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--json", action="store_true")
    o = ap.parse_args()

    samples, by_round = {}, {}
    for r, rest in read_pairs(o.samples):
        ms, _, rnd = rest.partition("\t")
        samples.setdefault(r, []).append(float(ms))
        by_round.setdefault(rnd, {})[r] = float(ms)
    versions = dict(read_pairs(o.versions))
    unavailable = dict(read_pairs(o.unavailable))
    notes = [l.rstrip("\n") for l in open(o.notes) if l.strip()]
    for r, why in unavailable.items():
        notes.append(f"{r} left out: {why}")

    stats = {}
    for r, xs in samples.items():
        stats[r] = {
            "version": versions.get(r, ""),
            "n": len(xs),
            "median_ms": statistics.median(xs),
            "p10_ms": quantile(xs, 0.10),
            "p90_ms": quantile(xs, 0.90),
            "mean_ms": statistics.fmean(xs),
            "min_ms": min(xs),
            "max_ms": max(xs),
            "samples_ms": xs,
        }
    base = stats.get("isola", {}).get("median_ms")
    for s in stats.values():
        s["ratio_to_isola"] = s["median_ms"] / base if base else None
    # isola/X as the ratio of medians, and as the median of the per-round ratios (each round
    # runs isola and X back to back, so load that drifts over the run cancels out more).
    ratios, paired = {}, {}
    for other in ("crun", "runc"):
        if base and other in stats:
            ratios[f"isola/{other}"] = base / stats[other]["median_ms"]
            pr = [v["isola"] / v[other] for v in by_round.values() if "isola" in v and other in v]
            paired[f"isola/{other}"] = {"median": statistics.median(pr),
                                        "p10": quantile(pr, 0.10), "p90": quantile(pr, 0.90)}

    if o.json:
        json.dump({"benchmark": "runtime-run", "command": "run true", "mode": o.mode,
                   "runs_per_runtime": o.runs, "host": o.host, "runtimes": stats,
                   "ratios": ratios, "paired_ratios": paired,
                   "unavailable": unavailable, "notes": notes},
                  sys.stdout, indent=2)
        print()
        return

    print(f"isola-runtime run benchmark: `run` of `true`, {o.runs} interleaved runs each, "
          f"mode {o.mode}, host {o.host}")
    print(f"{'runtime':<8} {'n':>4} {'median ms':>10} {'p10 ms':>9} {'p90 ms':>9} "
          f"{'x isola':>8}  version")
    for r in ("isola", "crun", "runc"):
        if r not in stats:
            continue
        s = stats[r]
        ratio = f"{s['ratio_to_isola']:.2f}" if s["ratio_to_isola"] is not None else "-"
        print(f"{r:<8} {s['n']:>4} {s['median_ms']:>10.1f} {s['p10_ms']:>9.1f} "
              f"{s['p90_ms']:>9.1f} {ratio:>8}  {s['version']}")
    for r in unavailable:
        print(f"{r:<8} {'-':>4} {'n/a':>10} {'n/a':>9} {'n/a':>9} {'-':>8}  (left out)")
    for k, v in ratios.items():
        goal = "  (goal: below 1)" if k == "isola/crun" else ""
        pr = paired[k]
        print(f"{k}: ratio of medians {v:.2f}; per-round ratio median {pr['median']:.2f} "
              f"(p10 {pr['p10']:.2f}, p90 {pr['p90']:.2f}){goal}")
    for n in notes:
        print(f"note: {n}")


if __name__ == "__main__":
    main()
