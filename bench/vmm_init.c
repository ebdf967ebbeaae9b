/* vmm_init.c — the /init of bench/vmm.sh --linux (built by the script into its work directory,
 * static, without libc).
 *
 * Its first action is one write() of the marker line to the console:
 *   isola-bench-init: up SECONDS.MILLIS s
 * (the guest's CLOCK_MONOTONIC, read just before), which the benchmark times as "boot to init".
 * Then it mounts /proc, writes the kernel command line the guest got:
 *   isola-bench-init: cmdline ...
 * and restarts the machine (reboot(RESTART); with reboot=k that is the i8042 reset, which ends
 * isola-vmm, and QEMU with -no-reboot). No libc: a static glibc binary would add a few dozen
 * page faults and system calls before main(), each milliseconds of emulated guest kernel code on
 * a kvm_pvm host (MACHINE.md), to a figure meant to be the kernel's boot.
 * The kernel may pass stray words (noxsave) as arguments: they are ignored. */
#include <asm/unistd.h>
#include <linux/reboot.h>
#include <stddef.h>

#define AT_FDCWD (-100)
#define CLOCK_MONOTONIC 1

struct timespec_k {
  long sec, nsec;
};

static long sys3(long nr, long a, long b, long c)
{
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c)
                   : "rcx", "r11", "memory");
  return ret;
}

static long sys5(long nr, long a, long b, long c, long d, long e)
{
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return ret;
}

static size_t append(char *buf, size_t len, size_t cap, const char *s)
{
  while (*s && len < cap)
    buf[len++] = *s++;
  return len;
}

/* Appends v in decimal with at least min_digits digits. */
static size_t append_num(char *buf, size_t len, size_t cap, unsigned long v, int min_digits)
{
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char) ('0' + v % 10);
    v /= 10;
  } while (v || n < min_digits);
  while (n && len < cap)
    buf[len++] = tmp[--n];
  return len;
}

static int console_write(const char *buf, size_t len)
{
  static int fd = 1;
  if (sys3(__NR_write, fd, (long) buf, (long) len) >= 0)
    return 0;
  /* The kernel gives init /dev/console as fds 0-2 when the initramfs has it; else open it. */
  fd = (int) sys5(__NR_openat, AT_FDCWD, (long) "/dev/console", 02 /* O_RDWR */, 0, 0);
  return fd < 0 ? -1 : (int) sys3(__NR_write, fd, (long) buf, (long) len);
}

__attribute__((used)) static void init_main(void)
{
  char line[1100];
  size_t len = 0;
  struct timespec_k ts = {0, 0};
  sys3(__NR_clock_gettime, CLOCK_MONOTONIC, (long) &ts, 0);
  len = append(line, len, sizeof line, "isola-bench-init: up ");
  len = append_num(line, len, sizeof line, (unsigned long) ts.sec, 1);
  len = append(line, len, sizeof line, ".");
  len = append_num(line, len, sizeof line, (unsigned long) ts.nsec / 1000000, 3);
  len = append(line, len, sizeof line, " s\n");
  console_write(line, len);

  len = append(line, 0, sizeof line, "isola-bench-init: cmdline ");
  long fd = -1;
  if (sys5(__NR_mount, (long) "proc", (long) "/proc", (long) "proc", 0, 0) == 0)
    fd = sys5(__NR_openat, AT_FDCWD, (long) "/proc/cmdline", 0 /* O_RDONLY */, 0, 0);
  long n = fd >= 0 ? sys3(__NR_read, fd, (long) (line + len), (long) (sizeof line - 1 - len)) : -1;
  if (n > 0) {
    len += (size_t) n;
    if (line[len - 1] != '\n')
      line[len++] = '\n';
  } else {
    len = append(line, len, sizeof line - 1, "(cannot read /proc/cmdline)\n");
  }
  console_write(line, len);

  sys5(__NR_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_RESTART, 0, 0);
  /* Not reached; if it were, init's exit panics the kernel, and panic=-1 restarts it. */
  sys3(__NR_exit, 1, 0, 0);
}

/* The entry point: no arguments or environment are read; the stack is aligned for the call. */
__asm__(".globl _start\n"
        "_start:\n"
        "  xor %ebp, %ebp\n"
        "  and $-16, %rsp\n"
        "  call init_main\n"
        "  hlt\n");
