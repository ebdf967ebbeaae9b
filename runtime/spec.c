/* config.json → struct oci_spec: top level, process, mounts, hooks, namespaces. */
#include "spec_json.h"

#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/stat.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

int spec_propagation_from_name(const char *name, unsigned long *out);

static const struct {
  const char *name, *proc_name;
  int flag;
} ns_table[NS_COUNT] = {
    [NS_PID] = {"pid", "pid", CLONE_NEWPID},
    [NS_NETWORK] = {"network", "net", CLONE_NEWNET},
    [NS_MOUNT] = {"mount", "mnt", CLONE_NEWNS},
    [NS_IPC] = {"ipc", "ipc", CLONE_NEWIPC},
    [NS_UTS] = {"uts", "uts", CLONE_NEWUTS},
    [NS_USER] = {"user", "user", CLONE_NEWUSER},
    [NS_CGROUP] = {"cgroup", "cgroup", CLONE_NEWCGROUP},
    [NS_TIME] = {"time", "time", CLONE_NEWTIME},
};

const char *spec_ns_name(enum oci_ns_type t)
{
  return ns_table[t].name;
}

const char *spec_ns_proc_name(enum oci_ns_type t)
{
  return ns_table[t].proc_name;
}

const struct oci_namespace *spec_find_ns(const struct oci_spec *s, enum oci_ns_type t)
{
  for (size_t i = 0; i < s->n_namespaces; i++)
    if (s->namespaces[i].type == t)
      return &s->namespaces[i];
  return NULL;
}

static int parse_caps(const struct jctx *c, struct json_object *o, const char *path,
                      struct oci_caps *caps)
{
  static const char *const sets[] = {"bounding", "effective", "inheritable", "permitted",
                                     "ambient"};
  uint64_t *dst[] = {&caps->bounding, &caps->effective, &caps->inheritable, &caps->permitted,
                     &caps->ambient};
  int last = spec_cap_last();
  for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
    _cleanup_strv_ char **names = NULL;
    int r = jget_strv(c, o, path, sets[i], &names);
    if (r < 0)
      return r;
    for (size_t j = 0; names && names[j]; j++) {
      int cap = spec_cap_from_name(names[j]);
      if (cap < 0) {
        _cleanup_free_ char *p = xasprintf("%s.%s[%zu]", path, sets[i], j);
        return jfail(c, p, "unknown capability \"%s\"", names[j]);
      }
      if (cap <= last) /* known to us but not to this kernel: nothing to grant */
        *dst[i] |= 1ULL << cap;
    }
  }
  return 0;
}

void spec_process_clear(struct oci_process *p)
{
  strv_free(p->args);
  strv_free(p->env);
  free(p->cwd);
  free(p->user.additional_gids);
  free(p->rlimits);
  free(p->apparmor_profile);
  free(p->selinux_label);
  free(p->exec_cpu_affinity_initial);
  free(p->exec_cpu_affinity_final);
  memset(p, 0, sizeof(*p));
}

int spec_parse_process(struct json_object *obj, const char *what, struct oci_process *p,
                       struct isola_error **err)
{
  struct jctx cx = {what, err}, *c = &cx;
  const char *P = "process";
  struct json_object *o;
  int r;

  memset(p, 0, sizeof(*p));
  if ((r = jget_bool(c, obj, P, "terminal", &p->terminal, NULL)) < 0)
    return r;
  if ((r = jget_obj(c, obj, P, "consoleSize", &o)) < 0)
    return r;
  if (o && ((r = jget_u32(c, o, "process.consoleSize", "height", &p->console_height, NULL)) < 0 ||
            (r = jget_u32(c, o, "process.consoleSize", "width", &p->console_width, NULL)) < 0))
    return r;

