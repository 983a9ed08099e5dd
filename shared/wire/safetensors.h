/*
 * safetensors.h - the one tensor container: wire, checkpoints and exports.
 *
 * Format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON header mapping each tensor
 * name to {"dtype","shape","data_offsets":[begin,end]} (offsets relative to
 * the data section), an optional "__metadata__" object of string -> string,
 * then the raw little-endian data. fedc writes F32 tensors only, in the
 * order given, and always adds the metadata key "sha256": the hex SHA-256
 * of the whole data section. A PyTorch user loads the file with
 * safetensors.torch.load_file().
 *
 * Decoding checks everything before returning: header length within the
 * buffer, valid JSON, known dtype (F32 only), shapes whose element count
 * matches the offsets, offsets in bounds, contiguous and non-overlapping,
 * data section fully covered, and the sha256 when present.
 */
#ifndef FEDC_SAFETENSORS_H
#define FEDC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define FEDC_ST_MAX_DIMS 4
#define FEDC_ST_MAX_HEADER (16u << 20) /* refuse larger JSON headers */

typedef struct fedc_st_tensor {
  const char *name;
  int32_t ndim;
  int64_t shape[FEDC_ST_MAX_DIMS];
  const float *data; /* ndim product elements */
} fedc_st_tensor;

typedef struct fedc_st_meta {
  const char *key;
  const char *value;
} fedc_st_meta;

/* Encode into a new buffer (*out, freed with fedc_free). */
int fedc_st_encode(const fedc_st_tensor *tensors, size_t n_tensors,
                   const fedc_st_meta *meta, size_t n_meta, uint8_t **out,
                   size_t *out_len);
/* Encode and write to path atomically (temp file, fsync, rename). */
int fedc_st_write_file(const char *path, const fedc_st_tensor *tensors,
                       size_t n_tensors, const fedc_st_meta *meta,
                       size_t n_meta);

/*
 * U32 tensors, for one path only: the masked vectors of secure aggregation
 * (secagg.h), which are words modulo 2^32, not floats. The encoder writes
 * one 1-D U32 tensor; a decoder accepts U32 only when the caller passes
 * FEDC_ST_ALLOW_U32 to fedc_st_decode_ex. Everything else reads F32 only.
 */
#define FEDC_ST_ALLOW_U32 1u
int fedc_st_encode_u32(const char *name, const uint32_t *words, size_t n,
                       const fedc_st_meta *meta, size_t n_meta, uint8_t **out,
                       size_t *out_len);

/* A decoded container; owns copies of its names, metadata and data. */
typedef struct fedc_st_file fedc_st_file;

/* Errors: FEDC_EFORMAT (anything malformed, with the reason in
 * fedc_error_msg), FEDC_ECHECKSUM, FEDC_ETOOBIG, FEDC_ENOMEM, FEDC_EIO. */
int fedc_st_decode(const uint8_t *buf, size_t len, fedc_st_file **out);
/* The same, with U32 tensors accepted when flags has FEDC_ST_ALLOW_U32. */
int fedc_st_decode_ex(const uint8_t *buf, size_t len, unsigned flags,
                      fedc_st_file **out);
int fedc_st_read_file(const char *path, fedc_st_file **out);
void fedc_st_free(fedc_st_file *f);

size_t fedc_st_count(const fedc_st_file *f);
/* Tensor i in header order; the view points into f. */
void fedc_st_get(const fedc_st_file *f, size_t i, fedc_st_tensor *out);
/* By name; FEDC_ENOTFOUND if absent. */
int fedc_st_find(const fedc_st_file *f, const char *name, fedc_st_tensor *out);
/* "F32" or "U32" for tensor i (NULL out of range). A U32 tensor's view
 * from fedc_st_get/fedc_st_find has its words where data points. */
const char *fedc_st_dtype(const fedc_st_file *f, size_t i);
/* A U32 tensor's words and count by name: FEDC_ENOTFOUND, or
 * FEDC_EUNSUPPORTED when the tensor is F32. */
int fedc_st_find_u32(const fedc_st_file *f, const char *name,
                     const uint32_t **words, size_t *n);
/* Metadata value or NULL. */
const char *fedc_st_meta_get(const fedc_st_file *f, const char *key);

#endif
