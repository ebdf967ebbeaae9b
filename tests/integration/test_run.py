"""`isola run` and the container verbs (ps, logs, exec, kill, stop, wait, rm) with process
isolation, on the embedded busybox image and on images built here with other configs."""
import json
import os
import pty
import select
import shlex
import signal
import subprocess
import time

import pytest

import oci_builder
from isola_cli import isola  # noqa: F401 (fixture)


def test_embedded_image_runs_without_network_or_load(isola):
    r = isola("run", "--rm", "busybox", "echo", "hello")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello\n", "")
    imgs = isola.json("images", "--format", "json")
    assert [i["name"] for i in imgs] == ["docker.io/library/busybox:latest"]
    assert isola.containers() == []


@pytest.mark.parametrize("cmd,code", [
    (["true"], 0),
    (["sh", "-c", "exit 42"], 42),
    (["nosuchcommand"], 127),
    (["/nonexistent/bin"], 127),
    (["/etc/passwd"], 126),
    (["/etc"], 126),
])
def test_exit_codes(isola, cmd, code):
    r = isola("run", "--rm", "busybox", *cmd)
    assert r.returncode == code, r.stderr
    if code >= 126:
        assert r.stderr.startswith("isola: exec: "), r.stderr
        assert r.stderr.count("\n") == 1


def test_signal_exit_code_is_128_plus_n(isola):
    cid = isola.ok("run", "-d", "busybox", "sleep", "30").stdout.strip()
    isola.ok("kill", "-s", "KILL", cid)
    assert isola.ok("wait", cid).stdout == "137\n"
    ps = isola.json("ps", "-a", "--format", "json")
    assert [(p["id"], p["state"], p["exit_code"]) for p in ps] == [(cid, "exited", 137)]


def test_stdout_stderr_separate_and_byte_exact(isola, tmp_path):
    data = os.urandom(1 << 20)
    r = isola("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo to-err >&2",
              input=data, text=False)
    assert r.returncode == 0
    assert r.stdout == data
    assert r.stderr == b"to-err\n"


def test_without_i_stdin_is_empty(isola):
    r = isola("run", "--rm", "busybox", "cat", input="ignored")
    assert (r.returncode, r.stdout) == (0, "")


def test_image_config_is_honoured(isola, tmp_path):
    layer = oci_builder.make_layer(oci_builder.busybox_files({
        "srv/app/data.txt": b"payload\n",
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321:app:/home/app:/bin/sh\n",
        "etc/group": b"root:x:0:\napp:x:4321:\nextra:x:777:app\n",
    }))
    config = {"Entrypoint": ["/bin/sh", "-c"],
              "Cmd": ["echo $GREETING $(pwd) $(id -u):$(id -g) $(id -G); cat data.txt"],
              "Env": ["GREETING=hi", "PATH=/bin"],
              "WorkingDir": "/srv/app", "User": "app"}
    layout = tmp_path / "layout"
    oci_builder.write_oci_layout(layout, [layer], config=config)
    isola.ok("load", "-i", layout, "--name", "localhost/app:1")
    r = isola.ok("run", "--rm", "localhost/app:1")
    assert r.stdout == "hi /srv/app 1234:4321 4321 777\npayload\n"
    # CMD replaced, Entrypoint kept; -e overrides; -w and -u override.
    r = isola.ok("run", "--rm", "-e", "GREETING=yo", "-w", "/", "-u", "0:0", "localhost/app:1",
                 "echo $GREETING $(pwd) $(id -u)")
    assert r.stdout == "yo / 0\n"
    # --entrypoint replaces both.
    r = isola.ok("run", "--rm", "--entrypoint", "/bin/echo", "localhost/app:1", "plain")
    assert r.stdout == "plain\n"
    r = isola("run", "--rm", "-u", "nosuchuser", "localhost/app:1")
    assert r.returncode == 125 and "nosuchuser" in r.stderr


def test_env_file_and_passthrough(isola, tmp_path):
    f = tmp_path / "env"
    f.write_text("# comment\nA=1\n\nB=two words\n")
    r = isola.ok("run", "--rm", "--env-file", f, "-e", "FROM_HOST", "-e", "A=3", "busybox",
                 "sh", "-c", 'echo "$A|$B|$FROM_HOST|$HOME|$HOSTNAME"',
                 env=dict(os.environ, FROM_HOST="hostval"))
    a, b, h, home, hostname = r.stdout.strip().split("|")
    assert (a, b, h, home) == ("3", "two words", "hostval", "/root")
    assert len(hostname) == 12


