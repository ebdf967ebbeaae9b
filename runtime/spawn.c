/* Starting a process in new or existing namespaces, and waiting on it in the foreground. */
#include "container.h"

#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static pid_t raw_clone(int flags)
{
  /* Like fork(), but with namespace flags; the runtime is single-threaded, so the child may
   * use malloc and stdio as after fork(). */
  return (pid_t) syscall(SYS_clone, (unsigned long) flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

static int set_time_offsets(const struct spawn_req *req, struct isola_error **err)
{
  if (unshare(CLONE_NEWTIME) < 0)
    return isola_fail(err, errno, "linux.timeOffsets: cannot create a time namespace");
  _cleanup_free_ char *text =
      xasprintf("monotonic %lld %u\nboottime %lld %u\n", (long long) req->monotonic_secs,
                req->monotonic_nsecs, (long long) req->boottime_secs, req->boottime_nsecs);
  int r = write_file_at(AT_FDCWD, "/proc/self/timens_offsets", text, strlen(text));
  if (r < 0)
    return isola_fail(err, -r, "linux.timeOffsets: cannot set the offsets");
  return 0;
}

static int stage1(const struct spawn_req *req)
{
  struct isola_error *err = NULL;
  for (size_t i = 0; i < req->n_join; i++) {
    if (setns(req->join_fds[i], req->join_flags[i]) < 0) {
      isola_fail(&err, errno, "cannot join a namespace (flag %#x)", req->join_flags[i]);
      goto fail;
    }
  }
  if (req->new_time_ns && set_time_offsets(req, &err) < 0)
    goto fail;
  pid_t pid =
      (pid_t) syscall(SYS_clone, (unsigned long) (req->clone_flags | CLONE_PARENT) | SIGCHLD, NULL,
                      NULL, NULL, NULL);
  if (pid < 0) {
    isola_fail(&err, errno, "cannot create the container process");
    goto fail;
  }
  if (pid == 0)
    _exit(req->fn(req->arg));
  if (sync_send_pid(req->sync_fd, pid) < 0)
    _exit(1);
  return 0;
fail:
  sync_send_error(req->sync_fd, err);
  return 1;
}

int spawn_process(const struct spawn_req *req, int sync_parent, pid_t *pid,
                  struct isola_error **err)
{
  bool direct = req->n_join == 0 && !req->new_time_ns;
  pid_t child = raw_clone(direct ? req->clone_flags : 0);
  if (child < 0) {
    if (errno == EINVAL && (req->clone_flags & CLONE_NEWUSER))
      return isola_fail(err, errno, "cannot create namespaces (user namespace with others)");
    return isola_fail(err, errno, "cannot create the container process");
  }
  if (child == 0) {
    close(sync_parent);
    _exit(direct ? req->fn(req->arg) : stage1(req));
  }
  if (direct) {
    *pid = child;
    return 0;
  }
  int r = sync_recv_pid(sync_parent, pid, err);
  int status;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR)
    ;
  return r;
}

static const int forwarded_signals[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGTERM,  SIGUSR1,
                                        SIGUSR2, SIGPIPE, SIGALRM, SIGWINCH, SIGCONT,
                                        SIGTSTP, SIGTTIN, SIGTTOU, SIGURG};

void block_forwarded_signals(sigset_t *set, sigset_t *old)
{
  sigemptyset(set);
  for (size_t i = 0; i < ARRAY_SIZE(forwarded_signals); i++)
    sigaddset(set, forwarded_signals[i]);
  sigaddset(set, SIGCHLD);
  sigprocmask(SIG_BLOCK, set, old);
}

int wait_forwarding_signals(pid_t pid, const sigset_t *set)
{
  for (;;) {
    int status;
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (w < 0 && errno != EINTR)
      return 255;
    siginfo_t si;
    int sig = sigwaitinfo(set, &si);
    if (sig < 0 || sig == SIGCHLD)
      continue;
    kill(pid, sig);
  }
}
