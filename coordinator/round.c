/*
 * round.c - the coordinator's round state machine: when a round opens,
 * when it closes, its commit on a worker thread, and what a polling client
 * is told. Every transition is made in one function, round_event, from one
 * table (below and docs/coordinator-states.md); the rest of the daemon only
 * signals events into it (fedc__coord_step) and asks the engine, which owns
 * who was selected and who reported.
 *
 * A commit is prepare, durable write, then engine commit: the worker
 * aggregates into the engine's pending model (fedc_engine_close_prepare),
 * evaluates and encodes it, writes the round to the store in one
 * transaction, and only then makes it the engine's global model. A failure
 * before the durable write (out of memory, a store I/O error) aborts the
 * prepare: the engine is as it was, the round stays closed with its
 * updates and is committed again a moment later (under differential
 * privacy too: the abort puts the clip norm and the privacy ledger back,
 * and the retry draws the same noise). Only a failure that repeats
 * COMMIT_TRIES times stops the daemon with FEDC_COORD_EXIT_STORE; started
 * again, it resumes at the last round the store holds. The worker hands the encoded model and its checksum to the
 * loop thread, which serves GET /v1/model from them without a lock.
 */
#include "coord_internal.h"
#include "model_meta.h"
#include "stats_phase.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "eval_rounds.h"
#include "faults.h"
#include "ml/model_io.h"

/* Consecutive failed commits of one round before the daemon gives up. */
#define COMMIT_TRIES 3
/* Seconds between a failed commit and the next try (times the tries). */
#define COMMIT_RETRY_S 0.1

/* ---- the model, encoded ------------------------------------------------- */

/*
 * Encode w as the start model of round `round` + 1 (its metadata says
 * round), with its SHA-256 into sha. Any thread; touches nothing shared.
 */
int fedc__coord_encode_model(const fedc_coord *c, const float *w, const int64_t *ints,
                             int32_t round, uint8_t **bytes, size_t *len, char sha[65]) {
  *bytes = NULL;
  *len = 0;
  coord_model_meta mm; /* model_meta.c: the model describes itself */
  int rc = fedc__coord_model_meta(c, round, &mm);
  if (rc == 0) rc = fedc__coord_model_encode(c, w, ints, mm.meta, mm.n, bytes, len);
  fedc__coord_model_meta_free(&mm);
  if (rc != 0) return rc;
  fedc_st_file *f = NULL;
  rc = fedc_st_decode_ex(*bytes, *len, FEDC_ST_ALLOW_ANY | FEDC_ST_BORROW, &f); /* no copy */
  if (rc == 0) {
    snprintf(sha, 65, "%s", fedc_st_meta_get(f, "sha256"));
    fedc_st_free(f);
    return 0;
  }
  fedc_free(*bytes);
  *bytes = NULL;
  *len = 0;
  return rc;
}

/* ---- the engine's answers ------------------------------------------------ */

/* Only in states where no commit is on a worker: the lock is then short. */
int fedc__coord_is_selected(fedc_coord *c, int32_t client_id) {
  if (c->async_rounds) return fedc__coord_async_has_task(c, client_id);
  if (c->state != ROUND_OPEN && c->state != ROUND_CLOSING) return 0;
  pthread_mutex_lock(&c->mu);
  int sel = fedc_engine_is_selected(c->engine, client_id);
  pthread_mutex_unlock(&c->mu);
  return sel;
}

int fedc__coord_has_task(fedc_coord *c, int32_t client_id) {
  if (c->state == ROUND_WAITING && fedc__coord_stats_wants(c, client_id)) return 1;
  if (c->async_rounds) return fedc__coord_async_has_task(c, client_id);
  if (c->state != ROUND_OPEN) return 0;
  pthread_mutex_lock(&c->mu);
  int task = fedc_engine_is_selected(c->engine, client_id) &&
             !fedc_engine_has_reported(c->engine, c->round, client_id);
  pthread_mutex_unlock(&c->mu);
  return task && !(c->secagg && fedc__coord_secagg_started(c, client_id)) &&
         !fedc__coord_report_failed(c, client_id); /* report.c */
}

