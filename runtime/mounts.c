/* OCI mounts: safe resolution of destinations inside the rootfs and one mount each.
 * Runs in the container process, before pivot_root. */
#include "container.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <limits.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>

static int resolve_in_root(int rootfd, const char *path, int flags)
{
  struct open_how how = {.flags = flags | O_CLOEXEC,
                         .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
  int fd = (int) syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
  return fd < 0 ? -errno : fd;
}

static int open_in_root_depth(int rootfd, const char *path, bool create, bool file, int flags,
                              int depth, struct isola_error **err)
{
  while (*path == '/')
    path++;
  if (!*path)
    return resolve_in_root(rootfd, ".", flags);
  int fd = resolve_in_root(rootfd, path, flags);
  if (fd >= 0 || fd != -ENOENT || !create)
    return fd >= 0 ? fd : isola_fail(err, -fd, "cannot open \"/%s\" in the rootfs", path);
  if (depth > 40)
    return isola_failx(err, ELOOP, "\"/%s\": too many levels of symbolic links", path);

  /* Walk component by component, each prefix resolved from the rootfs again, so that a
   * symlink anywhere (absolute, or "..") stays confined to the rootfs. */
  _cleanup_free_ char *buf = xstrdup(path);
  char *p = buf;
  _cleanup_close_ int parent = resolve_in_root(rootfd, ".", O_PATH | O_DIRECTORY);
  if (parent < 0)
    return isola_fail(err, -parent, "cannot open the rootfs");
  for (;;) {
    char *slash = strchr(p, '/');
    while (slash && slash[1] == '/')
      slash++;
    bool last = slash == NULL;
    if (slash)
      *slash = '\0';
    int cfd = resolve_in_root(rootfd, buf, last ? flags : O_PATH | O_DIRECTORY);
    if (cfd == -ENOENT) {
      const char *name = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
      int r;
      if (last && file) {
        r = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (r >= 0)
          close(r);
      } else {
        r = mkdirat(parent, name, 0755);
      }
      if (r < 0 && errno == EEXIST) {
        /* A dangling symlink (e.g. /etc/resolv.conf in many images): create its target,
         * interpreted inside the rootfs, as runc does. */
        char target[PATH_MAX];
        ssize_t n = readlinkat(parent, name, target, sizeof(target) - 1);
        if (n < 0)
          return isola_fail(err, errno, "cannot create \"/%s\" in the rootfs", buf);
        target[n] = '\0';
        *(char *) name = '\0'; /* buf is now the directory holding the link */
        _cleanup_free_ char *next =
            xasprintf("%s%s%s%s%s", target[0] == '/' ? "" : buf, target[0] == '/' ? "" : "/",
                      target, last ? "" : "/", last ? "" : slash + 1);
        return open_in_root_depth(rootfd, next, create, file, flags, depth + 1, err);
      }
      if (r < 0)
        return isola_fail(err, errno, "cannot create \"/%s\" in the rootfs", buf);
      cfd = resolve_in_root(rootfd, buf, last ? flags : O_PATH | O_DIRECTORY);
    }
    if (cfd < 0)
      return isola_fail(err, -cfd, "cannot open \"/%s\" in the rootfs", buf);
    if (last)
      return cfd;
    close(parent);
    parent = cfd;
    *slash = '/';
    p = slash + 1;
  }
}

int open_in_root(int rootfd, const char *path, bool create, bool file, int flags,
                 struct isola_error **err)
{
  return open_in_root_depth(rootfd, path, create, file, flags, 0, err);
}

static char *fd_path(int fd)
{
  return xasprintf("/proc/self/fd/%d", fd);
}

/* Flags the kernel keeps locked on a mount (in a user namespace a remount must repeat them). */
static unsigned long locked_flags(const char *path)
{
  struct statvfs sv;
  unsigned long f = 0;
  if (statvfs(path, &sv) < 0)
    return 0;
  if (sv.f_flag & ST_NOSUID)
    f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV)
    f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC)
    f |= MS_NOEXEC;
  if (sv.f_flag & ST_RDONLY)
    f |= MS_RDONLY;
  if (sv.f_flag & ST_NOATIME)
    f |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME)
    f |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME)
    f |= MS_RELATIME;
  return f;
}

