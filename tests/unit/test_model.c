/*
 * test_model.c - every model's analytic gradient against central finite
 * differences of its objective (data loss, L1, L2 and the FedProx term),
 * the SGD step (with momentum) against its formula, the layout of the flat
 * parameter vector, and the binary metrics (precision, recall, ROC AUC).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "ml/backend.h"
#include "ml/model.h"
#include "base/rng.h"
#include "ml/train.h"
#include "leak_check.h"

#define N_ROWS 12
#define N_IN 7

typedef struct fixture {
  float x[N_ROWS * N_IN];
  float y[N_ROWS];
  int64_t rows[N_ROWS];
} fixture;

static void make_data(fixture *f, fedc_model_type type, int32_t classes) {
  fedc_rng r;
  fedc_rng_seed(&r, 42);
  for (int i = 0; i < N_ROWS * N_IN; i++) f->x[i] = (float)fedc_rng_normal(&r);
  for (int i = 0; i < N_ROWS; i++) {
    f->rows[i] = N_ROWS - 1 - i; /* gathered in a different order */
    if (type == FEDC_MODEL_LINREG) f->y[i] = (float)fedc_rng_normal(&r);
    else f->y[i] = (float)(i % classes);
  }
}

/*
 * Check every parameter: (L(w + h e_i) - L(w - h e_i)) / 2h against g_i, in
 * double on a float model, with h = 1e-3 and a tolerance relative to the
 * gradient's scale. L1 is not differentiable at 0; the weights here are
 * random and far from 0 compared with h.
 */
static void check_gradient(fedc_model_type type, int32_t n_hidden, float l1,
                           float l2, float mu) {
  fixture f;
  int32_t classes = type == FEDC_MODEL_LOGREG ? 2 : 4;
  make_data(&f, type, classes);
  fedc_model_spec spec = {.type = type, .n_in = N_IN,
                          .n_out = (type == FEDC_MODEL_SOFTMAX || type == FEDC_MODEL_MLP) ? classes : 1,
                          .n_hidden = n_hidden, .hidden = {5, 4}, .l1 = l1, .l2 = l2};
  fedc_backend *be;
  assert_int_equal(fedc_backend_open(FEDC_DEVICE_CPU, &be), 0);
  fedc_trainer *t;
  assert_int_equal(fedc_trainer_new(be, &spec, N_ROWS, &t), 0);
  size_t np = fedc_model_n_params(&spec);
  float *w = fedc_malloc(np * sizeof(float)), *w0 = fedc_malloc(np * sizeof(float));
  float *g = fedc_malloc(np * sizeof(float)), *gd = fedc_malloc(np * sizeof(float));
  fedc_model_init(&spec, 7, w);
  fedc_rng r;
  fedc_rng_seed(&r, 3);
  for (size_t i = 0; i < np; i++) {
    w[i] *= 3.0f; /* larger weights: non-trivial ReLU patterns and logits */
    if (fabsf(w[i]) < 0.05f) w[i] = w[i] < 0 ? -0.05f : 0.05f; /* away from L1's kink */
    w0[i] = w[i] + 0.1f * (float)fedc_rng_normal(&r);
  }
  fedc_data_view dv = {f.x, f.y, N_ROWS, N_IN, NULL};
  double loss;
  assert_int_equal(fedc_model_loss_grad(t, w, w0, mu, &dv, f.rows, N_ROWS, &loss, g), 0);
  assert_true(isfinite(loss) && loss > 0.0);
  double max_err = 0.0, scale = 1e-3;
  const float h = 1e-3f;
  for (size_t i = 0; i < np; i++) {
    float keep = w[i];
    double lp, lm;
    w[i] = keep + h;
    assert_int_equal(fedc_model_loss_grad(t, w, w0, mu, &dv, f.rows, N_ROWS, &lp, gd), 0);
    w[i] = keep - h;
    assert_int_equal(fedc_model_loss_grad(t, w, w0, mu, &dv, f.rows, N_ROWS, &lm, gd), 0);
    w[i] = keep;
    double fd = (lp - lm) / ((double)(keep + h) - (double)(keep - h));
    double err = fabs(fd - (double)g[i]);
    if (err > max_err) max_err = err;
    if (fabs(g[i]) > scale) scale = fabs(g[i]);
  }
  print_message("    %s hidden=%d l1=%g l2=%g mu=%g: %zu params, max |fd - g| = %.2e (max |g| %.2e)\n",
                fedc_model_type_name(type), (int)n_hidden, l1, l2, mu, np, max_err, scale);
  assert_true(max_err < 2e-3 * scale + 1e-4);
  fedc_free(w);
  fedc_free(w0);
  fedc_free(g);
  fedc_free(gd);
  fedc_trainer_free(t);
  fedc_backend_close(be);
}

static void grad_softmax(void **s) {
  (void)s;
  check_gradient(FEDC_MODEL_SOFTMAX, 0, 0, 0, 0);
  check_gradient(FEDC_MODEL_SOFTMAX, 0, 0.01f, 0.1f, 0.5f);
}
static void grad_logreg(void **s) {
  (void)s;
  check_gradient(FEDC_MODEL_LOGREG, 0, 0, 0, 0);
  check_gradient(FEDC_MODEL_LOGREG, 0, 0.02f, 0.05f, 0.3f);
}
static void grad_linreg(void **s) {
  (void)s;
  check_gradient(FEDC_MODEL_LINREG, 0, 0, 0, 0);
  check_gradient(FEDC_MODEL_LINREG, 0, 0.01f, 0.2f, 1.0f);
}
static void grad_mlp(void **s) {
  (void)s;
  check_gradient(FEDC_MODEL_MLP, 1, 0, 0, 0);
  check_gradient(FEDC_MODEL_MLP, 2, 0.01f, 0.1f, 0.2f);
}

