/*
 * model_meta.c - what a model the coordinator encodes says about itself:
 * the shared self-description (ml/model_describe.c) with the job's id, and
 * for a job with a schema once the federation's statistics are known, its
 * schema and the federation's moments.
 */
#include "coord_internal.h"
#include "model_meta.h"
#include "stats_phase.h"

void fedc__coord_model_meta_free(coord_model_meta *m) { fedc_model_desc_free(m); }

int fedc__coord_model_meta(const fedc_coord *c, int32_t round, coord_model_meta *m) {
  const double *std = NULL;
  const double *mean = fedc__coord_stats_moments(c, &std);
  const fedc_schema *s = fedc__coord_stats_schema(c);
  return fedc_model_describe(&c->spec, c->job_id, round, s, mean, std, NULL, 0, m);
}
