/*
 * test_agg_cuda.c - GPU aggregation (agg_cuda.h) against the CPU's: the
 * same updates go through the CPU pipeline (norm bound, then FedAvg, median
 * or trimmed mean, pipeline.c and agg_*.c) and through fedc_agg_cuda, and
 * the results must agree:
 *   without a norm bound   bit for bit (the same fixed-point sums, the same
 *                          order statistics), in any arrival order;
 *   with a norm bound      within 1e-6 relative (floor 1e-3): the norm is
 *                          summed in another order than on the CPU, so a
 *                          clipped update can differ in float's last bits;
 *                          the norms themselves within 1e-9.
 * Refused updates (non-finite, out of range, over the bound with refuse,
 * one too many, wrong shape) must leave the aggregate as it was. Updates
 * and results in device memory (a CUDA backend buffer) work as host ones.
 *
 * Without a GPU, or without the CUDA module (libfedc-cuda.so), every case
 * prints "skipped: no CUDA device" and skips, except the first, which
 * checks that the refusal says why, and the host-side algorithms, which
 * run wherever the module loads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agg/agg.h"
#include "cuda/agg_cuda.h"
#include "base/alloc.h"
#include "ml/backend.h"
#include "ml/cuda_module.h"
#include "base/error.h"
#include "round/pipeline.h"
#include "base/rng.h"

#define MAX_K 31

static const char *kind_name(fedc_agg_cuda_kind k) {
  return k == FEDC_AGG_CUDA_FEDAVG   ? "fedavg"
         : k == FEDC_AGG_CUDA_MEDIAN ? "median"
                                     : "trimmed_mean";
}

static fedc_agg_cuda *new_or_skip(const fedc_agg_cuda_params *p, size_t n) {
  fedc_agg_cuda *a = NULL;
  int rc = fedc_agg_cuda_new(p, n, &a);
  if (rc == FEDC_EUNSUPPORTED) {
    print_message("skipped: no CUDA device (%s)\n", fedc_error_msg());
    skip();
  }
  if (rc != 0) print_message("agg_cuda new: %s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  return a;
}

/* Skip, before anything is allocated, when there is no GPU. */
static void require_gpu(void) {
  fedc_agg_cuda_params p = {.kind = FEDC_AGG_CUDA_FEDAVG};
  fedc_agg_cuda_free(new_or_skip(&p, 1));
}

/* A round's worth of updates around a global model. Some coordinates are
 * made to tie across updates (one value for all; values from {-1, -0, 0,
 * 1}) so that the order statistics meet runs of equal values and -0. */
typedef struct round_data {
  size_t n;
  int k;
  float *x;
  float *w[MAX_K];
  uint64_t samples[MAX_K];
} round_data;

static void round_make(round_data *d, size_t n, int k, uint64_t seed) {
  fedc_rng r;
  fedc_rng_seed(&r, seed);
  d->n = n;
  d->k = k;
  d->x = fedc_malloc_array(n, sizeof(float));
  assert_non_null(d->x);
  for (size_t i = 0; i < n; i++)
    d->x[i] = (float)fedc_rng_normal(&r);
  for (int j = 0; j < k; j++) {
    d->w[j] = fedc_malloc_array(n, sizeof(float));
    assert_non_null(d->w[j]);
    double sigma = 0.01 * (1 + j % 7); /* norms spread over a range */
    for (size_t i = 0; i < n; i++)
      d->w[j][i] = d->x[i] + (float)(sigma * fedc_rng_normal(&r));
    if (n > 2) {
      d->w[j][0] = 0.25f;
      static const float few[] = {-1.0f, -0.0f, 0.0f, 1.0f};
      d->w[j][1] = few[fedc_rng_below(&r, 4)];
      d->w[j][n - 1] = few[fedc_rng_below(&r, 4)];
    }
    d->samples[j] = 1 + fedc_rng_below(&r, 1000);
  }
}

static void round_free(round_data *d) {
  fedc_free(d->x);
  for (int j = 0; j < d->k; j++)
    fedc_free(d->w[j]);
}

