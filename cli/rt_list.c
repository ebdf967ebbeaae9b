/* list: every container under --root, as a table, JSON, or ids only. */
#include "cli.h"

#include <string.h>

int verb_list(struct cli *cli, int argc, char **argv, struct isola_error **err)
{
  const char *format = "table";
  bool quiet = false;
  const struct opt opts[] = {
      {"format", 'f', OPT_STR, &format}, {"quiet", 'q', OPT_BOOL, &quiet}, {NULL, 0, 0, NULL}};
  int first = opts_parse("list", opts, argc, argv, err);
  if (first < 0 || need_args("list", argc, first, 0, "[--format table|json] [-q]", err) < 0)
    return 1;
  struct container_info *list = NULL;
  size_t n = 0;
  if (container_list(&cli->ro, &list, &n, err) < 0)
    return 1;
  if (quiet) {
    for (size_t i = 0; i < n; i++)
      printf("%s\n", list[i].id);
  } else if (!strcmp(format, "json")) {
    _cleanup_json_ struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
      struct json_object *o = json_object_new_object();
      json_object_object_add(o, "ociVersion", json_object_new_string(OCI_VERSION_SUPPORTED));
      json_object_object_add(o, "id", json_object_new_string(list[i].id));
      json_object_object_add(o, "pid", json_object_new_int(list[i].pid));
      json_object_object_add(o, "status", json_object_new_string(list[i].status));
      json_object_object_add(o, "bundle", json_object_new_string(list[i].bundle));
      json_object_object_add(o, "rootfs", json_object_new_string(""));
      json_object_object_add(o, "created", json_object_new_string(list[i].created));
      json_object_object_add(o, "owner", json_object_new_string(list[i].owner == 0 ? "root" : ""));
      json_object_array_add(arr, o);
    }
    _cleanup_free_ char *s = json_to_string(arr, false);
    printf("%s\n", n ? s : "null");
  } else if (!strcmp(format, "table")) {
    printf("%-20s %-8s %-10s %-40s %-30s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED",
           "OWNER");
    for (size_t i = 0; i < n; i++)
      printf("%-20s %-8d %-10s %-40s %-30s %s\n", list[i].id, (int) list[i].pid, list[i].status,
             list[i].bundle, list[i].created, list[i].owner == 0 ? "root" : "");
  } else {
    container_info_free(list, n);
    isola_failx(err, EINVAL, "list: --format \"%s\" is not table or json", format);
    return 1;
  }
  container_info_free(list, n);
  return 0;
}
