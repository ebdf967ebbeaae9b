"""Bad input: each is rejected with one clear line naming what was wrong, and leaves nothing
behind (the rt and bundle fixtures check state, cgroups and mounts after every test)."""
import json
import os

import pytest


def rejected(rt, bundle, cid, *needles, verb="run"):
    r = rt(verb, "-b", bundle.path, cid)
    assert r.returncode != 0
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    for n in needles:
        assert n in lines[0], lines[0]
    assert not os.path.exists(os.path.join(rt.root, cid)), "state left behind"
    return lines[0]


def test_malformed_json(rt, bundle, cid):
    (bundle.path / "config.json").write_text('{"ociVersion": "1.0.0", "root": ')
    rejected(rt, bundle, cid, "config.json", "invalid JSON")


def test_wrong_types(rt, bundle, cid):
    bundle.process["args"] = "sh -c true"
    bundle.save()
    rejected(rt, bundle, cid, "process.args", "expected an array")


def test_missing_config(rt, bundle, cid):
    (bundle.path / "config.json").unlink()
    rejected(rt, bundle, cid, "config.json", "No such file")


def test_missing_rootfs(rt, bundle, cid):
    bundle.config["root"]["path"] = "nope"
    bundle.save()
    rejected(rt, bundle, cid, "root.path", "nope")


def test_rootfs_not_a_directory(rt, bundle, cid):
    (bundle.path / "file").write_text("x")
    bundle.config["root"]["path"] = "file"
    bundle.save()
    rejected(rt, bundle, cid, "root.path", "not a directory")


def test_unknown_namespace(rt, bundle, cid):
    bundle.linux["namespaces"].append({"type": "bogus"})
    bundle.save()
    rejected(rt, bundle, cid, "linux.namespaces[6]", "bogus")


def test_bad_namespace_path(rt, bundle, cid):
    bundle.linux["namespaces"] = [{"type": "network", "path": "/proc/self/ns/nope"},
                                  {"type": "mount"}, {"type": "uts"}]
    bundle.save()
    rejected(rt, bundle, cid, "network namespace", "/proc/self/ns/nope")


def test_unknown_capability(rt, bundle, cid):
    bundle.process["capabilities"]["bounding"].append("CAP_WISHFUL")
    bundle.save()
    rejected(rt, bundle, cid, "process.capabilities.bounding[3]", "CAP_WISHFUL")