/* The CPU's answer: the pipeline's norm bound, then its aggregator. */
static void cpu_aggregate(const fedc_agg_cuda_params *p, const round_data *d, float *out) {
  fedc_pipeline_params pp;
  fedc_pipeline_params_fedavg(&pp, d->k);
  pp.agg.name = kind_name(p->kind);
  pp.agg.trim_beta = p->trim_beta;
  pp.norm_bound = p->norm_bound;
  pp.norm_refuse = p->norm_refuse;
  fedc_pipeline *pl;
  assert_int_equal(fedc_pipeline_new(&pp, d->n, &pl), 0);
  assert_int_equal(fedc_pipeline_begin(pl, d->x), 0);
  for (int j = 0; j < d->k; j++)
    assert_int_equal(fedc_pipeline_add(pl, d->x, d->w[j], d->n, d->samples[j]), 0);
  fedc_strategy *s = fedc_pipeline_aggregator(pl);
  assert_int_equal(s->ops->finish(s, out, d->n), 0);
  fedc_pipeline_free(pl);
}

static double norm_of(const round_data *d, int j) {
  double ss = 0.0;
  for (size_t i = 0; i < d->n; i++) {
    double e = (double)d->w[j][i] - (double)d->x[i];
    ss += e * e;
  }
  return sqrt(ss);
}

