/*
 * test_cpu_variants.c - every CPU kernel variant (ml/kernels.h) that this
 * build has and this CPU runs, against the scalar reference; the scalar
 * reference against plain loops in double; the selection (base/cpu.h).
 *
 * Each variant case is one cmocka test ("gemm_nt/avx2", ...). A variant
 * the build lacks (NEON on x86-64, AVX2 and AVX-512 on arm64) or the CPU
 * lacks (AVX-512 on an AVX2 machine) prints "skipped: ..." and skips.
 *
 * Tolerances: the products, |got - ref| <= 1e-5 * (sum_p |a b| + 1) - the
 * sums are ordered differently in each variant, so they may differ in the
 * last bits, never more than rounding allows; the FedAvg conversion and
 * fold are exact in every variant (bit-equal), and a variant gives the
 * same bits on every call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "base/error.h"
#include "base/rng.h"
#include "ml/backend.h"
#include "ml/kernels.h"

#define TOL 1e-5

static fedc_cpu_variant v_scalar = FEDC_CPU_SCALAR, v_avx2 = FEDC_CPU_AVX2,
                        v_avx512 = FEDC_CPU_AVX512, v_neon = FEDC_CPU_NEON;

/* The case's variant's table, or a skip when the build or CPU lacks it. */
static const fedc_kernels *kernels_or_skip(void **state) {
  fedc_cpu_variant v = *(fedc_cpu_variant *)*state;
  const fedc_kernels *k = fedc_kernels_for(v);
  if (k == NULL) {
    print_message("skipped: %s is not in this build\n", fedc_cpu_variant_name(v));
    skip();
  }
  if (!fedc_cpu_supported(v)) {
    print_message("skipped: this CPU cannot run %s\n", fedc_cpu_variant_name(v));
    skip();
  }
  assert_int_equal(k->variant, v);
  return k;
}

static float *fill(fedc_rng *r, size_t n) {
  float *x = fedc_malloc_array(n, sizeof *x);
  assert_non_null(x);
  for (size_t i = 0; i < n; i++) x[i] = (float)fedc_rng_normal(r);
  return x;
}

static void check_close(const char *what, int m, int n, int k, const float *got,
                        const float *ref, const double *mag, size_t cnt) {
  for (size_t i = 0; i < cnt; i++) {
    double err = fabs((double)got[i] - (double)ref[i]), lim = TOL * (mag[i] + 1.0);
    if (!(err <= lim)) {
      print_message("%s m=%d n=%d k=%d: [%zu] got %.9g want %.9g\n", what, m, n, k, i,
                    (double)got[i], (double)ref[i]);
      fail();
    }
  }
}

/* shapes: edges around the vector widths (4, 8, 16) and block sizes */
static const int ms[] = {1, 2, 3, 4, 5, 7, 9, 16, 33};
static const int ns[] = {1, 2, 5, 6, 10, 11, 16};
static const int ks[] = {1, 3, 8, 9, 16, 17, 40, 200, 784};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/*
 * One product of the variant against the scalar table, with padded leading
 * dimensions: C = alpha A B^T + beta C (A m x k, B n x k), or with tn
 * C = alpha A^T B + beta C (A k x m, B k x n). C starts as noise so that
 * beta is checked (and beta = 0 must ignore it, even when it is NaN); the
 * padding of C is never written; the variant is called twice: same bits.
 */
