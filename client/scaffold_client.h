/*
 * scaffold_client.h - SCAFFOLD's client control variate, kept at the site
 * (scaffold_client.c): read from [client] state_dir when the client joins
 * a scaffold job, the correction for each round's training, the variate
 * update and its delta after it (saved atomically before the update is
 * sent), and the update container with the delta.
 */
#ifndef FEDC_CLIENT_SCAFFOLD_H
#define FEDC_CLIENT_SCAFFOLD_H

#include <stddef.h>
#include <stdint.h>

#include "ml/model.h"
#include "wire/safetensors.h"

typedef struct fedc_client_scaffold fedc_client_scaffold;

/* The state of job job_id for models of spec, loaded from state_dir when
 * kept there (created when missing). FEDC_ECONFIG (no state_dir, or
 * unusable), FEDC_EFORMAT (a file that is not this job's), FEDC_EIO,
 * FEDC_ENOMEM. */
int fedc_client_scaffold_new(const char *state_dir, const char *job_id,
                             const fedc_model_spec *spec, fedc_client_scaffold **out);
void fedc_client_scaffold_free(fedc_client_scaffold *s);
/* A round's model container: the weights into w, the server variate kept.
 * FEDC_ESHAPE, FEDC_ENONFINITE as fedc_model_pair_from_tensors. */
int fedc_client_scaffold_model(fedc_client_scaffold *s, const fedc_st_file *f, float *w);
/* Round round starts from x: the correction c - c_i (valid until the next
 * call). */
const float *fedc_client_scaffold_begin(fedc_client_scaffold *s, int32_t round, const float *x);
/* The trainer made y in steps steps of rate lr: c_i+ and the delta,
 * c_i+ saved. */
int fedc_client_scaffold_finish(fedc_client_scaffold *s, int32_t round, const float *y,
                                int64_t steps, float lr);
/* The update: y's tensors and the delta's ("variate_delta."), with the
 * metadata of fedc_client_update_encode. */
int fedc_client_scaffold_encode(const fedc_client_scaffold *s, const float *y, int32_t round,
                                int64_t num_samples, double train_loss, uint8_t **out,
                                size_t *out_len);

#endif
