/* Typed, bounded access to config.json fields with errors that name the field path.
 * Internal to the spec parser. Each getter: absent key → returns 0 and leaves *out untouched
 * (sets *present=false when given); wrong type/range → error naming "WHAT: PATH.KEY". */
#pragma once

#include "spec.h"

struct jctx {
  const char *what; /* document name, e.g. "config.json" */
  struct isola_error **err;
};

int jfail(const struct jctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct json_object *jget(struct json_object *o, const char *key);
int jget_obj(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             struct json_object **out);
int jget_arr(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             struct json_object **out);
int jget_str(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             char **out);
int jget_bool(const struct jctx *c, struct json_object *o, const char *path, const char *key,
              bool *out, bool *present);
int jget_i64(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             int64_t min, int64_t max, int64_t *out, bool *present);
int jget_u64(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             uint64_t *out, bool *present);
int jget_u32(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             uint32_t *out, bool *present);
int jget_strv(const struct jctx *c, struct json_object *o, const char *path, const char *key,
              char ***out);
/* A string → string map as oci_kv pairs. */
int jget_map(const struct jctx *c, struct json_object *o, const char *path, const char *key,
             struct oci_kv **out, size_t *n);

/* Tables (spec_tables.c) */
int spec_rlimit_from_name(const char *name);
int spec_mount_option(const char *opt, struct oci_mount *m); /* 1 = consumed, 0 = fs data */
int spec_seccomp_action(const char *name, uint32_t *out);
int spec_seccomp_op(const char *name, int *out);
bool spec_seccomp_flag_known(const char *name);

int spec_parse_linux_extra(const struct jctx *c, struct json_object *linux_obj, struct oci_spec *s);
void spec_free_linux_extra(struct oci_spec *s);
