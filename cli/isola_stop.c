/* stop: the container's stop signal, then SIGKILL after a grace period. */
#include "isola.h"

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
  struct engine eng = {0};
  int status = 0;
  if (isola_engine_open(cli, &eng, err) < 0)
    return 1;
  store_release(eng.store);
  for (int i = first; i < argc; i++) {
    struct isola_error *e1 = NULL;
    if (engine_stop(&eng, argv[i], timeout, &e1) < 0) {
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
