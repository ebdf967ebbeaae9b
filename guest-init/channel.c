/* The connection to the host: AF_VSOCK (or a unix socket in test mode), the framing of
 * isola_guest_abi.h, a send queue drained as the socket accepts it, and a receiver that checks
 * every header before it reads (or allocates for) a payload. */
#include "init.h"

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

int channel_connect_vsock(uint32_t cid, uint32_t port, int *fd, struct isola_error **err)
{
  _cleanup_close_ int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return isola_fail(err, errno, "cannot create a vsock socket");
  struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
  if (connect(s, (struct sockaddr *) &addr, sizeof(addr)) < 0)
    return isola_fail(err, errno, "cannot connect to vsock %u:%u", cid, port);
  *fd = steal_fd(&s);
  return 0;
}

int channel_listen_vsock(uint32_t port, int *fd, struct isola_error **err)
{
  _cleanup_close_ int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0)
    return isola_fail(err, errno, "cannot create a vsock socket");
  struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  if (bind(s, (struct sockaddr *) &addr, sizeof(addr)) < 0 || listen(s, 16) < 0)
    return isola_fail(err, errno, "cannot listen on vsock port %u", port);
  *fd = steal_fd(&s);
  return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *addr, struct isola_error **err)
{
  *addr = (struct sockaddr_un){.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(addr->sun_path))
    return isola_failx(err, ENAMETOOLONG, "socket path \"%s\" is too long", path);
  strcpy(addr->sun_path, path);
  return 0;
}

int channel_listen_unix(const char *path, int *fd, struct isola_error **err)
{
  struct sockaddr_un addr;
  int r = unix_addr(path, &addr, err);
  if (r < 0)
    return r;
  _cleanup_close_ int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0)
    return isola_fail(err, errno, "cannot create a unix socket");
  unlink(path);
  if (bind(s, (struct sockaddr *) &addr, sizeof(addr)) < 0 || listen(s, 16) < 0)
    return isola_fail(err, errno, "cannot listen on \"%s\"", path);
  *fd = steal_fd(&s);
  return 0;
}

int channel_connect_unix(const char *path, int *fd, struct isola_error **err)
{
  struct sockaddr_un addr;
  int r = unix_addr(path, &addr, err);
  if (r < 0)
    return r;
  _cleanup_close_ int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return isola_fail(err, errno, "cannot create a unix socket");
  if (connect(s, (struct sockaddr *) &addr, sizeof(addr)) < 0)
    return isola_fail(err, errno, "cannot connect to \"%s\"", path);
  *fd = steal_fd(&s);
  return 0;
}

void channel_init(struct channel *ch, int fd)
{
  memset(ch, 0, sizeof(*ch));
  ch->fd = fd;
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0)
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void channel_close(struct channel *ch)
{
  if (ch->fd >= 0)
    close(ch->fd);
  free(ch->payload);
  free(ch->out);
  memset(ch, 0, sizeof(*ch));
  ch->fd = -1;
}

/* Touch fresh buffer memory from user mode before the kernel copies into it. On a kvm_pvm host
 * (MACHINE.md), where guest kernel code is emulated, a VM's stdin once in six runs reached the
 * process with its first 64 bytes zeroed while the same engine and init without a VM never
 * did; with the receive buffers reused and touched first, 22 runs in a row came out right.
 * The likely cause is the emulator's handling of a kernel copy that page-faults on a page never
 * touched before; a page already present never faults, and on hardware KVM this is free. */
void prefault(void *p, size_t n)
{
  memset(p, 0, n);
}

/* Room for `more` bytes at the end of the queue; what was already sent is dropped first. */
static uint8_t *queue_reserve(struct channel *ch, size_t more)
{
  if (ch->out_off > 0) {
    memmove(ch->out, ch->out + ch->out_off, ch->out_len - ch->out_off);
    ch->out_len -= ch->out_off;
    ch->out_off = 0;
  }
  if (ch->out_len + more > ch->out_cap) {
    size_t cap = ch->out_cap ? ch->out_cap : 4096;
    while (cap < ch->out_len + more)
      cap *= 2;
    ch->out = xrealloc(ch->out, cap);
    prefault(ch->out + ch->out_cap, cap - ch->out_cap);
    ch->out_cap = cap;
  }
  return ch->out + ch->out_len;
}

void channel_queue(struct channel *ch, uint32_t type, const void *data, uint32_t len)
{
  uint8_t *p = queue_reserve(ch, ISOLA_GUEST_HEADER_SIZE + len);
  isola_guest_put_u32(p, type);
  isola_guest_put_u32(p + 4, len);
  if (len)
    memcpy(p + ISOLA_GUEST_HEADER_SIZE, data, len);
  ch->out_len += ISOLA_GUEST_HEADER_SIZE + len;
}

void channel_queue_u32(struct channel *ch, uint32_t type, uint32_t value)
{
  uint8_t b[4];
  isola_guest_put_u32(b, value);
  channel_queue(ch, type, b, sizeof(b));
}

ssize_t channel_queue_from_fd(struct channel *ch, uint32_t type, int fd)
{
  /* Read straight behind a reserved header: no copy of the data. */
  uint8_t *p = queue_reserve(ch, ISOLA_GUEST_HEADER_SIZE + ISOLA_GUEST_MAX_DATA);
  ssize_t n;
  do
    n = read(fd, p + ISOLA_GUEST_HEADER_SIZE, ISOLA_GUEST_MAX_DATA);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  if (n == 0)
    return 0;
  isola_guest_put_u32(p, type);
  isola_guest_put_u32(p + 4, (uint32_t) n);
  ch->out_len += ISOLA_GUEST_HEADER_SIZE + (size_t) n;
  return n;
}

