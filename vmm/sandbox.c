/* sandbox.c — the monitor's seccomp filter. Once the vCPU and event-loop threads run, the
 * monitor only serves the guest: KVM_RUN and interrupts, device I/O on descriptors it already
 * holds (disks, eventfds, the vsock unix sockets), new unix-socket connections for guest → host
 * vsock, memory for its own heap. A guest that takes the monitor over gets no more than that:
 * no open(), no exec, no new processes or threads, no executable mappings, no sockets but
 * unix ones, and ioctl only with the KVM requests below. The filter covers every thread
 * (TSYNC); a forbidden call kills the whole monitor (and with it the VM), which the engine
 * reports as the VM's end.
 *
 * Sanitizer builds log forbidden calls instead of dying (SCMP_ACT_LOG): their runtimes do
 * more than the monitor (LeakSanitizer ptraces the process at exit), and the plain build,
 * which the tests run too, proves that the list is enough. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/ioctl.h>

#include "vmm.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define SANDBOX_DEFAULT SCMP_ACT_LOG
#else
#define SANDBOX_DEFAULT SCMP_ACT_KILL_PROCESS
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

/* ioctl requests: the vCPU loop, interrupts, queue notifications wired when the driver sets a
 * queue up, registers read for an error report, and isatty() from stdio. */
static const unsigned long allowed_ioctls[] = {
    KVM_RUN, KVM_GET_REGS, KVM_IRQ_LINE, KVM_IRQFD, KVM_IOEVENTFD, TCGETS,
};

int vm_sandbox(struct isola_error **err)
{
  scmp_filter_ctx ctx = seccomp_init(SANDBOX_DEFAULT);
  if (!ctx)
    return isola_failx(err, ENOMEM, "seccomp: cannot create the filter");
  int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  for (size_t i = 0; r == 0 && i < ARRAY_SIZE(allowed); i++)
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
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
