/* Layer unpacking: one layer blob (tar, gzip- or zstd-compressed tar) written into an empty
 * directory in overlayfs lower-dir form.
 *
 * The blob is outside input. Two halves:
 *  - the stream: our own read callback for libarchive detects the compression from the magic
 *    bytes, decompresses, hashes the uncompressed bytes (the diff_id) and enforces the size and
 *    ratio limits, so a decompression bomb stops before libarchive sees the bytes past a limit;
 *  - the writer: each entry's name is cleaned (absolute names are relative to the layer root, a
 *    ".." component is refused), its parent directory is resolved with openat2(RESOLVE_IN_ROOT)
 *    from the destination, and the last component is created relative to that parent with
 *    nothing followed (O_EXCL|O_NOFOLLOW, mkdirat, symlinkat, mknodat, linkat). A symlink in
 *    the layer can point anywhere: we never follow one out of the destination.
 *
 * Policies (why):
 *  - absolute names ("/etc/x") are taken relative to the layer root, as docker and containerd
 *    do; images built by some tools carry them. ".." components are refused, never clamped.
 *  - char/block device nodes are created when the kernel lets us (root with CAP_MKNOD): the
 *    store is root's (0700), and inside a container device access goes through the runtime's
 *    device cgroup, as with docker. Where mknod is refused (not root, or root of a user
 *    namespace) they are skipped rather than failing the image: the container's /dev is a
 *    fresh tmpfs anyway, and an image needs no device node elsewhere. Whiteouts (0:0
 *    character devices) are always made (the kernel allows those to anyone).
 *  - xattrs named trusted.overlay.* or user.overlay.* in the tar are refused: overlayfs reads
 *    them from lower dirs (redirect, metacopy, opaque), so a layer could forge them to reach
 *    files of other layers. The opaque marker comes only from ".wh..wh..opq".
 *  - other ".wh..wh.*" names are AUFS bookkeeping (docker skips them too).
 */
#include "image.h"
#include "lazylib.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

const struct unpack_limits unpack_default_limits = {
    .max_expanded = 64ull << 30,
    .max_entries = 4000000,
    .max_ratio = 256,
    .ratio_after = 256ull << 20,
};

#define IN_BUF_SIZE (1u << 20)     /* compressed bytes per read(2) */
#define OUT_BUF_SIZE (1u << 20)    /* uncompressed bytes per libarchive read callback */
#define SHOWN_MAX 200              /* bytes of an entry name quoted in an error */
#define DIR_TIMES_MAX (256u << 20) /* memory for the directory mtimes applied at the end */

/* ---- the stream: decompression, diff_id, limits ---- */

enum compression { COMPRESSION_NONE, COMPRESSION_GZIP, COMPRESSION_ZSTD };

struct layer_stream {
  int fd;
  enum compression compression;
  const struct unpack_limits *limits;
  unsigned char *in; /* compressed bytes read from fd: in[in_pos..in_len) not used yet */
  size_t in_len, in_pos;
  bool in_eof;
  unsigned char *out; /* uncompressed bytes handed to libarchive */
  z_stream z;
  bool z_ready, z_member_done;
  ZSTD_DStream *zstd;
  size_t zstd_hint; /* 0 once a zstd frame is complete */
  struct sha256_ctx *sha;
  uint64_t compressed, expanded;
  const char *entry;       /* the entry being unpacked, for messages (owned by the writer) */
  struct isola_error *err; /* why the stream stopped */
};

/* "layer entry \"NAME\"" for messages, or "layer" before the first entry. */
static const char *stream_where(const struct layer_stream *s, char buf[SHOWN_MAX + 32])
{
  if (!s->entry[0])
    return "layer";
  snprintf(buf, SHOWN_MAX + 32, "layer entry \"%s\"", s->entry);
  return buf;
}

/* Read more compressed bytes after what is buffered; false at end of file. */
static ssize_t stream_fill(struct layer_stream *s)
{
  char where[SHOWN_MAX + 32];
  if (s->in_pos == s->in_len)
    s->in_pos = s->in_len = 0;
  if (s->in_eof || s->in_len == IN_BUF_SIZE)
    return 0;
  ssize_t n;
  do
    n = read(s->fd, s->in + s->in_len, IN_BUF_SIZE - s->in_len);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return isola_fail(&s->err, errno, "%s: cannot read the layer", stream_where(s, where));
  if (n == 0)
    s->in_eof = true;
  s->in_len += (size_t) n;
  s->compressed += (uint64_t) n;
  return n;
}

