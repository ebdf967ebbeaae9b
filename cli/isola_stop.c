/* stop: the container's stop signal, then SIGKILL after a grace period. */
#include "isola.h"

static int stop_one(struct engine *e, const char *what, void *arg, struct isola_error **err)
{
  return engine_stop(e, what, *(int *) arg, err);
}

int isola_verb_stop(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  int timeout = 10;
  const struct opt opts[] = {{"time", 't', OPT_INT, &timeout}, {NULL, 0, 0, NULL}};
  int first = opts_parse("stop", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  first += 1;
  if (first >= argc || timeout < 0) {
    isola_failx(err, EINVAL, "stop: usage: isola stop [-t SECONDS] CONTAINER...");
    return 1;
  }
  return isola_each_container(cli, argv + first, argc - first, true, stop_one, &timeout, err);
}
