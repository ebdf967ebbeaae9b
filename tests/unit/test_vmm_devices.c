/* virtio-blk and virtio-vsock without KVM: this test is the guest driver. It writes guest RAM
 * and MMIO registers (bus_dispatch) the way a guest would, with the VM's event loop running,
 * so every request takes the real path (QueueNotify → eventfd → loop thread → device). The
 * host side is real too: disk files, unix sockets. Hostile requests included; run under
 * ASan/UBSan in build-asan. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "tap.h"
#include "vmm.h"

#define MEM (64u << 20)
static struct vm *vm;
static uint64_t next_gpa = 0x100000;

static uint64_t galloc(uint64_t size)
{
  uint64_t a = (next_gpa + 4095) & ~4095ull;
  next_gpa = a + size;
  return a;
}
static void *G(uint64_t gpa)
{
  return vm->mem + gpa;
}

static uint32_t rd(uint64_t base, uint32_t off)
{
  uint32_t v;
  bus_dispatch(&vm->mmio, base + off, (uint8_t *) &v, 4, false);
  return v;
}
static void wr(uint64_t base, uint32_t off, uint32_t v)
{
  bus_dispatch(&vm->mmio, base + off, (uint8_t *) &v, 4, true);
}

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ---- a split virtqueue, driver side ---- */

struct dq {
  uint64_t base;
  unsigned qi;
  uint16_t num;
  uint64_t desc, avail, used;
  uint16_t avail_idx, last_used;
};

struct desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};
#define F_NEXT 1
#define F_WRITE 2

static bool dev_start(uint64_t base, uint32_t id, uint32_t *features_lo)
{
  if (rd(base, 0) != 0x74726976 || rd(base, 8) != id)
    return false;
  wr(base, 0x70, 0);
  wr(base, 0x70, 3);
  wr(base, 0x14, 0);
  *features_lo = rd(base, 0x10);
  wr(base, 0x24, 0);
  wr(base, 0x20, *features_lo);
  wr(base, 0x24, 1);
  wr(base, 0x20, 1); /* VERSION_1 */
  wr(base, 0x70, 3 | 8);
  return rd(base, 0x70) & 8;
}

static bool dq_setup(struct dq *q, uint64_t base, unsigned qi, uint16_t num)
{
  *q = (struct dq){.base = base, .qi = qi, .num = num};
  q->desc = galloc(16ull * num);
  q->avail = galloc(6 + 2ull * num);
  q->used = galloc(6 + 8ull * num);
  memset(G(q->desc), 0, 16ull * num);
  memset(G(q->avail), 0, 6 + 2ull * num);
  memset(G(q->used), 0, 6 + 8ull * num);
  wr(base, 0x30, qi);
  wr(base, 0x38, num);
  wr(base, 0x80, (uint32_t) q->desc);
  wr(base, 0x84, 0);
  wr(base, 0x90, (uint32_t) q->avail);
  wr(base, 0x94, 0);
  wr(base, 0xa0, (uint32_t) q->used);
  wr(base, 0xa4, 0);
  wr(base, 0x44, 1);
  return rd(base, 0x44) == 1;
}

static void dq_desc(struct dq *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                    uint16_t next)
{
  struct desc d = {addr, len, flags, next};
  memcpy((uint8_t *) G(q->desc) + 16ull * i, &d, sizeof(d));
}

static void dq_offer(struct dq *q, uint16_t head)
{
  uint16_t *ring = (uint16_t *) G(q->avail + 4);
  ring[q->avail_idx % q->num] = head;
  q->avail_idx++;
  __atomic_store_n((uint16_t *) G(q->avail + 2), q->avail_idx, __ATOMIC_RELEASE);
}

static void dq_notify(struct dq *q)
{
  wr(q->base, 0x50, q->qi);
}

static bool dq_reap(struct dq *q, uint32_t *id, uint32_t *len, int timeout_ms)
{
  uint64_t end = now_ms() + (uint64_t) timeout_ms;
  for (;;) {
    uint16_t idx = __atomic_load_n((uint16_t *) G(q->used + 2), __ATOMIC_ACQUIRE);
    if (idx != q->last_used) {
      const uint8_t *e = G(q->used + 4 + 8ull * (q->last_used % q->num));
      memcpy(id, e, 4);
      memcpy(len, e + 4, 4);
      q->last_used++;
      return true;
    }
    if (now_ms() >= end)
      return false;
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
  }
}

/* ---- virtio-blk ---- */

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2

static uint64_t blk_hdr, blk_status, blk_data;

static uint8_t pattern(uint64_t off)
{
  return (uint8_t) ((off * 2654435761u) >> 24);
}

