"""isola-init (guest-init/) without a VM: its test mode speaks the guest protocol over a unix
socket as PID 1 of a new PID namespace (unshare --pid --fork), and guest_abi.py plays the host.
The container's root is the busybox rootfs (a directory, read-only under an overlay with a tmpfs
upper layer, as the image disk is in a VM)."""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess

import pytest

import guest_abi as g
from conftest import BUILDS, TOP


def pytest_generate_tests(metafunc):
    if "init_bin" in metafunc.fixturenames:
        metafunc.parametrize("init_bin", BUILDS, indirect=True)


def init_path(build):
    return os.path.join(TOP, build, "guest-init", "isola-init")


@pytest.fixture
def init_bin(request):
    path = init_path(request.param)
    if not os.path.exists(path):
        pytest.skip(f"{request.param} has no guest-init/isola-init")
    return path


class Guest:
    """One isola-init in test mode, connected to a listener of ours."""

    def __init__(self, init_bin, tmp_path, args=()):
        self.listener = g.Listener(tmp_path / "init.sock")
        env = dict(os.environ, ISOLA_INIT_SOCKET=self.listener.path)
        self.proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", init_bin,
                                      *args], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.conn = self.listener.accept()

    def finish(self, timeout=20):
        """Close our side (the host closes after EXIT); init must then end by itself."""
        self.conn.close()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            self.listener.close()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.console = err.decode(errors="replace")
        return self.proc.returncode


def config(rootfs, *args, **process):
    p = {"args": list(args), "cwd": "/", "env": ["PATH=/bin:/sbin:/usr/bin"],
         "user": {"uid": 0, "gid": 0}}
    p.update(process)
    return {"process": p, "root": {"source": str(rootfs)}}


def run(init_bin, tmp_path, cfg, stdin=b"", signals=(), timeout=60, args=(), **kw):
    guest = Guest(init_bin, tmp_path, args)
    assert guest.conn.handshake() == g.ABI_VERSION
    guest.conn.send_process(cfg)
    res = guest.conn.run(stdin=stdin, signals=signals, timeout=timeout, **kw)
    rc = guest.finish()
    # init ends with the process's status in test mode, never through a crash or a sanitizer.
    assert rc == (res.status if res.status is not None else g.EXIT_INTERNAL), \
        f"init exited {rc}: {guest.console}"
    res.console = guest.console
    return res


def sh(rootfs, script, **process):
    return config(rootfs, "sh", "-c", script, **process)


# ---- the ABI ----

def test_abi_constants_match_the_header():
    """guest_abi.py is the Python twin of isola_guest_abi.h: every constant agrees."""
    text = open(os.path.join(TOP, "guest-init", "isola_guest_abi.h")).read()
    defines = {}
    for name, expr in re.findall(r"#define ISOLA_GUEST_(\w+) (\(?[0-9][^/\n]*?)\s*(?:/\*|\n)", text):
        defines[name] = eval(expr.replace("u", ""))
    enum = dict((n, int(v)) for n, v in re.findall(r"ISOLA_GUEST_(\w+) = (\d+),", text))
    assert defines["ABI_VERSION"] == g.ABI_VERSION
    for name in ["HOST_CID", "VSOCK_PORT", "EXEC_PORT", "MAX_EXECS", "HEADER_SIZE", "MAX_PROCESS", "MAX_DATA",
                 "MAX_ERROR", "STDIN_WINDOW", "MAX_MOUNTS", "LINGER_SECONDS", "EXIT_INTERNAL"]:
        assert defines[name] == getattr(g, name), name
    assert len(enum) == 12
    for name, value in enum.items():
        assert getattr(g, name) == value, name


def test_header_is_self_contained(tmp_path):
    """The header compiles alone, as C11 and as C++, with nothing but <stdint.h>."""
    src = tmp_path / "t.c"
    src.write_text('#include "isola_guest_abi.h"\n#include "isola_guest_abi.h"\n'
                   "int main(void) { return !isola_guest_header_valid(ISOLA_GUEST_EXIT, 4); }\n")
    inc = os.path.join(TOP, "guest-init")
    for cc in (["cc", "-std=c11"], ["c++", "-x", "c++"]):
        r = subprocess.run([*cc, "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{inc}",
                            str(src), "-o", str(tmp_path / "t")], capture_output=True, text=True)
        if r.returncode != 0 and "not found" in r.stderr:
            continue
        assert r.returncode == 0, r.stderr
        assert subprocess.run([str(tmp_path / "t")]).returncode == 0


