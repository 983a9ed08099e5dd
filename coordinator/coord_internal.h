/*
 * coord_internal.h - the coordinator's state, shared by its files:
 * coordinator.c (lifecycle and the round state machine), api.c (the HTTP
 * endpoints) and status.c (status JSON, Prometheus metrics).
 *
 * Threads: everything here belongs to the loop thread, except the engine,
 * the store and round_updates, which worker threads (uv_queue_work) use
 * under mu for the heavy work (folding an update into the sum, aggregating,
 * committing). The engine is the one owner of who was selected and who
 * reported; the loop thread asks it under mu, and only while no commit is
 * on a worker (states other than COMMITTING), so that it never waits for
 * one. Clients are referred to by id across callbacks (a pending request
 * never holds a pointer into the growable clients array).
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
#include "http_body.h"
#include "http_server.h"
#include "ml/layout.h"
#include "ml/model.h"
#include "store.h"
#include "certs.h"
#include "client_index.h"
#include "ml/train.h"
#include "wire/update_meta.h"

typedef struct coord_client {
  int32_t id; /* store id */
  char fingerprint[65];
  char name[128];
  int revoked;
  int joined;               /* sent /v1/join since this process started */
  double last_seen;         /* monotonic seconds */
  fedc_http_exchange *poll; /* pending GET /v1/task (its abort finds the
                               client by this pointer, not the reverse) */
  double poll_deadline;
  int64_t updates;          /* updates counted into committed rounds */
  /* report.c: the client's trainer failed a round (POST /v1/report) */
  int32_t failed_round;     /* the last round it failed; 0 for none */
  double failed_opened_at;  /* that round's opening (a round abandoned
                               below quorum opens again, anew) */
  int64_t trainer_failures; /* failures reported since this process started */
  char failure[160];        /* the last one's reason, printable ASCII */
  /* fedbuff (async_rounds.c): the step (round) its last counted update
   * went into (0 = none), and that update's checksum */
  int32_t async_last;
  char async_sha[65];
  int declined;             /* its site's policy refused this job (job_site.c):
                               never selected, never given a task */
  char decline_reason[256];
} coord_client;

/* The round's states (the table is in coordinator.c, round_event). */
typedef enum {
  ROUND_WAITING = 0,    /* no round open; opening when enough clients poll */
  ROUND_OPEN = 1,       /* taking updates (secure aggregation: its phases) */
  ROUND_CLOSING = 2,    /* closed to updates; waiting for those in flight,
                           or to retry a commit that failed */
  ROUND_COMMITTING = 3, /* prepare, durable write, engine commit on a worker */
  ROUND_FINISHED = 4
} round_state;

/* Rejection reasons counted for /metrics, as protocol error codes. */
/* past rounds' checkpoints kept encoded (coordinator.c) */
#define COORD_CKPT_CACHE 4

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

struct fedc_coordinator {
  uv_loop_t *loop;
  fedc_coordinator_params params; /* callbacks and user data */
  fedc_config cfg;
  fedc_model_spec spec;   /* a built-in model's (type tensors: nothing else) */
  size_t n_params;        /* the engine's model: the layout's float values */
  /* the job's tensors and its integer tensors' values (tensor_job.c):
   * committed, this round's fold, a prepared commit's; under mu */
  fedc_layout layout;
  int64_t *ints, *ints_acc, *ints_next;
  char job_id[33];
  char *job_json; /* the "job" object of /v1/join (without "round") */
  char *audit_params; /* the rounds' audit records' "params" (audit.h) */
  /* certificate expiry (cert_watch.c): the server's, and the clients' the
   * store knows, refreshed with the client list */
  double server_not_after; /* unix seconds; 0 = unknown */
  fedc__cert_row *certs;
  int32_t n_certs;

  pthread_mutex_t mu; /* engine, store, round_updates, last_* below */
  fedc_engine *engine;
  fedc_store *store;
  fedc_store_update *round_updates; /* rows for the store, accepted in the
                                       open round (not who reported: the engine) */
  int32_t n_round_updates, round_updates_cap;

  fedc_http_server *server, *status_server;
  uv_timer_t tick;

  coord_client *clients;
  int32_t n_clients, clients_cap;
  int clients_unsorted;              /* an id appended below the last: by_id scans */
  fedc__client_index clients_by_fpr; /* fingerprint -> position in clients
                                        (client_index.c), kept by client_add */