/* All updates through the GPU, in the given order; checks the norms. */
static void gpu_aggregate(fedc_agg_cuda *a, const fedc_agg_cuda_params *p, const round_data *d,
                          const int *order, float *out) {
  assert_int_equal(fedc_agg_cuda_begin(a, d->x, d->n), 0);
  int clipped = 0;
  for (int q = 0; q < d->k; q++) {
    int j = order[q];
    double norm = -1.0, want = norm_of(d, j);
    int rc = fedc_agg_cuda_add(a, d->w[j], d->n, d->samples[j], &norm);
    if (rc != 0) print_message("agg_cuda add: %s\n", fedc_error_msg());
    assert_int_equal(rc, 0);
    assert_true(fabs(norm - want) <= 1e-9 * fmax(want, 1e-3));
    clipped += p->norm_bound > 0.0 && want > p->norm_bound;
  }
  int rc = fedc_agg_cuda_finish(a, out, d->n);
  if (rc != 0) print_message("agg_cuda finish: %s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  fedc_agg_cuda_stats st;
  fedc_agg_cuda_stats_get(a, &st);
  assert_int_equal(st.added, d->k);
  assert_int_equal(st.clipped, clipped);
}

static void check_same(const char *what, const float *got, const float *want, size_t n, int exact) {
  for (size_t i = 0; i < n; i++) {
    int ok;
    if (exact)
      ok = memcmp(&got[i], &want[i], sizeof *got) == 0;
    else
      ok = fabs((double)got[i] - want[i]) <= 1e-6 * fmax(fabs((double)want[i]), 1e-3);
    if (!ok) {
      print_message("%s: [%zu] gpu %.9g cpu %.9g%s\n", what, i, (double)got[i], (double)want[i],
                    exact ? " (want the same bits)" : "");
      fail();
    }
  }
}

/* ---- the cases ---------------------------------------------------------- */

/* What the skips rest on: without the module or a device, new says which. */
static void test_unavailable_says_why(void **state) {
  (void)state;
  fedc_agg_cuda_params p = {.kind = FEDC_AGG_CUDA_FEDAVG};
  fedc_agg_cuda *a = NULL;
  int rc = fedc_agg_cuda_new(&p, 10, &a);
  if (rc == 0) {
    fedc_agg_cuda_free(a);
    return;
  }
  assert_int_equal(rc, FEDC_EUNSUPPORTED);
  assert_null(a);
  const char *msg = fedc_error_msg();
  char why[1024];
  snprintf(why, sizeof why, "%s", msg);
  if (fedc_backend_available(FEDC_DEVICE_CUDA)) {
    assert_non_null(
        strstr(why, "agg_cuda: no CUDA device is present (cudaGetDeviceCount: "));
  } else {
    /* not installed, or a module left from a build of another ABI */
    assert_true(strstr(why, "agg_cuda: the CUDA module libfedc-cuda.so ") != NULL ||
                (strstr(why, "agg_cuda: the CUDA module ") != NULL &&
                 strstr(why, "was built for another version of fedc") != NULL));
  }
  print_message("%s\n", why);
}

static void test_against_cpu(void **state) {
  (void)state;
  require_gpu();
  const size_t sizes[] = {1, 1000, 100003};
  const int counts[] = {1, 2, 5, 10, 31};
  const fedc_agg_cuda_kind kinds[] = {FEDC_AGG_CUDA_FEDAVG, FEDC_AGG_CUDA_MEDIAN,
                                      FEDC_AGG_CUDA_TRIMMED_MEAN};
  const double betas[] = {0.0, 0.1, 0.2, 0.45};
  int order[MAX_K], reversed[MAX_K];
  for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
    for (size_t ki = 0; ki < sizeof counts / sizeof *counts; ki++) {
      round_data d;
      const int k = counts[ki];
      round_make(&d, sizes[si], k, 100 + si * 10 + ki);
      for (int j = 0; j < k; j++)
        order[j] = j, reversed[j] = k - 1 - j;
      /* a bound that clips about half of them, and no norm within float
       * noise of it (one update alone is not clipped) */
      double mid = 0.0;
      for (int j = 0; j < k; j++)
        mid += norm_of(&d, j) / k;
      mid *= 1.000001;
      float *cpu = fedc_malloc_array(d.n, sizeof(float)),
            *gpu = fedc_malloc_array(d.n, sizeof(float)),
            *gpu2 = fedc_malloc_array(d.n, sizeof(float));
      assert_non_null(cpu);
      assert_non_null(gpu);
      assert_non_null(gpu2);
      for (size_t kk = 0; kk < sizeof kinds / sizeof *kinds; kk++)
        for (int bounded = 0; bounded < 2; bounded++)
          for (size_t bi = 0; bi < (kinds[kk] == FEDC_AGG_CUDA_TRIMMED_MEAN ? 4u : 1u); bi++) {
            fedc_agg_cuda_params p = {.kind = kinds[kk],
                                      .trim_beta = betas[bi],
                                      .max_updates = k,
                                      .norm_bound = bounded ? mid : 0.0};
            fedc_agg_cuda *a = new_or_skip(&p, d.n);
            char what[96];
            snprintf(what, sizeof what, "%s beta %g bound %g n %zu k %d", kind_name(p.kind),
                     p.trim_beta, p.norm_bound, d.n, k);
            cpu_aggregate(&p, &d, cpu);
            gpu_aggregate(a, &p, &d, order, gpu);
            check_same(what, gpu, cpu, d.n, !bounded);
            /* arrival order does not matter, bit for bit, bound or not */
            gpu_aggregate(a, &p, &d, reversed, gpu2);
            check_same(what, gpu2, gpu, d.n, 1);
            fedc_agg_cuda_free(a);
          }
      fedc_free(cpu);
      fedc_free(gpu);
      fedc_free(gpu2);
      round_free(&d);
    }
}

/* A refused update changes nothing: the result is that of the others. */
static void test_refusals(void **state) {
  (void)state;
  require_gpu();
  round_data d;
  round_make(&d, 1000, 5, 7);
  float *want = fedc_malloc_array(d.n, sizeof(float)), *got = fedc_malloc_array(d.n, sizeof(float)),
        *bad = fedc_malloc_array(d.n, sizeof(float));
  assert_non_null(want);
  assert_non_null(got);
  assert_non_null(bad);
  const fedc_agg_cuda_kind kinds[] = {FEDC_AGG_CUDA_FEDAVG, FEDC_AGG_CUDA_MEDIAN,
                                      FEDC_AGG_CUDA_TRIMMED_MEAN};
  for (size_t kk = 0; kk < 3; kk++) {
    fedc_agg_cuda_params p = {.kind = kinds[kk], .trim_beta = 0.2, .max_updates = 5};
    cpu_aggregate(&p, &d, want);
    fedc_agg_cuda *a = new_or_skip(&p, d.n);
    assert_int_equal(fedc_agg_cuda_finish(a, got, d.n), FEDC_EQUORUM);
    assert_int_equal(fedc_agg_cuda_begin(a, d.x, d.n), 0);
    for (int j = 0; j < d.k; j++) {
      /* before each good update, bad ones */
      memcpy(bad, d.w[j], d.n * sizeof *bad);
      bad[700] = NAN;
      bad[5] = INFINITY;
      assert_int_equal(fedc_agg_cuda_add(a, bad, d.n, 10, NULL), FEDC_ENONFINITE);
      assert_non_null(strstr(fedc_error_msg(), "weight 5 is inf"));
      if (p.kind == FEDC_AGG_CUDA_FEDAVG) {
        memcpy(bad, d.w[j], d.n * sizeof *bad);
        bad[9] = 3e9f;
        bad[400] = NAN; /* the first bad index is reported, whatever its kind */
        assert_int_equal(fedc_agg_cuda_add(a, bad, d.n, 10, NULL), FEDC_ERANGE);
        assert_non_null(strstr(fedc_error_msg(), "weight 9 "));
        assert_int_equal(fedc_agg_cuda_add(a, d.w[j], d.n, (1ull << 40) + 1, NULL), FEDC_ERANGE);
      }
      assert_int_equal(fedc_agg_cuda_add(a, d.w[j], d.n - 1, 10, NULL), FEDC_ESHAPE);
      assert_int_equal(fedc_agg_cuda_add(a, d.w[j], d.n, 0, NULL), FEDC_ERANGE);
      assert_int_equal(fedc_agg_cuda_add(a, d.w[j], d.n, d.samples[j], NULL), 0);
    }
    if (p.kind != FEDC_AGG_CUDA_FEDAVG) /* one more than max_updates */
      assert_int_equal(fedc_agg_cuda_add(a, d.w[0], d.n, 1, NULL), FEDC_ERANGE);
    assert_int_equal(fedc_agg_cuda_finish(a, got, d.n), 0);
    check_same(kind_name(p.kind), got, want, d.n, 1);
    fedc_agg_cuda_free(a);
  }
  /* refuse over the bound: the refused one is left out */
  fedc_agg_cuda_params p = {.kind = FEDC_AGG_CUDA_FEDAVG, .norm_bound = 1e-6, .norm_refuse = 1};
  fedc_agg_cuda *a = new_or_skip(&p, d.n);
  assert_int_equal(fedc_agg_cuda_begin(a, NULL, d.n), FEDC_EINVAL); /* a bound needs x */
  assert_int_equal(fedc_agg_cuda_begin(a, d.x, d.n), 0);
  assert_int_equal(fedc_agg_cuda_add(a, d.w[0], d.n, 1, NULL), FEDC_ERANGE);
  assert_non_null(strstr(fedc_error_msg(), "exceeds [strategy] norm_bound"));
  assert_int_equal(fedc_agg_cuda_add(a, d.x, d.n, 3, NULL), 0); /* distance 0 */
  assert_int_equal(fedc_agg_cuda_finish(a, got, d.n), 0);
  check_same("refuse", got, d.x, d.n, 0); /* x on FedAvg's 2^-32 grid */
  fedc_agg_cuda_free(a);
  /* bad parameters */
  fedc_agg_cuda_params q = {.kind = FEDC_AGG_CUDA_TRIMMED_MEAN, .trim_beta = 0.5, .max_updates = 3};
  assert_int_equal(fedc_agg_cuda_new(&q, d.n, &a), FEDC_EINVAL);
  q.trim_beta = 0.1;
  q.max_updates = 0;
  assert_int_equal(fedc_agg_cuda_new(&q, d.n, &a), FEDC_EINVAL);
  fedc_free(want);
  fedc_free(got);
  fedc_free(bad);
  round_free(&d);
}

/*
 * The kernels' per-coordinate code, compiled for the host, against the CPU
 * strategies: runs wherever the CUDA module loads, GPU or not, so the order
 * statistics, the tie counting, the fixed-point sums and the 128-bit to
 * double conversion are checked on a machine without a GPU too.
 */
static void test_algorithms_on_host(void **state) {
  (void)state;
  const fedc_cuda_module_api *m;
  if (fedc__cuda_module_get("agg_cuda", &m) != 0) {
    print_message("skipped: no CUDA module (%s)\n", fedc_error_msg());
    skip();
  }
  /* int128 -> double, correctly rounded: against the compiler's conversion,
   * around 2^64 and on rounding ties (2^53 + 1 shifted up) */
  fedc_rng r;
  fedc_rng_seed(&r, 3);
  for (int i = 0; i < 200000; i++) {
    unsigned __int128 u = ((unsigned __int128)fedc_rng_u64(&r) << 64) | fedc_rng_u64(&r);
    int shift = (int)fedc_rng_below(&r, 127);
    __int128 v = (__int128)(u >> shift);
    if (i % 3 == 0) v = -v;
    if (i % 5 == 0)
      v = (__int128)((((unsigned __int128)1 << 53) + 1 + (fedc_rng_below(&r, 2) << 1))
                     << (shift % 74));
    if (i % 7 == 0)
      v = (__int128)(((unsigned __int128)1 << 64) - 1 + (__int128)fedc_rng_below(&r, 3));
    double got = m->i128_to_double_host(v), want = (double)v;
    if (memcmp(&got, &want, sizeof got) != 0) {
      print_message("i128 -> double: got %a want %a\n", got, want);
      fail();
    }
  }
  const size_t n = 3001;
  const int counts[] = {1, 2, 3, 4, 5, 10, 31};
  const double betas[] = {0.0, 0.1, 0.2, 0.34, 0.45};
  float *got = fedc_malloc_array(n, sizeof(float)), *want = fedc_malloc_array(n, sizeof(float));
  assert_non_null(got);
  assert_non_null(want);
  for (size_t ki = 0; ki < sizeof counts / sizeof *counts; ki++) {
    round_data d;
    const int k = counts[ki];
    round_make(&d, n, k, 300 + ki);
    /* heavier ties: a third of the coordinates from a few values */
    fedc_rng_seed(&r, 400 + ki);
    static const float few[] = {-2.5f, -1.0f, -0.0f, 0.0f, 1e-30f, 1.0f, 3.0f};
    for (int j = 0; j < k; j++)
      for (size_t i = 2; i < n; i += 3)
        d.w[j][i] = few[fedc_rng_below(&r, 7)];
    float *stored[MAX_K];
    for (int j = 0; j < k; j++) {
      stored[j] = fedc_malloc_array(n, sizeof(float));
      assert_non_null(stored[j]);
      for (size_t i = 0; i < n; i++)
        stored[j][i] = d.w[j][i] == 0.0f ? 0.0f : d.w[j][i];
    }
    fedc_strategy *s;
    assert_int_equal(fedc_fedavg_new(n, &s), 0);
    assert_int_equal(s->ops->begin(s, d.x, n), 0);
    for (int j = 0; j < k; j++)
      assert_int_equal(s->ops->add(s, d.w[j], n, d.samples[j]), 0);
    assert_int_equal(s->ops->finish(s, want, n), 0);
    fedc_strategy_free(s);
    m->fedavg_host((const float *const *)d.w, d.samples, (size_t)k, n, got);
    check_same("fedavg on the host", got, want, n, 1);
    for (int trimmed = 0; trimmed < 2; trimmed++)
      for (size_t bi = 0; bi < (trimmed ? 5u : 1u); bi++) {
        fedc_agg_params ap = {
            .name = trimmed ? "trimmed_mean" : "median", .trim_beta = betas[bi], .max_updates = k};
        assert_int_equal(fedc_strategy_new_params(&ap, n, &s), 0);
        assert_int_equal(s->ops->begin(s, d.x, n), 0);
        for (int j = 0; j < k; j++)
          assert_int_equal(s->ops->add(s, d.w[j], n, 1), 0);
        assert_int_equal(s->ops->finish(s, want, n), 0);
        fedc_strategy_free(s);
        size_t t = (size_t)floor(betas[bi] * k + 1e-9);
        m->robust_host(trimmed, trimmed ? t : 0, (const float *const *)stored,
                                   (size_t)k, n, got);
        char what[64];
        snprintf(what, sizeof what, "%s beta %g k %d on the host", ap.name, betas[bi], k);
        check_same(what, got, want, n, 1);
      }
    for (int j = 0; j < k; j++)
      fedc_free(stored[j]);
    round_free(&d);
  }
  fedc_free(got);
  fedc_free(want);
}

/* Updates and results in device memory: a CUDA backend's buffers. */
static void test_device_memory(void **state) {
  (void)state;
  require_gpu();
  round_data d;
  round_make(&d, 4099, 4, 9);
  fedc_agg_cuda_params p = {.kind = FEDC_AGG_CUDA_FEDAVG};
  fedc_agg_cuda *a = new_or_skip(&p, d.n);
  fedc_backend *be;
  assert_int_equal(fedc_backend_open(FEDC_DEVICE_CUDA, &be), 0);
  float *want = fedc_malloc_array(d.n, sizeof(float)), *got = fedc_malloc_array(d.n, sizeof(float));
  assert_non_null(want);
  assert_non_null(got);
  cpu_aggregate(&p, &d, want);
  float *dw = fedc_buf_alloc(be, d.n), *dout = fedc_buf_alloc(be, d.n);
  assert_non_null(dw);
  assert_non_null(dout);
  assert_int_equal(fedc_agg_cuda_begin(a, NULL, d.n), 0);
  for (int j = 0; j < d.k; j++) {
    /* one device buffer, rewritten after each add returns */
    assert_int_equal(fedc_buf_upload(be, dw, d.w[j], d.n), 0);
    assert_int_equal(fedc_agg_cuda_add(a, dw, d.n, d.samples[j], NULL), 0);
  }
  assert_int_equal(fedc_agg_cuda_finish(a, dout, d.n), 0);
  assert_int_equal(fedc_buf_download(be, got, dout, d.n), 0);
  check_same("device memory", got, want, d.n, 1);
  fedc_buf_free(be, dw);
  fedc_buf_free(be, dout);
  fedc_backend_close(be);
  fedc_agg_cuda_free(a);
  fedc_free(want);
  fedc_free(got);
  round_free(&d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unavailable_says_why), cmocka_unit_test(test_algorithms_on_host),
      cmocka_unit_test(test_against_cpu),          cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_device_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
