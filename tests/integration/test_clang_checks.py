"""Every C file also compiles with clang, which refuses what gcc lets through silently: a goto
that jumps over a variable with a cleanup attribute (its cleanup would run on garbage)."""
import glob
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import TOP

DIRS = ["lib", "runtime", "guest-init", "images", "engine", "cli", "vmm"]
SOURCES = sorted(f for d in DIRS for f in glob.glob(os.path.join(TOP, d, "*.c")))


@pytest.mark.skipif(not shutil.which("clang"), reason="clang is not installed")
def test_clang_accepts_every_file():
    incs = [f"-I{os.path.join(TOP, d)}" for d in DIRS]

    def check(src):
        return subprocess.run(["clang", "-fsyntax-only", "-w", "-std=gnu11", "-D_GNU_SOURCE",
                               '-DISOLA_VERSION="0"', "-I/usr/include/json-c", *incs, src],
                              capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(check, SOURCES))
    bad = [r.stderr.strip()[:2000] for r in results if r.returncode != 0]
    assert SOURCES and not bad, "\n".join(bad)
