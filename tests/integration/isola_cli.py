"""The `isola` CLI under test: a private store per test (never /var/lib/isola), and a check
afterwards that nothing is left behind (containers, mounts, cgroups, runtime state)."""
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import tempfile
import termios
import time

import pytest

from conftest import BUILDS, TOP


def isola_path(build):
    return os.path.join(TOP, build, "cli", "isola")


class Isola:
    def __init__(self, build, root):
        self.build = build
        self.path = isola_path(build)
        self.root = str(root)

    def cmd(self, *args):
        return [self.path, "--root", self.root, *map(str, args)]

    def __call__(self, *args, input=None, timeout=120, check=False, text=True, **kw):
        if "stdin" not in kw and input is None:
            kw["stdin"] = subprocess.DEVNULL
        if args and args[0] == "run" and ("-d" in args or "--detach" in args):
            # The monitor outlives us: no pipes it could hold open.
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                p = subprocess.run(self.cmd(*args), stdout=out, stderr=err, timeout=timeout, **kw)
                out.seek(0)
                err.seek(0)
                o, e = out.read(), err.read()
                if text:
                    o, e = o.decode(), e.decode()
                r = subprocess.CompletedProcess(p.args, p.returncode, o, e)
        else:
            r = subprocess.run(self.cmd(*args), input=input, capture_output=True, text=text,
                               timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"isola {args} failed ({r.returncode}): {r.stderr!r}")
        return r

    def ok(self, *args, **kw):
        return self(*args, check=True, **kw)

    def json(self, *args):
        return json.loads(self.ok(*args).stdout)

    def containers(self):
        d = os.path.join(self.root, "containers")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []


def cgroups_of(cid):
    found = []
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if not os.path.isdir(base):
            continue
        for ctrl in [""] + os.listdir(base):
            p = os.path.join(base, ctrl, "isola", cid)
            if os.path.isdir(p):
                found.append(p)
    return found


@pytest.fixture(params=BUILDS)
def isola(request, tmp_path):
    build = request.param
    if not os.path.exists(isola_path(build)):
        pytest.skip(f"{build} has no isola")
    i = Isola(build, tmp_path / "store")
    yield i
    ids = i.containers()
    for cid in ids:
        i("rm", "-f", cid)
    left = i.containers()
    with open("/proc/self/mountinfo") as f:
        mounts = [l.split()[4] for l in f if i.root in l]
    for m in reversed(mounts):
        subprocess.run(["umount", "-l", m], capture_output=True)
    cgroups = [p for cid in ids for p in cgroups_of(cid)]
    run_root = os.path.join(i.root, "run")
    state = os.listdir(run_root) if os.path.isdir(run_root) else []
    assert mounts == [], f"mounts left behind: {mounts}"
    assert left == [], f"containers left behind after rm -f: {left}"
    assert cgroups == [], f"cgroups left behind: {cgroups}"
    assert state == [], f"runtime state left behind: {state}"


class PtyRun:
    """`isola run -t` on a pseudo-terminal of ours, of a size we set, as a user's shell runs it."""

    def __init__(self, argv, env, rows=33, cols=111):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(argv[0], argv, env)
        self.resize(rows, cols)
        self.out = b""

    def resize(self, rows, cols):
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, what, timeout=60):
        end = time.monotonic() + timeout
        while what not in self.out and time.monotonic() < end:
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    d = os.read(self.fd, 4096)
                except OSError:
                    break
                if not d:
                    break
                self.out += d
        return what in self.out

    def finish(self, timeout=60):
        self.read_until(b"\0never", timeout)
        _, st = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(st)

