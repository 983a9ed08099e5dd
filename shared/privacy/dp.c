/*
 * dp.c - DP-FedAvg's server side: clip each client's update, noise the
 * average, adapt the clip, account the privacy spent.
 *
 * User-level DP-FedAvg (McMahan, Ramage, Talwar and Zhang 2018, with the
 * unweighted mean of the clipped deltas): each update's difference from the global model
 * is clipped to L2 norm S, so one client moves the sum of the m clipped
 * deltas by at most S; the mean gets Gaussian noise of standard deviation
 * z S / m, i.e. the sum is released through the Gaussian mechanism with noise
 * multiplier z. Over the rounds, with clients sampled at rate q, the
 * accountant (rdp.c) composes the sampled Gaussian mechanism's RDP and
 * converts it to (epsilon, delta).
 *
 * Adaptive clipping (Andrew, Thakkar, McMahan and Ramaswamy 2021) moves S
 * geometrically towards the gamma-quantile of the update norms from the
 * noised count of unclipped updates. That count is a second Gaussian query
 * on the same clients; the paper's section 3 shows that noise
 * multipliers z_delta on the sum and sigma_b on the count (whose per-client
 * contribution b_i - 1/2 has sensitivity 1/2) are together worth one
 * Gaussian mechanism with z = (z_delta^-2 + (2 sigma_b)^-2)^(-1/2). So the
 * configured z is what the accountant records, and the update noise is
 * raised to z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2), with the paper's
 * sigma_b = m / 20. That needs z < 2 sigma_b = m / 10. fedc noises the raw
 * count of unclipped updates; with m public that is the centred sum plus
 * m / 2, the same release.
 *
 * All noise comes from streams derived from the DP seed and the round
 * (rng.h), so a round's noise does not depend on threads or timing; that
 * seed must be secret (dp.h, docs/privacy.md).
 */
#include "privacy/dp.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "privacy/rdp.h"
#include "base/rng.h"

/* First name of the DP streams ("dp" in ASCII); the third name says which
 * draw: the update noise or the unclipped-count noise. */
#define STREAM_DP 0x6470u
#define STREAM_DP_UPDATE 0u
#define STREAM_DP_COUNT 1u

/* sigma_b = m / COUNT_NOISE_DIV, the setting Andrew et al. 2021 recommend
 * (expected updates per round over 20). */
#define COUNT_NOISE_DIV 20.0

/* The adapted clip stays within these: a long run of all-zero updates
 * would otherwise take it to 0 (and every later update to 0). */
#define CLIP_MIN 1e-30
#define CLIP_MAX 1e30

struct fedc_dp {
  fedc_dp_params p;
  double clip;
  int64_t rounds;
  fedc_accountant *acct;
};

/*
 * The update's noise multiplier for a round of m updates, and sigma_b (0
 * without adaptive clipping). FEDC_EINVAL naming the values when z is too
 * large for the split.
 */
static int noise_split(const fedc_dp_params *p, int32_t m, double *z_delta,
                       double *sigma_b) {
  const double z = p->noise_multiplier;
  if (!p->adaptive) {
    *z_delta = z;
    *sigma_b = 0.0;
    return 0;
  }
  const int32_t mm = p->clients_per_round > 0 ? p->clients_per_round : m;
  const double sb = (double)mm / COUNT_NOISE_DIV;
  const double rest = 1.0 / (z * z) - 1.0 / (4.0 * sb * sb);
  if (!(rest > 0.0))
    return fedc_error_set(
        FEDC_EINVAL,
        "privacy: noise_multiplier = %g is too large for adaptive_clip with "
        "%d clients per round: the clipped count's noise sigma_b = m / 20 = "
        "%g leaves nothing for the update unless noise_multiplier < m / 10 = "
        "%g (Andrew et al. 2021); raise clients_per_round or turn "
        "adaptive_clip off",
        z, (int)mm, sb, 2.0 * sb);
  *z_delta = 1.0 / sqrt(rest);
  *sigma_b = sb;
  return 0;
}

