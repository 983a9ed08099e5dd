/*
 * metrics.c - binary classification metrics: precision and recall at the
 * 0.5 threshold, and ROC AUC by the rank-sum (Mann-Whitney U) formula
 *   AUC = (sum of positive ranks - P (P + 1) / 2) / (P N)
 * with tied scores given their average rank, so that ties count half.
 */
#include <stdlib.h>

#include "base/alloc.h"
#include "base/error.h"
#include "ml/train.h"

typedef struct scored {
  float score;
  float label;
} scored;

static int by_score(const void *a, const void *b) {
  float x = ((const scored *)a)->score, y = ((const scored *)b)->score;
  return (x > y) - (x < y);
}

int fedc_binary_metrics_compute(const float *scores, const float *labels,
                                int64_t n, fedc_binary_metrics *out) {
  *out = (fedc_binary_metrics){0};
  if (n < 1) return fedc_error_set(FEDC_EINVAL, "metrics: no samples");
  scored *s = fedc_malloc_array((size_t)n, sizeof *s);
  if (s == NULL) return fedc_error_set(FEDC_ENOMEM, "metrics: out of memory");
  for (int64_t i = 0; i < n; i++) {
    int pos = labels[i] >= 0.5f, pred = scores[i] >= 0.5f;
    out->tp += pos && pred;
    out->fp += !pos && pred;
    out->fn += pos && !pred;
    out->tn += !pos && !pred;
    s[i].score = scores[i];
    s[i].label = labels[i];
  }
  out->precision = out->tp + out->fp ? (double)out->tp / (double)(out->tp + out->fp) : 0.0;
  out->recall = out->tp + out->fn ? (double)out->tp / (double)(out->tp + out->fn) : 0.0;
  qsort(s, (size_t)n, sizeof *s, by_score);
  double rank_sum = 0.0;
  int64_t P = 0;
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j < n && s[j].score == s[i].score) j++;
    double avg_rank = (double)(i + 1 + j) / 2.0; /* ranks i+1 .. j */
    for (int64_t k = i; k < j; k++)
      if (s[k].label >= 0.5f) rank_sum += avg_rank, P++;
    i = j;
  }
  int64_t N = n - P;
  out->auc = P && N ? (rank_sum - (double)P * (double)(P + 1) / 2.0) / ((double)P * (double)N) : 0.5;
  fedc_free(s);
  return 0;
}
