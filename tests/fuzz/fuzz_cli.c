/* Fuzz the command line: option parsing (runc-compatible flag syntax) and signal names.
 * The input is argv with NUL bytes between the arguments. */
#include "cli.h"
#include "fuzz.h"

#include <signal.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > 4096)
    return 0;
  _cleanup_free_ char *buf = xmalloc(size + 1);
  memcpy(buf, data, size);
  buf[size] = '\0';
  _cleanup_free_ char **argv = xzalloc((size + 2) * sizeof(char *));
  int argc = 0;
  for (size_t i = 0; i <= size; i += strlen(buf + i) + 1)
    argv[argc++] = buf + i;

  /* One of each option type, with long and short names, like exec's table. */
  bool detach = false, tty = false;
  const char *pid_file = NULL, *cwd = NULL;
  int preserve_fds = 0;
  _cleanup_strv_ char **env = NULL;
  const struct opt opts[] = {
      {"detach", 'd', OPT_BOOL, &detach},
      {"tty", 't', OPT_BOOL, &tty},
      {"pid-file", 0, OPT_STR, &pid_file},
      {"cwd", 0, OPT_STR, &cwd},
      {"preserve-fds", 0, OPT_INT, &preserve_fds},
      {"env", 'e', OPT_STRLIST, &env},
      {NULL, 0, 0, NULL},
  };
  struct isola_error *err = NULL;
  int first = opts_parse("exec", opts, argc, argv, &err);
  isola_error_free(&err);
  if (first > argc)
    abort();

  for (int i = 0; i < argc; i++) {
    int sig = parse_signal(argv[i]);
    if (sig != -1 && (sig <= 0 || sig >= _NSIG))
      abort();
  }
  return 0;
}
