/*
 * attack.c - the simulator's poisoning clients (see attack.h). Who attacks
 * is drawn once from the job seed, so a clean run and an attacked run with
 * the same seed differ only by the attack.
 */
#include "attack.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"

int fedc_attackers_pick(const fedc_config *c, uint8_t **out) {
  *out = fedc_calloc((size_t)c->clients, 1);
  if (*out == NULL) return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  if (c->attack == FEDC_ATTACK_NONE) return 0;
  int32_t n = (int32_t)floor(c->attack_fraction * c->clients + 0.5);
  int32_t *ids = fedc_malloc_array((size_t)c->clients, sizeof *ids);
  if (ids == NULL) {
    fedc_free(*out);
    *out = NULL;
    return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  }
  for (int32_t i = 0; i < c->clients; i++) ids[i] = i;
  fedc_rng rng;
  fedc_rng_derive(&rng, c->seed, 0x61747461636b /* "attack" */, 0, 0);
  fedc_rng_shuffle_i32(&rng, ids, c->clients);
  for (int32_t i = 0; i < n; i++) (*out)[ids[i]] = 1;
  fedc_free(ids);
  return 0;
}

void fedc_attack_flip_labels(const fedc_config *c, const uint8_t *attackers,
                             const fedc_partition *part, fedc_dataset *train) {
  if (c->attack != FEDC_ATTACK_LABEL_FLIP || train->n_classes < 2) return;
  for (int32_t k = 0; k < part->n_clients; k++) {
    if (!attackers[k]) continue;
    for (int64_t i = part->offsets[k]; i < part->offsets[k + 1]; i++) {
      int64_t r = part->index[i];
      train->y[r] = (float)(train->n_classes - 1) - train->y[r];
    }
  }
}

void fedc_attack_update(const fedc_config *c, int32_t round, int32_t client,
                        const float *x, float *w, size_t n) {
  if (c->attack == FEDC_ATTACK_SIGN_FLIP) {
    const float a = (float)c->attack_scale;
    for (size_t i = 0; i < n; i++) w[i] = x[i] - a * (w[i] - x[i]);
  } else if (c->attack == FEDC_ATTACK_NOISE) {
    fedc_rng rng;
    fedc_rng_derive(&rng, c->seed, 0x6e6f697365 /* "noise" */, (uint64_t)round,
                    (uint64_t)client);
    for (size_t i = 0; i < n; i++)
      w[i] = x[i] + (float)(c->attack_scale * fedc_rng_normal(&rng));
  }
}
