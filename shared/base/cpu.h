/*
 * cpu.h - which CPU kernel variant runs: the hot kernels (the skinny matrix
 * products of models with few outputs, the FedAvg fold) exist in variants
 * compiled with their own instruction sets (shared/ml/kernels_*.c), and one
 * is chosen once, at the first use, from what the CPU reports
 * (__builtin_cpu_supports on x86-64, getauxval(AT_HWCAP) on arm64).
 *
 * The library never reads the environment: a program that wants FEDC_CPU
 * to force a variant calls fedc_cpu_select(getenv("FEDC_CPU")) in its main,
 * before any work starts. Results may differ between variants in the last
 * bits (sums are ordered differently); the same variant always gives the
 * same bits, whatever the thread count.
 */
#ifndef FEDC_BASE_CPU_H
#define FEDC_BASE_CPU_H

typedef enum {
  FEDC_CPU_SCALAR = 0, /* plain C, the reference; every build, every CPU */
  FEDC_CPU_AVX2 = 1,   /* x86-64: AVX2 + FMA, 16 ymm registers */
  FEDC_CPU_AVX512 = 2, /* x86-64: AVX-512 F/BW/CD/DQ/VL, 32 zmm registers */
  FEDC_CPU_NEON = 3,   /* arm64: Advanced SIMD, 32 q registers */
  FEDC_CPU_COUNT = 4
} fedc_cpu_variant;

/* The variant's name as --version prints it ("avx2+fma"); never NULL. */
const char *fedc_cpu_variant_name(fedc_cpu_variant v);

/* 1 when v is compiled into this build and the CPU can run it. */
int fedc_cpu_supported(fedc_cpu_variant v);

/* The best supported variant: what runs unless one is selected. */
fedc_cpu_variant fedc_cpu_best(void);

/* The variant in use (the best one until fedc_cpu_select says otherwise). */
fedc_cpu_variant fedc_cpu_current(void);

/* Its name, for --version: "avx2+fma". */
const char *fedc_cpu_name(void);

/*
 * Use the variant called name from now on: "scalar", "avx2" (or
 * "avx2+fma"), "avx512", "neon", or "auto" / "" / NULL for the best one.
 * FEDC_EINVAL for an unknown name, FEDC_EUNSUPPORTED for a variant this
 * build or this CPU lacks; the variant in use is unchanged then. Call it
 * before work starts: a CPU backend keeps the kernels of its opening.
 */
int fedc_cpu_select(const char *name);

/* Set v directly (tests); FEDC_EUNSUPPORTED if it is not supported. */
int fedc_cpu_set(fedc_cpu_variant v);

#endif
