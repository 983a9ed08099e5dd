/*
 * safetensors.c - encoder and strict decoder for the safetensors container.
 *
 * The same bytes travel on the wire, sit in checkpoints and leave as
 * exports, and the decoder reads them from untrusted peers: it validates
 * everything (header length, UTF-8, JSON syntax and shape, dtype, element
 * counts, offsets, coverage of the data section, the sha256 in the
 * metadata) before it allocates the result, and it owns copies of all it
 * returns, with each tensor's floats 64-byte aligned. The encoder writes
 * the header by hand (no JSON library), metadata first, tensors in the
 * caller's order, padded with spaces so that the data starts 8-byte aligned.
 * cJSON parses the header with its default allocator: a library must not
 * install process-wide cJSON hooks under a program that may use cJSON
 * itself. Everything the decoder returns is copied into fedc's allocator.
 */
#include "wire/safetensors.h"
#include "base/utf8.h"

#include "base/alloc.h"
#include "base/error.h"
#include "base/mapped.h"
#include "base/mbedtls_compat.h"
#include "wire/le.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_BYTES 255
#define META_KEY "__metadata__"
#define SHA_KEY "sha256"
#define SHA_HEX_LEN 64
#define MAX_FILE_BYTES ((uint64_t)4 << 30)
/* JSON integers are parsed as doubles: every integer below 2^53 is exact,
 * and any text that means 2^53 or more parses to at least 2^53. */
#define MAX_JSON_INT 9007199254740991.0
/* Bytes of the data section hashed at a time. */
#define HASH_SLICE ((size_t)4 << 20)
/* A fedc header nests at most root -> tensor/metadata -> array. */
#define MAX_DEPTH 3
/* Longest array the prescan lets through to cJSON; shape limits are then
 * checked (and reported) precisely. Bounds what cJSON allocates per byte. */
#define MAX_ARRAY_LEN 64

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define ST_BIG_ENDIAN 1
#else
#define ST_BIG_ENDIAN 0
#endif

struct fedc_st_file {
  size_t n;
  fedc_st_tensor *tensors; /* header order */
  size_t *by_name;         /* indices into tensors, sorted by name */
  size_t n_meta;
  fedc_st_meta *meta;      /* header order */
  char *strings;           /* names, metadata keys and values */
  float *data;             /* 64-byte aligned; each tensor 64-byte aligned */
  uint8_t *dt;             /* per tensor: its dtype (fedc_st_dtype_code) */
};

/* ---- small helpers ------------------------------------------------------- */

static int oom(void) {
  return fedc_error_set(FEDC_ENOMEM, "safetensors: out of memory");
}

/* Copy n elements of size bytes between a little-endian byte image and
 * host order (the same swap both ways). */
static void copy_le(void *dst, const void *src, size_t n, size_t size) {
  memcpy(dst, src, n * size);
#if ST_BIG_ENDIAN
  uint8_t *d = dst;
  for (size_t i = 0; size > 1 && i < n; i++, d += size)
    for (size_t a = 0, b = size - 1; a < b; a++, b--) {
      uint8_t t = d[a];
      d[a] = d[b];
      d[b] = t;
    }
#endif
}

/* ---- dtypes -------------------------------------------------------------- */

static const struct {
  const char *name;
  size_t size;
} dtypes[FEDC_ST_N_DTYPES] = {
    [FEDC_ST_F32] = {"F32", 4},  [FEDC_ST_U32] = {"U32", 4},
    [FEDC_ST_F16] = {"F16", 2},  [FEDC_ST_BF16] = {"BF16", 2},
    [FEDC_ST_F64] = {"F64", 8},  [FEDC_ST_I64] = {"I64", 8},
    [FEDC_ST_I32] = {"I32", 4},  [FEDC_ST_I16] = {"I16", 2},
    [FEDC_ST_I8] = {"I8", 1},    [FEDC_ST_U8] = {"U8", 1},
    [FEDC_ST_BOOL] = {"BOOL", 1}, [FEDC_ST_U16] = {"U16", 2},
    [FEDC_ST_U64] = {"U64", 8}};

const char *fedc_st_dtype_name(int code) {
  return code >= 0 && code < FEDC_ST_N_DTYPES ? dtypes[code].name : NULL;
}

int fedc_st_dtype_parse(const char *s) {
  for (int i = 0; s && i < FEDC_ST_N_DTYPES; i++)
    if (strcmp(dtypes[i].name, s) == 0) return i;
  return -1;
}

size_t fedc_st_dtype_size(int code) {
  return code >= 0 && code < FEDC_ST_N_DTYPES ? dtypes[code].size : 0;
}


static int utf8_valid(const char *s) {
  const uint8_t *p = (const uint8_t *)s;
  size_t len = strlen(s);
  for (size_t i = 0; i < len;) {
    size_t k = fedc_utf8_seq(p + i, len - i);
    if (k == 0) return 0;
    i += k;
  }
  return 1;
}

/*
 * A printable rendering of a name from outside for an error message: at
 * most 64 bytes, anything but printable ASCII shown as '?', so a hostile
 * name can neither flood nor forge a log line.
 */
typedef struct {
  char s[72];
} shown;

static shown show(const char *name) {
  shown out;
  size_t i = 0;
  for (; name[i] != '\0' && i < 64; i++) {
    unsigned char c = (unsigned char)name[i];
    out.s[i] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
  }
  if (name[i] != '\0') {
    memcpy(out.s + i, "...", 3);
    i += 3;
  }
  out.s[i] = '\0';
  return out;
}

static int cmp_str_ptr(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Find a repeated string among n (sorts a scratch copy of the pointers).
 * Returns FEDC_OK with *dup = NULL when all differ, or FEDC_ENOMEM.
 */
static int find_duplicate(const char **strs, size_t n, const char **dup) {
  *dup = NULL;
  if (n < 2) return FEDC_OK;
  const char **tmp = fedc_malloc_array(n, sizeof *tmp);
  if (tmp == NULL) return oom();
  memcpy(tmp, strs, n * sizeof *tmp);
  qsort(tmp, n, sizeof *tmp, cmp_str_ptr);
  for (size_t i = 1; i < n; i++) {
    if (strcmp(tmp[i - 1], tmp[i]) == 0) {
      *dup = tmp[i];
      break;
    }
  }
  fedc_free(tmp);
  return FEDC_OK;
}

/* Element count of a shape, or -1 on overflow past int64/8 bytes (the
 * widest dtype). */
static int64_t shape_elements(const int64_t *shape, int32_t ndim) {
  uint64_t n = 1;
  const uint64_t limit = (uint64_t)INT64_MAX / 8;
  for (int32_t d = 0; d < ndim; d++) {
    uint64_t v = (uint64_t)shape[d];
    if (v != 0 && n > limit / v) return -1;
    n *= v;
  }
  return (int64_t)n;
}

static void hex_lower(const uint8_t *digest, char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 15];
  }
  hex[SHA_HEX_LEN] = '\0';
}

