/*
 * test_agg_device_emul.c - the GPU strategy's wiring (agg/agg_device.c and
 * its hooks in the registry and the pipeline) on a machine without a GPU:
 * this file defines agg_cuda.h's functions itself, as a CPU stand-in that
 * computes what the device computes (the 128-bit fixed-point FedAvg sum,
 * the norm bound with the pipeline's float arithmetic, the robust
 * statistics through agg_robust.c), so the linker takes them instead of
 * the library's (cuda/agg_cuda_module.c, which would load the CUDA
 * module). The cases are agg_device_cases.h's, the same that
 * test_agg_device.c runs on a real GPU; here they check that updates reach
 * the strategy as they arrive, that the norm bound is left to the device
 * where the pipeline says, and that the host copy of the sums (the share
 * cap, MPI partials) goes back and forth. The stand-in proves nothing
 * about the CUDA kernels: test_agg_device.c and test_agg_cuda.c do, on a
 * GPU.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cuda/agg_cuda.h"

#define REQUIRE_GPU() ((void)0)
#include "agg_device_cases.h"

/* ---- the stand-in for agg_cuda.h ---------------------------------------- */

static int emul_norm_seen; /* strategies made with a norm bound */
static int emul_adds;      /* updates given to the stand-in */

struct fedc_agg_cuda {
  fedc_agg_cuda_params p;
  size_t n;
  float *x, *y;
  int have_x;
  __int128 *acc;
  uint64_t total;
  fedc_strategy *robust;
  int32_t added, clipped;
};

int fedc_agg_cuda_new(const fedc_agg_cuda_params *p, size_t n, fedc_agg_cuda **out) {
  *out = NULL;
  fedc_agg_cuda *a = fedc_calloc(1, sizeof *a);
  assert_non_null(a);
  a->p = *p;
  a->n = n;
  a->x = fedc_calloc(n ? n : 1, sizeof(float));
  a->y = fedc_calloc(n ? n : 1, sizeof(float));
  a->acc = fedc_calloc(n ? n : 1, sizeof(__int128));
  assert_true(a->x && a->y && a->acc);
  if (p->kind != FEDC_AGG_CUDA_FEDAVG) {
    fedc_agg_params ap = {.trim_beta = p->trim_beta, .max_updates = p->max_updates};
    int rc =
        fedc__robust_new(p->kind == FEDC_AGG_CUDA_MEDIAN ? FEDC_ROBUST_MEDIAN : FEDC_ROBUST_TRIMMED,
                         &ap, n, &a->robust);
    assert_int_equal(rc, 0);
  }
  if (p->norm_bound > 0.0) emul_norm_seen++;
  *out = a;
  return 0;
}

int fedc_agg_cuda_begin(fedc_agg_cuda *a, const float *global, size_t n) {
  assert_int_equal(n, a->n);
  a->have_x = global != NULL;
  if (global) memcpy(a->x, global, n * sizeof(float));
  memset(a->acc, 0, n * sizeof *a->acc);
  a->total = 0;
  a->added = a->clipped = 0;
  return a->robust ? a->robust->ops->begin(a->robust, global, n) : 0;
}

int fedc_agg_cuda_add(fedc_agg_cuda *a, const float *w, size_t n, uint64_t n_samples,
                      double *norm) {
  emul_adds++;
  if (n != a->n) return fedc_error_set(FEDC_ESHAPE, "emul: %zu weights, want %zu", n, a->n);
  const int fedavg = a->robust == NULL;
  if (fedavg && (n_samples == 0 || n_samples > (1ull << 40)))
    return fedc_error_set(FEDC_ERANGE, "emul: sample count %llu", (unsigned long long)n_samples);
  double ss = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(w[i])) return fedc_error_set(FEDC_ENONFINITE, "emul: weight %zu", i);
    double d = a->have_x ? (double)w[i] - (double)a->x[i] : 0.0;
    ss += d * d;
  }
  if (norm) *norm = a->have_x ? sqrt(ss) : NAN;
  double scale = 1.0;
  int clipped = 0;
  if (a->p.norm_bound > 0.0 && sqrt(ss) > a->p.norm_bound) {
    if (a->p.norm_refuse)
      return fedc_error_set(FEDC_ERANGE,
                            "update's distance from the global model %.6g exceeds "
                            "[strategy] norm_bound = %.6g",
                            sqrt(ss), a->p.norm_bound);
    scale = a->p.norm_bound / sqrt(ss);
    clipped = 1;
  }
  for (size_t i = 0; i < n; i++)
    a->y[i] =
        a->p.norm_bound > 0.0 ? (float)(((double)w[i] - (double)a->x[i]) * scale) + a->x[i] : w[i];
  if (fedavg) {
    for (size_t i = 0; i < n; i++)
      if (fabs((double)a->y[i]) >= 2147483648.0)
        return fedc_error_set(FEDC_ERANGE, "emul: weight %zu out of range", i);
    for (size_t i = 0; i < n; i++)
      a->acc[i] += (__int128)n_samples * (int64_t)nearbyint((double)a->y[i] * 4294967296.0);
    a->total += n_samples;
  } else {
    int rc = a->robust->ops->add(a->robust, a->y, n, n_samples);
    if (rc != 0) return rc;
  }
  a->added++;
  a->clipped += clipped;
  return 0;
}

