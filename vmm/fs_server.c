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
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_server.h"

/* ---- inodes and handles ---- */

static uint32_t fs_hash(dev_t dev, ino_t ino)
{
  uint64_t h = (uint64_t) ino * 0x9e3779b97f4a7c15ull ^ (uint64_t) dev;
  return (uint32_t) (h >> 40) % FS_BUCKETS;
}

struct fs_inode *fs_inode(struct fs_server *s, uint64_t nodeid)
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

void fs_inode_forget(struct fs_server *s, uint64_t nodeid, uint64_t n)
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

struct fs_handle *fs_handle(struct fs_server *s, uint64_t fh, bool dir)
{
  if (fh >= s->n_handles || s->handles[fh].fd < 0 || s->handles[fh].dir != dir)
    return NULL;
  return &s->handles[fh];
}

/* Take ownership of fd as a new handle; the fh, or -ENFILE (fd closed). */
int64_t fs_handle_add(struct fs_server *s, int fd, bool dir)
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
int fs_name(const uint8_t *p, size_t len, size_t *off, const char **name)
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

void fs_attr(const struct stat *st, struct fuse_attr *a)
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

int fs_stat(int fd, struct stat *st)
{
  return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* Open an inode again for I/O, through /proc/self/fd (O_PATH descriptors cannot read). */
int fs_reopen(struct fs_server *s, const struct fs_inode *in, int flags)
{
  if (in->type != S_IFREG && in->type != S_IFDIR)
    return -EINVAL;
  char name[16];
  snprintf(name, sizeof(name), "%d", in->fd);
  int fd = openat(s->proc_fd, name, flags | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

/* LOOKUP's reply for name in dir (+1 reference), also after creating it. */
int fs_entry(struct fs_server *s, struct fs_inode *dir, const char *name, struct fuse_entry_out *e)
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
void fs_own(struct fs_inode *dir, const char *name, const struct fuse_in_header *h)
{
  struct stat st;
  gid_t gid = fs_stat(dir->fd, &st) == 0 && (st.st_mode & S_ISGID) ? (gid_t) -1 : h->gid;
  (void) fchownat(dir->fd, name, h->uid, gid, AT_SYMLINK_NOFOLLOW);
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
  if (c->in_len < sizeof(struct fuse_out_header))
    return 0; /* no room for any reply: not carried out either */
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

int fs_server_create(const char *path, bool readonly, struct fs_server **out,
                     struct isola_error **err)
{
  /* A file is shared as its (real) directory with only its name visible. */
  _cleanup_free_ char *dir = realpath(path, NULL);
  struct stat pst;
  if (!dir || stat(dir, &pst) < 0)
    return isola_fail(err, errno, "--share: cannot use \"%s\"", path);
  if (!S_ISDIR(pst.st_mode) && !S_ISREG(pst.st_mode))
    return isola_failx(err, EINVAL, "--share: \"%s\" is neither a directory nor a regular file",
                       path);
  struct fs_server *s = xzalloc(sizeof(*s));
  if (S_ISREG(pst.st_mode)) {
    char *slash = strrchr(dir, '/');
    s->only = xstrdup(slash + 1);
    slash[slash == dir ? 1 : 0] = 0; /* "/file" → "/" */
  }
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
  free(s->only);
  free(s);
}
