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
 *   V_FROM_U8(p)          (optional) VL bytes to VL floats b / 255, exactly
 *                         (the correctly rounded quotient, kernels_u8.h):
 *                         gemm_nt_u8 then converts each block of rows
 *                         while the block before it is multiplied
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
 * gemm_nt's blocks can do one more thing alongside their products, a vector
 * of k at a time, for the next block of rows of A (nt_side):
 *
 *   NT_SIDE_PREFETCH  fetch its rows into L1 (an evaluation's 1000 rows of
 *                     A stream from memory; a block reads its rows once per
 *                     chunk of outputs, and without this the first chunk
 *                     waits on memory while the others run from L1)
 *   NT_SIDE_U8        convert its rows of bytes into the floats the block
 *                     will read (gemm_nt_u8): the conversion's instructions
 *                     spread among the multiply-adds instead of running as
 *                     a pass of their own
 *
 * The chunks of outputs share the next block's rows: chunk q takes rows q,
 * q + chunks, ... None of this changes a sum.
 */
enum { NT_SIDE_NONE, NT_SIDE_PREFETCH, NT_SIDE_U8 };

typedef struct nt_side {
  const char *src; /* the next block's row 0: floats to prefetch, or bytes */
  size_t stride;   /* bytes from one of its rows to the next */
  float *dst;      /* NT_SIDE_U8: where row 0's floats go, rows ldd apart */
  int ldd;
  int first, step, rows; /* this chunk's rows: first, first + step, ... < rows */
} nt_side;

/* NT_SIDE_PREFETCH for elements p .. p + VL - 1 of the rows: a prefetch
 * per cache line of 64 bytes. */
INL void side_prefetch(const nt_side *s, int p) {
  if (p % 16 < VL)
    for (int r = s->first; r < s->rows; r += s->step)
      __builtin_prefetch(s->src + (size_t)r * s->stride + (size_t)p * sizeof(float), 0, 3);
}

/* NT_SIDE_U8: this chunk's NS rows of the next block (the first row of
 * bytes and of floats of each, in src[] and dst[]), converted a vector a
 * step, the last k % VL bytes after the loop (kernels_u8.h's division, as
 * exact as V_FROM_U8). */
INL void side_rows(const int NS, const nt_side *s, const uint8_t **src, float **dst) {
  for (int i = 0; i < NS; i++) {
    int r = s->first + i * s->step;
    src[i] = (const uint8_t *)s->src + (size_t)r * s->stride;
    dst[i] = s->dst + (size_t)r * s->ldd;
  }
}

INL void side_u8_tail(const int NS, const uint8_t **src, float **dst, int p, int k) {
  for (int i = 0; i < NS; i++)
    for (int q = p; q < k; q++) dst[i][q] = (float)src[i][q] / 255.0f;
}

/*
 * gemm_nt: C = alpha A B^T + beta C, as R x NB dot products over k at once:
 * each step loads R vectors of A and NB of B (all contiguous in k) for
 * R NB multiply-adds; the lanes are summed once at the end. No packing.
 * SIDE and side: the work done alongside (above).
 */