def test_refuses_to_run_as_anything_but_pid1(init_bin, tmp_path):
    r = subprocess.run([init_bin], env=dict(os.environ, ISOLA_INIT_SOCKET=str(tmp_path / "s")),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == g.EXIT_INTERNAL
    assert "must run as PID 1" in r.stderr


def test_static_binary(init_bin):
    """The VM has no loader: a plain build's isola-init has no interpreter (sanitized builds
    link it dynamically on purpose)."""
    info = os.path.join(os.path.dirname(os.path.dirname(init_bin)), "meson-info",
                        "intro-buildoptions.json")
    opts = {o["name"]: o["value"] for o in json.load(open(info))}
    if opts.get("b_sanitize", "none") != "none":
        pytest.skip("sanitized build: isola-init is dynamic")
    r = subprocess.run(["readelf", "-l", init_bin], capture_output=True, text=True, check=True)
    assert "INTERP" not in r.stdout


# ---- running a process ----

def test_echo_hello(init_bin, tmp_path, template_rootfs):
    res = run(init_bin, tmp_path, config(template_rootfs, "echo", "hello"))
    assert res.status == 0
    assert bytes(res.stdout) == b"hello\n"
    assert bytes(res.stderr) == b""
    assert res.errors == []
    assert res.pid and res.pid > 1
    kinds = [f[0] for f in res.frames]
    assert kinds[0] == g.STARTED and kinds[-1] == g.EXIT and g.STDOUT in kinds


def test_stray_arguments_mean_nothing(init_bin, tmp_path, template_rootfs):
    """The kernel hands init words it does not know ("noxsave")."""
    res = run(init_bin, tmp_path, config(template_rootfs, "echo", "ok"),
              args=("noxsave", "isola.root=/nonexistent"))
    assert (res.status, bytes(res.stdout)) == (0, b"ok\n")


def test_stderr_is_a_separate_stream(init_bin, tmp_path, template_rootfs):
    res = run(init_bin, tmp_path, sh(template_rootfs,
                                     "echo out1; echo err1 >&2; echo out2; printf 'err2' >&2"))
    assert bytes(res.stdout) == b"out1\nout2\n"
    assert bytes(res.stderr) == b"err1\nerr2"


def test_one_mib_of_binary_output_is_exact(init_bin, tmp_path, template_rootfs):
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-al", str(template_rootfs), str(rootfs)], check=True)
    blob = os.urandom(1 << 20) + b"\0\xff\n" * 1000
    (rootfs / "blob").write_bytes(blob)
    res = run(init_bin, tmp_path, sh(rootfs, "cat /blob; cat /blob >&2"))
    assert res.status == 0
    assert bytes(res.stdout) == blob
    assert bytes(res.stderr) == blob
    sizes = [n for t, n in res.frames if t in (g.STDOUT, g.STDERR)]
    assert max(sizes) <= g.MAX_DATA


def test_stdin_is_forwarded_and_closed(init_bin, tmp_path, template_rootfs):
    res = run(init_bin, tmp_path, sh(template_rootfs, "cat; echo done"), stdin=b"line1\nline2")
    assert bytes(res.stdout) == b"line1\nline2done\n"


def test_stdin_larger_than_the_window_round_trips(init_bin, tmp_path, template_rootfs):
    """3 MiB through cat: the host must wait for STDIN_ACK credit, the guest must keep both
    directions moving."""
    data = os.urandom(3 << 20)
    res = run(init_bin, tmp_path, config(template_rootfs, "cat"), stdin=data)
    assert res.status == 0
    assert bytes(res.stdout) == data
    acked = sum(1 for t, _ in res.frames if t == g.STDIN_ACK)
    assert acked >= len(data) // g.STDIN_WINDOW


def test_stdin_the_process_never_reads(init_bin, tmp_path, template_rootfs):
    """A process that exits without reading: the credit comes back, nothing hangs."""
    res = run(init_bin, tmp_path, config(template_rootfs, "true"), stdin=os.urandom(1 << 20))
    assert res.status == 0


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_exit_codes(init_bin, tmp_path, template_rootfs, code):
    res = run(init_bin, tmp_path, sh(template_rootfs, f"exit {code}"))
    assert res.status == code
    assert res.errors == []


def test_missing_command_is_127(init_bin, tmp_path, template_rootfs):
    res = run(init_bin, tmp_path, config(template_rootfs, "no-such-command", "x"))
    assert res.status == 127
    assert bytes(res.stdout) == b""
    err = bytes(res.stderr).decode()
    assert err.count("\n") == 1 and "no-such-command" in err and "not found" in err


def test_missing_absolute_command_is_127(init_bin, tmp_path, template_rootfs):
    res = run(init_bin, tmp_path, config(template_rootfs, "/bin/nope"))
    assert res.status == 127
    assert "/bin/nope" in bytes(res.stderr).decode()


def test_not_executable_is_126(init_bin, tmp_path, template_rootfs):
    res = run(init_bin, tmp_path, config(template_rootfs, "/etc/passwd"))
    assert res.status == 126
    err = bytes(res.stderr).decode()
    assert err.count("\n") == 1 and "/etc/passwd" in err


def test_directory_is_126(init_bin, tmp_path, template_rootfs):
    res = run(init_bin, tmp_path, config(template_rootfs, "/etc"))
    assert res.status == 126


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGUSR1])
def test_signal_gives_128_plus_n(init_bin, tmp_path, template_rootfs, sig):
    res = run(init_bin, tmp_path, config(template_rootfs, "sleep", "100"),
              signals=[(0.2, int(sig))], timeout=30)
    assert res.status == 128 + sig


