/*
 * agg_cuda_module.c - agg_cuda.h's functions on the library's side: they load the
 * CUDA module (ml/cuda_module.h) and forward to its table. An aggregator
 * exists only once the module has loaded, so every call after
 * fedc_agg_cuda_new finds the table there.
 */
#include "cuda/agg_cuda.h"

#include "ml/cuda_module.h"

/* The table of the loaded module; only called where an aggregator exists. */
static const fedc_cuda_module_api *loaded(void) {
  const fedc_cuda_module_api *m = NULL;
  (void)fedc__cuda_module_get("agg_cuda", &m);
  return m;
}

int fedc_agg_cuda_new(const fedc_agg_cuda_params *p, size_t n, fedc_agg_cuda **out) {
  const fedc_cuda_module_api *m;
  *out = NULL;
  int rc = fedc__cuda_module_get("agg_cuda", &m);
  if (rc != 0) return rc;
  return m->agg_new(p, n, out);
}

int fedc_agg_cuda_begin(fedc_agg_cuda *a, const float *global, size_t n) {
  if (a == NULL) return fedc_error_set(FEDC_EINVAL, "agg_cuda begin: no aggregator");
  return loaded()->agg_begin(a, global, n);
}

int fedc_agg_cuda_add(fedc_agg_cuda *a, const float *w, size_t n, uint64_t n_samples,
                      double *norm) {
  if (a == NULL) return fedc_error_set(FEDC_EINVAL, "agg_cuda add: no aggregator");
  return loaded()->agg_add(a, w, n, n_samples, norm);
}

int fedc_agg_cuda_finish(fedc_agg_cuda *a, float *out, size_t n) {
  if (a == NULL) return fedc_error_set(FEDC_EINVAL, "agg_cuda finish: no aggregator");
  return loaded()->agg_finish(a, out, n);
}

void fedc_agg_cuda_stats_get(const fedc_agg_cuda *a, fedc_agg_cuda_stats *out) {
  if (a == NULL) {
    out->added = out->clipped = 0;
    out->samples = 0;
    return;
  }
  loaded()->agg_stats_get(a, out);
}

int fedc_agg_cuda_sums_get(fedc_agg_cuda *a, __int128 *acc, uint64_t *total, size_t n) {
  if (a == NULL) return fedc_error_set(FEDC_EINVAL, "agg_cuda sums: no aggregator");
  return loaded()->agg_sums_get(a, acc, total, n);
}

int fedc_agg_cuda_sums_put(fedc_agg_cuda *a, const __int128 *acc, uint64_t total, size_t n) {
  if (a == NULL) return fedc_error_set(FEDC_EINVAL, "agg_cuda sums: no aggregator");
  return loaded()->agg_sums_put(a, acc, total, n);
}

void fedc_agg_cuda_free(fedc_agg_cuda *a) {
  if (a) loaded()->agg_free(a);
}
