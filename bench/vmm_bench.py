#!/usr/bin/env python3
"""Runner and statistics for bench/vmm.sh: times whole monitor processes (exec → reaped)
round-robin through a small static launcher (vmm_spawn.c) that also reports each one's peak
RSS, splits isola-vmm's time with its ISOLA_VMM_TIMING probe and QEMU's with its own trace
events, and snapshots the memory of each monitor while its guest sits in `hlt`. Prints one
table or JSON (--json). Median, p10, p90 by linear interpolation between order statistics
(numpy's default). No thresholds."""
import argparse
import json
import os
import re
import signal
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no bench/__pycache__ from the import below
from runtime_stats import quantile  # noqa: E402

EXIT_STATUS = 33  # the guest writes 0x10 to port 0xf4: (0x10 << 1) | 1
KVM_RUN = 0xAE80
SYS_IOCTL = 16  # x86-64


def read_versions_and_notes(versions_path, notes_path):
    """The shell side's tab-separated versions file and its notes, one per line."""
    versions = {}
    with open(versions_path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            if k:
                versions[k] = v
    with open(notes_path) as f:
        notes = [line.rstrip("\n") for line in f if line.strip()]
    return versions, notes


def summary(xs):
    return {"median": statistics.median(xs), "p10": quantile(xs, 0.10),
            "p90": quantile(xs, 0.90), "mean": statistics.fmean(xs), "min": min(xs),
            "max": max(xs)}


def progress(msg):
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + msg)
        sys.stderr.flush()


def progress_done():
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def die(msg):
    progress_done()
    print(f"vmm.sh: {msg}", file=sys.stderr)
    sys.exit(1)


def read_argv(path):
    with open(path, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


class Column:
    def __init__(self, name, cmd_dir):
        self.name = name
        self.argv = read_argv(os.path.join(cmd_dir, f"cmd-{name}"))
        halt = os.path.join(cmd_dir, f"cmd-{name}-halt")
        self.halt_argv = read_argv(halt) if os.path.exists(halt) else None
        self.is_isola = name == "isola"


def spawn(argv, env, log_path):
    """posix_spawn (vfork-like, so the parent's size does not matter) with stdin from
    /dev/null and stdout+stderr to log_path; returns the pid."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, log, 1),
            (os.POSIX_SPAWN_DUP2, log, 2)])
    finally:
        os.close(log)
        os.close(null)


def log_tail(path):
    try:
        with open(path, errors="replace") as f:
            lines = [l.rstrip() for l in f if l.strip()]
    except OSError:
        return ""
    return " | ".join(lines[-3:])


def launch(o, argv, env, log, tag):
    """One run through the static launcher (bench/vmm_spawn.c), so that the child's ru_maxrss
    is not floored at this Python process's RSS. Returns (exit code, t0, t1 monotonic ns,
    t0, t1 realtime ns, maxrss KiB)."""
    result = os.path.join(o.work, "result")
    if os.path.exists(result):
        os.unlink(result)
    pid = spawn([o.launcher, result] + argv, env, log)
    _, status, _ = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not os.path.exists(result):
        die(f"the launcher failed on run {tag}: {log_tail(log)}")
    with open(result) as f:
        return [int(x) for x in f.read().split()]


def run_timed(o, col, tag):
    """One exec → reaped run of the exit_first guest. Times are CLOCK_MONOTONIC ns, the clock
    of isola-vmm's probe."""
    log = os.path.join(o.work, f"log-{col.name}-{tag}")
    env = dict(os.environ)
    timing = None
    if col.is_isola:
        timing = os.path.join(o.work, "timing.json")
        if os.path.exists(timing):
            os.unlink(timing)
        env["ISOLA_VMM_TIMING"] = timing
    code, t0, t1, _, _, maxrss = launch(o, col.argv, env, log, f"{col.name} {tag}")
    if code != EXIT_STATUS:
        die(f"{col.name} run {tag} exited with {code}, not {EXIT_STATUS}: {log_tail(log)} "
            f"(command: {' '.join(col.argv)})")
    out = {"wall_ms": (t1 - t0) / 1e6, "maxrss_kib": maxrss}
    if timing:
        with open(timing) as f:
            t = json.load(f)
        out["phases"] = {
            "exec_to_main": t["main_ns"] - t0,
            "main_to_kvm_ready": t["kvm_ready_ns"] - t["main_ns"],
            "kvm_ready_to_first_run": t["first_run_ns"] - t["kvm_ready_ns"],
            "first_run_to_first_exit": t["first_exit_ns"] - t["first_run_ns"],
            "first_exit_to_stop": t["exit_ns"] - t["first_exit_ns"],
            "stop_to_reaped": t1 - t["exit_ns"],
            "exec_to_first_run": t["first_run_ns"] - t0,
            "exec_to_first_instruction": t["first_exit_ns"] - t0,
        }
        out["phases"] = {k: v / 1e6 for k, v in out["phases"].items()}
    return out


