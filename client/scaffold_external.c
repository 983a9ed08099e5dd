/*
 * scaffold_external.c - SCAFFOLD for the external trainer
 * (docs/trainers.md#scaffold-jobs). In a SCAFFOLD round the client holds
 * the drift correction c - c_i (scaffold_client.c); an external trainer
 * gets it as a safetensors file in the model's own layout
 * (FEDC_CORRECTION_IN), adds it to each minibatch gradient,
 *   y <- y - lr (g(y) + c - c_i),
 * and reports the number of local steps it took ("steps" in its metrics
 * JSON, or the update's metadata). The client then computes c_i+ from the
 * trainer's y and that count exactly as for an in-process trainer: a
 * SCAFFOLD round whose trainer reports no valid count is failed, since the
 * variate would be wrong by the ratio of the true count to a guess.
 */
#include "scaffold_external.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/error.h"

int fedc__client_correction_write(const char *path, const fedc_client_round *r) {
  fedc_st_tensor ts[FEDC_CLIENT_MAX_TENSORS];
  if (r->n_tensors > FEDC_CLIENT_MAX_TENSORS)
    return fedc_error_set(FEDC_EINVAL, "too many tensors (%zu)", r->n_tensors);
  for (size_t i = 0; i < r->n_tensors; i++) {
    const fedc_client_tensor *t = &r->tensors[i];
    ts[i] = (fedc_st_tensor){.name = t->name, .ndim = t->ndim, .data = r->correction + t->offset};
    for (int k = 0; k < t->ndim; k++) ts[i].shape[k] = t->shape[k];
  }
  char round_s[16];
  snprintf(round_s, sizeof round_s, "%d", (int)r->round);
  fedc_st_meta meta[] = {{"round", round_s}, {"kind", "scaffold_correction"}, {"format", "pt"}};
  return fedc_st_write_file(path, ts, r->n_tensors, meta, 3);
}

/* "steps" as a number: from the metrics object, else the metadata's
 * decimal string. *found = 0 when neither has it; NAN when not a number. */
static double steps_value(const cJSON *m, const fedc_st_file *f, int *found) {
  *found = 1;
  const cJSON *v = m ? cJSON_GetObjectItemCaseSensitive(m, "steps") : NULL;
  if (v != NULL) return cJSON_IsNumber(v) ? v->valuedouble : NAN;
  const char *s = f ? fedc_st_meta_get(f, "steps") : NULL;
  if (s == NULL) {
    *found = 0;
    return NAN;
  }
  char *end;
  errno = 0;
  double d = strtod(s, &end);
  return end == s || *end != '\0' || errno != 0 ? NAN : d;
}

int fedc__client_correction_steps(const cJSON *m, const fedc_st_file *f,
                                  const fedc_client_round *r, int64_t *steps) {
  *steps = 0;
  int found;
  double k = steps_value(m, f, &found);
  int valid = k >= 1 && k <= (double)FEDC_CLIENT_MAX_STEPS && k == floor(k);
  if (valid) {
    *steps = (int64_t)k;
    return 0;
  }
  if (r->correction == NULL && !found) return 0;
  if (r->correction == NULL) /* said, and wrong: a trainer bug worth a round */
    return fedc_error_set_sub(FEDC_EINVAL, FEDC_SUB_TRAINER_FAILED,
                              "round %d: trainer: steps is not valid: an integer 1..2^40 in "
                              "FEDC_METRICS_OUT or the update's metadata",
                              (int)r->round);
  return fedc_error_set_sub(FEDC_EINVAL, FEDC_SUB_TRAINER_FAILED,
                            "round %d: trainer: steps %s: a SCAFFOLD round needs the number of "
                            "local SGD steps the trainer took (an integer 1..2^40, \"steps\" in "
                            "FEDC_METRICS_OUT or the update's metadata) to compute the control "
                            "variate",
                            (int)r->round, found ? "is not valid" : "is missing");
}