static void check_gemm(const fedc_kernels *kern, const fedc_kernels *ref, int tn, fedc_rng *r,
                       int m, int n, int k, int lda, int ldb, int ldc, float alpha, float beta) {
  const size_t nc = (size_t)m * ldc;
  float *a = fill(r, (size_t)(tn ? k : m) * lda), *b = fill(r, (size_t)(tn ? k : n) * ldb),
        *c0 = fill(r, nc);
  float *c1 = fedc_malloc_array(nc, sizeof *c1), *c2 = fedc_malloc_array(nc, sizeof *c2),
        *cr = fedc_malloc_array(nc, sizeof *cr);
  double *mag = fedc_calloc(nc, sizeof *mag);
  assert_true(c1 && c2 && cr && mag);
  if (beta == 0.0f) c0[0] = NAN;
  memcpy(c1, c0, nc * sizeof *c0);
  memcpy(c2, c0, nc * sizeof *c0);
  memcpy(cr, c0, nc * sizeof *c0);
  void (*got)(int, int, int, float, const float *, int, const float *, int, float, float *,
              int) = tn ? kern->gemm_tn : kern->gemm_nt;
  void (*want)(int, int, int, float, const float *, int, const float *, int, float, float *,
               int) = tn ? ref->gemm_tn : ref->gemm_nt;
  got(m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
  got(m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc);
  want(m, n, k, alpha, a, lda, b, ldb, beta, cr, ldc);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double sum = 0;
      for (int p = 0; p < k; p++) {
        float ai = tn ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
        float bj = tn ? b[(size_t)p * ldb + j] : b[(size_t)j * ldb + p];
        sum += fabs((double)ai * bj);
      }
      mag[(size_t)i * ldc + j] =
          fabs(alpha) * sum + (beta == 0.0f ? 0.0 : fabs(beta * c0[(size_t)i * ldc + j]));
    }
  for (int i = 0; i < m; i++) /* the padding is never written */
    for (int j = n; j < ldc; j++)
      assert_memory_equal(&c1[(size_t)i * ldc + j], &c0[(size_t)i * ldc + j], sizeof(float));
  check_close(tn ? "gemm_tn" : "gemm_nt", m, n, k, c1, cr, mag, nc);
  assert_memory_equal(c1, c2, nc * sizeof *c1);
  fedc_free(a), fedc_free(b), fedc_free(c0), fedc_free(c1), fedc_free(c2);
  fedc_free(cr), fedc_free(mag);
}

/* C = alpha A B^T + beta C: n <= 16 outputs, m and k any. */
static void run_nt(const fedc_kernels *kern, const fedc_kernels *ref) {
  fedc_rng r;
  fedc_rng_seed(&r, 7);
  const float alphas[] = {1.0f, -0.5f}, betas[] = {0.0f, 1.0f, 0.25f};
  for (size_t mi = 0; mi < COUNT(ms); mi++)
    for (size_t ni = 0; ni < COUNT(ns); ni++)
      for (size_t ki = 0; ki < COUNT(ks); ki++)
        for (size_t ab = 0; ab < 6; ab++) {
          int m = ms[mi], n = ns[ni], k = ks[ki];
          check_gemm(kern, ref, 0, &r, m, n, k, k + 3, k + 1, n + 2, alphas[ab % 2],
                     betas[ab / 2]);
        }
}

/* C = alpha A^T B + beta C: A is k x m, B k x n; m <= 16, n any. */
static void run_tn(const fedc_kernels *kern, const fedc_kernels *ref) {
  fedc_rng r;
  fedc_rng_seed(&r, 11);
  static const int tm[] = {1, 2, 4, 5, 6, 10, 11, 16};
  static const int tnn[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 200, 784};
  static const int tk[] = {1, 2, 5, 32, 33};
  const float alphas[] = {1.0f, 0.5f}, betas[] = {0.0f, 1.0f, -2.0f};
  for (size_t mi = 0; mi < COUNT(tm); mi++)
    for (size_t ni = 0; ni < COUNT(tnn); ni++)
      for (size_t ki = 0; ki < COUNT(tk); ki++)
        for (size_t ab = 0; ab < 6; ab++) {
          int m = tm[mi], n = tnn[ni], k = tk[ki];
          check_gemm(kern, ref, 1, &r, m, n, k, m + 1, n + 3, n + 5, alphas[ab % 2],
                     betas[ab / 2]);
        }
}