/* header, [data (len, writable or not)], status; returns the status or 0xee if untouched. */
static uint8_t blk_req(struct dq *q, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
                       bool data_w, uint32_t *used_len)
{
  struct {
    uint32_t type, reserved;
    uint64_t sector;
  } h = {type, 0, sector};
  memcpy(G(blk_hdr), &h, sizeof(h));
  *(uint8_t *) G(blk_status) = 0xee;
  uint16_t i = 0;
  dq_desc(q, i, blk_hdr, sizeof(h), F_NEXT, (uint16_t) (i + 1));
  i++;
  if (len) {
    dq_desc(q, i, data, len, (uint16_t) (F_NEXT | (data_w ? F_WRITE : 0)), (uint16_t) (i + 1));
    i++;
  }
  dq_desc(q, i, blk_status, 1, F_WRITE, 0);
  dq_offer(q, 0);
  dq_notify(q);
  uint32_t id, l = 0;
  if (!dq_reap(q, &id, &l, 5000))
    return 0xdd;
  if (used_len)
    *used_len = l;
  return *(uint8_t *) G(blk_status);
}

static char *make_disk(const char *dir, const char *name, uint64_t size, bool fill)
{
  char *path = xasprintf("%s/%s", dir, name);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fill) {
    uint8_t *buf = xmalloc(size);
    for (uint64_t i = 0; i < size; i++)
      buf[i] = pattern(i);
    write_all(fd, buf, size);
    free(buf);
  } else {
    ftruncate(fd, (off_t) size);
  }
  close(fd);
  return path;
}

static bool file_is_pattern(const char *path, uint64_t size, uint64_t skip_from, uint64_t skip_to)
{
  _cleanup_free_ char *buf = NULL;
  size_t len;
  if (read_file_at(AT_FDCWD, path, size + 1, &buf, &len) < 0 || len != size)
    return false;
  for (uint64_t i = 0; i < size; i++)
    if ((i < skip_from || i >= skip_to) && (uint8_t) buf[i] != pattern(i))
      return false;
  return true;
}

static void test_blk_rw(uint64_t base, const char *path, uint64_t sectors)
{
  uint32_t f;
  struct dq q;
  ok(dev_start(base, 2, &f), "blk: device 2, features accepted");
  ok((f & (1u << 1)) && (f & (1u << 2)) && (f & (1u << 6)) && (f & (1u << 9)) && !(f & (1u << 5)),
     "blk: SIZE_MAX, SEG_MAX, BLK_SIZE, FLUSH offered, not RO (0x%x)", f);
  ok(dq_setup(&q, base, 0, 16), "blk: queue ready");
  wr(base, 0x70, 3 | 8 | 4);
  uint32_t cap_lo = rd(base, 0x100), cap_hi = rd(base, 0x104);
  ok(((uint64_t) cap_hi << 32 | cap_lo) == sectors && rd(base, 0x100 + 20) == 512 &&
         rd(base, 0x100 + 12) >= 2 && rd(base, 0x100 + 8) >= 4096,
     "blk: config: capacity %u sectors, blk_size, seg_max, size_max", cap_lo);
  uint8_t *d = G(blk_data);
  uint32_t ul;
  memset(d, 0, 8192);
  ok(blk_req(&q, T_IN, 0, blk_data, 4096, true, &ul) == S_OK && ul == 4097, "blk: read 8 sectors");
  bool good = true;
  for (unsigned i = 0; i < 4096; i++)
    good &= d[i] == pattern(i);
  ok(good, "blk: read data matches the file");
  ok(blk_req(&q, T_IN, sectors - 1, blk_data, 512, true, NULL) == S_OK &&
         d[0] == pattern((sectors - 1) * 512),
     "blk: last sector");
  ok(blk_req(&q, T_IN, sectors - 1, blk_data, 1024, true, NULL) == S_IOERR,
     "blk: read past the end");
  ok(blk_req(&q, T_IN, sectors, blk_data, 512, true, NULL) == S_IOERR, "blk: read at capacity");
  ok(blk_req(&q, T_IN, ~0ull, blk_data, 512, true, NULL) == S_IOERR, "blk: sector 2^64-1");
  ok(blk_req(&q, T_IN, 1ull << 55, blk_data, 512, true, NULL) == S_IOERR, "blk: sector*512 wraps");
  ok(blk_req(&q, T_IN, 0, blk_data, 100, true, NULL) == S_IOERR, "blk: read of 100 bytes");
  /* Framing: data over three descriptors, the status the last byte of the third. */
  struct {
    uint32_t type, reserved;
    uint64_t sector;
  } h = {T_IN, 0, 3};
  memcpy(G(blk_hdr), &h, sizeof(h));
  memset(d, 0, 8192);
  d[4096] = 0xee;
  dq_desc(&q, 0, blk_hdr, 16, F_NEXT, 1);
  dq_desc(&q, 1, blk_data, 512, F_WRITE | F_NEXT, 2);
  dq_desc(&q, 2, blk_data + 512, 1536, F_WRITE | F_NEXT, 3);
  dq_desc(&q, 3, blk_data + 2048, 2049, F_WRITE, 0);
  dq_offer(&q, 0);
  dq_notify(&q);
  uint32_t id;
  good = dq_reap(&q, &id, &ul, 5000) && ul == 4097 && d[4096] == S_OK;
  for (unsigned i = 0; i < 4096; i++)
    good &= d[i] == pattern(3 * 512 + i);
  ok(good, "blk: read split over three descriptors, status byte sharing the last");
  /* Write sectors 16-17: header and data in one readable descriptor. */
  h = (typeof(h)){T_OUT, 0, 16};
  uint8_t *hd = G(blk_data);
  memcpy(hd, &h, 16);
  for (unsigned i = 0; i < 1024; i++)
    hd[16 + i] = (uint8_t) (0xa5 ^ i);
  *(uint8_t *) G(blk_status) = 0xee;
  dq_desc(&q, 0, blk_data, 16 + 1024, F_NEXT, 1);
  dq_desc(&q, 1, blk_status, 1, F_WRITE, 0);
  dq_offer(&q, 0);
  dq_notify(&q);
  ok(dq_reap(&q, &id, &ul, 5000) && ul == 1 && *(uint8_t *) G(blk_status) == S_OK,
     "blk: write with header and data in one descriptor");
  ok(blk_req(&q, T_OUT, 20, blk_data, 100, false, NULL) == S_IOERR, "blk: write of 100 bytes");
  ok(blk_req(&q, T_OUT, sectors - 1, blk_data, 1024, false, NULL) == S_IOERR,
     "blk: write past the end");
  ok(blk_req(&q, T_FLUSH, 0, 0, 0, false, &ul) == S_OK && ul == 1, "blk: flush");
  memset(d, 0, 64);
  ok(blk_req(&q, T_GET_ID, 0, blk_data, 20, true, &ul) == S_OK && ul == 21 &&
         strcmp((char *) d, "disk-rw.img") == 0,
     "blk: GET_ID is the file name: %s", (char *) d);
  ok(blk_req(&q, 77, 0, blk_data, 512, true, NULL) == S_UNSUPP, "blk: unknown type: UNSUPP");
  ok(!(rd(base, 0x70) & 0x40), "blk: no NEEDS_RESET");
  ok(file_is_pattern(path, sectors * 512, 16 * 512, 18 * 512),
     "blk: file: only sectors 16-17 changed");
  _cleanup_free_ char *buf = NULL;
  size_t len;
  read_file_at(AT_FDCWD, path, sectors * 512 + 1, &buf, &len);
  good = buf != NULL;
  for (unsigned i = 0; good && i < 1024; i++)
    good &= (uint8_t) buf[16 * 512 + i] == (uint8_t) (0xa5 ^ i);
  ok(good, "blk: file: sectors 16-17 hold what was written");
}

