/*
 * eval_json.c - the JSON forms of evaluation reports and their metrics.
 *
 * A report crosses the wire (POST /v1/eval) as
 *   {"task": "binary", "classes": 2, "threshold": 0.5, "n": 1000,
 *    "loss_sum": x, "brier_sum": x, "sum_y": x, "sum_y2": x, "sum_abs_err": x,
 *    "confusion": [[tn, fp], [fn, tp]], "bins": [[bin, neg, pos], ...]}
 * with only the non-empty bins, in increasing order. The reader trusts
 * nothing: each field must be there with its type and range, no other
 * field is accepted, counts are integers in [0, 2^53], and they must add up
 * (the confusion matrix to n, the bins of each label to its row), so a
 * merged report is always one a set of predictions could have produced.
 */
#include "ml/eval_report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

/* cJSON's text handed back as fedc memory. */
static int print_owned(cJSON *root, char **out) {
  *out = NULL;
  char *text = root ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (text == NULL) return fedc_error_set(FEDC_ENOMEM, "eval: out of memory");
  *out = fedc_strdup(text);
  cJSON_free(text);
  return *out ? 0 : fedc_error_set(FEDC_ENOMEM, "eval: out of memory");
}

/* A number, or null for NAN and infinities (JSON has neither). */
static void add_num(cJSON *o, const char *key, double v) {
  if (isfinite(v))
    cJSON_AddNumberToObject(o, key, v);
  else
    cJSON_AddNullToObject(o, key);
}

static cJSON *confusion_json(const fedc_eval_report *r) {
  cJSON *rows = cJSON_CreateArray();
  for (int32_t i = 0; rows && i < r->n_classes; i++) {
    cJSON *row = cJSON_CreateArray();
    for (int32_t j = 0; row && j < r->n_classes; j++)
      cJSON_AddItemToArray(row, cJSON_CreateNumber((double)r->confusion[i][j]));
    cJSON_AddItemToArray(rows, row);
  }
  return rows;
}

int fedc_eval_report_to_json(const fedc_eval_report *r, char **out) {
  cJSON *o = cJSON_CreateObject();
  if (o) {
    cJSON_AddStringToObject(o, "task", fedc_eval_task_name((fedc_eval_task)r->task));
    cJSON_AddNumberToObject(o, "classes", r->n_classes);
    cJSON_AddNumberToObject(o, "threshold", r->threshold);
    cJSON_AddNumberToObject(o, "n", (double)r->n);
    cJSON_AddNumberToObject(o, "loss_sum", r->loss_sum);
    cJSON_AddNumberToObject(o, "brier_sum", r->brier_sum);
    cJSON_AddNumberToObject(o, "sum_y", r->sum_y);
    cJSON_AddNumberToObject(o, "sum_y2", r->sum_y2);
    cJSON_AddNumberToObject(o, "sum_abs_err", r->sum_abs_err);
    cJSON_AddItemToObject(o, "confusion", confusion_json(r));
    cJSON *bins = cJSON_AddArrayToObject(o, "bins");
    for (int b = 0; bins && r->task == FEDC_EVAL_BINARY && b < FEDC_EVAL_BINS; b++) {
      if (r->hist[0][b] == 0 && r->hist[1][b] == 0) continue;
      cJSON *e = cJSON_CreateArray();
      cJSON_AddItemToArray(e, cJSON_CreateNumber(b));
      cJSON_AddItemToArray(e, cJSON_CreateNumber((double)r->hist[0][b]));
      cJSON_AddItemToArray(e, cJSON_CreateNumber((double)r->hist[1][b]));
      cJSON_AddItemToArray(bins, e);
    }
  }
  return print_owned(o, out);
}

static const double COUNT_MAX = 9007199254740992.0; /* 2^53 */

/* A count: an integer number in [0, 2^53]. */
static int get_count(const cJSON *v, const char *what, int64_t *out) {
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= COUNT_MAX) ||
      v->valuedouble != floor(v->valuedouble))
    return fedc_error_set(FEDC_EFORMAT, "eval report: %s must be a count", what);
  *out = (int64_t)v->valuedouble;
  return 0;
}

static int get_real(const cJSON *o, const char *key, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
    return fedc_error_set(FEDC_EFORMAT, "eval report: \"%s\" must be a finite number", key);
  *out = v->valuedouble;
  return 0;
}

