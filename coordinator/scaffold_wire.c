/*
 * scaffold_wire.c - SCAFFOLD's control variates over the wire, the
 * coordinator's side (docs/protocol.md, "SCAFFOLD"). The server variate c
 * lives in the engine's pipeline, which commits it with the optimizer
 * state of each round and restores it on restart; here it is written into
 * every model container the coordinator serves (tensors "variate." + the
 * model's names, covered by the container's sha256, so a client trains
 * round r with exactly the c committed after round r - 1), and each
 * update's "variate_delta." tensors are read and checked like its weights
 * before the engine folds them (fedc__engine_submit_variate).
 */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "coord_internal.h"
#include "ml/layout.h"
#include "ml/model_io.h"
#include "ml/model_pair.h"

#define VARIATE_PREFIX "variate."
#define DELTA_PREFIX "variate_delta."

int fedc__coord_scaffold_on(const fedc_coord *c) {
  const fedc_strategy_info *info = fedc_strategy_lookup(c->cfg.strategy);
  return info != NULL && (info->caps & FEDC_STRATEGY_VARIATES) != 0;
}

/* The model container: w (and a tensor job's integer tensors ints), and for SCAFFOLD (built-in
 * models only: tensor_job.c refuses it with tensors) the engine's variate (zeros
 * before the engine exists: a new job's initial model). */
int fedc__coord_model_encode(const fedc_coord *c, const float *w, const int64_t *ints,
                             const fedc_st_meta *meta, size_t n_meta, uint8_t **out, size_t *len) {
  if (!fedc__coord_scaffold_on(c))
    return fedc_layout_encode(&c->layout, w, ints, meta, n_meta, out, len);
  const float *v = c->engine ? fedc__engine_variate(c->engine) : NULL;
  float *zeros = NULL;
  if (v == NULL) {
    zeros = fedc_calloc(c->n_params ? c->n_params : 1, sizeof(float));
    if (zeros == NULL) return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
    v = zeros;
  }
  int rc = fedc_model_pair_encode(&c->spec, w, VARIATE_PREFIX, v, meta, n_meta, out, len);
  fedc_free(zeros);
  return rc;
}

/* A stored model container back into w (its variate is restored from the
 * round's optimizer state, not from here). */
int fedc__coord_model_decode(const fedc_coord *c, const uint8_t *bytes, size_t len, float *w,
                             int64_t *ints) {
  if (!fedc__coord_scaffold_on(c)) return fedc_layout_decode(&c->layout, bytes, len, w, ints, NULL);
  fedc_st_file *f = NULL;
  int rc = fedc_st_decode(bytes, len, &f);
  if (rc == 0) rc = fedc_model_pair_from_tensors(&c->spec, f, VARIATE_PREFIX, w, NULL);
  fedc_st_free(f);
  return rc;
}

/*
 * An update of a SCAFFOLD job: the weights into w and the client's
 * variate delta into dc, both checked (names, shapes, finite, below 2^31);
 * *file gets the container for its metadata. Errors as fedc_model_decode.
 */
int fedc__coord_update_decode(const fedc_coord *c, const uint8_t *bytes, size_t len, float *w,
                              float *dc, fedc_st_file **file) {
  *file = NULL;
  fedc_st_file *f = NULL;
  int rc = fedc_st_decode(bytes, len, &f);
  if (rc == 0) rc = fedc_model_pair_from_tensors(&c->spec, f, DELTA_PREFIX, w, dc);
  if (rc == 0) *file = f;
  else fedc_st_free(f);
  return rc;
}
