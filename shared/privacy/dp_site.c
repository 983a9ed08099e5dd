/*
 * dp_site.c - a site's share of distributed DP-FedAvg (dp_site.h): the
 * plan both sides agree on, the site's clip and noise, and the noise's
 * seed from the system's random source.
 *
 * The noise stream is secagg.h's PRG (AES-128 in counter mode), keyed by
 * 32 bytes from getrandom, read in chunks of CHUNK_WORDS words whose
 * counter nonces differ by the chunk's index, so a model of any size needs
 * only one chunk of memory. Pairs of 64-bit words give two 53-bit uniforms
 * and, by the Box-Muller transform, two standard normals. Like any float
 * sampler this is the ideal Gaussian only up to rounding (docs/privacy.md).
 */
#include "privacy/dp_site.h"

#include <math.h>
#include <string.h>
#include <sys/random.h>

#include "base/alloc.h"
#include "base/error.h"
#include "privacy/secagg.h"

#define CHUNK_WORDS 8192 /* 32-bit words per PRG call: 2048 normals */
#define MIN_FRAC_BITS 4

int32_t fedc_dp_site_min_survivors(int32_t min_clients, int32_t neighbors, double fraction) {
  int32_t m = min_clients > 2 ? min_clients : 2;
  int32_t t = fedc_secagg_threshold(fedc_secagg_degree(m, neighbors), fraction);
  return t + 1 > m ? t + 1 : m;
}

int fedc_dp_site_plan_new(double z, double clip_norm, int32_t m_min, int32_t max_parties,
                          fedc_dp_site_plan *out) {
  if (out == NULL || !(z > 0.0 && isfinite(z)) || !(clip_norm > 0.0 && isfinite(clip_norm)) ||
      m_min < 1 || max_parties < 1)
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: site noise needs noise_multiplier > 0, clip_norm > 0 and "
                          "at least one party (z = %g, S = %g, m_min = %d, parties = %d)",
                          z, clip_norm, (int)m_min, (int)max_parties);
  fedc_dp_site_plan p = {.noise_std = z * clip_norm / sqrt((double)m_min), .m_min = m_min};
  p.range = clip_norm + FEDC_DP_SITE_RANGE_SIGMAS * p.noise_std;
  int rc = p.range <= 1048576.0 ? fedc_secagg_frac_bits((uint64_t)max_parties, p.range,
                                                         &p.frac_bits)
                                : FEDC_ERANGE;
  if (rc != 0 || p.frac_bits < MIN_FRAC_BITS)
    return fedc_error_set(FEDC_ERANGE,
                          "privacy: with noise at the sites, a masked coordinate must hold the "
                          "clipped delta and its noise, clip_norm + %g sigma = %g + %g x %g = "
                          "%g (sigma = noise_multiplier %g x clip_norm / sqrt(%d survivors)), "
                          "summed over %d parties in 32-bit fixed point with at least %d "
                          "fractional bits: it does not fit; lower clip_norm or "
                          "noise_multiplier, or the clients per round",
                          FEDC_DP_SITE_RANGE_SIGMAS, clip_norm, FEDC_DP_SITE_RANGE_SIGMAS,
                          p.noise_std, p.range, z, (int)m_min, (int)max_parties,
                          MIN_FRAC_BITS);
  *out = p;
  return 0;
}

int fedc_dp_site_seed(uint8_t seed[FEDC_DP_SITE_SEED_BYTES]) {
  size_t got = 0;
  while (got < FEDC_DP_SITE_SEED_BYTES) {
    ssize_t r = getrandom(seed + got, FEDC_DP_SITE_SEED_BYTES - got, 0);
    if (r <= 0) return fedc_error_set(FEDC_EIO, "privacy: getrandom failed for the noise seed");
    got += (size_t)r;
  }
  return 0;
}

/* A uniform in (0, 1] from two PRG words: the top 53 bits of their 64. */
static double uniform(const uint32_t *w) {
  uint64_t v = ((uint64_t)w[0] << 32 | w[1]) >> 11;
  return ((double)v + 1.0) * 0x1p-53;
}

/*
 * Clip first (the norm over the whole delta, in double, before anything
 * changes, so a NaN leaves it untouched), then noise chunk by chunk.
 */
int fedc_dp_site_apply(float *delta, size_t n, double clip_norm, double noise_std,
                       const uint8_t seed[FEDC_DP_SITE_SEED_BYTES], int *unclipped,
                       double *norm) {
  if ((delta == NULL && n > 0) || seed == NULL || !(clip_norm > 0.0) || !(noise_std >= 0.0) ||
      !isfinite(noise_std))
    return fedc_error_set(FEDC_EINVAL, "privacy: site clip and noise: bad argument");
  double ss = 0.0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(delta[i]))
      return fedc_error_set(FEDC_ENONFINITE, "privacy: delta %zu is %g", i, (double)delta[i]);
    ss += (double)delta[i] * (double)delta[i];
  }
  const double nrm = sqrt(ss);
  if (norm) *norm = nrm;
  if (unclipped) *unclipped = nrm <= clip_norm;
  if (nrm > clip_norm) {
    const double scale = clip_norm / nrm;
    for (size_t i = 0; i < n; i++) delta[i] = (float)((double)delta[i] * scale);
  }
  if (noise_std == 0.0) return 0;
  uint32_t *w = fedc_malloc_array(CHUNK_WORDS, sizeof *w);
  if (w == NULL) return fedc_error_set(FEDC_ENOMEM, "privacy: out of memory");
  uint8_t key[FEDC_SECAGG_SEED_BYTES];
  memcpy(key, seed, sizeof key);
  uint64_t nonce;
  memcpy(&nonce, seed + 16, sizeof nonce);
  const size_t per_chunk = CHUNK_WORDS / 2; /* normals per chunk: 2 words each */
  for (size_t at = 0, chunk = 0; at < n; at += per_chunk, chunk++) {
    uint64_t cn = nonce ^ (uint64_t)chunk;
    memcpy(key + 16, &cn, sizeof cn);
    memset(w, 0, CHUNK_WORDS * sizeof *w);
    fedc_secagg_prg_add(key, +1, w, CHUNK_WORDS);
    size_t len = n - at < per_chunk ? n - at : per_chunk;
    for (size_t k = 0; k < len; k += 2) {
      const double r = sqrt(-2.0 * log(uniform(w + 2 * k)));
      const double th = 2.0 * M_PI * uniform(w + 2 * k + 2);
      delta[at + k] = (float)((double)delta[at + k] + noise_std * r * cos(th));
      if (k + 1 < len)
        delta[at + k + 1] = (float)((double)delta[at + k + 1] + noise_std * r * sin(th));
    }
  }
  memset(key, 0, sizeof key);
  memset(w, 0, CHUNK_WORDS * sizeof *w);
  fedc_free(w);
  return 0;
}
