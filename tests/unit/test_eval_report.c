/*
 * test_eval_report.c - the evaluation report and its metrics: each metric
 * against values worked out by hand, the histogram AUC and average
 * precision against the exact values within their stated bounds, exact
 * merging across sites, the strict JSON reader, class weights (parsing,
 * balanced, and their effect on an SGD step) and a model's report.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "ml/class_weight.h"
#include "ml/eval_model.h"
#include "ml/eval_report.h"
#include "ml/train.h"
#include "wire/safetensors.h"
#include "leak_check.h"

#define NEAR(a, b) assert_true(fabs((double)(a) - (double)(b)) < 1e-6)

static fedc_eval_report *new_report(fedc_eval_task task, int32_t k, double threshold) {
  fedc_eval_report *r = fedc_malloc(sizeof *r);
  assert_non_null(r);
  assert_int_equal(fedc_eval_report_init(r, task, k, threshold), 0);
  return r;
}

/* scores 0.1 0.4 0.35 0.8, labels 0 0 1 1, threshold 0.5: one positive
 * caught (0.8), one missed (0.35). AUC 3/4 (pairs: 0.35 > 0.1 only of
 * 0.35's two, 0.8 beats both); AP = 1/2 * 1 + 1/2 * 2/3; log loss and Brier
 * by hand. */
