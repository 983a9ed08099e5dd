/*
 * eval_model.h - evaluation reports (eval_report.h) of the built-in models.
 *
 *     fedc_eval_report *r = fedc_malloc(sizeof *r);
 *     fedc_eval_report_init_for(r, spec, 0.5);
 *     fedc_evaluate_report(trainer, w, &view, y, 0, n, r);
 */
#ifndef FEDC_EVAL_MODEL_H
#define FEDC_EVAL_MODEL_H

#include <stdint.h>

#include "ml/eval_report.h"
#include "ml/train.h"

/* A zeroed report of the task spec's model solves (its class count; the
 * threshold is used by binary models only). FEDC_EINVAL as
 * fedc_eval_report_init (a softmax of more than 64 classes). */
int fedc_eval_report_init_for(fedc_eval_report *r, const fedc_model_spec *spec, double threshold);

/* Add rows [begin, end) of data, evaluated with parameters w (host), to r;
 * labels is the host copy of the data's labels (indexed like the rows).
 * Backend errors, FEDC_ENOMEM, or fedc_eval_report_add_*'s FEDC_EINVAL. */
int fedc_evaluate_report(fedc_trainer *t, const float *w, const fedc_data_view *data,
                         const float *labels, int64_t begin, int64_t end, fedc_eval_report *r);

/* fedc_evaluate's sums and fedc_evaluate_report's report of rows [begin,
 * end) from one forward pass: the same figures, to the bit, as the two
 * calls, in half the time. Errors as those two. */
int fedc_evaluate_with_report(fedc_trainer *t, const float *w, const fedc_data_view *data,
                              const float *labels, int64_t begin, int64_t end,
                              fedc_eval_sums *sums, fedc_eval_report *r);

#endif