  if ((r = jget_obj(c, obj, P, "user", &o)) < 0)
    return r;
  if (o) {
    struct json_object *gids;
    if ((r = jget_u32(c, o, "process.user", "uid", &p->user.uid, NULL)) < 0 ||
        (r = jget_u32(c, o, "process.user", "gid", &p->user.gid, NULL)) < 0 ||
        (r = jget_u32(c, o, "process.user", "umask", &p->user.umask, &p->user.has_umask)) < 0 ||
        (r = jget_arr(c, o, "process.user", "additionalGids", &gids)) < 0)
      return r;
    if (p->user.has_umask && p->user.umask > 0777)
      return jfail(c, "process.user.umask", "value %o is not a file mode mask", p->user.umask);
    if (jget(o, "username"))
      return jfail(c, "process.user.username", "is a Windows field; use uid and gid");
    size_t n = gids ? json_object_array_length(gids) : 0;
    if (n > 65536)
      return jfail(c, "process.user.additionalGids", "too many groups");
    p->user.additional_gids = xzalloc((n + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
      struct json_object *g = json_object_array_get_idx(gids, i);
      int64_t v = g && json_object_is_type(g, json_type_int) ? json_object_get_int64(g) : -1;
      if (v < 0 || v > UINT32_MAX) {
        _cleanup_free_ char *path = xasprintf("process.user.additionalGids[%zu]", i);
        return jfail(c, path, "expected a group id");
      }
      p->user.additional_gids[i] = (uint32_t) v;
    }
    p->user.n_additional_gids = n;
  }

  if ((r = jget_strv(c, obj, P, "args", &p->args)) < 0 ||
      (r = jget_strv(c, obj, P, "env", &p->env)) < 0 ||
      (r = jget_str(c, obj, P, "cwd", &p->cwd)) < 0)
    return r;
  if (jget(obj, "commandLine"))
    return jfail(c, "process.commandLine", "is a Windows field; use args");
  if (!p->args || !p->args[0])
    return jfail(c, "process.args", "missing: the process needs at least one argument");
  if (!p->cwd)
    return jfail(c, "process.cwd", "missing");
  if (p->cwd[0] != '/')
    return jfail(c, "process.cwd", "\"%s\" is not an absolute path", p->cwd);
  for (size_t i = 0; p->env && p->env[i]; i++)
    if (!strchr(p->env[i], '=') || p->env[i][0] == '=') {
      _cleanup_free_ char *path = xasprintf("process.env[%zu]", i);
      return jfail(c, path, "\"%s\" is not of the form NAME=VALUE", p->env[i]);
    }

  if ((r = jget_obj(c, obj, P, "capabilities", &o)) < 0)
    return r;
  if (o) {
    p->has_caps = true;
    if ((r = parse_caps(c, o, "process.capabilities", &p->caps)) < 0)
      return r;
  }

  struct json_object *rl;
  if ((r = jget_arr(c, obj, P, "rlimits", &rl)) < 0)
    return r;
  size_t n = rl ? json_object_array_length(rl) : 0;
  p->rlimits = xzalloc((n + 1) * sizeof(*p->rlimits));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(rl, i);
    _cleanup_free_ char *path = xasprintf("process.rlimits[%zu]", i);
    _cleanup_free_ char *type = NULL;
    bool have_soft = false, have_hard = false;
    if (!e || !json_object_is_type(e, json_type_object))
      return jfail(c, path, "expected an object");
    if ((r = jget_str(c, e, path, "type", &type)) < 0 ||
        (r = jget_u64(c, e, path, "soft", &p->rlimits[i].soft, &have_soft)) < 0 ||
        (r = jget_u64(c, e, path, "hard", &p->rlimits[i].hard, &have_hard)) < 0)
      return r;
    if (!type)
      return jfail(c, path, "missing type");
    p->rlimits[i].resource = spec_rlimit_from_name(type);
    if (p->rlimits[i].resource < 0)
      return jfail(c, path, "unknown rlimit type \"%s\"", type);
    if (!have_soft || !have_hard)
      return jfail(c, path, "soft and hard are both required");
    for (size_t j = 0; j < i; j++)
      if (p->rlimits[j].resource == p->rlimits[i].resource)
        return jfail(c, path, "rlimit \"%s\" given twice", type);
  }
  p->n_rlimits = n;

