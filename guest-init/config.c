/* The PROCESS message: a JSON object from the host, validated field by field before anything
 * is mounted or started. The "process" object is parsed by the runtime's own OCI parser, so the
 * VM and the process isolation read a container's process the same way. */
#include "init.h"
#include "container.h"
#include "seccomp_filter.h"
#include "spec_json.h"

#include <limits.h>
#include <string.h>

static const char WHAT[] = "PROCESS";

static void mount_clear(struct oci_mount *m)
{
  free(m->destination);
  free(m->type);
  free(m->source);
  strv_free(m->options);
  free(m->data);
}

void guest_config_clear(struct guest_config *cfg)
{
  spec_process_clear(&cfg->process);
  free(cfg->hostname);
  free(cfg->domainname);
  free(cfg->root.source);
  free(cfg->root.fstype);
  free(cfg->root.writable);
  for (size_t i = 0; i < cfg->n_mounts; i++)
    mount_clear(&cfg->mounts[i]);
  free(cfg->mounts);
  free(cfg->user);
  if (cfg->seccomp) {
    seccomp_prog_clear(cfg->seccomp);
    free(cfg->seccomp);
  }
  memset(cfg, 0, sizeof(*cfg));
}

/* A path is absolute, shorter than PATH_MAX and free of ".." components: nothing the host sends
 * may name a place by climbing. */
static bool path_ok(const char *p)
{
  if (!p || p[0] != '/' || strlen(p) >= PATH_MAX)
    return false;
  for (const char *s = p; (s = strstr(s, "..")); s += 2)
    if (s[-1] == '/' && (s[2] == '/' || s[2] == '\0'))
      return false;
  return true;
}

static int parse_root(const struct jctx *c, struct json_object *o, struct guest_config *cfg)
{
  static const char *const keys[] = {"source", "fstype", "writable"};
  json_object_object_foreach (o, key, val) {
    (void) val;
    size_t i = 0;
    while (i < ARRAY_SIZE(keys) && strcmp(key, keys[i]))
      i++;
    if (i == ARRAY_SIZE(keys))
      return jfail(c, "root", "unknown key \"%s\"", key);
  }
  struct guest_root *r = &cfg->root;
  int ret;
  if ((ret = jget_str(c, o, "root", "source", &r->source)) < 0 ||
      (ret = jget_str(c, o, "root", "fstype", &r->fstype)) < 0 ||
      (ret = jget_str(c, o, "root", "writable", &r->writable)) < 0)
    return ret;
  if (r->source && !path_ok(r->source))
    return jfail(c, "root.source", "\"%s\" is not an absolute path", r->source);
  if (r->fstype && !strcmp(r->fstype, "auto")) {
    free(r->fstype);
    r->fstype = NULL;
  }
  if (r->fstype && strcmp(r->fstype, "erofs") && strcmp(r->fstype, "ext4"))
    return jfail(c, "root.fstype", "\"%s\" is not erofs, ext4 or auto", r->fstype);
  if (!r->writable)
    r->writable = xstrdup("tmpfs");
  if (strcmp(r->writable, "tmpfs") && strcmp(r->writable, "none") &&
      (strncmp(r->writable, "/dev/", 5) || !path_ok(r->writable)))
    return jfail(c, "root.writable", "\"%s\" is not tmpfs, none or a /dev/ block device",
                 r->writable);
  cfg->has_root = true;
  return 0;
}

static int parse_mounts(const struct jctx *c, struct json_object *arr, struct guest_config *cfg)
{
  size_t n = json_object_array_length(arr);
  if (n > ISOLA_GUEST_MAX_MOUNTS)
    return jfail(c, "mounts", "%zu mounts, at most %u", n, ISOLA_GUEST_MAX_MOUNTS);
  cfg->mounts = xzalloc((n + 1) * sizeof(*cfg->mounts));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i);
    struct oci_mount *m = &cfg->mounts[i];
    _cleanup_free_ char *path = xasprintf("mounts[%zu]", i);
    int r;
    cfg->n_mounts = i + 1;
    if (!e || !json_object_is_type(e, json_type_object))
      return jfail(c, path, "expected an object");
    if ((r = jget_str(c, e, path, "destination", &m->destination)) < 0 ||
        (r = jget_str(c, e, path, "type", &m->type)) < 0 ||
        (r = jget_str(c, e, path, "source", &m->source)) < 0 ||
        (r = jget_strv(c, e, path, "options", &m->options)) < 0)
      return r;
    if (!path_ok(m->destination))
      return jfail(c, path, "destination \"%s\" is not an absolute path without \"..\"",
                   m->destination ? m->destination : "");
    _cleanup_free_ char *data = NULL;
    for (size_t j = 0; m->options && m->options[j]; j++) {
      if (spec_mount_option(m->options[j], m))
        continue;
      char *nd = data ? xasprintf("%s,%s", data, m->options[j]) : xstrdup(m->options[j]);
      free(data);
      data = nd;
    }
    if (m->type && !strcmp(m->type, "bind"))
      m->bind = true;
    if (!m->type && !m->bind)
      return jfail(c, path, "no type given and not a bind mount");
    if (m->bind && !path_ok(m->source))
      return jfail(c, path, "bind source \"%s\" is not an absolute path without \"..\"",
                   m->source ? m->source : "");
    m->data = steal_pointer(&data);
  }
  return 0;
}

