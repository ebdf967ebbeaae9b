/* The life of PID 1 while the container runs: one poll loop over the host connections (the
 * container's own, and one per process started with `isola exec`), each process's pipes or
 * terminal, the exec listener and a signalfd. Output flows to the host with backpressure (a
 * process's pipes are read only while its send queue is short); stdin flows under the credit
 * window of isola_guest_abi.h; every zombie is reaped (catatonit's pattern: reap until nothing
 * is left). The container's process ending ends the container: what it left behind is killed
 * (exec'd processes too), the rest of the output sent, then EXIT on each connection. */
#include "init.h"
#include "container.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

/* Acknowledge stdin in batches: each frame costs a few guest syscalls (~1 ms each on slow
 * hosts), and the host only needs credit back before its window runs out. */
#define ACK_BATCH (ISOLA_GUEST_STDIN_WINDOW / 8)
#define MAX_SESSIONS (1 + ISOLA_GUEST_MAX_EXECS)
/* After the container's process ends, exec connections get this long to take their last
 * output and EXIT. */
#define EXEC_DRAIN_MS 2000

enum session_state {
  SESSION_FREE,
  SESSION_HELLO,   /* exec: waiting for the host's HELLO */
  SESSION_PROCESS, /* exec: waiting for PROCESS */
  SESSION_RUNNING, /* the process runs, or its output is still being sent */
  SESSION_ENDING,  /* EXIT queued: closed once the queue is written */
};

struct session {
  enum session_state state;
  struct channel *ch; /* the container's own (borrowed), or &own for an exec */
  struct channel own;
  struct guest_child child;
  bool exited;   /* the process has ended; status is its exit status */
  bool detached; /* exec -d: the process outlives its connection */
  int status;
  /* stdin: received and not yet written, under the host's window */
  uint8_t *in_buf;
  size_t in_off, in_len;
  size_t in_flight; /* received and not yet acknowledged */
  size_t to_ack;    /* written (or dropped) and not yet acknowledged */
  bool in_eof;      /* STDIN_EOF received */
};

struct supervisor {
  struct session s[MAX_SESSIONS]; /* [0] is the container's process */
  bool kill_all;
  int exec_fd; /* listening for exec connections, -1 once the container ends */
};

static void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void session_close_stdio(struct session *x)
{
  close_fd(&x->child.stdin_fd);
  close_fd(&x->child.stdout_fd);
  close_fd(&x->child.stderr_fd);
  x->child.tty = -1;
}

/* Kill everything the container's process left, exec'd processes included (or everything, when
 * the host is gone). */
static void kill_rest(struct supervisor *sv)
{
  if (sv->kill_all) {
    kill(-1, SIGKILL);
    return;
  }
  for (unsigned i = 0; i < MAX_SESSIONS; i++)
    if (sv->s[i].state != SESSION_FREE && sv->s[i].child.pid > 0 && (i > 0 || !sv->s[0].exited))
      kill(-sv->s[i].child.pid, SIGKILL);
}

static void reap(struct supervisor *sv)
{
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p <= 0)
      return; /* 0: some still run; -1 (ECHILD): none left */
    for (unsigned i = 0; i < MAX_SESSIONS; i++) {
      struct session *x = &sv->s[i];
      if (x->state != SESSION_FREE && x->child.pid == p && !x->exited) {
        x->exited = true;
        x->status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
      }
    }
  }
}

static void stdin_ack(struct session *x, bool force)
{
  if (x->to_ack == 0 || (!force && x->to_ack < ACK_BATCH))
    return;
  channel_queue_u32(x->ch, ISOLA_GUEST_STDIN_ACK, (uint32_t) x->to_ack);
  x->in_flight -= x->to_ack;
  x->to_ack = 0;
}

/* The process will never read again: what is buffered or still coming is dropped, and its
 * credit returned at once. */
static void stdin_close(struct session *x)
{
  close_fd(&x->child.stdin_fd);
  x->to_ack += x->in_len;
  x->in_len = x->in_off = 0;
  stdin_ack(x, true);
}

