/* config.json for an `isola run`: the image's config (Entrypoint, Cmd, Env, WorkingDir, User)
 * under the run's flags, with docker's defaults for what neither says. */
#include "engine.h"

#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* docker's default capability set for a container's root. */
static const char *const default_caps[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
    "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",    "CAP_AUDIT_WRITE",
};

#define DEFAULT_PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static struct json_object *strv_json(char *const *v)
{
  struct json_object *a = json_object_new_array();
  for (; v && *v; v++)
    json_object_array_add(a, json_object_new_string(*v));
  return a;
}

/* Set K=V in env, replacing an existing K. */
static char **env_set(char **env, const char *kv)
{
  size_t klen = strcspn(kv, "=");
  for (char **e = env; e && *e; e++)
    if (!strncmp(*e, kv, klen) && (*e)[klen] == '=') {
      free(*e);
      *e = xstrdup(kv);
      return env;
    }
  return strv_append(env, kv);
}

static bool env_has(char **env, const char *key)
{
  size_t n = strlen(key);
  for (char **e = env; e && *e; e++)
    if (!strncmp(*e, key, n) && (*e)[n] == '=')
      return true;
  return false;
}

struct json_object *engine_mount_json(const char *dest, const char *type, const char *src,
                                      const char *const *opts)
{
  struct json_object *m = json_object_new_object();
  json_object_object_add(m, "destination", json_object_new_string(dest));
  json_object_object_add(m, "type", json_object_new_string(type));
  json_object_object_add(m, "source", json_object_new_string(src));
  struct json_object *o = json_object_new_array();
  for (; opts && *opts; opts++)
    json_object_array_add(o, json_object_new_string(*opts));
  json_object_object_add(m, "options", o);
  return m;
}

/* The default seccomp filter: everything allowed but what lets a container reach past its
 * namespaces and capabilities (as docker's default profile, written as a deny list): kernel
 * keyrings, modules, kexec, bpf, perf, userfaultfd, io_uring, the mount API, clock and time
 * changes, and new namespaces (above all user namespaces, which need no capability). clone3 gets
 * ENOSYS so that libc falls back to clone, whose flags the filter can see. */
static const char *const denied_syscalls[] = {
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "_sysctl",
    "umount2",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
};

#define NEW_NAMESPACE_FLAGS                                                                        \
  (0x00020000 /* NEWNS */ | 0x02000000 /* NEWCGROUP */ | 0x04000000 /* NEWUTS */ |                 \
   0x08000000 /* NEWIPC */ | 0x10000000 /* NEWUSER */ | 0x20000000 /* NEWPID */ |                  \
   0x40000000 /* NEWNET */ | 0x00000080 /* NEWTIME */)

static struct json_object *seccomp_rule(const char *name, const char *action, int errno_ret)
{
  struct json_object *r = json_object_new_object(), *names = json_object_new_array();
  json_object_array_add(names, json_object_new_string(name));
  json_object_object_add(r, "names", names);
  json_object_object_add(r, "action", json_object_new_string(action));
  json_object_object_add(r, "errnoRet", json_object_new_int(errno_ret));
  return r;
}

