/*
 * kernels.c - GFLOP/s of the CPU kernel variants' skinny products
 * (shared/ml/kernels.h) on one core, against the core's FMA peak: the
 * clock is measured here, in this thread's CPU time (a chain of dependent adds, one per cycle) and
 * the peak is 2 FMA units x floats per vector x 2 flops x clock (AVX2: 8
 * floats, AVX-512: 16; NEON: 2 units of 4 assumed). The shapes are the
 * softmax job's and the MLP's last layer at batch 32, the evaluation's at
 * batch 1000, and the MLP's wide layers (784-200-200) at batch 32 and its
 * evaluation's first layer at 512, for the variants that take them. Operands stay in cache: this is the kernels' ceiling, not a
 * round. Prints one line per variant and shape; bench/run.sh runs it.
 *
 *   cc -O2 bench/kernels.c -Iinclude -Ishared build/lib/libfedc.a -lm -o k
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/alloc.h"
#include "base/cpu.h"
#include "ml/kernels.h"

/* This thread's CPU time: on a shared machine, the time slices other
 * processes take count neither in the clock nor in the kernels' rates. */
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Cycles per second: 20 dependent register adds (x += x, which no core
 * folds at rename as it may an add of an immediate) per iteration, one a
 * cycle. */
static double clock_hz(void) {
  double best = 0.0;
  for (int r = 0; r < 5; r++) {
    unsigned long x = 1, n = 20000000;
    double t0 = now();
    for (unsigned long i = 0; i < n; i++) {
#if defined(__x86_64__)
      __asm__ volatile("add %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\t"
                       "add %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\t"
                       "add %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\t"
                       "add %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0\n\tadd %0,%0"
                       : "+r"(x));
#elif defined(__aarch64__)
      __asm__ volatile("add %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\t"
                       "add %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\t"
                       "add %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\t"
                       "add %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1\n\tadd %0,%0,1"
                       : "+r"(x));
#else
      x += x + i;
#endif
    }
    double hz = 20.0 * (double)n / (now() - t0);
    if (hz > best) best = hz;
  }
  return best;
}

typedef struct shape {
  const char *what;
  int tn; /* 0: gemm_nt, 1: gemm_tn, 2: gemm_nt_u8 (A as bytes), 3: gemm_nn */
  int m, n, k;
} shape;

static const shape shapes[] = {
    {"softmax forward  nt 32x10x784", 0, 32, 10, 784},
    {"softmax gradient tn 10x784x32", 1, 10, 784, 32},
    {"softmax eval     nt 1000x10x784", 0, 1000, 10, 784},
    {"  from bytes   nt_u8 1000x10x784", 2, 1000, 10, 784},
    {"mlp last layer   nt 32x10x200", 0, 32, 10, 200},
    {"mlp gradient     tn 10x200x32", 1, 10, 200, 32},
    /* the wide products a SIMD variant takes at batch 32 (kernels.h's wide) */
    {"mlp layer 1      nt 32x200x784", 0, 32, 200, 784},
    {"mlp gradient 1   tn 200x784x32", 1, 200, 784, 32},
    {"mlp layer 2      nt 32x200x200", 0, 32, 200, 200},
    {"mlp gradient 2   tn 200x200x32", 1, 200, 200, 32},
    {"mlp input grad   nn 32x200x200", 3, 32, 200, 200},
    {"mlp eval layer 1 nt 512x200x784", 0, 512, 200, 784},
};

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* GFLOP/s of one shape: the median of 7 timed batches of calls. */
static double measure(const fedc_kernels *kern, const shape *s, float *a, float *b,
                      float *c) {
  const double flop = 2.0 * s->m * s->n * (double)s->k;
  int calls = (int)(2e8 / flop) + 1;
  double g[7];
  for (int r = 0; r < 7; r++) {
    double t0 = now();
    for (int i = 0; i < calls; i++) {
      if (s->tn == 3)
        kern->gemm_nn(s->m, s->n, s->k, 1.0f, a, s->k, b, s->n, 0.0f, c, s->n);
      else if (s->tn == 2)
        kern->gemm_nt_u8(s->m, s->n, s->k, 1.0f, (const uint8_t *)a, s->k, b, s->k, 0.0f, c, s->n);
      else if (s->tn) kern->gemm_tn(s->m, s->n, s->k, 1.0f, a, s->m, b, s->n, 0.0f, c, s->n);
      else kern->gemm_nt(s->m, s->n, s->k, 1.0f, a, s->k, b, s->k, 0.0f, c, s->n);
    }
    g[r] = flop * calls / (now() - t0) / 1e9;
  }
  qsort(g, 7, sizeof g[0], cmp);
  return g[3];
}

int main(void) {
  const size_t big = 1000 * 784;
  float *a = fedc_malloc_aligned(big * sizeof(float)), *b = fedc_malloc_aligned(big * sizeof(float)),
        *c = fedc_malloc_aligned(big * sizeof(float));
  if (!a || !b || !c) return 1;
  for (size_t i = 0; i < big; i++) {
    a[i] = (float)(i % 13) * 0.01f;
    b[i] = (float)(i % 7) * 0.02f;
  }
  double hz = clock_hz();
  printf("kernel microbenchmark: 1 core, clock %.2f GHz (measured); in use: %s\n", hz / 1e9,
         fedc_cpu_name());
  for (int v = 0; v < FEDC_CPU_COUNT; v++) {
    const fedc_kernels *kern = fedc_kernels_for((fedc_cpu_variant)v);
    if (kern == NULL || !fedc_cpu_supported((fedc_cpu_variant)v)) {
      printf("  %-9s skipped: not in this build or not on this CPU\n",
             fedc_cpu_variant_name((fedc_cpu_variant)v));
      continue;
    }
    int lanes = v == FEDC_CPU_AVX512 ? 16 : v == FEDC_CPU_AVX2 ? 8 : v == FEDC_CPU_NEON ? 4 : 0;
    double peak = 2.0 * lanes * 2.0 * hz / 1e9;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
      if ((shapes[i].tn == 1 ? shapes[i].m : shapes[i].n) > FEDC_KERNEL_SMALL && !kern->wide)
        continue;
      double gf = measure(kern, &shapes[i], a, b, c);
      if (peak > 0)
        printf("  %-9s %-34s %6.1f GFLOP/s  %3.0f%% of %.1f (2 FMA x %d floats x 2 x clock)\n",
               fedc_cpu_variant_name((fedc_cpu_variant)v), shapes[i].what, gf,
               100.0 * gf / peak, peak, lanes);
      else
        printf("  %-9s %-34s %6.1f GFLOP/s\n", fedc_cpu_variant_name((fedc_cpu_variant)v),
               shapes[i].what, gf);
    }
  }
  fedc_free_aligned(a);
  fedc_free_aligned(b);
  fedc_free_aligned(c);
  return 0;
}
