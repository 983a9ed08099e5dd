/*
 * test_stats_words.c - statistics as 32-bit words for secure aggregation
 * (shared/data/stats_words.c): 128-bit integers split into 16-bit limbs
 * and back (round trip, negative values, the extremes), sums of many
 * sites' limbs whose carries cross words, and whole statistics summed as
 * words equal to the same statistics added exactly (fedc_stats_add).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "data/schema.h"

#define I128_MAX ((__int128)(((unsigned __int128)1 << 127) - 1))
#define I128_MIN (-I128_MAX - 1)

static void test_round_trip(void **st) {
  (void)st;
  const __int128 v[] = {0, 1, -1, 65535, 65536, -65536, (__int128)1 << 100,
                        -((__int128)123456789 << 70) - 5, I128_MAX, I128_MIN};
  for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
    uint32_t w[FEDC_STATS_LIMBS];
    fedc_i128_to_limbs(v[i], w);
    for (int k = 0; k < FEDC_STATS_LIMBS; k++) assert_true(w[k] <= 0xffff);
    assert_true(fedc_i128_from_limbs(w) == v[i]);
  }
  /* -1 is every limb full */
  uint32_t w[FEDC_STATS_LIMBS];
  fedc_i128_to_limbs(-1, w);
  for (int k = 0; k < FEDC_STATS_LIMBS; k++) assert_int_equal(w[k], 0xffff);
}

/* Sums of limbs over many values, positive and negative, with carries out
 * of every limb: the recombined sum is the exact sum; 65,535 copies of the
 * largest limbs stay below 2^32 per word. */
static void test_sums_with_carries(void **st) {
  (void)st;
  fedc_rng g;
  fedc_rng_seed(&g, 42);
  uint32_t acc[FEDC_STATS_LIMBS] = {0}, w[FEDC_STATS_LIMBS];
  __int128 want = 0;
  for (int i = 0; i < 5000; i++) {
    __int128 v = (__int128)(int64_t)fedc_rng_u64(&g) * (__int128)(fedc_rng_u64(&g) >> 20);
    if (i % 3 == 0) v = -v;
    want += v;
    fedc_i128_to_limbs(v, w);
    for (int k = 0; k < FEDC_STATS_LIMBS; k++) acc[k] += w[k];
  }
  assert_true(fedc_i128_from_limbs(acc) == want);
  memset(acc, 0, sizeof acc);
  fedc_i128_to_limbs(-1, w);
  uint64_t wide = 0;
  for (int i = 0; i < FEDC_STATS_MAX_SITES; i++) {
    for (int k = 0; k < FEDC_STATS_LIMBS; k++) acc[k] += w[k];
    wide += w[0];
  }
  assert_true(wide < ((uint64_t)1 << 32) && acc[0] == wide);
  assert_true(fedc_i128_from_limbs(acc) == -(__int128)FEDC_STATS_MAX_SITES);
}

/* Three sites' statistics summed word by word equal fedc_stats_add's sum
 * in every integer; min and max come back unknown. */
/* Noised statistics (DP) may sum to a negative count or sum of squares:
 * refused by the exact reader, read as 0 by the noised one. */
static void test_noised_negative_clamped(void **st) {
  (void)st;
  fedc_stats a;
  assert_int_equal(fedc_stats_init(&a, 1, 2), 0);
  a.rows = 10;
  a.count[0] = 10;
  a.missing[0] = -3;
  a.sum[0] = -5;
  a.sumsq[0] = -7;
  a.label_count[0] = -1;
  a.label_count[1] = 11;
  size_t n = fedc_stats_n_words(1, 2);
  uint32_t w[64];
  assert_true(n <= 64);
  fedc_stats_to_words(&a, w);
  fedc_stats b;
  assert_int_equal(fedc_stats_from_words(w, 1, 2, &b), FEDC_EFORMAT);
  assert_int_equal(fedc_stats_from_words_noised(w, 1, 2, &b), 0);
  assert_true(b.rows == 10 && b.count[0] == 10 && b.missing[0] == 0);
  assert_true(b.sum[0] == -5 && b.sumsq[0] == 0);
  assert_true(b.label_count[0] == 0 && b.label_count[1] == 11);
  fedc_stats_free(&a);
  fedc_stats_free(&b);
}

