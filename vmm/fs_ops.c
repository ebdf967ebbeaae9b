/* fs_ops.c — the FUSE operations of the virtio-fs server (fs_server.c has the inode and handle
 * tables, the confinement helpers and the dispatcher). Each works on O_PATH descriptors and one
 * path component at a time, never a path. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "fs_server.h"

int fs_init(struct fs_server *s, const uint8_t *a, size_t alen, size_t *len)
{
  /* Up to flags: the part every minor we accept sends (7.36 added flags2 and more). */
  if (alen < offsetof(struct fuse_init_in, flags2))
    return -EINVAL;
  const struct fuse_init_in *in = (const struct fuse_init_in *) a;
  struct fuse_init_out *o = OUT(struct fuse_init_out);
  *o = (struct fuse_init_out){.major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION};
  *len = sizeof(*o);
  if (in->major > FUSE_KERNEL_VERSION)
    return 0; /* the driver asks again with ours */
  if (in->major < FUSE_KERNEL_VERSION || in->minor < FS_MIN_MINOR)
    return -EPROTO;
  const uint32_t want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES |
                        FUSE_AUTO_INVAL_DATA | FUSE_ASYNC_DIO | FUSE_PARALLEL_DIROPS |
                        FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS;
  o->minor = in->minor < FUSE_KERNEL_MINOR_VERSION ? in->minor : FUSE_KERNEL_MINOR_VERSION;
  o->flags = in->flags & want;
  o->max_readahead = in->max_readahead < FS_MAX_IO ? in->max_readahead : FS_MAX_IO;
  o->max_background = 64;
  o->congestion_threshold = 48;
  o->max_write = FS_MAX_IO;
  o->time_gran = 1;
  o->max_pages = FS_MAX_IO / 4096;
  s->initialized = true;
  return 0;
}

int fs_lookup(struct fs_server *s, struct fs_inode *in, const uint8_t *a, size_t alen, size_t *len)
{
  size_t off = 0;
  const char *name;
  int r = fs_name(a, alen, &off, &name);
  if (r < 0)
    return r == -EINVAL ? -ENOENT : r;
  if (in->type != S_IFDIR)
    return -ENOTDIR;
  if (fs_root_locked(s, in) && strcmp(name, s->only))
    return -ENOENT;
  *len = sizeof(struct fuse_entry_out);
  return fs_entry(s, in, name, OUT(struct fuse_entry_out));
}

int fs_getattr(struct fs_inode *in, struct fuse_attr_out *o, size_t *len)
{
  struct stat st;
  int r = fs_stat(in->fd, &st);
  if (r < 0)
    return r;
  *o = (struct fuse_attr_out){.attr_valid = FS_TIMEOUT_S};
  fs_attr(&st, &o->attr);
  *len = sizeof(*o);
  return 0;
}

static int fs_utimes(struct fs_server *s, struct fs_inode *in, const struct fuse_setattr_in *sa)
{
  struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
  if (sa->valid & FATTR_ATIME_NOW)
    ts[0].tv_nsec = UTIME_NOW;
  else if (sa->valid & FATTR_ATIME)
    ts[0] = (struct timespec){(time_t) sa->atime, sa->atimensec};
  if (sa->valid & FATTR_MTIME_NOW)
    ts[1].tv_nsec = UTIME_NOW;
  else if (sa->valid & FATTR_MTIME)
    ts[1] = (struct timespec){(time_t) sa->mtime, sa->mtimensec};
  if (utimensat(in->fd, "", ts, AT_EMPTY_PATH) == 0)
    return 0;
  if (errno != EINVAL || in->type == S_IFLNK) /* kernels before AT_EMPTY_PATH here */
    return -errno;
  char name[16];
  snprintf(name, sizeof(name), "%d", in->fd);
  return utimensat(s->proc_fd, name, ts, 0) < 0 ? -errno : 0;
}

