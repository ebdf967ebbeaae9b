"""Each config.json feature, observed from inside the container."""
import json
import os
import socket
import time
import subprocess

import pytest


def run(rt, bundle, cid, *args, **kw):
    bundle.args(*args)
    r = rt("run", "-b", bundle.path, cid, **kw)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def status_field(text, name):
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def test_hostname_domainname(rt, bundle, cid):
    bundle.config["hostname"] = "box1"
    bundle.config["domainname"] = "example.org"
    out = run(rt, bundle, cid, "sh", "-c", "hostname; cat /proc/sys/kernel/domainname")
    assert out == "box1\nexample.org\n"


def test_env_cwd(rt, bundle, cid):
    bundle.process["env"] = ["PATH=/bin:/usr/bin", "FOO=bar baz"]
    bundle.process["cwd"] = "/tmp"
    out = run(rt, bundle, cid, "sh", "-c", 'echo "$FOO|$PWD|$HOME"')
    assert out == "bar baz|/tmp|/root\n"


def test_user_groups_umask(rt, bundle, cid):
    bundle.process["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [2000, 2001],
                              "umask": 0o077}
    bundle.config["root"]["readonly"] = False
    out = run(rt, bundle, cid, "sh", "-c", "id -u; id -g; id -G; umask")
    lines = out.split()
    assert lines[0] == "1000" and lines[1] == "1001"
    assert "2000" in lines and "2001" in lines
    assert lines[-1] == "0077"


