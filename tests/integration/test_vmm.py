"""isola-vmm: boots each test guest (tests/guests) and checks its verdict and output; bad input
to the CLI fails with one line; the library's unit test (bus, boot structures, hostile
virtqueues) under each build. Guests need /dev/kvm and are skipped without it; the rest runs
anywhere. Exit statuses: see vmm/main.c."""
import json
import os
import statistics
import struct
import subprocess
import time

import pytest

from conftest import BUILDS, TOP

PASS = 33  # VERDICT_PASS 0x10 → (0x10 << 1) | 1


def vmm(build):
    return os.path.join(TOP, build, "vmm", "isola-vmm")


def guest(build, name):
    return os.path.join(TOP, build, "tests", "guests", name + ".elf")


def run(build, *args, timeout=30, env=None):
    exe = vmm(build)
    if not os.path.exists(exe):
        pytest.skip(f"isola-vmm not built in {build}")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def boot(build, name, cmdline="", *extra, console=True, **kw):
    args = ["--kernel", guest(build, name), "--cmdline", cmdline, *extra]
    if console:
        args.append("--console")
    return run(build, *args, **kw)


@pytest.mark.parametrize("build", BUILDS)
def test_unit_vmm(build):
    exe = os.path.join(TOP, build, "tests", "unit", "test_vmm")
    if not os.path.exists(exe):
        pytest.skip(f"test_vmm not built in {build}")
    r = subprocess.run([exe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "not ok" not in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


# ---- guests (need KVM) ----

@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("name,pvh", [("boot_pvh", 1), ("boot_linux", 0)])
@pytest.mark.parametrize("mem", [16, 128])
def test_boot_protocols(build, name, pvh, mem):
    r = boot(build, name, f"expect_mem={mem} expect_pvh={pvh}", "--memory", mem)
    assert r.returncode == PASS, r.stdout + r.stderr
    assert ("boot: pvh" if pvh else "boot: linux") in r.stdout
    assert "virtio_mmio.device=4K@0xd0000000:5" in r.stdout


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("cpus", [1, 2, 4])
def test_mptable(build, cpus):
    r = boot(build, "mptable", f"expect_cpus={cpus}", "--cpus", cpus)
    assert r.returncode == PASS, r.stdout + r.stderr


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("cpus", [2, 4])
def test_smp_all_vcpus_run(build, cpus):
    r = boot(build, "smp", f"expect_cpus={cpus}", "--cpus", cpus)
    assert r.returncode == PASS, r.stdout + r.stderr
    assert f"smp: aps=0x{cpus - 1:016x}" in r.stdout


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_virtio_rng(build):
    r = boot(build, "rng")
    assert r.returncode == PASS, r.stdout + r.stderr
    assert "rng: ok" in r.stdout


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_hostile_virtio_driver(build):
    r = boot(build, "hostile")
    assert r.returncode == PASS, r.stdout + r.stderr
    assert "hostile: survived" in r.stdout
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_serial(build):
    r = boot(build, "misc", "test=1")
    assert r.returncode == PASS, r.stdout + r.stderr
    assert "serial: hello from the guest" in r.stdout
    quiet = boot(build, "misc", "test=1", console=False)
    assert quiet.returncode == PASS and quiet.stdout == "", quiet.stdout


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("test,status,message", [
    (2, 0, None),
    (3, 124, "guest kernel panic"),
    (4, 120, "triple fault"),
    (5, PASS, None),
])
def test_vm_endings(build, test, status, message):
    r = boot(build, "misc", f"test={test}", console=False)
    assert r.returncode == status, r.stdout + r.stderr
    if message:
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], r.stderr
    else:
        assert r.stderr == "", r.stderr


@pytest.mark.kvm
def test_timing_exec_to_first_instruction(tmp_path):
    """ISOLA_VMM_TIMING: timestamps in order; exec → first guest instruction, median of 11."""
    out = tmp_path / "t.json"
    samples = []
    for _ in range(11):
        t0 = time.monotonic_ns()
        r = run(BUILDS[0], "--kernel", guest(BUILDS[0], "exit_first"), "--memory", 64,
                env=dict(os.environ, ISOLA_VMM_TIMING=str(out)))
        assert r.returncode == PASS, r.stderr
        t = json.loads(out.read_text())
        assert t0 <= t["main_ns"] <= t["kvm_ready_ns"] <= t["first_run_ns"] <= t["first_exit_ns"]
        assert t["first_exit_ns"] <= t["exit_ns"]
        samples.append((t["first_exit_ns"] - t0) / 1e6)
    med = statistics.median(samples)
    print(f"exec → first guest instruction: median {med:.2f} ms")
    assert med < 1000


# ---- bad input (no KVM needed: input is checked before /dev/kvm is opened) ----

def elf(segments, entry=0x100000, phnum=None, note=None, etype=2, machine=62):
    """A minimal ELF64 with PT_LOAD (paddr, filesz, memsz[, offset]) segments."""
    phs = []
    data_off = 64 + 56 * (len(segments) + (1 if note else 0))
    body = b""
    for seg in segments:
        paddr, filesz, memsz = seg[:3]
        off = seg[3] if len(seg) > 3 else data_off + len(body)
        phs.append(struct.pack("<IIQQQQQQ", 1, 7, off, paddr, paddr, filesz, memsz, 0x1000))
        if len(seg) <= 3:
            body += b"\xf4" * filesz
    if note is not None:
        off = data_off + len(body)
        phs.append(struct.pack("<IIQQQQQQ", 4, 4, off, 0, 0, len(note), len(note), 4))
        body += note
    n = len(phs) if phnum is None else phnum
    eh = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", etype, machine, 1, entry, 64, 0, 0, 64, 56, n, 0, 0, 0)
    return eh + b"".join(phs) + body


def bad(build, tmp_path, content, *extra):
    k = tmp_path / "kernel"
    k.write_bytes(content)
    r = run(build, "--kernel", k, *extra)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("isola-vmm: "), r.stderr
    return lines[0]


@pytest.mark.parametrize("build", BUILDS)
def test_bad_kernels(build, tmp_path):
    assert "not an ELF file" in bad(build, tmp_path, b"#!/bin/sh\necho hi\n" * 10)
    assert "not an ELF file" in bad(build, tmp_path, b"")
    assert "not an ELF file" in bad(build, tmp_path, b"\x7fELF")
    good = elf([(0x100000, 16, 16)])
    assert "truncated" in bad(build, tmp_path, good[:100])
    assert "truncated" in bad(build, tmp_path, good[:64 + 56 + 4])
    assert "x86-64" in bad(build, tmp_path, elf([(0x100000, 16, 16)], machine=40))
    assert "not an ELF executable" in bad(build, tmp_path, elf([(0x100000, 16, 16)], etype=3))
    assert "outside guest memory" in bad(build, tmp_path, elf([(0x7ff00000, 16, 16)],
                                                              entry=0x7ff00000))
    assert "outside guest memory" in bad(build, tmp_path, elf([(0x100000, 16, 1 << 40)]))
    assert "outside guest memory" in bad(build, tmp_path,
                                         elf([(0xfffffffffffff000, 16, 0x2000)]))
    assert "outside guest memory" in bad(build, tmp_path, elf([(0x1000, 16, 16)], entry=0x1000))
    assert "more file bytes" in bad(build, tmp_path, elf([(0x100000, 32, 16)]))
    assert "truncated" in bad(build, tmp_path, elf([(0x100000, 1 << 30, 1 << 30, 120)]))
    assert "truncated" in bad(build, tmp_path,
                              elf([(0x100000, 16, 16, 0xfffffffffffffff0)]))
    assert "program header" in bad(build, tmp_path, elf([(0x100000, 16, 16)], phnum=0))
    assert "program header" in bad(build, tmp_path, elf([(0x100000, 16, 16)], phnum=5000))
    assert "entry point" in bad(build, tmp_path, elf([(0x100000, 16, 16)], entry=0x200000))
    # A PVH note whose entry lies outside the kernel, and notes with garbage sizes.
    pvh = struct.pack("<III4sI", 4, 4, 18, b"Xen\0", 0x300000)
    assert "PVH entry point" in bad(build, tmp_path, elf([(0x100000, 16, 16)], note=pvh))
    junk = struct.pack("<III", 0xffffffff, 0xfffffff0, 18) + b"Xen\0" * 4
    assert "ELF entry point" in bad(build, tmp_path, elf([(0x100000, 16, 16)], entry=0x300000,
                                                         note=junk))


@pytest.mark.parametrize("build", BUILDS)
def test_bad_flags(build, tmp_path):
    k = tmp_path / "kernel"
    k.write_bytes(elf([(0x100000, 16, 16)]))

    def one_line(*args):
        r = run(build, *args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1, r.stderr
        return lines[0]

    assert "--kernel is required" in one_line()
    assert "must be 4-3072 MiB" in one_line("--kernel", k, "--memory", "0")
    assert "must be 4-3072 MiB" in one_line("--kernel", k, "--memory", "99999999999")
    assert "not a number" in one_line("--kernel", k, "--memory", "lots")
    assert "--cpus 0" in one_line("--kernel", k, "--cpus", "0")
    assert "--cpus 65" in one_line("--kernel", k, "--cpus", "65")
    assert "cannot open kernel" in one_line("--kernel", tmp_path / "nope")
    assert "not a regular file" in one_line("--kernel", tmp_path)
    assert "unexpected argument" in one_line("--kernel", k, "extra")
    initrd = tmp_path / "initrd"
    with open(initrd, "wb") as f:
        f.truncate(8 << 20)
    assert "does not fit" in one_line("--kernel", k, "--memory", "4", "--initrd", initrd)
