/* create and run: the runtime's side and the container process's side of setting up. */
#include "container.h"

#include <fcntl.h>
#include <linux/keyctl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

struct init_args {
  const struct oci_spec *spec;
  const struct create_opts *co;
  const struct cgroup *cgroup;
  const struct seccomp_prog *seccomp;
  int sync_fd;
  int fifo_fd;     /* O_PATH fd of exec.fifo */
  int proc_fd;     /* the host's /proc, to reopen the fifo after pivot_root */
  int console_fd;  /* -1, or a connected console socket */
  int listener_fd; /* -1, or a connected seccomp listener socket */
  int state_dirfd; /* the locked state directory: closed at once, or the lock would live on */
  bool new_user_ns;
};

/* ---------- in the container process ---------- */

/* A new network namespace starts with its loopback down; programs expect 127.0.0.1 to work
 * (docker and podman bring it up too). */
static int loopback_up(struct isola_error **err)
{
  _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return isola_fail(err, errno, "cannot bring up the loopback interface");
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
    return isola_fail(err, errno, "cannot bring up the loopback interface");
  if (ifr.ifr_flags & IFF_UP)
    return 0;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
    return isola_fail(err, errno, "cannot bring up the loopback interface");
  return 0;
}

static int init_setup(struct init_args *a, char **state_json, char **exe, struct isola_error **err)
{
  const struct oci_spec *s = a->spec;
  int r;
  if ((r = sync_expect_data(a->sync_fd, SYNC_GO, state_json, err)) < 0)
    return r;
  if (a->new_user_ns) {
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
      return isola_fail(err, errno,
                        "linux.uidMappings: cannot become root in the user namespace"
                        " (is uid/gid 0 mapped?)");
  }
  const struct oci_namespace *netns = spec_find_ns(s, NS_NETWORK);
  if (netns && !netns->path && (r = loopback_up(err)) < 0)
    return r;
  const struct oci_namespace *cgns = spec_find_ns(s, NS_CGROUP);
  if (cgns && !cgns->path && unshare(CLONE_NEWCGROUP) < 0)
    return isola_fail(err, errno, "cannot create the cgroup namespace");
  /* A session keyring of its own, so the container cannot read the host's keys (as runc). */
  if (!a->co->no_new_keyring && syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, a->co->id) < 0 &&
      errno != ENOSYS && errno != EDQUOT && errno != EACCES)
    return isola_fail(err, errno, "cannot create the container's session keyring");
  if (s->hostname && *s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
    return isola_fail(err, errno, "hostname: cannot set \"%s\"", s->hostname);
  if (s->domainname && *s->domainname && setdomainname(s->domainname, strlen(s->domainname)) < 0)
    return isola_fail(err, errno, "domainname: cannot set \"%s\"", s->domainname);

  const struct oci_namespace *mntns = spec_find_ns(s, NS_MOUNT);
  struct rootfs_ctx ctx = {.spec = s,
                           .rootfs = s->root_path,
                           .new_mount_ns = mntns != NULL,
                           .in_user_ns = spec_find_ns(s, NS_USER) != NULL,
                           .cgroup = a->cgroup};
  if ((r = rootfs_prepare(&ctx, err)) < 0)
    return r;
  if (s->n_hooks[HOOK_CREATE_CONTAINER] &&
      (r = hooks_run(s->hooks[HOOK_CREATE_CONTAINER], s->n_hooks[HOOK_CREATE_CONTAINER],
                     "createContainer", *state_json, err)) < 0)
    return r;
  if ((r = rootfs_pivot(&ctx, a->co->no_pivot, err)) < 0)
    return r;
  /* A working directory the image lacks is made, as runc does (before / may turn read-only). */
  if (access(s->process.cwd, F_OK) < 0 && errno == ENOENT &&
      (r = mkdir_p_at(AT_FDCWD, s->process.cwd, 0755)) < 0)
    return isola_fail(err, -r, "process.cwd: cannot create \"%s\"", s->process.cwd);
  if ((r = rootfs_finalize(&ctx, err)) < 0)
    return r;
  if (s->process.terminal) {
    if ((r = terminal_setup(a->console_fd, &s->process, true, err)) < 0)
      return r;
    close(a->console_fd);
    a->console_fd = -1;
  } else if (setsid() < 0 && errno != EPERM) {
    /* Its own session, as with runc: engines signal their own process group (conmon's
     * --timeout kills it), and that must not reach into the container, nor the reverse. */
    return isola_fail(err, errno, "cannot start a session for the container process");
  }
  if ((r = process_set_limits(&s->process, err)) < 0)
    return r;
  /* Capabilities are set only after start: find out now that they cannot be, so that create
   * fails with the reason instead of the process dying unseen after start. */
  if (s->process.has_caps && (r = caps_check_available(&s->process.caps, err)) < 0)
    return r;
  return process_find_exe(&s->process, exe, err);
}

