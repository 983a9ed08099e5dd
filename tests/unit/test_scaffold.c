/*
 * test_scaffold.c - SCAFFOLD (Karimireddy et al. 2020, option II) against
 * direct references written here:
 *   - the corrected local step of fedc_train_local, minibatch by minibatch,
 *     against y <- y - lr (g(y) + c - c_i) computed from the exact gradient
 *     (fedc_model_loss_grad) with the same shuffled batches; a zero
 *     correction leaves training bit-identical to none;
 *   - the client variate c_i+ = c_i - c + (x - y) / (K lr) and its delta;
 *   - the server variate c + sum (n_i / n) dc_i: the same bits in every
 *     arrival order, refusals leaving the state as it was;
 *   - a two-round, three-client SCAFFOLD run assembled from the pieces
 *     against one written with plain loops (model and both variates);
 *   - the config refusals (DP, secure aggregation, split runs, drivers
 *     without variates), each naming why.
 * Tolerances: training against the reference 1e-5 relative (floor 1);
 * variates 1e-6; bit-identity where stated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include <fedc/strategy.h>

#include "agg/scaffold.h"
#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "config/config.h"
#include "ml/backend.h"
#include "ml/model.h"
#include "ml/train.h"

#define ROWS 40
#define IN 5
#define CLASSES 3
#define BATCH 8

static void assert_close(const float *got, const double *want, size_t n, double tol) {
  for (size_t i = 0; i < n; i++) {
    double scale = fabs(want[i]) > 1.0 ? fabs(want[i]) : 1.0;
    if (fabs((double)got[i] - want[i]) > tol * scale)
      fail_msg("element %zu: got %.9g, want %.9g", i, (double)got[i], want[i]);
  }
}

typedef struct fixture {
  fedc_backend *be;
  fedc_trainer *t;
  fedc_model_spec spec;
  size_t np;
  float x[ROWS * IN], y[ROWS];
  int64_t rows[ROWS];
  fedc_data_view v;
} fixture;

static void fixture_open(fixture *f, fedc_model_type type) {
  memset(f, 0, sizeof *f);
  f->spec = (fedc_model_spec){.type = type, .n_in = IN, .n_out = CLASSES,
                              .n_hidden = type == FEDC_MODEL_MLP ? 1 : 0, .hidden = {6}};
  f->np = fedc_model_n_params(&f->spec);
  fedc_rng r;
  fedc_rng_seed(&r, 3);
  for (int i = 0; i < ROWS * IN; i++) f->x[i] = (float)fedc_rng_normal(&r);
  for (int i = 0; i < ROWS; i++) {
    f->y[i] = (float)(i % CLASSES);
    f->rows[i] = i;
  }
  assert_int_equal(fedc_backend_open(FEDC_DEVICE_CPU, &f->be), 0);
  assert_int_equal(fedc_trainer_new(f->be, &f->spec, ROWS, &f->t), 0);
  assert_int_equal(fedc_data_view_open(f->be, f->x, f->y, ROWS, IN, &f->v), 0);
}

static void fixture_close(fixture *f) {
  fedc_data_view_close(f->be, &f->v);
  fedc_trainer_free(f->t);
  fedc_backend_close(f->be);
}

/*
 * The reference: the same shuffles (same seed, same per-epoch draw), each
 * batch's exact gradient from fedc_model_loss_grad, then the corrected
 * step in double. Returns the step count in *steps.
 */
static void reference_train(fixture *f, const float *w0, const float *corr, float lr,
                            int epochs, uint64_t seed, double *out, int64_t *steps) {
  size_t np = f->np;
  float *w = fedc_malloc_array(np, sizeof(float)), *g = fedc_malloc_array(np, sizeof(float));
  memcpy(w, w0, np * sizeof *w);
  fedc_rng r;
  fedc_rng_seed(&r, seed);
  int64_t order[ROWS];
  *steps = 0;
  for (int e = 0; e < epochs; e++) {
    memcpy(order, f->rows, sizeof order);
    fedc_rng_shuffle_i64(&r, order, ROWS);
    for (int s = 0; s < ROWS; s += BATCH) {
      double loss;
      assert_int_equal(fedc_model_loss_grad(f->t, w, NULL, 0.0f, &f->v, order + s, BATCH,
                                            &loss, g), 0);
      for (size_t i = 0; i < np; i++)
        w[i] = (float)((double)w[i] - (double)lr * ((double)g[i] + (double)corr[i]));
      (*steps)++;
    }
  }
  for (size_t i = 0; i < np; i++) out[i] = w[i];
  fedc_free(w);
  fedc_free(g);
}

