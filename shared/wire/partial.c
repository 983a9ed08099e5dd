/*
 * partial.c - a relay's partial sum encoded and checked (partial.h). The
 * body is fixed-layout binary, not JSON or safetensors: 16 bytes a weight
 * of exact integers, with a trailing SHA-256 so that a body cut or mangled
 * on the way is refused before it reaches the accumulator.
 */
#include "wire/partial.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "wire/le.h"

int fedc_partial_is(const uint8_t *body, size_t len) {
  return len >= 8 && memcmp(body, FEDC_PARTIAL_MAGIC, 8) == 0;
}

int fedc_partial_encode(const fedc_partial *p, const __int128 *acc, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (p->n > (SIZE_MAX - FEDC_PARTIAL_HEAD - 32) / 16)
    return fedc_error_set(FEDC_ERANGE, "partial: %llu weights", (unsigned long long)p->n);
  size_t n = FEDC_PARTIAL_HEAD + 16 * (size_t)p->n + 32;
  uint8_t *b = fedc_malloc(n);
  if (b == NULL) return fedc_error_set(FEDC_ENOMEM, "partial: out of memory");
  memcpy(b, FEDC_PARTIAL_MAGIC, 8);
  fedc_le_put64(b + 8, (uint32_t)p->round | (uint64_t)(uint32_t)p->updates << 32);
  fedc_le_put64(b + 16, p->total);
  uint64_t bits;
  memcpy(&bits, &p->train_loss, 8);
  fedc_le_put64(b + 24, bits);
  fedc_le_put64(b + 32, p->n);
  for (uint64_t i = 0; i < p->n; i++) {
    unsigned __int128 v = (unsigned __int128)acc[i];
    fedc_le_put64(b + FEDC_PARTIAL_HEAD + 16 * i, (uint64_t)v);
    fedc_le_put64(b + FEDC_PARTIAL_HEAD + 16 * i + 8, (uint64_t)(v >> 64));
  }
  unsigned char sha[32];
  fedc__sha256(b, n - 32, sha);
  memcpy(b + n - 32, sha, 32);
  *out = b;
  *len = n;
  return 0;
}

int fedc_partial_decode(const uint8_t *body, size_t len, fedc_partial *out) {
  memset(out, 0, sizeof *out);
  if (len < FEDC_PARTIAL_HEAD + 32 || !fedc_partial_is(body, len))
    return fedc_error_set(FEDC_EFORMAT, "partial: %zu bytes, not a partial sum", len);
  uint64_t n = fedc_le_get64(body + 32);
  if (n > (len - FEDC_PARTIAL_HEAD - 32) / 16 || FEDC_PARTIAL_HEAD + 16 * n + 32 != len)
    return fedc_error_set(FEDC_EFORMAT, "partial: %llu weights in %zu bytes", (unsigned long long)n,
                          len);
  unsigned char sha[32];
  fedc__sha256(body, len - 32, sha);
  if (memcmp(sha, body + len - 32, 32) != 0)
    return fedc_error_set(FEDC_ECHECKSUM, "partial: SHA-256 does not match the body");
  uint64_t ru = fedc_le_get64(body + 8);
  out->round = (int32_t)(uint32_t)ru;
  out->updates = (int32_t)(uint32_t)(ru >> 32);
  out->total = fedc_le_get64(body + 16);
  uint64_t bits = fedc_le_get64(body + 24);
  memcpy(&out->train_loss, &bits, 8);
  out->n = n;
  out->sums = body + FEDC_PARTIAL_HEAD;
  if (out->round < 1 || out->updates < 1 || out->total < 1)
    return fedc_error_set(FEDC_EFORMAT, "partial: round %d, %d updates, %llu samples",
                          (int)out->round, (int)out->updates, (unsigned long long)out->total);
  return 0;
}

__int128 fedc_partial_sum(const fedc_partial *p, uint64_t i) {
  const uint8_t *s = p->sums + 16 * i;
  unsigned __int128 v = ((unsigned __int128)fedc_le_get64(s + 8) << 64) | fedc_le_get64(s);
  return (__int128)v;
}
