/*
 * test_backend_ops.c - every op of every built backend against a reference,
 * in the manner of ggml's test-backend-ops: memory, GEMM in all four
 * transpose combinations with padded leading dimensions, the gathers, bias,
 * ReLU and its gradient, column sums, the three loss heads, the
 * regularization gradient, the fused SGD step and the reductions, over
 * shapes that include 1 and odd sizes; then a few minibatches of softmax
 * and MLP training, the exact objective's gradient and an evaluation with
 * scores, on each backend.
 *
 * Each case runs once per backend ("/cpu" and "/cuda"). Every backend is
 * checked against plain loops written here (in double), and a backend other
 * than the CPU also against the CPU backend's own result, the reference.
 * Without a GPU, or without the CUDA module, the "/cuda" cases print
 * "skipped: no CUDA device" and skip; the "/cpu" cases still check the CPU
 * backend against the loops.
 *
 * Tolerances: |got - want| <= tol * max(|want|, floor), floor 1 unless said:
 *   memory, gathers, relu, relu_backward     exact
 *   add_bias, reg_grad, sgd_step, loss dz    1e-5 (dz: floor grad_scale)
 *   gemm, col_sum, loss sums                 1e-4
 *   sumsq, sum_abs (accumulated in double)   1e-9
 *   training: weights after a run            1e-3 (floor 0.1), loss sums 1e-4
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "ml/backend.h"
#include "base/error.h"
#include "ml/model.h"
#include "base/rng.h"
#include "ml/train.h"

#define TOL_ELEM 1e-5
#define TOL_SUM 1e-4
#define TOL_DOUBLE 1e-9
#define TOL_TRAIN 1e-3

static fedc_device dev_cpu = FEDC_DEVICE_CPU;
static fedc_device dev_cuda = FEDC_DEVICE_CUDA;

/* ---- helpers ------------------------------------------------------------ */

/* The backend this case runs on; a CUDA case without a device skips. */
static fedc_backend *open_or_skip(void **state) {
  fedc_device dev = *(fedc_device *)*state;
  fedc_backend *be = NULL;
  int rc = fedc_backend_open(dev, &be);
  if (dev == FEDC_DEVICE_CUDA && rc == FEDC_EUNSUPPORTED) {
    print_message("skipped: no CUDA device (%s)\n", fedc_error_msg());
    skip();
  }
  if (rc != 0) print_message("open: %s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  return be;
}

/* The CPU reference for a backend that is not the CPU, else NULL. */
static fedc_backend *reference_for(const fedc_backend *be) {
  if (be->device == FEDC_DEVICE_CPU) return NULL;
  fedc_backend *cpu = NULL;
  assert_int_equal(fedc_backend_open(FEDC_DEVICE_CPU, &cpu), 0);
  return cpu;
}

static float *host_alloc(size_t n) {
  float *p = fedc_malloc_array(n ? n : 1, sizeof *p);
  assert_non_null(p);
  return p;
}

/* A backend buffer holding a copy of host[0..n). */
static float *put(fedc_backend *be, const float *host, size_t n) {
  float *p = fedc_buf_alloc(be, n);
  assert_non_null(p);
  assert_int_equal(fedc_buf_upload(be, p, host, n), 0);
  return p;
}

/* A new host array holding the backend buffer's n floats. */
static float *get(fedc_backend *be, const float *dev, size_t n) {
  float *h = host_alloc(n);
  assert_int_equal(fedc_buf_download(be, h, dev, n), 0);
  return h;
}

static void fill_normal(fedc_rng *r, float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = (float)fedc_rng_normal(r);
}

static void check_close(const char *what, const float *got, const double *want, size_t n,
                        double tol, double floor_) {
  for (size_t i = 0; i < n; i++) {
    double err = fabs((double)got[i] - want[i]);
    double lim = tol * fmax(fabs(want[i]), floor_);
    if (!(err <= lim)) {
      print_message("%s: [%zu] got %.9g want %.9g (|err| %.3g > %.3g)\n", what, i, (double)got[i],
                    want[i], err, lim);
      fail();
    }
  }
}

/* got against a float reference (another backend's result). */
static void check_close_f(const char *what, const float *got, const float *ref, size_t n,
                          double tol, double floor_) {
  double *w = fedc_malloc_array(n ? n : 1, sizeof *w);
  assert_non_null(w);
  for (size_t i = 0; i < n; i++)
    w[i] = ref[i];
  check_close(what, got, w, n, tol, floor_);
  fedc_free(w);
}

static void check_scalar(const char *what, double got, double want, double tol) {
  double err = fabs(got - want), lim = tol * fmax(fabs(want), 1.0);
  if (!(err <= lim)) {
    print_message("%s: got %.12g want %.12g (|err| %.3g > %.3g)\n", what, got, want, err, lim);
    fail();
  }
}

/* ---- memory ------------------------------------------------------------- */

static void test_memory(void **state) {
  int64_t live = fedc_alloc_live();
  fedc_backend *be = open_or_skip(state);
  const size_t sizes[] = {1, 5, 4096, 100003};
  fedc_rng r;
  fedc_rng_seed(&r, 1);
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    size_t n = sizes[s];
    float *d = fedc_buf_alloc(be, n);
    assert_non_null(d);
    float *h = get(be, d, n);
    for (size_t i = 0; i < n; i++)
      assert_true(h[i] == 0.0f); /* allocations are zeroed */
    float *x = host_alloc(n);
    fill_normal(&r, x, n);
    assert_int_equal(fedc_buf_upload(be, d, x, n), 0);
    assert_int_equal(fedc_buf_download(be, h, d, n), 0);
    assert_memory_equal(h, x, n * sizeof *x);
    if (n > 3) { /* offsets into a buffer, and zero on a part of it */
      assert_int_equal(be->zero(be, d + 1, n - 3), 0);
      assert_int_equal(fedc_buf_download(be, h, d, n), 0);
      assert_true(h[0] == x[0] && h[n - 2] == x[n - 2] && h[n - 1] == x[n - 1]);
      for (size_t i = 1; i < n - 2; i++)
        assert_true(h[i] == 0.0f);
    }
    assert_int_equal(fedc_buf_upload(be, d, x, 0), 0); /* nothing to do */
    fedc_free(h);
    fedc_free(x);
    fedc_buf_free(be, d);
  }
  /* a failed allocation is NULL, and the backend carries on: for the CPU
   * the allocator's failure injection, for a GPU more than it has */
  if (be->device == FEDC_DEVICE_CPU) {
    fedc_alloc_fail_after(1, 0);
    assert_null(be->alloc(be, 16));
    fedc_alloc_fail_after(0, 0);
  } else {
    assert_null(be->alloc(be, (size_t)1 << 50));
  }
  float one[3] = {-1.0f, 2.0f, 0.0f};
  float *d = put(be, one, 3);
  assert_int_equal(be->relu(be, d, d, 3), 0);
  float *h = get(be, d, 3);
  assert_true(h[0] == 0.0f && h[1] == 2.0f && h[2] == 0.0f);
  fedc_free(h);
  fedc_buf_free(be, d);
  fedc_backend_close(be);
  assert_int_equal(fedc_alloc_live(), live);
}

