/*
 * model_delta.h - a global model sent as a lossless delta from the model
 * the client already holds (docs/protocol.md, "Model deltas";
 * docs/compression.md, "Model downloads as deltas").
 *
 * Both models are safetensors containers of the same layout: a header
 * (8-byte length + JSON, which carries the round and the data's sha256)
 * and a data section of the same length. The delta carries the new
 * header verbatim and the data section as the difference of the two as
 * 32-bit little-endian words: for each word the wrapping difference
 * d = new - base of the bit patterns (a float32 weight that moved by k
 * ULPs without changing sign gives k), zig-zag mapped (z = 2|d| or
 * 2|d| - 1), then Rice coded in blocks of 8 words with a 5-bit parameter
 * per block chosen to make the block shortest; a word whose quotient
 * would need 16 or more unary bits is sent as an escape and 32 raw bits
 * (a sign change, say). The 0 to 3 bytes left after the last whole word
 * are sent as they are. Tensors that are not F32 (F16, BF16, integers)
 * go through the same word difference: lossless, only less compact.
 *
 *   0..8     "FEDCDLT1"
 *   8..12    base round (int32)           12..16  round (int32)
 *   16..24   base body length (u64)       24..56  base body SHA-256
 *   56..64   new body length (u64)        64..96  new body SHA-256
 *   96..104  header bytes h (u64)         104..112 the base's header bytes (u64)
 *   112..120 data bytes (u64, the same in both)
 *   120..128 coded bytes c (u64)
 *   128..128+h         the new body's header, verbatim
 *   then c             the coded words (bits little-endian, LSB first)
 *   then data % 4      the new body's last bytes, verbatim
 *
 * all little-endian. The decoder checks its base's length and SHA-256
 * before anything else and the rebuilt body's SHA-256 after: a delta
 * either yields exactly the coordinator's body or an error, never another
 * model. Pure functions, any thread.
 */
#ifndef FEDC_WIRE_MODEL_DELTA_H
#define FEDC_WIRE_MODEL_DELTA_H

#include <stddef.h>
#include <stdint.h>

#define FEDC_MODEL_DELTA_MAGIC "FEDCDLT1"
#define FEDC_MODEL_DELTA_HEAD 128u

/*
 * Encode the body `next` (round `round`) as a delta from `base` (round
 * base_round). base_sha and next_sha are the bodies' SHA-256 in hex when
 * the caller has them (NULL: computed here). *out (fedc_free) gets the
 * delta. FEDC_EINVAL when the two are not safetensors containers whose
 * data sections have the same length (no delta can be made: send the whole
 * model), FEDC_ENOMEM, FEDC_EBACKEND (hashing).
 */
int fedc_model_delta_encode(const uint8_t *base, size_t base_len, int32_t base_round,
                            const char *base_sha, const uint8_t *next, size_t next_len,
                            int32_t round, const char *next_sha, uint8_t **out, size_t *out_len);

/* 1 when body starts like a model delta (its magic and fixed header). */
int fedc_model_delta_is(const uint8_t *body, size_t len);
/* The base round and round a delta names (0, or FEDC_EFORMAT when body is
 * not one). */
int fedc_model_delta_rounds(const uint8_t *body, size_t len, int32_t *base_round,
                            int32_t *round);

/*
 * Rebuild the new body from the delta and base. base_sha: the base's
 * SHA-256 in hex when the caller has it (NULL: computed). *out (fedc_free,
 * NUL-terminated past *out_len) gets exactly the coordinator's body.
 * FEDC_ECHECKSUM (the base is not the delta's base, or the rebuilt body's
 * SHA-256 is not the one named), FEDC_EFORMAT (a malformed delta),
 * FEDC_ETOOBIG (a new body larger than max), FEDC_ENOMEM.
 */
int fedc_model_delta_decode(const uint8_t *delta, size_t len, const uint8_t *base,
                            size_t base_len, const char *base_sha, size_t max, uint8_t **out,
                            size_t *out_len);

/* Internal, for the streaming codec (model_delta_stream.c): the bit
 * writer, the zig-zagged word difference, one block of m <= 8 words coded
 * (at most 49 bytes written at w->p + w->n), and the last partial byte. */
typedef struct fedc__delta_bitw {
  uint8_t *p;
  size_t n; /* bytes written */
  uint64_t acc;
  int nacc;
} fedc__delta_bitw;
uint32_t fedc__model_delta_zigzag(uint32_t base, uint32_t next);
void fedc__model_delta_put_block(fedc__delta_bitw *w, const uint32_t *z, int m);
void fedc__model_delta_flush(fedc__delta_bitw *w);

#endif
