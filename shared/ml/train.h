/*
 * train.h - local training and evaluation of a model on a backend.
 *
 * A trainer holds one model's working buffers on one backend: the
 * parameters, their gradient, the momentum and FedProx anchor, and the
 * activations of a minibatch. fedc_train_local runs minibatch SGD on a
 * client's rows; fedc_evaluate measures loss and accuracy; both only use
 * backend ops, so the same code trains on the CPU and on a GPU.
 *
 * The objective for a client with rows R and global model w0 is
 *   L(w) = 1/|B| sum_{i in B} loss_i(w) + l2/2 ||W||^2 + l1 ||W||_1
 *          + mu/2 ||w - w0||^2
 * where W are the weights (not the biases) and the last term is FedProx
 * (Li et al. 2020). SCAFFOLD adds a constant vector to each minibatch
 * gradient (fedc_train_params.correction). fedc_model_loss_grad computes it and its gradient exactly
 * on one batch, which is what the gradient tests check.
 */
#ifndef FEDC_TRAIN_H
#define FEDC_TRAIN_H

#include <stdint.h>

#include "ml/backend.h"
#include "ml/model.h"
#include "base/rng.h"

/* A data set in backend memory (for the CPU backend, the host arrays). */
typedef struct fedc_data_view {
  const float *x; /* n x d */
  const float *y; /* n */
  int64_t n, d;
  /* NULL, or x as bytes in host memory (data.h's x_u8), set by the caller
   * after opening the view: training, evaluation and prediction then read
   * the bytes where the backend has unpack_u8 (the same bits) */
  const uint8_t *x_u8;
} fedc_data_view;

/* Make a data set visible to a backend: for the CPU a view of the host
 * arrays, for a device a copy uploaded once. Close with
 * fedc_data_view_close on the same backend. */
int fedc_data_view_open(fedc_backend *be, const float *x, const float *y,
                        int64_t n, int64_t d, fedc_data_view *v);
void fedc_data_view_close(fedc_backend *be, fedc_data_view *v);

typedef struct fedc_train_params {
  int32_t epochs;
  int32_t batch_size;
  float lr;
  float momentum;
  float prox_mu;
  /* Per-class weights of the loss (NULL = all 1): row i's gradient is
   * scaled by class_weight[label_i]; n_class_weight is the model's class
   * count (2 for logreg). The reported training loss stays unweighted. */
  const float *class_weight;
  int32_t n_class_weight;
  /* SCAFFOLD's drift correction c - c_i (host, n_params), added to every
   * minibatch gradient: y <- y - lr (g_i(y) + c - c_i) (Karimireddy et al.
   * 2020, eq. 3); NULL for none. Zero-initialise the struct so it is NULL. */
  const float *correction;
} fedc_train_params;

typedef struct fedc_train_stats {
  double loss_sum; /* sum of per-sample losses seen while training */
  int64_t correct; /* correct predictions while training */
  int64_t seen;    /* samples processed (epochs x rows) */
  int64_t steps;   /* SGD steps */
} fedc_train_stats;

typedef struct fedc_eval_sums {
  double loss_sum;
  int64_t correct;
  int64_t n;
} fedc_eval_sums;

typedef struct fedc_trainer fedc_trainer;

/* max_batch bounds the rows of one training or evaluation batch. */
int fedc_trainer_new(fedc_backend *be, const fedc_model_spec *spec,
                     int32_t max_batch, fedc_trainer **out);
void fedc_trainer_free(fedc_trainer *t);
const fedc_model_spec *fedc_trainer_spec(const fedc_trainer *t);

/*
 * Train w (host, n_params; in: the global model, out: the local model) on
 * the given rows of data for p->epochs epochs of shuffled minibatches (the
 * last one may be smaller), drawing the order from rng. Adds to *stats.
 * Errors: FEDC_EINVAL (batch_size > max_batch, no rows), backend errors,
 * FEDC_ENONFINITE if training diverged (the message gives the step).
 */
int fedc_train_local(fedc_trainer *t, const fedc_train_params *p,
                     const fedc_data_view *data, const int64_t *rows,
                     int64_t n_rows, fedc_rng *rng, float *w,
                     fedc_train_stats *stats);

/*
 * Forward pass over data rows [begin, end): adds to *sums; when scores is
 * not NULL (binary and regression models) writes scores[i - begin].
 */
int fedc_evaluate(fedc_trainer *t, const float *w, const fedc_data_view *data,
                  int64_t begin, int64_t end, fedc_eval_sums *sums,
                  float *scores);

/* Called by fedc_evaluate_each with each batch's raw outputs (host memory,
 * rows x n_out floats) of data rows [row, row + rows); nonzero stops the
 * pass and is returned. */
typedef int (*fedc_eval_batch_fn)(void *ctx, const float *out, int64_t row, int32_t rows);

/*
 * fedc_evaluate (scores NULL) that also hands each batch's outputs to fn:
 * one forward pass for the loss sums and for whatever else reads the
 * outputs (an evaluation report), with the same batches, so the same sums
 * to the bit as fedc_evaluate's. sums NULL: no loss computed here (fn
 * computes it).
 */
int fedc_evaluate_each(fedc_trainer *t, const float *w, const fedc_data_view *data,
                       int64_t begin, int64_t end, fedc_eval_sums *sums,
                       fedc_eval_batch_fn fn, void *ctx);

/*
 * Forward pass over data rows [begin, end): the raw outputs (logits for the
 * classification heads, the prediction for regression) into out, host
 * memory of (end - begin) x n_out floats.
 */
int fedc_predict(fedc_trainer *t, const float *w, const fedc_data_view *data, int64_t begin,
                 int64_t end, float *out);

/*
 * The objective above and its gradient (host, n_params) on rows
 * (n_rows <= max_batch), at w with anchor w0 (may be NULL when mu = 0).
 */
int fedc_model_loss_grad(fedc_trainer *t, const float *w, const float *w0,
                         float mu, const fedc_data_view *data,
                         const int64_t *rows, int32_t n_rows, double *loss,
                         float *grad);

/* Binary classification metrics from P(class 1) scores and 0/1 labels. */
typedef struct fedc_binary_metrics {
  double precision, recall, auc; /* auc: ROC area, ties counted half */
  int64_t tp, fp, tn, fn;
} fedc_binary_metrics;

int fedc_binary_metrics_compute(const float *scores, const float *labels,
                                int64_t n, fedc_binary_metrics *out);

#endif
