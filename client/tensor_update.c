/*
 * tensor_update.c - safetensors containers of any dtype, as a tensor job's
 * client handles them (client.h): the round's global model and a trainer's
 * update are read as views (the header parsed and checked, the data left
 * where it is), an update is compared with the model (the same tensors,
 * shapes and dtypes, nothing more) and its floating-point values checked
 * finite, and it is encoded again with the client's own metadata (round,
 * num_samples, train_loss, and sha256 over the data, which is copied as
 * is). The wire layer's reader (wire/safetensors.h) takes F32 only; this
 * one takes every dtype of the format and never converts a value.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mbedtls_compat.h"
#include "client.h"

static const struct {
  const char *name;
  int size;
} dtypes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
              {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},  {"BOOL", 1}};

static int dtype_size(const char *s) {
  for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
    if (strcmp(s, dtypes[i].name) == 0) return dtypes[i].size;
  return 0;
}

void fedc__client_st_view_free(fedc_client_st_view *v) {
  if (v == NULL) return;
  cJSON_Delete(v->header);
  fedc_free(v->t);
  memset(v, 0, sizeof *v);
}

static int entry(const cJSON *e, fedc_client_st_entry *t, size_t data_len) {
  const char *name = e->string;
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsObject(e) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) ||
      cJSON_GetArraySize(of) != 2)
    return fedc_error_set(FEDC_EFORMAT, "tensor '%.64s': needs dtype, shape and data_offsets",
                          name);
  t->name = name;
  t->dtype = dt->valuestring;
  t->elem = dtype_size(t->dtype);
  if (t->elem == 0)
    return fedc_error_set(FEDC_EFORMAT, "tensor '%.64s': unknown dtype %.16s", name, t->dtype);
  if (cJSON_GetArraySize(sh) > FEDC_CLIENT_ST_MAX_DIMS)
    return fedc_error_set(FEDC_EFORMAT, "tensor '%.64s': more than %d dimensions", name,
                          FEDC_CLIENT_ST_MAX_DIMS);
  t->ndim = 0;
  uint64_t count = 1;
  const cJSON *d;
  cJSON_ArrayForEach(d, sh) {
    double x = cJSON_IsNumber(d) ? d->valuedouble : -1;
    if (!(x >= 0 && x <= 9007199254740992.0 && x == floor(x)))
      return fedc_error_set(FEDC_EFORMAT, "tensor '%.64s': bad shape", name);
    t->shape[t->ndim++] = (int64_t)x;
    if (x > 0 && count > UINT64_MAX / (uint64_t)x)
      return fedc_error_set(FEDC_EFORMAT, "tensor '%.64s': shape too large", name);
    count *= (uint64_t)x;
  }
  double b = cJSON_GetArrayItem(of, 0)->valuedouble, en = cJSON_GetArrayItem(of, 1)->valuedouble;
  if (!cJSON_IsNumber(cJSON_GetArrayItem(of, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(of, 1)) ||
      !(b >= 0 && b <= en && en <= (double)data_len) || b != floor(b) || en != floor(en))
    return fedc_error_set(FEDC_EFORMAT, "tensor '%.64s': data_offsets out of the data", name);
  t->begin = (uint64_t)b;
  t->end = (uint64_t)en;
  t->count = count;
  if (count > UINT64_MAX / (uint64_t)t->elem || t->end - t->begin != count * (uint64_t)t->elem)
    return fedc_error_set(FEDC_EFORMAT, "tensor '%.64s': %llu bytes for %s of %llu elements",
                          name, (unsigned long long)(t->end - t->begin), t->dtype,
                          (unsigned long long)count);
  return 0;
}

int fedc__client_st_view(const uint8_t *buf, size_t len, fedc_client_st_view *v) {
  memset(v, 0, sizeof *v);
  if (len < 8) return fedc_error_set(FEDC_EFORMAT, "safetensors: shorter than 8 bytes");
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
  if (n > FEDC_ST_MAX_HEADER || n > len - 8)
    return fedc_error_set(FEDC_EFORMAT, "safetensors: header length %llu does not fit",
                          (unsigned long long)n);
  v->header = cJSON_ParseWithLength((const char *)buf + 8, (size_t)n);
  if (v->header == NULL || !cJSON_IsObject(v->header)) {
    fedc__client_st_view_free(v);
    return fedc_error_set(FEDC_EFORMAT, "safetensors: the header is not a JSON object");
  }
  v->data = buf + 8 + n;
  v->data_len = len - 8 - (size_t)n;
  size_t count = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, v->header) count += strcmp(e->string, "__metadata__") != 0;
  v->t = fedc_calloc(count ? count : 1, sizeof *v->t);
  if (v->t == NULL) {
    fedc__client_st_view_free(v);
    return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  }
  int rc = 0;
  uint64_t covered = 0;
  cJSON_ArrayForEach(e, v->header) {
    if (strcmp(e->string, "__metadata__") == 0) {
      v->meta = e;
      const cJSON *m;
      cJSON_ArrayForEach(m, e) if (!cJSON_IsString(m)) rc =
          fedc_error_set(FEDC_EFORMAT, "safetensors: metadata '%.64s' is not a string", m->string);
      if (!cJSON_IsObject(e)) rc = fedc_error_set(FEDC_EFORMAT, "safetensors: bad __metadata__");
      continue;
    }
    if (rc == 0) rc = entry(e, &v->t[v->n], v->data_len);
    if (rc != 0) break;
    covered += v->t[v->n].end - v->t[v->n].begin;
    v->n++;
  }
  /* every byte of the data belongs to exactly one tensor: no overlaps
   * (the sizes add up and no two tensors start at the same place within
   * another's span) */
  for (size_t i = 0; rc == 0 && i < v->n; i++)
    for (size_t k = i + 1; rc == 0 && k < v->n; k++)
      if (v->t[i].begin < v->t[k].end && v->t[k].begin < v->t[i].end)
        rc = fedc_error_set(FEDC_EFORMAT, "safetensors: tensors '%.64s' and '%.64s' overlap",
                            v->t[i].name, v->t[k].name);
  if (rc == 0 && covered != v->data_len)
    rc = fedc_error_set(FEDC_EFORMAT, "safetensors: the tensors do not cover the %zu data bytes",
                        v->data_len);
  const char *sha = rc == 0 ? fedc__client_st_meta(v, "sha256") : NULL;
  if (sha != NULL) {
    char got[FEDC__SHA256_HEX_LEN + 1];
    rc = fedc__sha256_hex(v->data, v->data_len, got);
    if (rc == 0 && strcasecmp(got, sha) != 0)
      rc = fedc_error_set(FEDC_ECHECKSUM, "safetensors: sha256 of the data is %s, metadata says "
                          "%.64s", got, sha);
  }
  if (rc != 0) fedc__client_st_view_free(v);
  return rc;
}

