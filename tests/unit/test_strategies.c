/*
 * test_strategies.c - the server optimizers (server_opt.c) and the robust
 * aggregators (agg_robust.c).
 *
 * Optimizers: two steps of each on a 3-weight model against arithmetic
 * written out here, so momentum and the second moment matter; fedavg with
 * lr = 1 returns the aggregate bit for bit; a checkpointed state restored
 * into a fresh optimizer continues bit-identically; bad input changes
 * nothing.
 *
 * Robust aggregation: five 2-D updates, four honest near (1, 1) and one
 * outlier far away. Median, trimmed mean, Krum and Multi-Krum give the
 * values worked out below, the outlier's size never moves the median or
 * trimmed mean, quickselect agrees with sorting on ties and runs, every
 * one of the 120 arrival orders gives the same bytes (also on random data
 * spanning magnitudes, and on a Krum tie), and the
 * failure paths (NaN, too few updates for Krum, one update too many, out
 * of memory) leave the strategy as it was and leak nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agg/agg.h"
#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "agg/server_opt.h"

/* ---- server optimizers ------------------------------------------------- */

/* x0 and the two rounds' aggregates. Step 1's delta d = a1 - x0 = (1, 0, 2);
 * step 2's d = a2 - x1 depends on the optimizer. */
static const float X0[3] = {0.0f, 1.0f, -2.0f};
static const float A1[3] = {1.0f, 1.0f, 0.0f};
static const float A2[3] = {1.5f, 0.0f, -1.0f};

typedef struct expect {
  double x1[3], x2[3], m2[3], v2[3];
} expect;

static void check_two_steps(const char *name, const expect *e) {
  int64_t live = fedc_alloc_live();
  fedc_server_opt_params p = {
      .name = name, .lr = 0.1, .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.99, .tau = 0.1};
  if (strcmp(name, "fedavgm") == 0) p.lr = 0.5;
  fedc_server_opt *o;
  assert_int_equal(fedc_server_opt_new(&p, 3, &o), 0);
  float x[3];
  memcpy(x, X0, sizeof x);
  assert_int_equal(fedc_server_opt_step(o, x, A1, 3), 0);
  for (int i = 0; i < 3; i++)
    assert_float_equal(x[i], e->x1[i], 1e-6);
  assert_int_equal(fedc_server_opt_step(o, x, A2, 3), 0);
  for (int i = 0; i < 3; i++)
    assert_float_equal(x[i], e->x2[i], 1e-6);
  size_t len = fedc_server_opt_state_len(o);
  int adaptive = strcmp(name, "fedavgm") != 0;
  assert_int_equal(len, (adaptive ? 6 : 3) + 4);
  float st[10];
  assert_int_equal(fedc_server_opt_state_get(o, st, len), 0);
  for (int i = 0; i < 3; i++)
    assert_float_equal(st[i], e->m2[i], 1e-6);
  if (adaptive)
    for (int i = 0; i < 3; i++)
      assert_float_equal(st[3 + i], e->v2[i], 1e-6);
  assert_int_equal(fedc_server_opt_steps(o), 2);
  assert_true(st[len - 4] == 2.0f && st[len - 3] == 0.0f); /* the step count's words */
  fedc_server_opt_free(o);
  assert_int_equal(fedc_alloc_live(), live);
}

/*
 * FedAvgM, lr 0.5, momentum 0.9:
 *   step 1: d = (1, 0, 2); m = d = (1, 0, 2); x = x0 + 0.5 m = (0.5, 1, -1)
 *   step 2: d = a2 - x = (1, -1, 0); m = 0.9 (1, 0, 2) + d = (1.9, -1, 1.8)
 *           x = (0.5, 1, -1) + 0.5 m = (1.45, 0.5, -0.1)
 */
static void test_fedavgm_two_steps(void **state) {
  (void)state;
  expect e = {.x1 = {0.5, 1, -1}, .x2 = {1.45, 0.5, -0.1}, .m2 = {1.9, -1, 1.8}};
  check_two_steps("fedavgm", &e);
}

/*
 * FedAdagrad, lr 0.1, beta1 0.9, tau 0.1, v0 = tau^2 = 0.01:
 *   step 1: d = (1, 0, 2); m = 0.1 d = (0.1, 0, 0.2); v = 0.01 + d^2 = (1.01, 0.01, 4.01)
 *           x = x0 + 0.1 m / (sqrt v + 0.1)
 *             = (0.01 / 1.104987562, 1 + 0, -2 + 0.02 / 2.102498439)
 *             = (0.009049876, 1, -1.990487508)
 *   step 2: d = a2 - x = (1.490950124, -1, 0.990487508)
 *           m = 0.9 m + 0.1 d = (0.239095012, -0.1, 0.279048751)
 *           v = v + d^2 = (1.01 + 2.222932273, 0.01 + 1, 4.01 + 0.981065495)
 *             = (3.232932273, 1.01, 4.991065495)
 *           x = x + 0.1 m / (sqrt v + 0.1)
 *             = (0.009049876 + 0.023909501 / 1.898035898,
 *                1 - 0.01 / 1.104987562, -1.990487508 + 0.027904875 / 2.334069346)
 *             = (0.021646847, 0.990950124, -1.978532050)
 */
