"""isola pull against real registries on loopback (docker-registry 2.8, anonymous and with JWT
token auth) and against a hostile fake one: by tag, by digest, from an index, with credentials,
again (a no-op), and the failures: unknown names, a registry that is down, corrupted and
oversized blobs, a pull killed half way."""
import base64
import json
import os
import signal
import socket
import subprocess
import time

import pytest

import oci_builder as oci
from conftest import BUILDS, TOP
from registry import (USERS, fake_registry_factory, registry,  # noqa: F401 (fixtures)
                      token_registry)

HELLO = "hello from the registry"


def isola_path(build):
    return os.path.join(TOP, build, "cli", "isola")


class Isola:
    def __init__(self, build, tmp):
        self.path = isola_path(build)
        self.root = str(tmp / "store")
        self.run_root = str(tmp / "run")
        # No auth file of the host's is read: an empty one unless a test passes --authfile.
        self.authfile = str(tmp / "no-auth.json")
        with open(self.authfile, "w") as f:
            f.write('{"auths": {}}')
        self.env = dict(os.environ, HOME=str(tmp), REGISTRY_AUTH_FILE=self.authfile)

    def cmd(self, *args):
        return [self.path, "--root", self.root, "--run-root", self.run_root, *map(str, args)]

    def __call__(self, *args, timeout=120):
        return subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout,
                              env=self.env, stdin=subprocess.DEVNULL)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, f"isola {args} failed ({r.returncode}): {r.stderr}"
        return r

    def blobs(self):
        d = os.path.join(self.root, "blobs", "sha256")
        return {"sha256:" + n for n in os.listdir(d)} if os.path.isdir(d) else set()

    def images(self):
        """{full name: manifest digest} of every image in the store."""
        r = self.ok("images", "--format", "json")
        return {i["name"]: i["digest"] for i in json.loads(r.stdout)}


@pytest.fixture(params=BUILDS)
def isola(request, tmp_path):
    if not os.path.exists(isola_path(request.param)):
        pytest.skip(f"{request.param}/cli/isola is not built")
    return Isola(request.param, tmp_path)


