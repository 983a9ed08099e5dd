/*
 * coded_fold.c - compressed updates at the coordinator (docs/compression.md,
 * docs/protocol.md "Compressed updates"). Under [strategy] compression the
 * job object announces the codec, and a client's POST /v1/update body is
 * its delta from the round's global model in that codec
 * (wire/coded_update.h). Here the body is checked and decoded into the
 * float32 weights x + d, which update_run (coordinator.c) then folds
 * exactly as a plain update's: the same engine call, the same checks
 * (max_weight_delta, norm_bound, DP's clipping act on the decoded update).
 */
#include "coord_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "wire/coded_update.h"

/* "compression": {"codec": ..., "topk_fraction": ...} in the job object
 * when the job compresses; absent otherwise (and relays refuse a job that
 * has it: they forward exact sums). */
void fedc__coord_compression_json(const fedc_coord *c, struct cJSON *job) {
  if (c->cfg.compression == FEDC_CODEC_NONE) return;
  cJSON *o = cJSON_AddObjectToObject(job, "compression");
  cJSON_AddStringToObject(o, "codec", fedc_codec_name((fedc_codec)c->cfg.compression));
  if (FEDC_CODEC_SPARSE(c->cfg.compression))
    cJSON_AddNumberToObject(o, "topk_fraction", c->cfg.topk_fraction);
}

/*
 * Worker thread. 0 when body is not a compressed update (the caller
 * decodes a container); 1 when it is, with *rc 0 and weights (n_params)
 * and *meta filled (meta->sha256 points to sha_hex, the body's checksum),
 * or *rc the error (FEDC_EFORMAT for a job without compression, the
 * decoder's otherwise). The global model is read under c->mu; commits do
 * not run while an update is in flight, so it is the round's.
 */
int fedc__coord_coded_decode(fedc_coord *c, const uint8_t *body, size_t len, float *weights,
                             fedc_update_meta *meta, char sha_hex[65], int *rc) {
  if (!fedc_coded_is(body, len)) return 0;
  memset(meta, 0, sizeof *meta);
  if (c->cfg.compression == FEDC_CODEC_NONE) {
    *rc = fedc_error_set(FEDC_EFORMAT, "a compressed update, but this job takes float32 "
                                       "updates ([strategy] compression = none)");
    return 1;
  }
  fedc_coded_meta m;
  pthread_mutex_lock(&c->mu);
  *rc = fedc_coded_decode(body, len, (fedc_codec)c->cfg.compression, fedc_engine_global(c->engine),
                          c->n_params, &m, weights);
  pthread_mutex_unlock(&c->mu);
  if (*rc != 0) return 1;
  if (m.round < 1) {
    *rc = fedc_error_set(FEDC_EFORMAT, "compressed update: round %d", (int)m.round);
    return 1;
  }
  static const char hex[] = "0123456789abcdef";
  const uint8_t *sha = body + len - 32;
  for (int i = 0; i < 32; i++) {
    sha_hex[2 * i] = hex[sha[i] >> 4];
    sha_hex[2 * i + 1] = hex[sha[i] & 15];
  }
  sha_hex[64] = '\0';
  meta->round = m.round;
  meta->num_samples = (int64_t)m.num_samples;
  meta->train_loss = m.train_loss;
  meta->sha256 = sha_hex;
  return 1;
}