/* ---- polls --------------------------------------------------------------- */

static void respond_json(fedc_http_exchange *x, cJSON *obj) {
  char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
  if (text == NULL) {
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
  } else {
    fedc_http_respond(x, 200, "application/json", text, strlen(text), NULL);
    cJSON_free(text);
  }
  cJSON_Delete(obj);
}

/*
 * What the client should do now: finished, train (selected in the open
 * round and not yet reported), or wait. Answers its pending poll.
 */
void fedc__coord_answer_poll(fedc_coord *c, coord_client *cl) {
  fedc_http_exchange *x = cl->poll;
  if (x == NULL) return;
  int task = !cl->declined && fedc__coord_has_task(c, cl->id);
  cl->poll = NULL;
  fedc_http_exchange_on_abort(x, NULL, NULL);
  /* every member or none: a task missing a member would send the client
   * away, an out-of-memory 503 makes it ask again */
  cJSON *o = cJSON_CreateObject();
  int ok = o != NULL;
  if (!cl->declined && fedc__coord_eval_has_task(c, cl->id)) {
    /* evaluate a committed round first: a forward pass, then train */
    ok = ok && fedc__coord_eval_task(c, o);
  } else if (c->state == ROUND_FINISHED) {
    ok = ok && cJSON_AddStringToObject(o, "action", "finished");
    ok = ok && cJSON_AddNumberToObject(o, "round", c->round - 1);
  } else if (task && c->state == ROUND_WAITING) { /* stats_phase.c */
    ok = ok && cJSON_AddStringToObject(o, "action", "stats");
    ok = ok && cJSON_AddNumberToObject(o, "round", 0);
    if (c->secagg) ok = ok && cJSON_AddTrueToObject(o, "secagg"); /* the statistics session */
  } else if (task) {
    double left = c->round_deadline - fedc__coord_now();
    ok = ok && cJSON_AddStringToObject(o, "action", "train");
    ok = ok && cJSON_AddNumberToObject(o, "round", c->round);
    ok = ok && cJSON_AddStringToObject(o, "model_sha256", c->model_sha);
    ok = ok && cJSON_AddNumberToObject(o, "deadline_s", left > 0 ? left : 0);
    if (c->secagg) ok = ok && cJSON_AddTrueToObject(o, "secagg"); /* secagg_rounds.c */
  } else {
    ok = ok && cJSON_AddStringToObject(o, "action", "wait");
    ok = ok && cJSON_AddNumberToObject(o, "round", c->round);
    ok = ok && cJSON_AddNumberToObject(o, "retry_after_ms", 0);
  }
  ok = ok && cJSON_AddStringToObject(o, "job", c->job_id); /* a site service's wait: serve */
  if (!ok) {
    cJSON_Delete(o);
    o = NULL;
  }
  respond_json(x, o);
}

static void answer_all_polls(fedc_coord *c) {
  for (int32_t i = 0; i < c->n_clients; i++)
    if (c->clients[i].poll) fedc__coord_answer_poll(c, &c->clients[i]);
}

/* ---- opening a round ----------------------------------------------------- */

/* Eligible: allowed, joined, and polling now or within the last poll span. */
static int32_t collect_eligible(fedc_coord *c, int32_t *out) {
  double now = fedc__coord_now(), span = c->cfg.server_poll_s + 5.0;
  int32_t n = 0;
  for (int32_t i = 0; i < c->n_clients; i++) {
    coord_client *cl = &c->clients[i];
    /* declined: its site refused the job (job_site.c) */
    if (cl->revoked || !cl->joined || cl->declined) continue;
    if (c->secagg && fedc__coord_secagg_excluded(c, cl->id)) continue; /* lied in secagg */
    if (cl->poll || now - cl->last_seen <= span) out[n++] = cl->id;
  }
  /* by id: the selection then depends only on the seed and who is there */
  for (int32_t i = 1; i < n; i++)
    for (int32_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
      int32_t t = out[j];
      out[j] = out[j - 1];
      out[j - 1] = t;
    }
  return n;
}

