/*
 * sim_async.c - FedBuff in the simulator: clients that are not in lockstep.
 *
 * clients_per_round clients are always training. Each starts from the
 * global model of the moment (version v), takes a virtual time of
 * rows / speed to finish (speeds exp(N(0, speed_skew^2)), drawn once per
 * client from the seed, so slow clients stay slow), and its update
 * delta = w - x_v reaches the engine at its finish time; the next client
 * then starts from the model of that moment. The engine weighs each delta
 * by its staleness and steps every buffer_k updates (engine.h). Virtual
 * time, not the wall clock, orders events, so a run repeats exactly for a
 * seed whatever the machine's speed. Training here is sequential (on the
 * first worker); evaluation uses the whole pool.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "attack.h"
#include "base/error.h"
#include "base/rng.h"
#include "sim_internal.h"

typedef struct flight {
  int32_t client;
  int32_t base;   /* the version it trains from */
  double finish;  /* virtual time */
  int64_t n_rows;
  double loss;
  float *delta;
} flight;

struct fedc_sim_async {
  int32_t n_flights;
  flight *fl;
  const double *speed;
  uint8_t *busy;
  double now;
  uint64_t starts;
  fedc_rng pick;
};

void fedc__sim_async_free(fedc_sim_async *a) {
  if (a == NULL) return;
  for (int32_t i = 0; a->fl && i < a->n_flights; i++) fedc_free(a->fl[i].delta);
  fedc_free(a->fl);
  fedc_free(a->busy);
  fedc_free(a);
}

/* Start a random idle client from the current global model in slot f. */
static int start(fedc_sim *s, fedc_sim_async *a, flight *f) {
  const fedc_config *c = &s->cfg;
  int32_t client;
  do client = (int32_t)fedc_rng_below(&a->pick, (uint64_t)c->clients);
  while (a->busy[client]);
  const float *x = fedc_engine_global(s->engine);
  float *w = s->workers[0].w;
  memcpy(w, x, s->n_params * sizeof(float));
  /* each start has its own stream: (seed, "train", start number, client) */
  int rc = fedc__sim_train_client(s, 0, client, (int32_t)(a->starts & 0x7fffffff), w,
                                  &f->loss, &f->n_rows);
  if (rc != 0) return rc;
  int32_t version = fedc_engine_round(s->engine) - 1;
  if (s->attackers[client])
    fedc_attack_update(c, version + 1, client, x, w, s->n_params);
  for (size_t i = 0; i < s->n_params; i++) f->delta[i] = w[i] - x[i];
  f->client = client;
  f->base = version;
  f->finish = a->now + (double)f->n_rows / a->speed[client];
  a->busy[client] = 1;
  a->starts++;
  return 0;
}

int fedc__sim_speeds(fedc_sim *s) {
  const fedc_config *c = &s->cfg;
  if (s->speed) return 0;
  s->speed = fedc_malloc_array((size_t)c->clients, sizeof *s->speed);
  if (s->speed == NULL) return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  fedc_rng rng;
  fedc_rng_derive(&rng, c->seed, 0x7370656564 /* "speed" */, 0, 0);
  for (int32_t i = 0; i < c->clients; i++)
    s->speed[i] = exp(c->speed_skew * fedc_rng_normal(&rng));
  return 0;
}

double fedc__sim_round_vtime(fedc_sim *s) {
  if (fedc__sim_speeds(s) != 0) return NAN;
  double t = 0.0;
  for (int32_t i = 0; i < s->n_selected; i++) {
    int32_t k = s->selected[i];
    double d = (double)(s->part.offsets[k + 1] - s->part.offsets[k]) / s->speed[k];
    if (d > t) t = d;
  }
  return t;
}

double fedc_sim_vtime(const fedc_sim *s) { return s->vtime; }

static int setup(fedc_sim *s) {
  const fedc_config *c = &s->cfg;
  fedc_sim_async *a = fedc_calloc(1, sizeof *a);
  if (a == NULL) return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  s->async = a;
  a->n_flights = c->clients_per_round < c->clients ? c->clients_per_round : c->clients;
  a->fl = fedc_calloc((size_t)a->n_flights, sizeof *a->fl);
  a->busy = fedc_calloc((size_t)c->clients, 1);
  if (a->fl == NULL || a->busy == NULL || fedc__sim_speeds(s) != 0)
    return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  a->speed = s->speed;
  fedc_rng_derive(&a->pick, c->seed, 0x7069636b /* "pick" */, 0, 0);
  for (int32_t i = 0; i < a->n_flights; i++) {
    if ((a->fl[i].delta = fedc_malloc_array(s->n_params, sizeof(float))) == NULL)
      return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
    int rc = start(s, a, &a->fl[i]);
    if (rc != 0) return rc;
  }
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/*
 * Deliver updates in virtual-time order (ties to the lower client id)
 * until the engine steps; that step is the "round" reported.
 */
int fedc__sim_async_step(fedc_sim *s, fedc_round_metrics *out) {
  double t0 = now_s();
  int rc = s->async ? 0 : setup(s);
  if (rc != 0) return rc;
  fedc_sim_async *a = s->async;
  for (;;) {
    flight *f = &a->fl[0];
    for (int32_t i = 1; i < a->n_flights; i++) {
      flight *g = &a->fl[i];
      if (g->finish < f->finish || (g->finish == f->finish && g->client < f->client)) f = g;
    }
    a->now = f->finish;
    s->vtime = a->now;
    int stepped = 0;
    fedc_round_metrics m;
    rc = fedc_engine_submit_async(s->engine, f->client, f->base, f->delta, s->n_params,
                                  (uint64_t)f->n_rows, f->loss, &stepped, &m);
    if (rc != 0) return rc;
    a->busy[f->client] = 0;
    if (!fedc_engine_done(s->engine) && (rc = start(s, a, f)) != 0) return rc;
    if (!stepped) continue;
    double loss = NAN, acc = NAN;
    if (m.round % s->cfg.eval_every == 0 || m.round == s->cfg.rounds) {
      rc = fedc_sim_evaluate(s, &loss, &acc);
      if (rc != 0) return rc;
    }
    m.secs = now_s() - t0;
    m.test_loss = loss;
    m.test_acc = acc;
    fedc_engine_record(s->engine, m.round, loss, acc, m.secs);
    *out = m;
    return 0;
  }
}