TRACE_LINE = re.compile(r"^\d+@(\d+)\.(\d+):(\w+) (.*)$")


def run_traced(o, col, tag):
    """One QEMU run with its kvm_vcpu_ioctl and kvm_run_exit trace events (log backend,
    gettimeofday stamps, so the times here are CLOCK_REALTIME µs)."""
    trace = os.path.join(o.work, f"trace-{col.name}-{tag}")
    log = os.path.join(o.work, f"log-{col.name}-trace-{tag}")
    argv = col.argv + ["-msg", "timestamp=on", "-trace", "kvm_vcpu_ioctl",
                       "-trace", "kvm_run_exit", "-D", trace]
    code, _, _, t0, t1, _ = launch(o, argv, dict(os.environ), log, f"{col.name} traced {tag}")
    t0, t1 = t0 // 1000, t1 // 1000
    if code != EXIT_STATUS:
        return None, f"traced run exited with {code}: {log_tail(log)}"
    first_run = last_exit = None
    exits = 0
    try:
        with open(trace) as f:
            for line in f:
                m = TRACE_LINE.match(line.strip())
                if not m:
                    continue
                us = int(m.group(1)) * 1000000 + int(m.group(2))
                if m.group(3) == "kvm_vcpu_ioctl" and first_run is None:
                    typ = re.search(r"type (0x[0-9a-f]+)", m.group(4))
                    if typ and int(typ.group(1), 16) == KVM_RUN:
                        first_run = us
                elif m.group(3) == "kvm_run_exit":
                    last_exit = us
                    exits += 1
    except OSError as e:
        return None, f"no trace file ({e})"
    if first_run is None or last_exit is None:
        return None, "no timestamped kvm_vcpu_ioctl/kvm_run_exit events (trace backend not 'log'?)"
    ms = lambda a, b: (b - a) / 1000
    return {"exec_to_first_run": ms(t0, first_run),
            "first_run_to_kernel_entry": ms(first_run, last_exit),
            "exec_to_kernel_entry": ms(t0, last_exit),
            "kernel_entry_to_reaped": ms(last_exit, t1),
            "total_traced": ms(t0, t1),
            "kvm_exits": exits}, None