static void test_fedadagrad_two_steps(void **state) {
  (void)state;
  expect e = {.x1 = {0.009049876, 1, -1.990487508},
              .x2 = {0.021646847, 0.990950124, -1.978532050},
              .m2 = {0.239095012, -0.1, 0.279048751},
              .v2 = {3.232932273, 1.01, 4.991065495}};
  check_two_steps("fedadagrad", &e);
}

/*
 * FedAdam, lr 0.1, beta1 0.9, beta2 0.99, tau 0.1, v0 = 0.01:
 *   step 1: d = (1, 0, 2); m = (0.1, 0, 0.2)
 *           v = 0.99 * 0.01 + 0.01 d^2 = (0.0199, 0.0099, 0.0499)
 *           x = (0.01 / (0.141067360 + 0.1), 1, -2 + 0.02 / (0.223383079 + 0.1))
 *             = (0.041482182, 1, -1.938153845)
 *   step 2: d = (1.458517818, -1, 0.938153845)
 *           m = 0.9 m + 0.1 d = (0.235851782, -0.1, 0.273815385)
 *           v = 0.99 v + 0.01 d^2 = (0.019701 + 0.021272742, 0.009801 + 0.01,
 *                                    0.049401 + 0.008801326)
 *             = (0.040973742, 0.019801, 0.058202326)
 *           x = x + 0.1 m / (sqrt v + 0.1)
 *             = (0.041482182 + 0.023585178 / 0.302419736,
 *                1 - 0.01 / 0.240716306, -1.938153845 + 0.027381539 / 0.341251533)
 *             = (0.119470410, 0.958457274, -1.857915280)
 */
static void test_fedadam_two_steps(void **state) {
  (void)state;
  expect e = {.x1 = {0.041482182, 1, -1.938153845},
              .x2 = {0.119470410, 0.958457274, -1.857915280},
              .m2 = {0.235851782, -0.1, 0.273815385},
              .v2 = {0.040973742, 0.019801, 0.058202326}};
  check_two_steps("fedadam", &e);
}

/*
 * FedYogi, same parameters; v' = v - 0.01 d^2 sign(v - d^2):
 *   step 1: d = (1, 0, 2); v - d^2 = (-0.99, 0.01, -3.99), signs (-1, +1, -1)
 *           v = (0.01 + 0.01, 0.01 - 0, 0.01 + 0.04) = (0.02, 0.01, 0.05)
 *           x = (0.01 / (0.141421356 + 0.1), 1, -2 + 0.02 / (0.223606798 + 0.1))
 *             = (0.041421356, 1, -1.938196601)
 *   step 2: d = (1.458578644, -1, 0.938196601); all v < d^2, so v += 0.01 d^2
 *           m = (0.235857864, -0.1, 0.273819660)
 *           v = (0.02 + 0.021274517, 0.01 + 0.01, 0.05 + 0.008802129)
 *             = (0.041274517, 0.02, 0.058802129)
 *           x = (0.041421356 + 0.023585786 / 0.303161325,
 *                1 - 0.01 / 0.241421356, -1.938196601 + 0.027381966 / 0.342491510)
 *             = (0.119220818, 0.958578644, -1.858247270)
 */
static void test_fedyogi_two_steps(void **state) {
  (void)state;
  expect e = {.x1 = {0.041421356, 1, -1.938196601},
              .x2 = {0.119220818, 0.958578644, -1.858247270},
              .m2 = {0.235857864, -0.1, 0.273819660},
              .v2 = {0.041274517, 0.02, 0.058802129}};
  check_two_steps("fedyogi", &e);
}

/* x + 1 * (avg - x) must be avg bit for bit, on values of every magnitude;
 * robust names and fedbuff use the same step and keep no state. */
static void test_fedavg_lr1_is_avg_exactly(void **state) {
  (void)state;
  enum { N = 1000 };
  static float x[N], avg[N];
  fedc_rng r;
  fedc_rng_seed(&r, 9);
  for (int i = 0; i < N; i++) {
    x[i] = (float)(fedc_rng_normal(&r) * pow(10.0, (double)(i % 13) - 6));
    avg[i] = (float)(fedc_rng_normal(&r) * pow(10.0, (double)(i % 7) - 3));
  }
  const char *names[] = {"fedavg", "median", "krum", "fedbuff"};
  for (int k = 0; k < 4; k++) {
    fedc_server_opt_params p = {.name = names[k], .lr = 1.0};
    fedc_server_opt *o;
    assert_int_equal(fedc_server_opt_new(&p, N, &o), 0);
    assert_int_equal(fedc_server_opt_state_len(o), 0);
    float y[N];
    memcpy(y, x, sizeof y);
    assert_int_equal(fedc_server_opt_step(o, y, avg, N), 0);
    assert_memory_equal(y, avg, sizeof y);
    fedc_server_opt_free(o);
  }
  /* lr 0.5: halfway */
  fedc_server_opt_params p = {.name = "fedavg", .lr = 0.5};
  fedc_server_opt *o;
  assert_int_equal(fedc_server_opt_new(&p, 3, &o), 0);
  float y[3];
  memcpy(y, X0, sizeof y);
  assert_int_equal(fedc_server_opt_step(o, y, A1, 3), 0);
  assert_true(y[0] == 0.5f && y[1] == 1.0f && y[2] == -1.0f);
  fedc_server_opt_free(o);
}

