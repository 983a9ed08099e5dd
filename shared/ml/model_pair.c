/*
 * model_pair.c - a model and a vector of its layout in one container (see
 * model_pair.h). Names of the second set are built in local buffers; the
 * checks are those of an untrusted update: exact tensor set, shapes,
 * finite values below 2^31 in magnitude.
 */
#include "ml/model_pair.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

#define MAXT (2 * FEDC_MODEL_MAX_LAYERS)
#define NAME_MAX_LEN FEDC_PAIR_NAME_MAX

/* Names and shapes from the layout; data only where a base is given (a
 * decode asks for names and shapes alone). */
int fedc_model_pair_tensors(const fedc_model_spec *spec, const float *w, const char *prefix,
                            const float *v, fedc_st_tensor *t, char names[][NAME_MAX_LEN],
                            size_t *n) {
  if (strlen(prefix) >= FEDC_PAIR_PREFIX_MAX)
    return fedc_error_set(FEDC_EINVAL, "model pair: prefix '%s' too long", prefix);
  size_t k = 2 * (size_t)fedc_model_n_layers(spec);
  for (int32_t l = 0; l < fedc_model_n_layers(spec); l++) {
    fedc_layer_layout ly;
    fedc_model_layout(spec, l, &ly);
    for (int half = 0; half < 2; half++) {
      const float *base = half ? v : w;
      size_t i = (size_t)half * k + 2 * (size_t)l;
      snprintf(names[i], NAME_MAX_LEN, "%slayers.%d.weight", half ? prefix : "", (int)l);
      snprintf(names[i + 1], NAME_MAX_LEN, "%slayers.%d.bias", half ? prefix : "", (int)l);
      t[i] = (fedc_st_tensor){.name = names[i], .ndim = 2, .shape = {ly.out, ly.in},
                              .data = base ? base + ly.w_off : NULL};
      t[i + 1] = (fedc_st_tensor){.name = names[i + 1], .ndim = 1, .shape = {ly.out},
                                  .data = base ? base + ly.b_off : NULL};
    }
  }
  *n = 2 * k;
  return 0;
}

int fedc_model_pair_encode(const fedc_model_spec *spec, const float *w, const char *prefix,
                           const float *v, const fedc_st_meta *meta, size_t n_meta,
                           uint8_t **out, size_t *len) {
  fedc_st_tensor t[2 * MAXT];
  char names[2 * MAXT][NAME_MAX_LEN];
  size_t n;
  int rc = fedc_model_pair_tensors(spec, w, prefix, v, t, names, &n);
  return rc == 0 ? fedc_st_encode(t, n, meta, n_meta, out, len) : rc;
}

int fedc_model_pair_from_tensors(const fedc_model_spec *spec, const fedc_st_file *f,
                                 const char *prefix, float *w, float *v) {
  fedc_st_tensor want[2 * MAXT];
  char names[2 * MAXT][NAME_MAX_LEN];
  size_t n;
  int rc = fedc_model_pair_tensors(spec, NULL, prefix, NULL, want, names, &n);
  if (rc != 0) return rc;
  if (fedc_st_count(f) != n)
    return fedc_error_set(FEDC_ESHAPE, "model: expected %zu tensors (the model and its %s* "
                          "copies), got %zu", n, prefix, fedc_st_count(f));
  fedc_st_tensor got[2 * MAXT];
  for (size_t i = 0; i < n; i++) {
    if (fedc_st_find(f, want[i].name, &got[i]) != 0)
      return fedc_error_set(FEDC_ESHAPE, "model: tensor '%s' is missing", want[i].name);
    int same = got[i].ndim == want[i].ndim;
    for (int32_t d = 0; same && d < got[i].ndim; d++) same = got[i].shape[d] == want[i].shape[d];
    if (!same)
      return fedc_error_set(FEDC_ESHAPE, "model: tensor '%s' has the wrong shape", want[i].name);
    size_t cnt = (size_t)want[i].shape[0] * (want[i].ndim == 2 ? (size_t)want[i].shape[1] : 1);
    for (size_t j = 0; j < cnt; j++)
      if (!isfinite(got[i].data[j]) || fabsf(got[i].data[j]) >= 2147483648.0f)
        return fedc_error_set(FEDC_ENONFINITE, "model: %s[%zu] is %g", want[i].name, j,
                              (double)got[i].data[j]);
  }
  /* offsets in fedc_model_tensors' order: each layer's weight, then bias */
  size_t off[MAXT];
  for (int32_t l = 0; l < fedc_model_n_layers(spec); l++) {
    fedc_layer_layout ly;
    fedc_model_layout(spec, l, &ly);
    off[2 * l] = ly.w_off;
    off[2 * l + 1] = ly.b_off;
  }
  for (size_t i = 0; i < n; i++) {
    float *dst = i < n / 2 ? w : v;
    if (dst == NULL) continue;
    size_t cnt = (size_t)want[i].shape[0] * (want[i].ndim == 2 ? (size_t)want[i].shape[1] : 1);
    memcpy(dst + off[i % (n / 2)], got[i].data, cnt * sizeof(float));
  }
  return 0;
}