  round_state state;
  int32_t round;          /* open, or next to open (the engine's, mirrored) */
  /* the engine's counts as the commit began, shown by /v1/status while a
   * commit holds the engine (COMMITTING only): a picture of the closed
   * round taken once, not a record of who was selected or reported */
  int32_t commit_selected, commit_reported;
  double round_opened_at, round_deadline, quorum_since;
  /* a round abandoned below quorum opens again no sooner than reopen_at:
   * a pause that doubles with each abandonment in a row (round.c) */
  double reopen_at;
  int32_t abandoned_in_row;
  int32_t inflight;       /* update work items queued or running */
  int32_t other_work;     /* joins and checkpoint reads on workers */
  int32_t commit_failures; /* consecutive failed commits of this round */
  double commit_retry_at;
  int finished_told;      /* on_finished ran */

  /* the current round's start model, encoded: made by the commit worker
   * (or at start) and handed over; the loop thread alone reads it.
   * model_body owns the bytes and is what every download sends from
   * (model_serve.c); model_bytes and model_len point into it */
  fedc_http_body *model_body;
  uint8_t *model_bytes;
  size_t model_len;
  char model_sha[65];
  /* the current model as a lossless delta from the previous round's
   * (model_serve.c; [server] model_deltas), or NULL; downloads of the
   * current model: [0] whole, [1] as a delta, and the bytes of those
   * answered whole (no Range) */
  fedc_http_body *delta_body;
  uint64_t model_sent[2], model_sent_bytes[2];
  /* large-model mode (large_model.c): FedAvg's sums' file, "" when off */
  char spill_path[FEDC_CONFIG_PATH_MAX + 8];
  fedc_http_body *global_body; /* large-model mode: its values are the engine's global model */
  fedc_http_body *large_delta; /* large-model mode: the commit's delta file, mapped (large_delta.c) */

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
  uint64_t updates_capped; /* weights cut by [strategy] max_client_share */
  /* past rounds' checkpoints (coordinator.c): a few kept encoded on the
   * loop thread; a miss is read by one worker at a time with the store
   * connection of its own (ckpt_store), never under mu */
  struct {
    int32_t round; /* 0 = empty */
    fedc_http_body *body;
    uint64_t used;
  } ckpt_cache[COORD_CKPT_CACHE];
  uint64_t ckpt_tick;
  int ckpt_reading;
  fedc_store *ckpt_store;
  double last_round_secs;

  int refreshing; /* a client-list refresh is on a worker */
  double last_refresh;

  int budget_stop; /* the job ended at its DP epsilon budget */
  struct coord_secagg *secagg; /* secure aggregation (secagg_rounds.c); NULL when off */
  struct coord_stats *stats;   /* schema and statistics (stats_phase.c); NULL without a schema */
  struct coord_eval *eval;     /* federated evaluation (eval_rounds.c); NULL when off */
  int async_rounds;            /* fedbuff: asynchronous steps (async_rounds.c) */
  struct coord_async *async;
  struct coord_uploads *uploads; /* chunked uploads (upload_api.c); NULL until the first */
  int stopping;
  int stopped;        /* on_stopped ran */
  int free_when_closed; /* a failed start: free once the tick is closed */
  int exit_code;
};

double fedc__coord_now(void);
coord_client *fedc__coord_client_by_fpr(fedc_coord *c, const char *fpr);
coord_client *fedc__coord_client_by_id(fedc_coord *c, int32_t id);
int fedc__coord_client_add(fedc_coord *c, const fedc_store_client *sc,
                           coord_client **out);
/* 1 when the client should train now: selected in the open round, not yet
 * reported, not started on secure aggregation (asks the engine). */
int fedc__coord_has_task(fedc_coord *c, int32_t client_id);
/* 1 when the client is selected in the open round (asks the engine). */
int fedc__coord_is_selected(fedc_coord *c, int32_t client_id);
/* round.c: the round state machine's events (the table is in round.c) */
typedef enum { EV_STEP, EV_COMMIT_DONE } coord_event;
struct commit_work;
void fedc__coord_round_event(fedc_coord *c, coord_event ev, struct commit_work *w);
/* Re-evaluate the round state machine (open, close) now: EV_STEP. */
void fedc__coord_step(fedc_coord *c);
/* Encode w and ints (the integer tensors) as the start model of round + 1,
 * with its SHA-256 (any thread). */
