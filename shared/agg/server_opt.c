/*
 * server_opt.c - the server's step from the aggregate back to the global
 * model: FedAvg with a server learning rate, FedAvgM (server momentum, Hsu
 * et al. 2019, "Measuring the Effects of Non-Identical Data Distribution for
 * Federated Visual Classification") and FedAdagrad, FedAdam, FedYogi (Reddi
 * et al. 2021, "Adaptive Federated Optimization", ICLR, Algorithm 2).
 *
 * Each coordinate is computed in double from float inputs and float state,
 * and the state is stored back as float: what is checkpointed
 * (fedc_server_opt_state_get) is exactly what the next step reads, so a
 * restored optimizer continues bit-identically. A step is checked in a first
 * pass and applied in a second, so an error changes neither x nor the state.
 */
#include <math.h>
#include <string.h>

#include "agg/agg.h"
#include "agg/server_opt.h"
#include "base/alloc.h"
#include "base/error.h"

typedef enum { OPT_AVG, OPT_AVGM, OPT_ADAGRAD, OPT_ADAM, OPT_YOGI } opt_kind;

/* the step count travels as four floats of 16 bits each, exact in float */
#define STEP_WORDS 4

struct fedc_server_opt {
  opt_kind kind;
  double lr, momentum, beta1, beta2, tau;
  size_t n;
  float *m, *v; /* NULL where the optimizer has no such state */
  uint64_t steps;
};

static const char *kind_name(opt_kind k) {
  static const char *const names[] = {"fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi"};
  return names[k];
}

static int in_unit(double x) {
  return x >= 0.0 && x < 1.0; /* false for NaN */
}

/*
 * m_{-1} = 0 and v_{-1} = tau^2: Reddi et al. ask for v_{-1} >= tau^2 and
 * we take the smallest, so the first step's denominator sqrt(v_0) + tau is
 * as in their analysis.
 */
int fedc_server_opt_new(const fedc_server_opt_params *p, size_t n, fedc_server_opt **out) {
  *out = NULL;
  if (p == NULL) return fedc_error_set(FEDC_EINVAL, "server optimizer: no parameters");
  /* the registry says which optimizer a strategy steps with */
  opt_kind kind = OPT_AVG;
  if (p->name != NULL) {
    const fedc_strategy_info *info = fedc_strategy_lookup(p->name);
    if (info == NULL)
      return fedc_error_set(FEDC_EINVAL, "server optimizer: [strategy] name = %s: unknown strategy",
                            p->name);
    switch (fedc__strategy_opt_kind(info)) {
    case FEDC_OPT_NONE:
    case FEDC_OPT_AVG: kind = OPT_AVG; break;
    case FEDC_OPT_AVGM: kind = OPT_AVGM; break;
    case FEDC_OPT_ADAGRAD: kind = OPT_ADAGRAD; break;
    case FEDC_OPT_ADAM: kind = OPT_ADAM; break;
    case FEDC_OPT_YOGI: kind = OPT_YOGI; break;
    }
  }
  const char *nm = kind_name(kind);
  if (!(isfinite(p->lr) && p->lr > 0.0))
    return fedc_error_set(FEDC_EINVAL, "%s: server_lr = %g, want > 0", nm, p->lr);
  if (kind == OPT_AVGM && !in_unit(p->momentum))
    return fedc_error_set(FEDC_EINVAL, "%s: server_momentum = %g outside [0, 1)", nm, p->momentum);
  if (kind >= OPT_ADAGRAD) {
    if (!in_unit(p->beta1))
      return fedc_error_set(FEDC_EINVAL, "%s: beta1 = %g outside [0, 1)", nm, p->beta1);
    if (kind != OPT_ADAGRAD && !in_unit(p->beta2))
      return fedc_error_set(FEDC_EINVAL, "%s: beta2 = %g outside [0, 1)", nm, p->beta2);
    if (!(isfinite(p->tau) && p->tau > 0.0))
      return fedc_error_set(FEDC_EINVAL, "%s: tau = %g, want > 0", nm, p->tau);
  }
  fedc_server_opt *o = fedc_calloc(1, sizeof *o);
  if (o == NULL) return fedc_error_set(FEDC_ENOMEM, "%s: out of memory", nm);
  o->kind = kind;
  o->lr = p->lr;
  o->momentum = p->momentum;
  o->beta1 = p->beta1;
  o->beta2 = p->beta2;
  o->tau = p->tau;
  o->n = n;
  int fail = 0;
  if (kind != OPT_AVG) fail |= (o->m = fedc_calloc(n ? n : 1, sizeof *o->m)) == NULL;
  if (kind >= OPT_ADAGRAD && !fail) {
    fail |= (o->v = fedc_malloc_array(n ? n : 1, sizeof *o->v)) == NULL;
    if (!fail) {
      const float v0 = (float)(p->tau * p->tau);
      for (size_t i = 0; i < n; i++)
        o->v[i] = v0;
    }
  }
  if (fail) {
    fedc_server_opt_free(o);
    return fedc_error_set(FEDC_ENOMEM, "%s: out of memory for %zu weights", nm, n);
  }
  *out = o;
  return 0;
}

/*
 * One coordinate of the step, with d = a - x (Reddi et al. 2021, Alg. 2,
 * whose Delta_t is our d; no bias correction, as in the paper):
 *   fedavg:     x' = x + lr d                    (lr = 1: x' = a exactly)
 *   fedavgm:    m' = momentum m + d;             x' = x + lr m'
 *   fedadagrad: m' = beta1 m + (1 - beta1) d;    v' = v + d^2
 *   fedadam:    m' as fedadagrad;                v' = beta2 v + (1 - beta2) d^2
 *   fedyogi:    m' as fedadagrad;                v' = v - (1 - beta2) d^2 sign(v - d^2)
 *   adaptive:   x' = x + lr m' / (sqrt(v') + tau)
 * Computed in double from the float state; m', v' are returned rounded to
 * float (the stored state), x' uses the unrounded values.
 */