  if ((r = jget_bool(c, obj, P, "noNewPrivileges", &p->no_new_privileges,
                     &p->has_no_new_privileges)) < 0)
    return r;
  int64_t oom;
  if ((r = jget_i64(c, obj, P, "oomScoreAdj", -1000, 1000, &oom, &p->has_oom_score_adj)) < 0)
    return r;
  p->oom_score_adj = (int) oom;
  if ((r = jget_str(c, obj, P, "apparmorProfile", &p->apparmor_profile)) < 0 ||
      (r = jget_str(c, obj, P, "selinuxLabel", &p->selinux_label)) < 0)
    return r;

  if ((r = jget_obj(c, obj, P, "ioPriority", &o)) < 0)
    return r;
  if (o) {
    _cleanup_free_ char *cls = NULL;
    int64_t prio = 0;
    if ((r = jget_str(c, o, "process.ioPriority", "class", &cls)) < 0 ||
        (r = jget_i64(c, o, "process.ioPriority", "priority", 0, 7, &prio, NULL)) < 0)
      return r;
    static const char *const classes[] = {"IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE",
                                          "IOPRIO_CLASS_IDLE"};
    p->io_priority_class = 0;
    for (size_t i = 0; cls && i < ARRAY_SIZE(classes); i++)
      if (!strcmp(cls, classes[i]))
        p->io_priority_class = (int) i + 1;
    if (!p->io_priority_class)
      return jfail(c, "process.ioPriority.class", "unknown class \"%s\"", cls ? cls : "");
    p->io_priority = (int) prio;
    p->has_io_priority = true;
  }

  if ((r = jget_obj(c, obj, P, "scheduler", &o)) < 0)
    return r;
  if (o) {
    _cleanup_free_ char *pol = NULL;
    int64_t nice = 0, prio = 0;
    if ((r = jget_str(c, o, "process.scheduler", "policy", &pol)) < 0 ||
        (r = jget_i64(c, o, "process.scheduler", "nice", -20, 19, &nice, NULL)) < 0 ||
        (r = jget_i64(c, o, "process.scheduler", "priority", 0, 99, &prio, NULL)) < 0)
      return r;
    static const char *const pols[] = {"SCHED_OTHER", "SCHED_FIFO", "SCHED_RR",      "SCHED_BATCH",
                                       "SCHED_ISO",   "SCHED_IDLE", "SCHED_DEADLINE"};
    p->sched_policy = -1;
    for (size_t i = 0; pol && i < ARRAY_SIZE(pols); i++)
      if (!strcmp(pol, pols[i]))
        p->sched_policy = (int) i;
    if (p->sched_policy < 0)
      return jfail(c, "process.scheduler.policy", "unknown policy \"%s\"", pol ? pol : "");
    p->sched_nice = (int) nice;
    p->sched_priority = (int) prio;
    static const char *const flag_names[] = {
        "SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM",     "SCHED_FLAG_DL_OVERRUN",
        "SCHED_FLAG_KEEP_POLICY",   "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
        "SCHED_FLAG_UTIL_CLAMP_MAX"};
    _cleanup_strv_ char **flags = NULL;
    bool has_rt = false, has_dl = false, has_pd = false;
    if ((r = jget_strv(c, o, "process.scheduler", "flags", &flags)) < 0 ||
        (r = jget_u64(c, o, "process.scheduler", "runtime", &p->sched_runtime, &has_rt)) < 0 ||
        (r = jget_u64(c, o, "process.scheduler", "deadline", &p->sched_deadline, &has_dl)) < 0 ||
        (r = jget_u64(c, o, "process.scheduler", "period", &p->sched_period, &has_pd)) < 0)
      return r;
    for (size_t i = 0; flags && flags[i]; i++) {
      size_t k = 0;
      while (k < ARRAY_SIZE(flag_names) && strcmp(flags[i], flag_names[k]))
        k++;
      if (k == ARRAY_SIZE(flag_names)) {
        _cleanup_free_ char *path = xasprintf("process.scheduler.flags[%zu]", i);
        return jfail(c, path, "unknown flag \"%s\"", flags[i]);
      }
      p->sched_flags |= 1ULL << k;
    }
    if (p->sched_policy == 6 /* SCHED_DEADLINE */ && (!has_rt || !has_dl))
      return jfail(c, "process.scheduler", "SCHED_DEADLINE needs runtime and deadline");
    p->has_scheduler = true;
  }

