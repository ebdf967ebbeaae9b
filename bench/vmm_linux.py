#!/usr/bin/env python3
"""Runner and statistics for bench/vmm.sh --linux: boots the same Linux kernel with the same
initramfs (bench/vmm_init.c as /init) under isola-vmm and under QEMU's microvm, round-robin,
each run through the static launcher (vmm_spawn.c) with the console on a pipe. Times exec → the
init's marker line complete on the console ("boot to init") and exec → the monitor reaped, and
keeps the guest's own uptime from the marker and the kernel command line init read from
/proc/cmdline. Prints one table or JSON (--json). No thresholds."""
import argparse
import hashlib
import json
import os
import re
import selectors
import signal
import sys
import time

sys.dont_write_bytecode = True  # no bench/__pycache__ from the import below
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest-init"))
from mkinitramfs import entry as cpio_entry  # noqa: E402  (the project's newc writer)
from vmm_bench import die, progress, progress_done, read_argv  # noqa: E402
from vmm_bench import read_versions_and_notes, summary  # noqa: E402

EXIT_STATUS = 0  # a guest reboot: isola-vmm's i8042 reset, QEMU's -no-reboot
MARKER = re.compile(rb"isola-bench-init: up (\d+)\.(\d+) s\r?\n")
CMDLINE = re.compile(rb"isola-bench-init: cmdline ([^\r\n]*)\r?\n")


def write_initramfs(path, init_path):
    """/init, /proc (init mounts it) and /dev/console (5:1), which the kernel opens as init's
    fds 0-2 before running it."""
    with open(init_path, "rb") as f:
        init = f.read()
    data = b"".join([cpio_entry(1, "dev", 0o040755),
                     cpio_entry(2, "dev/console", 0o020600, rdev=(5, 1)),
                     cpio_entry(3, "proc", 0o040755),
                     cpio_entry(4, "init", 0o100755, init),
                     cpio_entry(0, "TRAILER!!!", 0)])
    with open(path, "wb") as f:
        f.write(data + b"\0" * ((512 - len(data) % 512) % 512))