static int32_t select_count(const fedc_coord *c) {
  return (int32_t)ceil(c->cfg.clients_per_round * c->cfg.server_over_select - 1e-9);
}

/*
 * WAITING: open a round when every client we would select is polling, or
 * when at least the quorum has been there for a short gathering time (so
 * that the first round does not start with the first client to connect).
 * Returns the next state: OPEN, FINISHED (the DP budget is spent) or
 * WAITING.
 */
static round_state try_open(fedc_coord *c, double now) {
  if (c->model_bytes == NULL) return ROUND_WAITING; /* never without its model */
  if (fedc__coord_stats_pending(c, now)) return ROUND_WAITING; /* statistics first */
  if (now < c->reopen_at) return ROUND_WAITING; /* after an abandoned round */
  int32_t *eligible = fedc_malloc_array((size_t)c->n_clients + 1, sizeof(int32_t));
  if (eligible == NULL) return ROUND_WAITING;
  int32_t n = collect_eligible(c, eligible);
  int32_t want = select_count(c);
  if (n < c->cfg.min_clients) {
    c->quorum_since = 0;
    fedc_free(eligible);
    return ROUND_WAITING;
  }
  if (c->quorum_since == 0) c->quorum_since = now;
  /* everyone who has joined is here: no point waiting for more, except in
   * this process's first round, while clients are still connecting */
  int32_t known = 0;
  for (int32_t i = 0; i < c->n_clients; i++)
    known += !c->clients[i].revoked && c->clients[i].joined;
  int all_here = n >= known && c->rounds_committed + c->rounds_abandoned > 0;
  double gather = fmin(2.0, c->cfg.round_timeout_s / 4.0);
  int32_t *selected = NULL;
  if ((n < want && !all_here && now - c->quorum_since < gather) ||
      (selected = fedc_malloc_array((size_t)want, sizeof(int32_t))) == NULL) {
    fedc_free(eligible);
    return ROUND_WAITING;
  }
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  /* room for every selected client's update row now, so that a worker
   * never has to grow it after the engine has counted an update */
  if (want > c->round_updates_cap) {
    fedc_store_update *u = fedc_realloc(c->round_updates, (size_t)want * sizeof *u);
    if (u) {
      c->round_updates = u;
      c->round_updates_cap = want;
    } else {
      rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
    }
  }
  int32_t n_sel = 0;
  if (rc == 0) rc = fedc_engine_open(c->engine, eligible, n, want, selected, &n_sel);
  c->n_round_updates = 0;
  pthread_mutex_unlock(&c->mu);
  fedc_free(eligible);
  if (rc == FEDC_EBUDGET) {
    /* differential privacy: another round would overspend; the job ends */
    fedc_log_warn("round=%d msg=\"privacy budget reached; job finished\" err=\"%s\"",
                  (int)c->round, fedc_error_msg());
    c->budget_stop = 1;
    fedc_free(selected);
    return ROUND_FINISHED;
  }
  if (rc != 0) {
    fedc_log_warn("round=%d msg=\"cannot open\" err=\"%s\"", (int)c->round, fedc_error_msg());
    fedc_free(selected);
    return ROUND_WAITING;
  }
  c->round_opened_at = now;
  c->round_deadline = now + c->cfg.round_timeout_s;
  c->quorum_since = 0;
  c->commit_failures = 0;
  fedc_log_info("round=%d msg=\"opened\" selected=%d eligible=%d", (int)c->round,
                (int)n_sel, (int)n);
  if (c->secagg) fedc__coord_secagg_open(c, selected, n_sel);
  fedc_free(selected);
  return ROUND_OPEN;
}

/* OPEN: 1 when the round should close now. Under secure aggregation its
 * phases (sub-states of OPEN) advance here and decide. */
