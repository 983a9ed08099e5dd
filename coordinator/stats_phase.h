/*
 * stats_phase.h - the coordinator's statistics phase and site warnings
 * (stats_phase.c), for a job with a schema. Every function is a no-op (or
 * answers "no") when the job has none.
 */
#ifndef FEDC_COORD_STATS_PHASE_H
#define FEDC_COORD_STATS_PHASE_H

#include <stdint.h>

#include "data/data.h"
#include "data/schema.h"
#include "http_server.h"

struct fedc_coordinator;
struct coord_client;
struct cJSON;

/* At start, before the model's spec: the schema from the config; sets
 * [model] inputs to its width. Errors: FEDC_ECONFIG, FEDC_ENOMEM. */
int fedc__coord_stats_init(struct fedc_coordinator *c);
/* After the store is open and the job object made: the committed
 * statistics if any (then the test set is standardized), and the job object
 * has "schema" added (and "stats"). */
int fedc__coord_stats_start(struct fedc_coordinator *c);
void fedc__coord_stats_free(struct fedc_coordinator *c);
/* [data] test read by the schema (raw; standardized once stats are known). */
int fedc__coord_stats_load_test(struct fedc_coordinator *c, fedc_dataset *out);
/* 1 while the statistics are not yet combined (closing the phase when it is
 * due): no round opens. */
int fedc__coord_stats_pending(struct fedc_coordinator *c, double now);
/* 1 when this client's statistics are wanted now (task "stats"). */
int fedc__coord_stats_wants(const struct fedc_coordinator *c, int32_t client_id);
/* POST /v1/stats and POST /v1/warn. */
void fedc__coord_stats_handle(struct fedc_coordinator *c, fedc_http_exchange *x,
                              const fedc_http_request *req, struct coord_client *cl);
/* Count and keep a warning ("far" or "diverged") for /metrics and status. */
void fedc__coord_stats_warn(struct fedc_coordinator *c, int32_t client, int32_t round,
                            const char *kind, const char *detail);
void fedc__coord_stats_metrics(const struct fedc_coordinator *c, uint64_t *far,
                               uint64_t *diverged);
void fedc__coord_stats_status(const struct fedc_coordinator *c, struct cJSON *root);
/* The federation's means (and *std), or NULL before they are known. */
const double *fedc__coord_stats_moments(const struct fedc_coordinator *c, const double **std);
const fedc_schema *fedc__coord_stats_schema(const struct fedc_coordinator *c);

#endif