def boot(o, name, argv, tag):
    """One boot through the launcher, in its own session (so a hung one can be killed with its
    monitor), stdout and stderr on a pipe read here. Times are CLOCK_MONOTONIC ns, the
    launcher's clock; the marker's time is taken when the read that completes its line returns."""
    log_path = os.path.join(o.work, f"log-linux-{name}-{tag}")
    result = os.path.join(o.work, "result")
    if os.path.exists(result):
        os.unlink(result)
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(o.launcher, [o.launcher, result] + argv, dict(os.environ),
                             setsid=True, file_actions=[(os.POSIX_SPAWN_DUP2, null, 0),
                                                        (os.POSIX_SPAWN_DUP2, wfd, 1),
                                                        (os.POSIX_SPAWN_DUP2, wfd, 2)])
    finally:
        os.close(wfd)
        os.close(null)
    buf, t_marker, timed_out = b"", None, False
    deadline = time.monotonic() + o.timeout
    with selectors.DefaultSelector() as sel, open(log_path, "wb") as log:
        sel.register(rfd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                os.killpg(pid, signal.SIGKILL)
                break
            if not sel.select(timeout=left):
                continue
            chunk = os.read(rfd, 65536)
            now = time.monotonic_ns()
            if not chunk:
                break
            log.write(chunk)
            buf += chunk
            if t_marker is None and MARKER.search(buf):
                t_marker = now
    os.close(rfd)
    _, status, _ = os.wait4(pid, 0)
    console = buf.decode(errors="replace")
    tail = " | ".join(l.strip() for l in console.splitlines() if l.strip())[-600:]
    if timed_out:
        die(f"{name} run {tag}: no exit within {o.timeout} s (console: {tail}; log {log_path})")
    if os.waitstatus_to_exitcode(status) != 0 or not os.path.exists(result):
        die(f"the launcher failed on {name} run {tag}: {tail}")
    with open(result) as f:
        code, t0, t1, _, _, maxrss = [int(x) for x in f.read().split()]
    m, c = MARKER.search(buf), CMDLINE.search(buf)
    if code != EXIT_STATUS or not m:
        die(f"{name} run {tag} exited with {code} (expected {EXIT_STATUS}), "
            f"{'after' if m else 'without'} init's marker line; console: {tail}")
    return {"to_init_ms": (t_marker - t0) / 1e6, "to_exit_ms": (t1 - t0) / 1e6,
            "guest_uptime_at_init_ms": int(m.group(1)) * 1000 + int(m.group(2)),
            "maxrss_kib": maxrss,
            "guest_cmdline": c.group(1).decode(errors="replace").strip() if c else None}


def sha12(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def main():
    ap = argparse.ArgumentParser()
    for a in ("work", "launcher", "init", "initramfs", "kernel", "kernel-label", "versions",
              "notes", "host", "memory"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--json", action="store_true")
    o = ap.parse_args()

    write_initramfs(o.initramfs, o.init)
    names = ["isola", "qemu"]
    argv = {n: read_argv(os.path.join(o.work, f"cmd-linux-{n}")) for n in names}
    versions, notes = read_versions_and_notes(o.versions, o.notes)
    notes.append(f"kernel: {o.kernel_label} (sha256 {sha12(o.kernel)}); initramfs: "
                 f"{os.path.getsize(o.initramfs)} bytes, /init = bench/vmm_init.c "
                 f"({os.path.getsize(o.init)} bytes, static, no libc; sha256 {sha12(o.init)})")

    loadavg = lambda: " ".join(open("/proc/loadavg").read().split()[:3])
    load_before = loadavg()
    samples = {n: [] for n in names}
    for i in range(o.runs):
        k = i % len(names)
        for n in names[k:] + names[:k]:
            progress(f"round {i + 1}/{o.runs}: {n} booting")
            samples[n].append(boot(o, n, argv[n], str(i + 1)))
    progress_done()
    notes.append(f"load average (1/5/15 min) before the rounds: {load_before}; at the end: "
                 f"{loadavg()}.")

    stats, cmdlines = {}, {}
    keys = ("to_init_ms", "to_exit_ms", "guest_uptime_at_init_ms", "maxrss_kib")
    for n in names:
        s = samples[n]
        stats[n] = {"command": argv[n], "version": versions.get(n, ""), "n": len(s)}
        for k in keys:
            stats[n][k] = summary([x[k] for x in s])
            stats[n]["samples_" + k] = [x[k] for x in s]
        # Exec → init less the guest's own uptime then: the monitor's start-up, any firmware,
        # and the kernel's start before its clock runs.
        pre = [x["to_init_ms"] - x["guest_uptime_at_init_ms"] for x in s]
        stats[n]["before_guest_clock_ms"] = summary(pre)
        seen = sorted({x["guest_cmdline"] or "(not printed)" for x in s})
        cmdlines[n] = seen
        if len(seen) > 1:
            notes.append(f"{n}: the guest saw {len(seen)} different command lines")
    ratios = {}
    for k in ("to_init_ms", "to_exit_ms", "guest_uptime_at_init_ms"):
        pr = [a[k] / b[k] for a, b in zip(samples["isola"], samples["qemu"])]
        ratios[k] = {"ratio_of_medians": stats["isola"][k]["median"] / stats["qemu"][k]["median"],
                     "per_round": {q: v for q, v in summary(pr).items()
                                   if q in ("median", "p10", "p90")}}

    if o.json:
        json.dump({"benchmark": "vmm-linux", "kernel": o.kernel_label, "memory_mib": int(o.memory),
                   "runs_per_column": o.runs, "host": o.host, "columns": stats,
                   "guest_cmdlines": cmdlines, "ratios_isola_to_qemu": ratios, "notes": notes},
                  sys.stdout, indent=2)
        print()
        return

    print(f"isola-vmm vs QEMU: Linux boot to init, {o.kernel_label}, {o.memory} MiB guest, 1 vCPU, "
          f"{o.runs} interleaved rounds, host {o.host}")
    print(f"{'column':<7} {'n':>3} {'to init s':>10} {'p10':>7} {'p90':>7} {'to exit s':>10} "
          f"{'p10':>7} {'p90':>7} {'guest up s':>11} {'pre-clock s':>12} {'max RSS MiB':>12}  "
          "version")
    for n in names:
        s = stats[n]
        i, e = s["to_init_ms"], s["to_exit_ms"]
        print(f"{n:<7} {s['n']:>3} {i['median'] / 1e3:>10.2f} {i['p10'] / 1e3:>7.2f} "
              f"{i['p90'] / 1e3:>7.2f} {e['median'] / 1e3:>10.2f} {e['p10'] / 1e3:>7.2f} "
              f"{e['p90'] / 1e3:>7.2f} {s['guest_uptime_at_init_ms']['median'] / 1e3:>11.2f} "
              f"{s['before_guest_clock_ms']['median'] / 1e3:>12.2f} "
              f"{s['maxrss_kib']['median'] / 1024:>12.1f}  {s['version']}")
    for k, label in (("to_init_ms", "exec→init"), ("to_exit_ms", "exec→exit"),
                     ("guest_uptime_at_init_ms", "guest uptime at init")):
        r = ratios[k]
        pr = r["per_round"]
        print(f"isola/qemu {label}: ratio of medians {r['ratio_of_medians']:.2f}; per-round "
              f"median {pr['median']:.2f} (p10 {pr['p10']:.2f}, p90 {pr['p90']:.2f})")
    for n in names:
        for c in cmdlines[n]:
            print(f"{n} guest's /proc/cmdline: {c}")
    print("columns: 'to init' = exec → init's marker line complete on the console; 'to exit' = "
          "exec → monitor reaped; 'guest up' = the guest's CLOCK_MONOTONIC in the marker; "
          "'pre-clock' = to init − guest up (monitor start-up, firmware, the kernel's start "
          "before its clock); max RSS includes the guest memory the boot touched")
    for n in notes:
        print(f"note: {n}")


if __name__ == "__main__":
    main()