/* ---- gemm --------------------------------------------------------------- */

typedef struct gemm_case {
  int m, n, k, pad;
} gemm_case;

#define SENTINEL 12345.0f

/* One product on be; returns C (m x ldc) on the host. */
static float *gemm_on(fedc_backend *be, int ta, int tb, const gemm_case *g, float alpha, float beta,
                      const float *a, size_t na, int lda, const float *b, size_t nb, int ldb,
                      const float *c0, int ldc) {
  size_t nc = (size_t)g->m * (size_t)ldc;
  float *da = put(be, a, na), *db = put(be, b, nb), *dc = put(be, c0, nc);
  int rc = be->gemm(be, ta, tb, g->m, g->n, g->k, alpha, da, lda, db, ldb, beta, dc, ldc);
  if (rc != 0) print_message("gemm: %s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  float *c = get(be, dc, nc);
  fedc_buf_free(be, da);
  fedc_buf_free(be, db);
  fedc_buf_free(be, dc);
  return c;
}

static void test_gemm(void **state) {
  fedc_backend *be = open_or_skip(state);
  fedc_backend *cpu = reference_for(be);
  /* the CPU's own small-output kernels (n or m <= 16) and OpenBLAS both */
  const gemm_case cases[] = {{1, 1, 1, 0},     {7, 5, 3, 1},      {33, 17, 65, 0}, {64, 10, 784, 0},
                             {10, 200, 64, 3}, {129, 130, 67, 2}, {5, 300, 1, 0},  {3, 16, 9, 1}};
  const float ab[][2] = {{1.0f, 0.0f}, {0.5f, -0.75f}};
  fedc_rng r;
  fedc_rng_seed(&r, 2);
  for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
    const gemm_case *g = &cases[ci];
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int s = 0; s < 2; s++) {
          const float alpha = ab[s][0], beta = ab[s][1];
          /* row-major storage: A is m x k (k x m when transposed), etc. */
          int a_rows = ta ? g->k : g->m, a_cols = ta ? g->m : g->k;
          int b_rows = tb ? g->n : g->k, b_cols = tb ? g->k : g->n;
          int lda = a_cols + g->pad, ldb = b_cols + g->pad, ldc = g->n + g->pad;
          size_t na = (size_t)a_rows * lda, nb = (size_t)b_rows * ldb, nc = (size_t)g->m * ldc;
          float *a = host_alloc(na), *b = host_alloc(nb), *c0 = host_alloc(nc);
          fill_normal(&r, a, na);
          fill_normal(&r, b, nb);
          fill_normal(&r, c0, nc);
          for (int i = 0; i < g->m; i++)
            for (int j = g->n; j < ldc; j++)
              c0[(size_t)i * ldc + j] = SENTINEL;
          double *want = fedc_malloc_array(nc, sizeof *want);
          assert_non_null(want);
          for (int i = 0; i < g->m; i++)
            for (int j = 0; j < ldc; j++) {
              size_t at = (size_t)i * ldc + j;
              if (j >= g->n) {
                want[at] = SENTINEL; /* the padding is not touched */
                continue;
              }
              double acc = 0.0;
              for (int p = 0; p < g->k; p++) {
                double x = ta ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double y = tb ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                acc += x * y;
              }
              want[at] = alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * c0[at]);
            }
          char what[96];
          snprintf(what, sizeof what, "gemm %s%s m=%d n=%d k=%d pad=%d alpha=%g beta=%g",
                   ta ? "T" : "N", tb ? "T" : "N", g->m, g->n, g->k, g->pad, (double)alpha,
                   (double)beta);
          float *c = gemm_on(be, ta, tb, g, alpha, beta, a, na, lda, b, nb, ldb, c0, ldc);
          check_close(what, c, want, nc, TOL_SUM, 1.0);
          if (cpu) {
            float *ref = gemm_on(cpu, ta, tb, g, alpha, beta, a, na, lda, b, nb, ldb, c0, ldc);
            check_close_f(what, c, ref, nc, TOL_SUM, 1.0);
            fedc_free(ref);
          }
          fedc_free(c);
          fedc_free(want);
          fedc_free(a);
          fedc_free(b);
          fedc_free(c0);
        }
  }
  fedc_backend_close(cpu);
  fedc_backend_close(be);
}

