/* A stand-in for libFuzzer's main() in builds without it (gcc): runs the harness once over each
 * file named on the command line, or each file in a named directory, so the seed corpus and the
 * regression inputs run under the ASan+UBSan build. Exits non-zero if an input can't be read;
 * a crash or a sanitizer report ends the run on its own. */
#include "fuzz.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(int dirfd, const char *name, const char *shown)
{
  _cleanup_free_ char *data = NULL;
  size_t len = 0;
  int r = read_file_at(dirfd, name, 16 << 20, &data, &len);
  if (r < 0) {
    fprintf(stderr, "%s: cannot read: %s\n", shown, strerror(-r));
    return 1;
  }
  LLVMFuzzerTestOneInput((const uint8_t *) data, len);
  return 0;
}

static int run_path(const char *path, int *count)
{
  struct stat st;
  if (stat(path, &st) < 0) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    (*count)++;
    return run_file(AT_FDCWD, path, path);
  }
  struct dirent **names;
  int n = scandir(path, &names, NULL, alphasort), failed = 0;
  if (n < 0) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return 1;
  }
  for (int i = 0; i < n; i++) {
    _cleanup_free_ char *p = xasprintf("%s/%s", path, names[i]->d_name);
    if (names[i]->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
      (*count)++;
      failed |= run_file(AT_FDCWD, p, p);
    }
    free(names[i]);
  }
  free(names);
  return failed;
}

int main(int argc, char **argv)
{
  int failed = 0, count = 0;
  for (int i = 1; i < argc; i++)
    failed |= run_path(argv[i], &count);
  printf("%s: %d inputs\n", argv[0], count);
  return failed || count == 0;
}
