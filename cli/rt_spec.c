/* spec: write a default config.json into the bundle directory. */
#include "cli.h"

#include <fcntl.h>
#include <string.h>

int verb_spec(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  const char *bundle = ".";
  bool rootless = false;
  const struct opt opts[] = {
      {"bundle", 'b', OPT_STR, &bundle}, {"rootless", 0, OPT_BOOL, &rootless}, {NULL, 0, 0, NULL}};
  int first = opts_parse("spec", opts, argc, argv, err);
  if (first < 0 || need_args("spec", argc, first, 0, "[--bundle DIR] [--rootless]", err) < 0)
    return 1;
  _cleanup_json_ struct json_object *o = spec_default_json(rootless);
  _cleanup_free_ char *text = json_to_string(o, true);
  _cleanup_free_ char *path = xasprintf("%s/config.json", bundle);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST)
      isola_failx(err, EEXIST, "spec: %s already exists; remove it first", path);
    else
      isola_fail(err, errno, "spec: cannot create %s", path);
    return 1;
  }
  int r = write_all(fd, text, strlen(text));
  if (r == 0)
    r = write_all(fd, "\n", 1);
  close(fd);
  if (r < 0) {
    isola_fail(err, -r, "spec: cannot write %s", path);
    return 1;
  }
  return 0;
}