int fedc_agg_cuda_finish(fedc_agg_cuda *a, float *out, size_t n) {
  if (a->robust) return a->robust->ops->finish(a->robust, out, n);
  if (a->total == 0) return fedc_error_set(FEDC_EQUORUM, "emul: no updates");
  const double scale = ldexp(1.0, -32) / (double)a->total;
  for (size_t i = 0; i < n; i++)
    out[i] = (float)((double)a->acc[i] * scale);
  return 0;
}

void fedc_agg_cuda_stats_get(const fedc_agg_cuda *a, fedc_agg_cuda_stats *out) {
  out->added = a->added;
  out->clipped = a->clipped;
  out->samples = a->total;
}

int fedc_agg_cuda_sums_get(fedc_agg_cuda *a, __int128 *acc, uint64_t *total, size_t n) {
  assert_null(a->robust);
  assert_int_equal(n, a->n);
  memcpy(acc, a->acc, n * sizeof *acc);
  *total = a->total;
  return 0;
}

int fedc_agg_cuda_sums_put(fedc_agg_cuda *a, const __int128 *acc, uint64_t total, size_t n) {
  assert_null(a->robust);
  assert_int_equal(n, a->n);
  memcpy(a->acc, acc, n * sizeof *acc);
  a->total = total;
  return 0;
}

void fedc_agg_cuda_free(fedc_agg_cuda *a) {
  if (a == NULL) return;
  fedc_strategy_free(a->robust);
  fedc_free(a->x);
  fedc_free(a->y);
  fedc_free(a->acc);
  fedc_free(a);
}

/* ---- the wiring itself -------------------------------------------------- */

/* The norm bound goes to the device only where nothing else conditions
 * the update first; updates reach the device one add at a time. */
static void test_norm_bound_placement(void **state) {
  (void)state;
  fedc_pipeline_params p;
  fedc_pipeline *pl;
  struct {
    const char *name;
    double share;
    int dp;
    int want;
  } cases[] = {{"fedavg", 0.0, 0, 1},
               {"median", 0.5, 0, 1},
               {"fedavg", 0.5, 0, 0},
               {"fedavg", 0.0, 1, 0},
               {"fedbuff", 0.0, 0, 0}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    base_params(&p, cases[c].name, FEDC_AGG_DEVICE_CUDA, 4);
    p.norm_bound = 1.0;
    p.max_share = cases[c].share;
    p.dp_on = cases[c].dp;
    p.dp = (fedc_dp_params){.noise_multiplier = 1.0, .clip_norm = 1.0, .delta = 1e-5, .seed = 1};
    emul_norm_seen = 0;
    pl = pipeline_or_fail(&p, 10);
    assert_true(fedc_pipeline_on_gpu(pl));
    if (emul_norm_seen != cases[c].want)
      print_message("%s share=%g dp=%d: norm bound on the device %d, want %d\n", cases[c].name,
                    cases[c].share, cases[c].dp, emul_norm_seen, cases[c].want);
    assert_int_equal(emul_norm_seen, cases[c].want);
    fedc_pipeline_free(pl);
  }
  base_params(&p, "fedavg", FEDC_AGG_DEVICE_CUDA, 4);
  pl = pipeline_or_fail(&p, 3);
  float x[3] = {0}, w[3] = {1, 2, 3};
  assert_int_equal(fedc_pipeline_begin(pl, x), 0);
  emul_adds = 0;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(fedc_pipeline_add(pl, x, w, 3, 2), 0);
    assert_int_equal(emul_adds, i + 1); /* streamed as it arrives */
  }
  fedc_pipeline_free(pl);
}

int main(void) {
  const struct CMUnitTest tests[] = {AGG_DEVICE_CASES, cmocka_unit_test(test_norm_bound_placement)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
