/* virtq.c — the one split-virtqueue implementation (virtio 1.x, 2.7). Every ring, descriptor
 * and buffer address is a guest address checked with vm_gpa_ptr(); each descriptor is copied
 * once before it is checked (the guest may rewrite it meanwhile); a chain is bounded by the
 * size of the table it lives in and by VIRTQ_CHAIN_MAX, so no guest can make it loop. */
#include <string.h>

#include "vmm.h"

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

/* Ring sizes in bytes for a queue of num entries (the trailing event fields included). */
static uint64_t desc_bytes(uint16_t num)
{
  return 16ull * num;
}
static uint64_t avail_bytes(uint16_t num)
{
  return 6ull + 2ull * num;
}
static uint64_t used_bytes(uint16_t num)
{
  return 6ull + 8ull * num;
}

bool virtq_setup(struct virtq *q, struct vm *vm, uint16_t num, uint16_t num_max, gpa_t desc,
                 gpa_t avail, gpa_t used)
{
  if (num == 0 || num > num_max || num > VIRTQ_MAX_SIZE || (num & (num - 1)))
    return false;
  if (desc.v % 16 || avail.v % 2 || used.v % 4)
    return false;
  uint8_t *desc_h = vm_gpa_ptr(vm, desc, desc_bytes(num));
  uint8_t *avail_h = vm_gpa_ptr(vm, avail, avail_bytes(num));
  uint8_t *used_h = vm_gpa_ptr(vm, used, used_bytes(num));
  if (!desc_h || !avail_h || !used_h)
    return false;
  bool event_idx = q->event_idx;
  virtq_reset(q);
  q->vm = vm;
  q->num = num;
  q->desc = desc;
  q->avail = avail;
  q->used = used;
  q->desc_h = desc_h;
  q->avail_h = avail_h;
  q->used_h = used_h;
  q->event_idx = event_idx;
  q->ready = true;
  return true;
}

void virtq_reset(struct virtq *q)
{
  struct vm *vm = q->vm;
  memset(q, 0, sizeof(*q));
  q->vm = vm;
}

/* Ring fields (offsets per virtio 1.x 2.7.6 and 2.7.8); in range for a queue of q->num. */
static uint16_t *avail_flags_p(const struct virtq *q)
{
  return (uint16_t *) q->avail_h;
}
static uint16_t *avail_idx_p(const struct virtq *q)
{
  return (uint16_t *) (q->avail_h + 2);
}
static uint16_t *avail_ring_p(const struct virtq *q)
{
  return (uint16_t *) (q->avail_h + 4);
}
static uint16_t *used_event_p(const struct virtq *q)
{
  return (uint16_t *) (q->avail_h + 4 + 2ull * q->num);
}
static uint16_t *used_idx_p(const struct virtq *q)
{
  return (uint16_t *) (q->used_h + 2);
}
static uint8_t *used_elem_p(const struct virtq *q, uint16_t slot)
{
  return q->used_h + 4 + 8ull * slot;
}
static uint16_t *avail_event_p(const struct virtq *q)
{
  return (uint16_t *) (q->used_h + 4 + 8ull * q->num);
}

static int virtq_break(struct virtq *q)
{
  q->broken = true;
  return -EINVAL;
}

