/* The image store: content-addressed blobs, image names, unpacked layers, import/export and
 * registry pulls. One internal header for the component; each function's contract is beside it.
 *
 * Layout under the store root (default /var/lib/isola, `--root` moves it):
 *   blobs/sha256/HEX       manifests, configs and layers exactly as received, named by digest
 *   layers/sha256/HEX/     a layer unpacked in overlayfs lower-dir form, named by its diff_id
 *   layers/sha256/HEX.lock held while that layer is being unpacked
 *   images.json            image names → manifest digest (replaced atomically, under `lock`)
 *   lock                   flock for images.json and for prune
 *   disks/HEX.erofs        an image's rootfs as a VM disk, named by its manifest digest
 *   containers/ID/         containers of the `isola` CLI (engine/)
 *
 * Crash safety: a blob is written to an unnamed O_TMPFILE in blobs/ and linked under its name
 * only once its digest is verified, so a SIGKILL leaves nothing behind. A layer is unpacked into
 * HEX.partial under HEX.lock and renamed when complete; a .partial found by the next holder of
 * the lock is the leftover of a dead unpacker and is removed. images.json names a manifest only
 * after every blob it references is in place.
 */
#pragma once

#include "util.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_DEFAULT_ROOT "/var/lib/isola"

/* ---- digests (digest.c) ---- */
#define DIGEST_HEX_LEN 64
#define DIGEST_LEN (7 + DIGEST_HEX_LEN) /* "sha256:" + hex */
/* Check "sha256:" followed by 64 lowercase hex digits; `what` names the field in the error. */
int digest_check(const char *digest, const char *what, struct isola_error **err);
/* Streaming sha256 (OpenSSL libcrypto). */
struct sha256_ctx;
struct sha256_ctx *sha256_new(void);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
/* Write "sha256:HEX" into out[DIGEST_LEN + 1] and free the context. */
void sha256_final(struct sha256_ctx *c, char out[DIGEST_LEN + 1]);
void sha256_free(struct sha256_ctx *c);
void sha256_digest_of(const void *data, size_t len, char out[DIGEST_LEN + 1]);

/* ---- the store (store.c) ---- */
struct image_store {
  char *root;
  int rootfd; /* O_DIRECTORY|O_PATH of root */
  int gc_fd;  /* gc.lock, held shared while open (exclusive in prune), -1 once released */
};
/* Create the layout (mode 0700 at the root) and open it. While open, the store holds gc.lock
 * shared, so prune waits for pulls, loads and container set-ups to finish. */
int store_open(const char *root, struct image_store **out, struct isola_error **err);
void store_close(struct image_store *s);
static inline void store_closep(struct image_store **s)
{
  if (*s)
    store_close(*s);
}
#define _cleanup_store_ _cleanup_(store_closep)

/* Let prune run (a container whose rootfs is mounted and recorded no longer needs the lock). */
void store_release(struct image_store *s);
/* Take the store lock (flock LOCK_EX on ROOT/lock, for images.json); returns the fd to close. */
int store_lock(struct image_store *s, int *fd, struct isola_error **err);
/* Trade the shared gc.lock for an exclusive one (prune). */
int store_gc_lock(struct image_store *s, struct isola_error **err);

/* Upper bounds for what outside input may make us hold or write. */
#define BLOB_MAX_DOC (4u << 20)      /* a manifest, index or config held in memory */
#define BLOB_MAX_LAYER (64ull << 30) /* a (compressed) layer blob */

/* A blob being written: the bytes go to an O_TMPFILE in blobs/, hashed as they arrive. */
struct blob_writer;
/* `limit` bounds the bytes accepted (EFBIG naming `what` past it). */
int blob_writer_new(struct image_store *s, const char *what, uint64_t limit,
                    struct blob_writer **out, struct isola_error **err);
int blob_writer_write(struct blob_writer *w, const void *data, size_t len,
                      struct isola_error **err);
uint64_t blob_writer_size(const struct blob_writer *w);
/* Finish: compare with `expected` (NULL: accept any), fsync, link as blobs/sha256/HEX (an
 * existing blob of that digest is kept: same content). The digest is written to digest_out.
 * A mismatch fails with EILSEQ naming both digests and `what`; nothing is linked. */
int blob_writer_commit(struct blob_writer *w, const char *expected, char digest_out[DIGEST_LEN + 1],
                       struct isola_error **err);