def one_line_error(r):
    assert r.returncode > 0, f"exit status {r.returncode}: {r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got: {r.stderr!r}"
    return lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The test images as OCI layouts, with their digests."""
    d = tmp_path_factory.mktemp("images")
    busy = oci.write_oci_layout(str(d / "busybox"), [oci.make_layer(oci.busybox_files())],
                                {"Cmd": ["echo", HELLO]}, "latest", gzip=True)
    # Two layers: the second adds a file on top.
    two = oci.write_oci_layout(str(d / "two"), [
        oci.make_layer(oci.busybox_files()),
        oci.make_layer({"etc": oci.Dir(), "etc/motd": b"second layer\n"})],
        {"Cmd": ["cat", "/etc/motd"]}, "latest", gzip=True)
    multi = oci.write_oci_index(str(d / "multi"), [
        dict(layers=[oci.make_layer(oci.busybox_files({"platform": b"amd64\n"}))], arch="amd64",
             config={"Cmd": ["cat", "/platform"]}),
        dict(layers=[oci.make_layer({"platform": b"arm64\n"})], arch="arm64",
             config={"Cmd": ["cat", "/platform"]}),
    ], "latest", gzip=True)
    return {"dir": d, "busybox": busy, "two": two, "multi": multi}


@pytest.fixture(scope="module")
def pushed(registry, images):  # noqa: F811
    d = images["dir"]
    return {
        "busybox": registry.push(str(d / "busybox"), "latest", "test/busybox:latest"),
        "two": registry.push(str(d / "two"), "latest", "test/two:v1"),
        "multi": registry.push(str(d / "multi"), "latest", "test/multi:latest",
                               all_platforms=True),
    }


def manifest_digest_of(isola, name):
    """The manifest digest the store names `name` with, via `isola inspect`."""
    doc = json.loads(isola.ok("inspect", name).stdout)
    return (doc[0] if isinstance(doc, list) else doc)["Digest"]


def test_pull_by_tag(isola, pushed, images):
    img = images["busybox"]
    r = isola.ok("pull", pushed["busybox"])
    assert f"Digest: {img['manifest_digest']}" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == pushed["busybox"]
    # Without a terminal: one line per finished blob.
    assert f"{img['layer_digests'][0][:19]}: downloaded" in r.stderr
    # Every blob is stored under its digest, nothing else.
    assert isola.blobs() == {img["manifest_digest"], img["config_digest"], *img["layer_digests"]}
    assert isola.images() == {pushed["busybox"]: img["manifest_digest"]}
    assert manifest_digest_of(isola, pushed["busybox"]) == img["manifest_digest"]
    assert isola.ok("run", "--rm", pushed["busybox"]).stdout == HELLO + "\n"


def test_pull_quiet_prints_only_the_digest(isola, pushed, images):
    r = isola.ok("pull", "-q", pushed["two"])
    assert r.stdout == images["two"]["manifest_digest"] + "\n"
    assert r.stderr == ""
    assert len(images["two"]["layer_digests"]) == 2
    assert set(images["two"]["layer_digests"]) <= isola.blobs()


def test_pull_by_digest(isola, pushed, images, registry):  # noqa: F811
    img = images["busybox"]
    ref = f"{registry.host}/test/busybox@{img['manifest_digest']}"
    r = isola.ok("pull", ref)
    assert f"Digest: {img['manifest_digest']}" in r.stdout
    assert isola.images() == {ref: img["manifest_digest"]}


def test_pull_by_unknown_digest_fails(isola, pushed, registry):  # noqa: F811
    ref = f"{registry.host}/test/busybox@sha256:{'0' * 64}"
    msg = one_line_error(isola("pull", ref))
    assert ref in msg and "HTTP 404" in msg, msg
    assert isola.blobs() == set()


def test_pull_index_picks_linux_amd64(isola, pushed, images):
    multi = images["multi"]
    amd64 = next(i for i in multi["images"] if i["arch"] == "amd64")
    arm64 = next(i for i in multi["images"] if i["arch"] == "arm64")
    r = isola.ok("pull", pushed["multi"])
    assert f"Digest: {amd64['manifest_digest']}" in r.stdout
    blobs = isola.blobs()
    assert amd64["manifest_digest"] in blobs and amd64["layer_digests"][0] in blobs
    assert arm64["manifest_digest"] not in blobs and arm64["layer_digests"][0] not in blobs
    assert multi["index_digest"] not in blobs
    assert manifest_digest_of(isola, pushed["multi"]) == amd64["manifest_digest"]
    run = isola.ok("run", "--rm", pushed["multi"])
    assert run.stdout == "amd64\n"


def test_pull_platform_option(isola, pushed, images):
    arm64 = next(i for i in images["multi"]["images"] if i["arch"] == "arm64")
    r = isola.ok("pull", "--platform", "linux/arm64", pushed["multi"])
    assert f"Digest: {arm64['manifest_digest']}" in r.stdout
    msg = one_line_error(isola("pull", "--platform", "linux/s390x", pushed["multi"]))
    assert "s390x" in msg and "amd64" in msg, msg  # names what is offered
    msg = one_line_error(isola("pull", "--platform", "linux", pushed["multi"]))
    assert "--platform" in msg


def test_second_pull_is_a_no_op(isola, pushed, images):
    img = images["two"]
    isola.ok("pull", pushed["two"])
    paths = [os.path.join(isola.root, "blobs", "sha256", d[7:]) for d in img["layer_digests"]]
    before = [(os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in paths]
    r = isola.ok("pull", pushed["two"])
    for d in img["layer_digests"]:
        assert f"{d[:19]}: already exists" in r.stderr, r.stderr
    assert "downloaded" not in r.stderr
    assert [(os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in paths] == before
    assert f"Digest: {img['manifest_digest']}" in r.stdout
    assert isola.ok("run", "--rm", pushed["two"]).stdout == "second layer\n"


def test_pull_unknown_repository(isola, registry):  # noqa: F811
    ref = f"{registry.host}/no/such/repo:latest"
    msg = one_line_error(isola("pull", ref))
    assert f'pull "{ref}"' in msg and "HTTP 404" in msg and "unknown" in msg, msg


def test_pull_unknown_tag(isola, pushed, registry):  # noqa: F811
    ref = f"{registry.host}/test/busybox:nope"
    msg = one_line_error(isola("pull", ref))
    assert f'pull "{ref}"' in msg and "manifest unknown (HTTP 404)" in msg, msg


def test_pull_registry_down(isola):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    msg = one_line_error(isola("pull", f"127.0.0.1:{port}/x:latest"))
    assert f"127.0.0.1:{port}" in msg and "cannot connect" in msg and "refused" in msg, msg


def test_pull_malformed_reference(isola):
    msg = one_line_error(isola("pull", "UPPER/Case:!!"))
    assert "UPPER/Case:!!" in msg


# ---- token auth ----

@pytest.fixture(scope="module")
def token_pushed(token_registry, images):  # noqa: F811
    d = str(images["dir"] / "busybox")
    return {"public": token_registry.push(d, "latest", "pub/busybox:latest"),
            "private": token_registry.push(d, "latest", "private/busybox:latest")}


def write_authfile(path, host, user, password):
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    with open(path, "w") as f:
        json.dump({"auths": {host: {"auth": auth}, "other.example:5000": {"auth": "eDp5"}}}, f)
    return path


def test_pull_with_anonymous_token(isola, token_registry, token_pushed, images):  # noqa: F811
    seen = len(token_registry.token_server.requests)
    r = isola.ok("pull", token_pushed["public"])
    assert f"Digest: {images['busybox']['manifest_digest']}" in r.stdout
    ours = token_registry.token_server.requests[seen:]
    assert ours and all(q["authorization"] == "" for q in ours), ours
    assert all("scope=repository%3Apub%2Fbusybox%3Apull" in q["path"] for q in ours), ours


def test_pull_private_needs_credentials(isola, token_registry, token_pushed):  # noqa: F811
    msg = one_line_error(isola("pull", token_pushed["private"]))
    assert "unauthorized" in msg and "--authfile" in msg, msg
    assert isola.blobs() == set()


def test_pull_with_credentials_from_authfile(isola, tmp_path, token_registry,  # noqa: F811
                                             token_pushed, images):
    user, password = next(iter(USERS.items()))
    af = write_authfile(str(tmp_path / "auth.json"), token_registry.host, user, password)
    seen = len(token_registry.token_server.requests)
    r = isola.ok("pull", "--authfile", af, token_pushed["private"])
    assert f"Digest: {images['busybox']['manifest_digest']}" in r.stdout
    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    assert [q["authorization"] for q in token_registry.token_server.requests[seen:]] == [basic]


def test_pull_with_credentials_from_env(isola, tmp_path, token_registry,  # noqa: F811
                                        token_pushed):
    user, password = next(iter(USERS.items()))
    isola.env["REGISTRY_AUTH_FILE"] = write_authfile(str(tmp_path / "env-auth.json"),
                                                     token_registry.host, user, password)
    isola.ok("pull", token_pushed["private"])


def test_pull_with_wrong_credentials(isola, tmp_path, token_registry, token_pushed):  # noqa: F811
    af = write_authfile(str(tmp_path / "auth.json"), token_registry.host, "alice", "wrong")
    msg = one_line_error(isola("pull", "--authfile", af, token_pushed["private"]))
    assert "refused the credentials" in msg, msg


def test_pull_missing_authfile(isola, token_registry, token_pushed):  # noqa: F811
    msg = one_line_error(isola("pull", "--authfile", "/nonexistent/auth.json",
                               token_pushed["public"]))
    assert "/nonexistent/auth.json" in msg, msg


# ---- a hostile registry ----

def test_corrupted_layer_is_refused(isola, images, fake_registry_factory):  # noqa: F811
    img = images["busybox"]
    fake = fake_registry_factory(str(images["dir"] / "busybox"),
                                 {"latest": img["manifest_digest"]})
    fake.corrupt.add(img["layer_digests"][0])
    ref = f"{fake.host}/evil:latest"
    msg = one_line_error(isola("pull", ref))
    assert "digest mismatch" in msg and img["layer_digests"][0] in msg, msg
    bad = fake.blob(img["layer_digests"][0])
    bad = oci.digest_of(bytes([bad[0] ^ 0xff]) + bad[1:])
    assert bad in msg, msg  # both digests named
    assert isola.blobs() == set(), "a failed pull left blobs behind"
    assert isola.images() == {}
    # Nothing left in the store's directories either (no temporary files of ours).
    left = [os.path.join(d, f) for d, _, fs in os.walk(isola.root) for f in fs]
    assert all(not p.startswith(os.path.join(isola.root, "blobs")) for p in left), left


def test_corrupted_config_is_refused(isola, images, fake_registry_factory):  # noqa: F811
    img = images["busybox"]
    fake = fake_registry_factory(str(images["dir"] / "busybox"),
                                 {"latest": img["manifest_digest"]})
    fake.corrupt.add(img["config_digest"])
    msg = one_line_error(isola("pull", f"{fake.host}/evil:latest"))
    assert "digest mismatch" in msg and img["config_digest"] in msg, msg
    assert isola.blobs() == set()
    # The config was refused before any layer was requested.
    assert not any(img["layer_digests"][0] in p for p in fake.requests)


def test_oversized_blob_is_cut_off(isola, images, fake_registry_factory):  # noqa: F811
    img = images["busybox"]
    fake = fake_registry_factory(str(images["dir"] / "busybox"),
                                 {"latest": img["manifest_digest"]})
    fake.extra[img["layer_digests"][0]] = b"x" * (1 << 20)
    msg = one_line_error(isola("pull", f"{fake.host}/evil:latest"))
    assert "larger than" in msg and img["layer_digests"][0] in msg, msg
    assert isola.blobs() == set()


def test_tampered_manifest_by_digest_is_refused(isola, images, fake_registry_factory):  # noqa: F811
    img, two = images["busybox"], images["two"]
    # The fake answers a request for busybox's manifest digest with another manifest.
    layout = str(images["dir"] / "two")
    fake = fake_registry_factory(layout, {img["manifest_digest"]: two["manifest_digest"]})
    msg = one_line_error(isola("pull", f"{fake.host}/evil@{img['manifest_digest']}"))
    assert "digest mismatch" in msg and img["manifest_digest"] in msg, msg
    assert two["manifest_digest"] in msg
    assert isola.blobs() == set()


def test_basic_auth_not_sent_to_redirect_target(isola, tmp_path, images,
                                                fake_registry_factory):  # noqa: F811
    img = images["busybox"]
    layout = str(images["dir"] / "busybox")
    cdn = fake_registry_factory(layout, {})
    fake = fake_registry_factory(layout, {"latest": img["manifest_digest"]})
    fake.basic = ("bob", "secret")
    fake.redirect_blobs = f"http://{cdn.host}"
    af = write_authfile(str(tmp_path / "auth.json"), fake.host, "bob", "secret")
    r = isola.ok("pull", "--authfile", af, f"{fake.host}/private:latest")
    assert f"Digest: {img['manifest_digest']}" in r.stdout
    assert len(cdn.requests) >= 2  # config and layer came from the other host
    assert cdn.authorizations == [None] * len(cdn.authorizations), cdn.authorizations
    # The challenge's realm had a comma inside quotes: it was parsed, credentials were used.
    assert fake.authorizations[-1] and fake.authorizations[-1].startswith("Basic ")


def test_basic_auth_without_credentials(isola, images, fake_registry_factory):  # noqa: F811
    img = images["busybox"]
    fake = fake_registry_factory(str(images["dir"] / "busybox"),
                                 {"latest": img["manifest_digest"]})
    fake.basic = ("bob", "secret")
    msg = one_line_error(isola("pull", f"{fake.host}/private:latest"))
    assert "unauthorized" in msg and "--authfile" in msg, msg


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    payload = os.urandom(64 << 20)
    layer = oci.make_layer(oci.busybox_files({"big": payload}))
    img = oci.write_oci_layout(str(d / "big"), [layer], {"Cmd": ["echo", HELLO]}, "latest")
    img["layout"] = str(d / "big")
    return img


def tmpfile_sizes(pid):
    """Sizes of the unnamed (O_TMPFILE) blob files the process holds open."""
    sizes = []
    fd_dir = f"/proc/{pid}/fd"
    try:
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
                if "/blobs/sha256/" in target:
                    sizes.append(os.stat(os.path.join(fd_dir, fd)).st_size)
            except OSError:
                pass
    except OSError:
        pass
    return sizes


def test_interrupted_pull_leaves_nothing(isola, big_image, fake_registry_factory):  # noqa: F811
    img = big_image
    fake = fake_registry_factory(img["layout"], {"latest": img["manifest_digest"]})
    layer = img["layer_digests"][0]
    fake.stall_at[layer] = 24 << 20
    ref = f"{fake.host}/big:latest"
    p = subprocess.Popen(isola.cmd("pull", ref), env=isola.env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert fake.stalled.wait(60), "the download never started"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                s >= (16 << 20) for s in tmpfile_sizes(p.pid)):
            time.sleep(0.02)
        assert any(s >= (16 << 20) for s in tmpfile_sizes(p.pid)), "no partial blob seen"
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    fake.release.set()
    # Killed half way: no image, no blob (the partial layer was an unnamed file).
    assert isola.images() == {}
    assert isola.blobs() == set()
    # The next pull starts again and succeeds.
    fake.stall_at.clear()
    r = isola.ok("pull", ref)
    assert f"Digest: {img['manifest_digest']}" in r.stdout
    assert isola.blobs() == {img["manifest_digest"], img["config_digest"], layer}
    assert isola.images() == {ref: img["manifest_digest"]}
    run = isola.ok("run", "--rm", ref)
    assert run.stdout == HELLO + "\n"


def test_pull_progress_on_a_terminal(isola, pushed, images):
    from client_helpers import run_in_pty
    rc, out = run_in_pty(isola.cmd("pull", pushed["busybox"]), env=isola.env, timeout=60)
    assert rc == 0, out
    text = out.decode(errors="replace")
    layer = images["busybox"]["layer_digests"][0][:19]
    assert f"{layer}: downloaded" in text and "\x1b[1A" in text  # redrawn in place