INL void nt_block(const int R, const int NB, const int SIDE, const int NS, int k, const float *a,
                  int lda, const int64_t *ix, const float *b, int ldb, float alpha, float beta,
                  float *c, int ldc, const nt_side *side) {
  V acc[NT_R][NT_N];
  for (int r = 0; r < R; r++)
    for (int j = 0; j < NB; j++) acc[r][j] = V_ZERO();
  const uint8_t *su[NT_R];
  float *sf[NT_R];
  if (SIDE == NT_SIDE_U8) side_rows(NS, side, su, sf);
  int p = 0;
  for (; p + VL <= k; p += VL) {
    if (SIDE == NT_SIDE_PREFETCH) side_prefetch(side, p);
#ifdef V_FROM_U8
    if (SIDE == NT_SIDE_U8)
      for (int i = 0; i < NS; i++) V_STOREU(sf[i] + p, V_FROM_U8(su[i] + p));
#endif
    V x[NT_R];
    for (int r = 0; r < R; r++) x[r] = V_LOADU(row_ptr(a, lda, ix, r) + p);
    for (int j = 0; j < NB; j++) {
      V bj = V_LOADU(b + (size_t)j * ldb + p);
      for (int r = 0; r < R; r++) acc[r][j] = V_FMA(x[r], bj, acc[r][j]);
    }
  }
  if (SIDE == NT_SIDE_U8) side_u8_tail(NS, su, sf, p, k);
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
    nt_block(R, NB, SIDE, NS, k, a, lda, ix, b, ldb, alpha, beta, c, ldc, side); \
    break;

INL void nt_rows(const int R, int nb, const int SIDE, const int NS, int k, const float *a, int lda,
                 const int64_t *ix, const float *b, int ldb, float alpha, float beta, float *c,
                 int ldc, const nt_side *side) {
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

/* Rows: the remaining m % NT_R as one shorter block (no side work: it is
 * the last block). */
INL void nt_tail_rows(int rows, int nb, int k, const float *a, int lda,
                      const int64_t *ix, const float *b, int ldb, float alpha, float beta,
                         float *c, int ldc) {
  switch (rows) {
  case 1:
    nt_rows(1, nb, NT_SIDE_NONE, 0, k, a, lda, ix, b, ldb, alpha, beta, c, ldc, NULL);
    break;
#if NT_R > 2
  case 2:
    nt_rows(2, nb, NT_SIDE_NONE, 0, k, a, lda, ix, b, ldb, alpha, beta, c, ldc, NULL);
    break;
#endif
#if NT_R > 3
  case 3:
    nt_rows(3, nb, NT_SIDE_NONE, 0, k, a, lda, ix, b, ldb, alpha, beta, c, ldc, NULL);
    break;
#endif
  default:
    for (int i = 0; i < rows; i++)
      nt_rows(1, nb, NT_SIDE_NONE, 0, k, ix ? a : a + (size_t)i * lda, lda, ix ? ix + i : NULL, b,
              ldb, alpha, beta, c + (size_t)i * ldc, ldc, NULL);
    break;
  }
}

#define NT_SIDE_CASE(NS)                                                     \
  case NS:                                                                   \
    nt_rows(NT_R, nb, NT_SIDE_U8, NS, k, a, lda, ix, b, ldb, alpha, beta, c, ldc, side); \
    break;

/* A full block's chunk of nb outputs, with its share of the side work:
 * the rows of bytes it converts counted out, so that their loop unrolls. */
INL void nt_chunk(const int SIDE, int nb, int k, float alpha, const float *a, int lda,
                  const int64_t *ix, const float *b, int ldb, float beta, float *c, int ldc,
                  const nt_side *side) {
  if (SIDE != NT_SIDE_U8) {
    nt_rows(NT_R, nb, SIDE, 0, k, a, lda, ix, b, ldb, alpha, beta, c, ldc, side);
    return;
  }
  int ns = 0;
  for (int r = side->first; r < side->rows; r += side->step) ns++;
  switch (ns) {
  case 0:
    nt_rows(NT_R, nb, NT_SIDE_NONE, 0, k, a, lda, ix, b, ldb, alpha, beta, c, ldc, side);
    break;
    NT_SIDE_CASE(1)
#if NT_R >= 2
    NT_SIDE_CASE(2)
#endif
#if NT_R >= 3
    NT_SIDE_CASE(3)
#endif
#if NT_R >= 4
    NT_SIDE_CASE(4)
#endif
#if NT_R >= 5
    NT_SIDE_CASE(5)
#endif
  default:
    break;
  }
}

/* The chunks of n outputs: as few of at most NT_N as can be, of even
 * sizes (10 outputs by 4: 4, 3, 3, not 4, 4, 2), the first extra of them
 * one longer than the others' base. */
typedef struct nt_chunks {
  int count, base, extra;
} nt_chunks;

static inline nt_chunks nt_chunks_of(int n) {
  nt_chunks ch;
  ch.count = (n + NT_N - 1) / NT_N;
  ch.base = ch.count ? n / ch.count : 0;
  ch.extra = ch.count ? n % ch.count : 0;
  return ch;
}

/* One block of rows (NT_R of them, or fewer for the last) against all n
 * outputs, chunk by chunk: each block of A is read from memory once, then
 * from L1 for every chunk. side (a full block's only): the next block's
 * rows, shared among the chunks. */
INL void nt_rowblock(const int SIDE, int rows, nt_chunks ch, int k, float alpha, const float *a,
                     int lda, const int64_t *ix, const float *b, int ldb, float beta, float *c,
                     int ldc, nt_side side) {
  const int chunks = ch.count;
  side.step = chunks;
  for (int q = 0, j = 0; q < chunks; q++) {
    int nb = ch.base + (q < ch.extra);
    side.first = q;
    if (rows == NT_R)
      nt_chunk(SIDE, nb, k, alpha, a, lda, ix, b + (size_t)j * ldb, ldb, beta, c + j, ldc,
               &side);
    else
      nt_tail_rows(rows, nb, k, a, lda, ix, b + (size_t)j * ldb, ldb, alpha, beta, c + j, ldc);
    j += nb;
  }
}

/* Rows NT_R at a time. A skinny product over many rows (an evaluation's
 * first layer) prefetches each next block while it works on one. */
INL void nt_all(int m, int n, int k, float alpha, const float *a, int lda,
                const int64_t *ix, const float *b, int ldb, float beta, float *c,
                int ldc) {
  const int pf = ix == NULL && n <= FEDC_KERNEL_SMALL && m > FEDC_KERNEL_BATCH;
  const nt_chunks ch = nt_chunks_of(n);
  for (int i = 0; i < m; i += NT_R) {
    const int rows = m - i < NT_R ? m - i : NT_R, next = m - i - rows;
    const float *ai = ix ? a : a + (size_t)i * lda;
    const int64_t *ixi = ix ? ix + i : NULL;
    float *ci = c + (size_t)i * ldc;
    nt_side side = {0};
    if (pf && rows == NT_R && next > 0) {
      side.src = (const char *)(ai + (size_t)NT_R * lda);
      side.stride = (size_t)lda * sizeof(float);
      side.rows = next < NT_R ? next : NT_R;
      nt_rowblock(NT_SIDE_PREFETCH, rows, ch, k, alpha, ai, lda, NULL, b, ldb, beta, ci, ldc,
                  side);
    } else
      nt_rowblock(NT_SIDE_NONE, rows, ch, k, alpha, ai, lda, ixi, b, ldb, beta, ci, ldc, side);
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

#ifdef V_FROM_U8
/*
 * gemm_nt_u8 (kernels.h) with V_FROM_U8: the rows converted NT_R at a time
 * into one half of a buffer in L1 while the block in the other half is
 * multiplied (NT_SIDE_U8); the first block converted on its own. The
 * floats are those of the unpacked rows and the blocks gemm_nt's, so the
 * sums are gemm_nt's to the bit. Rows longer than the buffer allows take
 * kernels_u8.h's path.
 */
static void simd_gemm_nt_u8(int m, int n, int k, float alpha, const uint8_t *a, int lda,
                            const float *b, int ldb, float beta, float *c, int ldc) {
  if ((size_t)2 * NT_R * (size_t)k > U8_BLOCK_FLOATS) {
    u8_gemm_nt(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  float buf[U8_BLOCK_FLOATS] __attribute__((aligned(64)));
  const size_t half = (size_t)NT_R * (size_t)k;
  const nt_chunks ch = nt_chunks_of(n);
  for (int q = 0; q < m && q < NT_R; q++)
    u8_unpack(buf + (size_t)q * k, a + (size_t)q * lda, (size_t)k);
  for (int i = 0, cur = 0; i < m; i += NT_R, cur ^= 1) {
    const int rows = m - i < NT_R ? m - i : NT_R, next = m - i - rows;
    float *blk = buf + cur * half, *nbuf = buf + (cur ^ 1) * half;
    float *ci = c + (size_t)i * ldc;
    if (next > 0) {
      nt_side side = {(const char *)(a + (size_t)(i + NT_R) * lda), (size_t)lda, nbuf, k,
                      0, 1, next < NT_R ? next : NT_R};
      nt_rowblock(NT_SIDE_U8, rows, ch, k, alpha, blk, k, NULL, b, ldb, beta, ci, ldc, side);
    } else {
      nt_side none = {0};
      nt_rowblock(NT_SIDE_NONE, rows, ch, k, alpha, blk, k, NULL, b, ldb, beta, ci, ldc, none);
    }
  }
}
#define SIMD_GEMM_NT_U8 simd_gemm_nt_u8
#else
#define SIMD_GEMM_NT_U8 u8_gemm_nt
#endif

const fedc_kernels SIMD_TABLE = {SIMD_VARIANT,      simd_gemm_nt,      simd_gemm_tn,
                                 fold_convert,      fold_add,          FEDC_KERNELS_ELEM,
                                 simd_gemm_nt_rows, simd_gemm_tn_rows, u8_unpack,
                                 SIMD_GEMM_NT_U8,   1,                 simd_gemm_nn};

#endif
