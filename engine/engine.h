/* The containers of the `isola` CLI (docker-like): records in the store, a config.json made from
 * the image and the flags, the rootfs as an overlay of the image's cached layers, and a monitor
 * that runs the container through the runtime library, keeps its output and its exit status.
 *
 * Per container, under STORE/containers/ID/:
 *   container.json  the record (replaced atomically; read without locks)
 *   image           the image's manifest digest (keeps its blobs from prune)
 *   bundle/         config.json and rootfs/ (the overlay mount point)
 *   upper/, work/   the overlay's writable layer
 *   stdout.log, stderr.log  everything the container wrote, byte for byte, one file per stream
 *   hosts, hostname, resolv.conf  bound into the container
 * The runtime's state (pid, cgroups) lives in the run root (--run-root), as isola-runtime's.
 *
 * The monitor is the parent of the container's init: `isola run` is the monitor in the
 * foreground; with -d a daemonized child is. It relays stdio, records the exit status, deletes
 * the runtime state, unmounts the rootfs and, with --rm, removes the record.
 */
#pragma once

#include "container.h"
#include "image.h"

#include <stdint.h>

enum isolation { ISOLATION_PROCESS, ISOLATION_VM };
/* A VM has 18 device interrupts: rng, the image disk, vsock and one per volume, with room left. */
#define ISOLA_VM_MAX_VOLUMES 12

struct volume {
  char *host, *ctr;
  bool readonly;
};

struct run_request {
  const char *image;
  char **cmd;             /* may be empty: the image's Cmd */
  const char *entrypoint; /* NULL: the image's; "": none */
  char **env;             /* K=V (or K: taken from our environment) */
  const char *workdir, *user, *name, *hostname;
  struct volume *volumes;
  size_t n_volumes;
  char **tmpfs;
  bool read_only, interactive, tty, rm, detach, network_host;
  bool seccomp_unconfined; /* --security-opt seccomp=unconfined */
  int64_t memory;          /* bytes, 0 = none */
  int64_t cpu_milli;       /* 1000 = one CPU, 0 = none */
  int64_t pids_limit;
  enum isolation isolation;
};

struct engine {
  struct image_store *store;
  const char *run_root;
};

/* Exit statuses as docker's. */
#define EXIT_ENGINE 125
#define EXIT_CANNOT_INVOKE 126
#define EXIT_NOT_FOUND 127

/* ---- records (record.c) ---- */
enum ctr_status { CTR_CREATED, CTR_RUNNING, CTR_EXITED };
struct ctr_record {
  char *id, *name, *image, *image_id, *created, *started, *finished;
  char **command;
  enum ctr_status status;
  int exit_code;
  pid_t monitor_pid;
  unsigned long long monitor_start;
  bool rm, tty;
  char *stop_signal;
  enum isolation isolation;
  pid_t vmm_pid; /* --isolation=vm: the VM's monitor process */
  unsigned long long vmm_start;
};
void ctr_record_free(struct ctr_record *r);
static inline void ctr_record_freep(struct ctr_record **r)
{
  if (*r)
    ctr_record_free(*r);
}
#define _cleanup_record_ _cleanup_(ctr_record_freep)
int ctr_record_write(struct engine *e, const struct ctr_record *r, struct isola_error **err);
int ctr_record_read(struct engine *e, const char *id, struct ctr_record **out,
                    struct isola_error **err);
/* The status with a dead monitor taken into account (a "running" record whose monitor is gone
 * has exited; its status is unknown: exit code -1). */
enum ctr_status ctr_record_live_status(const struct ctr_record *r);
const char *ctr_status_name(enum ctr_status s);
/* Find a container by full id, unique id prefix or name. ENOENT names it. */
int ctr_find(struct engine *e, const char *what, struct ctr_record **out, struct isola_error **err);
/* Every record, newest first. */
int ctr_list(struct engine *e, struct ctr_record ***out, size_t *n, struct isola_error **err);
void ctr_list_free(struct ctr_record **v, size_t n);
char *ctr_dir(struct engine *e, const char *id); /* "STORE/containers/ID" */
void engine_now(char out[40]);                   /* RFC 3339 with nanoseconds, UTC */

/* ---- run (run.c, spec.c, monitor.c) ---- */
/* An OCI mount object; opts ends at its first NULL (may be NULL). */
struct json_object *engine_mount_json(const char *dest, const char *type, const char *src,
                                      const char *const *opts);
/* Build config.json for the image and request (spec.c). `rootfs` is the mounted rootfs, used to
 * resolve a user name through its /etc/passwd and /etc/group. */
int engine_make_spec(const struct run_request *req, const struct image_config *ic, const char *id,
                     const char *rootfs, const char *ctr_dir, struct json_object **out,
                     struct isola_error **err);
/* Run a container. In the foreground, *status is its exit status (or 125/126/127 as docker);
 * detached, the id is printed by the caller and the function returns once it runs. */
int engine_run(struct engine *e, const struct run_request *req, int *status, char **id_out,
               struct isola_error **err);
/* Find an image, loading the embedded default or pulling when it is not in the store. */
int engine_find_image(struct engine *e, const char *name, struct image_entry *out,
                      struct isola_error **err);

/* ---- VM containers (vm.c) ---- */
/* Run the container in a microVM: isola-vmm boots the guest kernel with isola-init and the
 * image's disk (`root_source`), and this process speaks the guest protocol with it: relays
 * stdio (and keeps the logs), forwards signals, returns the exit status in *status. `notify`
 * runs once the process has started. Blocks until the VM is gone. The kernel is $ISOLA_KERNEL or
 * /var/cache/isola/kernel/vmlinux; isola-vmm and the initramfs are found next to our binary. */
int engine_vm_run(struct engine *e, struct ctr_record *rec, const struct run_request *req,
                  struct json_object *spec, const char *root_source, const char *cdir,
                  bool foreground, void (*notify)(void *), void *notify_arg, int *status,
                  struct isola_error **err);

/* The directory of a VM container's sockets (its monitor's vsock socket and the guest's
 * connections to us), the only host path its jailed monitor can reach. malloc'd. */
char *engine_vm_dir(const char *id);
/* One more process in a running VM container, through guest-init's exec port (vm.c). */
struct exec_request;
int engine_vm_exec(struct engine *e, const struct ctr_record *rec, const struct exec_request *x,
                   int *status, struct isola_error **err);

/* ---- other verbs (ops.c) ---- */
int engine_kill(struct engine *e, const char *what, int sig, struct isola_error **err);
/* Stop signal, then SIGKILL after `timeout` seconds. */
int engine_stop(struct engine *e, const char *what, int timeout, struct isola_error **err);
/* Wait until it exits; its exit status in *status. */
int engine_wait(struct engine *e, const char *what, int *status, struct isola_error **err);
/* Remove an exited container (or, with force, kill a running one first). */
int engine_rm(struct engine *e, const char *what, bool force, struct isola_error **err);
/* Copy its output to fd 1 and 2; with follow, until it exits. */
int engine_logs(struct engine *e, const char *what, bool follow, struct isola_error **err);
struct exec_request {
  char **args, **env; /* env: K=V added to the container's */
  const char *workdir, *user;
  bool tty, interactive, detach;
};
/* Run a command in a running container (stdio inherited; a tty relayed). *status as run's. */
int engine_exec(struct engine *e, const char *what, const struct exec_request *x, int *status,
                struct isola_error **err);
/* uid and gid of "user[:group]" (names looked up in the rootfs's /etc/passwd, /etc/group). */
int engine_user_ids(const char *spec, const char *rootfs, uint32_t *uid, uint32_t *gid,
                    struct isola_error **err);