/* Step one optimizer, checkpoint it, restore into a fresh one: both then
 * take the same steps to the same bytes. */
static void test_state_round_trip_continues_identically(void **state) {
  (void)state;
  enum { N = 64 };
  const char *names[] = {"fedavgm", "fedadagrad", "fedadam", "fedyogi", "fedavg"};
  fedc_rng r;
  fedc_rng_seed(&r, 5);
  float x[N], avg[3][N];
  for (int i = 0; i < N; i++)
    x[i] = (float)fedc_rng_normal(&r);
  for (int s = 0; s < 3; s++)
    for (int i = 0; i < N; i++)
      avg[s][i] = x[i] + (float)(0.3 * fedc_rng_normal(&r));
  for (int k = 0; k < 5; k++) {
    int64_t live = fedc_alloc_live();
    fedc_server_opt_params p = {
        .name = names[k], .lr = 0.3, .momentum = 0.8, .beta1 = 0.9, .beta2 = 0.99, .tau = 1e-3};
    fedc_server_opt *a, *b;
    assert_int_equal(fedc_server_opt_new(&p, N, &a), 0);
    assert_int_equal(fedc_server_opt_new(&p, N, &b), 0);
    float xa[N], xb[N];
    memcpy(xa, x, sizeof xa);
    assert_int_equal(fedc_server_opt_step(a, xa, avg[0], N), 0);
    size_t len = fedc_server_opt_state_len(a);
    float *st = fedc_malloc((len + 1) * sizeof *st), *st2 = fedc_malloc((len + 1) * sizeof *st2);
    assert_int_equal(fedc_server_opt_state_get(a, st, len), 0);
    assert_int_equal(fedc_server_opt_state_set(b, st, len + 1), FEDC_ESHAPE);
    assert_int_equal(fedc_server_opt_state_set(b, st, len), 0);
    assert_int_equal(fedc_server_opt_steps(b), k == 4 ? 0 : 1);
    memcpy(xb, xa, sizeof xb);
    for (int s = 1; s < 3; s++) {
      assert_int_equal(fedc_server_opt_step(a, xa, avg[s], N), 0);
      assert_int_equal(fedc_server_opt_step(b, xb, avg[s], N), 0);
    }
    assert_memory_equal(xa, xb, sizeof xa);
    assert_int_equal(fedc_server_opt_state_get(a, st, len), 0);
    assert_int_equal(fedc_server_opt_state_get(b, st2, len), 0);
    if (len) assert_memory_equal(st, st2, len * sizeof *st);
    fedc_server_opt_free(a);
    fedc_server_opt_free(b);
    fedc_free(st);
    fedc_free(st2);
    assert_int_equal(fedc_alloc_live(), live);
  }
}

/* A NaN aggregate, a wrong size, a corrupt checkpoint: refused, x and the
 * state untouched. Bad parameters are FEDC_EINVAL. */
