/*
 * eval_report.c - filling, merging and reading evaluation reports
 * (eval_report.h explains the report, the histogram and its error bounds).
 * Every add function checks all its input before it changes the report, so
 * a refused batch leaves the report as it was.
 */
#include "ml/eval_report.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "base/error.h"
#include "ml/xent_row.h"

int fedc_eval_report_init(fedc_eval_report *r, fedc_eval_task task, int32_t n_classes,
                          double threshold) {
  memset(r, 0, sizeof *r);
  switch (task) {
  case FEDC_EVAL_BINARY:
    if (n_classes != 2) return fedc_error_set(FEDC_EINVAL, "eval: a binary task has 2 classes");
    if (!(threshold > 0.0 && threshold < 1.0))
      return fedc_error_set(FEDC_EINVAL, "eval: threshold %g outside (0, 1)", threshold);
    break;
  case FEDC_EVAL_MULTICLASS:
    if (n_classes < 2 || n_classes > FEDC_EVAL_MAX_CLASSES)
      return fedc_error_set(FEDC_EINVAL, "eval: %d classes outside 2..%d", (int)n_classes,
                            FEDC_EVAL_MAX_CLASSES);
    threshold = 0.0;
    break;
  case FEDC_EVAL_REGRESSION:
    n_classes = 0;
    threshold = 0.0;
    break;
  default:
    return fedc_error_set(FEDC_EINVAL, "eval: unknown task %d", (int)task);
  }
  r->task = task;
  r->n_classes = n_classes;
  r->threshold = threshold;
  return 0;
}

fedc_eval_task fedc_eval_task_of_loss(fedc_loss_kind kind) {
  switch (kind) {
  case FEDC_LOSS_SIGMOID_BCE: return FEDC_EVAL_BINARY;
  case FEDC_LOSS_SOFTMAX_XENT: return FEDC_EVAL_MULTICLASS;
  case FEDC_LOSS_MSE: return FEDC_EVAL_REGRESSION;
  }
  return FEDC_EVAL_NONE;
}

const char *fedc_eval_task_name(fedc_eval_task task) {
  switch (task) {
  case FEDC_EVAL_BINARY: return "binary";
  case FEDC_EVAL_MULTICLASS: return "multiclass";
  case FEDC_EVAL_REGRESSION: return "regression";
  default: return "none";
  }
}

/* The bin of a probability: its logit, clamped, cut into equal widths.
 * Non-decreasing in p, which is all the AUC bound needs. */
static int bin_of(double p) {
  const double width = 2.0 * FEDC_EVAL_LOGIT_MAX / FEDC_EVAL_BINS;
  if (p <= 0.0) return 0;
  if (p >= 1.0) return FEDC_EVAL_BINS - 1;
  double z = log(p) - log1p(-p);
  double k = floor((z + FEDC_EVAL_LOGIT_MAX) / width);
  if (k < 0) return 0;
  if (k > FEDC_EVAL_BINS - 1) return FEDC_EVAL_BINS - 1;
  return (int)k;
}

/* The probability clipped away from 0 and 1 for the log loss (as
 * sklearn.metrics.log_loss clips to its float eps). */
static double clip_p(double p) {
  const double eps = 1e-15;
  return p < eps ? eps : p > 1.0 - eps ? 1.0 - eps : p;
}

static int want(const fedc_eval_report *r, fedc_eval_task task) {
  if (r->task != (int32_t)task)
    return fedc_error_set(FEDC_EINVAL, "eval: a %s report cannot take %s predictions",
                          fedc_eval_task_name((fedc_eval_task)r->task), fedc_eval_task_name(task));
  return 0;
}

