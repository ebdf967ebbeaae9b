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

char *xstrndup(const char *s, size_t n)
{
  char *p = strndup(s, n);
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
