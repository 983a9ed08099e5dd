/*
 * relay.h - a relay (`fedc-coordinator relay`, docs/relays.md): a
 * coordinator to its sites and one client to its parent. relay.c serves
 * the sites protocol v1 on a libuv loop (join, task, model, update) and
 * folds their updates into FedAvg's exact accumulator; relay_link.c is the
 * thread that talks to the parent: it joins, takes the parent's train
 * tasks, opens the same round here with the parent's model bytes, and
 * posts the round's partial sum (wire/partial.h) once every site reported
 * or the parent's deadline is near.
 *
 * Under a parent's secure aggregation the round is a secure session of the
 * relay's own with its sites (relay_secagg_sites.c) whose unmasked sum the
 * relay sends masked, as one party, into its parent's secure round
 * (relay_secagg.c; docs/relays.md, "Secure aggregation").
 *
 * Threads: the loop thread owns the HTTP side; the link thread owns its
 * curl handle. Everything below `mu` is shared under it; the link thread
 * wakes the loop (wake) when a round opens or the job ends, and the loop
 * signals cv when an update arrives.
 */
#ifndef FEDC_RELAY_H
#define FEDC_RELAY_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "agg/agg.h"
#include "config/config.h"
#include "http_body.h"
#include "http_server.h"
#include "ml/model.h"

typedef struct relay_poll {
  fedc_http_exchange *x;
  int32_t site;
  double until; /* monotonic seconds */
} relay_poll;

/* A response body read by the link thread (relay_link.c). */
typedef struct relay_buf {
  uint8_t *p;
  size_t len, cap;
} relay_buf;

typedef struct relay_sa relay_sa; /* relay_secagg_sites.c */

/* A site's held long-poll for a secure broadcast (kind 0 keys, 1
 * myshares, 2 survivors); the loop thread's. */
typedef struct relay_sa_poll {
  fedc_http_exchange *x;
  int32_t site, kind, round;
  double until; /* monotonic seconds */
} relay_sa_poll;

/*
 * A secure round's deadlines, shares of the parent's deadline_s (D) from
 * the task: the relay's own session must end before the parent's masked
 * phase closes (0.85 of its round; docs/protocol.md, "Phases"). The relay
 * stops taking its sites' ADVERTISE at FREEZE (then advertises its total
 * to the parent, whose advertise phase closes by 0.50), closes its KEYS
 * when the parent's KEYS come, its shares phase by SHARES, its masked
 * phase by MASKED and its unmask phase by UNMASK, and posts its masked sum
 * to the parent before 0.85 D.
 */
#define FEDC_RELAY_SA_FREEZE 0.40
#define FEDC_RELAY_SA_SHARES 0.60
#define FEDC_RELAY_SA_MASKED 0.70
#define FEDC_RELAY_SA_UNMASK 0.78

typedef struct fedc_relay {
  const fedc_config *cfg;
  uv_loop_t loop;
  uv_async_t wake;
  uv_timer_t tick;
  fedc_http_server *server;
  relay_poll *polls;
  int32_t n_polls, polls_cap;
  relay_sa_poll *sa_polls;
  int32_t n_sa_polls, sa_polls_cap;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* the parent's job (set once by the link thread) */
  char *job_json; /* its "job" object, printed; "round" is set per answer */
  fedc_model_spec spec;
  size_t n_params;
  /* the round relayed now */
  int32_t round;  /* the parent's round number; 0 before the first */
  int open;       /* taking updates */
  int finished;   /* the parent said finished */
  int stop;       /* the loop is to stop */
  fedc_http_body *model; /* the parent's start model of `round`, verbatim,
                            shared by the sites' downloads (http_body.h) */
  size_t model_len;
  char model_sha[65];
  float *global;   /* the same, decoded (for max_weight_delta's transform) */
  double deadline; /* monotonic: the partial leaves by then */
  /* the sites: fingerprints in order of first join (index), with their
   * client ids (from the fingerprint: stable across the relay's restarts) */
  char (*sites)[65];
  uint32_t *site_ids;
  uint8_t *reported; /* per site, in the open round */
  int32_t n_sites, sites_cap, n_reported;
  fedc_strategy *sum; /* FedAvg's accumulator for the open round */
  int32_t updates;    /* client updates summed in it (a child relay's count) */
  double loss_sum;    /* sample-weighted training loss */
  uint64_t bytes_up;  /* partial bytes posted to the parent */
  /* secure aggregation (relay_secagg*.c) */
  uint32_t parent_id; /* this relay's client id at the parent */
  int secure;         /* the open round is a secure one */
  relay_sa *sa;       /* its session with the sites (NULL outside one) */
  char sa_debug_dir[512]; /* FEDC_SECAGG_DEBUG_DIR: what the sites sent */
} fedc_relay;

