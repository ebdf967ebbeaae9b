/* The content-addressed part of the store: its layout, locks and blobs. */
#include "image.h"

#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int lock_file(int rootfd, const char *name, int how, int *fd)
{
  _cleanup_close_ int f = openat(rootfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (f < 0)
    return -errno;
  while (flock(f, how) < 0)
    if (errno != EINTR)
      return -errno;
  *fd = steal_fd(&f);
  return 0;
}

int store_open(const char *root, struct image_store **out, struct isola_error **err)
{
  if (!root || root[0] != '/')
    return isola_failx(err, EINVAL, "store root \"%s\" is not an absolute path", root ? root : "");
  int r = mkdir_p_at(AT_FDCWD, root, 0700);
  if (r < 0)
    return isola_fail(err, -r, "cannot create the image store \"%s\"", root);
  _cleanup_close_ int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return isola_fail(err, errno, "cannot open the image store \"%s\"", root);
  static const char *const dirs[] = {"blobs/sha256", "layers/sha256", "containers"};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
    if ((r = mkdir_p_at(rootfd, dirs[i], 0700)) < 0)
      return isola_fail(err, -r, "cannot create \"%s/%s\"", root, dirs[i]);
  struct image_store *s = xzalloc(sizeof(*s));
  s->root = xstrdup(root);
  s->rootfd = steal_fd(&rootfd);
  s->gc_fd = -1;
  /* Every user of the store holds gc.lock shared; prune takes it exclusively, so it never
   * removes a blob that a pull or load is writing and has not named yet. */
  if ((r = lock_file(s->rootfd, "gc.lock", LOCK_SH, &s->gc_fd)) < 0) {
    store_close(s);
    return isola_fail(err, -r, "cannot lock the image store \"%s\"", root);
  }
  *out = s;
  return 0;
}

void store_close(struct image_store *s)
{
  if (s->gc_fd >= 0)
    close(s->gc_fd);
  close(s->rootfd);
  free(s->root);
  free(s);
}

void store_release(struct image_store *s)
{
  if (s->gc_fd >= 0)
    close(s->gc_fd);
  s->gc_fd = -1;
}

int store_lock(struct image_store *s, int *fd, struct isola_error **err)
{
  int r = lock_file(s->rootfd, "lock", LOCK_EX, fd);
  if (r < 0)
    return isola_fail(err, -r, "cannot lock the image store \"%s\"", s->root);
  return 0;
}

int store_gc_lock(struct image_store *s, struct isola_error **err)
{
  store_release(s);
  int r = lock_file(s->rootfd, "gc.lock", LOCK_EX, &s->gc_fd);
  if (r < 0)
    return isola_fail(err, -r, "cannot lock the image store \"%s\" for pruning", s->root);
  return 0;
}

char *store_blob_path(struct image_store *s, const char *digest)
{
  return xasprintf("%s/blobs/sha256/%s", s->root, digest + 7);
}

static char *blob_rel(const char *digest)
{
  return xasprintf("blobs/sha256/%s", digest + 7);
}

struct blob_writer {
  struct image_store *store;
  char *what;
  int fd;
  uint64_t size, limit;
  struct sha256_ctx *hash;
};

int blob_writer_new(struct image_store *s, const char *what, uint64_t limit,
                    struct blob_writer **out, struct isola_error **err)
{
  /* An unnamed file: a writer killed half way leaves nothing to clean up. */
  int fd = openat(s->rootfd, "blobs/sha256", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0)
    return isola_fail(err, errno, "%s: cannot create a file in \"%s/blobs/sha256\"", what, s->root);
  struct blob_writer *w = xzalloc(sizeof(*w));
  w->store = s;
  w->what = xstrdup(what);
  w->fd = fd;
  w->limit = limit;
  w->hash = sha256_new();
  *out = w;
  return 0;
}

int blob_writer_write(struct blob_writer *w, const void *data, size_t len, struct isola_error **err)
{
  if (len > w->limit || w->size > w->limit - len)
    return isola_failx(err, EFBIG, "%s: larger than %llu bytes", w->what,
                       (unsigned long long) w->limit);
  int r = write_all(w->fd, data, len);
  if (r < 0)
    return isola_fail(err, -r, "%s: cannot write to the store \"%s\"", w->what, w->store->root);
  sha256_update(w->hash, data, len);
  w->size += len;
  return 0;
}

uint64_t blob_writer_size(const struct blob_writer *w)
{
  return w->size;
}

int blob_writer_commit(struct blob_writer *w, const char *expected, char digest_out[DIGEST_LEN + 1],
                       struct isola_error **err)
{
  char got[DIGEST_LEN + 1];
  sha256_final(w->hash, got);
  w->hash = NULL;
  if (expected && strcmp(expected, got))
    return isola_failx(err, EILSEQ, "%s: digest mismatch: expected %s, got %s", w->what, expected,
                       got);
  if (fsync(w->fd) < 0)
    return isola_fail(err, errno, "%s: cannot write to the store \"%s\"", w->what, w->store->root);
  _cleanup_free_ char *rel = blob_rel(got);
  char proc[64];
  snprintf(proc, sizeof(proc), "/proc/self/fd/%d", w->fd);
  if (linkat(AT_FDCWD, proc, w->store->rootfd, rel, AT_SYMLINK_FOLLOW) < 0 && errno != EEXIST)
    return isola_fail(err, errno, "%s: cannot add blob %s to \"%s\"", w->what, got, w->store->root);
  memcpy(digest_out, got, DIGEST_LEN + 1);
  return 0;
}

void blob_writer_free(struct blob_writer *w)
{
  sha256_free(w->hash);
  close(w->fd);
  free(w->what);
  free(w);
}

int store_put_blob(struct image_store *s, const void *data, size_t len, const char *what,
                   char digest_out[DIGEST_LEN + 1], struct isola_error **err)
{
  char d[DIGEST_LEN + 1];
  sha256_digest_of(data, len, d);
  if (store_has_blob(s, d)) {
    memcpy(digest_out, d, sizeof(d));
    return 0;
  }
  _cleanup_blob_writer_ struct blob_writer *w = NULL;
  int r = blob_writer_new(s, what, BLOB_MAX_LAYER, &w, err);
  if (r < 0 || (r = blob_writer_write(w, data, len, err)) < 0)
    return r;
  return blob_writer_commit(w, d, digest_out, err);
}

bool store_has_blob(struct image_store *s, const char *digest)
{
  if (digest_check(digest, "blob", NULL) < 0)
    return false;
  _cleanup_free_ char *rel = blob_rel(digest);
  struct stat st;
  return fstatat(s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

int store_open_blob(struct image_store *s, const char *digest, int *fd, struct isola_error **err)
{
  int r = digest_check(digest, "blob", err);
  if (r < 0)
    return r;
  _cleanup_free_ char *rel = blob_rel(digest);
  int f = openat(s->rootfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (f < 0)
    return isola_fail(err, errno, "blob %s in \"%s\"", digest, s->root);
  *fd = f;
  return 0;
}

int store_read_blob(struct image_store *s, const char *digest, char **data, size_t *len,
                    struct isola_error **err)
{
  int r = digest_check(digest, "blob", err);
  if (r < 0)
    return r;
  _cleanup_free_ char *rel = blob_rel(digest), *buf = NULL;
  size_t n = 0;
  if ((r = read_file_at(s->rootfd, rel, BLOB_MAX_DOC, &buf, &n)) < 0)
    return isola_fail(err, -r, "blob %s in \"%s\"", digest, s->root);
  char got[DIGEST_LEN + 1];
  sha256_digest_of(buf, n, got);
  if (strcmp(got, digest))
    return isola_failx(err, EILSEQ, "blob %s in \"%s\" is corrupt (its content hashes to %s)",
                       digest, s->root, got);
  *data = steal_pointer(&buf);
  if (len)
    *len = n;
  return 0;
}
