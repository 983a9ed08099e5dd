/*
 * model.h - model specifications and their flat parameter vectors.
 *
 * Every model is a stack of dense layers: softmax, logistic and linear
 * regression are one layer; an MLP has ReLU hidden layers. Its parameters
 * live in one flat float vector, layer by layer, each layer's weight
 * (out x in, row-major: PyTorch nn.Linear's layout) followed by its bias
 * (out). The flat vector is what clients train, what crosses the wire and
 * what aggregation averages; the per-layer tensors are named
 * "layers.<i>.weight" and "layers.<i>.bias" in safetensors files.
 */
#ifndef FEDC_MODEL_H
#define FEDC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ml/backend.h"
#include "wire/safetensors.h"

#define FEDC_MODEL_MAX_HIDDEN 8
#define FEDC_MODEL_MAX_LAYERS (FEDC_MODEL_MAX_HIDDEN + 1)

typedef enum {
  FEDC_MODEL_LOGREG = 0,  /* binary logistic regression */
  FEDC_MODEL_SOFTMAX = 1, /* multinomial logistic regression */
  FEDC_MODEL_LINREG = 2,  /* linear regression, mean squared error */
  FEDC_MODEL_MLP = 3      /* ReLU hidden layers, softmax output */
} fedc_model_type;

/* Model type name ("softmax") and parse (-1 if unknown). */
const char *fedc_model_type_name(fedc_model_type t);
int fedc_model_type_parse(const char *s);

typedef struct fedc_model_spec {
  fedc_model_type type;
  int32_t n_in;   /* features */
  int32_t n_out;  /* classes for softmax/mlp; 1 for logreg/linreg */
  int32_t n_hidden;
  int32_t hidden[FEDC_MODEL_MAX_HIDDEN];
  float l1, l2;   /* regularization of the weights (not the biases) */
} fedc_model_spec;

typedef struct fedc_layer_layout {
  int32_t in, out;
  size_t w_off, b_off; /* offsets into the flat vector */
} fedc_layer_layout;

int32_t fedc_model_n_layers(const fedc_model_spec *spec);
size_t fedc_model_n_params(const fedc_model_spec *spec);
void fedc_model_layout(const fedc_model_spec *spec, int32_t layer,
                       fedc_layer_layout *out);
fedc_loss_kind fedc_model_loss_kind(const fedc_model_spec *spec);

/* Seeded initialization: weights and biases ~ U(-1/sqrt(in), 1/sqrt(in))
 * (nn.Linear's default), from the stream (seed, "init"). */
void fedc_model_init(const fedc_model_spec *spec, uint64_t seed, float *w);

/* Describe the flat vector as named tensors (views into w); names point to
 * static storage valid until the next call on the same thread. Returns the
 * number of tensors (2 per layer). */
size_t fedc_model_tensors(const fedc_model_spec *spec, const float *w,
                          fedc_st_tensor *out, size_t max);
/* Copy a decoded container's tensors into w, checking every name and shape.
 * FEDC_ESHAPE / FEDC_ENOTFOUND naming the tensor. */
int fedc_model_from_tensors(const fedc_model_spec *spec,
                            const fedc_st_file *f, float *w);

#endif
