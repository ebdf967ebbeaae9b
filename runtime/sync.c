/* Messages between the runtime and the container process over a SOCK_SEQPACKET pair. */
#include "container.h"

#include <string.h>
#include <sys/socket.h>

int sync_send(int fd, enum sync_msg msg)
{
  uint8_t b = (uint8_t) msg;
  return write_all(fd, &b, 1);
}

int sync_send_pid(int fd, pid_t pid)
{
  uint8_t buf[5] = {SYNC_PID};
  int32_t p = pid;
  memcpy(buf + 1, &p, 4);
  return write_all(fd, buf, sizeof(buf));
}

/* One datagram: SYNC_ERROR, int32 errno, then the message. */
int sync_send_error(int fd, const struct isola_error *err)
{
  const char *msg = err && err->msg ? err->msg : "container setup failed";
  int32_t code = err && err->code ? err->code : EIO;
  size_t len = strlen(msg);
  if (len > 4096)
    len = 4096;
  char buf[1 + 4 + 4096];
  buf[0] = SYNC_ERROR;
  memcpy(buf + 1, &code, 4);
  memcpy(buf + 5, msg, len);
  return write_all(fd, buf, 5 + len);
}

static int error_from(const uint8_t *buf, size_t len, struct isola_error **err)
{
  int32_t code = EIO;
  if (len >= 5)
    memcpy(&code, buf + 1, 4);
  if (code <= 0)
    code = EIO;
  if (len <= 5)
    return isola_failx(err, code, "container setup failed");
  return isola_failx(err, code, "%.*s", (int) (len - 5), (const char *) buf + 5);
}

static int recv_msg(int fd, uint8_t *buf, size_t cap, size_t *len)
{
  ssize_t n;
  do
    n = recv(fd, buf, cap, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  *len = n;
  return 0;
}

int sync_expect(int fd, enum sync_msg want, struct isola_error **err)
{
  uint8_t buf[8192];
  size_t len = 0;
  int r = recv_msg(fd, buf, sizeof(buf), &len);
  if (r < 0)
    return isola_fail(err, -r, "lost contact with the container process");
  if (len == 0)
    return isola_failx(err, EPIPE, "the container process exited during setup");
  if (buf[0] == SYNC_ERROR)
    return error_from(buf, len, err);
  if (buf[0] != want)
    return isola_failx(err, EPROTO, "unexpected message %u from the container process", buf[0]);
  return 0;
}

int sync_recv_pid(int fd, pid_t *pid, struct isola_error **err)
{
  uint8_t buf[8192];
  size_t len = 0;
  int r = recv_msg(fd, buf, sizeof(buf), &len);
  if (r < 0)
    return isola_fail(err, -r, "lost contact with the container process");
  if (len == 0)
    return isola_failx(err, EPIPE, "the container process exited during setup");
  if (buf[0] == SYNC_ERROR)
    return error_from(buf, len, err);
  if (buf[0] != SYNC_PID || len != 5)
    return isola_failx(err, EPROTO, "unexpected message %u from the container process", buf[0]);
  int32_t p;
  memcpy(&p, buf + 1, 4);
  *pid = p;
  return 0;
}

int sync_send_data(int fd, enum sync_msg msg, const char *data, size_t len)
{
  if (len > SYNC_MAX_DATA)
    return -EMSGSIZE;
  _cleanup_free_ char *buf = xmalloc(len + 1);
  buf[0] = (char) msg;
  memcpy(buf + 1, data, len);
  return write_all(fd, buf, len + 1);
}

int sync_expect_data(int fd, enum sync_msg want, char **data, struct isola_error **err)
{
  _cleanup_free_ uint8_t *buf = xmalloc(SYNC_MAX_DATA + 2);
  size_t len = 0;
  int r = recv_msg(fd, buf, SYNC_MAX_DATA + 1, &len);
  if (r < 0)
    return isola_fail(err, -r, "lost contact with the runtime");
  if (len == 0)
    return isola_failx(err, EPIPE, "the runtime went away during setup");
  if (buf[0] != want)
    return isola_failx(err, EPROTO, "unexpected message %u from the runtime", buf[0]);
  char *d = xmalloc(len);
  memcpy(d, buf + 1, len - 1);
  d[len - 1] = '\0';
  *data = d;
  return 0;
}

int sync_expect_eof(int fd, struct isola_error **err)
{
  uint8_t buf[8192];
  size_t len = 0;
  int r = recv_msg(fd, buf, sizeof(buf), &len);
  if (r < 0)
    return isola_fail(err, -r, "lost contact with the container process");
  if (len == 0)
    return 0;
  if (buf[0] == SYNC_ERROR)
    return error_from(buf, len, err);
  return isola_failx(err, EPROTO, "unexpected message %u from the container process", buf[0]);
}
