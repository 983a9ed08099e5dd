/*
 * pipeline.h - what happens to updates between a client and the next
 * global model x, in the order it happens:
 *
 *   per update:  d = w - x
 *                norm bound ([strategy] norm_bound): clip d to the bound,
 *                  or refuse the update
 *                DP clip ([privacy]): d clipped to the DP norm S
 *                the aggregator folds x + d (FedAvg weighted by samples,
 *                  unweighted under DP; robust aggregators unweighted)
 *   per round:   avg = the aggregate
 *                DP: avg - x gets Gaussian noise z S / m; S adapts
 *                the server optimizer steps x with d = avg - x
 *
 * FedBuff's asynchronous deltas go the same way (fedc_pipeline_add_async):
 * norm bound and DP clip on the delta, a staleness weight, then the
 * aggregator and the server step.
 *
 * With no norm bound, no DP and plain FedAvg, updates go straight to the
 * aggregator and x = avg: exactly FedAvg. The round engine owns one
 * pipeline; the pipeline knows nothing of rounds' selection or quorum.
 */
#ifndef FEDC_PIPELINE_H
#define FEDC_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "agg/agg.h"
#include "privacy/dp.h"
#include "agg/server_opt.h"

typedef struct fedc_pipeline_params {
  fedc_agg_params agg;
  fedc_server_opt_params opt;
  double norm_bound;     /* 0 = off */
  int norm_refuse;       /* 1: refuse an update over the bound; 0: clip it */
  int dp_on;
  fedc_dp_params dp;
  int32_t buffer_k;      /* fedbuff: updates per server step */
  int32_t population;    /* clients that could be sampled (DP's q) */
  int32_t per_round;     /* clients sampled per round (DP's q) */
  /* Hostile clients ([server] max_samples, [strategy] max_client_share,
   * [strategy] max_weight_delta; 0 = off for each): an update claiming
   * more samples, or with a weight further than max_delta from the global
   * model's, is refused (FEDC_ERANGE); no client's FedAvg weight exceeds
   * max_share of the round's total (see "The share cap" in pipeline.c). */
  uint64_t max_samples;
  double max_share;
  double max_delta;
  /* A tensor job's layout (ml/layout.h), or NULL (every value F32): the
   * engine rounds each committed F16/BF16 value to its dtype. The caller
   * keeps it alive as long as the engine. */
  const struct fedc_layout *layout;
  /* SCAFFOLD (a strategy with FEDC_STRATEGY_VARIATES): the samples of all
   * the federation's clients, which the server variate's weighted sum of
   * deltas divides by (agg/scaffold.h); below 1 counts as 1. */
  double variate_total;
} fedc_pipeline_params;

/* Plain FedAvg, as before any of the above existed. */
void fedc_pipeline_params_fedavg(fedc_pipeline_params *p, int32_t max_updates);

typedef struct fedc_pipeline fedc_pipeline;

typedef struct fedc_pipeline_round {
  int32_t clipped;      /* updates clipped by the norm bound */
  int32_t capped;       /* updates whose FedAvg weight the share cap cut */
  int32_t dp_unclipped; /* updates under the DP clip norm */
  double epsilon;       /* DP epsilon spent so far at delta; NAN without DP */
  double delta;
  double clip_norm;     /* the DP clip norm used this round; NAN without DP */
} fedc_pipeline_round;

int fedc_pipeline_new(const fedc_pipeline_params *p, size_t n,
                      fedc_pipeline **out);
void fedc_pipeline_free(fedc_pipeline *pl);
/* The aggregator (for drivers that merge FedAvg's additive sums). */
fedc_strategy *fedc_pipeline_aggregator(fedc_pipeline *pl);
/* 1 when the aggregator runs on the GPU ([strategy] device, agg.h). */
int fedc_pipeline_on_gpu(const fedc_pipeline *pl);
/* The registry's entry for the pipeline's strategy: its capabilities. */
const fedc_strategy_info *fedc_pipeline_strategy(const fedc_pipeline *pl);
int fedc_pipeline_dp_on(const fedc_pipeline *pl);

int fedc_pipeline_begin(fedc_pipeline *pl, const float *x);
/*
 * Take one update w (n weights) with its sample count. Refused before any
 * state changes: FEDC_ENONFINITE, FEDC_ESHAPE, FEDC_ERANGE (over the norm
 * bound with norm_action = refuse; the message gives the norm and bound).
 */
int fedc_pipeline_add(fedc_pipeline *pl, const float *x, const float *w,
                      size_t n, uint64_t n_samples);
/*
 * Like fedc_pipeline_add, for an update that is already a sum of several
 * clients' (secure aggregation's unmasked sum): n_samples is their total,
 * so max_samples and the share cap do not apply to it as one client's.
 */
int fedc_pipeline_add_sum(fedc_pipeline *pl, const float *x, const float *w,
                          size_t n, uint64_t n_samples);
/*
 * Fold the updates the share cap holds aside into the aggregator with
 * their full weights, for a driver that is about to read the aggregator's
 * sums to merge them with other processes' (fedc_engine_partial): a round
 * split over processes is not capped. Never fails.
 */
