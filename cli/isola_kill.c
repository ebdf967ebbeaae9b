/* kill: a signal (default SIGKILL, as docker) to a running container. */
#include "isola.h"

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
  struct engine eng = {0};
  int status = 0;
  if (isola_engine_open(cli, &eng, err) < 0)
    return 1;
  for (int i = first; i < argc; i++) {
    struct isola_error *e1 = NULL;
    if (engine_kill(&eng, argv[i], sig, &e1) < 0) {
      log_error_to_stderr("isola", e1->msg);
      isola_error_free(&e1);
      status = 1;
    } else {
      printf("%s\n", argv[i]);
    }
  }
  isola_engine_close(&eng);
  return status;
}