static int stream_open(struct layer_stream *s)
{
  while (s->in_len < 4 && !s->in_eof)
    if (stream_fill(s) < 0)
      return -s->err->code;
  const unsigned char *m = s->in;
  if (s->in_len >= 2 && m[0] == 0x1f && m[1] == 0x8b) {
    s->compression = COMPRESSION_GZIP;
    /* 15 + 32: a 32 KiB window, gzip or zlib header detected */
    if (inflateInit2(&s->z, 15 + 32) != Z_OK)
      return isola_failx(&s->err, ENOMEM, "layer: cannot start gzip decompression");
    s->z_ready = true;
  } else if (s->in_len >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) {
    s->compression = COMPRESSION_ZSTD;
    /* The default window limit (128 MiB) stays: it bounds the decoder's memory. */
    s->zstd = ZSTD_createDStream();
    if (!s->zstd || ZSTD_isError(ZSTD_initDStream(s->zstd)))
      return isola_failx(&s->err, ENOMEM, "layer: cannot start zstd decompression");
    s->zstd_hint = 1;
  } else {
    s->compression = COMPRESSION_NONE;
  }
  return 0;
}

static ssize_t stream_gunzip(struct layer_stream *s)
{
  char where[SHOWN_MAX + 32];
  s->z.next_out = s->out;
  s->z.avail_out = OUT_BUF_SIZE;
  while (s->z.avail_out > 0) {
    if (s->in_pos == s->in_len) {
      if (stream_fill(s) < 0)
        return -s->err->code;
      if (s->in_len == 0) {
        if (!s->z_member_done)
          return isola_failx(&s->err, EIO, "%s: the gzip stream is truncated",
                             stream_where(s, where));
        break;
      }
    }
    if (s->z_member_done) {
      /* Concatenated gzip members are one stream (as gzip -d and Go's reader take them). */
      inflateReset(&s->z);
      s->z_member_done = false;
    }
    s->z.next_in = s->in + s->in_pos;
    s->z.avail_in = (uInt) (s->in_len - s->in_pos);
    int r = inflate(&s->z, Z_NO_FLUSH);
    s->in_pos = s->in_len - s->z.avail_in;
    if (r == Z_STREAM_END)
      s->z_member_done = true;
    else if (r != Z_OK && r != Z_BUF_ERROR)
      return isola_failx(&s->err, EIO, "%s: corrupt gzip data: %s", stream_where(s, where),
                         s->z.msg ? s->z.msg : "inflate failed");
  }
  return (ssize_t) (OUT_BUF_SIZE - s->z.avail_out);
}

static ssize_t stream_unzstd(struct layer_stream *s)
{
  char where[SHOWN_MAX + 32];
  ZSTD_outBuffer out = {.dst = s->out, .size = OUT_BUF_SIZE, .pos = 0};
  while (out.pos < out.size) {
    if (s->in_pos == s->in_len) {
      if (stream_fill(s) < 0)
        return -s->err->code;
      /* The decoder may still hold output for a complete input: flush it first. */
      if (s->in_len == 0 && s->zstd_hint == 0)
        break;
    }
    ZSTD_inBuffer in = {.src = s->in + s->in_pos, .size = s->in_len - s->in_pos, .pos = 0};
    size_t before = out.pos;
    size_t r = ZSTD_decompressStream(s->zstd, &out, &in);
    s->in_pos += in.pos;
    if (ZSTD_isError(r))
      return isola_failx(&s->err, EIO, "%s: corrupt zstd data: %s", stream_where(s, where),
                         ZSTD_getErrorName(r));
    s->zstd_hint = r;
    if (s->in_eof && s->in_pos == s->in_len && out.pos == before && in.pos == 0) {
      if (r != 0)
        return isola_failx(&s->err, EIO, "%s: the zstd stream is truncated",
                           stream_where(s, where));
      break;
    }
  }
  return (ssize_t) out.pos;
}

/* The next uncompressed bytes (0 at the end), hashed and counted against the limits. */
static ssize_t stream_read(struct layer_stream *s, const void **buf)
{
  char where[SHOWN_MAX + 32];
  if (s->err)
    return -s->err->code;
  ssize_t n;
  switch (s->compression) {
  case COMPRESSION_GZIP:
    n = stream_gunzip(s);
    *buf = s->out;
    break;
  case COMPRESSION_ZSTD:
    n = stream_unzstd(s);
    *buf = s->out;
    break;
  default:
    /* Uncompressed: hand out the read buffer itself. */
    if (s->in_pos == s->in_len && stream_fill(s) < 0)
      return -s->err->code;
    n = (ssize_t) (s->in_len - s->in_pos);
    *buf = s->in + s->in_pos;
    s->in_pos = s->in_len;
    break;
  }
  if (n <= 0)
    return n;
  s->expanded += (uint64_t) n;
  const struct unpack_limits *l = s->limits;
  if (s->expanded > l->max_expanded)
    return isola_failx(&s->err, EFBIG,
                       "%s: the layer expands past %llu bytes (the limit on one "
                       "layer): a decompression bomb?",
                       stream_where(s, where), (unsigned long long) l->max_expanded);
  if (s->expanded > l->ratio_after && s->compressed > 0 &&
      s->expanded / s->compressed > l->max_ratio)
    return isola_failx(&s->err, EFBIG,
                       "%s: the layer expands more than %llu times its compressed "
                       "size: a decompression bomb?",
                       stream_where(s, where), (unsigned long long) l->max_ratio);
  sha256_update(s->sha, *buf, (size_t) n);
  return n;
}

