/* The image bytes built into the binary are exactly the archive the recipe wrote
 * (images/recipes/busybox.sh), and the name lookup finds them by the names users type. */
#include "embedded.h"
#include "tap.h"

#include <stdint.h>
#include <stdio.h>

static unsigned char *read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rbe");
  unsigned char *buf = NULL;
  long n;

  if (!f)
    return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (buf = malloc((size_t) n + 1)) && fread(buf, 1, (size_t) n, f) == (size_t) n) {
    *len = (size_t) n;
  } else {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  return buf;
}

int main(int argc, char **argv)
{
  const char *archive = argc > 1 ? argv[1] : ISOLA_BUSYBOX_ARCHIVE;
  struct embedded_image img, other;
  size_t len = 0;
  unsigned char *want = read_file(archive, &len);

  ok(want != NULL, "read %s", archive);
  ok(embedded_image_find("busybox", &img), "busybox is embedded");
  ok(img.len == len, "length %zu == %zu (the built archive)", img.len, len);
  ok(want && img.len == len && memcmp(img.data, want, len) == 0, "bytes match the built archive");
  ok(((uintptr_t) img.data & 63) == 0, "64-byte aligned");
  ok(img.len > 1024 && memcmp(img.data + 257, "ustar", 5) == 0, "a tar archive");
  ok(strcmp(img.name, "docker.io/library/busybox:latest") == 0, "full name %s", img.name);
  ok(embedded_image_find("busybox:latest", &other) && other.data == img.data, "busybox:latest");
  ok(embedded_image_find("docker.io/library/busybox:latest", &other) && other.data == img.data,
     "full reference");
  ok(!embedded_image_find("busybox:1.36", &other), "another tag is not embedded");
  ok(!embedded_image_find("busyboxx", &other) && !embedded_image_find("", &other),
     "no prefix matches");
  ok(embedded_image_at(0, &other) && !embedded_image_at(1, &other), "one image listed");
  free(want);
  done_testing();
}