def test_volumes_tmpfs_read_only(isola, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "in").write_text("from host\n")
    r = isola("run", "--rm", "--read-only", "-v", f"{vol}:/data", "-v", f"{vol}:/ro:ro",
              "--tmpfs", "/scratch", "busybox", "sh", "-c",
              "cat /data/in; echo out > /data/out; touch /ro/x || echo ro-refused;"
              "touch /rootfile || echo root-refused; echo t > /scratch/t && echo tmpfs-ok")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["from host", "ro-refused", "root-refused", "tmpfs-ok"]
    assert (vol / "out").read_text() == "out\n"
    assert not (vol / "x").exists()


def test_writes_stay_in_the_container(isola):
    isola.ok("run", "--name", "w1", "busybox", "sh", "-c", "echo changed > /etc/motd; rm /bin/ls")
    r = isola.ok("run", "--rm", "busybox", "sh", "-c", "cat /etc/motd 2>&1; ls / >/dev/null && echo ls-here")
    assert "changed" not in r.stdout and "ls-here" in r.stdout
    isola.ok("rm", "w1")


def test_limits_reach_the_cgroup(isola):
    r = isola.ok("run", "--rm", "--memory", "64m", "--pids-limit", "20", "--cpus", "0.5",
                 "busybox", "sh", "-c",
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max "
                 "/sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max "
                 "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null;"
                 "true")
    out = r.stdout.split()
    assert "67108864" in out and "20" in out
    assert "50000" in out, out


def test_pids_limit_is_enforced(isola):
    r = isola("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c",
              "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait; echo done")
    assert r.returncode != 0 and "can't fork" in r.stderr, r.stderr


def test_network_none_and_host(isola):
    r = isola.ok("run", "--rm", "busybox", "cat", "/proc/net/dev")
    ifaces = [l.split(":")[0].strip() for l in r.stdout.splitlines()[2:]]
    assert ifaces == ["lo"]
    r = isola.ok("run", "--rm", "busybox", "sh", "-c",
                 "ip link show lo; ping -c1 -W2 127.0.0.1 >/dev/null && echo loopback-works")
    assert ",UP," in r.stdout and "loopback-works" in r.stdout, r.stdout
    r = isola.ok("run", "--rm", "--network", "host", "busybox", "cat", "/proc/net/dev")
    with open("/proc/net/dev") as f:
        host = sorted(l.split(":")[0].strip() for l in f.readlines()[2:])
    assert sorted(l.split(":")[0].strip() for l in r.stdout.splitlines()[2:]) == host


def test_hostname(isola):
    r = isola.ok("run", "--rm", "--hostname", "box1", "busybox", "sh", "-c",
                 "hostname; cat /etc/hostname; grep box1 /etc/hosts")
    assert r.stdout.splitlines()[:2] == ["box1", "box1"]


def test_detached_lifecycle(isola):
    cid = isola.ok("run", "-d", "--name", "svc", "busybox", "sh", "-c",
                   "echo started; echo warn >&2; trap 'echo stopping; exit 3' TERM;"
                   "while :; do sleep 0.1; done").stdout.strip()
    assert len(cid) == 64
    ps = isola.json("ps", "--format", "json")
    assert [(p["name"], p["state"]) for p in ps] == [("svc", "running")]
    assert isola.ok("ps", "-q").stdout == cid[:12] + "\n"
    for _ in range(50):
        if isola.ok("logs", "svc").stdout:
            break
        time.sleep(0.1)
    r = isola.ok("logs", "svc")
    assert (r.stdout, r.stderr) == ("started\n", "warn\n")
    r = isola("exec", "-e", "X=1", "-w", "/tmp", "svc", "sh", "-c", "echo $X $(pwd); exit 7")
    assert (r.returncode, r.stdout) == (7, "1 /tmp\n")
    assert isola("exec", "svc", "nosuch").returncode == 127
    r = isola.ok("exec", "-u", "nobody", "svc", "id", "-u")
    assert r.stdout == "65534\n"
    isola.ok("stop", "svc")
    assert isola.ok("wait", "svc").stdout == "3\n"
    assert isola.ok("logs", "svc").stdout == "started\nstopping\n"
    r = isola("exec", "svc", "true")
    assert r.returncode == 125 and "not running" in r.stderr
    assert isola.json("ps", "--format", "json") == []
    assert isola.ok("rm", "svc").stdout == "svc\n"
    assert isola.containers() == []


