/* isola_guest_abi.h: the wire protocol between the host (runtime, VMM) and guest-init, the PID 1
 * inside each isola microVM. Self-contained and versioned: plain C11, no project includes, shared
 * by the VMM, the runtime and guest-init; a Python twin lives in tests/integration/guest_abi.py.
 *
 * Transport. One AF_VSOCK stream connection: guest-init connects to the host (CID 2) on port
 * ISOLA_GUEST_VSOCK_PORT as soon as the guest is up. The VMM forwards it Firecracker-style to the
 * unix socket "<uds_path>_<port>" on the host, where the runtime listens. (In test mode guest-init
 * connects to a unix socket instead, with the same framing: nothing below depends on vsock.)
 *
 * One connection, multiplexed frames, rather than one connection per stream: a single accept on
 * the host, one ordering (every STDOUT/STDERR byte is sent before EXIT, so the host never races
 * the exit status against the last output), and one place for limits. Flow control is kept to
 * one rule per direction:
 *  - guest → host (STDOUT, STDERR): TCP-like backpressure. guest-init stops reading the
 *    process's pipes while its send queue is full, so a host that reads slowly only slows the
 *    process down. The host must keep reading the connection while it writes to it.
 *  - host → guest (STDIN): credit. The host may have at most ISOLA_GUEST_STDIN_WINDOW bytes of
 *    STDIN payload not yet acknowledged by STDIN_ACK; guest-init always reads the connection, so
 *    SIGNAL frames are never stuck behind stdin that the process does not read. A host that
 *    exceeds the window is a protocol error.
 *
 * Framing. Every frame is an 8-byte header followed by `length` bytes of payload:
 *     u32 type, u32 length        (both little-endian)
 * A receiver rejects, before reading the payload, a length above the type's bound
 * (isola_guest_max_payload()) and any type it does not know; either is a protocol error:
 * guest-init answers with ERROR + EXIT(ISOLA_GUEST_EXIT_INTERNAL) and powers off.
 *
 * Conversation (version 2):
 *   guest: HELLO(version)                      first frame, sent right after connect
 *   host:  HELLO(version)                      the host's version; different major → ERROR
 *   host:  PROCESS(json)                       exactly once
 *   guest: STARTED(pid)                        the process runs (pid inside the guest)
 *   both:  STDIN*, STDIN_EOF, STDIN_ACK*, SIGNAL*, RESIZE*, STDOUT*, STDERR*   in any
 *          interleaving
 *   guest: EXIT(status)                        last frame; all output was sent before it
 * The host closes the connection after EXIT; guest-init waits for that close (at most
 * ISOLA_GUEST_LINGER_SECONDS), syncs and powers the VM off. If the host closes first, the
 * process is killed and the VM powers off. A setup failure (bad PROCESS, a root disk that does not
 * mount) is ERROR(text) then EXIT(ISOLA_GUEST_EXIT_INTERNAL).
 *
 * PROCESS payload: a UTF-8 JSON object (at most ISOLA_GUEST_MAX_PROCESS bytes):
 *   {
 *     "process":  { OCI runtime-spec "process" object: args, env, cwd, user {uid, gid,
 *                   additionalGids, umask}, rlimits, capabilities, noNewPrivileges, ... },
 *     "hostname": "name",                      optional (also "domainname")
 *     "root": {                                optional; default: source from the kernel command
 *       "source":   "/dev/vda",                line isola.root=, else /dev/vda. A /dev/ path is a
 *       "fstype":   "erofs" | "ext4" | "auto", block device (auto: erofs, then ext4); any other
 *       "writable": "tmpfs" | "none" | "/dev/vdb"   absolute path is a directory (bind, read-only)
 *     },                                       writable: overlay upper on a tmpfs (default), none
 *                                              (read-only root), or on an ext4 disk
 *     "mounts": [ OCI mount objects: destination, type, source, options ]   optional, applied
 *                                              after the default /proc /sys /dev /dev/pts /dev/shm
 *                                              /dev/mqueue /run; at most ISOLA_GUEST_MAX_MOUNTS
 *     "user": "name[:group]"                   optional; resolved as docker does in the container's
 *                                              /etc/passwd and /etc/group, overriding process.user
 *     "resources": {"pids": {"limit": N}}      optional: at most N processes in the container
 *   }                                          (a cgroup; exec'd processes count too)
 * Unknown top-level keys are errors (a host newer than its guest must bump the version).
 *
 * Exec. While the container's process runs, guest-init listens on vsock port
 * ISOLA_GUEST_EXEC_PORT; the host reaches it through the monitor's unix socket ("CONNECT 1025").
 * Each connection starts one more process in the container, with the same conversation as
 * above (HELLO both ways, PROCESS, STARTED, stdio, EXIT) but a PROCESS that holds only
 * "process" (and "user"): it runs in the container as it is (its root, mounts and hostname). At
 * most ISOLA_GUEST_MAX_EXECS at once; one more, or a PROCESS that cannot start, gets ERROR then
 * EXIT(ISOLA_GUEST_EXIT_INTERNAL). A host that closes first kills its process. When the
 * container's process ends, exec'd processes are killed (EXIT 137) and their connections closed.
 *
 * Terminal. With "process": {"terminal": true} the process gets a pseudo-terminal in the guest
 * as its controlling terminal and stdin, stdout and stderr (process.consoleSize, when given, is
 * its first size). Everything it writes comes as STDOUT (there is no STDERR), STDIN goes to the
 * terminal, whose line discipline echoes it and turns ^C into SIGINT, and RESIZE sets its
 * size. STDIN_EOF only stops the input: the terminal stays, so the process sees no hang-up.
 *
 * Exit status (EXIT payload), as a shell and docker report it: the exit code, or 128+N for
 * signal N; 127 when the command is not found, 126 when it cannot be executed (each with a
 * one-line message on STDERR); ISOLA_GUEST_EXIT_INTERNAL when guest-init itself failed.
 *
 * Kernel command line read by guest-init (the VMM sets it; stray words such as "noxsave" that the
 * kernel hands to init as arguments are ignored):
 *   isola.root=/dev/vda        the image disk when PROCESS has no "root"
 *   isola.rootfstype=erofs     its filesystem (default: try erofs, then ext4)
 *   isola.port=N               the vsock port (default ISOLA_GUEST_VSOCK_PORT)
 *   isola.debug=1              guest-init logs its steps to /dev/console
 */
