/*
 * agg_custom.c - a program's strategy (fedc_strategy_def, <fedc/strategy.h>)
 * behind the same fedc_strategy_ops table as the built-ins, so the pipeline
 * and the engine drive it exactly as they drive median or Krum.
 *
 * The wrapper checks what the callbacks are promised (the model's size,
 * finite weights, a sample count of at least 1) before calling them, and
 * turns a callback that fails without setting a code into FEDC_EINVAL
 * naming the strategy and the callback.
 */
#include <math.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"

typedef struct custom {
  fedc_strategy base;
  fedc_strategy_ops ops; /* name, and the wrappers below */
  const fedc_strategy_def *def;
  void *state;
} custom;

static int bad_rc(const custom *c, const char *what, int rc) {
  if (rc < 0) return rc;
  return fedc_error_set(FEDC_EINVAL, "strategy %s: %s returned %d, not a FEDC_E* code",
                        c->def->name, what, rc);
}

static int custom_begin(fedc_strategy *s, const float *global, size_t n) {
  custom *c = (custom *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", c->def->name, n, s->n);
  int rc = c->def->begin(c->state, global, n);
  return rc == 0 ? 0 : bad_rc(c, "begin", rc);
}

static int custom_add(fedc_strategy *s, const float *w, size_t n, uint64_t n_samples) {
  custom *c = (custom *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", c->def->name, n, s->n);
  if (n_samples == 0) return fedc_error_set(FEDC_ERANGE, "%s: sample count 0", c->def->name);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(w[i]))
      return fedc_error_set(FEDC_ENONFINITE, "%s: weight %zu is %g", c->def->name, i, (double)w[i]);
  int rc = c->def->add(c->state, w, n, n_samples);
  return rc == 0 ? 0 : bad_rc(c, "add", rc);
}

/* The aggregate becomes the next global model: a non-finite value from the
 * callback is refused here rather than in the server step. */
static int custom_finish(fedc_strategy *s, float *out, size_t n) {
  custom *c = (custom *)s;
  if (n != s->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", c->def->name, n, s->n);
  int rc = c->def->finish(c->state, out, n);
  if (rc != 0) return bad_rc(c, "finish", rc);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(out[i]))
      return fedc_error_set(FEDC_ENONFINITE, "strategy %s: finish wrote %g at weight %zu",
                            c->def->name, (double)out[i], i);
  return 0;
}

static void custom_free(fedc_strategy *s) {
  custom *c = (custom *)s;
  if (c->state) c->def->destroy(c->state);
  fedc_free(c);
}

int fedc__custom_new(const fedc_strategy_def *def, size_t n, fedc_strategy **out) {
  *out = NULL;
  custom *c = fedc_calloc(1, sizeof *c);
  if (c == NULL) return fedc_error_set(FEDC_ENOMEM, "strategy %s: out of memory", def->name);
  c->def = def;
  c->ops = (fedc_strategy_ops){def->name, custom_begin, custom_add, custom_finish, custom_free,
                               NULL};
  c->base.ops = &c->ops;
  c->base.n = n;
  int rc = def->create(n, def->user_data, &c->state);
  if (rc != 0 || c->state == NULL) {
    c->state = NULL;
    custom_free(&c->base);
    if (rc == 0) return fedc_error_set(FEDC_EINVAL, "strategy %s: create gave no state", def->name);
    return rc < 0 ? rc : fedc_error_set(FEDC_EINVAL, "strategy %s: create returned %d", def->name, rc);
  }
  *out = &c->base;
  return 0;
}