static int mount_cgroup(const struct rootfs_ctx *ctx, int rootfd, const struct oci_mount *m,
                        const char *target, size_t index, struct isola_error **err)
{
  const struct cgroup *cg = ctx->cgroup;
  unsigned long ro = m->flags & MS_RDONLY;
  unsigned long base = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (!cg || cg->n_paths == 0)
    return isola_failx(err, ENOENT, "mounts[%zu]: no cgroup to mount at %s", index, m->destination);
  if (cg->layout == CGROUP_LAYOUT_V2) {
    /* In a cgroup namespace a fresh cgroup2 mount shows the container's own cgroup. */
    if (mount("cgroup2", target, "cgroup2", base | ro, NULL) == 0)
      return 0;
    if (mount(cg->paths[0].path, target, NULL, MS_BIND | MS_REC, NULL) < 0)
      return isola_fail(err, errno, "mounts[%zu]: cannot mount cgroup2 at %s", index,
                        m->destination);
    _cleanup_close_ int bound = open_in_root(rootfd, m->destination, false, false, O_PATH, err);
    if (bound < 0)
      return isola_error_prefix(err, "mounts[%zu]", index);
    _cleanup_free_ char *bp = fd_path(bound);
    if (mount(NULL, bp, NULL, MS_BIND | MS_REMOUNT | base | ro | locked_flags(bp), NULL) < 0)
      return isola_fail(err, errno, "mounts[%zu]: cannot make cgroup2 at %s read-only", index,
                        m->destination);
    return 0;
  }
  /* v1 and hybrid: a tmpfs with one bind mount of the container's directory per hierarchy. */
  if (mount("tmpfs", target, "tmpfs", base, "mode=755") < 0)
    return isola_fail(err, errno, "mounts[%zu]: cannot mount tmpfs at %s", index, m->destination);
  for (size_t i = 0; i < cg->n_paths; i++) {
    const char *name = cg->paths[i].controller[0] ? cg->paths[i].controller : "unified";
    if (!strncmp(name, "name=", 5))
      name += 5;
    _cleanup_free_ char *sub = xasprintf("%s/%s", m->destination, name);
    _cleanup_close_ int fd = open_in_root(rootfd, sub, true, false, O_PATH | O_DIRECTORY, err);
    if (fd < 0)
      return isola_error_prefix(err, "mounts[%zu]", index);
    _cleanup_free_ char *p = fd_path(fd);
    if (mount(cg->paths[i].path, p, NULL, MS_BIND | MS_REC, NULL) < 0)
      return isola_fail(err, errno, "mounts[%zu]: cannot bind the %s cgroup at %s", index, name,
                        sub);
    _cleanup_close_ int bound = open_in_root(rootfd, sub, false, false, O_PATH, err);
    if (bound < 0)
      return isola_error_prefix(err, "mounts[%zu]", index);
    _cleanup_free_ char *bp = fd_path(bound);
    if (mount(NULL, bp, NULL, MS_BIND | MS_REMOUNT | base | ro | locked_flags(bp), NULL) < 0)
      return isola_fail(err, errno, "mounts[%zu]: cannot make the %s cgroup at %s read-only", index,
                        name, sub);
    /* cpu,cpuacct is also reachable as cpu and cpuacct, as on the host. */
    if (strchr(name, ',')) {
      _cleanup_free_ char *names = xstrdup(name);
      _cleanup_close_ int dfd =
          open_in_root(rootfd, m->destination, false, false, O_PATH | O_DIRECTORY, err);
      for (char *s = NULL, *t = strtok_r(names, ",", &s); dfd >= 0 && t;
           t = strtok_r(NULL, ",", &s))
        (void) symlinkat(name, dfd, t);
    }
  }
  _cleanup_close_ int top = open_in_root(rootfd, m->destination, false, false, O_PATH, err);
  if (top < 0)
    return isola_error_prefix(err, "mounts[%zu]", index);
  _cleanup_free_ char *top_path = fd_path(top);
  if (ro && mount(NULL, top_path, NULL, MS_REMOUNT | base | MS_RDONLY, "mode=755") < 0)
    return isola_fail(err, errno, "mounts[%zu]: cannot make %s read-only", index, m->destination);
  return 0;
}

/* After a mount, an fd opened before it still points below it: open the new top again. */
static int reopen(int rootfd, const struct oci_mount *m, size_t index, int *fd, char **target,
                  struct isola_error **err)
{
  int nfd = open_in_root(rootfd, m->destination, false, false, O_PATH, err);
  if (nfd < 0)
    return isola_error_prefix(err, "mounts[%zu]", index);
  close(*fd);
  *fd = nfd;
  free(*target);
  *target = fd_path(nfd);
  return 0;
}

/* Nothing may be mounted into the container's procfs (through a symlink of the image, say):
 * it would hide the kernel's files that the runtime writes (labels, sysctls). The files LXCFS
 * stands in for are the exception, as with runc. */
