"""The project's own images (images/recipes/): busybox is deterministic, a valid OCI layout that
real tools (skopeo, podman) read, and is embedded byte for byte in the binary; debian-python
builds (from the cache after the first time) into an image with a working python3."""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest

from isola_cli import isola  # noqa: F401 (fixture)

from conftest import BUILDS, TOP

RECIPES = os.path.join(TOP, "images", "recipes")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_layout(path):
    """Check an oci-archive's layout and every digest in it; return (index, manifest, config,
    [uncompressed layer tar bytes])."""
    with tarfile.open(path) as t:
        files = {m.name.rstrip("/"): m for m in t.getmembers()}
        for m in files.values():
            assert m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "", m.name
        assert json.loads(t.extractfile("oci-layout").read()) == {"imageLayoutVersion": "1.0.0"}

        def blob(desc):
            data = t.extractfile("blobs/sha256/" + desc["digest"].split(":", 1)[1]).read()
            assert sha256(data) == desc["digest"], desc
            assert len(data) == desc["size"], desc
            return data

        blobs = {n for n in files if n.startswith("blobs/sha256/")}
        index = json.loads(t.extractfile("index.json").read())
        assert index["schemaVersion"] == 2 and len(index["manifests"]) == 1
        mdesc = index["manifests"][0]
        assert mdesc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        manifest = json.loads(blob(mdesc))
        assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
        config = json.loads(blob(manifest["config"]))
        layers = []
        for ldesc in manifest["layers"]:
            assert ldesc["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
            layers.append(gzip.decompress(blob(ldesc)))
        assert config["rootfs"]["diff_ids"] == [sha256(l) for l in layers]
        used = {"blobs/sha256/" + d["digest"].split(":")[1]
                for d in [mdesc, manifest["config"], *manifest["layers"]]}
        assert used == blobs, "blobs that nothing references"
        names = [m.name for m in t.getmembers()]
        assert names == sorted(names)
    return index, mdesc, config, layers


def layer_members(layer):
    with tarfile.open(fileobj=io.BytesIO(layer)) as t:
        return {m.name.rstrip("/"): m for m in t.getmembers()}


@pytest.fixture(scope="module")
def busybox_archive(tmp_path_factory):
    d = tmp_path_factory.mktemp("busybox")
    for n in ("a.tar", "b.tar"):
        subprocess.run([os.path.join(RECIPES, "busybox.sh"), str(d / n)], check=True,
                       capture_output=True, timeout=120)
    return d


def test_busybox_deterministic(busybox_archive):
    a = (busybox_archive / "a.tar").read_bytes()
    assert a == (busybox_archive / "b.tar").read_bytes()
    built = os.path.join(TOP, BUILDS[0], "images", "busybox.oci.tar")
    if os.path.exists(built):  # meson's build of the same recipe and busybox
        assert open(built, "rb").read() == a


def test_busybox_layout(busybox_archive):
    index, mdesc, config, layers = read_layout(busybox_archive / "a.tar")
    assert mdesc["annotations"] == {"io.containerd.image.name": "docker.io/library/busybox:latest",
                                    "org.opencontainers.image.ref.name": "latest"}
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["Cmd"] == ["sh"]
    assert config["config"]["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    files = layer_members(layers[0])
    names = list(files)
    assert names == sorted(names)
    assert files["bin/busybox"].isfile() and files["bin/busybox"].mode == 0o755
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for a in applets:
        if a != "busybox":
            assert files["bin/" + a].issym() and files["bin/" + a].linkname == "busybox", a
    assert files["tmp"].isdir() and files["tmp"].mode == 0o1777
    assert files["root"].isdir() and files["root"].mode == 0o700
    for d in ("dev", "proc", "sys", "etc", "home", "var"):
        assert files[d].isdir(), d
    mtimes = {m.mtime for m in files.values()}
    assert len(mtimes) == 1
    with tarfile.open(fileobj=io.BytesIO(layers[0])) as t:
        passwd = t.extractfile("etc/passwd").read().decode()
        group = t.extractfile("etc/group").read().decode()
        for m in t.getmembers():
            assert m.uid == 0 and m.gid == 0, m.name
            assert not (set(m.pax_headers) & {"atime", "ctime"}), m.name
    assert "root:x:0:0:root:/root:/bin/sh\n" in passwd
    assert any(l.split(":")[2:4] == ["65534", "65534"] for l in passwd.splitlines())
    assert "root:x:0:" in group and "nogroup:x:65534:" in group


def test_busybox_skopeo(busybox_archive):
    r = subprocess.run(["skopeo", "inspect", "oci-archive:" + str(busybox_archive / "a.tar")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert len(info["Layers"]) == 1


def test_busybox_podman_load(busybox_archive):
    # A private store (vfs: no mounts) so the machine's images are untouched; the run root must
    # be short (podman refuses more than 50 characters). No `system reset`: it would also drop
    # the machine-wide network definitions.
    top = tempfile.mkdtemp(prefix="isola-pm.", dir="/tmp")
    root, runroot, tmp = (os.path.join(top, d) for d in ("root", "run", "tmp"))
    podman = ["podman", "--root", root, "--runroot", runroot, "--tmpdir", tmp,
              "--storage-driver", "vfs", "--events-backend", "none"]
    try:
        r = subprocess.run(podman + ["load", "-i", str(busybox_archive / "a.tar")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(podman + ["images", "--format", "{{.Repository}}:{{.Tag}}"],
                           capture_output=True, text=True, timeout=60, check=True)
        assert "docker.io/library/busybox:latest" in r.stdout.split()
        r = subprocess.run(podman + ["rmi", "docker.io/library/busybox:latest"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        with open("/proc/self/mountinfo") as f:
            mounts = [l.split()[4] for l in f if top in l]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)
    assert not mounts, f"podman left mounts: {mounts}"


@pytest.mark.parametrize("build", BUILDS)
def test_embedded_matches_archive(build):
    exe = os.path.join(TOP, build, "tests", "unit", "test_embedded")
    archive = os.path.join(TOP, build, "images", "busybox.oci.tar")
    if not os.path.exists(exe):
        pytest.skip(f"test_embedded not built in {build}")
    r = subprocess.run([exe, archive], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "not ok" not in r.stdout, r.stdout + r.stderr
    assert "ok 4 - bytes match" in r.stdout


@pytest.fixture(scope="module")
def debian_python(tmp_path_factory):
    """Built once per machine (about two minutes, network to Debian's mirror), then taken from
    /var/cache/isola/recipes."""
    out = tmp_path_factory.mktemp("debian-python") / "debian-python.tar"
    r = subprocess.run([os.path.join(RECIPES, "debian-python.sh"), str(out)],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r.stdout


def test_debian_python_image(debian_python, tmp_path):
    path, _ = debian_python
    index, mdesc, config, layers = read_layout(path)
    assert mdesc["annotations"]["io.containerd.image.name"] == "isola.dev/debian-python:12"
    assert mdesc["annotations"]["org.opencontainers.image.ref.name"] == "12"
    assert config["config"]["Cmd"] == ["python3"]
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    files = layer_members(layers[0])
    assert files["usr/bin/python3"].issym() or files["usr/bin/python3"].isfile()
    assert not [n for n in files if "__pycache__" in n]
    assert not [n for n in files if n.startswith(("var/lib/apt/lists/", "var/log/"))
                and files[n].isfile()]
    assert "etc/resolv.conf" not in files and "etc/hostname" not in files
    assert files["etc/machine-id"].size == 0
    epoch = max(m.mtime for m in files.values())
    assert all(m.mtime <= epoch for m in files.values())
    # The tree works: python3 runs in it.
    root = tmp_path / "rootfs"
    root.mkdir()
    with tarfile.open(fileobj=io.BytesIO(layers[0])) as t:
        t.extractall(root, numeric_owner=True)
    r = subprocess.run(["chroot", str(root), "/usr/bin/python3", "-c",
                        "import json, ssl, sys; print(sys.version_info[:2])"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(3, 11)"


def test_debian_python_cached(debian_python, tmp_path):
    """A second run takes the cached archive: same bytes, and it says where it is."""
    path, _ = debian_python
    out = tmp_path / "again.tar"
    r = subprocess.run([os.path.join(RECIPES, "debian-python.sh"), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "cached /var/cache/isola/recipes/debian-python-" in r.stdout
    assert out.read_bytes() == path.read_bytes()


PY_WORKLOAD = r"""
import http.server, json, sqlite3, threading, urllib.request
db = sqlite3.connect(":memory:")
db.execute("create table t (n integer)")
db.executemany("insert into t values (?)", [(i,) for i in range(1000)])
total = db.execute("select sum(n) from t").fetchone()[0]
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=srv.serve_forever, daemon=True).start()
body = urllib.request.urlopen(f"http://127.0.0.1:{srv.server_port}/etc/os-release").read()
print(json.dumps({"sum": total, "debian": b"bookworm" in body}))
"""


def test_debian_python_runs_in_isola(debian_python, isola):
    """The realistic image through the whole path: load, unpack, overlay, run a workload
    (sqlite, threads, an HTTP server on the container's loopback) with process isolation."""
    path, _ = debian_python
    isola.ok("load", "-i", path)
    r = isola.ok("run", "--rm", "-w", "/", "isola.dev/debian-python:12", "python3", "-c",
                 PY_WORKLOAD)
    assert json.loads(r.stdout) == {"sum": 499500, "debian": True}
    r = isola.ok("run", "--rm", "-u", "nobody", "isola.dev/debian-python:12", "python3", "-c",
                 "import os; print(os.getuid(), os.environ['HOME'])")
    assert r.stdout == "65534 /nonexistent\n"
