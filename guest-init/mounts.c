/* Mounts of guest-init: what init itself needs in the VM, the container's root (the image disk
 * read-only under an overlay with a writable upper layer), the switch into it, and the
 * container's standard filesystems. */
#include "init.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

static int mount_at(const char *src, const char *dst, const char *type, unsigned long flags,
                    const char *data, struct isola_error **err)
{
  int r = mkdir_p_at(AT_FDCWD, dst, 0755);
  if (r < 0)
    return isola_fail(err, -r, "cannot create the mount point \"%s\"", dst);
  if (mount(src, dst, type, flags, data) < 0)
    return isola_fail(err, errno, "cannot mount %s on \"%s\"", type ? type : src, dst);
  return 0;
}

int guest_mount_early(struct isola_error **err)
{
  int r;
  if ((r = mount_at("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err)) < 0 ||
      (r = mount_at("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err)) < 0)
    return r;
  /* The kernel may have mounted devtmpfs already (CONFIG_DEVTMPFS_MOUNT). */
  if (mount_at("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", err) < 0) {
    if ((*err)->code != EBUSY)
      return -(*err)->code;
    isola_error_free(err);
  }
  return 0;
}

/* The image disk, read-only: the given filesystem, or erofs and then ext4. */
static int mount_block(const char *dev, const char *fstype, const char *dst,
                       struct isola_error **err)
{
  static const char *const types[] = {"erofs", "ext4"};
  int r = mkdir_p_at(AT_FDCWD, dst, 0755);
  if (r < 0)
    return isola_fail(err, -r, "cannot create \"%s\"", dst);
  int last = ENODEV;
  for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
    if (fstype && strcmp(fstype, types[i]))
      continue;
    /* ext4 would replay its journal on a read-only mount unless told not to. */
    const char *data = strcmp(types[i], "ext4") ? NULL : "noload";
    if (mount(dev, dst, types[i], MS_RDONLY | MS_NODEV, data) == 0)
      return 0;
    last = errno;
  }
  return isola_fail(err, last, "cannot mount the root disk \"%s\" (%s)", dev,
                    fstype ? fstype : "erofs or ext4");
}

/* A directory root (test mode, later virtio-fs): bound read-only. The directory is opened before
 * the staging tmpfs can hide it, and bound from the fd. */
static int mount_directory(int dirfd, const char *name, const char *dst, struct isola_error **err)
{
  char fdpath[64];
  snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", dirfd);
  int r = mkdir_p_at(AT_FDCWD, dst, 0755);
  if (r < 0)
    return isola_fail(err, -r, "cannot create \"%s\"", dst);
  if (mount(fdpath, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
    return isola_fail(err, errno, "cannot bind the root directory \"%s\"", name);
  if (mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
    return isola_fail(err, errno, "cannot make the root directory \"%s\" read-only", name);
  return 0;
}

int guest_root_mount(const struct guest_config *cfg, const struct init_options *opts,
                     struct isola_error **err)
{
  const char *source = cfg->root.source ? cfg->root.source : opts->root_source;
  const char *fstype = cfg->has_root ? cfg->root.fstype : opts->root_fstype;
  const char *writable = cfg->root.writable ? cfg->root.writable : "tmpfs";
  bool is_dev = !strncmp(source, "/dev/", 5);
  int r;

  _cleanup_close_ int dirfd = -1;
  if (!is_dev && (dirfd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
    return isola_fail(err, errno, "cannot open the root directory \"%s\"", source);

  /* Staging area for the layers; hidden (pivot) or shadowed (initramfs) once the root moves. */
  if ((r = mount_at("tmpfs", GUEST_STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", err)) < 0)
    return r;
  const char *lower = GUEST_STAGE "/lower";
  r = is_dev ? mount_block(source, fstype, lower, err) : mount_directory(dirfd, source, lower, err);
  if (r < 0)
    return r;
  /* A read-only root ("none") gets a tmpfs upper layer too, so that the mount points the image
   * lacks (/run, /dev/shm...) can be made; guest_mount_container() then makes it read-only. */
  const char *rw = GUEST_STAGE "/rw";
  if (!strcmp(writable, "tmpfs") || !strcmp(writable, "none"))
    r = mount_at("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", err);
  else if ((r = mount_at(writable, rw, "ext4", MS_NODEV, NULL, err)) < 0)
    isola_error_prefix(err, "the writable disk");
  if (r < 0)
    return r;
  if ((r = mkdir_p_at(AT_FDCWD, GUEST_STAGE "/rw/upper", 0755)) < 0 ||
      (r = mkdir_p_at(AT_FDCWD, GUEST_STAGE "/rw/work", 0755)) < 0)
    return isola_fail(err, -r, "cannot create the overlay's upper layer");
  return mount_at("overlay", GUEST_NEWROOT, "overlay", 0,
                  "lowerdir=" GUEST_STAGE "/lower,upperdir=" GUEST_STAGE
                  "/rw/upper,workdir=" GUEST_STAGE "/rw/work",
                  err);
}

int guest_root_switch(struct isola_error **err)
{
  if (chdir(GUEST_NEWROOT) < 0)
    return isola_fail(err, errno, "cannot enter the new root");
  if (syscall(SYS_pivot_root, ".", ".") == 0) {
    /* The old root is stacked under the new one: detach it, and every mount below it. */
    if (umount2(".", MNT_DETACH) < 0)
      return isola_fail(err, errno, "cannot detach the old root");
  } else if (errno == EINVAL) {
    /* The initramfs cannot be pivoted away from: move the new root over it, as switch_root.
     * What stays underneath is only this binary, unreachable from the container's chroot. */
    if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
      return isola_fail(err, errno, "cannot move the new root over the initramfs");
    if (chroot(".") < 0)
      return isola_fail(err, errno, "cannot chroot into the new root");
  } else {
    return isola_fail(err, errno, "cannot pivot into the new root");
  }
  if (chdir("/") < 0)
    return isola_fail(err, errno, "cannot enter the new root");
  return 0;
}

struct std_mount {
  const char *dst, *type;
  unsigned long flags;
  const char *data;
};

static const struct std_mount std_mounts[] = {
    {"/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
    {"/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"},
    {"/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"},
    {"/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k"},
    {"/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
    {"/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL},
    {"/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755"},
};

static const struct {
  const char *name;
  unsigned major, minor;
} std_devices[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                   {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};

static const struct {
  const char *name, *target;
} std_links[] = {{"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"},
                 {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
                 {"ptmx", "pts/ptmx"},          {"core", "/proc/kcore"}};

static int make_devices(struct isola_error **err)
{
  mode_t old = umask(0);
  for (size_t i = 0; i < ARRAY_SIZE(std_devices); i++) {
    _cleanup_free_ char *p = xasprintf("/dev/%s", std_devices[i].name);
    if (mknod(p, S_IFCHR | 0666, makedev(std_devices[i].major, std_devices[i].minor)) < 0) {
      umask(old);
      return isola_fail(err, errno, "cannot create \"%s\"", p);
    }
  }
  umask(old);
  for (size_t i = 0; i < ARRAY_SIZE(std_links); i++) {
    _cleanup_free_ char *p = xasprintf("/dev/%s", std_links[i].name);
    if (symlink(std_links[i].target, p) < 0)
      return isola_fail(err, errno, "cannot create \"%s\"", p);
  }
  return 0;
}

static int mount_user(const struct oci_mount *m, size_t i, struct isola_error **err)
{
  /* A file bound onto a file needs a file as its mount point. */
  struct stat st;
  bool file = m->bind && stat(m->source, &st) == 0 && !S_ISDIR(st.st_mode);
  if (file) {
    _cleanup_free_ char *dir = xstrdup(m->destination);
    *strrchr(dir, '/') = '\0';
    int r = *dir ? mkdir_p_at(AT_FDCWD, dir, 0755) : 0;
    if (r < 0)
      return isola_fail(err, -r, "mounts[%zu]: cannot create \"%s\"", i, dir);
    int fd = open(m->destination, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && errno != EISDIR)
      return isola_fail(err, errno, "mounts[%zu]: cannot create \"%s\"", i, m->destination);
    if (fd >= 0)
      close(fd);
  } else {
    int r = mkdir_p_at(AT_FDCWD, m->destination, 0755);
    if (r < 0)
      return isola_fail(err, -r, "mounts[%zu]: cannot create \"%s\"", i, m->destination);
  }
  unsigned long flags = m->flags;
  if (m->bind)
    flags = MS_BIND | (m->recursive ? MS_REC : 0);
  if (mount(m->source ? m->source : m->type, m->destination, m->bind ? NULL : m->type, flags,
            m->bind ? NULL : m->data) < 0)
    return isola_fail(err, errno, "mounts[%zu]: cannot mount %s on \"%s\"", i,
                      m->bind ? "a bind" : m->type, m->destination);
  /* A bind mount takes its flags (ro, nosuid...) only from a remount. */
  if (m->bind && (m->flags & ~(MS_BIND | MS_REC)) &&
      mount(NULL, m->destination, NULL, MS_BIND | MS_REMOUNT | m->flags, NULL) < 0)
    return isola_fail(err, errno, "mounts[%zu]: cannot set the flags of \"%s\"", i, m->destination);
  if (m->propagation && mount(NULL, m->destination, NULL, m->propagation, NULL) < 0)
    return isola_fail(err, errno, "mounts[%zu]: cannot set the propagation of \"%s\"", i,
                      m->destination);
  return 0;
}

int guest_mount_container(const struct guest_config *cfg, bool test_mode, struct isola_error **err)
{
  int r;
  for (size_t i = 0; i < ARRAY_SIZE(std_mounts); i++) {
    const struct std_mount *s = &std_mounts[i];
    if ((r = mount_at(s->type, s->dst, s->type, s->flags, s->data, err)) < 0)
      return r;
    if (!strcmp(s->dst, "/dev") && (r = make_devices(err)) < 0)
      return r;
  }
  /* In test mode there is no cgroup namespace: cgroup2 would show the host's whole tree. */
  if (!test_mode && mount_at("cgroup2", "/sys/fs/cgroup", "cgroup2",
                             MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0)
    isola_error_free(err); /* optional: a kernel without cgroups still runs the container */
  for (size_t i = 0; i < cfg->n_mounts; i++)
    if ((r = mount_user(&cfg->mounts[i], i, err)) < 0)
      return r;
  if (cfg->root.writable && !strcmp(cfg->root.writable, "none") &&
      mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
    return isola_fail(err, errno, "cannot make the root read-only");
  return 0;
}

int guest_limit_pids(int64_t limit, struct isola_error **err)
{
  char n[24];
  snprintf(n, sizeof(n), "%lld", (long long) limit);
  static const char *const steps[][2] = {
      {"/sys/fs/cgroup/cgroup.subtree_control", "+pids"},
      {"/sys/fs/cgroup/isola/pids.max", NULL},
      {"/sys/fs/cgroup/isola/cgroup.procs", "0"},
  };
  if (mkdir("/sys/fs/cgroup/isola", 0755) < 0 && errno != EEXIST)
    return isola_fail(err, errno, "--pids-limit: cannot create the cgroup /sys/fs/cgroup/isola");
  for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
    const char *v = steps[i][1] ? steps[i][1] : n;
    int r = write_file_at(AT_FDCWD, steps[i][0], v, strlen(v));
    if (r < 0)
      return isola_fail(err, -r, "--pids-limit: cannot write \"%s\" to %s", v, steps[i][0]);
  }
  return 0;
}