int fedc_dp_new(const fedc_dp_params *p, fedc_dp **out) {
  if (out == NULL || p == NULL)
    return fedc_error_set(FEDC_EINVAL, "privacy: no parameters or no output");
  *out = NULL;
  if (!(p->noise_multiplier > 0.0 && isfinite(p->noise_multiplier)))
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: noise_multiplier = %g: DP needs a finite "
                          "z > 0 (0 turns DP off: do not create a DP state)",
                          p->noise_multiplier);
  if (!(p->clip_norm > 0.0 && isfinite(p->clip_norm)))
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: clip_norm = %g is not a finite value > 0",
                          p->clip_norm);
  if (!(p->delta > 0.0 && p->delta < 1.0))
    return fedc_error_set(FEDC_EINVAL, "privacy: delta = %g is not in (0, 1)",
                          p->delta);
  if (!(p->epsilon_budget >= 0.0 && isfinite(p->epsilon_budget)))
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: epsilon_budget = %g is not a finite value "
                          ">= 0",
                          p->epsilon_budget);
  if (p->clients_per_round < 0)
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: clients_per_round = %d is negative",
                          (int)p->clients_per_round);
  if (p->adaptive && p->noise_at_sites)
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: adaptive clipping needs the count of unclipped updates, "
                          "which the sites would have to noise and sum under secure "
                          "aggregation; with noise at the sites the clip norm is fixed");
  if (p->adaptive) {
    if (!(p->clip_quantile > 0.0 && p->clip_quantile < 1.0))
      return fedc_error_set(FEDC_EINVAL,
                            "privacy: clip_quantile = %g is not in (0, 1)",
                            p->clip_quantile);
    if (!(p->clip_lr > 0.0 && isfinite(p->clip_lr)))
      return fedc_error_set(FEDC_EINVAL,
                            "privacy: clip_lr = %g is not a finite value > 0",
                            p->clip_lr);
    if (p->clients_per_round > 0) {
      double zd = 0.0, sb = 0.0;
      int rc = noise_split(p, p->clients_per_round, &zd, &sb);
      if (rc < 0) return rc;
    }
  }
  fedc_dp *d = fedc_calloc(1, sizeof *d);
  if (d == NULL)
    return fedc_error_set(FEDC_ENOMEM, "privacy: out of memory");
  int rc = fedc_accountant_new(NULL, 0, &d->acct);
  if (rc < 0) {
    fedc_free(d);
    return rc;
  }
  d->p = *p;
  d->clip = p->clip_norm;
  *out = d;
  return 0;
}

void fedc_dp_free(fedc_dp *d) {
  if (d == NULL) return;
  fedc_accountant_free(d->acct);
  fedc_free(d);
}

double fedc_dp_clip_norm(const fedc_dp *d) { return d ? d->clip : NAN; }

int64_t fedc_dp_rounds(const fedc_dp *d) { return d ? d->rounds : 0; }

/* The parameters are compared field by field: memcmp would also compare
 * the struct's padding. */
static int same_params(const fedc_dp_params *a, const fedc_dp_params *b) {
  return a->noise_multiplier == b->noise_multiplier && a->clip_norm == b->clip_norm &&
         a->adaptive == b->adaptive && a->clip_quantile == b->clip_quantile &&
         a->clip_lr == b->clip_lr && a->delta == b->delta &&
         a->epsilon_budget == b->epsilon_budget && a->seed == b->seed &&
         a->clients_per_round == b->clients_per_round &&
         a->noise_at_sites == b->noise_at_sites;
}

int fedc_dp_copy_state(fedc_dp *dst, const fedc_dp *src) {
  if (dst == NULL || src == NULL) return fedc_error_set(FEDC_EINVAL, "privacy: no DP state");
  if (dst == src) return 0;
  if (!same_params(&dst->p, &src->p))
    return fedc_error_set(FEDC_EINVAL, "privacy: copy between DP states of other parameters");
  int rc = fedc_accountant_copy(dst->acct, src->acct);
  if (rc < 0) return rc;
  dst->clip = src->clip;
  dst->rounds = src->rounds;
  return 0;
}

/*
 * The norm is summed in double: float32 squares of a million coordinates
 * would lose the small ones. Scaling by S / norm in float can leave the
 * clipped norm above S by a relative 2^-24 at most (one rounding per
 * coordinate), which the accounting ignores, as every float implementation
 * does.
 */
int fedc_dp_clip(const fedc_dp *d, float *delta, size_t n, int *unclipped,
                 double *norm) {
  if (d == NULL || (delta == NULL && n > 0))
    return fedc_error_set(FEDC_EINVAL, "privacy: no DP state or no update");
  double ss = 0.0;
  for (size_t i = 0; i < n; i++) ss += (double)delta[i] * (double)delta[i];
  if (!isfinite(ss))
    return fedc_error_set(FEDC_ENONFINITE,
                          "privacy: the update has a NaN or infinite value");
  const double nrm = sqrt(ss);
  const int under = nrm <= d->clip;
  if (!under) {
    const double scale = d->clip / nrm;
    for (size_t i = 0; i < n; i++) delta[i] = (float)((double)delta[i] * scale);
  }
  if (unclipped) *unclipped = under;
  if (norm) *norm = nrm;
  return 0;
}

int fedc_dp_noise_std(const fedc_dp *d, int32_t m, double *std) {
  if (d == NULL || std == NULL)
    return fedc_error_set(FEDC_EINVAL, "privacy: no DP state or no output");
  if (m < 1)
    return fedc_error_set(FEDC_EINVAL, "privacy: %d updates in a round",
                          (int)m);
  double zd = 0.0, sb = 0.0;
  int rc = noise_split(&d->p, m, &zd, &sb);
  if (rc < 0) return rc;
  *std = zd * d->clip / (double)m;
  return 0;
}

