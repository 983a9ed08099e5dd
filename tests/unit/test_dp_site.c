/*
 * test_dp_site.c - distributed DP under secure aggregation
 * (privacy/dp_site.c, dp.c with noise_at_sites, config_noise_at.c).
 *
 * The site's clip (the norm after it, unclipped flag, the norm before it),
 * its noise (mean and variance over a million draws within bounds; the same
 * seed repeats, another seed differs; a NaN leaves the delta untouched),
 * the plan (per-site deviation z S / sqrt(m_min), the fixed-point range,
 * a clip that cannot fit refused), m_min, the coordinator's accounting
 * without noise (epsilon as central DP's at the same z and q), and the
 * config's refusals naming the keys.
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
#include "config/config.h"
#include "privacy/dp.h"
#include "privacy/dp_site.h"

static double l2(const float *x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return sqrt(s);
}

static void test_clip(void **state) {
  (void)state;
  uint8_t seed[FEDC_DP_SITE_SEED_BYTES] = {1};
  float d[100];
  for (int i = 0; i < 100; i++) d[i] = 1.0f; /* norm 10 */
  int un = -1;
  double norm = 0;
  assert_int_equal(fedc_dp_site_apply(d, 100, 2.0, 0.0, seed, &un, &norm), 0);
  assert_int_equal(un, 0);
  assert_true(fabs(norm - 10.0) < 1e-9);
  assert_true(fabs(l2(d, 100) - 2.0) < 1e-5);
  assert_true(l2(d, 100) <= 2.0 * (1 + 1e-6));
  for (int i = 0; i < 100; i++) d[i] = 0.01f; /* norm 0.1: untouched */
  assert_int_equal(fedc_dp_site_apply(d, 100, 2.0, 0.0, seed, &un, &norm), 0);
  assert_int_equal(un, 1);
  for (int i = 0; i < 100; i++) assert_true(d[i] == 0.01f);
  d[7] = NAN;
  assert_int_equal(fedc_dp_site_apply(d, 100, 2.0, 0.5, seed, &un, NULL), FEDC_ENONFINITE);
  assert_true(d[0] == 0.01f);
}

static void test_noise_moments(void **state) {
  (void)state;
  const size_t n = 1000001; /* odd: the last Box-Muller pair is half used */
  const double sd = 0.3;
  float *d = fedc_calloc(n, sizeof *d);
  assert_non_null(d);
  uint8_t seed[FEDC_DP_SITE_SEED_BYTES];
  assert_int_equal(fedc_dp_site_seed(seed), 0);
  assert_int_equal(fedc_dp_site_apply(d, n, 1e9, sd, seed, NULL, NULL), 0);
  double s = 0, ss = 0, s4 = 0;
  for (size_t i = 0; i < n; i++) {
    s += d[i];
    ss += (double)d[i] * d[i];
    s4 += pow((double)d[i], 4);
  }
  double mean = s / (double)n, var = ss / (double)n - mean * mean;
  /* mean: 6 standard errors; variance: its standard error is
   * sd^2 sqrt(2 / n) = 0.0014 sd^2, allowed 1% (7 of them); kurtosis 3 */
  assert_true(fabs(mean) < 6 * sd / sqrt((double)n));
  assert_true(fabs(var / (sd * sd) - 1) < 0.01);
  assert_true(fabs(s4 / (double)n / (var * var) - 3) < 0.05);
  assert_true(d[n - 1] != 0.0f); /* every coordinate noised, the last too */
  fedc_free(d);
}

static void test_seeds(void **state) {
  (void)state;
  enum { N = 9000 }; /* over two PRG chunks */
  static float a[N], b[N], c[N];
  uint8_t s1[FEDC_DP_SITE_SEED_BYTES], s2[FEDC_DP_SITE_SEED_BYTES];
  assert_int_equal(fedc_dp_site_seed(s1), 0);
  assert_int_equal(fedc_dp_site_seed(s2), 0);
  assert_memory_not_equal(s1, s2, sizeof s1);
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  memset(c, 0, sizeof c);
  assert_int_equal(fedc_dp_site_apply(a, N, 1.0, 1.0, s1, NULL, NULL), 0);
  assert_int_equal(fedc_dp_site_apply(b, N, 1.0, 1.0, s1, NULL, NULL), 0);
  assert_int_equal(fedc_dp_site_apply(c, N, 1.0, 1.0, s2, NULL, NULL), 0);
  assert_memory_equal(a, b, sizeof a); /* the stream is the seed's */
  int same = 0;
  for (int i = 0; i < N; i++) same += a[i] == c[i];
  assert_true(same < 5);
  /* the chunks differ from each other too */
  same = 0;
  for (int i = 0; i < 4096; i++) same += a[i] == a[i + 4096];
  assert_true(same < 5);
}

