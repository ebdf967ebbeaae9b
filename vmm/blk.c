/* blk.c — virtio-blk (virtio 1.x, 5.2): a disk image file or block device on one queue.
 *
 * A request is a byte stream, whatever the descriptor framing (the spec forbids assuming
 * one): the readable part is a 16-byte header {type, reserved, sector} followed, for writes,
 * by the data; the writable part is the data for reads (and GET_ID) followed by one status
 * byte. Every request is checked before any I/O: the header is copied once, the lengths must
 * match the type, data is a whole number of sectors within the disk (overflow-safe) and at most
 * what SEG_MAX × SIZE_MAX allows, and a read-only disk is never written. The I/O itself is
 * preadv/pwritev straight between the file and the checked guest buffers, on the event-loop
 * thread (queue_notify), so a vCPU never waits for the disk. */
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "vmm.h"

#define VIRTIO_BLK_F_SIZE_MAX (1ull << 1)
#define VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define BLK_SECTOR 512u
#define BLK_HEADER 16u
#define BLK_ID_BYTES 20u
#define BLK_QUEUE_SIZE 256u
/* What the driver may put in one request: SEG_MAX segments of at most SIZE_MAX bytes each.
 * Linux honours both, so anything larger is a hostile guest holding the event loop. */
#define BLK_SEG_MAX (BLK_QUEUE_SIZE - 2)
#define BLK_SIZE_MAX (128u << 10)
#define BLK_MAX_DATA ((uint64_t) BLK_SEG_MAX * BLK_SIZE_MAX)

/* Config space (5.2.4), little-endian, as far as we fill it. */
struct blk_config {
  uint64_t capacity; /* in 512-byte sectors */
  uint32_t size_max;
  uint32_t seg_max;
  uint16_t cylinders;
  uint8_t heads, sectors;
  uint32_t blk_size;
  uint8_t physical_block_exp, alignment_offset;
  uint16_t min_io_size;
  uint32_t opt_io_size;
} __attribute__((packed));

struct blk {
  struct virtio_mmio *t;
  int fd;
  bool readonly;
  uint64_t sectors;
  char id[BLK_ID_BYTES]; /* GET_ID: not NUL-terminated when all 20 bytes are used */
  struct blk_config config;
  /* Scratch for one request (the loop thread runs one at a time): the popped chain and the
   * data part of it as its own iovec array. */
  struct virtq_chain chain;
  struct iovec data[VIRTQ_CHAIN_MAX];
};

/* Move an iovec array past `done` bytes (after a short transfer). */
static void iov_advance(struct iovec **iov, unsigned *n, size_t done)
{
  while (*n > 0 && done >= (*iov)->iov_len) {
    done -= (*iov)->iov_len;
    (*iov)++;
    (*n)--;
  }
  if (*n > 0) {
    (*iov)->iov_base = (uint8_t *) (*iov)->iov_base + done;
    (*iov)->iov_len -= done;
  }
}

/* preadv/pwritev all of iov at off; the I/O status. A short read means the file shrank
 * under us (someone truncated it): an I/O error, never a partial success. */
