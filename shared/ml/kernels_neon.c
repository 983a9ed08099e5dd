/*
 * kernels_neon.c - the NEON (Advanced SIMD) kernel variant (kernels.h) for
 * arm64, where NEON is part of the armv8-a baseline. 32 q registers of 4
 * floats: gemm_nt's block is 4 rows by 5 outputs (20 accumulators, 4 A
 * vectors, 1 B vector), gemm_tn's 5 rows by 4 vectors. Empty on other
 * machines.
 */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <stdint.h>

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

/* 8 bytes to 8 floats b / 255 (kernels_u8.h), as two q registers */
static inline float32x4x2_t u8_to_f(const uint8_t *p) {
  const float32x4_t r = vdupq_n_f32(1.0f / 255.0f), k255 = vdupq_n_f32(255.0f);
  uint16x8_t h = vmovl_u8(vld1_u8(p));
  float32x4x2_t out;
  for (int i = 0; i < 2; i++) {
    float32x4_t b = vcvtq_f32_u32(vmovl_u16(i ? vget_high_u16(h) : vget_low_u16(h)));
    float32x4_t q = vmulq_f32(b, r);
    out.val[i] = vfmaq_f32(q, vfmsq_f32(b, q, k255), r);
  }
  return out;
}
#define U8_V8(p) u8_to_f(p)
#define U8_V8_STORE(p, v)                                                    \
  do {                                                                       \
    float32x4x2_t v_ = (v);                                                  \
    vst1q_f32(p, v_.val[0]);                                                 \
    vst1q_f32((p) + 4, v_.val[1]);                                           \
  } while (0)

#include "ml/kernels_simd.h"
#else
typedef int fedc_kernels_neon_empty; /* ISO C wants something in a file */
#endif
