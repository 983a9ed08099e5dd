/*
 * dp_site.c - a site's clip and noise before a secure round, when the job
 * says "noise_at": "sites" (docs/privacy.md "Noise at the sites";
 * shared/privacy/dp_site.h).
 *
 * The job object's privacy fields give the noise multiplier z, the clip
 * norm S and m_min, the fewest survivors a round commits with. The site
 * computes its noise z S / sqrt(m_min) itself from those (the noise_std the
 * coordinator also sends is only checked against it), clips its delta to
 * S, adds the noise from a seed drawn from getrandom for this round (never
 * the job seed, which every client knows), and then the delta goes into
 * the masked sum with weight 1; the secure round then refuses to go on
 * with fewer than m_min parties or survivors (fedc_secagg_client_require),
 * whatever the coordinator said m_min was. A job that asks for noise at the sites
 * without usable fields is refused rather than sending an unnoised delta.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "client.h"
#include "privacy/dp_site.h"

static double field(const cJSON *p, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, name);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int fedc__client_dp_site(const char *job_json, int32_t round, float *delta, size_t n,
                         int *on, uint32_t *min_survivors) {
  *on = 0;
  *min_survivors = 0;
  cJSON *job = job_json ? cJSON_Parse(job_json) : NULL;
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(job, "privacy");
  const cJSON *at = cJSON_GetObjectItemCaseSensitive(p, "noise_at");
  if (!cJSON_IsString(at) || strcmp(at->valuestring, "sites") != 0) {
    cJSON_Delete(job);
    return 0;
  }
  const double z = field(p, "noise_multiplier"), s = field(p, "clip_norm"),
               m = field(p, "min_survivors"), told = field(p, "noise_std");
  cJSON_Delete(job);
  if (!(z > 0 && isfinite(z) && s > 0 && isfinite(s) && m >= 1 && m <= 1e6 && m == floor(m)))
    return fedc_error_set(FEDC_EFORMAT,
                          "the job asks for noise at the sites without a usable "
                          "noise_multiplier (%g), clip_norm (%g) and min_survivors (%g)",
                          z, s, m);
  const double std = z * s / sqrt(m);
  if (isfinite(told) && fabs(told - std) > 1e-9 * std)
    fedc_log_warn("msg=\"the job's noise_std differs from z * clip_norm / sqrt(min_survivors); "
                  "adding the latter\" noise_std=%g computed=%g",
                  told, std);
  uint8_t seed[FEDC_DP_SITE_SEED_BYTES];
  int unclipped = 0;
  double norm = 0;
  int rc = fedc_dp_site_seed(seed);
  if (rc == 0) rc = fedc_dp_site_apply(delta, n, s, std, seed, &unclipped, &norm);
  memset(seed, 0, sizeof seed);
  if (rc != 0) return rc;
  *on = 1;
  *min_survivors = (uint32_t)m;
  fedc_log_info("msg=\"delta clipped and noised at the site\" round=%d norm=%.6g clip_norm=%g "
                "clipped=%d noise_std=%.6g min_survivors=%d",
                (int)round, norm, s, !unclipped, std, (int)m);
  return 0;
}
