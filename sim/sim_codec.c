/*
 * sim_codec.c - [strategy] compression in fedc-sim (docs/compression.md):
 * each simulated update goes through the same encode and decode as a
 * client's and the coordinator's (wire/coded_update.c), so the engine
 * folds exactly what the coordinator would have folded, and the bytes the
 * bodies take are counted. topk's error-feedback residual is kept per
 * client in memory (a real client keeps it in [client] state_dir); int8's
 * stochastic rounding draws from the stream (seed, "int8", round, client),
 * as a client's does, so a run does not depend on the threads.
 */
#include "sim_internal.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "wire/client_json.h"
#include "wire/coded_update.h"

struct fedc_sim_codec {
  fedc_codec codec;
  size_t k;           /* topk's kept entries */
  float **residual;   /* topk: one per client, made when it first trains */
  uint64_t bytes;     /* body bytes sent, all rounds */
  uint64_t updates;   /* bodies sent */
  size_t float32_len; /* the plain float32 update's body, for comparison */
};

#define INT8_STREAM 0x696e7438u /* "int8" */

/*
 * The float32 body's size is that of the safetensors update a client
 * sends without compression (its metadata's digits aside: measured once
 * on the initial model at 600 samples).
 */
int fedc__sim_codec_new(fedc_sim *s) {
  fedc_sim_codec *cc = fedc_calloc(1, sizeof *cc);
  if (cc == NULL) return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  s->codec = cc;
  cc->codec = (fedc_codec)s->cfg.compression;
  cc->k = fedc_coded_topk_k(s->n_params, s->cfg.topk_fraction);
  if (FEDC_CODEC_SPARSE(cc->codec) &&
      (cc->residual = fedc_calloc((size_t)s->cfg.clients, sizeof *cc->residual)) == NULL)
    return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
  fedc_st_tensor t[2 * FEDC_MODEL_MAX_LAYERS];
  size_t nt =
      fedc_model_tensors(&s->spec, fedc_engine_global(s->engine), t, 2 * FEDC_MODEL_MAX_LAYERS);
  uint8_t *buf = NULL;
  int rc = fedc_client_update_encode_tensors(t, nt, 1, 600, 0.5, &buf, &cc->float32_len);
  fedc_free(buf);
  return rc;
}

void fedc__sim_codec_free(fedc_sim *s) {
  fedc_sim_codec *cc = s->codec;
  if (cc == NULL) return;
  for (int32_t i = 0; cc->residual && i < s->cfg.clients; i++)
    fedc_free(cc->residual[i]);
  fedc_free(cc->residual);
  fedc_free(cc);
  s->codec = NULL;
}

/*
 * Worker thread: w (in: the client's trained weights, out: what the
 * coordinator decodes) through the codec against the global model. A
 * client is trained by one worker at a time, so its residual needs no
 * lock; the byte counters are atomic.
 */
int fedc__sim_codec_apply(fedc_sim *s, int32_t client, int32_t round, uint64_t samples, double loss,
                          float *w) {
  fedc_sim_codec *cc = s->codec;
  if (cc == NULL || cc->codec == FEDC_CODEC_NONE) {
    if (cc) {
      __atomic_add_fetch(&cc->bytes, cc->float32_len, __ATOMIC_RELAXED);
      __atomic_add_fetch(&cc->updates, 1, __ATOMIC_RELAXED);
    }
    return 0;
  }
  float *e = NULL;
  if (FEDC_CODEC_SPARSE(cc->codec)) {
    if (cc->residual[client] == NULL &&
        (cc->residual[client] = fedc_calloc(s->n_params, sizeof(float))) == NULL)
      return fedc_error_set(FEDC_ENOMEM, "sim: out of memory");
    e = cc->residual[client];
  }
  fedc_rng rng;
  fedc_rng_derive(&rng, s->cfg.seed, INT8_STREAM, (uint64_t)round, (uint64_t)client);
  fedc_coded_meta m = {.round = round,
                       .codec = cc->codec,
                       .num_samples = samples ? samples : 1,
                       .train_loss = loss,
                       .n = s->n_params,
                       .k = FEDC_CODEC_SPARSE(cc->codec) ? cc->k : 0};
  const float *x = fedc_engine_global(s->engine);
  uint8_t *body = NULL;
  size_t len = 0;
  int rc = fedc_coded_encode(&m, w, x, e, &rng, &body, &len);
  if (rc == 0) rc = fedc_coded_decode(body, len, cc->codec, x, s->n_params, &m, w);
  fedc_free(body);
  if (rc != 0) return rc;
  __atomic_add_fetch(&cc->bytes, len, __ATOMIC_RELAXED);
  __atomic_add_fetch(&cc->updates, 1, __ATOMIC_RELAXED);
  return 0;
}

int fedc_sim_bytes_up(const fedc_sim *s, double *per_update, double *float32_per_update) {
  const fedc_sim_codec *cc = s->codec;
  *per_update = *float32_per_update = 0;
  if (cc == NULL) return FEDC_CODEC_NONE;
  *float32_per_update = (double)cc->float32_len;
  *per_update = cc->updates ? (double)cc->bytes / (double)cc->updates : *float32_per_update;
  return (int)cc->codec;
}
