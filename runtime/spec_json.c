/* Typed getters over json-c for the config.json parser; see spec_json.h. */
#include "spec_json.h"

#include <string.h>

static char *join_path(const char *path, const char *key)
{
  if (!path || !*path)
    return xstrdup(key);
  return xasprintf("%s.%s", path, key);
}

int jfail(const struct jctx *c, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  _cleanup_free_ char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0)
    abort();
  va_end(ap);
  return isola_failx(c->err, EINVAL, "%s: %s: %s", c->what, path, msg);
}

struct json_object *jget(struct json_object *o, const char *key)
{
  struct json_object *v = NULL;
  if (!o || !json_object_is_type(o, json_type_object))
    return NULL;
  if (!json_object_object_get_ex(o, key, &v))
    return NULL;
  return v; /* JSON null counts as absent */
}

static const char *type_name(struct json_object *v)
{
  return json_type_to_name(json_object_get_type(v));
}

int jget_obj(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             struct json_object **out)
{
  struct json_object *v = jget(o, key);
  *out = NULL;
  if (!v)
    return 0;
  if (!json_object_is_type(v, json_type_object)) {
    _cleanup_free_ char *p = join_path(path, key);
    return jfail(c, p, "expected an object, got %s", type_name(v));
  }
  *out = v;
  return 0;
}

int jget_arr(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             struct json_object **out)
{
  struct json_object *v = jget(o, key);
  *out = NULL;
  if (!v)
    return 0;
  if (!json_object_is_type(v, json_type_array)) {
    _cleanup_free_ char *p = join_path(path, key);
    return jfail(c, p, "expected an array, got %s", type_name(v));
  }
  if (json_object_array_length(v) > 65536) {
    _cleanup_free_ char *p = join_path(path, key);
    return jfail(c, p, "too many entries (%zu, limit 65536)", json_object_array_length(v));
  }
  *out = v;
  return 0;
}

int jget_str(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             char **out)
{
  struct json_object *v = jget(o, key);
  if (!v)
    return 0;
  if (!json_object_is_type(v, json_type_string)) {
    _cleanup_free_ char *p = join_path(path, key);
    return jfail(c, p, "expected a string, got %s", type_name(v));
  }
  const char *s = json_object_get_string(v);
  if (strlen(s) != (size_t) json_object_get_string_len(v)) {
    _cleanup_free_ char *p = join_path(path, key);
    return jfail(c, p, "string contains a NUL byte");
  }
  free(*out);
  *out = xstrdup(s);
  return 0;
}

int jget_bool(const struct jctx *c, struct json_object *o, const char *path, const char *key,
              bool *out, bool *present)
{
  struct json_object *v = jget(o, key);
  if (present)
    *present = false;
  if (!v)
    return 0;
  if (!json_object_is_type(v, json_type_boolean)) {
    _cleanup_free_ char *p = join_path(path, key);
    return jfail(c, p, "expected true or false, got %s", type_name(v));
  }
  *out = json_object_get_boolean(v);
  if (present)
    *present = true;
  return 0;
}

int jget_i64(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             int64_t min, int64_t max, int64_t *out, bool *present)
{
  struct json_object *v = jget(o, key);
  if (present)
    *present = false;
  if (!v)
    return 0;
  _cleanup_free_ char *p = join_path(path, key);
  if (!json_object_is_type(v, json_type_int))
    return jfail(c, p, "expected an integer, got %s", type_name(v));
  errno = 0;
  int64_t x = json_object_get_int64(v);
  /* json-c clamps values above INT64_MAX; treat as out of range unless it is a uint64. */
  if (x == INT64_MAX && json_object_get_uint64(v) != (uint64_t) INT64_MAX)
    return jfail(c, p, "value out of range");
  if (x < min || x > max)
    return jfail(c, p, "value %lld out of range [%lld, %lld]", (long long) x, (long long) min,
                 (long long) max);
  *out = x;
  if (present)
    *present = true;
  return 0;
}

int jget_u64(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             uint64_t *out, bool *present)
{
  struct json_object *v = jget(o, key);
  if (present)
    *present = false;
  if (!v)
    return 0;
  _cleanup_free_ char *p = join_path(path, key);
  if (!json_object_is_type(v, json_type_int))
    return jfail(c, p, "expected a non-negative integer, got %s", type_name(v));
  if (json_object_get_int64(v) < 0)
    return jfail(c, p, "expected a non-negative integer, got %lld",
                 (long long) json_object_get_int64(v));
  *out = json_object_get_uint64(v);
  if (present)
    *present = true;
  return 0;
}

int jget_u32(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             uint32_t *out, bool *present)
{
  int64_t x;
  bool have = false;
  int r = jget_i64(c, o, path, key, 0, UINT32_MAX, &x, &have);
  if (r < 0)
    return r;
  if (present)
    *present = have;
  if (have)
    *out = (uint32_t) x;
  return 0;
}

int jget_strv(const struct jctx *c, struct json_object *o, const char *path, const char *key,
              char ***out)
{
  struct json_object *a;
  int r = jget_arr(c, o, path, key, &a);
  if (r < 0 || !a)
    return r;
  size_t n = json_object_array_length(a);
  _cleanup_strv_ char **v = xzalloc((n + 1) * sizeof(char *));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(a, i);
    if (!e || !json_object_is_type(e, json_type_string)) {
      _cleanup_free_ char *p =
          xasprintf("%s%s%s[%zu]", path ? path : "", path && *path ? "." : "", key, i);
      return jfail(c, p, "expected a string, got %s", e ? type_name(e) : "null");
    }
    const char *s = json_object_get_string(e);
    if (strlen(s) != (size_t) json_object_get_string_len(e)) {
      _cleanup_free_ char *p =
          xasprintf("%s%s%s[%zu]", path ? path : "", path && *path ? "." : "", key, i);
      return jfail(c, p, "string contains a NUL byte");
    }
    v[i] = xstrdup(s);
  }
  strv_free(*out);
  *out = steal_pointer(&v);
  return 0;
}

int jget_map(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             struct oci_kv **out, size_t *n)
{
  struct json_object *m;
  int r = jget_obj(c, o, path, key, &m);
  if (r < 0 || !m)
    return r;
  size_t count = json_object_object_length(m), i = 0;
  struct oci_kv *kv = xzalloc((count + 1) * sizeof(*kv));
  json_object_object_foreach (m, k, v) {
    bool is_str = json_object_is_type(v, json_type_string);
    if (!is_str || strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v)) {
      _cleanup_free_ char *p =
          xasprintf("%s%s%s.%s", path ? path : "", path && *path ? "." : "", key, k);
      for (size_t j = 0; j < i; j++) {
        free(kv[j].key);
        free(kv[j].value);
      }
      free(kv);
      if (is_str)
        return jfail(c, p, "string contains a NUL byte");
      return jfail(c, p, "expected a string, got %s", type_name(v));
    }
    kv[i].key = xstrdup(k);
    kv[i].value = xstrdup(json_object_get_string(v));
    i++;
  }
  *out = kv;
  *n = i;
  return 0;
}