static void check_corrected_step(fedc_model_type type) {
  fixture f;
  fixture_open(&f, type);
  size_t np = f.np;
  float *w0 = fedc_malloc_array(np, sizeof(float)), *w = fedc_malloc_array(np, sizeof(float));
  float *corr = fedc_malloc_array(np, sizeof(float));
  double *want = fedc_malloc_array(np, sizeof(double));
  fedc_model_init(&f.spec, 5, w0);
  fedc_rng r;
  fedc_rng_seed(&r, 9);
  for (size_t i = 0; i < np; i++) corr[i] = (float)(0.3 * fedc_rng_normal(&r));
  int64_t ref_steps;
  reference_train(&f, w0, corr, 0.1f, 2, 77, want, &ref_steps);
  memcpy(w, w0, np * sizeof *w);
  fedc_train_params p = {.epochs = 2, .batch_size = BATCH, .lr = 0.1f, .correction = corr};
  fedc_train_stats st = {0};
  fedc_rng_seed(&r, 77);
  assert_int_equal(fedc_train_local(f.t, &p, &f.v, f.rows, ROWS, &r, w, &st), 0);
  assert_int_equal(st.steps, ref_steps);
  assert_close(w, want, np, 1e-5);
  /* the correction matters: without it the result is elsewhere */
  double *plain = fedc_malloc_array(np, sizeof(double));
  float *zero = fedc_calloc(np, sizeof(float));
  reference_train(&f, w0, zero, 0.1f, 2, 77, plain, &ref_steps);
  double moved = 0.0;
  for (size_t i = 0; i < np; i++) moved += fabs(plain[i] - want[i]);
  assert_true(moved > 1e-2);
  /* a zero correction is bit-identical to none */
  float *wz = fedc_malloc_array(np, sizeof(float));
  memcpy(w, w0, np * sizeof *w);
  memcpy(wz, w0, np * sizeof *w);
  p.correction = NULL;
  fedc_rng_seed(&r, 77);
  assert_int_equal(fedc_train_local(f.t, &p, &f.v, f.rows, ROWS, &r, w, &st), 0);
  p.correction = zero;
  fedc_rng_seed(&r, 77);
  assert_int_equal(fedc_train_local(f.t, &p, &f.v, f.rows, ROWS, &r, wz, &st), 0);
  assert_memory_equal(w, wz, np * sizeof *w);
  fedc_free(wz);
  fedc_free(zero);
  fedc_free(plain);
  fedc_free(want);
  fedc_free(corr);
  fedc_free(w);
  fedc_free(w0);
  fixture_close(&f);
}

static void test_corrected_step_softmax(void **state) {
  (void)state;
  check_corrected_step(FEDC_MODEL_SOFTMAX);
}

static void test_corrected_step_mlp(void **state) {
  (void)state;
  check_corrected_step(FEDC_MODEL_MLP);
}

static void test_client_variate(void **state) {
  (void)state;
  enum { N = 50 };
  float c[N], ci[N], x[N], y[N], cn[N], d[N];
  fedc_rng r;
  fedc_rng_seed(&r, 1);
  for (int i = 0; i < N; i++) {
    c[i] = (float)fedc_rng_normal(&r);
    ci[i] = (float)fedc_rng_normal(&r);
    x[i] = (float)fedc_rng_normal(&r);
    y[i] = (float)(x[i] + 0.1 * fedc_rng_normal(&r));
  }
  assert_int_equal(fedc_scaffold_client_update(c, ci, x, y, N, 7, 0.05f, cn, d), 0);
  for (int i = 0; i < N; i++) {
    double want = (double)ci[i] - c[i] + ((double)x[i] - y[i]) / (7 * 0.05);
    assert_true(fabs(cn[i] - want) <= 1e-6 * (fabs(want) > 1 ? fabs(want) : 1));
    assert_true(d[i] == cn[i] - ci[i]);
  }
  float corr[N];
  fedc_scaffold_correction(c, ci, N, corr);
  for (int i = 0; i < N; i++) assert_true(corr[i] == c[i] - ci[i]);
  /* in place, as drivers keep it */
  float keep[N];
  memcpy(keep, ci, sizeof keep);
  assert_int_equal(fedc_scaffold_client_update(c, keep, x, y, N, 7, 0.05f, keep, d), 0);
  assert_memory_equal(keep, cn, sizeof keep);
  assert_int_equal(fedc_scaffold_client_update(c, ci, x, y, N, 0, 0.05f, cn, d), FEDC_EINVAL);
  assert_int_equal(fedc_scaffold_client_update(c, ci, x, y, N, 3, 0.0f, cn, d), FEDC_EINVAL);
  y[3] = INFINITY;
  assert_int_equal(fedc_scaffold_client_update(c, ci, x, y, N, 3, 0.1f, cn, d),
                   FEDC_ENONFINITE);
}

