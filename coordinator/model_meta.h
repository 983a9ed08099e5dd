/*
 * model_meta.h - the metadata of the models the coordinator encodes
 * (model_meta.c): what a model says about itself.
 */
#ifndef FEDC_COORD_MODEL_META_H
#define FEDC_COORD_MODEL_META_H

#include <stddef.h>
#include <stdint.h>

#include <fedc/tensors.h>

#include "ml/model_describe.h"

struct fedc_coordinator;

typedef fedc_model_desc coord_model_meta;

/* Fill *m for a model after `round` committed rounds (any thread: reads
 * only what does not change once the statistics are known). Errors:
 * FEDC_ENOMEM. */
int fedc__coord_model_meta(const struct fedc_coordinator *c, int32_t round, coord_model_meta *m);
void fedc__coord_model_meta_free(coord_model_meta *m);

#endif
