/*
 * relay.c - the sites' side of a relay (relay.h, docs/relays.md): protocol
 * v1 served to the sites below it, over the coordinator's HTTP server with
 * mutual TLS. A site is known by its certificate's fingerprint (any
 * certificate the job's CA signed: the allow list is the parent's business
 * for the relay itself). Every site is asked to train in every round the
 * parent gives the relay (clients_per_round = all below a relay), with the
 * parent's job object and the parent's model bytes verbatim, so a site
 * trains exactly what it would have trained under the parent directly.
 *
 * Updates are checked like the coordinator checks them (container, names,
 * shapes, finite values, metadata, round) and folded into FedAvg's 128-bit
 * accumulator; a child relay's partial sum is added to it word by word,
 * which is how relays nest. What a relay supports is checked at start
 * (relay_refusal): FedAvg's exact sum, nothing that acts on one update.
 * Under the parent's secure aggregation the sites' requests of a secure
 * round (/v1/secagg/, the masked update) go to relay_secagg_sites.c.
 */
#include "relay.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "http_range.h"
#include "ml/model_io.h"
#include "wire/partial.h"
#include "wire/update_meta.h"
#include <fedc/coordinator.h>

#define RELAY_POLL_MAX_S 5.0
#define RELAY_TICK_MS 100

double fedc__relay_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void fedc__relay_wait_until(fedc_relay *r, double deadline, int (*done)(const fedc_relay *)) {
  while (!r->stop && !done(r) && fedc__relay_now() < deadline) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
  }
}

void fedc__relay_wake(fedc_relay *r) {
  uv_async_send(&r->wake);
}