static la_ssize_t stream_read_cb(struct archive *a, void *data, const void **buf)
{
  struct layer_stream *s = data;
  ssize_t n = stream_read(s, buf);
  if (n < 0) {
    archive_set_error(a, (int) -n, "%s", s->err->msg);
    return ARCHIVE_FATAL;
  }
  return n;
}

static void stream_clear(struct layer_stream *s)
{
  if (s->z_ready)
    inflateEnd(&s->z);
  if (s->zstd)
    ZSTD_freeDStream(s->zstd);
  sha256_free(s->sha);
  free(s->in);
  free(s->out);
  isola_error_free(&s->err);
}

/* ---- the writer ---- */

struct dir_time {
  char *path; /* relative to the destination, "" for its root */
  dev_t dev;
  ino_t ino;
  struct timespec times[2];
  size_t depth, seq;
};

struct unpacker {
  int destfd;
  const struct unpack_limits *limits;
  struct archive *archive;
  struct layer_stream stream;
  char shown[SHOWN_MAX + 4]; /* the current entry's name as quoted in errors */
  /* The parent directory of the previous entry: consecutive entries mostly share it. */
  char parent_path[PATH_MAX];
  int parentfd;
  bool parent_stale; /* something was removed since it was opened */
  struct dir_time *dirs;
  size_t n_dirs, cap_dirs, dir_bytes;
};

