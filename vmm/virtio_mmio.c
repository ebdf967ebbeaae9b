/* virtio_mmio.c — the virtio-mmio transport, version 2 (virtio 1.x, 4.2.2): registers, feature
 * negotiation, queue setup (checked by virtq_setup before a queue becomes ready), notifies
 * (an eventfd per queue, served by the event loop) and interrupts (irqfd or KVM_IRQ_LINE). */
#include <linux/kvm.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>

#include "vmm.h"

#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_VENDOR_ID 0x00c
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC_LOW 0x080
#define REG_QUEUE_DESC_HIGH 0x084
#define REG_QUEUE_DRIVER_LOW 0x090
#define REG_QUEUE_DRIVER_HIGH 0x094
#define REG_QUEUE_DEVICE_LOW 0x0a0
#define REG_QUEUE_DEVICE_HIGH 0x0a4
#define REG_CONFIG_GENERATION 0x0fc
#define REG_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC 0x74726976  /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x414c5349 /* "ISLA" */
#define INT_VRING 1u
#define INT_CONFIG 2u
#define STATUS_FEATURES_OK 8u
#define STATUS_DRIVER_OK 4u

struct virtio_mmio_queue {
  struct virtio_mmio *t;
  unsigned index;
  struct virtq vq;
  uint16_t num;
  uint64_t desc, driver, device; /* as the driver wrote them, checked at QueueReady */
  int notify_fd;                 /* eventfd: the guest's QueueNotify for this queue */
  bool ioeventfd;                /* KVM writes notify_fd without an exit */
};

struct virtio_mmio {
  struct vm *vm;
  const struct virtio_device_ops *ops;
  void *dev;
  pthread_mutex_t lock;
  uint64_t base;
  unsigned gsi;
  int irq_fd; /* irqfd, or -1: KVM_IRQ_LINE */
  uint64_t device_features, driver_features;
  uint32_t status, device_features_sel, driver_features_sel, queue_sel, config_generation;
  _Atomic uint32_t interrupt_status;
  struct virtio_mmio_queue q[VIRTIO_MMIO_MAX_QUEUES];
};

static void virtio_mmio_interrupt(struct virtio_mmio *t, uint32_t why)
{
  atomic_fetch_or(&t->interrupt_status, why);
  if (t->irq_fd >= 0) {
    uint64_t one = 1;
    if (write(t->irq_fd, &one, sizeof(one)) < 0) {
      /* Cannot fail short of a counter overflow; the guest would see a late interrupt. */
    }
  } else {
    vm_irq_trigger(t->vm, t->gsi);
  }
}

static void virtio_mmio_reset(struct virtio_mmio *t)
{
  for (unsigned i = 0; i < t->ops->num_queues; i++) {
    struct virtio_mmio_queue *q = &t->q[i];
    virtq_reset(&q->vq);
    q->num = 0;
    q->desc = q->driver = q->device = 0;
  }
  t->status = 0;
  t->driver_features = 0;
  t->device_features_sel = t->driver_features_sel = t->queue_sel = 0;
  atomic_store(&t->interrupt_status, 0);
  if (t->ops->reset)
    t->ops->reset(t->dev);
}

static struct virtio_mmio_queue *selected_queue(struct virtio_mmio *t)
{
  return t->queue_sel < t->ops->num_queues ? &t->q[t->queue_sel] : NULL;
}

static void set_addr_half(uint64_t *addr, bool high, uint32_t v)
{
  if (high)
    *addr = (*addr & 0xffffffffull) | ((uint64_t) v << 32);
  else
    *addr = (*addr & ~0xffffffffull) | v;
}

static void queue_ready_write(struct virtio_mmio *t, struct virtio_mmio_queue *q, uint32_t v)
{
  if (!v) {
    q->vq.ready = false;
    return;
  }
  if (q->vq.ready)
    return;
  q->vq.event_idx = t->driver_features & VIRTIO_F_EVENT_IDX;
  if (!virtq_setup(&q->vq, t->vm, q->num, t->ops->queue_max, GPA(q->desc), GPA(q->driver),
                   GPA(q->device))) {
    /* Bad size or rings outside RAM: the queue stays off and the driver is told so. */
    t->status |= VIRTIO_STATUS_NEEDS_RESET;
    virtio_mmio_interrupt(t, INT_CONFIG);
  }
}

