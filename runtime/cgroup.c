/* Container cgroups: find the hierarchies (v1, v2 or hybrid) from /proc/self/cgroup and
 * /proc/self/mountinfo, resolve linux.cgroupsPath in each, create/enter/destroy the
 * directories, and send each group of linux.resources knobs to the hierarchy that hosts its
 * controller (cgroup_v1.c / cgroup_v2.c write the files). */
#include "cgroup_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#define CGROUP_MAX_DEPTH 64

/* ---- small file helpers shared with cgroup_v1.c / cgroup_v2.c ---- */

bool cgroup_list_has(const char *list, const char *name, char sep)
{
  size_t n = strlen(name);
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, sep);
    size_t len = end ? (size_t) (end - p) : strlen(p);
    if (len == n && !strncmp(p, name, n))
      return true;
    p = end ? end + 1 : NULL;
  }
  return false;
}

int cgroup_write(int dirfd, const char *file, const char *value, const char *field,
                 struct isola_error **err)
{
  int r = write_file_at(dirfd, file, value, strlen(value));
  if (r < 0)
    return isola_fail(err, -r, "%s: cannot set %s to %s", field, file, value);
  return 0;
}

int cgroup_write_i64(int dirfd, const char *file, int64_t value, const char *field,
                     struct isola_error **err)
{
  char buf[32];
  snprintf(buf, sizeof(buf), "%lld", (long long) value);
  return cgroup_write(dirfd, file, buf, field, err);
}

bool cgroup_path_has_dots(const char *path)
{
  for (const char *s = path; *s;) {
    while (*s == '/')
      s++;
    size_t len = strcspn(s, "/");
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
      return true;
    s += len;
  }
  return false;
}

int cgroup_write_hugetlb(int fd, const struct oci_resources *r, const char *suffix,
                         struct isola_error **err)
{
  for (size_t i = 0; i < r->n_hugepage_limits; i++) {
    const struct oci_hugepage_limit *h = &r->hugepage_limits[i];
    _cleanup_free_ char *field = xasprintf("linux.resources.hugepageLimits[%zu]", i);
    _cleanup_free_ char *file = xasprintf("hugetlb.%s.%s", h->page_size, suffix);
    _cleanup_free_ char *rsvd = xasprintf("hugetlb.%s.rsvd.%s", h->page_size, suffix);
    if (!cgroup_has_file(fd, file))
      return isola_failx(err, ENOTSUP, "%s: page size %s is not supported by this kernel (no %s)",
                         field, h->page_size, file);
    int ret = cgroup_write_i64(fd, file, (int64_t) h->limit, field, err);
    /* Reservations are limited too when the kernel can, so a mmap cannot overcommit. */
    if (ret == 0 && cgroup_has_file(fd, rsvd))
      ret = cgroup_write_i64(fd, rsvd, (int64_t) h->limit, field, err);
    if (ret < 0)
      return ret;
  }
  return 0;
}

bool cgroup_has_file(int dirfd, const char *file)
{
  return faccessat(dirfd, file, F_OK, 0) == 0;
}

int cgroup_read(int dirfd, const char *file, char **out)
{
  size_t len = 0;
  int r = read_file_at(dirfd, file, CGROUP_FILE_MAX, out, &len);
  if (r < 0)
    return r;
  while (len > 0 && (*out)[len - 1] == '\n')
    (*out)[--len] = '\0';
  return 0;
}

