/*
 * attack.h - poisoned clients for robustness experiments ([sim] attack).
 *
 * A seeded fraction of the simulated clients attack every round they are
 * selected in:
 *   sign_flip   send x - scale (w - x): their honest step, reversed and
 *               magnified
 *   noise       send x + N(0, scale^2) per weight, ignoring their data
 *   label_flip  train honestly on labels y -> K - 1 - y
 * (x the global model, w the honestly trained weights.)
 */
#ifndef FEDC_SIM_ATTACK_H
#define FEDC_SIM_ATTACK_H

#include <stdint.h>

#include "config/config.h"
#include "data/data.h"
#include "data/partition.h"

/* A bitmap of n_clients flags, 1 = attacker; *out freed with fedc_free.
 * All zero when the config has no attack. */
int fedc_attackers_pick(const fedc_config *c, uint8_t **out);
/* label_flip: flip the labels of the attackers' rows in place. */
void fedc_attack_flip_labels(const fedc_config *c, const uint8_t *attackers,
                             const fedc_partition *part, fedc_dataset *train);
/* sign_flip, noise: turn the trained w into the attack, given global x. */
void fedc_attack_update(const fedc_config *c, int32_t round, int32_t client,
                        const float *x, float *w, size_t n);

#endif
