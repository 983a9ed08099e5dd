/*
 * dp.h - differential privacy for federated averaging: DP-FedAvg's server
 * side (McMahan, Ramage, Talwar and Zhang 2018, "Learning Differentially
 * Private Recurrent Language Models"), with optional adaptive clipping
 * (Andrew, Thakkar, McMahan and Ramaswamy 2021, "Differentially Private
 * Learning with Adaptive Clipping") and an RDP accountant (rdp.h).
 *
 * A round with DP on:
 *
 *   fedc_dp *dp;
 *   fedc_dp_params p = {.noise_multiplier = 1.0, .clip_norm = 1.0,
 *                       .delta = 1e-5, .epsilon_budget = 8.0,
 *                       .seed = secret_seed};   // not the job seed
 *   if (fedc_dp_new(&p, &dp) < 0) ...;          // the message names the key
 *   int stop;
 *   fedc_dp_would_exceed(dp, q, &stop);         // before each round
 *   for each of the m updates: delta = update - global;
 *       fedc_dp_clip(dp, delta, n, &unclipped_i, &norm_i);
 *   avg = unweighted mean of the m clipped deltas; unclipped = sum unclipped_i;
 *   fedc_dp_finish_round(dp, round, avg, n, m, unclipped, q);  // noise, S, ledger
 *   global += avg;                              // or the server optimizer
 *   double eps, order;
 *   fedc_dp_epsilon(dp, &eps, &order);          // for the store
 *   fedc_dp_free(dp);
 *
 * q is the sampling rate the accountant assumes (clients_per_round /
 * clients); docs/privacy.md says what the guarantee is and is not.
 */
#ifndef FEDC_DP_H
#define FEDC_DP_H

#include <stddef.h>
#include <stdint.h>

typedef struct fedc_dp_params {
  double noise_multiplier; /* z; 0 = DP off (then fedc_dp_new gives
                              FEDC_EINVAL: callers do not create it) */
  double clip_norm;        /* S, the initial clip with adaptive clipping */
  int adaptive;            /* Andrew et al. 2021 */
  double clip_quantile;    /* gamma, target fraction unclipped (0.5) */
  double clip_lr;          /* eta (0.2) */
  double delta;
  double epsilon_budget; /* 0 = none */
  /* The noise streams' seed. Whoever knows it can regenerate the noise and
   * subtract it: not the job seed that clients receive, but a secret one
   * (docs/privacy.md); the simulator may use the job seed. */
  uint64_t seed;
  /* m, the updates expected each round, for adaptive clipping only: when
   * > 0, sigma_b = m / 20 is fixed for the job and fedc_dp_new checks that
   * z is small enough for the noise split; 0 = sigma_b from each round's m,
   * checked at each round. */
  int32_t clients_per_round;
  /* 1: the sites clip and noise their own deltas under secure aggregation
   * (dp_site.h, [privacy] noise_at = sites). fedc_dp_finish_round then only
   * accounts the round at (q, z): the average it gets is already noised.
   * Not with adaptive clipping (fedc_dp_new refuses it). */
  int noise_at_sites;
} fedc_dp_params;

typedef struct fedc_dp fedc_dp;

/*
 * A DP state with clip S = p->clip_norm and no rounds accounted. FEDC_EINVAL
 * naming the parameter for: z not > 0 (DP off: do not create one), S not
 * > 0, delta not in (0, 1), a negative budget, and with adaptive clipping a
 * quantile not in (0, 1), a learning rate not > 0, or z too large for the
 * noise split (z >= 2 sigma_b = clients_per_round / 10). FEDC_ENOMEM.
 */
int fedc_dp_new(const fedc_dp_params *p, fedc_dp **out);
void fedc_dp_free(fedc_dp *d);

/* The current clip norm S. */
double fedc_dp_clip_norm(const fedc_dp *d);

/*
 * Clip delta (an update minus the global model, n floats) in place to L2 norm
 * <= S: scaled by S / ||delta|| when over. *unclipped = 1 when ||delta|| <= S
 * (else 0); *norm = ||delta|| before clipping (double). Either output may be
 * NULL. FEDC_ENONFINITE (delta untouched) when a value is NaN or infinite.
 */
