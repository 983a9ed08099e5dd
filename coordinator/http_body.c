/*
 * http_body.c - reference-counted, read-only response bodies (see
 * http_body.h). The count is atomic so that a body made on a worker thread
 * (the commit) and sent on the loop thread needs no lock; the bytes are
 * immutable once wrapped, so readers need none either.
 */
#include "http_body.h"

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"

struct fedc_http_body {
  int32_t refs;
  uint8_t *bytes;
  size_t len;
  char sha256[FEDC__SHA256_HEX_LEN + 1];
};

static int64_t live_bodies;

int fedc_http_body_new(uint8_t *bytes, size_t len, fedc_http_body **out) {
  *out = NULL;
  fedc_http_body *b = fedc_calloc(1, sizeof *b);
  if (b == NULL) {
    fedc_free(bytes);
    return fedc_error_set(FEDC_ENOMEM, "out of memory");
  }
  int rc = fedc__sha256_hex(bytes ? (const void *)bytes : (const void *)"", len, b->sha256);
  if (rc != 0) {
    fedc_free(bytes);
    fedc_free(b);
    return rc;
  }
  b->refs = 1;
  b->bytes = bytes;
  b->len = len;
  __atomic_add_fetch(&live_bodies, 1, __ATOMIC_RELAXED);
  *out = b;
  return 0;
}

fedc_http_body *fedc_http_body_ref(fedc_http_body *b) {
  if (b) __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
  return b;
}

/* The last reference frees: acquire-release, so that whatever a thread did
 * with the body before dropping its reference happens before the free. */
void fedc_http_body_unref(fedc_http_body *b) {
  if (b == NULL || __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  fedc_free(b->bytes);
  fedc_free(b);
  __atomic_sub_fetch(&live_bodies, 1, __ATOMIC_RELAXED);
}

const uint8_t *fedc_http_body_data(const fedc_http_body *b) {
  return b->bytes ? b->bytes : (const uint8_t *)"";
}

size_t fedc_http_body_len(const fedc_http_body *b) { return b->len; }

const char *fedc_http_body_sha256(const fedc_http_body *b) { return b->sha256; }

int32_t fedc_http_body_refs(const fedc_http_body *b) {
  return __atomic_load_n(&b->refs, __ATOMIC_RELAXED);
}

int64_t fedc_http_body_live(void) { return __atomic_load_n(&live_bodies, __ATOMIC_RELAXED); }
