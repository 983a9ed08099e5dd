/*
 * test_client_backoff.c - the edge client's pure pieces: the full-jitter
 * backoff schedule (bounded by its cap, growing, jittered, reset by a
 * success), parsing of the coordinator's JSON answers (join, task, update,
 * errors) with malformed input refused as FEDC_EFORMAT, the check that a
 * job's model fits the local data (with messages naming both numbers),
 * the encoding of an update (decoded back: metadata and tensors), and the
 * certificate fingerprint against openssl's, the embedding API's parameter
 * checks and the tensor layout a trainer sees. Every test also checks that it
 * leaked no fedc block.
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
#include "client.h"
#include "base/error.h"
#include "ml/model.h"
#include "wire/safetensors.h"

static int64_t live_at_start;

static int setup(void **state) {
  live_at_start = fedc_alloc_live();
  fedc_error_clear();
  return 0;
}

static int teardown(void **state) {
  fedc_alloc_fail_after(0, 0);
  assert_int_equal(fedc_alloc_live(), live_at_start);
  return 0;
}

static void assert_msg_has(const char *needle) {
  const char *msg = fedc_error_msg();
  if (strstr(msg, needle) == NULL)
    fail_msg("error message \"%s\" does not mention \"%s\"", msg, needle);
}

/* ---- backoff ------------------------------------------------------------ */

/* The ceiling doubles from base up to max and stays there; every delay lies
 * in [0, ceiling). */
static void test_backoff_bounded_and_growing(void **state) {
  fedc_client_backoff b;
  fedc_client_backoff_init(&b, 0.2, 5.0, 7);
  const double caps[] = {0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0};
  for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
    assert_true(fabs(fedc_client_backoff_cap(&b) - caps[k]) < 1e-12);
    double d = fedc_client_backoff_next(&b);
    assert_true(d >= 0.0 && d < caps[k]);
  }
  /* thousands of failures in a row: still bounded, still finite */
  for (int i = 0; i < 5000; i++) {
    double d = fedc_client_backoff_next(&b);
    assert_true(isfinite(d) && d >= 0.0 && d < 5.0);
  }
  assert_true(fedc_client_backoff_cap(&b) == 5.0);
}

/* At one attempt the delays are spread over the whole [0, cap) interval
 * (full jitter, not "cap plus a little noise"), with mean cap/2; later
 * attempts wait longer on average. */
static void test_backoff_jittered(void **state) {
  fedc_client_backoff b;
  fedc_client_backoff_init(&b, 0.2, 30.0, 99);
  const int n = 4000;
  double mean[4] = {0}, lo = 1e9, hi = -1;
  for (int k = 0; k < 4; k++) {
    for (int i = 0; i < n; i++) {
      fedc_client_backoff_reset(&b);
      for (int j = 0; j < k; j++)
        (void)fedc_client_backoff_next(&b);
      double cap = fedc_client_backoff_cap(&b);
      double d = fedc_client_backoff_next(&b);
      mean[k] += d / n;
      if (k == 3) {
        if (d / cap < lo) lo = d / cap;
        if (d / cap > hi) hi = d / cap;
      }
    }
  }
  for (int k = 0; k < 4; k++) {
    double cap = 0.2 * (double)(1 << k);
    assert_true(fabs(mean[k] - cap / 2) < 0.05 * cap);
    if (k > 0) assert_true(mean[k] > mean[k - 1] * 1.5);
  }
  assert_true(lo < 0.01);
  assert_true(hi > 0.99);

  /* two clients with different seeds do not retry in lock step */
  fedc_client_backoff a, c;
  fedc_client_backoff_init(&a, 0.2, 30.0, 1);
  fedc_client_backoff_init(&c, 0.2, 30.0, 2);
  int same = 0;
  for (int i = 0; i < 8; i++)
    same += fedc_client_backoff_next(&a) == fedc_client_backoff_next(&c);
  assert_int_equal(same, 0);
}

