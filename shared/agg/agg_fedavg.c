/*
 * agg_fedavg.c - FedAvg as an exact running weighted sum in 128-bit fixed
 * point (see agg.h for why). The registry (registry.c) makes it for fedavg,
 * the server optimizers and fedbuff.
 */
#include <math.h>
#include <string.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"
#include "ml/kernels.h"

#define FRAC_BITS 32
#define W_LIMIT 2147483648.0 /* |w| < 2^31 keeps w * 2^32 inside int64 */
#define TWO_POW_FRAC 4294967296.0 /* 2^FRAC_BITS: scaling by it is exact */

typedef struct fedavg {
  fedc_strategy base;
  __int128 *acc;
  uint64_t total;
  int64_t *q; /* scratch: one update in fixed point, checked before folding */
} fedavg;

static int fedavg_begin(fedc_strategy *s, const float *global, size_t n) {
  fedavg *f = (fedavg *)s;
  (void)global;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "fedavg: %zu weights, want %zu", n, s->n);
  memset(f->acc, 0, n * sizeof *f->acc);
  f->total = 0;
  return 0;
}

/*
 * Convert first, fold second: a bad weight anywhere in the update leaves the
 * accumulator untouched. w * 2^32 is exact in double (a power-of-two scale),
 * and nearbyint rounds it to the fixed-point grid. Both loops are the CPU
 * variant's kernels (ml/kernels.h); their results are exact, so the same
 * in every variant.
 */
static int fedavg_add(fedc_strategy *s, const float *w, size_t n,
                      uint64_t n_samples) {
  fedavg *f = (fedavg *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "fedavg: %zu weights, want %zu", n, s->n);
  if (n_samples == 0 || n_samples > (1ull << 40))
    return fedc_error_set(FEDC_ERANGE, "fedavg: sample count %llu outside 1..2^40",
                          (unsigned long long)n_samples);
  const fedc_kernels *kern = fedc_kernels_get();
  size_t bad = kern->fx_convert(f->q, w, n, TWO_POW_FRAC, W_LIMIT);
  if (bad < n) {
    double x = (double)w[bad];
    if (!isfinite(x))
      return fedc_error_set(FEDC_ENONFINITE, "fedavg: weight %zu is %g", bad, x);
    return fedc_error_set(FEDC_ERANGE, "fedavg: weight %zu = %g is outside +-2^31", bad, x);
  }
  kern->fx_fold(f->acc, f->q, n, (int64_t)n_samples);
  f->total += n_samples;
  return 0;
}

static int fedavg_finish(fedc_strategy *s, float *out, size_t n) {
  fedavg *f = (fedavg *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "fedavg: %zu weights, want %zu", n, s->n);
  if (f->total == 0) return fedc_error_set(FEDC_EQUORUM, "fedavg: no updates to average");
  const double scale = ldexp(1.0, -FRAC_BITS) / (double)f->total;
  for (size_t i = 0; i < n; i++) out[i] = (float)((double)f->acc[i] * scale);
  return 0;
}

static void fedavg_free(fedc_strategy *s) {
  fedavg *f = (fedavg *)s;
  fedc_free(f->acc);
  fedc_free(f->q);
  fedc_free(f);
}

static void fedavg_sum(fedc_strategy *s, __int128 **acc, uint64_t **total) {
  fedavg *f = (fedavg *)s;
  *acc = f->acc;
  *total = &f->total;
}

static const fedc_strategy_ops fedavg_ops = {
    "fedavg", fedavg_begin, fedavg_add, fedavg_finish, fedavg_free, fedavg_sum};

int fedc_fedavg_new(size_t n, fedc_strategy **out) {
  *out = NULL;
  fedavg *f = fedc_calloc(1, sizeof *f);
  if (f) {
    f->acc = fedc_calloc(n ? n : 1, sizeof *f->acc);
    f->q = fedc_calloc(n ? n : 1, sizeof *f->q);
  }
  if (f == NULL || f->acc == NULL || f->q == NULL) {
    if (f) fedavg_free(&f->base);
    return fedc_error_set(FEDC_ENOMEM, "fedavg: out of memory for %zu weights", n);
  }
  f->base.ops = &fedavg_ops;
  f->base.n = n;
  *out = &f->base;
  return 0;
}

void fedc_fedavg_state(fedc_strategy *s, __int128 **acc, uint64_t **total) {
  s->ops->sum(s, acc, total);
}

int fedc_strategy_new(const char *name, size_t n, fedc_strategy **out) {
  *out = NULL;
  const fedc_strategy_info *info = fedc_strategy_lookup(name);
  if (info == NULL)
    return fedc_error_set(FEDC_EINVAL, "[strategy] name = %s: unknown strategy",
                          name ? name : "(none)");
  fedc_agg_params p = {.name = name};
  return fedc__strategy_make(info, &p, n, out);
}

void fedc_strategy_free(fedc_strategy *s) {
  if (s) s->ops->free(s);
}

int fedc_strategy_is_additive(const fedc_strategy *s) {
  return s != NULL && s->ops->sum != NULL;
}
