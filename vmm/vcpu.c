/* vcpu.c — vCPU setup (CPUID, LAPIC, MSRs, FPU) and the KVM_RUN loop with its exit handling:
 * port I/O (debug-exit, i8042 reset, CMOS, the bus), MMIO (the bus), and the exits that end
 * the VM (triple fault, system events, internal errors). */
#include <linux/kvm.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "vmm.h"

#define CPUID_MAX_ENTRIES 256
#define MSR_IA32_MISC_ENABLE 0x1a0
#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_EXTINT 0x7
#define APIC_MODE_NMI 0x4

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static int vcpu_set_cpuid(struct vm *vm, struct vcpu *c, struct isola_error **err)
{
  _cleanup_free_ struct kvm_cpuid2 *cpuid =
      xzalloc(sizeof(*cpuid) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
  cpuid->nent = CPUID_MAX_ENTRIES;
  if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0)
    return isola_fail(err, errno, "KVM_GET_SUPPORTED_CPUID");
  for (uint32_t i = 0; i < cpuid->nent; i++) {
    struct kvm_cpuid_entry2 *e = &cpuid->entries[i];
    switch (e->function) {
    case 1:
      /* Initial APIC id, and "running under a hypervisor". */
      e->ebx = (e->ebx & 0x00ffffffu) | (c->id << 24);
      e->ecx |= 1u << 31;
      break;
    case 0xb:
    case 0x1f:
      e->edx = c->id; /* x2APIC id */
      break;
    default:
      break;
    }
  }
  if (ioctl(c->fd, KVM_SET_CPUID2, cpuid) < 0)
    return isola_fail(err, errno, "KVM_SET_CPUID2 on vCPU %u", c->id);
  return 0;
}

static int vcpu_set_lapic(struct vcpu *c, struct isola_error **err)
{
  /* LINT0 = ExtINT (the PIC's output), LINT1 = NMI, as the MP spec's virtual-wire mode. */
  struct kvm_lapic_state lapic;
  if (ioctl(c->fd, KVM_GET_LAPIC, &lapic) < 0)
    return isola_fail(err, errno, "KVM_GET_LAPIC on vCPU %u", c->id);
  uint32_t lvt0, lvt1;
  memcpy(&lvt0, &lapic.regs[APIC_LVT0], 4);
  memcpy(&lvt1, &lapic.regs[APIC_LVT1], 4);
  lvt0 = (lvt0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
  lvt1 = (lvt1 & ~0x700u) | (APIC_MODE_NMI << 8);
  memcpy(&lapic.regs[APIC_LVT0], &lvt0, 4);
  memcpy(&lapic.regs[APIC_LVT1], &lvt1, 4);
  if (ioctl(c->fd, KVM_SET_LAPIC, &lapic) < 0)
    return isola_fail(err, errno, "KVM_SET_LAPIC on vCPU %u", c->id);
  return 0;
}

int vcpu_init(struct vm *vm, unsigned id, struct isola_error **err)
{
  struct vcpu *c = &vm->vcpus[id];
  c->vm = vm;
  c->id = id;
  c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long) id);
  if (c->fd < 0)
    return isola_fail(err, errno, "KVM_CREATE_VCPU %u", id);
  int size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size < (int) sizeof(struct kvm_run))
    return isola_fail(err, errno, "KVM_GET_VCPU_MMAP_SIZE");
  void *run = mmap(NULL, (size_t) size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
  if (run == MAP_FAILED)
    return isola_fail(err, errno, "cannot map vCPU %u's kvm_run", id);
  c->run = run;
  c->run_size = (size_t) size;
  int r = vcpu_set_cpuid(vm, c, err);
  if (r < 0)
    return r;
  r = vcpu_set_lapic(c, err);
  if (r < 0)
    return r;
  _cleanup_free_ struct kvm_msrs *msrs = xzalloc(sizeof(*msrs) + sizeof(struct kvm_msr_entry));
  msrs->nmsrs = 1;
  msrs->entries[0] = (struct kvm_msr_entry){.index = MSR_IA32_MISC_ENABLE, .data = 1};
  ioctl(c->fd, KVM_SET_MSRS, msrs); /* fast strings; best effort: not every hypervisor has it */
  struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
  if (ioctl(c->fd, KVM_SET_FPU, &fpu) < 0)
    return isola_fail(err, errno, "KVM_SET_FPU on vCPU %u", id);
  return 0;
}

/* Ports handled here rather than on the bus: they end or reset the VM. */
static void handle_pio(struct vcpu *c, uint16_t port, uint8_t *data, uint32_t len, bool out)
{
  struct vm *vm = c->vm;
  switch (port) {
  case VM_PORT_DEBUG_EXIT:
    if (out) {
      vm_stop(vm, VM_EXIT_DEBUG, (data[0] << 1) | 1, "guest wrote 0x%02x to the debug-exit port",
              data[0]);
      return;
    }
    break;
  case 0x64: /* i8042 command/status */
    if (out) {
      if (data[0] == 0xfe) {
        if (vm->serial && serial_saw_panic(vm->serial))
          vm_stop(vm, VM_EXIT_PANIC, VM_STATUS_PANIC, "guest kernel panic");
        else
          vm_stop(vm, VM_EXIT_RESET, 0, "guest reset (i8042)");
      }
    } else {
      memset(data, 0, len); /* no data, input buffer empty */
    }
    return;
  case 0x60: /* i8042 data */
  case 0x70: /* CMOS index and data: an RTC that reads zeros */
  case 0x71:
  case 0x80: /* POST code */
    if (!out)
      memset(data, 0, len);
    return;
  default:
    break;
  }
  bus_dispatch(&vm->pio, port, data, len, out);
}

