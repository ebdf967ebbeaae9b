/* exec: a command in a running container. */
#include "isola.h"

int isola_verb_exec(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  struct exec_request x = {0};
  _cleanup_strv_ char **env = NULL;
  const struct opt opts[] = {
      {"interactive", 'i', OPT_BOOL, &x.interactive},
      {"tty", 't', OPT_BOOL, &x.tty},
      {"detach", 'd', OPT_BOOL, &x.detach},
      {"env", 'e', OPT_STRLIST, &env},
      {"workdir", 'w', OPT_STR, &x.workdir},
      {"user", 'u', OPT_STR, &x.user},
      {NULL, 0, 0, NULL},
  };
  int first = opts_parse("exec", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return EXIT_ENGINE;
  first += 1;
  if (argc - first < 2) {
    isola_failx(err, EINVAL,
                "exec: usage: isola exec [-i] [-t] [-d] [-e K=V] [-w DIR] "
                "[-u USER] CONTAINER CMD...");
    return EXIT_ENGINE;
  }
  if (x.tty && x.detach) {
    isola_failx(err, EINVAL, "exec: -t with -d is not supported");
    return EXIT_ENGINE;
  }
  x.env = env;
  x.args = argv + first + 1;
  struct engine eng = {0};
  int status = EXIT_ENGINE;
  if (isola_engine_open(cli, &eng, err) == 0) {
    /* The store is not needed while the command runs. */
    engine_exec(&eng, argv[first], &x, &status, err);
  }
  isola_engine_close(&eng);
  return status;
}