/* One step of momentum SGD equals v = m v + g + l2 w; w -= lr v, twice. */
static void sgd_step_formula(void **s) {
  (void)s;
  fedc_backend *be;
  assert_int_equal(fedc_backend_open(FEDC_DEVICE_CPU, &be), 0);
  float w[4] = {1, -2, 0.5f, 3}, g[4] = {0.1f, 0.2f, -0.3f, 0.4f}, v[4] = {0};
  float w0[4] = {0, 0, 0, 0};
  fedc_sgd_params p = {.lr = 0.1f, .momentum = 0.9f, .l2 = 0.01f, .prox_mu = 0.5f};
  double ew[4], ev[4] = {0};
  for (int i = 0; i < 4; i++) ew[i] = w[i];
  for (int it = 0; it < 2; it++) {
    assert_int_equal(be->sgd_step(be, w, g, v, w0, 4, &p), 0);
    for (int i = 0; i < 4; i++) {
      double gi = g[i] + 0.01 * ew[i] + 0.5 * (ew[i] - 0.0);
      ev[i] = 0.9 * ev[i] + gi;
      ew[i] -= 0.1 * ev[i];
    }
  }
  for (int i = 0; i < 4; i++) assert_true(fabs(w[i] - ew[i]) < 1e-6);
  fedc_backend_close(be);
}

static void layout_and_tensors(void **s) {
  (void)s;
  fedc_model_spec spec = {.type = FEDC_MODEL_MLP, .n_in = 784, .n_out = 10,
                          .n_hidden = 2, .hidden = {200, 200}};
  assert_int_equal(fedc_model_n_params(&spec), 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10);
  fedc_layer_layout ly;
  fedc_model_layout(&spec, 1, &ly);
  assert_int_equal(ly.in, 200);
  assert_int_equal(ly.w_off, 784 * 200 + 200);
  fedc_st_tensor t[6];
  assert_int_equal(fedc_model_tensors(&spec, NULL, t, 6), 6);
  assert_string_equal(t[4].name, "layers.2.weight");
  assert_int_equal(t[4].shape[0], 10);
  assert_int_equal(t[4].shape[1], 200);
}

/* Known AUC: scores 0.1 0.4 0.35 0.8 with labels 0 0 1 1 -> 0.75. */
static void binary_metrics(void **s) {
  (void)s;
  float sc[4] = {0.1f, 0.4f, 0.35f, 0.8f}, lb[4] = {0, 0, 1, 1};
  fedc_binary_metrics m;
  assert_int_equal(fedc_binary_metrics_compute(sc, lb, 4, &m), 0);
  assert_true(fabs(m.auc - 0.75) < 1e-12);
  assert_int_equal(m.tp, 1);
  assert_int_equal(m.fn, 1);
  assert_true(fabs(m.precision - 1.0) < 1e-12);
  assert_true(fabs(m.recall - 0.5) < 1e-12);
  float tie[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  assert_int_equal(fedc_binary_metrics_compute(tie, lb, 4, &m), 0);
  assert_true(fabs(m.auc - 0.5) < 1e-12);
}

/* The public spec setup and its check: what a program building a model
 * spec by hand gets told before anything assumes the spec is sound. */
static void spec_init_and_check(void **state) {
  (void)state;
  fedc_model_spec s;
  fedc_model_spec_init(&s, FEDC_MODEL_SOFTMAX, 784, 10);
  assert_int_equal(fedc_model_spec_check(&s), 0);
  assert_int_equal(fedc_model_n_params(&s), 784 * 10 + 10);
  s.n_in = 0;
  assert_int_equal(fedc_model_spec_check(&s), FEDC_EINVAL);
  fedc_model_spec_init(&s, FEDC_MODEL_LOGREG, 5, 2);
  assert_int_equal(fedc_model_spec_check(&s), FEDC_EINVAL);
  s.n_out = 1;
  assert_int_equal(fedc_model_spec_check(&s), 0);
  fedc_model_spec_init(&s, FEDC_MODEL_MLP, 4, 3);
  assert_int_equal(fedc_model_spec_check(&s), FEDC_EINVAL); /* no hidden layer */
  s.n_hidden = 1;
  s.hidden[0] = 0;
  assert_int_equal(fedc_model_spec_check(&s), FEDC_EINVAL);
  s.hidden[0] = 8;
  assert_int_equal(fedc_model_spec_check(&s), 0);
  assert_int_equal(fedc_model_n_params(&s), 4 * 8 + 8 + 8 * 3 + 3);
  s.l2 = -1.0f;
  assert_int_equal(fedc_model_spec_check(&s), FEDC_EINVAL);
  s.l2 = 0.0f;
  s.type = (fedc_model_type)7;
  assert_int_equal(fedc_model_spec_check(&s), FEDC_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(grad_softmax, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(grad_logreg, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(grad_linreg, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(grad_mlp, leak_setup, leak_check),
      cmocka_unit_test_setup_teardown(sgd_step_formula, leak_setup, leak_check),
      cmocka_unit_test(layout_and_tensors),
      cmocka_unit_test(spec_init_and_check),
      cmocka_unit_test_setup_teardown(binary_metrics, leak_setup, leak_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