static void test_optimizer_refusals_change_nothing(void **state) {
  (void)state;
  fedc_server_opt_params p = {
      .name = "fedadam", .lr = 0.1, .beta1 = 0.9, .beta2 = 0.99, .tau = 0.1};
  fedc_server_opt *o;
  assert_int_equal(fedc_server_opt_new(&p, 3, &o), 0);
  float x[3];
  memcpy(x, X0, sizeof x);
  assert_int_equal(fedc_server_opt_step(o, x, A1, 3), 0);
  float before[10], after[10], xb[3];
  assert_int_equal(fedc_server_opt_state_get(o, before, 10), 0);
  memcpy(xb, x, sizeof xb);
  float bad[3] = {1.0f, NAN, 0.0f};
  assert_int_equal(fedc_server_opt_step(o, x, bad, 3), FEDC_ENONFINITE);
  assert_int_equal(fedc_server_opt_step(o, x, A2, 2), FEDC_ESHAPE);
  float huge[3] = {0.0f, 0.0f, 3e38f};
  x[2] = -3e38f; /* d = 6e38: m, and then x, overflow float */
  assert_int_equal(fedc_server_opt_step(o, x, huge, 3), FEDC_ENONFINITE);
  x[2] = xb[2];
  assert_memory_equal(x, xb, sizeof x);
  assert_int_equal(fedc_server_opt_state_get(o, after, 10), 0);
  assert_memory_equal(before, after, sizeof before);
  float corrupt[10];
  memcpy(corrupt, before, sizeof corrupt);
  corrupt[4] = -1.0f; /* a negative second moment */
  assert_int_equal(fedc_server_opt_state_set(o, corrupt, 10), FEDC_ERANGE);
  memcpy(corrupt, before, sizeof corrupt);
  corrupt[8] = 0.5f; /* a step-count word that is not an integer */
  assert_int_equal(fedc_server_opt_state_set(o, corrupt, 10), FEDC_ERANGE);
  memcpy(corrupt, before, sizeof corrupt);
  corrupt[0] = INFINITY;
  assert_int_equal(fedc_server_opt_state_set(o, corrupt, 10), FEDC_ENONFINITE);
  assert_int_equal(fedc_server_opt_state_get(o, after, 10), 0);
  assert_memory_equal(before, after, sizeof before);
  fedc_server_opt_free(o);

  fedc_server_opt_params bads[] = {
      {.name = "fedavg", .lr = 0.0},
      {.name = "fedavgm", .lr = 1.0, .momentum = 1.0},
      {.name = "fedadam", .lr = 1.0, .beta1 = 0.9, .beta2 = 1.0, .tau = 0.1},
      {.name = "fedyogi", .lr = 1.0, .beta1 = -0.1, .beta2 = 0.9, .tau = 0.1},
      {.name = "fedadagrad", .lr = 1.0, .beta1 = 0.9, .tau = 0.0},
      {.name = "fedadam", .lr = NAN, .beta1 = 0.9, .beta2 = 0.9, .tau = 0.1},
  };
  for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
    o = (fedc_server_opt *)&p; /* anything not NULL */
    assert_int_equal(fedc_server_opt_new(&bads[i], 3, &o), FEDC_EINVAL);
    assert_null(o);
  }
}

static void test_optimizer_out_of_memory_is_clean(void **state) {
  (void)state;
  const char *names[] = {"fedavg", "fedavgm", "fedadam"};
  for (int k = 0; k < 3; k++) {
    int64_t live = fedc_alloc_live();
    for (int64_t fail = 1;; fail++) {
      fedc_server_opt_params p = {
          .name = names[k], .lr = 0.1, .momentum = 0.5, .beta1 = 0.9, .beta2 = 0.99, .tau = 0.1};
      fedc_server_opt *o;
      fedc_alloc_fail_after(fail, 0);
      int rc = fedc_server_opt_new(&p, 100, &o);
      fedc_alloc_fail_after(0, 0);
      if (rc == 0) {
        fedc_server_opt_free(o);
        assert_true(fail > 1);
        break;
      }
      assert_int_equal(rc, FEDC_ENOMEM);
      assert_null(o);
      assert_int_equal(fedc_alloc_live(), live);
    }
    assert_int_equal(fedc_alloc_live(), live);
  }
}

/* ---- robust aggregation ------------------------------------------------ */

/*
 * Four honest updates near (1, 1) and the outlier u4. Squared distances
 * among the honest ones:
 *   u0-u1 0.05, u0-u2 0.02, u0-u3 0.0025, u1-u2 0.13, u1-u3 0.0325,
 *   u2-u3 0.0325; u4 is ~2e4 from everyone.
 * Krum with f = 1 scores the k - f - 2 = 2 nearest:
 *   u0: 0.0025 + 0.02 = 0.0225   u1: 0.0325 + 0.05 = 0.0825
 *   u2: 0.02 + 0.0325 = 0.0525   u3: 0.0025 + 0.0325 = 0.035   u4: ~4e4
 * so Krum picks u0; Multi-Krum m = 3 averages u0, u3, u2, and m = 0
 * (k - f = 4) the four honest ones.
 */
#define K5 5
static const float U[K5][2] = {
    {1.0f, 1.0f}, {1.2f, 0.9f}, {0.9f, 1.1f}, {1.05f, 1.0f}, {100.0f, -100.0f}};

static fedc_strategy *make(const char *name, double beta, int32_t f, int32_t m, int32_t max,
                           size_t n) {
  fedc_agg_params p = {
      .name = name, .trim_beta = beta, .krum_f = f, .multikrum_m = m, .max_updates = max};
  fedc_strategy *s;
  assert_int_equal(fedc_strategy_new_params(&p, n, &s), 0);
  assert_non_null(s);
  return s;
}

/* Aggregate the updates u[perm[0]], u[perm[1]], ... with strategy s. */
static int run_round(fedc_strategy *s, const float *u, size_t n, const int *perm, int k,
                     float *out) {
  int rc = s->ops->begin(s, NULL, n);
  for (int i = 0; i < k && rc == 0; i++)
    rc = s->ops->add(s, u + (size_t)perm[i] * n, n, 1 + i);
  return rc ? rc : s->ops->finish(s, out, n);
}

static const int ID5[K5] = {0, 1, 2, 3, 4};

