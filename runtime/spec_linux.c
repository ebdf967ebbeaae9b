/* config.json linux.resources, linux.devices and linux.seccomp. */
#include "spec_json.h"

#include <string.h>
#include <sys/stat.h>

static int parse_device_rules(const struct jctx *c, struct json_object *res, const char *P,
                              struct oci_resources *r)
{
  struct json_object *arr;
  int ret = jget_arr(c, res, P, "devices", &arr);
  if (ret < 0 || !arr)
    return ret;
  size_t n = json_object_array_length(arr);
  r->devices = xzalloc((n + 1) * sizeof(*r->devices));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i);
    struct oci_device_rule *d = &r->devices[i];
    _cleanup_free_ char *path = xasprintf("%s.devices[%zu]", P, i);
    _cleanup_free_ char *type = NULL, *access = NULL;
    bool have_allow = false, have_major = false, have_minor = false;
    if (!e || !json_object_is_type(e, json_type_object))
      return jfail(c, path, "expected an object");
    if ((ret = jget_bool(c, e, path, "allow", &d->allow, &have_allow)) < 0 ||
        (ret = jget_str(c, e, path, "type", &type)) < 0 ||
        (ret = jget_i64(c, e, path, "major", -1, INT32_MAX, &d->major, &have_major)) < 0 ||
        (ret = jget_i64(c, e, path, "minor", -1, INT32_MAX, &d->minor, &have_minor)) < 0 ||
        (ret = jget_str(c, e, path, "access", &access)) < 0)
      return ret;
    if (!have_allow)
      return jfail(c, path, "missing allow");
    if (!have_major)
      d->major = -1;
    if (!have_minor)
      d->minor = -1;
    d->type = type && *type ? type[0] : 'a';
    if ((type && strlen(type) > 1) || !strchr("acb", d->type))
      return jfail(c, path, "type \"%s\" is not one of a, c, b", type);
    if (!access || !*access)
      strcpy(d->access, "rwm");
    else if (strlen(access) > 3 || strspn(access, "rwm") != strlen(access))
      return jfail(c, path, "access \"%s\" is not a combination of r, w, m", access);
    else
      strcpy(d->access, access);
    r->n_devices = i + 1;
  }
  return 0;
}

static int parse_throttle(const struct jctx *c, struct json_object *o, const char *P,
                          const char *key, struct oci_throttle **out, size_t *n_out)
{
  struct json_object *arr;
  int r = jget_arr(c, o, P, key, &arr);
  if (r < 0 || !arr)
    return r;
  size_t n = json_object_array_length(arr);
  *out = xzalloc((n + 1) * sizeof(**out));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i);
    _cleanup_free_ char *path = xasprintf("%s.%s[%zu]", P, key, i);
    bool a = false, b = false, d = false;
    if ((r = jget_i64(c, e, path, "major", 0, INT32_MAX, &(*out)[i].major, &a)) < 0 ||
        (r = jget_i64(c, e, path, "minor", 0, INT32_MAX, &(*out)[i].minor, &b)) < 0 ||
        (r = jget_u64(c, e, path, "rate", &(*out)[i].rate, &d)) < 0)
      return r;
    if (!a || !b || !d)
      return jfail(c, path, "major, minor and rate are all required");
  }
  *n_out = n;
  return 0;
}

int spec_parse_resources(struct json_object *res, const char *what, struct oci_resources *r,
                         struct isola_error **err)
{
  struct jctx cx = {what, err}, *c = &cx;
  const char *P = "linux.resources";
  struct json_object *o;
  int ret;
  memset(r, 0, sizeof(*r));
  if ((ret = parse_device_rules(c, res, P, r)) < 0)
    return ret;