static void respond_json(fedc_http_exchange *x, cJSON *o) {
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (s == NULL) {
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  fedc_http_respond(x, 200, "application/json", s, strlen(s), NULL);
  cJSON_free(s);
}

/* Under mu: the site's index, or -1. */
static int32_t site_of(const fedc_relay *r, const char *fpr) {
  for (int32_t i = 0; i < r->n_sites; i++)
    if (strcmp(r->sites[i], fpr) == 0) return i;
  return -1;
}

/*
 * A site's client id, the same in every run of the relay: a site keeps the
 * id it joined with across the relay's restarts, and secure aggregation
 * names its parties by it. 1 + the first 30 bits of the fingerprint (hex).
 */
static uint32_t site_id_of(const char *fpr) {
  uint32_t v = 0;
  for (int i = 0; i < 8 && fpr[i]; i++) {
    char ch = fpr[i];
    uint32_t d = ch >= '0' && ch <= '9' ? (uint32_t)(ch - '0')
                 : ch >= 'a' && ch <= 'f' ? (uint32_t)(ch - 'a' + 10)
                 : ch >= 'A' && ch <= 'F' ? (uint32_t)(ch - 'A' + 10) : 0;
    v = v << 4 | d;
  }
  return 1 + (v & 0x3fffffffu);
}

/* Under mu: add a site (sized arrays grow together); its index or -1. */
static int32_t site_add(fedc_relay *r, const char *fpr) {
  int32_t i = site_of(r, fpr);
  if (i >= 0) return i;
  if (r->n_sites == r->sites_cap) {
    int32_t cap = r->sites_cap ? 2 * r->sites_cap : 16;
    char(*s)[65] = fedc_realloc(r->sites, (size_t)cap * sizeof *s);
    if (s == NULL) return -1;
    r->sites = s;
    uint8_t *rep = fedc_realloc(r->reported, (size_t)cap);
    if (rep == NULL) return -1;
    r->reported = rep;
    uint32_t *ids = fedc_realloc(r->site_ids, (size_t)cap * sizeof *ids);
    if (ids == NULL) return -1;
    r->site_ids = ids;
    r->sites_cap = cap;
  }
  snprintf(r->sites[r->n_sites], 65, "%s", fpr);
  r->reported[r->n_sites] = 0;
  uint32_t id = site_id_of(fpr);
  for (int32_t j = 0; j < r->n_sites; j++)
    if (r->site_ids[j] == id)
      fedc_log_warn("msg=\"relay: two sites' fingerprints give the same client id\" id=%u",
                    (unsigned)id);
  r->site_ids[r->n_sites] = id;
  return r->n_sites++;
}

/* ---- what a site is told ---------------------------------------------------- */

/* Under mu: the task of site i now, or NULL to keep its poll waiting. */
static cJSON *task_of(fedc_relay *r, int32_t i, int force) {
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) return NULL;
  double now = fedc__relay_now();
  if (r->finished) {
    cJSON_AddStringToObject(o, "action", "finished");
    cJSON_AddNumberToObject(o, "round", r->round);
  } else if (r->open && !r->reported[i] && now < r->deadline && (!r->secure || r->sa)) {
    /* in a secure round, reported = advertised (relay_secagg_sites.c) */
    cJSON_AddStringToObject(o, "action", "train");
    cJSON_AddNumberToObject(o, "round", r->round);
    cJSON_AddStringToObject(o, "model_sha256", r->model_sha);
    cJSON_AddNumberToObject(o, "deadline_s", r->deadline - now);
    if (r->secure) cJSON_AddTrueToObject(o, "secagg");
  } else if (force) {
    cJSON_AddStringToObject(o, "action", "wait");
    cJSON_AddNumberToObject(o, "round", r->round > 0 ? r->round : 1);
    cJSON_AddNumberToObject(o, "retry_after_ms", 200);
  } else {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* Loop thread: answer the held polls that have a task now, or whose time is up. */
static void answer_polls(fedc_relay *r, int all) {
  double now = fedc__relay_now();
  int32_t k = 0;
  for (int32_t j = 0; j < r->n_polls; j++) {
    relay_poll *p = &r->polls[j];
    pthread_mutex_lock(&r->mu);
    cJSON *t = task_of(r, p->site, all || now >= p->until);
    pthread_mutex_unlock(&r->mu);
    if (t == NULL) {
      r->polls[k++] = *p;
      continue;
    }
    fedc_http_exchange_on_abort(p->x, NULL, NULL);
    respond_json(p->x, t);
  }
  r->n_polls = k;
}

static void poll_abort(void *ud, fedc_http_exchange *x) {
  fedc_relay *r = ud;
  for (int32_t j = 0; j < r->n_polls; j++)
    if (r->polls[j].x == x) {
      r->polls[j] = r->polls[--r->n_polls];
      return;
    }
}

static void on_task(fedc_relay *r, fedc_http_exchange *x, const fedc_http_request *req,
                    int32_t site) {
  double wait = 0;
  const char *w = strstr(req->query, "wait=");
  if (w != NULL) wait = strtod(w + 5, NULL);
  if (!(wait >= 0)) wait = 0;
  if (wait > RELAY_POLL_MAX_S) wait = RELAY_POLL_MAX_S;
  pthread_mutex_lock(&r->mu);
  cJSON *t = task_of(r, site, wait <= 0);
  pthread_mutex_unlock(&r->mu);
  if (t != NULL) {
    respond_json(x, t);
    return;
  }
  if (r->n_polls == r->polls_cap) {
    int32_t cap = r->polls_cap ? 2 * r->polls_cap : 16;
    relay_poll *p = fedc_realloc(r->polls, (size_t)cap * sizeof *p);
    if (p == NULL) {
      fedc_http_respond_error(x, 503, "unavailable", "out of memory");
      return;
    }
    r->polls = p;
    r->polls_cap = cap;
  }
  r->polls[r->n_polls++] = (relay_poll){x, site, fedc__relay_now() + wait};
  fedc_http_exchange_on_abort(x, poll_abort, r);
}

static void on_join(fedc_relay *r, fedc_http_exchange *x, int32_t site) {
  pthread_mutex_lock(&r->mu);
  cJSON *job = cJSON_Parse(r->job_json);
  int32_t round = r->round;
  pthread_mutex_unlock(&r->mu);
  cJSON *o = cJSON_CreateObject();
  if (job == NULL || o == NULL) {
    cJSON_Delete(job);
    cJSON_Delete(o);
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  cJSON_DeleteItemFromObjectCaseSensitive(job, "round");
  cJSON_AddNumberToObject(job, "round", round);
  pthread_mutex_lock(&r->mu);
  uint32_t id = r->site_ids[site];
  pthread_mutex_unlock(&r->mu);
  cJSON_AddNumberToObject(o, "client_id", id);
  cJSON_AddItemToObject(o, "job", job);
  respond_json(x, o);
}

static void on_model(fedc_relay *r, fedc_http_exchange *x, const fedc_http_request *req,
                     const char *which) {
  char *end = NULL;
  long want = strtol(which, &end, 10);
  pthread_mutex_lock(&r->mu);
  if (end != which && *end == '\0' && r->model != NULL && want == r->round) {
    fedc_http_body *b = fedc_http_body_ref(r->model); /* the link may replace it */
    pthread_mutex_unlock(&r->mu);
    fedc_http_respond_ranged(x, req, "application/octet-stream", b);
    fedc_http_body_unref(b);
    return;
  }
  int32_t round = r->round;
  pthread_mutex_unlock(&r->mu);
  fedc_http_respond_error(x, 404, "not_found", "this relay holds the model of round %d only",
                          (int)round);
}

static void answer_update(fedc_http_exchange *x, int32_t round, int duplicate) {
  char body[128];
  int n = snprintf(body, sizeof body, "{\"accepted\":true,\"round\":%d,\"duplicate\":%s}",
                   (int)round, duplicate ? "true" : "false");
  fedc_http_respond(x, 200, "application/json", body, (size_t)n, NULL);
}

/*
 * Under mu: fold a child relay's partial into the open round's sums (the
 * words add modulo 2^128, as the parent adds this relay's).
 */
static int fold_partial(fedc_relay *r, const fedc_partial *p) {
  if (p->n != r->n_params)
    return fedc_error_set(FEDC_ESHAPE, "partial of %llu weights, the model has %zu",
                          (unsigned long long)p->n, r->n_params);
  __int128 *acc;
  uint64_t *total;
  fedc_fedavg_state(r->sum, &acc, &total);
  for (uint64_t i = 0; i < p->n; i++)
    acc[i] = (__int128)((unsigned __int128)acc[i] + (unsigned __int128)fedc_partial_sum(p, i));
  *total += p->total;
  r->updates += p->updates;
  r->loss_sum += p->train_loss * (double)p->total;
  return 0;
}

/*
 * Under mu: what the parent's pipeline does to an update before FedAvg
 * folds it when [strategy] max_weight_delta is on (round/pipeline.c,
 * condition): the bound checked on w - x, and w rebuilt as the float
 * (w - x) plus x, which need not be w's own bits. The relay must do the
 * same to fold the same integers, so its max_weight_delta must be the
 * root's (both default to 1e4; docs/relays.md).
 */
static int condition(fedc_relay *r, float *w, size_t n) {
  double bound = r->cfg->max_weight_delta;
  if (bound <= 0.0 || r->global == NULL) return 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)w[i] - (double)r->global[i];
    if (fabs(d) > bound)
      return fedc_error_set(FEDC_ERANGE,
                            "update's weight %zu is %.6g from the global model's, "
                            "over [strategy] max_weight_delta = %.6g",
                            i, fabs(d), bound);
  }
  for (size_t i = 0; i < n; i++) {
    float y = (float)((double)w[i] - (double)r->global[i]);
    w[i] = y + r->global[i];
  }
  return 0;
}

/*
 * A site's update, checked whole before the accumulator changes: a
 * safetensors container of the job's model (the coordinator's checks), or
 * a child relay's partial sum.
 */
static void on_update(fedc_relay *r, fedc_http_exchange *x, const fedc_http_request *req,
                      int32_t site) {
  fedc_partial part;
  float *w = NULL;
  fedc_st_file *f = NULL;
  fedc_update_meta meta;
  int is_partial = fedc_partial_is(req->body, req->body_len);
  int rc = 0;
  int32_t round = 0;
  uint64_t samples = 0;
  double loss = 0;
  pthread_mutex_lock(&r->mu);
  size_t n = r->n_params;
  fedc_model_spec spec = r->spec;
  pthread_mutex_unlock(&r->mu);
  if (is_partial) {
    rc = fedc_partial_decode(req->body, req->body_len, &part);
    round = part.round;
  } else {
    w = fedc_malloc_array(n ? n : 1, sizeof *w);
    rc = w == NULL ? fedc_error_set(FEDC_ENOMEM, "out of memory")
                   : fedc_model_decode(&spec, req->body, req->body_len, w, &f);
    if (rc == 0) rc = fedc_update_meta_parse(f, &meta);
    if (rc == 0) {
      round = (int32_t)meta.round;
      samples = (uint64_t)meta.num_samples;
      loss = meta.train_loss;
    }
  }
  if (rc != 0) {
    fedc_http_respond_error(x, rc == FEDC_ENOMEM ? 503 : 400,
                            rc == FEDC_ESHAPE       ? "bad_shape"
                            : rc == FEDC_ECHECKSUM  ? "bad_checksum"
                            : rc == FEDC_ENONFINITE ? "non_finite"
                            : rc == FEDC_ENOMEM     ? "unavailable"
                                                    : "bad_container",
                            "%s", fedc_error_msg());
    fedc_st_free(f);
    fedc_free(w);
    return;
  }
  pthread_mutex_lock(&r->mu);
  int dup = 0;
  if (!r->open || round != r->round) {
    rc = FEDC_ESTALE;
  } else if (r->reported[site]) {
    dup = 1;
  } else {
    if (!is_partial) rc = condition(r, w, n);
    if (rc == 0) rc = is_partial ? fold_partial(r, &part) : r->sum->ops->add(r->sum, w, n, samples);
    if (rc == 0) {
      if (!is_partial) {
        r->updates++;
        r->loss_sum += loss * (double)samples;
      }
      r->reported[site] = 1;
      r->n_reported++;
      pthread_cond_broadcast(&r->cv);
    }
  }
  int32_t open_round = r->round, reported = r->n_reported;
  char msg[256];
  snprintf(msg, sizeof msg, "%s", rc ? fedc_error_msg() : "");
  pthread_mutex_unlock(&r->mu);
  fedc_st_free(f);
  fedc_free(w);
  if (rc == FEDC_ESTALE) {
    fedc_http_respond_error(x, 409, "stale_round", "update for round %d, round %d is %s",
                            (int)round, (int)open_round, "not open here");
  } else if (rc != 0) {
    fedc_http_respond_error(x, 400, rc == FEDC_ESHAPE ? "bad_shape" : "non_finite", "%s", msg);
  } else {
    if (!dup)
      fedc_log_info("round=%d site=%d msg=\"update accepted\" reported=%d/%d%s", (int)round,
                    (int)site + 1, (int)reported, (int)r->cfg->relay_sites,
                    is_partial ? " from=relay" : "");
    answer_update(x, round, dup);
  }
}

static void handle(void *ctx, fedc_http_exchange *x, const fedc_http_request *req) {
  fedc_relay *r = ctx;
  const char *p = req->path;
  int post = strcmp(req->method, "POST") == 0;
  if (req->peer_fingerprint[0] == '\0') {
    fedc_http_respond_error(x, 403, "forbidden", "a client certificate is required");
    return;
  }
  pthread_mutex_lock(&r->mu);
  int ready = r->job_json != NULL, secure = r->secure;
  int32_t site = site_of(r, req->peer_fingerprint);
  /* a site known to a relay that was restarted since has no need to join
   * again: its certificate is its identity (403 would stop it for good) */
  if (ready && site < 0) site = site_add(r, req->peer_fingerprint);
  pthread_mutex_unlock(&r->mu);
  if (strcmp(p, "/v1/join") != 0 && strcmp(p, "/v1/task") != 0 && strcmp(p, "/v1/update") != 0 &&
      strncmp(p, "/v1/model/", 10) != 0 && strncmp(p, "/v1/secagg/", 11) != 0) {
    fedc_http_respond_error(x, 404, "not_found", "no such path: %s", p);
    return;
  }
  if (!ready) {
    fedc_http_respond(
        x, 503, "application/json",
        "{\"error\":\"unavailable\",\"message\":\"the relay has not joined its parent yet\"}", 81,
        "Retry-After: 1\r\n");
    return;
  }
  if (site < 0) {
    fedc_http_respond_error(x, 503, "unavailable", "out of memory for a site");
    return;
  }
  if (strcmp(p, "/v1/join") == 0 && post)
    on_join(r, x, site);
  else if (strcmp(p, "/v1/task") == 0 && !post)
    on_task(r, x, req, site);
  else if (strncmp(p, "/v1/model/", 10) == 0 && !post)
    on_model(r, x, req, p + 10);
  else if (strncmp(p, "/v1/secagg/", 11) == 0) /* relay_secagg_sites.c */
    fedc__relay_sa_handle(r, x, req, site);
  else if (strcmp(p, "/v1/update") == 0 && post && secure)
    fedc__relay_sa_masked(r, x, req, site);
  else if (strcmp(p, "/v1/update") == 0 && post)
    on_update(r, x, req, site);
  else
    fedc_http_respond_error(x, 405, "method_not_allowed", "wrong method for %s", p);
}

/* ---- the loop ------------------------------------------------------------------ */

static void on_wake(uv_async_t *a) {
  fedc_relay *r = a->data;
  answer_polls(r, 0);
  fedc__relay_sa_polls(r, 0);
  pthread_mutex_lock(&r->mu);
  int stop = r->stop;
  pthread_mutex_unlock(&r->mu);
  if (stop) {
    answer_polls(r, 1);
    fedc__relay_sa_polls(r, 1);
    uv_timer_stop(&r->tick);
    uv_close((uv_handle_t *)&r->tick, NULL);
    uv_close((uv_handle_t *)&r->wake, NULL);
    if (r->server) fedc_http_server_close(r->server);
    r->server = NULL;
  }
}

static void on_tick(uv_timer_t *t) {
  answer_polls(t->data, 0);
  fedc__relay_sa_polls(t->data, 0);
}

static fedc_relay *g_relay; /* for the signal handler only */

static void on_signal(int sig) {
  (void)sig;
  if (g_relay == NULL) return;
  g_relay->stop = 1; /* read by both threads; they also wake on their own */
  uv_async_send(&g_relay->wake);
}

/*
 * What a relay can forward exactly, checked before anything starts: its own
 * config must ask for nothing that acts on single updates (the parent
 * checks its own: relay_fold.c).
 */
static int relay_refusal(const fedc_config *cfg) {
  if (cfg->relay_parent[0] == '\0' || cfg->relay_cert[0] == '\0' || cfg->relay_key[0] == '\0')
    return fedc_error_set(FEDC_ECONFIG, "a relay needs [relay] parent, cert and key");
  if (cfg->server_listen[0] == '\0' || cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0' ||
      cfg->tls_ca[0] == '\0')
    return fedc_error_set(FEDC_ECONFIG,
                          "a relay needs [server] listen and [tls] ca, cert and key (its sites "
                          "connect with mutual TLS)");
  if (cfg->dp_noise_multiplier > 0 || cfg->norm_bound > 0)
    return fedc_error_set(FEDC_ECONFIG,
                          "a relay forwards FedAvg's exact sum only: [privacy] "
                          "noise_multiplier and [strategy] norm_bound are refused "
                          "(docs/relays.md)");
  /* [privacy] secure_aggregation follows the parent's job (relay_link.c);
   * set here it only insists on it. Its threshold and neighbours shape the
   * relay's own session with its sites. */
  return 0;
}

int fedc__relay_main(const fedc_config *cfg, int argc, char **argv) {
  (void)argv;
  if (argc > 1) {
    fprintf(stderr, "usage: fedc-coordinator --config FILE relay\n");
    return FEDC_COORD_EXIT_USAGE;
  }
  if (relay_refusal(cfg) != 0) {
    fprintf(stderr, "fedc-coordinator relay: %s\n", fedc_error_msg());
    return FEDC_COORD_EXIT_USAGE;
  }
  fedc_relay *r = fedc_calloc(1, sizeof *r);
  if (r == NULL) return FEDC_COORD_EXIT_RUNTIME;
  r->cfg = cfg;
  const char *dbg = getenv("FEDC_SECAGG_DEBUG_DIR"); /* a test hook, as the coordinator's */
  if (dbg != NULL) snprintf(r->sa_debug_dir, sizeof r->sa_debug_dir, "%s", dbg);
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  uv_loop_init(&r->loop);
  uv_async_init(&r->loop, &r->wake, on_wake);
  r->wake.data = r;
  uv_timer_init(&r->loop, &r->tick);
  r->tick.data = r;
  fedc_http_server_opts o = {.listen = cfg->server_listen,
                             .tls = 1,
                             .ca_path = cfg->tls_ca,
                             .cert_path = cfg->tls_cert,
                             .key_path = cfg->tls_key,
                             .require_client_cert = 1,
                             .max_body = (size_t)(cfg->server_max_body_mb * 1048576.0),
                             .idle_timeout_s = cfg->server_idle_timeout_s,
                             .max_connections = 4096,
                             .handler = handle,
                             .ctx = r,
                             .header_timeout_s = cfg->server_header_timeout_s,
                             .request_timeout_s = cfg->server_request_timeout_s};
  int code = FEDC_COORD_EXIT_OK;
  if (fedc_http_server_start(&r->loop, &o, &r->server) != 0) {
    fprintf(stderr, "fedc-coordinator relay: %s\n", fedc_error_msg());
    code = FEDC_COORD_EXIT_LISTEN;
    uv_close((uv_handle_t *)&r->tick, NULL);
    uv_close((uv_handle_t *)&r->wake, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
  } else {
    fedc_log_info("msg=\"relay listening\" address=%s port=%d parent=%s sites=%d",
                  cfg->server_listen, fedc_http_server_port(r->server), cfg->relay_parent,
                  (int)cfg->relay_sites);
    g_relay = r;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    uv_timer_start(&r->tick, on_tick, RELAY_TICK_MS, RELAY_TICK_MS);
    pthread_t link;
    pthread_create(&link, NULL, fedc__relay_link_main, r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    void *res = NULL;
    pthread_join(link, &res);
    if (res != NULL) code = FEDC_COORD_EXIT_RUNTIME;
    g_relay = NULL;
    fedc_log_info("msg=\"relay stopped\" bytes_up=%llu", (unsigned long long)r->bytes_up);
  }
  uv_loop_close(&r->loop);
  fedc_strategy_free(r->sum);
  fedc_http_body_unref(r->model);
  fedc_free(r->global);
  fedc_free(r->job_json);
  fedc_free(r->sites);
  fedc_free(r->reported);
  fedc_free(r->site_ids);
  fedc_free(r->polls);
  fedc_free(r->sa_polls);
  fedc__relay_sa_close(r);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  fedc_free(r);
  return code;
}
