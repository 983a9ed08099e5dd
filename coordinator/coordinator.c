/*
 * coordinator.c - the coordinator's lifecycle (fedc/coordinator.h), its
 * clients, and the work it hands to worker threads: updates, checkpoints
 * of past rounds, the client list refreshed from the store. The round state
 * machine is in round.c.
 *
 * Start: open the store, bind it to the job (model shape and seed), resume
 * the engine at the last committed round from its checkpoint (or store the
 * seeded initial model), load the optional test set, listen. The library
 * installs no signal handler, reads no environment and runs no loop: the
 * program does (main.c). Updates are validated and folded into the running
 * sum on worker threads; the engine and the store are only touched under
 * c->mu.
 */
#include "eval_rounds.h"
#include "coord_internal.h"
#include "http_range.h"
#include "stats_phase.h"
#include "upload_fold.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "audit.h"
#include "base/alloc.h"
#include "base/error.h"
#include "faults.h"
#include "base/log.h"
#include "ml/model_io.h"
#include "config/config_params.h"
#include "config/settings.h"
#include "round/pipeline.h"
#include "wire/update_meta.h"

#define TICK_MS 100

double fedc__coord_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- clients ------------------------------------------------------------ */

/* The client with this certificate fingerprint, from the index
 * (client_index.c): every request asks, on the loop thread. */
coord_client *fedc__coord_client_by_fpr(fedc_coord *c, const char *fpr) {
  int32_t i = fedc__client_index_get(&c->clients_by_fpr, fpr);
  return i >= 0 && i < c->n_clients ? &c->clients[i] : NULL;
}

/* The client with this id. The store hands out increasing ids and clients
 * are appended as they come, so the array is normally in id order and a
 * binary search finds one (the refresh asks for every client each time);
 * an append out of order (clients_unsorted) falls back to a scan. */
