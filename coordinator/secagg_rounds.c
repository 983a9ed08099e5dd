/*
 * secagg_rounds.c - secure aggregation in the coordinator ([privacy]
 * secure_aggregation = true): the /v1/secagg/ endpoints, the masked
 * updates of POST /v1/update, the phases of each round and their
 * deadlines, and the hand-over of the unmasked sum to the round engine
 * (docs/protocol.md, "Secure aggregation"; the protocol is shared/secagg.h).
 *
 * A round's phases, each closed when every party still expected has sent
 * its message or at its deadline, a fraction of [job] round_timeout_s
 * after the round opened:
 *
 *   advertise  (training happens first)  ADVERTISE in       by 0.50
 *   shares     GET keys answered         SHARES in          by 0.65
 *   masked     GET myshares answered     masked updates in  by 0.85
 *   unmask     GET survivors answered    UNMASK in          by 1.00
 *
 * A client that does not answer a phase is a dropout; a phase that ends
 * with too few parties for the protocol to recover fails the round, which
 * is then abandoned like one below quorum (no partial average is ever
 * taken). When the unmask phase ends, the commit worker reconstructs the
 * masks, removes them and gives the engine the survivors' weighted average
 * (fedc_engine_submit_sum). The coordinator never holds one client's
 * update in the clear: what it receives are masked words.
 *
 * Threads: the protocol object (fedc_secagg_server) is used under c->mu,
 * by the loop thread for the small messages and by workers for folding
 * masked updates and for the final reconstruction; the loop thread keeps
 * its own copy of the phase and per-party progress for status pages and
 * long-polls, so that it never waits on a commit in progress.
 *
 * Who was selected is the engine's alone. fedc__coord_secagg_open hands
 * the engine's selection to the protocol object, whose parties it becomes:
 * the protocol needs them (the masking graph, the share routing), fixed
 * for the round, and refuses anyone else's messages; nothing here reads
 * them back as the selection. What this file keeps per client is the
 * protocol's progress only: `parties` lists the clients whose ADVERTISE
 * the protocol accepted, in that order, each with the last phase whose
 * message came. A selected client that never advertised is not in it,
 * and the selection's size is asked of the engine (or, in /v1/status,
 * given by status.c), so no list here can disagree with the engine about
 * who was selected.
 *
 * A relay (docs/relays.md, "Secure aggregation") is one party whose masked
 * input is its subtree's sum, already quantized and weighted, marked
 * format "fedc-secagg-relay": its num_samples, the sites that survived its
 * own session, may be below what it advertised and is its weight
 * (fedc_secagg_server_add_masked_weighted).
 *
 * A client whose revealed shares disagree with the dealers' secrets (the
 * protocol object locates them at the commit) is logged, counted for
 * /metrics, listed in /v1/status and never selected again by this process
 * (docs/privacy.md, "A client that reveals wrong shares"); the round
 * commits when the other shares suffice.
 *
 * A job with a schema runs one more session before round 1, the
 * statistics session (stats_phase.c drives it; "the statistics session"
 * below): the same protocol object and exchanges with round number 0, its
 * own parties, a vector of limb words summed unweighted, and the masked
 * words arriving on POST /v1/stats; it is unmasked on the loop thread (a
 * few thousand words).
 *
 * Test hook: with a debug folder (fedc_coordinator_params
 * secagg_debug_dir; fedc-coordinator takes it from FEDC_SECAGG_DEBUG_DIR),
 * the coordinator writes every masked update it receives there as
 * round-<r>-client-<id>.safetensors (the statistics session's as
 * stats-client-<id>.safetensors), to show what it saw.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/alloc.h"
#include "coord_internal.h"
#include "secagg_route.h"
#include "base/error.h"
#include "base/log.h"
#include "base/rng.h"
#include "wire/safetensors.h"
#include "privacy/secagg.h"
#include "wire/update_meta.h"

static const double PHASE_END[4] = {0.50, 0.65, 0.85, 1.00};

enum { WAIT_KEYS = 0, WAIT_MYSHARES = 1, WAIT_SURVIVORS = 2 };
static const char *const WAIT_NAME[3] = {"keys", "myshares", "survivors"};

typedef struct sa_round sa_round;

/* A client that took part in the round's protocol: its last phase whose
 * message was accepted (FEDC_SECAGG_ADVERTISE at least). */
typedef struct sa_party {
  int32_t client;
  int8_t progress;
} sa_party;

/* A pending long-poll for one of the server's broadcasts. */
typedef struct sa_wait {
  sa_round *r;
  fedc_http_exchange *x;
  int32_t client;
  int kind;
  double deadline;
  struct sa_wait *prev, *next;
} sa_wait;

struct sa_round {
  int32_t round;
  int stats;     /* the statistics session (round 0, stats_phase.c) */
  int32_t n_sel; /* its parties (a round's come from the engine) */
  int32_t *sel_ids;
  size_t n_words;
  fedc_secagg_server *srv; /* under c->mu */
  /* the loop thread's copy */
  fedc_secagg_phase phase;
  double opened_at, closed_at[4];
  int done, failed;
  char why[256];
  sa_party *parties; /* who advertised, in that order (room for the
                        selection, made at open: appending never allocates) */
  int32_t n_parties, parties_cap;
  int32_t counts[4]; /* messages accepted per phase */
  int32_t threshold, frac_bits;
  sa_wait *waits;
  /* written by the commit worker, read on the loop thread after it */
  int fold_ok;
  fedc_secagg_result res;
  int32_t *liars; /* revealed wrong shares (fedc_secagg_server_excluded) */
  int32_t n_liars;
};

/* The outcome of the last secure round, for /v1/status. */
typedef struct sa_last {
  int32_t round;
  int committed;
  int32_t survivors, dropped, excluded, frac_bits, threshold;
  double phase_secs[4];
  char why[256];
} sa_last;

struct coord_secagg {
  sa_round *cur;
  sa_last last;
  int has_last;
  int32_t opens;
  /* clients that revealed wrong shares: never selected again by this
   * process (the store has no per-job exclusion; see docs/privacy.md) */
  int32_t *excluded;
  int32_t n_excluded, excluded_cap;
  uint64_t excluded_total; /* /metrics */
  char debug_dir[FEDC_CONFIG_PATH_MAX];
};

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- lifecycle -------------------------------------------------------------- */