int fedc_eval_report_add_binary(fedc_eval_report *r, const float *scores, const float *labels,
                                int64_t n) {
  int rc = want(r, FEDC_EVAL_BINARY);
  if (rc != 0) return rc;
  for (int64_t i = 0; i < n; i++) {
    if (!(scores[i] >= 0.0f && scores[i] <= 1.0f))
      return fedc_error_set(FEDC_EINVAL, "eval: score %g of row %lld outside [0, 1]",
                            (double)scores[i], (long long)i);
    if (labels[i] != 0.0f && labels[i] != 1.0f)
      return fedc_error_set(FEDC_EINVAL, "eval: label %g of row %lld is not 0 or 1",
                            (double)labels[i], (long long)i);
  }
  for (int64_t i = 0; i < n; i++) {
    double p = scores[i];
    int y = labels[i] == 1.0f, pred = p >= r->threshold;
    r->confusion[y][pred]++;
    r->hist[y][bin_of(p)]++;
    r->loss_sum -= y ? log(clip_p(p)) : log1p(-clip_p(p));
    r->brier_sum += (p - y) * (p - y);
  }
  r->n += n;
  return 0;
}

/* 1 when every row of s (n x k) looks like probabilities. */
static int rows_are_probabilities(const float *s, int64_t n, int32_t k) {
  for (int64_t i = 0; i < n; i++) {
    double sum = 0.0;
    for (int32_t j = 0; j < k; j++) {
      float v = s[(size_t)i * (size_t)k + (size_t)j];
      if (!(v >= 0.0f && v <= 1.0f)) return 0;
      sum += v;
    }
    if (fabs(sum - 1.0) > 1e-3) return 0;
  }
  return 1;
}

/*
 * The multiclass rows: every label and score checked first; then the
 * confusion matrix and the log loss, -log p[y] for rows of probabilities,
 * else the softmax cross-entropy of the logits, taken from row_loss and
 * row_arg when given, else computed here by the same fedc__xent_row.
 */
int fedc__eval_report_add_scored(fedc_eval_report *r, const float *scores, const float *labels,
                                 int64_t n, const double *row_loss, const int32_t *row_arg) {
  int rc = want(r, FEDC_EVAL_MULTICLASS);
  if (rc != 0) return rc;
  int32_t k = r->n_classes;
  for (int64_t i = 0; i < n; i++) {
    float y = labels[i];
    if (!(y >= 0.0f && y < (float)k) || y != floorf(y))
      return fedc_error_set(FEDC_EINVAL, "eval: label %g of row %lld outside 0..%d", (double)y,
                            (long long)i, (int)k - 1);
    for (int32_t j = 0; j < k; j++)
      if (!isfinite(scores[(size_t)i * (size_t)k + (size_t)j]))
        return fedc_error_set(FEDC_EINVAL, "eval: non-finite score in row %lld", (long long)i);
  }
  int probs = rows_are_probabilities(scores, n, k);
  for (int64_t i = 0; i < n; i++) {
    const float *s = scores + (size_t)i * (size_t)k;
    int32_t y = (int32_t)labels[i], arg = 0;
    if (probs) {
      for (int32_t j = 1; j < k; j++)
        if (s[j] > s[arg]) arg = j;
      r->loss_sum -= log(clip_p(s[y]));
    } else if (row_arg != NULL) {
      arg = row_arg[i];
      r->loss_sum += row_loss[i];
    } else { /* logits: logsumexp(s) - s[y] */
      r->loss_sum += fedc__xent_row(s, k, y, &arg);
    }
    r->confusion[y][arg]++;
  }
  r->n += n;
  return 0;
}

int fedc_eval_report_add_multiclass(fedc_eval_report *r, const float *scores, const float *labels,
                                    int64_t n) {
  return fedc__eval_report_add_scored(r, scores, labels, n, NULL, NULL);
}

int fedc_eval_report_add_regression(fedc_eval_report *r, const float *pred, const float *labels,
                                    int64_t n) {
  int rc = want(r, FEDC_EVAL_REGRESSION);
  if (rc != 0) return rc;
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(pred[i]) || !isfinite(labels[i]))
      return fedc_error_set(FEDC_EINVAL, "eval: non-finite prediction or label in row %lld",
                            (long long)i);
  for (int64_t i = 0; i < n; i++) {
    double y = labels[i], e = (double)pred[i] - y;
    r->loss_sum += e * e;
    r->sum_abs_err += fabs(e);
    r->sum_y += y;
    r->sum_y2 += y * y;
  }
  r->n += n;
  return 0;
}

