/* exec: a new process in a running container's namespaces and cgroup. */
#include "container.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

struct exec_args {
  const struct oci_process *proc;
  const struct seccomp_prog *seccomp;
  int sync_fd;
  int console_fd;
  int preserve_fds;
  bool in_user_ns;
  bool has_personality;
  unsigned long personality;
  int root_fd;     /* -1, or the container's root when it has no mount namespace to join */
  int listener_fd; /* -1, or a connected seccomp listener socket */
  const char *listener_message;
};

static int exec_main(void *arg)
{
  struct exec_args *a = arg;
  struct isola_error *err = NULL;
  _cleanup_free_ char *exe = NULL;
  _cleanup_free_ char *go = NULL;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (sync_expect_data(a->sync_fd, SYNC_GO, &go, &err) < 0)
    goto fail;
  if (a->root_fd >= 0 && (fchdir(a->root_fd) < 0 || chroot(".") < 0)) {
    isola_fail(&err, errno, "cannot enter the container's root");
    goto fail;
  }
  if (a->proc->terminal) {
    if (terminal_setup(a->console_fd, a->proc, false, &err) < 0)
      goto fail;
    close(a->console_fd);
  } else if (setsid() < 0 && errno != EPERM) {
    /* not fatal: a shell may already have made us a group leader */
  }
  if (process_set_limits(a->proc, &err) < 0 || process_find_exe(a->proc, &exe, &err) < 0)
    goto fail;
  struct process_exec pe = {.proc = a->proc,
                            .seccomp = a->seccomp,
                            .seccomp_listener_sock = a->listener_fd,
                            .seccomp_listener_state = a->listener_message,
                            .in_user_ns = a->in_user_ns,
                            .preserve_fds = a->preserve_fds,
                            .has_personality = a->has_personality,
                            .personality = a->personality};
  process_exec_final(&pe, exe, &err);
fail:
  sync_send_error(a->sync_fd, err);
  return err && err->code == ENOENT ? 127 : 126;
}

int container_exec_default_process(const struct runtime_opts *ro, const char *id,
                                   struct oci_process *out, struct isola_error **err)
{
  _cleanup_close_ int dirfd = -1;
  int r = state_dir_open(ro->root, id, false, &dirfd, err);
  if (r < 0)
    return r;
  _cleanup_spec_ struct oci_spec *spec = NULL;
  if ((r = state_load_config(dirfd, &spec, err)) < 0)
    return r;
  *out = spec->process;
  memset(&spec->process, 0, sizeof(spec->process));
  /* What exec must not inherit from the container's own process. */
  out->terminal = false;
  out->has_oom_score_adj = false;
  return 0;
}

int container_exec(const struct runtime_opts *ro, const struct exec_opts *eo, int *status,
                   struct isola_error **err)
{
  _cleanup_close_ int dirfd = -1;
  _cleanup_state_ struct container_state *st = NULL;
  _cleanup_spec_ struct oci_spec *spec = NULL;
  int r = state_dir_open(ro->root, eo->id, true, &dirfd, err);
  if (r < 0)
    return r;
  if ((r = state_read(dirfd, ro->root, eo->id, &st, err)) < 0 ||
      (r = state_load_config(dirfd, &spec, err)) < 0)
    return r;
  enum container_status s = state_status(dirfd, st);
  if (s != STATUS_RUNNING && s != STATUS_CREATED)
    return isola_failx(err, EINVAL, "container \"%s\" is %s: cannot exec in it", eo->id,
                       state_status_name(s));
  const struct oci_process *p = eo->process;
  if ((r = process_check_labels(p, err)) < 0)
    return r;
  if (p->terminal && !eo->console_socket && eo->detach)
    return isola_failx(err, EINVAL, "--tty with --detach needs --console-socket");

  struct seccomp_prog prog = {0};
  if (spec->seccomp && (r = seccomp_compile(spec->seccomp, &prog, err)) < 0)
    return r;

