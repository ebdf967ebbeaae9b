/* wait: block until containers exit and print each one's exit status. */
#include "isola.h"

int isola_verb_wait(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  const struct opt opts[] = {{NULL, 0, 0, NULL}};
  int first = opts_parse("wait", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  first += 1;
  if (first >= argc) {
    isola_failx(err, EINVAL, "wait: usage: isola wait CONTAINER...");
    return 1;
  }
  struct engine eng = {0};
  int status = 0;
  if (isola_engine_open(cli, &eng, err) < 0)
    return 1;
  store_release(eng.store);
  for (int i = first; i < argc; i++) {
    struct isola_error *e1 = NULL;
    int code = 0;
    if (engine_wait(&eng, argv[i], &code, &e1) < 0) {
      log_error_to_stderr("isola", e1->msg);
      isola_error_free(&e1);
      status = 1;
    } else {
      printf("%d\n", code);
      fflush(stdout);
    }
  }
  isola_engine_close(&eng);
  return status;
}
