/* Images built into the `isola` binary (images/embedded.S): `isola run busybox` works with no
 * network and nothing loaded first. Only the isola CLI links this (isola_embedded_dep); the
 * runtime does not carry the bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct embedded_image {
  const char *name;          /* full reference: "docker.io/library/busybox:latest" */
  const char *short_name;    /* what users type: "busybox" */
  const unsigned char *data; /* an oci-archive (tar of an OCI image layout), read-only */
  size_t len;
};

/* Fill `out` with the image called `name`: its short name, "SHORT:latest", or the full
 * reference. False when no embedded image has that name. Everything `out` points to lives as
 * long as the program. */
bool embedded_image_find(const char *name, struct embedded_image *out);

/* Fill `out` with the i-th embedded image (to list them); false past the last. */
bool embedded_image_at(size_t i, struct embedded_image *out);
