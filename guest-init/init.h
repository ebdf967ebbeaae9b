/* guest-init's internal header: the pieces of the PID 1 that runs inside each isola microVM.
 *
 * Order of calls (init.c): options_from_*() → guest_mount_early() (VM only) → channel_connect_*()
 * → hello exchange → guest_config_parse() of the PROCESS frame → guest_root_mount() →
 * guest_root_switch() → guest_mount_container() → guest_process_spawn() → guest_supervise() →
 * guest_power_off(). Functions follow lib/util.h's contract: >= 0 on success, a negative errno
 * and *err set on failure; nothing here prints except init.c.
 */
#pragma once

#include "isola_guest_abi.h"
#include "seccomp_filter.h"
#include "spec.h"
#include "util.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- how this init was started (init.c) ---- */
struct init_options {
  bool test_mode;    /* ISOLA_INIT_SOCKET set: a unix socket, no disks, never reboot */
  char *socket_path; /* test mode */
  uint32_t port;     /* vsock port */
  char *root_source; /* isola.root= */
  char *root_fstype; /* isola.rootfstype= */
  bool debug;        /* isola.debug=1 */
};
/* Read isola.* keys from a kernel command line; unknown words are ignored. */
void options_parse_cmdline(struct init_options *o, const char *cmdline);
void options_clear(struct init_options *o);

/* ---- the PROCESS message (config.c) ---- */
struct guest_root {
  char *source;   /* "/dev/vda" or a directory */
  char *fstype;   /* "erofs", "ext4" or NULL for auto */
  char *writable; /* "tmpfs", "none" or a block device */
};

struct guest_config {
  struct oci_process process;
  char *hostname, *domainname;
  bool has_root;
  struct guest_root root;
  struct oci_mount *mounts;
  size_t n_mounts;
  char *user; /* "user[:group]" to resolve in the container's root, overriding process.user */
  int64_t pids_limit;           /* resources.pids.limit, 0 for none */
  struct seccomp_prog *seccomp; /* the container's profile, compiled; NULL for none */
  bool detach;                  /* exec -d: started, then on its own (exec connections only) */
};
/* Parse and validate the PROCESS payload (not NUL-terminated). On failure *cfg is cleared. */
int guest_config_parse(const char *text, size_t len, struct guest_config *cfg,
                       struct isola_error **err);
void guest_config_clear(struct guest_config *cfg);
/* Resolve cfg->user (when given) against /etc/passwd and /etc/group of the root we are in now
 * (the container's) into process.user. */
int guest_config_resolve_user(struct guest_config *cfg, struct isola_error **err);

/* ---- the connection to the host (channel.c) ---- */
struct channel {
  int fd;
  bool eof; /* the host closed its side */
  /* receiving: the header, then the payload of the frame being read */
  uint8_t hdr[ISOLA_GUEST_HEADER_SIZE];
  size_t hdr_len;
  uint32_t type, length;
  uint8_t *payload; /* length + 1 bytes, NUL-terminated; owned by the channel */
  size_t payload_len, payload_cap;
  /* sending: a queue of whole frames, written as the socket accepts them */
  uint8_t *out;
  size_t out_off, out_len, out_cap;
};

struct frame {
  uint32_t type, length;
  const uint8_t *data; /* valid until the next channel_receive() */
};

int channel_connect_vsock(uint32_t cid, uint32_t port, int *fd, struct isola_error **err);
int channel_connect_unix(const char *path, int *fd, struct isola_error **err);
/* A non-blocking listening socket for exec connections: any CID on port, or a unix path. */
int channel_listen_vsock(uint32_t port, int *fd, struct isola_error **err);
int channel_listen_unix(const char *path, int *fd, struct isola_error **err);
/* Take ownership of a connected socket and make it non-blocking. */
void channel_init(struct channel *ch, int fd);
void channel_close(struct channel *ch);
/* Write n bytes of fresh memory from user mode before the kernel copies into it (channel.c). */
void prefault(void *p, size_t n);
/* Append a frame to the send queue (the caller bounds how much it queues). */
void channel_queue(struct channel *ch, uint32_t type, const void *data, uint32_t len);
void channel_queue_u32(struct channel *ch, uint32_t type, uint32_t value);
/* Read at most ISOLA_GUEST_MAX_DATA bytes from fd into a new frame of `type`. Returns the bytes
 * read (no frame for 0: end of file) or -errno (-EAGAIN: nothing to read). */