/* gemm_nn, C (m x n) = alpha A B + beta C with A m x k and padded leading
 * dimensions, against double loops and the scalar table; the padding of C
 * is never written; the same bits on a second call. */
static void check_nn(const fedc_kernels *kern, fedc_rng *r, int m, int n, int k, float beta) {
  const int lda = k + 2, ldb = n + 3, ldc = n + 1;
  const size_t nc = (size_t)m * ldc;
  float *a = fill(r, (size_t)m * lda), *b = fill(r, (size_t)k * ldb), *c0 = fill(r, nc);
  float *c1 = fedc_malloc_array(nc, sizeof *c1), *c2 = fedc_malloc_array(nc, sizeof *c2),
        *cr = fedc_malloc_array(nc, sizeof *cr);
  double *mag = fedc_calloc(nc, sizeof *mag);
  assert_true(c1 && c2 && cr && mag);
  if (beta == 0.0f) c0[0] = NAN;
  memcpy(c1, c0, nc * sizeof *c0);
  memcpy(c2, c0, nc * sizeof *c0);
  memcpy(cr, c0, nc * sizeof *c0);
  kern->gemm_nn(m, n, k, 0.5f, a, lda, b, ldb, beta, c1, ldc);
  kern->gemm_nn(m, n, k, 0.5f, a, lda, b, ldb, beta, c2, ldc);
  fedc_kernels_scalar.gemm_nn(m, n, k, 0.5f, a, lda, b, ldb, beta, cr, ldc);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < ldc; j++) {
      size_t q = (size_t)i * ldc + j;
      if (j >= n) { /* padding */
        assert_memory_equal(&c1[q], &c0[q], sizeof(float));
        continue;
      }
      double s = 0, sa = 0;
      for (int p = 0; p < k; p++) {
        double t = (double)a[(size_t)i * lda + p] * b[(size_t)p * ldb + j];
        s += t, sa += fabs(t);
      }
      double want = 0.5 * s + (beta == 0.0f ? 0.0 : (double)beta * c0[q]);
      mag[q] = 0.5 * sa + (beta == 0.0f ? 0.0 : fabs((double)beta * c0[q]));
      assert_true(fabs(c1[q] - want) <= TOL * (mag[q] + 1.0));
      assert_true(fabs(cr[q] - want) <= TOL * (mag[q] + 1.0));
    }
  assert_memory_equal(c1, c2, nc * sizeof *c1);
  fedc_free(a), fedc_free(b), fedc_free(c0), fedc_free(c1), fedc_free(c2);
  fedc_free(cr), fedc_free(mag);
}

/* The wide products a SIMD variant takes at a minibatch (kernels.h's
 * wide): gemm_nt with many outputs, gemm_tn with many rows, gemm_nn, an
 * MLP's shapes and the edges of the blocks, against the scalar table. */
static void test_wide(void **state) {
  const fedc_kernels *kern = kernels_or_skip(state);
  if (!kern->wide) {
    print_message("skipped: %s takes only the small products\n",
                  fedc_cpu_variant_name(kern->variant));
    skip();
  }
  fedc_rng r;
  fedc_rng_seed(&r, 17);
  static const int wm[] = {1, 31, 32, 64}, wn[] = {17, 41, 200}, wk[] = {9, 200, 784};
  for (size_t mi = 0; mi < COUNT(wm); mi++)
    for (size_t ni = 0; ni < COUNT(wn); ni++)
      for (size_t ki = 0; ki < COUNT(wk); ki++) {
        int m = wm[mi], n = wn[ni], k = wk[ki];
        check_gemm(kern, &fedc_kernels_scalar, 0, &r, m, n, k, k + 3, k + 1, n + 2, 1.0f,
                   mi % 2 ? 1.0f : 0.0f);
        /* tn: C (n x k) = dZ^T X, dZ m x n, X m x k */
        check_gemm(kern, &fedc_kernels_scalar, 1, &r, n, k, m, n + 1, k + 3, k + 5, 0.5f,
                   ki % 2 ? 0.0f : 1.0f);
        check_nn(kern, &r, m, n, k, ni % 2 ? 1.0f : 0.0f);
      }
}

