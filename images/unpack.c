/* Placeholder: replaced by the layer unpacker. */
#include "image.h"

const struct unpack_limits unpack_default_limits = {64ull << 30, 4000000, 256, 256ull << 20};

int layer_unpack(int fd, int destfd, const struct unpack_limits *limits,
                 char diff_id[DIGEST_LEN + 1], struct unpack_stats *stats, struct isola_error **err)
{
  return isola_failx(err, ENOSYS, "layer unpacking is not written yet");
}