int fs_setattr(struct fs_server *s, struct fs_inode *in, const uint8_t *a, size_t alen, size_t *len)
{
  const struct fuse_setattr_in *sa = ARG(struct fuse_setattr_in);
  uint32_t v = sa->valid;
  if (fs_root_locked(s, in))
    return -EPERM; /* the host directory around a shared file is not the guest's */
  if (s->readonly && (v & (FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | FATTR_ATIME |
                           FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)))
    return -EROFS;
  char name[16];
  snprintf(name, sizeof(name), "%d", in->fd);
  if (v & FATTR_MODE) {
    if (in->type == S_IFLNK)
      return -EOPNOTSUPP;
    if (fchmodat(s->proc_fd, name, sa->mode & 07777, 0) < 0)
      return -errno;
  }
  if ((v & (FATTR_UID | FATTR_GID)) &&
      fchownat(in->fd, "", (v & FATTR_UID) ? sa->uid : (uid_t) -1,
               (v & FATTR_GID) ? sa->gid : (gid_t) -1, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
    return -errno;
  if (v & FATTR_SIZE) {
    struct fs_handle *h = (v & FATTR_FH) ? fs_handle(s, sa->fh, false) : NULL;
    int fd = h ? h->fd : fs_reopen(s, in, O_WRONLY);
    if (fd < 0)
      return fd;
    int r = ftruncate(fd, (off_t) sa->size) < 0 ? -errno : 0;
    if (!h)
      close(fd);
    if (r < 0)
      return r;
  }
  if (v & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)) {
    int r = fs_utimes(s, in, sa);
    if (r < 0)
      return r;
  }
  return fs_getattr(in, OUT(struct fuse_attr_out), len);
}

/* MKDIR, MKNOD, SYMLINK, LINK: make the entry, give it to the caller, reply as LOOKUP. */
int fs_make(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
            const uint8_t *a, size_t alen, size_t *len)
{
  if (s->readonly)
    return -EROFS;
  if (dir->type != S_IFDIR)
    return -ENOTDIR;
  if (fs_root_locked(s, dir))
    return -EPERM;
  size_t off = 0;
  const char *name = NULL, *target = NULL;
  struct fs_inode *old = NULL;
  int r = 0;
  switch (h->opcode) {
  case FUSE_MKDIR: {
    const struct fuse_mkdir_in *in = ARG(struct fuse_mkdir_in);
    off = sizeof(*in);
    if ((r = fs_name(a, alen, &off, &name)) == 0 && mkdirat(dir->fd, name, in->mode & 07777) < 0)
      r = -errno;
    break;
  }
  case FUSE_MKNOD: {
    const struct fuse_mknod_in *in = ARG(struct fuse_mknod_in);
    off = sizeof(*in);
    mode_t type = in->mode & S_IFMT;
    if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK)
      return -EPERM; /* no device nodes on the host */
    if ((r = fs_name(a, alen, &off, &name)) == 0 && mknodat(dir->fd, name, in->mode, 0) < 0)
      r = -errno;
    break;
  }
  case FUSE_SYMLINK:
    if ((r = fs_name(a, alen, &off, &name)) < 0)
      return r;
    target = (const char *) a + off;
    if (off >= alen || strnlen(target, alen - off) == alen - off ||
        strnlen(target, alen - off) >= PATH_MAX || !*target)
      return -EINVAL;
    if (symlinkat(target, dir->fd, name) < 0)
      r = -errno;
    break;
  case FUSE_LINK: {
    const struct fuse_link_in *in = ARG(struct fuse_link_in);
    off = sizeof(*in);
    if (!(old = fs_inode(s, in->oldnodeid)))
      return -ENOENT;
    if ((r = fs_name(a, alen, &off, &name)) == 0 &&
        linkat(old->fd, "", dir->fd, name, AT_EMPTY_PATH) < 0)
      r = -errno;
    break;
  }
  }
  if (r < 0)
    return r;
  if (h->opcode != FUSE_LINK)
    fs_own(dir, name, h);
  *len = sizeof(struct fuse_entry_out);
  return fs_entry(s, dir, name, OUT(struct fuse_entry_out));
}