/* A success resets the schedule to its first, shortest ceiling. */
static void test_backoff_reset(void **state) {
  fedc_client_backoff b;
  fedc_client_backoff_init(&b, 0.2, 30.0, 3);
  for (int i = 0; i < 10; i++)
    (void)fedc_client_backoff_next(&b);
  assert_true(fedc_client_backoff_cap(&b) == 30.0);
  fedc_client_backoff_reset(&b);
  assert_true(fabs(fedc_client_backoff_cap(&b) - 0.2) < 1e-12);
  assert_true(fedc_client_backoff_next(&b) < 0.2);
  assert_true(fabs(fedc_client_backoff_cap(&b) - 0.4) < 1e-12);
}

/* ---- task JSON ------------------------------------------------------------ */

static int task(const char *json, fedc_client_task *t) {
  return fedc_client_task_parse(json, strlen(json), t);
}

static void test_task_parse(void **state) {
  fedc_client_task t;
  char json[256], sha[65];
  /* upper case in, lower case out */
  snprintf(sha, sizeof sha, "AB12%056dcdef", 0);
  snprintf(json, sizeof json,
           "{\"action\": \"train\", \"round\": 4, "
           "\"model_sha256\": \"%s\", \"deadline_s\": 57.2}",
           sha);
  assert_int_equal(task(json, &t), 0);
  assert_int_equal(t.action, FEDC_CLIENT_TASK_TRAIN);
  assert_int_equal(t.round, 4);
  snprintf(sha, sizeof sha, "ab12%056dcdef", 0);
  assert_string_equal(t.model_sha256, sha);
  assert_true(fabs(t.deadline_s - 57.2) < 1e-9);

  assert_int_equal(task("{\"action\":\"wait\",\"round\":4,\"retry_after_ms\":1500}", &t), 0);
  assert_int_equal(t.action, FEDC_CLIENT_TASK_WAIT);
  assert_int_equal(t.round, 4);
  assert_true(fabs(t.retry_after_s - 1.5) < 1e-12);

  assert_int_equal(task("{\"action\":\"wait\"}", &t), 0);
  assert_int_equal(t.action, FEDC_CLIENT_TASK_WAIT);
  assert_true(t.retry_after_s == 0.0);

  assert_int_equal(task("{\"action\":\"finished\",\"round\":20}", &t), 0);
  assert_int_equal(t.action, FEDC_CLIENT_TASK_FINISHED);
  assert_int_equal(t.round, 20);

  /* a train task without a deadline is still a task */
  snprintf(json, sizeof json,
           "{\"action\":\"train\",\"round\":1,"
           "\"model_sha256\":\"%064d\"}",
           0);
  assert_int_equal(task(json, &t), 0);
  assert_true(t.deadline_s < 0);
}

/* 62 zeros: with two more characters, a would-be checksum */
#define Z62 "00000000000000000000000000000000000000000000000000000000000000"

static void test_task_parse_malformed(void **state) {
  static const char *const bad[][2] = {
      {"", "not a JSON object"},
      {"{\"action\": \"train\"", "not a JSON object"},
      {"[1,2]", "not a JSON object"},
      {"{}", "\"action\" is missing"},
      {"{\"action\": 3}", "\"action\" is not a string"},
      {"{\"action\": \"dance\"}", "dance"},
      {"{\"action\": \"train\", \"model_sha256\": \"00\"}", "\"round\" is missing"},
      {"{\"action\": \"train\", \"round\": 0}", "\"round\" = 0"},
      {"{\"action\": \"train\", \"round\": 2.5}", "\"round\" = 2.5"},
      {"{\"action\": \"train\", \"round\": \"3\"}", "\"round\" is not a number"},
      {"{\"action\": \"train\", \"round\": 3}", "\"model_sha256\" is missing"},
      {"{\"action\": \"train\", \"round\": 3, \"model_sha256\": \"abc\"}", "not 64 hex digits"},
      {"{\"action\": \"train\", \"round\": 3, \"model_sha256\": \"zz" Z62 "\"}",
       "not 64 hex digits"},
      {"{\"action\": \"train\", \"round\": 3, \"model_sha256\": \"00" Z62 "0\"}",
       "not 64 hex digits"},
      {"{\"action\": \"wait\", \"retry_after_ms\": -5}", "\"retry_after_ms\""},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    fedc_client_task t;
    fedc_error_clear();
    int rc = task(bad[i][0], &t);
    if (rc != FEDC_EFORMAT) fail_msg("'%s' gave %d, not FEDC_EFORMAT", bad[i][0], rc);
    assert_msg_has(bad[i][1]);
  }
  /* the body need not be NUL-terminated: only len bytes are read */
  const char body[] = "{\"action\":\"finished\",\"round\":2}GARBAGE";
  fedc_client_task t;
  assert_int_equal(fedc_client_task_parse(body, strlen(body) - 7, &t), 0);
  assert_int_equal(t.action, FEDC_CLIENT_TASK_FINISHED);
}