/* ---- gathers -------------------------------------------------------------- */

static void test_gather(void **state) {
  fedc_backend *be = open_or_skip(state);
  const int64_t n_src = 50;
  const int64_t dims[] = {1, 13, 784, 1001};
  fedc_rng r;
  fedc_rng_seed(&r, 3);
  for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
    const int64_t d = dims[di];
    float *src = host_alloc((size_t)(n_src * d)), *lab = host_alloc((size_t)n_src);
    fill_normal(&r, src, (size_t)(n_src * d));
    fill_normal(&r, lab, (size_t)n_src);
    float *dsrc = put(be, src, (size_t)(n_src * d)), *dlab = put(be, lab, (size_t)n_src);
    const int32_t counts[] = {1, 17, 64};
    for (size_t ni = 0; ni < sizeof counts / sizeof *counts; ni++) {
      const int32_t n = counts[ni];
      int64_t rows[64];
      float *dx = fedc_buf_alloc(be, (size_t)n * (size_t)d), *dy = fedc_buf_alloc(be, (size_t)n);
      assert_non_null(dx);
      assert_non_null(dy);
      /* twice with one array: the second time its contents change in place
       * (the CUDA backend must not reuse the first upload's indices) */
      for (int round = 0; round < 2; round++) {
        for (int32_t i = 0; i < n; i++)
          rows[i] = i == 0 ? n_src - 1 : (int64_t)fedc_rng_below(&r, (uint64_t)n_src);
        assert_int_equal(be->gather_rows(be, dx, dsrc, d, rows, n), 0);
        assert_int_equal(be->gather(be, dy, dlab, rows, n), 0);
        float *x = get(be, dx, (size_t)n * (size_t)d), *y = get(be, dy, (size_t)n);
        for (int32_t i = 0; i < n; i++) {
          assert_memory_equal(x + (size_t)i * (size_t)d, src + (size_t)rows[i] * (size_t)d,
                              (size_t)d * sizeof *x);
          assert_true(y[i] == lab[rows[i]]);
        }
        fedc_free(x);
        fedc_free(y);
      }
      fedc_buf_free(be, dx);
      fedc_buf_free(be, dy);
    }
    fedc_buf_free(be, dsrc);
    fedc_buf_free(be, dlab);
    fedc_free(src);
    fedc_free(lab);
  }
  fedc_backend_close(be);
}

/* ---- elementwise ----------------------------------------------------------- */

static void test_add_bias(void **state) {
  fedc_backend *be = open_or_skip(state);
  fedc_backend *cpu = reference_for(be);
  const int32_t shapes[][2] = {{1, 1}, {3, 7}, {37, 10}, {256, 1000}};
  fedc_rng r;
  fedc_rng_seed(&r, 4);
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    int32_t rows = shapes[s][0], cols = shapes[s][1];
    size_t n = (size_t)rows * (size_t)cols;
    float *z = host_alloc(n), *bias = host_alloc((size_t)cols);
    fill_normal(&r, z, n);
    fill_normal(&r, bias, (size_t)cols);
    double *want = fedc_malloc_array(n, sizeof *want);
    assert_non_null(want);
    for (size_t i = 0; i < n; i++)
      want[i] = (double)z[i] + bias[i % (size_t)cols];
    fedc_backend *bes[2] = {be, cpu};
    float *res[2] = {NULL, NULL};
    for (int q = 0; q < 2 && bes[q]; q++) {
      float *dz = put(bes[q], z, n), *db = put(bes[q], bias, (size_t)cols);
      assert_int_equal(bes[q]->add_bias(bes[q], dz, db, rows, cols), 0);
      res[q] = get(bes[q], dz, n);
      fedc_buf_free(bes[q], dz);
      fedc_buf_free(bes[q], db);
    }
    check_close("add_bias", res[0], want, n, TOL_ELEM, 1.0);
    if (res[1]) check_close_f("add_bias vs cpu", res[0], res[1], n, TOL_ELEM, 1.0);
    fedc_free(res[0]);
    fedc_free(res[1]);
    fedc_free(want);
    fedc_free(z);
    fedc_free(bias);
  }
  fedc_backend_close(cpu);
  fedc_backend_close(be);
}

