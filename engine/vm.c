/* --isolation=vm: the container's process runs in a microVM of its own. isola-vmm boots our
 * kernel with isola-init (guest-init/) as the initramfs and the image's erofs disk as the
 * read-only root; this side speaks the guest ABI (isola_guest_abi.h) over the VM's vsock, which
 * the monitor forwards to a unix socket on the host, and stands in for the container's init:
 * it relays stdio, forwards signals and reports the exit status. */
#include "vm.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef ISOLA_LIBEXECDIR
#define ISOLA_LIBEXECDIR "/usr/local/libexec/isola"
#endif
#define KERNEL_DEFAULT "/var/cache/isola/kernel/vmlinux"
/* Boot to guest-init takes well under a second on hardware KVM; a software hypervisor needs
 * about a minute (MACHINE.md). */
#define VM_CONNECT_TIMEOUT_MS (5 * 60 * 1000)

/* A file next to our own executable (the build tree: cli/isola → ../vmm/isola-vmm), or in the
 * installed libexec directory. */
static char *find_companion(const char *env, const char *build_rel, const char *installed)
{
  const char *e = getenv(env);
  if (e && *e)
    return xstrdup(e);
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = 0;
      char *cand = xasprintf("%s/%s", self, build_rel);
      if (access(cand, R_OK) == 0)
        return cand;
      free(cand);
    }
  }
  return xstrdup(installed);
}

struct vm_paths {
  char *vmm, *kernel, *initrd;
};

static void vm_paths_clear(struct vm_paths *p)
{
  free(p->vmm);
  free(p->kernel);
  free(p->initrd);
}

static int vm_paths_find(struct vm_paths *p, struct isola_error **err)
{
  p->vmm = find_companion("ISOLA_VMM", "../vmm/isola-vmm", ISOLA_LIBEXECDIR "/isola-vmm");
  p->initrd = find_companion("ISOLA_INITRD", "../guest-init/isola-initramfs.cpio",
                             ISOLA_LIBEXECDIR "/isola-initramfs.cpio");
  const char *k = getenv("ISOLA_KERNEL");
  p->kernel = xstrdup(k && *k ? k : KERNEL_DEFAULT);
  const char *launcher = getenv("ISOLA_VM_LAUNCHER");
  if (launcher && *launcher)
    return 0; /* tests: no VM, see spawn_vmm() */
  if (access(p->kernel, R_OK) < 0)
    return isola_fail(err, errno,
                      "--isolation=vm: no guest kernel at \"%s\" (build it: "
                      "kernel-config/build.sh, or set ISOLA_KERNEL)",
                      p->kernel);
  if (access(p->vmm, X_OK) < 0)
    return isola_fail(err, errno, "--isolation=vm: the monitor \"%s\" is missing", p->vmm);
  if (access(p->initrd, R_OK) < 0)
    return isola_fail(err, errno, "--isolation=vm: guest-init's initramfs \"%s\" is missing",
                      p->initrd);
  return 0;
}

/* ---- frames ---- */

static int send_frame(int fd, uint32_t type, const void *data, uint32_t len)
{
  unsigned char hdr[ISOLA_GUEST_HEADER_SIZE];
  isola_guest_put_u32(hdr, type);
  isola_guest_put_u32(hdr + 4, len);
  int r = write_all(fd, hdr, sizeof(hdr));
  if (r == 0 && len)
    r = write_all(fd, data, len);
  return r;
}

static int send_u32(int fd, uint32_t type, uint32_t v)
{
  unsigned char b[4];
  isola_guest_put_u32(b, v);
  return send_frame(fd, type, b, 4);
}

/* Reassembles frames from a non-blocking socket. */
struct frame_reader {
  unsigned char *buf;
  size_t used, cap;
};

