/*
 * dataset.c - what can be done to a loaded fedc_dataset regardless of where
 * it came from: free it, and standardize its features.
 *
 * Standardization statistics are taken from the training set only (using the
 * test set's would leak it into training) and accumulated in double, two
 * passes (mean, then squared deviations), so that columns with a large
 * offset and a small spread keep their precision.
 */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "data/data.h"
#include "base/error.h"

/* Free the buffers of ds and zero it. Safe on a zeroed struct and on NULL. */
void fedc_dataset_free(fedc_dataset *ds) {
  if (ds == NULL) return;
  fedc_free_aligned(ds->x);
  fedc_free_aligned(ds->y);
  fedc_free_aligned(ds->x_u8);
  memset(ds, 0, sizeof *ds);
}

static void apply(fedc_dataset *ds, const double *mean, const double *scale) {
  int64_t d = ds->d;
  for (int64_t i = 0; i < ds->n; i++) {
    float *row = ds->x + i * d;
    for (int64_t j = 0; j < d; j++)
      row[j] = (float)(((double)row[j] - mean[j]) * scale[j]);
  }
}

/*
 * x := (x - mean) / std per column, mean and population std from train; a
 * column whose train variance is exactly zero is only centred. test, when
 * not NULL, gets the same transform and may be empty.
 *
 * Errors: FEDC_EINVAL (train NULL, empty or without features, or a
 * non-empty test without a feature buffer),
 * FEDC_ESHAPE (test has a different number of features), FEDC_ENOMEM. On
 * error neither data set has been changed.
 */
int fedc_dataset_standardize(fedc_dataset *train, fedc_dataset *test) {
  if (train == NULL || train->n <= 0 || train->d <= 0 || train->x == NULL)
    return fedc_error_set(FEDC_EINVAL,
                          "standardize: the training set is empty");
  if (test != NULL && test->n > 0 && test->x == NULL)
    return fedc_error_set(FEDC_EINVAL, "standardize: test has no features");
  if (test != NULL && test->n > 0 && test->d != train->d)
    return fedc_error_set(FEDC_ESHAPE,
                          "standardize: test has %lld features, train %lld",
                          (long long)test->d, (long long)train->d);
  int64_t n = train->n, d = train->d;
  /* the byte copies would no longer match */
  fedc_free_aligned(train->x_u8);
  train->x_u8 = NULL;
  if (test != NULL) {
    fedc_free_aligned(test->x_u8);
    test->x_u8 = NULL;
  }
  double *mean = fedc_calloc((size_t)d, sizeof *mean);
  double *scale = fedc_calloc((size_t)d, sizeof *scale);
  if (mean == NULL || scale == NULL) {
    fedc_free(mean);
    fedc_free(scale);
    return fedc_error_set(FEDC_ENOMEM, "standardize: out of memory");
  }
  for (int64_t i = 0; i < n; i++) {
    const float *row = train->x + i * d;
    for (int64_t j = 0; j < d; j++) mean[j] += row[j];
  }
  for (int64_t j = 0; j < d; j++) mean[j] /= (double)n;
  for (int64_t i = 0; i < n; i++) { /* scale holds sum of squares for now */
    const float *row = train->x + i * d;
    for (int64_t j = 0; j < d; j++) {
      double dev = (double)row[j] - mean[j];
      scale[j] += dev * dev;
    }
  }
  for (int64_t j = 0; j < d; j++) {
    double var = scale[j] / (double)n;
    scale[j] = var > 0 ? 1.0 / sqrt(var) : 1.0;
  }
  apply(train, mean, scale);
  if (test != NULL && test->n > 0) apply(test, mean, scale);
  fedc_free(mean);
  fedc_free(scale);
  return 0;
}

/*
 * Permute rows in place, following each cycle of the permutation with one
 * row of scratch, so that a 200 MB training set is reordered without a
 * second copy. Row i of the result is row order[i] of the input. Needs a
 * bitmap of n bits and one row.
 */
int fedc_dataset_permute(fedc_dataset *ds, const int64_t *order) {
  int64_t n = ds->n;
  size_t d = (size_t)ds->d, rowb = d * sizeof(float);
  uint8_t *done = fedc_calloc((size_t)n / 8 + 1, 1);
  float *tmp = fedc_malloc(rowb ? rowb : 1);
  if (done == NULL || tmp == NULL) {
    fedc_free(done);
    fedc_free(tmp);
    return fedc_error_set(FEDC_ENOMEM, "permute: out of memory");
  }
  /* check that order is a permutation before moving anything */
  for (int64_t i = 0; i < n; i++) {
    int64_t r = order[i];
    if (r < 0 || r >= n || (done[r >> 3] & (1u << (r & 7)))) {
      fedc_free(done);
      fedc_free(tmp);
      return fedc_error_set(FEDC_EINVAL, "permute: order[%lld] = %lld is out of "
                            "range or repeated", (long long)i, (long long)r);
    }
    done[r >> 3] |= (uint8_t)(1u << (r & 7));
  }
  memset(done, 0, (size_t)n / 8 + 1);
  fedc_free_aligned(ds->x_u8); /* made again by whoever wants it */
  ds->x_u8 = NULL;
  for (int64_t start = 0; start < n; start++) {
    if (done[start >> 3] & (1u << (start & 7))) continue;
    /* the cycle start <- order[start] <- order[order[start]] ... */
    memcpy(tmp, ds->x + (size_t)start * d, rowb);
    float ty = ds->y[start];
    int64_t cur = start;
    for (;;) {
      done[cur >> 3] |= (uint8_t)(1u << (cur & 7));
      int64_t src = order[cur];
      if (src == start) {
        memcpy(ds->x + (size_t)cur * d, tmp, rowb);
        ds->y[cur] = ty;
        break;
      }
      memcpy(ds->x + (size_t)cur * d, ds->x + (size_t)src * d, rowb);
      ds->y[cur] = ds->y[src];
      cur = src;
    }
  }
  fedc_free(done);
  fedc_free(tmp);
  return 0;
}
