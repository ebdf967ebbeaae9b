/* Libraries loaded on first use. libcurl (pulls) and libarchive, zlib and zstd (layer unpacking,
 * image load and save) cost `isola` ~20 ms of dynamic loading on every start, yet a run of an
 * image whose layers are unpacked calls none of them. So `isola` links none of them: their
 * headers give the prototypes and constants, and the functions are reached through tables of
 * pointers filled by dlopen() + dlsym() the first time a pull, load, save or unpack needs them.
 *
 * A file that calls these libraries includes this header instead of (or after) theirs: every
 * function it calls is then a macro naming the table entry, so the call sites read as plain
 * libcurl/libarchive calls. A function missing from the tables below does not link (the
 * libraries are not on the link line), so the lists cannot silently fall behind the code.
 *
 * Contract: lazy_curl_load() before any curl_* call; lazy_archive_load() before any archive_*,
 * inflate* or ZSTD_* call. Each loads once per process (pthread_once), never unloads, and
 * fails with ELIBACC and one line naming the library, what needs it and why it could not be
 * loaded; it fails the same way on every later call. Calling a function before its load
 * succeeded jumps through a NULL pointer.
 *
 * curl's gcc type checks of curl_easy_setopt/getinfo (typecheck-gcc.h) wrap the real call in
 * a macro, which cannot be redirected, so they are off here: pass each option the type its
 * CURLOPTTYPE_* says (long, pointer, function pointer or curl_off_t), as the code does.
 */
#pragma once

#include "util.h"

#ifndef CURL_DISABLE_TYPECHECK
#define CURL_DISABLE_TYPECHECK
#endif
#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <zlib.h>
#include <zstd.h>

/* curl.h defines these as function-like macros (checks or not), which would shadow ours. */
#undef curl_easy_setopt
#undef curl_easy_getinfo

/* Sonames of the libraries the headers above describe (Debian 12: libcurl4, libarchive13,
 * zlib1g, libzstd1). Each has kept its soname across many releases. */
#define LAZY_CURL_SONAME "libcurl.so.4"
#define LAZY_ARCHIVE_SONAME "libarchive.so.13"
#define LAZY_ZLIB_SONAME "libz.so.1"
#define LAZY_ZSTD_SONAME "libzstd.so.1"

/* The functions we call, per library (X-macros: the table and its dlsym() names). */
#define LAZY_CURL_FUNCTIONS(X)                                                                     \
  X(curl_global_init)                                                                              \
  X(curl_global_cleanup)                                                                           \
  X(curl_easy_init)                                                                                \
  X(curl_easy_cleanup)                                                                             \
  X(curl_easy_setopt)                                                                              \
  X(curl_easy_getinfo)                                                                             \
  X(curl_easy_perform)                                                                             \
  X(curl_easy_strerror)                                                                            \
  X(curl_easy_escape)                                                                              \
  X(curl_free)                                                                                     \
  X(curl_slist_append)                                                                             \
  X(curl_slist_free_all)                                                                           \
  X(curl_url)                                                                                      \
  X(curl_url_cleanup)                                                                              \
  X(curl_url_set)                                                                                  \
  X(curl_url_get)

#define LAZY_ARCHIVE_FUNCTIONS(X)                                                                  \
  X(archive_errno)                                                                                 \
  X(archive_error_string)                                                                          \
  X(archive_set_error)                                                                             \
  X(archive_read_new)                                                                              \
  X(archive_read_free)                                                                             \
  X(archive_read_support_format_tar)                                                               \
  X(archive_read_support_format_empty)                                                             \
  X(archive_read_support_filter_gzip)                                                              \
  X(archive_read_support_filter_zstd)                                                              \
  X(archive_read_open)                                                                             \
  X(archive_read_open_fd)                                                                          \
  X(archive_read_next_header)                                                                      \
  X(archive_read_data)                                                                             \
  X(archive_read_data_block)                                                                       \
  X(archive_write_new)                                                                             \
  X(archive_write_free)                                                                            \
  X(archive_write_set_format_pax_restricted)                                                       \
  X(archive_write_add_filter_none)                                                                 \
  X(archive_write_set_bytes_in_last_block)                                                         \
  X(archive_write_open_fd)                                                                         \
  X(archive_write_header)                                                                          \
  X(archive_write_data)                                                                            \
  X(archive_write_close)                                                                           \
  X(archive_entry_new)                                                                             \
  X(archive_entry_free)                                                                            \
  X(archive_entry_filetype)                                                                        \
  X(archive_entry_pathname)                                                                        \
  X(archive_entry_pathname_utf8)                                                                   \
  X(archive_entry_hardlink)                                                                        \
  X(archive_entry_hardlink_utf8)                                                                   \
  X(archive_entry_symlink)                                                                         \
  X(archive_entry_symlink_utf8)                                                                    \
  X(archive_entry_size)                                                                            \
  X(archive_entry_size_is_set)                                                                     \
  X(archive_entry_perm)                                                                            \
  X(archive_entry_uid)                                                                             \
  X(archive_entry_gid)                                                                             \
  X(archive_entry_rdevmajor)                                                                       \
  X(archive_entry_rdevminor)                                                                       \
  X(archive_entry_atime)                                                                           \
  X(archive_entry_atime_nsec)                                                                      \
  X(archive_entry_atime_is_set)                                                                    \
  X(archive_entry_mtime)                                                                           \
  X(archive_entry_mtime_nsec)                                                                      \
  X(archive_entry_mtime_is_set)                                                                    \
  X(archive_entry_xattr_reset)                                                                     \
  X(archive_entry_xattr_next)                                                                      \
  X(archive_entry_set_pathname)                                                                    \
  X(archive_entry_set_filetype)                                                                    \
  X(archive_entry_set_perm)                                                                        \
  X(archive_entry_set_uid)                                                                         \
  X(archive_entry_set_gid)                                                                         \
  X(archive_entry_set_size)                                                                        \
  X(archive_entry_set_mtime)