static void test_gemm_nt(void **state) {
  const fedc_kernels *k = kernels_or_skip(state);
  run_nt(k, &fedc_kernels_scalar);
}

static void test_gemm_tn(void **state) {
  const fedc_kernels *k = kernels_or_skip(state);
  run_tn(k, &fedc_kernels_scalar);
}

/*
 * The *_rows forms (a minibatch read in place through an index) against the
 * same variant's product on the gathered rows: the same bits. The data has
 * more rows than are read, the index repeats one and runs backwards.
 */
static void check_rows(const fedc_kernels *kern, int tn, fedc_rng *r, int m, int n, int k,
                       float beta) {
  const int rows = tn ? k : m, d = tn ? n : k, ld = d + 3, n_data = 2 * rows + 5;
  float *x = fill(r, (size_t)n_data * ld), *g = fedc_malloc_array((size_t)rows * ld, sizeof *g);
  int64_t *ix = fedc_malloc_array((size_t)rows, sizeof *ix);
  assert_true(g && ix);
  for (int i = 0; i < rows; i++) {
    ix[i] = i == 1 ? ix[0] : (int64_t)(n_data - 1 - 2 * i);
    memcpy(g + (size_t)i * ld, x + ix[i] * ld, (size_t)ld * sizeof *g);
  }
  /* the other operand: W (n x k) for nt, dZ (k x m) for tn */
  const int lo = tn ? m : k;
  float *o = fill(r, (size_t)(tn ? k : n) * lo);
  const int ldc = n + 1;
  float *c1 = fill(r, (size_t)m * ldc), *c2 = fedc_malloc_array((size_t)m * ldc, sizeof *c2);
  assert_non_null(c2);
  memcpy(c2, c1, (size_t)m * ldc * sizeof *c1);
  if (tn) {
    kern->gemm_tn(m, n, k, 0.5f, o, lo, g, ld, beta, c1, ldc);
    kern->gemm_tn_rows(m, n, k, 0.5f, o, lo, x, ld, ix, beta, c2, ldc);
  } else {
    kern->gemm_nt(m, n, k, 0.5f, g, ld, o, lo, beta, c1, ldc);
    kern->gemm_nt_rows(m, n, k, 0.5f, x, ld, ix, o, lo, beta, c2, ldc);
  }
  assert_memory_equal(c1, c2, (size_t)m * ldc * sizeof *c1);
  fedc_free(x), fedc_free(g), fedc_free(ix), fedc_free(o), fedc_free(c1), fedc_free(c2);
}

static void test_gemm_rows(void **state) {
  const fedc_kernels *kern = kernels_or_skip(state);
  fedc_rng r;
  fedc_rng_seed(&r, 13);
  static const int bs[] = {1, 2, 3, 5, 31, 32, 33};  /* batch rows */
  static const int outs[] = {1, 2, 5, 10, 16};       /* outputs */
  static const int feats[] = {1, 7, 8, 17, 200, 784}; /* features */
  for (size_t bi = 0; bi < COUNT(bs); bi++)
    for (size_t oi = 0; oi < COUNT(outs); oi++)
      for (size_t fi = 0; fi < COUNT(feats); fi++)
        for (int beta = 0; beta < 2; beta++) {
          check_rows(kern, 0, &r, bs[bi], outs[oi], feats[fi], beta ? 1.0f : 0.0f);
          check_rows(kern, 1, &r, outs[oi], feats[fi], bs[bi], beta ? 1.0f : 0.0f);
        }
}

/* The scalar reference itself against double loops (exact products of
 * floats, summed in double), the same shapes. */