/* ---- encoding ------------------------------------------------------------ */

/* Appends to buf when it is set; always counts, so one routine both sizes
 * and writes the header. */
typedef struct {
  uint8_t *buf;
  size_t len;
} writer;

static void put(writer *w, const char *s, size_t n) {
  if (w->buf) memcpy(w->buf + w->len, s, n);
  w->len += n;
}

static void put_s(writer *w, const char *s) { put(w, s, strlen(s)); }

static void put_i64(writer *w, int64_t v) {
  char tmp[24];
  int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
  put(w, tmp, (size_t)n);
}

/* A JSON string literal; s is known to be valid UTF-8. */
static void put_json_str(writer *w, const char *s) {
  static const char digits[] = "0123456789abcdef";
  put(w, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char esc[2] = {'\\', (char)*p};
      put(w, esc, 2);
    } else if (*p < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', digits[*p >> 4], digits[*p & 15]};
      put(w, esc, 6);
    } else {
      put(w, (const char *)p, 1);
    }
  }
  put(w, "\"", 1);
}

static void put_header(writer *w, const fedc_st_tensor *t, size_t n,
                       const int64_t *offsets, const fedc_st_meta *meta,
                       size_t n_meta, const char *sha_hex, const uint8_t *dts,
                       int dt_one) {
  put_s(w, "{\"" META_KEY "\":{");
  for (size_t i = 0; i < n_meta; i++) {
    put_json_str(w, meta[i].key);
    put(w, ":", 1);
    put_json_str(w, meta[i].value);
    put(w, ",", 1);
  }
  put_s(w, "\"" SHA_KEY "\":\"");
  put(w, sha_hex, SHA_HEX_LEN);
  put_s(w, "\"}");
  for (size_t i = 0; i < n; i++) {
    put(w, ",", 1);
    put_json_str(w, t[i].name);
    put_s(w, ":{\"dtype\":\"");
    put_s(w, dtypes[dts ? dts[i] : dt_one].name);
    put_s(w, "\",\"shape\":[");
    for (int32_t d = 0; d < t[i].ndim; d++) {
      if (d) put(w, ",", 1);
      put_i64(w, t[i].shape[d]);
    }
    put_s(w, "],\"data_offsets\":[");
    put_i64(w, offsets[i]);
    put(w, ",", 1);
    put_i64(w, offsets[i + 1]);
    put_s(w, "]}");
  }
  put(w, "}", 1);
}

/*
 * Check the caller's tensors and metadata and fill offsets[0..n] (byte
 * offsets of each tensor in the data section; offsets[n] is its size).
 * FEDC_EINVAL with the reason, or FEDC_ENOMEM.
 */
static int check_encode_args(const fedc_st_tensor *t, size_t n,
                             const fedc_st_meta *meta, size_t n_meta,
                             const uint8_t *dts, int dt_one, int64_t *offsets) {
  offsets[0] = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = t[i].name;
    if (name == NULL || name[0] == '\0')
      return fedc_error_set(FEDC_EINVAL, "safetensors: tensor %zu has no name",
                            i);
    if (strlen(name) > NAME_MAX_BYTES)
      return fedc_error_set(FEDC_EINVAL,
                            "safetensors: tensor name '%s' is longer than "
                            "%d bytes", show(name).s, NAME_MAX_BYTES);
    if (!utf8_valid(name))
      return fedc_error_set(FEDC_EINVAL,
                            "safetensors: tensor name '%s' is not valid UTF-8",
                            show(name).s);
    if (strcmp(name, META_KEY) == 0)
      return fedc_error_set(FEDC_EINVAL,
                            "safetensors: tensor name '" META_KEY
                            "' is reserved");
    if (t[i].ndim < 0 || t[i].ndim > FEDC_ST_MAX_DIMS)
      return fedc_error_set(FEDC_EINVAL,
                            "safetensors: tensor '%s' has %d dims; at most %d",
                            show(name).s, (int)t[i].ndim, FEDC_ST_MAX_DIMS);
    for (int32_t d = 0; d < t[i].ndim; d++)
      if (t[i].shape[d] < 0)
        return fedc_error_set(FEDC_EINVAL,
                              "safetensors: tensor '%s' has negative dim %d "
                              "(%lld)", show(name).s, (int)d,
                              (long long)t[i].shape[d]);
    int dt = dts ? dts[i] : dt_one;
    if (dt < 0 || dt >= FEDC_ST_N_DTYPES)
      return fedc_error_set(FEDC_EINVAL, "safetensors: tensor '%s': dtype code %d",
                            show(name).s, dt);
    int64_t size = (int64_t)dtypes[dt].size;
    int64_t elems = shape_elements(t[i].shape, t[i].ndim);
    if (elems < 0 || offsets[i] > INT64_MAX - size * elems)
      return fedc_error_set(FEDC_EINVAL,
                            "safetensors: tensor '%s' is too large",
                            show(name).s);
    if (elems > 0 && t[i].data == NULL)
      return fedc_error_set(FEDC_EINVAL,
                            "safetensors: tensor '%s' has no data",
                            show(name).s);
    offsets[i + 1] = offsets[i] + size * elems;
  }
  for (size_t i = 0; i < n_meta; i++) {
    if (meta[i].key == NULL || meta[i].value == NULL)
      return fedc_error_set(FEDC_EINVAL,
                            "safetensors: metadata entry %zu is NULL", i);
    if (!utf8_valid(meta[i].key) || !utf8_valid(meta[i].value))
      return fedc_error_set(FEDC_EINVAL,
                            "safetensors: metadata '%s' is not valid UTF-8",
                            show(meta[i].key).s);
    if (strcmp(meta[i].key, SHA_KEY) == 0)
      return fedc_error_set(FEDC_EINVAL,
                            "safetensors: metadata key '" SHA_KEY
                            "' is reserved (fedc writes it)");
  }

  /* Duplicates: names among names, keys among keys. */
  size_t most = n > n_meta ? n : n_meta;
  if (most < 2) return FEDC_OK;
  const char **strs = fedc_malloc_array(most, sizeof *strs);
  if (strs == NULL) return oom();
  const char *dup;
  for (size_t i = 0; i < n; i++) strs[i] = t[i].name;
  int rc = find_duplicate(strs, n, &dup);
  if (rc == 0 && dup)
    rc = fedc_error_set(FEDC_EINVAL, "safetensors: duplicate tensor name '%s'",
                        show(dup).s);
  if (rc == 0) {
    for (size_t i = 0; i < n_meta; i++) strs[i] = meta[i].key;
    rc = find_duplicate(strs, n_meta, &dup);
    if (rc == 0 && dup)
      rc = fedc_error_set(FEDC_EINVAL,
                          "safetensors: duplicate metadata key '%s'",
                          show(dup).s);
  }
  fedc_free(strs);
  return rc;
}

