/* linux.seccomp → a classic BPF program through libseccomp, and its installation.
 *
 * Compilation follows runc where the OCI spec leaves room: the native architecture is always
 * in the filter, rules whose action equals the default are dropped, several conditions on the
 * same argument become one rule each (OR), and ERRNO/TRACE default to EPERM. Installation does
 * not touch libseccomp at all: it runs in the container process after fork, where only plain
 * system calls are safe.
 */
#include "seccomp_filter.h"

#include <seccomp.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH (1UL << 4)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

/* Flags a kernel may not know; install drops them and retries on EINVAL. */
#define SECCOMP_OPTIONAL_FLAGS                                                                     \
  (SECCOMP_FILTER_FLAG_SPEC_ALLOW | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)

#define SECCOMP_MAX_ARGS 6

static inline void seccomp_ctx_releasep(scmp_filter_ctx *ctx)
{
  if (*ctx)
    seccomp_release(*ctx);
}

static const struct {
  const char *name;
  uint32_t token; /* 0: named by the OCI spec, but this libseccomp cannot filter it */
} seccomp_arches[] = {
    {"SCMP_ARCH_X86", SCMP_ARCH_X86},
    {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
    {"SCMP_ARCH_X32", SCMP_ARCH_X32},
    {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
    {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64},
    {"SCMP_ARCH_MIPS", SCMP_ARCH_MIPS},
    {"SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64},
    {"SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32},
    {"SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL},
    {"SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64},
    {"SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32},
    {"SCMP_ARCH_PPC", SCMP_ARCH_PPC},
    {"SCMP_ARCH_PPC64", SCMP_ARCH_PPC64},
    {"SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE},
    {"SCMP_ARCH_S390", SCMP_ARCH_S390},
    {"SCMP_ARCH_S390X", SCMP_ARCH_S390X},
    {"SCMP_ARCH_PARISC", SCMP_ARCH_PARISC},
    {"SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64},
    {"SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64},
#ifdef SCMP_ARCH_LOONGARCH64
    {"SCMP_ARCH_LOONGARCH64", SCMP_ARCH_LOONGARCH64},
#else
    {"SCMP_ARCH_LOONGARCH64", 0},
#endif
#ifdef SCMP_ARCH_M68K
    {"SCMP_ARCH_M68K", SCMP_ARCH_M68K},
#else
    {"SCMP_ARCH_M68K", 0},
#endif
#ifdef SCMP_ARCH_SH
    {"SCMP_ARCH_SH", SCMP_ARCH_SH},
    {"SCMP_ARCH_SHEB", SCMP_ARCH_SHEB},
#else
    {"SCMP_ARCH_SH", 0},
    {"SCMP_ARCH_SHEB", 0},
#endif
};

static const struct {
  const char *name;
  unsigned int flag;
} seccomp_flags[] = {
    {"SECCOMP_FILTER_FLAG_TSYNC", SECCOMP_FILTER_FLAG_TSYNC},
    {"SECCOMP_FILTER_FLAG_LOG", SECCOMP_FILTER_FLAG_LOG},
    {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", SECCOMP_FILTER_FLAG_SPEC_ALLOW},
    {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV},
};

/* The parser maps ERRNO and TRACE to their value-less form; fill in the 16-bit data. */
static int seccomp_full_action(uint32_t action, bool has_errno, uint32_t errno_ret,
                               const char *field, uint32_t *out, struct isola_error **err)
{
  *out = action;
  if (action != SCMP_ACT_ERRNO(0) && action != SCMP_ACT_TRACE(0))
    return 0;
  if (!has_errno)
    errno_ret = EPERM;
  else if (errno_ret > 0xffff)
    return isola_failx(err, EINVAL, "%s: %u does not fit in 16 bits", field, errno_ret);
  *out = action == SCMP_ACT_ERRNO(0) ? SCMP_ACT_ERRNO(errno_ret) : SCMP_ACT_TRACE(errno_ret);
  return 0;
}

static int seccomp_add_arches(scmp_filter_ctx ctx, char *const *arches, struct isola_error **err)
{
  for (size_t i = 0; arches && arches[i]; i++) {
    size_t k = 0;
    while (k < ARRAY_SIZE(seccomp_arches) && strcmp(arches[i], seccomp_arches[k].name))
      k++;
    if (k == ARRAY_SIZE(seccomp_arches))
      return isola_failx(err, EINVAL,
                         "linux.seccomp.architectures[%zu]: unknown architecture \"%s\"", i,
                         arches[i]);
    /* Not filterable by this libseccomp, so not runnable through this runtime either: a call
     * from it meets the bad-architecture action (kill), which is what skipping it means. */
    if (!seccomp_arches[k].token)
      continue;
    int r = seccomp_arch_add(ctx, seccomp_arches[k].token);
    /* EEXIST: the native one, always there. EDOM: other byte order, which this kernel
     * cannot run, so it has nothing to filter. */
    if (r < 0 && r != -EEXIST && r != -EDOM)
      return isola_fail(err, -r, "linux.seccomp.architectures[%zu]: cannot add \"%s\"", i,
                        arches[i]);
  }
  return 0;
}

static int seccomp_parse_flags(char *const *flags, unsigned int *out, struct isola_error **err)
{
  for (size_t i = 0; flags && flags[i]; i++) {
    size_t k = 0;
    while (k < ARRAY_SIZE(seccomp_flags) && strcmp(flags[i], seccomp_flags[k].name))
      k++;
    if (k == ARRAY_SIZE(seccomp_flags))
      return isola_failx(err, EINVAL, "linux.seccomp.flags[%zu]: unknown flag \"%s\"", i, flags[i]);
    *out |= seccomp_flags[k].flag;
  }
  return 0;
}

/* One rule, for each system call it names that this libseccomp knows; returns how many. */
static int seccomp_add_rule(scmp_filter_ctx ctx, const struct oci_seccomp_rule *rule, size_t i,
                            uint32_t action, struct isola_error **err)
{
  struct scmp_arg_cmp conds[SECCOMP_MAX_ARGS];
  unsigned per_index[SECCOMP_MAX_ARGS] = {0};
  bool shared_index = false;
  int added = 0;

  if (rule->n_args > SECCOMP_MAX_ARGS)
    return isola_failx(err, EINVAL, "linux.seccomp.syscalls[%zu]: more than %d argument conditions",
                       i, SECCOMP_MAX_ARGS);
  for (size_t j = 0; j < rule->n_args; j++) {
    const struct oci_seccomp_arg *a = &rule->args[j];
    if (a->index >= SECCOMP_MAX_ARGS)
      return isola_failx(err, EINVAL, "linux.seccomp.syscalls[%zu].args[%zu]: index %u is not 0-5",
                         i, j, a->index);
    if (a->op < SCMP_CMP_NE || a->op > SCMP_CMP_MASKED_EQ)
      return isola_failx(err, EINVAL, "linux.seccomp.syscalls[%zu].args[%zu]: unknown op %d", i, j,
                         a->op);
    /* For MASKED_EQ, datum_a is the mask and datum_b the value, as OCI's value/valueTwo. */
    conds[j] = (struct scmp_arg_cmp){.arg = a->index,
                                     .op = (enum scmp_compare) a->op,
                                     .datum_a = a->value,
                                     .datum_b = a->value_two};
    if (++per_index[a->index] > 1)
      shared_index = true;
  }

  for (size_t n = 0; rule->names[n]; n++) {
    int nr = seccomp_syscall_resolve_name(rule->names[n]);
    int r = 0;
    if (nr == __NR_SCMP_ERROR)
      continue; /* a call of another kernel or libseccomp version */
    if (!shared_index) {
      r = seccomp_rule_add_array(ctx, action, nr, (unsigned) rule->n_args, conds);
    } else {
      /* libseccomp cannot AND two conditions on one argument; like runc, OR them instead. */
      for (size_t j = 0; j < rule->n_args && r >= 0; j++)
        r = seccomp_rule_add_array(ctx, action, nr, 1, &conds[j]);
    }
    if (r < 0)
      return isola_fail(err, -r, "linux.seccomp.syscalls[%zu]: cannot add a rule for \"%s\"", i,
                        rule->names[n]);
    added++;
  }
  return added;
}

/* seccomp_export_bpf() writes to an fd; a memfd keeps it off the disk and needs no reader. */
static int seccomp_export(scmp_filter_ctx ctx, struct seccomp_prog *out, struct isola_error **err)
{
  _cleanup_close_ int fd = memfd_create("isola-seccomp", MFD_CLOEXEC);
  _cleanup_free_ void *buf = NULL;
  const size_t insn = sizeof(struct sock_filter);
  if (fd < 0)
    return isola_fail(err, errno, "linux.seccomp: cannot create a memfd for the filter");
  int r = seccomp_export_bpf(ctx, fd);
  if (r < 0)
    return isola_fail(err, -r, "linux.seccomp: cannot export the filter");
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < 0 || lseek(fd, 0, SEEK_SET) < 0)
    return isola_fail(err, errno, "linux.seccomp: cannot size the exported filter");
  if (size == 0 || size % insn)
    return isola_failx(err, EINVAL, "linux.seccomp: exported filter has a bad size (%lld bytes)",
                       (long long) size);
  if ((size_t) size / insn > BPF_MAXINSNS)
    return isola_failx(err, E2BIG,
                       "linux.seccomp: the filter has %zu instructions, more than the kernel "
                       "accepts (%d); shorten the syscalls list",
                       (size_t) size / insn, BPF_MAXINSNS);
  buf = xmalloc(size);
  r = read_all(fd, buf, size);
  if (r < 0)
    return isola_fail(err, -r, "linux.seccomp: cannot read the exported filter");
  if (r != size)
    return isola_failx(err, EIO, "linux.seccomp: short read of the exported filter");
  out->bpf = steal_pointer(&buf);
  out->len = (size_t) size / insn;
  return 0;
}

int seccomp_compile(const struct oci_seccomp *sc, struct seccomp_prog *out,
                    struct isola_error **err)
{
  _cleanup_(seccomp_ctx_releasep) scmp_filter_ctx ctx = NULL;
  struct seccomp_prog prog = {0};
  uint32_t def;
  int r;

  *out = (struct seccomp_prog){0};
  if ((r = seccomp_full_action(sc->default_action, sc->has_default_errno, sc->default_errno_ret,
                               "linux.seccomp.defaultErrnoRet", &def, err)) < 0)
    return r;
  /* The process installs the filter, then still has to hand the listener out and execve(2):
   * with every call stopped for a supervisor that has no listener yet, it never could. */
  if (def == SCMP_ACT_NOTIFY)
    return isola_failx(err, EINVAL,
                       "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action");
  if ((r = seccomp_parse_flags(sc->flags, &prog.flags, err)) < 0)
    return r;

  ctx = seccomp_init(def);
  if (!ctx)
    return isola_failx(err, EINVAL,
                       "linux.seccomp.defaultAction: libseccomp rejects the action (not supported "
                       "by this kernel?)");
  /* The runtime sets no_new_privs itself when process.noNewPrivileges asks for it. */
  if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
    return isola_fail(err, -r, "linux.seccomp: cannot clear the no_new_privs attribute");
  if ((r = seccomp_add_arches(ctx, sc->architectures, err)) < 0)
    return r;

  for (size_t i = 0; i < sc->n_rules; i++) {
    const struct oci_seccomp_rule *rule = &sc->rules[i];
    _cleanup_free_ char *field = xasprintf("linux.seccomp.syscalls[%zu].errnoRet", i);
    uint32_t action;
    if ((r = seccomp_full_action(rule->action, rule->has_errno, rule->errno_ret, field, &action,
                                 err)) < 0)
      return r;
    if (action == def)
      continue; /* libseccomp refuses it, and it changes nothing */
    if (!rule->names)
      continue;
    if ((r = seccomp_add_rule(ctx, rule, i, action, err)) < 0)
      return r;
    if (r > 0 && action == SCMP_ACT_NOTIFY)
      prog.notify = true;
  }

  if (prog.notify) {
    prog.flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    /* The kernel refuses TSYNC with a listener unless a failed sync reports ESRCH. */
    if (prog.flags & SECCOMP_FILTER_FLAG_TSYNC)
      prog.flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
  } else {
    /* Only meaningful with a listener; the kernel refuses it alone. */
    prog.flags &= ~(unsigned int) SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
  }

  if ((r = seccomp_export(ctx, &prog, err)) < 0)
    return r;
  *out = prog;
  return 0;
}

int seccomp_install(const struct seccomp_prog *prog)
{
  if (!prog->bpf || prog->len == 0 || prog->len > BPF_MAXINSNS)
    return -EINVAL;
  struct sock_fprog fprog = {.len = (unsigned short) prog->len, .filter = prog->bpf};
  unsigned int flags = prog->flags;
  for (;;) {
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
    if (r >= 0) {
      if (flags & SECCOMP_FILTER_FLAG_NEW_LISTENER)
        return (int) r;
      /* With plain TSYNC, a positive value is the thread that could not be synchronized. */
      return r > 0 ? -ESRCH : 0;
    }
    if (errno == EINVAL && (flags & SECCOMP_OPTIONAL_FLAGS)) {
      flags &= ~(unsigned int) SECCOMP_OPTIONAL_FLAGS;
      continue;
    }
    return -errno;
  }
}

void seccomp_prog_clear(struct seccomp_prog *p)
{
  free(p->bpf);
  *p = (struct seccomp_prog){0};
}
