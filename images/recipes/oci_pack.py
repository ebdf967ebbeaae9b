#!/usr/bin/env python3
"""Pack a root file system directory into an oci-archive (a tar of an OCI image layout) with
one layer, deterministically: the same tree and arguments give the same bytes.

  oci_pack.py ROOTFS OUT.tar --name docker.io/library/busybox:latest --cmd sh \
      [--env K=V ...] [--epoch N] [--owner 0:0]

How the bytes are pinned down:
  * entries in sorted path order (a directory before its contents), no xattrs, no atime/ctime,
    numeric owners only (uname/gname empty), modes kept as they are (setuid, sticky);
  * every mtime clamped to --epoch (SOURCE_DATE_EPOCH, default 0);
  * hard links become tar links to the first name in that order; device nodes and fifos are
    kept, sockets are skipped (a layer cannot carry them);
  * gzip with no name and mtime 0; JSON written with sorted keys and no spaces; the archive's
    own entries are 0:0 with the same mtime.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def rfc3339(epoch):
    import datetime
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def walk_sorted(root):
    """Relative paths under root, sorted, each directory before what it holds."""
    out = []

    def visit(rel):
        full = os.path.join(root, rel) if rel else root
        for name in sorted(os.listdir(full)):
            r = os.path.join(rel, name) if rel else name
            out.append(r)
            st = os.lstat(os.path.join(root, r))
            if stat.S_ISDIR(st.st_mode):
                visit(r)

    visit("")
    return out


class HashingWriter(io.RawIOBase):
    """Hashes what passes through on its way to `inner` (the diff_id of the uncompressed tar)."""

    def __init__(self, inner):
        self.inner = inner
        self.sha = hashlib.sha256()

    def writable(self):
        return True

    def write(self, b):
        self.sha.update(b)
        self.inner.write(b)
        return len(b)


def tar_info(root, rel, epoch, owner, inodes):
    full = os.path.join(root, rel)
    st = os.lstat(full)
    ti = tarfile.TarInfo(rel)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = owner if owner else (st.st_uid, st.st_gid)
    ti.uname = ti.gname = ""
    ti.mtime = min(int(st.st_mtime), epoch)
    m = st.st_mode
    if stat.S_ISREG(m):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in inodes:
            ti.type = tarfile.LNKTYPE
            ti.linkname = inodes[key]
        else:
            if st.st_nlink > 1:
                inodes[key] = rel
            ti.type = tarfile.REGTYPE
            ti.size = st.st_size
    elif stat.S_ISDIR(m):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(m):
        ti.type = tarfile.SYMTYPE
        ti.linkname = os.readlink(full)
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(m) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(m):
        ti.type = tarfile.FIFOTYPE
    else:
        return None  # sockets
    return ti


def write_layer(root, out, epoch, owner):
    """Write the gzip'd layer to the open file `out`; return its diff_id (uncompressed sha256)."""
    gz = gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0)
    hw = HashingWriter(gz)
    inodes = {}
    with tarfile.open(fileobj=hw, mode="w|", format=tarfile.PAX_FORMAT) as t:
        for rel in walk_sorted(root):
            ti = tar_info(root, rel, epoch, owner, inodes)
            if ti is None:
                continue
            if ti.type == tarfile.REGTYPE:
                with open(os.path.join(root, rel), "rb") as f:
                    t.addfile(ti, f)
            else:
                t.addfile(ti)
    gz.close()
    return "sha256:" + hw.sha.hexdigest()


def doc(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def pack(root, out_path, name, cmd, env, epoch, owner, entrypoint=None, workdir=None):
    tmp = tempfile.mkdtemp(prefix="oci-pack.", dir=os.path.dirname(os.path.abspath(out_path)))
    try:
        layer_path = os.path.join(tmp, "layer")
        with open(layer_path, "wb") as f:
            diff_id = write_layer(root, f, epoch, owner)
        layer_digest = sha_file(layer_path)
        layer_size = os.path.getsize(layer_path)

        cfg = {"Env": env, "Cmd": cmd}
        if entrypoint:
            cfg["Entrypoint"] = entrypoint
        if workdir:
            cfg["WorkingDir"] = workdir
        config = doc({
            "architecture": "amd64",
            "os": "linux",
            "created": rfc3339(epoch),
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": rfc3339(epoch), "created_by": "isola images/recipes"}],
        })
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest = doc({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": MT_LAYER, "digest": layer_digest, "size": layer_size}],
        })
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
        index = doc({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": MT_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }],
        })

        def entry(path, size=0, kind=tarfile.REGTYPE):
            ti = tarfile.TarInfo(path)
            ti.type = kind
            ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mtime = epoch
            ti.size = size
            return ti

        blobs = sorted([
            (config_digest, io.BytesIO(config), len(config)),
            (manifest_digest, io.BytesIO(manifest), len(manifest)),
            (layer_digest, None, layer_size),
        ])
        part = out_path + ".partial"
        with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as t:
            t.addfile(entry("blobs", kind=tarfile.DIRTYPE))
            t.addfile(entry("blobs/sha256", kind=tarfile.DIRTYPE))
            for digest, data, size in blobs:
                ti = entry("blobs/sha256/" + digest.split(":")[1], size)
                if data is None:
                    with open(layer_path, "rb") as f:
                        t.addfile(ti, f)
                else:
                    t.addfile(ti, data)
            for fname, data in (("index.json", index),
                                ("oci-layout", doc({"imageLayoutVersion": "1.0.0"}))):
                t.addfile(entry(fname, len(data)), io.BytesIO(data))
        os.rename(part, out_path)
        return manifest_digest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rootfs")
    ap.add_argument("out")
    ap.add_argument("--name", required=True, help="full reference, registry/repo:tag")
    ap.add_argument("--cmd", action="append", default=[], help="one argument of Cmd (repeat)")
    ap.add_argument("--entrypoint", action="append", default=[])
    ap.add_argument("--workdir")
    ap.add_argument("--env", action="append", default=[], help="K=V (repeat)")
    ap.add_argument("--epoch", type=int,
                    default=int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0))
    ap.add_argument("--owner", help="UID:GID for every entry (default: as on disk)")
    a = ap.parse_args()
    owner = tuple(int(x) for x in a.owner.split(":")) if a.owner else None
    if not os.path.isdir(a.rootfs):
        sys.exit(f"oci_pack: {a.rootfs}: not a directory")
    digest = pack(a.rootfs, a.out, a.name, a.cmd, a.env, a.epoch, owner,
                  a.entrypoint or None, a.workdir)
    print(f"oci_pack: {a.out}: {a.name} manifest {digest}", file=sys.stderr)


if __name__ == "__main__":
    main()
