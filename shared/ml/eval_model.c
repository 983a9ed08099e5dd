/*
 * eval_model.c - a built-in model's evaluation report on a range of rows:
 * the forward pass in batches (fedc_predict), the outputs read as the
 * model's loss head reads them (fedc_eval_report_add_outputs).
 */
#include "ml/eval_model.h"

#include "base/alloc.h"
#include "base/error.h"

int fedc_evaluate_report(fedc_trainer *t, const float *w, const fedc_data_view *data,
                         const float *labels, int64_t begin, int64_t end, fedc_eval_report *r) {
  const fedc_model_spec *spec = fedc_trainer_spec(t);
  const int64_t chunk = 4096;
  float *out = fedc_malloc_array((size_t)chunk * (size_t)spec->n_out, sizeof(float));
  if (out == NULL) return fedc_error_set(FEDC_ENOMEM, "evaluate: out of memory");
  fedc_loss_kind kind = fedc_model_loss_kind(spec);
  int rc = 0;
  for (int64_t s = begin; s < end && rc == 0; s += chunk) {
    int64_t e = end - s < chunk ? end : s + chunk;
    rc = fedc_predict(t, w, data, s, e, out);
    if (rc == 0) rc = fedc_eval_report_add_outputs(r, kind, out, spec->n_out, labels + s, e - s);
  }
  fedc_free(out);
  return rc;
}

int fedc_eval_report_init_for(fedc_eval_report *r, const fedc_model_spec *spec, double threshold) {
  fedc_eval_task task = fedc_eval_task_of_loss(fedc_model_loss_kind(spec));
  return fedc_eval_report_init(r, task, task == FEDC_EVAL_BINARY ? 2 : spec->n_out, threshold);
}