def test_stop_escalates_to_sigkill(isola):
    isola.ok("run", "-d", "--name", "stubborn", "busybox", "sh", "-c",
             "trap '' TERM; while :; do sleep 0.1; done")
    t = time.monotonic()
    isola.ok("stop", "-t", "1", "stubborn")
    assert time.monotonic() - t < 8
    assert isola.ok("wait", "stubborn").stdout == "137\n"


def test_logs_follow(isola):
    isola.ok("run", "-d", "--name", "talker", "busybox", "sh", "-c",
             "for i in 1 2 3; do echo line$i; sleep 0.2; done")
    r = isola.ok("logs", "-f", "talker", timeout=30)
    assert r.stdout == "line1\nline2\nline3\n"


def test_rm_refuses_running_and_force_kills(isola):
    isola.ok("run", "-d", "--name", "busy", "busybox", "sleep", "60")
    r = isola("rm", "busy")
    assert r.returncode == 1 and "running" in r.stderr
    isola.ok("rm", "-f", "busy")
    assert isola.containers() == []


def test_names_are_unique_and_checked(isola):
    isola.ok("run", "--name", "dup", "busybox", "true")
    r = isola("run", "--name", "dup", "busybox", "true")
    assert r.returncode == 125 and '"dup" is taken' in r.stderr
    r = isola("run", "--name", "../evil", "busybox", "true")
    assert r.returncode == 125 and "--name" in r.stderr
    isola.ok("rm", "dup")


def test_rm_flag_removes_the_record(isola):
    isola.ok("run", "--rm", "busybox", "true")
    isola.ok("run", "--name", "kept", "busybox", "sh", "-c", "echo kept-output")
    assert [p["name"] for p in isola.json("ps", "-a", "--format", "json")] == ["kept"]
    assert isola.ok("logs", "kept").stdout == "kept-output\n"
    info = isola.json("inspect", "kept")[0]
    assert info["state"] == "exited" and info["exit_code"] == 0
    assert info["command"] == ["sh", "-c", "echo kept-output"]