double fedc__relay_now(void);
/* relay.c: under mu, wait on cv (waking every 100 ms) until done(r), the
 * deadline (fedc__relay_now's clock) or a stop. */
void fedc__relay_wait_until(fedc_relay *r, double deadline, int (*done)(const fedc_relay *));
/* relay_link.c: the link thread's body (arg: the relay). */
void *fedc__relay_link_main(void *arg);
/* relay.c: wake the loop thread (any thread). */
void fedc__relay_wake(fedc_relay *r);
/* relay_link.c: one request to the parent; the HTTP status, 0 on a
 * network error (the link thread's curl handle h). */
long fedc__relay_call(fedc_relay *r, void *h, const char *method, const char *path,
                      const uint8_t *body, size_t len, double timeout_s, relay_buf *out);
/* relay_link.c: whether the relay is stopping (any thread). */
int fedc__relay_stopping(fedc_relay *r);

/* relay_secagg_sites.c: the relay's secure session with its sites. Under
 * mu: open the round's session (its parties are fixed at the freeze: the
 * sites that advertised, by client id), or free it. */
int fedc__relay_sa_open(fedc_relay *r);
void fedc__relay_sa_close(fedc_relay *r);
/* Loop thread: the /v1/secagg/ requests of site `site` (index), a masked
 * update (POST /v1/update in a secure round), and the held long-polls
 * (all: answer every one now). */
void fedc__relay_sa_handle(fedc_relay *r, fedc_http_exchange *x, const fedc_http_request *req,
                           int32_t site);
void fedc__relay_sa_masked(fedc_relay *r, fedc_http_exchange *x, const fedc_http_request *req,
                           int32_t site);
void fedc__relay_sa_polls(fedc_relay *r, int all);
/* Link thread (takes mu): wait until every expected site has sent the
 * current phase's message or `deadline` (monotonic) passed, then close the
 * phase: the advertise phase with the parent's frac_bits and clip. 0, or
 * an error when the session cannot go on (it then fails). */
int fedc__relay_sa_close_phase(fedc_relay *r, double deadline, int32_t frac_bits, double clip);
/* Link thread: wait for the sites' advertisements (all [relay] sites, or
 * deadline) and stop taking more: the advertised total N_r, 0 when fewer
 * than 2 advertised (the session cannot run). */
uint64_t fedc__relay_sa_freeze(fedc_relay *r, double deadline);
/* Link thread, after the unmask phase: unmask the subtree's sum into
 * words (n_params), with the survivors' total samples and mean loss. */
int fedc__relay_sa_finish(fedc_relay *r, uint32_t *words, uint64_t *total, double *loss,
                          int32_t *survivors, int32_t *dropped);

/* relay_secagg.c: the relay as one party of the parent's secure round
 * (link thread), from the task to its UNMASK; the relay's session with
 * its sites runs inside it. */
void fedc__relay_secure_round(fedc_relay *r, void *h, int32_t round, double deadline_s,
                              relay_buf *b);

/* The `relay` command of fedc-coordinator: an exit code (coordinator.h). */
int fedc__relay_main(const fedc_config *cfg, int argc, char **argv);

#endif
