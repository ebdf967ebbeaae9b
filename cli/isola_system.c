/* system prune: remove the blobs and layers that no image and no container references. */
#include "isola.h"

#include <string.h>

int isola_verb_system(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  bool force = false;
  const struct opt opts[] = {{"force", 'f', OPT_BOOL, &force}, {NULL, 0, 0, NULL}};
  if (argc < 2 || strcmp(argv[1], "prune")) {
    isola_failx(err, EINVAL, "system: usage: isola system prune");
    return 1;
  }
  int first = opts_parse("system prune", opts, argc - 2, argv + 2, err);
  if (first < 0)
    return 1;
  if (first + 2 != argc) {
    isola_failx(err, EINVAL, "system: usage: isola system prune");
    return 1;
  }
  _cleanup_store_ struct image_store *s = NULL;
  uint64_t freed = 0;
  if (isola_open_store(cli, &s, err) < 0 || store_prune(s, &freed, err) < 0)
    return 1;
  printf("Total reclaimed space: %llu bytes\n", (unsigned long long) freed);
  return 0;
}
