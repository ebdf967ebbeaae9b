/* kill: a signal (default SIGKILL, as docker) to a running container. */
#include "isola.h"

static int kill_one(struct engine *e, const char *what, void *arg, struct isola_error **err)
{
  return engine_kill(e, what, *(int *) arg, err);
}

int isola_verb_kill(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  const char *signal = "KILL";
  const struct opt opts[] = {{"signal", 's', OPT_STR, &signal}, {NULL, 0, 0, NULL}};
  int first = opts_parse("kill", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  first += 1;
  if (first >= argc) {
    isola_failx(err, EINVAL, "kill: usage: isola kill [-s SIGNAL] CONTAINER...");
    return 1;
  }
  int sig = parse_signal(signal);
  if (sig < 0) {
    isola_failx(err, EINVAL, "kill: unknown signal \"%s\"", signal);
    return 1;
  }
  return isola_each_container(cli, argv + first, argc - first, false, kill_one, &sig, err);
}
