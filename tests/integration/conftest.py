"""Fixtures for the integration tests: real isola-runtime binaries, real bundles, and a check
after every test that nothing was left behind (state, cgroups, mounts, processes)."""
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDS = [b for b in os.environ.get("ISOLA_BUILDS", "build").split(",") if b]
HAVE_KVM = os.access("/dev/kvm", os.R_OK | os.W_OK)
# The kvm_pvm software hypervisor (MACHINE.md), as isola-vmm detects it.
PVM_HOST = os.path.isdir("/sys/module/kvm_pvm") and not any(
    os.path.isdir(f"/sys/module/{m}") for m in ("kvm_intel", "kvm_amd"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kvm: needs /dev/kvm; on a machine without it, tests/run.sh runs these in the"
        " nested KVM host (tests/nested)")


def pytest_collection_modifyitems(config, items):
    if HAVE_KVM:
        return
    skip = pytest.mark.skip(reason="no /dev/kvm on this host (tests/run.sh runs the kvm tests"
                            " in tests/nested's KVM host)")
    for item in items:
        if "kvm" in item.keywords:
            item.add_marker(skip)


def pytest_generate_tests(metafunc):
    if "rt" in metafunc.fixturenames:
        metafunc.parametrize("rt", BUILDS, indirect=True)


@pytest.fixture(scope="session")
def template_rootfs(tmp_path_factory):
    """One busybox rootfs per session; each bundle gets a hard-linked copy."""
    d = tmp_path_factory.mktemp("template")
    subprocess.run([os.path.join(TOP, "scripts/make-bundle.sh"), str(d)], check=True,
                   env=dict(os.environ, ISOLA_RUNTIME=runtime_path(BUILDS[0])))
    return d / "rootfs"


def runtime_path(build):
    return os.path.join(TOP, build, "cli", "isola-runtime")


class Runtime:
    def __init__(self, build, root):
        self.build = build
        self.path = runtime_path(build)
        self.root = str(root)
        self.ids = []

    def cmd(self, *args):
        return [self.path, "--root", self.root, *map(str, args)]

    def __call__(self, *args, input=None, timeout=60, check=False, **kw):
        detached = args and (args[0] == "create" or (args[0] in ("run", "exec") and (
            "-d" in args or "--detach" in args)))
        if detached:
            # The container keeps our stdio: capture to files, not pipes we would wait on.
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                p = subprocess.run(self.cmd(*args), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=err, timeout=timeout, **kw)
                out.seek(0)
                err.seek(0)
                r = subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())
        else:
            r = subprocess.run(self.cmd(*args), input=input, capture_output=True,
                               timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"{args} failed ({r.returncode}): {r.stderr!r}")
        return r

    def ok(self, *args, **kw):
        return self(*args, check=True, **kw)

    def state(self, cid):
        return json.loads(self.ok("state", cid).stdout)


class Bundle:
    def __init__(self, path, rootfs_template, rt):
        self.path = path
        self.rootfs = path / "rootfs"
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-al", str(rootfs_template), str(self.rootfs)], check=True)
        with open(os.path.join(TOP, "tests/integration/base-config.json")) as f:
            self.config = json.load(f)
        self.config["process"]["args"] = ["true"]
        self.save()

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config.setdefault("linux", {})

    def args(self, *a):
        self.process["args"] = list(a)
        return self.save()

    def reachable_by_mapped_root(self):
        """A mapped root (user namespace) must be able to reach the rootfs; pytest makes its
        directories 0700."""
        p = self.path
        while str(p) not in ("/", "/tmp"):
            os.chmod(p, os.stat(p).st_mode | 0o011)
            p = p.parent

    def save(self):
        with open(self.path / "config.json", "w") as f:
            json.dump(self.config, f, indent=1)
        return self


@pytest.fixture
def rt(request, tmp_path):
    build = request.param
    if not os.path.exists(runtime_path(build)):
        pytest.skip(f"{build} is not built")
    r = Runtime(build, tmp_path / "state")
    yield r
    # Whatever the test did, delete what is left, then check nothing else remains.
    if os.path.isdir(r.root):
        for cid in os.listdir(r.root):
            r("delete", "--force", cid)
        leftover = os.listdir(r.root)
        assert leftover == [], f"state left behind: {leftover}"
    left = []
    for c in r.ids:
        for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            if not os.path.isdir(base):
                continue
            for ctrl in [""] + os.listdir(base):
                p = os.path.join(base, ctrl, "isola", c)
                if os.path.isdir(p):
                    left.append(p)
    assert left == [], f"cgroups left behind: {left}"


@pytest.fixture
def bundle(tmp_path, template_rootfs, rt):
    b = Bundle(tmp_path / "bundle", template_rootfs, rt)
    yield b
    with open("/proc/self/mountinfo") as f:
        leaked = [l for l in f if str(tmp_path) in l]
    for line in leaked:
        subprocess.run(["umount", "-l", line.split()[4]], capture_output=True)
    assert leaked == [], f"mounts left behind: {leaked}"


@pytest.fixture
def cid(rt):
    """A container id unique to the test; rt checks its cgroups are gone afterwards."""
    c = "t-" + uuid.uuid4().hex[:12]
    rt.ids.append(c)
    return c
