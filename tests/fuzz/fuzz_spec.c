/* Fuzz the config.json parser and the two parsers that also take outside JSON on their own:
 * spec_parse_process() (exec --process FILE) and spec_parse_resources() (update -r FILE). */
#include "fuzz.h"
#include "spec.h"

#include <string.h>

static void parse_process(struct json_object *o)
{
  struct isola_error *err = NULL;
  struct oci_process p;
  spec_parse_process(o, "process.json", &p, &err);
  spec_process_clear(&p);
  isola_error_free(&err);
}

static void parse_resources(struct json_object *o)
{
  struct isola_error *err = NULL;
  struct oci_resources r = {0};
  spec_parse_resources(o, "update", &r, &err);
  spec_resources_clear(&r);
  isola_error_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* Files reach the parser NUL-terminated (read_file_at), but the length is what counts. */
  _cleanup_free_ char *text = xmalloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';

  struct isola_error *err = NULL;
  struct oci_spec *spec = NULL;
  if (spec_parse(text, size, "config.json", &spec, &err) == 0)
    spec_free(spec);
  isola_error_free(&err);

  _cleanup_json_ struct json_object *root = NULL;
  if (json_parse_doc(text, size, "fuzz", &root, &err) < 0) {
    isola_error_free(&err);
    return 0;
  }
  /* The document itself as an exec --process file and as an update --resources file (both take
   * any JSON value), then the members config.json has at those places. */
  parse_process(root);
  parse_resources(root);
  struct json_object *process, *linux_obj, *resources;
  if (json_object_is_type(root, json_type_object)) {
    if (json_object_object_get_ex(root, "process", &process) && process)
      parse_process(process);
    if (json_object_object_get_ex(root, "linux", &linux_obj) && linux_obj &&
        json_object_is_type(linux_obj, json_type_object) &&
        json_object_object_get_ex(linux_obj, "resources", &resources) && resources)
      parse_resources(resources);
  }
  return 0;
}
