/* rng.c — virtio-rng (virtio 1.x, 5.4): one queue; each device-writable buffer is filled with
 * bytes from getrandom(2). The simplest device, and the model for the others:
 * pop → process → push_used → signal. */
#include <sys/random.h>

#include "vmm.h"

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_PER_REQUEST (64u << 10) /* a guest asking for more gets less, as allowed */

struct rng {
  struct virtio_mmio *t;
  struct virtq_chain chain;
};

static size_t rng_fill(const struct virtq_chain *c)
{
  size_t total = 0;
  for (unsigned i = c->nr_out; i < c->nr_out + c->nr_in && total < RNG_MAX_PER_REQUEST; i++) {
    uint8_t *p = c->iov[i].iov_base;
    size_t want = c->iov[i].iov_len;
    if (want > RNG_MAX_PER_REQUEST - total)
      want = RNG_MAX_PER_REQUEST - total;
    size_t got = 0;
    while (got < want) {
      ssize_t n = getrandom(p + got, want - got, 0);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return total + got;
      }
      got += (size_t) n;
    }
    total += got;
  }
  return total;
}

static void rng_queue_notify(void *dev, unsigned qi)
{
  struct rng *r = dev;
  struct virtq *q = virtio_mmio_queue(r->t, qi);
  /* At most one ring's worth per notify: a guest refilling as fast as we drain cannot hold
   * the event loop; Linux notifies again for what it adds later. */
  for (unsigned n = 0; n < q->num; n++) {
    int got = virtq_pop(q, &r->chain);
    if (got <= 0)
      break; /* empty, or broken: the transport sets NEEDS_RESET */
    virtq_push_used(q, r->chain.head, (uint32_t) rng_fill(&r->chain));
  }
  virtio_mmio_signal_used(r->t, qi);
}

static void rng_destroy(void *dev)
{
  free(dev);
}

static const struct virtio_device_ops rng_ops = {
    .name = "rng",
    .device_id = VIRTIO_ID_RNG,
    .num_queues = 1,
    .queue_max = RNG_QUEUE_SIZE,
    .queue_notify = rng_queue_notify,
    .destroy = rng_destroy,
};

int virtio_rng_create(struct vm *vm, struct isola_error **err)
{
  struct rng *r = xzalloc(sizeof(*r));
  return virtio_mmio_create(vm, &rng_ops, r, &r->t, err);
}
