/* Fuzz the layer unpacker: the input is a layer blob (tar, gzip or zstd), unpacked with small
 * limits into a fresh directory that is removed after each input. Run as root, the unpacker
 * also creates device nodes, sets owners and trusted.* xattrs: all of it inside a 0700
 * directory of its own under /tmp. */
#include "fuzz.h"
#include "image.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

static char base[] = "/tmp/isola-fuzz-unpack-XXXXXX";
static int basefd = -1;

static void remove_base(void)
{
  rm_rf_at(AT_FDCWD, base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (basefd < 0) {
    if (!mkdtemp(base))
      abort();
    basefd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (basefd < 0)
      abort();
    atexit(remove_base);
  }
  _cleanup_close_ int fd = memfd_create("layer", MFD_CLOEXEC);
  if (fd < 0 || write_all(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0)
    abort();
  if (mkdirat(basefd, "d", 0700) < 0)
    abort();
  _cleanup_close_ int destfd = openat(basefd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (destfd < 0)
    abort();

  const struct unpack_limits limits = {
      .max_expanded = 16 << 20, .max_entries = 2000, .max_ratio = 64, .ratio_after = 1 << 20};
  char diff_id[DIGEST_LEN + 1];
  struct unpack_stats st;
  struct isola_error *err = NULL;
  int r = layer_unpack(fd, destfd, &limits, diff_id, &st, &err);
  /* The contract: a failure carries one line that says why; success a well-formed diff_id. */
  if (r < 0 && (!err || !err->msg || strchr(err->msg, '\n') || err->code != -r))
    abort();
  if (r == 0 && (err || digest_check(diff_id, "diff_id", NULL) < 0))
    abort();
  if (st.expanded_bytes > limits.max_expanded)
    abort();
  isola_error_free(&err);
  if (rm_rf_at(basefd, "d") < 0)
    abort();
  return 0;
}
