/*
 * kernels_fold.h - FedAvg's fixed-point conversion and fold (kernels.h), as
 * static functions that each kernels_<variant>.c includes, so that every
 * variant gets them compiled with its own instruction set (nearbyint is one
 * instruction from SSE4.1 on, a libm call on the x86-64 baseline). The
 * results are exact, so they are the same bits in every variant.
 */
#ifndef FEDC_ML_KERNELS_FOLD_H
#define FEDC_ML_KERNELS_FOLD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The check runs as a branch-free pass over blocks of 64 (which vectorizes),
 * the conversion only after its block passed: the first bad index is then
 * found by a scalar look in that one block.
 */
static size_t fold_convert(int64_t *q, const float *w, size_t n, double scale,
                           double limit) {
  size_t i = 0;
  while (i < n) {
    size_t end = n - i < 64 ? n : i + 64;
    int bad = 0;
    for (size_t j = i; j < end; j++) bad |= !(fabs((double)w[j]) < limit);
    if (bad) {
      for (size_t j = i; j < end; j++)
        if (!(fabs((double)w[j]) < limit)) return j;
    }
    for (size_t j = i; j < end; j++) q[j] = (int64_t)nearbyint((double)w[j] * scale);
    i = end;
  }
  return n;
}

static void fold_add(__int128 *acc, const int64_t *q, size_t n, int64_t m) {
  const __int128 mm = m;
  for (size_t i = 0; i < n; i++) acc[i] += mm * q[i];
}

#endif
