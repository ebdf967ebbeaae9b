/* Export of images as one tar: an OCI image layout ("oci-archive") or a docker-archive, written
 * deterministically (fixed order, mtime 0, owner 0:0, mode 0644), each blob once and checked
 * against its digest on the way out. */
#include "image.h"
#include "lazylib.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAVE_MAX_IMAGES 1000
#define IO_CHUNK (128u << 10)

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define ANN_CONTAINERD_NAME "io.containerd.image.name"
#define ANN_REF_NAME "org.opencontainers.image.ref.name"

struct save_image {
  struct image_entry e;
  char *name; /* NULL when asked for by id: saved without a name, as docker does */
  char *manifest_text;
  size_t manifest_len;
  struct image_manifest *m;
};

static void save_images_free(struct save_image *v, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(v[i].e.name);
    free(v[i].e.created);
    free(v[i].name);
    free(v[i].manifest_text);
    manifest_free(v[i].m);
  }
  free(v);
}

static int tar_fail(struct archive *a, const char *name, struct isola_error **err)
{
  return isola_failx(err, EIO, "cannot write \"%s\" to the archive: %s", name,
                     archive_error_string(a) ? archive_error_string(a) : "write error");
}

static int tar_header(struct archive *a, const char *name, mode_t type, int64_t size,
                      struct isola_error **err)
{
  struct archive_entry *ae = archive_entry_new();
  if (!ae)
    abort();
  /* Deterministic: the same images give the same bytes. */
  archive_entry_set_pathname(ae, name);
  archive_entry_set_filetype(ae, type);
  archive_entry_set_perm(ae, type == AE_IFDIR ? 0755 : 0644);
  archive_entry_set_size(ae, type == AE_IFDIR ? 0 : size);
  archive_entry_set_mtime(ae, 0, 0);
  archive_entry_set_uid(ae, 0);
  archive_entry_set_gid(ae, 0);
  int ar = archive_write_header(a, ae);
  archive_entry_free(ae);
  return ar < ARCHIVE_WARN ? tar_fail(a, name, err) : 0;
}

static int tar_put(struct archive *a, const char *name, const char *data, size_t len,
                   struct isola_error **err)
{
  int r = tar_header(a, name, AE_IFREG, (int64_t) len, err);
  if (r < 0)
    return r;
  if (len && archive_write_data(a, data, len) != (la_ssize_t) len)
    return tar_fail(a, name, err);
  return 0;
}

/* Copy a blob from the store into the archive, checking its digest on the way. */
static int tar_put_blob(struct archive *a, struct image_store *s, const char *name,
                        const char *digest, char *buf, struct isola_error **err)
{
  _cleanup_close_ int fd = -1;
  struct stat st;
  int r = store_open_blob(s, digest, &fd, err);
  if (r < 0)
    return r;
  if (fstat(fd, &st) < 0)
    return isola_fail(err, errno, "blob %s in \"%s\"", digest, s->root);
  if ((r = tar_header(a, name, AE_IFREG, st.st_size, err)) < 0)
    return r;
  struct sha256_ctx *h = sha256_new();
  uint64_t done = 0;
  for (;;) {
    ssize_t n = read(fd, buf, IO_CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      sha256_free(h);
      return isola_fail(err, errno, "blob %s in \"%s\"", digest, s->root);
    }
    if (n == 0)
      break;
    done += (uint64_t) n;
    sha256_update(h, buf, (size_t) n);
    if (done > (uint64_t) st.st_size || archive_write_data(a, buf, (size_t) n) != n) {
      sha256_free(h);
      return done > (uint64_t) st.st_size
                 ? isola_failx(err, EIO, "blob %s in \"%s\" grew while saved", digest, s->root)
                 : tar_fail(a, name, err);
    }
  }
  char got[DIGEST_LEN + 1];
  sha256_final(h, got);
  if (done != (uint64_t) st.st_size || strcmp(got, digest))
    return isola_failx(err, EILSEQ, "blob %s in \"%s\" is corrupt (its content hashes to %s)",
                       digest, s->root, got);
  return 0;
}