static int open_dir(const char *path)
{
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

static const char *layout_name(enum cgroup_layout l)
{
  return l == CGROUP_LAYOUT_V2 ? "v2" : l == CGROUP_LAYOUT_V1 ? "v1" : "hybrid";
}

/* ---- linux.cgroupsPath ---- */

/* Normalize cgroups_path: "" → "/isola/<id>", drop "." and empty components, refuse "..",
 * control characters and the systemd "slice:prefix:name" form. */
static int resolve_cgroups_path(const char *cgroups_path, const char *id, char **out,
                                bool *relative, struct isola_error **err)
{
  const char *F = "linux.cgroupsPath";
  if (!cgroups_path || !*cgroups_path) {
    if (!id || !*id || strchr(id, '/') || !strcmp(id, ".") || !strcmp(id, ".."))
      return isola_failx(err, EINVAL, "%s: invalid container id \"%s\"", F, id ? id : "");
    *out = xasprintf("/isola/%s", id);
    *relative = false;
    return 0;
  }
  if (strlen(cgroups_path) > 4096)
    return isola_failx(err, ENAMETOOLONG, "%s: path is too long", F);
  *relative = cgroups_path[0] != '/';
  const char *c1 = strchr(cgroups_path, ':');
  if (*relative && c1 && strchr(c1 + 1, ':') && !strchr(cgroups_path, '/'))
    return isola_failx(err, ENOTSUP,
                       "%s: \"%s\" is a systemd slice:prefix:name path, but the systemd cgroup "
                       "driver is not supported (use a path such as /isola/NAME)",
                       F, cgroups_path);
  for (const char *p = cgroups_path; *p; p++)
    if ((unsigned char) *p < 0x20 || *p == 0x7f)
      return isola_failx(err, EINVAL, "%s: \"%s\" contains a control character", F, cgroups_path);
  _cleanup_free_ char *copy = xstrdup(cgroups_path);
  _cleanup_free_ char *res = xzalloc(strlen(cgroups_path) + 2);
  for (char *s = NULL, *t = strtok_r(copy, "/", &s); t; t = strtok_r(NULL, "/", &s)) {
    if (!strcmp(t, "."))
      continue;
    if (!strcmp(t, ".."))
      return isola_failx(err, EINVAL, "%s: \"%s\" has a \"..\" component", F, cgroups_path);
    if (*res || !*relative)
      strcat(res, "/");
    strcat(res, t);
  }
  if (!*res)
    return isola_failx(err, EINVAL, "%s: \"%s\" names no cgroup below the %s", F, cgroups_path,
                       *relative ? "runtime's own cgroup" : "hierarchy root");
  *out = steal_pointer(&res);
  return 0;
}

/* ---- create / enter / destroy ---- */

/* mkdir each component of p->path below the mount point; v2: enable controllers in every
 * ancestor; v1 cpuset: fill empty cpus/mems from the parent. Once the first directory is made,
 * p says so (created, created_parents) so that cgroup_destroy() can undo a half-made path:
 * everything below a directory we made is ours too. */
static int make_cgroup_dirs(const struct cgroup_mount *m, struct cgroup_path *p,
                            struct isola_error **err)
{
  bool v2 = !*m->controllers, cpuset = cgroup_list_has(m->controllers, "cpuset", ',');
  _cleanup_close_ int cur = open_dir(m->mount_point);
  if (cur < 0)
    return isola_fail(err, -cur, "cannot open cgroup hierarchy %s", m->mount_point);
  const char *below = p->path + strlen(m->mount_point);
  unsigned depth = 0, index = 0;
  bool made_any = false;
  for (const char *s = below; *s; s++)
    depth += s[0] == '/' && s[1] && s[1] != '/';
  _cleanup_free_ char *rest = xstrdup(below);
  for (char *s = NULL, *t = strtok_r(rest, "/", &s); t; t = strtok_r(NULL, "/", &s), index++) {
    if (v2)
      cgroup_v2_enable_controllers(cur);
    if (mkdirat(cur, t, 0755) == 0) {
      if (!made_any) {
        made_any = true;
        p->created_parents = depth - 1 - index;
      }
    } else if (errno != EEXIST) {
      return isola_fail(err, errno, "linux.cgroupsPath: cannot create cgroup %s", p->path);
    }
    int next = openat(cur, t, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (next < 0)
      return isola_fail(err, errno, "linux.cgroupsPath: cannot open cgroup %s", p->path);
    int r = cpuset && !v2 ? cgroup_v1_cpuset_inherit(cur, next) : 0;
    close(cur);
    cur = next;
    if (r < 0)
      return isola_fail(err, -r, "linux.cgroupsPath: cannot copy cpuset.cpus/mems into %s",
                        p->path);
  }
  return 0;
}

static int collect_pids(int dirfd, int depth, pid_t **pids, size_t *n);

static int check_unused(const struct cgroup_path *p, struct isola_error **err)
{
  _cleanup_close_ int fd = open_dir(p->path);
  if (fd == -ENOENT)
    return 0;
  if (fd < 0)
    return isola_fail(err, -fd, "linux.cgroupsPath: cannot open cgroup %s", p->path);
  _cleanup_free_ pid_t *pids = NULL;
  size_t n = 0;
  if (collect_pids(fd, 0, &pids, &n) == 0 && n > 0)
    return isola_failx(err, EBUSY,
                       "linux.cgroupsPath: cgroup %s already has processes (%zu): it is not this "
                       "container's",
                       p->path, n);
  return 0;
}

int cgroup_create_recorded(const char *cgroups_path, const char *id,
                           int (*record)(const struct cgroup *cg, void *arg), void *arg,
                           struct cgroup **out, struct isola_error **err)
{
  _cleanup_free_ char *rel = NULL;
  bool relative = false;
  int r = resolve_cgroups_path(cgroups_path, id, &rel, &relative, err);
  if (r < 0)
    return r;
  struct cgroup_mount *m = NULL;
  size_t n = 0;
  enum cgroup_layout layout;
  if ((r = cgroup_mounts_read(&m, &n, &layout, err)) < 0)
    return r;
  _cleanup_cgroup_ struct cgroup *cg = xzalloc(sizeof(*cg));
  cg->layout = layout;
  cg->rel_path = xstrdup(rel);
  cg->paths = xzalloc(n * sizeof(*cg->paths));
  /* Record every directory before making the first, so a failure can undo them. */
  for (size_t i = 0; i < n && r == 0; i++) {
    const char *name = *m[i].controllers ? m[i].controllers : "unified";
    if (relative && !m[i].own_path)
      r = isola_failx(err, ENOENT,
                      "linux.cgroupsPath: \"%s\" is relative, but this runtime's %s cgroup is "
                      "not visible under %s",
                      cgroups_path, name, m[i].mount_point);
    else
      cg->paths[cg->n_paths++] = (struct cgroup_path){
          .controller = xstrdup(m[i].controllers),
          /* The leaf is the container's own, even when a killed create already made it. */
          .created = true,
          .path = xasprintf("%s%s%s%s", m[i].mount_point,
                            relative && strcmp(m[i].own_path, "/") ? m[i].own_path : "",
                            relative ? "/" : "", rel)};
  }
  /* A cgroup that already holds processes belongs to someone else (another container with the
   * same path or id, or a parent of others): taking it would let our delete kill them. */
  for (size_t i = 0; i < cg->n_paths && r == 0; i++)
    r = check_unused(&cg->paths[i], err);
  if (r < 0) {
    cgroup_mounts_free(m, n);
    return r;
  }
  if (r == 0 && record)
    r = record(cg, arg);
  for (size_t i = 0; i < cg->n_paths && r == 0; i++)
    r = make_cgroup_dirs(&m[i], &cg->paths[i], err);
  cgroup_mounts_free(m, n);
  if (r < 0) {
    (void) cgroup_destroy(cg, NULL);
    return r;
  }
  *out = steal_pointer(&cg);
  return 0;
}

int cgroup_create(const char *cgroups_path, const char *id, struct cgroup **out,
                  struct isola_error **err)
{
  return cgroup_create_recorded(cgroups_path, id, NULL, NULL, out, err);
}

int cgroup_enter(const struct cgroup *cg, pid_t pid, struct isola_error **err)
{
  char buf[32];
  snprintf(buf, sizeof(buf), "%d", (int) pid);
  for (size_t i = 0; i < cg->n_paths; i++) {
    _cleanup_close_ int fd = open_dir(cg->paths[i].path);
    int r = fd < 0 ? fd : write_file_at(fd, "cgroup.procs", buf, strlen(buf));
    if (r < 0)
      return isola_fail(err, -r, "cannot move process %d into cgroup %s", (int) pid,
                        cg->paths[i].path);
  }
  return 0;
}

static double now_seconds(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* rmdir a cgroup and the sub-cgroups the container made in it (cgroupfs holds only
 * directories we may remove; its files go with their directory). */
static int rmdir_tree(int parentfd, const char *name, int depth)
{
  int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return errno == ENOENT ? 0 : -errno;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return -errno;
  }
  struct dirent *de;
  while (depth < CGROUP_MAX_DEPTH && (de = readdir(d)))
    if (de->d_type == DT_DIR && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
      (void) rmdir_tree(dirfd(d), de->d_name, depth + 1);
  closedir(d);
  if (unlinkat(parentfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return -errno;
  return 0;
}

static bool on_cgroupfs(const char *path)
{
  struct statfs sf;
  return statfs(path, &sf) == 0 &&
         (sf.f_type == CGROUP_SUPER_MAGIC || sf.f_type == CGROUP2_SUPER_MAGIC);
}

static int destroy_one(const struct cgroup_path *p, double deadline, struct isola_error **err)
{
  if (!p->created)
    return 0;
  _cleanup_free_ char *dir = xstrdup(p->path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir)
    return isola_failx(err, EINVAL, "refusing to remove cgroup %s", p->path);
  struct stat st;
  if (stat(p->path, &st) == 0) {
    /* The path comes from a state file: only ever rmdir on a cgroup filesystem. */
    if (!on_cgroupfs(p->path))
      return isola_failx(err, EINVAL, "refusing to remove %s: not on a cgroup filesystem", p->path);
    *slash = '\0';
    _cleanup_close_ int parent = open_dir(dir);
    if (parent < 0)
      return isola_fail(err, -parent, "cannot remove cgroup %s", p->path);
    int r;
    /* The last processes may still be exiting: EBUSY until the kernel has let go of them. */
    while ((r = rmdir_tree(parent, slash + 1, 0)) == -EBUSY && now_seconds() < deadline)
      nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    if (r < 0)
      return isola_fail(err, -r, "cannot remove cgroup %s", p->path);
  } else {
    *slash = '\0'; /* gone already, or never made: its parents may still be ours */
  }
  /* Parents we made go too, unless another container lives there now. */
  for (unsigned i = 0; i < p->created_parents; i++) {
    if (stat(dir, &st) == 0 && (!on_cgroupfs(dir) || (rmdir(dir) < 0 && errno != ENOENT)))
      break;
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
      break;
    *slash = '\0';
  }
  return 0;
}

int cgroup_destroy(const struct cgroup *cg, struct isola_error **err)
{
  int ret = 0;
  double deadline = now_seconds() + 1.0;
  for (size_t i = 0; cg && i < cg->n_paths; i++) {
    int r = destroy_one(&cg->paths[i], deadline, err);
    if (r < 0 && ret == 0)
      ret = r;
  }
  return ret;
}

void cgroup_free(struct cgroup *cg)
{
  if (!cg)
    return;
  for (size_t i = 0; i < cg->n_paths; i++) {
    free(cg->paths[i].controller);
    free(cg->paths[i].path);
  }
  free(cg->paths);
  free(cg->rel_path);
  free(cg);
}

/* ---- apply: each knob group goes to the hierarchy hosting its controller ---- */

typedef int (*knob_fn)(int dirfd, const struct oci_resources *r, struct isola_error **err);

static bool mem_given(const struct oci_resources *r)
{
  return (r->has_mem_limit && r->mem_limit) || (r->has_mem_swap && r->mem_swap) ||
         (r->has_mem_reservation && r->mem_reservation) || r->has_mem_swappiness ||
         r->has_disable_oom_killer || r->has_mem_kernel_tcp ||
         (r->has_use_hierarchy && !r->use_hierarchy);
}
static bool cpu_given(const struct oci_resources *r)
{
  return (r->has_cpu_shares && r->cpu_shares) || (r->has_cpu_quota && r->cpu_quota) ||
         (r->has_cpu_period && r->cpu_period) || r->has_cpu_burst ||
         (r->has_cpu_rt_runtime && r->cpu_rt_runtime) ||
         (r->has_cpu_rt_period && r->cpu_rt_period) || r->has_cpu_idle;
}
static bool cpuset_given(const struct oci_resources *r)
{
  return (r->cpu_cpus && *r->cpu_cpus) || (r->cpu_mems && *r->cpu_mems);
}
static bool pids_given(const struct oci_resources *r)
{
  return r->has_pids_limit && r->pids_limit;
}
static bool blkio_given(const struct oci_resources *r)
{
  size_t t = r->n_throttle[0] + r->n_throttle[1] + r->n_throttle[2] + r->n_throttle[3];
  return (r->has_blkio_weight && r->blkio_weight) ||
         (r->has_blkio_leaf_weight && r->blkio_leaf_weight) || r->n_blkio_weight_devices || t;
}
static bool hugetlb_given(const struct oci_resources *r)
{
  return r->n_hugepage_limits > 0;
}
static bool devices_given(const struct oci_resources *r)
{
  return r->devices != NULL; /* present, even empty: deny all */
}
static bool net_cls_given(const struct oci_resources *r)
{
  return r->has_net_class_id;
}
static bool net_prio_given(const struct oci_resources *r)
{
  return r->n_net_priorities > 0;
}
static bool rdma_given(const struct oci_resources *r)
{
  return r->n_rdma > 0;
}
static bool unified_given(const struct oci_resources *r)
{
  return r->n_unified > 0;
}

static const struct knob_group {
  const char *field;
  const char *v1_controller; /* NULL: no v1 equivalent */
  const char *v2_controller; /* NULL: no v2 equivalent; "": core file, no controller needed */
  bool (*given)(const struct oci_resources *r);
  knob_fn v1, v2;
} knob_groups[] = {
    {"linux.resources.memory", "memory", "memory", mem_given, cgroup_v1_set_memory,
     cgroup_v2_set_memory},
    {"linux.resources.cpu", "cpu", "cpu", cpu_given, cgroup_v1_set_cpu, cgroup_v2_set_cpu},
    {"linux.resources.cpu.cpus/mems", "cpuset", "cpuset", cpuset_given, cgroup_v1_set_cpuset,
     cgroup_v2_set_cpuset},
    {"linux.resources.pids", "pids", "pids", pids_given, cgroup_v1_set_pids, cgroup_v2_set_pids},
    {"linux.resources.blockIO", "blkio", "io", blkio_given, cgroup_v1_set_blkio, cgroup_v2_set_io},
    {"linux.resources.hugepageLimits", "hugetlb", "hugetlb", hugetlb_given, cgroup_v1_set_hugetlb,
     cgroup_v2_set_hugetlb},
    {"linux.resources.network.classID", "net_cls", NULL, net_cls_given, cgroup_v1_set_net_cls,
     NULL},
    {"linux.resources.network.priorities", "net_prio", NULL, net_prio_given, cgroup_v1_set_net_prio,
     NULL},
    {"linux.resources.rdma", "rdma", "rdma", rdma_given, cgroup_set_rdma, cgroup_set_rdma},
    /* v1 devices when that controller is mounted, else an eBPF program on the v2 cgroup. */
    {"linux.resources.devices", "devices", "", devices_given, cgroup_v1_set_devices,
     cgroup_v2_set_devices},
    /* Last, so that explicit unified values win over the converted ones. */
    {"linux.resources.unified", NULL, "", unified_given, NULL, cgroup_v2_set_unified},
};

static const struct cgroup_path *find_v1(const struct cgroup *cg, const char *controller)
{
  for (size_t i = 0; controller && i < cg->n_paths; i++)
    if (*cg->paths[i].controller && cgroup_list_has(cg->paths[i].controller, controller, ','))
      return &cg->paths[i];
  return NULL;
}

static const struct cgroup_path *find_v2(const struct cgroup *cg)
{
  for (size_t i = 0; i < cg->n_paths; i++)
    if (!*cg->paths[i].controller)
      return &cg->paths[i];
  return NULL;
}

int cgroup_apply(const struct cgroup *cg, const struct oci_resources *res, struct isola_error **err)
{
  const struct cgroup_path *v2 = find_v2(cg);
  _cleanup_close_ int v2fd = -1;
  _cleanup_free_ char *v2_controllers = NULL;
  if (v2) {
    if ((v2fd = open_dir(v2->path)) < 0)
      return isola_fail(err, -v2fd, "cannot open cgroup %s", v2->path);
    if (cgroup_read(v2fd, "cgroup.controllers", &v2_controllers) < 0)
      v2_controllers = xstrdup("");
  }
  for (size_t g = 0; g < ARRAY_SIZE(knob_groups); g++) {
    const struct knob_group *k = &knob_groups[g];
    if (!k->given(res))
      continue;
    const struct cgroup_path *p = find_v1(cg, k->v1_controller);
    int r;
    if (p) {
      _cleanup_close_ int fd = open_dir(p->path);
      if (fd < 0)
        return isola_fail(err, -fd, "%s: cannot open cgroup %s", k->field, p->path);
      r = k->v1(fd, res, err);
    } else if (v2 && k->v2_controller &&
               (!*k->v2_controller || cgroup_list_has(v2_controllers, k->v2_controller, ' '))) {
      r = k->v2(v2fd, res, err);
    } else {
      const char *name = v2 && k->v2_controller ? k->v2_controller : k->v1_controller;
      return isola_failx(err, ENOTSUP,
                         "%s: the %s controller is not available for %s on this host (cgroup %s)",
                         k->field, name ? name : "unified", cg->rel_path, layout_name(cg->layout));
    }
    if (r < 0)
      return r;
  }
  return 0;
}

/* ---- freeze, pids, kill ---- */

int cgroup_freeze(const struct cgroup *cg, bool frozen, struct isola_error **err)
{
  const struct cgroup_path *p = find_v1(cg, "freezer");
  if (!p && !(p = find_v2(cg)))
    return isola_failx(err, ENOTSUP, "cannot %s %s: no freezer cgroup on this host",
                       frozen ? "pause" : "resume", cg->rel_path);
  _cleanup_close_ int fd = open_dir(p->path);
  if (fd < 0)
    return isola_fail(err, -fd, "cannot open cgroup %s", p->path);
  int r = *p->controller ? cgroup_v1_freeze(fd, frozen, err) : cgroup_v2_freeze(fd, frozen, err);
  return r < 0 ? isola_error_prefix(err, "cgroup %s", p->path) : 0;
}

bool cgroup_is_frozen(const struct cgroup *cg)
{
  const struct cgroup_path *p = find_v1(cg, "freezer");
  if (!p && !(p = find_v2(cg)))
    return false;
  _cleanup_close_ int fd = open_dir(p->path);
  if (fd < 0)
    return false;
  return *p->controller ? cgroup_v1_is_frozen(fd) : cgroup_v2_is_frozen(fd);
}

/* The hierarchy that lists every process of the container: unified, pids, freezer, any. */
static const struct cgroup_path *procs_source(const struct cgroup *cg)
{
  const struct cgroup_path *p = find_v2(cg);
  if (!p)
    p = find_v1(cg, "pids");
  if (!p)
    p = find_v1(cg, "freezer");
  return p ? p : (cg->n_paths ? &cg->paths[0] : NULL);
}

static int collect_pids(int dirfd, int depth, pid_t **pids, size_t *n)
{
  _cleanup_free_ char *text = NULL;
  int r = read_file_at(dirfd, "cgroup.procs", CGROUP_FILE_MAX, &text, NULL);
  if (r < 0)
    return r;
  for (char *s = NULL, *t = strtok_r(text, "\n", &s); t; t = strtok_r(NULL, "\n", &s)) {
    int64_t v;
    if (parse_i64(t, &v) < 0 || v <= 0 || v > INT32_MAX)
      continue;
    *pids = xrealloc(*pids, (*n + 1) * sizeof(**pids));
    (*pids)[(*n)++] = (pid_t) v;
  }
  int fd = dup(dirfd);
  if (fd < 0)
    return -errno;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return -errno;
  }
  struct dirent *de;
  while (depth < CGROUP_MAX_DEPTH && (de = readdir(d))) {
    if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    _cleanup_close_ int sub =
        openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (sub >= 0 && (r = collect_pids(sub, depth + 1, pids, n)) < 0 && r != -ENOENT)
      break;
    r = 0;
  }
  closedir(d);
  return r;
}

int cgroup_pids(const struct cgroup *cg, pid_t **pids, size_t *n, struct isola_error **err)
{
  const struct cgroup_path *p = procs_source(cg);
  *pids = NULL;
  *n = 0;
  if (!p)
    return 0;
  _cleanup_close_ int fd = open_dir(p->path);
  int r = fd < 0 ? fd : collect_pids(fd, 0, pids, n);
  if (r < 0) {
    free(steal_pointer(pids));
    *n = 0;
    return isola_fail(err, -r, "cannot list the processes of cgroup %s", p->path);
  }
  return 0;
}

int cgroup_kill_all(const struct cgroup *cg, int sig, struct isola_error **err)
{
  const struct cgroup_path *v2 = find_v2(cg);
  if (sig == SIGKILL && v2) {
    /* cgroup.kill (Linux 5.14+) kills the whole subtree with no race against fork. */
    _cleanup_close_ int fd = open_dir(v2->path);
    if (fd >= 0 && write_file_at(fd, "cgroup.kill", "1", 1) == 0)
      return 0;
  }
  /* An empty cgroup (the usual case once the container has exited) needs no freezing. */
  _cleanup_free_ pid_t *before = NULL;
  size_t n_before = 0;
  if (cgroup_pids(cg, &before, &n_before, NULL) == 0 && n_before == 0)
    return 0;
  /* Else freeze so nothing forks between listing and signalling, as runc does. */
  bool was_frozen = cgroup_is_frozen(cg);
  bool froze = !was_frozen && cgroup_freeze(cg, true, NULL) == 0;
  _cleanup_free_ pid_t *pids = NULL;
  size_t n = 0;
  int r = cgroup_pids(cg, &pids, &n, err);
  for (size_t i = 0; r == 0 && i < n; i++)
    if (kill(pids[i], sig) < 0 && errno != ESRCH)
      r = isola_fail(err, errno, "cannot send signal %d to process %d of cgroup %s", sig,
                     (int) pids[i], cg->rel_path);
  /* A frozen v1 task only dies once thawed. */
  if (froze || (was_frozen && sig == SIGKILL))
    (void) cgroup_freeze(cg, false, NULL);
  return r;
}

/* ---- state JSON ---- */

struct json_object *cgroup_to_json(const struct cgroup *cg)
{
  struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
  json_object_object_add(o, "layout", json_object_new_string(layout_name(cg->layout)));
  json_object_object_add(o, "path", json_object_new_string(cg->rel_path ? cg->rel_path : ""));
  for (size_t i = 0; i < cg->n_paths; i++) {
    const struct cgroup_path *p = &cg->paths[i];
    struct json_object *e = json_object_new_object();
    json_object_object_add(e, "controller", json_object_new_string(p->controller));
    json_object_object_add(e, "path", json_object_new_string(p->path));
    json_object_object_add(e, "created", json_object_new_boolean(p->created));
    json_object_object_add(e, "createdParents", json_object_new_int(p->created_parents));
    json_object_array_add(arr, e);
  }
  json_object_object_add(o, "paths", arr);
  return o;
}

static const char *json_str(struct json_object *o, const char *key)
{
  struct json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
    return NULL;
  return json_object_get_string(v);
}

int cgroup_from_json(struct json_object *o, struct cgroup **out, struct isola_error **err)
{
  const char *W = "state: cgroup";
  struct json_object *arr, *v;
  const char *layout = o ? json_str(o, "layout") : NULL, *path = o ? json_str(o, "path") : NULL;
  if (!layout || !path || !json_object_object_get_ex(o, "paths", &arr) ||
      !json_object_is_type(arr, json_type_array))
    return isola_failx(err, EINVAL, "%s: expected an object with layout, path and paths", W);
  _cleanup_cgroup_ struct cgroup *cg = xzalloc(sizeof(*cg));
  if (!strcmp(layout, "v1"))
    cg->layout = CGROUP_LAYOUT_V1;
  else if (!strcmp(layout, "v2"))
    cg->layout = CGROUP_LAYOUT_V2;
  else if (!strcmp(layout, "hybrid"))
    cg->layout = CGROUP_LAYOUT_HYBRID;
  else
    return isola_failx(err, EINVAL, "%s: unknown layout \"%s\"", W, layout);
  cg->rel_path = xstrdup(path);
  size_t n = json_object_array_length(arr);
  if (n > 64)
    return isola_failx(err, EINVAL, "%s: too many paths (%zu)", W, n);
  cg->paths = xzalloc(n * sizeof(*cg->paths));
  for (size_t i = 0; i < n; i++) {
    struct json_object *e = json_object_array_get_idx(arr, i);
    const char *ctl = e ? json_str(e, "controller") : NULL, *p = e ? json_str(e, "path") : NULL;
    if (!ctl || !p || p[0] != '/' || cgroup_path_has_dots(p))
      return isola_failx(err, EINVAL, "%s: paths[%zu]: invalid entry", W, i);
    struct cgroup_path *cp = &cg->paths[cg->n_paths++];
    cp->controller = xstrdup(ctl);
    cp->path = xstrdup(p);
    if (json_object_object_get_ex(e, "created", &v))
      cp->created = json_object_get_boolean(v);
    if (json_object_object_get_ex(e, "createdParents", &v)) {
      int64_t k = json_object_get_int64(v);
      if (k < 0 || k > CGROUP_MAX_DEPTH)
        return isola_failx(err, EINVAL, "%s: paths[%zu].createdParents: out of range", W, i);
      cp->created_parents = (unsigned) k;
    }
  }
  *out = steal_pointer(&cg);
  return 0;
}
