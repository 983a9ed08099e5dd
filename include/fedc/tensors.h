/*
 * fedc/tensors.h - named float32 tensors in and out of safetensors.
 *
 * safetensors (https://github.com/huggingface/safetensors) is fedc's one
 * tensor container: the wire, checkpoints and exports. A file is an 8-byte
 * little-endian header length N, N bytes of JSON mapping each tensor name
 * to {"dtype","shape","data_offsets"}, an optional "__metadata__" object of
 * string -> string, then the raw little-endian data. fedc writes F32
 * tensors in the order given and always adds the metadata key "sha256"
 * (the hex SHA-256 of the data section), which it checks when it reads. A
 * PyTorch user loads the file with safetensors.torch.load_file().
 *
 *     const float w[6] = {1, 2, 3, 4, 5, 6};
 *     fedc_st_tensor t = {.name = "w", .ndim = 2, .shape = {2, 3}, .data = w};
 *     fedc_st_meta m = {"note", "demo"};
 *     if (fedc_st_write_file("w.safetensors", &t, 1, &m, 1) != 0) ...
 *     fedc_st_file *f;
 *     if (fedc_st_read_file("w.safetensors", &f) == 0) {
 *       fedc_st_tensor back;
 *       if (fedc_st_find(f, "w", &back) == 0) ... back.data[5] == 6 ...
 *       fedc_st_free(f);
 *     }
 *
 * Decoding checks everything before it returns (header length, UTF-8,
 * JSON, dtype, shapes against offsets, bounds, coverage, checksum), so a
 * program may hand it bytes from anyone. Every function may be called from
 * any thread; a fedc_st_file is read-only once decoded and may be shared by
 * threads that only read it. Failures return a negative FEDC_E* code with
 * the reason in fedc_error_msg().
 */
#ifndef FEDC_PUBLIC_TENSORS_H
#define FEDC_PUBLIC_TENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FEDC_ST_MAX_DIMS 4
#define FEDC_ST_MAX_HEADER (16u << 20) /* larger JSON headers are refused */

/* One tensor: a view, owned by whoever filled it in. */
typedef struct fedc_st_tensor {
  const char *name;                /* UTF-8, unique within a file */
  int32_t ndim;                    /* 0 (a scalar) to FEDC_ST_MAX_DIMS */
  int64_t shape[FEDC_ST_MAX_DIMS];
  const float *data;               /* product of the shape elements */
} fedc_st_tensor;

/* One metadata entry, string to string. */
typedef struct fedc_st_meta {
  const char *key;
  const char *value;
} fedc_st_meta;

/*
 * Encode n_tensors tensors (in that order) and n_meta metadata entries
 * into a new buffer: *out, *out_len bytes, which the caller frees with
 * fedc_free(). The key "sha256" is fedc's own and may not be given.
 * FEDC_EINVAL for a bad name, shape or duplicate, FEDC_ENOMEM.
 */
int fedc_st_encode(const fedc_st_tensor *tensors, size_t n_tensors,
                   const fedc_st_meta *meta, size_t n_meta, uint8_t **out,
                   size_t *out_len);
/* Encode and write to path atomically (a temporary file beside it, fsync,
 * rename): a reader sees the old file or the new one. FEDC_EIO as well. */
int fedc_st_write_file(const char *path, const fedc_st_tensor *tensors,
                       size_t n_tensors, const fedc_st_meta *meta,
                       size_t n_meta);

/* A decoded container; it owns copies of its names, metadata and data. */
typedef struct fedc_st_file fedc_st_file;

/*
 * Decode len bytes at buf into a new *out, freed with fedc_st_free(); buf
 * is not kept. FEDC_EFORMAT (anything malformed, the reason in
 * fedc_error_msg()), FEDC_ECHECKSUM, FEDC_ETOOBIG, FEDC_ENOMEM; *out is
 * NULL on failure.
 */
int fedc_st_decode(const uint8_t *buf, size_t len, fedc_st_file **out);
/* Read and decode a file; FEDC_EIO as well. */
int fedc_st_read_file(const char *path, fedc_st_file **out);
/* Free a decoded container (NULL is a no-op); its views die with it. */
void fedc_st_free(fedc_st_file *f);

/* The number of tensors. */
size_t fedc_st_count(const fedc_st_file *f);
/* Tensor i (0 <= i < fedc_st_count) in header order; the view points
 * into f. */
void fedc_st_get(const fedc_st_file *f, size_t i, fedc_st_tensor *out);
/* The tensor named name; FEDC_ENOTFOUND if there is none. */
int fedc_st_find(const fedc_st_file *f, const char *name, fedc_st_tensor *out);
/* A metadata value (owned by f), or NULL if the key is absent. */
const char *fedc_st_meta_get(const fedc_st_file *f, const char *key);
/* Metadata entries in header order ("sha256" among them), for a reader
 * that copies every key: entry i of fedc_st_meta_count(f), or NULL past the
 * end. The strings are owned by f. Any thread. */
size_t fedc_st_meta_count(const fedc_st_file *f);
const char *fedc_st_meta_key(const fedc_st_file *f, size_t i);

#ifdef __cplusplus
}
#endif

#endif
