/* rm: remove containers (running ones only with --force). */
#include "isola.h"

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
  struct engine eng = {0};
  int status = 0;
  if (isola_engine_open(cli, &eng, err) < 0)
    return 1;
  for (int i = first; i < argc; i++) {
    struct isola_error *e1 = NULL;
    if (engine_rm(&eng, argv[i], force, &e1) < 0) {
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