coord_client *fedc__coord_client_by_id(fedc_coord *c, int32_t id) {
  if (!c->clients_unsorted) {
    int32_t lo = 0, hi = c->n_clients;
    while (lo < hi) {
      int32_t mid = lo + (hi - lo) / 2;
      if (c->clients[mid].id < id)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo < c->n_clients && c->clients[lo].id == id ? &c->clients[lo] : NULL;
  }
  for (int32_t i = 0; i < c->n_clients; i++)
    if (c->clients[i].id == id) return &c->clients[i];
  return NULL;
}

int fedc__coord_client_add(fedc_coord *c, const fedc_store_client *sc,
                           coord_client **out) {
  if (c->n_clients == c->clients_cap) {
    int32_t cap = c->clients_cap ? 2 * c->clients_cap : 16;
    coord_client *nc = fedc_realloc(c->clients, (size_t)cap * sizeof *nc);
    if (nc == NULL) return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
    c->clients = nc;
    c->clients_cap = cap;
  }
  coord_client *cl = &c->clients[c->n_clients++];
  memset(cl, 0, sizeof *cl);
  cl->id = sc->id;
  snprintf(cl->fingerprint, sizeof cl->fingerprint, "%s", sc->fingerprint);
  snprintf(cl->name, sizeof cl->name, "%s", sc->name);
  cl->revoked = sc->status == FEDC_CLIENT_REVOKED;
  cl->updates = sc->updates;
  /* clients are never removed nor their fingerprint changed (a revocation
   * or a rename keeps the entry): the index is kept here alone */
  int rc = cl->fingerprint[0] == '\0'
               ? 0
               : fedc__client_index_put(&c->clients_by_fpr, cl->fingerprint, c->n_clients - 1);
  if (rc != 0) {
    c->n_clients--;
    return rc;
  }
  if (c->n_clients > 1 && c->clients[c->n_clients - 2].id >= cl->id) c->clients_unsorted = 1;
  *out = cl;
  return 0;
}

void fedc__coord_reject(fedc_coord *c, reject_reason r) {
  if (r < REJECT_COUNT) c->rejected[r]++;
}

/* ---- the client list, refreshed from the store ------------------------- */

/*
 * `fedc-coordinator allow` and `revoke` write the store from another
 * process; every few seconds a worker reads the clients table back so that
 * a running daemon admits new clients and refuses revoked ones.
 */
typedef struct refresh_work {
  uv_work_t req;
  fedc_coord *c;
  fedc_store_client *list;
  int32_t n;
  fedc__cert_row *certs; /* their certificates' expiry (cert_watch.c) */
  int32_t n_certs;
  int rc;
} refresh_work;

static void refresh_run(uv_work_t *req) {
  refresh_work *w = req->data;
  pthread_mutex_lock(&w->c->mu);
  w->rc = fedc_store_client_list(w->c->store, &w->list, &w->n);
  if (w->rc == 0) w->rc = fedc__certs_list(w->c->store, &w->certs, &w->n_certs);
  pthread_mutex_unlock(&w->c->mu);
}

static void refresh_done(uv_work_t *req, int status) {
  refresh_work *w = req->data;
  fedc_coord *c = w->c;
  (void)status;
  c->refreshing = 0;
  for (int32_t i = 0; w->rc == 0 && i < w->n; i++) {
    coord_client *cl = fedc__coord_client_by_id(c, w->list[i].id);
    if (cl == NULL) {
      fedc__coord_client_add(c, &w->list[i], &cl);
      continue;
    }
    int revoked = w->list[i].status == FEDC_CLIENT_REVOKED;
    if (revoked && !cl->revoked) {
      fedc_log_info("client=%d msg=\"revoked\"", (int)cl->id);
      if (cl->poll) {
        fedc_http_exchange *x = cl->poll;
        cl->poll = NULL;
        fedc_http_exchange_on_abort(x, NULL, NULL);
        fedc_http_respond_error(x, 403, "forbidden", "this certificate was revoked");
      }
      /* and its open connections: nothing more goes through them */
      int closed = fedc_http_server_close_peer(c->server, cl->fingerprint);
      if (closed > 0)
        fedc_log_info("client=%d msg=\"revoked: closed its connections\" connections=%d",
                      (int)cl->id, closed);
    }
    cl->revoked = revoked;
  }
  if (w->rc == 0) {
    fedc__coord_certs_update(c, w->certs, w->n_certs); /* takes the list */
    w->certs = NULL;
  }
  fedc_free(w->certs);
  fedc_free(w->list);
  fedc_free(w);
  fedc__coord_worker_done(c);
}

static void maybe_refresh(fedc_coord *c) {
  double now = fedc__coord_now();
  if (c->refreshing || now - c->last_refresh < 2.0 || c->stopping) return;
  refresh_work *w = fedc_calloc(1, sizeof *w);
  if (w == NULL) return;
  w->c = c;
  w->req.data = w;
  if (uv_queue_work(c->loop, &w->req, refresh_run, refresh_done) != 0) {
    fedc_free(w);
    return;
  }
  c->refreshing = 1;
  c->last_refresh = now;
}

static void on_tick(uv_timer_t *t) {
  fedc_coord *c = t->data;
  double now = fedc__coord_now();
  maybe_refresh(c);
  for (int32_t i = 0; i < c->n_clients; i++) {
    coord_client *cl = &c->clients[i];
    if (cl->poll && now >= cl->poll_deadline) fedc__coord_answer_poll(c, cl);
  }
  fedc__coord_eval_tick(c);
  fedc__coord_step(c);
}

/* ---- updates ------------------------------------------------------------- */

typedef struct update_work {
  uv_work_t req;
  fedc_coord *c;
  fedc_http_exchange *x; /* NULL once the connection died */
  int32_t client_id;
  uint8_t *body;
  size_t len;
  /* who frees body: NULL for fedc_free, else release(release_ud) (a
   * chunked upload's mapped spool file, upload_api.c) */
  void (*release)(void *ud);
  void *release_ud;
  /* results */
  int status;
  reject_reason reason;
  char code[32];
  char msg[384];
  int32_t round;
  int duplicate;
  coord_async_result ar; /* fedbuff */
  struct fedc_upload_fold *early; /* a chunked upload's early folds (upload_fold.h) */
} update_work;

static void update_abort(void *ud, fedc_http_exchange *x) {
  update_work *w = ud;
  (void)x;
  w->x = NULL;
}

static void fail_update(update_work *w, int status, reject_reason r,
                        const char *code, const char *msg) {
  w->status = status;
  w->reason = r;
  snprintf(w->code, sizeof w->code, "%s", code);
  snprintf(w->msg, sizeof w->msg, "%s", msg);
}

/*
 * Worker thread: check everything about the update, then fold it in under
 * the mutex. Nothing touches the engine before the whole update is known
 * to be good; the engine itself refuses the wrong round, an unselected
 * client and a second update from the same client.
 */
static void update_run(uv_work_t *req) {
  update_work *w = req->data;
  fedc_coord *c = w->c;
  if (c->async_rounds) { /* fedbuff: async_rounds.c */
    fedc__coord_async_update(c, w->client_id, w->body, w->len, &w->ar);
    w->status = w->ar.status;
    w->reason = (reject_reason)w->ar.reason;
    snprintf(w->code, sizeof w->code, "%s", w->ar.code);
    snprintf(w->msg, sizeof w->msg, "%s", w->ar.msg);
    w->round = w->ar.round;
    w->duplicate = w->ar.duplicate;
    return;
  }
  fedc__coord_partial_result pr; /* a relay's partial sum (relay_fold.c) */
  if (fedc__coord_partial_fold(c, w->client_id, w->body, w->len, &pr)) {
    fail_update(w, pr.status, pr.reason, pr.code, pr.msg);
    w->round = pr.round;
    w->duplicate = pr.duplicate;
    return;
  }
  /* an update folded as it arrived needs only its header (upload_fold.c);
   * a large-model job's update is read where it lies (large_model.c) */
  fedc_st_file *f = NULL;
  const float *view = NULL;
  int whole = fedc__fold_whole(c, w->early, w->body, w->len, &f);
  int viewed = whole || fedc__coord_update_view(c, w->body, w->len, &view, &f);
  float *weights = viewed ? NULL : fedc_malloc_array(c->n_params, sizeof(float));
  int64_t *ints = fedc_malloc_array(c->layout.n_int ? c->layout.n_int : 1, sizeof(int64_t));
  if ((weights == NULL && !viewed) || ints == NULL) {
    fedc_st_free(f);
    fedc_free(weights);
    fedc_free(ints);
    fail_update(w, 503, REJECT_unavailable, "unavailable", "out of memory");
    return;
  }
  float *dc = NULL; /* SCAFFOLD: the client's control-variate delta */
  int scaffold = fedc__coord_scaffold_on(c);
  if (scaffold && (dc = fedc_malloc_array(c->n_params, sizeof(float))) == NULL) {
    fail_update(w, 503, REJECT_unavailable, "unavailable", "out of memory");
    fedc_free(weights);
    fedc_free(ints);
    return;
  }
  fedc_update_meta meta;
  char coded_sha[65]; /* a compressed update's checksum (coded_fold.c) */
  int rc = 0, coded = !viewed && fedc__coord_coded_decode(c, w->body, w->len, weights, &meta,
                                                         coded_sha, &rc);
  if (!coded && !viewed)
    rc = scaffold ? fedc__coord_update_decode(c, w->body, w->len, weights, dc, &f)
                  : fedc_layout_decode(&c->layout, w->body, w->len, weights, ints, &f);
  if (rc != 0) {
    char msg[384];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    switch (rc) {
    case FEDC_EUNSUPPORTED: fail_update(w, 400, REJECT_bad_dtype, "bad_dtype", msg); break;
    case FEDC_ECHECKSUM: fail_update(w, 400, REJECT_bad_checksum, "bad_checksum", msg); break;
    case FEDC_ESHAPE: fail_update(w, 400, REJECT_bad_shape, "bad_shape", msg); break;
    case FEDC_ENONFINITE: fail_update(w, 400, REJECT_non_finite, "non_finite", msg); break;
    case FEDC_ENOMEM: fail_update(w, 503, REJECT_unavailable, "unavailable", msg); break;
    default: fail_update(w, 400, REJECT_bad_container, "bad_container", msg); break;
    }
    fedc_free(weights);
    fedc_free(ints);
    fedc_free(dc);
    return;
  }
  if (!coded && fedc_update_meta_parse(f, &meta) != 0) {
    fail_update(w, 400, REJECT_bad_metadata, "bad_metadata", fedc_error_msg());
    fedc_st_free(f);
    fedc_free(weights);
    fedc_free(ints);
    fedc_free(dc);
    return;
  }
  int64_t round = meta.round, samples = meta.num_samples;
  double loss = meta.train_loss;
  const char *sha = meta.sha256;
  w->round = (int32_t)round;
  pthread_mutex_lock(&c->mu);
  /* an update folded as it arrived is only counted (upload_fold.c) */
  if (!fedc__fold_take(c, coded ? NULL : w->early, whole, (int32_t)round, w->client_id,
                       (uint64_t)samples, loss, &rc))
    rc = scaffold ? fedc__engine_submit_variate(c->engine, (int32_t)round, w->client_id, weights,
                                                dc, c->n_params, (uint64_t)samples, loss)
                  : fedc_engine_submit(c->engine, (int32_t)round, w->client_id,
                                       viewed ? view : weights, c->n_params, (uint64_t)samples,
                                       loss);
  if (rc == 0) {
    fedc__coord_tensors_fold(c, ints); /* integer tensors (max rules) */
    /* round_updates has a row per selected client (sized at open) */
    if (c->n_round_updates < c->round_updates_cap) {
      fedc_store_update *u = &c->round_updates[c->n_round_updates++];
      u->client_id = w->client_id;
      u->num_samples = samples;
      u->train_loss = loss;
      snprintf(u->sha256, sizeof u->sha256, "%s", sha ? sha : "");
      u->received_at = wall_now();
    }
  } else if ((rc == FEDC_ESTALE || rc == FEDC_ESTATE) &&
             fedc_engine_has_reported(c->engine, (int32_t)round, w->client_id)) {
    w->duplicate = 1; /* a late resend for the last committed round */
  } else if (rc == FEDC_EDUPLICATE) {
    w->duplicate = 1;
  }
  char msg[384];
  snprintf(msg, sizeof msg, "%s", fedc_error_msg());
  pthread_mutex_unlock(&c->mu);
  if (rc != 0 && !w->duplicate) {
    if (rc == FEDC_ESTALE || rc == FEDC_ESTATE)
      fail_update(w, 409, REJECT_stale_round, "stale_round", msg);
    else if (rc == FEDC_EINVAL)
      fail_update(w, 403, REJECT_not_selected, "not_selected", msg);
    else if (rc == FEDC_ENONFINITE || rc == FEDC_ERANGE)
      fail_update(w, 400, REJECT_non_finite, "non_finite", msg);
    else if (rc == FEDC_ESHAPE)
      fail_update(w, 400, REJECT_bad_shape, "bad_shape", msg);
    else
      fail_update(w, 503, REJECT_unavailable, "unavailable", msg);
  } else {
    w->status = 200;
  }
  fedc_st_free(f);
  fedc_free(weights);
  fedc_free(ints);
  fedc_free(dc);
}

/*
 * Answer a POST /v1/update (plain or masked) once its work is done: 200
 * with {"accepted":true,"round":r,"duplicate":d}, or the protocol error.
 * x may be NULL (the connection died meanwhile): nothing to answer.
 */
void fedc__coord_answer_update(fedc_http_exchange *x, int status, int32_t round,
                               int duplicate, const char *code, const char *msg) {
  if (x == NULL) return;
  fedc_http_exchange_on_abort(x, NULL, NULL);
  if (status != 200) {
    fedc_http_respond_error(x, status, code, "%s", msg);
    return;
  }
  char body[128];
  int n = snprintf(body, sizeof body, "{\"accepted\":true,\"round\":%d,\"duplicate\":%s}",
                   (int)round, duplicate ? "true" : "false");
  fedc_http_respond(x, 200, "application/json", body, (size_t)n, NULL);
}

static void update_done(uv_work_t *req, int status) {
  update_work *w = req->data;
  fedc_coord *c = w->c;
  (void)status;
  c->inflight--;
  if (c->async_rounds) fedc__coord_async_update_done(c, &w->ar);
  if (w->status == 200 && !w->duplicate) {
    c->updates_accepted++;
    pthread_mutex_lock(&c->mu); /* no commit runs while updates are in flight */
    int32_t reported = fedc_engine_reported(c->engine);
    int32_t selected = fedc_engine_n_selected(c->engine);
    pthread_mutex_unlock(&c->mu);
    fedc_log_info("round=%d client=%d msg=\"update accepted\" reported=%d/%d",
                  (int)w->round, (int)w->client_id, (int)reported, (int)selected);
  } else if (w->status == 200) {
    c->updates_duplicate++;
  } else {
    fedc__coord_reject(c, w->reason);
    fedc_log_info("client=%d msg=\"update refused\" code=%s reason=\"%s\"",
                  (int)w->client_id, w->code, w->msg);
  }
  fedc__coord_answer_update(w->x, w->status, w->round, w->duplicate, w->code, w->msg);
  if (w->release) w->release(w->release_ud);
  else fedc_free(w->body);
  fedc_free(w);
  fedc__coord_worker_done(c);
}

int fedc__coord_update_gate(fedc_coord *c, fedc_http_exchange *x, coord_client *cl) {
  if (c->state == ROUND_CLOSING || c->state == ROUND_COMMITTING) {
    /* the round is being committed: its outcome decides (stale or a
     * duplicate), so ask the client to send again in a moment */
    static const char busy[] =
        "{\"error\":\"unavailable\",\"message\":\"the round is closing; retry\"}";
    fedc__coord_reject(c, REJECT_unavailable);
    fedc_http_respond(x, 503, "application/json", busy, sizeof busy - 1, "Retry-After: 1\r\n");
    return 0;
  }
  /* who may send an update now is known before its body is decoded: a
   * client selected in the open round, or one that reported in it or in
   * the last committed round (a resend, acknowledged as a duplicate);
   * anyone else is refused here, without spending a worker on decoding */
  pthread_mutex_lock(&c->mu);
  int open = c->state == ROUND_OPEN &&
             (c->async_rounds || fedc_engine_is_open(c->engine)); /* fedbuff: always */
  int may = (open && c->async_rounds) ||
            (open && fedc_engine_is_selected(c->engine, cl->id)) ||
            fedc_engine_has_reported(c->engine, c->round - 1, cl->id) ||
            fedc_engine_has_reported(c->engine, c->round, cl->id);
  pthread_mutex_unlock(&c->mu);
  if (!may) {
    fedc__coord_reject(c, open ? REJECT_not_selected : REJECT_stale_round);
    if (open)
      fedc_http_respond_error(x, 403, "not_selected", "client %d was not selected in round %d",
                              (int)cl->id, (int)c->round);
    else
      fedc_http_respond_error(x, 409, "stale_round", "no round is open for client %d",
                              (int)cl->id);
    return 0;
  }
  return 1;
}

void fedc__coord_queue_update(fedc_coord *c, fedc_http_exchange *x, coord_client *cl,
                              uint8_t *body, size_t len, void (*release)(void *ud),
                              void *release_ud) {
  fedc__coord_queue_update_early(c, x, cl, body, len, release, release_ud, NULL);
}

void fedc__coord_queue_update_early(fedc_coord *c, fedc_http_exchange *x, coord_client *cl,
                                    uint8_t *body, size_t len, void (*release)(void *ud),
                                    void *release_ud, struct fedc_upload_fold *early) {
  update_work *w = fedc_calloc(1, sizeof *w);
  if (w == NULL) {
    if (release) release(release_ud);
    else fedc_free(body);
    fedc__coord_reject(c, REJECT_unavailable);
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  w->c = c;
  w->x = x;
  w->client_id = cl->id;
  w->body = body;
  w->len = len;
  w->release = release;
  w->release_ud = release_ud;
  w->early = early;
  w->req.data = w;
  fedc_http_exchange_on_abort(x, update_abort, w);
  if (uv_queue_work(c->loop, &w->req, update_run, update_done) != 0) {
    fedc_http_exchange_on_abort(x, NULL, NULL);
    if (release) release(release_ud);
    else fedc_free(body);
    fedc_free(w);
    fedc_http_respond_error(x, 503, "unavailable", "cannot queue the update");
    return;
  }
  c->inflight++;
}

void fedc__coord_submit_update(fedc_coord *c, fedc_http_exchange *x,
                               coord_client *cl, const uint8_t *body,
                               size_t len) {
  if (c->secagg) { /* a masked update */
    fedc__coord_secagg_update(c, x, cl, body, len);
    return;
  }
  if (!fedc__coord_update_gate(c, x, cl)) return;
  uint8_t *copy = fedc_malloc(len ? len : 1);
  if (copy == NULL) {
    fedc__coord_reject(c, REJECT_unavailable);
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  memcpy(copy, body, len);
  fedc__coord_queue_update(c, x, cl, copy, len, NULL, NULL);
}

/* ---- checkpoints of past rounds ----------------------------------------- */

/*
 * A past round's model comes from the store, which the commits and the
 * updates use under c->mu: a client asking for old checkpoints again and
 * again must not hold that mutex nor the worker pool. So the last
 * COORD_CKPT_CACHE checkpoints served are kept encoded (loop thread only,
 * least recently used goes first), a miss is read on a worker with a store
 * connection of its own (opened on first use; sqlite's WAL lets it read
 * beside the daemon's writes), without c->mu, and at most one such read is
 * in flight: another miss meanwhile gets 503 with Retry-After: 1.
 */
typedef struct ckpt_work {
  uv_work_t req;
  fedc_coord *c;
  fedc_http_exchange *x;
  const fedc_http_request *hreq; /* valid while x is */
  int32_t round;
  int rc;
  uint8_t *bytes;
  size_t len;
  fedc_http_body *body; /* owns bytes once made (hashed on the worker) */
} ckpt_work;

static void ckpt_abort(void *ud, fedc_http_exchange *x) {
  (void)x;
  ((ckpt_work *)ud)->x = NULL;
}

static void ckpt_run(uv_work_t *req) {
  ckpt_work *w = req->data;
  fedc_coord *c = w->c;
  w->rc = c->ckpt_store ? 0 : fedc_store_open(c->cfg.store_path, &c->ckpt_store);
  if (w->rc == 0) w->rc = fedc_store_checkpoint(c->ckpt_store, w->round, &w->bytes, &w->len);
  if (w->rc == 0) w->rc = fedc__coord_model_wrap(&w->bytes, w->len, &w->body);
}

/* Keep a checkpoint read from the store (takes the body's reference),
 * evicting the least recently used (downloads still sending it keep it
 * alive). */
static void ckpt_keep(fedc_coord *c, int32_t round, fedc_http_body *body) {
  int k = 0;
  for (int i = 1; i < COORD_CKPT_CACHE; i++)
    if (c->ckpt_cache[i].used < c->ckpt_cache[k].used) k = i;
  fedc_http_body_unref(c->ckpt_cache[k].body);
  c->ckpt_cache[k].round = round;
  c->ckpt_cache[k].body = body;
  c->ckpt_cache[k].used = ++c->ckpt_tick;
}

static void ckpt_done(uv_work_t *req, int status) {
  ckpt_work *w = req->data;
  fedc_coord *c = w->c;
  (void)status;
  c->ckpt_reading = 0;
  if (w->x) {
    fedc_http_exchange_on_abort(w->x, NULL, NULL);
    if (w->rc == 0)
      fedc_http_respond_ranged(w->x, w->hreq, "application/octet-stream", w->body);
    else if (w->rc == FEDC_ENOTFOUND)
      fedc_http_respond_error(w->x, 404, "not_found", "no model after round %d", (int)w->round);
    else
      fedc_http_respond_error(w->x, 503, "unavailable", "store: cannot read the checkpoint");
  }
  if (w->rc == 0) ckpt_keep(c, w->round, w->body);
  else fedc_free(w->bytes);
  fedc_free(w);
  c->other_work--;
  if (c->stopping) fedc_coordinator_stop(c);
}

void fedc__coord_serve_checkpoint(fedc_coord *c, fedc_http_exchange *x,
                                  const fedc_http_request *req, int32_t round) {
  for (int i = 0; i < COORD_CKPT_CACHE; i++)
    if (c->ckpt_cache[i].round == round && c->ckpt_cache[i].body) {
      c->ckpt_cache[i].used = ++c->ckpt_tick;
      fedc_http_respond_ranged(x, req, "application/octet-stream", c->ckpt_cache[i].body);
      return;
    }
  if (c->ckpt_reading) {
    static const char busy[] =
        "{\"error\":\"unavailable\",\"message\":\"a checkpoint is being read; retry\"}";
    fedc__coord_reject(c, REJECT_unavailable);
    fedc_http_respond(x, 503, "application/json", busy, sizeof busy - 1, "Retry-After: 1\r\n");
    return;
  }
  ckpt_work *w = fedc_calloc(1, sizeof *w);
  if (w == NULL) {
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  w->c = c;
  w->x = x;
  w->hreq = req;
  w->round = round;
  w->req.data = w;
  fedc_http_exchange_on_abort(x, ckpt_abort, w);
  if (uv_queue_work(c->loop, &w->req, ckpt_run, ckpt_done) != 0) {
    fedc_http_exchange_on_abort(x, NULL, NULL);
    fedc_free(w);
    fedc_http_respond_error(x, 503, "unavailable", "cannot queue the request");
    return;
  }
  c->ckpt_reading = 1;
  c->other_work++;
}

/* ---- start and stop ------------------------------------------------------ */

int fedc_coord_model_spec(const fedc_config *cfg, void *spec_out) {
  fedc_model_spec *spec = spec_out;
  int32_t classes = cfg->model_type == FEDC_MODEL_LOGREG ? 2
                    : cfg->model_type == FEDC_MODEL_LINREG ? 0 : cfg->classes;
  return fedc_model_spec_from_config(cfg, cfg->inputs, classes, spec);
}

/* The job's identity in the store: what a client trains must not change
 * under it across restarts (the rounds and hyper-parameters may). */
static char *job_spec_json(const fedc_coord *c) {
  if (c->spec.type == FEDC_MODEL_TENSORS) return fedc__coord_tensors_spec_json(c);
  char hidden[128] = "";
  for (int32_t i = 0, off = 0; i < c->spec.n_hidden; i++)
    off += snprintf(hidden + off, sizeof hidden - (size_t)off, "%s%d", i ? "," : "",
                    (int)c->spec.hidden[i]);
  char buf[512];
  snprintf(buf, sizeof buf,
           "{\"model\":{\"type\":\"%s\",\"inputs\":%d,\"outputs\":%d,\"hidden\":[%s]},"
           "\"seed\":%llu,\"strategy\":\"%s\"}",
           fedc_model_type_name(c->spec.type), (int)c->spec.n_in, (int)c->spec.n_out,
           hidden, (unsigned long long)c->cfg.seed, c->cfg.strategy);
  return fedc_strdup(buf);
}

static char *job_public_json(const fedc_coord *c) {
  cJSON *job = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(job, "model"),
        *train;
  cJSON_AddStringToObject(job, "id", c->job_id);
  cJSON_AddNumberToObject(job, "rounds", c->cfg.rounds);
  cJSON_AddStringToObject(model, "type", fedc_model_type_name(c->spec.type));
  if (c->spec.type == FEDC_MODEL_TENSORS && fedc__coord_tensors_job_json(c, model) != 0) {
    cJSON_Delete(job);
    return NULL;
  }
  if (c->spec.type != FEDC_MODEL_TENSORS) {
  cJSON_AddNumberToObject(model, "inputs", c->spec.n_in);
  cJSON_AddNumberToObject(model, "classes", c->cfg.classes);
  cJSON *hidden = cJSON_AddArrayToObject(model, "hidden");
  for (int32_t i = 0; i < c->spec.n_hidden; i++)
    cJSON_AddItemToArray(hidden, cJSON_CreateNumber(c->spec.hidden[i]));
  cJSON_AddNumberToObject(model, "l1", c->cfg.l1);
  cJSON_AddNumberToObject(model, "l2", c->cfg.l2);
  } /* a tensor job: its tensors say it all */
  train = cJSON_AddObjectToObject(job, "train");
  cJSON_AddNumberToObject(train, "epochs", c->cfg.epochs);
  cJSON_AddNumberToObject(train, "batch_size", c->cfg.batch_size);
  cJSON_AddNumberToObject(train, "lr", c->cfg.lr);
  cJSON_AddNumberToObject(train, "momentum", c->cfg.momentum);
  cJSON_AddNumberToObject(train, "prox_mu", c->cfg.prox_mu);
  /* class weighting and evaluation (issue: metrics by task) */
  cJSON_AddStringToObject(train, "class_weight", c->cfg.class_weight);
  cJSON_AddNumberToObject(train, "pos_weight", c->cfg.pos_weight);
  if (c->cfg.eval_rounds > 0) {
    cJSON *ev = cJSON_AddObjectToObject(job, "eval");
    cJSON_AddNumberToObject(ev, "every", c->cfg.eval_rounds);
    cJSON_AddNumberToObject(ev, "threshold", c->cfg.eval_threshold);
    cJSON_AddStringToObject(ev, "select", c->cfg.eval_select);
  }
  char seed[32]; /* a uint64 does not fit a JSON number: a decimal string */
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->cfg.seed);
  cJSON_AddStringToObject(job, "seed", seed);
  /* the strategy, for clients whose part depends on it (SCAFFOLD) */
  cJSON *strategy = cJSON_AddObjectToObject(job, "strategy");
  cJSON_AddStringToObject(strategy, "name", c->cfg.strategy);
  fedc__coord_job_fields(c, job); /* job_site.c: what a site's policy reads */
  fedc__coord_compression_json(c, job); /* coded_fold.c */
  char *text = cJSON_PrintUnformatted(job);
  cJSON_Delete(job);
  char *copy = text ? fedc_strdup(text) : NULL;
  cJSON_free(text);
  return copy;
}

/* Resume from the store, or start the job with the seeded initial model.
 * *wp is freed (and NULL) once the engine has it: a large model is then
 * held once, not twice, while its served body is made. */
static int restore(fedc_coord *c, float **wp) {
  float *w = *wp;
  int32_t last = 0;
  int rc = fedc_store_last_round(c->store, &last);
  if (rc != 0) return rc;
  uint8_t *bytes = NULL;
  size_t len = 0;
  fedc_http_body *held = NULL; /* a large model's start container (large_model.c) */
  const float *held_w = NULL;
  rc = fedc__coord_large_start(c, wp, last, &held, &held_w);
  if (rc != 0) return rc;
  if (held) {
    w = (float *)(uintptr_t)held_w; /* read only: the engine copies it, then adopts it */
  } else if (last == 0) {
    /* w holds the initial model (seeded, or [model] init's: tensor_job.c) */
    fedc_st_meta meta[] = {{"format", "fedc"}, {"job", c->job_id}, {"round", "0"}};
    rc = fedc__coord_model_encode(c, w, c->ints, meta, 3, &bytes, &len);
    if (rc == 0) rc = fedc_store_put_initial(c->store, bytes, len);
  } else {
    rc = fedc_store_checkpoint(c->store, last, &bytes, &len);
    if (rc == 0) rc = fedc__coord_model_decode(c, bytes, len, w, c->ints);
    if (rc != 0) {
      char msg[384];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(rc, "store %s: checkpoint of round %d: %s",
                          c->cfg.store_path, (int)last, msg);
    }
  }
  fedc_free(bytes);
  int32_t rounds = c->cfg.rounds;
  int32_t population = 0;
  if (rc == 0) {
    /* DP's sampling rate: clients_per_round of the enrolled clients */
    fedc_store_client *sc = NULL;
    rc = fedc_store_client_list(c->store, &sc, &population);
    fedc_free(sc);
  }
  fedc_pipeline_params pp;
  if (rc == 0) {
    fedc_pipeline_params_from_config(&c->cfg, population, &pp);
    pp.layout = &c->layout; /* F16/BF16 tensors are rounded at each commit */
    /* DP noise from a secret seed: clients know the job seed */
    if (pp.dp_on) rc = fedc_store_secret(c->store, "dp_seed", &pp.dp.seed);
    if (rc == 0) rc = fedc__coord_large_mode(c, &pp); /* large_model.c */
  }
  if (rc == 0) {
    fedc_engine_params ep = {.rounds = rounds < last ? last : rounds,
                             .clients_per_round = c->cfg.clients_per_round,
                             .min_clients = c->cfg.min_clients,
                             .seed = c->cfg.seed,
                             .strategy = c->cfg.strategy};
    rc = fedc__engine_new_pipeline(&ep, &pp, c->n_params, w, &c->engine);
  }
  if (rc == 0 && last > 0) rc = fedc_engine_restore(c->engine, last, w);
  if (rc == 0 && held) {
    fedc__coord_large_started(c, held, held_w);
    held = NULL;
  } else if (rc == 0) {
    fedc_free(w);
    *wp = NULL;
  }
  fedc_http_body_unref(held); /* only after a failure */
  if (rc == 0 && last > 0 && fedc_engine_opt_state_len(c->engine) > 0) {
    float *opt = NULL;
    size_t opt_len = 0;
    rc = fedc_store_opt_state(c->store, last, &opt, &opt_len);
    if (rc == 0 && opt_len > 0) rc = fedc_engine_opt_state_set(c->engine, opt, opt_len);
    fedc_free(opt);
  }
  if (rc != 0) return rc;
  c->round = last + 1;
  c->state = c->round > rounds ? ROUND_FINISHED : ROUND_WAITING;
  rc = fedc_store_rounds(c->store, &c->history, &c->n_history);
  c->history_cap = c->n_history;
  if (rc == 0 && c->n_history > 0 && c->cfg.dp_noise_multiplier > 0.0) {
    /* the privacy spent before the restart counts: replay the ledger */
    int32_t dp_rounds = 0;
    double clip = c->cfg.dp_clip_norm;
    for (int32_t i = 0; i < c->n_history; i++)
      if (c->history[i].epsilon > 0.0) {
        dp_rounds++;
        if (!isnan(c->history[i].clip_norm)) clip = c->history[i].clip_norm;
      }
    rc = fedc_engine_restore_privacy(c->engine, clip, dp_rounds);
  }
  if (rc == 0 && last > 0) {
    /* the clients counted in the last committed round, for late resends */
    fedc_store_update *u = NULL;
    int32_t n = 0;
    if (fedc_store_round_updates(c->store, last, &u, &n) == 0) {
      int32_t *ids = fedc_malloc_array((size_t)n + 1, sizeof(int32_t));
      for (int32_t i = 0; ids && i < n; i++) ids[i] = u[i].client_id;
      if (ids) fedc_engine_restore_reporters(c->engine, ids, n); /* best effort */
      fedc_free(ids);
      fedc_free(u);
    }
  }
  if (rc == 0) {
    fedc_store_client *sc = NULL;
    int32_t n = 0;
    rc = fedc_store_client_list(c->store, &sc, &n);
    for (int32_t i = 0; rc == 0 && i < n; i++) {
      coord_client *cl;
      rc = fedc__coord_client_add(c, &sc[i], &cl);
    }
    fedc_free(sc);
  }
  if (rc == 0) {
    uint8_t *mbytes = NULL;
    size_t mlen = 0;
    fedc_http_body *body = NULL;
    rc = fedc__coord_encode_model(c, fedc_engine_global(c->engine), c->ints, c->round - 1,
                                  &mbytes, &mlen, c->model_sha);
    if (rc == 0) rc = fedc__coord_model_wrap(&mbytes, mlen, &body);
    if (rc == 0) fedc__coord_model_set(c, body, NULL);
    if (rc == 0) fedc__coord_large_adopt(c, body); /* one copy of a large model */
  }
  if (rc == 0)
    fedc_log_info("msg=\"job %s\" job=%s round=%d rounds=%d store=%s",
                  last ? "resumed" : "started", c->job_id, (int)c->round,
                  (int)rounds, c->cfg.store_path);
  return rc;
}

static int load_test_set(fedc_coord *c) {
  const fedc_config *cfg = &c->cfg;
  if (!fedc__config_data_given(cfg, "test", FEDC_ROLE_COORDINATOR) ||
      cfg->model_type == FEDC_MODEL_TENSORS)
    return 0; /* no test set named (a defaulted one is not assumed); its clients evaluate */
  int rc = c->stats ? fedc__coord_stats_load_test(c, &c->test)
           : cfg->format == FEDC_FORMAT_IDX ? fedc_load_idx(cfg->test, cfg->test_labels, &c->test)
                                            : fedc_load_csv(cfg->test, cfg->label, &c->test);
  if (rc == 0 && c->test.d != c->spec.n_in)
    rc = fedc_error_set(FEDC_ECONFIG, "[data] test has %lld features, [model] inputs = %d",
                        (long long)c->test.d, (int)c->spec.n_in);
  if (rc == 0) rc = fedc_backend_open(FEDC_DEVICE_CPU, &c->eval_be);
  if (rc == 0) rc = fedc_trainer_new(c->eval_be, &c->spec, 512, &c->eval_tr);
  if (rc == 0)
    rc = fedc_data_view_open(c->eval_be, c->test.x, c->test.y, c->test.n, c->test.d,
                             &c->test_view);
  if (rc == 0) c->has_test = 1;
  else {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    rc = fedc_error_set(rc == FEDC_EIO || rc == FEDC_EFORMAT ? FEDC_ECONFIG : rc,
                        "[data] test: %s", msg);
  }
  return rc;
}

void fedc_coordinator_params_init(fedc_coordinator_params *p) {
  memset(p, 0, sizeof *p);
}

static void tick_closed(uv_handle_t *h);

/*
 * Start: everything that can fail is done before the coordinator takes
 * part in the loop, except the listeners; if one of them fails, the handles
 * already open are closed and the object frees itself when the tick's
 * close completes (the next time the program runs its loop).
 */
int fedc_coordinator_start(const fedc_coordinator_params *p, fedc_coord **out,
                           int *exit_code) {
  *out = NULL;
  *exit_code = FEDC_COORD_EXIT_USAGE;
  if (p == NULL || p->loop == NULL || p->settings == NULL)
    return fedc_error_set(FEDC_EINVAL, "coordinator: params need a loop and settings");
  uv_loop_t *loop = p->loop;
  const fedc_config *cfg = fedc__settings_config(p->settings);
  /* test hooks (faults.c, docs/hardening.md): off unless asked for */
  int hooks = fedc__faults_init(p->fail_alloc_after, p->fail_store_after, p->fail_commit_after);
  if (hooks != 0) return hooks;
  int rc = fedc_config_check_role(cfg, FEDC_ROLE_COORDINATOR);
  if (rc != 0) return rc;
  fedc_coord *c = fedc_calloc(1, sizeof *c);
  if (c == NULL) {
    *exit_code = FEDC_COORD_EXIT_RUNTIME;
    return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  }
  c->loop = loop;
  c->params = *p;
  c->params.settings = NULL; /* copied below, not kept */
  c->cfg = *cfg;
  pthread_mutex_init(&c->mu, NULL);
  uv_timer_init(loop, &c->tick);
  c->tick.data = c;
  float *w_init = NULL; /* the initial model, for a new store */
  rc = fedc__coord_stats_init(c); /* a schema sets [model] inputs */
  if (rc == 0) rc = fedc__coord_tensors_init(c, &w_init);
  if (rc == 0) rc = load_test_set(c);
  if (rc == 0) {
    rc = fedc_store_open(cfg->store_path, &c->store);
    if (rc == 0) rc = fedc_store_lock(c->store); /* one coordinator per store */
    if (rc != 0) *exit_code = FEDC_COORD_EXIT_STORE;
  }
  if (rc == 0) {
    char *spec = job_spec_json(c);
    rc = spec ? fedc_store_job_bind(c->store, spec, c->job_id)
              : fedc_error_set(FEDC_ENOMEM, "out of memory");
    fedc_free(spec);
  }
  if (rc == 0) {
    rc = restore(c, &w_init);
    if (rc != 0 && rc != FEDC_ENOMEM)
      *exit_code = rc == FEDC_ECONFIG ? FEDC_COORD_EXIT_USAGE : FEDC_COORD_EXIT_STORE;
  }
  fedc_free(w_init);
  if (rc == 0) rc = fedc__coord_eval_new(c);
  if (rc == 0 && (c->job_json = job_public_json(c)) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (rc == 0) fedc__coord_certs_start(c); /* the server certificate's expiry */
  /* what each round's audit record says of the strategy (audit.h) */
  if (rc == 0 && (c->audit_params = fedc__audit_params_json(&c->cfg)) == NULL) rc = FEDC_ENOMEM;
  if (rc == 0) rc = fedc__coord_stats_start(c);
  if (rc == 0 && cfg->secagg) rc = fedc__coord_secagg_init(c, p->secagg_debug_dir);
  if (rc == 0 && (c->async_rounds = fedc__coord_async_on(c)) != 0) rc = fedc__coord_async_init(c);
  if (rc == 0) {
    fedc_conn_limits lim = {
        .handshake_timeout_s = cfg->server_handshake_timeout_s,
        .max_conns_per_source = cfg->server_max_conns_per_source,
        .handshake_rate = cfg->server_handshake_rate,
        .handshake_burst = cfg->server_handshake_burst,
        .slots = cfg->server_max_connections,
        .reserved_share = cfg->server_reserved_share};
    fedc_conn_guard_fd_warn(&lim);
    fedc_http_server_opts o = {
        .listen = cfg->server_listen, .tls = 1, .ca_path = cfg->tls_ca, .limits = &lim,
        .cert_path = cfg->tls_cert, .key_path = cfg->tls_key,
        .require_client_cert = cfg->tls_require_client_cert,
        .max_body = (size_t)(cfg->server_max_body_mb * 1048576.0),
        .idle_timeout_s = cfg->server_idle_timeout_s, .max_connections = 100000,
        .handler = fedc__coord_handle, .ctx = c,
        .header_timeout_s = cfg->server_header_timeout_s,
        .request_timeout_s = cfg->server_request_timeout_s,
        .min_rate_bytes_s = cfg->server_min_rate_bytes_s,
        .rate_window_s = cfg->server_rate_window_s, .admit = fedc__coord_admit};
    rc = fedc_http_server_start(loop, &o, &c->server);
    if (rc != 0) *exit_code = rc == FEDC_ECONFIG ? FEDC_COORD_EXIT_USAGE : FEDC_COORD_EXIT_LISTEN;
  }
  if (rc == 0 && cfg->server_status_listen[0]) {
    fedc_http_server_opts o = {
        /* read-only GETs: no body is ever needed (STATUS_MAX_BODY) */
        .listen = cfg->server_status_listen, .tls = 0, .max_body = STATUS_MAX_BODY,
        .idle_timeout_s = cfg->server_idle_timeout_s, .max_connections = 1000,
        .handler = fedc__coord_handle_status_only, .ctx = c,
        .header_timeout_s = cfg->server_header_timeout_s,
        .request_timeout_s = cfg->server_request_timeout_s,
        .min_rate_bytes_s = cfg->server_min_rate_bytes_s,
        .rate_window_s = cfg->server_rate_window_s,
        .admit = fedc__coord_admit_status_only};
    rc = fedc_http_server_start(loop, &o, &c->status_server);
    if (rc != 0) *exit_code = FEDC_COORD_EXIT_LISTEN;
  }
  if (rc != 0) {
    /* no callback of this start runs: close what is open, free on close */
    c->stopping = c->stopped = 1;
    c->free_when_closed = 1;
    if (c->server) fedc_http_server_close(c->server);
    if (c->status_server) fedc_http_server_close(c->status_server);
    c->server = c->status_server = NULL;
    uv_close((uv_handle_t *)&c->tick, tick_closed);
    return rc;
  }
  uv_timer_start(&c->tick, on_tick, TICK_MS, TICK_MS);
  c->exit_code = FEDC_COORD_EXIT_OK;
  *exit_code = FEDC_COORD_EXIT_OK;
  *out = c;
  fedc__faults_arm();
  return 0;
}

int fedc_coordinator_port(const fedc_coord *c) { return fedc_http_server_port(c->server); }

static void tick_closed(uv_handle_t *h) {
  fedc_coord *c = h->data;
  if (c->free_when_closed) {
    fedc_coordinator_free(c);
    return;
  }
  if (!c->stopped) {
    c->stopped = 1;
    if (c->params.on_stopped) c->params.on_stopped(c, c->exit_code, c->params.user_data);
  }
}

/*
 * Stop: no new rounds and no new commits. A commit in flight finishes first
 * (its completion calls back here through fedc__coord_worker_done), and so
 * do updates being folded and a client-list refresh; an open round is not
 * committed with what it has: it is run again after a restart. Then the
 * servers close (aborting pending polls) and the tick goes, which releases
 * the loop; on_stopped runs from the tick's close.
 */
void fedc_coordinator_stop(fedc_coord *c) {
  c->stopping = 1;
  if (c->state == ROUND_COMMITTING || c->inflight > 0 || c->refreshing || c->other_work > 0)
    return;
  if (c->server) {
    fedc_http_server_close(c->server);
    c->server = NULL;
  }
  if (c->status_server) {
    fedc_http_server_close(c->status_server);
    c->status_server = NULL;
  }
  if (!uv_is_closing((uv_handle_t *)&c->tick)) uv_close((uv_handle_t *)&c->tick, tick_closed);
}

void fedc__coord_worker_done(fedc_coord *c) {
  if (c->stopping) fedc_coordinator_stop(c);
  else fedc__coord_step(c);
}

int fedc_coordinator_exit_code(const fedc_coord *c) { return c->exit_code; }

void fedc_coordinator_free(fedc_coord *c) {
  if (c == NULL) return;
  fedc__coord_secagg_free(c);
  fedc__coord_eval_free(c);
  fedc__coord_async_free(c);
  fedc__coord_upload_free(c);
  fedc_engine_free(c->engine);
  fedc_http_body_unref(c->global_body);
  if (c->spill_path[0]) fedc__coord_large_delta_reset(c); /* large_delta.c */
  fedc_store_close(c->store);
  fedc_store_close(c->ckpt_store);
  for (int i = 0; i < COORD_CKPT_CACHE; i++) fedc_http_body_unref(c->ckpt_cache[i].body);
  fedc_free(c->round_updates);
  fedc_free(c->clients);
  fedc__client_index_free(&c->clients_by_fpr);
  fedc__coord_model_set(c, NULL, NULL);
  fedc_free(c->history);
  fedc_free(c->job_json);
  fedc_free(c->audit_params);
  fedc_free(c->certs);
  fedc__coord_tensors_free(c);
  fedc__coord_stats_free(c);
  if (c->eval_be) fedc_data_view_close(c->eval_be, &c->test_view);
  fedc_trainer_free(c->eval_tr);
  fedc_backend_close(c->eval_be);
  fedc_dataset_free(&c->test);
  pthread_mutex_destroy(&c->mu);
  fedc_free(c);
  fedc__faults_report();
}
