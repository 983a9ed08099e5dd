/*
 * kernels.h - the hot CPU kernels, in one table per instruction-set variant
 * (base/cpu.h chooses which): the skinny matrix products of models with few
 * outputs (softmax and logistic regression, an MLP's last layer), where
 * OpenBLAS spends more time packing operands than multiplying, FedAvg's
 * fixed-point fold, and the backend's elementwise ops. kernels_scalar.c is the reference every other variant
 * is tested against (tests/unit/test_cpu_variants.c); kernels_avx2.c,
 * kernels_avx512.c and kernels_neon.c are compiled with their own flags
 * (Makefile) and blocked for their own register files (kernels_simd.h).
 *
 * Matrices are row-major. Every variant gives the same bits for the same
 * inputs on every call and thread; variants differ from one another in
 * the last bits, as their sums are ordered differently.
 */
#ifndef FEDC_ML_KERNELS_H
#define FEDC_ML_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "base/cpu.h"

/* The most outputs the small products take: n of gemm_nt, m of gemm_tn
 * (any, in a variant with `wide` set, up to FEDC_KERNEL_BATCH rows). */
#define FEDC_KERNEL_SMALL 16
/* The longest rows gemm_nt_u8 takes (k). */
#define FEDC_KERNEL_U8_MAXK 8192
/* The largest minibatch (m of gemm_nt, k of gemm_tn) for which a variant
 * with `wide` set takes products of any width: an MLP's layers at batch
 * 32, where OpenBLAS reaches 60-75% of what these kernels do (bench/kernels.c). */
#define FEDC_KERNEL_BATCH 64

typedef struct fedc_kernels {
  fedc_cpu_variant variant;
  /* C (m x n) = alpha A B^T + beta C, n <= FEDC_KERNEL_SMALL; A is m x k
   * (lda), B is n x k (ldb). beta == 0 never reads C. */
  void (*gemm_nt)(int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);
  /* C (m x n) = alpha A^T B + beta C, m <= FEDC_KERNEL_SMALL; A is k x m
   * (lda), B is k x n (ldb). beta == 0 never reads C. */
  void (*gemm_tn)(int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);
  /* FedAvg's conversion to fixed point: q[i] = nearbyint(w[i] 2^frac) for
   * every i, after checking that each |w[i]| < limit (and is finite);
   * returns the index of the first weight that is not, or n when all are
   * (q is then complete; otherwise q's contents are unspecified). */
  size_t (*fx_convert)(int64_t *q, const float *w, size_t n, double scale,
                       double limit);
  /* acc[i] += m q[i] in 128-bit integers: exact, so any order gives the
   * same sum. */
  void (*fx_fold)(__int128 *acc, const int64_t *q, size_t n, int64_t m);
  /* the CPU backend's elementwise ops (backend.h says what each does),
   * compiled for the variant: kernels_elem.h */
  void (*add_bias)(float *z, const float *bias, int32_t rows, int32_t cols);
  void (*relu)(float *a, const float *z, size_t n);
  void (*relu_backward)(float *dz, const float *da, const float *a, size_t n);
  void (*col_sum)(float *out, const float *m, int32_t rows, int32_t cols);
  void (*sgd_step)(float *w, const float *g, float *v, const float *w0, size_t n,
                   float lr, float momentum, float l1, float l2, float prox_mu);
  /* gemm_nt with row i of A at a + rows[i] lda: a minibatch's rows read
   * where they lie in the data set instead of gathered first; the same
   * sums, to the bit, as gemm_nt on the gathered rows. */
  void (*gemm_nt_rows)(int m, int n, int k, float alpha, const float *a, int lda,
                       const int64_t *rows, const float *b, int ldb, float beta, float *c,
                       int ldc);
  /* gemm_tn with row p of B at b + rows[p] ldb (p < k), likewise. */
  void (*gemm_tn_rows)(int m, int n, int k, float alpha, const float *a, int lda,
                       const float *b, int ldb, const int64_t *rows, float beta, float *c,
                       int ldc);
  /* A data set stored as bytes, each b standing for b / 255.0f (the IDX
   * loader's pixels; kernels_u8.h): dst[i] = src[i] / 255.0f exactly. */
  void (*unpack_u8)(float *dst, const uint8_t *src, size_t n);
  /* gemm_nt with A's rows as such bytes (lda bytes apart), k <=
   * FEDC_KERNEL_U8_MAXK: the same bits as gemm_nt on the unpacked rows. */
  void (*gemm_nt_u8)(int m, int n, int k, float alpha, const uint8_t *a, int lda,
                     const float *b, int ldb, float beta, float *c, int ldc);
  /* 1 when gemm_nt and gemm_tn are blocked well enough for wide products
   * (any n of gemm_nt, m of gemm_tn) to beat OpenBLAS at a minibatch of at
   * most FEDC_KERNEL_BATCH rows; 0 for the scalar reference */
  int wide;
  /* C (m x n) = alpha A B + beta C, A m x k (lda), B k x n (ldb); taken
   * from a variant with wide for m <= FEDC_KERNEL_BATCH (dZ W at a
   * minibatch); beta == 0 never reads C. */
  void (*gemm_nn)(int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);
} fedc_kernels;

/* The table of the variant in use (fedc_cpu_current()). */
const fedc_kernels *fedc_kernels_get(void);

/* The table of variant v, or NULL when this build has none (the CPU may
 * still lack it: see fedc_cpu_supported). */
const fedc_kernels *fedc_kernels_for(fedc_cpu_variant v);

/* the tables, defined by kernels_<variant>.c where the build has them */
extern const fedc_kernels fedc_kernels_scalar;
extern const fedc_kernels fedc_kernels_avx2;
extern const fedc_kernels fedc_kernels_avx512;
extern const fedc_kernels fedc_kernels_neon;

#endif
