#!/usr/bin/env python3
"""The nested KVM host: a machine without a usable /dev/kvm (this workplace's, when its kvm_pvm
module does not bind) can still run isola's VMs under real KVM, one level down. QEMU emulates an
AMD CPU with SVM (TCG), Debian's own kernel runs in it with kvm_amd loaded, and the job runs
there against that /dev/kvm, with the machine's root shown read-only through 9p. isola-vmm then
meets the real KVM API (the one users have): real VM exits, in-kernel LAPIC, INIT-SIPI-SIPI.

  nested.py prepare            fetch Debian's kernel, build the initramfs (cached)
  nested.py run [--share DIR]... [--timeout S] [--cpus N] [--memory MiB] -- CMD [ARG...]
                               run CMD there in the current directory with this environment;
                               stdout, stderr and the exit status are CMD's (125: the host
                               failed, 124: timeout)

The cache is /var/cache/isola/nested/<kernel package version>-<key>, keyed by the kernel package,
tests/nested/init.sh, the module list and busybox. Needs qemu-system-x86, busybox-static and apt
(apt-get download: nothing is installed on the machine)."""
import argparse
import fcntl
import glob
import hashlib
import lzma
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("ISOLA_NESTED_CACHE", "/var/cache/isola/nested")
BUSYBOX = "/bin/busybox"
# What the host needs: KVM, 9p over virtio-pci, overlayfs (isola builds VM disks through an
# overlay). Their dependencies are found in each module's own .modinfo.
MODULES = ["kvm-amd", "9pnet_virtio", "9p", "virtio_pci", "overlay"]
QEMU = "qemu-system-x86_64"

sys.path.insert(0, os.path.join(HERE, "..", "..", "guest-init"))
from mkinitramfs import entry  # noqa: E402  (the project's newc writer)


def log(msg):
    print(f"nested: {msg}", file=sys.stderr, flush=True)


def kernel_package():
    """Debian's current kernel package (linux-image-amd64's dependency) and its version."""
    def ask():
        r = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True,
                           text=True)
        for line in r.stdout.splitlines():
            if line.strip().startswith("Depends: linux-image-"):
                return line.split(":", 1)[1].strip()
        return None
    pkg = ask()
    if not pkg:
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        pkg = ask()
    if not pkg:
        raise SystemExit("nested: apt knows no linux-image-amd64 (is this Debian?)")
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", pkg], capture_output=True,
                       text=True)
    ver = next((l.split(":", 1)[1].strip() for l in r.stdout.splitlines()
                if l.startswith("Version:")), None)
    if not ver:
        raise SystemExit(f"nested: apt has no version for {pkg}")
    return pkg, ver


def module_index(root):
    """name → path of every module in the unpacked kernel package (- and _ are one)."""
    idx = {}
    for p in glob.glob(os.path.join(root, "lib/modules/*/kernel/**/*.ko*"), recursive=True):
        name = os.path.basename(p).split(".ko")[0]
        idx[name.replace("-", "_")] = p
    return idx


def module_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        data = lzma.decompress(data)
    elif not path.endswith(".ko"):
        raise SystemExit(f"nested: {path}: compressed in a way this script does not read")
    return data


def module_order(idx, wanted):
    """The modules to load, each after its dependencies."""
    order, seen = [], set()

    def visit(name):
        key = name.replace("-", "_")
        if key in seen:
            return
        seen.add(key)
        if key not in idx:
            raise SystemExit(f"nested: the kernel package has no module {name}")
        data = module_bytes(idx[key])
        i = data.find(b"\0depends=")
        if i >= 0:
            deps = data[i + 9:data.index(b"\0", i + 9)].decode()
            for d in filter(None, deps.split(",")):
                visit(d)
        order.append(key)

    for m in wanted:
        visit(m)
    return order


def cache_key(pkg, ver):
    h = hashlib.sha256()
    h.update(f"{pkg} {ver} {' '.join(MODULES)}\n".encode())
    for p in (os.path.join(HERE, "init.sh"), BUSYBOX):
        with open(p, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:12]