static int read_confusion(const cJSON *o, fedc_eval_report *r) {
  const cJSON *rows = cJSON_GetObjectItemCaseSensitive(o, "confusion");
  int32_t k = r->task == FEDC_EVAL_REGRESSION ? 0 : r->n_classes;
  if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) != k)
    return fedc_error_set(FEDC_EFORMAT, "eval report: \"confusion\" must be %d x %d", (int)k,
                          (int)k);
  int64_t total = 0;
  for (int32_t i = 0; i < k; i++) {
    const cJSON *row = cJSON_GetArrayItem(rows, i);
    if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != k)
      return fedc_error_set(FEDC_EFORMAT, "eval report: \"confusion\" must be %d x %d", (int)k,
                            (int)k);
    for (int32_t j = 0; j < k; j++) {
      int rc = get_count(cJSON_GetArrayItem(row, j), "\"confusion\"", &r->confusion[i][j]);
      if (rc != 0) return rc;
      total += r->confusion[i][j]; /* <= 64 * 64 * 2^53: no overflow */
    }
  }
  if (k > 0 && total != r->n)
    return fedc_error_set(FEDC_EFORMAT, "eval report: \"confusion\" adds to %lld, \"n\" is %lld",
                          (long long)total, (long long)r->n);
  return 0;
}

static int read_bins(const cJSON *o, fedc_eval_report *r) {
  const cJSON *bins = cJSON_GetObjectItemCaseSensitive(o, "bins");
  if (!cJSON_IsArray(bins)) return fedc_error_set(FEDC_EFORMAT, "eval report: \"bins\" missing");
  if (r->task != FEDC_EVAL_BINARY) {
    if (cJSON_GetArraySize(bins) != 0)
      return fedc_error_set(FEDC_EFORMAT, "eval report: \"bins\" only for a binary task");
    return 0;
  }
  int64_t prev = -1, sum[2] = {0, 0};
  const cJSON *e;
  cJSON_ArrayForEach(e, bins) {
    int64_t b = 0, c[2] = {0, 0};
    if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 3 ||
        get_count(cJSON_GetArrayItem(e, 0), "a bin's index", &b) != 0 ||
        get_count(cJSON_GetArrayItem(e, 1), "a bin's count", &c[0]) != 0 ||
        get_count(cJSON_GetArrayItem(e, 2), "a bin's count", &c[1]) != 0)
      return fedc_error_set(FEDC_EFORMAT, "eval report: \"bins\" holds [bin, neg, pos] counts");
    if (b <= prev || b >= FEDC_EVAL_BINS)
      return fedc_error_set(FEDC_EFORMAT, "eval report: bin %lld out of order or past %d",
                            (long long)b, FEDC_EVAL_BINS - 1);
    prev = b;
    for (int y = 0; y < 2; y++) {
      r->hist[y][b] = c[y];
      sum[y] += c[y]; /* each <= 2^53, at most 2048 of them */
    }
  }
  for (int y = 0; y < 2; y++)
    if (sum[y] != r->confusion[y][0] + r->confusion[y][1])
      return fedc_error_set(FEDC_EFORMAT,
                            "eval report: the bins of label %d add to %lld, \"confusion\" to %lld",
                            y, (long long)sum[y],
                            (long long)(r->confusion[y][0] + r->confusion[y][1]));
  return 0;
}

static const char *const fields[] = {"task",   "classes", "threshold", "n",
                                     "loss_sum", "brier_sum", "sum_y", "sum_y2",
                                     "sum_abs_err", "confusion", "bins", NULL};

