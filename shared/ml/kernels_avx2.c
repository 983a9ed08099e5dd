/*
 * kernels_avx2.c - the AVX2 + FMA kernel variant (kernels.h), compiled with
 * -march=x86-64-v3 whatever the build's baseline (Makefile). AVX2 has 16
 * ymm registers of 8 floats: gemm_nt's block is 3 rows by 4 outputs (12
 * accumulators, 3 A vectors, 1 B vector: all 16; 2 x 5 measured 10-15%
 * slower), gemm_tn's 5 rows by 2 vectors (10 accumulators, 2 B vectors, 1
 * broadcast). gemm_nt_u8 converts its bytes by division (V_FROM_U8) beside
 * the products of the block before. Empty on other machines.
 */
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

#define V __m256
#define VL 8
#define V_ZERO() _mm256_setzero_ps()
#define V_LOADU(p) _mm256_loadu_ps(p)
#define V_STOREU(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_HSUM(v) hsum256(v)
#define V_LOAD_PART(p, cnt) _mm256_maskload_ps(p, part_mask(cnt))
#define V_STORE_PART(p, v, cnt) _mm256_maskstore_ps(p, part_mask(cnt), v)
#define V_HSUM4(a, b, c, d, out) _mm_storeu_ps(out, hsum4x256(a, b, c, d))
#define NT_R 3
#define NT_N 4
#define TN_R 5
#define TN_C 2
#define SIMD_TABLE fedc_kernels_avx2
#define SIMD_VARIANT FEDC_CPU_AVX2

static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* lanes 0..cnt-1 set, for _mm256_maskload_ps */
static inline __m256i part_mask(int cnt) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* the four lane sums at once: three horizontal adds and one of halves */
static inline __m128 hsum4x256(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
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

/* The same floats by a division (correctly rounded, so b / 255 exactly),
 * for gemm_nt_u8's conversion alongside the products: there the divider,
 * a unit of its own, does the work that u8_to_f's three multiply-adds
 * would take from the products' two FMA ports (kernels_simd.h). */
static inline __m256 u8_div(const uint8_t *p) {
  __m256 b = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
  return _mm256_div_ps(b, _mm256_set1_ps(255.0f));
}
#define V_FROM_U8(p) u8_div(p)

#include "ml/kernels_simd.h"
#else
typedef int fedc_kernels_avx2_empty; /* ISO C wants something in a file */
#endif
