/* The registry client: pulls an image over the Registry HTTP API v2 into the store.
 *
 * One curl easy handle per pull, reused for every request so the connection is kept. Every byte
 * from the registry is hostile: documents are held in memory only up to BLOB_MAX_DOC, blobs are
 * streamed into a blob_writer that hashes as they arrive and never accepts more than the
 * descriptor's size, and nothing is linked under a name before its digest is verified. Blobs are
 * stored bottom-up (layers, then config, then manifest) and the name is written last, so a pull
 * that fails or is killed leaves no image and no document that nothing could use; layers that
 * were complete are kept and skipped by the next pull.
 *
 * Progress protocol (pull_progress.fn): a blob already in the store gets exactly one call, with
 * done == total and finished set; a blob that is downloaded gets a first call with done == 0,
 * calls at most every 100 ms as bytes arrive, and a last call with finished set.
 */
#include "image.h"
#include "lazylib.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MANIFEST_ACCEPT                                                                            \
  "Accept: application/vnd.oci.image.manifest.v1+json, "                                           \
  "application/vnd.oci.image.index.v1+json, "                                                      \
  "application/vnd.docker.distribution.manifest.v2+json, "                                         \
  "application/vnd.docker.distribution.manifest.list.v2+json"

#define AUTH_HEADER_MAX (8u << 10) /* WWW-Authenticate headers we keep */
#define ERROR_BODY_MAX (64u << 10) /* a non-2xx body, kept for its error message */
#define TOKEN_REPLY_MAX (1u << 20) /* the token server's JSON */
#define TOKEN_MAX (64u << 10)      /* one bearer token */
#define AUTH_FILE_MAX (1u << 20)   /* auth.json / config.json */
#define MAX_REDIRECTS 5L
#define PROGRESS_INTERVAL_NS 100000000LL

struct registry {
  CURL *curl;
  struct image_store *store;
  const struct pull_opts *opts;
  const char *registry; /* as in the reference: "docker.io", "127.0.0.1:5000" */
  const char *host;     /* what we connect to: "registry-1.docker.io", "127.0.0.1:5000" */
  const char *repo;
  bool plain_http;
  bool verify_tls;
  enum registry_auth { AUTH_NONE, AUTH_BASIC, AUTH_BEARER } auth;
  char *token;
  char *username, *password; /* from the auth file, loaded on the first challenge */
  bool creds_loaded;
  char *creds_source; /* the auth file they came from (or that was searched), for messages */
  char errbuf[CURL_ERROR_SIZE];
};

/* A bounded in-memory buffer; `overflow` once more than max bytes were offered. */
struct membuf {
  char *data;
  size_t len, max;
  bool overflow;
};

static void membuf_append(struct membuf *b, const char *p, size_t n)
{
  if (n > b->max - b->len) {
    b->overflow = true;
    n = b->max - b->len;
  }
  if (!n)
    return;
  b->data = xrealloc(b->data, b->len + n + 1);
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
}

/* One request and the response we keep of it. Exactly one of `doc` (memory) and `writer` (a
 * blob) receives a 2xx body; any other status's body goes to `errbody`. */
struct xfer {
  struct registry *r;
  long status; /* of the latest response (each redirect hop resets it) */
  struct membuf www_auth;
  char content_digest[DIGEST_LEN + 1];
  struct membuf doc;
  struct blob_writer *writer;
  struct membuf errbody;
  struct isola_error *sink_err;
  /* progress of a blob */
  const char *digest;
  uint64_t done, total;
  struct timespec last_report;
};

static void xfer_clear(struct xfer *x)
{
  free(x->www_auth.data);
  free(x->doc.data);
  free(x->errbody.data);
  isola_error_free(&x->sink_err);
}

/* Case-insensitive "Name:" prefix of a header line; returns the value with spaces skipped. */
static const char *header_value(const char *line, size_t len, const char *name, size_t *vlen)
{
  size_t n = strlen(name);
  if (len <= n || strncasecmp(line, name, n) || line[n] != ':')
    return NULL;
  const char *v = line + n + 1, *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
    end--;
  *vlen = (size_t) (end - v);
  return v;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
  struct xfer *x = arg;
  size_t len = size * n, vlen;
  const char *v;
  if (len > 5 && !strncmp(p, "HTTP/", 5)) {
    /* A new response (after a redirect or a 401): forget the previous one's headers. */
    const char *sp = memchr(p, ' ', len);
    x->status = 0;
    if (sp && (size_t) (sp - p) + 4 <= len) {
      for (int i = 1; i <= 3 && sp[i] >= '0' && sp[i] <= '9'; i++)
        x->status = x->status * 10 + (sp[i] - '0');
    }
    x->www_auth.len = 0;
    x->www_auth.overflow = false;
    x->content_digest[0] = 0;
  } else if ((v = header_value(p, len, "WWW-Authenticate", &vlen))) {
    /* Several challenges may come in several headers: join them as one list. */
    x->www_auth.max = AUTH_HEADER_MAX;
    if (x->www_auth.len)
      membuf_append(&x->www_auth, ", ", 2);
    membuf_append(&x->www_auth, v, vlen);
  } else if ((v = header_value(p, len, "Docker-Content-Digest", &vlen))) {
    if (vlen == DIGEST_LEN) {
      memcpy(x->content_digest, v, DIGEST_LEN);
      x->content_digest[DIGEST_LEN] = 0;
    }
  }
  return len;
}

