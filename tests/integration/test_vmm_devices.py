"""isola-vmm's virtio-blk and virtio-vsock: the test guests tests/guests/blk.c and vsock.c drive
the devices from inside a VM (need /dev/kvm: skipped without it) against real host files and
unix sockets; the C test test_vmm_devices drives the same devices through MMIO without KVM
(always runs); the CLI's --disk/--vsock-socket input checks."""
import hashlib
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILDS, TOP

PASS = 33  # VERDICT_PASS 0x10 → (0x10 << 1) | 1
SECTORS = 2048
TOTAL = 256 << 10


def vmm(build):
    return os.path.join(TOP, build, "vmm", "isola-vmm")


def guest(build, name):
    return os.path.join(TOP, build, "tests", "guests", name + ".elf")


def boot_args(build, name, cmdline, *extra):
    exe = vmm(build)
    if not os.path.exists(exe):
        pytest.skip(f"isola-vmm not built in {build}")
    return [exe, "--kernel", guest(build, name), "--cmdline", cmdline, "--console",
            *map(str, extra)]


def boot(build, name, cmdline, *extra, timeout=60):
    return subprocess.run(boot_args(build, name, cmdline, *extra), capture_output=True,
                          text=True, timeout=timeout)


def pattern(n, start=0):
    return bytes(((i * 2654435761) & 0xffffffff) >> 24 for i in range(start, start + n))


def clean(r):
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr


# ---- without KVM ----

