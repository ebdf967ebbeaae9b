/* The container's process: forked with pipes as its stdio, then set up by the runtime's own
 * process code (rlimits, user and groups, umask, cwd, capabilities) and exec'd. */
#include "init.h"
#include "container.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>

/* In the child: report one line on its stderr (the STDERR stream) and end with status. */
static _Noreturn void child_fail(struct isola_error *err, int status)
{
  dprintf(STDERR_FILENO, "isola-init: %s\n", err && err->msg ? err->msg : "cannot start");
  _exit(status);
}

static _Noreturn void child_run(const struct guest_config *cfg)
{
  struct isola_error *err = NULL;
  /* A session of its own: a terminal-less leader, and a group to signal as a whole. */
  setsid();
  if (process_set_limits(&cfg->process, &err) < 0)
    child_fail(err, ISOLA_GUEST_EXIT_INTERNAL);
  /* As docker: 127 when the command does not exist, 126 when it cannot be executed. */
  _cleanup_free_ char *exe = NULL;
  if (process_find_exe(&cfg->process, &exe, &err) < 0)
    child_fail(err, err->code == ENOENT ? 127 : 126);
  struct process_exec pe = {.proc = &cfg->process, .seccomp_listener_sock = -1};
  process_exec_final(&pe, exe, &err);
  child_fail(err, err && err->code == ENOENT ? 127 : 126);
}

static int set_nonblock(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

int guest_process_spawn(const struct guest_config *cfg, struct guest_child *child,
                        struct isola_error **err)
{
  int in[2], out[2], errp[2];
  if (pipe2(in, O_CLOEXEC) < 0)
    return isola_fail(err, errno, "cannot create the stdin pipe");
  if (pipe2(out, O_CLOEXEC) < 0) {
    int e = errno;
    close(in[0]);
    close(in[1]);
    return isola_fail(err, e, "cannot create the stdout pipe");
  }
  if (pipe2(errp, O_CLOEXEC) < 0) {
    int e = errno;
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    return isola_fail(err, e, "cannot create the stderr pipe");
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    int fds[] = {in[0], in[1], out[0], out[1], errp[0], errp[1]};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
      close(fds[i]);
    return isola_fail(err, e, "cannot fork the process");
  }
  if (pid == 0) {
    /* dup2 clears O_CLOEXEC on the copies; everything else of ours closes at exec. */
    if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
        dup2(errp[1], STDERR_FILENO) < 0)
      _exit(ISOLA_GUEST_EXIT_INTERNAL);
    child_run(cfg);
  }
  close(in[0]);
  close(out[1]);
  close(errp[1]);
  *child = (struct guest_child){
      .pid = pid, .stdin_fd = in[1], .stdout_fd = out[0], .stderr_fd = errp[0]};
  if (set_nonblock(in[1]) < 0 || set_nonblock(out[0]) < 0 || set_nonblock(errp[0]) < 0)
    return isola_fail(err, errno, "cannot make the stdio pipes non-blocking");
  return 0;
}
