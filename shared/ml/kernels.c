/*
 * kernels.c - from the variant in use (base/cpu.h) to its kernel table
 * (kernels.h). A variant this build lacks has no table: kernels_avx2.c and
 * kernels_avx512.c are empty on arm64, kernels_neon.c on x86-64.
 */
#include "ml/kernels.h"

const fedc_kernels *fedc_kernels_for(fedc_cpu_variant v) {
  switch (v) {
  case FEDC_CPU_SCALAR:
    return &fedc_kernels_scalar;
#if defined(__x86_64__)
  case FEDC_CPU_AVX2:
    return &fedc_kernels_avx2;
  case FEDC_CPU_AVX512:
    return &fedc_kernels_avx512;
#endif
#if defined(__aarch64__)
  case FEDC_CPU_NEON:
    return &fedc_kernels_neon;
#endif
  default:
    return NULL;
  }
}

const fedc_kernels *fedc_kernels_get(void) {
  const fedc_kernels *k = fedc_kernels_for(fedc_cpu_current());
  return k ? k : &fedc_kernels_scalar;
}