  if ((ret = jget_obj(c, res, P, "memory", &o)) < 0)
    return ret;
  if (o) {
    const char *M = "linux.resources.memory";
    if ((ret = jget_i64(c, o, M, "limit", -1, INT64_MAX, &r->mem_limit, &r->has_mem_limit)) < 0 ||
        (ret = jget_i64(c, o, M, "reservation", -1, INT64_MAX, &r->mem_reservation,
                        &r->has_mem_reservation)) < 0 ||
        (ret = jget_i64(c, o, M, "swap", -1, INT64_MAX, &r->mem_swap, &r->has_mem_swap)) < 0 ||
        (ret = jget_i64(c, o, M, "kernel", -1, INT64_MAX, &r->mem_kernel, &r->has_mem_kernel)) <
            0 ||
        (ret = jget_i64(c, o, M, "kernelTCP", -1, INT64_MAX, &r->mem_kernel_tcp,
                        &r->has_mem_kernel_tcp)) < 0 ||
        (ret = jget_u64(c, o, M, "swappiness", &r->mem_swappiness, &r->has_mem_swappiness)) < 0 ||
        (ret = jget_bool(c, o, M, "disableOOMKiller", &r->disable_oom_killer,
                         &r->has_disable_oom_killer)) < 0 ||
        (ret = jget_bool(c, o, M, "useHierarchy", &r->use_hierarchy, &r->has_use_hierarchy)) < 0 ||
        (ret = jget_bool(c, o, M, "checkBeforeUpdate", &r->check_before_update,
                         &r->has_check_before_update)) < 0)
      return ret;
    if (r->has_mem_swappiness && r->mem_swappiness > 100)
      return jfail(c, "linux.resources.memory.swappiness", "value %llu is above 100",
                   (unsigned long long) r->mem_swappiness);
    if (r->has_mem_limit && r->has_mem_swap && r->mem_limit > 0 && r->mem_swap > 0 &&
        r->mem_swap < r->mem_limit)
      return jfail(c, "linux.resources.memory.swap",
                   "memory+swap limit (%lld) is below the memory limit (%lld)",
                   (long long) r->mem_swap, (long long) r->mem_limit);
  }

  if ((ret = jget_obj(c, res, P, "cpu", &o)) < 0)
    return ret;
  if (o) {
    const char *C = "linux.resources.cpu";
    if ((ret = jget_u64(c, o, C, "shares", &r->cpu_shares, &r->has_cpu_shares)) < 0 ||
        (ret = jget_i64(c, o, C, "quota", -1, INT64_MAX, &r->cpu_quota, &r->has_cpu_quota)) < 0 ||
        (ret = jget_u64(c, o, C, "burst", &r->cpu_burst, &r->has_cpu_burst)) < 0 ||
        (ret = jget_u64(c, o, C, "period", &r->cpu_period, &r->has_cpu_period)) < 0 ||
        (ret = jget_i64(c, o, C, "realtimeRuntime", -1, INT64_MAX, &r->cpu_rt_runtime,
                        &r->has_cpu_rt_runtime)) < 0 ||
        (ret = jget_u64(c, o, C, "realtimePeriod", &r->cpu_rt_period, &r->has_cpu_rt_period)) < 0 ||
        (ret = jget_i64(c, o, C, "idle", 0, 1, &r->cpu_idle, &r->has_cpu_idle)) < 0 ||
        (ret = jget_str(c, o, C, "cpus", &r->cpu_cpus)) < 0 ||
        (ret = jget_str(c, o, C, "mems", &r->cpu_mems)) < 0)
      return ret;
    if (r->cpu_cpus && strspn(r->cpu_cpus, "0123456789,-") != strlen(r->cpu_cpus))
      return jfail(c, "linux.resources.cpu.cpus", "\"%s\" is not a CPU list", r->cpu_cpus);
    if (r->cpu_mems && strspn(r->cpu_mems, "0123456789,-") != strlen(r->cpu_mems))
      return jfail(c, "linux.resources.cpu.mems", "\"%s\" is not a node list", r->cpu_mems);
  }

  if ((ret = jget_obj(c, res, P, "pids", &o)) < 0)
    return ret;
  if (o && (ret = jget_i64(c, o, "linux.resources.pids", "limit", INT64_MIN, INT64_MAX,
                           &r->pids_limit, &r->has_pids_limit)) < 0)
    return ret;

