/* An image's rootfs as a VM disk: an erofs image made once per manifest digest. */
#include "image.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MKFS "mkfs.erofs"

/* The directories of $PATH searched for mkfs.erofs, as execvp would. */
static char *find_mkfs(void)
{
  const char *path = getenv("PATH");
  _cleanup_free_ char *copy = xstrdup(
      path && *path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  for (char *save = NULL, *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    char *cand = xasprintf("%s/" MKFS, d);
    if (access(cand, X_OK) == 0)
      return cand;
    free(cand);
  }
  return NULL;
}

/* In the child: a private mount namespace, a read-only overlay of the layers, then mkfs.erofs.
 * Never returns. */
static void build_child(const char *mkfs, const char *lower, const char *mnt, const char *out,
                        int errfd)
{
  dup2(errfd, 2);
  dup2(errfd, 1);
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    dprintf(2, "cannot make a private mount namespace: %s\n", strerror(errno));
    _exit(125);
  }
  _cleanup_free_ char *opts = xasprintf("lowerdir=%s", lower);
  if (mount("overlay", mnt, "overlay", MS_RDONLY | MS_NODEV, opts) < 0) {
    dprintf(2, "cannot mount the image's layers: %s\n", strerror(errno));
    _exit(125);
  }
  /* A fixed UUID: the same image gives the same disk. */
  execl(mkfs, MKFS, "--quiet", "-U", "00000000-0000-0000-0000-000000000000", out, mnt,
        (char *) NULL);
  dprintf(2, "cannot run %s: %s\n", mkfs, strerror(errno));
  _exit(127);
}

int store_image_disk(struct image_store *s, const struct image_entry *img, char **path,
                     struct isola_error **err)
{
  const char *hex = img->manifest + 7;
  _cleanup_free_ char *final = xasprintf("%s/disks/%s.erofs", s->root, hex),
                      *lockname = xasprintf("disks/%s.lock", hex);
  int r = mkdir_p_at(s->rootfd, "disks", 0700);
  if (r < 0)
    return isola_fail(err, -r, "cannot create \"%s/disks\"", s->root);
  if (access(final, F_OK) == 0) {
    *path = steal_pointer(&final);
    return 0;
  }
  _cleanup_close_ int lock =
      openat(s->rootfd, lockname, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock < 0)
    return isola_fail(err, errno, "cannot lock the disk of image \"%s\"", img->name);
  while (flock(lock, LOCK_EX) < 0)
    if (errno != EINTR)
      return isola_fail(err, errno, "cannot lock the disk of image \"%s\"", img->name);
  if (access(final, F_OK) == 0) {
    *path = steal_pointer(&final);
    return 0;
  }
  _cleanup_free_ char *mkfs = find_mkfs();
  if (!mkfs)
    return isola_failx(err, ENOENT,
                       "cannot make the VM disk of image \"%s\": " MKFS
                       " is not installed (Debian package erofs-utils)",
                       img->name);
  _cleanup_strv_ char **layers = NULL;
  if ((r = store_image_layers(s, img, &layers, err)) < 0)
    return r;
  /* overlayfs wants two lower dirs when it has no upper: an empty one goes at the bottom. */
  _cleanup_free_ char *empty = xasprintf("%s/disks/empty", s->root),
                      *mnt = xasprintf("%s/disks/%s.mnt", s->root, hex),
                      *tmp = xasprintf("%s/disks/%s.erofs.tmp", s->root, hex);
  if ((mkdir(empty, 0755) < 0 && errno != EEXIST) || (mkdir(mnt, 0755) < 0 && errno != EEXIST))
    return isola_fail(err, errno, "cannot create directories in \"%s/disks\"", s->root);
  _cleanup_free_ char *lower = xstrdup("");
  for (size_t i = strv_length(layers); i-- > 0;) {
    char *l = xasprintf("%s%s:", lower, layers[i]);
    free(lower);
    lower = l;
  }
  char *l = xasprintf("%s%s", lower, empty);
  free(lower);
  lower = l;
  if (strlen(lower) > 3900)
    return isola_failx(err, E2BIG, "image \"%s\" has too many layers for one overlay mount",
                       img->name);
  unlink(tmp); /* ours to replace: we hold the lock */
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0)
    return isola_fail(err, errno, "cannot create a pipe");
  pid_t pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return isola_fail(err, errno, "cannot start " MKFS);
  }
  if (pid == 0)
    build_child(mkfs, lower, mnt, tmp, pipefd[1]);
  close(pipefd[1]);
  /* Keep the tail of what it says, for the error. */
  char msg[4096];
  size_t used = 0;
  for (;;) {
    char buf[1024];
    ssize_t n = read(pipefd[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if ((size_t) n > sizeof(msg) - 1)
      n = sizeof(msg) - 1;
    if (used + n > sizeof(msg) - 1) {
      size_t drop = used + n - (sizeof(msg) - 1);
      memmove(msg, msg + drop, used - drop);
      used -= drop;
    }
    memcpy(msg + used, buf, n);
    used += n;
  }
  close(pipefd[0]);
  msg[used] = 0;
  while (used && (msg[used - 1] == '\n' || msg[used - 1] == ' '))
    msg[--used] = 0;
  const char *last = strrchr(msg, '\n') ? strrchr(msg, '\n') + 1 : msg;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  rmdir(mnt);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    unlink(tmp);
    return isola_failx(err, EIO, "cannot make the VM disk of image \"%s\": %s", img->name,
                       *last ? last : MKFS " failed");
  }
  _cleanup_close_ int fd = open(tmp, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) < 0 || rename(tmp, final) < 0) {
    r = isola_fail(err, errno, "cannot finish the VM disk \"%s\"", final);
    unlink(tmp);
    return r;
  }
  *path = steal_pointer(&final);
  return 0;
}
