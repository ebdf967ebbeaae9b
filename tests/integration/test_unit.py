"""The C unit tests (TAP programs), run for each build so ASan/UBSan see them too."""
import os
import subprocess

import pytest

from conftest import BUILDS, TOP

UNIT = ["test_spec", "test_util", "test_seccomp", "test_cgroup", "test_embedded", "test_images"]


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("name", UNIT)
def test_unit(build, name):
    exe = os.path.join(TOP, build, "tests", "unit", name)
    if not os.path.exists(exe):
        pytest.skip(f"{name} not built in {build}")
    r = subprocess.run([exe], capture_output=True, text=True, timeout=300)
    failed = [l for l in r.stdout.splitlines() if l.startswith("not ok")]
    assert r.returncode == 0 and not failed, r.stdout[-4000:] + r.stderr[-4000:]
    assert any(l.startswith("ok ") for l in r.stdout.splitlines()), "no assertions ran"