static void test_median_and_trimmed_mean_values(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  float out[2];
  fedc_strategy *s = make("median", 0, 0, 0, 5, 2);
  assert_string_equal(s->ops->name, "median");
  assert_int_equal(fedc_strategy_is_additive(s), 0);
  /* x sorted: 0.9 1 1.05 1.2 100 -> 1.05; y: -100 0.9 1 1 1.1 -> 1 */
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, out), 0);
  assert_true(out[0] == 1.05f && out[1] == 1.0f);
  /* four updates: the mean of the two middle values, (1 + 1.05) / 2 and (1 + 1) / 2 */
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 4, out), 0);
  assert_true(out[0] == (float)((1.0 + (double)1.05f) / 2) && out[1] == 1.0f);
  fedc_strategy_free(s);

  /* beta 0.2 of 5 cuts one at each end: x keeps 1 1.05 1.2, y keeps 0.9 1 1 */
  s = make("trimmed_mean", 0.2, 0, 0, 5, 2);
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, out), 0);
  assert_float_equal(out[0], (1.0 + 1.05 + 1.2) / 3, 1e-6);
  assert_float_equal(out[1], (0.9 + 1.0 + 1.0) / 3, 1e-6);
  fedc_strategy_free(s);
  /* beta 0: the plain unweighted mean, outlier included */
  s = make("trimmed_mean", 0.0, 0, 0, 5, 2);
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, out), 0);
  assert_float_equal(out[0], (1.0 + 1.2 + 0.9 + 1.05 + 100.0) / 5, 1e-5);
  fedc_strategy_free(s);
  assert_int_equal(fedc_alloc_live(), live);
}

/* Move the outlier anywhere beyond the honest values (x above 1.2, y below
 * 0.9), from just past them to float's edge: median and trimmed mean do not
 * change a bit. */
static void test_outlier_never_influences_median_or_trimmed_mean(void **state) {
  (void)state;
  const char *names[] = {"median", "trimmed_mean"};
  const float outliers[][2] = {
      {100.0f, -100.0f}, {1.25f, 0.85f}, {1e6f, -1e6f}, {1e30f, -1e30f}, {3e38f, -3e38f}};
  for (int k = 0; k < 2; k++) {
    fedc_strategy *s = make(names[k], 0.2, 0, 0, 5, 2);
    float ref[2], out[2], u[K5][2];
    memcpy(u, U, sizeof u);
    assert_int_equal(run_round(s, &u[0][0], 2, ID5, 5, ref), 0);
    for (size_t o = 0; o < sizeof outliers / sizeof *outliers; o++) {
      u[4][0] = outliers[o][0];
      u[4][1] = outliers[o][1];
      assert_int_equal(run_round(s, &u[0][0], 2, ID5, 5, out), 0);
      assert_memory_equal(out, ref, sizeof out);
    }
    fedc_strategy_free(s);
  }
}

static void test_krum_and_multikrum_values(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  float out[2];
  fedc_strategy *s = make("krum", 0, 1, 0, 5, 2);
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, out), 0);
  assert_memory_equal(out, U[0], sizeof out); /* u0, bit for bit */
  fedc_strategy_free(s);

  s = make("multikrum", 0, 1, 3, 5, 2); /* u0, u3, u2 */
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, out), 0);
  assert_float_equal(out[0], (1.0 + 1.05 + 0.9) / 3, 1e-6);
  assert_float_equal(out[1], (1.0 + 1.0 + 1.1) / 3, 1e-6);
  fedc_strategy_free(s);

  s = make("multikrum", 0, 1, 0, 5, 2); /* m = k - f = 4: the honest four */
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, out), 0);
  assert_float_equal(out[0], (1.0 + 1.2 + 0.9 + 1.05) / 4, 1e-6);
  assert_float_equal(out[1], (1.0 + 0.9 + 1.1 + 1.0) / 4, 1e-6);
  fedc_strategy_free(s);

  s = make("multikrum", 0, 1, 1, 5, 2); /* m = 1 is Krum */
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, out), 0);
  assert_memory_equal(out, U[0], sizeof out);
  fedc_strategy_free(s);
  assert_int_equal(fedc_alloc_live(), live);
}