/* After `start`: startContainer hooks, then the user's program. Returns only on failure. */
static void init_exec(struct init_args *a, const char *state_json, const char *exe,
                      struct isola_error **err)
{
  const struct oci_spec *s = a->spec;
  if (s->n_hooks[HOOK_START_CONTAINER] &&
      hooks_run(s->hooks[HOOK_START_CONTAINER], s->n_hooks[HOOK_START_CONTAINER], "startContainer",
                state_json, err) < 0)
    return;
  _cleanup_free_ char *lstate =
      a->listener_fd >= 0 ? process_listener_message(s, state_json) : NULL;
  struct process_exec pe = {.proc = &s->process,
                            .seccomp = a->seccomp,
                            .seccomp_listener_sock = a->listener_fd,
                            .seccomp_listener_state = lstate,
                            .in_user_ns = spec_find_ns(s, NS_USER) != NULL,
                            .preserve_fds = a->co->preserve_fds,
                            .has_personality = s->has_personality,
                            .personality = s->personality};
  process_exec_final(&pe, exe, err);
}

static int init_main(void *arg)
{
  struct init_args *a = arg;
  struct isola_error *err = NULL;
  _cleanup_free_ char *state_json = NULL, *exe = NULL;
  close(a->state_dirfd);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);

  if (init_setup(a, &state_json, &exe, &err) < 0) {
    sync_send_error(a->sync_fd, err);
    return 1;
  }
  if (sync_send(a->sync_fd, SYNC_READY) < 0)
    return 1;
  close(a->sync_fd);

  /* Block until `start` opens the fifo for reading. */
  char path[64];
  snprintf(path, sizeof(path), "self/fd/%d", a->fifo_fd);
  int fifo = openat(a->proc_fd, path, O_WRONLY | O_CLOEXEC);
  if (fifo < 0) {
    isola_fail(&err, errno, "cannot open the exec fifo");
    goto fail;
  }
  if (write_all(fifo, "0", 1) < 0) {
    isola_fail(&err, errno, "cannot write to the exec fifo");
    goto fail;
  }
  close(fifo);
  close(a->fifo_fd);
  close(a->proc_fd);

  init_exec(a, state_json, exe, &err);
fail:
  log_error_to_stderr("isola-runtime", err ? err->msg : "container setup failed");
  return err && err->code == ENOENT ? 127 : (err && err->code == EACCES ? 126 : 1);
}

/* ---------- in the runtime ---------- */

static char *now_rfc3339(void)
{
  struct timespec ts;
  struct tm tm;
  char buf[64];
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof(buf) - n, ".%09ldZ", ts.tv_nsec);
  return xstrdup(buf);
}

static int write_id_map(pid_t pid, const char *file, const struct oci_idmap *m, size_t n,
                        struct isola_error **err)
{
  _cleanup_free_ char *text = xstrdup("");
  for (size_t i = 0; i < n; i++) {
    char *t = xasprintf("%s%u %u %u\n", text, m[i].container_id, m[i].host_id, m[i].size);
    free(text);
    text = t;
  }
  _cleanup_free_ char *path = xasprintf("/proc/%d/%s", (int) pid, file);
  int r = write_file_at(AT_FDCWD, path, text, strlen(text));
  if (r < 0)
    return isola_fail(err, -r, "linux.%s: cannot write the mapping",
                      !strcmp(file, "uid_map") ? "uidMappings" : "gidMappings");
  return 0;
}

