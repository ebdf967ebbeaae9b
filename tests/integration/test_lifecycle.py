"""create / start / state / kill / delete / run / list / ps / pause / resume / exec."""
import json
import os
import signal
import subprocess
import time

import pytest


def wait_status(rt, cid, want, timeout=10):
    end = time.time() + timeout
    st = None
    while time.time() < end:
        st = rt.state(cid)["status"]
        if st == want:
            return
        time.sleep(0.02)
    raise AssertionError(f"{cid} is {st}, wanted {want}")


def wait_running(rt, cid, timeout=10):
    """For a foreground run started with Popen: wait until its container is running."""
    end = time.time() + timeout
    while time.time() < end:
        r = rt("state", cid)
        if r.returncode == 0 and json.loads(r.stdout)["status"] == "running":
            return
        time.sleep(0.01)
    raise AssertionError(f"{cid} never ran")


def test_run_echo(rt, bundle, cid):
    bundle.args("echo", "hello")
    r = rt("run", "--bundle", bundle.path, cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello\n"
    assert not os.path.exists(os.path.join(rt.root, cid)), "run removes the container"


def test_run_exit_code(rt, bundle, cid):
    bundle.args("sh", "-c", "exit 42")
    assert rt("run", "-b", bundle.path, cid).returncode == 42


def test_run_killed_by_signal(rt, bundle, cid):
    bundle.args("sleep", "100")
    p = subprocess.Popen(rt.cmd("run", "-b", bundle.path, cid))
    wait_running(rt, cid)
    rt.ok("kill", cid, "KILL")
    assert p.wait(timeout=10) == 128 + 9


def test_run_forwards_signals(rt, bundle, cid):
    bundle.args("sh", "-c", "trap 'exit 5' TERM; while :; do sleep 0.05; done")
    p = subprocess.Popen(rt.cmd("run", "-b", bundle.path, cid))
    wait_running(rt, cid)
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=10) == 5


def test_run_stdin(rt, bundle, cid):
    bundle.args("sh", "-c", "read x; echo got $x")
    r = rt("run", "-b", bundle.path, cid, input=b"abc\n")
    assert r.stdout == b"got abc\n"


def test_stdout_stderr_separate(rt, bundle, cid):
    bundle.args("sh", "-c", "echo out; echo err >&2")
    r = rt("run", "-b", bundle.path, cid)
    assert r.stdout == b"out\n" and r.stderr == b"err\n"


def test_lifecycle(rt, bundle, cid, tmp_path):
    bundle.args("sh", "-c", "echo started > /dev/shm/x; sleep 100")
    pidfile = tmp_path / "pid"
    r = rt("create", "--bundle", bundle.path, "--pid-file", pidfile, cid)
    assert r.returncode == 0, r.stderr
    st = rt.state(cid)
    assert st["status"] == "created" and st["id"] == cid
    assert st["pid"] == int(pidfile.read_text())
    assert st["bundle"] == str(bundle.path) and st["ociVersion"].startswith("1.")
    assert os.path.exists(f"/proc/{st['pid']}")
    rt.ok("start", cid)
    wait_status(rt, cid, "running")
    # start twice is an error
    r = rt("start", cid)
    assert r.returncode != 0 and b"not created" in r.stderr
    # delete of a running container needs --force
    r = rt("delete", cid)
    assert r.returncode != 0 and b"--force" in r.stderr
    rt.ok("kill", cid, "KILL")
    wait_status(rt, cid, "stopped")
    assert rt.state(cid)["pid"] == 0
    rt.ok("delete", cid)
    r = rt("state", cid)
    assert r.returncode != 0 and b"does not exist" in r.stderr


def test_delete_created(rt, bundle, cid):
    bundle.args("true")
    rt.ok("create", "-b", bundle.path, cid)
    pid = rt.state(cid)["pid"]
    # As runc and crun (and containerd's shim relies on it): a created container is deleted
    # without --force, its init killed.
    rt.ok("delete", cid)
    time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_kill_signal_names(rt, bundle, cid):
    bundle.args("sh", "-c", "trap 'echo usr1 > /dev/shm/sig' USR1; while :; do sleep 0.05; done")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    for sig in ("USR1", "SIGUSR1", str(int(signal.SIGUSR1))):
        rt.ok("kill", cid, sig)
    r = rt("kill", cid, "NOSUCHSIG")
    assert r.returncode != 0 and b"unknown signal" in r.stderr
    rt.ok("kill", cid, "KILL")
    wait_status(rt, cid, "stopped")


