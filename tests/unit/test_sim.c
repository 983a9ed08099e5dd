/*
 * test_sim.c - short end-to-end simulations on the real Fashion-MNIST data
 * (Debian's dataset-fashion-mnist, installed by `make test`): federated
 * softmax regression raises test accuracy from chance (~0.10) to well above
 * it in a few rounds; the same seed gives the same model bit for bit with 1
 * and 2 threads; a saved model reads back through the safetensors decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "config/config.h"
#include "base/error.h"
#include "ml/model.h"
#include "wire/safetensors.h"
#include "sim.h"

static void small_config(fedc_config *c, int32_t threads) {
  fedc_config_defaults(c);
  assert_int_equal(fedc_config_set(c, "job.rounds=5"), 0);
  assert_int_equal(fedc_config_set(c, "sim.clients=50"), 0);
  assert_int_equal(fedc_config_set(c, "job.clients_per_round=5"), 0);
  assert_int_equal(fedc_config_set(c, "sim.partition=dirichlet"), 0);
  assert_int_equal(fedc_config_set(c, "train.lr=0.05"), 0);
  char t[64];
  snprintf(t, sizeof t, "train.threads=%d", (int)threads);
  assert_int_equal(fedc_config_set(c, t), 0);
  assert_int_equal(fedc_config_check(c), 0);
}

static void run(const fedc_config *c, float **model, size_t *n, double *acc0,
                double *acc) {
  fedc_sim *s;
  int rc = fedc_sim_new_config(c, &s);
  if (rc != 0) fail_msg("fedc_sim_new: %s", fedc_error_msg());
  double loss0;
  assert_int_equal(fedc_sim_evaluate(s, &loss0, acc0), 0);
  fedc_round_metrics m = {0};
  while (!fedc_sim_done(s)) {
    rc = fedc_sim_round(s, &m);
    if (rc != 0) fail_msg("round: %s", fedc_error_msg());
  }
  assert_int_equal(m.round, c->rounds);
  assert_int_equal(m.clients, c->clients_per_round);
  assert_true(m.samples > 0);
  *acc = m.test_acc;
  *n = fedc_model_n_params(fedc_sim_spec(s));
  *model = fedc_malloc(*n * sizeof(float));
  memcpy(*model, fedc_sim_global(s), *n * sizeof(float));
  char path[] = "/tmp/fedc-test-sim-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(fedc_sim_save(s, path), 0);
  fedc_st_file *f;
  assert_int_equal(fedc_st_read_file(path, &f), 0);
  float *back = fedc_malloc(*n * sizeof(float));
  assert_int_equal(fedc_model_from_tensors(fedc_sim_spec(s), f, back), 0);
  assert_memory_equal(back, *model, *n * sizeof(float));
  assert_string_equal(fedc_st_meta_get(f, "round"), "5");
  fedc_free(back);
  fedc_st_free(f);
  unlink(path);
  fedc_sim_free(s);
}

static void sim_learns_and_is_deterministic(void **st) {
  (void)st;
  fedc_config c;
  float *m1, *m2;
  size_t n1, n2;
  double a0, a1, b0, b1;
  small_config(&c, 1);
  run(&c, &m1, &n1, &a0, &a1);
  small_config(&c, 2);
  run(&c, &m2, &n2, &b0, &b1);
  print_message("    accuracy before %.4f, after 5 rounds %.4f (1 thread) %.4f (2 threads)\n",
                a0, a1, b1);
  assert_true(a0 < 0.25);
  assert_true(a1 > 0.65);
  assert_int_equal(n1, n2);
  assert_memory_equal(m1, m2, n1 * sizeof(float));
  assert_true(a1 == b1);
  fedc_free(m1);
  fedc_free(m2);
}

/* A missing data file is a clear error naming the key and the path. */
static void sim_missing_data(void **st) {
  (void)st;
  fedc_config c;
  small_config(&c, 1);
  assert_int_equal(fedc_config_set(&c, "data.train=/nonexistent/train.gz"), 0);
  fedc_sim *s;
  int rc = fedc_sim_new_config(&c, &s);
  assert_int_equal(rc, FEDC_EIO);
  assert_non_null(strstr(fedc_error_msg(), "[data] train"));
  assert_non_null(strstr(fedc_error_msg(), "/nonexistent/train.gz"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sim_learns_and_is_deterministic),
      cmocka_unit_test(sim_missing_data),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