  if ((r = jget_obj(c, obj, P, "execCPUAffinity", &o)) < 0)
    return r;
  if (o &&
      ((r = jget_str(c, o, "process.execCPUAffinity", "initial", &p->exec_cpu_affinity_initial)) <
           0 ||
       (r = jget_str(c, o, "process.execCPUAffinity", "final", &p->exec_cpu_affinity_final)) < 0))
    return r;
  return 0;
}

static int parse_mounts(const struct jctx *c, struct json_object *root, struct oci_spec *s)
{
  struct json_object *arr;
  int r = jget_arr(c, root, "", "mounts", &arr);
  if (r < 0 || !arr)
    return r;
  size_t n = json_object_array_length(arr);
  s->mounts = xzalloc((n + 1) * sizeof(*s->mounts));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i);
    struct oci_mount *m = &s->mounts[i];
    _cleanup_free_ char *path = xasprintf("mounts[%zu]", i);
    s->n_mounts = i + 1;
    if (!e || !json_object_is_type(e, json_type_object))
      return jfail(c, path, "expected an object");
    if ((r = jget_str(c, e, path, "destination", &m->destination)) < 0 ||
        (r = jget_str(c, e, path, "type", &m->type)) < 0 ||
        (r = jget_str(c, e, path, "source", &m->source)) < 0 ||
        (r = jget_strv(c, e, path, "options", &m->options)) < 0)
      return r;
    if (!m->destination || !*m->destination)
      return jfail(c, path, "missing destination");
    if (m->destination[0] != '/') {
      /* Spec versions before 1.0 allowed relative destinations: they are relative to "/". */
      char *abs = xasprintf("/%s", m->destination);
      free(m->destination);
      m->destination = abs;
    }
    if (jget(e, "uidMappings") || jget(e, "gidMappings"))
      return jfail(c, path, "idmapped mounts are not supported");
    _cleanup_free_ char *data = NULL;
    for (size_t j = 0; m->options && m->options[j]; j++) {
      if (!strcmp(m->options[j], "idmap") || !strcmp(m->options[j], "ridmap"))
        return jfail(c, path, "option \"%s\": idmapped mounts are not supported", m->options[j]);
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
    if (!m->source && m->bind)
      return jfail(c, path, "bind mount without a source");
    m->data = steal_pointer(&data);
  }
  return 0;
}

static int parse_hooks(const struct jctx *c, struct json_object *root, struct oci_spec *s)
{
  static const char *const names[HOOK_COUNT] = {
      "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"};
  struct json_object *hooks;
  int r = jget_obj(c, root, "", "hooks", &hooks);
  if (r < 0 || !hooks)
    return r;
  for (int k = 0; k < HOOK_COUNT; k++) {
    struct json_object *arr;
    _cleanup_free_ char *kpath = xasprintf("hooks");
    if ((r = jget_arr(c, hooks, kpath, names[k], &arr)) < 0)
      return r;
    size_t n = arr ? json_object_array_length(arr) : 0;
    s->hooks[k] = xzalloc((n + 1) * sizeof(struct oci_hook));
    for (size_t i = 0; i < n; i++) {
      struct json_object *e = json_object_array_get_idx(arr, i);
      struct oci_hook *h = &s->hooks[k][i];
      _cleanup_free_ char *path = xasprintf("hooks.%s[%zu]", names[k], i);
      int64_t timeout = 0;
      bool has_timeout = false;
      s->n_hooks[k] = i + 1;
      if (!e || !json_object_is_type(e, json_type_object))
        return jfail(c, path, "expected an object");
      if ((r = jget_str(c, e, path, "path", &h->path)) < 0 ||
          (r = jget_strv(c, e, path, "args", &h->args)) < 0 ||
          (r = jget_strv(c, e, path, "env", &h->env)) < 0 ||
          (r = jget_i64(c, e, path, "timeout", INT32_MIN, INT32_MAX, &timeout, &has_timeout)) < 0)
        return r;
      if (!h->path || h->path[0] != '/')
        return jfail(c, path, "path must be an absolute path");
      if (has_timeout && timeout <= 0)
        return jfail(c, path, "timeout must be greater than zero");
      h->timeout = (int) timeout;
    }
  }
  return 0;
}