/*
 * Encode tensors (in the given order) and metadata, plus "sha256" over the
 * data section, into one new buffer. On success *out (freed with fedc_free)
 * and *out_len are set; on failure they are left NULL/0. Errors:
 * FEDC_EINVAL (bad names, dims, metadata; reason recorded), FEDC_ETOOBIG
 * (a header over FEDC_ST_MAX_HEADER, which decoders would refuse),
 * FEDC_ENOMEM.
 */
static int encode_as(const fedc_st_tensor *tensors, size_t n_tensors,
                     const fedc_st_meta *meta, size_t n_meta, const uint8_t *dts,
                     int dt_one, uint8_t **out, size_t *out_len) {
  if (out == NULL || out_len == NULL)
    return fedc_error_set(FEDC_EINVAL, "safetensors: encode: no output");
  *out = NULL;
  *out_len = 0;
  if ((tensors == NULL && n_tensors > 0) || (meta == NULL && n_meta > 0))
    return fedc_error_set(FEDC_EINVAL, "safetensors: encode: NULL array");
  if (n_tensors > SIZE_MAX / sizeof(int64_t) - 1)
    return fedc_error_set(FEDC_EINVAL, "safetensors: too many tensors");

  int64_t *offsets = fedc_malloc_array(n_tensors + 1, sizeof *offsets);
  if (offsets == NULL) return oom();
  int rc = check_encode_args(tensors, n_tensors, meta, n_meta, dts, dt_one, offsets);
  if (rc) goto done;

  /* Size the header with a placeholder digest (always 64 hex digits). */
  char sha_hex[SHA_HEX_LEN + 1];
  memset(sha_hex, '0', SHA_HEX_LEN);
  sha_hex[SHA_HEX_LEN] = '\0';
  writer w = {NULL, 0};
  put_header(&w, tensors, n_tensors, offsets, meta, n_meta, sha_hex, dts, dt_one);
  size_t hlen = (w.len + 7) & ~(size_t)7;
  uint64_t data_len = (uint64_t)offsets[n_tensors];
  if (hlen > FEDC_ST_MAX_HEADER) {
    rc = fedc_error_set(FEDC_ETOOBIG,
                        "safetensors: header of %zu bytes exceeds %u", hlen,
                        FEDC_ST_MAX_HEADER);
    goto done;
  }
  if (data_len > SIZE_MAX - 8 - hlen) {
    rc = fedc_error_set(FEDC_ETOOBIG, "safetensors: data too large");
    goto done;
  }
  size_t total = 8 + hlen + (size_t)data_len;
  uint8_t *buf = fedc_malloc(total);
  if (buf == NULL) {
    rc = oom();
    goto done;
  }

  uint8_t *data = buf + 8 + hlen;
  for (size_t i = 0; i < n_tensors; i++) {
    size_t bytes = (size_t)(offsets[i + 1] - offsets[i]);
    size_t size = dtypes[dts ? dts[i] : dt_one].size;
    if (bytes) copy_le(data + offsets[i], tensors[i].data, bytes / size, size);
  }
  uint8_t digest[32];
  int hrc = fedc__sha256(data, (size_t)data_len, digest);
  if (hrc != 0) {
    fedc_free(buf);
    return hrc;
  }
  hex_lower(digest, sha_hex);

  fedc_le_put64(buf, hlen);
  w.buf = buf + 8;
  w.len = 0;
  put_header(&w, tensors, n_tensors, offsets, meta, n_meta, sha_hex, dts, dt_one);
  memset(buf + 8 + w.len, ' ', hlen - w.len);
  *out = buf;
  *out_len = total;
done:
  fedc_free(offsets);
  return rc;
}

int fedc_st_encode(const fedc_st_tensor *tensors, size_t n_tensors,
                   const fedc_st_meta *meta, size_t n_meta, uint8_t **out,
                   size_t *out_len) {
  return encode_as(tensors, n_tensors, meta, n_meta, NULL, FEDC_ST_F32, out, out_len);
}

int fedc_st_encode_typed(const fedc_st_tensor *tensors, const uint8_t *dts,
                         size_t n_tensors, const fedc_st_meta *meta, size_t n_meta,
                         uint8_t **out, size_t *out_len) {
  if (dts == NULL && n_tensors > 0)
    return fedc_error_set(FEDC_EINVAL, "safetensors: encode: no dtypes");
  return encode_as(tensors, n_tensors, meta, n_meta, dts, FEDC_ST_F32, out, out_len);
}

/*
 * The header (its 8-byte length, the JSON, the padding) of the container
 * fedc_st_encode_typed would make of t[0..n), for a data section that is
 * already laid out: tensor i's bytes at data + its offset, in order, as on
 * a little-endian host (t[i].data must point there, else FEDC_EINVAL). The
 * sha256 is computed over data. So a container whose metadata changes is
 * encoded again without a copy of its data (*hdr: fedc_free).
 */
int fedc_st_encode_header_typed(const fedc_st_tensor *t, const uint8_t *dts, size_t n,
                                const fedc_st_meta *meta, size_t n_meta,
                                const uint8_t *data, size_t data_len, uint8_t **hdr,
                                size_t *hdr_len) {
  if (hdr == NULL || hdr_len == NULL || (t == NULL && n > 0) || dts == NULL ||
      (meta == NULL && n_meta > 0) || (data == NULL && data_len > 0) ||
      n > SIZE_MAX / sizeof(int64_t) - 1 || ST_BIG_ENDIAN)
    return fedc_error_set(FEDC_EINVAL, "safetensors: encode header: bad arguments");
  *hdr = NULL;
  *hdr_len = 0;
  int64_t *offsets = fedc_malloc_array(n + 1, sizeof *offsets);
  if (offsets == NULL) return oom();
  int rc = check_encode_args(t, n, meta, n_meta, dts, FEDC_ST_F32, offsets);
  if (rc == 0 && (uint64_t)offsets[n] != (uint64_t)data_len)
    rc = fedc_error_set(FEDC_EINVAL, "safetensors: encode header: the tensors cover %lld "
                        "bytes, the data %zu", (long long)offsets[n], data_len);
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (offsets[i + 1] > offsets[i] && (const uint8_t *)t[i].data != data + offsets[i])
      rc = fedc_error_set(FEDC_EINVAL, "safetensors: encode header: tensor %zu is not at "
                          "its offset in the data", i);
  char sha_hex[SHA_HEX_LEN + 1];
  uint8_t digest[32];
  if (rc == 0) rc = fedc__sha256(data, data_len, digest);
  if (rc == 0) {
    hex_lower(digest, sha_hex);
    writer w = {NULL, 0};
    put_header(&w, t, n, offsets, meta, n_meta, sha_hex, dts, FEDC_ST_F32);
    size_t hlen = (w.len + 7) & ~(size_t)7;
    uint8_t *buf = hlen > FEDC_ST_MAX_HEADER ? NULL : fedc_malloc(8 + hlen);
    if (hlen > FEDC_ST_MAX_HEADER)
      rc = fedc_error_set(FEDC_ETOOBIG, "safetensors: header of %zu bytes exceeds %u", hlen,
                          FEDC_ST_MAX_HEADER);
    else if (buf == NULL)
      rc = oom();
    if (rc == 0) {
      fedc_le_put64(buf, hlen);
      w.buf = buf + 8;
      w.len = 0;
      put_header(&w, t, n, offsets, meta, n_meta, sha_hex, dts, FEDC_ST_F32);
      memset(buf + 8 + w.len, ' ', hlen - w.len);
      *hdr = buf;
      *hdr_len = 8 + hlen;
    }
  }
  fedc_free(offsets);
  return rc;
}