  sigset_t set, old;
  block_forwarded_signals(&set, &old);
  int sync[2] = {-1, -1}, console[2] = {-1, -1};
  _cleanup_close_ int console_fd = -1, root_fd = -1, listener_fd = -1;
  _cleanup_free_ char *listener_message = NULL;
  pid_t pid = -1;
  struct spawn_req req = {0};
  if (p->terminal) {
    if (eo->console_socket) {
      if ((r = terminal_connect(eo->console_socket, &console_fd, err)) < 0)
        goto out;
    } else if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console) < 0) {
      r = isola_fail(err, errno, "cannot create the terminal socket");
      goto out;
    } else {
      console_fd = console[1];
    }
  }
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync) < 0) {
    r = isola_fail(err, errno, "cannot create the sync socket");
    goto out;
  }
  /* Join every namespace the container has, as its init sees them; the user namespace last. */
  bool in_user_ns = false;
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < spec->n_namespaces; i++) {
      const struct oci_namespace *ns = &spec->namespaces[i];
      if ((ns->type == NS_USER) != (pass == 1))
        continue;
      _cleanup_free_ char *path =
          xasprintf("/proc/%d/ns/%s", (int) st->pid, spec_ns_proc_name(ns->type));
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        r = isola_fail(err, errno, "cannot open the container's %s namespace",
                       spec_ns_name(ns->type));
        goto out;
      }
      req.join_fds[req.n_join] = fd;
      req.join_flags[req.n_join++] = ns->type == NS_TIME ? 0 : ns->clone_flag;
      if (ns->type == NS_USER)
        in_user_ns = true;
    }
  /* The seccomp listener gets each exec'd process's notify fd too, as with runc. */
  if (prog.notify && spec->seccomp->listener_path && *spec->seccomp->listener_path) {
    if ((r = terminal_connect(spec->seccomp->listener_path, &listener_fd, err)) < 0) {
      isola_error_prefix(err, "linux.seccomp.listenerPath");
      goto out;
    }
    _cleanup_json_ struct json_object *o = state_to_oci_json(st, s);
    _cleanup_free_ char *state_json = json_to_string(o, false);
    listener_message = process_listener_message(spec, state_json);
  }
  /* No mount namespace: init was chrooted; follow it there. */
  if (!spec_find_ns(spec, NS_MOUNT)) {
    _cleanup_free_ char *root = xasprintf("/proc/%d/root", (int) st->pid);
    root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
      r = isola_fail(err, errno, "cannot open the container's root");
      goto out;
    }
  }
  if (proc_start_time(st->pid) != st->start_time) {
    r = isola_failx(err, ESRCH, "container \"%s\" exited", eo->id);
    goto out;
  }
  struct exec_args args = {.proc = p,
                           .seccomp = spec->seccomp ? &prog : NULL,
                           .sync_fd = sync[1],
                           .console_fd = console_fd,
                           .preserve_fds = eo->preserve_fds,
                           .in_user_ns = in_user_ns,
                           .has_personality = spec->has_personality,
                           .personality = spec->personality,
                           .root_fd = root_fd,
                           .listener_fd = listener_fd,
                           .listener_message = listener_message};
  req.sync_fd = sync[1];
  req.fn = exec_main;
  req.arg = &args;
  r = spawn_process(&req, sync[0], &pid, err);
  close(sync[1]);
  sync[1] = -1;
  if (r < 0)
    goto out;
  if (st->cgroup && (r = cgroup_enter(st->cgroup, pid, err)) < 0)
    goto kill;
  if ((r = sync_send_data(sync[0], SYNC_GO, "{}", 2)) < 0) {
    r = isola_fail(err, -r, "cannot reach the exec process");
    goto kill;
  }
  if ((r = sync_expect_eof(sync[0], err)) < 0)
    goto kill;
  if (eo->pid_file && (r = write_pid_file(eo->pid_file, pid, err)) < 0)
    goto kill;
  /* Let others use the container while this process runs. */
  close(dirfd);
  dirfd = -1;
  *status = 0;
  if (eo->detach)
    goto out;
  if (console[0] >= 0) {
    char buf[32];
    int fds[1], nfds = 0;
    if (recv_fds(console[0], buf, sizeof(buf), fds, 1, &nfds) < 0 || nfds != 1) {
      r = isola_failx(err, EIO, "did not receive the exec process's terminal");
      goto kill;
    }
    int ws = 0;
    terminal_relay(fds[0], pid, &set, &ws);
    close(fds[0]);
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  } else {
    *status = wait_forwarding_signals(pid, &set);
  }
  goto out;
kill:
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
out:
  for (size_t i = 0; i < req.n_join; i++)
    close(req.join_fds[i]);
  if (sync[0] >= 0)
    close(sync[0]);
  if (sync[1] >= 0)
    close(sync[1]);
  if (console[0] >= 0)
    close(console[0]);
  seccomp_prog_clear(&prog);
  sigprocmask(SIG_SETMASK, &old, NULL);
  return r;
}
