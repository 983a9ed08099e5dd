/*
 * kernels_simd.h - the skinny products (kernels.h) written once over a
 * vector type, for kernels_avx2.c, kernels_avx512.c and kernels_neon.c to
 * include after defining, for their instruction set:
 *
 *   V, VL                 the vector type and its floats
 *   V_ZERO() V_LOADU(p) V_STOREU(p, v) V_SET1(x) V_FMA(a, b, c) (a b + c)
 *   V_MUL(a, b) V_HSUM(v) (the sum of the lanes, in a fixed order)
 *   V_HSUM4(a, b, c, d, out)   out[0..3] = the lane sums of a, b, c, d
 *   V_LOAD_PART(p, cnt)   (optional) cnt < VL floats, the other lanes 0
 *   V_STORE_PART(p, v, cnt)   (optional) store v's first cnt < VL lanes
 *   NT_R, NT_N            gemm_nt's block: NT_R rows of A by NT_N outputs
 *   TN_R, TN_C            gemm_tn's block: TN_R rows of C by TN_C vectors
 *   SIMD_TABLE, SIMD_VARIANT   the table's name and variant
 *
 * Block sizes are chosen for the register file: a block's accumulators,
 * plus its operands, must fit in the vector registers (16 on AVX2, 32 on
 * AVX-512 and NEON), or the compiler spills them to the stack at every step.
 * Blocks are instantiated with constant sizes (always_inline and a switch),
 * so their loops unroll and the accumulators live in registers.
 */
#ifndef FEDC_ML_KERNELS_SIMD_H
#define FEDC_ML_KERNELS_SIMD_H

#include <string.h>

#include "ml/kernels.h"
#include "ml/kernels_elem.h"
#include "ml/kernels_fold.h"

#define INL static inline __attribute__((always_inline))

/* The last k % VL floats of a row, zero-padded to a vector: a masked load
 * where the instruction set has one (V_LOAD_PART), else through a copy. */
INL V load_part(const float *p, int cnt) {
#ifdef V_LOAD_PART
  return V_LOAD_PART(p, cnt);
#endif
  float t[VL] __attribute__((aligned(64)));
  memset(t, 0, sizeof t);
  memcpy(t, p, (size_t)cnt * sizeof(float));
  return V_LOADU(t);
}

/* Store the first cnt < VL lanes of v: masked where the instruction set
 * can (V_STORE_PART), else through a copy. */
INL void store_part(float *p, V v, int cnt) {
#ifdef V_STORE_PART
  V_STORE_PART(p, v, cnt);
  return;
#endif
  float t[VL] __attribute__((aligned(64)));
  V_STOREU(t, v);
  memcpy(p, t, (size_t)cnt * sizeof(float));
}

/* Row r of a row-major operand (base, ld): row r itself, or row ix[r] when
 * the rows are read through an index (the *_rows kernels, kernels.h). */
INL const float *row_ptr(const float *base, int ld, const int64_t *ix, int r) {
  return ix ? base + ix[r] * (int64_t)ld : base + (size_t)r * ld;
}

/*
 * gemm_nt: C = alpha A B^T + beta C, as R x NB dot products over k at once:
 * each step loads R vectors of A and NB of B (all contiguous in k) for
 * R NB multiply-adds; the lanes are summed once at the end. No packing.
 */
INL void nt_block(const int R, const int NB, int k, const float *a, int lda,
                  const int64_t *ix, const float *b, int ldb, float alpha, float beta, float *c,
                  int ldc) {
  V acc[NT_R][NT_N];
  for (int r = 0; r < R; r++)
    for (int j = 0; j < NB; j++) acc[r][j] = V_ZERO();
  int p = 0;
  for (; p + VL <= k; p += VL) {
    V x[NT_R];
    for (int r = 0; r < R; r++) x[r] = V_LOADU(row_ptr(a, lda, ix, r) + p);
    for (int j = 0; j < NB; j++) {
      V bj = V_LOADU(b + (size_t)j * ldb + p);
      for (int r = 0; r < R; r++) acc[r][j] = V_FMA(x[r], bj, acc[r][j]);
    }
  }
  if (p < k) {
    V x[NT_R];
    for (int r = 0; r < R; r++) x[r] = load_part(row_ptr(a, lda, ix, r) + p, k - p);
    for (int j = 0; j < NB; j++) {
      V bj = load_part(b + (size_t)j * ldb + p, k - p);
      for (int r = 0; r < R; r++) acc[r][j] = V_FMA(x[r], bj, acc[r][j]);
    }
  }
  /* the lanes summed four accumulators at a time (V_HSUM4's pairwise
   * adds), the rest one by one */
  for (int r = 0; r < R; r++) {
    float sum[NT_N + 3];
    int j = 0;
    for (; j + 4 <= NB; j += 4)
      V_HSUM4(acc[r][j], acc[r][j + 1], acc[r][j + 2], acc[r][j + 3], sum + j);
    for (; j < NB; j++) sum[j] = V_HSUM(acc[r][j]);
    float *cr = c + (size_t)r * ldc;
    for (j = 0; j < NB; j++)
      cr[j] = beta == 0.0f ? alpha * sum[j] : alpha * sum[j] + beta * cr[j];
  }
}