static inline void step_one(const fedc_server_opt *o, size_t i, float xf, float af, float *xo,
                            float *mo, float *vo) {
  const double x = xf, d = (double)af - x;
  double m, v;
  switch (o->kind) {
  case OPT_AVG:
    *xo = o->lr == 1.0 ? af : (float)(x + o->lr * d);
    return;
  case OPT_AVGM:
    m = o->momentum * (double)o->m[i] + d;
    *mo = (float)m;
    *xo = (float)(x + o->lr * m);
    return;
  default:
    break;
  }
  const double d2 = d * d;
  m = o->beta1 * (double)o->m[i] + (1.0 - o->beta1) * d;
  v = o->v[i];
  if (o->kind == OPT_ADAGRAD) {
    v = v + d2;
  } else if (o->kind == OPT_ADAM) {
    v = o->beta2 * v + (1.0 - o->beta2) * d2;
  } else {
    const double sg = (v > d2) - (v < d2);
    v = v - (1.0 - o->beta2) * d2 * sg;
  }
  if (v < 0.0) v = 0.0; /* not reached in exact arithmetic (v stays > 0); a guard */
  *mo = (float)m;
  *vo = (float)v;
  *xo = (float)(x + o->lr * m / (sqrt(v) + o->tau));
}

int fedc_server_opt_step(fedc_server_opt *o, float *x, const float *avg, size_t n) {
  const char *nm = kind_name(o->kind);
  if (n != o->n) return fedc_error_set(FEDC_ESHAPE, "%s: %zu weights, want %zu", nm, n, o->n);
  float xo, mo = 0.0f, vo = 0.0f;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(avg[i]) || !isfinite(x[i]))
      return fedc_error_set(FEDC_ENONFINITE, "%s: weight %zu is %g (aggregate %g)", nm, i,
                            (double)x[i], (double)avg[i]);
    step_one(o, i, x[i], avg[i], &xo, &mo, &vo);
    if (!isfinite(xo) || !isfinite(mo) || !isfinite(vo))
      return fedc_error_set(FEDC_ENONFINITE, "%s: the step overflows float at weight %zu", nm, i);
  }
  for (size_t i = 0; i < n; i++) {
    step_one(o, i, x[i], avg[i], &xo, &mo, &vo);
    x[i] = xo;
    if (o->m) o->m[i] = mo;
    if (o->v) o->v[i] = vo;
  }
  o->steps++;
  return 0;
}

/* Layout: m (n floats, all but fedavg), v (n floats, adaptive ones), then
 * the step count in STEP_WORDS floats of 16 bits, low word first. */
size_t fedc_server_opt_state_len(const fedc_server_opt *o) {
  if (o->kind == OPT_AVG) return 0;
  return (o->v ? 2 * o->n : o->n) + STEP_WORDS;
}

int fedc_server_opt_state_get(const fedc_server_opt *o, float *buf, size_t len) {
  const size_t want = fedc_server_opt_state_len(o);
  if (len != want)
    return fedc_error_set(FEDC_ESHAPE, "%s: state of %zu floats, want %zu", kind_name(o->kind), len,
                          want);
  if (want == 0) return 0;
  memcpy(buf, o->m, o->n * sizeof *buf);
  size_t at = o->n;
  if (o->v) {
    memcpy(buf + at, o->v, o->n * sizeof *buf);
    at += o->n;
  }
  for (int w = 0; w < STEP_WORDS; w++)
    buf[at + (size_t)w] = (float)((o->steps >> (16 * w)) & 0xffff);
  return 0;
}

/* Refuses (changing nothing) a wrong length, a non-finite m or v, a
 * negative v, or a step word that is not an integer in 0..65535. */
int fedc_server_opt_state_set(fedc_server_opt *o, const float *buf, size_t len) {
  const char *nm = kind_name(o->kind);
  const size_t want = fedc_server_opt_state_len(o);
  if (len != want)
    return fedc_error_set(FEDC_ESHAPE, "%s: state of %zu floats, want %zu", nm, len, want);
  if (want == 0) return 0;
  const size_t nv = o->v ? o->n : 0, at = o->n + nv;
  for (size_t i = 0; i < at; i++) {
    if (!isfinite(buf[i]))
      return fedc_error_set(FEDC_ENONFINITE, "%s: state value %zu is %g", nm, i, (double)buf[i]);
    if (i >= o->n && buf[i] < 0.0f)
      return fedc_error_set(FEDC_ERANGE, "%s: second moment %zu is %g < 0", nm, i - o->n,
                            (double)buf[i]);
  }
  uint64_t steps = 0;
  for (int w = 0; w < STEP_WORDS; w++) {
    float s = buf[at + (size_t)w];
    if (!(s >= 0.0f && s <= 65535.0f && s == floorf(s)))
      return fedc_error_set(FEDC_ERANGE, "%s: step-count word %d is %g", nm, w, (double)s);
    steps |= (uint64_t)s << (16 * w);
  }
  memcpy(o->m, buf, o->n * sizeof *buf);
  if (o->v) memcpy(o->v, buf + o->n, o->n * sizeof *buf);
  o->steps = steps;
  return 0;
}

uint64_t fedc_server_opt_steps(const fedc_server_opt *o) {
  return o->steps;
}

void fedc_server_opt_free(fedc_server_opt *o) {
  if (o == NULL) return;
  fedc_free(o->m);
  fedc_free(o->v);
  fedc_free(o);
}