static void stdin_write(struct session *x)
{
  while (x->in_len > 0) {
    ssize_t n = write(x->child.stdin_fd, x->in_buf + x->in_off, x->in_len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      break;
    if (n < 0) { /* EPIPE: the process closed its stdin */
      stdin_close(x);
      return;
    }
    x->in_off += (size_t) n;
    x->in_len -= (size_t) n;
    x->to_ack += (size_t) n;
  }
  if (x->in_len == 0) {
    x->in_off = 0;
    if (x->in_eof)
      close_fd(&x->child.stdin_fd);
  }
  stdin_ack(x, x->in_len == 0);
}

static int on_stdin(struct session *x, const struct frame *f, struct isola_error **err)
{
  if (x->in_eof)
    return isola_failx(err, EPROTO, "protocol error: STDIN after STDIN_EOF");
  if (x->in_flight + f->length > ISOLA_GUEST_STDIN_WINDOW)
    return isola_failx(err, EPROTO, "protocol error: STDIN beyond the %u-byte window",
                       ISOLA_GUEST_STDIN_WINDOW);
  x->in_flight += f->length;
  if (x->child.stdin_fd < 0) {
    x->to_ack += f->length;
    stdin_ack(x, true);
    return 0;
  }
  if (!x->in_buf) {
    x->in_buf = xmalloc(ISOLA_GUEST_STDIN_WINDOW);
    prefault(x->in_buf, ISOLA_GUEST_STDIN_WINDOW);
  }
  /* Everything buffered is unacknowledged, so it always fits in the window-sized buffer. */
  if (x->in_off + x->in_len + f->length > ISOLA_GUEST_STDIN_WINDOW) {
    memmove(x->in_buf, x->in_buf + x->in_off, x->in_len);
    x->in_off = 0;
  }
  memcpy(x->in_buf + x->in_off + x->in_len, f->data, f->length);
  x->in_len += f->length;
  stdin_write(x);
  return 0;
}

/* exec -d: the command must exist (the one failure we can still report, as 127 or 126); then
 * the process runs on its own, stdio on /dev/null, and the connection ends with EXIT 0. It is
 * reaped like any child and killed with the container. */
static int exec_detached(struct session *x, const struct guest_config *cfg,
                         struct isola_error **err)
{
  _cleanup_free_ char *exe = NULL;
  if (process_find_exe(&cfg->process, &exe, err) < 0) {
    _cleanup_free_ char *line = xasprintf("isola-init: %s\n", (*err)->msg);
    channel_queue(x->ch, ISOLA_GUEST_STDERR, line, (uint32_t) strlen(line));
    channel_queue_u32(x->ch, ISOLA_GUEST_EXIT, (*err)->code == ENOENT ? 127 : 126);
    isola_error_free(err);
    x->state = SESSION_ENDING;
    return 0;
  }
  int r = guest_process_spawn(cfg, &x->child, err);
  if (r < 0)
    return r;
  x->detached = true;
  channel_queue_u32(x->ch, ISOLA_GUEST_STARTED, (uint32_t) x->child.pid);
  channel_queue_u32(x->ch, ISOLA_GUEST_EXIT, 0);
  x->state = SESSION_ENDING;
  return 0;
}

/* An exec connection's PROCESS: only "process" (and "user", "detach"), run in the container as
 * it is. */
static int exec_start(struct session *x, const struct frame *f, struct isola_error **err)
{
  struct guest_config cfg;
  int r = guest_config_parse((const char *) f->data, f->length, &cfg, err);
  if (r < 0)
    return r;
  if (cfg.has_root || cfg.n_mounts || cfg.hostname || cfg.domainname)
    r = isola_failx(err, EINVAL,
                    "exec: PROCESS may only have \"process\", \"user\" and \"detach\"");
  else if ((r = guest_config_resolve_user(&cfg, err)) == 0 && cfg.detach)
    r = exec_detached(x, &cfg, err);
  else if (r == 0 && (r = guest_process_spawn(&cfg, &x->child, err)) == 0)
    channel_queue_u32(x->ch, ISOLA_GUEST_STARTED, (uint32_t) x->child.pid);
  guest_config_clear(&cfg);
  return r;
}

static int on_frame(struct session *x, const struct frame *f, struct isola_error **err)
{
  if (x->state == SESSION_HELLO) {
    if (f->type != ISOLA_GUEST_HELLO)
      return isola_failx(err, EPROTO, "protocol error: expected HELLO, got frame type %u", f->type);
    uint32_t v = isola_guest_get_u32(f->data);
    if (v != ISOLA_GUEST_ABI_VERSION)
      return isola_failx(err, EPROTONOSUPPORT, "the host speaks version %u, this guest version %u",
                         v, ISOLA_GUEST_ABI_VERSION);
    x->state = SESSION_PROCESS;
    return 0;
  }
  if (x->state == SESSION_PROCESS) {
    if (f->type != ISOLA_GUEST_PROCESS)
      return isola_failx(err, EPROTO, "protocol error: expected PROCESS, got frame type %u",
                         f->type);
    int r = exec_start(x, f, err);
    if (r == 0 && x->state == SESSION_PROCESS)
      x->state = SESSION_RUNNING;
    return r;
  }
  switch (f->type) {
  case ISOLA_GUEST_STDIN:
    return on_stdin(x, f, err);
  case ISOLA_GUEST_STDIN_EOF:
    x->in_eof = true;
    if (x->in_len == 0)
      close_fd(&x->child.stdin_fd);
    return 0;
  case ISOLA_GUEST_SIGNAL: {
    uint32_t sig = isola_guest_get_u32(f->data);
    if (sig < 1 || sig > 64)
      return isola_failx(err, EPROTO, "protocol error: SIGNAL %u is not a signal number", sig);
    if (!x->exited)
      kill(x->child.pid, (int) sig);
    return 0;
  }
  case ISOLA_GUEST_RESIZE: {
    struct winsize ws = {.ws_row = (unsigned short) isola_guest_get_u32(f->data),
                         .ws_col = (unsigned short) isola_guest_get_u32(f->data + 4)};
    if (x->child.tty >= 0)
      (void) ioctl(x->child.tty, TIOCSWINSZ, &ws);
    return 0; /* without a terminal there is nothing to resize */
  }
  case ISOLA_GUEST_ERROR:
    return isola_failx(err, ECONNABORTED, "the host gave up: %.*s", (int) f->length,
                       (const char *) f->data);
  default:
    return isola_failx(err, EPROTO, "protocol error: frame type %u is not expected now", f->type);
  }
}

static void on_signal(struct supervisor *sv, int sigfd)
{
  struct signalfd_siginfo si;
  while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
    if (si.ssi_signo == SIGCHLD)
      reap(sv);
    else if (!sv->s[0].exited)
      kill(sv->s[0].child.pid, (int) si.ssi_signo); /* signals sent to init are the process's */
  }
}