/* ---- join, update and error JSON --------------------------------------------- */

static const char join_example[] =
    "{\"client_id\": 3, \"job\": {\"id\": \"9f2c\", \"rounds\": 20, "
    "\"round\": 4, \"model\": {\"type\": \"softmax\", \"inputs\": 784, "
    "\"classes\": 10, \"hidden\": []}, \"train\": {\"epochs\": 1, "
    "\"batch_size\": 32, \"lr\": 0.05, \"momentum\": 0.0, \"prox_mu\": 0.0}, "
    "\"seed\": 1}}";

static void test_job_parse(void **state) {
  fedc_client_job j;
  assert_int_equal(fedc_client_job_parse(join_example, strlen(join_example), &j), 0);
  assert_int_equal(j.client_id, 3);
  assert_string_equal(j.id, "9f2c");
  assert_int_equal(j.rounds, 20);
  assert_int_equal(j.round, 4);
  assert_string_equal(j.type, "softmax");
  assert_int_equal(j.inputs, 784);
  assert_int_equal(j.classes, 10);
  assert_int_equal(j.n_hidden, 0);
  assert_int_equal(j.train.epochs, 1);
  assert_int_equal(j.train.batch_size, 32);
  assert_true(fabs(j.train.lr - 0.05f) < 1e-9);
  assert_true(j.train.momentum == 0.0f && j.train.prox_mu == 0.0f);
  assert_true(j.seed == 1);

  const char mlp[] = "{\"client_id\": 0, \"job\": {\"id\": \"x\", \"rounds\": 2, \"round\": 1, "
                     "\"model\": {\"type\": \"mlp\", \"inputs\": 5, \"classes\": 3, "
                     "\"hidden\": [8, 4], \"l2\": 0.001}, \"train\": {\"epochs\": 2, "
                     "\"batch_size\": 4, \"lr\": 0.1, \"momentum\": 0.9, \"prox_mu\": 0.01}, "
                     "\"seed\": \"18446744073709551615\"}}";
  assert_int_equal(fedc_client_job_parse(mlp, strlen(mlp), &j), 0);
  assert_string_equal(j.type, "mlp");
  assert_int_equal(j.n_hidden, 2);
  assert_int_equal(j.hidden[0], 8);
  assert_int_equal(j.hidden[1], 4);
  assert_true(fabs(j.l2 - 0.001f) < 1e-9 && j.l1 == 0.0f);
  assert_true(fabs(j.train.momentum - 0.9f) < 1e-7);
  assert_true(j.seed == UINT64_MAX);

  /* a seed above 2^53 printed as a JSON number (as cJSON prints a uint64
   * cast to double) is taken as the double it became */
  char big[sizeof join_example + 32];
  snprintf(big, sizeof big, "%.*s1152921504606846976}}", (int)(strlen(join_example) - 3),
           join_example);
  assert_int_equal(fedc_client_job_parse(big, strlen(big), &j), 0);
  assert_true(j.seed == (uint64_t)1 << 60);

  static const char *const bad[][2] = {
      {"nope", "not a JSON object"},
      {"{\"client_id\": 3}", "\"job\" is missing"},
      {"{\"client_id\": 3, \"job\": {\"id\": \"a\", \"rounds\": 2, \"round\": 1, "
       "\"seed\": 1, \"model\": {\"type\": \"svm\", \"inputs\": 4, \"classes\": 2}}}",
       "svm"},
      {"{\"client_id\": 3, \"job\": {\"id\": \"a\", \"rounds\": 2, \"round\": 1, "
       "\"seed\": 1, \"model\": {\"type\": \"mlp\", \"inputs\": 4, \"classes\": 2}}}",
       "hidden"},
      {"{\"client_id\": 3, \"job\": {\"id\": \"a\", \"rounds\": 2, \"round\": 1, "
       "\"seed\": 1, \"model\": {\"type\": \"softmax\", \"inputs\": 4, "
       "\"classes\": 2}, \"train\": {\"epochs\": 1, \"batch_size\": 8, "
       "\"lr\": -1}}}",
       "\"lr\""},
      {"{\"client_id\": 3, \"job\": {\"id\": \"a\", \"rounds\": 2, \"round\": 1, "
       "\"seed\": -1}}",
       "\"seed\""},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    fedc_error_clear();
    int rc = fedc_client_job_parse(bad[i][0], strlen(bad[i][0]), &j);
    if (rc != FEDC_EFORMAT) fail_msg("'%s' gave %d, not FEDC_EFORMAT", bad[i][0], rc);
    assert_msg_has(bad[i][1]);
  }
}

