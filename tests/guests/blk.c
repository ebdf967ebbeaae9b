/* virtio-blk driven by the guest itself; "test=" picks the disk the host gave us:
 *   1  a writable disk of `sectors=` sectors holding pattern(offset): config space, reads
 *      (several framings), writes (sectors 16-17 := 0xa5 ^ index), range checks, flush,
 *      GET_ID (printed for the host to compare), an unknown type;
 *   2  the same disk read-only: RO offered, reads work, writes fail with IOERR, flush is fine;
 *   3  a hostile driver against a big empty disk: wrong descriptor directions, short headers,
 *      no status byte, sectors that overflow, an oversized request; each is refused without
 *      touching the disk, and a valid read still works at the end.
 * The host checks the file afterwards. */
#include "vdev.h"

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define F_SIZE_MAX (1u << 1)
#define F_SEG_MAX (1u << 2)
#define F_RO (1u << 5)
#define F_BLK_SIZE (1u << 6)
#define F_FLUSH (1u << 9)

struct req_hdr {
  uint32_t type, reserved;
  uint64_t sector;
};

static struct vq q;
static uint64_t base;
static struct req_hdr hdr __attribute__((aligned(16)));
static uint8_t data[8192] __attribute__((aligned(4096)));
static uint8_t hdr_and_data[16 + 1024] __attribute__((aligned(16)));
static volatile uint8_t status;

static uint8_t pattern(uint64_t off)
{
  return (uint8_t) ((off * 2654435761u) >> 24);
}

/* Submit the chain in q.desc starting at 0 and wait; returns the used length. */
static uint32_t run_chain(unsigned n)
{
  uint32_t id, len;
  vdev_submit(base, 0, &q, 0);
  CHECK(n, vdev_reap(&q, VDEV_WAIT, &id, &len) && id == 0);
  return len;
}

/* The usual framing: header, data (len bytes, writable for IN), status. */
static uint8_t request(unsigned n, uint32_t type, uint64_t sector, void *buf, uint32_t len,
                       bool data_writable)
{
  hdr = (struct req_hdr){type, 0, sector};
  status = 0xee;
  unsigned i = 0;
  q.desc[i] = (struct vdesc){(uint64_t) &hdr, sizeof(hdr), DESC_NEXT, (uint16_t) (i + 1)};
  i++;
  if (len) {
    q.desc[i] = (struct vdesc){(uint64_t) buf, len,
                               (uint16_t) (DESC_NEXT | (data_writable ? DESC_WRITE : 0)),
                               (uint16_t) (i + 1)};
    i++;
  }
  q.desc[i] = (struct vdesc){(uint64_t) &status, 1, DESC_WRITE, 0};
  run_chain(n);
  return status;
}

static void setup(uint32_t want)
{
  base = vdev_find(2);
  CHECK(1, base != 0);
  uint32_t f = vdev_features_lo(base);
  CHECK(2, (f & want) == want);
  CHECK(3, !(f & F_RO) == !cmdline_u64("ro", 0));
  CHECK(4, vio_negotiate(base, f & (F_SIZE_MAX | F_SEG_MAX | F_RO | F_BLK_SIZE | F_FLUSH)));
  CHECK(5, vdev_queue(base, 0, &q));
  vio_w(base, VIRTIO_STATUS, 3 | 8 | 4);
  volatile uint8_t *cfg = (volatile uint8_t *) (base + 0x100);
  uint64_t cap = *(volatile uint32_t *) cfg | (uint64_t) * (volatile uint32_t *) (cfg + 4) << 32;
  CHECK(6, cap == cmdline_u64("sectors", 0));
  CHECK(7, *(volatile uint32_t *) (cfg + 20) == 512); /* blk_size */
  CHECK(8, *(volatile uint32_t *) (cfg + 12) >= 2);   /* seg_max */
  CHECK(9, *(volatile uint32_t *) (cfg + 8) >= 4096); /* size_max */
}

static bool is_pattern(const uint8_t *p, uint64_t off, uint32_t len)
{
  for (uint32_t i = 0; i < len; i++)
    if (p[i] != pattern(off + i))
      return false;
  return true;
}

