"""isola-runtime under a real engine: Debian's podman 4.3 (through conmon), with a private
storage, configuration and runtime root, and an image imported from the busybox rootfs."""
import os
import shutil
import subprocess
import time
import uuid

import pytest

from client_helpers import assert_nothing_left, rootfs_tarball, run_in_pty

IMAGE = "localhost/isola-busybox:latest"
LOOP_UNTIL_TERM = "trap 'exit 3' TERM; while :; do sleep 0.1; done"

CONTAINERS_CONF = """\
[containers]
# Within this host's hard limits: podman's defaults fail with "setrlimit ... not permitted".
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
volume_path = "{d}/volumes"
# So that conmon passes --log-format=json --log FILE, as it does for runc.
runtime_supports_json = ["isola-runtime"]

[network]
network_config_dir = "{d}/networks"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{d}/root"
runroot = "{d}/runroot"
"""


@pytest.fixture(scope="session")
def podman_store(tmp_path_factory, template_rootfs):
    """Private podman configuration and storage holding the busybox image."""
    if not shutil.which("podman") or not shutil.which("conmon"):
        pytest.skip("podman or conmon is not installed")
    d = tmp_path_factory.mktemp("podman")
    (d / "containers.conf").write_text(CONTAINERS_CONF.format(d=d))
    (d / "storage.conf").write_text(STORAGE_CONF.format(d=d))
    env = dict(os.environ, CONTAINERS_CONF=str(d / "containers.conf"),
               CONTAINERS_STORAGE_CONF=str(d / "storage.conf"))
    tarball = rootfs_tarball(template_rootfs, d / "rootfs.tar")
    r = subprocess.run(["podman", "import", "-q", str(tarball), IMAGE], env=env,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    yield env
    subprocess.run(["podman", "rm", "--all", "--force", "--time", "0"], env=env,
                   capture_output=True, timeout=120)
    subprocess.run(["podman", "rmi", "--all", "--force"], env=env, capture_output=True,
                   timeout=120)


class Podman:
    def __init__(self, env, runtime, root):
        self.env = env
        self.runtime = runtime
        self.root = root
        self.ids = []

    def cmd(self, *args):
        return ["podman", "--runtime", self.runtime, *map(str, args)]

    def __call__(self, *args, input=None, timeout=60):
        return subprocess.run(self.cmd(*args), env=self.env, input=input,
                              stdin=subprocess.DEVNULL if input is None else None,
                              capture_output=True, timeout=timeout)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, f"podman {args} failed ({r.returncode}): {r.stderr!r}"
        return r

    def inspect(self, name, fmt):
        return self.ok("inspect", "--format", fmt, name).stdout.decode().strip()

    def run_cidfile(self, tmp_path):
        """A --cidfile path whose container id is checked for leftovers."""
        path = tmp_path / f"cid-{len(self.ids)}"
        self.ids.append(path)
        return path


# Every test runs against each build: a podman command costs 0.5-1 s here, and both client
# test files together take ~35 s for the two builds.
@pytest.fixture
def podman(podman_store, rt, tmp_path):
    # podman drops --runtime-flag from the exit command conmon runs (`podman container
    # cleanup`), so a wrapper pins the runtime root for every call: the default /run/isola is
    # shared with whatever else runs on the host.
    wrapper = tmp_path / "bin" / "isola-runtime"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{rt.path}" --root "{rt.root}" "$@"\n')
    wrapper.chmod(0o755)
    p = Podman(podman_store, str(wrapper), rt.root)
    yield p
    ids = [f.read_text().strip() for f in p.ids if f.exists()]
    if ids:
        assert_nothing_left(ids, [rt.root])


def test_podman_echo(podman, tmp_path):
    r = podman("run", "--rm", "--cidfile", podman.run_cidfile(tmp_path), IMAGE, "echo", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello\n"


def test_podman_exit_code(podman, tmp_path):
    r = podman("run", "--rm", "--cidfile", podman.run_cidfile(tmp_path), IMAGE,
               "sh", "-c", "exit 42")
    assert r.returncode == 42, r.stderr


def test_podman_stdin(podman, tmp_path):
    r = podman("run", "--rm", "-i", "--cidfile", podman.run_cidfile(tmp_path), IMAGE,
               "sh", "-c", "read x; echo got $x", input=b"abc\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"got abc\n"


def test_podman_tty(podman, tmp_path):
    # -t without a terminal on our side: conmon still gives the container a pty.
    r = podman("run", "--rm", "-t", "--cidfile", podman.run_cidfile(tmp_path), IMAGE,
               "sh", "-c", "test -t 0 && test -t 1 && tty")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"/dev/pts/"), r.stdout


def test_podman_interactive_tty(podman, tmp_path):
    rc, out = run_in_pty(podman.cmd("run", "--rm", "-it", "--cidfile", podman.run_cidfile(tmp_path),
                                    IMAGE, "sh"),
                         env=podman.env, input=b"echo $((6*7)); tty; exit 5\n")
    assert rc == 5, out
    assert b"\n42\r\n/dev/pts/" in out, out


def test_podman_exec_stop_rm(podman, tmp_path):
    name = "isola-" + uuid.uuid4().hex[:12]
    cid = podman.ok("run", "-d", "--name", name, "--cidfile", podman.run_cidfile(tmp_path),
                    IMAGE, "sh", "-c", LOOP_UNTIL_TERM).stdout.decode().strip()
    status, pid = podman.inspect(name, "{{.State.Status}} {{.State.Pid}}").split()
    assert status == "running"
    pid = int(pid)
    # Its own session and process group, so that conmon's signals to its group miss it.
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    assert os.path.isdir(os.path.join(podman.root, cid)), "state under the runtime root"

    r = podman("exec", "-i", name, "sh", "-c", "cat; exit 7", input=b"data\n")
    assert (r.returncode, r.stdout) == (7, b"data\n"), r.stderr
    r = podman("exec", "-t", name, "tty")
    assert r.returncode == 0 and r.stdout.startswith(b"/dev/pts/"), r
    r = podman("exec", name, "/nonexistent")
    assert r.returncode == 127 and b"/nonexistent" in r.stderr, r
    podman.ok("exec", "-d", name, "sleep", "100")  # must go with the container

    start = time.monotonic()
    podman.ok("stop", "--time", "10", name)
    assert time.monotonic() - start < 8, "SIGTERM did not reach the container"
    assert podman.inspect(name, "{{.State.ExitCode}}") == "3"
    podman.ok("rm", name)


def test_podman_kill(podman, tmp_path):
    name = "isola-" + uuid.uuid4().hex[:12]
    podman.ok("run", "-d", "--name", name, "--cidfile", podman.run_cidfile(tmp_path), IMAGE,
              "sleep", "1000")
    podman.ok("kill", name)
    assert podman.ok("wait", name).stdout.strip() == b"137"
    podman.ok("rm", name)


def test_podman_stop_host_pid(podman, tmp_path):
    # In the host's pid namespace, podman stops a container with `kill --all`.
    name = "isola-" + uuid.uuid4().hex[:12]
    podman.ok("run", "-d", "--pid", "host", "--name", name, "--cidfile",
              podman.run_cidfile(tmp_path), IMAGE, "sh", "-c", LOOP_UNTIL_TERM)
    podman.ok("stop", "--time", "10", name)
    assert podman.inspect(name, "{{.State.ExitCode}}") == "3"
    podman.ok("rm", name)


def test_podman_timeout(podman, tmp_path):
    # conmon's --timeout kills the container's process group: the container must have its own.
    start = time.monotonic()
    r = podman("run", "--rm", "--timeout", "1", "--cidfile", podman.run_cidfile(tmp_path), IMAGE,
               "sleep", "30")
    assert r.returncode == 255, r.stderr
    assert time.monotonic() - start < 10


def test_podman_device_and_sysctl(podman, tmp_path):
    # podman's fileMode carries the node type bits; its readonlyPaths include /proc/sys.
    r = podman("run", "--rm", "--device", "/dev/null:/dev/mynull", "--sysctl",
               "net.ipv4.ip_forward=1", "--cidfile", podman.run_cidfile(tmp_path), IMAGE,
               "sh", "-c", "test -c /dev/mynull && cat /proc/sys/net/ipv4/ip_forward")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"1\n"
