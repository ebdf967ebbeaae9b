/* Fuzz what guest-init reads from a hostile host: the frame receiver of guest-init/channel.c
 * (fed in small pieces through a pipe, so frames arrive split) and the PROCESS parser of
 * guest-init/config.c, on every PROCESS payload and on the whole input taken as JSON. */
#include "fuzz.h"
#include "init.h"

#include <fcntl.h>
#include <string.h>

static void parse_config(const uint8_t *data, size_t size)
{
  struct isola_error *err = NULL;
  struct guest_config cfg;
  if (guest_config_parse((const char *) data, size, &cfg, &err) == 0)
    guest_config_clear(&cfg);
  isola_error_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  parse_config(data, size);

  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return 0;
  struct channel ch;
  channel_init(&ch, p[0]);
  struct isola_error *err = NULL;
  bool broken = false;
  for (size_t off = 0; off <= size && !broken; off += 4096) {
    size_t n = size - off < 4096 ? size - off : 4096;
    if (n && write(p[1], data + off, n) != (ssize_t) n)
      break;
    if (off + n >= size) { /* all of it is in: the host closed */
      close(p[1]);
      p[1] = -1;
    }
    struct frame f;
    int r;
    while ((r = channel_receive(&ch, &f, &err)) > 0)
      if (f.type == ISOLA_GUEST_PROCESS)
        parse_config(f.data, f.length);
    broken = r < 0 || ch.eof;
    if (p[1] < 0)
      break;
  }
  isola_error_free(&err);
  if (p[1] >= 0)
    close(p[1]);
  channel_close(&ch);
  return 0;
}
