/*
 * async_rounds.c - FedBuff over the wire ([strategy] name = fedbuff; Nguyen
 * et al. 2022, docs/strategies.md). Nobody is selected and no round waits
 * for anyone: every joined client that polls gets the newest model (task
 * "train" for round v + 1, v the steps committed), trains it and posts its
 * update whenever it is done. The coordinator forms delta = w - x_v
 * against the model version v the client trained from (the update's round
 * minus one: kept here for a few versions, else read from the store),
 * and the engine weighs it by its staleness and steps every buffer_k
 * updates (fedc_engine_submit_async, the simulator's own function). Each
 * step is committed to the store as a round, with the buffer's updates,
 * inside the update's worker and under mu, before the update is answered;
 * a store that cannot take it stops the coordinator (the store decides
 * after a restart). A client whose update is in the buffer being filled
 * waits for the next step (one update per client and step); updates counted in a buffer that a kill
 * -9 lost are sent again by their clients (the same task brings the same
 * update back), and an update counted into a committed step is a duplicate
 * (its checksum is the client's last counted one).
 *
 * The round states of round.c are reused: WAITING until the model is
 * there, then OPEN for the whole job, FINISHED after the last step.
 */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "coord_internal.h"
#include "ml/model_io.h"
#include "wire/update_meta.h"

#define VERSIONS 8 /* model versions kept decoded for deltas */

typedef struct coord_async {
  struct {
    int32_t version; /* -1 = empty */
    float *w;
  } ver[VERSIONS];
} coord_async;

int fedc__coord_async_on(const fedc_coord *c) {
  const fedc_strategy_info *info = fedc_strategy_lookup(c->cfg.strategy);
  return info != NULL && (info->caps & FEDC_STRATEGY_ASYNC) != 0;
}

void fedc__coord_async_free(fedc_coord *c) {
  coord_async *a = c->async;
  if (a == NULL) return;
  for (int i = 0; i < VERSIONS; i++) fedc_free(a->ver[i].w);
  fedc_free(a);
  c->async = NULL;
}

/* Remember version v's model (the oldest slot gives way). */
static void keep_version(coord_async *a, int32_t v, const float *w, size_t n) {
  int k = 0;
  for (int i = 0; i < VERSIONS; i++) {
    if (a->ver[i].version == v) return;
    if (a->ver[i].version < a->ver[k].version) k = i;
  }
  memcpy(a->ver[k].w, w, n * sizeof(float));
  a->ver[k].version = v;
}

/*
 * After the engine is restored: buffers, the newest version kept, and each
 * client's last counted update (its checksum) from the last committed
 * steps, so that a resend of one is acknowledged, not counted again.
 */
int fedc__coord_async_init(fedc_coord *c) {
  coord_async *a = fedc_calloc(1, sizeof *a);
  if (a == NULL) return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  c->async = a;
  size_t n = c->n_params ? c->n_params : 1;
  int ok = 1;
  for (int i = 0; i < VERSIONS; i++) {
    a->ver[i].version = -1;
    ok = ok && (a->ver[i].w = fedc_malloc_array(n, sizeof(float))) != NULL;
  }
  if (!ok) return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  keep_version(a, c->round - 1, fedc_engine_global(c->engine), c->n_params);
  int32_t k = c->cfg.buffer_k > 0 ? c->cfg.buffer_k : 1;
  fedc_store_update *u = fedc_malloc_array((size_t)k, sizeof *u);
  if (u == NULL) return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  fedc_free(c->round_updates);
  c->round_updates = u;
  c->round_updates_cap = k;
  c->n_round_updates = 0;
  /* a client's last counted update: the newest committed steps first */
  for (int32_t r = c->round - 1; r >= 1 && r >= c->round - 1 - 2 * k; r--) {
    fedc_store_update *ru = NULL;
    int32_t nu = 0;
    if (fedc_store_round_updates(c->store, r, &ru, &nu) != 0) break;
    for (int32_t i = 0; i < nu; i++) {
      coord_client *cl = fedc__coord_client_by_id(c, ru[i].client_id);
      if (cl && cl->async_sha[0] == '\0')
        snprintf(cl->async_sha, sizeof cl->async_sha, "%s", ru[i].sha256);
    }
    fedc_free(ru);
  }
  c->round_deadline = fedc__coord_now() + c->cfg.round_timeout_s;
  return 0;
}

