/* isola-vmm — boot a kernel in a KVM microVM with isola's own monitor (libisola_vmm).
 *
 * Exit status: the guest's debug-exit status ((b << 1) | 1 for a byte b written to port 0xf4),
 * 0 after a clean reset or power-off, 120 after a triple fault, 122 after a KVM internal error
 * (e.g. an instruction the hypervisor cannot emulate), 124 after a guest kernel panic, and 1
 * when the monitor could not start the VM (bad input, /dev/kvm). Every status but the guest's
 * own comes with one line on stderr.
 *
 * ISOLA_VMM_TIMING=FILE (or "-" for stderr) writes a JSON object of CLOCK_MONOTONIC
 * timestamps in ns: main (process entry), kvm_ready, first_run (the boot vCPU's first KVM_RUN),
 * first_exit (its first exit: the first guest instruction for a guest that starts with an
 * OUT to port 0xf4), exit. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "vmm.h"

static const char usage[] =
    "usage: isola-vmm --kernel ELF [--initrd FILE] [--cmdline STRING] [--memory MiB]\n"
    "                 [--cpus N] [--disk PATH[,ro]]... [--share TAG=PATH[,ro]]...\n"
    "                 [--vsock-socket PATH] [--console] [--jail]\n";

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("isola-vmm: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return VM_STATUS_MONITOR;
}

/* Opened before the VM runs: the sandbox allows no open() afterwards. */
static FILE *open_timing(void)
{
  const char *path = getenv("ISOLA_VMM_TIMING");
  if (!path || !*path)
    return NULL;
  return strcmp(path, "-") ? fopen(path, "we") : stderr;
}

static void write_timing(FILE *out, const struct vm_timing *t)
{
  if (!out)
    return;
  fprintf(out,
          "{\"main_ns\": %llu, \"kvm_ready_ns\": %llu, \"first_run_ns\": %llu, "
          "\"first_exit_ns\": %llu, \"exit_ns\": %llu}\n",
          (unsigned long long) t->main_ns, (unsigned long long) t->kvm_ready_ns,
          (unsigned long long) t->first_run_ns, (unsigned long long) t->first_exit_ns,
          (unsigned long long) t->exit_ns);
  fflush(out);
  if (out != stderr)
    fclose(out);
}

/* "--disk PATH[,ro]": a virtio-blk device, read-only with ",ro". */
static int add_disks(struct vm *vm, char *const *disks, unsigned n, struct isola_error **err)
{
  for (unsigned i = 0; i < n; i++) {
    size_t len = strlen(disks[i]);
    bool ro = len > 3 && strcmp(disks[i] + len - 3, ",ro") == 0;
    _cleanup_free_ char *path = xstrndup(disks[i], ro ? len - 3 : len);
    int r = virtio_blk_create(vm, path, ro, err);
    if (r < 0)
      return r;
  }
  return 0;
}

/* "--share TAG=PATH[,ro]": a virtio-fs device the guest mounts with -t virtiofs TAG (a file:
 * its directory with it alone). */
static int add_shares(struct vm *vm, char *const *shares, unsigned n, struct isola_error **err)
{
  for (unsigned i = 0; i < n; i++) {
    _cleanup_free_ char *tag = xstrdup(shares[i]);
    char *dir = strchr(tag, '=');
    if (!dir || !dir[1])
      return isola_failx(err, EINVAL, "--share \"%s\": expected TAG=PATH[,ro]", shares[i]);
    *dir++ = 0;
    size_t len = strlen(dir);
    bool ro = len > 3 && strcmp(dir + len - 3, ",ro") == 0;
    if (ro)
      dir[len - 3] = 0;
    int r = virtio_fs_create(vm, tag, dir, ro, err);
    if (r < 0)
      return r;
  }
  return 0;
}

/* --jail: everything is open; only the vsock socket's directory is still reached by path
 * (guest → host connections are "<socket>_<port>" there). */
static int enter_jail(struct vm *vm, const char *vsock, struct isola_error **err)
{
  _cleanup_free_ char *dir = NULL;
  if (vsock) {
    if (vsock[0] != '/')
      return isola_failx(err, EINVAL, "--jail needs an absolute --vsock-socket path, not \"%s\"",
                         vsock);
    dir = xstrdup(vsock);
    *strrchr(dir, '/') = 0;
    if (!*dir)
      return isola_failx(err, EINVAL, "--jail: the vsock socket needs a directory of its own");
  }
  const char *keep[] = {dir};
  return vm_jail(keep, dir ? 1 : 0, vm->has_fs, err);
}