static void test_ack_and_error_parse(void **state) {
  fedc_client_ack a;
  const char *ok = "{\"accepted\": true, \"round\": 4, \"duplicate\": true}";
  assert_int_equal(fedc_client_ack_parse(ok, strlen(ok), &a), 0);
  assert_true(a.accepted && a.duplicate);
  assert_int_equal(a.round, 4);
  const char *bad = "{\"accepted\": \"yes\"}";
  assert_int_equal(fedc_client_ack_parse(bad, strlen(bad), &a), FEDC_EFORMAT);

  char code[16], msg[32];
  const char *e = "{\"error\": \"stale_round\", \"message\": \"update for round 3, "
                  "but round 4 is open\"}";
  fedc_client_error_parse(e, strlen(e), code, sizeof code, msg, sizeof msg);
  assert_string_equal(code, "stale_round");
  assert_string_equal(msg, "update for round 3, but round 4"); /* cut to fit */
  fedc_client_error_parse("<html>", 6, code, sizeof code, msg, sizeof msg);
  assert_string_equal(code, "");
  assert_string_equal(msg, "");
}

/* ---- the model against the data ----------------------------------------------- */

static fedc_client_job softmax_job(int32_t inputs, int32_t classes) {
  fedc_client_job j;
  memset(&j, 0, sizeof j);
  snprintf(j.type, sizeof j.type, "softmax");
  j.inputs = inputs;
  j.classes = classes;
  j.train = (fedc_client_hparams){.epochs = 1, .batch_size = 32, .lr = 0.05f};
  return j;
}

/* check_fit only reads the shape and the class count */
static fedc_dataset data_shape(int64_t n, int64_t d, int32_t n_classes) {
  fedc_dataset ds;
  memset(&ds, 0, sizeof ds);
  ds.n = n;
  ds.d = d;
  ds.n_classes = n_classes;
  return ds;
}