@pytest.mark.parametrize("build", BUILDS)
def test_unit_vmm_devices(build):
    exe = os.path.join(TOP, build, "tests", "unit", "test_vmm_devices")
    if not os.path.exists(exe):
        pytest.skip(f"test_vmm_devices not built in {build}")
    r = subprocess.run([exe], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "not ok" not in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "1..84" in r.stdout, r.stdout[-500:]
    clean(r)


@pytest.mark.parametrize("build", BUILDS)
def test_too_many_disks(build, tmp_path):
    k = tmp_path / "k"
    k.write_bytes(b"x")
    exe = vmm(build)
    if not os.path.exists(exe):
        pytest.skip(f"isola-vmm not built in {build}")
    args = [exe, "--kernel", str(k)]
    for i in range(17):
        args += ["--disk", f"/nonexistent/{i}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "at most 16 disks" in lines[0], r.stderr


# ---- virtio-blk in a VM ----

@pytest.fixture
def disk(tmp_path):
    p = tmp_path / "disk-rw.img"
    p.write_bytes(pattern(SECTORS * 512))
    return p


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_blk_read_write_flush_id(build, disk):
    r = boot(build, "blk", f"test=1 sectors={SECTORS}", "--disk", disk)
    assert r.returncode == PASS, r.stdout + r.stderr
    assert "blk: rw ok" in r.stdout and "blk: id=disk-rw.img\n" in r.stdout, r.stdout
    data = disk.read_bytes()
    want = bytearray(pattern(SECTORS * 512))
    want[16 * 512:18 * 512] = bytes((0xa5 ^ i) & 0xff for i in range(1024))
    assert data == bytes(want)
    clean(r)


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_blk_read_only(build, disk):
    before = disk.read_bytes()
    r = boot(build, "blk", f"test=2 ro=1 sectors={SECTORS}", "--disk", f"{disk},ro")
    assert r.returncode == PASS, r.stdout + r.stderr
    assert "blk: ro ok" in r.stdout
    assert disk.read_bytes() == before
    clean(r)


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_blk_hostile_driver(build, tmp_path):
    big = tmp_path / "big.img"
    with open(big, "wb") as f:
        f.truncate(64 << 20)
    sectors = (64 << 20) // 512
    t0 = time.monotonic()
    r = boot(build, "blk", f"test=3 sectors={sectors}", "--disk", big)
    assert r.returncode == PASS, r.stdout + r.stderr
    assert "blk: hostile ok" in r.stdout
    assert time.monotonic() - t0 < 30
    with open(big, "rb") as f:
        while chunk := f.read(1 << 20):
            assert chunk.count(0) == len(chunk)
    clean(r)


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_blk_bad_disks(build, tmp_path):
    r = boot(build, "blk", "test=1", "--disk", tmp_path / "missing.img")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "missing.img" in lines[0], r.stderr
    r = boot(build, "blk", "test=1", "--disk", "/dev/null")
    assert r.returncode == 1 and "not a regular file or block device" in r.stderr, r.stderr


# ---- virtio-vsock in a VM ----

def echo_server(path, result):
    """A unix server at path: accept one connection, echo until EOF, record a digest."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(4)
    srv.settimeout(60)

    def serve():
        try:
            conn, _ = srv.accept()
            h, n = hashlib.sha256(), 0
            with conn:
                conn.settimeout(60)
                while data := conn.recv(65536):
                    h.update(data)
                    n += len(data)
                    conn.sendall(data)
            result["digest"], result["bytes"] = h.hexdigest(), n
        except OSError as e:
            result["error"] = repr(e)
        finally:
            srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("jail", [[], ["--jail"]], ids=["", "jail"])
def test_vsock_guest_to_host(build, tmp_path, jail):
    """Guest → host streams; with --jail the monitor reaches the host's socket from its jail,
    where that socket's directory is all there is."""
    uds = tmp_path / "v.sock"
    result = {}
    t = echo_server(f"{uds}_1234", result)
    r = boot(build, "vsock", "test=1 port=1234", "--vsock-socket", uds, *jail)
    t.join(10)
    assert r.returncode == PASS, r.stdout + r.stderr
    assert "vsock: guest to host ok" in r.stdout
    assert result.get("bytes") == TOTAL, result
    assert result["digest"] == hashlib.sha256(pattern(TOTAL)).hexdigest()
    assert not uds.exists()  # removed with the VM
    clean(r)


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_vsock_host_to_guest(build, tmp_path):
    uds = tmp_path / "v.sock"
    p = subprocess.Popen(boot_args(build, "vsock", "test=2 lport=2000", "--vsock-socket", uds),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not uds.exists() and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.01)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(str(uds))
        s.sendall(b"CONNECT 2000\n")
        line = b""
        while not line.endswith(b"\n") and (c := s.recv(1)):
            line += c
        assert line.startswith(b"OK ") and int(line[3:]) >= 1 << 30, line
        payload = os.urandom(TOTAL)

        def writer():
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)

        w = threading.Thread(target=writer, daemon=True)
        w.start()
        echo = bytearray()
        while data := s.recv(65536):
            echo += data
        w.join(10)
        s.close()
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == PASS, out + err
    assert bytes(echo) == payload
    assert f"echoed 0x{TOTAL:016x}" in out, out
    assert "runtime error" not in err and "AddressSanitizer" not in err, err


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_vsock_hostile_driver(build, tmp_path):
    uds = tmp_path / "v.sock"
    result = {}
    t = echo_server(f"{uds}_1234", result)
    r = boot(build, "vsock", "test=3 port=1234", "--vsock-socket", uds)
    t.join(10)
    assert r.returncode == PASS, r.stdout + r.stderr
    assert "vsock: hostile survived" in r.stdout
    assert result.get("bytes") == 4
    clean(r)


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_vsock_bad_socket_paths(build, tmp_path):
    r = boot(build, "vsock", "test=1", "--vsock-socket", "/" + "a" * 120)
    assert r.returncode == 1 and "longer than" in r.stderr, r.stderr
    taken = tmp_path / "taken.sock"
    taken.write_text("")
    r = boot(build, "vsock", "test=1", "--vsock-socket", taken)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "cannot bind" in lines[0], r.stderr


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_running_monitor_is_sandboxed(build, tmp_path):
    """Once the VM runs, every thread of the monitor is under its seccomp filter (vmm/sandbox.c)
    with no_new_privs; the device tests above prove that what serving a guest needs is allowed
    (in the plain build a forbidden call kills the monitor). The guest here waits for a host
    connection, so the monitor is caught running."""
    uds = tmp_path / "v.sock"
    p = subprocess.Popen(boot_args(build, "vsock", "test=2 lport=2000", "--vsock-socket", uds,
                                   "--cpus", 2),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and p.poll() is None:
            tasks = os.listdir(f"/proc/{p.pid}/task")
            if uds.exists() and len(tasks) >= 4:  # main, the event loop, 2 vCPUs
                break
            time.sleep(0.05)
        time.sleep(0.2)
        states = {}
        for tid in os.listdir(f"/proc/{p.pid}/task"):
            with open(f"/proc/{p.pid}/task/{tid}/status") as f:
                fields = dict(line.split(":\t", 1) for line in f.read().splitlines()
                              if ":\t" in line)
            states[tid] = (fields["Seccomp"].strip(), fields["NoNewPrivs"].strip())
        assert p.poll() is None, f"the monitor ended: {p.returncode}"
        assert len(states) >= 4, states
        assert set(states.values()) == {("2", "1")}, states
    finally:
        p.kill()
        p.wait()


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_jailed_monitor(build, tmp_path):
    """--jail: the running monitor has mount and network namespaces of its own, a root that holds
    nothing but its socket's directory, and no capabilities (no shared directory here)."""
    uds = tmp_path / "v.sock"
    (tmp_path / "secret").write_text("x")
    p = subprocess.Popen(boot_args(build, "vsock", "test=2 lport=2000", "--vsock-socket", uds,
                                   "--jail"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and p.poll() is None and not uds.exists():
            time.sleep(0.05)
        time.sleep(0.2)
        assert p.poll() is None, p.stderr.read()
        for ns in ["mnt", "net", "ipc", "uts"]:
            assert os.readlink(f"/proc/{p.pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        root = f"/proc/{p.pid}/root"
        # (sanitizer builds keep /proc for LeakSanitizer)
        top = set(os.listdir(root)) - ({"proc"} if "asan" in build else set())
        assert top == {str(tmp_path).split("/")[1]}, os.listdir(root)
        assert sorted(os.listdir(f"{root}{tmp_path}")) == ["secret", "v.sock"]
        assert not os.path.exists(f"{root}/etc") and not os.path.exists(f"{root}/dev/kvm")
        with open(f"/proc/{p.pid}/status") as f:
            caps = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
        assert int(caps["CapEff"], 16) == 0 and int(caps["CapBnd"], 16) == 0, caps
    finally:
        p.kill()
        p.wait()