static void test_plan(void **state) {
  (void)state;
  fedc_dp_site_plan p;
  assert_int_equal(fedc_dp_site_plan_new(1.0, 0.5, 4, 10, &p), 0);
  assert_true(fabs(p.noise_std - 0.25) < 1e-12);
  assert_true(fabs(p.range - (0.5 + 8 * 0.25)) < 1e-12);
  assert_int_equal(p.m_min, 4);
  /* 10 (2.5 2^f + 1/2) < 2^31: f = 26 */
  assert_int_equal(p.frac_bits, 26);
  assert_int_equal(fedc_dp_site_plan_new(1.0, 1e5, 2, 1000, &p), FEDC_ERANGE);
  assert_non_null(strstr(fedc_error_msg(), "clip_norm"));
  assert_int_equal(fedc_dp_site_plan_new(0.0, 1.0, 2, 10, &p), FEDC_EINVAL);
  assert_int_equal(fedc_dp_site_min_survivors(1, 0, 0.6), 2);
  assert_int_equal(fedc_dp_site_min_survivors(3, 0, 0.6), 3);
  assert_int_equal(fedc_dp_site_min_survivors(10, 0, 0.6), 10);
}

/* The coordinator's state with noise at the sites leaves the average alone
 * and accounts exactly what central DP accounts. */
static void test_accounting_only(void **state) {
  (void)state;
  fedc_dp_params p = {.noise_multiplier = 1.1, .clip_norm = 1.0, .delta = 1e-5,
                      .seed = 7, .noise_at_sites = 1};
  fedc_dp_params pc = p;
  pc.noise_at_sites = 0;
  fedc_dp *ds, *dc;
  assert_int_equal(fedc_dp_new(&p, &ds), 0);
  assert_int_equal(fedc_dp_new(&pc, &dc), 0);
  float a[4] = {0.1f, -0.2f, 0.3f, 0.0f}, b[4];
  memcpy(b, a, sizeof a);
  for (int r = 1; r <= 3; r++) {
    assert_int_equal(fedc_dp_finish_round(ds, r, a, 4, 3, 0, 0.3), 0);
    assert_int_equal(fedc_dp_finish_round(dc, r, b, 4, 3, 0, 0.3), 0);
  }
  assert_true(a[0] == 0.1f && a[1] == -0.2f && a[2] == 0.3f && a[3] == 0.0f);
  assert_true(b[0] != 0.1f); /* central DP noised */
  double es, ec;
  assert_int_equal(fedc_dp_epsilon(ds, &es, NULL), 0);
  assert_int_equal(fedc_dp_epsilon(dc, &ec, NULL), 0);
  assert_true(es > 0 && es == ec);
  assert_int_equal(fedc_dp_rounds(ds), 3);
  fedc_dp_free(ds);
  fedc_dp_free(dc);
  p.adaptive = 1;
  p.clip_quantile = 0.5;
  p.clip_lr = 0.2;
  assert_int_equal(fedc_dp_new(&p, &ds), FEDC_EINVAL);
}

static void expect_refused(const char *const *sets, const char *needle) {
  fedc_config c;
  fedc_config_defaults(&c);
  for (const char *const *s = sets; *s; s++) assert_int_equal(fedc_config_set(&c, *s), 0);
  assert_int_equal(fedc__config_check_noise_at(&c, 0), FEDC_ECONFIG);
  if (strstr(fedc_error_msg(), needle) == NULL) fail_msg("%s", fedc_error_msg());
}

static void test_config(void **state) {
  (void)state;
  expect_refused((const char *const[]){"privacy.noise_at=sites", NULL}, "noise_multiplier = 0");
  expect_refused((const char *const[]){"privacy.noise_at=sites", "privacy.noise_multiplier=1",
                                       NULL},
                 "needs secure_aggregation = true");
  expect_refused((const char *const[]){"privacy.noise_multiplier=1",
                                       "privacy.secure_aggregation=true", NULL},
                 "noise_at = sites");
  expect_refused((const char *const[]){"privacy.noise_at=sites", "privacy.noise_multiplier=1",
                                       "privacy.secure_aggregation=true",
                                       "privacy.adaptive_clip=true", NULL},
                 "adaptive");
  expect_refused((const char *const[]){"privacy.noise_at=sites", "privacy.noise_multiplier=1",
                                       "privacy.secure_aggregation=true",
                                       "privacy.clip_norm=1000000", NULL},
                 "does not fit");
  fedc_config c;
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "privacy.noise_at=sites"), 0);
  assert_int_equal(fedc_config_set(&c, "privacy.noise_multiplier=1"), 0);
  assert_int_equal(fedc_config_set(&c, "privacy.secure_aggregation=true"), 0);
  assert_int_equal(fedc__config_check_noise_at(&c, 0), 0);
  assert_int_equal(fedc__config_check_noise_at(&c, 1), FEDC_ECONFIG); /* the simulator */
  assert_non_null(strstr(fedc_error_msg(), "simulator"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_clip),          cmocka_unit_test(test_noise_moments),
      cmocka_unit_test(test_seeds),         cmocka_unit_test(test_plan),
      cmocka_unit_test(test_accounting_only), cmocka_unit_test(test_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
