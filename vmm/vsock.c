/* vsock.c — virtio-vsock (virtio 1.x, 5.10) served by the monitor itself, no vhost: the
 * guest's stream connections to the host (CID 2) become unix-socket connections, as in
 * Firecracker's hybrid vsock:
 *  - host → guest: a host process connects to the unix socket at `uds_path` and writes
 *    "CONNECT <port>\n"; we send REQUEST to that guest port and, on RESPONSE, answer
 *    "OK <our port>\n" on the unix socket; from then on bytes are relayed both ways;
 *  - guest → host: a REQUEST for host port P makes us connect to the unix socket
 *    "<uds_path>_P": RESPONSE on success, RST on failure.
 *
 * Flow control is the protocol's credit scheme. Guest → host: we advertise VSOCK_CONN_BUF
 * bytes per connection; what the unix socket does not take at once waits in a buffer of at
 * most that size, and a guest that sends past its credit is reset. Host → guest: we read the
 * unix socket only into a guest rx buffer and only as much as the guest's credit allows, so
 * nothing is buffered on that side: a guest without credit or rx buffers leaves the bytes in
 * the socket, and the host writer blocks. The connection table is a fixed array of
 * VSOCK_MAX_CONNS slots that live as long as the device, so an event for a connection that
 * went away meanwhile finds a free (or reused) slot, never freed memory.
 *
 * Threads: queue notifies run on the event loop with the transport lock held; socket events
 * run on the same loop and take that lock; reset runs on a vCPU thread with it held. So all
 * state below is guarded by the transport lock. Sockets are edge-triggered (EPOLLET): we
 * remember "may be readable" and read only when we can deliver, without spinning. */
#include <endian.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "vmm.h"

#define VSOCK_HOST_CID 2u
#define VSOCK_GUEST_CID 3u

#define VSOCK_QUEUE_RX 0u
#define VSOCK_QUEUE_TX 1u
#define VSOCK_QUEUE_EVENT 2u
#define VSOCK_QUEUE_SIZE 256u

#define VSOCK_TYPE_STREAM 1u
enum vsock_op {
  OP_INVALID = 0,
  OP_REQUEST = 1,
  OP_RESPONSE = 2,
  OP_RST = 3,
  OP_SHUTDOWN = 4,
  OP_RW = 5,
  OP_CREDIT_UPDATE = 6,
  OP_CREDIT_REQUEST = 7,
};
#define SHUTDOWN_RCV 1u
#define SHUTDOWN_SEND 2u

#define VSOCK_MAX_CONNS 1024u
/* Our buf_alloc: the guest → host bytes one connection may have in flight, i.e. the most we
 * ever hold for it (at most VSOCK_MAX_CONNS × this in all). */
#define VSOCK_CONN_BUF (64u << 10)
#define VSOCK_MAX_PAYLOAD (64u << 10)     /* of one packet, either way (Linux's largest) */
#define VSOCK_RST_QUEUE 64u               /* RSTs for unknown connections; more are dropped */
#define VSOCK_LINE_MAX 32u                /* "CONNECT 4294967295\n" fits */
#define VSOCK_FIRST_LOCAL_PORT (1u << 30) /* our ports for host-initiated connections */
#define VSOCK_PORT_DIGITS 11u             /* "_4294967295" */

struct vsock_hdr {
  uint64_t src_cid, dst_cid;
  uint32_t src_port, dst_port;
  uint32_t len;
  uint16_t type, op;
  uint32_t flags;
  uint32_t buf_alloc, fwd_cnt;
} __attribute__((packed));
#define VSOCK_HDR ((uint32_t) sizeof(struct vsock_hdr))
_Static_assert(sizeof(struct vsock_hdr) == 44, "virtio-vsock header");

enum conn_state {
  CONN_FREE = 0,
  CONN_HANDSHAKE,   /* host connected to uds_path; waiting for "CONNECT <port>\n" */
  CONN_REQUESTING,  /* REQUEST sent (or about to be) to the guest; waiting for RESPONSE */
  CONN_ESTABLISHED, /* relaying */
  CONN_CLOSING,     /* the guest shut both ways: flush what we hold, then RST */
  CONN_RST,         /* socket gone; an RST to the guest is pending, then the slot is free */
};