def test_signal_trapped_by_the_process(init_bin, tmp_path, template_rootfs):
    res = run(init_bin, tmp_path,
              sh(template_rootfs, "trap 'echo got TERM; exit 7' TERM; echo ready; "
                                  "while :; do sleep 0.05; done"),
              signals=[(0.5, int(signal.SIGTERM))], timeout=30)
    assert res.status == 7
    assert bytes(res.stdout) == b"ready\ngot TERM\n"


def test_orphans_are_reaped(init_bin, tmp_path, template_rootfs):
    """A double fork leaves orphans to PID 1 (isola-init), which must reap them."""
    script = ("for i in 1 2 3 4 5; do sh -c 'sleep 0.1 & exit 0'; done; sleep 1.5; "
              "for f in /proc/[0-9]*/stat; do cat $f 2>/dev/null; echo; done")
    res = run(init_bin, tmp_path, sh(template_rootfs, script))
    assert res.status == 0
    states = [l.split(") ")[1].split()[0] for l in bytes(res.stdout).decode().splitlines() if l]
    assert len(states) >= 2 and "Z" not in states, bytes(res.stdout)


def test_leftover_processes_are_killed_at_exit(init_bin, tmp_path, template_rootfs):
    """The process exits leaving a daemon that holds its stdout: the container ends anyway
    (as when a container's PID 1 dies), with the output written before the exit."""
    import time
    t = time.monotonic()
    res = run(init_bin, tmp_path, sh(template_rootfs, "sleep 1000 & echo started; exit 5"),
              timeout=30)
    assert res.status == 5
    assert bytes(res.stdout) == b"started\n"
    assert time.monotonic() - t < 20


