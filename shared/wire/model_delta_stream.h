/*
 * model_delta_stream.h - the model delta of model_delta.h, encoded and
 * decoded in slices: for models that live in files (a client's state_dir,
 * a large-model coordinator's store) and must never be held whole in
 * memory. The bytes produced are exactly those of fedc_model_delta_encode
 * and fedc_model_delta_decode, and the decoder is as strict: every size
 * checked before it is used, every coded bit read within the coded bytes,
 * zero padding, and both SHA-256 (the base's and the rebuilt body's)
 * compared with the delta's at the end, each computed as the slices pass.
 * A decode that fails may have written part of its output: the caller
 * writes into a scratch file and drops it on any error.
 *
 * The caller gives its inputs and output as callbacks (pread/pwrite on
 * files, memcpy on mappings); memory is three slices of `slice` bytes.
 *
 *     fedc_model_delta_io io = {.read_base = .., .read_other = .., .write = .., .ud = f};
 *     rc = fedc_model_delta_decode_stream(&io, delta_len, base_len, max, &out_len);
 *
 * Pure functions, any thread (the callbacks' own state aside).
 */
#ifndef FEDC_WIRE_MODEL_DELTA_STREAM_H
#define FEDC_WIRE_MODEL_DELTA_STREAM_H

#include <stddef.h>
#include <stdint.h>

typedef struct fedc_model_delta_io {
  /* Read exactly n bytes at off into buf: 0 or a FEDC_E* code (with
   * fedc_error_set's message). read_other reads the delta when decoding,
   * the new model when encoding. */
  int (*read_base)(void *ud, uint64_t off, uint8_t *buf, size_t n);
  int (*read_other)(void *ud, uint64_t off, uint8_t *buf, size_t n);
  /* Write n bytes of the output at off (in increasing order, but for the
   * encoder's fixed header, written last at 0). */
  int (*write)(void *ud, uint64_t off, const uint8_t *buf, size_t n);
  void *ud;
  size_t slice; /* bytes per slice; 0: 1 MiB */
} fedc_model_delta_io;

/*
 * Encode the body of next_len bytes (round `round`, read with read_other)
 * as a delta from the body of base_len bytes (base_round, read_base).
 * base_sha, next_sha: their SHA-256 in hex when known (NULL: computed in
 * the same pass). *out_len: the delta's length. Errors as
 * fedc_model_delta_encode, and the callbacks'.
 */
int fedc_model_delta_encode_stream(const fedc_model_delta_io *io, uint64_t base_len,
                                   int32_t base_round, const char *base_sha, uint64_t next_len,
                                   int32_t round, const char *next_sha, uint64_t *out_len);

/*
 * Rebuild the new body from a delta of delta_len bytes (read_other) and its
 * base of base_len bytes (read_base), writing it from offset 0.
 * *out_len: its length. Errors as fedc_model_delta_decode (FEDC_ECHECKSUM:
 * a base that is not the delta's, or a rebuilt body whose SHA-256 is not
 * the one named), and the callbacks'.
 */
int fedc_model_delta_decode_stream(const fedc_model_delta_io *io, uint64_t delta_len,
                                   uint64_t base_len, uint64_t max, uint64_t *out_len);

#endif
