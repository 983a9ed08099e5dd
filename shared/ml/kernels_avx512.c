/*
 * kernels_avx512.c - the AVX-512 kernel variant (kernels.h), compiled with
 * -march=x86-64-v4 (F, BW, CD, DQ, VL) whatever the build's baseline
 * (Makefile). AVX-512 has 32 zmm registers of 16 floats: gemm_nt's block
 * is 5 rows by 5 outputs (25 accumulators, 5 A vectors, 1 B vector),
 * gemm_tn's 5 rows by 4 vectors (20 accumulators, 4 B vectors, broadcasts
 * from memory). Empty on other machines.
 */
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

#define V __m512
#define VL 16
#define V_ZERO() _mm512_setzero_ps()
#define V_LOADU(p) _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_HSUM(v) _mm512_reduce_add_ps(v)
#define V_LOAD_PART(p, cnt) _mm512_maskz_loadu_ps((__mmask16)((1u << (cnt)) - 1u), p)
#define V_STORE_PART(p, v, cnt) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (cnt)) - 1u), v)
#define V_HSUM4(a, b, c, d, out) _mm_storeu_ps(out, hsum4x512(a, b, c, d))
#define NT_R 5
#define NT_N 5
#define TN_R 5
#define TN_C 4
#define SIMD_TABLE fedc_kernels_avx512
#define SIMD_VARIANT FEDC_CPU_AVX512

/* the four lane sums at once: halves added, then horizontal adds */
static inline __m256 half_sum(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
}
static inline __m128 hsum4x512(__m512 a, __m512 b, __m512 c, __m512 d) {
  __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(half_sum(a), half_sum(b)),
                               _mm256_hadd_ps(half_sum(c), half_sum(d)));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* 8 bytes to 8 floats b / 255 (kernels_u8.h): b (1/255), corrected once */
static inline __m256 u8_to_f(const uint8_t *p) {
  const __m256 r = _mm256_set1_ps(1.0f / 255.0f), k255 = _mm256_set1_ps(255.0f);
  __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
  __m256 q = _mm256_mul_ps(b, r);
  return _mm256_fmadd_ps(_mm256_fnmadd_ps(q, k255, b), r, q);
}
#define U8_V8(p) u8_to_f(p)
#define U8_V8_STORE(p, v) _mm256_storeu_ps(p, v)

#include "ml/kernels_simd.h"
#else
typedef int fedc_kernels_avx512_empty; /* ISO C wants something in a file */
#endif
