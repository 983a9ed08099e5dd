/*
 * config_params.c - from [model] and the [strategy]/[privacy] sections to
 * the model spec and the pipeline parameters (config_params.h).
 */
#include "config/config_params.h"

#include <math.h>
#include <string.h>

#include "agg/agg.h"
#include "base/error.h"

int fedc_model_spec_from_config(const fedc_config *c, int32_t n_in,
                                int32_t n_classes, fedc_model_spec *spec) {
  memset(spec, 0, sizeof *spec);
  spec->type = c->model_type;
  spec->n_in = n_in;
  spec->l1 = (float)c->l1;
  spec->l2 = (float)c->l2;
  if (n_in < 1) return fedc_error_set(FEDC_EINVAL, "model: data has no features");
  switch (c->model_type) {
  case FEDC_MODEL_SOFTMAX:
  case FEDC_MODEL_MLP:
    if (n_classes < 2)
      return fedc_error_set(FEDC_EINVAL,
                            "[model] type = %s needs class labels 0..K-1 with "
                            "K >= 2; the data's labels are not classes",
                            fedc_model_type_name(c->model_type));
    spec->n_out = n_classes;
    break;
  case FEDC_MODEL_LOGREG:
    if (n_classes < 1 || n_classes > 2)
      return fedc_error_set(FEDC_EINVAL,
                            "[model] type = logreg needs labels 0 and 1; the "
                            "data has %d classes", (int)n_classes);
    spec->n_out = 1;
    break;
  case FEDC_MODEL_LINREG:
    spec->n_out = 1;
    break;
  case FEDC_MODEL_TENSORS:
    return fedc_model_spec_check(spec); /* refuses it, saying why */
  }
  if (c->model_type == FEDC_MODEL_MLP) {
    spec->n_hidden = c->n_hidden;
    memcpy(spec->hidden, c->hidden, sizeof spec->hidden);
  }
  return 0;
}

void fedc_pipeline_params_from_config(const fedc_config *c, int32_t population,
                                      fedc_pipeline_params *p) {
  memset(p, 0, sizeof *p);
  int32_t select = c->clients_per_round;
  double over = c->server_over_select > 1.0 ? c->server_over_select : 1.0;
  p->agg = (fedc_agg_params){.name = c->strategy,
                             .trim_beta = c->trim_beta,
                             .krum_f = c->krum_f,
                             .multikrum_m = c->multikrum_m,
                             .max_updates = (int32_t)ceil(select * over),
                             .device = c->agg_device};
  p->opt = (fedc_server_opt_params){.name = c->strategy,
                                    .lr = c->server_lr,
                                    .momentum = c->server_momentum,
                                    .beta1 = c->beta1,
                                    .beta2 = c->beta2,
                                    .tau = c->tau};
  /* server_lr applies only to a strategy with a server step (the server
   * optimizers and fedbuff, says the registry); the others take the
   * aggregate as it is */
  if (fedc__strategy_opt_kind(fedc_strategy_lookup(c->strategy)) == FEDC_OPT_NONE)
    p->opt.lr = 1.0;
  p->buffer_k = c->buffer_k;
  p->norm_bound = c->norm_bound;
  p->norm_refuse = c->norm_action == FEDC_NORM_REFUSE;
  p->max_samples = c->server_max_samples;
  p->max_share = c->max_client_share;
  p->max_delta = c->max_weight_delta;
  p->variate_total = c->variate_samples;
  p->dp_on = c->dp_noise_multiplier > 0.0;
  p->dp = (fedc_dp_params){.noise_multiplier = c->dp_noise_multiplier,
                           .clip_norm = c->dp_clip_norm,
                           .adaptive = c->dp_adaptive_clip,
                           .clip_quantile = c->dp_clip_quantile,
                           .clip_lr = c->dp_clip_lr,
                           .delta = c->dp_delta,
                           .epsilon_budget = c->dp_epsilon_budget,
                           /* the simulator's noise may repeat with the job
                            * seed; the coordinator replaces it with a secret
                            * one (clients know the job seed) */
                           .seed = c->seed,
                           .clients_per_round = select,
                           .noise_at_sites = c->dp_noise_at == FEDC_NOISE_AT_SITES};
  p->population = population;
  p->per_round = select;
}