int virtq_pop(struct virtq *q, struct virtq_chain *chain)
{
  if (!q->ready)
    return 0;
  if (q->broken)
    return -EINVAL;
  uint16_t avail_idx = __atomic_load_n(avail_idx_p(q), __ATOMIC_ACQUIRE);
  uint16_t pending = (uint16_t) (avail_idx - q->last_avail);
  if (pending == 0)
    return 0;
  if (pending > q->num)
    return virtq_break(q); /* the driver cannot have more than num buffers outstanding */
  uint16_t head = __atomic_load_n(&avail_ring_p(q)[q->last_avail & (q->num - 1)], __ATOMIC_RELAXED);
  if (head >= q->num)
    return virtq_break(q);

  const uint8_t *table = q->desc_h;
  uint32_t table_size = q->num, idx = head, steps = 0;
  bool indirect = false;
  unsigned count = 0;
  chain->nr_out = chain->nr_in = 0;
  chain->out_len = chain->in_len = 0;
  for (;;) {
    struct virtq_desc d;
    memcpy(&d, table + (size_t) idx * sizeof(d), sizeof(d)); /* one read: no TOCTOU */
    if (d.flags & VIRTQ_DESC_F_INDIRECT) {
      if (indirect || (d.flags & VIRTQ_DESC_F_NEXT) || d.len == 0 || d.len % sizeof(d) ||
          d.len / sizeof(d) > VIRTQ_CHAIN_MAX)
        return virtq_break(q);
      table = vm_gpa_ptr(q->vm, GPA(d.addr), d.len);
      if (!table)
        return virtq_break(q);
      table_size = d.len / sizeof(d);
      idx = 0;
      steps = 0;
      indirect = true;
      continue;
    }
    if (count >= VIRTQ_CHAIN_MAX)
      return virtq_break(q);
    void *p = vm_gpa_ptr(q->vm, GPA(d.addr), d.len);
    if (!p)
      return virtq_break(q);
    chain->iov[count] = (struct iovec){p, d.len};
    count++;
    if (d.flags & VIRTQ_DESC_F_WRITE) {
      chain->nr_in++;
      chain->in_len += d.len;
    } else {
      if (chain->nr_in)
        return virtq_break(q); /* readable after writable */
      chain->nr_out++;
      chain->out_len += d.len;
    }
    if (!(d.flags & VIRTQ_DESC_F_NEXT))
      break;
    /* A chain visits each descriptor of its table at most once; more steps mean a loop. */
    if (d.next >= table_size || ++steps >= table_size)
      return virtq_break(q);
    idx = d.next;
  }
  chain->head = head;
  q->last_avail++;
  if (q->event_idx) {
    /* avail_event: notify us again once the driver adds past what we consumed. */
    __atomic_store_n(avail_event_p(q), q->last_avail, __ATOMIC_RELEASE);
  }
  return 1;
}

void virtq_push_used(struct virtq *q, uint16_t head, uint32_t written)
{
  if (!q->ready)
    return;
  uint8_t *elem = used_elem_p(q, q->used_idx & (q->num - 1));
  uint32_t id = head;
  memcpy(elem, &id, 4);
  memcpy(elem + 4, &written, 4);
  q->used_idx++;
  /* Release: the element is visible before the index that publishes it. */
  __atomic_store_n(used_idx_p(q), q->used_idx, __ATOMIC_RELEASE);
}

bool virtq_needs_interrupt(struct virtq *q)
{
  if (!q->ready)
    return false;
  /* Order our used idx store before reading the driver's suppression fields. */
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  if (!q->event_idx) {
    return !(__atomic_load_n(avail_flags_p(q), __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);
  }
  uint16_t used_event = __atomic_load_n(used_event_p(q), __ATOMIC_RELAXED);
  uint16_t new_idx = q->used_idx, old = q->signalled_used;
  bool valid = q->signalled_used_valid;
  q->signalled_used = new_idx;
  q->signalled_used_valid = true;
  return !valid || (uint16_t) (new_idx - used_event - 1) < (uint16_t) (new_idx - old);
}

size_t virtq_chain_write(const struct virtq_chain *chain, const void *buf, size_t len)
{
  const uint8_t *src = buf;
  size_t done = 0;
  for (unsigned i = chain->nr_out; i < chain->nr_out + chain->nr_in && done < len; i++) {
    size_t n = chain->iov[i].iov_len < len - done ? chain->iov[i].iov_len : len - done;
    memcpy(chain->iov[i].iov_base, src + done, n);
    done += n;
  }
  return done;
}

size_t virtq_chain_read(const struct virtq_chain *chain, void *buf, size_t len)
{
  uint8_t *dst = buf;
  size_t done = 0;
  for (unsigned i = 0; i < chain->nr_out && done < len; i++) {
    size_t n = chain->iov[i].iov_len < len - done ? chain->iov[i].iov_len : len - done;
    memcpy(dst + done, chain->iov[i].iov_base, n);
    done += n;
  }
  return done;
}

unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
                   struct iovec *out)
{
  unsigned k = 0;
  for (unsigned i = 0; i < n && len > 0; i++) {
    uint64_t l = iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    uint64_t take = l - skip < len ? l - skip : len;
    out[k++] = (struct iovec){(uint8_t *) iov[i].iov_base + skip, take};
    len -= take;
    skip = 0;
  }
  return k;
}