size_t channel_pending(const struct channel *ch)
{
  return ch->out_len - ch->out_off;
}

int channel_flush(struct channel *ch)
{
  while (channel_pending(ch) > 0) {
    ssize_t n = send(ch->fd, ch->out + ch->out_off, channel_pending(ch), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno == EAGAIN ? 0 : -(errno == ECONNRESET ? EPIPE : errno);
    ch->out_off += (size_t) n;
  }
  ch->out_off = ch->out_len = 0;
  return 0;
}

/* One read into dst; 1 when bytes came, 0 when none are available (or at end of stream). */
static int read_some(struct channel *ch, void *dst, size_t want, size_t *got)
{
  ssize_t n;
  do
    n = read(ch->fd, dst, want);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN)
    return 0;
  if (n < 0 && errno != ECONNRESET)
    return -errno;
  if (n <= 0) {
    ch->eof = true;
    return 0;
  }
  *got += (size_t) n;
  return 1;
}

int channel_receive(struct channel *ch, struct frame *f, struct isola_error **err)
{
  int r;
  while (ch->hdr_len < ISOLA_GUEST_HEADER_SIZE) {
    if ((r = read_some(ch, ch->hdr + ch->hdr_len, ISOLA_GUEST_HEADER_SIZE - ch->hdr_len,
                       &ch->hdr_len)) <= 0)
      return r < 0 ? isola_fail(err, -r, "cannot read from the host") : 0;
    if (ch->hdr_len == ISOLA_GUEST_HEADER_SIZE) {
      ch->type = isola_guest_get_u32(ch->hdr);
      ch->length = isola_guest_get_u32(ch->hdr + 4);
      /* Checked before anything is allocated for the payload. */
      if (isola_guest_min_payload(ch->type) < 0)
        return isola_failx(err, EPROTO, "protocol error: unknown frame type %u", ch->type);
      if (!isola_guest_header_valid(ch->type, ch->length))
        return isola_failx(err, EPROTO,
                           "protocol error: frame type %u with a %u-byte payload (at most %u)",
                           ch->type, ch->length, isola_guest_max_payload(ch->type));
      if ((size_t) ch->length + 1 > ch->payload_cap) {
        ch->payload_cap = (size_t) ch->length + 1;
        ch->payload = xrealloc(ch->payload, ch->payload_cap);
        prefault(ch->payload, ch->payload_cap);
      }
      ch->payload_len = 0;
    }
  }
  while (ch->payload_len < ch->length)
    if ((r = read_some(ch, ch->payload + ch->payload_len, ch->length - ch->payload_len,
                       &ch->payload_len)) <= 0)
      return r < 0 ? isola_fail(err, -r, "cannot read from the host") : 0;
  ch->payload[ch->length] = '\0';
  *f = (struct frame){.type = ch->type, .length = ch->length, .data = ch->payload};
  ch->hdr_len = 0; /* the next call starts a new frame; the payload stays valid until then */
  return 1;
}

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
  if (deadline < 0)
    return -1;
  int64_t left = deadline - now_ms();
  return left < 0 ? 0 : (int) left;
}

int channel_wait_frame(struct channel *ch, struct frame *f, int timeout_ms,
                       struct isola_error **err)
{
  int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  for (;;) {
    int r = channel_flush(ch);
    if (r < 0)
      return isola_fail(err, -r, "cannot write to the host");
    if ((r = channel_receive(ch, f, err)) != 0)
      return r;
    if (ch->eof)
      return isola_failx(err, EPIPE, "the host closed the connection");
    struct pollfd p = {.fd = ch->fd, .events = POLLIN | (channel_pending(ch) ? POLLOUT : 0)};
    int left = remaining_ms(deadline);
    if (left == 0)
      return isola_failx(err, ETIMEDOUT, "the host did not answer in time");
    if (poll(&p, 1, left) < 0 && errno != EINTR)
      return isola_fail(err, errno, "poll");
  }
}

int channel_drain(struct channel *ch, int timeout_ms)
{
  int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  for (;;) {
    int r = channel_flush(ch);
    if (r < 0 || channel_pending(ch) == 0)
      return r;
    struct pollfd p = {.fd = ch->fd, .events = POLLOUT};
    int left = remaining_ms(deadline);
    if (left == 0)
      return -ETIMEDOUT;
    if (poll(&p, 1, left) < 0 && errno != EINTR)
      return -errno;
  }
}

int channel_linger(struct channel *ch, int timeout_ms)
{
  int64_t deadline = now_ms() + timeout_ms;
  int r = channel_drain(ch, timeout_ms);
  if (r < 0)
    return r;
  shutdown(ch->fd, SHUT_WR);
  /* Raw bytes, not frames: after a protocol error the stream has no framing left. Reading them
   * also keeps the kernel from resetting the connection (and dropping our last frames) for
   * data we never read. */
  static uint8_t scratch[16384];
  for (;;) {
    ssize_t n = read(ch->fd, scratch, sizeof(scratch));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
      return 0;
    struct pollfd p = {.fd = ch->fd, .events = POLLIN};
    int left = remaining_ms(deadline);
    if (left == 0)
      return -ETIMEDOUT;
    if (n < 0)
      poll(&p, 1, left);
  }
}
