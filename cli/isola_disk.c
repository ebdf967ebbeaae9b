/* disk: make (once) and print the path of an image's VM disk, an erofs image of its rootfs. */
#include "isola.h"

int isola_verb_disk(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  const struct opt opts[] = {{NULL, 0, 0, NULL}};
  int first = opts_parse("disk", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  first += 1;
  if (argc - first != 1) {
    isola_failx(err, EINVAL, "disk: usage: isola disk IMAGE");
    return 1;
  }
  struct engine eng = {0};
  struct image_entry img = {0};
  _cleanup_free_ char *path = NULL;
  int r = isola_engine_open(cli, &eng, err);
  if (r == 0 && (r = engine_find_image(&eng, argv[first], &img, err)) == 0) {
    r = store_image_disk(eng.store, &img, &path, err);
    free(img.name);
    free(img.created);
  }
  isola_engine_close(&eng);
  if (r < 0)
    return 1;
  printf("%s\n", path);
  return 0;
}
