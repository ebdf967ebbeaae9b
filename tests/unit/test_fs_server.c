/* The FUSE server behind virtio-fs (vmm/fs_server.c), fed requests the way fs.c does: a
 * descriptor chain whose readable part is the request and whose writable part takes the reply.
 * The host side is a real directory; every change is checked there. Hostile requests included
 * (run under ASan/UBSan in build-asan). */
#include <dirent.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "vmm.h"

static struct fs_server *srv;
static char root[64];
static uint64_t unique_id;
static uint32_t caller_uid, caller_gid;

struct reply {
  struct fuse_out_header h;
  _Alignas(8) uint8_t data[FS_MAX_IO + 4096];
};
static struct reply rep;
static struct virtq_chain chain;

/* Send opcode on nodeid with args (and extra readable bytes for WRITE, split in pieces of
 * `split`); the reply lands in rep, room bytes of it offered. Returns the reply's error
 * (0 or -errno), or 1 when the server wrote no reply at all. */
static int req_full(uint32_t op, uint64_t nodeid, const void *args, size_t alen,
                    const uint8_t *data, size_t dlen, size_t split, size_t room)
{
  static _Alignas(8) uint8_t hdr[sizeof(struct fuse_in_header) + FS_MAX_IO];
  struct fuse_in_header h = {.len = (uint32_t) (sizeof(h) + alen + dlen),
                             .opcode = op,
                             .unique = ++unique_id,
                             .nodeid = nodeid,
                             .uid = caller_uid,
                             .gid = caller_gid};
  memcpy(hdr, &h, sizeof(h));
  if (alen)
    memcpy(hdr + sizeof(h), args, alen);
  unsigned n = 0;
  chain.iov[n++] = (struct iovec){hdr, sizeof(h) + alen};
  for (size_t off = 0; off < dlen; off += split)
    chain.iov[n++] = (struct iovec){(void *) (data + off), dlen - off < split ? dlen - off : split};
  chain.nr_out = n;
  chain.out_len = sizeof(h) + alen + dlen;
  /* The reply space in two pieces, as a guest's pages would be. */
  memset(&rep.h, 0xa5, sizeof(rep.h));
  size_t first = room < 24 ? room : 24;
  chain.iov[n++] = (struct iovec){&rep, first};
  if (room > first)
    chain.iov[n++] = (struct iovec){(uint8_t *) &rep + first, room - first};
  chain.nr_in = n - chain.nr_out;
  chain.in_len = room;
  uint32_t w = fs_server_handle(srv, &chain);
  if (w == 0)
    return 1;
  if (w != rep.h.len || rep.h.unique != unique_id)
    return -9999;
  return rep.h.error;
}

static int req(uint32_t op, uint64_t nodeid, const void *args, size_t alen)
{
  return req_full(op, nodeid, args, alen, NULL, 0, 0, sizeof(rep));
}

static size_t payload_len(void)
{
  return rep.h.len - sizeof(rep.h);
}

/* name\0 after a struct, the way FUSE lays out most requests. */
static size_t with_name(void *buf, const void *s, size_t slen, const char *name)
{
  memcpy(buf, s, slen);
  strcpy((char *) buf + slen, name);
  return slen + strlen(name) + 1;
}

static uint64_t lookup(uint64_t dir, const char *name, struct fuse_entry_out *e)
{
  int r = req(FUSE_LOOKUP, dir, name, strlen(name) + 1);
  if (r != 0)
    return 0;
  memcpy(e, rep.data, sizeof(*e));
  return e->nodeid;
}

static char *host(const char *rel)
{
  static char p[256];
  snprintf(p, sizeof(p), "%s/%s", root, rel);
  return p;
}

static int init_server(uint32_t minor)
{
  struct fuse_init_in in = {.major = 7,
                            .minor = minor,
                            .max_readahead = 1 << 17,
                            .flags = FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_BIG_WRITES};
  return req(FUSE_INIT, 0, &in, sizeof(in));
}

