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

#endif