/* A sysctl is only allowed in a namespace of the container's own (spec.c); one joined by path
 * must not be the runtime's, i.e. the host's. */
static int check_sysctl_namespaces(const struct oci_spec *spec, struct isola_error **err)
{
  for (size_t i = 0; i < spec->n_sysctl; i++) {
    const char *key = spec->sysctl[i].key;
    enum oci_ns_type t = NS_IPC;
    if (!strncmp(key, "net.", 4))
      t = NS_NETWORK;
    else if (!strcmp(key, "kernel.hostname") || !strcmp(key, "kernel.domainname"))
      t = NS_UTS;
    const struct oci_namespace *ns = spec_find_ns(spec, t);
    if (!ns || !ns->path)
      continue;
    _cleanup_free_ char *own = xasprintf("/proc/self/ns/%s", spec_ns_proc_name(t));
    struct stat a, b;
    if (stat(ns->path, &a) == 0 && stat(own, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
      return isola_failx(err, EPERM,
                         "linux.sysctl: \"%s\" would change the host: the %s namespace \"%s\" "
                         "is the host's",
                         key, spec_ns_name(t), ns->path);
  }
  return 0;
}

struct record_ctx {
  int dirfd;
  struct container_state *st;
  struct isola_error **err;
};

/* Persist the planned cgroup before it exists: delete --force then finds it whatever happens. */
static int record_cgroup(const struct cgroup *cg, void *arg)
{
  struct record_ctx *rec = arg;
  rec->st->cgroup = (struct cgroup *) cg;
  int r = state_write(rec->dirfd, rec->st, rec->err);
  rec->st->cgroup = NULL;
  return r;
}

/* io.isola.isolation picks process or VM isolation per container. The VM backend is not built
 * yet: asking for it must fail, never quietly give a weaker container. */
static int check_isolation(const struct oci_spec *spec, struct isola_error **err)
{
  struct json_object *v = NULL;
  if (!spec->annotations || !json_object_object_get_ex(spec->annotations, ISOLATION_ANNOTATION, &v))
    return 0;
  const char *want = json_object_get_string(v);
  if (!strcmp(want, "process"))
    return 0;
  if (!strcmp(want, "vm") || !strcmp(want, "hyperv"))
    return isola_failx(err, ENOTSUP,
                       "annotations.%s: VM isolation is not available yet in this build of "
                       "isola-runtime",
                       ISOLATION_ANNOTATION);
  return isola_failx(err, EINVAL, "annotations.%s: \"%s\" is not process or vm",
                     ISOLATION_ANNOTATION, want);
}

static uid_t host_id_of_root(const struct oci_idmap *m, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (m[i].container_id == 0)
      return m[i].host_id;
  return 0;
}

/* The device rules every container gets after its own, as runc does. */
static void add_default_device_rules(struct oci_resources *res)
{
  static const struct oci_device_rule defaults[] = {
      {true, 'c', -1, -1, "m"}, {true, 'b', -1, -1, "m"},    {true, 'c', 1, 3, "rwm"},
      {true, 'c', 1, 5, "rwm"}, {true, 'c', 1, 7, "rwm"},    {true, 'c', 1, 8, "rwm"},
      {true, 'c', 1, 9, "rwm"}, {true, 'c', 5, 0, "rwm"},    {true, 'c', 5, 1, "rwm"},
      {true, 'c', 5, 2, "rwm"}, {true, 'c', 136, -1, "rwm"}, {true, 'c', 10, 200, "rwm"},
  };
  size_t n = res->n_devices;
  res->devices = xrealloc(res->devices, (n + ARRAY_SIZE(defaults)) * sizeof(*res->devices));
  memcpy(res->devices + n, defaults, sizeof(defaults));
  res->n_devices = n + ARRAY_SIZE(defaults);
}

struct created {
  pid_t pid;
  int dirfd;
  int console_fd; /* our end when we relay the terminal (run without --console-socket) */
  struct container_state *st;
  struct oci_spec *spec;
};

static void created_clear(struct created *c)
{
  if (c->dirfd >= 0)
    close(c->dirfd);
  if (c->console_fd >= 0)
    close(c->console_fd);
  state_free(c->st);
  spec_free(c->spec);
}

static int hook_state(const struct container_state *st, enum container_status s, char **out)
{
  _cleanup_json_ struct json_object *o = state_to_oci_json(st, s);
  *out = json_to_string(o, false);
  return 0;
}

static int do_create(const struct runtime_opts *ro, const struct create_opts *co, bool relay_tty,
                     struct created *out, struct isola_error **err)
{
  _cleanup_spec_ struct oci_spec *spec = NULL;
  _cleanup_free_ char *config_text = NULL;
  size_t config_len = 0;
  _cleanup_free_ char *bundle = realpath(co->bundle ? co->bundle : ".", NULL);
  int r;
  if (!bundle)
    return isola_fail(err, errno, "bundle \"%s\"", co->bundle ? co->bundle : ".");
  if ((r = state_check_id(co->id, err)) < 0 ||
      (r = spec_load(bundle, &spec, &config_text, &config_len, err)) < 0)
    return r;
  if (!spec->has_process)
    return isola_failx(err, EINVAL, "config.json: process: missing");
  if ((r = process_check_labels(&spec->process, err)) < 0 || (r = check_isolation(spec, err)) < 0 ||
      (r = check_sysctl_namespaces(spec, err)) < 0)
    return r;
  if (spec->mount_label && *spec->mount_label && access("/sys/fs/selinux/enforce", F_OK) == 0)
    return isola_failx(err, ENOTSUP,
                       "linux.mountLabel: SELinux mount labels are not supported "
                       "yet (the mounts would be unlabelled)");
  if (ro->systemd_cgroup)
    return isola_failx(err, ENOTSUP,
                       "--systemd-cgroup: the systemd cgroup driver is not supported; "
                       "use cgroupfs (no --systemd-cgroup)");
  if (spec->process.terminal && !co->console_socket && !relay_tty)
    return isola_failx(err, EINVAL, "process.terminal is true but no --console-socket was given");

  struct seccomp_prog prog = {0};
  if (spec->seccomp && (r = seccomp_compile(spec->seccomp, &prog, err)) < 0)
    return r;

  _cleanup_close_ int dirfd = -1;
  if ((r = state_dir_create(ro->root, co->id, &dirfd, err)) < 0) {
    seccomp_prog_clear(&prog);
    return r;
  }
  struct container_state *st = xzalloc(sizeof(*st));
  st->id = xstrdup(co->id);
  st->bundle = xstrdup(bundle);
  st->root = xstrdup(ro->root);
  st->created = now_rfc3339();
  st->owner = geteuid();
  st->saved_status = STATUS_CREATING;
  st->annotations = spec->annotations ? json_object_get(spec->annotations) : NULL;
  st->use_terminal = spec->process.terminal;

  pid_t pid = -1;
  int sync[2] = {-1, -1}, console[2] = {-1, -1};
  _cleanup_free_ char *state_json = NULL;
  _cleanup_close_ int fifo_fd = -1, proc_fd = -1, console_fd = -1, listener_fd = -1;
  if ((r = state_write(dirfd, st, err)) < 0 ||
      (r = state_save_config(dirfd, config_text, config_len, err)) < 0)
    goto fail;
  if (mkfifoat(dirfd, EXEC_FIFO, 0600) < 0) {
    r = isola_fail(err, errno, "cannot create the exec fifo");
    goto fail;
  }
  /* In a new user namespace, init reopens the fifo as the mapped root. */
  if (spec_find_ns(spec, NS_USER) && !spec_find_ns(spec, NS_USER)->path &&
      fchownat(dirfd, EXEC_FIFO, host_id_of_root(spec->uid_mappings, spec->n_uid_mappings),
               host_id_of_root(spec->gid_mappings, spec->n_gid_mappings), 0) < 0) {
    r = isola_fail(err, errno, "cannot hand the exec fifo to the container's root");
    goto fail;
  }
  fifo_fd = openat(dirfd, EXEC_FIFO, O_PATH | O_CLOEXEC);
  proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fifo_fd < 0 || proc_fd < 0) {
    r = isola_fail(err, errno, "cannot open the exec fifo");
    goto fail;
  }
  if (spec->process.terminal) {
    if (co->console_socket) {
      if ((r = terminal_connect(co->console_socket, &console_fd, err)) < 0)
        goto fail;
    } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console) < 0) {
      r = isola_fail(err, errno, "cannot create the terminal socket");
      goto fail;
    } else {
      console_fd = console[1];
    }
  }
  if (spec->seccomp && spec->seccomp->listener_path && *spec->seccomp->listener_path &&
      prog.notify && (r = terminal_connect(spec->seccomp->listener_path, &listener_fd, err)) < 0) {
    isola_error_prefix(err, "linux.seccomp.listenerPath");
    goto fail;
  }

  struct record_ctx rec = {.dirfd = dirfd, .st = st, .err = err};
  if ((r = cgroup_create_recorded(spec->cgroups_path, co->id, record_cgroup, &rec, &st->cgroup,
                                  err)) < 0)
    goto fail;
  if ((r = state_write(dirfd, st, err)) < 0)
    goto fail;

  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0) {
    r = isola_fail(err, errno, "cannot create the sync socket");
    goto fail;
  }
  struct init_args args = {.spec = spec,
                           .co = co,
                           .cgroup = st->cgroup,
                           .seccomp = spec->seccomp ? &prog : NULL,
                           .sync_fd = sync[1],
                           .fifo_fd = fifo_fd,
                           .proc_fd = proc_fd,
                           .console_fd = console_fd,
                           .listener_fd = listener_fd,
                           .state_dirfd = dirfd};
  struct spawn_req req = {.sync_fd = sync[1], .fn = init_main, .arg = &args};
  for (int pass = 0; pass < 2; pass++) /* joined namespaces: the user namespace last */
    for (size_t i = 0; i < spec->n_namespaces; i++) {
      const struct oci_namespace *ns = &spec->namespaces[i];
      if ((ns->type == NS_USER) != (pass == 1))
        continue;
      if (ns->path) {
        int fd = open(ns->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
          r = isola_fail(err, errno, "linux.namespaces: cannot open %s namespace \"%s\"",
                         spec_ns_name(ns->type), ns->path);
          goto fail_spawn;
        }
        req.join_fds[req.n_join] = fd;
        req.join_flags[req.n_join++] = ns->clone_flag;
      } else if (ns->type == NS_TIME) {
        req.new_time_ns = true;
        req.monotonic_secs = spec->time_offset_monotonic_secs;
        req.monotonic_nsecs = spec->time_offset_monotonic_nsecs;
        req.boottime_secs = spec->time_offset_boottime_secs;
        req.boottime_nsecs = spec->time_offset_boottime_nsecs;
      } else if (ns->type != NS_CGROUP) {
        req.clone_flags |= ns->clone_flag;
      }
    }
  args.new_user_ns = (req.clone_flags & CLONE_NEWUSER) != 0;
  r = spawn_process(&req, sync[0], &pid, err);