static int resolve_in_root(int rootfd, const char *path, int flags)
{
  struct open_how how = {.flags = (uint64_t) (flags | O_CLOEXEC),
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  int fd = (int) syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
  return fd < 0 ? -errno : fd;
}

/* Errors name the entry: `layer entry "usr/bin/x": cannot create it: Permission denied`. */
static int entry_fail(struct unpacker *u, struct isola_error **err, int errnum, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
static int entry_fail(struct unpacker *u, struct isola_error **err, int errnum, const char *fmt,
                      ...)
{
  va_list ap;
  va_start(ap, fmt);
  _cleanup_free_ char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0)
    abort();
  va_end(ap);
  if (!u->shown[0])
    return errnum > 0 ? isola_fail(err, errnum, "layer: %s", msg)
                      : isola_failx(err, -errnum, "layer: %s", msg);
  if (errnum > 0)
    return isola_fail(err, errnum, "layer entry \"%s\": %s", u->shown, msg);
  return isola_failx(err, -errnum, "layer entry \"%s\": %s", u->shown, msg);
}
/* entry_fail() without the strerror suffix: pass the errno negated. */
#define entry_failx(u, err, errnum, ...) entry_fail(u, err, -(errnum), __VA_ARGS__)

/* A name as it may appear in a one-line message: control characters, quotes and backslashes
 * become '?', and it is cut at SHOWN_MAX bytes. */
static void quote_name(const char *name, char out[SHOWN_MAX + 4])
{
  size_t i = 0;
  for (; name[i] && i < SHOWN_MAX; i++) {
    unsigned char c = (unsigned char) name[i];
    out[i] = c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? '?' : (char) c;
  }
  if (name[i]) {
    memcpy(out + i, "...", 3);
    i += 3;
  }
  out[i] = '\0';
}

/* Clean a name from the tar into "a/b/c" (no leading '/', no "." or empty components, "" for
 * the root). -EPERM for a ".." component, -ENAMETOOLONG past PATH_MAX. */
static int path_clean(const char *name, char out[PATH_MAX])
{
  size_t n = 0;
  const char *p = name;
  while (*p) {
    while (*p == '/')
      p++;
    const char *end = strchrnul(p, '/');
    size_t len = (size_t) (end - p);
    if (len == 2 && p[0] == '.' && p[1] == '.')
      return -EPERM;
    if (len > 0 && !(len == 1 && p[0] == '.')) {
      if (n + len + 2 > PATH_MAX)
        return -ENAMETOOLONG;
      if (n > 0)
        out[n++] = '/';
      memcpy(out + n, p, len);
      n += len;
    }
    p = end;
  }
  out[n] = '\0';
  return 0;
}

/* Split a clean non-empty path in place: *parent ("" for the root) and *name. */
static void path_split(char *path, const char **parent, const char **name)
{
  char *slash = strrchr(path, '/');
  if (slash) {
    *slash = '\0';
    *parent = path;
    *name = slash + 1;
  } else {
    *parent = "";
    *name = path;
  }
}

/* Open (O_PATH) the directory `path` inside the destination, symlinks resolved inside it;
 * with `create`, missing components are made (0755). Returns the fd or a negative errno;
 * -EEXIST means a component is a symlink whose target is missing. */
static int dir_open(struct unpacker *u, const char *path, bool create)
{
  int fd = resolve_in_root(u->destfd, *path ? path : ".", O_PATH | O_DIRECTORY);
  if (fd != -ENOENT || !create)
    return fd;
  /* Walk: each prefix resolved from the destination again, so a symlink anywhere stays inside
   * it; a missing component is made in the directory its prefix resolved to. */
  char buf[PATH_MAX];
  strcpy(buf, path);
  _cleanup_close_ int prev = resolve_in_root(u->destfd, ".", O_PATH | O_DIRECTORY);
  if (prev < 0)
    return prev;
  char *p = buf;
  for (;;) {
    char *slash = strchr(p, '/');
    if (slash)
      *slash = '\0';
    int cfd = resolve_in_root(u->destfd, buf, O_PATH | O_DIRECTORY);
    if (cfd == -ENOENT) {
      if (mkdirat(prev, p, 0755) < 0)
        return -errno;
      cfd = resolve_in_root(u->destfd, buf, O_PATH | O_DIRECTORY);
    }
    if (cfd < 0)
      return cfd;
    close(prev);
    prev = cfd;
    if (!slash)
      return steal_fd(&prev);
    *slash = '/';
    p = slash + 1;
  }
}

/* The parent directory of the current entry (borrowed: valid until the next call). */
static int parent_get(struct unpacker *u, const char *path, struct isola_error **err)
{
  if (u->parentfd >= 0 && !u->parent_stale && !strcmp(u->parent_path, path))
    return u->parentfd;
  int fd = dir_open(u, path, true);
  if (fd == -EEXIST)
    return entry_failx(u, err, ENOENT,
                       "its directory \"%s\" passes through a symlink to a missing directory",
                       path);
  if (fd < 0)
    return entry_fail(u, err, -fd, "cannot open its directory");
  if (u->parentfd >= 0)
    close(u->parentfd);
  u->parentfd = fd;
  strcpy(u->parent_path, path);
  u->parent_stale = false;
  return fd;
}

/* Make room for a new entry: remove what has its name (a directory with its contents). */
static int remove_existing(struct unpacker *u, int pfd, const char *name, struct isola_error **err)
{
  struct stat st;
  if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : entry_fail(u, err, errno, "cannot replace it");
  /* What was removed may be a component of the cached parent's path. */
  u->parent_stale = true;
  int r = S_ISDIR(st.st_mode) ? rm_rf_at(pfd, name) : (unlinkat(pfd, name, 0) < 0 ? -errno : 0);
  return r < 0 ? entry_fail(u, err, -r, "cannot replace the earlier entry of that name") : 0;
}

static bool xattr_forbidden(const char *name)
{
  return !strncmp(name, "trusted.overlay.", 16) || !strncmp(name, "user.overlay.", 13);
}

/* Refuse the entry before anything is written when it carries an overlayfs xattr. */
static int xattrs_check(struct unpacker *u, struct archive_entry *e, struct isola_error **err)
{
  const char *name;
  const void *value;
  size_t size;
  archive_entry_xattr_reset(e);
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
    if (name && xattr_forbidden(name))
      return entry_failx(u, err, EPERM,
                         "xattr \"%.80s\" is refused: overlayfs metadata cannot come from a layer",
                         name);
  return 0;
}

/* Where an entry's metadata goes: an open fd when there is one (files and directories), else
 * the name in its parent (symlinks, fifos, devices: never opened). */
struct target {
  int pfd;
  const char *name;
  int fd;
  bool is_symlink;
};

static int apply_xattrs(struct unpacker *u, const struct target *t, struct archive_entry *e,
                        struct isola_error **err)
{
  const char *name;
  const void *value;
  size_t size;
  archive_entry_xattr_reset(e);
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (!name)
      continue;
    int r;
    if (t->fd >= 0) {
      r = fsetxattr(t->fd, name, value, size, 0);
    } else {
      /* Our own parent fd's magic link, then the name, not followed (lsetxattr). */
      char path[64 + NAME_MAX];
      snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", t->pfd, t->name);
      r = lsetxattr(path, name, value, size, 0);
    }
    if (r < 0 && t->is_symlink && (errno == EPERM || errno == ENOTSUP) &&
        strncmp(name, "security.", 9) && strncmp(name, "trusted.", 8))
      continue; /* the kernel takes no user.* xattrs on symlinks */
    if (r < 0)
      return entry_fail(u, err, errno, "cannot set xattr \"%.80s\"", name);
  }
  return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
  ts[1] = archive_entry_mtime_is_set(e)
              ? (struct timespec){archive_entry_mtime(e), archive_entry_mtime_nsec(e)}
              : (struct timespec){0, UTIME_OMIT};
  ts[0] = archive_entry_atime_is_set(e)
              ? (struct timespec){archive_entry_atime(e), archive_entry_atime_nsec(e)}
              : ts[1];
  for (int i = 0; i < 2; i++)
    if (ts[i].tv_nsec < 0 || ts[i].tv_nsec > 999999999)
      ts[i].tv_nsec = 0;
}

