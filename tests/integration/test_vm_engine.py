"""The host side of --isolation=vm (engine/vm.c) against the real guest-init, fast: with
ISOLA_VM_LAUNCHER the engine starts isola-init in test mode as PID 1 of a PID namespace instead of
booting a VM; everything else (the guest protocol, stdio relay, signals, exit statuses, records,
logs) is what a VM container uses. The VM itself is proven by test_vm_linux.py."""
import os
import signal
import subprocess
import time

import pytest

from conftest import TOP
from isola_cli import PtyRun, isola  # noqa: F401 (fixture)


@pytest.fixture
def vm_env(isola):
    init = os.path.join(TOP, isola.build, "guest-init", "isola-init")
    if not os.path.exists(init):
        pytest.skip(f"{isola.build} has no isola-init")
    return dict(os.environ,
                ISOLA_VM_LAUNCHER=f"unshare --pid --fork --kill-child {init}")


def test_run_in_guest_init(isola, vm_env):
    r = isola("run", "--rm", "--isolation=vm", "--hostname", "vmbox", "-e", "A=1", "-w", "/tmp",
              "busybox", "sh", "-c", 'echo "$A $(pwd) $(hostname)"; echo to-err >&2; exit 3',
              env=vm_env)
    assert (r.returncode, r.stdout, r.stderr) == (3, "1 /tmp vmbox\n", "to-err\n")
    assert isola.containers() == []


@pytest.mark.parametrize("cmd,code", [(["true"], 0), (["nosuch"], 127), (["/etc/passwd"], 126)])
def test_exit_codes(isola, vm_env, cmd, code):
    r = isola("run", "--rm", "--isolation=vm", "busybox", *cmd, env=vm_env)
    assert r.returncode == code, r.stderr


def test_stdin_and_binary_output_byte_exact(isola, vm_env):
    data = os.urandom(1 << 20)
    r = isola("run", "--rm", "-i", "--isolation=vm", "busybox", "cat", input=data, text=False,
              env=vm_env)
    assert r.returncode == 0 and r.stdout == data


def test_read_only_root(isola, vm_env):
    r = isola("run", "--rm", "--isolation=vm", "--read-only", "--tmpfs", "/scratch", "busybox",
              "sh", "-c", "touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs; "
              "grep ' / ' /proc/mounts | grep -c ro,", env=vm_env)
    assert r.stdout == "ro\ntmpfs\n1\n", r.stderr


def test_user_and_tmpfs(isola, vm_env):
    r = isola("run", "--rm", "--isolation=vm", "-u", "nobody", "--tmpfs", "/scratch",
              "busybox", "sh", "-c", "id -u; touch /scratch/y && echo tmpfs", env=vm_env)
    assert r.stdout == "65534\ntmpfs\n", r.stderr


def test_detached_stop_logs_rm(isola, vm_env):
    cid = isola.ok("run", "-d", "--name", "vmsvc", "--isolation=vm", "busybox", "sh", "-c",
                   "trap 'echo bye; exit 9' TERM; echo up; while :; do sleep 0.1; done",
                   env=vm_env).stdout.strip()
    for _ in range(100):
        if isola.ok("logs", "vmsvc").stdout == "up\n":
            break
        time.sleep(0.05)
    ps = isola.json("ps", "--format", "json")
    assert [(p["id"], p["isolation"], p["state"]) for p in ps] == [(cid, "vm", "running")]
    r = isola("exec", "vmsvc", "sh", "-c", "echo in-vm; exit 4", env=vm_env)
    assert (r.returncode, r.stdout) == (4, "in-vm\n"), r.stderr
    r = isola("kill", "-s", "ALRM", "vmsvc")
    assert r.returncode == 1 and "SIGKILL" in r.stderr
    isola.ok("stop", "vmsvc")
    assert isola.ok("wait", "vmsvc").stdout == "9\n"
    assert isola.ok("logs", "vmsvc").stdout == "up\nbye\n"
    isola.ok("rm", "vmsvc")


def test_rm_force_ends_the_vm(isola, vm_env):
    isola.ok("run", "-d", "--name", "vmbusy", "--isolation=vm", "busybox", "sleep", "60",
             env=vm_env)
    t = time.monotonic()
    isola.ok("rm", "-f", "vmbusy")
    assert time.monotonic() - t < 8
    assert not [f for f in os.listdir("/run") if f.startswith("isola-vm-")]


