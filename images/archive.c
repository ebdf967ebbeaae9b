/* Import of whole images: docker-archive tars (docker/podman save), OCI image layout tars
 * ("oci-archive") and OCI image layout directories. Export is in archive_save.c.
 *
 * A tar is read once, as a stream, and never extracted: every entry that may be a blob is
 * written straight into the store (verified against its name when the name is a digest) and
 * remembered by name; the few small documents that describe the archive (index.json,
 * manifest.json) are kept in memory. Only then are the images resolved, checked blob by blob,
 * and named. A load that fails or is killed leaves at most complete, unreferenced blobs, which
 * prune removes.
 */
#include "image.h"
#include "lazylib.h"
#include "spec_json.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Bounds on what an archive may make us do. */
#define LOAD_MAX_ENTRIES 200000     /* tar entries read, kept or skipped */
#define LOAD_MAX_KEPT 20000         /* entries remembered (blobs, documents, links) */
#define LOAD_MAX_NAME 1024          /* bytes of an entry name */
#define LOAD_MAX_TOTAL (1ull << 40) /* bytes of entry data in one archive */
#define LOAD_MAX_LINK_DEPTH 8       /* links followed to reach an entry */
#define LOAD_MAX_NESTING 4          /* index → index → … → manifest */
#define LOAD_MAX_IMAGES 1000        /* images in index.json or manifest.json */
#define IO_CHUNK (128u << 10)

#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define ANN_CONTAINERD_NAME "io.containerd.image.name"
#define ANN_REF_NAME "org.opencontainers.image.ref.name"

/* ---- load: the entries of the source ---- */

enum entry_kind { ENTRY_BLOB, ENTRY_DOC, ENTRY_LINK };

struct load_entry {
  char *name; /* normalized archive path */
  enum entry_kind kind;
  char digest[DIGEST_LEN + 1]; /* ENTRY_BLOB: where it is in the store */
  uint64_t size;
  const char *compression; /* ENTRY_BLOB: NULL (plain), "gzip" or "zstd", from the magic bytes */
  char *data;              /* ENTRY_DOC, NUL-terminated */
  char *target;            /* ENTRY_LINK: the archive path it points to */
};

struct load {
  struct image_store *s;
  int dirfd; /* an OCI layout (or extracted docker-archive) directory, or -1 for a tar */
  struct load_entry *v;
  size_t n, cap;
  uint64_t total;
  char *buf; /* IO_CHUNK bytes */
  const char *default_name;
  char **names, **digests; /* what to tag once every image is checked: name i → manifest i */
};

static void load_free(struct load *l)
{
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].name);
    free(l->v[i].data);
    free(l->v[i].target);
  }
  free(l->v);
  free(l->buf);
  strv_free(l->names);
  strv_free(l->digests);
  if (l->dirfd >= 0)
    close(l->dirfd);
}

static struct load_entry *entry_find(struct load *l, const char *name)
{
  /* Later entries win, as when a tar is extracted. */
  for (size_t i = l->n; i-- > 0;)
    if (!strcmp(l->v[i].name, name))
      return &l->v[i];
  return NULL;
}

static int entry_add(struct load *l, const char *name, struct load_entry **out,
                     struct isola_error **err)
{
  if (l->n >= LOAD_MAX_KEPT)
    return isola_failx(err, E2BIG, "more than %d entries to keep", LOAD_MAX_KEPT);
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
  }
  struct load_entry *e = &l->v[l->n++];
  memset(e, 0, sizeof(*e));
  e->name = xstrdup(name);
  *out = e;
  return 0;
}

/* "./a//b/" → "a/b". Absolute names and ".." components are refused: nothing here is extracted,
 * but an archive that tries to escape is hostile and is not loaded. */
static int name_normalize(const char *raw, char **out, struct isola_error **err)
{
  size_t len = strlen(raw);
  if (len == 0 || len > LOAD_MAX_NAME)
    return isola_failx(err, EINVAL, "entry \"%.80s\": name of %zu bytes", raw, len);
  if (raw[0] == '/')
    return isola_failx(err, EPERM, "entry \"%.200s\": absolute path", raw);
  char *n = xzalloc(len + 1), *o = n;
  for (const char *p = raw; *p;) {
    const char *e = strchr(p, '/');
    size_t cl = e ? (size_t) (e - p) : strlen(p);
    if (cl == 2 && !strncmp(p, "..", 2)) {
      free(n);
      return isola_failx(err, EPERM, "entry \"%.200s\": path leaves the archive", raw);
    }
    if (cl && !(cl == 1 && p[0] == '.')) {
      if (o != n)
        *o++ = '/';
      memcpy(o, p, cl);
      o += cl;
    }
    p += cl + (e ? 1 : 0);
  }
  *o = 0;
  *out = n;
  return 0;
}