int fedc__coord_encode_model(const fedc_coord *c, const float *w, const int64_t *ints,
                             int32_t round, uint8_t **bytes, size_t *len, char sha[65]);
/* After a worker finished: stop if asked to, else step. */
void fedc__coord_worker_done(fedc_coord *c);
/* Answer one pending long-poll with what this client should do now. */
void fedc__coord_answer_poll(fedc_coord *c, coord_client *cl);
/* Queue an update for validation and folding on a worker. */
/* Who may send an update now (selected in the open round, or a resend);
 * 1 to go on, 0 after answering (503 while the round closes, 403, 409). */
int fedc__coord_update_gate(fedc_coord *c, fedc_http_exchange *x, coord_client *cl);
/* Check and fold body (len bytes) on a worker and answer x as POST
 * /v1/update does; body is freed with release(release_ud) when given, else
 * with fedc_free (the gate must have passed). */
void fedc__coord_queue_update(fedc_coord *c, fedc_http_exchange *x, coord_client *cl,
                              uint8_t *body, size_t len, void (*release)(void *ud),
                              void *release_ud);
/* The same for a completed chunked upload whose folds so far are early
 * (upload_fold.h; NULL: none): counted, or taken out, by its update work. */
struct fedc_upload_fold;
void fedc__coord_queue_update_early(fedc_coord *c, fedc_http_exchange *x, coord_client *cl,
                                    uint8_t *body, size_t len, void (*release)(void *ud),
                                    void *release_ud, struct fedc_upload_fold *early);
/* upload_api.c: chunked uploads, /v1/upload and /v1/upload/chunk */
void fedc__coord_upload_handle(fedc_coord *c, fedc_http_exchange *x,
                               const fedc_http_request *req, coord_client *cl);
void fedc__coord_upload_free(fedc_coord *c);
/* The early folds' context (upload_fold.h), NULL before the first upload;
 * and, under mu before a prepare, every uncounted upload's folds taken out
 * (fedc__fold_settle). */
struct fedc_fold_ctx *fedc__coord_fold_ctx(fedc_coord *c);
void fedc__coord_upload_settle(fedc_coord *c);
void fedc__coord_submit_update(fedc_coord *c, fedc_http_exchange *x,
                               coord_client *cl, const uint8_t *body,
                               size_t len);
/* Serve a committed round's model from the store (on a worker), with
 * req's Range (http_range.h). */
void fedc__coord_serve_checkpoint(fedc_coord *c, fedc_http_exchange *x,
                                  const fedc_http_request *req, int32_t round);
/* model_serve.c. Any thread: wrap an encoded model (takes *bytes; *bytes
 * then points into *out, or is NULL after a failure) with its SHA-256,
 * computed here, so that the loop thread never hashes a large model. */
int fedc__coord_model_wrap(uint8_t **bytes, size_t len, fedc_http_body **out);
/* Loop thread: body (whose reference this takes; NULL: none) becomes the
 * model served for the current round; downloads still sending the old one
 * keep it alive until they end. */
void fedc__coord_model_set(fedc_coord *c, fedc_http_body *body, const char sha[65]);
/* model_serve.c, model deltas. Loop thread: the model served now, to
 * encode the next one against (a reference, or NULL when deltas are off
 * or there is none). Commit worker: encode next (round `round`) as a delta
 * from base (round - 1) into *delta (NULL when it cannot be made or would
 * not be smaller; never an error). Loop thread, after
 * fedc__coord_model_set: serve delta (its reference is taken) to clients
 * that hold round - 1's model. */
fedc_http_body *fedc__coord_delta_base(fedc_coord *c);
void fedc__coord_delta_make(fedc_http_body *base, const fedc_http_body *next, int32_t round,
                            fedc_http_body **delta);
void fedc__coord_delta_set(fedc_coord *c, fedc_http_body *delta);
/* Loop thread: GET /v1/model/<round> answered from the current model or a
 * checkpoint, with ranges (docs/protocol.md, "Model downloads"). */
void fedc__coord_model_respond(fedc_coord *c, fedc_http_exchange *x,
                               const fedc_http_request *req, int32_t round);
void fedc__coord_reject(fedc_coord *c, reject_reason r);
/* Answer an update request: 200 accepted (or duplicate), or the error. */
void fedc__coord_answer_update(fedc_http_exchange *x, int status, int32_t round,
                               int duplicate, const char *code, const char *msg);