static void test_server_variate(void **state) {
  (void)state;
  enum { N = 33, K = 4 };
  float d[K][N];
  const uint64_t wt[K] = {5, 120, 1, 37};
  const double total = 400.0;
  fedc_rng r;
  fedc_rng_seed(&r, 2);
  for (int k = 0; k < K; k++)
    for (int i = 0; i < N; i++) d[k][i] = (float)(fedc_rng_normal(&r) * (k + 1));
  fedc_scaffold_server *a, *b;
  assert_int_equal(fedc_scaffold_server_new(N, total, &a), 0);
  assert_int_equal(fedc_scaffold_server_new(N, total, &b), 0);
  float c0[N];
  for (int i = 0; i < N; i++) c0[i] = (float)(0.01 * i);
  assert_int_equal(fedc_scaffold_server_set(a, c0, N), 0);
  assert_int_equal(fedc_scaffold_server_set(b, c0, N), 0);
  for (int k = 0; k < K; k++) assert_int_equal(fedc_scaffold_server_add(a, d[k], N, wt[k]), 0);
  /* refusals leave the sum as it was */
  float bad[N];
  memcpy(bad, d[0], sizeof bad);
  bad[7] = NAN;
  assert_int_equal(fedc_scaffold_server_add(b, bad, N, 1), FEDC_ENONFINITE);
  assert_int_equal(fedc_scaffold_server_add(b, d[0], N - 1, 1), FEDC_ESHAPE);
  assert_int_equal(fedc_scaffold_server_count(b), 0);
  for (int k = K - 1; k >= 0; k--) assert_int_equal(fedc_scaffold_server_add(b, d[k], N, wt[k]), 0);
  assert_int_equal(fedc_scaffold_server_count(a), K);
  assert_int_equal(fedc_scaffold_server_finish(a), 0);
  assert_int_equal(fedc_scaffold_server_finish(b), 0);
  const float *ca = fedc_scaffold_server_variate(a), *cb = fedc_scaffold_server_variate(b);
  assert_memory_equal(ca, cb, N * sizeof *ca);
  double want[N];
  for (int i = 0; i < N; i++) {
    want[i] = c0[i];
    for (int k = 0; k < K; k++) want[i] += (double)wt[k] * d[k][i] / total;
  }
  assert_close(ca, want, N, 1e-6);
  /* a round with no deltas leaves c alone */
  float before[N];
  memcpy(before, ca, sizeof before);
  assert_int_equal(fedc_scaffold_server_begin(a), 0);
  assert_int_equal(fedc_scaffold_server_finish(a), 0);
  assert_memory_equal(before, ca, sizeof before);
  c0[2] = NAN;
  assert_int_equal(fedc_scaffold_server_set(a, c0, N), FEDC_ENONFINITE);
  assert_int_equal(fedc_scaffold_server_new(N, 0.0, &b), FEDC_EINVAL);
  fedc_scaffold_server_free(a);
  fedc_scaffold_server_free(b);
}

/*
 * Two rounds of SCAFFOLD with three clients (two selected per round) on
 * the fixture's rows split in three, server_lr 0.5, built from the library
 * pieces, against the same algorithm written with the reference trainer
 * and plain double loops.
 */
