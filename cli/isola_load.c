/* load: images from a docker-archive, an OCI layout tar or an OCI layout directory. */
#include "isola.h"

#include <string.h>

int isola_verb_load(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  const char *input = NULL, *name = NULL;
  bool quiet = false;
  const struct opt opts[] = {{"input", 'i', OPT_STR, &input},
                             {"name", 0, OPT_STR, &name},
                             {"quiet", 'q', OPT_BOOL, &quiet},
                             {NULL, 0, 0, NULL}};
  /* argv[0] is the verb. */
  int first = opts_parse("load", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return cli->fail_status;
  first += 1;
  if (argc - first > 1 || (argc - first == 1 && input)) {
    isola_failx(err, EINVAL, "load: usage: isola load -i FILE|DIR|- [--name NAME] [-q]");
    return cli->fail_status;
  }
  if (argc - first == 1)
    input = argv[first]; /* podman's positional form */
  if (!input) {
    if (isatty(STDIN_FILENO)) {
      isola_failx(err, EINVAL,
                  "load: no input: give -i FILE, or pipe an archive into stdin (-i -)");
      return cli->fail_status;
    }
    input = "-";
  }
  _cleanup_store_ struct image_store *store = NULL;
  if (isola_open_store(cli, &store, err) < 0)
    return cli->fail_status;
  _cleanup_strv_ char **names = NULL;
  if (image_load(store, input, name, &names, err) < 0)
    return cli->fail_status;
  for (char **n = names; !quiet && *n; n++) {
    _cleanup_free_ char *shown = ref_short_name(*n);
    printf("Loaded image: %s\n", shown);
  }
  return 0;
}
