/* `isola run`: find the image, make the container's record, rootfs and config, then monitor it
 * (in the foreground, or in a daemonized child with -d). */
#include "embedded.h"
#include "engine.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* ---- images ---- */

static int load_embedded(struct engine *e, const struct embedded_image *ei,
                         struct isola_error **err)
{
  _cleanup_close_ int fd = memfd_create("isola-embedded-image", MFD_CLOEXEC);
  if (fd < 0 || write_all(fd, ei->data, ei->len) < 0)
    return isola_fail(err, errno, "cannot read the embedded image \"%s\"", ei->short_name);
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  _cleanup_strv_ char **names = NULL;
  int r = image_load(e->store, path, ei->name, &names, err);
  if (r < 0)
    return isola_error_prefix(err, "the embedded image \"%s\"", ei->short_name);
  return 0;
}

int engine_find_image(struct engine *e, const char *name, struct image_entry *out,
                      struct isola_error **err)
{
  struct isola_error *e1 = NULL;
  int r = store_resolve(e->store, name, out, &e1);
  if (r == 0 || r != -ENOENT) {
    if (r < 0)
      *err = e1;
    return r;
  }
  _cleanup_free_ char *full = ref_normalize(name);
  struct embedded_image ei;
  if (full && embedded_image_find(full, &ei)) {
    isola_error_free(&e1);
    if ((r = load_embedded(e, &ei, err)) < 0)
      return r;
    return store_resolve(e->store, name, out, err);
  }
  if (!full) {
    *err = e1;
    return r;
  }
  /* As docker: an image that is not here is pulled. */
  struct isola_error *e2 = NULL;
  char digest[DIGEST_LEN + 1];
  struct pull_opts po = {.os = "linux", .arch = "amd64"};
  if (image_pull(e->store, name, &po, digest, &e2) < 0) {
    r = isola_failx(err, ENOENT, "%s, and pulling it failed: %s", e1->msg, e2->msg);
    isola_error_free(&e1);
    isola_error_free(&e2);
    return r;
  }
  isola_error_free(&e1);
  return store_resolve(e->store, name, out, err);
}

static int read_image_config(struct engine *e, const struct image_entry *img,
                             struct image_config **ic, struct isola_error **err)
{
  _cleanup_free_ char *text = NULL;
  size_t len;
  int r = store_read_blob(e->store, img->config, &text, &len, err);
  if (r < 0)
    return r;
  return image_config_parse(text, len, ic, err);
}

/* ---- the rootfs ---- */

/* overlayfs with the layers as lower dirs (top first). The lower dirs are given relative to the
 * layer cache, so that the option string (one page at most) holds about 60 layers. */
static int mount_rootfs(struct engine *e, char **layers, const char *cdir, struct isola_error **err)
{
  _cleanup_free_ char *lower = xstrdup(""), *rootfs = xasprintf("%s/bundle/rootfs", cdir);
  size_t n = strv_length(layers);
  if (n == 0) {
    /* An image with no layers: an empty lower dir. */
    _cleanup_free_ char *empty = xasprintf("%s/empty", cdir);
    if (mkdir(empty, 0755) < 0 && errno != EEXIST)
      return isola_fail(err, errno, "cannot create \"%s\"", empty);
    free(lower);
    lower = xstrdup(empty);
  }
  for (size_t i = n; i-- > 0;) {
    const char *base = strrchr(layers[i], '/') + 1;
    char *l = xasprintf("%s%s%s", lower, *lower ? ":" : "", base);
    free(lower);
    lower = l;
  }
  _cleanup_free_ char *opts =
      xasprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", lower, cdir, cdir);
  if (strlen(opts) >= 4000)
    return isola_failx(err, E2BIG, "the image has too many layers (%zu) for one overlay mount", n);
  _cleanup_free_ char *layer_dir = xasprintf("%s/layers/sha256", e->store->root);
  _cleanup_close_ int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (n && chdir(layer_dir) < 0)
    return isola_fail(err, errno, "cannot enter \"%s\"", layer_dir);
  int r = mount("overlay", rootfs, "overlay", MS_NODEV, opts);
  int saved = errno;
  if (cwd >= 0 && fchdir(cwd) < 0) {
    /* Nothing depends on our cwd after this point. */
  }
  if (r < 0)
    return isola_fail(err, saved, "cannot mount the container's rootfs (overlay) on \"%s\"",
                      rootfs);
  return 0;
}