static int64_t ns_since(const struct timespec *a, const struct timespec *b)
{
  return (int64_t) (b->tv_sec - a->tv_sec) * 1000000000LL + (b->tv_nsec - a->tv_nsec);
}

static void progress_report(struct xfer *x, bool finished)
{
  const struct pull_progress *p = x->r->opts->progress;
  if (!p || !p->fn || !x->digest)
    return;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (!finished && x->done && ns_since(&x->last_report, &now) < PROGRESS_INTERVAL_NS)
    return;
  x->last_report = now;
  p->fn(p->arg, x->digest, x->done, x->total, finished);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
  struct xfer *x = arg;
  size_t len = size * n;
  if (x->status < 200 || x->status > 299) {
    /* Only the start of an error body is kept; the rest is drained, not an error. */
    membuf_append(&x->errbody, p, len);
    return len;
  }
  if (x->writer) {
    if (blob_writer_write(x->writer, p, len, &x->sink_err) < 0)
      return 0;
    x->done += len;
    progress_report(x, false);
    return len;
  }
  membuf_append(&x->doc, p, len);
  return x->doc.overflow ? 0 : len;
}

/* "scheme://host:port" of the URL curl ended on: where a failure happened, without the path
 * and query (a redirect's query may carry a signature). */
static char *effective_origin(struct registry *r)
{
  char *url = NULL, *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
  curl_easy_getinfo(r->curl, CURLINFO_EFFECTIVE_URL, &url);
  CURLU *u = curl_url();
  if (u && url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
      out = xasprintf("%s://%s:%s", scheme, host, port);
    else
      out = xasprintf("%s://%s", scheme, host);
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return out ? out : xstrdup("the registry");
}

/* Copy at most max printable characters of an outside string (a registry's message). */
static void sanitize(char *out, size_t outsz, const char *in, size_t max)
{
  size_t o = 0;
  for (size_t i = 0; in && in[i] && i < max && o + 1 < outsz; i++)
    out[o++] = ((unsigned char) in[i] < 0x20 || in[i] == 0x7f) ? ' ' : in[i];
  out[o] = 0;
}

/* "manifest unknown (HTTP 404)": the registry's {"errors":[{"code","message"}]} when present. */
static int http_error(struct xfer *x, const char *what, const char *hint, struct isola_error **err)
{
  char msg[256] = "";
  _cleanup_json_ struct json_object *doc = NULL;
  struct isola_error *ignored = NULL;
  if (x->errbody.len && !x->errbody.overflow &&
      json_parse_doc(x->errbody.data, x->errbody.len, "error", &doc, &ignored) == 0) {
    struct json_object *errors, *e0, *m;
    if (json_object_object_get_ex(doc, "errors", &errors) &&
        json_object_is_type(errors, json_type_array) && json_object_array_length(errors) > 0 &&
        (e0 = json_object_array_get_idx(errors, 0)) &&
        ((json_object_object_get_ex(e0, "message", &m) &&
          json_object_is_type(m, json_type_string) && json_object_get_string_len(m) > 0) ||
         (json_object_object_get_ex(e0, "code", &m) && json_object_is_type(m, json_type_string))))
      sanitize(msg, sizeof(msg), json_object_get_string(m), 200);
  }
  isola_error_free(&ignored);
  int code = x->status == 404 ? ENOENT : x->status == 401 || x->status == 403 ? EACCES : EIO;
  if (x->status == 401 || x->status == 403)
    return isola_failx(err, code, "%s: unauthorized%s%s (HTTP %ld)%s", what, msg[0] ? ": " : "",
                       msg, x->status, hint ? hint : "");
  if (!msg[0])
    return isola_failx(err, code, "%s: HTTP %ld from %s", what, x->status, x->r->host);
  return isola_failx(err, code, "%s: %s (HTTP %ld)", what, msg, x->status);
}

static int curl_error(struct registry *r, struct xfer *x, CURLcode rc, const char *what,
                      struct isola_error **err)
{
  if (rc == CURLE_WRITE_ERROR && x->sink_err) {
    /* The blob writer's message already names the blob. */
    int code = x->sink_err->code ? x->sink_err->code : EIO;
    if (err && !*err)
      *err = steal_pointer(&x->sink_err);
    return -code;
  }
  if (rc == CURLE_WRITE_ERROR && x->doc.overflow)
    return isola_failx(err, EFBIG, "%s: larger than the limit of %zu bytes", what, x->doc.max);
  _cleanup_free_ char *origin = effective_origin(r);
  long os_errno = 0;
  curl_easy_getinfo(r->curl, CURLINFO_OS_ERRNO, &os_errno);
  switch (rc) {
  case CURLE_COULDNT_CONNECT:
    return isola_failx(err, ECONNREFUSED, "%s: cannot connect to %s: %s", what, origin,
                       os_errno ? strerror((int) os_errno) : r->errbuf);
  case CURLE_COULDNT_RESOLVE_HOST:
    return isola_failx(err, EHOSTUNREACH, "%s: cannot resolve the host of %s", what, origin);
  case CURLE_OPERATION_TIMEDOUT:
    return isola_failx(err, ETIMEDOUT, "%s: %s timed out", what, origin);
  case CURLE_TOO_MANY_REDIRECTS:
    return isola_failx(err, ELOOP, "%s: more than %ld redirects", what, MAX_REDIRECTS);
  default:
    return isola_failx(err, EIO, "%s: %s: %s", what, origin,
                       r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
  }
}

/* One GET with the current credentials. Returns 0 after a completed transfer (any status). */
static int http_get(struct registry *r, const char *url, const char *accept, bool send_auth,
                    struct xfer *x, const char *what, struct isola_error **err)
{
  CURL *c = r->curl;
  struct curl_slist *headers = NULL;
  if (accept)
    headers = curl_slist_append(NULL, accept);
  r->errbuf[0] = 0;
  x->status = 0;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  /* Credentials through curl's own auth (never a custom header): curl 7.88 drops them when a
   * redirect leaves the first host, scheme or port (CURLOPT_UNRESTRICTED_AUTH stays off). */
  curl_easy_setopt(c, CURLOPT_USERNAME, NULL);
  curl_easy_setopt(c, CURLOPT_PASSWORD, NULL);
  curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, NULL);
  curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long) CURLAUTH_NONE);
  if (send_auth && r->auth == AUTH_BEARER) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long) CURLAUTH_BEARER);
    curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, r->token);
  } else if (send_auth && r->auth == AUTH_BASIC) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, r->username);
    curl_easy_setopt(c, CURLOPT_PASSWORD, r->password);
  }
  CURLcode rc = curl_easy_perform(c);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK)
    return curl_error(r, x, rc, what, err);
  return 0;
}