@pytest.mark.parametrize("args,what", [
    (["-v", "/dev/null:/x"], "neither"),
    (["--network", "host"], "--network host"),
    (["--memory", "16m"], "--memory"),
])
def test_flags_a_vm_cannot_honour_are_refused(isola, vm_env, args, what):
    r = isola("run", "--rm", "--isolation=vm", *args, "busybox", "true", env=vm_env)
    assert r.returncode == 125 and what in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert isola.containers() == []


def test_stop_while_the_vm_boots(isola, vm_env):
    """A slow boot (the launcher waits 3 s before guest-init starts): stop ends it at once, the
    container reports 128+SIGTERM, and nothing is left."""
    env = dict(vm_env, ISOLA_VM_LAUNCHER="sleep 3; exec " + vm_env["ISOLA_VM_LAUNCHER"])
    isola.ok("run", "-d", "--name", "slowboot", "--isolation=vm", "busybox", "sleep", "60",
             env=env)
    # -d returns once the process started; here that is after the boot, so stop it during a
    # second, foreground one instead.
    isola.ok("rm", "-f", "slowboot")
    p = subprocess.Popen(isola.cmd("run", "--rm", "--isolation=vm", "busybox", "sleep", "60"),
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1)
    t = time.monotonic()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert time.monotonic() - t < 5
    assert isola.containers() == []
    assert not [f for f in os.listdir("/run") if f.startswith("isola-vm-")]


def test_a_monitor_killed_mid_run_is_named(isola, vm_env):
    """When the monitor dies under a running container (a seccomp kill is SIGSYS), the error
    names that, not a silent init; nothing is left behind."""
    p = subprocess.Popen(isola.cmd("run", "--rm", "--isolation=vm", "busybox", "sh", "-c",
                                   "echo up; sleep 100"),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=vm_env)
    try:
        assert p.stdout.readline() == "up\n"
        kids = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True,
                              text=True).stdout.split()
        assert len(kids) == 1, kids
        os.killpg(int(kids[0]), signal.SIGKILL)  # the monitor runs in a session of its own
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 125, err
    assert err == "isola: the VM ended: isola-vmm was killed by signal 9\n", err
    assert isola.containers() == []


def test_terminal(isola, vm_env):
    """-t: the process's stdio is a terminal in the guest, of our terminal's size; everything
    comes as one stream (CRLF: it went through a line discipline) with the exit status."""
    p = PtyRun(isola.cmd("run", "--rm", "-t", "--isolation=vm", "busybox",
                "sh", "-c", "tty; test -t 0 && test -t 2 && echo isatty; stty size; exit 3"),
               vm_env)
    code = p.finish()
    assert code == 3, p.out
    assert b"/dev/pts/0\r\nisatty\r\n33 111\r\n" in p.out, p.out


def test_terminal_keys_and_resize(isola, vm_env):
    """-it: what we type reaches the process through its terminal (echoed there), ^C is the
    guest terminal's SIGINT, and a resize of ours reaches the process as SIGWINCH."""
    script = ('trap "stty size" WINCH; trap "echo got-INT; exit 7" INT; echo ready; '
              'read line; echo "line:$line"; while :; do sleep 0.1; done')
    p = PtyRun(isola.cmd("run", "--rm", "-it", "--isolation=vm",
                "busybox", "sh", "-c", script), vm_env)
    assert p.read_until(b"ready"), p.out
    os.write(p.fd, b"hello\r")
    assert p.read_until(b"line:hello"), p.out
    p.resize(40, 120)
    assert p.read_until(b"40 120"), p.out
    os.write(p.fd, b"\x03")
    code = p.finish()
    assert code == 7 and b"got-INT" in p.out, p.out
    assert isola.containers() == []