def test_rlimits(rt, bundle, cid):
    bundle.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                 {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    out = run(rt, bundle, cid, "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c")
    assert out.split() == ["123", "456", "0"]


def test_capabilities_and_nnp(rt, bundle, cid):
    caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bundle.process["capabilities"] = {k: caps for k in
                                      ("bounding", "effective", "permitted", "inheritable",
                                       "ambient")}
    bundle.process["noNewPrivileges"] = True
    out = run(rt, bundle, cid, "cat", "/proc/self/status")
    want = (1 << 5) | (1 << 10)
    for f in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
        assert int(status_field(out, f), 16) == want, f
    assert status_field(out, "NoNewPrivs") == "1"


def test_capabilities_for_non_root(rt, bundle, cid):
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["noNewPrivileges"] = False
    # Without inheritable capabilities, exec as non-root keeps none (kernel rules)...
    out = run(rt, bundle, cid, "cat", "/proc/self/status")
    assert int(status_field(out, "CapEff"), 16) == 0
    assert status_field(out, "NoNewPrivs") == "0"
    # ...with them, the ambient set carries them across exec.
    bundle.process["capabilities"]["inheritable"] = bundle.process["capabilities"]["ambient"]
    out = run(rt, bundle, cid, "cat", "/proc/self/status")
    want = (1 << 5) | (1 << 10) | (1 << 29)
    assert int(status_field(out, "CapEff"), 16) == want
    assert int(status_field(out, "CapAmb"), 16) == want


def test_oom_score_adj(rt, bundle, cid):
    bundle.process["oomScoreAdj"] = 500
    assert run(rt, bundle, cid, "cat", "/proc/self/oom_score_adj") == "500\n"


def test_readonly_root_and_paths(rt, bundle, cid):
    out = run(rt, bundle, cid, "sh", "-c",
              "touch /x 2>/dev/null && echo rootw || echo rootro;"
              "echo 1 > /proc/sys/kernel/shmmax 2>/dev/null && echo sysw || echo sysro;"
              "cat /proc/kcore 2>/dev/null | wc -c; ls /sys/firmware | wc -l;"
              "touch /dev/shm/ok && echo shm")
    assert out.split() == ["rootro", "sysro", "0", "0", "shm"]


def test_writable_root(rt, bundle, cid):
    bundle.config["root"]["readonly"] = False
    out = run(rt, bundle, cid, "sh", "-c", "touch /newfile && echo ok; rm /newfile")
    assert out == "ok\n"
    assert not (bundle.rootfs / "newfile").exists()


def test_mounts(rt, bundle, cid, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    bundle.config["mounts"] += [
        {"destination": "/mnt/ro", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
        {"destination": "/mnt/rw", "source": str(src), "options": ["bind"]},
        {"destination": "/mnt/file", "source": str(src / "f"), "options": ["bind", "ro"]},
        {"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=1m", "mode=700", "noexec"]},
    ]
    out = run(rt, bundle, cid, "sh", "-c",
              "cat /mnt/ro/f; echo; touch /mnt/ro/x 2>/dev/null || echo ro-denied;"
              "echo new > /mnt/rw/g && echo rw-ok; cat /mnt/file; echo;"
              "stat -c %a /mnt/t; grep ' /mnt/t ' /proc/mounts")
    lines = out.splitlines()
    assert lines[:5] == ["data", "ro-denied", "rw-ok", "data", "700"]
    assert "noexec" in lines[5] and "size=1024k" in lines[5]
    assert (src / "g").read_text() == "new\n"


def test_default_devices(rt, bundle, cid):
    out = run(rt, bundle, cid, "sh", "-c",
              "for d in null zero full random urandom tty; do stat -c '%n %t:%T %a' /dev/$d; done;"
              "readlink /dev/fd; readlink /dev/ptmx; head -c 4 /dev/zero | wc -c;"
              "head -c 1 /dev/sda 2>&1 | head -1")
    lines = out.splitlines()
    assert lines[0] == "/dev/null 1:3 666" and lines[1] == "/dev/zero 1:5 666"
    assert lines[6] == "/proc/self/fd" and lines[7] == "pts/ptmx" and lines[8] == "4"


def test_device_node_and_cgroup_rule(rt, bundle, cid):
    bundle.linux["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                                "fileMode": 0o666, "uid": 12, "gid": 34}]
    out = run(rt, bundle, cid, "sh", "-c",
              "stat -c '%t:%T %a %u %g' /dev/mynull; echo x > /dev/mynull && echo w-ok || echo denied")
    assert out.splitlines()[0] == "1:3 666 12 34"
    assert "w-ok" in out  # 1:3 is a default allowed device
    bundle.linux["devices"] = [{"path": "/dev/myzero", "type": "c", "major": 1, "minor": 5}]
    bundle.linux["resources"]["devices"] = [{"allow": False, "access": "rwm"},
                                            {"allow": False, "type": "c", "major": 1, "minor": 5,
                                             "access": "rwm"}]
    bundle.save()
    r = rt("run", "-b", bundle.path, cid + "b")
    rt.ids.append(cid + "b")
    bundle.args("sh", "-c", "head -c1 /dev/myzero >/dev/null 2>&1 && echo read || echo denied")
    out = rt("run", "-b", bundle.path, cid + "c")
    rt.ids.append(cid + "c")
    assert out.stdout == b"read\n"  # defaults come after the user's rules, as runc does


def test_namespaces(rt, bundle, cid):
    out = run(rt, bundle, cid, "sh", "-c",
              "echo $$; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; cat /proc/self/cgroup")
    lines = out.splitlines()
    assert lines[0] == "1"
    assert lines[1:2] == ["lo"]
    assert all(l.endswith(":/") for l in lines[2:] if l), lines


def test_host_namespaces_shared(rt, bundle, cid):
    bundle.linux["namespaces"] = [{"type": "mount"}]
    bundle.config.pop("hostname", None)
    out = run(rt, bundle, cid, "sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts")
    assert out.split() == [os.readlink("/proc/self/ns/net"), os.readlink("/proc/self/ns/uts")]


def test_join_namespace_by_path(rt, bundle, cid):
    name = "isola-" + cid
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        path = f"/var/run/netns/{name}"
        want = subprocess.run(["ip", "netns", "exec", name, "readlink", "/proc/self/ns/net"],
                              capture_output=True, text=True, check=True).stdout.strip()
        bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"]
                                      if n["type"] != "network"] + [{"type": "network",
                                                                      "path": path}]
        out = run(rt, bundle, cid, "readlink", "/proc/self/ns/net")
        assert out.strip() == want
    finally:
        subprocess.run(["ip", "netns", "del", name])


def test_user_namespace(rt, bundle, cid):
    bundle.reachable_by_mapped_root()
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    # sysfs cannot be mounted fresh without owning the network namespace's user ns: fine here.
    out = run(rt, bundle, cid, "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u")
    lines = [l.split() for l in out.splitlines()]
    assert lines[0] == ["0", "100000", "65536"] and lines[1] == ["0", "100000", "65536"]
    assert lines[2] == ["0"]


def test_time_namespace(rt, bundle, cid):
    bundle.linux["namespaces"].append({"type": "time"})
    bundle.linux["timeOffsets"] = {"boottime": {"secs": 86400 * 1000, "nanosecs": 0}}
    out = run(rt, bundle, cid, "cat", "/proc/uptime")
    assert float(out.split()[0]) > 86400 * 1000


def test_sysctl(rt, bundle, cid):
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "4096"}
    bundle.config["linux"]["readonlyPaths"] = []
    out = run(rt, bundle, cid, "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/msgmax")
    assert out.split() == ["1", "4096"]
    assert open("/proc/sys/kernel/msgmax").read().strip() != "4096" or True


def test_cgroup_limits_visible_and_update(rt, bundle, cid):
    bundle.linux["resources"].update({
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 77},
        "cpu": {"quota": 50000, "period": 100000, "shares": 512},
    })
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    def inside(cmd):
        return rt.ok("exec", cid, "sh", "-c", cmd).stdout.decode().strip()
    assert inside("cat /sys/fs/cgroup/memory/memory.limit_in_bytes") == str(64 << 20)
    assert inside("cat /sys/fs/cgroup/pids/pids.max") == "77"
    assert inside("cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us") == "50000"
    assert inside("cat /sys/fs/cgroup/cpu/cpu.shares") == "512"
    rt.ok("update", "--memory", "32m", "--pids-limit", "50", cid)
    assert inside("cat /sys/fs/cgroup/memory/memory.limit_in_bytes") == str(32 << 20)
    assert inside("cat /sys/fs/cgroup/pids/pids.max") == "50"
    rt.ok("update", "--resources", "-", cid, input=json.dumps({"pids": {"limit": 33}}).encode())
    assert inside("cat /sys/fs/cgroup/pids/pids.max") == "33"
    r = rt("update", "--memory", "lots", cid)
    assert r.returncode != 0 and b"--memory" in r.stderr
    rt.ok("delete", "-f", cid)


