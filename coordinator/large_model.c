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
 * aggregation (clipped or masked copies), the norm bound (a clipped copy
 * of each update; max_weight_delta is checked in slices), a relay (its
 * partial sum is in memory), and [strategy] device = cuda (sums on the GPU).
 */
#include <stdio.h>
#include <string.h>

#include "agg/agg.h"
#include "base/alloc.h"
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
  fedc__coord_large_delta_reset(c); /* a past run's delta: not served */
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
 * F32 (fedc__layout_view), so no float copy of the model is made; the fold
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
  if (fedc__layout_view(&c->layout, f, w) != 0) {
    fedc_st_free(f);
    *w = NULL;
    return 0;
  }
  *file = f;
  return 1;
}

/* The float values of a container the coordinator made (all F32, in the
 * layout's order) where they lie in bytes; NULL when the job's model is
 * not laid out so (then the copying paths run). */
static float *values_in_place(const fedc_coord *c, uint8_t *bytes, size_t len) {
  fedc_st_file *f = NULL;
  const float *v = NULL;
  if (fedc_st_decode_ex(bytes, len, FEDC_ST_ALLOW_ANY | FEDC_ST_BORROW, &f) != 0) return NULL;
  if (fedc__layout_view(&c->layout, f, &v) != 0) v = NULL;
  fedc_st_free(f);
  return (float *)(uintptr_t)v; /* bytes are the caller's, writable */
}

/* The engine's global model becomes the served body's values (one copy of
 * the model instead of two); c->global_body keeps the body alive as long
 * as the engine reads it. */
void fedc__coord_large_adopt(fedc_coord *c, fedc_http_body *body) {
  if (c->spill_path[0] == '\0' || fedc__coord_scaffold_on(c) || body == NULL) return;
  float *v = values_in_place(c, (uint8_t *)(uintptr_t)fedc_http_body_data(body),
                             fedc_http_body_len(body));
  if (v == NULL) return;
  fedc__engine_adopt_global(c->engine, v);
  fedc_http_body_unref(c->global_body);
  c->global_body = fedc_http_body_ref(body);
}

/*
 * A large model's commit (under mu, on the commit worker): the round's
 * container is encoded first, from the global model, and the engine then
 * writes the next model straight into its values (fedc__engine_close_
 * prepare_into), after which the digest in its header is made again; the
 * model's bytes and the engine's next model are one buffer, so a commit
 * holds the global model, the one being made, and what the served body
 * adds (nothing once adopted). 0 when it did not apply (the caller runs
 * the usual prepare and encode); 1 with *rc the prepare's or the encode's
 * result, and on success *bytes, *len and sha the container's, *next the
 * next model (in *bytes).
 */
int fedc__coord_large_commit(fedc_coord *c, fedc_round_metrics *m, const float **next,
                             uint8_t **bytes, size_t *len, char sha[65], int *rc) {
  *bytes = NULL;
  *len = 0;
  if (c->spill_path[0] == '\0' || fedc__coord_scaffold_on(c) || c->global_body == NULL) return 0;
  uint8_t *b = NULL;
  size_t n = 0;
  int r = fedc__coord_encode_model(c, fedc_engine_global(c->engine), fedc__coord_tensors_prepare(c),
                                   fedc_engine_round(c->engine), &b, &n, sha);
  float *v = r == 0 ? values_in_place(c, b, n) : NULL;
  if (v == NULL) {
    fedc_free(b);
    return 0; /* the usual path finds any error itself */
  }
  r = fedc__engine_close_prepare_into(c->engine, v, m);
  int prepared = r == 0;
  if (r == 0) r = fedc__st_rehash(b, n);
  fedc_st_file *f = NULL;
  if (r == 0) r = fedc_st_decode_ex(b, n, FEDC_ST_ALLOW_ANY | FEDC_ST_BORROW, &f);
  if (r == 0) snprintf(sha, 65, "%s", fedc_st_meta_get(f, "sha256"));
  fedc_st_free(f);
  if (r != 0) {
    if (prepared) fedc_engine_close_abort(c->engine); /* cannot fail after a prepare */
    fedc_free(b);
    *rc = r;
    return 1;
  }
  /* the global model is not read again before the commit (nor after an
   * abort: fedc__coord_large_readopt): its body goes, unless a download
   * still sends it, so that the store's write of the new model (SQLite
   * copies a blob into its record) does not find two models beside it */
  /* both models are here now: the delta in slices, to a file */
  fedc__coord_large_delta(c, c->global_body, b, n, fedc_engine_round(c->engine) + 1);
  fedc_http_body_unref(c->global_body);
  c->global_body = NULL;
  *bytes = b;
  *len = n;
  *next = v;
  *rc = 0;
  return 1;
}

/* The served body is dropped as a large model's commit starts (loop
 * thread): until the new one is set, GET /v1/model is answered from the
 * store, and the old model's memory goes with the engine's reference
 * (fedc__coord_large_commit). */