/* Owner, then mode (chown clears setuid), then xattrs (chown clears security.capability),
 * then times (directories: at the end, after their children). */
static int apply_metadata(struct unpacker *u, const struct target *t, struct archive_entry *e,
                          bool times, struct isola_error **err)
{
  int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
  if (uid < 0 || uid >= UINT32_MAX || gid < 0 || gid >= UINT32_MAX)
    return entry_failx(u, err, EINVAL, "owner %lld:%lld is out of range", (long long) uid,
                       (long long) gid);
  int r = t->fd >= 0 ? fchown(t->fd, (uid_t) uid, (gid_t) gid)
                     : fchownat(t->pfd, t->name, (uid_t) uid, (gid_t) gid, AT_SYMLINK_NOFOLLOW);
  if (r < 0)
    return entry_fail(u, err, errno, "cannot set its owner to %lld:%lld", (long long) uid,
                      (long long) gid);
  if (!t->is_symlink) {
    mode_t mode = archive_entry_perm(e) & 07777;
    r = t->fd >= 0 ? fchmod(t->fd, mode) : fchmodat(t->pfd, t->name, mode, AT_SYMLINK_NOFOLLOW);
    if (r < 0)
      return entry_fail(u, err, errno, "cannot set its mode to %04o", (unsigned) mode);
  }
  r = apply_xattrs(u, t, e, err);
  if (r < 0 || !times)
    return r;
  struct timespec ts[2];
  entry_times(e, ts);
  r = t->fd >= 0 ? futimens(t->fd, ts) : utimensat(t->pfd, t->name, ts, AT_SYMLINK_NOFOLLOW);
  return r < 0 ? entry_fail(u, err, errno, "cannot set its times") : 0;
}

static int record_dir_time(struct unpacker *u, int fd, const char *path, struct archive_entry *e,
                           struct isola_error **err)
{
  struct stat st;
  if (!archive_entry_mtime_is_set(e))
    return 0;
  if (fstat(fd, &st) < 0)
    return entry_fail(u, err, errno, "cannot stat it");
  size_t len = strlen(path);
  u->dir_bytes += sizeof(struct dir_time) + len + 1;
  if (u->dir_bytes > DIR_TIMES_MAX)
    return entry_failx(u, err, EFBIG, "the layer has too many directories (limit: %u MiB of names)",
                       DIR_TIMES_MAX >> 20);
  if (u->n_dirs == u->cap_dirs) {
    u->cap_dirs = u->cap_dirs ? 2 * u->cap_dirs : 256;
    u->dirs = xrealloc(u->dirs, u->cap_dirs * sizeof(*u->dirs));
  }
  struct dir_time *d = &u->dirs[u->n_dirs];
  d->path = xstrdup(path);
  d->dev = st.st_dev;
  d->ino = st.st_ino;
  entry_times(e, d->times);
  d->depth = 0;
  for (const char *c = path; *c; c++)
    d->depth += *c == '/';
  d->depth += len > 0;
  d->seq = u->n_dirs++;
  return 0;
}

static int dir_time_cmp(const void *a, const void *b)
{
  const struct dir_time *x = a, *y = b;
  if (x->depth != y->depth)
    return x->depth > y->depth ? -1 : 1;
  return x->seq < y->seq ? -1 : 1;
}

/* Directory mtimes last, deepest first: creating their children changed them. A directory
 * replaced since (another inode at that path now) is left alone. */