static void test_init(void)
{
  ok(req(FUSE_LOOKUP, FUSE_ROOT_ID, "x", 2) == -EIO, "a request before INIT gets EIO");
  ok(init_server(30) == -EPROTO, "FUSE 7.30 is refused (EPROTO)");
  ok(init_server(37) == 0, "INIT 7.37 is accepted");
  struct fuse_init_out o;
  memcpy(&o, rep.data, sizeof(o));
  ok(o.major == 7 && o.minor == 37 && o.max_write == FS_MAX_IO && o.max_pages == FS_MAX_IO / 4096,
     "INIT reply: 7.%u, max_write %u, max_pages %u", o.minor, o.max_write, o.max_pages);
  ok((o.flags & FUSE_MAX_PAGES) && !(o.flags & FUSE_POSIX_LOCKS),
     "only offered flags we support come back (0x%x)", o.flags);
}

static void test_lookup_confined(void)
{
  struct fuse_entry_out e, e2;
  uint64_t f = lookup(FUSE_ROOT_ID, "in.txt", &e);
  ok(f > 1 && e.attr.size == 10 && S_ISREG(e.attr.mode), "LOOKUP in.txt: node %llu, %llu bytes",
     (unsigned long long) f, (unsigned long long) e.attr.size);
  ok(lookup(FUSE_ROOT_ID, "in.txt", &e2) == f, "a second LOOKUP gives the same node");
  ok(req(FUSE_LOOKUP, FUSE_ROOT_ID, "..", 3) == -ENOENT, "\"..\" is not looked up");
  ok(req(FUSE_LOOKUP, FUSE_ROOT_ID, ".", 2) == -ENOENT, "\".\" is not looked up");
  ok(req(FUSE_LOOKUP, FUSE_ROOT_ID, "sub/../..", 10) == -ENOENT, "a name with \"/\" is refused");
  ok(req(FUSE_LOOKUP, FUSE_ROOT_ID, "in.txt", 6) == -ENOENT, "a name without its NUL is refused");
  ok(req(FUSE_LOOKUP, FUSE_ROOT_ID, "", 1) == -ENOENT, "an empty name is refused");
  ok(req(FUSE_LOOKUP, 999999, "in.txt", 7) == -ENOENT, "an unknown node is ENOENT");
  ok(req(FUSE_LOOKUP, f, "x", 2) == -ENOTDIR, "LOOKUP under a file is ENOTDIR");

  uint64_t l = lookup(FUSE_ROOT_ID, "escape", &e);
  ok(l && S_ISLNK(e.attr.mode), "the host's symlink to /etc is a symlink to the guest");
  ok(req(FUSE_READLINK, l, NULL, 0) == 0 && payload_len() == 4 && !memcmp(rep.data, "/etc", 4),
     "READLINK gives its target, unresolved");
  struct fuse_open_in oi = {.flags = O_RDONLY};
  ok(req(FUSE_OPEN, l, &oi, sizeof(oi)) == -EINVAL, "OPEN of the symlink is refused");
  ok(req(FUSE_OPENDIR, l, &oi, sizeof(oi)) == -ENOTDIR, "OPENDIR of the symlink is refused");
  ok(req(FUSE_LOOKUP, l, "passwd", 7) == -ENOTDIR, "LOOKUP through the symlink is refused");
  struct fuse_setattr_in sa = {.valid = FATTR_MODE, .mode = 0777};
  ok(req(FUSE_SETATTR, l, &sa, sizeof(sa)) == -EOPNOTSUPP, "chmod of the symlink is refused");
  struct stat st;
  ok(stat("/etc", &st) == 0 && (st.st_mode & 07777) != 0777, "and /etc kept its mode");
}