/* inflateInit2() is a zlib.h macro around inflateInit2_(). */
#define LAZY_ZLIB_FUNCTIONS(X)                                                                     \
  X(inflateInit2_)                                                                                 \
  X(inflate)                                                                                       \
  X(inflateReset)                                                                                  \
  X(inflateEnd)

#define LAZY_ZSTD_FUNCTIONS(X)                                                                     \
  X(ZSTD_createDStream)                                                                            \
  X(ZSTD_initDStream)                                                                              \
  X(ZSTD_decompressStream)                                                                         \
  X(ZSTD_freeDStream)                                                                              \
  X(ZSTD_isError)                                                                                  \
  X(ZSTD_getErrorName)

#define LAZY_MEMBER(name) __typeof__(name) *name;
struct lazy_curl {
  LAZY_CURL_FUNCTIONS(LAZY_MEMBER)
};
struct lazy_archive {
  LAZY_ARCHIVE_FUNCTIONS(LAZY_MEMBER)
};
struct lazy_zlib {
  LAZY_ZLIB_FUNCTIONS(LAZY_MEMBER)
};
struct lazy_zstd {
  LAZY_ZSTD_FUNCTIONS(LAZY_MEMBER)
};
#undef LAZY_MEMBER

/* Filled by the loads below; all NULL until then. */
extern struct lazy_curl lazy_curl;
extern struct lazy_archive lazy_archive;
extern struct lazy_zlib lazy_zlib;
extern struct lazy_zstd lazy_zstd;

/* Load libcurl (for pulls). */
int lazy_curl_load(struct isola_error **err);
/* Load libarchive, zlib and zstd (for layer unpacking, image load and save): the unpacker uses
 * all three, and libarchive maps the other two anyway. */
int lazy_archive_load(struct isola_error **err);

#ifndef LAZYLIB_IMPLEMENTATION
/* Every call goes through the table (a macro does not expand inside its own expansion, so
 * `lazy_curl.curl_free` names the member). */
#define curl_global_init (lazy_curl.curl_global_init)
#define curl_global_cleanup (lazy_curl.curl_global_cleanup)
#define curl_easy_init (lazy_curl.curl_easy_init)
#define curl_easy_cleanup (lazy_curl.curl_easy_cleanup)
#define curl_easy_setopt (lazy_curl.curl_easy_setopt)
#define curl_easy_getinfo (lazy_curl.curl_easy_getinfo)
#define curl_easy_perform (lazy_curl.curl_easy_perform)
#define curl_easy_strerror (lazy_curl.curl_easy_strerror)
#define curl_easy_escape (lazy_curl.curl_easy_escape)
#define curl_free (lazy_curl.curl_free)
#define curl_slist_append (lazy_curl.curl_slist_append)
#define curl_slist_free_all (lazy_curl.curl_slist_free_all)
#define curl_url (lazy_curl.curl_url)
#define curl_url_cleanup (lazy_curl.curl_url_cleanup)
#define curl_url_set (lazy_curl.curl_url_set)
#define curl_url_get (lazy_curl.curl_url_get)