static void binary_by_hand(void **s) {
  (void)s;
  float sc[4] = {0.1f, 0.4f, 0.35f, 0.8f}, lb[4] = {0, 0, 1, 1};
  fedc_eval_report *r = new_report(FEDC_EVAL_BINARY, 2, 0.5);
  assert_int_equal(fedc_eval_report_add_binary(r, sc, lb, 4), 0);
  fedc_eval_metrics m;
  assert_int_equal(fedc_eval_metrics_compute(r, &m), 0);
  assert_int_equal(m.tp, 1);
  assert_int_equal(m.fn, 1);
  assert_int_equal(m.tn, 2);
  assert_int_equal(m.fp, 0);
  NEAR(m.precision, 1.0);
  NEAR(m.recall, 0.5);
  NEAR(m.f1, 2.0 / 3.0);
  NEAR(m.accuracy, 0.75);
  NEAR(m.auc, 0.75);
  NEAR(m.auc_bound, 0.0);
  NEAR(m.pr_auc, 0.5 + 0.5 * 2.0 / 3.0);
  NEAR(m.pr_auc_bound, 0.0);
  double ll = -(log(0.9) + log(0.6) + log(0.35) + log(0.8)) / 4.0;
  assert_true(fabs(m.log_loss - ll) < 1e-6);
  NEAR(m.brier, (0.01 + 0.16 + 0.4225 + 0.04) / 4.0);
  NEAR(m.class_recall[0], 1.0);
  NEAR(m.class_recall[1], 0.5);
  NEAR(m.macro_f1, (0.8 + 2.0 / 3.0) / 2.0); /* class 0: 2 tp / (2 + 3) */
  assert_true(isnan(m.mse) && isnan(m.r2));
  /* the threshold moves the counts: at 0.3 both positives and 0.4 are in */
  fedc_eval_report *r3 = new_report(FEDC_EVAL_BINARY, 2, 0.3);
  assert_int_equal(fedc_eval_report_add_binary(r3, sc, lb, 4), 0);
  assert_int_equal(fedc_eval_metrics_compute(r3, &m), 0);
  assert_int_equal(m.tp, 2);
  assert_int_equal(m.fp, 1);
  NEAR(m.precision, 2.0 / 3.0);
  NEAR(m.recall, 1.0);
  /* all tied: AUC 1/2 with the largest bound, 1/2 */
  float tie[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  assert_int_equal(fedc_eval_report_init(r, FEDC_EVAL_BINARY, 2, 0.5), 0);
  assert_int_equal(fedc_eval_report_add_binary(r, tie, lb, 4), 0);
  assert_int_equal(fedc_eval_metrics_compute(r, &m), 0);
  NEAR(m.auc, 0.5);
  NEAR(m.auc_bound, 0.5);
  /* refused input changes nothing */
  float bad[2] = {0.2f, 1.5f}, badl[2] = {0, 2};
  assert_int_equal(fedc_eval_report_add_binary(r, bad, lb, 2), FEDC_EINVAL);
  assert_int_equal(fedc_eval_report_add_binary(r, sc, badl, 2), FEDC_EINVAL);
  assert_int_equal(r->n, 4);
  assert_int_equal(fedc_eval_report_add_regression(r, sc, lb, 2), FEDC_EINVAL);
  fedc_free(r);
  fedc_free(r3);
}

/* Exact ROC AUC (rank sum, ties half) and average precision (sklearn's:
 * distinct thresholds, descending) of n scores. */
typedef struct pair {
  float s, y;
} pair;
static int by_desc(const void *a, const void *b) {
  float x = ((const pair *)a)->s, y = ((const pair *)b)->s;
  return (x < y) - (x > y);
}
static double exact_ap(const float *sc, const float *lb, int n) {
  pair *p = malloc((size_t)n * sizeof *p);
  double P = 0;
  for (int i = 0; i < n; i++) p[i] = (pair){sc[i], lb[i]}, P += lb[i];
  qsort(p, (size_t)n, sizeof *p, by_desc);
  double tp = 0, fp = 0, ap = 0;
  for (int i = 0; i < n;) {
    int j = i;
    double dtp = 0;
    while (j < n && p[j].s == p[i].s) dtp += p[j].y, fp += 1 - p[j].y, j++;
    tp += dtp;
    ap += dtp / P * tp / (tp + fp);
    i = j;
  }
  free(p);
  return ap;
}

/* The histogram AUC and AP are within their bounds of the exact values, on
 * spread scores (bound near 0), on scores crowded into a few bins (bound
 * large and still honoured) and on imbalanced data (2% positives). */
static void bounds_hold(void **s) {
  (void)s;
  enum { N = 5000 };
  static float sc[N], lb[N];
  fedc_rng g;
  fedc_rng_seed(&g, 7);
  const double spread[] = {3.0, 0.02, 1.0};
  const double pos_rate[] = {0.3, 0.5, 0.02};
  for (int c = 0; c < 3; c++) {
    for (int i = 0; i < N; i++) {
      lb[i] = fedc_rng_uniform(&g) < pos_rate[c] ? 1.0f : 0.0f;
      double z = spread[c] * (fedc_rng_normal(&g) + lb[i]);
      sc[i] = (float)(1.0 / (1.0 + exp(-z)));
    }
    fedc_eval_report *r = new_report(FEDC_EVAL_BINARY, 2, 0.5);
    assert_int_equal(fedc_eval_report_add_binary(r, sc, lb, N), 0);
    fedc_eval_metrics m;
    fedc_binary_metrics ex;
    assert_int_equal(fedc_eval_metrics_compute(r, &m), 0);
    assert_int_equal(fedc_binary_metrics_compute(sc, lb, N, &ex), 0);
    double ap = exact_ap(sc, lb, N);
    print_message("case %d: auc %.6f exact %.6f bound %.2e; ap %.6f exact %.6f bound %.2e\n", c,
                  m.auc, ex.auc, m.auc_bound, m.pr_auc, ap, m.pr_auc_bound);
    assert_true(fabs(m.auc - ex.auc) <= m.auc_bound + 1e-12);
    assert_true(fabs(m.pr_auc - ap) <= m.pr_auc_bound + 1e-12);
    if (c == 1) assert_true(m.auc_bound > 0.01); /* crowded: the bound is not idle */
    if (c == 0) assert_true(m.auc_bound < 1e-3);
    fedc_free(r);
  }
}

/* Three sites' reports merged equal one report of the pooled rows. */
static void merge_is_pooled(void **s) {
  (void)s;
  enum { N = 900 };
  static float sc[N], lb[N];
  fedc_rng g;
  fedc_rng_seed(&g, 3);
  for (int i = 0; i < N; i++) {
    lb[i] = fedc_rng_uniform(&g) < 0.1 ? 1.0f : 0.0f;
    sc[i] = (float)fedc_rng_uniform(&g);
  }
  fedc_eval_report *all = new_report(FEDC_EVAL_BINARY, 2, 0.4);
  fedc_eval_report *sum = new_report(FEDC_EVAL_BINARY, 2, 0.4);
  fedc_eval_report *site = fedc_malloc(sizeof *site);
  assert_int_equal(fedc_eval_report_add_binary(all, sc, lb, N), 0);
  const int cut[] = {0, 100, 650, N};
  for (int k = 0; k < 3; k++) {
    assert_int_equal(fedc_eval_report_init(site, FEDC_EVAL_BINARY, 2, 0.4), 0);
    assert_int_equal(fedc_eval_report_add_binary(site, sc + cut[k], lb + cut[k], cut[k + 1] - cut[k]), 0);
    assert_int_equal(fedc_eval_report_merge(sum, site), 0);
  }
  assert_memory_equal(all->confusion, sum->confusion, sizeof all->confusion);
  assert_memory_equal(all->hist, sum->hist, sizeof all->hist);
  assert_int_equal(all->n, sum->n);
  assert_true(fabs(all->loss_sum - sum->loss_sum) < 1e-9);
  /* reports of another threshold or task do not merge */
  assert_int_equal(fedc_eval_report_init(site, FEDC_EVAL_BINARY, 2, 0.5), 0);
  assert_int_equal(fedc_eval_report_merge(sum, site), FEDC_EINVAL);
  assert_int_equal(fedc_eval_report_init(site, FEDC_EVAL_REGRESSION, 0, 0), 0);
  assert_int_equal(fedc_eval_report_merge(sum, site), FEDC_EINVAL);
  assert_int_equal(sum->n, N);
  fedc_free(all);
  fedc_free(sum);
  fedc_free(site);
}

/* Three classes; labels 0 1 2 2 1 predicted 0 2 2 1 1: accuracy 3/5,
 * recall 1, 1/2, 1/2, F1 1, 1/2, 1/2 -> macro 2/3. Logits 2 at the
 * prediction, 0 elsewhere: each row's loss is log(e^2 + 2) - z[y]. */
static void multiclass_by_hand(void **s) {
  (void)s;
  float lb[5] = {0, 1, 2, 2, 1};
  int pred[5] = {0, 2, 2, 1, 1};
  float z[15] = {0}, p[15];
  for (int i = 0; i < 5; i++) {
    z[i * 3 + pred[i]] = 2.0f;
    for (int j = 0; j < 3; j++) p[i * 3 + j] = j == pred[i] ? 0.8f : 0.1f;
  }
  fedc_eval_report *r = new_report(FEDC_EVAL_MULTICLASS, 3, 0);
  assert_int_equal(fedc_eval_report_add_multiclass(r, z, lb, 5), 0);
  fedc_eval_metrics m;
  assert_int_equal(fedc_eval_metrics_compute(r, &m), 0);
  NEAR(m.accuracy, 0.6);
  NEAR(m.class_recall[0], 1.0);
  NEAR(m.class_recall[1], 0.5);
  NEAR(m.class_recall[2], 0.5);
  NEAR(m.macro_f1, 2.0 / 3.0);
  double lse = log(exp(2.0) + 2.0);
  NEAR(m.log_loss, (3 * (lse - 2.0) + 2 * lse) / 5.0);
  assert_int_equal(r->confusion[1][2], 1);
  assert_int_equal(r->confusion[2][1], 1);
  assert_true(isnan(m.auc));
  /* probabilities: loss -log p[y] */
  assert_int_equal(fedc_eval_report_init(r, FEDC_EVAL_MULTICLASS, 3, 0), 0);
  assert_int_equal(fedc_eval_report_add_multiclass(r, p, lb, 5), 0);
  assert_int_equal(fedc_eval_metrics_compute(r, &m), 0);
  NEAR(m.log_loss, (-3 * log(0.8) - 2 * log(0.1)) / 5.0);
  NEAR(m.accuracy, 0.6);
  float bad[1] = {3};
  assert_int_equal(fedc_eval_report_add_multiclass(r, p, bad, 1), FEDC_EINVAL);
  fedc_free(r);
}

/* predictions 1 2 3 for labels 1 3 5: errors 0 -1 -2, MSE 5/3, MAE 1,
 * SST 8 (mean 3), R^2 = 1 - 5/8. */
static void regression_by_hand(void **s) {
  (void)s;
  float pr[3] = {1, 2, 3}, lb[3] = {1, 3, 5};
  fedc_eval_report *r = new_report(FEDC_EVAL_REGRESSION, 0, 0);
  assert_int_equal(fedc_eval_report_add_regression(r, pr, lb, 1), 0);
  assert_int_equal(fedc_eval_report_add_regression(r, pr + 1, lb + 1, 2), 0);
  fedc_eval_metrics m;
  assert_int_equal(fedc_eval_metrics_compute(r, &m), 0);
  NEAR(m.mse, 5.0 / 3.0);
  NEAR(m.mae, 1.0);
  NEAR(m.r2, 0.375);
  assert_true(isnan(m.accuracy));
  fedc_free(r);
}

/* Selection names, with '-' for lower is better; which task each fits. */
static void select_names(void **s) {
  (void)s;
  int i, sign;
  assert_int_equal(fedc_eval_select_parse("auc", &i, &sign), 0);
  assert_int_equal(sign, 1);
  assert_string_equal(fedc_eval_metric_name(i), "auc");
  assert_true(fedc_eval_metric_applies(i, FEDC_EVAL_BINARY));
  assert_false(fedc_eval_metric_applies(i, FEDC_EVAL_MULTICLASS));
  assert_int_equal(fedc_eval_select_parse("-mse", &i, &sign), 0);
  assert_int_equal(sign, -1);
  assert_true(fedc_eval_metric_applies(i, FEDC_EVAL_REGRESSION));
  assert_int_equal(fedc_eval_select_parse("macro_f1", &i, &sign), 0);
  assert_true(fedc_eval_metric_applies(i, FEDC_EVAL_MULTICLASS));
  assert_int_equal(fedc_eval_select_parse("aucc", &i, &sign), FEDC_EINVAL);
}

/* A report survives its JSON form exactly; the reader refuses what does
 * not add up or does not belong. */
static void json_round_trip_and_refusals(void **s) {
  (void)s;
  float sc[6] = {0.01f, 0.2f, 0.7f, 0.99f, 0.5f, 0.0f}, lb[6] = {0, 0, 1, 1, 0, 1};
  fedc_eval_report *r = new_report(FEDC_EVAL_BINARY, 2, 0.5);
  fedc_eval_report *back = fedc_malloc(sizeof *back);
  assert_int_equal(fedc_eval_report_add_binary(r, sc, lb, 6), 0);
  char *j = NULL;
  assert_int_equal(fedc_eval_report_to_json(r, &j), 0);
  assert_int_equal(fedc_eval_report_from_json(j, strlen(j), back), 0);
  assert_memory_equal(r->hist, back->hist, sizeof r->hist);
  assert_memory_equal(r->confusion, back->confusion, sizeof r->confusion);
  assert_true(r->loss_sum == back->loss_sum);
  fedc_free(j);
  const char *bad[] = {
      "", "[]", "{}",
      /* unknown field */
      "{\"task\":\"binary\",\"classes\":2,\"threshold\":0.5,\"n\":0,\"loss_sum\":0,\"brier_sum\":0,"
      "\"sum_y\":0,\"sum_y2\":0,\"sum_abs_err\":0,\"confusion\":[[0,0],[0,0]],\"bins\":[],\"x\":1}",
      /* confusion does not add to n */
      "{\"task\":\"binary\",\"classes\":2,\"threshold\":0.5,\"n\":2,\"loss_sum\":0,\"brier_sum\":0,"
      "\"sum_y\":0,\"sum_y2\":0,\"sum_abs_err\":0,\"confusion\":[[1,0],[0,0]],\"bins\":[[3,1,0]]}",
      /* bins do not add to the rows */
      "{\"task\":\"binary\",\"classes\":2,\"threshold\":0.5,\"n\":1,\"loss_sum\":0,\"brier_sum\":0,"
      "\"sum_y\":0,\"sum_y2\":0,\"sum_abs_err\":0,\"confusion\":[[1,0],[0,0]],\"bins\":[[3,0,1]]}",
      /* bins out of order, bin out of range */
      "{\"task\":\"binary\",\"classes\":2,\"threshold\":0.5,\"n\":2,\"loss_sum\":0,\"brier_sum\":0,"
      "\"sum_y\":0,\"sum_y2\":0,\"sum_abs_err\":0,\"confusion\":[[2,0],[0,0]],"
      "\"bins\":[[5,1,0],[3,1,0]]}",
      "{\"task\":\"binary\",\"classes\":2,\"threshold\":0.5,\"n\":1,\"loss_sum\":0,\"brier_sum\":0,"
      "\"sum_y\":0,\"sum_y2\":0,\"sum_abs_err\":0,\"confusion\":[[1,0],[0,0]],\"bins\":[[2048,1,0]]}",
      /* a fractional and a negative count, a threshold of 1 */
      "{\"task\":\"binary\",\"classes\":2,\"threshold\":0.5,\"n\":0.5,\"loss_sum\":0,\"brier_sum\":0,"
      "\"sum_y\":0,\"sum_y2\":0,\"sum_abs_err\":0,\"confusion\":[[0,0],[0,0]],\"bins\":[]}",
      "{\"task\":\"multiclass\",\"classes\":2,\"threshold\":0,\"n\":0,\"loss_sum\":0,\"brier_sum\":0,"
      "\"sum_y\":0,\"sum_y2\":0,\"sum_abs_err\":0,\"confusion\":[[-1,1],[0,0]],\"bins\":[]}",
      "{\"task\":\"binary\",\"classes\":2,\"threshold\":1,\"n\":0,\"loss_sum\":0,\"brier_sum\":0,"
      "\"sum_y\":0,\"sum_y2\":0,\"sum_abs_err\":0,\"confusion\":[[0,0],[0,0]],\"bins\":[]}",
      /* 65 classes */
      "{\"task\":\"multiclass\",\"classes\":65,\"threshold\":0,\"n\":0,\"loss_sum\":0,"
      "\"brier_sum\":0,\"sum_y\":0,\"sum_y2\":0,\"sum_abs_err\":0,\"confusion\":[],\"bins\":[]}",
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    assert_int_equal(fedc_eval_report_from_json(bad[k], strlen(bad[k]), back), FEDC_EFORMAT);
    assert_int_equal(back->task, 0);
  }
  /* the metrics' JSON names what applies and writes NAN as null */
  fedc_eval_metrics m;
  assert_int_equal(fedc_eval_metrics_compute(r, &m), 0);
  assert_int_equal(fedc_eval_metrics_to_json(&m, r, 1, &j), 0);
  assert_non_null(strstr(j, "\"auc\":"));
  assert_non_null(strstr(j, "\"confusion\":[[2,1],[1,2]]"));
  assert_null(strstr(j, "\"r2\""));
  fedc_free(j);
  fedc_free(r);
  fedc_free(back);
}

/* Parsing class_weight; balanced from counts 98 / 2 gives 100 / (2 * 98)
 * and 100 / (2 * 2); pos_weight multiplies class 1. */
static void class_weights(void **s) {
  (void)s;
  fedc_class_weight cw;
  float w[3];
  int64_t counts[2] = {98, 2};
  assert_int_equal(fedc_class_weight_parse("none", &cw), 0);
  assert_int_equal(fedc_class_weight_resolve(&cw, 1.0, 2, counts, w), 1);
  assert_int_equal(fedc_class_weight_resolve(&cw, 4.0, 2, counts, w), 0);
  NEAR(w[0], 1.0);
  NEAR(w[1], 4.0);
  assert_int_equal(fedc_class_weight_parse("balanced", &cw), 0);
  assert_int_equal(fedc_class_weight_resolve(&cw, 1.0, 2, counts, w), 0);
  NEAR(w[0], 100.0 / 196.0);
  NEAR(w[1], 25.0);
  assert_int_equal(fedc_class_weight_parse("1, 2.5,0.5", &cw), 0);
  assert_int_equal(cw.n, 3);
  int64_t c3[3] = {1, 1, 1};
  assert_int_equal(fedc_class_weight_resolve(&cw, 1.0, 3, c3, w), 0);
  NEAR(w[1], 2.5);
  assert_int_equal(fedc_class_weight_resolve(&cw, 1.0, 2, counts, w), FEDC_EINVAL);
  const char *bad[] = {"balance", "1,,2", "1,-2", "0", "1,2,", "nan", "1;2"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
    assert_int_equal(fedc_class_weight_parse(bad[k], &cw), FEDC_EINVAL);
}

/* Weights scale each row's gradient: weights {2, 2} take the step of twice
 * the learning rate, {1, 1} the unweighted step, and {1, 3} a different one
 * (plain SGD, one full batch). */
static void weighted_step(void **s) {
  (void)s;
  enum { N = 16, D = 3 };
  float x[N * D], y[N];
  int64_t rows[N];
  fedc_rng g;
  fedc_rng_seed(&g, 11);
  for (int i = 0; i < N * D; i++) x[i] = (float)fedc_rng_normal(&g);
  for (int i = 0; i < N; i++) y[i] = (float)(i % 4 == 0), rows[i] = i;
  fedc_model_spec spec;
  fedc_model_spec_init(&spec, FEDC_MODEL_LOGREG, D, 1);
  fedc_backend *be;
  assert_int_equal(fedc_backend_open(FEDC_DEVICE_CPU, &be), 0);
  fedc_trainer *t;
  assert_int_equal(fedc_trainer_new(be, &spec, N, &t), 0);
  fedc_data_view v;
  assert_int_equal(fedc_data_view_open(be, x, y, N, D, &v), 0);
  float w0[D + 1] = {0.1f, -0.2f, 0.3f, 0.05f}, a[D + 1], b[D + 1], c[D + 1];
  const float two[2] = {2, 2}, one[2] = {1, 1}, skew[2] = {1, 3};
  fedc_train_params p = {.epochs = 1, .batch_size = N, .lr = 0.1f};
  fedc_train_params p2 = p, pw = p;
  p2.lr = 0.2f;
  fedc_train_stats st = {0};
  fedc_rng r;
  memcpy(a, w0, sizeof a);
  memcpy(b, w0, sizeof b);
  fedc_rng_seed(&r, 1);
  assert_int_equal(fedc_train_local(t, &p2, &v, rows, N, &r, a, &st), 0);
  pw.class_weight = two, pw.n_class_weight = 2;
  fedc_rng_seed(&r, 1);
  assert_int_equal(fedc_train_local(t, &pw, &v, rows, N, &r, b, &st), 0);
  for (int i = 0; i < D + 1; i++) assert_true(fabsf(a[i] - b[i]) < 1e-6f);
  memcpy(a, w0, sizeof a);
  memcpy(b, w0, sizeof b);
  memcpy(c, w0, sizeof c);
  fedc_rng_seed(&r, 1);
  assert_int_equal(fedc_train_local(t, &p, &v, rows, N, &r, a, &st), 0);
  pw.class_weight = one;
  fedc_rng_seed(&r, 1);
  assert_int_equal(fedc_train_local(t, &pw, &v, rows, N, &r, b, &st), 0);
  assert_memory_equal(a, b, sizeof a);
  pw.class_weight = skew;
  fedc_rng_seed(&r, 1);
  assert_int_equal(fedc_train_local(t, &pw, &v, rows, N, &r, c, &st), 0);
  assert_true(fabsf(a[D] - c[D]) > 1e-4f); /* the bias moves toward the positives */
  assert_true(c[D] > a[D]);
  /* the model's report on the same rows */
  fedc_eval_report *rep = fedc_malloc(sizeof *rep);
  assert_int_equal(fedc_eval_report_init_for(rep, &spec, 0.5), 0);
  assert_int_equal(rep->task, FEDC_EVAL_BINARY);
  assert_int_equal(fedc_evaluate_report(t, c, &v, y, 0, N, rep), 0);
  assert_int_equal(rep->n, N);
  fedc_eval_sums sums = {0};
  assert_int_equal(fedc_evaluate(t, c, &v, 0, N, &sums, NULL), 0);
  assert_true(fabs(rep->loss_sum - sums.loss_sum) < 1e-4);
  assert_int_equal(rep->confusion[0][0] + rep->confusion[1][1], sums.correct);
  fedc_free(rep);
  fedc_data_view_close(be, &v);
  fedc_trainer_free(t);
  fedc_backend_close(be);
}

/* fedc_evaluate_with_report: the sums and the report of the two separate
 * passes, bit for bit, for a softmax and a logistic model, on a range of
 * more than one report chunk (4096 rows) in batches (300) that do not
 * divide it; for softmax the report's log loss is the test loss (the same
 * row losses, summed in another order). */
static void evaluate_with_report_same(void **s) {
  (void)s;
  enum { N = 9000, D = 5, K = 3 };
  float *x = fedc_malloc_array((size_t)N * D, sizeof *x), *y = fedc_malloc_array(N, sizeof *y);
  assert_true(x && y);
  fedc_rng g;
  fedc_rng_seed(&g, 5);
  for (int i = 0; i < N * D; i++) x[i] = (float)fedc_rng_normal(&g);
  for (int type = 0; type < 2; type++) {
    int softmax = type == 0;
    for (int i = 0; i < N; i++) y[i] = (float)(softmax ? i % K : i % 3 == 0);
    fedc_model_spec spec;
    fedc_model_spec_init(&spec, softmax ? FEDC_MODEL_SOFTMAX : FEDC_MODEL_LOGREG, D,
                         softmax ? K : 1);
    fedc_backend *be;
    assert_int_equal(fedc_backend_open(FEDC_DEVICE_CPU, &be), 0);
    fedc_trainer *t;
    assert_int_equal(fedc_trainer_new(be, &spec, 300, &t), 0);
    fedc_data_view v;
    assert_int_equal(fedc_data_view_open(be, x, y, N, D, &v), 0);
    float w[(D + 1) * K];
    for (size_t i = 0; i < fedc_model_n_params(&spec); i++) w[i] = (float)fedc_rng_normal(&g);
    fedc_eval_report *a = fedc_malloc(sizeof *a), *b = fedc_malloc(sizeof *b);
    assert_true(a && b);
    assert_int_equal(fedc_eval_report_init_for(a, &spec, 0.5), 0);
    assert_int_equal(fedc_eval_report_init_for(b, &spec, 0.5), 0);
    fedc_eval_sums sa = {0}, sb = {0};
    assert_int_equal(fedc_evaluate(t, w, &v, 7, N - 3, &sa, NULL), 0);
    assert_int_equal(fedc_evaluate_report(t, w, &v, y, 7, N - 3, a), 0);
    assert_int_equal(fedc_evaluate_with_report(t, w, &v, y, 7, N - 3, &sb, b), 0);
    assert_int_equal(sb.n, N - 10);
    assert_int_equal(sa.n, sb.n);
    assert_int_equal(sa.correct, sb.correct);
    assert_memory_equal(&sa.loss_sum, &sb.loss_sum, sizeof sa.loss_sum);
    assert_int_equal(b->n, N - 10);
    assert_memory_equal(a, b, sizeof *a);
    /* softmax: log_loss and test_loss are one row loss, summed in another order */
    if (softmax) assert_true(fabs(b->loss_sum - sb.loss_sum) <= 1e-13 * fabs(sb.loss_sum));
    fedc_free(a);
    fedc_free(b);
    fedc_data_view_close(be, &v);
    fedc_trainer_free(t);
    fedc_backend_close(be);
  }
  fedc_free(x);
  fedc_free(y);
}

/* An external trainer's predictions file gives the report its scores and
 * labels give directly; [N, 2] binary scores use column 1. */
static void predictions_file(void **s) {
  (void)s;
  float sc[4] = {0.1f, 0.4f, 0.35f, 0.8f}, lb[4] = {0, 0, 1, 1}, sc2[8];
  for (int i = 0; i < 4; i++) sc2[2 * i] = 1 - sc[i], sc2[2 * i + 1] = sc[i];
  char path[] = "/tmp/fedc-test-pred-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  fedc_eval_report *a = new_report(FEDC_EVAL_BINARY, 2, 0.5), *b = fedc_malloc(sizeof *b);
  assert_int_equal(fedc_eval_report_add_binary(a, sc, lb, 4), 0);
  for (int cols = 1; cols <= 2; cols++) {
    fedc_st_tensor t[2] = {{"scores", cols, {4, 2}, cols == 1 ? sc : sc2}, {"labels", 1, {4}, lb}};
    assert_int_equal(fedc_st_write_file(path, t, 2, NULL, 0), 0);
    assert_int_equal(fedc_eval_report_from_safetensors(path, FEDC_EVAL_BINARY, 2, 0.5, b), 0);
    assert_memory_equal(a->confusion, b->confusion, sizeof a->confusion);
    assert_memory_equal(a->hist, b->hist, sizeof a->hist);
  }
  /* I64 labels (a PyTorch trainer's targets) give the same report */
  int64_t lb64[4] = {0, 0, 1, 1};
  fedc_st_tensor ti[2] = {{"scores", 1, {4}, sc}, {"labels", 1, {4}, (const float *)lb64}};
  uint8_t dts[2] = {FEDC_ST_F32, FEDC_ST_I64}, *buf = NULL;
  size_t len = 0;
  assert_int_equal(fedc_st_encode_typed(ti, dts, 2, NULL, 0, &buf, &len), 0);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(buf, 1, len, fp), len);
  fclose(fp);
  fedc_free(buf);
  assert_int_equal(fedc_eval_report_from_safetensors(path, FEDC_EVAL_BINARY, 2, 0.5, b), 0);
  assert_memory_equal(a->confusion, b->confusion, sizeof a->confusion);
  assert_memory_equal(a->hist, b->hist, sizeof a->hist);
  /* labels of another dtype, and scores that are not F32, are refused */
  dts[1] = FEDC_ST_I32;
  assert_int_equal(fedc_st_encode_typed(ti, dts, 2, NULL, 0, &buf, &len), 0);
  fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(buf, 1, len, fp), len);
  fclose(fp);
  fedc_free(buf);
  assert_int_equal(fedc_eval_report_from_safetensors(path, FEDC_EVAL_BINARY, 2, 0.5, b), FEDC_EFORMAT);
  fedc_st_tensor t[2] = {{"scores", 1, {4}, sc}, {"labels", 1, {3}, lb}};
  assert_int_equal(fedc_st_write_file(path, t, 2, NULL, 0), 0);
  assert_int_equal(fedc_eval_report_from_safetensors(path, FEDC_EVAL_BINARY, 2, 0.5, b), FEDC_ESHAPE);
  unlink(path);
  fedc_free(a);
  fedc_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(binary_by_hand, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(bounds_hold, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(merge_is_pooled, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(multiclass_by_hand, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(regression_by_hand, leak_setup, leak_check),
      cmocka_unit_test(select_names),
      cmocka_unit_test_setup_teardown(json_round_trip_and_refusals, leak_setup, leak_check),
      cmocka_unit_test(class_weights),
      cmocka_unit_test_setup_teardown(weighted_step, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(predictions_file, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(evaluate_with_report_same, leak_setup, leak_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