static int parse_idmaps(const struct jctx *c, struct json_object *lin, const char *key,
                        struct oci_idmap **out, size_t *n_out)
{
  struct json_object *arr;
  int r = jget_arr(c, lin, "linux", key, &arr);
  if (r < 0 || !arr)
    return r;
  size_t n = json_object_array_length(arr);
  if (n > 340)
    return jfail(c, key, "too many mappings (%zu; the kernel takes 340)", n);
  *out = xzalloc((n + 1) * sizeof(struct oci_idmap));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i);
    _cleanup_free_ char *path = xasprintf("linux.%s[%zu]", key, i);
    struct oci_idmap *m = &(*out)[i];
    bool a = false, b = false, d = false;
    if ((r = jget_u32(c, e, path, "containerID", &m->container_id, &a)) < 0 ||
        (r = jget_u32(c, e, path, "hostID", &m->host_id, &b)) < 0 ||
        (r = jget_u32(c, e, path, "size", &m->size, &d)) < 0)
      return r;
    if (!a || !b || !d)
      return jfail(c, path, "containerID, hostID and size are all required");
    if (m->size == 0)
      return jfail(c, path, "size must be greater than zero");
  }
  *n_out = n;
  return 0;
}

static int parse_namespaces(const struct jctx *c, struct json_object *lin, struct oci_spec *s)
{
  struct json_object *arr;
  int r = jget_arr(c, lin, "linux", "namespaces", &arr);
  if (r < 0 || !arr)
    return r;
  size_t n = json_object_array_length(arr);
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i);
    _cleanup_free_ char *path = xasprintf("linux.namespaces[%zu]", i);
    _cleanup_free_ char *type = NULL, *nspath = NULL;
    if (!e || !json_object_is_type(e, json_type_object))
      return jfail(c, path, "expected an object");
    if ((r = jget_str(c, e, path, "type", &type)) < 0 ||
        (r = jget_str(c, e, path, "path", &nspath)) < 0)
      return r;
    if (!type)
      return jfail(c, path, "missing type");
    int t = -1;
    for (int k = 0; k < NS_COUNT; k++)
      if (!strcmp(type, ns_table[k].name))
        t = k;
    if (t < 0)
      return jfail(c, path, "unknown namespace type \"%s\"", type);
    if (spec_find_ns(s, t))
      return jfail(c, path, "namespace \"%s\" given twice", type);
    if (nspath && nspath[0] != '/')
      return jfail(c, path, "path \"%s\" is not absolute", nspath);
    struct oci_namespace *ns = &s->namespaces[s->n_namespaces++];
    ns->type = t;
    ns->clone_flag = ns_table[t].flag;
    ns->path = nspath && *nspath ? steal_pointer(&nspath) : NULL;
  }
  return 0;
}

/* Only sysctls of a namespace the container has of its own may be set: any other key would
 * change the host (kernel.core_pattern, kernel.modprobe: root on the host). */
