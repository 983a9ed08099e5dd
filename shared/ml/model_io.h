/*
 * model_io.h - a model's flat weights in and out of the safetensors
 * container, as they cross the wire and go into checkpoints.
 *
 * Decoding is where untrusted bytes meet the model: the container is fully
 * checked (fedc_st_decode), then every tensor's name and shape must be the
 * job's, and every weight finite with |w| < 2^31 (what FedAvg's fixed-point
 * sum accepts), before anything is copied out.
 */
#ifndef FEDC_MODEL_IO_H
#define FEDC_MODEL_IO_H

#include <stddef.h>
#include <stdint.h>

#include "ml/model.h"
#include "wire/safetensors.h"

/* Encode weights w (n_params of spec) with metadata into a new buffer
 * (freed with fedc_free). The container's "sha256" metadata is added. */
int fedc_model_encode(const fedc_model_spec *spec, const float *w,
                      const fedc_st_meta *meta, size_t n_meta, uint8_t **out,
                      size_t *len);

/*
 * Decode and check bytes into w (n_params of spec). On success *file (if
 * not NULL) gets the decoded container for its metadata (free with
 * fedc_st_free). Errors, with the reason in fedc_error_msg:
 *   FEDC_EFORMAT    not a valid container (FEDC_EUNSUPPORTED for a dtype
 *                   other than F32)
 *   FEDC_ECHECKSUM  the sha256 metadata does not match
 *   FEDC_ETOOBIG    header over the limit
 *   FEDC_ESHAPE     tensor names or shapes are not the job's
 *   FEDC_ENONFINITE a weight is NaN, infinite or |w| >= 2^31
 */
int fedc_model_decode(const fedc_model_spec *spec, const uint8_t *bytes,
                      size_t len, float *w, fedc_st_file **file);

#endif
