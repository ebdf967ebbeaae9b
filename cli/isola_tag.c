/* tag: another name for an image. */
#include "isola.h"

int isola_verb_tag(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  const struct opt opts[] = {{NULL, 0, 0, NULL}};
  int first = opts_parse("tag", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  first += 1;
  if (argc - first != 2) {
    isola_failx(err, EINVAL, "tag: usage: isola tag IMAGE NEW_NAME[:TAG]");
    return 1;
  }
  struct image_ref ref = {0};
  if (ref_parse(argv[first + 1], &ref, err) < 0)
    return 1;
  _cleanup_free_ char *full = ref_format(&ref);
  bool has_digest = ref.digest != NULL;
  ref_clear(&ref);
  if (has_digest) {
    isola_failx(err, EINVAL, "tag: \"%s\": a new name cannot carry a digest", argv[first + 1]);
    return 1;
  }
  _cleanup_store_ struct image_store *s = NULL;
  struct image_entry img = {0};
  if (isola_open_store(cli, &s, err) < 0 || store_resolve(s, argv[first], &img, err) < 0)
    return 1;
  int r = store_tag(s, full, img.manifest, err);
  free(img.name);
  free(img.created);
  return r < 0 ? 1 : 0;
}
