/* start, kill, delete, state, pause/resume, ps, update, list. */
#include "container.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

int write_pid_file(const char *path, pid_t pid, struct isola_error **err)
{
  _cleanup_free_ char *abs = path[0] == '/' ? xstrdup(path) : NULL;
  if (!abs) {
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd)))
      return isola_fail(err, errno, "--pid-file: cannot resolve \"%s\"", path);
    abs = xasprintf("%s/%s", cwd, path);
  }
  _cleanup_free_ char *text = xasprintf("%d", (int) pid);
  int r = write_file_atomic(AT_FDCWD, abs, text, strlen(text), 0644);
  if (r < 0)
    return isola_fail(err, -r, "--pid-file: cannot write \"%s\"", path);
  return 0;
}

static int open_container_as(const struct runtime_opts *ro, const char *id, bool lock, int *dirfd,
                             struct container_state **st, struct isola_error **err)
{
  int r = state_dir_open(ro->root, id, lock, dirfd, err);
  if (r < 0)
    return r;
  r = state_read(*dirfd, ro->root, id, st, err);
  if (r < 0) {
    close(*dirfd);
    *dirfd = -1;
  }
  return r;
}

/* For verbs that change the container: exclusive, against concurrent runtimes. */
static int open_container(const struct runtime_opts *ro, const char *id, int *dirfd,
                          struct container_state **st, struct isola_error **err)
{
  return open_container_as(ro, id, true, dirfd, st, err);
}

/* For verbs that only look (state, ps, list): no lock, so that they answer while a create runs
 * its hooks (a hook may well ask for the state); state.json is replaced atomically. */
static int look_at_container(const struct runtime_opts *ro, const char *id, int *dirfd,
                             struct container_state **st, struct isola_error **err)
{
  return open_container_as(ro, id, false, dirfd, st, err);
}

/* Does the process still hold the exec fifo (it does until it execs the program)? */
static bool init_holds_fifo(pid_t pid, int fifo)
{
  struct stat want;
  if (fstat(fifo, &want) < 0)
    return true;
  char dir[64];
  snprintf(dir, sizeof(dir), "/proc/%d/fd", (int) pid);
  DIR *d = opendir(dir);
  if (!d)
    return true; /* cannot tell: keep waiting */
  bool held = false;
  struct dirent *de;
  while (!held && (de = readdir(d))) {
    struct stat st;
    if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, 0) == 0)
      held = st.st_dev == want.st_dev && st.st_ino == want.st_ino;
  }
  closedir(d);
  return held;
}

int container_start_locked(int dirfd, struct container_state *st, const struct oci_spec *spec,
                           struct isola_error **err)
{
  _cleanup_close_ int fifo = openat(dirfd, EXEC_FIFO, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fifo < 0)
    return isola_fail(err, errno, "container \"%s\": cannot open the exec fifo", st->id);
  _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, st->pid, 0);
  /* Wait for init's byte; if init dies instead, say so rather than hang. */
  for (;;) {
    struct pollfd p[2] = {{.fd = fifo, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
    int n = poll(p, pidfd >= 0 ? 2 : 1, 200);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return isola_fail(err, errno, "container \"%s\": waiting for init", st->id);
    char b;
    ssize_t got = read(fifo, &b, 1);
    if (got == 1)
      break;
    /* A start killed after init went on leaves the fifo behind: init no longer waits on it. */
    if (n == 0 && !init_holds_fifo(st->pid, fifo))
      break;
    if ((pidfd >= 0 && (p[1].revents & POLLIN)) || proc_start_time(st->pid) == 0)
      return isola_failx(err, ESRCH, "container \"%s\": its init process exited before start",
                         st->id);
  }
  unlinkat(dirfd, EXEC_FIFO, 0);
  st->saved_status = STATUS_RUNNING;
  int r = state_write(dirfd, st, err);
  if (r < 0)
    return r;
  if (spec && spec->n_hooks[HOOK_POSTSTART]) {
    _cleanup_json_ struct json_object *o = state_to_oci_json(st, STATUS_RUNNING);
    _cleanup_free_ char *json = json_to_string(o, false);
    struct isola_error *herr = NULL;
    if (hooks_run(spec->hooks[HOOK_POSTSTART], spec->n_hooks[HOOK_POSTSTART], "poststart", json,
                  &herr) < 0) {
      /* The spec: a failing poststart hook is logged, the container keeps running. */
      log_warn("%s", herr->msg);
      isola_error_free(&herr);
    }
  }
  return 0;
}

int container_start(const struct runtime_opts *ro, const char *id, struct isola_error **err)
{
  _cleanup_close_ int dirfd = -1;
  _cleanup_state_ struct container_state *st = NULL;
  int r = open_container(ro, id, &dirfd, &st, err);
  if (r < 0)
    return r;
  enum container_status s = state_status(dirfd, st);
  if (s != STATUS_CREATED)
    return isola_failx(err, EINVAL, "container \"%s\" is %s, not created: cannot start it", id,
                       state_status_name(s));
  _cleanup_spec_ struct oci_spec *spec = NULL;
  struct isola_error *cerr = NULL;
  if (state_load_config(dirfd, &spec, &cerr) < 0)
    isola_error_free(&cerr); /* hooks are then unknown; start anyway */
  return container_start_locked(dirfd, st, spec, err);
}

int container_kill(const struct runtime_opts *ro, const char *id, int sig, bool all,
                   struct isola_error **err)
{
  _cleanup_close_ int dirfd = -1;
  _cleanup_state_ struct container_state *st = NULL;
  int r = open_container(ro, id, &dirfd, &st, err);
  if (r < 0)
    return r;
  /* --all reaches what is left in the cgroup even after init is gone (containerd kills the
   * leftovers of a container without its own pid namespace this way). */
  if (all && st->cgroup)
    return cgroup_kill_all(st->cgroup, sig, err);
  enum container_status s = state_status(dirfd, st);
  if (s == STATUS_STOPPED || s == STATUS_CREATING)
    return isola_failx(err, ESRCH, "container \"%s\" is not running", id);
  /* pidfd_send_signal cannot hit a recycled pid once the pidfd is open; the start time check
   * in state_status() covers the gap before. */
  _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, st->pid, 0);
  if (pidfd >= 0 ? syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 : kill(st->pid, sig) < 0)
    return isola_fail(err, errno, "container \"%s\": cannot send signal %d", id, sig);
  return 0;
}

