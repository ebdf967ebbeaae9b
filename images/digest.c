/* sha256 digests: the "sha256:HEX" form checked, and streaming hashes through libcrypto. */
#include "image.h"

#include <openssl/evp.h>
#include <string.h>

struct sha256_ctx {
  EVP_MD_CTX *md;
};

int digest_check(const char *digest, const char *what, struct isola_error **err)
{
  if (!digest)
    return isola_failx(err, EINVAL, "%s: missing digest", what);
  if (strncmp(digest, "sha256:", 7))
    return isola_failx(err, EINVAL, "%s: digest \"%.80s\" is not sha256:<64 hex digits>", what,
                       digest);
  const char *h = digest + 7;
  size_t n = 0;
  for (; h[n]; n++)
    if (!((h[n] >= '0' && h[n] <= '9') || (h[n] >= 'a' && h[n] <= 'f')) || n >= DIGEST_HEX_LEN)
      break;
  if (n != DIGEST_HEX_LEN || h[n])
    return isola_failx(err, EINVAL, "%s: digest \"%.80s\" is not sha256:<64 hex digits>", what,
                       digest);
  return 0;
}

struct sha256_ctx *sha256_new(void)
{
  struct sha256_ctx *c = xzalloc(sizeof(*c));
  c->md = EVP_MD_CTX_new();
  if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
    abort();
  return c;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
  if (len && EVP_DigestUpdate(c->md, data, len) != 1)
    abort();
}

void sha256_final(struct sha256_ctx *c, char out[DIGEST_LEN + 1])
{
  unsigned char md[32];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(c->md, md, &n) != 1 || n != 32)
    abort();
  static const char hex[] = "0123456789abcdef";
  memcpy(out, "sha256:", 7);
  for (int i = 0; i < 32; i++) {
    out[7 + 2 * i] = hex[md[i] >> 4];
    out[8 + 2 * i] = hex[md[i] & 15];
  }
  out[DIGEST_LEN] = 0;
  sha256_free(c);
}

void sha256_free(struct sha256_ctx *c)
{
  if (!c)
    return;
  EVP_MD_CTX_free(c->md);
  free(c);
}

void sha256_digest_of(const void *data, size_t len, char out[DIGEST_LEN + 1])
{
  struct sha256_ctx *c = sha256_new();
  sha256_update(c, data, len);
  sha256_final(c, out);
}