static int close_due(fedc_coord *c, double now) {
  if (c->secagg) return fedc__coord_secagg_step(c, now);
  pthread_mutex_lock(&c->mu);
  int32_t reported = fedc_engine_reported(c->engine);
  int all = fedc_engine_all_reported(c->engine);
  pthread_mutex_unlock(&c->mu);
  return reported >= c->cfg.clients_per_round || all || now >= c->round_deadline ||
         fedc__coord_report_all_done(c); /* report.c: the others' trainers failed */
}

/* ---- committing a round (worker) ----------------------------------------- */

typedef enum {
  COMMIT_OK,        /* durable, and the engine committed */
  COMMIT_ABANDONED, /* below quorum: the engine dropped the round */
  COMMIT_RETRY,     /* failed before it was durable; the engine is as it was */
  COMMIT_FATAL      /* cannot go on without a restart */
} commit_result;

typedef struct commit_work {
  uv_work_t req;
  fedc_coord *c;
  commit_result result;
  char err[512];
  fedc_store_round row;
  fedc_round_metrics m;
  int32_t reported; /* updates in the round, for the abandon message */
  /* the next round's start model, handed to the loop thread: body owns
   * the bytes (hashed here, on the worker), model points into it */
  fedc_http_body *body;
  uint8_t *model;
  size_t model_len;
  char sha[65];
  /* model deltas (model_serve.c): the model served when the commit began,
   * and the new one as a delta from it, made after the commit */
  fedc_http_body *prev, *delta;
} commit_work;

static void evaluate(fedc_coord *c, const float *w, fedc_store_round *row) {
  fedc_eval_sums sums = {0};
  if (fedc_evaluate(c->eval_tr, w, &c->test_view, 0, c->test.n, &sums, NULL) != 0 ||
      sums.n == 0) {
    fedc_log_warn("round=%d msg=\"evaluation failed\" err=\"%s\"", (int)row->round,
                  fedc_error_msg());
    return;
  }
  row->test_loss = sums.loss_sum / (double)sums.n;
  row->test_acc = c->spec.type == FEDC_MODEL_LINREG ? NAN
                                                    : (double)sums.correct / (double)sums.n;
}

/*
 * Worker thread, under mu: prepare (aggregate into the engine's pending
 * model), evaluate it on the test set so that the round's row holds its
 * metrics, encode it, write the round in one store transaction, then
 * commit the engine. Any failure before the store's commit aborts the
 * prepare, so that nothing is half done.
 */
