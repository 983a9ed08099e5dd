/*
 * pipeline.c - norm bounds, DP clipping and noise, aggregation and the
 * server optimizer, in the order pipeline.h gives. Synchronous updates
 * (fedc_pipeline_add) and FedBuff's asynchronous deltas
 * (fedc_pipeline_add_async) share one conditioning step (condition), so a
 * norm bound or a DP clip means the same for both.
 */
#include "round/pipeline.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

struct fedc_pipeline {
  fedc_pipeline_params p;
  const fedc_strategy_info *info; /* the registry's entry for p.agg.name */
  size_t n;
  fedc_strategy *agg;
  fedc_server_opt *opt;
  fedc_dp *dp;
  float *scratch; /* x + d for a modified update; the DP average delta */
  int32_t clipped, dp_unclipped;
  double dp_clip_used;
  /* fedc_pipeline_save's record, put back by fedc_pipeline_undo */
  int saved;
  float *opt_snap;
  size_t opt_snap_len;
  fedc_dp *dp_snap; /* a spare DP state of the same parameters */
};

void fedc_pipeline_params_fedavg(fedc_pipeline_params *p, int32_t max_updates) {
  memset(p, 0, sizeof *p);
  p->agg = (fedc_agg_params){.name = "fedavg", .max_updates = max_updates};
  p->opt = (fedc_server_opt_params){.name = "fedavg", .lr = 1.0};
  p->buffer_k = 10;
}

void fedc_pipeline_free(fedc_pipeline *pl) {
  if (pl == NULL) return;
  fedc_strategy_free(pl->agg);
  fedc_server_opt_free(pl->opt);
  if (pl->dp) fedc_dp_free(pl->dp);
  if (pl->dp_snap) fedc_dp_free(pl->dp_snap);
  fedc_free(pl->opt_snap);
  fedc_free(pl->scratch);
  fedc_free(pl);
}

int fedc_pipeline_new(const fedc_pipeline_params *p, size_t n,
                      fedc_pipeline **out) {
  *out = NULL;
  fedc_pipeline *pl = fedc_calloc(1, sizeof *pl);
  if (pl == NULL) return fedc_error_set(FEDC_ENOMEM, "pipeline: out of memory");
  pl->p = *p;
  pl->n = n;
  pl->info = p->agg.name ? fedc_strategy_lookup(p->agg.name) : NULL;
  int rc = fedc_strategy_new_params(&p->agg, n, &pl->agg);
  if (rc == 0) rc = fedc_server_opt_new(&p->opt, n, &pl->opt);
  if (rc == 0 && p->dp_on) rc = fedc_dp_new(&p->dp, &pl->dp);
  if (rc == 0 && (pl->scratch = fedc_malloc_array(n, sizeof(float))) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "pipeline: out of memory");
  if (rc != 0) {
    fedc_pipeline_free(pl);
    return rc;
  }
  *out = pl;
  return 0;
}

fedc_strategy *fedc_pipeline_aggregator(fedc_pipeline *pl) { return pl->agg; }
const fedc_strategy_info *fedc_pipeline_strategy(const fedc_pipeline *pl) { return pl->info; }
int fedc_pipeline_dp_on(const fedc_pipeline *pl) { return pl->dp != NULL; }

int fedc_pipeline_begin(fedc_pipeline *pl, const float *x) {
  pl->clipped = pl->dp_unclipped = 0;
  pl->dp_clip_used = pl->dp ? fedc_dp_clip_norm(pl->dp) : NAN;
  return pl->agg->ops->begin(pl->agg, x, pl->n);
}

/*
 * One update's delta d (d_i = w_i - x_i, or delta_i when w is NULL) through
 * the per-update stages: the norm bound (clip or refuse), the DP clip, then
 * a weight; pl->scratch gets x + the result, for the aggregator. Non-finite
 * values and an update over a refusing bound are refused before anything
 * changes. *clipped and *unclipped say what the two clips did.
 */