#define NT_CASE(R, NB)                                                       \
  case NB:                                                                   \
    nt_block(R, NB, k, a, lda, ix, b, ldb, alpha, beta, c, ldc);             \
    break;

INL void nt_rows(const int R, int nb, int k, const float *a, int lda,
                 const int64_t *ix, const float *b, int ldb, float alpha, float beta, float *c,
                 int ldc) {
  switch (nb) {
    NT_CASE(R, 1)
#if NT_N >= 2
    NT_CASE(R, 2)
#endif
#if NT_N >= 3
    NT_CASE(R, 3)
#endif
#if NT_N >= 4
    NT_CASE(R, 4)
#endif
#if NT_N >= 5
    NT_CASE(R, 5)
#endif
#if NT_N >= 6
    NT_CASE(R, 6)
#endif
#if NT_N >= 7
    NT_CASE(R, 7)
#endif
#if NT_N >= 8
    NT_CASE(R, 8)
#endif
  default:
    break;
  }
}

/* Rows: the remaining m % NT_R as one shorter block. */
INL void nt_tail_rows(int rows, int nb, int k, const float *a, int lda,
                      const int64_t *ix, const float *b, int ldb, float alpha, float beta,
                         float *c, int ldc) {
  switch (rows) {
  case 1:
    nt_rows(1, nb, k, a, lda, ix, b, ldb, alpha, beta, c, ldc);
    break;
#if NT_R > 2
  case 2:
    nt_rows(2, nb, k, a, lda, ix, b, ldb, alpha, beta, c, ldc);
    break;
#endif
#if NT_R > 3
  case 3:
    nt_rows(3, nb, k, a, lda, ix, b, ldb, alpha, beta, c, ldc);
    break;
#endif
  default:
    for (int i = 0; i < rows; i++)
      nt_rows(1, nb, k, ix ? a : a + (size_t)i * lda, lda, ix ? ix + i : NULL, b, ldb, alpha,
              beta, c + (size_t)i * ldc, ldc);
    break;
  }
}

/* Rows NT_R at a time (each block of A read from memory once, then from
 * L1 for every chunk of outputs); outputs in as few chunks of at most NT_N
 * as can be, of even sizes (10 outputs by 4: 4, 3, 3, not 4, 4, 2). */
INL void nt_all(int m, int n, int k, float alpha, const float *a, int lda,
                const int64_t *ix, const float *b, int ldb, float beta, float *c,
                int ldc) {
  const int chunks = (n + NT_N - 1) / NT_N;
  for (int i = 0; i < m; i += NT_R) {
    const float *ai = ix ? a : a + (size_t)i * lda;
    const int64_t *ixi = ix ? ix + i : NULL;
    float *ci = c + (size_t)i * ldc;
    for (int q = 0, j = 0; q < chunks; q++) {
      int nb = n / chunks + (q < n % chunks);
      if (i + NT_R <= m)
        nt_rows(NT_R, nb, k, ai, lda, ixi, b + (size_t)j * ldb, ldb, alpha, beta, ci + j, ldc);
      else
        nt_tail_rows(m - i, nb, k, ai, lda, ixi, b + (size_t)j * ldb, ldb, alpha, beta, ci + j,
                     ldc);
      j += nb;
    }
  }
}

static void simd_gemm_nt(int m, int n, int k, float alpha, const float *a,
                         int lda, const float *b, int ldb, float beta,
                         float *c, int ldc) {
  nt_all(m, n, k, alpha, a, lda, NULL, b, ldb, beta, c, ldc);
}

