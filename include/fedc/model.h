/*
 * fedc/model.h - the built-in models and their flat parameter vectors.
 *
 * Every built-in model is a stack of dense layers: softmax, logistic and
 * linear regression are one layer; an MLP has ReLU hidden layers and a
 * softmax output. Its parameters live in one flat float vector, layer by
 * layer, each layer's weight (out x in, row-major: PyTorch nn.Linear's
 * layout) followed by its bias (out). The flat vector is what clients
 * train, what crosses the wire and what aggregation averages; as
 * safetensors (<fedc/tensors.h>) its tensors are named "layers.<i>.weight"
 * and "layers.<i>.bias".
 *
 *     fedc_model_spec s;
 *     fedc_model_spec_init(&s, FEDC_MODEL_SOFTMAX, 784, 10);
 *     float *w = fedc_malloc_array(fedc_model_n_params(&s), sizeof *w);
 *     fedc_model_init(&s, 42, w);            (the same w for the same seed)
 *
 * A program with a model of its own (a trainer of its own) needs none of
 * this: fedc moves any flat float vector. All functions may be called from
 * any thread; none allocates except where it says so.
 */
#ifndef FEDC_PUBLIC_MODEL_H
#define FEDC_PUBLIC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <fedc/tensors.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FEDC_MODEL_MAX_HIDDEN 8
#define FEDC_MODEL_MAX_LAYERS (FEDC_MODEL_MAX_HIDDEN + 1)

typedef enum {
  FEDC_MODEL_LOGREG = 0,  /* binary logistic regression */
  FEDC_MODEL_SOFTMAX = 1, /* multinomial logistic regression */
  FEDC_MODEL_LINREG = 2,  /* linear regression, mean squared error */
  FEDC_MODEL_MLP = 3,     /* ReLU hidden layers, softmax output */
  FEDC_MODEL_TENSORS = 4  /* a tensor job: any named tensors, defined by the
                             initial model ([model] init); trained only by
                             external trainers, so no spec of its own:
                             fedc_model_spec_check refuses it */
} fedc_model_type;

/* The type's name ("softmax"; "unknown" out of range, never NULL), and
 * the type a name means (-1 if none). */
const char *fedc_model_type_name(fedc_model_type t);
int fedc_model_type_parse(const char *s);

typedef struct fedc_model_spec {
  fedc_model_type type;
  int32_t n_in;   /* features */
  int32_t n_out;  /* classes for softmax/mlp; 1 for logreg/linreg */
  int32_t n_hidden;                      /* MLP hidden layers */
  int32_t hidden[FEDC_MODEL_MAX_HIDDEN]; /* their widths */
  float l1, l2;   /* regularization of the weights (not the biases) */
} fedc_model_spec;

/* Fill *spec for a model of type with n_in features and n_out outputs,
 * no hidden layers and no regularization; the caller then sets hidden
 * layers (for an MLP) or l1/l2 as it likes. */
void fedc_model_spec_init(fedc_model_spec *spec, fedc_model_type type,
                          int32_t n_in, int32_t n_out);
/* 0 if spec describes a model fedc can build, else FEDC_EINVAL saying
 * what is wrong (a width below 1, logreg with n_out != 1, an MLP without
 * hidden layers, ...). The functions below assume a valid spec. */
int fedc_model_spec_check(const fedc_model_spec *spec);

/* Where one layer's parameters sit in the flat vector. */
typedef struct fedc_layer_layout {
  int32_t in, out;
  size_t w_off, b_off; /* offsets into the flat vector, in floats */
} fedc_layer_layout;

/* Layers (hidden ones and the output), parameters, and layer i's layout. */
int32_t fedc_model_n_layers(const fedc_model_spec *spec);
size_t fedc_model_n_params(const fedc_model_spec *spec);
void fedc_model_layout(const fedc_model_spec *spec, int32_t layer,
                       fedc_layer_layout *out);

/* Seeded initialization of w (fedc_model_n_params floats): weights and
 * biases ~ U(-1/sqrt(in), 1/sqrt(in)) (nn.Linear's default), the same
 * values for the same seed on every machine. */
void fedc_model_init(const fedc_model_spec *spec, uint64_t seed, float *w);

/* Describe the flat vector w as named tensors (views into w) in out, at
 * most max of them (2 per layer: 2 * FEDC_MODEL_MAX_LAYERS always do);
 * returns how many. The names point to storage of the calling thread,
 * valid until its next call of this function. */
size_t fedc_model_tensors(const fedc_model_spec *spec, const float *w,
                          fedc_st_tensor *out, size_t max);
/* Copy a decoded container's tensors into w, checking every name and
 * shape: FEDC_ESHAPE or FEDC_ENOTFOUND naming the tensor. */
int fedc_model_from_tensors(const fedc_model_spec *spec,
                            const fedc_st_file *f, float *w);

#ifdef __cplusplus
}
#endif

#endif
