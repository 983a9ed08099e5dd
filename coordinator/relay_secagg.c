/*
 * relay_secagg.c - a relay as one party of its parent's secure round
 * (docs/relays.md, "Secure aggregation"; docs/protocol.md). The link
 * thread runs it for a train task that says "secagg", on top of
 * shared/privacy's client and relay_link.c's HTTP:
 *
 *   1. its sites train and advertise to it (relay_secagg_sites.c); once
 *      all [relay] sites have, or at FEDC_RELAY_SA_FREEZE of the parent's
 *      deadline, it fixes its parties and their total N_r, and advertises
 *      N_r to the parent with keys of its own;
 *   2. the parent's KEYS give the round's fractional bits f and clip,
 *      which f the parent drew from its whole advertised total; the relay
 *      closes its own KEYS with that same f and clip (so its sites quantize
 *      exactly as they would under the parent) and posts its SHARES;
 *   3. its own session runs to the end (deadlines FEDC_RELAY_SA_*, inside
 *      the parent's masked phase) and unmasks the subtree's sum
 *      S_r = sum_u n_u Q(delta_u) mod 2^32 only, with the survivors' total
 *      N_r' <= N_r;
 *   4. it masks S_r as it is (fedc_secagg_client_masked_words: already
 *      quantized and weighted) and posts it to the parent's POST /v1/update
 *      as format "fedc-secagg-relay" with num_samples N_r', the weight the
 *      parent divides by (a site that dropped inside the relay's session is
 *      in neither), then reveals its shares for the parent's survivors.
 *
 * Words add modulo 2^32 whatever the grouping, f is the parent's at every
 * level and the parent divides by the same survivors' total: the committed
 * model is bit for bit that of the same sites in a flat secure round. A
 * step that fails gives the round up at this relay: to the parent it is a
 * party that dropped (recovered by the parent's session if it has enough
 * parties, else the round is abandoned and opened again).
 */
#include "relay.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "privacy/secagg.h"
#include "wire/safetensors.h"

#define POLL_S 5

typedef struct party_run {
  fedc_relay *r;
  void *h;
  relay_buf *b;
  int32_t round;
  double end; /* monotonic: the parent's round deadline */
} party_run;

