/* vmm.h — the one internal header of isola's KVM monitor (libisola_vmm).
 *
 * A VM is one process: guest RAM is one anonymous mapping [0, mem_size) below the MMIO hole,
 * each vCPU runs KVM_RUN on its own pthread, and one event-loop thread (epoll) owns device I/O.
 *
 * Contracts that hold everywhere below:
 *  - Functions returning int return >= 0 on success and a negative errno on failure; those that
 *    take `struct isola_error **err` also set a one-line message there (lib/util.h). Nothing
 *    here prints or exits: only main.c does.
 *  - The guest is hostile. A guest-physical address (gpa_t) is never dereferenced directly: it
 *    becomes a host pointer only through vm_gpa_ptr()/VM_GPA_PTR(), which check gpa+len with
 *    overflow-safe arithmetic against guest RAM. No allocation is sized by the guest without a
 *    cap. A misbehaving guest may stop its own VM (vm_stop) or break one of its queues, never
 *    the monitor.
 *  - Call order: vm_create → (loader_*) → vm_kvm_init → devices (virtio_*_create) →
 *    boot_setup → vm_run → vm_destroy. Bus registrations are only made before vm_run, so the
 *    vCPU threads read the bus without locks.
 *
 * Guest physical memory map (x86-64, all below 4 GiB):
 *   0x00000500  GDT                     0x00007000  zero page / hvm_start_info (+ memmap)
 *   0x00008000  free for guests' AP trampolines (test guests use it)
 *   0x00009000  PML4, PDPT, 4 PDs (identity map of 4 GiB with 2 MiB pages, 64-bit boot only)
 *   0x00020000  kernel command line (VM_CMDLINE_MAX bytes)
 *   0x0009fc00  MP floating pointer + MP configuration table (reserved in the e820 map)
 *   0x00100000  kernel (ELF PT_LOAD at p_paddr); the initrd goes at the top of RAM
 *   [0, mem_size) RAM, mem_size <= VM_MEM_MAX
 *   0xd0000000  virtio-mmio devices, VIRTIO_MMIO_STRIDE apart, IRQs from VM_IRQ_FIRST
 *   0xfec00000  IOAPIC, 0xfee00000 LAPIC (in-kernel irqchip)
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util.h"

/* ---- guest physical addresses ---- */

/* A guest-physical address: a distinct type so that it can't be used as a host pointer or
 * mixed with a host size by accident. */
typedef struct {
  uint64_t v;
} gpa_t;
#define GPA(x) ((gpa_t){(uint64_t) (x)})

#define VM_MEM_MIN (4ull << 20)
#define VM_MEM_MAX (3072ull << 20) /* RAM stays below the MMIO hole */
#define VM_MMIO_BASE 0xd0000000ull
#define VM_IOAPIC_BASE 0xfec00000ull
#define VM_LAPIC_BASE 0xfee00000ull
#define VM_GDT_ADDR 0x500ull
#define VM_BOOT_INFO_ADDR 0x7000ull /* boot_params (Linux) or hvm_start_info (PVH) */
#define VM_PML4_ADDR 0x9000ull
#define VM_CMDLINE_ADDR 0x20000ull
#define VM_CMDLINE_MAX 4096u /* including the NUL */
#define VM_MPTABLE_ADDR 0x9fc00ull
#define VM_HIMEM_START 0x100000ull
#define VM_MAX_CPUS 64u
#define VM_IRQ_FIRST 5u /* GSIs handed to devices: 5, 6, 7, 9, 10, ... (never 4, 8) */
#define VM_IRQ_LAST 23u

/* Exit statuses of isola-vmm (and vm_run's verdict). Debug-exit statuses are odd
 * ((b << 1) | 1 as QEMU's isa-debug-exit), ours are even so they never collide. */
enum vm_exit_kind {
  VM_EXIT_NONE = 0,     /* still running */
  VM_EXIT_DEBUG,        /* guest wrote byte b to port 0xf4: status (b << 1) | 1 */
  VM_EXIT_RESET,        /* i8042 reset (0xFE to port 0x64) or KVM_SYSTEM_EVENT: status 0 */
  VM_EXIT_TRIPLE_FAULT, /* KVM_EXIT_SHUTDOWN: status 120 */
  VM_EXIT_INTERNAL,     /* KVM_EXIT_INTERNAL_ERROR, unknown exit, broken vCPU: status 122 */
  VM_EXIT_PANIC,        /* a reset after "Kernel panic" on the serial console: status 124 */
  VM_EXIT_MONITOR,      /* the monitor itself failed (an ioctl, a thread): status 1 */
};
#define VM_STATUS_TRIPLE_FAULT 120
#define VM_STATUS_INTERNAL 122
#define VM_STATUS_PANIC 124
#define VM_STATUS_MONITOR 1