int fedc_eval_report_add_outputs(fedc_eval_report *r, fedc_loss_kind kind, const float *out,
                                 int32_t cols, const float *labels, int64_t n) {
  if (kind == FEDC_LOSS_SOFTMAX_XENT) {
    if (cols != r->n_classes)
      return fedc_error_set(FEDC_ESHAPE, "eval: %d outputs for %d classes", (int)cols,
                            (int)r->n_classes);
    return fedc_eval_report_add_multiclass(r, out, labels, n);
  }
  if (cols != 1) return fedc_error_set(FEDC_ESHAPE, "eval: %d outputs, expected 1", (int)cols);
  if (kind == FEDC_LOSS_MSE) return fedc_eval_report_add_regression(r, out, labels, n);
  /* BCE: P(1) = sigmoid(logit), in chunks so no allocation is needed */
  float p[256];
  for (int64_t s = 0; s < n; s += 256) {
    int64_t m = n - s < 256 ? n - s : 256;
    for (int64_t i = 0; i < m; i++) p[i] = (float)(1.0 / (1.0 + exp(-(double)out[s + i])));
    int rc = fedc_eval_report_add_binary(r, p, labels + s, m);
    if (rc != 0) return rc;
  }
  return 0;
}

int fedc_eval_report_from_predictions(fedc_eval_report *r, fedc_eval_task task, int32_t n_classes,
                                      double threshold, const float *scores, int32_t cols,
                                      const float *labels, int64_t n) {
  int rc = fedc_eval_report_init(r, task, n_classes, threshold);
  if (rc != 0) return rc;
  if (task == FEDC_EVAL_BINARY) {
    if (cols == 1) return fedc_eval_report_add_binary(r, scores, labels, n);
    if (cols != 2)
      return fedc_error_set(FEDC_ESHAPE, "eval: binary scores must be [N] or [N, 2], not [N, %d]",
                            (int)cols);
    float p[256];
    for (int64_t s = 0; s < n; s += 256) {
      int64_t m = n - s < 256 ? n - s : 256;
      for (int64_t i = 0; i < m; i++) p[i] = scores[(size_t)(s + i) * 2 + 1];
      if ((rc = fedc_eval_report_add_binary(r, p, labels + s, m)) != 0) return rc;
    }
    return 0;
  }
  if (task == FEDC_EVAL_MULTICLASS) {
    if (cols != n_classes)
      return fedc_error_set(FEDC_ESHAPE, "eval: scores [N, %d] for %d classes", (int)cols,
                            (int)n_classes);
    return fedc_eval_report_add_multiclass(r, scores, labels, n);
  }
  if (cols != 1)
    return fedc_error_set(FEDC_ESHAPE, "eval: regression scores must be [N], not [N, %d]",
                          (int)cols);
  return fedc_eval_report_add_regression(r, scores, labels, n);
}

/* a + b for counts, refusing to pass 2^62 (far beyond any data set). */
static int add_count(int64_t *a, int64_t b) {
  if (b > ((int64_t)1 << 62) - *a) return -1;
  *a += b;
  return 0;
}

