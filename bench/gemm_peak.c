/*
 * gemm_peak.c - the ceiling for dense training on this machine: OpenBLAS
 * SGEMM on 2048 x 2048 matrices, with the thread count OpenBLAS is given
 * (OPENBLAS_NUM_THREADS). Prints GFLOP/s, the median of 5 calls.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(void) {
  const int n = 2048;
  float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
        *c = malloc(sizeof(float) * n * n);
  if (!a || !b || !c) return 1;
  for (long i = 0; i < (long)n * n; i++) {
    a[i] = 1e-3f * (float)(i % 7);
    b[i] = 1e-3f * (float)(i % 5);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
  double g[5];
  for (int r = 0; r < 5; r++) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    g[r] = 2.0 * n * (double)n * n / s / 1e9;
  }
  qsort(g, 5, sizeof g[0], cmp);
  printf("%.1f\n", g[2]);
  free(a);
  free(b);
  free(c);
  return 0;
}
