/*
 * join_body.c - reads the optional body of POST /v1/join (see join_body.h).
 *
 * cJSON is lenient where a body from an unknown peer must not be: it
 * decodes "\u0000" into a NUL that silently cuts a key or value short (so
 * {"name\u0000x": ...} would read as "name"), keeps raw control bytes and
 * invalid UTF-8 in strings, and takes any bytes up to 0x20 for white space.
 * So the raw bytes are checked first (strict UTF-8, no control bytes but
 * tab, CR and LF, no "\u0000"), then a NUL-terminated copy is parsed (cJSON
 * then cannot read past the body whatever its length checks do), then the
 * shape: one object, nothing after it but white space, at most one "name",
 * a string that fits and holds no control character.
 */
#include "wire/join_body.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/utf8.h"

/* A join body says little; anything larger is not one. */
#define JOIN_BODY_MAX ((size_t)64 << 10)


/* The raw bytes: valid UTF-8, no control byte but tab, CR and LF, and no
 * "\u0000" escape inside a string. FEDC_EFORMAT naming the offset. */
static int prescan(const uint8_t *p, size_t n) {
  int in_string = 0;
  for (size_t i = 0; i < n;) {
    uint8_t c = p[i];
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
      return fedc_error_set(FEDC_EFORMAT, "join: body has control byte 0x%02x at offset %zu", c, i);
    if (c == '"') {
      in_string = !in_string;
    } else if (c == '\\' && in_string) {
      if (i + 5 < n && memcmp(p + i + 1, "u0000", 5) == 0)
        return fedc_error_set(FEDC_EFORMAT, "join: body has \\u0000 at offset %zu", i);
      i += (i + 1 < n && p[i + 1] < 0x80) ? 2 : 1;
      continue;
    }
    size_t k = fedc_utf8_seq(p + i, n - i);
    if (k == 0)
      return fedc_error_set(FEDC_EFORMAT, "join: body is not valid UTF-8 at offset %zu", i);
    i += k;
  }
  return 0;
}

static int is_json_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * A client's name, from a join body or a certificate's common name: valid
 * UTF-8, no control character (C0, DEL, C1) and no character that
 * reorders or hides text around it (bidi embeddings, overrides, isolates,
 * marks): what the store, the logs and the dashboard show is what the
 * name is.
 */
int fedc_join_name_check(const char *s, size_t len) {
  for (size_t i = 0; i < len;) {
    size_t k = fedc_utf8_seq((const uint8_t *)s + i, len - i);
    if (k == 0) return fedc_error_set(FEDC_EFORMAT, "join: \"name\" is not valid UTF-8");
    uint32_t cp = fedc_utf8_decode((const uint8_t *)s + i, k);
    if (fedc_utf8_is_display_control(cp))
      return fedc_error_set(FEDC_EFORMAT, "join: \"name\" holds control character U+%04X",
                            (unsigned)cp);
    i += k;
  }
  return 0;
}

/* The name member of a parsed object: NULL when absent. FEDC_EFORMAT when
 * it is given twice, is not a string, is too long or holds a control
 * character. */
static int find_name(const cJSON *o, size_t name_size, const char **out) {
  const cJSON *found = NULL;
  *out = NULL;
  for (const cJSON *m = o->child; m != NULL; m = m->next) {
    if (m->string == NULL || strcmp(m->string, "name") != 0) continue;
    if (found != NULL) return fedc_error_set(FEDC_EFORMAT, "join: \"name\" is given twice");
    found = m;
  }
  if (found == NULL) return 0;
  if (!cJSON_IsString(found) || found->valuestring == NULL)
    return fedc_error_set(FEDC_EFORMAT, "join: \"name\" is not a string");
  const char *s = found->valuestring;
  size_t len = strlen(s);
  if (len >= name_size)
    return fedc_error_set(FEDC_EFORMAT, "join: \"name\" is longer than %zu bytes", name_size - 1);
  int rc = fedc_join_name_check(s, len);
  if (rc != 0) return rc;
  *out = s;
  return 0;
}

int fedc_join_body_parse(const uint8_t *body, size_t len, char *name, size_t name_size) {
  if (name == NULL || name_size == 0)
    return fedc_error_set(FEDC_EINVAL, "join: no room for the name");
  name[0] = '\0';
  if (len == 0) return 0;
  if (body == NULL) return fedc_error_set(FEDC_EINVAL, "join: NULL body of %zu bytes", len);
  if (len > JOIN_BODY_MAX)
    return fedc_error_set(FEDC_EFORMAT, "join: body of %zu bytes; at most %zu", len, JOIN_BODY_MAX);
  int rc = prescan(body, len);
  if (rc != 0) return rc;
  char *text = fedc_malloc(len + 1);
  if (text == NULL) return fedc_error_set(FEDC_ENOMEM, "join: out of memory");
  memcpy(text, body, len);
  text[len] = '\0';
  const char *end = NULL;
  cJSON *o = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (o == NULL) {
    /* cJSON says NULL for malformed text and for want of memory alike:
     * malformed text fails again, a passing allocation failure does not;
     * one that lasts shows in an allocation of our own */
    o = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (o == NULL) {
      void *probe = fedc_malloc(64);
      rc = probe == NULL ? fedc_error_set(FEDC_ENOMEM, "join: out of memory")
                         : fedc_error_set(FEDC_EFORMAT, "join: body is not JSON");
      fedc_free(probe);
      goto done;
    }
  }
  if (!cJSON_IsObject(o)) {
    rc = fedc_error_set(FEDC_EFORMAT, "join: body is not a JSON object");
    goto done;
  }
  for (const char *p = end; p < text + len; p++) {
    if (!is_json_space(*p)) {
      rc = fedc_error_set(FEDC_EFORMAT,
                          "join: body has bytes after the JSON object at "
                          "offset %zu",
                          (size_t)(p - text));
      goto done;
    }
  }
  const char *s = NULL;
  rc = find_name(o, name_size, &s);
  if (rc == 0 && s != NULL) memcpy(name, s, strlen(s) + 1);
done:
  cJSON_Delete(o);
  fedc_free(text);
  return rc;
}