struct conn {
  struct vsock *v;
  enum conn_state state;
  int fd;
  uint32_t host_port, guest_port;
  uint32_t pending;        /* control packets to send the guest: 1u << OP_* */
  uint32_t shutdown_flags; /* of the pending SHUTDOWN */
  /* host → guest */
  bool readable; /* the socket may have data: an edge came and no read said EAGAIN since */
  bool host_eof; /* read() returned 0; the guest is (being) told */
  bool host_hup; /* the host closed both ways */
  bool credit_requested;
  uint32_t tx_cnt; /* bytes sent to the guest */
  uint32_t peer_buf_alloc, peer_fwd_cnt;
  uint32_t guest_shutdown; /* SHUTDOWN_* flags the guest sent */
  /* guest → host */
  uint32_t rx_cnt;       /* bytes received from the guest */
  uint32_t fwd_cnt;      /* of those, written to the socket */
  uint32_t fwd_cnt_sent; /* fwd_cnt as last told to the guest */
  bool shut_wr_done;
  uint8_t *buf; /* VSOCK_CONN_BUF bytes while buf_len > 0, else NULL */
  uint32_t buf_len;
};

struct vsock {
  struct vm *vm;
  struct virtio_mmio *t;
  uint64_t guest_cid; /* also the config space: le64 guest_cid */
  char *uds_path;
  int listen_fd;
  int kick_fd; /* an eventfd: more rx work than one pass may do */
  struct conn conns[VSOCK_MAX_CONNS];
  unsigned nconns; /* slots [0, nconns) may be in use */
  unsigned rr;     /* where the next rx pass starts (fairness) */
  uint32_t next_local_port;
  struct vsock_hdr rst_queue[VSOCK_RST_QUEUE];
  unsigned rst_head, rst_len;
  bool rx_held; /* rx_chain was popped and not used yet */
  struct virtq_chain rx_chain, tx_chain;
  struct iovec iov[VIRTQ_CHAIN_MAX];
};

static void vsock_rx_kick(struct vsock *v);

/* ---- the connection table ---- */

static struct conn *conn_find(struct vsock *v, uint32_t host_port, uint32_t guest_port)
{
  for (unsigned i = 0; i < v->nconns; i++) {
    struct conn *c = &v->conns[i];
    if (c->state != CONN_FREE && c->state != CONN_HANDSHAKE && c->host_port == host_port &&
        c->guest_port == guest_port)
      return c;
  }
  return NULL;
}

static struct conn *conn_alloc(struct vsock *v)
{
  for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
    struct conn *c = &v->conns[i];
    if (c->state == CONN_FREE) {
      *c = (struct conn){.v = v, .fd = -1};
      if (i >= v->nconns)
        v->nconns = i + 1;
      return c;
    }
  }
  return NULL;
}

static void conn_close_fd(struct conn *c)
{
  if (c->fd >= 0) {
    loop_del_fd(c->v->vm->loop, c->fd);
    close(c->fd);
    c->fd = -1;
  }
  free(c->buf);
  c->buf = NULL;
  c->buf_len = 0;
}

static void conn_free(struct conn *c)
{
  struct vsock *v = c->v;
  conn_close_fd(c);
  *c = (struct conn){.v = v, .fd = -1, .state = CONN_FREE};
  while (v->nconns > 0 && v->conns[v->nconns - 1].state == CONN_FREE)
    v->nconns--;
}

/* A host connection the guest has not heard of yet: in the handshake, or its REQUEST unsent. */
static bool conn_unseen(const struct conn *c)
{
  return c->state == CONN_HANDSHAKE ||
         (c->state == CONN_REQUESTING && (c->pending & (1u << OP_REQUEST)));
}

/* End a connection: close the socket and, if the guest knows of it, tell it with an RST. */
static void conn_reset(struct conn *c)
{
  if (conn_unseen(c)) {
    conn_free(c); /* the guest never heard of it */
    return;
  }
  conn_close_fd(c);
  c->state = CONN_RST;
  c->pending = 1u << OP_RST;
}