static uint64_t create(uint64_t dir, const char *name, uint32_t flags, uint32_t mode, uint64_t *fh)
{
  uint8_t buf[512];
  struct fuse_create_in ci = {.flags = flags, .mode = S_IFREG | mode};
  size_t n = with_name(buf, &ci, sizeof(ci), name);
  if (req(FUSE_CREATE, dir, buf, n) != 0)
    return 0;
  struct fuse_entry_out e;
  struct fuse_open_out o;
  memcpy(&e, rep.data, sizeof(e));
  memcpy(&o, rep.data + sizeof(e), sizeof(o));
  *fh = o.fh;
  return e.nodeid;
}

static void test_io(void)
{
  caller_uid = 1234;
  caller_gid = 5678;
  uint64_t fh;
  uint64_t n = create(FUSE_ROOT_ID, "new.bin", O_RDWR, 0640, &fh);
  struct stat st;
  ok(n && stat(host("new.bin"), &st) == 0 && st.st_uid == 1234 && st.st_gid == 5678 &&
         (st.st_mode & 07777) == 0640,
     "CREATE makes the host file, owned by the caller, mode exact (%o %u:%u)", st.st_mode & 07777,
     st.st_uid, st.st_gid);
  caller_uid = caller_gid = 0;

  static uint8_t data[300000];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t) (i * 7 + (i >> 9));
  struct fuse_write_in wi = {.fh = fh, .offset = 4096, .size = sizeof(data)};
  int r = req_full(FUSE_WRITE, n, &wi, sizeof(wi), data, sizeof(data), 70001, sizeof(rep));
  struct fuse_write_out wo;
  memcpy(&wo, rep.data, sizeof(wo));
  ok(r == 0 && wo.size == sizeof(data), "WRITE of %zu bytes in 5 pieces at offset 4096",
     sizeof(data));
  uint8_t *back = malloc(sizeof(data) + 4096);
  int fd = open(host("new.bin"), O_RDONLY);
  ssize_t got = read(fd, back, sizeof(data) + 4096);
  close(fd);
  bool zeros = true;
  for (int i = 0; i < 4096; i++)
    zeros &= back[i] == 0;
  ok(got == (ssize_t) sizeof(data) + 4096 && zeros && !memcmp(back + 4096, data, sizeof(data)),
     "the host file holds exactly that");
  free(back);

  struct fuse_read_in ri = {.fh = fh, .offset = 4096 + 1000, .size = 200000};
  r = req(FUSE_READ, n, &ri, sizeof(ri));
  ok(r == 0 && payload_len() == 200000 && !memcmp(rep.data, data + 1000, 200000),
     "READ 200000 bytes back through a split reply buffer");
  ri.size = 64;
  r = req_full(FUSE_READ, n, &ri, sizeof(ri), NULL, 0, 0, sizeof(rep.h) + 10);
  ok(r == 0 && payload_len() == 10, "READ gives no more than the reply room (%zu)", payload_len());
  ri.offset = 1 << 30;
  ok(req(FUSE_READ, n, &ri, sizeof(ri)) == 0 && payload_len() == 0, "READ past the end: 0 bytes");

  wi.size = 100;
  ok(req_full(FUSE_WRITE, n, &wi, sizeof(wi), data, 99, 99, sizeof(rep)) == -EINVAL,
     "WRITE whose size is not the data it carries is refused");
  wi.fh = 4242;
  ok(req_full(FUSE_WRITE, n, &wi, sizeof(wi), data, 100, 100, sizeof(rep)) == -EBADF,
     "WRITE on an unknown handle is EBADF");
  struct fuse_release_in rel = {.fh = fh};
  ok(req(FUSE_RELEASE, n, &rel, sizeof(rel)) == 0, "RELEASE");
  ok(req(FUSE_RELEASE, n, &rel, sizeof(rel)) == -EBADF, "a second RELEASE is EBADF");

  struct fuse_setattr_in sa = {
      .valid = FATTR_SIZE | FATTR_MODE | FATTR_MTIME, .size = 5, .mode = 0604, .mtime = 1000000000};
  r = req(FUSE_SETATTR, n, &sa, sizeof(sa));
  struct fuse_attr_out ao;
  memcpy(&ao, rep.data, sizeof(ao));
  ok(r == 0 && ao.attr.size == 5 && (ao.attr.mode & 07777) == 0604 && ao.attr.mtime == 1000000000,
     "SETATTR size, mode and mtime");
  ok(stat(host("new.bin"), &st) == 0 && st.st_size == 5 && st.st_mtime == 1000000000,
     "land on the host file");

  struct fuse_open_in oi = {.flags = O_RDONLY | O_CREAT | O_EXCL};
  ok(req(FUSE_OPEN, n, &oi, sizeof(oi)) == 0, "OPEN ignores O_CREAT|O_EXCL (the kernel's)");
}

