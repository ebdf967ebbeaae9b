/* jail.c — where the monitor lives once the VM is set up (Firecracker's jailer, done by the
 * monitor itself): every file it needs is open by then (/dev/kvm, the kernel, disks, shared
 * directories, its vsock socket), so it moves into new mount, network, IPC and UTS namespaces
 * whose root is an empty read-only tmpfs holding only the directories it must still reach by
 * path (the vsock socket's: guest → host connections and the socket's removal), and gives up
 * every capability but those a shared directory's FUSE server needs to act for the guest's
 * users. Taken over, the monitor then sees no host file, no host socket (containerd's, docker's)
 * and no network, on top of the seccomp filter (sandbox.c). */
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "vmm.h"

#define JAIL_ROOT "/tmp" /* any directory: the tmpfs covers it in our namespace only */

/* Capabilities the FUSE server keeps: chown to the guest's users, act on files whatever their
 * owner and mode (the guest kernel checked the permissions), link by descriptor. */
static const int fs_caps[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER,
                              CAP_FSETID};

static int mkdir_p(const char *path)
{
  _cleanup_free_ char *p = xstrdup(path);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = 0;
      if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return -errno;
      *s = '/';
    }
  return mkdir(p, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static int drop_caps(bool files, struct isola_error **err)
{
  uint64_t keep = 0;
  if (files)
    for (size_t i = 0; i < ARRAY_SIZE(fs_caps); i++)
      keep |= 1ull << fs_caps[i];
  /* Up to 63, not the headers' CAP_LAST_CAP: a newer kernel may know more (EINVAL past its
   * last). */
  for (int c = 0; c < 64; c++)
    if (!(keep & (1ull << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      return isola_fail(err, errno, "jail: cannot drop capability %d from the bounding set", c);
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct d[2] = {0};
  for (int i = 0; i < 2; i++)
    d[i].effective = d[i].permitted = (uint32_t) (keep >> (32 * i));
  if (syscall(SYS_capset, &h, d) < 0)
    return isola_fail(err, errno, "jail: cannot drop capabilities");
  return 0;
}

int vm_jail(const char *const *keep_in, size_t n, bool files, struct isola_error **err)
{
  if (n > 8)
    return isola_failx(err, E2BIG, "jail: at most 8 directories");
  const char *keep[9];
  memcpy(keep, keep_in, n * sizeof(*keep));
#if defined(__SANITIZE_ADDRESS__)
  keep[n++] = "/proc"; /* LeakSanitizer reads /proc/self/task at exit */
#endif
  /* Detached copies of the directories to keep, taken before anything covers them. */
  int trees[9];
  size_t taken = 0;
  int r = 0;
  for (; taken < n; taken++) {
    trees[taken] =
        (int) syscall(SYS_open_tree, AT_FDCWD, keep[taken], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (trees[taken] < 0) {
      r = -errno;
      break;
    }
  }
  if (r == 0 && unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
    r = isola_fail(err, errno, "jail: cannot make new namespaces");
  else if (r < 0)
    r = isola_fail(err, -r, "jail: cannot take \"%s\"", keep[taken]);
  if (r == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    r = isola_fail(err, errno, "jail: cannot make the mounts private");
  if (r == 0 &&
      mount("jail", JAIL_ROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k") < 0)
    r = isola_fail(err, errno, "jail: cannot mount its root");
  for (size_t i = 0; r == 0 && i < n; i++) {
    _cleanup_free_ char *at = xasprintf(JAIL_ROOT "%s", keep[i]);
    if ((r = mkdir_p(at)) < 0)
      r = isola_fail(err, -r, "jail: cannot make \"%s\"", at);
    else if (syscall(SYS_move_mount, trees[i], "", AT_FDCWD, at, MOVE_MOUNT_F_EMPTY_PATH) < 0)
      r = isola_fail(err, errno, "jail: cannot mount \"%s\" in it", keep[i]);
  }
  for (size_t i = 0; i < taken; i++)
    close(trees[i]);
  if (r < 0)
    return r;
  if (mount(NULL, JAIL_ROOT, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            NULL) < 0)
    return isola_fail(err, errno, "jail: cannot make its root read-only");
  /* pivot_root(".", "."): the old root stacks under the new one and goes with one unmount. */
  if (chdir(JAIL_ROOT) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
      umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
    return isola_fail(err, errno, "jail: cannot enter its root");
  return drop_caps(files, err);
}