static void test_scalar_against_double(void **state) {
  (void)state;
  fedc_rng r;
  fedc_rng_seed(&r, 3);
  const int m = 9, n = 11, k = 200, lda = k + 2, ldb = k, ldc = n + 1;
  float *a = fill(&r, (size_t)m * lda), *b = fill(&r, (size_t)n * ldb),
        *c = fill(&r, (size_t)m * ldc), *c0 = fill(&r, (size_t)m * ldc);
  memcpy(c0, c, (size_t)m * ldc * sizeof *c);
  fedc_kernels_scalar.gemm_nt(m, n, k, 0.5f, a, lda, b, ldb, 2.0f, c, ldc);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0, mag = 0;
      for (int p = 0; p < k; p++) {
        double t = (double)a[(size_t)i * lda + p] * b[(size_t)j * ldb + p];
        s += t, mag += fabs(t);
      }
      double want = 0.5 * s + 2.0 * c0[(size_t)i * ldc + j];
      assert_true(fabs(c[(size_t)i * ldc + j] - want) <= TOL * (mag + 1.0));
    }
  /* tn: A is k x m (here 200 x 9), B k x n (200 x 11) */
  float *ct = fill(&r, (size_t)m * n);
  fedc_kernels_scalar.gemm_tn(m, n, k, 1.0f, a, m, b, n, 0.0f, ct, n);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0, mag = 0;
      for (int p = 0; p < k; p++) {
        double t = (double)a[(size_t)p * m + i] * b[(size_t)p * n + j];
        s += t, mag += fabs(t);
      }
      assert_true(fabs(ct[(size_t)i * n + j] - s) <= TOL * (mag + 1.0));
    }
  fedc_free(a), fedc_free(b), fedc_free(c), fedc_free(c0), fedc_free(ct);
}

/*
 * FedAvg's conversion and fold: bit-equal to the scalar table, for sizes
 * around the 64-weight check blocks, and the first bad weight (NaN, inf,
 * |w| >= 2^31) found at the same index.
 */
static void test_fold(void **state) {
  const fedc_kernels *kern = kernels_or_skip(state);
  const fedc_kernels *ref = &fedc_kernels_scalar;
  const double scale = 4294967296.0, limit = 2147483648.0;
  fedc_rng r;
  fedc_rng_seed(&r, 5);
  const size_t sizes[] = {1, 7, 63, 64, 65, 1000};
  for (size_t si = 0; si < COUNT(sizes); si++) {
    size_t n = sizes[si];
    float *w = fill(&r, n);
    for (size_t i = 0; i < n; i += 3) w[i] *= 1e-6f; /* below the grid's 2^-32 steps too */
    int64_t *q1 = fedc_malloc_array(n, sizeof *q1), *q2 = fedc_malloc_array(n, sizeof *q2);
    __int128 *a1 = fedc_calloc(n, sizeof *a1), *a2 = fedc_calloc(n, sizeof *a2);
    assert_true(q1 && q2 && a1 && a2);
    assert_int_equal(kern->fx_convert(q1, w, n, scale, limit), n);
    assert_int_equal(ref->fx_convert(q2, w, n, scale, limit), n);
    assert_memory_equal(q1, q2, n * sizeof *q1);
    kern->fx_fold(a1, q1, n, 600);
    kern->fx_fold(a1, q1, n, (int64_t)1 << 40);
    ref->fx_fold(a2, q2, n, 600);
    ref->fx_fold(a2, q2, n, (int64_t)1 << 40);
    assert_memory_equal(a1, a2, n * sizeof *a1);
    const float bad[] = {NAN, INFINITY, -INFINITY, 2147483648.0f, -3e9f};
    for (size_t b = 0; b < COUNT(bad); b++) {
      size_t at = (n * (b + 1)) / (COUNT(bad) + 1);
      float keep = w[at];
      w[at] = bad[b];
      assert_int_equal(kern->fx_convert(q1, w, n, scale, limit), at);
      assert_int_equal(ref->fx_convert(q2, w, n, scale, limit), at);
      w[at] = keep;
    }
    fedc_free(w), fedc_free(q1), fedc_free(q2), fedc_free(a1), fedc_free(a2);
  }
}