static void test_stats_summed(void **st) {
  (void)st;
  const int32_t d = 3, k = 2;
  fedc_stats site[3], sum;
  assert_int_equal(fedc_stats_init(&sum, d, k), 0);
  size_t n = fedc_stats_n_words(d, k);
  assert_int_equal(n, 8 * (1 + 4 * 3 + 2));
  uint32_t *acc = fedc_calloc(n, sizeof *acc), *w = fedc_malloc_array(n, sizeof *w);
  assert_non_null(acc);
  assert_non_null(w);
  for (int s = 0; s < 3; s++) {
    fedc_dataset ds = {0};
    ds.n = 10 + 7 * s;
    ds.d = d;
    ds.x = fedc_malloc_aligned((size_t)(ds.n * d) * sizeof(float));
    ds.y = fedc_malloc_aligned((size_t)ds.n * sizeof(float));
    for (int64_t i = 0; i < ds.n; i++) {
      ds.x[i * d] = (float)(-1000.5 + 37.25 * (double)i);
      ds.x[i * d + 1] = (float)(1e6 * (s - 1) + 0.125 * (double)i);
      ds.x[i * d + 2] = i % 4 == 0 ? NAN : (float)(-3.0 / (1.0 + (double)i));
      ds.y[i] = (float)((i + s) % 2);
    }
    assert_int_equal(fedc_stats_compute(&ds, k, &site[s]), 0);
    fedc_dataset_free(&ds);
    assert_int_equal(fedc_stats_add(&sum, &site[s]), 0);
    fedc_stats_to_words(&site[s], w);
    for (size_t i = 0; i < n; i++) {
      assert_true(w[i] <= 0xffff);
      acc[i] += w[i];
    }
  }
  fedc_stats back;
  assert_int_equal(fedc_stats_from_words(acc, d, k, &back), 0);
  assert_true(back.rows == sum.rows && back.rows == 10 + 17 + 24);
  for (int32_t j = 0; j < d; j++) {
    assert_true(back.count[j] == sum.count[j]);
    assert_true(back.missing[j] == sum.missing[j]);
    assert_true(back.sum[j] == sum.sum[j]);
    assert_true(back.sumsq[j] == sum.sumsq[j]);
    assert_true(isinf(back.min[j]) && isinf(back.max[j]));
  }
  assert_true(sum.sum[0] < 0); /* a negative sum came through */
  for (int32_t c = 0; c < k; c++) assert_true(back.label_count[c] == sum.label_count[c]);
  /* JSON writes unknown bounds as null and reads them back as unknown */
  char *text = fedc_stats_to_json(&back);
  assert_non_null(text);
  assert_non_null(strstr(text, "\"min\":[null,null,null]"));
  fedc_stats again;
  assert_int_equal(fedc_stats_from_json(text, &again), 0);
  assert_true(isinf(again.min[1]) && again.sum[1] == sum.sum[1]);
  fedc_stats_free(&again);
  fedc_free(text);
  /* words that are not a sum of statistics: a negative row count */
  fedc_i128_to_limbs(-1, acc);
  assert_int_equal(fedc_stats_from_words(acc, d, k, &again), FEDC_EFORMAT);
  fedc_stats_free(&back);
  for (int s = 0; s < 3; s++) fedc_stats_free(&site[s]);
  fedc_stats_free(&sum);
  fedc_free(acc);
  fedc_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_sums_with_carries),
      cmocka_unit_test(test_stats_summed),
      cmocka_unit_test(test_noised_negative_clamped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