static struct json_object *default_seccomp(void)
{
  struct json_object *sc = json_object_new_object(), *rules = json_object_new_array();
  json_object_object_add(sc, "defaultAction", json_object_new_string("SCMP_ACT_ALLOW"));
  struct json_object *arches = json_object_new_array();
  const char *const arch_names[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
  for (size_t i = 0; i < ARRAY_SIZE(arch_names); i++)
    json_object_array_add(arches, json_object_new_string(arch_names[i]));
  json_object_object_add(sc, "architectures", arches);
  struct json_object *r = json_object_new_object(), *names = json_object_new_array();
  for (size_t i = 0; i < ARRAY_SIZE(denied_syscalls); i++)
    json_object_array_add(names, json_object_new_string(denied_syscalls[i]));
  json_object_object_add(r, "names", names);
  json_object_object_add(r, "action", json_object_new_string("SCMP_ACT_ERRNO"));
  json_object_object_add(r, "errnoRet", json_object_new_int(EPERM));
  json_object_array_add(rules, r);
  json_object_array_add(rules, seccomp_rule("clone3", "SCMP_ACT_ERRNO", ENOSYS));
  /* One rule per namespace flag: clone(flags) is argument 0, unshare(flags) too. */
  const char *const ns_calls[] = {"clone", "unshare"};
  for (size_t c = 0; c < ARRAY_SIZE(ns_calls); c++)
    for (unsigned bit = 0; bit < 32; bit++) {
      unsigned long flag = 1ul << bit;
      if (!(NEW_NAMESPACE_FLAGS & flag))
        continue;
      struct json_object *rule = seccomp_rule(ns_calls[c], "SCMP_ACT_ERRNO", EPERM);
      struct json_object *args = json_object_new_array(), *a = json_object_new_object();
      json_object_object_add(a, "index", json_object_new_int(0));
      json_object_object_add(a, "value", json_object_new_int64((int64_t) flag));
      json_object_object_add(a, "valueTwo", json_object_new_int64((int64_t) flag));
      json_object_object_add(a, "op", json_object_new_string("SCMP_CMP_MASKED_EQ"));
      json_object_array_add(args, a);
      json_object_object_add(rule, "args", args);
      json_object_array_add(rules, rule);
    }
  json_object_object_add(sc, "syscalls", rules);
  return sc;
}

static bool path_is_clean_absolute(const char *p)
{
  if (p[0] != '/')
    return false;
  for (const char *s = p; (s = strstr(s, "/..")); s += 3)
    if (s[3] == '/' || s[3] == 0)
      return false;
  return true;
}

int engine_make_spec(const struct run_request *req, const struct image_config *ic, const char *id,
                     const char *rootfs, const char *cdir, struct json_object **out,
                     struct isola_error **err)
{
  _cleanup_json_ struct json_object *o = spec_default_json(false);
  struct json_object *proc = json_object_object_get(o, "process");
  struct json_object *lin = json_object_object_get(o, "linux");
  int r;

  /* The command: entrypoint + cmd, as docker combines them. */
  _cleanup_strv_ char **args = xzalloc(sizeof(char *));
  if (req->entrypoint) {
    if (*req->entrypoint)
      args = strv_append(args, req->entrypoint);
  } else {
    for (char **e = ic->entrypoint; e && *e; e++)
      args = strv_append(args, *e);
  }
  if (req->cmd && req->cmd[0]) {
    for (char **c = req->cmd; *c; c++)
      args = strv_append(args, *c);
  } else if (!req->entrypoint) {
    for (char **c = ic->cmd; c && *c; c++)
      args = strv_append(args, *c);
  }
  if (!args[0])
    return isola_failx(err, EINVAL,
                       "no command: the image \"%s\" has no Entrypoint or Cmd, and "
                       "none was given",
                       req->image);
  json_object_object_add(proc, "args", strv_json(args));
  json_object_object_add(proc, "terminal", json_object_new_boolean(req->tty));
  json_object_object_add(proc, "noNewPrivileges", json_object_new_boolean(false));

  /* User and HOME. */
  struct json_object *user = json_object_new_object();
  json_object_object_add(proc, "user", user);
  _cleanup_free_ char *home = NULL;
  const char *uspec = req->user ? req->user : ic->user;
  if ((r = user_resolve(uspec, rootfs, user, &home, err)) < 0)
    return r;
  bool is_root = json_object_get_int64(json_object_object_get(user, "uid")) == 0;