int fedc_dp_clip(const fedc_dp *d, float *delta, size_t n, int *unclipped,
                 double *norm);

/*
 * End of round `round` (>= 0): avg_delta is the unweighted mean of the m >= 1
 * clipped deltas, unclipped (0 .. m) how many were not clipped, q in (0, 1]
 * the sampling rate for the accountant.
 *
 * Adds N(0, (z_delta S / m)^2) to each coordinate, drawn from the stream
 * (seed, "dp", round, 0), so that a round's noise is the same whoever runs it.
 * Without adaptive clipping z_delta = z. With it, sigma_b = m / 20 (m from
 * clients_per_round when set), z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2), and
 * after the noise S <- S exp(-eta (b - gamma)) with
 * b = (unclipped + N(0, sigma_b^2)) / m drawn from (seed, "dp", round, 1);
 * S is kept within [1e-30, 1e30]. Records one accountant step at (q, z).
 * With noise_at_sites the average is left as it is (the sites noised it)
 * and only the accountant step is recorded.
 *
 * FEDC_EINVAL for a bad argument or (adaptive, clients_per_round 0) a round
 * whose m is too small for the split (z >= m / 10); FEDC_ERANGE if the
 * accountant fails. On an error nothing has changed: not avg_delta, not S,
 * not the ledger.
 */
int fedc_dp_finish_round(fedc_dp *d, int32_t round, float *avg_delta,
                         size_t n, int32_t m, int32_t unclipped, double q);

/* The standard deviation fedc_dp_finish_round adds to each coordinate for a
 * round of m updates at the current S: z_delta S / m. FEDC_EINVAL as there. */
int fedc_dp_noise_std(const fedc_dp *d, int32_t m, double *std);

/* (epsilon, delta) so far, delta from the parameters: epsilon (0 before any
 * round) and the RDP order that gives it (order may be NULL). */
int fedc_dp_epsilon(const fedc_dp *d, double *eps, double *order);

/* *exceed = 1 when one more round at rate q would take epsilon past
 * epsilon_budget (never with budget 0). Call before starting a round. */
int fedc_dp_would_exceed(const fedc_dp *d, double q, int *exceed);

/*
 * Persisting across coordinator restarts: set S to clip_norm (> 0) and
 * account `rounds` >= 0 past rounds at rate q in (0, 1] with the job's z.
 * Call once per (q, rounds) run of the stored ledger, the last S last.
 * On an error nothing has changed.
 */
int fedc_dp_restore(fedc_dp *d, double clip_norm, double q, int64_t rounds);

/*
 * A release outside the rounds, such as a job's statistics under DP
 * (data/schema.h, fedc_stats_compute_dp): one step of the Gaussian
 * mechanism with noise multiplier sigma > 0 at sampling rate 1, recorded in
 * the ledger (so in epsilon and the budget) but not counted as a round.
 * FEDC_EINVAL for a bad sigma; on an error nothing has changed.
 */
int fedc_dp_account_release(fedc_dp *d, double sigma);

/* Rounds accounted so far (finished and restored). */
int64_t fedc_dp_rounds(const fedc_dp *d);

/*
 * Taking a round back (a coordinator whose durable write failed after the
 * round was aggregated): everything fedc_dp_finish_round changes is the
 * clip norm S, the rounds counter and the accountant's ledger; the noise
 * has no stream position to restore, since each round's noise is drawn
 * from streams derived afresh from (seed, round). fedc_dp_copy_state makes
 * dst's S, rounds and ledger src's. Copied into a spare state made by
 * fedc_dp_new with the same parameters before a round and copied back
 * after it, it leaves d as if the round had never been finished: the round
 * finished again draws the same noise and spends the same privacy, bit for
 * bit. Never allocates; FEDC_EINVAL (dst unchanged) when the two states
 * were made with other parameters.
 */
int fedc_dp_copy_state(fedc_dp *dst, const fedc_dp *src);

#endif