const char *fedc__client_st_meta(const fedc_client_st_view *v, const char *key) {
  const cJSON *m = v->meta ? cJSON_GetObjectItemCaseSensitive(v->meta, key) : NULL;
  return cJSON_IsString(m) ? m->valuestring : NULL;
}

static const fedc_client_st_entry *find(const fedc_client_st_view *v, const char *name) {
  for (size_t i = 0; i < v->n; i++)
    if (strcmp(v->t[i].name, name) == 0) return &v->t[i];
  return NULL;
}

static void shape_text(const fedc_client_st_entry *t, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int32_t i = 0; i < t->ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

#define failed(err, ...) fedc_error_set_sub((err), FEDC_SUB_TRAINER_FAILED, __VA_ARGS__)

int fedc__client_st_same_layout(const fedc_client_st_view *model, const fedc_client_st_view *u,
                                int32_t round) {
  char a[96], b[96];
  for (size_t i = 0; i < model->n; i++) {
    const fedc_client_st_entry *m = &model->t[i], *t = find(u, m->name);
    if (t == NULL)
      return failed(FEDC_ESHAPE, "round %d: trainer: the update has no tensor '%s'", (int)round,
                    m->name);
    if (strcmp(t->dtype, m->dtype) != 0)
      return failed(FEDC_EFORMAT, "round %d: trainer: tensor '%s' is %s in the update, %s in the "
                    "global model", (int)round, m->name, t->dtype, m->dtype);
    int same = t->ndim == m->ndim;
    for (int32_t k = 0; same && k < m->ndim; k++) same = t->shape[k] == m->shape[k];
    if (!same) {
      shape_text(t, a, sizeof a);
      shape_text(m, b, sizeof b);
      return failed(FEDC_ESHAPE, "round %d: trainer: tensor '%s' has shape %s in the update, %s "
                    "in the global model", (int)round, m->name, a, b);
    }
  }
  for (size_t i = 0; i < u->n; i++)
    if (find(model, u->t[i].name) == NULL)
      return failed(FEDC_ESHAPE, "round %d: trainer: tensor '%s' of the update is not in the "
                    "global model", (int)round, u->t[i].name);
  return 0;
}

/* IEEE half and bfloat16: not finite when the exponent bits are all ones. */
static int finite_at(const char *dtype, const uint8_t *p) {
  if (strcmp(dtype, "F32") == 0) {
    uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (w & 0x7f800000u) != 0x7f800000u;
  }
  if (strcmp(dtype, "F16") == 0) return ((p[1] & 0x7c) != 0x7c);
  if (strcmp(dtype, "BF16") == 0) {
    uint16_t h = (uint16_t)(p[0] | p[1] << 8);
    return (h & 0x7f80) != 0x7f80;
  }
  if (strcmp(dtype, "F64") == 0) return ((p[7] & 0x7f) != 0x7f) || ((p[6] & 0xf0) != 0xf0);
  return 1;
}

int fedc__client_st_finite(const fedc_client_st_view *u, int32_t round) {
  for (size_t i = 0; i < u->n; i++) {
    const fedc_client_st_entry *t = &u->t[i];
    if (t->dtype[0] != 'F' && strcmp(t->dtype, "BF16") != 0) continue;
    for (uint64_t k = 0; k < t->count; k++)
      if (!finite_at(t->dtype, u->data + t->begin + k * (uint64_t)t->elem))
        return failed(FEDC_ENONFINITE, "round %d: trainer: tensor '%s'[%llu] is not finite",
                      (int)round, t->name, (unsigned long long)k);
  }
  return 0;
}

int fedc__client_st_reencode(const fedc_client_st_view *u, const fedc_st_meta *meta, size_t n_meta,
                             uint8_t **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  char sha[FEDC__SHA256_HEX_LEN + 1];
  int rc = fedc__sha256_hex(u->data, u->data_len, sha);
  if (rc != 0) return rc;
  cJSON *h = cJSON_CreateObject(), *m = cJSON_CreateObject();
  int ok = h && m && cJSON_AddItemToObject(h, "__metadata__", m);
  if (!ok) cJSON_Delete(m);
  for (size_t i = 0; ok && i < n_meta; i++)
    ok = cJSON_AddStringToObject(m, meta[i].key, meta[i].value) != NULL;
  ok = ok && cJSON_AddStringToObject(m, "sha256", sha) != NULL;
  for (size_t i = 0; ok && i < u->n; i++) {
    const fedc_client_st_entry *t = &u->t[i];
    cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
    ok = e && shape && offs && cJSON_AddStringToObject(e, "dtype", t->dtype);
    for (int32_t k = 0; ok && k < t->ndim; k++)
      ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[k]));
    ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)t->begin)) &&
         cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)t->end));
    if (ok && cJSON_AddItemToObject(e, "shape", shape)) shape = NULL;
    if (ok && cJSON_AddItemToObject(e, "data_offsets", offs)) offs = NULL;
    ok = ok && shape == NULL && offs == NULL && cJSON_AddItemToObject(h, t->name, e);
    if (!ok) {
      cJSON_Delete(e);
      cJSON_Delete(shape);
      cJSON_Delete(offs);
    }
  }
  char *text = ok ? cJSON_PrintUnformatted(h) : NULL;
  cJSON_Delete(h);
  if (text == NULL) return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  size_t hl = strlen(text), pad = (8 - hl % 8) % 8, total = 8 + hl + pad + u->data_len;
  uint8_t *b = fedc_malloc(total);
  if (b == NULL) {
    cJSON_free(text);
    return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  }
  uint64_t n = hl + pad;
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(n >> (8 * i));
  memcpy(b + 8, text, hl);
  memset(b + 8 + hl, ' ', pad);
  memcpy(b + 8 + hl + pad, u->data, u->data_len);
  cJSON_free(text);
  *out = b;
  *out_len = total;
  return 0;
}