  if ((ret = jget_obj(c, res, P, "blockIO", &o)) < 0)
    return ret;
  if (o) {
    const char *B = "linux.resources.blockIO";
    int64_t w = 0, lw = 0;
    struct json_object *arr;
    if ((ret = jget_i64(c, o, B, "weight", 0, 1000, &w, &r->has_blkio_weight)) < 0 ||
        (ret = jget_i64(c, o, B, "leafWeight", 0, 1000, &lw, &r->has_blkio_leaf_weight)) < 0)
      return ret;
    if ((r->has_blkio_weight && w && w < 10) || (r->has_blkio_leaf_weight && lw && lw < 10))
      return jfail(c, B, "weights are 10 to 1000 (or 0 to leave them)");
    r->blkio_weight = (uint16_t) w;
    r->blkio_leaf_weight = (uint16_t) lw;
    static const char *const keys[4] = {"throttleReadBpsDevice", "throttleWriteBpsDevice",
                                        "throttleReadIOPSDevice", "throttleWriteIOPSDevice"};
    for (int k = 0; k < 4; k++)
      if ((ret = parse_throttle(c, o, B, keys[k], &r->throttle[k], &r->n_throttle[k])) < 0)
        return ret;
    if ((ret = jget_arr(c, o, B, "weightDevice", &arr)) < 0)
      return ret;
    size_t n = arr ? json_object_array_length(arr) : 0;
    r->blkio_weight_devices = xzalloc((n + 1) * sizeof(*r->blkio_weight_devices));
    for (size_t i = 0; i < n; i++) {
      struct json_object *e = json_object_array_get_idx(arr, i);
      struct oci_weight_device *d = &r->blkio_weight_devices[i];
      _cleanup_free_ char *path = xasprintf("%s.weightDevice[%zu]", B, i);
      bool a = false, b = false;
      if ((ret = jget_i64(c, e, path, "major", 0, INT32_MAX, &d->major, &a)) < 0 ||
          (ret = jget_i64(c, e, path, "minor", 0, INT32_MAX, &d->minor, &b)) < 0 ||
          (ret = jget_i64(c, e, path, "weight", 0, 1000, &w, &d->has_weight)) < 0 ||
          (ret = jget_i64(c, e, path, "leafWeight", 0, 1000, &lw, &d->has_leaf_weight)) < 0)
        return ret;
      if (!a || !b)
        return jfail(c, path, "major and minor are required");
      if ((d->has_weight && w && w < 10) || (d->has_leaf_weight && lw && lw < 10))
        return jfail(c, path, "weights are 10 to 1000 (or 0 to leave them)");
      d->weight = (uint16_t) w;
      d->leaf_weight = (uint16_t) lw;
    }
    r->n_blkio_weight_devices = n;
  }