static int cmp_f(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/*
 * Quickselect against sorting: for k = 1..40 updates of 50 weights, drawn
 * as few distinct values (many ties), ascending or descending runs, or
 * normals, the median equals the sorted column's middle (or the mean of the
 * two middles) exactly, and the trimmed mean the mean of the sorted
 * column's kept block.
 */
static void test_median_and_trimmed_mean_match_sorting(void **state) {
  (void)state;
  enum { KMAX = 40, N = 50 };
  static float u[KMAX * N], col[KMAX];
  fedc_rng r;
  fedc_rng_seed(&r, 123);
  int perm[KMAX];
  for (int i = 0; i < KMAX; i++)
    perm[i] = i;
  for (int k = 1; k <= KMAX; k++) {
    for (int i = 0; i < k; i++)
      for (int c = 0; c < N; c++) {
        float v;
        switch (c % 4) {
        case 0:
          v = (float)fedc_rng_below(&r, 3);
          break;
        case 1:
          v = (float)i;
          break;
        case 2:
          v = (float)(k - i);
          break;
        default:
          v = (float)fedc_rng_normal(&r);
          break;
        }
        u[(size_t)i * N + (size_t)c] = v;
      }
    float med[N], trim[N];
    fedc_strategy *sm = make("median", 0, 0, 0, KMAX, N);
    fedc_strategy *st = make("trimmed_mean", 0.3, 0, 0, KMAX, N);
    assert_int_equal(run_round(sm, u, N, perm, k, med), 0);
    assert_int_equal(run_round(st, u, N, perm, k, trim), 0);
    size_t t = (size_t)floor(0.3 * k + 1e-9);
    for (int c = 0; c < N; c++) {
      for (int i = 0; i < k; i++)
        col[i] = u[(size_t)i * N + (size_t)c];
      qsort(col, (size_t)k, sizeof *col, cmp_f);
      float want = (k & 1) ? col[k / 2] : (float)(((double)col[k / 2 - 1] + col[k / 2]) / 2);
      assert_true(med[c] == want);
      double sum = 0.0;
      for (size_t i = t; i < (size_t)k - t; i++)
        sum += col[i];
      assert_float_equal(trim[c], sum / (double)((size_t)k - 2 * t), 1e-6);
    }
    fedc_strategy_free(sm);
    fedc_strategy_free(st);
  }
}

/* Heap's algorithm: every permutation of perm[0..k), calling back on each. */
typedef void (*perm_fn)(const int *perm, void *ctx);
static void permute(int *perm, int k, perm_fn fn, void *ctx) {
  int c[8] = {0};
  fn(perm, ctx);
  for (int i = 1; i < k;) {
    if (c[i] < i) {
      int j = (i & 1) ? c[i] : 0, t = perm[j];
      perm[j] = perm[i];
      perm[i] = t;
      fn(perm, ctx);
      c[i]++;
      i = 1;
    } else {
      c[i++] = 0;
    }
  }
}

typedef struct perm_ctx {
  fedc_strategy *s;
  const float *u;
  size_t n;
  int k;
  const float *ref;
  int seen;
} perm_ctx;

static void check_perm(const int *perm, void *v) {
  perm_ctx *c = v;
  float out[64];
  assert_int_equal(run_round(c->s, c->u, c->n, perm, c->k, out), 0);
  assert_memory_equal(out, c->ref, c->n * sizeof *out);
  c->seen++;
}

static void all_orders_agree(fedc_strategy *s, const float *u, size_t n, int k) {
  float ref[64];
  int perm[8];
  for (int i = 0; i < k; i++)
    perm[i] = i;
  assert_int_equal(run_round(s, u, n, perm, k, ref), 0);
  perm_ctx c = {s, u, n, k, ref, 0};
  permute(perm, k, check_perm, &c);
  int fact = 1;
  for (int i = 2; i <= k; i++)
    fact *= i;
  assert_int_equal(c.seen, fact);
}

/* All 120 orders of the five updates give the same bytes, and so do all
 * 5040 orders of seven random 64-weight updates whose values span twelve
 * orders of magnitude (where a floating-point sum would round by order). */
static void test_every_arrival_order_same_bytes(void **state) {
  (void)state;
  enum { K7 = 7, N = 64 };
  static float r7[K7 * N];
  fedc_rng r;
  fedc_rng_seed(&r, 77);
  for (int i = 0; i < K7 * N; i++)
    r7[i] = (float)(fedc_rng_normal(&r) * pow(10.0, (double)fedc_rng_below(&r, 12) - 6));
  struct {
    const char *name;
    double beta;
    int32_t f, m;
  } cases[] = {{"median", 0, 0, 0},   {"trimmed_mean", 0.2, 0, 0}, {"trimmed_mean", 0.0, 0, 0},
               {"krum", 0, 1, 0},     {"multikrum", 0, 1, 3},      {"multikrum", 0, 1, 0},
               {"multikrum", 0, 2, 5}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    fedc_strategy *s = make(cases[i].name, cases[i].beta, cases[i].f, cases[i].m, K7, N);
    all_orders_agree(s, r7, N, K7);
    fedc_strategy_free(s);
    if (cases[i].f <= 1) {
      s = make(cases[i].name, cases[i].beta, cases[i].f, cases[i].m, K5, 2);
      all_orders_agree(s, &U[0][0], 2, K5);
      fedc_strategy_free(s);
    }
  }
  /* median of an even count (6 of the 7) */
  fedc_strategy *s = make("median", 0, 0, 0, K7, N);
  all_orders_agree(s, r7, N, 6);
  fedc_strategy_free(s);
}

/*
 * A Krum tie: on the line, -1 and 1 both score 1 + 4 = 5 (f = 1, two
 * neighbours). The tie goes to the lexicographically smaller update, -1,
 * whatever the order; likewise two equal-score 2-D mirror images.
 */
static void test_krum_tie_broken_by_values_not_arrival(void **state) {
  (void)state;
  const float line[K5] = {-2.0f, -1.0f, 1.0f, 2.0f, 100.0f};
  fedc_strategy *s = make("krum", 0, 1, 0, K5, 1);
  float out[1];
  assert_int_equal(run_round(s, line, 1, ID5, K5, out), 0);
  assert_true(out[0] == -1.0f);
  all_orders_agree(s, line, 1, K5);
  fedc_strategy_free(s);
  const float mirror[K5][2] = {{0, 1}, {0, -1}, {1, 0}, {-1, 0}, {50, 50}};
  s = make("krum", 0, 1, 0, K5, 2);
  all_orders_agree(s, &mirror[0][0], 2, K5);
  fedc_strategy_free(s);
}

/* A NaN or infinite update is refused and the round goes on as if it had
 * never come; -0 and +0 aggregate alike. */
static void test_nonfinite_refused_no_state_change(void **state) {
  (void)state;
  const char *names[] = {"median", "trimmed_mean", "krum", "multikrum"};
  for (int k = 0; k < 4; k++) {
    int64_t live = fedc_alloc_live();
    fedc_strategy *s = make(names[k], 0.2, 1, 0, 6, 2);
    float ref[2], out[2];
    assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, ref), 0);
    assert_int_equal(s->ops->begin(s, NULL, 2), 0);
    const float nan_u[2] = {1.0f, NAN}, inf_u[2] = {-INFINITY, 0.0f};
    for (int i = 0; i < 5; i++) {
      assert_int_equal(s->ops->add(s, nan_u, 2, 3), FEDC_ENONFINITE);
      assert_int_equal(s->ops->add(s, U[i], 2, 3), 0);
      assert_int_equal(s->ops->add(s, inf_u, 2, 3), FEDC_ENONFINITE);
    }
    assert_int_equal(s->ops->add(s, U[0], 3, 3), FEDC_ESHAPE);
    assert_int_equal(s->ops->finish(s, out, 2), 0);
    assert_memory_equal(out, ref, sizeof out);
    assert_int_equal(s->ops->finish(s, out, 3), FEDC_ESHAPE);
    fedc_strategy_free(s);
    assert_int_equal(fedc_alloc_live(), live);
  }
  /* signed zeros: {-0, +0, -0} has median +0, whichever order */
  const float z[3] = {-0.0f, 0.0f, -0.0f};
  fedc_strategy *s = make("median", 0, 0, 0, 3, 1);
  int perm[3] = {0, 1, 2};
  float out[1];
  assert_int_equal(run_round(s, z, 1, perm, 3, out), 0);
  assert_false(signbit(out[0]));
  fedc_strategy_free(s);
}