#define archive_errno (lazy_archive.archive_errno)
#define archive_error_string (lazy_archive.archive_error_string)
#define archive_set_error (lazy_archive.archive_set_error)
#define archive_read_new (lazy_archive.archive_read_new)
#define archive_read_free (lazy_archive.archive_read_free)
#define archive_read_support_format_tar (lazy_archive.archive_read_support_format_tar)
#define archive_read_support_format_empty (lazy_archive.archive_read_support_format_empty)
#define archive_read_support_filter_gzip (lazy_archive.archive_read_support_filter_gzip)
#define archive_read_support_filter_zstd (lazy_archive.archive_read_support_filter_zstd)
#define archive_read_open (lazy_archive.archive_read_open)
#define archive_read_open_fd (lazy_archive.archive_read_open_fd)
#define archive_read_next_header (lazy_archive.archive_read_next_header)
#define archive_read_data (lazy_archive.archive_read_data)
#define archive_read_data_block (lazy_archive.archive_read_data_block)
#define archive_write_new (lazy_archive.archive_write_new)
#define archive_write_free (lazy_archive.archive_write_free)
#define archive_write_set_format_pax_restricted                                                    \
  (lazy_archive.archive_write_set_format_pax_restricted)
#define archive_write_add_filter_none (lazy_archive.archive_write_add_filter_none)
#define archive_write_set_bytes_in_last_block (lazy_archive.archive_write_set_bytes_in_last_block)
#define archive_write_open_fd (lazy_archive.archive_write_open_fd)
#define archive_write_header (lazy_archive.archive_write_header)
#define archive_write_data (lazy_archive.archive_write_data)
#define archive_write_close (lazy_archive.archive_write_close)
#define archive_entry_new (lazy_archive.archive_entry_new)
#define archive_entry_free (lazy_archive.archive_entry_free)
#define archive_entry_filetype (lazy_archive.archive_entry_filetype)
#define archive_entry_pathname (lazy_archive.archive_entry_pathname)
#define archive_entry_pathname_utf8 (lazy_archive.archive_entry_pathname_utf8)
#define archive_entry_hardlink (lazy_archive.archive_entry_hardlink)
#define archive_entry_hardlink_utf8 (lazy_archive.archive_entry_hardlink_utf8)
#define archive_entry_symlink (lazy_archive.archive_entry_symlink)
#define archive_entry_symlink_utf8 (lazy_archive.archive_entry_symlink_utf8)
#define archive_entry_size (lazy_archive.archive_entry_size)
#define archive_entry_size_is_set (lazy_archive.archive_entry_size_is_set)
#define archive_entry_perm (lazy_archive.archive_entry_perm)
#define archive_entry_uid (lazy_archive.archive_entry_uid)
#define archive_entry_gid (lazy_archive.archive_entry_gid)
#define archive_entry_rdevmajor (lazy_archive.archive_entry_rdevmajor)
#define archive_entry_rdevminor (lazy_archive.archive_entry_rdevminor)
#define archive_entry_atime (lazy_archive.archive_entry_atime)
#define archive_entry_atime_nsec (lazy_archive.archive_entry_atime_nsec)
#define archive_entry_atime_is_set (lazy_archive.archive_entry_atime_is_set)
#define archive_entry_mtime (lazy_archive.archive_entry_mtime)
#define archive_entry_mtime_nsec (lazy_archive.archive_entry_mtime_nsec)
#define archive_entry_mtime_is_set (lazy_archive.archive_entry_mtime_is_set)
#define archive_entry_xattr_reset (lazy_archive.archive_entry_xattr_reset)
#define archive_entry_xattr_next (lazy_archive.archive_entry_xattr_next)
#define archive_entry_set_pathname (lazy_archive.archive_entry_set_pathname)
#define archive_entry_set_filetype (lazy_archive.archive_entry_set_filetype)
#define archive_entry_set_perm (lazy_archive.archive_entry_set_perm)
#define archive_entry_set_uid (lazy_archive.archive_entry_set_uid)
#define archive_entry_set_gid (lazy_archive.archive_entry_set_gid)
#define archive_entry_set_size (lazy_archive.archive_entry_set_size)
#define archive_entry_set_mtime (lazy_archive.archive_entry_set_mtime)

#define inflateInit2_ (lazy_zlib.inflateInit2_)
#define inflate (lazy_zlib.inflate)
#define inflateReset (lazy_zlib.inflateReset)
#define inflateEnd (lazy_zlib.inflateEnd)

#define ZSTD_createDStream (lazy_zstd.ZSTD_createDStream)
#define ZSTD_initDStream (lazy_zstd.ZSTD_initDStream)
#define ZSTD_decompressStream (lazy_zstd.ZSTD_decompressStream)
#define ZSTD_freeDStream (lazy_zstd.ZSTD_freeDStream)
#define ZSTD_isError (lazy_zstd.ZSTD_isError)
#define ZSTD_getErrorName (lazy_zstd.ZSTD_getErrorName)
#endif
