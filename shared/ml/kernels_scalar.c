/*
 * kernels_scalar.c - the reference kernel variant (kernels.h): plain C
 * compiled with the build's baseline flags, on every CPU. The other
 * variants are checked against it. Dot products keep eight partial sums
 * (lane p % 8), so the compiler may still use the baseline's SSE2, and
 * the order of the sums is fixed.
 */
#include <string.h>

#include "ml/kernels.h"
#include "ml/kernels_elem.h"
#include "ml/kernels_fold.h"

static float dot(const float *x, const float *y, int k) {
  float s[8] = {0};
  int p = 0;
  for (; p + 8 <= k; p += 8)
    for (int l = 0; l < 8; l++) s[l] += x[p + l] * y[p + l];
  for (int l = 0; p < k; p++, l++) s[l] += x[p] * y[p];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Row r of (base, ld), or row ix[r] when ix is not NULL (the *_rows
 * kernels). */
static inline const float *row_ptr(const float *base, int ld, const int64_t *ix, int r) {
  return ix ? base + ix[r] * (int64_t)ld : base + (size_t)r * ld;
}

static void nt_any(int m, int n, int k, float alpha, const float *a, int lda,
                   const int64_t *ix, const float *b, int ldb, float beta, float *c,
                   int ldc) {
  for (int i = 0; i < m; i++) {
    const float *ai = row_ptr(a, lda, ix, i);
    float *ci = c + (size_t)i * ldc;
    for (int j = 0; j < n; j++) {
      float s = alpha * dot(ai, b + (size_t)j * ldb, k);
      ci[j] = beta == 0.0f ? s : s + beta * ci[j];
    }
  }
}

static void scalar_gemm_nt(int m, int n, int k, float alpha, const float *a,
                           int lda, const float *b, int ldb, float beta,
                           float *c, int ldc) {
  nt_any(m, n, k, alpha, a, lda, NULL, b, ldb, beta, c, ldc);
}

static void scalar_gemm_nt_rows(int m, int n, int k, float alpha, const float *a, int lda,
                                const int64_t *rows, const float *b, int ldb, float beta,
                                float *c, int ldc) {
  nt_any(m, n, k, alpha, a, lda, rows, b, ldb, beta, c, ldc);
}

/* Rank-1 updates of C's rows, four rows of B at a time. */
static void tn_any(int m, int n, int k, float alpha, const float *a, int lda,
                   const float *bm, int ldb, const int64_t *ix, float beta, float *c,
                   int ldc) {
  for (int i = 0; i < m; i++) {
    float *ci = c + (size_t)i * ldc;
    if (beta == 0.0f) memset(ci, 0, (size_t)n * sizeof(float));
    else if (beta != 1.0f)
      for (int j = 0; j < n; j++) ci[j] *= beta;
  }
  int p = 0;
  for (; p + 4 <= k; p += 4) {
    const float *b0 = row_ptr(bm, ldb, ix, p), *b1 = row_ptr(bm, ldb, ix, p + 1),
                *b2 = row_ptr(bm, ldb, ix, p + 2), *b3 = row_ptr(bm, ldb, ix, p + 3);
    for (int i = 0; i < m; i++) {
      const float x0 = alpha * a[(size_t)p * lda + i],
                  x1 = alpha * a[(size_t)(p + 1) * lda + i],
                  x2 = alpha * a[(size_t)(p + 2) * lda + i],
                  x3 = alpha * a[(size_t)(p + 3) * lda + i];
      float *ci = c + (size_t)i * ldc;
      for (int j = 0; j < n; j++)
        ci[j] += x0 * b0[j] + x1 * b1[j] + x2 * b2[j] + x3 * b3[j];
    }
  }
  for (; p < k; p++) {
    const float *b0 = row_ptr(bm, ldb, ix, p);
    for (int i = 0; i < m; i++) {
      const float x0 = alpha * a[(size_t)p * lda + i];
      float *ci = c + (size_t)i * ldc;
      for (int j = 0; j < n; j++) ci[j] += x0 * b0[j];
    }
  }
}

static void scalar_gemm_tn(int m, int n, int k, float alpha, const float *a,
                           int lda, const float *bm, int ldb, float beta,
                           float *c, int ldc) {
  tn_any(m, n, k, alpha, a, lda, bm, ldb, NULL, beta, c, ldc);
}

static void scalar_gemm_tn_rows(int m, int n, int k, float alpha, const float *a, int lda,
                                const float *bm, int ldb, const int64_t *rows, float beta,
                                float *c, int ldc) {
  tn_any(m, n, k, alpha, a, lda, bm, ldb, rows, beta, c, ldc);
}

/* C = alpha A B + beta C by rows of B (the reference for gemm_nn). */
static void scalar_gemm_nn(int m, int n, int k, float alpha, const float *a, int lda,
                           const float *bm, int ldb, float beta, float *c, int ldc) {
  for (int i = 0; i < m; i++) {
    float *ci = c + (size_t)i * ldc;
    if (beta == 0.0f) memset(ci, 0, (size_t)n * sizeof(float));
    else if (beta != 1.0f)
      for (int j = 0; j < n; j++) ci[j] *= beta;
    for (int p = 0; p < k; p++) {
      const float x = alpha * a[(size_t)i * lda + p], *bp = bm + (size_t)p * ldb;
      for (int j = 0; j < n; j++) ci[j] += x * bp[j];
    }
  }
}

#define U8_GEMM_NT scalar_gemm_nt
#include "ml/kernels_u8.h"

const fedc_kernels fedc_kernels_scalar = {FEDC_CPU_SCALAR,     scalar_gemm_nt,
                                          scalar_gemm_tn,      fold_convert,
                                          fold_add,            FEDC_KERNELS_ELEM,
                                          scalar_gemm_nt_rows, scalar_gemm_tn_rows,
                                          u8_unpack,           u8_gemm_nt,
                                          0,                   scalar_gemm_nn};
