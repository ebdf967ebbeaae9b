/* pull: fetch an image from a registry into the store, showing per-blob progress. */
#include "isola.h"

#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#define MAX_PROGRESS_LINES 1000
#define PULL_USAGE                                                                                 \
  "isola pull [--platform OS/ARCH] [--authfile FILE] [--tls-verify=false] [-q] "                   \
  "NAME[:TAG|@DIGEST]"

struct pull_display {
  bool tty;
  char **digests; /* one line each on the terminal, in the order they appeared */
  size_t n;
  bool *started; /* the blob's first call was not a finished one: it was downloaded */
};

static void human_size(uint64_t n, char *buf, size_t len)
{
  if (n < 1024)
    snprintf(buf, len, "%llu B", (unsigned long long) n);
  else if (n < (1ull << 20))
    snprintf(buf, len, "%.1f KiB", (double) n / 1024);
  else if (n < (1ull << 30))
    snprintf(buf, len, "%.1f MiB", (double) n / (1 << 20));
  else
    snprintf(buf, len, "%.2f GiB", (double) n / (1ull << 30));
}

static void on_progress(void *arg, const char *digest, uint64_t done, uint64_t total, bool finished)
{
  struct pull_display *d = arg;
  size_t i = 0;
  while (i < d->n && strcmp(d->digests[i], digest))
    i++;
  bool fresh = i == d->n;
  if (fresh) {
    if (d->n >= MAX_PROGRESS_LINES)
      return;
    d->digests = xrealloc(d->digests, (d->n + 1) * sizeof(*d->digests));
    d->started = xrealloc(d->started, (d->n + 1) * sizeof(*d->started));
    d->digests[d->n] = xstrdup(digest);
    d->started[d->n] = !finished;
    d->n++;
  }
  char short_digest[20], sdone[32], stotal[32], line[160];
  snprintf(short_digest, sizeof(short_digest), "%.19s", digest);
  human_size(done, sdone, sizeof(sdone));
  human_size(total, stotal, sizeof(stotal));
  if (finished && !d->started[i]) {
    snprintf(line, sizeof(line), "%s: already exists", short_digest);
  } else if (finished) {
    snprintf(line, sizeof(line), "%s: downloaded %s", short_digest, stotal);
  } else {
    char bar[31];
    int width = 30, fill = total ? (int) ((double) done / (double) total * width) : 0;
    fill = fill > width ? width : fill;
    for (int k = 0; k < width; k++)
      bar[k] = k < fill ? '=' : k == fill ? '>' : ' ';
    bar[width] = 0;
    snprintf(line, sizeof(line), "%s: [%s] %s / %s", short_digest, bar, sdone, stotal);
  }
  if (!d->tty) {
    if (finished)
      fprintf(stderr, "%s\n", line);
    return;
  }
  /* Redraw line i in place: the cursor rests below the last line. */
  size_t up = d->n - i;
  if (fresh)
    fprintf(stderr, "%s\n", line);
  else
    fprintf(stderr, "\033[%zuA\r\033[K%s\n", up, line);
  if (!fresh && up > 1)
    fprintf(stderr, "\033[%zuB", up - 1);
  fflush(stderr);
}

static void display_clear(struct pull_display *d)
{
  for (size_t i = 0; i < d->n; i++)
    free(d->digests[i]);
  free(d->digests);
  free(d->started);
}

/* The host's architecture in OCI terms (GOARCH). */
static const char *host_arch(void)
{
  static struct utsname u;
  if (uname(&u) < 0)
    return "amd64";
  static const struct {
    const char *machine, *arch;
  } map[] = {{"x86_64", "amd64"},    {"aarch64", "arm64"}, {"armv7l", "arm"},     {"i686", "386"},
             {"ppc64le", "ppc64le"}, {"s390x", "s390x"},   {"riscv64", "riscv64"}};
  for (size_t i = 0; i < ARRAY_SIZE(map); i++)
    if (!strcmp(u.machine, map[i].machine))
      return map[i].arch;
  return u.machine;
}

int isola_verb_pull(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  bool tls_verify = true, insecure = false, quiet = false, help = false;
  const char *platform = NULL, *authfile = NULL;
  const struct opt opts[] = {{"tls-verify", 0, OPT_BOOL, &tls_verify},
                             {"insecure", 0, OPT_BOOL, &insecure},
                             {"platform", 0, OPT_STR, &platform},
                             {"authfile", 0, OPT_STR, &authfile},
                             {"quiet", 'q', OPT_BOOL, &quiet},
                             {"help", 'h', OPT_BOOL, &help},
                             {NULL, 0, 0, NULL}};
  /* argv[0] is the verb. */
  int first = opts_parse("pull", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return cli->fail_status;
  first += 1;
  if (help) {
    printf("usage: %s\n\n"
           "  --platform OS/ARCH   the image to choose from a multi-platform index\n"
           "  --authfile FILE      credentials (default $REGISTRY_AUTH_FILE,\n"
           "                       /run/containers/UID/auth.json, ~/.docker/config.json)\n"
           "  --tls-verify=false   plain HTTP and no certificate checks (also --insecure)\n"
           "  -q, --quiet          print only the manifest digest\n"
           "Registries on localhost, 127.0.0.0/8 and ::1 are spoken to over plain HTTP.\n",
           PULL_USAGE);
    return 0;
  }
  if (argc - first != 1) {
    isola_failx(err, EINVAL, "pull: usage: %s", PULL_USAGE);
    return cli->fail_status;
  }
  const char *ref = argv[first];

  /* --platform os/arch[/variant]; the variant is not used to choose (amd64 has none). */
  _cleanup_free_ char *os = xstrdup("linux"), *arch = xstrdup(host_arch());
  if (platform) {
    const char *slash = strchr(platform, '/');
    size_t alen = slash ? strcspn(slash + 1, "/") : 0;
    if (!slash || slash == platform || !alen) {
      isola_failx(err, EINVAL, "pull: --platform \"%s\" is not OS/ARCH (e.g. linux/amd64)",
                  platform);
      return cli->fail_status;
    }
    free(os);
    free(arch);
    os = xasprintf("%.*s", (int) (slash - platform), platform);
    arch = xasprintf("%.*s", (int) alen, slash + 1);
  }

  _cleanup_store_ struct image_store *store = NULL;
  if (isola_open_store(cli, &store, err) < 0)
    return cli->fail_status;

  struct pull_display display = {.tty = isatty(STDERR_FILENO)};
  struct pull_progress progress = {on_progress, &display};
  struct pull_opts po = {
      .insecure = insecure || !tls_verify,
      .auth_file = authfile,
      .os = os,
      .arch = arch,
      .progress = quiet ? NULL : &progress,
  };
  char digest[DIGEST_LEN + 1];
  int r = image_pull(store, ref, &po, digest, err);
  display_clear(&display);
  if (r < 0)
    return cli->fail_status;

  if (quiet) {
    printf("%s\n", digest);
    return 0;
  }
  struct image_ref parsed = {0};
  _cleanup_free_ char *name = NULL;
  if (ref_parse(ref, &parsed, NULL) == 0) {
    name = ref_format(&parsed);
    ref_clear(&parsed);
  }
  printf("Digest: %s\n%s\n", digest, name ? name : ref);
  return 0;
}
