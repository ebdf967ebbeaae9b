/* rmi: remove image names; the data goes once nothing references it (also: system prune). */
#include "isola.h"

#include <string.h>

int isola_verb_rmi(struct isola_cli *cli, int argc, char **argv, struct isola_error **err)
{
  bool force = false;
  const struct opt opts[] = {{"force", 'f', OPT_BOOL, &force}, {NULL, 0, 0, NULL}};
  int first = opts_parse("rmi", opts, argc - 1, argv + 1, err);
  if (first < 0)
    return 1;
  first += 1;
  if (first >= argc) {
    isola_failx(err, EINVAL, "rmi: usage: isola rmi [-f] IMAGE...");
    return 1;
  }
  struct engine eng = {0};
  if (isola_engine_open(cli, &eng, err) < 0)
    return 1;
  int status = 0;
  struct ctr_record **v = NULL;
  size_t n = 0;
  if (ctr_list(&eng, &v, &n, err) < 0) {
    isola_engine_close(&eng);
    return 1;
  }
  for (int i = first; i < argc; i++) {
    struct isola_error *e1 = NULL;
    struct image_entry img = {0};
    _cleanup_strv_ char **gone = NULL;
    if (store_resolve(eng.store, argv[i], &img, &e1) == 0) {
      /* As docker: an image a container uses stays unless forced (its data stays either way
       * while the container exists). */
      const char *user = NULL;
      for (size_t k = 0; k < n && !force && !user; k++)
        if (v[k]->image_id && !strcmp(v[k]->image_id, img.config))
          user = v[k]->name;
      if (user)
        isola_failx(&e1, EBUSY, "image \"%s\" is used by container %s (remove it first, or use -f)",
                    argv[i], user);
      else
        store_untag(eng.store, argv[i], force, &gone, &e1);
      free(img.name);
      free(img.created);
    } else if (e1->code == ENOENT) {
      /* Not listed: a damaged image's name can still be removed. */
      isola_error_free(&e1);
      store_untag(eng.store, argv[i], force, &gone, &e1);
    }
    if (e1) {
      log_error_to_stderr("isola", e1->msg);
      isola_error_free(&e1);
      status = 1;
      continue;
    }
    for (char **g = gone; g && *g; g++)
      printf("Untagged: %s\n", *g);
  }
  ctr_list_free(v, n);
  isola_engine_close(&eng);
  return status;
}
