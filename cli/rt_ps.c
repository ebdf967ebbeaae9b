/* ps: the processes of a container, as JSON pids or through ps(1). */
#include "cli.h"

#include <string.h>
#include <sys/wait.h>

int verb_ps(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  const char *format = "table";
  const struct opt opts[] = {{"format", 'f', OPT_STR, &format}, {NULL, 0, 0, NULL}};
  int first = opts_parse("ps", opts, argc, argv, err);
  if (first < 0)
    return 1;
  if (first >= argc) {
    isola_failx(err, EINVAL, "ps: usage: isola-runtime ps [--format table|json] ID [ps options]");
    return 1;
  }
  _cleanup_free_ pid_t *pids = NULL;
  size_t n = 0;
  if (container_pids(&cli->ro, argv[first], &pids, &n, err) < 0)
    return 1;
  if (!strcmp(format, "json")) {
    printf("[");
    for (size_t i = 0; i < n; i++)
      printf("%s%d", i ? "," : "", (int) pids[i]);
    printf("]\n");
    return 0;
  }
  if (strcmp(format, "table")) {
    isola_failx(err, EINVAL, "ps: --format \"%s\" is not table or json", format);
    return 1;
  }
  /* Run ps(1) with the given options and keep the header plus the container's lines. */
  _cleanup_strv_ char **args = strv_append(NULL, "ps");
  if (first + 1 >= argc)
    args = strv_append(args, "-ef");
  for (int i = first + 1; i < argc; i++)
    args = strv_append(args, argv[i]);
  int pipefd[2];
  if (pipe(pipefd) < 0) {
    isola_fail(err, errno, "ps: pipe");
    return 1;
  }
  pid_t child = fork();
  if (child == 0) {
    dup2(pipefd[1], 1);
    close(pipefd[0]);
    execvp("ps", args);
    _exit(127);
  }
  close(pipefd[1]);
  FILE *f = fdopen(pipefd[0], "r");
  char *line = NULL;
  size_t cap = 0;
  int pid_col = -1;
  bool header = true;
  while (getline(&line, &cap, f) > 0) {
    if (header) {
      /* Find the PID column by its header. */
      int col = 0;
      _cleanup_free_ char *copy = xstrdup(line);
      for (char *s = NULL, *t = strtok_r(copy, " \t\n", &s); t;
           t = strtok_r(NULL, " \t\n", &s), col++)
        if (!strcmp(t, "PID"))
          pid_col = col;
      fputs(line, stdout);
      header = false;
      continue;
    }
    _cleanup_free_ char *copy = xstrdup(line);
    int col = 0;
    for (char *s = NULL, *t = strtok_r(copy, " \t\n", &s); t;
         t = strtok_r(NULL, " \t\n", &s), col++) {
      if (col != pid_col)
        continue;
      int p = atoi(t);
      for (size_t i = 0; i < n; i++)
        if (pids[i] == p)
          fputs(line, stdout);
      break;
    }
  }
  free(line);
  fclose(f);
  int status;
  waitpid(child, &status, 0);
  if (pid_col < 0) {
    isola_failx(err, EINVAL, "ps: the output of ps has no PID column");
    return 1;
  }
  return 0;
}
