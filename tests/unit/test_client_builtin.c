/*
 * test_client_builtin.c - the built-in trainer through the public API
 * (<fedc/client.h>, <fedc/settings.h>), as a program that embeds the client
 * but keeps fedc's training would use it: made from settings, prepared for
 * a job, it trains the job's softmax model on Fashion-MNIST's 10,000 test
 * images (its local data here) so that the loss falls and the accuracy it
 * reports is a trained model's; a job that does not fit the data is
 * refused, naming what does not fit; bad settings are refused at once.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <fedc/alloc.h>
#include <fedc/client.h>
#include <fedc/error.h>
#include <fedc/settings.h>

#define FMNIST "/usr/share/datasets/fashion-mnist/"
#define IMAGES FMNIST "t10k-images-idx3-ubyte.gz"
#define LABELS FMNIST "t10k-labels-idx1-ubyte.gz"

static fedc_settings *settings_for(const char *images, const char *labels) {
  fedc_settings *s;
  char a[512];
  assert_int_equal(fedc_settings_new(&s), 0);
  assert_int_equal(fedc_settings_set(s, "data.format=idx"), 0);
  snprintf(a, sizeof a, "data.train=%s", images);
  assert_int_equal(fedc_settings_set(s, a), 0);
  snprintf(a, sizeof a, "data.train_labels=%s", labels);
  assert_int_equal(fedc_settings_set(s, a), 0);
  snprintf(a, sizeof a, "data.test=%s", images);
  assert_int_equal(fedc_settings_set(s, a), 0);
  snprintf(a, sizeof a, "data.test_labels=%s", labels);
  assert_int_equal(fedc_settings_set(s, a), 0);
  assert_int_equal(fedc_settings_set(s, "train.threads=2"), 0);
  return s;
}

/* A softmax job over 784 features and 10 classes, as /v1/join gives it. */
static void softmax_job(fedc_client_job *job, fedc_client_tensor t[2]) {
  memset(job, 0, sizeof *job);
  snprintf(job->id, sizeof job->id, "builtin-test");
  job->rounds = 3;
  snprintf(job->type, sizeof job->type, "softmax");
  job->inputs = 784;
  job->classes = 10;
  job->train = (fedc_client_hparams){.epochs = 1, .batch_size = 32, .lr = 0.05f};
  job->seed = 7;
  t[0] = (fedc_client_tensor){"layers.0.weight", 2, {10, 784}, 0, 7840};
  t[1] = (fedc_client_tensor){"layers.0.bias", 1, {10, 0}, 7840, 10};
}

static int have_data(void) { return access(IMAGES, R_OK) == 0 && access(LABELS, R_OK) == 0; }

static void trains_and_evaluates(void **state) {
  if (!have_data()) skip();
  fedc_settings *s = settings_for(IMAGES, LABELS);
  fedc_client_builtin *b;
  fedc_client_trainer tr;
  assert_int_equal(fedc_client_builtin_new(s, &b, &tr), 0);
  fedc_settings_free(s); /* copied */
  assert_int_equal(tr.samples, 10000);
  assert_int_equal(tr.features, 784);
  assert_int_equal(tr.test_samples, 10000);
  assert_non_null(tr.prepare);
  assert_non_null(tr.train);
  assert_non_null(tr.evaluate);

  fedc_client_job job;
  fedc_client_tensor t[2];
  softmax_job(&job, t);
  assert_int_equal(tr.prepare(tr.user_data, &job, t, 2, 7850), 0);
  float *w = fedc_calloc(7850, sizeof *w);
  assert_non_null(w);
  fedc_client_metrics before, m1, m2, after;
  fedc_client_round r = {.job = &job, .round = 1, .tensors = t, .n_tensors = 2, .n_params = 7850,
                         .fingerprint = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                         .seed = 1};
  assert_int_equal(tr.evaluate(tr.user_data, &r, w, &before), 0);
  assert_int_equal(tr.train(tr.user_data, &r, w, &m1), 0);
  r.round = 2;
  assert_int_equal(tr.train(tr.user_data, &r, w, &m2), 0);
  assert_int_equal(tr.evaluate(tr.user_data, &r, w, &after), 0);
  printf("       loss %.4f -> %.4f; accuracy %.4f -> %.4f\n", m1.loss, m2.loss, before.accuracy,
         after.accuracy);
  assert_int_equal(m1.samples, 10000);
  assert_true(isfinite(m1.loss) && isfinite(m2.loss));
  assert_true(m2.loss < m1.loss);          /* a second epoch from the first's model */
  assert_true(before.accuracy < 0.2);      /* zero weights: one class for every row */
  assert_true(after.accuracy > 0.65);      /* two epochs: 0.72 (chance is 0.10) */
  assert_int_equal(after.samples, 10000);

  /* a job that does not fit the local data is refused before training */
  job.inputs = 100;
  t[0].shape[1] = 100;
  t[0].count = 1000;
  t[1].offset = 1000;
  assert_int_equal(tr.prepare(tr.user_data, &job, t, 2, 1010), FEDC_ESHAPE);
  assert_non_null(strstr(fedc_error_msg(), "784"));
  fedc_free(w);
  fedc_client_builtin_free(b);
}

static void refuses_bad_settings(void **state) {
  fedc_settings *s;
  fedc_client_builtin *b = (fedc_client_builtin *)&b;
  fedc_client_trainer tr;
  assert_int_equal(fedc_settings_new(&s), 0);
  assert_int_equal(fedc_settings_set(s, "data.train="), 0);
  assert_int_equal(fedc_client_builtin_new(s, &b, &tr), FEDC_ECONFIG);
  assert_non_null(strstr(fedc_error_msg(), "[data] train"));
  assert_int_equal(fedc_settings_set(s, "data.format=idx"), 0);
  assert_int_equal(fedc_settings_set(s, "data.train=/nonexistent/images.gz"), 0);
  assert_int_equal(fedc_settings_set(s, "data.train_labels=/nonexistent/labels.gz"), 0);
  int rc = fedc_client_builtin_new(s, &b, &tr);
  assert_true(rc == FEDC_EIO || rc == FEDC_ENOTFOUND);
  assert_null(b);
  assert_non_null(strstr(fedc_error_msg(), "/nonexistent/images.gz"));
  fedc_settings_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(trains_and_evaluates),
      cmocka_unit_test(refuses_bad_settings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
