/* Fuzz the FUSE server behind virtio-fs (vmm/fs_server.c) the way a hostile guest drives it:
 * the input is a sequence of requests, each a u16 reply room (in 16-byte units), a u16 length
 * and that many bytes of request (header, arguments, WRITE data), served in order against a
 * small real directory made afresh for each input. Besides not crashing, the server must never
 * change anything outside that directory: a file beside it is checked after every input. */
#include "fuzz.h"
#include "vmm.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[64], dir[96], outside[96];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st, (void) flag, (void) ftw;
  return remove(path);
}

static void make_tree(void)
{
  mkdir(dir, 0755);
  char p[160];
  snprintf(p, sizeof(p), "%s/file", dir);
  int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    if (write(fd, "hello\n", 6) != 6)
      abort();
    close(fd);
  }
  snprintf(p, sizeof(p), "%s/sub", dir);
  mkdir(p, 0755);
  snprintf(p, sizeof(p), "%s/up", dir);
  symlink("..", p);
}

/* The shared directory holds what make_tree() put there, as it put it: file, sub/ (empty, 0755)
 * and the symlink up -> .. */
static bool only_the_tree(void)
{
  DIR *d = opendir(dir);
  if (!d)
    return false;
  int seen = 0;
  bool ok = true;
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    seen++;
    ok &= !strcmp(e->d_name, "file") || !strcmp(e->d_name, "sub") || !strcmp(e->d_name, "up");
  }
  closedir(d);
  char p[160], target[8] = {0};
  struct stat st;
  snprintf(p, sizeof(p), "%s/sub", dir);
  ok &=
      stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0755 && st.st_nlink == 2;
  snprintf(p, sizeof(p), "%s/up", dir);
  ok &= readlink(p, target, sizeof(target) - 1) == 2 && !strcmp(target, "..");
  snprintf(p, sizeof(p), "%s", dir);
  ok &= stat(p, &st) == 0 && (st.st_mode & 07777) == 0755;
  return ok && seen == 3;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!base[0]) {
    strcpy(base, "/tmp/isola-fuzz-fs-XXXXXX");
    if (!mkdtemp(base))
      abort();
    snprintf(dir, sizeof(dir), "%s/share", base);
    snprintf(outside, sizeof(outside), "%s/outside", base);
    int fd = open(outside, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, "keep", 4) != 4)
      abort();
    close(fd);
  }
  make_tree();
  /* The first byte's low bit: the directory shared, or its file alone (a file volume), where
   * nothing beside the file may appear, go or change. */
  bool one_file = size && (data[0] & 1);
  char file[160];
  snprintf(file, sizeof(file), "%s/file", dir);
  struct fs_server *s = NULL;
  struct isola_error *err = NULL;
  if (fs_server_create(one_file ? file : dir, false, &s, &err) < 0)
    abort();
  static struct virtq_chain c;
  static _Alignas(8) uint8_t req[1 << 16], reply[1 << 20];
  for (size_t off = 0; off + 4 <= size;) {
    size_t room = (size_t) (data[off] | data[off + 1] << 8) * 16;
    size_t len = (size_t) (data[off + 2] | data[off + 3] << 8);
    off += 4;
    if (len > size - off)
      len = size - off;
    memcpy(req, data + off, len);
    off += len;
    if (room > sizeof(reply))
      room = sizeof(reply);
    struct fuse_in_header h;
    if (len >= sizeof(h)) {
      memcpy(&h, req, sizeof(h));
      /* The one request that really costs the host: a fallocate of the whole disk. */
      if (h.opcode == FUSE_FALLOCATE)
        continue;
    }
    /* Split the request and the reply room over two buffers each, as guest pages are. */
    size_t half = len / 2;
    c.iov[0] = (struct iovec){req, half};
    c.iov[1] = (struct iovec){req + half, len - half};
    c.iov[2] = (struct iovec){reply, room / 3};
    c.iov[3] = (struct iovec){reply + room / 3, room - room / 3};
    c.nr_out = c.nr_in = 2;
    c.out_len = len;
    c.in_len = room;
    uint32_t w = fs_server_handle(s, &c);
    if (w > room)
      abort();
  }
  fs_server_destroy(s);
  if (one_file && !only_the_tree())
    abort(); /* something beside the shared file was made, removed or changed */
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  struct stat st;
  if (stat(outside, &st) < 0 || st.st_size != 4 || (st.st_mode & 07777) != 0600)
    abort(); /* something reached outside the shared directory */
  return 0;
}