def test_exec(isola, vm_env):
    """isola exec into a VM container: one more process in the container as it is (its files,
    env, user), stdio and status as with run; several at once; a terminal with -t; what a VM
    cannot do yet is refused; and the container's end ends every exec."""
    isola.ok("run", "-d", "--name", "vmx", "--isolation=vm", "-e", "FROM_RUN=r", "busybox", "sh",
             "-c", "echo state > /tmp/state; while :; do sleep 0.1; done", env=vm_env)
    for _ in range(100):
        if isola("exec", "vmx", "test", "-e", "/tmp/state", env=vm_env).returncode == 0:
            break
        time.sleep(0.05)
    data = os.urandom(200000)
    r = isola("exec", "-i", "-e", "X=1", "-w", "/tmp", "vmx", "sh", "-c",
              'echo "$FROM_RUN $X $(pwd) $(cat state)" >&2; cat; exit 3', input=data, text=False,
              env=vm_env)
    assert (r.returncode, r.stdout, r.stderr) == (3, data, b"r 1 /tmp state\n"), r.stderr
    r = isola("exec", "-u", "1000:1001", "vmx", "id", env=vm_env)
    assert r.returncode == 0 and "uid=1000 gid=1001" in r.stdout, r.stderr
    assert isola("exec", "vmx", "nosuch", env=vm_env).returncode == 127
    assert isola("exec", "vmx", "/etc/passwd", env=vm_env).returncode == 126

    procs = [subprocess.Popen(isola.cmd("exec", "vmx", "sh", "-c", f"sleep 0.5; echo {n}"),
                              env=vm_env, stdout=subprocess.PIPE, text=True) for n in range(5)]
    assert [p.communicate(timeout=60)[0] for p in procs] == [f"{n}\n" for n in range(5)]

    p = PtyRun(isola.cmd("exec", "-t", "vmx", "sh", "-c", "tty; stty size; exit 6"), vm_env,
               rows=21, cols=77)
    assert p.finish() == 6 and b"/dev/pts/" in p.out and b"21 77\r\n" in p.out, p.out

    r = isola("exec", "-u", "nobody", "vmx", "id", env=vm_env)
    assert r.returncode == 0 and "uid=65534" in r.stdout, r.stderr
    r = isola("exec", "-u", "nosuchuser", "vmx", "true", env=vm_env)
    assert r.returncode == 125 and "nosuchuser" in r.stderr and r.stderr.count("\n") == 1

    # -d: started, then on its own (its output goes nowhere); a missing command still says so.
    t = time.monotonic()
    r = isola("exec", "-d", "vmx", "sh", "-c", "sleep 1; echo bg > /tmp/bg", env=vm_env)
    assert (r.returncode, r.stdout) == (0, "") and time.monotonic() - t < 1, r.stderr
    for _ in range(100):
        r = isola("exec", "vmx", "cat", "/tmp/bg", env=vm_env)
        if r.returncode == 0:
            break
        time.sleep(0.1)
    assert r.stdout == "bg\n", r.stderr
    assert isola("exec", "-d", "vmx", "nosuch", env=vm_env).returncode == 127

    long = subprocess.Popen(isola.cmd("exec", "vmx", "sleep", "60"), env=vm_env,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    isola.ok("stop", "-t", "1", "vmx")
    _, err = long.communicate(timeout=30)
    assert long.returncode == 137, err
    isola.ok("rm", "vmx")
    r = isola("exec", "vmx", "true", env=vm_env)
    assert r.returncode == 125 and r.stderr.count("\n") == 1, r.stderr


def test_seccomp_profile_and_pids_limit_reach_the_guest(isola, vm_env):
    """The container's seccomp profile is applied in the guest too (defence in depth), unless
    --security-opt seccomp=unconfined; --pids-limit needs a VM's cgroup, which test mode has
    not: it says so rather than run unlimited."""
    script = "grep Seccomp: /proc/self/status | tr -d '\\t '"
    r = isola("run", "--rm", "--isolation=vm", "busybox", "sh", "-c", script, env=vm_env)
    assert (r.returncode, r.stdout) == (0, "Seccomp:2\n"), r.stderr
    r = isola("run", "--rm", "--isolation=vm", "--security-opt", "seccomp=unconfined", "busybox",
              "sh", "-c", script, env=vm_env)
    assert (r.returncode, r.stdout) == (0, "Seccomp:0\n"), r.stderr
    r = isola("run", "--rm", "--isolation=vm", "--pids-limit", "5", "busybox", "true",
              env=vm_env)
    assert r.returncode == 125 and "needs a VM" in r.stderr and r.stderr.count("\n") == 1