static void test_two_rounds_reference(void **state) {
  (void)state;
  fixture f;
  fixture_open(&f, FEDC_MODEL_SOFTMAX);
  size_t np = f.np;
  const float lr = 0.1f, server_lr = 0.5f;
  /* every client trains on all the rows but from its own seed: enough to
   * make their models differ (the variates are what is checked) */
  const uint64_t seeds[3] = {11, 12, 13};
  const uint64_t n_i = ROWS;
  const int sel[2][2] = {{0, 1}, {1, 2}};
  float *x = fedc_malloc_array(np, sizeof(float)), *y = fedc_malloc_array(np, sizeof(float));
  float *ci[3], *corr = fedc_malloc_array(np, sizeof(float)), *dl = fedc_malloc_array(np, sizeof(float));
  double *rx = fedc_malloc_array(np, sizeof(double)), *rc = fedc_calloc(np, sizeof(double));
  double *rci[3], *ry = fedc_malloc_array(np, sizeof(double)), *avg = fedc_malloc_array(np, sizeof(double));
  double *dcs = fedc_calloc(np, sizeof(double));
  for (int k = 0; k < 3; k++) {
    ci[k] = fedc_calloc(np, sizeof(float));
    rci[k] = fedc_calloc(np, sizeof(double));
  }
  fedc_model_init(&f.spec, 5, x);
  for (size_t i = 0; i < np; i++) rx[i] = x[i];
  fedc_scaffold_server *srv;
  assert_int_equal(fedc_scaffold_server_new(np, 3.0 * (double)n_i, &srv), 0);
  for (int round = 0; round < 2; round++) {
    /* the library */
    double *sum = fedc_calloc(np, sizeof(double));
    for (int j = 0; j < 2; j++) {
      int k = sel[round][j];
      memcpy(y, x, np * sizeof *y);
      fedc_scaffold_correction(fedc_scaffold_server_variate(srv), ci[k], np, corr);
      fedc_train_params p = {.epochs = 1, .batch_size = BATCH, .lr = lr, .correction = corr};
      fedc_train_stats st = {0};
      fedc_rng r;
      fedc_rng_seed(&r, seeds[k] + (uint64_t)round);
      assert_int_equal(fedc_train_local(f.t, &p, &f.v, f.rows, ROWS, &r, y, &st), 0);
      assert_int_equal(fedc_scaffold_client_update(fedc_scaffold_server_variate(srv), ci[k], x,
                                                   y, np, st.steps, lr, ci[k], dl), 0);
      assert_int_equal(fedc_scaffold_server_add(srv, dl, np, n_i), 0);
      for (size_t i = 0; i < np; i++) sum[i] += y[i];
    }
    for (size_t i = 0; i < np; i++)
      x[i] = (float)((double)x[i] + server_lr * (sum[i] / 2.0 - (double)x[i]));
    assert_int_equal(fedc_scaffold_server_finish(srv), 0);
    assert_int_equal(fedc_scaffold_server_begin(srv), 0);
    fedc_free(sum);
    /* the reference */
    memset(avg, 0, np * sizeof *avg);
    memset(dcs, 0, np * sizeof *dcs);
    for (int j = 0; j < 2; j++) {
      int k = sel[round][j];
      float *w0 = fedc_malloc_array(np, sizeof(float)), *cr = fedc_malloc_array(np, sizeof(float));
      for (size_t i = 0; i < np; i++) {
        w0[i] = (float)rx[i];
        cr[i] = (float)(rc[i] - rci[k][i]);
      }
      int64_t K;
      reference_train(&f, w0, cr, lr, 1, seeds[k] + (uint64_t)round, ry, &K);
      for (size_t i = 0; i < np; i++) {
        double nw = rci[k][i] - rc[i] + (rx[i] - ry[i]) / ((double)K * lr);
        dcs[i] += (double)n_i * (nw - rci[k][i]) / (3.0 * (double)n_i);
        rci[k][i] = nw;
        avg[i] += ry[i] / 2.0;
      }
      fedc_free(w0);
      fedc_free(cr);
    }
    for (size_t i = 0; i < np; i++) {
      rx[i] += server_lr * (avg[i] - rx[i]);
      rc[i] += dcs[i];
    }
  }
  assert_close(x, rx, np, 1e-4);
  assert_close(fedc_scaffold_server_variate(srv), rc, np, 1e-4);
  for (int k = 0; k < 3; k++) assert_close(ci[k], rci[k], np, 1e-4);
  /* the variates moved: the check above is not of zeros */
  double mag = 0.0;
  for (size_t i = 0; i < np; i++) mag += fabs(rc[i]);
  assert_true(mag > 1e-3);
  for (int k = 0; k < 3; k++) {
    fedc_free(ci[k]);
    fedc_free(rci[k]);
  }
  fedc_scaffold_server_free(srv);
  fedc_free(x); fedc_free(y); fedc_free(corr); fedc_free(dl);
  fedc_free(rx); fedc_free(rc); fedc_free(ry); fedc_free(avg); fedc_free(dcs);
  fixture_close(&f);
}

