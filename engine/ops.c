/* What `isola` does to existing containers: kill, stop, wait, rm, logs, exec. */
#include "engine.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* "TERM", "SIGTERM" or "15" (an image's StopSignal). */
static int signal_number(const char *s)
{
  uint64_t n;
  if (parse_u64(s, &n) == 0)
    return n > 0 && n < 65 ? (int) n : -1;
  if (!strncmp(s, "SIG", 3))
    s += 3;
  for (int i = 1; i < 32; i++) {
    const char *a = sigabbrev_np(i);
    if (a && !strcmp(a, s))
      return i;
  }
  return -1;
}

static int find_running(struct engine *e, const char *what, struct ctr_record **out,
                        struct isola_error **err)
{
  int r = ctr_find(e, what, out, err);
  if (r < 0)
    return r;
  if (ctr_record_live_status(*out) != CTR_RUNNING) {
    r = isola_failx(err, EINVAL, "container %s is not running",
                    (*out)->name ? (*out)->name : (*out)->id);
    ctr_record_free(*out);
    *out = NULL;
    return r;
  }
  return 0;
}

/* A signal for the container: its init (process isolation), or for a VM the process in the
 * guest, through the monitor that speaks to guest-init (SIGKILL ends the VM itself). */
static int ctr_signal(struct engine *e, const struct ctr_record *rec, int sig, bool all,
                      struct isola_error **err)
{
  if (rec->isolation != ISOLATION_VM) {
    struct runtime_opts ro = {.root = e->run_root};
    return container_kill(&ro, rec->id, sig, all, err);
  }
  static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  pid_t target = 0;
  if (sig == SIGKILL && rec->vmm_pid > 0 && proc_start_time(rec->vmm_pid) == rec->vmm_start)
    target = rec->vmm_pid;
  for (size_t i = 0; i < ARRAY_SIZE(forwarded) && !target; i++)
    if (sig == forwarded[i] && rec->monitor_pid > 0 &&
        proc_start_time(rec->monitor_pid) == rec->monitor_start)
      target = rec->monitor_pid;
  if (target && target == rec->vmm_pid) {
    /* The monitor runs in a session of its own (see spawn_vmm): end all of it. */
    if (kill(-target, SIGKILL) < 0 && kill(target, SIGKILL) < 0)
      return isola_fail(err, errno, "cannot stop the VM of container %s", rec->name);
    return 0;
  }
  if (!target)
    return isola_failx(err, EINVAL,
                       "container %s runs in a VM: only SIGKILL, SIGINT, SIGTERM, SIGHUP, "
                       "SIGQUIT, SIGUSR1 and SIGUSR2 reach it",
                       rec->name);
  if (kill(target, sig) < 0)
    return isola_fail(err, errno, "cannot signal container %s", rec->name);
  return 0;
}

int engine_kill(struct engine *e, const char *what, int sig, struct isola_error **err)
{
  _cleanup_record_ struct ctr_record *rec = NULL;
  int r = find_running(e, what, &rec, err);
  if (r < 0)
    return r;
  return ctr_signal(e, rec, sig, false, err);
}

/* Wait for the monitor to record the exit; false on timeout (ms < 0: forever). */
static bool wait_exited(struct engine *e, const char *id, long ms, int *code)
{
  for (long waited = 0; ms < 0 || waited <= ms; waited += 20) {
    _cleanup_record_ struct ctr_record *rec = NULL;
    if (ctr_record_read(e, id, &rec, NULL) < 0) {
      *code = -1; /* removed (--rm): gone is exited */
      return true;
    }
    if (ctr_record_live_status(rec) == CTR_EXITED) {
      /* The monitor writes "exited" last: a record still "running" with a dead monitor means
       * it died with the container; its status is unknown. */
      *code = rec->status == CTR_EXITED ? rec->exit_code : -1;
      return true;
    }
    sleep_ms(20);
  }
  return false;
}

