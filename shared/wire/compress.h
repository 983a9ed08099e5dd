/*
 * compress.h - update codecs for compressed uploads (issue 17, item 2;
 * the codec layer only: no job, client or coordinator uses them yet). A
 * codec encodes the delta d = w - x of an update from the global model x
 * and decodes it back to float32, which the coordinator would then fold
 * exactly like any update: decoding is deterministic, so exact (128-bit)
 * aggregation is unchanged by a codec, only the update it is given is.
 *
 *   f16   IEEE half, round to nearest even            2 bytes a weight
 *   bf16  bfloat16, round to nearest even             2 bytes a weight
 *   int8  blocks of FEDC_CODEC_BLOCK: one f32 scale (max |d| / 127) and
 *         int8 levels rounded stochastically (unbiased: E[decode] = d),
 *         the rounding drawn from a caller's seeded stream  ~1.02 bytes
 *   topk  the k largest |d + e| as (u32 index, f32 value), where e is the
 *         client's residual (error feedback): e becomes d + e less what
 *         was sent                                        8 bytes a kept weight
 *   topk_bf16  the same selection, sent as a bitmap of the n weights and
 *         the kept values in index order as bfloat16; each value's
 *         rounding error stays in the residual     n/8 + 2 bytes a kept weight
 *
 * Combinations (fedc_codec_check): every codec works with exact
 * aggregation and with the coordinator's central DP (clipping and noise
 * act on the decoded update and the aggregate). None works with secure
 * aggregation: masks are added to the fixed-point vector and a compressed
 * update would have to be decoded before masking, sending the full size
 * anyway; topk's error feedback also needs the residual kept across
 * rounds, which the client must keep durably.
 */
#ifndef FEDC_WIRE_COMPRESS_H
#define FEDC_WIRE_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "base/rng.h"

#define FEDC_CODEC_BLOCK 256

typedef enum {
  FEDC_CODEC_NONE = 0,
  FEDC_CODEC_F16 = 1,
  FEDC_CODEC_BF16 = 2,
  FEDC_CODEC_INT8 = 3,
  FEDC_CODEC_TOPK = 4,
  FEDC_CODEC_TOPK_BF16 = 5
} fedc_codec;

/* topk and topk_bf16: k kept of n, with an error-feedback residual. */
#define FEDC_CODEC_SPARSE(c) ((c) == FEDC_CODEC_TOPK || (c) == FEDC_CODEC_TOPK_BF16)

/* "none", "f16", "bf16", "int8", "topk", "topk_bf16" -> the codec, or -1. */
int fedc_codec_parse(const char *name);
const char *fedc_codec_name(fedc_codec c);
/* Bytes of an encoded delta of n weights (topk: k kept). */
size_t fedc_codec_size(fedc_codec c, size_t n, size_t k);
/* FEDC_ECONFIG, naming the keys, for a combination that cannot work. */
int fedc_codec_check(fedc_codec c, int secure_aggregation, double topk_fraction);

/* Encode d (n weights) into out (fedc_codec_size bytes). int8 draws from
 * rng; topk keeps k and updates residual (n floats) in place. */
int fedc_codec_encode(fedc_codec c, const float *d, size_t n, size_t k, float *residual,
                      fedc_rng *rng, uint8_t *out);
/* Decode len bytes into d (n weights): FEDC_EFORMAT for a bad size or index. */
int fedc_codec_decode(fedc_codec c, const uint8_t *in, size_t len, float *d, size_t n);

#endif