int fs_remove(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
              const uint8_t *a, size_t alen)
{
  size_t off = 0;
  const char *name;
  int r = fs_name(a, alen, &off, &name);
  if (r < 0)
    return r;
  if (s->readonly)
    return -EROFS;
  if (fs_root_locked(s, dir))
    return -EPERM;
  int flags = h->opcode == FUSE_RMDIR ? AT_REMOVEDIR : 0;
  return unlinkat(dir->fd, name, flags) < 0 ? -errno : 0;
}

int fs_rename(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
              const uint8_t *a, size_t alen)
{
  uint64_t newdir;
  uint32_t flags = 0;
  size_t off;
  if (h->opcode == FUSE_RENAME2) {
    const struct fuse_rename2_in *in = ARG(struct fuse_rename2_in);
    newdir = in->newdir;
    flags = in->flags;
    off = sizeof(*in);
  } else {
    newdir = ARG(struct fuse_rename_in)->newdir;
    off = sizeof(struct fuse_rename_in);
  }
  const char *oldname, *newname;
  int r;
  if ((r = fs_name(a, alen, &off, &oldname)) < 0 || (r = fs_name(a, alen, &off, &newname)) < 0)
    return r;
  struct fs_inode *nd = fs_inode(s, newdir);
  if (!nd)
    return -ENOENT;
  if (flags & ~(uint32_t) (RENAME_NOREPLACE | RENAME_EXCHANGE))
    return -EINVAL; /* no whiteouts */
  if (s->readonly)
    return -EROFS;
  if (fs_root_locked(s, dir) || fs_root_locked(s, nd))
    return -EPERM;
  return renameat2(dir->fd, oldname, nd->fd, newname, flags) < 0 ? -errno : 0;
}

/* O_* flags the guest may pass on to an open of a host file. */
static int fs_open_flags(uint32_t flags)
{
  return (int) flags & (O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_NOATIME);
}

