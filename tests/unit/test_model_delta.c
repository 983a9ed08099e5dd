/*
 * test_model_delta.c - the lossless model delta (wire/model_delta.h):
 * round trips on random bit patterns and on adversarial ones (+0 and -0,
 * denormals, sign changes, the largest floats, infinities, words that wrap
 * around 2^32), with headers of different lengths and data sections that
 * end in a partial word; a small move compresses; and the decoder refuses
 * a wrong base, a flipped or truncated delta and a too large model, never
 * yielding another model.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/error.h"
#include "wire/model_delta.h"

/* A container-shaped body: 8-byte length, a JSON header of hlen bytes,
 * then data bytes (copied from d). */
static uint8_t *body(size_t hlen, const uint8_t *d, size_t data, size_t *len) {
  *len = 8 + hlen + data;
  uint8_t *b = fedc_malloc(*len);
  assert_non_null(b);
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
  for (size_t i = 0; i < hlen; i++)
    b[8 + i] = (uint8_t)(i == 0 ? '{' : i == hlen - 1 ? '}' : ' ');
  memcpy(b + 8 + hlen, d, data);
  return b;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

/* Encode next against base, decode it, and check the bytes are next's. */
static size_t round_trip(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  uint8_t *d = NULL, *out = NULL;
  size_t dlen = 0, olen = 0;
  assert_int_equal(fedc_model_delta_encode(a, alen, 4, NULL, b, blen, 5, NULL, &d, &dlen), 0);
  int32_t br, r;
  assert_int_equal(fedc_model_delta_rounds(d, dlen, &br, &r), 0);
  assert_int_equal(br, 4);
  assert_int_equal(r, 5);
  assert_int_equal(fedc_model_delta_decode(d, dlen, a, alen, NULL, blen, &out, &olen), 0);
  assert_int_equal(olen, blen);
  assert_memory_equal(out, b, blen);
  fedc_free(out);
  fedc_free(d);
  return dlen;
}

static void test_random(void **state) {
  (void)state;
  for (int t = 0; t < 40; t++) {
    size_t data = (size_t)(rnd() % 1000) + (size_t)t % 4; /* partial last words too */
    uint8_t *x = fedc_malloc(data + 1), *y = fedc_malloc(data + 1);
    for (size_t i = 0; i < data; i++) {
      x[i] = (uint8_t)rnd();
      y[i] = t % 3 == 0 ? x[i] : (uint8_t)rnd(); /* some unchanged bytes */
    }
    size_t alen, blen;
    uint8_t *a = body(16 + (size_t)(rnd() % 40), x, data, &alen);
    uint8_t *b = body(16 + (size_t)(rnd() % 40), y, data, &blen);
    round_trip(a, alen, b, blen);
    fedc_free(a);
    fedc_free(b);
    fedc_free(x);
    fedc_free(y);
  }
  /* an empty data section */
  size_t alen, blen;
  uint8_t *a = body(8, NULL, 0, &alen), *b = body(24, NULL, 0, &blen);
  round_trip(a, alen, b, blen);
  fedc_free(a);
  fedc_free(b);
}

static void test_adversarial(void **state) {
  (void)state;
  const float vals[] = {0.0f, -0.0f, FLT_MIN, -FLT_MIN, 1e-45f, -1e-45f, 1e-40f, -1e-40f,
                        FLT_MAX, -FLT_MAX, INFINITY, -INFINITY, 1.0f, -1.0f, 3.5f, -3.5f};
  const size_t nv = sizeof vals / sizeof vals[0];
  float x[300], y[300];
  /* every pair of special values, both ways round */
  for (size_t i = 0; i < 300; i++) {
    x[i] = vals[i % nv];
    y[i] = vals[(i / nv + i) % nv];
  }
  size_t alen, blen;
  uint8_t *a = body(32, (const uint8_t *)x, sizeof x, &alen);
  uint8_t *b = body(40, (const uint8_t *)y, sizeof y, &blen);
  round_trip(a, alen, b, blen);
  round_trip(b, blen, a, alen);
  fedc_free(b);
  /* the words furthest apart: 0x00000000 <-> 0x80000000 <-> 0xffffffff */
  uint32_t u[64], v[64];
  for (int i = 0; i < 64; i++) {
    const uint32_t w[] = {0u, 0x80000000u, 0xffffffffu, 0x7fffffffu};
    u[i] = w[i % 4];
    v[i] = w[(i / 4) % 4];
  }
  uint8_t *c = body(8, (const uint8_t *)u, sizeof u, &alen);
  uint8_t *d = body(8, (const uint8_t *)v, sizeof v, &blen);
  round_trip(c, alen, d, blen);
  round_trip(d, blen, c, alen);
  /* no change at all: small */
  size_t same = round_trip(c, alen, c, alen);
  assert_true(same < FEDC_MODEL_DELTA_HEAD + 16 + sizeof u / 4);
  fedc_free(a);
  fedc_free(c);
  fedc_free(d);
}

/* Weights that move by a few hundred ULPs compress below the model. */
static void test_small_move_compresses(void **state) {
  (void)state;
  enum { N = 4096 };
  float *x = fedc_malloc(N * sizeof(float)), *y = fedc_malloc(N * sizeof(float));
  for (int i = 0; i < N; i++) {
    x[i] = sinf((float)i) * 0.1f;
    y[i] = x[i] * (1.0f + 1e-5f * cosf((float)i));
  }
  size_t alen, blen;
  uint8_t *a = body(64, (const uint8_t *)x, N * sizeof(float), &alen);
  uint8_t *b = body(64, (const uint8_t *)y, N * sizeof(float), &blen);
  size_t dlen = round_trip(a, alen, b, blen);
  assert_true(dlen < blen * 3 / 4);
  fedc_free(a);
  fedc_free(b);
  fedc_free(x);
  fedc_free(y);
}

static void test_refusals(void **state) {
  (void)state;
  uint8_t x[203], y[203];
  for (size_t i = 0; i < sizeof x; i++) {
    x[i] = (uint8_t)rnd();
    y[i] = (uint8_t)(x[i] + (i % 7 == 0));
  }
  size_t alen, blen, clen;
  uint8_t *a = body(16, x, sizeof x, &alen), *b = body(24, y, sizeof y, &blen);
  uint8_t *c = body(16, x, sizeof x - 1, &clen);
  uint8_t *d, *out;
  size_t dlen, olen;
  /* data sections of different lengths: no delta */
  assert_int_equal(fedc_model_delta_encode(c, clen, 1, NULL, b, blen, 2, NULL, &d, &dlen),
                   FEDC_EINVAL);
  assert_null(d);
  /* not a container */
  assert_int_equal(fedc_model_delta_encode(x, 4, 1, NULL, b, blen, 2, NULL, &d, &dlen),
                   FEDC_EINVAL);
  assert_int_equal(fedc_model_delta_encode(a, alen, 1, NULL, b, blen, 2, NULL, &d, &dlen), 0);
  /* another base */
  a[alen - 1] ^= 1;
  assert_int_equal(fedc_model_delta_decode(d, dlen, a, alen, NULL, blen, &out, &olen),
                   FEDC_ECHECKSUM);
  a[alen - 1] ^= 1;
  /* a base hash given by the caller that is not the delta's */
  assert_int_equal(fedc_model_delta_decode(d, dlen, a, alen,
                                           "0000000000000000000000000000000000000000000000000000000000000000",
                                           blen, &out, &olen),
                   FEDC_ECHECKSUM);
  assert_int_equal(fedc_model_delta_decode(d, dlen, c, clen, NULL, blen, &out, &olen),
                   FEDC_ECHECKSUM);
  /* too large for the caller */
  assert_int_equal(fedc_model_delta_decode(d, dlen, a, alen, NULL, blen - 1, &out, &olen),
                   FEDC_ETOOBIG);
  /* every truncation, and every single flipped byte past the magic and
   * the rounds (which the caller checks against what it asked): an error,
   * never a model */
  for (size_t n = 0; n < dlen; n++) {
    int rc = fedc_model_delta_decode(d, n, a, alen, NULL, blen, &out, &olen);
    assert_true(rc == FEDC_EFORMAT || rc == FEDC_ECHECKSUM);
    assert_null(out);
  }
  for (size_t i = 16; i < dlen; i++) {
    d[i] ^= 0x10;
    int rc = fedc_model_delta_decode(d, dlen, a, alen, NULL, 1u << 20, &out, &olen);
    assert_true(rc == FEDC_EFORMAT || rc == FEDC_ECHECKSUM || rc == FEDC_ETOOBIG);
    assert_null(out);
    d[i] ^= 0x10;
  }
  assert_int_equal(fedc_model_delta_decode(d, dlen, a, alen, NULL, blen, &out, &olen), 0);
  assert_memory_equal(out, b, blen);
  fedc_free(out);
  assert_false(fedc_model_delta_is(b, blen));
  assert_true(fedc_model_delta_is(d, dlen));
  fedc_free(d);
  fedc_free(a);
  fedc_free(b);
  fedc_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random),
      cmocka_unit_test(test_adversarial),
      cmocka_unit_test(test_small_move_compresses),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
