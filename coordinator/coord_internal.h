/*
 * coord_internal.h - the coordinator's state, shared by its files:
 * coordinator.c (lifecycle and the round state machine), api.c (the HTTP
 * endpoints) and status.c (status JSON, Prometheus metrics).
 *
 * Threads: everything here belongs to the loop thread, except the engine
 * and the store, which worker threads (uv_queue_work) use under mu for the
 * heavy work (folding an update into the sum, aggregating, committing).
 */
#ifndef FEDC_COORD_INTERNAL_H
#define FEDC_COORD_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "coordinator.h"
#include "data/data.h"
#include "round/engine.h"
#include "http_server.h"
#include "ml/model.h"
#include "store.h"
#include "ml/train.h"

typedef struct coord_client {
  int32_t id; /* store id */
  char fingerprint[65];
  char name[128];
  int revoked;
  int joined;               /* sent /v1/join since this process started */
  double last_seen;         /* monotonic seconds */
  fedc_http_exchange *poll; /* pending GET /v1/task */
  double poll_deadline;
  int64_t updates;          /* updates counted into committed rounds */
} coord_client;

typedef enum {
  ROUND_WAITING = 0, /* no round open; opening when enough clients poll */
  ROUND_OPEN = 1,
  ROUND_CLOSING = 2, /* commit (or abandon) on a worker */
  ROUND_FINISHED = 3
} round_state;

/* Rejection reasons counted for /metrics, as protocol error codes. */
#define COORD_REJECT_REASONS(X)                                            \
  X(bad_request) X(bad_container) X(bad_dtype) X(bad_shape) X(non_finite)   \
  X(bad_checksum) X(bad_metadata) X(forbidden) X(not_selected)              \
  X(stale_round) X(too_large) X(unavailable)

typedef enum {
#define X(name) REJECT_##name,
  COORD_REJECT_REASONS(X)
#undef X
  REJECT_COUNT
} reject_reason;

struct fedc_coord {
  uv_loop_t *loop;
  fedc_config cfg;
  fedc_model_spec spec;
  size_t n_params;
  char job_id[33];
  char *job_json; /* the "job" object of /v1/join (without "round") */

  pthread_mutex_t mu; /* engine, store, round_updates, last_* below */
  fedc_engine *engine;
  fedc_store *store;
  fedc_store_update *round_updates; /* accepted in the open round */
  int32_t n_round_updates, round_updates_cap;
  int32_t last_committed;
  int32_t *last_reporters; /* client ids counted in last_committed */
  int32_t n_last_reporters;

  fedc_http_server *server, *status_server;
  uv_timer_t tick;
  uv_signal_t sig_term, sig_int;

  coord_client *clients;
  int32_t n_clients, clients_cap;

  round_state state;
  int32_t round;          /* open, or next to open */
  int32_t *selected;      /* client ids */
  uint8_t *reported;      /* per selected slot */
  int32_t n_selected, n_reported;
  int32_t selected_cap;
  double round_opened_at, round_deadline, quorum_since;
  int32_t inflight;       /* update work items queued or running */
  int close_wanted;

  uint8_t *model_bytes;   /* the current round's start model, encoded */
  size_t model_len;
  char model_sha[65];

  fedc_store_round *history; /* committed rounds, for status */
  int32_t n_history, history_cap;

  int has_test;
  fedc_dataset test;
  fedc_backend *eval_be;
  fedc_trainer *eval_tr;
  fedc_data_view test_view;

  /* metrics */
  uint64_t rounds_committed, rounds_abandoned, updates_accepted,
      updates_duplicate;
  uint64_t rejected[REJECT_COUNT];
  double last_round_secs;

  int refreshing; /* a client-list refresh is on a worker */
  double last_refresh;

  int budget_stop; /* the job ended at its DP epsilon budget */
  struct coord_secagg *secagg; /* secure aggregation (secagg_rounds.c); NULL when off */
  int stopping;
  int exit_code;
  int closed_handles;
};

double fedc__coord_now(void);
coord_client *fedc__coord_client_by_fpr(fedc_coord *c, const char *fpr);
coord_client *fedc__coord_client_by_id(fedc_coord *c, int32_t id);
int fedc__coord_client_add(fedc_coord *c, const fedc_store_client *sc,
                           coord_client **out);
int32_t fedc__coord_slot_of(const fedc_coord *c, int32_t client_id);
/* Re-evaluate the round state machine (open, close) now. */
void fedc__coord_step(fedc_coord *c);
/* Answer one pending long-poll with what this client should do now. */
void fedc__coord_answer_poll(fedc_coord *c, coord_client *cl);
/* Queue an update for validation and folding on a worker. */
void fedc__coord_submit_update(fedc_coord *c, fedc_http_exchange *x,
                               coord_client *cl, const uint8_t *body,
                               size_t len);
/* Serve a committed round's model from the store (on a worker). */
void fedc__coord_serve_checkpoint(fedc_coord *c, fedc_http_exchange *x,
                                  int32_t round);
void fedc__coord_reject(fedc_coord *c, reject_reason r);
/* Answer an update request: 200 accepted (or duplicate), or the error. */
void fedc__coord_answer_update(fedc_http_exchange *x, int status, int32_t round,
                               int duplicate, const char *code, const char *msg);

/* api.c */
int fedc__coord_query_double(const char *q, const char *key, double *out);
void fedc__coord_handle(void *ctx, fedc_http_exchange *x,
                        const fedc_http_request *req);
void fedc__coord_handle_status_only(void *ctx, fedc_http_exchange *x,
                                    const fedc_http_request *req);
/* secagg_rounds.c: secure aggregation ([privacy] secure_aggregation). Every
 * call but _init is made only when c->secagg is set. */
int fedc__coord_secagg_init(fedc_coord *c);        /* at start: checks the config */
void fedc__coord_secagg_free(fedc_coord *c);
void fedc__coord_secagg_open(fedc_coord *c);       /* a round was opened */
/* 1 once the client has started the round's protocol (or it is too late to):
 * it gets no train task */
int fedc__coord_secagg_started(const fedc_coord *c, int32_t client);
/* The open round's phases; 1 when the round should close. */
int fedc__coord_secagg_step(fedc_coord *c, double now);
void fedc__coord_secagg_fold(fedc_coord *c);       /* commit worker, under mu */
void fedc__coord_secagg_end(fedc_coord *c, int committed); /* or abandoned */
void fedc__coord_secagg_update(fedc_coord *c, fedc_http_exchange *x,
                               coord_client *cl, const uint8_t *body,
                               size_t len);
void fedc__coord_secagg_handle(fedc_coord *c, fedc_http_exchange *x,
                               const fedc_http_request *req, coord_client *cl);
struct cJSON;
void fedc__coord_secagg_status(const fedc_coord *c, struct cJSON *o);

/* status.c: new strings freed with fedc_free */
char *fedc__coord_status_json(fedc_coord *c);
char *fedc__coord_metrics_text(fedc_coord *c);

#endif
