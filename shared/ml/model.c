/*
 * model.c - model specifications, the layout of the flat parameter vector,
 * seeded initialization and the mapping to named tensors.
 */
#include "ml/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "base/rng.h"

static const char *const model_names[] = {"logreg", "softmax", "linreg", "mlp", "tensors"};

const char *fedc_model_type_name(fedc_model_type t) {
  if ((int)t < 0 || (int)t > FEDC_MODEL_TENSORS) return "unknown";
  return model_names[t];
}

int fedc_model_type_parse(const char *s) {
  if (s == NULL) return -1;
  for (int i = 0; i < (int)(sizeof model_names / sizeof *model_names); i++)
    if (strcmp(model_names[i], s) == 0) return i;
  return -1;
}

void fedc_model_spec_init(fedc_model_spec *spec, fedc_model_type type,
                          int32_t n_in, int32_t n_out) {
  memset(spec, 0, sizeof *spec);
  spec->type = type;
  spec->n_in = n_in;
  spec->n_out = n_out;
}

/*
 * What every other function here takes for granted: a known type, widths
 * of at least 1, one output for the regressions, hidden layers for an MLP
 * only (and at least one), finite non-negative regularization, and a flat
 * vector whose length fits size_t.
 */
int fedc_model_spec_check(const fedc_model_spec *spec) {
  if (spec == NULL) return fedc_error_set(FEDC_EINVAL, "model: no spec");
  if ((int)spec->type < 0 || (int)spec->type > FEDC_MODEL_MLP)
    return fedc_error_set(FEDC_EINVAL, "model: unknown type %d", (int)spec->type);
  if (spec->type == FEDC_MODEL_TENSORS)
    return fedc_error_set(FEDC_EINVAL, "model tensors: a tensor job's model is its initial "
                          "safetensors file, trained by an external trainer; it has no "
                          "built-in spec");
  const char *name = fedc_model_type_name(spec->type);
  if (spec->n_in < 1 || spec->n_out < 1)
    return fedc_error_set(FEDC_EINVAL, "model %s: n_in and n_out must be >= 1 (%d, %d)", name,
                          (int)spec->n_in, (int)spec->n_out);
  if ((spec->type == FEDC_MODEL_LOGREG || spec->type == FEDC_MODEL_LINREG) && spec->n_out != 1)
    return fedc_error_set(FEDC_EINVAL, "model %s: n_out must be 1 (is %d)", name,
                          (int)spec->n_out);
  if (spec->type == FEDC_MODEL_MLP) {
    if (spec->n_hidden < 1 || spec->n_hidden > FEDC_MODEL_MAX_HIDDEN)
      return fedc_error_set(FEDC_EINVAL, "model mlp: %d hidden layers; 1 to %d", (int)spec->n_hidden,
                            FEDC_MODEL_MAX_HIDDEN);
  } else if (spec->n_hidden != 0) {
    return fedc_error_set(FEDC_EINVAL, "model %s: has no hidden layers (n_hidden = %d)", name,
                          (int)spec->n_hidden);
  }
  for (int32_t l = 0; l < spec->n_hidden; l++)
    if (spec->hidden[l] < 1)
      return fedc_error_set(FEDC_EINVAL, "model mlp: hidden layer %d has width %d", (int)l,
                            (int)spec->hidden[l]);
  if (!(spec->l1 >= 0 && spec->l1 < INFINITY) || !(spec->l2 >= 0 && spec->l2 < INFINITY))
    return fedc_error_set(FEDC_EINVAL, "model %s: l1 and l2 must be finite and >= 0", name);
  /* every layer's in * out + out must fit, and their sum */
  size_t total = 0;
  int32_t in = spec->n_in;
  for (int32_t l = 0; l <= spec->n_hidden; l++) {
    int32_t o = l < spec->n_hidden ? spec->hidden[l] : spec->n_out;
    size_t layer = (size_t)in * (size_t)o + (size_t)o; /* < 2^63 for int32 widths */
    if (total > SIZE_MAX / sizeof(float) - layer)
      return fedc_error_set(FEDC_EINVAL, "model %s: too many parameters", name);
    total += layer;
    in = o;
  }
  return 0;
}

int32_t fedc_model_n_layers(const fedc_model_spec *spec) {
  return spec->n_hidden + 1;
}

