/*
 * server_opt.h - server optimizers on the aggregated delta (Reddi et al.
 * 2021, "Adaptive Federated Optimization", ICLR, Algorithm 2; FedAvgM from
 * Hsu et al. 2019).
 *
 * After a round's strategy has produced avg (FedAvg's weighted mean, or a
 * robust aggregate), the server treats d = avg - x as a pseudo-gradient
 * step and moves the global model x with it:
 *
 *     fedc_server_opt_params p = {.name = "fedadam", .lr = 0.01, .beta1 = 0.9,
 *                                 .beta2 = 0.99, .tau = 1e-3};
 *     fedc_server_opt *o;
 *     if (fedc_server_opt_new(&p, n, &o) != 0) ...;
 *     ... each round: strategy finish into avg, then
 *     fedc_server_opt_step(o, x, avg, n);       x is the new global model
 *     fedc_server_opt_free(o);
 *
 * The formulas are in server_opt.c and docs/strategies.md.
 */
#ifndef FEDC_SERVER_OPT_H
#define FEDC_SERVER_OPT_H

#include <stddef.h>
#include <stdint.h>

typedef struct fedc_server_opt fedc_server_opt;

typedef struct fedc_server_opt_params {
  const char *name; /* a registered strategy, whose registry entry names its optimizer:
                     * "fedavg" (x = x + lr * d; lr = 1 gives plain FedAvg, x = avg),
                     * "fedavgm", "fedadam", "fedyogi", "fedadagrad"; a strategy without
                     * one (median, krum, fedbuff, a program's) steps as "fedavg"; NULL is
                     * "fedavg"; a name not registered is FEDC_EINVAL */
  double lr, momentum, beta1, beta2, tau;
} fedc_server_opt_params;

/* A new optimizer for n weights, m = 0 and v = tau^2. FEDC_EINVAL for a
 * parameter outside its range (lr > 0; momentum, beta1, beta2 in [0, 1);
 * tau > 0), checked only where the optimizer uses it. */
int fedc_server_opt_new(const fedc_server_opt_params *p, size_t n, fedc_server_opt **out);
/* d = avg - x (the aggregated delta); update the state and x in place.
 * FEDC_ESHAPE for a wrong n, FEDC_ENONFINITE when avg or x holds a
 * non-finite value or the step would overflow float; on error nothing
 * changes. */
int fedc_server_opt_step(fedc_server_opt *o, float *x, const float *avg, size_t n);
/* The optimizer's state (momentum m, second moment v, step count) as floats,
 * so the coordinator can checkpoint it: size in floats, get, set (set checks
 * the size, FEDC_ESHAPE, and the values, and changes nothing on error).
 * 0 floats for fedavg. */
size_t fedc_server_opt_state_len(const fedc_server_opt *o);
int fedc_server_opt_state_get(const fedc_server_opt *o, float *buf, size_t len);
int fedc_server_opt_state_set(fedc_server_opt *o, const float *buf, size_t len);
/* Steps taken (restored by state_set). */
uint64_t fedc_server_opt_steps(const fedc_server_opt *o);
void fedc_server_opt_free(fedc_server_opt *o);

#endif
