/* fs_server.c — the FUSE server behind virtio-fs (fs.c): one host directory shared with the
 * guest, confined to it.
 *
 * Confinement is by construction, not by checking paths: every inode the guest knows is an
 * O_PATH descriptor we opened, and every operation names at most one path component relative
 * to such a descriptor, opened with O_NOFOLLOW. A name is never "", ".", ".." or anything with a
 * "/", so the guest can neither climb out of the shared directory nor follow a symlink (its own
 * or the host's) anywhere: symlinks are only ever read, never resolved, here. Files are reopened
 * for I/O through /proc/self/fd (only regular files and directories: never a symlink, a device
 * or a FIFO), the way virtiofsd does.
 *
 * Requests run one at a time on the event-loop thread (fs.c's queue_notify), so nothing here
 * takes a lock. Everything the guest can make us hold is capped: inodes (each an open
 * descriptor) and open handles against RLIMIT_NOFILE, names at NAME_MAX, symlink targets at
 * PATH_MAX, directory listings and I/O at FS_MAX_IO per request. Host identities are the
 * guest's own (no user namespace), as with a docker bind mount: new files belong to the
 * calling guest uid/gid. Device nodes cannot be created: a host process could use them. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "vmm.h"

#define FS_NONE UINT32_MAX
#define FS_BUCKETS 4096u
#define FS_MAX_INODES (1u << 16)
#define FS_MAX_HANDLES (1u << 14)
#define FS_MAX_ARGS (2 * PATH_MAX + 256) /* header + args of any request but WRITE's data */
#define FS_REPLY_MAX (64u << 10)         /* directory listings and other replies we assemble */
#define FS_MIN_MINOR 31                  /* FUSE 7.31 (Linux 5.4) and later */
#define FS_TIMEOUT_S 1 /* how long the guest caches names and attributes: host edits show */

struct fs_inode {
  int fd; /* O_PATH | O_NOFOLLOW, -1 when the slot is free */
  dev_t dev;
  ino_t ino;
  mode_t type;      /* S_IFMT bits: they never change for an inode */
  uint64_t nlookup; /* the guest's references (LOOKUP +1, FORGET -n) */
  uint64_t gen;     /* generation of the slot, for the guest to tell reused ids apart */
  uint32_t next;    /* hash chain, or the free list when the slot is free */
};

struct fs_handle {
  int fd; /* -1 when free */
  bool dir;
  off_t dir_pos; /* where the directory stream is (READDIR offsets are getdents cookies) */
};

struct fs_server {
  int proc_fd; /* /proc/self/fd, to reopen an O_PATH descriptor */
  bool readonly;
  bool initialized;
  struct fs_inode *inodes;
  uint32_t n_inodes, max_inodes, free_inode;
  uint32_t buckets[FS_BUCKETS];
  struct fs_handle *handles;
  uint32_t n_handles, max_handles;
  /* Aligned: the FUSE structs are read and written in place. */
  _Alignas(8) uint8_t args[FS_MAX_ARGS];
  _Alignas(8) uint8_t reply[sizeof(struct fuse_out_header) + FS_REPLY_MAX];
  _Alignas(8) uint8_t dirents[FS_REPLY_MAX];
  struct iovec data[VIRTQ_CHAIN_MAX];
};

/* ---- inodes and handles ---- */

static uint32_t fs_hash(dev_t dev, ino_t ino)
{
  uint64_t h = (uint64_t) ino * 0x9e3779b97f4a7c15ull ^ (uint64_t) dev;
  return (uint32_t) (h >> 40) % FS_BUCKETS;
}

static struct fs_inode *fs_inode(struct fs_server *s, uint64_t nodeid)
{
  if (nodeid == 0 || nodeid > s->n_inodes || s->inodes[nodeid - 1].fd < 0)
    return NULL;
  return &s->inodes[nodeid - 1];
}

/* Take ownership of fd (O_PATH) as the inode it names: the known one if we have it already
 * (fd is closed), else a new slot. Returns the nodeid, or a negative errno. */
