/*
 * scaffold.h - the control variates of SCAFFOLD (Karimireddy et al. 2020,
 * "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning",
 * ICML), option II of its client variate update.
 *
 * A round from global model x with server variate c, for client i with
 * variate c_i that takes K local steps of rate lr:
 *   local step   y <- y - lr (g_i(y) + c - c_i)    (ml/train.h correction)
 *   client       c_i+ = c_i - c + (x - y) / (K lr)    (option II)
 *                sends y (its model) and dc_i = c_i+ - c_i
 *   server       x <- x + server_lr (avg_i y_i - x)   (registry: scaffold)
 *                c <- c + sum_{i in S} (n_i / n) dc_i
 * where n_i are client i's samples and n those of all N clients. The
 * paper weighs clients uniformly (c <- c + 1/N sum dc_i, x by the plain
 * mean); fedc's model average is FedAvg's sample-weighted one, whose
 * objective is sum_i (n_i/n) f_i, so c, the estimate of that objective's
 * gradient, takes the same weights (the two agree when the n_i are equal;
 * docs/strategies.md gives the measured difference under label skew).
 * The server variate's sum is kept in FedAvg's exact fixed point, so c is
 * bit-identical for every arrival order; each delta is checked (finite,
 * |dc| < 2^31) before it is folded.
 * Drivers keep c_i (at the client) and c (with the round's commit).
 */
#ifndef FEDC_AGG_SCAFFOLD_H
#define FEDC_AGG_SCAFFOLD_H

#include <stddef.h>
#include <stdint.h>

/* corr = c - c_i, the correction a client's local steps add. */
void fedc_scaffold_correction(const float *c, const float *ci, size_t n, float *corr);

/*
 * Option II after local training from x to y in steps >= 1 steps of rate
 * lr > 0: writes c_i+ into ci_new and c_i+ - c_i into delta (either may
 * alias ci only as ci_new; delta must not alias). FEDC_EINVAL for steps < 1
 * or lr <= 0; FEDC_ENONFINITE when a result is not finite.
 */
int fedc_scaffold_client_update(const float *c, const float *ci, const float *x,
                                const float *y, size_t n, int64_t steps, float lr,
                                float *ci_new, float *delta);

typedef struct fedc_scaffold_server fedc_scaffold_server;

/* The server variate (zero) for models of n weights; total_weight >= 1 is
 * n, the samples of all the federation's clients (N for the paper's
 * uniform weights, each add then of weight 1). */
int fedc_scaffold_server_new(size_t n, double total_weight, fedc_scaffold_server **out);
void fedc_scaffold_server_free(fedc_scaffold_server *s);
/* Forget the round's deltas. */
int fedc_scaffold_server_begin(fedc_scaffold_server *s);
/* Fold one client's delta in with weight n_i (1..2^40); a bad one leaves
 * the state as it was. */
int fedc_scaffold_server_add(fedc_scaffold_server *s, const float *delta, size_t n,
                             uint64_t weight);
/* c += sum of the round's weighted deltas / total_weight (nothing when
 * none came). The sum is kept until the next begin, so a driver that
 * restores c (an aborted commit) can finish the same round again. */
int fedc_scaffold_server_finish(fedc_scaffold_server *s);
/* The current server variate (n weights) and its deltas this round. */
const float *fedc_scaffold_server_variate(const fedc_scaffold_server *s);
int32_t fedc_scaffold_server_count(const fedc_scaffold_server *s);
/* Set c (a restart restoring the committed variate, or an aborted
 * commit); the round's sum of deltas is kept. */
int fedc_scaffold_server_set(fedc_scaffold_server *s, const float *c, size_t n);

#endif
