/*
 * trainer_builtin.c - fedc-client's trainer (client.h): local training of
 * the job's built-in model on [data] with shared/ml/train.c, behind the
 * trainer interface of <fedc/client.h> like any program's trainer.
 *
 * Made from a config: it loads [data] train (and test), standardizes them
 * when asked, opens the compute backend and a data view on each set. On
 * each join (prepare) it checks that the job's model fits the data and
 * makes a trainer (and an evaluator when there is a test set) for its
 * spec. A round (train) runs minibatch SGD over every local row with the
 * job's hyper-parameters; the minibatches are shuffled by a stream derived
 * from (job seed, "client", round, the fingerprint's first 64 bits), so the
 * same job, data and certificate give the same update, bit for bit.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "client.h"
#include "config/settings.h"
#include "ml/backend.h"

/* the stream tag of local training: "client" */
#define CLIENT_TAG 0x636c69656e74ULL
#define EVAL_BATCH 512

struct fedc_client_builtin {
  fedc_config cfg;
  fedc_dataset train, test;
  fedc_backend *be;
  fedc_data_view train_view, test_view;
  int views_open; /* 1: the train view is open, 2: the test view too */
  int64_t *rows;  /* 0..train.n-1: every local row trains */
  /* from the last prepare */
  fedc_model_spec spec;
  fedc_trainer *trainer, *evaluator;
};

static void model_free(fedc_client_builtin *b) {
  fedc_trainer_free(b->trainer);
  fedc_trainer_free(b->evaluator);
  b->trainer = b->evaluator = NULL;
}

void fedc_client_builtin_free(fedc_client_builtin *b) {
  if (b == NULL) return;
  model_free(b);
  if (b->views_open > 0) fedc_data_view_close(b->be, &b->train_view);
  if (b->views_open > 1) fedc_data_view_close(b->be, &b->test_view);
  fedc_backend_close(b->be);
  fedc_dataset_free(&b->train);
  fedc_dataset_free(&b->test);
  fedc_free(b->rows);
  fedc_free(b);
}

/* ---- the callbacks ------------------------------------------------------------ */

/* The job against the local data, then a trainer for its spec. A batch
 * larger than the local data is all of it: same steps, and no buffers
 * sized for rows that do not exist. */
static int builtin_prepare(void *ud, const fedc_client_job *job, const fedc_client_tensor *tensors,
                           size_t n_tensors, size_t n_params) {
  fedc_client_builtin *b = ud;
  fedc_model_spec spec;
  int rc = fedc_client_check_fit(job, &b->train, &b->test, &spec);
  if (rc != 0) return rc;
  model_free(b);
  b->spec = spec;
  int32_t batch = job->train.batch_size;
  if (batch > b->train.n) batch = (int32_t)b->train.n;
  rc = fedc_trainer_new(b->be, &b->spec, batch, &b->trainer);
  if (rc == 0 && b->test.n > 0) rc = fedc_trainer_new(b->be, &b->spec, EVAL_BATCH, &b->evaluator);
  return rc;
}