/* ---- credentials ---- */

static int base64_value(char ch)
{
  if (ch >= 'A' && ch <= 'Z')
    return ch - 'A';
  if (ch >= 'a' && ch <= 'z')
    return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9')
    return ch - '0' + 52;
  if (ch == '+')
    return 62;
  if (ch == '/')
    return 63;
  return -1;
}

/* Standard base64 with optional padding; NULL when malformed. */
static char *base64_decode(const char *in, size_t len, size_t *outlen)
{
  while (len && in[len - 1] == '=')
    len--;
  char *out = xmalloc(len * 3 / 4 + 1);
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = base64_value(in[i]);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (uint32_t) v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char) ((acc >> bits) & 0xff);
    }
  }
  out[o] = 0;
  *outlen = o;
  return out;
}

/* How well an auth file key names this registry: 0 = not at all, longer = more specific. Keys
 * are "host", "host/namespace/repo" (containers-auth.json) or a URL such as
 * "https://index.docker.io/v1/" (docker's config.json). */
static size_t auth_key_score(const char *key, const char *registry, const char *repo)
{
  const char *k = key;
  size_t klen;
  bool url = false;
  if (!strncmp(k, "https://", 8) || !strncmp(k, "http://", 7)) {
    k = strstr(k, "://") + 3;
    url = true;
  }
  klen = strlen(k);
  if (url) /* a URL names a host; its path is the legacy API version */
    klen = strcspn(k, "/");
  while (klen && k[klen - 1] == '/')
    klen--;
  bool hub = !strcmp(registry, "docker.io");
  if ((klen == strlen(registry) && !strncmp(k, registry, klen)) ||
      (hub && ((klen == 15 && !strncmp(k, "index.docker.io", 15)) ||
               (klen == 20 && !strncmp(k, "registry-1.docker.io", 20)))))
    return 1;
  /* "registry/ns" matches "registry/ns/repo" and "registry/ns", at a component boundary. */
  size_t rlen = strlen(registry);
  if (url || klen <= rlen || strncmp(k, registry, rlen) || k[rlen] != '/')
    return 0;
  const char *kr = k + rlen + 1;
  size_t krlen = klen - rlen - 1;
  if (!strncmp(repo, kr, krlen) && (repo[krlen] == 0 || repo[krlen] == '/'))
    return 1 + krlen;
  return 0;
}

