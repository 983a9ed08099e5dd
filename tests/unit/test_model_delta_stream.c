/*
 * test_model_delta_stream.c - the model delta in slices
 * (wire/model_delta_stream.h): the streaming encoder writes exactly the
 * bytes of fedc_model_delta_encode and the streaming decoder rebuilds
 * exactly the new body, for slices of 64 bytes to 1 MiB, random and
 * adversarial words, headers of several lengths, partial last words and
 * SHA-256 given or computed; and the decoder refuses what the in-memory
 * one refuses (a wrong base, every truncation, every flipped byte, a too
 * large model) with an error, never a success.
 */
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
#include "base/mbedtls_compat.h"
#include "wire/model_delta.h"
#include "wire/model_delta_stream.h"

/* Inputs and output in memory, every access checked against its bounds. */
typedef struct mem_io {
  const uint8_t *base, *other;
  size_t base_len, other_len;
  uint8_t *out;
  size_t out_cap, out_hi;
  int fail_write_at; /* fail the n-th write (from 1), 0: never */
  int writes;
} mem_io;

static int rd_base(void *ud, uint64_t off, uint8_t *buf, size_t n) {
  mem_io *m = ud;
  assert_true(off + n <= m->base_len);
  memcpy(buf, m->base + off, n);
  return 0;
}

static int rd_other(void *ud, uint64_t off, uint8_t *buf, size_t n) {
  mem_io *m = ud;
  assert_true(off + n <= m->other_len);
  memcpy(buf, m->other + off, n);
  return 0;
}

static int wr(void *ud, uint64_t off, const uint8_t *buf, size_t n) {
  mem_io *m = ud;
  if (m->fail_write_at && ++m->writes == m->fail_write_at)
    return fedc_error_set(FEDC_EIO, "write refused by the test");
  assert_true(off + n <= m->out_cap);
  memcpy(m->out + off, buf, n);
  if (off + n > m->out_hi) m->out_hi = (size_t)(off + n);
  return 0;
}