static void test_relu(void **state) {
  fedc_backend *be = open_or_skip(state);
  const size_t sizes[] = {1, 7, 1000, 65537};
  fedc_rng r;
  fedc_rng_seed(&r, 5);
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    size_t n = sizes[s];
    float *z = host_alloc(n), *da = host_alloc(n);
    fill_normal(&r, z, n);
    fill_normal(&r, da, n);
    z[0] = 0.0f; /* exactly zero: not active */
    if (n > 1) z[1] = -0.0f;
    float *dz_ = put(be, z, n), *da_ = put(be, da, n), *a_ = fedc_buf_alloc(be, n);
    assert_non_null(a_);
    /* out of place, then the backward pass in place on da */
    assert_int_equal(be->relu(be, a_, dz_, n), 0);
    assert_int_equal(be->relu_backward(be, da_, da_, a_, n), 0);
    float *a = get(be, a_, n), *g = get(be, da_, n);
    for (size_t i = 0; i < n; i++) {
      float wa = z[i] > 0.0f ? z[i] : 0.0f;
      assert_memory_equal(&a[i], &wa, sizeof wa); /* +0, never -0 */
      assert_true(g[i] == (z[i] > 0.0f ? da[i] : 0.0f));
    }
    /* in place forward */
    assert_int_equal(be->relu(be, dz_, dz_, n), 0);
    float *a2 = get(be, dz_, n);
    assert_memory_equal(a2, a, n * sizeof *a);
    fedc_free(a);
    fedc_free(a2);
    fedc_free(g);
    fedc_free(z);
    fedc_free(da);
    fedc_buf_free(be, dz_);
    fedc_buf_free(be, da_);
    fedc_buf_free(be, a_);
  }
  fedc_backend_close(be);
}

static void test_col_sum(void **state) {
  fedc_backend *be = open_or_skip(state);
  fedc_backend *cpu = reference_for(be);
  const int32_t shapes[][2] = {{1, 1}, {37, 10}, {300, 33}, {1, 200}, {1000, 3}};
  fedc_rng r;
  fedc_rng_seed(&r, 6);
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
    int32_t rows = shapes[s][0], cols = shapes[s][1];
    size_t n = (size_t)rows * (size_t)cols;
    float *m = host_alloc(n);
    fill_normal(&r, m, n);
    double want[1000];
    for (int32_t j = 0; j < cols; j++) {
      want[j] = 0.0;
      for (int32_t i = 0; i < rows; i++)
        want[j] += m[(size_t)i * (size_t)cols + (size_t)j];
    }
    fedc_backend *bes[2] = {be, cpu};
    float *res[2] = {NULL, NULL};
    for (int q = 0; q < 2 && bes[q]; q++) {
      float *dm = put(bes[q], m, n), *out = fedc_buf_alloc(bes[q], (size_t)cols);
      assert_non_null(out);
      assert_int_equal(bes[q]->col_sum(bes[q], out, dm, rows, cols), 0);
      res[q] = get(bes[q], out, (size_t)cols);
      fedc_buf_free(bes[q], dm);
      fedc_buf_free(bes[q], out);
    }
    check_close("col_sum", res[0], want, (size_t)cols, TOL_SUM, 1.0);
    if (res[1]) check_close_f("col_sum vs cpu", res[0], res[1], (size_t)cols, TOL_SUM, 1.0);
    fedc_free(res[0]);
    fedc_free(res[1]);
    fedc_free(m);
  }
  fedc_backend_close(cpu);
  fedc_backend_close(be);
}

/* ---- loss heads ------------------------------------------------------------- */

typedef struct loss_out {
  float *dz, *scores;
  double loss;
  int64_t correct;
} loss_out;

