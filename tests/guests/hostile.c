/* A hostile driver: each scenario breaks the virtio protocol in one way and expects the device
 * to give up on the queue (DEVICE_NEEDS_RESET, nothing in the used ring) or to refuse the queue
 * (QueueReady reads 0), then resets it and goes on; MMIO pokes at nothing and at odd widths
 * are ignored. At the end a valid request must still work: the monitor survived all of it. */
#include "vio.h"

static struct vring ring __attribute__((aligned(4096)));
static uint8_t buf[64];
static struct vdesc itable[4] __attribute__((aligned(16)));

static bool wait_needs_reset(uint64_t base)
{
  for (uint64_t i = 0; i < 50000000ull; i++) {
    if (vio_r(base, VIRTIO_STATUS) & 0x40)
      return true;
    __asm__ volatile("pause");
  }
  return false;
}

static void start(uint64_t base, unsigned n)
{
  CHECK(n, vio_negotiate(base, 0) && vio_ring_setup(base, &ring));
  vio_w(base, VIRTIO_STATUS, 3 | 8 | 4);
}

/* Scenario n: set up descriptors that break the rules, submit head 0, expect the device to
 * flag NEEDS_RESET without completing anything. */
static void chain_scenario(uint64_t base, unsigned n)
{
  uint64_t top = ram_top();
  start(base, 20 + n);
  struct vdesc *d = ring.desc;
  switch (n) {
  case 0: /* a loop of two descriptors */
    d[0] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE | DESC_NEXT, 1};
    d[1] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE | DESC_NEXT, 0};
    break;
  case 1: /* a descriptor pointing to itself */
    d[0] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE | DESC_NEXT, 0};
    break;
  case 2: /* a buffer outside guest memory */
    d[0] = (struct vdesc){0xfffff000000ull, 16, DESC_WRITE, 0};
    break;
  case 3: /* a buffer that straddles the end of RAM */
    d[0] = (struct vdesc){top - 8, 16, DESC_WRITE, 0};
    break;
  case 4: /* addr + len overflows 64 bits */
    d[0] = (struct vdesc){0xfffffffffffffff0ull, 0x20, DESC_WRITE, 0};
    break;
  case 5: /* a huge length */
    d[0] = (struct vdesc){(uint64_t) buf, 0xffffffffu, DESC_WRITE, 0};
    break;
  case 6: /* next index past the queue */
    d[0] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE | DESC_NEXT, 200};
    break;
  case 7: /* readable after writable */
    d[0] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE | DESC_NEXT, 1};
    d[1] = (struct vdesc){(uint64_t) buf, 16, 0, 0};
    break;
  case 8: /* an indirect table that loops */
    itable[0] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE | DESC_NEXT, 1};
    itable[1] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE | DESC_NEXT, 0};
    d[0] = (struct vdesc){(uint64_t) itable, 2 * sizeof(struct vdesc), DESC_INDIRECT, 0};
    break;
  case 9: /* a nested indirect table */
    itable[0] = (struct vdesc){(uint64_t) itable, sizeof(itable), DESC_INDIRECT, 0};
    d[0] = (struct vdesc){(uint64_t) itable, sizeof(itable), DESC_INDIRECT, 0};
    break;
  case 10: /* an indirect table of a length that is not a multiple of 16 */
    itable[0] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE, 0};
    d[0] = (struct vdesc){(uint64_t) itable, 17, DESC_INDIRECT, 0};
    break;
  case 11: /* an indirect table outside RAM */
    d[0] = (struct vdesc){0xffffffff000ull, 64, DESC_INDIRECT, 0};
    break;
  case 12: /* an indirect table of a huge length */
    d[0] = (struct vdesc){(uint64_t) itable, 0xfffffff0u, DESC_INDIRECT, 0};
    break;
  case 13: /* indirect with NEXT */
    itable[0] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE, 0};
    d[0] = (struct vdesc){(uint64_t) itable, 16, DESC_INDIRECT | DESC_NEXT, 1};
    d[1] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE, 0};
    break;
  case 14: /* avail idx jumps by more than the queue size */
    d[0] = (struct vdesc){(uint64_t) buf, 16, DESC_WRITE, 0};
    ring.avail.idx = 100;
    barrier();
    vio_w(base, VIRTIO_QUEUE_NOTIFY, 0);
    CHECK(40 + n, wait_needs_reset(base));
    return;
  case 15: /* a head index past the queue */
    ring.avail.ring[0] = 300;
    barrier();
    ring.avail.idx = 1;
    barrier();
    vio_w(base, VIRTIO_QUEUE_NOTIFY, 0);
    CHECK(40 + n, wait_needs_reset(base));
    CHECK(60 + n, ring.used.idx == 0);
    return;
  default:
    return;
  }
  vio_submit(base, &ring, 0);
  CHECK(40 + n, wait_needs_reset(base));
  CHECK(60 + n, ring.used.idx == 0);
}

