/* Test-guest helpers for devices with more than one queue (virtio-blk, virtio-vsock): find a
 * device by its ID among all virtio_mmio.device= entries, set up queue qi, submit and reap.
 * Builds on vio.h's registers and descriptors. */
#pragma once
#include "vio.h"

#define VQN 32
struct vq {
  struct vdesc desc[VQN] __attribute__((aligned(16)));
  struct {
    uint16_t flags, idx, ring[VQN], used_event;
  } avail __attribute__((aligned(4)));
  struct {
    uint16_t flags, idx;
    struct {
      uint32_t id, len;
    } ring[VQN];
    uint16_t avail_event;
  } used __attribute__((aligned(4096)));
  uint16_t last_used; /* the driver's own: next used slot to reap */
};

static inline uint64_t vdev_parse_hex(const char *s)
{
  uint64_t n = 0;
  for (;; s++) {
    unsigned d = *s >= '0' && *s <= '9'   ? (unsigned) (*s - '0')
                 : *s >= 'a' && *s <= 'f' ? (unsigned) (*s - 'a' + 10)
                                          : 16;
    if (d > 15)
      return n;
    n = n * 16 + d;
  }
}

/* The base of the first virtio-mmio device whose DeviceID is id, or 0. */
static inline uint64_t vdev_find(uint32_t id)
{
  const char key[] = "virtio_mmio.device=";
  for (const char *s = cmdline(); *s; s++) {
    if (strncmp(s, key, sizeof(key) - 1) != 0)
      continue;
    const char *at = s + sizeof(key) - 1;
    while (*at && *at != '@' && *at != ' ')
      at++;
    if (at[0] != '@' || at[1] != '0' || at[2] != 'x')
      continue;
    uint64_t base = vdev_parse_hex(at + 3);
    if (vio_r(base, VIRTIO_MAGIC) == 0x74726976 && vio_r(base, VIRTIO_DEVICE_ID) == id)
      return base;
  }
  return 0;
}

static inline uint32_t vdev_features_lo(uint64_t base)
{
  vio_w(base, VIRTIO_DEV_FEATURES_SEL, 0);
  return vio_r(base, VIRTIO_DEV_FEATURES);
}

static inline bool vdev_queue(uint64_t base, unsigned qi, struct vq *q)
{
  memset(q, 0, sizeof(*q));
  vio_w(base, VIRTIO_QUEUE_SEL, qi);
  if (vio_r(base, VIRTIO_QUEUE_NUM_MAX) < VQN)
    return false;
  vio_w(base, VIRTIO_QUEUE_NUM, VQN);
  vio_w64(base, VIRTIO_QUEUE_DESC, (uint64_t) q->desc);
  vio_w64(base, VIRTIO_QUEUE_DRIVER, (uint64_t) &q->avail);
  vio_w64(base, VIRTIO_QUEUE_DEVICE, (uint64_t) &q->used);
  vio_w(base, VIRTIO_QUEUE_READY, 1);
  return vio_r(base, VIRTIO_QUEUE_READY) == 1;
}

/* Make head available without notifying (batching). */
static inline void vdev_offer(struct vq *q, uint16_t head)
{
  q->avail.ring[q->avail.idx % VQN] = head;
  barrier();
  q->avail.idx++;
  barrier();
}

static inline void vdev_submit(uint64_t base, unsigned qi, struct vq *q, uint16_t head)
{
  vdev_offer(q, head);
  vio_w(base, VIRTIO_QUEUE_NOTIFY, qi);
}

/* Wait for the next used element; true with *id and *len set. */
/* Waits are measured in TSC ticks, not loop turns: where the host runs guest kernel code in
 * an instruction emulator (kvm_pvm), a turn costs microseconds instead of nanoseconds. */
#define VDEV_WAIT (1ull << 35)  /* for something that must come: ~10 s at 3 GHz */
#define VDEV_QUIET (1ull << 30) /* to conclude that nothing more comes: ~0.3 s */

/* The next used element of q within `ticks` (0: only look once). */
static inline bool vdev_reap(struct vq *q, uint64_t ticks, uint32_t *id, uint32_t *len)
{
  uint64_t start = ticks ? rdtsc() : 0;
  for (;;) {
    if (*(volatile uint16_t *) &q->used.idx != q->last_used) {
      barrier();
      *id = q->used.ring[q->last_used % VQN].id;
      *len = q->used.ring[q->last_used % VQN].len;
      q->last_used++;
      return true;
    }
    if (!ticks || rdtsc() - start > ticks)
      return false;
    __asm__ volatile("pause");
  }
}