static int read_report(const cJSON *o, fedc_eval_report *r) {
  if (!cJSON_IsObject(o)) return fedc_error_set(FEDC_EFORMAT, "eval report: not a JSON object");
  const cJSON *f;
  cJSON_ArrayForEach(f, o) {
    int known = 0;
    for (int i = 0; fields[i] && !known; i++) known = f->string && strcmp(f->string, fields[i]) == 0;
    if (!known)
      return fedc_error_set(FEDC_EFORMAT, "eval report: unknown field \"%.40s\"",
                            f->string ? f->string : "");
  }
  const cJSON *task = cJSON_GetObjectItemCaseSensitive(o, "task");
  fedc_eval_task t = FEDC_EVAL_NONE;
  for (int i = FEDC_EVAL_BINARY; i <= FEDC_EVAL_REGRESSION; i++)
    if (cJSON_IsString(task) && strcmp(task->valuestring, fedc_eval_task_name((fedc_eval_task)i)) == 0)
      t = (fedc_eval_task)i;
  if (t == FEDC_EVAL_NONE)
    return fedc_error_set(FEDC_EFORMAT,
                          "eval report: \"task\" must be \"binary\", \"multiclass\" or \"regression\"");
  int64_t classes = 0;
  double threshold = 0;
  int rc = get_count(cJSON_GetObjectItemCaseSensitive(o, "classes"), "\"classes\"", &classes);
  if (rc == 0) rc = get_real(o, "threshold", &threshold);
  if (rc != 0) return rc;
  if (classes > FEDC_EVAL_MAX_CLASSES ||
      fedc_eval_report_init(r, t, (int32_t)classes, threshold) != 0 ||
      r->n_classes != classes || r->threshold != threshold)
    return fedc_error_set(FEDC_EFORMAT,
                          "eval report: \"classes\" %lld or \"threshold\" %g do not fit a %s task",
                          (long long)classes, threshold, fedc_eval_task_name(t));
  rc = get_count(cJSON_GetObjectItemCaseSensitive(o, "n"), "\"n\"", &r->n);
  if (rc == 0) rc = get_real(o, "loss_sum", &r->loss_sum);
  if (rc == 0) rc = get_real(o, "brier_sum", &r->brier_sum);
  if (rc == 0) rc = get_real(o, "sum_y", &r->sum_y);
  if (rc == 0) rc = get_real(o, "sum_y2", &r->sum_y2);
  if (rc == 0) rc = get_real(o, "sum_abs_err", &r->sum_abs_err);
  if (rc == 0 && (r->loss_sum < 0 || r->brier_sum < 0 || r->sum_y2 < 0 || r->sum_abs_err < 0))
    rc = fedc_error_set(FEDC_EFORMAT, "eval report: a sum of losses or squares is negative");
  if (rc == 0) rc = read_confusion(o, r);
  if (rc == 0) rc = read_bins(o, r);
  return rc;
}

int fedc_eval_report_from_json(const char *json, size_t len, fedc_eval_report *r) {
  memset(r, 0, sizeof *r);
  if (len > FEDC_EVAL_JSON_MAX)
    return fedc_error_set(FEDC_EFORMAT, "eval report: %zu bytes, more than %u", len,
                          FEDC_EVAL_JSON_MAX);
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (root == NULL) return fedc_error_set(FEDC_EFORMAT, "eval report: not JSON");
  int rc = read_report(root, r);
  cJSON_Delete(root);
  if (rc != 0) memset(r, 0, sizeof *r);
  return rc;
}

int fedc_eval_metrics_to_json(const fedc_eval_metrics *m, const fedc_eval_report *r,
                              int with_matrix, char **out) {
  cJSON *o = cJSON_CreateObject();
  if (o) {
    cJSON_AddStringToObject(o, "task", fedc_eval_task_name((fedc_eval_task)m->task));
    cJSON_AddNumberToObject(o, "n", (double)m->n);
    for (int i = 0; i < fedc_eval_metric_count(); i++)
      if (fedc_eval_metric_applies(i, (fedc_eval_task)m->task))
        add_num(o, fedc_eval_metric_name(i), fedc_eval_metric_value(m, i));
    if (m->task == FEDC_EVAL_BINARY) {
      add_num(o, "auc_bound", m->auc_bound);
      add_num(o, "pr_auc_bound", m->pr_auc_bound);
      add_num(o, "threshold", m->threshold);
      cJSON_AddNumberToObject(o, "tp", (double)m->tp);
      cJSON_AddNumberToObject(o, "fp", (double)m->fp);
      cJSON_AddNumberToObject(o, "tn", (double)m->tn);
      cJSON_AddNumberToObject(o, "fn", (double)m->fn);
    }
    if (with_matrix && m->task != FEDC_EVAL_REGRESSION) {
      cJSON *rec = cJSON_AddArrayToObject(o, "class_recall");
      for (int32_t k = 0; rec && k < m->n_classes; k++)
        cJSON_AddItemToArray(rec, isfinite(m->class_recall[k])
                                      ? cJSON_CreateNumber(m->class_recall[k])
                                      : cJSON_CreateNull());
      if (r) cJSON_AddItemToObject(o, "confusion", confusion_json(r));
    }
  }
  return print_owned(o, out);
}