static void commit_run(uv_work_t *req) {
  commit_work *w = req->data;
  fedc_coord *c = w->c;
  pthread_mutex_lock(&c->mu);
  /* secure aggregation: the unmasked sum is the round's only update */
  if (c->secagg) fedc__coord_secagg_fold(c);
  fedc__coord_upload_settle(c); /* uploads folded as they came, not counted: out */
  w->reported = fedc_engine_reported(c->engine);
  const float *next = NULL;
  int rc = 0, large = fedc__coord_large_commit(c, &w->m, &next, &w->model, &w->model_len,
                                               w->sha, &rc); /* large_model.c */
  if (!large) rc = fedc_engine_close_prepare(c->engine, &w->m, &next);
  if (rc == FEDC_EQUORUM) {
    w->result = COMMIT_ABANDONED;
    snprintf(w->err, sizeof w->err, "%s", fedc_error_msg());
    pthread_mutex_unlock(&c->mu);
    return;
  }
  int prepared = rc == 0;
  fedc_round_metrics *m = &w->m;
  float *opt = NULL;
  if (rc == 0) {
    w->row = (fedc_store_round){.round = m->round, .selected = m->selected,
                                .clients = m->clients, .samples = m->samples,
                                .train_loss = m->train_loss, .test_loss = NAN,
                                .test_acc = NAN,
                                .secs = fedc__coord_now() - c->round_opened_at,
                                .epsilon = m->epsilon, .delta = m->delta,
                                .clip_norm = m->clip_norm,
                                .audit_params = c->audit_params};
    if (c->has_test) evaluate(c, next, &w->row);
    /* the test hook: an out-of-memory while encoding, after the prepare */
    rc = fedc__faults_commit();
    if (rc == 0 && !large)
      rc = fedc__coord_encode_model(c, next, fedc__coord_tensors_prepare(c), m->round,
                                    &w->model, &w->model_len, w->sha);
    if (rc == 0) rc = fedc__coord_model_wrap(&w->model, w->model_len, &w->body);
  }
  size_t opt_len = fedc_engine_opt_state_len(c->engine);
  if (rc == 0 && opt_len > 0) {
    /* the optimizer's state after the prepared step */
    opt = fedc_malloc_array(opt_len, sizeof(float));
    rc = opt ? fedc_engine_opt_state_get(c->engine, opt, opt_len)
             : fedc_error_set(FEDC_ENOMEM, "out of memory");
    w->row.opt_state = opt;
    w->row.opt_state_len = opt_len;
  }
  if (rc == 0)
    rc = fedc_store_commit_round(c->store, &w->row, w->model, w->model_len, c->round_updates,
                                 c->n_round_updates);
  w->row.opt_state = NULL;
  fedc_free(opt);
  if (rc == 0) {
    fedc_engine_close_commit(c->engine); /* cannot fail once prepared */
    if (large) { /* the engine's global model is now the new body's values */
      fedc_http_body_unref(c->global_body);
      c->global_body = fedc_http_body_ref(w->body);
      w->delta = fedc__coord_large_delta_take(c); /* large_delta.c */
    }
    fedc__coord_tensors_commit(c);
    c->n_round_updates = 0;
    w->result = COMMIT_OK;
    pthread_mutex_unlock(&c->mu);
    fedc__coord_delta_make(w->prev, w->body, m->round + 1, &w->delta); /* outside mu */
    return;
  }
  snprintf(w->err, sizeof w->err, "%s", fedc_error_msg());
  if (w->body == NULL) fedc_free(w->model); /* a large model's, made before a failure */
  fedc_http_body_unref(w->body);
  w->body = NULL;
  w->model = NULL;
  w->result = COMMIT_RETRY;
  if ((prepared && fedc_engine_close_abort(c->engine) != 0) ||
      (large && fedc__coord_large_readopt(c) != 0)) {
    /* cannot happen after a prepare that succeeded (engine.h); were it
     * to, only a restart from the store could go on */
    size_t len = strlen(w->err);
    snprintf(w->err + len, sizeof w->err - len, "; %s", fedc_error_msg());
    w->result = COMMIT_FATAL;
  }
  pthread_mutex_unlock(&c->mu);
}

static void commit_done(uv_work_t *req, int status) {
  commit_work *w = req->data;
  fedc_coord *c = w->c;
  (void)status;
  fedc__coord_round_event(c, EV_COMMIT_DONE, w);
  fedc_http_body_unref(w->body);
  fedc_http_body_unref(w->prev);
  fedc_http_body_unref(w->delta);
  fedc_free(w);
  fedc__coord_worker_done(c);
}

/* CLOSING -> COMMITTING, or CLOSING again when the work cannot be queued
 * (retried at the next step). */
static round_state start_commit(fedc_coord *c) {
  commit_work *w = fedc_calloc(1, sizeof *w);
  if (w == NULL) return ROUND_CLOSING;
  pthread_mutex_lock(&c->mu);
  c->commit_selected = fedc_engine_n_selected(c->engine);
  c->commit_reported = fedc_engine_reported(c->engine);
  pthread_mutex_unlock(&c->mu);
  w->c = c;
  w->req.data = w;
  w->prev = fedc__coord_delta_base(c); /* model_serve.c */
  fedc__coord_large_commit_begin(c); /* large_model.c */
  if (uv_queue_work(c->loop, &w->req, commit_run, commit_done) != 0) {
    fedc_http_body_unref(w->prev);
    fedc_free(w);
    return ROUND_CLOSING;
  }
  return ROUND_COMMITTING;
}

