/* The container's user process: limits, identity, capabilities, seccomp, execve.
 * Runs in the container process (init or exec), after the rootfs is in place. */
#include "container.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char *env_get(char *const *env, const char *name)
{
  size_t n = strlen(name);
  for (size_t i = 0; env && env[i]; i++)
    if (!strncmp(env[i], name, n) && env[i][n] == '=')
      return env[i] + n + 1;
  return NULL;
}

static int check_exe(const char *path)
{
  struct stat st;
  if (stat(path, &st) < 0)
    return -errno;
  if (S_ISDIR(st.st_mode))
    return -EISDIR;
  if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111))
    return -EACCES;
  return 0;
}

int process_find_exe(const struct oci_process *p, char **out, struct isola_error **err)
{
  const char *name = p->args[0];
  if (!*name)
    return isola_failx(err, ENOENT, "process.args[0] is empty");
  if (strchr(name, '/')) {
    int r = check_exe(name);
    if (r < 0)
      return isola_fail(err, -r, "exec: \"%s\"", name);
    *out = xstrdup(name);
    return 0;
  }
  const char *path = env_get(p->env, "PATH");
  if (!path)
    path = DEFAULT_PATH;
  _cleanup_free_ char *copy = xstrdup(path);
  int last = -ENOENT;
  for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir;
       dir = strtok_r(NULL, ":", &save)) {
    _cleanup_free_ char *cand = xasprintf("%s/%s", *dir ? dir : ".", name);
    int r = check_exe(cand);
    if (r == 0) {
      *out = steal_pointer(&cand);
      return 0;
    }
    if (r != -ENOENT && r != -ENOTDIR)
      last = r;
  }
  if (last == -ENOENT)
    return isola_failx(err, ENOENT, "exec: \"%s\": executable file not found in $PATH", name);
  return isola_fail(err, -last, "exec: \"%s\"", name);
}

static int parse_cpu_list(const char *s, cpu_set_t *set)
{
  CPU_ZERO(set);
  while (*s) {
    char *end;
    unsigned long a = strtoul(s, &end, 10), b = a;
    if (end == s)
      return -EINVAL;
    if (*end == '-') {
      s = end + 1;
      b = strtoul(s, &end, 10);
      if (end == s || b < a)
        return -EINVAL;
    }
    if (b >= CPU_SETSIZE)
      return -EINVAL;
    for (unsigned long i = a; i <= b; i++)
      CPU_SET(i, set);
    s = end;
    if (*s == ',')
      s++;
    else if (*s)
      return -EINVAL;
  }
  return 0;
}

int process_set_limits(const struct oci_process *p, struct isola_error **err)
{
  for (size_t i = 0; i < p->n_rlimits; i++) {
    struct rlimit rl = {.rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard};
    if (setrlimit(p->rlimits[i].resource, &rl) < 0)
      return isola_fail(err, errno, "process.rlimits[%zu]: cannot set soft %llu hard %llu", i,
                        (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
  }
  if (p->has_oom_score_adj) {
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%d", p->oom_score_adj);
    int r = write_proc_file("/proc/self/oom_score_adj", buf, n);
    if (r < 0)
      return isola_fail(err, -r, "process.oomScoreAdj: cannot set %d", p->oom_score_adj);
  }
  if (p->has_io_priority) {
    long v = ((long) p->io_priority_class << 13) | p->io_priority;
    if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, v) < 0)
      return isola_fail(err, errno, "process.ioPriority: cannot set");
  }
  if (p->has_scheduler) {
    struct {
      uint32_t size, policy;
      uint64_t flags;
      int32_t nice;
      uint32_t priority;
      uint64_t runtime, deadline, period;
    } attr = {.size = 48,
              .policy = p->sched_policy,
              .flags = p->sched_flags,
              .nice = p->sched_nice,
              .priority = p->sched_priority,
              .runtime = p->sched_runtime,
              .deadline = p->sched_deadline,
              .period = p->sched_period};
    if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
      return isola_fail(err, errno, "process.scheduler: cannot set");
  }
  const char *aff =
      p->exec_cpu_affinity_final ? p->exec_cpu_affinity_final : p->exec_cpu_affinity_initial;
  if (aff) {
    cpu_set_t set;
    if (parse_cpu_list(aff, &set) < 0)
      return isola_failx(err, EINVAL, "process.execCPUAffinity: \"%s\" is not a CPU list", aff);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
      return isola_fail(err, errno, "process.execCPUAffinity: cannot set \"%s\"", aff);
  }
  return 0;
}