/* Join a symlink's target to the directory holding the link; NULL when it leaves the archive. */
static char *link_resolve(const char *link_name, const char *target)
{
  if (target[0] == '/')
    return NULL;
  const char *slash = strrchr(link_name, '/');
  _cleanup_free_ char *joined =
      slash ? xasprintf("%.*s/%s", (int) (slash - link_name), link_name, target) : xstrdup(target);
  /* Resolve "." and ".." textually. */
  char *out = xzalloc(strlen(joined) + 1);
  size_t ol = 0;
  for (char *p = joined; *p;) {
    char *e = strchr(p, '/');
    size_t cl = e ? (size_t) (e - p) : strlen(p);
    if (cl == 2 && !strncmp(p, "..", 2)) {
      if (ol == 0) {
        free(out);
        return NULL;
      }
      while (ol > 0 && out[ol - 1] != '/')
        ol--;
      if (ol > 0)
        ol--;
    } else if (cl && !(cl == 1 && p[0] == '.')) {
      if (ol)
        out[ol++] = '/';
      memcpy(out + ol, p, cl);
      ol += cl;
    }
    out[ol] = 0;
    p += cl + (e ? 1 : 0);
  }
  return out;
}

static bool is_hex64(const char *s)
{
  for (int i = 0; i < DIGEST_HEX_LEN; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return s[DIGEST_HEX_LEN] == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

static bool is_doc_name(const char *name)
{
  return !strcmp(name, "index.json") || !strcmp(name, "manifest.json") ||
         !strcmp(name, "oci-layout");
}

/* A blob of an OCI layout ("blobs/sha256/HEX"), or a config or layer of a docker-archive. */
static bool is_blob_name(const char *name, char expected[DIGEST_LEN + 1])
{
  expected[0] = 0;
  if (!strncmp(name, "blobs/sha256/", 13) && is_hex64(name + 13)) {
    snprintf(expected, DIGEST_LEN + 1, "sha256:%s", name + 13);
    return true;
  }
  return ends_with(name, ".json") || ends_with(name, ".tar");
}

static const char *compression_of(const unsigned char *magic, size_t n)
{
  if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
    return "gzip";
  if (n >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
    return "zstd";
  return NULL;
}

/* Where the bytes of one entry come from: a tar stream or a file of the layout directory. */
struct entry_reader {
  struct archive *a;
  int fd;
};

static ssize_t reader_read(struct entry_reader *r, void *buf, size_t len)
{
  if (r->a)
    return archive_read_data(r->a, buf, len);
  ssize_t n;
  do
    n = read(r->fd, buf, len);
  while (n < 0 && errno == EINTR);
  return n;
}

static int reader_fail(struct entry_reader *r, const char *name, struct isola_error **err)
{
  if (r->a)
    return isola_failx(err, EIO, "entry \"%s\": truncated or damaged archive (%s)", name,
                       archive_error_string(r->a) ? archive_error_string(r->a) : "read error");
  return isola_fail(err, errno, "cannot read \"%s\"", name);
}

static int count_bytes(struct load *l, size_t n, struct isola_error **err)
{
  l->total += n;
  if (l->total > LOAD_MAX_TOTAL)
    return isola_failx(err, EFBIG, "more than %llu bytes of content",
                       (unsigned long long) LOAD_MAX_TOTAL);
  return 0;
}

/* Stream one entry into the store as a blob (checked against `expected` when non-empty). */
static int entry_store(struct load *l, struct entry_reader *rd, const char *name,
                       const char *expected, struct isola_error **err)
{
  _cleanup_free_ char *what = xasprintf("entry \"%s\"", name);
  _cleanup_blob_writer_ struct blob_writer *w = NULL;
  int r = blob_writer_new(l->s, what, BLOB_MAX_LAYER, &w, err);
  if (r < 0)
    return r;
  unsigned char magic[4];
  size_t nmagic = 0;
  for (;;) {
    ssize_t n = reader_read(rd, l->buf, IO_CHUNK);
    if (n < 0)
      return reader_fail(rd, name, err);
    if (n == 0)
      break;
    for (ssize_t i = 0; i < n && nmagic < sizeof(magic); i++)
      magic[nmagic++] = (unsigned char) l->buf[i];
    if ((r = count_bytes(l, (size_t) n, err)) < 0 ||
        (r = blob_writer_write(w, l->buf, (size_t) n, err)) < 0)
      return r;
  }
  char digest[DIGEST_LEN + 1];
  uint64_t size = blob_writer_size(w);
  if ((r = blob_writer_commit(w, *expected ? expected : NULL, digest, err)) < 0)
    return r;
  struct load_entry *e;
  if ((r = entry_add(l, name, &e, err)) < 0)
    return r;
  e->kind = ENTRY_BLOB;
  memcpy(e->digest, digest, sizeof(digest));
  e->size = size;
  e->compression = compression_of(magic, nmagic);
  return 0;
}

/* Read a small document entry into memory (≤ BLOB_MAX_DOC). */
static int entry_doc(struct load *l, struct entry_reader *rd, const char *name,
                     struct isola_error **err)
{
  size_t len = 0, cap = 4096;
  _cleanup_free_ char *data = xmalloc(cap + 1);
  for (;;) {
    if (len == cap) {
      if (cap >= BLOB_MAX_DOC)
        return isola_failx(err, EFBIG, "entry \"%s\": larger than %u bytes", name, BLOB_MAX_DOC);
      cap = cap * 2 > BLOB_MAX_DOC ? BLOB_MAX_DOC : cap * 2;
      data = xrealloc(data, cap + 1);
    }
    ssize_t n = reader_read(rd, data + len, cap - len);
    if (n < 0)
      return reader_fail(rd, name, err);
    if (n == 0)
      break;
    len += (size_t) n;
    int r = count_bytes(l, (size_t) n, err);
    if (r < 0)
      return r;
  }
  data[len] = 0;
  struct load_entry *e;
  int r = entry_add(l, name, &e, err);
  if (r < 0)
    return r;
  e->kind = ENTRY_DOC;
  e->size = len;
  e->data = steal_pointer(&data);
  return 0;
}

/* Read the whole tar once, keeping what may be needed. */
static int load_tar(struct load *l, int fd, struct isola_error **err)
{
  int r = lazy_archive_load(err);
  if (r < 0)
    return r;
  struct archive *a = archive_read_new();
  if (!a)
    abort();
  archive_read_support_format_tar(a);
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_zstd(a);
  if (archive_read_open_fd(a, fd, IO_CHUNK) != ARCHIVE_OK) {
    r = isola_failx(err, EINVAL, "not a docker-archive or OCI image layout (%s)",
                    archive_error_string(a) ? archive_error_string(a) : "unreadable");
    goto out;
  }
  struct entry_reader rd = {.a = a, .fd = -1};
  for (size_t count = 0;; count++) {
    struct archive_entry *ae;
    int ar = archive_read_next_header(a, &ae);
    if (ar == ARCHIVE_EOF)
      break;
    if (ar < ARCHIVE_WARN) {
      if (count == 0)
        r = isola_failx(err, EINVAL, "not a docker-archive or OCI image layout (not a tar: %s)",
                        archive_error_string(a) ? archive_error_string(a) : "unreadable");
      else
        r = isola_failx(err, EIO, "truncated or damaged archive after %zu entries (%s)", count,
                        archive_error_string(a) ? archive_error_string(a) : "read error");
      goto out;
    }
    if (count >= LOAD_MAX_ENTRIES) {
      r = isola_failx(err, E2BIG, "more than %d entries", LOAD_MAX_ENTRIES);
      goto out;
    }
    const char *raw = archive_entry_pathname(ae);
    _cleanup_free_ char *name = NULL;
    if ((r = name_normalize(raw ? raw : "", &name, err)) < 0)
      goto out;
    int64_t size = archive_entry_size_is_set(ae) ? archive_entry_size(ae) : 0;
    if (size < 0 || (uint64_t) size > BLOB_MAX_LAYER) {
      r = isola_failx(err, EFBIG, "entry \"%s\": claims %lld bytes (at most %llu)", name,
                      (long long) size, (unsigned long long) BLOB_MAX_LAYER);
      goto out;
    }
    char expected[DIGEST_LEN + 1];
    bool wanted = is_doc_name(name) || is_blob_name(name, expected);
    const char *hardlink = archive_entry_hardlink(ae);
    mode_t type = archive_entry_filetype(ae);
    if (wanted && (hardlink || type == AE_IFLNK)) {
      /* podman's docker-archive links "<id>/layer.tar" to "<diff_id>.tar". */
      _cleanup_free_ char *target = NULL;
      if (hardlink)
        r = name_normalize(hardlink, &target, NULL);
      else if (archive_entry_symlink(ae))
        target = link_resolve(name, archive_entry_symlink(ae));
      struct load_entry *e;
      if (r == 0 && target) {
        if ((r = entry_add(l, name, &e, err)) < 0)
          goto out;
        e->kind = ENTRY_LINK;
        e->target = steal_pointer(&target);
      }
      r = 0;
    } else if (wanted && type == AE_IFREG) {
      r = is_doc_name(name) ? entry_doc(l, &rd, name, err)
                            : entry_store(l, &rd, name, expected, err);
      if (r < 0)
        goto out;
    } else if ((r = count_bytes(l, (uint64_t) size, err)) < 0) {
      goto out;
    }
    /* Unread data (skipped entries) is consumed by the next header read. */
  }
out:
  archive_read_free(a);
  return r;
}

/* The entry of that name (links followed), importing it from the layout directory on first use.
 * ENOENT naming it when absent. */
static int entry_get(struct load *l, const char *name, struct load_entry **out,
                     struct isola_error **err)
{
  _cleanup_free_ char *cur = NULL;
  if (name_normalize(name, &cur, NULL) < 0)
    return isola_failx(err, ENOENT, "no entry \"%.200s\" in the archive", name);
  for (int depth = 0; depth <= LOAD_MAX_LINK_DEPTH; depth++) {
    struct load_entry *e = entry_find(l, cur);
    if (!e && l->dirfd >= 0) {
      /* The directory is the user's own: links inside it are followed, out of it not. */
      struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                             .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
      _cleanup_close_ int fd = (int) syscall(SYS_openat2, l->dirfd, cur, &how, sizeof(how));
      if (fd < 0 && errno == ENOENT)
        return isola_failx(err, ENOENT, "no file \"%s\" in the directory", name);
      if (fd < 0)
        return isola_fail(err, errno, "cannot open \"%s\"", cur);
      struct stat st;
      if (fstat(fd, &st) < 0)
        return isola_fail(err, errno, "cannot open \"%s\"", cur);
      if (!S_ISREG(st.st_mode))
        return isola_failx(err, EINVAL, "\"%s\" is not a regular file", cur);
      /* Any file the manifest names is a blob here; one named by a digest is checked. */
      char expected[DIGEST_LEN + 1];
      struct entry_reader rd = {.a = NULL, .fd = fd};
      bool doc = is_doc_name(cur);
      if (!doc)
        is_blob_name(cur, expected);
      int r = doc ? entry_doc(l, &rd, cur, err) : entry_store(l, &rd, cur, expected, err);
      if (r < 0)
        return r;
      e = &l->v[l->n - 1];
    }
    if (!e)
      return isola_failx(err, ENOENT, "no entry \"%s\" in the archive", name);
    if (e->kind != ENTRY_LINK) {
      *out = e;
      return 0;
    }
    char *next = xstrdup(e->target);
    free(cur);
    cur = next;
  }
  return isola_failx(err, ELOOP, "entry \"%s\": more than %d links", name, LOAD_MAX_LINK_DEPTH);
}

/* Make sure a blob of a descriptor is in the store with the size the descriptor says. A blob
 * the store already holds need not be in the archive (it has the same content). */
static int blob_need(struct load *l, const char *digest, int64_t size, const char *what,
                     struct isola_error **err)
{
  if (!store_has_blob(l->s, digest)) {
    _cleanup_free_ char *name = xasprintf("blobs/sha256/%s", digest + 7);
    struct load_entry *e = NULL;
    int r = entry_get(l, name, &e, err);
    if (r < 0)
      return isola_error_prefix(err, "%s %s", what, digest);
    if (e->kind != ENTRY_BLOB || strcmp(e->digest, digest))
      return isola_failx(err, EILSEQ, "%s %s: entry \"%s\" holds %s", what, digest, name,
                         e->kind == ENTRY_BLOB ? e->digest : "a document");
  }
  _cleanup_free_ char *path = store_blob_path(l->s, digest);
  struct stat st;
  if (stat(path, &st) < 0)
    return isola_fail(err, errno, "%s %s", what, digest);
  if (size >= 0 && (uint64_t) st.st_size != (uint64_t) size)
    return isola_failx(err, EINVAL, "%s %s: %lld bytes, its descriptor says %lld", what, digest,
                       (long long) st.st_size, (long long) size);
  return 0;
}

/* ---- load: names ---- */

/* "busybox" → "docker.io/library/busybox:latest"; a digest-only reference cannot name. */
static int name_full(const char *text, const char *what, char **out, struct isola_error **err)
{
  struct image_ref ref;
  int r = ref_parse(text, &ref, err);
  if (r < 0)
    return isola_error_prefix(err, "%s", what);
  if (!ref.tag) {
    ref_clear(&ref);
    return isola_failx(err, EINVAL, "%s: \"%s\" has no tag to name an image by", what, text);
  }
  free(ref.digest);
  ref.digest = NULL;
  *out = ref_format(&ref);
  ref_clear(&ref);
  return 0;
}

/* The name of an OCI layout image from its annotations, as containerd and podman write them:
 * io.containerd.image.name is a full name; org.opencontainers.image.ref.name is either a full
 * name (podman, skopeo given one) or a tag alone (containerd, skopeo given "oci:dir:tag"), which
 * is put on the repository of the default name. *out stays NULL when there is nothing. */
static int oci_name(struct load *l, struct json_object *ann, const char *path, char **out,
                    struct isola_error **err)
{
  struct jctx c = {.what = "index.json", .err = err};
  _cleanup_free_ char *full = NULL, *ref_name = NULL;
  int r;
  if ((r = jget_str(&c, ann, path, ANN_CONTAINERD_NAME, &full)) < 0 ||
      (r = jget_str(&c, ann, path, ANN_REF_NAME, &ref_name)) < 0)
    return r;
  _cleanup_free_ char *what = xasprintf("index.json: %s.annotations", path);
  if (full)
    return name_full(full, what, out, err);
  if (!ref_name)
    return 0;
  if (strpbrk(ref_name, "/:@"))
    return name_full(ref_name, what, out, err);
  if (!l->default_name)
    return 0;
  struct image_ref ref;
  _cleanup_free_ char *tagged = NULL;
  if ((r = ref_parse(l->default_name, &ref, err)) < 0)
    return r;
  /* An explicit tag in the default name wins over the archive's. */
  const char *last = strrchr(l->default_name, '/');
  bool explicit_tag = strchr(last ? last : l->default_name, ':') != NULL;
  tagged = xasprintf("%s/%s:%s", ref.registry, ref.repository, explicit_tag ? ref.tag : ref_name);
  ref_clear(&ref);
  return name_full(tagged, what, out, err);
}

static int image_add(struct load *l, const char *name, const char *manifest_digest,
                     const char *what, struct isola_error **err)
{
  _cleanup_free_ char *full = NULL;
  if (!name && !l->default_name)
    return isola_failx(err, EINVAL, "%s (manifest %s) has no name: give one with --name", what,
                       manifest_digest);
  int r =
      name ? name_full(name, what, &full, err) : name_full(l->default_name, "--name", &full, err);
  if (r < 0)
    return r;
  l->names = strv_append(l->names, full);
  l->digests = strv_append(l->digests, manifest_digest);
  return 0;
}

/* ---- load: OCI layouts ---- */

static const char *host_arch(void)
{
  static const struct {
    const char *machine, *arch;
  } map[] = {{"x86_64", "amd64"},    {"aarch64", "arm64"}, {"i686", "386"},       {"armv7l", "arm"},
             {"ppc64le", "ppc64le"}, {"s390x", "s390x"},   {"riscv64", "riscv64"}};
  struct utsname u;
  if (uname(&u) == 0)
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
      if (!strcmp(u.machine, map[i].machine))
        return map[i].arch;
  return "amd64";
}

/* Check one image manifest and everything it references. */
static int oci_check_manifest(struct load *l, const char *digest, struct isola_error **err)
{
  _cleanup_free_ char *text = NULL, *ctext = NULL;
  size_t len, clen;
  struct image_manifest *m = NULL;
  struct image_config *c = NULL;
  int r = store_read_blob(l->s, digest, &text, &len, err);
  if (r < 0 || (r = manifest_parse(text, len, &m, err)) < 0 ||
      (r = blob_need(l, m->config_digest, m->config_size, "config", err)) < 0)
    goto out;
  for (size_t i = 0; i < m->n_layers; i++)
    if ((r = blob_need(l, m->layers[i].digest, m->layers[i].size, "layer", err)) < 0)
      goto out;
  if ((r = store_read_blob(l->s, m->config_digest, &ctext, &clen, err)) < 0 ||
      (r = image_config_parse(ctext, clen, &c, err)) < 0)
    goto out;
  if (c->n_diff_ids != m->n_layers)
    r = isola_failx(err, EINVAL, "the manifest has %zu layers but its config %zu diff_ids",
                    m->n_layers, c->n_diff_ids);
out:
  if (r < 0)
    isola_error_prefix(err, "manifest %s", digest);
  manifest_free(m);
  image_config_free(c);
  return r;
}

/* From a descriptor of index.json down to an image manifest, choosing our platform in indexes. */
static int oci_resolve(struct load *l, const char *digest, int64_t size, char out[DIGEST_LEN + 1],
                       struct isola_error **err)
{
  char cur[DIGEST_LEN + 1];
  memcpy(cur, digest, sizeof(cur));
  for (int depth = 0; depth <= LOAD_MAX_NESTING; depth++) {
    int r = blob_need(l, cur, depth == 0 ? size : -1, "manifest", err);
    if (r < 0)
      return r;
    _cleanup_free_ char *text = NULL;
    size_t len;
    if ((r = store_read_blob(l->s, cur, &text, &len, err)) < 0)
      return r;
    if (!manifest_is_index(text, len)) {
      memcpy(out, cur, sizeof(cur));
      return oci_check_manifest(l, cur, err);
    }
    char next[DIGEST_LEN + 1];
    if ((r = index_select(text, len, "linux", host_arch(), next, err)) < 0)
      return isola_error_prefix(err, "index %s", cur);
    memcpy(cur, next, sizeof(cur));
  }
  return isola_failx(err, ELOOP, "index %s: indexes nested more than %d deep", digest,
                     LOAD_MAX_NESTING);
}

static int load_oci(struct load *l, struct load_entry *index, struct isola_error **err)
{
  struct jctx c = {.what = "index.json", .err = err};
  _cleanup_json_ struct json_object *o = NULL;
  struct json_object *list;
  int r = json_parse_doc(index->data, index->size, "index.json", &o, err);
  if (r < 0 || (r = jget_arr(&c, o, "", "manifests", &list)) < 0)
    return r;
  if (!list)
    return jfail(&c, "manifests", "missing");
  size_t n = json_object_array_length(list);
  if (n > LOAD_MAX_IMAGES)
    return jfail(&c, "manifests", "%zu entries (at most %d)", n, LOAD_MAX_IMAGES);
  if (n == 0)
    return jfail(&c, "manifests", "no image");
  /* A layout may list the platforms of one image side by side: then only ours is loaded. */
  size_t ours = 0, with_platform = 0;
  const char *arch = host_arch();
  for (size_t i = 0; i < n; i++) {
    struct json_object *p = jget(json_object_array_get_idx(list, i), "platform");
    struct json_object *pos = jget(p, "os"), *parch = jget(p, "architecture");
    if (!p)
      continue;
    with_platform++;
    if (pos && parch && !strcmp(json_object_get_string(pos), "linux") &&
        !strcmp(json_object_get_string(parch), arch))
      ours++;
  }
  if (n > 1 && with_platform == n && ours == 0) {
    char dummy[DIGEST_LEN + 1];
    return index_select(index->data, index->size, "linux", arch, dummy, err) < 0
               ? isola_error_prefix(err, "index.json")
               : 0;
  }
  for (size_t i = 0; i < n; i++) {
    char path[32];
    snprintf(path, sizeof(path), "manifests[%zu]", i);
    struct json_object *d = json_object_array_get_idx(list, i), *ann = NULL, *p;
    _cleanup_free_ char *digest = NULL, *name = NULL;
    int64_t size = -1;
    bool has_size = false;
    if (!d || !json_object_is_type(d, json_type_object))
      return jfail(&c, path, "expected a descriptor object");
    if ((r = jget_str(&c, d, path, "digest", &digest)) < 0 ||
        (r = jget_i64(&c, d, path, "size", 0, INT64_MAX, &size, &has_size)) < 0 ||
        (r = jget_obj(&c, d, path, "annotations", &ann)) < 0 ||
        (r = jget_obj(&c, d, path, "platform", &p)) < 0)
      return r;
    if (!digest || digest_check(digest, "", NULL) < 0)
      return jfail(&c, path, "digest is not sha256:<64 hex digits>");
    if (n > 1 && with_platform == n && p) {
      struct json_object *pos = jget(p, "os"), *parch = jget(p, "architecture");
      if (!pos || !parch || strcmp(json_object_get_string(pos), "linux") ||
          strcmp(json_object_get_string(parch), arch))
        continue;
    }
    char manifest[DIGEST_LEN + 1];
    if ((r = oci_name(l, ann, path, &name, err)) < 0 ||
        (r = oci_resolve(l, digest, has_size ? size : -1, manifest, err)) < 0)
      return r;
    _cleanup_free_ char *what = xasprintf("index.json: %s", path);
    if ((r = image_add(l, name, manifest, what, err)) < 0)
      return r;
  }
  return 0;
}

/* ---- load: docker-archives ---- */

/* An OCI manifest for a docker-archive image, stored as a blob. */
static int docker_manifest(struct load *l, const struct load_entry *config,
                           struct load_entry **layers, size_t n, char digest[DIGEST_LEN + 1],
                           struct isola_error **err)
{
  _cleanup_json_ struct json_object *m = json_object_new_object();
  struct json_object *cfg = json_object_new_object(), *ls = json_object_new_array();
  json_object_object_add(m, "schemaVersion", json_object_new_int(2));
  json_object_object_add(m, "mediaType", json_object_new_string(MT_OCI_MANIFEST));
  json_object_object_add(cfg, "mediaType", json_object_new_string(MT_OCI_CONFIG));
  json_object_object_add(cfg, "digest", json_object_new_string(config->digest));
  json_object_object_add(cfg, "size", json_object_new_int64((int64_t) config->size));
  json_object_object_add(m, "config", cfg);
  for (size_t i = 0; i < n; i++) {
    struct json_object *d = json_object_new_object();
    _cleanup_free_ char *mt = layers[i]->compression
                                  ? xasprintf(MT_OCI_LAYER "+%s", layers[i]->compression)
                                  : xstrdup(MT_OCI_LAYER);
    json_object_object_add(d, "mediaType", json_object_new_string(mt));
    json_object_object_add(d, "digest", json_object_new_string(layers[i]->digest));
    json_object_object_add(d, "size", json_object_new_int64((int64_t) layers[i]->size));
    json_object_array_add(ls, d);
  }
  json_object_object_add(m, "layers", ls);
  _cleanup_free_ char *text = json_to_string(m, false);
  return store_put_blob(l->s, text, strlen(text), "image manifest", digest, err);
}

static int docker_image(struct load *l, struct json_object *d, const char *path,
                        struct isola_error **err)
{
  struct jctx c = {.what = "manifest.json", .err = err};
  _cleanup_free_ char *config_name = NULL, *ctext = NULL;
  _cleanup_strv_ char **tags = NULL, **layer_names = NULL;
  struct image_config *cfg = NULL;
  struct load_entry *config = NULL, **layers = NULL;
  size_t clen, n = 0;
  if (!d || !json_object_is_type(d, json_type_object))
    return jfail(&c, path, "expected an object");
  int r;
  if ((r = jget_str(&c, d, path, "Config", &config_name)) < 0 ||
      (r = jget_strv(&c, d, path, "RepoTags", &tags)) < 0 ||
      (r = jget_strv(&c, d, path, "Layers", &layer_names)) < 0)
    return r;
  if (!config_name)
    return jfail(&c, path, "no Config");
  if (!layer_names)
    return jfail(&c, path, "no Layers");
  n = strv_length(layer_names);
  if ((r = entry_get(l, config_name, &config, err)) < 0 || config->kind != ENTRY_BLOB) {
    r = r < 0 ? r : isola_failx(err, EINVAL, "\"%s\" is not a blob", config_name);
    isola_error_prefix(err, "manifest.json: %s.Config", path);
    goto out;
  }
  if ((r = store_read_blob(l->s, config->digest, &ctext, &clen, err)) < 0 ||
      (r = image_config_parse(ctext, clen, &cfg, err)) < 0) {
    isola_error_prefix(err, "manifest.json: %s.Config \"%s\"", path, config_name);
    goto out;
  }
  if (cfg->n_diff_ids != n) {
    r = isola_failx(err, EINVAL, "manifest.json: %s: %zu Layers but the config has %zu diff_ids",
                    path, n, cfg->n_diff_ids);
    goto out;
  }
  layers = xzalloc((n + 1) * sizeof(*layers));
  for (size_t i = 0; i < n; i++) {
    if ((r = entry_get(l, layer_names[i], &layers[i], err)) < 0 || layers[i]->kind != ENTRY_BLOB) {
      r = r < 0 ? r : isola_failx(err, EINVAL, "\"%s\" is not a blob", layer_names[i]);
      isola_error_prefix(err, "manifest.json: %s.Layers[%zu]", path, i);
      goto out;
    }
    /* A plain tar is its own diff_id; a compressed one is checked when it is unpacked. */
    if (!layers[i]->compression && strcmp(layers[i]->digest, cfg->diff_ids[i])) {
      r = isola_failx(err, EILSEQ,
                      "manifest.json: %s.Layers[%zu] \"%s\": its content is %s, the config's "
                      "rootfs.diff_ids[%zu] says %s",
                      path, i, layer_names[i], layers[i]->digest, i, cfg->diff_ids[i]);
      goto out;
    }
  }
  char manifest[DIGEST_LEN + 1];
  if ((r = docker_manifest(l, config, layers, n, manifest, err)) < 0)
    goto out;
  if (!tags || !tags[0]) {
    _cleanup_free_ char *what = xasprintf("manifest.json: %s", path);
    r = image_add(l, NULL, manifest, what, err);
    goto out;
  }
  for (size_t i = 0; tags[i]; i++) {
    _cleanup_free_ char *tag_what = xasprintf("manifest.json: %s.RepoTags[%zu]", path, i);
    if ((r = image_add(l, tags[i], manifest, tag_what, err)) < 0)
      goto out;
  }
out:
  image_config_free(cfg);
  free(layers);
  return r;
}

static int load_docker(struct load *l, struct load_entry *manifest, struct isola_error **err)
{
  struct jctx c = {.what = "manifest.json", .err = err};
  _cleanup_json_ struct json_object *o = NULL;
  int r = json_parse_doc(manifest->data, manifest->size, "manifest.json", &o, err);
  if (r < 0)
    return r;
  if (!json_object_is_type(o, json_type_array))
    return jfail(&c, "", "expected an array of images");
  size_t n = json_object_array_length(o);
  if (n == 0)
    return jfail(&c, "", "no image");
  if (n > LOAD_MAX_IMAGES)
    return jfail(&c, "", "%zu images (at most %d)", n, LOAD_MAX_IMAGES);
  for (size_t i = 0; i < n; i++) {
    char path[32];
    snprintf(path, sizeof(path), "[%zu]", i);
    if ((r = docker_image(l, json_object_array_get_idx(o, i), path, err)) < 0)
      return r;
  }
  return 0;
}

/* A document of the archive, or NULL when it has none (other failures are errors). */
static int doc_find(struct load *l, const char *name, struct load_entry **out,
                    struct isola_error **err)
{
  _cleanup_error_ struct isola_error *e = NULL;
  *out = NULL;
  int r = entry_get(l, name, out, &e);
  if (r == -ENOENT) {
    *out = NULL;
    return 0;
  }
  if (r < 0)
    return isola_failx(err, e ? e->code : -r, "%s", e ? e->msg : name);
  return 0;
}

int image_load(struct image_store *s, const char *path, const char *default_name, char ***names,
               struct isola_error **err)
{
  struct load l = {.s = s, .dirfd = -1, .default_name = default_name};
  _cleanup_close_ int fd = -1;
  int r;
  bool std_in = !strcmp(path, "-");
  const char *shown = std_in ? "stdin" : path;
  if (default_name) {
    _cleanup_free_ char *full = NULL;
    if ((r = name_full(default_name, "--name", &full, err)) < 0)
      return isola_error_prefix(err, "load \"%s\"", shown);
  }
  if (std_in) {
    fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
      return isola_fail(err, errno, "load: cannot use stdin");
  } else if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
    return isola_fail(err, errno, "load \"%s\"", path);
  }
  struct stat st;
  if (fstat(fd, &st) < 0)
    return isola_fail(err, errno, "load \"%s\"", shown);
  l.buf = xmalloc(IO_CHUNK);
  if (S_ISDIR(st.st_mode)) {
    l.dirfd = steal_fd(&fd);
    r = 0;
  } else {
    r = load_tar(&l, fd, err);
  }
  struct load_entry *index = NULL, *manifest = NULL;
  if (r == 0 && (r = doc_find(&l, "index.json", &index, err)) == 0 && !index)
    r = doc_find(&l, "manifest.json", &manifest, err);
  if (r == 0) {
    if (index && index->kind == ENTRY_DOC)
      r = load_oci(&l, index, err);
    else if (manifest && manifest->kind == ENTRY_DOC)
      r = load_docker(&l, manifest, err);
    else
      r = isola_failx(err, EINVAL,
                      "not a docker-archive or OCI image layout (no manifest.json or index.json)");
  }
  /* Every image is complete: name them. */
  for (size_t i = 0; r == 0 && l.names && l.names[i]; i++)
    r = store_tag(s, l.names[i], l.digests[i], err);
  if (r < 0) {
    isola_error_prefix(err, "load \"%s\"", shown);
  } else {
    /* Each name once, in order. */
    char **out = xzalloc(sizeof(char *));
    for (size_t i = 0; l.names && l.names[i]; i++) {
      bool seen = false;
      for (size_t j = 0; out[j] && !seen; j++)
        seen = !strcmp(out[j], l.names[i]);
      if (!seen)
        out = strv_append(out, l.names[i]);
    }
    *names = out;
  }
  load_free(&l);
  return r;
}