static int condition(fedc_pipeline *pl, const float *x, const float *w, const float *delta,
                     double weight, size_t n, int *clipped, int *unclipped) {
  double ss = 0.0;
  for (size_t i = 0; i < n; i++) {
    const float v = w ? w[i] : delta[i];
    if (!isfinite(v))
      return fedc_error_set(FEDC_ENONFINITE, "update %s %zu is %g", w ? "weight" : "delta", i,
                            (double)v);
    double d = w ? (double)w[i] - (double)x[i] : (double)delta[i];
    ss += d * d;
  }
  double norm = sqrt(ss), scale = 1.0;
  *clipped = *unclipped = 0;
  if (pl->p.norm_bound > 0.0 && norm > pl->p.norm_bound) {
    if (pl->p.norm_refuse)
      return fedc_error_set(FEDC_ERANGE,
                            "update's distance from %s %.6g exceeds "
                            "[strategy] norm_bound = %.6g",
                            w ? "the global model" : "its base model", norm, pl->p.norm_bound);
    scale = pl->p.norm_bound / norm;
    *clipped = 1;
  }
  float *y = pl->scratch;
  for (size_t i = 0; i < n; i++) {
    double d = w ? (double)w[i] - (double)x[i] : (double)delta[i];
    y[i] = (float)(d * scale);
  }
  if (pl->dp) {
    double dnorm;
    int rc = fedc_dp_clip(pl->dp, y, n, unclipped, &dnorm);
    if (rc != 0) return rc;
  }
  if (weight == 1.0)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
  else
    for (size_t i = 0; i < n; i++) y[i] = (float)((double)x[i] + weight * (double)y[i]);
  return 0;
}

int fedc_pipeline_add(fedc_pipeline *pl, const float *x, const float *w,
                      size_t n, uint64_t n_samples) {
  if (n != pl->n)
    return fedc_error_set(FEDC_ESHAPE, "update has %zu weights, model has %zu", n, pl->n);
  if (pl->p.norm_bound <= 0.0 && pl->dp == NULL)
    return pl->agg->ops->add(pl->agg, w, n, n_samples);
  int clipped, unclipped;
  int rc = condition(pl, x, w, NULL, 1.0, n, &clipped, &unclipped);
  if (rc != 0) return rc;
  /* DP-FedAvg averages clipped updates with equal weights: each client's
   * influence is bounded by S whatever its sample count */
  rc = pl->agg->ops->add(pl->agg, pl->scratch, n, pl->dp ? 1 : n_samples);
  if (rc != 0) return rc;
  pl->clipped += clipped;
  pl->dp_unclipped += unclipped;
  return 0;
}

/*
 * FedBuff's delta: conditioned like a synchronous update, weighted by its
 * staleness, and folded unweighted by samples (FedBuff averages the
 * buffer's deltas), as x + weight * d: the aggregator's mean minus x is
 * then the buffer's mean weighted delta, and the server step with
 * [strategy] server_lr completes Nguyen et al.'s update.
 */
int fedc_pipeline_add_async(fedc_pipeline *pl, const float *x, const float *delta, size_t n,
                            double weight) {
  if (n != pl->n)
    return fedc_error_set(FEDC_ESHAPE, "update has %zu weights, model has %zu", n, pl->n);
  if (!(isfinite(weight) && weight > 0.0))
    return fedc_error_set(FEDC_EINVAL, "pipeline: staleness weight %g", weight);
  int clipped, unclipped;
  int rc = condition(pl, x, NULL, delta, weight, n, &clipped, &unclipped);
  if (rc != 0) return rc;
  rc = pl->agg->ops->add(pl->agg, pl->scratch, n, 1);
  if (rc != 0) return rc;
  pl->clipped += clipped;
  pl->dp_unclipped += unclipped;
  return 0;
}