static uint32_t conn_peer_credit(const struct conn *c)
{
  uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
  return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* Tell the guest about freed buffer space once its view of it has fallen below half. */
static void conn_maybe_credit_update(struct conn *c)
{
  if (c->state != CONN_ESTABLISHED || c->fwd_cnt == c->fwd_cnt_sent)
    return;
  uint32_t guest_view_free = VSOCK_CONN_BUF - (c->rx_cnt - c->fwd_cnt_sent);
  if (guest_view_free < VSOCK_CONN_BUF / 2)
    c->pending |= 1u << OP_CREDIT_UPDATE;
}

/* After the buffer drained: half-close or finish as the guest asked. */
static void conn_drained(struct conn *c)
{
  free(c->buf);
  c->buf = NULL;
  if ((c->guest_shutdown & SHUTDOWN_SEND) && !c->shut_wr_done && c->fd >= 0) {
    shutdown(c->fd, SHUT_WR);
    c->shut_wr_done = true;
  }
  if (c->state == CONN_CLOSING)
    conn_reset(c);
}

/* Write what we hold to the socket, as far as it takes it. */
static void conn_flush(struct conn *c)
{
  while (c->buf_len > 0) {
    ssize_t w = send(c->fd, c->buf, c->buf_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno == EAGAIN)
      return; /* EPOLLOUT brings us back */
    if (w <= 0) {
      conn_reset(c);
      return;
    }
    c->buf_len -= (uint32_t) w;
    c->fwd_cnt += (uint32_t) w;
    memmove(c->buf, c->buf + w, c->buf_len);
  }
  conn_drained(c);
  conn_maybe_credit_update(c);
}

/* Relay guest bytes (iov, len <= the credit we gave) to the socket: straight through while
 * nothing is queued, the rest into the buffer. */
static void conn_host_write(struct conn *c, struct iovec *iov, unsigned n, uint32_t len)
{
  uint32_t done = 0;
  if (c->buf_len == 0) {
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n};
    ssize_t w;
    do
      w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN) {
      conn_reset(c);
      return;
    }
    done = w > 0 ? (uint32_t) w : 0;
    c->fwd_cnt += done;
  }
  if (done < len) {
    if (!c->buf)
      c->buf = xmalloc(VSOCK_CONN_BUF);
    uint64_t skip = done;
    for (unsigned i = 0; i < n; i++) {
      if (skip >= iov[i].iov_len) {
        skip -= iov[i].iov_len;
        continue;
      }
      size_t take = iov[i].iov_len - skip;
      memcpy(c->buf + c->buf_len, (uint8_t *) iov[i].iov_base + skip, take);
      c->buf_len += (uint32_t) take;
      skip = 0;
    }
  }
  conn_maybe_credit_update(c);
}

/* ---- host sockets ---- */

static void conn_event(void *opaque, uint32_t events);

static int conn_watch(struct conn *c)
{
  return loop_add_fd(c->v->vm->loop, c->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, conn_event,
                     c);
}

static uint32_t vsock_alloc_local_port(struct vsock *v)
{
  for (;;) {
    uint32_t p = v->next_local_port++;
    if (v->next_local_port < VSOCK_FIRST_LOCAL_PORT)
      v->next_local_port = VSOCK_FIRST_LOCAL_PORT;
    bool used = false;
    for (unsigned i = 0; i < v->nconns && !used; i++)
      used = v->conns[i].state != CONN_FREE && v->conns[i].host_port == p;
    if (!used)
      return p; /* at most VSOCK_MAX_CONNS ports are taken: this ends */
  }
}

/* Read "CONNECT <port>\n" without consuming anything past it (data may follow at once). */
static void conn_handshake(struct conn *c)
{
  char line[VSOCK_LINE_MAX + 1];
  ssize_t n = recv(c->fd, line, VSOCK_LINE_MAX, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    conn_free(c);
    return;
  }
  line[n] = '\0';
  char *nl = memchr(line, '\n', (size_t) n);
  if (!nl) {
    if ((size_t) n == VSOCK_LINE_MAX)
      conn_free(c); /* no line this long is valid */
    return;         /* the rest comes with the next edge */
  }
  *nl = '\0';
  uint64_t port;
  if (strncmp(line, "CONNECT ", 8) != 0 || parse_u64(line + 8, &port) < 0 || port > UINT32_MAX) {
    conn_free(c);
    return;
  }
  size_t want = (size_t) (nl - line) + 1;
  if (recv(c->fd, line, want, MSG_DONTWAIT) != (ssize_t) want) {
    conn_free(c);
    return;
  }
  c->state = CONN_REQUESTING;
  c->guest_port = (uint32_t) port;
  c->host_port = vsock_alloc_local_port(c->v);
  c->pending |= 1u << OP_REQUEST;
  c->readable = true; /* whatever followed the line waits until the guest answers */
  vsock_rx_kick(c->v);
}