static void test_check_fit(void **state) {
  fedc_model_spec spec;
  fedc_client_job j = softmax_job(784, 10);
  fedc_dataset train = data_shape(600, 784, 10), test = data_shape(100, 784, 10);
  assert_int_equal(fedc_client_check_fit(&j, &train, &test, &spec), 0);
  assert_int_equal(spec.type, FEDC_MODEL_SOFTMAX);
  assert_int_equal(spec.n_in, 784);
  assert_int_equal(spec.n_out, 10);
  assert_int_equal(fedc_model_n_params(&spec), 7850);

  /* a client holding fewer classes than the job is fine */
  train.n_classes = 7;
  assert_int_equal(fedc_client_check_fit(&j, &train, NULL, &spec), 0);
  assert_int_equal(spec.n_out, 10);

  /* wrong inputs: both numbers in the message */
  train = data_shape(600, 785, 10);
  assert_int_equal(fedc_client_check_fit(&j, &train, NULL, &spec), FEDC_ESHAPE);
  assert_msg_has("785");
  assert_msg_has("784");
  assert_msg_has("[data] train");

  /* the test set is checked too */
  train = data_shape(600, 784, 10);
  test = data_shape(100, 783, 10);
  assert_int_equal(fedc_client_check_fit(&j, &train, &test, &spec), FEDC_ESHAPE);
  assert_msg_has("[data] test");
  assert_msg_has("783");

  /* a label at or past the job's classes */
  train = data_shape(600, 784, 12);
  assert_int_equal(fedc_client_check_fit(&j, &train, NULL, &spec), FEDC_ERANGE);
  assert_msg_has("label 11");
  assert_msg_has("10 classes");

  /* a regression target under a classifier */
  train = data_shape(600, 784, 0);
  assert_int_equal(fedc_client_check_fit(&j, &train, NULL, &spec), FEDC_ERANGE);
  assert_msg_has("not class indices");

  /* logreg: labels 0 and 1 only; one output */
  j = softmax_job(4, 0);
  snprintf(j.type, sizeof j.type, "logreg");
  train = data_shape(50, 4, 2);
  assert_int_equal(fedc_client_check_fit(&j, &train, NULL, &spec), 0);
  assert_int_equal(spec.n_out, 1);
  train.n_classes = 3;
  assert_int_equal(fedc_client_check_fit(&j, &train, NULL, &spec), FEDC_ERANGE);
  assert_msg_has("label 2");

  /* linreg takes any target */
  snprintf(j.type, sizeof j.type, "linreg");
  train.n_classes = 0;
  assert_int_equal(fedc_client_check_fit(&j, &train, NULL, &spec), 0);

  /* an mlp's layers come from the job; an absurd size is refused */
  j = softmax_job(4, 3);
  snprintf(j.type, sizeof j.type, "mlp");
  j.n_hidden = 2;
  j.hidden[0] = 8;
  j.hidden[1] = 5;
  train = data_shape(50, 4, 3);
  assert_int_equal(fedc_client_check_fit(&j, &train, NULL, &spec), 0);
  assert_int_equal(fedc_model_n_params(&spec), (4 * 8 + 8) + (8 * 5 + 5) + (5 * 3 + 3));
  j.hidden[0] = j.hidden[1] = 65536;
  assert_int_equal(fedc_client_check_fit(&j, &train, NULL, &spec), FEDC_ERANGE);
  assert_msg_has("parameters");
}

/* ---- updates ---------------------------------------------------------------------- */

