"""The other cgroup layouts, end to end: this host is hybrid, so each test runs the runtime in a
private mount namespace where /sys/fs/cgroup looks like a pure cgroup v2 host (the default of
Debian 12 and most distributions) or a pure v1 host."""
import subprocess

import pytest

V2 = "umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup"
V1 = "while umount -l /sys/fs/cgroup/unified 2>/dev/null; do :; done"


def run_in_layout(rt, layout, script):
    sh = f"mount --make-rprivate / && {layout} && {script}"
    return subprocess.run(["unshare", "-m", "sh", "-c", sh], capture_output=True, timeout=60)


def test_pure_v2(rt, bundle, cid):
    """cgroup2 only: the container's own cgroup (cgroup namespace), device rules through an
    eBPF program (no devices controller on v2), hugetlb limit, and cleanup."""
    bundle.linux["devices"] = [{"path": "/dev/mykmsg", "type": "c", "major": 1, "minor": 11,
                                "fileMode": 0o666}]
    bundle.linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}],
                                 "hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 21}]}
    bundle.args("sh", "-c", "cat /proc/self/cgroup | grep '^0::'; head -c1 /dev/zero | wc -c;"
                "head -c1 /dev/mykmsg >/dev/null 2>&1 && echo kmsg-read || echo kmsg-denied;"
                "cat /sys/fs/cgroup/hugetlb.2MB.max")
    r = run_in_layout(rt, V2, " ".join(rt.cmd("run", "-b", bundle.path, cid)) +
                      f"; echo rc=$?; test -e /sys/fs/cgroup/isola/{cid} && echo LEFT")
    out = r.stdout.decode().split()
    assert out == ["0::/", "1", "kmsg-denied", str(2 << 21), "rc=0"], (out, r.stderr)


def test_pure_v2_update(rt, bundle, cid):
    """update on v2: a limit changes; device rules cannot be swapped for a partial list (the
    eBPF program keeps the config's rules and the defaults)."""
    bundle.linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}],
                                 "hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 21}]}
    bundle.args("sleep", "100")
    upd_dev = "echo '{\"devices\":[{\"allow\":false,\"type\":\"c\",\"major\":1,\"minor\":7}]}' | "
    upd_huge = "echo '{\"hugepageLimits\":[{\"pageSize\":\"2MB\",\"limit\":4194304}]}' | "
    script = "; ".join([
        " ".join(rt.cmd("run", "-d", "-b", bundle.path, cid)) + " </dev/null >/dev/null",
        upd_dev + " ".join(rt.cmd("update", "-r", "-", cid)) + " 2>&1 | grep -c 'cannot be changed'",
        " ".join(rt.cmd("exec", cid, "sh", "-c", "'head -c1 /dev/full | wc -c'")),
        upd_huge + " ".join(rt.cmd("update", "-r", "-", cid)),
        " ".join(rt.cmd("exec", cid, "cat", "/sys/fs/cgroup/hugetlb.2MB.max")),
        " ".join(rt.cmd("delete", "-f", cid)),
    ])
    r = run_in_layout(rt, V2, script)
    assert r.stdout.decode().split() == ["1", "1", "4194304"], (r.stdout, r.stderr)


def test_pure_v1(rt, bundle, cid):
    bundle.linux["resources"]["pids"] = {"limit": 42}
    bundle.args("cat", "/sys/fs/cgroup/pids/pids.max")
    r = run_in_layout(rt, V1, " ".join(rt.cmd("run", "-b", bundle.path, cid)) +
                      "; echo rc=$?; grep -c ' - cgroup2 ' /proc/self/mountinfo")
    assert r.stdout.decode().split() == ["42", "rc=0", "0"], (r.stdout, r.stderr)