static int auth_file_path(struct registry *r, char **path, bool *explicit)
{
  const char *env = getenv("REGISTRY_AUTH_FILE");
  *explicit = true;
  if (r->opts->auth_file) {
    *path = xstrdup(r->opts->auth_file);
    return 0;
  }
  if (env && *env) {
    *path = xstrdup(env);
    return 0;
  }
  *explicit = false;
  char *run = xasprintf("/run/containers/%u/auth.json", (unsigned) getuid());
  if (access(run, F_OK) == 0) {
    *path = run;
    return 0;
  }
  free(run);
  const char *home = getenv("HOME");
  if (!home || !*home) {
    struct passwd *pw = getpwuid(getuid());
    home = pw ? pw->pw_dir : NULL;
  }
  *path = home ? xasprintf("%s/.docker/config.json", home) : NULL;
  return 0;
}

/* Find credentials for the registry; none found is not an error (r->username stays NULL). */
static int creds_load(struct registry *r, struct isola_error **err)
{
  if (r->creds_loaded)
    return 0;
  r->creds_loaded = true;
  _cleanup_free_ char *path = NULL, *text = NULL;
  bool explicit;
  size_t len;
  auth_file_path(r, &path, &explicit);
  if (!path)
    return 0;
  r->creds_source = xstrdup(path);
  int ret = read_file_at(AT_FDCWD, path, AUTH_FILE_MAX, &text, &len);
  if (ret < 0) {
    if (!explicit && ret == -ENOENT)
      return 0;
    return isola_fail(err, -ret, "auth file %s", path);
  }
  _cleanup_json_ struct json_object *doc = NULL;
  _cleanup_free_ char *what = xasprintf("auth file %s", path);
  if (json_parse_doc(text, len, what, &doc, err) < 0)
    return -EINVAL;
  struct json_object *auths;
  if (!json_object_object_get_ex(doc, "auths", &auths) ||
      !json_object_is_type(auths, json_type_object))
    return 0;
  struct json_object *best = NULL;
  size_t best_score = 0;
  json_object_object_foreach (auths, key, val) {
    size_t score = auth_key_score(key, r->registry, r->repo);
    if (score > best_score) {
      best_score = score;
      best = val;
    }
  }
  struct json_object *a;
  if (!best || !json_object_object_get_ex(best, "auth", &a) ||
      !json_object_is_type(a, json_type_string) || json_object_get_string_len(a) == 0)
    return 0;
  size_t plen;
  _cleanup_free_ char *plain =
      base64_decode(json_object_get_string(a), (size_t) json_object_get_string_len(a), &plen);
  char *colon = plain ? memchr(plain, ':', plen) : NULL;
  if (!colon || strlen(plain) != plen)
    return isola_failx(err, EINVAL, "%s: \"auth\" for %s is not base64 of user:password", what,
                       r->registry);
  *colon = 0;
  r->username = xstrdup(plain);
  r->password = xstrdup(colon + 1);
  explicit_bzero(plain, plen);
  return 0;
}

/* ---- authentication challenges ---- */

struct challenge {
  char scheme[16];
  char *realm, *service, *scope;
};

static void challenge_clear(struct challenge *c)
{
  free(c->realm);
  free(c->service);
  free(c->scope);
  memset(c, 0, sizeof(*c));
}

static bool is_token_char(char ch)
{
  return ch && !strchr(" \t,=\"", ch) && (unsigned char) ch > 0x20 && ch != 0x7f;
}

/* Parse a WWW-Authenticate value (RFC 7235: challenges separated by commas, each a scheme and
 * auth-params, values tokens or quoted strings with backslash escapes) and keep the Bearer
 * challenge, else the Basic one. Returns false when neither is there. */