/* Queue parameters the transport must refuse: QueueReady stays 0. */
static void queue_scenario(uint64_t base, unsigned n)
{
  CHECK(80 + n, vio_negotiate(base, 0));
  uint64_t d = (uint64_t) ring.desc, a = (uint64_t) &ring.avail, u = (uint64_t) &ring.used;
  bool ready = true;
  switch (n) {
  case 0:
    ready = vio_queue(base, 0, d, a, u);
    break;
  case 1:
    ready = vio_queue(base, 3, d, a, u);
    break;
  case 2:
    ready = vio_queue(base, 4096, d, a, u); /* > QueueNumMax */
    break;
  case 3:
    ready = vio_queue(base, 0x10008, d, a, u); /* truncated to 8 would be wrong */
    break;
  case 4:
    ready = vio_queue(base, QSIZE, 0xfffff0000000ull, a, u);
    break;
  case 5:
    ready = vio_queue(base, QSIZE, d, ram_top() - 4, u);
    break;
  case 6:
    ready = vio_queue(base, QSIZE, d + 8, a, u); /* misaligned */
    break;
  default:
    break;
  }
  CHECK(90 + n, !ready);
}

void guest_main(void)
{
  uint64_t base = vio_find();
  CHECK(1, base != 0 && vio_r(base, VIRTIO_MAGIC) == 0x74726976);

  /* Nothing there: reads see all ones (isola-vmm's choice; other_vmm=1 skips it), writes
   * vanish. */
  CHECK(2, cmdline_u64("other_vmm", 0) || mmio_read32(0xd0100000ull) == 0xffffffffu);
  mmio_write32(0xd0100000ull, 0xdeadbeef);
  mmio_write32(0xfed00000ull, 0xdeadbeef); /* no HPET */
  /* Registers are 32 bits wide: byte accesses are ignored, config space is empty. */
  *(volatile uint8_t *) (base + VIRTIO_STATUS) = 0xff;
  CHECK(3, *(volatile uint8_t *) (base + VIRTIO_MAGIC) == 0);
  CHECK(4, vio_r(base, 0x100) == 0 && vio_r(base, 0xffc) == 0);
  /* Features we were not offered are refused at FEATURES_OK. */
  vio_w(base, VIRTIO_STATUS, 0);
  vio_w(base, VIRTIO_STATUS, 3);
  vio_w(base, VIRTIO_DRV_FEATURES_SEL, 0);
  vio_w(base, VIRTIO_DRV_FEATURES, 0x1); /* bit 0: not offered by virtio-rng */
  vio_w(base, VIRTIO_DRV_FEATURES_SEL, 1);
  vio_w(base, VIRTIO_DRV_FEATURES, 1);
  vio_w(base, VIRTIO_STATUS, 3 | 8);
  CHECK(5, !(vio_r(base, VIRTIO_STATUS) & 8));
  /* A notify for a queue that does not exist, and for one that is not ready. */
  vio_w(base, VIRTIO_QUEUE_NOTIFY, 7);
  vio_w(base, VIRTIO_QUEUE_NOTIFY, 0);
  /* Selecting a queue that does not exist. */
  vio_w(base, VIRTIO_QUEUE_SEL, 5);
  CHECK(6, vio_r(base, VIRTIO_QUEUE_NUM_MAX) == 0);

  for (unsigned n = 0; n <= 15; n++)
    chain_scenario(base, n);
  for (unsigned n = 0; n <= 6; n++)
    queue_scenario(base, n);

  /* After all that, the device still serves a well-behaved driver. */
  start(base, 7);
  ring.desc[0] = (struct vdesc){(uint64_t) buf, sizeof(buf), DESC_WRITE, 0};
  vio_submit(base, &ring, 0);
  CHECK(8, wait_u16(&ring.used.idx, 1, 50000000ull));
  CHECK(9, ring.used.ring[0].len == sizeof(buf));
  puts_serial("hostile: survived\n");
  pass();
}
