/* The life of PID 1 while the container runs: one poll loop over the host connection, the
 * process's three pipes and a signalfd. Output flows to the host with backpressure (the pipes
 * are read only while the send queue is short); stdin flows to the process under the credit
 * window of isola_guest_abi.h; every zombie is reaped (catatonit's pattern: reap until nothing
 * is left); the process's exit ends the container: what it left behind is killed, the rest of
 * its output sent, then EXIT. */
#include "init.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

/* Acknowledge stdin in batches: each frame costs a few guest syscalls (~1 ms each on slow
 * hosts), and the host only needs credit back before its window runs out. */
#define ACK_BATCH (ISOLA_GUEST_STDIN_WINDOW / 8)

struct supervisor {
  struct channel *ch;
  struct guest_child *child;
  bool kill_all;
  bool exited; /* the process has ended; status is its exit status */
  int status;
  /* stdin: received and not yet written, under the host's window */
  uint8_t *in_buf;
  size_t in_off, in_len;
  size_t in_flight; /* received and not yet acknowledged */
  size_t to_ack;    /* written (or dropped) and not yet acknowledged */
  bool in_eof;      /* STDIN_EOF received */
};

static void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* Kill everything the process left (or everything, when the host is gone). */
static void kill_rest(struct supervisor *s)
{
  if (s->kill_all)
    kill(-1, SIGKILL);
  else if (!s->exited)
    kill(-s->child->pid, SIGKILL);
}

static void reap(struct supervisor *s)
{
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p <= 0)
      return; /* 0: some still run; -1 (ECHILD): none left */
    if (p == s->child->pid && !s->exited) {
      s->exited = true;
      s->status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
    }
  }
}

static void stdin_ack(struct supervisor *s, bool force)
{
  if (s->to_ack == 0 || (!force && s->to_ack < ACK_BATCH))
    return;
  channel_queue_u32(s->ch, ISOLA_GUEST_STDIN_ACK, (uint32_t) s->to_ack);
  s->in_flight -= s->to_ack;
  s->to_ack = 0;
}

/* The process will never read again: what is buffered or still coming is dropped, and its
 * credit returned at once. */
static void stdin_close(struct supervisor *s)
{
  close_fd(&s->child->stdin_fd);
  s->to_ack += s->in_len;
  s->in_len = s->in_off = 0;
  stdin_ack(s, true);
}

static void stdin_write(struct supervisor *s)
{
  while (s->in_len > 0) {
    ssize_t n = write(s->child->stdin_fd, s->in_buf + s->in_off, s->in_len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      break;
    if (n < 0) { /* EPIPE: the process closed its stdin */
      stdin_close(s);
      return;
    }
    s->in_off += (size_t) n;
    s->in_len -= (size_t) n;
    s->to_ack += (size_t) n;
  }
  if (s->in_len == 0) {
    s->in_off = 0;
    if (s->in_eof)
      close_fd(&s->child->stdin_fd);
  }
  stdin_ack(s, s->in_len == 0);
}

static int on_frame(struct supervisor *s, const struct frame *f, struct isola_error **err)
{
  switch (f->type) {
  case ISOLA_GUEST_STDIN:
    if (s->in_eof)
      return isola_failx(err, EPROTO, "protocol error: STDIN after STDIN_EOF");
    if (s->in_flight + f->length > ISOLA_GUEST_STDIN_WINDOW)
      return isola_failx(err, EPROTO, "protocol error: STDIN beyond the %u-byte window",
                         ISOLA_GUEST_STDIN_WINDOW);
    s->in_flight += f->length;
    if (s->child->stdin_fd < 0) {
      s->to_ack += f->length;
      stdin_ack(s, true);
      return 0;
    }
    if (!s->in_buf) {
      s->in_buf = xmalloc(ISOLA_GUEST_STDIN_WINDOW);
      prefault(s->in_buf, ISOLA_GUEST_STDIN_WINDOW);
    }
    /* Everything buffered is unacknowledged, so it always fits in the window-sized buffer. */
    if (s->in_off + s->in_len + f->length > ISOLA_GUEST_STDIN_WINDOW) {
      memmove(s->in_buf, s->in_buf + s->in_off, s->in_len);
      s->in_off = 0;
    }
    memcpy(s->in_buf + s->in_off + s->in_len, f->data, f->length);
    s->in_len += f->length;
    stdin_write(s);
    return 0;
  case ISOLA_GUEST_STDIN_EOF:
    s->in_eof = true;
    if (s->in_len == 0)
      close_fd(&s->child->stdin_fd);
    return 0;
  case ISOLA_GUEST_SIGNAL: {
    uint32_t sig = isola_guest_get_u32(f->data);
    if (sig < 1 || sig > 64)
      return isola_failx(err, EPROTO, "protocol error: SIGNAL %u is not a signal number", sig);
    if (!s->exited)
      kill(s->child->pid, (int) sig);
    return 0;
  }
  case ISOLA_GUEST_RESIZE: {
    struct winsize ws = {.ws_row = (unsigned short) isola_guest_get_u32(f->data),
                         .ws_col = (unsigned short) isola_guest_get_u32(f->data + 4)};
    if (s->child->tty >= 0)
      (void) ioctl(s->child->tty, TIOCSWINSZ, &ws);
    return 0; /* without a terminal there is nothing to resize */
  }
  case ISOLA_GUEST_ERROR:
    return isola_failx(err, ECONNABORTED, "the host gave up: %.*s", (int) f->length,
                       (const char *) f->data);
  default:
    return isola_failx(err, EPROTO, "protocol error: frame type %u is not expected now", f->type);
  }
}

static int on_signal(struct supervisor *s, int sigfd)
{
  struct signalfd_siginfo si;
  while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
    if (si.ssi_signo == SIGCHLD)
      reap(s);
    else if (!s->exited)
      kill(s->child->pid, (int) si.ssi_signo); /* signals sent to init are the process's */
  }
  return 0;
}

