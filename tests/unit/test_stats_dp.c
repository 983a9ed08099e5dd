/*
 * test_stats_dp.c - a site's statistics under differential privacy
 * (shared/data/stats_dp.c): the clip bounds' parsing and refusals, the
 * sensitivities and noise scales, the clipping, the noise's size over many
 * releases, the JSON forms that carry it, and the release's step in the
 * privacy ledger (fedc_dp_account_release).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "data/schema.h"
#include "privacy/dp.h"
#include "privacy/rdp.h"

static fedc_schema *schema_ab(void) {
  fedc_schema *s = fedc_malloc(sizeof *s);
  assert_non_null(s);
  assert_int_equal(fedc_schema_make("a,b,c", NULL, "y", "id", "c:u|v", FEDC_MISSING_MEAN, s), 0);
  return s;
}

static void test_clip_parse(void **state) {
  (void)state;
  fedc_schema *s = schema_ab();
  assert_int_equal(fedc_schema_require_clip(s), FEDC_ECONFIG);
  assert_non_null(strstr(fedc_error_msg(), "'a' has no bounds"));
  assert_int_equal(fedc_schema_set_clip(s, " a:0:10 , b : -1 : 1"), 0);
  assert_int_equal(fedc_schema_require_clip(s), 0);
  assert_true(s->col[0].has_clip && s->col[0].lo == 0 && s->col[0].hi == 10);
  assert_true(s->col[1].has_clip && s->col[1].lo == -1 && s->col[1].hi == 1);
  double lo, hi;
  fedc_schema_input_bounds(s, 3, &lo, &hi); /* c=v */
  assert_true(lo == 0 && hi == 1);
  const char *bad[][2] = {{"z:0:1", "'z' is not a feature"},
                          {"c:0:1", "'c' is categorical"},
                          {"a:1:1", "lo < hi"},
                          {"a:0", "is not col:lo:hi"},
                          {"a:0:x", "two finite numbers"},
                          {"a:0:1e30", "within 2^24"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(fedc_schema_set_clip(s, bad[i][0]), FEDC_ECONFIG);
    if (strstr(fedc_error_msg(), bad[i][1]) == NULL) fail_msg("%s: %s", bad[i][0], fedc_error_msg());
  }
  fedc_free(s);
}

/* Delta_1 = sqrt(1 + d + 1); Delta_2 = Delta_3 = sqrt(d') on unit-range values. */
static void test_sigmas(void **state) {
  (void)state;
  fedc_schema *s = schema_ab();
  double sg[3];
  assert_int_equal(fedc_stats_dp_sigmas(s, 2, 1.0, sg), FEDC_EINVAL); /* no bounds */
  assert_int_equal(fedc_schema_set_clip(s, "a:0:10,b:-1:1"), 0);
  assert_int_equal(fedc_stats_dp_sigmas(s, 2, 0.0, sg), FEDC_EINVAL);
  assert_int_equal(fedc_stats_dp_sigmas(s, 2, 2.0, sg), 0);
  double k = 2.0 * sqrt(3.0);
  /* inputs a, b, c=u, c=v: r = 5, 1, 0.5, 0.5 */
  assert_true(fabs(sg[0] - k * sqrt(1 + 4 + 1)) < 1e-12);
  assert_true(fabs(sg[1] - k * sqrt(4)) < 1e-12); /* every input has a range */
  assert_true(fabs(sg[2] - k * sqrt(4)) < 1e-12);
  assert_int_equal(fedc_stats_dp_sigmas(s, 0, 2.0, sg), 0); /* regression: no label count */
  assert_true(fabs(sg[0] - k * sqrt(5)) < 1e-12);
  fedc_free(s);
}

