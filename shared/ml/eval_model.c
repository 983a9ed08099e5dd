/*
 * eval_model.c - a built-in model's evaluation report on a range of rows:
 * the forward pass in batches (fedc_predict), the outputs read as the
 * model's loss head reads them (fedc_eval_report_add_outputs); and the
 * report together with the loss sums in one forward pass.
 */
#include "ml/eval_model.h"

#include <string.h>

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

/* fedc_evaluate_with_report's state: the outputs of the rows since
 * chunk_begin, handed to the report a chunk (4096 rows) at a time, as
 * fedc_evaluate_report hands them. */
typedef struct report_feed {
  fedc_eval_report *r;
  fedc_loss_kind kind;
  const float *labels;
  float *buf;
  int32_t cols;
  int64_t chunk, chunk_begin, filled, end;
} report_feed;

static int feed_batch(void *ctx, const float *out, int64_t row, int32_t rows) {
  report_feed *f = ctx;
  (void)row;
  int32_t i = 0;
  while (i < rows) {
    int64_t take = f->chunk - f->filled < rows - i ? f->chunk - f->filled : rows - i;
    memcpy(f->buf + (size_t)f->filled * (size_t)f->cols, out + (size_t)i * (size_t)f->cols,
           (size_t)take * (size_t)f->cols * sizeof(float));
    f->filled += take;
    i += (int32_t)take;
    if (f->filled == f->chunk || f->chunk_begin + f->filled == f->end) {
      int rc = fedc_eval_report_add_outputs(f->r, f->kind, f->buf, f->cols,
                                            f->labels + f->chunk_begin, f->filled);
      if (rc != 0) return rc;
      f->chunk_begin += f->filled;
      f->filled = 0;
    }
  }
  return 0;
}

int fedc_evaluate_with_report(fedc_trainer *t, const float *w, const fedc_data_view *data,
                              const float *labels, int64_t begin, int64_t end,
                              fedc_eval_sums *sums, fedc_eval_report *r) {
  const fedc_model_spec *spec = fedc_trainer_spec(t);
  report_feed f = {.r = r, .kind = fedc_model_loss_kind(spec), .labels = labels,
                   .cols = spec->n_out, .chunk_begin = begin, .end = end};
  f.chunk = end - begin < 4096 ? end - begin : 4096;
  if (f.chunk <= 0) return fedc_evaluate_each(t, w, data, begin, end, sums, NULL, NULL);
  f.buf = fedc_malloc_array((size_t)f.chunk * (size_t)spec->n_out, sizeof(float));
  if (f.buf == NULL) return fedc_error_set(FEDC_ENOMEM, "evaluate: out of memory");
  int rc = fedc_evaluate_each(t, w, data, begin, end, sums, feed_batch, &f);
  fedc_free(f.buf);
  return rc;
}
