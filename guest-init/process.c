/* The container's process: forked with pipes as its stdio (or a pseudo-terminal, with
 * process.terminal), then set up by the runtime's own process code (rlimits, user and groups,
 * umask, cwd, capabilities) and exec'd. */
#include "init.h"
#include "container.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* In the child: report one line on its stderr (the STDERR stream) and end with status. */
static _Noreturn void child_fail(struct isola_error *err, int status)
{
  dprintf(STDERR_FILENO, "isola-init: %s\n", err && err->msg ? err->msg : "cannot start");
  _exit(status);
}

static _Noreturn void child_run(const struct guest_config *cfg, const char *tty)
{
  struct isola_error *err = NULL;
  /* A session of its own, and a group to signal as a whole; with a terminal, it is the
   * session's controlling terminal and the process's stdio. */
  setsid();
  if (tty) {
    int fd = open(tty, O_RDWR);
    if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0 || dup2(fd, STDIN_FILENO) < 0 ||
        dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
      _exit(ISOLA_GUEST_EXIT_INTERNAL);
    if (fd > STDERR_FILENO)
      close(fd);
  }
  if (process_set_limits(&cfg->process, &err) < 0)
    child_fail(err, ISOLA_GUEST_EXIT_INTERNAL);
  /* As docker: 127 when the command does not exist, 126 when it cannot be executed. */
  _cleanup_free_ char *exe = NULL;
  if (process_find_exe(&cfg->process, &exe, &err) < 0)
    child_fail(err, err->code == ENOENT ? 127 : 126);
  struct process_exec pe = {
      .proc = &cfg->process, .seccomp = cfg->seccomp, .seccomp_listener_sock = -1};
  process_exec_final(&pe, exe, &err);
  child_fail(err, err && err->code == ENOENT ? 127 : 126);
}

static int set_nonblock(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* The terminal's master (non-blocking, at consoleSize when given); its slave's name in tty. */
static int open_terminal(const struct oci_process *p, char *tty, size_t size,
                         struct isola_error **err)
{
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
  if (m < 0)
    return isola_fail(err, errno, "cannot open a pseudo-terminal (/dev/ptmx)");
  if (unlockpt(m) < 0 || ptsname_r(m, tty, size) != 0) {
    int e = errno;
    close(m);
    return isola_fail(err, e, "cannot set up the pseudo-terminal");
  }
  struct winsize ws = {.ws_row = (unsigned short) p->console_height,
                       .ws_col = (unsigned short) p->console_width};
  if (ws.ws_row && ws.ws_col)
    (void) ioctl(m, TIOCSWINSZ, &ws);
  return m;
}

static int spawn_with_terminal(const struct guest_config *cfg, struct guest_child *child,
                               struct isola_error **err)
{
  char tty[64];
  int m = open_terminal(&cfg->process, tty, sizeof(tty), err);
  if (m < 0)
    return m;
  /* stdin is a second descriptor of the master: STDIN_EOF closes it, the terminal stays. */
  int in = fcntl(m, F_DUPFD_CLOEXEC, 3);
  if (in < 0) {
    int e = errno;
    close(m);
    return isola_fail(err, e, "cannot duplicate the terminal");
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(m);
    close(in);
    return isola_fail(err, e, "cannot fork the process");
  }
  if (pid == 0)
    child_run(cfg, tty);
  *child =
      (struct guest_child){.pid = pid, .stdin_fd = in, .stdout_fd = m, .stderr_fd = -1, .tty = m};
  return 0;
}

/* exec -d: nobody reads or writes its stdio. */
static int spawn_detached(const struct guest_config *cfg, struct guest_child *child,
                          struct isola_error **err)
{
  pid_t pid = fork();
  if (pid < 0)
    return isola_fail(err, errno, "cannot fork the process");
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
        dup2(null, STDERR_FILENO) < 0)
      _exit(ISOLA_GUEST_EXIT_INTERNAL);
    child_run(cfg, NULL);
  }
  *child =
      (struct guest_child){.pid = pid, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .tty = -1};
  return 0;
}

int guest_process_spawn(const struct guest_config *cfg, struct guest_child *child,
                        struct isola_error **err)
{
  if (cfg->detach)
    return spawn_detached(cfg, child, err);
  if (cfg->process.terminal)
    return spawn_with_terminal(cfg, child, err);
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
    child_run(cfg, NULL);
  }
  close(in[0]);
  close(out[1]);
  close(errp[1]);
  *child = (struct guest_child){
      .pid = pid, .stdin_fd = in[1], .stdout_fd = out[0], .stderr_fd = errp[0], .tty = -1};
  if (set_nonblock(in[1]) < 0 || set_nonblock(out[0]) < 0 || set_nonblock(errp[0]) < 0)
    return isola_fail(err, errno, "cannot make the stdio pipes non-blocking");
  return 0;
}
