/* Terminals: a pty made inside the container, its master handed to the engine over the
 * console socket (runc's protocol), or relayed by us in the foreground. */
#include "container.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

int terminal_connect(const char *path, int *fd, struct isola_error **err)
{
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(addr.sun_path))
    return isola_failx(err, ENAMETOOLONG, "--console-socket: path \"%s\" is too long", path);
  strcpy(addr.sun_path, path);
  _cleanup_close_ int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return isola_fail(err, errno, "--console-socket: socket");
  if (connect(s, (struct sockaddr *) &addr, sizeof(addr)) < 0)
    return isola_fail(err, errno, "--console-socket: cannot connect to \"%s\"", path);
  *fd = steal_fd(&s);
  return 0;
}

int terminal_setup(int console_sock, const struct oci_process *p, bool is_init,
                   struct isola_error **err)
{
  _cleanup_close_ int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    return isola_fail(err, errno, "process.terminal: cannot open /dev/ptmx");
  int unlock = 0;
  if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
    return isola_fail(err, errno, "process.terminal: cannot unlock the pty");
  _cleanup_close_ int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    return isola_fail(err, errno, "process.terminal: cannot open the pty's peer");
  if (p->console_height || p->console_width) {
    struct winsize ws = {.ws_row = p->console_height, .ws_col = p->console_width};
    (void) ioctl(slave, TIOCSWINSZ, &ws);
  }
  /* /dev/console is the terminal too, as with runc: programs that write to it reach the user.
   * Both ends of the bind are fds (the pty peer we hold, a console we checked is not a link),
   * so a symlink planted in the image's /dev cannot redirect it. */
  if (is_init && access("/dev", W_OK) == 0) {
    int made = open("/dev/console", O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (made >= 0)
      close(made);
    _cleanup_close_ int console = open("/dev/console", O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (console < 0 || fstat(console, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)))
      return isola_failx(err, EINVAL, "process.terminal: /dev/console is not a file to bind over");
    char src[64], dst[64];
    snprintf(src, sizeof(src), "/proc/self/fd/%d", slave);
    snprintf(dst, sizeof(dst), "/proc/self/fd/%d", console);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
      return isola_fail(err, errno, "process.terminal: cannot bind the pty to /dev/console");
  }
  int r = send_fds(console_sock, "/dev/ptmx", 9, &master, 1);
  if (r < 0)
    return isola_fail(err, -r, "--console-socket: cannot send the pty master");
  if (setsid() < 0 && errno != EPERM)
    return isola_fail(err, errno, "process.terminal: setsid");
  if (ioctl(slave, TIOCSCTTY, 0) < 0)
    return isola_fail(err, errno, "process.terminal: cannot make the pty the controlling tty");
  for (int i = 0; i < 3; i++)
    if (dup2(slave, i) < 0)
      return isola_fail(err, errno, "process.terminal: dup2");
  return 0;
}

/* Copy what is readable from `from` to `to`; false at EOF or error. */
static bool pump(int from, int to)
{
  char buf[16384];
  ssize_t n = read(from, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return true;
  if (n <= 0)
    return false;
  return write_all(to, buf, n) == 0;
}

int terminal_relay(int master, pid_t child, const sigset_t *forwarded, int *status)
{
  struct termios saved, raw;
  bool restore = false;
  if (isatty(0) && tcgetattr(0, &saved) == 0) {
    raw = saved;
    cfmakeraw(&raw);
    if (tcsetattr(0, TCSANOW, &raw) == 0)
      restore = true;
    struct winsize ws;
    if (ioctl(0, TIOCGWINSZ, &ws) == 0)
      (void) ioctl(master, TIOCSWINSZ, &ws);
  }
  int pidfd = (int) syscall(SYS_pidfd_open, child, 0);
  /* The signals run/exec forward arrive here (they are blocked): pass them on, and follow
   * the size of our terminal. */
  sigset_t set = *forwarded;
  sigdelset(&set, SIGCHLD);
  int sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  struct pollfd fds[4] = {{.fd = 0, .events = POLLIN},
                          {.fd = master, .events = POLLIN},
                          {.fd = pidfd, .events = POLLIN},
                          {.fd = sigfd, .events = POLLIN}};
  bool stdin_open = true;
  for (;;) {
    fds[0].fd = stdin_open ? 0 : -1;
    int n = poll(fds, 4, -1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      break;
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (!pump(master, 1))
        break;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (!pump(0, master)) {
        stdin_open = false;
        /* Pass end-of-file on as the terminal's EOF character. */
        (void) write_all(master, "\x04", 1);
      }
    }
    if (fds[3].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sigfd, &si, sizeof(si)) == (ssize_t) sizeof(si)) {
        struct winsize ws;
        if (si.ssi_signo == SIGWINCH && ioctl(0, TIOCGWINSZ, &ws) == 0)
          (void) ioctl(master, TIOCSWINSZ, &ws);
        else if (si.ssi_signo != SIGWINCH)
          kill(child, (int) si.ssi_signo);
      }
    }
    if (fds[2].revents & POLLIN) {
      /* Drain what is left, then stop. */
      while (poll(&fds[1], 1, 0) > 0 && (fds[1].revents & POLLIN) && pump(master, 1))
        ;
      break;
    }
  }
  if (restore)
    tcsetattr(0, TCSANOW, &saved);
  if (pidfd >= 0)
    close(pidfd);
  if (sigfd >= 0)
    close(sigfd);
  while (waitpid(child, status, 0) < 0)
    if (errno != EINTR)
      return -errno;
  return 0;
}