ssize_t channel_queue_from_fd(struct channel *ch, uint32_t type, int fd);
size_t channel_pending(const struct channel *ch);
/* Write what the socket takes now; 0 or -errno (-EPIPE when the host is gone). */
int channel_flush(struct channel *ch);
/* Read what is available: 1 and *f when a whole frame arrived, 0 when more bytes are needed (or
 * at end of stream: ch->eof), -EPROTO with *err for a frame header that breaks the ABI. */
int channel_receive(struct channel *ch, struct frame *f, struct isola_error **err);
/* Block (up to timeout_ms, -1 forever) for the next frame, flushing the send queue meanwhile.
 * -EPIPE when the host closes first, -ETIMEDOUT. */
int channel_wait_frame(struct channel *ch, struct frame *f, int timeout_ms,
                       struct isola_error **err);
/* Block until the send queue is written (or the host is gone, or timeout_ms passes). */
int channel_drain(struct channel *ch, int timeout_ms);
/* The end of a conversation: send the queue, close our side and let the host read everything
 * and close first (what it still sends is dropped), so that no frame in flight is lost when the
 * VM goes away. At most timeout_ms. */
int channel_linger(struct channel *ch, int timeout_ms);

/* ---- mounts (mounts.c) ---- */
/* VM only, before anything else: /proc, /sys and /dev (devtmpfs) for init itself. */
int guest_mount_early(struct isola_error **err);
/* Mount the container's root at GUEST_NEWROOT (lower, overlay upper), per cfg->root or the
 * defaults in opts. */
int guest_root_mount(const struct guest_config *cfg, const struct init_options *opts,
                     struct isola_error **err);
/* Make GUEST_NEWROOT "/": pivot_root, or move + chroot from an initramfs. */
int guest_root_switch(struct isola_error **err);
/* In the new root: /proc, /sys, /dev and its nodes, /dev/pts, /dev/shm, /dev/mqueue, /run,
 * cgroup2 (VM only), then cfg->mounts. */
int guest_mount_container(const struct guest_config *cfg, bool test_mode, struct isola_error **err);
#define GUEST_STAGE "/run"
#define GUEST_NEWROOT GUEST_STAGE "/root"

/* VM only, in the container's root: a cgroup "isola" with pids.max = limit, and us (PID 1) in it,
 * so that every process of the container, exec'd ones too, counts. */
int guest_limit_pids(int64_t limit, struct isola_error **err);

/* ---- the container process (process.c) ---- */
struct guest_child {
  pid_t pid;
  int stdin_fd;  /* write end of the process's stdin, non-blocking */
  int stdout_fd; /* read ends, non-blocking */
  int stderr_fd;
  int tty; /* with process.terminal: the terminal's master (= stdout_fd; stdin_fd is a
              copy of it, stderr_fd is -1), else -1 */
};
/* Fork the process with pipes as stdio, or with a new pseudo-terminal as its controlling
 * terminal and stdio when process.terminal is set; the child applies limits, identity and
 * capabilities and execs, or exits 127 (not found) / 126 (cannot execute) with one line on its
 * stderr. Call with every signal blocked: the child restores an empty mask. */
int guest_process_spawn(const struct guest_config *cfg, struct guest_child *child,
                        struct isola_error **err);

/* ---- relaying and reaping until the process ends (supervise.c) ---- */
/* Relay stdio and signals between the channel and the child, reap every zombie, and when the
 * process exits kill what it left behind, send the rest of its output and then EXIT. Meanwhile
 * each connection accepted on exec_fd (a listening socket, or -1) is one more process in the
 * container (isola_guest_abi.h, "Exec"). `kill_all`: we are PID 1 of our namespace, so kill(-1)
 * reaches only the container. Returns the exit status sent, or -EPIPE when the host went away
 * first. Closes exec_fd. */
int guest_supervise(struct channel *ch, struct guest_child *child, int sigfd, int exec_fd,
                    bool kill_all, struct isola_error **err);