/* One 1-D U32 tensor: the words travel through the same 4-byte
 * little-endian path as floats (copy_le32 moves bytes, not values). */
int fedc_st_encode_u32(const char *name, const uint32_t *words, size_t n,
                       const fedc_st_meta *meta, size_t n_meta, uint8_t **out,
                       size_t *out_len) {
  if (n > (size_t)INT64_MAX / 4)
    return fedc_error_set(FEDC_EINVAL, "safetensors: tensor too large");
  fedc_st_tensor t = {name, 1, {(int64_t)n, 0, 0, 0}, (const float *)(const void *)words};
  return encode_as(&t, 1, meta, n_meta, NULL, FEDC_ST_U32, out, out_len);
}

/* ---- writing a file ------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/* fsync the directory holding path, so that the rename itself is durable.
 * Filesystems that cannot sync a directory (EINVAL) are let through. */
static int sync_parent(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  if (slash == NULL) {
    dir = fedc_strdup(".");
  } else {
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    dir = fedc_malloc(n + 1);
    if (dir) {
      memcpy(dir, path, n);
      dir[n] = '\0';
    }
  }
  if (dir == NULL) return oom();
  int rc = 0;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
    rc = fedc_error_set(FEDC_EIO, "safetensors: cannot sync directory '%s': %s",
                        dir, strerror(errno));
  if (fd >= 0) close(fd);
  fedc_free(dir);
  return rc;
}

/*
 * Encode and replace path atomically: write "path.tmp.<pid>", fsync it,
 * rename it over path, fsync the directory. A reader sees the old file or
 * the new one, never a part. On failure the temp file is removed. Errors:
 * those of fedc_st_encode, FEDC_EIO naming the path and the system's reason
 * (if only the final directory fsync fails, the new file is in place but
 * may not survive a power cut).
 */
int fedc_st_write_file(const char *path, const fedc_st_tensor *tensors,
                       size_t n_tensors, const fedc_st_meta *meta,
                       size_t n_meta) {
  if (path == NULL || path[0] == '\0')
    return fedc_error_set(FEDC_EINVAL, "safetensors: write: no path");
  uint8_t *buf;
  size_t len;
  int rc = fedc_st_encode(tensors, n_tensors, meta, n_meta, &buf, &len);
  if (rc) return rc;

  size_t tlen = strlen(path) + 32;
  char *tmp = fedc_malloc(tlen);
  if (tmp == NULL) {
    fedc_free(buf);
    return oom();
  }
  snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());

  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                0644);
  if (fd < 0) {
    rc = fedc_error_set(FEDC_EIO, "safetensors: cannot create '%s': %s", tmp,
                        strerror(errno));
    goto done;
  }
  if (write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
    rc = fedc_error_set(FEDC_EIO, "safetensors: cannot write '%s': %s", tmp,
                        strerror(errno));
    close(fd);
    unlink(tmp);
    goto done;
  }
  if (close(fd) != 0) {
    rc = fedc_error_set(FEDC_EIO, "safetensors: cannot close '%s': %s", tmp,
                        strerror(errno));
    unlink(tmp);
    goto done;
  }
  if (rename(tmp, path) != 0) {
    rc = fedc_error_set(FEDC_EIO, "safetensors: cannot rename '%s' to '%s': %s",
                        tmp, path, strerror(errno));
    unlink(tmp);
    goto done;
  }
  rc = sync_parent(path);
done:
  fedc_free(tmp);
  fedc_free(buf);
  return rc;
}

/* ---- decoding ------------------------------------------------------------ */

/*
 * What cJSON lets through but a safetensors header may not contain, checked
 * on the raw bytes: invalid UTF-8, control bytes, "\u0000" (it would cut a
 * name short), numbers that are not plain integers (1.0, 1e3, 01, +1),
 * nesting deeper than MAX_DEPTH, arrays longer than MAX_ARRAY_LEN.
 */
static int prescan(const uint8_t *h, size_t n) {
  int depth = 0;
  char kind[MAX_DEPTH];    /* '{' or '[' per open container */
  size_t count[MAX_DEPTH]; /* commas seen in each */
  size_t i = 0;
  while (i < n) {
    uint8_t c = h[i];
    if (c == '"') {
      i++;
      for (;;) {
        if (i >= n)
          return fedc_error_set(FEDC_EFORMAT,
                                "safetensors: header has an unterminated "
                                "string");
        c = h[i];
        if (c == '"') break;
        if (c < 0x20)
          return fedc_error_set(FEDC_EFORMAT,
                                "safetensors: header has control byte 0x%02x "
                                "in a string at offset %zu", c, i);
        if (c == '\\') {
          if (i + 5 < n && memcmp(h + i + 1, "u0000", 5) == 0)
            return fedc_error_set(FEDC_EFORMAT,
                                  "safetensors: header has \\u0000 in a string "
                                  "at offset %zu", i);
          i += 2; /* the escaped byte is ASCII in any valid escape */
          continue;
        }
        size_t k = fedc_utf8_seq(h + i, n - i);
        if (k == 0)
          return fedc_error_set(FEDC_EFORMAT,
                                "safetensors: header is not valid UTF-8 at "
                                "offset %zu", i);
        i += k;
      }
      i++;
      continue;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      size_t s = i;
      while (i < n && (h[i] == '-' || h[i] == '+' || h[i] == '.' ||
                       h[i] == 'e' || h[i] == 'E' ||
                       (h[i] >= '0' && h[i] <= '9')))
        i++;
      size_t p = s + (h[s] == '-');
      int ok = p < i && (h[p] != '0' || p + 1 == i);
      for (size_t q = p; ok && q < i; q++) ok = h[q] >= '0' && h[q] <= '9';
      if (!ok)
        return fedc_error_set(FEDC_EFORMAT,
                              "safetensors: header number '%.*s' at offset "
                              "%zu is not a plain integer",
                              (int)(i - s > 32 ? 32 : i - s),
                              (const char *)h + s, s);
      continue;
    }
    if (c == '{' || c == '[') {
      if (depth == MAX_DEPTH)
        return fedc_error_set(FEDC_EFORMAT,
                              "safetensors: header nests deeper than %d at "
                              "offset %zu", MAX_DEPTH, i);
      kind[depth] = (char)c;
      count[depth] = 0;
      depth++;
    } else if (c == '}' || c == ']') {
      if (depth > 0) depth--;
    } else if (c == ',') {
      if (depth > 0 && kind[depth - 1] == '[' &&
          ++count[depth - 1] >= MAX_ARRAY_LEN)
        return fedc_error_set(FEDC_EFORMAT,
                              "safetensors: header has an array longer than "
                              "%d at offset %zu", MAX_ARRAY_LEN, i);
    } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
      return fedc_error_set(FEDC_EFORMAT,
                            "safetensors: header has control byte 0x%02x at "
                            "offset %zu", c, i);
    } else if (c >= 0x80) {
      return fedc_error_set(FEDC_EFORMAT,
                            "safetensors: header has byte 0x%02x outside a "
                            "string at offset %zu", c, i);
    }
    i++;
  }
  return FEDC_OK;
}

