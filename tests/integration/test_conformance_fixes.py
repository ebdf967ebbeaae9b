"""Behaviour the OCI runtime-tools validation suite checks (see docs/conformance.md), each
observed directly so a regression shows up here before a conformance run."""
import json
import os
import subprocess

import pytest


def run(rt, bundle, cid, *args):
    bundle.args(*args)
    r = rt("run", "-b", bundle.path, cid)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def test_prestart_hook_sees_created(rt, bundle, cid, tmp_path):
    """hooks_stdin: the state on a prestart hook's stdin says "created"."""
    out = tmp_path / "prestart.json"
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sh",
                                            "args": ["sh", "-c", f"cat > {out}"]}]}
    rt.ok("create", "-b", bundle.args("true").path, cid)
    state = json.loads(out.read_text())
    assert state["status"] == "created"
    assert state["id"] == cid and state["pid"] == rt.state(cid)["pid"]
    rt.ok("delete", "--force", cid)


def test_delete_running_refused(rt, bundle, cid):
    """delete: a running container stays without --force, and the error says why."""
    rt.ok("run", "-d", "-b", bundle.args("sleep", "100").path, cid)
    r = rt("delete", cid)
    assert r.returncode != 0 and b"is running" in r.stderr and b"--force" in r.stderr
    assert rt.state(cid)["status"] == "running"
    rt.ok("kill", cid, "KILL")
    for _ in range(100):
        if rt.state(cid)["status"] == "stopped":
            break
    rt.ok("delete", cid)


@pytest.mark.parametrize("prop", ["unbindable", "private", "slave", "shared"])
def test_rootfs_propagation(rt, bundle, cid, prop):
    """linux_rootfs_propagation: every mode is accepted and lands on the container's "/".
    Run from a mount namespace whose mounts are shared, so that "slave" can be told apart."""
    bundle.linux["rootfsPropagation"] = prop
    bundle.args("cat", "/proc/self/mountinfo")
    r = subprocess.run(["unshare", "-m", "--propagation", "unchanged", "sh", "-c",
                        'mount --make-rshared / && exec "$@"', "sh",
                        *rt.cmd("run", "-b", bundle.path, cid)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    root = [l.split() for l in r.stdout.decode().splitlines() if l.split()[4] == "/"][-1]
    optional = root[6:root.index("-")]
    expect = {"unbindable": "unbindable", "slave": "master:", "shared": "shared:"}.get(prop)
    if expect:
        assert any(o.startswith(expect) for o in optional), optional
    else:
        assert optional == [], optional


@pytest.mark.skipif(not os.path.exists("/sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes"),
                    reason="no cgroup v1 memory.kmem.tcp.limit_in_bytes on this host")
def test_kernel_tcp_limit_v1(rt, bundle, cid):
    """linux_cgroups_memory: kernelTCP is still enforced by v1 (kernel is not, and ignored)."""
    bundle.linux["resources"]["memory"] = {"limit": 64 << 20, "kernelTCP": 48 << 20}
    out = run(rt, bundle, cid, "cat", "/sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes")
    assert out.strip() == str(48 << 20)


def own_bounding_set():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("CapBnd:")).split()[1], 16)


@pytest.mark.skipif(own_bounding_set() & (1 << 24), reason="CAP_SYS_RESOURCE is available here")
def test_unavailable_capability_fails_create(rt, bundle, cid):
    """process_capabilities: a capability the runtime itself lacks fails create, by name,
    instead of the process dying after start."""
    for s in ("bounding", "effective", "permitted"):
        bundle.process["capabilities"][s].append("CAP_SYS_RESOURCE")
    r = rt("create", "-b", bundle.args("true").path, cid)
    assert r.returncode != 0 and b"CAP_SYS_RESOURCE" in r.stderr
    assert rt("state", cid).returncode != 0