static void test_update_encoding(void **state) {
  fedc_model_spec spec = {
      .type = FEDC_MODEL_MLP, .n_in = 6, .n_out = 3, .n_hidden = 1, .hidden = {4}};
  size_t np = fedc_model_n_params(&spec);
  float *w = fedc_malloc_array(np, sizeof(float));
  assert_non_null(w);
  fedc_model_init(&spec, 11, w);
  w[0] = -0.0f;
  w[1] = 1e-40f; /* denormal: must survive bit for bit */

  uint8_t *buf;
  size_t len;
  assert_int_equal(fedc_client_update_encode(&spec, w, 7, 600, 0.5123, &buf, &len), 0);
  fedc_st_file *f;
  assert_int_equal(fedc_st_decode(buf, len, &f), 0);
  assert_string_equal(fedc_st_meta_get(f, "round"), "7");
  assert_string_equal(fedc_st_meta_get(f, "num_samples"), "600");
  assert_true(fabs(strtod(fedc_st_meta_get(f, "train_loss"), NULL) - 0.5123) < 1e-9);
  assert_non_null(fedc_st_meta_get(f, "sha256"));
  assert_int_equal(strlen(fedc_st_meta_get(f, "sha256")), 64);

  /* names, shapes and every bit of the weights as the model lays them out */
  assert_int_equal(fedc_st_count(f), 4);
  fedc_st_tensor t;
  assert_int_equal(fedc_st_find(f, "layers.0.weight", &t), 0);
  assert_int_equal(t.ndim, 2);
  assert_int_equal(t.shape[0], 4);
  assert_int_equal(t.shape[1], 6);
  assert_int_equal(fedc_st_find(f, "layers.1.bias", &t), 0);
  assert_int_equal(t.shape[0], 3);
  float *back = fedc_malloc_array(np, sizeof(float));
  assert_non_null(back);
  assert_int_equal(fedc_model_from_tensors(&spec, f, back), 0);
  assert_memory_equal(back, w, np * sizeof(float));

  /* the keep_updates copy is the same bytes */
  char path[] = "/tmp/fedc-test-update-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(fedc_client_update_write(path, &spec, w, 7, 600, 0.5123), 0);
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  uint8_t *disk = fedc_malloc(len + 1);
  assert_non_null(disk);
  assert_int_equal(fread(disk, 1, len + 1, fp), len);
  fclose(fp);
  unlink(path);
  assert_memory_equal(disk, buf, len);

  /* nonsense metadata is refused, not sent */
  uint8_t *none = NULL;
  size_t nlen = 0;
  assert_int_equal(fedc_client_update_encode(&spec, w, 7, 0, 0.5, &none, &nlen), FEDC_EINVAL);
  assert_int_equal(fedc_client_update_encode(&spec, w, 7, 10, NAN, &none, &nlen), FEDC_EINVAL);
  assert_null(none);

  fedc_free(disk);
  fedc_free(back);
  fedc_st_free(f);
  fedc_free(buf);
  fedc_free(w);
}

/* ---- the certificate fingerprint ------------------------------------------------------ */

/* A development client certificate (public, no key) made by
 * certs/make-certs.sh, and its fingerprint as openssl computes it:
 * openssl x509 -in c.pem -outform DER | sha256sum */
static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBpTCCAUugAwIBAgIUMGIgmqowQ5SMkiGj0x5pbFoc+74wCgYIKoZIzj0EAwIw\n"
                               "HjEcMBoGA1UEAwwTZmVkYyBkZXZlbG9wbWVudCBDQTAeFw0yNjExMjIxMjExNTha\n"
                               "Fw0yOTAyMjQxMjExNThaMBMxETAPBgNVBAMMCGNsaWVudC0xMFkwEwYHKoZIzj0C\n"
                               "AQYIKoZIzj0DAQcDQgAERS094upsFhhwNo50ND3pxmpvYKEn3xYyp3bgE198b4Qd\n"
                               "AxTxUo+obChdowWBh2vVQGuCMgQwwRuISmh9hsRFK6NyMHAwCQYDVR0TBAIwADAO\n"
                               "BgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwIwHQYDVR0OBBYEFG7p\n"
                               "O0+/fRXDY1ud7FPYajASZ9eUMB8GA1UdIwQYMBaAFMdIlAmbptnuIxNWTMC17r7R\n"
                               "WrYyMAoGCCqGSM49BAMCA0gAMEUCIBE908EPOBA6C/b5/1+CxRjtbRAGQ+qqELMK\n"
                               "Q8SnwRG1AiEAkPFIXCm82ay8w2reKfgP+al2/+n3u+9MCdhNWogkI5s=\n"
                               "-----END CERTIFICATE-----\n";
static const char cert_fpr[] = "77cff184a641fb5f0a52d7c4dbf9cb8726c79aa2fcb0f4e061e7180dc8343dc6";

static void test_cert_fingerprint(void **state) {
  char path[] = "/tmp/fedc-test-cert-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  /* text before the certificate (as in a file with a comment) is skipped */
  const char pre[] = "subject=CN = client-1\n";
  assert_int_equal(write(fd, pre, sizeof pre - 1), (ssize_t)(sizeof pre - 1));
  assert_int_equal(write(fd, cert_pem, sizeof cert_pem - 1), (ssize_t)(sizeof cert_pem - 1));
  close(fd);
  char hex[FEDC_CLIENT_SHA_HEX + 1];
  assert_int_equal(fedc_client_cert_fingerprint(path, hex), 0);
  assert_string_equal(hex, cert_fpr);

  /* a key file or garbage is not a certificate */
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", f);
  fclose(f);
  assert_int_equal(fedc_client_cert_fingerprint(path, hex), FEDC_EFORMAT);
  assert_msg_has("no PEM certificate");
  unlink(path);
  assert_int_equal(fedc_client_cert_fingerprint(path, hex), FEDC_EIO);
  assert_msg_has(path);
}