static void unmount_rootfs(const char *cdir)
{
  _cleanup_free_ char *rootfs = xasprintf("%s/bundle/rootfs", cdir);
  while (umount2(rootfs, MNT_DETACH) == 0)
    ;
}

static int write_etc_files(const char *cdir, const char *hostname, bool host_net,
                           struct isola_error **err)
{
  _cleanup_close_ int dfd = open(cdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return isola_fail(err, errno, "cannot open \"%s\"", cdir);
  _cleanup_free_ char *hn = xasprintf("%s\n", hostname);
  _cleanup_free_ char *hosts =
      xasprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "127.0.1.1\t%s\n",
                hostname);
  _cleanup_free_ char *resolv = NULL;
  if (host_net)
    read_file_at(AT_FDCWD, "/etc/resolv.conf", 1 << 20, &resolv, NULL);
  const char *files[][2] = {
      {"hostname", hn}, {"hosts", hosts}, {"resolv.conf", resolv ? resolv : ""}};
  for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
    int r = write_file_atomic(dfd, files[i][0], files[i][1], strlen(files[i][1]), 0644);
    if (r < 0)
      return isola_fail(err, -r, "cannot write \"%s/%s\"", cdir, files[i][0]);
  }
  return 0;
}

/* ---- the monitor ---- */

struct monitor {
  struct engine *e;
  struct runtime_opts ro;
  struct ctr_record *rec;
  char *cdir;
  bool foreground, interactive, tty;
  int notify_fd; /* detached: tells the parent "started" or the error; -1 in the foreground */
  /* --isolation=vm */
  const struct run_request *req;
  struct json_object *spec;
  const char *root_source; /* the image disk, or (tests) a directory */
};

static const int forwarded_signals[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,
                                        SIGUSR1, SIGUSR2, SIGWINCH};

static int exit_status_for(const struct isola_error *err)
{
  /* The runtime checks the command before `start`: "exec: ..." errors are docker's 126/127. */
  if (err && err->msg && !strncmp(err->msg, "exec: ", 6))
    return err->code == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_INVOKE;
  return EXIT_ENGINE;
}

static int console_listen(const char *path, struct isola_error **err)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path))
    return isola_failx(err, ENAMETOOLONG, "console socket path \"%s\" is too long", path);
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return isola_fail(err, errno, "cannot create the console socket");
  unlink(path);
  if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
    int e = errno;
    close(fd);
    return isola_fail(err, e, "cannot listen on \"%s\"", path);
  }
  return fd;
}

static int recv_master(int lfd, int *master, struct isola_error **err)
{
  struct pollfd p = {.fd = lfd, .events = POLLIN};
  if (poll(&p, 1, 10000) <= 0)
    return isola_failx(err, ETIMEDOUT, "the container did not send its terminal");
  _cleanup_close_ int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (c < 0)
    return isola_fail(err, errno, "cannot accept the container's terminal");
  char buf[256];
  int n = 0;
  int r = recv_fds(c, buf, sizeof(buf), master, 1, &n);
  if (r < 0 || n != 1)
    return isola_failx(err, EIO, "did not receive the container's terminal");
  return 0;
}

static void monitor_notify(struct monitor *m, const char *msg)
{
  if (m->notify_fd < 0)
    return;
  (void) write_all(m->notify_fd, msg, strlen(msg));
  close(m->notify_fd);
  m->notify_fd = -1;
}

/* Copy what is readable from `from` to the log and (in the foreground) to `to`. Returns false at
 * end of file. */
