/*
 * agg_cuda.h - aggregation on the coordinator's GPU: FedAvg's weighted sum,
 * update norms with the norm bound (clip or refuse), coordinate-wise median
 * and trimmed mean. It mirrors the fedc_strategy ops (agg.h) and the norm
 * step of the pipeline (pipeline.h), computing what they compute:
 *
 *   fedc_agg_cuda_params p = {.kind = FEDC_AGG_CUDA_FEDAVG, .norm_bound = 10.0};
 *   fedc_agg_cuda *a;
 *   if (fedc_agg_cuda_new(&p, n, &a) != 0) ... // FEDC_EUNSUPPORTED: no GPU
 *   fedc_agg_cuda_begin(a, global, n);          // the round's global model
 *   for each update:  fedc_agg_cuda_add(a, w_k, n, n_k, &norm_k);
 *   fedc_agg_cuda_finish(a, next, n);
 *   fedc_agg_cuda_free(a);
 *
 * Updates stream to the device as they arrive: add copies w (host or device
 * memory; the caller may reuse it when add returns) through pinned buffers,
 * checks it on the device (finite values, FedAvg's |w| < 2^31), measures
 * ||w - global|| in double, applies the norm bound, and folds it in. A
 * refused update changes nothing, as on the CPU.
 *
 * Results match the CPU's: FedAvg keeps the same 128-bit fixed-point sum
 * (agg.h), so its result is bit-identical to fedc_fedavg_new's for every
 * arrival order; median and trimmed mean pick the same order statistics
 * and average with the same exact fixed-point mean as agg_robust.c. With a
 * norm bound the norm is summed in a different order than on the CPU, so a
 * clipped update may differ from the pipeline's in the last bits of float.
 *
 * Memory on the device: FedAvg n floats of staging plus n 16-byte sums;
 * median and trimmed mean one copy of each update (at most max_updates,
 * allocated as they arrive) plus n floats. DP noise, Krum and the server
 * optimizers stay on the CPU.
 *
 * The round engine reaches it through the GPU strategy (agg/agg_device.c,
 * [strategy] device = cuda | auto); it is tested against the CPU versions
 * (tests/unit/test_agg_cuda.c, test_agg_device.c) and measured by
 * bench/cuda.sh and bench/gpu-check.sh. The code runs in the CUDA module
 * (libfedc-cuda.so, ml/cuda_module.h); these functions, in agg_cuda_module.c,
 * load it on first use and forward to it. Without the module or without a
 * GPU, fedc_agg_cuda_new returns FEDC_EUNSUPPORTED saying which is missing,
 * so callers carry no #ifdef.
 */
#ifndef FEDC_AGG_CUDA_H
#define FEDC_AGG_CUDA_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "base/error.h"

typedef enum {
  FEDC_AGG_CUDA_FEDAVG = 0,      /* sum_k n_k w_k / sum_k n_k */
  FEDC_AGG_CUDA_MEDIAN = 1,      /* coordinate-wise median, unweighted */
  FEDC_AGG_CUDA_TRIMMED_MEAN = 2 /* coordinate-wise trimmed mean, unweighted */
} fedc_agg_cuda_kind;

typedef struct fedc_agg_cuda_params {
  fedc_agg_cuda_kind kind;
  double trim_beta;    /* trimmed mean: fraction cut at each end, [0, 0.5) */
  int32_t max_updates; /* median, trimmed mean: updates kept per round (>= 1) */
  double norm_bound;   /* > 0: bound ||w - global|| (pipeline.h); 0 = off */
  int norm_refuse;     /* 1: refuse an update over the bound; 0: clip it */
} fedc_agg_cuda_params;

typedef struct fedc_agg_cuda_stats {
  int32_t added;    /* updates folded in this round */
  int32_t clipped;  /* of them, clipped to the norm bound */
  uint64_t samples; /* FedAvg: their sample counts summed */
} fedc_agg_cuda_stats;

typedef struct fedc_agg_cuda fedc_agg_cuda;

/* An aggregator for models of n weights on device 0. FEDC_EUNSUPPORTED when
 * the CUDA module is missing or no device is present (the message says which), FEDC_EINVAL for bad
 * parameters, FEDC_EBACKEND with CUDA's text when the device fails. */
int fedc_agg_cuda_new(const fedc_agg_cuda_params *p, size_t n, fedc_agg_cuda **out);
/* Start a round. global (host or device, n floats) is needed with a norm
 * bound and for norms; it may be NULL otherwise. */
int fedc_agg_cuda_begin(fedc_agg_cuda *a, const float *global, size_t n);
/*
 * Fold one update in (n_samples >= 1; FedAvg's at most 2^40). *norm, when
 * not NULL, gets ||w - global|| (NAN without a global model). Refused with
 * nothing changed: FEDC_ESHAPE, FEDC_ENONFINITE, FEDC_ERANGE (FedAvg's
 * |w| >= 2^31, over the bound with norm_refuse, a sample count out of
 * range, more than max_updates updates), FEDC_ENOMEM, FEDC_EBACKEND.
 */
int fedc_agg_cuda_add(fedc_agg_cuda *a, const float *w, size_t n, uint64_t n_samples, double *norm);
/* Write the aggregate (host or device memory). FEDC_EQUORUM when nothing
 * was added; FEDC_EINVAL when trim_beta cuts every update. */
int fedc_agg_cuda_finish(fedc_agg_cuda *a, float *out, size_t n);
void fedc_agg_cuda_stats_get(const fedc_agg_cuda *a, fedc_agg_cuda_stats *out);
/*
 * FedAvg only: the running sum (n int128 fixed-point sums, agg.h, and the
 * sample count) copied to the host, and a host copy put back in its place.
 * The GPU strategy (agg/agg_device.c) uses them where the CPU's code works
 * on the sums itself: the share cap's held updates and the MPI partials.
 * FEDC_EINVAL for the robust kinds, FEDC_ESHAPE, FEDC_EBACKEND.
 */
int fedc_agg_cuda_sums_get(fedc_agg_cuda *a, __int128 *acc, uint64_t *total, size_t n);
int fedc_agg_cuda_sums_put(fedc_agg_cuda *a, const __int128 *acc, uint64_t total, size_t n);
void fedc_agg_cuda_free(fedc_agg_cuda *a);

/* For tests: the kernels' per-coordinate code run on the host is in the
 * module's table (fedc_cuda_module_api: robust_host, fedavg_host,
 * i128_to_double_host), so that the algorithms are checked against the CPU
 * strategies wherever the module loads, GPU or not. */

#ifdef __cplusplus
}
#endif

#endif
