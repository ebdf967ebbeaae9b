"""The fuzz harnesses' seed corpora and regression inputs, replayed by the standalone driver
(tests/fuzz/driver.c) in each build, so the ASan+UBSan build checks every input stays clean."""
import os
import subprocess

import pytest

from conftest import BUILDS, TOP

HARNESSES = {"fuzz_spec": "spec", "fuzz_cli": "cli", "fuzz_unpack": "unpack", "fuzz_images": "images",
             "fuzz_guest": "guest", "fuzz_fs": "fs"}


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_fuzz_corpus(build, name):
    exe = os.path.join(TOP, build, "tests", "fuzz", name)
    if not os.path.exists(exe):
        pytest.skip(f"{name} not built in {build}")
    corpus = os.path.join(TOP, "tests", "fuzz", "corpus", HARNESSES[name])
    n = len(os.listdir(corpus))
    r = subprocess.run([exe, corpus], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1:exitcode=99",
                                UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=98"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert f": {n} inputs" in r.stdout, r.stdout