/* ---- the bus: MMIO and port I/O dispatch ---- */

/* A device's handler for an access of len (1, 2, 4 or 8) bytes at offset `off` into its
 * region. On a read it fills data[0..len); on a write it consumes it. Runs on a vCPU thread:
 * it must take the device's own lock if it shares state with the event loop. */
typedef void (*bus_access_fn)(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
                              bool is_write);

struct bus_region {
  uint64_t base, len;
  bus_access_fn fn;
  void *opaque;
};

#define BUS_MAX_REGIONS 32
struct bus {
  struct bus_region regions[BUS_MAX_REGIONS];
  unsigned n;
};

/* Add [base, base+len) to the bus; -EEXIST if it overlaps a region, -ENOSPC when full,
 * -EINVAL if len is 0 or base+len overflows. Only before vm_run. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_access_fn fn, void *opaque);
/* Dispatch one access. Returns false when no region covers all of [addr, addr+len): then a
 * read returns all ones and a write is dropped (as on a bus with nothing attached). */
bool bus_dispatch(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

/* ---- the event loop (one epoll thread for device I/O) ---- */

/* Called on the loop thread with the epoll events that fired. */
typedef void (*loop_fn)(void *opaque, uint32_t events);
struct loop;

/* Create an epoll loop (not yet running). */
int loop_create(struct loop **out, struct isola_error **err);
/* Watch fd for events (EPOLLIN, ...); fn(opaque, events) runs on the loop thread. The caller
 * keeps owning fd and must loop_del_fd() it before closing it. Safe from any thread. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *opaque);
int loop_del_fd(struct loop *loop, int fd);
/* Start the loop thread; loop_stop() wakes it, joins it, and must be called before
 * loop_destroy() if loop_start() succeeded. */
int loop_start(struct loop *loop, struct isola_error **err);
void loop_stop(struct loop *loop);
void loop_destroy(struct loop *loop);

/* ---- the VM ---- */

struct vcpu {
  struct vm *vm;
  unsigned id;
  int fd;
  struct kvm_run *run; /* the vCPU's shared kvm_run page (mmap'd) */
  size_t run_size;
  pthread_t thread;
  bool started;
};

struct serial;      /* 8250 at 0x3f8 (serial.c) */
struct virtio_mmio; /* one virtio-mmio transport (virtio_mmio.c) */

/* Timestamps (CLOCK_MONOTONIC, ns) for the timing probe (ISOLA_VMM_TIMING). */
struct vm_timing {
  uint64_t main_ns, kvm_ready_ns, first_run_ns, first_exit_ns, exit_ns;
};

struct vm {
  uint8_t *mem; /* guest RAM, mem_size bytes, gpa 0 = mem[0] */
  uint64_t mem_size;
  unsigned ncpus;

  int kvm_fd, vm_fd; /* -1 until vm_kvm_init */
  bool has_irqfd, has_ioeventfd;
  bool pvm_host; /* the software hypervisor kvm_pvm: see host_cmdline_workarounds() */
  struct vcpu *vcpus;

  struct bus mmio, pio;
  struct loop *loop;
  struct serial *serial;
  int console_fd; /* where guest serial output goes, -1 = nowhere (still scanned for panics) */

  struct virtio_mmio *virtio[VM_IRQ_LAST - VM_IRQ_FIRST + 1];
  unsigned nvirtio;
  unsigned next_irq;

  /* The first stop wins: kind, status and a one-line reason for main.c. */
  pthread_mutex_t stop_lock;
  pthread_cond_t stop_cond;
  _Atomic bool stopping;
  enum vm_exit_kind exit_kind;
  int exit_status;
  char exit_reason[160];

  struct vm_timing timing;
  bool sandbox;  /* vm_run() installs the seccomp filter (sandbox.c) once its threads exist */
  bool has_fs;   /* a shared directory (virtio-fs): the filter allows its file calls */
  bool released; /* under stop_lock: the vCPU threads may enter the guest */
};

/* The monitor's seccomp filter for the whole process (sandbox.c): from then on only what
 * serving the guest needs; `files` adds the FUSE server's file calls (a shared directory). */
int vm_sandbox(bool files, struct isola_error **err);
/* The calling vCPU thread's own layer on top: no file calls, no sockets. After vm_sandbox
 * (or alone, in tests); 0 or a negative errno. */
int vm_sandbox_vcpu(void);

/* Move the monitor into its jail (jail.c): new mount, network, IPC and UTS namespaces, an empty
 * read-only root with only the directories keep[0..n) (absolute paths, at most 8) bound in at
 * their own paths, and no capabilities but, with `files` (a shared directory), those its FUSE
 * server needs. Single-threaded only: after every device is set up, before vm_run. Needs
 * root. */
int vm_jail(const char *const *keep, size_t n, bool files, struct isola_error **err);

/* Allocate guest RAM (mem_size bytes, VM_MEM_MIN..VM_MEM_MAX, a multiple of 4 KiB) for
 * ncpus vCPUs (1..VM_MAX_CPUS). Does not touch /dev/kvm, so input can be loaded and checked
 * first. Free with vm_destroy(). */
int vm_create(struct vm **out, uint64_t mem_size, unsigned ncpus, struct isola_error **err);
/* Open /dev/kvm, check the API version and capabilities, create the VM, its in-kernel
 * irqchip (PIC + IOAPIC + LAPICs) and PIT, register guest RAM, create the vCPUs (not yet
 * running), the serial port, the event loop. Detects the kvm_pvm host (vm->pvm_host). */
int vm_kvm_init(struct vm *vm, struct isola_error **err);
/* Start the event loop and one thread per vCPU; wait until the VM stops; stop and join all
 * threads. Returns the exit status (see VM_STATUS_*; vm->exit_kind/exit_reason say why), or a
 * negative errno when the VM could not start. */
int vm_run(struct vm *vm, struct isola_error **err);
/* Record why the VM stops (the first call wins) and wake vm_run. Any thread. */
void vm_stop(struct vm *vm, enum vm_exit_kind kind, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void vm_destroy(struct vm *vm);

/* The host pointer for [gpa, gpa+len) in guest RAM, or NULL if any byte of it is outside RAM
 * or gpa+len overflows. len 0 is allowed (a pointer at gpa <= mem_size). This is the only
 * way guest addresses become host pointers (Solo5's HVT_CHECKED_GPA_P pattern). */
static inline void *vm_gpa_ptr(const struct vm *vm, gpa_t gpa, uint64_t len)
{
  if (gpa.v > vm->mem_size || len > vm->mem_size - gpa.v)
    return NULL;
  return vm->mem + gpa.v;
}
#define VM_GPA_PTR(vm, gpa, type) ((type *) vm_gpa_ptr((vm), (gpa), sizeof(type)))

/* Allocate the next device GSI (VM_IRQ_FIRST..VM_IRQ_LAST, skipping 8); -ENOSPC when out. */
int vm_irq_alloc(struct vm *vm);
/* Raise an edge on gsi (irqfd when the host has it, else KVM_IRQ_LINE 1 then 0). Any thread;
 * a no-op before vm_kvm_init (unit tests run devices without KVM). */
void vm_irq_trigger(struct vm *vm, unsigned gsi);

/* ---- vCPUs (vcpu.c) ---- */

/* Create vCPU `id`'s fd and kvm_run mapping, set its CPUID (APIC id = id), LAPIC LINT0/1 and
 * MSRs. Registers of the boot vCPU are set by boot_setup; the others wait for INIT-SIPI. */
int vcpu_init(struct vm *vm, unsigned id, struct isola_error **err);
/* Thread body: KVM_RUN until the VM stops. Exits handled: IO (bus + fixed ports below),
 * MMIO (bus), HLT, SHUTDOWN, SYSTEM_EVENT, INTERNAL_ERROR, FAIL_ENTRY. */
void *vcpu_thread(void *arg);
/* Make every vCPU leave KVM_RUN (immediate_exit + a signal) after vm_stop. */
void vcpu_kick_all(struct vm *vm);

/* Fixed ports handled by vcpu.c: 0xf4 debug-exit, 0x64 i8042 (0xFE = reset), 0x60 data,
 * 0x70/0x71 CMOS (reads 0), 0x80 POST, 0x3f8-0x3ff serial (serial.c). Others: reads return all
 * ones, writes are dropped. 0x40-0x43 and 0x61 belong to the in-kernel PIT. */
#define VM_PORT_DEBUG_EXIT 0xf4

/* ---- serial (serial.c): a minimal 8250/16550 on 0x3f8, IRQ 4 ---- */

int serial_create(struct vm *vm, struct isola_error **err);
void serial_destroy(struct serial *s);
/* True once the guest printed "Kernel panic" (the panic verdict, see VM_EXIT_PANIC). */
bool serial_saw_panic(const struct serial *s);

/* ---- loading and booting (loader.c, boot.c, mptable.c) ---- */

enum boot_protocol {
  BOOT_PVH,   /* 32-bit protected mode, paging off, ebx = hvm_start_info (PVH ELF note) */
  BOOT_LINUX, /* 64-bit, identity-mapped, rsi = boot_params (Linux 64-bit boot protocol) */
};

struct boot_info {
  enum boot_protocol protocol;
  gpa_t entry; /* PVH: XEN_ELFNOTE_PHYS32_ENTRY; Linux: e_entry (must be in RAM) */
  gpa_t kernel_start, kernel_end;
  gpa_t initrd; /* 0 when none */
  uint64_t initrd_size;
};

/* Load an ELF64 x86-64 vmlinux: every PT_LOAD at p_paddr, each offset/size checked against the
 * file and guest RAM. The protocol: a PT_NOTE "Xen" note of type 18 (PHYS32_ENTRY) → PVH;
 * otherwise the Linux 64-bit protocol at e_entry. The file is read with pread, at most
 * the size of guest RAM. */
int loader_load_kernel(struct vm *vm, const char *path, struct boot_info *bi,
                       struct isola_error **err);
/* Load an initrd at the top of RAM (page aligned, above the kernel); fills bi->initrd*. */
int loader_load_initrd(struct vm *vm, const char *path, struct boot_info *bi,
                       struct isola_error **err);

/* The command line the guest boots with: user's cmdline + " panic=-1" (unless it sets panic=)
 * + host workarounds (host_cmdline_workarounds) + one "virtio_mmio.device=<size>@<base>:<irq>"
 * per device. malloc'd; -E2BIG (with a message) when longer than VM_CMDLINE_MAX - 1. */
int boot_cmdline(struct vm *vm, const char *user, char **out, struct isola_error **err);
/* The kernel command-line words this host needs ("" on real KVM): on the kvm_pvm software
 * hypervisor, turn off what it cannot emulate and enable the guest kernel's PVM fixes. */
const char *host_cmdline_workarounds(const struct vm *vm);
/* Write the GDT, page tables, cmdline, e820 map, boot_params or hvm_start_info, the MP table,
 * and the boot vCPU's registers. After vm_kvm_init and all devices. */
int boot_setup(struct vm *vm, const struct boot_info *bi, const char *cmdline,
               struct isola_error **err);
/* Write an MP floating pointer and config table at VM_MPTABLE_ADDR: ncpus processors (APIC
 * ids 0..n-1, 0 is the BSP), one ISA bus, the IOAPIC (id ncpus) with ISA IRQs 0-15 routed
 * 1:1 and device GSIs up to VM_IRQ_LAST. -E2BIG if it would not fit below 0xa0000. */
int mptable_write(struct vm *vm, struct isola_error **err);

/* ---- virtqueues (virtq.c): the one split-virtqueue implementation ---- */

#define VIRTQ_MAX_SIZE 1024u  /* the largest QueueNumMax a device may offer */
#define VIRTQ_CHAIN_MAX 1024u /* descriptors in one chain, indirect ones included */

struct virtq {
  struct vm *vm;
  uint16_t num;   /* queue size, a power of 2, 1..num_max (valid once ready) */
  bool ready;     /* set by the transport after checking the rings lie in guest RAM */
  bool broken;    /* the guest broke the protocol: no more pops until reset */
  bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
  gpa_t desc, avail, used;
  /* Host views of the three rings, checked once by virtq_setup (guest RAM never moves). */
  uint8_t *desc_h, *avail_h, *used_h;
  uint16_t last_avail;     /* next avail ring slot the device will consume */
  uint16_t used_idx;       /* next used ring slot the device will fill */
  uint16_t signalled_used; /* used_idx at the last interrupt (EVENT_IDX) */
  bool signalled_used_valid;
};

/* One popped chain: device-readable buffers first (iov[0..nr_out)), then device-writable
 * ones (iov[nr_out..nr_out+nr_in)). Every iov lies wholly in guest RAM. */
struct virtq_chain {
  uint16_t head;
  unsigned nr_out, nr_in;
  uint64_t out_len, in_len;
  struct iovec iov[VIRTQ_CHAIN_MAX];
};

/* Check and accept the ring addresses the driver wrote (alignment, num a power of 2 <=
 * num_max, each ring wholly in RAM). false leaves the queue not ready. */
bool virtq_setup(struct virtq *q, struct vm *vm, uint16_t num, uint16_t num_max, gpa_t desc,
                 gpa_t avail, gpa_t used);
void virtq_reset(struct virtq *q);
/* Take the next available chain. Returns 1 with *chain filled, 0 when the ring is empty, or
 * -EINVAL when the guest broke the protocol (avail idx moved by more than num, a head or
 * next index >= num, a loop or a chain longer than VIRTQ_CHAIN_MAX, a buffer outside RAM or
 * overflowing, a readable buffer after a writable one, nested or misplaced indirect tables):
 * then q->broken is set and the device should call virtio_mmio_set_needs_reset(). */
int virtq_pop(struct virtq *q, struct virtq_chain *chain);
/* Put head back in the used ring with `written` bytes written to its writable buffers, and
 * publish the new used idx (release ordering: the guest sees the element before the idx). */
void virtq_push_used(struct virtq *q, uint16_t head, uint32_t written);
/* Whether the driver wants an interrupt for what was pushed since the last one (honours
 * VIRTQ_AVAIL_F_NO_INTERRUPT or, with EVENT_IDX, used_event). Call after virtq_push_used. */
bool virtq_needs_interrupt(struct virtq *q);
/* Copy up to len bytes into the chain's writable buffers; returns bytes copied. */
size_t virtq_chain_write(const struct virtq_chain *chain, const void *buf, size_t len);
/* Copy up to len bytes out of the chain's readable buffers; returns bytes copied. */
size_t virtq_chain_read(const struct virtq_chain *chain, void *buf, size_t len);
/* Copy the [skip, skip+len) byte range of iov[0..n) into out (room for n entries; zero-length
 * ones dropped); returns the number of entries. For devices that split a chain's buffers. */
unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
                   struct iovec *out);

/* ---- the virtio-mmio transport (virtio_mmio.c), version 2 ("modern") ---- */

#define VIRTIO_MMIO_STRIDE 0x1000u /* each device's region; registers + config < 0x200 */
#define VIRTIO_F_VERSION_1 (1ull << 32)
#define VIRTIO_F_EVENT_IDX (1ull << 29)
#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_STATUS_NEEDS_RESET 0x40u

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_VSOCK 19
#define VIRTIO_ID_FS 26

struct virtio_mmio;

/* What a device gives the transport. The transport owns registers, feature negotiation,
 * queue setup/validation and interrupts; the device sees only config space and queues.
 * Every callback runs with the transport's lock held (so never on two threads at once). */
struct virtio_device_ops {
  const char *name;     /* "rng", "blk", ... (for messages) */
  uint32_t device_id;   /* VIRTIO_ID_* */
  uint64_t features;    /* device feature bits; the transport adds VERSION_1, INDIRECT_DESC
                           and EVENT_IDX */
  unsigned num_queues;  /* 1..VIRTIO_MMIO_MAX_QUEUES */
  uint16_t queue_max;   /* QueueNumMax, a power of 2 <= VIRTQ_MAX_SIZE */
  uint32_t config_size; /* bytes of config space, <= 0x100 */
  /* Config space access at off (< config_size, off+len <= config_size, checked). NULL reads
   * as zeros / ignores writes. Runs on a vCPU thread. */
  void (*config_read)(void *dev, uint32_t off, void *data, uint32_t len);
  void (*config_write)(void *dev, uint32_t off, const void *data, uint32_t len);
  /* The driver notified queue q (ready, not broken). Runs on the event-loop thread: pop,
   * process, push_used, then virtio_mmio_signal_used(). */
  void (*queue_notify)(void *dev, unsigned q);
  /* The driver set DRIVER_OK (may be NULL); features = the negotiated set. */
  void (*activate)(void *dev, uint64_t features);
  /* The driver reset the device (status 0): forget in-flight requests (may be NULL). */
  void (*reset)(void *dev);
  /* Free the device's state (may be NULL): called once by virtio_mmio_destroy, after the
   * vCPUs and the event loop stopped. The transport owns `dev` from virtio_mmio_create on,
   * also when that fails. */
  void (*destroy)(void *dev);
};
#define VIRTIO_MMIO_MAX_QUEUES 8u

/* Create a transport for a device: takes the next VIRTIO_MMIO_STRIDE slot from VM_MMIO_BASE
 * and the next GSI, registers the region on the MMIO bus, a notify eventfd per queue in the
 * loop (KVM_IOEVENTFD when the host has it) and the interrupt. `dev` is the device's own
 * state, passed back to every callback and freed with ops->destroy. The VM keeps the
 * transport (vm->virtio[]) and destroys it in vm_destroy. After vm_kvm_init (or, in unit tests
 * without KVM, after vm_create) and before boot_cmdline (the device appears on the guest's
 * command line). *out may be NULL. */
int virtio_mmio_create(struct vm *vm, const struct virtio_device_ops *ops, void *dev,
                       struct virtio_mmio **out, struct isola_error **err);
/* Free a transport and its device (ops->destroy): vm_destroy's job, never a device's. */
void virtio_mmio_destroy(struct virtio_mmio *t);
/* Queue q of the device (for the device's queue_notify). */
struct virtq *virtio_mmio_queue(struct virtio_mmio *t, unsigned q);
/* Raise the used-buffer interrupt for queue q if the driver wants one. Call with the lock
 * held, i.e. from a callback. */
void virtio_mmio_signal_used(struct virtio_mmio *t, unsigned q);
/* Tell the driver the config space changed (config generation +1, interrupt). Any thread
 * but from a callback (it takes the transport lock). */
void virtio_mmio_signal_config(struct virtio_mmio *t);
/* The device gave up on the driver (a broken queue): set DEVICE_NEEDS_RESET, interrupt. */
void virtio_mmio_set_needs_reset(struct virtio_mmio *t);
/* For the device's own threads (e.g. an async completion): take/release the transport lock
 * around queue access outside a callback. */
void virtio_mmio_lock(struct virtio_mmio *t);
void virtio_mmio_unlock(struct virtio_mmio *t);
/* The guest-visible description: base, size and GSI, for the command line. */
void virtio_mmio_describe(const struct virtio_mmio *t, uint64_t *base, uint32_t *size,
                          unsigned *gsi);
/* Test hook: deliver a queue notify as the event loop would (unit tests without KVM). */
void virtio_mmio_notify_for_test(struct virtio_mmio *t, unsigned q);

/* ---- devices: one file each ---- */

/* virtio-rng (rng.c): fills device-writable buffers with getrandom() bytes. */
int virtio_rng_create(struct vm *vm, struct isola_error **err);
/* virtio-blk (blk.c, the device helper's): a disk image file; readonly refuses writes. */
int virtio_blk_create(struct vm *vm, const char *path, bool readonly, struct isola_error **err);
/* virtio-vsock (vsock.c, the device helper's): guest CID 3; host connections through the unix
 * socket at path (Firecracker's hybrid vsock: "CONNECT <port>\n"). */
int virtio_vsock_create(struct vm *vm, const char *uds_path, struct isola_error **err);
/* virtio-fs (fs.c): the host directory `path` for the guest to mount by `tag` (1-36 of
 * [A-Za-z0-9_.-]), or, when `path` is a regular file, its directory with that file alone in it;
 * readonly refuses every change with EROFS. */
int virtio_fs_create(struct vm *vm, const char *tag, const char *path, bool readonly,
                     struct isola_error **err);
bool virtio_fs_tag_ok(const char *tag);

/* ---- the FUSE server behind virtio-fs (fs_server.c) ---- */

#define FS_MAX_IO (1u << 20) /* the largest READ or WRITE (max_write, max_pages) */

struct fs_server;
struct fuse_in_header;
/* Serve the directory `path` (opened now; the server never leaves it), or for a regular file
 * its real directory showing only that file, where no name can be made, removed or renamed.
 * Sets the process umask to 0: the guest's modes arrive with its own umask applied. */
int fs_server_create(const char *path, bool readonly, struct fs_server **out,
                     struct isola_error **err);
/* Answer one FUSE request: the chain's readable part is the request, its writable part gets
 * the reply. Returns the bytes written there (0 for a request that has no reply). Never fails:
 * a bad request gets an error reply (or none, when there is no room for one). */
uint32_t fs_server_handle(struct fs_server *s, const struct virtq_chain *c);
/* FORGET or BATCH_FORGET (h, then alen bytes of arguments): drop the guest's references. */
void fs_server_forget(struct fs_server *s, const struct fuse_in_header *h, const uint8_t *a,
                      size_t alen);
/* Forget every inode and handle but the root (the driver reset, or DESTROY). */
void fs_server_reset(struct fs_server *s);
void fs_server_destroy(struct fs_server *s);
