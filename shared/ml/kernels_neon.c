/*
 * kernels_neon.c - the NEON (Advanced SIMD) kernel variant (kernels.h) for
 * arm64, where NEON is part of the armv8-a baseline. 32 q registers of 4
 * floats: gemm_nt's block is 4 rows by 5 outputs (20 accumulators, 4 A
 * vectors, 1 B vector), gemm_tn's 5 rows by 4 vectors. Empty on other
 * machines.
 */
#if defined(__aarch64__)
#include <arm_neon.h>

#define V float32x4_t
#define VL 4
#define V_ZERO() vdupq_n_f32(0.0f)
#define V_LOADU(p) vld1q_f32(p)
#define V_STOREU(p, v) vst1q_f32(p, v)
#define V_SET1(x) vdupq_n_f32(x)
#define V_FMA(a, b, c) vfmaq_f32(c, a, b)
#define V_MUL(a, b) vmulq_f32(a, b)
#define V_HSUM(v) vaddvq_f32(v)
#define V_HSUM4(a, b, c, d, out) vst1q_f32(out, vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d)))
#define NT_R 4
#define NT_N 5
#define TN_R 5
#define TN_C 4
#define SIMD_TABLE fedc_kernels_neon
#define SIMD_VARIANT FEDC_CPU_NEON

#include "ml/kernels_simd.h"
#else
typedef int fedc_kernels_neon_empty; /* ISO C wants something in a file */
#endif