static void on_output(struct supervisor *s, int *fd, uint32_t type)
{
  ssize_t n = channel_queue_from_fd(s->ch, type, *fd);
  if (n == 0 || (n < 0 && n != -EAGAIN)) { /* a terminal's master says EIO once all is read */
    if (*fd == s->child->tty)
      s->child->tty = -1;
    close_fd(fd);
  }
}

static int supervise_loop(struct supervisor *s, int sigfd, struct isola_error **err)
{
  struct channel *ch = s->ch;
  struct guest_child *child = s->child;
  bool killed = false;
  int r;

  for (;;) {
    if (s->exited && !killed) {
      /* As when a container's PID 1 dies: the rest goes too, and their pipe ends with them. */
      kill_rest(s);
      killed = true;
      if (child->stdin_fd >= 0)
        stdin_close(s);
    }
    if (s->exited && child->stdout_fd < 0 && child->stderr_fd < 0) {
      channel_queue_u32(ch, ISOLA_GUEST_EXIT, (uint32_t) s->status);
      return s->status;
    }
    if ((r = channel_flush(ch)) < 0)
      return isola_fail(err, -r, "cannot write to the host");
    bool room = channel_pending(ch) < ISOLA_GUEST_MAX_DATA;
    struct pollfd p[5] = {
        {.fd = ch->fd, .events = POLLIN | (channel_pending(ch) ? POLLOUT : 0)},
        {.fd = room ? child->stdout_fd : -1, .events = POLLIN},
        {.fd = room ? child->stderr_fd : -1, .events = POLLIN},
        {.fd = s->in_len ? child->stdin_fd : -1, .events = POLLOUT},
        {.fd = sigfd, .events = POLLIN},
    };
    if (poll(p, ARRAY_SIZE(p), -1) < 0) {
      if (errno == EINTR)
        continue;
      return isola_fail(err, errno, "poll");
    }
    if (p[4].revents)
      on_signal(s, sigfd);
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      struct frame f;
      while ((r = channel_receive(ch, &f, err)) > 0)
        if ((r = on_frame(s, &f, err)) < 0)
          return r;
      if (r < 0)
        return r;
      if (ch->eof)
        return isola_failx(err, EPIPE, "the host closed the connection");
    }
    if (p[1].revents)
      on_output(s, &child->stdout_fd, ISOLA_GUEST_STDOUT);
    if (p[2].revents)
      on_output(s, &child->stderr_fd, ISOLA_GUEST_STDERR);
    if (p[3].revents)
      stdin_write(s);
  }
}

int guest_supervise(struct channel *ch, struct guest_child *child, int sigfd, bool kill_all,
                    struct isola_error **err)
{
  struct supervisor s = {.ch = ch, .child = child, .kill_all = kill_all};
  int r = supervise_loop(&s, sigfd, err);
  free(s.in_buf);
  if (r < 0) {
    /* The host is gone or broke the protocol: nothing may outlive the conversation. */
    if (!s.exited)
      kill(child->pid, SIGKILL);
    kill_rest(&s);
  }
  return r;
}