static void test_krum_too_few_updates_is_equorum(void **state) {
  (void)state;
  fedc_strategy *s = make("krum", 0, 1, 0, 5, 2);
  float out[2];
  /* k = 4 is not > 2f + 2 = 4 */
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 4, out), FEDC_EQUORUM);
  assert_non_null(strstr(fedc_error_msg(), "k = 4"));
  assert_non_null(strstr(fedc_error_msg(), "krum_f = 1"));
  assert_int_equal(s->ops->begin(s, NULL, 2), 0);
  assert_int_equal(s->ops->finish(s, out, 2), FEDC_EQUORUM); /* nothing at all */
  fedc_strategy_free(s);
  /* multikrum_m larger than the round's count */
  s = make("multikrum", 0, 1, 5, 6, 2);
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 4, out), FEDC_EQUORUM);
  fedc_strategy_free(s);
}

static void test_max_updates_exceeded_is_erange(void **state) {
  (void)state;
  int64_t live = fedc_alloc_live();
  fedc_strategy *s = make("median", 0, 0, 0, 5, 2);
  float ref[2], out[2];
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, ref), 0);
  assert_int_equal(s->ops->add(s, U[0], 2, 1), FEDC_ERANGE);
  assert_int_equal(s->ops->finish(s, out, 2), 0);
  assert_memory_equal(out, ref, sizeof out);
  /* the next round starts empty and reuses the buffers: no new block */
  int64_t held = fedc_alloc_live();
  assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, out), 0);
  assert_int_equal(fedc_alloc_live(), held);
  assert_int_equal(s->ops->add(s, U[0], 2, 0), FEDC_ERANGE); /* no sample count */
  fedc_strategy_free(s);
  assert_int_equal(fedc_alloc_live(), live);
}