/* Parse an integer JSON value in [0, 2^53) into *v; 0 or -1. */
static int json_uint(const cJSON *item, int64_t *v) {
  if (!cJSON_IsNumber(item)) return -1;
  double d = item->valuedouble;
  if (!(d >= 0.0 && d <= MAX_JSON_INT) || d != (double)(int64_t)d) return -1;
  *v = (int64_t)d;
  return 0;
}

static int json_is_negative_int(const cJSON *item) {
  return cJSON_IsNumber(item) && item->valuedouble < 0.0;
}

typedef struct {
  const char *name;  /* points into the cJSON tree */
  int32_t ndim;
  int64_t shape[FEDC_ST_MAX_DIMS];
  int64_t begin, end;
  size_t index;      /* position in header order */
  int dt;            /* dtype: F32, U32 with FEDC_ST_ALLOW_U32, any with _ANY */
} entry;

static int cmp_entry_offset(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

/* Validate one tensor entry of the header into *e. FEDC_EFORMAT. */
static int parse_entry(const cJSON *item, unsigned flags, entry *e) {
  const char *nm = item->string;
  size_t nlen = strlen(nm);
  if (nlen == 0)
    return fedc_error_set(FEDC_EFORMAT, "safetensors: tensor with empty name");
  if (nlen > NAME_MAX_BYTES)
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor name '%s' is longer than %d "
                          "bytes", show(nm).s, NAME_MAX_BYTES);
  if (!cJSON_IsObject(item))
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor '%s': entry is not an object",
                          show(nm).s);
  const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
  for (const cJSON *f = item->child; f; f = f->next) {
    const cJSON **slot = strcmp(f->string, "dtype") == 0   ? &dtype
                         : strcmp(f->string, "shape") == 0 ? &shape
                         : strcmp(f->string, "data_offsets") == 0 ? &offs
                                                                  : NULL;
    if (slot == NULL)
      return fedc_error_set(FEDC_EFORMAT,
                            "safetensors: tensor '%s': unknown field '%s'",
                            show(nm).s, show(f->string).s);
    if (*slot)
      return fedc_error_set(FEDC_EFORMAT,
                            "safetensors: tensor '%s': field '%s' repeated",
                            show(nm).s, f->string);
    *slot = f;
  }
  if (!dtype || !shape || !offs)
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor '%s': missing field '%s'",
                          show(nm).s,
                          !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

  if (!cJSON_IsString(dtype))
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor '%s': dtype is not a string",
                          show(nm).s);
  e->dt = fedc_st_dtype_parse(dtype->valuestring);
  int allowed = e->dt == FEDC_ST_F32 ||
                (e->dt == FEDC_ST_U32 && (flags & FEDC_ST_ALLOW_U32)) ||
                (e->dt >= 0 && (flags & FEDC_ST_ALLOW_ANY));
  if (!allowed) {
    static const char *const known[] = {
        "BOOL", "U8",  "I8",  "U16", "I16",  "F16",     "BF16",
        "U32",  "I32", "U64", "I64", "F64",  "F8_E4M3", "F8_E5M2",
        "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64", "I4", "U4"};
    int is_known = 0;
    for (size_t k = 0; k < sizeof known / sizeof *known; k++)
      if (strcmp(dtype->valuestring, known[k]) == 0) is_known = 1;
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor '%s': dtype %s %s (fedc reads "
                          "%s)", show(nm).s,
                          show(dtype->valuestring).s,
                          is_known ? "not supported" : "unknown",
                          (flags & FEDC_ST_ALLOW_ANY)
                              ? "F64, F32, F16, BF16, the integers and BOOL"
                              : "F32 only");
  }

  if (!cJSON_IsArray(shape))
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor '%s': shape is not an array",
                          show(nm).s);
  int ndim = cJSON_GetArraySize(shape);
  if (ndim > FEDC_ST_MAX_DIMS)
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor '%s' has %d dims; at most %d",
                          show(nm).s, ndim, FEDC_ST_MAX_DIMS);
  e->name = nm;
  e->ndim = ndim;
  int d = 0;
  for (const cJSON *v = shape->child; v; v = v->next, d++) {
    if (json_uint(v, &e->shape[d]) != 0)
      return fedc_error_set(FEDC_EFORMAT,
                            "safetensors: tensor '%s': shape[%d] is %s",
                            show(nm).s, d,
                            json_is_negative_int(v)
                                ? "a negative dim"
                                : "not a non-negative integer below 2^53");
  }
  int64_t elems = shape_elements(e->shape, e->ndim);
  if (elems < 0)
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor '%s': element count of shape "
                          "overflows", show(nm).s);

  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
      json_uint(offs->child, &e->begin) != 0 ||
      json_uint(offs->child->next, &e->end) != 0)
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor '%s': data_offsets is not two "
                          "non-negative integers", show(nm).s);
  if (e->begin > e->end || (uint64_t)(e->end - e->begin) !=
                               (uint64_t)elems * dtypes[e->dt].size) {
    char dims[96];
    size_t k = 0;
    dims[0] = '\0';
    for (int j = 0; j < e->ndim; j++)
      k += (size_t)snprintf(dims + k, sizeof dims - k, "%s%lld", j ? "," : "",
                            (long long)e->shape[j]);
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor '%s': data_offsets [%lld,%lld] "
                          "do not match shape [%s] of %s", show(nm).s,
                          (long long)e->begin, (long long)e->end, dims,
                          dtypes[e->dt].name);
  }
  return FEDC_OK;
}