  /* Environment: the image's, then -e, then what docker adds. */
  _cleanup_strv_ char **env = xzalloc(sizeof(char *));
  for (char **e = ic->env; e && *e; e++)
    if (strchr(*e, '='))
      env = env_set(env, *e);
  for (char **e = req->env; e && *e; e++) {
    if (strchr(*e, '=')) {
      env = env_set(env, *e);
    } else if (getenv(*e)) {
      _cleanup_free_ char *kv = xasprintf("%s=%s", *e, getenv(*e));
      env = env_set(env, kv);
    }
  }
  if (!env_has(env, "PATH"))
    env = env_set(env, DEFAULT_PATH_ENV);
  const char *hostname = req->hostname ? req->hostname : NULL;
  _cleanup_free_ char *short_id = xstrndup(id, 12);
  if (!hostname)
    hostname = req->network_host ? NULL : short_id;
  _cleanup_free_ char *host_name_buf = NULL;
  if (!hostname) {
    char buf[256] = "";
    gethostname(buf, sizeof(buf) - 1);
    hostname = host_name_buf = xstrdup(buf);
  }
  {
    _cleanup_free_ char *kv = xasprintf("HOSTNAME=%s", hostname);
    if (!env_has(env, "HOSTNAME"))
      env = env_set(env, kv);
  }
  if (req->tty && !env_has(env, "TERM"))
    env = env_set(env, "TERM=xterm");
  if (!env_has(env, "HOME")) {
    _cleanup_free_ char *kv = xasprintf("HOME=%s", home);
    env = env_set(env, kv);
  }
  json_object_object_add(proc, "env", strv_json(env));

  const char *cwd = req->workdir ? req->workdir : ic->working_dir;
  if (!cwd || !*cwd)
    cwd = "/";
  if (cwd[0] != '/')
    return isola_failx(err, EINVAL, "--workdir: \"%s\" is not an absolute path", cwd);
  json_object_object_add(proc, "cwd", json_object_new_string(cwd));

  struct json_object *caps = json_object_new_object();
  const char *sets[] = {"bounding", "effective", "permitted"};
  for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
    struct json_object *a = json_object_new_array();
    /* A non-root user starts with none in effect, only the bound (as docker since 20.10). */
    if (is_root || i == 0)
      for (size_t k = 0; k < ARRAY_SIZE(default_caps); k++)
        json_object_array_add(a, json_object_new_string(default_caps[k]));
    json_object_object_add(caps, sets[i], a);
  }
  json_object_object_add(proc, "capabilities", caps);
  struct json_object *rl = json_object_new_array(), *nofile = json_object_new_object();
  json_object_object_add(nofile, "type", json_object_new_string("RLIMIT_NOFILE"));
  /* docker's 1048576 open files, within what we may give (raising a hard limit needs
   * CAP_SYS_RESOURCE). */
  struct rlimit lim = {1048576, 1048576};
  struct rlimit ours;
  if (getrlimit(RLIMIT_NOFILE, &ours) == 0 && ours.rlim_max < lim.rlim_max)
    lim.rlim_cur = lim.rlim_max = ours.rlim_max;
  json_object_object_add(nofile, "hard", json_object_new_int64((int64_t) lim.rlim_max));
  json_object_object_add(nofile, "soft", json_object_new_int64((int64_t) lim.rlim_cur));
  json_object_array_add(rl, nofile);
  json_object_object_add(proc, "rlimits", rl);

  /* Root and hostname. */
  struct json_object *root = json_object_new_object();
  json_object_object_add(root, "path", json_object_new_string(rootfs));
  json_object_object_add(root, "readonly", json_object_new_boolean(req->read_only));
  json_object_object_add(o, "root", root);
  if (req->network_host && !req->hostname)
    json_object_object_del(o, "hostname");
  else
    json_object_object_add(o, "hostname", json_object_new_string(hostname));

