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

typedef struct fedc_relay {
  const fedc_config *cfg;
  uv_loop_t loop;
  uv_async_t wake;
  uv_timer_t tick;
  fedc_http_server *server;
  relay_poll *polls;
  int32_t n_polls, polls_cap;

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
  /* the sites: fingerprints in order of first join (id = index + 1) */
  char (*sites)[65];
  uint8_t *reported; /* per site, in the open round */
  int32_t n_sites, sites_cap, n_reported;
  fedc_strategy *sum; /* FedAvg's accumulator for the open round */
  int32_t updates;    /* client updates summed in it (a child relay's count) */
  double loss_sum;    /* sample-weighted training loss */
  uint64_t bytes_up;  /* partial bytes posted to the parent */
} fedc_relay;

double fedc__relay_now(void);
/* relay_link.c: the link thread's body (arg: the relay). */
void *fedc__relay_link_main(void *arg);
/* relay.c: wake the loop thread (any thread). */
void fedc__relay_wake(fedc_relay *r);
/* The `relay` command of fedc-coordinator: an exit code (coordinator.h). */
int fedc__relay_main(const fedc_config *cfg, int argc, char **argv);

#endif
