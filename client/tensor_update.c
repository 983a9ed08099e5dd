/*
 * tensor_update.c - safetensors containers of any dtype, as a tensor job's
 * client handles them (client.h): the round's global model and a trainer's
 * update are read with the wire layer's reader (wire/safetensors.h, every
 * dtype with FEDC_ST_ALLOW_ANY: the header, offsets, coverage of the data
 * and the sha256 metadata checked there), an update is compared with the
 * model (the same tensors, shapes and dtypes, nothing more) and its
 * floating-point values checked finite, and it is encoded again by the
 * wire layer's writer with the client's own metadata (round, num_samples,
 * train_loss, and the sha256 the writer adds). No value is ever
 * converted: each tensor's bytes go out as the trainer wrote them. A view
 * borrows its buffer's bytes (FEDC_ST_BORROW): the buffer must outlive it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "client.h"
#include "wire/safetensors.h"

void fedc__client_st_view_free(fedc_client_st_view *v) {
  if (v == NULL) return;
  fedc_st_free(v->f);
  fedc_free(v->t);
  memset(v, 0, sizeof *v);
}

int fedc__client_st_view(const uint8_t *buf, size_t len, fedc_client_st_view *v) {
  memset(v, 0, sizeof *v);
  /* borrowed: the tensors point into buf (no copy of the model's size),
   * which every caller keeps until the view is freed */
  int rc = fedc_st_decode_ex(buf, len, FEDC_ST_ALLOW_ANY | FEDC_ST_BORROW, &v->f);
  if (rc != 0) return rc;
  v->n = fedc_st_count(v->f);
  v->t = fedc_calloc(v->n ? v->n : 1, sizeof *v->t);
  if (v->t == NULL) {
    fedc__client_st_view_free(v);
    return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  }
  for (size_t i = 0; i < v->n; i++) {
    fedc_st_tensor s;
    fedc_st_get(v->f, i, &s);
    fedc_client_st_entry *t = &v->t[i];
    int dt = fedc_st_dtype_at(v->f, i);
    t->name = s.name;
    t->dtype = fedc_st_dtype_name(dt);
    t->code = dt;
    t->elem = (int32_t)fedc_st_dtype_size(dt);
    t->ndim = s.ndim;
    t->count = 1;
    for (int32_t k = 0; k < s.ndim; k++) {
      t->shape[k] = s.shape[k];
      t->count *= (uint64_t)s.shape[k];
    }
    t->data = (const uint8_t *)s.data;
  }
  return 0;
}

