/* update: new resource limits for a running container, from flags or a resources JSON. */
#include "cli.h"

#include <ctype.h>
#include <fcntl.h>
#include <string.h>

/* "512m", "1G", "1024" → bytes; -1 stays -1 (unlimited). */
static int parse_size(const char *s, int64_t *out)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < -1)
    return -EINVAL;
  int64_t mult = 1;
  const char *units = "kmgt", *u = *end ? strchr(units, tolower((unsigned char) *end)) : NULL;
  if (u) {
    mult = 1LL << (10 * (u - units + 1));
    end++;
  }
  if (*end == 'b' || *end == 'B')
    end++;
  if (*end)
    return -EINVAL;
  if (v == -1) {
    *out = -1;
    return 0;
  }
  /* Converting a double outside int64_t (1e30, inf, nan) to an integer is undefined. */
  double bytes = v * (double) mult;
  if (!(bytes >= 0 && bytes < 0x1p63))
    return -EINVAL;
  *out = (int64_t) bytes;
  return 0;
}

struct flag_map {
  const char *flag, *group, *key;
  bool size, string;
  const char *value;
};

int verb_update(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  const char *resources = NULL;
  struct flag_map map[] = {
      {"blkio-weight", "blockIO", "weight", false, false, NULL},
      {"cpu-period", "cpu", "period", false, false, NULL},
      {"cpu-quota", "cpu", "quota", false, false, NULL},
      {"cpu-rt-period", "cpu", "realtimePeriod", false, false, NULL},
      {"cpu-rt-runtime", "cpu", "realtimeRuntime", false, false, NULL},
      {"cpu-share", "cpu", "shares", false, false, NULL},
      {"cpuset-cpus", "cpu", "cpus", false, true, NULL},
      {"cpuset-mems", "cpu", "mems", false, true, NULL},
      {"kernel-memory", "memory", "kernel", true, false, NULL},
      {"kernel-memory-tcp", "memory", "kernelTCP", true, false, NULL},
      {"memory", "memory", "limit", true, false, NULL},
      {"memory-reservation", "memory", "reservation", true, false, NULL},
      {"memory-swap", "memory", "swap", true, false, NULL},
      {"pids-limit", "pids", "limit", false, false, NULL},
  };
  struct opt opts[ARRAY_SIZE(map) + 2];
  for (size_t i = 0; i < ARRAY_SIZE(map); i++)
    opts[i] = (struct opt){map[i].flag, 0, OPT_STR, &map[i].value};
  opts[ARRAY_SIZE(map)] = (struct opt){"resources", 'r', OPT_STR, &resources};
  opts[ARRAY_SIZE(map) + 1] = (struct opt){NULL, 0, 0, NULL};
  int first = opts_parse("update", opts, argc, argv, err);
  if (first < 0 || need_args("update", argc, first, 1, "[options] ID", err) < 0)
    return 1;

  _cleanup_json_ struct json_object *res = NULL;
  if (resources) {
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = !strcmp(resources, "-") ? read_file_at(AT_FDCWD, "/dev/stdin", 4 << 20, &text, &len)
                                    : read_file_at(AT_FDCWD, resources, 4 << 20, &text, &len);
    if (r < 0) {
      isola_fail(err, -r, "update: --resources: cannot read \"%s\"", resources);
      return 1;
    }
    if (json_parse_doc(text, len, "update --resources", &res, err) < 0)
      return 1;
  } else {
    res = json_object_new_object();
  }
  for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
    if (!map[i].value)
      continue;
    struct json_object *g = json_object_object_get(res, map[i].group);
    if (!g) {
      g = json_object_new_object();
      json_object_object_add(res, map[i].group, g);
    }
    struct json_object *v;
    if (map[i].string) {
      v = json_object_new_string(map[i].value);
    } else {
      int64_t x;
      if ((map[i].size ? parse_size(map[i].value, &x) : parse_i64(map[i].value, &x)) < 0) {
        isola_failx(err, EINVAL, "update: --%s: \"%s\" is not a %s", map[i].flag, map[i].value,
                    map[i].size ? "size" : "number");
        return 1;
      }
      v = json_object_new_int64(x);
    }
    json_object_object_add(g, map[i].key, v);
  }
  struct oci_resources r = {0};
  int ret = spec_parse_resources(res, "update", &r, err);
  if (ret == 0)
    ret = container_update(&cli->ro, argv[first], &r, res, err);
  spec_resources_clear(&r);
  return ret < 0 ? 1 : 0;
}