def prepare():
    """The cached (kernel, initramfs) pair, built on the first call."""
    for tool in (QEMU, BUSYBOX, "apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise SystemExit(f"nested: {tool} is missing (scripts/deps.sh installs it)")
    pkg, ver = kernel_package()
    d = os.path.join(CACHE, f"{ver}-{cache_key(pkg, ver)}")
    kernel, initrd = os.path.join(d, "vmlinuz"), os.path.join(d, "initramfs.cpio")
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(initrd):
            return kernel, initrd
        log(f"fetching {pkg} {ver} (apt-get download; nothing is installed)")
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            subprocess.run(["apt-get", "download", "-qq", f"{pkg}={ver}"], cwd=tmp, check=True,
                           stderr=subprocess.DEVNULL)
            deb = glob.glob(os.path.join(tmp, "*.deb"))[0]
            root = os.path.join(tmp, "root")
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
            vmlinuz = glob.glob(os.path.join(root, "boot", "vmlinuz-*"))[0]
            idx = module_index(root)
            order = module_order(idx, MODULES)
            log(f"initramfs: busybox, init.sh and {len(order)} modules ({', '.join(order)})")
            parts, ino = [], 1
            for name, mode in (("bin", 0o40755), ("modules", 0o40755)):
                parts.append(entry(ino, name, mode))
                ino += 1
            for name, path, mode in (("bin/busybox", BUSYBOX, 0o100755),
                                     ("init", os.path.join(HERE, "init.sh"), 0o100755)):
                with open(path, "rb") as f:
                    parts.append(entry(ino, name, mode, f.read()))
                ino += 1
            for m in order:
                parts.append(entry(ino, f"modules/{m}.ko", 0o100644, module_bytes(idx[m])))
                ino += 1
            parts.append(entry(ino, "modules/order", 0o100644, ("\n".join(order) + "\n").encode()))
            parts.append(entry(0, "TRAILER!!!", 0))
            stage = d + ".partial"
            shutil.rmtree(stage, ignore_errors=True)
            os.makedirs(stage)
            shutil.copyfile(vmlinuz, os.path.join(stage, "vmlinuz"))
            with open(os.path.join(stage, "initramfs.cpio"), "wb") as f:
                f.write(b"".join(parts))
            os.rename(stage, d)
        return kernel, initrd


def follow(path, out, stop):
    """Copy what the job writes to path onto out while it runs, and the rest at the end."""
    pos = 0
    while True:
        done = stop.is_set()
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                data = f.read()
        except FileNotFoundError:
            data = b""
        if data:
            out.write(data)
            out.flush()
            pos += len(data)
        if done:
            return
        stop.wait(0.2)


def env_script(env):
    lines = []
    for k, v in env.items():
        if k.isidentifier() and k not in ("PWD", "OLDPWD", "SHLVL", "_"):
            lines.append(f"export {k}={shlex.quote(v)}")
    return "\n".join(lines) + "\n"


def covered(path, roots):
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def run(argv, shares=(), timeout=3600, cpus=None, memory=4096, cwd=None, env=None):
    kernel, initrd = prepare()
    cwd = os.path.realpath(cwd or os.getcwd())
    shares = [os.path.realpath(s) for s in shares]
    for s in shares:
        if not os.path.isdir(s):
            raise SystemExit(f"nested: --share {s}: not a directory")
    cpus = cpus or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="isola-nested-") as job:
        mounts = []
        # The machine's root is shown except its /tmp, /run and /var/lib/isola, which are the
        # VM's own: a working directory there is shown on its own (read-only).
        fresh = ("/tmp", "/run", "/var/tmp", "/var/lib/isola", "/proc", "/sys", "/dev")
        if covered(cwd, fresh) and not covered(cwd, shares):
            mounts.append(f"ro {cwd}")
        for i, s in enumerate(shares):
            mounts.append(f"rw share{i} {s}")
        with open(os.path.join(job, "mounts"), "w") as f:
            f.write("\n".join(mounts) + "\n")
        with open(os.path.join(job, "env"), "w") as f:
            f.write(env_script(env if env is not None else os.environ))
        with open(os.path.join(job, "cmd"), "w") as f:
            f.write(f"cd {shlex.quote(cwd)} || exit 125\nexec {shlex.join(argv)}\n")
        console = os.path.join(job, "console.log")
        v9p = "security_model=none,multidevs=remap"
        cmd = [QEMU, "-accel", "tcg,thread=multi,tb-size=512", "-machine", "q35",
               "-cpu", "EPYC,+svm", "-smp", str(cpus), "-m", str(memory), "-nodefaults",
               "-display", "none", "-no-reboot", "-serial", f"file:{console}",
               "-kernel", kernel, "-initrd", initrd,
               "-append", "console=ttyS0 quiet panic=-1 nmi_watchdog=0 nowatchdog",
               "-virtfs", f"local,path=/,mount_tag=hostroot,readonly=on,{v9p}",
               "-virtfs", f"local,path={job},mount_tag=job,{v9p}"]
        for i, s in enumerate(shares):
            cmd += ["-virtfs", f"local,path={s},mount_tag=share{i},{v9p}"]
        stop = threading.Event()
        followers = [threading.Thread(target=follow, args=(os.path.join(job, n), o, stop))
                     for n, o in (("stdout", sys.stdout.buffer), ("stderr", sys.stderr.buffer))]
        for t in followers:
            t.start()
        qemu_err = tempfile.TemporaryFile()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qemu_err, stderr=qemu_err,
                             start_new_session=True)
        timed_out = False
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        except KeyboardInterrupt:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
        finally:
            stop.set()
            for t in followers:
                t.join()
        status_file = os.path.join(job, "status")
        if timed_out:
            log(f"the job ran past {timeout} s and was stopped")
            tail(console)
            return 124
        if not os.path.exists(status_file):
            qemu_err.seek(0)
            msgs = [l for l in qemu_err.read().decode(errors="replace").splitlines()
                    if "TCG doesn't support requested feature" not in l]
            log(f"the host ended without a status (qemu exit {p.returncode})")
            for l in msgs[-10:]:
                log(l)
            tail(console)
            return 125
        with open(status_file) as f:
            return int(f.read().strip() or 125)


def tail(console, n=30):
    try:
        with open(console, errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return
    for l in lines[-n:]:
        log(f"console: {l}")


def main():
    ap = argparse.ArgumentParser(prog="nested.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    sub.add_parser("prepare")
    r = sub.add_parser("run")
    r.add_argument("--share", action="append", default=[], help="a read-write directory")
    r.add_argument("--timeout", type=float, default=3600)
    r.add_argument("--cpus", type=int)
    r.add_argument("--memory", type=int, default=4096, help="MiB")
    r.add_argument("argv", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    if a.verb == "prepare":
        kernel, initrd = prepare()
        print(os.path.dirname(kernel))
        return 0
    argv = a.argv[1:] if a.argv[:1] == ["--"] else a.argv
    if not argv:
        ap.error("run: a command is needed")
    return run(argv, a.share, a.timeout, a.cpus, a.memory)


if __name__ == "__main__":
    sys.exit(main())