  /* Mounts: the defaults, /etc files, volumes, tmpfs. */
  struct json_object *mounts = json_object_object_get(o, "mounts");
  const char *etc[][2] = {
      {"hosts", "/etc/hosts"}, {"hostname", "/etc/hostname"}, {"resolv.conf", "/etc/resolv.conf"}};
  for (size_t i = 0; i < ARRAY_SIZE(etc); i++) {
    _cleanup_free_ char *src = xasprintf("%s/%s", cdir, etc[i][0]);
    const char *opts[] = {"rbind", "rprivate", req->read_only ? "ro" : "rw", NULL};
    json_object_array_add(mounts, engine_mount_json(etc[i][1], "bind", src, opts));
  }
  for (size_t i = 0; i < req->n_volumes; i++) {
    const struct volume *v = &req->volumes[i];
    if (!path_is_clean_absolute(v->host) || !path_is_clean_absolute(v->ctr))
      return isola_failx(err, EINVAL, "-v %s:%s: both paths must be absolute, without \"..\"",
                         v->host, v->ctr);
    if (access(v->host, F_OK) < 0)
      return isola_fail(err, errno, "-v %s:%s: cannot use \"%s\"", v->host, v->ctr, v->host);
    const char *opts[] = {"rbind", "rprivate", v->readonly ? "ro" : "rw", NULL};
    json_object_array_add(mounts, engine_mount_json(v->ctr, "bind", v->host, opts));
  }
  for (char **t = req->tmpfs; t && *t; t++) {
    _cleanup_free_ char *dest = xstrdup(*t);
    char *extra = strchr(dest, ':');
    if (extra)
      *extra++ = 0;
    if (!path_is_clean_absolute(dest))
      return isola_failx(err, EINVAL, "--tmpfs %s: the path must be absolute, without \"..\"", *t);
    const char *opts[] = {"nosuid", "nodev", "noexec", extra ? extra : "mode=1777", NULL};
    json_object_array_add(mounts, engine_mount_json(dest, "tmpfs", "tmpfs", opts));
  }

  /* Namespaces: the host's network with --network host. */
  if (req->network_host) {
    struct json_object *ns = json_object_object_get(lin, "namespaces"),
                       *kept = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(ns); i++) {
      struct json_object *n = json_object_array_get_idx(ns, i);
      if (strcmp(json_object_get_string(json_object_object_get(n, "type")), "network"))
        json_object_array_add(kept, json_object_get(n));
    }
    json_object_object_add(lin, "namespaces", kept);
  }

  /* Limits. */
  struct json_object *res = json_object_object_get(lin, "resources");
  if (req->memory) {
    struct json_object *mem = json_object_new_object();
    json_object_object_add(mem, "limit", json_object_new_int64(req->memory));
    json_object_object_add(res, "memory", mem);
  }
  if (req->cpu_milli) {
    struct json_object *cpu = json_object_new_object();
    json_object_object_add(cpu, "period", json_object_new_int64(100000));
    json_object_object_add(cpu, "quota", json_object_new_int64(req->cpu_milli * 100));
    json_object_object_add(res, "cpu", cpu);
  }
  if (req->pids_limit) {
    struct json_object *pids = json_object_new_object();
    json_object_object_add(pids, "limit", json_object_new_int64(req->pids_limit));
    json_object_object_add(res, "pids", pids);
  }
  _cleanup_free_ char *cgpath = xasprintf("/isola/%s", id);
  json_object_object_add(lin, "cgroupsPath", json_object_new_string(cgpath));

  if (!req->seccomp_unconfined)
    json_object_object_add(lin, "seccomp", default_seccomp());

  struct json_object *ann = json_object_new_object();
  json_object_object_add(ann, ISOLATION_ANNOTATION, json_object_new_string("process"));
  json_object_object_add(o, "annotations", ann);
  *out = steal_pointer(&o);
  return 0;
}

int engine_user_ids(const char *spec, const char *rootfs, uint32_t *uid, uint32_t *gid,
                    struct isola_error **err)
{
  _cleanup_json_ struct json_object *user = json_object_new_object();
  _cleanup_free_ char *home = NULL;
  int r = user_resolve(spec, rootfs, user, &home, err);
  if (r < 0)
    return r;
  *uid = (uint32_t) json_object_get_int64(json_object_object_get(user, "uid"));
  *gid = (uint32_t) json_object_get_int64(json_object_object_get(user, "gid"));
  return 0;
}
