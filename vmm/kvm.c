/* kvm.c — the VM: guest RAM, /dev/kvm, the in-kernel irqchip and PIT, interrupts, and the
 * run/stop lifecycle that joins the vCPU and event-loop threads. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "vmm.h"

/* Below the IOAPIC, out of the way of RAM and the MMIO window: only VT-x uses them. */
#define VM_TSS_ADDR 0xfffbd000ull
#define VM_IDENTITY_MAP_ADDR 0xfffbc000ull

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

int vm_create(struct vm **out, uint64_t mem_size, unsigned ncpus, struct isola_error **err)
{
  if (mem_size < VM_MEM_MIN || mem_size > VM_MEM_MAX || mem_size % 4096)
    return isola_failx(err, EINVAL, "guest memory of %llu MiB is out of range (%llu-%llu MiB)",
                       (unsigned long long) (mem_size >> 20),
                       (unsigned long long) (VM_MEM_MIN >> 20),
                       (unsigned long long) (VM_MEM_MAX >> 20));
  if (ncpus < 1 || ncpus > VM_MAX_CPUS)
    return isola_failx(err, EINVAL, "%u vCPUs is out of range (1-%u)", ncpus, VM_MAX_CPUS);
  struct vm *vm = xzalloc(sizeof(*vm));
  vm->mem_size = mem_size;
  vm->ncpus = ncpus;
  vm->kvm_fd = vm->vm_fd = vm->console_fd = -1;
  vm->next_irq = VM_IRQ_FIRST;
  pthread_mutex_init(&vm->stop_lock, NULL);
  pthread_cond_init(&vm->stop_cond, NULL);
  /* MAP_NORESERVE: the guest touches what it uses; untouched RAM costs nothing. */
  void *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    int r = isola_fail(err, errno, "cannot map %llu MiB of guest memory",
                       (unsigned long long) (mem_size >> 20));
    vm_destroy(vm);
    return r;
  }
  vm->mem = mem;
  madvise(mem, mem_size, MADV_MERGEABLE);
  *out = vm;
  return 0;
}

/* The kvm_pvm software hypervisor (see /work/shared/MACHINE.md): its module is loaded on the
 * host. Real KVM (kvm_intel/kvm_amd) gets the plain command line. */
static bool detect_pvm_host(void)
{
  struct stat st;
  const char *force = getenv("ISOLA_VMM_HOST"); /* "pvm" or "kvm": for tests */
  if (force)
    return strcmp(force, "pvm") == 0;
  return stat("/sys/module/kvm_pvm", &st) == 0 && stat("/sys/module/kvm_intel", &st) != 0 &&
         stat("/sys/module/kvm_amd", &st) != 0;
}

const char *host_cmdline_workarounds(const struct vm *vm)
{
  /* What the guest kernel needs on kvm_pvm (kernel-config/README.md): the emulator cannot run
   * xrstor, popcnt, clac/stac, so the kernel must not use them (CPUID masking from the monitor
   * does not take effect there), and isola.pvm=1 turns on the guest kernel's PVM fixes
   * (SYSCALL completion, no int3 self-test). reboot=k: reset through the i8042, not a triple
   * fault (int3 path). maxcpus=1: a Linux guest's second vCPU never comes up there (the AP
   * bring-up spins for ever), so Linux keeps to the boot vCPU; the other vCPUs exist and stay
   * parked (test guests, which ignore the command line, use them all). */
#define PVM_LINE "noxsave clearcpuid=popcnt,smap,smep,cx16 reboot=k isola.pvm=1"
  if (!vm->pvm_host)
    return "";
  return vm->ncpus > 1 ? PVM_LINE " maxcpus=1" : PVM_LINE;
#undef PVM_LINE
}

static int kvm_check_cap(struct vm *vm, long cap)
{
  return ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, cap);
}