static int check_sysctl(const struct jctx *c, const struct oci_spec *s, const char *key)
{
  static const char *const ipc_keys[] = {"kernel.msgmax", "kernel.msgmnb",         "kernel.msgmni",
                                         "kernel.sem",    "kernel.shmall",         "kernel.shmmax",
                                         "kernel.shmmni", "kernel.shm_rmid_forced"};
  if (strstr(key, "..") || key[0] == '/' || key[0] == '.' || strchr(key, '/'))
    return jfail(c, "linux.sysctl", "invalid key \"%s\"", key);
  enum oci_ns_type need = NS_COUNT;
  if (!strncmp(key, "net.", 4))
    need = NS_NETWORK;
  else if (!strncmp(key, "fs.mqueue.", 10))
    need = NS_IPC;
  else if (!strcmp(key, "kernel.hostname") || !strcmp(key, "kernel.domainname"))
    need = NS_UTS;
  for (size_t i = 0; i < ARRAY_SIZE(ipc_keys); i++)
    if (!strcmp(key, ipc_keys[i]))
      need = NS_IPC;
  if (need == NS_COUNT)
    return jfail(c, "linux.sysctl", "\"%s\" is not namespaced: setting it would change the host",
                 key);
  if (!spec_find_ns(s, need))
    return jfail(c, "linux.sysctl", "\"%s\" needs a %s namespace of the container's own", key,
                 spec_ns_name(need));
  return 0;
}

static int parse_linux(const struct jctx *c, struct json_object *lin, struct oci_spec *s)
{
  int r;
  struct json_object *o;
  if ((r = parse_namespaces(c, lin, s)) < 0 ||
      (r = parse_idmaps(c, lin, "uidMappings", &s->uid_mappings, &s->n_uid_mappings)) < 0 ||
      (r = parse_idmaps(c, lin, "gidMappings", &s->gid_mappings, &s->n_gid_mappings)) < 0 ||
      (r = jget_map(c, lin, "linux", "sysctl", &s->sysctl, &s->n_sysctl)) < 0 ||
      (r = jget_str(c, lin, "linux", "cgroupsPath", &s->cgroups_path)) < 0 ||
      (r = jget_strv(c, lin, "linux", "maskedPaths", &s->masked_paths)) < 0 ||
      (r = jget_strv(c, lin, "linux", "readonlyPaths", &s->readonly_paths)) < 0 ||
      (r = jget_str(c, lin, "linux", "mountLabel", &s->mount_label)) < 0)
    return r;

  const struct oci_namespace *userns = spec_find_ns(s, NS_USER);
  if ((s->n_uid_mappings || s->n_gid_mappings) && !userns)
    return jfail(c, "linux.uidMappings", "mappings given without a user namespace");
  if (userns && !userns->path && (!s->n_uid_mappings || !s->n_gid_mappings))
    return jfail(c, "linux.uidMappings",
                 "a new user namespace needs both uidMappings and gidMappings");
  for (size_t i = 0; i < s->n_sysctl; i++)
    if ((r = check_sysctl(c, s, s->sysctl[i].key)) < 0)
      return r;

  _cleanup_free_ char *prop = NULL;
  if ((r = jget_str(c, lin, "linux", "rootfsPropagation", &prop)) < 0)
    return r;
  if (prop && *prop && spec_propagation_from_name(prop, &s->rootfs_propagation) < 0)
    return jfail(c, "linux.rootfsPropagation", "unknown propagation \"%s\"", prop);

  if ((r = jget_obj(c, lin, "linux", "personality", &o)) < 0)
    return r;
  if (o) {
    _cleanup_free_ char *domain = NULL;
    _cleanup_strv_ char **flags = NULL;
    if ((r = jget_str(c, o, "linux.personality", "domain", &domain)) < 0 ||
        (r = jget_strv(c, o, "linux.personality", "flags", &flags)) < 0)
      return r;
    if (!domain || !strcmp(domain, "LINUX"))
      s->personality = PER_LINUX;
    else if (!strcmp(domain, "LINUX32"))
      s->personality = PER_LINUX32;
    else
      return jfail(c, "linux.personality.domain", "unknown domain \"%s\"", domain);
    if (flags && flags[0])
      return jfail(c, "linux.personality.flags", "flags are not supported");
    s->has_personality = true;
  }

  if ((r = jget_obj(c, lin, "linux", "timeOffsets", &o)) < 0)
    return r;
  if (o) {
    struct json_object *t;
    int64_t secs = 0;
    uint32_t ns = 0;
    if ((r = jget_obj(c, o, "linux.timeOffsets", "monotonic", &t)) < 0)
      return r;
    if (t && ((r = jget_i64(c, t, "linux.timeOffsets.monotonic", "secs", INT64_MIN, INT64_MAX,
                            &secs, NULL)) < 0 ||
              (r = jget_u32(c, t, "linux.timeOffsets.monotonic", "nanosecs", &ns, NULL)) < 0))
      return r;
    s->time_offset_monotonic_secs = secs;
    s->time_offset_monotonic_nsecs = ns;
    secs = 0;
    ns = 0;
    if ((r = jget_obj(c, o, "linux.timeOffsets", "boottime", &t)) < 0)
      return r;
    if (t && ((r = jget_i64(c, t, "linux.timeOffsets.boottime", "secs", INT64_MIN, INT64_MAX, &secs,
                            NULL)) < 0 ||
              (r = jget_u32(c, t, "linux.timeOffsets.boottime", "nanosecs", &ns, NULL)) < 0))
      return r;
    s->time_offset_boottime_secs = secs;
    s->time_offset_boottime_nsecs = ns;
    s->has_time_offsets = true;
  }
  return spec_parse_linux_extra(c, lin, s);
}