/* relay_fold.c: a relay's partial sum posted as an update (docs/relays.md).
 * Worker thread: 0 when body is not a partial, 1 when handled (*r says how). */
typedef struct fedc__coord_partial_result {
  int status; /* 200, or the protocol error's */
  reject_reason reason;
  char code[32];
  char msg[384];
  int32_t round;
  int duplicate;
} fedc__coord_partial_result;
int fedc__coord_partial_fold(fedc_coord *c, int32_t client_id, const uint8_t *body,
                             size_t len, fedc__coord_partial_result *r);

/* coded_fold.c: [strategy] compression. The job object's "compression";
 * and a compressed update body decoded to weights (0: not one; 1: *rc
 * says how it went, meta filled on success). */
struct cJSON;
void fedc__coord_compression_json(const fedc_coord *c, struct cJSON *job);
int fedc__coord_coded_decode(fedc_coord *c, const uint8_t *body, size_t len, float *weights,
                             fedc_update_meta *meta, char sha_hex[65], int *rc);

/* api.c */
int fedc__coord_query_double(const char *q, const char *key, double *out);
void fedc__coord_handle(void *ctx, fedc_http_exchange *x,
                        const fedc_http_request *req);
void fedc__coord_handle_status_only(void *ctx, fedc_http_exchange *x,
                                    const fedc_http_request *req);
/* Header-time admission (fedc_http_admit_cb): the refusals the handlers
 * would answer that need no body (unknown path, wrong method, a client not
 * allowed), decided before the body is read. */
int fedc__coord_admit(void *ctx, const fedc_http_request *req,
                      const char **code, char *msg, size_t cap);
int fedc__coord_admit_status_only(void *ctx, const fedc_http_request *req,
                                  const char **code, char *msg, size_t cap);
/* The status listener serves GETs only: the largest body it reads. */
#define STATUS_MAX_BODY ((size_t)1024)
/* report.c: POST /v1/report, a client's trainer failed the open round
 * (docs/protocol.md). The coordinator records it and stops waiting for
 * that client in that round. */
void fedc__coord_handle_report(fedc_coord *c, fedc_http_exchange *x, coord_client *cl,
                               const uint8_t *body, size_t len);
/* 1 when this client reported a failure in the open round. */
int fedc__coord_report_failed(const fedc_coord *c, int32_t client_id);
/* 1 when every selected client of the open round has sent its update or
 * reported a failure, and at least one failed (locks mu). */
int fedc__coord_report_all_done(fedc_coord *c);
/* Failures reported since this process started, all clients. */
uint64_t fedc__coord_report_total(const fedc_coord *c);
/* secagg_rounds.c: secure aggregation ([privacy] secure_aggregation). Every
 * call but _init is made only when c->secagg is set. */
/* at start: checks the config; debug_dir: where masked updates are written (NULL: not) */
int fedc__coord_secagg_init(fedc_coord *c, const char *debug_dir);
void fedc__coord_secagg_free(fedc_coord *c);
/* a round was opened with these clients selected (fedc_engine_open's
 * answer: handed to the protocol object as its parties, not kept) */
void fedc__coord_secagg_open(fedc_coord *c, const int32_t *selected, int32_t n);
/* 1 once the client has started the round's protocol (or it is too late to):
 * it gets no train task */
int fedc__coord_secagg_started(const fedc_coord *c, int32_t client);
/* The open round's phases; 1 when the round should close. */
int fedc__coord_secagg_step(fedc_coord *c, double now);
void fedc__coord_secagg_fold(fedc_coord *c);       /* commit worker, under mu */
void fedc__coord_secagg_end(fedc_coord *c, int committed); /* or abandoned */
/* 1 when the client revealed wrong shares in a secure round: not selected
 * again; the count of such exclusions for /metrics */
int fedc__coord_secagg_excluded(const fedc_coord *c, int32_t client);
uint64_t fedc__coord_secagg_excluded_total(const fedc_coord *c);
void fedc__coord_secagg_update(fedc_coord *c, fedc_http_exchange *x,
                               coord_client *cl, const uint8_t *body,
                               size_t len);
void fedc__coord_secagg_handle(fedc_coord *c, fedc_http_exchange *x,
                               const fedc_http_request *req, coord_client *cl);