/* Read what is there; returns 0, -EPIPE at end of stream, or another -errno. */
static int reader_fill(struct frame_reader *fr, int fd)
{
  if (fr->cap - fr->used < 65536) {
    size_t cap = fr->cap ? fr->cap * 2 : 131072;
    if (cap > ISOLA_GUEST_MAX_PROCESS + 2 * ISOLA_GUEST_HEADER_SIZE + 131072)
      cap = fr->cap;
    fr->buf = xrealloc(fr->buf, cap);
    fr->cap = cap;
  }
  /* MSG_DONTWAIT, not O_NONBLOCK: our frames are written whole, with blocking writes (the
   * guest always reads the connection, so they complete). */
  ssize_t n = recv(fd, fr->buf + fr->used, fr->cap - fr->used, MSG_DONTWAIT);
  if (n < 0)
    return errno == EAGAIN || errno == EINTR ? 0 : -errno;
  if (n == 0)
    return -EPIPE;
  fr->used += n;
  return 0;
}

/* The next complete frame: 1 with type, data and len set (valid until the next call), 0 when
 * more bytes are needed, -EPROTO for an invalid header. */
static int reader_next(struct frame_reader *fr, size_t *consumed, uint32_t *type,
                       const unsigned char **data, uint32_t *len)
{
  size_t off = *consumed;
  if (fr->used - off < ISOLA_GUEST_HEADER_SIZE)
    return 0;
  uint32_t t = isola_guest_get_u32(fr->buf + off), l = isola_guest_get_u32(fr->buf + off + 4);
  if (!isola_guest_header_valid(t, l))
    return -EPROTO;
  if (fr->used - off - ISOLA_GUEST_HEADER_SIZE < l)
    return 0;
  *type = t;
  *len = l;
  *data = fr->buf + off + ISOLA_GUEST_HEADER_SIZE;
  *consumed = off + ISOLA_GUEST_HEADER_SIZE + l;
  return 1;
}

static void reader_compact(struct frame_reader *fr, size_t consumed)
{
  memmove(fr->buf, fr->buf + consumed, fr->used - consumed);
  fr->used -= consumed;
}

/* ---- the PROCESS message ---- */

static struct json_object *process_message(struct json_object *spec, const struct run_request *req,
                                           const char *root_source)
{
  struct json_object *msg = json_object_new_object();
  struct json_object *proc = json_object_object_get(spec, "process");
  json_object_object_add(msg, "process", json_object_get(proc));
  struct json_object *hn = json_object_object_get(spec, "hostname");
  if (hn)
    json_object_object_add(msg, "hostname", json_object_get(hn));
  struct json_object *root = json_object_new_object();
  /* The image disk is the VM's first virtio disk; a directory source is guest-init's test mode. */
  bool dir = root_source && root_source[0] == '/' && !strstr(root_source, ".erofs");
  json_object_object_add(root, "source", json_object_new_string(dir ? root_source : "/dev/vda"));
  if (!dir)
    json_object_object_add(root, "fstype", json_object_new_string("erofs"));
  json_object_object_add(root, "writable",
                         json_object_new_string(req->read_only ? "none" : "tmpfs"));
  json_object_object_add(msg, "root", root);
  /* Volumes are the monitor's shared directories, tagged isola0, isola1... (spawn_vmm); a file
   * volume's share (its directory, showing it alone) is mounted under /run/isola-volumes/N and
   * the file bound from there. Of the rest only the tmpfs mounts travel: guest-init makes
   * /proc, /sys, /dev and the others. */
  struct json_object *mounts = json_object_new_array();
  for (size_t i = 0; i < req->n_volumes; i++) {
    const struct volume *v = &req->volumes[i];
    _cleanup_free_ char *tag = xasprintf("isola%zu", i), *real = realpath(v->host, NULL);
    struct stat st;
    bool file = real && stat(real, &st) == 0 && S_ISREG(st.st_mode);
    _cleanup_free_ char *stage = xasprintf("/run/isola-volumes/%zu", i);
    const char *ro[] = {v->readonly ? "ro" : NULL, NULL};
    json_object_array_add(mounts, engine_mount_json(file ? stage : v->ctr, "virtiofs", tag, ro));
    if (file) {
      _cleanup_free_ char *src = xasprintf("%s/%s", stage, strrchr(real, '/') + 1);
      const char *bind[] = {"bind", v->readonly ? "ro" : NULL, NULL};
      json_object_array_add(mounts, engine_mount_json(v->ctr, "bind", src, bind));
    }
  }
  struct json_object *all = json_object_object_get(spec, "mounts");
  for (size_t i = 0; i < json_object_array_length(all); i++) {
    struct json_object *m = json_object_array_get_idx(all, i);
    const char *dest = json_object_get_string(json_object_object_get(m, "destination"));
    const char *type = json_object_get_string(json_object_object_get(m, "type"));
    if (type && !strcmp(type, "tmpfs") && dest && strncmp(dest, "/dev", 4))
      json_object_array_add(mounts, json_object_get(m));
  }
  json_object_object_add(msg, "mounts", mounts);
  /* The same seccomp profile as a process container's, inside the guest too (defence in depth:
   * the VM is the boundary, the profile narrows what reaches the guest kernel). */
  struct json_object *seccomp =
      json_object_object_get(json_object_object_get(spec, "linux"), "seccomp");
  if (seccomp)
    json_object_object_add(msg, "seccomp", json_object_get(seccomp));
  if (req->pids_limit > 0) {
    struct json_object *res = json_object_new_object(), *pids = json_object_new_object();
    json_object_object_add(pids, "limit", json_object_new_int64(req->pids_limit));
    json_object_object_add(res, "pids", pids);
    json_object_object_add(msg, "resources", res);
  }
  return msg;
}