static bool strv_has(char *const *v, const char *s)
{
  for (; v && *v; v++)
    if (!strcmp(*v, s))
      return true;
  return false;
}

static int save_oci(struct archive *a, struct image_store *s, struct save_image *v, size_t n,
                    char *buf, struct isola_error **err)
{
  static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
  int r;
  if ((r = tar_put(a, "oci-layout", layout, strlen(layout), err)) < 0 ||
      (r = tar_header(a, "blobs/", AE_IFDIR, 0, err)) < 0 ||
      (r = tar_header(a, "blobs/sha256/", AE_IFDIR, 0, err)) < 0)
    return r;
  _cleanup_strv_ char **written = xzalloc(sizeof(char *));
  _cleanup_json_ struct json_object *index = json_object_new_object();
  struct json_object *list = json_object_new_array();
  json_object_object_add(index, "schemaVersion", json_object_new_int(2));
  json_object_object_add(index, "mediaType", json_object_new_string(MT_OCI_INDEX));
  json_object_object_add(index, "manifests", list);
  for (size_t i = 0; i < n; i++) {
    const char *blobs[3] = {v[i].e.manifest, v[i].m->config_digest, NULL};
    for (size_t k = 0; k < 2 + v[i].m->n_layers; k++) {
      const char *d = k < 2 ? blobs[k] : v[i].m->layers[k - 2].digest;
      if (strv_has(written, d))
        continue;
      _cleanup_free_ char *name = xasprintf("blobs/sha256/%s", d + 7);
      if ((r = tar_put_blob(a, s, name, d, buf, err)) < 0)
        return r;
      written = strv_append(written, d);
    }
    struct json_object *desc = json_object_new_object();
    json_object_object_add(
        desc, "mediaType",
        json_object_new_string(v[i].m->media_type ? v[i].m->media_type : MT_OCI_MANIFEST));
    json_object_object_add(desc, "digest", json_object_new_string(v[i].e.manifest));
    json_object_object_add(desc, "size", json_object_new_int64((int64_t) v[i].manifest_len));
    if (v[i].name) {
      struct json_object *ann = json_object_new_object();
      const char *colon = strrchr(v[i].name, ':');
      json_object_object_add(ann, ANN_CONTAINERD_NAME, json_object_new_string(v[i].name));
      json_object_object_add(ann, ANN_REF_NAME, json_object_new_string(colon + 1));
      json_object_object_add(desc, "annotations", ann);
    }
    json_object_array_add(list, desc);
  }
  _cleanup_free_ char *text = json_to_string(index, false);
  return tar_put(a, "index.json", text, strlen(text), err);
}