/* The statistics session before round 1 (secure aggregation with a schema,
 * stats_phase.c): _open with its parties and vector length; _wants: 1 for
 * a party that has not advertised yet (its "stats" task); _step: 0 going
 * on, 1 ready to finish, -1 failed or none; _sum: unmask into sum (n
 * words); _end: drop it; _masked: POST /v1/stats's masked words. */
int fedc__coord_secagg_stats_open(fedc_coord *c, const int32_t *parties, int32_t n,
                                  size_t words);
int fedc__coord_secagg_stats_wants(const fedc_coord *c, int32_t client);
int fedc__coord_secagg_stats_step(fedc_coord *c, double now);
int fedc__coord_secagg_stats_sum(fedc_coord *c, uint32_t *sum, size_t n, int32_t *survivors,
                                 int32_t *dropped);
void fedc__coord_secagg_stats_end(fedc_coord *c);
void fedc__coord_secagg_stats_masked(fedc_coord *c, fedc_http_exchange *x, coord_client *cl,
                                     const uint8_t *body, size_t len);
struct cJSON;
/* selected: the open round's selection size, as /v1/status has it (asked
 * of the engine, or the picture taken as the commit began) */
void fedc__coord_secagg_status(const fedc_coord *c, struct cJSON *o, int32_t selected);

/* tensor_job.c: the layout and the integer tensors. _init builds the
 * layout and the initial model (*w_init, new: the seeded built-in model
 * or [model] init's float values; init's integers into ints) and sets
 * n_params; FEDC_ECONFIG naming the key for a bad init file or rule. */
int fedc__coord_tensors_init(fedc_coord *c, float **w_init);
void fedc__coord_tensors_free(fedc_coord *c);
/* add "tensors": [{"name","dtype","shape"}, ...] to the job's model object */
int fedc__coord_tensors_job_json(const fedc_coord *c, struct cJSON *model);
/* a tensor job's identity for fedc_store_job_bind (new string, fedc_free) */
char *fedc__coord_tensors_spec_json(const fedc_coord *c);
/* under mu: after the engine counted an update, fold its integers; at a
 * commit, the integers it makes current (after fedc_engine_close_prepare),
 * then make them current (with fedc_engine_close_commit) */
void fedc__coord_tensors_fold(fedc_coord *c, const int64_t *ints);
const int64_t *fedc__coord_tensors_prepare(fedc_coord *c);
void fedc__coord_tensors_commit(fedc_coord *c);

/* job_site.c: what sites see of the job and how they refuse it. The job
 * object's fields a site's policy reads ("dataset", "privacy"); POST
 * /v1/decline {"reason": "..."}; the "declined" list of /v1/status. */
void fedc__coord_job_fields(const fedc_coord *c, struct cJSON *job);
/* dp_sites.c: noise at the sites ([privacy] noise_at = sites) */
void fedc__coord_dp_site_fields(const fedc_coord *c, struct cJSON *privacy);
double fedc__coord_secagg_clip(const fedc_coord *c); /* the masked words' clamp */
int fedc__coord_dp_site_weights(const fedc_coord *c, const int32_t *ids,
                                const uint64_t *samples, int32_t k);
void fedc__coord_decline(fedc_coord *c, fedc_http_exchange *x, const fedc_http_request *req,
                         coord_client *cl);
void fedc__coord_declines_status(const fedc_coord *c, struct cJSON *o);
/* POST /v1/join?probe=1 (a site service reading the job before its policy
 * decides): the client is not eligible until it asks for work. */
int fedc__coord_join_is_probe(const char *query);

/* status.c: new strings freed with fedc_free */
char *fedc__coord_status_json(fedc_coord *c);
char *fedc__coord_metrics_text(fedc_coord *c);

/* cert_watch.c: read the server certificate's expiry and warn if it is
 * near; take a new list of the clients' certificates (owned from then on)
 * and warn of those expiring within FEDC_PKI_WARN_DAYS, once each. */
void fedc__coord_certs_start(fedc_coord *c);
void fedc__coord_certs_update(fedc_coord *c, fedc__cert_row *rows, int32_t n);

/* large_model.c: large-model mode ([server] spill_above_mb). For a model
 * over the threshold, set pp's spill path (FedAvg's sums in <store>.acc),
 * or refuse what the mode cannot run (FEDC_ECONFIG, naming the key); 0
 * and nothing changed for a smaller model. */