static void loss_on(fedc_backend *be, fedc_loss_kind kind, const float *z, const float *y,
                    int32_t rows, int32_t cols, float scale, int with_dz, int with_scores,
                    loss_out *o) {
  size_t n = (size_t)rows * (size_t)cols;
  float *dz_ = put(be, z, n), *dy = put(be, y, (size_t)rows);
  float *ddz = with_dz ? fedc_buf_alloc(be, n) : NULL;
  o->scores = with_scores ? host_alloc((size_t)rows) : NULL; /* host: as fedc_evaluate */
  o->loss = 1.5;                                             /* the op adds to what is there */
  o->correct = 3;
  int rc = be->loss(be, kind, ddz, dz_, dy, rows, cols, scale, &o->loss, &o->correct, o->scores);
  if (rc != 0) print_message("loss: %s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  o->loss -= 1.5;
  o->correct -= 3;
  o->dz = with_dz ? get(be, ddz, n) : NULL;
  fedc_buf_free(be, dz_);
  fedc_buf_free(be, dy);
  fedc_buf_free(be, ddz);
}

static void loss_out_free(loss_out *o) {
  fedc_free(o->dz);
  fedc_free(o->scores);
}

static void check_loss(fedc_backend *be, fedc_backend *cpu, fedc_loss_kind kind, int32_t rows,
                       int32_t cols, fedc_rng *r) {
  size_t n = (size_t)rows * (size_t)cols;
  float *z = host_alloc(n), *y = host_alloc((size_t)rows);
  fill_normal(r, z, n);
  for (size_t i = 0; i < n; i++)
    z[i] *= 3.0f;
  for (int32_t i = 0; i < rows; i++)
    y[i] = kind == FEDC_LOSS_SOFTMAX_XENT  ? (float)fedc_rng_below(r, (uint64_t)cols)
           : kind == FEDC_LOSS_SIGMOID_BCE ? (float)fedc_rng_below(r, 2)
                                           : (float)fedc_rng_normal(r);
  const float scale = 1.0f / (float)rows;
  /* the loops: loss, gradient of scale * sum of losses, verdicts, scores */
  double loss = 0.0;
  int64_t correct = 0;
  double *dz = fedc_malloc_array(n, sizeof *dz), *sc = fedc_malloc_array((size_t)rows, sizeof *sc);
  assert_non_null(dz);
  assert_non_null(sc);
  for (int32_t i = 0; i < rows; i++) {
    const float *zi = z + (size_t)i * (size_t)cols;
    double *gi = dz + (size_t)i * (size_t)cols;
    if (kind == FEDC_LOSS_SOFTMAX_XENT) {
      int32_t label = (int32_t)y[i], arg = 0;
      double m = zi[0], sum = 0.0;
      for (int32_t j = 1; j < cols; j++)
        if (zi[j] > m) m = zi[j], arg = j;
      for (int32_t j = 0; j < cols; j++)
        sum += exp(zi[j] - m);
      for (int32_t j = 0; j < cols; j++)
        gi[j] = exp(zi[j] - m) / sum * scale;
      gi[label] -= scale;
      loss += log(sum) + m - zi[label];
      correct += arg == label;
    } else if (kind == FEDC_LOSS_SIGMOID_BCE) {
      double p = 1.0 / (1.0 + exp(-(double)zi[0]));
      loss += -(y[i] * log(p) + (1.0 - y[i]) * log1p(-p));
      gi[0] = (p - y[i]) * scale;
      correct += (p >= 0.5) == (y[i] >= 0.5f);
      sc[i] = p;
    } else {
      double e = (double)zi[0] - y[i];
      loss += e * e;
      gi[0] = 2.0 * e * scale;
      sc[i] = zi[0];
    }
  }
  const int with_scores = kind != FEDC_LOSS_SOFTMAX_XENT;
  char what[80];
  snprintf(what, sizeof what, "loss kind %d rows %d cols %d", (int)kind, (int)rows, (int)cols);
  for (int with_dz = 0; with_dz < 2; with_dz++) {
    loss_out o, ref = {0};
    loss_on(be, kind, z, y, rows, cols, scale, with_dz, with_scores, &o);
    check_scalar(what, o.loss, loss, TOL_SUM);
    assert_int_equal(o.correct, kind == FEDC_LOSS_MSE ? 0 : correct);
    if (with_dz) check_close(what, o.dz, dz, n, TOL_ELEM, scale);
    if (with_scores) check_close(what, o.scores, sc, (size_t)rows, TOL_ELEM, 1e-3);
    if (cpu) {
      loss_on(cpu, kind, z, y, rows, cols, scale, with_dz, with_scores, &ref);
      check_scalar(what, o.loss, ref.loss, TOL_SUM);
      assert_int_equal(o.correct, ref.correct);
      if (with_dz) check_close_f(what, o.dz, ref.dz, n, TOL_ELEM, scale);
      if (with_scores) check_close_f(what, o.scores, ref.scores, (size_t)rows, TOL_ELEM, 1e-3);
      loss_out_free(&ref);
    }
    loss_out_free(&o);
  }
  fedc_free(dz);
  fedc_free(sc);
  fedc_free(z);
  fedc_free(y);
}

static void test_loss(void **state) {
  fedc_backend *be = open_or_skip(state);
  fedc_backend *cpu = reference_for(be);
  fedc_rng r;
  fedc_rng_seed(&r, 7);
  const int32_t softmax_shapes[][2] = {{1, 2}, {37, 10}, {300, 1000}, {5, 33}, {2, 1}};
  for (size_t s = 0; s < sizeof softmax_shapes / sizeof *softmax_shapes; s++)
    check_loss(be, cpu, FEDC_LOSS_SOFTMAX_XENT, softmax_shapes[s][0], softmax_shapes[s][1], &r);
  const int32_t rows[] = {1, 37, 300};
  for (size_t s = 0; s < sizeof rows / sizeof *rows; s++) {
    check_loss(be, cpu, FEDC_LOSS_SIGMOID_BCE, rows[s], 1, &r);
    check_loss(be, cpu, FEDC_LOSS_MSE, rows[s], 1, &r);
  }
  fedc_backend_close(cpu);
  fedc_backend_close(be);
}

/* ---- regularization and the SGD step ------------------------------------------ */

static float sgn(float x) {
  return (float)((x > 0.0f) - (x < 0.0f));
}

static void test_reg_grad(void **state) {
  fedc_backend *be = open_or_skip(state);
  fedc_backend *cpu = reference_for(be);
  const float cfg[][3] = {{0, 0, 0}, {0.01f, 0, 0}, {0, 0.1f, 0}, {0.01f, 0.1f, 0.5f}};
  const size_t sizes[] = {1, 1001};
  fedc_rng r;
  fedc_rng_seed(&r, 8);
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
      size_t n = sizes[s];
      float l1 = cfg[c][0], l2 = cfg[c][1], mu = cfg[c][2];
      float *g = host_alloc(n), *w = host_alloc(n), *w0 = host_alloc(n);
      fill_normal(&r, g, n);
      fill_normal(&r, w, n);
      fill_normal(&r, w0, n);
      w[0] = 0.0f; /* sign(0) = 0 */
      double *want = fedc_malloc_array(n, sizeof *want);
      assert_non_null(want);
      for (size_t i = 0; i < n; i++)
        want[i] = (double)g[i] + (double)l2 * w[i] + (double)l1 * sgn(w[i]) +
                  (double)mu * ((double)w[i] - w0[i]);
      fedc_backend *bes[2] = {be, cpu};
      float *res[2] = {NULL, NULL};
      for (int q = 0; q < 2 && bes[q]; q++) {
        float *dg = put(bes[q], g, n), *dw = put(bes[q], w, n), *dw0 = put(bes[q], w0, n);
        assert_int_equal(bes[q]->reg_grad(bes[q], dg, dw, mu != 0.0f ? dw0 : NULL, n, l1, l2, mu),
                         0);
        res[q] = get(bes[q], dg, n);
        fedc_buf_free(bes[q], dg);
        fedc_buf_free(bes[q], dw);
        fedc_buf_free(bes[q], dw0);
      }
      check_close("reg_grad", res[0], want, n, TOL_ELEM, 1.0);
      if (res[1]) check_close_f("reg_grad vs cpu", res[0], res[1], n, TOL_ELEM, 1.0);
      fedc_free(res[0]);
      fedc_free(res[1]);
      fedc_free(want);
      fedc_free(g);
      fedc_free(w);
      fedc_free(w0);
    }
  fedc_backend_close(cpu);
  fedc_backend_close(be);
}