/* ---- launching the monitor ---- */

static int listen_unix(const char *path, struct isola_error **err)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path))
    return isola_failx(err, ENAMETOOLONG, "socket path \"%s\" is too long", path);
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return isola_fail(err, errno, "cannot create a socket");
  unlink(path);
  if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
    int e = errno;
    close(fd);
    return isola_fail(err, e, "cannot listen on \"%s\"", path);
  }
  return fd;
}

static pid_t spawn_vmm(const struct vm_paths *p, const char *disk, const char *uds,
                       const struct run_request *req, int log_fd, struct isola_error **err)
{
  _cleanup_free_ char *mem = xasprintf("%lld", (long long) (req->memory ? req->memory >> 20 : 256));
  _cleanup_free_ char *cpus =
      xasprintf("%lld", (long long) (req->cpu_milli ? (req->cpu_milli + 999) / 1000 : 1));
  _cleanup_free_ char *diskarg = xasprintf("%s,ro", disk);
  const char *cmdline = "console=ttyS0 quiet panic=-1 isola.root=/dev/vda isola.rootfstype=erofs";
  const char *launcher = getenv("ISOLA_VM_LAUNCHER");
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return isola_fail(err, errno, "cannot start the VM monitor");
  if (pid > 0)
    return pid;
  /* The VM lives no longer than its monitor process (us). */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(1); /* the monitor died before the death signal was armed */
  setsid();
  signal(SIGPIPE, SIG_DFL);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  dup2(null, 0);
  dup2(log_fd, 1);
  dup2(log_fd, 2);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (launcher && *launcher) {
    /* Tests only: isola-init in test mode in a PID namespace instead of a VM, speaking the same
     * protocol over the unix socket (the host side here is the same either way). */
    _cleanup_free_ char *sock = xasprintf("%s_%u", uds, ISOLA_GUEST_VSOCK_PORT);
    setenv("ISOLA_INIT_SOCKET", sock, 1);
    setenv("ISOLA_INIT_EXEC_SOCKET", uds, 1); /* no monitor: exec connects to init itself */
    execl("/bin/sh", "sh", "-c", launcher, (char *) NULL);
    _exit(127);
  }
  const char *fixed[] = {"isola-vmm", "--kernel",       p->kernel, "--initrd",
                         p->initrd,   "--cmdline",      cmdline,   "--memory",
                         mem,         "--cpus",         cpus,      "--disk",
                         diskarg,     "--vsock-socket", uds,       "--jail"};
  char **argv = NULL;
  for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
    argv = strv_append(argv, fixed[i]);
  for (size_t i = 0; i < req->n_volumes; i++) {
    _cleanup_free_ char *share =
        xasprintf("isola%zu=%s%s", i, req->volumes[i].host, req->volumes[i].readonly ? ",ro" : "");
    argv = strv_append(strv_append(argv, "--share"), share);
  }
  execv(p->vmm, argv);
  dprintf(2, "cannot run %s: %s\n", p->vmm, strerror(errno));
  _exit(127);
}