static bool fs_writes(int flags)
{
  return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

int fs_open(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *in,
            const uint8_t *a, size_t alen, size_t *len)
{
  bool dir = h->opcode == FUSE_OPENDIR;
  int flags = fs_open_flags(ARG(struct fuse_open_in)->flags);
  if (dir != (in->type == S_IFDIR))
    return dir ? -ENOTDIR : -EISDIR;
  if (s->readonly && fs_writes(flags))
    return -EROFS;
  int fd = dir ? openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : fs_reopen(s, in, flags);
  if (fd < 0)
    return dir ? -errno : fd;
  int64_t fh = fs_handle_add(s, fd, dir);
  if (fh < 0)
    return (int) fh;
  s->handles[fh].root = in == &s->inodes[0];
  *OUT(struct fuse_open_out) = (struct fuse_open_out){.fh = (uint64_t) fh};
  *len = sizeof(struct fuse_open_out);
  return 0;
}

int fs_create(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
              const uint8_t *a, size_t alen, size_t *len)
{
  const struct fuse_create_in *in = ARG(struct fuse_create_in);
  size_t off = sizeof(*in);
  const char *name;
  int r = fs_name(a, alen, &off, &name);
  if (r < 0)
    return r;
  if (s->readonly)
    return -EROFS;
  if (dir->type != S_IFDIR)
    return -ENOTDIR;
  if (fs_root_locked(s, dir))
    return -EPERM;
  int flags = fs_open_flags(in->flags) | O_NOFOLLOW | O_CLOEXEC;
  /* O_EXCL first: only a file we made changes owner. */
  int fd = openat(dir->fd, name, flags | O_CREAT | O_EXCL, in->mode & 07777);
  bool created = fd >= 0;
  if (fd < 0 && errno == EEXIST && !(in->flags & O_EXCL))
    fd = openat(dir->fd, name, flags);
  if (fd < 0)
    return -errno;
  if (created)
    fs_own(dir, name, h);
  struct fuse_entry_out *e = OUT(struct fuse_entry_out);
  if ((r = fs_entry(s, dir, name, e)) < 0) {
    close(fd);
    return r;
  }
  int64_t fh = fs_handle_add(s, fd, false);
  if (fh < 0) {
    fs_inode_forget(s, e->nodeid, 1);
    return (int) fh;
  }
  struct fuse_open_out *o = (struct fuse_open_out *) (e + 1);
  *o = (struct fuse_open_out){.fh = (uint64_t) fh};
  *len = sizeof(*e) + sizeof(*o);
  return 0;
}

/* Whether READDIR shows a name: all of them, but in a one-file share's root only that file
 * (and "." and ".."). */
static bool fs_listed(const struct fs_server *s, const struct fs_handle *h, const char *name)
{
  return !h->root || !s->only || !strcmp(name, s->only) || !strcmp(name, ".") ||
         !strcmp(name, "..");
}

/* READDIR: host dirents → FUSE dirents while they fit; the next offset is the cookie of the
 * last one taken, where the directory stream is left. A batch that lists nothing (all hidden)
 * is followed by the next, so that an empty reply still means the end. */
int fs_readdir(struct fs_server *s, const uint8_t *a, size_t alen, size_t *len)
{
  const struct fuse_read_in *in = ARG(struct fuse_read_in);
  struct fs_handle *h = fs_handle(s, in->fh, true);
  if (!h)
    return -EBADF;
  size_t room = in->size < FS_REPLY_MAX ? in->size : FS_REPLY_MAX;
  if ((off_t) in->offset != h->dir_pos) {
    if (lseek(h->fd, (off_t) in->offset, SEEK_SET) < 0)
      return -errno;
    h->dir_pos = (off_t) in->offset;
  }
  uint8_t *out = OUT(uint8_t);
  size_t used = 0;
  bool full = false;
  while (used == 0 && !full) {
    ssize_t n = getdents64(h->fd, s->dirents, room);
    if (n < 0)
      return -errno;
    if (n == 0)
      break;
    for (ssize_t p = 0; p < n; p += ((const struct dirent *) (s->dirents + p))->d_reclen) {
      const struct dirent *d = (const struct dirent *) (s->dirents + p);
      size_t nl = strlen(d->d_name), rec = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + nl);
      if (!fs_listed(s, h, d->d_name)) {
        h->dir_pos = d->d_off;
        continue;
      }
      if (used + rec > room) {
        if (lseek(h->fd, h->dir_pos, SEEK_SET) < 0)
          return -errno;
        full = true;
        break;
      }
      struct fuse_dirent fd = {
          .ino = d->d_ino, .off = (uint64_t) d->d_off, .namelen = (uint32_t) nl, .type = d->d_type};
      memset(out + used, 0, rec);
      memcpy(out + used, &fd, FUSE_NAME_OFFSET);
      memcpy(out + used + FUSE_NAME_OFFSET, d->d_name, nl);
      used += rec;
      h->dir_pos = d->d_off;
    }
  }
  *len = used;
  return 0;
}

int fs_statfs(struct fs_inode *in, struct fuse_statfs_out *o, size_t *len)
{
  struct statfs sf;
  if (fstatfs(in->fd, &sf) < 0)
    return -errno;
  *o = (struct fuse_statfs_out){.st = {
                                    .blocks = sf.f_blocks,
                                    .bfree = sf.f_bfree,
                                    .bavail = sf.f_bavail,
                                    .files = sf.f_files,
                                    .ffree = sf.f_ffree,
                                    .bsize = (uint32_t) sf.f_bsize,
                                    .namelen = (uint32_t) sf.f_namelen,
                                    .frsize = (uint32_t) sf.f_frsize,
                                }};
  *len = sizeof(*o);
  return 0;
}

