/* logs: what a container wrote, stdout to stdout and stderr to stderr, byte for byte. */
#include "isola.h"

int isola_verb_logs(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  bool follow = false;
  const struct opt opts[] = {{"follow", 'f', OPT_BOOL, &follow}, {NULL, 0, 0, NULL}};
  int first = opts_parse("logs", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  if (first + 2 != argc) {
    isola_failx(err, EINVAL, "logs: usage: isola logs [-f] CONTAINER");
    return 1;
  }
  struct engine eng = {0};
  int r = isola_engine_open(cli, &eng, err);
  if (r == 0) {
    store_release(eng.store);
    r = engine_logs(&eng, argv[first + 1], follow, err);
  }
  isola_engine_close(&eng);
  return r < 0 ? 1 : 0;
}