int fedc_eval_report_merge(fedc_eval_report *dst, const fedc_eval_report *src) {
  if (dst->task != src->task || dst->n_classes != src->n_classes ||
      dst->threshold != src->threshold)
    return fedc_error_set(FEDC_EINVAL,
                          "eval: cannot merge a %s report (%d classes, threshold %g) into a %s "
                          "report (%d classes, threshold %g)",
                          fedc_eval_task_name((fedc_eval_task)src->task), (int)src->n_classes,
                          src->threshold, fedc_eval_task_name((fedc_eval_task)dst->task),
                          (int)dst->n_classes, dst->threshold);
  /* check every sum first so that a refused merge changes nothing */
  int64_t probe = dst->n;
  if (add_count(&probe, src->n) != 0)
    return fedc_error_set(FEDC_ERANGE, "eval: sample count overflows");
  dst->n = probe;
  for (int i = 0; i < FEDC_EVAL_MAX_CLASSES; i++)
    for (int j = 0; j < FEDC_EVAL_MAX_CLASSES; j++) dst->confusion[i][j] += src->confusion[i][j];
  for (int y = 0; y < 2; y++)
    for (int b = 0; b < FEDC_EVAL_BINS; b++) dst->hist[y][b] += src->hist[y][b];
  dst->loss_sum += src->loss_sum;
  dst->brier_sum += src->brier_sum;
  dst->sum_y += src->sum_y;
  dst->sum_y2 += src->sum_y2;
  dst->sum_abs_err += src->sum_abs_err;
  return 0;
}

static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }

/* ROC AUC and average precision from the histograms, with their bounds
 * (derived in eval_report.h). */
static void binary_curves(const fedc_eval_report *r, fedc_eval_metrics *m) {
  double P = 0, N = 0;
  for (int b = 0; b < FEDC_EVAL_BINS; b++) N += (double)r->hist[0][b], P += (double)r->hist[1][b];
  if (P == 0 || N == 0) {
    m->auc = m->auc_bound = NAN;
  } else {
    double pairs = 0, ties = 0, neg_below = 0;
    for (int b = 0; b < FEDC_EVAL_BINS; b++) {
      double pb = (double)r->hist[1][b], nb = (double)r->hist[0][b];
      pairs += pb * (neg_below + 0.5 * nb);
      ties += pb * nb;
      neg_below += nb;
    }
    m->auc = pairs / (P * N);
    m->auc_bound = ties / (2.0 * P * N);
  }
  if (P == 0) {
    m->pr_auc = m->pr_auc_bound = NAN;
    return;
  }
  double ap = 0, bound = 0, T = 0, F = 0; /* T, F: counts in bins above b */
  for (int b = FEDC_EVAL_BINS - 1; b >= 0; b--) {
    double pb = (double)r->hist[1][b], nb = (double)r->hist[0][b];
    if (pb > 0) {
      double h = (T + pb) / (T + pb + F + nb);
      double lo = (T + 1) / (T + 1 + F + nb), hi = (T + pb) / (T + pb + F);
      ap += pb / P * h;
      bound += pb / P * fmax(hi - h, h - lo);
    }
    T += pb;
    F += nb;
  }
  m->pr_auc = ap;
  m->pr_auc_bound = bound;
}

int fedc_eval_metrics_compute(const fedc_eval_report *r, fedc_eval_metrics *m) {
  double nan = NAN;
  *m = (fedc_eval_metrics){.task = r->task, .n_classes = r->n_classes, .n = r->n,
                           .threshold = r->threshold};
  double *all[] = {&m->accuracy, &m->log_loss, &m->auc, &m->auc_bound, &m->pr_auc,
                   &m->pr_auc_bound, &m->precision, &m->recall, &m->f1, &m->brier,
                   &m->macro_f1, &m->mse, &m->mae, &m->r2};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) *all[i] = nan;
  for (int k = 0; k < FEDC_EVAL_MAX_CLASSES; k++) m->class_recall[k] = nan;
  if (r->task < FEDC_EVAL_BINARY || r->task > FEDC_EVAL_REGRESSION)
    return fedc_error_set(FEDC_EINVAL, "eval: report has no task");
  if (r->n == 0) return 0;
  double n = (double)r->n;
  if (r->task == FEDC_EVAL_REGRESSION) {
    m->mse = r->loss_sum / n;
    m->mae = r->sum_abs_err / n;
    double sst = r->sum_y2 - r->sum_y * r->sum_y / n;
    m->r2 = sst > 0 ? 1.0 - r->loss_sum / sst : nan;
    return 0;
  }
  int32_t k = r->n_classes;
  double correct = 0, f1_sum = 0;
  for (int32_t c = 0; c < k; c++) {
    double tp = (double)r->confusion[c][c], row = 0, col = 0;
    for (int32_t j = 0; j < k; j++) row += (double)r->confusion[c][j], col += (double)r->confusion[j][c];
    correct += tp;
    m->class_recall[c] = ratio(tp, row);
    /* F1 = 2 tp / (2 tp + fp + fn); a class never seen nor predicted scores 0
     * (sklearn's zero_division=0) */
    f1_sum += row + col > 0 ? 2.0 * tp / (row + col) : 0.0;
  }
  m->accuracy = correct / n;
  m->macro_f1 = f1_sum / k;
  m->log_loss = r->loss_sum / n;
  if (r->task == FEDC_EVAL_BINARY) {
    m->tn = r->confusion[0][0], m->fp = r->confusion[0][1];
    m->fn = r->confusion[1][0], m->tp = r->confusion[1][1];
    m->precision = m->tp + m->fp ? (double)m->tp / (double)(m->tp + m->fp) : 0.0;
    m->recall = m->tp + m->fn ? (double)m->tp / (double)(m->tp + m->fn) : 0.0;
    m->f1 = m->tp ? 2.0 * (double)m->tp / (double)(2 * m->tp + m->fp + m->fn) : 0.0;
    m->brier = r->brier_sum / n;
    binary_curves(r, m);
  }
  return 0;
}

