/* wait: block until containers exit and print each one's exit status. */
#include "isola.h"

static int wait_one(struct engine *e, const char *what, void *arg, struct isola_error **err)
{
  int code = 0;
  int r = engine_wait(e, what, &code, err);
  if (r < 0)
    return r;
  printf("%d\n", code);
  return 1;
}

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
  return isola_each_container(cli, argv + first, argc - first, true, wait_one, NULL, err);
}
