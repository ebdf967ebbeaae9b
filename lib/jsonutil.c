/* json-c helpers with error messages that name the document and the position. */
#include "util.h"

#include <string.h>

int json_parse_doc(const char *text, size_t len, const char *what, struct json_object **out,
                   struct isola_error **err)
{
  struct json_tokener *tok = json_tokener_new_ex(64);
  if (!tok)
    abort();
  json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
  struct json_object *o = json_tokener_parse_ex(tok, text, (int) len);
  enum json_tokener_error jerr = json_tokener_get_error(tok);
  size_t off = json_tokener_get_parse_end(tok);
  json_tokener_free(tok);
  if (jerr != json_tokener_success || !o) {
    if (o)
      json_object_put(o);
    if (jerr == json_tokener_success || jerr == json_tokener_continue)
      return isola_failx(err, EINVAL, "%s: invalid JSON: unexpected end of document", what);
    return isola_failx(err, EINVAL, "%s: invalid JSON at byte %zu: %s", what, off,
                       json_tokener_error_desc(jerr));
  }
  /* Trailing garbage after the document is an error too, NUL bytes included (strchr() would
   * find a NUL in the whitespace set). */
  while (off < len && text[off] && strchr(" \t\r\n", text[off]))
    off++;
  if (off < len) {
    json_object_put(o);
    return isola_failx(err, EINVAL, "%s: invalid JSON: trailing data at byte %zu", what, off);
  }
  *out = o;
  return 0;
}

char *json_to_string(struct json_object *o, bool pretty)
{
  int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
              (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN);
  return xstrdup(json_object_to_json_string_ext(o, flags));
}
