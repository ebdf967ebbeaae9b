/* unpack_tool: layer_unpack() from the command line, for the integration tests and the
 * benchmark. Prints the diff_id and the stats as JSON, or the error on stderr (exit 1).
 *
 * usage: unpack_tool LAYER_FILE DEST_DIR [--max-expanded N] [--max-entries N]
 *                    [--max-ratio N] [--ratio-after N]
 */
#include "image.h"

#include <fcntl.h>
#include <string.h>

static int usage(void)
{
  fprintf(stderr, "usage: unpack_tool LAYER_FILE DEST_DIR [--max-expanded N] [--max-entries N] "
                  "[--max-ratio N] [--ratio-after N]\n");
  return 2;
}

int main(int argc, char **argv)
{
  struct unpack_limits limits = unpack_default_limits;
  const char *layer = NULL, *dest = NULL;
  for (int i = 1; i < argc; i++) {
    uint64_t *field = NULL;
    if (!strcmp(argv[i], "--max-expanded"))
      field = &limits.max_expanded;
    else if (!strcmp(argv[i], "--max-entries"))
      field = &limits.max_entries;
    else if (!strcmp(argv[i], "--max-ratio"))
      field = &limits.max_ratio;
    else if (!strcmp(argv[i], "--ratio-after"))
      field = &limits.ratio_after;
    else if (argv[i][0] == '-' && argv[i][1])
      return usage();
    if (field) {
      if (i + 1 >= argc || parse_u64(argv[i + 1], field) < 0)
        return usage();
      i++;
    } else if (!layer) {
      layer = argv[i];
    } else if (!dest) {
      dest = argv[i];
    } else {
      return usage();
    }
  }
  if (!layer || !dest)
    return usage();

  _cleanup_close_ int fd = strcmp(layer, "-") ? open(layer, O_RDONLY | O_CLOEXEC) : dup(0);
  if (fd < 0) {
    fprintf(stderr, "unpack_tool: cannot open %s: %s\n", layer, strerror(errno));
    return 1;
  }
  _cleanup_close_ int destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (destfd < 0) {
    fprintf(stderr, "unpack_tool: cannot open %s: %s\n", dest, strerror(errno));
    return 1;
  }
  char diff_id[DIGEST_LEN + 1];
  struct unpack_stats st = {0};
  _cleanup_error_ struct isola_error *err = NULL;
  if (layer_unpack(fd, destfd, &limits, diff_id, &st, &err) < 0) {
    fprintf(stderr, "unpack_tool: %s\n", err ? err->msg : "failed");
    return 1;
  }
  printf("{\"diff_id\": \"%s\", \"compressed_bytes\": %llu, \"expanded_bytes\": %llu, "
         "\"entries\": %llu}\n",
         diff_id, (unsigned long long) st.compressed_bytes, (unsigned long long) st.expanded_bytes,
         (unsigned long long) st.entries);
  return 0;
}