static void conn_event(void *opaque, uint32_t events)
{
  struct conn *c = opaque;
  struct vsock *v = c->v;
  virtio_mmio_lock(v->t);
  if (c->fd < 0) /* gone meanwhile (the slot stays valid) */
    goto out;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
    c->readable = true;
  if (events & EPOLLHUP)
    c->host_hup = true;
  if (c->state == CONN_HANDSHAKE) {
    conn_handshake(c);
    goto out;
  }
  if ((events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && c->buf_len > 0)
    conn_flush(c);
  vsock_rx_kick(v);
out:
  virtio_mmio_unlock(v->t);
}

static void listen_event(void *opaque, uint32_t events)
{
  struct vsock *v = opaque;
  virtio_mmio_lock(v->t);
  for (unsigned i = 0; i < 64; i++) {
    int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
      break;
    struct conn *c = conn_alloc(v);
    if (!c) {
      close(fd); /* the table is full: refuse rather than queue */
      continue;
    }
    c->fd = fd;
    c->state = CONN_HANDSHAKE;
    if (conn_watch(c) < 0) {
      c->fd = -1;
      close(fd);
      conn_free(c);
    }
  }
  virtio_mmio_unlock(v->t);
}

/* A guest REQUEST to host port hdr->dst_port: connect to "<uds_path>_<port>". */
static bool vsock_guest_connect(struct vsock *v, const struct vsock_hdr *h)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", v->uds_path, le32toh(h->dst_port));
  struct conn *c = conn_alloc(v);
  if (!c)
    return false;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
    /* A unix connect completes at once or fails (EAGAIN: the listener's backlog is full). */
    if (fd >= 0)
      close(fd);
    conn_free(c);
    return false;
  }
  c->fd = fd;
  c->state = CONN_ESTABLISHED;
  c->host_port = le32toh(h->dst_port);
  c->guest_port = le32toh(h->src_port);
  c->peer_buf_alloc = le32toh(h->buf_alloc);
  c->peer_fwd_cnt = le32toh(h->fwd_cnt);
  c->pending = 1u << OP_RESPONSE;
  if (conn_watch(c) < 0) {
    conn_free(c);
    return false;
  }
  return true;
}

/* ---- guest → host (the tx queue) ---- */

/* Queue an RST answering h (best effort: when the queue is full the guest times out). */
static void vsock_rst_reply(struct vsock *v, const struct vsock_hdr *h)
{
  if (le16toh(h->op) == OP_RST || v->rst_len >= VSOCK_RST_QUEUE)
    return;
  struct vsock_hdr *r = &v->rst_queue[(v->rst_head + v->rst_len++) % VSOCK_RST_QUEUE];
  *r = (struct vsock_hdr){
      .src_cid = h->dst_cid,
      .dst_cid = htole64(v->guest_cid),
      .src_port = h->dst_port,
      .dst_port = h->src_port,
      .type = htole16(VSOCK_TYPE_STREAM),
      .op = htole16(OP_RST),
  };
}

