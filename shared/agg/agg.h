/*
 * agg.h - aggregation strategies.
 *
 * A strategy folds client updates into the next global model. FedAvg
 * (McMahan et al. 2017) computes, over the clients that reported,
 *     w = sum_k n_k w_k / sum_k n_k
 * folding each update in as it arrives, so its memory is that of one model
 * whatever the number of clients. The running sum is kept in 128-bit fixed
 * point (each weight rounded to a multiple of 2^-32 before it is scaled by
 * n_k): integer addition is associative, so the result is bit-identical for
 * every arrival order, thread count or MPI rank count. The rounding adds at
 * most 2^-33 of absolute error per weight, far below float32's own
 * resolution for weights near 1. Weights must satisfy |w| < 2^31.
 *
 * The strategy table lets later strategies (server optimizers, robust
 * aggregation) plug in behind the same calls.
 */
#ifndef FEDC_AGG_H
#define FEDC_AGG_H

#include <stddef.h>
#include <stdint.h>

typedef struct fedc_strategy fedc_strategy;

typedef struct fedc_strategy_ops {
  const char *name;
  /* Start a round whose current global model is global (n weights). */
  int (*begin)(fedc_strategy *s, const float *global, size_t n);
  /* Fold one update in; n_samples >= 1. Refuses non-finite or out-of-range
   * weights (FEDC_ENONFINITE / FEDC_ERANGE) without changing the state. */
  int (*add)(fedc_strategy *s, const float *w, size_t n, uint64_t n_samples);
  /* Write the new global model; FEDC_EQUORUM if nothing was added. */
  int (*finish)(fedc_strategy *s, float *out, size_t n);
  void (*free)(fedc_strategy *s);
} fedc_strategy_ops;

struct fedc_strategy {
  const fedc_strategy_ops *ops;
  size_t n;
};

/* "fedavg" -> a new strategy for models of n weights. */
int fedc_strategy_new(const char *name, size_t n, fedc_strategy **out);
void fedc_strategy_free(fedc_strategy *s);

/* FedAvg directly, for drivers that need the accumulator itself (MPI). */
int fedc_fedavg_new(size_t n, fedc_strategy **out);
/* The raw accumulator: n int128 sums and the total sample count. */
void fedc_fedavg_state(fedc_strategy *s, __int128 **acc, uint64_t **total);

/*
 * Strategy construction from the [strategy] section. The engine calls this
 * rather than fedc_strategy_new: the fedavg family ("fedavg", and the
 * server-optimizer names fedavgm, fedadam, fedyogi, fedadagrad and fedbuff,
 * which aggregate with FedAvg and then step with server_opt.h) gets
 * fedc_fedavg_new, so existing behaviour is unchanged; "median",
 * "trimmed_mean", "krum" and "multikrum" get a robust strategy
 * (agg_robust.c). Any other name is FEDC_EINVAL, naming it.
 *
 * Robust strategies copy every update they are given (the caller may reuse
 * its buffer as soon as add returns) and keep at most max_updates of them:
 * their memory is bounded by max_updates x n floats, allocated one update at
 * a time as updates arrive, so a round with few updates stays small. They
 * ignore sample counts: robust statistics are unweighted.
 */
typedef struct fedc_agg_params {
  const char *name;    /* "fedavg" (also fedavgm, fedadam, fedyogi, fedadagrad, fedbuff: they
                        * aggregate with FedAvg), "median", "trimmed_mean", "krum", "multikrum" */
  double trim_beta;    /* trimmed_mean: fraction cut at each end, [0, 0.5) */
  int32_t krum_f;      /* krum/multikrum: byzantine updates tolerated */
  int32_t multikrum_m; /* multikrum: updates averaged; 0 = count - krum_f */
  int32_t max_updates; /* buffered strategies keep at most this many updates (the round's
                        * selection size); adding more is FEDC_ERANGE */
} fedc_agg_params;

int fedc_strategy_new_params(const fedc_agg_params *p, size_t n, fedc_strategy **out);
/* 1 when the strategy folds updates into an additive running sum (fedavg),
 * 0 when it buffers them (robust ones). Only an additive strategy can be
 * split over processes or fed by secure aggregation's sum. */
int fedc_strategy_is_additive(const fedc_strategy *s);

#endif
