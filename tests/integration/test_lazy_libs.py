"""libcurl, libarchive, zlib and zstd are loaded only when a pull, load, save or unpack needs them
(images/lazylib.h): `isola run` of an image whose layers are unpacked maps none of them."""
import subprocess
import time

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

