/*
 * dtype.h - the element conversions of tensor jobs: IEEE half (F16) and
 * bfloat16 (BF16) to and from float, and integer elements to and from
 * int64.
 *
 * Every F16 and BF16 value is exactly a float, so decoding is exact and
 * aggregation works on floats as it does for F32 models; encoding rounds a
 * float to the nearest value of the narrower type, ties to even (IEEE's
 * default rounding), as numpy's astype and PyTorch's .half() do.
 */
#ifndef FEDC_DTYPE_H
#define FEDC_DTYPE_H

#include <stddef.h>
#include <stdint.h>

/* Exact widening; NaN stays NaN, infinities stay infinite. */
float fedc_f16_to_f32(uint16_t h);
float fedc_bf16_to_f32(uint16_t h);
/* Round to nearest, ties to even; beyond the type's range gives infinity
 * (F16: |x| >= 65520), NaN a quiet NaN. */
uint16_t fedc_f32_to_f16(float x);
uint16_t fedc_f32_to_bf16(float x);

/* An integer element of dtype (a fedc_st_dtype_code: I64, I32, I16, I8,
 * U8, U16, U32, BOOL) at p as int64, and back (v is in the dtype's range
 * when it came from that dtype). */
int64_t fedc_dtype_int_get(int dtype, const void *p, size_t i);
void fedc_dtype_int_set(int dtype, void *p, size_t i, int64_t v);
/* 1 for the integer dtypes above, else 0. */
int fedc_dtype_is_int(int dtype);

#endif
