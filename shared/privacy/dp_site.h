/*
 * dp_site.h - distributed DP-FedAvg under secure aggregation ([privacy]
 * noise_at = sites, docs/privacy.md "Noise at the sites"): each selected
 * site clips its own delta and adds its share of the Gaussian noise before
 * masking, so that the sum the coordinator unmasks is already noised.
 *
 * With noise multiplier z, clip norm S and m_min the fewest survivors a
 * round may commit with, each site adds N(0, (z S / sqrt(m_min))^2) per
 * coordinate; the sum over m >= m_min sites has standard deviation
 * sqrt(m / m_min) z S >= z S, the central mechanism's. The coordinator
 * and fedc-client share the plan (fedc_dp_site_plan_new): the per-site
 * noise, and the per-coordinate range of the fixed-point words that must
 * hold a clipped and noised value.
 *
 *   fedc_dp_site_plan plan;
 *   fedc_dp_site_plan_new(z, S, m_min, max_parties, &plan);  // range checked
 *   uint8_t seed[FEDC_DP_SITE_SEED_BYTES];
 *   fedc_dp_site_seed(seed);                  // the system's random source
 *   fedc_dp_site_apply(delta, n, S, plan.noise_std, seed, &unclipped, &norm);
 *   // delta is then masked with weight 1 and clamp plan.range
 */
#ifndef FEDC_DP_SITE_H
#define FEDC_DP_SITE_H

#include <stddef.h>
#include <stdint.h>

#define FEDC_DP_SITE_SEED_BYTES 32
/* The fixed-point range is the clip plus this many per-site noise
 * deviations: a coordinate is clamped with probability below 1.3e-15. */
#define FEDC_DP_SITE_RANGE_SIGMAS 8.0

typedef struct fedc_dp_site_plan {
  double noise_std;  /* z S / sqrt(m_min), each site's per coordinate */
  double range;      /* S + 8 noise_std: the masked words' clamp */
  int32_t m_min;     /* the fewest survivors a round may commit with */
  int32_t frac_bits; /* the fixed point's, max_parties parties of weight 1 */
} fedc_dp_site_plan;

/*
 * m_min for a job: the larger of min_clients (at least 2) and one more than
 * secure aggregation's Shamir threshold t for the smallest round
 * (max(min_clients, 2) parties; neighbors and fraction as [privacy]
 * secagg_neighbors and secagg_threshold): a survivor's self-mask needs t
 * other survivors to reveal it, so fewer than t + 1 survivors never commit.
 */
int32_t fedc_dp_site_min_survivors(int32_t min_clients, int32_t neighbors, double fraction);

/*
 * The plan for noise multiplier z > 0, clip norm S > 0, m_min >= 1 and at
 * most max_parties >= 1 parties in a round. FEDC_EINVAL for a bad argument,
 * FEDC_ERANGE naming S, z and the parties when the range does not fit the
 * 32-bit fixed point (secagg.h: N (range 2^f + 1/2) < 2^31 with N =
 * max_parties, range <= 2^20) with at least 4 fractional bits.
 */
int fedc_dp_site_plan_new(double z, double clip_norm, int32_t m_min, int32_t max_parties,
                          fedc_dp_site_plan *out);

/* 32 bytes from the system's random source (getrandom). FEDC_EIO. */
int fedc_dp_site_seed(uint8_t seed[FEDC_DP_SITE_SEED_BYTES]);

/*
 * Clip delta (n floats) in place to L2 norm <= clip_norm (norm in double),
 * then add N(0, noise_std^2) to each coordinate, drawn from AES-128 in
 * counter mode keyed by seed (secagg.h's PRG: a cryptographic stream, so
 * with a seed from fedc_dp_site_seed the noise cannot be predicted from the
 * job) by the Box-Muller transform on 53-bit uniforms. *unclipped = 1 when
 * the norm was <= clip_norm, *norm the norm before clipping (either may be
 * NULL). FEDC_ENONFINITE (delta untouched) for a NaN or infinite value,
 * FEDC_EINVAL, FEDC_ENOMEM.
 */
int fedc_dp_site_apply(float *delta, size_t n, double clip_norm, double noise_std,
                       const uint8_t seed[FEDC_DP_SITE_SEED_BYTES], int *unclipped,
                       double *norm);

#endif
