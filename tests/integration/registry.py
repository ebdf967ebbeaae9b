"""Registries on loopback for the pull tests.

- registry / token_registry fixtures: Debian's docker-registry (distribution 2.8) with filesystem
  storage in a temporary directory, the second one with token auth answered by a small JWT
  token server (RS256, the signing certificate in the header's x5c, trusted through
  rootcertbundle). Images go in with skopeo (Registry.push).
- FakeRegistry: a hostile registry in Python for what a real one never does (corrupted or
  oversized blobs, a download that stalls), serving the blobs of an OCI layout directory.

Every server is stopped at the end of its scope; nothing is left running.
"""
import base64
import datetime
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"
TOKEN_SERVICE = "isola-test"
TOKEN_ISSUER = "isola-test-issuer"
USERS = {"alice": "wonderland"}
# Repositories under this prefix can be pulled only with credentials; others anonymously.
PRIVATE_PREFIX = "private/"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ThreadedServer:
    """A ThreadingHTTPServer on 127.0.0.1 in a daemon thread."""

    def __init__(self, handler):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


class QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, doc, headers=()):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


# ---- the token server ----

class TokenIssuer:
    """An RSA key and its self-signed certificate (the registry's rootcertbundle)."""

    def __init__(self, directory):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "isola test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=2))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = os.path.join(directory, "token-cert.pem")
        with open(self.cert_path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        self.x5c = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()

    def token(self, subject, access):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": TOKEN_ISSUER, "sub": subject, "aud": TOKEN_SERVICE, "exp": now + 600,
                  "nbf": now - 60, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(sig)


class TokenHandler(QuietHandler):
    def do_GET(self):
        server = self.server.owner
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        user = None
        auth = self.headers.get("Authorization", "")
        server.requests.append({"path": self.path, "authorization": auth})
        if auth.startswith("Basic "):
            try:
                u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                u, p = "", None
            if USERS.get(u) != p:
                return self.send_json(401, {"details": "bad credentials"},
                                      [("WWW-Authenticate", 'Basic realm="isola-test"')])
            user = u
        if url.path != "/token" or q.get("service") != [TOKEN_SERVICE]:
            return self.send_json(400, {"details": "bad request"})
        access = []
        for scope in q.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            if kind != "repository" or not name:
                continue
            if user is None and "push" in wanted:
                # Pushing always needs credentials: ask for them as a real token server does.
                return self.send_json(401, {"details": "push needs credentials"},
                                      [("WWW-Authenticate", 'Basic realm="isola-test"')])
            if user is None and name.startswith(PRIVATE_PREFIX):
                wanted = []  # anonymous: a token that grants nothing here (as Docker Hub does)
            access.append({"type": "repository", "name": name, "actions": wanted})
        token = server.issuer.token(user or "", access)
        self.send_json(200, {"token": token, "access_token": token, "expires_in": 600})


class TokenServer(ThreadedServer):
    def __init__(self, directory):
        self.issuer = TokenIssuer(directory)
        self.requests = []
        super().__init__(TokenHandler)

    @property
    def realm(self):
        return f"http://127.0.0.1:{self.port}/token"


# ---- the real registry ----

class Registry:
    """docker-registry serving 127.0.0.1:PORT with storage under `directory`."""

    def __init__(self, directory, token_server=None):
        self.dir = directory
        self.token_server = token_server
        os.makedirs(directory, exist_ok=True)
        self.proc = None
        for _ in range(5):  # another process may take the free port before the registry does
            self.port = free_port()
            self.host = f"127.0.0.1:{self.port}"
            self._write_config()
            self.log = open(os.path.join(directory, "registry.log"), "wb")
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", self.config_path],
                                         stdin=subprocess.DEVNULL, stdout=self.log,
                                         stderr=subprocess.STDOUT)
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"docker-registry did not start; see {directory}/registry.log")

    def _write_config(self):
        self.config_path = os.path.join(self.dir, "config.yml")
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.dir}/storage",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {uuid.uuid4().hex}",
        ]
        if self.token_server:
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.token_server.realm}",
                f"    service: {TOKEN_SERVICE}",
                f"    issuer: {TOKEN_ISSUER}",
                f"    rootcertbundle: {self.token_server.issuer.cert_path}",
            ]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _wait_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return True
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def push(self, layout, ref_name, name, all_platforms=False):
        """skopeo copy oci:LAYOUT:REF docker://HOST/NAME; returns NAME in full."""
        dest = f"{self.host}/{name}"
        cmd = ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
               "--preserve-digests"]
        if all_platforms:
            cmd.append("--all")
        if self.token_server:
            user, password = next(iter(USERS.items()))
            cmd += ["--dest-creds", f"{user}:{password}"]
        cmd += [f"oci:{layout}:{ref_name}", f"docker://{dest}"]
        # The host's own auth files stay out of it.
        authfile = os.path.join(self.dir, "skopeo-auth.json")
        with open(authfile, "w") as f:
            f.write('{"auths": {}}')
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, REGISTRY_AUTH_FILE=authfile))
        assert r.returncode == 0, f"skopeo push to {dest} failed: {r.stderr}"
        return dest

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.log.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip("docker-registry is not installed (scripts/deps.sh)")
    r = Registry(str(tmp_path_factory.mktemp("registry")))
    yield r
    r.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory):
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip("docker-registry is not installed (scripts/deps.sh)")
    d = str(tmp_path_factory.mktemp("token-registry"))
    ts = TokenServer(d)
    r = Registry(d, token_server=ts)
    yield r
    r.stop()
    ts.stop()