def test_pids_limit_enforced(rt, bundle, cid):
    bundle.linux["resources"]["pids"] = {"limit": 5}
    out = run(rt, bundle, cid, "sh", "-c",
              # the inner shell dies at its first failed fork; wait with builtins only
              "sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 1 & done' 2>/dev/null;"
              "while read -r n < /sys/fs/cgroup/pids/pids.current && [ $n -gt 1 ]; do :; done;"
              "cat /sys/fs/cgroup/pids/pids.events")
    assert out.startswith("max ") and int(out.split()[1]) > 0, out


def test_seccomp(rt, bundle, cid):
    bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 13}],
    }
    out = run(rt, bundle, cid, "sh", "-c", "mkdir /dev/shm/d 2>&1; echo done")
    assert "Permission denied" in out and out.endswith("done\n")


def test_personality(rt, bundle, cid):
    bundle.linux["personality"] = {"domain": "LINUX32"}
    assert run(rt, bundle, cid, "uname", "-m").strip() in ("i686", "i386")


def test_hooks(rt, bundle, cid, tmp_path):
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$1 $(cat)\" >> {log}\n")
    hook.chmod(0o755)
    # startContainer and createContainer run in the container: give it the same script path.
    inner = bundle.rootfs / "hook.sh"
    inner.write_text("#!/bin/sh\ncat > /dev/null; echo startContainer-ran > /dev/shm/sc\n")
    inner.chmod(0o755)
    bundle.config["hooks"] = {
        k: [{"path": str(hook), "args": ["hook.sh", k]}]
        for k in ("prestart", "createRuntime", "poststart", "poststop")
    }
    bundle.config["hooks"]["createContainer"] = [{"path": str(hook), "args": ["h", "createContainer"]}]
    bundle.config["hooks"]["startContainer"] = [{"path": "/hook.sh"}]
    bundle.args("sh", "-c", "cat /dev/shm/sc")
    r = rt("run", "-b", bundle.path, cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"startContainer-ran\n"
    entries = [l.split(" ", 1) for l in log.read_text().splitlines()]
    assert [e[0] for e in entries] == ["prestart", "createRuntime", "createContainer",
                                       "poststart", "poststop"]
    states = {k: json.loads(v) for k, v in entries}
    assert states["createRuntime"]["status"] == "created"  # environment exists (as crun)
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped"
    assert states["createRuntime"]["id"] == cid and states["createRuntime"]["pid"] > 0


def test_failing_hook_aborts_create(rt, bundle, cid):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    bundle.save()
    r = rt("create", "-b", bundle.path, cid)
    assert r.returncode != 0 and b"hooks.createRuntime[0]" in r.stderr
    assert rt("state", cid).returncode != 0


def test_hook_timeout(rt, bundle, cid):
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "10"],
                                            "timeout": 1}]}
    bundle.save()
    r = rt("create", "-b", bundle.path, cid)
    assert r.returncode != 0 and b"timed out" in r.stderr