static void test_rw(uint64_t sectors)
{
  setup(F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_FLUSH);
  /* Read 8 sectors. */
  memset(data, 0, sizeof(data));
  CHECK(10, request(10, T_IN, 0, data, 4096, true) == S_OK);
  CHECK(11, q.used.ring[0].len == 4097);
  CHECK(12, is_pattern(data, 0, 4096));
  /* The last sector, then ranges past the end. */
  CHECK(13, request(13, T_IN, sectors - 1, data, 512, true) == S_OK);
  CHECK(14, is_pattern(data, (sectors - 1) * 512, 512));
  CHECK(15, request(15, T_IN, sectors - 1, data, 1024, true) == S_IOERR);
  CHECK(16, request(16, T_IN, sectors, data, 512, true) == S_IOERR);
  CHECK(17, request(17, T_IN, ~0ull, data, 512, true) == S_IOERR);
  CHECK(18, request(18, T_IN, 1ull << 55, data, 512, true) == S_IOERR); /* × 512 wraps */
  CHECK(19, request(19, T_IN, 0, data, 100, true) == S_IOERR);          /* not whole sectors */
  /* Another framing: data over three descriptors, the status byte at the end of the last. */
  memset(data, 0, sizeof(data));
  hdr = (struct req_hdr){T_IN, 0, 3};
  data[4096 + 2048] = 0xee;
  q.desc[0] = (struct vdesc){(uint64_t) &hdr, sizeof(hdr), DESC_NEXT, 1};
  q.desc[1] = (struct vdesc){(uint64_t) data, 512, DESC_WRITE | DESC_NEXT, 2};
  q.desc[2] = (struct vdesc){(uint64_t) data + 512, 1536, DESC_WRITE | DESC_NEXT, 3};
  q.desc[3] = (struct vdesc){(uint64_t) data + 2048, 2048 + 1, DESC_WRITE, 0};
  CHECK(20, run_chain(20) == 4097);
  CHECK(21, data[4096] == S_OK && is_pattern(data, 3 * 512, 4096));
  /* Write sectors 16-17, header and data in one readable descriptor. */
  struct req_hdr w = {T_OUT, 0, 16};
  memcpy(hdr_and_data, &w, sizeof(w));
  for (unsigned i = 0; i < 1024; i++)
    hdr_and_data[16 + i] = (uint8_t) (0xa5 ^ i);
  status = 0xee;
  q.desc[0] = (struct vdesc){(uint64_t) hdr_and_data, sizeof(hdr_and_data), DESC_NEXT, 1};
  q.desc[1] = (struct vdesc){(uint64_t) &status, 1, DESC_WRITE, 0};
  CHECK(22, run_chain(22) == 1 && status == S_OK);
  memset(data, 0, sizeof(data));
  CHECK(23, request(23, T_IN, 16, data, 1024, true) == S_OK);
  for (unsigned i = 0; i < 1024; i++)
    CHECK(24, data[i] == (uint8_t) (0xa5 ^ i));
  /* Writes that must not happen: partial sector, past the end. */
  CHECK(25, request(25, T_OUT, 20, data, 100, false) == S_IOERR);
  CHECK(26, request(26, T_OUT, sectors - 1, data, 1024, false) == S_IOERR);
  CHECK(27, request(27, T_FLUSH, 0, NULL, 0, false) == S_OK);
  /* GET_ID: up to 20 bytes, printed for the host. */
  memset(data, 0, 64);
  CHECK(28, request(28, T_GET_ID, 0, data, 20, true) == S_OK);
  CHECK(29, data[0] != 0);
  data[20] = 0;
  puts_serial("blk: id=");
  puts_serial((const char *) data);
  puts_serial("\n");
  CHECK(30, request(30, 77, 0, data, 512, true) == S_UNSUPP);
  CHECK(31, !(vio_r(base, VIRTIO_STATUS) & 0x40));
  puts_serial("blk: rw ok\n");
  pass();
}