/* A client has a task unless its last update is in the buffer being
 * filled (one update per client and step; the store keys them so). */
int fedc__coord_async_has_task(fedc_coord *c, int32_t client_id) {
  if (c->state != ROUND_OPEN) return 0;
  coord_client *cl = fedc__coord_client_by_id(c, client_id);
  return cl != NULL && cl->async_last < c->round;
}

/* Under mu: version v's model into out, from the kept ones or the store. */
static int version_model(fedc_coord *c, int32_t v, float *out) {
  coord_async *a = c->async;
  for (int i = 0; i < VERSIONS; i++)
    if (a->ver[i].version == v) {
      memcpy(out, a->ver[i].w, c->n_params * sizeof(float));
      return 0;
    }
  uint8_t *bytes = NULL;
  size_t len = 0;
  int rc = fedc_store_checkpoint(c->store, v, &bytes, &len);
  if (rc == 0) rc = fedc__coord_model_decode(c, bytes, len, out, NULL);
  fedc_free(bytes);
  return rc;
}

static void result_fail(coord_async_result *r, int status, int reason, const char *code,
                        const char *msg) {
  r->status = status;
  r->reason = reason;
  snprintf(r->code, sizeof r->code, "%s", code);
  snprintf(r->msg, sizeof r->msg, "%s", msg);
}

/*
 * Worker thread, under mu for the engine and the store: decode and check
 * the update (as a synchronous one), its delta against its base version,
 * the engine's staleness-weighted fold, and, when that completes a buffer,
 * the step's commit to the store.
 */