/* The last line the monitor wrote (its one-line error), for our message. */
static char *last_log_line(const char *path)
{
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  if (read_file_at(AT_FDCWD, path, 1 << 20, &text, &len) < 0 || !len)
    return xstrdup("it wrote nothing");
  while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
    text[--len] = 0;
  char *nl = strrchr(text, '\n');
  return xstrdup(nl ? nl + 1 : text);
}

/* Why the monitor ended, for our message: a signal (SIGSYS: its seccomp filter refused a call,
 * vmm/sandbox.c), else the last line it wrote. */
static char *vmm_end_reason(int st, const char *vmm_log)
{
  if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
    return xstrdup("isola-vmm was killed by SIGSYS: its seccomp filter refused a system call");
  if (WIFSIGNALED(st))
    return xasprintf("isola-vmm was killed by signal %d", WTERMSIG(st));
  return last_log_line(vmm_log);
}

/* Wait for guest-init to connect. A terminating signal meanwhile (Ctrl-C, `isola stop`) ends
 * the boot: -EINTR with the signal in *sig. */
static int accept_guest(int lfd, int sigfd, pid_t vmm, const char *vmm_log, int *sig,
                        struct isola_error **err)
{
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sigfd, .events = POLLIN}};
    int n = poll(p, 2, 200);
    if (n > 0 && p[0].revents) {
      int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
      if (c >= 0)
        return c;
    }
    if (n > 0 && p[1].revents) {
      struct signalfd_siginfo si;
      while (read(sigfd, &si, sizeof(si)) == (ssize_t) sizeof(si))
        if (si.ssi_signo != SIGCHLD && si.ssi_signo != SIGWINCH) {
          *sig = (int) si.ssi_signo;
          return -EINTR;
        }
    }
    int st;
    if (waitpid(vmm, &st, WNOHANG) == vmm) {
      _cleanup_free_ char *why = vmm_end_reason(st, vmm_log);
      return isola_failx(err, EIO, "the VM stopped before its init connected: %s", why);
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >
        VM_CONNECT_TIMEOUT_MS)
      return isola_failx(err, ETIMEDOUT, "the VM's init did not connect within %d s",
                         VM_CONNECT_TIMEOUT_MS / 1000);
  }
}

/* ---- the conversation ---- */

static void relay_out(int log_fd, int *to, const unsigned char *d, uint32_t n)
{
  (void) write_all(log_fd, d, n);
  if (*to >= 0 && write_all(*to, d, n) < 0)
    *to = -1; /* the reader went away: keep logging */
}

/* Handle one frame from the guest; returns -EPROTO on a frame the host never expects. */
static int on_frame(struct vm_session *s, uint32_t type, const unsigned char *d, uint32_t n,
                    bool *started)
{
  switch (type) {
  case ISOLA_GUEST_STARTED:
    *started = true;
    return 0;
  case ISOLA_GUEST_STDOUT:
    relay_out(s->log_out, &s->out_fd, d, n);
    return 0;
  case ISOLA_GUEST_STDERR:
    relay_out(s->log_err, &s->err_fd, d, n);
    return 0;
  case ISOLA_GUEST_STDIN_ACK: {
    uint32_t k = isola_guest_get_u32(d);
    s->credit = s->credit + k > ISOLA_GUEST_STDIN_WINDOW ? ISOLA_GUEST_STDIN_WINDOW : s->credit + k;
    return 0;
  }
  case ISOLA_GUEST_EXIT:
    s->status = (int) (isola_guest_get_u32(d) & 0xff);
    return 0;
  case ISOLA_GUEST_ERROR:
    memcpy(s->error, d, n);
    s->error[n] = 0;
    s->error[strcspn(s->error, "\n")] = 0;
    return 0;
  default:
    return -EPROTO;
  }
}