def test_unknown_rlimit(rt, bundle, cid):
    bundle.process["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]
    bundle.save()
    rejected(rt, bundle, cid, "process.rlimits[0]", "RLIMIT_BOGUS")


def test_missing_command(rt, bundle, cid):
    bundle.args("/no/such/program")
    rejected(rt, bundle, cid, "/no/such/program")
    bundle.args("nosuchprogram")
    rejected(rt, bundle, cid, "nosuchprogram", "not found in $PATH")


def test_relative_cwd(rt, bundle, cid):
    bundle.process["cwd"] = "tmp"
    bundle.save()
    rejected(rt, bundle, cid, "process.cwd", "absolute")


def test_unsupported_version(rt, bundle, cid):
    bundle.config["ociVersion"] = "2.0.0"
    bundle.save()
    rejected(rt, bundle, cid, "ociVersion", "2.0.0")


def test_bind_source_missing(rt, bundle, cid):
    bundle.config["mounts"].append({"destination": "/data", "source": "/no/such/dir",
                                    "options": ["bind"]})
    bundle.save()
    rejected(rt, bundle, cid, "mounts[7]", "/no/such/dir")


def test_bad_mount_type(rt, bundle, cid):
    bundle.config["mounts"].append({"destination": "/x", "type": "nosuchfs", "source": "x"})
    bundle.save()
    rejected(rt, bundle, cid, "mounts[7]", "nosuchfs")


def test_invalid_ids(rt, bundle):
    for bad in ("../escape", "a/b", "", ".."):
        r = rt("run", "-b", bundle.path, bad)
        assert r.returncode != 0 and b"container id" in r.stderr, (bad, r.stderr)
    assert not os.path.exists(os.path.join(os.path.dirname(rt.root), "escape"))


def test_duplicate_id(rt, bundle, cid):
    bundle.args("sleep", "100")
    rt.ok("create", "-b", bundle.path, cid)
    r = rt("create", "-b", bundle.path, cid)
    assert r.returncode != 0 and b"already exists" in r.stderr
    assert rt.state(cid)["status"] == "created", "the first container is untouched"
    rt.ok("delete", "--force", cid)


def test_huge_config(rt, bundle, cid):
    (bundle.path / "config.json").write_text('{"x": "' + "a" * (17 << 20) + '"}')
    rejected(rt, bundle, cid, "config.json", "16 MiB")


def test_bad_cli(rt, bundle, cid):
    r = rt("run", "--no-such-flag", cid)
    assert r.returncode != 0 and b"unknown option" in r.stderr
    r = rt("frobnicate")
    assert r.returncode != 0 and b"unknown command" in r.stderr
    r = rt("kill")
    assert r.returncode != 0 and b"usage" in r.stderr
    r = rt("state", "nonexistent")
    assert r.returncode != 0 and b"does not exist" in r.stderr
    r = rt("--log-format", "xml", "list")
    assert r.returncode != 0 and b"--log-format" in r.stderr
    r = rt("--systemd-cgroup", "run", "-b", bundle.path, cid)
    assert r.returncode != 0 and b"systemd" in r.stderr
    # Sizes beyond int64_t (or not numbers at all) are refused before any container is looked up.
    for size in ["1e30", "9000000000t", "inf", "nan"]:
        r = rt("update", "--memory", size, "nonexistent")
        assert r.returncode != 0 and b"is not a size" in r.stderr, (size, r.stderr)


@pytest.mark.parametrize("dest", ["/escape/inside", "/../../../../../../../../tmp/ESCAPE/x",
                                  "/abs/inside"])
def test_mount_destination_cannot_escape(rt, bundle, cid, tmp_path, dest):
    """Destinations through '..' or symlinks (relative or absolute) stay in the rootfs."""
    host = tmp_path / "hostdir"
    host.mkdir()
    (bundle.rootfs / "escape").symlink_to("../../../../../../../../" + str(host).lstrip("/"))
    (bundle.rootfs / "abs").symlink_to(str(host))
    dest = dest.replace("ESCAPE", str(host.relative_to("/tmp")))
    bundle.config["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs"})
    bundle.config["root"]["readonly"] = False
    bundle.args("sh", "-c", "echo inside > " + dest + "/f")
    r = rt("run", "-b", bundle.path, cid)
    assert r.returncode == 0, r.stderr
    assert list(host.iterdir()) == [], "nothing may be created outside the rootfs"


def test_bind_file_over_symlink_stays_inside(rt, bundle, cid, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("host data\n")
    (bundle.rootfs / "etc" / "link").symlink_to(str(victim))
    src = tmp_path / "src"
    src.write_text("replacement\n")
    bundle.config["mounts"].append({"destination": "/etc/link", "source": str(src),
                                    "options": ["bind"]})
    bundle.args("cat", "/etc/link")
    r = rt("run", "-b", bundle.path, cid)
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "host data\n"


def test_apparmor_profile_without_apparmor(rt, bundle, cid):
    """A profile that cannot be applied must not silently run the container unconfined."""
    if open("/sys/module/apparmor/parameters/enabled").read().startswith("Y") \
            if os.path.exists("/sys/module/apparmor/parameters/enabled") else False:
        pytest.skip("AppArmor is enabled here")
    bundle.process["apparmorProfile"] = "isola-test"
    bundle.save()
    rejected(rt, bundle, cid, "process.apparmorProfile", "AppArmor is not enabled")


@pytest.mark.parametrize("value,needle", [("vm", "not available yet"),
                                          ("hyperv", "not available yet"),
                                          ("sandbox", "is not process or vm")])
def test_isolation_annotation(rt, bundle, cid, value, needle):
    """Asking for VM isolation before it exists fails; it never falls back to a process."""
    bundle.config["annotations"] = {"io.isola.isolation": value}
    bundle.save()
    rejected(rt, bundle, cid, "annotations.io.isola.isolation", needle)


def test_isolation_annotation_process(rt, bundle, cid):
    bundle.config["annotations"] = {"io.isola.isolation": "process"}
    bundle.args("echo", "ok")
    assert rt("run", "-b", bundle.path, cid).stdout == b"ok\n"


@pytest.mark.parametrize("key,needle", [("kernel.core_pattern", "not namespaced"),
                                        ("kernel.panic", "not namespaced"),
                                        ("vm.overcommit_memory", "not namespaced")])
def test_host_sysctls_refused(rt, bundle, cid, key, needle):
    before = open("/proc/sys/" + key.replace(".", "/")).read()
    bundle.linux["sysctl"] = {key: "0"}
    bundle.save()
    rejected(rt, bundle, cid, "linux.sysctl", key, needle)
    assert open("/proc/sys/" + key.replace(".", "/")).read() == before


def test_net_sysctl_needs_network_namespace(rt, bundle, cid):
    bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"] if n["type"] != "network"]
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    bundle.save()
    rejected(rt, bundle, cid, "linux.sysctl", "network namespace")


def test_mount_into_proc_through_symlink_refused(rt, bundle, cid, tmp_path):
    """An image symlink into /proc must not let a volume cover the kernel's files there."""
    vol = tmp_path / "vol"
    vol.mkdir()
    (bundle.rootfs / "data").symlink_to("/proc/self/attr")
    bundle.config["mounts"].append({"destination": "/data", "source": str(vol),
                                    "options": ["bind"]})
    bundle.save()
    rejected(rt, bundle, cid, "mounts[7]", "inside /proc")


def test_sysctl_in_joined_host_namespace_refused(rt, bundle, cid):
    before = open("/proc/sys/net/ipv4/ip_forward").read()
    bundle.linux["namespaces"] = [n for n in bundle.linux["namespaces"] if n["type"] != "network"]
    bundle.linux["namespaces"].append({"type": "network", "path": "/proc/self/ns/net"})
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "0" if before.strip() == "1" else "1"}
    bundle.save()
    rejected(rt, bundle, cid, "linux.sysctl", "the host's")
    assert open("/proc/sys/net/ipv4/ip_forward").read() == before