  struct json_object *arr;
  if ((ret = jget_arr(c, res, P, "hugepageLimits", &arr)) < 0)
    return ret;
  size_t n = arr ? json_object_array_length(arr) : 0;
  r->hugepage_limits = xzalloc((n + 1) * sizeof(*r->hugepage_limits));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i);
    _cleanup_free_ char *path = xasprintf("%s.hugepageLimits[%zu]", P, i);
    bool have = false;
    r->n_hugepage_limits = i + 1;
    if ((ret = jget_str(c, e, path, "pageSize", &r->hugepage_limits[i].page_size)) < 0 ||
        (ret = jget_u64(c, e, path, "limit", &r->hugepage_limits[i].limit, &have)) < 0)
      return ret;
    const char *ps = r->hugepage_limits[i].page_size;
    if (!ps || !have)
      return jfail(c, path, "pageSize and limit are required");
    if (strspn(ps, "0123456789") == 0 || strchr(ps, '/') ||
        strspn(ps, "0123456789KMGB") != strlen(ps))
      return jfail(c, path, "pageSize \"%s\" is not a size like 2MB", ps);
  }

  if ((ret = jget_obj(c, res, P, "network", &o)) < 0)
    return ret;
  if (o) {
    if ((ret = jget_u32(c, o, "linux.resources.network", "classID", &r->net_class_id,
                        &r->has_net_class_id)) < 0 ||
        (ret = jget_arr(c, o, "linux.resources.network", "priorities", &arr)) < 0)
      return ret;
    n = arr ? json_object_array_length(arr) : 0;
    r->net_priorities = xzalloc((n + 1) * sizeof(struct oci_kv));
    for (size_t i = 0; i < n; i++) {
      struct json_object *e = json_object_array_get_idx(arr, i);
      _cleanup_free_ char *path = xasprintf("linux.resources.network.priorities[%zu]", i);
      uint32_t prio = 0;
      bool have = false;
      r->n_net_priorities = i + 1;
      if ((ret = jget_str(c, e, path, "name", &r->net_priorities[i].key)) < 0 ||
          (ret = jget_u32(c, e, path, "priority", &prio, &have)) < 0)
        return ret;
      if (!r->net_priorities[i].key || !have)
        return jfail(c, path, "name and priority are required");
      r->net_priorities[i].value = xasprintf("%u", prio);
    }
  }

  if ((ret = jget_obj(c, res, P, "rdma", &o)) < 0)
    return ret;
  if (o) {
    n = json_object_object_length(o);
    r->rdma = xzalloc((n + 1) * sizeof(struct oci_kv));
    json_object_object_foreach (o, dev, lim) {
      _cleanup_free_ char *path = xasprintf("linux.resources.rdma.%s", dev);
      uint32_t handles = 0, objects = 0;
      bool hh = false, ho = false;
      if ((ret = jget_u32(c, lim, path, "hcaHandles", &handles, &hh)) < 0 ||
          (ret = jget_u32(c, lim, path, "hcaObjects", &objects, &ho)) < 0)
        return ret;
      struct oci_kv *kv = &r->rdma[r->n_rdma++];
      kv->key = xstrdup(dev);
      char h[32] = "", ob[32] = "";
      if (hh)
        snprintf(h, sizeof(h), " hca_handle=%u", handles);
      if (ho)
        snprintf(ob, sizeof(ob), " hca_object=%u", objects);
      kv->value = xasprintf("%s%s%s", dev, h, ob);
    }
  }

  if ((ret = jget_map(c, res, P, "unified", &r->unified, &r->n_unified)) < 0)
    return ret;
  for (size_t i = 0; i < r->n_unified; i++)
    if (strchr(r->unified[i].key, '/') || r->unified[i].key[0] == '.' ||
        !strchr(r->unified[i].key, '.'))
      return jfail(c, "linux.resources.unified", "invalid key \"%s\"", r->unified[i].key);
  return 0;
}

static void kv_free(struct oci_kv *kv, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(kv[i].key);
    free(kv[i].value);
  }
  free(kv);
}

void spec_resources_clear(struct oci_resources *r)
{
  free(r->devices);
  free(r->cpu_cpus);
  free(r->cpu_mems);
  free(r->blkio_weight_devices);
  for (int k = 0; k < 4; k++)
    free(r->throttle[k]);
  for (size_t i = 0; i < r->n_hugepage_limits; i++)
    free(r->hugepage_limits[i].page_size);
  free(r->hugepage_limits);
  kv_free(r->net_priorities, r->n_net_priorities);
  kv_free(r->rdma, r->n_rdma);
  kv_free(r->unified, r->n_unified);
  memset(r, 0, sizeof(*r));
}