int vm_converse(struct vm_session *s, struct json_object *msg, void (*on_started)(void *),
                void *arg, struct isola_error **err)
{
  struct frame_reader fr = {0};
  bool started = false;
  unsigned char hello[8] = {0};
  isola_guest_put_u32(hello, ISOLA_GUEST_ABI_VERSION);
  int r = send_frame(s->conn, ISOLA_GUEST_HELLO, hello, 8);
  _cleanup_free_ char *text = json_to_string(msg, false);
  if (r == 0 && strlen(text) > ISOLA_GUEST_MAX_PROCESS)
    return isola_failx(err, E2BIG, "the container's configuration is too large for the VM");
  if (r == 0)
    r = send_frame(s->conn, ISOLA_GUEST_PROCESS, text, (uint32_t) strlen(text));
  if (r == 0 && !s->in_open)
    r = send_frame(s->conn, ISOLA_GUEST_STDIN_EOF, NULL, 0);
  if (r < 0) {
    free(fr.buf);
    return isola_fail(err, -r, "cannot talk to the VM's init");
  }
  bool hello_seen = false, conn_open = true;
  int pending_sig = 0; /* a signal that came before the process started: sent once it has */
  while (s->status < 0 && conn_open) {
    struct pollfd p[3] = {
        {.fd = s->conn, .events = POLLIN},
        {.fd = s->sigfd, .events = POLLIN},
        {.fd = started && s->in_open && s->credit ? s->in_fd : -1, .events = POLLIN}};
    if (poll(p, 3, -1) < 0 && errno != EINTR)
      break;
    if (p[0].revents) {
      int fr_r = reader_fill(&fr, s->conn);
      if (fr_r == -EPIPE || (fr_r < 0 && fr_r != -EAGAIN))
        conn_open = false;
      size_t consumed = 0;
      uint32_t type, len;
      const unsigned char *d;
      int k;
      while ((k = reader_next(&fr, &consumed, &type, &d, &len)) > 0) {
        if (type == ISOLA_GUEST_HELLO) {
          uint32_t version = isola_guest_get_u32(d);
          if (hello_seen || version != ISOLA_GUEST_ABI_VERSION) {
            free(fr.buf);
            return isola_failx(err, EPROTO, "the VM's init speaks protocol version %u, not %u",
                               version, ISOLA_GUEST_ABI_VERSION);
          }
          hello_seen = true;
          continue;
        }
        bool was_started = started;
        if (on_frame(s, type, d, len, &started) < 0) {
          free(fr.buf);
          return isola_failx(err, EPROTO, "the VM's init sent an unexpected frame (type %u)", type);
        }
        if (started && !was_started) {
          if (on_started)
            on_started(arg);
          if (pending_sig)
            send_u32(s->conn, ISOLA_GUEST_SIGNAL, (uint32_t) pending_sig);
        }
      }
      reader_compact(&fr, consumed);
      if (k < 0) {
        free(fr.buf);
        return isola_failx(err, EPROTO, "the VM's init sent a malformed frame");
      }
    }
    if (p[1].revents) {
      struct signalfd_siginfo si;
      while (read(s->sigfd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
        if (si.ssi_signo == SIGWINCH) {
          struct winsize ws;
          unsigned char size[8];
          if (s->tty && started && ioctl(0, TIOCGWINSZ, &ws) == 0) {
            isola_guest_put_u32(size, ws.ws_row);
            isola_guest_put_u32(size + 4, ws.ws_col);
            send_frame(s->conn, ISOLA_GUEST_RESIZE, size, sizeof(size));
          }
          continue;
        }
        if (si.ssi_signo == SIGCHLD)
          continue;
        if (started)
          send_u32(s->conn, ISOLA_GUEST_SIGNAL, si.ssi_signo);
        else
          pending_sig = (int) si.ssi_signo;
      }
    }
    if (p[2].revents) {
      unsigned char buf[ISOLA_GUEST_MAX_DATA];
      size_t want = s->credit < sizeof(buf) ? s->credit : sizeof(buf);
      ssize_t n = read(s->in_fd, buf, want);
      if (n > 0) {
        send_frame(s->conn, ISOLA_GUEST_STDIN, buf, (uint32_t) n);
        s->credit -= (uint32_t) n;
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        send_frame(s->conn, ISOLA_GUEST_STDIN_EOF, NULL, 0);
        s->in_open = false;
      }
    }
  }
  free(fr.buf);
  if (s->status < 0)
    return isola_failx(err, EPIPE, "the VM's init closed the connection without an exit status%s%s",
                       s->error[0] ? ": " : "", s->error);
  if (s->status == ISOLA_GUEST_EXIT_INTERNAL && s->error[0])
    return isola_failx(err, EIO, "in the VM: %s", s->error);
  return 0;
}

/* -t on a terminal: ours goes raw, so that keys (^C included) reach the guest's terminal, whose
 * line discipline does the rest; its size travels in the PROCESS message, then on SIGWINCH.
 * False when stdin is no terminal. */
bool terminal_raw(struct json_object *msg, struct termios *saved, bool *restore)
{
  if (!isatty(0) || tcgetattr(0, saved) < 0)
    return false;
  struct termios raw = *saved;
  cfmakeraw(&raw);
  *restore = tcsetattr(0, TCSANOW, &raw) == 0;
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
    struct json_object *size = json_object_new_object();
    json_object_object_add(size, "height", json_object_new_int(ws.ws_row));
    json_object_object_add(size, "width", json_object_new_int(ws.ws_col));
    json_object_object_add(json_object_object_get(msg, "process"), "consoleSize", size);
  }
  return true;
}