static int check_version(const struct jctx *c, const char *v)
{
  unsigned major, minor, patch;
  char rest;
  if (!v)
    return jfail(c, "ociVersion", "missing");
  int n = sscanf(v, "%u.%u.%u%c", &major, &minor, &patch, &rest);
  if (n < 3)
    return jfail(c, "ociVersion", "\"%s\" is not a version (MAJOR.MINOR.PATCH)", v);
  if (major != 1 || minor > 3)
    return jfail(c, "ociVersion", "version \"%s\" is not supported (this runtime implements %s)", v,
                 OCI_VERSION_SUPPORTED);
  return 0;
}

int spec_parse(const char *text, size_t len, const char *what, struct oci_spec **out,
               struct isola_error **err)
{
  _cleanup_json_ struct json_object *root = NULL;
  struct jctx cx = {what, err}, *c = &cx;
  int r = json_parse_doc(text, len, what, &root, err);
  if (r < 0)
    return r;
  if (!json_object_is_type(root, json_type_object))
    return isola_failx(err, EINVAL, "%s: expected a JSON object at the top level", what);

  _cleanup_spec_ struct oci_spec *s = xzalloc(sizeof(*s));
  struct json_object *o;
  if ((r = jget_str(c, root, "", "ociVersion", &s->oci_version)) < 0 ||
      (r = check_version(c, s->oci_version)) < 0)
    return r;

  if ((r = jget_obj(c, root, "", "root", &o)) < 0)
    return r;
  if (!o)
    return jfail(c, "root", "missing");
  if ((r = jget_str(c, o, "root", "path", &s->root_path)) < 0 ||
      (r = jget_bool(c, o, "root", "readonly", &s->root_readonly, NULL)) < 0)
    return r;
  if (!s->root_path || !*s->root_path)
    return jfail(c, "root.path", "missing");

  if ((r = jget_str(c, root, "", "hostname", &s->hostname)) < 0 ||
      (r = jget_str(c, root, "", "domainname", &s->domainname)) < 0)
    return r;

  if ((r = jget_obj(c, root, "", "process", &o)) < 0)
    return r;
  if (o) {
    if ((r = spec_parse_process(o, what, &s->process, err)) < 0)
      return r;
    s->has_process = true;
  }
  if ((r = parse_mounts(c, root, s)) < 0 || (r = parse_hooks(c, root, s)) < 0)
    return r;

  if ((r = jget_obj(c, root, "", "annotations", &o)) < 0)
    return r;
  if (o) {
    json_object_object_foreach (o, k, v) {
      if (!json_object_is_type(v, json_type_string))
        return jfail(c, "annotations", "value of \"%s\" is not a string", k);
    }
    s->annotations = json_object_get(o);
  }

