/* isola: a docker-like command line for images and containers (process isolation today). */
#include "isola.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
  const char *name;
  isola_verb_fn fn;
  int fail_status; /* docker's: 125 when run/exec/create themselves fail */
  const char *help;
} verbs[] = {
    {"run", isola_verb_run, 125, "run a command in a new container"},
    {"exec", isola_verb_exec, 125, "run a command in a running container"},
    {"ps", isola_verb_ps, 1, "list containers"},
    {"logs", isola_verb_logs, 1, "print a container's output"},
    {"kill", isola_verb_kill, 1, "send a signal to a container"},
    {"stop", isola_verb_stop, 1, "stop a container (its stop signal, then SIGKILL)"},
    {"wait", isola_verb_wait, 1, "wait for a container to exit; print its exit status"},
    {"rm", isola_verb_rm, 1, "remove containers"},
    {"pull", isola_verb_pull, 1, "pull an image from a registry"},
    {"load", isola_verb_load, 1, "load images from a docker-archive or OCI layout"},
    {"save", isola_verb_save, 1, "save images to an OCI or docker archive"},
    {"images", isola_verb_images, 1, "list images"},
    {"inspect", isola_verb_inspect, 1, "print an image's or container's details as JSON"},
    {"tag", isola_verb_tag, 1, "give an image another name"},
    {"rmi", isola_verb_rmi, 1, "remove image names (and, with prune, their data)"},
    {"system", isola_verb_system, 1, "system prune: remove what nothing references"},
    {"disk", isola_verb_disk, 1, "make an image's VM disk (erofs) and print its path"},
};

static void usage(FILE *f)
{
  fprintf(f, "usage: isola [--root DIR] [--run-root DIR] [--debug] COMMAND [options] [args]\n\n"
             "  --root DIR      images and containers (default " STORE_DEFAULT_ROOT ")\n"
             "  --run-root DIR  state of running containers (default /run/isola-engine)\n\n"
             "commands:\n");
  for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
    fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].help);
}

int isola_open_store(struct isola_cli *cli, struct image_store **out, struct isola_error **err)
{
  return store_open(cli->root, out, err);
}

int isola_engine_open(struct isola_cli *cli, struct engine *e, struct isola_error **err)
{
  e->run_root = cli->run_root;
  return isola_open_store(cli, &e->store, err);
}

void isola_engine_close(struct engine *e)
{
  if (e->store)
    store_close(e->store);
  e->store = NULL;
}

int isola_each_container(struct isola_cli *cli, char **names, int n, bool release_store,
                         isola_each_fn fn, void *arg, struct isola_error **err)
{
  struct engine eng = {0};
  if (isola_engine_open(cli, &eng, err) < 0)
    return 1;
  if (release_store)
    store_release(eng.store);
  int status = 0;
  for (int i = 0; i < n; i++) {
    struct isola_error *e1 = NULL;
    int r = fn(&eng, names[i], arg, &e1);
    if (r < 0) {
      log_error_to_stderr("isola", e1 ? e1->msg : "failed");
      isola_error_free(&e1);
      status = 1;
    } else if (r == 0) {
      printf("%s\n", names[i]);
    }
    fflush(stdout);
  }
  isola_engine_close(&eng);
  return status;
}

int isola_parse_size(const char *s, int64_t *out)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || !isfinite(v) || v < 0)
    return -EINVAL;
  double mult = 1;
  switch (*end) {
  case 'b':
  case 'B':
  case 0:
    mult = 1;
    break;
  case 'k':
  case 'K':
    mult = 1024.0;
    break;
  case 'm':
  case 'M':
    mult = 1024.0 * 1024;
    break;
  case 'g':
  case 'G':
    mult = 1024.0 * 1024 * 1024;
    break;
  case 't':
  case 'T':
    mult = 1024.0 * 1024 * 1024 * 1024;
    break;
  default:
    return -EINVAL;
  }
  if (*end && end[1] && !((end[1] == 'b' || end[1] == 'B') && !end[2]) &&
      !(*end == 'b' || *end == 'B'))
    return -EINVAL;
  if (*end && (*end == 'b' || *end == 'B') && end[1])
    return -EINVAL;
  double bytes = v * mult;
  if (bytes > 9.0e18)
    return -ERANGE;
  *out = (int64_t) bytes;
  return 0;
}

int main(int argc, char **argv)
{
  struct isola_cli cli = {.root = STORE_DEFAULT_ROOT, .fail_status = 1};
  struct isola_error *err = NULL;
  bool help = false, version = false;
  const char *log_format = NULL;
  const struct opt global[] = {
      {"root", 0, OPT_STR, &cli.root},
      {"run-root", 0, OPT_STR, &cli.run_root},
      {"debug", 0, OPT_BOOL, &cli.debug},
      {"log-format", 0, OPT_STR, &log_format},
      {"help", 'h', OPT_BOOL, &help},
      {"version", 'v', OPT_BOOL, &version},
      {NULL, 0, 0, NULL},
  };
  int first = opts_parse("isola", global, argc - 1, argv + 1, &err);
  if (first < 0)
    goto fail;
  first += 1;
  if (version) {
    printf("isola version %s\n", ISOLA_VERSION);
    return 0;
  }
  if (help || first >= argc) {
    usage(help ? stdout : stderr);
    return help ? 0 : 1;
  }
  if (log_format && strcmp(log_format, "text") && strcmp(log_format, "json")) {
    isola_failx(&err, EINVAL, "--log-format: \"%s\" is not text or json", log_format);
    goto fail;
  }
  cli.json_log = log_format && !strcmp(log_format, "json");
  log_init(NULL, cli.json_log ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT, cli.debug);
  if (cli.root[0] != '/') {
    isola_failx(&err, EINVAL, "--root: \"%s\" is not an absolute path", cli.root);
    goto fail;
  }
  /* A store of its own (tests, a second user) gets running state of its own. */
  char *run_root = NULL;
  if (!cli.run_root)
    cli.run_root = strcmp(cli.root, STORE_DEFAULT_ROOT) ? (run_root = xasprintf("%s/run", cli.root))
                                                        : "/run/isola-engine";
  if (cli.run_root[0] != '/') {
    isola_failx(&err, EINVAL, "--run-root: \"%s\" is not an absolute path", cli.run_root);
    goto fail;
  }
  umask(022);
  for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
    if (strcmp(argv[first], verbs[i].name))
      continue;
    cli.fail_status = verbs[i].fail_status;
    int status = verbs[i].fn(&cli, argc - first, argv + first, &err);
    if (err) {
      log_error_to_stderr("isola", err->msg);
      isola_error_free(&err);
      if (status == 0)
        status = cli.fail_status;
    }
    free(run_root);
    return status;
  }
  isola_failx(&err, EINVAL, "unknown command \"%s\" (try: isola --help)", argv[first]);
fail:
  log_error_to_stderr("isola", err->msg);
  isola_error_free(&err);
  return cli.fail_status;
}
