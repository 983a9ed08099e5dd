/*
 * model_describe.h - what a model fedc writes says about itself
 * (safetensors metadata, all strings), shared by the coordinator's models
 * and fedc-sim's --save: the model type, its output head and link, the
 * hidden activation, the class labels, the job and round, the fedc
 * version; and, for a job with a schema, the feature names, the schema and
 * the preprocessing (means, standard deviations, one-hot encodings,
 * imputation). fedc-predict and the Python recipe in docs/predict.md read
 * these.
 */
#ifndef FEDC_ML_MODEL_DESCRIBE_H
#define FEDC_ML_MODEL_DESCRIBE_H

#include <stddef.h>
#include <stdint.h>

#include <fedc/tensors.h>

#include "data/schema.h"
#include "ml/model.h"

#define FEDC_MODEL_DESC_MAX 20

typedef struct fedc_model_desc {
  fedc_st_meta meta[FEDC_MODEL_DESC_MAX];
  size_t n;
  char round[16], head[16];
  char *classes, *features, *schema, *prep; /* owned */
} fedc_model_desc;

/*
 * Fill *m for the model of spec after `round` committed rounds of job
 * job_id. s, mean and std (s->d each) are the job's schema and the
 * federation's moments, or NULL for a job without a schema; the class
 * labels are the schema's declared ones ([data] class_labels) when it has
 * them, else "0", "1", .... extra (n_extra entries, kept by pointer) are
 * appended. Errors: FEDC_ENOMEM, FEDC_EINVAL (too many entries).
 */
int fedc_model_describe(const fedc_model_spec *spec, const char *job_id, int32_t round,
                        const fedc_schema *s, const double *mean, const double *std,
                        const fedc_st_meta *extra, size_t n_extra, fedc_model_desc *m);
void fedc_model_desc_free(fedc_model_desc *m);

#endif
