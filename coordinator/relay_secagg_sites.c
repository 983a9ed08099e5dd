/*
 * relay_secagg_sites.c - a relay's secure session with its sites
 * (docs/relays.md, "Secure aggregation"): under a parent's job with
 * [privacy] secure_aggregation, each round the relay is its sites'
 * coordinator for the protocol of shared/privacy/secagg.h, over the same
 * endpoints and wire format as the coordinator's (secagg_rounds.c,
 * docs/protocol.md "Secure aggregation"), so fedc-client runs unchanged:
 *
 *   POST /v1/secagg/advertise, shares, unmask   a site's messages
 *   GET  /v1/secagg/keys, myshares, survivors   long-polls for broadcasts
 *   POST /v1/update                             a site's masked delta
 *
 * What differs is who closes the phases and with what quantization: the
 * link thread (relay_secagg.c) freezes the parties once its sites have
 * advertised (their total is what the relay advertises to its parent),
 * closes KEYS with the parent's fractional bits and clip once the parent's
 * KEYS came, then the other phases by deadlines nested inside the parent's
 * (relay.h, FEDC_RELAY_SA_*), and unmasks only the subtree's sum
 * sum_u n_u Q(delta_u) mod 2^32, never one site's delta.
 *
 * Threads: the protocol object is used under r->mu by the loop thread
 * (messages, masked updates) and the link thread (closing phases,
 * finishing). The held long-polls are the loop thread's own list, answered
 * on its tick and when the link thread wakes it after closing a phase.
 *
 * Parties are named by the sites' client ids (relay.c: from their
 * certificates, the same after the relay restarts). The protocol object is
 * made when the parties are fixed: until then the sites' ADVERTISE
 * messages are kept as they came.
 *
 * Test hook: with FEDC_SECAGG_DEBUG_DIR set, every masked update a site
 * sends is written there as relay-round-<r>-client-<id>.safetensors, to
 * show what the relay saw.
 */
#include "relay.h"
#include "secagg_route.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/rng.h"
#include "privacy/secagg.h"
#include "wire/safetensors.h"
#include "wire/update_meta.h"

#define SA_POLL_MAX_S 5.0

/* A site's ADVERTISE, kept until the relay fixes its parties. */
typedef struct sa_advert {
  int32_t site;
  uint8_t *msg;
  size_t len;
} sa_advert;

struct relay_sa {
  int32_t round;
  fedc_secagg_server *srv; /* made when the parties are fixed (freeze) */
  sa_advert *adv;          /* until then, the ADVERTISE messages */
  int32_t n_adv, adv_cap;
  int frozen;      /* no more ADVERTISE: the parties are fixed */
  int failed;      /* the session cannot end in a sum */
  double loss_sum; /* the masked updates' train_loss x samples */
};

/* ---- lifecycle (under mu) --------------------------------------------------------- */

/*
 * The session's parties are the sites that advertised before the freeze,
 * by their client ids (stable across the relay's restarts, relay.c), so
 * the protocol object is made then and their kept ADVERTISE messages are
 * given to it; here only the round is noted.
 */
int fedc__relay_sa_open(fedc_relay *r) {
  relay_sa *sa = fedc_calloc(1, sizeof *sa);
  if (sa == NULL) return fedc_error_set(FEDC_ENOMEM, "relay: out of memory");
  sa->round = r->round;
  r->sa = sa;
  return 0;
}

void fedc__relay_sa_close(fedc_relay *r) {
  relay_sa *sa = r->sa;
  if (sa == NULL) return;
  fedc_secagg_server_free(sa->srv);
  for (int32_t i = 0; i < sa->n_adv; i++) fedc_free(sa->adv[i].msg);
  fedc_free(sa->adv);
  fedc_free(sa);
  r->sa = NULL;
}