void fedc_pipeline_flush(fedc_pipeline *pl);
/*
 * Early folds (coordinator/upload_fold.c): an update folded a range of
 * weights at a time as its bytes arrive. fold_early_ok says whether this
 * pipeline's fold of one update with n_samples acts weight by weight
 * (then the sums after every range folded are those of fedc_pipeline_add,
 * bit for bit); fold_early folds (m > 0, after checking) or takes out
 * (m < 0) weights [off, off + len) of w with weight m, y a scratch of len
 * floats; add_folded counts a wholly folded update's samples. Under the
 * share cap the cap may cut it at finish: add_folded then needs *fd, a
 * descriptor of a file holding its n float values at offset off, which
 * the pipeline may keep (it sets *fd to -1 and closes it at the next
 * begin; FEDC_EINVAL, nothing counted, without one); the finish must then
 * be given the round's global model (fedc__pipeline_finish_base).
 */
int fedc__pipeline_fold_early_ok(const fedc_pipeline *pl, uint64_t n_samples);
int fedc__pipeline_fold_early(fedc_pipeline *pl, const float *x, size_t off, const float *w,
                              size_t len, int64_t m, float *y);
int fedc__pipeline_add_folded(fedc_pipeline *pl, uint64_t n_samples, int *fd, uint64_t off);
/* The round's sums are wrong (a fold that could not be taken out): its
 * finish fails with FEDC_EIO until the next begin. */
void fedc__pipeline_fail(fedc_pipeline *pl);
/*
 * Asynchronous rounds (FedBuff): take one delta (n weights, relative to
 * the model its client started from) with its staleness weight in (0, 1].
 * It goes through the same norm bound and DP clip as fedc_pipeline_add,
 * then the aggregator folds x + weight * delta, unweighted by samples; a
 * buffer is opened by fedc_pipeline_begin and closed by
 * fedc_pipeline_finish like a round. Same refusals as fedc_pipeline_add.
 */
int fedc_pipeline_add_async(fedc_pipeline *pl, const float *x, const float *delta, size_t n,
                            double weight);
/* Close the round: x (in: the global model, out: the next one). m is the
 * number of updates added. FEDC_EQUORUM if none. */
int fedc_pipeline_finish(fedc_pipeline *pl, int32_t round, float *x, size_t n,
                         int32_t m, fedc_pipeline_round *out);
/* The same, with base the round's global model left unchanged (x may be
 * a copy of it that the finish overwrites): an early-folded update the
 * share cap cuts is adjusted against it (fedc__pipeline_add_folded). */
int fedc__pipeline_finish_base(fedc_pipeline *pl, int32_t round, float *x, const float *base,
                               size_t n, int32_t m, fedc_pipeline_round *out);
/*
 * Taking a round's finish back. fedc_pipeline_save records everything
 * fedc_pipeline_finish changes: the server optimizer's state and, under
 * DP, the clip norm, the rounds counter and the accountant's ledger (the
 * noise needs nothing: each round's is drawn from streams derived from the
 * DP seed and the round). fedc_pipeline_undo puts them back, so that the
 * round finished again draws the same noise, steps the optimizer from the
 * same state and spends the same privacy: the same model and epsilon, bit
 * for bit. The aggregator's finish only reads its accumulator, and the
 * round's clip counters are left by finish as they were, so neither needs
 * saving. save allocates its buffers the first time (FEDC_ENOMEM, nothing
 * saved); undo never allocates and, after a successful save, returns 0.
 */
int fedc_pipeline_save(fedc_pipeline *pl);
int fedc_pipeline_undo(fedc_pipeline *pl);
/* DP: would one more round go over the epsilon budget? */
int fedc_pipeline_budget_exhausted(const fedc_pipeline *pl);
/* Re-apply `rounds` DP rounds already taken and the clip norm in use. */
/* A release outside the rounds under DP (fedc_dp_account_release); a no-op
 * (0) without DP. */
int fedc_pipeline_account_release(fedc_pipeline *pl, double sigma);
int fedc_pipeline_restore_privacy(fedc_pipeline *pl, double clip_norm,
                                  int32_t rounds);
/* The server optimizer's state (momentum and second moments), so that a
 * restarted coordinator goes on where it stopped: its length in floats (0
 * for plain FedAvg), a copy, and a restore. */
size_t fedc_pipeline_opt_state_len(const fedc_pipeline *pl);
int fedc_pipeline_opt_state_get(const fedc_pipeline *pl, float *buf, size_t len);
int fedc_pipeline_opt_state_set(fedc_pipeline *pl, const float *buf, size_t len);
/*
 * SCAFFOLD's server control variate (agg/scaffold.h), kept by the
 * pipeline of a strategy with FEDC_STRATEGY_VARIATES (NULL / FEDC_ESTATE
 * otherwise). check refuses a client's variate delta that add would
 * (FEDC_ESHAPE, FEDC_ENONFINITE, FEDC_ERANGE) without changing anything;
 * add folds it with weight n_samples. finish updates the variate after the
 * server step; save/undo and the opt_state functions cover it (the
 * opt_state is the server optimizer's followed by the n floats of c).
 */
const float *fedc_pipeline_variate(const fedc_pipeline *pl);
int fedc_pipeline_check_variate(const fedc_pipeline *pl, const float *delta, size_t n);
int fedc_pipeline_add_variate(fedc_pipeline *pl, const float *delta, size_t n,
                              uint64_t n_samples);
/* Privacy spent so far (NAN without DP). */
double fedc_pipeline_epsilon(const fedc_pipeline *pl);

#endif