/*
 * The pipeline must act on the aggregate: the strategy must declare itself
 * additive and secure-aggregation safe, and no norm bound or DP clip may
 * ask for single updates (the shared capability check says which).
 */
int fedc__coord_secagg_init(fedc_coord *c, const char *debug_dir) {
  fedc_strategy_needs drv;
  fedc_strategy_needs_init(&drv);
  drv.can_secagg = 1;
  drv.driver = "the coordinator";
  int rc = fedc_config_check_strategy(&c->cfg, &drv);
  if (rc != 0) return rc;
  c->secagg = fedc_calloc(1, sizeof *c->secagg);
  if (c->secagg == NULL) return fedc_error_set(FEDC_ENOMEM, "coordinator: out of memory");
  if (debug_dir && debug_dir[0])
    snprintf(c->secagg->debug_dir, sizeof c->secagg->debug_dir, "%s", debug_dir);
  return 0;
}

static void answer_wait(sa_wait *w, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void drop_wait(sa_wait *w) {
  sa_round *r = w->r;
  if (w->prev) w->prev->next = w->next;
  else r->waits = w->next;
  if (w->next) w->next->prev = w->prev;
  fedc_free(w);
}

static void wait_abort(void *ud, fedc_http_exchange *x) {
  (void)x;
  drop_wait(ud);
}

static void answer_wait(sa_wait *w, int status, const char *code, const char *fmt, ...) {
  fedc_http_exchange *x = w->x;
  fedc_http_exchange_on_abort(x, NULL, NULL);
  drop_wait(w);
  if (status == 204) {
    fedc_http_respond(x, 204, "application/json", "", 0, NULL);
    return;
  }
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fedc_http_respond_error(x, status, code, "%s", msg);
}

static void round_free(sa_round *r) {
  if (r == NULL) return;
  while (r->waits)
    answer_wait(r->waits, 409, "stale_round", "secure round %d is over", (int)r->round);
  fedc_secagg_server_free(r->srv);
  fedc_free(r->parties);
  fedc_free(r->sel_ids);
  fedc_free(r->liars);
  fedc_free(r);
}

void fedc__coord_secagg_free(fedc_coord *c) {
  if (c->secagg == NULL) return;
  round_free(c->secagg->cur);
  fedc_free(c->secagg->excluded);
  fedc_free(c->secagg);
  c->secagg = NULL;
}

/* A protocol object for `round` (0: the statistics session) over vectors
 * of `words` words, whose parties are the n clients given; its masking
 * graph is drawn from the job seed, the round and how many sessions this
 * process opened. On failure *out is NULL and the error set. */
static int session_new(fedc_coord *c, int32_t round, const int32_t *clients, int32_t n,
                       size_t words, sa_round **out) {
  *out = NULL;
  sa_round *r = fedc_calloc(1, sizeof *r);
  uint32_t *ids = fedc_malloc_array((size_t)n + 1, sizeof *ids);
  if (r) {
    r->parties = fedc_malloc_array((size_t)n + 1, sizeof *r->parties);
    r->parties_cap = n;
  }
  int rc = r && ids && r->parties ? 0 : fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (rc == 0) {
    fedc_rng g;
    fedc_rng_derive(&g, c->cfg.seed, 0x7361677261706853ULL /* "sagraphS" */, (uint64_t)round,
                    (uint64_t)c->secagg->opens++);
    fedc_secagg_params p = {.round = round, .n = words, .neighbors = c->cfg.secagg_neighbors,
                            .threshold = c->cfg.secagg_threshold,
                            .clip = fedc__coord_secagg_clip(c), .graph_seed = fedc_rng_u64(&g)};
    for (int32_t i = 0; i < n; i++) ids[i] = (uint32_t)clients[i];
    rc = fedc_secagg_server_new(&p, ids, n, &r->srv);
  }
  fedc_free(ids);
  if (rc != 0) {
    round_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

/* Round opened (loop thread): a protocol object whose parties are the
 * engine's selection (fedc_engine_open's answer, not kept here). On
 * failure the round has none and is abandoned at its first step. */
void fedc__coord_secagg_open(fedc_coord *c, const int32_t *selected, int32_t n_selected) {
  struct coord_secagg *sa = c->secagg;
  round_free(sa->cur);
  sa->cur = NULL;
  sa_round *r;
  if (session_new(c, c->round, selected, n_selected, c->n_params, &r) != 0) {
    fedc_log_error("round=%d msg=\"cannot start secure aggregation\" err=\"%s\"", (int)c->round,
                   fedc_error_msg());
    return;
  }
  r->round = c->round;
  r->opened_at = c->round_opened_at;
  sa->cur = r;
}

/* The client's protocol progress: the last phase whose message came, or -1
 * (it has not advertised: not selected, or not yet). Loop thread. */
static int party_progress(const sa_round *r, int32_t client) {
  for (int32_t i = 0; i < r->n_parties; i++)
    if (r->parties[i].client == client) return r->parties[i].progress;
  return -1;
}

/* The protocol accepted the client's message of phase p. Loop thread. */
static void party_advance(sa_round *r, int32_t client, fedc_secagg_phase p) {
  for (int32_t i = 0; i < r->n_parties; i++)
    if (r->parties[i].client == client) {
      if (r->parties[i].progress < (int8_t)p) r->parties[i].progress = (int8_t)p;
      return;
    }
  /* a first message is an ADVERTISE (the protocol refuses any other from a
   * client that has not advertised); the protocol's parties are the
   * selection, so there is room */
  if (p == FEDC_SECAGG_ADVERTISE && r->n_parties < r->parties_cap)
    r->parties[r->n_parties++] = (sa_party){.client = client, .progress = (int8_t)p};
}

int fedc__coord_secagg_started(const fedc_coord *c, int32_t client) {
  const sa_round *r = c->secagg ? c->secagg->cur : NULL;
  if (r == NULL || r->round != c->round) return 0;
  /* advertised, or too late to: no train task either way */
  return r->phase != FEDC_SECAGG_ADVERTISE || party_progress(r, client) >= 0;
}

/* The open round's selection size, the engine's (loop thread, in OPEN:
 * no commit holds the lock); the statistics session's parties. */
static int32_t n_selected(fedc_coord *c, const sa_round *r) {
  if (r->stats) return r->n_sel;
  pthread_mutex_lock(&c->mu);
  int32_t n = fedc_engine_n_selected(c->engine);
  pthread_mutex_unlock(&c->mu);
  return n;
}

/* ---- phases ---------------------------------------------------------------- */

static void fail_round(fedc_coord *c, sa_round *r, const char *why) {
  r->failed = 1;
  snprintf(r->why, sizeof r->why, "%s", why);
  fedc_log_warn("round=%d msg=\"secure aggregation failed; abandoning the round\" phase=%s "
                "reason=\"%s\"",
                (int)r->round, fedc_secagg_phase_name(r->phase), why);
  while (r->waits)
    answer_wait(r->waits, 409, "stale_round", "secure round %d was abandoned: %s", (int)r->round,
                why);
  (void)c;
}

/* Answer one long-poll with the broadcast it waits for, or 403 when this
 * client is not part of the set it asks about. Loop thread. */
static void serve_wait(fedc_coord *c, sa_round *r, sa_wait *w) {
  int need = w->kind == WAIT_KEYS ? FEDC_SECAGG_ADVERTISE
             : w->kind == WAIT_MYSHARES ? FEDC_SECAGG_SHARES : FEDC_SECAGG_MASKED;
  if (party_progress(r, w->client) < need) {
    fedc__coord_reject(c, REJECT_not_selected);
    answer_wait(w, 403, "not_selected",
                "client %d did not take part in the %s phase of secure round %d",
                (int)w->client, fedc_secagg_phase_name((fedc_secagg_phase)need), (int)r->round);
    return;
  }
  const uint8_t *msg = NULL;
  uint8_t *own = NULL;
  size_t len = 0;
  pthread_mutex_lock(&c->mu);
  int rc = w->kind == WAIT_KEYS ? fedc_secagg_server_keys(r->srv, &msg, &len)
           : w->kind == WAIT_SURVIVORS
               ? fedc_secagg_server_survivors(r->srv, &msg, &len)
               : fedc_secagg_server_myshares(r->srv, (uint32_t)w->client, &own, &len);
  char err[256];
  snprintf(err, sizeof err, "%s", rc ? fedc_error_msg() : "");
  pthread_mutex_unlock(&c->mu);
  if (rc != 0) {
    answer_wait(w, rc == FEDC_ENOMEM ? 503 : 409, rc == FEDC_ENOMEM ? "unavailable" : "stale_round",
                "%s", err);
    return;
  }
  fedc_http_exchange *x = w->x;
  fedc_http_exchange_on_abort(x, NULL, NULL);
  drop_wait(w);
  fedc_http_respond(x, 200, "application/octet-stream", own ? own : msg, len, NULL);
  fedc_free(own);
}

static void serve_waits(fedc_coord *c, sa_round *r, int kind) {
  for (sa_wait *w = r->waits, *next; w; w = next) {
    next = w->next;
    if (w->kind == kind) serve_wait(c, r, w);
  }
}

static int phase_complete(fedc_coord *c, const sa_round *r) {
  switch (r->phase) {
  case FEDC_SECAGG_ADVERTISE: return r->counts[0] == n_selected(c, r);
  case FEDC_SECAGG_SHARES: return r->counts[1] == r->counts[0];
  case FEDC_SECAGG_MASKED: return r->counts[2] == r->counts[1];
  case FEDC_SECAGG_UNMASK: return r->counts[3] == r->counts[2];
  default: return 1;
  }
}

/* Close the current phase with whoever is in. Loop thread. */
static void close_phase(fedc_coord *c, sa_round *r, double now) {
  fedc_secagg_phase p = r->phase;
  int rc = 0;
  char err[256] = "";
  pthread_mutex_lock(&c->mu);
  int32_t n_sel = r->stats ? r->n_sel : fedc_engine_n_selected(c->engine);
  switch (p) {
  case FEDC_SECAGG_ADVERTISE:
    rc = fedc_secagg_server_close_advertise(r->srv);
    if (rc == 0) {
      r->threshold = fedc_secagg_server_threshold(r->srv);
      r->frac_bits = fedc_secagg_server_frac_bits(r->srv);
    }
    break;
  case FEDC_SECAGG_SHARES: rc = fedc_secagg_server_close_shares(r->srv); break;
  case FEDC_SECAGG_MASKED: rc = fedc_secagg_server_close_masked(r->srv); break;
  default: break;
  }
  if (rc != 0) snprintf(err, sizeof err, "%s", fedc_error_msg());
  pthread_mutex_unlock(&c->mu);
  r->closed_at[p] = now;
  if (rc != 0) {
    fail_round(c, r, err);
    return;
  }
  fedc_log_info("round=%d msg=\"secure aggregation phase closed\" phase=%s in=%d of=%d "
                "secs=%.3f",
                (int)r->round, fedc_secagg_phase_name(p), (int)r->counts[p],
                (int)(p == 0 ? n_sel : r->counts[p - 1]), now - r->opened_at);
  if (p == FEDC_SECAGG_UNMASK) {
    r->done = 1;
    return;
  }
  r->phase = (fedc_secagg_phase)(p + 1);
  serve_waits(c, r, (int)p); /* keys after advertise, myshares after shares, ... */
}

/*
 * The round's secure-aggregation step (loop thread, from fedc__coord_step
 * while the round is open): expire long-polls, close phases that are
 * complete or past their deadline. 1 when the round should close: the
 * protocol is done, or it failed (and the engine will abandon the round).
 */
/* Expire long-polls, close the phases that are due. */
static void session_step(fedc_coord *c, sa_round *r, double now) {
  for (sa_wait *w = r->waits, *next; w; w = next) {
    next = w->next;
    if (now >= w->deadline) answer_wait(w, 204, NULL, "%s", "");
  }
  while (!r->done && !r->failed) {
    double deadline = r->opened_at + PHASE_END[r->phase] * c->cfg.round_timeout_s;
    if (!phase_complete(c, r) && now < deadline) break;
    close_phase(c, r, now);
  }
}

int fedc__coord_secagg_step(fedc_coord *c, double now) {
  sa_round *r = c->secagg->cur;
  if (r == NULL || r->round != c->round || r->stats) return 1;
  session_step(c, r, now);
  return r->done || r->failed;
}

/* ---- the commit (worker thread, under c->mu) ---------------------------------- */

/*
 * Unmask the sum and hand the survivors' weighted average to the engine.
 * Clients send deltas from the round's start model, so the average delta
 * is added back to it. On any failure nothing reaches the engine, which
 * then abandons the round below quorum.
 */
void fedc__coord_secagg_fold(fedc_coord *c) {
  sa_round *r = c->secagg->cur;
  if (r == NULL || !r->done || r->failed || r->fold_ok ||
      r->round != fedc_engine_round(c->engine))
    return; /* fold_ok: a commit being retried folded it already */
  size_t n = c->n_params;
  /* the survivors are among the selected */
  size_t n_sel = (size_t)fedc_engine_n_selected(c->engine) + 1;
  float *avg = fedc_malloc_array(n, sizeof *avg);
  int32_t *ids = fedc_malloc_array(n_sel, sizeof *ids);
  uint64_t *samples = fedc_malloc_array(n_sel, sizeof *samples);
  double *losses = fedc_malloc_array(n_sel, sizeof *losses);
  int rc = avg && ids && samples && losses ? 0
                                           : fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (rc == 0) {
    rc = fedc_secagg_server_finish(r->srv, avg, n, &r->res);
    /* who revealed wrong shares, also when the round cannot be saved */
    const uint32_t *liars;
    int32_t nl = fedc_secagg_server_excluded(r->srv, &liars);
    fedc_free(r->liars);
    r->liars = nl > 0 ? fedc_malloc_array((size_t)nl, sizeof *r->liars) : NULL;
    r->n_liars = r->liars ? nl : 0;
    for (int32_t i = 0; i < r->n_liars; i++) r->liars[i] = (int32_t)liars[i];
  }
  int32_t k = 0;
  if (rc == 0) {
    const float *g = fedc_engine_global(c->engine);
    for (size_t i = 0; i < n; i++) avg[i] += g[i];
    const uint32_t *surv;
    int32_t ns = fedc_secagg_server_survivor_ids(r->srv, &surv);
    for (int32_t i = 0; i < ns; i++) {
      ids[k] = (int32_t)surv[i];
      samples[k] = fedc_secagg_server_party_samples(r->srv, surv[i]);
      losses[k] = 0.0;
      for (int32_t j = 0; j < c->n_round_updates; j++)
        if (c->round_updates[j].client_id == ids[k]) losses[k] = c->round_updates[j].train_loss;
      k++;
    }
    rc = fedc__coord_dp_site_weights(c, ids, samples, k);
    if (rc == 0)
      rc = fedc_engine_submit_sum(c->engine, r->round, ids, samples, losses, k, avg, n);
  }
  if (rc == 0) {
    r->fold_ok = 1;
  } else {
    snprintf(r->why, sizeof r->why, "%s", fedc_error_msg());
    fedc_log_warn("round=%d msg=\"secure aggregation could not unmask the sum\" err=\"%s\"",
                  (int)r->round, r->why);
  }
  fedc_free(avg);
  fedc_free(ids);
  fedc_free(samples);
  fedc_free(losses);
}

/*
 * A client revealed shares that disagree with the dealer's secret (the
 * protocol located them): it is not selected again while this process
 * runs. Its masked input of this round stays in the sum, as the protocol
 * cannot take one survivor's input out without unmasking it alone. Loop
 * thread.
 */
static void exclude(fedc_coord *c, const sa_round *r, int32_t client) {
  struct coord_secagg *sa = c->secagg;
  if (fedc__coord_secagg_excluded(c, client)) return;
  if (sa->n_excluded == sa->excluded_cap) {
    int32_t cap = sa->excluded_cap ? 2 * sa->excluded_cap : 8;
    int32_t *grown = fedc_realloc(sa->excluded, (size_t)cap * sizeof *grown);
    if (grown == NULL) {
      fedc_log_error("client=%d msg=\"out of memory: cannot exclude a client that revealed "
                     "wrong secure-aggregation shares\"",
                     (int)client);
      return;
    }
    sa->excluded = grown;
    sa->excluded_cap = cap;
  }
  sa->excluded[sa->n_excluded++] = client;
  sa->excluded_total++;
  fedc_log_warn("round=%d client=%d msg=\"secure aggregation: the client revealed shares "
                "that disagree with the dealers' secrets; excluded from later rounds\"",
                (int)r->round, (int)client);
}

int fedc__coord_secagg_excluded(const fedc_coord *c, int32_t client) {
  const struct coord_secagg *sa = c->secagg;
  for (int32_t i = 0; sa && i < sa->n_excluded; i++)
    if (sa->excluded[i] == client) return 1;
  return 0;
}

uint64_t fedc__coord_secagg_excluded_total(const fedc_coord *c) {
  return c->secagg ? c->secagg->excluded_total : 0;
}

/* The round is over, committed or abandoned (loop thread, after the
 * commit worker): remember its outcome, drop its state. */
void fedc__coord_secagg_end(fedc_coord *c, int committed) {
  struct coord_secagg *sa = c->secagg;
  sa_round *r = sa->cur;
  if (r == NULL) return;
  for (int32_t i = 0; i < r->n_liars; i++) exclude(c, r, r->liars[i]);
  sa_last *l = &sa->last;
  memset(l, 0, sizeof *l);
  l->round = r->round;
  l->committed = r->fold_ok && committed;
  l->survivors = r->fold_ok ? r->res.n_clients : r->counts[2];
  l->dropped = r->fold_ok ? r->res.dropped : r->counts[1] - r->counts[2];
  l->excluded = r->n_liars;
  l->frac_bits = r->frac_bits;
  l->threshold = r->threshold;
  for (int p = 0; p < 4; p++)
    l->phase_secs[p] = r->closed_at[p] > 0 ? r->closed_at[p] - r->opened_at : NAN;
  snprintf(l->why, sizeof l->why, "%s",
           l->committed ? "" : r->fold_ok ? "abandoned below [job] min_clients" : r->why);
  sa->has_last = 1;
  if (l->committed)
    fedc_log_info("round=%d msg=\"secure aggregation done\" survivors=%d dropped=%d "
                  "excluded=%d frac_bits=%d threshold=%d",
                  (int)r->round, (int)l->survivors, (int)l->dropped, (int)l->excluded,
                  (int)l->frac_bits, (int)l->threshold);
  round_free(r);
  sa->cur = NULL;
}

/* ---- masked updates (POST /v1/update) --------------------------------------------- */

typedef struct masked_work {
  uv_work_t req;
  fedc_coord *c;
  sa_round *r;
  fedc_http_exchange *x;
  int32_t client_id;
  uint8_t *body;
  size_t len;
  int status, duplicate;
  reject_reason reason;
  char code[32];
  char msg[384];
  int32_t round;
} masked_work;

static void masked_abort(void *ud, fedc_http_exchange *x) {
  (void)x;
  ((masked_work *)ud)->x = NULL;
}

static void refuse(masked_work *w, int status, reject_reason why, const char *code,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void refuse(masked_work *w, int status, reject_reason why, const char *code,
                   const char *fmt, ...) {
  w->status = status;
  w->reason = why;
  snprintf(w->code, sizeof w->code, "%s", code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->msg, sizeof w->msg, fmt, ap);
  va_end(ap);
}

static void dump_masked(const fedc_coord *c, const masked_work *w) {
  char path[FEDC_CONFIG_PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/round-%d-client-%d.safetensors", c->secagg->debug_dir,
           (int)w->round, (int)w->client_id);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(w->body, 1, w->len, f) != w->len)
    fedc_log_warn("msg=\"FEDC_SECAGG_DEBUG_DIR: cannot write\" path=\"%s\"", path);
  if (f) fclose(f);
}

/*
 * Worker: check the container (one U32 tensor "masked" of the model's
 * length, metadata as for a plain update, the advertised sample count),
 * then fold it into the secure sum under the mutex.
 */
static void masked_run(uv_work_t *req) {
  masked_work *w = req->data;
  fedc_coord *c = w->c;
  fedc_st_file *f = NULL;
  int rc = fedc_st_decode_ex(w->body, w->len, FEDC_ST_ALLOW_U32, &f);
  if (rc != 0) {
    if (rc == FEDC_ECHECKSUM)
      refuse(w, 400, REJECT_bad_checksum, "bad_checksum", "%s", fedc_error_msg());
    else if (rc == FEDC_ENOMEM)
      refuse(w, 503, REJECT_unavailable, "unavailable", "%s", fedc_error_msg());
    else
      refuse(w, 400, REJECT_bad_container, "bad_container", "%s", fedc_error_msg());
    return;
  }
  const uint32_t *words = NULL;
  size_t n = 0;
  rc = fedc_st_count(f) == 1 ? fedc_st_find_u32(f, "masked", &words, &n) : FEDC_ENOTFOUND;
  fedc_update_meta m;
  if (rc == FEDC_EUNSUPPORTED) {
    refuse(w, 400, REJECT_bad_dtype, "bad_dtype",
           "secure aggregation: the update must be a U32 tensor \"masked\" (masked words), "
           "not F32 weights");
  } else if (rc != 0 || n != c->n_params) {
    refuse(w, 400, REJECT_bad_shape, "bad_shape",
           "secure aggregation: the update must be one U32 tensor \"masked\" of %zu words",
           c->n_params);
  } else if (fedc_update_meta_parse(f, &m) != 0) {
    refuse(w, 400, REJECT_bad_metadata, "bad_metadata", "%s", fedc_error_msg());
  } else {
    int64_t round = m.round, samples = m.num_samples;
    double loss = m.train_loss;
    const char *sha = m.sha256;
    w->round = m.round;
    if (c->secagg->debug_dir[0]) dump_masked(c, w);
    pthread_mutex_lock(&c->mu);
    uint64_t advertised = fedc_secagg_server_party_samples(w->r->srv, (uint32_t)w->client_id);
    /* a relay's masked sum weighs its sites that survived its own session
     * (relay_secagg.c): at most what it advertised */
    const char *fmt = fedc_st_meta_get(f, "format");
    int relay = fmt != NULL && strcmp(fmt, "fedc-secagg-relay") == 0;
    if (round != w->r->round) {
      rc = fedc_error_set(FEDC_ESTALE, "masked update for round %d, the secure round is %d",
                          (int)round, (int)w->r->round);
    } else if (relay ? (uint64_t)samples > advertised : advertised != (uint64_t)samples) {
      rc = FEDC_EFORMAT;
    } else {
      rc = relay ? fedc_secagg_server_add_masked_weighted(w->r->srv, (uint32_t)w->client_id,
                                                          words, n, (uint64_t)samples)
                 : fedc_secagg_server_add_masked(w->r->srv, (uint32_t)w->client_id, words, n);
      if (rc == 0 && c->n_round_updates < c->round_updates_cap) {
        fedc_store_update *u = &c->round_updates[c->n_round_updates++];
        u->client_id = w->client_id;
        u->num_samples = samples;
        u->train_loss = loss;
        snprintf(u->sha256, sizeof u->sha256, "%s", sha ? sha : "");
        u->received_at = wall_now();
      }
    }
    char msg[384];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    pthread_mutex_unlock(&c->mu);
    if (rc == 0) w->status = 200;
    else if (rc == FEDC_EDUPLICATE) w->status = 200, w->duplicate = 1;
    else if (rc == FEDC_EFORMAT)
      refuse(w, 400, REJECT_bad_metadata, "bad_metadata",
             "num_samples = %lld, but the client advertised %llu%s", (long long)samples,
             (unsigned long long)advertised,
             relay ? " (a relay's sum weighs at most that)" : "");
    else if (rc == FEDC_EINVAL)
      refuse(w, 403, REJECT_not_selected, "not_selected", "%s", msg);
    else if (rc == FEDC_ESTATE || rc == FEDC_ESTALE)
      refuse(w, 409, REJECT_stale_round, "stale_round", "%s", msg);
    else
      refuse(w, 503, REJECT_unavailable, "unavailable", "%s", msg);
  }
  fedc_st_free(f);
}

static void masked_done(uv_work_t *req, int status) {
  masked_work *w = req->data;
  fedc_coord *c = w->c;
  (void)status;
  c->inflight--;
  sa_round *r = c->secagg->cur;
  if (w->status == 200 && !w->duplicate) {
    c->updates_accepted++;
    int prog = r == w->r ? party_progress(r, w->client_id) : -1;
    if (prog >= 0 && prog < FEDC_SECAGG_MASKED) {
      party_advance(r, w->client_id, FEDC_SECAGG_MASKED);
      r->counts[FEDC_SECAGG_MASKED]++;
    }
    fedc_log_info("round=%d client=%d msg=\"masked update accepted\" masked=%d/%d",
                  (int)w->round, (int)w->client_id, r == w->r ? (int)r->counts[2] : -1,
                  r == w->r ? (int)r->counts[1] : -1);
  } else if (w->status == 200) {
    c->updates_duplicate++;
  } else {
    fedc__coord_reject(c, w->reason);
    fedc_log_info("client=%d msg=\"masked update refused\" code=%s reason=\"%s\"",
                  (int)w->client_id, w->code, w->msg);
  }
  fedc__coord_answer_update(w->x, w->status, w->round, w->duplicate, w->code, w->msg);
  fedc_free(w->body);
  fedc_free(w);
  fedc__coord_worker_done(c);
}

void fedc__coord_secagg_update(fedc_coord *c, fedc_http_exchange *x, coord_client *cl,
                               const uint8_t *body, size_t len) {
  sa_round *r = c->secagg->cur;
  if (c->state != ROUND_OPEN || r == NULL || r->phase != FEDC_SECAGG_MASKED || r->failed) {
    fedc__coord_reject(c, REJECT_stale_round);
    fedc_http_respond_error(x, 409, "stale_round",
                            "no secure round is taking masked updates (round %d)", (int)c->round);
    return;
  }
  masked_work *w = fedc_calloc(1, sizeof *w);
  uint8_t *copy = w ? fedc_malloc(len ? len : 1) : NULL;
  if (copy == NULL) {
    fedc_free(w);
    fedc__coord_reject(c, REJECT_unavailable);
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  memcpy(copy, body, len);
  *w = (masked_work){.c = c, .r = r, .x = x, .client_id = cl->id, .body = copy, .len = len};
  w->req.data = w;
  fedc_http_exchange_on_abort(x, masked_abort, w);
  if (uv_queue_work(c->loop, &w->req, masked_run, masked_done) != 0) {
    fedc_http_exchange_on_abort(x, NULL, NULL);
    fedc_free(copy);
    fedc_free(w);
    fedc_http_respond_error(x, 503, "unavailable", "cannot queue the update");
    return;
  }
  c->inflight++;
}

/* ---- the /v1/secagg/ endpoints ------------------------------------------------------ */


/* A client's message for the current phase: checked and taken under the
 * mutex; the answer says accepted or why not. */
static void post_message(fedc_coord *c, sa_round *r, fedc_http_exchange *x, coord_client *cl,
                         const fedc_http_request *req, fedc_secagg_phase phase) {
  char err[384];
  pthread_mutex_lock(&c->mu);
  int rc = phase == FEDC_SECAGG_ADVERTISE
               ? fedc_secagg_server_add_advertise(r->srv, (uint32_t)cl->id, req->body,
                                                  req->body_len)
           : phase == FEDC_SECAGG_SHARES
               ? fedc_secagg_server_add_shares(r->srv, (uint32_t)cl->id, req->body,
                                               req->body_len)
               : fedc_secagg_server_add_unmask(r->srv, (uint32_t)cl->id, req->body,
                                               req->body_len);
  snprintf(err, sizeof err, "%s", rc ? fedc_error_msg() : "");
  pthread_mutex_unlock(&c->mu);
  if (rc == 0 || rc == FEDC_EDUPLICATE) {
    if (rc == 0) {
      party_advance(r, cl->id, phase);
      r->counts[phase]++;
    }
    fedc_log_debug("round=%d client=%d msg=\"secure aggregation message\" phase=%s%s",
                   (int)r->round, (int)cl->id, fedc_secagg_phase_name(phase),
                   rc ? " duplicate=true" : "");
    char body[128];
    int len = snprintf(body, sizeof body, "{\"accepted\":true,\"round\":%d,\"duplicate\":%s}",
                       (int)r->round, rc ? "true" : "false");
    fedc_http_respond(x, 200, "application/json", body, (size_t)len, NULL);
    fedc__coord_step(c);
    return;
  }
  reject_reason why = rc == FEDC_EFORMAT ? REJECT_bad_request
                      : rc == FEDC_EINVAL ? REJECT_not_selected
                      : rc == FEDC_ENOMEM ? REJECT_unavailable : REJECT_stale_round;
  fedc__coord_reject(c, why);
  if (rc == FEDC_EFORMAT) fedc_http_respond_error(x, 400, "bad_request", "%s", err);
  else if (rc == FEDC_EINVAL) fedc_http_respond_error(x, 403, "not_selected", "%s", err);
  else if (rc == FEDC_ENOMEM) fedc_http_respond_error(x, 503, "unavailable", "%s", err);
  else fedc_http_respond_error(x, 409, "stale_round", "%s", err);
}

static void get_broadcast(fedc_coord *c, sa_round *r, fedc_http_exchange *x, coord_client *cl,
                          const fedc_http_request *req, int kind) {
  double round = 0, wait = c->cfg.server_poll_s;
  if (fedc__coord_query_double(req->query, "round", &round) != 1 || round != floor(round) ||
      fedc__coord_query_double(req->query, "wait", &wait) < 0 || wait < 0) {
    fedc__coord_reject(c, REJECT_bad_request);
    fedc_http_respond_error(x, 400, "bad_request",
                            "GET /v1/secagg/%s needs round=<integer> (and optionally wait=<s>)",
                            WAIT_NAME[kind]);
    return;
  }
  if ((int64_t)round != r->round) {
    fedc__coord_reject(c, REJECT_stale_round);
    fedc_http_respond_error(x, 409, "stale_round", "round %.0f is not the secure round (%d)",
                            round, (int)r->round);
    return;
  }
  if (wait > c->cfg.server_poll_s) wait = c->cfg.server_poll_s;
  sa_wait *w = fedc_calloc(1, sizeof *w);
  if (w == NULL) {
    fedc_http_respond_error(x, 503, "unavailable", "out of memory");
    return;
  }
  /* a newer poll of the same kind replaces an older one */
  for (sa_wait *o = r->waits, *next; o; o = next) {
    next = o->next;
    if (o->client == cl->id && o->kind == kind) answer_wait(o, 204, NULL, "%s", "");
  }
  *w = (sa_wait){.r = r, .x = x, .client = cl->id, .kind = kind,
                 .deadline = fedc__coord_now() + wait, .next = r->waits};
  if (r->waits) r->waits->prev = w;
  r->waits = w;
  fedc_http_exchange_on_abort(x, wait_abort, w);
  /* the broadcast of a kind is out once the phase before it closed */
  if ((int)r->phase > kind) serve_wait(c, r, w);
  else if (wait == 0) answer_wait(w, 204, NULL, "%s", "");
}

void fedc__coord_secagg_handle(fedc_coord *c, fedc_http_exchange *x,
                               const fedc_http_request *req, coord_client *cl) {
  int which = fedc__secagg_route(x, req);
  if (which < 0) return;
  int post = fedc__secagg_is_post(which);
  if (c->stopping) {
    fedc_http_respond_error(x, 503, "unavailable", "the coordinator is stopping");
    return;
  }
  sa_round *r = c->secagg ? c->secagg->cur : NULL;
  if (c->secagg == NULL) {
    fedc_http_respond_error(x, 404, "not_found",
                            "secure aggregation is off ([privacy] secure_aggregation)");
    return;
  }
  int stats_open = r && r->stats && c->state == ROUND_WAITING; /* the statistics session */
  if ((c->state != ROUND_OPEN && !stats_open) || r == NULL ||
      (r->round != c->round && !stats_open) || r->failed || r->done) {
    fedc__coord_reject(c, REJECT_stale_round);
    fedc_http_respond_error(x, 409, "stale_round", "no secure round is open (round %d %s)",
                            (int)c->round, r && r->failed ? "was abandoned" : "is not open");
    return;
  }
  if (post) {
    static const fedc_secagg_phase phase[3] = {FEDC_SECAGG_ADVERTISE, FEDC_SECAGG_SHARES,
                                               FEDC_SECAGG_UNMASK};
    post_message(c, r, x, cl, req, phase[which]);
  } else {
    get_broadcast(c, r, x, cl, req, which - 3);
  }
}

/* ---- the statistics session (stats_phase.c) ------------------------------------------ */

/*
 * A job with a schema and secure aggregation sums its sites' statistics in
 * a session of its own before round 1: the same protocol object and
 * /v1/secagg/ exchanges as a round, with round number 0, the parties given
 * here (the sites that were there when it opened), each advertising one
 * sample (the words are summed as they are, unweighted: masked_words), and
 * the same phase deadlines, fractions of round_timeout_s after it opened.
 * The masked words come as the body of POST /v1/stats.
 */
int fedc__coord_secagg_stats_open(fedc_coord *c, const int32_t *parties, int32_t n,
                                  size_t words) {
  struct coord_secagg *sa = c->secagg;
  round_free(sa->cur);
  sa->cur = NULL;
  sa_round *r;
  int rc = session_new(c, 0, parties, n, words, &r);
  if (rc != 0) return rc;
  r->sel_ids = fedc_malloc_array((size_t)n + 1, sizeof *r->sel_ids);
  if (r->sel_ids == NULL) {
    round_free(r);
    return fedc_error_set(FEDC_ENOMEM, "out of memory");
  }
  for (int32_t i = 0; i < n; i++) r->sel_ids[i] = parties[i]; /* the session's party list */
  r->n_words = words;
  r->stats = 1;
  r->n_sel = n;
  r->opened_at = fedc__coord_now();
  sa->cur = r;
  return 0;
}

static sa_round *stats_session(const fedc_coord *c) {
  sa_round *r = c->secagg ? c->secagg->cur : NULL;
  return r && r->stats ? r : NULL;
}

int fedc__coord_secagg_stats_wants(const fedc_coord *c, int32_t client) {
  const sa_round *r = stats_session(c);
  if (r == NULL || r->done || r->failed || r->phase != FEDC_SECAGG_ADVERTISE ||
      party_progress(r, client) >= 0)
    return 0;
  for (int32_t i = 0; i < r->n_sel; i++)
    if (r->sel_ids[i] == client) return 1;
  return 0;
}

int fedc__coord_secagg_stats_step(fedc_coord *c, double now) {
  sa_round *r = stats_session(c);
  if (r == NULL) return -1;
  session_step(c, r, now);
  return r->failed ? -1 : r->done;
}

int fedc__coord_secagg_stats_sum(fedc_coord *c, uint32_t *sum, size_t n, int32_t *survivors,
                                 int32_t *dropped) {
  sa_round *r = stats_session(c);
  if (r == NULL || !r->done || r->failed)
    return fedc_error_set(FEDC_ESTATE, "no statistics session to finish");
  pthread_mutex_lock(&c->mu);
  int rc = fedc_secagg_server_finish(r->srv, NULL, n, &r->res);
  if (rc == 0) {
    memcpy(sum, fedc_secagg_server_sum(r->srv), n * sizeof *sum);
    *survivors = r->res.n_clients;
    *dropped = r->res.dropped;
  }
  pthread_mutex_unlock(&c->mu);
  if (rc != 0) {
    r->failed = 1;
    snprintf(r->why, sizeof r->why, "%s", fedc_error_msg());
    return rc;
  }
  r->fold_ok = 1;
  return 0;
}

/* The session is over (committed, or failed and to be opened again). */
void fedc__coord_secagg_stats_end(fedc_coord *c) {
  sa_round *r = stats_session(c);
  if (r == NULL) return;
  fedc__coord_secagg_end(c, r->fold_ok);
}

/*
 * POST /v1/stats under secure aggregation: one U32 tensor "masked" of the
 * session's length, metadata format "fedc-secagg-stats" and round 0,
 * folded into the sum at once (the vector is small). With a debug folder
 * it is written there as stats-client-<id>.safetensors.
 */
void fedc__coord_secagg_stats_masked(fedc_coord *c, fedc_http_exchange *x, coord_client *cl,
                                     const uint8_t *body, size_t len) {
  sa_round *r = stats_session(c);
  if (r == NULL || r->phase != FEDC_SECAGG_MASKED || r->failed || r->done) {
    fedc__coord_reject(c, REJECT_stale_round);
    fedc_http_respond_error(x, 409, "stale_round",
                            "no statistics session is taking masked statistics");
    return;
  }
  fedc_st_file *f = NULL;
  const uint32_t *words = NULL;
  size_t n = 0, want = 0;
  pthread_mutex_lock(&c->mu);
  int32_t prog = fedc_secagg_server_party_phase(r->srv, (uint32_t)cl->id);
  pthread_mutex_unlock(&c->mu);
  int rc = fedc_st_decode_ex(body, len, FEDC_ST_ALLOW_U32, &f);
  if (rc == 0) rc = fedc_st_count(f) == 1 ? fedc_st_find_u32(f, "masked", &words, &n) : FEDC_ENOTFOUND;
  const char *fmt = rc == 0 ? fedc_st_meta_get(f, "format") : NULL;
  const char *rd = rc == 0 ? fedc_st_meta_get(f, "round") : NULL;
  want = r->n_words;
  if (rc != 0 || n != want || fmt == NULL || strcmp(fmt, "fedc-secagg-stats") != 0 || rd == NULL ||
      strcmp(rd, "0") != 0) {
    fedc_st_free(f);
    fedc__coord_reject(c, REJECT_bad_container);
    fedc_http_respond_error(x, 400, "bad_container",
                            "masked statistics are one U32 tensor \"masked\" of %zu words, "
                            "metadata format \"fedc-secagg-stats\" and round \"0\"", want);
    return;
  }
  if (c->secagg->debug_dir[0]) {
    char path[FEDC_CONFIG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/stats-client-%d.safetensors", c->secagg->debug_dir,
             (int)cl->id);
    FILE *out = fopen(path, "wb");
    if (out == NULL || fwrite(body, 1, len, out) != len)
      fedc_log_warn("msg=\"FEDC_SECAGG_DEBUG_DIR: cannot write\" path=\"%s\"", path);
    if (out) fclose(out);
  }
  char err[256];
  pthread_mutex_lock(&c->mu);
  rc = prog < (int)FEDC_SECAGG_SHARES
           ? fedc_error_set(FEDC_EINVAL, "client %d did not share keys in the statistics session",
                            (int)cl->id)
           : fedc_secagg_server_add_masked(r->srv, (uint32_t)cl->id, words, n);
  snprintf(err, sizeof err, "%s", rc ? fedc_error_msg() : "");
  pthread_mutex_unlock(&c->mu);
  fedc_st_free(f);
  if (rc == 0 || rc == FEDC_EDUPLICATE) {
    if (rc == 0 && party_progress(r, cl->id) < FEDC_SECAGG_MASKED) {
      party_advance(r, cl->id, FEDC_SECAGG_MASKED);
      r->counts[FEDC_SECAGG_MASKED]++;
    }
    fedc_log_info("client=%d msg=\"masked statistics in\" masked=%d/%d", (int)cl->id,
                  (int)r->counts[2], (int)r->counts[1]);
    char ok[64];
    int k = snprintf(ok, sizeof ok, "{\"accepted\":true,\"duplicate\":%s}",
                     rc ? "true" : "false");
    fedc_http_respond(x, 200, "application/json", ok, (size_t)k, NULL);
    fedc__coord_step(c);
    return;
  }
  fedc__coord_reject(c, rc == FEDC_EINVAL ? REJECT_not_selected : REJECT_stale_round);
  if (rc == FEDC_EINVAL) fedc_http_respond_error(x, 403, "not_selected", "%s", err);
  else fedc_http_respond_error(x, 409, "stale_round", "%s", err);
}

/* ---- status ------------------------------------------------------------------------- */

void fedc__coord_secagg_status(const fedc_coord *c, cJSON *o, int32_t selected) {
  const struct coord_secagg *sa = c->secagg;
  if (sa == NULL) return;
  cJSON *s = cJSON_AddObjectToObject(o, "secagg");
  cJSON_AddNumberToObject(s, "neighbors", c->cfg.secagg_neighbors);
  cJSON_AddNumberToObject(s, "threshold_fraction", c->cfg.secagg_threshold);
  const sa_round *r = sa->cur;
  if (r) {
    cJSON_AddNumberToObject(s, "round", r->round);
    if (r->stats) cJSON_AddStringToObject(s, "session", "stats");
    cJSON_AddStringToObject(s, "phase", r->failed ? "failed"
                                        : r->done ? "done"
                                                  : fedc_secagg_phase_name(r->phase));
    cJSON_AddNumberToObject(s, "selected", r->stats ? r->n_sel : selected);
    static const char *const cnt[4] = {"advertised", "shared", "masked", "unmasked"};
    for (int p = 0; p < 4; p++) {
      cJSON_AddNumberToObject(s, cnt[p], r->counts[p]);
      char key[32];
      snprintf(key, sizeof key, "%s_ids", cnt[p]);
      cJSON *ids = cJSON_AddArrayToObject(s, key);
      for (int32_t i = 0; i < r->n_parties; i++)
        if (r->parties[i].progress >= p)
          cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->parties[i].client));
    }
    if (r->phase > FEDC_SECAGG_ADVERTISE) {
      cJSON_AddNumberToObject(s, "threshold", r->threshold);
      cJSON_AddNumberToObject(s, "frac_bits", r->frac_bits);
    }
  } else {
    cJSON_AddStringToObject(s, "phase", "idle");
  }
  cJSON *ex = cJSON_AddArrayToObject(s, "excluded_ids");
  for (int32_t i = 0; i < sa->n_excluded; i++)
    cJSON_AddItemToArray(ex, cJSON_CreateNumber(sa->excluded[i]));
  if (sa->has_last) {
    const sa_last *l = &sa->last;
    cJSON *e = cJSON_AddObjectToObject(s, "last");
    cJSON_AddNumberToObject(e, "round", l->round);
    cJSON_AddBoolToObject(e, "committed", l->committed);
    cJSON_AddNumberToObject(e, "survivors", l->survivors);
    cJSON_AddNumberToObject(e, "dropped", l->dropped);
    cJSON_AddNumberToObject(e, "excluded", l->excluded);
    cJSON_AddNumberToObject(e, "frac_bits", l->frac_bits);
    cJSON_AddNumberToObject(e, "threshold", l->threshold);
    cJSON *ps = cJSON_AddObjectToObject(e, "phase_secs");
    static const char *const pn[4] = {"advertise", "shares", "masked", "unmask"};
    for (int p = 0; p < 4; p++)
      if (isnan(l->phase_secs[p])) cJSON_AddNullToObject(ps, pn[p]);
      else cJSON_AddNumberToObject(ps, pn[p], l->phase_secs[p]);
    if (l->why[0]) cJSON_AddStringToObject(e, "reason", l->why);
  }
}
