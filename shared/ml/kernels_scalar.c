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

static void scalar_gemm_nt(int m, int n, int k, float alpha, const float *a,
                           int lda, const float *b, int ldb, float beta,
                           float *c, int ldc) {
  for (int i = 0; i < m; i++) {
    const float *ai = a + (size_t)i * lda;
    float *ci = c + (size_t)i * ldc;
    for (int j = 0; j < n; j++) {
      float s = alpha * dot(ai, b + (size_t)j * ldb, k);
      ci[j] = beta == 0.0f ? s : s + beta * ci[j];
    }
  }
}

/* Rank-1 updates of C's rows, four rows of B at a time. */
static void scalar_gemm_tn(int m, int n, int k, float alpha, const float *a,
                           int lda, const float *bm, int ldb, float beta,
                           float *c, int ldc) {
  for (int i = 0; i < m; i++) {
    float *ci = c + (size_t)i * ldc;
    if (beta == 0.0f) memset(ci, 0, (size_t)n * sizeof(float));
    else if (beta != 1.0f)
      for (int j = 0; j < n; j++) ci[j] *= beta;
  }
  int p = 0;
  for (; p + 4 <= k; p += 4) {
    const float *b0 = bm + (size_t)p * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb,
                *b3 = b2 + ldb;
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
    const float *b0 = bm + (size_t)p * ldb;
    for (int i = 0; i < m; i++) {
      const float x0 = alpha * a[(size_t)p * lda + i];
      float *ci = c + (size_t)i * ldc;
      for (int j = 0; j < n; j++) ci[j] += x0 * b0[j];
    }
  }
}

const fedc_kernels fedc_kernels_scalar = {FEDC_CPU_SCALAR, scalar_gemm_nt, scalar_gemm_tn,
                                          fold_convert,    fold_add,       FEDC_KERNELS_ELEM};