static int parse_devices(const struct jctx *c, struct json_object *lin, struct oci_spec *s)
{
  struct json_object *arr;
  int r = jget_arr(c, lin, "linux", "devices", &arr);
  if (r < 0 || !arr)
    return r;
  size_t n = json_object_array_length(arr);
  s->devices = xzalloc((n + 1) * sizeof(*s->devices));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i);
    struct oci_device *d = &s->devices[i];
    _cleanup_free_ char *path = xasprintf("linux.devices[%zu]", i);
    _cleanup_free_ char *type = NULL;
    bool have_major = false, have_minor = false;
    s->n_devices = i + 1;
    if (!e || !json_object_is_type(e, json_type_object))
      return jfail(c, path, "expected an object");
    if ((r = jget_str(c, e, path, "path", &d->path)) < 0 ||
        (r = jget_str(c, e, path, "type", &type)) < 0 ||
        (r = jget_i64(c, e, path, "major", 0, INT32_MAX, &d->major, &have_major)) < 0 ||
        (r = jget_i64(c, e, path, "minor", 0, INT32_MAX, &d->minor, &have_minor)) < 0 ||
        (r = jget_u32(c, e, path, "fileMode", &d->mode, &d->has_mode)) < 0 ||
        (r = jget_u32(c, e, path, "uid", &d->uid, &d->has_uid)) < 0 ||
        (r = jget_u32(c, e, path, "gid", &d->gid, &d->has_gid)) < 0)
      return r;
    if (!d->path || d->path[0] != '/')
      return jfail(c, path, "path must be an absolute path");
    if (!type || strlen(type) != 1 || !strchr("cbup", type[0]))
      return jfail(c, path, "type \"%s\" is not one of c, b, u, p", type ? type : "");
    d->type = type[0];
    if (d->type != 'p' && (!have_major || !have_minor))
      return jfail(c, path, "major and minor are required for type %c", d->type);
    /* podman and docker pass the host node's st_mode, file type bits included: "type" says
     * what the node is, so only the permission bits count. */
    if (d->has_mode && (d->mode & ~(uint32_t) S_IFMT) > 07777)
      return jfail(c, path, "fileMode %o has bits beyond the permission bits", d->mode);
    d->mode &= ~(uint32_t) S_IFMT;
  }
  return 0;
}

static int parse_seccomp(const struct jctx *c, struct json_object *o, struct oci_seccomp *sc)
{
  const char *P = "linux.seccomp";
  _cleanup_free_ char *def = NULL;
  int r;
  if ((r = jget_str(c, o, P, "defaultAction", &def)) < 0)
    return r;
  if (!def)
    return jfail(c, "linux.seccomp.defaultAction", "missing");
  if (spec_seccomp_action(def, &sc->default_action) < 0)
    return jfail(c, "linux.seccomp.defaultAction", "unknown action \"%s\"", def);
  if ((r = jget_u32(c, o, P, "defaultErrnoRet", &sc->default_errno_ret, &sc->has_default_errno)) <
          0 ||
      (r = jget_strv(c, o, P, "architectures", &sc->architectures)) < 0 ||
      (r = jget_strv(c, o, P, "flags", &sc->flags)) < 0 ||
      (r = jget_str(c, o, P, "listenerPath", &sc->listener_path)) < 0 ||
      (r = jget_str(c, o, P, "listenerMetadata", &sc->listener_metadata)) < 0)
    return r;
  for (size_t i = 0; sc->flags && sc->flags[i]; i++)
    if (!spec_seccomp_flag_known(sc->flags[i])) {
      _cleanup_free_ char *path = xasprintf("linux.seccomp.flags[%zu]", i);
      return jfail(c, path, "unknown flag \"%s\"", sc->flags[i]);
    }
  struct json_object *arr;
  if ((r = jget_arr(c, o, P, "syscalls", &arr)) < 0)
    return r;
  size_t n = arr ? json_object_array_length(arr) : 0;
  sc->rules = xzalloc((n + 1) * sizeof(*sc->rules));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i);
    struct oci_seccomp_rule *rule = &sc->rules[i];
    _cleanup_free_ char *path = xasprintf("linux.seccomp.syscalls[%zu]", i);
    _cleanup_free_ char *action = NULL;
    struct json_object *args;
    sc->n_rules = i + 1;
    if (!e || !json_object_is_type(e, json_type_object))
      return jfail(c, path, "expected an object");
    if ((r = jget_strv(c, e, path, "names", &rule->names)) < 0 ||
        (r = jget_str(c, e, path, "action", &action)) < 0 ||
        (r = jget_u32(c, e, path, "errnoRet", &rule->errno_ret, &rule->has_errno)) < 0 ||
        (r = jget_arr(c, e, path, "args", &args)) < 0)
      return r;
    if (!rule->names || !rule->names[0])
      return jfail(c, path, "names must list at least one system call");
    if (!action)
      return jfail(c, path, "missing action");
    if (spec_seccomp_action(action, &rule->action) < 0)
      return jfail(c, path, "unknown action \"%s\"", action);
    size_t na = args ? json_object_array_length(args) : 0;
    if (na > 6)
      return jfail(c, path, "more than 6 argument conditions");
    rule->args = xzalloc((na + 1) * sizeof(*rule->args));
    for (size_t j = 0; j < na; j++) {
      struct json_object *a = json_object_array_get_idx(args, j);
      _cleanup_free_ char *apath = xasprintf("%s.args[%zu]", path, j);
      _cleanup_free_ char *op = NULL;
      uint32_t index = 0;
      bool have_index = false;
      if (!a || !json_object_is_type(a, json_type_object))
        return jfail(c, apath, "expected an object");
      if ((r = jget_u32(c, a, apath, "index", &index, &have_index)) < 0 ||
          (r = jget_u64(c, a, apath, "value", &rule->args[j].value, NULL)) < 0 ||
          (r = jget_u64(c, a, apath, "valueTwo", &rule->args[j].value_two, NULL)) < 0 ||
          (r = jget_str(c, a, apath, "op", &op)) < 0)
        return r;
      if (!have_index || index > 5)
        return jfail(c, apath, "index must be between 0 and 5");
      if (!op || spec_seccomp_op(op, &rule->args[j].op) < 0)
        return jfail(c, apath, "unknown op \"%s\"", op ? op : "");
      rule->args[j].index = index;
    }
    rule->n_args = na;
  }
  return 0;
}