/* ---- the monitor for a VM container ---- */

struct vm_started_arg {
  struct engine *e;
  struct ctr_record *rec;
  void (*notify)(void *);
  void *notify_arg;
};

static void vm_on_started(void *p)
{
  struct vm_started_arg *a = p;
  char now[40];
  engine_now(now);
  free(a->rec->started);
  a->rec->started = xstrdup(now);
  a->rec->status = CTR_RUNNING;
  struct isola_error *werr = NULL;
  ctr_record_write(a->e, a->rec, &werr);
  isola_error_free(&werr);
  if (a->notify)
    a->notify(a->notify_arg);
}

int engine_vm_run(struct engine *e, struct ctr_record *rec, const struct run_request *req,
                  struct json_object *spec, const char *root_source, const char *cdir,
                  bool foreground, void (*notify)(void *), void *notify_arg, int *status,
                  struct isola_error **err)
{
  *status = EXIT_ENGINE;
  struct vm_paths paths = {0};
  int r = vm_paths_find(&paths, err);
  if (r < 0) {
    vm_paths_clear(&paths);
    return r;
  }
  sigset_t set, old;
  sigemptyset(&set);
  int fwd[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGWINCH};
  for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
    sigaddset(&set, fwd[i]);
  sigprocmask(SIG_BLOCK, &set, &old);