/* ---- the embedding API ---------------------------------------------------------- */

static int no_train(void *ud, const fedc_client_round *r, float *w, fedc_client_metrics *out) {
  return 0;
}

/* Defaults from params_init; fedc_client_new refuses what cannot work and
 * names it, before anything is sent; a good set makes a client whose
 * fingerprint is its certificate's. */
static void test_client_params(void **state) {
  fedc_client_params p;
  memset(&p, 0x5a, sizeof p);
  fedc_client_params_init(&p);
  assert_true(p.poll_s == 20 && p.backoff_max_s == 30 && p.give_up_s == 600);
  assert_null(p.url);
  assert_null(p.trainer.train);
  fedc_client *c = (fedc_client *)&p;
  assert_int_equal(fedc_client_new(&p, &c), FEDC_ECONFIG);
  assert_null(c);
  assert_msg_has("train callback");

  char path[] = "/tmp/fedc-test-cert-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, cert_pem, sizeof cert_pem - 1), (ssize_t)(sizeof cert_pem - 1));
  close(fd);
  p.trainer.train = no_train;
  p.url = "https://127.0.0.1:1";
  p.ca = p.cert = p.key = path;
  p.ca = "/nonexistent/ca.pem";
  assert_int_equal(fedc_client_new(&p, &c), FEDC_ECONFIG);
  assert_msg_has("/nonexistent/ca.pem");
  p.ca = path;
  p.url = "http://127.0.0.1:1";
  assert_int_equal(fedc_client_new(&p, &c), FEDC_ECONFIG);
  assert_msg_has("https://");
  p.url = "https://127.0.0.1:1";
  assert_int_equal(fedc_client_new(&p, &c), 0);
  assert_string_equal(fedc_client_fingerprint(c), cert_fpr);
  fedc_client_free(c);
  unlink(path);
}

/* The layout a trainer sees: names, shapes and offsets of the flat vector,
 * as the model (and the coordinator) lays it out. */
static void test_layout(void **state) {
  fedc_client_job j = softmax_job(6, 3);
  snprintf(j.type, sizeof j.type, "mlp");
  j.n_hidden = 1;
  j.hidden[0] = 4;
  fedc_model_spec spec;
  assert_int_equal(fedc_client_job_spec(&j, &spec), 0);
  fedc_client_tensor t[FEDC_CLIENT_MAX_TENSORS];
  char names[FEDC_CLIENT_MAX_TENSORS][FEDC_CLIENT_NAME_MAX];
  assert_int_equal(fedc_client_layout(&spec, t, names), 4);
  assert_string_equal(t[0].name, "layers.0.weight");
  assert_true(t[0].ndim == 2 && t[0].shape[0] == 4 && t[0].shape[1] == 6 && t[0].offset == 0);
  assert_string_equal(t[1].name, "layers.0.bias");
  assert_true(t[1].ndim == 1 && t[1].shape[0] == 4 && t[1].offset == 24);
  assert_string_equal(t[3].name, "layers.1.bias");
  assert_true(t[3].offset + t[3].count == fedc_model_n_params(&spec));
  /* a job whose model cannot be a built-in layout */
  snprintf(j.type, sizeof j.type, "softmax");
  j.n_hidden = 0;
  j.classes = 1;
  assert_int_equal(fedc_client_job_spec(&j, &spec), FEDC_ERANGE);
  assert_msg_has("at least 2");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_backoff_bounded_and_growing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backoff_jittered, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backoff_reset, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_parse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_parse_malformed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_job_parse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ack_and_error_parse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_check_fit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_update_encoding, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cert_fingerprint, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_params, setup, teardown),
      cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