#ifndef ISOLA_GUEST_ABI_H
#define ISOLA_GUEST_ABI_H

#include <stdint.h>

/* Bumped on any incompatible change; both sides send theirs in HELLO and refuse a mismatch. */
#define ISOLA_GUEST_ABI_VERSION 2u /* 2: terminals (RESIZE, process.terminal) */

#define ISOLA_GUEST_HOST_CID 2u      /* VMADDR_CID_HOST */
#define ISOLA_GUEST_VSOCK_PORT 1024u /* the control and stdio connection */
#define ISOLA_GUEST_EXEC_PORT 1025u  /* guest-init listens here for exec connections */
#define ISOLA_GUEST_MAX_EXECS 16u    /* exec connections at once */

#define ISOLA_GUEST_HEADER_SIZE 8u
#define ISOLA_GUEST_MAX_PROCESS (1u << 20) /* PROCESS JSON */
#define ISOLA_GUEST_MAX_DATA (64u << 10)   /* STDIN, STDOUT, STDERR payload per frame */
#define ISOLA_GUEST_MAX_ERROR 4096u        /* ERROR text */
#define ISOLA_GUEST_STDIN_WINDOW (256u << 10)
#define ISOLA_GUEST_MAX_MOUNTS 64u
#define ISOLA_GUEST_LINGER_SECONDS 10u
#define ISOLA_GUEST_EXIT_INTERNAL 125u