static void test_blk_ro(uint64_t base, const char *path, uint64_t sectors)
{
  uint32_t f;
  struct dq q;
  ok(dev_start(base, 2, &f) && (f & (1u << 5)), "blk ro: RO offered");
  ok(dq_setup(&q, base, 0, 16), "blk ro: queue ready");
  wr(base, 0x70, 3 | 8 | 4);
  uint8_t *d = G(blk_data);
  ok(blk_req(&q, T_IN, 8, blk_data, 4096, true, NULL) == S_OK && d[0] == pattern(8 * 512),
     "blk ro: read");
  memset(d, 0x5a, 4096);
  ok(blk_req(&q, T_OUT, 8, blk_data, 4096, false, NULL) == S_IOERR, "blk ro: write: IOERR");
  ok(blk_req(&q, T_OUT, 0, blk_data, 512, false, NULL) == S_IOERR, "blk ro: write sector 0: IOERR");
  ok(blk_req(&q, T_FLUSH, 0, 0, 0, false, NULL) == S_OK, "blk ro: flush");
  ok(file_is_pattern(path, sectors * 512, 0, 0), "blk ro: file unchanged");
}

static void test_blk_hostile(uint64_t base, const char *path, uint64_t sectors)
{
  uint32_t f;
  struct dq q;
  ok(dev_start(base, 2, &f), "blk hostile: started");
  ok(dq_setup(&q, base, 0, 16), "blk hostile: queue ready");
  wr(base, 0x70, 3 | 8 | 4);
  uint8_t *d = G(blk_data);
  uint32_t id, ul;
  struct {
    uint32_t type, reserved;
    uint64_t sector;
  } h = {T_OUT, 0, 0};
  /* The header in a writable descriptor. */
  memcpy(G(blk_hdr), &h, 16);
  *(uint8_t *) G(blk_status) = 0xee;
  dq_desc(&q, 0, blk_hdr, 16, F_WRITE | F_NEXT, 1);
  dq_desc(&q, 1, blk_status, 1, F_WRITE, 0);
  dq_offer(&q, 0);
  dq_notify(&q);
  ok(dq_reap(&q, &id, &ul, 5000) && *(uint8_t *) G(blk_status) == S_IOERR,
     "blk hostile: writable header: IOERR");
  memset(d, 0x77, 512);
  ok(blk_req(&q, T_IN, 0, blk_data, 512, false, NULL) == S_IOERR,
     "blk hostile: read into readable");
  ok(blk_req(&q, T_OUT, 0, blk_data, 512, true, NULL) == S_IOERR,
     "blk hostile: write from writable");
  ok(d[0] == 0x77 && d[511] == 0x77, "blk hostile: buffers untouched");
  /* No writable byte for the status. */
  memcpy(G(blk_hdr), &h, 16);
  dq_desc(&q, 0, blk_hdr, 16, F_NEXT, 1);
  dq_desc(&q, 1, blk_data, 512, 0, 0);
  dq_offer(&q, 0);
  dq_notify(&q);
  ok(dq_reap(&q, &id, &ul, 5000) && ul == 0 && d[0] == 0x77,
     "blk hostile: no status byte: completed empty");
  /* An 8-byte header. */
  *(uint8_t *) G(blk_status) = 0xee;
  dq_desc(&q, 0, blk_hdr, 8, F_NEXT, 1);
  dq_desc(&q, 1, blk_data, 512, F_WRITE | F_NEXT, 2);
  dq_desc(&q, 2, blk_status, 1, F_WRITE, 0);
  dq_offer(&q, 0);
  dq_notify(&q);
  ok(dq_reap(&q, &id, &ul, 5000) && *(uint8_t *) G(blk_status) == S_IOERR,
     "blk hostile: short header: IOERR");
  ok(blk_req(&q, T_OUT, ~0ull, blk_data, 512, false, NULL) == S_IOERR &&
         blk_req(&q, T_OUT, 1ull << 55, blk_data, 512, false, NULL) == S_IOERR &&
         blk_req(&q, T_OUT, (1ull << 55) - 1, blk_data, 1024, false, NULL) == S_IOERR &&
         blk_req(&q, T_OUT, sectors, blk_data, 512, false, NULL) == S_IOERR &&
         blk_req(&q, T_IN, ~0ull - 1, blk_data, 1024, true, NULL) == S_IOERR,
     "blk hostile: sectors that overflow or end past the disk");
  uint64_t t0 = now_ms();
  ok(blk_req(&q, T_IN, 0, 8u << 20, 48u << 20, true, NULL) == S_IOERR && now_ms() - t0 < 1000,
     "blk hostile: a 48 MiB request (past SEG_MAX x SIZE_MAX) refused at once");
  ok(blk_req(&q, T_FLUSH, 0, blk_data, 512, false, NULL) == S_IOERR,
     "blk hostile: flush with data");
  ok(blk_req(&q, T_GET_ID, 0, 0, 0, true, NULL) == S_IOERR, "blk hostile: GET_ID without room");
  ok(blk_req(&q, 0xffffffffu, 0, blk_data, 512, true, NULL) == S_UNSUPP, "blk hostile: type ~0");
  d[0] = 0x77;
  ok(!(rd(base, 0x70) & 0x40) && blk_req(&q, T_IN, 0, blk_data, 512, true, NULL) == S_OK &&
         d[0] == 0,
     "blk hostile: still serves a valid read");
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  bool zero = fd >= 0 && fstat(fd, &st) == 0 && (uint64_t) st.st_size == sectors * 512;
  static uint8_t chunk[1 << 16];
  for (ssize_t n; zero && (n = read(fd, chunk, sizeof(chunk))) > 0;)
    for (ssize_t i = 0; i < n; i++)
      zero &= chunk[i] == 0;
  close(fd);
  ok(zero, "blk hostile: the disk is still all zeros");
}

