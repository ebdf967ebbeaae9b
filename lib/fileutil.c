/* File and fd utilities shared by the runtime, the CLI and (later) guest-init. */
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

int read_all(int fd, void *buf, size_t len)
{
  size_t done = 0;
  while (done < len) {
    ssize_t n = read(fd, (char *) buf + done, len - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      break;
    done += n;
  }
  return (int) done;
}

int write_all(int fd, const void *buf, size_t len)
{
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, (const char *) buf + done, len - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    done += n;
  }
  return 0;
}

int read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len)
{
  _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  size_t cap = max < 4096 ? max : 4096, used = 0;
  _cleanup_free_ char *buf = xmalloc(cap + 1);
  for (;;) {
    if (used == cap) {
      if (cap >= max) {
        /* Full: one more byte means the file is over the limit. */
        char extra;
        ssize_t n = read(fd, &extra, 1);
        if (n > 0)
          return -EFBIG;
        if (n < 0 && errno == EINTR)
          continue;
        if (n < 0)
          return -errno;
        break;
      }
      cap = cap * 2 > max ? max : cap * 2;
      buf = xrealloc(buf, cap + 1);
    }
    ssize_t n = read(fd, buf + used, cap - used);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      break;
    used += n;
  }
  buf[used] = '\0';
  if (len)
    *len = used;
  *out = steal_pointer(&buf);
  return 0;
}

/* Kernel files take a whole value in one write; a short write means it was refused. */
static int write_once(int fd, const char *data, size_t len)
{
  ssize_t n;
  do
    n = write(fd, data, len);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  return (size_t) n == len ? 0 : -EIO;
}

int write_file_at(int dirfd, const char *path, const char *data, size_t len)
{
  _cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  return write_once(fd, data, len);
}

int write_file_atomic(int dirfd, const char *path, const char *data, size_t len, mode_t mode)
{
  _cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int) getpid());
  _cleanup_close_ int fd =
      openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return -errno;
  int r = write_all(fd, data, len);
  if (r == 0 && renameat(dirfd, tmp, dirfd, path) < 0)
    r = -errno;
  if (r < 0)
    unlinkat(dirfd, tmp, 0);
  return r;
}

int write_proc_file(const char *path, const char *data, size_t len)
{
  _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  if (fd < 0)
    return -errno;
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0)
    return -errno;
  if (sf.f_type != PROC_SUPER_MAGIC)
    return -EXDEV;
  return write_once(fd, data, len);
}

int mkdir_p_at(int dirfd, const char *path, mode_t mode)
{
  _cleanup_free_ char *p = xstrdup(path);
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/')
    p[--n] = '\0';
  for (char *s = p + 1; *s; s++) {
    if (*s != '/')
      continue;
    *s = '\0';
    if (mkdirat(dirfd, p, mode) < 0 && errno != EEXIST)
      return -errno;
    *s = '/';
  }
  if (mkdirat(dirfd, p, mode) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

static int rm_rf_children(int dfd, dev_t dev)
{
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return -errno;
  }
  int ret = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) {
        ret = -EBUSY;
        continue;
      }
      int cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (cfd >= 0) {
        int r = rm_rf_children(cfd, dev);
        if (r < 0)
          ret = r;
      }
      if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        ret = -errno;
    } else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
      ret = -errno;
    }
  }
  closedir(d);
  return ret;
}

int rm_rf_at(int dirfd, const char *path)
{
  int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return errno == ENOENT ? 0 : -errno;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    close(fd);
    return -errno;
  }
  int r = rm_rf_children(fd, st.st_dev);
  if (unlinkat(dirfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return r < 0 ? r : -errno;
  return r;
}

unsigned long long proc_start_time(pid_t pid)
{
  char path[64];
  _cleanup_free_ char *buf = NULL;
  snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
  if (pid <= 0 || read_file_at(AT_FDCWD, path, 65536, &buf, NULL) < 0)
    return 0;
  /* The command name may contain spaces and parentheses: fields restart after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p || p[1] != ' ' || !p[2])
    return 0;
  if (p[2] == 'Z' || p[2] == 'X') /* a zombie has exited already */
    return 0;
  /* p + 1 is the space before field 3 (state); start time is field 22. */
  p++;
  for (int field = 3; field < 22 && p; field++)
    p = strchr(p + 1, ' ');
  if (!p)
    return 0;
  return strtoull(p + 1, NULL, 10);
}

int send_fds(int sock, const void *data, size_t len, const int *fds, int nfds)
{
  char cbuf[CMSG_SPACE(sizeof(int) * 8)] = {0};
  struct iovec iov = {.iov_base = (void *) data, .iov_len = len};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 8)
    return -EINVAL;
  if (nfds > 0) {
    msg.msg_control = cbuf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : 0;
}

int recv_fds(int sock, void *data, size_t len, int *fds, int maxfds, int *nfds)
{
  char cbuf[CMSG_SPACE(sizeof(int) * 8)] = {0};
  struct iovec iov = {.iov_base = data, .iov_len = len};
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
  ssize_t n;
  do
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  *nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    int count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (int i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (*nfds < maxfds)
        fds[(*nfds)++] = fd;
      else
        close(fd);
    }
  }
  return (int) n;
}

int parse_u64(const char *s, uint64_t *out)
{
  if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
    return -EINVAL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end)
    return -EINVAL;
  *out = v;
  return 0;
}

int parse_i64(const char *s, int64_t *out)
{
  if (!s || !*s || *s == ' ')
    return -EINVAL;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end)
    return -EINVAL;
  *out = v;
  return 0;
}
