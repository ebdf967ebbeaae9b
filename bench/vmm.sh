#!/usr/bin/env bash
# vmm.sh: isola's monitor (isola-vmm) against QEMU's microvm machine on the same tiny guest,
# tests/guests/exit_first.elf, whose first instruction writes the debug-exit port (both exit
# with status 33). Times the whole monitor process, exec → reaped (start-up, the guest's first
# instruction, teardown), and takes its peak RSS (wait4), interleaved round-robin; splits
# isola-vmm's time with its ISOLA_VMM_TIMING probe and QEMU's with its trace events; snapshots
# each monitor's memory while a guest sits in `hlt`. One table (median, p10, p90, isola/QEMU
# ratios) or JSON with --json. A measurement, not a test: no thresholds.
# With --linux N, instead: N rounds of a Linux boot under isola-vmm and the "qemu" column's
# QEMU, the same kernel and the same tiny /init (bench/vmm_init.c: one marker line, then a
# reboot), timing exec → the marker on the console and exec → exit.
#
# usage: bench/vmm.sh [-n RUNS] [-w WARMUP] [--json] [--build DIR] [--memory MiB]
#                     [--columns isola,qemu,qemu-min,qemu-default] [--trace-runs N]
#                     [--resident-runs N] [--keep]
#        bench/vmm.sh --linux N [--json] [--build DIR] [--memory MiB] [--keep]
#   -n RUNS            timed rounds (default 20, at least 10 advised)
#   -w WARMUP          untimed rounds first (default 2)
#   --build DIR        meson build dir with vmm/isola-vmm and tests/guests/exit_first.elf
#                      (default: the repository's build/)
#   --memory MiB       guest memory for every monitor (default 128)
#   --columns LIST     isola (always), qemu (isola-vmm's devices, in-kernel irqchip and PIT),
#                      qemu-min (split irqchip, no PIC/PIT/serial), qemu-default (plain
#                      `-M microvm`); default all four
#   --trace-runs N     extra QEMU runs with trace events for the phase split (default 5, 0: off)
#   --resident-runs N  memory snapshots with a halting guest per column (default 3, 0: off)
#   --keep             keep the work directory (logs, traces, command lines, consoles)
#   --linux N          Linux boot mode, N rounds (each boot takes 30-60 s on a kvm_pvm host);
#                      only isola and qemu, no warm-up, traces or memory snapshots
# environment: ISOLA_VMM, GUEST (override --build), QEMU (default qemu-system-x86_64),
# CC (for the launcher and the init, default cc), BENCH_TMP (where the work dir goes, default
# /tmp), KERNEL (--linux: a vmlinux instead of `kernel-config/build.sh --print-path`, which
# builds the guest kernel when it is not cached).
# Needs read-write /dev/kvm, QEMU (package qemu-system-x86, scripts/deps.sh) and a C compiler
# with a static libc (the run launcher bench/vmm_spawn.c is built into the work dir).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=20 warmup=2 json=0 keep=0 build=$top/build memory=128 trace_runs=5 resident_runs=3 linux=0
want=isola,qemu,qemu-min,qemu-default
while [ $# -gt 0 ]; do
  case $1 in
    -n|--runs) runs=$2; shift 2 ;;
    -w|--warmup) warmup=$2; shift 2 ;;
    --json) json=1; shift ;;
    --build) build=$(cd "$2" 2>/dev/null && pwd) || { echo "vmm.sh: no build dir $2" >&2; exit 2; }
             shift 2 ;;
    --memory) memory=$2; shift 2 ;;
    --columns) want=$2; shift 2 ;;
    --trace-runs) trace_runs=$2; shift 2 ;;
    --resident-runs) resident_runs=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --linux) linux=$2; shift 2 ;;
    -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "vmm.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for v in runs warmup memory trace_runs resident_runs linux; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "vmm.sh: bad ${v//_/-}: ${!v}" >&2; exit 2; }
done
if [ "$runs" -lt 1 ] || [ "$memory" -lt 4 ]; then
  echo "vmm.sh: -n must be at least 1, --memory at least 4" >&2; exit 2
fi

log() { echo "$@" >&2; }
[ -e /dev/kvm ] || { log "vmm.sh: /dev/kvm is missing (no KVM on this host)"; exit 1; }
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
  log "vmm.sh: /dev/kvm is not read-write for $(id -un)"; exit 1
fi
qemu=$(command -v "${QEMU:-qemu-system-x86_64}") ||
  { log "vmm.sh: ${QEMU:-qemu-system-x86_64} not found (scripts/deps.sh installs qemu-system-x86)"; exit 1; }
vmm_src=${ISOLA_VMM:-$build/vmm/isola-vmm}
guest_src=${GUEST:-$build/tests/guests/exit_first.elf}
needed=("$vmm_src")
if [ "$linux" = 0 ]; then needed+=("$guest_src"); else resident_runs=0; fi
for f in "${needed[@]}"; do
  [ -f "$f" ] || { log "vmm.sh: $f is missing (ninja -C $build)"; exit 1; }
done
IFS=, read -r -a requested <<<"$want"
columns=(isola)
for c in "${requested[@]}"; do
  case $c in
    isola) ;;
    qemu|qemu-min|qemu-default) columns+=("$c") ;;
    *) log "vmm.sh: unknown column $c"; exit 2 ;;
  esac
