/* fs_server.h — the FUSE server's own pieces, shared by fs_server.c (inodes, handles, the
 * dispatcher) and fs_ops.c (the operations). Private to those two: vmm.h has the contract. */
#pragma once

#include <limits.h>
#include <linux/fuse.h>
#include <sys/stat.h>

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
  bool root;     /* the root directory, opened (READDIR shows only `only` there) */
  off_t dir_pos; /* where the directory stream is (READDIR offsets are getdents cookies) */
};

struct fs_server {
  int proc_fd; /* /proc/self/fd, to reopen an O_PATH descriptor */
  bool readonly;
  char *only; /* a one-file share: the root shows this name alone, and nothing is made,
                 removed or renamed there */
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

/* A one-file share's root: no name but `only` exists there, and it cannot change. */
static inline bool fs_root_locked(const struct fs_server *s, const struct fs_inode *dir)
{
  return s->only && dir == &s->inodes[0];
}

/* inodes and handles (fs_server.c) */
struct fs_inode *fs_inode(struct fs_server *s, uint64_t nodeid);
void fs_inode_forget(struct fs_server *s, uint64_t nodeid, uint64_t n);
struct fs_handle *fs_handle(struct fs_server *s, uint64_t fh, bool dir);
int64_t fs_handle_add(struct fs_server *s, int fd, bool dir);
int fs_name(const uint8_t *p, size_t len, size_t *off, const char **name);
void fs_attr(const struct stat *st, struct fuse_attr *a);
int fs_stat(int fd, struct stat *st);
int fs_reopen(struct fs_server *s, const struct fs_inode *in, int flags);
int fs_entry(struct fs_server *s, struct fs_inode *dir, const char *name, struct fuse_entry_out *e);
void fs_own(struct fs_inode *dir, const char *name, const struct fuse_in_header *h);

/* Operations (fs_ops.c): each fills s->reply after the header, sets *len and returns 0 or
 * -errno; READ returns 1 when its data is already in the guest's buffers. The arguments are
 * a[0..alen), copied out of guest memory once. */
#define ARG(type)                                                                                  \
  ({                                                                                               \
    if (alen < sizeof(type))                                                                       \
      return -EINVAL;                                                                              \
    (const type *) a;                                                                              \
  })
#define OUT(type) ((type *) (s->reply + sizeof(struct fuse_out_header)))

int fs_init(struct fs_server *s, const uint8_t *a, size_t alen, size_t *len);
int fs_lookup(struct fs_server *s, struct fs_inode *in, const uint8_t *a, size_t alen, size_t *len);
int fs_getattr(struct fs_inode *in, struct fuse_attr_out *o, size_t *len);
int fs_setattr(struct fs_server *s, struct fs_inode *in, const uint8_t *a, size_t alen,
               size_t *len);
int fs_make(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
            const uint8_t *a, size_t alen, size_t *len);
int fs_remove(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
              const uint8_t *a, size_t alen);
int fs_rename(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
              const uint8_t *a, size_t alen);
int fs_open(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *in,
            const uint8_t *a, size_t alen, size_t *len);
int fs_create(struct fs_server *s, const struct fuse_in_header *h, struct fs_inode *dir,
              const uint8_t *a, size_t alen, size_t *len);
int fs_readdir(struct fs_server *s, const uint8_t *a, size_t alen, size_t *len);
int fs_statfs(struct fs_inode *in, struct fuse_statfs_out *o, size_t *len);
int fs_on_handle(struct fs_server *s, uint32_t op, const uint8_t *a, size_t alen, size_t *len);
int fs_read(struct fs_server *s, const struct virtq_chain *c, const uint8_t *a, size_t alen,
            size_t *len);
int fs_write(struct fs_server *s, const struct virtq_chain *c, const uint8_t *a, size_t alen,
             size_t *len);