int vm_kvm_init(struct vm *vm, struct isola_error **err)
{
  vm->pvm_host = detect_pvm_host();
  vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (vm->kvm_fd < 0)
    return isola_fail(err, errno, "cannot open /dev/kvm");
  int version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION)
    return isola_failx(err, ENOTSUP, "/dev/kvm: API version %d, expected %d", version,
                       KVM_API_VERSION);
  static const struct {
    long cap;
    const char *name;
  } needed[] = {
      {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
      {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
      {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
  };
  for (size_t i = 0; i < ARRAY_SIZE(needed); i++)
    if (kvm_check_cap(vm, needed[i].cap) <= 0)
      return isola_failx(err, ENOTSUP, "/dev/kvm lacks %s", needed[i].name);
  int max_vcpus = kvm_check_cap(vm, KVM_CAP_MAX_VCPUS);
  if (max_vcpus <= 0)
    max_vcpus = kvm_check_cap(vm, KVM_CAP_NR_VCPUS);
  if (max_vcpus > 0 && vm->ncpus > (unsigned) max_vcpus)
    return isola_failx(err, EINVAL, "%u vCPUs requested, /dev/kvm allows %d", vm->ncpus, max_vcpus);
  vm->has_irqfd = kvm_check_cap(vm, KVM_CAP_IRQFD) > 0;
  vm->has_ioeventfd = kvm_check_cap(vm, KVM_CAP_IOEVENTFD) > 0;

  do
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
  while (vm->vm_fd < 0 && errno == EINTR);
  if (vm->vm_fd < 0)
    return isola_fail(err, errno, "KVM_CREATE_VM");
  /* Only VT-x needs these; other hypervisors may refuse them harmlessly. */
  if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long) VM_TSS_ADDR) < 0 && errno != EINVAL &&
      errno != ENOTTY)
    return isola_fail(err, errno, "KVM_SET_TSS_ADDR");
  uint64_t idmap = VM_IDENTITY_MAP_ADDR;
  if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0 && errno != EINVAL && errno != ENOTTY)
    return isola_fail(err, errno, "KVM_SET_IDENTITY_MAP_ADDR");
  /* Guest RAM before the irqchip, as Firecracker does: a memory slot made after
   * KVM_CREATE_IRQCHIP waited 4-10 ms here (exec → first guest instruction 11 ms; 3 ms now). */
  struct kvm_userspace_memory_region region = {
      .slot = 0,
      .guest_phys_addr = 0,
      .memory_size = vm->mem_size,
      .userspace_addr = (uint64_t) (uintptr_t) vm->mem,
  };
  if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
    return isola_fail(err, errno, "KVM_SET_USER_MEMORY_REGION of %llu MiB",
                      (unsigned long long) (vm->mem_size >> 20));

  if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
    return isola_fail(err, errno, "KVM_CREATE_IRQCHIP");
  /* The PIT: Linux calibrates against it and port 0x61 lives there. */
  struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
  if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
    return isola_fail(err, errno, "KVM_CREATE_PIT2");
  vm->vcpus = xzalloc(vm->ncpus * sizeof(*vm->vcpus));
  for (unsigned i = 0; i < vm->ncpus; i++)
    vm->vcpus[i].fd = -1;
  for (unsigned i = 0; i < vm->ncpus; i++) {
    int r = vcpu_init(vm, i, err);
    if (r < 0)
      return r;
  }
  int r = serial_create(vm, err);
  if (r < 0)
    return r;
  if (!vm->loop) {
    r = loop_create(&vm->loop, err);
    if (r < 0)
      return r;
  }
  vm->timing.kvm_ready_ns = now_ns();
  return 0;
}

int vm_irq_alloc(struct vm *vm)
{
  if (vm->next_irq == 8) /* the RTC's */
    vm->next_irq++;
  if (vm->next_irq > VM_IRQ_LAST)
    return -ENOSPC;
  return (int) vm->next_irq++;
}

void vm_irq_trigger(struct vm *vm, unsigned gsi)
{
  if (vm->vm_fd < 0)
    return;
  /* An edge: the IOAPIC pins are programmed edge-triggered by the MP table's defaults. */
  struct kvm_irq_level irq = {.irq = gsi, .level = 1};
  ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
  irq.level = 0;
  ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
}