void fedc_model_layout(const fedc_model_spec *spec, int32_t layer,
                       fedc_layer_layout *out) {
  size_t off = 0;
  int32_t in = spec->n_in;
  for (int32_t l = 0;; l++) {
    int32_t o = l < spec->n_hidden ? spec->hidden[l] : spec->n_out;
    if (l == layer) {
      out->in = in;
      out->out = o;
      out->w_off = off;
      out->b_off = off + (size_t)in * (size_t)o;
      return;
    }
    off += (size_t)in * (size_t)o + (size_t)o;
    in = o;
  }
}

size_t fedc_model_n_params(const fedc_model_spec *spec) {
  fedc_layer_layout last;
  fedc_model_layout(spec, fedc_model_n_layers(spec) - 1, &last);
  return last.b_off + (size_t)last.out;
}

fedc_loss_kind fedc_model_loss_kind(const fedc_model_spec *spec) {
  switch (spec->type) {
  case FEDC_MODEL_LOGREG: return FEDC_LOSS_SIGMOID_BCE;
  case FEDC_MODEL_LINREG: return FEDC_LOSS_MSE;
  default: return FEDC_LOSS_SOFTMAX_XENT;
  }
}

void fedc_model_init(const fedc_model_spec *spec, uint64_t seed, float *w) {
  fedc_rng rng;
  fedc_rng_derive(&rng, seed, 0x696e6974 /* "init" */, 0, 0);
  for (int32_t l = 0; l < fedc_model_n_layers(spec); l++) {
    fedc_layer_layout ly;
    fedc_model_layout(spec, l, &ly);
    double bound = 1.0 / sqrt((double)ly.in);
    size_t n = (size_t)ly.in * (size_t)ly.out + (size_t)ly.out;
    for (size_t i = 0; i < n; i++)
      w[ly.w_off + i] = (float)((2.0 * fedc_rng_uniform(&rng) - 1.0) * bound);
  }
}

static _Thread_local char tensor_names[2 * FEDC_MODEL_MAX_LAYERS][32];

size_t fedc_model_tensors(const fedc_model_spec *spec, const float *w,
                          fedc_st_tensor *out, size_t max) {
  size_t k = 0;
  for (int32_t l = 0; l < fedc_model_n_layers(spec) && k + 2 <= max; l++) {
    fedc_layer_layout ly;
    fedc_model_layout(spec, l, &ly);
    snprintf(tensor_names[k], sizeof tensor_names[k], "layers.%d.weight", (int)l);
    out[k].name = tensor_names[k];
    out[k].ndim = 2;
    out[k].shape[0] = ly.out;
    out[k].shape[1] = ly.in;
    out[k].data = w + ly.w_off;
    k++;
    snprintf(tensor_names[k], sizeof tensor_names[k], "layers.%d.bias", (int)l);
    out[k].name = tensor_names[k];
    out[k].ndim = 1;
    out[k].shape[0] = ly.out;
    out[k].data = w + ly.b_off;
    k++;
  }
  return k;
}

int fedc_model_from_tensors(const fedc_model_spec *spec, const fedc_st_file *f,
                            float *w) {
  fedc_st_tensor want[2 * FEDC_MODEL_MAX_LAYERS];
  size_t n = fedc_model_tensors(spec, w, want, 2 * FEDC_MODEL_MAX_LAYERS);
  if (fedc_st_count(f) != n)
    return fedc_error_set(FEDC_ESHAPE, "model: expected %zu tensors, got %zu",
                          n, fedc_st_count(f));
  for (size_t i = 0; i < n; i++) {
    fedc_st_tensor got;
    if (fedc_st_find(f, want[i].name, &got) != 0)
      return fedc_error_set(FEDC_ENOTFOUND, "model: tensor '%s' is missing",
                            want[i].name);
    int same = got.ndim == want[i].ndim;
    for (int32_t d = 0; same && d < got.ndim; d++)
      same = got.shape[d] == want[i].shape[d];
    if (!same)
      return fedc_error_set(FEDC_ESHAPE, "model: tensor '%s' has the wrong shape",
                            want[i].name);
  }
  for (size_t i = 0; i < n; i++) {
    fedc_st_tensor got;
    fedc_st_find(f, want[i].name, &got);
    size_t cnt = (size_t)want[i].shape[0] * (want[i].ndim == 2 ? (size_t)want[i].shape[1] : 1);
    memcpy((float *)want[i].data, got.data, cnt * sizeof(float));
  }
  return 0;
}