static void test_sgd_step(void **state) {
  fedc_backend *be = open_or_skip(state);
  fedc_backend *cpu = reference_for(be);
  /* lr, momentum, l1, l2, mu: plain (the fast path), then each term */
  const fedc_sgd_params cfg[] = {{0.1f, 0, 0, 0, 0},
                                 {0.1f, 0.9f, 0, 0, 0},
                                 {0.05f, 0.9f, 0, 0.01f, 0},
                                 {0.1f, 0, 0.001f, 0, 0.1f},
                                 {0.02f, 0.5f, 0.001f, 0.01f, 0.2f}};
  const size_t sizes[] = {1, 1001, 100003};
  fedc_rng r;
  fedc_rng_seed(&r, 9);
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
      const size_t n = sizes[s];
      const fedc_sgd_params *p = &cfg[c];
      float *w = host_alloc(n), *g = host_alloc(n), *v = host_alloc(n), *w0 = host_alloc(n);
      fill_normal(&r, w, n);
      fill_normal(&r, g, n);
      fill_normal(&r, v, n);
      fill_normal(&r, w0, n);
      w[0] = 0.0f;
      /* two steps with the same gradient, in double */
      double *ww = fedc_malloc_array(n, sizeof *ww), *vv = fedc_malloc_array(n, sizeof *vv);
      assert_non_null(ww);
      assert_non_null(vv);
      for (size_t i = 0; i < n; i++)
        ww[i] = w[i], vv[i] = v[i];
      for (int step = 0; step < 2; step++)
        for (size_t i = 0; i < n; i++) {
          double wi = ww[i];
          double gi =
              g[i] + p->l2 * wi + p->l1 * (double)sgn((float)wi) + p->prox_mu * (wi - w0[i]);
          if (p->momentum != 0.0f) gi = vv[i] = p->momentum * vv[i] + gi;
          ww[i] = wi - p->lr * gi;
        }
      fedc_backend *bes[2] = {be, cpu};
      float *rw[2] = {NULL, NULL}, *rv[2] = {NULL, NULL};
      for (int q = 0; q < 2 && bes[q]; q++) {
        fedc_backend *b = bes[q];
        float *dw = put(b, w, n), *dg = put(b, g, n), *dv = put(b, v, n), *dw0 = put(b, w0, n);
        for (int step = 0; step < 2; step++)
          assert_int_equal(b->sgd_step(b, dw, dg, p->momentum != 0.0f ? dv : NULL,
                                       p->prox_mu != 0.0f ? dw0 : NULL, n, p),
                           0);
        rw[q] = get(b, dw, n);
        rv[q] = get(b, dv, n);
        fedc_buf_free(b, dw);
        fedc_buf_free(b, dg);
        fedc_buf_free(b, dv);
        fedc_buf_free(b, dw0);
      }
      char what[64];
      snprintf(what, sizeof what, "sgd_step case %zu n %zu", c, n);
      check_close(what, rw[0], ww, n, TOL_ELEM, 1.0);
      check_close(what, rv[0], vv, n, TOL_ELEM, 1.0); /* untouched without momentum */
      if (rw[1]) {
        check_close_f(what, rw[0], rw[1], n, TOL_ELEM, 1.0);
        check_close_f(what, rv[0], rv[1], n, TOL_ELEM, 1.0);
      }
      for (int q = 0; q < 2; q++) {
        fedc_free(rw[q]);
        fedc_free(rv[q]);
      }
      fedc_free(ww);
      fedc_free(vv);
      fedc_free(w);
      fedc_free(g);
      fedc_free(v);
      fedc_free(w0);
    }
  fedc_backend_close(cpu);
  fedc_backend_close(be);
}

/* ---- reductions ------------------------------------------------------------------ */

static void test_sums(void **state) {
  fedc_backend *be = open_or_skip(state);
  const size_t sizes[] = {0, 1, 1000, ((size_t)1 << 20) + 3};
  fedc_rng r;
  fedc_rng_seed(&r, 10);
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    size_t n = sizes[s];
    float *x = host_alloc(n);
    fill_normal(&r, x, n);
    double ss = 0.0, sa = 0.0;
    for (size_t i = 0; i < n; i++) {
      ss += (double)x[i] * x[i];
      sa += fabs((double)x[i]);
    }
    float *d = put(be, x, n);
    double got_ss = -1.0, got_sa = -1.0;
    assert_int_equal(be->sumsq(be, d, n, &got_ss), 0);
    assert_int_equal(be->sum_abs(be, d, n, &got_sa), 0);
    check_scalar("sumsq", got_ss, ss, TOL_DOUBLE);
    check_scalar("sum_abs", got_sa, sa, TOL_DOUBLE);
    fedc_buf_free(be, d);
    fedc_free(x);
  }
  fedc_backend_close(be);
}

