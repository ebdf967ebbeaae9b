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
  /* A hook that does not read its stdin gets EPIPE, not us a SIGPIPE. The signal is blocked and
   * its pending instance consumed rather than ignored: an ignored disposition would survive
   * into the container's program when init runs hooks. */
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigprocmask(SIG_BLOCK, &pipe_set, &old_set);
  (void) write_all(pipefd[1], state, strlen(state));
  close(pipefd[1]);
  struct timespec zero = {0, 0};
  while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
    ;
  sigprocmask(SIG_SETMASK, &old_set, NULL);

  int status = 0;
  if (h->timeout > 0) {
    int pfd = (int) syscall(SYS_pidfd_open, pid, 0);
    struct pollfd p = {.fd = pfd, .events = POLLIN};
    int n;
    do
      n = poll(&p, 1, h->timeout * 1000);
    while (n < 0 && errno == EINTR);
    if (pfd >= 0)
      close(pfd);
    if (n == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return isola_failx(err, ETIMEDOUT, "hooks.%s[%zu] (%s): timed out after %d s", kind, index,
                         h->path, h->timeout);
    }
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
