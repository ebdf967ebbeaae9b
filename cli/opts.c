/* Option parsing compatible with runc's (urfave/cli): --name value, --name=value, -name value,
 * short letters, boolean flags with an optional =true/false. */
#include "cli.h"

#include <signal.h>
#include <string.h>
#include <strings.h>

static const struct opt *find(const struct opt *opts, const char *name, size_t len, char short_name)
{
  for (const struct opt *o = opts; o->name; o++) {
    if (short_name && o->short_name == short_name)
      return o;
    if (!short_name && strlen(o->name) == len && !strncmp(o->name, name, len))
      return o;
  }
  return NULL;
}

static int set_value(const char *verb, const struct opt *o, const char *v, struct isola_error **err)
{
  switch (o->type) {
  case OPT_BOOL:
    if (!v || !strcmp(v, "true") || !strcmp(v, "1"))
      *(bool *) o->dest = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0"))
      *(bool *) o->dest = false;
    else
      return isola_failx(err, EINVAL, "%s: --%s takes true or false, not \"%s\"", verb, o->name, v);
    return 0;
  case OPT_STR:
    *(const char **) o->dest = v;
    return 0;
  case OPT_INT: {
    int64_t x;
    if (parse_i64(v, &x) < 0 || x < INT32_MIN || x > INT32_MAX)
      return isola_failx(err, EINVAL, "%s: --%s takes an integer, not \"%s\"", verb, o->name, v);
    *(int *) o->dest = (int) x;
    return 0;
  }
  case OPT_STRLIST:
    *(char ***) o->dest = strv_append(*(char ***) o->dest, v);
    return 0;
  }
  return -EINVAL;
}

int opts_parse(const char *verb, const struct opt *opts, int argc, char **argv,
               struct isola_error **err)
{
  int i = 0;
  while (i < argc) {
    const char *a = argv[i];
    if (!strcmp(a, "--"))
      return i + 1;
    if (a[0] != '-' || a[1] == '\0')
      return i;
    const char *name = a + 1 + (a[1] == '-');
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t) (eq - name) : strlen(name);
    const struct opt *o = find(opts, name, len, 0);
    if (!o && a[1] != '-' && len == 1)
      o = find(opts, NULL, 0, name[0]);
    if (!o && a[1] != '-' && !eq) {
      /* A cluster of short boolean flags, e.g. -dt. */
      bool all = true;
      for (const char *c = name; *c && all; c++) {
        const struct opt *s = find(opts, NULL, 0, *c);
        all = s && s->type == OPT_BOOL;
      }
      if (all) {
        for (const char *c = name; *c; c++)
          *(bool *) find(opts, NULL, 0, *c)->dest = true;
        i++;
        continue;
      }
    }
    if (!o)
      return isola_failx(err, EINVAL, "%s: unknown option \"%.*s\"", verb, (int) (len + (name - a)),
                         a);
    const char *v = eq ? eq + 1 : NULL;
    if (!v && o->type != OPT_BOOL) {
      if (i + 1 >= argc)
        return isola_failx(err, EINVAL, "%s: option --%s needs a value", verb, o->name);
      v = argv[++i];
    }
    int r = set_value(verb, o, v, err);
    if (r < 0)
      return r;
    i++;
  }
  return i;
}

int need_args(const char *verb, int argc, int first, int n, const char *usage,
              struct isola_error **err)
{
  if (argc - first != n)
    return isola_failx(err, EINVAL,
                       "%s: expected %d argument%s (usage: isola-runtime %s %s), got %d", verb, n,
                       n == 1 ? "" : "s", verb, usage, argc - first);
  return 0;
}

int parse_signal(const char *s)
{
  int64_t n;
  if (parse_i64(s, &n) == 0)
    return n > 0 && n < _NSIG ? (int) n : -1;
  if (!strncasecmp(s, "SIG", 3))
    s += 3;
  if (!strncasecmp(s, "RTMIN", 5) || !strncasecmp(s, "RTMAX", 5)) {
    int base = !strncasecmp(s, "RTMIN", 5) ? SIGRTMIN : SIGRTMAX;
    if (!s[5])
      return base;
    /* Bound the offset before the arithmetic: "RTMIN+2147483647" must not overflow. */
    if ((s[5] == '+' || s[5] == '-') && parse_i64(s + 6, &n) == 0 && n >= 0 &&
        n <= SIGRTMAX - SIGRTMIN) {
      int v = s[5] == '+' ? base + (int) n : base - (int) n;
      return v >= SIGRTMIN && v <= SIGRTMAX ? v : -1;
    }
    return -1;
  }
  for (int sig = 1; sig < SIGRTMIN; sig++) {
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev && !strcasecmp(abbrev, s))
      return sig;
  }
  return -1;
}