static bool challenge_parse(const char *h, struct challenge *out)
{
  struct challenge cur = {0};
  bool have = false;
  const char *p = h;
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (!*p)
      break;
    const char *tok = p;
    while (is_token_char(*p))
      p++;
    size_t toklen = (size_t) (p - tok);
    if (!toklen)
      break; /* garbage: stop with what we have */
    const char *q = p;
    while (*q == ' ' || *q == '\t')
      q++;
    if (*q == '=' && cur.scheme[0]) {
      /* An auth-param of the current challenge. */
      q++;
      while (*q == ' ' || *q == '\t')
        q++;
      char *val;
      if (*q == '"') {
        q++;
        val = xmalloc(strlen(q) + 1);
        size_t n = 0;
        while (*q && *q != '"') {
          if (*q == '\\' && q[1])
            q++;
          val[n++] = *q++;
        }
        val[n] = 0;
        if (*q == '"')
          q++;
      } else {
        const char *v = q;
        while (is_token_char(*q) || *q == '=')
          q++;
        val = xasprintf("%.*s", (int) (q - v), v);
      }
      char **slot = NULL;
      if (toklen == 5 && !strncasecmp(tok, "realm", 5))
        slot = &cur.realm;
      else if (toklen == 7 && !strncasecmp(tok, "service", 7))
        slot = &cur.service;
      else if (toklen == 5 && !strncasecmp(tok, "scope", 5))
        slot = &cur.scope;
      if (slot && !*slot)
        *slot = val;
      else
        free(val);
      p = q;
      continue;
    }
    if (*q == '=') { /* a parameter before any scheme */
      p = q + 1;
      continue;
    }
    /* A new challenge: keep the finished one if it is better than what we have. */
    if (cur.scheme[0]) {
      if (!have || (!strcasecmp(cur.scheme, "Bearer") && strcasecmp(out->scheme, "Bearer"))) {
        if (have)
          challenge_clear(out);
        *out = cur;
        have = true;
      } else {
        challenge_clear(&cur);
      }
      memset(&cur, 0, sizeof(cur));
    }
    if (toklen < sizeof(cur.scheme)) {
      memcpy(cur.scheme, tok, toklen);
      cur.scheme[toklen] = 0;
    } else {
      snprintf(cur.scheme, sizeof(cur.scheme), "?");
    }
  }
  if (cur.scheme[0]) {
    if (!have || (!strcasecmp(cur.scheme, "Bearer") && strcasecmp(out->scheme, "Bearer"))) {
      if (have)
        challenge_clear(out);
      *out = cur;
      have = true;
    } else {
      challenge_clear(&cur);
    }
  }
  if (have && strcasecmp(out->scheme, "Bearer") && strcasecmp(out->scheme, "Basic")) {
    challenge_clear(out);
    have = false;
  }
  return have;
}

