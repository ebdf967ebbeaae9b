/* OCI hooks: each one a program run with the container state on its stdin. */
#include "container.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

static int run_one(const struct oci_hook *h, const char *kind, size_t index, const char *state,
                   struct isola_error **err)
{
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0)
    return isola_fail(err, errno, "hooks.%s[%zu]: cannot create a pipe", kind, index);
  pid_t pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return isola_fail(err, errno, "hooks.%s[%zu]: cannot fork", kind, index);
  }
  if (pid == 0) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    dup2(pipefd[0], 0);
    /* Engines read our stdout (e.g. `state`); a hook's chatter goes to stderr. */
    dup2(2, 1);
    char *const empty[] = {NULL};
    char *const fallback_args[] = {h->path, NULL};
    execve(h->path, h->args && h->args[0] ? h->args : fallback_args, h->env ? h->env : empty);
    _exit(127);
  }
  close(pipefd[0]);
  /* The state goes in while the hook runs, within its timeout: a hook that reads nothing of a
   * large state must not block us. A hook that stops reading gets EPIPE, and we no SIGPIPE: the
   * signal is blocked and its pending instance consumed rather than ignored, since an ignored
   * disposition would survive into the container's program when init runs hooks. */
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigprocmask(SIG_BLOCK, &pipe_set, &old_set);
  fcntl(pipefd[1], F_SETFL, O_NONBLOCK);
  int pfd = (int) syscall(SYS_pidfd_open, pid, 0);
  size_t len = strlen(state), done = 0;
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  bool timed_out = false;
  for (;;) {
    struct pollfd p[2] = {{.fd = pfd, .events = POLLIN},
                          {.fd = done < len ? pipefd[1] : -1, .events = POLLOUT}};
    int wait_ms = -1;
    if (h->timeout > 0) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long long elapsed =
          (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000;
      wait_ms = elapsed >= h->timeout * 1000LL ? 0 : (int) (h->timeout * 1000LL - elapsed);
    }
    int n = poll(p, 2, wait_ms);
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0) {
      timed_out = true;
      break;
    }
    if (n < 0 || pfd < 0 || (p[0].revents & POLLIN))
      break; /* exited (or no pidfd: fall back to waitpid) */
    if (p[1].revents) {
      ssize_t w = write(pipefd[1], state + done, len - done);
      if (w > 0)
        done += w;
      else if (w < 0 && errno != EAGAIN && errno != EINTR)
        done = len; /* EPIPE: the hook closed its stdin */
      if (done == len) {
        close(pipefd[1]);
        pipefd[1] = -1;
      }
    }
  }
  if (pipefd[1] >= 0)
    close(pipefd[1]);
  if (pfd >= 0)
    close(pfd);
  struct timespec zero = {0, 0};
  while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
    ;
  sigprocmask(SIG_SETMASK, &old_set, NULL);

  int status = 0;
  if (timed_out) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return isola_failx(err, ETIMEDOUT, "hooks.%s[%zu] (%s): timed out after %d s", kind, index,
                       h->path, h->timeout);
  }
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return isola_fail(err, errno, "hooks.%s[%zu]: wait", kind, index);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return isola_failx(err, ENOEXEC, "hooks.%s[%zu] (%s): cannot be executed (exit 127)", kind,
                       index, h->path);
  if (WIFEXITED(status))
    return isola_failx(err, EIO, "hooks.%s[%zu] (%s): exited with status %d", kind, index, h->path,
                       WEXITSTATUS(status));
  return isola_failx(err, EIO, "hooks.%s[%zu] (%s): killed by signal %d", kind, index, h->path,
                     WTERMSIG(status));
}

int hooks_run(const struct oci_hook *hooks, size_t n, const char *kind, const char *state_json,
              struct isola_error **err)
{
  for (size_t i = 0; i < n; i++) {
    int r = run_one(&hooks[i], kind, i, state_json, err);
    if (r < 0)
      return r;
  }
  return 0;
}