/* Check and normalise the metadata object; counts its entries. */
static int check_meta(const cJSON *m, const uint8_t *data, size_t data_len,
                      unsigned flags, size_t *n_meta) {
  if (!cJSON_IsObject(m))
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: " META_KEY " is not an object");
  size_t n = 0;
  const cJSON *sha = NULL;
  for (const cJSON *v = m->child; v; v = v->next, n++) {
    if (!cJSON_IsString(v))
      return fedc_error_set(FEDC_EFORMAT,
                            "safetensors: metadata '%s' is not a string",
                            show(v->string).s);
    if (strcmp(v->string, SHA_KEY) == 0) sha = v;
  }
  *n_meta = n;
  if (sha == NULL) return FEDC_OK;
  const char *want = sha->valuestring;
  if (strlen(want) != SHA_HEX_LEN)
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: metadata sha256 is not %d hex digits",
                          SHA_HEX_LEN);
  if (flags & FEDC_ST_HEADER_ONLY) return FEDC_OK; /* the data is not in yet */
  uint8_t digest[32];
  char got[SHA_HEX_LEN + 1];
  /* in slices, each dropped from the process once hashed when data is a
   * registered file mapping (base/mapped.h: a large update's spool) */
  fedc__sha256_ctx h;
  int hrc = fedc__sha256_begin(&h);
  for (size_t at = 0; hrc == 0 && at < data_len; at += HASH_SLICE) {
    size_t k = data_len - at < HASH_SLICE ? data_len - at : HASH_SLICE;
    hrc = fedc__sha256_update(&h, data + at, k);
    fedc__mapped_drop(data + at, k);
  }
  if (hrc == 0) hrc = fedc__sha256_finish(&h, digest);
  fedc__sha256_free(&h);
  if (hrc != 0) return hrc;
  hex_lower(digest, got);
  for (int i = 0; i < SHA_HEX_LEN; i++) {
    char c = want[i];
    if (c >= 'A' && c <= 'F') c = (char)(c - 'A' + 'a');
    if (c != got[i])
      return fedc_error_set(FEDC_ECHECKSUM,
                            "safetensors: sha256 of the data section is %s, "
                            "metadata says %s", got, show(want).s);
  }
  return FEDC_OK;
}

/*
 * Look for two equal keys among the root's children (tensor names and
 * "__metadata__") and among the metadata's keys. cJSON keeps both copies
 * of a repeated key; we refuse them.
 */
static int check_duplicates(const cJSON *root, size_t n_root,
                            const cJSON *m, size_t n_meta) {
  size_t most = n_root > n_meta ? n_root : n_meta;
  if (most < 2) return FEDC_OK;
  const char **strs = fedc_malloc_array(most, sizeof *strs);
  if (strs == NULL) return oom();
  size_t k = 0;
  for (const cJSON *c = root->child; c; c = c->next) strs[k++] = c->string;
  const char *dup;
  int rc = find_duplicate(strs, k, &dup);
  if (rc == 0 && dup)
    rc = fedc_error_set(FEDC_EFORMAT, "safetensors: duplicate key '%s' in "
                        "header", show(dup).s);
  if (rc == 0 && m) {
    k = 0;
    for (const cJSON *c = m->child; c; c = c->next) strs[k++] = c->string;
    rc = find_duplicate(strs, k, &dup);
    if (rc == 0 && dup)
      rc = fedc_error_set(FEDC_EFORMAT, "safetensors: duplicate metadata key "
                          "'%s'", show(dup).s);
  }
  fedc_free(strs);
  return rc;
}

/* Orders pointers to tensors by name (for the fedc_st_find index). */
static int cmp_tensor_name(const void *a, const void *b) {
  return strcmp((*(const fedc_st_tensor *const *)a)->name,
                (*(const fedc_st_tensor *const *)b)->name);
}

static char *copy_str(char **pos, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = *pos;
  memcpy(d, s, n);
  *pos += n;
  return d;
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/*
 * Build the decoded file from the checked tree: one block of strings, one
 * aligned block of data with each tensor at a 64-byte boundary, and a
 * name index for fedc_st_find. FEDC_ENOMEM; nothing is left allocated then.
 */
static int build(const cJSON *m, const entry *ents, size_t n, size_t n_meta,
                 const uint8_t *data, unsigned flags, fedc_st_file **out) {
  size_t str_bytes = 0, data_bytes = 0;
  /* FEDC_ST_BORROW: views into data when the host order is the file's and
   * every tensor is aligned for its elements */
  int borrow = (flags & FEDC_ST_BORROW) && !ST_BIG_ENDIAN;
  for (size_t i = 0; i < n; i++) {
    str_bytes += strlen(ents[i].name) + 1;
    data_bytes += round64((size_t)(ents[i].end - ents[i].begin));
    size_t size = dtypes[ents[i].dt].size;
    if ((uintptr_t)(data + ents[i].begin) % (size < 8 ? size : 8) != 0) borrow = 0;
  }
  if (flags & FEDC_ST_HEADER_ONLY) borrow = 1; /* where the data would be; never read */
  if (borrow) data_bytes = 0;
  if (m)
    for (const cJSON *v = m->child; v; v = v->next)
      str_bytes += strlen(v->string) + strlen(v->valuestring) + 2;

  fedc_st_file *f = fedc_calloc(1, sizeof *f);
  if (f == NULL) return oom();
  f->n = n;
  f->n_meta = n_meta;
  f->tensors = fedc_calloc(n ? n : 1, sizeof *f->tensors);
  f->by_name = fedc_malloc_array(n ? n : 1, sizeof *f->by_name);
  f->meta = fedc_calloc(n_meta ? n_meta : 1, sizeof *f->meta);
  f->strings = fedc_malloc(str_bytes ? str_bytes : 1);
  f->data = fedc_malloc_aligned(data_bytes ? data_bytes : 64);
  f->dt = fedc_calloc(n ? n : 1, 1);
  const fedc_st_tensor **idx = fedc_malloc_array(n ? n : 1, sizeof *idx);
  if (!f->tensors || !f->by_name || !f->meta || !f->strings || !f->data ||
      !f->dt || !idx) {
    fedc_free(idx);
    fedc_st_free(f);
    return oom();
  }

  char *pos = f->strings;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    fedc_st_tensor *t = &f->tensors[i];
    t->name = copy_str(&pos, ents[i].name);
    t->ndim = ents[i].ndim;
    memcpy(t->shape, ents[i].shape, sizeof t->shape);
    size_t bytes = (size_t)(ents[i].end - ents[i].begin);
    float *dst = f->data + at / 4;
    size_t size = dtypes[ents[i].dt].size;
    if (borrow) {
      t->data = (const float *)(const void *)(data + ents[i].begin);
    } else {
      copy_le(dst, data + ents[i].begin, bytes / size, size);
      t->data = dst;
      at += round64(bytes);
    }
    f->dt[i] = (uint8_t)ents[i].dt;
    idx[i] = t;
  }
  size_t k = 0;
  if (m)
    for (const cJSON *v = m->child; v; v = v->next, k++) {
      f->meta[k].key = copy_str(&pos, v->string);
      f->meta[k].value = copy_str(&pos, v->valuestring);
    }
  /* The names are unique, so this order is total. */
  qsort(idx, n, sizeof *idx, cmp_tensor_name);
  for (size_t i = 0; i < n; i++) f->by_name[i] = (size_t)(idx[i] - f->tensors);
  fedc_free(idx);
  *out = f;
  return FEDC_OK;
}