fail_spawn:
  for (size_t i = 0; i < req.n_join; i++)
    close(req.join_fds[i]);
  close(sync[1]);
  sync[1] = -1;
  if (r < 0)
    goto fail;

  if (args.new_user_ns &&
      ((r = write_id_map(pid, "uid_map", spec->uid_mappings, spec->n_uid_mappings, err)) < 0 ||
       (r = write_id_map(pid, "gid_map", spec->gid_mappings, spec->n_gid_mappings, err)) < 0))
    goto fail;
  if ((r = cgroup_enter(st->cgroup, pid, err)) < 0)
    goto fail;
  add_default_device_rules(&spec->resources);
  if ((r = cgroup_apply(st->cgroup, &spec->resources, err)) < 0)
    goto fail;
  st->pid = pid;
  st->start_time = proc_start_time(pid);
  if ((r = state_write(dirfd, st, err)) < 0)
    goto fail;

  /* The hooks run after the environment exists (lifecycle step 2), so they see "created"
   * (as crun; the runtime-tools hooks_stdin test checks this for prestart). */
  hook_state(st, STATUS_CREATED, &state_json);
  if ((r = hooks_run(spec->hooks[HOOK_PRESTART], spec->n_hooks[HOOK_PRESTART], "prestart",
                     state_json, err)) < 0 ||
      (r = hooks_run(spec->hooks[HOOK_CREATE_RUNTIME], spec->n_hooks[HOOK_CREATE_RUNTIME],
                     "createRuntime", state_json, err)) < 0)
    goto fail;
  if ((r = sync_send_data(sync[0], SYNC_GO, state_json, strlen(state_json))) < 0) {
    r = isola_fail(err, -r, "cannot reach the container process");
    goto fail;
  }
  if ((r = sync_expect(sync[0], SYNC_READY, err)) < 0)
    goto fail;
  close(sync[0]);
  sync[0] = -1;

  st->saved_status = STATUS_CREATED;
  if ((r = state_write(dirfd, st, err)) < 0)
    goto fail;
  if (co->pid_file && (r = write_pid_file(co->pid_file, pid, err)) < 0)
    goto fail;
  seccomp_prog_clear(&prog);
  if (console[0] >= 0) {
    /* Receive the pty master the container made, for the relay. */
    char buf[32];
    int fds[1], nfds = 0;
    if (recv_fds(console[0], buf, sizeof(buf), fds, 1, &nfds) < 0 || nfds != 1) {
      r = isola_failx(err, EIO, "did not receive the container's terminal");
      goto fail;
    }
    close(console[0]);
    out->console_fd = fds[0];
  } else {
    out->console_fd = -1;
  }
  out->pid = pid;
  out->dirfd = steal_fd(&dirfd);
  out->st = st;
  out->spec = steal_pointer(&spec);
  return 0;

