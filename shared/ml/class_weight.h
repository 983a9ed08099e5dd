/*
 * class_weight.h - the per-class loss weights of [train] class_weight and
 * [train] pos_weight.
 *
 * "none" trains unweighted; "balanced" weighs class c by n / (K n_c) (as
 * scikit-learn's class_weight="balanced"), from label counts the caller
 * gives: the federation's where the job has them, else the site's own;
 * "w0,w1,..." gives the weights (one per class, each > 0). pos_weight
 * multiplies class 1's weight of a binary (logreg) model.
 */
#ifndef FEDC_CLASS_WEIGHT_H
#define FEDC_CLASS_WEIGHT_H

#include <stdint.h>

#define FEDC_CLASS_WEIGHT_MAX 256

typedef enum {
  FEDC_CLASS_WEIGHT_NONE = 0,
  FEDC_CLASS_WEIGHT_BALANCED = 1,
  FEDC_CLASS_WEIGHT_GIVEN = 2
} fedc_class_weight_mode;

typedef struct fedc_class_weight {
  int32_t mode; /* fedc_class_weight_mode */
  int32_t n;    /* GIVEN: the number of weights */
  float w[FEDC_CLASS_WEIGHT_MAX];
} fedc_class_weight;

/* Parse "none", "balanced" or "w0,w1,..." (finite, > 0). FEDC_EINVAL with a
 * message saying what is wrong. */
int fedc_class_weight_parse(const char *text, fedc_class_weight *out);

/*
 * The weights to train with, into out (n_classes floats; 2 for a binary
 * model): from cw, the label counts (counts[c], n_classes of them; used by
 * balanced, where a class with no samples gets weight 1) and pos_weight
 * (binary only; 1 = none). Returns 1 when the weights are all 1 (train
 * unweighted), 0 when out holds weights to use, FEDC_EINVAL when a given
 * list does not have n_classes weights.
 */
int fedc_class_weight_resolve(const fedc_class_weight *cw, double pos_weight, int32_t n_classes,
                              const int64_t *counts, float *out);

#endif