/*
 * Decode and validate buf; on success *out owns copies of everything.
 * Errors: FEDC_EFORMAT (reason recorded), FEDC_ETOOBIG (header over
 * FEDC_ST_MAX_HEADER), FEDC_ECHECKSUM, FEDC_ENOMEM, FEDC_EINVAL (NULLs).
 */
int fedc_st_decode(const uint8_t *buf, size_t len, fedc_st_file **out) {
  return fedc_st_decode_ex(buf, len, 0, out);
}

int fedc_st_decode_ex(const uint8_t *buf, size_t len, unsigned flags,
                      fedc_st_file **out) {
  if (out == NULL)
    return fedc_error_set(FEDC_EINVAL, "safetensors: decode: no output");
  *out = NULL;
  if (buf == NULL && len > 0)
    return fedc_error_set(FEDC_EINVAL, "safetensors: decode: NULL buffer");
  if (len < 8)
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: %zu bytes is shorter than the 8-byte "
                          "header length", len);
  uint64_t hlen = fedc_le_get64(buf);
  if (hlen > FEDC_ST_MAX_HEADER)
    return fedc_error_set(FEDC_ETOOBIG,
                          "safetensors: header length %llu exceeds the limit "
                          "of %u bytes", (unsigned long long)hlen,
                          FEDC_ST_MAX_HEADER);
  if (hlen > len - 8)
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: header length %llu exceeds the %zu "
                          "bytes after it (truncated?)",
                          (unsigned long long)hlen, len - 8);
  const uint8_t *h = buf + 8;
  const uint8_t *data = h + hlen;
  size_t data_len = len - 8 - (size_t)hlen;
  if (hlen == 0)
    return fedc_error_set(FEDC_EFORMAT, "safetensors: header is empty");
  if (h[0] != '{')
    return fedc_error_set(FEDC_EFORMAT,
                          "safetensors: header does not start with '{'");
  int rc = prescan(h, (size_t)hlen);
  if (rc) return rc;

  /* A NUL-terminated copy: cJSON then cannot read past the header. */
  char *text = fedc_malloc((size_t)hlen + 1);
  if (text == NULL) return oom();
  memcpy(text, h, (size_t)hlen);
  text[hlen] = '\0';
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
  entry *ents = NULL;
  if (root == NULL) {
    /* cJSON says NULL for malformed text and for want of memory alike:
     * malformed text fails again, a passing allocation failure does not,
     * and one that lasts shows in a block of the header's size */
    root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
    if (root == NULL) {
      void *probe = malloc((size_t)hlen + 64);
      rc = probe == NULL ? oom()
                         : fedc_error_set(FEDC_EFORMAT,
                                          "safetensors: header is not valid JSON");
      free(probe);
      goto done;
    }
  }
  for (const char *p = end; p < text + hlen; p++) {
    if (*p != ' ') {
      rc = fedc_error_set(FEDC_EFORMAT,
                          "safetensors: header has byte 0x%02x after the JSON "
                          "object at offset %zu (only spaces may pad it)",
                          (unsigned char)*p, (size_t)(p - text));
      goto done;
    }
  }
  if (!cJSON_IsObject(root)) {
    rc = fedc_error_set(FEDC_EFORMAT,
                        "safetensors: header is not a JSON object");
    goto done;
  }

  size_t n_root = 0, n = 0, n_meta = 0;
  const cJSON *m = NULL;
  for (const cJSON *c = root->child; c; c = c->next) {
    n_root++;
    if (strcmp(c->string, META_KEY) == 0)
      m = c;
    else
      n++;
  }
  rc = check_duplicates(root, n_root, m && cJSON_IsObject(m) ? m : NULL,
                        m && cJSON_IsObject(m) ? (size_t)cJSON_GetArraySize(m)
                                               : 0);
  if (rc) goto done;

  ents = fedc_calloc(n ? n : 1, sizeof *ents);
  if (ents == NULL) {
    rc = oom();
    goto done;
  }
  size_t k = 0;
  for (const cJSON *c = root->child; c; c = c->next) {
    if (c == m) continue;
    rc = parse_entry(c, flags, &ents[k]);
    if (rc) goto done;
    ents[k].index = k;
    k++;
  }

  /* Contiguous from 0, no overlap, no gap, ending at the data's end. */
  qsort(ents, n, sizeof *ents, cmp_entry_offset);
  int64_t expect = 0;
  for (size_t i = 0; i < n; i++) {
    if (ents[i].begin != expect) {
      rc = fedc_error_set(FEDC_EFORMAT,
                          "safetensors: tensor '%s': data_offsets begin at "
                          "%lld, expected %lld (%s)", show(ents[i].name).s,
                          (long long)ents[i].begin, (long long)expect,
                          ents[i].begin < expect ? "overlapping tensors"
                                                 : "gap between tensors");
      goto done;
    }
    expect = ents[i].end;
  }
  if ((uint64_t)expect != data_len) {
    rc = fedc_error_set(FEDC_EFORMAT,
                        "safetensors: tensors cover %lld bytes but the data "
                        "section has %zu (%s)", (long long)expect, data_len,
                        (uint64_t)expect < data_len ? "trailing bytes"
                                                    : "truncated data");
    goto done;
  }
  /* Back to header order for the result. */
  entry *ordered = fedc_malloc_array(n ? n : 1, sizeof *ordered);
  if (ordered == NULL) {
    rc = oom();
    goto done;
  }
  for (size_t i = 0; i < n; i++) ordered[ents[i].index] = ents[i];
  fedc_free(ents);
  ents = ordered;

  if (m) {
    rc = check_meta(m, data, data_len, flags, &n_meta);
    if (rc) goto done;
  }
  rc = build(m, ents, n, n_meta, data, flags, out);
done:
  fedc_free(ents);
  cJSON_Delete(root);
  fedc_free(text);
  return rc;
}

/*
 * Read and decode a whole file (at most 4 GiB). Errors: FEDC_EIO naming
 * the path, FEDC_ETOOBIG, and those of fedc_st_decode, whose message is
 * prefixed with the path.
 */
