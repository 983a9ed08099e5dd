/*
 * dtype.c - F16 and BF16 to and from float (exact widening, narrowing
 * rounded to nearest even) and integer elements as int64 (see dtype.h).
 * Bit manipulation only: the result is the same on every machine and does
 * not depend on the compiler's _Float16 support or the rounding mode.
 */
#include "ml/dtype.h"

#include <string.h>

#include "wire/safetensors.h"

static float from_bits(uint32_t x) {
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}

static uint32_t to_bits(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  return x;
}

float fedc_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return from_bits(sign | 0x7f800000u | (m << 13));
  if (e != 0) return from_bits(sign | ((e + 112u) << 23) | (m << 13));
  /* zero or subnormal: m * 2^-24, exact in float */
  float v = (float)m * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

/*
 * Narrow to F16. Normal results: add half a unit of the 13 dropped bits
 * (less one unless the kept part is odd: ties to even) and rebias the
 * exponent from 127 to 15. Subnormal results (|x| < 2^-14): the value in
 * units of 2^-24 is the 24-bit significand shifted right by 14 to 24
 * places, rounded the same way; a carry into the exponent field gives the
 * smallest normal, which is the right encoding.
 */
uint16_t fedc_f32_to_f16(float x) {
  uint32_t b = to_bits(x);
  uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
  uint32_t ax = b & 0x7fffffffu;
  if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: inf */
  if (ax < 0x38800000u) {
    if (ax < 0x33000000u) return sign; /* below 2^-25 (a tie at 2^-25 goes to 0) */
    uint32_t e = ax >> 23, mant = (ax & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e; /* 14 .. 24 */
    uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);
  return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float fedc_bf16_to_f32(uint16_t h) { return from_bits((uint32_t)h << 16); }

uint16_t fedc_f32_to_bf16(float x) {
  uint32_t b = to_bits(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40u);
  b += 0x7fffu + ((b >> 16) & 1u); /* overflow past the largest carries to inf */
  return (uint16_t)(b >> 16);
}

int fedc_dtype_is_int(int dtype) {
  switch (dtype) {
  case FEDC_ST_I64: case FEDC_ST_I32: case FEDC_ST_I16: case FEDC_ST_I8:
  case FEDC_ST_U8: case FEDC_ST_U16: case FEDC_ST_U32: case FEDC_ST_BOOL:
    return 1;
  default:
    return 0;
  }
}

int64_t fedc_dtype_int_get(int dtype, const void *p, size_t i) {
  switch (dtype) {
  case FEDC_ST_I64: { int64_t v; memcpy(&v, (const char *)p + 8 * i, 8); return v; }
  case FEDC_ST_I32: { int32_t v; memcpy(&v, (const char *)p + 4 * i, 4); return v; }
  case FEDC_ST_U32: { uint32_t v; memcpy(&v, (const char *)p + 4 * i, 4); return v; }
  case FEDC_ST_I16: { int16_t v; memcpy(&v, (const char *)p + 2 * i, 2); return v; }
  case FEDC_ST_U16: { uint16_t v; memcpy(&v, (const char *)p + 2 * i, 2); return v; }
  case FEDC_ST_I8: return ((const int8_t *)p)[i];
  case FEDC_ST_U8: case FEDC_ST_BOOL: return ((const uint8_t *)p)[i];
  default: return 0;
  }
}

void fedc_dtype_int_set(int dtype, void *p, size_t i, int64_t v) {
  switch (dtype) {
  case FEDC_ST_I64: memcpy((char *)p + 8 * i, &v, 8); break;
  case FEDC_ST_I32: { int32_t t = (int32_t)v; memcpy((char *)p + 4 * i, &t, 4); break; }
  case FEDC_ST_U32: { uint32_t t = (uint32_t)v; memcpy((char *)p + 4 * i, &t, 4); break; }
  case FEDC_ST_I16: { int16_t t = (int16_t)v; memcpy((char *)p + 2 * i, &t, 2); break; }
  case FEDC_ST_U16: { uint16_t t = (uint16_t)v; memcpy((char *)p + 2 * i, &t, 2); break; }
  case FEDC_ST_I8: ((int8_t *)p)[i] = (int8_t)v; break;
  case FEDC_ST_U8: case FEDC_ST_BOOL: ((uint8_t *)p)[i] = (uint8_t)v; break;
  default: break;
  }
}
