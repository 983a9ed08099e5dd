/*
 * scaffold_external.h - SCAFFOLD for the external trainer
 * (scaffold_external.c, docs/trainers.md#scaffold-jobs): the round's drift
 * correction written for the trainer, and the local step count it reports.
 */
#ifndef FEDC_CLIENT_SCAFFOLD_EXTERNAL_H
#define FEDC_CLIENT_SCAFFOLD_EXTERNAL_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "fedc/client.h"
#include "wire/safetensors.h"

/* The most local steps a trainer may report for one round. */
#define FEDC_CLIENT_MAX_STEPS ((int64_t)1 << 40)

/* r->correction (n_params floats) to path as safetensors F32 in the
 * model's layout (r->tensors: the same names and shapes as the model
 * file), metadata round and kind "scaffold_correction". 0, FEDC_EIO,
 * FEDC_ENOMEM. */
int fedc__client_correction_write(const char *path, const fedc_client_round *r);

/* The local step count the trainer reports: "steps" in its metrics JSON
 * m (may be NULL) or, failing that, in the update's metadata f. In a
 * SCAFFOLD round (r->correction set) it is required, an integer from 1 to
 * FEDC_CLIENT_MAX_STEPS; otherwise a valid one is passed on and a missing
 * one is 0. A failed-round error (FEDC_SUB_TRAINER_FAILED) otherwise. */
int fedc__client_correction_steps(const cJSON *m, const fedc_st_file *f,
                                  const fedc_client_round *r, int64_t *steps);

#endif