static void nap(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* The round's session with the sites ends (they get "wait" until the
 * parent's next round). Idempotent. */
static void close_sites(fedc_relay *r) {
  pthread_mutex_lock(&r->mu);
  r->open = 0;
  fedc__relay_sa_close(r);
  pthread_mutex_unlock(&r->mu);
  fedc__relay_wake(r);
}

static int over(const party_run *p) {
  return fedc__relay_stopping(p->r) || fedc__relay_now() > p->end;
}

/* A 4xx answer of the parent to what, with the start of its body. */
static int refused(const party_run *p, const char *what, long st) {
  return fedc_error_set(FEDC_EINVAL, "the parent refused %s: %ld %.*s", what, st,
                        (int)(p->b->len > 200 ? 200 : p->b->len),
                        p->b->p ? (const char *)p->b->p : "");
}

/* POST a message to the parent until it answers other than 5xx or a
 * network error: 0 when accepted. */
static int post(party_run *p, const char *path, const uint8_t *body, size_t len) {
  while (!over(p)) {
    long st = fedc__relay_call(p->r, p->h, "POST", path, body, len, 60, p->b);
    if (st == 200) {
      pthread_mutex_lock(&p->r->mu);
      p->r->bytes_up += len;
      pthread_mutex_unlock(&p->r->mu);
      return 0;
    }
    if (st >= 400 && st < 500) return refused(p, path, st);
    nap(0.5);
  }
  return fedc_error_set(FEDC_ESTALE, "%s: the parent's round is over", path);
}

/* Long-poll one of the parent's broadcasts: *out (fedc_free) on 0. */
static int fetch(party_run *p, const char *what, uint8_t **out, size_t *len) {
  char path[128];
  snprintf(path, sizeof path, "/v1/secagg/%s?round=%d&wait=%d", what, (int)p->round, POLL_S);
  while (!over(p)) {
    long st = fedc__relay_call(p->r, p->h, "GET", path, NULL, 0, POLL_S + 30, p->b);
    if (st == 204) continue;
    if (st == 200) {
      *out = p->b->p; /* taken: the buffer grows again from nothing */
      *len = p->b->len;
      p->b->p = NULL;
      p->b->len = p->b->cap = 0;
      return 0;
    }
    if (st >= 400 && st < 500) return refused(p, what, st);
    nap(0.5);
  }
  return fedc_error_set(FEDC_ESTALE, "%s: the parent's round is over", what);
}

/* The masked subtree sum as the parent's POST /v1/update takes it: one U32
 * tensor "masked", format "fedc-secagg-relay", num_samples its weight. */
static int encode(const uint32_t *y, size_t n, int32_t round, uint64_t samples, double loss,
                  uint8_t **out, size_t *len) {
  char rd[16], ns[24], l[40];
  snprintf(rd, sizeof rd, "%d", (int)round);
  snprintf(ns, sizeof ns, "%llu", (unsigned long long)samples);
  snprintf(l, sizeof l, "%.9g", isfinite(loss) ? loss : 0.0);
  fedc_st_meta meta[] = {{"format", "fedc-secagg-relay"}, {"round", rd},
                         {"num_samples", ns}, {"train_loss", l}};
  return fedc_st_encode_u32("masked", y, n, meta, sizeof meta / sizeof *meta, out, len);
}

/* Steps 2 to 4, once N_r is advertised: 0 when the relay's UNMASK went in. */
static int run(party_run *p, fedc_secagg_client *pc, double t0, double d) {
  fedc_relay *r = p->r;
  uint8_t *in = NULL, *msg = NULL;
  size_t in_len = 0, len = 0;
  uint32_t *sum = NULL, *y = NULL;
  int rc = fetch(p, "keys", &in, &in_len);
  if (rc == 0) rc = fedc_secagg_client_share(pc, in, in_len, &msg, &len);
  fedc_free(in);
  in = NULL;
  /* the sites quantize with the parent's f and clip */
  if (rc == 0)
    rc = fedc__relay_sa_close_phase(r, 0, fedc_secagg_client_frac_bits(pc),
                                    fedc_secagg_client_clip(pc));
  if (rc == 0) rc = post(p, "/v1/secagg/shares", msg, len);
  fedc_free(msg);
  msg = NULL;
  if (rc == 0) rc = fedc__relay_sa_close_phase(r, t0 + FEDC_RELAY_SA_SHARES * d, 0, 0);
  if (rc == 0) rc = fedc__relay_sa_close_phase(r, t0 + FEDC_RELAY_SA_MASKED * d, 0, 0);
  if (rc == 0) rc = fedc__relay_sa_close_phase(r, t0 + FEDC_RELAY_SA_UNMASK * d, 0, 0);
  uint64_t total = 0;
  double loss = 0;
  int32_t surv = 0, dropped = 0;
  if (rc == 0) {
    sum = fedc_malloc_array(r->n_params, sizeof *sum);
    y = fedc_malloc_array(r->n_params, sizeof *y);
    rc = sum && y ? fedc__relay_sa_finish(r, sum, &total, &loss, &surv, &dropped)
                  : fedc_error_set(FEDC_ENOMEM, "out of memory");
  }
  /* the sites are done: they get "wait" until the parent's next round */
  close_sites(r);
  if (rc == 0)
    fedc_log_info("round=%d msg=\"relay: subtree sum unmasked\" survivors=%d dropped=%d "
                  "samples=%llu frac_bits=%d",
                  (int)p->round, (int)surv, (int)dropped, (unsigned long long)total,
                  (int)fedc_secagg_client_frac_bits(pc));
  if (rc == 0) rc = fetch(p, "myshares", &in, &in_len);
  if (rc == 0) rc = fedc_secagg_client_masked_words(pc, in, in_len, sum, r->n_params, y);
  fedc_free(in);
  in = NULL;
  fedc_free(sum);
  if (rc == 0) rc = encode(y, r->n_params, p->round, total, loss, &msg, &len);
  fedc_free(y);
  if (rc == 0) rc = post(p, "/v1/update", msg, len);
  fedc_free(msg);
  msg = NULL;
  if (rc == 0) rc = fetch(p, "survivors", &in, &in_len);
  if (rc == 0) rc = fedc_secagg_client_unmask(pc, in, in_len, &msg, &len);
  fedc_free(in);
  if (rc == 0) rc = post(p, "/v1/secagg/unmask", msg, len);
  fedc_free(msg);
  return rc;
}

void fedc__relay_secure_round(fedc_relay *r, void *h, int32_t round, double deadline_s,
                              relay_buf *b) {
  double t0 = fedc__relay_now(), d = deadline_s > 0 ? deadline_s : 0;
  party_run p = {.r = r, .h = h, .b = b, .round = round, .end = t0 + d};
  fedc_secagg_client *pc = NULL;
  uint8_t *msg = NULL;
  size_t len = 0;
  int rc = 0;
  uint64_t total = fedc__relay_sa_freeze(r, t0 + FEDC_RELAY_SA_FREEZE * d);
  if (total == 0)
    rc = fedc_error_set(FEDC_EQUORUM, "fewer than 2 sites advertised keys to the relay");
  if (rc == 0) rc = fedc_secagg_client_new(round, r->parent_id, total, r->n_params, &pc);
  if (rc == 0) rc = fedc_secagg_client_advertise(pc, &msg, &len);
  if (rc == 0) rc = post(&p, "/v1/secagg/advertise", msg, len);
  fedc_free(msg);
  if (rc == 0) rc = run(&p, pc, t0, d);
  fedc_secagg_client_free(pc);
  close_sites(r);
  if (rc == 0)
    fedc_log_info("round=%d msg=\"relay: secure round done\" samples=%llu", (int)round,
                  (unsigned long long)total);
  else
    fedc_log_warn("round=%d msg=\"relay: secure round given up\" reason=\"%s\"", (int)round,
                  fedc_error_msg());
}