/* gemm_nt with A's rows read through rows[] (kernels.h): the same sums. */
static void simd_gemm_nt_rows(int m, int n, int k, float alpha, const float *a,
                              int lda, const int64_t *rows, const float *b, int ldb,
                              float beta, float *c, int ldc) {
  nt_all(m, n, k, alpha, a, lda, rows, b, ldb, beta, c, ldc);
}

/*
 * gemm_tn: C = alpha A^T B + beta C (a weight gradient dZ^T X), as a block
 * of RB rows by CV vectors of C held in registers over the whole of k: each
 * step loads CV vectors of one row of B and broadcasts RB floats of A, for
 * RB CV multiply-adds. C is read (beta != 0) and written once.
 */
/* Element (p, r) of gemm_tn's A (k x m), or with nn of gemm_nn's A (m x k)
 * read as its transpose: the broadcasts are single loads either way. */
INL float a_at(const float *a, int lda, const int nn, int p, int r) {
  return nn ? a[(size_t)r * lda + p] : a[(size_t)p * lda + r];
}

INL void tn_block(const int RB, const int CV, int k, const float *a, int lda, const int nn,
                  const float *b, int ldb, const int64_t *ix, float alpha, float beta, float *c,
                  int ldc) {
  V acc[TN_R][TN_C];
  for (int r = 0; r < RB; r++)
    for (int v = 0; v < CV; v++) acc[r][v] = V_ZERO();
  for (int p = 0; p < k; p++) {
    const float *bp = row_ptr(b, ldb, ix, p);
    V bv[TN_C];
    for (int v = 0; v < CV; v++) bv[v] = V_LOADU(bp + v * VL);
    for (int r = 0; r < RB; r++) {
      V s = V_SET1(a_at(a, lda, nn, p, r));
      for (int v = 0; v < CV; v++) acc[r][v] = V_FMA(s, bv[v], acc[r][v]);
    }
  }
  const V va = V_SET1(alpha), vb = V_SET1(beta);
  for (int r = 0; r < RB; r++)
    for (int v = 0; v < CV; v++) {
      float *cp = c + (size_t)r * ldc + v * VL;
      V out = V_MUL(va, acc[r][v]);
      if (beta != 0.0f) out = V_FMA(vb, V_LOADU(cp), out);
      V_STOREU(cp, out);
    }
}

#define TN_CASE(RB, CV)                                                      \
  case CV:                                                                   \
    tn_block(RB, CV, k, a, lda, nn, b, ldb, ix, alpha, beta, c, ldc);        \
    break;

INL void tn_cols(const int RB, int cv, int k, const float *a, int lda, const int nn,
                 const float *b, int ldb, const int64_t *ix, float alpha, float beta, float *c,
                 int ldc) {
  switch (cv) {
    TN_CASE(RB, 1)
#if TN_C >= 2
    TN_CASE(RB, 2)
#endif
#if TN_C >= 3
    TN_CASE(RB, 3)
#endif
#if TN_C >= 4
    TN_CASE(RB, 4)
#endif
  default:
    break;
  }
}

#define TN_ROWS(RB)                                                          \
  case RB:                                                                   \
    tn_cols(RB, cv, k, a, lda, nn, b, ldb, ix, alpha, beta, c, ldc);         \
    break;

INL void tn_dispatch(int rb, int cv, int k, const float *a, int lda, const int nn,
                     const float *b, int ldb, const int64_t *ix, float alpha, float beta,
                        float *c, int ldc) {
  switch (rb) {
    TN_ROWS(1)
#if TN_R >= 2
    TN_ROWS(2)
#endif
#if TN_R >= 3
    TN_ROWS(3)
#endif
#if TN_R >= 4
    TN_ROWS(4)
#endif
#if TN_R >= 5
    TN_ROWS(5)
#endif
#if TN_R >= 6
    TN_ROWS(6)
#endif
#if TN_R >= 7
    TN_ROWS(7)
#endif
#if TN_R >= 8
    TN_ROWS(8)
#endif
  default:
    break;
  }
}

