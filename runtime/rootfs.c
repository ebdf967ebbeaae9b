/* The container's root filesystem: propagation, mounts, /dev, pivot_root, masked and
 * read-only paths, sysctl. Runs in the container process. */
#include "container.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

static const struct {
  const char *path;
  int major, minor;
} default_devices[] = {
    {"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

static bool has_mount_at(const struct oci_spec *s, const char *dest)
{
  for (size_t i = 0; i < s->n_mounts; i++)
    if (!strcmp(s->mounts[i].destination, dest))
      return true;
  return false;
}

/* Create one device node; in a user namespace mknod is not allowed: bind the host's node. */
static int make_device(const struct rootfs_ctx *ctx, int rootfd, const char *path, char type,
                       int major, int minor, mode_t mode, uid_t uid, gid_t gid,
                       struct isola_error **err)
{
  mode_t fmt = type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;
  _cleanup_free_ char *dir = xstrdup(path);
  char *slash = strrchr(dir, '/');
  const char *name = path + (slash - dir) + 1;
  *slash = '\0';
  _cleanup_close_ int dfd =
      open_in_root(rootfd, *dir ? dir : "/", true, false, O_PATH | O_DIRECTORY, err);
  if (dfd < 0)
    return dfd;
  if (!ctx->in_user_ns) {
    (void) unlinkat(dfd, name, 0);
    if (mknodat(dfd, name, fmt | (mode & 07777), makedev(major, minor)) < 0)
      return isola_fail(err, errno, "cannot create device %s", path);
    if (fchmodat(dfd, name, mode & 07777, 0) < 0 ||
        fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
      return isola_fail(err, errno, "cannot set the owner and mode of device %s", path);
    return 0;
  }
  /* The host's node is the source: it must be a device. The target is a plain file we make
   * (never opened for writing: a FIFO of the image there would block us). */
  struct stat hs, ts;
  if (stat(path, &hs) < 0 || !(S_ISCHR(hs.st_mode) || S_ISBLK(hs.st_mode)))
    return isola_failx(err, ENODEV, "cannot bind the host's %s: not a device on the host", path);
  if (fstatat(dfd, name, &ts, AT_SYMLINK_NOFOLLOW) < 0) {
    int fd = openat(dfd, name, O_CREAT | O_EXCL | O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
      return isola_fail(err, errno, "cannot create %s for a bind mount", path);
    close(fd);
  } else if (!S_ISREG(ts.st_mode) && !S_ISCHR(ts.st_mode) && !S_ISBLK(ts.st_mode)) {
    return isola_failx(err, EEXIST, "cannot bind over %s: the image has something else there",
                       path);
  }
  _cleanup_close_ int tfd = open_in_root(rootfd, path, false, false, O_PATH, err);
  if (tfd < 0)
    return tfd;
  _cleanup_free_ char *target = xasprintf("/proc/self/fd/%d", tfd);
  if (mount(path, target, NULL, MS_BIND, NULL) < 0)
    return isola_fail(err, errno, "cannot bind the host's %s", path);
  return 0;
}

static int setup_dev(const struct rootfs_ctx *ctx, int rootfd, struct isola_error **err)
{
  const struct oci_spec *s = ctx->spec;
  int r;
  for (size_t i = 0; i < ARRAY_SIZE(default_devices); i++) {
    bool overridden = false;
    for (size_t j = 0; j < s->n_devices; j++)
      if (!strcmp(s->devices[j].path, default_devices[i].path))
        overridden = true;
    if (overridden)
      continue;
    if ((r = make_device(ctx, rootfd, default_devices[i].path, 'c', default_devices[i].major,
                         default_devices[i].minor, 0666, 0, 0, err)) < 0)
      return r;
  }
  for (size_t i = 0; i < s->n_devices; i++) {
    const struct oci_device *d = &s->devices[i];
    if ((r = make_device(ctx, rootfd, d->path, d->type == 'u' ? 'c' : d->type, (int) d->major,
                         (int) d->minor, d->has_mode ? d->mode : 0666, d->has_uid ? d->uid : 0,
                         d->has_gid ? d->gid : 0, err)) < 0)
      return isola_error_prefix(err, "linux.devices[%zu]", i);
  }
  /* The usual links, where nothing of the image or the config is in their place. */
  static const char *const links[][2] = {{"/proc/self/fd", "fd"},
                                         {"/proc/self/fd/0", "stdin"},
                                         {"/proc/self/fd/1", "stdout"},
                                         {"/proc/self/fd/2", "stderr"},
                                         {"/proc/kcore", "core"}};
  _cleanup_close_ int dev = open_in_root(rootfd, "/dev", true, false, O_PATH | O_DIRECTORY, err);
  if (dev < 0)
    return dev;
  for (size_t i = 0; i < ARRAY_SIZE(links); i++)
    if (symlinkat(links[i][0], dev, links[i][1]) < 0 && errno != EEXIST)
      return isola_fail(err, errno, "cannot create /dev/%s", links[i][1]);
  if (has_mount_at(s, "/dev/pts")) {
    (void) unlinkat(dev, "ptmx", 0);
    if (symlinkat("pts/ptmx", dev, "ptmx") < 0)
      return isola_fail(err, errno, "cannot create /dev/ptmx");
  }
  return 0;
}

int rootfs_prepare(const struct rootfs_ctx *ctx, struct isola_error **err)
{
  const struct oci_spec *s = ctx->spec;
  int r;
  if (!ctx->new_mount_ns)
    return 0;
  unsigned long prop = s->rootfs_propagation ? s->rootfs_propagation : MS_SLAVE | MS_REC;
  /* Mount events of the container must not reach the host: only slave/private for "/" here,
   * shared is set on the new root after pivot_root. Unbindable waits too: it would forbid the
   * bind of the rootfs just below (private propagates nothing either). */
  unsigned long root_prop = (prop & MS_SHARED)       ? (MS_SLAVE | MS_REC)
                            : (prop & MS_UNBINDABLE) ? (MS_PRIVATE | MS_REC)
                                                     : prop;
  if (mount(NULL, "/", NULL, root_prop | MS_REC, NULL) < 0)
    return isola_fail(err, errno, "cannot set the propagation of /");
  /* No mount is shared now, as pivot_root wants; the bind keeps the propagation of "/", so a
   * slave root still receives the host's mount events. */
  if (mount(ctx->rootfs, ctx->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
    return isola_fail(err, errno, "root.path: cannot bind \"%s\"", ctx->rootfs);

  _cleanup_close_ int rootfd = open(ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return isola_fail(err, errno, "root.path: cannot open \"%s\"", ctx->rootfs);
  for (size_t i = 0; i < s->n_mounts; i++)
    if ((r = mount_one(ctx, rootfd, &s->mounts[i], i, err)) < 0)
      return r;
  return setup_dev(ctx, rootfd, err);
}

int rootfs_pivot(const struct rootfs_ctx *ctx, bool no_pivot, struct isola_error **err)
{
  if (!ctx->new_mount_ns) {
    if (chroot(ctx->rootfs) < 0 || chdir("/") < 0)
      return isola_fail(err, errno, "cannot chroot to \"%s\"", ctx->rootfs);
    return 0;
  }
  if (chdir(ctx->rootfs) < 0)
    return isola_fail(err, errno, "cannot enter \"%s\"", ctx->rootfs);
  if (!no_pivot) {
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
      /* The old root is now stacked on "/": detach it without telling the host. */
      if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
        return isola_fail(err, errno, "cannot make the old root a slave");
      if (umount2(".", MNT_DETACH) < 0)
        return isola_fail(err, errno, "cannot detach the old root");
      if (chdir("/") < 0)
        return isola_fail(err, errno, "cannot enter the new root");
      goto done;
    }
    if (errno != EINVAL) /* EINVAL: e.g. an initramfs root, where only the fallback works */
      return isola_fail(err, errno, "pivot_root to \"%s\"", ctx->rootfs);
  }
  if (mount(ctx->rootfs, "/", NULL, MS_MOVE, NULL) < 0)
    return isola_fail(err, errno, "cannot move \"%s\" to /", ctx->rootfs);
  if (chroot(".") < 0 || chdir("/") < 0)
    return isola_fail(err, errno, "cannot chroot to \"%s\"", ctx->rootfs);
done:
  if (ctx->spec->rootfs_propagation &&
      mount(NULL, "/", NULL, ctx->spec->rootfs_propagation, NULL) < 0)
    return isola_fail(err, errno, "linux.rootfsPropagation: cannot apply to /");
  return 0;
}

/* Mount over an fd of the path opened without following a final symlink: a link in the
 * image cannot send the mask elsewhere. Files are covered with /dev/null, checked to be 1:3. */
static int mask_path(const char *path, struct isola_error **err)
{
  _cleanup_close_ int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : isola_fail(err, errno, "linux.maskedPaths: %s", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return isola_fail(err, errno, "linux.maskedPaths: %s", path);
  if (S_ISLNK(st.st_mode))
    return isola_failx(err, EINVAL, "linux.maskedPaths: %s is a symlink", path);
  char target[64];
  snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
  if (S_ISDIR(st.st_mode)) {
    if (mount("tmpfs", target, "tmpfs", MS_RDONLY, "size=0k,mode=555") < 0)
      return isola_fail(err, errno, "linux.maskedPaths: cannot mask %s", path);
    return 0;
  }
  _cleanup_close_ int null = open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
  struct stat ns;
  if (null < 0 || fstat(null, &ns) < 0 || !S_ISCHR(ns.st_mode) || ns.st_rdev != makedev(1, 3))
    return isola_failx(err, EINVAL, "linux.maskedPaths: the container's /dev/null is not 1:3");
  char source[64];
  snprintf(source, sizeof(source), "/proc/self/fd/%d", null);
  if (mount(source, target, NULL, MS_BIND, NULL) < 0)
    return isola_fail(err, errno, "linux.maskedPaths: cannot mask %s", path);
  return 0;
}

static int readonly_path(const char *path, struct isola_error **err)
{
  if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0)
    return errno == ENOENT ? 0 : isola_fail(err, errno, "linux.readonlyPaths: %s", path);
  struct statvfs sv;
  unsigned long keep = 0;
  if (statvfs(path, &sv) == 0)
    keep = (sv.f_flag & ST_NOSUID ? MS_NOSUID : 0) | (sv.f_flag & ST_NODEV ? MS_NODEV : 0) |
           (sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0);
  if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | keep, NULL) < 0)
    return isola_fail(err, errno, "linux.readonlyPaths: cannot make %s read-only", path);
  return 0;
}

int rootfs_finalize(const struct rootfs_ctx *ctx, struct isola_error **err)
{
  const struct oci_spec *s = ctx->spec;
  int r;
  /* Before the paths go read-only: engines list /proc/sys among them (as runc orders it). */
  if ((r = sysctl_apply(s, err)) < 0)
    return r;
  for (size_t i = 0; s->masked_paths && s->masked_paths[i]; i++)
    if ((r = mask_path(s->masked_paths[i], err)) < 0)
      return r;
  for (size_t i = 0; s->readonly_paths && s->readonly_paths[i]; i++)
    if ((r = readonly_path(s->readonly_paths[i], err)) < 0)
      return r;
  if (s->root_readonly && ctx->new_mount_ns) {
    struct statvfs sv;
    unsigned long keep = 0;
    if (statvfs("/", &sv) == 0)
      keep = (sv.f_flag & ST_NOSUID ? MS_NOSUID : 0) | (sv.f_flag & ST_NODEV ? MS_NODEV : 0) |
             (sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0);
    if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, NULL) < 0)
      return isola_fail(err, errno, "root.readonly: cannot make / read-only");
  }
  return 0;
}

int sysctl_apply(const struct oci_spec *s, struct isola_error **err)
{
  for (size_t i = 0; i < s->n_sysctl; i++) {
    _cleanup_free_ char *key = xstrdup(s->sysctl[i].key);
    for (char *p = key; *p; p++)
      if (*p == '.')
        *p = '/';
    _cleanup_free_ char *path = xasprintf("/proc/sys/%s", key);
    const char *v = s->sysctl[i].value;
    int r = write_proc_file(path, v, strlen(v));
    if (r < 0)
      return isola_fail(err, -r, "linux.sysctl: cannot set %s to \"%s\"", s->sysctl[i].key, v);
  }
  return 0;
}