static uint8_t blk_rw(struct blk *b, bool write, struct iovec *iov, unsigned n, uint64_t off)
{
  while (n > 0) {
    ssize_t r = write ? pwritev(b->fd, iov, (int) n, (off_t) off)
                      : preadv(b->fd, iov, (int) n, (off_t) off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return VIRTIO_BLK_S_IOERR;
    off += (uint64_t) r;
    iov_advance(&iov, &n, (size_t) r);
  }
  return VIRTIO_BLK_S_OK;
}

/* Whether [sector, sector + bytes/512) lies within the disk, without overflowing. */
static bool blk_in_range(const struct blk *b, uint64_t sector, uint64_t bytes)
{
  return sector <= b->sectors && bytes / BLK_SECTOR <= b->sectors - sector;
}

/* Run one checked request; returns the status and sets *written to the data bytes stored
 * into the guest's writable buffers (the status byte not included). */
static uint8_t blk_request(struct blk *b, const struct virtq_chain *c, uint32_t *written)
{
  struct {
    uint32_t type, reserved;
    uint64_t sector;
  } hdr;
  _Static_assert(sizeof(hdr) == BLK_HEADER, "virtio-blk header");
  *written = 0;
  if (c->out_len < BLK_HEADER)
    return VIRTIO_BLK_S_IOERR;
  virtq_chain_read(c, &hdr, sizeof(hdr)); /* one copy: the guest may rewrite it meanwhile */
  uint64_t out_data = c->out_len - BLK_HEADER;
  uint64_t in_data = c->in_len - 1; /* the caller made sure the status byte is there */
  const struct iovec *out_iov = c->iov, *in_iov = c->iov + c->nr_out;

  switch (hdr.type) {
  case VIRTIO_BLK_T_IN: {
    if (out_data != 0 || in_data % BLK_SECTOR || in_data > BLK_MAX_DATA ||
        !blk_in_range(b, hdr.sector, in_data))
      return VIRTIO_BLK_S_IOERR;
    unsigned n = iov_slice(in_iov, c->nr_in, 0, in_data, b->data);
    uint8_t s = blk_rw(b, false, b->data, n, hdr.sector * BLK_SECTOR);
    if (s == VIRTIO_BLK_S_OK)
      *written = (uint32_t) in_data;
    return s;
  }
  case VIRTIO_BLK_T_OUT: {
    if (b->readonly || in_data != 0 || out_data % BLK_SECTOR || out_data > BLK_MAX_DATA ||
        !blk_in_range(b, hdr.sector, out_data))
      return VIRTIO_BLK_S_IOERR;
    unsigned n = iov_slice(out_iov, c->nr_out, BLK_HEADER, out_data, b->data);
    return blk_rw(b, true, b->data, n, hdr.sector * BLK_SECTOR);
  }
  case VIRTIO_BLK_T_FLUSH:
    if (out_data != 0 || in_data != 0)
      return VIRTIO_BLK_S_IOERR;
    if (b->readonly)
      return VIRTIO_BLK_S_OK; /* nothing of ours to write back */
    return fdatasync(b->fd) == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
  case VIRTIO_BLK_T_GET_ID: {
    if (out_data != 0 || in_data == 0)
      return VIRTIO_BLK_S_IOERR;
    uint64_t len = in_data < BLK_ID_BYTES ? in_data : BLK_ID_BYTES;
    unsigned n = iov_slice(in_iov, c->nr_in, 0, len, b->data);
    uint64_t done = 0;
    for (unsigned i = 0; i < n; i++) {
      memcpy(b->data[i].iov_base, b->id + done, b->data[i].iov_len);
      done += b->data[i].iov_len;
    }
    *written = (uint32_t) len;
    return VIRTIO_BLK_S_OK;
  }
  default:
    return VIRTIO_BLK_S_UNSUPP;
  }
}

static void blk_queue_notify(void *dev, unsigned qi)
{
  struct blk *b = dev;
  struct virtq *q = virtio_mmio_queue(b->t, qi);
  struct virtq_chain *c = &b->chain;
  /* At most one ring's worth per notify (see rng.c): what the driver adds meanwhile comes
   * with a notify of its own. */
  for (unsigned i = 0; i < q->num; i++) {
    if (virtq_pop(q, c) <= 0)
      break; /* empty, or broken: the transport sets NEEDS_RESET */
    if (c->in_len == 0) {
      virtq_push_used(q, c->head, 0); /* nowhere to put a status: nothing we can do */
      continue;
    }
    uint32_t written;
    uint8_t status = blk_request(b, c, &written);
    struct iovec st;
    iov_slice(c->iov + c->nr_out, c->nr_in, c->in_len - 1, 1, &st);
    *(uint8_t *) st.iov_base = status;
    virtq_push_used(q, c->head, written + 1);
  }
  virtio_mmio_signal_used(b->t, qi);
}

static void blk_config_read(void *dev, uint32_t off, void *data, uint32_t len)
{
  const struct blk *b = dev;
  memcpy(data, (const uint8_t *) &b->config + off, len); /* off+len checked by the transport */
}

static void blk_destroy(void *dev)
{
  struct blk *b = dev;
  if (b->fd >= 0)
    close(b->fd);
  free(b);
}

#define BLK_FEATURES                                                                               \
  (VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH)
#define BLK_OPS(feature_bits)                                                                      \
  {                                                                                                \
    .name = "blk", .device_id = VIRTIO_ID_BLOCK, .features = (feature_bits), .num_queues = 1,      \
    .queue_max = BLK_QUEUE_SIZE, .config_size = sizeof(struct blk_config),                         \
    .config_read = blk_config_read, .queue_notify = blk_queue_notify, .destroy = blk_destroy,      \
  }
static const struct virtio_device_ops blk_ops = BLK_OPS(BLK_FEATURES);
static const struct virtio_device_ops blk_ro_ops = BLK_OPS(BLK_FEATURES | VIRTIO_BLK_F_RO);

int virtio_blk_create(struct vm *vm, const char *path, bool readonly, struct isola_error **err)
{
  _cleanup_close_ int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0)
    return isola_fail(err, errno, "disk \"%s\": cannot open%s", path,
                      readonly ? "" : " for writing");
  struct stat st;
  if (fstat(fd, &st) < 0)
    return isola_fail(err, errno, "disk \"%s\": cannot stat", path);
  uint64_t size;
  if (S_ISREG(st.st_mode)) {
    size = (uint64_t) st.st_size;
  } else if (S_ISBLK(st.st_mode)) {
    if (ioctl(fd, BLKGETSIZE64, &size) < 0)
      return isola_fail(err, errno, "disk \"%s\": cannot get the device size", path);
  } else {
    return isola_failx(err, EINVAL, "disk \"%s\": not a regular file or block device", path);
  }
  /* A trailing partial sector stays out of reach: the guest sees whole sectors only. */
  struct blk *b = xzalloc(sizeof(*b));
  b->readonly = readonly;
  b->sectors = size / BLK_SECTOR;
  b->config = (struct blk_config){
      .capacity = b->sectors,
      .size_max = BLK_SIZE_MAX,
      .seg_max = BLK_SEG_MAX,
      .blk_size = BLK_SECTOR,
  };
  /* The serial (GET_ID): the file's name, as much of it as fits in 20 bytes. */
  const char *base = strrchr(path, '/');
  base = base && base[1] ? base + 1 : path;
  size_t idlen = strlen(base);
  memcpy(b->id, base, idlen < sizeof(b->id) ? idlen : sizeof(b->id));
  b->fd = steal_fd(&fd);
  int r = virtio_mmio_create(vm, readonly ? &blk_ro_ops : &blk_ops, b, &b->t, err);
  if (r < 0)
    return isola_error_prefix(err, "disk \"%s\"", path);
  return 0;
}
