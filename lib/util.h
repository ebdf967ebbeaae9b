/* Small shared helpers: cleanup attributes, errors, files, logging, JSON.
 *
 * Contracts:
 *  - Functions returning int return >= 0 on success and a negative errno on failure.
 *  - Functions that take `struct isola_error **err` set *err on failure (when it is still NULL)
 *    with a one-line message that names the object and the reason; they never print or exit.
 *  - Every fd this code opens is O_CLOEXEC.
 */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- cleanup ---- */
static inline void freep(void *p)
{
  free(*(void **) p);
}
static inline void closep(int *fd)
{
  if (*fd >= 0) {
    int saved = errno;
    close(*fd);
    errno = saved;
  }
}
static inline void fclosep(FILE **f)
{
  if (*f)
    fclose(*f);
}
void strv_free(char **v);
static inline void strv_freep(char ***v)
{
  strv_free(*v);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_strv_ _cleanup_(strv_freep)

#define steal_pointer(pp)                                                                          \
  ({                                                                                               \
    __typeof__(*(pp)) _p = *(pp);                                                                  \
    *(pp) = NULL;                                                                                  \
    _p;                                                                                            \
  })
#define steal_fd(fdp)                                                                              \
  ({                                                                                               \
    int _fd = *(fdp);                                                                              \
    *(fdp) = -1;                                                                                   \
    _fd;                                                                                           \
  })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors ---- */
struct isola_error {
  int code; /* errno value, or 0 */
  char *msg;
};

/* Record an error (only the first one wins) and return -errnum (-EINVAL when errnum is 0).
 * When errnum is non-zero, ": strerror(errnum)" is appended. */
int isola_fail(struct isola_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like isola_fail() without the strerror() suffix. */
int isola_failx(struct isola_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Put "context: " in front of an existing error's message; returns -code. */
int isola_error_prefix(struct isola_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void isola_error_free(struct isola_error **err);
static inline void isola_error_freep(struct isola_error **err)
{
  isola_error_free(err);
}
#define _cleanup_error_ _cleanup_(isola_error_freep)

/* ---- allocation (abort on OOM: library callers cannot do better) ---- */
void *xmalloc(size_t n);
void *xzalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
size_t strv_length(char *const *v);
char **strv_copy(char *const *v);
char **strv_append(char **v, const char *s); /* takes ownership of v, copies s */

/* ---- files ---- */
/* Read a whole file (at most max bytes, else -EFBIG). *out is NUL-terminated. */
int read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len);
/* write(2) all of buf to an open fd, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);
int read_all(int fd, void *buf, size_t len); /* returns bytes read (< len only at EOF) */
/* Open, write and close: for /proc and cgroup files (no O_CREAT, no O_TRUNC needed). */
int write_file_at(int dirfd, const char *path, const char *data, size_t len);
/* write_file_at() of a /proc file that must really be on procfs: a container's rootfs or a
 * volume mounted over /proc must not catch writes meant for the kernel (labels, sysctls). */
int write_proc_file(const char *path, const char *data, size_t len);
/* Atomic replace: write to a temporary file in the same directory, then rename over path.
 * Readers see the old or the new content, never a mix, even if the writer is killed. */
int write_file_atomic(int dirfd, const char *path, const char *data, size_t len, mode_t mode);
/* mkdir -p relative to dirfd (or absolute path when dirfd is AT_FDCWD). */
int mkdir_p_at(int dirfd, const char *path, mode_t mode);
/* rm -rf of dir's contents and dir itself, not crossing mount points. */
int rm_rf_at(int dirfd, const char *path);
/* Read /proc/PID/stat start time (field 22); 0 if the process is gone. */
unsigned long long proc_start_time(pid_t pid);
/* Send fds over a unix socket (SCM_RIGHTS) with a small payload. */
int send_fds(int sock, const void *data, size_t len, const int *fds, int nfds);
int recv_fds(int sock, void *data, size_t len, int *fds, int maxfds, int *nfds);
/* Parse an unsigned/signed decimal integer, whole string. */
int parse_u64(const char *s, uint64_t *out);
int parse_i64(const char *s, int64_t *out);

/* ---- logging (CLI only; library code returns errors instead) ---- */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };
enum log_level { LOG_ERROR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
/* Set where logs go: path NULL means stderr. Returns negative errno when the file can't open. */
int log_init(const char *path, enum log_format format, bool debug);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Errors go both to the log file (when one is set) and to stderr, where engines read them. */
void log_error_to_stderr(const char *prog, const char *msg);
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)

/* ---- JSON helpers (json-c) ---- */
struct json_object;
static inline void json_putp(struct json_object **o);
#define _cleanup_json_ _cleanup_(json_putp)
#include <json-c/json.h>
static inline void json_putp(struct json_object **o)
{
  if (*o)
    json_object_put(*o);
}
/* Parse a JSON document from a string; on failure set err naming `what` and the position. */
int json_parse_doc(const char *text, size_t len, const char *what, struct json_object **out,
                   struct isola_error **err);
/* Serialize (pretty or compact) into a malloc'd string. */
char *json_to_string(struct json_object *o, bool pretty);