def read_pty(fd, timeout=30):
    """Everything the other side writes until it closes (or timeout seconds)."""
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if not r:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def test_tty_through_a_pty(isola):
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(isola.path, isola.cmd("run", "--rm", "-it", "busybox", "sh", "-c",
                                       "tty; stty size; read x; echo got:$x; exit 5"))
    os.write(fd, b"hello\n")
    out = read_pty(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 5, out
    assert b"/dev/pts/0" in out and b"got:hello" in out, out


def test_exec_tty_through_a_pty(isola):
    isola.ok("run", "-d", "--name", "ttyhost", "busybox", "sleep", "60")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(isola.path, isola.cmd("exec", "-it", "ttyhost", "sh", "-c",
                                       "tty; read x; echo got:$x; exit 4"))
    os.write(fd, b"typed\n")
    out = read_pty(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 4, out
    assert b"/dev/pts/" in out and b"got:typed" in out, out
    isola.ok("rm", "-f", "ttyhost")


def test_vm_isolation_without_a_kernel_fails_clearly(isola):
    env = dict(os.environ, ISOLA_KERNEL="/nonexistent/vmlinux")
    env.pop("ISOLA_VM_LAUNCHER", None)
    for flag in ("--isolation=vm", "--isolation=hyperv"):
        r = isola("run", "--rm", flag, "busybox", "true", env=env)
        assert r.returncode == 125
        assert "/nonexistent/vmlinux" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert isola.containers() == []


@pytest.mark.parametrize("args,what", [
    (["--memory", "lots"], "--memory"),
    (["--cpus", "-1"], "--cpus"),
    (["--pids-limit", "x"], "--pids-limit"),
    (["-v", "relative:/x"], "-v"),
    (["-v", "/nonexistent-host-dir:/x"], "-v"),
    (["--network", "bridge"], "--network"),
    (["--isolation", "kvm"], "--isolation"),
    (["--bogus"], "--bogus"),
    (["--tmpfs", "/a/../b"], "--tmpfs"),
])
def test_bad_run_flags(isola, args, what):
    r = isola("run", "--rm", *args, "busybox", "true")
    assert r.returncode == 125, r.stderr
    assert what in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert isola.containers() == []


def test_no_such_image_and_container(isola):
    r = isola("run", "--rm", "localhost:1/none:latest", "true")
    assert r.returncode == 125 and "no such image" in r.stderr
    for verb in (["logs"], ["exec"], ["kill"], ["stop"], ["wait"], ["rm"]):
        r = isola(*verb, "ghost", *(["true"] if verb == ["exec"] else []))
        assert r.returncode != 0 and 'no such container "ghost"' in r.stderr, (verb, r.stderr)


def test_images_tag_inspect_rmi_prune(isola):
    isola.ok("run", "--rm", "busybox", "true")
    isola.ok("tag", "busybox", "localhost/mine:v1")
    imgs = isola.json("images", "--format", "json")
    assert sorted(i["name"] for i in imgs) == ["docker.io/library/busybox:latest",
                                               "localhost/mine:v1"]
    assert imgs[0]["id"] == imgs[1]["id"]
    info = isola.json("inspect", "--type", "image", "localhost/mine:v1")[0]
    assert info["Id"] == imgs[0]["id"] and info["Config"]["architecture"] == "amd64"
    # By id with two names: refused without -f.
    r = isola("rmi", imgs[0]["id"][7:19])
    assert r.returncode == 1 and "names" in r.stderr
    isola.ok("rmi", "localhost/mine:v1")
    blobs = os.path.join(isola.root, "blobs", "sha256")
    layers = os.path.join(isola.root, "layers", "sha256")
    assert os.listdir(blobs) and os.listdir(layers)
    isola.ok("system", "prune")
    assert os.listdir(blobs)  # busybox is still named
    isola.ok("rmi", "busybox")
    assert isola.json("images", "--format", "json") == []
    r = isola.ok("system", "prune")
    assert os.listdir(blobs) == [] and os.listdir(layers) == [], r.stdout
    # And the embedded image comes back when needed.
    assert isola.ok("run", "--rm", "busybox", "echo", "back").stdout == "back\n"


def test_rmi_refuses_an_image_in_use(isola):
    isola.ok("run", "--name", "user", "busybox", "true")
    r = isola("rmi", "busybox")
    assert r.returncode == 1 and "used by container user" in r.stderr
    isola.ok("rmi", "-f", "busybox")
    # Its data stays while the container exists.
    isola.ok("system", "prune")
    assert os.listdir(os.path.join(isola.root, "layers", "sha256"))
    isola.ok("rm", "user")


def test_a_killed_monitor_is_cleaned_by_rm(isola):
    cid = isola.ok("run", "-d", "busybox", "sleep", "60").stdout.strip()
    info = isola.json("inspect", cid)[0]
    os.kill(info["monitor_pid"], signal.SIGKILL)
    for _ in range(100):
        if isola.json("inspect", cid)[0]["state"] == "exited":
            break
        time.sleep(0.05)
    assert isola.json("inspect", cid)[0]["state"] == "exited"
    r = isola("wait", cid)
    assert r.returncode == 1 and "unknown" in r.stderr
    isola.ok("rm", cid)  # the fixture checks mounts, cgroups and state are gone


def test_concurrent_first_runs_share_one_unpack(isola):
    """Several runs on an empty store: each loads the embedded image and needs its layer; the
    store's locks make them share one unpacked copy, and every run works."""
    procs = [subprocess.Popen(isola.cmd("run", "--rm", "busybox", "echo", f"run{i}"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outs
    assert sorted(o for o, _ in outs) == [f"run{i}\n" for i in range(6)]
    layers = os.listdir(os.path.join(isola.root, "layers", "sha256"))
    assert len([l for l in layers if "." not in l]) == 1, layers
    assert not [l for l in layers if l.endswith(".partial")], layers
    assert len(isola.json("images", "--format", "json")) == 1


def test_prune_during_runs_keeps_what_they_use(isola):
    isola.ok("run", "--rm", "busybox", "true")
    isola.ok("rmi", "busybox")
    cid = isola.ok("run", "-d", "busybox", "sleep", "30").stdout.strip()  # reloads the image
    isola.ok("rmi", "-f", "busybox")
    isola.ok("system", "prune")
    # The running container's image data survived, and it still works.
    assert isola.ok("exec", cid, "echo", "alive").stdout == "alive\n"
    isola.ok("rm", "-f", cid)
    isola.ok("system", "prune")
    assert os.listdir(os.path.join(isola.root, "layers", "sha256")) == []


def test_default_seccomp_blocks_new_namespaces_and_keyrings(isola):
    script = ("unshare -U true 2>/dev/null; echo userns=$?; unshare -n true 2>/dev/null;"
              "echo netns=$?; echo ok > /tmp/f && cat /tmp/f")
    r = isola.ok("run", "--rm", "busybox", "sh", "-c", script)
    assert r.stdout == "userns=1\nnetns=1\nok\n"
    r = isola.ok("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c",
                 "unshare -U true; echo userns=$?")
    assert r.stdout == "userns=0\n"
    r = isola("run", "--rm", "--security-opt", "apparmor=x", "busybox", "true")
    assert r.returncode == 125 and "--security-opt" in r.stderr


def test_vm_disk_of_an_image(isola, tmp_path):
    """`isola disk` makes the image's rootfs an erofs disk once; whiteouts and opaque dirs
    apply, mtimes and modes stay; prune drops it with the image."""
    base = oci_builder.make_layer(oci_builder.busybox_files({
        "etc/keep": b"kept\n", "etc/gone": b"gone\n", "opq/old": b"old\n"}))
    top = oci_builder.make_layer({"etc/.wh.gone": b"", "opq/.wh..wh..opq": b"",
                                  "opq/new": b"new\n"})
    oci_builder.write_oci_layout(tmp_path / "img", [base, top])
    isola.ok("load", "-i", tmp_path / "img", "--name", "localhost/disk:1")
    path = isola.ok("disk", "localhost/disk:1").stdout.strip()
    assert path.startswith(os.path.join(isola.root, "disks")) and path.endswith(".erofs")
    st = os.stat(path)
    assert isola.ok("disk", "localhost/disk:1").stdout.strip() == path
    assert os.stat(path).st_mtime_ns == st.st_mtime_ns  # cached, not rebuilt
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "erofs", "-o", "loop,ro", path, mnt], check=True)
    try:
        assert (mnt / "etc/keep").read_text() == "kept\n"
        assert not (mnt / "etc/gone").exists()
        assert sorted(os.listdir(mnt / "opq")) == ["new"]
        assert os.access(mnt / "bin/busybox", os.X_OK)
        ours = subprocess.run(["find", str(mnt), "-printf", "%P %m %U %y\n"],
                              capture_output=True, text=True, check=True).stdout
        assert "bin/busybox 755 0 f" in ours
    finally:
        subprocess.run(["umount", mnt], check=True)
    assert not [d for d in os.listdir(os.path.join(isola.root, "disks")) if d.endswith(".mnt")]
    isola.ok("rmi", "localhost/disk:1")
    isola.ok("system", "prune")
    assert not os.path.exists(path)
    r = isola("disk", "localhost/nothing:1")
    assert r.returncode == 1 and "no such image" in r.stderr


def test_a_reader_that_goes_away_does_not_kill_the_monitor(isola):
    """`isola run ... | head -1`: the monitor keeps logging and still cleans up (--rm)."""
    cmd = shlex.join(isola.cmd("run", "--rm", "busybox", "sh", "-c", "seq 1 200000; sleep 1"))
    p = subprocess.run(cmd + " | head -1", shell=True, capture_output=True, text=True,
                       timeout=60)
    assert p.stdout == "1\n", p.stderr
    assert isola.containers() == []


def test_a_damaged_image_does_not_hide_the_others(isola):
    isola.ok("run", "--rm", "busybox", "true")
    isola.ok("tag", "busybox", "localhost/other:1")
    info = isola.json("inspect", "--type", "image", "busybox")[0]
    # Damage the config blob both names share, then give one name a manifest of its own that
    # is fine: only the damaged image disappears from the list, and rmi still removes its name.
    cfg = os.path.join(isola.root, "blobs", "sha256", info["Id"][7:])
    os.chmod(cfg, 0o600)
    with open(cfg, "ab") as f:
        f.write(b" ")
    assert isola.json("images", "--format", "json") == []
    isola.ok("rmi", "localhost/other:1")
    r = isola("run", "--rm", "localhost/other:1", "true")
    assert r.returncode == 125 and "no such image" in r.stderr


def test_memory_nan_is_refused(isola):
    r = isola("run", "--rm", "--memory", "nan", "busybox", "true")
    assert r.returncode == 125 and "--memory" in r.stderr
