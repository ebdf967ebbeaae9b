/* The OCI lifecycle of a process-isolated container, and the pieces it is built from.
 *
 * Process model (as runc and crun): `create` clones the container's init process with its
 * new namespaces; init sets up the rootfs and the process, reports "ready" over a sync
 * socket, then blocks opening the exec fifo in the state directory. `start` opens the fifo
 * for reading, which lets init exec the user's program. The init process is the container's
 * pid for engines (--pid-file); its parent is whoever called create (a shim or conmon).
 *
 * Everything under "in the container process" runs in the cloned child: it may allocate
 * (the runtime is single-threaded) but reports failures to the parent over the sync socket.
 */
#pragma once

#include "cgroup.h"
#include "seccomp_filter.h"
#include "spec.h"

#include <signal.h>
#include <sys/types.h>

/* ---- state (state.c) ---- */
enum container_status {
  STATUS_CREATING,
  STATUS_CREATED,
  STATUS_RUNNING,
  STATUS_PAUSED,
  STATUS_STOPPED
};

struct container_state {
  char *id;
  char *bundle;
  char *root;                         /* the state root (--root) */
  pid_t pid;                          /* container init, 0 until known */
  unsigned long long start_time;      /* /proc/PID/stat field 22, guards against pid reuse */
  enum container_status saved_status; /* as written; the live one comes from state_status() */
  char *created;                      /* RFC 3339 */
  uid_t owner;
  struct json_object *annotations;
  struct cgroup *cgroup;
  bool has_exit_status;
  int exit_status;
  bool systemd_cgroup;
  bool use_terminal;
};

/* Check a container id: 1-1024 chars of [A-Za-z0-9_.+-], not "." or "..". */
int state_check_id(const char *id, struct isola_error **err);
/* Create ROOT/ID (fails with EEXIST naming the id) and return a locked O_DIRECTORY fd. */
int state_dir_create(const char *root, const char *id, int *dirfd, struct isola_error **err);
/* Open ROOT/ID, locked exclusively when `lock` ("container \"x\" does not exist" when
 * missing). */
int state_dir_open(const char *root, const char *id, bool lock, int *dirfd,
                   struct isola_error **err);
int state_write(int dirfd, const struct container_state *st, struct isola_error **err);
int state_read(int dirfd, const char *root, const char *id, struct container_state **out,
               struct isola_error **err);
void state_free(struct container_state *st);
static inline void state_freep(struct container_state **s)
{
  state_free(*s);
}
#define _cleanup_state_ _cleanup_(state_freep)
/* The live status: checks the pid (and its start time), the exec fifo and the freezer. */
enum container_status state_status(int dirfd, const struct container_state *st);
const char *state_status_name(enum container_status s);
/* The OCI state document (for `state`, hooks' stdin). */
struct json_object *state_to_oci_json(const struct container_state *st, enum container_status s);
/* Copy of config.json kept beside the state (for exec defaults, poststop hooks, update). */
int state_save_config(int dirfd, const char *text, size_t len, struct isola_error **err);
int state_load_config(int dirfd, struct oci_spec **out, struct isola_error **err);
/* Remove ROOT/ID. */
int state_dir_remove(const char *root, const char *id);
#define EXEC_FIFO "exec.fifo"

/* ---- sync between runtime and container process (sync.c) ---- */
enum sync_msg {
  SYNC_GO = 1, /* parent → child: ids mapped, cgroup joined, hooks run */
  SYNC_READY,  /* child → parent: set up, waiting on the exec fifo */
  SYNC_ERROR,  /* child → parent: an isola_error follows */
  SYNC_PID,    /* stage1 → parent: the container pid follows (int32) */
};
int sync_send(int fd, enum sync_msg msg);
/* A message with up to SYNC_MAX_DATA bytes of payload (one datagram). */
#define SYNC_MAX_DATA 65536
int sync_send_data(int fd, enum sync_msg msg, const char *data, size_t len);
/* Wait for `want` with a payload; *data is malloc'd and NUL-terminated. */
int sync_expect_data(int fd, enum sync_msg want, char **data, struct isola_error **err);
/* For exec: wait until the socket closes (the process exec'd; success) or an error arrives. */
int sync_expect_eof(int fd, struct isola_error **err);
int sync_send_pid(int fd, pid_t pid);
int sync_send_error(int fd, const struct isola_error *err);
/* Wait for `want`; an error message from the child becomes *err. */
int sync_expect(int fd, enum sync_msg want, struct isola_error **err);
int sync_recv_pid(int fd, pid_t *pid, struct isola_error **err);

