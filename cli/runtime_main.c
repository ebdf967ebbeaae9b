/* isola-runtime: an OCI runtime with runc's command line. */
#include "cli.h"

#include <string.h>

static const struct {
  const char *name;
  verb_fn fn;
  const char *help;
} verbs[] = {
    {"create", verb_create, "create a container from a bundle"},
    {"start", verb_start, "run the user process of a created container"},
    {"run", verb_run, "create and start a container"},
    {"state", verb_state, "print the state of a container as JSON"},
    {"kill", verb_kill, "send a signal to a container's init (or all its processes)"},
    {"delete", verb_delete, "delete a container and what it used"},
    {"exec", verb_exec, "run a new process in a container"},
    {"ps", verb_ps, "list the processes of a container"},
    {"list", verb_list, "list containers"},
    {"spec", verb_spec, "write a default config.json"},
    {"features", verb_features, "print what this runtime supports, as JSON"},
    {"pause", verb_pause, "freeze every process of a container"},
    {"resume", verb_resume, "thaw a paused container"},
    {"update", verb_update, "change a container's resource limits"},
};

static void usage(FILE *f)
{
  fprintf(f, "usage: isola-runtime [global options] COMMAND [options] [ID] [args]\n\n"
             "global options: --root DIR (default /run/isola), --log FILE, --log-format "
             "text|json, --debug, --systemd-cgroup\n\ncommands:\n");
  for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
    fprintf(f, "  %-9s %s\n", verbs[i].name, verbs[i].help);
}

int main(int argc, char **argv)
{
  struct cli cli = {.ro = {.root = "/run/isola"}};
  struct isola_error *err = NULL;
  bool help = false, version = false;
  const char *rootless = NULL, *criu = NULL; /* accepted for runc compatibility, unused */
  const struct opt global[] = {
      {"root", 0, OPT_STR, &cli.ro.root},
      {"log", 0, OPT_STR, &cli.log_path},
      {"log-format", 0, OPT_STR, &cli.log_format},
      {"debug", 0, OPT_BOOL, &cli.ro.debug},
      {"systemd-cgroup", 0, OPT_BOOL, &cli.ro.systemd_cgroup},
      {"rootless", 0, OPT_STR, &rootless},
      {"criu", 0, OPT_STR, &criu},
      {"help", 'h', OPT_BOOL, &help},
      {"version", 'v', OPT_BOOL, &version},
      {NULL, 0, 0, NULL},
  };
  int first = opts_parse("isola-runtime", global, argc - 1, argv + 1, &err);
  if (first < 0)
    goto fail;
  first += 1;
  if (version) {
    printf("isola-runtime version %s\nspec: %s\n", ISOLA_VERSION, OCI_VERSION_SUPPORTED);
    return 0;
  }
  if (help || first >= argc) {
    usage(help ? stdout : stderr);
    return help ? 0 : 1;
  }
  enum log_format fmt = LOG_FORMAT_TEXT;
  if (cli.log_format && !strcmp(cli.log_format, "json"))
    fmt = LOG_FORMAT_JSON;
  else if (cli.log_format && strcmp(cli.log_format, "text")) {
    isola_failx(&err, EINVAL, "--log-format: \"%s\" is not text or json", cli.log_format);
    goto fail;
  }
  int r = log_init(cli.log_path, fmt, cli.ro.debug);
  if (r < 0) {
    isola_fail(&err, -r, "--log: cannot open \"%s\"", cli.log_path);
    goto fail;
  }
  if (cli.ro.root[0] != '/') {
    isola_failx(&err, EINVAL, "--root: \"%s\" is not an absolute path", cli.ro.root);
    goto fail;
  }
  const char *verb = argv[first];
  for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
    if (strcmp(verbs[i].name, verb))
      continue;
    if (cli.ro.debug) {
      _cleanup_free_ char *line = xstrdup(verb);
      for (int a = first + 1; a < argc; a++) {
        char *next = xasprintf("%s %s", line, argv[a]);
        free(line);
        line = next;
      }
      log_debug("isola-runtime %s (root %s)", line, cli.ro.root);
    }
    int status = verbs[i].fn(&cli, argc - first - 1, argv + first + 1, &err);
    log_debug("%s: exit status %d%s%s", verb, err ? 1 : status, err ? ": " : "",
              err ? err->msg : "");
    if (err)
      goto fail;
    return status;
  }
  isola_failx(&err, EINVAL, "unknown command \"%s\" (try: isola-runtime --help)", verb);
fail:
  log_error_to_stderr("isola-runtime", err->msg);
  isola_error_free(&err);
  return 1;
}
