/* fs.c — virtio-fs (virtio 1.2, 5.11): a host directory the guest mounts by its tag
 * (`mount -t virtiofs TAG /dir`). Queue 0 is the high-priority queue (FORGET, INTERRUPT: no
 * reply), queue 1 the one request queue. Each request is a FUSE message, answered by the FUSE
 * server in fs_server.c on the event-loop thread; this file is only the transport glue. */
#include <linux/fuse.h>
#include <string.h>

#include "vmm.h"

#define FS_QUEUE_SIZE 1024u
#define FS_TAG_MAX 36u

struct fs_config {
  char tag[FS_TAG_MAX]; /* NUL-padded, not terminated when all 36 bytes are used */
  uint32_t num_request_queues;
} __attribute__((packed));

struct fs {
  struct virtio_mmio *t;
  struct fs_server *server;
  struct fs_config config;
  struct virtq_chain chain;
};

static void fs_config_read(void *dev, uint32_t off, void *data, uint32_t len)
{
  struct fs *f = dev;
  memcpy(data, (const uint8_t *) &f->config + off, len);
}

static void fs_queue_notify(void *dev, unsigned qi)
{
  struct fs *f = dev;
  struct virtq *q = virtio_mmio_queue(f->t, qi);
  /* At most one ring's worth per notify, as everywhere: the event loop stays fair. */
  for (unsigned n = 0; n < q->num; n++) {
    int got = virtq_pop(q, &f->chain);
    if (got <= 0)
      break;
    uint32_t written = 0;
    if (qi == 0) {
      /* High priority: FORGET and BATCH_FORGET (INTERRUPT needs nothing: we never hold a
       * request). No reply is expected. */
      struct fuse_in_header h;
      uint8_t args[4096];
      size_t got_len = virtq_chain_read(&f->chain, args, sizeof(args));
      if (got_len >= sizeof(h)) {
        memcpy(&h, args, sizeof(h));
        if (h.opcode == FUSE_FORGET || h.opcode == FUSE_BATCH_FORGET)
          fs_server_forget(f->server, &h, args + sizeof(h), got_len - sizeof(h));
      }
    } else {
      written = fs_server_handle(f->server, &f->chain);
    }
    virtq_push_used(q, f->chain.head, written);
  }
  virtio_mmio_signal_used(f->t, qi);
}

static void fs_reset(void *dev)
{
  struct fs *f = dev;
  fs_server_reset(f->server);
}

static void fs_destroy(void *dev)
{
  struct fs *f = dev;
  fs_server_destroy(f->server);
  free(f);
}

static const struct virtio_device_ops fs_ops = {
    .name = "fs",
    .device_id = VIRTIO_ID_FS,
    .num_queues = 2,
    .queue_max = FS_QUEUE_SIZE,
    .config_size = sizeof(struct fs_config),
    .config_read = fs_config_read,
    .queue_notify = fs_queue_notify,
    .reset = fs_reset,
    .destroy = fs_destroy,
};

bool virtio_fs_tag_ok(const char *tag)
{
  size_t n = strlen(tag);
  if (n == 0 || n > FS_TAG_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", tag[i]))
      return false;
  return true;
}

int virtio_fs_create(struct vm *vm, const char *tag, const char *path, bool readonly,
                     struct isola_error **err)
{
  if (!virtio_fs_tag_ok(tag))
    return isola_failx(err, EINVAL,
                       "--share tag \"%s\": use 1-%u letters, digits, \"_\", \".\" or \"-\"", tag,
                       FS_TAG_MAX);
  struct fs *f = xzalloc(sizeof(*f));
  int r = fs_server_create(path, readonly, &f->server, err);
  if (r < 0) {
    free(f);
    return r;
  }
  memcpy(f->config.tag, tag, strlen(tag));
  f->config.num_request_queues = 1;
  vm->has_fs = true;
  return virtio_mmio_create(vm, &fs_ops, f, &f->t, err);
}