int spec_parse_linux_extra(const struct jctx *c, struct json_object *lin, struct oci_spec *s)
{
  struct json_object *o;
  int r;
  if ((r = jget_obj(c, lin, "linux", "resources", &o)) < 0)
    return r;
  if (o) {
    if ((r = spec_parse_resources(o, c->what, &s->resources, c->err)) < 0)
      return r;
    s->has_resources = true;
  }
  if ((r = parse_devices(c, lin, s)) < 0)
    return r;
  if ((r = jget_obj(c, lin, "linux", "seccomp", &o)) < 0)
    return r;
  if (o) {
    s->seccomp = xzalloc(sizeof(*s->seccomp));
    if ((r = parse_seccomp(c, o, s->seccomp)) < 0)
      return r;
  }
  if ((r = jget_obj(c, lin, "linux", "intelRdt", &o)) < 0)
    return r;
  if (o)
    return jfail(c, "linux.intelRdt", "Intel RDT is not supported on this host");
  return 0;
}

void spec_seccomp_free(struct oci_seccomp *sc)
{
  if (!sc)
    return;
  strv_free(sc->architectures);
  strv_free(sc->flags);
  free(sc->listener_path);
  free(sc->listener_metadata);
  for (size_t i = 0; i < sc->n_rules; i++) {
    strv_free(sc->rules[i].names);
    free(sc->rules[i].args);
  }
  free(sc->rules);
  free(sc);
}

int spec_parse_seccomp(struct json_object *obj, const char *what, struct oci_seccomp **out,
                       struct isola_error **err)
{
  struct jctx cx = {what, err};
  struct oci_seccomp *sc = xzalloc(sizeof(*sc));
  int r = parse_seccomp(&cx, obj, sc);
  if (r < 0) {
    spec_seccomp_free(sc);
    return r;
  }
  *out = sc;
  return 0;
}

void spec_free_linux_extra(struct oci_spec *s)
{
  spec_resources_clear(&s->resources);
  for (size_t i = 0; i < s->n_devices; i++)
    free(s->devices[i].path);
  free(s->devices);
  spec_seccomp_free(s->seccomp);
}