int engine_stop(struct engine *e, const char *what, int timeout, struct isola_error **err)
{
  _cleanup_record_ struct ctr_record *rec = NULL;
  int r = ctr_find(e, what, &rec, err);
  if (r < 0 || ctr_record_live_status(rec) != CTR_RUNNING)
    return r; /* stopping a stopped container is not an error, as docker */
  int sig = signal_number(rec->stop_signal ? rec->stop_signal : "SIGTERM");
  struct isola_error *e1 = NULL;
  ctr_signal(e, rec, sig > 0 ? sig : SIGTERM, false, &e1);
  isola_error_free(&e1);
  int code;
  if (wait_exited(e, rec->id, timeout * 1000L, &code))
    return 0;
  ctr_signal(e, rec, SIGKILL, true, &e1);
  isola_error_free(&e1);
  if (!wait_exited(e, rec->id, 10000, &code))
    return isola_failx(err, ETIMEDOUT, "container %s did not stop", rec->name);
  return 0;
}

int engine_wait(struct engine *e, const char *what, int *status, struct isola_error **err)
{
  _cleanup_record_ struct ctr_record *rec = NULL;
  int r = ctr_find(e, what, &rec, err);
  if (r < 0)
    return r;
  int code;
  wait_exited(e, rec->id, -1, &code);
  if (code < 0)
    return isola_failx(err, EIO, "container %s: its exit status is unknown (its monitor died)",
                       rec->name);
  *status = code;
  return 0;
}

int engine_rm(struct engine *e, const char *what, bool force, struct isola_error **err)
{
  _cleanup_record_ struct ctr_record *rec = NULL;
  int r = ctr_find(e, what, &rec, err);
  if (r < 0)
    return r;
  struct runtime_opts ro = {.root = e->run_root};
  enum ctr_status st = ctr_record_live_status(rec);
  if (st != CTR_EXITED) {
    if (!force)
      return isola_failx(err, EBUSY, "container %s is %s: stop it first, or use --force", rec->name,
                         st == CTR_RUNNING ? "running" : "starting");
    struct isola_error *e1 = NULL;
    if (st == CTR_RUNNING) {
      ctr_signal(e, rec, SIGKILL, true, &e1);
    } else if (rec->monitor_pid > 0) {
      /* Still being set up (or a VM booting): end the monitor; what it made is cleaned below,
       * and a VM's monitor dies with it (PR_SET_PDEATHSIG). */
      kill(rec->monitor_pid, SIGKILL);
    }
    isola_error_free(&e1);
    int code;
    if (!wait_exited(e, rec->id, 10000, &code))
      return isola_failx(err, ETIMEDOUT, "container %s did not stop", rec->name);
  }
  /* What a monitor that died (SIGKILL) could not clean: the runtime's state, the mount. */
  struct isola_error *e2 = NULL;
  container_delete(&ro, rec->id, true, &e2);
  isola_error_free(&e2);
  _cleanup_free_ char *cdir = ctr_dir(e, rec->id), *rootfs = xasprintf("%s/bundle/rootfs", cdir);
  while (umount2(rootfs, MNT_DETACH) == 0)
    ;
  /* Sockets a killed monitor could not remove (engine/run.c, engine/vm.c). */
  _cleanup_free_ char *s1 = xasprintf("/run/isola-console-%.16s.sock", rec->id),
                      *vdir = engine_vm_dir(rec->id);
  unlink(s1);
  rm_rf_at(AT_FDCWD, vdir);
  r = rm_rf_at(AT_FDCWD, cdir);
  if (r < 0 && r != -ENOENT)
    return isola_fail(err, -r, "cannot remove \"%s\"", cdir);
  return 0;
}

/* Copy new bytes of `fd` to `to`; returns how many. */
static ssize_t copy_new(int fd, int to)
{
  char buf[65536];
  ssize_t total = 0, n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) {
    if (write_all(to, buf, n) < 0)
      return -1;
    total += n;
  }
  return total;
}

