/* Image manifests, indexes and configs (OCI and docker schema 2), checked field by field. */
#include "image.h"
#include "spec_json.h"

#include <string.h>

#define MAX_LAYERS 1000
#define MAX_INDEX_ENTRIES 1000

#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

void manifest_free(struct image_manifest *m)
{
  if (!m)
    return;
  for (size_t i = 0; i < m->n_layers; i++) {
    free(m->layers[i].media_type);
    free(m->layers[i].digest);
  }
  free(m->layers);
  free(m->media_type);
  free(m->config_digest);
  free(m);
}

static int parse_descriptor(const struct jctx *c, struct json_object *o, const char *path,
                            char **media_type, char **digest, int64_t *size)
{
  if (!o || !json_object_is_type(o, json_type_object))
    return jfail(c, path, "expected a descriptor object");
  int r;
  bool has_size = false;
  if ((r = jget_str(c, o, path, "mediaType", media_type)) < 0 ||
      (r = jget_str(c, o, path, "digest", digest)) < 0 ||
      (r = jget_i64(c, o, path, "size", 0, INT64_MAX, size, &has_size)) < 0)
    return r;
  if (!*digest)
    return jfail(c, path, "no digest");
  if (digest_check(*digest, "", NULL) < 0)
    return jfail(c, path, "digest \"%.80s\" is not sha256:<64 hex digits>", *digest);
  if (!has_size)
    return jfail(c, path, "no size");
  return 0;
}

bool manifest_is_index(const char *text, size_t len)
{
  _cleanup_json_ struct json_object *o = NULL;
  if (json_parse_doc(text, len, "manifest", &o, NULL) < 0 ||
      !json_object_is_type(o, json_type_object))
    return false;
  struct json_object *mt = jget(o, "mediaType");
  const char *m = mt && json_object_is_type(mt, json_type_string) ? json_object_get_string(mt) : "";
  if (!strcmp(m, MT_OCI_INDEX) || !strcmp(m, MT_DOCKER_LIST))
    return true;
  /* An OCI index may leave mediaType out: it has "manifests" and no "layers". */
  return !*m && jget(o, "manifests") && !jget(o, "layers");
}

int manifest_parse(const char *text, size_t len, struct image_manifest **out,
                   struct isola_error **err)
{
  struct jctx c = {.what = "image manifest", .err = err};
  _cleanup_json_ struct json_object *o = NULL;
  int r = json_parse_doc(text, len, "image manifest", &o, err);
  if (r < 0)
    return r;
  if (!json_object_is_type(o, json_type_object))
    return jfail(&c, "", "expected an object");
  if (manifest_is_index(text, len))
    return isola_failx(err, EMEDIUMTYPE, "image manifest: an index, not a manifest");
  struct image_manifest *m = xzalloc(sizeof(*m));
  _cleanup_free_ char *cfg_mt = NULL;
  int64_t schema = 0;
  bool has_schema = false;
  struct json_object *cfg, *layers;
  if ((r = jget_i64(&c, o, "", "schemaVersion", 0, 100, &schema, &has_schema)) < 0)
    goto fail;
  if (!has_schema || schema != 2) {
    r = jfail(&c, "schemaVersion", "expected 2 (docker schema 1 images are not supported)");
    goto fail;
  }
  if ((r = jget_str(&c, o, "", "mediaType", &m->media_type)) < 0)
    goto fail;
  if (m->media_type && strcmp(m->media_type, MT_OCI_MANIFEST) &&
      strcmp(m->media_type, MT_DOCKER_MANIFEST)) {
    r = jfail(&c, "mediaType", "unsupported \"%.100s\"", m->media_type);
    goto fail;
  }
  if ((r = jget_obj(&c, o, "", "config", &cfg)) < 0)
    goto fail;
  if (!cfg) {
    r = jfail(&c, "config", "missing");
    goto fail;
  }
  if ((r = parse_descriptor(&c, cfg, "config", &cfg_mt, &m->config_digest, &m->config_size)) < 0)
    goto fail;
  if ((r = jget_arr(&c, o, "", "layers", &layers)) < 0)
    goto fail;
  if (!layers) {
    r = jfail(&c, "layers", "missing");
    goto fail;
  }
  size_t n = json_object_array_length(layers);
  if (n > MAX_LAYERS) {
    r = jfail(&c, "layers", "%zu layers (at most %d)", n, MAX_LAYERS);
    goto fail;
  }
  m->layers = xzalloc((n + 1) * sizeof(*m->layers));
  for (size_t i = 0; i < n; i++, m->n_layers++) {
    char path[32];
    snprintf(path, sizeof(path), "layers[%zu]", i);
    struct layer_desc *l = &m->layers[i];
    if ((r = parse_descriptor(&c, json_object_array_get_idx(layers, i), path, &l->media_type,
                              &l->digest, &l->size)) < 0) {
      m->n_layers++;
      goto fail;
    }
    if (l->media_type && strstr(l->media_type, "nondistributable") == NULL &&
        strncmp(l->media_type, "application/vnd.oci.image.layer.", 32) &&
        strncmp(l->media_type, "application/vnd.docker.image.rootfs.", 36)) {
      m->n_layers++;
      r = jfail(&c, path, "mediaType \"%.100s\" is not a layer", l->media_type);
      goto fail;
    }
  }
  *out = m;
  return 0;
fail:
  manifest_free(m);
  return r;
}

