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
 * Strategies are looked up by name in one registry (registry.c, public
 * API in <fedc/strategy.h>): each entry is a constructor for the
 * aggregator behind the fedc_strategy_ops table below, the server
 * optimizer that steps after it, and its declared capabilities. Built-ins
 * and a program's strategies go through the same table.
 */
#ifndef FEDC_AGG_H
#define FEDC_AGG_H

#include <fedc/strategy.h>
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
  /* Additive strategies only (NULL otherwise): the exact running sum, n
   * int128 fixed-point sums and the total sample count, which processes
   * add up (the MPI partial) and secure aggregation's sum stands for. */
  void (*sum)(fedc_strategy *s, __int128 **acc, uint64_t **total);
} fedc_strategy_ops;

struct fedc_strategy {
  const fedc_strategy_ops *ops;
  size_t n;
};

/* A registered name -> its aggregator for models of n weights, with the
 * default parameters (fedc_strategy_new_params for the others). */
int fedc_strategy_new(const char *name, size_t n, fedc_strategy **out);
void fedc_strategy_free(fedc_strategy *s);

/* FedAvg directly, for drivers that need the accumulator itself (MPI). */
int fedc_fedavg_new(size_t n, fedc_strategy **out);
/*
 * FedAvg for a large model: its n int128 sums live in the file at path
 * (created, truncated, removed when the strategy is freed), read and
 * written a slice at a time, so that the process holds one slice of them;
 * NULL is fedc_fedavg_new. The results are the same integers either way.
 * fedc_fedavg_state then gives acc = NULL (the total as usual).
 */
int fedc__fedavg_new_spill(size_t n, const char *path, fedc_strategy **out);
/* 1 when s is a CPU FedAvg whose sums are in a file. */
int fedc__fedavg_spilled(const fedc_strategy *s);
/* Fold w (len checked weights: |w| < 2^31, finite) with weight m (negative
 * takes them out) into sums [off, off + len) of a CPU FedAvg, in memory or
 * in its file; the total is the caller's to adjust. */
void fedc__fedavg_fold_range(fedc_strategy *s, size_t off, const float *w, size_t len,
                             int64_t m);
/* The raw accumulator: n int128 sums and the total sample count. */
void fedc_fedavg_state(fedc_strategy *s, __int128 **acc, uint64_t **total);

/*
 * Strategy construction from the [strategy] section: the registry entry of
 * p->name makes the aggregator. The fedavg family ("fedavg", and fedavgm,
 * fedadam, fedyogi, fedadagrad and fedbuff, which aggregate with FedAvg and
 * then step with server_opt.h) gets fedc_fedavg_new; "median",
 * "trimmed_mean", "krum" and "multikrum" a robust strategy (agg_robust.c);
 * a program's strategy its callbacks (agg_custom.c). A name not registered
 * is FEDC_EINVAL, naming it.
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
  int32_t device;      /* fedc_agg_device ([strategy] device): where the aggregator runs */
  double norm_bound;   /* GPU aggregator only: it applies the pipeline's norm bound itself
                        * (the pipeline sets these when it leaves the bound to it); 0 = off */
  int norm_refuse;     /* with norm_bound: 1 refuse an update over it, 0 clip it */
  const char *spill_path; /* large-model mode ([server] spill_above_mb): FedAvg keeps its
                           * sums in this file (fedc__fedavg_new_spill), the share cap its
                           * held updates in path.held; NULL = in memory. CPU only. */
} fedc_agg_params;

int fedc_strategy_new_params(const fedc_agg_params *p, size_t n, fedc_strategy **out);
/* 1 when the strategy folds updates into an additive running sum (fedavg),
 * 0 when it buffers them (robust ones). Only an additive strategy can be
 * split over processes or fed by secure aggregation's sum. */
int fedc_strategy_is_additive(const fedc_strategy *s);

/*
 * Where the aggregator runs ([strategy] device; agg_device.c). CPU: the
 * makers below. CUDA: on the GPU through the CUDA module (cuda/agg_cuda.h)
 * for the strategies that have a GPU form (fedavg and the strategies that
 * aggregate with it, median, trimmed_mean); any other strategy, a missing
 * module or a missing GPU is FEDC_ECONFIG, saying which. AUTO: the GPU
 * when it is there, else the CPU, with one log line saying why.
 */
typedef enum {
  FEDC_AGG_DEVICE_CPU = 0,
  FEDC_AGG_DEVICE_CUDA = 1,
  FEDC_AGG_DEVICE_AUTO = 2
} fedc_agg_device;

/* The GPU form of a registered strategy's aggregator: a fedc_agg_cuda_kind
 * (cuda/agg_cuda.h), or -1 when it has none (registry.c). */
int fedc__strategy_gpu_kind(const fedc_strategy_info *info);
/* The GPU strategy (agg_device.c) for p->device = CUDA or AUTO: 0 with *out
 * set when it runs on the GPU; 0 with *out NULL when AUTO falls back (the
 * caller makes the CPU one; the reason is logged); an error for CUDA. */
int fedc__strategy_device_new(const fedc_strategy_info *info, const fedc_agg_params *p, size_t n,
                              fedc_strategy **out);
/* 1 when s aggregates on the GPU. */
int fedc__strategy_on_gpu(const fedc_strategy *s);
/* A GPU strategy made with a norm bound: the updates its last successful
 * add clipped (0 or 1); 0 for every other strategy. */
int fedc__strategy_gpu_clipped_last(const fedc_strategy *s);

/* ---- the registry's internals (registry.c) ------------------------------ */

/* The server optimizer a strategy steps with after aggregating
 * (server_opt.h). NONE: x = the aggregate, [strategy] server_lr unused. */
typedef enum {
  FEDC_OPT_NONE = 0,
  FEDC_OPT_AVG,     /* x + server_lr (avg - x): fedbuff */
  FEDC_OPT_AVGM,
  FEDC_OPT_ADAGRAD,
  FEDC_OPT_ADAM,
  FEDC_OPT_YOGI
} fedc_opt_kind;

/* The server optimizer of a registered strategy (FEDC_OPT_NONE for NULL). */
fedc_opt_kind fedc__strategy_opt_kind(const fedc_strategy_info *info);
/* Make info's aggregator for n weights with parameters p (p->name is not
 * read). */
int fedc__strategy_make(const fedc_strategy_info *info, const fedc_agg_params *p, size_t n,
                        fedc_strategy **out);

/* The built-in makers behind the registry (agg_fedavg.c, agg_robust.c,
 * agg_custom.c). */
typedef enum { FEDC_ROBUST_MEDIAN, FEDC_ROBUST_TRIMMED, FEDC_ROBUST_KRUM,
               FEDC_ROBUST_MULTIKRUM } fedc_robust_kind;
int fedc__robust_new(fedc_robust_kind kind, const fedc_agg_params *p, size_t n,
                     fedc_strategy **out);
int fedc__custom_new(const fedc_strategy_def *def, size_t n, fedc_strategy **out);

#endif