static int apply_dir_times(struct unpacker *u, struct isola_error **err)
{
  if (u->n_dirs == 0)
    return 0;
  qsort(u->dirs, u->n_dirs, sizeof(*u->dirs), dir_time_cmp);
  for (size_t i = 0; i < u->n_dirs; i++) {
    struct dir_time *d = &u->dirs[i];
    _cleanup_close_ int fd =
        resolve_in_root(u->destfd, *d->path ? d->path : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != d->dev || st.st_ino != d->ino)
      continue;
    if (futimens(fd, d->times) < 0) {
      quote_name(*d->path ? d->path : "/", u->shown);
      return entry_fail(u, err, errno, "cannot set its times");
    }
  }
  return 0;
}

static int archive_fail(struct unpacker *u, struct isola_error **err, const char *what)
{
  if (u->stream.err)
    return isola_failx(err, u->stream.err->code, "%s", u->stream.err->msg);
  const char *msg = archive_error_string(u->archive);
  int code = archive_errno(u->archive);
  return entry_failx(u, err, code > 0 ? code : EINVAL, "%s: %s", what,
                     msg ? msg : "the tar is corrupt");
}

static int write_data(struct unpacker *u, int fd, int64_t size, struct isola_error **err)
{
  int64_t pos = 0;
  for (;;) {
    const void *buf;
    size_t len;
    la_int64_t off;
    int r = archive_read_data_block(u->archive, &buf, &len, &off);
    if (r == ARCHIVE_EOF)
      break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
      return archive_fail(u, err, "cannot read its data");
    if (off < 0 || (uint64_t) off > (uint64_t) size || len > (uint64_t) (size - off))
      return entry_failx(u, err, EINVAL, "data at offset %lld lies past its size %lld",
                         (long long) off, (long long) size);
    if (len == 0)
      continue;
    if (off != pos && lseek(fd, off, SEEK_SET) < 0) /* a hole of a sparse file */
      return entry_fail(u, err, errno, "cannot seek");
    r = write_all(fd, buf, len);
    if (r < 0)
      return entry_fail(u, err, -r, "cannot write its data");
    pos = off + (int64_t) len;
  }
  if (pos < size && ftruncate(fd, size) < 0)
    return entry_fail(u, err, errno, "cannot extend it to %lld bytes", (long long) size);
  return 0;
}

static int unpack_regular(struct unpacker *u, int pfd, const char *name, struct archive_entry *e,
                          struct isola_error **err)
{
  int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
  if (size < 0 || (uint64_t) size > u->limits->max_expanded)
    return entry_failx(u, err, EFBIG,
                       "its header claims %lld bytes, more than the %llu a layer may expand to",
                       (long long) size, (unsigned long long) u->limits->max_expanded);
  int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  _cleanup_close_ int fd = openat(pfd, name, flags, 0600);
  if (fd < 0 && errno == EEXIST) {
    int r = remove_existing(u, pfd, name, err);
    if (r < 0)
      return r;
    fd = openat(pfd, name, flags, 0600);
  }
  if (fd < 0)
    return entry_fail(u, err, errno, "cannot create it");
  int r = write_data(u, fd, size, err);
  if (r < 0)
    return r;
  struct target t = {.pfd = pfd, .name = name, .fd = fd};
  return apply_metadata(u, &t, e, true, err);
}

