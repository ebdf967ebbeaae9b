/* isola-init: PID 1 of an isola microVM. It mounts what it needs, connects to the host over
 * vsock, receives the container's PROCESS, mounts the image's root under an overlay and moves
 * into it, runs the process with its stdio relayed to the host, reaps, reports EXIT and powers
 * the VM off. The protocol is isola_guest_abi.h.
 *
 * Test mode: with ISOLA_INIT_SOCKET=/path in the environment it speaks the same protocol over a
 * unix socket, runs as PID 1 of a PID namespace on the host (it refuses to run as anything
 * else), takes private mount, UTS and IPC namespaces itself, mounts no disk (a "root" of PROCESS
 * is then a directory) and exits instead of rebooting. */
#include "init.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define HOST_TIMEOUT_MS (120 * 1000) /* HELLO and PROCESS; guest kernels here are very slow */
#define CONNECT_TRIES 100            /* 10 s for the host to listen */

static bool debug;

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("isola-init: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

#define debug_say(...)                                                                             \
  do {                                                                                             \
    if (debug)                                                                                     \
      say(__VA_ARGS__);                                                                            \
  } while (0)

void options_parse_cmdline(struct init_options *o, const char *cmdline)
{
  _cleanup_free_ char *copy = xstrdup(cmdline);
  for (char *save = NULL, *w = strtok_r(copy, " \t\n", &save); w;
       w = strtok_r(NULL, " \t\n", &save)) {
    uint64_t v;
    if (!strncmp(w, "isola.root=", 11) && w[11] == '/') {
      free(o->root_source);
      o->root_source = xstrdup(w + 11);
    } else if (!strncmp(w, "isola.rootfstype=", 17) && w[17]) {
      free(o->root_fstype);
      o->root_fstype = xstrdup(w + 17);
    } else if (!strncmp(w, "isola.port=", 11) && parse_u64(w + 11, &v) == 0 && v <= UINT32_MAX) {
      o->port = (uint32_t) v;
    } else if (!strcmp(w, "isola.debug=1")) {
      o->debug = true;
    }
  }
}

void options_clear(struct init_options *o)
{
  free(o->socket_path);
  free(o->root_source);
  free(o->root_fstype);
}

/* The end of the VM. Without ACPI, RB_POWER_OFF only halts the CPU and the VM never exits;
 * RB_AUTOBOOT resets it, through the i8042 controller when the kernel runs with reboot=k,
 * and the VMM treats a reset as the end of the VM. In test mode we simply exit. */
static _Noreturn void power_off(const struct init_options *o, int status)
{
  if (o->test_mode)
    exit(status);
  sync();
  reboot(RB_AUTOBOOT);
  for (;;) /* PID 1 must not exit: the kernel would panic */
    pause();
}

/* fds 0-2 must be taken before any socket or pipe is: the kernel starts init without them when
 * the initramfs has no /dev/console. */
static void ensure_stdio(void)
{
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD) < 0) {
      int n = open("/dev/console", O_RDWR | O_NOCTTY);
      if (n < 0)
        n = open("/dev/null", O_RDWR);
      if (n >= 0 && n != fd) {
        dup2(n, fd);
        close(n);
      }
    }
}

static int read_cmdline(struct init_options *o, struct isola_error **err)
{
  _cleanup_free_ char *cmdline = NULL;
  int r = read_file_at(AT_FDCWD, "/proc/cmdline", 65536, &cmdline, NULL);
  if (r < 0)
    return isola_fail(err, -r, "cannot read /proc/cmdline");
  options_parse_cmdline(o, cmdline);
  return 0;
}

static int connect_host(const struct init_options *o, int *fd, struct isola_error **err)
{
  if (o->test_mode)
    return channel_connect_unix(o->socket_path, fd, err);
  int r = 0;
  for (int i = 0; i < CONNECT_TRIES; i++) {
    isola_error_free(err);
    if ((r = channel_connect_vsock(ISOLA_GUEST_HOST_CID, o->port, fd, err)) == 0)
      return 0;
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
  }
  return r;
}

static int hello(struct channel *ch, struct isola_error **err)
{
  struct isola_guest_hello h;
  isola_guest_put_u32(&h.version, ISOLA_GUEST_ABI_VERSION);
  isola_guest_put_u32(&h.flags, 0);
  channel_queue(ch, ISOLA_GUEST_HELLO, &h, sizeof(h));
  struct frame f;
  int r = channel_wait_frame(ch, &f, HOST_TIMEOUT_MS, err);
  if (r < 0)
    return r;
  if (f.type != ISOLA_GUEST_HELLO)
    return isola_failx(err, EPROTO, "protocol error: expected HELLO, got frame type %u", f.type);
  uint32_t v = isola_guest_get_u32(f.data);
  if (v != ISOLA_GUEST_ABI_VERSION)
    return isola_failx(err, EPROTONOSUPPORT, "the host speaks version %u, this guest version %u", v,
                       ISOLA_GUEST_ABI_VERSION);
  return 0;
}

static int receive_config(struct channel *ch, struct guest_config *cfg, struct isola_error **err)
{
  struct frame f;
  int r = channel_wait_frame(ch, &f, HOST_TIMEOUT_MS, err);
  if (r < 0)
    return r;
  if (f.type != ISOLA_GUEST_PROCESS)
    return isola_failx(err, EPROTO, "protocol error: expected PROCESS, got frame type %u", f.type);
  return guest_config_parse((const char *) f.data, f.length, cfg, err);
}

