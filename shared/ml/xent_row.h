/*
 * xent_row.h - one row of softmax cross-entropy from its logits, the one
 * definition that the CPU backend's loss (test_loss) and the evaluation
 * report's log loss both use, so an evaluation computes each logit's
 * exponential once and the two figures agree. Plain C compiled once, so
 * its bits do not depend on the kernel variant in use.
 */
#ifndef FEDC_ML_XENT_ROW_H
#define FEDC_ML_XENT_ROW_H

#include <math.h>
#include <stdint.h>

/*
 * logsumexp(z) - z[label] of a row of cols logits, computed stably in float
 * from the row max (the first one wins ties) and widened to double; *arg
 * gets the index of that max (the predicted class).
 */
static inline double fedc__xent_row(const float *z, int32_t cols, int32_t label, int32_t *arg) {
  int32_t a = 0;
  float zmax = z[0];
  for (int32_t j = 1; j < cols; j++)
    if (z[j] > zmax) zmax = z[j], a = j;
  float sum = 0.0f;
  for (int32_t j = 0; j < cols; j++) sum += expf(z[j] - zmax);
  *arg = a;
  return (double)logf(sum) + (double)(zmax - z[label]);
}

#endif