/*
 * The elementwise ops: ReLU, its gradient, the bias and the column sums
 * bit-equal to the scalar table (one operation per element, in the same
 * order); the SGD step within 1e-6 (a variant may fuse its multiply-add),
 * plain and with every extra, and the same bits on a second call.
 */
static void test_elem(void **state) {
  const fedc_kernels *kern = kernels_or_skip(state);
  const fedc_kernels *ref = &fedc_kernels_scalar;
  fedc_rng r;
  fedc_rng_seed(&r, 9);
  const int32_t rows = 33, cols = 203;
  const size_t n = (size_t)rows * cols;
  float *z = fill(&r, n), *bias = fill(&r, (size_t)cols), *da = fill(&r, n);
  float *x1 = fedc_malloc_array(n, sizeof *x1), *x2 = fedc_malloc_array(n, sizeof *x2);
  assert_true(x1 && x2);
  memcpy(x1, z, n * sizeof *z), memcpy(x2, z, n * sizeof *z);
  kern->add_bias(x1, bias, rows, cols);
  ref->add_bias(x2, bias, rows, cols);
  assert_memory_equal(x1, x2, n * sizeof *x1);
  kern->relu(x1, z, n);
  ref->relu(x2, z, n);
  assert_memory_equal(x1, x2, n * sizeof *x1);
  memcpy(x1, da, n * sizeof *z), memcpy(x2, da, n * sizeof *z);
  kern->relu_backward(x1, x1, z, n); /* in place, as training calls it */
  ref->relu_backward(x2, x2, z, n);
  assert_memory_equal(x1, x2, n * sizeof *x1);
  kern->col_sum(x1, z, rows, cols);
  ref->col_sum(x2, z, rows, cols);
  assert_memory_equal(x1, x2, (size_t)cols * sizeof *x1);
  float *g = fill(&r, n), *w0 = fill(&r, n), *v1 = fill(&r, n), *v2 = fedc_malloc_array(n, sizeof *v2);
  float *w3 = fedc_malloc_array(n, sizeof *w3);
  double *mag = fedc_malloc_array(n, sizeof *mag);
  assert_true(v2 && w3 && mag);
  for (size_t i = 0; i < n; i++) mag[i] = 10.0 * fabs(z[i]) + 10.0;
  for (int extras = 0; extras < 2; extras++) {
    float m = extras ? 0.9f : 0.0f, l1 = extras ? 1e-3f : 0.0f, l2 = extras ? 1e-2f : 0.0f,
          mu = extras ? 0.1f : 0.0f;
    memcpy(x1, z, n * sizeof *z), memcpy(x2, z, n * sizeof *z), memcpy(w3, z, n * sizeof *z);
    memcpy(v2, v1, n * sizeof *v1);
    float *v3 = fedc_malloc_array(n, sizeof *v3);
    assert_non_null(v3);
    memcpy(v3, v1, n * sizeof *v1);
    kern->sgd_step(x1, g, v2, w0, n, 0.05f, m, l1, l2, mu);
    kern->sgd_step(w3, g, v3, w0, n, 0.05f, m, l1, l2, mu);
    assert_memory_equal(x1, w3, n * sizeof *x1);
    memcpy(v3, v1, n * sizeof *v1);
    ref->sgd_step(x2, g, v3, w0, n, 0.05f, m, l1, l2, mu);
    for (size_t i = 0; i < n; i++) mag[i] = fabs(x2[i]) + 1.0;
    for (size_t i = 0; i < n; i++)
      if (!(fabs((double)x1[i] - x2[i]) <= 1e-6 * mag[i])) {
        print_message("sgd_step [%zu]: got %.9g want %.9g\n", i, (double)x1[i], (double)x2[i]);
        fail();
      }
    fedc_free(v3);
  }
  fedc_free(z), fedc_free(bias), fedc_free(da), fedc_free(x1), fedc_free(x2), fedc_free(g);
  fedc_free(w0), fedc_free(v1), fedc_free(v2), fedc_free(w3), fedc_free(mag);
}

