/* kill: a signal to the container's init, or with --all to every process in its cgroup. */
#include "cli.h"

#include <signal.h>

int verb_kill(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  bool all = false;
  const struct opt opts[] = {{"all", 'a', OPT_BOOL, &all}, {NULL, 0, 0, NULL}};
  int first = opts_parse("kill", opts, argc, argv, err);
  if (first < 0)
    return 1;
  if (argc - first < 1 || argc - first > 2) {
    isola_failx(err, EINVAL, "kill: usage: isola-runtime kill [--all] ID [SIGNAL]");
    return 1;
  }
  int sig = SIGTERM;
  if (argc - first == 2 && (sig = parse_signal(argv[first + 1])) < 0) {
    isola_failx(err, EINVAL, "kill: unknown signal \"%s\"", argv[first + 1]);
    return 1;
  }
  return container_kill(&cli->ro, argv[first], sig, all, err) < 0 ? 1 : 0;
}