def test_env_cwd_user_groups_hostname(init_bin, tmp_path, template_rootfs):
    cfg = sh(template_rootfs,
             'echo "$FOO|$HOME"; pwd; id -u; id -g; id -G; hostname; umask; ls -ld /proc/self/',
             env=["PATH=/bin", "FOO=bar baz"], cwd="/tmp",
             user={"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o27})
    cfg["hostname"] = "guest-test"
    res = run(init_bin, tmp_path, cfg)
    assert res.status == 0, res.stderr
    lines = bytes(res.stdout).decode().splitlines()
    assert lines[0] == "bar baz|/"
    assert lines[1:6] == ["/tmp", "1000", "1001", "1001 10 20", "guest-test"]
    assert lines[6] == "0027"


def test_hostname_stays_in_the_guest(init_bin, tmp_path, template_rootfs):
    before = socket.gethostname()
    cfg = config(template_rootfs, "hostname")
    cfg["hostname"] = "elsewhere"
    assert bytes(run(init_bin, tmp_path, cfg).stdout) == b"elsewhere\n"
    assert socket.gethostname() == before


def test_rlimits_and_no_capabilities(init_bin, tmp_path, template_rootfs):
    cfg = sh(template_rootfs, "ulimit -n; grep CapEff /proc/self/status",
             rlimits=[{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}])
    res = run(init_bin, tmp_path, cfg)
    assert bytes(res.stdout).decode().split() == ["123", "CapEff:", "0000000000000000"]


def test_capabilities_as_asked(init_bin, tmp_path, template_rootfs):
    caps = ["CAP_CHOWN", "CAP_KILL"]
    cfg = sh(template_rootfs, "grep CapEff /proc/self/status",
             capabilities={k: caps for k in ("bounding", "effective", "permitted")})
    res = run(init_bin, tmp_path, cfg)
    assert bytes(res.stdout).decode().split() == ["CapEff:", "0000000000000021"]


def test_root_is_an_overlay_with_a_tmpfs_upper(init_bin, tmp_path, template_rootfs):
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-al", str(template_rootfs), str(rootfs)], check=True)
    res = run(init_bin, tmp_path, sh(rootfs, "echo x > /new && cat /new && rm /bin/ls && "
                                             "grep ' / ' /proc/mounts"))
    assert res.status == 0, res.stderr
    out = bytes(res.stdout).decode()
    assert out.startswith("x\n") and "overlay / overlay" in out
    assert not (rootfs / "new").exists() and (rootfs / "bin" / "ls").exists()


def test_root_read_only(init_bin, tmp_path, template_rootfs):
    cfg = sh(template_rootfs, "echo x > /new")
    cfg["root"]["writable"] = "none"
    res = run(init_bin, tmp_path, cfg)
    assert res.status != 0 and b"Read-only" in bytes(res.stderr)


def test_container_mounts(init_bin, tmp_path, template_rootfs):
    cfg = sh(template_rootfs, "grep -E ' /(proc|sys|dev|dev/pts|dev/shm|dev/mqueue|run|data) ' "
                              "/proc/mounts | cut -d' ' -f2,3,4; ls -l /dev/null; "
                              "echo hi > /dev/null; test -c /dev/urandom")
    cfg["mounts"] = [{"destination": "/data", "type": "tmpfs", "source": "tmpfs",
                      "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=700"]}]
    res = run(init_bin, tmp_path, cfg)
    assert res.status == 0, res.stderr
    out = bytes(res.stdout).decode()
    mounts = {l.split()[0]: l.split()[1:] for l in out.splitlines() if l.startswith("/")}
    assert mounts["/proc"][0] == "proc" and mounts["/sys"][0] == "sysfs"
    assert mounts["/sys"][1].startswith("ro,")
    assert mounts["/dev/pts"][0] == "devpts" and mounts["/dev/mqueue"][0] == "mqueue"
    assert mounts["/data"][0] == "tmpfs" and "size=1024k" in mounts["/data"][1]
    assert "mode=700" in mounts["/data"][1] and "noexec" in mounts["/data"][1]
    assert "crw-rw-rw-" in out


def test_pid_namespace_view(init_bin, tmp_path, template_rootfs):
    """The container sees its own /proc: init is PID 1, the process is its child."""
    res = run(init_bin, tmp_path, sh(template_rootfs, "echo $$; cat /proc/1/comm"))
    pid, comm = bytes(res.stdout).decode().split()
    assert int(pid) == res.pid and comm == "isola-init"


# ---- a hostile or broken host ----

def read_to_end(guest):
    """Every frame until the guest closes (after EXIT, init closes its side first)."""
    frames = []
    while (f := guest.conn.recv(timeout=20)) is not None:
        frames.append(f)
    return frames


def hostile(init_bin, tmp_path, send, hello=True):
    """Drive init with raw bytes after (or instead of) the handshake; init must answer with
    ERROR and EXIT 125 (when it can) and end by itself, never crash."""
    guest = Guest(init_bin, tmp_path)
    if hello:
        guest.conn.handshake()
    else:
        f = guest.conn.recv()
        assert f[0] == g.HELLO
    try:
        guest.conn.sock.sendall(send)
    except (BrokenPipeError, ConnectionResetError):
        pass
    frames = read_to_end(guest)
    rc = guest.finish()
    assert rc == g.EXIT_INTERNAL, f"init exited {rc}: {guest.console}"
    errors = [p.decode() for t, p in frames if t == g.ERROR]
    exits = [struct.unpack("<I", p)[0] for t, p in frames if t == g.EXIT]
    return errors, exits, guest.console


def test_hostile_oversized_frame(init_bin, tmp_path):
    errors, exits, console = hostile(init_bin, tmp_path,
                                     struct.pack("<II", g.PROCESS, g.MAX_PROCESS + 1))
    assert exits == [g.EXIT_INTERNAL]
    assert len(errors) == 1 and "payload" in errors[0]
    assert errors[0] in console


def test_hostile_huge_length(init_bin, tmp_path):
    errors, exits, _ = hostile(init_bin, tmp_path, struct.pack("<II", g.STDIN, 0xFFFFFFFF))
    assert exits == [g.EXIT_INTERNAL] and "payload" in errors[0]


def test_hostile_unknown_type(init_bin, tmp_path):
    errors, exits, _ = hostile(init_bin, tmp_path, struct.pack("<II", 99, 0))
    assert exits == [g.EXIT_INTERNAL] and "unknown frame type 99" in errors[0]


@pytest.mark.parametrize("payload, words", [
    (b"{not json", "invalid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "extra": 1}', "unknown key"),
    (b'{"process": {"cwd": "/"}}', "process.args"),
    (b'{"process": {"args": ["true"], "cwd": "relative"}}', "process.cwd"),
    (b'{"process": {"args": [1], "cwd": "/"}}', "process.args"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "root": {"source": "/a/../b"}}', "root.source"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "root": {"source": "/x", "fstype": "vfat"}}',
     "root.fstype"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "hostname": "' + b"h" * 100 + b'"}',
     "hostname"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "mounts": [{"destination": "/../etc", '
     b'"type": "tmpfs"}]}', "mounts[0]"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "mounts": ' +
     json.dumps([{"destination": f"/m{i}", "type": "tmpfs"} for i in range(65)]).encode() + b"}",
     "at most 64"),
    (b'{"process": {"args": ["true"], "cwd": "/", "terminal": true, "consoleSize": '
     b'{"height": -1}}}', "consoleSize"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "resources": {"memory": {}}}', "resources"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "resources": {"pids": {"limit": 0}}}',
     "limit"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "seccomp": {"defaultAction": "SCMP_ACT_X"}}',
     "defaultAction"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "user": 5}', "user"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "user": "nosuchuser"}', "nosuchuser"),
    (b'{"process": {"args": ["true"], "cwd": "/"}, "root": {"source": "/nonexistent-root"}}',
     "nonexistent-root"),
    (b'{"process": {"args": ["true"], "cwd": "/"}}\0', "NUL"),
    (b"[" * 100000, "JSON"),
])
def test_hostile_process_message(init_bin, tmp_path, payload, words):
    errors, exits, _ = hostile(init_bin, tmp_path, g.frame(g.PROCESS, payload))
    assert exits == [g.EXIT_INTERNAL]
    assert len(errors) == 1 and words in errors[0], errors


