/*
 * test_schema.c - unit tests for a job's schema and the federation's
 * statistics (shared/data/schema.c, loader_schema.c, stats.c): the schema
 * made from config text and from a header, CSV columns mapped by name in
 * any order, one-hot categories, every refusal naming file, line and column,
 * statistics that combine exactly in any order and survive their JSON form,
 * and standardization with imputation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "data/schema.h"

static char dir[64];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/fedc-schema-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static int64_t live;
static int track(void **state) {
  (void)state;
  live = fedc_alloc_live();
  return 0;
}
/* every test frees what it allocated */
static int check_live(void **state) {
  (void)state;
  return fedc_alloc_live() == live ? 0 : -1;
}

static const char *write_file(const char *name, const char *text) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static void assert_contains(const char *s, const char *part) {
  if (strstr(s, part) == NULL) fail_msg("'%s' not in '%s'", part, s);
}

static fedc_schema *make(const char *features, const char *cat, fedc_missing missing) {
  fedc_schema *s = fedc_malloc(sizeof *s);
  assert_non_null(s);
  assert_int_equal(fedc_schema_make(features, NULL, "y", "id", cat, missing, s), 0);
  return s;
}

static void test_schema_make(void **state) {
  (void)state;
  fedc_schema *s = make("a, b,c", "c:red|green|blue", FEDC_MISSING_REFUSE);
  assert_int_equal(s->n_cols, 3);
  assert_int_equal(s->d, 5);
  char name[128];
  fedc_schema_input_name(s, 3, name, sizeof name);
  assert_string_equal(name, "c=green");
  /* the JSON form gives the same schema back */
  char *j = fedc_schema_to_json(s);
  fedc_schema *t = fedc_malloc(sizeof *t);
  assert_int_equal(fedc_schema_from_json(j, t), 0);
  assert_int_equal(t->d, 5);
  assert_string_equal(t->col[2].vocab, "red|green|blue");
  fedc_free(j);
  fedc_free(t);
  /* refusals name the problem */
  assert_int_equal(fedc_schema_make("a,a", NULL, "y", "", "", 0, s), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "'a' named twice");
  assert_int_equal(fedc_schema_make("a,y", NULL, "y", "", "", 0, s), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "'y' is the label");
  assert_int_equal(fedc_schema_make("a", NULL, "y", "", "z:1|2", 0, s), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "'z' is not a feature");
  assert_int_equal(fedc_schema_make("a", NULL, "y", "", "a:1|1", 0, s), FEDC_ECONFIG);
  assert_contains(fedc_error_msg(), "named twice");
  /* from a header: every column but the label and the excluded */
  const char *h = write_file("h.csv", "id,b,y,a\n1,2,3,4\n");
  assert_int_equal(fedc_schema_make("", h, "y", "id", "", 0, s), 0);
  assert_int_equal(s->n_cols, 2);
  assert_string_equal(s->col[0].name, "b");
  assert_string_equal(s->col[1].name, "a");
  fedc_free(s);
}

static void test_load_by_name(void **state) {
  (void)state;
  fedc_schema *s = make("a,b,c", "c:red|blue", FEDC_MISSING_MEAN);
  const char *p = write_file("site.csv", "c,id,y,b,a\nblue,7,1,2.5,1\nred,8,0,,2\n");
  fedc_dataset ds;
  assert_int_equal(fedc_load_csv_schema(p, s, 1, &ds), 0);
  assert_int_equal(ds.n, 2);
  assert_int_equal(ds.d, 4);
  float want0[] = {1, 2.5f, 0, 1};
  for (int j = 0; j < 4; j++) assert_true(ds.x[j] == want0[j]);
  assert_true(ds.x[4] == 2 && isnan(ds.x[5]) && ds.x[6] == 1 && ds.x[7] == 0);
  assert_true(ds.y[0] == 1 && ds.y[1] == 0);
  fedc_dataset_free(&ds);
  fedc_free(s);
}