static void wait_gone(pid_t pid, unsigned long long start_time)
{
  for (int i = 0; i < 500; i++) { /* up to 5 s */
    unsigned long long t = proc_start_time(pid);
    if (t == 0 || (start_time && t != start_time))
      return;
    /* Reap it if it is ours (run, or a create that failed). */
    waitpid(pid, NULL, WNOHANG);
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

int container_destroy(const char *root, const char *id, struct container_state *st,
                      const struct oci_spec *spec, struct isola_error **err)
{
  int r = 0;
  if (st->pid > 0) {
    unsigned long long t = proc_start_time(st->pid);
    if (t != 0 && (!st->start_time || t == st->start_time))
      kill(st->pid, SIGKILL);
  }
  if (st->cgroup) {
    struct isola_error *e = NULL;
    cgroup_kill_all(st->cgroup, SIGKILL, &e);
    isola_error_free(&e);
    if (cgroup_is_frozen(st->cgroup))
      cgroup_freeze(st->cgroup, false, &e); /* frozen tasks die only when thawed */
    isola_error_free(&e);
  }
  if (st->pid > 0)
    wait_gone(st->pid, st->start_time);
  if (st->cgroup && (r = cgroup_destroy(st->cgroup, err)) < 0)
    return r;
  if (spec && spec->n_hooks[HOOK_POSTSTOP]) {
    _cleanup_json_ struct json_object *o = state_to_oci_json(st, STATUS_STOPPED);
    _cleanup_free_ char *json = json_to_string(o, false);
    struct isola_error *herr = NULL;
    if (hooks_run(spec->hooks[HOOK_POSTSTOP], spec->n_hooks[HOOK_POSTSTOP], "poststop", json,
                  &herr) < 0) {
      log_warn("%s", herr->msg);
      isola_error_free(&herr);
    }
  }
  r = state_dir_remove(root, id);
  if (r < 0)
    return isola_fail(err, -r, "cannot remove the state of container \"%s\"", id);
  return 0;
}

int container_delete(const struct runtime_opts *ro, const char *id, bool force,
                     struct isola_error **err)
{
  _cleanup_close_ int dirfd = -1;
  _cleanup_state_ struct container_state *st = NULL;
  int r = open_container(ro, id, &dirfd, &st, err);
  if (r < 0)
    return r;
  enum container_status s = state_status(dirfd, st);
  /* A running or paused container needs --force. A created one is deleted (its init killed)
   * as runc and crun do: containerd's shim deletes created tasks without --force. */
  if ((s == STATUS_RUNNING || s == STATUS_PAUSED) && !force)
    return isola_failx(err, EBUSY, "container \"%s\" is %s: stop it first or use delete --force",
                       id, state_status_name(s));
  _cleanup_spec_ struct oci_spec *spec = NULL;
  struct isola_error *cerr = NULL;
  if (state_load_config(dirfd, &spec, &cerr) < 0)
    isola_error_free(&cerr);
  /* Poststop hooks only for containers that got as far as being created. */
  return container_destroy(ro->root, id, st, s == STATUS_CREATING ? NULL : spec, err);
}

int container_state_json(const struct runtime_opts *ro, const char *id, char **out,
                         struct isola_error **err)
{
  _cleanup_close_ int dirfd = -1;
  _cleanup_state_ struct container_state *st = NULL;
  int r = look_at_container(ro, id, &dirfd, &st, err);
  if (r < 0)
    return r;
  _cleanup_json_ struct json_object *o = state_to_oci_json(st, state_status(dirfd, st));
  *out = json_to_string(o, true);
  return 0;
}

int container_pause(const struct runtime_opts *ro, const char *id, bool pause,
                    struct isola_error **err)
{
  _cleanup_close_ int dirfd = -1;
  _cleanup_state_ struct container_state *st = NULL;
  int r = open_container(ro, id, &dirfd, &st, err);
  if (r < 0)
    return r;
  enum container_status s = state_status(dirfd, st);
  if (pause && s != STATUS_RUNNING)
    return isola_failx(err, EINVAL, "container \"%s\" is %s, not running: cannot pause it", id,
                       state_status_name(s));
  if (!pause && s != STATUS_PAUSED)
    return isola_failx(err, EINVAL, "container \"%s\" is %s, not paused: cannot resume it", id,
                       state_status_name(s));
  if (!st->cgroup)
    return isola_failx(err, ENOTSUP, "container \"%s\" has no cgroup to freeze", id);
  return cgroup_freeze(st->cgroup, pause, err);
}

int container_pids(const struct runtime_opts *ro, const char *id, pid_t **pids, size_t *n,
                   struct isola_error **err)
{
  _cleanup_close_ int dirfd = -1;
  _cleanup_state_ struct container_state *st = NULL;
  int r = look_at_container(ro, id, &dirfd, &st, err);
  if (r < 0)
    return r;
  if (!st->cgroup) {
    *pids = NULL;
    *n = 0;
    return 0;
  }
  return cgroup_pids(st->cgroup, pids, n, err);
}

int container_update(const struct runtime_opts *ro, const char *id, const struct oci_resources *res,
                     struct json_object *res_json, struct isola_error **err)
{
  _cleanup_close_ int dirfd = -1;
  _cleanup_state_ struct container_state *st = NULL;
  int r = open_container(ro, id, &dirfd, &st, err);
  if (r < 0)
    return r;
  enum container_status s = state_status(dirfd, st);
  if (s == STATUS_STOPPED)
    return isola_failx(err, EINVAL, "container \"%s\" is stopped: nothing to update", id);
  if (!st->cgroup)
    return isola_failx(err, ENOTSUP, "container \"%s\" has no cgroup", id);
  /* The device rules are the config's plus the defaults; a partial list would replace them
   * (runc ignores devices in update: refusing is clearer than dropping them). */
  if (res->n_devices)
    return isola_failx(err, ENOTSUP,
                       "update: devices: device rules of a running container cannot be changed");
  if ((r = cgroup_apply(st->cgroup, res, err)) < 0)
    return r;
  /* Keep the saved config in step, so a later exec or inspection sees the new limits. */
  _cleanup_free_ char *text = NULL;
  size_t len;
  if (res_json && read_file_at(dirfd, "config.json", 16 << 20, &text, &len) == 0) {
    _cleanup_json_ struct json_object *cfg = json_tokener_parse(text);
    struct json_object *lin = NULL, *old = NULL;
    if (cfg && json_object_object_get_ex(cfg, "linux", &lin)) {
      if (!json_object_object_get_ex(lin, "resources", &old) || !old) {
        old = json_object_new_object();
        json_object_object_add(lin, "resources", old);
      }
      json_object_object_foreach (res_json, k, v) {
        if (!json_object_is_type(v, json_type_object)) {
          json_object_object_add(old, k, json_object_get(v));
          continue;
        }
        struct json_object *sub = NULL;
        if (!json_object_object_get_ex(old, k, &sub) || !sub) {
          sub = json_object_new_object();
          json_object_object_add(old, k, sub);
        }
        json_object_object_foreach (v, k2, v2)
          json_object_object_add(sub, k2, json_object_get(v2));
      }
      _cleanup_free_ char *out = json_to_string(cfg, true);
      (void) write_file_atomic(dirfd, "config.json", out, strlen(out), 0600);
    }
  }
  return 0;
}

int container_list(const struct runtime_opts *ro, struct container_info **out, size_t *n,
                   struct isola_error **err)
{
  *out = NULL;
  *n = 0;
  DIR *d = opendir(ro->root);
  if (!d) {
    if (errno == ENOENT)
      return 0;
    return isola_fail(err, errno, "cannot list %s", ro->root);
  }
  struct container_info *list = NULL;
  size_t count = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.')
      continue;
    _cleanup_close_ int dirfd = -1;
    _cleanup_state_ struct container_state *st = NULL;
    struct isola_error *e = NULL;
    if (look_at_container(ro, de->d_name, &dirfd, &st, &e) < 0) {
      isola_error_free(&e);
      continue;
    }
    list = xrealloc(list, (count + 1) * sizeof(*list));
    struct container_info *c = &list[count++];
    enum container_status s = state_status(dirfd, st);
    c->id = xstrdup(st->id);
    c->bundle = xstrdup(st->bundle ? st->bundle : "");
    c->created = xstrdup(st->created ? st->created : "");
    c->status = xstrdup(state_status_name(s));
    c->pid = s == STATUS_STOPPED ? 0 : st->pid;
    c->owner = st->owner;
  }
  closedir(d);
  *out = list;
  *n = count;
  return 0;
}

void container_info_free(struct container_info *c, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(c[i].id);
    free(c[i].bundle);
    free(c[i].created);
    free(c[i].status);
  }
  free(c);
}