/* The selectable metrics: name, offset in fedc_eval_metrics, tasks (bits). */
#define B (1 << FEDC_EVAL_BINARY)
#define C (1 << FEDC_EVAL_MULTICLASS)
#define R (1 << FEDC_EVAL_REGRESSION)
static const struct {
  const char *name;
  size_t offset;
  unsigned tasks;
} metrics[] = {
    {"auc", offsetof(fedc_eval_metrics, auc), B},
    {"pr_auc", offsetof(fedc_eval_metrics, pr_auc), B},
    {"f1", offsetof(fedc_eval_metrics, f1), B},
    {"precision", offsetof(fedc_eval_metrics, precision), B},
    {"recall", offsetof(fedc_eval_metrics, recall), B},
    {"brier", offsetof(fedc_eval_metrics, brier), B},
    {"accuracy", offsetof(fedc_eval_metrics, accuracy), B | C},
    {"macro_f1", offsetof(fedc_eval_metrics, macro_f1), B | C},
    {"log_loss", offsetof(fedc_eval_metrics, log_loss), B | C},
    {"mse", offsetof(fedc_eval_metrics, mse), R},
    {"mae", offsetof(fedc_eval_metrics, mae), R},
    {"r2", offsetof(fedc_eval_metrics, r2), R},
};
#undef B
#undef C
#undef R
#define N_METRICS ((int)(sizeof metrics / sizeof metrics[0]))

int fedc_eval_metric_count(void) { return N_METRICS; }

const char *fedc_eval_metric_name(int index) {
  return index >= 0 && index < N_METRICS ? metrics[index].name : NULL;
}

double fedc_eval_metric_value(const fedc_eval_metrics *m, int index) {
  if (index < 0 || index >= N_METRICS) return NAN;
  return *(const double *)((const char *)m + metrics[index].offset);
}

int fedc_eval_metric_applies(int index, fedc_eval_task task) {
  return index >= 0 && index < N_METRICS && (metrics[index].tasks >> task & 1u);
}

int fedc_eval_select_parse(const char *text, int *index, int *sign) {
  *sign = 1;
  *index = -1;
  const char *name = text;
  if (*name == '-') *sign = -1, name++;
  for (int i = 0; i < N_METRICS; i++)
    if (strcmp(name, metrics[i].name) == 0) {
      *index = i;
      return 0;
    }
  return fedc_error_set(FEDC_EINVAL,
                        "eval: unknown metric \"%s\" (auc, pr_auc, f1, precision, recall, brier, "
                        "accuracy, macro_f1, log_loss, mse, mae, r2; '-' for lower is better)",
                        text);
}