static uint8_t *body(size_t hlen, const uint8_t *d, size_t data, size_t *len) {
  *len = 8 + hlen + data;
  uint8_t *b = fedc_malloc(*len);
  assert_non_null(b);
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
  for (size_t i = 0; i < hlen; i++)
    b[8 + i] = (uint8_t)(i == 0 ? '{' : i == hlen - 1 ? '}' : ' ');
  if (data) memcpy(b + 8 + hlen, d, data);
  return b;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

/* Encode b against a in slices of `slice` bytes, compare with the in-memory
 * delta, decode it in slices back into b; the delta's length. */
static size_t both_ways(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, size_t slice,
                        int give_sha) {
  uint8_t *d = NULL;
  size_t dlen = 0;
  assert_int_equal(fedc_model_delta_encode(a, alen, 6, NULL, b, blen, 7, NULL, &d, &dlen), 0);
  char sa[65], sb[65];
  assert_int_equal(fedc__sha256_hex(a, alen, sa), 0);
  assert_int_equal(fedc__sha256_hex(b, blen, sb), 0);
  mem_io m = {.base = a,
              .base_len = alen,
              .other = b,
              .other_len = blen,
              .out = fedc_malloc(dlen + 64),
              .out_cap = dlen + 64};
  fedc_model_delta_io io = {
      .read_base = rd_base, .read_other = rd_other, .write = wr, .ud = &m, .slice = slice};
  uint64_t slen = 0;
  assert_int_equal(fedc_model_delta_encode_stream(&io, alen, 6, give_sha ? sa : NULL, blen, 7,
                                                  give_sha ? sb : NULL, &slen),
                   0);
  assert_int_equal(slen, dlen);
  assert_int_equal(m.out_hi, dlen);
  assert_memory_equal(m.out, d, dlen);
  fedc_free(m.out);
  mem_io n = {.base = a,
              .base_len = alen,
              .other = d,
              .other_len = dlen,
              .out = fedc_malloc(blen + 1),
              .out_cap = blen};
  io.ud = &n;
  uint64_t olen = 0;
  assert_int_equal(fedc_model_delta_decode_stream(&io, dlen, alen, blen, &olen), 0);
  assert_int_equal(olen, blen);
  assert_int_equal(n.out_hi, blen);
  assert_memory_equal(n.out, b, blen);
  fedc_free(n.out);
  fedc_free(d);
  return dlen;
}

static void test_same_bytes_as_in_memory(void **state) {
  (void)state;
  const size_t slices[] = {64, 96, 160, 4096, 0};
  for (int t = 0; t < 30; t++) {
    size_t data = (size_t)(rnd() % 3000) + (size_t)t % 4;
    uint8_t *x = fedc_malloc(data + 1), *y = fedc_malloc(data + 1);
    for (size_t i = 0; i < data; i++) {
      x[i] = (uint8_t)rnd();
      /* unchanged, a few ULPs, or random words */
      y[i] = t % 3 == 0   ? x[i]
             : t % 3 == 1 ? (uint8_t)(x[i] + (i % 4 == 0 ? rnd() % 5 : 0))
                          : (uint8_t)rnd();
    }
    size_t alen, blen;
    uint8_t *a = body(16 + (size_t)(rnd() % 200), x, data, &alen);
    uint8_t *b = body(16 + (size_t)(rnd() % 200), y, data, &blen);
    both_ways(a, alen, b, blen, slices[t % 5], t % 2);
    fedc_free(a);
    fedc_free(b);
    fedc_free(x);
    fedc_free(y);
  }
  /* an empty data section; words far apart (escapes) */
  size_t alen, blen;
  uint8_t *a = body(8, NULL, 0, &alen), *b = body(24, NULL, 0, &blen);
  both_ways(a, alen, b, blen, 64, 0);
  fedc_free(a);
  fedc_free(b);
  uint32_t u[200], v[200];
  for (int i = 0; i < 200; i++) {
    const uint32_t w[] = {0u, 0x80000000u, 0xffffffffu, 0x7fffffffu, 1u};
    u[i] = w[i % 5];
    v[i] = w[(i / 5) % 5];
  }
  a = body(8, (const uint8_t *)u, sizeof u, &alen);
  b = body(8, (const uint8_t *)v, sizeof v, &blen);
  both_ways(a, alen, b, blen, 64, 0);
  both_ways(b, blen, a, alen, 96, 1);
  fedc_free(a);
  fedc_free(b);
}

static void test_refusals(void **state) {
  (void)state;
  uint8_t x[603], y[603];
  for (size_t i = 0; i < sizeof x; i++) {
    x[i] = (uint8_t)rnd();
    y[i] = (uint8_t)(x[i] + (i % 7 == 0));
  }
  size_t alen, blen, clen;
  uint8_t *a = body(16, x, sizeof x, &alen), *b = body(24, y, sizeof y, &blen);
  uint8_t *c = body(16, x, sizeof x - 1, &clen);
  uint8_t *d;
  size_t dlen;
  assert_int_equal(fedc_model_delta_encode(a, alen, 1, NULL, b, blen, 2, NULL, &d, &dlen), 0);
  mem_io m = {.base = a,
              .base_len = alen,
              .other = d,
              .other_len = dlen,
              .out = fedc_malloc(1 << 16),
              .out_cap = 1 << 16};
  fedc_model_delta_io io = {
      .read_base = rd_base, .read_other = rd_other, .write = wr, .ud = &m, .slice = 64};
  uint64_t olen = 0;
  /* another base: its last byte, or one of another length */
  a[alen - 1] ^= 1;
  assert_int_equal(fedc_model_delta_decode_stream(&io, dlen, alen, blen, &olen), FEDC_ECHECKSUM);
  a[alen - 1] ^= 1;
  m.base = c;
  m.base_len = clen;
  assert_int_equal(fedc_model_delta_decode_stream(&io, dlen, clen, blen, &olen), FEDC_ECHECKSUM);
  m.base = a;
  m.base_len = alen;
  assert_int_equal(fedc_model_delta_decode_stream(&io, dlen, alen, blen - 1, &olen), FEDC_ETOOBIG);
  /* every truncation and every flipped byte past the rounds: an error */
  for (size_t n = 0; n < dlen; n++) {
    m.other_len = n;
    int rc = fedc_model_delta_decode_stream(&io, n, alen, blen, &olen);
    assert_true(rc == FEDC_EFORMAT || rc == FEDC_ECHECKSUM);
    assert_int_equal(olen, 0);
  }
  m.other_len = dlen;
  for (size_t i = 16; i < dlen; i++) {
    d[i] ^= 0x10;
    int rc = fedc_model_delta_decode_stream(&io, dlen, alen, 1u << 20, &olen);
    assert_true(rc == FEDC_EFORMAT || rc == FEDC_ECHECKSUM || rc == FEDC_ETOOBIG);
    assert_int_equal(olen, 0);
    d[i] ^= 0x10;
  }
  /* a write that fails is the decode's error */
  m.fail_write_at = 2;
  assert_int_equal(fedc_model_delta_decode_stream(&io, dlen, alen, blen, &olen), FEDC_EIO);
  m.fail_write_at = 0;
  assert_int_equal(fedc_model_delta_decode_stream(&io, dlen, alen, blen, &olen), 0);
  assert_int_equal(olen, blen);
  assert_memory_equal(m.out, b, blen);
  /* the encoder refuses data sections of different lengths */
  mem_io e = {
      .base = c, .base_len = clen, .other = b, .other_len = blen, .out = m.out, .out_cap = 1 << 16};
  io.ud = &e;
  assert_int_equal(fedc_model_delta_encode_stream(&io, clen, 1, NULL, blen, 2, NULL, &olen),
                   FEDC_EINVAL);
  fedc_free(m.out);
  fedc_free(d);
  fedc_free(a);
  fedc_free(b);
  fedc_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_bytes_as_in_memory),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
