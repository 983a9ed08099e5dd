/*
 * dp_sites.c - the coordinator's part of distributed DP under secure
 * aggregation ([privacy] noise_at = sites; docs/privacy.md "Noise at the
 * sites"; shared/privacy/dp_site.h).
 *
 * The sites clip and noise; the coordinator tells them how much (the job
 * object's privacy fields), sizes the masked words' range to hold a clipped
 * and noised coordinate, checks that every survivor entered with weight 1
 * (DP-FedAvg averages unweighted), and then divides the unmasked sum by the
 * survivors and accounts the round as central DP would (round/pipeline.c,
 * privacy/dp.c with noise_at_sites).
 */
#include <cjson/cJSON.h>

#include "base/error.h"
#include "coord_internal.h"
#include "privacy/dp_site.h"
#include "privacy/secagg.h"

static int sites_on(const fedc_coord *c) {
  return c->cfg.dp_noise_at == FEDC_NOISE_AT_SITES && c->cfg.dp_noise_multiplier > 0.0 &&
         c->cfg.secagg;
}

/* The job's plan; config_noise_at.c checked at start that it exists. */
static int plan_of(const fedc_coord *c, fedc_dp_site_plan *plan) {
  int32_t m_min = fedc_dp_site_min_survivors(c->cfg.min_clients, c->cfg.secagg_neighbors,
                                             c->cfg.secagg_threshold);
  return fedc_dp_site_plan_new(c->cfg.dp_noise_multiplier, c->cfg.dp_clip_norm, m_min,
                               c->cfg.clients_per_round, plan);
}

void fedc__coord_dp_site_fields(const fedc_coord *c, cJSON *privacy) {
  if (c->cfg.dp_noise_multiplier <= 0.0) return;
  fedc_dp_site_plan plan;
  if (!sites_on(c) || plan_of(c, &plan) != 0) {
    cJSON_AddStringToObject(privacy, "noise_at", "coordinator");
    return;
  }
  cJSON_AddStringToObject(privacy, "noise_at", "sites");
  cJSON_AddNumberToObject(privacy, "clip_norm", c->cfg.dp_clip_norm);
  cJSON_AddNumberToObject(privacy, "min_survivors", plan.m_min);
  cJSON_AddNumberToObject(privacy, "noise_std", plan.noise_std);
}

double fedc__coord_secagg_clip(const fedc_coord *c) {
  fedc_dp_site_plan plan;
  if (sites_on(c) && plan_of(c, &plan) == 0) return plan.range;
  return FEDC_SECAGG_DEFAULT_CLIP;
}

int fedc__coord_dp_site_weights(const fedc_coord *c, const int32_t *ids,
                                const uint64_t *samples, int32_t k) {
  if (!sites_on(c)) return 0;
  for (int32_t i = 0; i < k; i++)
    if (samples[i] != 1)
      return fedc_error_set(FEDC_EINVAL,
                            "noise at the sites: client %d entered the sum with weight %llu, "
                            "not 1 (DP-FedAvg averages unweighted)",
                            (int)ids[i], (unsigned long long)samples[i]);
  return 0;
}
