/*
 * test_partial.c - a relay's partial sum on the wire (wire/partial.h):
 * round trip of extreme 128-bit sums, and the refusals of a body cut,
 * mangled or mislabelled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/error.h"
#include "wire/partial.h"

static void test_round_trip(void **state) {
  (void)state;
  __int128 acc[4] = {0, -1, (__int128)INT64_MAX * 3, -((__int128)1 << 100)};
  fedc_partial p = {.round = 7, .updates = 3, .total = 900, .train_loss = 0.25, .n = 4};
  uint8_t *b = NULL;
  size_t len = 0;
  assert_int_equal(fedc_partial_encode(&p, acc, &b, &len), 0);
  assert_int_equal(len, FEDC_PARTIAL_HEAD + 4 * 16 + 32);
  assert_true(fedc_partial_is(b, len));
  fedc_partial q;
  assert_int_equal(fedc_partial_decode(b, len, &q), 0);
  assert_int_equal(q.round, 7);
  assert_int_equal(q.updates, 3);
  assert_int_equal(q.total, 900);
  assert_true(q.train_loss == 0.25);
  assert_int_equal(q.n, 4);
  for (uint64_t i = 0; i < 4; i++)
    assert_true(fedc_partial_sum(&q, i) == acc[i]);
  fedc_free(b);
}

static void test_refusals(void **state) {
  (void)state;
  __int128 acc[2] = {1, 2};
  fedc_partial p = {.round = 1, .updates = 1, .total = 5, .n = 2};
  uint8_t *b = NULL;
  size_t len = 0;
  assert_int_equal(fedc_partial_encode(&p, acc, &b, &len), 0);
  fedc_partial q;
  assert_int_equal(fedc_partial_decode(b, len - 1, &q), FEDC_EFORMAT); /* cut */
  b[FEDC_PARTIAL_HEAD + 3] ^= 1;                                       /* mangled */
  assert_int_equal(fedc_partial_decode(b, len, &q), FEDC_ECHECKSUM);
  b[FEDC_PARTIAL_HEAD + 3] ^= 1;
  b[0] = 'X'; /* not a partial: a safetensors container never starts so */
  assert_false(fedc_partial_is(b, len));
  assert_int_equal(fedc_partial_decode(b, len, &q), FEDC_EFORMAT);
  fedc_free(b);
  p.updates = 0; /* nothing summed */
  assert_int_equal(fedc_partial_encode(&p, acc, &b, &len), 0);
  assert_int_equal(fedc_partial_decode(b, len, &q), FEDC_EFORMAT);
  fedc_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
