/* run: a command in a new container from an image, with docker's flags and exit statuses. */
#include "isola.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_volume(const char *v, struct volume *out, struct isola_error **err)
{
  _cleanup_free_ char *s = xstrdup(v);
  char *a = strchr(s, ':');
  if (!a)
    return isola_failx(err, EINVAL, "run: -v \"%s\": expected HOST:CONTAINER[:ro|rw]", v);
  *a++ = 0;
  char *b = strchr(a, ':');
  out->readonly = false;
  if (b) {
    *b++ = 0;
    if (!strcmp(b, "ro"))
      out->readonly = true;
    else if (strcmp(b, "rw"))
      return isola_failx(err, EINVAL, "run: -v \"%s\": the mode is ro or rw, not \"%s\"", v, b);
  }
  if (!*s || !*a)
    return isola_failx(err, EINVAL, "run: -v \"%s\": expected HOST:CONTAINER[:ro|rw]", v);
  out->host = xstrdup(s);
  out->ctr = xstrdup(a);
  return 0;
}

static int read_env_file(const char *path, char ***env, struct isola_error **err)
{
  _cleanup_free_ char *text = NULL;
  int r = read_file_at(AT_FDCWD, path, 1 << 20, &text, NULL);
  if (r < 0)
    return isola_fail(err, -r, "run: --env-file: cannot read \"%s\"", path);
  for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    while (*line == ' ' || *line == '\t')
      line++;
    if (!*line || *line == '#')
      continue;
    *env = strv_append(*env, line);
  }
  return 0;
}