def in_kvm_run(pid):
    """True when one of pid's threads is blocked in ioctl(fd, KVM_RUN)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            continue
        if len(fields) > 2 and fields[0] == str(SYS_IOCTL) and int(fields[2], 16) == KVM_RUN:
            return True
    return False


def run_resident(col, work, tag, settle_s):
    """Starts the halting guest, waits until a vCPU sits in KVM_RUN (the guest halted with
    interrupts off) plus settle_s, reads /proc/PID/smaps_rollup, kills the monitor."""
    log = os.path.join(work, f"log-{col.name}-halt-{tag}")
    pid = spawn(col.halt_argv, dict(os.environ), log)
    try:
        deadline = time.monotonic() + 20
        while not in_kvm_run(pid):
            if time.monotonic() > deadline:
                return None, "no vCPU in KVM_RUN after 20 s"
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                pid = None
                return None, (f"exited with {os.waitstatus_to_exitcode(status)} before halting: "
                              f"{log_tail(log)}")
            time.sleep(0.01)
        time.sleep(settle_s)
        if not in_kvm_run(pid):
            return None, "left KVM_RUN again (the guest did not stay halted)"
        kib = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    kib[parts[0].rstrip(":")] = int(parts[1])
        return {"rss_kib": kib.get("Rss", 0), "pss_kib": kib.get("Pss", 0),
                "uss_kib": kib.get("Private_Clean", 0) + kib.get("Private_Dirty", 0),
                "anon_kib": kib.get("Anonymous", 0),
                "threads": len(os.listdir(f"/proc/{pid}/task"))}, None
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--launcher", required=True)
    ap.add_argument("--columns", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--trace-runs", type=int, required=True)
    ap.add_argument("--resident-runs", type=int, required=True)
    ap.add_argument("--settle", type=float, default=0.3)
    for a in ("versions", "notes", "host", "guest", "memory"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--json", action="store_true")
    o = ap.parse_args()

    cols = [Column(n, o.work) for n in o.columns.split(",")]
    names = [c.name for c in cols]
    versions, notes = read_versions_and_notes(o.versions, o.notes)

    # Round-robin, the starting column rotating each round so that no column always runs
    # right after the same other one.
    def order(i):
        k = i % len(cols)
        return cols[k:] + cols[:k]

    for i in range(o.warmup):
        progress(f"warm-up round {i + 1}/{o.warmup}")
        for c in order(i):
            run_timed(o, c, f"w{i + 1}")
    loadavg = lambda: " ".join(open("/proc/loadavg").read().split()[:3])
    load_before = loadavg()
    samples = {c.name: [] for c in cols}
    for i in range(o.runs):
        progress(f"round {i + 1}/{o.runs}")
        for c in order(i):
            samples[c.name].append(run_timed(o, c, str(i + 1)))
    load_after_timed = loadavg()

    traced, trace_errors = {}, {}
    qemu_cols = [c for c in cols if not c.is_isola]
    for i in range(o.trace_runs):
        progress(f"traced QEMU run {i + 1}/{o.trace_runs}")
        for c in qemu_cols:
            if c.name in trace_errors:
                continue
            r, err = run_traced(o, c, str(i + 1))
            if err:
                trace_errors[c.name] = err
                traced.pop(c.name, None)
            else:
                traced.setdefault(c.name, []).append(r)

    resident, resident_errors = {}, {}
    for i in range(o.resident_runs):
        for c in cols:
            if c.halt_argv is None or c.name in resident_errors:
                continue
            progress(f"resident memory {i + 1}/{o.resident_runs}: {c.name}")
            r, err = run_resident(c, o.work, str(i + 1), o.settle)
            if err:
                resident_errors[c.name] = err
                resident.pop(c.name, None)
            else:
                resident.setdefault(c.name, []).append(r)
    progress_done()
    notes.append(f"load average (1/5/15 min) before the timed rounds: {load_before}; after them: "
                 f"{load_after_timed}; at the end: {loadavg()}. Other work on the machine "
                 "widens p10..p90.")
    for n, e in trace_errors.items():
        notes.append(f"{n}: no trace breakdown ({e})")
    for n, e in resident_errors.items():
        notes.append(f"{n}: no resident-memory snapshot ({e})")

    stats = {}
    for c in cols:
        s = samples[c.name]
        walls = [x["wall_ms"] for x in s]
        rss = [x["maxrss_kib"] for x in s]
        stats[c.name] = {"command": c.argv, "version": versions.get(c.name, ""), "n": len(s),
                         "wall_ms": summary(walls), "maxrss_kib": summary(rss),
                         "samples_wall_ms": walls, "samples_maxrss_kib": rss}
    base = stats["isola"]["wall_ms"]["median"] if "isola" in stats else None
    base_rss = stats["isola"]["maxrss_kib"]["median"] if "isola" in stats else None
    for s in stats.values():
        s["wall_ratio_to_isola"] = s["wall_ms"]["median"] / base if base else None
    ratios = {}
    if base:
        for c in qemu_cols:
            pr = [a["wall_ms"] / b["wall_ms"]
                  for a, b in zip(samples["isola"], samples[c.name])]
            ratios[f"isola/{c.name}"] = {
                "wall_ratio_of_medians": base / stats[c.name]["wall_ms"]["median"],
                "wall_per_round": {k: v for k, v in summary(pr).items()
                                   if k in ("median", "p10", "p90")},
                "maxrss_ratio_of_medians": base_rss / stats[c.name]["maxrss_kib"]["median"],
            }
    phases = None
    if "isola" in samples:
        keys = samples["isola"][0]["phases"].keys()
        phases = {k: summary([x["phases"][k] for x in samples["isola"]]) for k in keys}
    trace_stats = {n: {k: summary([r[k] for r in rs]) for k in rs[0]} for n, rs in traced.items()}
    resident_stats = {n: {k: summary([r[k] for r in rs]) for k in rs[0]}
                      for n, rs in resident.items()}
    first_run_ratio = {}
    if phases:
        for n, t in trace_stats.items():
            first_run_ratio[f"isola/{n}"] = {
                "exec_to_first_run": phases["exec_to_first_run"]["median"]
                / t["exec_to_first_run"]["median"],
                "exec_to_first_instruction": phases["exec_to_first_instruction"]["median"]
                / t["exec_to_kernel_entry"]["median"]}

    if o.json:
        json.dump({"benchmark": "vmm", "guest": o.guest, "memory_mib": int(o.memory),
                   "runs_per_column": o.runs, "warmup_rounds": o.warmup, "host": o.host,
                   "columns": stats, "ratios": ratios, "isola_phases_ms": phases,
                   "qemu_traced_phases_ms": trace_stats, "start_ratios": first_run_ratio,
                   "resident_memory_kib": resident_stats, "notes": notes},
                  sys.stdout, indent=2)
        print()
        return

    print(f"isola-vmm vs QEMU: {o.guest} (its first instruction exits), {o.memory} MiB guest, "
          f"1 vCPU, {o.runs} interleaved rounds, host {o.host}")
    print(f"{'column':<13} {'n':>3} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8} "
          f"{'x isola':>8} {'max RSS MiB':>12}  version")
    for n in names:
        s = stats[n]
        print(f"{n:<13} {s['n']:>3} {s['wall_ms']['median']:>10.1f} {s['wall_ms']['p10']:>8.1f} "
              f"{s['wall_ms']['p90']:>8.1f} {fmt(s['wall_ratio_to_isola'], 2):>8} "
              f"{s['maxrss_kib']['median'] / 1024:>12.1f}  {s['version']}")
    for k, r in ratios.items():
        pr = r["wall_per_round"]
        print(f"{k}: wall ratio of medians {r['wall_ratio_of_medians']:.2f}; per-round median "
              f"{pr['median']:.2f} (p10 {pr['p10']:.2f}, p90 {pr['p90']:.2f}); peak RSS "
              f"{r['maxrss_ratio_of_medians']:.2f}")
    if phases:
        p = {k: v["median"] for k, v in phases.items()}
        print("isola-vmm phases (median ms of the timed runs, from ISOLA_VMM_TIMING): "
              f"exec→main {p['exec_to_main']:.2f}, main→kvm_ready {p['main_to_kvm_ready']:.2f}, "
              f"kvm_ready→first KVM_RUN {p['kvm_ready_to_first_run']:.2f}, first KVM_RUN→first "
              f"exit {p['first_run_to_first_exit']:.2f}, first exit→stop "
              f"{p['first_exit_to_stop']:.2f}, stop→reaped {p['stop_to_reaped']:.2f}")
        e, r = phases["exec_to_first_instruction"], phases["exec_to_first_run"]
        print(f"isola-vmm exec→first KVM_RUN: median {r['median']:.2f} ms; exec→first guest "
              f"instruction: median {e['median']:.2f} ms (p10 {e['p10']:.2f}, "
              f"p90 {e['p90']:.2f})")
    for n, t in trace_stats.items():
        m = {k: v["median"] for k, v in t.items()}
        print(f"{n} phases (median of {len(traced[n])} traced runs, ms): exec→first KVM_RUN "
              f"{m['exec_to_first_run']:.1f}, firmware (first KVM_RUN→kernel entry, "
              f"{m['kvm_exits']:.0f} exits) {m['first_run_to_kernel_entry']:.1f}, "
              f"exec→kernel's first instruction {m['exec_to_kernel_entry']:.1f}, →reaped "
              f"{m['kernel_entry_to_reaped']:.1f}, total traced {m['total_traced']:.1f}")
    for k, r in first_run_ratio.items():
        print(f"{k}: exec→first KVM_RUN {r['exec_to_first_run']:.2f}; exec→guest kernel's first "
              f"instruction {r['exec_to_first_instruction']:.2f} (medians; QEMU's traced)")
    if resident_stats:
        print("memory while the guest halts (median of "
              f"{max(len(v) for v in resident.values())} runs, MiB):")
        for n in names:
            if n in resident_stats:
                m = {k: v["median"] for k, v in resident_stats[n].items()}
                print(f"  {n:<13} RSS {m['rss_kib'] / 1024:.1f}, PSS {m['pss_kib'] / 1024:.1f}, "
                      f"USS {m['uss_kib'] / 1024:.1f}, anonymous {m['anon_kib'] / 1024:.1f}, "
                      f"{m['threads']:.0f} threads")
    for n in notes:
        print(f"note: {n}")


if __name__ == "__main__":
    main()
