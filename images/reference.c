/* Image references as docker writes them: [registry/]repository[:tag][@digest]. */
#include "image.h"

#include <ctype.h>
#include <string.h>

#define REF_MAX 512

void ref_clear(struct image_ref *r)
{
  free(r->registry);
  free(r->repository);
  free(r->tag);
  free(r->digest);
  memset(r, 0, sizeof(*r));
}

/* A repository path component: [a-z0-9]+ joined by ".", "_", "__" or "-"s. */
static bool component_ok(const char *c, size_t n)
{
  if (!n || !isalnum((unsigned char) c[0]) || !isalnum((unsigned char) c[n - 1]))
    return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = c[i];
    if ((ch >= 'a' && ch <= 'z') || isdigit(ch))
      continue;
    if (ch == '.' || ch == '_' || ch == '-') {
      unsigned char next = c[i + 1];
      if (ch == '.' && !isalnum(next))
        return false;
      if (ch == '_' && next == '_' && c[i + 2] == '_')
        return false;
      continue;
    }
    return false;
  }
  return true;
}

static bool tag_ok(const char *t)
{
  size_t n = strlen(t);
  if (n == 0 || n > 128 || !(isalnum((unsigned char) t[0]) || t[0] == '_'))
    return false;
  for (size_t i = 0; i < n; i++)
    if (!(isalnum((unsigned char) t[i]) || strchr("_.-", t[i])))
      return false;
  return true;
}

static bool registry_ok(const char *h, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!(isalnum((unsigned char) h[i]) || strchr(".-:[]", h[i])))
      return false;
  return n > 0;
}

int ref_parse(const char *text, struct image_ref *out, struct isola_error **err)
{
  memset(out, 0, sizeof(*out));
  if (!text || !*text || strlen(text) > REF_MAX)
    return isola_failx(err, EINVAL, "invalid image reference \"%.80s\"", text ? text : "");
  _cleanup_free_ char *s = xstrdup(text);
  char *at = strchr(s, '@');
  if (at) {
    *at = 0;
    if (digest_check(at + 1, "image reference", NULL) < 0)
      return isola_failx(err, EINVAL, "invalid image reference \"%s\": bad digest", text);
    out->digest = xstrdup(at + 1);
  }
  char *slash = strrchr(s, '/');
  char *colon = strrchr(slash ? slash : s, ':');
  if (colon) {
    *colon = 0;
    if (!tag_ok(colon + 1)) {
      ref_clear(out);
      return isola_failx(err, EINVAL, "invalid image reference \"%s\": bad tag", text);
    }
    out->tag = xstrdup(colon + 1);
  }
  char *first_slash = strchr(s, '/');
  const char *repo = s;
  if (first_slash) {
    size_t n = first_slash - s;
    if (memchr(s, '.', n) || memchr(s, ':', n) || (n == 9 && !strncmp(s, "localhost", 9))) {
      if (!registry_ok(s, n)) {
        ref_clear(out);
        return isola_failx(err, EINVAL, "invalid image reference \"%s\": bad registry", text);
      }
      out->registry = xstrndup(s, n);
      repo = first_slash + 1;
    }
  }
  if (!out->registry)
    out->registry = xstrdup("docker.io");
  if (!strcmp(out->registry, "index.docker.io")) {
    free(out->registry);
    out->registry = xstrdup("docker.io");
  }
  /* Every path component must be valid; uppercase is refused as docker does. */
  for (const char *p = repo;;) {
    const char *e = strchr(p, '/');
    size_t n = e ? (size_t) (e - p) : strlen(p);
    if (!component_ok(p, n)) {
      ref_clear(out);
      return isola_failx(err, EINVAL,
                         "invalid image reference \"%s\": repository names are lowercase "
                         "letters, digits and separators",
                         text);
    }
    if (!e)
      break;
    p = e + 1;
  }
  if (!strcmp(out->registry, "docker.io") && !strchr(repo, '/'))
    out->repository = xasprintf("library/%s", repo);
  else
    out->repository = xstrdup(repo);
  if (!out->tag && !out->digest)
    out->tag = xstrdup("latest");
  return 0;
}

char *ref_format(const struct image_ref *r)
{
  if (r->tag && r->digest)
    return xasprintf("%s/%s:%s@%s", r->registry, r->repository, r->tag, r->digest);
  if (r->digest)
    return xasprintf("%s/%s@%s", r->registry, r->repository, r->digest);
  return xasprintf("%s/%s:%s", r->registry, r->repository, r->tag);
}

char *ref_normalize(const char *text)
{
  struct image_ref r;
  if (ref_parse(text, &r, NULL) < 0)
    return NULL;
  char *full = ref_format(&r);
  ref_clear(&r);
  return full;
}

char *ref_short_name(const char *full)
{
  if (!strncmp(full, "docker.io/library/", 18))
    return xstrdup(full + 18);
  if (!strncmp(full, "docker.io/", 10))
    return xstrdup(full + 10);
  return xstrdup(full);
}