static int64_t fs_inode_add(struct fs_server *s, int fd, const struct stat *st)
{
  uint32_t b = fs_hash(st->st_dev, st->st_ino);
  for (uint32_t i = s->buckets[b]; i != FS_NONE; i = s->inodes[i].next)
    if (s->inodes[i].dev == st->st_dev && s->inodes[i].ino == st->st_ino) {
      close(fd);
      s->inodes[i].nlookup++;
      return (int64_t) i + 1;
    }
  uint32_t i = s->free_inode;
  if (i != FS_NONE) {
    s->free_inode = s->inodes[i].next;
  } else {
    if (s->n_inodes >= s->max_inodes) {
      close(fd);
      return -ENFILE;
    }
    if (!(s->n_inodes & (s->n_inodes - 1))) /* a power of two: grow */
      s->inodes = xrealloc(s->inodes, (s->n_inodes ? 2 * s->n_inodes : 16) * sizeof(*s->inodes));
    i = s->n_inodes++;
    s->inodes[i].gen = 0;
  }
  struct fs_inode *n = &s->inodes[i];
  n->fd = fd;
  n->dev = st->st_dev;
  n->ino = st->st_ino;
  n->type = st->st_mode & S_IFMT;
  n->nlookup = 1;
  n->gen++;
  n->next = s->buckets[b];
  s->buckets[b] = i;
  return (int64_t) i + 1;
}

static void fs_inode_forget(struct fs_server *s, uint64_t nodeid, uint64_t n)
{
  struct fs_inode *in = fs_inode(s, nodeid);
  if (!in || nodeid == FUSE_ROOT_ID)
    return; /* the root lives as long as the server */
  in->nlookup = n < in->nlookup ? in->nlookup - n : 0;
  if (in->nlookup)
    return;
  uint32_t idx = (uint32_t) (nodeid - 1);
  for (uint32_t *p = &s->buckets[fs_hash(in->dev, in->ino)]; *p != FS_NONE; p = &s->inodes[*p].next)
    if (*p == idx) {
      *p = in->next;
      break;
    }
  close(in->fd);
  in->fd = -1;
  in->next = s->free_inode;
  s->free_inode = idx;
}

static struct fs_handle *fs_handle(struct fs_server *s, uint64_t fh, bool dir)
{
  if (fh >= s->n_handles || s->handles[fh].fd < 0 || s->handles[fh].dir != dir)
    return NULL;
  return &s->handles[fh];
}

/* Take ownership of fd as a new handle; the fh, or -ENFILE (fd closed). */
static int64_t fs_handle_add(struct fs_server *s, int fd, bool dir)
{
  uint32_t i = 0;
  while (i < s->n_handles && s->handles[i].fd >= 0)
    i++;
  if (i == s->n_handles) {
    if (s->n_handles >= s->max_handles) {
      close(fd);
      return -ENFILE;
    }
    if (!(s->n_handles & (s->n_handles - 1)))
      s->handles =
          xrealloc(s->handles, (s->n_handles ? 2 * s->n_handles : 16) * sizeof(*s->handles));
    s->n_handles++;
  }
  s->handles[i] = (struct fs_handle){.fd = fd, .dir = dir};
  return i;
}

/* Forget everything the guest had (DESTROY, a device reset) but the root. */
void fs_server_reset(struct fs_server *s)
{
  for (uint32_t i = 0; i < s->n_handles; i++)
    if (s->handles[i].fd >= 0)
      close(s->handles[i].fd);
  s->n_handles = 0;
  for (uint32_t i = 1; i < s->n_inodes; i++)
    if (s->inodes[i].fd >= 0)
      close(s->inodes[i].fd);
  s->n_inodes = 1;
  s->free_inode = FS_NONE;
  for (unsigned b = 0; b < FS_BUCKETS; b++)
    s->buckets[b] = FS_NONE;
  s->buckets[fs_hash(s->inodes[0].dev, s->inodes[0].ino)] = 0;
  s->inodes[0].next = FS_NONE;
  s->initialized = false;
}

/* ---- helpers ---- */

/* A name in the arguments at *off: NUL-terminated within len, one path component. */
static int fs_name(const uint8_t *p, size_t len, size_t *off, const char **name)
{
  if (*off >= len)
    return -EINVAL;
  const char *n = (const char *) p + *off;
  size_t room = len - *off, l = strnlen(n, room);
  if (l == room)
    return -EINVAL;
  if (l == 0 || l > NAME_MAX)
    return l ? -ENAMETOOLONG : -EINVAL;
  if (memchr(n, '/', l) || !strcmp(n, ".") || !strcmp(n, ".."))
    return -EINVAL;
  *off += l + 1;
  *name = n;
  return 0;
}

static void fs_attr(const struct stat *st, struct fuse_attr *a)
{
  *a = (struct fuse_attr){
      .ino = st->st_ino,
      .size = (uint64_t) st->st_size,
      .blocks = (uint64_t) st->st_blocks,
      .atime = (uint64_t) st->st_atim.tv_sec,
      .mtime = (uint64_t) st->st_mtim.tv_sec,
      .ctime = (uint64_t) st->st_ctim.tv_sec,
      .atimensec = (uint32_t) st->st_atim.tv_nsec,
      .mtimensec = (uint32_t) st->st_mtim.tv_nsec,
      .ctimensec = (uint32_t) st->st_ctim.tv_nsec,
      .mode = st->st_mode,
      .nlink = (uint32_t) st->st_nlink,
      .uid = st->st_uid,
      .gid = st->st_gid,
      .rdev = (uint32_t) st->st_rdev,
      .blksize = (uint32_t) st->st_blksize,
  };
}