def test_hostile_frame_out_of_order(init_bin, tmp_path):
    errors, exits, _ = hostile(init_bin, tmp_path, g.frame(g.STDIN, b"x"))
    assert exits == [g.EXIT_INTERNAL] and "expected PROCESS" in errors[0]


def test_hostile_bad_hello(init_bin, tmp_path):
    bad = g.ABI_VERSION + 1
    errors, exits, _ = hostile(init_bin, tmp_path, g.frame(g.HELLO, g.u32(bad) + g.u32(0)),
                               hello=False)
    assert exits == [g.EXIT_INTERNAL] and f"version {bad}" in errors[0]


def test_hostile_hello_wrong_size(init_bin, tmp_path):
    errors, exits, _ = hostile(init_bin, tmp_path, g.frame(g.HELLO, b"\1\0\0\0"), hello=False)
    assert exits == [g.EXIT_INTERNAL] and "payload" in errors[0]


def test_host_closes_before_process(init_bin, tmp_path):
    guest = Guest(init_bin, tmp_path)
    guest.conn.handshake()
    guest.conn.sock.sendall(struct.pack("<II", g.PROCESS, 100) + b"{")  # half a frame
    assert guest.finish() == g.EXIT_INTERNAL
    assert "closed" in guest.console


def test_random_garbage_never_crashes(init_bin, tmp_path):
    """A few seeded garbage streams after HELLO: init ends with 125 every time."""
    import random
    for seed in range(5):
        rnd = random.Random(seed)
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 64)))
        d = tmp_path / str(seed)
        d.mkdir()
        guest = Guest(init_bin, d)
        guest.conn.handshake()
        try:
            guest.conn.sock.sendall(blob)
            guest.conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        assert guest.finish() == g.EXIT_INTERNAL, guest.console