static void status_write(struct virtio_mmio *t, uint32_t v)
{
  if (v == 0) {
    virtio_mmio_reset(t);
    return;
  }
  if ((v & STATUS_FEATURES_OK) && !(t->status & STATUS_FEATURES_OK)) {
    /* Refuse features we did not offer and drivers that are not virtio 1.x. */
    if ((t->driver_features & ~t->device_features) || !(t->driver_features & VIRTIO_F_VERSION_1))
      v &= ~STATUS_FEATURES_OK;
  }
  bool driver_ok = (v & STATUS_DRIVER_OK) && !(t->status & STATUS_DRIVER_OK);
  t->status = (v & 0xffu & ~VIRTIO_STATUS_NEEDS_RESET) | (t->status & VIRTIO_STATUS_NEEDS_RESET);
  if (driver_ok && t->ops->activate)
    t->ops->activate(t->dev, t->driver_features);
}

static void register_write(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
  struct virtio_mmio_queue *q = selected_queue(t);
  bool features_open = !(t->status & STATUS_FEATURES_OK);
  switch (off) {
  case REG_DEVICE_FEATURES_SEL:
    t->device_features_sel = v;
    break;
  case REG_DRIVER_FEATURES:
    if (features_open && t->driver_features_sel < 2)
      set_addr_half(&t->driver_features, t->driver_features_sel == 1, v);
    break;
  case REG_DRIVER_FEATURES_SEL:
    t->driver_features_sel = v;
    break;
  case REG_QUEUE_SEL:
    t->queue_sel = v;
    break;
  case REG_QUEUE_NUM:
    if (q && !q->vq.ready)
      q->num = v > 0xffff ? 0 : (uint16_t) v; /* checked at QueueReady */
    break;
  case REG_QUEUE_READY:
    if (q)
      queue_ready_write(t, q, v);
    break;
  case REG_QUEUE_NOTIFY:
    /* Only without an ioeventfd: hand it to the event loop, as KVM would have. */
    if (v < t->ops->num_queues) {
      uint64_t one = 1;
      if (write(t->q[v].notify_fd, &one, sizeof(one)) < 0) {
        /* eventfd overflow is impossible here */
      }
    }
    break;
  case REG_INTERRUPT_ACK:
    atomic_fetch_and(&t->interrupt_status, ~v);
    break;
  case REG_STATUS:
    status_write(t, v);
    break;
  case REG_QUEUE_DESC_LOW:
  case REG_QUEUE_DESC_HIGH:
    if (q && !q->vq.ready)
      set_addr_half(&q->desc, off == REG_QUEUE_DESC_HIGH, v);
    break;
  case REG_QUEUE_DRIVER_LOW:
  case REG_QUEUE_DRIVER_HIGH:
    if (q && !q->vq.ready)
      set_addr_half(&q->driver, off == REG_QUEUE_DRIVER_HIGH, v);
    break;
  case REG_QUEUE_DEVICE_LOW:
  case REG_QUEUE_DEVICE_HIGH:
    if (q && !q->vq.ready)
      set_addr_half(&q->device, off == REG_QUEUE_DEVICE_HIGH, v);
    break;
  default: /* read-only or unknown: ignored */
    break;
  }
}

static uint32_t register_read(struct virtio_mmio *t, uint64_t off)
{
  struct virtio_mmio_queue *q = selected_queue(t);
  switch (off) {
  case REG_MAGIC:
    return VIRTIO_MMIO_MAGIC;
  case REG_VERSION:
    return 2;
  case REG_DEVICE_ID:
    return t->ops->device_id;
  case REG_VENDOR_ID:
    return VIRTIO_MMIO_VENDOR;
  case REG_DEVICE_FEATURES:
    if (t->device_features_sel >= 2)
      return 0;
    return (uint32_t) (t->device_features >> (32 * t->device_features_sel));
  case REG_QUEUE_NUM_MAX:
    return q ? t->ops->queue_max : 0;
  case REG_QUEUE_NUM:
    return q ? q->num : 0;
  case REG_QUEUE_READY:
    return q && q->vq.ready;
  case REG_INTERRUPT_STATUS:
    return atomic_load(&t->interrupt_status);
  case REG_STATUS:
    return t->status;
  case REG_CONFIG_GENERATION:
    return t->config_generation;
  case REG_QUEUE_DESC_LOW:
    return q ? (uint32_t) q->desc : 0;
  case REG_QUEUE_DESC_HIGH:
    return q ? (uint32_t) (q->desc >> 32) : 0;
  case REG_QUEUE_DRIVER_LOW:
    return q ? (uint32_t) q->driver : 0;
  case REG_QUEUE_DRIVER_HIGH:
    return q ? (uint32_t) (q->driver >> 32) : 0;
  case REG_QUEUE_DEVICE_LOW:
    return q ? (uint32_t) q->device : 0;
  case REG_QUEUE_DEVICE_HIGH:
    return q ? (uint32_t) (q->device >> 32) : 0;
  default:
    return 0;
  }
}

