/* virtio-vsock driven by the guest itself (a minimal stream driver: one connection at a time,
 * our buf_alloc GBUF so that the host's 256 KiB need many credit rounds); "test=" picks:
 *   1  guest → host: connect to host port `port=` (the test's unix server at UDS_<port>
 *      echoes), send TOTAL (256 KiB) of pattern(offset) within the device's credit, check the echo,
 *      shut down both ways and expect the device's RST;
 *   2  host → guest: listen on `lport=`: answer the device's REQUEST, echo everything the
 *      host sends (checking the device never exceeds our credit) until the host's SHUTDOWN;
 *   3  hostile: bogus headers (each answered by RST), packets that get no answer, a flood of
 *      REQUESTs while we hold back rx buffers; then a normal "ping" to `port=` still works. */
#include "vdev.h"

struct vhdr {
  uint64_t src_cid, dst_cid;
  uint32_t src_port, dst_port, len;
  uint16_t type, op;
  uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
enum { OP_REQUEST = 1, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQ };

#define NRX 16
#define PAYLOAD 4096
#define GBUF 16384u
#define TOTAL (256u << 10)
#define MY_PORT 5000u

static struct vq rxq, txq, evq;
static uint8_t rxbuf[NRX][sizeof(struct vhdr) + PAYLOAD] __attribute__((aligned(16)));
static uint8_t txbuf[sizeof(struct vhdr) + PAYLOAD] __attribute__((aligned(16)));
static uint8_t evbuf[4][8];
static uint8_t pkt[PAYLOAD], pend[GBUF];
static uint64_t base;
static bool replenish = true;
static uint32_t fwd;      /* bytes of the current connection we consumed */
static uint32_t fwd_sent; /* fwd as the device last heard it */

static uint8_t pattern(uint64_t off)
{
  return (uint8_t) ((off * 2654435761u) >> 24);
}

static void post_rx(uint16_t i)
{
  rxq.desc[i] = (struct vdesc){(uint64_t) rxbuf[i], sizeof(rxbuf[i]), DESC_WRITE, 0};
  vdev_offer(&rxq, i);
}

static void setup(void)
{
  base = vdev_find(19);
  CHECK(1, base != 0);
  CHECK(2, vio_negotiate(base, 0));
  CHECK(3, vdev_queue(base, 0, &rxq) && vdev_queue(base, 1, &txq) && vdev_queue(base, 2, &evq));
  vio_w(base, VIRTIO_STATUS, 3 | 8 | 4);
  CHECK(4, vio_r(base, 0x100) == 3 && vio_r(base, 0x104) == 0); /* guest_cid */
  for (uint16_t i = 0; i < NRX; i++)
    post_rx(i);
  vio_w(base, VIRTIO_QUEUE_NOTIFY, 0);
  for (uint16_t i = 0; i < 4; i++) {
    evq.desc[i] = (struct vdesc){(uint64_t) evbuf[i], sizeof(evbuf[i]), DESC_WRITE, 0};
    vdev_offer(&evq, i);
  }
  vio_w(base, VIRTIO_QUEUE_NOTIFY, 2);
}

/* Send a packet with header h (len = payload bytes put after it, desc_len = what the
 * descriptor claims) and wait until the device took it. */
static void send_raw(const struct vhdr *h, const void *data, uint32_t n, uint32_t desc_len)
{
  memcpy(txbuf, h, sizeof(*h));
  if (n)
    memcpy(txbuf + sizeof(*h), data, n);
  txq.desc[0] = (struct vdesc){(uint64_t) txbuf, desc_len, 0, 0};
  vdev_submit(base, 1, &txq, 0);
  uint32_t id, len;
  CHECK(5, vdev_reap(&txq, VDEV_WAIT, &id, &len));
}

static void send_pkt(uint32_t dst_port, uint16_t op, uint32_t flags, const void *data, uint32_t n)
{
  struct vhdr h = {3, 2, MY_PORT, dst_port, n, 1, op, flags, GBUF, fwd};
  send_raw(&h, data, n, (uint32_t) sizeof(h) + n);
  fwd_sent = fwd;
}

/* The next packet from the device; its payload (up to PAYLOAD bytes) lands in pkt. */
static bool recv_pkt(struct vhdr *h, uint64_t ticks)
{
  uint32_t id, len;
  if (!vdev_reap(&rxq, ticks, &id, &len))
    return false;
  CHECK(6, id < NRX && len >= sizeof(*h) && len <= sizeof(rxbuf[0]));
  memcpy(h, rxbuf[id], sizeof(*h));
  CHECK(7, h->len == len - sizeof(*h));
  memcpy(pkt, rxbuf[id] + sizeof(*h), h->len);
  if (replenish) {
    post_rx((uint16_t) id);
    vio_w(base, VIRTIO_QUEUE_NOTIFY, 0);
  }
  return true;
}

static void guest_to_host(uint32_t port)
{
  struct vhdr h;
  send_pkt(port, OP_REQUEST, 0, NULL, 0);
  CHECK(10, recv_pkt(&h, VDEV_WAIT) && h.op == OP_RESPONSE && h.src_port == port);
  uint32_t peer_alloc = h.buf_alloc, peer_fwd = h.fwd_cnt, sent = 0, rcvd = 0;
  while (sent < TOTAL || rcvd < TOTAL) {
    uint32_t credit = peer_alloc - (sent - peer_fwd);
    if (sent < TOTAL && credit > 0) {
      uint32_t n = TOTAL - sent < PAYLOAD ? TOTAL - sent : PAYLOAD;
      n = n < credit ? n : credit;
      for (uint32_t i = 0; i < n; i++)
        pkt[i] = pattern(sent + i);
      send_pkt(port, OP_RW, 0, pkt, n);
      sent += n;
    }
    bool stalled = !(sent < TOTAL && peer_alloc - (sent - peer_fwd) > 0);
    while (recv_pkt(&h, stalled ? VDEV_WAIT : 0)) {
      stalled = false;
      CHECK(11, h.src_port == port && h.dst_port == MY_PORT && h.op != OP_RST);
      peer_alloc = h.buf_alloc;
      peer_fwd = h.fwd_cnt;
      if (h.op == OP_RW) {
        CHECK(12, rcvd + h.len - fwd_sent <= GBUF); /* the device kept to our credit */
        for (uint32_t i = 0; i < h.len; i++)
          CHECK(13, pkt[i] == pattern(rcvd + i));
        rcvd += h.len;
        fwd = rcvd; /* consumed at once */
      }
      if (h.op == OP_CREDIT_REQ || rcvd - fwd_sent >= GBUF / 2)
        send_pkt(port, OP_CREDIT_UPDATE, 0, NULL, 0);
    }
  }
  send_pkt(port, OP_SHUTDOWN, 3, NULL, 0);
  do
    CHECK(14, recv_pkt(&h, VDEV_WAIT));
  while (h.op != OP_RST);
  puts_serial("vsock: guest to host ok\n");
}

static void host_to_guest(uint32_t lport)
{
  struct vhdr h;
  CHECK(20,
        recv_pkt(&h, VDEV_WAIT * 4) && h.op == OP_REQUEST && h.dst_port == lport && h.src_cid == 2);
  uint32_t peer = h.src_port, peer_alloc = h.buf_alloc, peer_fwd = h.fwd_cnt;
  struct vhdr r = {3, 2, lport, peer, 0, 1, OP_RESPONSE, 0, GBUF, 0};
  send_raw(&r, NULL, 0, sizeof(r));
  uint32_t rcvd = 0, echoed = 0, npend = 0;
  bool host_done = false;
  fwd = 0;
  while (!host_done || npend) {
    if (npend && peer_alloc - (echoed - peer_fwd) > 0) {
      uint32_t n = npend < PAYLOAD ? npend : PAYLOAD;
      uint32_t credit = peer_alloc - (echoed - peer_fwd);
      n = n < credit ? n : credit;
      fwd += n;
      r = (struct vhdr){3, 2, lport, peer, n, 1, OP_RW, 0, GBUF, fwd};
      send_raw(&r, pend, n, (uint32_t) sizeof(r) + n);
      for (uint32_t i = n; i < npend; i++)
        pend[i - n] = pend[i];
      npend -= n;
      echoed += n;
    }
    while (recv_pkt(&h, npend || host_done ? 0 : VDEV_WAIT)) {
      CHECK(21, h.src_port == peer && h.dst_port == lport && h.op != OP_RST);
      peer_alloc = h.buf_alloc;
      peer_fwd = h.fwd_cnt;
      if (h.op == OP_RW) {
        CHECK(22, npend + h.len <= GBUF); /* the device kept to our credit */
        memcpy(pend + npend, pkt, h.len);
        npend += h.len;
        rcvd += h.len;
      } else if (h.op == OP_SHUTDOWN) {
        host_done = true;
      } else if (h.op == OP_CREDIT_REQ) {
        r = (struct vhdr){3, 2, lport, peer, 0, 1, OP_CREDIT_UPDATE, 0, GBUF, fwd};
        send_raw(&r, NULL, 0, sizeof(r));
      }
      if (npend)
        break;
    }
  }
  r = (struct vhdr){3, 2, lport, peer, 0, 1, OP_SHUTDOWN, 3, GBUF, fwd};
  send_raw(&r, NULL, 0, sizeof(r));
  do
    CHECK(23, recv_pkt(&h, VDEV_WAIT));
  while (h.op != OP_RST);
  puts_serial("vsock: host to guest echoed ");
  put_hex(rcvd);
  puts_serial("\n");
}

static void hostile(uint32_t port)
{
  struct vhdr h;
  const struct vhdr bad[] = {
      {3, 2, 300, 9, 1000, 1, OP_RW, 0, GBUF, 0},         /* len past the payload */
      {3, 2, 301, 9, 0xffffffffu, 1, OP_RW, 0, GBUF, 0},  /* huge len */
      {9, 2, 302, 9, 0, 1, OP_REQUEST, 0, GBUF, 0},       /* not our CID */
      {3, 7, 303, 9, 0, 1, OP_REQUEST, 0, GBUF, 0},       /* not the host */
      {3, 2, 304, 9, 0, 2, OP_REQUEST, 0, GBUF, 0},       /* SEQPACKET */
      {3, 2, 305, 9, 0, 1, 99, 0, GBUF, 0},               /* unknown op */
      {3, 2, 306, 9, 0, 1, OP_RW, 0, GBUF, 0},            /* no such connection */
      {3, 2, 307, 9, 0, 1, OP_CREDIT_UPDATE, 0, GBUF, 0}, /* no such connection */
  };
  for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    send_raw(&bad[i], NULL, 0, sizeof(bad[i]) + 10);
    CHECK(30 + i, recv_pkt(&h, VDEV_WAIT) && h.op == OP_RST && h.dst_port == bad[i].src_port);
  }
  /* No answer: a short header, an RST for nothing. */
  struct vhdr rst = {3, 2, 310, 9, 0, 1, OP_RST, 0, GBUF, 0};
  send_raw(&rst, NULL, 0, 20);
  send_raw(&rst, NULL, 0, sizeof(rst));
  /* A flood of REQUESTs for dead ports while we hold back rx buffers. */
  replenish = false;
  for (uint32_t i = 0; i < 300; i++) {
    struct vhdr req = {3, 2, 1000 + i, 40000, 0, 1, OP_REQUEST, 0, GBUF, 0};
    send_raw(&req, NULL, 0, sizeof(req));
  }
  unsigned answers = 0;
  while (recv_pkt(&h, VDEV_QUIET))
    answers++;
  CHECK(40, answers == NRX);
  replenish = true;
  for (uint16_t i = 0; i < NRX; i++)
    post_rx(i);
  vio_w(base, VIRTIO_QUEUE_NOTIFY, 0);
  while (recv_pkt(&h, VDEV_QUIET))
    answers++;
  CHECK(41, answers <= NRX + 64);
  /* Still serving: ping the host's echo server. */
  send_pkt(port, OP_REQUEST, 0, NULL, 0);
  CHECK(42, recv_pkt(&h, VDEV_WAIT) && h.op == OP_RESPONSE);
  send_pkt(port, OP_RW, 0, "ping", 4);
  do
    CHECK(43, recv_pkt(&h, VDEV_WAIT) && h.op != OP_RST);
  while (h.op != OP_RW);
  CHECK(44, h.len == 4 && pkt[0] == 'p' && pkt[3] == 'g');
  send_pkt(port, OP_SHUTDOWN, 3, NULL, 0);
  do
    CHECK(45, recv_pkt(&h, VDEV_WAIT));
  while (h.op != OP_RST);
  CHECK(46, !(vio_r(base, VIRTIO_STATUS) & 0x40));
  puts_serial("vsock: hostile survived, flood answers ");
  put_hex(answers);
  puts_serial("\n");
}

void guest_main(void)
{
  setup();
  uint32_t port = (uint32_t) cmdline_u64("port", 0);
  switch (cmdline_u64("test", 0)) {
  case 1:
    guest_to_host(port);
    break;
  case 2:
    host_to_guest((uint32_t) cmdline_u64("lport", 0));
    break;
  case 3:
    hostile(port);
    break;
  default:
    fail(99, "no test= on the command line");
  }
  pass();
}
