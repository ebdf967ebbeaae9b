/* The table of images built into the binary; the bytes are in embedded.S. */
#include "embedded.h"

#include <string.h>

extern const unsigned char isola_embedded_busybox_start[] __attribute__((visibility("hidden")));
extern const unsigned char isola_embedded_busybox_end[] __attribute__((visibility("hidden")));

static const struct {
  const char *name, *short_name;
  const unsigned char *start, *end;
} embedded_images[] = {
    {"docker.io/library/busybox:latest", "busybox", isola_embedded_busybox_start,
     isola_embedded_busybox_end},
};

bool embedded_image_at(size_t i, struct embedded_image *out)
{
  if (i >= sizeof(embedded_images) / sizeof(embedded_images[0]))
    return false;
  *out = (struct embedded_image){
      .name = embedded_images[i].name,
      .short_name = embedded_images[i].short_name,
      .data = embedded_images[i].start,
      .len = (size_t) (embedded_images[i].end - embedded_images[i].start),
  };
  return true;
}

bool embedded_image_find(const char *name, struct embedded_image *out)
{
  for (size_t i = 0; embedded_image_at(i, out); i++) {
    size_t n = strlen(out->short_name);
    if (strcmp(name, out->name) == 0 || strcmp(name, out->short_name) == 0 ||
        (strncmp(name, out->short_name, n) == 0 && strcmp(name + n, ":latest") == 0))
      return true;
  }
  return false;
}