static void on_output(struct session *x, int *fd, uint32_t type)
{
  ssize_t n = channel_queue_from_fd(x->ch, type, *fd);
  if (n == 0 || (n < 0 && n != -EAGAIN)) { /* a terminal's master says EIO once all is read */
    if (*fd == x->child.tty)
      x->child.tty = -1;
    close_fd(fd);
  }
}

/* An exec connection is over (done, or the host broke or left it): its process goes too. */
static void exec_end(struct session *x)
{
  if (x->child.pid > 0 && !x->exited && !x->detached)
    kill(-x->child.pid, SIGKILL); /* reaped by the loop like any other child */
  session_close_stdio(x);
  channel_close(&x->own);
  free(x->in_buf);
  *x = (struct session){.state = SESSION_FREE};
}

/* An exec connection that failed (a PROCESS we cannot start, a broken protocol): ERROR, then
 * EXIT(INTERNAL) once the queue is written; its process, if any, is gone at once. */
static void exec_refuse(struct session *x, const char *msg)
{
  if (x->child.pid > 0 && !x->exited)
    kill(-x->child.pid, SIGKILL);
  session_close_stdio(x);
  channel_queue(x->ch, ISOLA_GUEST_ERROR, msg, (uint32_t) strnlen(msg, ISOLA_GUEST_MAX_ERROR));
  channel_queue_u32(x->ch, ISOLA_GUEST_EXIT, ISOLA_GUEST_EXIT_INTERNAL);
  x->state = SESSION_ENDING;
}