int engine_logs(struct engine *e, const char *what, bool follow, struct isola_error **err)
{
  _cleanup_record_ struct ctr_record *rec = NULL;
  int r = ctr_find(e, what, &rec, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *cdir = ctr_dir(e, rec->id), *o = xasprintf("%s/stdout.log", cdir),
                      *x = xasprintf("%s/stderr.log", cdir);
  _cleanup_close_ int fo = open(o, O_RDONLY | O_CLOEXEC), fe = open(x, O_RDONLY | O_CLOEXEC);
  for (;;) {
    bool done = !follow;
    if (follow) {
      _cleanup_record_ struct ctr_record *now = NULL;
      done =
          ctr_record_read(e, rec->id, &now, NULL) < 0 || ctr_record_live_status(now) == CTR_EXITED;
    }
    ssize_t a = fo >= 0 ? copy_new(fo, 1) : 0, b = fe >= 0 ? copy_new(fe, 2) : 0;
    if (a < 0 || b < 0)
      return isola_fail(err, errno, "cannot write the logs of %s", rec->name);
    if (done)
      break;
    if (!a && !b)
      sleep_ms(50);
    if (fo < 0)
      fo = open(o, O_RDONLY | O_CLOEXEC);
    if (fe < 0)
      fe = open(x, O_RDONLY | O_CLOEXEC);
  }
  return 0;
}

int engine_exec(struct engine *e, const char *what, const struct exec_request *x, int *status,
                struct isola_error **err)
{
  *status = EXIT_ENGINE;
  _cleanup_record_ struct ctr_record *rec = NULL;
  int r = find_running(e, what, &rec, err);
  if (r < 0)
    return r;
  if (rec->isolation == ISOLATION_VM)
    return engine_vm_exec(e, rec, x, status, err);
  struct runtime_opts ro = {.root = e->run_root};
  struct oci_process p = {0};
  if ((r = container_exec_default_process(&ro, rec->id, &p, err)) < 0)
    return r;
  strv_free(p.args);
  p.args = strv_copy(x->args);
  for (char **kv = x->env; kv && *kv; kv++) {
    size_t k = strcspn(*kv, "=");
    bool replaced = false;
    for (char **pe = p.env; pe && *pe && (*kv)[k]; pe++)
      if (!strncmp(*pe, *kv, k) && (*pe)[k] == '=') {
        free(*pe);
        *pe = xstrdup(*kv);
        replaced = true;
      }
    if (!replaced && (*kv)[k])
      p.env = strv_append(p.env, *kv);
  }
  if (x->workdir) {
    free(p.cwd);
    p.cwd = xstrdup(x->workdir);
  }
  if (x->user) {
    _cleanup_free_ char *rootfs =
        xasprintf("%s/containers/%s/bundle/rootfs", e->store->root, rec->id);
    uint32_t uid, gid;
    if ((r = engine_user_ids(x->user, rootfs, &uid, &gid, err)) < 0) {
      spec_process_clear(&p);
      return r;
    }
    p.user.uid = uid;
    p.user.gid = gid;
    free(p.user.additional_gids);
    p.user.additional_gids = NULL;
    p.user.n_additional_gids = 0;
  }
  p.terminal = x->tty;
  _cleanup_close_ int null = -1;
  int saved = -1;
  if (!x->interactive && !x->tty) {
    /* Without -i the process reads nothing, as docker. */
    null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    saved = fcntl(0, F_DUPFD_CLOEXEC, 3);
    dup2(null, 0);
  }
  struct exec_opts eo = {.id = rec->id, .process = &p, .detach = x->detach};
  r = container_exec(&ro, &eo, status, err);
  if (saved >= 0) {
    dup2(saved, 0);
    close(saved);
  }
  spec_process_clear(&p);
  if (r < 0) {
    *status = (*err && (*err)->msg && !strncmp((*err)->msg, "exec: ", 6))
                  ? ((*err)->code == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_INVOKE)
                  : EXIT_ENGINE;
    return r;
  }
  return 0;
}
