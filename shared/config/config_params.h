/*
 * config_params.h - a checked config turned into the parameter structs of
 * the library's layers: the model's spec and the round pipeline's
 * parameters. Only the programs and their drivers use it; the layers below
 * never see a fedc_config.
 */
#ifndef FEDC_CONFIG_PARAMS_H
#define FEDC_CONFIG_PARAMS_H

#include <stdint.h>

#include "config/config.h"
#include "ml/model.h"
#include "round/pipeline.h"

/* Fill spec from a config and the data's shape (n_in features, n_classes).
 * FEDC_EINVAL when they do not fit (logreg on more than 2 classes, softmax
 * on a regression target, ...), naming the problem. */
int fedc_model_spec_from_config(const fedc_config *c, int32_t n_in,
                                int32_t n_classes, fedc_model_spec *spec);

/* The pipeline a config asks for, for a population of clients. */
void fedc_pipeline_params_from_config(const fedc_config *c, int32_t population,
                                      fedc_pipeline_params *p);

#endif