/* Shared directories hold a descriptor per inode the guest knows: take the hard limit. */
static void raise_nofile(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int main(int argc, char **argv)
{
  uint64_t t_main = now_ns();
  const char *kernel = NULL, *initrd = NULL, *cmdline = "", *vsock = NULL;
  uint64_t memory_mib = 128, cpus = 1;
  bool console = false, jail = false;
  char *disks[16], *shares[16];
  unsigned ndisks = 0, nshares = 0;
  enum {
    OPT_KERNEL = 256,
    OPT_INITRD,
    OPT_CMDLINE,
    OPT_MEMORY,
    OPT_CPUS,
    OPT_DISK,
    OPT_SHARE,
    OPT_VSOCK,
    OPT_CONSOLE,
    OPT_JAIL,
    OPT_HELP
  };
  static const struct option opts[] = {
      {"kernel", required_argument, NULL, OPT_KERNEL},
      {"initrd", required_argument, NULL, OPT_INITRD},
      {"cmdline", required_argument, NULL, OPT_CMDLINE},
      {"memory", required_argument, NULL, OPT_MEMORY},
      {"cpus", required_argument, NULL, OPT_CPUS},
      {"disk", required_argument, NULL, OPT_DISK},
      {"share", required_argument, NULL, OPT_SHARE},
      {"vsock-socket", required_argument, NULL, OPT_VSOCK},
      {"console", no_argument, NULL, OPT_CONSOLE},
      {"jail", no_argument, NULL, OPT_JAIL},
      {"help", no_argument, NULL, OPT_HELP},
      {0},
  };
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case OPT_KERNEL:
      kernel = optarg;
      break;
    case OPT_INITRD:
      initrd = optarg;
      break;
    case OPT_CMDLINE:
      cmdline = optarg;
      break;
    case OPT_MEMORY:
      if (parse_u64(optarg, &memory_mib) < 0)
        return fail("--memory \"%s\": not a number of MiB", optarg);
      if (memory_mib < (VM_MEM_MIN >> 20) || memory_mib > (VM_MEM_MAX >> 20))
        return fail("--memory %s: guest memory must be %llu-%llu MiB", optarg,
                    (unsigned long long) (VM_MEM_MIN >> 20),
                    (unsigned long long) (VM_MEM_MAX >> 20));
      break;
    case OPT_CPUS:
      if (parse_u64(optarg, &cpus) < 0 || cpus < 1 || cpus > VM_MAX_CPUS)
        return fail("--cpus %s: must be 1-%u", optarg, VM_MAX_CPUS);
      break;
    case OPT_DISK:
      if (ndisks >= ARRAY_SIZE(disks))
        return fail("--disk %s: at most %zu disks", optarg, ARRAY_SIZE(disks));
      disks[ndisks++] = optarg;
      break;
    case OPT_SHARE:
      if (nshares >= ARRAY_SIZE(shares))
        return fail("--share %s: at most %zu shared directories", optarg, ARRAY_SIZE(shares));
      shares[nshares++] = optarg;
      break;
    case OPT_VSOCK:
      vsock = optarg;
      break;
    case OPT_CONSOLE:
      console = true;
      break;
    case OPT_JAIL:
      jail = true;
      break;
    case OPT_HELP:
      fputs(usage, stdout);
      return 0;
    default:
      fputs(usage, stderr);
      return VM_STATUS_MONITOR;
    }
  }
  if (optind < argc)
    return fail("unexpected argument \"%s\"", argv[optind]);
  if (!kernel)
    return fail("--kernel is required");

  if (nshares)
    raise_nofile();
  _cleanup_error_ struct isola_error *err = NULL;
  struct vm *vm = NULL;
  if (vm_create(&vm, memory_mib << 20, (unsigned) cpus, &err) < 0)
    return fail("%s", err->msg);
  vm->timing.main_ns = t_main;
  if (console)
    vm->console_fd = STDOUT_FILENO;
  struct boot_info bi = {0};
  _cleanup_free_ char *full_cmdline = NULL;
  int status = VM_STATUS_MONITOR;
  if (loader_load_kernel(vm, kernel, &bi, &err) < 0 ||
      (initrd && loader_load_initrd(vm, initrd, &bi, &err) < 0) || vm_kvm_init(vm, &err) < 0 ||
      virtio_rng_create(vm, &err) < 0 || add_disks(vm, disks, ndisks, &err) < 0 ||
      add_shares(vm, shares, nshares, &err) < 0 ||
      (vsock && virtio_vsock_create(vm, vsock, &err) < 0) ||
      boot_cmdline(vm, cmdline, &full_cmdline, &err) < 0 ||
      boot_setup(vm, &bi, full_cmdline, &err) < 0) {
    fail("%s", err->msg);
    goto out;
  }
  if (vm->pvm_host && vm->ncpus > 1)
    fprintf(stderr,
            "isola-vmm: note: on this kvm_pvm host a Linux guest runs on 1 of its %u "
            "vCPUs (maxcpus=1: its other vCPUs never start here)\n",
            vm->ncpus);
  FILE *timing = open_timing();
  if (jail && enter_jail(vm, vsock, &err) < 0) {
    fail("%s", err->msg);
    if (timing && timing != stderr)
      fclose(timing);
    goto out;
  }
  vm->sandbox = true;
  status = vm_run(vm, &err);
  if (status < 0) {
    status = fail("%s", err->msg);
  } else {
    if (vm->exit_kind != VM_EXIT_DEBUG && vm->exit_kind != VM_EXIT_RESET)
      fail("%s", vm->exit_reason);
    write_timing(timing, &vm->timing);
    timing = NULL;
  }
  if (timing && timing != stderr)
    fclose(timing);
out:
  vm_destroy(vm);
  return status;
}