enum isola_guest_type {
  ISOLA_GUEST_HELLO = 1,     /* both ways: u32 version, u32 flags (0) */
  ISOLA_GUEST_PROCESS = 2,   /* host → guest: JSON, see above */
  ISOLA_GUEST_STARTED = 3,   /* guest → host: u32 pid of the process in the guest */
  ISOLA_GUEST_STDIN = 4,     /* host → guest: 1..MAX_DATA bytes for the process's stdin */
  ISOLA_GUEST_STDIN_EOF = 5, /* host → guest: empty; stdin is closed once drained */
  ISOLA_GUEST_STDIN_ACK = 6, /* guest → host: u32 bytes of STDIN consumed (credit returned) */
  ISOLA_GUEST_STDOUT = 7,    /* guest → host: 1..MAX_DATA bytes, exactly as written */
  ISOLA_GUEST_STDERR = 8,    /* guest → host: 1..MAX_DATA bytes, exactly as written */
  ISOLA_GUEST_SIGNAL = 9,    /* host → guest: u32 signal number (1..64) for the process */
  ISOLA_GUEST_EXIT = 10,     /* guest → host: u32 status (0..255), the last frame */
  ISOLA_GUEST_ERROR = 11,    /* either way: 1..MAX_ERROR bytes of UTF-8, one line */
  ISOLA_GUEST_RESIZE = 12,   /* host → guest: u32 rows, u32 columns of the process's terminal */
};

struct isola_guest_header {
  uint32_t type;   /* enum isola_guest_type, little-endian */
  uint32_t length; /* payload bytes that follow, little-endian */
};

struct isola_guest_hello {
  uint32_t version; /* ISOLA_GUEST_ABI_VERSION, little-endian */
  uint32_t flags;   /* 0 */
};

/* The largest payload a frame of `type` may carry, 0 for an unknown type (or an empty frame:
 * see isola_guest_min_payload()). A receiver checks this before reading the payload. */
static inline uint32_t isola_guest_max_payload(uint32_t type)
{
  switch (type) {
  case ISOLA_GUEST_HELLO:
  case ISOLA_GUEST_RESIZE:
    return 8;
  case ISOLA_GUEST_PROCESS:
    return ISOLA_GUEST_MAX_PROCESS;
  case ISOLA_GUEST_STARTED:
  case ISOLA_GUEST_STDIN_ACK:
  case ISOLA_GUEST_SIGNAL:
  case ISOLA_GUEST_EXIT:
    return 4;
  case ISOLA_GUEST_STDIN:
  case ISOLA_GUEST_STDOUT:
  case ISOLA_GUEST_STDERR:
    return ISOLA_GUEST_MAX_DATA;
  case ISOLA_GUEST_ERROR:
    return ISOLA_GUEST_MAX_ERROR;
  default:
    return 0;
  }
}

/* The smallest payload of a known type; -1 for an unknown type. */
static inline int64_t isola_guest_min_payload(uint32_t type)
{
  switch (type) {
  case ISOLA_GUEST_HELLO:
  case ISOLA_GUEST_RESIZE:
    return 8;
  case ISOLA_GUEST_STARTED:
  case ISOLA_GUEST_STDIN_ACK:
  case ISOLA_GUEST_SIGNAL:
  case ISOLA_GUEST_EXIT:
    return 4;
  case ISOLA_GUEST_STDIN_EOF:
    return 0;
  case ISOLA_GUEST_PROCESS:
  case ISOLA_GUEST_STDIN:
  case ISOLA_GUEST_STDOUT:
  case ISOLA_GUEST_STDERR:
  case ISOLA_GUEST_ERROR:
    return 1;
  default:
    return -1;
  }
}

/* Little-endian load and store of the u32 fields, whatever the host's byte order. */
static inline uint32_t isola_guest_get_u32(const void *p)
{
  const uint8_t *b = (const uint8_t *) p;
  return (uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16 | (uint32_t) b[3] << 24;
}

static inline void isola_guest_put_u32(void *p, uint32_t v)
{
  uint8_t *b = (uint8_t *) p;
  b[0] = (uint8_t) v;
  b[1] = (uint8_t) (v >> 8);
  b[2] = (uint8_t) (v >> 16);
  b[3] = (uint8_t) (v >> 24);
}

/* A frame header is valid when the type is known and the length within its bounds. */
static inline int isola_guest_header_valid(uint32_t type, uint32_t length)
{
  int64_t min = isola_guest_min_payload(type);
  return min >= 0 && (int64_t) length >= min && length <= isola_guest_max_payload(type);
}

#endif /* ISOLA_GUEST_ABI_H */