/* Under mu, before the freeze: keep (or replace) a site's ADVERTISE. */
static int keep_advert(relay_sa *sa, int32_t site, const uint8_t *msg, size_t len) {
  if (len == 0 || len > 4096)
    return fedc_error_set(FEDC_EFORMAT, "secagg ADVERTISE: %zu bytes", len);
  uint8_t *copy = fedc_malloc(len);
  if (copy == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  memcpy(copy, msg, len);
  for (int32_t i = 0; i < sa->n_adv; i++)
    if (sa->adv[i].site == site) {
      int same = sa->adv[i].len == len && memcmp(sa->adv[i].msg, msg, len) == 0;
      fedc_free(sa->adv[i].msg);
      sa->adv[i].msg = copy;
      sa->adv[i].len = len;
      return same ? FEDC_EDUPLICATE : 0;
    }
  if (sa->n_adv == sa->adv_cap) {
    int32_t cap = sa->adv_cap ? 2 * sa->adv_cap : 8;
    sa_advert *a = fedc_realloc(sa->adv, (size_t)cap * sizeof *a);
    if (a == NULL) {
      fedc_free(copy);
      return fedc_error_set(FEDC_ENOMEM, "out of memory");
    }
    sa->adv = a;
    sa->adv_cap = cap;
  }
  sa->adv[sa->n_adv++] = (sa_advert){site, copy, len};
  return 0;
}

/* Under mu, at the freeze: the protocol object over the advertisers, each
 * kept ADVERTISE given to it (one it refuses leaves that site out). */
static int make_server(fedc_relay *r, relay_sa *sa) {
  uint32_t *ids = fedc_malloc_array((size_t)sa->n_adv + 1, sizeof *ids);
  if (ids == NULL) return fedc_error_set(FEDC_ENOMEM, "relay: out of memory");
  for (int32_t i = 0; i < sa->n_adv; i++) ids[i] = r->site_ids[sa->adv[i].site];
  /* the graph's seed names nothing the result depends on: the masks cancel */
  fedc_rng g;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  fedc_rng_derive(&g, r->cfg->seed, 0x7361677261706852ULL /* "sagraphR" */,
                  (uint64_t)sa->round, (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec);
  fedc_secagg_params p = {.round = sa->round, .n = r->n_params,
                          .neighbors = r->cfg->secagg_neighbors,
                          .threshold = r->cfg->secagg_threshold,
                          .clip = FEDC_SECAGG_DEFAULT_CLIP, .graph_seed = fedc_rng_u64(&g)};
  int rc = fedc_secagg_server_new(&p, ids, sa->n_adv, &sa->srv);
  fedc_free(ids);
  for (int32_t i = 0; rc == 0 && i < sa->n_adv; i++) {
    const sa_advert *a = &sa->adv[i];
    uint32_t id = r->site_ids[a->site];
    if (fedc_secagg_server_add_advertise(sa->srv, id, a->msg, a->len) != 0)
      fedc_log_warn("round=%d client=%u msg=\"relay: a site's ADVERTISE refused\" "
                    "reason=\"%s\"",
                    (int)sa->round, (unsigned)id, fedc_error_msg());
  }
  return rc;
}

/* ---- the sites' requests (loop thread) ----------------------------------------------- */

static double query_num(const char *q, const char *key, double dflt) {
  size_t k = strlen(key);
  for (const char *p = q; p && *p;) {
    if (strncmp(p, key, k) == 0 && p[k] == '=') return strtod(p + k + 1, NULL);
    p = strchr(p, '&');
    if (p) p++;
  }
  return dflt;
}

enum { SERVE_NOT_YET = 0, SERVE_DONE = 1 };

/*
 * Answer a long-poll of `kind` (0 keys, 1 myshares, 2 survivors) if its
 * broadcast is out (or can never come): SERVE_DONE, else SERVE_NOT_YET.
 * Takes mu; the message is copied under it and sent after.
 */
static int try_serve(fedc_relay *r, fedc_http_exchange *x, int32_t site, int kind, int32_t round) {
  uint8_t *copy = NULL;
  size_t len = 0;
  int status = 0;
  char err[256] = "";
  pthread_mutex_lock(&r->mu);
  relay_sa *sa = r->sa;
  fedc_secagg_phase ph = sa == NULL ? FEDC_SECAGG_FAILED
                         : sa->srv  ? fedc_secagg_server_phase(sa->srv)
                                    : FEDC_SECAGG_ADVERTISE;
  uint32_t id = r->site_ids[site];
  if (sa == NULL || sa->round != round || sa->failed || ph == FEDC_SECAGG_FAILED) {
    status = 409;
    snprintf(err, sizeof err, "secure round %d is not open at this relay (or was abandoned)",
             (int)round);
  } else if ((int)ph > kind) {
    if (fedc_secagg_server_party_phase(sa->srv, id) < kind) {
      status = 403;
      snprintf(err, sizeof err, "site %u did not take part in the %s phase of secure round %d",
               (unsigned)id, fedc_secagg_phase_name((fedc_secagg_phase)kind), (int)round);
    } else {
      const uint8_t *msg = NULL;
      uint8_t *own = NULL;
      int rc = kind == 0   ? fedc_secagg_server_keys(sa->srv, &msg, &len)
               : kind == 2 ? fedc_secagg_server_survivors(sa->srv, &msg, &len)
                           : fedc_secagg_server_myshares(sa->srv, id, &own, &len);
      if (rc == 0 && own == NULL) {
        copy = fedc_malloc(len ? len : 1);
        if (copy) memcpy(copy, msg, len);
        else rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
      } else if (rc == 0) {
        copy = own;
      }
      status = rc == 0 ? 200 : rc == FEDC_ENOMEM ? 503 : 409;
      if (rc != 0) snprintf(err, sizeof err, "%s", fedc_error_msg());
    }
  }
  pthread_mutex_unlock(&r->mu);
  if (status == 0) return SERVE_NOT_YET;
  if (status == 200)
    fedc_http_respond(x, 200, "application/octet-stream", copy, len, NULL);
  else
    fedc_http_respond_error(x, status,
                            status == 403   ? "not_selected"
                            : status == 503 ? "unavailable"
                                            : "stale_round",
                            "%s", err);
  fedc_free(copy);
  return SERVE_DONE;
}

static void poll_abort(void *ud, fedc_http_exchange *x) {
  fedc_relay *r = ud;
  for (int32_t j = 0; j < r->n_sa_polls; j++)
    if (r->sa_polls[j].x == x) {
      r->sa_polls[j] = r->sa_polls[--r->n_sa_polls];
      return;
    }
}

void fedc__relay_sa_polls(fedc_relay *r, int all) {
  double now = fedc__relay_now();
  int32_t k = 0;
  for (int32_t j = 0; j < r->n_sa_polls; j++) {
    relay_sa_poll p = r->sa_polls[j];
    fedc_http_exchange_on_abort(p.x, NULL, NULL);
    if (try_serve(r, p.x, p.site, p.kind, p.round) == SERVE_DONE) continue;
    if (all || now >= p.until) {
      fedc_http_respond(p.x, 204, "application/json", "", 0, NULL);
      continue;
    }
    fedc_http_exchange_on_abort(p.x, poll_abort, r);
    r->sa_polls[k++] = p;
  }
  r->n_sa_polls = k;
}

static void hold(fedc_relay *r, fedc_http_exchange *x, int32_t site, int kind, int32_t round,
                 double wait) {
  if (r->n_sa_polls == r->sa_polls_cap) {
    int32_t cap = r->sa_polls_cap ? 2 * r->sa_polls_cap : 16;
    relay_sa_poll *p = fedc_realloc(r->sa_polls, (size_t)cap * sizeof *p);
    if (p == NULL) {
      fedc_http_respond_error(x, 503, "unavailable", "out of memory");
      return;
    }
    r->sa_polls = p;
    r->sa_polls_cap = cap;
  }
  /* a newer poll of the same kind replaces an older one */
  for (int32_t j = 0; j < r->n_sa_polls; j++)
    if (r->sa_polls[j].site == site && r->sa_polls[j].kind == kind) {
      fedc_http_exchange *old = r->sa_polls[j].x;
      fedc_http_exchange_on_abort(old, NULL, NULL);
      r->sa_polls[j] = r->sa_polls[--r->n_sa_polls];
      fedc_http_respond(old, 204, "application/json", "", 0, NULL);
      break;
    }
  r->sa_polls[r->n_sa_polls++] =
      (relay_sa_poll){x, site, kind, round, fedc__relay_now() + wait};
  fedc_http_exchange_on_abort(x, poll_abort, r);
}

/* A site's ADVERTISE, SHARES or UNMASK, checked and taken under mu. */
static void post_message(fedc_relay *r, fedc_http_exchange *x, const fedc_http_request *req,
                         int32_t site, fedc_secagg_phase phase) {
  char err[384] = "";
  int32_t round = 0;
  pthread_mutex_lock(&r->mu);
  relay_sa *sa = r->sa;
  int rc;
  if (sa == NULL || sa->failed || !r->open) {
    rc = fedc_error_set(FEDC_ESTALE, "no secure round is open at this relay");
  } else if (phase == FEDC_SECAGG_ADVERTISE && sa->frozen) {
    rc = fedc_error_set(FEDC_ESTATE, "the relay's advertise phase of round %d is over",
                        (int)sa->round);
  } else {
    round = sa->round;
    uint32_t id = r->site_ids[site];
    rc = phase == FEDC_SECAGG_ADVERTISE ? keep_advert(sa, site, req->body, req->body_len)
         : sa->srv == NULL
             ? fedc_error_set(FEDC_ESTATE, "the relay's round %d takes no %s yet", (int)round,
                              fedc_secagg_phase_name(phase))
         : phase == FEDC_SECAGG_SHARES
             ? fedc_secagg_server_add_shares(sa->srv, id, req->body, req->body_len)
             : fedc_secagg_server_add_unmask(sa->srv, id, req->body, req->body_len);
    if (rc == 0 && phase == FEDC_SECAGG_ADVERTISE && !r->reported[site]) {
      r->reported[site] = 1; /* in a secure round: advertised (no second train task) */
      r->n_reported++;
    }
    if (rc == 0) pthread_cond_broadcast(&r->cv);
  }
  if (rc != 0 && rc != FEDC_EDUPLICATE) snprintf(err, sizeof err, "%s", fedc_error_msg());
  pthread_mutex_unlock(&r->mu);
  if (rc == 0 || rc == FEDC_EDUPLICATE) {
    char body[128];
    int len = snprintf(body, sizeof body, "{\"accepted\":true,\"round\":%d,\"duplicate\":%s}",
                       (int)round, rc ? "true" : "false");
    fedc_http_respond(x, 200, "application/json", body, (size_t)len, NULL);
    return;
  }
  if (rc == FEDC_EFORMAT) fedc_http_respond_error(x, 400, "bad_request", "%s", err);
  else if (rc == FEDC_EINVAL) fedc_http_respond_error(x, 403, "not_selected", "%s", err);
  else if (rc == FEDC_ENOMEM) fedc_http_respond_error(x, 503, "unavailable", "%s", err);
  else fedc_http_respond_error(x, 409, "stale_round", "%s", err);
}

void fedc__relay_sa_handle(fedc_relay *r, fedc_http_exchange *x, const fedc_http_request *req,
                           int32_t site) {
  const char *what = req->path + strlen("/v1/secagg/");
  int which = fedc__secagg_route(x, req);
  if (which < 0) return;
  int post = fedc__secagg_is_post(which);
  if (post) {
    static const fedc_secagg_phase phase[3] = {FEDC_SECAGG_ADVERTISE, FEDC_SECAGG_SHARES,
                                               FEDC_SECAGG_UNMASK};
    post_message(r, x, req, site, phase[which]);
    return;
  }
  double round = query_num(req->query, "round", -1), wait = query_num(req->query, "wait", 0);
  if (!(round >= 0) || round != floor(round) || round > 2147483647.0 || !(wait >= 0)) {
    fedc_http_respond_error(x, 400, "bad_request",
                            "GET /v1/secagg/%s needs round=<integer> (and optionally wait=<s>)",
                            what);
    return;
  }
  if (wait > SA_POLL_MAX_S) wait = SA_POLL_MAX_S;
  int kind = which - 3;
  if (try_serve(r, x, site, kind, (int32_t)round) == SERVE_DONE) return;
  if (wait <= 0) fedc_http_respond(x, 204, "application/json", "", 0, NULL);
  else hold(r, x, site, kind, (int32_t)round, wait);
}

static void dump_masked(const fedc_relay *r, int32_t round, uint32_t id, const uint8_t *body,
                        size_t len) {
  char path[640];
  snprintf(path, sizeof path, "%s/relay-round-%d-client-%u.safetensors", r->sa_debug_dir,
           (int)round, (unsigned)id);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(body, 1, len, f) != len)
    fedc_log_warn("msg=\"FEDC_SECAGG_DEBUG_DIR: cannot write\" path=\"%s\"", path);
  if (f) fclose(f);
}

/*
 * A site's masked delta: one U32 tensor "masked" of the model's length
 * with a plain update's metadata and the advertised sample count, folded
 * into the session's sum (the coordinator's checks, secagg_rounds.c).
 */
void fedc__relay_sa_masked(fedc_relay *r, fedc_http_exchange *x, const fedc_http_request *req,
                           int32_t site) {
  fedc_st_file *f = NULL;
  const uint32_t *words = NULL;
  size_t n = 0;
  fedc_update_meta m;
  pthread_mutex_lock(&r->mu);
  size_t want = r->n_params;
  pthread_mutex_unlock(&r->mu);
  int rc = fedc_st_decode_ex(req->body, req->body_len, FEDC_ST_ALLOW_U32, &f);
  if (rc != 0) {
    fedc_http_respond_error(x, 400, rc == FEDC_ECHECKSUM ? "bad_checksum" : "bad_container", "%s",
                            fedc_error_msg());
    return;
  }
  rc = fedc_st_count(f) == 1 ? fedc_st_find_u32(f, "masked", &words, &n) : FEDC_ENOTFOUND;
  if (rc != 0 || n != want) {
    fedc_st_free(f);
    fedc_http_respond_error(x, 400, rc == FEDC_EUNSUPPORTED ? "bad_dtype" : "bad_shape",
                            "secure aggregation: the update must be one U32 tensor \"masked\" "
                            "of %zu words",
                            want);
    return;
  }
  if (fedc_update_meta_parse(f, &m) != 0) {
    fedc_st_free(f);
    fedc_http_respond_error(x, 400, "bad_metadata", "%s", fedc_error_msg());
    return;
  }
  char err[384] = "";
  pthread_mutex_lock(&r->mu);
  uint32_t id = r->site_ids[site];
  pthread_mutex_unlock(&r->mu);
  if (r->sa_debug_dir[0]) dump_masked(r, m.round, id, req->body, req->body_len);
  pthread_mutex_lock(&r->mu);
  relay_sa *sa = r->sa;
  uint64_t advertised = sa && sa->srv ? fedc_secagg_server_party_samples(sa->srv, id) : 0;
  if (sa == NULL || sa->srv == NULL || sa->failed || m.round != sa->round)
    rc = fedc_error_set(FEDC_ESTALE, "masked update for round %d: no such secure round here",
                        (int)m.round);
  else if (advertised != (uint64_t)m.num_samples)
    rc = fedc_error_set(FEDC_EFORMAT, "num_samples = %lld, but the site advertised %llu",
                        (long long)m.num_samples, (unsigned long long)advertised);
  else
    rc = fedc_secagg_server_add_masked(sa->srv, id, words, n);
  if (rc == 0) {
    sa->loss_sum += m.train_loss * (double)m.num_samples;
    pthread_cond_broadcast(&r->cv);
  }
  if (rc != 0 && rc != FEDC_EDUPLICATE) snprintf(err, sizeof err, "%s", fedc_error_msg());
  int32_t masked = sa && sa->srv ? fedc_secagg_server_count(sa->srv, FEDC_SECAGG_MASKED) : 0;
  pthread_mutex_unlock(&r->mu);
  fedc_st_free(f);
  if (rc == 0 || rc == FEDC_EDUPLICATE) {
    if (rc == 0)
      fedc_log_info("round=%d client=%u msg=\"masked update accepted\" masked=%d", (int)m.round,
                    (unsigned)id, (int)masked);
    char body[128];
    int len = snprintf(body, sizeof body, "{\"accepted\":true,\"round\":%d,\"duplicate\":%s}",
                       (int)m.round, rc ? "true" : "false");
    fedc_http_respond(x, 200, "application/json", body, (size_t)len, NULL);
    return;
  }
  if (rc == FEDC_EFORMAT) fedc_http_respond_error(x, 400, "bad_metadata", "%s", err);
  else if (rc == FEDC_EINVAL) fedc_http_respond_error(x, 403, "not_selected", "%s", err);
  else fedc_http_respond_error(x, 409, "stale_round", "%s", err);
}

/* ---- the phases (link thread) -------------------------------------------------------- */


static int all_advertised(const fedc_relay *r) {
  return r->sa == NULL || r->n_reported >= r->cfg->relay_sites;
}

static int phase_complete(const fedc_relay *r) {
  return r->sa == NULL || r->sa->failed || r->sa->srv == NULL ||
         fedc_secagg_server_phase_complete(r->sa->srv);
}

uint64_t fedc__relay_sa_freeze(fedc_relay *r, double deadline) {
  pthread_mutex_lock(&r->mu);
  fedc__relay_wait_until(r, deadline, all_advertised);
  uint64_t total = 0;
  int32_t n = 0;
  relay_sa *sa = r->sa;
  if (sa != NULL && !r->stop) {
    sa->frozen = 1;
    r->deadline = fedc__relay_now(); /* no more train tasks this round */
    if (make_server(r, sa) != 0) {
      fedc_log_error("round=%d msg=\"relay: cannot start the sites' secure session\" "
                     "err=\"%s\"",
                     (int)sa->round, fedc_error_msg());
    } else {
      for (int32_t i = 0; i < sa->n_adv; i++) {
        uint64_t s = fedc_secagg_server_party_samples(sa->srv, r->site_ids[sa->adv[i].site]);
        if (s > 0) n++;
        total += s;
      }
    }
    if (n < 2) {
      sa->failed = 1;
      if (sa->srv) fedc_secagg_server_fail(sa->srv);
      total = 0;
    }
  }
  int32_t round = r->round;
  pthread_mutex_unlock(&r->mu);
  fedc__relay_wake(r);
  fedc_log_info("round=%d msg=\"relay: sites advertised\" advertised=%d of=%d samples=%llu",
                (int)round, (int)n, (int)r->cfg->relay_sites, (unsigned long long)total);
  return total;
}

int fedc__relay_sa_close_phase(fedc_relay *r, double deadline, int32_t frac_bits, double clip) {
  pthread_mutex_lock(&r->mu);
  relay_sa *sa = r->sa;
  int rc = 0;
  fedc_secagg_phase ph = FEDC_SECAGG_FAILED;
  if (sa == NULL || sa->failed || sa->srv == NULL) {
    rc = fedc_error_set(FEDC_ESTATE, "relay: the sites' secure session failed");
  } else {
    ph = fedc_secagg_server_phase(sa->srv);
    if (ph != FEDC_SECAGG_ADVERTISE) fedc__relay_wait_until(r, deadline, phase_complete);
    if (r->stop) rc = fedc_error_set(FEDC_ESTATE, "relay: stopping");
    else if (ph == FEDC_SECAGG_ADVERTISE) {
      rc = fedc_secagg_server_set_quantization(sa->srv, frac_bits, clip);
      if (rc == 0) rc = fedc_secagg_server_close_advertise(sa->srv);
    } else if (ph == FEDC_SECAGG_SHARES) {
      rc = fedc_secagg_server_close_shares(sa->srv);
    } else if (ph == FEDC_SECAGG_MASKED) {
      rc = fedc_secagg_server_close_masked(sa->srv);
    } else if (ph != FEDC_SECAGG_UNMASK) {
      rc = fedc_error_set(FEDC_ESTATE, "relay: the sites' session is in phase %s",
                          fedc_secagg_phase_name(ph));
    }
    if (rc != 0) {
      sa->failed = 1;
      fedc_secagg_server_fail(sa->srv);
    }
  }
  int32_t in = sa && sa->srv && ph <= FEDC_SECAGG_UNMASK ? fedc_secagg_server_count(sa->srv, ph)
                                                          : 0;
  int32_t round = r->round;
  char err[256];
  snprintf(err, sizeof err, "%s", rc ? fedc_error_msg() : "");
  pthread_mutex_unlock(&r->mu);
  fedc__relay_wake(r); /* the held polls see the broadcast (or the failure) now */
  if (rc != 0)
    fedc_log_warn("round=%d msg=\"relay: the sites' secure session failed\" phase=%s "
                  "reason=\"%s\"",
                  (int)round, fedc_secagg_phase_name(ph), err);
  else
    fedc_log_info("round=%d msg=\"relay: secure phase closed\" phase=%s in=%d", (int)round,
                  fedc_secagg_phase_name(ph), (int)in);
  return rc ? fedc_error_set(rc, "%s", err) : 0;
}

int fedc__relay_sa_finish(fedc_relay *r, uint32_t *words, uint64_t *total, double *loss,
                          int32_t *survivors, int32_t *dropped) {
  pthread_mutex_lock(&r->mu);
  relay_sa *sa = r->sa;
  fedc_secagg_result res;
  int rc = sa == NULL || sa->failed || sa->srv == NULL
               ? fedc_error_set(FEDC_ESTATE, "relay: the sites' secure session failed")
               : fedc_secagg_server_finish(sa->srv, NULL, r->n_params, &res);
  if (rc == 0) {
    memcpy(words, fedc_secagg_server_sum(sa->srv), r->n_params * sizeof *words);
    *total = res.total_samples;
    *loss = res.total_samples ? sa->loss_sum / (double)res.total_samples : 0.0;
    *survivors = res.n_clients;
    *dropped = res.dropped;
  } else if (sa != NULL) {
    sa->failed = 1;
  }
  pthread_mutex_unlock(&r->mu);
  fedc__relay_wake(r);
  return rc;
}