def test_cgroup_of_another_container_refused(rt, bundle, cid):
    """A cgroupsPath that already holds processes is not taken over (our delete would kill
    them): same path, or the shared parent of other containers."""
    bundle.args("sleep", "100")
    bundle.linux["cgroupsPath"] = f"/isola/{cid}"
    bundle.save()
    rt.ok("run", "-d", "-b", bundle.path, cid)
    other = cid + "-b"
    rt.ids.append(other)
    rejected(rt, bundle, other, "linux.cgroupsPath", "already has processes")
    bundle.linux["cgroupsPath"] = "/isola"
    bundle.save()
    rejected(rt, bundle, other, "linux.cgroupsPath", "already has processes")
    assert rt.state(cid)["status"] == "running", "the first container is untouched"
    rt.ok("delete", "-f", cid)


def test_cgroup_path_with_dot_names(rt, bundle, cid):
    """Names that merely start with dots are ordinary cgroups: created, listed, deleted."""
    bundle.args("sleep", "100")
    bundle.linux["cgroupsPath"] = f"/isola/..{cid}"
    bundle.save()
    rt.ok("run", "-d", "-b", bundle.path, cid)
    assert rt.ok("list", "-q").stdout.decode().split() == [cid]
    rt.ok("delete", "-f", cid)
    assert not os.path.exists(f"/sys/fs/cgroup/pids/isola/..{cid}")


def test_v1_device_rule_that_cannot_be_enforced(rt, bundle, cid):
    """On the v1 devices controller a deny inside an earlier wildcard allow would not take
    effect: refused, naming the rule, rather than silently not enforced."""
    if not os.path.isdir("/sys/fs/cgroup/devices"):
        pytest.skip("no v1 devices controller here")
    bundle.linux["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "rwm"}]
    bundle.save()
    rejected(rt, bundle, cid, "linux.resources.devices[2]", "cannot be enforced")


def test_idmap_mount_option_refused(rt, bundle, cid, tmp_path):
    bundle.config["mounts"].append({"destination": "/data", "source": str(tmp_path),
                                    "options": ["bind", "idmap"]})
    bundle.save()
    rejected(rt, bundle, cid, "mounts[7]", "idmap")


def test_blkio_weight_range(rt, bundle, cid):
    bundle.linux["resources"]["blockIO"] = {"weight": 5}
    bundle.save()
    rejected(rt, bundle, cid, "linux.resources.blockIO", "10 to 1000")


def test_capability_names_are_exact(rt, bundle, cid):
    bundle.process["capabilities"]["bounding"].append("cap_sys_admin")
    bundle.save()
    rejected(rt, bundle, cid, "process.capabilities.bounding[3]", "cap_sys_admin")