bool process_apparmor_enabled(void)
{
  _cleanup_free_ char *v = NULL;
  return read_file_at(AT_FDCWD, "/sys/module/apparmor/parameters/enabled", 16, &v, NULL) == 0 &&
         v[0] == 'Y';
}

static bool selinux_enabled(void)
{
  return access("/sys/fs/selinux/enforce", F_OK) == 0;
}

int process_check_labels(const struct oci_process *p, struct isola_error **err)
{
  if (p->apparmor_profile && *p->apparmor_profile && !process_apparmor_enabled())
    return isola_failx(err, ENOTSUP,
                       "process.apparmorProfile: \"%s\" was asked for, but AppArmor is not "
                       "enabled on this host",
                       p->apparmor_profile);
  return 0;
}

/* Labels take effect at execve(2); an unconfined process is never started by mistake. */
static int set_labels(const struct oci_process *p, struct isola_error **err)
{
  if (p->apparmor_profile && *p->apparmor_profile) {
    _cleanup_free_ char *cmd = xasprintf("exec %s", p->apparmor_profile);
    int r = write_proc_file("/proc/self/attr/apparmor/exec", cmd, strlen(cmd));
    if (r == -ENOENT)
      r = write_proc_file("/proc/self/attr/exec", cmd, strlen(cmd));
    if (r < 0)
      return isola_fail(err, -r, "process.apparmorProfile: cannot switch to \"%s\"",
                        p->apparmor_profile);
  }
  /* Without SELinux a label means nothing, as with runc. */
  if (p->selinux_label && *p->selinux_label && selinux_enabled()) {
    int r = write_proc_file("/proc/self/attr/exec", p->selinux_label, strlen(p->selinux_label));
    if (r < 0)
      return isola_fail(err, -r, "process.selinuxLabel: cannot set \"%s\"", p->selinux_label);
  }
  return 0;
}

static char *home_of(uid_t uid)
{
  _cleanup_fclose_ FILE *f = fopen("/etc/passwd", "re");
  char line[1024];
  while (f && fgets(line, sizeof(line), f)) {
    /* name:pw:uid:gid:gecos:home:shell */
    char *fields[7] = {0};
    char *s = line;
    for (int i = 0; i < 7 && s; i++) {
      fields[i] = s;
      s = strchr(s, ':');
      if (s)
        *s++ = '\0';
    }
    uint64_t u;
    if (fields[2] && fields[5] && parse_u64(fields[2], &u) == 0 && u == uid && *fields[5])
      return xstrdup(fields[5]);
  }
  return xstrdup("/");
}

char **process_build_env(const struct oci_process *p)
{
  char **env = strv_copy(p->env);
  if (!env_get(env, "HOME")) {
    _cleanup_free_ char *home = home_of(p->user.uid);
    _cleanup_free_ char *kv = xasprintf("HOME=%s", home);
    env = strv_append(env, kv);
  }
  if (p->terminal && !env_get(env, "TERM"))
    env = strv_append(env, "TERM=xterm");
  return env;
}

/* What the seccomp listener receives with the notify fd: the container process state of the
 * runtime spec (ociVersion, fds, pid, metadata, state). */
