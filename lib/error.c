/* Error objects: a one-line message and an errno, carried up to the CLI. */
#include "util.h"

#include <string.h>

static int vfail(struct isola_error **err, int errnum, bool with_strerror, const char *fmt,
                 va_list ap)
{
  int ret = errnum > 0 ? -errnum : (errnum < 0 ? errnum : -EINVAL);
  if (err == NULL || *err != NULL)
    return ret;
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0)
    abort();
  if (with_strerror && errnum != 0) {
    char *full = xasprintf("%s: %s", msg, strerror(errnum < 0 ? -errnum : errnum));
    free(msg);
    msg = full;
  }
  struct isola_error *e = xzalloc(sizeof(*e));
  e->code = -ret;
  e->msg = msg;
  *err = e;
  return ret;
}

int isola_fail(struct isola_error **err, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int r = vfail(err, errnum, true, fmt, ap);
  va_end(ap);
  return r;
}

int isola_failx(struct isola_error **err, int errnum, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int r = vfail(err, errnum, false, fmt, ap);
  va_end(ap);
  return r;
}

int isola_error_prefix(struct isola_error **err, const char *fmt, ...)
{
  if (err == NULL || *err == NULL)
    return -EINVAL;
  va_list ap;
  va_start(ap, fmt);
  char *prefix = NULL;
  if (vasprintf(&prefix, fmt, ap) < 0)
    abort();
  va_end(ap);
  char *msg = xasprintf("%s: %s", prefix, (*err)->msg);
  free(prefix);
  free((*err)->msg);
  (*err)->msg = msg;
  return -(*err)->code;
}

void isola_error_free(struct isola_error **err)
{
  if (err && *err) {
    free((*err)->msg);
    free(*err);
    *err = NULL;
  }
}

/* Wire format: int32 code, uint32 length, message bytes. */
int isola_error_send(int fd, const struct isola_error *err)
{
  const char *msg = err && err->msg ? err->msg : "unknown error";
  int32_t code = err ? err->code : EIO;
  uint32_t len = strlen(msg);
  if (len > 4096)
    len = 4096;
  char buf[8 + 4096];
  memcpy(buf, &code, 4);
  memcpy(buf + 4, &len, 4);
  memcpy(buf + 8, msg, len);
  return write_all(fd, buf, 8 + len);
}

int isola_error_recv(int fd, struct isola_error **err)
{
  char hdr[8];
  int n = read_all(fd, hdr, sizeof(hdr));
  if (n != (int) sizeof(hdr))
    return n < 0 ? n : -EPIPE;
  int32_t code;
  uint32_t len;
  memcpy(&code, hdr, 4);
  memcpy(&len, hdr + 4, 4);
  if (len > 4096)
    return -EPROTO;
  char msg[4097];
  n = read_all(fd, msg, len);
  if (n != (int) len)
    return n < 0 ? n : -EPIPE;
  msg[len] = '\0';
  return isola_failx(err, code ? code : EIO, "%s", msg);
}

void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p)
    abort();
  return p;
}

void *xzalloc(size_t n)
{
  void *p = calloc(1, n ? n : 1);
  if (!p)
    abort();
  return p;
}

void *xrealloc(void *p, size_t n)
{
  p = realloc(p, n ? n : 1);
  if (!p)
    abort();
  return p;
}

char *xstrdup(const char *s)
{
  if (!s)
    return NULL;
  char *p = strdup(s);
  if (!p)
    abort();
  return p;
}

char *xasprintf(const char *fmt, ...)
{
  va_list ap;
  char *s;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    abort();
  va_end(ap);
  return s;
}

size_t strv_length(char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

char **strv_copy(char *const *v)
{
  size_t n = strv_length(v);
  char **r = xzalloc((n + 1) * sizeof(char *));
  for (size_t i = 0; i < n; i++)
    r[i] = xstrdup(v[i]);
  return r;
}

char **strv_append(char **v, const char *s)
{
  size_t n = strv_length(v);
  v = xrealloc(v, (n + 2) * sizeof(char *));
  v[n] = xstrdup(s);
  v[n + 1] = NULL;
  return v;
}

void strv_free(char **v)
{
  if (!v)
    return;
  for (char **p = v; *p; p++)
    free(*p);
  free(v);
}
