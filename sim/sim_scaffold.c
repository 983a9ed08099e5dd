/*
 * sim_scaffold.c - SCAFFOLD's client control variates in the simulator
 * (see shared/agg/scaffold.h for the algorithm). The server variate lives
 * in the engine's pipeline, as it does in the coordinator, so both compute
 * the same thing; each simulated client's variate is allocated the first
 * time it trains (zero before that, as in the paper). A client trains once
 * per round, so its variate is only touched by the worker that trains it,
 * and the engine's sum of deltas is exact, so the result does not depend
 * on threads or order.
 */
#include "sim_internal.h"

#include <string.h>

#include "agg/scaffold.h"
#include "base/alloc.h"
#include "base/error.h"

struct fedc_sim_scaffold {
  float **ci;     /* per client, NULL until it first trains */
  float *scratch; /* per worker: corr (n), then x (n), then delta (n) */
};

int fedc__sim_scaffold_new(fedc_sim *s) {
  if (fedc__engine_variate(s->engine) == NULL) return 0;
  fedc_sim_scaffold *a = fedc_calloc(1, sizeof *a);
  if (a == NULL) return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  s->scaffold = a;
  size_t n = s->n_params;
  a->ci = fedc_calloc((size_t)s->cfg.clients, sizeof *a->ci);
  a->scratch = fedc_malloc_array((size_t)s->n_workers * 3 * (n ? n : 1), sizeof(float));
  if (a->ci == NULL || a->scratch == NULL)
    return fedc_error_set(FEDC_ENOMEM, "sim: out of memory for control variates");
  return 0;
}

void fedc__sim_scaffold_free(fedc_sim *s) {
  fedc_sim_scaffold *a = s->scaffold;
  if (a == NULL) return;
  for (int32_t i = 0; a->ci && i < s->cfg.clients; i++) fedc_free(a->ci[i]);
  fedc_free(a->ci);
  fedc_free(a->scratch);
  fedc_free(a);
  s->scaffold = NULL;
}

const float *fedc__sim_scaffold_before(fedc_sim *s, int32_t wi, int32_t client,
                                       const float *x) {
  fedc_sim_scaffold *a = s->scaffold;
  size_t n = s->n_params;
  float *corr = a->scratch + (size_t)wi * 3 * n;
  const float *c = fedc__engine_variate(s->engine);
  if (a->ci[client]) fedc_scaffold_correction(c, a->ci[client], n, corr);
  else memcpy(corr, c, n * sizeof *corr);
  memcpy(corr + n, x, n * sizeof *corr);
  return corr;
}

int fedc__sim_scaffold_after(fedc_sim *s, int32_t wi, int32_t client, const float *y,
                             int64_t steps) {
  fedc_sim_scaffold *a = s->scaffold;
  size_t n = s->n_params;
  float *x = a->scratch + (size_t)wi * 3 * n + n, *delta = x + n;
  if (a->ci[client] == NULL &&
      (a->ci[client] = fedc_calloc(n ? n : 1, sizeof(float))) == NULL)
    return fedc_error_set(FEDC_ENOMEM, "sim: out of memory for client %d's variate",
                          (int)client);
  return fedc_scaffold_client_update(fedc__engine_variate(s->engine), a->ci[client], x, y, n,
                                     steps, (float)s->cfg.lr, a->ci[client], delta);
}

const float *fedc__sim_scaffold_delta(const fedc_sim *s, int32_t wi) {
  size_t n = s->n_params;
  return s->scaffold->scratch + (size_t)wi * 3 * n + 2 * n;
}