/* ---- training ----------------------------------------------------------------------- */

#define T_ROWS 500
#define T_IN 20
#define T_CLASSES 4

/* Rows labelled by a random linear teacher, so that there is something to learn. */
static void make_task(float *x, float *y, int binary) {
  fedc_rng r;
  fedc_rng_seed(&r, 12);
  float teacher[T_CLASSES][T_IN];
  for (int c = 0; c < T_CLASSES; c++)
    fill_normal(&r, teacher[c], T_IN);
  fill_normal(&r, x, (size_t)T_ROWS * T_IN);
  for (int i = 0; i < T_ROWS; i++) {
    int best = 0;
    double bv = -INFINITY;
    for (int c = 0; c < (binary ? 2 : T_CLASSES); c++) {
      double s = 0.0;
      for (int j = 0; j < T_IN; j++)
        s += (double)teacher[c][j] * x[(size_t)i * T_IN + j];
      if (s > bv) bv = s, best = c;
    }
    y[i] = (float)best;
  }
}

typedef struct run_out {
  float *w;
  fedc_train_stats st;
  fedc_eval_sums before, after;
  float *scores;
  double obj;
  float *grad;
} run_out;

/*
 * On one backend: the objective's gradient at the initial weights, a local
 * run (momentum, L1, L2, FedProx; the last batch smaller than the others),
 * and evaluations before and after (with scores for a binary model).
 */
static void run_on(fedc_backend *be, const fedc_model_spec *spec, const float *x, const float *y,
                   run_out *o) {
  size_t np = fedc_model_n_params(spec);
  fedc_data_view v;
  assert_int_equal(fedc_data_view_open(be, x, y, T_ROWS, T_IN, &v), 0);
  fedc_trainer *t;
  assert_int_equal(fedc_trainer_new(be, spec, 64, &t), 0);
  float *w0 = host_alloc(np);
  fedc_model_init(spec, 7, w0);
  o->w = host_alloc(np);
  memcpy(o->w, w0, np * sizeof *w0);
  o->grad = host_alloc(np);
  o->scores = spec->type == FEDC_MODEL_LOGREG ? host_alloc(T_ROWS) : NULL;
  int64_t rows[T_ROWS];
  for (int i = 0; i < T_ROWS; i++)
    rows[i] = (i * 7) % T_ROWS; /* a permutation */
  /* the objective with a displaced anchor, so the prox term is not zero */
  float *anchor = host_alloc(np);
  for (size_t i = 0; i < np; i++)
    anchor[i] = w0[i] * 0.5f;
  assert_int_equal(fedc_model_loss_grad(t, w0, anchor, 0.1f, &v, rows, 64, &o->obj, o->grad), 0);
  memset(&o->before, 0, sizeof o->before);
  memset(&o->after, 0, sizeof o->after);
  assert_int_equal(fedc_evaluate(t, w0, &v, 0, T_ROWS, &o->before, NULL), 0);
  fedc_train_params p = {
      .epochs = 2, .batch_size = 32, .lr = 0.05f, .momentum = 0.9f, .prox_mu = 0.01f};
  fedc_rng r;
  fedc_rng_seed(&r, 11);
  memset(&o->st, 0, sizeof o->st);
  int rc = fedc_train_local(t, &p, &v, rows, T_ROWS, &r, o->w, &o->st);
  if (rc != 0) print_message("train: %s\n", fedc_error_msg());
  assert_int_equal(rc, 0);
  assert_int_equal(fedc_evaluate(t, o->w, &v, 0, T_ROWS, &o->after, o->scores), 0);
  fedc_free(anchor);
  fedc_free(w0);
  fedc_trainer_free(t);
  fedc_data_view_close(be, &v);
}

static void run_free(run_out *o) {
  fedc_free(o->w);
  fedc_free(o->grad);
  fedc_free(o->scores);
}

