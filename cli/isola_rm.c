/* rm: remove containers (running ones only with --force). */
#include "isola.h"

static int rm_one(struct engine *e, const char *what, void *arg, struct isola_error **err)
{
  return engine_rm(e, what, *(bool *) arg, err);
}

int isola_verb_rm(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  bool force = false;
  const struct opt opts[] = {{"force", 'f', OPT_BOOL, &force}, {NULL, 0, 0, NULL}};
  int first = opts_parse("rm", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  first += 1;
  if (first >= argc) {
    isola_failx(err, EINVAL, "rm: usage: isola rm [-f] CONTAINER...");
    return 1;
  }
  return isola_each_container(cli, argv + first, argc - first, false, rm_one, &force, err);
}
