/*
 * eval_predictions.c - an external trainer's predictions file
 * (FEDC_PREDICTIONS_OUT: safetensors with "scores", F32 [N] or [N, C], and
 * "labels", [N]) turned into the standard evaluation report, so the client
 * reports what the built-in trainer reports, computed by the same code.
 */
#include "ml/eval_report.h"

#include "base/error.h"
#include "wire/safetensors.h"

int fedc_eval_report_from_safetensors(const char *path, fedc_eval_task task, int32_t n_classes,
                                      double threshold, fedc_eval_report *r) {
  fedc_st_file *f = NULL;
  int rc = fedc_st_read_file(path, &f);
  if (rc != 0) return rc;
  fedc_st_tensor s, l;
  if (fedc_st_find(f, "scores", &s) != 0 || fedc_st_find(f, "labels", &l) != 0) {
    fedc_st_free(f);
    return fedc_error_set(FEDC_EFORMAT, "%s: needs tensors \"scores\" and \"labels\"", path);
  }
  int64_t n = s.ndim >= 1 ? s.shape[0] : -1;
  int32_t cols = s.ndim == 1 ? 1 : s.ndim == 2 && s.shape[1] <= 4096 ? (int32_t)s.shape[1] : -1;
  if (n < 1 || cols < 1 || l.ndim != 1 || l.shape[0] != n) {
    fedc_st_free(f);
    return fedc_error_set(FEDC_ESHAPE, "%s: scores must be [N] or [N, C] and labels [N], N >= 1",
                          path);
  }
  rc = fedc_eval_report_from_predictions(r, task, n_classes, threshold, s.data, cols, l.data, n);
  fedc_st_free(f);
  return rc;
}
