/* state: the OCI state document of one container. */
#include "cli.h"

#include <string.h>

int verb_state(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  const struct opt opts[] = {{NULL, 0, 0, NULL}};
  int first = opts_parse("state", opts, argc, argv, err);
  if (first < 0 || need_args("state", argc, first, 1, "ID", err) < 0)
    return 1;
  _cleanup_free_ char *json = NULL;
  if (container_state_json(&cli->ro, argv[first], &json, err) < 0)
    return 1;
  printf("%s\n", json);
  return 0;
}
