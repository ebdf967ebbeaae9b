/* pause and resume: freeze and thaw every process of a container. */
#include "cli.h"

static int pause_or_resume(struct cli *cli, const char *verb, bool pause, int argc, char **argv,
                           struct isola_error **err)
{
  const struct opt opts[] = {{NULL, 0, 0, NULL}};
  int first = opts_parse(verb, opts, argc, argv, err);
  if (first < 0 || need_args(verb, argc, first, 1, "ID", err) < 0)
    return 1;
  return container_pause(&cli->ro, argv[first], pause, err) < 0 ? 1 : 0;
}

int verb_pause(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  return pause_or_resume(cli, "pause", true, argc, argv, err);
}

int verb_resume(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  return pause_or_resume(cli, "resume", false, argc, argv, err);
}