static bool relay(int from, int log_fd, int *to)
{
  char buf[65536];
  ssize_t n = read(from, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return true;
  if (n <= 0)
    return false;
  (void) write_all(log_fd, buf, n);
  /* A reader that went away (`isola run ... | head -1`) stops the copy, not the container: the
   * logs keep everything. */
  if (*to >= 0 && write_all(*to, buf, n) < 0)
    *to = -1;
  return true;
}

static void set_nonblock(int fd)
{
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void monitor_finish(struct monitor *m, int r, int *status, struct isola_error **err);

static void vm_started(void *arg)
{
  monitor_notify(arg, "OK");
}

static int monitor_run_vm(struct monitor *m, int *status, struct isola_error **err)
{
  int r = engine_vm_run(m->e, m->rec, m->req, m->spec, m->root_source, m->cdir, m->foreground,
                        vm_started, m, status, err);
  monitor_finish(m, r, status, err);
  return r;
}

static int monitor_run(struct monitor *m, int *status, struct isola_error **err)
{
  if (m->rec->isolation == ISOLATION_VM)
    return monitor_run_vm(m, status, err);
  struct ctr_record *rec = m->rec;
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (size_t i = 0; i < ARRAY_SIZE(forwarded_signals); i++)
    sigaddset(&set, forwarded_signals[i]);
  sigprocmask(SIG_BLOCK, &set, &old);

  _cleanup_free_ char *bundle = xasprintf("%s/bundle", m->cdir),
                      /* sun_path holds 108 bytes: not below a store that may be deep. */
      *sock_path = xasprintf("/run/isola-console-%.16s.sock", rec->id),
                      *out_log = xasprintf("%s/stdout.log", m->cdir),
                      *err_log = xasprintf("%s/stderr.log", m->cdir);
  _cleanup_close_ int log_out = open(out_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  _cleanup_close_ int log_err = open(err_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  _cleanup_close_ int lsock = -1, master = -1, in_fd = -1, sfd = -1;
  int outp[2] = {-1, -1}, errp[2] = {-1, -1};
  int r = 0;
  pid_t pid = 0;
  bool pipe_ignored = false;
  struct sigaction old_pipe = {0};
  *status = EXIT_ENGINE;
  if (log_out < 0 || log_err < 0) {
    r = isola_fail(err, errno, "cannot create the logs in \"%s\"", m->cdir);
    goto out;
  }
  if (m->tty) {
    if ((lsock = console_listen(sock_path, err)) < 0) {
      r = lsock;
      goto out;
    }
  } else if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
    r = isola_fail(err, errno, "cannot create pipes");
    goto out;
  }
  in_fd = m->interactive && m->foreground && !m->tty ? fcntl(0, F_DUPFD_CLOEXEC, 3)
                                                     : open("/dev/null", O_RDONLY | O_CLOEXEC);

  /* The container's init inherits fds 0-2 of whoever creates it: point them at its stdio for
   * the duration of the call. */
  int saved[3];
  for (int i = 0; i < 3; i++)
    saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 3);
  if (!m->tty) {
    dup2(in_fd, 0);
    dup2(outp[1], 1);
    dup2(errp[1], 2);
  }
  struct create_opts co = {
      .id = rec->id, .bundle = bundle, .console_socket = m->tty ? sock_path : NULL};
  r = container_create(&m->ro, &co, err);
  for (int i = 0; i < 3; i++) {
    if (saved[i] >= 0) {
      dup2(saved[i], i);
      close(saved[i]);
    }
  }
  if (!m->tty) {
    close(outp[1]);
    close(errp[1]);
    outp[1] = errp[1] = -1;
  }
  if (r < 0) {
    *status = exit_status_for(*err);
    goto out;
  }
  if (m->tty && (r = recv_master(lsock, &master, err)) < 0)
    goto out_delete;
  {
    _cleanup_close_ int dfd = -1;
    _cleanup_state_ struct container_state *st = NULL;
    if ((r = state_dir_open(m->ro.root, rec->id, false, &dfd, err)) < 0 ||
        (r = state_read(dfd, m->ro.root, rec->id, &st, err)) < 0)
      goto out_delete;
    pid = st->pid;
  }
  if ((r = container_start(&m->ro, rec->id, err)) < 0)
    goto out_delete;
  /* From here on we only relay: a closed stdout or notify pipe must not kill the monitor (the
   * container's processes exist already, with their own dispositions). */
  struct sigaction ign = {.sa_handler = SIG_IGN};
  sigaction(SIGPIPE, &ign, &old_pipe);
  pipe_ignored = true;
  char now[40];
  engine_now(now);
  free(rec->started);
  rec->started = xstrdup(now);
  rec->status = CTR_RUNNING;
  if ((r = ctr_record_write(m->e, rec, err)) < 0)
    goto out_delete;
  monitor_notify(m, "OK");

  /* Relay until init exits, forwarding signals. */
  sigset_t fwd = set;
  sfd = signalfd(-1, &fwd, SFD_CLOEXEC | SFD_NONBLOCK);
  struct termios saved_tio;
  bool restore_tio = false;
  if (m->tty && m->foreground && isatty(0) && tcgetattr(0, &saved_tio) == 0) {
    struct termios raw = saved_tio;
    cfmakeraw(&raw);
    restore_tio = tcsetattr(0, TCSANOW, &raw) == 0;
    struct winsize ws;
    if (ioctl(0, TIOCGWINSZ, &ws) == 0)
      (void) ioctl(master, TIOCSWINSZ, &ws);
  }
  int fd_out = m->tty ? master : outp[0], fd_err = m->tty ? -1 : errp[0];
  int to_out = m->foreground ? 1 : -1, to_err = m->foreground ? 2 : -1;
  bool out_open = true, err_open = fd_err >= 0, in_open = m->tty && m->interactive && m->foreground;
  bool exited = false;
  int ws = 0;
  set_nonblock(fd_out);
  if (fd_err >= 0)
    set_nonblock(fd_err);
  while (!exited || out_open || err_open) {
    struct pollfd p[4] = {{.fd = out_open ? fd_out : -1, .events = POLLIN},
                          {.fd = err_open ? fd_err : -1, .events = POLLIN},
                          {.fd = sfd, .events = POLLIN},
                          {.fd = in_open ? 0 : -1, .events = POLLIN}};
    /* Once init is gone, what is left in the pipes is drained; a process that escaped the
     * container's pid namespace cannot hold us for more than a second. */
    int n = poll(p, 4, exited ? 1000 : -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (p[0].revents && !relay(fd_out, log_out, &to_out))
      out_open = false;
    if (p[1].revents && !relay(fd_err, log_err, &to_err))
      err_open = false;
    if (p[3].revents) {
      char buf[4096];
      ssize_t k = read(0, buf, sizeof(buf));
      if (k > 0)
        (void) write_all(master, buf, k);
      else
        in_open = false;
    }
    if (p[2].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
          pid_t w;
          int wstatus;
          while ((w = waitpid(-1, &wstatus, WNOHANG)) > 0)
            if (w == pid) {
              exited = true;
              ws = wstatus;
            }
        } else if (si.ssi_signo == SIGWINCH) {
          struct winsize wsz;
          if (m->tty && ioctl(0, TIOCGWINSZ, &wsz) == 0)
            (void) ioctl(master, TIOCSWINSZ, &wsz);
        } else {
          kill(pid, (int) si.ssi_signo);
        }
      }
    }
    /* A pty reports EIO (no more writers) only after init's exit: stop reading it then. */
    if (exited && m->tty && !(p[0].revents & POLLIN))
      out_open = false;
  }
  if (restore_tio)
    tcsetattr(0, TCSANOW, &saved_tio);
  if (!exited) {
    waitpid(pid, &ws, 0);
  }
  *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  r = 0;

out_delete:;
  if (pipe_ignored)
    sigaction(SIGPIPE, &old_pipe, NULL);
  struct isola_error *derr = NULL;
  container_delete(&m->ro, rec->id, true, &derr);
  isola_error_free(&derr);
out:
  sigprocmask(SIG_SETMASK, &old, NULL);
  for (int i = 0; i < 2; i++) {
    if (outp[i] >= 0)
      close(outp[i]);
    if (errp[i] >= 0)
      close(errp[i]);
  }
  if (lsock >= 0)
    unlink(sock_path);
  monitor_finish(m, r, status, err);
  return r;
}

/* After the container: unmount, record the exit, and with --rm remove everything. */
static void monitor_finish(struct monitor *m, int r, int *status, struct isola_error **err)
{
  struct ctr_record *rec = m->rec;
  unmount_rootfs(m->cdir);
  char fin[40];
  engine_now(fin);
  free(rec->finished);
  rec->finished = xstrdup(fin);
  rec->status = CTR_EXITED;
  rec->exit_code = r < 0 ? -1 : *status;
  if (r < 0 && *err)
    monitor_notify(m, (*err)->msg);
  if (rec->rm) {
    rm_rf_at(AT_FDCWD, m->cdir);
  } else {
    struct isola_error *werr = NULL;
    ctr_record_write(m->e, rec, &werr);
    isola_error_free(&werr);
  }
}

/* ---- run ---- */

static void random_id(char out[65])
{
  unsigned char b[32];
  if (getrandom(b, sizeof(b), 0) != sizeof(b))
    abort();
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static bool name_ok(const char *n)
{
  size_t len = strlen(n);
  if (!len || len > 128 ||
      !((n[0] >= 'a' && n[0] <= 'z') || (n[0] >= 'A' && n[0] <= 'Z') ||
        (n[0] >= '0' && n[0] <= '9')))
    return false;
  for (size_t i = 0; i < len; i++)
    if (!(strchr("_.-", n[i]) || (n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
          (n[i] >= '0' && n[i] <= '9')))
      return false;
  return true;
}

/* What a VM container cannot have yet, refused rather than silently ignored. */
static int vm_check_request(const struct run_request *req, struct isola_error **err)
{
  if (req->network_host)
    return isola_failx(err, ENOTSUP,
                       "--isolation=vm: --network host is not available (a VM has no host "
                       "network)");
  if (req->memory && req->memory < (64ll << 20))
    return isola_failx(err, EINVAL, "--isolation=vm: --memory is the VM's RAM: at least 64m");
  if (req->n_volumes > ISOLA_VM_MAX_VOLUMES)
    return isola_failx(err, EINVAL, "--isolation=vm: at most %d volumes (-v)",
                       ISOLA_VM_MAX_VOLUMES);
  /* A volume is a shared directory, or a shared file (its directory, showing it alone). */
  for (size_t i = 0; i < req->n_volumes; i++) {
    struct stat st;
    const struct volume *v = &req->volumes[i];
    if (stat(v->host, &st) == 0 && !S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
      return isola_failx(err, ENOTSUP,
                         "--isolation=vm: -v %s:%s: a VM shares directories and regular files, "
                         "and \"%s\" is neither",
                         v->host, v->ctr, v->host);
    if (strchr(v->host, ','))
      return isola_failx(err, EINVAL, "--isolation=vm: -v %s:%s: the host path has a \",\"",
                         v->host, v->ctr);
  }
  return 0;
}

/* Make the record, claiming the name under the store lock. */
static int create_record(struct engine *e, struct ctr_record *rec, struct isola_error **err)
{
  _cleanup_close_ int lock = -1;
  int r = store_lock(e->store, &lock, err);
  if (r < 0)
    return r;
  struct ctr_record **v = NULL;
  size_t n = 0;
  if ((r = ctr_list(e, &v, &n, err)) < 0)
    return r;
  for (size_t i = 0; i < n; i++)
    if (v[i]->name && !strcmp(v[i]->name, rec->name)) {
      r = isola_failx(err, EEXIST,
                      "the name \"%s\" is taken by container %.12s (remove it: isola rm %s)",
                      rec->name, v[i]->id, rec->name);
      break;
    }
  ctr_list_free(v, n);
  if (r < 0)
    return r;
  _cleanup_free_ char *rel = xasprintf("containers/%s", rec->id);
  if (mkdirat(e->store->rootfd, rel, 0700) < 0)
    return isola_fail(err, errno, "cannot create \"%s/%s\"", e->store->root, rel);
  return ctr_record_write(e, rec, err);
}

int engine_run(struct engine *e, const struct run_request *req, int *status, char **id_out,
               struct isola_error **err)
{
  *status = EXIT_ENGINE;
  int r;
  if (req->isolation == ISOLATION_VM && (r = vm_check_request(req, err)) < 0)
    return r;
  if (req->name && !name_ok(req->name))
    return isola_failx(err, EINVAL,
                       "--name \"%s\": use 1-128 letters, digits, \"_\", \".\" or \"-\", "
                       "starting with a letter or digit",
                       req->name);
  if (req->tty && req->detach && req->interactive)
    return isola_failx(err, EINVAL, "-d with -i -t: attaching later is not supported");
  struct image_entry img = {0};
  r = engine_find_image(e, req->image, &img, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *img_name = img.name, *img_created = img.created;
  struct image_config *ic = NULL;
  if ((r = read_image_config(e, &img, &ic, err)) < 0)
    return r;

  char id[65];
  random_id(id);
  _cleanup_record_ struct ctr_record *rec = xzalloc(sizeof(*rec));
  rec->id = xstrdup(id);
  rec->name = req->name ? xstrdup(req->name) : xasprintf("isola_%.8s", id);
  _cleanup_free_ char *short_img = ref_short_name(img.name);
  rec->image = xstrdup(short_img);
  rec->image_id = xstrdup(img.config);
  char now[40];
  engine_now(now);
  rec->created = xstrdup(now);
  rec->rm = req->rm;
  rec->tty = req->tty;
  rec->stop_signal = xstrdup(ic->stop_signal && *ic->stop_signal ? ic->stop_signal : "SIGTERM");
  rec->isolation = req->isolation;
  rec->exit_code = 0;
  _cleanup_free_ char *cdir = ctr_dir(e, id), *rootfs = NULL, *disk = NULL;
  _cleanup_strv_ char **layers = NULL;
  _cleanup_json_ struct json_object *spec = NULL;
  bool mounted = false;
  /* The process setting the container up is its monitor until a detached one takes over: a
   * record with a live monitor is never taken for a dead container by rm or ps. */
  rec->monitor_pid = getpid();
  rec->monitor_start = proc_start_time(getpid());
  if ((r = create_record(e, rec, err)) < 0) {
    image_config_free(ic);
    return r;
  }
  {
    _cleanup_free_ char *imgfile = xasprintf("containers/%s/image", id);
    _cleanup_free_ char *line = xasprintf("%s\n", img.manifest);
    if ((r = write_file_atomic(e->store->rootfd, imgfile, line, strlen(line), 0600)) < 0) {
      r = isola_fail(err, -r, "cannot write \"%s/image\"", cdir);
      goto fail;
    }
  }
  if ((r = store_image_layers(e->store, &img, &layers, err)) < 0)
    goto fail;
  static const char *const dirs[] = {"upper", "work", "bundle", "bundle/rootfs"};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
    _cleanup_free_ char *d = xasprintf("%s/%s", cdir, dirs[i]);
    if (mkdir(d, 0755) < 0) {
      r = isola_fail(err, errno, "cannot create \"%s\"", d);
      goto fail;
    }
  }
  if ((r = mount_rootfs(e, layers, cdir, err)) < 0)
    goto fail;
  mounted = true;
  rootfs = xasprintf("%s/bundle/rootfs", cdir);
  if ((r = engine_make_spec(req, ic, id, rootfs, cdir, &spec, err)) < 0)
    goto fail;
  {
    struct json_object *args =
        json_object_object_get(json_object_object_get(spec, "process"), "args");
    strv_free(rec->command);
    rec->command = xzalloc(sizeof(char *));
    for (size_t i = 0; i < json_object_array_length(args); i++)
      rec->command =
          strv_append(rec->command, json_object_get_string(json_object_array_get_idx(args, i)));
    struct json_object *hn = json_object_object_get(spec, "hostname");
    char host[256] = "";
    if (!hn)
      gethostname(host, sizeof(host) - 1);
    if ((r = write_etc_files(cdir, hn ? json_object_get_string(hn) : host, req->network_host,
                             err)) < 0)
      goto fail;
    _cleanup_free_ char *text = json_to_string(spec, true);
    _cleanup_free_ char *cfg = xasprintf("containers/%s/bundle/config.json", id);
    if ((r = write_file_atomic(e->store->rootfd, cfg, text, strlen(text), 0600)) < 0) {
      r = isola_fail(err, -r, "cannot write \"%s/bundle/config.json\"", cdir);
      goto fail;
    }
  }
  image_config_free(ic);
  ic = NULL;
  const char *root_source = NULL;
  if (req->isolation == ISOLATION_VM) {
    /* The rootfs mount served to resolve the user; the VM gets the image's disk (tests that
     * run guest-init without a VM get the directory). */
    const char *launcher = getenv("ISOLA_VM_LAUNCHER");
    if (launcher && *launcher) {
      root_source = rootfs;
    } else {
      unmount_rootfs(cdir);
      mounted = false;
      if ((r = store_image_disk(e->store, &img, &disk, err)) < 0)
        goto fail;
      root_source = disk;
    }
  }
  /* The record and the image file now keep the image from prune. */
  store_release(e->store);

  struct monitor m = {.e = e,
                      .ro = {.root = e->run_root},
                      .rec = rec,
                      .cdir = cdir,
                      .foreground = !req->detach,
                      .interactive = req->interactive,
                      .tty = req->tty,
                      .notify_fd = -1,
                      .req = req,
                      .spec = spec,
                      .root_source = root_source};
  if (!req->detach) {
    rec->monitor_pid = getpid();
    rec->monitor_start = proc_start_time(getpid());
    r = monitor_run(&m, status, err);
    if (id_out)
      *id_out = xstrdup(id);
    return r;
  }
  int np[2];
  if (pipe2(np, O_CLOEXEC) < 0) {
    r = isola_fail(err, errno, "cannot create a pipe");
    goto fail;
  }
  pid_t child = fork();
  if (child < 0) {
    close(np[0]);
    close(np[1]);
    r = isola_fail(err, errno, "cannot start the container's monitor");
    goto fail;
  }
  if (child == 0) {
    close(np[0]);
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int i = 0; i < 3; i++)
      dup2(null, i);
    m.notify_fd = np[1];
    rec->monitor_pid = getpid();
    rec->monitor_start = proc_start_time(getpid());
    struct isola_error *werr = NULL;
    ctr_record_write(e, rec, &werr);
    isola_error_free(&werr);
    struct isola_error *merr = NULL;
    int st = 0;
    monitor_run(&m, &st, &merr);
    _exit(0);
  }
  close(np[1]);
  char msg[4096];
  int n = read_all(np[0], msg, sizeof(msg) - 1);
  close(np[0]);
  if (n < 0)
    n = 0;
  msg[n] = 0;
  if (strcmp(msg, "OK")) {
    *status = EXIT_ENGINE;
    return isola_failx(err, EIO, "%s", n > 0 ? msg : "the container's monitor died");
  }
  *status = 0;
  if (id_out)
    *id_out = xstrdup(id);
  return 0;
fail:
  image_config_free(ic);
  if (mounted)
    unmount_rootfs(cdir);
  rm_rf_at(AT_FDCWD, cdir);
  return r;
}