void blob_writer_free(struct blob_writer *w);
static inline void blob_writer_freep(struct blob_writer **w)
{
  if (*w)
    blob_writer_free(*w);
}
#define _cleanup_blob_writer_ _cleanup_(blob_writer_freep)
/* Store a small in-memory blob (manifest/config) and return its digest. */
int store_put_blob(struct image_store *s, const void *data, size_t len, const char *what,
                   char digest_out[DIGEST_LEN + 1], struct isola_error **err);
bool store_has_blob(struct image_store *s, const char *digest);
/* Open a blob read-only (ENOENT naming the digest when absent). */
int store_open_blob(struct image_store *s, const char *digest, int *fd, struct isola_error **err);
/* Read a document blob (≤ BLOB_MAX_DOC), NUL-terminated; its digest is checked again. */
int store_read_blob(struct image_store *s, const char *digest, char **data, size_t *len,
                    struct isola_error **err);
/* "ROOT/blobs/sha256/HEX" (malloc'd). */
char *store_blob_path(struct image_store *s, const char *digest);

/* ---- references (reference.c) ---- */
struct image_ref {
  char *registry;   /* "docker.io", "localhost:5000" */
  char *repository; /* "library/busybox" */
  char *tag;        /* "latest" unless a digest was given alone */
  char *digest;     /* "sha256:..." or NULL */
};
/* Parse a docker-style reference: "busybox" → docker.io/library/busybox:latest,
 * "127.0.0.1:5000/x/y:t", "name@sha256:...". EINVAL naming the reference when malformed. */
int ref_parse(const char *text, struct image_ref *out, struct isola_error **err);
void ref_clear(struct image_ref *r);
/* "registry/repository:tag" or "registry/repository@digest" (malloc'd). */
char *ref_format(const struct image_ref *r);
/* The full name of a reference ("busybox" → "docker.io/library/busybox:latest"), or NULL when
 * text is not a valid reference (malloc'd). */
char *ref_normalize(const char *text);
/* The name users see: docker.io/library/x:t → "x:t", others in full. */
char *ref_short_name(const char *full_name);

/* ---- manifests and configs (manifest.c) ---- */
struct layer_desc {
  char *media_type;
  char *digest;
  int64_t size;
};
struct image_manifest {
  char *media_type;
  char *config_digest;
  int64_t config_size;
  struct layer_desc *layers;
  size_t n_layers;
};
/* Parse an OCI image manifest or a docker schema 2 manifest. Every digest and size is checked;
 * errors name the field. An index arriving here fails with EMEDIUMTYPE. */
int manifest_parse(const char *text, size_t len, struct image_manifest **out,
                   struct isola_error **err);
void manifest_free(struct image_manifest *m);
/* True when the document is an OCI index or a docker manifest list. */
bool manifest_is_index(const char *text, size_t len);
/* Choose the manifest for os/arch (variant ignored for amd64) in an index; ENOENT listing the
 * platforms offered when none matches. */
int index_select(const char *text, size_t len, const char *os, const char *arch,
                 char digest_out[DIGEST_LEN + 1], struct isola_error **err);

struct image_config {
  char *os, *architecture, *created;
  char **entrypoint, **cmd, **env; /* NULL-terminated, each may be NULL */
  char *working_dir, *user, *stop_signal;
  char **diff_ids; /* one per layer */
  size_t n_diff_ids;
};
int image_config_parse(const char *text, size_t len, struct image_config **out,
                       struct isola_error **err);
void image_config_free(struct image_config *c);

/* ---- layer unpacking (unpack.c) ---- */
struct unpack_limits {
  uint64_t max_expanded; /* bytes of file data one layer may expand to */
  uint64_t max_entries;  /* entries in one layer */
  uint64_t max_ratio;    /* expanded/compressed, checked once past ratio_after bytes */
  uint64_t ratio_after;
};
/* 64 GiB, 4 M entries, 256:1 past 256 MiB. */
extern const struct unpack_limits unpack_default_limits;
struct unpack_stats {
  uint64_t compressed_bytes, expanded_bytes, entries;
};
/* Unpack one layer read from `fd` (a tar, gzip- or zstd-compressed or not; the compression is
 * detected from the bytes) into the empty directory `destfd`, in overlayfs lower-dir form: an
 * OCI whiteout ".wh.NAME" becomes a 0:0 character device NAME, ".wh..wh..opq" sets
 * trusted.overlay.opaque=y on its directory. Ownership, modes, mtimes, xattrs, hardlinks,
 * symlinks and device nodes are kept. Nothing is ever created, followed or linked outside
 * destfd: every path is resolved with RESOLVE_IN_ROOT, and an entry that would escape is
 * refused with EPERM naming it. Stops with EFBIG past a limit (decompression bombs, entries
 * whose header claims more than max_expanded), naming the limit. The sha256 of the uncompressed tar
 * stream is returned in diff_id (the caller compares it with the config's diff_ids). On failure
 * destfd's contents are unspecified: the caller removes the directory. */