static int unpack_dir(struct unpacker *u, int pfd, const char *name, const char *path,
                      struct archive_entry *e, struct isola_error **err)
{
  _cleanup_close_ int fd = -1;
  if (!*name) {
    fd = openat(u->destfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } else {
    if (mkdirat(pfd, name, 0700) < 0) {
      struct stat st;
      if (errno != EEXIST || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_fail(u, err, errno, "cannot create the directory");
      if (!S_ISDIR(st.st_mode)) { /* a directory over a directory merges; anything else goes */
        int r = remove_existing(u, pfd, name, err);
        if (r < 0)
          return r;
        if (mkdirat(pfd, name, 0700) < 0)
          return entry_fail(u, err, errno, "cannot create the directory");
      }
    }
    fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd < 0)
    return entry_fail(u, err, errno, "cannot open the directory");
  struct target t = {.pfd = pfd, .name = name, .fd = fd};
  int r = apply_metadata(u, &t, e, false, err);
  if (r < 0)
    return r;
  return record_dir_time(u, fd, path, e, err);
}

/* Create a node that is never opened (symlink when symlink_target is set, else fifo or device
 * of `mode`), replacing what has its name. Returns 1 when `eperm_skips` and mknod is refused
 * with EPERM (see the device policy at the top). */
static int make_node(struct unpacker *u, int pfd, const char *name, const char *symlink_target,
                     mode_t mode, dev_t dev, bool eperm_skips, struct isola_error **err)
{
  for (int attempt = 0;; attempt++) {
    int r = symlink_target ? symlinkat(symlink_target, pfd, name) : mknodat(pfd, name, mode, dev);
    if (r == 0)
      return 0;
    if (errno == EPERM && eperm_skips)
      return 1;
    if (errno != EEXIST || attempt > 0)
      return entry_fail(u, err, errno, "cannot create it");
    r = remove_existing(u, pfd, name, err);
    if (r < 0)
      return r;
  }
}

static int unpack_node(struct unpacker *u, int pfd, const char *name, struct archive_entry *e,
                       struct isola_error **err)
{
  mode_t type = archive_entry_filetype(e);
  const char *target = NULL;
  dev_t dev = 0;
  if (type == AE_IFLNK) {
    target = archive_entry_symlink(e);
    if (!target)
      target = archive_entry_symlink_utf8(e);
    if (!target || !*target)
      return entry_failx(u, err, EINVAL, "a symlink without a target");
  } else if (type == AE_IFCHR || type == AE_IFBLK) {
    dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
  }
  bool is_device = type == AE_IFCHR || type == AE_IFBLK;
  int r = make_node(u, pfd, name, target, type | 0600, dev, is_device, err);
  if (r != 0)
    return r < 0 ? r : 0; /* 1: a device node we may not make, skipped */
  struct target t = {.pfd = pfd, .name = name, .fd = -1, .is_symlink = type == AE_IFLNK};
  return apply_metadata(u, &t, e, true, err);
}

static int unpack_hardlink(struct unpacker *u, int pfd, const char *name, const char *link,
                           struct isola_error **err)
{
  char target[PATH_MAX];
  int r = path_clean(link, target);
  if (r == -EPERM)
    return entry_failx(u, err, EPERM,
                       "its hardlink target has a \"..\" component (it would leave the layer)");
  if (r < 0 || !*target)
    return entry_failx(u, err, r < 0 ? -r : EPERM, "bad hardlink target");
  const char *tparent, *tname;
  path_split(target, &tparent, &tname);
  _cleanup_close_ int tpfd = dir_open(u, tparent, false);
  if (tpfd < 0)
    return entry_fail(u, err, -tpfd, "its hardlink target is not in the layer");
  struct stat st;
  if (fstatat(tpfd, tname, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return entry_fail(u, err, errno, "its hardlink target is not in the layer");
  if (S_ISDIR(st.st_mode))
    return entry_failx(u, err, EPERM, "its hardlink target is a directory");
  for (int attempt = 0;; attempt++) {
    /* flags 0: a symlink target is linked itself, never followed */
    if (linkat(tpfd, tname, pfd, name, 0) == 0)
      return 0;
    if (errno != EEXIST || attempt > 0)
      return entry_fail(u, err, errno, "cannot create the hardlink");
    r = remove_existing(u, pfd, name, err);
    if (r < 0)
      return r;
  }
}

static int unpack_whiteout(struct unpacker *u, int pfd, const char *name, struct isola_error **err)
{
  if (!strcmp(name, ".wh..wh..opq")) {
    _cleanup_close_ int fd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) < 0)
      return entry_fail(u, err, errno, "cannot mark its directory opaque");
    return 0;
  }
  if (!strncmp(name, ".wh..wh.", 8))
    return 0; /* AUFS bookkeeping */
  const char *hidden = name + 4;
  if (!*hidden || !strcmp(hidden, ".") || !strcmp(hidden, ".."))
    return entry_failx(u, err, EPERM, "a whiteout of \"%s\" would remove outside its directory",
                       hidden);
  return make_node(u, pfd, hidden, NULL, S_IFCHR, makedev(0, 0), false, err); /* mode 0 */
}

static int unpack_entry(struct unpacker *u, struct archive_entry *e, uint64_t nth,
                        struct isola_error **err)
{
  const char *raw = archive_entry_pathname(e);
  if (!raw)
    raw = archive_entry_pathname_utf8(e);
  if (!raw)
    return entry_failx(u, err, EINVAL, "the entry after it has no name");
  quote_name(raw, u->shown);
  if (nth > u->limits->max_entries)
    return entry_failx(u, err, EFBIG,
                       "the layer has more than %llu entries (the limit on one layer)",
                       (unsigned long long) u->limits->max_entries);
  char path[PATH_MAX];
  int r = path_clean(raw, path);
  if (r == -EPERM)
    return entry_failx(u, err, EPERM, "a \"..\" component would leave the layer");
  if (r < 0)
    return entry_fail(u, err, -r, "bad name");
  r = xattrs_check(u, e, err);
  if (r < 0)
    return r;

  const char *hardlink = archive_entry_hardlink(e);
  if (!hardlink)
    hardlink = archive_entry_hardlink_utf8(e);
  mode_t type = archive_entry_filetype(e);
  if (!*path) {
    if (type != AE_IFDIR || hardlink)
      return entry_failx(u, err, EPERM, "the layer's root can only be a directory");
    return unpack_dir(u, -1, "", "", e, err);
  }
  char split[PATH_MAX];
  strcpy(split, path);
  const char *parent, *name;
  path_split(split, &parent, &name);
  int pfd = parent_get(u, parent, err);
  if (pfd < 0)
    return pfd;
  if (!strncmp(name, ".wh.", 4))
    return unpack_whiteout(u, pfd, name, err);
  if (hardlink)
    return unpack_hardlink(u, pfd, name, hardlink, err);
  switch (type) {
  case AE_IFREG:
    return unpack_regular(u, pfd, name, e, err);
  case AE_IFDIR:
    return unpack_dir(u, pfd, name, path, e, err);
  case AE_IFLNK:
  case AE_IFIFO:
  case AE_IFCHR:
  case AE_IFBLK:
    return unpack_node(u, pfd, name, e, err);
  default:
    return entry_failx(u, err, EINVAL, "unsupported file type 0%o", (unsigned) type);
  }
}

static int unpack_all(struct unpacker *u, struct unpack_stats *st, struct isola_error **err)
{
  struct archive_entry *e;
  for (;;) {
    int r = archive_read_next_header(u->archive, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) /* ARCHIVE_RETRY too: a damaged header */
      return archive_fail(u, err, st->entries ? "cannot read the next entry" : "not a tar layer");
    r = unpack_entry(u, e, ++st->entries, err);
    if (r < 0)
      return r;
  }
  /* The diff_id covers the whole uncompressed stream: read what follows the tar's end. */
  for (;;) {
    const void *buf;
    ssize_t n = stream_read(&u->stream, &buf);
    if (n < 0)
      return isola_failx(err, u->stream.err->code, "%s", u->stream.err->msg);
    if (n == 0)
      break;
  }
  return apply_dir_times(u, err);
}

int layer_unpack(int fd, int destfd, const struct unpack_limits *limits,
                 char diff_id[DIGEST_LEN + 1], struct unpack_stats *stats, struct isola_error **err)
{
  if (lazy_archive_load(err) < 0)
    return isola_error_prefix(err, "layer");
  if (!limits)
    limits = &unpack_default_limits;
  struct unpack_stats st = {0};
  struct unpacker u = {
      .limits = limits,
      .parentfd = -1,
      .stream = {.fd = fd, .limits = limits},
  };
  u.stream.entry = u.shown;
  int r;
  u.destfd = openat(destfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (u.destfd < 0) {
    r = isola_fail(err, errno, "layer: cannot open the destination directory");
    goto out;
  }
  u.stream.in = xmalloc(IN_BUF_SIZE);
  u.stream.out = xmalloc(OUT_BUF_SIZE);
  u.stream.sha = sha256_new();
  r = stream_open(&u.stream);
  if (r < 0) {
    r = isola_failx(err, u.stream.err->code, "%s", u.stream.err->msg);
    goto out;
  }
  u.archive = archive_read_new();
  if (!u.archive)
    abort();
  /* tar only: ustar, pax and GNU tar are all this one reader. "empty" takes a 0-byte stream
   * as a layer without entries (as docker's tar reader does); it bids on nothing else. */
  archive_read_support_format_tar(u.archive);
  archive_read_support_format_empty(u.archive);
  if (archive_read_open(u.archive, &u.stream, NULL, stream_read_cb, NULL) != ARCHIVE_OK) {
    r = archive_fail(&u, err, "not a tar layer");
    goto out;
  }
  r = unpack_all(&u, &st, err);
  if (r < 0)
    goto out;
  sha256_final(u.stream.sha, diff_id);
  u.stream.sha = NULL;
out:
  st.compressed_bytes = u.stream.compressed;
  st.expanded_bytes = u.stream.expanded;
  if (stats)
    *stats = st;
  if (u.archive)
    archive_read_free(u.archive);
  stream_clear(&u.stream);
  for (size_t i = 0; i < u.n_dirs; i++)
    free(u.dirs[i].path);
  free(u.dirs);
  if (u.parentfd >= 0)
    close(u.parentfd);
  if (u.destfd >= 0)
    close(u.destfd);
  return r;
}