/* RELEASE, RELEASEDIR, FLUSH, FSYNC, FSYNCDIR, FALLOCATE, LSEEK: work on an open handle. */
int fs_on_handle(struct fs_server *s, uint32_t op, const uint8_t *a, size_t alen, size_t *len)
{
  bool dir = op == FUSE_RELEASEDIR || op == FUSE_FSYNCDIR;
  uint64_t fh = ARG(uint64_t)[0]; /* every one of these starts with fh */
  struct fs_handle *h = fs_handle(s, fh, dir);
  if (!h)
    return -EBADF;
  switch (op) {
  case FUSE_RELEASE:
  case FUSE_RELEASEDIR:
    close(h->fd);
    h->fd = -1;
    return 0;
  case FUSE_FLUSH:
    return 0; /* nothing is buffered here */
  case FUSE_FSYNC:
  case FUSE_FSYNCDIR: {
    const struct fuse_fsync_in *in = ARG(struct fuse_fsync_in);
    int r = (in->fsync_flags & 1) ? fdatasync(h->fd) : fsync(h->fd);
    return r < 0 ? -errno : 0;
  }
  case FUSE_FALLOCATE: {
    const struct fuse_fallocate_in *in = ARG(struct fuse_fallocate_in);
    if (s->readonly)
      return -EROFS;
    return fallocate(h->fd, (int) in->mode, (off_t) in->offset, (off_t) in->length) < 0 ? -errno
                                                                                        : 0;
  }
  case FUSE_LSEEK: {
    const struct fuse_lseek_in *in = ARG(struct fuse_lseek_in);
    if (in->whence != SEEK_DATA && in->whence != SEEK_HOLE)
      return -EINVAL; /* the guest kernel keeps the file position itself */
    off_t o = lseek(h->fd, (off_t) in->offset, (int) in->whence);
    if (o < 0)
      return -errno;
    OUT(struct fuse_lseek_out)->offset = (uint64_t) o;
    *len = sizeof(struct fuse_lseek_out);
    return 0;
  }
  }
  return -ENOSYS;
}

/* READ and WRITE: straight between the host file and the checked guest buffers. */
int fs_read(struct fs_server *s, const struct virtq_chain *c, const uint8_t *a, size_t alen,
            size_t *len)
{
  const struct fuse_read_in *in = ARG(struct fuse_read_in);
  struct fs_handle *h = fs_handle(s, in->fh, false);
  if (!h)
    return -EBADF;
  uint64_t room = c->in_len - sizeof(struct fuse_out_header);
  uint64_t want = in->size < room ? in->size : room;
  if (want > FS_MAX_IO)
    want = FS_MAX_IO;
  unsigned n =
      iov_slice(c->iov + c->nr_out, c->nr_in, sizeof(struct fuse_out_header), want, s->data);
  ssize_t got = n ? preadv(h->fd, s->data, (int) n, (off_t) in->offset) : 0;
  if (got < 0)
    return -errno;
  *len = (size_t) got; /* already in place: the caller writes only the header */
  return 1;
}

int fs_write(struct fs_server *s, const struct virtq_chain *c, const uint8_t *a, size_t alen,
             size_t *len)
{
  const struct fuse_write_in *in = ARG(struct fuse_write_in);
  struct fs_handle *h = fs_handle(s, in->fh, false);
  if (!h)
    return -EBADF;
  uint64_t skip = sizeof(struct fuse_in_header) + sizeof(*in);
  if (in->size > FS_MAX_IO || c->out_len - skip != in->size)
    return -EINVAL;
  if (s->readonly)
    return -EROFS;
  unsigned n = iov_slice(c->iov, c->nr_out, skip, in->size, s->data);
  ssize_t put = n ? pwritev(h->fd, s->data, (int) n, (off_t) in->offset) : 0;
  if (put < 0)
    return -errno;
  *OUT(struct fuse_write_out) = (struct fuse_write_out){.size = (uint32_t) put};
  *len = sizeof(struct fuse_write_out);
  return 0;
}
