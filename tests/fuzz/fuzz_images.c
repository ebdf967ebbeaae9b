/* Fuzz the parsers of what registries and image archives send: manifests, indexes, image
 * configs, and image references (the first line of the input). */
#include "fuzz.h"
#include "image.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  _cleanup_free_ char *text = xmalloc(size + 1);
  memcpy(text, data, size);
  text[size] = 0;
  struct isola_error *err = NULL;

  struct image_manifest *m = NULL;
  if (manifest_parse(text, size, &m, &err) == 0)
    manifest_free(m);
  isola_error_free(&err);
  if (manifest_is_index(text, size)) {
    char d[DIGEST_LEN + 1];
    index_select(text, size, "linux", "amd64", d, &err);
    isola_error_free(&err);
  }
  struct image_config *c = NULL;
  if (image_config_parse(text, size, &c, &err) == 0)
    image_config_free(c);
  isola_error_free(&err);

  _cleanup_free_ char *line = xstrndup(text, strcspn(text, "\n"));
  struct image_ref r;
  if (ref_parse(line, &r, &err) == 0) {
    free(ref_format(&r));
    ref_clear(&r);
  }
  isola_error_free(&err);
  return 0;
}
