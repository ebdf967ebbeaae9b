#!/usr/bin/env python3
"""mkinitramfs.py [--strip STRIP] INIT OUTPUT: the initramfs of an isola microVM, a newc cpio
archive holding only isola-init as /init and the few entries the kernel wants before init runs
(/dev/console, so that init starts with its stdio on the console). Written directly, without
cpio(1) or root: the device node is only an archive entry. Deterministic: fixed times and
owners, so the same binary gives the same archive."""
import os
import shutil
import subprocess
import sys
import tempfile


def entry(ino, name, mode, data=b"", rdev=(0, 0)):
    name_b = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = hdr + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def main(argv):
    strip = None
    if len(argv) >= 2 and argv[0] == "--strip":
        strip, argv = argv[1], argv[2:]
    init, output = argv
    with tempfile.TemporaryDirectory() as tmp:
        if strip:
            stripped = os.path.join(tmp, "init")
            shutil.copyfile(init, stripped)
            subprocess.run([strip, "--strip-all", stripped], check=True)
            init = stripped
        with open(init, "rb") as f:
            data = f.read()
    parts = [
        entry(1, "dev", 0o040755),
        entry(2, "dev/console", 0o020600, rdev=(5, 1)),
        entry(3, "proc", 0o040755),
        entry(4, "sys", 0o040755),
        entry(5, "run", 0o040755),
        entry(6, "init", 0o100755, data),
        entry(0, "TRAILER!!!", 0),
    ]
    blob = b"".join(parts)
    blob += b"\0" * (-len(blob) % 512)
    tmp_out = output + ".tmp"
    with open(tmp_out, "wb") as f:
        f.write(blob)
    os.replace(tmp_out, output)


if __name__ == "__main__":
    main(sys.argv[1:])
