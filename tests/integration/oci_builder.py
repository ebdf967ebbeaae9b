"""Build OCI images at test time: layer tars, configs, manifests, indexes and OCI layout
directories, in pure Python (deterministic: fixed mtimes and owners, so the same input gives
the same digests).

    layer = make_layer(busybox_files())
    img = write_oci_layout(d, [layer], {"Cmd": ["sh"]}, "latest", gzip=True)
    img["manifest_digest"], img["config_digest"], img["layer_digests"]

A multi-platform image: write_oci_index(d, [dict(layers=[...], arch="amd64"), ...], "latest").
"""
import gzip as gzip_mod
import hashlib
import io
import json
import os
import tarfile

MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"


class Symlink:
    def __init__(self, target):
        self.target = target


class Dir:
    def __init__(self, mode=0o755):
        self.mode = mode


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def busybox_files(extra=None):
    """/bin/busybox (busybox-static) and the applets the tests use, as make_layer() input."""
    with open("/bin/busybox", "rb") as f:
        bb = f.read()
    files = {"bin": Dir(), "bin/busybox": (bb, 0o755), "tmp": Dir(0o1777)}
    for applet in ("sh", "echo", "true", "false", "cat", "ls", "sleep", "env", "id"):
        files["bin/" + applet] = Symlink("busybox")
    files.update(extra or {})
    return files


def make_layer(files, gzip=False):
    """A tar of `files` ({path: bytes | (bytes, mode) | Symlink | Dir}), entries in path order;
    gzip-compressed when asked. Returns the bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            v = files[path]
            ti = tarfile.TarInfo(path)
            ti.mtime = 0
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            if isinstance(v, Dir):
                ti.type = tarfile.DIRTYPE
                ti.mode = v.mode
                tar.addfile(ti)
            elif isinstance(v, Symlink):
                ti.type = tarfile.SYMTYPE
                ti.linkname = v.target
                ti.mode = 0o777
                tar.addfile(ti)
            else:
                data, mode = v if isinstance(v, tuple) else (v, 0o644)
                ti.size = len(data)
                ti.mode = mode
                tar.addfile(ti, io.BytesIO(data))
    data = buf.getvalue()
    return gzip_compress(data) if gzip else data


def gzip_compress(data):
    return gzip_mod.compress(data, compresslevel=6, mtime=0)


def _put_blob(layout, data):
    d = digest_of(data)
    p = os.path.join(layout, "blobs", "sha256", d[7:])
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    return d


def _json_bytes(doc):
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def write_image(layout, layers, config=None, gzip=False, os_name="linux", arch="amd64"):
    """Write one image's blobs (layers are uncompressed tars; gzip compresses them) into the
    layout and return its description: manifest bytes and digest, config digest, layer digests
    and sizes, diff_ids. Does not touch index.json."""
    cfg = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
           "Cmd": ["sh"]}
    cfg.update(config or {})
    diff_ids, descs = [], []
    for tar in layers:
        diff_ids.append(digest_of(tar))
        blob = gzip_compress(tar) if gzip else tar
        descs.append({"mediaType": MT_LAYER_GZIP if gzip else MT_LAYER,
                      "digest": _put_blob(layout, blob), "size": len(blob)})
    config_doc = {"architecture": arch, "os": os_name, "config": cfg,
                  "created": "2024-01-01T00:00:00Z",
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_bytes = _json_bytes(config_doc)
    config_digest = _put_blob(layout, config_bytes)
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": config_digest,
                           "size": len(config_bytes)},
                "layers": descs}
    manifest_bytes = _json_bytes(manifest)
    return {"manifest": manifest_bytes, "manifest_digest": _put_blob(layout, manifest_bytes),
            "config": config_bytes, "config_digest": config_digest,
            "layer_digests": [d["digest"] for d in descs],
            "layer_sizes": [d["size"] for d in descs], "diff_ids": diff_ids,
            "os": os_name, "arch": arch}


def _write_index_json(layout, desc):
    os.makedirs(layout, exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [desc]}, f)


def write_oci_layout(layout, layers, config=None, ref_name="latest", gzip=False, arch="amd64"):
    """An OCI layout directory holding one image named ref_name (for skopeo: oci:DIR:REF).
    Returns write_image()'s description."""
    os.makedirs(layout, exist_ok=True)
    img = write_image(layout, layers, config, gzip=gzip, arch=arch)
    _write_index_json(layout, {"mediaType": MT_MANIFEST, "digest": img["manifest_digest"],
                               "size": len(img["manifest"]),
                               "annotations": {"org.opencontainers.image.ref.name": ref_name}})
    return img


def write_oci_index(layout, images, ref_name="latest", gzip=False):
    """An OCI layout whose ref_name is an image index over several platforms; `images` are
    dicts with layers, and optionally config, os, arch. Returns {"index_digest", "images"}
    (copy it with `skopeo copy --all`)."""
    os.makedirs(layout, exist_ok=True)
    written, entries = [], []
    for spec in images:
        img = write_image(layout, spec["layers"], spec.get("config"), gzip=gzip,
                          os_name=spec.get("os", "linux"), arch=spec.get("arch", "amd64"))
        written.append(img)
        entries.append({"mediaType": MT_MANIFEST, "digest": img["manifest_digest"],
                        "size": len(img["manifest"]),
                        "platform": {"os": img["os"], "architecture": img["arch"]}})
    index_bytes = _json_bytes({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries})
    index_digest = _put_blob(layout, index_bytes)
    _write_index_json(layout, {"mediaType": MT_INDEX, "digest": index_digest,
                               "size": len(index_bytes),
                               "annotations": {"org.opencontainers.image.ref.name": ref_name}})
    return {"index": index_bytes, "index_digest": index_digest, "images": written}