int isola_verb_run(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  struct run_request req = {0};
  const char *isolation = "process", *network = "none", *memory = NULL, *cpus = NULL, *pids = NULL;
  _cleanup_strv_ char **env = NULL, **env_files = NULL, **volumes = NULL, **tmpfs = NULL,
                      **security = NULL;
  bool help = false;
  const struct opt opts[] = {
      {"isolation", 0, OPT_STR, &isolation},
      {"interactive", 'i', OPT_BOOL, &req.interactive},
      {"tty", 't', OPT_BOOL, &req.tty},
      {"rm", 0, OPT_BOOL, &req.rm},
      {"detach", 'd', OPT_BOOL, &req.detach},
      {"name", 0, OPT_STR, &req.name},
      {"env", 'e', OPT_STRLIST, &env},
      {"env-file", 0, OPT_STRLIST, &env_files},
      {"workdir", 'w', OPT_STR, &req.workdir},
      {"user", 'u', OPT_STR, &req.user},
      {"entrypoint", 0, OPT_STR, &req.entrypoint},
      {"volume", 'v', OPT_STRLIST, &volumes},
      {"tmpfs", 0, OPT_STRLIST, &tmpfs},
      {"read-only", 0, OPT_BOOL, &req.read_only},
      {"memory", 'm', OPT_STR, &memory},
      {"cpus", 0, OPT_STR, &cpus},
      {"pids-limit", 0, OPT_STR, &pids},
      {"network", 0, OPT_STR, &network},
      {"net", 0, OPT_STR, &network},
      {"hostname", 'h', OPT_STR, &req.hostname},
      {"security-opt", 0, OPT_STRLIST, &security},
      {"help", 0, OPT_BOOL, &help},
      {NULL, 0, 0, NULL},
  };
  int first = opts_parse("run", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return EXIT_ENGINE;
  first += 1;
  if (help) {
    printf("usage: isola run [--isolation=process|vm] [-i] [-t] [--rm] [-d] [--name N] [-e K=V]\n"
           "  [--env-file F] [-w DIR] [-u USER[:GROUP]] [--entrypoint E] [-v HOST:CTR[:ro]]\n"
           "  [--tmpfs DIR] [--read-only] [--memory M] [--cpus N] [--pids-limit N]\n"
           "  [--network none|host] [--hostname H] [--security-opt seccomp=unconfined]\n"
           "  IMAGE [CMD...]\n");
    return 0;
  }
  if (first >= argc) {
    isola_failx(err, EINVAL, "run: no image given (usage: isola run [options] IMAGE [CMD...])");
    return EXIT_ENGINE;
  }
  if (!strcmp(isolation, "process"))
    req.isolation = ISOLATION_PROCESS;
  else if (!strcmp(isolation, "vm") || !strcmp(isolation, "hyperv"))
    req.isolation = ISOLATION_VM;
  else {
    isola_failx(err, EINVAL, "run: --isolation: \"%s\" is not process, vm or hyperv", isolation);
    return EXIT_ENGINE;
  }
  if (!strcmp(network, "host"))
    req.network_host = true;
  else if (strcmp(network, "none")) {
    isola_failx(err, EINVAL, "run: --network: \"%s\" is not none or host", network);
    return EXIT_ENGINE;
  }
  if (memory && (isola_parse_size(memory, &req.memory) < 0 || req.memory < 6 * 1024 * 1024)) {
    isola_failx(err, EINVAL, "run: --memory: \"%s\" is not a size of at least 6m (e.g. 512m, 1g)",
                memory);
    return EXIT_ENGINE;
  }
  if (cpus) {
    char *end;
    double c = strtod(cpus, &end);
    if (end == cpus || *end || !(c >= 0.01 && c <= 4096)) {
      isola_failx(err, EINVAL, "run: --cpus: \"%s\" is not a number of CPUs (e.g. 0.5, 2)", cpus);
      return EXIT_ENGINE;
    }
    req.cpu_milli = (int64_t) (c * 1000 + 0.5);
  }
  if (pids &&
      (parse_i64(pids, &req.pids_limit) < 0 || req.pids_limit < -1 || req.pids_limit == 0)) {
    isola_failx(err, EINVAL, "run: --pids-limit: \"%s\" is not a positive number (or -1)", pids);
    return EXIT_ENGINE;
  }
  for (char **o = security; o && *o; o++) {
    if (!strcmp(*o, "seccomp=unconfined") || !strcmp(*o, "seccomp:unconfined")) {
      req.seccomp_unconfined = true;
    } else {
      isola_failx(err, EINVAL,
                  "run: --security-opt: \"%s\" is not supported (only "
                  "seccomp=unconfined)",
                  *o);
      return EXIT_ENGINE;
    }
  }
  if (req.pids_limit == -1)
    req.pids_limit = 0;
  for (char **f = env_files; f && *f; f++)
    if (read_env_file(*f, &req.env, err) < 0)
      return EXIT_ENGINE;
  for (char **e = env; e && *e; e++)
    req.env = strv_append(req.env, *e);
  req.n_volumes = strv_length(volumes);
  req.volumes = xzalloc((req.n_volumes + 1) * sizeof(*req.volumes));
  int status = EXIT_ENGINE;
  struct engine eng = {0};
  _cleanup_free_ char *id = NULL;
  for (size_t i = 0; i < req.n_volumes; i++)
    if (parse_volume(volumes[i], &req.volumes[i], err) < 0)
      goto out;
  req.tmpfs = tmpfs;
  req.image = argv[first];
  req.cmd = argv + first + 1;
  if (req.tty && !isatty(0) && req.interactive) {
    /* As docker: -t wants a terminal to read from. */
    isola_failx(err, ENOTTY, "run: -it: the input device is not a TTY");
    goto out;
  }
  if (isola_engine_open(cli, &eng, err) < 0)
    goto out;
  if (engine_run(&eng, &req, &status, &id, err) < 0)
    goto out;
  if (req.detach)
    printf("%s\n", id);
out:
  isola_engine_close(&eng);
  for (size_t i = 0; i < req.n_volumes; i++) {
    free(req.volumes[i].host);
    free(req.volumes[i].ctr);
  }
  free(req.volumes);
  strv_free(req.env);
  return status;
}