static bool host_is_loopback(const char *hostport)
{
  char host[256];
  const char *end;
  if (hostport[0] == '[') {
    end = strchr(hostport, ']');
    if (!end)
      return false;
    hostport++;
  } else {
    end = strchr(hostport, ':');
    if (!end)
      end = hostport + strlen(hostport);
  }
  if ((size_t) (end - hostport) >= sizeof(host))
    return false;
  memcpy(host, hostport, (size_t) (end - hostport));
  host[end - hostport] = 0;
  if (!strcasecmp(host, "localhost"))
    return true;
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Get a bearer token from the challenge's realm for pulling our repository. */
static int token_fetch(struct registry *r, const struct challenge *c, struct isola_error **err)
{
  if (!c->realm || (strncmp(c->realm, "https://", 8) && strncmp(c->realm, "http://", 7)))
    return isola_failx(err, EPROTO, "registry %s: token realm \"%.200s\" is not an http(s) URL",
                       r->registry, c->realm ? c->realm : "");
  if (creds_load(r, err) < 0)
    return -EINVAL;
  /* Credentials travel in clear only to a loopback realm or when asked to be insecure. */
  const char *realm_host = strstr(c->realm, "://") + 3;
  bool realm_https = !strncmp(c->realm, "https://", 8);
  bool send_creds =
      r->username && (realm_https || r->opts->insecure || host_is_loopback(realm_host));
  _cleanup_free_ char *scope_raw = xasprintf("repository:%s:pull", r->repo);
  char *scope = curl_easy_escape(r->curl, scope_raw, 0);
  char *service = c->service ? curl_easy_escape(r->curl, c->service, 0) : NULL;
  _cleanup_free_ char *url =
      xasprintf("%s%s%s%s%sscope=%s", c->realm, strchr(c->realm, '?') ? "&" : "?",
                service ? "service=" : "", service ? service : "", service ? "&" : "", scope);
  curl_free(scope);
  curl_free(service);

  /* Declared before the first goto: a cleanup variable must never be jumped over. */
  _cleanup_json_ struct json_object *doc = NULL;
  struct xfer x = {.r = r, .doc = {.max = TOKEN_REPLY_MAX}, .errbody = {.max = ERROR_BODY_MAX}};
  struct xfer *xp = &x;
  enum registry_auth saved = r->auth;
  r->auth = send_creds ? AUTH_BASIC : AUTH_NONE;
  int ret = http_get(r, url, NULL, true, xp, "token server", err);
  r->auth = saved;
  if (ret < 0)
    goto out;
  if (x.status == 401 || x.status == 403) {
    _cleanup_free_ char *origin = effective_origin(r);
    if (r->username)
      ret = isola_failx(err, EACCES,
                        "unauthorized: token server %s refused the credentials for %s "
                        "(HTTP %ld)",
                        origin, r->registry, x.status);
    else
      ret = isola_failx(err, EACCES,
                        "unauthorized: token server %s refused anonymous access "
                        "(HTTP %ld); %s has no credentials for %s (try --authfile)",
                        origin, x.status, r->creds_source ? r->creds_source : "no auth file",
                        r->registry);
    goto out;
  }
  if (x.status < 200 || x.status > 299) {
    ret = http_error(xp, "token server", NULL, err);
    goto out;
  }
  struct json_object *t;
  ret = json_parse_doc(x.doc.data ? x.doc.data : "", x.doc.len, "token reply", &doc, err);
  if (ret < 0)
    goto out;
  if ((!json_object_object_get_ex(doc, "token", &t) || !json_object_is_type(t, json_type_string) ||
       !json_object_get_string_len(t)) &&
      (!json_object_object_get_ex(doc, "access_token", &t) ||
       !json_object_is_type(t, json_type_string))) {
    ret = isola_failx(err, EPROTO, "token reply has no \"token\"");
    goto out;
  }
  const char *tok = json_object_get_string(t);
  size_t tlen = strlen(tok);
  bool ok = tlen > 0 && tlen <= TOKEN_MAX;
  for (size_t i = 0; ok && i < tlen; i++)
    ok = (unsigned char) tok[i] > 0x20 && (unsigned char) tok[i] < 0x7f;
  if (!ok) {
    ret = isola_failx(err, EPROTO, "token reply: the token is empty, too long or not printable");
    goto out;
  }
  free(r->token);
  r->token = xstrdup(tok);
  r->auth = AUTH_BEARER;
  ret = 0;
out:
  xfer_clear(&x);
  return ret;
}

/* Answer a 401's challenge: a bearer token or our basic credentials. */
static int registry_authenticate(struct registry *r, struct xfer *x, const char *what,
                                 struct isola_error **err)
{
  struct challenge c = {0};
  if (x->www_auth.overflow || !challenge_parse(x->www_auth.data ? x->www_auth.data : "", &c))
    return http_error(x, what, NULL, err);
  int ret;
  if (!strcasecmp(c.scheme, "Bearer")) {
    ret = token_fetch(r, &c, err);
    if (ret < 0)
      isola_error_prefix(err, "%s", what);
  } else {
    ret = creds_load(r, err);
    if (ret >= 0 && !r->username)
      ret = isola_failx(err, EACCES,
                        "%s: unauthorized: %s wants credentials and %s has none for it (try "
                        "--authfile)",
                        what, r->registry, r->creds_source ? r->creds_source : "no auth file");
    else if (ret >= 0)
      r->auth = AUTH_BASIC;
  }
  challenge_clear(&c);
  return ret;
}

/* GET a registry path, answering one authentication challenge. A non-2xx reply fails with
 * the registry's message. */
static int registry_get(struct registry *r, const char *path, const char *accept, struct xfer *x,
                        const char *what, struct isola_error **err)
{
  _cleanup_free_ char *url =
      xasprintf("%s://%s/v2/%s/%s", r->plain_http ? "http" : "https", r->host, r->repo, path);
  for (int attempt = 0;; attempt++) {
    x->errbody.len = 0;
    int ret = http_get(r, url, accept, true, x, what, err);
    if (ret < 0)
      return ret;
    if (x->status >= 200 && x->status <= 299)
      return 0;
    if (x->status != 401 || attempt > 0) {
      _cleanup_free_ char *hint = NULL;
      if ((x->status == 401 || x->status == 403) && !r->username)
        hint = xasprintf("; %s has no credentials for %s (try --authfile)",
                         r->creds_source ? r->creds_source : "no auth file", r->registry);
      return http_error(x, what, hint, err);
    }
    ret = registry_authenticate(r, x, what, err);
    if (ret < 0)
      return ret;
  }
}

/* ---- the pull ---- */

/* Fetch a manifest or index by tag or digest into memory; its digest is computed from the bytes
 * and must equal `expected` when given. */
static int fetch_manifest(struct registry *r, const char *reference, const char *expected,
                          char **doc, size_t *len, char digest[DIGEST_LEN + 1],
                          struct isola_error **err)
{
  _cleanup_free_ char *path = xasprintf("manifests/%s", reference);
  _cleanup_free_ char *what =
      xasprintf(strncmp(reference, "sha256:", 7) ? "manifest \"%s\"" : "manifest %s", reference);
  struct xfer x = {.r = r, .doc = {.max = BLOB_MAX_DOC}, .errbody = {.max = ERROR_BODY_MAX}};
  int ret = registry_get(r, path, MANIFEST_ACCEPT, &x, what, err);
  if (ret < 0)
    goto out;
  if (!x.doc.len) {
    ret = isola_failx(err, EPROTO, "%s: empty reply", what);
    goto out;
  }
  sha256_digest_of(x.doc.data, x.doc.len, digest);
  if (expected && strcmp(expected, digest)) {
    ret = isola_failx(err, EILSEQ, "%s: digest mismatch: expected %s, got %s", what, expected,
                      digest);
    goto out;
  }
  if (x.content_digest[0] && !strncmp(x.content_digest, "sha256:", 7) &&
      strcmp(x.content_digest, digest)) {
    ret = isola_failx(err, EILSEQ, "%s: digest mismatch: registry says %s, content is %s", what,
                      x.content_digest, digest);
    goto out;
  }
  *doc = steal_pointer(&x.doc.data);
  *len = x.doc.len;
  ret = 0;
out:
  xfer_clear(&x);
  return ret;
}

/* A small blob (the config) into memory, verified against its descriptor. */
static int fetch_doc_blob(struct registry *r, const char *digest, int64_t size, const char *kind,
                          char **doc, size_t *len, struct isola_error **err)
{
  _cleanup_free_ char *path = xasprintf("blobs/%s", digest);
  _cleanup_free_ char *what = xasprintf("%s %s", kind, digest);
  if (size < 0 || (uint64_t) size > BLOB_MAX_DOC)
    return isola_failx(err, EFBIG, "%s: size %lld is over the limit of %u bytes", what,
                       (long long) size, BLOB_MAX_DOC);
  struct xfer x = {.r = r, .doc = {.max = (size_t) size}, .errbody = {.max = ERROR_BODY_MAX}};
  char got[DIGEST_LEN + 1];
  int ret = registry_get(r, path, NULL, &x, what, err);
  if (ret < 0)
    goto out;
  if (x.doc.len != (size_t) size) {
    ret = isola_failx(err, EPROTO, "%s: got %zu bytes, the manifest says %lld", what, x.doc.len,
                      (long long) size);
    goto out;
  }
  sha256_digest_of(x.doc.data ? x.doc.data : "", x.doc.len, got);
  if (strcmp(got, digest)) {
    ret = isola_failx(err, EILSEQ, "%s: digest mismatch: expected %s, got %s", what, digest, got);
    goto out;
  }
  *doc = x.doc.data ? steal_pointer(&x.doc.data) : xstrdup("");
  *len = x.doc.len;
  ret = 0;
out:
  xfer_clear(&x);
  return ret;
}

static void progress_once(struct registry *r, const char *digest, uint64_t done, uint64_t total,
                          bool finished)
{
  const struct pull_progress *p = r->opts->progress;
  if (p && p->fn)
    p->fn(p->arg, digest, done, total, finished);
}

/* A layer streamed into the store: verified as it arrives, linked only when complete. */
static int fetch_layer(struct registry *r, const struct layer_desc *l, struct isola_error **err)
{
  if (store_has_blob(r->store, l->digest)) {
    progress_once(r, l->digest, (uint64_t) l->size, (uint64_t) l->size, true);
    return 0;
  }
  _cleanup_free_ char *path = xasprintf("blobs/%s", l->digest);
  _cleanup_free_ char *what = xasprintf("layer %s", l->digest);
  if (l->size < 0 || (uint64_t) l->size > BLOB_MAX_LAYER)
    return isola_failx(err, EFBIG, "%s: size %lld is over the limit of %llu bytes", what,
                       (long long) l->size, (unsigned long long) BLOB_MAX_LAYER);
  _cleanup_blob_writer_ struct blob_writer *w = NULL;
  int ret = blob_writer_new(r->store, what, (uint64_t) l->size, &w, err);
  if (ret < 0)
    return ret;
  struct xfer x = {.r = r,
                   .writer = w,
                   .errbody = {.max = ERROR_BODY_MAX},
                   .digest = l->digest,
                   .total = (uint64_t) l->size};
  progress_report(&x, false);
  ret = registry_get(r, path, NULL, &x, what, err);
  if (ret < 0)
    goto out;
  if (blob_writer_size(w) != (uint64_t) l->size) {
    ret = isola_failx(err, EPROTO, "%s: got %llu bytes, the manifest says %lld", what,
                      (unsigned long long) blob_writer_size(w), (long long) l->size);
    goto out;
  }
  char got[DIGEST_LEN + 1];
  ret = blob_writer_commit(w, l->digest, got, err);
  if (ret < 0)
    goto out;
  progress_report(&x, true);
out:
  xfer_clear(&x);
  return ret;
}

static int registry_init(struct registry *r, struct image_store *s, const struct image_ref *ref,
                         const struct pull_opts *o, struct isola_error **err)
{
  r->store = s;
  r->opts = o;
  r->registry = ref->registry;
  r->repo = ref->repository;
  r->host = (!strcmp(ref->registry, "docker.io") || !strcmp(ref->registry, "index.docker.io"))
                ? "registry-1.docker.io"
                : ref->registry;
  /* As docker: a loopback registry speaks plain HTTP. */
  r->plain_http = o->insecure || host_is_loopback(r->host);
  r->verify_tls = !o->insecure;
  r->curl = curl_easy_init();
  if (!r->curl)
    return isola_failx(err, ENOMEM, "cannot initialize libcurl");
  CURL *c = r->curl;
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, r->plain_http ? "http,https" : "https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
  curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, r->verify_tls ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, r->verify_tls ? 2L : 0L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  /* A registry that stops sending fails the pull instead of hanging it. */
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L << 10);
  curl_easy_setopt(c, CURLOPT_USERAGENT,
                   "isola/"
                   "0.1");
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  return 0;
}

