/* start: let a created container's process run. */
#include "cli.h"

int verb_start(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  const struct opt opts[] = {{NULL, 0, 0, NULL}};
  int first = opts_parse("start", opts, argc, argv, err);
  if (first < 0 || need_args("start", argc, first, 1, "ID", err) < 0)
    return 1;
  return container_start(&cli->ro, argv[first], err) < 0 ? 1 : 0;
}
