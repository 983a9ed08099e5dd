/*
 * layout.c - a job's tensor layout (layout.h): built from a built-in model
 * or from an initial safetensors file; reading, checking, encoding and
 * rounding models through it; the integer tensors' keep/max rules.
 */
#include "ml/layout.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "ml/dtype.h"

static int is_float_dtype(int dt) {
  return dt == FEDC_ST_F32 || dt == FEDC_ST_F16 || dt == FEDC_ST_BF16;
}

/* Allocate l for n tensors with name_bytes of names; offsets are set by
 * place(). */
static int alloc_layout(fedc_layout *l, size_t n, size_t name_bytes) {
  memset(l, 0, sizeof *l);
  l->t = fedc_calloc(n ? n : 1, sizeof *l->t);
  l->names = fedc_malloc(name_bytes ? name_bytes : 1);
  if (l->t == NULL || l->names == NULL) {
    fedc_layout_free(l);
    return fedc_error_set(FEDC_ENOMEM, "layout: out of memory");
  }
  l->n = n;
  return 0;
}

/* Give each tensor its offset in its vector, in order. */
static void place(fedc_layout *l) {
  l->n_float = l->n_int = 0;
  l->narrow = 0;
  for (size_t i = 0; i < l->n; i++) {
    fedc_layout_tensor *t = &l->t[i];
    t->is_int = !is_float_dtype(t->dtype);
    t->off = t->is_int ? l->n_int : l->n_float;
    if (t->is_int) l->n_int += t->n;
    else l->n_float += t->n;
    if (t->dtype == FEDC_ST_F16 || t->dtype == FEDC_ST_BF16) l->narrow = 1;
  }
}

static size_t elements(const int64_t *shape, int32_t ndim) {
  size_t n = 1;
  for (int32_t d = 0; d < ndim; d++) n *= (size_t)shape[d];
  return n;
}

int fedc_layout_from_spec(const fedc_model_spec *spec, fedc_layout *out) {
  int32_t layers = fedc_model_n_layers(spec);
  int rc = alloc_layout(out, 2 * (size_t)layers, 2 * (size_t)layers * 32);
  if (rc != 0) return rc;
  char *pos = out->names;
  for (int32_t i = 0; i < layers; i++) {
    fedc_layer_layout ly;
    fedc_model_layout(spec, i, &ly);
    for (int b = 0; b < 2; b++) {
      fedc_layout_tensor *lt = &out->t[2 * i + b];
      snprintf(pos, 32, "layers.%d.%s", (int)i, b ? "bias" : "weight");
      lt->name = pos;
      pos += 32;
      lt->dtype = FEDC_ST_F32;
      lt->ndim = b ? 1 : 2;
      lt->shape[0] = ly.out;
      lt->shape[1] = b ? 0 : ly.in;
      lt->n = elements(lt->shape, lt->ndim);
    }
  }
  place(out);
  return 0;
}

int fedc_layout_from_file(const fedc_st_file *f, fedc_layout *out) {
  size_t n = fedc_st_count(f), bytes = 0;
  int any_float = 0;
  for (size_t i = 0; i < n; i++) {
    fedc_st_tensor t;
    fedc_st_get(f, i, &t);
    int dt = fedc_st_dtype_at(f, i);
    if (!is_float_dtype(dt) && !fedc_dtype_is_int(dt))
      return fedc_error_set(FEDC_EUNSUPPORTED,
                            "tensor '%s' is %s: a job carries F32, F16, BF16 and the "
                            "integer dtypes I64, I32, I16, I8, U8, U16, U32, BOOL",
                            t.name, fedc_st_dtype_name(dt));
    any_float |= is_float_dtype(dt);
    bytes += strlen(t.name) + 1;
  }
  if (!any_float)
    return fedc_error_set(FEDC_EINVAL,
                          "no F32, F16 or BF16 tensor: a job needs something to average");
  int rc = alloc_layout(out, n, bytes);
  if (rc != 0) return rc;
  char *pos = out->names;
  for (size_t i = 0; i < n; i++) {
    fedc_st_tensor t;
    fedc_st_get(f, i, &t);
    fedc_layout_tensor *lt = &out->t[i];
    size_t len = strlen(t.name) + 1;
    memcpy(pos, t.name, len);
    lt->name = pos;
    pos += len;
    lt->dtype = fedc_st_dtype_at(f, i);
    lt->ndim = t.ndim;
    memcpy(lt->shape, t.shape, sizeof lt->shape);
    lt->n = elements(lt->shape, lt->ndim);
  }
  place(out);
  return 0;
}

void fedc_layout_free(fedc_layout *l) {
  if (l == NULL) return;
  fedc_free(l->t);
  fedc_free(l->names);
  memset(l, 0, sizeof *l);
}