static int fs_stat(int fd, struct stat *st)
{
  return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* Open an inode again for I/O, through /proc/self/fd (O_PATH descriptors cannot read). */
static int fs_reopen(struct fs_server *s, const struct fs_inode *in, int flags)
{
  if (in->type != S_IFREG && in->type != S_IFDIR)
    return -EINVAL;
  char name[16];
  snprintf(name, sizeof(name), "%d", in->fd);
  int fd = openat(s->proc_fd, name, flags | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

/* LOOKUP's reply for name in dir (+1 reference), also after creating it. */
static int fs_entry(struct fs_server *s, struct fs_inode *dir, const char *name,
                    struct fuse_entry_out *e)
{
  int fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  struct stat st;
  int r = fs_stat(fd, &st);
  if (r < 0) {
    close(fd);
    return r;
  }
  int64_t id = fs_inode_add(s, fd, &st);
  if (id < 0)
    return (int) id;
  *e = (struct fuse_entry_out){
      .nodeid = (uint64_t) id,
      .generation = s->inodes[id - 1].gen,
      .entry_valid = FS_TIMEOUT_S,
      .attr_valid = FS_TIMEOUT_S,
  };
  fs_attr(&st, &e->attr);
  return 0;
}

/* A new entry belongs to the guest caller (a setgid directory's group stays, as on Linux). */
static void fs_own(struct fs_inode *dir, const char *name, const struct fuse_in_header *h)
{
  struct stat st;
  gid_t gid = fs_stat(dir->fd, &st) == 0 && (st.st_mode & S_ISGID) ? (gid_t) -1 : h->gid;
  (void) fchownat(dir->fd, name, h->uid, gid, AT_SYMLINK_NOFOLLOW);
}

/* ---- operations: each fills s->reply after the header, sets *len, returns 0 or -errno ---- */

#define ARG(type)                                                                                  \
  ({                                                                                               \
    if (alen < sizeof(type))                                                                       \
      return -EINVAL;                                                                              \
    (const type *) a;                                                                              \
  })
#define OUT(type) ((type *) (s->reply + sizeof(struct fuse_out_header)))

static int fs_init(struct fs_server *s, const uint8_t *a, size_t alen, size_t *len)
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

static int fs_lookup(struct fs_server *s, struct fs_inode *in, const uint8_t *a, size_t alen,
                     size_t *len)
{
  size_t off = 0;
  const char *name;
  int r = fs_name(a, alen, &off, &name);
  if (r < 0)
    return r == -EINVAL ? -ENOENT : r;
  if (in->type != S_IFDIR)
    return -ENOTDIR;
  *len = sizeof(struct fuse_entry_out);
  return fs_entry(s, in, name, OUT(struct fuse_entry_out));
}

static int fs_getattr(struct fs_inode *in, struct fuse_attr_out *o, size_t *len)
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

static int fs_setattr(struct fs_server *s, struct fs_inode *in, const uint8_t *a, size_t alen,
                      size_t *len)
{
  const struct fuse_setattr_in *sa = ARG(struct fuse_setattr_in);
  uint32_t v = sa->valid;
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
static int fs_make(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
                   const uint8_t *a, size_t alen, size_t *len)
{
  if (s->readonly)
    return -EROFS;
  if (dir->type != S_IFDIR)
    return -ENOTDIR;
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

static int fs_remove(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
                     const uint8_t *a, size_t alen)
{
  size_t off = 0;
  const char *name;
  int r = fs_name(a, alen, &off, &name);
  if (r < 0)
    return r;
  if (s->readonly)
    return -EROFS;
  int flags = h->opcode == FUSE_RMDIR ? AT_REMOVEDIR : 0;
  return unlinkat(dir->fd, name, flags) < 0 ? -errno : 0;
}

static int fs_rename(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
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

static int fs_open(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *in,
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
  *OUT(struct fuse_open_out) = (struct fuse_open_out){.fh = (uint64_t) fh};
  *len = sizeof(struct fuse_open_out);
  return 0;
}

static int fs_create(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
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

/* READDIR: host dirents → FUSE dirents while they fit; the next offset is the cookie of the
 * last one sent, where the directory stream is left. */
static int fs_readdir(struct fs_server *s, const uint8_t *a, size_t alen, size_t *len)
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
  ssize_t n = getdents64(h->fd, s->dirents, room);
  if (n < 0)
    return -errno;
  uint8_t *out = OUT(uint8_t);
  size_t used = 0;
  for (ssize_t p = 0; p < n;) {
    const struct dirent *d = (const struct dirent *) (s->dirents + p);
    size_t nl = strlen(d->d_name), rec = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + nl);
    if (used + rec > room) {
      if (lseek(h->fd, h->dir_pos, SEEK_SET) < 0)
        return -errno;
      break;
    }
    struct fuse_dirent fd = {
        .ino = d->d_ino, .off = (uint64_t) d->d_off, .namelen = (uint32_t) nl, .type = d->d_type};
    memset(out + used, 0, rec);
    memcpy(out + used, &fd, FUSE_NAME_OFFSET);
    memcpy(out + used + FUSE_NAME_OFFSET, d->d_name, nl);
    used += rec;
    h->dir_pos = d->d_off;
    p += d->d_reclen;
  }
  *len = used;
  return 0;
}

static int fs_statfs(struct fs_inode *in, struct fuse_statfs_out *o, size_t *len)
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
static int fs_on_handle(struct fs_server *s, uint32_t op, const uint8_t *a, size_t alen,
                        size_t *len)
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
static int fs_read(struct fs_server *s, const struct virtq_chain *c, const uint8_t *a, size_t alen,
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

static int fs_write(struct fs_server *s, const struct virtq_chain *c, const uint8_t *a, size_t alen,
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

/* One request; returns the bytes written to the chain's writable part (0: no reply). */
uint32_t fs_server_handle(struct fs_server *s, const struct virtq_chain *c)
{
  const size_t hlen = sizeof(struct fuse_in_header);
  if (c->out_len < hlen)
    return 0;
  /* One copy of the header and arguments (the guest may rewrite its buffers meanwhile);
   * WRITE's data stays where it is. */
  size_t copy = c->out_len < sizeof(s->args) ? c->out_len : sizeof(s->args);
  virtq_chain_read(c, s->args, copy);
  struct fuse_in_header h;
  memcpy(&h, s->args, hlen);
  const uint8_t *a = s->args + hlen;
  size_t alen = copy - hlen;
  if (h.opcode == FUSE_WRITE)
    alen = alen < sizeof(struct fuse_write_in) ? alen : sizeof(struct fuse_write_in);
  if (h.opcode == FUSE_FORGET || h.opcode == FUSE_BATCH_FORGET) {
    fs_server_forget(s, &h, a, alen);
    return 0;
  }
  size_t len = 0;
  int r;
  struct fs_inode *in = fs_inode(s, h.nodeid);
  if (c->out_len > sizeof(s->args) && h.opcode != FUSE_WRITE)
    r = -EINVAL;
  else if (h.opcode == FUSE_INIT)
    r = fs_init(s, a, alen, &len);
  else if (!s->initialized)
    r = -EIO;
  else if (!in && h.opcode != FUSE_DESTROY && h.opcode != FUSE_INTERRUPT)
    r = -ENOENT;
  else
    switch (h.opcode) {
    case FUSE_LOOKUP:
      r = fs_lookup(s, in, a, alen, &len);
      break;
    case FUSE_GETATTR:
      r = fs_getattr(in, OUT(struct fuse_attr_out), &len);
      break;
    case FUSE_SETATTR:
      r = fs_setattr(s, in, a, alen, &len);
      break;
    case FUSE_READLINK: {
      ssize_t n = in->type == S_IFLNK ? readlinkat(in->fd, "", OUT(char), PATH_MAX) : -1;
      r = n < 0 ? (in->type == S_IFLNK ? -errno : -EINVAL) : 0;
      len = n < 0 ? 0 : (size_t) n;
      break;
    }
    case FUSE_MKDIR:
    case FUSE_MKNOD:
    case FUSE_SYMLINK:
    case FUSE_LINK:
      r = fs_make(s, &h, in, a, alen, &len);
      break;
    case FUSE_UNLINK:
    case FUSE_RMDIR:
      r = fs_remove(s, &h, in, a, alen);
      break;
    case FUSE_RENAME:
    case FUSE_RENAME2:
      r = fs_rename(s, &h, in, a, alen);
      break;
    case FUSE_OPEN:
    case FUSE_OPENDIR:
      r = fs_open(s, &h, in, a, alen, &len);
      break;
    case FUSE_CREATE:
      r = fs_create(s, &h, in, a, alen, &len);
      break;
    case FUSE_READ:
      r = fs_read(s, c, a, alen, &len);
      break;
    case FUSE_WRITE:
      r = fs_write(s, c, a, alen, &len);
      break;
    case FUSE_READDIR:
      r = fs_readdir(s, a, alen, &len);
      break;
    case FUSE_STATFS:
      r = fs_statfs(in, OUT(struct fuse_statfs_out), &len);
      break;
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
    case FUSE_FLUSH:
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
    case FUSE_FALLOCATE:
    case FUSE_LSEEK:
      r = fs_on_handle(s, h.opcode, a, alen, &len);
      break;
    case FUSE_DESTROY:
      fs_server_reset(s);
      r = 0;
      break;
    case FUSE_INTERRUPT:
      return 0; /* requests are never in flight here: nothing to interrupt, no reply */
    default:
      r = -ENOSYS; /* xattrs, locks, ioctl, ...: the guest kernel stops asking */
    }
  struct fuse_out_header *o = (struct fuse_out_header *) s->reply;
  if (r < 0)
    len = 0;
  size_t total = sizeof(*o) + len;
  if (c->in_len < total) {
    if (c->in_len < sizeof(*o))
      return 0;
    r = -EINVAL; /* the driver left no room for the reply */
    len = 0;
    total = sizeof(*o);
  }
  *o =
      (struct fuse_out_header){.len = (uint32_t) total, .error = r < 0 ? r : 0, .unique = h.unique};
  /* READ's data went to the guest already (r == 1): only the header is copied. */
  virtq_chain_write(c, s->reply, r == 1 ? sizeof(*o) : total);
  return (uint32_t) total;
}

void fs_server_forget(struct fs_server *s, const struct fuse_in_header *h, const uint8_t *a,
                      size_t alen)
{
  if (h->opcode == FUSE_FORGET) {
    if (alen >= sizeof(struct fuse_forget_in))
      fs_inode_forget(s, h->nodeid, ((const struct fuse_forget_in *) a)->nlookup);
    return;
  }
  if (alen < sizeof(struct fuse_batch_forget_in))
    return;
  uint32_t count = ((const struct fuse_batch_forget_in *) a)->count;
  const struct fuse_forget_one *one =
      (const struct fuse_forget_one *) (a + sizeof(struct fuse_batch_forget_in));
  size_t fit = (alen - sizeof(struct fuse_batch_forget_in)) / sizeof(*one);
  for (size_t i = 0; i < count && i < fit; i++)
    fs_inode_forget(s, one[i].nodeid, one[i].nlookup);
}

int fs_server_create(const char *dir, bool readonly, struct fs_server **out,
                     struct isola_error **err)
{
  struct fs_server *s = xzalloc(sizeof(*s));
  s->readonly = readonly;
  s->proc_fd = -1;
  /* Inodes and handles are descriptors: keep a quarter of the limit for the monitor's own. */
  struct rlimit rl;
  uint64_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
  uint64_t budget = fds > 1024 ? fds * 3 / 4 : 512;
  s->max_inodes = (uint32_t) (budget * 3 / 4 < FS_MAX_INODES ? budget * 3 / 4 : FS_MAX_INODES);
  s->max_handles = (uint32_t) (budget / 4 < FS_MAX_HANDLES ? budget / 4 : FS_MAX_HANDLES);
  int r;
  int root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (root < 0 || fs_stat(root, &st) < 0) {
    r = isola_fail(err, errno, "--share: cannot open the directory \"%s\"", dir);
    goto fail;
  }
  s->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (s->proc_fd < 0) {
    r = isola_fail(err, errno, "--share: cannot open /proc/self/fd");
    goto fail;
  }
  for (unsigned b = 0; b < FS_BUCKETS; b++)
    s->buckets[b] = FS_NONE;
  s->free_inode = FS_NONE;
  if (fs_inode_add(s, root, &st) != FUSE_ROOT_ID) {
    r = isola_failx(err, ENFILE, "--share \"%s\": no room for the root inode", dir);
    goto fail;
  }
  root = -1;
  /* The guest's modes are exact: its kernel applied its own umask already. */
  umask(0);
  *out = s;
  return 0;
fail:
  if (root >= 0)
    close(root);
  fs_server_destroy(s);
  return r;
}

void fs_server_destroy(struct fs_server *s)
{
  if (!s)
    return;
  if (s->n_inodes)
    fs_server_reset(s);
  if (s->n_inodes && s->inodes[0].fd >= 0)
    close(s->inodes[0].fd);
  if (s->proc_fd >= 0)
    close(s->proc_fd);
  free(s->inodes);
  free(s->handles);
  free(s);
}
