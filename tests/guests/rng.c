/* virtio-rng driven by the guest itself: find it on the command line, negotiate VERSION_1,
 * set up a queue, ask for random bytes (a plain buffer, then an indirect table of two), check
 * they arrived (used ring, length, not all zero) and that the interrupt status says so. */
#include "vio.h"

static struct vring ring __attribute__((aligned(4096)));
static uint8_t buf[64], buf2[32], buf3[32];
static struct vdesc itable[2] __attribute__((aligned(16)));

static bool nonzero(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return true;
  return false;
}

void guest_main(void)
{
  uint64_t base = vio_find();
  CHECK(1, base != 0);
  CHECK(2, vio_r(base, VIRTIO_MAGIC) == 0x74726976);
  CHECK(3, vio_r(base, VIRTIO_VERSION) == 2);
  CHECK(4, vio_r(base, VIRTIO_DEVICE_ID) == 4);
  CHECK(5, vio_negotiate(base, 0));
  vio_w(base, VIRTIO_QUEUE_SEL, 0);
  CHECK(6, vio_r(base, VIRTIO_QUEUE_NUM_MAX) >= QSIZE);
  CHECK(7, vio_ring_setup(base, &ring));
  vio_w(base, VIRTIO_STATUS, 3 | 8 | 4); /* DRIVER_OK */

  ring.desc[0] = (struct vdesc){(uint64_t) buf, sizeof(buf), DESC_WRITE, 0};
  vio_submit(base, &ring, 0);
  CHECK(8, wait_u16(&ring.used.idx, 1, 50000000ull));
  CHECK(9, ring.used.ring[0].id == 0 && ring.used.ring[0].len == sizeof(buf));
  CHECK(10, nonzero(buf, sizeof(buf)));
  CHECK(11, vio_r(base, VIRTIO_INT_STATUS) & 1);
  vio_w(base, VIRTIO_INT_ACK, 1);

  itable[0] = (struct vdesc){(uint64_t) buf2, sizeof(buf2), DESC_WRITE | DESC_NEXT, 1};
  itable[1] = (struct vdesc){(uint64_t) buf3, sizeof(buf3), DESC_WRITE, 0};
  ring.desc[1] = (struct vdesc){(uint64_t) itable, sizeof(itable), DESC_INDIRECT, 0};
  vio_submit(base, &ring, 1);
  CHECK(12, wait_u16(&ring.used.idx, 2, 50000000ull));
  CHECK(13, ring.used.ring[1].id == 1 && ring.used.ring[1].len == 64);
  CHECK(14, nonzero(buf2, sizeof(buf2)) && nonzero(buf3, sizeof(buf3)));
  CHECK(15, !(vio_r(base, VIRTIO_STATUS) & 0x40));
  puts_serial("rng: ok\n");
  pass();
}