def test_list_and_ps(rt, bundle, cid):
    bundle.args("sleep", "100")
    rt.ok("run", "--detach", "-b", bundle.path, cid)
    ids = rt.ok("list", "-q").stdout.decode().split()
    assert ids == [cid]
    lst = json.loads(rt.ok("list", "--format", "json").stdout)
    assert lst[0]["id"] == cid and lst[0]["status"] == "running"
    pids = json.loads(rt.ok("ps", "--format", "json", cid).stdout)
    assert pids == [rt.state(cid)["pid"]]
    table = rt.ok("ps", cid).stdout.decode()
    assert "PID" in table.splitlines()[0] and "sleep" in table
    rt.ok("delete", "--force", cid)


def test_pause_resume(rt, bundle, cid):
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    rt.ok("pause", cid)
    assert rt.state(cid)["status"] == "paused"
    pid = rt.state(cid)["pid"]
    state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    assert state in ("D", "S", "T"), state
    r = rt("pause", cid)
    assert r.returncode != 0
    rt.ok("resume", cid)
    assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "-f", cid)


def test_delete_force_paused(rt, bundle, cid):
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    rt.ok("pause", cid)
    rt.ok("delete", "--force", cid)
    assert rt("state", cid).returncode != 0


def test_exec(rt, bundle, cid):
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    r = rt("exec", cid, "sh", "-c", "echo $$ $(hostname); exit 7")
    assert r.returncode == 7
    pid_in_ns, host = r.stdout.decode().split()
    assert host == "isola" and int(pid_in_ns) > 1
    r = rt("exec", "--env", "FOO=bar", "--cwd", "/tmp", cid, "sh", "-c", "echo $FOO $PWD")
    assert r.stdout == b"bar /tmp\n"
    r = rt("exec", "--user", "65534:65534", cid, "id")
    assert b"uid=65534" in r.stdout and b"gid=65534" in r.stdout
    r = rt("exec", cid, "nonexistent-cmd")
    assert r.returncode != 0 and b"not found" in r.stderr
    r = rt("exec", cid, "sh", "-c", "read x; echo [$x]", input=b"in\n")
    assert r.stdout == b"[in]\n"
    rt.ok("delete", "-f", cid)


def test_exec_process_file(rt, bundle, cid, tmp_path):
    bundle.args("sleep", "100")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    proc = dict(bundle.process, args=["sh", "-c", "echo from-file $A"], env=["A=1", "PATH=/bin"])
    (tmp_path / "p.json").write_text(json.dumps(proc))
    r = rt("exec", "--process", tmp_path / "p.json", cid)
    assert r.returncode == 0 and r.stdout == b"from-file 1\n", r.stderr
    pidfile = tmp_path / "exec.pid"
    rt.ok("exec", "-d", "--pid-file", pidfile, cid, "sleep", "50")
    epid = int(pidfile.read_text())
    assert epid in json.loads(rt.ok("ps", "--format", "json", cid).stdout)
    rt.ok("delete", "-f", cid)
    time.sleep(0.1)
    assert not os.path.exists(f"/proc/{epid}") or "Z" in open(f"/proc/{epid}/stat").read().split()[2]


def test_run_keep(rt, bundle, cid):
    bundle.args("sh", "-c", "exit 3")
    assert rt("run", "--keep", "-b", bundle.path, cid).returncode == 3
    assert rt.state(cid)["status"] == "stopped"
    rt.ok("delete", cid)