/*
 * Rules: entries split at commas, each "PATTERN=RULE" with spaces around
 * either part ignored. Parsed in full into a scratch copy before any rule
 * changes, so a malformed text leaves every rule as it was.
 */
int fedc_layout_set_rules(fedc_layout *l, const char *text) {
  fedc_int_rule *rules = fedc_calloc(l->n ? l->n : 1, sizeof *rules);
  int *set = fedc_calloc(l->n ? l->n : 1, sizeof *set);
  char *copy = fedc_strdup(text ? text : "");
  int rc = 0;
  if (rules == NULL || set == NULL || copy == NULL)
    rc = fedc_error_set(FEDC_ENOMEM, "layout: out of memory");
  for (char *entry = copy, *next; rc == 0 && entry; entry = next) {
    next = strchr(entry, ',');
    if (next) *next++ = '\0';
    while (*entry == ' ' || *entry == '\t') entry++;
    char *end = entry + strlen(entry);
    while (end > entry && (end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
    if (*entry == '\0') {
      if (next) rc = fedc_error_set(FEDC_ECONFIG, "an empty entry (two commas in a row?)");
      continue;
    }
    char *eq = strrchr(entry, '=');
    if (eq == NULL) {
      rc = fedc_error_set(FEDC_ECONFIG, "'%s' is not PATTERN=keep or PATTERN=max", entry);
      break;
    }
    char *pat = entry, *rule = eq + 1;
    *eq = '\0';
    for (char *e = eq; e > pat && (e[-1] == ' ' || e[-1] == '\t');) *--e = '\0';
    while (*rule == ' ' || *rule == '\t') rule++;
    fedc_int_rule r;
    if (strcmp(rule, "keep") == 0) r = FEDC_INT_KEEP;
    else if (strcmp(rule, "max") == 0) r = FEDC_INT_MAX;
    else {
      rc = fedc_error_set(FEDC_ECONFIG, "pattern '%s': rule '%s' is neither keep nor max",
                          pat, rule);
      break;
    }
    if (*pat == '\0') {
      rc = fedc_error_set(FEDC_ECONFIG, "an entry '=%s' has no pattern", rule);
      break;
    }
    for (size_t i = 0; i < l->n; i++)
      if (!set[i] && fnmatch(pat, l->t[i].name, 0) == 0) {
        rules[i] = r;
        set[i] = 1;
      }
  }
  if (rc == 0)
    for (size_t i = 0; i < l->n; i++) l->t[i].rule = l->t[i].is_int ? rules[i] : FEDC_INT_KEEP;
  fedc_free(rules);
  fedc_free(set);
  fedc_free(copy);
  return rc;
}

int fedc_layout_has_max(const fedc_layout *l) {
  for (size_t i = 0; i < l->n; i++)
    if (l->t[i].is_int && l->t[i].rule == FEDC_INT_MAX) return 1;
  return 0;
}

static void shape_text(const int64_t *shape, int32_t ndim, char *buf, size_t cap) {
  size_t k = 0;
  buf[0] = '\0';
  k += (size_t)snprintf(buf, cap, "[");
  for (int32_t d = 0; d < ndim && k < cap; d++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? "," : "", (long long)shape[d]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Check every tensor's presence, dtype and shape first (nothing written). */
static int check_tensors(const fedc_layout *l, const fedc_st_file *f) {
  for (size_t i = 0; i < l->n; i++) {
    const fedc_layout_tensor *lt = &l->t[i];
    fedc_st_tensor got;
    if (fedc_st_find(f, lt->name, &got) != 0)
      return fedc_error_set(FEDC_ESHAPE, "model: tensor '%s' is missing", lt->name);
    size_t idx = 0;
    for (; idx < fedc_st_count(f); idx++) {
      fedc_st_tensor t;
      fedc_st_get(f, idx, &t);
      if (t.name == got.name) break;
    }
    int dt = fedc_st_dtype_at(f, idx);
    if (dt != lt->dtype)
      return fedc_error_set(FEDC_EUNSUPPORTED, "model: tensor '%s' is %s; the job's is %s",
                            lt->name, fedc_st_dtype_name(dt), fedc_st_dtype_name(lt->dtype));
    int same = got.ndim == lt->ndim;
    for (int32_t d = 0; same && d < got.ndim; d++) same = got.shape[d] == lt->shape[d];
    if (!same) {
      char a[96], b[96];
      shape_text(got.shape, got.ndim, a, sizeof a);
      shape_text(lt->shape, lt->ndim, b, sizeof b);
      return fedc_error_set(FEDC_ESHAPE, "model: tensor '%s' has the wrong shape %s; the job's is %s",
                            lt->name, a, b);
    }
  }
  if (fedc_st_count(f) != l->n) {
    for (size_t i = 0; i < fedc_st_count(f); i++) {
      fedc_st_tensor t;
      fedc_st_get(f, i, &t);
      size_t j = 0;
      while (j < l->n && strcmp(l->t[j].name, t.name) != 0) j++;
      if (j == l->n)
        return fedc_error_set(FEDC_ESHAPE, "model: tensor '%s' is not the job's", t.name);
    }
    return fedc_error_set(FEDC_ESHAPE, "model: expected %zu tensors, got %zu", l->n,
                          fedc_st_count(f));
  }
  return 0;
}

/* Widen tensor lt's elements at src into dst; FEDC_ENONFINITE naming the
 * first value FedAvg's sum cannot take. */
static int widen(const fedc_layout_tensor *lt, const void *src, float *dst) {
  for (size_t k = 0; k < lt->n; k++) {
    float v;
    if (lt->dtype == FEDC_ST_F32) memcpy(&v, (const char *)src + 4 * k, 4);
    else {
      uint16_t h;
      memcpy(&h, (const char *)src + 2 * k, 2);
      v = lt->dtype == FEDC_ST_F16 ? fedc_f16_to_f32(h) : fedc_bf16_to_f32(h);
    }
    if (!isfinite(v) || fabsf(v) >= 2147483648.0f)
      return fedc_error_set(FEDC_ENONFINITE, "model: tensor '%s' element %zu is %g", lt->name,
                            k, (double)v);
    if (dst) dst[k] = v;
  }
  return 0;
}

int fedc_layout_read(const fedc_layout *l, const fedc_st_file *f, float *wf, int64_t *wi) {
  int rc = check_tensors(l, f);
  if (rc != 0) return rc;
  /* every float checked first (widen without a destination), then written
   * straight into wf: no model-sized scratch */
  int64_t *ti = fedc_malloc_array(l->n_int ? l->n_int : 1, sizeof *ti);
  if (ti == NULL) rc = fedc_error_set(FEDC_ENOMEM, "model: out of memory");
  for (size_t i = 0; rc == 0 && i < l->n; i++) {
    const fedc_layout_tensor *lt = &l->t[i];
    fedc_st_tensor got;
    fedc_st_find(f, lt->name, &got);
    if (lt->is_int)
      for (size_t k = 0; k < lt->n; k++) ti[lt->off + k] = fedc_dtype_int_get(lt->dtype, got.data, k);
    else
      rc = widen(lt, got.data, NULL);
  }
  for (size_t i = 0; rc == 0 && i < l->n; i++) {
    const fedc_layout_tensor *lt = &l->t[i];
    fedc_st_tensor got;
    fedc_st_find(f, lt->name, &got);
    if (!lt->is_int) widen(lt, got.data, wf + lt->off);
  }
  if (rc == 0 && l->n_int) memcpy(wi, ti, l->n_int * sizeof *ti);
  fedc_free(ti);
  return rc;
}

/*
 * The float values of a container decoded with FEDC_ST_BORROW as one
 * array in place: only when the layout is all F32 tensors (no integers,
 * nothing to widen) and the container holds them back to back in the
 * layout's order, which is how fedc encodes them. The values are not
 * checked here: FedAvg's fold refuses a non-finite or out-of-range weight
 * (the engine's FEDC_ENONFINITE / FEDC_ERANGE) before its sums change.
 */
int fedc__layout_view(const fedc_layout *l, const fedc_st_file *f, const float **wf) {
  *wf = NULL;
  int rc = check_tensors(l, f);
  if (rc != 0) return rc;
  if (l->n_int > 0 || l->n == 0)
    return fedc_error_set(FEDC_EUNSUPPORTED, "model: integer tensors are copied");
  const float *at = NULL;
  for (size_t i = 0; i < l->n; i++) {
    const fedc_layout_tensor *lt = &l->t[i];
    fedc_st_tensor got;
    fedc_st_find(f, lt->name, &got);
    if (lt->dtype != FEDC_ST_F32 || (i > 0 && got.data != at))
      return fedc_error_set(FEDC_EUNSUPPORTED, "model: tensor '%s' is not in place",
                            lt->name);
    if (i == 0) *wf = got.data;
    at = got.data + lt->n;
  }
  return 0;
}

int fedc_layout_encode(const fedc_layout *l, const float *wf, const int64_t *wi,
                       const fedc_st_meta *meta, size_t n_meta, uint8_t **out,
                       size_t *len) {
  fedc_st_tensor *t = fedc_calloc(l->n ? l->n : 1, sizeof *t);
  uint8_t *dts = fedc_calloc(l->n ? l->n : 1, 1);
  /* narrowed copies of the non-F32 tensors, one block */
  size_t bytes = 0;
  for (size_t i = 0; i < l->n; i++)
    if (l->t[i].dtype != FEDC_ST_F32) bytes += l->t[i].n * fedc_st_dtype_size(l->t[i].dtype);
  char *buf = fedc_malloc(bytes ? bytes : 1);
  int rc = 0;
  if (t == NULL || dts == NULL || buf == NULL) rc = fedc_error_set(FEDC_ENOMEM, "model: out of memory");
  size_t at = 0;
  for (size_t i = 0; rc == 0 && i < l->n; i++) {
    const fedc_layout_tensor *lt = &l->t[i];
    t[i].name = lt->name;
    t[i].ndim = lt->ndim;
    memcpy(t[i].shape, lt->shape, sizeof t[i].shape);
    dts[i] = (uint8_t)lt->dtype;
    if (lt->dtype == FEDC_ST_F32) {
      t[i].data = wf + lt->off;
      continue;
    }
    char *dst = buf + at;
    at += lt->n * fedc_st_dtype_size(lt->dtype);
    t[i].data = (const float *)(const void *)dst;
    for (size_t k = 0; k < lt->n; k++) {
      if (lt->is_int) {
        fedc_dtype_int_set(lt->dtype, dst, k, wi[lt->off + k]);
      } else {
        uint16_t h = lt->dtype == FEDC_ST_F16 ? fedc_f32_to_f16(wf[lt->off + k])
                                              : fedc_f32_to_bf16(wf[lt->off + k]);
        memcpy(dst + 2 * k, &h, 2);
      }
    }
  }
  if (rc == 0) rc = fedc_st_encode_typed(t, dts, l->n, meta, n_meta, out, len);
  fedc_free(t);
  fedc_free(dts);
  fedc_free(buf);
  return rc;
}

/* Whether the decoder refused a tensor's dtype (its message ends so). */
#define DTYPE_REFUSAL "(fedc reads F32 only)"
static int is_dtype_refusal(const char *msg) {
  size_t n = strlen(msg), k = sizeof DTYPE_REFUSAL - 1;
  return n >= k && memcmp(msg + n - k, DTYPE_REFUSAL, k) == 0;
}

int fedc_layout_decode(const fedc_layout *l, const uint8_t *bytes, size_t len, float *wf,
                       int64_t *wi, fedc_st_file **file) {
  if (file) *file = NULL;
  fedc_st_file *f = NULL;
  /* without a file for the caller, the tensors are read where they lie */
  int rc = fedc_st_decode_ex(bytes, len, FEDC_ST_ALLOW_ANY | (file ? 0 : FEDC_ST_BORROW), &f);
  if (rc == FEDC_EFORMAT && is_dtype_refusal(fedc_error_msg()))
    rc = FEDC_EUNSUPPORTED; /* a well-formed container of a dtype fedc lacks */
  if (rc != 0) return rc;
  rc = fedc_layout_read(l, f, wf, wi);
  if (rc == 0 && file) *file = f;
  else fedc_st_free(f);
  return rc;
}

void fedc_layout_round(const fedc_layout *l, float *wf) {
  if (!l->narrow) return;
  for (size_t i = 0; i < l->n; i++) {
    const fedc_layout_tensor *lt = &l->t[i];
    if (lt->is_int || lt->dtype == FEDC_ST_F32) continue;
    int half = lt->dtype == FEDC_ST_F16;
    float big = half ? 65504.0f : 3.38953139e38f; /* the largest finite values */
    for (size_t k = 0; k < lt->n; k++) {
      float *v = &wf[lt->off + k];
      if (*v > big) *v = big;
      else if (*v < -big) *v = -big;
      *v = half ? fedc_f16_to_f32(fedc_f32_to_f16(*v)) : fedc_bf16_to_f32(fedc_f32_to_bf16(*v));
    }
  }
}

void fedc_layout_int_fold(const fedc_layout *l, int64_t *acc, const int64_t *wi, int first) {
  for (size_t i = 0; i < l->n; i++) {
    const fedc_layout_tensor *lt = &l->t[i];
    if (!lt->is_int || lt->rule != FEDC_INT_MAX) continue;
    for (size_t k = lt->off; k < lt->off + lt->n; k++)
      if (first || wi[k] > acc[k]) acc[k] = wi[k];
  }
}

void fedc_layout_int_next(const fedc_layout *l, const int64_t *global, const int64_t *acc,
                          int have, int64_t *next) {
  for (size_t i = 0; i < l->n; i++) {
    const fedc_layout_tensor *lt = &l->t[i];
    if (!lt->is_int) continue;
    const int64_t *src = have && lt->rule == FEDC_INT_MAX ? acc : global;
    memcpy(next + lt->off, src + lt->off, lt->n * sizeof *next);
  }
}
