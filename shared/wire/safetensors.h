/*
 * safetensors.h - the one tensor container: wire, checkpoints and exports.
 *
 * The format and the F32 API are public (<fedc/tensors.h>). This header
 * adds what only the library uses: U32 tensors for secure aggregation's
 * masked vectors, decoding with flags, and per-tensor dtypes (F16, BF16,
 * integers: tensor jobs).
 */
#ifndef FEDC_SAFETENSORS_H
#define FEDC_SAFETENSORS_H

#include <fedc/tensors.h>

#include <stddef.h>
#include <stdint.h>

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

/* fedc_st_decode, with U32 tensors accepted when flags has
 * FEDC_ST_ALLOW_U32. */
int fedc_st_decode_ex(const uint8_t *buf, size_t len, unsigned flags,
                      fedc_st_file **out);

/*
 * The dtypes the container can carry (safetensors' names). The public API
 * reads and writes F32; tensor jobs (ml/layout.h) read and write any of
 * these with fedc_st_decode_ex(FEDC_ST_ALLOW_ANY) and fedc_st_encode_typed.
 * A tensor of another dtype than F32 has its elements, in host byte order,
 * where its view's data points (the pointer's type says nothing then).
 */
typedef enum {
  FEDC_ST_F32 = 0, FEDC_ST_U32, FEDC_ST_F16, FEDC_ST_BF16, FEDC_ST_F64,
  FEDC_ST_I64, FEDC_ST_I32, FEDC_ST_I16, FEDC_ST_I8, FEDC_ST_U8,
  FEDC_ST_BOOL, FEDC_ST_U16, FEDC_ST_U64,
  FEDC_ST_N_DTYPES
} fedc_st_dtype_code;
#define FEDC_ST_ALLOW_ANY 2u
/* With fedc_st_decode_ex: the tensors' views point into the decoded buffer
 * instead of copies (when the host is little-endian and each tensor is
 * aligned for its elements; else copies as usual), so the buffer must
 * outlive the file. For a large update read once from its spool. */
#define FEDC_ST_BORROW 4u
/* With fedc_st_decode_ex: only the header is read (buf holds at least its
 * 8 + header-length bytes; len is the whole container's declared length):
 * every check but the data's sha256 runs, and the views' data point where
 * each tensor would lie in buf, not to be read. For a chunked upload whose
 * header is in before its data (coordinator/upload_fold.c). */
#define FEDC_ST_HEADER_ONLY 8u
/* "F16" for FEDC_ST_F16 (NULL out of range), the code of a name (-1 if
 * none of the above), and an element's size in bytes (0 out of range). */
const char *fedc_st_dtype_name(int code);
int fedc_st_dtype_parse(const char *s);
size_t fedc_st_dtype_size(int code);

/* fedc_st_read_file with fedc_st_decode_ex's flags (FEDC_ST_ALLOW_ANY: a
 * file of any dtype). */
int fedc_st_read_file_ex(const char *path, unsigned flags, fedc_st_file **out);
/* fedc_st_encode with tensor i of dtype dts[i]; t[i].data points to its
 * elements in host byte order. */
int fedc_st_encode_typed(const fedc_st_tensor *t, const uint8_t *dts, size_t n_tensors,
                         const fedc_st_meta *meta, size_t n_meta, uint8_t **out,
                         size_t *out_len);
/* The header (length, JSON, padding) fedc_st_encode_typed would write for
 * t[0..n) over a data section already laid out at data (t[i].data at its
 * offset there, little-endian host only): data + header is the container.
 * *hdr freed with fedc_free; FEDC_EINVAL when t is not laid out so. */
int fedc_st_encode_header_typed(const fedc_st_tensor *t, const uint8_t *dts, size_t n,
                                const fedc_st_meta *meta, size_t n_meta,
                                const uint8_t *data, size_t data_len, uint8_t **hdr,
                                size_t *hdr_len);

/* The dtype's name for tensor i ("F32", "U32", ...; NULL out of range), and
 * its code (-1 out of range). A U32 tensor's view from fedc_st_get or
 * fedc_st_find has its words where data points. */
const char *fedc_st_dtype(const fedc_st_file *f, size_t i);
int fedc_st_dtype_at(const fedc_st_file *f, size_t i);
/* A U32 tensor's words and count by name: FEDC_ENOTFOUND, or
 * FEDC_EUNSUPPORTED when the tensor is F32. */
int fedc_st_find_u32(const fedc_st_file *f, const char *name,
                     const uint32_t **words, size_t *n);

/* A fedc container whose data section was rewritten in place (len bytes
 * at buf): its "sha256" metadata set to the data's new digest, in place.
 * FEDC_EFORMAT when buf is not a fedc container with that key. */
int fedc__st_rehash(uint8_t *buf, size_t len);

#endif
