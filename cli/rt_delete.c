/* delete: remove a container (--force: whatever state it is in). */
#include "cli.h"

int verb_delete(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  bool force = false;
  const struct opt opts[] = {{"force", 'f', OPT_BOOL, &force}, {NULL, 0, 0, NULL}};
  int first = opts_parse("delete", opts, argc, argv, err);
  if (first < 0 || need_args("delete", argc, first, 1, "[--force] ID", err) < 0)
    return 1;
  int r = container_delete(&cli->ro, argv[first], force, err);
  if (r == -ENOENT && force) {
    isola_error_free(err); /* runc: delete --force of a missing container succeeds */
    return 0;
  }
  return r < 0 ? 1 : 0;
}
