/*
 * data_source.c - load the train and test sets that a config's [data]
 * section names, with the checks that span both files (same feature count,
 * standardization fitted on train only).
 */
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "data/data.h"
#include "config/data_source.h"
#include "base/error.h"

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

int fedc_data_load(const fedc_config *c, fedc_dataset *train,
                   fedc_dataset *test) {
  memset(train, 0, sizeof *train);
  memset(test, 0, sizeof *test);
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
