/*
 * eval_report.h - evaluation reports that merge exactly across sites, and
 * the metrics of each task computed from them.
 *
 * A site evaluates a model on its validation rows and fills a report with
 * counts and sums only: the confusion matrix, per-class histograms of the
 * binary score, the summed log loss, Brier score and regression residuals.
 * Reports of the same task add up (fedc_eval_report_merge), so the
 * federation's metrics are those of the pooled predictions, never an
 * average of sites' ratios:
 *
 *     fedc_eval_report *r = fedc_eval_report_new(FEDC_EVAL_BINARY, 2, 0.5);
 *     fedc_eval_report_add_binary(r, scores, labels, n);    // each site
 *     fedc_eval_report_merge(total, r);                      // the coordinator
 *     fedc_eval_metrics m;
 *     fedc_eval_metrics_compute(total, &m);                  // m.auc, m.f1, ...
 *
 * Binary: precision, recall, F1, the confusion counts and accuracy are exact
 * at the threshold (score >= threshold predicts 1). ROC AUC and PR AUC
 * (average precision, as sklearn.metrics.average_precision_score) come from
 * the histograms: scores are binned by their logit, FEDC_EVAL_BINS bins of
 * width 2 FEDC_EVAL_LOGIT_MAX / FEDC_EVAL_BINS on [-LOGIT_MAX, LOGIT_MAX]
 * (beyond it, the end bins). The bin is a non-decreasing function of the
 * score, so a positive and a negative in different bins are ordered exactly;
 * only pairs that share a bin are counted as ties (1/2) where the exact AUC
 * counts 0, 1/2 or 1. Hence
 *     |AUC_hist - AUC| <= sum_b pos_b neg_b / (2 P N)        (auc_bound)
 * which the report computes from its own histograms. For average precision
 * AP = sum_k (1/P) precision_k over the positives in score order, a positive
 * in bin b is credited with the precision at the bin's lower edge,
 * h_b = T_b / (T_b + F_b) (T, F: positives and negatives in bins >= b), while
 * its exact precision is (T' + t) / (T' + t + F' + f) with T', F' the counts
 * above the bin, 1 <= t <= pos_b, 0 <= f <= neg_b; that lies between
 * lo_b = (T'+1) / (T'+1+F'+neg_b) and hi_b = (T'+pos_b) / (T'+pos_b+F'), so
 *     |AP_hist - AP| <= sum_b (pos_b / P) max(hi_b - h_b, h_b - lo_b)  (pr_auc_bound)
 * Both bounds are 0 when no bin holds two distinct scores.
 *
 * Multiclass (2..FEDC_EVAL_MAX_CLASSES classes): accuracy, macro F1,
 * per-class recall and the confusion matrix [true][predicted], the
 * prediction being the first arg max. Regression: MSE, MAE and R^2 from
 * sums of y, y^2, e^2 and |e| (R^2 = 1 - SSE / (sum y^2 - (sum y)^2 / n)).
 *
 * Reports are plain structs (about 64 KiB: allocate them, do not put them on
 * a thread's stack); the JSON form (fedc_eval_report_to_json / _from_json)
 * is what crosses the wire, strict and bounded.
 */
#ifndef FEDC_EVAL_REPORT_H
#define FEDC_EVAL_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ml/backend.h"

#define FEDC_EVAL_BINS 2048
#define FEDC_EVAL_LOGIT_MAX 16.0
#define FEDC_EVAL_MAX_CLASSES 64
/* The longest JSON report accepted (a full confusion matrix of 64 classes
 * and every bin set fits in well under this). */
#define FEDC_EVAL_JSON_MAX (1u << 20)

typedef enum {
  FEDC_EVAL_NONE = 0,
  FEDC_EVAL_BINARY = 1,
  FEDC_EVAL_MULTICLASS = 2,
  FEDC_EVAL_REGRESSION = 3
} fedc_eval_task;

typedef struct fedc_eval_report {
  int32_t task;      /* fedc_eval_task */
  int32_t n_classes; /* binary 2, multiclass 2..64, regression 0 */
  double threshold;  /* binary: score >= threshold predicts 1 */
  int64_t n;         /* samples */
  double loss_sum;   /* classification: summed log loss; regression: sum e^2 */
  double brier_sum;  /* binary: sum (p - y)^2 */
  double sum_y, sum_y2, sum_abs_err; /* regression */
  int64_t confusion[FEDC_EVAL_MAX_CLASSES][FEDC_EVAL_MAX_CLASSES]; /* [true][pred] */
  int64_t hist[2][FEDC_EVAL_BINS]; /* binary: [label][bin of the score] */
} fedc_eval_report;

/* Metrics of one report; a metric that does not apply to the task is NAN. */
typedef struct fedc_eval_metrics {
  int32_t task, n_classes;
  int64_t n;
  double threshold;
  double accuracy, log_loss;                   /* classification */
  double auc, auc_bound, pr_auc, pr_auc_bound; /* binary */
  double precision, recall, f1, brier;         /* binary, at the threshold */
  int64_t tp, fp, tn, fn;                      /* binary */
  double macro_f1;                             /* classification */
  double class_recall[FEDC_EVAL_MAX_CLASSES];  /* NAN for a class with no samples */
  double mse, mae, r2;                         /* regression */
} fedc_eval_metrics;