done
[ ${#columns[@]} -gt 1 ] || { log "vmm.sh: --columns names no QEMU column"; exit 2; }

work=$(mktemp -d "${BENCH_TMP:-/tmp}/isola-vmm-bench.XXXXXX")
cleanup() {
  if [ "$keep" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Measure private copies: others may relink build/ while this runs.
cp "$vmm_src" "$work/isola-vmm"
[ "$linux" != 0 ] || cp "$guest_src" "$work/exit_first.elf"
# The launcher every timed run goes through (see vmm_spawn.c: why ru_maxrss needs it).
cc=${CC:-cc}
if ! "$cc" -O2 -static -Wall -Wextra -Werror -o "$work/vmm_spawn" "$top/bench/vmm_spawn.c" \
     >"$work/log-cc" 2>&1; then
  log "vmm.sh: cannot build bench/vmm_spawn.c with $cc -static: $(tail -1 "$work/log-cc")"
  exit 1
fi

# The resident-memory guest: exit_first.elf with its first two instructions (movb $0x10, %al;
# outb %al, $0xf4) replaced by cli and three nops, so it falls into its `hlt; jmp` loop with
# interrupts off and the vCPU stays blocked in KVM_RUN under either monitor.
halt_guest=
if [ "$resident_runs" -gt 0 ] && python3 - "$work/exit_first.elf" "$work/halt.elf" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
old = bytes.fromhex("b010e6f4f4ebfd")  # movb $0x10,%al; outb %al,$0xf4; 1: hlt; jmp 1b
if d.count(old) != 1:
    sys.exit(1)
open(sys.argv[2], "wb").write(d.replace(old, bytes.fromhex("fa909090f4ebfd")))
PY
then
  halt_guest=$work/halt.elf
fi

# QEMU, the same for every column. `-cpu host` aborts on this host's kvm_pvm ("failed to set
# MSR 0x10a", IA32_ARCH_CAPABILITIES); isola-vmm passes the host's CPUID unchanged, so host
# minus that one feature is the closest match.
# shellcheck disable=SC2054 # the commas are QEMU's
qemu_common=(-cpu host,-arch-capabilities -smp 1 -m "$memory" -nodefaults
             -no-user-config -display none -device isa-debug-exit,iobase=0xf4,iosize=1)
declare -A qemu_machine=(
  # What isola-vmm has, as the same KVM objects: the whole irqchip (PIC, IOAPIC, LAPIC) and
  # the PIT in the kernel (microvm's default is a split irqchip: only the LAPIC in the kernel,
  # PIC, IOAPIC and PIT in QEMU), a 16550 on 0x3f8, a virtio-mmio entropy device; no ACPI
  # (isola-vmm writes an MP table), no RTC (isola-vmm's CMOS reads zeros), no option ROMs.
  [qemu]="-M microvm,x-option-roms=off,rtc=off,acpi=off -accel kvm,kernel-irqchip=on -serial null -device virtio-rng-device"
  # QEMU's leanest: split irqchip, no PIC, PIT, serial, RTC, ACPI or option ROMs.
  [qemu-min]="-M microvm,x-option-roms=off,rtc=off,acpi=off,pit=off,pic=off,isa-serial=off -accel kvm"
  # Out of the box.
  [qemu-default]="-M microvm -accel kvm"
)
host="$(nproc) vCPU, $(uname -r), $(uname -m), $([ -d /sys/module/kvm_pvm ] && echo kvm_pvm || echo KVM)"
json_flag=()
[ "$json" = 0 ] || json_flag=(--json)

# --linux: the same kernel, initramfs and command line under isola-vmm and the "qemu" column's
# QEMU with its serial port on stdout; the whole mode is this block.
if [ "$linux" -gt 0 ]; then
  if [ -n "${KERNEL:-}" ]; then
    kernel_src=$KERNEL
  else
    kernel_src=$("$top/kernel-config/build.sh" --print-path) ||
      { log "vmm.sh: kernel-config/build.sh --print-path failed (see above)"; exit 1; }
  fi
  [ -f "$kernel_src" ] || { log "vmm.sh: no kernel at $kernel_src"; exit 1; }
  cp "$kernel_src" "$work/vmlinux"
  if ! "$cc" -O2 -static -nostdlib -ffreestanding -fno-stack-protector \
       -fno-asynchronous-unwind-tables -Wall -Wextra -Werror -o "$work/init" \
       "$top/bench/vmm_init.c" >"$work/log-cc-init" 2>&1; then
    log "vmm.sh: cannot build bench/vmm_init.c with $cc: $(tail -1 "$work/log-cc-init")"; exit 1
  fi
  # The line as a user gives it to isola-vmm, which appends the host's workaround words itself
  # (vmm/kvm.c, host_cmdline_workarounds) and one virtio_mmio.device= per device (vmm/boot.c);
  # QEMU gets the same words here, on the same test of the host as isola-vmm's (ISOLA_VMM_HOST
  # included), and adds its virtio_mmio.device= words itself (microvm's auto-kernel-cmdline).
  line="console=ttyS0 quiet panic=-1 rodata=off"
  pvm=0
  case ${ISOLA_VMM_HOST:-} in
    pvm) pvm=1 ;;
    kvm) ;;
    *) if [ -d /sys/module/kvm_pvm ] && ! [ -d /sys/module/kvm_intel ] &&
          ! [ -d /sys/module/kvm_amd ]; then pvm=1; fi ;;
  esac
  qemu_line=$line
  # The words of vmm/kvm.c's PVM_LINE (keep them equal); the report shows both guests' lines.
  [ "$pvm" = 0 ] || qemu_line+=" noxsave clearcpuid=popcnt,smap,smep,cx16 reboot=k isola.pvm=1"
  printf '%s\0' "$work/isola-vmm" --kernel "$work/vmlinux" --initrd "$work/initramfs.cpio" \
    --cmdline "$line" --console --memory "$memory" >"$work/cmd-linux-isola"
  # The "qemu" column with its serial port on stdout, and an i8042: isola-vmm emulates the
  # i8042's reset port, microvm has none, and without it the kernel's reboot=k path polls the
  # missing controller's status port up to 10 x 65536 times and then tries other ways: QEMU had
  # not exited 170-270 s after "reboot: Restarting system" here (with the i8042: 20 ms).
  read -r -a extra <<<"${qemu_machine[qemu]/-serial null/-serial stdio} -device i8042"
  printf '%s\0' "$qemu" "${extra[@]}" "${qemu_common[@]}" -no-reboot -kernel "$work/vmlinux" \
    -initrd "$work/initramfs.cpio" -append "$qemu_line" >"$work/cmd-linux-qemu"
  printf 'isola\tisola-vmm sha256 %s, built %s\nqemu\t%s\n' \
    "$(sha256sum "$work/isola-vmm" | cut -c1-12)" "$(date -r "$vmm_src" '+%F %T')" \
    "$("$qemu" --version | head -1)" >"$work/versions"
  {
    echo "isola-vmm: $vmm_src, timed from a copy (repository at $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')); kernel command line given: '$line'$([ "$pvm" = 0 ] || echo ", to which isola-vmm adds the kvm_pvm words")."
    for c in isola qemu; do
      mapfile -d '' -t argv <"$work/cmd-linux-$c"
      echo "$c command: ${argv[*]/#$work\//}"
    done
    echo "host is $([ "$pvm" = 1 ] && echo "kvm_pvm: QEMU's -append carries the workaround words isola-vmm adds" || echo "not kvm_pvm: no workaround words")."
    echo "time: CLOCK_MONOTONIC from just before posix_spawn (bench/vmm_spawn.c) to the read of the console pipe that completed init's marker line, and to wait4's return. Rounds alternate which monitor boots first; no warm-up boot (both read the same vmlinux copy, just written, from the page cache)."
    echo "QEMU microvm runs its qboot firmware before the kernel, in guest ring 0, emulated on a kvm_pvm host; isola-vmm enters the kernel's PVH entry directly."
  } >"$work/notes"
  log "vmm.sh: $linux rounds of a Linux boot under isola-vmm and QEMU ($memory MiB guest; each boot takes a while)"
  python3 "$top/bench/vmm_linux.py" --work "$work" --launcher "$work/vmm_spawn" \
    --init "$work/init" --initramfs "$work/initramfs.cpio" --kernel "$work/vmlinux" \
    --kernel-label "$kernel_src" --versions "$work/versions" --notes "$work/notes" \
    --host "$host" --memory "$memory" --runs "$linux" "${json_flag[@]}"
  exit 0
fi

# Writes one NUL-separated command line per column (and its halting-guest twin).
write_cmd() {
  local col=$1 guest=$2 out=$3 extra
  if [ "$col" = isola ]; then
    printf '%s\0' "$work/isola-vmm" --kernel "$guest" --memory "$memory" >"$out"
  else
    read -r -a extra <<<"${qemu_machine[$col]}"
    printf '%s\0' "$qemu" "${extra[@]}" "${qemu_common[@]}" -kernel "$guest" >"$out"
  fi
}
for c in "${columns[@]}"; do
  write_cmd "$c" "$work/exit_first.elf" "$work/cmd-$c"
  [ -z "$halt_guest" ] || write_cmd "$c" "$halt_guest" "$work/cmd-$c-halt"
done

# Probe each column once (within 60 s): it must exit 33. A QEMU configuration that cannot run
# here is left out with its reason; isola-vmm must run.
versions=$work/versions notes=$work/notes
: >"$versions"
: >"$notes"
active=()
for c in "${columns[@]}"; do
  mapfile -d '' -t argv <"$work/cmd-$c"
  rc=0
  timeout 60 "${argv[@]}" </dev/null >"$work/log-$c-probe" 2>&1 || rc=$?
  if [ "$rc" != 33 ]; then
    reason=$(grep -v '^$' "$work/log-$c-probe" | tail -1 || true)
    if [ "$c" = isola ]; then
      log "vmm.sh: isola-vmm exited with $rc, not 33: ${reason:-no message}"; exit 1
    fi
    log "vmm.sh: $c exited with $rc, not 33 (${reason:-no message}); left out"
    echo "$c left out: exit status $rc, ${reason:-no message}" >>"$notes"
    continue
  fi
  active+=("$c")
  if [ "$c" = isola ]; then
    printf 'isola\tisola-vmm sha256 %s, built %s\n' "$(sha256sum "$work/isola-vmm" | cut -c1-12)" \
      "$(date -r "$vmm_src" '+%F %T')" >>"$versions"
  else
    printf '%s\t%s\n' "$c" "$("$qemu" --version | head -1)" >>"$versions"
  fi
done
[ ${#active[@]} -gt 1 ] || { log "vmm.sh: no QEMU configuration could run the guest"; exit 1; }

note() { echo "$*" >>"$notes"; }
note "guest: $guest_src ($(sha256sum "$guest_src" | cut -c1-12)), PVH entry 'movb \$0x10, %al; outb %al, \$0xf4': both monitors exit 33 on the guest's first instruction (QEMU through isa-debug-exit)."
note "isola-vmm: $vmm_src, timed from a copy (repository at $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')); command: isola-vmm --kernel GUEST --memory $memory (ISOLA_VMM_TIMING=FILE set on the timed runs: one small file written before teardown)."
for c in "${active[@]}"; do
  [ "$c" = isola ] && continue
  mapfile -d '' -t argv <"$work/cmd-$c"
  note "$c command: ${argv[*]/#$work\//}"
done
note "-cpu host,-arch-capabilities: QEMU 7.2's -cpu host aborts on this host's kvm_pvm ('failed to set MSR 0x10a', IA32_ARCH_CAPABILITIES); isola-vmm passes the host's supported CPUID as it is."
note "time: wall clock from just before posix_spawn to wait4's return (CLOCK_MONOTONIC), taken by a small static launcher (bench/vmm_spawn.c) that Python starts for every run; peak RSS: the monitor's ru_maxrss from that wait4 (its floor is the launcher's own ~0.65 MiB, which an exec'd child inherits as its high-water mark; spawned from Python it would be Python's ~13 MiB). Rounds are round-robin, the first column rotating each round."
note "QEMU microvm always runs its qboot firmware first (fw_cfg loads the PVH kernel), in guest ring 0; on this host guest kernel-mode code is emulated (MACHINE.md), so QEMU's 'firmware' phase is far slower here than on hardware KVM. isola-vmm enters the PVH entry point directly."
[ "$trace_runs" = 0 ] || note "QEMU phases: $trace_runs extra runs per QEMU column with -msg timestamp=on -trace kvm_vcpu_ioctl -trace kvm_run_exit -D FILE (gettimeofday stamps); the last KVM exit is the guest kernel's first instruction (the debug-exit OUT). Tracing adds its own cost: compare 'total traced' with the untraced median."
if [ "$resident_runs" -gt 0 ]; then
  if [ -n "$halt_guest" ]; then
    note "resident memory: exit_first.elf patched to 'cli; nop x3; hlt' (never exits); /proc/PID/smaps_rollup read 0.3 s after a vCPU thread is seen blocked in ioctl(KVM_RUN), then the monitor is killed. USS = Private_Clean + Private_Dirty; PSS shares library pages with other processes mapping them."
  else
    note "resident memory: skipped (exit_first.elf does not start with the expected instructions)"
    resident_runs=0
  fi
fi

active_list=$(IFS=,; echo "${active[*]}")
log "vmm.sh: $runs rounds of ${active[*]} ($memory MiB guest)"
python3 "$top/bench/vmm_bench.py" --work "$work" --launcher "$work/vmm_spawn" \
  --columns "$active_list" --runs "$runs" --warmup "$warmup" --trace-runs "$trace_runs" \
  --resident-runs "$resident_runs" --versions "$versions" --notes "$notes" --host "$host" --guest exit_first.elf \
  --memory "$memory" "${json_flag[@]}"
