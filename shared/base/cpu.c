/*
 * cpu.c - detection and selection of the CPU kernel variant (cpu.h). The
 * choice is one process-wide integer, set at the first query from what the
 * CPU reports, or by fedc_cpu_select; the kernel tables that it picks live
 * in shared/ml/kernels.c.
 */
#include "base/cpu.h"

#include <stdatomic.h>
#include <string.h>

#include "base/error.h"

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

static const char *const names[FEDC_CPU_COUNT] = {"scalar", "avx2+fma", "avx512",
                                                  "neon"};

/* -1 until the first query picks the best variant */
static atomic_int selected = -1;

const char *fedc_cpu_variant_name(fedc_cpu_variant v) {
  return (unsigned)v < FEDC_CPU_COUNT ? names[v] : "unknown";
}

/*
 * What the CPU reports. On x86-64 GCC's and clang's __builtin_cpu_supports
 * also check that the operating system saves the ymm / zmm state (XGETBV),
 * so a variant it accepts can run. The AVX-512 variant is compiled for
 * x86-64-v4 and so needs F, BW, CD, DQ and VL.
 */
int fedc_cpu_supported(fedc_cpu_variant v) {
  switch (v) {
  case FEDC_CPU_SCALAR:
    return 1;
#if defined(__x86_64__)
  case FEDC_CPU_AVX2:
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  case FEDC_CPU_AVX512:
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
#endif
#if defined(__aarch64__) && defined(__linux__)
  case FEDC_CPU_NEON:
    return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#endif
  default:
    return 0;
  }
}

fedc_cpu_variant fedc_cpu_best(void) {
  static const fedc_cpu_variant order[] = {FEDC_CPU_AVX512, FEDC_CPU_AVX2,
                                           FEDC_CPU_NEON};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
    if (fedc_cpu_supported(order[i])) return order[i];
  return FEDC_CPU_SCALAR;
}

fedc_cpu_variant fedc_cpu_current(void) {
  int v = atomic_load_explicit(&selected, memory_order_acquire);
  if (v < 0) {
    /* two first queries at once both compute the same answer */
    int expected = -1;
    v = (int)fedc_cpu_best();
    if (!atomic_compare_exchange_strong(&selected, &expected, v)) v = expected;
  }
  return (fedc_cpu_variant)v;
}

const char *fedc_cpu_name(void) { return names[fedc_cpu_current()]; }

int fedc_cpu_set(fedc_cpu_variant v) {
  if ((unsigned)v >= FEDC_CPU_COUNT)
    return fedc_error_set(FEDC_EINVAL, "cpu kernels: no variant %d", (int)v);
  if (!fedc_cpu_supported(v))
    return fedc_error_set(FEDC_EUNSUPPORTED,
                          "cpu kernels: %s is not available (this build or this CPU lacks it)",
                          names[v]);
  atomic_store_explicit(&selected, (int)v, memory_order_release);
  return 0;
}

int fedc_cpu_select(const char *name) {
  if (name == NULL || name[0] == '\0' || strcmp(name, "auto") == 0)
    return fedc_cpu_set(fedc_cpu_best());
  for (int v = 0; v < FEDC_CPU_COUNT; v++)
    if (strcmp(name, names[v]) == 0) return fedc_cpu_set((fedc_cpu_variant)v);
  if (strcmp(name, "avx2") == 0) return fedc_cpu_set(FEDC_CPU_AVX2);
  if (strcmp(name, "avx512f") == 0) return fedc_cpu_set(FEDC_CPU_AVX512);
  return fedc_error_set(FEDC_EINVAL,
                        "cpu kernels: unknown variant \"%s\" (auto, scalar, avx2, avx512, neon)",
                        name);
}