def test_spec_and_features(rt, tmp_path):
    rt.ok("spec", "--bundle", tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["ociVersion"].startswith("1.") and cfg["process"]["args"] == ["sh"]
    r = rt("spec", "--bundle", tmp_path)
    assert r.returncode != 0 and b"already exists" in r.stderr
    (tmp_path / "config.json").unlink()
    rt.ok("spec", "--rootless", "--bundle", tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert any(n["type"] == "user" for n in cfg["linux"]["namespaces"])
    f = json.loads(rt.ok("features").stdout)
    assert "user" in f["linux"]["namespaces"] and f["linux"]["seccomp"]["enabled"]


def test_delete_force_after_sigkilled_create(rt, bundle, cid):
    """A runtime killed in the middle of create leaves state that delete --force cleans."""
    bundle.args("true")
    # Stop create while it waits for a createRuntime hook, then SIGKILL it.
    hook = bundle.path / "hook.sh"
    hook.write_text("#!/bin/sh\nsleep 30\n")
    hook.chmod(0o755)
    bundle.config["hooks"] = {"createRuntime": [{"path": str(hook)}]}
    bundle.save()
    p = subprocess.Popen(rt.cmd("create", "-b", bundle.path, cid))
    for _ in range(200):
        if os.path.exists(os.path.join(rt.root, cid, "state.json")):
            st = json.load(open(os.path.join(rt.root, cid, "state.json")))
            if st.get("pid"):
                break
        time.sleep(0.02)
    time.sleep(0.1)
    p.kill()
    p.wait()
    pid = json.load(open(os.path.join(rt.root, cid, "state.json")))["pid"]
    assert pid > 0 and os.path.exists(f"/proc/{pid}")
    rt.ok("delete", "--force", cid)
    time.sleep(0.05)
    assert not os.path.exists(os.path.join(rt.root, cid))
    subprocess.run(["pkill", "-f", str(hook)])


@pytest.mark.parametrize("delay_ms", [0, 1, 3, 6, 10, 20])
def test_delete_force_after_create_killed_anywhere(rt, bundle, cid, delay_ms):
    """SIGKILL the runtime at several points of create; delete --force still cleans up
    everything (state, cgroups, processes), and the id can be used again."""
    bundle.args("sleep", "100")
    p = subprocess.Popen(rt.cmd("create", "-b", bundle.path, cid), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay_ms / 1000)
    p.kill()
    p.wait()
    pid = 0
    state_file = os.path.join(rt.root, cid, "state.json")
    if os.path.exists(state_file):
        try:
            pid = json.load(open(state_file)).get("pid", 0)
        except ValueError:
            pass
    r = rt("delete", "--force", cid)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))
    if pid:
        time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    # The id is free again.
    rt.ok("create", "-b", bundle.path, cid)
    rt.ok("delete", "--force", cid)


def test_log_file_json(rt, bundle, cid, tmp_path):
    """Engines (containerd's shim) read the runtime's errors from --log in JSON."""
    log = tmp_path / "runtime.log"
    bundle.args("/no/such/binary")
    r = rt("--log", log, "--log-format", "json", "run", "-b", bundle.path, cid)
    assert r.returncode != 0
    entries = [json.loads(l) for l in log.read_text().splitlines()]
    assert entries and entries[-1]["level"] == "error"
    assert "/no/such/binary" in entries[-1]["msg"] and entries[-1]["time"]
    assert b"/no/such/binary" in r.stderr  # and on stderr, where podman reads them


def test_debug_log(rt, bundle, cid, tmp_path):
    log = tmp_path / "debug.log"
    bundle.args("true")
    rt.ok("--debug", "--log", log, "run", "-b", bundle.path, cid)
    text = log.read_text()
    assert "debug" in text and cid in text


def test_hook_can_ask_for_state(rt, bundle, cid, tmp_path):
    """state does not wait for the lock create holds while its hooks run."""
    out = tmp_path / "state-from-hook"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\n{' '.join(rt.cmd('state', cid))} > {out}\n")
    hook.chmod(0o755)
    bundle.config["hooks"] = {"createRuntime": [{"path": str(hook), "timeout": 10}]}
    bundle.args("true")
    r = rt("run", "-b", bundle.path, cid, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["id"] == cid


def test_kill_all_after_init_exited(rt, bundle, cid):
    """Without a pid namespace, processes outlive init; kill --all still reaches them."""
    bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"] if n["type"] != "pid"]
    bundle.args("sh", "-c", "sleep 300 & exit 0")
    rt.ok("run", "-d", "-b", bundle.path, cid)
    wait_status(rt, cid, "stopped")
    pids = json.loads(rt.ok("ps", "--format", "json", cid).stdout)
    assert pids, "the orphaned sleep is still in the cgroup"
    rt.ok("kill", "--all", cid, "KILL")
    for _ in range(200):
        if not json.loads(rt.ok("ps", "--format", "json", cid).stdout):
            break
        time.sleep(0.01)
    assert json.loads(rt.ok("ps", "--format", "json", cid).stdout) == []
    rt.ok("delete", cid)


def test_start_after_a_killed_start(rt, bundle, cid):
    """A start killed after init went on (fifo read, not yet removed) must not make the next
    start hang: it sees init no longer waits and records the container as running."""
    bundle.args("sleep", "100")
    rt.ok("create", "-b", bundle.path, cid)
    fifo = os.path.join(rt.root, cid, "exec.fifo")
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    for _ in range(200):
        try:
            if os.read(fd, 1):
                break
        except BlockingIOError:
            pass
        time.sleep(0.01)
    os.close(fd)
    time.sleep(0.1)
    r = rt("start", cid, timeout=10)
    assert r.returncode == 0, r.stderr
    assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "-f", cid)