/*
 * The order matters for the "nothing changed on error" contract: every
 * check, then the accountant (the one step that can fail), then the noise
 * and the clip update, which cannot.
 */
int fedc_dp_finish_round(fedc_dp *d, int32_t round, float *avg_delta,
                         size_t n, int32_t m, int32_t unclipped, double q) {
  if (d == NULL || (avg_delta == NULL && n > 0))
    return fedc_error_set(FEDC_EINVAL, "privacy: no DP state or no average");
  if (round < 0)
    return fedc_error_set(FEDC_EINVAL, "privacy: round %d is negative",
                          (int)round);
  if (m < 1)
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: round %d averaged %d updates", (int)round,
                          (int)m);
  if (unclipped < 0 || unclipped > m)
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: round %d: %d unclipped of %d updates",
                          (int)round, (int)unclipped, (int)m);
  if (!(q > 0.0 && q <= 1.0))
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: round %d: sampling rate q = %g is not in "
                          "(0, 1]",
                          (int)round, q);
  double z_delta = 0.0, sigma_b = 0.0;
  int rc = noise_split(&d->p, m, &z_delta, &sigma_b);
  if (rc < 0) return rc;
  if ((rc = fedc_accountant_step(d->acct, q, d->p.noise_multiplier, 1)) < 0)
    return rc;
  if (d->p.noise_at_sites) { /* the sites noised the sum (dp_site.h) */
    d->rounds++;
    return 0;
  }

  const double std = z_delta * d->clip / (double)m;
  fedc_rng r;
  fedc_rng_derive(&r, d->p.seed, STREAM_DP, (uint64_t)round, STREAM_DP_UPDATE);
  for (size_t i = 0; i < n; i++)
    avg_delta[i] = (float)((double)avg_delta[i] + std * fedc_rng_normal(&r));

  if (d->p.adaptive) {
    fedc_rng_derive(&r, d->p.seed, STREAM_DP, (uint64_t)round,
                    STREAM_DP_COUNT);
    const double b =
        ((double)unclipped + sigma_b * fedc_rng_normal(&r)) / (double)m;
    double c = d->clip * exp(-d->p.clip_lr * (b - d->p.clip_quantile));
    d->clip = c < CLIP_MIN ? CLIP_MIN : (c > CLIP_MAX ? CLIP_MAX : c);
  }
  d->rounds++;
  return 0;
}

int fedc_dp_epsilon(const fedc_dp *d, double *eps, double *order) {
  if (d == NULL || eps == NULL)
    return fedc_error_set(FEDC_EINVAL, "privacy: no DP state or no output");
  return fedc_accountant_epsilon(d->acct, d->p.delta, eps, order);
}

int fedc_dp_would_exceed(const fedc_dp *d, double q, int *exceed) {
  if (d == NULL || exceed == NULL)
    return fedc_error_set(FEDC_EINVAL, "privacy: no DP state or no output");
  if (!(q > 0.0 && q <= 1.0))
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: sampling rate q = %g is not in (0, 1]", q);
  if (d->p.epsilon_budget == 0.0) {
    *exceed = 0;
    return 0;
  }
  double eps;
  int rc = fedc_accountant_peek(d->acct, q, d->p.noise_multiplier, 1,
                                d->p.delta, &eps);
  if (rc < 0) return rc;
  *exceed = eps > d->p.epsilon_budget;
  return 0;
}

/* One step at q = 1: the accountant's sampled Gaussian at full sampling is
 * the Gaussian mechanism's alpha / (2 sigma^2) (rdp.h). */
int fedc_dp_account_release(fedc_dp *d, double sigma) {
  if (d == NULL) return fedc_error_set(FEDC_EINVAL, "privacy: no DP state");
  if (!(sigma > 0.0) || !isfinite(sigma))
    return fedc_error_set(FEDC_EINVAL, "privacy: release noise multiplier %g is not > 0", sigma);
  return fedc_accountant_step(d->acct, 1.0, sigma, 1);
}

int fedc_dp_restore(fedc_dp *d, double clip_norm, double q, int64_t rounds) {
  if (d == NULL) return fedc_error_set(FEDC_EINVAL, "privacy: no DP state");
  if (!(clip_norm > 0.0 && isfinite(clip_norm)))
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: restored clip norm %g is not a finite "
                          "value > 0",
                          clip_norm);
  if (!(q > 0.0 && q <= 1.0))
    return fedc_error_set(FEDC_EINVAL,
                          "privacy: restored sampling rate q = %g is not in "
                          "(0, 1]",
                          q);
  if (rounds < 0)
    return fedc_error_set(FEDC_EINVAL, "privacy: %lld restored rounds",
                          (long long)rounds);
  int rc = fedc_accountant_step(d->acct, q, d->p.noise_multiplier, rounds);
  if (rc < 0) return rc;
  d->clip = clip_norm;
  d->rounds += rounds;
  return 0;
}
