/*
 * dataset_u8.c - a data set's features as bytes (data.h's
 * fedc_dataset_pack_u8): when every feature is b / 255.0f for a byte b, as
 * the IDX loader's pixels are, the bytes hold the same values in a quarter
 * of the memory, and the products of an evaluation or a minibatch read
 * them instead of the floats (ml/backend.h's unpack_u8 and gemm_u8).
 */
#include <math.h>

#include "base/alloc.h"
#include "base/error.h"
#include "data/data.h"

/*
 * One pass: each feature's nearest byte b (255 x rounded) must give
 * back exactly x as b / 255.0f (so -0.0, NaN and every other value refuse
 * the copy); the copy is filled as it goes and dropped at the first
 * feature that does not fit.
 */
int fedc_dataset_pack_u8(fedc_dataset *ds) {
  if (ds->x_u8 != NULL) return 1;
  if (ds->x == NULL || ds->n <= 0 || ds->d <= 0) return 0;
  size_t n = (size_t)ds->n * (size_t)ds->d;
  uint8_t *q = fedc_malloc_aligned(n);
  if (q == NULL) return fedc_error_set(FEDC_ENOMEM, "data: out of memory for a byte copy");
  const float *x = ds->x;
  for (size_t i = 0; i < n; i++) {
    float v = x[i];
    if (!(v >= 0.0f && v <= 1.0f) || signbit(v)) {
      fedc_free_aligned(q);
      return 0;
    }
    uint8_t b = (uint8_t)(v * 255.0f + 0.5f); /* 0 <= v <= 1: the nearest byte */
    if ((float)b / 255.0f != v) {
      fedc_free_aligned(q);
      return 0;
    }
    q[i] = b;
  }
  ds->x_u8 = q;
  return 1;
}