static void test_ro(uint64_t sectors)
{
  setup(F_RO | F_FLUSH);
  CHECK(40, request(40, T_IN, 8, data, 4096, true) == S_OK && is_pattern(data, 8 * 512, 4096));
  for (unsigned i = 0; i < 4096; i++)
    data[i] = 0x5a;
  CHECK(41, request(41, T_OUT, 8, data, 4096, false) == S_IOERR);
  CHECK(42, request(42, T_OUT, 0, data, 512, false) == S_IOERR);
  CHECK(43, request(43, T_FLUSH, 0, NULL, 0, false) == S_OK);
  CHECK(44, request(44, T_IN, 8, data, 4096, true) == S_OK && is_pattern(data, 8 * 512, 4096));
  puts_serial("blk: ro ok\n");
  pass();
}

static void test_hostile(uint64_t sectors)
{
  setup(F_FLUSH);
  /* The header in a writable descriptor. */
  hdr = (struct req_hdr){T_OUT, 0, 0};
  status = 0xee;
  q.desc[0] = (struct vdesc){(uint64_t) &hdr, sizeof(hdr), DESC_WRITE | DESC_NEXT, 1};
  q.desc[1] = (struct vdesc){(uint64_t) &status, 1, DESC_WRITE, 0};
  run_chain(50);
  CHECK(51, status == S_IOERR);
  /* Read data in a readable descriptor; write data in a writable one. */
  for (unsigned i = 0; i < 512; i++)
    data[i] = 0x77;
  CHECK(52, request(52, T_IN, 0, data, 512, false) == S_IOERR);
  CHECK(53, request(53, T_OUT, 0, data, 512, true) == S_IOERR);
  CHECK(54, data[0] == 0x77 && data[511] == 0x77);
  /* No writable byte for the status: completed with nothing written. */
  hdr = (struct req_hdr){T_OUT, 0, 0};
  status = 0xee;
  q.desc[0] = (struct vdesc){(uint64_t) &hdr, sizeof(hdr), DESC_NEXT, 1};
  q.desc[1] = (struct vdesc){(uint64_t) data, 512, 0, 0};
  CHECK(55, run_chain(55) == 0 && status == 0xee);
  /* A short header (8 bytes). */
  q.desc[0] = (struct vdesc){(uint64_t) &hdr, 8, DESC_NEXT, 1};
  q.desc[1] = (struct vdesc){(uint64_t) data, 512, DESC_WRITE | DESC_NEXT, 2};
  q.desc[2] = (struct vdesc){(uint64_t) &status, 1, DESC_WRITE, 0};
  run_chain(56);
  CHECK(57, status == S_IOERR);
  /* Sectors whose byte offset or end overflows 64 bits, writes included. */
  CHECK(58, request(58, T_OUT, ~0ull, data, 512, false) == S_IOERR);
  CHECK(59, request(59, T_OUT, 1ull << 55, data, 512, false) == S_IOERR);
  CHECK(60, request(60, T_OUT, (1ull << 55) - 1, data, 1024, false) == S_IOERR);
  CHECK(61, request(61, T_OUT, sectors, data, 512, false) == S_IOERR);
  CHECK(62, request(62, T_IN, ~0ull - 1, data, 1024, true) == S_IOERR);
  /* One request of 48 MiB, within the disk and guest RAM but past SEG_MAX × SIZE_MAX. */
  CHECK(63, request(63, T_IN, 0, (void *) (32ull << 20), 48u << 20, true) == S_IOERR);
  /* Extra readable bytes on a flush; GET_ID with no room for the ID. */
  CHECK(64, request(64, T_FLUSH, 0, data, 512, false) == S_IOERR);
  CHECK(65, request(65, T_GET_ID, 0, data, 0, true) == S_IOERR);
  CHECK(66, request(66, 0xffffffffu, 0, data, 512, true) == S_UNSUPP);
  /* Still a working device. */
  CHECK(67, !(vio_r(base, VIRTIO_STATUS) & 0x40));
  data[0] = 0x77;
  CHECK(68, request(68, T_IN, 0, data, 512, true) == S_OK && data[0] == 0);
  puts_serial("blk: hostile ok\n");
  pass();
}

void guest_main(void)
{
  uint64_t sectors = cmdline_u64("sectors", 0);
  switch (cmdline_u64("test", 0)) {
  case 1:
    test_rw(sectors);
    break;
  case 2:
    test_ro(sectors);
    break;
  case 3:
    test_hostile(sectors);
    break;
  default:
    fail(99, "no test= on the command line");
  }
}
