"""isola load / isola save with real archives: OCI layouts (directories and tars, plain and
compressed), docker-archives we build and ones podman and skopeo write, round trips through our
own save and through podman, hostile and broken archives, and a load killed half way."""
import gzip
import hashlib
import io
import json
import os
import pty
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

import pytest

import oci_builder as oci
from conftest import BUILDS, TOP


def isola_path(build):
    return os.path.join(TOP, build, "cli", "isola")


class Isola:
    def __init__(self, build, tmp, name="store"):
        self.build = build
        self.path = isola_path(build)
        self.root = str(tmp / name)
        self.run_root = str(tmp / (name + "-run"))

    def cmd(self, *args):
        return [self.path, "--root", self.root, "--run-root", self.run_root, *map(str, args)]

    def __call__(self, *args, timeout=120, stdin=subprocess.DEVNULL, text=True):
        return subprocess.run(self.cmd(*args), capture_output=True, text=text, timeout=timeout,
                              stdin=stdin)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, f"isola {args} failed ({r.returncode}): {r.stderr}"
        return r

    def images(self):
        return {i["name"]: i for i in json.loads(self.ok("images", "--format", "json").stdout)}

    def blob_dir(self):
        return os.path.join(self.root, "blobs", "sha256")

    def blobs(self):
        d = self.blob_dir()
        return set(os.listdir(d)) if os.path.isdir(d) else set()

    def run_cat(self, image, *paths):
        return self("run", "--rm", image, "cat", *paths, timeout=60)


@pytest.fixture(params=BUILDS)
def isola(request, tmp_path):
    if not os.path.exists(isola_path(request.param)):
        pytest.skip(f"{request.param}/cli/isola is not built")
    return Isola(request.param, tmp_path)


def one_line_error(r):
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got: {r.stderr!r}"
    return lines[0]


# ---- building archives ----

def tar_entries(entries, path, gz=False):
    """Write a tar of [(name, bytes | None for a directory | ("symlink", target))]."""
    buf = io.BytesIO() if gz else open(path, "wb")
    with buf, tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            elif isinstance(data, tuple):
                ti.type, ti.linkname = tarfile.SYMTYPE, data[1]
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))
        if gz:
            t.close()
            with open(path, "wb") as f:
                f.write(gzip.compress(buf.getvalue(), mtime=0))
    return path


def layout_entries(layout):
    """The files of an OCI layout directory as tar entries (an oci-archive)."""
    out = []
    for dirpath, dirnames, files in os.walk(layout):
        dirnames.sort()
        rel = os.path.relpath(dirpath, layout)
        if rel != ".":
            out.append((rel + "/", None))
        for f in sorted(files):
            with open(os.path.join(dirpath, f), "rb") as fh:
                out.append((os.path.normpath(os.path.join(rel, f)), fh.read()))
    return out


def set_annotations(layout, annotations):
    p = os.path.join(layout, "index.json")
    with open(p) as f:
        idx = json.load(f)
    idx["manifests"][0]["annotations"] = annotations
    with open(p, "w") as f:
        json.dump(idx, f)


def docker_entries(img, layers, tags, style="legacy"):
    """A docker-archive of an image written by oci_builder, from its uncompressed layer tars:
    as docker save wrote it before 25 (<id>/layer.tar), or since (blobs/sha256/HEX)."""
    if style == "legacy":
        cfg = img["config_digest"][7:] + ".json"
    else:
        cfg = "blobs/sha256/" + img["config_digest"][7:]
    entries, names = [(cfg, img["config"])], []
    for tar in layers:
        d = oci.digest_of(tar)[7:]
        if style == "legacy":
            entries += [(d + "/", None), (d + "/VERSION", b"1.0"), (d + "/layer.tar", tar)]
            names.append(d + "/layer.tar")
        else:
            entries.append(("blobs/sha256/" + d, tar))
            names.append("blobs/sha256/" + d)
    manifest = [{"Config": cfg, "RepoTags": tags, "Layers": names}]
    return entries + [("manifest.json", json.dumps(manifest).encode()),
                      ("repositories", b"{}")]