int index_select(const char *text, size_t len, const char *os, const char *arch,
                 char digest_out[DIGEST_LEN + 1], struct isola_error **err)
{
  struct jctx c = {.what = "image index", .err = err};
  _cleanup_json_ struct json_object *o = NULL;
  int r = json_parse_doc(text, len, "image index", &o, err);
  if (r < 0)
    return r;
  struct json_object *list;
  if ((r = jget_arr(&c, o, "", "manifests", &list)) < 0)
    return r;
  if (!list)
    return jfail(&c, "manifests", "missing");
  size_t n = json_object_array_length(list);
  if (n > MAX_INDEX_ENTRIES)
    return jfail(&c, "manifests", "%zu entries (at most %d)", n, MAX_INDEX_ENTRIES);
  _cleanup_free_ char *offered = xstrdup("");
  for (size_t i = 0; i < n; i++) {
    char path[32];
    snprintf(path, sizeof(path), "manifests[%zu]", i);
    struct json_object *e = json_object_array_get_idx(list, i), *plat;
    _cleanup_free_ char *mt = NULL, *digest = NULL, *p_os = NULL, *p_arch = NULL;
    int64_t size;
    if ((r = parse_descriptor(&c, e, path, &mt, &digest, &size)) < 0 ||
        (r = jget_obj(&c, e, path, "platform", &plat)) < 0)
      return r;
    if (!plat)
      continue;
    if ((r = jget_str(&c, plat, path, "os", &p_os)) < 0 ||
        (r = jget_str(&c, plat, path, "architecture", &p_arch)) < 0)
      return r;
    if (p_os && p_arch && !strcmp(p_os, os) && !strcmp(p_arch, arch)) {
      memcpy(digest_out, digest, DIGEST_LEN + 1);
      return 0;
    }
    if (strlen(offered) < 200) {
      char *o2 = xasprintf("%s%s%s/%s", offered, *offered ? ", " : "", p_os ? p_os : "?",
                           p_arch ? p_arch : "?");
      free(offered);
      offered = o2;
    }
  }
  return isola_failx(err, ENOENT, "image index: no manifest for %s/%s (it has: %s)", os, arch,
                     *offered ? offered : "none with a platform");
}

void image_config_free(struct image_config *c)
{
  if (!c)
    return;
  free(c->os);
  free(c->architecture);
  free(c->created);
  strv_free(c->entrypoint);
  strv_free(c->cmd);
  strv_free(c->env);
  free(c->working_dir);
  free(c->user);
  free(c->stop_signal);
  strv_free(c->diff_ids);
  free(c);
}

int image_config_parse(const char *text, size_t len, struct image_config **out,
                       struct isola_error **err)
{
  struct jctx c = {.what = "image config", .err = err};
  _cleanup_json_ struct json_object *o = NULL;
  int r = json_parse_doc(text, len, "image config", &o, err);
  if (r < 0)
    return r;
  if (!json_object_is_type(o, json_type_object))
    return jfail(&c, "", "expected an object");
  struct image_config *ic = xzalloc(sizeof(*ic));
  struct json_object *cfg = NULL, *rootfs = NULL;
  if ((r = jget_str(&c, o, "", "os", &ic->os)) < 0 ||
      (r = jget_str(&c, o, "", "architecture", &ic->architecture)) < 0 ||
      (r = jget_str(&c, o, "", "created", &ic->created)) < 0 ||
      (r = jget_obj(&c, o, "", "config", &cfg)) < 0 ||
      (r = jget_obj(&c, o, "", "rootfs", &rootfs)) < 0)
    goto fail;
  if (cfg && ((r = jget_strv(&c, cfg, "config", "Entrypoint", &ic->entrypoint)) < 0 ||
              (r = jget_strv(&c, cfg, "config", "Cmd", &ic->cmd)) < 0 ||
              (r = jget_strv(&c, cfg, "config", "Env", &ic->env)) < 0 ||
              (r = jget_str(&c, cfg, "config", "WorkingDir", &ic->working_dir)) < 0 ||
              (r = jget_str(&c, cfg, "config", "User", &ic->user)) < 0 ||
              (r = jget_str(&c, cfg, "config", "StopSignal", &ic->stop_signal)) < 0))
    goto fail;
  if (!rootfs) {
    r = jfail(&c, "rootfs", "missing");
    goto fail;
  }
  if ((r = jget_strv(&c, rootfs, "rootfs", "diff_ids", &ic->diff_ids)) < 0)
    goto fail;
  ic->n_diff_ids = strv_length(ic->diff_ids);
  if (ic->n_diff_ids > MAX_LAYERS) {
    r = jfail(&c, "rootfs.diff_ids", "%zu layers (at most %d)", ic->n_diff_ids, MAX_LAYERS);
    goto fail;
  }
  for (size_t i = 0; i < ic->n_diff_ids; i++)
    if (digest_check(ic->diff_ids[i], "", NULL) < 0) {
      char path[40];
      snprintf(path, sizeof(path), "rootfs.diff_ids[%zu]", i);
      r = jfail(&c, path, "\"%.80s\" is not sha256:<64 hex digits>", ic->diff_ids[i]);
      goto fail;
    }
  *out = ic;
  return 0;
fail:
  image_config_free(ic);
  return r;
}
