/* ps: the containers, running ones (or all with -a), as a table or JSON. */
#include "isola.h"

#include <string.h>

int isola_verb_ps(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  bool all = false, quiet = false;
  const char *format = "table";
  const struct opt opts[] = {
      {"all", 'a', OPT_BOOL, &all},
      {"quiet", 'q', OPT_BOOL, &quiet},
      {"format", 0, OPT_STR, &format},
      {NULL, 0, 0, NULL},
  };
  int first = opts_parse("ps", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  if (first + 1 != argc) {
    isola_failx(err, EINVAL, "ps: usage: isola ps [-a] [-q] [--format table|json]");
    return 1;
  }
  if (strcmp(format, "table") && strcmp(format, "json")) {
    isola_failx(err, EINVAL, "ps: --format: \"%s\" is not table or json", format);
    return 1;
  }
  struct engine eng = {0};
  struct ctr_record **v = NULL;
  size_t n = 0;
  if (isola_engine_open(cli, &eng, err) < 0 || ctr_list(&eng, &v, &n, err) < 0) {
    isola_engine_close(&eng);
    return 1;
  }
  _cleanup_json_ struct json_object *arr = json_object_new_array();
  if (!quiet && !strcmp(format, "table"))
    printf("%-12s  %-24s  %-24s  %-20s  %-14s  %s\n", "CONTAINER ID", "IMAGE", "COMMAND", "CREATED",
           "STATUS", "NAMES");
  for (size_t i = 0; i < n; i++) {
    struct ctr_record *r = v[i];
    enum ctr_status s = ctr_record_live_status(r);
    if (!all && s != CTR_RUNNING)
      continue;
    _cleanup_free_ char *cmd = xstrdup("");
    for (char **c = r->command; c && *c; c++) {
      char *t = xasprintf("%s%s%s", cmd, *cmd ? " " : "", *c);
      free(cmd);
      cmd = t;
    }
    _cleanup_free_ char *status =
        s == CTR_EXITED ? (r->status == CTR_EXITED ? xasprintf("exited (%d)", r->exit_code)
                                                   : xstrdup("exited (unknown)"))
                        : xstrdup(ctr_status_name(s));
    if (quiet) {
      printf("%.12s\n", r->id);
    } else if (!strcmp(format, "json")) {
      struct json_object *o = json_object_new_object();
      json_object_object_add(o, "id", json_object_new_string(r->id));
      json_object_object_add(o, "name", json_object_new_string(r->name ? r->name : ""));
      json_object_object_add(o, "image", json_object_new_string(r->image ? r->image : ""));
      json_object_object_add(o, "image_id", json_object_new_string(r->image_id ? r->image_id : ""));
      json_object_object_add(o, "command", json_object_new_string(cmd));
      json_object_object_add(o, "created", json_object_new_string(r->created ? r->created : ""));
      json_object_object_add(o, "state", json_object_new_string(ctr_status_name(s)));
      if (s == CTR_EXITED)
        json_object_object_add(o, "exit_code",
                               json_object_new_int(r->status == CTR_EXITED ? r->exit_code : -1));
      json_object_object_add(
          o, "isolation", json_object_new_string(r->isolation == ISOLATION_VM ? "vm" : "process"));
      json_object_array_add(arr, o);
    } else {
      printf("%.12s  %-24.24s  %-24.24s  %-20.19s  %-14s  %s\n", r->id, r->image ? r->image : "",
             cmd, r->created ? r->created : "", status, r->name ? r->name : "");
    }
  }
  if (!quiet && !strcmp(format, "json")) {
    _cleanup_free_ char *t = json_to_string(arr, true);
    printf("%s\n", t);
  }
  ctr_list_free(v, n);
  isola_engine_close(&eng);
  return 0;
}