/* ---- spawning a process into namespaces (spawn.c) ---- */
struct spawn_req {
  int join_fds[NS_COUNT]; /* namespaces to join, in this order (the user namespace last) */
  int join_flags[NS_COUNT];
  size_t n_join;
  int clone_flags;  /* new namespaces for the process */
  bool new_time_ns; /* unshare a time namespace with these offsets first */
  int64_t monotonic_secs, boottime_secs;
  uint32_t monotonic_nsecs, boottime_nsecs;
  int sync_fd;          /* the process's end of the sync socket */
  int (*fn)(void *arg); /* runs in the new process; its return value is the exit status */
  void *arg;
};
/* Start the process (through an intermediate when namespaces are joined, so that it is still
 * our child). Errors of the intermediate arrive as *err. */
int spawn_process(const struct spawn_req *req, int sync_parent, pid_t *pid,
                  struct isola_error **err);
/* Wait for a child, forwarding the signals we receive to it; returns the exit status as a
 * shell would (128+N for a signal). */
int wait_forwarding_signals(pid_t pid, const sigset_t *forwarded);
/* Block the signals a foreground run forwards (before the child exists). */
void block_forwarded_signals(sigset_t *set, sigset_t *old);

/* ---- capabilities (caps.c) ---- */
/* Keep capabilities across setuid (call before changing uid). */
int caps_prepare_keep(void);
/* Shrink the bounding set to `keep`; needs CAP_SETPCAP, so before the uid changes. */
int caps_drop_bounding(uint64_t keep, struct isola_error **err);
/* Fail (EPERM, naming the capability) if a set asks for one our bounding set lacks: no capset
 * could grant it. Ambient is left out, as caps_apply tolerates it. */
int caps_check_available(const struct oci_caps *caps, struct isola_error **err);
/* Set effective, permitted, inheritable, then raise ambient (after the uid change). */
int caps_apply(const struct oci_caps *caps, struct isola_error **err);

/* ---- the user process (process.c), in the container process ---- */
struct process_exec {
  const struct oci_process *proc;
  const struct seccomp_prog *seccomp; /* may be NULL */
  int seccomp_listener_sock;          /* -1, or a connected socket to pass the notify fd */
  const char *seccomp_listener_state; /* JSON sent with the notify fd */
  bool in_user_ns;                    /* setgroups may be denied in a new user namespace */
  int preserve_fds;
  bool has_personality;
  unsigned long personality;
};
/* Resolve process.args[0] through PATH of process.env (in the current root). */
int process_find_exe(const struct oci_process *p, char **out, struct isola_error **err);
/* Fail early when the process asks for a security label this host cannot give. */
int process_check_labels(const struct oci_process *p, struct isola_error **err);
bool process_apparmor_enabled(void);
/* rlimits, oom, ioprio, scheduler: things set while still privileged. */
int process_set_limits(const struct oci_process *p, struct isola_error **err);
/* user, groups, umask, cwd, no_new_privs, capabilities, seccomp, then execve. Returns only on
 * failure. */
int process_exec_final(const struct process_exec *pe, const char *exe, struct isola_error **err);
/* The message sent with the seccomp notify fd to linux.seccomp.listenerPath. */
char *process_listener_message(const struct oci_spec *spec, const char *state_json);
/* Env with HOME/PATH/TERM defaults filled in as runc does. */
char **process_build_env(const struct oci_process *p);

/* ---- rootfs (rootfs.c, mounts.c), in the container process ---- */
struct rootfs_ctx {
  const struct oci_spec *spec;
  const char *rootfs; /* absolute host path of the rootfs */
  bool new_mount_ns;
  bool in_user_ns;
  const struct cgroup *cgroup; /* for cgroup mounts */
};
/* Everything before pivot_root: propagation, bind of the rootfs, mounts, devices. */
int rootfs_prepare(const struct rootfs_ctx *ctx, struct isola_error **err);
/* pivot_root (or the no-pivot fallback), masked and read-only paths, read-only root. */
int rootfs_pivot(const struct rootfs_ctx *ctx, bool no_pivot, struct isola_error **err);
int rootfs_finalize(const struct rootfs_ctx *ctx, struct isola_error **err);
/* Mount one OCI mount below rootfs (dirfd to the rootfs), resolving the destination
 * without escaping the rootfs. */
int mount_one(const struct rootfs_ctx *ctx, int rootfd, const struct oci_mount *m, size_t index,
              struct isola_error **err);
/* Open a path below rootfd, following symlinks as if rootfd were "/" (RESOLVE_IN_ROOT), creating
 * missing components (directories, or a file as the last one when `file` is true). */
int open_in_root(int rootfd, const char *path, bool create, bool file, int flags,
                 struct isola_error **err);
