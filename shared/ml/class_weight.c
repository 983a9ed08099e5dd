/*
 * class_weight.c - parsing [train] class_weight and turning it, with the
 * label counts and pos_weight, into the weights a trainer uses.
 */
#include "ml/class_weight.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

int fedc_class_weight_parse(const char *text, fedc_class_weight *out) {
  memset(out, 0, sizeof *out);
  if (strcmp(text, "none") == 0 || text[0] == '\0') return 0;
  if (strcmp(text, "balanced") == 0) {
    out->mode = FEDC_CLASS_WEIGHT_BALANCED;
    return 0;
  }
  const char *p = text;
  for (;;) {
    if (out->n == FEDC_CLASS_WEIGHT_MAX)
      return fedc_error_set(FEDC_EINVAL, "class_weight: more than %d weights",
                            FEDC_CLASS_WEIGHT_MAX);
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno != 0 || !isfinite(v) || v <= 0 || v > 1e6)
      return fedc_error_set(FEDC_EINVAL,
                            "class_weight: \"%s\" is not none, balanced or positive weights "
                            "w0,w1,... (each in (0, 1e6])",
                            text);
    out->w[out->n++] = (float)v;
    while (*end == ' ') end++;
    if (*end == '\0') break;
    if (*end != ',')
      return fedc_error_set(FEDC_EINVAL, "class_weight: \"%s\": weights are separated by commas",
                            text);
    p = end + 1;
  }
  out->mode = FEDC_CLASS_WEIGHT_GIVEN;
  return 0;
}

int fedc_class_weight_resolve(const fedc_class_weight *cw, double pos_weight, int32_t n_classes,
                              const int64_t *counts, float *out) {
  if (n_classes < 1 || n_classes > FEDC_CLASS_WEIGHT_MAX)
    return fedc_error_set(FEDC_EINVAL, "class_weight: %d classes", (int)n_classes);
  for (int32_t k = 0; k < n_classes; k++) out[k] = 1.0f;
  if (cw->mode == FEDC_CLASS_WEIGHT_GIVEN) {
    if (cw->n != n_classes)
      return fedc_error_set(FEDC_EINVAL, "class_weight: %d weights for a model of %d classes",
                            (int)cw->n, (int)n_classes);
    memcpy(out, cw->w, (size_t)n_classes * sizeof *out);
  } else if (cw->mode == FEDC_CLASS_WEIGHT_BALANCED) {
    double n = 0;
    int32_t present = 0;
    for (int32_t k = 0; k < n_classes; k++) n += (double)counts[k], present += counts[k] > 0;
    /* sklearn divides by the classes present in y */
    for (int32_t k = 0; k < n_classes; k++)
      if (counts[k] > 0) out[k] = (float)(n / ((double)present * (double)counts[k]));
  }
  if (n_classes == 2 && pos_weight != 1.0) out[1] *= (float)pos_weight;
  for (int32_t k = 0; k < n_classes; k++)
    if (out[k] != 1.0f) return 0;
  return 1;
}