static void registry_clear(struct registry *r)
{
  if (r->curl)
    curl_easy_cleanup(r->curl);
  free(r->token);
  if (r->password)
    explicit_bzero(r->password, strlen(r->password));
  free(r->username);
  free(r->password);
  free(r->creds_source);
}

static int pull(struct image_store *s, const struct image_ref *ref, const struct pull_opts *o,
                char digest_out[DIGEST_LEN + 1], struct isola_error **err)
{
  struct registry r = {0};
  _cleanup_free_ char *doc = NULL, *config_doc = NULL, *name = NULL;
  size_t len = 0, config_len = 0;
  char digest[DIGEST_LEN + 1], stored[DIGEST_LEN + 1];
  struct image_manifest *m = NULL;
  struct image_config *cfg = NULL;
  int ret = registry_init(&r, s, ref, o, err);
  if (ret < 0)
    goto out;

  ret = fetch_manifest(&r, ref->digest ? ref->digest : ref->tag, ref->digest, &doc, &len, digest,
                       err);
  if (ret < 0)
    goto out;
  if (manifest_is_index(doc, len)) {
    char chosen[DIGEST_LEN + 1];
    ret = index_select(doc, len, o->os ? o->os : "linux", o->arch ? o->arch : "amd64", chosen, err);
    if (ret < 0)
      goto out;
    free(steal_pointer(&doc));
    ret = fetch_manifest(&r, chosen, chosen, &doc, &len, digest, err);
    if (ret < 0)
      goto out;
  }
  ret = manifest_parse(doc, len, &m, err);
  if (ret < 0)
    goto out;

  /* The config first, held in memory: it must describe as many layers as the manifest lists
   * before any layer is fetched. */
  if (store_has_blob(s, m->config_digest))
    ret = store_read_blob(s, m->config_digest, &config_doc, &config_len, err);
  else
    ret = fetch_doc_blob(&r, m->config_digest, m->config_size, "config", &config_doc, &config_len,
                         err);
  if (ret < 0)
    goto out;
  ret = image_config_parse(config_doc, config_len, &cfg, err);
  if (ret < 0)
    goto out;
  if (cfg->n_diff_ids != m->n_layers) {
    ret = isola_failx(err, EINVAL, "config %s lists %zu layers (rootfs.diff_ids), the manifest %zu",
                      m->config_digest, cfg->n_diff_ids, m->n_layers);
    goto out;
  }

  for (size_t i = 0; i < m->n_layers; i++) {
    ret = fetch_layer(&r, &m->layers[i], err);
    if (ret < 0)
      goto out;
  }

  /* Bottom-up: the documents only once everything they reference is stored. */
  ret = store_put_blob(s, config_doc, config_len, "config", stored, err);
  if (ret < 0)
    goto out;
  ret = store_put_blob(s, doc, len, "manifest", stored, err);
  if (ret < 0)
    goto out;
  if (strcmp(stored, digest)) {
    ret = isola_failx(err, EILSEQ, "manifest: stored as %s, fetched as %s", stored, digest);
    goto out;
  }
  name = ref_format(ref);
  ret = store_tag(s, name, digest, err);
  if (ret < 0)
    goto out;
  memcpy(digest_out, digest, DIGEST_LEN + 1);
  ret = 0;
out:
  if (cfg)
    image_config_free(cfg);
  if (m)
    manifest_free(m);
  registry_clear(&r);
  return ret;
}

int image_pull(struct image_store *s, const char *ref_text, const struct pull_opts *o,
               char digest_out[DIGEST_LEN + 1], struct isola_error **err)
{
  static const struct pull_opts defaults = {0};
  struct image_ref ref = {0};
  int ret = ref_parse(ref_text, &ref, err);
  if (ret < 0)
    return ret;
  if ((ret = lazy_curl_load(err)) < 0) {
    ref_clear(&ref);
    return isola_error_prefix(err, "pull \"%s\"", ref_text);
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  ret = pull(s, &ref, o ? o : &defaults, digest_out, err);
  curl_global_cleanup();
  if (ret < 0)
    isola_error_prefix(err, "pull \"%s\"", ref_text);
  ref_clear(&ref);
  return ret;
}