int fedc_pipeline_finish(fedc_pipeline *pl, int32_t round, float *x, size_t n,
                         int32_t m, fedc_pipeline_round *out) {
  float *avg = pl->scratch;
  int rc = pl->agg->ops->finish(pl->agg, avg, n);
  if (rc != 0) return rc;
  fedc_pipeline_round r = {.clipped = pl->clipped, .dp_unclipped = pl->dp_unclipped,
                           .epsilon = NAN, .delta = NAN, .clip_norm = NAN};
  if (pl->dp) {
    for (size_t i = 0; i < n; i++) avg[i] -= x[i];
    double q = pl->p.population > 0 ? (double)pl->p.per_round / pl->p.population : 1.0;
    if (q > 1.0) q = 1.0;
    rc = fedc_dp_finish_round(pl->dp, round, avg, n, m, pl->dp_unclipped, q);
    if (rc != 0) return rc;
    for (size_t i = 0; i < n; i++) avg[i] += x[i];
    double order;
    fedc_dp_epsilon(pl->dp, &r.epsilon, &order);
    r.delta = pl->p.dp.delta;
    r.clip_norm = pl->dp_clip_used;
  }
  rc = fedc_server_opt_step(pl->opt, x, avg, n);
  if (rc != 0) return rc;
  if (out) *out = r;
  return 0;
}

int fedc_pipeline_save(fedc_pipeline *pl) {
  pl->saved = 0;
  size_t olen = fedc_server_opt_state_len(pl->opt);
  if (olen > pl->opt_snap_len) {
    float *o = fedc_realloc(pl->opt_snap, olen * sizeof(float));
    if (o == NULL) return fedc_error_set(FEDC_ENOMEM, "pipeline: out of memory");
    pl->opt_snap = o;
    pl->opt_snap_len = olen;
  }
  if (pl->dp && pl->dp_snap == NULL) {
    int rc = fedc_dp_new(&pl->p.dp, &pl->dp_snap);
    if (rc != 0) return rc;
  }
  int rc = olen > 0 ? fedc_server_opt_state_get(pl->opt, pl->opt_snap, olen) : 0;
  if (rc == 0 && pl->dp) rc = fedc_dp_copy_state(pl->dp_snap, pl->dp);
  if (rc != 0) return rc;
  pl->saved = 1;
  return 0;
}

int fedc_pipeline_undo(fedc_pipeline *pl) {
  if (!pl->saved) return fedc_error_set(FEDC_ESTATE, "pipeline: nothing saved to undo");
  size_t olen = fedc_server_opt_state_len(pl->opt);
  int rc = olen > 0 ? fedc_server_opt_state_set(pl->opt, pl->opt_snap, olen) : 0;
  if (rc == 0 && pl->dp) rc = fedc_dp_copy_state(pl->dp, pl->dp_snap);
  return rc;
}

int fedc_pipeline_budget_exhausted(const fedc_pipeline *pl) {
  if (pl->dp == NULL || pl->p.dp.epsilon_budget <= 0.0) return 0;
  double q = pl->p.population > 0 ? (double)pl->p.per_round / pl->p.population : 1.0;
  int exceed = 0;
  /* if the accountant cannot say, do not spend: stop */
  if (fedc_dp_would_exceed(pl->dp, q > 1.0 ? 1.0 : q, &exceed) != 0) return 1;
  return exceed;
}

double fedc_pipeline_epsilon(const fedc_pipeline *pl) {
  double eps = NAN, order;
  if (pl->dp) fedc_dp_epsilon(pl->dp, &eps, &order);
  return eps;
}

int fedc_pipeline_restore_privacy(fedc_pipeline *pl, double clip_norm,
                                  int32_t rounds) {
  if (pl->dp == NULL || rounds <= 0) return 0;
  double q = pl->p.population > 0 ? (double)pl->p.per_round / pl->p.population : 1.0;
  return fedc_dp_restore(pl->dp, clip_norm, q > 1.0 ? 1.0 : q, rounds);
}

size_t fedc_pipeline_opt_state_len(const fedc_pipeline *pl) {
  return fedc_server_opt_state_len(pl->opt);
}

int fedc_pipeline_opt_state_get(const fedc_pipeline *pl, float *buf, size_t len) {
  return fedc_server_opt_state_get(pl->opt, buf, len);
}

int fedc_pipeline_opt_state_set(fedc_pipeline *pl, const float *buf, size_t len) {
  return fedc_server_opt_state_set(pl->opt, buf, len);
}
