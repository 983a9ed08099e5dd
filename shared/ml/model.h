/*
 * model.h - model specifications and their flat parameter vectors.
 *
 * The specification, layout, initialization and tensor naming are public
 * (<fedc/model.h>); this header adds the loss a model trains with, which
 * speaks the backend's internal types.
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

#include <fedc/model.h>

#include "ml/backend.h"
#include "wire/safetensors.h"

/* The loss the model trains with (backend.h). */
fedc_loss_kind fedc_model_loss_kind(const fedc_model_spec *spec);

#endif
