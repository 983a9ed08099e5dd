/*
 * test_scaffold_external.c - SCAFFOLD for the external trainer
 * (client/scaffold_external.c): the correction file holds the model's
 * tensors by name and shape with the correction's values; the step count
 * is read from the metrics JSON, else the update's metadata, required and
 * checked (integer 1..2^40) in a SCAFFOLD round, where a missing or bad one
 * is a failed round (FEDC_SUB_TRAINER_FAILED); optional otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "scaffold_external.h"

static int64_t live_at_start;

static int setup(void **state) {
  live_at_start = fedc_alloc_live();
  fedc_error_clear();
  return 0;
}

static int teardown(void **state) {
  assert_int_equal(fedc_alloc_live(), live_at_start);
  return 0;
}

/* A softmax model's layout: weight [3, 4] at 0, bias [3] at 12. */
static const fedc_client_tensor TENSORS[] = {
    {"layers.0.weight", 2, {3, 4}, 0, 12},
    {"layers.0.bias", 1, {3, 0}, 12, 3},
};

static fedc_client_round round_of(const float *corr) {
  fedc_client_round r = {0};
  r.round = 4;
  r.tensors = TENSORS;
  r.n_tensors = 2;
  r.n_params = 15;
  r.correction = corr;
  return r;
}

static void test_correction_file(void **state) {
  float corr[15];
  for (int i = 0; i < 15; i++) corr[i] = 0.25f * (float)i - 1.0f;
  fedc_client_round r = round_of(corr);
  char path[] = "/tmp/fedc-test-corr-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(fedc__client_correction_write(path, &r), 0);
  fedc_st_file *f = NULL;
  assert_int_equal(fedc_st_read_file(path, &f), 0);
  assert_int_equal(fedc_st_count(f), 2);
  assert_string_equal(fedc_st_meta_get(f, "kind"), "scaffold_correction");
  assert_string_equal(fedc_st_meta_get(f, "round"), "4");
  for (size_t i = 0; i < 2; i++) {
    fedc_st_tensor t;
    assert_int_equal(fedc_st_find(f, TENSORS[i].name, &t), 0);
    assert_int_equal(t.ndim, TENSORS[i].ndim);
    for (int k = 0; k < t.ndim; k++) assert_int_equal(t.shape[k], TENSORS[i].shape[k]);
    assert_memory_equal(t.data, corr + TENSORS[i].offset, TENSORS[i].count * sizeof(float));
  }
  fedc_st_free(f);
  unlink(path);
}

/* steps from metrics text (or NULL) and metadata value (or NULL). */
static int steps_of(const char *metrics, const char *meta, const float *corr, int64_t *steps) {
  fedc_client_round r = round_of(corr);
  cJSON *m = metrics ? cJSON_Parse(metrics) : NULL;
  fedc_st_file *f = NULL;
  if (meta != NULL) {
    float w[15] = {0};
    fedc_st_tensor t = {.name = "w", .ndim = 1, .shape = {15}, .data = w};
    fedc_st_meta md[] = {{"steps", meta}};
    uint8_t *buf;
    size_t len;
    assert_int_equal(fedc_st_encode(&t, 1, md, 1, &buf, &len), 0);
    assert_int_equal(fedc_st_decode(buf, len, &f), 0);
    fedc_free(buf);
  }
  fedc_error_clear();
  int rc = fedc__client_correction_steps(m, f, &r, steps);
  cJSON_Delete(m);
  fedc_st_free(f);
  return rc;
}

static void assert_failed_round(const char *needle) {
  assert_int_equal(fedc_error_sub(), FEDC_SUB_TRAINER_FAILED);
  if (strstr(fedc_error_msg(), needle) == NULL) fail_msg("message: %s", fedc_error_msg());
}

static void test_steps(void **state) {
  static const float corr[15];
  int64_t k = -1;
  /* a SCAFFOLD round: required */
  assert_int_equal(steps_of("{\"num_samples\": 10, \"steps\": 30}", NULL, corr, &k), 0);
  assert_int_equal(k, 30);
  assert_int_equal(steps_of(NULL, "12", corr, &k), 0);
  assert_int_equal(k, 12);
  assert_int_equal(steps_of("{\"steps\": 5}", "12", corr, &k), 0); /* the metrics first */
  assert_int_equal(k, 5);
  assert_int_equal(steps_of("{\"num_samples\": 10}", NULL, corr, &k), FEDC_EINVAL);
  assert_int_equal(k, 0);
  assert_failed_round("steps is missing: a SCAFFOLD round needs");
  const char *bad[] = {"{\"steps\": 0}", "{\"steps\": 2.5}", "{\"steps\": -3}",
                       "{\"steps\": \"7\"}", "{\"steps\": 1e300}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(steps_of(bad[i], NULL, corr, &k), FEDC_EINVAL);
    assert_failed_round("steps is not valid");
  }
  assert_int_equal(steps_of(NULL, "7x", corr, &k), FEDC_EINVAL);
  assert_failed_round("steps is not valid");
  /* other rounds: optional, passed on when valid */
  assert_int_equal(steps_of("{\"num_samples\": 10}", NULL, NULL, &k), 0);
  assert_int_equal(k, 0);
  assert_int_equal(steps_of("{\"steps\": 9}", NULL, NULL, &k), 0);
  assert_int_equal(k, 9);
  assert_int_equal(steps_of("{\"steps\": 0}", NULL, NULL, &k), FEDC_EINVAL);
  assert_failed_round("steps is not valid");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_correction_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_steps, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
