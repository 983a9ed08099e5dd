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
 *
 * Federated evaluation (report): on [data] validation, or on the share
 * [data] validation_split of the training rows held out at each join
 * (drawn with the job's seed; those rows then do not train). Class weights
 * ([train] class_weight from the job; balanced from this site's own
 * training labels, or the federation's label counts when the job has
 * them) scale each row's loss gradient.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "base/alloc.h"
#include "base/error.h"
#include "client.h"
#include "config/settings.h"
#include "base/log.h"
#include "data/schema.h"
#include "ml/backend.h"
#include "ml/class_weight.h"
#include "ml/eval_model.h"

/* the stream tag of local training: "client" */
#define CLIENT_TAG 0x636c69656e74ULL
#define EVAL_BATCH 512
/* the stream tag of the validation split: "valid" */
#define VALID_TAG 0x76616c6964ULL

struct fedc_client_builtin {
  fedc_config cfg;
  fedc_dataset train, test;
  fedc_backend *be;
  fedc_data_view train_view, test_view;
  int views_open; /* 1: the train view is open, 2: the test view too */
  int64_t *rows;  /* the rows that train: all, or those not held out */
  int64_t n_rows;
  /* validation: [data] validation (val_file), or rows held out at prepare */
  fedc_dataset val;
  int val_file;
  fedc_data_view val_view;
  int val_open;
  /* from the last prepare */
  fedc_model_spec spec;
  fedc_trainer *trainer, *evaluator, *validator;
  float cw[FEDC_CLASS_WEIGHT_MAX];
  int32_t n_cw; /* 0: train unweighted */
  /* a job with a schema: the data is read by it at join (and standardized
   * with the federation's statistics once the job has them) */
  char *loaded_for;     /* schema + stats text the data was last read for */
  int load_failed;      /* the plain CSV read at start failed: only a schema can read it */
  char load_err[768];
};

static void model_free(fedc_client_builtin *b) {
  fedc_trainer_free(b->trainer);
  fedc_trainer_free(b->evaluator);
  fedc_trainer_free(b->validator);
  b->trainer = b->evaluator = b->validator = NULL;
}

static void val_close(fedc_client_builtin *b) {
  if (b->val_open) fedc_data_view_close(b->be, &b->val_view);
  b->val_open = 0;
}

void fedc_client_builtin_free(fedc_client_builtin *b) {
  if (b == NULL) return;
  model_free(b);
  val_close(b);
  fedc_dataset_free(&b->val);
  if (b->views_open > 0) fedc_data_view_close(b->be, &b->train_view);
  if (b->views_open > 1) fedc_data_view_close(b->be, &b->test_view);
  fedc_backend_close(b->be);
  fedc_dataset_free(&b->train);
  fedc_dataset_free(&b->test);
  fedc_free(b->rows);
  fedc_free(b->loaded_for);
  fedc_free(b);
}

/* ---- the callbacks ------------------------------------------------------------ */

static int32_t job_classes(const fedc_client_job *job) {
  int t = fedc_model_type_parse(job->type);
  return t == FEDC_MODEL_LOGREG ? 2 : t == FEDC_MODEL_LINREG ? 0 : job->classes;
}

/* Close the views, replace the data sets, open the views again. */
static int swap_data(fedc_client_builtin *b, fedc_dataset *train, fedc_dataset *test) {
  model_free(b);
  if (b->views_open > 0) fedc_data_view_close(b->be, &b->train_view);
  if (b->views_open > 1) fedc_data_view_close(b->be, &b->test_view);
  b->views_open = 0;
  fedc_dataset_free(&b->train);
  fedc_dataset_free(&b->test);
  b->train = *train;
  b->test = *test;
  memset(train, 0, sizeof *train);
  memset(test, 0, sizeof *test);
  int64_t *rows = fedc_realloc(b->rows, (size_t)(b->train.n + 1) * sizeof *rows);
  if (rows == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  b->rows = rows;
  for (int64_t i = 0; i < b->train.n; i++) rows[i] = i;
  int rc = fedc_data_view_open(b->be, b->train.x, b->train.y, b->train.n, b->train.d, &b->train_view);
  b->views_open = rc == 0;
  if (rc == 0 && b->test.n > 0) {
    rc = fedc_data_view_open(b->be, b->test.x, b->test.y, b->test.n, b->test.d, &b->test_view);
    b->views_open += rc == 0;
  }
  return rc;
}

/*
 * Read [data] train (and test) by the job's schema; with the federation's
 * statistics, standardize them with those (and warn when this site is far
 * from the federation). Done again only when the schema or the statistics
 * change.
 */
static int schema_load(fedc_client_builtin *b, const fedc_client_job *job) {
  const char *stats_text = job->stats_json ? job->stats_json : "";
  size_t need = strlen(job->schema_json) + strlen(stats_text) + 2;
  char *key = fedc_malloc(need);
  if (key == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  snprintf(key, need, "%s\n%s", job->schema_json, stats_text);
  if (b->loaded_for && strcmp(b->loaded_for, key) == 0) {
    fedc_free(key);
    return 0;
  }
  fedc_schema *s = fedc_malloc(sizeof *s);
  fedc_dataset tr = {0}, te = {0};
  fedc_stats fed = {0}, site = {0};
  double *mean = NULL;
  int rc = s ? fedc_schema_from_json(job->schema_json, s)
             : fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  if (rc == 0) {
    rc = fedc_load_csv_schema(b->cfg.train, s, 1, &tr);
    if (rc != 0) {
      char msg[768];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(rc, "[data] train: %s", msg);
    }
  }
  if (rc == 0 && fedc__config_data_given(&b->cfg, "test", FEDC_ROLE_CLIENT)) {
    rc = fedc_load_csv_schema(b->cfg.test, s, 1, &te);
    if (rc != 0) {
      char msg[768];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(rc, "[data] test: %s", msg);
    }
  }
  fedc_dataset va = {0};
  if (rc == 0 && b->cfg.validation[0] != '\0') {
    rc = fedc_load_csv_schema(b->cfg.validation, s, 1, &va);
    if (rc != 0) {
      char msg[768];
      snprintf(msg, sizeof msg, "%s", fedc_error_msg());
      rc = fedc_error_set(rc, "[data] validation: %s", msg);
    }
  }
  if (rc == 0 && job->stats_json) {
    rc = fedc_stats_from_json(job->stats_json, &fed);
    if (rc == 0 && fed.d != tr.d)
      rc = fedc_error_set(FEDC_ESHAPE, "the job's statistics have %d inputs, its schema %lld",
                          (int)fed.d, (long long)tr.d);
    if (rc == 0 && (mean = fedc_malloc_array((size_t)fed.d * 2, sizeof(double))) == NULL)
      rc = fedc_error_set(FEDC_ENOMEM, "client: out of memory");
    if (rc == 0 && fedc_stats_compute(&tr, job_classes(job), &site) == 0) {
      double z;
      int32_t j;
      fedc_stats_distance(&site, &fed, &z, &j);
      if (z > 3.0) {
        char name[FEDC_SCHEMA_NAME * 2];
        fedc_schema_input_name(s, j, name, sizeof name);
        fedc_log_warn("warning=far msg=\"this site's data is far from the federation's: input "
                      "'%s' has a mean %.1f federation standard deviations away\"",
                      name, z);
      }
    }
    if (rc == 0) {
      fedc_stats_moments(&fed, mean, mean + fed.d);
      rc = fedc_dataset_standardize_with(&tr, mean, mean + fed.d, fed.d);
      if (rc == 0 && te.n > 0) rc = fedc_dataset_standardize_with(&te, mean, mean + fed.d, fed.d);
      if (rc == 0 && va.n > 0) rc = fedc_dataset_standardize_with(&va, mean, mean + fed.d, fed.d);
    }
  }
  if (rc == 0) rc = swap_data(b, &tr, &te);
  if (rc == 0 && va.n > 0) { /* split_validation opens its view at prepare */
    val_close(b);
    fedc_dataset_free(&b->val);
    b->val = va;
    memset(&va, 0, sizeof va);
    b->val_file = 1;
  }
  if (rc == 0) {
    fedc_free(b->loaded_for);
    b->loaded_for = key;
    key = NULL;
    b->load_failed = 0;
  }
  fedc_free(key);
  fedc_free(s);
  fedc_free(mean);
  fedc_stats_free(&fed);
  fedc_stats_free(&site);
  fedc_dataset_free(&tr);
  fedc_dataset_free(&te);
  fedc_dataset_free(&va);
  return rc;
}

/*
 * This site's statistics of its raw training data: exact, or, when the
 * job's schema carries a noise multiplier, released under differential
 * privacy (stats_dp.c) with noise from a secret seed (getrandom: the
 * coordinator must not be able to regenerate it).
 */
static int stats_of_site(fedc_client_builtin *b, const fedc_client_job *job, fedc_stats *st) {
  fedc_schema *s = fedc_malloc(sizeof *s);
  int rc = s ? fedc_schema_from_json(job->schema_json, s)
             : fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  if (rc == 0 && s->noise_multiplier > 0) {
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
      rc = fedc_error_set(FEDC_EIO, "client: no random seed for the statistics' noise");
    fedc_rng rng;
    if (rc == 0) fedc_rng_seed(&rng, seed);
    if (rc == 0) rc = fedc_stats_compute_dp(&b->train, job_classes(job), s, 1.0, &rng, st);
    if (rc == 0)
      fedc_log_info("msg=\"statistics under differential privacy\" noise_multiplier=%g",
                    s->noise_multiplier);
  } else if (rc == 0) {
    rc = fedc_stats_compute(&b->train, job_classes(job), st);
  }
  fedc_free(s);
  return rc;
}

/* The statistics phase: this site's statistics of its raw training data. */
static int builtin_stats(void *ud, const fedc_client_job *job, char **json) {
  fedc_client_builtin *b = ud;
  *json = NULL;
  if (job->schema_json == NULL)
    return fedc_error_set(FEDC_ESTATE, "statistics asked for a job without a schema");
  int rc = schema_load(b, job);
  if (rc != 0) return rc;
  if (job->stats_json != NULL)
    return fedc_error_set(FEDC_ESTATE, "statistics asked for a job that already has them");
  fedc_stats st;
  rc = stats_of_site(b, job, &st);
  if (rc != 0) return rc;
  *json = fedc_stats_to_json(&st);
  fedc_stats_free(&st);
  return *json ? 0 : fedc_error_set(FEDC_ENOMEM, "client: out of memory");
}

/*
 * [data] validation_split: hold out that share of the training rows, drawn
 * with the job's seed, as this job's validation set (rows copied, so that
 * the set is one view on any backend); the rest train. With [data]
 * validation (a file) or no split, every row trains.
 */
static int split_validation(fedc_client_builtin *b, const fedc_client_job *job) {
  int64_t n = b->train.n;
  b->n_rows = n;
  for (int64_t i = 0; i < n; i++) b->rows[i] = i;
  if (b->val_file) {
    val_close(b);
    int rc = fedc_data_view_open(b->be, b->val.x, b->val.y, b->val.n, b->val.d, &b->val_view);
    b->val_open = rc == 0;
    return rc;
  }
  if (b->cfg.validation_split <= 0.0) return 0;
  int64_t k = (int64_t)llround(b->cfg.validation_split * (double)n);
  if (k < 1 || k >= n)
    return fedc_error_set(FEDC_EINVAL, "[data] validation_split = %g leaves %lld of %lld rows "
                          "for validation: too few to split",
                          b->cfg.validation_split, (long long)k, (long long)n);
  fedc_rng rng;
  fedc_rng_derive(&rng, job->seed, VALID_TAG, 0, 0);
  fedc_rng_shuffle_i64(&rng, b->rows, n);
  /* validation: the first k drawn, in row order; training: the rest */
  val_close(b);
  fedc_dataset_free(&b->val);
  size_t d = (size_t)b->train.d;
  b->val = (fedc_dataset){.n = k, .d = b->train.d, .n_classes = b->train.n_classes};
  b->val.x = fedc_malloc_aligned((size_t)k * d * sizeof(float));
  b->val.y = fedc_malloc_aligned((size_t)k * sizeof(float));
  if (b->val.x == NULL || b->val.y == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  for (int64_t i = 0; i < k; i++) {
    int64_t row = b->rows[i];
    memcpy(b->val.x + (size_t)i * d, b->train.x + (size_t)row * d, d * sizeof(float));
    b->val.y[i] = b->train.y[row];
  }
  memmove(b->rows, b->rows + k, (size_t)(n - k) * sizeof *b->rows);
  b->n_rows = n - k;
  int rc = fedc_data_view_open(b->be, b->val.x, b->val.y, b->val.n, b->val.d, &b->val_view);
  b->val_open = rc == 0;
  return rc;
}

/* The job's class weights against this site's training labels. */
static int class_weights(fedc_client_builtin *b, const fedc_client_job *job) {
  b->n_cw = 0;
  if (b->spec.type == FEDC_MODEL_LINREG) return 0;
  fedc_class_weight cw;
  int rc = fedc_class_weight_parse(job->class_weight, &cw);
  if (rc != 0) return rc;
  int32_t k = b->spec.type == FEDC_MODEL_LOGREG ? 2 : b->spec.n_out;
  if (k > FEDC_CLASS_WEIGHT_MAX)
    return cw.mode == FEDC_CLASS_WEIGHT_NONE && job->pos_weight == 1.0
               ? 0
               : fedc_error_set(FEDC_EINVAL, "class_weight: %d classes, at most %d", (int)k,
                                FEDC_CLASS_WEIGHT_MAX);
  /* balanced: from the federation's label counts when the job has them
   * (its statistics phase), else from this site's own training labels */
  int64_t counts[FEDC_CLASS_WEIGHT_MAX] = {0};
  fedc_stats fed = {0};
  if (job->stats_json != NULL && fedc_stats_from_json(job->stats_json, &fed) == 0 &&
      fed.n_classes == k) {
    for (int32_t c = 0; c < k; c++) counts[c] = fed.label_count[c];
  } else {
    for (int64_t i = 0; i < b->n_rows; i++) {
      int32_t y = (int32_t)b->train.y[b->rows[i]];
      if (y >= 0 && y < k) counts[y]++;
    }
  }
  fedc_stats_free(&fed);
  rc = fedc_class_weight_resolve(&cw, job->pos_weight, k, counts, b->cw);
  if (rc < 0) return rc;
  b->n_cw = rc == 0 ? k : 0;
  return 0;
}

/* The job against the local data, then a trainer for its spec. A batch
 * larger than the local data is all of it: same steps, and no buffers
 * sized for rows that do not exist. */
static int builtin_prepare(void *ud, const fedc_client_job *job, const fedc_client_tensor *tensors,
                           size_t n_tensors, size_t n_params) {
  fedc_client_builtin *b = ud;
  fedc_model_spec spec;
  int rc = job->schema_json ? schema_load(b, job)
           : b->load_failed ? fedc_error_set(FEDC_EFORMAT, "%s", b->load_err)
                            : 0;
  if (rc != 0) return rc;
  rc = fedc_client_check_fit(job, &b->train, &b->test, &spec);
  if (rc != 0) return rc;
  model_free(b);
  b->spec = spec;
  int32_t batch = job->train.batch_size;
  if (batch > b->train.n) batch = (int32_t)b->train.n;
  rc = split_validation(b, job);
  if (rc == 0 && batch > b->n_rows) batch = (int32_t)b->n_rows;
  if (rc == 0) rc = fedc_trainer_new(b->be, &b->spec, batch, &b->trainer);
  if (rc == 0 && b->test.n > 0) rc = fedc_trainer_new(b->be, &b->spec, EVAL_BATCH, &b->evaluator);
  if (rc == 0 && b->val.n > 0) rc = fedc_trainer_new(b->be, &b->spec, EVAL_BATCH, &b->validator);
  if (rc == 0) rc = class_weights(b, job);
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
  if (p.batch_size > b->n_rows) p.batch_size = (int32_t)b->n_rows;
  if (b->n_cw > 0) p.class_weight = b->cw, p.n_class_weight = b->n_cw;
  fedc_rng rng;
  fedc_rng_derive(&rng, r->job->seed, CLIENT_TAG, (uint64_t)r->round, fp64_of(r->fingerprint));
  fedc_train_stats st = {0};
  int rc = fedc_train_local(b->trainer, &p, &b->train_view, b->rows, b->n_rows, &rng, w, &st);
  if (rc != 0) return rc;
  out->samples = b->n_rows;
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

/* Federated evaluation: the report of w on the validation set. */
static int builtin_report(void *ud, const fedc_client_round *r, const float *w, char **json) {
  fedc_client_builtin *b = ud;
  *json = NULL;
  if (b->validator == NULL)
    return fedc_error_set(FEDC_ESTATE, "built-in trainer: no validation data");
  fedc_eval_report *rep = fedc_malloc(sizeof *rep);
  if (rep == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  int rc = fedc_eval_report_init_for(rep, &b->spec, r->job->eval_threshold);
  if (rc == 0)
    rc = fedc_evaluate_report(b->validator, w, &b->val_view, b->val.y, 0, b->val.n, rep);
  if (rc == 0) rc = fedc_eval_report_to_json(rep, json);
  fedc_free(rep);
  return rc;
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
  if (rc != 0 && cfg->format == FEDC_FORMAT_CSV && rc != FEDC_EIO && rc != FEDC_ENOMEM) {
    /* a table only a job's schema can read (text categories, an id, missing
     * values): read it at join; a job without a schema gets this error */
    snprintf(b->load_err, sizeof b->load_err, "%s", fedc_error_msg());
    b->load_failed = 1;
    return 0;
  }
  if (rc == 0 && fedc__config_data_given(cfg, "test", FEDC_ROLE_CLIENT))
    rc = load_set(cfg, cfg->test, cfg->test_labels, "test", &b->test);
  if (rc == 0 && b->test.n > 0 && b->test.d != b->train.d)
    rc = fedc_error_set(FEDC_EFORMAT, "[data] train has %lld features but test has %lld",
                        (long long)b->train.d, (long long)b->test.d);
  if (rc == 0 && cfg->validation[0] != '\0') {
    rc = load_set(cfg, cfg->validation, cfg->validation_labels, "validation", &b->val);
    if (rc == 0 && b->val.d != b->train.d)
      rc = fedc_error_set(FEDC_EFORMAT, "[data] train has %lld features but validation has %lld",
                          (long long)b->train.d, (long long)b->val.d);
    b->val_file = rc == 0;
    /* the validation set takes the training set's transform: standardize
     * it against an untouched copy of the training rows first */
    if (rc == 0 && cfg->standardize) {
      fedc_dataset copy = {.n = b->train.n, .d = b->train.d};
      size_t nx = (size_t)b->train.n * (size_t)b->train.d;
      copy.x = fedc_malloc_aligned(nx * sizeof(float));
      copy.y = fedc_malloc_aligned((size_t)b->train.n * sizeof(float));
      rc = copy.x && copy.y ? 0 : fedc_error_set(FEDC_ENOMEM, "client: out of memory");
      if (rc == 0) {
        memcpy(copy.x, b->train.x, nx * sizeof(float));
        memcpy(copy.y, b->train.y, (size_t)b->train.n * sizeof(float));
        rc = fedc_dataset_standardize(&copy, &b->val);
      }
      fedc_dataset_free(&copy);
    }
  }
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
  if (rc == 0 && (b->rows = fedc_malloc_array((size_t)b->train.n + 1, sizeof *b->rows)) == NULL)
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
  trainer->stats = builtin_stats;
  trainer->train = builtin_train;
  trainer->evaluate = b->test.n > 0 ? builtin_evaluate : NULL;
  trainer->report = cfg->validation[0] != '\0' || cfg->validation_split > 0 ? builtin_report : NULL;
  trainer->user_data = b;
  trainer->samples = b->train.n;
  trainer->features = b->train.d;
  trainer->test_samples = b->test.n;
  *out = b;
  return 0;
}
