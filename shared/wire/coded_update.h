/*
 * coded_update.h - a compressed update on the wire (docs/protocol.md,
 * "Compressed updates"; docs/compression.md). Under [strategy] compression
 * a client posts to POST /v1/update, instead of a safetensors container,
 * its delta d = w - x from the round's global model x encoded with the
 * job's codec (wire/compress.h):
 *
 *   bytes 0..8    "FEDCCMP1"
 *   8..12         round (int32)          12..16  codec (u32, fedc_codec)
 *   16..24        num_samples (u64)      24..32  train loss (f64 bits)
 *   32..40        n, the weights (u64)   40..48  k, topk's kept (u64; else 0)
 *   48..48+L      the encoded delta, L = fedc_codec_size(codec, n, k)
 *   then 32       SHA-256 of every byte before it
 *
 * all little-endian. The receiver decodes d and gives w = x + d (float32
 * sums, as the sender can compute them too) to the fold it uses for any
 * update, so decoding is the only new step between the wire and the sums.
 * fedc-sim runs the same encode and decode on its simulated updates.
 */
#ifndef FEDC_WIRE_CODED_UPDATE_H
#define FEDC_WIRE_CODED_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"
#include "wire/compress.h"

#define FEDC_CODED_MAGIC "FEDCCMP1"
#define FEDC_CODED_HEAD 48u

typedef struct fedc_coded_meta {
  int32_t round;
  fedc_codec codec;
  uint64_t num_samples; /* >= 1 */
  double train_loss;    /* finite */
  uint64_t n;           /* weights */
  uint64_t k;           /* topk: entries sent; else 0 */
} fedc_coded_meta;

/* topk's k for n weights at fraction f in (0, 1]: ceil(f n), at least 1. */
size_t fedc_coded_topk_k(size_t n, double fraction);
/* 1 when body starts like a compressed update (its magic), 0 otherwise. */
int fedc_coded_is(const uint8_t *body, size_t len);

/*
 * Encode the update w trained from x (n weights each): d = w - x goes
 * through m->codec (m->k kept for topk, whose error-feedback residual e, n
 * floats, is updated in place; int8 draws its rounding from rng). *out
 * (fedc_free) gets the whole body. FEDC_EINVAL for bad metadata,
 * FEDC_ENOMEM.
 */
int fedc_coded_encode(const fedc_coded_meta *m, const float *w, const float *x, float *residual,
                      fedc_rng *rng, uint8_t **out, size_t *out_len);

/*
 * Check and decode a body: magic, size, checksum (FEDC_ECHECKSUM), the
 * codec (want's: FEDC_EUNSUPPORTED for another), n (FEDC_ESHAPE when not
 * the model's n), k (1..n for topk), samples and loss (FEDC_EFORMAT),
 * int8 scales (finite, >= 0) and every decoded delta finite
 * (FEDC_ENONFINITE), topk indices in range and once (FEDC_EFORMAT). On
 * success w (n floats) = x + d and *m holds the header; w is undefined on
 * failure.
 */
int fedc_coded_decode(const uint8_t *body, size_t len, fedc_codec want, const float *x, size_t n,
                      fedc_coded_meta *m, float *w);

#endif