int fedc__coord_large_mode(fedc_coord *c, struct fedc_pipeline_params *pp);
/* The engine's global model made body's values (large-model mode; nothing
 * otherwise); a large model's commit with the next model computed into its
 * own container (1 when it applied, *rc its result; 0: the usual path). */
void fedc__coord_large_adopt(fedc_coord *c, fedc_http_body *body);
int fedc__coord_large_commit(fedc_coord *c, fedc_round_metrics *m, const float **next,
                             uint8_t **bytes, size_t *len, char sha[65], int *rc);
/* A large model's commit: the served body dropped as it starts (loop
 * thread), served again after a round abandoned below quorum, and the
 * engine's global model read back from the store after an abort (worker;
 * FEDC_E* when it cannot be). No-ops for other jobs. */
void fedc__coord_large_commit_begin(fedc_coord *c);
void fedc__coord_large_commit_abandoned(fedc_coord *c);
int fedc__coord_large_readopt(fedc_coord *c);
/* A large model's start (restore): its start container held once (*held,
 * *values its floats; NULL: the usual start), then adopted by the engine
 * made from it. */
int fedc__coord_large_start(fedc_coord *c, float **w, int32_t last, fedc_http_body **held,
                            const float **values);
void fedc__coord_large_started(fedc_coord *c, fedc_http_body *held, const float *values);
/* large_delta.c: the delta from prev (served for round - 1) to next (round)
 * encoded in slices into <store>.delta and mapped into c->large_delta
 * (commit worker, under mu; nothing when deltas are off or no smaller);
 * taken by the commit; the files dropped (start, shutdown). */
void fedc__coord_large_delta(fedc_coord *c, const fedc_http_body *prev, const uint8_t *next,
                             size_t next_len, int32_t round);
fedc_http_body *fedc__coord_large_delta_take(fedc_coord *c);
void fedc__coord_large_delta_reset(fedc_coord *c);
/* An update of a large-model job decoded in place (its F32 values where
 * they lie in body): 1 with *w and *file set, 0 for the copying path. */
int fedc__coord_update_view(const fedc_coord *c, const uint8_t *body, size_t len,
                            const float **w, fedc_st_file **file);

/* scaffold_wire.c: SCAFFOLD's variates in the containers served and
 * received (docs/protocol.md). on: the job's strategy keeps variates.
 * model_encode/model_decode replace fedc_model_encode/decode for the
 * model containers (with the "variate." tensors when on); update_decode
 * reads an update's weights and "variate_delta." tensors. */
int fedc__coord_scaffold_on(const fedc_coord *c);
int fedc__coord_model_encode(const fedc_coord *c, const float *w, const int64_t *ints,
                             const fedc_st_meta *meta, size_t n_meta, uint8_t **out, size_t *len);
int fedc__coord_model_decode(const fedc_coord *c, const uint8_t *bytes, size_t len, float *w,
                             int64_t *ints);
int fedc__coord_update_decode(const fedc_coord *c, const uint8_t *bytes, size_t len, float *w,
                              float *dc, fedc_st_file **file);

/* async_rounds.c: FedBuff over the wire. on: the job's strategy is
 * asynchronous. init after the engine is restored; has_task replaces the
 * selection; update runs on a worker (decode, delta against the update's
 * base version, the engine's staleness-weighted fold, and a step's commit
 * to the store); update_done on the loop thread serves a committed step;
 * event is the state machine of an asynchronous job. */
typedef struct coord_async_result {
  int status; /* 200, or the refusal */
  int reason; /* reject_reason */
  char code[32];
  char msg[384];
  int32_t round;
  int duplicate;
  int32_t staleness;
  struct {
    int stepped, fatal;
    fedc_round_metrics m;
    fedc_store_round row;
    fedc_http_body *body; /* owns model (fedc__coord_model_wrap) */
    uint8_t *model;
    size_t model_len;
    char sha[65];
    char err[384];
  } step;
} coord_async_result;
int fedc__coord_async_on(const fedc_coord *c);
int fedc__coord_async_init(fedc_coord *c);
void fedc__coord_async_free(fedc_coord *c);
int fedc__coord_async_has_task(fedc_coord *c, int32_t client_id);
void fedc__coord_async_update(fedc_coord *c, int32_t client_id, const uint8_t *body, size_t len,
                              coord_async_result *r);
void fedc__coord_async_update_done(fedc_coord *c, coord_async_result *r);
void fedc__coord_async_event(fedc_coord *c);

#endif