/* ---- virtio-vsock ---- */

struct vhdr {
  uint64_t src_cid, dst_cid;
  uint32_t src_port, dst_port, len;
  uint16_t type, op;
  uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
enum {
  OP_REQUEST = 1,
  OP_RESPONSE,
  OP_RST,
  OP_SHUTDOWN,
  OP_RW,
  OP_CREDIT_UPDATE,
  OP_CREDIT_REQUEST
};
#define RXN 32
#define RXBUF (44 + 4096)
#define GBUF 16384u /* our (the guest's) buf_alloc */

struct vs {
  uint64_t base;
  struct dq rx, tx, ev;
  uint64_t rxbufs, txhdr, txdata;
  bool replenish;
  unsigned held[RXN], nheld;
};
static struct vs vs;
static char uds[108];

static void vs_post(uint16_t id)
{
  dq_desc(&vs.rx, id, vs.rxbufs + (uint64_t) id * RXBUF, RXBUF, F_WRITE, 0);
  dq_offer(&vs.rx, id);
}

static bool vs_start(void)
{
  uint32_t f;
  if (!dev_start(vs.base, 19, &f))
    return false;
  bool r = dq_setup(&vs.rx, vs.base, 0, 64) && dq_setup(&vs.tx, vs.base, 1, 64) &&
           dq_setup(&vs.ev, vs.base, 2, 64);
  wr(vs.base, 0x70, 3 | 8 | 4);
  for (uint16_t i = 0; i < RXN; i++)
    vs_post(i);
  dq_notify(&vs.rx);
  vs.replenish = true;
  vs.nheld = 0;
  return r;
}

/* Send one packet (header and payload as two descriptors) and wait for the device to take it. */
static void vs_send(uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t flags,
                    uint32_t fwd_cnt, const void *data, uint32_t len)
{
  struct vhdr h = {3, 2, src_port, dst_port, len, 1, op, flags, GBUF, fwd_cnt};
  memcpy(G(vs.txhdr), &h, sizeof(h));
  dq_desc(&vs.tx, 0, vs.txhdr, sizeof(h), len ? F_NEXT : 0, 1);
  if (len) {
    memcpy(G(vs.txdata), data, len);
    dq_desc(&vs.tx, 1, vs.txdata, len, 0, 0);
  }
  dq_offer(&vs.tx, 0);
  dq_notify(&vs.tx);
  uint32_t id, l;
  dq_reap(&vs.tx, &id, &l, 5000);
}

static void vs_send_hdr(const struct vhdr *h, uint32_t payload)
{
  memcpy(G(vs.txhdr), h, sizeof(*h));
  dq_desc(&vs.tx, 0, vs.txhdr, (uint32_t) sizeof(*h) + payload, 0, 0);
  dq_offer(&vs.tx, 0);
  dq_notify(&vs.tx);
  uint32_t id, l;
  dq_reap(&vs.tx, &id, &l, 5000);
}

/* The next packet from the device (payload copied to data, up to 4096). */
static bool vs_recv(struct vhdr *h, uint8_t *data, int timeout_ms)
{
  uint32_t id, len;
  if (!dq_reap(&vs.rx, &id, &len, timeout_ms))
    return false;
  if (id >= RXN || len < sizeof(*h) || len > RXBUF) {
    memset(h, 0, sizeof(*h));
  } else {
    memcpy(h, G(vs.rxbufs + (uint64_t) id * RXBUF), sizeof(*h));
    if (data)
      memcpy(data, G(vs.rxbufs + (uint64_t) id * RXBUF + sizeof(*h)), len - sizeof(*h));
  }
  if (vs.replenish) {
    vs_post((uint16_t) id);
    dq_notify(&vs.rx);
  } else {
    vs.held[vs.nheld++] = id;
  }
  return true;
}

static int unix_listen(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  unlink(path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int unix_connect(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int accept_wait(int lfd)
{
  struct pollfd p = {lfd, POLLIN, 0};
  if (poll(&p, 1, 5000) != 1)
    return -1;
  return accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

#define TOTAL (1u << 20)

/* Guest → host: connect to port 1234, then 1 MiB each way with credit on both sides. */
static void test_vsock_guest_to_host(void)
{
  char path[128];
  snprintf(path, sizeof(path), "%s_1234", uds);
  int lfd = unix_listen(path);
  struct vhdr h;
  static uint8_t pkt[4096];
  vs_send(100, 5555, OP_REQUEST, 0, 0, NULL, 0);
  ok(vs_recv(&h, NULL, 5000) && h.op == OP_RST && h.src_port == 5555 && h.dst_port == 100 &&
         h.src_cid == 2 && h.dst_cid == 3,
     "vsock: connect to a host port nobody listens on: RST");
  vs_send(101, 1234, OP_REQUEST, 0, 0, NULL, 0);
  ok(vs_recv(&h, NULL, 5000) && h.op == OP_RESPONSE && h.src_port == 1234 && h.dst_port == 101 &&
         h.buf_alloc > 0,
     "vsock: connect to host port 1234 (unix socket %s): RESPONSE", path);
  int hfd = accept_wait(lfd);
  ok(hfd >= 0, "vsock: the host's listener got the connection");
  /* Guest → host, 1 MiB, respecting the device's credit; the host reads only when the guest is
   * stalled, so the device buffers and sends credit updates. */
  uint32_t peer_alloc = h.buf_alloc, peer_fwd = h.fwd_cnt, sent = 0, got = 0, stalls = 0;
  bool data_ok = true, over_credit = false, rst = false;
  static uint8_t hbuf[1 << 16];
  uint64_t end = now_ms() + 20000;
  while ((sent < TOTAL || got < TOTAL) && now_ms() < end && !rst) {
    uint32_t credit = peer_alloc - (sent - peer_fwd);
    if (sent < TOTAL && credit > 0) {
      uint32_t n = TOTAL - sent < 4096 ? TOTAL - sent : 4096;
      if (n > credit)
        n = credit;
      for (uint32_t i = 0; i < n; i++)
        pkt[i] = pattern(sent + i);
      vs_send(101, 1234, OP_RW, 0, 0, pkt, n);
      sent += n;
    } else {
      stalls += sent < TOTAL;
      ssize_t r = read(hfd, hbuf, sizeof(hbuf));
      for (ssize_t i = 0; i < r; i++)
        data_ok &= hbuf[i] == pattern(got + (uint32_t) i);
      if (r > 0)
        got += (uint32_t) r;
    }
    while (vs_recv(&h, NULL, sent < TOTAL && credit == 0 ? 5 : 0)) {
      if (h.dst_port != 101)
        continue;
      rst |= h.op == OP_RST;
      peer_alloc = h.buf_alloc;
      peer_fwd = h.fwd_cnt;
    }
  }
  ok(sent == TOTAL && got == TOTAL && data_ok && !rst,
     "vsock: 1 MiB guest → host intact (%u sent, %u read, %u credit stalls)", sent, got, stalls);
  ok(stalls > 0, "vsock: the guest ran out of credit and got it back (%u stalls)", stalls);
  /* Host → guest, 1 MiB: our buf_alloc is 16 KiB and we only give credit back when the device
   * asks (CREDIT_REQUEST), so the device must stop at the credit each time. */
  uint32_t hsent = 0, rcvd = 0, fwd = 0, requests = 0;
  data_ok = true;
  end = now_ms() + 20000;
  while (rcvd < TOTAL && now_ms() < end && !rst && !over_credit) {
    if (hsent < TOTAL) {
      uint32_t n = TOTAL - hsent < sizeof(hbuf) ? TOTAL - hsent : sizeof(hbuf);
      for (uint32_t i = 0; i < n; i++)
        hbuf[i] = pattern(hsent + i);
      ssize_t w = send(hfd, hbuf, n, MSG_DONTWAIT);
      if (w > 0)
        hsent += (uint32_t) w;
    }
    while (vs_recv(&h, pkt, 2)) {
      if (h.dst_port != 101)
        continue;
      if (h.op == OP_RW) {
        over_credit |= rcvd + h.len - fwd > GBUF;
        for (uint32_t i = 0; i < h.len; i++)
          data_ok &= pkt[i] == pattern(rcvd + i);
        rcvd += h.len;
      } else if (h.op == OP_CREDIT_REQUEST) {
        requests++;
        fwd = rcvd;
        vs_send(101, 1234, OP_CREDIT_UPDATE, 0, fwd, NULL, 0);
      } else if (h.op == OP_RST) {
        rst = true;
      }
    }
  }
  ok(rcvd == TOTAL && data_ok && !over_credit && !rst,
     "vsock: 1 MiB host → guest intact, never past our 16 KiB credit (%u bytes)", rcvd);
  ok(requests >= TOTAL / GBUF - 1, "vsock: the device asked for credit (%u CREDIT_REQUESTs)",
     requests);
  /* Orderly shutdown: the host half-closes, the guest shuts both ways, the device answers RST
   * and closes the socket. */
  shutdown(hfd, SHUT_WR);
  bool got_shutdown = false;
  while (vs_recv(&h, NULL, 2000))
    if (h.op == OP_SHUTDOWN && h.dst_port == 101) {
      got_shutdown = (h.flags & 2) != 0;
      break;
    }
  ok(got_shutdown, "vsock: host EOF reaches the guest as SHUTDOWN(SEND)");
  vs_send(101, 1234, OP_SHUTDOWN, 3, fwd, NULL, 0);
  bool got_rst = false;
  while (vs_recv(&h, NULL, 2000))
    if (h.dst_port == 101) {
      got_rst = h.op == OP_RST;
      break;
    }
  struct pollfd p = {hfd, POLLIN, 0};
  ok(got_rst && poll(&p, 1, 2000) == 1 && read(hfd, hbuf, 1) == 0,
     "vsock: guest SHUTDOWN(both): RST, and the host reads EOF");
  close(hfd);
  close(lfd);
}

/* Host → guest: CONNECT <port> on the VM's socket. */
static void test_vsock_host_to_guest(void)
{
  struct vhdr h;
  static uint8_t pkt[4096];
  int fd = unix_connect(uds);
  ok(fd >= 0, "vsock: host connects to %s", uds);
  const char hello[] = "CONNECT 2000\nhello";
  write_all(fd, hello, sizeof(hello) - 1);
  ok(vs_recv(&h, NULL, 5000) && h.op == OP_REQUEST && h.dst_port == 2000 && h.src_cid == 2 &&
         h.src_port >= (1u << 30),
     "vsock: the guest gets REQUEST for port 2000 from host port %u", h.src_port);
  uint32_t hport = h.src_port;
  vs_send(2000, hport, OP_RESPONSE, 0, 0, NULL, 0);
  char line[32] = {0};
  struct pollfd p = {fd, POLLIN, 0};
  poll(&p, 1, 5000);
  ssize_t n = read(fd, line, sizeof(line) - 1);
  char want[32];
  snprintf(want, sizeof(want), "OK %u\n", hport);
  ok(n > 0 && strcmp(line, want) == 0, "vsock: host reads \"OK %u\"", hport);
  ok(vs_recv(&h, pkt, 5000) && h.op == OP_RW && h.len == 5 && memcmp(pkt, "hello", 5) == 0,
     "vsock: bytes written right after the CONNECT line arrive");
  vs_send(2000, hport, OP_RW, 0, 5, "world", 5);
  poll(&p, 1, 5000);
  memset(line, 0, sizeof(line));
  ok(read(fd, line, sizeof(line)) == 5 && strcmp(line, "world") == 0, "vsock: guest → host data");
  close(fd);
  bool shut = false;
  while (vs_recv(&h, NULL, 2000))
    if (h.dst_port == 2000 && h.op == OP_SHUTDOWN) {
      shut = (h.flags & 2) != 0;
      break;
    }
  ok(shut, "vsock: the host's close reaches the guest as SHUTDOWN");
  vs_send(2000, hport, OP_RST, 0, 0, NULL, 0);
  /* Bad handshakes are closed. */
  const char *bad[] = {"HELLO\n", "CONNECT 99999999999\n", "CONNECT \n",
                       "CONNECT 1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
  for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
    fd = unix_connect(uds);
    write_all(fd, bad[i], strlen(bad[i]));
    p = (struct pollfd){fd, POLLIN, 0};
    ok(poll(&p, 1, 5000) == 1 && read(fd, line, 1) <= 0, "vsock: bad handshake %u closed", i);
    close(fd);
  }
  /* The guest refuses: the host connection is closed. */
  fd = unix_connect(uds);
  write_all(fd, "CONNECT 7\n", 10);
  ok(vs_recv(&h, NULL, 5000) && h.op == OP_REQUEST && h.dst_port == 7, "vsock: REQUEST port 7");
  vs_send(7, h.src_port, OP_RST, 0, 0, NULL, 0);
  p = (struct pollfd){fd, POLLIN, 0};
  ok(poll(&p, 1, 5000) == 1 && read(fd, line, 1) <= 0, "vsock: guest RST closes the host side");
  close(fd);
}

static void test_vsock_hostile(void)
{
  struct vhdr h, r;
  unsigned rsts = 0;
  /* Each of these earns one RST. */
  const struct vhdr bad[] = {
      {3, 2, 300, 9, 1000, 1, OP_RW, 0, GBUF, 0},          /* len past the payload */
      {3, 2, 301, 9, 0xffffffffu, 1, OP_RW, 0, GBUF, 0},   /* huge len */
      {9, 2, 302, 9, 0, 1, OP_REQUEST, 0, GBUF, 0},        /* not our CID */
      {3, 7, 303, 9, 0, 1, OP_REQUEST, 0, GBUF, 0},        /* not the host's CID */
      {3, 2, 304, 9, 0, 2, OP_REQUEST, 0, GBUF, 0},        /* SEQPACKET */
      {3, 2, 305, 9, 0, 1, 99, 0, GBUF, 0},                /* unknown op */
      {3, 2, 306, 9, 0, 1, OP_RW, 0, GBUF, 0},             /* data for no connection */
      {3, 2, 307, 9, 0, 1, OP_CREDIT_REQUEST, 0, GBUF, 0}, /* for no connection */
  };
  for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
    vs_send_hdr(&bad[i], 10);
    bool got = vs_recv(&r, NULL, 2000) && r.op == OP_RST && r.dst_port == bad[i].src_port &&
               r.src_port == 9;
    rsts += got;
    if (i == 3)
      ok(got && r.src_cid == 7, "vsock hostile: RST comes from the CID asked for");
  }
  ok(rsts == ARRAY_SIZE(bad), "vsock hostile: %u bogus packets, %u RSTs",
     (unsigned) ARRAY_SIZE(bad), rsts);
  /* No answer: a short header, a header in a writable buffer, an RST for nothing. */
  h = (struct vhdr){3, 2, 310, 9, 0, 1, OP_RST, 0, GBUF, 0};
  vs_send_hdr(&h, 0);
  memcpy(G(vs.txhdr), &h, sizeof(h));
  dq_desc(&vs.tx, 0, vs.txhdr, 20, 0, 0);
  dq_offer(&vs.tx, 0);
  dq_notify(&vs.tx);
  dq_desc(&vs.tx, 1, vs.txhdr, 44, F_WRITE, 0);
  dq_offer(&vs.tx, 1);
  dq_notify(&vs.tx);
  uint32_t id, l;
  dq_reap(&vs.tx, &id, &l, 2000);
  dq_reap(&vs.tx, &id, &l, 2000);
  ok(!vs_recv(&r, NULL, 200), "vsock hostile: no answer to a short header, a writable-only chain, "
                              "an RST for nothing");
  /* Flood: 3000 REQUESTs for dead ports while we hold back rx buffers. */
  vs.replenish = false;
  for (unsigned i = 0; i < 3000; i++)
    vs_send(1000 + i, 40000, OP_REQUEST, 0, 0, NULL, 0);
  unsigned answered = 0;
  while (vs_recv(&r, NULL, 100))
    answered++;
  vs.replenish = true;
  for (unsigned i = 0; i < vs.nheld; i++)
    vs_post((uint16_t) vs.held[i]);
  vs.nheld = 0;
  dq_notify(&vs.rx);
  while (vs_recv(&r, NULL, 200))
    answered++;
  ok(answered > 0 && answered <= RXN + 64,
     "vsock hostile: a flood of 3000 REQUESTs: %u RSTs (bounded queue)", answered);
  /* The connection table is bounded: 1100 connections to a listener. */
  char path[128];
  snprintf(path, sizeof(path), "%s_4321", uds);
  int lfd = unix_listen(path);
  unsigned responses = 0, refused = 0, naccepted = 0;
  static int accepted[1100];
  for (unsigned i = 0; i < 1100; i++) {
    vs_send(20000 + i, 4321, OP_REQUEST, 0, 0, NULL, 0);
    if (vs_recv(&r, NULL, 2000)) {
      responses += r.op == OP_RESPONSE;
      refused += r.op == OP_RST;
    }
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0)
      accepted[naccepted++] = fd;
  }
  ok(responses == 1024 && refused == 76, "vsock hostile: 1100 connections: %u accepted, %u refused",
     responses, refused);
  /* A guest sending past its credit to a host that does not read gets reset. */
  vs_send(20000, 4321, OP_RST, 0, 0, NULL, 0); /* make room */
  vs_send(30000, 4321, OP_REQUEST, 0, 0, NULL, 0);
  ok(vs_recv(&r, NULL, 2000) && r.op == OP_RESPONSE, "vsock hostile: one more after an RST");
  static uint8_t big[65536];
  bool reset = false;
  unsigned pkts = 0;
  for (; pkts < 200 && !reset; pkts++) {
    vs_send(30000, 4321, OP_RW, 0, 0, big, sizeof(big));
    while (!reset && vs_recv(&r, NULL, 0))
      reset = r.op == OP_RST && r.dst_port == 30000;
  }
  ok(reset, "vsock hostile: writing past the credit: RST after %u × 64 KiB", pkts);
  /* A device reset drops every connection; the device works afterwards. */
  wr(vs.base, 0x70, 0);
  ok(vs_start(), "vsock: restarted after a reset");
  vs_send(40000, 4321, OP_REQUEST, 0, 0, NULL, 0);
  ok(vs_recv(&r, NULL, 2000) && r.op == OP_RESPONSE && r.dst_port == 40000,
     "vsock: after the reset the table is empty again");
  close(lfd);
  for (unsigned i = 0; i < naccepted; i++)
    close(accepted[i]);
}

int main(void)
{
  _cleanup_error_ struct isola_error *err = NULL;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl); /* 1024 vsock connections need their sockets */
  char dir[] = "/tmp/isola-test-vmm-devices-XXXXXX";
  if (!mkdtemp(dir))
    return 1;
  const uint64_t sectors = 2048, big_sectors = (64u << 20) / 512;
  _cleanup_free_ char *rw = make_disk(dir, "disk-rw.img", sectors * 512, true);
  _cleanup_free_ char *ro = make_disk(dir, "disk-ro.img", sectors * 512, true);
  _cleanup_free_ char *hostile = make_disk(dir, "disk-big.img", big_sectors * 512, false);
  snprintf(uds, sizeof(uds), "%s/vsock.sock", dir);

  ok(vm_create(&vm, MEM, 1, &err) == 0, "vm_create without KVM");
  ok(virtio_blk_create(vm, "/nonexistent/disk", false, &err) < 0 &&
         strstr(err->msg, "\"/nonexistent/disk\""),
     "blk: a missing file: %s", err ? err->msg : "");
  isola_error_free(&err);
  ok(virtio_blk_create(vm, "/dev/null", false, &err) < 0 && strstr(err->msg, "not a regular file"),
     "blk: a character device refused: %s", err ? err->msg : "");
  isola_error_free(&err);
  char longp[200];
  memset(longp, 'a', sizeof(longp) - 1);
  longp[sizeof(longp) - 1] = 0;
  ok(virtio_vsock_create(vm, longp, &err) == -ENAMETOOLONG, "vsock: a path too long refused");
  isola_error_free(&err);
  ok(virtio_blk_create(vm, rw, false, &err) == 0 && virtio_blk_create(vm, ro, true, &err) == 0 &&
         virtio_blk_create(vm, hostile, false, &err) == 0 &&
         virtio_vsock_create(vm, uds, &err) == 0,
     "devices created: %s", err ? err->msg : "");
  ok(virtio_vsock_create(vm, uds, &err) < 0 && strstr(err->msg, "cannot bind"),
     "vsock: the socket path already in use: %s", err ? err->msg : "");
  isola_error_free(&err);
  ok(loop_start(vm->loop, &err) == 0, "event loop running");
  blk_hdr = galloc(4096);
  blk_status = galloc(4096);
  blk_data = galloc(3 << 20);

  uint64_t base = VM_MMIO_BASE;
  test_blk_rw(base, rw, sectors);
  test_blk_ro(base + VIRTIO_MMIO_STRIDE, ro, sectors);
  test_blk_hostile(base + 2 * VIRTIO_MMIO_STRIDE, hostile, big_sectors);

  vs.base = base + 3 * VIRTIO_MMIO_STRIDE;
  vs.rxbufs = galloc((uint64_t) RXN * RXBUF);
  vs.txhdr = galloc(4096);
  vs.txdata = galloc(65536);
  ok(vs_start(), "vsock: device 19, three queues");
  ok(rd(vs.base, 0x100) == 3 && rd(vs.base, 0x104) == 0, "vsock: guest CID 3");
  test_vsock_guest_to_host();
  test_vsock_host_to_guest();
  test_vsock_hostile();

  loop_stop(vm->loop);
  vm_destroy(vm);
  struct stat st;
  ok(stat(uds, &st) < 0, "vsock: the socket is removed with the VM");
  rm_rf_at(AT_FDCWD, dir);
  done_testing();
}
