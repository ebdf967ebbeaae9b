"""The layer unpacker (images/unpack.c) through tests/unit/unpack_tool, in each build: what a
layer holds arrives intact (contents, owners, modes, times, xattrs, links, devices, whiteouts in
overlayfs form, under gzip, zstd or no compression, with the right diff_id), and hostile layers
(tests/integration/hostile_tars.py) are refused with an error naming the entry, with nothing
written outside the destination. Needs root (owners, devices, trusted.* xattrs, overlay)."""
import gzip
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile

import pytest

import hostile_tars as H
from conftest import BUILDS, TOP

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(params=BUILDS)
def tool(request):
    exe = os.path.join(TOP, request.param, "tests", "unit", "unpack_tool")
    if not os.path.exists(exe):
        pytest.skip(f"unpack_tool not built in {request.param}")
    return exe


def unpack(tool, layer, dest, *args, check=True, timeout=120, **kw):
    r = subprocess.run([tool, str(layer), str(dest), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, **kw)
    if check:
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    return r


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True,
                          check=True).stdout


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


CAP = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"


def rich_layer():
    """A layer with one of everything, and what each entry must look like afterwards."""
    i = H.info
    return H.tar(
        i("./", tarfile.DIRTYPE, mode=0o751),
        i("etc", tarfile.DIRTYPE, mode=0o755, mtime=1000000000),
        i("etc/hosts", data=b"127.0.0.1 localhost\n", uid=1234, gid=5678, mtime=1111111111),
        i("bin", tarfile.DIRTYPE, mode=0o755),
        i("bin/su", data=b"\x7fELF fake", mode=0o4755, uid=0, gid=0),
        i("bin/sg", data=b"sg", mode=0o2711, uid=3, gid=4),
        i("bin/ping", data=b"ping", mode=0o755,
          pax_headers={"SCHILY.xattr.security.capability": CAP.decode("latin-1"),
                       "SCHILY.xattr.user.note": "hello"}),
        i("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox", uid=7, gid=8, mtime=1200000000),
        i("bin/hard", tarfile.LNKTYPE, linkname="bin/sg"),
        i("tmp", tarfile.DIRTYPE, mode=0o1777),
        i("shared", tarfile.DIRTYPE, mode=0o2775, uid=10, gid=20, mtime=1300000000),
        i("run/fifo", tarfile.FIFOTYPE, mode=0o620),
        i("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        i("dev/loop9", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=9),
        i("deep/a/b/c/file", data=b"deep"),  # parents made on the way
        i("/abs/file", data=b"absolute"),
        i("./dot/./slash//file", data=b"dots"),
        i("caf\u00e9/\u00fcml\u00e4ut", data=b"utf-8 names"),
        i("empty", data=b""),
        i("big", data=bytes(range(256)) * 12000),  # 3 MB: several data blocks
        i("xdir", tarfile.DIRTYPE, mode=0o700, pax_headers={"SCHILY.xattr.user.d": "dirattr"}),
    )


def check_rich(d):
    st = os.lstat(d)
    assert stat.S_IMODE(st.st_mode) == 0o751  # the "./" entry sets the root's mode
    hosts = d / "etc/hosts"
    assert hosts.read_bytes() == b"127.0.0.1 localhost\n"
    st = os.lstat(hosts)
    assert (st.st_uid, st.st_gid, st.st_mtime) == (1234, 5678, 1111111111)
    assert stat.S_IMODE(st.st_mode) == 0o644
    assert os.lstat(d / "etc").st_mtime == 1000000000  # set after its child was written
    st = os.lstat(d / "bin/su")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_uid == 0
    st = os.lstat(d / "bin/sg")
    assert stat.S_IMODE(st.st_mode) == 0o2711 and (st.st_uid, st.st_gid) == (3, 4)
    assert os.getxattr(d / "bin/ping", "security.capability") == CAP
    assert os.getxattr(d / "bin/ping", "user.note") == b"hello"
    assert os.getxattr(d / "xdir", "user.d") == b"dirattr"
    assert stat.S_IMODE(os.lstat(d / "xdir").st_mode) == 0o700
    st = os.lstat(d / "bin/sh")
    assert stat.S_ISLNK(st.st_mode) and os.readlink(d / "bin/sh") == "/bin/busybox"
    assert (st.st_uid, st.st_gid, st.st_mtime) == (7, 8, 1200000000)
    assert os.lstat(d / "bin/hard").st_ino == os.lstat(d / "bin/sg").st_ino
    assert os.lstat(d / "bin/sg").st_nlink == 2
    assert stat.S_IMODE(os.lstat(d / "tmp").st_mode) == 0o1777
    st = os.lstat(d / "shared")
    assert stat.S_IMODE(st.st_mode) == 0o2775 and (st.st_uid, st.st_gid) == (10, 20)
    assert st.st_mtime == 1300000000
    st = os.lstat(d / "run/fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620
    st = os.lstat(d / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(d / "dev/loop9")
    assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (7, 9)
    assert (d / "deep/a/b/c/file").read_bytes() == b"deep"
    assert stat.S_IMODE(os.lstat(d / "deep/a/b").st_mode) == 0o755
    assert (d / "abs/file").read_bytes() == b"absolute"
    assert (d / "dot/slash/file").read_bytes() == b"dots"
    assert (d / "caf\u00e9/\u00fcml\u00e4ut").read_bytes() == b"utf-8 names"
    assert (d / "empty").read_bytes() == b""
    assert (d / "big").read_bytes() == bytes(range(256)) * 12000
    assert os.lstat(d / "big").st_mtime == H.MTIME


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_rich_layer(tool, tmp_path, compression):
    raw = rich_layer()
    blob = {"none": raw, "gzip": gzip.compress(raw, mtime=0), "zstd": zstd(raw)}[compression]
    (tmp_path / "layer").write_bytes(blob)
    (tmp_path / "d").mkdir()
    out = unpack(tool, tmp_path / "layer", tmp_path / "d")
    assert out["diff_id"] == sha(raw)
    assert out["compressed_bytes"] == len(blob)
    assert out["expanded_bytes"] == len(raw)
    assert out["entries"] == 21
    check_rich(tmp_path / "d")


def test_diff_id_covers_trailing_bytes(tool, tmp_path):
    """The diff_id is the sha256 of the whole uncompressed stream, after the tar's end too;
    two concatenated gzip members are one stream."""
    raw = H.tar(H.info("f", data=b"x")) + bytes(8192) + b"trailing junk"
    blob = gzip.compress(raw[:700], mtime=0) + gzip.compress(raw[700:], mtime=0)
    (tmp_path / "layer").write_bytes(blob)
    (tmp_path / "d").mkdir()
    out = unpack(tool, tmp_path / "layer", tmp_path / "d")
    assert out["diff_id"] == sha(raw) and out["expanded_bytes"] == len(raw)
    assert (tmp_path / "d/f").read_bytes() == b"x"


def test_empty_layers(tool, tmp_path):
    for name, blob, raw in [("zero-bytes", b"", b""), ("end-blocks", bytes(1024), bytes(1024)),
                            ("gzip-end-blocks", gzip.compress(bytes(1024), mtime=0),
                             bytes(1024))]:
        (tmp_path / name).write_bytes(blob)
        (tmp_path / (name + ".d")).mkdir()
        out = unpack(tool, tmp_path / name, tmp_path / (name + ".d"))
        assert out["diff_id"] == sha(raw) and out["entries"] == 0, name
        assert os.listdir(tmp_path / (name + ".d")) == []


def test_sparse_file(tool, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.seek(50 << 20)
        f.write(b"middle")
        f.truncate(100 << 20)
    raw_path = tmp_path / "layer.tar"
    subprocess.run(["tar", "--sparse", "--format=pax", "-cf", str(raw_path), "-C", str(src),
                    "sparse"], check=True)
    (tmp_path / "d").mkdir()
    out = unpack(tool, raw_path, tmp_path / "d")
    assert out["diff_id"] == sha(raw_path.read_bytes())
    p = tmp_path / "d/sparse"
    st = os.lstat(p)
    assert st.st_size == 100 << 20
    assert st.st_blocks * 512 < 1 << 20  # the holes stay holes
    with open(p, "rb") as f:
        f.seek((50 << 20) - 2)
        assert f.read(10) == b"\0\0middle\0\0"


def test_later_entries_replace_earlier(tool, tmp_path):
    i = H.info
    raw = H.tar(
        i("a", data=b"file first"), i("a", tarfile.DIRTYPE),  # a file, then a directory
        i("a/child", data=b"c"),
        i("b", tarfile.DIRTYPE), i("b/x", data=b"x"), i("b", data=b"now a file"),  # dir → file
        i("c", tarfile.DIRTYPE, mode=0o700), i("c/keep", data=b"k"),
        i("c", tarfile.DIRTYPE, mode=0o755, uid=5),  # a directory over a directory merges
        i("l", data=b"file"), i("l", tarfile.SYMTYPE, linkname="target"),  # file → symlink
        i("f", data=b"one"), i("f", data=b"two"),
    )
    (tmp_path / "layer").write_bytes(raw)
    d = tmp_path / "d"
    d.mkdir()
    unpack(tool, tmp_path / "layer", d)
    assert (d / "a/child").read_bytes() == b"c"
    assert (d / "b").read_bytes() == b"now a file"
    assert (d / "c/keep").read_bytes() == b"k"
    st = os.lstat(d / "c")
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == 5
    assert os.readlink(d / "l") == "target"
    assert (d / "f").read_bytes() == b"two"


def overlay_layers():
    i = H.info
    lower = H.tar(i("keep", data=b"keep"), i("gone", data=b"gone"),
                  i("dir", tarfile.DIRTYPE), i("dir/old", data=b"old"),
                  i("dir2", tarfile.DIRTYPE), i("dir2/stays", data=b"s"))
    upper = H.tar(i(".wh.gone"), i("dir", tarfile.DIRTYPE), i("dir/.wh..wh..opq"),
                  i("dir/new", data=b"new"), i("dir2/.wh..wh.plnk"),  # AUFS bookkeeping: skipped
                  i("dir2/added", data=b"a"))
    return lower, upper


def test_whiteouts_and_overlay(tool, tmp_path):
    lower, upper = overlay_layers()
    for name, blob in [("l1", lower), ("l2", upper)]:
        (tmp_path / name).mkdir()
        (tmp_path / (name + ".tar")).write_bytes(blob)
        unpack(tool, tmp_path / (name + ".tar"), tmp_path / name)
    l2 = tmp_path / "l2"
    st = os.lstat(l2 / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # overlayfs whiteout
    assert not os.path.lexists(l2 / ".wh.gone")
    assert os.getxattr(l2 / "dir", "trusted.overlay.opaque") == b"y"
    assert not os.path.lexists(l2 / "dir/.wh..wh..opq")
    assert sorted(os.listdir(l2 / "dir2")) == ["added"]
    with pytest.raises(OSError):
        os.getxattr(l2 / "dir2", "trusted.overlay.opaque")

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"ro,lowerdir={l2}:{tmp_path / 'l1'}", str(mnt)], check=True)
    try:
        assert sorted(os.listdir(mnt)) == ["dir", "dir2", "keep"]  # "gone" is deleted
        assert sorted(os.listdir(mnt / "dir")) == ["new"]  # opaque: the lower "old" is hidden
        assert sorted(os.listdir(mnt / "dir2")) == ["added", "stays"]  # not opaque: merged
        assert (mnt / "keep").read_bytes() == b"keep"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_devices_skipped_when_not_root(tool, tmp_path):
    """The device policy: created as root (test_rich_layer), skipped where mknod is refused (an
    unprivileged caller; a container's /dev is a fresh tmpfs anyway); whiteouts still made."""
    i = H.info
    raw = H.tar(i("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, uid=65534, gid=65534),
                i("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, uid=65534, gid=65534),
                i("f", data=b"x", uid=65534, gid=65534), i(".wh.old", uid=65534, gid=65534))
    (tmp_path / "layer").write_bytes(raw)
    # pytest's tmp_path is root's (0700): the unprivileged tool gets its own directory.
    top = tempfile.mkdtemp(prefix="isola-unpack-nobody-")
    try:
        os.chmod(top, 0o755)
        d = pathlib.Path(top) / "d"
        d.mkdir()
        os.chown(d, 65534, 65534)
        with open(tmp_path / "layer", "rb") as layer:
            r = unpack(tool, "-", d, check=False, stdin=layer,
                       preexec_fn=lambda: (os.setgroups([]), os.setgid(65534), os.setuid(65534)))
        check_nobody(r, d)
    finally:
        shutil.rmtree(top)


def check_nobody(r, d):
    assert r.returncode == 0, r.stderr
    assert not os.path.lexists(d / "dev/null") and not os.path.lexists(d / "dev/sda")
    assert (d / "f").read_bytes() == b"x"
    assert stat.S_ISCHR(os.lstat(d / "old").st_mode) and os.lstat(d / "old").st_rdev == 0


def snapshot(path):
    """Everything under `path` (names, types, sizes, modes, mtimes, contents of files)."""
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            data = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else None
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                            st.st_nlink, data)
    return out


@pytest.mark.parametrize("case", H.cases("/OUTSIDE"), ids=lambda c: c.name)
def test_hostile(tool, tmp_path, case):
    work = tmp_path / "work"
    outside = work / "outside"
    dest = work / "dest"
    outside.mkdir(parents=True)
    dest.mkdir()
    (outside / "sentinel").write_bytes(b"sentinel")
    # The cases are generated against the real sentinel directory's absolute path.
    case = next(c for c in H.cases(outside) if c.name == case.name)
    before = snapshot(outside)
    passwd = os.lstat("/etc/passwd")
    layer = tmp_path / "layer"
    layer.write_bytes(case.data)

    r = unpack(tool, layer, dest, *case.args, check=False)
    if case.ok:
        assert r.returncode == 0, r.stderr
        for p in case.inside:
            assert os.path.lexists(dest / p), p
        if case.name == "file-over-symlink":
            assert not os.path.islink(dest / "l") and (dest / "l").read_bytes() == b"overwritten"
    else:
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        err = r.stderr.strip()
        assert err.count("\n") == 0, err  # one line
        assert err.startswith("unpack_tool: layer"), err
        if case.entry:
            assert re.search(r'layer entry "' + case.entry + '/?"', err), err
        assert re.search(case.reason, err), err
    assert snapshot(outside) == before
    assert sorted(os.listdir(work)) == ["dest", "outside"]
    for p in case.absent:
        assert not os.path.lexists(p), p
    st = os.lstat("/etc/passwd")
    assert (st.st_ino, st.st_nlink, st.st_mtime_ns) == (passwd.st_ino, passwd.st_nlink,
                                                        passwd.st_mtime_ns)


def test_ratio_bomb_default_limits(tool, tmp_path):
    """320 MiB of zeros from 330 KiB of gzip: stopped by the 256:1 ratio once past 256 MiB."""
    (tmp_path / "bomb").write_bytes(H.ratio_bomb())
    d = tmp_path / "d"
    d.mkdir()
    r = unpack(tool, tmp_path / "bomb", d, check=False)
    assert r.returncode == 1
    assert re.search(r'layer entry "zeros\d+": the layer expands more than 256 times its '
                     r'compressed size: a decompression bomb\?', r.stderr), r.stderr
    written = sum(os.lstat(d / f).st_size for f in os.listdir(d))
    assert written <= 257 << 20


def test_ratio_not_checked_before_threshold(tool, tmp_path):
    """Small layers compress well too (zeros, text): the ratio only counts past ratio_after."""
    raw = H.tar(H.info("z", data=bytes(4 << 20)))
    (tmp_path / "l").write_bytes(gzip.compress(raw, mtime=0))
    (tmp_path / "d").mkdir()
    out = unpack(tool, tmp_path / "l", tmp_path / "d")
    assert out["expanded_bytes"] == len(raw) and out["expanded_bytes"] > 256 * out[
        "compressed_bytes"]
    (tmp_path / "d2").mkdir()
    r = unpack(tool, tmp_path / "l", tmp_path / "d2", "--ratio-after", 1 << 20, check=False)
    assert r.returncode == 1 and "256 times" in r.stderr, r.stderr


def test_devices_skipped_in_user_namespace(tool, tmp_path):
    """Root of a user namespace may not mknod devices either: skipped, the rest unpacked."""
    i = H.info
    raw = H.tar(i("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), i("f", data=b"x"),
                i(".wh.old"))
    (tmp_path / "layer").write_bytes(raw)
    d = tmp_path / "d"
    d.mkdir()
    r = subprocess.run(["unshare", "--user", "--map-root-user", tool, str(tmp_path / "layer"),
                        str(d)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not os.path.lexists(d / "dev/null")
    assert (d / "f").read_bytes() == b"x"
    assert stat.S_ISCHR(os.lstat(d / "old").st_mode) and os.lstat(d / "old").st_rdev == 0