static void vsock_tx_packet(struct vsock *v, const struct virtq_chain *ch)
{
  struct vsock_hdr h;
  if (ch->out_len < VSOCK_HDR)
    return;                            /* not even a header: nothing to answer */
  virtq_chain_read(ch, &h, sizeof(h)); /* one copy: the guest may rewrite it meanwhile */
  uint32_t len = le32toh(h.len), op = le16toh(h.op);
  if (len > ch->out_len - VSOCK_HDR || len > VSOCK_MAX_PAYLOAD ||
      le64toh(h.src_cid) != v->guest_cid || le64toh(h.dst_cid) != VSOCK_HOST_CID ||
      le16toh(h.type) != VSOCK_TYPE_STREAM) {
    struct conn *c = conn_find(v, le32toh(h.dst_port), le32toh(h.src_port));
    if (c && le64toh(h.src_cid) == v->guest_cid)
      conn_reset(c);
    else
      vsock_rst_reply(v, &h);
    return;
  }
  struct conn *c = conn_find(v, le32toh(h.dst_port), le32toh(h.src_port));
  if (!c) {
    if (op != OP_REQUEST || !vsock_guest_connect(v, &h))
      vsock_rst_reply(v, &h);
    return;
  }
  if (op == OP_RST) {
    conn_free(c);
    return;
  }
  if (c->state == CONN_RST)
    return; /* our RST is on its way */
  if (le32toh(h.fwd_cnt) != c->peer_fwd_cnt)
    c->credit_requested = false;
  c->peer_buf_alloc = le32toh(h.buf_alloc);
  c->peer_fwd_cnt = le32toh(h.fwd_cnt);
  switch (op) {
  case OP_RESPONSE: {
    if (c->state != CONN_REQUESTING || (c->pending & (1u << OP_REQUEST))) {
      conn_reset(c);
      break;
    }
    char ok[24];
    int n = snprintf(ok, sizeof(ok), "OK %u\n", c->host_port);
    /* A fresh socket takes a dozen bytes; if not, the host end is useless anyway. */
    if (send(c->fd, ok, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
      conn_reset(c);
      break;
    }
    c->state = CONN_ESTABLISHED;
    break;
  }
  case OP_SHUTDOWN:
    if (c->state != CONN_ESTABLISHED && c->state != CONN_CLOSING) {
      conn_reset(c);
      break;
    }
    c->guest_shutdown |= le32toh(h.flags) & (SHUTDOWN_RCV | SHUTDOWN_SEND);
    if (c->guest_shutdown == (SHUTDOWN_RCV | SHUTDOWN_SEND))
      c->state = CONN_CLOSING;
    if (c->buf_len == 0)
      conn_drained(c);
    break;
  case OP_RW: {
    if (c->state != CONN_ESTABLISHED || (c->guest_shutdown & SHUTDOWN_SEND) ||
        len > VSOCK_CONN_BUF - c->buf_len) {
      conn_reset(c); /* data where none may come, or past the credit we gave */
      break;
    }
    if (len == 0)
      break;
    c->rx_cnt += len;
    unsigned n = iov_slice(ch->iov, ch->nr_out, VSOCK_HDR, len, v->iov);
    conn_host_write(c, v->iov, n, len);
    break;
  }
  case OP_CREDIT_UPDATE:
    break; /* the credit fields, taken above, are the message */
  case OP_CREDIT_REQUEST:
    if (c->state == CONN_ESTABLISHED)
      c->pending |= 1u << OP_CREDIT_UPDATE;
    break;
  default: /* REQUEST for a connection that exists, or an unknown op */
    conn_reset(c);
    break;
  }
}

/* ---- host → guest (the rx queue) ---- */

static void hdr_for(const struct vsock *v, struct conn *c, struct vsock_hdr *h, uint16_t op)
{
  *h = (struct vsock_hdr){
      .src_cid = htole64(VSOCK_HOST_CID),
      .dst_cid = htole64(v->guest_cid),
      .src_port = htole32(c->host_port),
      .dst_port = htole32(c->guest_port),
      .type = htole16(VSOCK_TYPE_STREAM),
      .op = htole16(op),
      .buf_alloc = htole32(VSOCK_CONN_BUF),
      .fwd_cnt = htole32(c->fwd_cnt),
  };
  c->fwd_cnt_sent = c->fwd_cnt;
}

/* Fill rx chain ch (writable, >= a header) with connection c's next packet; bytes used, or 0
 * when c has nothing to send now. */
static uint32_t conn_fill(struct vsock *v, struct conn *c, const struct virtq_chain *ch)
{
  struct vsock_hdr h;
  for (;;) {
    if (c->pending) {
      uint16_t op = (uint16_t) __builtin_ctz(c->pending);
      c->pending &= ~(1u << op);
      hdr_for(v, c, &h, op);
      if (op == OP_SHUTDOWN)
        h.flags = htole32(c->shutdown_flags);
      virtq_chain_write(ch, &h, sizeof(h));
      if (op == OP_RST)
        conn_free(c);
      return VSOCK_HDR;
    }
    if (c->state != CONN_ESTABLISHED || !c->readable || c->host_eof ||
        (c->guest_shutdown & SHUTDOWN_RCV))
      return 0;
    uint32_t credit = conn_peer_credit(c);
    if (credit == 0) {
      if (c->credit_requested)
        return 0;
      c->credit_requested = true;
      c->pending |= 1u << OP_CREDIT_REQUEST;
      continue;
    }
    uint64_t room = ch->in_len - VSOCK_HDR;
    uint32_t want = credit < VSOCK_MAX_PAYLOAD ? credit : VSOCK_MAX_PAYLOAD;
    if (room < want)
      want = (uint32_t) room;
    if (want == 0)
      return 0; /* a header-only rx buffer: keep it for control packets */
    unsigned n = iov_slice(ch->iov + ch->nr_out, ch->nr_in, VSOCK_HDR, want, v->iov);
    ssize_t r = readv(c->fd, v->iov, (int) n);
    if (r > 0) {
      c->tx_cnt += (uint32_t) r;
      hdr_for(v, c, &h, OP_RW);
      h.len = htole32((uint32_t) r);
      virtq_chain_write(ch, &h, sizeof(h));
      return VSOCK_HDR + (uint32_t) r;
    }
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && errno == EAGAIN) {
      c->readable = false; /* the next edge says when */
      return 0;
    }
    if (r == 0) {
      c->host_eof = true;
      c->shutdown_flags = SHUTDOWN_SEND | (c->host_hup ? SHUTDOWN_RCV : 0);
      c->pending |= 1u << OP_SHUTDOWN;
      continue;
    }
    conn_reset(c); /* ECONNRESET and the like */
  }
}