int fedc_st_read_file(const char *path, fedc_st_file **out) {
  return fedc_st_read_file_ex(path, 0, out);
}

int fedc_st_read_file_ex(const char *path, unsigned flags, fedc_st_file **out) {
  if (out == NULL || path == NULL)
    return fedc_error_set(FEDC_EINVAL, "safetensors: read: NULL argument");
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fedc_error_set(FEDC_EIO, "safetensors: cannot open '%s': %s", path,
                          strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int rc = fedc_error_set(FEDC_EIO, "safetensors: cannot stat '%s': %s",
                            path, strerror(errno));
    close(fd);
    return rc;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return fedc_error_set(FEDC_EIO, "safetensors: '%s' is not a regular file",
                          path);
  }
  if ((uint64_t)st.st_size > MAX_FILE_BYTES ||
      (uint64_t)st.st_size > SIZE_MAX) {
    close(fd);
    return fedc_error_set(FEDC_ETOOBIG,
                          "safetensors: '%s' has %lld bytes; the limit is "
                          "4 GiB", path, (long long)st.st_size);
  }
  size_t size = (size_t)st.st_size;
  uint8_t *buf = fedc_malloc(size);
  if (buf == NULL) {
    close(fd);
    return oom();
  }
  size_t got = 0;
  while (got < size) {
    ssize_t k = read(fd, buf + got, size - got > (1u << 30) ? (1u << 30)
                                                            : size - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      int rc = fedc_error_set(FEDC_EIO, "safetensors: cannot read '%s': %s",
                              path, k < 0 ? strerror(errno)
                                          : "file shrank while reading");
      close(fd);
      fedc_free(buf);
      return rc;
    }
    got += (size_t)k;
  }
  close(fd);
  int rc = fedc_st_decode_ex(buf, size, flags, out);
  fedc_free(buf);
  if (rc) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fedc_error_msg());
    fedc_error_set(rc, "%s: %s", path, msg);
  }
  return rc;
}

void fedc_st_free(fedc_st_file *f) {
  if (f == NULL) return;
  fedc_free(f->tensors);
  fedc_free(f->by_name);
  fedc_free(f->meta);
  fedc_free(f->strings);
  fedc_free_aligned(f->data);
  fedc_free(f->dt);
  fedc_free(f);
}

/* ---- accessors ----------------------------------------------------------- */

size_t fedc_st_count(const fedc_st_file *f) { return f ? f->n : 0; }

/* Out of range gives a zeroed view (name NULL). */
void fedc_st_get(const fedc_st_file *f, size_t i, fedc_st_tensor *out) {
  if (f == NULL || i >= f->n) {
    memset(out, 0, sizeof *out);
    return;
  }
  *out = f->tensors[i];
}

int fedc_st_find(const fedc_st_file *f, const char *name,
                 fedc_st_tensor *out) {
  if (f && name) {
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      const fedc_st_tensor *t = &f->tensors[f->by_name[mid]];
      int c = strcmp(name, t->name);
      if (c == 0) {
        if (out) *out = *t;
        return FEDC_OK;
      }
      if (c < 0)
        hi = mid;
      else
        lo = mid + 1;
    }
  }
  return fedc_error_set(FEDC_ENOTFOUND, "safetensors: no tensor '%s'",
                        name ? show(name).s : "(null)");
}

const char *fedc_st_meta_get(const fedc_st_file *f, const char *key) {
  if (f == NULL || key == NULL) return NULL;
  for (size_t i = 0; i < f->n_meta; i++)
    if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
  return NULL;
}

size_t fedc_st_meta_count(const fedc_st_file *f) { return f ? f->n_meta : 0; }

const char *fedc_st_meta_key(const fedc_st_file *f, size_t i) {
  return f && i < f->n_meta ? f->meta[i].key : NULL;
}

const char *fedc_st_dtype(const fedc_st_file *f, size_t i) {
  if (f == NULL || i >= f->n) return NULL;
  return dtypes[f->dt[i]].name;
}

int fedc_st_dtype_at(const fedc_st_file *f, size_t i) {
  if (f == NULL || i >= f->n) return -1;
  return f->dt[i];
}

int fedc_st_find_u32(const fedc_st_file *f, const char *name,
                     const uint32_t **words, size_t *n) {
  fedc_st_tensor t;
  int rc = fedc_st_find(f, name, &t);
  if (rc != 0) return rc;
  size_t i;
  for (i = 0; i < f->n; i++)
    if (strcmp(f->tensors[i].name, t.name) == 0) break;
  if (f->dt[i] != FEDC_ST_U32)
    return fedc_error_set(FEDC_EUNSUPPORTED, "safetensors: tensor '%s' is %s, not U32",
                          show(name).s, dtypes[f->dt[i]].name);
  int64_t count = 1;
  for (int32_t d = 0; d < t.ndim; d++) count *= t.shape[d];
  *words = (const uint32_t *)(const void *)t.data;
  *n = (size_t)count;
  return FEDC_OK;
}

/*
 * The data section of a fedc container rewritten in place (a large model's
 * next values computed into its served bytes): hash it again and write the
 * new digest over the old one in the header, the same 64 hex digits at the
 * same place. The header must be fedc's own (its "sha256" key written as
 * fedc_st_encode writes it).
 */
int fedc__st_rehash(uint8_t *buf, size_t len) {
  static const char key[] = "\"" SHA_KEY "\":\"";
  if (buf == NULL || len < 8) return fedc_error_set(FEDC_EFORMAT, "safetensors: no container");
  uint64_t hlen = fedc_le_get64(buf);
  if (hlen > len - 8) return fedc_error_set(FEDC_EFORMAT, "safetensors: truncated header");
  char *h = (char *)buf + 8, *at = NULL;
  for (size_t i = 0; i + sizeof key - 1 + SHA_HEX_LEN <= hlen && at == NULL; i++)
    if (memcmp(h + i, key, sizeof key - 1) == 0) at = h + i + sizeof key - 1;
  if (at == NULL) return fedc_error_set(FEDC_EFORMAT, "safetensors: no sha256 to rewrite");
  uint8_t digest[32];
  char hex[SHA_HEX_LEN + 1];
  const uint8_t *data = buf + 8 + hlen;
  size_t data_len = len - 8 - (size_t)hlen;
  fedc__sha256_ctx ctx;
  int rc = fedc__sha256_begin(&ctx);
  for (size_t k = 0; rc == 0 && k < data_len; k += HASH_SLICE)
    rc = fedc__sha256_update(&ctx, data + k, data_len - k < HASH_SLICE ? data_len - k : HASH_SLICE);
  if (rc == 0) rc = fedc__sha256_finish(&ctx, digest);
  fedc__sha256_free(&ctx);
  if (rc != 0) return rc;
  hex_lower(digest, hex);
  memcpy(at, hex, SHA_HEX_LEN);
  return 0;
}