static void on_exec_connect(struct supervisor *sv)
{
  int fd;
  while ((fd = accept4(sv->exec_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
    struct session *x = NULL;
    for (unsigned i = 1; i < MAX_SESSIONS && !x; i++)
      if (sv->s[i].state == SESSION_FREE)
        x = &sv->s[i];
    struct session full = {0};
    if (!x)
      x = &full;
    *x = (struct session){
        .state = SESSION_HELLO,
        .ch = &x->own,
        .child = {.pid = 0, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .tty = -1}};
    channel_init(&x->own, fd);
    struct isola_guest_hello h;
    isola_guest_put_u32(&h.version, ISOLA_GUEST_ABI_VERSION);
    isola_guest_put_u32(&h.flags, 0);
    channel_queue(x->ch, ISOLA_GUEST_HELLO, &h, sizeof(h));
    if (x == &full) { /* no room: say so in the socket buffer, which takes these few bytes */
      exec_refuse(x, "exec: too many processes started with exec at once");
      channel_flush(x->ch);
      channel_close(x->ch);
    }
  }
}

/* One session's step after poll: its connection, then its process's pipes. Returns < 0 only
 * for a failure of the container's own connection; an exec's failure ends just that exec. */
static int session_io(struct session *x, bool main, const struct pollfd *p,
                      struct isola_error **err)
{
  int r;
  if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
    struct frame f;
    while ((r = channel_receive(x->ch, &f, err)) > 0 && x->state != SESSION_ENDING)
      if ((r = on_frame(x, &f, err)) < 0)
        break;
    if (r >= 0 && x->ch->eof && x->state != SESSION_ENDING)
      r = isola_failx(err, EPIPE, "the host closed the connection");
    if (r < 0) {
      if (main)
        return r;
      if (r == -EPIPE)
        exec_end(x); /* the host left: nobody to tell */
      else
        exec_refuse(x, (*err)->msg);
      isola_error_free(err);
      return 0;
    }
  }
  if (p[1].revents)
    on_output(x, &x->child.stdout_fd, ISOLA_GUEST_STDOUT);
  if (p[2].revents)
    on_output(x, &x->child.stderr_fd, ISOLA_GUEST_STDERR);
  if (p[3].revents)
    stdin_write(x);
  return 0;
}

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static int supervise_loop(struct supervisor *sv, int sigfd, struct isola_error **err)
{
  struct session *m = &sv->s[0];
  bool killed = false;
  uint64_t drain_until = 0;
  int r;

  for (;;) {
    if (m->exited && !killed) {
      /* As when a container's PID 1 dies: the rest goes too, and their pipe ends with them. */
      kill_rest(sv);
      killed = true;
      close_fd(&sv->exec_fd);
      drain_until = now_ms() + EXEC_DRAIN_MS;
    }
    bool execs_left = false;
    for (unsigned i = 0; i < MAX_SESSIONS; i++) {
      struct session *x = &sv->s[i];
      if (x->state == SESSION_RUNNING && x->exited && x->child.stdin_fd >= 0)
        stdin_close(x);
      if (x->state == SESSION_RUNNING && x->exited && x->child.stdout_fd < 0 &&
          x->child.stderr_fd < 0) {
        channel_queue_u32(x->ch, ISOLA_GUEST_EXIT, (uint32_t) x->status);
        x->state = SESSION_ENDING;
      }
      if (i > 0 && x->state != SESSION_FREE) {
        if (killed && x->state != SESSION_RUNNING && x->state != SESSION_ENDING)
          exec_end(x); /* never started, and now never will */
        else if ((r = channel_flush(x->ch)) < 0 ||
                 (x->state == SESSION_ENDING && !channel_pending(x->ch)) ||
                 (killed && now_ms() > drain_until))
          exec_end(x);
        execs_left |= x->state != SESSION_FREE;
      }
    }
    if (m->state == SESSION_ENDING && !execs_left)
      return m->status;
    if (m->state != SESSION_ENDING || channel_pending(m->ch))
      if ((r = channel_flush(m->ch)) < 0)
        return isola_fail(err, -r, "cannot write to the host");

    /* Per session: connection, stdout, stderr, stdin; then the signalfd and the listener. */
    struct pollfd p[MAX_SESSIONS * 4 + 2];
    for (unsigned i = 0; i < MAX_SESSIONS; i++) {
      struct session *x = &sv->s[i];
      bool on = x->state != SESSION_FREE && !(i == 0 && x->state == SESSION_ENDING);
      bool room = channel_pending(x->ch ? x->ch : &x->own) < ISOLA_GUEST_MAX_DATA;
      p[i * 4] = (struct pollfd){.fd = on ? x->ch->fd : -1,
                                 .events = POLLIN | (on && channel_pending(x->ch) ? POLLOUT : 0)};
      p[i * 4 + 1] = (struct pollfd){.fd = on && room ? x->child.stdout_fd : -1, .events = POLLIN};
      p[i * 4 + 2] = (struct pollfd){.fd = on && room ? x->child.stderr_fd : -1, .events = POLLIN};
      p[i * 4 + 3] =
          (struct pollfd){.fd = on && x->in_len ? x->child.stdin_fd : -1, .events = POLLOUT};
    }
    p[MAX_SESSIONS * 4] = (struct pollfd){.fd = sigfd, .events = POLLIN};
    p[MAX_SESSIONS * 4 + 1] = (struct pollfd){.fd = sv->exec_fd, .events = POLLIN};
    int timeout = killed && execs_left ? 100 : -1;
    if (m->state == SESSION_ENDING)
      p[0].fd = -1; /* only the execs' last words are awaited */
    if (poll(p, ARRAY_SIZE(p), timeout) < 0) {
      if (errno == EINTR)
        continue;
      return isola_fail(err, errno, "poll");
    }
    if (p[MAX_SESSIONS * 4].revents)
      on_signal(sv, sigfd);
    for (unsigned i = 0; i < MAX_SESSIONS; i++)
      if (sv->s[i].state != SESSION_FREE && (r = session_io(&sv->s[i], i == 0, &p[i * 4], err)) < 0)
        return r;
    if (p[MAX_SESSIONS * 4 + 1].revents)
      on_exec_connect(sv);
  }
}

int guest_supervise(struct channel *ch, struct guest_child *child, int sigfd, int exec_fd,
                    bool kill_all, struct isola_error **err)
{
  struct supervisor sv = {.kill_all = kill_all, .exec_fd = exec_fd};
  sv.s[0] = (struct session){.state = SESSION_RUNNING, .ch = ch, .child = *child};
  int r = supervise_loop(&sv, sigfd, err);
  struct session *m = &sv.s[0];
  if (r < 0) {
    /* The host is gone or broke the protocol: nothing may outlive the conversation. */
    if (!m->exited)
      kill(m->child.pid, SIGKILL);
    kill_rest(&sv);
  }
  for (unsigned i = 1; i < MAX_SESSIONS; i++)
    if (sv.s[i].state != SESSION_FREE)
      exec_end(&sv.s[i]);
  close_fd(&sv.exec_fd);
  free(m->in_buf);
  *child = m->child;
  return r;
}