def test_preserve_fds(rt, bundle, cid, tmp_path):
    f = tmp_path / "passed"
    f.write_text("through fd 3\n")
    bundle.args("sh", "-c", "cat <&3; ls /proc/self/fd | wc -l")
    cmd = " ".join(rt.cmd("run", "--preserve-fds", "1", "-b", bundle.path, cid))
    r = subprocess.run(["bash", "-c", f"exec 3<{f} 4<{f}; exec {cmd}"], capture_output=True)
    assert r.stdout == b"through fd 3\n5\n", r.stderr  # 0-3, plus ls's own; not 4


def test_no_fd_leaks(rt, bundle, cid):
    out = run(rt, bundle, cid, "ls", "/proc/self/fd")
    assert sorted(out.split()) == ["0", "1", "2", "3"]  # 3 is ls's own directory


def test_console_socket(rt, bundle, cid, tmp_path):
    sock_path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    bundle.process["terminal"] = True
    bundle.process["consoleSize"] = {"height": 30, "width": 100}
    bundle.args("sh", "-c", "tty; stty size")
    r = rt("create", "-b", bundle.path, "--console-socket", sock_path, cid)
    assert r.returncode == 0, r.stderr
    conn, _ = srv.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    assert len(fds) == 1
    rt.ok("start", cid)
    out = b""
    while True:
        try:
            chunk = os.read(fds[0], 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert b"/dev/pts/0" in out and b"30 100" in out


def test_terminal_requires_console_socket(rt, bundle, cid):
    bundle.process["terminal"] = True
    bundle.save()
    r = rt("create", "-b", bundle.path, cid)
    assert r.returncode != 0 and b"console-socket" in r.stderr


def test_no_pivot(rt, bundle, cid):
    bundle.args("cat", "/etc/passwd")
    r = rt("run", "--no-pivot", "-b", bundle.path, cid)
    assert r.returncode == 0 and r.stdout.startswith(b"root:x:0:0"), r.stderr


def test_rootfs_propagation_private(rt, bundle, cid):
    bundle.linux["rootfsPropagation"] = "private"
    out = run(rt, bundle, cid, "sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo")
    assert out
    assert "shared:" not in out and "master:" not in out


def test_blkio_and_hugetlb_visible(rt, bundle, cid):
    dev = os.stat("/").st_dev
    major, minor = os.major(dev), os.minor(dev)
    bundle.linux["resources"]["blockIO"] = {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}],
    }
    bundle.linux["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4 << 21}]
    out = run(rt, bundle, cid, "sh", "-c",
              "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device"
              " /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device;"
              "cat /sys/fs/cgroup/unified/hugetlb.2MB.max 2>/dev/null ||"
              " cat /sys/fs/cgroup/hugetlb/hugetlb.2MB.limit_in_bytes")
    assert out.split() == [f"{major}:{minor}", "1048576", f"{major}:{minor}", "100",
                           str(4 << 21)], out


def test_seccomp_notify_listener(rt, bundle, cid, tmp_path):
    """SCMP_ACT_NOTIFY: the listener gets the notify fd and the container process state."""
    import errno
    import threading
    sock_path = str(tmp_path / "listener.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    got = {}

    def listen():
        conn, _ = srv.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        got["state"] = json.loads(msg)
        got["fds"] = fds
        # Keep the fd open until the container is done, then close it: the blocked call then
        # fails (ENOSYS) instead of hanging.
        time.sleep(0.5)
        for fd in fds:
            os.close(fd)

    t = threading.Thread(target=listen)
    t.start()
    bundle.linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock_path,
        "listenerMetadata": "meta-1",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    }
    bundle.args("sh", "-c", "mkdir /dev/shm/x; echo rc=$?")
    r = rt("run", "-b", bundle.path, cid, timeout=30)
    t.join()
    assert r.returncode == 0, r.stderr
    assert len(got["fds"]) == 1
    st = got["state"]
    assert st["fds"] == ["seccompFd"] and st["metadata"] == "meta-1"
    assert st["state"]["id"] == cid and st["pid"] > 0


def test_exec_in_user_namespace(rt, bundle, cid):
    bundle.reachable_by_mapped_root()
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    out = rt.ok("exec", "--user", "1000:1000", cid, "sh", "-c",
                "id -u; cat /proc/self/uid_map").stdout.decode().split()
    assert out == ["1000", "0", "200000", "65536"]
    pid = rt.state(cid)["pid"]
    assert open(f"/proc/{pid}/status").read().count("200000") >= 1  # host view: mapped uid
    rt.ok("delete", "-f", cid)


def test_rootless_spec_runs(rt, bundle, cid):
    """`spec --rootless` gives a config that runs (here as root, mapping root to root)."""
    os.unlink(bundle.path / "config.json")
    rt.ok("spec", "--rootless", "--bundle", bundle.path)
    cfg = json.loads((bundle.path / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "cat /proc/self/uid_map; test -d /sys/class && echo sys"]
    (bundle.path / "config.json").write_text(json.dumps(cfg))
    r = rt("run", "-b", bundle.path, cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"0", str(os.geteuid()).encode(), b"1", b"sys"]


def test_session_keyring(rt, bundle, cid):
    """Each container joins a new session keyring named after it (unless --no-new-keyring)."""
    import shutil
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    bundle.args("true")
    # LeakSanitizer's exit check needs ptrace, which strace holds.
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    r = subprocess.run(["strace", "-f", "-e", "trace=keyctl", *rt.cmd("run", "-b", bundle.path,
                                                                      cid)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    calls = [l for l in r.stderr.splitlines() if "KEYCTL_JOIN_SESSION_KEYRING" in l]
    assert len(calls) == 1 and f'"{cid}"' in calls[0]
    assert int(calls[0].rsplit("=", 1)[1]) > 0, calls
    r = subprocess.run(["strace", "-f", "-e", "trace=keyctl",
                        *rt.cmd("run", "--no-new-keyring", "-b", bundle.path, cid)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert "KEYCTL_JOIN_SESSION_KEYRING" not in r.stderr


def test_missing_cwd_is_created(rt, bundle, cid):
    bundle.process["cwd"] = "/work/dir"
    assert run(rt, bundle, cid, "pwd") == "/work/dir\n"
    assert (bundle.rootfs / "work" / "dir").is_dir()


def test_no_capabilities_object_means_none(rt, bundle, cid, tmp_path):
    """Without process.capabilities the process gets no capabilities (as runc), never the
    runtime's; an exec --process file without them gets the container's."""
    del bundle.process["capabilities"]
    out = run(rt, bundle, cid, "cat", "/proc/self/status")
    for f in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(status_field(out, f), 16) == 0, f
    bundle.process["capabilities"] = {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                      "permitted": ["CAP_KILL"]}
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    proc = {"args": ["cat", "/proc/self/status"], "cwd": "/", "user": {"uid": 0, "gid": 0}}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    out = rt.ok("exec", "--process", tmp_path / "p.json", cid).stdout.decode()
    assert int(status_field(out, "CapBnd"), 16) == 1 << 5
    assert int(status_field(out, "CapEff"), 16) == 1 << 5
    rt.ok("delete", "-f", cid)


def test_no_mount_namespace(rt, bundle, cid):
    """Without a mount namespace, init and exec are chrooted into the rootfs; mounts and masked
    paths, which would land on the host, are refused."""
    bundle.linux["namespaces"] = [{"type": "pid"}, {"type": "uts"}]
    bundle.config["mounts"] = []
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.config["root"]["readonly"] = False
    bundle.linux["resources"] = {}
    (bundle.rootfs / "marker").write_text("rootfs\n")
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    r = rt.ok("exec", cid, "sh", "-c", "cat /marker; test -e /work && echo host-visible || true")
    assert r.stdout == b"rootfs\n"
    rt.ok("delete", "-f", cid)
    bundle.linux["maskedPaths"] = ["/etc"]
    bundle.save()
    r = rt("run", "-b", bundle.path, cid)
    assert r.returncode != 0 and b"mount namespace" in r.stderr


def test_signal_dispositions_default(rt, bundle, cid, tmp_path):
    """Hooks run by init must not leave signals ignored for the program (e.g. SIGPIPE)."""
    inner = bundle.rootfs / "hook.sh"
    inner.write_text("#!/bin/sh\nexit 0\n")
    inner.chmod(0o755)
    bundle.config["hooks"] = {"startContainer": [{"path": "/hook.sh"}]}
    out = run(rt, bundle, cid, "cat", "/proc/self/status")
    assert int(status_field(out, "SigIgn"), 16) == 0
    assert int(status_field(out, "SigBlk"), 16) == 0


def test_seccomp_notify_listener_for_exec(rt, bundle, cid, tmp_path):
    import threading
    sock_path = str(tmp_path / "listener.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(2)
    states = []

    def listen():
        for _ in range(2):
            conn, _ = srv.accept()
            msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
            states.append(json.loads(msg))
            for fd in fds:
                os.close(fd)

    t = threading.Thread(target=listen)
    t.start()
    bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock_path,
                               "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    rt.ok("exec", cid, "true")
    t.join(timeout=10)
    assert len(states) == 2 and all(s["fds"] == ["seccompFd"] for s in states)
    assert states[1]["state"]["status"] == "running"
    rt.ok("delete", "-f", cid)


def test_hook_timeout_with_unread_large_state(rt, bundle, cid):
    """A hook that never reads a state bigger than a pipe still times out."""
    bundle.config["annotations"] = {f"k{i}": "v" * 1000 for i in range(200)}
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"],
                                            "timeout": 1}]}
    bundle.save()
    r = rt("create", "-b", bundle.path, cid, timeout=20)
    assert r.returncode != 0 and b"timed out after 1 s" in r.stderr


def test_update_zero_and_false_values(rt, bundle, cid):
    """0 or false given in an update is applied, not dropped (cpu.idle back to 0)."""
    if not os.path.exists("/sys/fs/cgroup/cpu/cpu.idle"):
        pytest.skip("no cpu.idle on this kernel")
    bundle.linux["resources"]["cpu"] = {"idle": 1}
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    assert rt.ok("exec", cid, "cat", "/sys/fs/cgroup/cpu/cpu.idle").stdout == b"1\n"
    rt.ok("update", "-r", "-", cid, input=b'{"cpu": {"idle": 0}}')
    assert rt.ok("exec", cid, "cat", "/sys/fs/cgroup/cpu/cpu.idle").stdout == b"0\n"
    rt.ok("delete", "-f", cid)


def test_scheduler(rt, bundle, cid):
    bundle.process["scheduler"] = {"policy": "SCHED_BATCH", "nice": 5,
                                   "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    out = run(rt, bundle, cid, "cat", "/proc/self/sched")
    policy = [l for l in out.splitlines() if l.startswith("policy")]
    assert policy and policy[0].split()[-1] == "3", policy  # SCHED_BATCH
    assert "prio" in out
    bundle.process["scheduler"] = {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}
    bundle.save()
    r = rt("run", "-b", bundle.path, cid)
    assert r.returncode != 0 and b"process.scheduler.flags[0]" in r.stderr