static void test_load_refusals(void **state) {
  (void)state;
  fedc_schema *s = make("a,b,c", "c:red|blue", FEDC_MISSING_REFUSE);
  fedc_dataset ds;
  struct {
    const char *text, *parts[3];
  } cases[] = {
      {"id,a,c,y\n1,2,red,0\n", {"bad.csv:1:", "column 'b'", "missing from the header"}},
      {"id,a,b,c,y,zz\n1,2,3,red,0,9\n", {"bad.csv:1:", "column 6 'zz'", "[data] exclude"}},
      {"id,a,b,c,y\n1,2,3,red,0\n1,x,3,red,0\n", {"bad.csv:3:", "column 2 'a'", "'x' is not"}},
      {"id,a,b,c,y\n1,2,,red,0\n", {"bad.csv:2:", "column 3 'b'", "[data] missing = refuse"}},
      {"id,a,b,c,y\n1,2,3,pink,0\n", {"bad.csv:2:", "column 4 'c'", "vocabulary"}},
      {"id,a,b,c,y\n1,2,3,red\n", {"bad.csv:2:", "4 fields, expected 5", ""}},
      {"id,a,b,c\n1,2,3,red\n", {"bad.csv:1:", "column 'y'", "no label column"}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *p = write_file("bad.csv", cases[i].text);
    assert_true(fedc_load_csv_schema(p, s, 1, &ds) < 0);
    assert_null(ds.x);
    for (int k = 0; k < 3; k++) assert_contains(fedc_error_msg(), cases[i].parts[k]);
  }
  /* without a label column when it is not required (prediction) */
  const char *p = write_file("nolabel.csv", "b,a,c\n1,2,red\n");
  assert_int_equal(fedc_load_csv_schema(p, s, 0, &ds), 0);
  assert_int_equal(ds.n, 1);
  fedc_dataset_free(&ds);
  fedc_free(s);
}

/* Statistics of row slices, added in two orders, equal bit for bit and
 * equal the statistics of all rows; their JSON form round-trips. */
static void test_stats_exact(void **state) {
  (void)state;
  enum { N = 301, D = 3 };
  float *x = fedc_malloc_aligned(N * D * sizeof(float));
  float *y = fedc_malloc_aligned(N * sizeof(float));
  for (int i = 0; i < N; i++) {
    x[i * D] = (float)(i * 0.37 - 20);
    x[i * D + 1] = (float)(1e-3 * ((i * 7919) % 101));
    x[i * D + 2] = i % 10 == 0 ? NAN : (float)(1000 + i);
    y[i] = (float)(i % 3);
  }
  fedc_dataset all = {N, D, x, y, 3, NULL};
  fedc_dataset part[3] = {{100, D, x, y, 3, NULL}, {150, D, x + 100 * D, y + 100, 3, NULL},
                          {51, D, x + 250 * D, y + 250, 3, NULL}};
  fedc_stats whole, a, b, s[3];
  assert_int_equal(fedc_stats_compute(&all, 3, &whole), 0);
  for (int k = 0; k < 3; k++) assert_int_equal(fedc_stats_compute(&part[k], 3, &s[k]), 0);
  assert_int_equal(fedc_stats_init(&a, D, 3), 0);
  assert_int_equal(fedc_stats_init(&b, D, 3), 0);
  for (int k = 0; k < 3; k++) assert_int_equal(fedc_stats_add(&a, &s[k]), 0);
  for (int k = 2; k >= 0; k--) assert_int_equal(fedc_stats_add(&b, &s[k]), 0);
  for (int j = 0; j < D; j++) {
    assert_true(a.sum[j] == b.sum[j] && a.sumsq[j] == b.sumsq[j]);
    assert_true(a.sum[j] == whole.sum[j] && a.sumsq[j] == whole.sumsq[j]);
    assert_int_equal(a.count[j], whole.count[j]);
  }
  assert_int_equal(a.missing[2], 31);
  assert_int_equal(a.label_count[0], 101);
  double mean[D], sd[D];
  fedc_stats_moments(&a, mean, sd);
  double m0 = 0, v0 = 0;
  for (int i = 0; i < N; i++) m0 += (double)x[i * D];
  m0 /= N;
  for (int i = 0; i < N; i++) v0 += ((double)x[i * D] - m0) * ((double)x[i * D] - m0);
  assert_true(fabs(mean[0] - m0) < 1e-12 && fabs(sd[0] / sqrt(v0 / N) - 1) < 1e-12);
  char *j = fedc_stats_to_json(&a);
  fedc_stats back;
  assert_int_equal(fedc_stats_from_json(j, &back), 0);
  for (int k = 0; k < D; k++) assert_true(back.sum[k] == a.sum[k] && back.sumsq[k] == a.sumsq[k]);
  assert_int_equal(back.label_count[2], a.label_count[2]);
  fedc_free(j);
  fedc_stats_free(&back);
  assert_int_equal(fedc_stats_from_json("{\"count\":[1]}", &back), FEDC_EFORMAT);
  /* standardized: mean 0, missing values imputed with the mean (0) */
  assert_int_equal(fedc_dataset_standardize_with(&all, mean, sd, D), 0);
  assert_true(all.x[2] == 0.0f);
  double z = 0;
  for (int i = 0; i < N; i++) z += all.x[i * D];
  assert_true(fabs(z / N) < 1e-5);
  fedc_stats *list[] = {&whole, &a, &b, &s[0], &s[1], &s[2], &back};
  for (size_t k = 0; k < sizeof list / sizeof list[0]; k++) fedc_stats_free(list[k]);
  fedc_free_aligned(x);
  fedc_free_aligned(y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_schema_make, track, check_live),
      cmocka_unit_test_setup_teardown(test_load_by_name, track, check_live),
      cmocka_unit_test_setup_teardown(test_load_refusals, track, check_live),
      cmocka_unit_test_setup_teardown(test_stats_exact, track, check_live),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
