/* Named images (images.json), their unpacked layers, and pruning what nothing references. */
#include "image.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INDEX_FILE "images.json"
#define INDEX_MAX (64u << 20)

/* images.json: {"images": {"NAME": {"manifest": "sha256:..."}}}; absent means empty. */
static int index_read(struct image_store *s, struct json_object **out, struct isola_error **err)
{
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  int r = read_file_at(s->rootfd, INDEX_FILE, INDEX_MAX, &text, &len);
  if (r == -ENOENT) {
    *out = json_object_new_object();
    json_object_object_add(*out, "images", json_object_new_object());
    return 0;
  }
  if (r < 0)
    return isola_fail(err, -r, "cannot read \"%s/" INDEX_FILE "\"", s->root);
  struct json_object *o;
  if ((r = json_parse_doc(text, len, INDEX_FILE, &o, err)) < 0)
    return r;
  struct json_object *imgs;
  if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "images", &imgs) ||
      !json_object_is_type(imgs, json_type_object)) {
    json_object_put(o);
    return isola_failx(err, EINVAL, "\"%s/" INDEX_FILE "\" is damaged (no \"images\" object)",
                       s->root);
  }
  *out = o;
  return 0;
}

static int index_write(struct image_store *s, struct json_object *o, struct isola_error **err)
{
  _cleanup_free_ char *text = json_to_string(o, true);
  int r = write_file_atomic(s->rootfd, INDEX_FILE, text, strlen(text), 0600);
  if (r < 0)
    return isola_fail(err, -r, "cannot write \"%s/" INDEX_FILE "\"", s->root);
  return 0;
}

static struct json_object *index_images(struct json_object *idx)
{
  return json_object_object_get(idx, "images");
}

static const char *entry_manifest(struct json_object *e)
{
  struct json_object *m;
  if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "manifest", &m) ||
      !json_object_is_type(m, json_type_string))
    return NULL;
  const char *d = json_object_get_string(m);
  return digest_check(d, "", NULL) == 0 ? d : NULL;
}

int store_tag(struct image_store *s, const char *name, const char *manifest_digest,
              struct isola_error **err)
{
  int r = digest_check(manifest_digest, "manifest", err);
  if (r < 0)
    return r;
  if (!store_has_blob(s, manifest_digest))
    return isola_failx(err, ENOENT, "cannot name \"%s\": manifest %s is not in the store", name,
                       manifest_digest);
  _cleanup_close_ int lock = -1;
  if ((r = store_lock(s, &lock, err)) < 0)
    return r;
  _cleanup_json_ struct json_object *idx = NULL;
  if ((r = index_read(s, &idx, err)) < 0)
    return r;
  struct json_object *e = json_object_new_object();
  json_object_object_add(e, "manifest", json_object_new_string(manifest_digest));
  char now[32];
  time_t t = time(NULL);
  struct tm tm;
  strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  json_object_object_add(e, "tagged", json_object_new_string(now));
  json_object_object_add(index_images(idx), name, e);
  return index_write(s, idx, err);
}

void image_entries_free(struct image_entry *e, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(e[i].name);
    free(e[i].created);
  }
  free(e);
}

/* Fill config digest, created and size from the manifest and config blobs. */
static int entry_fill(struct image_store *s, struct image_entry *e, struct isola_error **err)
{
  _cleanup_free_ char *text = NULL, *ctext = NULL;
  size_t len, clen;
  struct image_manifest *m = NULL;
  struct image_config *c = NULL;
  int r = store_read_blob(s, e->manifest, &text, &len, err);
  if (r < 0 || (r = manifest_parse(text, len, &m, err)) < 0)
    goto out;
  memcpy(e->config, m->config_digest, DIGEST_LEN + 1);
  e->size = m->config_size;
  for (size_t i = 0; i < m->n_layers; i++)
    e->size += m->layers[i].size;
  if ((r = store_read_blob(s, m->config_digest, &ctext, &clen, err)) < 0 ||
      (r = image_config_parse(ctext, clen, &c, err)) < 0)
    goto out;
  e->created = xstrdup(c->created ? c->created : "");
out:
  if (r < 0)
    isola_error_prefix(err, "image \"%s\"", e->name);
  manifest_free(m);
  image_config_free(c);
  return r;
}

static int cmp_entry(const void *a, const void *b)
{
  return strcmp(((const struct image_entry *) a)->name, ((const struct image_entry *) b)->name);
}