fail:
  if (sync[0] >= 0)
    close(sync[0]);
  if (console[0] >= 0)
    close(console[0]);
  seccomp_prog_clear(&prog);
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    st->pid = pid;
  }
  struct isola_error *cleanup_err = NULL;
  container_destroy(ro->root, co->id, st, NULL, &cleanup_err);
  isola_error_free(&cleanup_err);
  state_free(st);
  return r;
}

int container_create(const struct runtime_opts *ro, const struct create_opts *co,
                     struct isola_error **err)
{
  struct created c = {.dirfd = -1, .console_fd = -1};
  int r = do_create(ro, co, false, &c, err);
  if (r < 0)
    return r;
  created_clear(&c);
  return 0;
}

int container_run(const struct runtime_opts *ro, const struct create_opts *co, int *status,
                  struct isola_error **err)
{
  sigset_t set, old;
  if (!co->detach)
    block_forwarded_signals(&set, &old);
  struct created c = {.dirfd = -1, .console_fd = -1};
  int r = do_create(ro, co, !co->detach && !co->console_socket, &c, err);
  if (r < 0)
    goto out;
  if ((r = container_start_locked(c.dirfd, c.st, c.spec, err)) < 0) {
    struct isola_error *e2 = NULL;
    kill(c.pid, SIGKILL);
    waitpid(c.pid, NULL, 0);
    container_destroy(ro->root, co->id, c.st, NULL, &e2);
    isola_error_free(&e2);
    created_clear(&c);
    goto out;
  }
  /* Others may look at the container while it runs: let go of the lock. */
  close(c.dirfd);
  c.dirfd = -1;
  *status = 0;
  if (co->detach) {
    created_clear(&c);
    goto out;
  }
  if (c.console_fd >= 0) {
    int ws = 0;
    terminal_relay(c.console_fd, c.pid, &set, &ws);
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  } else {
    *status = wait_forwarding_signals(c.pid, &set);
  }
  created_clear(&c);
  if (!co->keep) {
    r = container_delete(ro, co->id, true, err);
  } else {
    /* Keep the exit status for `state` and engines that look later. */
    _cleanup_close_ int dfd = -1;
    _cleanup_state_ struct container_state *st = NULL;
    if ((r = state_dir_open(ro->root, co->id, true, &dfd, err)) == 0 &&
        (r = state_read(dfd, ro->root, co->id, &st, err)) == 0) {
      st->has_exit_status = true;
      st->exit_status = *status;
      st->saved_status = STATUS_STOPPED;
      r = state_write(dfd, st, err);
    }
  }
out:
  if (!co->detach)
    sigprocmask(SIG_SETMASK, &old, NULL);
  return r;
}
