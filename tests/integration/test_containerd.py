"""isola-runtime under a real engine: containerd 1.6 and its runc shim, driven with ctr
(--runc-binary), from a private containerd (own root, state, socket; no CRI) that imports the
busybox rootfs as an OCI image layout."""
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
import uuid

import pytest

from client_helpers import assert_nothing_left, rootfs_tarball, run_in_pty

IMAGE = "docker.io/library/isola-busybox:latest"
NAMESPACE = "isola-test"
LOOP_UNTIL_TERM = "trap 'exit 3' TERM; while :; do sleep 0.1; done"

CONFIG = """\
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"""


def oci_archive(layer_path, out, name):
    """An OCI image layout tarball (what `ctr image import` reads) of one uncompressed layer."""
    blobs = {}

    def blob(data, media_type):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    with open(layer_path, "rb") as f:
        layer = blob(f.read(), "application/vnd.oci.image.layer.v1.tar")
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": blob(json.dumps(config).encode(),
                               "application/vnd.oci.image.config.v1+json"),
                "layers": [layer]}
    desc = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    desc["platform"] = {"architecture": "amd64", "os": "linux"}
    desc["annotations"] = {"io.containerd.image.name": name,
                           "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [desc]}
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
             "index.json": json.dumps(index).encode()}
    files.update({"blobs/sha256/" + d.split(":")[1]: data for d, data in blobs.items()})
    with tarfile.open(out, "w") as t:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out