void fedc__coord_large_commit_begin(fedc_coord *c) {
  if (c->global_body == NULL || c->model_body == NULL) return;
  fedc__coord_model_set(c, NULL, NULL);
}

/* A round abandoned below quorum (loop thread): the prepare failed before
 * the global model's body was let go, so it is served again. */
void fedc__coord_large_commit_abandoned(fedc_coord *c) {
  if (c->global_body && c->model_body == NULL)
    fedc__coord_model_set(c, fedc_http_body_ref(c->global_body), NULL);
}

/*
 * After an aborted commit of a large model (worker, under mu): the global
 * model's body was let go, so the engine's global model is read back from
 * the store's last checkpoint (the committed model, bit for bit) and
 * adopted again. FEDC_E* when that fails: then the coordinator cannot go
 * on (the caller stops it).
 */
int fedc__coord_large_readopt(fedc_coord *c) {
  if (c->global_body) return 0;
  uint8_t *bytes = NULL;
  size_t len = 0;
  fedc_http_body *body = NULL;
  int rc = fedc_store_checkpoint(c->store, fedc_engine_round(c->engine) - 1, &bytes, &len);
  if (rc == 0) rc = fedc_http_body_new(bytes, len, &body);
  float *v = rc == 0 ? values_in_place(c, (uint8_t *)(uintptr_t)fedc_http_body_data(body),
                                       fedc_http_body_len(body))
                     : NULL;
  if (rc == 0 && v == NULL)
    rc = fedc_error_set(FEDC_EFORMAT, "the last checkpoint is not the job's model");
  if (rc != 0) {
    fedc_http_body_unref(body);
    return rc;
  }
  fedc__engine_adopt_global(c->engine, v);
  c->global_body = body;
  return 0;
}

/* The job's model laid out as fedc__layout_view reads it in place. */
static int in_place_layout(const fedc_coord *c) {
  if (c->layout.n_int > 0 || c->layout.n == 0 || fedc__coord_scaffold_on(c)) return 0;
  for (size_t i = 0; i < c->layout.n; i++)
    if (c->layout.t[i].dtype != FEDC_ST_F32) return 0;
  return 1;
}

/*
 * A large model's start (restore, before the engine is made): the model
 * is held once. A new job encodes its initial checkpoint from *w, frees
 * *w, and stores it; a resumed one frees *w (the [model] init values are
 * not needed) and reads its last checkpoint. Either container becomes
 * *held, with *values its floats in place, for the engine to start from
 * and adopt; so the start holds at most the container, SQLite's copy of
 * it and the engine's first copy, never the init values beside them.
 * *held NULL (and 0): not a large model laid out so; the usual start runs.
 */
int fedc__coord_large_start(fedc_coord *c, float **w, int32_t last, fedc_http_body **held,
                            const float **values) {
  *held = NULL;
  *values = NULL;
  const double mb = (double)c->n_params * sizeof(float) / (1024.0 * 1024.0);
  if (c->cfg.server_spill_above_mb <= 0.0 || mb <= c->cfg.server_spill_above_mb ||
      !in_place_layout(c))
    return 0;
  uint8_t *bytes = NULL;
  size_t len = 0;
  int rc;
  if (last == 0) {
    fedc_st_meta meta[] = {{"format", "fedc"}, {"job", c->job_id}, {"round", "0"}};
    rc = fedc__coord_model_encode(c, *w, c->ints, meta, 3, &bytes, &len);
    fedc_free(*w);
    *w = NULL;
    if (rc == 0) rc = fedc_store_put_initial(c->store, bytes, len);
  } else {
    fedc_free(*w);
    *w = NULL;
    rc = fedc_store_checkpoint(c->store, last, &bytes, &len);
  }
  fedc_http_body *body = NULL;
  if (rc == 0) rc = fedc_http_body_new(bytes, len, &body); /* takes bytes */
  else fedc_free(bytes);
  float *v = rc == 0 ? values_in_place(c, (uint8_t *)(uintptr_t)fedc_http_body_data(body),
                                       fedc_http_body_len(body))
                     : NULL;
  if (rc == 0 && v == NULL)
    rc = fedc_error_set(FEDC_EFORMAT, "store %s: checkpoint of round %d is not the job's model",
                        c->cfg.store_path, (int)last);
  if (rc != 0) {
    fedc_http_body_unref(body);
    return rc;
  }
  *held = body;
  *values = v;
  return 0;
}

/* The engine made from *values adopts them (restore, after the engine is
 * made): held is its global model's body until the served one is made. */
void fedc__coord_large_started(fedc_coord *c, fedc_http_body *held, const float *values) {
  fedc__engine_adopt_global(c->engine, (float *)(uintptr_t)values);
  fedc_http_body_unref(c->global_body);
  c->global_body = held;
}
