/*
 * scaffold.c - SCAFFOLD's control variates (see scaffold.h): the client's
 * option-II update and the server variate, whose per-round sum of deltas
 * is an exact FedAvg fixed-point accumulator (weights: see scaffold.h).
 */
#include "agg/scaffold.h"

#include <math.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"

struct fedc_scaffold_server {
  size_t n;
  double total_weight;
  float *c;
  fedc_strategy *sum; /* fedavg with weight 1 per delta: the exact sum */
  int32_t count;
};

void fedc_scaffold_correction(const float *c, const float *ci, size_t n, float *corr) {
  for (size_t i = 0; i < n; i++) corr[i] = c[i] - ci[i];
}

/*
 * c_i+ = c_i - c + (x - y) / (K lr), in double, rounded once to float;
 * the delta is the float difference of what the client keeps and what it
 * had, so that the server's sum of deltas tracks the clients' variates.
 */
int fedc_scaffold_client_update(const float *c, const float *ci, const float *x,
                                const float *y, size_t n, int64_t steps, float lr,
                                float *ci_new, float *delta) {
  if (steps < 1 || !(lr > 0.0f))
    return fedc_error_set(FEDC_EINVAL, "scaffold: %lld local steps at rate %g",
                          (long long)steps, (double)lr);
  const double inv = 1.0 / ((double)steps * (double)lr);
  for (size_t i = 0; i < n; i++) {
    float old = ci[i];
    float nw = (float)((double)old - (double)c[i] + ((double)x[i] - (double)y[i]) * inv);
    if (!isfinite(nw))
      return fedc_error_set(FEDC_ENONFINITE, "scaffold: client variate %zu became %g", i,
                            (double)nw);
    delta[i] = nw - old;
    ci_new[i] = nw;
  }
  return 0;
}

int fedc_scaffold_server_new(size_t n, double total_weight, fedc_scaffold_server **out) {
  *out = NULL;
  if (!(total_weight >= 1.0) || total_weight > 1e18)
    return fedc_error_set(FEDC_EINVAL, "scaffold: total weight %g", total_weight);
  fedc_scaffold_server *s = fedc_calloc(1, sizeof *s);
  if (s == NULL) return fedc_error_set(FEDC_ENOMEM, "scaffold: out of memory");
  s->n = n;
  s->total_weight = total_weight;
  s->c = fedc_calloc(n ? n : 1, sizeof *s->c);
  int rc = s->c ? fedc_fedavg_new(n, &s->sum)
                : fedc_error_set(FEDC_ENOMEM, "scaffold: out of memory");
  if (rc == 0) rc = fedc_scaffold_server_begin(s);
  if (rc != 0) {
    fedc_scaffold_server_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void fedc_scaffold_server_free(fedc_scaffold_server *s) {
  if (s == NULL) return;
  fedc_strategy_free(s->sum);
  fedc_free(s->c);
  fedc_free(s);
}

int fedc_scaffold_server_begin(fedc_scaffold_server *s) {
  s->count = 0;
  return s->sum->ops->begin(s->sum, s->c, s->n);
}

int fedc_scaffold_server_add(fedc_scaffold_server *s, const float *delta, size_t n,
                             uint64_t weight) {
  if (n != s->n)
    return fedc_error_set(FEDC_ESHAPE, "scaffold: variate delta of %zu weights, want %zu", n,
                          s->n);
  int rc = s->sum->ops->add(s->sum, delta, n, weight);
  if (rc != 0) return fedc_error_set(rc, "scaffold: variate delta refused: %s", fedc_error_msg());
  s->count++;
  return 0;
}

/* The exact weighted sum is acc * 2^-32; one division by the total weight
 * and one rounding per weight. */
int fedc_scaffold_server_finish(fedc_scaffold_server *s) {
  if (s->count == 0) return 0;
  __int128 *acc;
  uint64_t *total;
  fedc_fedavg_state(s->sum, &acc, &total);
  (void)total;
  const double scale = ldexp(1.0, -32) / s->total_weight;
  for (size_t i = 0; i < s->n; i++)
    s->c[i] = (float)((double)s->c[i] + (double)acc[i] * scale);
  return 0;
}

const float *fedc_scaffold_server_variate(const fedc_scaffold_server *s) { return s->c; }
int32_t fedc_scaffold_server_count(const fedc_scaffold_server *s) { return s->count; }

int fedc_scaffold_server_set(fedc_scaffold_server *s, const float *c, size_t n) {
  if (n != s->n)
    return fedc_error_set(FEDC_ESHAPE, "scaffold: server variate of %zu weights, want %zu", n,
                          s->n);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(c[i]))
      return fedc_error_set(FEDC_ENONFINITE, "scaffold: server variate %zu is %g", i,
                            (double)c[i]);
  for (size_t i = 0; i < n; i++) s->c[i] = c[i];
  return 0;
}