  _cleanup_free_ char *vdir = engine_vm_dir(rec->id), *uds = xasprintf("%s/vsock", vdir),
                      *guest_sock = xasprintf("%s_%u", uds, ISOLA_GUEST_VSOCK_PORT),
                      *vmm_log = xasprintf("%s/vmm.log", cdir),
                      *out_log = xasprintf("%s/stdout.log", cdir),
                      *err_log = xasprintf("%s/stderr.log", cdir);
  _cleanup_close_ int lfd = -1, conn = -1, logfd = -1, sigfd = -1, in_fd = -1;
  _cleanup_close_ int log_out = open(out_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  _cleanup_close_ int log_err = open(err_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  pid_t vmm = -1;
  bool pipe_ignored = false, restore_tio = false;
  struct termios saved_tio;
  struct sigaction old_pipe = {0};
  _cleanup_json_ struct json_object *msg = process_message(spec, req, root_source);
  if (log_out < 0 || log_err < 0 ||
      (logfd = open(vmm_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
    r = isola_fail(err, errno, "cannot create the logs in \"%s\"", cdir);
    goto out;
  }
  /* The VM's sockets in a directory of their own: the only host path its jailed monitor sees. */
  if (mkdir(vdir, 0700) < 0 && errno != EEXIST) {
    r = isola_fail(err, errno, "cannot create \"%s\"", vdir);
    goto out;
  }
  if ((lfd = listen_unix(guest_sock, err)) < 0) {
    r = lfd;
    goto out;
  }
  if ((vmm = spawn_vmm(&paths, root_source, uds, req, logfd, err)) < 0) {
    r = vmm;
    goto out;
  }
  rec->vmm_pid = vmm;
  rec->vmm_start = proc_start_time(vmm);
  /* Only relaying from here on: a closed stdout must not kill the monitor. */
  struct sigaction ign = {.sa_handler = SIG_IGN};
  sigaction(SIGPIPE, &ign, &old_pipe);
  pipe_ignored = true;
  if ((r = ctr_record_write(e, rec, err)) < 0)
    goto out;
  sigset_t sfdset = set;
  sigfd = signalfd(-1, &sfdset, SFD_CLOEXEC | SFD_NONBLOCK);
  int boot_sig = 0;
  if ((conn = accept_guest(lfd, sigfd, vmm, vmm_log, &boot_sig, err)) < 0) {
    r = conn;
    if (r == -EINTR) {
      /* Stopped while booting: the process never ran; report it as killed by that signal. */
      kill(-vmm, SIGKILL);
      kill(vmm, SIGKILL);
      *status = 128 + boot_sig;
      r = 0;
    }
    goto out;
  }
  in_fd = req->interactive && foreground ? fcntl(0, F_DUPFD_CLOEXEC, 3) : -1;
  bool tty = req->tty && foreground && terminal_raw(msg, &saved_tio, &restore_tio);
  struct vm_session s = {.conn = conn,
                         .in_fd = in_fd,
                         .out_fd = foreground ? 1 : -1,
                         .err_fd = foreground ? 2 : -1,
                         .log_out = log_out,
                         .log_err = log_err,
                         .sigfd = sigfd,
                         .in_open = in_fd >= 0,
                         .tty = tty,
                         .credit = ISOLA_GUEST_STDIN_WINDOW,
                         .status = -1};
  struct vm_started_arg sa = {.e = e, .rec = rec, .notify = notify, .notify_arg = notify_arg};
  r = vm_converse(&s, msg, vm_on_started, &sa, err);
  if (r == 0)
    *status = s.status;
out:
  if (restore_tio)
    tcsetattr(0, TCSANOW, &saved_tio);
  if (conn >= 0) {
    /* The host closes after EXIT; guest-init then powers the VM off. */
    close(conn);
    conn = -1;
  }
  if (vmm > 0) {
    int st = 0;
    for (int i = 0; i < 200 && waitpid(vmm, &st, WNOHANG) == 0; i++) {
      struct timespec ts = {0, 50 * 1000000L};
      nanosleep(&ts, NULL);
    }
    if (waitpid(vmm, &st, WNOHANG) == 0) {
      kill(vmm, SIGKILL);
      waitpid(vmm, &st, 0);
    } else if (r == -EPIPE && err && *err && WIFSIGNALED(st)) {
      /* The connection broke because the monitor died: say so rather than blame init. */
      _cleanup_free_ char *why = vmm_end_reason(st, vmm_log);
      isola_error_free(err);
      r = isola_failx(err, EIO, "the VM ended: %s", why);
    }
  }
  if (lfd >= 0)
    unlink(guest_sock);
  unlink(uds);
  rmdir(vdir);
  if (pipe_ignored)
    sigaction(SIGPIPE, &old_pipe, NULL);
  sigprocmask(SIG_SETMASK, &old, NULL);
  vm_paths_clear(&paths);
  return r;
}

char *engine_vm_dir(const char *id)
{
  return xasprintf("/run/isola-vm-%.16s", id);
}