void fedc__coord_async_update(fedc_coord *c, int32_t client_id, const uint8_t *body, size_t len,
                              coord_async_result *r) {
  coord_async *a = c->async;
  memset(r, 0, sizeof *r);
  r->status = 200;
  /* this update's own buffers: workers decode side by side, outside mu */
  float *w = fedc_malloc_array(c->n_params ? c->n_params : 1, sizeof(float));
  float *delta = fedc_malloc_array(c->n_params ? c->n_params : 1, sizeof(float));
  if (w == NULL || delta == NULL) {
    fedc_free(w);
    fedc_free(delta);
    result_fail(r, 503, REJECT_unavailable, "unavailable", "out of memory");
    return;
  }
  fedc_st_file *f = NULL;
  int rc = fedc_model_decode(&c->spec, body, len, w, &f);
  if (rc != 0) {
    char msg[384];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    switch (rc) {
    case FEDC_EUNSUPPORTED: result_fail(r, 400, REJECT_bad_dtype, "bad_dtype", msg); break;
    case FEDC_ECHECKSUM: result_fail(r, 400, REJECT_bad_checksum, "bad_checksum", msg); break;
    case FEDC_ESHAPE: result_fail(r, 400, REJECT_bad_shape, "bad_shape", msg); break;
    case FEDC_ENONFINITE: result_fail(r, 400, REJECT_non_finite, "non_finite", msg); break;
    case FEDC_ENOMEM: result_fail(r, 503, REJECT_unavailable, "unavailable", msg); break;
    default: result_fail(r, 400, REJECT_bad_container, "bad_container", msg); break;
    }
    fedc_free(w);
    fedc_free(delta);
    return;
  }
  fedc_update_meta meta;
  if (fedc_update_meta_parse(f, &meta) != 0) {
    result_fail(r, 400, REJECT_bad_metadata, "bad_metadata", fedc_error_msg());
    fedc_st_free(f);
    fedc_free(w);
    fedc_free(delta);
    return;
  }
  char sha[65];
  snprintf(sha, sizeof sha, "%s", meta.sha256 ? meta.sha256 : "");
  fedc_st_free(f);
  r->round = (int32_t)meta.round;
  pthread_mutex_lock(&c->mu);
  coord_client *cl = fedc__coord_client_by_id(c, client_id);
  /* the engine's step, not c->round: the loop thread mirrors a step only
   * after its worker is done, and updates may be folded meanwhile */
  int32_t step = fedc_engine_round(c->engine);
  int32_t base = r->round - 1, newest = step - 1;
  if (cl == NULL) {
    result_fail(r, 403, REJECT_not_selected, "not_selected", "unknown client");
  } else if (sha[0] && strcmp(cl->async_sha, sha) == 0) {
    r->duplicate = 1; /* this update is already counted */
  } else if (cl->async_last == step) {
    result_fail(r, 409, REJECT_stale_round, "stale_round",
                "this client's update is already in the buffer being filled");
  } else if (base < 0 || base > newest) {
    char msg[128];
    snprintf(msg, sizeof msg, "update for round %d, but the newest model is version %d",
             (int)r->round, (int)newest);
    result_fail(r, 409, REJECT_stale_round, "stale_round", msg);
  } else if (fedc_engine_done(c->engine)) {
    result_fail(r, 409, REJECT_stale_round, "stale_round", "the job is finished");
  } else if ((rc = version_model(c, base, delta)) != 0) {
    result_fail(r, 503, REJECT_unavailable, "unavailable", fedc_error_msg());
  } else {
    for (size_t i = 0; i < c->n_params; i++) delta[i] = w[i] - delta[i];
    int stepped = 0;
    rc = fedc_engine_submit_async(c->engine, client_id, base, delta, c->n_params,
                                  (uint64_t)meta.num_samples, meta.train_loss, &stepped,
                                  &r->step.m);
    if (rc != 0) {
      int st = rc == FEDC_ENONFINITE || rc == FEDC_ERANGE ? 400 : rc == FEDC_ESHAPE ? 400 : 409;
      result_fail(r, st,
                  st == 409 ? REJECT_stale_round
                  : rc == FEDC_ESHAPE ? REJECT_bad_shape
                                      : REJECT_non_finite,
                  st == 409 ? "stale_round" : rc == FEDC_ESHAPE ? "bad_shape" : "non_finite",
                  fedc_error_msg());
    } else {
      cl->async_last = step; /* the buffer (step) it went into */
      snprintf(cl->async_sha, sizeof cl->async_sha, "%s", sha);
      if (c->n_round_updates < c->round_updates_cap) {
        fedc_store_update *u = &c->round_updates[c->n_round_updates++];
        *u = (fedc_store_update){.client_id = client_id, .num_samples = meta.num_samples,
                                 .train_loss = meta.train_loss, .received_at = fedc__coord_now()};
        snprintf(u->sha256, sizeof u->sha256, "%s", sha);
      }
      r->staleness = newest - base;
      if (stepped) {
        /* the step is a round: encode, store, then it is served */
        const fedc_round_metrics *m = &r->step.m;
        const float *x = fedc_engine_global(c->engine);
        r->step.stepped = 1;
        r->step.row = (fedc_store_round){.round = m->round, .selected = m->selected,
                                         .clients = m->clients, .samples = m->samples,
                                         .train_loss = m->train_loss, .test_loss = NAN,
                                         .test_acc = NAN,
                                         .secs = fedc__coord_now() - c->round_opened_at,
                                         .epsilon = m->epsilon, .delta = m->delta,
                                         .clip_norm = m->clip_norm};
        rc = fedc__coord_encode_model(c, x, c->ints, m->round, &r->step.model, &r->step.model_len,
                                      r->step.sha);
        if (rc == 0) rc = fedc__coord_model_wrap(&r->step.model, r->step.model_len, &r->step.body);
        if (rc == 0)
          rc = fedc_store_commit_round(c->store, &r->step.row, r->step.model,
                                       r->step.model_len, c->round_updates,
                                       c->n_round_updates);
        c->n_round_updates = 0;
        if (rc == 0) {
          keep_version(a, m->round, x, c->n_params);
        } else {
          r->step.fatal = 1;
          snprintf(r->step.err, sizeof r->step.err, "%s", fedc_error_msg());
        }
      }
    }
  }
  pthread_mutex_unlock(&c->mu);
  fedc_free(w);
  fedc_free(delta);
}

