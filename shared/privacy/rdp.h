/*
 * rdp.h - Rényi differential privacy accounting for the sampled Gaussian
 * mechanism.
 *
 * One step of DP-FedAvg releases a sum of clipped updates from a Poisson
 * sample of the clients (each in with probability q) plus Gaussian noise of
 * standard deviation sigma times the clip norm. Its privacy loss is measured
 * as Rényi DP at a set of orders alpha (Mironov 2017), the per-step value
 * computed as in Mironov, Talwar and Zhang 2019, "Rényi Differential Privacy
 * of the Sampled Gaussian Mechanism"; steps compose by adding the RDP at each
 * order; the (epsilon, delta) reported is the best over the orders of the
 * conversion of Canonne, Kamath and Steinke 2020 / Balle et al. 2020:
 *
 *   epsilon = min_a  RDP(a) + log((a - 1) / a) - (log delta + log a) / (a - 1)
 *
 * Usage:
 *
 *   fedc_accountant *acct;
 *   if (fedc_accountant_new(NULL, 0, &acct) < 0) ...;   // default orders
 *   fedc_accountant_step(acct, 0.01, 1.1, 1000);        // q, sigma, steps
 *   double eps, order;
 *   fedc_accountant_epsilon(acct, 1e-5, &eps, &order);
 *   fedc_accountant_free(acct);
 *
 * docs/privacy.md explains the guarantee and the assumption (Poisson
 * sampling) behind it.
 */
#ifndef FEDC_RDP_H
#define FEDC_RDP_H

#include <stddef.h>
#include <stdint.h>

/*
 * The default orders, 72 of them: 1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4,
 * 4.5, every integer 5 .. 64, 128 and 256.
 */
#define FEDC_RDP_DEFAULT_ORDERS 72

/*
 * RDP at each of the n orders (each finite and > 1) of one step of the
 * Poisson-subsampled Gaussian mechanism with sampling rate q in [0, 1] and
 * noise multiplier sigma >= 0 (noise standard deviation over the L2
 * sensitivity), written to rdp[0 .. n). q = 0 gives 0, q = 1 the Gaussian
 * mechanism's alpha / (2 sigma^2), sigma = 0 with q > 0 gives +infinity.
 * FEDC_EINVAL for a bad argument; FEDC_ERANGE if a fractional order's series
 * does not converge (not seen for sigma up to 1000 and q down to 1e-12).
 */
int fedc_rdp_sampled_gaussian(double q, double sigma, const double *orders,
                              size_t n, double *rdp);

/*
 * The (epsilon, delta) guarantee implied by RDP values rdp[i] >= 0 (possibly
 * +infinity) at orders[i] > 1, for delta in (0, 1): the smallest epsilon over
 * the orders, by the conversion above, never below 0; *best_order (may be
 * NULL) is the order that gives it. An order whose RDP is exactly 0 gives
 * epsilon 0 (the two distributions are then equal). Every RDP infinite gives
 * *eps = +infinity and *best_order = orders[0]. FEDC_EINVAL for a bad
 * argument.
 */
int fedc_rdp_to_epsilon(const double *orders, const double *rdp, size_t n,
                        double delta, double *eps, double *best_order);

/* An accountant: the RDP of every step so far, at a fixed set of orders. */
typedef struct fedc_accountant fedc_accountant;

/*
 * A new accountant with no steps, at the n given orders (each finite and
 * > 1; copied) or, with orders NULL, at the FEDC_RDP_DEFAULT_ORDERS default
 * orders (n is then ignored). FEDC_EINVAL for a bad order, FEDC_ENOMEM.
 */
int fedc_accountant_new(const double *orders, size_t n, fedc_accountant **out);

/*
 * Record `steps` >= 0 steps of the sampled Gaussian mechanism at (q, sigma).
 * Never allocates. On an error the accountant is unchanged.
 */
int fedc_accountant_step(fedc_accountant *a, double q, double sigma,
                         int64_t steps);

/* (epsilon, delta) of the steps so far (0 with none); best_order may be NULL. */
int fedc_accountant_epsilon(const fedc_accountant *a, double delta,
                            double *eps, double *best_order);

/*
 * What epsilon would be after `steps` more steps at (q, sigma), without
 * changing a. Allocates a scratch vector of one double per order
 * (FEDC_ENOMEM); reuses the per-step RDP when (q, sigma) are those of the
 * last fedc_accountant_step.
 */
int fedc_accountant_peek(const fedc_accountant *a, double q, double sigma,
                         int64_t steps, double delta, double *eps);

/* Steps recorded so far. */
int64_t fedc_accountant_steps(const fedc_accountant *a);

/*
 * Make dst's ledger src's: its steps and RDP sums (and its per-step memo),
 * so that a copy taken before a step and copied back takes the step back
 * exactly, bit for bit (an RDP sum minus a step's value would not be).
 * Never allocates. FEDC_EINVAL when the two were not made with the same
 * orders; dst is then unchanged.
 */
int fedc_accountant_copy(fedc_accountant *dst, const fedc_accountant *src);

void fedc_accountant_free(fedc_accountant *a);

#endif
