/* Name tables of the OCI spec: capabilities, rlimits, mount options, seccomp names. */
#include "spec_json.h"

#include <fcntl.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mount.h>

static const char *const cap_names[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

int spec_cap_from_name(const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
    if (!strcmp(name, cap_names[i])) /* exact, as runc: "cap_kill" is not a name */
      return (int) i;
  return -1;
}

const char *spec_cap_name(int cap)
{
  if (cap < 0 || (size_t) cap >= ARRAY_SIZE(cap_names))
    return NULL;
  return cap_names[cap];
}

int spec_cap_last(void)
{
  static int last = -1;
  if (last < 0) {
    _cleanup_free_ char *s = NULL;
    uint64_t v;
    if (read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", 64, &s, NULL) == 0 &&
        (s[strcspn(s, "\n")] = '\0', parse_u64(s, &v) == 0) && v < 64)
      last = (int) v;
    else
      last = (int) ARRAY_SIZE(cap_names) - 1;
  }
  return last;
}

static const struct {
  const char *name;
  int resource;
} rlimit_names[] = {
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

int spec_rlimit_from_name(const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++)
    if (!strcmp(name, rlimit_names[i].name))
      return rlimit_names[i].resource;
  return -1;
}

static const struct {
  const char *name;
  bool clear;
  unsigned long flag;
} mount_flags[] = {
    {"defaults", false, 0},
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"suid", true, MS_NOSUID},
    {"nosuid", false, MS_NOSUID},
    {"dev", true, MS_NODEV},
    {"nodev", false, MS_NODEV},
    {"exec", true, MS_NOEXEC},
    {"noexec", false, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},
    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
    {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},
    {"nomand", true, MS_MANDLOCK},
    {"atime", true, MS_NOATIME},
    {"noatime", false, MS_NOATIME},
    {"diratime", true, MS_NODIRATIME},
    {"nodiratime", false, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    {"lazytime", false, MS_LAZYTIME},
    {"nolazytime", true, MS_LAZYTIME},
    {"silent", false, MS_SILENT},
    {"loud", true, MS_SILENT},
};

static const struct {
  const char *name;
  unsigned long flag;
} propagation_flags[] = {
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

int spec_propagation_from_name(const char *name, unsigned long *out);
int spec_propagation_from_name(const char *name, unsigned long *out)
{
  for (size_t i = 0; i < ARRAY_SIZE(propagation_flags); i++)
    if (!strcmp(name, propagation_flags[i].name)) {
      *out = propagation_flags[i].flag;
      return 0;
    }
  return -EINVAL;
}

int spec_mount_option(const char *opt, struct oci_mount *m)
{
  for (size_t i = 0; i < ARRAY_SIZE(mount_flags); i++)
    if (!strcmp(opt, mount_flags[i].name)) {
      if (mount_flags[i].clear) {
        m->flags &= ~mount_flags[i].flag;
        m->clear_flags |= mount_flags[i].flag;
      } else {
        m->flags |= mount_flags[i].flag;
        m->clear_flags &= ~mount_flags[i].flag;
      }
      return 1;
    }
  for (size_t i = 0; i < ARRAY_SIZE(propagation_flags); i++)
    if (!strcmp(opt, propagation_flags[i].name)) {
      m->propagation = propagation_flags[i].flag;
      return 1;
    }
  if (!strcmp(opt, "bind")) {
    m->bind = true;
    return 1;
  }
  if (!strcmp(opt, "rbind")) {
    m->bind = m->recursive = true;
    return 1;
  }
  if (!strcmp(opt, "rro")) {
    m->rro = true;
    return 1;
  }
  if (!strcmp(opt, "rrw") || !strncmp(opt, "x-", 2))
    return 1; /* rrw is the default; x- options are for userspace helpers */
  if (!strcmp(opt, "tmpcopyup")) {
    m->tmpcopyup = true;
    return 1;
  }
  return 0;
}

static const struct {
  const char *name;
  uint32_t action;
} seccomp_actions[] = {
    {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0)},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0)},
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG},
    {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY},
};

int spec_seccomp_action(const char *name, uint32_t *out)
{
  for (size_t i = 0; i < ARRAY_SIZE(seccomp_actions); i++)
    if (!strcmp(name, seccomp_actions[i].name)) {
      *out = seccomp_actions[i].action;
      return 0;
    }
  return -EINVAL;
}

int spec_seccomp_op(const char *name, int *out)
{
  static const struct {
    const char *name;
    int op;
  } ops[] = {
      {"SCMP_CMP_NE", SCMP_CMP_NE},
      {"SCMP_CMP_LT", SCMP_CMP_LT},
      {"SCMP_CMP_LE", SCMP_CMP_LE},
      {"SCMP_CMP_EQ", SCMP_CMP_EQ},
      {"SCMP_CMP_GE", SCMP_CMP_GE},
      {"SCMP_CMP_GT", SCMP_CMP_GT},
      {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
  };
  for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
    if (!strcmp(name, ops[i].name)) {
      *out = ops[i].op;
      return 0;
    }
  return -EINVAL;
}

bool spec_seccomp_flag_known(const char *name)
{
  static const char *const flags[] = {
      "SECCOMP_FILTER_FLAG_TSYNC",
      "SECCOMP_FILTER_FLAG_LOG",
      "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
      "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
  };
  for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
    if (!strcmp(name, flags[i]))
      return true;
  return false;
}