static void expect_refused(fedc_config *c, fedc_config_role role, const char *why) {
  assert_int_equal(fedc_config_check_role(c, role), FEDC_ECONFIG);
  if (strstr(fedc_error_msg(), why) == NULL)
    fail_msg("message '%s' lacks '%s'", fedc_error_msg(), why);
}

static void test_refusals(void **state) {
  (void)state;
  const fedc_strategy_info *info = fedc_strategy_lookup("scaffold");
  assert_non_null(info);
  assert_true(info->caps & FEDC_STRATEGY_VARIATES);
  assert_true(info->caps & FEDC_STRATEGY_ADDITIVE);
  assert_false(info->caps & (FEDC_STRATEGY_DP | FEDC_STRATEGY_SECAGG | FEDC_STRATEGY_ASYNC));
  fedc_config c;
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "strategy.name=scaffold"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_SIM), 0);
  assert_int_equal(fedc_config_set(&c, "privacy.noise_multiplier=1"), 0);
  expect_refused(&c, FEDC_ROLE_SIM, "differential privacy's guarantee would not hold");
  fedc_config_defaults(&c);
  assert_int_equal(fedc_config_set(&c, "strategy.name=scaffold"), 0);
  assert_int_equal(fedc_config_set(&c, "privacy.secure_aggregation=true"), 0);
  expect_refused(&c, FEDC_ROLE_SIM, "secure aggregation would hide the model update");
  /* the coordinator cannot count the federation's samples: it is told */
  fedc_config_defaults(&c);
  const char *coord[] = {"strategy.name=scaffold", "model.inputs=784", "model.classes=10",
                         "tls.cert=s.pem", "tls.key=s.key", "tls.ca=ca.pem"};
  for (size_t i = 0; i < sizeof coord / sizeof *coord; i++)
    assert_int_equal(fedc_config_set(&c, coord[i]), 0);
  expect_refused(&c, FEDC_ROLE_COORDINATOR, "[strategy] variate_samples = 0");
  assert_int_equal(fedc_config_set(&c, "strategy.variate_samples=60000"), 0);
  assert_int_equal(fedc_config_check_role(&c, FEDC_ROLE_COORDINATOR), 0);
  /* the driver-level checks */
  fedc_strategy_needs n;
  fedc_strategy_needs_init(&n);
  n.driver = "fedc-sim-mpi";
  n.can_variates = 1;
  n.split = 1;
  assert_int_equal(fedc_strategy_check(info, &n), FEDC_EUNSUPPORTED);
  assert_non_null(strstr(fedc_error_msg(), "cannot merge those across processes"));
  fedc_strategy_needs_init(&n);
  n.driver = "this driver";
  assert_int_equal(fedc_strategy_check(info, &n), FEDC_EUNSUPPORTED);
  assert_non_null(strstr(fedc_error_msg(), "does not exchange control variates"));
  n.can_variates = 1;
  assert_int_equal(fedc_strategy_check(info, &n), 0);
  /* a program's strategy cannot claim variates */
  fedc_strategy_def d;
  fedc_strategy_def_init(&d);
  d.name = "myvariates";
  d.caps = FEDC_STRATEGY_VARIATES;
  assert_int_equal(fedc_strategy_register(&d), FEDC_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_corrected_step_softmax),
      cmocka_unit_test(test_corrected_step_mlp),
      cmocka_unit_test(test_client_variate),
      cmocka_unit_test(test_server_variate),
      cmocka_unit_test(test_two_rounds_reference),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
