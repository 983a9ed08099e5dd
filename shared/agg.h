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

#endif
