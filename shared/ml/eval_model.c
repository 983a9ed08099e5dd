/*
 * eval_model.c - a built-in model's evaluation report on a range of rows:
 * the forward pass in batches (fedc_predict), the outputs read as the
 * model's loss head reads them (fedc_eval_report_add_outputs); and the
 * report together with the loss sums in one forward pass (for softmax,
 * one exponential per logit for both).
 */
#include "ml/eval_model.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "ml/xent_row.h"

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
 * fedc_evaluate_report hands them. For softmax (sums not NULL) each row's
 * cross-entropy and arg max are computed once, as the batch arrives: the
 * batch's sum goes to the loss sums exactly as the CPU backend's loss adds
 * it, and the rows' values to the report with the chunk. */
typedef struct report_feed {
  fedc_eval_report *r;
  fedc_loss_kind kind;
  const float *labels;
  float *buf;
  double *row_loss;   /* softmax: chunk rows */
  int32_t *row_arg;   /* softmax: chunk rows */
  fedc_eval_sums *sums; /* softmax: the loss sums this feed computes */
  int32_t cols;
  int64_t chunk, chunk_begin, filled, end;
} report_feed;

static int feed_batch(void *ctx, const float *out, int64_t row, int32_t rows) {
  report_feed *f = ctx;
  (void)row;
  int32_t i = 0;
  double loss = 0.0;
  int64_t ok = 0;
  while (i < rows) {
    int64_t take = f->chunk - f->filled < rows - i ? f->chunk - f->filled : rows - i;
    const float *src = out + (size_t)i * (size_t)f->cols;
    memcpy(f->buf + (size_t)f->filled * (size_t)f->cols, src,
           (size_t)take * (size_t)f->cols * sizeof(float));
    if (f->sums != NULL) {
      const float *lab = f->labels + f->chunk_begin + f->filled;
      for (int64_t q = 0; q < take; q++) {
        float y = lab[q];
        int32_t arg = 0;
        double v = NAN; /* a bad label: the report refuses the chunk */
        if (y >= 0.0f && y < (float)f->cols && y == floorf(y)) {
          v = fedc__xent_row(src + (size_t)q * (size_t)f->cols, f->cols, (int32_t)y, &arg);
          ok += arg == (int32_t)y;
        }
        loss += v;
        f->row_loss[f->filled + q] = v;
        f->row_arg[f->filled + q] = arg;
      }
    }
    f->filled += take;
    i += (int32_t)take;
    if (f->filled == f->chunk || f->chunk_begin + f->filled == f->end) {
      const float *lab = f->labels + f->chunk_begin;
      int rc = f->sums != NULL
                   ? fedc__eval_report_add_scored(f->r, f->buf, lab, f->filled, f->row_loss,
                                                  f->row_arg)
                   : fedc_eval_report_add_outputs(f->r, f->kind, f->buf, f->cols, lab, f->filled);
      if (rc != 0) return rc;
      f->chunk_begin += f->filled;
      f->filled = 0;
    }
  }
  if (f->sums != NULL) {
    f->sums->loss_sum += loss;
    f->sums->correct += ok;
    f->sums->n += rows;
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
  int softmax = f.kind == FEDC_LOSS_SOFTMAX_XENT && r->task == FEDC_EVAL_MULTICLASS &&
                r->n_classes == spec->n_out;
  f.buf = fedc_malloc_array((size_t)f.chunk * (size_t)spec->n_out, sizeof(float));
  if (softmax) {
    f.row_loss = fedc_malloc_array((size_t)f.chunk, sizeof(double));
    f.row_arg = fedc_malloc_array((size_t)f.chunk, sizeof(int32_t));
    f.sums = sums;
  }
  int rc = 0;
  if (f.buf == NULL || (softmax && (f.row_loss == NULL || f.row_arg == NULL)))
    rc = fedc_error_set(FEDC_ENOMEM, "evaluate: out of memory");
  if (rc == 0)
    rc = fedc_evaluate_each(t, w, data, begin, end, softmax ? NULL : sums, feed_batch, &f);
  fedc_free(f.buf);
  fedc_free(f.row_loss);
  fedc_free(f.row_arg);
  return rc;
}
