/*
 * partial.h - a relay's partial sum on the wire (docs/protocol.md,
 * "Relays"). A relay folds its subtree's updates into FedAvg's exact
 * accumulator (agg.h: one 128-bit fixed-point sum a weight, and the total
 * sample count) and posts that accumulator to its parent as the body of
 * POST /v1/update. The words are the first n + 1 words of the engine's
 * partial (round/engine.h), the encoding fedc-sim-mpi's ranks add up, so
 * a parent adds a relay's sum exactly as a rank adds another's:
 *
 *   bytes 0..8    "FEDCPRT1"
 *   8..12         round (int32)        12..16  updates summed (int32)
 *   16..24        total samples (u64)  24..32  mean train loss (f64 bits)
 *   32..40        n, the weights (u64)
 *   40..40+16n    the n sums, int128 two's complement
 *   then 32       SHA-256 of every byte before it
 *
 * all little-endian. A safetensors container starts with its header's
 * length, never with these 8 bytes, so one endpoint takes both.
 */
#ifndef FEDC_WIRE_PARTIAL_H
#define FEDC_WIRE_PARTIAL_H

#include <stddef.h>
#include <stdint.h>

#define FEDC_PARTIAL_MAGIC "FEDCPRT1"
#define FEDC_PARTIAL_HEAD 40u

typedef struct fedc_partial {
  int32_t round;
  int32_t updates;     /* client updates summed in it (>= 1) */
  uint64_t total;      /* their sample count */
  double train_loss;   /* their sample-weighted mean training loss */
  uint64_t n;          /* weights */
  const uint8_t *sums; /* decoded: n x 16 bytes inside the body */
} fedc_partial;

/* 1 when body starts like a partial (its magic), 0 otherwise. */
int fedc_partial_is(const uint8_t *body, size_t len);
/* Encode p with the n sums acc into a new buffer (fedc_free). */
int fedc_partial_encode(const fedc_partial *p, const __int128 *acc, uint8_t **out, size_t *len);
/* Check and read a partial body: FEDC_EFORMAT (size, magic, counts) or
 * FEDC_ECHECKSUM. out->sums points into body. */
int fedc_partial_decode(const uint8_t *body, size_t len, fedc_partial *out);
/* Sum i of a decoded partial. */
__int128 fedc_partial_sum(const fedc_partial *p, uint64_t i);

#endif