/*
 * Selection: names, the errors for an unknown or unavailable variant (the
 * variant in use unchanged), and a CPU backend opened after a selection
 * uses that variant's kernels (its product equals the table's, bit for bit).
 */
static void test_select(void **state) {
  (void)state;
  fedc_cpu_variant was = fedc_cpu_current();
  assert_true(fedc_cpu_supported(FEDC_CPU_SCALAR));
  assert_true(fedc_cpu_supported(fedc_cpu_best()));
  assert_int_equal(fedc_cpu_select("no-such-isa"), FEDC_EINVAL);
  assert_int_equal(fedc_cpu_current(), was);
  for (int v = 0; v < FEDC_CPU_COUNT; v++) {
    int rc = fedc_cpu_select(fedc_cpu_variant_name((fedc_cpu_variant)v));
    if (!fedc_cpu_supported((fedc_cpu_variant)v)) {
      assert_int_equal(rc, FEDC_EUNSUPPORTED);
      continue;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(fedc_cpu_current(), v);
    assert_string_equal(fedc_cpu_name(), fedc_cpu_variant_name((fedc_cpu_variant)v));
    fedc_backend *be = NULL;
    assert_int_equal(fedc_backend_open(FEDC_DEVICE_CPU, &be), 0);
    float a[3 * 20], b[10 * 20], c1[30], c2[30];
    for (int i = 0; i < 60; i++) a[i] = (float)(i % 7) * 0.3f - 1.0f;
    for (int i = 0; i < 200; i++) b[i] = (float)(i % 5) * 0.1f;
    assert_int_equal(be->gemm(be, 0, 1, 3, 10, 20, 1.0f, a, 20, b, 20, 0.0f, c1, 10), 0);
    fedc_kernels_for((fedc_cpu_variant)v)->gemm_nt(3, 10, 20, 1.0f, a, 20, b, 20, 0.0f, c2, 10);
    assert_memory_equal(c1, c2, sizeof c1);
    fedc_backend_close(be);
  }
  assert_int_equal(fedc_cpu_select("avx2"),
                   fedc_cpu_supported(FEDC_CPU_AVX2) ? 0 : FEDC_EUNSUPPORTED);
  assert_int_equal(fedc_cpu_select("auto"), 0);
  assert_int_equal(fedc_cpu_current(), fedc_cpu_best());
  assert_int_equal(fedc_cpu_set(was), 0);
}

/* one case per kernel and variant, named "gemm_nt/avx2" and so on */
#define VARIANT_CASES(v, name)                                               \
  {"gemm_nt/" name, test_gemm_nt, NULL, NULL, &v},                           \
      {"gemm_tn/" name, test_gemm_tn, NULL, NULL, &v},                       \
      {"gemm_rows/" name, test_gemm_rows, NULL, NULL, &v},                   \
      {"wide/" name, test_wide, NULL, NULL, &v},                             \
      {"fold/" name, test_fold, NULL, NULL, &v},                             \
      {"elementwise/" name, test_elem, NULL, NULL, &v}

int main(void) {
  print_message("cpu kernels: best on this machine %s\n", fedc_cpu_variant_name(fedc_cpu_best()));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scalar_against_double),
      cmocka_unit_test(test_select),
      VARIANT_CASES(v_scalar, "scalar"),
      VARIANT_CASES(v_avx2, "avx2"),
      VARIANT_CASES(v_avx512, "avx512"),
      VARIANT_CASES(v_neon, "neon"),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