static void test_factory_names_and_parameters(void **state) {
  (void)state;
  const char *family[] = {"fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "fedbuff"};
  for (int i = 0; i < 6; i++) {
    fedc_agg_params p = {.name = family[i]};
    fedc_strategy *s;
    assert_int_equal(fedc_strategy_new_params(&p, 4, &s), 0);
    assert_string_equal(s->ops->name, "fedavg");
    assert_int_equal(fedc_strategy_is_additive(s), 1);
    fedc_strategy_free(s);
  }
  fedc_agg_params bad[] = {
      {.name = "fedmedian", .max_updates = 5},
      {.name = NULL, .max_updates = 5},
      {.name = "median", .max_updates = 0},
      {.name = "trimmed_mean", .trim_beta = 0.5, .max_updates = 5},
      {.name = "trimmed_mean", .trim_beta = -0.1, .max_updates = 5},
      {.name = "krum", .krum_f = 1, .max_updates = 4},
      {.name = "krum", .krum_f = -1, .max_updates = 4},
      {.name = "multikrum", .krum_f = 1, .multikrum_m = 6, .max_updates = 5},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    fedc_strategy *s = (fedc_strategy *)bad; /* anything not NULL */
    assert_int_equal(fedc_strategy_new_params(&bad[i], 4, &s), FEDC_EINVAL);
    assert_null(s);
  }
  fedc_strategy *s;
  assert_int_equal(fedc_strategy_new_params(&bad[0], 4, &s), FEDC_EINVAL);
  assert_non_null(strstr(fedc_error_msg(), "fedmedian"));
}

/*
 * Fail the 1st, 2nd, ... allocation of two rounds (the second round with
 * more updates than the first, so it allocates again). A failed new is
 * FEDC_ENOMEM with nothing made; a failed add or finish is FEDC_ENOMEM with
 * the round as it was, so retrying it completes the round to the same
 * bytes. Nothing leaks.
 */
static void test_robust_out_of_memory_is_clean(void **state) {
  (void)state;
  const char *names[] = {"median", "trimmed_mean", "krum", "multikrum"};
  for (int k = 0; k < 4; k++) {
    int64_t live = fedc_alloc_live();
    fedc_agg_params p = {.name = names[k], .trim_beta = 0.2, .krum_f = 1, .max_updates = 5};
    float ref[2][2];
    fedc_strategy *s = make(names[k], 0.2, 1, 0, 5, 2);
    assert_int_equal(run_round(s, &U[0][0], 2, ID5, 4, ref[0]), k >= 2 ? FEDC_EQUORUM : 0);
    assert_int_equal(run_round(s, &U[0][0], 2, ID5, 5, ref[1]), 0);
    fedc_strategy_free(s);
    int done = 0;
    for (int64_t fail = 1; !done; fail++) {
      int failed = 0;
      fedc_alloc_fail_after(fail, 0);
      int rc = fedc_strategy_new_params(&p, 2, &s);
      if (rc != 0) {
        fedc_alloc_fail_after(0, 0);
        assert_int_equal(rc, FEDC_ENOMEM);
        assert_null(s);
        assert_int_equal(fedc_alloc_live(), live);
        continue;
      }
      for (int round = 0; round < 2; round++) {
        int count = round == 0 ? 4 : 5;
        assert_int_equal(s->ops->begin(s, NULL, 2), 0);
        for (int i = 0; i < count; i++) {
          rc = s->ops->add(s, U[i], 2, 1);
          if (rc == FEDC_ENOMEM) {
            failed = 1;
            rc = s->ops->add(s, U[i], 2, 1); /* the failure was not sticky */
          }
          assert_int_equal(rc, 0);
        }
        float out[2];
        rc = s->ops->finish(s, out, 2);
        if (rc == FEDC_ENOMEM) {
          failed = 1;
          rc = s->ops->finish(s, out, 2);
        }
        if (round == 0 && k >= 2) { /* Krum cannot do 4 with f = 1 */
          assert_int_equal(rc, FEDC_EQUORUM);
          continue;
        }
        assert_int_equal(rc, 0);
        assert_memory_equal(out, ref[round], sizeof out);
      }
      fedc_alloc_fail_after(0, 0);
      fedc_strategy_free(s);
      assert_int_equal(fedc_alloc_live(), live);
      done = !failed;
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fedavgm_two_steps),
      cmocka_unit_test(test_fedadagrad_two_steps),
      cmocka_unit_test(test_fedadam_two_steps),
      cmocka_unit_test(test_fedyogi_two_steps),
      cmocka_unit_test(test_fedavg_lr1_is_avg_exactly),
      cmocka_unit_test(test_state_round_trip_continues_identically),
      cmocka_unit_test(test_optimizer_refusals_change_nothing),
      cmocka_unit_test(test_optimizer_out_of_memory_is_clean),
      cmocka_unit_test(test_median_and_trimmed_mean_values),
      cmocka_unit_test(test_outlier_never_influences_median_or_trimmed_mean),
      cmocka_unit_test(test_median_and_trimmed_mean_match_sorting),
      cmocka_unit_test(test_krum_and_multikrum_values),
      cmocka_unit_test(test_every_arrival_order_same_bytes),
      cmocka_unit_test(test_krum_tie_broken_by_values_not_arrival),
      cmocka_unit_test(test_nonfinite_refused_no_state_change),
      cmocka_unit_test(test_krum_too_few_updates_is_equorum),
      cmocka_unit_test(test_max_updates_exceeded_is_erange),
      cmocka_unit_test(test_factory_names_and_parameters),
      cmocka_unit_test(test_robust_out_of_memory_is_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
