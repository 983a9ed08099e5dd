/*
 * kernels_u8.h - the products of a data set stored as bytes (kernels.h's
 * unpack_u8 and gemm_nt_u8), written once for every variant: kernels_*.c
 * include it after defining U8_GEMM_NT (the variant's gemm_nt) and,
 * where the instruction set can, U8_V8 (8 bytes to a vector of 8 floats,
 * byte / 255 exactly) with U8_V8_STORE.
 *
 * A feature stored as a byte b stands for the float b / 255.0f (the IDX
 * loader's pixels). The vector form computes q = b (1/255) and corrects it
 * once with two fused multiply-adds (r = b - 255 q, q + r (1/255)): that
 * gives the correctly rounded quotient for all 256 bytes (checked by
 * tests/unit/test_kernels_u8.c against the division), so every product
 * below sees exactly the floats the float data set holds and gives the
 * same bits as the variant's gemm_nt on them. A SIMD variant that defines
 * V_FROM_U8 takes gemm_nt_u8 from kernels_simd.h instead (the conversion
 * beside the products), and this one for rows too long for its buffer.
 */
#ifndef FEDC_ML_KERNELS_U8_H
#define FEDC_ML_KERNELS_U8_H

#include <stddef.h>
#include <stdint.h>

/* dst[i] = src[i] / 255.0f for i < n */
static void u8_unpack(float *dst, const uint8_t *src, size_t n) {
  size_t i = 0;
#ifdef U8_V8
  for (; i + 8 <= n; i += 8) U8_V8_STORE(dst + i, U8_V8(src + i));
#endif
  for (; i < n; i++) dst[i] = (float)src[i] / 255.0f;
}

/* Floats of the unpacked rows gemm_nt_u8 holds at once (32 KiB, L1): a
 * block of rows is unpacked, then multiplied by the variant's gemm_nt. */
#define U8_BLOCK_FLOATS 8192

/*
 * C = alpha (A / 255) B^T + beta C with A's rows as bytes (m x k, lda
 * bytes apart), k <= FEDC_KERNEL_U8_MAXK, n <= FEDC_KERNEL_SMALL: each
 * block of rows unpacked into a buffer in L1, then the variant's gemm_nt,
 * whose sums do not depend on how the rows are blocked.
 */
static void u8_gemm_nt(int m, int n, int k, float alpha, const uint8_t *a, int lda,
                       const float *b, int ldb, float beta, float *c, int ldc) {
  float buf[U8_BLOCK_FLOATS] __attribute__((aligned(64)));
  int per = k > 0 ? U8_BLOCK_FLOATS / k : m;
#ifdef NT_R
  if (per >= NT_R) per -= per % NT_R; /* whole blocks of gemm_nt's rows */
#endif
  if (per < 1) per = 1;
  for (int i = 0; i < m; i += per) {
    int r = m - i < per ? m - i : per;
    for (int q = 0; q < r; q++)
      u8_unpack(buf + (size_t)q * (size_t)k, a + (size_t)(i + q) * (size_t)lda, (size_t)k);
    U8_GEMM_NT(r, n, k, alpha, buf, k, b, ldb, beta, c + (size_t)i * (size_t)ldc, ldc);
  }
}

#endif