static int check_not_in_proc(int fd, const struct oci_mount *m, size_t index,
                             struct isola_error **err)
{
  static const char *const allowed[] = {"/proc/cpuinfo", "/proc/diskstats",
                                        "/proc/meminfo", "/proc/stat",
                                        "/proc/swaps",   "/proc/uptime",
                                        "/proc/loadavg", "/proc/slabinfo",
                                        "/proc/net/dev", "/proc/sys/kernel/ns_last_pid"};
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0)
    return isola_fail(err, errno, "mounts[%zu]: cannot inspect %s", index, m->destination);
  if (sf.f_type != PROC_SUPER_MAGIC)
    return 0;
  for (size_t i = 0; i < ARRAY_SIZE(allowed); i++)
    if (!strcmp(m->destination, allowed[i]))
      return 0;
  return isola_failx(err, EPERM, "mounts[%zu]: destination \"%s\" is inside /proc", index,
                     m->destination);
}

static bool source_is_dir(const struct oci_mount *m)
{
  struct stat st;
  if (!m->bind || !m->source)
    return true;
  return stat(m->source, &st) < 0 || S_ISDIR(st.st_mode);
}

int mount_one(const struct rootfs_ctx *ctx, int rootfd, const struct oci_mount *m, size_t index,
              struct isola_error **err)
{
  const char *type = m->type ? m->type : "none";
  bool is_dir = source_is_dir(m);
  if (m->bind && m->source) {
    struct stat st;
    if (stat(m->source, &st) < 0)
      return isola_fail(err, errno, "mounts[%zu]: source \"%s\"", index, m->source);
  }
  _cleanup_close_ int fd =
      open_in_root(rootfd, m->destination, true, !is_dir, O_PATH | (is_dir ? O_DIRECTORY : 0), err);
  if (fd < 0)
    return isola_error_prefix(err, "mounts[%zu]: destination \"%s\"", index, m->destination);
  int r = check_not_in_proc(fd, m, index, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *target = fd_path(fd);
  unsigned long flags = m->flags & ~(MS_REMOUNT);

  if (!strcmp(type, "cgroup") || !strcmp(type, "cgroup2")) {
    r = mount_cgroup(ctx, rootfd, m, target, index, err);
    if (r < 0)
      return r;
  } else if (m->bind) {
    if (mount(m->source, target, NULL, MS_BIND | (m->recursive ? MS_REC : 0), NULL) < 0)
      return isola_fail(err, errno, "mounts[%zu]: cannot bind \"%s\" at %s", index, m->source,
                        m->destination);
    /* A bind mount takes its flags only through a remount, of the new mount on top. */
    if (reopen(rootfd, m, index, &fd, &target, err) < 0)
      return -EIO;
    unsigned long want = flags & ~(MS_BIND | MS_REC);
    if (want & ~(MS_SILENT)) {
      unsigned long keep = locked_flags(target) & ~m->clear_flags;
      if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | want | keep, NULL) < 0)
        return isola_fail(err, errno, "mounts[%zu]: cannot apply options to %s", index,
                          m->destination);
    }
  } else {
    const char *source = m->source ? m->source : type;
    if (mount(source, target, type, flags, m->data) < 0) {
      int e = errno;
      /* In a user namespace without its own network namespace, sysfs can't be mounted
       * fresh: bind the host's, as runc does. */
      if (!strcmp(type, "sysfs") && (e == EPERM || e == EBUSY) &&
          mount("/sys", target, NULL, MS_BIND | MS_REC, NULL) == 0) {
        if (mount(NULL, target, NULL,
                  MS_BIND | MS_REMOUNT | (flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)) |
                      locked_flags(target),
                  NULL) < 0)
          return isola_fail(err, errno, "mounts[%zu]: cannot apply options to %s", index,
                            m->destination);
      } else if (!strcmp(type, "mqueue") && (e == EPERM || e == EBUSY) &&
                 mount("/dev/mqueue", target, NULL, MS_BIND | MS_REC, NULL) == 0) {
        /* the same for an mqueue without a new ipc namespace in a user namespace */
      } else {
        return isola_fail(err, e, "mounts[%zu]: cannot mount %s at %s", index, type,
                          m->destination);
      }
    }
  }
  if (reopen(rootfd, m, index, &fd, &target, err) < 0)
    return -EIO;
  if (m->rro) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
      return isola_fail(err, errno, "mounts[%zu]: cannot make %s recursively read-only", index,
                        m->destination);
  }
  if (m->propagation && mount(NULL, target, NULL, m->propagation, NULL) < 0)
    return isola_fail(err, errno, "mounts[%zu]: cannot set propagation of %s", index,
                      m->destination);
  return 0;
}
