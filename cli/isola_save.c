/* save: images as one docker-archive or OCI layout tar, to a file or to stdout. */
#include "isola.h"

#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* A regular output file is written under a temporary name and renamed when complete, so a
 * failed save never leaves a truncated archive where the user expects one. */
static int output_open(const char *path, int *fd, char **tmp, struct isola_error **err)
{
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode))
      return isola_failx(err, EISDIR, "save: \"%s\" is a directory", path);
    if ((*fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY)) < 0)
      return isola_fail(err, errno, "save: cannot open \"%s\"", path);
    if (isatty(*fd)) {
      close(*fd);
      return isola_failx(err, EINVAL, "save: refusing to write an archive to the terminal \"%s\"",
                         path);
    }
    return 0;
  }
  _cleanup_free_ char *copy = xstrdup(path), *copy2 = xstrdup(path);
  *tmp = xasprintf("%s/.%s.XXXXXX", dirname(copy), basename(copy2));
  if ((*fd = mkostemp(*tmp, O_CLOEXEC)) < 0) {
    free(steal_pointer(tmp));
    return isola_fail(err, errno, "save: cannot create \"%s\"", path);
  }
  fchmod(*fd, 0644);
  return 0;
}

int isola_verb_save(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  const char *output = NULL, *format = "docker-archive";
  const struct opt opts[] = {
      {"output", 'o', OPT_STR, &output}, {"format", 0, OPT_STR, &format}, {NULL, 0, 0, NULL}};
  /* argv[0] is the verb. */
  int first = opts_parse("save", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return cli->fail_status;
  first += 1;
  if (argc - first < 1) {
    isola_failx(err, EINVAL,
                "save: usage: isola save [-o FILE] [--format docker-archive|oci-archive] IMAGE...");
    return cli->fail_status;
  }
  enum save_format fmt;
  if (!strcmp(format, "docker-archive"))
    fmt = SAVE_DOCKER_ARCHIVE;
  else if (!strcmp(format, "oci-archive"))
    fmt = SAVE_OCI_ARCHIVE;
  else {
    isola_failx(err, EINVAL, "save: --format \"%s\" is not docker-archive or oci-archive", format);
    return cli->fail_status;
  }
  if ((!output || !strcmp(output, "-")) && isatty(STDOUT_FILENO)) {
    isola_failx(err, EINVAL,
                "save: refusing to write an archive to the terminal (use -o FILE or redirect "
                "stdout)");
    return cli->fail_status;
  }
  _cleanup_store_ struct image_store *store = NULL;
  if (isola_open_store(cli, &store, err) < 0)
    return cli->fail_status;
  _cleanup_close_ int fd = -1;
  _cleanup_free_ char *tmp = NULL;
  if (!output || !strcmp(output, "-"))
    fd = STDOUT_FILENO;
  else if (output_open(output, &fd, &tmp, err) < 0)
    return cli->fail_status;
  /* argv is NULL-terminated: the images are a strv. */
  int r = image_save(store, argv + first, fmt, fd, err);
  if (r == 0 && tmp && fsync(fd) < 0)
    r = isola_fail(err, errno, "save: cannot write \"%s\"", output);
  if (r == 0 && tmp && rename(tmp, output) < 0)
    r = isola_fail(err, errno, "save: cannot create \"%s\"", output);
  if (r < 0 && tmp)
    unlink(tmp);
  if (fd == STDOUT_FILENO)
    fd = -1;
  return r < 0 ? cli->fail_status : 0;
}