int layer_unpack(int fd, int destfd, const struct unpack_limits *limits,
                 char diff_id[DIGEST_LEN + 1], struct unpack_stats *stats,
                 struct isola_error **err);

/* ---- images (images.c) ---- */
struct image_entry {
  char *name; /* full reference, "docker.io/library/busybox:latest" */
  char manifest[DIGEST_LEN + 1];
  char config[DIGEST_LEN + 1]; /* the image id */
  char *created;
  int64_t size; /* sum of layer blob sizes */
};
/* Name an image whose blobs are all stored; replaces an older image of that name. */
int store_tag(struct image_store *s, const char *name, const char *manifest_digest,
              struct isola_error **err);
/* Every named image (sorted by name). */
int store_list(struct image_store *s, struct image_entry **out, size_t *n,
               struct isola_error **err);
void image_entries_free(struct image_entry *e, size_t n);
/* Find an image by name (short or full), full id or id prefix (≥ 4 hex chars). ENOENT:
 * `no such image "x" in ROOT (try: isola images)`. */
int store_resolve(struct image_store *s, const char *what, struct image_entry *out,
                  struct isola_error **err);
/* Remove a name (or, given an id, every name of that image). */
int store_untag(struct image_store *s, const char *what, bool force, char ***removed,
                struct isola_error **err);
/* Remove blobs and layers no named image references, and no container: a container records
 * the manifest digest of its image in containers/ID/image. */
int store_prune(struct image_store *s, uint64_t *freed_bytes, struct isola_error **err);

/* Unpacked layers of an image, bottom first, unpacking what is missing (cached by diff_id,
 * locked per layer). Paths are malloc'd "ROOT/layers/sha256/HEX". */
int store_image_layers(struct image_store *s, const struct image_entry *img, char ***paths,
                       struct isola_error **err);

/* ---- VM disks (disk.c) ---- */
/* The image's rootfs as an erofs filesystem image for a VM's read-only root disk, built once
 * per manifest digest and cached as ROOT/disks/HEX.erofs (HEX of the manifest). It is made by
 * mkfs.erofs (erofs-utils) from a read-only overlay of the image's layers, mounted in a private
 * mount namespace of a child process, so a killed builder leaves no mount; the file appears
 * only complete (rename). *path is malloc'd. */
int store_image_disk(struct image_store *s, const struct image_entry *img, char **path,
                     struct isola_error **err);

/* ---- import and export (archive.c) ---- */
/* Load a docker-archive (docker/podman save), an OCI layout directory or an OCI layout tar.
 * Each image's names are tagged; `names` gets them (strv). Names without one (an untagged OCI
 * layout) are given `default_name` when non-NULL. */
int image_load(struct image_store *s, const char *path, const char *default_name, char ***names,
               struct isola_error **err);
enum save_format { SAVE_OCI_ARCHIVE, SAVE_DOCKER_ARCHIVE };
/* Write images (by name or id) as one tar to fd. */
int image_save(struct image_store *s, char *const *what, enum save_format fmt, int fd,
               struct isola_error **err);

/* ---- registry pulls (registry.c) ---- */
/* Per blob: one already in the store gets a single call with finished set and done == total; a
 * downloaded one gets done == 0 first, then throttled calls, then one with finished set. */
struct pull_progress {
  void (*fn)(void *arg, const char *digest, uint64_t done, uint64_t total, bool finished);
  void *arg;
};
struct pull_opts {
  bool insecure; /* plain HTTP and no TLS verification (loopback registries default to it) */
  const char *auth_file; /* containers-auth.json / docker config.json, NULL for the defaults */
  const char *os, *arch; /* platform for indexes, default linux/amd64 */
  const struct pull_progress *progress;
};
/* Fetch REF's manifest (choosing from an index), config and layers into the store, verifying
 * every digest, then tag it. The manifest digest is written to digest_out. */
int image_pull(struct image_store *s, const char *ref, const struct pull_opts *o,
               char digest_out[DIGEST_LEN + 1], struct isola_error **err);
