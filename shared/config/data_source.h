/*
 * data_source.h - the data sets named by a config's [data] section.
 */
#ifndef FEDC_DATA_SOURCE_H
#define FEDC_DATA_SOURCE_H

#include "config/config.h"
#include "data/data.h"

/* Load [data] train and test (idx or csv), standardize when asked. On error
 * both are left empty and the message starts with "[data] <key>: ". */
int fedc_data_load(const fedc_config *c, fedc_dataset *train,
                   fedc_dataset *test);

/* With a schema, what the model's metadata needs (model_describe.h): the
 * schema and the federation's means and standard deviations (owned). */
typedef struct fedc_data_prep {
  struct fedc_schema *schema; /* NULL without a schema */
  double *mean, *std;         /* schema->d each */
} fedc_data_prep;

/* fedc_data_load, and with a schema its preparation into *prep (zeroed
 * without one; free with fedc_data_prep_free). prep may be NULL. */
int fedc_data_load_prep(const fedc_config *c, fedc_dataset *train, fedc_dataset *test,
                        fedc_data_prep *prep);
void fedc_data_prep_free(fedc_data_prep *p);

#endif
