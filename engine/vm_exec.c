/* isola exec into a VM container: one more process in the running container, through
 * guest-init's exec port (isola_guest_abi.h, "Exec") by way of the monitor's vsock socket. */
#include "vm.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The process for an exec: the container's own (config.json), with the command, env, workdir,
 * user and terminal of the request. */
static int exec_process(struct engine *e, const struct ctr_record *rec,
                        const struct exec_request *x, struct json_object **out,
                        struct isola_error **err)
{
  _cleanup_free_ char *path = xasprintf("containers/%s/bundle/config.json", rec->id), *text = NULL;
  size_t len = 0;
  int r = read_file_at(e->store->rootfd, path, 16 << 20, &text, &len);
  if (r < 0)
    return isola_fail(err, -r, "cannot read \"%s/%s\"", e->store->root, path);
  _cleanup_json_ struct json_object *spec = json_tokener_parse(text);
  struct json_object *proc = spec ? json_object_object_get(spec, "process") : NULL;
  if (!proc)
    return isola_failx(err, EINVAL, "\"%s/%s\" has no process", e->store->root, path);
  struct json_object *args = json_object_new_array();
  for (char **a = x->args; *a; a++)
    json_object_array_add(args, json_object_new_string(*a));
  json_object_object_add(proc, "args", args);
  struct json_object *env = json_object_object_get(proc, "env");
  if (!env) {
    env = json_object_new_array();
    json_object_object_add(proc, "env", env);
  }
  for (char **kv = x->env; kv && *kv; kv++) {
    size_t k = strcspn(*kv, "=");
    if (!(*kv)[k])
      continue;
    size_t i = 0;
    for (; i < json_object_array_length(env); i++) {
      const char *have = json_object_get_string(json_object_array_get_idx(env, i));
      if (!strncmp(have, *kv, k) && have[k] == '=')
        break;
    }
    if (i < json_object_array_length(env))
      json_object_array_put_idx(env, i, json_object_new_string(*kv));
    else
      json_object_array_add(env, json_object_new_string(*kv));
  }
  if (x->workdir)
    json_object_object_add(proc, "cwd", json_object_new_string(x->workdir));
  json_object_object_add(proc, "terminal", json_object_new_boolean(x->tty));
  json_object_object_del(proc, "consoleSize");
  struct json_object *msg = json_object_new_object();
  json_object_object_add(msg, "process", json_object_get(proc));
  /* Resolved in there: the container's /etc/passwd may have changed since it started. */
  if (x->user)
    json_object_object_add(msg, "user", json_object_new_string(x->user));
  if (x->detach)
    json_object_object_add(msg, "detach", json_object_new_boolean(true));
  *out = msg;
  return 0;
}

/* A connection to guest-init's exec port: through the monitor's socket ("CONNECT 1025"), or
 * straight to init when tests run it without a VM. */
static int exec_connect(const struct ctr_record *rec, struct isola_error **err)
{
  _cleanup_free_ char *vdir = engine_vm_dir(rec->id), *uds = xasprintf("%s/vsock", vdir);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", uds);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
    return isola_fail(err, errno, "cannot reach the VM of container %s (\"%s\")", rec->name, uds);
  const char *launcher = getenv("ISOLA_VM_LAUNCHER");
  if (launcher && *launcher)
    return steal_fd(&fd);
  char line[64];
  int n = snprintf(line, sizeof(line), "CONNECT %u\n", ISOLA_GUEST_EXEC_PORT);
  if (write_all(fd, line, (size_t) n) < 0)
    return isola_fail(err, errno, "cannot talk to the VM monitor of container %s", rec->name);
  /* The monitor answers one line: "OK <port>\n", or closes when nobody listens there. */
  size_t got = 0;
  while (got < sizeof(line) - 1) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) <= 0 || read(fd, line + got, 1) != 1)
      break;
    if (line[got++] == '\n')
      break;
  }
  line[got] = 0;
  if (strncmp(line, "OK ", 3))
    return isola_failx(err, ECONNREFUSED,
                       "the VM of container %s does not take exec connections (its init is not "
                       "listening)",
                       rec->name);
  return steal_fd(&fd);
}

int engine_vm_exec(struct engine *e, const struct ctr_record *rec, const struct exec_request *x,
                   int *status, struct isola_error **err)
{
  *status = EXIT_ENGINE;
  _cleanup_json_ struct json_object *msg = NULL;
  int r = exec_process(e, rec, x, &msg, err);
  if (r < 0)
    return r;
  sigset_t set, old;
  sigemptyset(&set);
  int fwd[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
  for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
    sigaddset(&set, fwd[i]);
  sigprocmask(SIG_BLOCK, &set, &old);
  struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
  sigaction(SIGPIPE, &ign, &old_pipe);
  _cleanup_close_ int conn = exec_connect(rec, err), sigfd = -1, in_fd = -1;
  struct termios saved_tio;
  bool restore_tio = false;
  if (conn < 0) {
    r = conn;
    goto out;
  }
  sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  in_fd = x->interactive && !x->detach ? fcntl(0, F_DUPFD_CLOEXEC, 3) : -1;
  bool tty = x->tty && terminal_raw(msg, &saved_tio, &restore_tio);
  struct vm_session s = {.conn = conn,
                         .in_fd = in_fd,
                         .out_fd = 1,
                         .err_fd = 2,
                         .log_out = -1,
                         .log_err = -1,
                         .sigfd = sigfd,
                         .in_open = in_fd >= 0,
                         .tty = tty,
                         .credit = ISOLA_GUEST_STDIN_WINDOW,
                         .status = -1};
  r = vm_converse(&s, msg, NULL, NULL, err);
  if (r == 0)
    *status = s.status;
out:
  if (restore_tio)
    tcsetattr(0, TCSANOW, &saved_tio);
  sigaction(SIGPIPE, &old_pipe, NULL);
  sigprocmask(SIG_SETMASK, &old, NULL);
  return r;
}
