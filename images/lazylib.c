/* Loading libcurl, libarchive, zlib and zstd on first use (why: lazylib.h). */
#define LAZYLIB_IMPLEMENTATION
#include "lazylib.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct lazy_lib {
  const char *soname;
  const char *package; /* Debian's, for the hint */
  const char *needed_for;
  const char *const *names; /* NULL-terminated, in table order */
  void *table;              /* struct lazy_*: one function pointer per name */
  char error[512];          /* empty once loaded */
};

#define LAZY_NAME(name) #name,
static const char *const curl_names[] = {LAZY_CURL_FUNCTIONS(LAZY_NAME) NULL};
static const char *const archive_names[] = {LAZY_ARCHIVE_FUNCTIONS(LAZY_NAME) NULL};
static const char *const zlib_names[] = {LAZY_ZLIB_FUNCTIONS(LAZY_NAME) NULL};
static const char *const zstd_names[] = {LAZY_ZSTD_FUNCTIONS(LAZY_NAME) NULL};
#undef LAZY_NAME

struct lazy_curl lazy_curl;
struct lazy_archive lazy_archive;
struct lazy_zlib lazy_zlib;
struct lazy_zstd lazy_zstd;

/* The tables are filled as arrays of pointers: each must be exactly that. */
_Static_assert(sizeof(lazy_curl) == (ARRAY_SIZE(curl_names) - 1) * sizeof(void (*)(void)),
               "struct lazy_curl");
_Static_assert(sizeof(lazy_archive) == (ARRAY_SIZE(archive_names) - 1) * sizeof(void (*)(void)),
               "struct lazy_archive");
_Static_assert(sizeof(lazy_zlib) == (ARRAY_SIZE(zlib_names) - 1) * sizeof(void (*)(void)),
               "struct lazy_zlib");
_Static_assert(sizeof(lazy_zstd) == (ARRAY_SIZE(zstd_names) - 1) * sizeof(void (*)(void)),
               "struct lazy_zstd");
_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym() returns function pointers");

static struct lazy_lib curl_lib = {LAZY_CURL_SONAME, "libcurl4", "needed for pulls", curl_names,
                                   &lazy_curl};
static struct lazy_lib archive_lib = {LAZY_ARCHIVE_SONAME, "libarchive13",
                                      "needed to unpack, load and save images", archive_names,
                                      &lazy_archive};
static struct lazy_lib zlib_lib = {LAZY_ZLIB_SONAME, "zlib1g", "needed to unpack images",
                                   zlib_names, &lazy_zlib};
static struct lazy_lib zstd_lib = {LAZY_ZSTD_SONAME, "libzstd1", "needed to unpack images",
                                   zstd_names, &lazy_zstd};

/* Fill lib->table, or leave it all NULL and say why in lib->error. The library stays mapped
 * for the life of the process; RTLD_LOCAL keeps its symbols out of everyone else's way. */
static void lazy_lib_open(struct lazy_lib *lib)
{
  void *handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *why = dlerror();
    snprintf(lib->error, sizeof(lib->error), "cannot load %s (%s): %s (Debian package: %s)",
             lib->soname, lib->needed_for, why ? why : "dlopen failed", lib->package);
    return;
  }
  size_t n = 0;
  for (; lib->names[n]; n++) {
    dlerror();
    void *sym = dlsym(handle, lib->names[n]);
    if (!sym) {
      const char *why = dlerror();
      snprintf(lib->error, sizeof(lib->error), "cannot load %s (%s): %s", lib->soname,
               lib->needed_for, why ? why : lib->names[n]);
      memset(lib->table, 0, n * sizeof(void *));
      dlclose(handle);
      return;
    }
    /* POSIX: a function's address as returned by dlsym() converts to its pointer type. */
    memcpy((char *) lib->table + n * sizeof(void *), &sym, sizeof(sym));
  }
}

static int lazy_lib_result(const struct lazy_lib *lib, struct isola_error **err)
{
  return lib->error[0] ? isola_failx(err, ELIBACC, "%s", lib->error) : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_open(void)
{
  lazy_lib_open(&curl_lib);
}

int lazy_curl_load(struct isola_error **err)
{
  pthread_once(&curl_once, curl_open);
  return lazy_lib_result(&curl_lib, err);
}

static pthread_once_t archive_once = PTHREAD_ONCE_INIT;
static void archive_open(void)
{
  lazy_lib_open(&archive_lib);
  lazy_lib_open(&zlib_lib);
  lazy_lib_open(&zstd_lib);
}

int lazy_archive_load(struct isola_error **err)
{
  pthread_once(&archive_once, archive_open);
  int r = lazy_lib_result(&archive_lib, err);
  if (r == 0)
    r = lazy_lib_result(&zlib_lib, err);
  if (r == 0)
    r = lazy_lib_result(&zstd_lib, err);
  return r;
}