/* COMMITTING, the worker's outcome: the next state. */
static round_state commit_finished(fedc_coord *c, commit_work *w, double now) {
  switch (w->result) {
  case COMMIT_ABANDONED:
    c->rounds_abandoned++;
    fedc__coord_large_commit_abandoned(c); /* large_model.c */
    /* a round that keeps ending below quorum (a site whose trainer fails
     * every time, say) opens again after a pause, 0.25 s doubling up to
     * round_timeout_s, not at once in a loop */
    c->abandoned_in_row++;
    int doublings = c->abandoned_in_row > 20 ? 20 : c->abandoned_in_row - 1;
    c->reopen_at = now + fmin(c->cfg.round_timeout_s, 0.25 * ldexp(1.0, doublings));
    fedc_log_warn("round=%d msg=\"abandoned below quorum\" reported=%d min_clients=%d "
                  "reopen_in_s=%.2f",
                  (int)c->round, (int)w->reported, (int)c->cfg.min_clients, c->reopen_at - now);
    if (c->secagg) fedc__coord_secagg_end(c, 0);
    return ROUND_WAITING;
  case COMMIT_RETRY:
    if (++c->commit_failures < COMMIT_TRIES) {
      fedc_log_error("round=%d msg=\"commit failed; retrying\" try=%d err=\"%s\"",
                     (int)c->round, (int)c->commit_failures, w->err);
      c->commit_retry_at = now + COMMIT_RETRY_S * c->commit_failures;
      return ROUND_CLOSING;
    }
    /* it keeps failing */
    /* fall through */
  case COMMIT_FATAL:
    fedc_log_error("round=%d msg=\"commit failed; stopping\" err=\"%s\"", (int)c->round, w->err);
    c->exit_code = FEDC_COORD_EXIT_STORE;
    c->stopping = 1;
    return ROUND_CLOSING; /* not committed: the store decides after a restart */
  case COMMIT_OK:
    break;
  }
  c->abandoned_in_row = 0;
  c->reopen_at = 0;
  c->rounds_committed++;
  c->last_round_secs = w->row.secs;
  pthread_mutex_lock(&c->mu); /* the engine: who was counted in the round */
  for (int32_t i = 0; i < c->n_clients; i++)
    if (fedc_engine_has_reported(c->engine, w->m.round, c->clients[i].id)) c->clients[i].updates++;
  pthread_mutex_unlock(&c->mu);
  if (c->n_history == c->history_cap) {
    int32_t cap = c->history_cap ? 2 * c->history_cap : 64;
    fedc_store_round *h = fedc_realloc(c->history, (size_t)cap * sizeof *h);
    if (h) {
      c->history = h;
      c->history_cap = cap;
    }
  }
  if (c->n_history < c->history_cap) c->history[c->n_history++] = w->row;
  fedc_log_info("round=%d msg=\"committed\" clients=%d samples=%lld train_loss=%.4f "
                "test_acc=%.4f test_loss=%.4f secs=%.3f",
                (int)w->row.round, (int)w->row.clients, (long long)w->row.samples,
                w->row.train_loss, w->row.test_acc, w->row.test_loss, w->row.secs);
  if (w->m.capped > 0 || w->m.clipped > 0)
    fedc_log_warn("round=%d msg=\"updates limited\" capped=%d clipped=%d "
                  "reason=\"capped: weight cut to [strategy] max_client_share; clipped: "
                  "[strategy] norm_bound\"",
                  (int)w->row.round, (int)w->m.capped, (int)w->m.clipped);
  c->updates_capped += w->m.capped;
  /* the worker's encoded model becomes the one served: no lock */
  fedc__coord_model_set(c, w->body, w->sha);
  fedc__coord_delta_set(c, w->delta); /* for clients holding the previous model */
  w->body = NULL;
  w->model = NULL;
  c->round++;
  c->commit_failures = 0;
  fedc__coord_eval_committed(c, w->row.round); /* eval_rounds.c */
  if (c->secagg) fedc__coord_secagg_end(c, 1);
  if (c->params.on_round) {
    fedc_round_metrics m = w->m;
    m.test_loss = w->row.test_loss;
    m.test_acc = w->row.test_acc;
    m.secs = w->row.secs;
    c->params.on_round(c, &m, c->params.user_data);
  }
  if (c->round <= c->cfg.rounds) return ROUND_WAITING;
  fedc_log_info("msg=\"job finished\" rounds=%d", (int)c->cfg.rounds);
  return ROUND_FINISHED;
}