static void handle_io_exit(struct vcpu *c)
{
  struct kvm_run *run = c->run;
  uint32_t size = run->io.size, count = run->io.count;
  /* KVM fills these, but a bogus offset must not send us outside the mapping. */
  uint64_t total = (uint64_t) size * count;
  if (size == 0 || size > 4 || run->io.data_offset > c->run_size ||
      total > c->run_size - run->io.data_offset) {
    vm_stop(c->vm, VM_EXIT_INTERNAL, VM_STATUS_INTERNAL, "vCPU %u: malformed I/O exit", c->id);
    return;
  }
  uint8_t *data = (uint8_t *) run + run->io.data_offset;
  for (uint32_t i = 0; i < count && !atomic_load(&c->vm->stopping); i++)
    handle_pio(c, run->io.port, data + (size_t) i * size, size,
               run->io.direction == KVM_EXIT_IO_OUT);
}

static void stop_internal_error(struct vcpu *c)
{
  struct kvm_run *run = c->run;
  static const char *const sub[] = {"", "emulation failure", "exception during event delivery",
                                    "event delivery failure", "unexpected exit reason"};
  uint32_t s = run->internal.suberror;
  struct kvm_regs regs = {0};
  ioctl(c->fd, KVM_GET_REGS, &regs);
  vm_stop(c->vm, VM_EXIT_INTERNAL, VM_STATUS_INTERNAL,
          "guest stopped: KVM internal error (%s) suberror %u on vCPU %u at rip 0x%llx",
          s < ARRAY_SIZE(sub) && s ? sub[s] : "unknown", s, c->id, (unsigned long long) regs.rip);
}

static bool guest_panicked(struct vm *vm)
{
  return vm->serial && serial_saw_panic(vm->serial);
}

void *vcpu_thread(void *arg)
{
  struct vcpu *c = arg;
  struct vm *vm = c->vm;
  struct kvm_run *run = c->run;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  /* No guest code before vm_run() has put the sandbox in place. */
  pthread_mutex_lock(&vm->stop_lock);
  while (!vm->released)
    pthread_cond_wait(&vm->stop_cond, &vm->stop_lock);
  pthread_mutex_unlock(&vm->stop_lock);
  int sr = vm->sandbox ? vm_sandbox_vcpu() : 0;
  if (sr < 0)
    vm_stop(vm, VM_EXIT_MONITOR, VM_STATUS_MONITOR, "vCPU %u: cannot install its seccomp layer: %s",
            c->id, strerror(-sr));
  bool first = c->id == 0;
  while (!atomic_load(&vm->stopping)) {
    if (first)
      vm->timing.first_run_ns = now_ns();
    int r = ioctl(c->fd, KVM_RUN, 0);
    if (first) {
      vm->timing.first_exit_ns = now_ns();
      first = false;
    }
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      vm_stop(vm, VM_EXIT_MONITOR, VM_STATUS_MONITOR, "KVM_RUN on vCPU %u: %s", c->id,
              strerror(errno));
      break;
    }
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
      handle_io_exit(c);
      break;
    case KVM_EXIT_MMIO:
      if (run->mmio.len <= sizeof(run->mmio.data))
        bus_dispatch(&vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
                     run->mmio.is_write);
      break;
    case KVM_EXIT_INTR:
      break;
    case KVM_EXIT_HLT:
      /* Only without an in-kernel LAPIC; nothing would wake this vCPU again. */
      vm_stop(vm, VM_EXIT_RESET, 0, "guest halted vCPU %u", c->id);
      break;
    case KVM_EXIT_SHUTDOWN:
      if (guest_panicked(vm))
        vm_stop(vm, VM_EXIT_PANIC, VM_STATUS_PANIC, "guest kernel panic");
      else
        vm_stop(vm, VM_EXIT_TRIPLE_FAULT, VM_STATUS_TRIPLE_FAULT,
                "guest stopped: triple fault on vCPU %u", c->id);
      break;
    case KVM_EXIT_SYSTEM_EVENT:
      if (run->system_event.type == KVM_SYSTEM_EVENT_CRASH || guest_panicked(vm))
        vm_stop(vm, VM_EXIT_PANIC, VM_STATUS_PANIC, "guest kernel panic");
      else
        vm_stop(vm, VM_EXIT_RESET, 0, "guest %s",
                run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? "powered off" : "reset");
      break;
    case KVM_EXIT_INTERNAL_ERROR:
      stop_internal_error(c);
      break;
    case KVM_EXIT_FAIL_ENTRY:
      vm_stop(vm, VM_EXIT_INTERNAL, VM_STATUS_INTERNAL,
              "guest stopped: KVM entry failure 0x%llx on vCPU %u",
              (unsigned long long) run->fail_entry.hardware_entry_failure_reason, c->id);
      break;
    default:
      vm_stop(vm, VM_EXIT_INTERNAL, VM_STATUS_INTERNAL,
              "guest stopped: unexpected KVM exit %u on vCPU %u", run->exit_reason, c->id);
      break;
    }
  }
  return NULL;
}

void vcpu_kick_all(struct vm *vm)
{
  for (unsigned i = 0; i < vm->ncpus; i++) {
    struct vcpu *c = &vm->vcpus[i];
    if (!c->started)
      continue;
    /* immediate_exit covers a vCPU between its stopping check and KVM_RUN; the signal one
     * that is inside KVM_RUN (including an AP parked in wait-for-SIPI or HLT). */
    __atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_RELEASE);
    pthread_kill(c->thread, SIGUSR1);
  }
}
