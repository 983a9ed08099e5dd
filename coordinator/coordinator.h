/*
 * coordinator.h - the coordinator's library-internal header. The public
 * API is <fedc/coordinator.h> (included here); the daemon's own files name
 * the object fedc_coord.
 */
#ifndef FEDC_COORDINATOR_H
#define FEDC_COORDINATOR_H

#include <fedc/coordinator.h>

#include "config/config.h"

typedef struct fedc_coordinator fedc_coord;

/* The job's model spec from a coordinator config ([model] inputs, classes). */
int fedc_coord_model_spec(const fedc_config *cfg, void *spec_out);

#endif