/* The last n % VL columns: RB rows by one partial vector, the same sums. */
INL void tn_tail(const int RB, int cnt, int k, const float *a, int lda, const int nn,
                 const float *b, int ldb, const int64_t *ix, float alpha, float beta, float *c,
                 int ldc) {
  V acc[TN_R];
  for (int r = 0; r < RB; r++) acc[r] = V_ZERO();
  for (int p = 0; p < k; p++) {
    V bv = load_part(row_ptr(b, ldb, ix, p), cnt);
    for (int r = 0; r < RB; r++) acc[r] = V_FMA(V_SET1(a_at(a, lda, nn, p, r)), bv, acc[r]);
  }
  const V va = V_SET1(alpha), vb = V_SET1(beta);
  for (int r = 0; r < RB; r++) {
    float *cp = c + (size_t)r * ldc;
    V out = V_MUL(va, acc[r]);
    if (beta != 0.0f) out = V_FMA(vb, load_part(cp, cnt), out);
    store_part(cp, out, cnt);
  }
}

#define TN_TAIL(RB)                                                          \
  case RB:                                                                   \
    tn_tail(RB, cnt, k, a, lda, nn, b, ldb, ix, alpha, beta, c, ldc);        \
    break;

INL void tn_tail_dispatch(int rb, int cnt, int k, const float *a, int lda, const int nn,
                          const float *b, int ldb, const int64_t *ix, float alpha, float beta,
                             float *c, int ldc) {
  switch (rb) {
    TN_TAIL(1)
#if TN_R >= 2
    TN_TAIL(2)
#endif
#if TN_R >= 3
    TN_TAIL(3)
#endif
#if TN_R >= 4
    TN_TAIL(4)
#endif
#if TN_R >= 5
    TN_TAIL(5)
#endif
#if TN_R >= 6
    TN_TAIL(6)
#endif
#if TN_R >= 7
    TN_TAIL(7)
#endif
#if TN_R >= 8
    TN_TAIL(8)
#endif
  default:
    break;
  }
}

/* Columns in chunks of TN_C vectors (the last chunk shorter), the last
 * n % VL columns as one partial vector. With nn, A is m x k (gemm_nn). */
INL void tn_all(int m, int n, int k, float alpha, const float *a, int lda, const int nn,
                const float *b, int ldb, const int64_t *ix, float beta, float *c,
                int ldc) {
  const int chunk = TN_C * VL, full = n - n % VL;
  for (int j = 0; j < full; j += chunk) {
    int cv = (full - j < chunk ? full - j : chunk) / VL;
    for (int i = 0; i < m; i += TN_R)
      tn_dispatch(m - i < TN_R ? m - i : TN_R, cv, k, nn ? a + (size_t)i * lda : a + i, lda,
                  nn, b + j, ldb, ix, alpha, beta, c + (size_t)i * ldc + j, ldc);
  }
  if (full < n)
    for (int i = 0; i < m; i += TN_R)
      tn_tail_dispatch(m - i < TN_R ? m - i : TN_R, n - full, k,
                       nn ? a + (size_t)i * lda : a + i, lda, nn, b + full, ldb, ix, alpha,
                       beta, c + (size_t)i * ldc + full, ldc);
}

static void simd_gemm_tn(int m, int n, int k, float alpha, const float *a,
                         int lda, const float *b, int ldb, float beta,
                         float *c, int ldc) {
  tn_all(m, n, k, alpha, a, lda, 0, b, ldb, NULL, beta, c, ldc);
}

/* gemm_nn: C = alpha A B + beta C (A m x k), gemm_tn's blocks with A's
 * elements read across its rows (a layer's input gradient dZ W). */
static void simd_gemm_nn(int m, int n, int k, float alpha, const float *a,
                         int lda, const float *b, int ldb, float beta,
                         float *c, int ldc) {
  tn_all(m, n, k, alpha, a, lda, 1, b, ldb, NULL, beta, c, ldc);
}

/* gemm_tn with B's rows read through rows[] (kernels.h): the same sums. */
static void simd_gemm_tn_rows(int m, int n, int k, float alpha, const float *a,
                              int lda, const float *b, int ldb, const int64_t *rows,
                              float beta, float *c, int ldc) {
  tn_all(m, n, k, alpha, a, lda, 0, b, ldb, rows, beta, c, ldc);
}

#define U8_GEMM_NT simd_gemm_nt
#include "ml/kernels_u8.h"

const fedc_kernels SIMD_TABLE = {SIMD_VARIANT,      simd_gemm_nt,      simd_gemm_tn,
                                 fold_convert,      fold_add,          FEDC_KERNELS_ELEM,
                                 simd_gemm_nt_rows, simd_gemm_tn_rows, u8_unpack,
                                 u8_gemm_nt,        1,                 simd_gemm_nn};

#endif
