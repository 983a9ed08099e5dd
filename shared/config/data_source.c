/*
 * data_source.c - load the train and test sets that a config's [data]
 * section names, with the checks that span both files (same feature count,
 * standardization fitted on train only).
 *
 * With a schema ([data] features or schema_from) both files are read by it,
 * as a site reads its data, and standardized with the federation's
 * statistics: those of every training row, which are exactly the sum of the
 * clients' statistics however the rows are partitioned (fixed-point sums),
 * so a simulation computes what a deployment of the same job computes.
 * Under differential privacy the pooled statistics get the noise of the
 * config's [sim] clients sites at once (stats_dp.c).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "data/data.h"
#include "config/data_source.h"
#include "base/alloc.h"
#include "base/error.h"
#include "data/schema.h"

static int load_one(const fedc_config *c, const char *x, const char *y,
                    const char *key, fedc_dataset *out) {
  int rc = c->format == FEDC_FORMAT_IDX ? fedc_load_idx(x, y, out)
                                        : fedc_load_csv(x, c->label, out);
  if (rc != 0) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    return fedc_error_set(rc, "[data] %s: %s", key, msg);
  }
  return 0;
}

/* Both sets by the config's schema, standardized with the federation's
 * statistics. */
static int load_schema(const fedc_config *c, fedc_dataset *train, fedc_dataset *test,
                       fedc_data_prep *prep) {
  if (c->standardize)
    return fedc_error_set(FEDC_ECONFIG, "%s: [data] standardize = true with a schema: the "
                          "schema already standardizes with the federation's statistics; "
                          "leave standardize off", fedc_config_origin(c, "data", "standardize"));
  fedc_schema *s = fedc_malloc(sizeof *s);
  if (s == NULL) return fedc_error_set(FEDC_ENOMEM, "out of memory");
  int rc = fedc_schema_make(c->features, c->schema_from, c->label, c->exclude, c->categorical,
                            (fedc_missing)c->missing, s);
  if (rc == 0 && c->data_clip[0]) rc = fedc_schema_set_clip(s, c->data_clip);
  if (rc == 0 && c->class_labels[0]) rc = fedc_schema_set_class_labels(s, c->class_labels);
  const char *key = "train";
  if (rc == 0) rc = fedc_load_csv_schema(c->train, s, 1, train);
  if (rc == 0) {
    key = "test";
    rc = fedc_load_csv_schema(c->test, s, 1, test);
  }
  if (rc != 0 && rc != FEDC_ECONFIG) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    rc = fedc_error_set(rc, "[data] %s: %s", key, msg);
  }
  if (rc == 0 && c->dp_noise_multiplier > 0) {
    s->noise_multiplier = c->dp_noise_multiplier;
    rc = fedc_schema_require_clip(s);
  }
  fedc_stats st = {0};
  double *m = NULL;
  if (rc == 0 && s->noise_multiplier > 0) {
    /* under DP: the pooled statistics with noise sqrt(K) times a site's,
     * the distribution of the sum of K sites' independent noise */
    fedc_rng rng;
    fedc_rng_derive(&rng, c->seed, 0x73746174 /* "stat" */, 0, 0);
    rc = fedc_stats_compute_dp(train, train->n_classes, s, sqrt((double)c->clients), &rng, &st);
  } else if (rc == 0) {
    rc = fedc_stats_compute(train, 0, &st);
  }
  if (rc == 0 && (m = fedc_malloc_array((size_t)st.d * 2, sizeof *m)) == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "out of memory");
  if (rc == 0) {
    fedc_stats_moments(&st, m, m + st.d);
    rc = fedc_dataset_standardize_with(train, m, m + st.d, st.d);
    if (rc == 0) rc = fedc_dataset_standardize_with(test, m, m + st.d, st.d);
  }
  if (rc == 0 && prep) { /* the caller keeps the schema and the moments */
    prep->schema = s;
    prep->mean = m;
    prep->std = m + st.d;
    s = NULL;
    m = NULL;
  }
  fedc_free(m);
  fedc_stats_free(&st);
  fedc_free(s);
  return rc;
}

void fedc_data_prep_free(fedc_data_prep *p) {
  if (p == NULL) return;
  fedc_free(p->schema);
  fedc_free(p->mean); /* std lives in the same block */
  memset(p, 0, sizeof *p);
}

int fedc_data_load(const fedc_config *c, fedc_dataset *train,
                   fedc_dataset *test) {
  return fedc_data_load_prep(c, train, test, NULL);
}

int fedc_data_load_prep(const fedc_config *c, fedc_dataset *train, fedc_dataset *test,
                        fedc_data_prep *prep) {
  if (prep) memset(prep, 0, sizeof *prep);
  memset(train, 0, sizeof *train);
  memset(test, 0, sizeof *test);
  if (c->features[0] != '\0' || c->schema_from[0] != '\0') {
    int rc = load_schema(c, train, test, prep);
    if (rc == 0 && test->n_classes > train->n_classes && train->n_classes > 0)
      rc = fedc_error_set(FEDC_EFORMAT, "[data] test has label %d, unseen in train (%d classes)",
                          (int)test->n_classes - 1, (int)train->n_classes);
    if (rc != 0) {
      fedc_dataset_free(train);
      fedc_dataset_free(test);
      fedc_data_prep_free(prep);
    }
    return rc;
  }
  int rc = load_one(c, c->train, c->train_labels, "train", train);
  if (rc == 0) rc = load_one(c, c->test, c->test_labels, "test", test);
  if (rc == 0 && train->d != test->d)
    rc = fedc_error_set(FEDC_EFORMAT,
                        "[data] train has %lld features but test has %lld",
                        (long long)train->d, (long long)test->d);
  if (rc == 0 && c->standardize) rc = fedc_dataset_standardize(train, test);
  if (rc == 0 && test->n_classes > train->n_classes && train->n_classes > 0)
    rc = fedc_error_set(FEDC_EFORMAT,
                        "[data] test has label %d, unseen in train (%d classes)",
                        (int)test->n_classes - 1, (int)train->n_classes);
  if (rc != 0) {
    fedc_dataset_free(train);
    fedc_dataset_free(test);
  }
  return rc;
}