static void virtio_mmio_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
                               bool is_write)
{
  struct virtio_mmio *t = opaque;
  pthread_mutex_lock(&t->lock);
  if (off >= REG_CONFIG) {
    uint64_t c = off - REG_CONFIG;
    if (c < t->ops->config_size && len <= t->ops->config_size - c) {
      if (is_write) {
        if (t->ops->config_write)
          t->ops->config_write(t->dev, (uint32_t) c, data, len);
      } else if (t->ops->config_read) {
        t->ops->config_read(t->dev, (uint32_t) c, data, len);
      } else {
        memset(data, 0, len);
      }
    } else if (!is_write) {
      memset(data, 0, len);
    }
  } else if (len == 4 && off % 4 == 0) {
    uint32_t v;
    if (is_write) {
      memcpy(&v, data, 4);
      register_write(t, off, v);
    } else {
      v = register_read(t, off);
      memcpy(data, &v, 4);
    }
  } else if (!is_write) {
    memset(data, 0, len); /* registers are 32-bit wide: other accesses read zero */
  }
  pthread_mutex_unlock(&t->lock);
}

static void virtio_mmio_handle_notify(struct virtio_mmio_queue *q)
{
  struct virtio_mmio *t = q->t;
  uint64_t n;
  if (read(q->notify_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
    return;
  pthread_mutex_lock(&t->lock);
  if (q->vq.ready && !q->vq.broken && !(t->status & VIRTIO_STATUS_NEEDS_RESET)) {
    t->ops->queue_notify(t->dev, q->index);
    if (q->vq.broken)
      virtio_mmio_set_needs_reset(t);
  }
  pthread_mutex_unlock(&t->lock);
}

static void notify_event(void *opaque, uint32_t events)
{
  virtio_mmio_handle_notify(opaque);
}

void virtio_mmio_notify_for_test(struct virtio_mmio *t, unsigned q)
{
  if (q < t->ops->num_queues)
    virtio_mmio_handle_notify(&t->q[q]);
}

static int virtio_mmio_setup_fds(struct virtio_mmio *t, struct isola_error **err)
{
  struct vm *vm = t->vm;
  if (vm->vm_fd >= 0 && vm->has_irqfd) {
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
      return isola_fail(err, errno, "virtio-%s: eventfd", t->ops->name);
    struct kvm_irqfd irqfd = {.fd = (uint32_t) fd, .gsi = t->gsi};
    if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
      close(fd); /* fall back to KVM_IRQ_LINE */
    else
      t->irq_fd = fd;
  }
  for (unsigned i = 0; i < t->ops->num_queues; i++) {
    struct virtio_mmio_queue *q = &t->q[i];
    q->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->notify_fd < 0)
      return isola_fail(err, errno, "virtio-%s: eventfd", t->ops->name);
    if (vm->vm_fd >= 0 && vm->has_ioeventfd) {
      struct kvm_ioeventfd io = {
          .datamatch = i,
          .addr = t->base + REG_QUEUE_NOTIFY,
          .len = 4,
          .fd = q->notify_fd,
          .flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
      };
      q->ioeventfd = ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) == 0;
    }
    int r = loop_add_fd(vm->loop, q->notify_fd, EPOLLIN, notify_event, q);
    if (r < 0)
      return isola_fail(err, -r, "virtio-%s: cannot watch the notify eventfd", t->ops->name);
  }
  return 0;
}