# ---- a hostile registry ----

class FakeHandler(QuietHandler):
    def do_GET(self):
        fake = self.server.owner
        auth = self.headers.get("Authorization")
        fake.requests.append(self.path)
        fake.authorizations.append(auth)
        if fake.basic and auth != "Basic " + base64.b64encode(
                ":".join(fake.basic).encode()).decode():
            return self.send_json(401, {"errors": [{"code": "UNAUTHORIZED",
                                                    "message": "authentication required"}]},
                                  [("WWW-Authenticate", 'Basic realm="fake, with a comma"')])
        parts = urllib.parse.urlparse(self.path).path.split("/")
        # /v2/<repo...>/(manifests|blobs)/<ref>
        if self.path in ("/v2/", "/v2"):
            return self.send_json(200, {})
        if len(parts) < 5 or parts[1] != "v2" or parts[-2] not in ("manifests", "blobs"):
            return self.send_json(404, {"errors": [{"code": "NOT_FOUND", "message": "no route"}]})
        kind, ref = parts[-2], parts[-1]
        if kind == "manifests":
            digest = fake.tags.get(ref, ref)
            data = fake.blob(digest)
            if data is None:
                return self.send_json(404, {"errors": [{"code": "MANIFEST_UNKNOWN",
                                                        "message": "manifest unknown"}]})
            self.send_response(200)
            self.send_header("Content-Type", json.loads(data).get("mediaType", ""))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if fake.redirect_blobs:
            self.send_response(307)
            self.send_header("Location", f"{fake.redirect_blobs}/v2/elsewhere/blobs/{ref}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = fake.blob(ref)
        if data is None:
            return self.send_json(404, {"errors": [{"code": "BLOB_UNKNOWN",
                                                    "message": "blob unknown to registry"}]})
        if ref in fake.corrupt:
            data = bytes([data[0] ^ 0xff]) + data[1:]
        data = data + fake.extra.get(ref, b"")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        stall = fake.stall_at.get(ref)
        if stall is not None:
            self.wfile.write(data[:stall])
            self.wfile.flush()
            fake.stalled.set()
            fake.release.wait(120)
            self.wfile.write(data[stall:])
            return
        self.wfile.write(data)


class FakeRegistry(ThreadedServer):
    """Serves the blobs of OCI layout `layout` under any repository name; `tags` maps tags to
    manifest digests. Misbehaviour per blob digest: corrupt (first byte flipped), extra (bytes
    appended past the declared size), stall_at (send that many bytes, set `stalled`, then wait
    for `release`). basic=(user, password) demands Basic auth; redirect_blobs="http://HOST:PORT"
    answers blob requests with a redirect there. `requests` and `authorizations` record what
    came in."""

    def __init__(self, layout, tags):
        self.layout = layout
        self.tags = dict(tags)
        self.corrupt = set()
        self.extra = {}
        self.stall_at = {}
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.requests = []
        self.authorizations = []
        self.basic = None
        self.redirect_blobs = None
        super().__init__(FakeHandler)
        self.host = f"127.0.0.1:{self.port}"

    def blob(self, digest):
        if not digest.startswith("sha256:") or "/" in digest or len(digest) != 71:
            return None
        p = os.path.join(self.layout, "blobs", "sha256", digest[7:])
        if not os.path.exists(p):
            return None
        with open(p, "rb") as f:
            return f.read()

    def stop(self):
        self.release.set()
        super().stop()


@pytest.fixture
def fake_registry_factory():
    made = []

    def make(layout, tags):
        f = FakeRegistry(layout, tags)
        made.append(f)
        return f
    yield make
    for f in made:
        f.stop()
