"""`isola run --isolation=vm` for real: our monitor (isola-vmm) boots our guest kernel
(kernel-config/) with isola-init on /dev/kvm, the image's erofs disk as the root, and the
container's process talks to the host over virtio-vsock. test_vm_engine.py covers the host side
in depth without a VM; these few tests prove that the whole chain works.

On a kvm_pvm host (MACHINE.md) guest kernel code is emulated, so a boot and a few commands take
tens of seconds: each test does much in one VM, and the VM tests use the plain build only (the
sanitizer build's engine and monitor are the same code, and their host side is what
test_vm_engine.py runs under both builds)."""
import hashlib
import os
import platform
import re
import subprocess
import time

import pytest

from conftest import BUILDS, PVM_HOST, TOP
from isola_cli import Isola, PtyRun, isola_path

pytestmark = pytest.mark.kvm
VM_TIMEOUT = 600  # a kvm_pvm boot is 15-30 s; the commands add as much again


@pytest.fixture(scope="module")
def guest_kernel():
    r = subprocess.run([os.path.join(TOP, "kernel-config", "build.sh"), "--print-path"],
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f"kernel-config/build.sh failed:\n{r.stderr[-4000:]}"
    return r.stdout.strip()


@pytest.fixture
def vm(guest_kernel, tmp_path):
    build = BUILDS[0]
    if not os.path.exists(isola_path(build)):
        pytest.skip(f"{build} has no isola")
    i = Isola(build, tmp_path / "store")
    env = dict(os.environ, ISOLA_KERNEL=guest_kernel)

    def run(*args, **kw):
        kw.setdefault("timeout", VM_TIMEOUT)
        return i("run", "--rm", "--isolation=vm", *args, env=env, **kw)

    i.run = run
    i.kernel = guest_kernel
    yield i
    for cid in i.containers():
        i("rm", "-f", cid)
    assert i.containers() == [], "a VM container was left behind"
    ps = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert ps.stdout == "", f"processes left behind: {ps.stdout}"


def kernel_release(vmlinux):
    with open(vmlinux, "rb") as f:
        m = re.search(rb"Linux version (\S+)", f.read())
    return m.group(1).decode()


def test_linux_guest_runs_the_container(vm, guest_kernel):
    """One VM: it is our kernel (not the host's), the image's root, the memory and vCPUs asked
    for, stdout and stderr apart, env and workdir, and the exit status. On kvm_pvm a Linux guest
    cannot start a second vCPU (MACHINE.md): isola-vmm gives it maxcpus=1 there, so nproc is 1
    (test_vmm.py's SMP test guests prove that the monitor runs every vCPU)."""
    # A fork flood in a subshell (a failed fork ends a shell) meets --pids-limit 8; what the
    # cgroup saw is read with a builtin, as no fork is left.
    script = ('echo "kernel $(uname -r)"; grep MemTotal /proc/meminfo; echo "cpus $(nproc)"; '
              'echo "$GREETING from $(pwd)"; '
              '(i=0; while [ $i -lt 12 ]; do sleep 60 & i=$((i+1)); done) 2>/dev/null; '
              'read -r cg < /proc/self/cgroup; read -r max < /sys/fs/cgroup/isola/pids.max; '
              'read -r ev < /sys/fs/cgroup/isola/pids.events; echo "pids $cg $max $ev"; '
              'echo to-stderr >&2; exit 42')
    r = vm.run("--memory", "192m", "--cpus", "2", "--pids-limit", "8", "-e", "GREETING=hi",
               "-w", "/tmp", "busybox", "sh", "-c", script)
    assert r.returncode == 42, r.stderr
    out = r.stdout
    assert f"kernel {kernel_release(guest_kernel)}\n" in out, out
    assert f"kernel {platform.release()}\n" not in out, "the container ran on the host kernel"
    assert "hi from /tmp\n" in out, out
    mem = int(re.search(r"MemTotal:\s+(\d+) kB", out).group(1))
    assert 120 * 1024 < mem <= 192 * 1024, f"MemTotal {mem} kB for --memory 192m"
    assert f"cpus {1 if PVM_HOST else 2}\n" in out, out
    pids = re.search(r"pids 0::/isola 8 max (\d+)\n", out)
    assert pids and int(pids.group(1)) > 0, f"--pids-limit 8 stopped no fork: {out}"
    assert r.stderr.endswith("to-stderr\n"), r.stderr
    assert "to-stderr" not in out


def test_binary_output_and_stdin_byte_exact(vm):
    """The image's busybox binary (the host's /bin/busybox, from Debian's busybox-static, over
    1 MiB) comes out byte for byte, and random bytes sent to stdin come back as they went in."""
    with open("/bin/busybox", "rb") as f:
        busybox = f.read()
    assert len(busybox) > 1 << 20
    data = os.urandom(64 << 10)
    r = vm.run("-i", "busybox", "sh", "-c", "cat /bin/busybox; cat", input=data, text=False)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == len(busybox) + len(data), (len(r.stdout), r.stderr[-2000:])
    assert r.stdout[:len(busybox)] == busybox, "the binary output differs"
    assert r.stdout[len(busybox):] == data, "stdin did not come back as sent"


@pytest.mark.parametrize("cmd,code", [
    (["nosuch-command"], 127),
    (["sh", "-c", "kill -TERM $$"], 128 + 15),
])
def test_exit_status_of_a_missing_command_and_a_signal(vm, cmd, code):
    r = vm.run("busybox", *cmd)
    assert r.returncode == code, r.stderr


def test_volumes_are_shared_directories(vm, tmp_path):
    """-v in a VM is virtio-fs: the guest sees the host directory, its changes land there as
    the container's user, a :ro volume refuses changes, and neither a symlink nor ".." reaches
    the host outside the volume."""
    tmp_path.chmod(0o755)  # the file volumes' directory: uid 1000 may look, and see them alone
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    rw.chmod(0o777)
    secret = os.urandom(8).hex()
    (tmp_path / "secret.txt").write_text(secret)
    (rw / "escape").symlink_to("../secret.txt")
    (rw / "gone.txt").write_text("bye")
    (rw / "gone.txt").chmod(0o666)
    (ro / "in.txt").write_text("from the host\n")
    conf, log = tmp_path / "app.conf", tmp_path / "app.log"
    conf.write_text("setting=1\n")
    log.write_text("first\n")
    log.chmod(0o666)
    (ro / "many").mkdir()
    for n in range(500):
        (ro / "many" / f"entry-{n:03}").write_text("")
    script = """
        cat /ro/in.txt
        ls /ro/many > /tmp/list && echo entries $(wc -l < /tmp/list)  # (a piped wc crashes on kvm_pvm)
        touch /ro/x 2>/dev/null && echo ro-writable || echo ro-refused
        echo made > /rw/made.txt && chmod 640 /rw/made.txt
        mkdir -p /rw/a/b && echo deep > /rw/a/b/f && mv /rw/a/b/f /rw/a/g
        ln -s g /rw/a/l && ln /rw/a/g /rw/a/hard && cat /rw/a/l
        dd if=/dev/urandom of=/rw/rand bs=64k count=20 2>/dev/null
        md5sum /rw/rand | sed 's/ .*//; s/^/md5 /'
        rm /rw/gone.txt
        cat /rw/escape /rw/../secret.txt 2>&1
        echo id $(id -u):$(id -g)
        cat /etc/app.conf; echo x >> /etc/app.conf 2>/dev/null || echo conf-ro
        echo second >> /var/log/app.log
        echo seen $(ls -a /run/isola-volumes/2) $(ls -a /run/isola-volumes/3)
    """
    r = vm.run("-u", "1000:1000", "-v", f"{rw}:/rw", "-v", f"{ro}:/ro:ro",
               "-v", f"{conf}:/etc/app.conf:ro", "-v", f"{log}:/var/log/app.log", "busybox", "sh",
               "-c", script)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "from the host\n" in out and "entries 500\n" in out, out
    assert "ro-refused\n" in out and not (ro / "x").exists(), out
    assert "deep\n" in out and "id 1000:1000\n" in out, out
    assert secret not in out + r.stderr, "a symlink or .. read the host outside the volume"
    assert (rw / "made.txt").read_text() == "made\n"
    st = (rw / "made.txt").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o640), st
    assert (rw / "a" / "g").read_text() == "deep\n" and not (rw / "a" / "b" / "f").exists()
    assert os.readlink(rw / "a" / "l") == "g"
    assert (rw / "a" / "hard").stat().st_ino == (rw / "a" / "g").stat().st_ino
    assert not (rw / "gone.txt").exists()
    rand = (rw / "rand").read_bytes()
    assert len(rand) == 20 * 64 * 1024
    assert f"md5 {hashlib.md5(rand).hexdigest()}\n" in out, "the file differs from what the guest wrote"
    # File volumes: the file alone is shared (its directory holds the rest of this test).
    assert "setting=1\nconf-ro\n" in out and conf.read_text() == "setting=1\n", out
    assert log.read_text() == "first\nsecond\n"
    assert "seen . .. app.conf . .. app.log\n" in out, out
    assert sorted(os.listdir(tmp_path)) == ["app.conf", "app.log", "ro", "rw", "secret.txt",
                                            "store"], "written outside"



