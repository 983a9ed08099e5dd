/*
 * eval_predictions.c - an external trainer's predictions file
 * (FEDC_PREDICTIONS_OUT: safetensors with "scores", F32 [N] or [N, C], and
 * "labels", [N] of I64 or F32) turned into the standard evaluation report,
 * so the client reports what the built-in trainer reports, computed by the
 * same code.
 */
#include "ml/eval_report.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "wire/safetensors.h"

/* The labels as floats: F32 as they are, I64 converted (exact below 2^24,
 * and class labels are far below). *owned is set when the copy is ours. */
static int labels_f32(const fedc_st_file *f, size_t idx, const fedc_st_tensor *l, int64_t n,
                      const char *path, const float **out, float **owned) {
  *owned = NULL;
  int dt = fedc_st_dtype_at(f, idx);
  if (dt == FEDC_ST_F32) {
    *out = l->data;
    return 0;
  }
  if (dt != FEDC_ST_I64)
    return fedc_error_set(FEDC_EFORMAT, "%s: labels must be I64 or F32, not %s", path,
                          fedc_st_dtype_name(dt) ? fedc_st_dtype_name(dt) : "?");
  float *y = fedc_malloc((size_t)n * sizeof *y);
  if (y == NULL) return fedc_error_set(FEDC_ENOMEM, "eval: out of memory");
  const unsigned char *p = (const unsigned char *)l->data;
  for (int64_t i = 0; i < n; i++) {
    int64_t v;
    memcpy(&v, p + 8 * i, sizeof v);
    y[i] = (float)v;
  }
  *out = *owned = y;
  return 0;
}

/* The index of the tensor called name, or -1. */
static long index_of(const fedc_st_file *f, const char *name) {
  for (size_t i = 0; i < fedc_st_count(f); i++) {
    fedc_st_tensor t;
    fedc_st_get(f, i, &t);
    if (strcmp(t.name, name) == 0) return (long)i;
  }
  return -1;
}

int fedc_eval_report_from_safetensors(const char *path, fedc_eval_task task, int32_t n_classes,
                                      double threshold, fedc_eval_report *r) {
  fedc_st_file *f = NULL;
  int rc = fedc_st_read_file_ex(path, FEDC_ST_ALLOW_ANY, &f);
  if (rc != 0) return rc;
  long si = index_of(f, "scores"), li = index_of(f, "labels");
  fedc_st_tensor s, l;
  if (si < 0 || li < 0) {
    fedc_st_free(f);
    return fedc_error_set(FEDC_EFORMAT, "%s: needs tensors \"scores\" and \"labels\"", path);
  }
  fedc_st_get(f, (size_t)si, &s);
  fedc_st_get(f, (size_t)li, &l);
  if (fedc_st_dtype_at(f, (size_t)si) != FEDC_ST_F32) {
    fedc_st_free(f);
    return fedc_error_set(FEDC_EFORMAT, "%s: scores must be F32", path);
  }
  int64_t n = s.ndim >= 1 ? s.shape[0] : -1;
  int32_t cols = s.ndim == 1 ? 1 : s.ndim == 2 && s.shape[1] <= 4096 ? (int32_t)s.shape[1] : -1;
  if (n < 1 || cols < 1 || l.ndim != 1 || l.shape[0] != n) {
    fedc_st_free(f);
    return fedc_error_set(FEDC_ESHAPE, "%s: scores must be [N] or [N, C] and labels [N], N >= 1",
                          path);
  }
  const float *y = NULL;
  float *owned = NULL;
  rc = labels_f32(f, (size_t)li, &l, n, path, &y, &owned);
  if (rc == 0)
    rc = fedc_eval_report_from_predictions(r, task, n_classes, threshold, s.data, cols, y, n);
  fedc_free(owned);
  fedc_st_free(f);
  return rc;
}