/* ---- the state machine -------------------------------------------------- */

/*
 * The round's one transition function. Events: EV_STEP (something may have
 * changed: a tick, a poll, a join, an update or a secure-aggregation
 * message done), EV_COMMIT_DONE (the commit worker's outcome, w).
 *
 *   state       event / condition                      action -> next state
 *   ----------  -------------------------------------  ------------------------------
 *   WAITING     step, enough eligible clients polling  engine open -> OPEN
 *               step, DP budget spent                  -> FINISHED
 *   OPEN        step, all selected reported, or        -> CLOSING
 *               clients_per_round in, or deadline
 *               (secure aggregation: its phases
 *               advertise -> shares -> masked ->
 *               unmask, sub-states of OPEN, advanced
 *               here; done or failed)
 *   CLOSING     step, no update in flight, retry time  queue the commit -> COMMITTING
 *   COMMITTING  commit done: ok                        new model served -> WAITING
 *                                                      (FINISHED after the last round)
 *               commit done: below quorum              -> WAITING (round again)
 *               commit done: failed before durable     engine as it was -> CLOSING
 *               commit done: failed COMMIT_TRIES times exit code 4, stop -> CLOSING
 *               (or the engine could not take it back)
 *   FINISHED    step                                   on_finished once
 *
 * While the coordinator is stopping nothing opens or closes; a commit in
 * flight finishes (COMMITTING takes its outcome). Pending polls are
 * answered on every change of state. The loop runs until the state stays.
 */
void fedc__coord_round_event(fedc_coord *c, coord_event ev, struct commit_work *w) {
  if (c->async_rounds) { /* fedbuff: async_rounds.c */
    fedc__coord_async_event(c);
    return;
  }
  for (;;) {
    round_state from = c->state, to = from;
    double now = fedc__coord_now();
    switch (from) {
    case ROUND_WAITING:
      if (ev == EV_STEP && !c->stopping) to = try_open(c, now);
      break;
    case ROUND_OPEN:
      if (ev == EV_STEP && !c->stopping && close_due(c, now)) to = ROUND_CLOSING;
      break;
    case ROUND_CLOSING:
      if (ev == EV_STEP && !c->stopping && c->inflight == 0 && now >= c->commit_retry_at)
        to = start_commit(c);
      break;
    case ROUND_COMMITTING:
      if (ev == EV_COMMIT_DONE) to = commit_finished(c, w, now);
      break;
    case ROUND_FINISHED:
      /* the last round's evaluation closes before the job ends */
      if (!c->finished_told && !fedc__coord_eval_open(c)) {
        c->finished_told = 1;
        if (c->params.on_finished) c->params.on_finished(c, c->params.user_data);
      }
      break;
    }
    ev = EV_STEP;
    if (to == from) return;
    c->state = to;
    if (to == ROUND_OPEN) {
      /* the selected clients that poll get their task now */
      for (int32_t i = 0; i < c->n_clients; i++)
        if (c->clients[i].poll && fedc__coord_is_selected(c, c->clients[i].id))
          fedc__coord_answer_poll(c, &c->clients[i]);
    } else if (to == ROUND_WAITING || to == ROUND_FINISHED) {
      answer_all_polls(c);
    }
  }
}

void fedc__coord_step(fedc_coord *c) { fedc__coord_round_event(c, EV_STEP, NULL); }