void vm_stop(struct vm *vm, enum vm_exit_kind kind, int status, const char *fmt, ...)
{
  pthread_mutex_lock(&vm->stop_lock);
  if (vm->exit_kind == VM_EXIT_NONE) {
    vm->exit_kind = kind;
    vm->exit_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vm->exit_reason, sizeof(vm->exit_reason), fmt, ap);
    va_end(ap);
    vm->timing.exit_ns = now_ns();
    atomic_store(&vm->stopping, true);
    pthread_cond_broadcast(&vm->stop_cond);
  }
  pthread_mutex_unlock(&vm->stop_lock);
}

static void kick_handler(int sig)
{
  (void) sig; /* only there to make KVM_RUN return EINTR */
}

int vm_run(struct vm *vm, struct isola_error **err)
{
  /* SIGUSR1 kicks a vCPU out of KVM_RUN; it is blocked everywhere except inside KVM_RUN
   * (KVM_SET_SIGNAL_MASK is not needed: the handler plus immediate_exit suffice). */
  struct sigaction sa = {.sa_handler = kick_handler};
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGUSR1, &sa, NULL) < 0)
    return isola_fail(err, errno, "sigaction(SIGUSR1)");
  int r = loop_start(vm->loop, err);
  if (r < 0)
    return r;
  unsigned started = 0;
  for (; started < vm->ncpus; started++) {
    struct vcpu *c = &vm->vcpus[started];
    int e = pthread_create(&c->thread, NULL, vcpu_thread, c);
    if (e) {
      vm_stop(vm, VM_EXIT_MONITOR, VM_STATUS_MONITOR, "cannot start vCPU %u: %s", started,
              strerror(e));
      break;
    }
    c->started = true;
  }
  if (vm->sandbox && started == vm->ncpus) {
    _cleanup_error_ struct isola_error *e = NULL;
    if (vm_sandbox(vm->has_fs, &e) < 0)
      vm_stop(vm, VM_EXIT_MONITOR, VM_STATUS_MONITOR, "%s", e->msg);
  }
  /* The vCPU threads wait for this: the guest runs only under the filter. */
  pthread_mutex_lock(&vm->stop_lock);
  vm->released = true;
  pthread_cond_broadcast(&vm->stop_cond);
  while (vm->exit_kind == VM_EXIT_NONE)
    pthread_cond_wait(&vm->stop_cond, &vm->stop_lock);
  pthread_mutex_unlock(&vm->stop_lock);
  vcpu_kick_all(vm);
  for (unsigned i = 0; i < vm->ncpus; i++)
    if (vm->vcpus[i].started) {
      pthread_join(vm->vcpus[i].thread, NULL);
      vm->vcpus[i].started = false;
    }
  loop_stop(vm->loop);
  return vm->exit_status;
}

void vm_destroy(struct vm *vm)
{
  if (!vm)
    return;
  for (unsigned i = 0; i < vm->nvirtio; i++)
    virtio_mmio_destroy(vm->virtio[i]);
  if (vm->serial)
    serial_destroy(vm->serial);
  if (vm->loop)
    loop_destroy(vm->loop);
  if (vm->vcpus) {
    for (unsigned i = 0; i < vm->ncpus; i++) {
      if (vm->vcpus[i].run)
        munmap(vm->vcpus[i].run, vm->vcpus[i].run_size);
      if (vm->vcpus[i].fd >= 0)
        close(vm->vcpus[i].fd);
    }
    free(vm->vcpus);
  }
  if (vm->vm_fd >= 0)
    close(vm->vm_fd);
  if (vm->kvm_fd >= 0)
    close(vm->kvm_fd);
  if (vm->mem)
    munmap(vm->mem, vm->mem_size);
  pthread_mutex_destroy(&vm->stop_lock);
  pthread_cond_destroy(&vm->stop_cond);
  free(vm);
}
