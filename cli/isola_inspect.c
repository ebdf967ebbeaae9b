/* inspect: an image's manifest and config, or a container's record, as JSON. */
#include "isola.h"

#include <string.h>

static int inspect_image(struct image_store *s, const char *what, struct json_object **out,
                         struct isola_error **err)
{
  struct image_entry img = {0};
  int r = store_resolve(s, what, &img, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *name = img.name, *created = img.created, *mtext = NULL, *ctext = NULL;
  size_t mlen, clen;
  _cleanup_json_ struct json_object *m = NULL, *c = NULL;
  if ((r = store_read_blob(s, img.manifest, &mtext, &mlen, err)) < 0 ||
      (r = store_read_blob(s, img.config, &ctext, &clen, err)) < 0 ||
      (r = json_parse_doc(mtext, mlen, "manifest", &m, err)) < 0 ||
      (r = json_parse_doc(ctext, clen, "config", &c, err)) < 0)
    return r;
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "Id", json_object_new_string(img.config));
  json_object_object_add(o, "Name", json_object_new_string(img.name));
  json_object_object_add(o, "Digest", json_object_new_string(img.manifest));
  json_object_object_add(o, "Created", json_object_new_string(img.created));
  json_object_object_add(o, "Size", json_object_new_int64(img.size));
  json_object_object_add(o, "Manifest", steal_pointer(&m));
  json_object_object_add(o, "Config", steal_pointer(&c));
  *out = o;
  return 0;
}

static int inspect_container(struct engine *e, const char *what, struct json_object **out,
                             struct isola_error **err)
{
  _cleanup_record_ struct ctr_record *rec = NULL;
  int r = ctr_find(e, what, &rec, err);
  if (r < 0)
    return r;
  _cleanup_free_ char *path = xasprintf("containers/%s/container.json", rec->id), *text = NULL;
  size_t len;
  if ((r = read_file_at(e->store->rootfd, path, 1 << 20, &text, &len)) < 0)
    return isola_fail(err, -r, "cannot read the record of %s", what);
  if ((r = json_parse_doc(text, len, path, out, err)) < 0)
    return r;
  json_object_object_add(*out, "state",
                         json_object_new_string(ctr_status_name(ctr_record_live_status(rec))));
  return 0;
}

int isola_verb_inspect(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  const char *type = NULL;
  const struct opt opts[] = {{"type", 0, OPT_STR, &type}, {NULL, 0, 0, NULL}};
  int first = opts_parse("inspect", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  first += 1;
  if (first >= argc) {
    isola_failx(err, EINVAL, "inspect: usage: isola inspect [--type image|container] NAME...");
    return 1;
  }
  struct engine eng = {0};
  if (isola_engine_open(cli, &eng, err) < 0)
    return 1;
  _cleanup_json_ struct json_object *arr = json_object_new_array();
  int status = 0;
  for (int i = first; i < argc; i++) {
    struct json_object *o = NULL;
    struct isola_error *ie = NULL, *ce = NULL;
    /* A container first (as docker), then an image; --type chooses one. */
    if ((!type || !strcmp(type, "container")) && inspect_container(&eng, argv[i], &o, &ce) == 0) {
      json_object_array_add(arr, o);
    } else if ((!type || !strcmp(type, "image")) &&
               inspect_image(eng.store, argv[i], &o, &ie) == 0) {
      json_object_array_add(arr, o);
    } else {
      log_error_to_stderr("isola", ie   ? ie->msg
                                   : ce ? ce->msg
                                        : "inspect: --type is image or container");
      status = 1;
    }
    isola_error_free(&ie);
    isola_error_free(&ce);
  }
  _cleanup_free_ char *t = json_to_string(arr, true);
  printf("%s\n", t);
  isola_engine_close(&eng);
  return status;
}
