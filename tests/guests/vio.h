/* A minimal virtio-mmio (version 2) driver for the test guests: find the device on the command
 * line, negotiate VERSION_1, set up queue 0 with caller-chosen (possibly hostile) parameters. */
#pragma once
#include "guest.h"

#define VIRTIO_MAGIC 0x000
#define VIRTIO_VERSION 0x004
#define VIRTIO_DEVICE_ID 0x008
#define VIRTIO_DEV_FEATURES 0x010
#define VIRTIO_DEV_FEATURES_SEL 0x014
#define VIRTIO_DRV_FEATURES 0x020
#define VIRTIO_DRV_FEATURES_SEL 0x024
#define VIRTIO_QUEUE_SEL 0x030
#define VIRTIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_QUEUE_NUM 0x038
#define VIRTIO_QUEUE_READY 0x044
#define VIRTIO_QUEUE_NOTIFY 0x050
#define VIRTIO_INT_STATUS 0x060
#define VIRTIO_INT_ACK 0x064
#define VIRTIO_STATUS 0x070
#define VIRTIO_QUEUE_DESC 0x080
#define VIRTIO_QUEUE_DRIVER 0x090
#define VIRTIO_QUEUE_DEVICE 0x0a0

#define DESC_NEXT 1
#define DESC_WRITE 2
#define DESC_INDIRECT 4

struct vdesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};

#define QSIZE 8
struct vring {
  struct vdesc desc[QSIZE] __attribute__((aligned(16)));
  struct {
    uint16_t flags, idx, ring[QSIZE], used_event;
  } avail __attribute__((aligned(4)));
  struct {
    uint16_t flags, idx;
    struct {
      uint32_t id, len;
    } ring[QSIZE];
    uint16_t avail_event;
  } used __attribute__((aligned(4096)));
};

/* The base address of the first virtio_mmio.device= on the command line, or 0. */
static inline uint64_t vio_find(void)
{
  const char *s = cmdline();
  const char key[] = "virtio_mmio.device=";
  for (; *s; s++)
    if (strncmp(s, key, sizeof(key) - 1) == 0) {
      for (s += sizeof(key) - 1; *s && *s != '@'; s++)
        ;
      if (s[0] != '@' || s[1] != '0' || s[2] != 'x')
        return 0;
      uint64_t n = 0;
      for (s += 3;; s++) {
        unsigned d = *s >= '0' && *s <= '9'   ? (unsigned) (*s - '0')
                     : *s >= 'a' && *s <= 'f' ? (unsigned) (*s - 'a' + 10)
                                              : 16;
        if (d > 15)
          return n;
        n = n * 16 + d;
      }
    }
  return 0;
}

static inline uint32_t vio_r(uint64_t base, uint32_t off)
{
  return mmio_read32(base + off);
}
static inline void vio_w(uint64_t base, uint32_t off, uint32_t v)
{
  mmio_write32(base + off, v);
}
static inline void vio_w64(uint64_t base, uint32_t off, uint64_t v)
{
  vio_w(base, off, (uint32_t) v);
  vio_w(base, off + 4, (uint32_t) (v >> 32));
}

/* Reset, ACK, DRIVER, VERSION_1 (+ extra low feature bits), FEATURES_OK. True if accepted. */
static inline bool vio_negotiate(uint64_t base, uint32_t features_lo)
{
  vio_w(base, VIRTIO_STATUS, 0);
  vio_w(base, VIRTIO_STATUS, 1);
  vio_w(base, VIRTIO_STATUS, 3);
  vio_w(base, VIRTIO_DEV_FEATURES_SEL, 1);
  if (!(vio_r(base, VIRTIO_DEV_FEATURES) & 1))
    return false;
  vio_w(base, VIRTIO_DRV_FEATURES_SEL, 0);
  vio_w(base, VIRTIO_DRV_FEATURES, features_lo);
  vio_w(base, VIRTIO_DRV_FEATURES_SEL, 1);
  vio_w(base, VIRTIO_DRV_FEATURES, 1);
  vio_w(base, VIRTIO_STATUS, 3 | 8);
  return (vio_r(base, VIRTIO_STATUS) & 8) != 0;
}

/* Queue 0 with the given size and ring addresses; returns QueueReady as read back. */
static inline bool vio_queue(uint64_t base, uint32_t num, uint64_t desc, uint64_t avail,
                             uint64_t used)
{
  vio_w(base, VIRTIO_QUEUE_SEL, 0);
  vio_w(base, VIRTIO_QUEUE_NUM, num);
  vio_w64(base, VIRTIO_QUEUE_DESC, desc);
  vio_w64(base, VIRTIO_QUEUE_DRIVER, avail);
  vio_w64(base, VIRTIO_QUEUE_DEVICE, used);
  vio_w(base, VIRTIO_QUEUE_READY, 1);
  return vio_r(base, VIRTIO_QUEUE_READY) == 1;
}

static inline bool vio_ring_setup(uint64_t base, struct vring *r)
{
  memset(r, 0, sizeof(*r));
  return vio_queue(base, QSIZE, (uint64_t) r->desc, (uint64_t) &r->avail, (uint64_t) &r->used);
}

/* Offer descriptor `head` and notify queue 0. */
static inline void vio_submit(uint64_t base, struct vring *r, uint16_t head)
{
  r->avail.ring[r->avail.idx % QSIZE] = head;
  barrier();
  r->avail.idx++;
  barrier();
  vio_w(base, VIRTIO_QUEUE_NOTIFY, 0);
}
