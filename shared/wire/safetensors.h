/*
 * safetensors.h - the one tensor container: wire, checkpoints and exports.
 *
 * The format and the F32 API are public (<fedc/tensors.h>). This header
 * adds what only the library uses: U32 tensors for secure aggregation's
 * masked vectors, decoding with flags, and per-tensor dtypes.
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

/* "F32" or "U32" for tensor i (NULL out of range). A U32 tensor's view
 * from fedc_st_get/fedc_st_find has its words where data points. */
const char *fedc_st_dtype(const fedc_st_file *f, size_t i);
/* A U32 tensor's words and count by name: FEDC_ENOTFOUND, or
 * FEDC_EUNSUPPORTED when the tensor is F32. */
int fedc_st_find_u32(const fedc_st_file *f, const char *name,
                     const uint32_t **words, size_t *n);

#endif
