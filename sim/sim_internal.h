/*
 * sim_internal.h - the simulator's state, shared by the files of the
 * driver: sim.c (set-up, synchronous rounds, evaluation) and sim_async.c
 * (FedBuff's asynchronous steps).
 */
#ifndef FEDC_SIM_INTERNAL_H
#define FEDC_SIM_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "config/config.h"
#include "config/data_source.h"
#include "data/data.h"
#include "round/engine.h"
#include "ml/model.h"
#include "data/partition.h"
#include "base/pool.h"
#include "sim.h"
#include "ml/train.h"
#include "ml/eval_report.h"

typedef struct fedc_sim_async fedc_sim_async;
typedef struct fedc_sim_scaffold fedc_sim_scaffold;
typedef struct fedc_sim_codec fedc_sim_codec;

#define EVAL_BATCH 512
#define EVAL_CHUNKS 16

typedef struct worker {
  fedc_backend *be;
  fedc_trainer *train;
  fedc_trainer *eval;
  fedc_data_view train_view, test_view;
  float *w;
} worker;

typedef struct chunk_sums {
  fedc_eval_sums sums;
  fedc_eval_report *report; /* NULL when the model has none */
  int rc;
} chunk_sums;

struct fedc_sim {
  fedc_config cfg;
  fedc_sim_share share;
  fedc_dataset train, test;
  fedc_data_prep prep; /* a schema and the federation's moments (data_source.h) */
  fedc_partition part;
  fedc_model_spec spec;
  size_t n_params;
  fedc_engine *engine;
  fedc_pool *pool;
  worker *workers;
  int32_t n_workers;
  pthread_mutex_t mu;
  int32_t *eligible, *selected, n_selected;
  int32_t *mine, n_mine; /* the selected clients this share trains */
  uint8_t *attackers;    /* [sim] attack: one flag per client */
  struct fedc_sim_async *async; /* fedbuff's clients in flight */
  fedc_sim_scaffold *scaffold;  /* SCAFFOLD's control variates, or NULL */
  fedc_sim_codec *codec;        /* [strategy] compression (sim_codec.c) */
  double *speed;                /* clients' speeds (sim_async.c), made on first use */
  double vtime;                 /* the simulated clock (fedc_sim_vtime) */
  int round_rc; /* first error of the round's tasks */
  char round_err[512];
  chunk_sums chunks[EVAL_CHUNKS];
  fedc_eval_report *report; /* the last evaluation's, merged in chunk order */
  int32_t report_round;     /* the round it evaluated; 0 = none yet */
  int32_t last_round;       /* the last round closed */
  double phase[3];          /* seconds in local training, aggregation, evaluation */
};


/* sim_async.c: one FedBuff server step (a "round"): clients train from the
 * version they started on, finish in virtual time by their speeds, and the
 * engine steps every [strategy] buffer_k updates. */
int fedc__sim_async_step(fedc_sim *s, fedc_round_metrics *out);
void fedc__sim_async_free(fedc_sim_async *a);
/* sim_async.c: client k's speed (rows per unit of simulated time), and a
 * synchronous round's duration: its slowest selected client's. */
int fedc__sim_speeds(fedc_sim *s);
double fedc__sim_round_vtime(fedc_sim *s);
/* sim.c: train client on worker wi from weights w (in: start, out: trained) */
int fedc__sim_train_client(fedc_sim *s, int32_t wi, int32_t client,
                           int32_t round, float *w, double *loss,
                           int64_t *n_rows);

/* sim_scaffold.c: SCAFFOLD's client variates (s->scaffold is NULL for
 * other strategies; the server variate is the engine's). new after the
 * engine and workers exist; before gives worker wi's correction c - c_i
 * for client and remembers the start model x; after updates the client's
 * variate from the trained y (steps local steps) and its delta, which
 * delta gives until the worker's next client. */
int fedc__sim_scaffold_new(fedc_sim *s);
void fedc__sim_scaffold_free(fedc_sim *s);
const float *fedc__sim_scaffold_before(fedc_sim *s, int32_t wi, int32_t client,
                                       const float *x);
int fedc__sim_scaffold_after(fedc_sim *s, int32_t wi, int32_t client, const float *y,
                             int64_t steps);
const float *fedc__sim_scaffold_delta(const fedc_sim *s, int32_t wi);

/* sim_codec.c: [strategy] compression. new after the engine; apply turns
 * client's trained w (round, samples, loss) into what the coordinator would
 * decode from its compressed body, counting the body's bytes. */
int fedc__sim_codec_new(fedc_sim *s);
void fedc__sim_codec_free(fedc_sim *s);
int fedc__sim_codec_apply(fedc_sim *s, int32_t client, int32_t round, uint64_t samples,
                          double loss, float *w);

#endif