def test_terminal_in_the_guest(vm):
    """-it in a real guest: its kernel's devpts gives the process a terminal of our size, and
    what we type reaches it through that terminal."""
    p = PtyRun(vm.cmd("run", "--rm", "-it", "--isolation=vm", "busybox", "sh", "-c",
                      "tty; stty size; echo ready; read line; echo line:$line; exit 5"),
               dict(os.environ, ISOLA_KERNEL=vm.kernel), rows=27, cols=91)
    assert p.read_until(b"ready", timeout=VM_TIMEOUT), p.out
    os.write(p.fd, b"typed\r")
    assert p.finish(timeout=120) == 5, p.out
    assert b"/dev/pts/0\r\n27 91\r\n" in p.out and b"line:typed" in p.out, p.out


def test_exec_into_a_vm(vm):
    """isola exec reaches a running VM through the monitor's vsock: a process in the same
    container (it sees what the first one wrote), its own stdio and exit status."""
    env = dict(os.environ, ISOLA_KERNEL=vm.kernel)
    vm.ok("run", "-d", "--name", "vmexec", "--isolation=vm", "busybox", "sh", "-c",
          "echo written-by-run > /tmp/mark; while :; do sleep 1; done", env=env)
    deadline = time.monotonic() + VM_TIMEOUT
    while time.monotonic() < deadline:
        r = vm("exec", "vmexec", "cat", "/tmp/mark", timeout=120)
        if r.returncode == 0:
            break
        time.sleep(2)
    assert r.stdout == "written-by-run\n", r.stderr
    r = vm("exec", "-i", "vmexec", "sh", "-c", "cat; echo to-err >&2; exit 9", input="piped\n",
           timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (9, "piped\n", "to-err\n")
    vm.ok("rm", "-f", "vmexec")
