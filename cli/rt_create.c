/* create and run. */
#include "cli.h"

static int parse_create(const char *verb, struct create_opts *co, bool with_run, int argc,
                        char **argv, struct isola_error **err)
{
  bool no_subreaper = false;
  const struct opt opts[] = {
      {"bundle", 'b', OPT_STR, &co->bundle},
      {"pid-file", 0, OPT_STR, &co->pid_file},
      {"console-socket", 0, OPT_STR, &co->console_socket},
      {"preserve-fds", 0, OPT_INT, &co->preserve_fds},
      {"no-pivot", 0, OPT_BOOL, &co->no_pivot},
      {"no-new-keyring", 0, OPT_BOOL, &co->no_new_keyring},
      {"no-subreaper", 0, OPT_BOOL, &no_subreaper},
      {with_run ? "detach" : "-", 'd', OPT_BOOL, &co->detach},
      {with_run ? "keep" : "-", 0, OPT_BOOL, &co->keep},
      {NULL, 0, 0, NULL},
  };
  int first = opts_parse(verb, opts, argc, argv, err);
  if (first < 0)
    return first;
  int r = need_args(verb, argc, first, 1, "[options] ID", err);
  if (r < 0)
    return r;
  if (co->preserve_fds < 0)
    return isola_failx(err, EINVAL, "%s: --preserve-fds must not be negative", verb);
  if (co->detach && co->keep)
    return isola_failx(err, EINVAL, "run: --keep and --detach cannot be used together");
  co->id = argv[first];
  return 0;
}

int verb_create(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  struct create_opts co = {0};
  if (parse_create("create", &co, false, argc, argv, err) < 0)
    return 1;
  return container_create(&cli->ro, &co, err) < 0 ? 1 : 0;
}

int verb_run(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  struct create_opts co = {0};
  int status = 0;
  if (parse_create("run", &co, true, argc, argv, err) < 0)
    return 1;
  if (container_run(&cli->ro, &co, &status, err) < 0)
    return 1;
  return status;
}
