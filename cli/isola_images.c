/* images: the named images in the store, as a table or JSON. */
#include "isola.h"

#include <string.h>

static void human_size(int64_t n, char out[32])
{
  const char *units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = (double) n;
  size_t u = 0;
  while (v >= 1000 && u + 1 < ARRAY_SIZE(units))
    v /= 1000, u++;
  snprintf(out, 32, u ? "%.3g%s" : "%.0f%s", v, units[u]);
}

int isola_verb_images(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  const char *format = "table";
  bool quiet = false;
  const struct opt opts[] = {
      {"format", 0, OPT_STR, &format}, {"quiet", 'q', OPT_BOOL, &quiet}, {NULL, 0, 0, NULL}};
  int first = opts_parse("images", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  if (first + 1 != argc || (strcmp(format, "table") && strcmp(format, "json"))) {
    isola_failx(err, EINVAL, "images: usage: isola images [-q] [--format table|json]");
    return 1;
  }
  _cleanup_store_ struct image_store *s = NULL;
  struct image_entry *v = NULL;
  size_t n = 0;
  if (isola_open_store(cli, &s, err) < 0 || store_list(s, &v, &n, err) < 0)
    return 1;
  _cleanup_json_ struct json_object *arr = json_object_new_array();
  if (!quiet && !strcmp(format, "table"))
    printf("%-40s  %-16s  %-12s  %-20s  %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
  for (size_t i = 0; i < n; i++) {
    _cleanup_free_ char *short_name = ref_short_name(v[i].name);
    char *colon = strrchr(short_name, ':');
    const char *tag = "";
    if (colon && !strchr(colon, '/')) {
      *colon = 0;
      tag = colon + 1;
    }
    if (quiet) {
      printf("%.12s\n", v[i].config + 7);
    } else if (!strcmp(format, "json")) {
      struct json_object *o = json_object_new_object();
      json_object_object_add(o, "name", json_object_new_string(v[i].name));
      json_object_object_add(o, "repository", json_object_new_string(short_name));
      json_object_object_add(o, "tag", json_object_new_string(tag));
      json_object_object_add(o, "id", json_object_new_string(v[i].config));
      json_object_object_add(o, "digest", json_object_new_string(v[i].manifest));
      json_object_object_add(o, "created", json_object_new_string(v[i].created));
      json_object_object_add(o, "size", json_object_new_int64(v[i].size));
      json_object_array_add(arr, o);
    } else {
      char size[32];
      human_size(v[i].size, size);
      printf("%-40s  %-16s  %.12s  %-20.19s  %s\n", short_name, tag, v[i].config + 7, v[i].created,
             size);
    }
  }
  if (!quiet && !strcmp(format, "json")) {
    _cleanup_free_ char *t = json_to_string(arr, true);
    printf("%s\n", t);
  }
  image_entries_free(v, n);
  return 0;
}