@pytest.fixture(scope="session")
def containerd(tmp_path_factory, template_rootfs):
    """A private containerd with the busybox image; stopped at the end of the session."""
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.skip("containerd or ctr is not installed")
    d = tmp_path_factory.mktemp("containerd")
    (d / "config.toml").write_text(CONFIG.format(d=d))
    log = open(d / "containerd.log", "wb")
    daemon = subprocess.Popen(["containerd", "--config", str(d / "config.toml")],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    ctr = ["ctr", "--address", str(d / "containerd.sock"), "--namespace", NAMESPACE]
    try:
        for _ in range(200):
            if subprocess.run(ctr + ["version"], capture_output=True).returncode == 0:
                break
            assert daemon.poll() is None, (d / "containerd.log").read_text()
            time.sleep(0.05)
        layer = rootfs_tarball(template_rootfs, d / "rootfs.tar")
        archive = oci_archive(layer, d / "image.tar", IMAGE)
        r = subprocess.run(ctr + ["image", "import", str(archive)], capture_output=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        yield ctr
        # Whatever a failed test left: its task, then its container.
        for c in subprocess.run(ctr + ["container", "ls", "-q"], capture_output=True,
                                text=True).stdout.split():
            subprocess.run(ctr + ["task", "delete", "--force", c], capture_output=True)
            subprocess.run(ctr + ["container", "delete", c], capture_output=True)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()


class Ctr:
    def __init__(self, base, runtime, tmp_path):
        self.base = base
        self.runtime = runtime
        self.runc_root = str(tmp_path / "runc-root")
        self.fifo_dir = str(tmp_path / "fifo")
        self.ids = []

    def new_id(self):
        cid = "isola-" + uuid.uuid4().hex[:12]
        self.ids.append(cid)
        return cid

    def cmd(self, *args):
        return self.base + list(map(str, args))

    def run_cmd(self, *args):
        return self.cmd("run", "--runc-binary", self.runtime, "--runc-root", self.runc_root,
                        "--fifo-dir", self.fifo_dir, *args)

    def exec_cmd(self, cid, exec_id, *args, tty=False):
        return self.cmd("task", "exec", "--exec-id", exec_id, "--fifo-dir", self.fifo_dir,
                        *(["-t"] if tty else []), cid, *args)

    def __call__(self, cmd, input=None, timeout=60):
        return subprocess.run(cmd, input=input,
                              stdin=subprocess.DEVNULL if input is None else None,
                              capture_output=True, timeout=timeout)

    def ok(self, cmd, **kw):
        r = self(cmd, **kw)
        assert r.returncode == 0, f"{cmd[4:]} failed ({r.returncode}): {r.stderr!r}"
        return r

    def task_status(self, cid):
        for line in self.ok(self.cmd("task", "ls")).stdout.decode().splitlines()[1:]:
            f = line.split()
            if f and f[0] == cid:
                return int(f[1]), f[2]
        return None, None

    def wait_status(self, cid, want, timeout=10):
        end = time.monotonic() + timeout
        while self.task_status(cid)[1] != want:
            assert time.monotonic() < end, f"task {cid} is not {want}"
            time.sleep(0.05)


@pytest.fixture
def ctr(containerd, rt, tmp_path):
    c = Ctr(containerd, rt.path, tmp_path)
    yield c
    # The shim runs the runtime with --root RUNC_ROOT/NAMESPACE.
    assert_nothing_left(c.ids, [os.path.join(c.runc_root, NAMESPACE)])


def test_ctr_echo(ctr):
    r = ctr(ctr.run_cmd("--rm", IMAGE, ctr.new_id(), "echo", "hello"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello\n"


def test_ctr_exit_code(ctr):
    r = ctr(ctr.run_cmd("--rm", IMAGE, ctr.new_id(), "sh", "-c", "exit 42"))
    assert r.returncode == 42, r.stderr


def test_ctr_stdin(ctr):
    r = ctr(ctr.run_cmd("--rm", IMAGE, ctr.new_id(), "sh", "-c", "read x; echo got $x"),
            input=b"abc\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"got abc\n"


def test_ctr_tty(ctr):
    # ctr -t needs a terminal of its own: give it a pty.
    rc, out = run_in_pty(ctr.run_cmd("--rm", "-t", IMAGE, ctr.new_id(),
                                     "sh", "-c", "test -t 0 && test -t 1 && tty && exit 4"))
    assert rc == 4, out
    assert b"/dev/pts/" in out, out  # ctr may add a warning about resizing after the exit


def test_ctr_exec_kill_delete(ctr):
    cid = ctr.new_id()
    ctr.ok(ctr.run_cmd("-d", IMAGE, cid, "sh", "-c", LOOP_UNTIL_TERM))
    pid, status = ctr.task_status(cid)
    assert status == "RUNNING" and os.getsid(pid) == pid
    assert os.path.isdir(os.path.join(ctr.runc_root, NAMESPACE, cid))

    r = ctr(ctr.exec_cmd(cid, "e1", "sh", "-c", "cat; exit 7"), input=b"data\n")
    assert (r.returncode, r.stdout) == (7, b"data\n"), r.stderr
    rc, out = run_in_pty(ctr.exec_cmd(cid, "e2", "sh", "-c", "test -t 0 && tty", tty=True))
    assert rc == 0 and b"/dev/pts/" in out, out
    r = ctr(ctr.exec_cmd(cid, "e3", "/nonexistent"))
    assert r.returncode != 0 and b"/nonexistent" in r.stderr, r

    ctr.ok(ctr.cmd("task", "kill", cid))  # SIGTERM
    ctr.wait_status(cid, "STOPPED")
    r = ctr.ok(ctr.cmd("task", "delete", cid))
    assert b"exit code 3" in r.stderr, r.stderr
    ctr.ok(ctr.cmd("container", "delete", cid))


def test_ctr_kill_all(ctr):
    cid = ctr.new_id()
    ctr.ok(ctr.run_cmd("-d", IMAGE, cid, "sh", "-c", "sleep 1000 & sleep 1000"))
    ctr.ok(ctr.cmd("task", "kill", "--all", "--signal", "KILL", cid))
    ctr.wait_status(cid, "STOPPED")
    r = ctr.ok(ctr.cmd("task", "delete", cid))
    assert b"exit code 137" in r.stderr, r.stderr
    ctr.ok(ctr.cmd("container", "delete", cid))
