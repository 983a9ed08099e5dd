/*
 * model_pair.h - a model's tensors together with a second vector of the
 * same layout in one safetensors container, the second's tensors named
 * PREFIX + the model's name ("variate.layers.0.weight"). SCAFFOLD sends
 * its server control variate with the model this way ("variate.") and a
 * client's variate delta with its update ("variate_delta."); see
 * docs/protocol.md.
 */
#ifndef FEDC_MODEL_PAIR_H
#define FEDC_MODEL_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include "ml/model.h"
#include "wire/safetensors.h"

#define FEDC_PAIR_PREFIX_MAX 32
#define FEDC_PAIR_NAME_MAX (FEDC_PAIR_PREFIX_MAX + 32)
#define FEDC_PAIR_MAX_TENSORS (4 * FEDC_MODEL_MAX_LAYERS)

/* The tensors of both (w's, then v's PREFIX copies) into t, their names
 * into names; the count in *n. FEDC_EINVAL for a prefix too long. */
int fedc_model_pair_tensors(const fedc_model_spec *spec, const float *w, const char *prefix,
                            const float *v, fedc_st_tensor *t,
                            char names[][FEDC_PAIR_NAME_MAX], size_t *n);

/* Encode w then v (both n_params of spec) with the metadata; *out is freed
 * with fedc_free. */
int fedc_model_pair_encode(const fedc_model_spec *spec, const float *w, const char *prefix,
                           const float *v, const fedc_st_meta *meta, size_t n_meta,
                           uint8_t **out, size_t *len);

/*
 * Read both vectors from a decoded container holding exactly the model's
 * tensors and their PREFIX copies, each with the model's shape: into w and
 * v (either may be NULL to skip it). Values are checked as
 * fedc_model_decode checks an update's (finite, |x| < 2^31). FEDC_ESHAPE
 * (a tensor missing, extra or of the wrong shape), FEDC_ENONFINITE; w and
 * v are left alone on an error.
 */
int fedc_model_pair_from_tensors(const fedc_model_spec *spec, const fedc_st_file *f,
                                 const char *prefix, float *w, float *v);

#endif