static int save_docker(struct archive *a, struct image_store *s, struct save_image *v, size_t n,
                       char *buf, struct isola_error **err)
{
  _cleanup_strv_ char **written = xzalloc(sizeof(char *)), **configs = xzalloc(sizeof(char *));
  _cleanup_json_ struct json_object *top = json_object_new_array();
  int r;
  for (size_t i = 0; i < n; i++) {
    /* One entry per image, with every name it was asked for. */
    struct json_object *img = NULL;
    for (size_t j = 0; configs[j] && !img; j++)
      if (!strcmp(configs[j], v[i].e.manifest))
        img = json_object_array_get_idx(top, j);
    if (!img) {
      _cleanup_free_ char *cname = xasprintf("%s.json", v[i].m->config_digest + 7);
      if (!strv_has(written, cname)) {
        if ((r = tar_put_blob(a, s, cname, v[i].m->config_digest, buf, err)) < 0)
          return r;
        written = strv_append(written, cname);
      }
      struct json_object *layers = json_object_new_array();
      for (size_t k = 0; k < v[i].m->n_layers; k++) {
        const char *d = v[i].m->layers[k].digest;
        _cleanup_free_ char *lname = xasprintf("%s.tar", d + 7);
        if (!strv_has(written, lname)) {
          if ((r = tar_put_blob(a, s, lname, d, buf, err)) < 0)
            return r;
          written = strv_append(written, lname);
        }
        json_object_array_add(layers, json_object_new_string(lname));
      }
      img = json_object_new_object();
      json_object_object_add(img, "Config", json_object_new_string(cname));
      json_object_object_add(img, "RepoTags", json_object_new_array());
      json_object_object_add(img, "Layers", layers);
      json_object_array_add(top, img);
      configs = strv_append(configs, v[i].e.manifest);
    }
    /* Full names: docker shortens them when it loads, podman would take a short one for a
     * localhost/ image. */
    if (v[i].name) {
      struct json_object *tags = json_object_object_get(img, "RepoTags");
      bool seen = false;
      for (size_t k = 0; k < json_object_array_length(tags); k++)
        seen |= !strcmp(json_object_get_string(json_object_array_get_idx(tags, k)), v[i].name);
      if (!seen)
        json_object_array_add(tags, json_object_new_string(v[i].name));
    }
  }
  _cleanup_free_ char *text = json_to_string(top, false);
  return tar_put(a, "manifest.json", text, strlen(text), err);
}

/* Resolve what the user named; a name keeps its name in the archive, an id does not. */
static int save_resolve(struct image_store *s, const char *what, struct save_image *out,
                        struct isola_error **err)
{
  int r = store_resolve(s, what, &out->e, err);
  if (r < 0)
    return r;
  struct image_ref ref;
  if (ref_parse(what, &ref, NULL) == 0) {
    _cleanup_free_ char *full = ref.tag ? ref_format(&ref) : NULL;
    if (full && !strcmp(full, out->e.name))
      out->name = xstrdup(out->e.name);
    ref_clear(&ref);
  }
  if ((r = store_read_blob(s, out->e.manifest, &out->manifest_text, &out->manifest_len, err)) < 0 ||
      (r = manifest_parse(out->manifest_text, out->manifest_len, &out->m, err)) < 0)
    return isola_error_prefix(err, "image \"%s\"", what);
  return 0;
}

int image_save(struct image_store *s, char *const *what, enum save_format fmt, int fd,
               struct isola_error **err)
{
  size_t n = strv_length(what);
  if (n == 0)
    return isola_failx(err, EINVAL, "save: no image given");
  if (n > SAVE_MAX_IMAGES)
    return isola_failx(err, E2BIG, "save: more than %d images", SAVE_MAX_IMAGES);
  if (lazy_archive_load(err) < 0)
    return isola_error_prefix(err, "save");
  struct save_image *v = xzalloc(n * sizeof(*v));
  int r = 0;
  for (size_t i = 0; i < n && r == 0; i++)
    r = save_resolve(s, what[i], &v[i], err);
  if (r < 0) {
    save_images_free(v, n);
    return isola_error_prefix(err, "save");
  }
  struct archive *a = archive_write_new();
  if (!a)
    abort();
  _cleanup_free_ char *buf = xmalloc(IO_CHUNK);
  if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
      archive_write_add_filter_none(a) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
      archive_write_open_fd(a, fd) != ARCHIVE_OK) {
    r = isola_failx(err, EIO, "cannot start the archive: %s",
                    archive_error_string(a) ? archive_error_string(a) : "error");
  } else {
    r = fmt == SAVE_OCI_ARCHIVE ? save_oci(a, s, v, n, buf, err)
                                : save_docker(a, s, v, n, buf, err);
    if (archive_write_close(a) != ARCHIVE_OK && r == 0)
      r = isola_failx(err, EIO, "cannot finish the archive: %s",
                      archive_error_string(a) ? archive_error_string(a) : "write error");
  }
  archive_write_free(a);
  save_images_free(v, n);
  return r < 0 ? isola_error_prefix(err, "save") : 0;
}