/* Apply linux.sysctl (after /proc is the container's). */
int sysctl_apply(const struct oci_spec *spec, struct isola_error **err);

/* ---- users (user.c) ---- */
/* Resolve spec ("user", "uid", "user:group", "uid:gid"; NULL or "" is root) against rootfs's
 * /etc/passwd and /etc/group: sets "uid", "gid" and, without a group, "additionalGids" (the
 * groups listing the user) in the OCI user object `user`; *home is the user's home or "/".
 * A name not found there is an error. */
int user_resolve(const char *spec, const char *rootfs, struct json_object *user, char **home,
                 struct isola_error **err);

/* ---- hooks (hooks.c) ---- */
/* Run hooks of one kind with the state on stdin. `what` names them in errors. */
int hooks_run(const struct oci_hook *hooks, size_t n, const char *kind, const char *state_json,
              struct isola_error **err);

/* ---- terminal (terminal.c) ---- */
/* In the container: open a pty pair (on the container's /dev/pts), send the master to the
 * console socket fd, make the slave the controlling terminal and stdio. For the container's init
 * (not exec), /dev/console becomes that pty too. */
int terminal_setup(int console_sock, const struct oci_process *p, bool is_init,
                   struct isola_error **err);
/* Connect to a console socket path. */
int terminal_connect(const char *path, int *fd, struct isola_error **err);
/* Foreground: relay between our stdio and the master until the child exits; the (blocked)
 * forwarded signals go to the child, SIGWINCH resizes the pty. */
int terminal_relay(int master, pid_t child, const sigset_t *forwarded, int *status);

/* ---- orchestration (create.c, lifecycle.c, exec.c) ---- */
/* The annotation that chooses the isolation of one container: "process" or "vm". */
#define ISOLATION_ANNOTATION "io.isola.isolation"

struct runtime_opts {
  const char *root;
  bool systemd_cgroup;
  bool debug;
};

struct create_opts {
  const char *id;
  const char *bundle;
  const char *pid_file;
  const char *console_socket;
  int preserve_fds;
  bool no_pivot;
  bool no_new_keyring;
  bool detach; /* run only */
  bool keep;   /* run only */
};

int container_create(const struct runtime_opts *ro, const struct create_opts *co,
                     struct isola_error **err);
int container_start(const struct runtime_opts *ro, const char *id, struct isola_error **err);
/* start with the state directory already open and locked (run). */
int container_start_locked(int dirfd, struct container_state *st, const struct oci_spec *spec,
                           struct isola_error **err);
/* create + start; in the foreground waits and returns the exit status (0-255) in *status. */
int container_run(const struct runtime_opts *ro, const struct create_opts *co, int *status,
                  struct isola_error **err);
int container_kill(const struct runtime_opts *ro, const char *id, int sig, bool all,
                   struct isola_error **err);
int container_delete(const struct runtime_opts *ro, const char *id, bool force,
                     struct isola_error **err);
int container_state_json(const struct runtime_opts *ro, const char *id, char **out,
                         struct isola_error **err);
int container_pause(const struct runtime_opts *ro, const char *id, bool pause,
                    struct isola_error **err);
int container_pids(const struct runtime_opts *ro, const char *id, pid_t **pids, size_t *n,
                   struct isola_error **err);
int container_update(const struct runtime_opts *ro, const char *id, const struct oci_resources *res,
                     struct json_object *res_json, struct isola_error **err);

struct exec_opts {
  const char *id;
  struct oci_process *process; /* filled from --process or from flags + the container config */
  const char *console_socket;
  const char *pid_file;
  int preserve_fds;
  bool detach;
};
/* Build the exec process from the container's config when no --process file is given. */
int container_exec_default_process(const struct runtime_opts *ro, const char *id,
                                   struct oci_process *out, struct isola_error **err);
int container_exec(const struct runtime_opts *ro, const struct exec_opts *eo, int *status,
                   struct isola_error **err);

/* A listing of every container under root (for `list`). */
struct container_info {
  char *id, *bundle, *created, *status;
  pid_t pid;
  uid_t owner;
};
int container_list(const struct runtime_opts *ro, struct container_info **out, size_t *n,
                   struct isola_error **err);
void container_info_free(struct container_info *c, size_t n);

/* Shared helpers (lifecycle.c) */
int write_pid_file(const char *path, pid_t pid, struct isola_error **err);
/* Kill the container's processes, remove its cgroups, run poststop hooks (when spec is given)
 * and remove its state directory. The caller holds the state lock. Used by delete and on failure.
 */
int container_destroy(const char *root, const char *id, struct container_state *st,
                      const struct oci_spec *spec, struct isola_error **err);