/* n rows: a = i % 20 (clipped to [0, 10]), b = 5 (clipped to 1), c one-hot. */
static void make_data(fedc_dataset *ds, int64_t n) {
  memset(ds, 0, sizeof *ds);
  ds->n = n;
  ds->d = 4;
  ds->x = fedc_malloc_aligned((size_t)n * 4 * sizeof(float));
  ds->y = fedc_malloc_aligned((size_t)n * sizeof(float));
  assert_non_null(ds->x);
  assert_non_null(ds->y);
  for (int64_t i = 0; i < n; i++) {
    float *r = ds->x + i * 4;
    r[0] = (float)(i % 20);
    r[1] = 5.0f;
    r[2] = (float)(i % 2);
    r[3] = (float)(1 - i % 2);
    ds->y[i] = (float)(i % 3 == 0);
  }
  ds->n_classes = 2;
}

static void test_clipped_exact_at_tiny_noise(void **state) {
  (void)state;
  fedc_schema *s = schema_ab();
  assert_int_equal(fedc_schema_set_clip(s, "a:0:10,b:-1:1"), 0);
  s->noise_multiplier = 1e-12;
  fedc_dataset ds;
  make_data(&ds, 1000);
  fedc_rng rng;
  fedc_rng_seed(&rng, 7);
  fedc_stats st;
  assert_int_equal(fedc_stats_compute_dp(&ds, 2, s, 1.0, &rng, &st), 0);
  assert_int_equal(st.rows, 1000);
  assert_int_equal(st.count[0], 1000);
  assert_int_equal(st.label_count[1], 334);
  double mean[4], sd[4];
  fedc_stats_moments(&st, mean, sd);
  /* a: 0..9 once each, then 10 ten times, per 20 rows: mean 7.25 */
  assert_true(fabs(mean[0] - 7.25) < 1e-6);
  assert_true(fabs(mean[1] - 1.0) < 1e-6); /* b clipped to its upper bound */
  assert_true(fabs(mean[2] - 0.5) < 1e-6);
  assert_true(st.min[0] == 0 && st.max[0] == 10 && st.min[1] == -1 && st.max[1] == 1);
  assert_true(st.noise_multiplier == 1e-12);
  fedc_stats_free(&st);
  /* a label outside the classes is refused */
  ds.y[3] = 5;
  assert_int_equal(fedc_stats_compute_dp(&ds, 2, s, 1.0, &rng, &st), FEDC_ERANGE);
  fedc_dataset_free(&ds);
  fedc_free(s);
}

/*
 * Over 2000 releases, the centred sum of a (sum - 5 count) has the standard
 * deviation sigma_2 r_a = 5 sigma_2 (noisy count times the centre cancels), the count
 * sigma_1, and both are unbiased; with scale sqrt(4), twice those.
 */
static void test_noise_size(void **state) {
  (void)state;
  fedc_schema *s = schema_ab();
  assert_int_equal(fedc_schema_set_clip(s, "a:0:10,b:-1:1"), 0);
  s->noise_multiplier = 1.5;
  double sg[3];
  assert_int_equal(fedc_stats_dp_sigmas(s, 2, 1.5, sg), 0);
  fedc_dataset ds;
  make_data(&ds, 400);
  fedc_rng rng;
  fedc_rng_seed(&rng, 11);
  for (int scale = 1; scale <= 2; scale++) {
    const int T = 2000;
    double s1 = 0, s2 = 0, c1 = 0, c2 = 0;
    double true_cs = 0; /* sum of clipped a - 5 */
    for (int64_t i = 0; i < ds.n; i++) {
      double a = ds.x[i * 4];
      true_cs += (a > 10 ? 10 : a) - 5;
    }
    for (int t = 0; t < T; t++) {
      fedc_stats st;
      assert_int_equal(fedc_stats_compute_dp(&ds, 2, s, (double)scale, &rng, &st), 0);
      double cs = (double)((long double)st.sum[0] / 281474976710656.0L) - 5.0 * (double)st.count[0];
      s1 += cs - true_cs;
      s2 += (cs - true_cs) * (cs - true_cs);
      c1 += (double)st.count[0] - 400;
      c2 += ((double)st.count[0] - 400) * ((double)st.count[0] - 400);
      fedc_stats_free(&st);
    }
    double m = s1 / T, sdv = sqrt(s2 / T - m * m), cm = c1 / T, csd = sqrt(c2 / T - cm * cm);
    double want = sg[1] * 5.0 * scale, cwant = sg[0] * scale; /* a's half range is 5 */
    if (fabs(sdv / want - 1) > 0.08 || fabs(m) > 0.1 * want)
      fail_msg("scale %d: sum noise mean %g std %g, want 0 and %g", scale, m, sdv, want);
    if (fabs(csd / cwant - 1) > 0.08 || fabs(cm) > 0.1 * cwant)
      fail_msg("scale %d: count noise mean %g std %g, want 0 and %g", scale, cm, csd, cwant);
  }
  fedc_dataset_free(&ds);
  fedc_free(s);
}

