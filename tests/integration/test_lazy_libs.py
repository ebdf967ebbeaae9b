"""libcurl, libarchive, zlib and zstd are loaded only when a pull, load, save or unpack needs them
(images/lazylib.h): `isola run` of an image whose layers are unpacked maps none of them."""
import os
import subprocess
import time

import pytest

from isola_cli import isola  # noqa: F401 (fixture)

LAZY = ("libcurl", "libarchive", "libz.so", "libzstd")


def mapped_libraries(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {l.split()[-1] for l in f if ".so" in l}


def test_run_of_unpacked_image_maps_no_lazy_library(isola, tmp_path):
    isola.ok("run", "--rm", "busybox", "true")  # loads the embedded image, unpacks its layer
    ready = tmp_path / "ready"
    p = subprocess.Popen(isola.cmd("run", "--rm", "-v", f"{tmp_path}:/out", "busybox", "sh", "-c",
                                   "touch /out/ready; sleep 2"),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists(), p.communicate(timeout=30)
        libs = mapped_libraries(p.pid)
    finally:
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert any("libc.so" in l for l in libs), libs  # the maps were read while isola ran
    assert [l for l in libs if any(n in l for n in LAZY)] == []



def test_missing_library_fails_only_what_needs_it(isola):
    # libcurl and libarchive made unloadable (/dev/null over them, in a private mount namespace):
    # a pull and a save fail with one line naming the library; a run of an unpacked image works.
    isola.ok("run", "--rm", "busybox", "true")
    libs = [os.path.realpath(f"/lib/x86_64-linux-gnu/{s}")
            for s in ("libcurl.so.4", "libarchive.so.13")]
    if not all(os.path.exists(l) for l in libs):
        pytest.skip("not Debian's multiarch layout")

    def hidden(*args):
        script = "".join(f"mount --bind /dev/null {l} && " for l in libs) + 'exec "$@"'
        return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *isola.cmd(*args)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)

    r = hidden("pull", "127.0.0.1:1/x:y")
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith('isola: pull "127.0.0.1:1/x:y": cannot load libcurl.so.4 '
                               "(needed for pulls): "), r.stderr
    r = hidden("save", "-o", "/dev/null", "busybox")
    assert r.returncode != 0 and "cannot load libarchive.so.13" in r.stderr, r.stderr
    r = hidden("run", "--rm", "busybox", "echo", "ran")
    assert (r.returncode, r.stdout, r.stderr) == (0, "ran\n", "")