/* Fill ch with the next packet of anyone; 0 when there is nothing to send. */
static uint32_t vsock_fill(struct vsock *v, const struct virtq_chain *ch)
{
  if (v->rst_len > 0) {
    virtq_chain_write(ch, &v->rst_queue[v->rst_head], VSOCK_HDR);
    v->rst_head = (v->rst_head + 1) % VSOCK_RST_QUEUE;
    v->rst_len--;
    return VSOCK_HDR;
  }
  unsigned n = v->nconns;
  for (unsigned i = 0; i < n; i++) {
    unsigned idx = (v->rr + i) % n;
    struct conn *c = &v->conns[idx];
    if (c->state == CONN_FREE || c->state == CONN_HANDSHAKE)
      continue;
    uint32_t len = conn_fill(v, c, ch);
    if (len) {
      v->rr = idx + 1;
      return len;
    }
  }
  return 0;
}

/* Send the guest what we can: one pass of at most a ring's worth of buffers, then let other
 * events run (kick_fd brings us back if there may be more). */
static void vsock_rx_kick(struct vsock *v)
{
  struct virtq *q = virtio_mmio_queue(v->t, VSOCK_QUEUE_RX);
  if (!q->ready || q->broken)
    return;
  bool pushed = false, more = true;
  for (unsigned i = 0; i < q->num; i++) {
    if (!v->rx_held) {
      int r = virtq_pop(q, &v->rx_chain);
      if (r < 0)
        virtio_mmio_set_needs_reset(v->t);
      if (r <= 0) {
        more = false;
        break;
      }
      v->rx_held = true;
    }
    struct virtq_chain *ch = &v->rx_chain;
    uint32_t len = 0;
    if (ch->nr_out == 0 && ch->in_len >= VSOCK_HDR) {
      len = vsock_fill(v, ch);
      if (len == 0) {
        more = false;
        break; /* nothing to send: keep the buffer for later */
      }
    } /* else a buffer we cannot use: give it back empty */
    virtq_push_used(q, ch->head, len);
    v->rx_held = false;
    pushed = true;
  }
  if (pushed)
    virtio_mmio_signal_used(v->t, VSOCK_QUEUE_RX);
  if (more) {
    uint64_t one = 1;
    if (write(v->kick_fd, &one, sizeof(one)) < 0) {
      /* cannot overflow: the loop reads it */
    }
  }
}