char *process_listener_message(const struct oci_spec *spec, const char *state_json)
{
  _cleanup_json_ struct json_object *st = json_tokener_parse(state_json);
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "ociVersion", json_object_new_string(OCI_VERSION_SUPPORTED));
  struct json_object *fds = json_object_new_array();
  json_object_array_add(fds, json_object_new_string("seccompFd"));
  json_object_object_add(o, "fds", fds);
  struct json_object *pid = NULL;
  if (st && json_object_object_get_ex(st, "pid", &pid))
    json_object_object_add(o, "pid", json_object_get(pid));
  json_object_object_add(o, "metadata",
                         json_object_new_string(spec->seccomp && spec->seccomp->listener_metadata
                                                    ? spec->seccomp->listener_metadata
                                                    : ""));
  if (st)
    json_object_object_add(o, "state", json_object_get(st));
  char *s = json_to_string(o, false);
  json_object_put(o);
  return s;
}

static int install_seccomp(const struct process_exec *pe, struct isola_error **err)
{
  int fd = seccomp_install(pe->seccomp);
  if (fd < 0)
    return isola_fail(err, -fd, "linux.seccomp: cannot load the filter");
  if (pe->seccomp->notify) {
    if (pe->seccomp_listener_sock >= 0) {
      const char *st = pe->seccomp_listener_state ? pe->seccomp_listener_state : "{}";
      int r = send_fds(pe->seccomp_listener_sock, st, strlen(st), &fd, 1);
      if (r < 0)
        return isola_fail(err, -r, "linux.seccomp.listenerPath: cannot send the listener fd");
      close(pe->seccomp_listener_sock);
    }
    close(fd);
  }
  return 0;
}

int process_exec_final(const struct process_exec *pe, const char *exe, struct isola_error **err)
{
  const struct oci_process *p = pe->proc;
  int r;
  _cleanup_strv_ char **env = process_build_env(p);

  if (chdir(p->cwd) < 0)
    return isola_fail(err, errno, "process.cwd: cannot change to \"%s\"", p->cwd);
  /* No capabilities object means no capabilities (as runc): never the runtime's own. */
  if (caps_prepare_keep() < 0)
    return isola_fail(err, errno, "cannot keep capabilities across setuid");
  if ((r = set_labels(p, err)) < 0)
    return r;
  /* The bounding set can only shrink while we still hold CAP_SETPCAP. */
  if ((r = caps_drop_bounding(p->caps.bounding, err)) < 0)
    return r;

  /* Without no_new_privs a filter needs CAP_SYS_ADMIN: load it while we are still root. */
  if (pe->seccomp && !p->no_new_privileges && (r = install_seccomp(pe, err)) < 0)
    return r;

  if (setgroups(p->user.n_additional_gids, p->user.additional_gids) < 0 &&
      !(errno == EPERM && pe->in_user_ns && p->user.n_additional_gids == 0))
    return isola_fail(err, errno, "process.user.additionalGids: cannot set groups");
  if (setresgid(p->user.gid, p->user.gid, p->user.gid) < 0)
    return isola_fail(err, errno, "process.user.gid: cannot switch to group %u", p->user.gid);
  if (setresuid(p->user.uid, p->user.uid, p->user.uid) < 0)
    return isola_fail(err, errno, "process.user.uid: cannot switch to user %u", p->user.uid);
  if (p->user.has_umask)
    umask(p->user.umask);
  else
    umask(022);
  /* A cwd only the target user may enter, or one that needs the new groups. */
  if (chdir(p->cwd) < 0 && errno != EACCES)
    return isola_fail(err, errno, "process.cwd: cannot change to \"%s\"", p->cwd);

  if ((r = caps_apply(&p->caps, err)) < 0)
    return r;
  if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return isola_fail(err, errno, "process.noNewPrivileges: cannot set");
  if (pe->has_personality && personality(pe->personality) < 0)
    return isola_fail(err, errno, "linux.personality: cannot set");
  if (pe->seccomp && p->no_new_privileges && (r = install_seccomp(pe, err)) < 0)
    return r;

  /* The program starts with default signal dispositions and nothing blocked. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* Everything of ours above the preserved fds must not leak into the container. */
  syscall(SYS_close_range, 3 + pe->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
  execve(exe, p->args, env);
  return isola_fail(err, errno, "exec: \"%s\"", p->args[0]);
}