  if ((r = jget_obj(c, root, "", "linux", &o)) < 0)
    return r;
  if (o && (r = parse_linux(c, o, s)) < 0)
    return r;
  if (s->hostname && *s->hostname && !spec_find_ns(s, NS_UTS))
    return jfail(c, "hostname", "setting a hostname needs a new uts namespace");
  if (s->domainname && *s->domainname && !spec_find_ns(s, NS_UTS))
    return jfail(c, "domainname", "setting a domainname needs a new uts namespace");
  /* Without a mount namespace these would be mounted on the host. */
  if (!spec_find_ns(s, NS_MOUNT)) {
    if (s->n_mounts)
      return jfail(c, "mounts", "mounts need a mount namespace (linux.namespaces)");
    if ((s->masked_paths && s->masked_paths[0]) || (s->readonly_paths && s->readonly_paths[0]))
      return jfail(c, "linux.maskedPaths",
                   "masked and read-only paths need a mount namespace (linux.namespaces)");
    if (s->root_readonly)
      return jfail(c, "root.readonly", "a read-only root needs a mount namespace");
  }
  if (s->has_time_offsets && !spec_find_ns(s, NS_TIME))
    return jfail(c, "linux.timeOffsets", "time offsets need a new time namespace");
  *out = steal_pointer(&s);
  return 0;
}

int spec_load(const char *bundle, struct oci_spec **out, char **raw, size_t *raw_len,
              struct isola_error **err)
{
  _cleanup_free_ char *path = xasprintf("%s/config.json", bundle);
  _cleanup_free_ char *text = NULL;
  size_t len = 0;
  int r = read_file_at(AT_FDCWD, path, 16 << 20, &text, &len);
  if (r == -EFBIG)
    return isola_failx(err, EFBIG, "%s: larger than 16 MiB", path);
  if (r < 0)
    return isola_fail(err, -r, "cannot read %s", path);
  _cleanup_spec_ struct oci_spec *s = NULL;
  if ((r = spec_parse(text, len, "config.json", &s, err)) < 0)
    return r;
  if (s->root_path[0] != '/') {
    char *abs = xasprintf("%s/%s", bundle, s->root_path);
    free(s->root_path);
    s->root_path = abs;
  }
  char *real = realpath(s->root_path, NULL);
  if (!real)
    return isola_fail(err, errno, "config.json: root.path: cannot use \"%s\"", s->root_path);
  free(s->root_path);
  s->root_path = real;
  struct stat st;
  if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
    return isola_failx(err, ENOTDIR, "config.json: root.path: \"%s\" is not a directory", real);
  *out = steal_pointer(&s);
  if (raw) {
    *raw = steal_pointer(&text);
    *raw_len = len;
  }
  return 0;
}

void spec_free(struct oci_spec *s)
{
  if (!s)
    return;
  free(s->oci_version);
  free(s->root_path);
  free(s->hostname);
  free(s->domainname);
  spec_process_clear(&s->process);
  for (size_t i = 0; i < s->n_mounts; i++) {
    struct oci_mount *m = &s->mounts[i];
    free(m->destination);
    free(m->type);
    free(m->source);
    strv_free(m->options);
    free(m->data);
  }
  free(s->mounts);
  for (int k = 0; k < HOOK_COUNT; k++) {
    for (size_t i = 0; i < s->n_hooks[k]; i++) {
      free(s->hooks[k][i].path);
      strv_free(s->hooks[k][i].args);
      strv_free(s->hooks[k][i].env);
    }
    free(s->hooks[k]);
  }
  if (s->annotations)
    json_object_put(s->annotations);
  for (size_t i = 0; i < s->n_namespaces; i++)
    free(s->namespaces[i].path);
  free(s->uid_mappings);
  free(s->gid_mappings);
  for (size_t i = 0; i < s->n_sysctl; i++) {
    free(s->sysctl[i].key);
    free(s->sysctl[i].value);
  }
  free(s->sysctl);
  free(s->cgroups_path);
  strv_free(s->masked_paths);
  strv_free(s->readonly_paths);
  free(s->mount_label);
  spec_free_linux_extra(s);
  free(s);
}