static void check_training(void **state, fedc_model_type type) {
  int64_t live = fedc_alloc_live();
  fedc_backend *be = open_or_skip(state);
  const int binary = type == FEDC_MODEL_LOGREG;
  fedc_model_spec spec = {.type = type,
                          .n_in = T_IN,
                          .n_out = binary ? 1 : T_CLASSES,
                          .n_hidden = type == FEDC_MODEL_MLP ? 2 : 0,
                          .hidden = {16, 8},
                          .l1 = 1e-4f,
                          .l2 = 1e-3f};
  size_t np = fedc_model_n_params(&spec);
  float *x = host_alloc((size_t)T_ROWS * T_IN), *y = host_alloc(T_ROWS);
  make_task(x, y, binary);
  run_out o;
  run_on(be, &spec, x, y, &o);
  /* on every backend: training learned (the loss down by a tenth, a tenth
   * more of the rows right; the CPU goes 1.45 -> 0.39 for softmax, 1.42 ->
   * 1.20 for the MLP, 0.74 -> 0.21 for logreg) */
  assert_int_equal(o.st.seen, 2 * T_ROWS);
  assert_int_equal(o.st.steps, 2 * ((T_ROWS + 31) / 32));
  assert_true(o.after.loss_sum < 0.9 * o.before.loss_sum);
  assert_true(o.after.correct > o.before.correct + T_ROWS / 10);
  if (be->device == FEDC_DEVICE_CPU) {
    run_out again; /* the CPU reference is deterministic */
    run_on(be, &spec, x, y, &again);
    assert_memory_equal(again.w, o.w, np * sizeof *o.w);
    assert_memory_equal(again.grad, o.grad, np * sizeof *o.grad);
    run_free(&again);
  } else {
    fedc_backend *cpu = reference_for(be);
    run_out ref;
    run_on(cpu, &spec, x, y, &ref);
    check_scalar("objective", o.obj, ref.obj, TOL_SUM);
    check_close_f("gradient", o.grad, ref.grad, np, TOL_SUM, 1e-2);
    check_close_f("trained weights", o.w, ref.w, np, TOL_TRAIN, 0.1);
    check_scalar("train loss", o.st.loss_sum, ref.st.loss_sum, TOL_SUM);
    /* a prediction within float rounding of a tie may go either way */
    assert_true(llabs((long long)(o.st.correct - ref.st.correct)) <= 2);
    check_scalar("eval loss", o.after.loss_sum, ref.after.loss_sum, TOL_SUM);
    assert_true(llabs((long long)(o.after.correct - ref.after.correct)) <= 2);
    assert_int_equal(o.after.n, ref.after.n);
    if (binary) check_close_f("scores", o.scores, ref.scores, T_ROWS, TOL_SUM, 1e-2);
    run_free(&ref);
    fedc_backend_close(cpu);
  }
  run_free(&o);
  fedc_free(x);
  fedc_free(y);
  fedc_backend_close(be);
  assert_int_equal(fedc_alloc_live(), live);
}

static void test_train_softmax(void **state) {
  check_training(state, FEDC_MODEL_SOFTMAX);
}
static void test_train_mlp(void **state) {
  check_training(state, FEDC_MODEL_MLP);
}
static void test_train_logreg(void **state) {
  check_training(state, FEDC_MODEL_LOGREG);
}

/* ---- opening, and the CUDA backend's errors ------------------------------------------ */

/*
 * What the skips above rest on: without the CUDA module (libfedc-cuda.so),
 * or without a device, opening the CUDA backend is FEDC_EUNSUPPORTED with a
 * message that says which. With a device, a bad call comes back as FEDC_EBACKEND with cuBLAS's
 * words, and the backend keeps working.
 */
static void test_cuda_open(void **state) {
  (void)state;
  fedc_backend *be = NULL;
  int rc = fedc_backend_open(FEDC_DEVICE_CUDA, &be);
  if (!fedc_backend_available(FEDC_DEVICE_CUDA)) {
    assert_int_equal(rc, FEDC_EUNSUPPORTED);
    assert_null(be);
    /* not installed, or a module left from a build of another ABI */
    assert_true(strstr(fedc_error_msg(), "device = cuda: the CUDA module libfedc-cuda.so ") != NULL ||
                (strstr(fedc_error_msg(), "device = cuda: the CUDA module ") != NULL &&
                 strstr(fedc_error_msg(), "was built for another version of fedc") != NULL));
    print_message("no CUDA module: %s\n", fedc_error_msg());
    return;
  }
  if (rc != 0) {
    assert_int_equal(rc, FEDC_EUNSUPPORTED);
    assert_null(be);
    assert_non_null(
        strstr(fedc_error_msg(), "device = cuda: no CUDA device is present (cudaGetDeviceCount: "));
    print_message("CUDA module, no device: %s\n", fedc_error_msg());
    return;
  }
  assert_string_equal(be->name, "cuda");
  float *a = fedc_buf_alloc(be, 16), *c = fedc_buf_alloc(be, 16);
  assert_non_null(a);
  assert_non_null(c);
  /* lda = 0 is not a leading dimension cuBLAS accepts */
  rc = be->gemm(be, 0, 0, 4, 4, 4, 1.0f, a, 0, a, 4, 0.0f, c, 4);
  assert_int_equal(rc, FEDC_EBACKEND);
  assert_non_null(strstr(fedc_error_msg(), "cublas: sgemm"));
  assert_int_equal(be->gemm(be, 0, 0, 4, 4, 4, 1.0f, a, 4, a, 4, 0.0f, c, 4), 0);
  double ss = -1.0;
  assert_int_equal(be->sumsq(be, c, 16, &ss), 0);
  assert_true(ss == 0.0);
  fedc_buf_free(be, a);
  fedc_buf_free(be, c);
  fedc_backend_close(be);
}

/* clang-format off */
#define ON_BOTH(fn) \
  {#fn "/cpu", fn, NULL, NULL, &dev_cpu}, {#fn "/cuda", fn, NULL, NULL, &dev_cuda}
/* clang-format on */

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cuda_open),
      ON_BOTH(test_memory),
      ON_BOTH(test_gemm),
      ON_BOTH(test_gather),
      ON_BOTH(test_add_bias),
      ON_BOTH(test_relu),
      ON_BOTH(test_col_sum),
      ON_BOTH(test_loss),
      ON_BOTH(test_reg_grad),
      ON_BOTH(test_sgd_step),
      ON_BOTH(test_sums),
      ON_BOTH(test_train_softmax),
      ON_BOTH(test_train_mlp),
      ON_BOTH(test_train_logreg),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