static int parse_name(const struct jctx *c, struct json_object *o, const char *key, char **out)
{
  int r = jget_str(c, o, "", key, out);
  if (r < 0 || !*out)
    return r;
  if (strlen(*out) > 64 || strchr(*out, '/'))
    return jfail(c, key, "\"%.64s\" is not a valid name (at most 64 bytes, no \"/\")", *out);
  return 0;
}

/* "resources": {"pids": {"limit": N}} (OCI linux.resources' shape; nothing else in there). */
static int parse_resources(const struct jctx *c, struct json_object *doc, struct guest_config *cfg)
{
  struct json_object *res = NULL, *pids = NULL;
  int r = jget_obj(c, doc, "", "resources", &res);
  if (r < 0 || !res)
    return r;
  json_object_object_foreach (res, key, val) {
    (void) val;
    if (strcmp(key, "pids"))
      return jfail(c, "resources", "unknown key \"%s\" (only \"pids\")", key);
  }
  if ((r = jget_obj(c, res, "resources", "pids", &pids)) < 0 || !pids)
    return r;
  return jget_i64(c, pids, "resources.pids", "limit", 1, INT32_MAX, &cfg->pids_limit, NULL);
}

/* "seccomp": an OCI linux.seccomp object, compiled here so that a bad one fails before the
 * process exists. */
static int parse_seccomp(const struct jctx *c, struct json_object *doc, struct guest_config *cfg,
                         struct isola_error **err)
{
  struct json_object *o = NULL;
  int r = jget_obj(c, doc, "", "seccomp", &o);
  if (r < 0 || !o)
    return r;
  _cleanup_(spec_seccomp_freep) struct oci_seccomp *sc = NULL;
  if ((r = spec_parse_seccomp(o, WHAT, &sc, err)) < 0)
    return r;
  if (sc->listener_path)
    return jfail(c, "seccomp.listenerPath", "a notify listener is not available in a VM");
  cfg->seccomp = xzalloc(sizeof(*cfg->seccomp));
  return seccomp_compile(sc, cfg->seccomp, err);
}

int guest_config_parse(const char *text, size_t len, struct guest_config *cfg,
                       struct isola_error **err)
{
  struct jctx cx = {WHAT, err}, *c = &cx;
  _cleanup_json_ struct json_object *doc = NULL;
  int r;

  memset(cfg, 0, sizeof(*cfg));
  if (memchr(text, '\0', len))
    return isola_failx(err, EINVAL, "%s: the JSON text contains a NUL byte", WHAT);
  if ((r = json_parse_doc(text, len, WHAT, &doc, err)) < 0)
    return r;
  if (!json_object_is_type(doc, json_type_object))
    return isola_failx(err, EINVAL, "%s: expected a JSON object", WHAT);

  static const char *const keys[] = {"process", "hostname",  "domainname", "root",  "mounts",
                                     "user",    "resources", "seccomp",    "detach"};
  json_object_object_foreach (doc, key, val) {
    (void) val;
    size_t i = 0;
    while (i < ARRAY_SIZE(keys) && strcmp(key, keys[i]))
      i++;
    if (i == ARRAY_SIZE(keys))
      return isola_failx(err, EINVAL, "%s: unknown key \"%s\"", WHAT, key);
  }

  struct json_object *proc, *root, *mounts;
  if ((r = jget_obj(c, doc, "", "process", &proc)) < 0)
    goto fail;
  if (!proc) {
    r = isola_failx(err, EINVAL, "%s: process: missing", WHAT);
    goto fail;
  }
  if ((r = spec_parse_process(proc, WHAT, &cfg->process, err)) < 0 ||
      (r = parse_name(c, doc, "hostname", &cfg->hostname)) < 0 ||
      (r = parse_name(c, doc, "domainname", &cfg->domainname)) < 0 ||
      (r = jget_str(c, doc, "", "user", &cfg->user)) < 0 ||
      (r = jget_bool(c, doc, "", "detach", &cfg->detach, NULL)) < 0 ||
      (r = parse_resources(c, doc, cfg)) < 0 || (r = parse_seccomp(c, doc, cfg, err)) < 0 ||
      (r = jget_obj(c, doc, "", "root", &root)) < 0 ||
      (root && (r = parse_root(c, root, cfg)) < 0) ||
      (r = jget_arr(c, doc, "", "mounts", &mounts)) < 0 ||
      (mounts && (r = parse_mounts(c, mounts, cfg)) < 0))
    goto fail;
  return 0;

fail:
  guest_config_clear(cfg);
  return r;
}

int guest_config_resolve_user(struct guest_config *cfg, struct isola_error **err)
{
  if (!cfg->user)
    return 0;
  _cleanup_json_ struct json_object *user = json_object_new_object();
  _cleanup_free_ char *home = NULL;
  int r = user_resolve(cfg->user, "/", user, &home, err);
  if (r < 0)
    return r;
  struct oci_user *u = &cfg->process.user;
  u->uid = (uint32_t) json_object_get_int64(json_object_object_get(user, "uid"));
  u->gid = (uint32_t) json_object_get_int64(json_object_object_get(user, "gid"));
  struct json_object *groups = json_object_object_get(user, "additionalGids");
  free(u->additional_gids);
  u->n_additional_gids = groups ? json_object_array_length(groups) : 0;
  u->additional_gids = xzalloc((u->n_additional_gids + 1) * sizeof(uint32_t));
  for (size_t i = 0; i < u->n_additional_gids; i++)
    u->additional_gids[i] = (uint32_t) json_object_get_int64(json_object_array_get_idx(groups, i));
  return 0;
}
