/* sandbox.c — the monitor's seccomp filters. Once the vCPU and event-loop threads run, the
 * monitor only serves the guest: KVM_RUN and interrupts, device I/O on descriptors it already
 * holds (disks, eventfds, the vsock unix sockets), new unix-socket connections for guest → host
 * vsock, memory for its own heap. A guest that takes the monitor over gets no more than that:
 * no open(), no exec, no new processes or threads, no executable mappings, no sockets but
 * unix ones, and ioctl only with the KVM requests below. The filter covers every thread
 * (TSYNC); a forbidden call kills the whole monitor (and with it the VM), which the engine
 * reports as the VM's end.
 *
 * A VM with a shared directory (virtio-fs) needs the *at() file calls on the event-loop thread,
 * where its FUSE server runs; they are in the process filter only then. Each vCPU thread adds
 * a layer of its own before entering the guest (vm_sandbox_vcpu): no file calls and no
 * sockets there, whatever the VM has, since a vCPU thread only runs KVM_RUN and MMIO/PIO
 * emulation.
 *
 * Sanitizer builds log forbidden calls instead of dying (SCMP_ACT_LOG): their runtimes do
 * more than the monitor (LeakSanitizer ptraces the process at exit), and the plain build,
 * which the tests run too, proves that the list is enough. */
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "vmm.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define SANDBOX_DEFAULT SCMP_ACT_LOG
#else
#define SANDBOX_DEFAULT SCMP_ACT_KILL_PROCESS
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define VCPU_DENY SECCOMP_RET_LOG
#else
#define VCPU_DENY SECCOMP_RET_KILL_PROCESS
#endif

/* Calls allowed with any arguments. */
static const int allowed[] = {
    /* device I/O and the event loop */
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(pread64),
    SCMP_SYS(pwrite64),
    SCMP_SYS(preadv),
    SCMP_SYS(pwritev),
    SCMP_SYS(preadv2),
    SCMP_SYS(pwritev2),
    SCMP_SYS(fdatasync),
    SCMP_SYS(fsync),
    SCMP_SYS(close),
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(eventfd2),
    SCMP_SYS(getrandom),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(lseek),
    /* vsock: host connections accepted, guest connections made, relayed */
    SCMP_SYS(accept4),
    SCMP_SYS(connect),
    SCMP_SYS(sendmsg),
    SCMP_SYS(sendto),
    SCMP_SYS(recvmsg),
    SCMP_SYS(recvfrom),
    SCMP_SYS(shutdown),
    /* the socket file goes when the monitor ends */
    SCMP_SYS(unlink),
    SCMP_SYS(unlinkat),
    /* threads: locks, kicks (pthread_kill), joins, the end */
    SCMP_SYS(futex),
    SCMP_SYS(tgkill),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(sched_yield),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    /* a thread just created may not have run its start-up yet when the filter comes */
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),
    /* the heap (executable mappings are refused below) */
    SCMP_SYS(brk),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
};

/* The FUSE server's calls (fs_server.c), for a VM with a shared directory. */
static const int file_calls[] = {
    SCMP_SYS(openat),   SCMP_SYS(mkdirat),    SCMP_SYS(mknodat),    SCMP_SYS(symlinkat),
    SCMP_SYS(linkat),   SCMP_SYS(renameat2),  SCMP_SYS(renameat),   SCMP_SYS(fchmodat),
    SCMP_SYS(fchownat), SCMP_SYS(utimensat),  SCMP_SYS(ftruncate),  SCMP_SYS(fallocate),
    SCMP_SYS(fstatfs),  SCMP_SYS(readlinkat), SCMP_SYS(getdents64),
};

/* What a vCPU thread may never do, on top of the process filter. */
static const int vcpu_denied[] = {
    __NR_openat,   __NR_mkdirat,  __NR_mknodat,    __NR_symlinkat,  __NR_linkat,    __NR_renameat2,
    __NR_renameat, __NR_fchmodat, __NR_fchownat,   __NR_utimensat,  __NR_ftruncate, __NR_fallocate,
    __NR_unlinkat, __NR_unlink,   __NR_readlinkat, __NR_getdents64, __NR_socket,    __NR_connect,
    __NR_accept4,  __NR_sendmsg,  __NR_recvmsg,    __NR_pwrite64,   __NR_pwritev,   __NR_pwritev2,
};

/* ioctl requests: the vCPU loop, interrupts, queue notifications wired when the driver sets a
 * queue up, registers read for an error report, and isatty() from stdio. */
static const unsigned long allowed_ioctls[] = {
    KVM_RUN, KVM_GET_REGS, KVM_IRQ_LINE, KVM_IRQFD, KVM_IOEVENTFD, TCGETS,
};

int vm_sandbox(bool files, struct isola_error **err)
{
  scmp_filter_ctx ctx = seccomp_init(SANDBOX_DEFAULT);
  if (!ctx)
    return isola_failx(err, ENOMEM, "seccomp: cannot create the filter");
  int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  for (size_t i = 0; r == 0 && i < ARRAY_SIZE(allowed); i++)
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
  for (size_t i = 0; r == 0 && files && i < ARRAY_SIZE(file_calls); i++)
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, file_calls[i], 0);
  /* vCPU threads add their own layer (flags 0: no TSYNC, so only more restrictions). */
  if (r == 0)
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 2,
                         SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER), SCMP_A1(SCMP_CMP_EQ, 0));
  for (size_t i = 0; r == 0 && i < ARRAY_SIZE(allowed_ioctls); i++)
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                         SCMP_A1(SCMP_CMP_EQ, allowed_ioctls[i]));
  if (r == 0)
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
  if (r == 0)
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  if (r == 0)
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
  if (r == 0)
    r = seccomp_load(ctx);
  seccomp_release(ctx);
  if (r < 0)
    return isola_fail(err, -r, "seccomp: cannot install the monitor's filter");
  return 0;
}

/* Hand-written rather than libseccomp's: a vCPU thread installs it under the process filter,
 * where libseccomp's own probing calls would not be allowed. Any other architecture (x32 or a
 * 32-bit call) is denied too. */
int vm_sandbox_vcpu(void)
{
  enum { N = ARRAY_SIZE(vcpu_denied) };
  struct sock_filter prog[5 + N + 2];
  unsigned k = 0;
  prog[k++] =
      (struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  prog[k++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  prog[k++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, VCPU_DENY);
  prog[k++] =
      (struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
  prog[k++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, N, 0);
  for (unsigned i = 0; i < N; i++) /* a match jumps to the deny after the list */
    prog[k++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t) vcpu_denied[i],
                                              (uint8_t) (N - i), 0);
  prog[k++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  prog[k++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, VCPU_DENY);
  struct sock_fprog fprog = {.len = (unsigned short) k, .filter = prog};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
    return -errno;
  return 0;
}
