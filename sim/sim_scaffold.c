/*
 * sim_scaffold.c - SCAFFOLD's control variates in the simulator (see
 * shared/agg/scaffold.h for the algorithm). The server variate lives here
 * beside the engine; each simulated client's variate is allocated the
 * first time it trains (zero before that, as in the paper). A client
 * trains once per round, so its variate is only touched by the worker that
 * trains it; the server's sum is taken under the driver's mutex and is
 * exact, so the result does not depend on threads or order.
 */
#include "sim_internal.h"

#include <string.h>

#include "agg/scaffold.h"
#include "base/alloc.h"
#include "base/error.h"

struct fedc_sim_scaffold {
  fedc_scaffold_server *server;
  float **ci;     /* per client, NULL until it first trains */
  float *scratch; /* per worker: corr (n), then x (n), then delta (n) */
};

int fedc__sim_scaffold_new(fedc_sim *s) {
  const fedc_strategy_info *info = fedc_strategy_lookup(s->cfg.strategy);
  if (info == NULL || !(info->caps & FEDC_STRATEGY_VARIATES)) return 0;
  fedc_sim_scaffold *a = fedc_calloc(1, sizeof *a);
  if (a == NULL) return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  s->scaffold = a;
  size_t n = s->n_params;
  a->ci = fedc_calloc((size_t)s->cfg.clients, sizeof *a->ci);
  a->scratch = fedc_malloc_array((size_t)s->n_workers * 3 * (n ? n : 1), sizeof(float));
  if (a->ci == NULL || a->scratch == NULL)
    return fedc_error_set(FEDC_ENOMEM, "sim: out of memory for control variates");
  /* c weighs each client by its rows, as FedAvg weighs its model */
  return fedc_scaffold_server_new(n, s->train.n > 0 ? (double)s->train.n : 1.0, &a->server);
}

void fedc__sim_scaffold_free(fedc_sim *s) {
  fedc_sim_scaffold *a = s->scaffold;
  if (a == NULL) return;
  for (int32_t i = 0; a->ci && i < s->cfg.clients; i++) fedc_free(a->ci[i]);
  fedc_free(a->ci);
  fedc_free(a->scratch);
  fedc_scaffold_server_free(a->server);
  fedc_free(a);
  s->scaffold = NULL;
}

/* Worker wi's correction c - c_i for client, and a copy of the start
 * model x (the client variate's update needs it after training). */
const float *fedc__sim_scaffold_before(fedc_sim *s, int32_t wi, int32_t client,
                                       const float *x) {
  fedc_sim_scaffold *a = s->scaffold;
  size_t n = s->n_params;
  float *corr = a->scratch + (size_t)wi * 3 * n;
  const float *c = fedc_scaffold_server_variate(a->server);
  if (a->ci[client]) fedc_scaffold_correction(c, a->ci[client], n, corr);
  else memcpy(corr, c, n * sizeof *corr);
  memcpy(corr + n, x, n * sizeof *corr);
  return corr;
}

/* After client trained from x to y in steps steps: its new variate, and
 * the delta folded into the server's sum (under the driver's mutex). */
int fedc__sim_scaffold_after(fedc_sim *s, int32_t wi, int32_t client, const float *y,
                             int64_t steps) {
  fedc_sim_scaffold *a = s->scaffold;
  size_t n = s->n_params;
  float *x = a->scratch + (size_t)wi * 3 * n + n, *delta = x + n;
  if (a->ci[client] == NULL &&
      (a->ci[client] = fedc_calloc(n ? n : 1, sizeof(float))) == NULL)
    return fedc_error_set(FEDC_ENOMEM, "sim: out of memory for client %d's variate",
                          (int)client);
  int rc = fedc_scaffold_client_update(fedc_scaffold_server_variate(a->server), a->ci[client],
                                       x, y, n, steps, (float)s->cfg.lr, a->ci[client], delta);
  if (rc != 0) return rc;
  pthread_mutex_lock(&s->mu);
  rc = fedc_scaffold_server_add(
      a->server, delta, n, (uint64_t)(s->part.offsets[client + 1] - s->part.offsets[client]));
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int fedc__sim_scaffold_begin(fedc_sim *s) {
  return s->scaffold ? fedc_scaffold_server_begin(s->scaffold->server) : 0;
}

int fedc__sim_scaffold_finish(fedc_sim *s) {
  return s->scaffold ? fedc_scaffold_server_finish(s->scaffold->server) : 0;
}

const float *fedc__sim_scaffold_variate(const fedc_sim *s) {
  return s->scaffold ? fedc_scaffold_server_variate(s->scaffold->server) : NULL;
}