int store_list(struct image_store *s, struct image_entry **out, size_t *n, struct isola_error **err)
{
  _cleanup_json_ struct json_object *idx = NULL;
  int r = index_read(s, &idx, err);
  if (r < 0)
    return r;
  struct json_object *imgs = index_images(idx);
  size_t cap = json_object_object_length(imgs), k = 0;
  struct image_entry *v = xzalloc((cap + 1) * sizeof(*v));
  json_object_object_foreach (imgs, name, e) {
    const char *d = entry_manifest(e);
    if (!d)
      continue;
    v[k].name = xstrdup(name);
    memcpy(v[k].manifest, d, DIGEST_LEN + 1);
    /* One damaged image (a blob gone or corrupt) must not hide the others: it is left out of
     * the list, and `rmi NAME` still removes its name (store_untag). */
    struct isola_error *fill_err = NULL;
    if (entry_fill(s, &v[k], &fill_err) < 0) {
      isola_error_free(&fill_err);
      free(v[k].name);
      free(v[k].created);
      memset(&v[k], 0, sizeof(v[k]));
      continue;
    }
    k++;
  }
  qsort(v, k, sizeof(*v), cmp_entry);
  *out = v;
  *n = k;
  return 0;
}

static bool is_hex_prefix(const char *s)
{
  size_t n = strlen(s);
  if (n < 4 || n > DIGEST_HEX_LEN)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

static void entry_copy(struct image_entry *dst, const struct image_entry *src)
{
  *dst = *src;
  dst->name = xstrdup(src->name);
  dst->created = xstrdup(src->created);
}

int store_resolve(struct image_store *s, const char *what, struct image_entry *out,
                  struct isola_error **err)
{
  struct image_entry *all = NULL;
  size_t n = 0;
  int r = store_list(s, &all, &n, err);
  if (r < 0)
    return r;
  const char *id = !strncmp(what, "sha256:", 7) ? what + 7 : what;
  struct image_ref ref = {0};
  _cleanup_free_ char *full = NULL;
  if (ref_parse(what, &ref, NULL) == 0)
    full = ref_format(&ref);
  const struct image_entry *found = NULL;
  /* A name first (as docker: "abcd" may be a repository), then a digest of the manifest given
   * with the name, then an id or its prefix. */
  for (size_t i = 0; i < n && full && !found; i++)
    if (!strcmp(all[i].name, full))
      found = &all[i];
  if (!found && ref.digest) {
    _cleanup_free_ char *repo = xasprintf("%s/%s:", ref.registry, ref.repository);
    for (size_t i = 0; i < n && !found; i++)
      if (!strcmp(all[i].manifest, ref.digest) && !strncmp(all[i].name, repo, strlen(repo)))
        found = &all[i];
  }
  const struct image_entry *by_id = NULL;
  bool ambiguous = false;
  if (!found && is_hex_prefix(id))
    for (size_t i = 0; i < n; i++)
      if (!strncmp(all[i].config + 7, id, strlen(id))) {
        if (by_id && strcmp(by_id->config, all[i].config))
          ambiguous = true;
        by_id = by_id ? by_id : &all[i];
      }
  ref_clear(&ref);
  if (ambiguous) {
    image_entries_free(all, n);
    return isola_failx(err, EINVAL, "image id prefix \"%s\" is ambiguous", what);
  }
  found = found ? found : by_id;
  if (!found) {
    image_entries_free(all, n);
    return isola_failx(err, ENOENT, "no such image \"%s\" in %s (try: isola images)", what,
                       s->root);
  }
  entry_copy(out, found);
  image_entries_free(all, n);
  return 0;
}

int store_untag(struct image_store *s, const char *what, bool force, char ***removed,
                struct isola_error **err)
{
  struct image_entry img = {0};
  struct isola_error *rerr = NULL;
  int r = store_resolve(s, what, &img, &rerr);
  if (r < 0) {
    /* A damaged image is not listed, but its name can still go. */
    _cleanup_free_ char *full = ref_normalize(what);
    _cleanup_close_ int lk = -1;
    _cleanup_json_ struct json_object *idx = NULL;
    if (r == -ENOENT && full && store_lock(s, &lk, NULL) == 0 && index_read(s, &idx, NULL) == 0 &&
        json_object_object_get(index_images(idx), full)) {
      isola_error_free(&rerr);
      json_object_object_del(index_images(idx), full);
      if ((r = index_write(s, idx, err)) < 0)
        return r;
      if (removed) {
        *removed = xzalloc(sizeof(char *));
        *removed = strv_append(*removed, full);
      }
      return 0;
    }
    *err = rerr;
    return r;
  }
  _cleanup_free_ char *name = img.name, *created = img.created;
  _cleanup_close_ int lock = -1;
  if ((r = store_lock(s, &lock, err)) < 0)
    return r;
  _cleanup_json_ struct json_object *idx = NULL;
  if ((r = index_read(s, &idx, err)) < 0)
    return r;
  _cleanup_free_ char *full = ref_normalize(what);
  struct json_object *imgs = index_images(idx);
  _cleanup_strv_ char **gone = xzalloc(sizeof(char *));
  if (full && json_object_object_get(imgs, full)) {
    gone = strv_append(gone, full);
  } else {
    /* By id: every name of the image; docker asks for -f when there are several. */
    size_t names = 0;
    json_object_object_foreach (imgs, k, e) {
      const char *d = entry_manifest(e);
      if (d && !strcmp(d, img.manifest))
        names++, gone = strv_append(gone, k);
    }
    if (names > 1 && !force)
      return isola_failx(err, EBUSY,
                         "image %.19s has %zu names: remove them by name, or use --force",
                         img.config, names);
  }
  for (char **g = gone; *g; g++)
    json_object_object_del(imgs, *g);
  if ((r = index_write(s, idx, err)) < 0)
    return r;
  if (removed)
    *removed = steal_pointer(&gone);
  return 0;
}

/* ---- layers ---- */

static int layer_unpack_locked(struct image_store *s, const struct layer_desc *l,
                               const char *diff_id, struct isola_error **err)
{
  const char *hex = diff_id + 7;
  _cleanup_free_ char *final = xasprintf("layers/sha256/%s", hex),
                      *partial = xasprintf("layers/sha256/%s.partial", hex),
                      *lockname = xasprintf("layers/sha256/%s.lock", hex);
  _cleanup_close_ int lock =
      openat(s->rootfd, lockname, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock < 0)
    return isola_fail(err, errno, "cannot lock layer %s", diff_id);
  while (flock(lock, LOCK_EX) < 0)
    if (errno != EINTR)
      return isola_fail(err, errno, "cannot lock layer %s", diff_id);
  struct stat st;
  if (fstatat(s->rootfd, final, &st, AT_SYMLINK_NOFOLLOW) == 0)
    return 0; /* another process unpacked it while we waited */
  /* A .partial here belongs to an unpacker that died: we hold the lock. */
  int r = rm_rf_at(s->rootfd, partial);
  if (r < 0 && r != -ENOENT)
    return isola_fail(err, -r, "cannot remove the leftover \"%s/%s\"", s->root, partial);
  if (mkdirat(s->rootfd, partial, 0755) < 0)
    return isola_fail(err, errno, "cannot create \"%s/%s\"", s->root, partial);
  _cleanup_close_ int dest = openat(s->rootfd, partial, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  _cleanup_close_ int blob = -1;
  if (dest < 0)
    return isola_fail(err, errno, "cannot open \"%s/%s\"", s->root, partial);
  char got[DIGEST_LEN + 1];
  struct unpack_stats stats = {0};
  if ((r = store_open_blob(s, l->digest, &blob, err)) < 0 ||
      (r = layer_unpack(blob, dest, &unpack_default_limits, got, &stats, err)) < 0)
    goto fail;
  if (strcmp(got, diff_id)) {
    r = isola_failx(err, EILSEQ, "layer %s: its content is %s, the image config says %s", l->digest,
                    got, diff_id);
    goto fail;
  }
  if (syncfs(dest) < 0 || renameat(s->rootfd, partial, s->rootfd, final) < 0) {
    r = isola_fail(err, errno, "cannot finish layer \"%s/%s\"", s->root, final);
    goto fail;
  }
  return 0;
fail:
  rm_rf_at(s->rootfd, partial);
  return r;
}

int store_image_layers(struct image_store *s, const struct image_entry *img, char ***paths,
                       struct isola_error **err)
{
  _cleanup_free_ char *text = NULL, *ctext = NULL;
  size_t len, clen;
  struct image_manifest *m = NULL;
  struct image_config *c = NULL;
  _cleanup_strv_ char **v = NULL;
  int r = store_read_blob(s, img->manifest, &text, &len, err);
  if (r < 0 || (r = manifest_parse(text, len, &m, err)) < 0 ||
      (r = store_read_blob(s, m->config_digest, &ctext, &clen, err)) < 0 ||
      (r = image_config_parse(ctext, clen, &c, err)) < 0)
    goto out;
  if (c->n_diff_ids != m->n_layers) {
    r = isola_failx(err, EINVAL, "the manifest has %zu layers but the config %zu diff_ids",
                    m->n_layers, c->n_diff_ids);
    goto out;
  }
  v = xzalloc((m->n_layers + 1) * sizeof(char *));
  for (size_t i = 0; i < m->n_layers; i++) {
    if ((r = layer_unpack_locked(s, &m->layers[i], c->diff_ids[i], err)) < 0)
      goto out;
    v[i] = xasprintf("%s/layers/sha256/%s", s->root, c->diff_ids[i] + 7);
  }
  *paths = steal_pointer(&v);
out:
  if (r < 0)
    isola_error_prefix(err, "image \"%s\"", img->name);
  manifest_free(m);
  image_config_free(c);
  return r;
}

/* ---- prune ---- */

struct keep_set {
  char **blobs;  /* hex of the manifests, configs and layer blobs to keep */
  char **layers; /* hex of the diff_ids (unpacked layers) to keep */
};

static void keep_image(struct image_store *s, const char *manifest, struct keep_set *k)
{
  _cleanup_free_ char *text = NULL, *ctext = NULL;
  size_t len, clen;
  struct image_manifest *m = NULL;
  struct image_config *c = NULL;
  k->blobs = strv_append(k->blobs, manifest + 7);
  if (store_read_blob(s, manifest, &text, &len, NULL) < 0 ||
      manifest_parse(text, len, &m, NULL) < 0)
    return;
  k->blobs = strv_append(k->blobs, m->config_digest + 7);
  for (size_t i = 0; i < m->n_layers; i++)
    k->blobs = strv_append(k->blobs, m->layers[i].digest + 7);
  if (store_read_blob(s, m->config_digest, &ctext, &clen, NULL) == 0 &&
      image_config_parse(ctext, clen, &c, NULL) == 0)
    for (size_t i = 0; i < c->n_diff_ids; i++)
      k->layers = strv_append(k->layers, c->diff_ids[i] + 7);
  manifest_free(m);
  image_config_free(c);
}

static bool kept(char **keep, const char *name)
{
  for (char **d = keep; d && *d; d++)
    if (!strncmp(name, *d, DIGEST_HEX_LEN) &&
        (!name[DIGEST_HEX_LEN] || name[DIGEST_HEX_LEN] == '.'))
      return true;
  return false;
}

static int prune_dir(struct image_store *s, const char *dir, char **keep, uint64_t *freed,
                     struct isola_error **err)
{
  _cleanup_close_ int fd = openat(s->rootfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT)
    return 0;
  if (fd < 0)
    return isola_fail(err, errno, "cannot open \"%s/%s\"", s->root, dir);
  DIR *d = fdopendir(fd);
  if (!d)
    return isola_fail(err, errno, "cannot read \"%s/%s\"", s->root, dir);
  fd = -1;
  _cleanup_strv_ char **victims = xzalloc(sizeof(char *));
  for (struct dirent *de; (de = readdir(d));) {
    if (de->d_name[0] == '.' || kept(keep, de->d_name))
      continue;
    victims = strv_append(victims, de->d_name);
  }
  int dfd = dirfd(d);
  for (char **v = victims; *v; v++) {
    struct stat st;
    if (fstatat(dfd, *v, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    int r = S_ISDIR(st.st_mode) ? rm_rf_at(dfd, *v) : (unlinkat(dfd, *v, 0) < 0 ? -errno : 0);
    if (r < 0 && r != -ENOENT) {
      closedir(d);
      return isola_fail(err, -r, "cannot remove \"%s/%s/%s\"", s->root, dir, *v);
    }
    if (S_ISREG(st.st_mode))
      *freed += st.st_size;
  }
  closedir(d);
  return 0;
}

int store_prune(struct image_store *s, uint64_t *freed_bytes, struct isola_error **err)
{
  int r = store_gc_lock(s, err);
  if (r < 0)
    return r;
  _cleanup_close_ int lock = -1;
  if ((r = store_lock(s, &lock, err)) < 0)
    return r;
  _cleanup_json_ struct json_object *idx = NULL;
  if ((r = index_read(s, &idx, err)) < 0)
    return r;
  struct keep_set k = {.blobs = xzalloc(sizeof(char *)), .layers = xzalloc(sizeof(char *))};
  json_object_object_foreach (index_images(idx), name, e) {
    (void) name;
    const char *d = entry_manifest(e);
    if (d)
      keep_image(s, d, &k);
  }
  /* Images of containers, even untagged since. */
  _cleanup_close_ int cfd = openat(s->rootfd, "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *cd = cfd >= 0 ? fdopendir(cfd) : NULL;
  if (cd) {
    cfd = -1;
    for (struct dirent *de; (de = readdir(cd));) {
      if (de->d_name[0] == '.')
        continue;
      _cleanup_free_ char *p = xasprintf("%s/image", de->d_name), *d = NULL;
      if (read_file_at(dirfd(cd), p, 256, &d, NULL) == 0) {
        d[strcspn(d, "\n")] = 0;
        if (digest_check(d, "", NULL) == 0)
          keep_image(s, d, &k);
      }
    }
    closedir(cd);
  }
  uint64_t freed = 0;
  r = prune_dir(s, "blobs/sha256", k.blobs, &freed, err);
  if (r == 0)
    r = prune_dir(s, "layers/sha256", k.layers, &freed, err);
  if (r == 0)
    r = prune_dir(s, "disks", k.blobs, &freed, err); /* HEX.erofs: HEX of the manifest */
  strv_free(k.blobs);
  strv_free(k.layers);
  if (freed_bytes)
    *freed_bytes = freed;
  return r;
}