static void kick_event(void *opaque, uint32_t events)
{
  struct vsock *v = opaque;
  uint64_t n;
  if (read(v->kick_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
    return;
  virtio_mmio_lock(v->t);
  vsock_rx_kick(v);
  virtio_mmio_unlock(v->t);
}

/* ---- the device ---- */

static void vsock_queue_notify(void *dev, unsigned qi)
{
  struct vsock *v = dev;
  if (qi == VSOCK_QUEUE_TX) {
    struct virtq *q = virtio_mmio_queue(v->t, qi);
    for (unsigned i = 0; i < q->num; i++) {
      if (virtq_pop(q, &v->tx_chain) <= 0)
        break; /* empty, or broken: the transport sets NEEDS_RESET */
      vsock_tx_packet(v, &v->tx_chain);
      virtq_push_used(q, v->tx_chain.head, 0);
    }
    virtio_mmio_signal_used(v->t, qi);
  }
  /* New rx buffers, or answers to what came on tx. The event queue's buffers stay with us:
   * we never have a transport event to report. */
  vsock_rx_kick(v);
}

static void vsock_config_read(void *dev, uint32_t off, void *data, uint32_t len)
{
  const struct vsock *v = dev;
  uint64_t cid = htole64(v->guest_cid);
  memcpy(data, (const uint8_t *) &cid + off, len); /* off+len <= 8, checked by the transport */
}

/* A reset ends every connection the guest knew of. Host connections it never heard of (still
 * in the handshake, or with their REQUEST not sent yet) stay: a host that connects while the
 * driver is starting, which begins with a reset, gets its REQUEST once rx buffers come. */
static void vsock_reset(void *dev)
{
  struct vsock *v = dev;
  for (unsigned i = 0; i < v->nconns; i++) {
    struct conn *c = &v->conns[i];
    if (c->state != CONN_FREE && !conn_unseen(c))
      conn_free(c);
  }
  v->rst_len = 0;
  v->rx_held = false;
}

static void vsock_destroy(void *dev)
{
  struct vsock *v = dev;
  /* The loop is stopped (maybe gone): close without loop_del_fd. */
  for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
    if (v->conns[i].fd >= 0)
      close(v->conns[i].fd);
    free(v->conns[i].buf);
  }
  if (v->listen_fd >= 0) {
    close(v->listen_fd);
    unlink(v->uds_path);
  }
  if (v->kick_fd >= 0)
    close(v->kick_fd);
  free(v->uds_path);
  free(v);
}

static const struct virtio_device_ops vsock_ops = {
    .name = "vsock",
    .device_id = VIRTIO_ID_VSOCK,
    .num_queues = 3,
    .queue_max = VSOCK_QUEUE_SIZE,
    .config_size = sizeof(uint64_t),
    .config_read = vsock_config_read,
    .queue_notify = vsock_queue_notify,
    .reset = vsock_reset,
    .destroy = vsock_destroy,
};

int virtio_vsock_create(struct vm *vm, const char *uds_path, struct isola_error **err)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  /* The guest → host sockets are "<path>_<port>": those must fit too. */
  if (strlen(uds_path) + VSOCK_PORT_DIGITS >= sizeof(sa.sun_path))
    return isola_failx(err, ENAMETOOLONG,
                       "vsock socket \"%s\": longer than %zu bytes (a unix socket path plus "
                       "\"_<port>\")",
                       uds_path, sizeof(sa.sun_path) - 1 - VSOCK_PORT_DIGITS);
  strcpy(sa.sun_path, uds_path);
  _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return isola_fail(err, errno, "vsock socket \"%s\": socket", uds_path);
  if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
    return isola_fail(err, errno, "vsock socket \"%s\": cannot bind", uds_path);
  if (listen(fd, 64) < 0) {
    int r = isola_fail(err, errno, "vsock socket \"%s\": cannot listen", uds_path);
    unlink(uds_path);
    return r;
  }
  struct vsock *v = xzalloc(sizeof(*v));
  v->vm = vm;
  v->guest_cid = VSOCK_GUEST_CID;
  v->uds_path = xstrdup(uds_path);
  v->next_local_port = VSOCK_FIRST_LOCAL_PORT;
  for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
    v->conns[i] = (struct conn){.v = v, .fd = -1};
  v->listen_fd = steal_fd(&fd);
  v->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (v->kick_fd < 0) {
    int r = isola_fail(err, errno, "vsock: eventfd");
    vsock_destroy(v);
    return r;
  }
  /* From here on the transport owns v (and frees it on failure). */
  int r = virtio_mmio_create(vm, &vsock_ops, v, &v->t, err);
  if (r < 0)
    return r;
  if ((r = loop_add_fd(vm->loop, v->listen_fd, EPOLLIN, listen_event, v)) < 0 ||
      (r = loop_add_fd(vm->loop, v->kick_fd, EPOLLIN, kick_event, v)) < 0)
    return isola_fail(err, -r, "vsock socket \"%s\": cannot watch it", uds_path);
  return 0;
}
