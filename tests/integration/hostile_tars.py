"""Hostile layers for the unpacker, generated at test time (nothing binary is committed).

Each case is a `Hostile`: the layer's bytes, the unpack_tool arguments it needs, and what must
happen: either a refusal (exit 1 with an error naming `entry` and matching `reason`) or a
success whose result stays inside the destination (`inside` paths that must exist there).
`outside` is a directory next to the destination that a case tries to reach; the test checks it
is left exactly as it was. Cases are built by `cases(outside)`.
"""
import functools
import gzip
import io
import os
import tarfile
from dataclasses import dataclass, field

MTIME = 1600000000


@dataclass
class Hostile:
    name: str
    data: bytes
    entry: str = ""          # the entry the error must name ("" when none is expected)
    reason: str = ""         # a regular expression the error must match
    args: list = field(default_factory=list)
    ok: bool = False         # True: unpacking succeeds (confined), see `inside`
    inside: list = field(default_factory=list)  # paths that must exist in DEST afterwards
    absent: list = field(default_factory=list)  # absolute paths that must not exist


def info(name, type=tarfile.REGTYPE, data=b"", mode=0o644, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.mode = mode
    ti.mtime = MTIME
    ti.size = len(data) if type == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, (data if type == tarfile.REGTYPE else None)


def tar(*entries, fmt=tarfile.PAX_FORMAT):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return b.getvalue()


def header(name, size, type=tarfile.REGTYPE):
    """A bare ustar header that claims `size` bytes (no data follows it)."""
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.size = size
    ti.mtime = MTIME
    return ti.tobuf(format=tarfile.GNU_FORMAT)


@functools.lru_cache(maxsize=None)
def gzip_zero_files(count, size, prefix="zeros"):
    """A gzip'd tar of `count` files of `size` zero bytes each (size a multiple of 512), as
    concatenated gzip members (one stream to gunzip): the zeros are compressed once and the
    member repeated, so gigabytes cost a few megabytes and no time to make."""
    assert size % 512 == 0
    zeros = gzip.compress(bytes(size), compresslevel=9, mtime=0)
    out = []
    for i in range(count):
        out.append(gzip.compress(header(f"{prefix}{i}", size), mtime=0))
        out.append(zeros)
    out.append(gzip.compress(bytes(1024), mtime=0))
    return b"".join(out)


def cases(outside):
    """The hostile corpus; `outside` is the absolute path of a directory beside DEST."""
    o = str(outside)
    rel = o.lstrip("/")
    many = tar(*[info(f"f{i}", data=b"x" * 512 * 1024) for i in range(16)])
    good = tar(info("a", data=b"a" * 5000), info("b", data=b"b" * 5000), info("c", data=b"c"))
    corrupt = bytearray(good)
    corrupt[512 * 11 + 148:512 * 11 + 156] = b"99999999"  # the checksum of the 2nd header
    return [
        # names that leave the layer
        Hostile("dotdot", tar(info("../escape", data=b"x")), "../escape", r'"\.\."'),
        Hostile("dotdot-deep", tar(info("a/b/../../../escape", data=b"x")),
                "a/b/../../../escape", r'"\.\."'),
        Hostile("dotdot-dir", tar(info("..", tarfile.DIRTYPE)), "..", r'"\.\."'),
        # absolute names are relative to the layer root (as docker and containerd take them)
        Hostile("absolute", tar(info(o + "/pwned", data=b"x")), ok=True,
                inside=[rel + "/pwned"], absent=[o + "/pwned"]),
        # a directory symlink out of the layer, then a file through it
        Hostile("symlink-abs-then-file",
                tar(info("a", tarfile.SYMTYPE, linkname=o), info("a/pwned", data=b"x")),
                "a/pwned", "symlink to a missing directory", absent=[o + "/pwned"]),
        Hostile("symlink-rel-then-file",
                tar(info("b", tarfile.SYMTYPE, linkname="../" + os.path.basename(o)),
                    info("b/pwned", data=b"x")),
                "b/pwned", "symlink to a missing directory", absent=[o + "/pwned"]),
        # "../../.." is clamped at the layer root: the file lands in DEST, not above it
        Hostile("symlink-dotdots-then-file",
                tar(info("c", tarfile.SYMTYPE, linkname="../../../../../../.."),
                    info("c/pwned", data=b"x")),
                ok=True, inside=["pwned"], absent=[o + "/pwned"]),
        # a symlink whose target exists inside the layer: followed, but only inside
        Hostile("symlink-abs-inside",
                tar(info(rel, tarfile.DIRTYPE), info("d", tarfile.SYMTYPE, linkname=o),
                    info("d/pwned", data=b"x")),
                ok=True, inside=[rel + "/pwned"], absent=[o + "/pwned"]),
        # a file entry over a symlink replaces the symlink; it never writes through it
        Hostile("file-over-symlink",
                tar(info("l", tarfile.SYMTYPE, linkname=o + "/sentinel"),
                    info("l", data=b"overwritten")),
                ok=True, inside=["l"]),
        # a directory replaced by a symlink out, then written through
        Hostile("dir-then-symlink-then-file",
                tar(info("e", tarfile.DIRTYPE), info("e/x", data=b"x"),
                    info("e", tarfile.SYMTYPE, linkname=o), info("e/pwned", data=b"x")),
                "e/pwned", "symlink to a missing directory", absent=[o + "/pwned"]),
        # hardlinks
        Hostile("hardlink-etc-passwd",
                tar(info("h", tarfile.LNKTYPE, linkname="/etc/passwd")),
                "h", "hardlink target is not in the layer"),
        Hostile("hardlink-outside-abs",
                tar(info("h", tarfile.LNKTYPE, linkname=o + "/sentinel")),
                "h", "hardlink target is not in the layer"),
        Hostile("hardlink-dotdot",
                tar(info("h", tarfile.LNKTYPE, linkname="../outside/sentinel")),
                "h", r'"\.\."'),
        Hostile("hardlink-through-symlink",
                tar(info("s", tarfile.SYMTYPE, linkname=o),
                    info("h", tarfile.LNKTYPE, linkname="s/sentinel")),
                "h", "hardlink target is not in the layer"),
        Hostile("hardlink-to-dir",
                tar(info("dir", tarfile.DIRTYPE), info("h", tarfile.LNKTYPE, linkname="dir")),
                "h", "hardlink target is a directory"),
        # whiteouts whose name would reach elsewhere
        Hostile("whiteout-dot", tar(info(".wh..")), ".wh..", "whiteout"),
        Hostile("whiteout-dotdot", tar(info("a/.wh...")), "a/.wh...", "whiteout"),
        Hostile("whiteout-empty", tar(info(".wh.")), ".wh.", "whiteout"),
        Hostile("whiteout-parent", tar(info("../.wh.x")), "../.wh.x", r'"\.\."'),
        # overlayfs metadata forged by the layer
        Hostile("xattr-overlay-redirect",
                tar(info("r", tarfile.DIRTYPE,
                         pax_headers={"SCHILY.xattr.trusted.overlay.redirect": "/etc"})),
                "r", "trusted.overlay.redirect"),
        Hostile("xattr-overlay-metacopy",
                tar(info("m", data=b"x",
                         pax_headers={"SCHILY.xattr.trusted.overlay.metacopy": ""})),
                "m", "trusted.overlay.metacopy"),
        Hostile("xattr-user-overlay-opaque",
                tar(info("u", tarfile.DIRTYPE,
                         pax_headers={"SCHILY.xattr.user.overlay.opaque": "y"})),
                "u", "user.overlay.opaque"),
        # sizes and counts
        Hostile("stream-past-max-expanded", gzip.compress(many, mtime=0), r"f\d+",
                "expands past 2097152 bytes", args=["--max-expanded", str(2 << 20)]),
        # 2 GiB of zeros in 64 files of 32 MiB (about 2 MB of gzip), stopped at 64 MiB
        Hostile("gzip-bomb-2g", gzip_zero_files(64, 32 << 20), r"zeros\d+",
                "expands past 67108864 bytes", args=["--max-expanded", str(64 << 20)]),
        # one file whose header claims 2 GiB, refused before a byte of it is written
        Hostile("gzip-bomb-2g-claimed", gzip.compress(header("zeros", 2 << 30) + bytes(1 << 20)),
                "zeros",
                "claims 2147483648 bytes", args=["--max-expanded", str(64 << 20)]),
        Hostile("header-claims-1tib", header("huge", 1 << 40) + bytes(4096), "huge",
                "claims 1099511627776 bytes"),
        Hostile("too-many-entries", tar(*[info(f"n{i}") for i in range(20)]), "n10",
                "more than 10 entries", args=["--max-entries", "10"]),
        # damaged input
        Hostile("truncated-tar", good[:512 + 3000], "a", "[Tt]runcated"),
        Hostile("corrupt-tar", bytes(corrupt), "a", "[Dd]amaged|checksum|next entry"),
        Hostile("truncated-gzip", gzip.compress(good, mtime=0)[:-40], "", "truncated|[Tt]runcated"),
        Hostile("corrupt-gzip", gzip.compress(good, mtime=0)[:20] + b"\xff" * 64, "",
                "corrupt gzip"),
        Hostile("not-a-tar", b"#!/bin/sh\necho this is not a layer\n" * 40, "",
                "not a tar layer"),
    ]


def ratio_bomb():
    """320 MiB of zeros in ~330 KiB of gzip: the default limits stop it past 256 MiB (256:1)."""
    return gzip_zero_files(10, 32 << 20)
