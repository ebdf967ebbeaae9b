"""Shared by test_podman.py and test_containerd.py: the image's rootfs tarball, a pseudo-terminal
runner (CI has no terminal) and the check that a container left nothing behind."""
import fcntl
import os
import select
import subprocess
import tarfile
import termios
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def rootfs_tarball(rootfs, path):
    """The busybox rootfs (conftest's template_rootfs) as an uncompressed layer tarball."""
    with tarfile.open(path, "w") as t:
        for name in sorted(os.listdir(rootfs)):
            t.add(os.path.join(rootfs, name), arcname=name)
    return path


def _take_terminal():
    # In the child after setsid(): the pty on fd 0 becomes its controlling terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_in_pty(cmd, env=None, timeout=30, input=None, input_delay=0.0):
    """Run cmd with a new pty as its stdio and controlling terminal; return (rc, output).
    input (bytes) is typed after input_delay seconds."""
    master, slave = os.openpty()
    try:
        p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env,
                             start_new_session=True, preexec_fn=_take_terminal)
    finally:
        os.close(slave)
    out = b""
    start = time.monotonic()
    deadline = start + timeout
    try:
        while time.monotonic() < deadline:
            if input is not None and time.monotonic() - start >= input_delay:
                os.write(master, input)
                input = None
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                if p.poll() is not None and input is None:
                    break
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every slave end is closed
                break
            if not data:
                break
            out += data
        return p.wait(timeout=max(1, deadline - time.monotonic())), out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def _cgroups_named(needles, max_depth=4):
    found = []
    tops = [os.path.join(CGROUP_ROOT, d) for d in os.listdir(CGROUP_ROOT)]
    for top in tops + [CGROUP_ROOT]:
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        base_depth = top.rstrip("/").count("/")
        for dirpath, dirnames, _ in os.walk(top):
            if dirpath.count("/") - base_depth >= max_depth:
                dirnames[:] = []
            found += [os.path.join(dirpath, d) for d in dirnames if any(n in d for n in needles)]
    return sorted(set(found))


def _processes_of(needles):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cgroup", "rb") as f:
                cg = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in cg or n in cmd for n in needles):
            found.append(f"{pid}: {cmd.strip()}")
    return found


def leftovers(ids, state_dirs):
    """What the containers `ids` left: state under the runtime roots, cgroups and processes
    whose cgroup or command line names them (conmon and shims name the container too)."""
    left = []
    for d in state_dirs:
        if os.path.isdir(d):
            left += [f"state {os.path.join(d, e)}" for e in os.listdir(d)]
    left += [f"cgroup {c}" for c in _cgroups_named(ids)]
    left += [f"process {p}" for p in _processes_of(ids)]
    return left


def assert_nothing_left(ids, state_dirs, timeout=10):
    """Engines finish their clean-up asynchronously (conmon's exit command, the shim's exit):
    wait for it, then fail naming what is still there."""
    ids = [i for i in ids if i]
    assert ids, "no container ids to check"
    end = time.monotonic() + timeout
    while True:
        left = leftovers(ids, state_dirs)
        if not left or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert left == [], f"left behind: {left}"