static uint64_t fp64_of(const char *hex) {
  uint64_t v = 0;
  for (int i = 0; i < 16 && hex[i]; i++) {
    char ch = hex[i];
    v = (v << 4) | (uint64_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
  }
  return v;
}

static int builtin_train(void *ud, const fedc_client_round *r, float *w,
                         fedc_client_metrics *out) {
  fedc_client_builtin *b = ud;
  if (b->trainer == NULL) return fedc_error_set(FEDC_ESTATE, "built-in trainer: not prepared");
  fedc_train_params p;
  fedc_client_train_params(r->job, &p);
  p.correction = r->correction; /* SCAFFOLD's c - c_i, or NULL */
  if (p.batch_size > b->train.n) p.batch_size = (int32_t)b->train.n;
  fedc_rng rng;
  fedc_rng_derive(&rng, r->job->seed, CLIENT_TAG, (uint64_t)r->round, fp64_of(r->fingerprint));
  fedc_train_stats st = {0};
  int rc = fedc_train_local(b->trainer, &p, &b->train_view, b->rows, b->train.n, &rng, w, &st);
  if (rc != 0) return rc;
  out->samples = b->train.n;
  out->loss = st.seen ? st.loss_sum / (double)st.seen : 0.0;
  out->accuracy = NAN;
  out->steps = st.steps;
  return 0;
}

static int builtin_evaluate(void *ud, const fedc_client_round *r, const float *w,
                            fedc_client_metrics *out) {
  fedc_client_builtin *b = ud;
  if (b->evaluator == NULL) return fedc_error_set(FEDC_ESTATE, "built-in trainer: not prepared");
  fedc_eval_sums s = {0};
  int rc = fedc_evaluate(b->evaluator, w, &b->test_view, 0, b->test.n, &s, NULL);
  if (rc != 0) return rc;
  out->samples = s.n;
  out->loss = s.n ? s.loss_sum / (double)s.n : NAN;
  out->accuracy = b->spec.type == FEDC_MODEL_LINREG ? NAN
                  : s.n                             ? (double)s.correct / (double)s.n
                                                    : NAN;
  return 0;
}

/* ---- making it ------------------------------------------------------------------ */

static int load_set(const fedc_config *cfg, const char *x, const char *y, const char *key,
                    fedc_dataset *out) {
  int rc =
      cfg->format == FEDC_FORMAT_IDX ? fedc_load_idx(x, y, out) : fedc_load_csv(x, cfg->label, out);
  if (rc != 0) {
    char msg[768];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return fedc_error_set(rc, "[data] %s: %s", key, msg);
  }
  return 0;
}

/* [data] train, and test when set; standardized on train's statistics when
 * [data] standardize is on. */
static int load_data(fedc_client_builtin *b) {
  const fedc_config *cfg = &b->cfg;
  int rc = load_set(cfg, cfg->train, cfg->train_labels, "train", &b->train);
  if (rc == 0 && cfg->test[0] != '\0')
    rc = load_set(cfg, cfg->test, cfg->test_labels, "test", &b->test);
  if (rc == 0 && b->test.n > 0 && b->test.d != b->train.d)
    rc = fedc_error_set(FEDC_EFORMAT, "[data] train has %lld features but test has %lld",
                        (long long)b->train.d, (long long)b->test.d);
  if (rc == 0 && cfg->standardize)
    rc = fedc_dataset_standardize(&b->train, b->test.n > 0 ? &b->test : NULL);
  return rc;
}

int fedc_client_builtin_new(const fedc_settings *s, fedc_client_builtin **out,
                            fedc_client_trainer *trainer) {
  if (s == NULL || out == NULL || trainer == NULL)
    return fedc_error_set(FEDC_EINVAL, "fedc_client_builtin_new: NULL argument");
  const fedc_config *cfg = fedc__settings_config(s);
  if (cfg->train[0] == '\0')
    return fedc_error_set(FEDC_ECONFIG, "%s: [data] train is not set: the built-in trainer "
                          "trains on it", fedc_config_origin(cfg, "data", "train"));
  return fedc__client_builtin_new_config(cfg, out, trainer);
}

int fedc__client_builtin_new_config(const fedc_config *cfg, fedc_client_builtin **out,
                                    fedc_client_trainer *trainer) {
  *out = NULL;
  memset(trainer, 0, sizeof *trainer);
  fedc_client_builtin *b = fedc_calloc(1, sizeof *b);
  if (b == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  b->cfg = *cfg;
  int rc = load_data(b);
  if (rc == 0 && (b->rows = fedc_malloc_array((size_t)b->train.n, sizeof *b->rows)) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  for (int64_t i = 0; rc == 0 && i < b->train.n; i++)
    b->rows[i] = i;
  if (rc == 0) rc = fedc_backend_open(cfg->device, &b->be);
  /* [train] threads bounds the BLAS threads of local training: an edge
   * machine usually has other work to do than this client */
  if (rc == 0 && cfg->device == FEDC_DEVICE_CPU) fedc_backend_cpu_set_blas_threads(cfg->threads);
  if (rc == 0) {
    rc = fedc_data_view_open(b->be, b->train.x, b->train.y, b->train.n, b->train.d, &b->train_view);
    b->views_open = rc == 0;
    if (rc == 0 && b->test.n > 0) {
      rc = fedc_data_view_open(b->be, b->test.x, b->test.y, b->test.n, b->test.d, &b->test_view);
      b->views_open += rc == 0;
    }
  }
  if (rc != 0) {
    fedc_client_builtin_free(b);
    return rc;
  }
  trainer->prepare = builtin_prepare;
  trainer->train = builtin_train;
  trainer->evaluate = b->test.n > 0 ? builtin_evaluate : NULL;
  trainer->user_data = b;
  trainer->samples = b->train.n;
  trainer->features = b->train.d;
  trainer->test_samples = b->test.n;
  *out = b;
  return 0;
}