/* Everything between the PROCESS message and the start of the process. */
static int setup_container(const struct guest_config *cfg, const struct init_options *o,
                           struct isola_error **err)
{
  int r;
  bool switch_root = !o->test_mode || (cfg->has_root && cfg->root.source);
  if (switch_root) {
    if ((r = guest_root_mount(cfg, o, err)) < 0)
      return r;
    debug_say("root mounted");
    if (!o->test_mode) /* init's own /dev, /proc and /sys are not the container's */
      for (const char *const *m = (const char *const[]){"/dev", "/sys", "/proc", NULL}; *m; m++)
        umount2(*m, MNT_DETACH);
    if ((r = guest_root_switch(err)) < 0 || (r = guest_mount_container(cfg, o->test_mode, err)) < 0)
      return r;
    debug_say("in the container's root");
  }
  if (cfg->hostname && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
    return isola_fail(err, errno, "cannot set the hostname \"%s\"", cfg->hostname);
  if (cfg->domainname && setdomainname(cfg->domainname, strlen(cfg->domainname)) < 0)
    return isola_fail(err, errno, "cannot set the domain name \"%s\"", cfg->domainname);
  return 0;
}

/* Report a failure of init itself: on the console, and to the host when it still listens. */
static _Noreturn void fail(const struct init_options *o, struct channel *ch,
                           struct isola_error *err)
{
  const char *msg = err && err->msg ? err->msg : "failed";
  say("%s", msg);
  if (ch && ch->fd >= 0 && !ch->eof) {
    size_t n = strnlen(msg, ISOLA_GUEST_MAX_ERROR);
    channel_queue(ch, ISOLA_GUEST_ERROR, msg, (uint32_t) n);
    channel_queue_u32(ch, ISOLA_GUEST_EXIT, ISOLA_GUEST_EXIT_INTERNAL);
    channel_linger(ch, ISOLA_GUEST_LINGER_SECONDS * 1000);
  }
  power_off(o, ISOLA_GUEST_EXIT_INTERNAL);
}

int main(int argc, char **argv)
{
  /* The kernel hands init the command line words it does not know ("noxsave"): argv means
   * nothing here. */
  (void) argc;
  (void) argv;
  struct init_options opts = {.port = ISOLA_GUEST_VSOCK_PORT};
  struct isola_error *err = NULL;
  const char *sock = getenv("ISOLA_INIT_SOCKET");
  if (sock && *sock) {
    opts.test_mode = true;
    opts.socket_path = xstrdup(sock);
  }
  if (getpid() != 1) {
    ensure_stdio();
    say("must run as PID 1 (of a VM, or of a PID namespace with ISOLA_INIT_SOCKET set)");
    options_clear(&opts);
    return ISOLA_GUEST_EXIT_INTERNAL;
  }

  /* Every signal waits in the signalfd; the process starts with an empty mask again. */
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  sigset_t handled;
  sigemptyset(&handled);
  static const int forwarded[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
    sigaddset(&handled, forwarded[i]);
  int sigfd = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    isola_fail(&err, errno, "signalfd");
    fail(&opts, NULL, err);
  }

  if (opts.test_mode) {
    ensure_stdio();
    /* Our own namespaces, so that nothing we mount or name reaches the host. */
    if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC) < 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
      isola_fail(&err, errno, "cannot make private namespaces for test mode");
      fail(&opts, NULL, err);
    }
  } else {
    if (guest_mount_early(&err) < 0)
      fail(&opts, NULL, err);
    ensure_stdio();
    opts.root_source = xstrdup("/dev/vda");
    if (read_cmdline(&opts, &err) < 0)
      fail(&opts, NULL, err);
  }
  debug = opts.debug;

  int fd;
  if (connect_host(&opts, &fd, &err) < 0)
    fail(&opts, NULL, err);
  struct channel ch;
  channel_init(&ch, fd);
  debug_say("connected");

  /* More processes in the container (isola exec) come as connections to us; in test mode the
   * socket is bound before we enter the container's root, where the host could not reach it. */
  int exec_fd = -1;
  const char *exec_sock = getenv("ISOLA_INIT_EXEC_SOCKET");
  if ((opts.test_mode
           ? (exec_sock && *exec_sock ? channel_listen_unix(exec_sock, &exec_fd, &err) : 0)
           : channel_listen_vsock(ISOLA_GUEST_EXEC_PORT, &exec_fd, &err)) < 0) {
    say("exec is not available: %s", err->msg); /* the container runs all the same */
    isola_error_free(&err);
  }

  struct guest_config cfg;
  if (hello(&ch, &err) < 0 || receive_config(&ch, &cfg, &err) < 0)
    fail(&opts, &ch, err);
  if (setup_container(&cfg, &opts, &err) < 0 || guest_config_resolve_user(&cfg, &err) < 0)
    fail(&opts, &ch, err);
  if (cfg.pids_limit) {
    if (opts.test_mode)
      isola_failx(&err, ENOTSUP, "--pids-limit needs a VM (test mode has no cgroup of its own)");
    if (err || guest_limit_pids(cfg.pids_limit, &err) < 0)
      fail(&opts, &ch, err);
  }

  struct guest_child child;
  if (guest_process_spawn(&cfg, &child, &err) < 0)
    fail(&opts, &ch, err);
  channel_queue_u32(&ch, ISOLA_GUEST_STARTED, (uint32_t) child.pid);
  debug_say("process %d started", (int) child.pid);

  int status = guest_supervise(&ch, &child, sigfd, exec_fd, true, &err);
  if (status < 0) {
    if (ch.eof)
      power_off(&opts, ISOLA_GUEST_EXIT_INTERNAL); /* nobody left to tell */
    fail(&opts, &ch, err);
  }
  debug_say("process exited with status %d", status);
  channel_linger(&ch, ISOLA_GUEST_LINGER_SECONDS * 1000);
  guest_config_clear(&cfg);
  channel_close(&ch);
  options_clear(&opts);
  power_off(&opts, status);
}