/* A zeroed report for task. FEDC_EINVAL for a task / class count / threshold
 * (in (0, 1) for binary) that does not fit. */
int fedc_eval_report_init(fedc_eval_report *r, fedc_eval_task task, int32_t n_classes,
                          double threshold);
/* The task a built-in model's loss head evaluates as. */
fedc_eval_task fedc_eval_task_of_loss(fedc_loss_kind kind);

/* Add predictions. Binary: scores are P(y = 1) in [0, 1], labels 0 or 1.
 * Multiclass: scores n x n_classes, probabilities (each row in [0, 1]
 * summing to 1 within 1e-3) or else logits, labels integers 0..K-1.
 * Regression: predictions and real labels. FEDC_EINVAL (nothing added) for
 * a wrong task, a non-finite or out-of-range score or label. */
int fedc_eval_report_add_binary(fedc_eval_report *r, const float *scores, const float *labels,
                                int64_t n);
int fedc_eval_report_add_multiclass(fedc_eval_report *r, const float *scores, const float *labels,
                                    int64_t n);
int fedc_eval_report_add_regression(fedc_eval_report *r, const float *pred, const float *labels,
                                    int64_t n);
/*
 * fedc_eval_report_add_multiclass with each logit row's loss and arg max
 * already computed by fedc__xent_row (ml/xent_row.h: the loss the test
 * loss sums), so that an evaluation exponentiates each logit once. Rows
 * that look like probabilities still take -log p[y], as there.
 */
int fedc__eval_report_add_scored(fedc_eval_report *r, const float *scores, const float *labels,
                                 int64_t n, const double *row_loss, const int32_t *row_arg);
/* A built-in model's raw outputs (n x cols: a logit for BCE, logits for
 * softmax, the prediction for MSE) as the loss head reads them. */
int fedc_eval_report_add_outputs(fedc_eval_report *r, fedc_loss_kind kind, const float *out,
                                 int32_t cols, const float *labels, int64_t n);
/*
 * Scores and labels as an external trainer writes them (FEDC_PREDICTIONS_OUT:
 * scores [n] or [n, cols], labels [n]) into a fresh report of task: a
 * binary task takes scores [n] or [n, 2] (column 1), a multiclass task
 * [n, n_classes], regression [n]. FEDC_ESHAPE / FEDC_EINVAL.
 */
int fedc_eval_report_from_predictions(fedc_eval_report *r, fedc_eval_task task, int32_t n_classes,
                                      double threshold, const float *scores, int32_t cols,
                                      const float *labels, int64_t n);

/* The same from a predictions file (safetensors: "scores" [N] or [N, C]
 * and "labels" [N], F32). FEDC_EIO, FEDC_EFORMAT, FEDC_ESHAPE, FEDC_EINVAL. */
int fedc_eval_report_from_safetensors(const char *path, fedc_eval_task task, int32_t n_classes,
                                      double threshold, fedc_eval_report *r);

/* dst += src. FEDC_EINVAL (dst unchanged) unless both have the same task,
 * class count and threshold; FEDC_ERANGE if a count would overflow. */
int fedc_eval_report_merge(fedc_eval_report *dst, const fedc_eval_report *src);

/* The metrics of r. FEDC_EINVAL for an uninitialized report; a report with
 * no samples gives NAN metrics and returns 0. */
int fedc_eval_metrics_compute(const fedc_eval_report *r, fedc_eval_metrics *m);

/* The names a job may select by ([eval] select): auc, pr_auc, f1,
 * precision, recall, accuracy, macro_f1, log_loss, brier, mse, mae, r2,
 * optionally prefixed by '-' (lower is better). *sign is +1 or -1. */
int fedc_eval_select_parse(const char *text, int *index, int *sign);
const char *fedc_eval_metric_name(int index);
int fedc_eval_metric_count(void);
/* Value of metric index in m (NAN when it does not apply). */
double fedc_eval_metric_value(const fedc_eval_metrics *m, int index);
/* 1 when metric index applies to task, else 0. */
int fedc_eval_metric_applies(int index, fedc_eval_task task);
/* "binary", "multiclass", "regression" (or "none"). */
const char *fedc_eval_task_name(fedc_eval_task task);

/*
 * JSON forms. fedc_eval_report_to_json returns a NUL-terminated string
 * (fedc_free it) of the report: counts, sums and the non-empty bins as
 * [bin, neg, pos]. fedc_eval_report_from_json reads it back strictly: every
 * field present with its type and range, no unknown field, counts that add
 * up (the confusion matrix to n; the bins to its rows); FEDC_EFORMAT naming
 * the field, and *r zeroed. fedc_eval_metrics_to_json writes the metrics
 * (null for NAN; per-class recall and the confusion matrix included when
 * with_matrix) for status pages and --json output.
 */
int fedc_eval_report_to_json(const fedc_eval_report *r, char **out);
int fedc_eval_report_from_json(const char *json, size_t len, fedc_eval_report *r);
int fedc_eval_metrics_to_json(const fedc_eval_metrics *m, const fedc_eval_report *r,
                              int with_matrix, char **out);

#endif