int virtio_mmio_create(struct vm *vm, const struct virtio_device_ops *ops, void *dev,
                       struct virtio_mmio **out, struct isola_error **err)
{
  if (ops->num_queues == 0 || ops->num_queues > VIRTIO_MMIO_MAX_QUEUES || ops->queue_max == 0 ||
      ops->queue_max > VIRTQ_MAX_SIZE || (ops->queue_max & (ops->queue_max - 1)) ||
      ops->config_size > 0x100) {
    if (ops->destroy)
      ops->destroy(dev);
    return isola_failx(err, EINVAL, "virtio-%s: bad device description", ops->name);
  }
  if (vm->nvirtio >= ARRAY_SIZE(vm->virtio)) {
    if (ops->destroy)
      ops->destroy(dev);
    return isola_failx(err, ENOSPC, "virtio-%s: too many devices", ops->name);
  }
  struct virtio_mmio *t = xzalloc(sizeof(*t));
  t->vm = vm;
  t->ops = ops;
  t->dev = dev;
  t->irq_fd = -1;
  t->device_features =
      ops->features | VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;
  pthread_mutex_init(&t->lock, NULL);
  for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
    t->q[i] = (struct virtio_mmio_queue){.t = t, .index = i, .notify_fd = -1};
    t->q[i].vq.vm = vm;
  }
  /* From here on the VM owns t (and t owns dev): vm_destroy frees both on any failure. */
  vm->virtio[vm->nvirtio++] = t;
  t->base = VM_MMIO_BASE + (uint64_t) (vm->nvirtio - 1) * VIRTIO_MMIO_STRIDE;
  int gsi = vm_irq_alloc(vm);
  if (gsi < 0)
    return isola_failx(err, ENOSPC, "virtio-%s: no interrupt line left", ops->name);
  t->gsi = (unsigned) gsi;
  int r = bus_register(&vm->mmio, t->base, VIRTIO_MMIO_STRIDE, virtio_mmio_access, t);
  if (r < 0)
    return isola_fail(err, -r, "virtio-%s: cannot register MMIO at 0x%llx", ops->name,
                      (unsigned long long) t->base);
  if (!vm->loop) {
    r = loop_create(&vm->loop, err);
    if (r < 0)
      return r;
  }
  r = virtio_mmio_setup_fds(t, err);
  if (r < 0)
    return r;
  if (out)
    *out = t;
  return 0;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
  if (!t)
    return;
  for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
    if (t->q[i].notify_fd >= 0) {
      if (t->vm->loop)
        loop_del_fd(t->vm->loop, t->q[i].notify_fd);
      close(t->q[i].notify_fd);
    }
  if (t->irq_fd >= 0)
    close(t->irq_fd);
  if (t->ops->destroy)
    t->ops->destroy(t->dev);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

struct virtq *virtio_mmio_queue(struct virtio_mmio *t, unsigned q)
{
  return q < t->ops->num_queues ? &t->q[q].vq : NULL;
}

void virtio_mmio_signal_used(struct virtio_mmio *t, unsigned q)
{
  if (q < t->ops->num_queues && virtq_needs_interrupt(&t->q[q].vq))
    virtio_mmio_interrupt(t, INT_VRING);
}

void virtio_mmio_signal_config(struct virtio_mmio *t)
{
  pthread_mutex_lock(&t->lock);
  t->config_generation++;
  pthread_mutex_unlock(&t->lock);
  virtio_mmio_interrupt(t, INT_CONFIG);
}

void virtio_mmio_set_needs_reset(struct virtio_mmio *t)
{
  t->status |= VIRTIO_STATUS_NEEDS_RESET;
  virtio_mmio_interrupt(t, INT_CONFIG);
}

void virtio_mmio_lock(struct virtio_mmio *t)
{
  pthread_mutex_lock(&t->lock);
}

void virtio_mmio_unlock(struct virtio_mmio *t)
{
  pthread_mutex_unlock(&t->lock);
}

void virtio_mmio_describe(const struct virtio_mmio *t, uint64_t *base, uint32_t *size,
                          unsigned *gsi)
{
  *base = t->base;
  *size = VIRTIO_MMIO_STRIDE;
  *gsi = t->gsi;
}