static void test_json(void **state) {
  (void)state;
  fedc_schema *s = schema_ab(), *back = fedc_malloc(sizeof *back);
  assert_non_null(back);
  assert_int_equal(fedc_schema_set_clip(s, "a:0:10,b:-1:1"), 0);
  s->noise_multiplier = 0.8;
  char *t = fedc_schema_to_json(s);
  assert_non_null(t);
  assert_int_equal(fedc_schema_from_json(t, back), 0);
  assert_true(back->noise_multiplier == 0.8);
  assert_true(back->col[0].has_clip && back->col[0].hi == 10 && back->col[1].lo == -1);
  assert_int_equal(fedc_schema_require_clip(back), 0);
  fedc_free(t);
  fedc_dataset ds;
  make_data(&ds, 50);
  fedc_rng rng;
  fedc_rng_seed(&rng, 3);
  fedc_stats st, st2;
  assert_int_equal(fedc_stats_compute_dp(&ds, 2, s, 1.0, &rng, &st), 0);
  t = fedc_stats_to_json(&st);
  assert_non_null(strstr(t, "\"noise_multiplier\":0.8"));
  assert_int_equal(fedc_stats_from_json(t, &st2), 0);
  assert_true(st2.noise_multiplier == 0.8);
  assert_true(st2.sum[0] == st.sum[0] && st2.count[0] == st.count[0]);
  fedc_free(t);
  fedc_stats_free(&st);
  fedc_stats_free(&st2);
  /* exact statistics carry no noise multiplier */
  assert_int_equal(fedc_stats_compute(&ds, 2, &st), 0);
  t = fedc_stats_to_json(&st);
  assert_null(strstr(t, "noise_multiplier"));
  assert_int_equal(fedc_stats_from_json(t, &st2), 0);
  assert_true(st2.noise_multiplier == 0);
  fedc_free(t);
  fedc_stats_free(&st);
  fedc_stats_free(&st2);
  fedc_dataset_free(&ds);
  fedc_free(s);
  fedc_free(back);
}

/* The release is one Gaussian-mechanism step (q = 1) in the ledger, not a round. */
static void test_ledger(void **state) {
  (void)state;
  fedc_dp_params p = {.noise_multiplier = 1.2, .clip_norm = 1, .delta = 1e-5, .seed = 1};
  fedc_dp *d;
  assert_int_equal(fedc_dp_new(&p, &d), 0);
  assert_int_equal(fedc_dp_account_release(d, 0.0), FEDC_EINVAL);
  assert_int_equal(fedc_dp_account_release(d, 1.2), 0);
  assert_int_equal(fedc_dp_rounds(d), 0);
  double eps, want;
  assert_int_equal(fedc_dp_epsilon(d, &eps, NULL), 0);
  fedc_accountant *a;
  assert_int_equal(fedc_accountant_new(NULL, 0, &a), 0);
  assert_int_equal(fedc_accountant_step(a, 1.0, 1.2, 1), 0);
  assert_int_equal(fedc_accountant_epsilon(a, 1e-5, &want, NULL), 0);
  assert_true(eps > 0 && eps == want);
  fedc_accountant_free(a);
  fedc_dp_free(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_clip_parse),
      cmocka_unit_test(test_sigmas),
      cmocka_unit_test(test_clipped_exact_at_tiny_noise),
      cmocka_unit_test(test_noise_size),
      cmocka_unit_test(test_json),
      cmocka_unit_test(test_ledger),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
