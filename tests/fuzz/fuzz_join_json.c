/*
 * fuzz_join_json.c - fuzz target for the body of POST /v1/join
 * (fedc_join_body_parse, the rules the coordinator applies before a name
 * from an unknown peer reaches its store, its logs and its dashboard).
 *
 * The input is the body. It is parsed twice, with the coordinator's
 * 128-byte name buffer and with a 4-byte one. Checked: only the documented
 * error codes; a refused body leaves the name empty; an accepted name is
 * NUL-terminated, fits, is valid UTF-8 and holds no control character; a
 * name that fits the small buffer is accepted by the large one, the same;
 * and {"name": <the name>} written by cJSON parses back to the same name.
 * Every fedc block allocated is freed before the input is done.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "fuzz_util.h"
#include "wire/join_body.h"

/* Strict UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), written here again so as not to trust the code under test. */
static int utf8_ok(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t k;
    unsigned cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      k = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      k = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      k = 4;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + k > n) return 0;
    for (size_t j = 1; j < k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k;
  }
  return 1;
}

static void check_name(const char *name, size_t cap) {
  size_t n = strnlen(name, cap);
  FUZZ_CHECK(n < cap);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    FUZZ_CHECK(c >= 0x20 && c != 0x7f);
  }
  FUZZ_CHECK(utf8_ok((const unsigned char *)name, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int64_t live = fedc_alloc_live();
  char name[128], small[4];
  memset(name, 'x', sizeof name);
  memset(small, 'x', sizeof small);
  int rc = fedc_join_body_parse(size ? data : NULL, size, name, sizeof name);
  int rc_small = fedc_join_body_parse(size ? data : NULL, size, small, sizeof small);
  FUZZ_CHECK(rc == 0 || rc == FEDC_EFORMAT || rc == FEDC_ENOMEM);
  FUZZ_CHECK(rc_small == 0 || rc_small == FEDC_EFORMAT || rc_small == FEDC_ENOMEM);
  FUZZ_CHECK(name[0] == '\0' || rc == 0);
  FUZZ_CHECK(small[0] == '\0' || rc_small == 0);
  if (size == 0) FUZZ_CHECK(rc == 0 && name[0] == '\0');
  if (rc_small == 0) {
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(strcmp(name, small) == 0);
  }
  if (rc == 0) {
    check_name(name, sizeof name);
    cJSON *o = cJSON_CreateObject();
    FUZZ_CHECK(o != NULL && cJSON_AddStringToObject(o, "name", name) != NULL);
    char *text = cJSON_PrintUnformatted(o);
    FUZZ_CHECK(text != NULL);
    char again[128];
    FUZZ_CHECK(fedc_join_body_parse((const uint8_t *)text, strlen(text), again, sizeof again) == 0);
    FUZZ_CHECK(strcmp(again, name) == 0);
    cJSON_free(text);
    cJSON_Delete(o);
  }
  FUZZ_CHECK(fedc_alloc_live() == live);
  return 0;
}