/* Loop thread, after fedc__coord_async_update: a committed step becomes
 * the model served, and the clients waiting for it get their tasks. */
void fedc__coord_async_update_done(fedc_coord *c, coord_async_result *r) {
  if (!r->step.stepped) return;
  if (r->step.fatal) {
    fedc_log_error("round=%d msg=\"step not committed; stopping\" err=\"%s\"",
                   (int)r->step.m.round, r->step.err);
    fedc_http_body_unref(r->step.body);
    r->step.body = NULL;
    r->step.model = NULL;
    c->exit_code = FEDC_COORD_EXIT_STORE;
    c->stopping = 1;
    return;
  }
  c->rounds_committed++;
  if (c->n_history == c->history_cap) {
    int32_t cap = c->history_cap ? 2 * c->history_cap : 64;
    fedc_store_round *h = fedc_realloc(c->history, (size_t)cap * sizeof *h);
    if (h) {
      c->history = h;
      c->history_cap = cap;
    }
  }
  if (c->n_history < c->history_cap) c->history[c->n_history++] = r->step.row;
  fedc_log_info("round=%d msg=\"committed\" async=1 clients=%d samples=%lld train_loss=%.4f "
                "secs=%.3f",
                (int)r->step.row.round, (int)r->step.row.clients,
                (long long)r->step.row.samples, r->step.row.train_loss, r->step.row.secs);
  fedc__coord_model_set(c, r->step.body, r->step.sha);
  r->step.body = NULL;
  r->step.model = NULL;
  c->round = r->step.m.round + 1;
  c->round_opened_at = fedc__coord_now();
  c->round_deadline = c->round_opened_at + c->cfg.round_timeout_s;
  if (c->params.on_round) c->params.on_round(c, &r->step.m, c->params.user_data);
  if (c->round > c->cfg.rounds) {
    fedc_log_info("msg=\"job finished\" rounds=%d", (int)c->cfg.rounds);
    c->state = ROUND_FINISHED;
  }
  for (int32_t i = 0; i < c->n_clients; i++)
    if (c->clients[i].poll) fedc__coord_answer_poll(c, &c->clients[i]);
}

/* The state machine of an asynchronous job: WAITING until the model is
 * there, OPEN until the last step, FINISHED (steps move it, above). */
void fedc__coord_async_event(fedc_coord *c) {
  if (c->state == ROUND_WAITING && !c->stopping && c->model_bytes != NULL) {
    c->state = c->round > c->cfg.rounds ? ROUND_FINISHED : ROUND_OPEN;
    c->round_opened_at = fedc__coord_now();
    fedc_log_info("round=%d msg=\"asynchronous job open\" buffer_k=%d", (int)c->round,
                  (int)c->cfg.buffer_k);
    for (int32_t i = 0; i < c->n_clients; i++)
      if (c->clients[i].poll) fedc__coord_answer_poll(c, &c->clients[i]);
  }
  if (c->state == ROUND_FINISHED && !c->finished_told) {
    c->finished_told = 1;
    for (int32_t i = 0; i < c->n_clients; i++)
      if (c->clients[i].poll) fedc__coord_answer_poll(c, &c->clients[i]);
    if (c->params.on_finished) c->params.on_finished(c, c->params.user_data);
  }
}
