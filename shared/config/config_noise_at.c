/*
 * config_noise_at.c - [privacy] noise_at checked against the keys it
 * depends on (docs/privacy.md, "Noise at the sites"). Central DP-FedAvg
 * (noise_at = coordinator) clips each update at the coordinator, which
 * secure aggregation hides; distributed DP (noise_at = sites) has each
 * site clip and noise its own delta, which only makes sense when the
 * coordinator sees nothing but the sum. Every refusal names the keys, where
 * they were set, and why.
 */
#include <stdio.h>

#include "base/error.h"
#include "config/config.h"
#include "privacy/dp_site.h"

int fedc__config_check_noise_at(const fedc_config *c, int is_sim) {
  const char *at = fedc_config_origin(c, "privacy", "noise_at");
  const char *nm = fedc_config_origin(c, "privacy", "noise_multiplier");
  const char *sa = fedc_config_origin(c, "privacy", "secure_aggregation");
  const int dp = c->dp_noise_multiplier > 0.0;
  if (c->dp_noise_at != FEDC_NOISE_AT_SITES) {
    if (dp && c->secagg)
      return fedc_error_set(FEDC_ECONFIG,
                            "%s: [privacy] noise_multiplier = %g with secure_aggregation = true "
                            "(set at %s): central DP clips and noises each update at the "
                            "coordinator, which secure aggregation hides from it; set "
                            "[privacy] noise_at = sites (the sites clip and noise their own "
                            "updates), or turn one of them off",
                            nm, c->dp_noise_multiplier, sa);
    return 0;
  }
  if (!dp)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [privacy] noise_at = sites, but noise_multiplier = 0 (set at %s) "
                          "turns differential privacy off: there is no noise to add; set "
                          "noise_multiplier > 0 or remove noise_at",
                          at, nm);
  if (!c->secagg)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [privacy] noise_at = sites needs secure_aggregation = true (set "
                          "at %s): each site adds only 1/sqrt(m_min) of the noise, which "
                          "protects it only inside the masked sum; without secure aggregation "
                          "use noise_at = coordinator (central DP)",
                          at, sa);
  if (is_sim)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [privacy] noise_at = sites: the simulator does not implement "
                          "secure aggregation, which noise at the sites needs; simulate "
                          "central DP (noise_at = coordinator, the same noise on the sum)",
                          at);
  if (c->dp_adaptive_clip)
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [privacy] noise_at = sites with adaptive_clip = true (set at "
                          "%s): adaptive clipping needs a noised count of unclipped updates, "
                          "which fedc does not collect under secure aggregation; use a fixed "
                          "clip_norm",
                          at, fedc_config_origin(c, "privacy", "adaptive_clip"));
  fedc_dp_site_plan plan;
  int32_t m_min = fedc_dp_site_min_survivors(c->min_clients, c->secagg_neighbors,
                                             c->secagg_threshold);
  if (fedc_dp_site_plan_new(c->dp_noise_multiplier, c->dp_clip_norm, m_min,
                            c->clients_per_round, &plan) != 0) {
    char why[768];
    snprintf(why, sizeof why, "%s", fedc_error_msg());
    return fedc_error_set(FEDC_ECONFIG,
                          "%s: [privacy] noise_at = sites with clip_norm = %g (set at %s), "
                          "noise_multiplier = %g and [job] clients_per_round = %d: %s",
                          at, c->dp_clip_norm, fedc_config_origin(c, "privacy", "clip_norm"),
                          c->dp_noise_multiplier, (int)c->clients_per_round, why);
  }
  return 0;
}