KEEP = b"kept through the layers\n"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Test images: a three-layer one whose upper layer whites out a file and makes a
    directory opaque, as an OCI layout directory, plus its raw layers."""
    d = tmp_path_factory.mktemp("images")
    base = oci.make_layer(oci.busybox_files({
        "etc": oci.Dir(), "etc/keep": KEEP, "etc/gone": b"whited out\n",
        "opq": oci.Dir(), "opq/old": b"hidden by the opaque dir\n"}))
    mid = oci.make_layer({"etc": oci.Dir(), "etc/mid": b"mid\n"})
    top = oci.make_layer({"etc": oci.Dir(), "etc/.wh.gone": b"", "opq": oci.Dir(),
                          "opq/.wh..wh..opq": b"", "opq/new": b"new\n"})
    layers = [base, mid, top]
    multi = str(d / "multi")
    img = oci.write_oci_layout(multi, layers, {"Cmd": ["cat", "/etc/keep"]}, "latest",
                               gzip=True)
    return {"dir": d, "multi": multi, "img": img, "layers": layers}


def check_multi(isola, name, img, run=True):
    """The image is listed under its name with its config digest as id, and its layers stack:
    the whiteout and the opaque directory took effect."""
    first = name.split("/")[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        full = name
    else:
        full = "docker.io/" + ("" if "/" in name else "library/") + name
    listed = isola.images()
    assert full in listed, listed
    assert listed[full]["id"] == img["config_digest"]
    if not run:
        return
    r = isola.run_cat(name, "/etc/keep", "/etc/mid")
    assert r.returncode == 0, r.stderr
    assert r.stdout.encode() == KEEP + b"mid\n"
    r = isola("run", "--rm", name, "ls", "/etc", "/opq")
    assert r.returncode == 0, r.stderr
    assert "gone" not in r.stdout and "old" not in r.stdout and "new" in r.stdout, r.stdout


# ---- loading ----

def test_load_oci_layout_dir(isola, images):
    # Only a tag ("latest") in the layout: the name must come from --name.
    msg = one_line_error(isola("load", "-i", images["multi"]))
    assert "has no name" in msg and "--name" in msg, msg
    r = isola.ok("load", "-i", images["multi"], "--name", "multi")
    assert r.stdout == "Loaded image: multi:latest\n"
    check_multi(isola, "multi:latest", images["img"])
    assert isola.images()["docker.io/library/multi:latest"]["digest"] == \
        images["img"]["manifest_digest"]
    # An explicit tag in --name wins over the layout's.
    isola.ok("load", "-i", images["multi"], "--name", "localhost/other:v2", "-q")
    assert "localhost/other:v2" in isola.images()


@pytest.mark.parametrize("compress", ["none", "gzip", "zstd"])
def test_load_oci_archive(isola, images, tmp_path, compress):
    layout = str(tmp_path / "layout")
    shutil.copytree(images["multi"], layout)
    set_annotations(layout, {"io.containerd.image.name": "example.com/team/multi:1.0",
                             "org.opencontainers.image.ref.name": "1.0"})
    tar = tar_entries(layout_entries(layout), str(tmp_path / "a.tar"), gz=compress == "gzip")
    if compress == "zstd":
        subprocess.run(["zstd", "-q", "--rm", tar, "-o", tar + ".zst"], check=True)
        tar += ".zst"
    r = isola.ok("load", "-i", tar)
    assert r.stdout == "Loaded image: example.com/team/multi:1.0\n"
    check_multi(isola, "example.com/team/multi:1.0", images["img"], run=compress == "none")
    assert isola.images()["example.com/team/multi:1.0"]["digest"] == \
        images["img"]["manifest_digest"]


def test_load_stdin(isola, images, tmp_path):
    layout = str(tmp_path / "layout")
    shutil.copytree(images["multi"], layout)
    set_annotations(layout, {"org.opencontainers.image.ref.name": "docker.io/library/piped:7"})
    tar = tar_entries(layout_entries(layout), str(tmp_path / "a.tar"))
    with open(tar, "rb") as f:
        r = isola("load", stdin=f)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Loaded image: piped:7\n"
    with open(tar, "rb") as f:
        assert isola("load", "-i", "-", "-q", stdin=f).stdout == ""
    check_multi(isola, "piped:7", images["img"], run=False)


@pytest.mark.parametrize("style", ["legacy", "blobs"])
def test_load_docker_archive(isola, images, tmp_path, style):
    img = images["img"]
    tar = tar_entries(docker_entries(img, images["layers"], ["dock:1", "localhost/dock:2"],
                                     style), str(tmp_path / "d.tar"))
    r = isola.ok("load", "-i", tar)
    assert r.stdout == "Loaded image: dock:1\nLoaded image: localhost/dock:2\n"
    check_multi(isola, "dock:1", img)
    assert isola.images()["localhost/dock:2"]["id"] == img["config_digest"]
    # Untagged: --name names it.
    tar = tar_entries(docker_entries(img, images["layers"], None), str(tmp_path / "u.tar"))
    assert "--name" in one_line_error(isola("load", "-i", tar))
    assert isola.ok("load", "-i", tar, "--name", "untagged").stdout == \
        "Loaded image: untagged:latest\n"


def test_load_index_chooses_platform(isola, images, tmp_path):
    layout = str(tmp_path / "layout")
    base = images["layers"][0]
    idx = oci.write_oci_index(layout, [
        dict(layers=[base, oci.make_layer({"arch": b"arm64\n"})], arch="arm64"),
        dict(layers=[base, oci.make_layer({"arch": b"amd64\n"})], arch="amd64")], "latest")
    set_annotations(layout, {"org.opencontainers.image.ref.name": "docker.io/library/plat:1"})
    tar = tar_entries(layout_entries(layout), str(tmp_path / "i.tar"))
    isola.ok("load", "-i", tar)
    amd64 = [i for i in idx["images"] if i["arch"] == "amd64"][0]
    assert isola.images()["docker.io/library/plat:1"]["id"] == amd64["config_digest"]
    r = isola.run_cat("plat:1", "/arch")
    assert r.returncode == 0 and r.stdout == "amd64\n", r.stderr


# ---- podman and skopeo ----

@pytest.fixture
def podman():
    """podman with a private store (vfs: no mounts), removed afterwards."""
    if not shutil.which("podman"):
        pytest.skip("podman is not installed")
    top = tempfile.mkdtemp(prefix="isola-pm.", dir="/tmp")
    base = ["podman", "--root", os.path.join(top, "root"), "--runroot", os.path.join(top, "run"),
            "--tmpdir", os.path.join(top, "tmp"), "--storage-driver", "vfs",
            "--events-backend", "none"]

    def run(*args, timeout=120):
        r = subprocess.run(base + list(args), capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"podman {args}: {r.stderr}"
        return r
    yield run
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if top in line]
    for m in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(top, ignore_errors=True)
    assert not mounts, f"podman left mounts: {mounts}"


def podman_ids(podman):
    out = podman("images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    return dict(line.split() for line in out.splitlines())


def test_podman_and_skopeo_archives(isola, images, podman, tmp_path):
    layout = str(tmp_path / "layout")
    shutil.copytree(images["multi"], layout)
    set_annotations(layout, {"org.opencontainers.image.ref.name": "docker.io/library/pm:1"})
    src = tar_entries(layout_entries(layout), str(tmp_path / "src.tar"))
    podman("load", "-i", src)
    img = images["img"]
    assert podman_ids(podman)["docker.io/library/pm:1"] in (img["config_digest"],
                                                            img["config_digest"][7:])
    pd, po = str(tmp_path / "podman-docker.tar"), str(tmp_path / "podman-oci.tar")
    podman("save", "--format", "docker-archive", "-o", pd, "pm:1")
    podman("save", "--format", "oci-archive", "-o", po, "pm:1")
    sk = str(tmp_path / "skopeo-docker.tar")
    r = subprocess.run(["skopeo", "copy", "oci-archive:" + po,
                        "docker-archive:" + sk + ":sk/opeo:2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # podman's docker-archive links <id>/layer.tar to <diff_id>.tar: the links are followed.
    with tarfile.open(pd) as t:
        assert any(m.issym() for m in t.getmembers())
    assert isola.ok("load", "-i", pd).stdout == "Loaded image: pm:1\n"
    check_multi(isola, "pm:1", img)
    isola.ok("rmi", "pm:1")
    assert isola.ok("load", "-i", po).stdout == "Loaded image: pm:1\n"
    check_multi(isola, "pm:1", img)
    assert isola.ok("load", "-i", sk).stdout == "Loaded image: sk/opeo:2\n"
    check_multi(isola, "sk/opeo:2", img)


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_save_load_round_trip(isola, images, podman, tmp_path, fmt):
    img = images["img"]
    isola.ok("load", "-i", images["multi"], "--name", "trip:1")
    isola.ok("tag", "trip:1", "localhost/trip:2")
    out = str(tmp_path / "saved.tar")
    r = isola.ok("save", "--format", fmt, "-o", out, "trip:1")
    assert r.stdout == ""
    # Deterministic, and the same bytes on stdout.
    again = isola("save", "--format", fmt, "trip:1", text=False)
    assert again.returncode == 0, again.stderr
    with open(out, "rb") as f:
        assert f.read() == again.stdout
    with tarfile.open(out) as t:
        for m in t.getmembers():
            assert m.mtime == 0 and m.uid == 0 and m.gid == 0, m.name
            assert not os.path.isabs(m.name) and ".." not in m.name.split("/")
        names = t.getnames()
    if fmt == "oci-archive":
        assert "oci-layout" in names and "index.json" in names
        assert "blobs/sha256/" + img["manifest_digest"][7:] in names
    else:
        assert "manifest.json" in names
    fresh = Isola(isola.build, tmp_path, "fresh")
    assert fresh.ok("load", "-i", out).stdout == "Loaded image: trip:1\n"
    got = fresh.images()["docker.io/library/trip:1"]
    assert got["id"] == img["config_digest"]
    if fmt == "oci-archive":
        assert got["digest"] == img["manifest_digest"]
    check_multi(fresh, "trip:1", img)
    # Two names of one image, blobs once.
    both = str(tmp_path / "both.tar")
    isola.ok("save", "--format", fmt, "-o", both, "trip:1", "localhost/trip:2")
    with tarfile.open(both) as t:
        bnames = t.getnames()
    assert len(bnames) == len(set(bnames))
    r = fresh.ok("load", "-i", both)
    assert set(r.stdout.splitlines()) == {"Loaded image: trip:1", "Loaded image: localhost/trip:2"}
    # podman reads what we write.
    podman("load", "-i", out)
    ids = podman_ids(podman)
    assert ids.get("docker.io/library/trip:1") in (img["config_digest"],
                                                   img["config_digest"][7:]), ids


def test_save_errors(isola, images, tmp_path):
    isola.ok("load", "-i", images["multi"], "--name", "s:1")
    msg = one_line_error(isola("save", "-o", str(tmp_path / "x.tar"), "nosuch:1"))
    assert "nosuch" in msg
    assert not [p for p in os.listdir(tmp_path) if "x.tar" in p]
    assert "--format" in one_line_error(isola("save", "--format", "zip", "s:1"))
    # Never a tar on a terminal.
    master, slave = pty.openpty()
    try:
        r = subprocess.run(isola.cmd("save", "s:1"), stdout=slave, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=60, text=True)
    finally:
        os.close(slave)
        os.close(master)
    assert r.returncode != 0 and "terminal" in r.stderr


# ---- hostile and broken archives ----

def hostile_archives(images, d):
    """name → (path, substring of the error)."""
    img, layers = images["img"], images["layers"]
    good = docker_entries(img, layers, ["bad:1"])
    out = {}

    def put(name, entries, expect, gz=False):
        out[name] = (tar_entries(entries, os.path.join(d, name + ".tar"), gz=gz), expect)

    with open(os.path.join(d, "notar"), "wb") as f:
        f.write(b"this is not an archive\n" * 100)
    out["not-a-tar"] = (os.path.join(d, "notar"), "not a docker-archive or OCI image layout")
    open(os.path.join(d, "empty"), "wb").close()
    out["empty"] = (os.path.join(d, "empty"), "not a docker-archive or OCI image layout")
    put("no-manifest", [("hello.txt", b"hi\n"), ("x.json", b"{}")],
        "no manifest.json or index.json")
    put("missing-layer", [e for e in good if not e[0].endswith("layer.tar")], "layer.tar")
    # A blob whose content is not what its name says.
    layout_tar = layout_entries(images["multi"])
    bad = [(n, b"corrupt" if n == "blobs/sha256/" + img["config_digest"][7:] else data)
           for n, data in layout_tar]
    put("blob-mismatch", bad, "digest mismatch")
    # A plain layer whose content is not the config's diff_id.
    swapped = [(n, layers[1] if n == oci.digest_of(layers[2])[7:] + "/layer.tar" else data)
               for n, data in good]
    put("diff-id-mismatch", swapped, "diff_ids[2]")
    with open(tar_entries(good, os.path.join(d, "good.tar")), "rb") as f:
        full = f.read()
    with open(os.path.join(d, "truncated.tar"), "wb") as f:
        f.write(full[:len(full) // 2])
    out["truncated"] = (os.path.join(d, "truncated.tar"), "truncated")
    with open(os.path.join(d, "truncated.tar.gz"), "wb") as f:
        f.write(gzip.compress(full, mtime=0)[:len(full) // 4])
    out["truncated-gzip"] = (os.path.join(d, "truncated.tar.gz"), "truncated")
    put("huge-json", [("manifest.json", b"[" + b" " * (5 << 20) + b"]")], "larger than")
    put("bad-json", [("manifest.json", b'[{"Config": 5, "Layers": []}]')], "Config")
    put("not-json", [("index.json", b"{\"manifests\": [")], "index.json")
    put("traversal", [("../../../tmp/evil.json", b"{}")] + good, "leaves the archive")
    put("absolute", [("/etc/evil.json", b"{}")] + good, "absolute")
    put("config-traversal", [(n, json.dumps([{"Config": "../../etc/passwd", "RepoTags": ["x:1"],
                                               "Layers": []}]).encode()
                              if n == "manifest.json" else data) for n, data in good],
        "../../etc/passwd")
    put("bad-tag", [(n, data.replace(b"bad:1", b"BAD/Up:1") if n == "manifest.json" else data)
                    for n, data in good], "RepoTags[0]")
    # A header claiming 100 GiB (pax size record), with no data behind it.
    with open(os.path.join(d, "absurd.tar"), "wb") as f, \
            tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
        ti.size = 100 << 30
        t.addfile(ti)
    out["absurd-size"] = (os.path.join(d, "absurd.tar"), "claims 107374182400 bytes")
    return out


HOSTILE = ["absurd-size", "not-a-tar", "empty", "no-manifest", "missing-layer", "blob-mismatch",
           "diff-id-mismatch", "truncated", "truncated-gzip", "huge-json", "bad-json",
           "not-json", "traversal", "absolute", "config-traversal", "bad-tag"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_load_hostile(isola, images, tmp_path, kind):
    isola.ok("load", "-i", images["multi"], "--name", "before:1")
    listed, blobs = isola.images(), isola.blobs()
    path, expect = hostile_archives(images, str(tmp_path))[kind]
    msg = one_line_error(isola("load", "-i", path))
    assert msg.startswith(f'isola: load "{path}": '), msg
    assert expect in msg, msg
    assert isola.images() == listed
    # Whatever was written is complete blobs named by their digest, which prune removes.
    for b in isola.blobs() - blobs:
        with open(os.path.join(isola.blob_dir(), b), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == b
    isola.ok("system", "prune")
    assert isola.blobs() == blobs
    assert isola.images() == listed
    assert not os.path.exists("/tmp/evil.json")


# ---- a load killed half way ----

def store_leftovers(root):
    """Anything in the store that is not a finished blob, layer or index file."""
    odd = []
    for dirpath, dirnames, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for f in files:
            p = os.path.normpath(os.path.join(rel, f))
            if rel == "blobs/sha256" and len(f) == 64:
                continue
            if p in ("images.json", "lock", "gc.lock"):
                continue
            if rel == "layers/sha256" and f.endswith(".lock"):
                continue
            if rel.startswith("layers/sha256/") or rel.endswith("-run") or "containers" in rel:
                continue
            odd.append(p)
        for dn in dirnames:
            if dn.endswith(".partial") or dn.startswith("."):
                odd.append(os.path.join(rel, dn))
    return odd


def test_load_killed(isola, images, tmp_path):
    # A 200 MiB layer of random bytes, first in the archive, so the kill lands inside it.
    big = oci.make_layer({"big": os.urandom(200 << 20)})
    img = images["img"]
    layers = images["layers"] + [big]
    cfg = json.loads(img["config"])
    cfg["rootfs"]["diff_ids"].append(oci.digest_of(big))
    config = json.dumps(cfg).encode()
    img2 = dict(img, config=config, config_digest=oci.digest_of(config))
    entries = docker_entries(img2, layers, ["big:1"])
    entries.sort(key=lambda e: e[0] != oci.digest_of(big)[7:] + "/layer.tar")
    tar = tar_entries(entries, str(tmp_path / "big.tar"))
    del big, entries
    isola.ok("images")  # the store exists
    p = subprocess.Popen(isola.cmd("load", "-i", tar), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    # Wait until it writes a blob: an unnamed O_TMPFILE in blobs/sha256.
    deadline, writing = time.time() + 10, False
    while time.time() < deadline and not writing and p.poll() is None:
        try:
            for fd in os.listdir(f"/proc/{p.pid}/fd"):
                t = os.readlink(f"/proc/{p.pid}/fd/{fd}")
                writing |= t.startswith(isola.blob_dir() + "/#")
        except OSError:
            pass
        time.sleep(0.005)
    assert writing and p.poll() is None, "the load finished or never wrote a blob"
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    assert "docker.io/library/big:1" not in isola.images()
    assert store_leftovers(isola.root) == []
    for b in isola.blobs():
        with open(os.path.join(isola.blob_dir(), b), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == b
    r = isola.ok("load", "-i", tar, timeout=300)
    assert r.stdout == "Loaded image: big:1\n"
    assert isola.images()["docker.io/library/big:1"]["id"] == img2["config_digest"]
    assert store_leftovers(isola.root) == []


def test_concurrent_loads_of_one_archive(isola, images, tmp_path):
    """Four loads of the same image at once: blobs are linked once by digest, names written
    under the store lock; every load succeeds and the store holds one image."""
    procs = [subprocess.Popen(isola.cmd("load", "-i", images["multi"], "--name", "same:1"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert list(isola.images()) == ["docker.io/library/same:1"]
    for b in isola.blobs():
        with open(os.path.join(isola.blob_dir(), b), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == b
    assert isola.run_cat("same:1", "/etc/keep").returncode == 0