def test_host_vanishes_while_the_process_runs(init_bin, tmp_path, template_rootfs):
    """Nobody left to report to: the process is killed and init ends."""
    guest = Guest(init_bin, tmp_path)
    guest.conn.handshake()
    guest.conn.send_process(config(template_rootfs, "sleep", "1000"))
    f = guest.conn.recv()
    assert f[0] == g.STARTED
    assert guest.finish(timeout=20) == g.EXIT_INTERNAL


def test_stdin_beyond_the_window_is_a_protocol_error(init_bin, tmp_path, template_rootfs):
    guest = Guest(init_bin, tmp_path)
    guest.conn.handshake()
    guest.conn.send_process(config(template_rootfs, "sleep", "1000"))
    assert guest.conn.recv()[0] == g.STARTED
    # The process never reads: past the pipe's 64 KiB, nothing is acknowledged, so 1 MiB sent
    # without waiting for credit overflows the window.
    chunk = g.frame(g.STDIN, b"x" * g.MAX_DATA)
    try:
        for _ in range((1 << 20) // g.MAX_DATA):
            guest.conn.sock.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    frames = read_to_end(guest)
    assert any(t == g.ERROR and b"window" in p for t, p in frames)
    assert frames[-1] == (g.EXIT, g.u32(g.EXIT_INTERNAL))
    assert guest.finish() == g.EXIT_INTERNAL


def test_bad_signal_number(init_bin, tmp_path, template_rootfs):
    guest = Guest(init_bin, tmp_path)
    guest.conn.handshake()
    guest.conn.send_process(config(template_rootfs, "sleep", "1000"))
    assert guest.conn.recv()[0] == g.STARTED
    guest.conn.send(g.SIGNAL, g.u32(1000))
    frames = read_to_end(guest)
    assert any(t == g.ERROR and b"SIGNAL 1000" in p for t, p in frames)
    assert guest.finish() == g.EXIT_INTERNAL


# ---- the VM's root disks, on loop devices ----

@pytest.fixture
def loop(tmp_path):
    """Attach image files to loop devices (detached afterwards)."""
    if not shutil.which("losetup") or not os.path.exists("/dev/loop-control"):
        pytest.skip("no loop devices")
    devs = []

    def attach(path, read_only=True):
        r = subprocess.run(["losetup", "-f", "--show", *(["-r"] if read_only else []), str(path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"losetup: {r.stderr.strip()}")
        devs.append(r.stdout.strip())
        return devs[-1]

    yield attach
    for d in devs:
        subprocess.run(["losetup", "-d", d], capture_output=True)


def make_disk(kind, rootfs, path):
    if kind == "erofs":
        if not shutil.which("mkfs.erofs"):
            pytest.skip("mkfs.erofs is not installed")
        subprocess.run(["mkfs.erofs", "--quiet", str(path), str(rootfs)], check=True,
                       capture_output=True)
    else:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(rootfs), str(path), "32M"], check=True,
                       capture_output=True)


@pytest.mark.parametrize("kind", ["erofs", "ext4"])
@pytest.mark.parametrize("fstype", ["auto", "named"])
def test_root_disk(init_bin, tmp_path, template_rootfs, loop, kind, fstype):
    """The image disk as in a VM: a block device, read-only, under an overlay (fstype given or
    found: erofs is tried first, then ext4)."""
    disk = tmp_path / f"root.{kind}"
    make_disk(kind, template_rootfs, disk)
    dev = loop(disk)
    cfg = sh(template_rootfs, "echo x > /new && cat /new && grep ' / ' /proc/mounts && "
                              "echo mountpoints && cut -d' ' -f2 /proc/mounts")
    cfg["root"] = {"source": dev, "fstype": kind if fstype == "named" else "auto"}
    res = run(init_bin, tmp_path, cfg)
    assert res.status == 0, (res.errors, bytes(res.stderr))
    out, mountpoints = bytes(res.stdout).decode().split("mountpoints\n")
    assert out.startswith("x\n") and "overlay / overlay" in out
    # The staging area (lower, upper) left with the old root; /run is the container's tmpfs.
    assert not [m for m in mountpoints.split() if m.startswith("/run/")]


def test_root_disk_with_a_writable_disk(init_bin, tmp_path, template_rootfs, loop):
    """The overlay's upper layer on an ext4 disk: what the container writes is on that disk."""
    disk = tmp_path / "root.erofs"
    make_disk("erofs", template_rootfs, disk)
    empty = tmp_path / "empty"
    empty.mkdir()
    rw = tmp_path / "rw.ext4"
    make_disk("ext4", empty, rw)
    cfg = sh(template_rootfs, "echo persisted > /file")
    cfg["root"] = {"source": loop(disk), "writable": loop(rw, read_only=False)}
    res = run(init_bin, tmp_path, cfg)
    assert res.status == 0, (res.errors, bytes(res.stderr))
    if not shutil.which("debugfs"):
        pytest.skip("debugfs is not installed")
    r = subprocess.run(["debugfs", "-R", "cat /upper/file", str(rw)], capture_output=True)
    assert r.stdout == b"persisted\n", r.stderr


def test_root_disk_that_is_not_a_filesystem(init_bin, tmp_path, template_rootfs, loop):
    junk = tmp_path / "junk"
    junk.write_bytes(os.urandom(1 << 20))
    cfg = config(template_rootfs, "true")
    cfg["root"] = {"source": loop(junk)}
    res = run(init_bin, tmp_path, cfg)
    assert res.status == g.EXIT_INTERNAL
    assert len(res.errors) == 1 and "cannot mount the root disk" in res.errors[0]
    assert "erofs or ext4" in res.errors[0]


# ---- the initramfs the VMM boots ----

def test_initramfs(init_bin, tmp_path, template_rootfs):
    """isola-initramfs.cpio holds /init (the stripped static isola-init) and /dev/console; the
    /init inside it runs the protocol."""
    cpio = os.path.join(os.path.dirname(init_bin), "isola-initramfs.cpio")
    if not os.path.exists(cpio):
        pytest.skip("no initramfs in this build (sanitized builds have none)")
    listing = subprocess.run(["cpio", "-itv"], stdin=open(cpio, "rb"), capture_output=True,
                             text=True, check=True).stdout
    names = {l.split()[-1]: l for l in listing.splitlines()}
    assert set(names) == {"dev", "dev/console", "proc", "sys", "run", "init"}
    assert names["dev/console"].startswith("crw") and "5,   1" in names["dev/console"]
    assert names["init"].startswith("-rwxr-xr-x")
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "init"], stdin=open(cpio, "rb"), cwd=out, check=True,
                   capture_output=True)
    elf = subprocess.run(["readelf", "-lS", str(out / "init")], capture_output=True, text=True,
                         check=True).stdout
    assert "INTERP" not in elf and ".debug_info" not in elf
    assert os.path.getsize(cpio) % 512 == 0
    res = run(str(out / "init"), tmp_path, config(template_rootfs, "echo", "from the initramfs"))
    assert bytes(res.stdout) == b"from the initramfs\n"