const char *fedc__client_st_meta(const fedc_client_st_view *v, const char *key) {
  return fedc_st_meta_get(v->f, key);
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
    if (t->code != m->code)
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

/* Not finite when the exponent bits are all ones (host byte order, as the
 * reader leaves the elements). */
static int finite_at(int code, const uint8_t *p) {
  switch (code) {
  case FEDC_ST_F32: {
    uint32_t w;
    memcpy(&w, p, sizeof w);
    return (w & 0x7f800000u) != 0x7f800000u;
  }
  case FEDC_ST_F16:
  case FEDC_ST_BF16: {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return code == FEDC_ST_F16 ? (h & 0x7c00) != 0x7c00 : (h & 0x7f80) != 0x7f80;
  }
  case FEDC_ST_F64: {
    uint64_t w;
    memcpy(&w, p, sizeof w);
    return (w & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
  }
  default: return 1;
  }
}

int fedc__client_st_finite(const fedc_client_st_view *u, int32_t round) {
  for (size_t i = 0; i < u->n; i++) {
    const fedc_client_st_entry *t = &u->t[i];
    if (t->code != FEDC_ST_F32 && t->code != FEDC_ST_F16 && t->code != FEDC_ST_BF16 &&
        t->code != FEDC_ST_F64)
      continue;
    for (uint64_t k = 0; k < t->count; k++)
      if (!finite_at(t->code, t->data + k * (uint64_t)t->elem))
        return failed(FEDC_ENONFINITE, "round %d: trainer: tensor '%s'[%llu] is not finite",
                      (int)round, t->name, (unsigned long long)k);
  }
  return 0;
}

int fedc__client_st_reencode(const fedc_client_st_view *u, const fedc_st_meta *meta, size_t n_meta,
                             uint8_t **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  fedc_st_tensor *ts = fedc_calloc(u->n ? u->n : 1, sizeof *ts);
  uint8_t *dts = fedc_calloc(u->n ? u->n : 1, 1);
  int rc = ts && dts ? 0 : fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  for (size_t i = 0; rc == 0 && i < u->n; i++) {
    fedc_st_get(u->f, i, &ts[i]);
    dts[i] = (uint8_t)u->t[i].code;
  }
  if (rc == 0) rc = fedc_st_encode_typed(ts, dts, u->n, meta, n_meta, out, out_len);
  fedc_free(ts);
  fedc_free(dts);
  return rc;
}

/* qsort: tensors by where their data lies */
static int by_data(const void *a, const void *b) {
  const fedc_client_st_entry *x = *(const fedc_client_st_entry *const *)a;
  const fedc_client_st_entry *y = *(const fedc_client_st_entry *const *)b;
  return x->data < y->data ? -1 : x->data > y->data;
}

/*
 * fedc__client_st_reencode without a second copy of the data: when u
 * borrows *buf (its tensors lie in *buf's data section, as the decoder
 * checked: contiguous, to the end), the new header is written for the
 * tensors in that order and the data moved under it within the same block
 * (grown by the header's difference if need be). Otherwise the copy path.
 * u is freed either way; *buf, *len become the new container, or stay the
 * old one on failure.
 */
int fedc__client_st_reencode_in_place(fedc_client_st_view *u, const fedc_st_meta *meta,
                                      size_t n_meta, uint8_t **buf, size_t *len) {
  size_t n = u->n;
  const fedc_client_st_entry **by = fedc_calloc(n ? n : 1, sizeof *by);
  fedc_st_tensor *ts = fedc_calloc(n ? n : 1, sizeof *ts);
  uint8_t *dts = fedc_calloc(n ? n : 1, 1);
  int rc = by && ts && dts ? 0 : fedc_error_set(FEDC_ENOMEM, "client: out of memory");
  const uint8_t *start = NULL;
  size_t data_len = 0;
  int in_place = rc == 0 && n > 0;
  for (size_t i = 0; in_place && i < n; i++) by[i] = &u->t[i];
  if (in_place) {
    qsort(by, n, sizeof *by, by_data);
    start = by[0]->data;
    for (size_t i = 0; i < n; i++) data_len += by[i]->count * (uint64_t)by[i]->elem;
    in_place = start >= *buf && start <= *buf + *len && (size_t)(*buf + *len - start) == data_len;
  }
  uint8_t *hdr = NULL;
  size_t hdr_len = 0;
  if (in_place) {
    for (size_t i = 0; i < n; i++) {
      fedc_client_st_entry e = *by[i];
      ts[i].name = e.name;
      ts[i].ndim = e.ndim;
      for (int32_t k = 0; k < e.ndim; k++) ts[i].shape[k] = e.shape[k];
      ts[i].data = (const float *)(const void *)e.data;
      dts[i] = (uint8_t)e.code;
    }
    rc = fedc_st_encode_header_typed(ts, dts, n, meta, n_meta, start, data_len, &hdr, &hdr_len);
  } else if (rc == 0) {
    uint8_t *nb = NULL;
    size_t nl = 0;
    rc = fedc__client_st_reencode(u, meta, n_meta, &nb, &nl);
    if (rc == 0) {
      fedc__client_st_view_free(u);
      fedc_free(*buf);
      *buf = nb;
      *len = nl;
    }
  }
  size_t off = in_place ? (size_t)(start - *buf) : 0;
  fedc_free(by);
  fedc_free(ts);
  fedc_free(dts);
  fedc__client_st_view_free(u); /* no pointer into *buf is used past here */
  if (rc != 0 || !in_place) {
    fedc_free(hdr);
    return rc;
  }
  uint8_t *b = *buf;
  if (hdr_len > off) {
    b = fedc_realloc(b, hdr_len + data_len);
    if (b == NULL) {
      fedc_free(hdr);
      return fedc_error_set(FEDC_ENOMEM, "client: out of memory");
    }
    *buf = b;
  }
  memmove(b + hdr_len, b + off, data_len);
  memcpy(b, hdr, hdr_len);
  fedc_free(hdr);
  *len = hdr_len + data_len;
  return 0;
}
