/*
 * eval_rounds.h - the coordinator's federated evaluation (eval_rounds.c):
 * hooks the round machine, the API and the status pages call. All on the
 * loop thread. With [eval] every = 0 there is no evaluation state and
 * every hook does nothing.
 */
#ifndef FEDC_COORD_EVAL_ROUNDS_H
#define FEDC_COORD_EVAL_ROUNDS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator.h"
#include "http_server.h"

typedef struct coord_eval coord_eval;
struct coord_client;

/* At start, after the store is open: the evaluation state and the stored
 * evaluations (resume). FEDC_ECONFIG for a model the report cannot hold. */
int fedc__coord_eval_new(fedc_coord *c);
void fedc__coord_eval_free(fedc_coord *c);
int fedc__coord_eval_enabled(const fedc_coord *c);
/* Round `round` committed (its model now served): close the open
 * evaluation, and open one of this round when it is due. */
void fedc__coord_eval_committed(fedc_coord *c, int32_t round);
/* The deadline check, on every tick. */
void fedc__coord_eval_tick(fedc_coord *c);
/* 1 while an evaluation is open. */
int fedc__coord_eval_open(const fedc_coord *c);
/* 1 when this client was asked to evaluate and has not reported. */
int fedc__coord_eval_has_task(fedc_coord *c, int32_t client_id);
/* Fill a task answer {"action": "evaluate", ...}; 0 when out of memory. */
int fedc__coord_eval_task(fedc_coord *c, cJSON *o);
/* POST /v1/eval. */
void fedc__coord_eval_handle(fedc_coord *c, fedc_http_exchange *x, struct coord_client *cl,
                             const uint8_t *body, size_t len);
/* /v1/status's "eval" object; /metrics' gauges appended to buf. */
void fedc__coord_eval_status(const fedc_coord *c, cJSON *root);
void fedc__coord_eval_metrics(const fedc_coord *c, char *buf, size_t cap);
/* The best round by [eval] select, 0 when none. */
int32_t fedc__coord_eval_best_round(const fedc_coord *c);

#endif
