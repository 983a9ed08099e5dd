/*
 * large_model.c - large-model mode ([server] spill_above_mb; docs/tensor-
 * jobs.md "Large models"). A job whose model has more float values than
 * the threshold keeps FedAvg's 128-bit sums and the share cap's held
 * updates in files beside the store (<store>.acc, <store>.acc.held: the
 * page cache holds them, not the coordinator), so the coordinator's memory
 * is the global model, the model served and what a commit encodes. Only
 * what can run that way is let through; anything that would hold more
 * model-sized buffers is refused at start, naming its key: robust and
 * custom strategies (every update kept), the server optimizers with
 * moments (fedavgm, fedadam, fedyogi, fedadagrad) and FedBuff (past
 * models), SCAFFOLD (variates), differential privacy and secure
 * aggregation (clipped or masked copies), the norm bound and
 * max_weight_delta (a conditioned copy of each update), a relay (its
 * partial sum is in memory), and [strategy] device = cuda (sums on the GPU).
 */
#include <stdio.h>
#include <string.h>

#include "agg/agg.h"
#include "base/error.h"
#include "base/log.h"
#include "coord_internal.h"
#include "wire/safetensors.h"

/* The first thing that large-model mode cannot run, as a message naming
 * its key; NULL when there is none. */
static const char *refusal(const fedc_coord *c, const fedc_pipeline_params *pp) {
  const fedc_strategy_info *info = fedc_strategy_lookup(c->cfg.strategy);
  const uint32_t caps = info ? info->caps : 0;
  const fedc_opt_kind opt = fedc__strategy_opt_kind(info);
  if (!(caps & FEDC_STRATEGY_ADDITIVE))
    return "[strategy] name: only the fedavg family sums updates as they come; this strategy "
           "keeps every update";
  if (caps & FEDC_STRATEGY_ASYNC) return "[strategy] name = fedbuff keeps past models";
  if (caps & FEDC_STRATEGY_VARIATES) return "[strategy] name = scaffold keeps control variates";
  if (opt != FEDC_OPT_NONE && opt != FEDC_OPT_AVG)
    return "[strategy] name: the server optimizer keeps model-sized moments (use fedavg)";
  if (pp->dp_on) return "[privacy] noise_multiplier: differential privacy clips a copy of "
                        "each update";
  if (c->cfg.secagg) return "[privacy] secure_aggregation: the masked sum is held in memory";
  if (pp->norm_bound > 0.0) return "[strategy] norm_bound: the bound conditions a copy of "
                                   "each update";
  if (pp->max_delta > 0.0) return "[strategy] max_weight_delta: the check conditions a copy "
                                  "of each update";
  if (c->cfg.relay_parent[0]) return "[relay] parent: a relay's partial sum is in memory";
  if (pp->agg.device == FEDC_AGG_DEVICE_CUDA)
    return "[strategy] device = cuda: the sums live on the GPU";
  return NULL;
}

int fedc__coord_large_mode(fedc_coord *c, fedc_pipeline_params *pp) {
  const double mb = (double)c->n_params * sizeof(float) / (1024.0 * 1024.0);
  const double above = c->cfg.server_spill_above_mb;
  if (above <= 0.0 || mb <= above) return 0;
  const char *why = refusal(c, pp);
  if (why)
    return fedc_error_set(FEDC_ECONFIG,
                          "the model is %.0f MiB, over [server] spill_above_mb = %g: large-model "
                          "mode runs plain FedAvg only, and %s; raise [server] spill_above_mb "
                          "(memory: about 8 times the model) or change that key",
                          mb, above, why);
  snprintf(c->spill_path, sizeof c->spill_path, "%s.acc", c->cfg.store_path);
  pp->agg.spill_path = c->spill_path;
  pp->agg.device = FEDC_AGG_DEVICE_CPU; /* auto: the sums are the file's */
  fedc_log_info("msg=\"large-model mode\" model_mib=%.0f spill_above_mb=%g sums=%s", mb, above,
                c->spill_path);
  return 0;
}

/*
 * An update of a large-model job read in place: decoded with its tensors'
 * views pointing into the body (the mapped spool of a chunked upload, or
 * the buffered body), its float values one array there when the job is all
 * F32 (fedc_layout_view), so no float copy of the model is made; the fold
 * drops each slice's pages as it goes (base/mapped.h). 1 with *w and *file
 * set when that worked; 0 otherwise, for the copying path (which then
 * finds any error itself).
 */
int fedc__coord_update_view(const fedc_coord *c, const uint8_t *body, size_t len,
                            const float **w, fedc_st_file **file) {
  *w = NULL;
  *file = NULL;
  if (c->spill_path[0] == '\0' || fedc__coord_scaffold_on(c)) return 0;
  fedc_st_file *f = NULL;
  if (fedc_st_decode_ex(body, len, FEDC_ST_ALLOW_ANY | FEDC_ST_BORROW, &f) != 0) return 0;
  if (fedc_layout_view(&c->layout, f, w) != 0) {
    fedc_st_free(f);
    *w = NULL;
    return 0;
  }
  *file = f;
  return 1;
}