static void test_namespace(void)
{
  uint8_t buf[8192];
  struct fuse_mkdir_in mi = {.mode = 0750};
  size_t len = with_name(buf, &mi, sizeof(mi), "d");
  ok(req(FUSE_MKDIR, FUSE_ROOT_ID, buf, len) == 0, "MKDIR d");
  struct fuse_entry_out e;
  memcpy(&e, rep.data, sizeof(e));
  uint64_t d = e.nodeid;
  struct stat st;
  ok(stat(host("d"), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0750,
     "the host has d, mode 0750");

  memcpy(buf, "l\0../../../etc/passwd", 22);
  ok(req(FUSE_SYMLINK, d, buf, 22) == 0, "SYMLINK d/l -> ../../../etc/passwd");
  char target[64] = {0};
  ok(readlink(host("d/l"), target, sizeof(target) - 1) > 0 &&
         !strcmp(target, "../../../etc/passwd"),
     "the host symlink holds the target as given");
  struct fuse_open_in oi = {.flags = O_RDONLY};
  uint64_t l = lookup(d, "l", &e);
  ok(l && req(FUSE_OPEN, l, &oi, sizeof(oi)) == -EINVAL, "and it is never followed here");
  memcpy(buf, "l2\0", 3);
  ok(req(FUSE_SYMLINK, d, buf, 3) == -EINVAL, "SYMLINK without a target is refused");

  struct fuse_mknod_in mn = {.mode = S_IFCHR | 0666, .rdev = (1 << 8) | 3};
  len = with_name(buf, &mn, sizeof(mn), "null");
  ok(req(FUSE_MKNOD, d, buf, len) == -EPERM && access(host("d/null"), F_OK) < 0,
     "MKNOD of a device node is refused (EPERM), nothing made");
  mn.mode = S_IFIFO | 0600;
  len = with_name(buf, &mn, sizeof(mn), "fifo");
  ok(req(FUSE_MKNOD, d, buf, len) == 0 && stat(host("d/fifo"), &st) == 0 && S_ISFIFO(st.st_mode),
     "MKNOD of a FIFO works");

  uint64_t in = lookup(FUSE_ROOT_ID, "in.txt", &e);
  struct fuse_link_in li = {.oldnodeid = in};
  len = with_name(buf, &li, sizeof(li), "hard");
  ok(req(FUSE_LINK, d, buf, len) == 0, "LINK d/hard to in.txt");
  memcpy(&e, rep.data, sizeof(e));
  ok(e.nodeid == in && e.attr.nlink == 2, "the same node, 2 links");

  struct fuse_rename2_in rn = {.newdir = FUSE_ROOT_ID, .flags = RENAME_NOREPLACE};
  memcpy(buf, &rn, sizeof(rn));
  memcpy(buf + sizeof(rn), "hard\0moved", 11);
  ok(req(FUSE_RENAME2, d, buf, sizeof(rn) + 11) == 0 && access(host("moved"), F_OK) == 0,
     "RENAME2 d/hard -> moved");
  ok(req(FUSE_RENAME2, d, buf, sizeof(rn) + 11) == -ENOENT, "again: ENOENT");
  rn.flags = 4; /* RENAME_WHITEOUT */
  memcpy(buf, &rn, sizeof(rn));
  memcpy(buf + sizeof(rn), "fifo\0x", 7);
  ok(req(FUSE_RENAME2, d, buf, sizeof(rn) + 7) == -EINVAL, "RENAME_WHITEOUT is refused");
  struct fuse_rename_in ro = {.newdir = FUSE_ROOT_ID};
  memcpy(buf, &ro, sizeof(ro));
  memcpy(buf + sizeof(ro), "fifo\0..", 8);
  ok(req(FUSE_RENAME, d, buf, sizeof(ro) + 8) == -EINVAL, "RENAME onto \"..\" is refused");

  ok(req(FUSE_UNLINK, FUSE_ROOT_ID, "moved", 6) == 0 && access(host("moved"), F_OK) < 0,
     "UNLINK moved");
  ok(req(FUSE_RMDIR, FUSE_ROOT_ID, "d", 2) == -ENOTEMPTY, "RMDIR of a full directory: ENOTEMPTY");
  ok(req(FUSE_UNLINK, d, "l", 2) == 0 && req(FUSE_UNLINK, d, "fifo", 5) == 0 &&
         req(FUSE_RMDIR, FUSE_ROOT_ID, "d", 2) == 0 && access(host("d"), F_OK) < 0,
     "emptied, RMDIR d");
  ok(req(FUSE_UNLINK, FUSE_ROOT_ID, "..", 3) == -EINVAL, "UNLINK \"..\" is refused");
}

static void test_readdir(void)
{
  uint8_t buf[512];
  struct fuse_mkdir_in mi = {.mode = 0755};
  size_t len = with_name(buf, &mi, sizeof(mi), "many");
  ok(req(FUSE_MKDIR, FUSE_ROOT_ID, buf, len) == 0, "MKDIR many");
  struct fuse_entry_out e;
  memcpy(&e, rep.data, sizeof(e));
  uint64_t dir = e.nodeid;
  enum { N = 300 };
  for (int i = 0; i < N; i++) {
    char p[160];
    snprintf(p, sizeof(p), "%s/many/entry-with-a-longish-name-%03d", root, i);
    close(open(p, O_CREAT | O_WRONLY, 0644));
  }
  struct fuse_open_in oi = {.flags = O_RDONLY};
  ok(req(FUSE_OPENDIR, dir, &oi, sizeof(oi)) == 0, "OPENDIR many");
  struct fuse_open_out oo;
  memcpy(&oo, rep.data, sizeof(oo));
  bool seen[N] = {0};
  int names = 0, dots = 0, calls = 0;
  uint64_t off = 0;
  for (;;) {
    struct fuse_read_in ri = {.fh = oo.fh, .offset = off, .size = 2048};
    if (req(FUSE_READDIR, dir, &ri, sizeof(ri)) != 0 || payload_len() == 0)
      break;
    calls++;
    for (size_t p = 0; p < payload_len();) {
      struct fuse_dirent *de = (struct fuse_dirent *) (rep.data + p);
      char name[256] = {0};
      memcpy(name, de->name, de->namelen);
      int k;
      if (!strcmp(name, ".") || !strcmp(name, ".."))
        dots++;
      else if (sscanf(name, "entry-with-a-longish-name-%d", &k) == 1 && k >= 0 && k < N && !seen[k])
        seen[k] = true, names++;
      off = de->off;
      p += FUSE_DIRENT_SIZE(de);
    }
  }
  ok(names == N && dots == 2 && calls > 5,
     "READDIR in 2 KiB pieces by offset: %d names once each, . and .., %d calls", names, calls);
  struct fuse_read_in ri = {.fh = oo.fh, .offset = 0, .size = 1 << 20};
  ok(req(FUSE_READDIR, dir, &ri, sizeof(ri)) == 0 && payload_len() > 0, "READDIR from 0 again");
  ri.fh = 777;
  ok(req(FUSE_READDIR, dir, &ri, sizeof(ri)) == -EBADF, "READDIR on an unknown handle: EBADF");
  struct fuse_release_in rel = {.fh = oo.fh};
  struct fuse_read_in as_file = {.fh = oo.fh, .size = 10};
  ok(req(FUSE_READ, dir, &as_file, sizeof(as_file)) == -EBADF,
     "a directory handle is not a file handle");
  ok(req(FUSE_RELEASEDIR, dir, &rel, sizeof(rel)) == 0, "RELEASEDIR");
}

static void test_hostile(void)
{
  ok(req_full(FUSE_GETATTR, FUSE_ROOT_ID, NULL, 0, NULL, 0, 0, 0) == 1,
     "no room for a reply: none is written");
  struct fuse_mkdir_in mi = {.mode = 0755};
  uint8_t mk[64];
  size_t mkl = with_name(mk, &mi, sizeof(mi), "unanswered");
  ok(req_full(FUSE_MKDIR, FUSE_ROOT_ID, mk, mkl, NULL, 0, 0, 8) == 1 &&
         access(host("unanswered"), F_OK) < 0,
     "nor is the request carried out (no directory made)");
  ok(req_full(FUSE_GETATTR, FUSE_ROOT_ID, NULL, 0, NULL, 0, 0, sizeof(rep.h) + 8) == -EINVAL,
     "room for the header only: EINVAL");
  static uint8_t big[3 * 4096];
  memset(big, 'a', sizeof(big));
  ok(req(FUSE_LOOKUP, FUSE_ROOT_ID, big, sizeof(big)) == -EINVAL,
     "a request larger than any FUSE request: EINVAL");
  big[300] = 0;
  ok(req(FUSE_LOOKUP, FUSE_ROOT_ID, big, 301) == -ENAMETOOLONG, "a 300-byte name: ENAMETOOLONG");
  uint8_t gx[32] = {0};
  struct fuse_getxattr_in gxi = {.size = 64};
  size_t gxl = with_name(gx, &gxi, sizeof(gxi), "user.x");
  ok(req(FUSE_GETXATTR, FUSE_ROOT_ID, gx, gxl) == -ENOSYS, "xattrs: ENOSYS");
  ok(req(9999, FUSE_ROOT_ID, NULL, 0) == -ENOSYS, "an unknown opcode: ENOSYS");
  ok(req(FUSE_SETATTR, FUSE_ROOT_ID, "x", 1) == -EINVAL, "SETATTR with short arguments: EINVAL");

  struct fuse_entry_out e;
  uint64_t n = lookup(FUSE_ROOT_ID, "sub", &e);
  struct {
    struct fuse_batch_forget_in b;
    struct fuse_forget_one one[2];
  } bf = {{.count = 1000000}, {{n, 1u << 30}, {FUSE_ROOT_ID, 99}}};
  ok(req(FUSE_BATCH_FORGET, 0, &bf, sizeof(bf)) == 1,
     "BATCH_FORGET claiming 10^6 entries: no reply");
  ok(req(FUSE_GETATTR, n, NULL, 0) == -ENOENT, "the forgotten node is gone");
  ok(req(FUSE_GETATTR, FUSE_ROOT_ID, NULL, 0) == 0, "the root is never forgotten");

  /* Every inode is a descriptor: a guest that looks up without end gets ENFILE. */
  int made = 0, enfile = 0;
  for (int i = 0; i < 70000 && !enfile; i++) {
    char name[32];
    snprintf(name, sizeof(name), "f%d", i);
    char p[128];
    snprintf(p, sizeof(p), "%s/flood/%s", root, name);
    if (i == 0)
      mkdir(host("flood"), 0755);
    close(open(p, O_CREAT | O_WRONLY, 0644));
    uint64_t fl = lookup(FUSE_ROOT_ID, "flood", &e);
    int r = req(FUSE_LOOKUP, fl, name, strlen(name) + 1);
    made += r == 0;
    enfile += r == -ENFILE;
  }
  ok(enfile && made > 100, "a lookup flood ends in ENFILE after %d inodes", made);
  ok(req(FUSE_DESTROY, 0, NULL, 0) == 0, "DESTROY forgets them all");
  ok(req(FUSE_GETATTR, FUSE_ROOT_ID, NULL, 0) == -EIO, "until the next INIT");
  ok(init_server(37) == 0 && lookup(FUSE_ROOT_ID, "in.txt", &e), "which works again");
}

static void test_readonly(void)
{
  struct fs_server *rw = srv;
  _cleanup_error_ struct isola_error *err = NULL;
  ok(fs_server_create(root, true, &srv, &err) == 0, "a read-only server on the same directory");
  init_server(37);
  struct fuse_entry_out e;
  uint64_t n = lookup(FUSE_ROOT_ID, "in.txt", &e);
  struct fuse_open_in oi = {.flags = O_RDONLY};
  ok(n && req(FUSE_OPEN, n, &oi, sizeof(oi)) == 0, "OPEN for reading works");
  struct fuse_open_out oo;
  memcpy(&oo, rep.data, sizeof(oo));
  struct fuse_read_in ri = {.fh = oo.fh, .size = 100};
  ok(req(FUSE_READ, n, &ri, sizeof(ri)) == 0 && payload_len() == 10, "and READ");
  oi.flags = O_WRONLY;
  ok(req(FUSE_OPEN, n, &oi, sizeof(oi)) == -EROFS, "OPEN for writing: EROFS");
  oi.flags = O_RDONLY | O_TRUNC;
  ok(req(FUSE_OPEN, n, &oi, sizeof(oi)) == -EROFS, "OPEN with O_TRUNC: EROFS");
  struct fuse_write_in wi = {.fh = oo.fh, .size = 3};
  ok(req_full(FUSE_WRITE, n, &wi, sizeof(wi), (const uint8_t *) "abc", 3, 3, sizeof(rep)) == -EROFS,
     "WRITE on a read handle: EROFS");
  uint64_t fh;
  ok(!create(FUSE_ROOT_ID, "nope", O_WRONLY, 0644, &fh) && access(host("nope"), F_OK) < 0,
     "CREATE: refused, nothing made");
  struct fuse_setattr_in sa = {.valid = FATTR_MODE, .mode = 0777};
  ok(req(FUSE_SETATTR, n, &sa, sizeof(sa)) == -EROFS, "SETATTR: EROFS");
  ok(req(FUSE_UNLINK, FUSE_ROOT_ID, "in.txt", 7) == -EROFS && access(host("in.txt"), F_OK) == 0,
     "UNLINK: EROFS, the file stays");
  fs_server_destroy(srv);
  srv = rw;
}

/* A share of one file: its directory, with nothing else visible and nothing to change there. */
static void test_one_file(void)
{
  struct fs_server *dir_srv = srv;
  _cleanup_error_ struct isola_error *err = NULL;
  ok(fs_server_create(host("in.txt"), false, &srv, &err) == 0, "a server on the file in.txt");
  init_server(37);
  struct fuse_entry_out e;
  uint64_t n = lookup(FUSE_ROOT_ID, "in.txt", &e);
  ok(n && S_ISREG(e.attr.mode), "LOOKUP in.txt");
  ok(req(FUSE_LOOKUP, FUSE_ROOT_ID, "sub", 4) == -ENOENT, "its sibling sub is not there");
  ok(req(FUSE_LOOKUP, FUSE_ROOT_ID, "escape", 7) == -ENOENT, "nor the symlink escape");
  struct fuse_open_in oi = {.flags = O_RDONLY};
  ok(req(FUSE_OPENDIR, FUSE_ROOT_ID, &oi, sizeof(oi)) == 0, "OPENDIR of the root");
  struct fuse_open_out oo;
  memcpy(&oo, rep.data, sizeof(oo));
  int names = 0, others = 0;
  uint64_t off = 0;
  for (;;) {
    struct fuse_read_in ri = {.fh = oo.fh, .offset = off, .size = 4096};
    if (req(FUSE_READDIR, FUSE_ROOT_ID, &ri, sizeof(ri)) != 0 || payload_len() == 0)
      break;
    for (size_t p = 0; p < payload_len();) {
      struct fuse_dirent *de = (struct fuse_dirent *) (rep.data + p);
      if (de->namelen == 6 && !memcmp(de->name, "in.txt", 6))
        names++;
      else if (!(de->namelen <= 2 && de->name[0] == '.'))
        others++;
      off = de->off;
      p += FUSE_DIRENT_SIZE(de);
    }
  }
  ok(names == 1 && others == 0, "READDIR lists in.txt alone (%d other names)", others);
  uint64_t fh;
  ok(!create(FUSE_ROOT_ID, "new", O_WRONLY, 0644, &fh) && access(host("new"), F_OK) < 0,
     "CREATE beside it: refused, nothing made");
  ok(req(FUSE_UNLINK, FUSE_ROOT_ID, "in.txt", 7) == -EPERM && access(host("in.txt"), F_OK) == 0,
     "UNLINK of it: EPERM, it stays");
  struct fuse_rename_in rn = {.newdir = FUSE_ROOT_ID};
  uint8_t buf[64];
  memcpy(buf, &rn, sizeof(rn));
  memcpy(buf + sizeof(rn), "in.txt\0other", 13);
  ok(req(FUSE_RENAME, FUSE_ROOT_ID, buf, sizeof(rn) + 13) == -EPERM, "RENAME of it: EPERM");
  struct fuse_setattr_in sa = {.valid = FATTR_MODE, .mode = 0777};
  ok(req(FUSE_SETATTR, FUSE_ROOT_ID, &sa, sizeof(sa)) == -EPERM,
     "chmod of the host directory around it: EPERM");
  oi.flags = O_WRONLY | O_APPEND;
  ok(req(FUSE_OPEN, n, &oi, sizeof(oi)) == 0, "OPEN it for appending");
  memcpy(&oo, rep.data, sizeof(oo));
  struct fuse_write_in wi = {.fh = oo.fh, .offset = 10, .size = 5};
  ok(req_full(FUSE_WRITE, n, &wi, sizeof(wi), (const uint8_t *) "more\n", 5, 5, sizeof(rep)) == 0,
     "WRITE to it");
  char text[64] = {0};
  FILE *f = fopen(host("in.txt"), "r");
  size_t got = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  ok(got == 15 && !strcmp(text, "from host\nmore\n"), "lands in the host file");
  fs_server_destroy(srv);
  srv = dir_srv;
  ok(fs_server_create("/dev/null", false, &srv, &err) < 0 && err && strstr(err->msg, "neither"),
     "a device is refused: %s", err ? err->msg : "");
  srv = dir_srv;
}

int main(void)
{
  strcpy(root, "/tmp/isola-fs-test-XXXXXX");
  if (!mkdtemp(root))
    return 1;
  FILE *f = fopen(host("in.txt"), "w");
  fputs("from host\n", f);
  fclose(f);
  mkdir(host("sub"), 0755);
  symlink("/etc", host("escape"));
  /* A small descriptor budget, so that the flood below meets it quickly. */
  struct rlimit rl = {2048, 2048};
  setrlimit(RLIMIT_NOFILE, &rl);
  _cleanup_error_ struct isola_error *err = NULL;
  ok(fs_server_create(root, false, &srv, &err) == 0, "server on %s", root);
  ok(fs_server_create("/nonexistent/dir", false, &(struct fs_server *){NULL}, &err) < 0 && err &&
         strstr(err->msg, "/nonexistent/dir"),
     "a missing directory is named in the error: %s", err ? err->msg : "");
  test_init();
  test_lookup_confined();
  test_io();
  test_namespace();
  test_readdir();
  test_readonly();
  test_one_file();
  test_hostile();
  fs_server_destroy(srv);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
  ok(system(cmd) == 0, "cleaned up");
  done_testing();
}
